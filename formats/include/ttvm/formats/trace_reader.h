// TraceReader: reads a `.ttvm` file written by TraceWriter (the file layout is
// described at the top of trace_writer.h and in docs/trace-format.md).
//
// Opening. The reader checks the preamble, then reads the fixed trailer at the
// end of the file, the footer it points at (chunk index, snapshot index, end
// of run) and the header: a few small reads, whatever the file's size. When
// the trailer or footer is missing or damaged (the recorder was killed, the
// file was cut), the reader scans the frames forward from the start instead,
// checking each frame's checksum, and stops at the first frame that is
// incomplete or bad: everything before it is usable, recovered() is true and
// recoveryNote() says where and why the scan stopped (the CLI prints it).
//
// Hostile input. Every size in a frame is checked against the file's size and
// against fixed caps before anything is allocated; payload checksums are
// verified before decoding; Cap'n Proto messages are read with a traversal
// limit derived from the payload size and a small nesting limit; every list
// that is indexed is length-checked. Every error names the byte offset and
// what was expected there. Nothing in a file can crash the reader.
//
// Threads. A TraceReader is immutable after open(); its const methods may be
// called from several threads at once (reads use pread). EventCursor is
// single-threaded.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ttvm/base/result.h"
#include "ttvm/formats/trace_types.h"

namespace ttvm {

class TraceReader;
namespace formats {
class InputFile;
}

// Reads events in order across chunks, decoding one chunk at a time. It
// points at its TraceReader, which must outlive it and stay where it is.
//   auto cur = reader.cursor();
//   TraceEvent e;
//   while (cur.next(e)) { ... }
//   if (!cur.status().ok()) report(cur.status().error());
class EventCursor {
 public:
  // The next event, or false at the end of the trace or on an error
  // (status() tells which).
  bool next(TraceEvent& out) {
    if (pos_ < events_.size()) {
      out = events_[pos_++];
      return true;
    }
    return refill() && next(out);
  }
  // Positions the cursor at the first event whose step is >= `step`.
  Status seek(uint64_t step);
  // Ok at the end of the trace; the error that stopped next() otherwise.
  const Status& status() const { return status_; }
  // Index of the chunk the next event comes from.
  size_t chunkIndex() const { return chunk_; }

 private:
  friend class TraceReader;
  explicit EventCursor(const TraceReader* reader) : reader_(reader) {}
  bool refill();

  const TraceReader* reader_;
  std::vector<TraceEvent> events_;
  size_t pos_ = 0;
  size_t chunk_ = 0;  // index of the next chunk to load
  Status status_;
};

// Where a replay reads events from, chunk by chunk: a trace file
// (TraceReader), or the recorder's buffer of the events since its tail
// checkpoint (the re-execution of a recording's last steps).
class EventSource {
 public:
  virtual ~EventSource() = default;
  virtual size_t chunkCount() const = 0;
  // Chunk i's events; the bytes of its kDiskSector events go to `sectors`
  // when not null, in the order their `count` fields index.
  virtual Status readChunkInto(size_t i, std::vector<TraceEvent>& out,
                               std::vector<uint8_t>* sectors) const = 0;
};

class TraceReader final : public EventSource {
 public:
  // Opens `path` by its footer's index, or by scanning when the footer is
  // missing or damaged (see above). An error when not even the preamble,
  // header and initial state can be read.
  static Result<TraceReader> open(const std::string& path);

  TraceReader(TraceReader&& other) noexcept;
  TraceReader& operator=(TraceReader&& other) noexcept;
  TraceReader(const TraceReader&) = delete;
  TraceReader& operator=(const TraceReader&) = delete;
  ~TraceReader();

  const std::string& path() const { return path_; }
  const TraceHeader& header() const { return header_; }
  // A trace of a newer minor version than this reader's (readable by
  // design: new fields only) gets "made by ttvm X, format 1.N; this reader
  // supports up to 1.M: ..."; empty otherwise. A newer major version is
  // refused by open() with the same words.
  std::string newerFormatNote() const;
  // Reads the initial state (CPU, RAM pages, device state) from the file.
  Result<InitialState> initialState() const;

