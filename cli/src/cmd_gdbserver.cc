// ttvm gdbserver trace.ttvm [--port N] [--listen ADDR]: serves a replay to
// stock gdb over the remote serial protocol — registers, memory, breakpoints
// and watchpoints, forward and reverse execution (replayer/gdb_server.h).
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli_args.h"
#include "commands.h"
#include "ttvm/formats/trace_reader.h"
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
    "The replay is read-only: writes to registers or memory are refused.\n\n"
    "options:\n"
    "  --port N               TCP port (default 1234; 0 = any free port, printed)\n"
    "  --listen ADDR          address to bind (default 127.0.0.1: this machine only)\n"
    "  --arch auto|i386|x86-64\n"
    "                         register layout gdb sees (auto: x86-64 when the guest is in\n"
    "                         64-bit mode at the start or at the end of the recording)\n"
    "  --checkpoint-mem SIZE  memory for checkpoints (e.g. 512M; default 1/4 of free memory)\n"
    "  --multi                serve one gdb after another: a gdb that connects while\n"
    "                         another is served waits for its turn (and new ones are\n"
    "                         served after the last disconnects). Without it a second\n"
    "                         gdb is refused at once with an error reply\n"
    "  --symbols FILE         more guest symbols for the monitor commands and 'monitor\n"
    "                         backtrace': a System.map or an ELF file; repeatable (gdb\n"
    "                         loads its own: symbol-file / add-symbol-file)\n"
    "  -h, --help             this text\n";

}  // namespace

int cmdGdbserver(std::span<char* const> args) {
  std::string path;
  std::string listenAddress = "127.0.0.1";
  long port = 1234;
  uint64_t checkpointMem = 0;
  bool multi = false;
  std::vector<std::string> symbolFiles;
  GdbServerOptions options;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string a = args[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "ttvm gdbserver: %s needs a value\n", a.c_str());
        return nullptr;
      }
      return args[++i];
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kGdbserverHelp, stdout);
      return 0;
    } else if (a == "--port") {
      const char* v = value();
      if (v == nullptr) return 2;
      char* end = nullptr;
      port = std::strtol(v, &end, 10);
      if (*v == '\0' || *end != '\0' || port < 0 || port > 65535) {
        std::fprintf(stderr, "ttvm gdbserver: --port '%s' is not a port number (0-65535)\n", v);
        return 2;
      }
    } else if (a == "--listen") {
      const char* v = value();
      if (v == nullptr) return 2;
      listenAddress = v;
    } else if (a == "--arch") {
      const char* v = value();
      if (v == nullptr) return 2;
      const std::string s = v;
      if (s == "i386")
        options.arch = GdbArch::kI386;
      else if (s == "x86-64" || s == "i386:x86-64")
        options.arch = GdbArch::kX86_64;
      else if (s != "auto") {
        std::fprintf(stderr, "ttvm gdbserver: --arch '%s': expected auto, i386 or x86-64\n", v);
        return 2;
      }
    } else if (a == "--checkpoint-mem") {
      const char* v = value();
      if (v == nullptr) return 2;
      if (!parseSize(v, checkpointMem)) {
        std::fprintf(stderr, "ttvm gdbserver: --checkpoint-mem '%s' is not a size\n", v);
        return 2;
      }
    } else if (a == "--symbols") {
      const char* v = value();
      if (v == nullptr) return 2;
      symbolFiles.push_back(v);
    } else if (a == "--multi") {
      multi = true;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "ttvm gdbserver: unknown option '%s'\n\n%s", a.c_str(), kGdbserverHelp);
      return 2;
    } else if (path.empty()) {
      path = a;
    } else {
      std::fprintf(stderr, "ttvm gdbserver: more than one trace ('%s', '%s')\n", path.c_str(),
                   a.c_str());
      return 2;
    }
  }
  if (path.empty()) {
    std::fputs(kGdbserverHelp, stderr);
    return 2;
  }
  auto reader = TraceReader::open(path);
  if (!reader.ok()) {
    std::fprintf(stderr, "ttvm gdbserver: %s\n", reader.error().message.c_str());
    return 1;
  }
  if (reader->end()) options.finalCpu = reader->end()->finalCpu;
  TimelineOptions to;
  to.checkpointMemBytes = checkpointMem;
  auto timeline = Timeline::open(*reader, to);
  if (!timeline.ok()) {
    std::fprintf(stderr, "ttvm gdbserver: %s\n", timeline.error().message.c_str());
    return 1;
  }
  if (!loadSymbolFiles(**timeline, symbolFiles, "ttvm gdbserver")) return 1;
  auto listener = GdbListener::listen(listenAddress, static_cast<uint16_t>(port));
  if (!listener.ok()) {
    std::fprintf(stderr, "ttvm %s\n", listener.error().message.c_str());
    return 1;
  }
  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  std::printf("ttvm gdbserver: %s, steps %llu..%llu; listening on %s:%u\n", path.c_str(),
              static_cast<unsigned long long>((*timeline)->beginStep()),
              static_cast<unsigned long long>((*timeline)->endStep()), listenAddress.c_str(),
              static_cast<unsigned>(listener->port()));
  std::fflush(stdout);
  GdbServer server(**timeline, options);
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
