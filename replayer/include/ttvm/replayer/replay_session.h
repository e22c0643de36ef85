// ReplaySession: one machine state moving forward through a trace.
//
// Design (rr's split): a session is a CPU, its RAM and a ReplayEnvironment
// positioned in the trace; it only ever executes forward. It knows nothing of
// checkpoints, breakpoint ids or going backward — the Timeline owns those and
// drives the session (restore(), runTo()).
//
// The machine. RAM size and the physical memory map (MMIO holes) come from
// the Machine built from the trace header, so replay sees exactly the
// layout the recording saw. A whole-machine trace (1.3) runs that machine
// as the recording did — every device, the timers, the interrupt
// controllers — from the INIT frame's device state, bound to this CPU, with
// the trace's outside inputs; its device state is replay state beside the
// CPU and RAM, which saveDevices() and restore() carry through checkpoints.
// A 1.2 trace runs only the devices its header names (the IDE channels);
// older traces run none: every answer a device gave is in the trace.
//
// The run loop is machine::ReplayLoop (replay_loop.h), shared with the
// recorder's tail re-execution.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ttvm/base/result.h"
#include "ttvm/emulator/cpu.h"
#include "ttvm/formats/trace_reader.h"
#include "ttvm/machine/divergence.h"
#include "ttvm/machine/machine.h"
#include "ttvm/machine/replay_environment.h"
#include "ttvm/machine/replay_loop.h"
#include "ttvm/replayer/guest_symbols.h"

namespace ttvm {

namespace machine {
class Machine;
}  // namespace machine

// The loop's stop kinds and options (machine/replay_loop.h), under the
// names the replayer has always used.
using machine::RunOptions;
using machine::SessionStop;
using machine::SessionStopKind;
using machine::toString;

// The disk sectors `reader` logs (kDiskSector events) before `position`,
// by (disk slot, LBA): what a replay started there has read already.
using SectorTable = std::map<std::pair<unsigned, uint64_t>, std::array<uint8_t, kDiskSectorBytes>>;
Result<SectorTable> sectorsLoggedBefore(const TraceReader& reader, machine::EventPosition position);

// The engine every replay runs unless told otherwise: ttvm's one place for
// that default (ReplaySession::open, TimelineOptions, the commands'
// --engine, ttvm-ui's). The fast engine (CpuEngine::kFast), because a replay
// is checked against its trace — every input at its step, a state digest and
// a device digest every 64 Ki steps, the final state — so a fast-engine bug
// shows as a divergence, never silently; the Timeline and `ttvm verify` then
// replay again on the reference engine and say which engine disagreed
// (engine_fallback.h). Recording stays on the reference engine (`ttvm
// record`'s default): the trace is the ground truth, and an engine bug there
// would be written into the trace. So does what writes replayed state into
// a trace (`ttvm recover`'s footer).
inline constexpr CpuEngine kDefaultReplayEngine = CpuEngine::kFast;

class ReplaySession {
 public:
  // A session at step 0 of `reader`'s trace, its CPU on `engine`; `reader`
  // must outlive it.
  //
  // A test seam: with TTVM_TEST_FAST_ENGINE_FAULT=STEP in the environment,
  // every run on the fast engine that passes STEP flips bit 62 of R15 there
  // (state the recording never had: the next state digest differs), as a
  // deterministic fast-engine bug would. The reference engine is never
  // touched. Tests use it to prove the engine fallback; nothing else sets it.
  static Result<std::unique_ptr<ReplaySession>> open(const TraceReader& reader,
                                                     CpuEngine engine = kDefaultReplayEngine);
  ~ReplaySession();
  ReplaySession(const ReplaySession&) = delete;
  ReplaySession& operator=(const ReplaySession&) = delete;

