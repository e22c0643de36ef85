// Round trips through TraceWriter and TraceReader: every event kind, every
// CpuState field, headers, RAM pages, snapshots, seeded random streams,
// random access by step, and the flush-interval guarantee.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>

#include <algorithm>
#include <cstdio>
#include <set>
#include <thread>

#include "crc32c.h"
#include "trace_samples.h"
#include "ttvm/formats/chunk_codec.h"
#include "ttvm/formats/trace_reader.h"
#include "ttvm/formats/trace_writer.h"

namespace ttvm {
namespace {

using testing::tempPath;

struct Written {
  std::string path;
  TraceHeader header;
  InitialState initial;
  std::vector<TraceEvent> events;
  TraceEnd end;
  ~Written() { std::remove(path.c_str()); }
};

std::vector<TraceEvent> readAll(const TraceReader& r) {
  std::vector<TraceEvent> all;
  for (size_t i = 0; i < r.chunkCount(); ++i) {
    auto c = r.readChunk(i);
    EXPECT_TRUE(c.ok()) << c.error().message;
    if (!c.ok()) break;
    all.insert(all.end(), c->begin(), c->end());
  }
  return all;
}

// An end of run at `steps`, the last recorded step (what a footer of a run
// without an EndOfRun event may claim, see FooterEnd.*).
TraceEnd endAt(uint64_t steps) {
  TraceEnd end;
  end.steps = steps;
  return end;
}

void writeTrace(Written& w, const TraceWriter::Options& options = {}) {
  // A footer must agree with the events: it ends at a final EndOfRun's step,
  // and otherwise no earlier than the last event and at most one step later
  // (the reader refuses other footers: HostileIndex.FooterClaimingMoreSteps…,
  // FooterEnd.*).
  if (!w.events.empty() &&
      (w.events.back().kind == EventKind::kEndOfRun || w.end.steps < w.events.back().step ||
       w.end.steps > w.events.back().step + 1))
    w.end.steps = w.events.back().step;
  auto writer = TraceWriter::create(w.path, w.header, w.initial, options);
  ASSERT_TRUE(writer.ok()) << writer.error().message;
  for (const TraceEvent& e : w.events) (*writer)->append(e);
  Status s = (*writer)->close(w.end);
  ASSERT_TRUE(s.ok()) << s.error().message;
}

TEST(TraceWriterLock, ASecondWriterOfThePathFailsAndLeavesTheFirstTraceWhole) {
  const std::string path = tempPath("locked.ttvm");
  std::mt19937_64 rng(7);
  InitialState init;
  init.cpu = testing::randomCpuState(rng);
  init.cpu.steps = 0;
  auto first = TraceWriter::create(path, testing::sampleHeader(), init);
  ASSERT_TRUE(first.ok()) << first.error().message;
  const std::vector<TraceEvent> events = testing::randomEvents(rng, 5000);
  for (const TraceEvent& e : events) (*first)->append(e);
  ASSERT_TRUE((*first)->flush().ok());
  auto second = TraceWriter::create(path, testing::sampleHeader(), init);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find("another ttvm is writing"), std::string::npos)
      << second.error().message;
  ASSERT_TRUE((*first)->close(testing::sampleEnd(rng, events.back().step)).ok());
  auto r = TraceReader::open(path);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->recovered()) << r->recoveryNote();
  EXPECT_EQ(r->eventCount(), events.size());
  // Once closed, the path can be written again (and is truncated).
  auto third = TraceWriter::create(path, testing::sampleHeader(), init);
  ASSERT_TRUE(third.ok()) << third.error().message;
  ASSERT_TRUE((*third)->close(testing::sampleEnd(rng, 0)).ok());
  auto again = TraceReader::open(path);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again->eventCount(), 0u);
  std::remove(path.c_str());
}

TEST(TraceRoundTrip, EveryEventKind) {
  Written w{tempPath("kinds.ttvm")};
  w.header = testing::sampleHeader();
  w.events = testing::everyKindEvents(0);
  std::mt19937_64 rng(1);
  // The footer agrees with the events, which end with EndOfRun.
  w.end = testing::sampleEnd(rng, w.events.back().step);
  // Every kind is present.
  std::set<EventKind> kinds;
  for (const TraceEvent& e : w.events) kinds.insert(e.kind);
  EXPECT_EQ(kinds.size(), 15u);
  writeTrace(w);
  auto r = TraceReader::open(w.path);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->recovered());
  EXPECT_EQ(readAll(*r), w.events);
  ASSERT_TRUE(r->end().has_value());
  EXPECT_EQ(*r->end(), w.end);
  EXPECT_EQ(r->eventCount(), w.events.size());
}

