// Conversions between ttvm's CpuState/CpuModel and <linux/kvm.h>, and the exit
// decoder: pure functions (see kvm_abi.h).
#include "ttvm/kvm/kvm_abi.h"

#include <cstring>

#include "ttvm/base/assert.h"
#include "ttvm/base/hex.h"

namespace ttvm::kvm {

const std::array<OwnedMsr, 12> kOwnedMsrs = {{
    {0x174, &MsrState::sysenterCs, "IA32_SYSENTER_CS"},
    {0x175, &MsrState::sysenterEsp, "IA32_SYSENTER_ESP"},
    {0x176, &MsrState::sysenterEip, "IA32_SYSENTER_EIP"},
    {0x277, &MsrState::pat, "IA32_PAT"},
    {0x1A0, &MsrState::miscEnable, "IA32_MISC_ENABLE"},
    {0x3B, &MsrState::tscAdjust, "IA32_TSC_ADJUST"},
    {0xC0000081, &MsrState::star, "STAR"},
    {0xC0000082, &MsrState::lstar, "LSTAR"},
    {0xC0000083, &MsrState::cstar, "CSTAR"},
    {0xC0000084, &MsrState::sfmask, "SFMASK"},
    {0xC0000102, &MsrState::kernelGsBase, "KERNEL_GS_BASE"},
    {0xC0000103, &MsrState::tscAux, "TSC_AUX"},
}};

kvm_segment toKvmSegment(const SegmentRegister& s) {
  kvm_segment k{};
  k.base = s.base;
  k.limit = s.limit;
  k.selector = s.selector;
  k.type = s.attributes & segattr::kTypeMask;
  k.s = (s.attributes & segattr::kS) != 0;
  k.dpl = (s.attributes >> segattr::kDplShift) & 3;
  k.present = (s.attributes & segattr::kP) != 0;
  k.avl = (s.attributes & segattr::kAvl) != 0;
  k.l = (s.attributes & segattr::kL) != 0;
  k.db = (s.attributes & segattr::kDB) != 0;
  k.g = (s.attributes & segattr::kG) != 0;
  k.unusable = (s.attributes & segattr::kUnusable) != 0;
  return k;
}

SegmentRegister fromKvmSegment(const kvm_segment& k) {
  SegmentRegister s;
  s.base = k.base;
  s.limit = k.limit;
  s.selector = k.selector;
  s.attributes = (k.type & segattr::kTypeMask) | (k.s ? segattr::kS : 0) |
                 (uint32_t(k.dpl & 3) << segattr::kDplShift) | (k.present ? segattr::kP : 0) |
                 (k.avl ? segattr::kAvl : 0) | (k.l ? segattr::kL : 0) | (k.db ? segattr::kDB : 0) |
                 (k.g ? segattr::kG : 0) | (k.unusable ? segattr::kUnusable : 0);
  return s;
}

namespace {

// kvm_regs lists the GPRs in the order rax, rbx, rcx, rdx, rsi, rdi, rsp,
// rbp, r8..r15; CpuState in encoding order.
__u64* kvmGpr(kvm_regs& r, Gpr g) {
  switch (g) {
    case Gpr::kRax: return &r.rax;
    case Gpr::kRcx: return &r.rcx;
    case Gpr::kRdx: return &r.rdx;
    case Gpr::kRbx: return &r.rbx;
    case Gpr::kRsp: return &r.rsp;
    case Gpr::kRbp: return &r.rbp;
    case Gpr::kRsi: return &r.rsi;
    case Gpr::kRdi: return &r.rdi;
    case Gpr::kR8: return &r.r8;
    case Gpr::kR9: return &r.r9;
    case Gpr::kR10: return &r.r10;
    case Gpr::kR11: return &r.r11;
    case Gpr::kR12: return &r.r12;
    case Gpr::kR13: return &r.r13;
    case Gpr::kR14: return &r.r14;
    case Gpr::kR15: return &r.r15;
  }
  TTVM_ASSERT(false, "bad Gpr ", int(g));
  return nullptr;
}

kvm_segment* kvmSeg(kvm_sregs& s, SegReg r) {
  switch (r) {
    case SegReg::kEs: return &s.es;
    case SegReg::kCs: return &s.cs;
    case SegReg::kSs: return &s.ss;
    case SegReg::kDs: return &s.ds;
    case SegReg::kFs: return &s.fs;
    case SegReg::kGs: return &s.gs;
  }
  TTVM_ASSERT(false, "bad SegReg ", int(r));
  return nullptr;
}

unsigned fpuTop(uint16_t fsw) {
  return (fsw >> 11) & 7;
}

}  // namespace

Result<KvmCpuState> toKvm(const CpuState& s) {
  if (s.pending.pendingDr6 != 0)
    return makeError("the CPU state holds a debug trap deferred by a MOV SS shadow (DR6 bits " +
                     hex(s.pending.pendingDr6) + ", rip " + hex(s.rip) +
                     "): KVM has no field for one; step the emulator past the shadow first");
  KvmCpuState k;
  for (int i = 0; i < kNumGprs; ++i) *kvmGpr(k.regs, Gpr(i)) = s.gpr[i];
  k.regs.rip = s.rip;
  k.regs.rflags = s.rflags;

  for (int i = 0; i < kNumSegRegs; ++i) *kvmSeg(k.sregs, SegReg(i)) = toKvmSegment(s.seg[i]);
  k.sregs.tr = toKvmSegment(s.tr);
  k.sregs.ldt = toKvmSegment(s.ldtr);
  k.sregs.gdt.base = s.gdtr.base;
  k.sregs.gdt.limit = s.gdtr.limit;
  k.sregs.idt.base = s.idtr.base;
  k.sregs.idt.limit = s.idtr.limit;
  k.sregs.cr0 = s.cr0;
  k.sregs.cr2 = s.cr2;
  k.sregs.cr3 = s.cr3;
  k.sregs.cr4 = s.cr4;
  k.sregs.cr8 = s.cr8;
  k.sregs.efer = s.msr.efer;
  k.sregs.apic_base = s.msr.apicBase;

  // kvm_fpu is the FXSAVE64 image: ST(i) in stack order, the abridged tag
  // word by physical register.
  const FpuState& f = s.fpu;
  k.fpu.fcw = f.fcw;
  k.fpu.fsw = f.fsw;
  k.fpu.ftwx = f.ftw;
  k.fpu.last_opcode = f.fop;
  k.fpu.last_ip = f.fip;
  k.fpu.last_dp = f.fdp;
  k.fpu.mxcsr = f.mxcsr;
  const unsigned top = fpuTop(f.fsw);
  for (unsigned i = 0; i < 8; ++i) {
    const Float80& r = f.st[(top + i) & 7];
    std::memcpy(&k.fpu.fpr[i][0], &r.significand, 8);
    std::memcpy(&k.fpu.fpr[i][8], &r.signExponent, 2);
  }
  for (unsigned i = 0; i < 16; ++i) std::memcpy(k.fpu.xmm[i], f.xmm[i].q.data(), 16);

  for (unsigned i = 0; i < 4; ++i) k.debugregs.db[i] = s.dr[i];
  k.debugregs.dr6 = s.dr6;
  k.debugregs.dr7 = s.dr7;

  k.xcrs.nr_xcrs = 1;
  k.xcrs.xcrs[0].xcr = 0;
  k.xcrs.xcrs[0].value = s.xcr0;

  for (const OwnedMsr& m : kOwnedMsrs) {
    kvm_msr_entry e{};
    e.index = m.index;
    e.data = s.msr.*m.field;
    k.msrs.push_back(e);
  }

  k.events.flags = KVM_VCPUEVENT_VALID_SHADOW;
  switch (s.pending.shadow) {
    case InterruptShadow::kNone: k.events.interrupt.shadow = 0; break;
    case InterruptShadow::kSti: k.events.interrupt.shadow = KVM_X86_SHADOW_INT_STI; break;
    case InterruptShadow::kMovSs: k.events.interrupt.shadow = KVM_X86_SHADOW_INT_MOV_SS; break;
  }
  k.events.nmi.masked = s.pending.nmiBlocked ? 1 : 0;
  k.halted = s.pending.halted;
  return k;
}

CpuState fromKvm(const KvmCpuState& k) {
  CpuState s;
  kvm_regs regs = k.regs;
  for (int i = 0; i < kNumGprs; ++i) s.gpr[i] = *kvmGpr(regs, Gpr(i));
  s.rip = k.regs.rip;
  s.rflags = k.regs.rflags;

  kvm_sregs sregs = k.sregs;
  for (int i = 0; i < kNumSegRegs; ++i) s.seg[i] = fromKvmSegment(*kvmSeg(sregs, SegReg(i)));
  s.tr = fromKvmSegment(k.sregs.tr);
  s.ldtr = fromKvmSegment(k.sregs.ldt);
  s.gdtr = TableRegister{k.sregs.gdt.base, k.sregs.gdt.limit};
  s.idtr = TableRegister{k.sregs.idt.base, k.sregs.idt.limit};
  s.cr0 = k.sregs.cr0;
  s.cr2 = k.sregs.cr2;
  s.cr3 = k.sregs.cr3;
  s.cr4 = k.sregs.cr4;
  s.cr8 = k.sregs.cr8;
  s.msr.efer = k.sregs.efer;
  s.msr.apicBase = k.sregs.apic_base;

  FpuState& f = s.fpu;
  f.fcw = k.fpu.fcw;
  f.fsw = k.fpu.fsw;
  f.ftw = k.fpu.ftwx;
  f.fop = k.fpu.last_opcode;
  f.fip = k.fpu.last_ip;
  f.fdp = k.fpu.last_dp;
  f.fcs = 0;
  f.fds = 0;
  f.mxcsr = k.fpu.mxcsr;
  const unsigned top = fpuTop(f.fsw);
  for (unsigned i = 0; i < 8; ++i) {
    Float80& r = f.st[(top + i) & 7];
    std::memcpy(&r.significand, &k.fpu.fpr[i][0], 8);
    std::memcpy(&r.signExponent, &k.fpu.fpr[i][8], 2);
  }
  for (unsigned i = 0; i < 16; ++i) std::memcpy(f.xmm[i].q.data(), k.fpu.xmm[i], 16);

  for (unsigned i = 0; i < 4; ++i) s.dr[i] = k.debugregs.db[i];
  s.dr6 = k.debugregs.dr6;
  s.dr7 = k.debugregs.dr7;

  s.xcr0 = 1;
  for (uint32_t i = 0; i < k.xcrs.nr_xcrs && i < KVM_MAX_XCRS; ++i)
    if (k.xcrs.xcrs[i].xcr == 0) s.xcr0 = k.xcrs.xcrs[i].value;

  TTVM_ASSERT_EQ(k.msrs.size(), kOwnedMsrs.size());
  for (size_t i = 0; i < kOwnedMsrs.size(); ++i) {
    TTVM_ASSERT_EQ(k.msrs[i].index, kOwnedMsrs[i].index);
    s.msr.*kOwnedMsrs[i].field = k.msrs[i].data;
  }

  switch (k.events.interrupt.shadow & (KVM_X86_SHADOW_INT_MOV_SS | KVM_X86_SHADOW_INT_STI)) {
    case 0: s.pending.shadow = InterruptShadow::kNone; break;
    case KVM_X86_SHADOW_INT_STI: s.pending.shadow = InterruptShadow::kSti; break;
    // MOV SS blocks everything STI blocks and more: both bits read as MOV SS.
    default: s.pending.shadow = InterruptShadow::kMovSs; break;
  }
  s.pending.nmiBlocked = k.events.nmi.masked != 0;
  s.pending.halted = k.halted;
  s.pending.pendingDr6 = 0;
  s.steps = 0;
  return s;
}

XsaveRegion toXsaveRegion(const kvm_fpu& f) {
  XsaveRegion r{};
  auto* b = reinterpret_cast<uint8_t*>(r.data());
  std::memcpy(b + 0, &f.fcw, 2);
  std::memcpy(b + 2, &f.fsw, 2);
  b[4] = f.ftwx;
  std::memcpy(b + 6, &f.last_opcode, 2);
  std::memcpy(b + 8, &f.last_ip, 8);
  std::memcpy(b + 16, &f.last_dp, 8);
  std::memcpy(b + 24, &f.mxcsr, 4);
  const uint32_t mxcsrMask = 0xFFFF;
  std::memcpy(b + 28, &mxcsrMask, 4);
  for (unsigned i = 0; i < 8; ++i) std::memcpy(b + 32 + 16 * i, f.fpr[i], 16);
  for (unsigned i = 0; i < 16; ++i) std::memcpy(b + 160 + 16 * i, f.xmm[i], 16);
  const uint64_t xstateBv = 0x3;  // x87 | SSE
  std::memcpy(b + 512, &xstateBv, 8);
  return r;
}

kvm_fpu fromXsaveRegion(const XsaveRegion& r) {
  kvm_fpu f{};
  const auto* b = reinterpret_cast<const uint8_t*>(r.data());
  std::memcpy(&f.fcw, b + 0, 2);
  std::memcpy(&f.fsw, b + 2, 2);
  f.ftwx = b[4];
  std::memcpy(&f.last_opcode, b + 6, 2);
  std::memcpy(&f.last_ip, b + 8, 8);
  std::memcpy(&f.last_dp, b + 16, 8);
  std::memcpy(&f.mxcsr, b + 24, 4);
  for (unsigned i = 0; i < 8; ++i) std::memcpy(f.fpr[i], b + 32 + 16 * i, 16);
  for (unsigned i = 0; i < 16; ++i) std::memcpy(f.xmm[i], b + 160 + 16 * i, 16);
  return f;
}

// ---- CPUID -------------------------------------------------------------------

std::vector<kvm_cpuid_entry2> toKvmCpuid(const CpuModel& model) {
  std::vector<kvm_cpuid_entry2> out;
  out.reserve(model.cpuid.size());
  for (const CpuidLeaf& l : model.cpuid) {
    kvm_cpuid_entry2 e{};
    e.function = l.leaf;
    e.index = l.subleafSignificant ? l.subleaf : 0;
    e.flags = l.subleafSignificant ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0;
    e.eax = l.eax;
    e.ebx = l.ebx;
    e.ecx = l.ecx;
    e.edx = l.edx;
    out.push_back(e);
  }
  return out;
}

std::vector<CpuidLeaf> fromKvmCpuid(std::span<const kvm_cpuid_entry2> entries) {
  std::vector<CpuidLeaf> out;
  out.reserve(entries.size());
  for (const kvm_cpuid_entry2& e : entries) {
    CpuidLeaf l;
    l.leaf = e.function;
    l.subleafSignificant = (e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) != 0;
    l.subleaf = l.subleafSignificant ? e.index : 0;
    l.eax = e.eax;
    l.ebx = e.ebx;
    l.ecx = e.ecx;
    l.edx = e.edx;
    out.push_back(l);
  }
  return out;
}

std::string describe(const MissingFeature& f) {
  std::string s = "CPUID." + hex(f.leaf);
  if (f.subleaf != 0 || f.leaf == 7) s += "." + std::to_string(f.subleaf);
  s += ":E";
  s += char(f.reg - 'a' + 'A');
  s += "X[" + std::to_string(f.bit) + "]";
  return s;
}

namespace {

// The registers of a leaf that hold feature flags (a 1 means "the CPU has
// it"): only these are intersected with the host's.
struct FeatureRegs {
  uint32_t leaf, subleaf;
  bool a, b, c, d;
};
constexpr FeatureRegs kFeatureRegs[] = {
    {1, 0, false, false, true, true},
    {7, 0, false, true, true, true},
    {0x80000001u, 0, false, false, true, true},
};

const CpuidLeaf* findLeaf(std::span<const CpuidLeaf> t, uint32_t leaf, uint32_t subleaf) {
  for (const CpuidLeaf& l : t)
    if (l.leaf == leaf && (!l.subleafSignificant || l.subleaf == subleaf)) return &l;
  return nullptr;
}

}  // namespace

CpuModel restrictToHost(const CpuModel& model, std::span<const CpuidLeaf> hostSupported,
                        std::vector<MissingFeature>* removed) {
  CpuModel out = model;
  for (CpuidLeaf& l : out.cpuid) {
    for (const FeatureRegs& fr : kFeatureRegs) {
      if (l.leaf != fr.leaf || (l.subleafSignificant && l.subleaf != fr.subleaf)) continue;
      const CpuidLeaf* host = findLeaf(hostSupported, fr.leaf, fr.subleaf);
      const CpuidLeaf none;
      if (host == nullptr) host = &none;
      auto restrict = [&](bool feature, char reg, uint32_t& mine, uint32_t theirs) {
        if (!feature) return;
        const uint32_t lost = mine & ~theirs;
        for (unsigned bit = 0; bit < 32; ++bit)
          if (lost & (1u << bit) && removed) removed->push_back({l.leaf, fr.subleaf, reg, bit});
        mine &= theirs;
      };
      restrict(fr.a, 'a', l.eax, host->eax);
      restrict(fr.b, 'b', l.ebx, host->ebx);
      restrict(fr.c, 'c', l.ecx, host->ecx);
      restrict(fr.d, 'd', l.edx, host->edx);
    }
  }
  return out;
}

// ---- exits -------------------------------------------------------------------

VcpuExit decodeExit(kvm_run& run, size_t mapSize) {
  VcpuExit e;
  e.rawReason = run.exit_reason;
  auto* page = reinterpret_cast<uint8_t*>(&run);
  switch (run.exit_reason) {
    case KVM_EXIT_IO: {
      e.kind = ExitKind::kIo;
      e.io.port = run.io.port;
      e.io.size = run.io.size;
      e.io.in = run.io.direction == KVM_EXIT_IO_IN;
      e.io.count = run.io.count;
      const uint64_t bytes = uint64_t(run.io.count) * run.io.size;
      TTVM_ASSERT(run.io.data_offset + bytes <= mapSize, "KVM_EXIT_IO data at offset ",
                  run.io.data_offset, " + ", bytes, " bytes outside the ", mapSize,
                  "-byte kvm_run mapping");
      e.io.data = std::span<uint8_t>(page + run.io.data_offset, bytes);
      break;
    }
    case KVM_EXIT_MMIO:
      e.kind = ExitKind::kMmio;
      e.mmio.address = run.mmio.phys_addr;
      e.mmio.write = run.mmio.is_write != 0;
      TTVM_ASSERT(run.mmio.len >= 1 && run.mmio.len <= 8, "KVM_EXIT_MMIO of ", run.mmio.len,
                  " bytes");
      e.mmio.data = std::span<uint8_t>(run.mmio.data, run.mmio.len);
      break;
    case KVM_EXIT_HLT: e.kind = ExitKind::kHlt; break;
    case KVM_EXIT_SHUTDOWN: e.kind = ExitKind::kShutdown; break;
    case KVM_EXIT_DEBUG:
      e.kind = ExitKind::kDebug;
      e.debug.exception = run.debug.arch.exception;
      e.debug.pc = run.debug.arch.pc;
      e.debug.dr6 = run.debug.arch.dr6;
      e.debug.dr7 = run.debug.arch.dr7;
      break;
    case KVM_EXIT_INTERNAL_ERROR: {
      e.kind = ExitKind::kInternalError;
      e.internal.suberror = run.internal.suberror;
      const uint32_t n = std::min<uint32_t>(run.internal.ndata, std::size(run.internal.data));
      e.internal.data.assign(run.internal.data, run.internal.data + n);
      break;
    }
    case KVM_EXIT_FAIL_ENTRY:
      e.kind = ExitKind::kFailEntry;
      e.failEntry.reason = run.fail_entry.hardware_entry_failure_reason;
      e.failEntry.cpu = run.fail_entry.cpu;
      break;
    case KVM_EXIT_INTR: e.kind = ExitKind::kInterrupted; break;
    case KVM_EXIT_IRQ_WINDOW_OPEN: e.kind = ExitKind::kIrqWindowOpen; break;
    case KVM_EXIT_SET_TPR: e.kind = ExitKind::kSetTpr; break;
    case KVM_EXIT_X86_RDMSR:
    case KVM_EXIT_X86_WRMSR:
      e.kind = ExitKind::kMsr;
      e.msr.index = run.msr.index;
      e.msr.write = run.exit_reason == KVM_EXIT_X86_WRMSR;
      e.msr.value = e.msr.write ? run.msr.data : 0;
      e.msr.reason = run.msr.reason;
      break;
    default: e.kind = ExitKind::kOther; break;
  }
  return e;
}

void answerMsrExit(kvm_run& run, std::optional<uint64_t> value) {
  run.msr.error = value ? 0 : 1;
  if (value && run.exit_reason == KVM_EXIT_X86_RDMSR) run.msr.data = *value;
}

// The MSRs whose accesses stay in the kernel: KVM keeps them as architectural
// state that ttvm loads and reads back (kOwnedMsrs, EFER and the APIC base
// in kvm_sregs, FS/GS base in the segments), and handles them as the model
// does. IA32_TSC is written in the kernel (KVM moves its TSC offset and
// IA32_TSC_ADJUST with it) but read in user space.
constexpr MsrFilterRange kInKernelMsrs[] = {
    {0x10, 1, false, true},       // IA32_TSC: write only
    {0x1B, 1, true, true},        // IA32_APIC_BASE
    {0x3B, 1, true, true},        // IA32_TSC_ADJUST
    {0x174, 3, true, true},       // IA32_SYSENTER_CS/ESP/EIP
    {0x1A0, 1, true, true},       // IA32_MISC_ENABLE
    {0x277, 1, true, true},       // IA32_PAT
    {0xC0000080, 5, true, true},  // EFER, STAR, LSTAR, CSTAR, SFMASK
    {0xC0000100, 4, true, true},  // FS_BASE, GS_BASE, KERNEL_GS_BASE, TSC_AUX
};

std::span<const MsrFilterRange> inKernelMsrs() {
  return kInKernelMsrs;
}

KvmMsrFilter::KvmMsrFilter(std::span<const MsrFilterRange> allowed) {
  TTVM_ASSERT(allowed.size() <= KVM_MSR_FILTER_MAX_RANGES, "too many MSR filter ranges");
  filter_.flags = KVM_MSR_FILTER_DEFAULT_DENY;
  bitmaps_.reserve(allowed.size());
  for (size_t i = 0; i < allowed.size(); ++i) {
    const MsrFilterRange& a = allowed[i];
    // One bit per MSR, 1 = allowed (handled by KVM); every MSR of the range is.
    bitmaps_.emplace_back((a.count + 7) / 8, uint8_t{0});
    for (uint32_t k = 0; k < a.count; ++k) bitmaps_.back()[k / 8] |= uint8_t(1u << (k % 8));
    kvm_msr_filter_range& r = filter_.ranges[i];
    r.flags = (a.read ? KVM_MSR_FILTER_READ : 0) | (a.write ? KVM_MSR_FILTER_WRITE : 0);
    r.nmsrs = a.count;
    r.base = a.base;
    r.bitmap = bitmaps_.back().data();
  }
}

bool msrFilterAllows(const kvm_msr_filter& f, uint32_t index, bool write) {
  // x2APIC MSRs are never filtered (KVM's kvm_msr_allowed).
  if (index >= 0x800 && index <= 0x8FF) return true;
  const uint32_t type = write ? KVM_MSR_FILTER_WRITE : KVM_MSR_FILTER_READ;
  for (const kvm_msr_filter_range& r : f.ranges) {
    if (r.bitmap == nullptr || !(r.flags & type)) continue;
    if (index >= r.base && index - r.base < r.nmsrs)
      return (r.bitmap[(index - r.base) / 8] >> ((index - r.base) % 8)) & 1;
  }
  return !(f.flags & KVM_MSR_FILTER_DEFAULT_DENY);
}

std::string describe(const VcpuExit& e) {
  switch (e.kind) {
    case ExitKind::kIo:
      return std::string("io ") + (e.io.in ? "in" : "out") + " port " + hex(e.io.port) + " size " +
             std::to_string(e.io.size) + " count " + std::to_string(e.io.count);
    case ExitKind::kMmio:
      return std::string("mmio ") + (e.mmio.write ? "write" : "read") + " " + hex(e.mmio.address) +
             " size " + std::to_string(e.mmio.data.size());
    case ExitKind::kHlt: return "hlt";
    case ExitKind::kShutdown: return "shutdown";
    case ExitKind::kDebug:
      return "debug exception " + std::to_string(e.debug.exception) + " at " + hex(e.debug.pc) +
             " dr6 " + hex(e.debug.dr6);
    case ExitKind::kInternalError: {
      std::string s = "internal error, suberror " + std::to_string(e.internal.suberror);
      for (uint64_t d : e.internal.data) s += " " + hex(d);
      return s;
    }
    case ExitKind::kFailEntry:
      return "VM entry failed, hardware reason " + hex(e.failEntry.reason) + " on host CPU " +
             std::to_string(e.failEntry.cpu);
    case ExitKind::kInterrupted: return "interrupted (kick)";
    case ExitKind::kIrqWindowOpen: return "interrupt window open";
    case ExitKind::kSetTpr: return "CR8 lowered";
    case ExitKind::kMsr:
      return std::string(e.msr.write ? "wrmsr " : "rdmsr ") + hex(e.msr.index) +
             (e.msr.write ? " value " + hex(e.msr.value) : std::string()) + " (" +
             (e.msr.reason == KVM_MSR_EXIT_REASON_FILTER    ? "filter"
              : e.msr.reason == KVM_MSR_EXIT_REASON_UNKNOWN ? "unknown to KVM"
                                                            : "refused by KVM") +
             ")";
    case ExitKind::kOther: return "exit reason " + std::to_string(e.rawReason);
  }
  return "exit reason " + std::to_string(e.rawReason);
}

}  // namespace ttvm::kvm
