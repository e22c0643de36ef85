#include "ttvm/emulator/state_diff.h"

namespace ttvm {

const char* const kGprNames[kNumGprs] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                         "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
const char* const kSegNames[kNumSegRegs] = {"es", "cs", "ss", "ds", "fs", "gs"};

std::vector<FieldDifference> stateDifferences(const CpuState& ref, const CpuState& fol) {
  std::vector<FieldDifference> d;
  auto cmp = [&d](std::string name, uint64_t a, uint64_t b) {
    if (a != b) d.push_back({std::move(name), a, b});
  };
  for (int i = 0; i < kNumGprs; ++i) cmp(kGprNames[i], ref.gpr[i], fol.gpr[i]);
  cmp("rip", ref.rip, fol.rip);
  cmp("rflags", ref.rflags, fol.rflags);
  auto seg = [&cmp](const std::string& n, const SegmentRegister& a, const SegmentRegister& b) {
    cmp(n + ".selector", a.selector, b.selector);
    cmp(n + ".base", a.base, b.base);
    cmp(n + ".limit", a.limit, b.limit);
    cmp(n + ".attributes", a.attributes, b.attributes);
  };
  for (int i = 0; i < kNumSegRegs; ++i) seg(kSegNames[i], ref.seg[i], fol.seg[i]);
  seg("ldtr", ref.ldtr, fol.ldtr);
  seg("tr", ref.tr, fol.tr);
  cmp("gdtr.base", ref.gdtr.base, fol.gdtr.base);
  cmp("gdtr.limit", ref.gdtr.limit, fol.gdtr.limit);
  cmp("idtr.base", ref.idtr.base, fol.idtr.base);
  cmp("idtr.limit", ref.idtr.limit, fol.idtr.limit);
  cmp("cr0", ref.cr0, fol.cr0);
  cmp("cr2", ref.cr2, fol.cr2);
  cmp("cr3", ref.cr3, fol.cr3);
  cmp("cr4", ref.cr4, fol.cr4);
  cmp("cr8", ref.cr8, fol.cr8);
  cmp("xcr0", ref.xcr0, fol.xcr0);
  for (int i = 0; i < 4; ++i) cmp("dr" + std::to_string(i), ref.dr[i], fol.dr[i]);
  cmp("dr6", ref.dr6, fol.dr6);
  cmp("dr7", ref.dr7, fol.dr7);
  const MsrState& rm = ref.msr;
  const MsrState& fm = fol.msr;
  cmp("efer", rm.efer, fm.efer);
  cmp("star", rm.star, fm.star);
  cmp("lstar", rm.lstar, fm.lstar);
  cmp("cstar", rm.cstar, fm.cstar);
  cmp("sfmask", rm.sfmask, fm.sfmask);
  cmp("kernel_gs_base", rm.kernelGsBase, fm.kernelGsBase);
  cmp("sysenter_cs", rm.sysenterCs, fm.sysenterCs);
  cmp("sysenter_esp", rm.sysenterEsp, fm.sysenterEsp);
  cmp("sysenter_eip", rm.sysenterEip, fm.sysenterEip);
  cmp("pat", rm.pat, fm.pat);
  cmp("apic_base", rm.apicBase, fm.apicBase);
  cmp("tsc_aux", rm.tscAux, fm.tscAux);
  cmp("misc_enable", rm.miscEnable, fm.miscEnable);
  cmp("tsc_adjust", rm.tscAdjust, fm.tscAdjust);
  const FpuState& rf = ref.fpu;
  const FpuState& ff = fol.fpu;
  cmp("fcw", rf.fcw, ff.fcw);
  cmp("fsw", rf.fsw, ff.fsw);
  cmp("ftw", rf.ftw, ff.ftw);
  cmp("fop", rf.fop, ff.fop);
  cmp("fip", rf.fip, ff.fip);
  cmp("fdp", rf.fdp, ff.fdp);
  cmp("fcs", rf.fcs, ff.fcs);
  cmp("fds", rf.fds, ff.fds);
  for (int i = 0; i < 8; ++i) {
    cmp("st" + std::to_string(i) + ".significand", rf.st[i].significand, ff.st[i].significand);
    cmp("st" + std::to_string(i) + ".exponent", rf.st[i].signExponent, ff.st[i].signExponent);
  }
  for (int i = 0; i < 16; ++i) {
    cmp("xmm" + std::to_string(i) + ".lo", rf.xmm[i].q[0], ff.xmm[i].q[0]);
    cmp("xmm" + std::to_string(i) + ".hi", rf.xmm[i].q[1], ff.xmm[i].q[1]);
  }
  cmp("mxcsr", rf.mxcsr, ff.mxcsr);
  cmp("shadow", static_cast<uint64_t>(ref.pending.shadow),
      static_cast<uint64_t>(fol.pending.shadow));
  cmp("pending_dr6", ref.pending.pendingDr6, fol.pending.pendingDr6);
  cmp("nmi_blocked", ref.pending.nmiBlocked, fol.pending.nmiBlocked);
  cmp("halted", ref.pending.halted, fol.pending.halted);
  return d;
}

}  // namespace ttvm
