// ttvm dap TRACE [--symbols FILE]...: serves a replay to an editor over the
// Debug Adapter Protocol on stdin/stdout (replayer/dap_server.h): VS Code,
// nvim-dap and Emacs dap-mode start it as their debug adapter.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <string>

#include "cli_args.h"
#include "commands.h"
#include "replay_options.h"
#include "ttvm/replayer/dap_server.h"
#include "ttvm/replayer/dap_transport.h"

namespace ttvm::cli {
namespace {

const char* kDapHelp =
    "usage: ttvm dap TRACE [options]\n\n"
    "Serves a replay of TRACE to an editor over the Debug Adapter Protocol on\n"
    "stdin and stdout (the editor starts it; docs/dap.md has a VS Code launch\n"
    "configuration). After configurationDone it stops at the end of the recording;\n"
    "continue, reverse continue, step and step back, function, instruction and data\n"
    "breakpoints (both directions), stack traces, registers, disassembly and memory.\n"
    "The Debug Console takes 'when', 'seek STEP', 'last-write ADDR[:LEN]',\n"
    "'next-write ADDR[:LEN]', 'backtrace' and address expressions ('help').\n"
    "Messages go to stderr only: stdout carries the protocol.\n\n"
    "options:\n" TTVM_ENGINE_HELP
    "  --checkpoint-mem SIZE  memory for checkpoints (e.g. 512M; default 1/4 of free memory)\n"
    "  --symbols FILE         more guest symbols (a System.map or an ELF file); repeatable\n"
    "  -h, --help             this text\n\n"
    "Exit status: 0 the client disconnected or closed the stream; 1 the trace cannot\n"
    "be opened, or the stream failed; 2 bad usage.\n";

}  // namespace

int cmdDap(std::span<char* const> args) {
  auto parsed = parseReplayArgs(args, {});
  if (auto status = earlyExit(parsed, "ttvm dap", kDapHelp)) return *status;
  auto replay = openReplay(parsed->replay, "ttvm dap");
  if (!replay.ok()) {
    std::fprintf(stderr, "ttvm dap: %s\n", replay.error().message.c_str());
    return 1;
  }
  std::signal(SIGPIPE, SIG_IGN);  // a client that goes away is a write error, not a signal
  DapServer server(*replay->timeline, DapServerOptions{parsed->replay.trace});
  if (Status st = serveDap(STDIN_FILENO, STDOUT_FILENO, server); !st.ok()) {
    std::fprintf(stderr, "ttvm %s\n", st.error().message.c_str());
    return 1;
  }
  return 0;
}

}  // namespace ttvm::cli
