#include "ttvm/formats/trace_writer.h"

#include <capnp/message.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <type_traits>

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

static_assert(std::is_trivially_copyable_v<TraceEvent> &&
              std::is_trivially_destructible_v<TraceEvent>);

TraceWriter::EventBuffer::EventBuffer(size_t capacity)
    : data_(static_cast<TraceEvent*>(std::malloc(capacity * sizeof(TraceEvent)))),
      capacity_(capacity) {
  TTVM_ASSERT(data_ != nullptr, "out of memory for ", capacity, " trace events");
}

void TraceWriter::EventBuffer::grow(size_t keep, size_t capacity) {
  EventBuffer bigger(capacity);
  if (keep != 0) std::memcpy(bigger.data(), data(), keep * sizeof(TraceEvent));
  *this = std::move(bigger);
}

void TraceWriter::EventBuffer::Free::operator()(TraceEvent* p) const {
  std::free(p);
}

TraceWriter::TraceWriter(std::string path, const Options& options)
    : path_(std::move(path)), options_(options), lastFlush_(std::chrono::steady_clock::now()) {
  TTVM_ASSERT(options.maxEventsPerChunk >= 1 && options.maxEventsPerChunk <= (1u << 22),
              "maxEventsPerChunk out of range: ", options.maxEventsPerChunk);
  TTVM_ASSERT(options.maxChunksInFlight >= 1, "maxChunksInFlight must be at least 1");
  startBuffer();
}

