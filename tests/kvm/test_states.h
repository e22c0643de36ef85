// CPU states shared by the KVM layer's tests.
#pragma once

#include "ttvm/emulator/cpu_state.h"

namespace ttvm::kvm {

// A long-mode state that KVM accepts (consistent CR0/CR4/EFER, segment
// G bits that match their limits, as SVM derives G from the limit).
inline CpuState longModeState() {
  CpuState s;
  for (int i = 0; i < kNumGprs; ++i) s.gpr[i] = 0x0101010101010101ull * uint64_t(i + 1);
  s.rip = 0xFFFFFFFF81000123ull;
  s.rflags = flags::kFixed1 | flags::kCF | flags::kZF | flags::kIF | flags::kAC;
  const uint32_t code64 = 0xB | segattr::kS | segattr::kP | segattr::kL | segattr::kG;
  const uint32_t data = 0x3 | segattr::kS | segattr::kP | segattr::kDB | segattr::kG;
  s.segment(SegReg::kCs) = {0x10, 0, 0xFFFFFFFF, code64};
  s.segment(SegReg::kSs) = {0x18, 0, 0xFFFFFFFF, data};
  s.segment(SegReg::kDs) = {0x18, 0, 0xFFFFFFFF, data};
  s.segment(SegReg::kEs) = {0, 0, 0, segattr::kUnusable};
  s.segment(SegReg::kFs) = {0, 0x7FFF12345000ull, 0xFFFFFFFF, data};
  s.segment(SegReg::kGs) = {0, 0xFFFF888000001000ull, 0xFFFFFFFF, data};
  s.gdtr = {0xFFFFFE0000001000ull, 0x7F};
  s.idtr = {0xFFFFFE0000000000ull, 0xFFF};
  s.ldtr = {0, 0, 0, segattr::kUnusable};
  s.tr = {0x40, 0xFFFFFE0000003000ull, 0x4087, 0xB | segattr::kP};
  s.cr0 = cr0::kPE | cr0::kMP | cr0::kET | cr0::kNE | cr0::kWP | cr0::kAM | cr0::kPG;
  s.cr2 = 0xDEAD0000BEEFull;
  s.cr3 = 0x1234000;
  s.cr4 = cr4::kPAE | cr4::kPGE | cr4::kOSFXSR | cr4::kOSXMMEXCPT | cr4::kDE | cr4::kPSE;
  s.cr8 = 0xA;
  s.xcr0 = 1;
  s.dr = {0x1000, 0x2000, 0x3000, 0x4000};
  s.dr6 = 0xFFFF4FF1;
  s.dr7 = 0x00F10403;
  s.msr.efer = efer::kSCE | efer::kLME | efer::kLMA | efer::kNXE;
  s.msr.star = 0x0023001000000000ull;
  s.msr.lstar = 0xFFFFFFFF81800000ull;
  s.msr.cstar = 0xFFFFFFFF81800100ull;
  s.msr.sfmask = 0x47700;
  s.msr.kernelGsBase = 0xFFFF888007A00000ull;
  s.msr.sysenterCs = 0x10;
  s.msr.sysenterEsp = 0xFFFFFE0000005000ull;
  s.msr.sysenterEip = 0xFFFFFFFF81801000ull;
  s.msr.pat = 0x0407050600070106ull;
  s.msr.tscAux = 3;
  s.msr.tscAdjust = 0;
  FpuState& f = s.fpu;
  f.fcw = 0x027F;
  f.fsw = uint16_t(5u << 11);
  f.ftw = 0xE0;
  f.fop = 0x5D9;
  f.fip = 0x401234;
  f.fdp = 0x605678;
  for (unsigned i = 0; i < 8; ++i) f.st[i] = {0x8000000000000000ull | i, uint16_t(0x3FFF + i)};
  for (unsigned i = 0; i < 16; ++i) f.xmm[i].q = {0x0102030405060708ull * (i + 1), ~uint64_t(i)};
  f.mxcsr = 0x1FA0;
  s.pending.shadow = InterruptShadow::kMovSs;
  s.pending.nmiBlocked = true;
  s.pending.halted = true;
  return s;
}

}  // namespace ttvm::kvm
