// Sharing a trace (issue 16), end to end on real recordings: slices cut at
// random points replay exactly as their source does over their range (CPU,
// devices and RAM compared every 10^4 steps), the slice commands keep the
// source's step numbers, and a trace replays in an empty directory without
// the guest it was recorded from.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <string>

#include "scripted_trace_support.h"
#include "slice_compare_support.h"
#include "ttvm/formats/trace_reader.h"
#include "ttvm/replayer/replay_session.h"
#include "ttvm/replayer/slicer.h"

namespace ttvm {
namespace {

namespace fs = std::filesystem;

using testing::CommandRun;
using testing::expectReplaysAsSource;

CommandRun run(const std::string& cmd) {
  return testing::runCommand(cmd);
}

std::string demoElf() {
  return std::string(TTVM_BUILD_DIR) + "/guests/demo/demo.elf";
}

std::string record(const std::string& guest, const std::string& trace) {
  CommandRun r = run(std::string(TTVM_BIN) + " record --start-clock 1700000000 --timeout 120 -o " +
                     trace + " " + guest + " > /dev/null");
  EXPECT_TRUE(fs::exists(trace)) << guest << ": " << r.output;
  return trace;
}

const std::string& demoTrace() {
  static const std::string t = record(demoElf(), testing::tempTracePath("demo"));
  return t;
}

// The demo recorded with a stored snapshot every 10^6 steps.
const std::string& snapshotTrace() {
  static const std::string t = [] {
    const std::string path = testing::tempTracePath("snapshots");
    CommandRun r = run(std::string(TTVM_BIN) +
                       " record --backend emu --start-clock 1700000000 --timeout 120 "
                       "--snapshot-every 1000000 -o " +
                       path + " " + demoElf() + " > /dev/null");
    EXPECT_TRUE(fs::exists(path)) << r.output;
    return path;
  }();
  return t;
}

TEST(SliceE2E, RandomCutsReplayIdenticallyOverTheirRange) {
  ASSERT_TRUE(fs::exists(demoElf())) << "build the ttvm_demo_guest target first";
  auto source = TraceReader::open(demoTrace());
  ASSERT_TRUE(source.ok()) << source.error().message;
  ASSERT_TRUE(source->end().has_value());
  const uint64_t end = source->end()->steps;
  ASSERT_GT(end, 5'000'000u);
  const uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  // Two cuts inside the run, one to its end (the crash), one from step 0;
  // each at most 1.5 M steps long so that the comparison stays quick.
  for (int k = 0; k < 4; ++k) {
    const uint64_t len = 200'000 + rng() % 1'300'000;
    uint64_t from = rng() % (end - len);
    if (k == 2) from = end - len;
    if (k == 3) from = 0;
    const uint64_t to = from + len;
    SCOPED_TRACE("seed " + std::to_string(seed) + ", steps " + std::to_string(from) + ".." +
                 std::to_string(to));
    SliceOptions o;
    o.from = from;
    if (to != end) o.to = to;
    const std::string out = testing::tempTracePath("slice");
    auto r = sliceTrace(*source, out, o);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_TRUE(r->checked);
    // The accessed pages were enough: no fallback to the full RAM.
    EXPECT_TRUE(r->partialRam) << r->fallbackReason;
    EXPECT_LT(r->pages, r->nonZeroPages);
    auto reader = TraceReader::open(out);
    ASSERT_TRUE(reader.ok()) << reader.error().message;
    ASSERT_TRUE(reader->header().slice.has_value());
    EXPECT_EQ(reader->header().slice->sourceTraceId, source->header().traceId);
    EXPECT_EQ(reader->header().slice->fromStep, from);
    EXPECT_EQ(reader->header().slice->toStep, to);
    EXPECT_EQ(reader->header().slice->sourceEndStep, end);
    EXPECT_NE(reader->header().traceId, source->header().traceId);
    if (to == end)
      EXPECT_EQ(*reader->end(), *source->end());  // the crash, as recorded
    else
      EXPECT_EQ(reader->end()->reason, EndReason::kMaxSteps);
    expectReplaysAsSource(demoTrace(), out, from, to);
    fs::remove(out);
  }
}

// slice replays on the fast engine by default and does not fall back on its
// own: a divergence there says so and names --engine reference, which
// slices on the reference. TTVM_TEST_FAST_ENGINE_FAULT (replay_session.h)
// makes the fast engine wrong after step 1000 (the digest at 65536 differs).
TEST(SliceE2E, AFastEngineDivergenceNamesTheReferenceEngine) {
  const std::string out = testing::tempTracePath("fault");
  const std::string cmd = "TTVM_TEST_FAST_ENGINE_FAULT=1000 " + std::string(TTVM_BIN) + " slice " +
                          demoTrace() + " -o " + out + " --from 200000 --to 300000";
  CommandRun fast = run(cmd);
  EXPECT_EQ(fast.status, 1) << fast.output;
  EXPECT_NE(fast.output.find("divergence at step 65536"), std::string::npos) << fast.output;
  EXPECT_NE(fast.output.find("on the fast engine: `--engine reference` slices on the reference "
                             "engine; if that succeeds, this divergence is a bug in ttvm's fast "
                             "engine"),
            std::string::npos)
      << fast.output;
  CommandRun reference = run(cmd + " --engine reference");
  EXPECT_EQ(reference.status, 0) << reference.output;
  CommandRun v = run(std::string(TTVM_BIN) + " verify --engine reference " + out);
  EXPECT_EQ(v.status, 0) << v.output;
  fs::remove(out);
}

TEST(SliceE2E, CommandLineKeepsTheSourceStepNumbers) {
  auto source = TraceReader::open(demoTrace());
  ASSERT_TRUE(source.ok());
  const uint64_t end = source->end()->steps;
  const std::string out = testing::tempTracePath("last");
  const std::string ttvm = TTVM_BIN;
  CommandRun s = run(ttvm + " slice " + demoTrace() + " -o " + out + " --last 1000000");
  ASSERT_EQ(s.status, 0) << s.output;
  EXPECT_NE(s.output.find("replayed and checked against the source"), std::string::npos)
      << s.output;
  const std::string range = std::to_string(end - 1'000'000) + ".." + std::to_string(end);
  CommandRun v = run(ttvm + " verify " + out);
  EXPECT_EQ(v.status, 0) << v.output;
  EXPECT_NE(v.output.find("ok: 1000000 steps (" + range + " of the source)"), std::string::npos)
      << v.output;
  CommandRun info = run(ttvm + " info --json " + out);
  EXPECT_EQ(info.status, 0) << info.output;
  EXPECT_NE(info.output.find("\"fromStep\": " + std::to_string(end - 1'000'000)), std::string::npos)
      << info.output;
  // A position before the cut is outside the slice's history.
  CommandRun early = run(ttvm + " replay " + out + " --to 1000 --regs");
  EXPECT_EQ(early.status, 2) << early.output;
  CommandRun regs = run(ttvm + " replay " + out + " --to " + std::to_string(end - 5) + " --regs");
  CommandRun regsSrc =
      run(ttvm + " replay " + demoTrace() + " --to " + std::to_string(end - 5) + " --regs");
  EXPECT_EQ(regs.status, 0) << regs.output;
  // The same registers at the same step number (the slice's notes aside).
  const auto tail = [](const std::string& text) { return text.substr(text.find("at step")); };
  EXPECT_EQ(tail(regs.output), tail(regsSrc.output));
  // Usage: no range, both kinds, no output, the output over the input.
  EXPECT_EQ(run(ttvm + " slice " + demoTrace() + " -o " + out).status, 2);
  EXPECT_EQ(run(ttvm + " slice " + demoTrace() + " -o " + out + " --last 5 --from 3").status, 2);
  EXPECT_EQ(run(ttvm + " slice " + demoTrace() + " --last 5").status, 2);
  EXPECT_EQ(run(ttvm + " slice " + demoTrace() + " -o " + demoTrace() + " --last 5").status, 1);
  CommandRun past = run(ttvm + " slice " + demoTrace() + " -o " + out + " --from 5 --to " +
                        std::to_string(end + 1));
  EXPECT_EQ(past.status, 1) << past.output;
  EXPECT_NE(past.output.find("within the recorded run, 0.." + std::to_string(end)),
            std::string::npos)
      << past.output;
  fs::remove(out);
}

// A disk sector the source read before the cut and the guest reads again
// after it: the source logs it once, at the first read, so the slice logs
// it itself where its replay reads it. rec_disk_reread.img boots, reads its
// sector 1, spins 4 M steps and reads it again; slices cut inside the spin
// (from the API with partial RAM and from the command line with full RAM)
// replay as the source does over their range, and the re-read is their one
// DiskSector event. Before the slicer did this, `ttvm slice` refused them.
TEST(SliceE2E, ASectorReadBeforeTheCutAndAgainAfterItTravelsInTheSlice) {
  const std::string image = std::string(REC_GUEST_DIR) + "/rec_disk_reread.img";
  ASSERT_TRUE(fs::exists(image)) << "build the rec_guest_raw target first";
  const std::string source = testing::tempTracePath("reread");
  CommandRun r = run(std::string(TTVM_BIN) + " record --backend emu --start-clock 1700000000 -o " +
                     source + " --disk " + image);
  ASSERT_EQ(r.status, (0x21 << 1) | 1) << r.output;
  ASSERT_NE(r.output.find("same"), std::string::npos) << r.output;
  auto reader = TraceReader::open(source);
  ASSERT_TRUE(reader.ok()) << reader.error().message;
  std::vector<TraceEvent> sectorEvents;
  for (const TraceEvent& e : testing::allEvents(*reader))
    if (e.kind == EventKind::kDiskSector) sectorEvents.push_back(e);
  ASSERT_EQ(sectorEvents.size(), 1u);  // the first read only
  ASSERT_EQ(sectorEvents[0].address, 1u);
  const uint64_t firstRead = sectorEvents[0].step;
  const uint64_t end = reader->end()->steps;
  ASSERT_GT(end, firstRead + 4'000'000);

  const uint64_t from = firstRead + 1'000'000;
  const std::string slice = testing::tempTracePath("reread-slice");
  SliceOptions o;
  o.from = from;
  auto res = sliceTrace(*reader, slice, o);
  ASSERT_TRUE(res.ok()) << res.error().message;
  EXPECT_TRUE(res->checked);
  EXPECT_TRUE(res->partialRam) << res->fallbackReason;
  EXPECT_EQ(res->sectorsReread, 1u);
  auto cut = TraceReader::open(slice);
  ASSERT_TRUE(cut.ok());
  std::vector<TraceEvent> cutSectors;
  for (const TraceEvent& e : testing::allEvents(*cut))
    if (e.kind == EventKind::kDiskSector) cutSectors.push_back(e);
  ASSERT_EQ(cutSectors.size(), 1u);
  EXPECT_EQ(cutSectors[0].address, 1u);
  EXPECT_GT(cutSectors[0].step, firstRead + 4'000'000);  // where the guest read it again
  expectReplaysAsSource(source, slice, from, end);

  const std::string full = testing::tempTracePath("reread-full");
  CommandRun c = run(std::string(TTVM_BIN) + " slice " + source + " -o " + full + " --from " +
                     std::to_string(from + 500'000) + " --full-ram");
  ASSERT_EQ(c.status, 0) << c.output;
  EXPECT_NE(c.output.find("1 disk sector(s) read or written before the cut and read after it"),
            std::string::npos)
      << c.output;
  CommandRun v = run(std::string(TTVM_BIN) + " verify " + full);
  EXPECT_EQ(v.status, 0) << v.output;
  for (const std::string& f : {source, slice, full}) fs::remove(f);
}

// A source recorded with stored snapshots (--snapshot-every) is replayed to
// the cut from its last snapshot before it, not from step 0: the slice is
// the same (it replays as the source over its range, and its initial state
// and events equal those of a slice made replaying from step 0).
TEST(SliceE2E, ASliceStartsFromTheSourcesLastSnapshotBeforeTheCut) {
  const std::string& source = snapshotTrace();
  auto reader = TraceReader::open(source);
  ASSERT_TRUE(reader.ok()) << reader.error().message;
  ASSERT_GE(reader->snapshots().size(), 5u);
  const uint64_t end = reader->end()->steps;
  const SnapshotInfo& last = reader->snapshots().back();
  ASSERT_LT(last.step + 2000, end);
  const uint64_t from = last.step + (end - last.step) / 2;
  const std::string a = testing::tempTracePath("from-snapshot");
  const std::string b = testing::tempTracePath("from-zero");
  SliceOptions o;
  o.from = from;
  auto viaSnapshot = sliceTrace(*reader, a, o);
  ASSERT_TRUE(viaSnapshot.ok()) << viaSnapshot.error().message;
  EXPECT_EQ(viaSnapshot->replayedFrom, last.step);
  EXPECT_TRUE(viaSnapshot->checked);
  o.useSnapshots = false;
  auto viaZero = sliceTrace(*reader, b, o);
  ASSERT_TRUE(viaZero.ok()) << viaZero.error().message;
  EXPECT_EQ(viaZero->replayedFrom, 0u);
  auto ra = TraceReader::open(a), rb = TraceReader::open(b);
  ASSERT_TRUE(ra.ok() && rb.ok());
  auto ia = ra->initialState(), ib = rb->initialState();
  ASSERT_TRUE(ia.ok() && ib.ok());
  EXPECT_EQ(ia->cpu, ib->cpu);
  EXPECT_EQ(ia->deviceState, ib->deviceState);
  EXPECT_EQ(ia->ram, ib->ram);
  EXPECT_EQ(testing::allEvents(*ra), testing::allEvents(*rb));
  expectReplaysAsSource(source, a, from, end);
  CommandRun c = run(std::string(TTVM_BIN) + " slice " + source + " -o " + b + " --last 1000");
  EXPECT_EQ(c.status, 0) << c.output;
  EXPECT_NE(c.output.find("replayed from its snapshot at step " + std::to_string(last.step)),
            std::string::npos)
      << c.output;
  for (const std::string& f : {a, b}) fs::remove(f);
}

// The source's snapshots inside the range travel in the slice, with the
// slice's RAM (the pages it holds): a replay of the slice started at each
// of them (ReplaySession::startFromSnapshot) is where a replay of the slice
// from its first step is at that step (CPU, devices, the whole RAM) and
// goes on identically to the end; a slice of the slice starts from the last
// one before its cut. Without them a slice of a slice, or any later use of
// the slice's snapshots, would replay from the slice's first step.
TEST(SliceE2E, TheSourcesSnapshotsInsideTheRangeTravelInTheSlice) {
  auto reader = TraceReader::open(snapshotTrace());
  ASSERT_TRUE(reader.ok()) << reader.error().message;
  const std::vector<SnapshotInfo>& snaps = reader->snapshots();
  ASSERT_GE(snaps.size(), 5u);
  const uint64_t end = reader->end()->steps;
  const uint64_t from = snaps[1].step - 12'345;  // between two snapshots
  std::vector<uint64_t> inside;
  for (const SnapshotInfo& s : snaps)
    if (s.step > from) inside.push_back(s.step);
  const std::string out = testing::tempTracePath("with-snapshots");
  SliceOptions o;
  o.from = from;
  auto r = sliceTrace(*reader, out, o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->checked);
  EXPECT_TRUE(r->partialRam) << r->fallbackReason;
  EXPECT_EQ(r->snapshots, inside.size());
  auto slice = TraceReader::open(out);
  ASSERT_TRUE(slice.ok()) << slice.error().message;
  EXPECT_TRUE(slice->checkAllFrames().ok());
  std::vector<uint64_t> copied;
  for (const SnapshotInfo& s : slice->snapshots()) copied.push_back(s.step);
  ASSERT_EQ(copied, inside);

  auto straight = ReplaySession::open(*slice);
  ASSERT_TRUE(straight.ok()) << straight.error().message;
  ReplaySession& a = **straight;
  for (size_t i = 0; i < copied.size(); ++i) {
    SCOPED_TRACE("snapshot " + std::to_string(i) + " at step " + std::to_string(copied[i]));
    ASSERT_EQ(a.runTo(copied[i]).step, copied[i]);
    auto opened = ReplaySession::open(*slice);
    ASSERT_TRUE(opened.ok());
    ReplaySession& b = **opened;
    ASSERT_TRUE(b.startFromSnapshot(i).ok());
    ASSERT_EQ(b.step(), copied[i]);
    EXPECT_EQ(b.state(), a.state());
    EXPECT_EQ(b.saveDevices(), a.saveDevices());
    EXPECT_TRUE(std::equal(a.ram().begin(), a.ram().end(), b.ram().begin()))
        << "the RAM at the snapshot is not the slice's";
    // On from there, to the next snapshot or the end.
    const uint64_t next = i + 1 < copied.size() ? copied[i + 1] : end;
    const SessionStop stop = b.runTo(next);
    ASSERT_EQ(stop.step, next) << (b.divergence() ? b.divergence()->format() : "");
    if (next == end) {
      EXPECT_EQ(b.checkEndState(), "");
    }
  }
  // What it saves: reaching the last snapshot's step from the slice's start
  // or from the snapshot (printed, not asserted: the machine is shared).
  const auto t0 = std::chrono::steady_clock::now();
  auto fresh = ReplaySession::open(*slice);
  ASSERT_TRUE(fresh.ok());
  ASSERT_EQ((*fresh)->runTo(copied.back()).step, copied.back());
  const auto t1 = std::chrono::steady_clock::now();
  auto quick = ReplaySession::open(*slice);
  ASSERT_TRUE(quick.ok() && (*quick)->startFromSnapshot(copied.size() - 1).ok());
  const auto t2 = std::chrono::steady_clock::now();
  std::printf(
      "step %llu of the slice (from %llu): %.3f s replaying from its start, %.3f s from "
      "its snapshot\n",
      static_cast<unsigned long long>(copied.back()), static_cast<unsigned long long>(from),
      std::chrono::duration<double>(t1 - t0).count(),
      std::chrono::duration<double>(t2 - t1).count());

  // A slice of the slice starts from the snapshot before its cut.
  const std::string again = testing::tempTracePath("slice-of-slice");
  SliceOptions o2;
  o2.from = copied.back() + 1'000;
  auto r2 = sliceTrace(*slice, again, o2);
  ASSERT_TRUE(r2.ok()) << r2.error().message;
  EXPECT_EQ(r2->replayedFrom, copied.back());
  EXPECT_TRUE(r2->checked);
  expectReplaysAsSource(out, again, o2.from, end);
  // From the command line, with the full RAM: the snapshots hold every page.
  CommandRun c = run(std::string(TTVM_BIN) + " slice " + snapshotTrace() + " -o " + again +
                     " --full-ram --from " + std::to_string(from));
  EXPECT_EQ(c.status, 0) << c.output;
  EXPECT_NE(c.output.find(std::to_string(inside.size()) + " of the source's snapshots copied"),
            std::string::npos)
      << c.output;
  auto full = TraceReader::open(again);
  ASSERT_TRUE(full.ok());
  ASSERT_EQ(full->snapshots().size(), inside.size());
  auto fromSource = reader->loadSnapshot(snaps.size() - 1);
  auto fromSlice = full->loadSnapshot(inside.size() - 1);
  ASSERT_TRUE(fromSource.ok() && fromSlice.ok());
  EXPECT_EQ(*fromSlice, *fromSource);
  // --no-snapshots leaves them out: a smaller file, the same slice otherwise.
  const std::string bare = testing::tempTracePath("no-snapshots");
  CommandRun n = run(std::string(TTVM_BIN) + " slice " + snapshotTrace() + " -o " + bare +
                     " --no-snapshots --from " + std::to_string(from));
  EXPECT_EQ(n.status, 0) << n.output;
  EXPECT_EQ(n.output.find("snapshots copied"), std::string::npos) << n.output;
  auto without = TraceReader::open(bare);
  ASSERT_TRUE(without.ok()) << without.error().message;
  EXPECT_TRUE(without->snapshots().empty());
  EXPECT_LT(without->fileBytes(), slice->fileBytes());
  EXPECT_EQ(testing::allEvents(*without), testing::allEvents(*slice));
  std::printf("slice from step %llu: %llu bytes with the %zu snapshots, %llu without\n",
              static_cast<unsigned long long>(from),
              static_cast<unsigned long long>(slice->fileBytes()), copied.size(),
              static_cast<unsigned long long>(without->fileBytes()));
  for (const std::string& f : {out, again, bare}) fs::remove(f);
}

// Self-contained: the trace alone, in an empty directory, with the guest
// it was recorded from deleted, replays and verifies, and names the guest's
// functions (its symbols travel in the trace).
TEST(SharingE2E, TraceReplaysInAnEmptyDirectoryWithoutItsGuest) {
  const fs::path work = fs::path(testing::tempTracePath("alone")).replace_extension();
  fs::create_directories(work / "guest");
  fs::create_directories(work / "empty");
  fs::copy_file(demoElf(), work / "guest" / "demo.elf");
  record((work / "guest" / "demo.elf").string(), (work / "guest" / "demo.ttvm").string());
  fs::rename(work / "guest" / "demo.ttvm", work / "empty" / "demo.ttvm");
  fs::remove_all(work / "guest");
  ASSERT_FALSE(fs::exists(work / "guest"));
  const std::string in = "cd " + (work / "empty").string() + " && ";
  CommandRun v = run(in + TTVM_BIN + " verify demo.ttvm");
  EXPECT_EQ(v.status, 0) << v.output;
  CommandRun bt = run(in + TTVM_BIN + " replay demo.ttvm --to end --backtrace");
  EXPECT_EQ(bt.status, 0) << bt.output;
  EXPECT_NE(bt.output.find("table_find"), std::string::npos) << bt.output;
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(work / "empty")) left.push_back(e.path().string());
  EXPECT_EQ(left, std::vector<std::string>{(work / "empty" / "demo.ttvm").string()});
  fs::remove_all(work);
}

// `ttvm report` on the demo's crash. The guest's own page-fault handler
// prints RIP and CR2 on its console: the report's faulting instruction and
// address must be those, and the command it suggests must land there.
TEST(ReportE2E, DemoCrashReportNamesTheFaultTheGuestItselfReported) {
  const std::string ttvm = TTVM_BIN;
  CommandRun rep = run(ttvm + " report " + demoTrace());
  ASSERT_EQ(rep.status, 0) << rep.output;
  const std::string& md = rep.output;
  auto has = [&md](const std::string& text) {
    EXPECT_NE(md.find(text), std::string::npos) << "no '" << text << "' in:\n" << md;
  };
  auto reader = TraceReader::open(demoTrace());
  ASSERT_TRUE(reader.ok());
  has("**panic** at step " + std::to_string(reader->end()->steps));
  // What the guest printed (it is in the report's serial section too).
  has("*** page fault (vector 14) at rip=0x0000000000100d89");
  has("cr2=0x000070756b6f6f6c");
  has("PANIC: unhandled page fault in kernel mode");
  // The report's own account of the fault agrees with it.
  has("**#PF** (vector 14) at step ");
  has(", address 0x70756b6f6f6c (CR2)");
  has("0x100d89 <table_find+0x59>: cmp [rcx], esi");
  has("rcx  0x000070756b6f6f6c");
  // The backtrace, with the guest's own frames (its handler printed
  // 0x1011cc and 0x100c44 as return addresses).
  has("#0  0x100d89 <table_find+0x59>");
  has("0x1011cc <workload_run+0xcc>");
  has("0x100c44 <kmain+0x224>");
  has("interrupt vector 0x40");
  // Where the run stopped: in the guest's panic(), called from its #PF handler.
  const size_t endBt = md.find("### Backtrace at the end (step ");
  ASSERT_NE(endBt, std::string::npos) << md;
  EXPECT_NE(md.find("#0  0x1007d2 <panic+0x62>", endBt), std::string::npos) << md;
  has(std::to_string(reader->fileBytes()) + " bytes");
  // The step it names is where `ttvm replay` shows the faulting instruction.
  const size_t at = md.find("**#PF** (vector 14) at step ");
  ASSERT_NE(at, std::string::npos);
  const uint64_t step = std::stoull(md.substr(at + std::strlen("**#PF** (vector 14) at step ")));
  const std::string name = fs::path(demoTrace()).filename().string();
  has("ttvm replay " + name + " --to " + std::to_string(step) + " --regs --backtrace");
  CommandRun there = run(ttvm + " replay " + demoTrace() + " --to " + std::to_string(step));
  EXPECT_NE(there.output.find("<table_find+0x59>: cmp [rcx], esi"), std::string::npos)
      << there.output;
  // A trace that does not replay gets an error, not a report.
  EXPECT_EQ(run(ttvm + " report /nonexistent.ttvm").status, 1);
  EXPECT_EQ(run(ttvm + " report").status, 2);
}

// A trace written by a newer ttvm, as every command that opens a trace
// meets it: tests/data/recorded-v1.0-demo.ttvm (a real recording) with its
// preamble saying a newer major version is refused naming who made it and
// what this reader supports; saying a newer minor version (a 1.0 header does
// not repeat it) it is read, replayed and sliced with a note that says so.
TEST(CompatibilityE2E, EveryCommandNamesTheMakerOfANewerTrace) {
  const std::string golden = std::string(TTVM_SOURCE_DIR) + "/tests/data/recorded-v1.0-demo.ttvm";
  auto original = TraceReader::open(golden);
  ASSERT_TRUE(original.ok()) << original.error().message;
  const std::string maker = "made by ttvm " + original->header().ttvmVersion;
  std::ifstream in(golden, std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
  auto withVersion = [&](uint16_t major, uint16_t minor) {
    std::vector<char> b = bytes;
    b[8] = static_cast<char>(major & 0xFF);
    b[9] = static_cast<char>(major >> 8);
    b[10] = static_cast<char>(minor & 0xFF);
    b[11] = static_cast<char>(minor >> 8);
    const std::string path =
        testing::tempTracePath("v" + std::to_string(major) + "." + std::to_string(minor));
    std::ofstream(path, std::ios::binary).write(b.data(), static_cast<std::streamsize>(b.size()));
    return path;
  };
  const std::string ttvm = TTVM_BIN;
  const std::string supported = "1." + std::to_string(kTraceFormatMinor);
  const std::string newerMajor = withVersion(kTraceFormatMajor + 1, 3);
  const std::string refused = maker + ", format " + std::to_string(kTraceFormatMajor + 1) +
                              ".3; this reader supports formats 1.0 to " + supported +
                              ": open it with a newer ttvm";
  const std::string out = testing::tempTracePath("newer-slice");
  for (const char* cmd : {"info", "verify", "replay", "report", "gdbserver"}) {
    CommandRun c = run(ttvm + " " + cmd + " " + newerMajor);
    EXPECT_NE(c.status, 0) << cmd << ": " << c.output;
    EXPECT_NE(c.output.find(refused), std::string::npos) << cmd << ": " << c.output;
  }
  CommandRun s = run(ttvm + " slice " + newerMajor + " -o " + out + " --last 1000");
  EXPECT_EQ(s.status, 1) << s.output;
  EXPECT_NE(s.output.find(refused), std::string::npos) << s.output;

  const uint16_t future = kTraceFormatMinor + 5;
  const std::string newerMinor = withVersion(1, future);
  const std::string note = maker + ", format 1." + std::to_string(future) +
                           "; this reader supports up to " + supported +
                           ": it reads the trace but ignores what the newer format added";
  for (const std::string& cmd :
       {"info " + newerMinor, "verify " + newerMinor, "replay " + newerMinor,
        "report " + newerMinor, "slice " + newerMinor + " -o " + out + " --last 1000"}) {
    CommandRun c = run(ttvm + " " + cmd);
    EXPECT_EQ(c.status, 0) << cmd << ": " << c.output;
    EXPECT_NE(c.output.find(note), std::string::npos) << cmd << ": " << c.output;
  }
  for (const std::string& f : {newerMajor, newerMinor, out}) fs::remove(f);
}

}  // namespace
}  // namespace ttvm
