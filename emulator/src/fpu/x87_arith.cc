// x87 arithmetic and compares: FADD/FSUB/FSUBR/FMUL/FDIV/FDIVR in every form
// (register, popping, m32fp/m64fp, m16int/m32int), FCOM/FUCOM/FICOM/FTST/
// FCOMI/FUCOMI and their popping forms, FCHS, FABS, FXAM, FSQRT, FRNDINT,
// FSCALE, FXTRACT, FPREM, FPREM1. The IEEE-defined results come from the host
// x87 (fpu/f80.h); the stack, tags and exception responses are ttvm's.
#include "fpu/x87_handlers.h"

namespace ttvm::fpu {
namespace {

using f80::HostIo;
using f80::HostOp;
using f80::kIndefinite;

// The host operations of one arithmetic mnemonic: ST0 op ST1, and ST0 op
// memory for the m32fp, m64fp, m32int and m16int operands.
struct ArithOps {
  HostOp reg, m32, m64, i32, i16;
};

constexpr ArithOps kAdd{HostOp::kFadd, HostOp::kFaddM32, HostOp::kFaddM64, HostOp::kFiaddM32,
                        HostOp::kFiaddM16};
constexpr ArithOps kMul{HostOp::kFmul, HostOp::kFmulM32, HostOp::kFmulM64, HostOp::kFimulM32,
                        HostOp::kFimulM16};
constexpr ArithOps kSub{HostOp::kFsub, HostOp::kFsubM32, HostOp::kFsubM64, HostOp::kFisubM32,
                        HostOp::kFisubM16};
constexpr ArithOps kSubr{HostOp::kFsubr, HostOp::kFsubrM32, HostOp::kFsubrM64, HostOp::kFisubrM32,
                         HostOp::kFisubrM16};
constexpr ArithOps kDiv{HostOp::kFdiv, HostOp::kFdivM32, HostOp::kFdivM64, HostOp::kFidivM32,
                        HostOp::kFidivM16};
constexpr ArithOps kDivr{HostOp::kFdivr, HostOp::kFdivrM32, HostOp::kFdivrM64, HostOp::kFidivrM32,
                         HostOp::kFidivrM16};

// The memory form's host operation and operand size from the opcode byte:
// D8 m32fp, DC m64fp, DA m32int, DE m16int.
HostOp memOp(const ArithOps& ops, uint8_t opcode, unsigned& bytes) {
  switch (opcode) {
    case 0xD8: bytes = 4; return ops.m32;
    case 0xDC: bytes = 8; return ops.m64;
    case 0xDA: bytes = 4; return ops.i32;
    default: bytes = 2; return ops.i16;
  }
}

// dst = dst op src for ST registers; pops afterwards when `popAfter`.
ExecStatus arithReg(CpuImpl& c, const Instr& i, HostOp op, unsigned dst, unsigned src,
                    bool popAfter) {
  TTVM_RETURN_ON_FAULT(x87Begin(c));
  x87Pointers(c, i);
  FpuState& f = c.state().fpu;
  if (isEmpty(f, dst) || isEmpty(f, src)) {
    if (!stackFault(f, false)) return ExecStatus::kNext;
    setSt(f, dst, kIndefinite);
  } else {
    HostIo io;
    io.fcw = f.fcw;
    io.fsw = f.fsw;
    io.st0 = st(f, dst);
    io.st1 = st(f, src);
    f80::hostExec(op, io);
    if (!applyResult(f, io.fsw, false)) return ExecStatus::kNext;
    setSt(f, dst, io.st0);
  }
  if (popAfter) pop(f);
  return ExecStatus::kNext;
}

// ST0 = ST0 op memory operand.
ExecStatus arithMem(CpuImpl& c, const Instr& i, HostOp op, unsigned bytes) {
  TTVM_RETURN_ON_FAULT(x87Begin(c));
  HostIo io;
  TTVM_RETURN_ON_FAULT(readOperandBytes(c, i, io.mem, bytes));
  x87Pointers(c, i);
  FpuState& f = c.state().fpu;
  if (isEmpty(f, 0)) {
    if (stackFault(f, false)) setSt(f, 0, kIndefinite);
    return ExecStatus::kNext;
  }
  io.fcw = f.fcw;
  io.fsw = f.fsw;
  io.st0 = st(f, 0);
  f80::hostExec(op, io);
  if (applyResult(f, io.fsw, false)) setSt(f, 0, io.st0);
  return ExecStatus::kNext;
}

// FADD..FDIVR (D8/DC register and memory forms, DA/DE integer forms) and the
// popping forms (DE register). The D8 register form is ST0 = ST0 op ST(i);
// DC and DE are ST(i) = ST(i) op ST0, with the mnemonic naming the operation
// on (destination, source) in that order.
template <const ArithOps& kOps>
ExecStatus arith(CpuImpl& c, const Instr& i) {
  if (hasMemOperand(i)) {
    unsigned bytes;
    const HostOp op = memOp(kOps, i.opcode, bytes);
    return arithMem(c, i, op, bytes);
  }
  const unsigned k = i.modrm & 7;
  if (i.opcode == 0xD8) return arithReg(c, i, kOps.reg, 0, k, false);
  return arithReg(c, i, kOps.reg, k, 0, i.opcode == 0xDE);
}

// ---------------------------------------------------------------- compares

enum class CompareKind : uint8_t { kFsw, kRflags };

// The masked response to a stack underflow or an invalid compare: unordered.
void setUnordered(CpuImpl& c, FpuState& f, CompareKind kind) {
  if (kind == CompareKind::kRflags) {
    c.setArithFlags(flags::kZF | flags::kPF | flags::kCF | flags::kOF | flags::kSF | flags::kAF,
                    flags::kZF | flags::kPF | flags::kCF);
  } else {
    setConditions(f, fsw::kC0 | fsw::kC2 | fsw::kC3, false);
  }
}

// Compares ST0 with ST(k) (or with the memory operand in io.mem when
// `memBytes` != 0), then pops `pops` times.
ExecStatus compare(CpuImpl& c, const Instr& i, HostOp op, unsigned k, unsigned memBytes,
                   unsigned pops, CompareKind kind) {
  TTVM_RETURN_ON_FAULT(x87Begin(c));
  HostIo io;
  if (memBytes) TTVM_RETURN_ON_FAULT(readOperandBytes(c, i, io.mem, memBytes));
  x87Pointers(c, i);
  FpuState& f = c.state().fpu;
  // The condition codes are written even when the invalid operation is
  // unmasked (measured on the host); only the pops are then skipped.
  if (isEmpty(f, 0) || (!memBytes && isEmpty(f, k))) {
    setUnordered(c, f, kind);
    if (!stackFault(f, false)) return ExecStatus::kNext;
  } else {
    io.fcw = f.fcw;
    io.fsw = f.fsw;
    io.st0 = st(f, 0);
    io.st1 = st(f, k);
    f80::hostExec(op, io);
    if (kind == CompareKind::kRflags) {
      const uint64_t m = flags::kZF | flags::kPF | flags::kCF;
      c.setArithFlags(m | flags::kOF | flags::kSF | flags::kAF, io.rflags & m);
    } else {
      setConditions(f, io.fsw, false);
    }
    // FCOMI/FUCOMI leave C1 alone (measured on the host).
    const bool c1 = f.fsw & fsw::kC1;
    const bool store = applyResult(f, io.fsw, false);
    if (kind == CompareKind::kRflags) setC1(f, c1);
    if (!store) return ExecStatus::kNext;
  }
  for (unsigned n = 0; n < pops; ++n) pop(f);
  return ExecStatus::kNext;
}

// FCOM/FCOMP: D8 D0+i / D8 D8+i, m32fp (D8), m64fp (DC). FCOMPP: DE D9.
template <unsigned kPops>
ExecStatus fcom(CpuImpl& c, const Instr& i) {
  if (hasMemOperand(i)) {
    return i.opcode == 0xD8 ? compare(c, i, HostOp::kFcomM32, 0, 4, kPops, CompareKind::kFsw)
                            : compare(c, i, HostOp::kFcomM64, 0, 8, kPops, CompareKind::kFsw);
  }
  const unsigned k = kPops == 2 ? 1 : (i.modrm & 7);
  return compare(c, i, HostOp::kFcom, k, 0, kPops, CompareKind::kFsw);
}

// FUCOM/FUCOMP: DD E0+i / DD E8+i. FUCOMPP: DA E9.
template <unsigned kPops>
ExecStatus fucom(CpuImpl& c, const Instr& i) {
  const unsigned k = kPops == 2 ? 1 : (i.modrm & 7);
  return compare(c, i, HostOp::kFucom, k, 0, kPops, CompareKind::kFsw);
}

// FICOM/FICOMP m32int (DA) / m16int (DE).
template <unsigned kPops>
ExecStatus ficom(CpuImpl& c, const Instr& i) {
  return i.opcode == 0xDA ? compare(c, i, HostOp::kFicomM32, 0, 4, kPops, CompareKind::kFsw)
                          : compare(c, i, HostOp::kFicomM16, 0, 2, kPops, CompareKind::kFsw);
}

// FCOMI/FCOMIP (DB/DF F0+i), FUCOMI/FUCOMIP (DB/DF E8+i): ZF PF CF.
template <HostOp kOp, unsigned kPops>
ExecStatus fcomi(CpuImpl& c, const Instr& i) {
  return compare(c, i, kOp, i.modrm & 7, 0, kPops, CompareKind::kRflags);
}

ExecStatus ftst(CpuImpl& c, const Instr& i) {
  return compare(c, i, HostOp::kFtst, 0, 0, 0, CompareKind::kFsw);
}

// ------------------------------------------------------------------ unary

// FCHS / FABS: sign bit only, no exception but stack underflow.
template <bool kAbs>
ExecStatus signOp(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Begin(c));
  x87Pointers(c, i);
  FpuState& f = c.state().fpu;
  if (isEmpty(f, 0)) {
    if (stackFault(f, false)) setSt(f, 0, kIndefinite);
    return ExecStatus::kNext;
  }
  Float80 v = st(f, 0);
  v.signExponent = kAbs ? uint16_t(v.signExponent & 0x7FFF) : uint16_t(v.signExponent ^ 0x8000);
  setC1(f, false);
  setSt(f, 0, v);
  return ExecStatus::kNext;
}

// FXAM: C3 C2 C0 classify ST0, C1 its sign; never an exception.
ExecStatus fxam(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Begin(c));
  x87Pointers(c, i);
  FpuState& f = c.state().fpu;
  const Float80& v = st(f, 0);
  setConditions(f, uint16_t(f80::fxamConditions(v, isEmpty(f, 0)) | (f80::sign(v) ? fsw::kC1 : 0)),
                true);
  return ExecStatus::kNext;
}

