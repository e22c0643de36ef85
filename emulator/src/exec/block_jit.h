// BlockJit: host x86-64 code for the fast engine's blocks (issue 14).
//
// A block's longest prefix of fast forms (exec/block_cache.h's FastKind) in
// 64-bit mode or 32-bit protected or compatibility mode is compiled, with Xbyak (Debian
// libxbyak-dev), into one host function for one linear RIP and one privilege
// (user or supervisor): jump targets and RIP-relative addresses are
// constants, and the TLB permission bit is an immediate. CpuImpl::runBlocks
// calls it where it would start the block's interpreted ops, under the same
// entry conditions (nothing unusual, the event hint clear, no debugger
// breakpoint in the block), with RFLAGS.AC clear and a step budget of at
// least the block's length.
//
// 32-bit code assumes flat segments (CpuImpl::flatSegments32: CS, DS, ES and
// SS based at 0 with 4 GiB limits, writable data, SS.B = 1), checked at every
// entry from runBlocks; nothing compiled code runs loads a segment, so the
// assumption holds for all the blocks it goes on into. Under it a linear
// address is the effective address, whose only limit fault (an access past
// 4 GiB) crosses a page and so leaves the code. Only 32-bit operand and
// address sizes and DS/ES/SS accesses are compiled (16-bit prefixes, FS/GS
// and CS overrides are interpreted); effective addresses, ESP and EIP
// (a fall-through and every jump target) wrap at 4 GiB.
//
// What the code keeps exact:
//  - guest registers, RIP, RFLAGS and the step count live in CpuState; host
//    registers hold them only inside one instruction. RIP and RFLAGS are
//    written at every exit; the caller adds the steps retired;
//  - arithmetic flags come from the host's own ADD/SUB/AND/OR/XOR/CMP/TEST/
//    INC/DEC/SHL/SHR/SAR, which define them as the reference does, except
//    AF after logic ops and shifts (the reference writes 0) and OF after
//    shifts by more than one (the reference's count-1 formula): the exit
//    masks AF off, the shift fixes OF when anything can read it. They stay
//    in the host flags until code that clobbers them (a TLB probe, a
//    condition read from the saved copy) and are then saved with PUSHFQ;
//  - every memory access is the reference fast path's TLB probe (tag,
//    permission bit, no page crossing) inline; anything else leaves the
//    code before the instruction, which the interpreted ops then run (and
//    fault, walk, notify or reach MMIO exactly as always). No fast-path
//    store can hit cached code: the TLB grants no write to those pages;
//  - a jump back to the block's own start loops inside the code while the
//    budget allows another pass, as the block loop would re-enter it clean;
//  - any other exit after a transfer (a constant or a computed target) goes
//    straight on into the target's code when the jump cache (JitCacheEntry,
//    filled by runBlocks at each entry it makes itself) holds it for that
//    RIP under the link epoch the code was entered with, the budget holds
//    the whole target block and the event hint still reads zero (ANDed with
//    JitContext::hintMask; an entry is
//    made only for a block without a debugger breakpoint, and setBreakpoints
//    bumps the epoch). That is where runBlocks would enter it next,
//    clean: a compiled block ends clean, nothing inside compiled code can set the event hint, bump
//    the epoch or change CPL, mode, TF/RF or AC, and a CPL or mode change bumps the epoch.
//
// The code buffer has a fixed size; BlockCache flushes everything (blocks
// and code) when it nears its end. On other hosts compile() returns none and
// the interpreted ops run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "ttvm/emulator/cpu_state.h"

namespace ttvm {

struct BlockOp;
struct TlbEntry;

// One slot of the jump cache: compiled code entered at linear `rip`, valid
// while the link epoch is `epoch`. Direct-mapped by jitCacheSlot().
struct JitCacheEntry {
  uint64_t rip = ~0ull;
  uint64_t epoch = 0;
  const uint8_t* body = nullptr;  // past the entry sequence
  uint64_t ops = 0;               // the block's length in steps
};
inline constexpr unsigned kJitCacheBits = 12;
inline size_t jitCacheSlot(uint64_t rip) {
  return (rip ^ (rip >> 10)) & ((size_t{1} << kJitCacheBits) - 1);
}

// What compiled code runs with.
struct JitContext {
  CpuState* s = nullptr;
  const TlbEntry* tlb = nullptr;
  uint64_t budget = 0;  // steps it may retire at most
  uint64_t epoch = 0;   // CpuImpl::linkEpoch_
  const JitCacheEntry* cache = nullptr;
  // Environment::eventHint(): read before going on into another block, so
  // that a stop asked for by another thread (the GUI's cancel) is seen
  // within a block (no guest event can set it inside compiled code).
  const volatile uint32_t* hint = nullptr;
  // ANDed with *hint: without kEventHintMaskableOnly while the guest's IF
  // is 0 (no maskable interrupt can be taken; compiled code keeps IF).
  uint32_t hintMask = ~0u;
  // Set by an exit that asks the interpreted ops to go on: the block (the
  // `cookie` given to compile()) whose ops they are.
  void* resumeBlock = nullptr;
};

// Runs compiled code: returns the steps retired in bits 0-31, and where the
// interpreted ops must go on (bit 63 set) the op index to go on at in bits
// 32-47, of the block in ctx->resumeBlock; RIP and RFLAGS are up to date in
// the state.
using JitEntry = uint64_t (*)(const JitContext* ctx);

inline constexpr uint64_t kJitResume = uint64_t{1} << 63;

class BlockJit {
 public:
  static constexpr size_t kCodeBytes = size_t{16} << 20;
  // Room one block's code may need at most (32 ops with their exits).
  static constexpr size_t kBlockReserve = 64 << 10;

  BlockJit();
  ~BlockJit();
  BlockJit(const BlockJit&) = delete;
  BlockJit& operator=(const BlockJit&) = delete;

  // Whether this host runs compiled code (x86-64).
  static bool available();

  // Compiles the longest compilable prefix of ops[0, n) (a 64-bit block, or
  // with `flat32` a 32-bit protected or compatibility-mode one under flat
  // segments, at linear
  // `rip`, for CPL 3 if `user`); nullptr if that prefix is empty (or the host
  // gave no executable memory). `body` is where chained code enters.
  JitEntry compile(const BlockOp* ops, unsigned n, uint64_t rip, bool user, bool flat32,
                   void* cookie, const uint8_t*& body);

  // The jump cache (1 << kJitCacheBits slots).
  JitCacheEntry* cache();

  bool nearlyFull() const;
  void reset();
  size_t bytesUsed() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ttvm
