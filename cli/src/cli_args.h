// Argument parsing shared by the ttvm subcommands.
#pragma once

#include <cstdint>
#include <string>

namespace ttvm::cli {

// An unsigned integer in C notation (decimal, 0x hex, 0 octal); the whole
// string must be used. A leading '-' or an empty string is refused.
bool parseU64(const std::string& s, uint64_t& out);

// A byte count with an optional binary suffix: K/k/KiB, M/m/MiB, G/g/GiB or
// B (e.g. "256M", "1.5G"). A leading '-', an empty string or another suffix
// is refused.
bool parseSize(const std::string& s, uint64_t& out);

}  // namespace ttvm::cli