TEST(TraceRoundTrip, StopPointEvents) {
  // 1.4: a KVM trace's stop points, with the extreme values of each column.
  Written w{tempPath("stops.ttvm")};
  w.header = testing::sampleHeader();
  w.header.backend = Backend::kKvm;
  w.events = {TraceEvent::dirtyPages(7, 0, 1),
              TraceEvent::dirtyPages(7, 0xFFFFFFFFFFFFFull, 0xFFFFFFFF),
              TraceEvent::stopPoint(7, 0xFFFFFFFFFFFFFFFFull, 0, 0),
              TraceEvent::interrupt(7, 0x20),
              TraceEvent::stopPoint(8, 0x1000, 0xFFFFFFFFFFFFFFFFull, 0xFFFFFFFF),
              TraceEvent::portOut(9, 0x80, 1, 1),
              TraceEvent::endOfRun(9)};
  std::mt19937_64 rng(2);
  w.end = testing::sampleEnd(rng, w.events.back().step);
  writeTrace(w);
  auto r = TraceReader::open(w.path);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(readAll(*r), w.events);
  EXPECT_EQ(describeEvent(w.events[1]), "step 7 DirtyPages pages=0xfffffffffffff+4294967295");
  EXPECT_EQ(describeEvent(w.events[4]),
            "step 8 StopPoint rip=0x1000 fingerprint=0xffffffffffffffff key=0xffffffff");
  // A run of no page is not an event.
  EXPECT_NE(checkEvent(TraceEvent::dirtyPages(1, 5, 0)), "");
  EXPECT_EQ(checkEvent(TraceEvent::dirtyPages(1, 5, 1)), "");
}

TEST(TraceRoundTrip, EveryCpuStateFieldAndHeader) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::mt19937_64 rng(seed);
    Written w{tempPath("cpu.ttvm")};
    w.header = testing::sampleHeader();
    w.header.backend = seed % 2 ? Backend::kKvm : Backend::kEmulator;
    w.header.cpuModel.pushSegmentZeroExtends = seed % 3 == 0;
    w.header.cpuModel.sysretSkipsRipCheckAndSsCache = seed % 5 < 2;
    if (seed % 2) w.header.emulatedPages = {0, 7, 8 + seed};
    w.initial.cpu = testing::randomCpuState(rng);
    w.initial.ram = testing::sampleRam(rng, seed * 40);  // up to 760 pages: several PAGE frames
    w.initial.deviceState.assign(seed * 3, static_cast<uint8_t>(seed));
    w.events = testing::randomEvents(rng, 10);
    w.end = testing::sampleEnd(rng, 5);
    w.end.reason = static_cast<EndReason>(seed % 10);
    writeTrace(w);
    auto r = TraceReader::open(w.path);
    ASSERT_TRUE(r.ok()) << r.error().message;
    // The writer drew the trace's identity; everything else round-trips.
    EXPECT_FALSE(r->header().traceId.empty());
    TraceHeader expected = w.header;
    expected.traceId = r->header().traceId;
    EXPECT_EQ(r->header(), expected);
    EXPECT_EQ(r->header().formatMajor, kTraceFormatMajor);
    EXPECT_EQ(r->header().formatMinor, kTraceFormatMinor);
    auto init = r->initialState();
    ASSERT_TRUE(init.ok()) << init.error().message;
    EXPECT_EQ(init->cpu, w.initial.cpu);
    EXPECT_EQ(init->ram, w.initial.ram);
    EXPECT_EQ(init->deviceState, w.initial.deviceState);
    EXPECT_EQ(*r->end(), w.end);
  }
}

