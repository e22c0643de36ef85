// GuestSymbols: naming guest code in reports, built from the trace header's
// guest images (their ELF symbol tables). A value-like helper with no state
// beyond what it is built from. Disassembly comes from the emulator
// (ttvm/emulator/disassembler.h), the one owner of Zydis.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ttvm/emulator/cpu_state.h"
#include "ttvm/emulator/disassembler.h"
#include "ttvm/formats/trace_types.h"

namespace ttvm {

// Looks up the function (or object) that contains a guest virtual address.
class GuestSymbols {
 public:
  GuestSymbols() = default;
  explicit GuestSymbols(const TraceHeader& header);

  // "name+0x12" for an address inside a sized symbol (or the nearest symbol
  // below it when sizes are unknown, within 64 KiB); nullopt when none.
  std::optional<std::string> describe(uint64_t address) const;
  // The address of the symbol called `name` (the first when several).
  std::optional<uint64_t> find(const std::string& name) const;
  bool empty() const { return symbols_.empty(); }

 private:
  std::vector<Symbol> symbols_;  // sorted by address, zero-address symbols dropped
};

}  // namespace ttvm
