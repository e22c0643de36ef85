#include "ttvm/emulator/cpu_state.h"

#include <cstring>

namespace ttvm {

CpuMode cpuMode(const CpuState& s) {
  if (!(s.cr0 & cr0::kPE)) return CpuMode::kReal;
  const SegmentRegister& cs = s.segment(SegReg::kCs);
  if (s.msr.efer & efer::kLMA) {
    if (cs.attributes & segattr::kL) return CpuMode::kLong64;
    return (cs.attributes & segattr::kDB) ? CpuMode::kCompatibility32 : CpuMode::kCompatibility16;
  }
  if (s.rflags & flags::kVM) return CpuMode::kVirtual8086;
  return (cs.attributes & segattr::kDB) ? CpuMode::kProtected32 : CpuMode::kProtected16;
}

int currentPrivilegeLevel(const CpuState& s) {
  if (!(s.cr0 & cr0::kPE)) return 0;
  if (s.rflags & flags::kVM) return 3;
  return static_cast<int>((s.segment(SegReg::kCs).attributes >> segattr::kDplShift) & 3);
}

void copyStateParts(CpuState& to, const CpuState& from, StateParts parts) {
  if (parts & state_part::kFpu) to.fpu = from.fpu;
  if (parts & state_part::kDebugRegs) {
    to.dr = from.dr;
    to.dr6 = from.dr6;
    to.dr7 = from.dr7;
  }
  if (parts & state_part::kXcr0) to.xcr0 = from.xcr0;
  if (parts & state_part::kMsrs) {
    const uint64_t efer = to.msr.efer, apicBase = to.msr.apicBase;
    to.msr = from.msr;
    to.msr.efer = efer;
    to.msr.apicBase = apicBase;
  }
}

CpuState resetState() {
  CpuState s;
  for (SegmentRegister& r : s.seg) r = SegmentRegister{0, 0, 0xFFFF, 0x93};
  s.segment(SegReg::kCs) = SegmentRegister{0xF000, 0xFFFF0000ull, 0xFFFF, 0x9B};
  s.gpr[static_cast<int>(Gpr::kRdx)] = 0x600;  // family/model/stepping signature
  return s;
}

namespace {

// FNV-1a over little-endian words: simple, stable across hosts and versions.
class Fnv64 {
 public:
  void add(uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h_ ^= (v >> (8 * i)) & 0xFF;
      h_ *= 0x100000001B3ull;
    }
  }
  void add(const SegmentRegister& r) {
    add(r.selector);
    add(r.base);
    add(r.limit);
    add(r.attributes);
  }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 0xCBF29CE484222325ull;
};

}  // namespace

uint64_t stateDigest(const CpuState& s) {
  Fnv64 h;
  for (uint64_t r : s.gpr) h.add(r);
  h.add(s.rip);
  h.add(s.rflags);
  for (const SegmentRegister& r : s.seg) h.add(r);
  h.add(s.gdtr.base);
  h.add(s.gdtr.limit);
  h.add(s.idtr.base);
  h.add(s.idtr.limit);
  h.add(s.ldtr);
  h.add(s.tr);
  for (uint64_t v : {s.cr0, s.cr2, s.cr3, s.cr4, s.cr8, s.xcr0, s.dr6, s.dr7}) h.add(v);
  for (uint64_t v : s.dr) h.add(v);
  const MsrState& m = s.msr;
  for (uint64_t v :
       {m.efer, m.star, m.lstar, m.cstar, m.sfmask, m.kernelGsBase, m.sysenterCs, m.sysenterEsp,
        m.sysenterEip, m.pat, m.apicBase, m.tscAux, m.miscEnable, m.tscAdjust})
    h.add(v);
  const FpuState& f = s.fpu;
  for (uint64_t v : {uint64_t{f.fcw}, uint64_t{f.fsw}, uint64_t{f.ftw}, uint64_t{f.fop}, f.fip,
                     f.fdp, uint64_t{f.fcs}, uint64_t{f.fds}, uint64_t{f.mxcsr}})
    h.add(v);
  for (const Float80& r : f.st) {
    h.add(r.significand);
    h.add(r.signExponent);
  }
  for (const Vec128& x : f.xmm) {
    h.add(x.q[0]);
    h.add(x.q[1]);
  }
  h.add(static_cast<uint64_t>(s.pending.shadow));
  h.add(s.pending.pendingDr6);
  h.add(s.pending.nmiBlocked);
  h.add(s.pending.halted);
  h.add(s.steps);
  return h.value();
}

}  // namespace ttvm
