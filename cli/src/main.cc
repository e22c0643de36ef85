// ttvm: record, replay and travel in time through x86 virtual machines.
#include <cstdio>
#include <cstring>
#include <span>

#include "commands.h"

namespace ttvm::cli {
namespace {

constexpr Command kCommands[] = {
    {"record", "run a guest on ttvm's PC and record every input into a trace", cmdRecord},
    {"info", "describe a trace: header, machine, events, end reason, size", cmdInfo},
    {"replay", "replay a trace forward and backward: --to, --regs, --last-write, --backtrace",
     cmdReplay},
    {"verify", "replay a whole trace and check every input and digest (exit 0 = identical)",
     cmdVerify},
    {"gdbserver", "serve a replay to gdb: reverse-stepi, reverse-continue, watchpoints",
     cmdGdbserver},
    {"dap", "serve a replay to an editor (VS Code...) over the Debug Adapter Protocol", cmdDap},
    {"lockstep", "run a guest under KVM and the emulator side by side, compare every instruction",
     cmdLockstep},
    {"recover", "complete a trace whose recorder was killed (rewrite its footer)", cmdRecover},
    {"report", "a Markdown crash report of a trace, to paste into a bug report", cmdReport},
    {"slice", "cut a trace to a stretch of it (--last N): a smaller file for a bug report",
     cmdSlice},
};

void printUsage(std::FILE* out) {
  std::fprintf(out,
               "usage: ttvm <command> [options]\n\n"
               "ttvm records x86 virtual machines and replays them forward and backward.\n\n"
               "commands:\n");
  for (const Command& c : kCommands)
    std::fprintf(out, "  %-10.*s %.*s\n", static_cast<int>(c.name.size()), c.name.data(),
                 static_cast<int>(c.summary.size()), c.summary.data());
  std::fprintf(out, "\n'ttvm <command> --help' describes each command's options.\n");
}

}  // namespace
}  // namespace ttvm::cli

int main(int argc, char** argv) {
  using namespace ttvm::cli;
  if (argc < 2) {
    printUsage(stderr);
    return 2;
  }
  std::string_view name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    printUsage(stdout);
    return 0;
  }
  if (name == "--version" || name == "version") {
    std::printf("ttvm %s\n", TTVM_VERSION);
    return 0;
  }
  for (const Command& c : kCommands) {
    if (c.name == name) return c.run(std::span<char* const>(argv + 1, argc - 1));
  }
  std::fprintf(stderr, "ttvm: unknown command '%s'\n\n", argv[1]);
  printUsage(stderr);
  return 2;
}
