// DivergenceReport: why a replay stopped agreeing with its trace. A replay
// never guesses: when the CPU asks for an input the trace does not hold next
// (another kind, port, address or size), writes a value other than the one
// recorded, reaches a state whose digest differs from the recorded one, or
// passes a recorded event without consuming it, the replay stops and this
// report says where and how.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "ttvm/formats/trace_types.h"

namespace ttvm::machine {

struct DivergenceReport {
  uint64_t step = 0;        // the step during which the replay diverged (CpuState::steps)
  uint64_t rip = 0;         // RIP of the instruction executing at that step
  std::string symbol;       // "function+0x12", empty when unknown
  std::string disassembly;  // the instruction at RIP, empty when unreadable
  std::optional<TraceEvent> expected;  // the trace's next event; nullopt at the end of the trace
  std::string actual;                  // what the replay did, e.g. "portIn port=0x60 size=1"
  std::optional<TraceEvent> lastMatching;  // the last event the replay agreed with
  std::string reason;                      // one line: the kind of mismatch

  // Several lines for a terminal.
  std::string format() const;
};

}  // namespace ttvm::machine
