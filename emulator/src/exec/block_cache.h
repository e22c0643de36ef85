// BlockCache: the fast engine's translation cache (CpuEngine::kFast).
//
// A block is a run of up to kMaxBlockOps instructions decoded once from one
// physical page, keyed like the decode cache by (physical address, CpuMode).
// Each instruction is an Op: the decoded Instr plus a fast form (OpKind below)
// that CpuImpl::runBlocks executes inline, without the per-instruction fetch,
// successor-link check, event poll set-up and indirect call of the reference
// loop; instructions without a fast form call their handler. On x86-64 hosts
// a 64-bit or 32-bit (protected or compatibility mode) block's longest prefix of fast forms
// also has host code (exec/block_jit.h), which runBlocks enters instead of
// the ops where it can (32-bit code only while the segments are flat).
//
// Exactness (what runBlocks relies on):
//  - a block is entered only where CpuImpl::run would take its fast path
//    (nothing unusual armed, no event to take, the whole block inside the CS
//    limit, enough steps left), and runs only its instructions before the
//    first debugger breakpoint (linear or physical) inside its bytes: one at
//    its start is left to step(), which reports it;
//  - debugger watchpoints do not force the reference path: a page holding a
//    watched range has no fast-path TLB entry for the watched kind of access
//    (CpuImpl::finishTlbFill), so only the reference accessors touch it, and
//    they check the watch; a hit ends the block after that instruction with
//    the stop step() would report (setWatchpoints flushes the TLB);
//  - between its instructions runBlocks repeats run()'s event
//    and stop checks, and it leaves the block after any instruction that may
//    change what those checks depend on;
//  - a block dies when RAM under it is written (CpuImpl::notifyRamWritten:
//    guest stores, DMA, the debugger, checkpoint restores), when the decode
//    cache is dropped, and with every linkEpoch_ bump (TLB flush, INVLPG,
//    CR0/CR3/CR4/EFER writes, mode or CS changes): blocks are then looked up
//    again through the TLB, and runBlocks leaves the current block at once;
//  - a block holds at most one page, so one translation covers it all.
//
// Memory is bounded: kMaxOps ops in all; when they are used up, or the index
// is asked to hold more than kMaxBlocks blocks, or the compiled code's buffer
// (BlockJit::kCodeBytes) nears its end, everything is dropped (QEMU's
// policy: flush the whole cache) and rebuilt on demand. Stats count lookups,
// hits, builds, flushes and invalidations for the benchmark's hit rate.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "exec/block_jit.h"
#include "exec/instr.h"
#include "ttvm/emulator/cpu.h"

