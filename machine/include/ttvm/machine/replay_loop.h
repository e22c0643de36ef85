// ReplayLoop: runs a CPU forward through a trace, the one loop both the
// replayer's sessions and the recorder's tail re-execution use.
//
// Slices. runTo() executes in slices bounded by the next trace event: up to
// the event's step, then the one step that must consume it, then a check
// that it was consumed. At each instruction boundary it settles the passive
// events of that step (state digests are compared with the CPU's, device
// digests with the machine's). The CPU's own outcomes (exceptions,
// interrupts, debugger breakpoints and watchpoints) end a slice early; the
// loop reports the ones RunOptions asks for. Any disagreement with the trace
// is a divergence and ends the run with a DivergenceReport.
//
// The whole machine (a trace whose replay runs every device; see
// replay_environment.h). The loop then does at each boundary what the
// record loop did there: it hands the terminal's bytes of this step to the
// UART, lets the timers fire what is due (Machine::advanceTimers), and ends
// slices at the machine's next deadline and after any step that
// reprogrammed a timer. A halted CPU moves virtual time by the recording's
// idle skip of that step. Timers fire at the first boundary whose time is at
// or past their deadline whatever the slicing, so a replay that stops more
// often (a debugger stepping) fires them at the same steps as the recording.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "ttvm/emulator/cpu.h"
#include "ttvm/machine/replay_environment.h"

namespace ttvm::machine {

class Machine;

// What ended a runTo().
enum class SessionStopKind : uint8_t {
  kTarget,      // reached the requested step
  kEnd,         // reached the end of the recorded history
  kBreakpoint,  // a debugger breakpoint at RIP (not executed)
  kWatchpoint,  // the step just executed hit a debugger watchpoint
  kException,   // RunOptions::stopOnExceptions: an exception was delivered by the last step
  kInterrupt,   // RunOptions::stopOnInterrupts: an interrupt/NMI was delivered by the last step
  kDivergence,  // the replay disagreed with the trace (divergence())
  kCancelled,   // RunOptions::cancel became true
};
const char* toString(SessionStopKind k);

struct SessionStop {
  SessionStopKind kind = SessionStopKind::kTarget;
  uint64_t step = 0;  // the position after the stop (CpuState::steps)
  StepResult result;  // the CPU's outcome of the last step (vector, watch hit)
};

struct RunOptions {
  // Stop after a step that delivered an exception whose vector's bit is set.
  uint32_t stopOnExceptions = 0;
  bool stopOnInterrupts = false;
  // Checked between slices (at most sliceSteps apart).
  const std::atomic<bool>* cancel = nullptr;
  // Called between slices with the current position.
  std::function<void(uint64_t step)> progress;
  uint64_t sliceSteps = 1u << 20;
  // Device digests of the steps before this one are consumed without being
  // compared: the caller replayed that history before and compared them then
  // (the timeline re-executing from a checkpoint). Replay is deterministic,
  // so they would agree again; each costs a hash of the whole device state
  // (~100 KB). State digests are still compared. 0: compare every digest.
  uint64_t deviceDigestsCheckedBefore = 0;
};

class ReplayLoop {
 public:
  // `machine` is the machine the replay runs when the environment runs the
  // whole machine (ReplayEnvironment::wholeMachine), else it is not stepped.
  // `endStep` is the last position of the recorded history.
  ReplayLoop(Cpu& cpu, ReplayEnvironment& env, Machine* machine, uint64_t endStep)
      : cpu_(cpu), env_(env), machine_(machine), endStep_(endStep) {}

  // Executes forward until `target` (clamped to endStep()) or a stop.
  SessionStop runTo(uint64_t target, const RunOptions& options = {});
  uint64_t endStep() const { return endStep_; }
  // A trace followed while it is recorded: its history grew to `endStep`.
  void extendEnd(uint64_t endStep) { endStep_ = std::max(endStep_, endStep); }
  // State and device digests compared with the recording so far (each one
  // agreed), and the device digests among them.
  uint64_t digestsChecked() const { return digestsChecked_; }
  uint64_t deviceDigestsChecked() const { return deviceDigestsChecked_; }
  // Records a divergence of `step` (the environment's first one wins).
  void divergeAt(uint64_t step, uint64_t rip, std::string reason, std::string actual);

 private:
  // Consumes the passive events of the current step; false on divergence.
  bool settleBoundary(const RunOptions& options);
  bool whole() const { return env_.wholeMachine(); }

  Cpu& cpu_;
  ReplayEnvironment& env_;
  Machine* machine_;
  uint64_t endStep_;
  uint64_t digestsChecked_ = 0;
  uint64_t deviceDigestsChecked_ = 0;
};

}  // namespace ttvm::machine
