// assignSteps (kvm_steps.h): a KVM trace's exit numbers to emulator steps.
// The oracle: an emulator recording with every device answer logged (no
// replayed device, as a KVM recording is) whose events are renumbered the
// way KvmBackend numbers exits (+1 per port or MMIO access and per HLT) and
// marked Backend::kKvm. assignSteps must find every event's original step
// again, and the stepped trace must verify. A changed value must be named.
#include "ttvm/replayer/kvm_steps.h"

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <utility>

#include "scripted_trace_support.h"
#include "ttvm/emulator/cpu_model.h"
#include "ttvm/formats/trace_writer.h"
#include "ttvm/machine/disk_image.h"
#include "ttvm/machine/loader.h"
#include "ttvm/machine/machine.h"
#include "ttvm/machine/stop_point.h"
#include "ttvm/recorder/record_session.h"
#include "ttvm/replayer/replay_session.h"

namespace ttvm {
using ttvm::machine::DiskImage;
using ttvm::machine::Machine;
namespace {

// Records `guest` on `m` until it ends through isa-debug-exit; the trace's path.
std::string recordToExit(Machine& m, Result<machine::LoadedGuest> guest, const std::string& stem) {
  EXPECT_TRUE(guest.ok()) << guest.error().message;
  RecordOptions ro;
  ro.tracePath = testing::tempTracePath(stem);
  ro.ttvmVersion = "test";
  RecordSession s(m, std::move(guest).value(), ro);
  EXPECT_TRUE(s.start().ok());
  auto r = s.run();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r->end.reason, EndReason::kExitDevice);
  return ro.tracePath;
}

// The IDE guest of disk_replay_test (port reads with the sectors' bytes,
// polling loops, an exit through isa-debug-exit).
std::string recordOldMode() {
  std::vector<uint8_t> disk(16 * DiskImage::kSectorBytes);
  std::mt19937_64 rng(5);
  for (uint8_t& b : disk) b = static_cast<uint8_t>(rng());
  std::ifstream f(DISK_REREAD_GUEST, std::ios::binary);
  std::vector<uint8_t> boot((std::istreambuf_iterator<char>(f)), {});
  EXPECT_EQ(boot.size(), DiskImage::kSectorBytes);
  std::copy(boot.begin(), boot.end(), disk.begin());
  machine::MachineOptions o;
  o.ramBytes = 16ull << 20;
  auto m = Machine::create(o);
  EXPECT_TRUE(m.ok());
  (*m)->ports().setReportStream(nullptr);
  EXPECT_TRUE((*m)->setReplayedDevices({}).ok());
  EXPECT_TRUE((*m)->attachDisk(0, DiskImage::fromBytes("kvm_steps.img", disk)).ok());
  return recordToExit(**m, machine::loadBootDisk(**m), "kvm_steps_emu");
}

// The events of an emulator trace that a KVM trace's stepped replay gives
// back: all but the step digests (asKvmTrace leaves them out).
std::vector<TraceEvent> withoutDigests(TraceReader& r) {
  std::vector<TraceEvent> events = testing::allEvents(r);
  std::erase_if(events, [](const TraceEvent& e) { return e.kind == EventKind::kStateDigest; });
  return events;
}

bool countsAsExit(EventKind k) {
  return k == EventKind::kPortIn || k == EventKind::kPortOut || k == EventKind::kMmioRead ||
         k == EventKind::kMmioWrite || k == EventKind::kHlt || k == EventKind::kStopPoint;
}

// The emulator trace as KvmBackend would have numbered it; `edit` may change
// the events first. The step digests are left out (the recorder took them
// at multiples of its interval, not after an exit as under KVM).
std::string asKvmTrace(const std::string& emuPath,
                       const std::function<void(std::vector<TraceEvent>&)>& edit = {},
                       const std::function<void(InitialState&)>& editInit = {},
                       const std::vector<uint64_t>& emulatedPages = {}) {
  auto r = TraceReader::open(emuPath);
  EXPECT_TRUE(r.ok());
  std::vector<TraceEvent> events = testing::allEvents(*r);
  if (edit) edit(events);
  TraceHeader h = r->header();
  h.backend = Backend::kKvm;
  h.emulatedPages = emulatedPages;
  h.traceId = {};
  const std::string path = testing::tempTracePath("kvm_steps_kvm");
  InitialState init = r->initialState().value();
  if (editInit) editInit(init);
  auto w = TraceWriter::create(path, h, init, TraceWriter::Options{});
  EXPECT_TRUE(w.ok());
  uint64_t exit = 0;
  for (TraceEvent e : events) {
    if (e.kind == EventKind::kStateDigest) continue;
    if (countsAsExit(e.kind)) ++exit;
    e.step = exit;
    (*w)->append(e);
  }
  TraceEnd end = *r->end();
  end.steps = exit;
  end.finalCpu.steps = exit;
  EXPECT_TRUE((*w)->close(end).ok());
  return path;
}

TEST(KvmSteps, ExitNumbersBecomeTheStepsTheEmulatorRecorded) {
  const std::string emu = recordOldMode();
  const std::string kvm = asKvmTrace(emu);
  auto k = TraceReader::open(kvm);
  ASSERT_TRUE(k.ok());
  const std::string stepped = testing::tempTracePath("kvm_steps_stepped");
  auto s = assignSteps(*k, stepped);
  ASSERT_TRUE(s.ok()) << s.error().message;
  auto e = TraceReader::open(emu);
  auto out = TraceReader::open(stepped);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(s->steps, e->end()->steps);
  EXPECT_EQ(s->exits, k->end()->steps);
  EXPECT_LT(s->exits, s->steps);
  EXPECT_EQ(out->header().backend, Backend::kEmulator);
  const std::vector<TraceEvent> want = withoutDigests(*e);
  const std::vector<TraceEvent> got = testing::allEvents(*out);
  ASSERT_EQ(got.size(), want.size());
  size_t ports = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i], want[i]) << "event " << i << ": " << describeEvent(got[i]) << " vs "
                               << describeEvent(want[i]);
    ports += got[i].kind == EventKind::kPortIn;
  }
  EXPECT_GT(ports, 1000u);  // the guest's IDE reads, each placed at its step
  std::printf("%llu exits -> %llu steps, %zu events\n", (unsigned long long)s->exits,
              (unsigned long long)s->steps, got.size());
  // The stepped trace replays to the recorded end and state.
  auto session = ReplaySession::open(*out);
  ASSERT_TRUE(session.ok()) << session.error().message;
  const SessionStop stop = (*session)->runTo(~0ull, {});
  EXPECT_EQ(stop.kind, SessionStopKind::kEnd);
  EXPECT_EQ((*session)->checkEndState(), "");
}

