// SSE/SSE2 moves and integer/bitwise operations on XMM registers (the forms
// compilers emit for memcpy, memset and string code). Every handler is
// registered with HandlerTable::setVector (chosen when an operand is an XMM
// or MMX register); an instruction with an MM operand goes to its MMX form
// (fpu/mmx.h; MOVD/MOVQ: moveMmx).
#include <cstring>

#include "fpu/fpu.h"
#include "fpu/fpu_util.h"
#include "fpu/mmx.h"
#include "fpu/sse_ops.h"

namespace ttvm::fpu {
namespace {

using sse::Lanes;

// Common prologue: #UD for MM operands (instructions without an MMX form),
// then the CR0/CR4 checks.
#define TTVM_SSE_PROLOGUE(c, i)            \
  do {                                     \
    if (usesMmx(i)) return (c).raiseUd();  \
    TTVM_RETURN_ON_FAULT(sseAvailable(c)); \
  } while (0)

// ------------------------------------------------------------ full moves

// MOVDQA/MOVAPS/MOVAPD (kAligned) and MOVDQU/MOVUPS/MOVUPD; MOVNTDQ/MOVNTPS/
// MOVNTPD are aligned stores (the non-temporal hint changes nothing here).
template <bool kAligned>
ExecStatus moveFull(CpuImpl& c, const Instr& i) {
  TTVM_SSE_PROLOGUE(c, i);
  Vec128 v;
  TTVM_RETURN_ON_FAULT(readVec(c, i, 1, v, kAligned));
  TTVM_RETURN_ON_FAULT(writeVec(c, i, 0, v, kAligned));
  return ExecStatus::kNext;
}

// ------------------------------------------------------------ MOVD/MOVQ

// MOVD/MOVQ with an MMX register (0F 6E/7E/6F/7F). The MMX rules apply
// (fpu/mmx.h): #UD when CR0.EM, #NM when CR0.TS, #MF for a pending x87
// exception; then TOP = 0 and all registers tagged valid.
ExecStatus moveMmx(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(mmxAvailable(c));
  const Operand& dst = i.op[0];
  const Operand& src = i.op[1];
  uint64_t v;
  if (src.kind == OpKind::kMmx) {
    v = readMmx(c, src.reg);
  } else if (src.size == 8) {
    TTVM_RETURN_ON_FAULT(c.readOp<uint64_t>(i, 1, v));
  } else {
    uint32_t w;
    TTVM_RETURN_ON_FAULT(c.readOp<uint32_t>(i, 1, w));
    v = w;
  }
  if (dst.kind == OpKind::kMmx) {
    mmx::finish(c, dst.reg, v);
    return ExecStatus::kNext;
  }
  if (dst.size == 8) {
    TTVM_RETURN_ON_FAULT(c.writeOp<uint64_t>(i, 0, v));
  } else {
    TTVM_RETURN_ON_FAULT(c.writeOp<uint32_t>(i, 0, uint32_t(v)));
  }
  enterMmxMode(c);
  return ExecStatus::kNext;
}

// MOVD/MOVQ between XMM and GPR/memory, and MOVQ xmm, xmm/m64 (F3 0F 7E) /
// MOVQ xmm/m64, xmm (66 0F D6). A load into XMM zeroes the rest of it; a
// 32-bit GPR destination is zero-extended.
ExecStatus moveScalarInt(CpuImpl& c, const Instr& i) {
  if (usesMmx(i)) return moveMmx(c, i);
  TTVM_SSE_PROLOGUE(c, i);
  const Operand& dst = i.op[0];
  const Operand& src = i.op[1];
  if (dst.kind == OpKind::kXmm) {
    uint64_t v;
    if (src.kind == OpKind::kXmm) {
      v = xmm(c, src.reg).q[0];
    } else if (src.size == 8) {
      TTVM_RETURN_ON_FAULT(c.readOp<uint64_t>(i, 1, v));
    } else {
      uint32_t w;
      TTVM_RETURN_ON_FAULT(c.readOp<uint32_t>(i, 1, w));
      v = w;
    }
    xmm(c, dst.reg) = Vec128{{v, 0}};
    return ExecStatus::kNext;
  }
  const uint64_t v = xmm(c, src.reg).q[0];
  if (dst.size == 8) {
    TTVM_RETURN_ON_FAULT(c.writeOp<uint64_t>(i, 0, v));
  } else {
    TTVM_RETURN_ON_FAULT(c.writeOp<uint32_t>(i, 0, uint32_t(v)));
  }
  return ExecStatus::kNext;
}

// MOVNTI m32/m64, r: no XMM involved, no CR0/CR4 checks.
template <class T>
struct MoveNti {
  static ExecStatus run(CpuImpl& c, const Instr& i) {
    T v;
    TTVM_RETURN_ON_FAULT(c.readOp<T>(i, 1, v));
    TTVM_RETURN_ON_FAULT(c.writeOp<T>(i, 0, v));
    return ExecStatus::kNext;
  }
};

// ------------------------------------------------------------ MOVSS/MOVSD

// MOVSS (T = uint32_t) / MOVSD (T = uint64_t): a load from memory zeroes the
// rest of the register, a register-to-register move keeps it, a store
// writes sizeof(T) bytes.
template <class T>
ExecStatus moveScalar(CpuImpl& c, const Instr& i) {
  TTVM_SSE_PROLOGUE(c, i);
  const Operand& dst = i.op[0];
  const Operand& src = i.op[1];
  if (dst.kind == OpKind::kXmm) {
    Vec128& d = xmm(c, dst.reg);
    if (src.kind == OpKind::kXmm) {
      Vec128 r = d;
      std::memcpy(r.q.data(), xmm(c, src.reg).q.data(), sizeof(T));
      d = r;
      return ExecStatus::kNext;
    }
    T v;
    TTVM_RETURN_ON_FAULT(c.readMem<T>(i.mem.seg, c.effectiveAddress(i), v));
    Vec128 r{};
    std::memcpy(r.q.data(), &v, sizeof(T));
    d = r;
    return ExecStatus::kNext;
  }
  T v;
  std::memcpy(&v, xmm(c, src.reg).q.data(), sizeof(T));
  TTVM_RETURN_ON_FAULT(c.writeMem<T>(i.mem.seg, c.effectiveAddress(i), v));
  return ExecStatus::kNext;
}

// ------------------------------------------------------------ half moves

// MOVLPS/MOVLPD (kHigh = false) and MOVHPS/MOVHPD: xmm.q[half] <-> m64.
// The register-register encodings are MOVHLPS/MOVLHPS (separate mnemonics).
template <bool kHigh>
ExecStatus moveHalf(CpuImpl& c, const Instr& i) {
  TTVM_SSE_PROLOGUE(c, i);
  constexpr int q = kHigh ? 1 : 0;
  if (i.op[0].kind == OpKind::kXmm) {
    uint64_t v;
    TTVM_RETURN_ON_FAULT(c.readMem<uint64_t>(i.mem.seg, c.effectiveAddress(i), v));
    xmm(c, i.op[0].reg).q[q] = v;
    return ExecStatus::kNext;
  }
  TTVM_RETURN_ON_FAULT(
      c.writeMem<uint64_t>(i.mem.seg, c.effectiveAddress(i), xmm(c, i.op[1].reg).q[q]));
  return ExecStatus::kNext;
}

// MOVHLPS x1, x2: x1.q[0] = x2.q[1]. MOVLHPS x1, x2: x1.q[1] = x2.q[0].
template <bool kHighToLow>
ExecStatus moveHalfRegs(CpuImpl& c, const Instr& i) {
  TTVM_SSE_PROLOGUE(c, i);
  const uint64_t v = xmm(c, i.op[1].reg).q[kHighToLow ? 1 : 0];
  xmm(c, i.op[0].reg).q[kHighToLow ? 0 : 1] = v;
  return ExecStatus::kNext;
}

// ------------------------------------------------------------ operations

// op[0] = F(op[0], op[1]) with op[1] an XMM register or aligned m128; the
// MMX form computes M (by default F on the low qwords).
template <mmx::Binary128 F, mmx::Binary64 M = mmx::onLow<F>>
ExecStatus binary(CpuImpl& c, const Instr& i) {
  if (usesMmx(i)) return mmx::binary<M>(c, i);
  TTVM_SSE_PROLOGUE(c, i);
  Vec128 b;
  TTVM_RETURN_ON_FAULT(readVec(c, i, 1, b, true));
  Vec128& a = xmm(c, i.op[0].reg);
  a = F(a, b);
  return ExecStatus::kNext;
}

// PSLL/PSRL/PSRA W/D/Q: the count is an imm8 or the low qword of xmm/m128.
template <Vec128 (*F)(const Vec128&, uint64_t)>
ExecStatus shiftLanes(CpuImpl& c, const Instr& i) {
  if (usesMmx(i)) return mmx::shift<F>(c, i);
  TTVM_SSE_PROLOGUE(c, i);
  uint64_t count;
  if (i.op[1].kind == OpKind::kImm) {
    count = i.imm & 0xFF;
  } else {
    Vec128 v;
    TTVM_RETURN_ON_FAULT(readVec(c, i, 1, v, true));
    count = v.q[0];
  }
  Vec128& a = xmm(c, i.op[0].reg);
  a = F(a, count);
  return ExecStatus::kNext;
}

// PSLLDQ/PSRLDQ xmm, imm8.
template <bool kLeft>
ExecStatus shiftBytes(CpuImpl& c, const Instr& i) {
  TTVM_SSE_PROLOGUE(c, i);
  const unsigned n = unsigned(i.imm & 0xFF);
  Vec128& a = xmm(c, i.op[0].reg);
  a = n > 15 ? Vec128{} : kLeft ? sse::shiftLeftBytes(a, n) : sse::shiftRightBytes(a, n);
  return ExecStatus::kNext;
}

// PSHUFD/PSHUFLW/PSHUFHW xmm, xmm/m128, imm8.
template <Vec128 (*F)(const Vec128&, uint8_t)>
ExecStatus shuffle(CpuImpl& c, const Instr& i) {
  TTVM_SSE_PROLOGUE(c, i);
  Vec128 b;
  TTVM_RETURN_ON_FAULT(readVec(c, i, 1, b, true));
  xmm(c, i.op[0].reg) = F(b, uint8_t(i.imm));
  return ExecStatus::kNext;
}

// SHUFPS/SHUFPD xmm, xmm/m128, imm8.
template <Vec128 (*F)(const Vec128&, const Vec128&, uint8_t)>
ExecStatus shuffle2(CpuImpl& c, const Instr& i) {
  TTVM_SSE_PROLOGUE(c, i);
  Vec128 b;
  TTVM_RETURN_ON_FAULT(readVec(c, i, 1, b, true));
  Vec128& a = xmm(c, i.op[0].reg);
  a = F(a, b, uint8_t(i.imm));
  return ExecStatus::kNext;
}

// PMOVMSKB/MOVMSKPS/MOVMSKPD r32/r64, xmm: the mask zero-extended.
template <uint32_t (*F)(const Vec128&)>
ExecStatus moveMask(CpuImpl& c, const Instr& i) {
  if (usesMmx(i)) return mmx::moveMaskBytes(c, i);  // PMOVMSKB r, mm
  TTVM_SSE_PROLOGUE(c, i);
  c.gpr(i.op[0].reg) = F(xmm(c, i.op[1].reg));
  return ExecStatus::kNext;
}

// PEXTRW r32/r64, xmm, imm8: the word zero-extended into the GPR. The
// SSE4.1 encoding also stores to m16; CPUID does not offer SSE4.1, but CPUs
// execute it regardless, so it must not reach the GPR path.
ExecStatus extractWord(CpuImpl& c, const Instr& i) {
  if (usesMmx(i)) return mmx::extractWord(c, i);
  TTVM_SSE_PROLOGUE(c, i);
  const uint32_t w = sse::extractWord(xmm(c, i.op[1].reg), uint8_t(i.imm));
  if (i.op[0].kind == OpKind::kMem) {  // 66 0F 3A 15 (SSE4.1): PEXTRW m16, xmm, imm8
    TTVM_RETURN_ON_FAULT(c.writeMem<uint16_t>(i.mem.seg, c.effectiveAddress(i), uint16_t(w)));
    return ExecStatus::kNext;
  }
  c.gpr(i.op[0].reg) = w;
  return ExecStatus::kNext;
}

// PINSRW xmm, r32/m16, imm8.
ExecStatus insertWord(CpuImpl& c, const Instr& i) {
  if (usesMmx(i)) return mmx::insertWord(c, i);
  TTVM_SSE_PROLOGUE(c, i);
  uint16_t w;
  if (i.op[1].kind == OpKind::kGpr) {
    w = c.readGpr<uint16_t>(i.op[1].reg);
  } else {
    TTVM_RETURN_ON_FAULT(c.readMem<uint16_t>(i.mem.seg, c.effectiveAddress(i), w));
  }
  Vec128& a = xmm(c, i.op[0].reg);
  a = sse::insertWord(a, w, uint8_t(i.imm));
  return ExecStatus::kNext;
}

// Adapters from the templated sse_ops to plain function pointers.
template <class L>
Vec128 cmpEq(const Vec128& a, const Vec128& b) {
  return sse::cmpEq<L>(a, b);
}
template <class L>
Vec128 cmpGt(const Vec128& a, const Vec128& b) {
  return sse::cmpGt<L>(a, b);
}
template <class L>
Vec128 add(const Vec128& a, const Vec128& b) {
  return sse::addLanes<L>(a, b);
}
template <class L>
Vec128 sub(const Vec128& a, const Vec128& b) {
  return sse::subLanes<L>(a, b);
}
template <class L>
Vec128 unpackLow(const Vec128& a, const Vec128& b) {
  return sse::unpackLow<L>(a, b);
}
template <class L>
Vec128 unpackHigh(const Vec128& a, const Vec128& b) {
  return sse::unpackHigh<L>(a, b);
}
template <class L>
Vec128 shl(const Vec128& a, uint64_t n) {
  return sse::shiftLeftLanes<L>(a, n);
}
template <class L>
Vec128 shr(const Vec128& a, uint64_t n) {
  return sse::shiftRightLanes<L>(a, n);
}
template <class L>
Vec128 sar(const Vec128& a, uint64_t n) {
  return sse::shiftRightArithLanes<L>(a, n);
}

}  // namespace

void registerSseHandlers(HandlerTable& t) {
  // Moves.
  for (ZydisMnemonic m : {ZYDIS_MNEMONIC_MOVDQA, ZYDIS_MNEMONIC_MOVAPS, ZYDIS_MNEMONIC_MOVAPD,
                          ZYDIS_MNEMONIC_MOVNTDQ, ZYDIS_MNEMONIC_MOVNTPS, ZYDIS_MNEMONIC_MOVNTPD}) {
    t.setVector(m, &moveFull<true>);
  }
  for (ZydisMnemonic m : {ZYDIS_MNEMONIC_MOVDQU, ZYDIS_MNEMONIC_MOVUPS, ZYDIS_MNEMONIC_MOVUPD}) {
    t.setVector(m, &moveFull<false>);
  }
  t.setVector(ZYDIS_MNEMONIC_MOVD, &moveScalarInt);
  t.setVector(ZYDIS_MNEMONIC_MOVQ, &moveScalarInt);
  t.setSized(ZYDIS_MNEMONIC_MOVNTI, nullptr, nullptr, &MoveNti<uint32_t>::run,
             &MoveNti<uint64_t>::run);
  t.setVector(ZYDIS_MNEMONIC_MOVSS, &moveScalar<uint32_t>);
  t.setVector(ZYDIS_MNEMONIC_MOVSD, &moveScalar<uint64_t>);
  t.setVector(ZYDIS_MNEMONIC_MOVLPS, &moveHalf<false>);
  t.setVector(ZYDIS_MNEMONIC_MOVLPD, &moveHalf<false>);
  t.setVector(ZYDIS_MNEMONIC_MOVHPS, &moveHalf<true>);
  t.setVector(ZYDIS_MNEMONIC_MOVHPD, &moveHalf<true>);
  t.setVector(ZYDIS_MNEMONIC_MOVHLPS, &moveHalfRegs<true>);
  t.setVector(ZYDIS_MNEMONIC_MOVLHPS, &moveHalfRegs<false>);

  // Bitwise (the PS/PD forms are the same bit operations).
  for (ZydisMnemonic m : {ZYDIS_MNEMONIC_PXOR, ZYDIS_MNEMONIC_XORPS, ZYDIS_MNEMONIC_XORPD}) {
    t.setVector(m, &binary<sse::bitXor>);
  }
  for (ZydisMnemonic m : {ZYDIS_MNEMONIC_POR, ZYDIS_MNEMONIC_ORPS, ZYDIS_MNEMONIC_ORPD}) {
    t.setVector(m, &binary<sse::bitOr>);
  }
  for (ZydisMnemonic m : {ZYDIS_MNEMONIC_PAND, ZYDIS_MNEMONIC_ANDPS, ZYDIS_MNEMONIC_ANDPD}) {
    t.setVector(m, &binary<sse::bitAnd>);
  }
  for (ZydisMnemonic m : {ZYDIS_MNEMONIC_PANDN, ZYDIS_MNEMONIC_ANDNPS, ZYDIS_MNEMONIC_ANDNPD}) {
    t.setVector(m, &binary<sse::bitAndNot>);
  }

  // Compares, arithmetic.
  t.setVector(ZYDIS_MNEMONIC_PCMPEQB, &binary<cmpEq<uint8_t>>);
  t.setVector(ZYDIS_MNEMONIC_PCMPEQW, &binary<cmpEq<uint16_t>>);
  t.setVector(ZYDIS_MNEMONIC_PCMPEQD, &binary<cmpEq<uint32_t>>);
  t.setVector(ZYDIS_MNEMONIC_PCMPGTB, &binary<cmpGt<uint8_t>>);
  t.setVector(ZYDIS_MNEMONIC_PCMPGTW, &binary<cmpGt<uint16_t>>);
  t.setVector(ZYDIS_MNEMONIC_PCMPGTD, &binary<cmpGt<uint32_t>>);
  t.setVector(ZYDIS_MNEMONIC_PADDB, &binary<add<uint8_t>>);
  t.setVector(ZYDIS_MNEMONIC_PADDW, &binary<add<uint16_t>>);
  t.setVector(ZYDIS_MNEMONIC_PADDD, &binary<add<uint32_t>>);
  t.setVector(ZYDIS_MNEMONIC_PADDQ, &binary<add<uint64_t>>);
  t.setVector(ZYDIS_MNEMONIC_PSUBB, &binary<sub<uint8_t>>);
  t.setVector(ZYDIS_MNEMONIC_PSUBW, &binary<sub<uint16_t>>);
  t.setVector(ZYDIS_MNEMONIC_PSUBD, &binary<sub<uint32_t>>);
  t.setVector(ZYDIS_MNEMONIC_PSUBQ, &binary<sub<uint64_t>>);
  t.setVector(ZYDIS_MNEMONIC_PSUBUSB, &binary<sse::subUnsignedSaturate8>);
  t.setVector(ZYDIS_MNEMONIC_PSUBUSW, &binary<sse::subUnsignedSaturate16>);
  t.setVector(ZYDIS_MNEMONIC_PADDUSB, &binary<sse::addUnsignedSaturate8>);
  t.setVector(ZYDIS_MNEMONIC_PMINUB, &binary<sse::minUnsigned8>);
  t.setVector(ZYDIS_MNEMONIC_PMAXUB, &binary<sse::maxUnsigned8>);
  t.setVector(ZYDIS_MNEMONIC_PMINSW, &binary<sse::minSigned16>);
  t.setVector(ZYDIS_MNEMONIC_PMAXSW, &binary<sse::maxSigned16>);

  t.setVector(ZYDIS_MNEMONIC_PADDSB, &binary<sse::addSignedSaturate<uint8_t>>);
  t.setVector(ZYDIS_MNEMONIC_PADDSW, &binary<sse::addSignedSaturate<uint16_t>>);
  t.setVector(ZYDIS_MNEMONIC_PSUBSB, &binary<sse::subSignedSaturate<uint8_t>>);
  t.setVector(ZYDIS_MNEMONIC_PSUBSW, &binary<sse::subSignedSaturate<uint16_t>>);
  t.setVector(ZYDIS_MNEMONIC_PADDUSW, &binary<sse::addUnsignedSaturate16>);
  t.setVector(ZYDIS_MNEMONIC_PAVGB, &binary<sse::average<uint8_t>>);
  t.setVector(ZYDIS_MNEMONIC_PAVGW, &binary<sse::average<uint16_t>>);
  t.setVector(ZYDIS_MNEMONIC_PMULLW, &binary<sse::mulLow16>);
  t.setVector(ZYDIS_MNEMONIC_PMULHW, &binary<sse::mulHighSigned16>);
  t.setVector(ZYDIS_MNEMONIC_PMULHUW, &binary<sse::mulHighUnsigned16>);
  t.setVector(ZYDIS_MNEMONIC_PMULUDQ, &binary<sse::mulUnsigned32>);
  t.setVector(ZYDIS_MNEMONIC_PMADDWD, &binary<sse::multiplyAddWords>);
  t.setVector(ZYDIS_MNEMONIC_PSADBW, &binary<sse::sumAbsDiff8>);
  t.setVector(ZYDIS_MNEMONIC_PACKSSWB,
              &binary<sse::packSignedWords, mmx::packed<sse::packSignedWords>>);
  t.setVector(ZYDIS_MNEMONIC_PACKUSWB,
              &binary<sse::packUnsignedWords, mmx::packed<sse::packUnsignedWords>>);
  t.setVector(ZYDIS_MNEMONIC_PACKSSDW,
              &binary<sse::packSignedDwords, mmx::packed<sse::packSignedDwords>>);
  t.setVector(ZYDIS_MNEMONIC_PEXTRW, &extractWord);
  t.setVector(ZYDIS_MNEMONIC_PINSRW, &insertWord);

  // Unpacks and shuffles.
  t.setVector(ZYDIS_MNEMONIC_PUNPCKLBW, &binary<unpackLow<uint8_t>>);
  t.setVector(ZYDIS_MNEMONIC_PUNPCKLWD, &binary<unpackLow<uint16_t>>);
  t.setVector(ZYDIS_MNEMONIC_PUNPCKLDQ, &binary<unpackLow<uint32_t>>);
  t.setVector(ZYDIS_MNEMONIC_PUNPCKLQDQ, &binary<unpackLow<uint64_t>>);
  t.setVector(ZYDIS_MNEMONIC_PUNPCKHBW, &binary<unpackHigh<uint8_t>, mmx::unpackHigh<uint8_t>>);
  t.setVector(ZYDIS_MNEMONIC_PUNPCKHWD, &binary<unpackHigh<uint16_t>, mmx::unpackHigh<uint16_t>>);
  t.setVector(ZYDIS_MNEMONIC_PUNPCKHDQ, &binary<unpackHigh<uint32_t>, mmx::unpackHigh<uint32_t>>);
  t.setVector(ZYDIS_MNEMONIC_PUNPCKHQDQ, &binary<unpackHigh<uint64_t>>);
  t.setVector(ZYDIS_MNEMONIC_UNPCKLPS, &binary<unpackLow<uint32_t>>);
  t.setVector(ZYDIS_MNEMONIC_UNPCKHPS, &binary<unpackHigh<uint32_t>>);
  t.setVector(ZYDIS_MNEMONIC_UNPCKLPD, &binary<unpackLow<uint64_t>>);
  t.setVector(ZYDIS_MNEMONIC_UNPCKHPD, &binary<unpackHigh<uint64_t>>);
  t.setVector(ZYDIS_MNEMONIC_PSHUFD, &shuffle<sse::shuffleDwords>);
  t.setVector(ZYDIS_MNEMONIC_PSHUFLW, &shuffle<sse::shuffleLowWords>);
  t.setVector(ZYDIS_MNEMONIC_PSHUFHW, &shuffle<sse::shuffleHighWords>);
  t.setVector(ZYDIS_MNEMONIC_SHUFPS, &shuffle2<sse::shufflePs>);
  t.setVector(ZYDIS_MNEMONIC_SHUFPD, &shuffle2<sse::shufflePd>);

  // Shifts.
  t.setVector(ZYDIS_MNEMONIC_PSLLW, &shiftLanes<shl<uint16_t>>);
  t.setVector(ZYDIS_MNEMONIC_PSLLD, &shiftLanes<shl<uint32_t>>);
  t.setVector(ZYDIS_MNEMONIC_PSLLQ, &shiftLanes<shl<uint64_t>>);
  t.setVector(ZYDIS_MNEMONIC_PSRLW, &shiftLanes<shr<uint16_t>>);
  t.setVector(ZYDIS_MNEMONIC_PSRLD, &shiftLanes<shr<uint32_t>>);
  t.setVector(ZYDIS_MNEMONIC_PSRLQ, &shiftLanes<shr<uint64_t>>);
  t.setVector(ZYDIS_MNEMONIC_PSRAW, &shiftLanes<sar<uint16_t>>);
  t.setVector(ZYDIS_MNEMONIC_PSRAD, &shiftLanes<sar<uint32_t>>);
  t.setVector(ZYDIS_MNEMONIC_PSLLDQ, &shiftBytes<true>);
  t.setVector(ZYDIS_MNEMONIC_PSRLDQ, &shiftBytes<false>);

  // Masks.
  t.setVector(ZYDIS_MNEMONIC_PMOVMSKB, &moveMask<sse::moveMaskBytes>);
  t.setVector(ZYDIS_MNEMONIC_MOVMSKPS, &moveMask<sse::moveMaskPs>);
  t.setVector(ZYDIS_MNEMONIC_MOVMSKPD, &moveMask<sse::moveMaskPd>);
}

}  // namespace ttvm::fpu

namespace ttvm {

void registerFpuHandlers(HandlerTable& t) {
  t.registerGroup("fpu/x87", fpu::registerX87Handlers);
  t.registerGroup("fpu/sse", fpu::registerSseHandlers);
  t.registerGroup("fpu/sse_arith", fpu::registerSseArithHandlers);
  t.registerGroup("fpu/sse_convert", fpu::registerSseConvertHandlers);
  t.registerGroup("fpu/mmx", fpu::registerMmxHandlers);
}

}  // namespace ttvm
