// BlockJit: host x86-64 code for the fast engine's blocks (issue 14).
//
// A block's longest prefix of fast forms (exec/block_cache.h's FastKind) in
// 64-bit mode is compiled, with Xbyak (Debian libxbyak-dev), into one host
// function for one linear RIP and one privilege (user or supervisor): jump
// targets and RIP-relative addresses are constants, and the TLB permission
// bit is an immediate. CpuImpl::runBlocks calls it where it would start the
// block's interpreted ops, under the same entry conditions (nothing unusual,
// the event hint clear, no debugger breakpoint in the block), with RFLAGS.AC
// clear and a step budget of at least the block's length.
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
//    budget allows another pass, as the block loop would re-enter it clean.
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

// Runs compiled code: returns the steps retired in bits 0-31, and where the
// interpreted ops must go on (bit 63 set) the op index to go on at in bits
// 32-47; RIP and RFLAGS are up to date in `s`.
using JitEntry = uint64_t (*)(CpuState* s, const TlbEntry* tlb, uint64_t budget);

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

  // Compiles the longest compilable prefix of ops[0, n) (a 64-bit block at
  // linear `rip`, for CPL 3 if `user`); nullptr if that prefix is empty.
  JitEntry compile(const BlockOp* ops, unsigned n, uint64_t rip, bool user);

  bool nearlyFull() const;
  void reset();
  size_t bytesUsed() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ttvm
