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
// Writing is append-only. append() only copies the event into a buffer. The
// buffer is handed over as a chunk when it holds Options::maxEventsPerChunk
// events, when Options::flushInterval of wall time has passed since the last
// hand-over (the clock is read every 1024 appends), on flushIfDue()/flush(),
// before a snapshot, and at close. With Options::flushFromAppend off, append()
// never hands over by itself: the owner calls flushIfDue() at points of its
// choosing (the recorder: between CPU slices) and a buffer longer than
// maxEventsPerChunk is cut into several chunks.
//
// A handed-over buffer is encoded, compressed and written by a background
// thread (Options::background), so the recording thread pays only for the
// copy in append(). At most Options::maxChunksInFlight buffers wait for that
// thread; a hand-over beyond that waits for it (the loss bound stays: at most
// the events of one flush interval plus the buffers in flight, which the
// thread writes within milliseconds). flush(), addSnapshot() and close() wait
// until everything handed over is on disk. Each chunk is written with one
// write() call, so a recorder that is killed leaves a readable file
// (TraceReader scans it) that `ttvm recover` completes.
//
// Errors (disk full, I/O) are sticky: the first one is kept, later events are
// dropped, and status()/flush()/addSnapshot()/close() return it; ok() is a
// cheap check the owner may make often. A writer is used from one thread
// (its own background thread aside).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
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
    // append() hands the buffer over by itself (full, or the interval passed).
    // Off: only flushIfDue()/flush()/addSnapshot()/close() do, and the buffer
    // grows as needed in between (buffered() then spans everything since the
    // last hand-over).
    bool flushFromAppend = true;
    // Encode, compress and write on a background thread.
    bool background = true;
    // Buffers handed over but not yet written before a hand-over waits.
    uint32_t maxChunksInFlight = 4;
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
  // Closing is explicit; a writer destroyed without close() writes what it
  // holds and leaves a file without footer (as if the recorder had been
  // killed after a flush).
  ~TraceWriter();

  // Appends an event. Steps must not decrease (asserted when the buffer is
  // handed over: that is a recorder bug).
  void append(const TraceEvent& e) {
    if (__builtin_expect(count_ == checkAt_, 0)) slowPath();
    events_[count_++] = e;
  }

  // Appends a kDiskSector event (the first read of disk `slot`'s sector
  // `lba` from its image at `step`) with the sector's 512 bytes, which go
  // into the same chunk.
  void appendDiskSector(uint64_t step, uint8_t slot, uint64_t lba, std::span<const uint8_t> bytes);

  // The events appended since the last hand-over, oldest first. Valid until
  // the next call of any other member.
  std::span<const TraceEvent> buffered() const { return {events_, count_}; }
  // The bytes of the buffered kDiskSector events (their `count` indexes them).
  std::span<const uint8_t> bufferedSectors() const { return sectors_; }
  // Events handed over so far (increases at every hand-over: an owner that
  // keeps positions into buffered() compares it to know they moved on).
  uint64_t eventsHandedOver() const { return handedOver_; }

  // Hands the buffered events over if the flush interval has passed (or,
  // with flushFromAppend off, if they fill a chunk). The recorder calls it
  // between CPU slices and when the guest idles, so that a quiet guest still
  // has its events on disk within the interval. Does not wait.
  Status flushIfDue();
  // Hands the buffered events over (if any) and waits until everything
  // handed over is on disk.
  Status flush();

  // Flushes the buffered events, then writes a full snapshot. snapshot.step
  // must be >= the step of every event appended so far.
  Status addSnapshot(const Snapshot& snapshot);

  // Flushes, writes the footer (chunk and snapshot index, `end`) and the
  // trailer, and closes the file. The writer is unusable afterwards.
  Status close(const TraceEnd& end);

  // The first error, if any.
  Status status() const;
  bool ok() const { return !failed_.load(std::memory_order_relaxed); }

  uint64_t eventsAppended() const { return handedOver_ + count_; }
  // Bytes and chunks on disk so far (handed-over chunks count once written).
  uint64_t bytesWritten() const;
  uint64_t chunksWritten() const;
  const std::string& path() const { return path_; }
  // The identity every frame of this trace carries (the header's, or drawn).
  const TraceId& traceId() const { return traceId_; }

 private:
  // Storage for events that is never initialised: append() writes a slot
  // before anything reads it, so a fresh buffer costs no memset (malloc'd
  // memory; TraceEvent is an implicit-lifetime, trivially copyable type).
  class EventBuffer {
   public:
    EventBuffer() = default;
    explicit EventBuffer(size_t capacity);
    TraceEvent* data() const { return data_.get(); }
    size_t capacity() const { return capacity_; }
    // Reallocates to `capacity`, keeping the first `keep` events.
    void grow(size_t keep, size_t capacity);

   private:
    struct Free {
      void operator()(TraceEvent* p) const;
    };
    std::unique_ptr<TraceEvent, Free> data_;
    size_t capacity_ = 0;
  };
  // A buffer of events handed over to the writing thread.
  struct Job {
    EventBuffer events;
    size_t count = 0;
    std::vector<uint8_t> sectors;  // the kDiskSector events' bytes (count indexes them)
  };

  TraceWriter(std::string path, const Options& options);
  size_t bufferCapacity() const;
  void slowPath();
  void handOver();
  // Makes buffer_ an empty buffer of bufferCapacity() at least.
  void startBuffer();
  void writerThread();
  // Encodes, compresses and writes one job as chunks (the writing thread, or
  // the caller without Options::background).
  void writeJob(const Job& job);
  void fail(const Status& s);  // lock held
  void stopThread();

  std::string path_;
  Options options_;
  TraceId traceId_;
  uint64_t chunkSequence_ = 0;  // the next chunk's; only the job-writing thread touches it

  // Owner's side: the buffer append() fills.
  EventBuffer buffer_;
  TraceEvent* events_ = nullptr;  // buffer_.data()
  size_t count_ = 0;
  size_t checkAt_ = 0;            // append() takes the slow path when count_ reaches it
  std::vector<uint8_t> sectors_;  // bytes of the buffered kDiskSector events
  uint64_t handedOver_ = 0;
  uint64_t lastStep_ = 0;  // of the last event handed over (or snapshot)
  std::chrono::steady_clock::time_point lastFlush_;
  bool closed_ = false;

  // Shared with the writing thread (under mutex_).
  mutable std::mutex mutex_;
  std::condition_variable wake_;   // jobs arrived or stop
  std::condition_variable done_;   // a job was written
  std::deque<Job> jobs_;           // the front one is being written; popped when done
  std::vector<EventBuffer> free_;  // written buffers, for reuse
  bool stop_ = false;
  std::atomic<bool> failed_{false};
  Status status_;
  int fd_ = -1;
  uint64_t fileOffset_ = 0;
  uint64_t eventsDropped_ = 0;  // lost to an I/O error
  uint64_t initOffset_ = 0;
  std::vector<ChunkInfo> chunks_;
  std::vector<SnapshotInfo> snapshots_;
  std::thread thread_;

  // The writing thread's (or, without it, the caller's) frame buffer.
  std::vector<uint8_t> compressed_;
};

}  // namespace ttvm
