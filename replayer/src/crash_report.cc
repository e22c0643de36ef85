#include "ttvm/replayer/crash_report.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <sstream>

#include "ttvm/base/hex.h"
#include "ttvm/replayer/backtrace.h"

namespace ttvm {
namespace {

constexpr uint16_t kCom1Data = 0x3F8;
constexpr uint16_t kDebugConsole = 0xE9;

std::string mib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

// "0x1007d2 <panic+0x62>: nop ..." for the instruction at the position.
std::string instructionAt(Timeline& tl) {
  ReplaySession& s = tl.session();
  const uint64_t rip = tl.registers().rip;
  const std::string sym = s.symbolAt(rip);
  return hex(rip) + (sym.empty() ? "" : " <" + sym + ">") + ": " + s.disassembleAt(rip);
}

// The bytes the guest wrote to its consoles, from the replay's own accesses
// (a whole-machine trace) or the trace's events (older traces log them).
std::string serialOutput(const Timeline& tl) {
  std::string out;
  auto take = [&out](const TraceEvent& e) {
    if (e.kind == EventKind::kPortOut && (e.address == kCom1Data || e.address == kDebugConsole))
      out.push_back(static_cast<char>(e.value & 0xFF));
  };
  if (!tl.replayedAccesses().empty() || const_cast<Timeline&>(tl).session().runsWholeMachine()) {
    for (const TraceEvent& e : tl.replayedAccesses()) take(e);
    return out;
  }
  const TraceReader& r = const_cast<Timeline&>(tl).session().trace();
  std::vector<TraceEvent> chunk;
  for (size_t i = 0; i < r.chunkCount(); ++i) {
    if (!r.readChunkInto(i, chunk).ok()) break;
    for (const TraceEvent& e : chunk) take(e);
  }
  return out;
}

std::vector<std::string> lastLines(const std::string& text, size_t n) {
  std::vector<std::string> lines;
  std::string cur;
  for (char c : text) {
    if (c == '\r') continue;
    if (c == '\n') {
      lines.push_back(cur);
      cur.clear();
    } else if (static_cast<unsigned char>(c) >= 0x20 || c == '\t') {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) lines.push_back(cur);
  if (lines.size() > n) lines.erase(lines.begin(), lines.end() - static_cast<ptrdiff_t>(n));
  return lines;
}

// The last `n` hits of `q` before the end, newest first (moves the position).
Result<std::vector<QueryHit>> lastHits(Timeline& tl, const EventQuery& q, size_t n,
                                       const Control& control) {
  std::vector<QueryHit> hits;
  while (hits.size() < n) {
    auto hit = tl.previousEvent(q, /*move=*/true, control);
    if (!hit.ok()) return hit.error();
    if (!hit->has_value()) break;
    hits.push_back(**hit);
  }
  return hits;
}

std::string commandLine(const std::string& verb, const std::string& trace, const std::string& rest,
                        const std::vector<std::string>& symbols) {
  std::string out = "ttvm " + verb + " " + trace + rest;
  for (const std::string& f : symbols) out += " --symbols " + f;
  return out;
}

}  // namespace

std::string formatRegisters(const CpuState& s) {
  static const char* kNames[] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                 "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
  std::string out;
  char buf[160];
  for (int i = 0; i < kNumGprs; ++i) {
    std::snprintf(buf, sizeof buf, "%-4s 0x%016" PRIx64 "%s", kNames[i], s.gpr[i],
                  i % 4 == 3 ? "\n" : "  ");
    out += buf;
  }
  std::snprintf(buf, sizeof buf,
                "rip  0x%016" PRIx64 "  rflags 0x%08" PRIx64 "  step %" PRIu64 "\n", s.rip,
                s.rflags, s.steps);
  out += buf;
  static const char* kSeg[] = {"es", "cs", "ss", "ds", "fs", "gs"};
  for (int i = 0; i < kNumSegRegs; ++i) {
    std::snprintf(buf, sizeof buf, "%s %04x base 0x%" PRIx64 " limit 0x%x attr 0x%x\n", kSeg[i],
                  s.seg[i].selector, s.seg[i].base, s.seg[i].limit, s.seg[i].attributes);
    out += buf;
  }
  std::snprintf(buf, sizeof buf,
                "cr0 0x%" PRIx64 "  cr2 0x%" PRIx64 "  cr3 0x%" PRIx64 "  cr4 0x%" PRIx64
                "  efer 0x%" PRIx64 "\n",
                s.cr0, s.cr2, s.cr3, s.cr4, s.msr.efer);
  out += buf;
  return out;
}

Result<std::string> crashReport(Timeline& tl, const ReportOptions& options,
                                const Control& control) {
  const TraceReader& r = tl.session().trace();
  const TraceHeader& h = r.header();
  const std::string name = std::filesystem::path(r.path()).filename().string();
  const StopReason atEnd = tl.runToEnd(control);
  if (atEnd.kind == StopKind::kDivergence)
    return makeError(r.path() + ": the replay diverged at step " + std::to_string(atEnd.step) +
                     (atEnd.divergence ? ": " + atEnd.divergence->format() : std::string()));
  if (atEnd.kind == StopKind::kCancelled) return makeError("cancelled");
  const uint64_t end = tl.now();
  const std::string endRip = instructionAt(tl);
  // Where the run stopped: a guest that panics without a fault (Linux's
  // sysrq crash calls panic()) is explained by this one, not by its last
  // exception.
  const std::string endBacktrace = formatBacktrace(unwindStack(tl));
  const std::string serial = serialOutput(tl);

  std::ostringstream md;
  md << "## ttvm crash report: `" << name << "`\n\n";

  md << "### How the run ended\n\n";
  if (r.end()) {
    const TraceEnd& e = *r.end();
    md << "**" << endReasonName(e.reason) << "** at step " << e.steps;
    if (e.reason == EndReason::kExitDevice) md << " (exit status " << e.exitStatus << ")";
    md << (e.message.empty() ? "" : ": " + e.message) << "\n\n";
  } else {
    md << "**unknown**: the trace has no footer (the recording was cut off); the replay "
          "reached step "
       << end << "\n\n";
  }
  md << "- last instruction: `" << endRip << "` (step " << end << ")\n";
  md << "- recorded " << utcTimeText(h.createdUnixNs) << " by ttvm " << h.ttvmVersion << " on "
     << h.host << "\n";
  md << "- machine: " << (h.machine.ramBytes >> 20) << " MiB RAM, CPU model " << h.cpuModel.name;
  if (!h.machine.cmdline.empty()) md << ", command line `" << h.machine.cmdline << "`";
  md << "\n- guest:";
  for (size_t i = 0; i < h.images.size(); ++i)
    md << (i ? "," : "") << " `" << h.images[i].name << "`";
  md << "\n";
  if (h.slice) md << "- this trace is " << describeSlice(*h.slice) << "\n";
  md << "\n### Backtrace at the end (step " << end << ")\n\n```\n" << endBacktrace << "```\n\n";

  // The exceptions and interrupts before the end, newest first.
  EventQuery exceptions;
  exceptions.kind = EventQuery::Kind::kException;
  auto faults = lastHits(tl, exceptions, options.exceptions, control);
  if (!faults.ok()) return faults.error();
  tl.seek(end, control);
  EventQuery interrupts;
  interrupts.kind = EventQuery::Kind::kInterrupt;
  auto irqs = lastHits(tl, interrupts, options.interrupts, control);
  if (!irqs.ok()) return irqs.error();

  // The faulting instruction: the last exception's, else the last one.
  if (!faults->empty()) {
    const QueryHit& f = faults->front();
    // A #PF's address is the CR2 its delivery (the step after) wrote.
    tl.seek(f.step + 1, control);
    const uint64_t cr2 = tl.registers().cr2;
    tl.seek(f.step, control);
    md << "### Faulting instruction\n\n";
    md << "The last exception before the end: **" << exceptionName(f.vector) << "** (vector "
       << unsigned{f.vector} << ") at step " << f.step;
    if (f.vector == 14) md << ", address " << hex(cr2) << " (CR2)";
    if ((tl.registers().segment(SegReg::kCs).selector & 3) == 3) md << ", in user mode";
    md << "\n\n```\n" << instructionAt(tl) << "\n```\n\n";
  } else {
    tl.seek(end, control);
    md << "### Last instruction\n\nNo exception before the end.\n\n```\n"
       << instructionAt(tl) << "\n```\n\n";
  }
  md << "### Registers (step " << tl.now() << ")\n\n```\n"
     << formatRegisters(tl.registers()) << "```\n\n";
  md << "### Backtrace (step " << tl.now() << ")\n\n```\n"
     << formatBacktrace(unwindStack(tl)) << "```\n\n";

  md << "### Last serial output\n\n";
  const std::vector<std::string> lines = lastLines(serial, options.serialLines);
  if (lines.empty()) {
    md << "(none)\n\n";
  } else {
    md << "```\n";
    for (const std::string& l : lines) md << l << "\n";
    md << "```\n\n";
  }

  md << "### Last exceptions and interrupts\n\n";
  if (faults->empty() && irqs->empty())
    md << "(none)\n";
  else
    md << "| step | event | at |\n| ---: | --- | --- |\n";
  std::vector<std::pair<uint64_t, std::string>> rows;
  for (const QueryHit& f : *faults)
    rows.push_back({f.step, "exception " + exceptionName(f.vector)});
  for (const QueryHit& i : *irqs)
    rows.push_back({i.step, i.event && i.event->kind == EventKind::kNmi
                                ? std::string("NMI")
                                : "interrupt vector " + hex(i.vector)});
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  for (const auto& [step, what] : rows) {
    tl.seek(step, control);
    md << "| " << step << " | " << what << " | `" << instructionAt(tl) << "` |\n";
  }
  md << "\n";

  md << "### Trace\n\n";
  md << "`" << name << "`: " << r.fileBytes() << " bytes (" << mib(r.fileBytes()) << "), "
     << r.eventCount() << " events, steps " << tl.beginStep() << ".." << tl.endStep() << ", format "
     << h.formatMajor << "." << h.formatMinor << "\n\n";
  const uint64_t at = faults->empty() ? end : faults->front().step;
  md << "Open it with:\n\n```\n"
     << commandLine("replay", name, " --to " + std::to_string(at) + " --regs --backtrace",
                    options.symbolFiles)
     << "\n"
     << commandLine("gdbserver", name, " --start " + std::to_string(at), options.symbolFiles)
     << "   # then: gdb -ex 'target remote :1234'\n"
     << "ttvm-ui " << name << "\n```\n";
  if (h.slice == std::nullopt && r.fileBytes() > (8u << 20))
    md << "\nToo large to attach? `ttvm slice " << name << " -o last.ttvm --last 10000000` "
       << "keeps the last 10^7 steps.\n";
  tl.seek(faults->empty() ? end : faults->front().step, control);
  return md.str();
}

}  // namespace ttvm
