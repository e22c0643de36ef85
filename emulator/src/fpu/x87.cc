// x87 control instructions, EMMS, FXSAVE/FXRSTOR and LDMXCSR/STMXCSR.
// None of them updates FIP/FDP/FOP (they are control instructions).
#include "fpu/fpu.h"
#include "fpu/fpu_util.h"
#include "fpu/fxsave.h"
#include "fpu/x87_handlers.h"

namespace ttvm::fpu {
namespace {

ExecStatus fninit(CpuImpl& c, const Instr&) {
  TTVM_RETURN_ON_FAULT(x87Available(c));
  fpuInit(c.state().fpu);
  return ExecStatus::kNext;
}

// FNSTSW AX / m16.
ExecStatus fnstsw(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Available(c));
  TTVM_RETURN_ON_FAULT(c.writeOp<uint16_t>(i, 0, c.state().fpu.fsw));
  return ExecStatus::kNext;
}

ExecStatus fnstcw(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Available(c));
  TTVM_RETURN_ON_FAULT(c.writeOp<uint16_t>(i, 0, c.state().fpu.fcw));
  return ExecStatus::kNext;
}

// FLDCW m16: unmasking a pending exception sets FSW.ES and B (it is then
// raised by the next waiting x87 instruction).
ExecStatus fldcw(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Available(c));
  uint16_t cw;
  TTVM_RETURN_ON_FAULT(c.readOp<uint16_t>(i, 0, cw));
  FpuState& f = c.state().fpu;
  f.fcw = cw;
  f.fsw = fswWithSummary(f.fsw, cw);
  return ExecStatus::kNext;
}

// FNCLEX: clears the exception flags, SF, ES and B.
ExecStatus fnclex(CpuImpl& c, const Instr&) {
  TTVM_RETURN_ON_FAULT(x87Available(c));
  c.state().fpu.fsw &= uint16_t(~0x80FF);
  return ExecStatus::kNext;
}

// FWAIT: #NM only when CR0.TS and CR0.MP; a pending unmasked x87 exception
// is delivered as #MF when CR0.NE (with NE clear it would go out on FERR#,
// which ttvm's machines do not wire: nothing happens).
ExecStatus fwait(CpuImpl& c, const Instr&) {
  const CpuState& s = c.state();
  if ((s.cr0 & cr0::kTS) && (s.cr0 & cr0::kMP)) return c.raiseNm();
  if ((s.fpu.fsw & 0x80) && (s.cr0 & cr0::kNE)) return c.raise(vec::kMF);
  return ExecStatus::kNext;
}

// EMMS: every x87 register empty.
ExecStatus emms(CpuImpl& c, const Instr&) {
  const CpuState& s = c.state();
  if (s.cr0 & cr0::kEM) return c.raiseUd();
  if (s.cr0 & cr0::kTS) return c.raiseNm();
  c.state().fpu.ftw = 0;
  return ExecStatus::kNext;
}

unsigned xmmCount(const CpuImpl& c) {
  return c.is64() ? 16 : 8;
}

template <FxsaveFormat kFormat>
ExecStatus fxsave(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Available(c));
  TTVM_RETURN_ON_FAULT(checkAligned(c, i, 16));
  uint8_t image[kFxsaveSize];
  const unsigned n = xmmCount(c);
  fxsaveImage(c.state().fpu, kFormat, n, std::span<uint8_t, kFxsaveSize>(image));
  TTVM_RETURN_ON_FAULT(
      c.writeMemBlock(i.mem.seg, c.effectiveAddress(i), image, fxsaveWrittenBytes(n)));
  return ExecStatus::kNext;
}

template <FxsaveFormat kFormat>
ExecStatus fxrstor(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Available(c));
  TTVM_RETURN_ON_FAULT(checkAligned(c, i, 16));
  uint8_t image[kFxsaveSize];
  TTVM_RETURN_ON_FAULT(c.readMemBlock(i.mem.seg, c.effectiveAddress(i), image, kFxsaveSize));
  FpuState f = c.state().fpu;
  if (!fxrstorImage(f, kFormat, xmmCount(c), std::span<const uint8_t, kFxsaveSize>(image))) {
    return c.raiseGp(0);
  }
  c.state().fpu = f;
  return ExecStatus::kNext;
}

ExecStatus ldmxcsr(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(sseAvailable(c));
  uint32_t v;
  TTVM_RETURN_ON_FAULT(c.readOp<uint32_t>(i, 0, v));
  if (v & ~kMxcsrMask) return c.raiseGp(0);
  c.state().fpu.mxcsr = v;
  return ExecStatus::kNext;
}

ExecStatus stmxcsr(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(sseAvailable(c));
  TTVM_RETURN_ON_FAULT(c.writeOp<uint32_t>(i, 0, c.state().fpu.mxcsr));
  return ExecStatus::kNext;
}

}  // namespace

void registerX87Handlers(HandlerTable& t) {
  t.set(ZYDIS_MNEMONIC_FNINIT, &fninit);
  t.set(ZYDIS_MNEMONIC_FNSTSW, &fnstsw);
  t.set(ZYDIS_MNEMONIC_FNSTCW, &fnstcw);
  t.set(ZYDIS_MNEMONIC_FLDCW, &fldcw);
  t.set(ZYDIS_MNEMONIC_FNCLEX, &fnclex);
  t.set(ZYDIS_MNEMONIC_FWAIT, &fwait);
  t.set(ZYDIS_MNEMONIC_EMMS, &emms);
  t.set(ZYDIS_MNEMONIC_FXSAVE, &fxsave<FxsaveFormat::k32>);
  t.set(ZYDIS_MNEMONIC_FXSAVE64, &fxsave<FxsaveFormat::k64>);
  t.set(ZYDIS_MNEMONIC_FXRSTOR, &fxrstor<FxsaveFormat::k32>);
  t.set(ZYDIS_MNEMONIC_FXRSTOR64, &fxrstor<FxsaveFormat::k64>);
  t.set(ZYDIS_MNEMONIC_LDMXCSR, &ldmxcsr);
  t.set(ZYDIS_MNEMONIC_STMXCSR, &stmxcsr);
  registerX87LoadStoreHandlers(t);
  registerX87ArithHandlers(t);
  registerX87TranscendentalHandlers(t);
  registerX87EnvHandlers(t);
}

}  // namespace ttvm::fpu
