// Argument parsing shared by the ttvm subcommands.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ttvm {
class Timeline;
}

namespace ttvm::cli {

// An unsigned integer in C notation (decimal, 0x hex, 0 octal); the whole
// string must be used. A leading '-' or an empty string is refused.
bool parseU64(const std::string& s, uint64_t& out);

// A byte count with an optional binary suffix: K/k/KiB, M/m/MiB, G/g/GiB or
// B (e.g. "256M", "1.5G"). A leading '-', an empty string or another suffix
// is refused.
bool parseSize(const std::string& s, uint64_t& out);

// Adds each `--symbols` file to the timeline's symbols; on an error prints
// "<command>: <message>" and returns false.
bool loadSymbolFiles(Timeline& timeline, const std::vector<std::string>& files,
                     const char* command);

}  // namespace ttvm::cli
