// Helpers shared by fpu/x87.cc and fpu/sse.cc: the CR0/CR4 availability
// checks and XMM/memory operand access (not a public interface).
#pragma once

#include <cstdint>

#include "exec/cpu_impl.h"

namespace ttvm::fpu {

// x87 (and FXSAVE/FXRSTOR, EMMS-like) availability: #NM when CR0.EM or CR0.TS.
inline bool x87Available(CpuImpl& c) {
  if (c.state().cr0 & (cr0::kEM | cr0::kTS)) return c.fault(vec::kNM);
  return true;
}

// SSE availability: #UD when CR0.EM or !CR4.OSFXSR, then #NM when CR0.TS.
inline bool sseAvailable(CpuImpl& c) {
  const CpuState& s = c.state();
  if ((s.cr0 & cr0::kEM) || !(s.cr4 & cr4::kOSFXSR)) return c.fault(vec::kUD);
  if (s.cr0 & cr0::kTS) return c.fault(vec::kNM);
  return true;
}

// The linear address of the instruction's memory operand (for alignment
// checks; the access itself goes through the segment checks).
inline uint64_t memLinear(CpuImpl& c, const Instr& i) {
  const uint64_t ea = c.effectiveAddress(i);
  if (c.is64() && i.mem.seg < 4) return ea;  // ES/CS/SS/DS have base 0 in 64-bit mode
  const uint64_t lin = c.state().seg[i.mem.seg].base + ea;
  return c.is64() ? lin : (lin & 0xFFFFFFFFull);
}

// #GP(0) unless the memory operand is aligned to `bytes`.
inline bool checkAligned(CpuImpl& c, const Instr& i, unsigned bytes) {
  if (memLinear(c, i) & (bytes - 1)) return c.fault(vec::kGP, 0);
  return true;
}

inline Vec128& xmm(CpuImpl& c, uint8_t reg) {
  return c.state().fpu.xmm[reg & 15];
}

// Reads a 128-bit source operand n (XMM register or m128).
inline bool readVec(CpuImpl& c, const Instr& i, int n, Vec128& v, bool aligned) {
  const Operand& o = i.op[n];
  if (o.kind == OpKind::kXmm) {
    v = xmm(c, o.reg);
    return true;
  }
  if (aligned && !checkAligned(c, i, 16)) return false;
  return c.readMemBlock(i.mem.seg, c.effectiveAddress(i), v.q.data(), 16);
}

// Writes a 128-bit destination operand n (XMM register or m128).
inline bool writeVec(CpuImpl& c, const Instr& i, int n, const Vec128& v, bool aligned) {
  const Operand& o = i.op[n];
  if (o.kind == OpKind::kXmm) {
    xmm(c, o.reg) = v;
    return true;
  }
  if (aligned && !checkAligned(c, i, 16)) return false;
  return c.writeMemBlock(i.mem.seg, c.effectiveAddress(i), v.q.data(), 16);
}

// True when any operand is an MMX register (those forms raise #UD).
inline bool usesMmx(const Instr& i) {
  for (int k = 0; k < i.numOps; ++k)
    if (i.op[k].kind == OpKind::kMmx) return true;
  return false;
}

}  // namespace ttvm::fpu