// The emulated pages of a KVM trace are looked up as a sorted set of RAM
// pages: a header whose list is not one is refused, naming the page.
TEST(TraceRoundTrip, EmulatedPagesOutOfOrderOrBeyondRamAreRefused) {
  std::mt19937_64 rng(3);
  for (int bad = 0; bad < 2; ++bad) {
    Written w{tempPath("emulated.ttvm")};
    w.header = testing::sampleHeader();
    w.header.backend = Backend::kKvm;
    const uint64_t pages = w.header.machine.ramBytes / kPageSize;
    w.header.emulatedPages =
        bad == 0 ? std::vector<uint64_t>{4, 9, 9} : std::vector<uint64_t>{4, pages};
    w.initial.cpu = testing::randomCpuState(rng);
    w.end = testing::sampleEnd(rng, 0);
    writeTrace(w);
    auto r = TraceReader::open(w.path);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(
        r.error().message.find(
            bad == 0 ? "emulated pages are not in increasing order (page 9 after 9)"
                     : "emulated page " + std::to_string(pages) + " lies beyond the machine's RAM"),
        std::string::npos)
        << r.error().message;
  }
}

TEST(TraceRoundTrip, CpuStateFieldsAreAllDistinguished) {
  // Changing any single 64-bit word of a CpuState must survive the trip;
  // guards against a field that is written but read back from elsewhere.
  std::mt19937_64 rng(5);
  CpuState base = testing::randomCpuState(rng);
  for (int variant = 0; variant < 4; ++variant) {
    Written w{tempPath("cpu2.ttvm")};
    w.initial.cpu = base;
    w.end.finalCpu = testing::randomCpuState(rng);
    w.initial.cpu.rip ^= uint64_t{1} << variant;
    w.initial.cpu.fpu.xmm[15].q[1] ^= uint64_t{1} << variant;
    w.initial.cpu.seg[5].attributes ^= 1u << variant;
    writeTrace(w);
    auto r = TraceReader::open(w.path);
    ASSERT_TRUE(r.ok());
    auto init = r->initialState();
    ASSERT_TRUE(init.ok());
    EXPECT_EQ(init->cpu, w.initial.cpu);
    EXPECT_EQ(r->end()->finalCpu, w.end.finalCpu);
  }
}

TEST(TraceRoundTrip, SeededRandomStreams) {
  for (uint64_t seed = 100; seed < 140; ++seed) {
    std::mt19937_64 rng(seed);
    Written w{tempPath("random.ttvm")};
    w.events = testing::randomEvents(rng, rng() % 5000);
    TraceWriter::Options options;
    options.maxEventsPerChunk = 1 + static_cast<uint32_t>(rng() % 700);
    // Every way of handing chunks over gives the same stream.
    options.background = seed % 2;
    options.flushFromAppend = seed % 3 != 0;
    options.maxChunksInFlight = 1 + static_cast<uint32_t>(seed % 4);
    writeTrace(w, options);
    auto r = TraceReader::open(w.path);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(readAll(*r), w.events) << "seed " << seed;
    for (const ChunkInfo& c : r->chunks())
      EXPECT_LE(c.eventCount, options.maxEventsPerChunk) << "seed " << seed;
    // The cursor sees the same stream.
    std::vector<TraceEvent> viaCursor;
    auto cur = r->cursor();
    TraceEvent e;
    while (cur.next(e)) viaCursor.push_back(e);
    EXPECT_TRUE(cur.status().ok());
    EXPECT_EQ(viaCursor, w.events) << "seed " << seed;
  }
}

TEST(TraceRoundTrip, RandomAccessByStep) {
  std::mt19937_64 rng(77);
  Written w{tempPath("seek.ttvm")};
  w.events = testing::randomEvents(rng, 3000);
  TraceWriter::Options options;
  options.maxEventsPerChunk = 97;
  writeTrace(w, options);
  auto r = TraceReader::open(w.path);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->chunkCount(), (3000 + 96) / 97);
  for (int k = 0; k < 300; ++k) {
    const uint64_t target =
        w.events.front().step + rng() % (w.events.back().step - w.events.front().step + 10);
    // Expected: the first event with step >= target.
    auto it = std::lower_bound(w.events.begin(), w.events.end(), target,
                               [](const TraceEvent& e, uint64_t s) { return e.step < s; });
    auto cur = r->cursor();
    ASSERT_TRUE(cur.seek(target).ok());
    TraceEvent e;
    if (it == w.events.end()) {
      EXPECT_FALSE(cur.next(e));
      EXPECT_FALSE(r->chunkForStep(target).has_value());
      continue;
    }
    ASSERT_TRUE(cur.next(e));
    EXPECT_EQ(e, *it);
    auto c = r->chunkForStep(target);
    ASSERT_TRUE(c.has_value());
    EXPECT_GE(r->chunks()[*c].lastStep, target);
    if (*c > 0) {
      EXPECT_LT(r->chunks()[*c - 1].lastStep, target);
    }
  }
}

