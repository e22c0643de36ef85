// ttvm gdbserver trace.ttvm [--port N] [--listen ADDR]: serves a replay to
// stock gdb over the remote serial protocol — registers, memory, breakpoints
// and watchpoints, forward and reverse execution (replayer/gdb_server.h).
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "cli_args.h"
#include "commands.h"
#include "replay_options.h"
#include "ttvm/replayer/gdb_server.h"
#include "ttvm/replayer/gdb_transport.h"
#include "ttvm/replayer/timeline.h"

namespace ttvm::cli {
namespace {

std::atomic<bool> gStop{false};

void onSignal(int) {
  gStop.store(true);
}

const char* kGdbserverHelp =
    "usage: ttvm gdbserver TRACE [options]\n\n"
    "Serves a replay of TRACE to gdb ('target remote HOST:PORT'): registers, memory,\n"
    "breakpoints, watchpoints, continue/step forward and in reverse (reverse-stepi,\n"
    "reverse-continue), and 'monitor' commands (when, seek, last-write, next-write,\n"
    "reg-change, prev-event, next-event; 'monitor help' describes them).\n"
    "The replay is read-only: writes to registers or memory are refused.\n"
    "gdb -x scripts/ttvm-gdb.py adds 'ttvm seek|last-write|when|...' commands that\n"
    "also refresh gdb's view after a move, and 'info registers system'.\n\n"
    "options:\n"
    "  --port N               TCP port (default 1234; 0 = any free port, printed)\n"
    "  --listen ADDR          address to bind (default 127.0.0.1: this machine only)\n"
    "  --arch auto|i386|x86-64\n"
    "                         register layout gdb sees (auto: x86-64 when the guest is in\n"
    "                         64-bit mode at the start or at the end of the "
    "recording)\n" TTVM_ENGINE_HELP
    "  --checkpoint-mem SIZE  memory for checkpoints (e.g. 512M; default 1/4 of free memory)\n"
    "  --multi                serve one gdb after another: a gdb that connects while\n"
    "                         another is served waits for its turn (and new ones are\n"
    "                         served after the last disconnects). Without it a second\n"
    "                         gdb is refused at once with an error reply\n"
    "  --start begin|end|STEP where each gdb connection starts (default: end, the end of\n"
    "                         the recording); every --multi connection starts there again,\n"
    "                         whatever the one before it did, and the log says where\n"
    "  --symbols FILE         more guest symbols for the monitor commands and 'monitor\n"
    "                         backtrace': a System.map or an ELF file; repeatable (gdb\n"
    "                         loads its own: symbol-file / add-symbol-file)\n"
    "  -h, --help             this text\n\n"
    "Exit status: 0 served until the last gdb detached, or stopped by Ctrl-C or\n"
    "SIGTERM; 1 the trace cannot be opened or replayed, or the address cannot be\n"
    "bound; 2 bad usage (an unknown option, a missing or malformed value, no TRACE).\n";

}  // namespace

int cmdGdbserver(std::span<char* const> args) {
  std::string listenAddress = "127.0.0.1";
  uint64_t port = 1234;
  bool multi = false;
  GdbServerOptions options;
  const Option arch{"--arch", {}, true, [&](const std::string& v) -> Status {
                      if (v == "i386")
                        options.arch = GdbArch::kI386;
                      else if (v == "x86-64" || v == "i386:x86-64")
                        options.arch = GdbArch::kX86_64;
                      else if (v != "auto")
                        return makeError("is not auto, i386 or x86-64");
                      return Status();
                    }};
  const Option start{"--start", {}, true, [&](const std::string& v) -> Status {
                       if (v == "end") {
                         options.start.kind = GdbStart::Kind::kEnd;
                       } else if (v == "begin") {
                         options.start.kind = GdbStart::Kind::kBegin;
                       } else {
                         options.start.kind = GdbStart::Kind::kStep;
                         if (!parseU64(v, options.start.step))
                           return makeError("is not begin, end or a step number");
                       }
                       return Status();
                     }};
  auto parsed = parseReplayArgs(
      args, {numberOption("--port", port, 65535), textOption("--listen", listenAddress), arch,
             flagOption("--multi", multi), start});
  if (auto status = earlyExit(parsed, "ttvm gdbserver", kGdbserverHelp)) return *status;
  auto replay = openReplay(parsed->replay, "ttvm gdbserver");
  if (!replay.ok()) {
    std::fprintf(stderr, "ttvm gdbserver: %s\n", replay.error().message.c_str());
    return 1;
  }
  const std::string& path = parsed->replay.trace;
  Timeline& timeline = *replay->timeline;
  if (replay->reader->end()) options.finalCpu = replay->reader->end()->finalCpu;
  if (options.start.kind == GdbStart::Kind::kStep &&
      (options.start.step < timeline.beginStep() || options.start.step > timeline.endStep())) {
    std::fprintf(stderr, "ttvm gdbserver: --start %llu is outside the history (%llu..%llu)\n",
                 static_cast<unsigned long long>(options.start.step),
                 static_cast<unsigned long long>(timeline.beginStep()),
                 static_cast<unsigned long long>(timeline.endStep()));
    return kExitTraceUsage;
  }
  auto listener = GdbListener::listen(listenAddress, static_cast<uint16_t>(port));
  if (!listener.ok()) {
    std::fprintf(stderr, "ttvm %s\n", listener.error().message.c_str());
    return 1;
  }
  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  std::printf("ttvm gdbserver: %s, steps %llu..%llu; listening on %s:%u\n", path.c_str(),
              static_cast<unsigned long long>(timeline.beginStep()),
              static_cast<unsigned long long>(timeline.endStep()), listenAddress.c_str(),
              static_cast<unsigned>(listener->port()));
  std::fflush(stdout);
  GdbServer server(timeline, options);
  server.warmUp();  // to --start while gdb starts up
  GdbServeOptions serve;
  serve.multi = multi;
  serve.log = [](const std::string& line) {
    std::printf("ttvm gdbserver: %s\n", line.c_str());
    std::fflush(stdout);
  };
  if (Status st = serveGdb(*listener, server, serve, &gStop); !st.ok()) {
    std::fprintf(stderr, "ttvm %s\n", st.error().message.c_str());
    return 1;
  }
  return 0;
}

}  // namespace ttvm::cli
