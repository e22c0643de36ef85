// SSE/SSE2 floating-point arithmetic and compares, packed (PS/PD) and scalar
// (SS/SD): ADD, SUB, MUL, DIV, SQRT, MIN, MAX, RCP, RSQRT, CMPcc, COMIS,
// UCOMIS. T is the lane: uint32_t single, uint64_t double. The IEEE lanes run
// on the host (fpu/sse_host.h) under SimdExceptions (fpu/sse_fp.h); a scalar
// form computes lane 0 and keeps the rest of the destination.
#include "fpu/fpu.h"
#include "fpu/sse_approx.h"
#include "fpu/sse_host.h"
#include "fpu/sse_util.h"

namespace ttvm::fpu {
namespace {

using host::Arith;
using sse::Lanes;

template <class T, bool kPacked>
constexpr size_t laneCount() {
  return kPacked ? 16 / sizeof(T) : 1;
}

// ADDPS..SQRTSD: op[0] = op[0] OP op[1], lane by lane; a packed form with
// every exception masked (nothing can fault) as one host instruction.
template <class T, bool kPacked, Arith kOp>
ExecStatus arithmetic(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(sseAvailable(c));
  Vec128 b;
  TTVM_RETURN_ON_FAULT((readFpSource<T, kPacked>(c, i, 1, b)));
  Lanes<T> x = sse::lanes<T>(xmm(c, i.op[0].reg));
  const Lanes<T> y = sse::lanes<T>(b);
  SimdExceptions e(c.state().fpu.mxcsr);
  if constexpr (kPacked) {
    if (e.allMasked()) {
      Vec128 r = xmm(c, i.op[0].reg);
      e.addFlags(host::arithPacked<T>(kOp, r, b, e.runMxcsr()));
      TTVM_RETURN_ON_FAULT(commitSimd(c, e));
      xmm(c, i.op[0].reg) = r;
      return ExecStatus::kNext;
    }
  }
  const bool daz = e.daz();
  for (size_t k = 0; k < laneCount<T, kPacked>(); ++k) {
    const T a = x[k], s = y[k];
    auto op = [a, s](uint32_t m, T& r) { return host::arith(kOp, a, s, m, r); };
    if constexpr (kOp == Arith::kAdd || kOp == Arith::kSub) {
      e.lane(x[k], op, [=] { return unboundedInexactSum(a, s, kOp == Arith::kSub, daz); });
    } else if constexpr (kOp == Arith::kMul) {
      e.lane(x[k], op, [=] { return unboundedInexactProduct(a, s, daz); });
    } else if constexpr (kOp == Arith::kDiv) {
      e.lane(x[k], op, [=] { return unboundedInexactQuotient(a, s, daz); });
    } else {
      e.lane(x[k], op);  // MIN, MAX, SQRT: no overflow or underflow
    }
  }
  TTVM_RETURN_ON_FAULT(commitSimd(c, e));
  xmm(c, i.op[0].reg) = sse::vec<T>(x);
  return ExecStatus::kNext;
}

// CMPPS/CMPPD/CMPSS/CMPSD xmm, xmm/m, imm8: all ones where the predicate
// imm8 & 7 holds (EQ, LT, LE, UNORD, NEQ, NLT, NLE, ORD).
template <class T, int kPred>
uint32_t compareLane(T a, T b, uint32_t m, T& r) {
  return host::compare<T, kPred>(a, b, m, r);
}
template <class T>
using CompareFn = uint32_t (*)(T, T, uint32_t, T&);
template <class T>
constexpr CompareFn<T> kCompares[8] = {&compareLane<T, 0>, &compareLane<T, 1>, &compareLane<T, 2>,
                                       &compareLane<T, 3>, &compareLane<T, 4>, &compareLane<T, 5>,
                                       &compareLane<T, 6>, &compareLane<T, 7>};

template <class T, bool kPacked>
ExecStatus compare(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(sseAvailable(c));
  Vec128 b;
  TTVM_RETURN_ON_FAULT((readFpSource<T, kPacked>(c, i, 1, b)));
  Lanes<T> x = sse::lanes<T>(xmm(c, i.op[0].reg));
  const Lanes<T> y = sse::lanes<T>(b);
  const CompareFn<T> f = kCompares<T>[i.imm & 7];
  SimdExceptions e(c.state().fpu.mxcsr);
  for (size_t k = 0; k < laneCount<T, kPacked>(); ++k) {
    const T a = x[k], s = y[k];
    e.lane(x[k], [a, s, f](uint32_t m, T& r) { return f(a, s, m, r); });
  }
  TTVM_RETURN_ON_FAULT(commitSimd(c, e));
  xmm(c, i.op[0].reg) = sse::vec<T>(x);
  return ExecStatus::kNext;
}

// COMISS/COMISD (QNaN operands raise IE too) and UCOMISS/UCOMISD: ZF, PF, CF
// from the compare (111 unordered, 000 greater, 001 less, 100 equal); OF,
// SF, AF cleared.
template <class T, bool kSignalling>
ExecStatus compareToFlags(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(sseAvailable(c));
  Vec128 b;
  TTVM_RETURN_ON_FAULT((readFpSource<T, false>(c, i, 1, b)));
  const T a = sse::lanes<T>(xmm(c, i.op[0].reg))[0];
  const T s = sse::lanes<T>(b)[0];
  uint64_t f = 0;
  SimdExceptions e(c.state().fpu.mxcsr);
  e.lane(f, [a, s](uint32_t m, uint64_t& r) {
    return host::compareFlags<T, kSignalling>(a, s, m, r);
  });
  TTVM_RETURN_ON_FAULT(commitSimd(c, e));
  c.setArithFlags(flags::kArith, f);
  return ExecStatus::kNext;
}

// RCPPS/RCPSS/RSQRTPS/RSQRTSS: ttvm's own approximation (fpu/sse_approx.h);
// no MXCSR flags, no exceptions.
template <bool kPacked, uint32_t (*F)(uint32_t)>
ExecStatus approximate(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(sseAvailable(c));
  Vec128 b;
  TTVM_RETURN_ON_FAULT((readFpSource<uint32_t, kPacked>(c, i, 1, b)));
  Lanes<uint32_t> x = sse::lanes<uint32_t>(xmm(c, i.op[0].reg));
  const Lanes<uint32_t> y = sse::lanes<uint32_t>(b);
  for (size_t k = 0; k < laneCount<uint32_t, kPacked>(); ++k) x[k] = F(y[k]);
  xmm(c, i.op[0].reg) = sse::vec<uint32_t>(x);
  return ExecStatus::kNext;
}

// One arithmetic operation in its four forms.
void setArith(HandlerTable& t, Arith op, ZydisMnemonic ps, ZydisMnemonic pd, ZydisMnemonic ss,
              ZydisMnemonic sd) {
  switch (op) {
#define TTVM_ARITH_CASE(kOp)                            \
  case kOp:                                             \
    t.setVector(ps, &arithmetic<uint32_t, true, kOp>);  \
    t.setVector(pd, &arithmetic<uint64_t, true, kOp>);  \
    t.setVector(ss, &arithmetic<uint32_t, false, kOp>); \
    t.setVector(sd, &arithmetic<uint64_t, false, kOp>); \
    break;
    TTVM_ARITH_CASE(Arith::kAdd)
    TTVM_ARITH_CASE(Arith::kSub)
    TTVM_ARITH_CASE(Arith::kMul)
    TTVM_ARITH_CASE(Arith::kDiv)
    TTVM_ARITH_CASE(Arith::kMin)
    TTVM_ARITH_CASE(Arith::kMax)
    TTVM_ARITH_CASE(Arith::kSqrt)
#undef TTVM_ARITH_CASE
  }
}

}  // namespace

void registerSseArithHandlers(HandlerTable& t) {
  setArith(t, Arith::kAdd, ZYDIS_MNEMONIC_ADDPS, ZYDIS_MNEMONIC_ADDPD, ZYDIS_MNEMONIC_ADDSS,
           ZYDIS_MNEMONIC_ADDSD);
  setArith(t, Arith::kSub, ZYDIS_MNEMONIC_SUBPS, ZYDIS_MNEMONIC_SUBPD, ZYDIS_MNEMONIC_SUBSS,
           ZYDIS_MNEMONIC_SUBSD);
  setArith(t, Arith::kMul, ZYDIS_MNEMONIC_MULPS, ZYDIS_MNEMONIC_MULPD, ZYDIS_MNEMONIC_MULSS,
           ZYDIS_MNEMONIC_MULSD);
  setArith(t, Arith::kDiv, ZYDIS_MNEMONIC_DIVPS, ZYDIS_MNEMONIC_DIVPD, ZYDIS_MNEMONIC_DIVSS,
           ZYDIS_MNEMONIC_DIVSD);
  setArith(t, Arith::kMin, ZYDIS_MNEMONIC_MINPS, ZYDIS_MNEMONIC_MINPD, ZYDIS_MNEMONIC_MINSS,
           ZYDIS_MNEMONIC_MINSD);
  setArith(t, Arith::kMax, ZYDIS_MNEMONIC_MAXPS, ZYDIS_MNEMONIC_MAXPD, ZYDIS_MNEMONIC_MAXSS,
           ZYDIS_MNEMONIC_MAXSD);
  setArith(t, Arith::kSqrt, ZYDIS_MNEMONIC_SQRTPS, ZYDIS_MNEMONIC_SQRTPD, ZYDIS_MNEMONIC_SQRTSS,
           ZYDIS_MNEMONIC_SQRTSD);
  t.setVector(ZYDIS_MNEMONIC_RCPPS, &approximate<true, sse::reciprocal>);
  t.setVector(ZYDIS_MNEMONIC_RCPSS, &approximate<false, sse::reciprocal>);
  t.setVector(ZYDIS_MNEMONIC_RSQRTPS, &approximate<true, sse::reciprocalSqrt>);
  t.setVector(ZYDIS_MNEMONIC_RSQRTSS, &approximate<false, sse::reciprocalSqrt>);

  t.setVector(ZYDIS_MNEMONIC_CMPPS, &compare<uint32_t, true>);
  t.setVector(ZYDIS_MNEMONIC_CMPPD, &compare<uint64_t, true>);
  t.setVector(ZYDIS_MNEMONIC_CMPSS, &compare<uint32_t, false>);
  t.setVector(ZYDIS_MNEMONIC_CMPSD, &compare<uint64_t, false>);
  t.setVector(ZYDIS_MNEMONIC_COMISS, &compareToFlags<uint32_t, true>);
  t.setVector(ZYDIS_MNEMONIC_COMISD, &compareToFlags<uint64_t, true>);
  t.setVector(ZYDIS_MNEMONIC_UCOMISS, &compareToFlags<uint32_t, false>);
  t.setVector(ZYDIS_MNEMONIC_UCOMISD, &compareToFlags<uint64_t, false>);
}

}  // namespace ttvm::fpu