TEST(TraceRoundTrip, Snapshots) {
  std::mt19937_64 rng(9);
  const std::string path = tempPath("snap.ttvm");
  std::vector<Snapshot> snaps;
  {
    auto w = TraceWriter::create(path, testing::sampleHeader(), InitialState{});
    ASSERT_TRUE(w.ok());
    uint64_t step = 0;
    for (int i = 0; i < 5; ++i) {
      for (int k = 0; k < 100; ++k) {
        step += 3;
        (*w)->append(TraceEvent::rdtsc(step, step * 10));
      }
      Snapshot s;
      s.step = step;
      s.cpu = testing::randomCpuState(rng);
      s.ram = testing::sampleRam(rng, static_cast<size_t>(i * 200));
      s.deviceState = {static_cast<uint8_t>(i)};
      ASSERT_TRUE((*w)->addSnapshot(s).ok());
      snaps.push_back(s);
    }
    ASSERT_TRUE((*w)->close(endAt(step)).ok());
  }
  auto r = TraceReader::open(path);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->snapshots().size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    auto s = r->loadSnapshot(i);
    ASSERT_TRUE(s.ok()) << s.error().message;
    EXPECT_EQ(*s, snaps[i]);
    EXPECT_EQ(r->snapshotBefore(snaps[i].step), i);
    EXPECT_EQ(r->snapshotBefore(snaps[i].step + 1), i);
  }
  EXPECT_FALSE(r->snapshotBefore(snaps[0].step - 1).has_value());
  EXPECT_FALSE(r->loadSnapshot(5).ok());
  std::remove(path.c_str());
}

TEST(TraceRoundTrip, EmptyTrace) {
  Written w{tempPath("empty.ttvm")};
  writeTrace(w);
  auto r = TraceReader::open(w.path);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->chunkCount(), 0u);
  TraceEvent e;
  auto cur = r->cursor();
  EXPECT_FALSE(cur.next(e));
  EXPECT_TRUE(cur.status().ok());
  EXPECT_FALSE(r->chunkForStep(0).has_value());
}

TEST(TraceRoundTrip, FlushIntervalPutsEventsOnDiskWithoutClose) {
  const std::string path = tempPath("interval.ttvm");
  TraceWriter::Options options;
  options.flushInterval = std::chrono::milliseconds(20);
  options.background = false;  // chunksWritten() counts at once
  auto w = TraceWriter::create(path, TraceHeader{}, InitialState{}, options);
  ASSERT_TRUE(w.ok());
  (*w)->append(TraceEvent::hlt(1));
  EXPECT_TRUE((*w)->flushIfDue().ok());
  EXPECT_EQ((*w)->chunksWritten(), 0u);  // not due yet
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_TRUE((*w)->flushIfDue().ok());
  EXPECT_EQ((*w)->chunksWritten(), 1u);
  // append() itself checks the clock every 1024 events.
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  for (int i = 0; i < 2048; ++i) (*w)->append(TraceEvent::hlt(2 + i));
  EXPECT_EQ((*w)->chunksWritten(), 2u);
  // A reader sees the flushed events while the writer still runs.
  auto r = TraceReader::open(path);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->recovered());
  // 1 event from the first flush + the 1024 buffered when the 1025th append read the clock.
  EXPECT_EQ(r->eventCount(), 1025u);
  EXPECT_TRUE((*w)->close(TraceEnd{}).ok());
  std::remove(path.c_str());
}

