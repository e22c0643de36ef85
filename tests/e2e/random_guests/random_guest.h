// Random small guests that end in random faults, for the end-of-run
// determinism tests: each is built in memory from a seed (no assembler), in
// 32-bit protected mode with or without paging or in 64-bit long mode, with
// no IDT, a partial one or a full one whose handlers end the run in
// different ways (exit device, panic, reset, shutdown port, HLT with
// interrupts off or on, another fault, IRET back into the fault). Before the
// fault a few random instructions move registers and memory and ask the
// machine for input (RDTSC, port reads, CPUID).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ttvm/base/result.h"
#include "ttvm/machine/loader.h"
#include "ttvm/machine/machine.h"

namespace ttvm::testing {

// What a guest's last planned instruction does (the fault it is built to raise).
enum class PlannedFault : uint8_t {
  kDivideError,         // DIV by zero
  kInvalidOpcode,       // UD2
  kBreakpoint,          // INT3 (a trap)
  kIntNotPresent,       // INT 0x41 through a gate that is absent or not present
  kBadSelector,         // MOV DS with a selector beyond the GDT limit: #GP
  kNonCanonical,        // 64-bit: a load from a non-canonical address: #GP
  kPageNotPresent,      // paging: a load from a page that is not present
  kWriteReadOnly,       // paging: a store to a read-only page (#PF when CR0.WP)
  kStackReadOnly,       // paging: ESP on a read-only page, then PUSH
  kStackNonCanonical,   // 64-bit: RSP non-canonical, then PUSH: #SS
  kSingleStep,          // POPF sets TF: #DB after the next instruction
  kIcebp,               // INT1
  kDeviceNotAvailable,  // CR0.TS, then FNINIT: #NM
  kOverflow,            // 32-bit: INTO with OF set
  kCount
};
const char* plannedFaultName(PlannedFault f);

struct RandomGuest {
  uint64_t seed = 0;
  bool longMode = false;
  bool paging = false;
  PlannedFault fault = PlannedFault::kInvalidOpcode;
  std::string idt;          // "none", "partial", "full"
  std::string description;  // one line naming all of the above
};

inline constexpr uint64_t kRandomGuestRam = 2ull << 20;

// Builds the guest for `seed` into `machine`'s RAM (created with
// kRandomGuestRam bytes) and returns what the record session needs.
Result<machine::LoadedGuest> buildRandomGuest(machine::Machine& machine, uint64_t seed,
                                              RandomGuest& out);

}  // namespace ttvm::testing