namespace ttvm {

// The fast forms. kGeneric calls instr.handler; the others are exact
// re-statements of their handler for the operand forms named, and
// tests/emulator/block_engine_test.cc compares them with the reference.
enum class FastKind : uint8_t {
  kGeneric,
  kMovRR,     // MOV r, r (4/8 bytes)
  kMovRI,     // MOV r, imm (4/8 bytes)
  kMovRM,     // MOV r, [m] (4/8 bytes)
  kMovMR,     // MOV [m], r (4/8 bytes)
  kMovzxRM8,  // MOVZX r32/64, byte [m]
  kLea,       // LEA r, [m] (4/8 bytes, 8-byte addresses)
  kAluRR,     // ADD/SUB/AND/OR/XOR/CMP/TEST r, r (4/8 bytes)
  kAluRI,     // the same with an immediate
  kAluRM,     // the same with [m] as source
  kIncDecR,   // INC/DEC r (4/8 bytes)
  kShiftRI,   // SHL/SHR/SAR r, imm8 (4/8 bytes)
  kJcc,       // Jcc rel (64-bit mode; 32-bit code, 32-bit operand size: isFlat32Mode)
  kJmpRel,    // JMP rel (the same)
  kPushR,     // PUSH r64 (64-bit mode)
  kPopR,      // POP r64 (64-bit mode)
  kCallRel,   // CALL rel (64-bit mode)
  kRet,       // RET (64-bit mode)
  // Forms with host code only (exec/block_jit.cc, 64-bit mode and flat
  // 32-bit code); the interpreted ops call their handler, as for
  // kGeneric.
  kMovzxRR,    // MOVZX r32/64, r8/r16 (sub: source bytes)
  kMovzxRM16,  // MOVZX r32/64, word [m]
  kUnaryR,     // NEG (sub 0) / NOT (sub 1) r (4/8 bytes)
  kJmpR,       // JMP r64 (JMP r32 in 32-bit code)
  kRotRI,      // ROL (sub 0) / ROR (sub 1) r, imm8 (4/8 bytes)
  kImulRR,     // IMUL r, r (4/8 bytes)
  kImulRRI,    // IMUL r, r, imm (4/8 bytes)
  kMulR,       // MUL r (4/8 bytes): rDX:rAX = rAX * r
  kAdcSbbRR,   // ADC (sub 0) / SBB (sub 1) r, r (4/8 bytes)
  kAdcSbbRI,   // the same with an immediate
  kCmovRR,     // CMOVcc r, r (4/8 bytes; sub: cc)
  kSetccR,     // SETcc r8 (sub: cc)
  kStoreR8,    // MOV byte [m], r8
  kStoreImm,   // MOV [m], imm (1/4/8 bytes)
  kCmpTestMI,  // CMP/TEST [m], imm (1/4/8 bytes; sub: AluOp)
  kAluMR,      // ADD/SUB/AND/OR/XOR/CMP/TEST [m], r (4/8 bytes; sub: AluOp)
  kAluMI,      // ADD/SUB/AND/OR/XOR [m], imm (4/8 bytes; sub: AluOp)
  kNop,        // NOP (90, 0F 1F /0)
  // 32-bit code (isFlat32Mode), 32-bit operand size, ESP (SS.B = 1):
  kPush32,  // PUSH r32
  kPop32,   // POP r32
  kCall32,  // CALL rel32
  kRet32,   // RET (C3)
};

// 32-bit protected or compatibility mode: the modes whose 32-bit blocks
// get host code under flat segments (CpuImpl::flatSegments32).
bool isFlat32Mode(CpuMode m);

// ALU operation of kAluRR/kAluRI/kAluRM.
enum class AluOp : uint8_t { kAdd, kSub, kAnd, kOr, kXor, kCmp, kTest };

struct BlockOp {
  FastKind kind = FastKind::kGeneric;
  uint8_t a = 0;    // destination register / condition code / ALU op
  uint8_t b = 0;    // source register
  uint8_t sub = 0;  // ALU op or shift kind
  Instr instr;
};

// The arithmetic flags of the last ADD/SUB/CMP/AND/OR/XOR/TEST fast op, not
// yet written to RFLAGS: its operands and result (op 0: none pending, 1 add,
// 2 sub, 3 logic).
struct LazyFlags {
  uint8_t op = 0;
  uint8_t size = 0;
  uint64_t a = 0, b = 0, r = 0;
};
// Writes the pending flags into `rflags` (alu/flags.h's functions) and
// clears them.
void materialize(LazyFlags& l, uint64_t& rflags);

struct Block;
// A chained successor: "the block at CS.base + RIP = rip is `to`", valid
// while CpuImpl::linkEpoch_ equals `epoch`.
struct BlockLink {
  uint64_t rip = ~0ull;
  uint64_t epoch = 0;
  Block* to = nullptr;
};

struct Block {
  uint64_t tag = 0;  // phys | (mode + 1) << 56; 0 = dead
  uint64_t phys = 0;
  uint32_t firstOp = 0;
  uint16_t numOps = 0;
  uint16_t bytes = 0;  // guest bytes covered
  BlockLink link[2];
  // Host code for the block entered at linear `jitRip` with CPL 3 (`jitUser`)
  // or not (exec/block_jit.h); nullptr: the ops are interpreted.
  uint16_t entries = 0;   // entries counted towards compiling it
  bool jitTried = false;  // compile() was asked (jit may still be nullptr)
  JitEntry jit = nullptr;
  const uint8_t* jitBody = nullptr;  // where chained code enters
  uint64_t jitRip = 0;
  bool jitUser = false;
};

class BlockCache {
 public:
  static constexpr unsigned kMaxBlockOps = 32;
  static constexpr size_t kMaxOps = size_t{1} << 17;  // 128 Ki ops (~18 MiB)
  static constexpr size_t kMaxBlocks = size_t{1} << 16;
  static constexpr unsigned kIndexBits = 16;
  // Entries before a block gets host code (CpuImpl::maybeCompile).
  static constexpr unsigned kCompileAfter = 4;

  BlockCache();
  ~BlockCache();
  BlockCache(const BlockCache&) = delete;
  BlockCache& operator=(const BlockCache&) = delete;

  static uint64_t tagOf(uint64_t phys, CpuMode m) {
    return phys | (static_cast<uint64_t>(m) + 1) << 56;
  }
  Block* find(uint64_t phys, CpuMode m) {
    ++stats_.lookups;
    Block* b = index_[slot(phys)];
    if (b != nullptr && b->tag == tagOf(phys, m)) {
      ++stats_.hits;
      return b;
    }
    return nullptr;
  }
  // Room for one more block of up to kMaxBlockOps ops; flushes when full.
  // Returns true if it flushed (every Block* handed out before is dead).
  bool reserve();
  // Appends an op to the block being built (after reserve()).
  BlockOp& appendOp() { return ops_[opsUsed_++]; }
  size_t opsUsed() const { return opsUsed_; }
  // Publishes the ops appended since `firstOp` as the block at `phys`.
  Block* publish(uint64_t phys, CpuMode m, uint32_t firstOp, uint16_t bytes);
  const BlockOp* ops() const { return ops_.get(); }

  // The compiler of host code for blocks; its code dies with flush().
  BlockJit& jit() { return jit_; }

  // Kills every block overlapping [begin, end) of physical memory; true if any.
  bool invalidate(uint64_t begin, uint64_t end);
  void flush();

  EngineStats stats() const {
    EngineStats s = stats_;
    s.blocks = blocks_.size();
    s.ops = opsUsed_;
    s.compiledBytes = jit_.bytesUsed();
    return s;
  }
  EngineStats& counters() { return stats_; }

 private:
  static size_t slot(uint64_t phys) {
    return (phys ^ (phys >> kIndexBits)) & ((size_t{1} << kIndexBits) - 1);
  }
  std::unique_ptr<BlockOp[]> ops_;
  size_t opsUsed_ = 0;
  std::vector<std::unique_ptr<Block>> blocks_;
  std::vector<Block*> index_;
  std::unordered_map<uint64_t, std::vector<Block*>> byPage_;  // physical page -> blocks
  EngineStats stats_;
  BlockJit jit_;
};

}  // namespace ttvm
