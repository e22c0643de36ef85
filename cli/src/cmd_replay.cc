// ttvm replay trace.ttvm [options]: replays a recording on the emulator,
// forward and backward, and prints what was asked for. Without options it
// replays to the end and checks the recorded end state.
#include <cerrno>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cli_args.h"
#include "commands.h"
#include "replay_options.h"
#include "ttvm/base/hex.h"
#include "ttvm/replayer/address_expression.h"
#include "ttvm/replayer/backtrace.h"
#include "ttvm/replayer/crash_report.h"
#include "ttvm/replayer/timeline.h"

namespace ttvm::cli {
namespace {

std::atomic<bool> gCancel{false};

void onSigint(int) {
  gCancel.store(true);
}

const char* kReplayHelp =
    "usage: ttvm replay TRACE [options]\n\n"
    "Replays TRACE on ttvm's emulator, every input taken from the trace. Without\n"
    "options: replays to the end and checks the recorded final state (exit 1 on a\n"
    "divergence or a different end state; exit 3 when the trace has no footer, so\n"
    "that the end could not be checked).\n\n"
    "options:\n"
    "  --to STEP|end          go to STEP (default: the end) before the queries below\n"
    "  --regs                 print the registers at that position\n"
    "  --last-write ADDR[:LEN]\n"
    "                         find the last write to [ADDR, ADDR+LEN) before that position\n"
    "                         (ADDR, LEN: numbers, symbols and $registers with + - * ( ),\n"
    "                         e.g. arena+0x2fa8:8; LEN default 1) and print the step,\n"
    "                         RIP, symbol and disassembly of the store, the bytes before and\n"
    "                         after it, and the two instructions before it\n"
    "  --physical             ADDR is a guest-physical address (default: linear)\n"
    "  --backtrace            the call stack at that position: RIP, then the frame-pointer\n"
    "                         chain, then a scan of the stack ('?' frames) where it breaks\n"
    "  --symbols FILE         more guest symbols: a System.map or an ELF file (vmlinux, with\n"
    "                         or without DWARF); repeatable. The trace's own image's symbols\n"
    "                         are always used\n"
    "  --trace-steps A..B     each step in [A, B]: RIP, symbol, disassembly, changed registers\n"
    "  --follow               TRACE is still being recorded: replay what it holds, then\n"
    "                         poll it every 250 ms and replay what the recorder flushes\n"
    "                         (about once a second), printing 'follow: step N' as it\n"
    "                         goes, until the run ends (its footer appears) or Ctrl-C;\n"
    "                         then report and check the end as without it\n" TTVM_ENGINE_HELP
    "  --checkpoint-mem SIZE  memory for checkpoints (e.g. 512M; default: 1/4 of free memory, at "
    "most guest RAM)\n"
    "  -h, --help             this text\n\n"
    "Ctrl-C cancels a long operation.\n\n"
    "Exit status: 0 done (and, at the end, the final state matches the recording);\n"
    "1 the trace cannot be opened, the replay diverges, or the end state differs;\n"
    "2 bad usage (an unknown option, a missing or malformed value, no TRACE, a step\n"
    "past the end); 3 the trace has no footer, so its end could not be checked.\n";

void printRegisters(const CpuState& s) {
  std::fputs(formatRegisters(s).c_str(), stdout);
}

std::string where(Timeline& tl, uint64_t rip) {
  ReplaySession& s = tl.session();
  std::string sym = s.symbolAt(rip);
  std::string out = hex(rip);
  if (!sym.empty()) out += " <" + sym + ">";
  return out + ": " + s.disassembleAt(rip);
}

// Changed general registers and flags between two states, "rax=0x1 rflags=0x46".
std::string changes(const CpuState& a, const CpuState& b) {
  static const char* kNames[] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                 "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
  std::string out;
  for (int i = 0; i < kNumGprs; ++i)
    if (a.gpr[i] != b.gpr[i]) out += std::string(" ") + kNames[i] + "=" + hex(b.gpr[i]);
  if (a.rflags != b.rflags) out += " rflags=" + hex(b.rflags);
  static const char* kSeg[] = {"es", "cs", "ss", "ds", "fs", "gs"};
  for (int i = 0; i < kNumSegRegs; ++i)
    if (!(a.seg[i] == b.seg[i])) out += std::string(" ") + kSeg[i] + "=" + hex(b.seg[i].selector);
  if (a.cr0 != b.cr0) out += " cr0=" + hex(b.cr0);
  if (a.cr2 != b.cr2) out += " cr2=" + hex(b.cr2);
  if (a.cr3 != b.cr3) out += " cr3=" + hex(b.cr3);
  if (a.cr4 != b.cr4) out += " cr4=" + hex(b.cr4);
  if (a.msr.efer != b.msr.efer) out += " efer=" + hex(b.msr.efer);
  if (!(a.fpu == b.fpu)) out += " (x87/SSE)";
  return out;
}

bool reportStop(const StopReason& r) {
  if (r.kind == StopKind::kDivergence) {
    std::fprintf(stderr, "ttvm replay: %s",
                 r.divergence ? r.divergence->format().c_str() : "divergence\n");
    return false;
  }
  if (r.kind == StopKind::kCancelled) {
    std::fprintf(stderr, "ttvm replay: cancelled at step %" PRIu64 "\n", r.step);
    return false;
  }
  return true;
}

// --follow: replays what the trace holds, then polls it for what the
// recorder flushes, until its footer appears (true) or Ctrl-C (true, with
// gCancel cleared so that the end of the prefix is still reached and
// reported). A prefix's last step is not replayed until more comes: its
// events may be split between the last chunk flushed and the next. False
// (reported) on a divergence or a trace that cannot be read.
bool follow(TraceReader& reader, Timeline& tl, Control& control) {
  constexpr auto kPoll = std::chrono::milliseconds(250);
  while (true) {
    auto grew = reader.refresh();
    if (!grew.ok()) {
      std::fprintf(stderr, "ttvm replay: --follow: %s\n", grew.error().message.c_str());
      return false;
    }
    if (*grew) tl.extendEnd();
    if (reader.end()) return true;
    if (tl.endStep() > tl.now() + 1) {
      const StopReason r = tl.seek(tl.endStep() - 1, control);
      if (r.kind == StopKind::kCancelled) break;
      if (!reportStop(r)) return false;
      std::printf("follow: step %" PRIu64 " (%zu chunks, %" PRIu64 " bytes)\n", tl.now(),
                  reader.chunkCount(), reader.usableBytes());
      std::fflush(stdout);
    }
    if (gCancel.load()) break;
    std::this_thread::sleep_for(kPoll);
  }
  std::fprintf(stderr,
               "ttvm replay: --follow: stopped at step %" PRIu64
               " by Ctrl-C; the recording goes on\n",
               tl.now());
  gCancel.store(false);
  return true;
}

}  // namespace

int cmdReplay(std::span<char* const> args) {
  std::optional<std::string> to, lastWrite, traceSteps;
  bool regs = false, bt = false, physical = false, following = false;
  auto parsed = parseReplayArgs(
      args, {textOption("--to", to), flagOption("--regs", regs), flagOption("--backtrace", bt),
             flagOption("--follow", following), flagOption("--physical", physical),
             textOption("--last-write", lastWrite), textOption("--trace-steps", traceSteps)});
  if (auto status = earlyExit(parsed, "ttvm replay", kReplayHelp)) return *status;
  auto replay = openReplay(parsed->replay, "ttvm replay");
  // A recorder that has just started may not have written the initial state.
  for (int tries = 0; following && !replay.ok() && tries < 40; ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    replay = openReplay(parsed->replay, "ttvm replay");
  }
  if (!replay.ok()) {
    std::fprintf(stderr, "ttvm replay: %s\n", replay.error().message.c_str());
    return 1;
  }
  TraceReader& reader = *replay->reader;
  Timeline& tl = *replay->timeline;
  std::signal(SIGINT, onSigint);
  Control control;
  control.cancel = &gCancel;
  if (following) {
    if (reader.header().backend != Backend::kEmulator) {
      std::fprintf(stderr,
                   "ttvm replay: --follow: a KVM trace is not followed (its steps are "
                   "assigned once, when it is opened)\n");
      return kExitTraceUsage;
    }
    if (to || traceSteps) {
      std::fprintf(stderr,
                   "ttvm replay: --follow replays to the end: not with --to or --trace-steps\n");
      return kExitTraceUsage;
    }
    if (!follow(reader, tl, control)) return 1;
  }

  uint64_t target = tl.endStep();
  if (to && *to != "end" && !parseU64(*to, target)) {
    std::fprintf(stderr, "ttvm replay: --to '%s' is not a step number or 'end'\n", to->c_str());
    return kExitTraceUsage;
  }
  if (target > tl.endStep()) {
    std::fprintf(stderr,
                 "ttvm replay: --to %" PRIu64 " is past the end of the trace (step %" PRIu64 ")\n",
                 target, tl.endStep());
    return kExitTraceUsage;
  }
  if (target < tl.beginStep()) {
    // A slice starts at its cut: the source's earlier steps are not in it.
    std::fprintf(stderr,
                 "ttvm replay: --to %" PRIu64 " is before the trace's first step (%" PRIu64
                 "): it is a slice of a longer run\n",
                 target, tl.beginStep());
    return kExitTraceUsage;
  }
  const bool plain = !to && !regs && !bt && !lastWrite && !traceSteps;

  if (traceSteps) {
    uint64_t a = 0, b = 0;
    const size_t dots = traceSteps->find("..");
    if (dots == std::string::npos || !parseU64(traceSteps->substr(0, dots), a) ||
        !parseU64(traceSteps->substr(dots + 2), b) || b < a) {
      std::fprintf(stderr, "ttvm replay: --trace-steps '%s' is not A..B with A <= B\n",
                   traceSteps->c_str());
      return kExitTraceUsage;
    }
    b = std::min(b, tl.endStep());
    if (!reportStop(tl.seek(a, control))) return 1;
    CpuState prev = tl.registers();
    for (uint64_t s = a; s <= b; ++s) {
      const CpuState cur = tl.registers();
      std::printf("%10" PRIu64 "  %s%s\n", s, where(tl, cur.rip).c_str(),
                  s == a ? "" : ("   ;" + changes(prev, cur)).c_str());
      prev = cur;
      if (s == b) break;
      StopReason r = tl.step(1, control);
      if (!reportStop(r)) return 1;
      if (r.kind == StopKind::kHistoryEnd && tl.now() == s) break;
    }
    if (!to && !regs && !bt && !lastWrite) return 0;
  }

  const StopReason r = tl.seek(target, control);
  if (!reportStop(r)) return 1;
  int status = 0;
  if (target == tl.endStep()) {
    const std::string diff = tl.checkEndState();
    const auto& end = reader.end();
    if (!diff.empty()) {
      std::fprintf(stderr, "ttvm replay: the replay's end state differs from the recording: %s\n",
                   diff.c_str());
      status = 1;
    } else if (!end) {
      // Nothing to compare with: never claim a match that was not checked.
      std::printf("replayed %" PRIu64 " steps to the end of the readable prefix; %" PRIu64
                  " state digests match the recording. The trace has no footer (%s): the "
                  "end of the run and its final state were not checked\n",
                  tl.now(), tl.session().digestsChecked(), reader.recoveryNote().c_str());
      status = 3;
    } else if (plain) {
      std::printf("replayed %" PRIu64 " steps to the end (%s%s%s); %" PRIu64
                  " state digests and the final state match the recording\n",
                  tl.now(), end ? std::string(endReasonName(end->reason)).c_str() : "no footer",
                  end && !end->message.empty() ? ": " : "", end ? end->message.c_str() : "",
                  tl.session().digestsChecked());
      std::printf("end at %s\n", where(tl, tl.registers().rip).c_str());
    }
  }
  if (!plain)
    std::printf("at step %" PRIu64 ": %s\n", tl.now(), where(tl, tl.registers().rip).c_str());
  if (regs) printRegisters(tl.registers());
  if (bt) std::fputs(formatBacktrace(unwindStack(tl)).c_str(), stdout);
  if (lastWrite) {
    const CpuState& cpu = tl.registers();
    auto range = parseAddressRange(*lastWrite, tl.symbols(), &cpu);
    if (!range.ok()) {
      std::fprintf(stderr, "ttvm replay: --last-write %s\n", range.error().message.c_str());
      return kExitTraceUsage;
    }
    const uint64_t addr = range->address, len = range->length;
    const uint64_t from = tl.now();
    std::vector<uint8_t> nowBytes(std::min<uint64_t>(len, 64));
    const bool readable =
        physical ? tl.readPhysical(addr, nowBytes) : tl.readLinear(addr, nowBytes);
    auto hit = tl.lastWrite(addr, len, physical, true, control);
    if (!hit.ok()) {
      std::fprintf(stderr, "ttvm replay: --last-write: %s\n", hit.error().message.c_str());
      return 1;
    }
    if (!hit->has_value()) {
      std::printf("no write to [%s, %s) between step %" PRIu64 " and step %" PRIu64
                  " (the value comes from the initial state)\n",
                  hex(addr).c_str(), hex(addr + len).c_str(), tl.beginStep(), from);
      return status;
    }
    const QueryHit h = **hit;
    std::printf("last write to [%s, %s) before step %" PRIu64 ": step %" PRIu64 " (%" PRIu64
                " steps earlier)\n",
                hex(addr).c_str(), hex(addr + len).c_str(), from, h.step, from - h.step);
    std::printf("  store: %s   (writes %u byte%s at %s)\n", where(tl, tl.registers().rip).c_str(),
                h.size, h.size == 1 ? "" : "s", hex(h.address).c_str());
    std::vector<uint8_t> before(nowBytes.size());
    const bool rb = physical ? tl.readPhysical(addr, before) : tl.readLinear(addr, before);
    auto dump = [](const std::vector<uint8_t>& v) {
      std::string s;
      for (uint8_t b : v) {
        char x[4];
        std::snprintf(x, sizeof x, "%02x ", b);
        s += x;
      }
      return s;
    };
    if (rb) std::printf("  bytes before the store: %s\n", dump(before).c_str());
    if (readable) std::printf("  bytes at step %-8" PRIu64 ": %s\n", from, dump(nowBytes).c_str());
    const uint64_t storeStep = tl.now();
    // Two reverse steps: what led to the store.
    for (int k = 0; k < 2 && tl.now() > tl.beginStep(); ++k) {
      if (!reportStop(tl.stepBack(1, control))) return 1;
      std::printf("  step %-10" PRIu64 " %s\n", tl.now(), where(tl, tl.registers().rip).c_str());
    }
    tl.seek(storeStep, control);
    if (bt) {
      std::printf("backtrace at the store:\n");
      std::fputs(formatBacktrace(unwindStack(tl)).c_str(), stdout);
    }
  }
  return status;
}

}  // namespace ttvm::cli
