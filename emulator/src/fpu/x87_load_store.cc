// x87 loads and stores: FLD/FILD/FBLD, FST/FSTP/FIST/FISTP/FISTTP/FBSTP,
// FLD ST(i), FST(P) ST(i), FXCH, FLD1..FLDZ, FCMOVcc, FFREE(P),
// FINCSTP/FDECSTP, FNOP. Conversions between formats run on the host x87
// (fpu/f80.h); moves between registers and the 80-bit memory format are bit
// copies.
#include "fpu/x87_handlers.h"

namespace ttvm::fpu {
namespace {

using f80::HostIo;
using f80::HostOp;
using f80::kIndefinite;

// Pushes `v` unless ST7 is in use (stack overflow: masked, the indefinite
// is pushed instead).
void pushChecked(FpuState& f, const Float80& v) {
  if (!isEmpty(f, 7)) {
    if (stackFault(f, true)) push(f, kIndefinite);
    return;
  }
  setC1(f, false);
  push(f, v);
}

// FLD m32fp/m64fp, FILD m16/m32/m64, FBLD m80bcd: the host converts.
ExecStatus loadConverted(CpuImpl& c, const Instr& i, HostOp op, unsigned bytes) {
  TTVM_RETURN_ON_FAULT(x87Begin(c));
  HostIo io;
  TTVM_RETURN_ON_FAULT(readOperandBytes(c, i, io.mem, bytes));
  x87Pointers(c, i);
  FpuState& f = c.state().fpu;
  if (!isEmpty(f, 7)) {
    if (stackFault(f, true)) push(f, kIndefinite);
    return ExecStatus::kNext;
  }
  io.fcw = f.fcw;
  io.fsw = f.fsw;
  f80::hostExec(op, io);
  // A denormal source is loaded even with DE unmasked (measured on the host).
  if (applyResultWith(f, io.fsw, fsw::kIE)) push(f, io.st0);
  return ExecStatus::kNext;
}

// FLD m80fp: a bit copy (no exception but stack overflow).
ExecStatus loadM80(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Begin(c));
  uint8_t b[10];
  TTVM_RETURN_ON_FAULT(readOperandBytes(c, i, b, 10));
  x87Pointers(c, i);
  Float80 v;
  std::memcpy(&v.significand, b, 8);
  std::memcpy(&v.signExponent, b + 8, 2);
  pushChecked(c.state().fpu, v);
  return ExecStatus::kNext;
}

// FLD ST(i): ST(i) is read before the push.
ExecStatus loadReg(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Begin(c));
  x87Pointers(c, i);
  FpuState& f = c.state().fpu;
  const unsigned src = i.modrm & 7;
  if (isEmpty(f, src)) {  // underflow is reported, not a simultaneous overflow
    if (stackFault(f, false)) push(f, kIndefinite);
    return ExecStatus::kNext;
  }
  pushChecked(f, st(f, src));
  return ExecStatus::kNext;
}

ExecStatus fld(CpuImpl& c, const Instr& i) {
  if (!hasMemOperand(i)) return loadReg(c, i);
  switch (i.opcode) {
    case 0xD9: return loadConverted(c, i, HostOp::kFldM32, 4);
    case 0xDD: return loadConverted(c, i, HostOp::kFldM64, 8);
    default: return loadM80(c, i);  // DB /5
  }
}

ExecStatus fild(CpuImpl& c, const Instr& i) {
  switch (i.opcode) {
    case 0xDF:
      return i.modrmReg == 0 ? loadConverted(c, i, HostOp::kFildM16, 2)
                             : loadConverted(c, i, HostOp::kFildM64, 8);
    default: return loadConverted(c, i, HostOp::kFildM32, 4);  // DB /0
  }
}

ExecStatus fbld(CpuImpl& c, const Instr& i) {
  return loadConverted(c, i, HostOp::kFbld, 10);
}

// Stores ST0 to memory through a host conversion (or, for m80, as bits),
// then pops when `popAfter`. An empty ST0 is a stack underflow; masked, the
// indefinite of the destination format is stored.
ExecStatus storeMem(CpuImpl& c, const Instr& i, HostOp op, unsigned bytes, bool popAfter,
                    bool bitCopy = false) {
  TTVM_RETURN_ON_FAULT(x87Begin(c));
  TTVM_RETURN_ON_FAULT(c.probeWrite(i.mem.seg, c.effectiveAddress(i), bytes));
  x87Pointers(c, i);
  FpuState& f = c.state().fpu;
  HostIo io;
  io.fcw = f.fcw;
  io.fsw = f.fsw;
  const bool underflow = isEmpty(f, 0);
  if (underflow) {
    if (!stackFault(f, false)) return ExecStatus::kNext;
    io.st0 = kIndefinite;
    io.fcw = uint16_t(f.fcw | fsw::kIE);
  } else {
    io.st0 = st(f, 0);
  }
  if (bitCopy) {
    std::memcpy(io.mem, &io.st0.significand, 8);
    std::memcpy(io.mem + 8, &io.st0.signExponent, 2);
    if (!underflow) setC1(f, false);
  } else {
    f80::hostExec(op, io);
    if (!underflow && !applyResult(f, io.fsw, true)) return ExecStatus::kNext;
  }
  TTVM_RETURN_ON_FAULT(writeOperandBytes(c, i, io.mem, bytes));
  if (popAfter) pop(f);
  return ExecStatus::kNext;
}

