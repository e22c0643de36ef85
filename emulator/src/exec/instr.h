// Instr: ttvm's compact decoded form of one x86 instruction, and the handler
// signature every instruction-group file implements.
//
// ===================== CONTRACT FOR HANDLER AUTHORS =====================
//
// An instruction is decoded by Zydis exactly once (exec/decoder.cc) into an
// Instr, cached by (physical address, CpuMode), and executed by calling
// `instr.handler(cpu, instr)`. A handler is a plain function
//
//     ExecStatus myHandler(CpuImpl& cpu, const Instr& i);
//
// registered for a Zydis mnemonic in a HandlerTable (exec/handler_table.h),
// optionally once per operand size (1/2/4/8 bytes: the instruction's
// effective operand width, Zydis `operand_width`), so that templated handlers
// need no runtime size switch.
//
// Rules:
//  1. Guest events are return values. A handler that faults calls one of
//     cpu.raise*() (exec/cpu_impl.h), which records the exception and returns
//     ExecStatus::kException, and returns that value unchanged. Every memory
//     accessor returns bool: false means a fault (#PF/#GP/#SS/...) has already
//     been recorded and the handler must return ExecStatus::kException at once
//     (use TTVM_RETURN_ON_FAULT). No C++ exceptions, no longjmp.
//  2. Atomicity: on kException the handler must not have changed any guest
//     register (RIP is restored by the framework; other registers are not).
//     Do every memory read/write that can fault before writing registers or
//     RFLAGS. A memory write that happened before a later fault stays (as on
//     hardware for multi-access instructions such as PUSH of several values).
//  3. On success return ExecStatus::kNext (RIP <- i.nextRip(), which the
//     framework does) or, for control transfer, set RIP with cpu.jumpTo()/
//     cpu.setRip() and return ExecStatus::kJumped. REP string handlers return
//     kRepeat while iterations remain (RIP stays on the instruction; each
//     iteration is one step).
//  4. Operands: i.op[n] are the *visible* operands in Intel order (op[0] is the
//     destination). Read/write them with cpu.readOp<T>/writeOp<T> (register,
//     memory through segmentation+paging, immediate); writing a 32-bit GPR
//     zero-extends to 64 bits, 8/16-bit writes merge, AH/CH/DH/BH are
//     RegId kAh..kBh. Hidden operands (RAX/RDX for MUL, RSP for PUSH, RFLAGS)
//     are not in op[]: use cpu.gpr()/cpu.rflags() directly.
//  5. RFLAGS: cpu.rflags() is the architectural value (no lazy flags). Only
//     arithmetic flags (flags::kArith) may be written by ALU handlers; use
//     cpu.setArithFlags(mask, values).
//  6. Handlers never touch CpuState::steps, pending events or the TLB.
// ========================================================================
#pragma once

#include <cstdint>

