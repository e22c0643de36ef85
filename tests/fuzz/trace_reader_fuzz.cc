// libFuzzer target for the trace reader: the input is a whole trace file
// (opened, then everything it offers is read) or, when the first byte is
// 'C', a raw event-chunk payload for EventChunkCodec::decode. Any crash,
// sanitizer report, leak or unbounded allocation is a bug.
//   build/fuzz/tests/fuzz/trace_reader_fuzz -max_total_time=60 NEW_DIR
//   tests/fuzz/corpus/trace_reader
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "ttvm/formats/chunk_codec.h"
#include "ttvm/formats/trace_reader.h"

namespace {

void readEverything(const std::string& path) {
  auto r = ttvm::TraceReader::open(path);
  if (!r.ok()) return;
  (void)r->initialState();
  for (size_t i = 0; i < r->snapshots().size(); ++i) (void)r->loadSnapshot(i);
  auto cur = r->cursor();
  ttvm::TraceEvent e;
  while (cur.next(e)) {
  }
  if (r->chunkCount()) (void)cur.seek(r->chunks().back().firstStep);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 0 && data[0] == 'C') {
    std::vector<ttvm::TraceEvent> out;
    std::vector<uint8_t> sectors;  // the diskSector column too
    (void)ttvm::EventChunkCodec::decode(std::span<const uint8_t>(data + 1, size - 1), "fuzz", out,
                                        nullptr, &sectors);
    return 0;
  }
  // The reader takes a path: give it an in-memory file.
  static const int fd = memfd_create("ttvm-fuzz", 0);
  if (fd < 0) return 0;
  if (ftruncate(fd, 0) != 0) return 0;
  if (size && pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) return 0;
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  readEverything(path);
  return 0;
}