TEST(KvmSteps, AnAccessThatDiffersFromTheTraceIsNamedWithItsStep) {
  const std::string emu = recordOldMode();
  const std::string kvm = asKvmTrace(emu, [](std::vector<TraceEvent>& events) {
    for (TraceEvent& e : events)
      if (e.kind == EventKind::kPortOut) {
        e.value ^= 1;  // the first port write, as if the hardware had seen another value
        return;
      }
  });
  auto k = TraceReader::open(kvm);
  ASSERT_TRUE(k.ok());
  auto s = assignSteps(*k, testing::tempTracePath("kvm_steps_bad"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("the emulator made out"), std::string::npos)
      << s.error().message;
  EXPECT_NE(s.error().message.find("step "), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("rip "), std::string::npos) << s.error().message;
}

// `ttvm recover` and `ttvm verify` (the binary) on `trace`; status and output.
struct CliRun {
  int status = -1;
  std::string out;
};
CliRun ttvm(const std::string& args) {
  const std::string log = testing::tempTracePath("kvm_steps_cli") + ".log";
  const int rc = std::system((std::string(TTVM_BIN) + " " + args + " > " + log + " 2>&1").c_str());
  std::ifstream f(log);
  return {WEXITSTATUS(rc), std::string((std::istreambuf_iterator<char>(f)), {})};
}

// `trace` without its footer, as a killed recorder leaves it: every chunk
// kept, the bytes after the last one dropped.
std::string withoutFooter(const std::string& trace) {
  auto r = TraceReader::open(trace);
  EXPECT_TRUE(r.ok());
  EXPECT_GE(r->chunkCount(), 1u);
  const ChunkInfo& last = r->chunks().back();
  std::ifstream in(trace, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  const std::string cut = trace + ".cut.ttvm";
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, last.offset + 40 + last.compressedBytes);
  return cut;
}

TEST(KvmSteps, AFooterlessKvmTraceIsRecoveredAtItsLastExit) {
  // Verify used to compare the replay against an all-zero end the stepped
  // trace invented (status 1); recover could not replay a KVM prefix and
  // exited 0 with an unknown final state.
  const std::string kvm = asKvmTrace(recordOldMode());
  const std::string cut = withoutFooter(kvm);
  auto c = TraceReader::open(cut);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c->recovered());
  const uint64_t lastExit = c->chunks().back().lastStep;
  CliRun before = ttvm("verify " + cut);
  EXPECT_EQ(before.status, 3) << before.out;
  EXPECT_NE(before.out.find("not checked: the end of the run"), std::string::npos) << before.out;

  const std::string fixed = cut + ".recovered.ttvm";
  CliRun rec = ttvm("recover -o " + fixed + " " + cut);
  ASSERT_EQ(rec.status, 0) << rec.out;
  EXPECT_NE(rec.out.find("recovered at step " + std::to_string(lastExit)), std::string::npos)
      << rec.out;
  auto f = TraceReader::open(fixed);
  ASSERT_TRUE(f.ok()) << f.error().message;
  ASSERT_TRUE(f->end().has_value());
  EXPECT_TRUE(isRecoveredEnd(*f->end()));
  EXPECT_EQ(f->end()->steps, lastExit);
  EXPECT_EQ(f->header().backend, Backend::kKvm);
  CliRun after = ttvm("verify " + fixed);
  EXPECT_EQ(after.status, 0) << after.out;
  EXPECT_NE(after.out.find("final state match"), std::string::npos) << after.out;
}

