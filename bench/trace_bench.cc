// trace_bench: throughput and size of the trace format (issue 2 targets).
//   writer:  events/s and bytes/event for a repetitive I/O mix (>= 10 M/s, <= 3 B/event)
//   codec:   LZ4 of the columnar capnp message vs capnp's packed encoding of it
//   reader:  open time of a 1 GiB trace by its index (<= 50 ms) and sequential
//            read of decompressed events (>= 1 GB/s)
// Usage: trace_bench [--events N] [--big-gib G] [--dir DIR]
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "ttvm/formats/chunk_codec.h"
#include "ttvm/formats/trace_reader.h"
#include "ttvm/formats/trace_writer.h"

namespace {

using namespace ttvm;
using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// CPU seconds of this thread (user + system): the machine is shared, and
// wall time would charge other processes' time to the benchmark.
double threadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// A guest that logs over the serial port (LSR poll + THR write per byte),
// takes a PIT/APIC timer interrupt every ~20k steps (ack, EOI, PIT latch and
// read), reads the TSC now and then, and has a state digest every 4096 events.
class IoMix {
 public:
  TraceEvent next() {
    if (pending_ < queue_.size()) return queue_[pending_++];
    queue_.clear();
    pending_ = 0;
    refill();
    return queue_[pending_++];
  }

 private:
  void push(TraceEvent e) {
    if (++count_ % 4096 == 0) {
      // stateDigest of a changing state: incompressible 8 bytes.
      queue_.push_back(TraceEvent::stateDigest(step_, rng_()));
    }
    queue_.push_back(e);
  }
  void refill() {
    if (step_ >= nextTimer_) {
      nextTimer_ = step_ + 20000 + rng_() % 64;
      push(TraceEvent::interrupt(step_ += 1, 0x20));
      push(TraceEvent::mmioRead(step_ += 12, 0xFEE00020, 4, 0));  // APIC ID
      push(TraceEvent::portOut(step_ += 9, 0x43, 1, 0));          // PIT latch
      pit_ -= 1193;
      push(TraceEvent::portIn(step_ += 2, 0x40, 1, pit_ & 0xFF));
      push(TraceEvent::portIn(step_ += 2, 0x40, 1, (pit_ >> 8) & 0xFF));
      push(TraceEvent::rdtsc(step_ += 7, tsc()));
      push(TraceEvent::mmioWrite(step_ += 15, 0xFEE000B0, 4, 0));  // EOI
      ++ticks_;
      return;
    }
    // One log line per refill: "[  tick] worker N: processed M items\n".
    char line[96];
    const int n =
        std::snprintf(line, sizeof line, "[%8" PRIu64 "] worker %u: processed %u items\n", ticks_,
                      static_cast<unsigned>(line_ % 4), static_cast<unsigned>(line_ * 7 % 1000));
    ++line_;
    step_ += 150;  // formatting the line
    for (int i = 0; i < n; ++i) {
      push(TraceEvent::portIn(step_ += 6, 0x3FD, 1, 0x60));  // LSR: THR empty
      push(TraceEvent::portOut(step_ += 4, 0x3F8, 1, static_cast<uint8_t>(line[i])));
    }
    if (line_ % 8 == 0) push(TraceEvent::rdtsc(step_ += 3, tsc()));
  }
  uint64_t tsc() { return step_ * 3 + (rng_() & 15); }