namespace ttvm {

class CpuImpl;
struct Instr;

// What a handler did. Only these values; the step loop turns them into
// StepOutcome.
enum class ExecStatus : uint8_t {
  kNext,       // retired; framework sets RIP to the next instruction
  kJumped,     // retired; handler already set RIP
  kRepeat,     // one REP iteration retired, more remain; RIP stays
  kException,  // a fault/trap/software interrupt was recorded by cpu.raise*()
  kHalt,       // HLT retired: RIP <- next, CPU halts
};

using Handler = ExecStatus (*)(CpuImpl& cpu, const Instr& i);

// Register numbers used in Operand::reg and MemRef base/index.
//  - kOpGpr: 0..15 = RAX..R15 (for 8-bit operands 4..7 are SPL..DIL, which
//    needs REX), kAh..kBh = AH, CH, DH, BH.
//  - kOpSeg: SegReg values (ES, CS, SS, DS, FS, GS).
//  - kOpCr / kOpDr: the control/debug register number.
//  - kOpSt: ST(i) relative index; kOpMmx: MM0-7; kOpXmm: XMM0-15.
namespace regid {
inline constexpr uint8_t kAh = 16;
inline constexpr uint8_t kCh = 17;
inline constexpr uint8_t kDh = 18;
inline constexpr uint8_t kBh = 19;
inline constexpr uint8_t kRip = 20;  // MemRef base only (RIP-relative)
inline constexpr uint8_t kNone = 0xFF;
}  // namespace regid

enum class OpKind : uint8_t {
  kNone,
  kGpr,  // general-purpose register (see regid)
  kMem,  // memory: Instr::mem (at most one explicit memory operand)
  kImm,  // immediate: Instr::imm (already sign-extended to 64 bits when signed)
  kPtr,  // far pointer ptr16:16/32: offset in Instr::imm, selector in Instr::imm2
  kSeg,
  kCr,
  kDr,
  kSt,
  kMmx,
  kXmm,
  kOther,  // anything else Zydis shows (e.g. a visible implicit flags register)
};

struct Operand {
  OpKind kind = OpKind::kNone;
  uint8_t reg = regid::kNone;  // register number for register kinds
  uint16_t size = 0;           // bytes (1,2,4,8,10,16,...; 0 when meaningless)
};

// An explicit memory operand: linear = seg.base + ea, where
// ea = (base + index*scale + disp) truncated to addrSize bytes, base kRip
// meaning the address of the next instruction.
struct MemRef {
  int64_t disp = 0;
  uint8_t base = regid::kNone;
  uint8_t index = regid::kNone;
  uint8_t scale = 1;
  uint8_t seg = 3;    // SegReg: default (DS, or SS for rBP/rSP bases) or override
  bool agen = false;  // LEA-style address generation: no access
};

// Prefix bits in Instr::prefixes.
namespace prefix {
inline constexpr uint8_t kRep = 1u << 0;    // F3 on a string instruction (REP/REPE)
inline constexpr uint8_t kRepne = 1u << 1;  // F2 on a string instruction
inline constexpr uint8_t kLock = 1u << 2;
inline constexpr uint8_t kOpSize = 1u << 3;       // 66
inline constexpr uint8_t kAddrSize = 1u << 4;     // 67
inline constexpr uint8_t kSegOverride = 1u << 5;  // Instr::segOverride is valid
}  // namespace prefix

inline constexpr int kMaxOperands = 4;

struct Instr {
  Handler handler = nullptr;
  uint16_t mnemonic = 0;    // ZydisMnemonic
  uint8_t length = 0;       // bytes, 1..15
  uint8_t opSize = 0;       // effective operand width in bytes (1/2/4/8; 0 if none)
  uint8_t addrSize = 0;     // effective address width in bytes (2/4/8)
  uint8_t prefixes = 0;     // prefix:: bits
  uint8_t segOverride = 0;  // SegReg of a segment-override prefix (see prefix::kSegOverride)
  uint8_t numOps = 0;       // visible operands
  uint8_t opcode = 0;       // the last opcode byte (Zydis `opcode`)
  uint8_t modrmReg = 0;     // ModRM.reg field (group instructions)
  uint8_t modrm = 0;        // the whole ModRM byte (x87: FOP, and ST(i) = rm of register forms)
  uint8_t mode = 0;         // CpuMode it was decoded for
  Operand op[kMaxOperands];
  MemRef mem;
  uint64_t imm = 0;   // first immediate (or relative displacement, or far offset)
  uint64_t imm2 = 0;  // second immediate (ENTER's level; far pointer's selector)
  // No RIP here: the cache is keyed by physical address and one page may be
  // mapped at several linear addresses. Use cpu.rip() / cpu.nextRip(i).

  bool hasRep() const { return prefixes & (prefix::kRep | prefix::kRepne); }
};

// Propagates a guest fault out of a handler: `expr` is a memory accessor or
// cpu.raise*()-style check returning bool, false meaning the fault is already
// recorded; the handler then returns ExecStatus::kException at once. Not
// base's TTVM_TRY, which propagates a Result/Status error.
#define TTVM_RETURN_ON_FAULT(expr)                                           \
  do {                                                                       \
    if (__builtin_expect(!(expr), 0)) return ::ttvm::ExecStatus::kException; \
  } while (0)

}  // namespace ttvm