TraceWriter::~TraceWriter() {
  const bool open = !closed_ && fd_ >= 0;
  if (open) (void)flush();  // best effort: keep what was recorded, like a killed recorder
  stopThread();
  if (open) ::close(fd_);
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
  // The trace's identity: every frame that follows repeats it.
  TraceHeader withId = header;
  if (withId.traceId.empty()) withId.traceId = randomTraceId();
  {
    capnp::MallocMessageBuilder message;
    toCapnp(withId, message.initRoot<schema::Header>());
    std::vector<uint8_t> raw;
    serializeMessage(message, raw);
    if (raw.size() > maxRawBytes(kTagHead))
      return makeError(path + ": the trace header (guest images) is " + std::to_string(raw.size()) +
                       " bytes, over the limit of " + std::to_string(maxRawBytes(kTagHead)));
    appendFrame(kTagHead, raw, 0, 0, 0, options.lz4Acceleration, out);
  }
  const uint64_t initOffset = out.size();
  Status s = appendMachineStateFrames(kTagInit, 0, initial.cpu, initial.ram, initial.deviceState,
                                      withId.traceId, 0, options.lz4Acceleration, out);
  if (!s.ok()) return makeError(path + ": initial state: " + s.error().message);

  std::unique_ptr<TraceWriter> w(new TraceWriter(path, options));
  w->traceId_ = withId.traceId;
  // Not O_TRUNC: a second recorder writing the same path must fail without
  // destroying the first one's trace. The lock is held until close().
  w->fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (w->fd_ < 0) return makeError(path + ": cannot create: " + std::strerror(errno));
  if (::flock(w->fd_, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    ::close(w->fd_);
    w->fd_ = -1;
    if (e == EWOULDBLOCK)
      return makeError(path +
                       ": another ttvm is writing this trace (it holds the file's lock); "
                       "the file is left as it is: choose another output");
    return makeError(path + ": cannot lock: " + std::strerror(e));
  }
  struct stat st {};
  if (::fstat(w->fd_, &st) == 0 && S_ISREG(st.st_mode) && ::ftruncate(w->fd_, 0) != 0) {
    const int e = errno;
    ::close(w->fd_);
    w->fd_ = -1;
    return makeError(path + ": cannot truncate: " + std::strerror(e));
  }
  TTVM_TRY(writeAll(w->fd_, path, out));
  w->fileOffset_ = out.size();
  w->initOffset_ = initOffset;
  if (options.background) {
    // The thread starts with every signal blocked, so that process-directed
    // signals (Ctrl-C, SIGTERM, a SIGSEGV sent by kill) reach the owner's
    // thread and its handlers, which may close this writer.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    w->thread_ = std::thread(&TraceWriter::writerThread, w.get());
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    // Named from here, before create() returns: top, perf and gdb show it.
    pthread_setname_np(w->thread_.native_handle(), "ttvm-writer");
  }
  return w;
}

size_t TraceWriter::bufferCapacity() const {
  // An owner that hands over between its own steps overshoots a chunk by what
  // it appended since: room for as much again, so that the buffer does not
  // have to grow (pages of malloc'd memory are only faulted in when written).
  return options_.flushFromAppend ? options_.maxEventsPerChunk
                                  : 2 * size_t{options_.maxEventsPerChunk};
}

void TraceWriter::slowPath() {
  if (!options_.flushFromAppend) {
    // The owner decides when to hand over: make room.
    buffer_.grow(count_, buffer_.capacity() * 2);
    events_ = buffer_.data();
    checkAt_ = buffer_.capacity();
    return;
  }
  if (count_ == buffer_.capacity() ||
      std::chrono::steady_clock::now() - lastFlush_ >= options_.flushInterval) {
    handOver();
    return;
  }
  checkAt_ = std::min(count_ + 1024, buffer_.capacity());
}

void TraceWriter::appendDiskSector(uint64_t step, uint8_t slot, uint64_t lba,
                                   std::span<const uint8_t> bytes) {
  TTVM_ASSERT(bytes.size() == kDiskSectorBytes, "a disk sector has 512 bytes, not ", bytes.size());
  if (count_ == checkAt_) slowPath();  // may hand the buffer (and sectors_) over
  events_[count_++] = TraceEvent::diskSector(
      step, slot, lba, static_cast<uint32_t>(sectors_.size() / kDiskSectorBytes));
  sectors_.insert(sectors_.end(), bytes.begin(), bytes.end());
}

void TraceWriter::handOver() {
  lastFlush_ = std::chrono::steady_clock::now();
  if (count_ != 0 && !closed_) {
    TTVM_ASSERT(events_[0].step >= lastStep_, "trace event steps went backward: ", events_[0].step,
                " after ", lastStep_);
    lastStep_ = events_[count_ - 1].step;
    handedOver_ += count_;
    if (!ok()) {
      std::lock_guard lock(mutex_);
      eventsDropped_ += count_;
    } else if (!options_.background) {
      Job job{std::move(buffer_), count_, std::move(sectors_)};
      writeJob(job);
      buffer_ = std::move(job.events);
    } else {
      std::unique_lock lock(mutex_);
      done_.wait(lock, [this] { return jobs_.size() < options_.maxChunksInFlight; });
      jobs_.push_back(Job{std::move(buffer_), count_, std::move(sectors_)});
      buffer_ = EventBuffer();
      if (!free_.empty()) {
        buffer_ = std::move(free_.back());
        free_.pop_back();
      }
      lock.unlock();
      wake_.notify_one();
    }
  }
  sectors_.clear();
  startBuffer();
}

void TraceWriter::startBuffer() {
  if (buffer_.capacity() < bufferCapacity()) buffer_ = EventBuffer(bufferCapacity());
  events_ = buffer_.data();
  count_ = 0;
  checkAt_ =
      options_.flushFromAppend ? std::min<size_t>(1024, buffer_.capacity()) : buffer_.capacity();
}

void TraceWriter::writerThread() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stop_, and nothing left to write
    Job& job = jobs_.front();   // deque: stays put while the owner pushes more
    lock.unlock();
    writeJob(job);
    lock.lock();
    free_.push_back(std::move(job.events));
    jobs_.pop_front();
    done_.notify_all();
  }
}

void TraceWriter::writeJob(const Job& job) {
  const std::span<const TraceEvent> all(job.events.data(), job.count);
  for (size_t at = 0; at < all.size(); at += options_.maxEventsPerChunk) {
    if (!ok()) {
      std::lock_guard lock(mutex_);
      eventsDropped_ += all.size() - at;
      return;
    }
    const auto events =
        all.subspan(at, std::min<size_t>(options_.maxEventsPerChunk, all.size() - at));
    size_t rawBytes = 0, frameBytes = 0;
    // Only one thread writes jobs at a time (the writing thread, or the
    // owner without one), so the sequence needs no lock.
    threadCodec().setIdentity({traceId_, chunkSequence_++});
    threadCodec().encode(events, job.sectors, [&](std::span<const uint8_t> raw) {
      rawBytes = raw.size();
      frameBytes =
          encodeFrame(kTagChunk, raw, events.front().step, events.back().step,
                      static_cast<uint32_t>(events.size()), options_.lz4Acceleration, compressed_);
    });
    Status s = writeAll(fd_, path_, std::span<const uint8_t>(compressed_.data(), frameBytes));
    std::lock_guard lock(mutex_);
    if (!s.ok()) {
      fail(s);
      eventsDropped_ += all.size() - at;
      return;
    }
    ChunkInfo info;
    info.offset = fileOffset_;
    info.compressedBytes = static_cast<uint32_t>(frameBytes - kFrameHeaderBytes);
    info.rawBytes = static_cast<uint32_t>(rawBytes);
    info.eventCount = static_cast<uint32_t>(events.size());
    info.firstStep = events.front().step;
    info.lastStep = events.back().step;
    chunks_.push_back(info);
    fileOffset_ += frameBytes;
  }
}