TEST(KvmSteps, ARecoveryThatCannotReplayItsPrefixSaysTheEndIsUnknown) {
  // The hardware saw another port write than the emulator makes: the prefix
  // cannot be given steps. The footer is still written (nothing recorded is
  // lost), but the status is not a success.
  const std::string kvm = asKvmTrace(recordOldMode(), [](std::vector<TraceEvent>& events) {
    for (TraceEvent& e : events)
      if (e.kind == EventKind::kPortOut) {
        e.value ^= 1;
        return;
      }
  });
  const std::string cut = withoutFooter(kvm);
  const std::string fixed = cut + ".recovered.ttvm";
  CliRun rec = ttvm("recover -o " + fixed + " " + cut);
  EXPECT_EQ(rec.status, 3) << rec.out;
  EXPECT_NE(rec.out.find("final state unknown"), std::string::npos) << rec.out;
  EXPECT_NE(rec.out.find("the emulator made out"), std::string::npos) << rec.out;
  auto f = TraceReader::open(fixed);
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f->chunkCount(), TraceReader::open(cut)->chunkCount());
}

// Stop points as KvmBackend writes them (kDirtyPages, then kStopPoint) at
// every 40th boundary before a port access, with the state and RAM the
// emulator had there; the listed pages are all of RAM (a superset of the
// pages written, which the argument in docs/kvm-recording.md allows).
// `corrupt` changes the fingerprint of the first one.
std::string withStopPoints(const std::string& emuPath, size_t* count, bool corrupt = false) {
  auto r = TraceReader::open(emuPath);
  EXPECT_TRUE(r.ok());
  auto session = ReplaySession::open(*r);
  EXPECT_TRUE(session.ok());
  return asKvmTrace(emuPath, [&](std::vector<TraceEvent>& events) {
    std::vector<TraceEvent> out;
    size_t ports = 0;
    for (size_t i = 0; i < events.size(); ++i) {
      const TraceEvent& e = events[i];
      const bool port = e.kind == EventKind::kPortIn || e.kind == EventKind::kPortOut;
      if (port && i > 0 && events[i - 1].step < e.step && ++ports % 40 == 0) {
        (*session)->runTo(e.step);
        EXPECT_EQ((*session)->step(), e.step);
        std::span<const uint8_t> ram = std::as_const(**session).ram();
        const std::vector<machine::PageRun> all = {
            {0, static_cast<uint32_t>(ram.size() / kPageSize)}};
        for (TraceEvent d : machine::stopPointEvents(0, (*session)->state(), ram, all)) {
          if (corrupt && *count == 0 && d.kind == EventKind::kStopPoint) d.value ^= 1;
          out.push_back(d);
        }
        ++*count;
      }
      out.push_back(e);
    }
    events = std::move(out);
  });
}

TEST(KvmSteps, StopPointsAreFoundByState) {
  const std::string emu = recordOldMode();
  size_t stops = 0;
  const std::string kvm = withStopPoints(emu, &stops);
  ASSERT_GT(stops, 10u);
  auto k = TraceReader::open(kvm);
  ASSERT_TRUE(k.ok());
  const std::string stepped = testing::tempTracePath("kvm_steps_stops");
  auto s = assignSteps(*k, stepped);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->stopPoints, stops);
  auto e = TraceReader::open(emu);
  EXPECT_EQ(s->steps, e->end()->steps);
  // Every event keeps the step the emulator recorded; the stop points are
  // not in the stepped trace.
  const std::vector<TraceEvent> want = withoutDigests(*e);
  auto out = TraceReader::open(stepped);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(testing::allEvents(*out), want);
}