  std::mt19937_64 rng_{42};
  std::vector<TraceEvent> queue_;
  size_t pending_ = 0;
  uint64_t step_ = 0, nextTimer_ = 20000, ticks_ = 0, count_ = 0, line_ = 0;
  uint32_t pit_ = 0xFFFF;
};

TraceHeader benchHeader() {
  TraceHeader h;
  h.ttvmVersion = "bench";
  h.machine.ramBytes = 64 << 20;
  h.cpuModel.name = "bench";
  return h;
}

struct ReadResult {
  double seconds = 0;  // CPU seconds
  double wall = 0;
  uint64_t events = 0;
  uint64_t rawBytes = 0;
  uint64_t checksum = 0;
};

ReadResult readSequentially(const TraceReader& r) {
  ReadResult out;
  auto t = Clock::now();
  const double c0 = threadCpuSeconds();
  auto cur = r.cursor();
  TraceEvent e;
  while (cur.next(e)) {
    out.checksum += e.value ^ e.step;
    ++out.events;
  }
  out.seconds = threadCpuSeconds() - c0;
  out.wall = secondsSince(t);
  if (!cur.status().ok()) {
    std::fprintf(stderr, "read failed: %s\n", cur.status().error().message.c_str());
    std::exit(1);
  }
  out.rawBytes = r.rawEventBytes();
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t events = 50'000'000;
  double bigGib = 1.0;
  std::string dir = "/tmp";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--events") && i + 1 < argc)
      events = std::strtoull(argv[++i], nullptr, 10);
    else if (!std::strcmp(argv[i], "--big-gib") && i + 1 < argc)
      bigGib = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--dir") && i + 1 < argc)
      dir = argv[++i];
    else {
      std::fprintf(stderr, "usage: trace_bench [--events N] [--big-gib G] [--dir DIR]\n");
      return 2;
    }
  }
  const std::string mixPath = dir + "/ttvm-trace-bench-mix.ttvm";
  const std::string bigPath = dir + "/ttvm-trace-bench-1g.ttvm";

