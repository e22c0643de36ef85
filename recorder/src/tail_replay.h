// TailReplay: recovers the last instructions of a recording without keeping
// a ring of every RIP while recording (which would cost on every step).
//
// The record loop keeps a checkpoint: a copy of RAM ("shadow", updated from
// the CPU's dirty pages), the CPU state, and the events recorded since. At
// the end, a second CPU runs from the checkpoint over the shadow RAM with an
// environment that answers from those events (exactly as a replay would),
// single-stepping the final instructions to collect their addresses and
// bytes. Reaching the recorded final state (same digest) doubles as a
// self-check of the recording's determinism.
#pragma once

#include <span>
#include <vector>

#include "ttvm/emulator/cpu.h"
#include "ttvm/formats/trace_types.h"

namespace ttvm {

struct TailResult {
  std::vector<RecentInstruction> instructions;  // oldest first
  bool reachedFinalState = false;               // digest matched at the final step
  std::string problem;                          // why not, when it did not
};

// `ram` is the checkpoint's RAM (modified by the re-execution); `events` the
// events recorded from `checkpoint.steps` on; `holes` the machine's MMIO holes.
TailResult replayTail(const CpuModel& model, std::span<uint8_t> ram,
                      std::vector<PhysicalMemory::Range> holes, const CpuState& checkpoint,
                      std::span<const TraceEvent> events, const CpuState& finalState, size_t count);

}  // namespace ttvm
