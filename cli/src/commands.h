// The ttvm subcommands. Each lives in cmd_<name>.cc, parses its own
// arguments, wires the objects it needs and returns the process exit status.
#pragma once

#include <span>
#include <string_view>

namespace ttvm::cli {

// args[0] is the subcommand's name; the rest are its arguments.
using CommandFn = int (*)(std::span<char* const> args);

struct Command {
  std::string_view name;
  std::string_view summary;
  CommandFn run;
};

// Defined in the cmd_*.cc files.
int cmdInfo(std::span<char* const> args);
int cmdRecover(std::span<char* const> args);
int cmdReplay(std::span<char* const> args);
int cmdVerify(std::span<char* const> args);
int cmdRecord(std::span<char* const> args);
int cmdGdbserver(std::span<char* const> args);
int cmdDap(std::span<char* const> args);
int cmdLockstep(std::span<char* const> args);
int cmdSlice(std::span<char* const> args);
int cmdReport(std::span<char* const> args);

}  // namespace ttvm::cli