  const TraceReader& trace() const { return reader_; }
  const TraceHeader& header() const { return reader_.header(); }
  const GuestSymbols& symbols() const { return symbols_; }
  // Adds a symbol file (System.map or ELF) to symbols(); see guest_symbols.h.
  Status addSymbolFile(const std::string& path) { return symbols_.addFile(path); }
  Cpu& cpu() { return *cpu_; }
  CpuEngine engine() const { return cpu_->engine(); }
  const CpuState& state() const { return cpu_->state(); }
  uint64_t step() const { return cpu_->state().steps; }
  std::span<uint8_t> ram();
  std::span<const uint8_t> ram() const;
  machine::ReplayEnvironment& environment() { return env_; }
  // The last position of the recorded history (the footer's step count, or
  // for a trace without footer the step of its last event or snapshot).
  uint64_t endStep() const { return endStep_; }
  // For a trace followed while it is recorded: takes the end its reader
  // knows now, after TraceReader::refresh() (the end only moves forward).
  void extendEnd();

  // Executes forward until `target` (clamped to endStep()) or a stop.
  SessionStop runTo(uint64_t target, const RunOptions& options = {});

  // The first divergence, with RIP, symbol and disassembly filled in.
  std::optional<machine::DivergenceReport> divergence() const;

  // Moves this replay, still at its initial state, to the trace's stored
  // snapshot `index` (a SNAP frame: CPU, every device and RAM at its step;
  // a whole-machine trace): the events written after it come next, and the
  // disk sectors logged before it are served from their events when the
  // guest reads them again. What `ttvm slice` starts from instead of step 0.
  Status startFromSnapshot(size_t index);

  // Restores a state the timeline saved (RAM is restored by the caller,
  // through ram() and cpu().notifyRamWritten()); `devices` is what
  // checkpointDevices() returned there.
  void restore(const CpuState& cpu, machine::EventPosition position,
               const machine::Machine::DeviceCheckpoint& devices);
  // The replay-computed devices' state (empty when the trace has none).
  std::vector<uint8_t> saveDevices() const;
  // Every device's state in the INIT frame's form (Machine::saveDeviceState),
  // for a trace that replays devices: the whole machine's, the same as
  // saveDevices(); a 1.2 trace's IDE channels as they ran and every other
  // device as the INIT frame left it (they do not run: the trace answers for
  // them). What a slice's initial state holds. Empty when no device runs.
  std::vector<uint8_t> saveInitialDeviceState() const;
  // The sectors the guest has written to the replayed disks (the disks'
  // overlays, which no device state holds), by (slot, LBA).
  SectorTable writtenSectors() const;
  // The same for a checkpoint: device memories shared, not copied.
  machine::Machine::DeviceCheckpoint checkpointDevices() const;
  // Whether this replay runs devices itself (a 1.1 trace with replayedDevices).
  bool runsDevices() const { return runsDevices_; }
  // Whether it runs the whole machine (a 1.3 trace: no device access in it).
  bool runsWholeMachine() const { return env_.wholeMachine(); }

  // Page numbers of the initial state's non-zero RAM pages (ascending).
  const std::vector<uint64_t>& initialPages() const { return initialPages_; }

  // State and device digests compared with the recording so far (each one
  // agreed), and the device digests among them.
  uint64_t digestsChecked() const { return loop_->digestsChecked(); }
  uint64_t deviceDigestsChecked() const { return loop_->deviceDigestsChecked(); }

  // The footer's final state compared with the current one (call at
  // endStep()): empty when they agree, else what differs.
  std::string checkEndState() const;

  // "function+0x12" and the disassembly of the instruction at `rip` in the
  // current mode (read through the current page tables).
  std::string symbolAt(uint64_t rip) const;
  std::string disassembleAt(uint64_t rip) const;
  // Linear address of `rip` in the current code segment.
  uint64_t linearRip(uint64_t rip) const;

 private:
  ReplaySession(const TraceReader& reader, std::unique_ptr<machine::Machine> machine);

  const TraceReader& reader_;
  std::unique_ptr<machine::Machine> machine_;
  machine::ReplayEnvironment env_;
  std::unique_ptr<Cpu> cpu_;
  GuestSymbols symbols_;
  uint64_t endStep_ = 0;
  std::unique_ptr<machine::ReplayLoop> loop_;
  std::vector<uint64_t> initialPages_;
  SectorTable sectorsBeforeStart_;  // startFromSnapshot's sectors logged before it
  bool runsDevices_ = false;
  std::optional<uint64_t> fastEngineFault_;  // TTVM_TEST_FAST_ENGINE_FAULT (see open())
};

}  // namespace ttvm
