// crashReport: `ttvm report` — a Markdown account of how a recorded run
// ended, to paste into a bug report.
//
// It replays the trace to its end and asks the timeline what a person
// reading the report first wants to know: how the run ended and the
// backtrace where it stopped (a guest that panics without faulting is
// explained there); the faulting
// instruction (the last exception the guest took before the end, found by
// reverse execution, with its symbol and disassembly, else the last
// instruction), the registers and a backtrace there; the last lines the
// guest wrote to its serial console (COM1 and the debug console, 0xE9); the
// last exceptions and interrupts with their steps; the trace's size; and
// the commands that open it. Everything it names is a step of the trace, so
// the reader can go there (`ttvm replay --to STEP`, gdb's `monitor seek`).
#pragma once

#include <cstddef>
#include <string>

#include "ttvm/base/result.h"
#include "ttvm/emulator/cpu_state.h"
#include "ttvm/replayer/timeline.h"

namespace ttvm {

struct ReportOptions {
  size_t serialLines = 20;  // last serial output lines shown
  size_t exceptions = 5;    // last exceptions shown
  size_t interrupts = 10;   // last interrupts shown
  // Symbol files given to the timeline (--symbols): repeated in the
  // commands the report suggests.
  std::vector<std::string> symbolFiles;
};

// The report for the trace `timeline` replays (its position is moved: it
// ends at the faulting instruction). An error when the replay diverges or
// is cancelled on the way.
Result<std::string> crashReport(Timeline& timeline, const ReportOptions& options = {},
                                const Control& control = {});

// The registers as `ttvm replay --regs` prints them: general registers four
// to a line, RIP, RFLAGS and the step, segments, control registers and EFER.
std::string formatRegisters(const CpuState& s);

}  // namespace ttvm
