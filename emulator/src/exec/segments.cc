// Descriptor loads and checks, control registers, the TSS.
#include "exec/internals.h"

namespace ttvm {

SegmentRegister CpuImpl::descriptorToCache(uint16_t selector, uint64_t raw) {
  SegmentRegister r;
  r.selector = selector;
  r.base = ((raw >> 16) & 0xFFFFFF) | (((raw >> 56) & 0xFF) << 24);
  uint32_t limit = static_cast<uint32_t>((raw & 0xFFFF) | (((raw >> 48) & 0xF) << 16));
  const uint32_t attr =
      static_cast<uint32_t>((raw >> 40) & 0xFF) | (static_cast<uint32_t>((raw >> 52) & 0xF) << 12);
  if (attr & segattr::kG) limit = (limit << 12) | 0xFFF;
  r.limit = limit;
  r.attributes = attr;
  return r;
}

bool CpuImpl::readDescriptor(uint16_t selector, uint64_t& raw, uint8_t vector) {
  const bool ldt = selector & 4;
  const uint64_t index = selector & ~7u;
  uint64_t base;
  uint32_t limit;
  if (ldt) {
    if (s_.ldtr.attributes & segattr::kUnusable || s_.ldtr.selector == 0)
      return fault(vector, selector & ~3u);
    base = s_.ldtr.base;
    limit = s_.ldtr.limit;
  } else {
    base = s_.gdtr.base;
    limit = s_.gdtr.limit;
  }
  if (index + 7 > limit) return fault(vector, selector & ~3u);
  return readLinear<uint64_t>(base + index, raw, true);
}

bool CpuImpl::writeDescriptorAccessed(uint16_t selector, uint64_t raw) {
  if (raw & (1ull << 40)) return true;
  const uint64_t base = (selector & 4) ? s_.ldtr.base : s_.gdtr.base;
  const uint8_t b = static_cast<uint8_t>((raw >> 40) | 1);
  return writeLinear<uint8_t>(base + (selector & ~7u) + 5, b, true);
}

bool CpuImpl::loadSegment(SegReg sreg, uint16_t selector) {
  const unsigned s = static_cast<unsigned>(sreg);
  SegmentRegister& dst = s_.seg[s];
  if (!protectedMode() || v86()) {
    dst.selector = selector;
    dst.base = uint64_t{selector} << 4;
    if (v86()) {
      dst.limit = 0xFFFF;
      dst.attributes = 0xF3;
    }
    if (s == 2) updateMode();
    updateSegmentCache(s);
    return true;
  }
  const int rpl = selector & 3;
  if ((selector & ~3u) == 0) {
    if (s == 2) {
      // Null SS is allowed only in 64-bit mode at CPL < 3 with RPL = CPL.
      if (!(mode_ == CpuMode::kLong64 && cpl_ < 3 && rpl == cpl_)) return fault(vec::kGP, 0);
    }
    dst.selector = selector;
    dst.base = (mode_ == CpuMode::kLong64 && s >= 4) ? dst.base : 0;
    dst.attributes = segattr::kUnusable | (s == 2 ? (static_cast<uint32_t>(cpl_) << 5) : 0);
    if (s == 2) updateMode();
    updateSegmentCache(s);
    return true;
  }
  uint64_t raw;
  if (!readDescriptor(selector, raw)) return false;
  SegmentRegister c = descriptorToCache(selector, raw);
  const uint32_t type = c.attributes & 0xF;
  const int dpl = (c.attributes >> 5) & 3;
  const bool isCode = type & 8;
  const uint32_t err = selector & ~3u;
  if (!(c.attributes & segattr::kS)) return fault(vec::kGP, err);
  if (s == 2) {
    if (rpl != cpl_ || dpl != cpl_ || isCode || !(type & 2)) return fault(vec::kGP, err);
    if (!(c.attributes & segattr::kP)) return fault(vec::kSS, err);
  } else {
    if (isCode && !(type & 2)) return fault(vec::kGP, err);  // execute-only code
    const bool conforming = isCode && (type & 4);
    if (!conforming && (dpl < cpl_ || dpl < rpl)) return fault(vec::kGP, err);
    if (!(c.attributes & segattr::kP)) return fault(vec::kNP, err);
  }
  if (!writeDescriptorAccessed(selector, raw)) return false;
  c.attributes |= segattr::kAccessed;
  dst = c;
  if (s == 2) updateMode();
  updateSegmentCache(s);
  return true;
}

void CpuImpl::loadCs(uint16_t selector, uint64_t raw, int newCpl) {
  SegmentRegister c = descriptorToCache(static_cast<uint16_t>((selector & ~3u) | newCpl), raw);
  c.attributes |= segattr::kAccessed;
  // CPL lives in CS.DPL for ttvm's state: conforming segments keep the CPL.
  c.attributes = (c.attributes & ~(3u << segattr::kDplShift)) |
                 (static_cast<uint32_t>(newCpl) << segattr::kDplShift);
  s_.seg[1] = c;
  updateMode();
}

// ------------------------------------------------------- control registers

// Intel loads the four PAE PDPTEs when MOV CR3/CR0/CR4 leaves the CPU in
// legacy PAE paging and raises #GP(0) if a present one has reserved bits set
// (SDM vol. 3 4.4.1). ttvm checks them there; the walker reads them again.
bool CpuImpl::checkPaePdptes(uint64_t cr0v, uint64_t cr3v, uint64_t cr4v, uint64_t eferv) {
  if (!(cr0v & cr0::kPG) || !(cr4v & cr4::kPAE) || (eferv & efer::kLMA)) return true;
  const uint64_t base = cr3v & 0xFFFFFFE0ull;
  for (unsigned k = 0; k < 4; ++k) {
    const uint64_t e = readPhys(base + 8 * k, 8);
    if ((e & 1) && ((e & 0x1E6) || (e >> 40))) return fault(vec::kGP, 0);
  }
  return true;
}

bool CpuImpl::writeCr0(uint64_t v) {
  if (v >> 32) return fault(vec::kGP, 0);
  if ((v & cr0::kPG) && !(v & cr0::kPE)) return fault(vec::kGP, 0);
  if ((v & cr0::kNW) && !(v & cr0::kCD)) return fault(vec::kGP, 0);
  const uint64_t old = s_.cr0;
  uint64_t newEfer = s_.msr.efer;
  if ((v & cr0::kPG) && !(old & cr0::kPG) && (s_.msr.efer & efer::kLME)) {
    if (!(s_.cr4 & cr4::kPAE)) return fault(vec::kGP, 0);
    if (s_.seg[1].attributes & segattr::kL) return fault(vec::kGP, 0);
    newEfer |= efer::kLMA;
  }
  if (!(v & cr0::kPG) && (old & cr0::kPG) && longMode()) {
    if (mode_ == CpuMode::kLong64) return fault(vec::kGP, 0);
    newEfer &= ~efer::kLMA;
  }
  if (!checkPaePdptes(v, s_.cr3, s_.cr4, newEfer)) return false;
  s_.msr.efer = newEfer;
  s_.cr0 = v | cr0::kET;
  if ((old ^ s_.cr0) & (cr0::kPG | cr0::kWP | cr0::kPE)) flushTlb(true);
  updateMode();
  return true;
}

bool CpuImpl::writeCr3(uint64_t v) {
  if (longMode() && (v >> 52)) return fault(vec::kGP, 0);
  const uint64_t nv = longMode() ? v : (v & 0xFFFFFFFFull);
  if (!checkPaePdptes(s_.cr0, nv, s_.cr4, s_.msr.efer)) return false;
  s_.cr3 = nv;
  flushTlb(false);
  return true;
}

bool CpuImpl::writeCr4(uint64_t v) {
  const uint64_t supported = cr4::kVME | cr4::kPVI | cr4::kTSD | cr4::kDE | cr4::kPSE | cr4::kPAE |
                             cr4::kMCE | cr4::kPGE | cr4::kPCE | cr4::kOSFXSR | cr4::kOSXMMEXCPT |
                             cr4::kUMIP | cr4::kFSGSBASE | cr4::kSMEP | cr4::kSMAP;
  if (v & ~supported) return fault(vec::kGP, 0);
  if (longMode() && !(v & cr4::kPAE)) return fault(vec::kGP, 0);
  const uint64_t old = s_.cr4;
  if (((old ^ v) & (cr4::kPAE | cr4::kPGE | cr4::kPSE | cr4::kSMEP)) &&
      !checkPaePdptes(s_.cr0, s_.cr3, v, s_.msr.efer))
    return false;
  s_.cr4 = v;
  if ((old ^ v) & (cr4::kPSE | cr4::kPAE | cr4::kPGE | cr4::kSMEP | cr4::kSMAP)) flushTlb(true);
  if ((old ^ v) & cr4::kDE) debugRegistersChanged();
  return true;
}

bool CpuImpl::writeEfer(uint64_t v) {
  const uint64_t supported = efer::kSCE | efer::kLME | efer::kLMA | efer::kNXE;
  if (v & ~supported) return fault(vec::kGP, 0);
  // LME may not change while paging is on; LMA is read-only.
  if ((s_.cr0 & cr0::kPG) && ((v ^ s_.msr.efer) & efer::kLME)) return fault(vec::kGP, 0);
  const uint64_t old = s_.msr.efer;
  s_.msr.efer = (v & ~efer::kLMA) | (old & efer::kLMA);
  if ((old ^ s_.msr.efer) & efer::kNXE) flushTlb(true);
  updateMode();
  return true;
}

// --------------------------------------------------------------------- TSS

bool CpuImpl::tssStack(int cpl, uint16_t& ss, uint64_t& sp) {
  const SegmentRegister& tr = s_.tr;
  const uint32_t type = tr.attributes & 0xF;
  if (longMode()) {
    const uint64_t off = 4 + 8 * static_cast<uint64_t>(cpl);
    if (off + 7 > tr.limit) return fault(vec::kTS, tr.selector & ~3u);
    ss = 0;
    return readLinear<uint64_t>(tr.base + off, sp, true);
  }
  if (type == 0x9 || type == 0xB) {  // 32-bit TSS
    const uint64_t off = 4 + 8 * static_cast<uint64_t>(cpl);
    if (off + 5 > tr.limit) return fault(vec::kTS, tr.selector & ~3u);
    uint32_t esp;
    if (!readLinear<uint32_t>(tr.base + off, esp, true)) return false;
    if (!readLinear<uint16_t>(tr.base + off + 4, ss, true)) return false;
    sp = esp;
    return true;
  }
  // 16-bit TSS
  const uint64_t off = 2 + 4 * static_cast<uint64_t>(cpl);
  if (off + 3 > tr.limit) return fault(vec::kTS, tr.selector & ~3u);
  uint16_t spw;
  if (!readLinear<uint16_t>(tr.base + off, spw, true)) return false;
  if (!readLinear<uint16_t>(tr.base + off + 2, ss, true)) return false;
  sp = spw;
  return true;
}

bool CpuImpl::tssIst(unsigned ist, uint64_t& sp) {
  const uint64_t off = 0x24 + 8 * static_cast<uint64_t>(ist - 1);
  if (off + 7 > s_.tr.limit) return fault(vec::kTS, s_.tr.selector & ~3u);
  return readLinear<uint64_t>(s_.tr.base + off, sp, true);
}

bool CpuImpl::ioPermitted(uint16_t port, unsigned size) {
  if (protectedMode() && (cpl_ > static_cast<int>((s_.rflags >> 12) & 3) || v86())) {
    // Consult the I/O permission bitmap of a 32/64-bit TSS.
    const SegmentRegister& tr = s_.tr;
    const uint32_t type = tr.attributes & 0xF;
    if (!(type == 0x9 || type == 0xB) || tr.limit < 0x67) return fault(vec::kGP, 0);
    uint16_t mapBase;
    if (!readLinear<uint16_t>(tr.base + 0x66, mapBase, true)) return false;
    const uint64_t byte = uint64_t{mapBase} + port / 8;
    if (byte + 1 > tr.limit) return fault(vec::kGP, 0);
    uint16_t bits;
    if (!readLinear<uint16_t>(tr.base + byte, bits, true)) return false;
    const unsigned mask = ((1u << size) - 1) << (port & 7);
    if (bits & mask) return fault(vec::kGP, 0);
  }
  return true;
}

}  // namespace ttvm
