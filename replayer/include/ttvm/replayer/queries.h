// Query types of the Timeline: "who last wrote this memory", "when did this
// register change", "where is the previous/next event of kind K".
//
// Every answer names a *step*: the position just before the step that did
// it, so that moving there shows the responsible instruction at RIP (the
// store, the IN, the instruction an interrupt preempted) with the state
// before it ran. Answers strictly before (previous/last) or strictly after
// (next) the current position: asking again from the answer finds the one
// before/after it, never the same one.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "ttvm/emulator/cpu_state.h"
#include "ttvm/formats/trace_types.h"

namespace ttvm {

// A register the queries can watch, by name ("rax".."r15", "rflags", "cr0",
// "cr2", "cr3", "cr4", "cr8", "efer", "fs_base", "gs_base", "cs", "ss", "ds",
// "es", "fs", "gs", "rip").
struct RegisterRef {
  std::string name;
  std::function<uint64_t(const CpuState&)> read;
};
std::optional<RegisterRef> registerByName(std::string_view name);

struct EventQuery {
  enum class Kind : uint8_t {
    kInterrupt,     // an external interrupt or NMI delivered (trace events)
    kException,     // an exception delivered to the guest (found by execution)
    kPortIo,        // IN or OUT on `port` (any port when anyPort)
    kSerialOutput,  // a byte written to COM1's data port (0x3F8) or the debug console (0xE9)
    kTraceEvent,    // any trace event of `eventKind`
  };
  Kind kind = Kind::kInterrupt;
  uint16_t port = 0;
  bool anyPort = false;
  EventKind eventKind = EventKind::kPortIn;
  // kException: only these vectors (bit i = vector i); 0 = any.
  uint32_t vectors = 0;
};

struct QueryHit {
  uint64_t step = 0;  // the step that did it (position before it executed)
  // Memory queries: the access that hit; event queries: the trace event (if any).
  uint64_t address = 0;
  unsigned size = 0;
  std::optional<TraceEvent> event;
  uint8_t vector = 0;     // kException / kInterrupt
  uint64_t oldValue = 0;  // register queries: value before the step
  uint64_t newValue = 0;  // register queries: value after the step
};

// "#PF" for the architectural exceptions, "vector N" otherwise.
std::string exceptionName(uint8_t vector);

}  // namespace ttvm
