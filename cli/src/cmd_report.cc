// ttvm report trace.ttvm [--symbols FILE]...: a Markdown crash report to
// paste into a bug report (replayer/crash_report.h).
#include <atomic>
#include <csignal>
#include <cstdio>
#include <string>

#include "cli_args.h"
#include "commands.h"
#include "replay_options.h"
#include "ttvm/replayer/crash_report.h"

namespace ttvm::cli {
namespace {

const char* kReportHelp =
    "usage: ttvm report <trace.ttvm> [--symbols FILE]... [--serial-lines N] [--engine E]\n\n"
    "Prints a Markdown report of how the recorded run ended, to paste into a bug\n"
    "report: the end of run; the faulting instruction (the last exception before\n"
    "the end) with its symbol and disassembly; the registers and a backtrace\n"
    "there; the last lines of serial output; the last exceptions and interrupts\n"
    "with their steps; the trace's size; and the commands that open it.\n"
    "  --symbols FILE       System.map or ELF (vmlinux) for names, repeatable\n"
    "  --serial-lines N     serial output lines shown (default 20)\n"
    "  --checkpoint-mem SIZE  memory for the timeline's checkpoints\n" TTVM_ENGINE_HELP
    "Exit status: 0 printed, 1 the trace cannot be opened or replayed, 2 bad usage.\n";

std::atomic<bool> gCancel{false};

}  // namespace

int cmdReport(std::span<char* const> args) {
  uint64_t serialLines = 20;
  auto parsed = parseReplayArgs(args, {numberOption("--serial-lines", serialLines, 100000)});
  if (auto status = earlyExit(parsed, "ttvm report", kReportHelp)) return *status;
  auto replay = openReplay(parsed->replay, "ttvm report");
  if (!replay.ok()) {
    std::fprintf(stderr, "ttvm report: %s\n", replay.error().message.c_str());
    return 1;
  }
  std::signal(SIGINT, [](int) { gCancel.store(true); });
  Control control;
  control.cancel = &gCancel;
  ReportOptions options;
  options.serialLines = serialLines;
  options.symbolFiles = parsed->replay.symbolFiles;
  auto report = crashReport(*replay->timeline, options, control);
  if (!report.ok()) {
    std::fprintf(stderr, "ttvm report: %s\n", report.error().message.c_str());
    return 1;
  }
  std::fputs(report->c_str(), stdout);
  return 0;
}

}  // namespace ttvm::cli
