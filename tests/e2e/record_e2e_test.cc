// `ttvm record` end to end: each guest ends its run one way, and the trace's
// footer must name that reason with the final state; the exit status must be
// what scripts expect; recordings must be deterministic; a killed recorder
// must leave a trace that the reader opens and `ttvm recover` completes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ttvm/formats/trace_reader.h"
#include "ttvm/kvm/kvm.h"
#include "ttvm/machine/devices/uart_16550.h"
#include "ttvm/machine/loader.h"
#include "ttvm/machine/machine.h"
#include "ttvm/recorder/record_session.h"
#include "ttvm/replayer/replay_session.h"

namespace ttvm {
using ttvm::machine::Machine;
using ttvm::machine::ShutdownPort;
namespace {

std::string guest(const std::string& name) {
  return std::string(REC_GUEST_DIR) + "/" + name;
}
std::string tmp(const std::string& name) {
  return ::testing::TempDir() + "/rec_e2e_" + name;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Outcome {
  int status = -1;  // exit status, or -signal
  std::string out, err;
};

// Starts `ttvm record ARGS` (or `ttvm COMMAND ARGS`) with stdout/stderr to
// files; returns the pid. A nonzero `fileSizeLimit` caps the files it writes
// (RLIMIT_FSIZE, with SIGXFSZ ignored: writes past it fail with EFBIG, like a
// full disk).
pid_t spawn(const std::vector<std::string>& args, const std::string& tag, rlim_t fileSizeLimit = 0,
            std::string command = "record") {
  pid_t pid = fork();
  if (pid == 0) {
    if (fileSizeLimit != 0) {
      signal(SIGXFSZ, SIG_IGN);
      rlimit lim{fileSizeLimit, fileSizeLimit};
      if (setrlimit(RLIMIT_FSIZE, &lim) != 0) _exit(126);
    }
    int o = open(tmp(tag + ".out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = open(tmp(tag + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int n = open("/dev/null", O_RDONLY);
    dup2(o, 1);
    dup2(e, 2);
    dup2(n, 0);
    std::vector<char*> argv;
    std::string bin = TTVM_BIN;
    argv.push_back(bin.data());
    argv.push_back(command.data());
    std::vector<std::string> copy = args;
    for (std::string& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

Outcome wait(pid_t pid, const std::string& tag) {
  int ws = 0;
  waitpid(pid, &ws, 0);
  Outcome r;
  r.status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -WTERMSIG(ws);
  r.out = slurp(tmp(tag + ".out"));
  r.err = slurp(tmp(tag + ".err"));
  return r;
}

Outcome record(const std::vector<std::string>& args, const std::string& tag) {
  return wait(spawn(args, tag), tag);
}

std::vector<TraceEvent> events(const TraceReader& r) {
  std::vector<TraceEvent> out;
  auto cur = r.cursor();
  TraceEvent e;
  while (cur.next(e)) out.push_back(e);
  EXPECT_TRUE(cur.status().ok());
  return out;
}

// Records `g` into a trace and returns its reader, checking the exit status.
TraceReader recordTrace(const std::string& g, const std::string& tag, int expectedStatus,
                        std::vector<std::string> extra = {}) {
  std::string trace = tmp(tag + ".ttvm");
  std::vector<std::string> args = {"-o", trace, "--start-clock", "1700000000"};
  args.insert(args.end(), extra.begin(), extra.end());
  if (!g.empty()) args.push_back(guest(g));
  Outcome r = record(args, tag);
  EXPECT_EQ(r.status, expectedStatus) << r.err;
  auto reader = TraceReader::open(trace);
  EXPECT_TRUE(reader.ok()) << (reader.ok() ? "" : reader.error().message);
  EXPECT_FALSE(reader->recovered()) << reader->recoveryNote();
  EXPECT_TRUE(reader->end().has_value());
  return std::move(reader).value();
}

// `ttvm verify TRACE`: the replay must reach the recorded final state
// exactly, whatever ended the run.
Outcome runVerify(const std::string& trace) {
  // Named after the trace: ctest -j runs these tests in parallel processes.
  const std::string tag = "verify_" + trace.substr(trace.rfind('/') + 1);
  pid_t pid = fork();
  if (pid == 0) {
    int o = open(tmp(tag + ".out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = open(tmp(tag + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(o, 1);
    dup2(e, 2);
    execl(TTVM_BIN, TTVM_BIN, "verify", trace.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return wait(pid, tag);
}

void expectVerifies(const std::string& trace) {
  Outcome v = runVerify(trace);
  EXPECT_EQ(v.status, 0) << trace << ": " << v.err;
  EXPECT_NE(v.out.find("final state match"), std::string::npos) << v.out << v.err;
}

// A footer-less trace before and after `ttvm recover`: verify checks the
// prefix and says what it could not check (status 3); after recovery the
// footer holds the replayed state at the last recorded step, which verify
// checks (status 0, saying it covers the readable prefix).
void expectRecoverThenVerify(const std::string& trace, const std::string& fixed) {
  Outcome before = runVerify(trace);
  EXPECT_EQ(before.status, 3) << before.out << before.err;
  EXPECT_NE(before.err.find("not checked: the end of the run"), std::string::npos) << before.err;
  EXPECT_EQ(before.out.find("ok"), std::string::npos) << before.out;
  const std::string log = fixed + ".log";
  const std::string cmd =
      std::string(TTVM_BIN) + " recover -o " + fixed + " " + trace + " > " + log + " 2>&1";
  const int rc = std::system(cmd.c_str());
  ASSERT_EQ(WEXITSTATUS(rc), 0) << slurp(log);
  EXPECT_NE(slurp(log).find("recovered at step"), std::string::npos) << slurp(log);
  auto f = TraceReader::open(fixed);
  ASSERT_TRUE(f.ok()) << f.error().message;
  ASSERT_TRUE(f->end().has_value());
  EXPECT_TRUE(isRecoveredEnd(*f->end())) << f->end()->message;
  EXPECT_NE(f->end()->finalDigest, 0u);
  EXPECT_EQ(f->end()->finalDigest, stateDigest(f->end()->finalCpu));
  Outcome after = runVerify(fixed);
  EXPECT_EQ(after.status, 0) << after.out << after.err;
  EXPECT_NE(after.out.find("final state match"), std::string::npos) << after.out;
  EXPECT_NE(after.out.find("completed by `ttvm recover`"), std::string::npos) << after.out;
}

void expectConsistentEnd(const TraceReader& r) {
  expectVerifies(r.path());
  const TraceEnd& end = *r.end();
  EXPECT_EQ(end.finalDigest, stateDigest(end.finalCpu));
  EXPECT_EQ(end.steps, end.finalCpu.steps);
  auto ev = events(r);
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.back().kind, EventKind::kEndOfRun);
  EXPECT_EQ(ev.back().step, end.steps);
  EXPECT_EQ(ev.front().kind, EventKind::kStateDigest);
  for (size_t i = 1; i < ev.size(); ++i) EXPECT_LE(ev[i - 1].step, ev[i].step);
  EXPECT_FALSE(end.lastInstructions.empty());
}

TEST(RecordE2E, ExitDeviceStatusOutputAndFooter) {
  TraceReader r = recordTrace("rec_exit.elf", "exit", 0x43);
  const TraceEnd& end = *r.end();
  EXPECT_EQ(end.reason, EndReason::kExitDevice);
  EXPECT_EQ(end.exitStatus, 0x21u);
  expectConsistentEnd(r);
  EXPECT_EQ(slurp(tmp("exit.out")), "hello from rec_exit\n");
  // The replay runs the whole machine: no device access is in the trace.
  bool sawDebugExit = false;
  for (const TraceEvent& e : events(r)) {
    EXPECT_NE(e.kind, EventKind::kPortOut) << describeEvent(e);
    EXPECT_NE(e.kind, EventKind::kPortIn) << describeEvent(e);
    if (e.kind == EventKind::kDebugExit) sawDebugExit = e.value == 0x21;
  }
  EXPECT_TRUE(sawDebugExit);
  // With --log-device-reads the serial output is in the trace as port
  // writes, in order, and the replay checks them.
  TraceReader logged = recordTrace("rec_exit.elf", "exit_logged", 0x43, {"--log-device-reads"});
  std::string serial;
  for (const TraceEvent& e : events(logged))
    if (e.kind == EventKind::kPortOut && e.address == 0x3F8)
      serial.push_back(static_cast<char>(e.value));
  EXPECT_EQ(serial, "hello from rec_exit\n");
  expectConsistentEnd(logged);
  // The header keeps the guest image and its symbols.
  ASSERT_EQ(r.header().images.size(), 1u);
  EXPECT_EQ(r.header().images[0].name, "rec_exit.elf");
  EXPECT_EQ(r.header().images[0].format, ImageFormat::kMultiboot);
  bool hasStart = false;
  for (const Symbol& s : r.header().images[0].symbols) hasStart |= s.name == "_start";
  EXPECT_TRUE(hasStart);
  EXPECT_EQ(r.header().machine.startClockUnixNs, 1700000000ll * 1'000'000'000);
  EXPECT_NE(slurp(tmp("exit.err")).find("exit-device"), std::string::npos);
  // The last instructions, re-executed from the recorder's checkpoint: the
  // final one is the OUT to the exit port (E7 F4: out 0xf4, eax).
  ASSERT_GE(end.lastInstructions.size(), 2u);
  const auto& last = end.lastInstructions.back();
  ASSERT_GE(last.bytes.size(), 2u);
  EXPECT_EQ(last.bytes[0], 0xE7);
  EXPECT_EQ(last.bytes[1], 0xF4);
}

TEST(RecordE2E, TailReExecutionReproducesTheRecording) {
  // With a small checkpoint window, the tail starts mid-run (after timer
  // interrupts and port I/O); -v reports any mismatch as a self-check failure.
  for (const char* g : {"rec_timer.elf", "rec_io.elf"}) {
    std::string tag = std::string("tail_") + g;
    Outcome r = record({"-v", "-o", tmp(tag + ".ttvm"), guest(g)}, tag);
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(r.err.find("self-check"), std::string::npos) << r.err;
    auto reader = TraceReader::open(tmp(tag + ".ttvm"));
    ASSERT_TRUE(reader.ok());
    EXPECT_EQ(reader->end()->lastInstructions.size(), 16u) << g;
  }
}

TEST(RecordE2E, AWriteErrorEndsTheRunAndLeavesARecoverablePrefix) {
  // The trace writer's thread hits the file-size limit part-way through
  // rec_io's 2 MB of events: the run must end (not go on dropping events),
  // say why and where, and exit 74 (EX_IOERR); what reached the disk is a readable
  // prefix that `ttvm recover` completes.
  const std::string trace = tmp("efbig.ttvm"), fixed = tmp("efbig_fixed.ttvm");
  Outcome r =
      wait(spawn({"--log-device-reads", "-o", trace, guest("rec_io.elf")}, "efbig", 256 * 1024),
           "efbig");
  EXPECT_EQ(r.status, 74) << r.err;
  EXPECT_NE(r.err.find("the trace could not be written"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ttvm recover"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(trace), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("File too large"), std::string::npos) << r.err;
  // It stopped when the write failed, well before the guest's own end.
  EXPECT_EQ(r.err.find("at step 2500006"), std::string::npos) << r.err;
  struct stat st {};
  ASSERT_EQ(::stat(trace.c_str(), &st), 0);
  EXPECT_LE(st.st_size, 256 * 1024);
  auto reader = TraceReader::open(trace);
  ASSERT_TRUE(reader.ok()) << reader.error().message;
  EXPECT_TRUE(reader->recovered());
  EXPECT_GT(reader->eventCount(), 1000u);
  expectRecoverThenVerify(trace, fixed);
  auto done = TraceReader::open(fixed);
  ASSERT_TRUE(done.ok()) << done.error().message;
  EXPECT_FALSE(done->recovered());
  EXPECT_EQ(done->eventCount(), reader->eventCount());
}

TEST(RecordE2E, NoTraceExitsWithTheGuestStatus) {
  std::string cwdTrace = "rec_exit.ttvm";
  ::unlink(cwdTrace.c_str());
  Outcome r = record({"--no-trace", guest("rec_exit.elf")}, "notrace");
  EXPECT_EQ(r.status, 0x43);
  EXPECT_EQ(r.out, "hello from rec_exit\n");
  EXPECT_NE(::access(cwdTrace.c_str(), F_OK), 0);
}

TEST(RecordE2E, Panic) {
  TraceReader r = recordTrace("rec_panic.elf", "panic", 6);
  EXPECT_EQ(r.end()->reason, EndReason::kPanic);
  expectConsistentEnd(r);
}

TEST(RecordE2E, ResetThroughKeyboardControllerAndCf9) {
  for (const char* g : {"rec_reset_kbd.elf", "rec_reset_cf9.elf"}) {
    TraceReader r = recordTrace(g, g, 2);
    EXPECT_EQ(r.end()->reason, EndReason::kReset) << g;
    expectConsistentEnd(r);
  }
}

TEST(RecordE2E, TripleFaultStopsAtTheFaultingInstruction) {
  TraceReader r = recordTrace("rec_triple.elf", "triple", 4);
  const TraceEnd& end = *r.end();
  EXPECT_EQ(end.reason, EndReason::kTripleFault);
  expectConsistentEnd(r);
  ASSERT_FALSE(end.lastInstructions.empty());
  const auto& last = end.lastInstructions.back();
  ASSERT_GE(last.bytes.size(), 2u);
  EXPECT_EQ(last.bytes[0], 0x0F);  // ud2
  EXPECT_EQ(last.bytes[1], 0x0B);
}

TEST(RecordE2E, TripleFaultAfterAPageFaultReplaysToTheSameState) {
  // #PF pushing onto a read-only page, no IDT: CR2 changes in the step that
  // shuts the CPU down, so the replay must execute that step too.
  TraceReader r = recordTrace("rec_triple_pf.elf", "triple_pf", 4, {"-v"});
  const TraceEnd& end = *r.end();
  EXPECT_EQ(end.reason, EndReason::kTripleFault);
  EXPECT_EQ(end.finalCpu.cr2, 0x4FFFFCu);
  expectConsistentEnd(r);
  EXPECT_EQ(slurp(tmp("triple_pf.err")).find("did not reproduce"), std::string::npos);
  ASSERT_FALSE(end.lastInstructions.empty());
  EXPECT_EQ(end.lastInstructions.back().bytes.front(), 0x50);  // push eax
}

TEST(RecordE2E, HangWithInterruptsDisabled) {
  TraceReader r = recordTrace("rec_hang.elf", "hang", 8);
  EXPECT_EQ(r.end()->reason, EndReason::kHang);
  EXPECT_EQ(r.end()->finalCpu.rflags & flags::kIF, 0u);
  EXPECT_TRUE(r.end()->finalCpu.pending.halted);
  expectConsistentEnd(r);
}

TEST(RecordE2E, HangWhenTimersFireButNothingReachesTheCpu) {
  TraceReader r = recordTrace("rec_idle_hang.elf", "idlehang", 8);
  EXPECT_EQ(r.end()->reason, EndReason::kHang);
  EXPECT_NE(r.end()->finalCpu.rflags & flags::kIF, 0u);
  EXPECT_NE(r.end()->message.find("virtual time"), std::string::npos) << r.end()->message;
  expectConsistentEnd(r);
}

TEST(RecordE2E, ShutdownPort) {
  TraceReader r = recordTrace("rec_shutdown.elf", "shutdown", 0);
  EXPECT_EQ(r.end()->reason, EndReason::kShutdown);
  expectConsistentEnd(r);
}

TEST(RecordE2E, StepLimitIsExactAndDigestsAreRegular) {
  TraceReader r = recordTrace("rec_loop.elf", "maxsteps", 10,
                              {"--max-steps", "200000", "--digest-interval", "65536"});
  EXPECT_EQ(r.end()->reason, EndReason::kMaxSteps);
  EXPECT_EQ(r.end()->steps, 200000u);
  expectConsistentEnd(r);
  std::vector<uint64_t> digestSteps;
  for (const TraceEvent& e : events(r))
    if (e.kind == EventKind::kStateDigest) digestSteps.push_back(e.step);
  EXPECT_EQ(digestSteps, (std::vector<uint64_t>{0, 65536, 131072, 196608}));
}

TEST(RecordE2E, SnapshotsAreSeekPointsWithDeviceState) {
  TraceReader r = recordTrace("rec_timer.elf", "snap", 1, {"--snapshot-every", "100"});
  ASSERT_GE(r.snapshots().size(), 2u);
  EXPECT_EQ(r.snapshots()[0].step, 100u);
  EXPECT_EQ(r.snapshots()[1].step, 200u);
  auto snap = r.loadSnapshot(1);
  ASSERT_TRUE(snap.ok()) << snap.error().message;
  EXPECT_EQ(snap->cpu.steps, 200u);
  EXPECT_GT(snap->ram.pageCount(), 0u);
  // The replayer's path: a machine from the header takes the snapshot's devices.
  auto m = Machine::fromTraceHeader(r.header());
  ASSERT_TRUE(m.ok()) << m.error().message;
  Status st = (*m)->loadDeviceState(snap->deviceState);
  EXPECT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ((*m)->saveDeviceState(), snap->deviceState);
  auto init = r.initialState();
  ASSERT_TRUE(init.ok());
  EXPECT_TRUE((*m)->loadDeviceState(init->deviceState).ok());
}

TEST(RecordE2E, WallClockTimeout) {
  TraceReader r = recordTrace("rec_loop.elf", "timeout", 124, {"--timeout", "0.3"});
  EXPECT_EQ(r.end()->reason, EndReason::kTimeout);
  EXPECT_GT(r.end()->steps, 0u);
  expectConsistentEnd(r);
}

TEST(RecordE2E, SigintAndSigtermWriteACleanFooter) {
  for (int sig : {SIGINT, SIGTERM}) {
    std::string tag = "sig" + std::to_string(sig);
    std::string trace = tmp(tag + ".ttvm");
    ::unlink(trace.c_str());
    pid_t pid = spawn({"-o", trace, guest("rec_loop.elf")}, tag);
    for (int i = 0; i < 200 && ::access(trace.c_str(), F_OK) != 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    kill(pid, sig);
    Outcome run = wait(pid, tag);
    EXPECT_EQ(run.status, 130) << run.err;
    auto r = TraceReader::open(trace);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_FALSE(r->recovered());
    ASSERT_TRUE(r->end().has_value());
    EXPECT_EQ(r->end()->reason, EndReason::kInterrupted);
    expectConsistentEnd(*r);
  }
}

// Waits until `trace` exists and the recorder has run a little.
void waitForRecording(const std::string& trace) {
  for (int i = 0; i < 200 && ::access(trace.c_str(), F_OK) != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
}

void expectInterruptedWithFooter(const std::string& trace) {
  auto r = TraceReader::open(trace);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->recovered()) << r->recoveryNote();
  ASSERT_TRUE(r->end().has_value());
  EXPECT_EQ(r->end()->reason, EndReason::kInterrupted);
  expectConsistentEnd(*r);
}

TEST(RecordE2E, SecondSignalDoesNotAbortTheClose) {
  // Two SIGTERMs back to back (what GNU timeout sends: the child, then its
  // process group), and SIGINT then SIGTERM: the footer is still written.
  for (auto [first, second] :
       {std::pair{SIGTERM, SIGTERM}, std::pair{SIGINT, SIGTERM}, std::pair{SIGHUP, SIGINT}}) {
    const std::string tag = "twice" + std::to_string(first) + "_" + std::to_string(second);
    const std::string trace = tmp(tag + ".ttvm");
    ::unlink(trace.c_str());
    pid_t pid = spawn({"-o", trace, guest("rec_loop.elf")}, tag);
    waitForRecording(trace);
    kill(pid, first);
    kill(pid, second);
    Outcome run = wait(pid, tag);
    EXPECT_EQ(run.status, 130) << run.err;
    expectInterruptedWithFooter(trace);
  }
}

TEST(RecordE2E, GnuTimeoutWithKillAfterKeepsTheFooter) {
  // `timeout -k 5 0.5 ttvm record ...`: TERM to the child and to the group.
  const std::string trace = tmp("gnu_timeout.ttvm");
  ::unlink(trace.c_str());
  const std::string cmd = "timeout -k 5 0.5 " + std::string(TTVM_BIN) + " record -o " + trace +
                          " " + guest("rec_loop.elf") + " > /dev/null 2>&1";
  const int rc = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(rc)) << rc;
  EXPECT_EQ(WEXITSTATUS(rc), 124);  // timeout's own status: the command timed out
  expectInterruptedWithFooter(trace);
}

TEST(RecordE2E, TwoRecordersOnOnePathTheSecondFailsClearly) {
  const std::string trace = tmp("shared.ttvm");
  ::unlink(trace.c_str());
  pid_t first = spawn({"-o", trace, guest("rec_loop.elf")}, "shared1");
  waitForRecording(trace);
  Outcome second = record({"-o", trace, guest("rec_exit.elf")}, "shared2");
  EXPECT_NE(second.status, 0);
  EXPECT_NE(second.err.find("another ttvm is writing"), std::string::npos) << second.err;
  kill(first, SIGINT);
  Outcome run = wait(first, "shared1");
  EXPECT_EQ(run.status, 130) << run.err;
  expectInterruptedWithFooter(trace);  // the first recording is whole
}

TEST(RecordE2E, OutputThatIsAnInputIsRefused) {
  const std::string copy = tmp("guest_copy.elf");
  ASSERT_EQ(std::system(("cp " + guest("rec_exit.elf") + " " + copy).c_str()), 0);
  const std::string before = slurp(copy);
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"-o", copy, copy},
        std::vector<std::string>{"-o", copy, "--initrd", copy + " args", guest("rec_exit.elf")}}) {
    Outcome r = record(args, "selfout");
    EXPECT_EQ(r.status, 64) << r.err;
    EXPECT_NE(r.err.find("is also an input"), std::string::npos) << r.err;
    EXPECT_EQ(slurp(copy), before);
  }
}

TEST(RecordE2E, CrashOfTtvmItselfWritesAnInternalErrorFooter) {
  // SIGSEGV delivered to the recorder stands in for a crash of ttvm: the
  // handler closes the trace with reason internal-error, then dies of it.
  std::string trace = tmp("crash.ttvm");
  ::unlink(trace.c_str());
  pid_t pid = spawn({"-o", trace, guest("rec_loop.elf")}, "crash");
  for (int i = 0; i < 200 && ::access(trace.c_str(), F_OK) != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  kill(pid, SIGSEGV);
  Outcome run = wait(pid, "crash");
  EXPECT_EQ(run.status, -SIGSEGV);
  auto r = TraceReader::open(trace);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->recovered()) << r->recoveryNote();
  ASSERT_TRUE(r->end().has_value());
  EXPECT_EQ(r->end()->reason, EndReason::kInternalError);
  EXPECT_NE(r->end()->message.find("signal 11"), std::string::npos) << r->end()->message;
}

TEST(RecordE2E, SigkillLeavesAReadableTraceThatRecoverCompletes) {
  std::string trace = tmp("kill.ttvm"), fixed = tmp("kill_fixed.ttvm");
  // A guest that runs until killed: the spinning loop with a trace.
  pid_t pid = spawn({"-o", trace, guest("rec_loop.elf")}, "kill");
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // > 1 s flush interval
  kill(pid, SIGKILL);
  Outcome run = wait(pid, "kill");
  EXPECT_EQ(run.status, -SIGKILL);
  auto r = TraceReader::open(trace);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->recovered());
  EXPECT_FALSE(r->end().has_value());
  EXPECT_GT(r->eventCount(), 0u);  // digests flushed before the kill
  // `ttvm recover` completes it, re-executing to the last recorded step.
  expectRecoverThenVerify(trace, fixed);
  auto f = TraceReader::open(fixed);
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_FALSE(f->recovered());
  ASSERT_TRUE(f->end().has_value());
  EXPECT_EQ(f->end()->reason, EndReason::kInterrupted);
  EXPECT_EQ(f->eventCount(), r->eventCount());
}

TEST(RecordE2E, DamagedSnapshotIsRefusedByVerifyAndInfo) {
  // A replay from the start never reads the snapshots; verify and info
  // check every frame anyway, so a flipped bit there is not "ok".
  TraceReader r = recordTrace("rec_timer.elf", "snapflip", 1, {"--snapshot-every", "100"});
  ASSERT_GE(r.snapshots().size(), 2u);
  std::string bytes = slurp(r.path());
  const size_t at = r.snapshots()[1].offset + 45;  // inside the SNAP frame's payload
  ASSERT_LT(at, bytes.size());
  bytes[at] = static_cast<char>(bytes[at] ^ 0x10);
  const std::string damaged = tmp("snapflip_damaged.ttvm");
  std::ofstream(damaged, std::ios::binary) << bytes;
  Outcome v = runVerify(damaged);
  EXPECT_EQ(v.status, 2) << v.out << v.err;
  // The error names the SNAP frame (its checksum field, 36 bytes in).
  EXPECT_NE(v.err.find("byte " + std::to_string(r.snapshots()[1].offset + 36) + ": SNAP frame"),
            std::string::npos)
      << v.err;
  EXPECT_EQ(v.out.find("ok"), std::string::npos) << v.out;
  const int rc =
      std::system((std::string(TTVM_BIN) + " info " + damaged + " > /dev/null 2>&1").c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 1);
}

TEST(RecordE2E, ReplayNeverClaimsAMatchItDidNotCheck) {
  // A footer-less copy and one with a chunk duplicated: `ttvm replay` used to
  // exit 0 saying "the final state match the recording" on both.
  TraceReader r = recordTrace("rec_io.elf", "claims", 1, {"--log-device-reads"});
  ASSERT_GE(r.chunkCount(), 3u);
  const std::string bytes = slurp(r.path());
  const ChunkInfo c1 = r.chunks()[1];
  const size_t end1 = c1.offset + 40 + c1.compressedBytes;
  const std::string noFooter = tmp("claims_nofooter.ttvm"), dup = tmp("claims_dup.ttvm");
  std::ofstream(noFooter, std::ios::binary) << bytes.substr(0, r.chunks()[2].offset);
  std::ofstream(dup, std::ios::binary)
      << bytes.substr(0, end1) + bytes.substr(c1.offset, end1 - c1.offset) + bytes.substr(end1);
  for (const std::string& t : {noFooter, dup}) {
    const std::string out = t + ".out";
    const int rc =
        std::system((std::string(TTVM_BIN) + " replay " + t + " > " + out + " 2>&1").c_str());
    EXPECT_EQ(WEXITSTATUS(rc), 3) << slurp(out);
    EXPECT_EQ(slurp(out).find("final state match"), std::string::npos) << slurp(out);
    EXPECT_NE(slurp(out).find("were not checked"), std::string::npos) << slurp(out);
    Outcome v = runVerify(t);
    EXPECT_EQ(v.status, 3) << v.err;
  }
}

TEST(RecordE2E, TimerInterruptsIdleSkipAndTsc) {
  // The default trace holds the idle skips (each HLT jumps to the next PIT
  // tick) and nothing the machine computes: no interrupt, no TSC value.
  TraceReader r = recordTrace("rec_timer.elf", "timer", 1);  // value 0: all TSC deltas ~1 ms
  EXPECT_EQ(r.end()->reason, EndReason::kExitDevice);
  EXPECT_EQ(r.end()->exitStatus, 0u);
  EXPECT_EQ(slurp(tmp("timer.out")), "5 timer ticks\n");
  int hlts = 0, idles = 0;
  uint64_t lastIdle = 0;
  for (const TraceEvent& e : events(r)) {
    EXPECT_NE(e.kind, EventKind::kInterrupt) << describeEvent(e);
    EXPECT_NE(e.kind, EventKind::kRdtsc) << describeEvent(e);
    hlts += e.kind == EventKind::kHlt;
    if (e.kind == EventKind::kIdle) {
      ++idles;
      EXPECT_GT(e.value, lastIdle) << describeEvent(e);
      lastIdle = e.value;
    }
  }
  EXPECT_GE(hlts, 5);
  EXPECT_GE(idles, 5);
  expectConsistentEnd(r);
  // With --log-device-reads the machine's answers are there too, and equal
  // what the replay computes: 5 ticks at vector 0x20, 6 TSC reads.
  TraceReader logged = recordTrace("rec_timer.elf", "timer_logged", 1, {"--log-device-reads"});
  int interrupts = 0, rdtsc = 0;
  for (const TraceEvent& e : events(logged)) {
    if (e.kind == EventKind::kInterrupt) {
      ++interrupts;
      EXPECT_EQ(e.value, 0x20u);
    }
    rdtsc += e.kind == EventKind::kRdtsc;
  }
  EXPECT_EQ(interrupts, 5);
  EXPECT_EQ(rdtsc, 6);
  expectConsistentEnd(logged);
}

TEST(RecordE2E, LapicAndTscReadsAreComputedNotLogged) {
  // rec_lapic reads the local APIC's ID and the TSC 1,000,000 times each
  // (issue 12's "teaching kernel" case): the default trace holds none of
  // those answers, only digests and the end, and replays to the same state;
  // with --log-device-reads every answer is there (the old density).
  TraceReader r = recordTrace("rec_lapic.elf", "lapic", 1);  // value 0: IDs equal, TSC monotonic
  EXPECT_EQ(r.end()->reason, EndReason::kExitDevice);
  EXPECT_EQ(r.end()->exitStatus, 0u);
  for (const TraceEvent& e : events(r)) {
    EXPECT_TRUE(e.kind == EventKind::kStateDigest || e.kind == EventKind::kDeviceDigest ||
                e.kind == EventKind::kDebugExit || e.kind == EventKind::kEndOfRun)
        << describeEvent(e);
  }
  // Two 64-bit digests per 64 Ki steps: under 0.5 bytes per 1000 steps.
  const double perKiloStep =
      static_cast<double>(r.compressedEventBytes()) * 1000.0 / static_cast<double>(r.end()->steps);
  EXPECT_LE(perKiloStep, 0.5) << r.compressedEventBytes() << " bytes for " << r.end()->steps;
  expectConsistentEnd(r);
  TraceReader logged = recordTrace("rec_lapic.elf", "lapic_logged", 1, {"--log-device-reads"});
  uint64_t lapicReads = 0, rdtsc = 0;
  for (const TraceEvent& e : events(logged)) {
    lapicReads += e.kind == EventKind::kMmioRead && e.address == 0xFEE00020;
    rdtsc += e.kind == EventKind::kRdtsc;
  }
  EXPECT_EQ(lapicReads, 1'000'001u);
  EXPECT_EQ(rdtsc, 1'000'001u);
  EXPECT_EQ(logged.end()->steps, r.end()->steps);
  EXPECT_EQ(logged.end()->finalDigest, r.end()->finalDigest);
  EXPECT_LT(r.fileBytes(), logged.fileBytes());
  std::printf(
      "rec_lapic, %llu steps: events %llu bytes (%.3f per 1000 steps), file %llu bytes; "
      "--log-device-reads: events %llu bytes, file %llu bytes\n",
      static_cast<unsigned long long>(r.end()->steps),
      static_cast<unsigned long long>(r.compressedEventBytes()), perKiloStep,
      static_cast<unsigned long long>(r.fileBytes()),
      static_cast<unsigned long long>(logged.compressedEventBytes()),
      static_cast<unsigned long long>(logged.fileBytes()));
  expectConsistentEnd(logged);
}

TEST(RecordE2E, TerminalInputWhileIdlingInRealtimeReplays) {
  // --realtime waits for the next timer in wall time and takes terminal
  // input while it waits: a byte that arrives there comes before the jump
  // in virtual time, and its interrupt wakes the guest at the time reached.
  // The replay must hand the byte over before that jump (not after it, as
  // for input that arrives between slices). rec_serial_irq halts between
  // PIT ticks 55 ms apart; the poll below runs every 10 ms of waiting and
  // sends a byte on every 4th call, so most arrive inside a wait.
  machine::MachineOptions mo;
  mo.ramBytes = 16ull << 20;
  mo.startClockUnixNs = 1'700'000'000'000'000'000;
  auto m = Machine::create(mo);
  ASSERT_TRUE(m.ok());
  auto file = machine::readFileBytes(guest("rec_serial_irq.elf"), 1 << 20, "guest");
  ASSERT_TRUE(file.ok()) << file.error().message;
  machine::LoadOptions lo;
  lo.name = "rec_serial_irq.elf";
  auto loaded = machine::loadGuest(**m, *file, lo);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  RecordOptions ro;
  ro.tracePath = tmp("serial_irq_rt.ttvm");
  ro.realtime = true;
  ro.timeoutSeconds = 30;
  ro.digestInterval = 4096;
  const std::string typed = "hello q";
  size_t polls = 0, sent = 0;
  ro.poll = [&](Machine& machine) {
    if (++polls % 4 == 0 && sent < typed.size()) machine.com1().receive(typed[sent++]);
  };
  RecordSession session(**m, std::move(loaded).value(), ro);
  ASSERT_TRUE(session.start().ok());
  auto rec = session.run();
  ASSERT_TRUE(rec.ok()) << rec.error().message;
  ASSERT_EQ(rec->end.reason, EndReason::kExitDevice) << rec->end.message;
  EXPECT_EQ(rec->end.exitStatus, typed.size());
  EXPECT_EQ(session.tailProblem, "");
  auto reader = TraceReader::open(ro.tracePath);
  ASSERT_TRUE(reader.ok());
  // Every byte is in the trace; some arrived inside a wait (the idle skip
  // of their step follows them), the case this test is about.
  size_t terminal = 0, inWait = 0;
  const std::vector<TraceEvent> ev = events(*reader);
  for (size_t i = 0; i < ev.size(); ++i) {
    if (ev[i].kind != EventKind::kSerialInput || ev[i].flags != 0) continue;
    ++terminal;
    inWait +=
        i + 1 < ev.size() && ev[i + 1].kind == EventKind::kIdle && ev[i + 1].step == ev[i].step;
  }
  EXPECT_EQ(terminal, typed.size());
  EXPECT_GT(inWait, 0u);
  auto replay = ReplaySession::open(*reader);
  ASSERT_TRUE(replay.ok()) << replay.error().message;
  const SessionStop stop = (*replay)->runTo(~0ull);
  auto d = (*replay)->divergence();
  ASSERT_EQ(stop.kind, SessionStopKind::kEnd) << (d ? d->format() : toString(stop.kind));
  EXPECT_EQ((*replay)->checkEndState(), "");
  EXPECT_EQ((*replay)->state().gpr[3], rec->end.finalCpu.gpr[3]);  // EBX: the arrival times
}

TEST(RecordE2E, FollowReplaysARecordingInProgress) {
  // rec_serial_irq halts between PIT ticks 55 ms apart; with --realtime its
  // run takes the wall-clock time of --timeout, and the writer flushes a
  // chunk each second. `ttvm replay --follow`, started beside the recorder
  // (before the file exists), must replay the flushed chunks while the
  // recorder still runs, then end, once the footer is written, with the
  // same checked final state as `ttvm verify` afterwards.
  const std::string trace = tmp("follow.ttvm");
  std::remove(trace.c_str());
  const pid_t follower = spawn({"--follow", trace}, "follow_replay", 0, "replay");
  const Outcome rec = record({"-o", trace, "--start-clock", "1700000000", "--realtime", "--timeout",
                              "4", guest("rec_serial_irq.elf")},
                             "follow_rec");
  const auto recorded = std::chrono::steady_clock::now();
  // What the follower printed while the recorder ran.
  const std::string during = slurp(tmp("follow_replay.out"));
  int ws = 0;
  pid_t done = 0;
  while ((done = waitpid(follower, &ws, WNOHANG)) == 0 &&
         std::chrono::steady_clock::now() - recorded < std::chrono::seconds(20))
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const double lag =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - recorded).count();
  if (done == 0) {
    kill(follower, SIGKILL);
    waitpid(follower, &ws, 0);
    FAIL() << "the follower did not end within 20 s of the recording: "
           << slurp(tmp("follow_replay.out")) << slurp(tmp("follow_replay.err"));
  }
  ASSERT_EQ(rec.status, 124) << rec.err;  // the --timeout ended the run
  const std::string out = slurp(tmp("follow_replay.out"));
  ASSERT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0) << out << slurp(tmp("follow_replay.err"));
  std::printf("follower ended %.3f s after the recorder\n", lag);
  EXPECT_LT(lag, 5.0);

  // Progress with increasing steps before the recorder ended.
  std::vector<uint64_t> steps;
  std::istringstream lines(during);
  for (std::string l; std::getline(lines, l);)
    if (l.rfind("follow: step ", 0) == 0) steps.push_back(std::stoull(l.substr(13)));
  ASSERT_GE(steps.size(), 2u) << during;
  for (size_t i = 1; i < steps.size(); ++i) EXPECT_GT(steps[i], steps[i - 1]) << during;

  // The same end, checked, as a replay of the finished file.
  auto reader = TraceReader::open(trace);
  ASSERT_TRUE(reader.ok()) << reader.error().message;
  ASSERT_FALSE(reader->recovered());
  const std::string n = std::to_string(reader->end()->steps);
  EXPECT_LT(steps.back(), reader->end()->steps);
  EXPECT_NE(out.find("replayed " + n + " steps to the end (timeout"), std::string::npos) << out;
  EXPECT_NE(out.find("the final state match the recording"), std::string::npos) << out;
  const Outcome v = runVerify(trace);
  EXPECT_EQ(v.status, 0) << v.err;
  EXPECT_NE(v.out.find("ok: " + n + " steps"), std::string::npos) << v.out;
}

TEST(RecordE2E, RealtimePacesIdleTimeToTheWallClock) {
  // rec_idle_hang idles with every timer interrupt masked. Without
  // --realtime, 60 s of virtual idle time pass at once and the run ends as a
  // hang; with it, virtual time follows the wall clock, so a 0.5 s wall-clock
  // limit ends the run first, after about 0.5 s of virtual time.
  TraceReader fast = recordTrace("rec_idle_hang.elf", "rt_fast", 8, {"--timeout", "5"});
  EXPECT_EQ(fast.end()->reason, EndReason::kHang);
  TraceReader paced =
      recordTrace("rec_idle_hang.elf", "rt_paced", 124, {"--realtime", "--timeout", "0.5"});
  EXPECT_EQ(paced.end()->reason, EndReason::kTimeout);
}

TEST(RecordE2E, DeterministicEventStreams) {
  for (const char* g : {"rec_timer.elf", "rec_exit.elf"}) {
    TraceReader a = recordTrace(g, std::string("det_a_") + g, g[4] == 't' ? 1 : 0x43);
    TraceReader b = recordTrace(g, std::string("det_b_") + g, g[4] == 't' ? 1 : 0x43);
    EXPECT_EQ(events(a), events(b)) << g;
    EXPECT_EQ(*a.end(), *b.end()) << g;
    EXPECT_EQ(a.header().machine, b.header().machine);
    EXPECT_EQ(a.header().createdUnixNs, b.header().createdUnixNs);
    auto ia = a.initialState(), ib = b.initialState();
    ASSERT_TRUE(ia.ok() && ib.ok());
    EXPECT_EQ(*ia, *ib) << g;
  }
}

TEST(RecordE2E, LoadersThroughTheCommandLine) {
  {
    TraceReader r = recordTrace("rec_long.elf", "long", 0x2B);
    EXPECT_EQ(r.header().images[0].format, ImageFormat::kElf64);
    EXPECT_EQ(cpuMode(r.end()->finalCpu), CpuMode::kLong64);
  }
  {
    TraceReader r =
        recordTrace("rec_real.bin", "flatreal", 0x23, {"--load-addr", "0x7c00", "--mode", "real"});
    EXPECT_EQ(r.header().images[0].format, ImageFormat::kFlat);
    EXPECT_EQ(cpuMode(r.end()->finalCpu), CpuMode::kReal);
    EXPECT_EQ(slurp(tmp("flatreal.out")), "real mode ok\n");
  }
  {
    TraceReader r = recordTrace("rec_real.bin", "bootsector", 0x23);
    EXPECT_EQ(r.header().images[0].format, ImageFormat::kBootSector);
  }
}

// Runs `ttvm SUBCOMMAND ARGS` (verify, info) and returns its exit status.
int ttvmCommand(const std::string& sub, const std::vector<std::string>& args) {
  std::string cmd = std::string(TTVM_BIN) + " " + sub;
  for (const std::string& a : args) cmd += " '" + a + "'";
  cmd += " >/dev/null 2>&1";
  int ws = std::system(cmd.c_str());
  return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

TEST(RecordE2E, SerialInputIsRecordedAndReplaysWithoutTheFile) {
  const std::string input = tmp("serial_input.txt");
  {
    std::ofstream f(input, std::ios::binary);
    f << "hi\x01 \rq";
  }
  const std::string kOut = "ready>[68][69][01][20][0d][71] bye\n";
  TraceReader a = recordTrace("rec_console.elf", "serin_a", 0x43, {"--serial-input", input});
  EXPECT_EQ(slurp(tmp("serin_a.out")), kOut);
  // The bytes arrive by the guest's own accesses: a second recording is identical.
  TraceReader b = recordTrace("rec_console.elf", "serin_b", 0x43, {"--serial-input", input});
  EXPECT_EQ(events(a), events(b));
  // What arrived on the line is in the trace, each byte at the UART access
  // that took it; the guest's reads and writes are not (the replay's UART
  // answers them).
  std::string line;
  for (const TraceEvent& e : events(a)) {
    if (e.kind == EventKind::kSerialInput) {
      EXPECT_EQ(e.flags, TraceEvent::kFlagLine) << describeEvent(e);
      line += static_cast<char>(e.value);
    }
    EXPECT_NE(e.kind, EventKind::kPortIn) << describeEvent(e);
  }
  EXPECT_EQ(line, "hi\x01 \rq");
  // With --log-device-reads, what the guest read and wrote is there too.
  TraceReader logged = recordTrace("rec_console.elf", "serin_logged", 0x43,
                                   {"--serial-input", input, "--log-device-reads"});
  std::string read, written;
  for (const TraceEvent& e : events(logged)) {
    if (e.kind == EventKind::kPortIn && e.address == 0x3F8) read += static_cast<char>(e.value);
    if (e.kind == EventKind::kPortOut && e.address == 0x3F8) written += static_cast<char>(e.value);
  }
  EXPECT_EQ(read, "hi\x01 \rq");
  EXPECT_EQ(written, kOut);
  EXPECT_EQ(ttvmCommand("verify", {tmp("serin_logged.ttvm")}), 0);
  // Replay needs no input file.
  ASSERT_EQ(std::remove(input.c_str()), 0);
  EXPECT_EQ(ttvmCommand("verify", {tmp("serin_a.ttvm")}), 0);
  Outcome missing =
      record({"--no-trace", "--serial-input", input, guest("rec_console.elf")}, "serin_missing");
  EXPECT_EQ(missing.status, 66);
  EXPECT_NE(missing.err.find("--serial-input"), std::string::npos) << missing.err;
  EXPECT_NE(missing.err.find("serial_input.txt"), std::string::npos) << missing.err;
}

TEST(RecordE2E, DiskOptionsRefuseBadImagesClearly) {
  const std::string odd = tmp("odd.img"), blank = tmp("blank.img");
  {
    std::ofstream(odd, std::ios::binary) << std::string(1000, 'x');
    std::ofstream(blank, std::ios::binary) << std::string(1024, '\0');
  }
  struct Case {
    std::vector<std::string> args;
    int status;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--disk", tmp("no_such.img")}, 66, "no_such.img: cannot open the disk image"},
      {{"--disk", ::testing::TempDir()}, 66, "is a directory"},
      {{"--disk", odd}, 66, "1000 bytes, is not a multiple of 512"},
      {{"--disk", blank}, 66, "not bootable: sector 0 does not end with the boot signature 55 AA"},
      {{"--disk", blank, "--disk", blank, "--disk", blank, "--disk", blank, "--disk", blank},
       66,
       "5 disks given"},
      {{"--drive", "file=" + blank + ",format=qcow2"}, 64, "format=raw"},
      {{"--drive", "file=" + blank + ",index=1", "--drive", "file=" + blank + ",index=1"},
       66,
       "IDE slot 1 given twice"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"--no-trace"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    Outcome r = record(args, "disk_error");
    EXPECT_EQ(r.status, c.status) << c.message << ": " << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
  }
}

TEST(RecordE2E, ADiskBootsLikeABiosHandsOver) {
  // rec_real.bin is a boot sector; as the only disk it boots at 0x7c00.
  TraceReader r = recordTrace("", "diskboot", 0x23, {"--disk", guest("rec_real.bin")});
  EXPECT_EQ(slurp(tmp("diskboot.out")), "real mode ok\n");
  EXPECT_EQ(r.header().images[0].format, ImageFormat::kBootSector);
  EXPECT_EQ(r.header().images[0].bytes.size(), 512u);
  EXPECT_EQ(r.header().images[0].name, "rec_real.bin");
  const auto& d = r.header().machine.devices;
  EXPECT_NE(std::find(d.begin(), d.end(), "disk@ide0.0:sectors=1"), d.end());
  EXPECT_EQ(ttvmCommand("verify", {tmp("diskboot.ttvm")}), 0);
}

// Where KVM is not usable (no /dev/kvm, or one whose guests see the host's
// CPUID, as on the build machines), --backend kvm fails at once saying why,
// and auto records with the emulator saying so. Inside the nested VM,
// kvm.record checks the other side.
TEST(RecordE2E, BackendKvmFailsAtOnceWhereKvmIsNotUsable) {
  auto k = kvm::Kvm::open();
  if (k.ok() && k->checkGuestCpuid().ok())
    GTEST_SKIP() << "this host's /dev/kvm is usable: ctest -L kvm records under it";
  Outcome kvmRun =
      record({"--backend", "kvm", "-o", tmp("kvmfail.ttvm"), guest("rec_exit.elf")}, "kvmfail");
  EXPECT_EQ(kvmRun.status, 78);
  EXPECT_NE(kvmRun.err.find("--backend kvm: "), std::string::npos) << kvmRun.err;
  EXPECT_NE(kvmRun.err.find("--backend emu"), std::string::npos) << kvmRun.err;
  EXPECT_EQ(::access(tmp("kvmfail.ttvm").c_str(), F_OK), -1) << "no trace before the backend";
  Outcome autoRun = record({"-o", tmp("auto.ttvm"), guest("rec_exit.elf")}, "auto");
  EXPECT_EQ(autoRun.status, 0x43);
  EXPECT_NE(autoRun.err.find("backend: emu (KVM is not usable here: "), std::string::npos)
      << autoRun.err;
  auto r = TraceReader::open(tmp("auto.ttvm"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->header().backend, Backend::kEmulator);
  Outcome bad = record({"--backend", "hw", guest("rec_exit.elf")}, "badbackend");
  EXPECT_EQ(bad.status, 64);
  EXPECT_NE(bad.err.find("use auto, emu or kvm"), std::string::npos) << bad.err;
}

// rec_kvm_irq, the KVM tests' interrupt guest (tests/kvm/record_kvm.sh),
// under the emulator: ten PIT ticks taken around CLI/STI and REP INSB.
TEST(RecordE2E, KvmInterruptGuestUnderTheEmulator) {
  TraceReader r = recordTrace("rec_kvm_irq.elf", "kvm_irq", 1);
  EXPECT_EQ(slurp(tmp("kvm_irq.out")), "10 ticks, string input ok\n");
  EXPECT_EQ(ttvmCommand("verify", {tmp("kvm_irq.ttvm")}), 0);
}

// rec_kvm_compute, the KVM tests' compute-between-ticks guest: under the
// emulator its self-check (every turn of the loop whole) passes too.
TEST(RecordE2E, KvmComputeGuestUnderTheEmulator) {
  TraceReader r = recordTrace("rec_kvm_compute.elf", "kvm_compute", 1);
  EXPECT_EQ(slurp(tmp("kvm_compute.out")), "5 ticks while computing\n");
  EXPECT_EQ(ttvmCommand("verify", {tmp("kvm_compute.ttvm")}), 0);
}

TEST(RecordE2E, UsageErrorsAreClear) {
  Outcome r = record({"--frobnicate", guest("rec_exit.elf")}, "usage");
  EXPECT_EQ(r.status, 64);
  EXPECT_NE(r.err.find("--frobnicate"), std::string::npos);
  if (::access("/dev/kvm", F_OK) != 0) {
    Outcome k = record({"--backend", "kvm", guest("rec_exit.elf")}, "kvm");
    EXPECT_EQ(k.status, 78);
    EXPECT_NE(k.err.find("/dev/kvm"), std::string::npos);
    EXPECT_NE(k.err.find("--backend emu"), std::string::npos);
  }
  Outcome missing = record({"--no-trace", guest("no_such_guest.elf")}, "missing");
  EXPECT_EQ(missing.status, 66);
  EXPECT_NE(missing.err.find("no_such_guest.elf"), std::string::npos);
  Outcome help = record({"--help"}, "help");
  EXPECT_EQ(help.status, 0);
  for (const char* opt : {"--no-trace", "--backend", "--ram", "--append", "--initrd", "--max-steps",
                          "--timeout", "--load-addr", "--entry", "--mode", "--start-clock"})
    EXPECT_NE(help.out.find(opt), std::string::npos) << opt;
}

// Bad input files (issue 10.8): each is refused at once, before anything is
// read into memory, with status 66 and a message naming the file and what it
// is; before, a directory aborted on an uncaught exception and /dev/zero was
// read until memory ran out.
TEST(RecordE2E, GuestAndInitrdMustBeRegularFilesThatFitInRam) {
  const std::string dir = ::testing::TempDir() + "/rec_e2e_dir_guest";
  ::mkdir(dir.c_str(), 0755);
  const std::string big = tmp("big_guest.bin");
  {
    // 3 MiB of holes: bigger than --ram 2M, costs no disk.
    int fd = ::open(big.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, 3 << 20), 0);
    ::close(fd);
  }
  struct Case {
    std::vector<std::string> args;
    std::string names, says;
  };
  const std::string g = guest("rec_exit.elf");
  const Case cases[] = {
      {{dir}, dir, "is a directory"},
      {{"/dev/zero"}, "/dev/zero", "is a character device"},
      {{"--initrd", dir, g}, dir, "is a directory"},
      {{"--initrd", "/dev/zero", g}, "/dev/zero", "is a character device"},
      {{"--ram", "2M", big}, big, "more than the 2097152 bytes of guest RAM (--ram)"},
      {{"--ram", "2M", "--initrd", big, g}, big, "bytes of guest RAM left after the kernel"},
      {{"--serial-input", "/dev/zero", g}, "/dev/zero", "is a character device"},
  };
  int n = 0;
  for (const Case& c : cases) {
    std::vector<std::string> args = {"--no-trace"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const auto t0 = std::chrono::steady_clock::now();
    Outcome r = record(args, "badinput" + std::to_string(n++));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(r.status, 66) << c.args.back() << ": " << r.err;
    EXPECT_NE(r.err.find(c.names), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
    EXPECT_LT(s, 30.0) << "refused only after reading";
  }
}

// Option values (issue 10.9): out-of-range values are refused, never wrapped
// or read as NaN; 0 where it means nothing sensible is refused; what 0 means
// where it is allowed is in --help.
TEST(RecordE2E, OptionValuesAreCheckedNotWrapped) {
  const std::string g = guest("rec_exit.elf");
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const Case cases[] = {
      {{"--ram", "18446744073709551615"}, "above the 3 GiB"},
      {{"--ram", "1T"}, "above the 3 GiB"},
      {{"--ram", "1M"}, "below 2 MiB"},
      {{"--ram", "2049K"}, "not a multiple of 4 KiB"},
      {{"--ram", "99999999999999999999"}, "is not a size"},
      {{"--timeout", "nan"}, "--timeout 'nan'"},
      {{"--timeout", "inf"}, "--timeout 'inf'"},
      {{"--timeout", "1e300"}, "--timeout '1e300'"},
      {{"--start-clock", "1e300"}, "--start-clock '1e300'"},
      {{"--digest-interval", "0"}, "--digest-interval 0"},
      {{"--max-steps", "-1"}, "--max-steps '-1'"},
  };
  int n = 0;
  for (const Case& c : cases) {
    std::vector<std::string> args = {"--no-trace"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    args.push_back(g);
    Outcome r = record(args, "badopt" + std::to_string(n++));
    EXPECT_EQ(r.status, 64) << c.args[0] << " " << c.args[1] << ": " << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
  }
  Outcome ok = record({"--no-trace", "--ram", "0x200000", "--timeout", "60", g}, "goodopt");
  EXPECT_EQ(ok.status, 0x43) << ok.err;
  Outcome help = record({"--help"}, "help_status");
  for (const char* says : {"(0, the default: no limit)", "64  bad usage", "66  GUEST",
                           "70  internal error", "74  the trace cannot", "78  this host"})
    EXPECT_NE(help.out.find(says), std::string::npos) << says;
}

// A trace that cannot be created is ttvm's failure (74), never a status a
// guest could have reported through isa-debug-exit (odd).
TEST(RecordE2E, ToolFailuresHaveTheirOwnEvenStatuses) {
  Outcome r = record({"-o", "/nonexistent-dir/x.ttvm", guest("rec_exit.elf")}, "cantcreate");
  EXPECT_EQ(r.status, 74) << r.err;
  EXPECT_NE(r.err.find("/nonexistent-dir/x.ttvm"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace ttvm
