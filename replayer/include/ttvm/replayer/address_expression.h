// Addresses as a person types them — `monitor last-write arena+0x2fa8:8`,
// `ttvm replay --last-write 'table+8*3:8'` — evaluated against the guest's
// symbols (GuestSymbols) and, for `$reg`, the registers at the current step.
//
// Grammar (no spaces needed, spaces allowed between tokens):
//   range  := expr [':' expr]            the second expr is the length
//   expr   := term (('+' | '-') term)*   unsigned, wrapping at 2^64
//   term   := factor ('*' factor)*
//   factor := NUMBER | SYMBOL | '$' REGISTER | '(' expr ')'
// NUMBER is decimal or 0x-hex; SYMBOL a guest symbol ([A-Za-z_.][A-Za-z0-9_.]*,
// GuestSymbols::find, so `_start.spin` is one name); REGISTER one that
// registerByName knows (rax..r15, rip, rflags, cr3, fs_base...).
// An error names the text, the offset in it and what is wrong there.
#pragma once

#include <cstdint>
#include <string_view>

#include "ttvm/base/result.h"
#include "ttvm/emulator/cpu_state.h"
#include "ttvm/replayer/guest_symbols.h"

namespace ttvm {

struct AddressRange {
  uint64_t address = 0;
  uint64_t length = 1;  // bytes, 1..kMaxAddressRangeLength
};
constexpr uint64_t kMaxAddressRangeLength = uint64_t{1} << 30;

// `cpu` may be null: then `$reg` is an error.
Result<uint64_t> evaluateAddress(std::string_view text, const GuestSymbols& symbols,
                                 const CpuState* cpu);
// "EXPR[:LEN]"; LEN defaults to 1 and must be in 1..kMaxAddressRangeLength.
Result<AddressRange> parseAddressRange(std::string_view text, const GuestSymbols& symbols,
                                       const CpuState* cpu);

}  // namespace ttvm