// With flushFromAppend off the owner decides: append() never writes, the
// buffer keeps every event since the last hand-over, and flushIfDue() hands
// a full buffer over as several chunks, written by the background thread.
TEST(TraceRoundTrip, OwnerDrivenHandOver) {
  const std::string path = tempPath("owner.ttvm");
  TraceWriter::Options options;
  options.maxEventsPerChunk = 100;
  options.flushFromAppend = false;
  options.flushInterval = std::chrono::hours(1);
  auto w = TraceWriter::create(path, TraceHeader{}, InitialState{}, options);
  ASSERT_TRUE(w.ok());
  for (int i = 0; i < 99; ++i) (*w)->append(TraceEvent::hlt(i));
  EXPECT_TRUE((*w)->flushIfDue().ok());  // not full, not due
  EXPECT_EQ((*w)->eventsHandedOver(), 0u);
  for (int i = 99; i < 250; ++i) (*w)->append(TraceEvent::hlt(i));
  ASSERT_EQ((*w)->buffered().size(), 250u);
  EXPECT_EQ((*w)->buffered()[249].step, 249u);
  EXPECT_EQ((*w)->chunksWritten(), 0u);
  EXPECT_TRUE((*w)->flushIfDue().ok());
  EXPECT_EQ((*w)->eventsHandedOver(), 250u);
  EXPECT_TRUE((*w)->buffered().empty());
  EXPECT_EQ((*w)->eventsAppended(), 250u);
  EXPECT_TRUE((*w)->flush().ok());  // waits for the thread
  EXPECT_EQ((*w)->chunksWritten(), 3u);
  EXPECT_TRUE((*w)->close(endAt(249)).ok());
  auto r = TraceReader::open(path);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->chunkCount(), 3u);
  EXPECT_EQ(r->chunks()[0].eventCount, 100u);
  EXPECT_EQ(r->chunks()[2].eventCount, 50u);
  EXPECT_EQ(readAll(*r).size(), 250u);
  std::remove(path.c_str());
}

// A write error on the background thread (here: the file-size limit) is
// sticky and reaches the owner through ok(), status(), flush() and close().
TEST(TraceRoundTrip, BackgroundWriteErrorIsReported) {
  const std::string path = tempPath("efbig.ttvm");
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    signal(SIGXFSZ, SIG_IGN);
    rlimit lim{64 * 1024, 64 * 1024};
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0) _exit(10);
    TraceWriter::Options options;
    options.maxEventsPerChunk = 1000;
    auto w = TraceWriter::create(path, TraceHeader{}, InitialState{}, options);
    if (!w.ok()) _exit(11);
    std::mt19937_64 rng(5);
    std::vector<TraceEvent> events = testing::randomEvents(rng, 200000);
    for (const TraceEvent& e : events) (*w)->append(e);
    Status f = (*w)->flush();
    if (f.ok() || (*w)->ok()) _exit(12);
    if ((*w)->status().error().message.find(path) == std::string::npos) _exit(13);
    if ((*w)->bytesWritten() > 64 * 1024) _exit(14);
    Status c = (*w)->close(TraceEnd{});
    if (c.ok()) _exit(15);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  // What reached the disk is a readable prefix.
  auto r = TraceReader::open(path);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->recovered());
  EXPECT_GT(r->eventCount(), 0u);
  std::remove(path.c_str());
}

// The writer's thread blocks every signal, so that Ctrl-C, SIGTERM and a
// SIGSEGV sent by kill reach the recording thread's handlers (which close
// the writer: on its own thread they could not wait for it).
TEST(TraceRoundTrip, WriterThreadBlocksSignals) {
  const std::string path = tempPath("signals.ttvm");
  auto w = TraceWriter::create(path, TraceHeader{}, InitialState{});
  ASSERT_TRUE(w.ok());
  std::string blocked;
  int writers = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (name != "ttvm-writer") continue;
    ++writers;
    std::ifstream status(task.path() / "status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind("SigBlk:", 0) == 0) blocked = line.substr(7);
  }
  EXPECT_EQ(writers, 1);
  blocked.erase(0, blocked.find_first_not_of(" \t"));
  // SIGINT (2), SIGSEGV (11) and SIGTERM (15) at least; all but the two
  // that cannot be blocked (glibc also keeps its own two real-time ones).
  const uint64_t mask = std::stoull(blocked, nullptr, 16);
  for (int sig : {SIGINT, SIGSEGV, SIGTERM, SIGUSR1, SIGALRM})
    EXPECT_TRUE(mask & (uint64_t{1} << (sig - 1))) << "signal " << sig << " mask " << blocked;
  EXPECT_TRUE((*w)->close(TraceEnd{}).ok());
  std::remove(path.c_str());
}

TEST(TraceRoundTrip, ChunkCodecRejectsMalformedColumns) {
  EventChunkCodec codec;
  std::vector<uint8_t> raw;
  std::vector<TraceEvent> events = testing::everyKindEvents(0);
  codec.encode(events, raw);
  std::vector<TraceEvent> out;
  ASSERT_TRUE(EventChunkCodec::decode(raw, "x", out).ok());
  EXPECT_EQ(out, events);
  // Dropping the last event's kind byte is caught by the count check.
  EXPECT_FALSE(
      EventChunkCodec::decode(std::span<const uint8_t>(raw).first(raw.size() - 8), "x", out).ok());
  auto packed = EventChunkCodec::packedSize(raw);
  ASSERT_TRUE(packed.ok());
  EXPECT_GT(*packed, 0u);
  EXPECT_LE(*packed, raw.size());
}