  // --- Writer: the repetitive I/O mix.
  std::vector<TraceEvent> mix;
  {
    IoMix gen;
    mix.reserve(events);
    for (uint64_t i = 0; i < events; ++i) mix.push_back(gen.next());
  }
  {
    auto w = TraceWriter::create(mixPath, benchHeader(), InitialState{});
    if (!w.ok()) {
      std::fprintf(stderr, "%s\n", w.error().message.c_str());
      return 1;
    }
    auto t = Clock::now();
    const double c0 = threadCpuSeconds();
    for (const TraceEvent& e : mix) (*w)->append(e);
    TraceEnd end;  // the footer may not end before the last event
    end.steps = mix.empty() ? 0 : mix.back().step;
    Status s = (*w)->close(end);
    const double sec = threadCpuSeconds() - c0;
    const double wall = secondsSince(t);
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.error().message.c_str());
      return 1;
    }
    auto r = TraceReader::open(mixPath);
    if (!r.ok()) return 1;
    std::printf("writer (I/O mix)   %" PRIu64
                " events in %.3f CPU s (%.3f s wall): %.1f M events/s\n",
                events, sec, wall, events / sec / 1e6);
    std::printf("                   %.3f bytes/event compressed (file %" PRIu64
                " bytes), %.2f bytes/event raw, %zu chunks\n",
                static_cast<double>(r->compressedEventBytes()) / events, r->fileBytes(),
                static_cast<double>(r->rawEventBytes()) / events, r->chunkCount());

    // --- LZ4 vs capnp packed, on the same chunk messages.
    EventChunkCodec codec;
    std::vector<uint8_t> raw;
    uint64_t rawTotal = 0, packedTotal = 0;
    std::vector<TraceEvent> chunk;
    for (size_t i = 0; i < r->chunkCount(); ++i) {
      if (!r->readChunkInto(i, chunk).ok()) return 1;
      codec.encode(chunk, raw);
      rawTotal += raw.size();
      auto packed = EventChunkCodec::packedSize(raw);
      if (!packed.ok()) return 1;
      packedTotal += *packed;
    }
    const uint64_t lz4Total = r->compressedEventBytes();
    std::printf(
        "codec (I/O mix)    raw capnp %.2f B/event, capnp packed %.2f B/event, LZ4 %.3f "
        "B/event: LZ4 is %.1fx smaller than packed\n",
        static_cast<double>(rawTotal) / events, static_cast<double>(packedTotal) / events,
        static_cast<double>(lz4Total) / events, static_cast<double>(packedTotal) / lz4Total);

    ReadResult rr = readSequentially(*r);
    std::printf(
        "reader (I/O mix)   %.3f CPU s (%.3f s wall): %.1f M events/s, %.2f GB/s of decompressed "
        "chunk bytes, %.2f GB/s as TraceEvent structs (checksum %" PRIx64 ")\n",
        rr.seconds, rr.wall, rr.events / rr.seconds / 1e6, rr.rawBytes / rr.seconds / 1e9,
        rr.events * sizeof(TraceEvent) / rr.seconds / 1e9, rr.checksum);
  }
  std::remove(mixPath.c_str());
  mix.clear();
  mix.shrink_to_fit();

  // --- A 1 GiB trace of poorly compressible events (random values), for open and read.
  if (bigGib > 0) {
    std::mt19937_64 rng(1);
    std::vector<TraceEvent> block;
    uint64_t step = 0;
    for (int i = 0; i < 65536; ++i) {
      step += 1 + rng() % 50;
      block.push_back(i % 2 ? TraceEvent::mmioRead(step, 0xFEB00000 + (rng() & 0xFFF8), 8, rng())
                            : TraceEvent::portIn(step, static_cast<uint16_t>(rng()), 4,
                                                 static_cast<uint32_t>(rng())));
    }
    const uint64_t span = step + 1;
    auto w = TraceWriter::create(bigPath, benchHeader(), InitialState{});
    if (!w.ok()) return 1;
    const uint64_t target = static_cast<uint64_t>(bigGib * (1ull << 30));
    auto t = Clock::now();
    const double c0 = threadCpuSeconds();
    uint64_t written = 0;
    TraceEnd end;  // at the last event: the footer may not end before it
    for (uint64_t round = 0; (*w)->bytesWritten() < target; ++round) {
      for (TraceEvent e : block) {
        e.step += round * span;
        (*w)->append(e);
        end.steps = e.step;
      }
      written += block.size();
    }
    if (!(*w)->close(end).ok()) return 1;
    const double wsec = threadCpuSeconds() - c0;
    const double wwall = secondsSince(t);
    w->reset();

    // Open with a warm page cache, then after evicting this file's pages.
    auto t0 = Clock::now();
    auto r = TraceReader::open(bigPath);
    const double warm = secondsSince(t0);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.error().message.c_str());
      return 1;
    }
    int fd = ::open(bigPath.c_str(), O_RDONLY);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
    t0 = Clock::now();
    auto rc = TraceReader::open(bigPath);
    const double cold = secondsSince(t0);
    std::printf("big trace          %.2f GiB, %" PRIu64
                " events, %zu chunks, written in %.1f CPU s (%.1f s wall; "
                "%.1f M events/s, %.1f B/event)\n",
                r->fileBytes() / double(1ull << 30), written, r->chunkCount(), wsec, wwall,
                written / wsec / 1e6, double(r->fileBytes()) / written);
    std::printf("open by index      %.2f ms (page cache warm), %.2f ms (file evicted from cache)\n",
                warm * 1e3, cold * 1e3);
    for (const char* when : {"cold", "warm"}) {
      // "cold": the file's pages were just evicted, so this includes disk reads.
      ReadResult rr = readSequentially(*rc);
      std::printf(
          "reader (big, %s) %.2f CPU s (%.2f s wall): %.1f M events/s, %.2f GB/s of decompressed "
          "chunk bytes, %.2f GB/s as TraceEvent structs\n",
          when, rr.seconds, rr.wall, rr.events / rr.seconds / 1e6, rr.rawBytes / rr.seconds / 1e9,
          rr.events * sizeof(TraceEvent) / rr.seconds / 1e9);
    }
    std::remove(bigPath.c_str());
  }
  return 0;
}