// FPREM/FPREM1 (software, fpu/f80.h): ST0 = the remainder of ST0 by ST1;
// C0 C1 C2 C3 are the quotient bits and the incomplete-reduction flag.
template <bool kIeee>
ExecStatus fprem(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Begin(c));
  x87Pointers(c, i);
  FpuState& f = c.state().fpu;
  if (isEmpty(f, 0) || isEmpty(f, 1)) {
    f.fsw = uint16_t(f.fsw & ~fsw::kC2);
    if (stackFault(f, false)) setSt(f, 0, kIndefinite);
    return ExecStatus::kNext;
  }
  const f80::Remainder r = f80::fprem(st(f, 0), st(f, 1), kIeee, f.fsw, f.fcw);
  // An unmasked exception stops it with C2 and C1 clear, C0 and C3 kept
  // (measured on the host).
  if (!applyResult(f, r.fsw, false)) {
    f.fsw = uint16_t(f.fsw & ~(fsw::kC1 | fsw::kC2));
    return ExecStatus::kNext;
  }
  setConditions(f, r.fsw, true);
  setSt(f, 0, r.value);
  return ExecStatus::kNext;
}

// FSQRT, FRNDINT, FSCALE (ST0, ST1).
template <HostOp kOp, bool kUsesSt1>
ExecStatus unary(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Begin(c));
  x87Pointers(c, i);
  FpuState& f = c.state().fpu;
  if (isEmpty(f, 0) || (kUsesSt1 && isEmpty(f, 1))) {
    if (stackFault(f, false)) setSt(f, 0, kIndefinite);
    return ExecStatus::kNext;
  }
  HostIo io;
  io.fcw = f.fcw;
  io.fsw = f.fsw;
  io.st0 = st(f, 0);
  io.st1 = st(f, 1);
  f80::hostExec(kOp, io);
  if (!applyResult(f, io.fsw, false)) return ExecStatus::kNext;
  setSt(f, 0, io.st0);
  return ExecStatus::kNext;
}

