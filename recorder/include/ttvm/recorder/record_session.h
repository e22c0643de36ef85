// RecordSession: the record loop (one readable loop, kvmtool style).
//
//   set up: build the CPU backend (machine::CpuBackend: the emulator by
//           default, RecordOptions::makeBackend for another) over the
//           recording environment, load the guest's CPU state, write the
//           trace header (it names the backend) and the initial state (CPU,
//           non-zero RAM pages, device state);
//   loop:   fire due timers; run the CPU for a slice that ends at the earliest
//           of: the next timer deadline, the next state-digest step, the step
//           limit, and a cap that keeps signal/timeout checks frequent; then
//           look at why the CPU stopped —
//             halted, IF=0, no NMI       -> end: hang
//             halted, IF=1               -> idle: jump virtual time to the next
//                                           deadline (no deadline, or no
//                                           progress for the idle limit -> hang)
//             triple fault               -> end: triple fault
//             a device's stop request    -> end: exit device / panic / reset / shutdown
//             user interrupt, timeout, step limit -> end accordingly
//   end:    append EndOfRun, close the trace with a footer naming the reason,
//           the final CPU state and digest, and the last instruction.
//
// Every event carries the exact step count it was consumed at; state digests
// are written at every multiple of digestInterval steps (the digest of the
// CPU state when CpuState::steps equals the event's step), each followed by
// the machine's device digest when the replay runs the whole machine. There
// the halted CPU's jumps in virtual time are events too (kIdle): where time
// jumps to is the next deadline, or under --realtime the wall clock.
#pragma once

#include <chrono>
#include <csignal>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "ttvm/base/result.h"
#include "ttvm/emulator/cpu.h"
#include "ttvm/formats/trace_writer.h"
#include "ttvm/machine/cpu_backend.h"
#include "ttvm/machine/loader.h"
#include "ttvm/machine/machine.h"
#include "ttvm/recorder/recording_environment.h"

namespace ttvm {

// What a handler stores in RecordOptions::interruptFlag: why the user ended
// the run (both end it as EndReason::kInterrupted; the message differs).
enum : std::sig_atomic_t {
  kInterruptBySignal = 1,   // SIGINT, SIGTERM, SIGHUP
  kInterruptByConsole = 2,  // the serial console's quit key (Ctrl-A x)
};

struct RecordOptions {
  std::string tracePath;      // empty: no trace (--no-trace)
  uint64_t maxSteps = 0;      // 0: no limit
  double timeoutSeconds = 0;  // wall clock; 0: no limit
  uint64_t digestInterval = 1u << 16;
  // A full snapshot (CPU, non-zero RAM pages, device state) every N steps,
  // at exact multiples: seek points for replay and `ttvm slice`. 0 = none.
  uint64_t snapshotInterval = 0;
  uint64_t sliceCap = 1u << 20;  // steps between checks of signals, timeout, input
  // Halted with IF=1 this long in virtual time without executing a step: hang.
  uint64_t idleHangNs = 60'000'000'000ull;
  // Header fields.
  std::string ttvmVersion;
  std::string host;
  int64_t createdUnixNs = 0;
  // Instructions the footer lists before the end (re-executed from the last
  // checkpoint, see tail_replay.h); 0 = only the one the CPU stopped at.
  size_t recentInstructions = 16;
  // Steps between the checkpoints that re-execution starts from (the loop
  // also moves the checkpoint whenever the trace writer takes its buffer).
  // A checkpoint copies the pages dirtied since the last one; the
  // re-execution at the end runs at most this many steps.
  uint64_t tailWindow = 1u << 16;
  // Pace the guest to wall time while it idles (HLT with interrupts on):
  // instead of jumping to the next timer deadline, wait for it (or for
  // terminal input). The inputs that result are recorded like any others.
  bool realtime = false;
  // Under a backend that cannot count steps (KVM): virtual time follows the
  // wall time the guest runs, and the backend stops the guest between exits
  // when a timer falls due (stop points, docs/kvm-recording.md). Off:
  // virtual time follows exits (and idle skips) only.
  bool betweenExits = false;
  // Log every device's answers too (`--log-device-reads`): the replay runs
  // the machine anyway and checks each answer against its own devices'.
  bool logDeviceAccesses = false;
  // Set by a SIGINT/SIGTERM handler; may be null.
  const volatile std::sig_atomic_t* interruptFlag = nullptr;
  // Called between slices (e.g. to feed terminal input to the UART).
  std::function<void(machine::Machine&)> poll;
  // The CPU backend the loop drives, built over the machine's memory and
  // the recording environment; empty: the emulator (EmuBackend).
  using BackendFactory = std::function<Result<std::unique_ptr<machine::CpuBackend>>(
      const CpuModel& model, PhysicalMemory memory, Environment& env)>;
  BackendFactory makeBackend;
  // The trace writer's settings (the loop turns flushFromAppend off). Chunks
  // of 16 Ki events: the buffer the recording thread fills (512 KiB, twice
  // that with room for a slice's overshoot) stays in its core's L2 cache,
  // where 64 Ki-event chunks (2 MiB) did not; the trace is 0.4% larger.
  TraceWriter::Options writerOptions = recordingWriterOptions();

