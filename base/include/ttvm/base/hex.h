// One spelling of a number in messages: "0x" and lowercase hex digits, no
// padding (addresses, byte offsets, register values in errors and logs).
#pragma once

#include <cstdint>
#include <string>

namespace ttvm {

std::string hex(uint64_t v);

}  // namespace ttvm
