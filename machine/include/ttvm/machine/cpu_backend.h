// CpuBackend: the CPU a record loop drives, whichever executes the guest —
// ttvm's emulator (recorder/emu_backend.h) or the host's hardware through
// KVM (issue 13). The machine's devices see the same bus calls either way:
// a backend reaches them only through the Environment it was built over
// (port and MMIO accesses, the TSC, MSRs, and whether an interrupt or NMI
// is pending), and the loop between runs does the rest (timers, input).
//
// Interrupts. A backend takes the interrupts the machine presents through
// its Environment (interruptPending/acknowledgeInterrupt, the NMI pair),
// at an instruction boundary where the guest accepts them — the emulator
// asks at every boundary the event hint allows, KVM at its exits and
// interrupt windows. inject() is for an event that does not come from the
// machine: it is delivered at the next boundary where the guest accepts it
// (IF=1 and no interrupt shadow for a vector; no NMI blocking for an NMI),
// before anything the machine has pending. Lockstep uses it to make one
// backend take what the other took; tests to place an event exactly.
//
// Position. state().steps counts steps as the emulator defines them (one
// per instruction, REP iteration or event delivery; see cpu.h). A backend
// that cannot count them (KVM without a usable PMU) says so with
// countsSteps(); its trace's events then carry exit numbers (Backend::kKvm).
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ttvm/emulator/cpu.h"
#include "ttvm/formats/trace_types.h"

namespace ttvm::machine {

// An event for inject().
struct InjectedEvent {
  enum class Kind : uint8_t { kInterrupt, kNmi };
  Kind kind = Kind::kInterrupt;
  uint8_t vector = 0;  // kInterrupt
  static InjectedEvent interrupt(uint8_t v) { return {Kind::kInterrupt, v}; }
  static InjectedEvent nmi() { return {Kind::kNmi, 2}; }
};

class CpuBackend {
 public:
  virtual ~CpuBackend() = default;

  // What the trace header records (Backend::kEmulator, Backend::kKvm).
  virtual Backend kind() const = 0;
  // Whether state().steps is exact (every event can carry its step).
  virtual bool countsSteps() const = 0;

  // Runs until an exit: `maxSteps` steps done, the guest halted, a triple
  // fault, an exception or interrupt delivered, or the environment's
  // stopRequested(). The outcome says which (StepOutcome::kRetired: the
  // budget ran out).
  virtual StepResult run(uint64_t maxSteps) = 0;
  // Exactly one step.
  virtual StepResult step() = 0;

  virtual const CpuState& state() const = 0;
  virtual void setState(const CpuState& state) = 0;

  // Queues `e` for delivery (see "Interrupts" above); one of each kind at a
  // time: a second one replaces the first. pendingInjection() is true until
  // it was delivered.
  virtual void inject(const InjectedEvent& e) = 0;
  virtual bool pendingInjection() const = 0;

  // Guest memory through the current paging (crash summaries); false when
  // part of it is not mapped.
  virtual bool readLinear(uint64_t linear, std::span<uint8_t> out) const = 0;
  // RAM pages written since the last call, while tracking is on (the
  // recorder's tail checkpoint copies them).
  virtual void setDirtyTracking(bool on) = 0;
  virtual std::vector<uint64_t> takeDirtyPages() = 0;
  // Instructions the guest used that the backend lacks ("mnemonic (bytes)").
  virtual const std::vector<std::string>& unimplementedLog() const = 0;
  // Why the backend cannot go on (KVM's internal error or failed entry, an
  // ioctl refused), once run() or step() stopped with kStopRequested for
  // it; empty otherwise. The record loop ends the trace there.
  virtual const std::string& failure() const = 0;

  // Between exits (a backend that cannot count steps, KVM). The record loop
  // moves virtual time with the wall time the guest runs there
  // (docs/kvm-recording.md, "Virtual time under KVM") and says before each
  // run() how far the next timer deadline is: such a backend then stops a
  // guest that computes without exiting at an instruction boundary (a stop
  // point) and returns kRetired. takeStopPoint() gives that boundary's
  // events for the trace (kDirtyPages runs, then kStopPoint), empty when
  // run() did not stop there. A backend that counts steps never stops
  // between them: its step budget already ends a slice at the deadline, and
  // these keep their defaults.
  virtual void setWallSlice(std::chrono::nanoseconds) {}
  virtual std::vector<TraceEvent> takeStopPoint() { return {}; }

  // Lockstep's fast path (docs/kvm-recording.md, "Lockstep"). A backend
  // that reads its state back from elsewhere may skip the parts that cost
  // (state_part: the FPU, debug registers, XCR0, MSRs): after
  // setStepReadBack(parts), step() reads back only `parts` of them, and the
  // others keep their last values in state() until refreshState() reads
  // them (its errors go to failure()). The emulator has its whole state at
  // hand, and these keep their defaults.
  virtual void setStepReadBack(StateParts) {}
  virtual void refreshState(StateParts) {}
  // The RAM pages (sorted page numbers) whose instructions this backend
  // runs in ttvm's emulator instead of on the host's CPU; the trace's
  // header names them (TraceHeader::emulatedPages). None by default.
  virtual std::vector<uint64_t> emulatedPages() const { return {}; }
};

}  // namespace ttvm::machine
