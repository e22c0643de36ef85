// DAA DAS AAA AAS AAM AAD. Zydis does not decode them in 64-bit mode, so the
// framework raises #UD there; these handlers run in every other mode.
#include "alu/alu.h"
#include "alu/flags.h"
#include "alu/handler_util.h"

namespace ttvm::alu {
namespace {

template <bool kSubtract>
ExecStatus decimalAdjust(CpuImpl& cpu, const Instr&) {
  const uint8_t al = cpu.readGpr<uint8_t>(kRax);
  const AluResult<uint8_t> r = kSubtract ? das(al, cpu.rflags()) : daa(al, cpu.rflags());
  cpu.writeGpr<uint8_t>(kRax, r.value);
  cpu.rflags() = r.rflags;
  return ExecStatus::kNext;
}

template <bool kSubtract>
ExecStatus asciiAdjust(CpuImpl& cpu, const Instr&) {
  const uint16_t ax = cpu.readGpr<uint16_t>(kRax);
  const AluResult<uint16_t> r = kSubtract ? aas(ax, cpu.rflags()) : aaa(ax, cpu.rflags());
  cpu.writeGpr<uint16_t>(kRax, r.value);
  cpu.rflags() = r.rflags;
  return ExecStatus::kNext;
}

// AAM/AAD imm8 (D4 0A / D5 0A are the documented forms; any base works).
ExecStatus asciiAdjustMultiply(CpuImpl& cpu, const Instr& i) {
  const AamResult r = aam(cpu.readGpr<uint16_t>(kRax), uint8_t(i.imm), cpu.rflags());
  if (r.fault) return cpu.raiseDe();
  cpu.writeGpr<uint16_t>(kRax, r.ax);
  cpu.rflags() = r.rflags;
  return ExecStatus::kNext;
}

ExecStatus asciiAdjustDivide(CpuImpl& cpu, const Instr& i) {
  const AluResult<uint16_t> r = aad(cpu.readGpr<uint16_t>(kRax), uint8_t(i.imm), cpu.rflags());
  cpu.writeGpr<uint16_t>(kRax, r.value);
  cpu.rflags() = r.rflags;
  return ExecStatus::kNext;
}

}  // namespace

void registerBcdHandlers(HandlerTable& t) {
  t.set(ZYDIS_MNEMONIC_DAA, &decimalAdjust<false>);
  t.set(ZYDIS_MNEMONIC_DAS, &decimalAdjust<true>);
  t.set(ZYDIS_MNEMONIC_AAA, &asciiAdjust<false>);
  t.set(ZYDIS_MNEMONIC_AAS, &asciiAdjust<true>);
  t.set(ZYDIS_MNEMONIC_AAM, &asciiAdjustMultiply);
  t.set(ZYDIS_MNEMONIC_AAD, &asciiAdjustDivide);
}

}  // namespace ttvm::alu
