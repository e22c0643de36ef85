// Cpu: ttvm's x86 interpreter.
//
// Design. The CPU is a pure function of (initial CpuState, RAM contents,
// Environment answers). It owns its state and a decoded-instruction cache; it
// does not own RAM (the machine does) nor the environment. Instructions are
// decoded once by Zydis into a compact form, cached by physical address and
// CpuMode, and invalidated when the guest (or the machine, through
// notifyRamWritten) writes a page that code was decoded from.
//
// Time. One *step* is one call of step() that changed the machine:
//   - an instruction retired (with any trap it raised, e.g. a single-step #DB,
//     delivered into the guest's handler within the same step), or
//   - one iteration of a REP string instruction, or
//   - a fault delivered (the faulting instruction did not retire; the step
//     leaves the CPU at the first instruction of the handler), or
//   - an external interrupt or NMI delivered, or
//   - a triple fault (shutdown): the event whose delivery failed changed the
//     machine on the way (CR2 of a #PF, DR6, stack bytes written before the
//     delivery faulted), so the state it leaves is a position of its own.
// State.steps counts them exactly. A halted CPU with nothing to do returns
// kHalted and does not advance. Replay positions are step numbers, so this
// definition is part of the trace format (see docs/architecture.md).
//
// Guest events (#PF, #GP, triple fault, HLT) are values in StepResult, never
// C++ exceptions. A bug in ttvm is an assertion.
//
// Debugger facilities (breakpoints, watchpoints) live beside the guest's own
// DR0-DR7 and never change guest-visible state.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ttvm/emulator/cpu_model.h"
#include "ttvm/emulator/cpu_state.h"
#include "ttvm/emulator/environment.h"

namespace ttvm {

// Guest-physical memory as the CPU sees it: one flat host buffer of RAM at
// physical address 0 and holes inside it that are MMIO. Any physical address
// at or above ram.size(), or inside a hole, goes to Environment::mmio*.
struct PhysicalMemory {
  std::span<uint8_t> ram;
  struct Range {
    uint64_t begin;
    uint64_t end;  // exclusive
  };
  std::vector<Range> mmioHoles;  // sorted, disjoint
};

enum class StepOutcome : uint8_t {
  kRetired,        // an instruction or one REP iteration completed
  kException,      // a fault or trap was delivered to the guest (vector, errorCode)
  kInterrupt,      // an external interrupt was delivered (vector)
  kNmi,            // an NMI was delivered
  kHalted,         // in HLT with nothing pending: nothing changed, steps unchanged
  kTripleFault,    // shutdown: the step that entered it counted; the state is then frozen
                   // (RIP at the faulting instruction) and later steps do not advance
  kBreakpoint,     // a debugger breakpoint at RIP: nothing executed, steps unchanged
  kWatchpoint,     // a debugger watchpoint was hit by the step just completed
  kStopRequested,  // the environment asked to stop after the step just completed
};

const char* toString(StepOutcome o);

// A debugger watchpoint that fired: which one and the access that hit it.
struct WatchHit {
  int watchId = -1;
  uint64_t address = 0;  // linear or physical, as the watchpoint was set
  unsigned size = 0;
  bool write = false;
};

struct StepResult {
  StepOutcome outcome = StepOutcome::kRetired;
  uint8_t vector = 0;  // kException / kInterrupt: the vector delivered
  bool hasErrorCode = false;
  uint32_t errorCode = 0;
  WatchHit watch;  // kWatchpoint
};

enum class WatchKind : uint8_t { kWrite, kRead, kAccess };

// A debugger breakpoint or watchpoint; `physical` selects the address space.
struct DebuggerBreakpoint {
  uint64_t address = 0;
  bool physical = false;
  bool operator==(const DebuggerBreakpoint&) const = default;
};
struct DebuggerWatchpoint {
  uint64_t address = 0;
  uint64_t length = 1;
  WatchKind kind = WatchKind::kWrite;
  bool physical = false;
  bool operator==(const DebuggerWatchpoint&) const = default;
};

class CpuImpl;

// Which engine Cpu::run uses (step() is always the reference interpreter).
//  kReference: the interpreter, one fetch through the decode cache and one
//    handler call per instruction.
//  kFast: blocks of instructions decoded once per physical page run with
//    common forms executed inline (exec/block_cache.h); the same steps, events
//    and states as kReference, instruction for instruction. Anything it does
//    not cover runs on the reference path.
enum class CpuEngine : uint8_t { kReference, kFast };
const char* toString(CpuEngine e);

// Counters of the fast engine's translation cache, since the CPU was built.
struct EngineStats {
  uint64_t blockRuns = 0;      // blocks entered
  uint64_t chained = 0;        // ... of which reached through a chain link
  uint64_t lookups = 0;        // index lookups (entries not chained)
  uint64_t hits = 0;           // ... that found a live block
  uint64_t builds = 0;         // blocks translated
  uint64_t invalidations = 0;  // blocks killed by writes to their bytes
  uint64_t flushes = 0;        // whole-cache flushes (size limit, dropped code)
  uint64_t fallbackSteps = 0;  // steps run by the reference path inside run()
  uint64_t blocks = 0;         // blocks held now
  uint64_t ops = 0;            // instruction slots used now
  uint64_t steps = 0;          // steps run by the fast engine
  uint64_t compiled = 0;       // blocks given host code (x86-64 hosts)
  uint64_t compiledSteps = 0;  // steps retired by host code
  uint64_t compiledBytes = 0;  // host code held now
};

// One line for a summary: blocks run, the share found by chaining or in the
// cache (the hit rate), translations, flushes, invalidations, reference steps.
std::string describe(const EngineStats& s);

class Cpu {
 public:
  Cpu(const CpuModel& model, PhysicalMemory memory, Environment& env);
  ~Cpu();
  Cpu(const Cpu&) = delete;
  Cpu& operator=(const Cpu&) = delete;

