// TailReplay: recovers the last instructions of a recording without keeping
// a ring of every RIP while recording (which would cost on every step).
//
// The record loop keeps a checkpoint: a copy of RAM ("shadow", updated from
// the CPU's dirty pages), the CPU state, and the events recorded since. At
// the end, a second CPU runs from the checkpoint over the shadow RAM, driven
// by the replayer's own loop and environment (machine::ReplayLoop,
// machine::ReplayEnvironment) over those events, single-stepping the final
// instructions to collect their addresses and bytes. Reaching the recorded
// final state (same digest) doubles as a self-check of the recording's
// determinism.
//
// The replayed devices (the whole machine since 1.3) run in the
// re-execution as in a replay: a machine built from the trace header, with
// their state as of the checkpoint, and its disks read only the sectors
// the trace holds (the kDiskSector events are consumed where the recording
// logged them; a sector logged before the checkpoint is read back from the
// recorded image, which the trace holds it for).
#pragma once

#include <span>
#include <vector>

#include "ttvm/emulator/cpu.h"
#include "ttvm/formats/trace_types.h"
#include "ttvm/machine/machine.h"

namespace ttvm {

struct TailResult {
  std::vector<RecentInstruction> instructions;  // oldest first
  bool reachedFinalState = false;               // digest matched at the final step
  std::string problem;                          // why not, when it did not
};

// The replay-computed devices of a tail re-execution.
struct TailDevices {
  const TraceHeader* header = nullptr;         // the recording's (replayedDevices, disks)
  std::span<const uint8_t> state;              // Machine::saveReplayedState() at the checkpoint
  const machine::Machine* recorded = nullptr;  // the recording machine (its disks' logged sectors)
};

// `ram` is the checkpoint's RAM (modified by the re-execution); `events` the
// events recorded from `checkpoint.steps` on, `sectors` the bytes their
// kDiskSector events index; `holes` the machine's MMIO holes.
TailResult replayTail(const CpuModel& model, std::span<uint8_t> ram,
                      std::vector<PhysicalMemory::Range> holes, const CpuState& checkpoint,
                      std::span<const TraceEvent> events, std::span<const uint8_t> sectors,
                      const CpuState& finalState, size_t count, const TailDevices& devices = {});

}  // namespace ttvm
