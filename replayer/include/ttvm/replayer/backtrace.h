// Backtrace: the call stack at one position, from the registers and guest
// memory read through the guest's page tables. x86-64 and 32-bit.
//
// Frame 0 is RIP itself (the faulting or current instruction). The walk
// then follows the frame-pointer chain: [RBP] = the caller's RBP, [RBP+w] =
// the return address (w = 8 or 4). Each link is checked before it is used —
// the frame pointer must be canonical, aligned, mapped, at or above RSP
// and within maxStackBytes of it, each next frame strictly higher than the
// last, and each return address inside a known function when symbols are
// loaded — and the walk stops cleanly, saying why, at the first bad link.
//
// Code built without frame pointers (a Debian kernel: ORC unwinder; -O2
// guests) breaks the chain early, or RBP holds a value that happens to
// look like a link. So the walk also scans stack words (as Linux's own
// "? func" lines do) for return addresses: a word inside a known function
// whose preceding bytes decode as a CALL ending exactly there. It scans
// (a) above the last frame the chain gave, up to scanBytes or the first
// unmapped word, and (b) below a link whose direct CALL (E8) targets
// another function than the frame under it: frames without frame pointers
// lie in between (at a Linux panic: panic's callees). An interrupt or
// exception frame (RIP, CS, RFLAGS, RSP, SS with a code selector and valid
// RFLAGS) names the interrupted instruction. Scanned frames are marked
// unreliable ('?'); on a Debian 12 kernel's sysrq crash they match, name
// and offset, the kernel's own ORC call trace (tests/linux).
//
// Return addresses are symbolized at address - 1 (the call instruction), so
// a call to a noreturn function at the end of its caller names the caller,
// not the next function.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ttvm/emulator/cpu_state.h"
#include "ttvm/replayer/guest_symbols.h"

namespace ttvm {

class Timeline;

enum class FrameKind : uint8_t {
  kRegisters,     // frame 0: RIP
  kFramePointer,  // a return address found through the frame-pointer chain
  kInterrupted,   // the RIP saved by an interrupt/exception frame on the stack
  kStackScan,     // a return address found by scanning (unreliable)
};

struct BacktraceFrame {
  FrameKind kind = FrameKind::kRegisters;
  uint64_t pc = 0;     // RIP, or the return address / interrupted RIP
  uint64_t slot = 0;   // frame pointer (chain), stack address (scan), 0 for frame 0
  std::string symbol;  // "name+0x12" of pc (looked up at pc - 1 for return addresses)
  std::optional<SourceLine> source;
  // With BacktraceOptions::inlined: a call inlined into the next frame
  // (DWARF's inlined subroutines, which gdb shows as frames of their own).
  // It shares that frame's pc, kind and registers; `symbol` is the inlined
  // function's name, `source` the line in it. The frame it was inlined into
  // has the line of the (outermost) inlined call.
  bool inlined = false;
  // What GuestSymbols::variablesAt takes for this frame: which frame on the
  // stack it is (an inlined call's is its caller's), and which function at
  // its pc (0: the innermost).
  unsigned stackFrame = 0;
  unsigned inlineDepth = 0;
};

struct Backtrace {
  std::vector<BacktraceFrame> frames;
  std::string end;  // why the walk ended, e.g. "frame pointer 0x0: outermost frame"
};

struct BacktraceOptions {
  unsigned maxFrames = 64;
  uint64_t maxStackBytes = 1u << 20;  // how far above RSP a frame may lie
  uint64_t scanBytes = 16u << 10;     // how many stack bytes the scan reads
  bool scan = true;                   // fall back to a stack scan
  bool inlined = false;               // list inlined calls as frames (GuestSymbols::functionsAt)
  // With `inlined`: calls inlined at RIP that begin there are not frames
  // yet (frame 0 is their caller, at the call's line), as gdb shows a stop
  // there after a step, finish or breakpoint (a gdb attached at that step
  // shows them).
  bool skipStartingInlined = false;
};

// Reads guest-linear memory at the position being unwound; false when a
// byte is not mapped.
using LinearReader = std::function<bool(uint64_t address, std::span<uint8_t> out)>;

Backtrace unwindStack(const CpuState& regs, const LinearReader& read, const GuestSymbols& symbols,
                      const BacktraceOptions& options = {});
// At the timeline's current position, with its symbols.
Backtrace unwindStack(const Timeline& timeline, const BacktraceOptions& options = {});

// "#0  0x1234 <panic+0x12> at kernel.c:120" per frame ("<outb> (inlined)"
// for an inlined call), then "(end: ...)".
std::string formatBacktrace(const Backtrace& bt);

}  // namespace ttvm
