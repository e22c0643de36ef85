// FSIN, FCOS, FSINCOS, FPTAN, F2XM1 (ST0) and FPATAN, FYL2X, FYL2XP1 (ST1,
// then pop): the stack and exception handling around the software functions
// of fpu/f80_transcendental.h. C2 is the out-of-range flag of the
// trigonometric ones (|x| >= 2^63: set, the operand stays as it was).
#include "fpu/f80_transcendental.h"
#include "fpu/x87_handlers.h"

namespace ttvm::fpu {
namespace {

using f80::kIndefinite;
using f80::TranscendentalResult;
using UnaryFn = TranscendentalResult (*)(const Float80&, uint16_t);
using BinaryFn = TranscendentalResult (*)(const Float80&, const Float80&, uint16_t);

void setC2(FpuState& f, bool v) {
  f.fsw = uint16_t((f.fsw & ~fsw::kC2) | (v ? fsw::kC2 : 0));
}

// FSIN, FCOS, F2XM1: ST0 = fn(ST0).
template <UnaryFn kFn, bool kTrig>
ExecStatus unaryOp(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Begin(c));
  x87Pointers(c, i);
  FpuState& f = c.state().fpu;
  if (isEmpty(f, 0)) {
    if (kTrig) setC2(f, false);
    if (stackFault(f, false)) setSt(f, 0, kIndefinite);
    return ExecStatus::kNext;
  }
  const TranscendentalResult r = kFn(st(f, 0), f.fcw);
  if (kTrig) setC2(f, r.outOfRange);
  if (r.outOfRange) return ExecStatus::kNext;
  if (applyResult(f, r.flags, false)) setSt(f, 0, r.value);
  return ExecStatus::kNext;
}

// FPTAN (ST0 = tan, push 1) and FSINCOS (ST0 = sin, push cos).
template <bool kSinCos>
ExecStatus pushingOp(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Begin(c));
  x87Pointers(c, i);
  FpuState& f = c.state().fpu;
  if (isEmpty(f, 0) || !isEmpty(f, 7)) {
    setC2(f, false);
    if (!stackFault(f, !isEmpty(f, 0))) return ExecStatus::kNext;
    setSt(f, 0, kIndefinite);
    push(f, kIndefinite);
    return ExecStatus::kNext;
  }
  const uint16_t rc = f.fcw;
  const TranscendentalResult r = kSinCos ? f80::fsincos(st(f, 0), rc) : f80::fptan(st(f, 0), rc);
  setC2(f, r.outOfRange);
  if (r.outOfRange) return ExecStatus::kNext;
  if (!applyResult(f, r.flags, false)) return ExecStatus::kNext;
  if (kSinCos) {
    setSt(f, 0, r.value2);
    push(f, r.value);
  } else {
    setSt(f, 0, r.value);
    // A NaN tangent is followed by the same NaN, a number by +1.0.
    const bool nan = f80::classify(r.value) == f80::Class::kNan;
    push(f, nan ? r.value : f80::make(false, f80::kBias, f80::kIntegerBit));
  }
  return ExecStatus::kNext;
}

// FPATAN, FYL2X, FYL2XP1: ST1 = fn(ST1, ST0), then pop.
template <BinaryFn kFn>
ExecStatus binaryOp(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Begin(c));
  x87Pointers(c, i);
  FpuState& f = c.state().fpu;
  if (isEmpty(f, 0) || isEmpty(f, 1)) {
    if (!stackFault(f, false)) return ExecStatus::kNext;
    setSt(f, 1, kIndefinite);
    pop(f);
    return ExecStatus::kNext;
  }
  const TranscendentalResult r = kFn(st(f, 1), st(f, 0), f.fcw);
  if (!applyResult(f, r.flags, false)) return ExecStatus::kNext;
  setSt(f, 1, r.value);
  pop(f);
  return ExecStatus::kNext;
}

}  // namespace

void registerX87TranscendentalHandlers(HandlerTable& t) {
  t.set(ZYDIS_MNEMONIC_FSIN, &unaryOp<f80::fsin, true>);
  t.set(ZYDIS_MNEMONIC_FCOS, &unaryOp<f80::fcos, true>);
  t.set(ZYDIS_MNEMONIC_F2XM1, &unaryOp<f80::f2xm1, false>);
  t.set(ZYDIS_MNEMONIC_FSINCOS, &pushingOp<true>);
  t.set(ZYDIS_MNEMONIC_FPTAN, &pushingOp<false>);
  t.set(ZYDIS_MNEMONIC_FPATAN, &binaryOp<f80::fpatan>);
  t.set(ZYDIS_MNEMONIC_FYL2X, &binaryOp<f80::fyl2x>);
  t.set(ZYDIS_MNEMONIC_FYL2XP1, &binaryOp<f80::fyl2xp1>);
}

}  // namespace ttvm::fpu
