// Source-level motion over a Timeline: step over, into, out and back by
// source line, as gdb's next/step/finish/reverse-next. The DAP server and
// ttvm-ui both move this way; the lines come from the timeline's
// GuestSymbols (DWARF line tables).
//
// Design. A statement step moves by source lines at one call depth: calls
// are stepped over (over), or into when the callee has line tables (into);
// interrupts and exceptions delivered on the way are always stepped over.
// Depth is tracked from what each step did: a call that pushed its return
// address goes one level deeper, a ret or iret one level up, and an event
// delivered (RIP neither the next instruction nor a branch's, RSP lower by
// at least a frame) one deeper. Going backward there is no "previous
// instruction" to decode, so stepBackLine replays a window of history
// forward, records each position's depth and line, and picks the target
// from that trail; the window grows until it holds the answer.
//
// Each function takes the Control of the move: a cancel stops it where it
// is (StopKind::kCancelled); putting the position back is the caller's
// choice (the GUI does, as gdb).
#pragma once

#include <cstdint>

#include "ttvm/replayer/timeline.h"

namespace ttvm {

// A forward statement step gives up (stopping where it is) after this many
// steps; a backward one looks at most this far back (its window of
// positions costs ~100 bytes each).
inline constexpr uint64_t kMaxLineSteps = 1'000'000;
inline constexpr uint64_t kMaxBackWindow = 1u << 18;

// Forward to the next statement at this depth (into: or the first one of a
// callee with line tables). Stops early at the user's breakpoints.
StopReason stepLine(Timeline& timeline, bool into, const Control& control = {});
// Back to the start of the previous statement at this depth (from the
// middle of a line, to the start of that line; into the caller, from the
// first statement of a function): gdb's reverse-next.
// Into (gdb's reverse-step): a callee with line tables that returned to
// this depth on the way back is entered instead: the move stops at the
// start of the last line the callee executed (the one holding its ret), as
// gdb's reverse-step does. Interrupt handlers are still stepped over.
StopReason stepBackLine(Timeline& timeline, bool into, const Control& control = {});
// Runs forward (backward: !forward) until `address` is about to execute
// with RSP == rsp (above: RSP > rsp): the return from a call or an
// interrupt at this depth (or, going backward, the call itself). Stops for
// the user's breakpoints on the way.
StopReason runToFrame(Timeline& timeline, uint64_t address, uint64_t rsp, bool forward, bool above,
                      const Control& control = {});
// Out of the current function: to frame 1's return address (backtrace.h)
// in a shallower frame. Without a caller frame it says why in `why` and
// steps one instruction.
StopReason stepOut(Timeline& timeline, const Control& control = {}, std::string* why = nullptr);

}  // namespace ttvm
