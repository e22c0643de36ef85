// Disassembly::writes: which costly state parts an instruction may write. Lockstep reads KVM's
// FPU, debug registers, XCR0 and MSRs back only after an instruction that
// can write them, so a part missing here would hide a difference until the
// next full read.
#include "ttvm/emulator/disassembler.h"

#include <gtest/gtest.h>

#include <vector>

namespace ttvm {
namespace {

struct Case {
  std::vector<uint8_t> bytes;
  CpuMode mode;
  StateParts writes;
  const char* what;
};

TEST(Disassembler, EffectsNameTheCostlyPartsAnInstructionMayWrite) {
  using namespace state_part;
  const Case cases[] = {
      {{0xB8, 0x01, 0x00}, CpuMode::kReal, 0, "mov ax, 1"},
      {{0x01, 0xD8}, CpuMode::kProtected32, 0, "add eax, ebx"},
      {{0x50}, CpuMode::kLong64, 0, "push rax"},
      {{0xEB, 0xFE}, CpuMode::kLong64, 0, "jmp $"},
      {{0xF3, 0xA4}, CpuMode::kProtected32, 0, "rep movsb"},
      {{0xD9, 0xE8}, CpuMode::kReal, kFpu, "fld1"},
      {{0xDB, 0xE3}, CpuMode::kReal, kFpu, "fninit"},
      {{0xD9, 0x2E, 0x00, 0x20}, CpuMode::kReal, kFpu, "fldcw [0x2000]"},
      {{0x9B}, CpuMode::kReal, kFpu, "fwait"},
      {{0x0F, 0x58, 0xC1}, CpuMode::kProtected32, kFpu, "addps xmm0, xmm1"},
      {{0x66, 0x0F, 0x7E, 0xC0}, CpuMode::kProtected32, kFpu, "movd eax, xmm0"},
      {{0x0F, 0x77}, CpuMode::kProtected32, kFpu, "emms"},
      {{0x0F, 0xAE, 0x10}, CpuMode::kProtected32, kFpu, "ldmxcsr [eax]"},
      {{0x0F, 0xAE, 0x08}, CpuMode::kProtected32, kFpu, "fxrstor [eax]"},
      {{0x0F, 0xAE, 0x28}, CpuMode::kProtected32, kFpu, "xrstor [eax]"},
      {{0xC5, 0xF8, 0x77}, CpuMode::kLong64, kFpu, "vzeroupper"},
      {{0x0F, 0x01, 0xD1}, CpuMode::kProtected32, kFpu | kXcr0, "xsetbv"},
      {{0x0F, 0x30}, CpuMode::kProtected32, kMsrs, "wrmsr"},
      {{0x0F, 0x32}, CpuMode::kProtected32, 0, "rdmsr"},
      {{0x0F, 0x01, 0xF8}, CpuMode::kLong64, kMsrs, "swapgs"},
      {{0x0F, 0x23, 0xF8}, CpuMode::kProtected32, kDebugRegs, "mov dr7, eax"},
      {{0x0F, 0x21, 0xF8}, CpuMode::kProtected32, 0, "mov eax, dr7"},
      {{0xCD, 0x80}, CpuMode::kProtected32, kDebugRegs, "int 0x80"},
      {{0xCC}, CpuMode::kProtected32, kDebugRegs, "int3"},
      {{0xF1}, CpuMode::kProtected32, kDebugRegs, "int1"},
      {{0xCF}, CpuMode::kProtected32, kDebugRegs, "iretd"},
      {{0xEA, 0x00, 0x10, 0x00, 0x00, 0x28, 0x00},
       CpuMode::kProtected32,
       kDebugRegs,
       "jmp far 0x28:0x1000"},
      {{0x9D}, CpuMode::kProtected32, 0, "popfd"},
      {{0x0F, 0x05}, CpuMode::kLong64, 0, "syscall"},
      {{0x48, 0x0F, 0x07}, CpuMode::kLong64, 0, "sysretq"},
      {{0x0F, 0x34}, CpuMode::kProtected32, 0, "sysenter"},
  };
  for (const Case& c : cases) {
    const Disassembly d = disassemble(c.bytes, c.mode, 0x1000);
    EXPECT_EQ(d.length, c.bytes.size()) << c.what;
    EXPECT_EQ(d.writes, c.writes) << c.what;
  }
}

}  // namespace
}  // namespace ttvm
