// Argument parsing shared by the ttvm subcommands, and the exit statuses of
// ttvm's own failures.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ttvm {
class Timeline;
}

namespace ttvm::cli {

// Exit statuses for failures of ttvm itself, as sysexits.h names them. Only
// its even numbers are used: `ttvm record` passes on a guest's isa-debug-exit
// status as ((value << 1) | 1), which is always odd, and its other end
// reasons (0 shutdown, 2 reset, ... 124 timeout, 130 interrupted) are even
// and outside 64-78, so a script can always tell "the guest said N" from
// "ttvm could not do its job". Where sysexits has an odd number (65
// EX_DATAERR, 73 EX_CANTCREAT) its even neighbour stands in (66, 74).
enum ExitStatus : int {
  kExitUsage = 64,     // EX_USAGE: an unknown option, a missing or malformed value
  kExitNoInput = 66,   // EX_NOINPUT: an input file (guest, initrd, trace) cannot be used
  kExitSoftware = 70,  // EX_SOFTWARE: ttvm failed internally (a bug)
  kExitIoError = 74,   // EX_IOERR: an output file (the trace) cannot be created or written
  kExitConfig = 78,    // EX_CONFIG: this host cannot provide what was asked (KVM, RAM)
};

// An unsigned integer in C notation (decimal, 0x hex, 0 octal); the whole
// string must be used. A leading '-', an empty string or a value above
// 2^64-1 is refused.
bool parseU64(const std::string& s, uint64_t& out);

// A byte count: a decimal number (with an optional fraction) or a 0x hex
// integer, then an optional binary suffix: K/k/KiB, M/m/MiB, G/g/GiB,
// T/t/TiB or B (e.g. "256M", "1.5G", "0x1000"). Refused: a leading '-', an
// empty string, another suffix, a count that is not a whole number of bytes,
// and one above 2^64-1.
bool parseSize(const std::string& s, uint64_t& out);

// Adds each `--symbols` file to the timeline's symbols; on an error prints
// "<command>: <message>" and returns false.
bool loadSymbolFiles(Timeline& timeline, const std::vector<std::string>& files,
                     const char* command);

// A duration or point in time in seconds: a finite, non-negative decimal
// number no larger than `max` ("nan", "inf" and "1e400" are refused).
bool parseSeconds(const std::string& s, double max, double& out);

}  // namespace ttvm::cli
