// Small helpers shared by the ALU handler files (not a public interface).
#pragma once

#include <cstdint>

#include "exec/cpu_impl.h"
#include "exec/handler_table.h"

namespace ttvm::alu {

// Registers H<uint8_t>..H<uint64_t> for mnemonic m. H is a class template
// with a static `run` (a Handler).
template <template <class> class H>
void setAllSizes(HandlerTable& t, ZydisMnemonic m) {
  t.setSized(m, &H<uint8_t>::run, &H<uint16_t>::run, &H<uint32_t>::run, &H<uint64_t>::run);
}
// The same for instructions without an 8-bit form (that slot stays empty: #UD).
template <template <class> class H>
void setWideSizes(HandlerTable& t, ZydisMnemonic m) {
  t.setSized(m, nullptr, &H<uint16_t>::run, &H<uint32_t>::run, &H<uint64_t>::run);
}

// The GPR numbers of the implicit operands.
inline constexpr uint8_t kRax = 0;
inline constexpr uint8_t kRdx = 2;

}  // namespace ttvm::alu