void TraceWriter::fail(const Status& s) {
  if (status_.ok()) status_ = s;
  failed_.store(true, std::memory_order_relaxed);
}

void TraceWriter::stopThread() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

Status TraceWriter::status() const {
  std::lock_guard lock(mutex_);
  return status_;
}

uint64_t TraceWriter::bytesWritten() const {
  std::lock_guard lock(mutex_);
  return fileOffset_;
}

uint64_t TraceWriter::chunksWritten() const {
  std::lock_guard lock(mutex_);
  return chunks_.size();
}

Status TraceWriter::flushIfDue() {
  if (closed_) return status();
  const bool full = !options_.flushFromAppend && count_ >= options_.maxEventsPerChunk;
  if (full || std::chrono::steady_clock::now() - lastFlush_ >= options_.flushInterval) handOver();
  return status();
}

Status TraceWriter::flush() {
  if (closed_) return status();
  handOver();
  // Jobs leave the queue once written: an empty queue is an idle thread.
  std::unique_lock lock(mutex_);
  done_.wait(lock, [this] { return jobs_.empty(); });
  return status_;
}

Status TraceWriter::addSnapshot(const Snapshot& snapshot) {
  TTVM_ASSERT(!closed_, "addSnapshot after close");
  TTVM_TRY(flush());
  TTVM_ASSERT(snapshot.step >= lastStep_, "snapshot at step ", snapshot.step,
              " is before the last event (step ", lastStep_, ")");
  // The writing thread is idle (flush waited): this thread owns the file.
  std::vector<uint8_t> out;
  Status s = appendMachineStateFrames(kTagSnap, snapshot.step, snapshot.cpu, snapshot.ram,
                                      snapshot.deviceState, traceId_, snapshots_.size() + 1,
                                      options_.lz4Acceleration, out);
  if (!s.ok())
    return makeError(path_ + ": snapshot at step " + std::to_string(snapshot.step) + ": " +
                     s.error().message);
  s = writeAll(fd_, path_, out);
  std::lock_guard lock(mutex_);
  if (!s.ok()) {
    fail(s);
    return status_;
  }
  snapshots_.push_back({fileOffset_, snapshot.step});
  fileOffset_ += out.size();
  lastStep_ = snapshot.step;
  return {};
}

Status TraceWriter::close(const TraceEnd& end) {
  TTVM_ASSERT(!closed_, "TraceWriter::close called twice");
  if (thread_.joinable() && std::this_thread::get_id() == thread_.get_id()) {
    // A crash handler running on the writing thread itself (a fault while
    // encoding): it cannot wait for itself. The file keeps what was written,
    // a readable prefix that `ttvm recover` completes.
    return makeError(path_ +
                     ": closed from the trace writer's own thread; the file is left "
                     "without its footer");
  }
  Status s = flush();
  stopThread();
  // The writing thread is gone: this thread owns everything.
  if (s.ok()) {
    std::vector<uint8_t> out;
    const uint64_t footerOffset = fileOffset_;
    appendFooterFrame(kPreambleBytes, initOffset_, chunks_, snapshots_, end, traceId_, out);
    const size_t at = out.size();
    out.resize(at + kTrailerBytes);
    encodeTrailer(footerOffset, out.data() + at);
    s = writeAll(fd_, path_, out);
    if (s.ok()) fileOffset_ += out.size();
  }
  if (::close(fd_) != 0 && s.ok()) s = makeError(path_ + ": close failed: " + std::strerror(errno));
  fd_ = -1;
  closed_ = true;
  if (!s.ok()) fail(s);
  return status_;
}

}  // namespace ttvm