// FST/FSTP ST(i): a bit copy of ST0; FSTP ST(0) only pops.
ExecStatus storeReg(CpuImpl& c, const Instr& i, bool popAfter) {
  TTVM_RETURN_ON_FAULT(x87Begin(c));
  x87Pointers(c, i);
  FpuState& f = c.state().fpu;
  const unsigned dst = i.modrm & 7;
  if (isEmpty(f, 0)) {
    if (!stackFault(f, false)) return ExecStatus::kNext;
    setSt(f, dst, kIndefinite);
  } else {
    setC1(f, false);
    setSt(f, dst, st(f, 0));
  }
  if (popAfter) pop(f);
  return ExecStatus::kNext;
}

// FSTP1 (D9 D8+i, Zydis FSTPNCE): FSTP ST(i) without the stack-underflow
// check (measured on the host: with ST0 empty it only pops, silently).
ExecStatus fstpNoCheck(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Begin(c));
  x87Pointers(c, i);
  FpuState& f = c.state().fpu;
  setC1(f, false);
  if (!isEmpty(f, 0)) setSt(f, i.modrm & 7, st(f, 0));
  pop(f);
  return ExecStatus::kNext;
}

template <bool kPop>
ExecStatus fst(CpuImpl& c, const Instr& i) {
  if (!hasMemOperand(i)) return storeReg(c, i, kPop);
  switch (i.opcode) {
    case 0xD9: return storeMem(c, i, HostOp::kFstpM32, 4, kPop);
    case 0xDD: return storeMem(c, i, HostOp::kFstpM64, 8, kPop);
    default: return storeMem(c, i, HostOp::kFstpM32, 10, kPop, true);  // DB /7 m80
  }
}

template <bool kPop>
ExecStatus fist(CpuImpl& c, const Instr& i) {
  switch (i.opcode) {
    case 0xDF:
      return i.modrmReg == 7 ? storeMem(c, i, HostOp::kFistpM64, 8, kPop)
                             : storeMem(c, i, HostOp::kFistpM16, 2, kPop);
    default: return storeMem(c, i, HostOp::kFistpM32, 4, kPop);  // DB /2, /3
  }
}

ExecStatus fisttp(CpuImpl& c, const Instr& i) {
  switch (i.opcode) {
    case 0xDF: return storeMem(c, i, HostOp::kFisttpM16, 2, true);
    case 0xDB: return storeMem(c, i, HostOp::kFisttpM32, 4, true);
    default: return storeMem(c, i, HostOp::kFisttpM64, 8, true);  // DD /1
  }
}

ExecStatus fbstp(CpuImpl& c, const Instr& i) {
  return storeMem(c, i, HostOp::kFbstp, 10, true);
}

// FXCH ST(i): an empty operand is a stack underflow; masked, it is replaced
// by the indefinite before the exchange.
ExecStatus fxch(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Begin(c));
  x87Pointers(c, i);
  FpuState& f = c.state().fpu;
  const unsigned k = i.modrm & 7;
  if (isEmpty(f, 0) || isEmpty(f, k)) {
    if (!stackFault(f, false)) return ExecStatus::kNext;
    if (isEmpty(f, 0)) setSt(f, 0, kIndefinite);
    if (isEmpty(f, k)) setSt(f, k, kIndefinite);
  } else {
    setC1(f, false);
  }
  const Float80 t = st(f, 0);
  setSt(f, 0, st(f, k));
  setSt(f, k, t);
  return ExecStatus::kNext;
}

template <f80::Constant kConstant>
ExecStatus fldConstant(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Begin(c));
  x87Pointers(c, i);
  FpuState& f = c.state().fpu;
  pushChecked(f, f80::loadConstant(kConstant, fcw::rounding(f.fcw)));
  return ExecStatus::kNext;
}