  // The chunk index, ordered by step (chunks never overlap except at their
  // boundary step, which several events may share).
  const std::vector<ChunkInfo>& chunks() const { return chunks_; }
  size_t chunkCount() const override { return chunks_.size(); }
  // Decodes chunk i (checksum verified).
  Result<std::vector<TraceEvent>> readChunk(size_t i) const;
  // The same, into a caller-owned vector (reused to avoid allocations);
  // the bytes of its kDiskSector events go to `sectors` when not null (see
  // EventChunkCodec::decode).
  Status readChunkInto(size_t i, std::vector<TraceEvent>& out,
                       std::vector<uint8_t>* sectors = nullptr) const override;
  // The first chunk whose last step is >= `step` (the chunk holding the
  // first event at or after `step`); nullopt when `step` is past the end.
  std::optional<size_t> chunkForStep(uint64_t step) const;
  // A cursor at the first event of the trace.
  EventCursor cursor() const { return EventCursor(this); }

  const std::vector<SnapshotInfo>& snapshots() const { return snapshots_; }
  Result<Snapshot> loadSnapshot(size_t i) const;
  // The last snapshot whose step is <= `step`; nullopt when none.
  std::optional<size_t> snapshotBefore(uint64_t step) const;

  // How the run ended; nullopt when the footer was missing (recovered()).
  const std::optional<TraceEnd>& end() const { return end_; }
  // True when the file was opened by scanning; recoveryNote() says why and
  // where the scan stopped.
  bool recovered() const { return recovered_; }
  const std::string& recoveryNote() const { return recoveryNote_; }
  // Follows a trace that is still being written: scans the frames written
  // since the last good one (chunks, snapshots, at last the footer) and
  // appends them to the index. A frame cut short at the end of the file is
  // not damage but not written yet: it stays outside, and the next call
  // reads it once complete. True when the index grew or the end appeared;
  // false (nothing to do) for a trace opened by its footer or whose end is
  // known. An error when the file cannot be read or shrank.
  Result<bool> refresh();

  // Sizes. fileBytes: the file; compressed/raw: the event chunks' payloads on
  // disk and after decompression; eventCount: events in all chunks.
  uint64_t fileBytes() const { return fileBytes_; }
  uint64_t usableBytes() const { return usableBytes_; }  // bytes before the first bad frame
  uint64_t compressedEventBytes() const;
  uint64_t rawEventBytes() const;
  uint64_t eventCount() const;

  // Reads every frame of the file from the header to the footer (or to where
  // a scan stopped) and checks its checksum and structure: the header, the
  // initial state and its pages, every chunk, every snapshot and its pages,
  // and that the frames found are exactly the ones the index lists. open()
  // reads only what it needs (a few frames); `verify` and `info` call this so
  // that a damaged frame anywhere (a snapshot nobody replays from) is found.
  // The error names the frame's byte offset.
  Status checkAllFrames() const;

  // Reads `in` (by scanning when its footer is missing or damaged) and writes
  // `out` with every good frame of `in` plus a new footer and trailer whose
  // end is `end` (`ttvm recover` passes recoveredEnd() with the state its
  // replay reached at the last recorded step), or without it an end of
  // EndReason::kInterrupted whose final state is unknown (all zero).
  // `in` and `out` must differ. A complete `in` is copied unchanged.
  static Status recover(const std::string& in, const std::string& out,
                        const std::optional<TraceEnd>& end = std::nullopt);

 private:
  TraceReader() = default;
  friend class EventCursor;
  // Scans frames from `at` (after the initial state or the last good frame)
  // and appends what it finds; sets usableBytes_, eventsEnd_, recoveryNote_.
  void scanFrom(const formats::InputFile& f, uint64_t at);

  std::string path_;
  int fd_ = -1;
  uint64_t fileBytes_ = 0;
  uint64_t usableBytes_ = 0;
  uint64_t initOffset_ = 0;
  uint64_t eventsEnd_ = 0;  // offset after the last good chunk or snapshot frame
  TraceHeader header_;
  std::vector<ChunkInfo> chunks_;
  std::vector<SnapshotInfo> snapshots_;
  std::optional<TraceEnd> end_;
  bool recovered_ = false;
  std::string recoveryNote_;
  std::string footerProblem_;  // why the footer was not used (recovered_)
};

}  // namespace ttvm
