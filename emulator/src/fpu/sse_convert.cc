// SSE/SSE2 conversions: between single and double (CVTSS2SD, CVTSD2SS,
// CVTPS2PD, CVTPD2PS), from integers (CVTSI2SS/SD from r/m32/64, CVTDQ2PS,
// CVTDQ2PD, CVTPI2PS, CVTPI2PD from MMX) and to integers, rounded by
// MXCSR.RC or truncated (CVT[T]SS2SI, CVT[T]SD2SI to r32/r64, CVT[T]PS2DQ,
// CVT[T]PD2DQ, CVT[T]PS2PI, CVT[T]PD2PI to MMX). Out of range and NaN give the
// integer indefinite (0x80000000 / 0x8000000000000000) and IE. Every lane
// runs on the host (fpu/sse_host.h) under SimdExceptions (fpu/sse_fp.h).
//
// The MMX forms follow the SSE rules (CR0.EM, CR4.OSFXSR, CR0.TS) plus the
// MMX ones when an operand is an MM register: #MF for a pending x87
// exception, and the switch to MMX mode (TOP = 0, all tags valid).
#include <type_traits>
#include <utility>

#include "fpu/fpu.h"
#include "fpu/sse_host.h"
#include "fpu/sse_util.h"

namespace ttvm::fpu {
namespace {

using sse::Lanes;

// Lane operations, `uint32_t op(From bits, uint32_t mxcsr, To& bits)`.
template <class From, class To>
uint32_t floatToFloat(From a, uint32_t m, To& r) {
  return host::convertFloat<From, To>(a, m, r);
}
// From is the integer's bits (uint32_t: int32, uint64_t: int64).
template <class From, class To>
uint32_t intToFloat(From a, uint32_t m, To& r) {
  return host::fromInt<std::make_signed_t<From>, To>(std::make_signed_t<From>(a), m, r);
}
template <class From, class To, bool kTruncate>
uint32_t floatToInt(From a, uint32_t m, To& r) {
  std::make_signed_t<To> v;
  const uint32_t after = host::toInt<From, std::make_signed_t<To>, kTruncate>(a, m, v);
  r = To(v);
  return after;
}

// Where the source lanes come from.
enum class Src : uint8_t {
  kVec,     // xmm or aligned m128
  kLow64,   // the low qword of xmm, an MM register, or m64 (any alignment)
  kScalar,  // lane 0 of xmm, or m32/m64 as wide as one From lane
};
// What happens to the destination beyond the N converted lanes.
enum class Dst : uint8_t {
  kZero,   // the rest of the XMM register is zeroed
  kMerge,  // the rest of the XMM register is kept
  kMmx,    // the N lanes form an MM register
};

template <class From, Src kSrc>
bool readSource(CpuImpl& c, const Instr& i, Vec128& v) {
  switch (kSrc) {
    case Src::kVec: return readVec(c, i, 1, v, true);
    case Src::kScalar: return readFpSource<From, false>(c, i, 1, v);
    case Src::kLow64: v = Vec128{}; return readQword(c, i, 1, v.q[0]);
  }
  return false;
}

// The one conversion handler: N lanes of From -> To through Op. kNarrowing:
// double to single, which can overflow and underflow.
template <class From, class To, size_t N, uint32_t (*Op)(From, uint32_t, To&), Src kSrc, Dst kDst,
          bool kNarrowing = false>
ExecStatus convert(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(sseAvailable(c));
  const bool mmx = usesMmx(i);
  if (mmx) TTVM_RETURN_ON_FAULT(mmxAvailable(c));
  Vec128 src;
  TTVM_RETURN_ON_FAULT((readSource<From, kSrc>(c, i, src)));
  const Lanes<From> x = sse::lanes<From>(src);
  Lanes<To> r{};
  if constexpr (kDst == Dst::kMerge) r = sse::lanes<To>(xmm(c, i.op[0].reg));
  SimdExceptions e(c.state().fpu.mxcsr);
  for (size_t k = 0; k < N; ++k) {
    const From a = x[k];
    auto op = [a](uint32_t m, To& out) { return Op(a, m, out); };
    if constexpr (kNarrowing) {
      const bool daz = e.daz();
      e.lane(r[k], op, [=] { return unboundedInexactNarrowing(a, daz); });
    } else {
      e.lane(r[k], op);
    }
  }
  TTVM_RETURN_ON_FAULT(commitSimd(c, e));
  if constexpr (kDst == Dst::kMmx) {
    writeMmx(c, i.op[0].reg, sse::vec<To>(r).q[0]);
  } else {
    xmm(c, i.op[0].reg) = sse::vec<To>(r);
  }
  if (mmx) enterMmxMode(c);
  return ExecStatus::kNext;
}

// CVTSI2SS/CVTSI2SD xmm, r/m32 or r/m64 (REX.W): lane 0, the rest kept.
template <class To>
ExecStatus fromGpr(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(sseAvailable(c));
  Lanes<To> r = sse::lanes<To>(xmm(c, i.op[0].reg));
  SimdExceptions e(c.state().fpu.mxcsr);
  if (i.op[1].size == 8) {
    uint64_t v;
    TTVM_RETURN_ON_FAULT(c.readOp<uint64_t>(i, 1, v));
    e.lane(r[0], [v](uint32_t m, To& out) { return intToFloat<uint64_t, To>(v, m, out); });
  } else {
    uint32_t v;
    TTVM_RETURN_ON_FAULT(c.readOp<uint32_t>(i, 1, v));
    e.lane(r[0], [v](uint32_t m, To& out) { return intToFloat<uint32_t, To>(v, m, out); });
  }
  TTVM_RETURN_ON_FAULT(commitSimd(c, e));
  xmm(c, i.op[0].reg) = sse::vec<To>(r);
  return ExecStatus::kNext;
}

// CVT[T]SS2SI/CVT[T]SD2SI r32/r64, xmm/m32 or m64.
template <class From, bool kTruncate>
ExecStatus toGpr(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(sseAvailable(c));
  Vec128 src;
  TTVM_RETURN_ON_FAULT((readFpSource<From, false>(c, i, 1, src)));
  const From a = sse::lanes<From>(src)[0];
  SimdExceptions e(c.state().fpu.mxcsr);
  if (i.op[0].size == 8) {
    uint64_t v = 0;
    e.lane(v, [a](uint32_t m, uint64_t& out) {
      return floatToInt<From, uint64_t, kTruncate>(a, m, out);
    });
    TTVM_RETURN_ON_FAULT(commitSimd(c, e));
    c.writeGpr<uint64_t>(i.op[0].reg, v);
  } else {
    uint32_t v = 0;
    e.lane(v, [a](uint32_t m, uint32_t& out) {
      return floatToInt<From, uint32_t, kTruncate>(a, m, out);
    });
    TTVM_RETURN_ON_FAULT(commitSimd(c, e));
    c.writeGpr<uint32_t>(i.op[0].reg, v);
  }
  return ExecStatus::kNext;
}

using S = uint32_t;  // single / int32 lane
using D = uint64_t;  // double lane

}  // namespace

void registerSseConvertHandlers(HandlerTable& t) {
  // Single <-> double.
  t.setVector(ZYDIS_MNEMONIC_CVTSS2SD,
              &convert<S, D, 1, floatToFloat<S, D>, Src::kScalar, Dst::kMerge>);
  t.setVector(ZYDIS_MNEMONIC_CVTSD2SS,
              &convert<D, S, 1, floatToFloat<D, S>, Src::kScalar, Dst::kMerge, true>);
  t.setVector(ZYDIS_MNEMONIC_CVTPS2PD,
              &convert<S, D, 2, floatToFloat<S, D>, Src::kLow64, Dst::kZero>);
  t.setVector(ZYDIS_MNEMONIC_CVTPD2PS,
              &convert<D, S, 2, floatToFloat<D, S>, Src::kVec, Dst::kZero, true>);

  // Integers -> floating point.
  t.setVector(ZYDIS_MNEMONIC_CVTSI2SS, &fromGpr<S>);
  t.setVector(ZYDIS_MNEMONIC_CVTSI2SD, &fromGpr<D>);
  t.setVector(ZYDIS_MNEMONIC_CVTDQ2PS, &convert<S, S, 4, intToFloat<S, S>, Src::kVec, Dst::kZero>);
  t.setVector(ZYDIS_MNEMONIC_CVTDQ2PD,
              &convert<S, D, 2, intToFloat<S, D>, Src::kLow64, Dst::kZero>);
  t.setVector(ZYDIS_MNEMONIC_CVTPI2PS,
              &convert<S, S, 2, intToFloat<S, S>, Src::kLow64, Dst::kMerge>);
  t.setVector(ZYDIS_MNEMONIC_CVTPI2PD,
              &convert<S, D, 2, intToFloat<S, D>, Src::kLow64, Dst::kZero>);

  // Floating point -> integers.
  // (r, m32/m64 has no vector operand: the plain table entry is used then.)
  for (auto [m, h] : {std::pair{ZYDIS_MNEMONIC_CVTSS2SI, &toGpr<S, false>},
                      std::pair{ZYDIS_MNEMONIC_CVTTSS2SI, &toGpr<S, true>},
                      std::pair{ZYDIS_MNEMONIC_CVTSD2SI, &toGpr<D, false>},
                      std::pair{ZYDIS_MNEMONIC_CVTTSD2SI, &toGpr<D, true>}}) {
    t.setVector(m, h);
    t.set(m, h);
  }
  t.setVector(ZYDIS_MNEMONIC_CVTPS2DQ,
              &convert<S, S, 4, floatToInt<S, S, false>, Src::kVec, Dst::kZero>);
  t.setVector(ZYDIS_MNEMONIC_CVTTPS2DQ,
              &convert<S, S, 4, floatToInt<S, S, true>, Src::kVec, Dst::kZero>);
  t.setVector(ZYDIS_MNEMONIC_CVTPD2DQ,
              &convert<D, S, 2, floatToInt<D, S, false>, Src::kVec, Dst::kZero>);
  t.setVector(ZYDIS_MNEMONIC_CVTTPD2DQ,
              &convert<D, S, 2, floatToInt<D, S, true>, Src::kVec, Dst::kZero>);
  t.setVector(ZYDIS_MNEMONIC_CVTPS2PI,
              &convert<S, S, 2, floatToInt<S, S, false>, Src::kLow64, Dst::kMmx>);
  t.setVector(ZYDIS_MNEMONIC_CVTTPS2PI,
              &convert<S, S, 2, floatToInt<S, S, true>, Src::kLow64, Dst::kMmx>);
  t.setVector(ZYDIS_MNEMONIC_CVTPD2PI,
              &convert<D, S, 2, floatToInt<D, S, false>, Src::kVec, Dst::kMmx>);
  t.setVector(ZYDIS_MNEMONIC_CVTTPD2PI,
              &convert<D, S, 2, floatToInt<D, S, true>, Src::kVec, Dst::kMmx>);
}

}  // namespace ttvm::fpu
