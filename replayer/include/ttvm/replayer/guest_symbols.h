// GuestSymbols and Disassembler: naming guest code in reports. GuestSymbols
// is built from the trace header's guest images (their ELF symbol tables);
// Disassembler is the replayer's one owner of Zydis formatting (the emulator's
// decoder is private to it). Both are value-like helpers with no state beyond
// what they are built from.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ttvm/emulator/cpu_state.h"
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

// One decoded instruction as text.
struct Disassembly {
  unsigned length = 0;  // 0 when the bytes do not decode
  std::string text;     // Intel syntax, e.g. "mov qword ptr [rax+0x8], rdx"
};

// Disassembles `bytes` (at most 15 used) as the instruction at `rip` in `mode`.
Disassembly disassemble(std::span<const uint8_t> bytes, CpuMode mode, uint64_t rip);

}  // namespace ttvm
