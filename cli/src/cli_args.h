// Argument parsing shared by the ttvm subcommands, and the exit statuses of
// ttvm's own failures.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ttvm/base/result.h"
#include "ttvm/emulator/cpu.h"

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

// The commands that read a trace (info, replay, verify, recover, gdbserver)
// pass on no guest status, and keep the small numbers of diff and cmp: 0 as
// asked, 1 and 3 as each one's --help says, and this one for bad usage (an
// unknown option, a missing or malformed value, no TRACE or two).
constexpr int kExitTraceUsage = 2;

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

// A duration or point in time in seconds: a finite, non-negative decimal
// number no larger than `max` ("nan", "inf" and "1e400" are refused).
bool parseSeconds(const std::string& s, double max, double& out);

// One option of a command: its spellings, whether the next argument is its
// value, and what it does with it. `take` gets the value ("" for a flag) and
// refuses it with a message that says what the value is not ("is not a size
// (e.g. 512M)"): the parser puts "OPTION 'VALUE'" in front of it.
struct Option {
  std::string_view name;        // "--port"
  std::string_view alias = {};  // a second spelling ("--output" for "-o"), or empty
  bool hasValue = false;
  std::function<Status(const std::string& value)> take;
};
Option flagOption(std::string_view name, bool& out);
// The value as given, into a std::string or a std::optional<std::string>.
template <typename Text>
Option textOption(std::string_view name, Text& out) {
  return Option{name, {}, true, [&out](const std::string& v) {
                  out = v;
                  return Status();
                }};
}
// Repeatable: each value is appended.
Option listOption(std::string_view name, std::vector<std::string>& out);
// The emulator engine: "fast" or "reference" (--engine).
std::optional<CpuEngine> parseEngine(std::string_view text);
Option engineOption(std::string_view name, CpuEngine& out);
// The CPU model `--cpu-model NAME` names (cpuModelNamed). For "host" the
// host's CPUID is read, or, where the environment variable TTVM_HOST_CPUID
// names a file, that file's table (parseCpuidTable): a test's stand-in for a
// host of another vendor. Nothing that replays a trace calls this.
Result<CpuModel> cpuModelOnThisHost(std::string_view name);
Option cpuModelOption(std::string_view name, CpuModel& out);
// A byte count (parseSize).
Option sizeOption(std::string_view name, uint64_t& out);
// An integer in C notation (parseU64) no larger than `max`.
Option numberOption(std::string_view name, uint64_t& out, uint64_t max);

// The arguments of a command on one trace (args[0] is the command's name).
struct TraceArgs {
  bool help = false;  // -h or --help came (parsing stopped there; trace may be empty)
  std::string trace;  // the one argument that is not an option
};
// Walks the arguments in order. Each error names the argument at fault:
// "unknown option '--x'", "--port needs a value", "--port '7x' is not a
// number in 0..65535", "no TRACE given", "more than one trace given ('a',
// 'b')". Anything that starts with '-' is an option.
Result<TraceArgs> parseTraceArgs(std::span<char* const> args, std::span<const Option> options);

// Prints "<command>: <message>" and then `help` on stderr; returns
// kExitTraceUsage.
int usageError(const char* command, const Error& error, const char* help);

// Whether a command stops after parsing its arguments (a TraceArgs or a
// ReplayArgs): after --help, with `help` on stdout and status 0; on a usage
// error, as usageError. nullopt: go on.
template <typename Args>
std::optional<int> earlyExit(const Result<Args>& parsed, const char* command, const char* help) {
  if (!parsed.ok()) return usageError(command, parsed.error(), help);
  if (!parsed->help) return std::nullopt;
  std::fputs(help, stdout);
  return 0;
}

}  // namespace ttvm::cli
