#include "ttvm/formats/trace_writer.h"

#include <capnp/message.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "frame.h"
#include "schema_convert.h"
#include "ttvm/formats/chunk_codec.h"

namespace ttvm {

using namespace formats;

namespace {
// One codec per thread: its column buffers are reused across chunks.
EventChunkCodec& threadCodec() {
  thread_local EventChunkCodec codec;
  return codec;
}
}  // namespace

TraceWriter::TraceWriter(std::string path, const Options& options)
    : path_(std::move(path)),
      options_(options),
      bufferLimit_(options.maxEventsPerChunk),
      lastFlush_(std::chrono::steady_clock::now()) {
  TTVM_ASSERT(options.maxEventsPerChunk >= 1 && options.maxEventsPerChunk <= (1u << 22),
              "maxEventsPerChunk out of range: ", options.maxEventsPerChunk);
  buffer_.reserve(bufferLimit_);
}

TraceWriter::~TraceWriter() {
  if (!closed_ && fd_ >= 0) {
    (void)flush();  // best effort: keep what was recorded, like a killed recorder
    ::close(fd_);
  }
}

Result<std::unique_ptr<TraceWriter>> TraceWriter::create(const std::string& path,
                                                         const TraceHeader& header,
                                                         const InitialState& initial) {
  return create(path, header, initial, Options{});
}

Result<std::unique_ptr<TraceWriter>> TraceWriter::create(const std::string& path,
                                                         const TraceHeader& header,
                                                         const InitialState& initial,
                                                         const Options& options) {
  // Build the whole prefix in memory first so that bad input leaves no file.
  std::vector<uint8_t> out(kPreambleBytes);
  encodePreamble(out.data());
  {
    capnp::MallocMessageBuilder message;
    toCapnp(header, message.initRoot<schema::Header>());
    std::vector<uint8_t> raw;
    serializeMessage(message, raw);
    if (raw.size() > maxRawBytes(kTagHead))
      return makeError(path + ": the trace header (guest images) is " + std::to_string(raw.size()) +
                       " bytes, over the limit of " + std::to_string(maxRawBytes(kTagHead)));
    appendFrame(kTagHead, raw, 0, 0, 0, options.lz4Acceleration, out);
  }
  const uint64_t initOffset = out.size();
  Status s = appendMachineStateFrames(kTagInit, 0, initial.cpu, initial.ram, initial.deviceState,
                                      options.lz4Acceleration, out);
  if (!s.ok()) return makeError(path + ": initial state: " + s.error().message);

  std::unique_ptr<TraceWriter> w(new TraceWriter(path, options));
  w->fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (w->fd_ < 0) return makeError(path + ": cannot create: " + std::strerror(errno));
  TTVM_TRY(writeAll(w->fd_, path, out));
  w->fileOffset_ = out.size();
  w->initOffset_ = initOffset;
  return w;
}

void TraceWriter::slowPath() {
  if (buffer_.size() >= bufferLimit_) {
    (void)flush();
    return;
  }
  (void)flushIfDue();
}

Status TraceWriter::flushIfDue() {
  const auto now = std::chrono::steady_clock::now();
  if (now - lastFlush_ < options_.flushInterval) return status_;
  return flush();
}

Status TraceWriter::flush() {
  lastFlush_ = std::chrono::steady_clock::now();
  if (buffer_.empty() || closed_) return status_;
  if (!status_.ok()) {
    eventsDropped_ += buffer_.size();
    buffer_.clear();
    return status_;
  }
  TTVM_ASSERT(buffer_.front().step >= lastStep_,
              "trace event steps went backward: ", buffer_.front().step, " after ", lastStep_);
  threadCodec().encode(buffer_, scratch_);
  compressed_.clear();
  appendFrame(kTagChunk, scratch_, buffer_.front().step, buffer_.back().step,
              static_cast<uint32_t>(buffer_.size()), options_.lz4Acceleration, compressed_);
  ChunkInfo info;
  info.offset = fileOffset_;
  info.compressedBytes = static_cast<uint32_t>(compressed_.size() - kFrameHeaderBytes);
  info.rawBytes = static_cast<uint32_t>(scratch_.size());
  info.eventCount = static_cast<uint32_t>(buffer_.size());
  info.firstStep = buffer_.front().step;
  info.lastStep = buffer_.back().step;
  Status s = writeAll(fd_, path_, compressed_);
  if (!s.ok()) {
    status_ = s;
    eventsDropped_ += buffer_.size();
    buffer_.clear();
    return status_;
  }
  fileOffset_ += compressed_.size();
  chunks_.push_back(info);
  lastStep_ = info.lastStep;
  eventsWritten_ += buffer_.size();
  buffer_.clear();
  return status_;
}

Status TraceWriter::addSnapshot(const Snapshot& snapshot) {
  TTVM_ASSERT(!closed_, "addSnapshot after close");
  TTVM_TRY(flush());
  TTVM_ASSERT(snapshot.step >= lastStep_, "snapshot at step ", snapshot.step,
              " is before the last event (step ", lastStep_, ")");
  std::vector<uint8_t> out;
  Status s = appendMachineStateFrames(kTagSnap, snapshot.step, snapshot.cpu, snapshot.ram,
                                      snapshot.deviceState, options_.lz4Acceleration, out);
  if (!s.ok())
    return makeError(path_ + ": snapshot at step " + std::to_string(snapshot.step) + ": " +
                     s.error().message);
  s = writeAll(fd_, path_, out);
  if (!s.ok()) {
    status_ = s;
    return status_;
  }
  snapshots_.push_back({fileOffset_, snapshot.step});
  fileOffset_ += out.size();
  lastStep_ = snapshot.step;
  return {};
}

Status TraceWriter::close(const TraceEnd& end) {
  TTVM_ASSERT(!closed_, "TraceWriter::close called twice");
  Status s = flush();
  if (s.ok()) {
    std::vector<uint8_t> out;
    const uint64_t footerOffset = fileOffset_;
    appendFooterFrame(kPreambleBytes, initOffset_, chunks_, snapshots_, end, out);
    const size_t at = out.size();
    out.resize(at + kTrailerBytes);
    encodeTrailer(footerOffset, out.data() + at);
    s = writeAll(fd_, path_, out);
    if (s.ok()) fileOffset_ += out.size();
    if (s.ok() && ::fdatasync(fd_) != 0)
      s = makeError(path_ + ": fdatasync failed: " + std::strerror(errno));
  }
  if (::close(fd_) != 0 && s.ok()) s = makeError(path_ + ": close failed: " + std::strerror(errno));
  fd_ = -1;
  closed_ = true;
  if (!s.ok() && status_.ok()) status_ = s;
  return status_;
}

}  // namespace ttvm
