// TraceWriter: appends one recording to a `.ttvm` file.
//
// File layout (all integers little-endian; see docs/trace-format.md):
//
//   preamble   16 bytes: magic 89 'T' 'T' 'V' 'M' 0D 0A 1A, u16 major, u16 minor,
//              u32 reserved (0).
//   frames     a sequence of frames, each a 40-byte frame header followed by
//              its payload:
//                0 u32 tag      'HEAD' header, 'INIT' initial state, 'PAGE' RAM
//                               pages, 'SNAP' snapshot, 'CHNK' event chunk,
//                               'FOOT' footer
//                4 u32 codec    0 = stored, 1 = LZ4 block
//                8 u32 payload bytes on disk
//               12 u32 raw bytes (after decompression)
//               16 u64 first step  (CHNK: first event; SNAP: its step; else 0)
//               24 u64 last step   (CHNK: last event;  SNAP: its step; else 0)
//               32 u32 count       (CHNK: events; PAGE: pages; else 0)
//               36 u32 CRC32C of header bytes 0..35 followed by the payload
//              The order is: HEAD, INIT, PAGE*, then CHNK frames interleaved
//              with snapshots (SNAP, PAGE*), then FOOT. HEAD/INIT/SNAP/CHNK/FOOT
//              payloads are Cap'n Proto messages (formats/trace.capnp); PAGE
//              payloads are raw: u64 page numbers, then 4096 bytes per page
//              (RAM never goes through capnp lists: their traversal limit).
//   trailer    24 bytes: u64 footer frame offset, u32 CRC32C of those 8 bytes,
//              u32 reserved (0), then the 8-byte magic "TTVMEND\0".
//
// Writing is append-only. append() only copies the event into a buffer; a
// chunk is encoded, compressed and written when the buffer holds
// Options::maxEventsPerChunk events, when Options::flushInterval of wall
// time has passed since the last flush (the clock is read every 1024
// appends), on flushIfDue()/flush(), before a snapshot, and at close. Each
// chunk is written with one write() call, so a recorder that is killed loses
// at most the events buffered since the last flush; the file it leaves is
// readable (TraceReader scans it) and `ttvm recover` completes it.
//
// Errors (disk full, I/O) are sticky: the first one is kept, later appends
// are dropped, and status()/flush()/addSnapshot()/close() return it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ttvm/base/result.h"
#include "ttvm/formats/trace_types.h"

namespace ttvm {

class TraceWriter {
 public:
  struct Options {
    // Events per chunk at most. 64 Ki events encode to a few hundred KiB raw.
    uint32_t maxEventsPerChunk = 65536;
    // A chunk is flushed at least this often while events arrive.
    std::chrono::milliseconds flushInterval{1000};
    // LZ4 acceleration (1 = best ratio of the fast mode; larger = faster).
    int lz4Acceleration = 1;
  };

  // Creates (truncating) `path` and writes the preamble, the header and the
  // initial state. initial.ram must hold strictly increasing page numbers.
  static Result<std::unique_ptr<TraceWriter>> create(const std::string& path,
                                                     const TraceHeader& header,
                                                     const InitialState& initial);
  static Result<std::unique_ptr<TraceWriter>> create(const std::string& path,
                                                     const TraceHeader& header,
                                                     const InitialState& initial,
                                                     const Options& options);

  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;
  // Closing is explicit; a writer destroyed without close() leaves a file
  // without footer (as if the recorder had been killed after a flush).
  ~TraceWriter();

  // Appends an event. Steps must not decrease (asserted: that is a recorder bug).
  void append(const TraceEvent& e) {
    if (buffer_.size() >= bufferLimit_ || (++appendsSinceClock_ & 1023) == 0) slowPath();
    buffer_.push_back(e);
  }

  // Writes the buffered events as a chunk if the flush interval has passed.
  // The recorder calls it when the guest idles (e.g. HLT), so that a quiet
  // guest still has its events on disk within the interval.
  Status flushIfDue();
  // Writes the buffered events as a chunk now (no-op when none).
  Status flush();

  // Flushes the buffered events, then writes a full snapshot. snapshot.step
  // must be >= the step of every event appended so far.
  Status addSnapshot(const Snapshot& snapshot);

  // Flushes, writes the footer (chunk and snapshot index, `end`) and the
  // trailer, and closes the file. The writer is unusable afterwards.
  Status close(const TraceEnd& end);

  // The first error, if any (cheap).
  const Status& status() const { return status_; }
  bool ok() const { return status_.ok(); }

  uint64_t eventsAppended() const { return eventsWritten_ + buffer_.size(); }
  uint64_t bytesWritten() const { return fileOffset_; }
  uint64_t chunksWritten() const { return chunks_.size(); }
  const std::string& path() const { return path_; }

 private:
  TraceWriter(std::string path, const Options& options);
  void slowPath();

  std::string path_;
  Options options_;
  std::vector<TraceEvent> buffer_;
  size_t bufferLimit_;
  uint32_t appendsSinceClock_ = 0;
  std::chrono::steady_clock::time_point lastFlush_;
  int fd_ = -1;
  uint64_t fileOffset_ = 0;
  uint64_t eventsWritten_ = 0;
  uint64_t eventsDropped_ = 0;  // lost to an I/O error
  uint64_t initOffset_ = 0;
  uint64_t lastStep_ = 0;
  Status status_;
  std::vector<ChunkInfo> chunks_;
  std::vector<SnapshotInfo> snapshots_;
  std::vector<uint8_t> scratch_;     // encode buffer, reused across chunks
  std::vector<uint8_t> compressed_;  // compression output, reused
  bool closed_ = false;
};

}  // namespace ttvm