// FXTRACT: ST0 = exponent, then push the significand.
ExecStatus fxtract(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Begin(c));
  x87Pointers(c, i);
  FpuState& f = c.state().fpu;
  if (isEmpty(f, 0) || !isEmpty(f, 7)) {
    if (!stackFault(f, !isEmpty(f, 7) && !isEmpty(f, 0))) return ExecStatus::kNext;
    setSt(f, 0, kIndefinite);
    push(f, kIndefinite);
    return ExecStatus::kNext;
  }
  HostIo io;
  io.fcw = f.fcw;
  io.fsw = f.fsw;
  io.st0 = st(f, 0);
  f80::hostExec(HostOp::kFxtract, io);
  if (!applyResult(f, io.fsw, false)) return ExecStatus::kNext;
  setSt(f, 0, io.st1);
  push(f, io.st0);
  return ExecStatus::kNext;
}

}  // namespace

void registerX87ArithHandlers(HandlerTable& t) {
  t.set(ZYDIS_MNEMONIC_FADD, &arith<kAdd>);
  t.set(ZYDIS_MNEMONIC_FMUL, &arith<kMul>);
  t.set(ZYDIS_MNEMONIC_FSUB, &arith<kSub>);
  t.set(ZYDIS_MNEMONIC_FSUBR, &arith<kSubr>);
  t.set(ZYDIS_MNEMONIC_FDIV, &arith<kDiv>);
  t.set(ZYDIS_MNEMONIC_FDIVR, &arith<kDivr>);
  t.set(ZYDIS_MNEMONIC_FADDP, &arith<kAdd>);
  t.set(ZYDIS_MNEMONIC_FMULP, &arith<kMul>);
  t.set(ZYDIS_MNEMONIC_FSUBP, &arith<kSub>);
  t.set(ZYDIS_MNEMONIC_FSUBRP, &arith<kSubr>);
  t.set(ZYDIS_MNEMONIC_FDIVP, &arith<kDiv>);
  t.set(ZYDIS_MNEMONIC_FDIVRP, &arith<kDivr>);
  t.set(ZYDIS_MNEMONIC_FIADD, &arith<kAdd>);
  t.set(ZYDIS_MNEMONIC_FIMUL, &arith<kMul>);
  t.set(ZYDIS_MNEMONIC_FISUB, &arith<kSub>);
  t.set(ZYDIS_MNEMONIC_FISUBR, &arith<kSubr>);
  t.set(ZYDIS_MNEMONIC_FIDIV, &arith<kDiv>);
  t.set(ZYDIS_MNEMONIC_FIDIVR, &arith<kDivr>);
  t.set(ZYDIS_MNEMONIC_FCOM, &fcom<0>);
  t.set(ZYDIS_MNEMONIC_FCOMP, &fcom<1>);
  t.set(ZYDIS_MNEMONIC_FCOMPP, &fcom<2>);
  t.set(ZYDIS_MNEMONIC_FUCOM, &fucom<0>);
  t.set(ZYDIS_MNEMONIC_FUCOMP, &fucom<1>);
  t.set(ZYDIS_MNEMONIC_FUCOMPP, &fucom<2>);
  t.set(ZYDIS_MNEMONIC_FICOM, &ficom<0>);
  t.set(ZYDIS_MNEMONIC_FICOMP, &ficom<1>);
  t.set(ZYDIS_MNEMONIC_FCOMI, &fcomi<HostOp::kFcomi, 0>);
  t.set(ZYDIS_MNEMONIC_FCOMIP, &fcomi<HostOp::kFcomi, 1>);
  t.set(ZYDIS_MNEMONIC_FUCOMI, &fcomi<HostOp::kFucomi, 0>);
  t.set(ZYDIS_MNEMONIC_FUCOMIP, &fcomi<HostOp::kFucomi, 1>);
  t.set(ZYDIS_MNEMONIC_FTST, &ftst);
  t.set(ZYDIS_MNEMONIC_FCHS, &signOp<false>);
  t.set(ZYDIS_MNEMONIC_FABS, &signOp<true>);
  t.set(ZYDIS_MNEMONIC_FXAM, &fxam);
  t.set(ZYDIS_MNEMONIC_FSQRT, &unary<HostOp::kFsqrt, false>);
  t.set(ZYDIS_MNEMONIC_FRNDINT, &unary<HostOp::kFrndint, false>);
  t.set(ZYDIS_MNEMONIC_FSCALE, &unary<HostOp::kFscale, true>);
  t.set(ZYDIS_MNEMONIC_FPREM, &fprem<false>);
  t.set(ZYDIS_MNEMONIC_FPREM1, &fprem<true>);
  t.set(ZYDIS_MNEMONIC_FXTRACT, &fxtract);
}

}  // namespace ttvm::fpu
