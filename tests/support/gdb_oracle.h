// Stock gdb as an oracle for tests of the symbol layer and its users: runs
// `gdb -batch` against `ttvm gdbserver TRACE --start STEP` and parses what
// gdb prints (bt, info args, info locals). Header-only, POSIX; the tests
// that use it skip when gdb is missing.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <regex>
#include <string>
#include <vector>

extern char** environ;

namespace ttvm::testing {

// One frame of gdb's `bt`.
struct GdbFrame {
  std::string function;  // "key_dup"
  std::string file;      // the path gdb prints after " at ", "" without one
  unsigned line = 0;
  // Arguments gdb found only through DW_OP_entry_value ("key=key@entry=...").
  std::vector<std::string> entryValues;
  // gdb printed "0x... in": false for frame 0 at a line's start and for the
  // caller of an inlined frame (same pc: not a frame of its own on the stack).
  bool hasAddress = false;
};

// One "name = value" line of `info args` / `info locals`.
struct GdbVariable {
  std::string name;
  std::string value;
};

namespace detail {

// Starts argv with stdout on a pipe; returns the pid and the read end.
inline bool spawnReading(const std::vector<std::string>& argv, pid_t& pid, int& fd) {
  int p[2];
  if (pipe(p) != 0) return false;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  posix_spawn_file_actions_adddup2(&fa, p[1], 2);
  posix_spawn_file_actions_addclose(&fa, p[0]);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(p[1]);
  if (rc != 0) {
    close(p[0]);
    return false;
  }
  fd = p[0];
  return true;
}

}  // namespace detail

// gdb's output for `commands`, run with `elf`'s symbols against a
// gdbserver that starts at `step`; nullopt (and `why`) when either would
// not run. Each command's output is preceded by a line "@@ COMMAND".
inline std::optional<std::string> askGdb(const std::string& ttvm, const std::string& gdb,
                                         const std::string& trace, const std::string& elf,
                                         uint64_t step, const std::vector<std::string>& commands,
                                         std::string* why = nullptr) {
  pid_t server = 0;
  int sfd = -1;
  if (!detail::spawnReading(
          {ttvm, "gdbserver", trace, "--port", "0", "--start", std::to_string(step)}, server,
          sfd)) {
    if (why) *why = "cannot start " + ttvm;
    return std::nullopt;
  }
  // The first line says where it listens.
  std::string first;
  char c = 0;
  while (read(sfd, &c, 1) == 1 && c != '\n') first += c;
  std::smatch m;
  if (!std::regex_search(first, m, std::regex(R"(listening on 127\.0\.0\.1:(\d+))"))) {
    kill(server, SIGKILL);
    waitpid(server, nullptr, 0);
    close(sfd);
    if (why) *why = "gdbserver did not say where it listens: " + first;
    return std::nullopt;
  }
  std::vector<std::string> argv{gdb,
                                "-batch",
                                "-nx",
                                "-ex",
                                "set pagination off",
                                "-ex",
                                "set width 0",
                                "-ex",
                                "set confirm off",
                                "-ex",
                                "file " + elf,
                                "-ex",
                                "target remote 127.0.0.1:" + m[1].str()};
  for (const std::string& cmd : commands) {
    argv.push_back("-ex");
    argv.push_back("echo @@ " + cmd + "\\n");
    argv.push_back("-ex");
    argv.push_back(cmd);
  }
  pid_t client = 0;
  int gfd = -1;
  std::optional<std::string> out;
  if (detail::spawnReading(argv, client, gfd)) {
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = read(gfd, buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
    close(gfd);
    int status = 0;
    waitpid(client, &status, 0);
    out = std::move(text);
  } else if (why) {
    *why = "cannot start " + gdb;
  }
  kill(server, SIGTERM);
  waitpid(server, nullptr, 0);
  close(sfd);
  return out;
}

// "bt", then "frame N", "info args", "info locals" for frames 0..frames-1:
// askGdb's commands for a call stack and its variables.
inline std::vector<std::string> backtraceAndFrameCommands(unsigned frames) {
  std::vector<std::string> cmds{"bt"};
  for (unsigned f = 0; f < frames; ++f) {
    cmds.push_back("frame " + std::to_string(f));
    cmds.push_back("info args");
    cmds.push_back("info locals");
  }
  return cmds;
}

// The part of askGdb's output that `command` printed.
inline std::string gdbSection(const std::string& output, const std::string& command) {
  const std::string mark = "@@ " + command + "\n";
  const size_t at = output.find(mark);
  if (at == std::string::npos) return {};
  const size_t from = at + mark.size();
  const size_t end = output.find("@@ ", from);
  return output.substr(from, end == std::string::npos ? std::string::npos : end - from);
}

namespace detail {
// Calls f(line) for each line of `text`.
template <typename F>
void forEachLine(const std::string& text, F f) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    f(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
}
}  // namespace detail

// gdb's `bt` lines: "#N  [0x... in ]FUNC (ARGS) at FILE:LINE".
inline std::vector<GdbFrame> parseGdbBacktrace(const std::string& bt) {
  std::vector<GdbFrame> out;
  static const std::regex kFrame(
      R"(^#\d+\s+(0x[0-9a-f]+ in )?(\S+) \(.*?\)(?: at (\S+):(\d+))?\s*$)");
  detail::forEachLine(bt, [&](const std::string& line) {
    std::smatch m;
    if (std::regex_match(line, m, kFrame)) {
      GdbFrame f{m[2].str(),
                 m[3].str(),
                 m[4].matched ? unsigned(std::stoul(m[4].str())) : 0u,
                 {},
                 m[1].matched};
      static const std::regex kEntry(R"((\w+)=\1@entry=)");
      for (std::sregex_iterator it(line.begin(), line.end(), kEntry), end; it != end; ++it)
        f.entryValues.push_back((*it)[1].str());
      out.push_back(std::move(f));
    }
  });
  return out;
}

// `info args` / `info locals`: "NAME = VALUE" lines ("No locals." gives none).
inline std::vector<GdbVariable> parseGdbVariables(const std::string& text) {
  std::vector<GdbVariable> out;
  static const std::regex kVar(R"(^(\w+) = (.*)$)");
  detail::forEachLine(text, [&](const std::string& line) {
    std::smatch m;
    if (std::regex_match(line, m, kVar)) out.push_back({m[1].str(), m[2].str()});
  });
  return out;
}

}  // namespace ttvm::testing