  static TraceWriter::Options recordingWriterOptions() {
    TraceWriter::Options o;
    o.maxEventsPerChunk = 1u << 14;
    return o;
  }
};

struct RecordResult {
  TraceEnd end;
  uint64_t events = 0;
  uint64_t traceBytes = 0;  // 0 without a trace
  double wallSeconds = 0;
  std::vector<std::string> unimplemented;  // instructions the CPU met and lacks
};

class RecordSession {
 public:
  RecordSession(machine::Machine& machine, machine::LoadedGuest guest, RecordOptions options);
  ~RecordSession();
  RecordSession(const RecordSession&) = delete;
  RecordSession& operator=(const RecordSession&) = delete;

  // Writes the header and initial state (when tracing) and prepares the CPU.
  Status start();
  // Runs to the end of the run and closes the trace.
  Result<RecordResult> run();

  // For a fatal-signal handler: closes the trace with EndReason::kInternalError
  // and `message` if it is still open. Not async-signal-safe in general; the
  // CLI calls it from SIGSEGV/SIGABRT handlers as a best effort guarded by a
  // re-entrancy flag and an alarm (see cmd_record.cc).
  void emergencyClose(const char* message);

  const machine::CpuBackend* cpu() const { return cpu_.get(); }
  const TraceHeader& header() const { return header_; }

 private:
  TraceEnd makeEnd(EndReason reason, std::string message, uint32_t exitStatus = 0) const;
  Result<RecordResult> finish(TraceEnd end);
  void takeCheckpoint();
  // The CPU's state digest at this step, and the machine's device digest.
  void appendDigests();
  // After an idle skip: where virtual time went (a whole-machine replay).
  void appendIdle() {
    if (writer_ && machine_.replaysWholeMachine())
      writer_->append(TraceEvent::idle(cpu_->state().steps, machine_.clock().nowNs()));
  }
  // Moves the checkpoint when the writer handed its buffer over (the events
  // since the checkpoint must stay in the buffer) or the window is used up.
  void keepTailInStep();
  uint64_t wallNsSinceStart() const;
  // Between exits (KVM with stop points): virtual time up to runStartNs_
  // plus the wall time since runStart_, the start of the backend's run().
  void followWallTime();
  void fillLastInstructions(TraceEnd& end);

  machine::Machine& machine_;
  machine::LoadedGuest guest_;
  RecordOptions options_;
  TraceHeader header_;
  std::unique_ptr<TraceWriter> writer_;
  std::unique_ptr<RecordingEnvironment> env_;
  std::unique_ptr<machine::CpuBackend> cpu_;
  std::chrono::steady_clock::time_point startTime_;
  std::chrono::steady_clock::time_point runStart_;
  uint64_t runStartNs_ = 0;
  bool inRun_ = false;
  volatile bool closed_ = false;
  // The checkpoint for the last instructions (only while tracing).
  bool tailEnabled_ = false;
  uint8_t* shadow_ = nullptr;  // RAM as of checkpoint_ (anonymous mapping)
  size_t shadowBytes_ = 0;
  CpuState checkpoint_;
  std::vector<uint8_t> checkpointDevices_;  // Machine::saveReplayedState() at checkpoint_
  // The events since checkpoint_ are writer_->buffered() from tailMark_ on,
  // as long as the writer has handed over tailHandedOver_ events.
  uint64_t tailHandedOver_ = 0;
  size_t tailMark_ = 0;

 public:
  // Whether the last re-execution of the tail reached the recorded final
  // state (a self-check of determinism); empty when it did or did not run.
  std::string tailProblem;
};

}  // namespace ttvm
