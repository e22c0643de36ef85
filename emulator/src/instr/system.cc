// System instructions: CLI/STI/HLT, CPUID, RDTSC/RDTSCP/RDRAND/RDSEED,
// RDMSR/WRMSR, SYSCALL/SYSRET, SYSENTER/SYSEXIT, SWAPGS, descriptor-table
// registers (LGDT..STR), LAR/LSL/VERR/VERW, MOV CRn/DRn, CLTS/LMSW/SMSW,
// INVLPG, WBINVD/INVD, IN/OUT, STAC/CLAC, ARPL.
#include "exec/handler_table.h"
#include "exec/internals.h"
#include "instr/handlers.h"

namespace ttvm {

namespace {

int iopl(CpuImpl& c) {
  return static_cast<int>((c.rflags() >> 12) & 3);
}

ExecStatus cli(CpuImpl& c, const Instr&) {
  if (c.protectedMode() && c.cpl() > iopl(c)) return c.raiseGp(0);
  c.rflags() &= ~flags::kIF;
  return ExecStatus::kNext;
}

ExecStatus sti(CpuImpl& c, const Instr&) {
  if (c.protectedMode() && c.cpl() > iopl(c)) return c.raiseGp(0);
  if (!(c.rflags() & flags::kIF)) {
    c.rflags() |= flags::kIF;
    c.state().pending.shadow = InterruptShadow::kSti;
  }
  return ExecStatus::kNext;
}

ExecStatus hlt(CpuImpl& c, const Instr&) {
  TTVM_RETURN_ON_FAULT(requireCpl0(c));
  return ExecStatus::kHalt;
}

ExecStatus cpuid(CpuImpl& c, const Instr&) {
  const CpuidLeaf l = c.model().lookup(static_cast<uint32_t>(c.gpr(Gpr::kRax)),
                                       static_cast<uint32_t>(c.gpr(Gpr::kRcx)));
  uint32_t ecx = l.ecx, edx = l.edx;
  (void)edx;
  if (l.leaf == 1) {
    // OSXSAVE mirrors CR4 (not advertised); APIC flag follows IA32_APIC_BASE.EN.
    if (!(c.state().msr.apicBase & apicbase::kEnabled)) edx &= ~(1u << 9);
  }
  c.writeGpr<uint32_t>(0, l.eax);
  c.writeGpr<uint32_t>(3, l.ebx);
  c.writeGpr<uint32_t>(1, ecx);
  c.writeGpr<uint32_t>(2, edx);
  return ExecStatus::kNext;
}

uint64_t readTsc(CpuImpl& c) {
  return c.env().readTsc() + c.state().msr.tscAdjust;
}

ExecStatus rdtsc(CpuImpl& c, const Instr&) {
  if ((c.state().cr4 & cr4::kTSD) && c.cpl() != 0) return c.raiseGp(0);
  const uint64_t t = readTsc(c);
  c.writeGpr<uint32_t>(0, static_cast<uint32_t>(t));
  c.writeGpr<uint32_t>(2, static_cast<uint32_t>(t >> 32));
  return ExecStatus::kNext;
}

ExecStatus rdtscp(CpuImpl& c, const Instr& i) {
  // #UD where the model lacks RDTSCP (CPUID.80000001H:EDX[27]), as under
  // KVM, which turns the instruction off with the guest's CPUID.
  if (!(c.model().lookup(0x80000001u, 0).edx & (1u << 27))) return c.raiseUd();
  TTVM_RETURN_ON_FAULT(rdtsc(c, i) == ExecStatus::kNext);
  c.writeGpr<uint32_t>(1, static_cast<uint32_t>(c.state().msr.tscAux));
  return ExecStatus::kNext;
}

ExecStatus rdrand(CpuImpl& c, const Instr& i) {
  const std::optional<uint64_t> v = c.env().readRandom(i.opSize);
  c.writeGprSized(i.op[0].reg, i.opSize, v ? *v : 0);
  c.setArithFlags(flags::kArith, v ? flags::kCF : 0);
  return ExecStatus::kNext;
}

namespace msr {
constexpr uint32_t kTsc = 0x10, kApicBase = 0x1B, kTscAdjust = 0x3B, kSysenterCs = 0x174,
                   kSysenterEsp = 0x175, kSysenterEip = 0x176, kMiscEnable = 0x1A0, kPat = 0x277,
                   kEfer = 0xC0000080, kStar = 0xC0000081, kLstar = 0xC0000082, kCstar = 0xC0000083,
                   kSfmask = 0xC0000084, kFsBase = 0xC0000100, kGsBase = 0xC0000101,
                   kKernelGsBase = 0xC0000102, kTscAux = 0xC0000103, kMcgCap = 0x179,
                   kMcgStatus = 0x17A, kBiosSignId = 0x8B, kPlatformId = 0x17;
}  // namespace msr

// The microcode update revision IA32_BIOS_SIGN_ID (0x8b) reports in bits
// 63:32: the last public revision for the family 6 model 0x3a stepping 9
// that CpuModel::ttvmDefault() names. Like KVM, ttvm keeps it constant: the
// guest's WRMSR of 0 before CPUID(1) (the SDM's way to ask for a fresh
// signature) is accepted and changes nothing.
constexpr uint32_t kMicrocodeRevision = 0x21;

ExecStatus rdmsr(CpuImpl& c, const Instr&) {
  TTVM_RETURN_ON_FAULT(requireCpl0(c));
  const uint32_t idx = static_cast<uint32_t>(c.gpr(Gpr::kRcx));
  MsrState& m = c.state().msr;
  uint64_t v;
  switch (idx) {
    case msr::kTsc: v = readTsc(c); break;
    case msr::kApicBase: v = m.apicBase; break;
    case msr::kTscAdjust: v = m.tscAdjust; break;
    case msr::kSysenterCs: v = m.sysenterCs; break;
    case msr::kSysenterEsp: v = m.sysenterEsp; break;
    case msr::kSysenterEip: v = m.sysenterEip; break;
    case msr::kMiscEnable: v = m.miscEnable; break;
    case msr::kPat: v = m.pat; break;
    case msr::kEfer: v = m.efer; break;
    case msr::kStar: v = m.star; break;
    case msr::kLstar: v = m.lstar; break;
    case msr::kCstar: v = m.cstar; break;
    case msr::kSfmask: v = m.sfmask; break;
    case msr::kFsBase: v = c.state().seg[4].base; break;
    case msr::kGsBase: v = c.state().seg[5].base; break;
    case msr::kKernelGsBase: v = m.kernelGsBase; break;
    case msr::kTscAux: v = m.tscAux; break;
    // Machine check: no banks, no MCG_CTL, nothing ever logged. Kernels read
    // MCG_CAP without expecting #GP (KVM always answers it); MC0..MC31 and
    // MCG_CTL stay #GP.
    case msr::kMcgCap:
    case msr::kMcgStatus: v = 0; break;
    // The microcode signature (SDM vol. 3 "Microcode Update Signature"):
    // the revision in bits 63:32, bits 31:0 reserved (zero).
    case msr::kBiosSignId: v = uint64_t{kMicrocodeRevision} << 32; break;
    // IA32_PLATFORM_ID (read-only): platform ID 0 in bits 52:50, the rest
    // reserved; Linux's microcode driver reads it unguarded on family 6.
    case msr::kPlatformId: v = 0; break;
    default: {
      const std::optional<uint64_t> e = c.env().readMsr(idx);
      if (!e) return c.raiseGp(0);
      v = *e;
    }
  }
  c.writeGpr<uint32_t>(0, static_cast<uint32_t>(v));
  c.writeGpr<uint32_t>(2, static_cast<uint32_t>(v >> 32));
  return ExecStatus::kNext;
}

ExecStatus wrmsr(CpuImpl& c, const Instr&) {
  TTVM_RETURN_ON_FAULT(requireCpl0(c));
  const uint32_t idx = static_cast<uint32_t>(c.gpr(Gpr::kRcx));
  const uint64_t v = (c.gpr(Gpr::kRdx) & 0xFFFFFFFF) << 32 | (c.gpr(Gpr::kRax) & 0xFFFFFFFF);
  MsrState& m = c.state().msr;
  auto canonical = [&](uint64_t& dst) {
    if (!CpuImpl::isCanonical(v)) return c.raiseGp(0);
    dst = v;
    return ExecStatus::kNext;
  };
  switch (idx) {
    case msr::kTsc: m.tscAdjust = v - c.env().readTsc(); return ExecStatus::kNext;
    case msr::kApicBase: {
      // Valid bits: BSP (8, read-only), EXTD (10), EN (11), base (12..39).
      if (v & ~0xFFFFFFFD00ull) return c.raiseGp(0);
      const bool extd = v & apicbase::kX2apic, en = v & apicbase::kEnabled;
      const bool wasX2 = (m.apicBase & apicbase::kX2apic) && (m.apicBase & apicbase::kEnabled);
      const bool wasEnabled = m.apicBase & apicbase::kEnabled;
      if (extd && !en) return c.raiseGp(0);           // x2APIC needs the APIC enabled
      if (wasX2 && en && !extd) return c.raiseGp(0);  // x2APIC -> xAPIC is invalid
      // disabled -> x2APIC is invalid too: x2APIC is entered from xAPIC mode
      // (SDM vol. 3 "x2APIC State Transitions"; KVM refuses it the same way).
      if (!wasEnabled && extd) return c.raiseGp(0);
      // EXTD is reserved where the model lacks x2APIC (CPUID.1:ECX[21]).
      if (extd && !(c.model().lookup(1, 0).ecx & (1u << 21))) return c.raiseGp(0);
      m.apicBase = (v & 0xFFFFFFFC00ull) | (m.apicBase & 0x100);
      return ExecStatus::kNext;
    }
    case msr::kTscAdjust: m.tscAdjust = v; return ExecStatus::kNext;
    case msr::kSysenterCs: m.sysenterCs = v & 0xFFFF; return ExecStatus::kNext;
    case msr::kSysenterEsp: return canonical(m.sysenterEsp);
    case msr::kSysenterEip: return canonical(m.sysenterEip);
    case msr::kMiscEnable: m.miscEnable = v; return ExecStatus::kNext;
    case msr::kPat:
      for (int k = 0; k < 8; ++k) {
        const unsigned t = (v >> (8 * k)) & 0xFF;
        if (t == 2 || t == 3 || t > 7) return c.raiseGp(0);
      }
      m.pat = v;
      return ExecStatus::kNext;
    case msr::kEfer: TTVM_RETURN_ON_FAULT(c.writeEfer(v)); return ExecStatus::kNext;
    case msr::kStar: m.star = v; return ExecStatus::kNext;
    case msr::kLstar: return canonical(m.lstar);
    case msr::kCstar: return canonical(m.cstar);
    case msr::kSfmask: m.sfmask = v & 0xFFFFFFFF; return ExecStatus::kNext;
    case msr::kFsBase: return canonical(c.state().seg[4].base);
    case msr::kGsBase: return canonical(c.state().seg[5].base);
    case msr::kKernelGsBase: return canonical(m.kernelGsBase);
    case msr::kTscAux: m.tscAux = v & 0xFFFFFFFF; return ExecStatus::kNext;
    case msr::kMcgCap:
      return c.raiseGp(0);  // read-only
    // Writing 0 asks CPUID(1) to load the signature afresh; the revision is
    // constant here, so any write is accepted and changes nothing (as KVM).
    case msr::kBiosSignId: return ExecStatus::kNext;
    case msr::kPlatformId: return c.raiseGp(0);  // read-only
    case msr::kMcgStatus:
      // Nothing to clear: only 0 (what a handler writes back) is accepted.
      if (v != 0) return c.raiseGp(0);
      return ExecStatus::kNext;
    default:
      if (!c.env().writeMsr(idx, v)) return c.raiseGp(0);
      // The x2APIC TPR is CR8 (TPR[7:4]), as through the xAPIC page.
      if (idx == apicbase::kTprMsr && (m.apicBase & apicbase::kX2apic))
        c.state().cr8 = (v >> 4) & 0xF;
      return ExecStatus::kNext;
  }
}

// Flat segments loaded by SYSCALL/SYSRET/SYSENTER/SYSEXIT (fixed caches).
SegmentRegister flatCode(uint16_t sel, int dpl, bool long64) {
  uint32_t attr = 0x9B | (static_cast<uint32_t>(dpl) << 5) | segattr::kG;
  attr |= long64 ? segattr::kL : segattr::kDB;
  return SegmentRegister{sel, 0, 0xFFFFFFFF, attr};
}
SegmentRegister flatData(uint16_t sel, int dpl) {
  return SegmentRegister{sel, 0, 0xFFFFFFFF,
                         0x93 | (static_cast<uint32_t>(dpl) << 5) | segattr::kG | segattr::kDB};
}

ExecStatus syscall(CpuImpl& c, const Instr& i) {
  CpuState& s = c.state();
  if (!(s.msr.efer & efer::kSCE) || !c.is64()) return c.raiseUd();
  s.gpr[1] = c.nextRip(i);
  s.gpr[11] = s.rflags & ~flags::kRF;
  const uint16_t sel = static_cast<uint16_t>(s.msr.star >> 32) & 0xFFFC;
  s.seg[1] = flatCode(sel, 0, true);
  s.seg[2] = flatData(static_cast<uint16_t>(sel + 8), 0);
  s.rflags = (s.rflags & ~s.msr.sfmask & ~flags::kRF) | flags::kFixed1;
  s.rip = s.msr.lstar;
  c.updateMode();
  return ExecStatus::kJumped;
}

// SYSRET as the AMD APM defines it (CpuModel::sysretSkipsRipCheckAndSsCache;
// APM vol. 3 "SYSRET"): valid in any protected mode at CPL 0; RCX loaded
// unchecked, so a non-canonical one faults on the fetch after the return, at
// CPL 3; SS's selector loaded and its base, limit and attributes kept (an
// unusable SS stays unusable), with the DPL of the CPL, as KVM reports it.
ExecStatus sysretApm(CpuImpl& c, const Instr& i) {
  CpuState& s = c.state();
  if (!(s.msr.efer & efer::kSCE)) return c.raiseUd();
  if (!c.protectedMode() || c.cpl() != 0) return c.raiseGp(0);
  const uint16_t base = static_cast<uint16_t>(s.msr.star >> 48);
  if (c.is64() && i.opSize == 8) {
    s.seg[1] = flatCode(static_cast<uint16_t>((base + 16) | 3), 3, true);
    s.rip = s.gpr[1];
    s.rflags = (s.gpr[11] & 0x3C7FD7) | flags::kFixed1;
  } else {
    s.seg[1] = flatCode(static_cast<uint16_t>(base | 3), 3, false);
    s.rip = s.gpr[1] & 0xFFFFFFFF;
    if (c.is64())
      s.rflags = (s.gpr[11] & 0x3C7FD7) | flags::kFixed1;
    else
      s.rflags |= flags::kIF;  // legacy or compatibility mode: only IF changes
  }
  SegmentRegister& ss = s.seg[2];
  ss.selector = static_cast<uint16_t>((base + 8) | 3);
  ss.attributes = (ss.attributes & ~(3u << segattr::kDplShift)) | (3u << segattr::kDplShift);
  c.updateMode();
  return ExecStatus::kJumped;
}

ExecStatus sysret(CpuImpl& c, const Instr& i) {
  if (c.model().sysretSkipsRipCheckAndSsCache) return sysretApm(c, i);
  CpuState& s = c.state();
  if (!(s.msr.efer & efer::kSCE) || !c.is64()) return c.raiseUd();
  if (c.cpl() != 0) return c.raiseGp(0);
  const bool to64 = i.opSize == 8;
  if (to64 && !CpuImpl::isCanonical(s.gpr[1])) return c.raiseGp(0);
  const uint16_t base = static_cast<uint16_t>(s.msr.star >> 48);
  if (to64) {
    s.seg[1] = flatCode(static_cast<uint16_t>((base + 16) | 3), 3, true);
    s.rip = s.gpr[1];
  } else {
    s.seg[1] = flatCode(static_cast<uint16_t>(base | 3), 3, false);
    s.rip = s.gpr[1] & 0xFFFFFFFF;
  }
  // SS keeps Intel's fixed cache; the selector comes from STAR.
  s.seg[2] = flatData(static_cast<uint16_t>((base + 8) | 3), 3);
  s.rflags = (s.gpr[11] & 0x3C7FD7) | flags::kFixed1;
  c.updateMode();
  return ExecStatus::kJumped;
}

ExecStatus sysenter(CpuImpl& c, const Instr&) {
  CpuState& s = c.state();
  if (!c.protectedMode()) return c.raiseGp(0);
  const uint16_t sel = static_cast<uint16_t>(s.msr.sysenterCs) & 0xFFFC;
  if (sel == 0) return c.raiseGp(0);
  s.rflags &= ~(flags::kVM | flags::kIF | flags::kRF);
  const bool lm = c.longMode();
  s.seg[1] = flatCode(sel, 0, lm);
  s.seg[2] = flatData(static_cast<uint16_t>(sel + 8), 0);
  s.gpr[4] = lm ? s.msr.sysenterEsp : (s.msr.sysenterEsp & 0xFFFFFFFF);
  s.rip = lm ? s.msr.sysenterEip : (s.msr.sysenterEip & 0xFFFFFFFF);
  c.updateMode();
  return ExecStatus::kJumped;
}

ExecStatus sysexit(CpuImpl& c, const Instr& i) {
  CpuState& s = c.state();
  if (!c.protectedMode() || c.v86()) return c.raiseGp(0);
  if (c.cpl() != 0) return c.raiseGp(0);
  const uint16_t sel = static_cast<uint16_t>(s.msr.sysenterCs) & 0xFFFC;
  if (sel == 0) return c.raiseGp(0);
  if (i.opSize == 8) {
    if (!CpuImpl::isCanonical(s.gpr[2]) || !CpuImpl::isCanonical(s.gpr[1])) return c.raiseGp(0);
    s.seg[1] = flatCode(static_cast<uint16_t>((sel + 32) | 3), 3, true);
    s.seg[2] = flatData(static_cast<uint16_t>((sel + 40) | 3), 3);
    s.rip = s.gpr[2];
    s.gpr[4] = s.gpr[1];
  } else {
    s.seg[1] = flatCode(static_cast<uint16_t>((sel + 16) | 3), 3, false);
    s.seg[2] = flatData(static_cast<uint16_t>((sel + 24) | 3), 3);
    s.rip = s.gpr[2] & 0xFFFFFFFF;
    s.gpr[4] = s.gpr[1] & 0xFFFFFFFF;
  }
  c.updateMode();
  return ExecStatus::kJumped;
}

ExecStatus swapgs(CpuImpl& c, const Instr&) {
  if (!c.is64()) return c.raiseUd();
  TTVM_RETURN_ON_FAULT(requireCpl0(c));
  std::swap(c.state().seg[5].base, c.state().msr.kernelGsBase);
  return ExecStatus::kNext;
}

// --------------------------------------------------- descriptor tables

bool umipBlocks(CpuImpl& c) {
  if ((c.state().cr4 & cr4::kUMIP) && c.cpl() > 0) return c.fault(vec::kGP, 0);
  return true;
}

template <bool idt>
ExecStatus lgdt(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(requireCpl0(c));
  const uint64_t ea = c.effectiveAddress(i);
  uint16_t limit;
  uint64_t base = 0;
  TTVM_RETURN_ON_FAULT(c.readMem<uint16_t>(i.mem.seg, ea, limit));
  TTVM_RETURN_ON_FAULT(
      c.readMemBlock(i.mem.seg, CpuImpl::truncAddr(ea + 2, i.addrSize), &base, c.is64() ? 8 : 4));
  if (c.is64() && !CpuImpl::isCanonical(base)) return c.raiseGp(0);
  if (!c.is64() && i.opSize == 2) base &= 0xFFFFFF;
  TableRegister& t = idt ? c.state().idtr : c.state().gdtr;
  t.base = base;
  t.limit = limit;
  return ExecStatus::kNext;
}

template <bool idt>
ExecStatus sgdt(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(umipBlocks(c));
  const TableRegister& t = idt ? c.state().idtr : c.state().gdtr;
  uint8_t buf[10];
  std::memcpy(buf, &t.limit, 2);
  std::memcpy(buf + 2, &t.base, 8);
  TTVM_RETURN_ON_FAULT(c.writeMemBlock(i.mem.seg, c.effectiveAddress(i), buf, c.is64() ? 10 : 6));
  return ExecStatus::kNext;
}

bool requireProtected(CpuImpl& c) {
  if (!c.protectedMode() || c.v86()) return c.fault(vec::kUD);
  return true;
}

// In IA-32e mode LDT and TSS descriptors are 16 bytes: adds bits 63:32 of
// the base from the upper half to `d`. A base that is not canonical is
// #GP(selector) (SDM Vol. 2 LLDT/LTR, "64-Bit Mode Exceptions").
bool addSystemDescriptorHigh(CpuImpl& c, uint16_t sel, SegmentRegister& d) {
  uint64_t high;
  if (!c.readLinear<uint64_t>(c.state().gdtr.base + (sel & ~7u) + 8, high, true)) return false;
  d.base |= (high & 0xFFFFFFFF) << 32;
  if (!CpuImpl::isCanonical(d.base)) return c.fault(vec::kGP, sel & ~3u);
  return true;
}

ExecStatus lldt(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(requireProtected(c));
  TTVM_RETURN_ON_FAULT(requireCpl0(c));
  uint16_t sel;
  TTVM_RETURN_ON_FAULT(c.readOp<uint16_t>(i, 0, sel));
  CpuState& s = c.state();
  if ((sel & ~3u) == 0) {
    s.ldtr = SegmentRegister{sel, 0, 0, segattr::kUnusable};
    return ExecStatus::kNext;
  }
  if (sel & 4) return c.raiseGp(sel & ~3u);
  if ((sel & ~7u) + (c.longMode() ? 15u : 7u) > s.gdtr.limit) return c.raiseGp(sel & ~3u);
  uint64_t raw;
  TTVM_RETURN_ON_FAULT(c.readDescriptor(sel, raw));
  SegmentRegister d = CpuImpl::descriptorToCache(sel, raw);
  if ((d.attributes & 0x1F) != 0x02) return c.raiseGp(sel & ~3u);
  if (!(d.attributes & segattr::kP)) return c.raiseNp(sel & ~3u);
  if (c.longMode()) TTVM_RETURN_ON_FAULT(addSystemDescriptorHigh(c, sel, d));
  s.ldtr = d;
  return ExecStatus::kNext;
}

ExecStatus ltr(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(requireProtected(c));
  TTVM_RETURN_ON_FAULT(requireCpl0(c));
  uint16_t sel;
  TTVM_RETURN_ON_FAULT(c.readOp<uint16_t>(i, 0, sel));
  CpuState& s = c.state();
  if ((sel & ~3u) == 0) return c.raiseGp(0);
  if (sel & 4) return c.raiseGp(sel & ~3u);
  if ((sel & ~7u) + (c.longMode() ? 15u : 7u) > s.gdtr.limit) return c.raiseGp(sel & ~3u);
  uint64_t raw;
  TTVM_RETURN_ON_FAULT(c.readDescriptor(sel, raw));
  SegmentRegister d = CpuImpl::descriptorToCache(sel, raw);
  const uint32_t type = d.attributes & 0x1F;
  const bool ok = c.longMode() ? type == 0x09 : (type == 0x09 || type == 0x01);
  if (!ok) return c.raiseGp(sel & ~3u);
  if (!(d.attributes & segattr::kP)) return c.raiseNp(sel & ~3u);
  if (c.longMode()) TTVM_RETURN_ON_FAULT(addSystemDescriptorHigh(c, sel, d));
  // Mark busy in the GDT and in the cache.
  const uint8_t typeByte = static_cast<uint8_t>((raw >> 40) | 2);
  TTVM_RETURN_ON_FAULT(c.writeLinear<uint8_t>(s.gdtr.base + (sel & ~7u) + 5, typeByte, true));
  d.attributes |= 2;
  s.tr = d;
  return ExecStatus::kNext;
}

template <bool tr>
ExecStatus sldt(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(requireProtected(c));
  TTVM_RETURN_ON_FAULT(umipBlocks(c));
  const uint16_t sel = tr ? c.state().tr.selector : c.state().ldtr.selector;
  if (i.op[0].kind == OpKind::kMem) {
    TTVM_RETURN_ON_FAULT(c.writeMem<uint16_t>(i.mem.seg, c.effectiveAddress(i), sel));
  } else {
    c.writeGprSized(i.op[0].reg, i.opSize, sel);
  }
  return ExecStatus::kNext;
}

enum class Check { kLar, kLsl, kVerr, kVerw };

template <Check k>
ExecStatus segCheckInstr(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(requireProtected(c));
  uint16_t sel;
  TTVM_RETURN_ON_FAULT(c.readOp<uint16_t>(i, k == Check::kLar || k == Check::kLsl ? 1 : 0, sel));
  auto fail = [&] {
    c.rflags() &= ~flags::kZF;
    return ExecStatus::kNext;
  };
  if ((sel & ~3u) == 0) return fail();
  const CpuState& s = c.state();
  const uint32_t tableLimit = (sel & 4) ? s.ldtr.limit : s.gdtr.limit;
  if ((sel & 4) && (s.ldtr.attributes & segattr::kUnusable)) return fail();
  if ((sel & ~7u) + 7 > tableLimit) return fail();
  uint64_t raw;
  TTVM_RETURN_ON_FAULT(c.readDescriptor(sel, raw));
  const SegmentRegister d = CpuImpl::descriptorToCache(sel, raw);
  const uint32_t type = d.attributes & 0xF;
  const bool system = !(d.attributes & segattr::kS);
  const bool code = !system && (type & 8);
  const bool conforming = code && (type & 4);
  const int dpl = (d.attributes >> 5) & 3;
  const int rpl = sel & 3;
  if (!conforming && (dpl < c.cpl() || dpl < rpl)) return fail();
  if (system) {
    if (k == Check::kVerr || k == Check::kVerw) return fail();
    bool valid;
    if (c.longMode())
      valid = type == 2 || type == 9 || type == 0xB || (k == Check::kLar && type == 0xC);
    else
      valid = type == 1 || type == 2 || type == 3 || type == 9 || type == 0xB ||
              (k == Check::kLar && (type == 4 || type == 5 || type == 0xC));
    if (!valid) return fail();
  }
  switch (k) {
    case Check::kLar:
      c.writeGprSized(i.op[0].reg, i.opSize, (raw >> 32) & (i.opSize == 2 ? 0xFF00 : 0xF0FF00));
      break;
    case Check::kLsl: c.writeGprSized(i.op[0].reg, i.opSize, d.limit); break;
    case Check::kVerr:
      if (system || (code && !(type & 2))) return fail();
      break;
    case Check::kVerw:
      if (system || code || !(type & 2)) return fail();
      break;
  }
  c.rflags() |= flags::kZF;
  return ExecStatus::kNext;
}

ExecStatus clts(CpuImpl& c, const Instr&) {
  TTVM_RETURN_ON_FAULT(requireCpl0(c));
  c.state().cr0 &= ~cr0::kTS;
  return ExecStatus::kNext;
}

ExecStatus lmsw(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(requireCpl0(c));
  uint16_t v;
  TTVM_RETURN_ON_FAULT(c.readOp<uint16_t>(i, 0, v));
  const uint64_t cr0 = c.state().cr0;
  // PE can be set but not cleared; MP, EM, TS are loaded.
  const uint64_t nv = (cr0 & ~0xEull) | (v & 0xF) | (cr0 & cr0::kPE);
  TTVM_RETURN_ON_FAULT(c.writeCr0(nv));
  return ExecStatus::kNext;
}

ExecStatus smsw(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(umipBlocks(c));
  const uint64_t cr0 = c.state().cr0;
  if (i.op[0].kind == OpKind::kMem) {
    TTVM_RETURN_ON_FAULT(
        c.writeMem<uint16_t>(i.mem.seg, c.effectiveAddress(i), static_cast<uint16_t>(cr0)));
  } else {
    c.writeGprSized(i.op[0].reg, i.opSize, i.opSize == 2 ? (cr0 & 0xFFFF) : cr0);
  }
  return ExecStatus::kNext;
}

ExecStatus invlpg(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(requireCpl0(c));
  uint64_t ea = c.effectiveAddress(i);
  uint64_t lin = c.is64() ? ea + (i.mem.seg >= 4 ? c.state().seg[i.mem.seg].base : 0)
                          : ((c.state().seg[i.mem.seg].base + ea) & 0xFFFFFFFF);
  c.invalidatePage(lin);
  return ExecStatus::kNext;
}

ExecStatus wbinvd(CpuImpl& c, const Instr&) {
  TTVM_RETURN_ON_FAULT(requireCpl0(c));
  return ExecStatus::kNext;
}

ExecStatus in(CpuImpl& c, const Instr& i) {
  const uint16_t port = i.op[1].kind == OpKind::kImm ? static_cast<uint16_t>(i.imm & 0xFF)
                                                     : static_cast<uint16_t>(c.gpr(Gpr::kRdx));
  const unsigned size = i.op[0].size;
  TTVM_RETURN_ON_FAULT(c.ioPermitted(port, size));
  const uint32_t v = c.env().portIn(port, size);
  c.debugIoAccess(port, size);
  c.writeGprSized(0, size, v);
  return ExecStatus::kNext;
}

ExecStatus out(CpuImpl& c, const Instr& i) {
  const uint16_t port = i.op[0].kind == OpKind::kImm ? static_cast<uint16_t>(i.imm & 0xFF)
                                                     : static_cast<uint16_t>(c.gpr(Gpr::kRdx));
  const unsigned size = i.op[1].size;
  TTVM_RETURN_ON_FAULT(c.ioPermitted(port, size));
  c.env().portOut(port, size, static_cast<uint32_t>(c.readGprSized(0, size)));
  c.debugIoAccess(port, size);
  return ExecStatus::kNext;
}

template <bool set>
ExecStatus stac(CpuImpl& c, const Instr&) {
  if (c.cpl() != 0) return c.raiseUd();
  if (set)
    c.rflags() |= flags::kAC;
  else
    c.rflags() &= ~flags::kAC;
  return ExecStatus::kNext;
}

ExecStatus arpl(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(requireProtected(c));
  uint16_t dst, src;
  TTVM_RETURN_ON_FAULT(c.readOp<uint16_t>(i, 0, dst));
  TTVM_RETURN_ON_FAULT(c.readOp<uint16_t>(i, 1, src));
  if ((dst & 3) < (src & 3)) {
    TTVM_RETURN_ON_FAULT(c.writeOp<uint16_t>(i, 0, static_cast<uint16_t>((dst & ~3u) | (src & 3))));
    c.rflags() |= flags::kZF;
  } else {
    c.rflags() &= ~flags::kZF;
  }
  return ExecStatus::kNext;
}

}  // namespace

ExecStatus handleMovCr(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(requireCpl0(c));
  const bool toCr = i.op[0].kind == OpKind::kCr;
  const unsigned n = toCr ? i.op[0].reg : i.op[1].reg;
  if (n == 1 || (n > 4 && n != 8) || (n == 8 && !c.is64())) return c.raiseUd();
  const uint8_t gpr = toCr ? i.op[1].reg : i.op[0].reg;
  CpuState& s = c.state();
  if (!toCr) {
    uint64_t v = 0;
    switch (n) {
      case 0: v = s.cr0; break;
      case 2: v = s.cr2; break;
      case 3: v = s.cr3; break;
      case 4: v = s.cr4; break;
      case 8: v = s.cr8; break;
    }
    if (c.is64())
      c.writeGpr<uint64_t>(gpr, v);
    else
      c.writeGpr<uint32_t>(gpr, static_cast<uint32_t>(v));
    return ExecStatus::kNext;
  }
  const uint64_t v = c.is64() ? c.readGpr<uint64_t>(gpr) : c.readGpr<uint32_t>(gpr);
  switch (n) {
    case 0: TTVM_RETURN_ON_FAULT(c.writeCr0(v)); break;
    case 2: s.cr2 = v; break;
    case 3: TTVM_RETURN_ON_FAULT(c.writeCr3(v)); break;
    case 4: TTVM_RETURN_ON_FAULT(c.writeCr4(v)); break;
    case 8:
      if (v & ~0xFull) return c.raiseGp(0);
      s.cr8 = v;
      break;
  }
  return ExecStatus::kNext;
}

ExecStatus handleMovDr(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(requireCpl0(c));
  const bool toDr = i.op[0].kind == OpKind::kDr;
  unsigned n = toDr ? i.op[0].reg : i.op[1].reg;
  CpuState& s = c.state();
  if (n == 4 || n == 5) {
    if (s.cr4 & cr4::kDE) return c.raiseUd();
    n += 2;
  }
  if (n > 7) return c.raiseUd();
  // General detect: any MOV DR while DR7.GD is set faults with DR6.BD.
  if (s.dr7 & (1u << 13)) {
    s.dr6 = (s.dr6 & ~0xFull) | kDr6Bd;
    s.dr7 &= ~(1ull << 13);
    return c.raise(vec::kDB);
  }
  const uint8_t gpr = toDr ? i.op[1].reg : i.op[0].reg;
  if (!toDr) {
    const uint64_t v = n < 4 ? s.dr[n] : n == 6 ? s.dr6 : s.dr7;
    if (c.is64())
      c.writeGpr<uint64_t>(gpr, v);
    else
      c.writeGpr<uint32_t>(gpr, static_cast<uint32_t>(v));
    return ExecStatus::kNext;
  }
  const uint64_t v = c.is64() ? c.readGpr<uint64_t>(gpr) : c.readGpr<uint32_t>(gpr);
  if (n < 4) {
    s.dr[n] = v;
  } else {
    if (v >> 32) return c.raiseGp(0);
    if (n == 6)
      s.dr6 = (v | 0xFFFF0FF0ull) & ~(1ull << 12) & 0xFFFFFFFFull;
    else
      s.dr7 = (v | 0x400) & ~((1ull << 11) | (1ull << 12) | (1ull << 14) | (1ull << 15));
  }
  c.debugRegistersChanged();
  return ExecStatus::kNext;
}

void registerSystemHandlers(HandlerTable& t) {
  t.set(ZYDIS_MNEMONIC_CLI, &cli);
  t.set(ZYDIS_MNEMONIC_STI, &sti);
  t.set(ZYDIS_MNEMONIC_HLT, &hlt);
  t.set(ZYDIS_MNEMONIC_CPUID, &cpuid);
  t.set(ZYDIS_MNEMONIC_RDTSC, &rdtsc);
  t.set(ZYDIS_MNEMONIC_RDTSCP, &rdtscp);
  t.set(ZYDIS_MNEMONIC_RDRAND, &rdrand);
  t.set(ZYDIS_MNEMONIC_RDSEED, &rdrand);
  t.set(ZYDIS_MNEMONIC_RDMSR, &rdmsr);
  t.set(ZYDIS_MNEMONIC_WRMSR, &wrmsr);
  t.set(ZYDIS_MNEMONIC_SYSCALL, &syscall);
  t.set(ZYDIS_MNEMONIC_SYSRET, &sysret);
  t.set(ZYDIS_MNEMONIC_SYSENTER, &sysenter);
  t.set(ZYDIS_MNEMONIC_SYSEXIT, &sysexit);
  t.set(ZYDIS_MNEMONIC_SWAPGS, &swapgs);
  t.set(ZYDIS_MNEMONIC_LGDT, &lgdt<false>);
  t.set(ZYDIS_MNEMONIC_LIDT, &lgdt<true>);
  t.set(ZYDIS_MNEMONIC_SGDT, &sgdt<false>);
  t.set(ZYDIS_MNEMONIC_SIDT, &sgdt<true>);
  t.set(ZYDIS_MNEMONIC_LLDT, &lldt);
  t.set(ZYDIS_MNEMONIC_LTR, &ltr);
  t.set(ZYDIS_MNEMONIC_SLDT, &sldt<false>);
  t.set(ZYDIS_MNEMONIC_STR, &sldt<true>);
  t.set(ZYDIS_MNEMONIC_LAR, &segCheckInstr<Check::kLar>);
  t.set(ZYDIS_MNEMONIC_LSL, &segCheckInstr<Check::kLsl>);
  t.set(ZYDIS_MNEMONIC_VERR, &segCheckInstr<Check::kVerr>);
  t.set(ZYDIS_MNEMONIC_VERW, &segCheckInstr<Check::kVerw>);
  t.set(ZYDIS_MNEMONIC_CLTS, &clts);
  t.set(ZYDIS_MNEMONIC_LMSW, &lmsw);
  t.set(ZYDIS_MNEMONIC_SMSW, &smsw);
  t.set(ZYDIS_MNEMONIC_INVLPG, &invlpg);
  t.set(ZYDIS_MNEMONIC_WBINVD, &wbinvd);
  t.set(ZYDIS_MNEMONIC_INVD, &wbinvd);
  t.set(ZYDIS_MNEMONIC_IN, &in);
  t.set(ZYDIS_MNEMONIC_OUT, &out);
  t.set(ZYDIS_MNEMONIC_STAC, &stac<true>);
  t.set(ZYDIS_MNEMONIC_CLAC, &stac<false>);
  t.set(ZYDIS_MNEMONIC_ARPL, &arpl);
}

}  // namespace ttvm
