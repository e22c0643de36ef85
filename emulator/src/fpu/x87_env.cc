// FNSTENV/FLDENV and FNSAVE/FRSTOR: the x87 environment in its four layouts
// (SDM vol. 1 figures 8-9 to 8-12): 14 bytes with 16-bit operand size, 28
// with 32-bit (also in 64-bit mode), each in a protected-mode form (offsets
// and selectors) and a real/virtual-8086 form (20-bit linear pointers split
// around FOP). FNSAVE/FRSTOR add ST0..ST7 (10 bytes each, stack order).
// Control instructions: FIP/FDP/FOP are not updated, no pending exception is
// raised by the non-waiting FNSTENV/FNSAVE.
#include "fpu/env_image.h"
#include "fpu/x87_handlers.h"

namespace ttvm::fpu {
namespace {

EnvFormat envFormat(const CpuImpl& c, const Instr& i) {
  EnvFormat e;
  e.bits32 = i.opSize != 2;
  e.real = !c.protectedMode() || c.v86();
  return e;
}

ExecStatus fnstenv(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Available(c));
  const EnvFormat e = envFormat(c, i);
  uint8_t img[kEnvMaxSize];
  FpuState& f = c.state().fpu;
  envImage(f, e, img);
  TTVM_RETURN_ON_FAULT(writeOperandBytes(c, i, img, envSize(e)));
  f.fcw = uint16_t(f.fcw | fsw::kExceptions);  // every exception masked afterwards
  f.fsw = fswWithSummary(f.fsw, f.fcw);
  return ExecStatus::kNext;
}

ExecStatus fldenv(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Available(c));
  const EnvFormat e = envFormat(c, i);
  uint8_t img[kEnvMaxSize];
  TTVM_RETURN_ON_FAULT(readOperandBytes(c, i, img, envSize(e)));
  loadEnvImage(c.state().fpu, e, img);
  return ExecStatus::kNext;
}

ExecStatus fnsave(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Available(c));
  const EnvFormat e = envFormat(c, i);
  uint8_t img[kEnvMaxSize + 80];
  FpuState& f = c.state().fpu;
  const unsigned n = envSize(e);
  envImage(f, e, img);
  saveRegisters(f, img + n);
  TTVM_RETURN_ON_FAULT(writeOperandBytes(c, i, img, n + 80));
  fpuInit(f);
  return ExecStatus::kNext;
}

ExecStatus frstor(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(x87Available(c));
  const EnvFormat e = envFormat(c, i);
  uint8_t img[kEnvMaxSize + 80];
  const unsigned n = envSize(e);
  TTVM_RETURN_ON_FAULT(readOperandBytes(c, i, img, n + 80));
  FpuState& f = c.state().fpu;
  loadEnvImage(f, e, img);
  loadRegisters(f, img + n);
  return ExecStatus::kNext;
}

}  // namespace

void registerX87EnvHandlers(HandlerTable& t) {
  t.set(ZYDIS_MNEMONIC_FNSTENV, &fnstenv);
  t.set(ZYDIS_MNEMONIC_FLDENV, &fldenv);
  t.set(ZYDIS_MNEMONIC_FNSAVE, &fnsave);
  t.set(ZYDIS_MNEMONIC_FRSTOR, &frstor);
}

}  // namespace ttvm::fpu