// FCMOVcc ST0, ST(i): the condition from RFLAGS (DA: B E BE U; DB: NB NE NBE NU).
ExecStatus fcmov(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Begin(c));
  x87Pointers(c, i);
  const uint64_t fl = c.rflags();
  bool cond = false;
  switch ((i.modrm >> 3) & 3) {
    case 0: cond = fl & flags::kCF; break;
    case 1: cond = fl & flags::kZF; break;
    case 2: cond = fl & (flags::kCF | flags::kZF); break;
    case 3: cond = fl & flags::kPF; break;
  }
  if (i.opcode == 0xDB) cond = !cond;
  FpuState& f = c.state().fpu;
  const unsigned k = i.modrm & 7;
  if (isEmpty(f, 0) || isEmpty(f, k)) {
    if (stackFault(f, false)) setSt(f, 0, kIndefinite);
    return ExecStatus::kNext;
  }
  if (cond) setSt(f, 0, st(f, k));  // C1 stays (measured on the host)
  return ExecStatus::kNext;
}

template <bool kPop>
ExecStatus ffree(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Begin(c));
  x87Pointers(c, i);
  FpuState& f = c.state().fpu;
  f.ftw = uint8_t(f.ftw & ~(1u << physIndex(f, i.modrm & 7)));
  setC1(f, false);  // measured on the host
  if (kPop) pop(f);
  return ExecStatus::kNext;
}

template <int kDelta>
ExecStatus stepTop(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Begin(c));
  x87Pointers(c, i);
  FpuState& f = c.state().fpu;
  setTop(f, fpuTop(f) + kDelta);
  setC1(f, false);
  return ExecStatus::kNext;
}

ExecStatus fnop(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Begin(c));
  x87Pointers(c, i);
  return ExecStatus::kNext;
}

// FNENI, FNDISI (8087) and FNSETPM (287): no-ops on the 387 and later, and
// non-waiting control instructions.
ExecStatus legacyNop(CpuImpl& c, const Instr&) {
  TTVM_RETURN_ON_FAULT(x87Available(c));
  return ExecStatus::kNext;
}

}  // namespace

void registerX87LoadStoreHandlers(HandlerTable& t) {
  t.set(ZYDIS_MNEMONIC_FLD, &fld);
  t.set(ZYDIS_MNEMONIC_FILD, &fild);
  t.set(ZYDIS_MNEMONIC_FBLD, &fbld);
  t.set(ZYDIS_MNEMONIC_FST, &fst<false>);
  t.set(ZYDIS_MNEMONIC_FSTP, &fst<true>);
  t.set(ZYDIS_MNEMONIC_FSTPNCE, &fstpNoCheck);
  t.set(ZYDIS_MNEMONIC_FIST, &fist<false>);
  t.set(ZYDIS_MNEMONIC_FISTP, &fist<true>);
  t.set(ZYDIS_MNEMONIC_FISTTP, &fisttp);
  t.set(ZYDIS_MNEMONIC_FBSTP, &fbstp);
  t.set(ZYDIS_MNEMONIC_FXCH, &fxch);
  t.set(ZYDIS_MNEMONIC_FLD1, &fldConstant<f80::Constant::kOne>);
  t.set(ZYDIS_MNEMONIC_FLDL2T, &fldConstant<f80::Constant::kL2t>);
  t.set(ZYDIS_MNEMONIC_FLDL2E, &fldConstant<f80::Constant::kL2e>);
  t.set(ZYDIS_MNEMONIC_FLDPI, &fldConstant<f80::Constant::kPi>);
  t.set(ZYDIS_MNEMONIC_FLDLG2, &fldConstant<f80::Constant::kLg2>);
  t.set(ZYDIS_MNEMONIC_FLDLN2, &fldConstant<f80::Constant::kLn2>);
  t.set(ZYDIS_MNEMONIC_FLDZ, &fldConstant<f80::Constant::kZero>);
  for (ZydisMnemonic m : {ZYDIS_MNEMONIC_FCMOVB, ZYDIS_MNEMONIC_FCMOVE, ZYDIS_MNEMONIC_FCMOVBE,
                          ZYDIS_MNEMONIC_FCMOVU, ZYDIS_MNEMONIC_FCMOVNB, ZYDIS_MNEMONIC_FCMOVNE,
                          ZYDIS_MNEMONIC_FCMOVNBE, ZYDIS_MNEMONIC_FCMOVNU})
    t.set(m, &fcmov);
  t.set(ZYDIS_MNEMONIC_FFREE, &ffree<false>);
  t.set(ZYDIS_MNEMONIC_FFREEP, &ffree<true>);
  t.set(ZYDIS_MNEMONIC_FINCSTP, &stepTop<1>);
  t.set(ZYDIS_MNEMONIC_FDECSTP, &stepTop<-1>);
  t.set(ZYDIS_MNEMONIC_FNOP, &fnop);
  t.set(ZYDIS_MNEMONIC_FENI8087_NOP, &legacyNop);
  t.set(ZYDIS_MNEMONIC_FDISI8087_NOP, &legacyNop);
  t.set(ZYDIS_MNEMONIC_FSETPM287_NOP, &legacyNop);
}

}  // namespace ttvm::fpu
