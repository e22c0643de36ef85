// Field-by-field comparison of two CPU states: what `ttvm lockstep` reports
// after an instruction and what a replay names when its end state differs
// from the recorded one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ttvm/emulator/cpu_state.h"

namespace ttvm {

// The general registers' names in CpuState::gpr order, and the segment
// registers' in CpuState::seg order.
extern const char* const kGprNames[kNumGprs];
extern const char* const kSegNames[kNumSegRegs];

// One architectural field that differs between two states.
struct FieldDifference {
  std::string field;  // "rbx", "cs.base", "st3.significand", "pending_dr6", ...
  uint64_t reference = 0;
  uint64_t follower = 0;
  bool operator==(const FieldDifference&) const = default;
};

// Every field of the two states that differs, in register order: GPRs, RIP,
// RFLAGS, segments, descriptor tables, control and debug registers, MSRs,
// x87/SSE, pending events. Empty exactly when the states are equal apart from
// their step counts.
std::vector<FieldDifference> stateDifferences(const CpuState& reference, const CpuState& follower);

}  // namespace ttvm
