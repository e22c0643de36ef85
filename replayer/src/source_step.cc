#include "ttvm/replayer/source_step.h"

#include <algorithm>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "ttvm/emulator/disassembler.h"
#include "ttvm/replayer/backtrace.h"

namespace ttvm {
namespace {

struct Position {
  uint64_t step = 0;
  uint64_t rip = 0;
  uint64_t rsp = 0;
  int depth = 0;  // relative to the position the move started from
  std::optional<SourceLine> line;
  // The frame at this depth was entered by a call (not an interrupt or an
  // exception); true where the trail did not see it entered.
  bool called = true;
};

Position here(const Timeline& t, int depth, bool called = true) {
  const CpuState& c = t.registers();
  return Position{t.now(), c.rip, c.reg(Gpr::kRsp), depth, t.symbols().sourceLine(c.rip), called};
}

// The instruction at `address`: its mnemonic (first word) and length.
std::pair<std::string, unsigned> mnemonicAt(const Timeline& t, uint64_t address) {
  uint8_t bytes[15] = {};
  size_t n = 0;
  while (n < sizeof bytes && t.readLinear(address + n, std::span<uint8_t>(&bytes[n], 1))) ++n;
  const Disassembly d =
      disassemble(std::span<const uint8_t>(bytes, n), cpuMode(t.registers()), address);
  return {d.text.substr(0, d.text.find(' ')), d.length};
}

// The depth change of the step from `before` (instruction `m`, length
// `len`) to the current position.
int depthChange(const Timeline& t, const Position& before, const std::string& m, unsigned len) {
  const CpuState& c = t.registers();
  if (c.rip == before.rip + len || c.rip == before.rip) return 0;  // fell through, or REP
  if (m.starts_with("call") && c.reg(Gpr::kRsp) < before.rsp) return 1;
  if (m.starts_with("ret") || m.starts_with("iret")) return -1;
  if (c.reg(Gpr::kRsp) + 12 <= before.rsp) return 1;  // an interrupt or exception delivered
  return 0;                                           // a jump
}

bool cancelled(const Control& c) {
  return c.cancel != nullptr && c.cancel->load();
}

}  // namespace

StopReason runToFrame(Timeline& timeline, uint64_t address, uint64_t rsp, bool forward, bool above,
                      const Control& control) {
  const int bp = timeline.addBreakpoint(address);
  StopReason r;
  for (int i = 0; i < 4096; ++i) {
    r = forward ? timeline.continueForward(control) : timeline.reverseContinue(control);
    if (r.kind != StopKind::kBreakpoint || r.breakpointId != bp) break;
    const uint64_t now = timeline.registers().reg(Gpr::kRsp);
    if (above ? now > rsp : now == rsp) {
      r.kind = StopKind::kStepDone;
      break;
    }
  }
  timeline.removeBreakpoint(bp);
  return r;
}

StopReason stepLine(Timeline& timeline, bool into, const Control& control) {
  const Position start = here(timeline, 0);
  StopReason r{StopKind::kStepDone, timeline.now()};
  for (uint64_t n = 0; n < kMaxLineSteps; ++n) {
    if (cancelled(control)) return StopReason{StopKind::kCancelled, timeline.now()};
    const Position before = here(timeline, 0);
    const auto [m, len] = mnemonicAt(timeline, before.rip);
    if (m.starts_with("call") && !into) {
      r = runToFrame(timeline, before.rip + len, before.rsp, true, false, control);
    } else {
      r = timeline.step(1, control);
      if (timeline.now() != before.step + 1) return r;
      const int d = depthChange(timeline, before, m, len);
      if (d > 0 && !m.starts_with("call")) {
        r = runToFrame(timeline, before.rip, before.rsp, true, false, control);  // an interrupt
      } else if (d > 0 && !timeline.symbols().sourceLine(timeline.registers().rip)) {
        // A callee without lines.
        r = runToFrame(timeline, before.rip + len, before.rsp, true, false, control);
      } else if (d != 0) {
        return r;  // into a callee, or back to the caller
      }
    }
    if (r.kind != StopKind::kStepDone) return r;
    const auto line = timeline.symbols().sourceLine(timeline.registers().rip);
    if (line && line != start.line) return r;
  }
  return r;
}

StopReason stepBackLine(Timeline& timeline, bool into, const Control& control) {
  const uint64_t origin = timeline.now();
  for (uint64_t window = 256;; window *= 4) {
    const uint64_t from = origin - std::min(window, origin - timeline.beginStep());
    StopReason r = timeline.seek(from);
    if (r.kind != StopKind::kStepDone && r.kind != StopKind::kHistoryBegin) return r;
    std::vector<Position> trail{here(timeline, 0)};
    std::vector<bool> entries;  // of the frames entered in the window: by a call?
    while (timeline.now() < origin) {
      if (cancelled(control)) {
        timeline.seek(origin);
        return StopReason{StopKind::kCancelled, timeline.now()};
      }
      const Position before = trail.back();
      const auto [m, len] = mnemonicAt(timeline, before.rip);
      const StopReason s = timeline.step(1, control);
      if (timeline.now() != before.step + 1) return s;  // a divergence
      const int d = depthChange(timeline, before, m, len);
      if (d > 0) entries.push_back(m.starts_with("call"));
      if (d < 0 && !entries.empty()) entries.pop_back();
      trail.push_back(here(timeline, before.depth + d, entries.empty() || entries.back()));
    }
    const Position now = trail.back();
    // The previous position at this depth with a line, then back to the
    // first position of that line's run: the start of the previous line
    // from the start of a line, the start of this line from the middle of
    // one (as gdb: a reverse step stops at the start of the line range).
    // Into: a callee with lines met on the way (its last position, the
    // instruction that returned from it) is where the line is looked for
    // instead: the start of its last line (gdb's reverse-step resets its
    // step range to the line of that instruction and goes on to its start).
    std::optional<size_t> target;
    bool exhausted = true;
    int depth = now.depth;  // where the line is looked for
    for (size_t i = trail.size() - 1; i-- > 0;) {
      const Position& p = trail[i];
      if (into && depth == now.depth && p.depth == now.depth + 1 && p.called && p.line) {
        depth = p.depth;
        target = i;
        continue;
      }
      if (p.depth > depth || !p.line) continue;
      if (p.depth < depth) {  // the caller, before the call
        if (!target) target = i;
        exhausted = false;
        break;
      }
      if (!target) {
        target = i;
        continue;
      }
      if (p.line != trail[*target].line) {
        exhausted = false;
        break;
      }
      target = i;
    }
    if (target && (!exhausted || from == timeline.beginStep())) {
      timeline.seek(trail[*target].step);
      return StopReason{StopKind::kStepDone, timeline.now()};
    }
    if (from == timeline.beginStep() || window >= kMaxBackWindow) {
      timeline.seek(target ? trail[*target].step : from);
      return StopReason{target ? StopKind::kStepDone : StopKind::kHistoryBegin, timeline.now()};
    }
  }
}

StopReason stepOut(Timeline& timeline, const Control& control, std::string* why) {
  const Backtrace bt = unwindStack(timeline);
  if (bt.frames.size() < 2) {
    if (why != nullptr) *why = "no caller frame to return to (" + bt.end + ")";
    return timeline.step(1, control);
  }
  return runToFrame(timeline, bt.frames[1].pc, timeline.registers().reg(Gpr::kRsp), true, true,
                    control);
}

}  // namespace ttvm