  const CpuState& state() const;
  // Replaces the whole state (checkpoint restore, loaders). Flushes the TLB;
  // the decode cache stays valid because it is keyed by physical address.
  void setState(const CpuState& s);
  const CpuModel& model() const;

  // Executes one step (see the header comment) and says what happened.
  StepResult step();
  // Steps until `maxSteps` steps have executed or a step's outcome is not
  // kRetired; returns the last result. Fast path for recording and replay.
  StepResult run(uint64_t maxSteps);
  // The engine run() uses (default kReference).
  void setEngine(CpuEngine e);
  CpuEngine engine() const;
  EngineStats engineStats() const;

  // The machine wrote RAM behind the CPU's back (loader, DMA, checkpoint
  // restore): drop decoded code from [physAddr, physAddr + length).
  void notifyRamWritten(uint64_t physAddr, uint64_t length);
  // Drops every cached decoded instruction and TLB entry.
  void flushCaches();

  // Dirty-page tracking for copy-on-write checkpoints: every RAM page the
  // CPU writes is marked; takeDirtyPages returns and clears the set
  // (page numbers = physAddr >> 12, ascending).
  void setDirtyTracking(bool on);
  std::vector<uint64_t> takeDirtyPages();

  // Access tracking (the RAM a trace slice must hold): every RAM page the
  // CPU reads, writes or fetches instructions from — page-table walks,
  // descriptor-table and IDT loads included — is marked; takeAccessedPages
  // returns and clears the set (ascending page numbers). A page may be
  // marked without being accessed (its TLB entry was filled), never the
  // reverse. Both calls drop the TLB and the decoded code.
  void setAccessTracking(bool on);
  std::vector<uint64_t> takeAccessedPages();

  // Debugger breakpoints (stop before executing) and watchpoints (stop after
  // the step that accessed). Invisible to the guest; any number; ids are
  // indexes into the lists as set.
  void setBreakpoints(std::vector<DebuggerBreakpoint> bps);
  void setWatchpoints(std::vector<DebuggerWatchpoint> wps);
  // Lets the next step execute an instruction at a debugger breakpoint
  // (resume after a stop there).
  void skipBreakpointOnce();

  // Translates a linear address with the current paging mode, without side
  // effects (no A/D bits, no faults). nullopt when not mapped.
  std::optional<uint64_t> translate(uint64_t linear, bool write = false) const;
  // Debugger memory read through current paging; false if unmapped. MMIO is not read.
  bool readLinear(uint64_t linear, std::span<uint8_t> out) const;

  // Instructions the CPU met and does not implement, in the order met
  // (bytes as hex, mode, RIP); each logged once.
  const std::vector<std::string>& unimplementedLog() const;

 private:
  std::unique_ptr<CpuImpl> impl_;
};

}  // namespace ttvm