TEST(TraceRoundTrip, CheckEventRejectsWhatWouldNotRoundTrip) {
  EXPECT_EQ(checkEvent(TraceEvent::portIn(0, 0x60, 1, 0xFF)), "");
  EXPECT_NE(checkEvent(TraceEvent::portIn(0, 0x60, 1, 0x100)), "");
  EXPECT_NE(checkEvent(TraceEvent::portIn(0, 0x60, 8, 1)), "");
  TraceEvent e = TraceEvent::hlt(0);
  e.value = 1;
  EXPECT_NE(checkEvent(e), "");
  EXPECT_NE(checkEvent(TraceEvent::interrupt(0, 1) /*ok*/), "x");
  TraceEvent bad = TraceEvent::nmi(0);
  bad.kind = static_cast<EventKind>(0);
  EXPECT_NE(checkEvent(bad), "");
}

TEST(Crc32c, KnownValueAndHardwareMatchesTable) {
  const char* s = "123456789";
  EXPECT_EQ(formats::crc32c(0, s, 9), 0xE3069283u);
  EXPECT_EQ(formats::crc32cPortable(0, s, 9), 0xE3069283u);
  std::mt19937_64 rng(3);
  std::vector<uint8_t> data(10000);
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  for (size_t n : {0u, 1u, 7u, 8u, 9u, 63u, 1000u, 10000u}) {
    EXPECT_EQ(formats::crc32c(0, data.data(), n), formats::crc32cPortable(0, data.data(), n));
    EXPECT_EQ(
        formats::crc32c(formats::crc32c(0, data.data(), n / 2), data.data() + n / 2, n - n / 2),
        formats::crc32c(0, data.data(), n));
  }
}

TEST(RamPages, FromFlatAndApply) {
  std::vector<uint8_t> ram(20 * kPageSize, 0);
  ram[3 * kPageSize + 5] = 1;
  ram[19 * kPageSize + 4095] = 2;
  RamPages p = RamPages::fromFlat(ram);
  EXPECT_EQ(p.numbers, (std::vector<uint64_t>{3, 19}));
  std::vector<uint8_t> back(20 * kPageSize, 0xAA);
  ASSERT_TRUE(p.applyTo(back));
  EXPECT_EQ(back, ram);
  std::vector<uint8_t> small(10 * kPageSize);
  std::string err;
  EXPECT_FALSE(p.applyTo(small, &err));
  EXPECT_NE(err.find("page 19"), std::string::npos) << err;
}

}  // namespace
}  // namespace ttvm

namespace ttvm {
namespace {

TEST(TraceReaderThreads, ConstMethodsFromSeveralThreads) {
  std::mt19937_64 rng(31);
  const std::string path = testing::tempPath("threads.ttvm");
  std::vector<TraceEvent> events = testing::randomEvents(rng, 20000);
  {
    TraceWriter::Options options;
    options.maxEventsPerChunk = 500;
    auto w = TraceWriter::create(path, TraceHeader{}, InitialState{}, options);
    ASSERT_TRUE(w.ok());
    for (const TraceEvent& e : events) (*w)->append(e);
    ASSERT_TRUE((*w)->close(endAt(events.back().step)).ok());
  }
  auto r = TraceReader::open(path);
  ASSERT_TRUE(r.ok());
  std::vector<std::vector<TraceEvent>> got(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < got.size(); ++t)
    threads.emplace_back([&, t] {
      // Each thread reads the chunks in a different order.
      std::vector<std::vector<TraceEvent>> byChunk(r->chunkCount());
      for (size_t k = 0; k < r->chunkCount(); ++k) {
        const size_t n = r->chunkCount();
        const size_t i = ((t % 2 ? n - 1 - k : k) + 7 * t) % n;
        auto c = r->readChunk(i);
        EXPECT_TRUE(c.ok());
        if (c.ok()) byChunk[i] = std::move(*c);
      }
      for (auto& c : byChunk) got[t].insert(got[t].end(), c.begin(), c.end());
    });
  for (auto& th : threads) th.join();
  for (const auto& g : got) EXPECT_EQ(g, events);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace ttvm
