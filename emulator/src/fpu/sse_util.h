// Operand and exception helpers shared by the SSE floating-point handler
// files (sse_arith.cc, sse_convert.cc) and the MMX file (mmx.cc). Not a
// public interface.
#pragma once

#include <cstdint>
#include <cstring>

#include "fpu/fpu_util.h"
#include "fpu/sse_fp.h"
#include "fpu/sse_ops.h"

namespace ttvm::fpu {

// Reads source operand n of a scalar (kPacked false: XMM register or m32/m64,
// any alignment, into lane 0 of v) or packed (XMM or aligned m128) form.
template <class T, bool kPacked>
inline bool readFpSource(CpuImpl& c, const Instr& i, int n, Vec128& v) {
  if constexpr (kPacked) {
    return readVec(c, i, n, v, true);
  } else {
    if (i.op[n].kind == OpKind::kXmm) {
      v = xmm(c, i.op[n].reg);
      return true;
    }
    T x;
    if (!c.readMem<T>(i.mem.seg, c.effectiveAddress(i), x)) return false;
    v = Vec128{};
    std::memcpy(v.q.data(), &x, sizeof(T));
    return true;
  }
}

// Reads a 64-bit source operand n: XMM low qword, MMX register, or m64 (m32,
// zero-extended, for the MMX low unpacks, which read only 4 bytes).
inline bool readQword(CpuImpl& c, const Instr& i, int n, uint64_t& v) {
  const Operand& o = i.op[n];
  if (o.kind == OpKind::kXmm) {
    v = xmm(c, o.reg).q[0];
    return true;
  }
  if (o.kind == OpKind::kMmx) {
    v = c.state().fpu.st[o.reg & 7].significand;
    return true;
  }
  if (o.size == 4) {
    uint32_t w;
    if (!c.readMem<uint32_t>(i.mem.seg, c.effectiveAddress(i), w)) return false;
    v = w;
    return true;
  }
  return c.readMem<uint64_t>(i.mem.seg, c.effectiveAddress(i), v);
}

// Stores the flags of a finished instruction in MXCSR; on an unmasked SIMD
// exception raises #XM (CR4.OSXMMEXCPT) or #UD and returns false: the caller
// then writes no destination.
inline bool commitSimd(CpuImpl& c, const SimdExceptions& e) {
  const SimdOutcome o = e.outcome();
  c.state().fpu.mxcsr = o.mxcsr;
  if (!o.fault) return true;
  return c.fault((c.state().cr4 & cr4::kOSXMMEXCPT) ? vec::kXM : vec::kUD);
}

// ------------------------------------------------------------ MMX state

// The MMX availability rules (SDM vol. 3 table 22-7): #UD when CR0.EM, #NM
// when CR0.TS, #MF when an unmasked x87 exception is pending (FSW.ES) and
// CR0.NE (as FWAIT: without NE it would go out on FERR#, which is not wired).
// CR4.OSFXSR is not checked.
inline bool mmxAvailable(CpuImpl& c) {
  const CpuState& s = c.state();
  if (s.cr0 & cr0::kEM) return c.fault(vec::kUD);
  if (s.cr0 & cr0::kTS) return c.fault(vec::kNM);
  if ((s.fpu.fsw & 0x80) && (s.cr0 & cr0::kNE)) return c.fault(vec::kMF);
  return true;
}

// Every MMX instruction (except EMMS) switches the x87 unit to MMX mode:
// TOP = 0 and every register tagged valid (SDM vol. 1 9.5.1).
inline void enterMmxMode(CpuImpl& c) {
  FpuState& f = c.state().fpu;
  f.fsw &= static_cast<uint16_t>(~(7u << 11));
  f.ftw = 0xFF;
}

inline uint64_t readMmx(CpuImpl& c, uint8_t reg) {
  return c.state().fpu.st[reg & 7].significand;
}
// A write to MMn stores the value in the significand of physical register Rn
// and sets its sign and exponent to all ones.
inline void writeMmx(CpuImpl& c, uint8_t reg, uint64_t v) {
  c.state().fpu.st[reg & 7] = Float80{v, 0xFFFF};
}

}  // namespace ttvm::fpu
