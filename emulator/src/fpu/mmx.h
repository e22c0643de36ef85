// The MMX forms (0F xx without a prefix, operands MM0-7 and m64) of the
// integer operations in fpu/sse_ops.h. The XMM handlers in fpu/sse.cc hand
// an instruction with an MM operand to these; fpu/mmx.cc has the MMX-only
// instructions (PSHUFW, MOVNTQ, MASKMOVQ/MASKMOVDQU, MOVQ2DQ/MOVDQ2Q).
//
// A 64-bit operation is the 128-bit one on the low qwords (lanes do not
// cross), except where the MMX form pairs halves differently: the packs
// (a's lanes then b's in 64 bits) and the high unpacks (the high dwords).
// Every MMX instruction checks mmxAvailable() (#UD CR0.EM, #NM CR0.TS, #MF
// pending x87 exception) and, once its operands are read, switches to MMX
// mode (TOP = 0, all tags valid; a faulting instruction changes nothing, as
// the MOVD/MOVQ forms always did).
#pragma once

#include "fpu/sse_util.h"

namespace ttvm::fpu::mmx {

using Binary64 = uint64_t (*)(uint64_t, uint64_t);
using Binary128 = Vec128 (*)(const Vec128&, const Vec128&);

// The 128-bit operation on the low qwords.
template <Binary128 F>
uint64_t onLow(uint64_t a, uint64_t b) {
  return F(Vec128{{a, 0}}, Vec128{{b, 0}}).q[0];
}
// PACKSSWB/PACKUSWB/PACKSSDW: a's lanes saturated, then b's.
template <Binary128 F>
uint64_t packed(uint64_t a, uint64_t b) {
  return F(Vec128{{a, b}}, Vec128{}).q[0];
}
// PUNPCKHBW/WD/DQ: interleave the high dwords.
template <class L>
uint64_t unpackHigh(uint64_t a, uint64_t b) {
  return sse::unpackLow<L>(Vec128{{a >> 32, 0}}, Vec128{{b >> 32, 0}}).q[0];
}

// Writes MMn and switches to MMX mode.
inline void finish(CpuImpl& c, uint8_t reg, uint64_t v) {
  enterMmxMode(c);
  writeMmx(c, reg, v);
}

// op[0] = M(op[0], op[1]), op[1] an MM register or m64.
template <Binary64 M>
ExecStatus binary(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(mmxAvailable(c));
  uint64_t b;
  TTVM_RETURN_ON_FAULT(readQword(c, i, 1, b));
  finish(c, i.op[0].reg, M(readMmx(c, i.op[0].reg), b));
  return ExecStatus::kNext;
}

// PSLL/PSRL/PSRA W/D/Q mm by imm8 or by mm/m64.
template <Vec128 (*F)(const Vec128&, uint64_t)>
ExecStatus shift(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(mmxAvailable(c));
  uint64_t count;
  if (i.op[1].kind == OpKind::kImm) {
    count = i.imm & 0xFF;
  } else {
    TTVM_RETURN_ON_FAULT(readQword(c, i, 1, count));
  }
  finish(c, i.op[0].reg, F(Vec128{{readMmx(c, i.op[0].reg), 0}}, count).q[0]);
  return ExecStatus::kNext;
}

// PMOVMSKB r32/r64, mm.
inline ExecStatus moveMaskBytes(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(mmxAvailable(c));
  c.gpr(i.op[0].reg) = sse::moveMaskBytes(Vec128{{readMmx(c, i.op[1].reg), 0}});
  enterMmxMode(c);
  return ExecStatus::kNext;
}

// PEXTRW r32/r64, mm, imm8 (word imm & 3).
inline ExecStatus extractWord(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(mmxAvailable(c));
  c.gpr(i.op[0].reg) = sse::extractWord(Vec128{{readMmx(c, i.op[1].reg), 0}}, uint8_t(i.imm & 3));
  enterMmxMode(c);
  return ExecStatus::kNext;
}

// PINSRW mm, r32/m16, imm8 (word imm & 3).
inline ExecStatus insertWord(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(mmxAvailable(c));
  uint16_t w;
  if (i.op[1].kind == OpKind::kGpr) {
    w = c.readGpr<uint16_t>(i.op[1].reg);
  } else {
    TTVM_RETURN_ON_FAULT(c.readMem<uint16_t>(i.mem.seg, c.effectiveAddress(i), w));
  }
  const Vec128 a{{readMmx(c, i.op[0].reg), 0}};
  finish(c, i.op[0].reg, sse::insertWord(a, w, uint8_t(i.imm & 3)).q[0]);
  return ExecStatus::kNext;
}

}  // namespace ttvm::fpu::mmx