TEST(KvmSteps, AStopPointWhoseStateNeverComesIsNamed) {
  const std::string emu = recordOldMode();
  size_t stops = 0;
  const std::string kvm = withStopPoints(emu, &stops, true);
  auto k = TraceReader::open(kvm);
  ASSERT_TRUE(k.ok());
  auto s = assignSteps(*k, testing::tempTracePath("kvm_steps_stops_bad"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("StopPoint"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("no boundary before it had the state KVM stopped at"),
            std::string::npos)
      << s.error().message;
}

// A flat 32-bit guest recorded by the emulator with every answer logged,
// under `model`: `code` (loaded at 0x10000), which ends through
// isa-debug-exit.
std::string recordFlat(const std::vector<uint8_t>& code, const CpuModel& model) {
  machine::MachineOptions o;
  o.ramBytes = 4ull << 20;
  o.cpuModel = model;
  auto m = Machine::create(o);
  EXPECT_TRUE(m.ok());
  (*m)->ports().setReportStream(nullptr);
  EXPECT_TRUE((*m)->setReplayedDevices({}).ok());
  machine::LoadOptions lo;
  lo.name = "nondet.bin";
  lo.loadAddress = 0x10000;
  lo.mode = machine::GuestMode::kProtected;
  return recordToExit(**m, machine::loadGuest(**m, code, lo), "kvm_steps_nondet_emu");
}

// What a KVM recording of `code` holds: the emulator's trace without the
// TSC and RDRAND values (KVM does not trap them).
std::string assignUntrapped(const std::vector<uint8_t>& code, const CpuModel& model) {
  const std::string kvm = asKvmTrace(recordFlat(code, model), [](std::vector<TraceEvent>& events) {
    std::erase_if(events, [](const TraceEvent& e) {
      return e.kind == EventKind::kRdtsc || e.kind == EventKind::kRdrand;
    });
  });
  auto k = TraceReader::open(kvm);
  EXPECT_TRUE(k.ok());
  auto s = assignSteps(*k, testing::tempTracePath("kvm_steps_nondet"));
  EXPECT_FALSE(s.ok());
  return s.ok() ? std::string() : s.error().message;
}

CpuModel hiding(std::initializer_list<const char*> names) {
  CpuModel m = CpuModel::ttvmDefault();
  for (const char* n : names) m = hideFeature(m, *findCpuidFeature(n));
  return m;
}

TEST(KvmSteps, AnUntrappedReadIsNamedAtItsInstructionWithWhatCpuidShowed) {
  // mov al,'x'; out 0xe9,al; rdrand eax; rdtsc; out 0xf4,al (isa-debug-exit)
  const std::vector<uint8_t> randThenTsc = {0xB0, 'x',  0xE6, 0xE9, 0x0F, 0xC7,
                                            0xF0, 0x0F, 0x31, 0xE6, 0xF4};
  // mov al,'x'; out 0xe9,al; rdtsc; out 0xf4,al
  const std::vector<uint8_t> tsc = {0xB0, 'x', 0xE6, 0xE9, 0x0F, 0x31, 0xE6, 0xF4};
  const std::string at = "step 2: rdrand eax at 0x10004: value not recorded under KVM (";
  std::string m = assignUntrapped(randThenTsc, hiding({"rdrand"}));
  EXPECT_NE(m.find(at + "CPUID hid RDRAND; the guest executed it anyway; "), std::string::npos)
      << m;
  m = assignUntrapped(randThenTsc, CpuModel::ttvmDefault());
  EXPECT_NE(m.find(at + "KVM lets the guest read the host's generator without an exit; "),
            std::string::npos)
      << m;
  m = assignUntrapped(tsc, hiding({"tsc"}));
  EXPECT_NE(m.find("step 2: rdtsc at 0x10004: value not recorded under KVM (CPUID hid the TSC; "
                   "the guest executed it anyway; the trace's next event is "),
            std::string::npos)
      << m;
  m = assignUntrapped(tsc, CpuModel::ttvmDefault());
  EXPECT_NE(m.find("step 2: rdtsc at 0x10004: value not recorded under KVM (KVM lets the guest "
                   "read the host's TSC without an exit; the trace's next event is "),
            std::string::npos)
      << m;
  // RDTSCP shown (hidden, the emulator raises #UD: the next test).
  m = assignUntrapped({0x0F, 0x01, 0xF9, 0xE6, 0xF4}, CpuModel::ttvmDefault());
  EXPECT_NE(m.find("step 0: rdtscp at 0x10000: value not recorded under KVM (KVM lets the guest "
                   "read the host's TSC without an exit; the trace's next event is "),
            std::string::npos)
      << m;
}

// With `record --kvm-trap-tsc` the pages holding RDTSC/RDTSCP ran in ttvm's
// emulator (KvmBackend::emulateInstruction), which logged each TSC read: the
// header names the pages, and an RDTSC with a byte on one takes the next
// kRdtsc event; one elsewhere is still unrecorded, and says why.
TEST(KvmSteps, AnRdtscOnAnEmulatedPageTakesItsValueFromTheTrace) {
  // mov al,'x'; out 0xe9,al; NOPs to the end of page 0x10, RDTSC or RDTSCP
  // across the page boundary (0F the page's last byte), mov ebx,eax;
  // rdtsc; out 0xf4,al.
  auto guest = [](bool rdtscp) {
    std::vector<uint8_t> code = {0xB0, 'x', 0xE6, 0xE9};
    code.resize(0xFFF, 0x90);
    if (rdtscp)
      code.insert(code.end(), {0x0F, 0x01, 0xF9});
    else
      code.insert(code.end(), {0x0F, 0x31});
    code.insert(code.end(), {0x89, 0xC3, 0x0F, 0x31, 0xE6, 0xF4});
    return code;
  };
  for (bool rdtscp : {false, true}) {
    const std::string emu = recordFlat(guest(rdtscp), CpuModel::ttvmDefault());
    auto e = TraceReader::open(emu);
    ASSERT_TRUE(e.ok());
    size_t tscs = 0;
    for (const TraceEvent& ev : testing::allEvents(*e)) tscs += ev.kind == EventKind::kRdtsc;
    ASSERT_EQ(tscs, 2u);
    auto assign = [&](uint64_t page, const char* name) {
      auto k = TraceReader::open(asKvmTrace(emu, {}, {}, {page}));
      EXPECT_TRUE(k.ok());
      EXPECT_EQ(k->header().emulatedPages, std::vector<uint64_t>{page});
      const std::string stepped = testing::tempTracePath(name);
      auto s = assignSteps(*k, stepped);
      return std::make_pair(std::move(s), stepped);
    };
    // Page 0x11 holds the end of the first and all of the second.
    auto [s, stepped] = assign(0x11, "kvm_steps_emulated");
    ASSERT_TRUE(s.ok()) << s.error().message;
    EXPECT_EQ(s->steps, e->end()->steps);
    auto out = TraceReader::open(stepped);
    ASSERT_TRUE(out.ok());
    auto session = ReplaySession::open(*out);
    ASSERT_TRUE(session.ok()) << session.error().message;
    EXPECT_EQ((*session)->runTo(~0ull, {}).kind, SessionStopKind::kEnd);
    EXPECT_EQ((*session)->checkEndState(), "") << "rdtscp " << rdtscp;
    // Page 0x10 holds the start of the first only: the second is unrecorded.
    auto half = assign(0x10, "kvm_steps_emulated_half").first;
    ASSERT_FALSE(half.ok());
    EXPECT_NE(
        half.error().message.find(std::string("rdtsc at ") + (rdtscp ? "0x11004" : "0x11003") +
                                  ": value not recorded under KVM"),
        std::string::npos)
        << half.error().message;
    // Emulated pages that hold neither: the first is unrecorded, and the
    // message says it was not on an emulated page.
    auto none = assign(0x12, "kvm_steps_emulated_not").first;
    ASSERT_FALSE(none.ok());
    EXPECT_NE(none.error().message.find(std::string(rdtscp ? "rdtscp" : "rdtsc") +
                                        " at 0x10fff: value not recorded under KVM (KVM lets the "
                                        "guest read the host's TSC without an exit; it is not on "
                                        "a page ttvm emulated: written there after the start; "),
              std::string::npos)
        << none.error().message;
  }
}

// KVM takes an NMI given while NMIs are blocked and delivers it after the
// IRET that unblocks them, dropping any more given meanwhile, as the CPU's
// latch does; the trace has each where ttvm gave it. The replay latches an
// NMI event met while its NMIs are blocked (dropping a second) and lets the
// accesses after it come first: it delivers exactly what the emulator's own
// recording did, where it did.
TEST(KvmSteps, NmisGivenWhileBlockedAreLatchedAsKvmDeliversThem) {
  // 32-bit: lidt; self-NMI through the xAPIC ICR; wait until the handler
  // counted 2; out 0xe9,al; out 0xf4,al. The handler: count; the first time
  // two more self-NMIs (the first latched, the second lost), each followed
  // by out 0xe9,al; iret. The IDT's gate 2 points at the handler.
  const std::vector<uint8_t> code = {
      0x0f, 0x01, 0x1d, 0x70, 0x00, 0x01, 0x00, 0xc7, 0x05, 0x10, 0x03, 0xe0, 0xfe, 0x00, 0x00,
      0x00, 0x00, 0xc7, 0x05, 0x00, 0x03, 0xe0, 0xfe, 0x00, 0x04, 0x00, 0x00, 0x80, 0x3d, 0x76,
      0x00, 0x01, 0x00, 0x02, 0x72, 0xf7, 0xa0, 0x76, 0x00, 0x01, 0x00, 0xe6, 0xe9, 0xe6, 0xf4,
      0xfe, 0x05, 0x76, 0x00, 0x01, 0x00, 0x80, 0x3d, 0x76, 0x00, 0x01, 0x00, 0x01, 0x75, 0x18,
      0xc7, 0x05, 0x00, 0x03, 0xe0, 0xfe, 0x00, 0x04, 0x00, 0x00, 0xe6, 0xe9, 0xc7, 0x05, 0x00,
      0x03, 0xe0, 0xfe, 0x00, 0x04, 0x00, 0x00, 0xe6, 0xe9, 0xcf, 0x8d, 0x76, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2d,
      0x00, 0x08, 0x00, 0x00, 0x8e, 0x01, 0x00, 0x17, 0x00, 0x58, 0x00, 0x01, 0x00, 0x00};
  const std::string emu = recordFlat(code, CpuModel::ttvmDefault());
  auto e = TraceReader::open(emu);
  ASSERT_TRUE(e.ok());
  const std::vector<TraceEvent> want = withoutDigests(*e);
  const auto isIcr = [](const TraceEvent& ev) {
    return ev.kind == EventKind::kMmioWrite && ev.address == 0xFEE00300;
  };
  ASSERT_EQ(std::count_if(want.begin(), want.end(), isIcr), 3);
  ASSERT_EQ(std::count_if(want.begin(), want.end(),
                          [](const TraceEvent& ev) { return ev.kind == EventKind::kNmi; }),
            2);
  // KVM's order: the second NMI right after the handler's first ICR write,
  // a third (KVM drops it) after its second.
  const std::string kvm = asKvmTrace(emu, [&](std::vector<TraceEvent>& events) {
    auto second = std::find_if(events.rbegin(), events.rend(),
                               [](const TraceEvent& ev) { return ev.kind == EventKind::kNmi; });
    const TraceEvent nmi = *second;
    events.erase(std::next(second).base());
    auto icr = std::find_if(events.begin(), events.end(), isIcr);
    icr = std::find_if(icr + 1, events.end(), isIcr);
    icr = events.insert(icr + 1, nmi);
    icr = std::find_if(icr, events.end(), isIcr);
    events.insert(icr + 1, nmi);
  });
  auto k = TraceReader::open(kvm);
  ASSERT_TRUE(k.ok());
  const std::string stepped = testing::tempTracePath("kvm_steps_nmi");
  auto st = assignSteps(*k, stepped);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(st->steps, e->end()->steps);
  auto out = TraceReader::open(stepped);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(testing::allEvents(*out), want);
}

// RDMSR and WRMSR that KVM sends to user space (KvmBackend::serveMsr) are in
// the trace as the machine answered them: x2APIC registers, and IA32_TSC
// from the virtual clock (a kRdtsc event at the RDMSR). The replay takes
// each at its instruction; an RDTSC is never given the RDMSR's value.
std::vector<uint8_t> msrGuest(bool rdtscFirst) {
  std::vector<uint8_t> code = {
      0xB9, 0x1B, 0x00, 0x00, 0x00,  // mov ecx, IA32_APIC_BASE
      0x0F, 0x32,                    // rdmsr
      0x0D, 0x00, 0x0C, 0x00, 0x00,  // or eax, EN | EXTD (x2APIC)
      0x0F, 0x30,                    // wrmsr
      0xB9, 0x02, 0x08, 0x00, 0x00,  // mov ecx, 0x802 (x2APIC ID)
      0x0F, 0x32,                    // rdmsr
      0xB9, 0x08, 0x08, 0x00, 0x00,  // mov ecx, 0x808 (TPR)
      0x31, 0xC0, 0x31, 0xD2,        // xor eax, eax; xor edx, edx
      0x0F, 0x30,                    // wrmsr
  };
  if (rdtscFirst) code.insert(code.end(), {0x0F, 0x31});  // rdtsc
  code.insert(code.end(), {
                              0xB9, 0x10, 0x00, 0x00, 0x00,  // mov ecx, IA32_TSC
                              0x0F, 0x32,                    // rdmsr
                              0xB9, 0x8B, 0x00, 0x00, 0x00,  // mov ecx, IA32_BIOS_SIGN_ID
                              0x0F, 0x32,                    // rdmsr (the model's, no event)
                              0xE6, 0xF4,                    // out 0xf4, al
                          });
  return code;
}

// assignSteps of `kvm` (asKvmTrace of the emulator trace `emu`) gives back
// every event of `emu` at its step, and the stepped trace replays to the
// recorded final state.
void expectStepsAndEndOf(const std::string& emu, TraceReader& kvm, const std::string& stem) {
  const std::string stepped = testing::tempTracePath(stem);
  auto s = assignSteps(kvm, stepped);
  ASSERT_TRUE(s.ok()) << s.error().message;
  auto e = TraceReader::open(emu);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(s->steps, e->end()->steps);
  const std::vector<TraceEvent> want = withoutDigests(*e);
  auto out = TraceReader::open(stepped);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(testing::allEvents(*out), want);
  auto session = ReplaySession::open(*out);
  ASSERT_TRUE(session.ok()) << session.error().message;
  EXPECT_EQ((*session)->runTo(~0ull, {}).kind, SessionStopKind::kEnd);
  EXPECT_EQ((*session)->checkEndState(), "");
}

TEST(KvmSteps, MsrAccessesKvmSentToUserSpaceReplayFromTheTrace) {
  const std::string emu = recordFlat(msrGuest(false), CpuModel::ttvmDefault());
  const std::string kvm = asKvmTrace(emu);
  auto k = TraceReader::open(kvm);
  ASSERT_TRUE(k.ok());
  size_t reads = 0, writes = 0, tscs = 0;
  for (const TraceEvent& e : testing::allEvents(*k)) {
    reads += e.kind == EventKind::kMsrRead && e.address == 0x802;
    writes += e.kind == EventKind::kMsrWrite && e.address == 0x808;
    tscs += e.kind == EventKind::kRdtsc;
  }
  ASSERT_EQ(reads, 1u);
  ASSERT_EQ(writes, 1u);
  ASSERT_EQ(tscs, 1u);
  // The replay reaches the recorded final state (EDX:EAX of the last RDMSR
  // is the model's microcode revision, computed again).
  expectStepsAndEndOf(emu, *k, "kvm_steps_msr");
}

TEST(KvmSteps, AnMsrReadTheMachineRefusedIsRefusedAgainWithoutAnEvent) {
  // KvmBackend::serveMsr logs a read only when the machine answered it; a
  // refused one (#GP in the guest) leaves no event. Three of them here (an
  // x2APIC MSR in xAPIC mode, MC0_CTL, the write-only x2APIC EOI), the first
  // of the same MSR as the answered read after it, with no event between.
  std::vector<uint8_t> code = {
      0xBC, 0x00, 0x00, 0x08, 0x00,                    // mov esp, 0x80000
      0x31, 0xDB,                                      // xor ebx, ebx
      0xB8, 0x60, 0x00, 0x01, 0x00,                    // mov eax, handler
      0x66, 0xA3, 0xD7, 0x00, 0x01, 0x00,              // mov [idt + 13*8], ax
      0xC1, 0xE8, 0x10,                                // shr eax, 16
      0x66, 0xA3, 0xDD, 0x00, 0x01, 0x00,              // mov [idt + 13*8 + 6], ax
      0x66, 0x8C, 0xC8,                                // mov ax, cs
      0x66, 0xA3, 0xD9, 0x00, 0x01, 0x00,              // mov [idt + 13*8 + 2], ax
      0x66, 0xC7, 0x05, 0xDB, 0x00, 0x01, 0x00, 0x00,  // mov word [idt + 13*8 + 4],
      0x8E,                                            //   0x8E00 (interrupt gate)
      0x0F, 0x01, 0x1D, 0x69, 0x00, 0x01, 0x00,        // lidt [idtr]
      0xB9, 0x02, 0x08, 0x00, 0x00,                    // mov ecx, 0x802 (x2APIC ID)
      0x0F, 0x32,                                      // rdmsr: xAPIC mode, #GP
      0xB9, 0x00, 0x04, 0x00, 0x00,                    // mov ecx, 0x400 (MC0_CTL)
      0x0F, 0x32,                                      // rdmsr: no banks, #GP
      0xB9, 0x1B, 0x00, 0x00, 0x00,                    // mov ecx, IA32_APIC_BASE
      0x0F, 0x32,                                      // rdmsr
      0x0D, 0x00, 0x0C, 0x00, 0x00,                    // or eax, EN | EXTD
      0x0F, 0x30,                                      // wrmsr: x2APIC mode
      0xB9, 0x0B, 0x08, 0x00, 0x00,                    // mov ecx, 0x80B (EOI)
      0x0F, 0x32,                                      // rdmsr: write-only, #GP
      0xB9, 0x02, 0x08, 0x00, 0x00,                    // mov ecx, 0x802
      0x0F, 0x32,                                      // rdmsr: answered (an event)
      0xE6, 0xF4,                                      // out 0xf4, al
      0x43,                                            // handler: inc ebx
      0x83, 0xC4, 0x04,                                // add esp, 4 (error code)
      0x83, 0x04, 0x24, 0x02,                          // add dword [esp], 2 (past rdmsr)
      0xCF,                                            // iret
      0x6F, 0x00, 0x6F, 0x00, 0x01, 0x00,              // idtr: 14 gates at idt
  };
  code.resize(code.size() + 14 * 8);  // idt
  const std::string emu = recordFlat(code, CpuModel::ttvmDefault());
  auto e = TraceReader::open(emu);
  ASSERT_TRUE(e.ok());
  ASSERT_EQ(e->end()->finalCpu.reg(Gpr::kRbx), 3u);  // three #GPs taken
  size_t reads = 0;
  for (const TraceEvent& ev : testing::allEvents(*e)) reads += ev.kind == EventKind::kMsrRead;
  ASSERT_EQ(reads, 1u);
  auto k = TraceReader::open(asKvmTrace(emu));
  ASSERT_TRUE(k.ok());
  expectStepsAndEndOf(emu, *k, "kvm_steps_msr_refused");
}

TEST(KvmSteps, AnRdtscIsNotGivenTheValueOfTheRdmsrAfterIt) {
  // KVM logs the RDMSR's TSC but not the RDTSC before it.
  const std::string kvm = asKvmTrace(
      recordFlat(msrGuest(true), CpuModel::ttvmDefault()), [](std::vector<TraceEvent>& events) {
        auto first = std::find_if(events.begin(), events.end(),
                                  [](const TraceEvent& e) { return e.kind == EventKind::kRdtsc; });
        ASSERT_NE(first, events.end());
        events.erase(first);
      });
  auto k = TraceReader::open(kvm);
  ASSERT_TRUE(k.ok());
  auto s = assignSteps(*k, testing::tempTracePath("kvm_steps_msr_rdtsc"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("step 10: rdtsc at 0x10020: value not recorded under KVM"),
            std::string::npos)
      << s.error().message;
}

TEST(KvmSteps, AHiddenInstructionTheEmulatorRefusedIsNamedWhenTheReplayLeavesThePath) {
  // KVM on an AMD host runs a hidden RDPID (no intercept), and the nested
  // VM's CPU a hidden RDTSCP: the guest went on as if it were a NOP of the
  // same length, which is what the emulator recorded here; the KVM trace
  // then holds the instruction in its place. The emulator raises #UD there
  // and later leaves the trace's path (no IDT: a triple fault before the
  // port write); the error names the instruction.
  struct Case {
    std::vector<uint8_t> nop, insn;
    const char* text;
    CpuModel model;
  };
  const Case cases[] = {
      {{0x0F, 0x1F, 0x40, 0x00}, {0xF3, 0x0F, 0xC7, 0xF8}, "rdpid eax", CpuModel::ttvmDefault()},
      {{0x0F, 0x1F, 0x00}, {0x0F, 0x01, 0xF9}, "rdtscp", hiding({"rdtscp"})},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    // out 0xe9,al; NOP; out 0xe9,al; out 0xf4,al
    std::vector<uint8_t> code = {0xE6, 0xE9};
    code.insert(code.end(), c.nop.begin(), c.nop.end());
    code.insert(code.end(), {0xE6, 0xE9, 0xE6, 0xF4});
    const std::string kvm = asKvmTrace(recordFlat(code, c.model), {}, [&](InitialState& init) {
      for (size_t k = 0; k < init.ram.pageCount(); ++k)
        if (init.ram.numbers[k] == 0x10000 / kPageSize)
          std::copy(c.insn.begin(), c.insn.end(), init.ram.bytes.begin() + k * kPageSize + 2);
    });
    auto k = TraceReader::open(kvm);
    ASSERT_TRUE(k.ok());
    auto s = assignSteps(*k, testing::tempTracePath("kvm_steps_hidden"));
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find(std::string("; before that, at step 1: ") + c.text +
                                     " at 0x10002: the emulator raised #UD (CPUID hid "),
              std::string::npos)
        << s.error().message;
  }
}

TEST(KvmSteps, AnEmulatorTraceIsNotOne) {
  const std::string emu = recordOldMode();
  auto e = TraceReader::open(emu);
  auto s = assignSteps(*e, testing::tempTracePath("kvm_steps_none"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("not a KVM trace"), std::string::npos);
}

}  // namespace
}  // namespace ttvm
