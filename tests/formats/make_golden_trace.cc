// Writes the golden trace of the current format version, or the seed corpus
// of the trace reader's fuzz target:
//   ttvm_make_golden_trace tests/data/golden-v1.2.ttvm
//   ttvm_make_golden_trace --corpus tests/fuzz/corpus/trace_reader
// The golden trace is written once when a format version is introduced; the
// file is committed and golden_trace_test.cc checks that every later ttvm
// still reads it exactly.
#include <cstdio>
#include <cstring>

#include "trace_samples.h"
#include "ttvm/formats/chunk_codec.h"

namespace {

int writeCorpus(const std::string& dir) {
  using namespace ttvm::testing;
  const std::string small = dir + "/small.ttvm";
  writeSmallTrace(small);
  std::vector<uint8_t> bytes = readFileBytes(small);
  // Without trailer and footer (a killed recorder), and cut inside a chunk.
  writeFileBytes(dir + "/no-footer.ttvm", std::vector<uint8_t>(bytes.begin(), bytes.end() - 200));
  writeFileBytes(dir + "/cut.ttvm",
                 std::vector<uint8_t>(bytes.begin(), bytes.begin() + bytes.size() * 2 / 3));
  // Raw chunk payloads for the codec ('C' prefix).
  ttvm::EventChunkCodec codec;
  std::vector<uint8_t> raw;
  codec.encode(everyKindEvents(5), raw);
  raw.insert(raw.begin(), 'C');
  writeFileBytes(dir + "/chunk-every-kind", raw);
  std::mt19937_64 rng(3);
  codec.encode(randomEvents(rng, 50), raw);
  raw.insert(raw.begin(), 'C');
  writeFileBytes(dir + "/chunk-random", raw);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--corpus") == 0) return writeCorpus(argv[2]);
  if (argc != 2) {
    std::fprintf(stderr, "usage: ttvm_make_golden_trace <out.ttvm> | --corpus <dir>\n");
    return 2;
  }
  const std::string err = ttvm::testing::writeGolden(ttvm::testing::goldenV1_6(), argv[1]);
  if (!err.empty()) {
    std::fprintf(stderr, "ttvm_make_golden_trace: %s\n", err.c_str());
    return 1;
  }
  return 0;
}
