// Segmentation checks, paging (32-bit, PAE, 4-level), the software TLB and
// physical accesses (RAM with bounds checks, MMIO through the Environment).
#include <algorithm>

#include "exec/internals.h"

namespace ttvm {

namespace {

constexpr uint64_t kPteP = 1u << 0;
constexpr uint64_t kPteW = 1u << 1;
constexpr uint64_t kPteU = 1u << 2;
constexpr uint64_t kPteA = 1u << 5;
constexpr uint64_t kPteD = 1u << 6;
constexpr uint64_t kPtePs = 1u << 7;
constexpr uint64_t kPteG = 1u << 8;
constexpr uint64_t kPteNx = 1ull << 63;
constexpr unsigned kMaxPhysBits = 40;  // what CPUID 0x80000008 advertises
constexpr uint64_t kAddrMask = ((1ull << kMaxPhysBits) - 1) & ~0xFFFull;
// Bits 51..MAXPHYADDR of a PAE/4-level entry are reserved.
constexpr uint64_t kRsvdHigh = ((1ull << 52) - 1) & ~((1ull << kMaxPhysBits) - 1);

constexpr uint32_t kPfP = 1, kPfW = 2, kPfU = 4, kPfRsvd = 8, kPfI = 16;

}  // namespace

bool CpuImpl::isRam(uint64_t phys) const {
  if (phys >= mem_.ram.size()) return false;
  for (const PhysicalMemory::Range& r : mem_.mmioHoles)
    if (phys >= r.begin && phys < r.end) return false;
  return true;
}

// Whether every byte of [phys, phys + n) is RAM (no MMIO hole inside).
bool CpuImpl::isRamRange(uint64_t phys, uint64_t n) const {
  if (n == 0) return true;
  if (phys >= mem_.ram.size() || n > mem_.ram.size() - phys) return false;
  for (const PhysicalMemory::Range& r : mem_.mmioHoles)
    if (r.begin < phys + n && phys < r.end) return false;
  return true;
}

uint64_t CpuImpl::readPhys(uint64_t phys, unsigned size) {
  if (isRamRange(phys, size)) {
    in_->markAccessed(phys >> 12);
    in_->markAccessed((phys + size - 1) >> 12);
    uint64_t v = 0;
    std::memcpy(&v, mem_.ram.data() + phys, size);
    return v;
  }
  return env_.mmioRead(phys, size);
}

void CpuImpl::writePhys(uint64_t phys, unsigned size, uint64_t value) {
  if (isRamRange(phys, size)) {
    std::memcpy(mem_.ram.data() + phys, &value, size);
    const uint64_t pfn = phys >> 12;
    in_->markAccessed(pfn);
    in_->markAccessed((phys + size - 1) >> 12);
    in_->markDirty(pfn);
    if (in_->codeChunks[pfn]) notifyRamWritten(phys, size);
    return;
  }
  env_.mmioWrite(phys, size, value);
  noteApicWrite(phys, size, value);
}

// The local APIC is part of the CPU, and its task-priority register is CR8
// (TPR[7:4]): a TPR written through the xAPIC page is what a later MOV from
// CR8 reads, as on hardware and under KVM (the x2APIC MSR: see WRMSR). The
// machine's APIC device takes the write itself (aligned 32-bit writes only);
// the CPU keeps its copy in step from its own state, so that a replay, where
// no device runs, does the same.
void CpuImpl::noteApicWrite(uint64_t phys, unsigned size, uint64_t value) {
  if (auto cr8 = apicbase::cr8AfterWrite(s_.msr.apicBase, phys, size, value)) s_.cr8 = *cr8;
}

// ------------------------------------------------------------ segmentation

bool CpuImpl::segCheckSlow(unsigned seg, uint64_t ea, unsigned size, Access a, uint64_t& lin) {
  const SegmentRegister& sr = s_.seg[seg];
  const uint64_t last = ea + size - 1;
  if (!protectedMode() || v86()) {
    if (last > sr.limit) return segFault(seg, 0);
    lin = (sr.base + ea) & 0xFFFFFFFFull;
    return true;
  }
  if (sr.attributes & segattr::kUnusable) return segFault(seg, 0);
  const uint32_t type = sr.attributes & 0xF;
  const bool code = type & 8;
  if (code) {
    if (a == Access::kWrite) return segFault(seg, 0);
    if (a == Access::kRead && !(type & 2)) return segFault(seg, 0);
  } else if (a == Access::kWrite && !(type & 2)) {
    return segFault(seg, 0);
  }
  if (!code && (type & 4)) {  // expand-down: valid offsets are (limit, upper]
    const uint64_t upper = (sr.attributes & segattr::kDB) ? 0xFFFFFFFFull : 0xFFFFull;
    if (ea <= sr.limit || last > upper) return segFault(seg, 0);
  } else if (last > sr.limit) {
    return segFault(seg, 0);
  }
  lin = (sr.base + ea) & 0xFFFFFFFFull;
  return true;
}

bool CpuImpl::alignmentOk(unsigned seg, uint64_t ea, unsigned size) {
  if (cpl_ != 3 || !(s_.cr0 & cr0::kAM) || size < 2) return true;
  const unsigned align = size >= 8 ? 8 : size;
  const uint64_t base = (mode_ == CpuMode::kLong64 && seg < 4) ? 0 : s_.seg[seg].base;
  if ((base + ea) & (align - 1)) return fault(vec::kAC, 0);
  return true;
}

void CpuImpl::updateSegmentCache(unsigned seg) {
  const SegmentRegister& sr = s_.seg[seg];
  if (!protectedMode() || v86()) {
    segFast_[seg] = true;
    segWritable_[seg] = true;
    return;
  }
  const uint32_t type = sr.attributes & 0xF;
  const bool usable = !(sr.attributes & segattr::kUnusable) && (sr.attributes & segattr::kS);
  const bool code = type & 8;
  segFast_[seg] = usable && (code ? (type & 2) : !(type & 4));
  segWritable_[seg] = usable && !code && (type & 2);
}

// ------------------------------------------------------------------ paging

bool CpuImpl::translate(uint64_t lin, Access a, bool implicitSupervisor, uint64_t& phys,
                        bool noSideEffects) {
  const bool user = cpl_ == 3 && !implicitSupervisor;
  const bool write = a == Access::kWrite;
  const bool exec = a == Access::kExec;
  if (!(s_.cr0 & cr0::kPG)) {
    phys = longMode() ? lin : (lin & 0xFFFFFFFFull);
    if (!noSideEffects) {
      TlbEntry& e = tlb_[(lin >> 12) & (kTlbSize - 1)];
      e.tag = lin >> 12;
      e.physPage = phys & ~0xFFFull;
      e.host = nullptr;
      e.allowed = 0xFF;
      e.global = false;
      e.pageShift = 12;
      finishTlbFill(e, lin);
    }
    return true;
  }

  const bool nxe = s_.msr.efer & efer::kNXE;
  const bool pae = s_.cr4 & cr4::kPAE;
  uint32_t err = (write ? kPfW : 0) | (user ? kPfU : 0) |
                 ((exec && (nxe || (s_.cr4 & cr4::kSMEP)) && pae) ? kPfI : 0);
  auto pageFault = [&](uint32_t extra) {
    if (noSideEffects) return false;
    s_.cr2 = lin;
    return fault(vec::kPF, err | extra);
  };

  // Walk, collecting the entries' addresses so A/D can be set after the
  // permission check succeeds.
  uint64_t entryAddr[4];
  unsigned entrySize = pae ? 8 : 4;
  int levels = 0;
  uint64_t entry = 0;
  bool allW = true, allU = true, anyNx = false;
  unsigned pageShift = 12;
  uint64_t base = 0;

  auto readEntry = [&](uint64_t addr) {
    entryAddr[levels++] = addr;
    return readPhys(addr, entrySize);
  };
  auto accumulate = [&](uint64_t e) {
    allW = allW && (e & kPteW);
    allU = allU && (e & kPteU);
    anyNx = anyNx || (nxe && (e & kPteNx));
  };
  auto rsvd = [&](uint64_t e) { return (e & kRsvdHigh) || (!nxe && (e & kPteNx)); };

  if (!pae) {
    const uint64_t pdeAddr = (s_.cr3 & 0xFFFFF000ull) + ((lin >> 22) & 0x3FF) * 4;
    const uint64_t pde = readEntry(pdeAddr);
    if (!(pde & kPteP)) return pageFault(0);
    accumulate(pde);
    if ((pde & kPtePs) && (s_.cr4 & cr4::kPSE)) {
      if (pde & (1u << 21)) return pageFault(kPfP | kPfRsvd);
      pageShift = 22;
      base = (pde & 0xFFC00000ull) | (((pde >> 13) & 0xFF) << 32);
      entry = pde;
    } else {
      const uint64_t pte = readEntry((pde & 0xFFFFF000ull) + ((lin >> 12) & 0x3FF) * 4);
      if (!(pte & kPteP)) return pageFault(0);
      accumulate(pte);
      base = pte & 0xFFFFF000ull;
      entry = pte;
    }
  } else {
    uint64_t table;
    int startLevel;
    if (longMode()) {
      table = s_.cr3 & kAddrMask;
      startLevel = 4;
    } else {
      const uint64_t pdpte = readEntry((s_.cr3 & 0xFFFFFFE0ull) + ((lin >> 30) & 3) * 8);
      if (!(pdpte & kPteP)) return pageFault(0);
      // PAE PDPTEs have no R/W, U/S, NX: bits 1,2,5-8,63 are reserved.
      if ((pdpte & 0x1E6) || (pdpte & kRsvdHigh) || (pdpte & kPteNx))
        return pageFault(kPfP | kPfRsvd);
      table = pdpte & kAddrMask;
      startLevel = 2;
    }
    for (int level = startLevel; level >= 1; --level) {
      const unsigned shift = 12 + 9 * (level - 1);
      const uint64_t e = readEntry(table + ((lin >> shift) & 0x1FF) * 8);
      if (!(e & kPteP)) return pageFault(0);
      if (rsvd(e)) return pageFault(kPfP | kPfRsvd);
      if (level == 4 && (e & kPtePs)) return pageFault(kPfP | kPfRsvd);
      accumulate(e);
      if (level == 1 || (e & kPtePs)) {
        if (level == 3 && !(e & kPtePs)) {
          // not reached: handled by the loop
        }
        if (level > 1) {
          // Large page: bits 12 .. shift-1 except PAT (bit 12) must be zero.
          const uint64_t lowMask = ((1ull << shift) - 1) & ~0x1FFFull;
          if (e & lowMask) return pageFault(kPfP | kPfRsvd);
        }
        pageShift = shift;
        base = e & kAddrMask & ~((1ull << shift) - 1);
        entry = e;
        break;
      }
      table = e & kAddrMask;
    }
  }

  // Permission check.
  const bool wp = s_.cr0 & cr0::kWP;
  const bool smap = (s_.cr4 & cr4::kSMAP) && allU && !user && !exec &&
                    (implicitSupervisor || !(s_.rflags & flags::kAC));
  bool ok = true;
  if (exec) {
    ok = !anyNx && (user ? allU : !(allU && (s_.cr4 & cr4::kSMEP)));
  } else if (user) {
    ok = allU && (!write || allW);
  } else {
    ok = !smap && (!write || allW || !wp);
  }
  if (debugWalk_) ok = true;
  if (!ok) return pageFault(kPfP);

  phys = base | (lin & ((1ull << pageShift) - 1));
  if (noSideEffects) return true;

  // Accessed on every level, dirty on the leaf for writes.
  // (PAE PDPTEs are loaded with CR3 and have no accessed bit.)
  for (int k = (pae && !longMode()) ? 1 : 0; k < levels; ++k) {
    const bool leaf = k == levels - 1;
    const uint64_t cur = readPhys(entryAddr[k], 1);
    uint64_t want = cur | kPteA;
    if (leaf && write) want |= kPteD;
    if (want != cur) writePhys(entryAddr[k], 1, want);
  }
  const bool dirty = (entry & kPteD) || write;

  // TLB fill: record what may skip this walk next time. A page that is not
  // yet dirty gets no fast-path write permission (the next write walks again
  // to set D). SMAP-protected pages get no supervisor data permission.
  TlbEntry& e = tlb_[(lin >> 12) & (kTlbSize - 1)];
  e.tag = lin >> 12;
  e.physPage = phys & ~0xFFFull;
  e.host = nullptr;
  e.global = (entry & kPteG) && (s_.cr4 & cr4::kPGE);
  e.pageShift = static_cast<uint8_t>(pageShift);
  uint8_t allowed = 0;
  const bool smapAny = (s_.cr4 & cr4::kSMAP) && allU;
  // user
  if (allU) allowed |= tlbperm::bit(Access::kRead, true);
  if (allU && allW && dirty) allowed |= tlbperm::bit(Access::kWrite, true);
  if (allU && !anyNx) allowed |= tlbperm::bit(Access::kExec, true);
  // supervisor
  if (!smapAny) allowed |= tlbperm::bit(Access::kRead, false);
  if (!smapAny && (allW || !wp) && dirty) allowed |= tlbperm::bit(Access::kWrite, false);
  if (!anyNx && !(allU && (s_.cr4 & cr4::kSMEP))) allowed |= tlbperm::bit(Access::kExec, false);
  e.allowed = allowed;
  finishTlbFill(e, lin);
  return true;
}

// Makes a filled TLB entry usable by the fast path only where that is safe:
// RAM pages only; no write permission on pages holding cached code, pages not
// yet marked dirty while tracking, or pages with debugger watchpoints.
void CpuImpl::finishTlbFill(TlbEntry& e, uint64_t lin) {
  const uint64_t phys = e.physPage;
  if (!isRamRange(phys, 0x1000)) {
    e.allowed = 0;
    e.host = nullptr;
    return;
  }
  e.host = mem_.ram.data() + phys;
  const uint64_t pfn = phys >> 12;
  in_->markAccessed(pfn);
  const uint8_t writeBits =
      tlbperm::bit(Access::kWrite, true) | tlbperm::bit(Access::kWrite, false);
  const uint8_t readBits = tlbperm::bit(Access::kRead, true) | tlbperm::bit(Access::kRead, false);
  if (in_->codeChunks[pfn] || (in_->dirtyTracking && !in_->dirty[pfn])) e.allowed &= ~writeBits;
  for (const DebuggerWatchpoint& w : in_->watchpoints) {
    const uint64_t page = w.physical ? phys : (lin & ~0xFFFull);
    const uint64_t wEnd = w.address + std::max<uint64_t>(w.length, 1);
    if (w.address < page + 0x1000 && wEnd > page) {
      e.allowed &= ~writeBits;
      if (w.kind != WatchKind::kWrite) e.allowed &= ~readBits;
    }
  }
  if (dataBreakpointsActive_) e.allowed &= ~(writeBits | readBits);
}

void CpuImpl::flushTlb(bool includeGlobal) {
  ++linkEpoch_;
  for (TlbEntry& e : tlb_)
    if (includeGlobal || !e.global) e.tag = ~0ull;
}

void CpuImpl::invalidatePage(uint64_t linear) {
  ++linkEpoch_;
  for (TlbEntry& e : tlb_) {
    if (e.tag == ~0ull) continue;
    if (((e.tag << 12) >> e.pageShift) == (linear >> e.pageShift)) e.tag = ~0ull;
  }
}

void CpuImpl::stripTlbWrite(uint64_t physPage) {
  const uint8_t writeBits =
      tlbperm::bit(Access::kWrite, true) | tlbperm::bit(Access::kWrite, false);
  for (TlbEntry& e : tlb_)
    if (e.physPage == physPage) e.allowed &= ~writeBits;
}

// ------------------------------------------------------------ slow access

bool CpuImpl::accessSlow(uint64_t lin, void* data, unsigned size, Access a,
                         bool implicitSupervisor) {
  return accessBytes(lin, data, size, a, implicitSupervisor);
}

bool CpuImpl::accessBytes(uint64_t lin, void* data, unsigned n, Access a, bool implicitSupervisor) {
  if (!longMode()) lin &= 0xFFFFFFFFull;
  // Translate every page first: a fault leaves memory untouched.
  uint64_t physOf[2];
  unsigned lenOf[2];
  int parts = 0;
  uint64_t cur = lin;
  unsigned left = n;
  while (left > 0) {
    TTVM_ASSERT(parts < 2, "access larger than a page: ", n);
    const unsigned chunk = std::min<unsigned>(left, 0x1000 - (cur & 0xFFF));
    uint64_t phys;
    if (!translate(cur, a, implicitSupervisor, phys)) return false;
    physOf[parts] = phys;
    lenOf[parts] = chunk;
    ++parts;
    cur = longMode() ? cur + chunk : ((cur + chunk) & 0xFFFFFFFFull);
    left -= chunk;
  }
  uint8_t* bytes = static_cast<uint8_t*>(data);
  uint64_t linCur = lin;
  for (int p = 0; p < parts; ++p) {
    physAccess(physOf[p], bytes, lenOf[p], a == Access::kWrite);
    checkWatchpoints(linCur, physOf[p], lenOf[p], a == Access::kWrite);
    if (dataBreakpointsActive_) debugDataAccess(linCur, lenOf[p], a == Access::kWrite);
    bytes += lenOf[p];
    linCur += lenOf[p];
  }
  return true;
}

// Physical access of n bytes inside one page: RAM with bounds checks, else
// MMIO split into naturally sized pieces of at most 8 bytes.
void CpuImpl::physAccess(uint64_t phys, uint8_t* bytes, unsigned n, bool write) {
  if (isRamRange(phys, n)) {
    uint8_t* p = mem_.ram.data() + phys;
    in_->markAccessed(phys >> 12);
    if (write) {
      std::memcpy(p, bytes, n);
      const uint64_t pfn = phys >> 12;
      in_->markDirty(pfn);
      if (in_->codeChunks[pfn]) notifyRamWritten(phys, n);
    } else {
      std::memcpy(bytes, p, n);
    }
    return;
  }
  unsigned off = 0;
  while (off < n) {
    unsigned piece = n - off;
    if (piece != 1 && piece != 2 && piece != 4 && piece != 8)
      piece = piece >= 8 ? 8 : piece >= 4 ? 4 : piece >= 2 ? 2 : 1;
    if (isRam(phys + off)) {  // a RAM byte next to a hole
      piece = 1;
      if (write) {
        writePhys(phys + off, 1, bytes[off]);
      } else {
        bytes[off] = static_cast<uint8_t>(readPhys(phys + off, 1));
      }
    } else if (write) {
      uint64_t v = 0;
      std::memcpy(&v, bytes + off, piece);
      env_.mmioWrite(phys + off, piece, v);
      noteApicWrite(phys + off, piece, v);
    } else {
      const uint64_t v = env_.mmioRead(phys + off, piece);
      std::memcpy(bytes + off, &v, piece);
    }
    off += piece;
  }
}

void CpuImpl::checkWatchpoints(uint64_t lin, uint64_t phys, unsigned n, bool write) {
  if (in_->watchpoints.empty() || in_->watchHit) return;
  for (size_t k = 0; k < in_->watchpoints.size(); ++k) {
    const DebuggerWatchpoint& w = in_->watchpoints[k];
    if (w.kind == WatchKind::kWrite && !write) continue;
    if (w.kind == WatchKind::kRead && write) continue;
    const uint64_t addr = w.physical ? phys : lin;
    const uint64_t wEnd = w.address + std::max<uint64_t>(w.length, 1);
    if (w.address < addr + n && wEnd > addr) {
      in_->watchHit = true;
      in_->hit = WatchHit{static_cast<int>(k), addr, n, write};
      return;
    }
  }
}

bool CpuImpl::readLinearBlock(uint64_t lin, void* dst, unsigned n, bool implicitSupervisor) {
  return accessBytes(lin, dst, n, Access::kRead, implicitSupervisor);
}

bool CpuImpl::writeLinearBlock(uint64_t lin, const void* src, unsigned n, bool implicitSupervisor) {
  // accessBytes does not modify the buffer on writes.
  return accessBytes(lin, const_cast<void*>(src), n, Access::kWrite, implicitSupervisor);
}

bool CpuImpl::readMemBlock(unsigned seg, uint64_t ea, void* dst, unsigned n) {
  uint64_t lin;
  if (!segCheck(seg, ea, n, Access::kRead, lin)) return false;
  return readLinearBlock(lin, dst, n);
}

bool CpuImpl::writeMemBlock(unsigned seg, uint64_t ea, const void* src, unsigned n) {
  uint64_t lin;
  if (!segCheck(seg, ea, n, Access::kWrite, lin)) return false;
  return writeLinearBlock(lin, src, n);
}

bool CpuImpl::probeWrite(unsigned seg, uint64_t ea, unsigned n) {
  uint64_t lin;
  if (!segCheck(seg, ea, n, Access::kWrite, lin)) return false;
  uint64_t phys;
  if (!translate(lin, Access::kWrite, false, phys, true)) {
    // Re-run with side effects off but fault recording on.
    if (!(s_.cr0 & cr0::kPG)) return true;
    return translate(lin, Access::kWrite, false, phys);
  }
  const uint64_t last = lin + n - 1;
  if ((last >> 12) != (lin >> 12) && !translate(last, Access::kWrite, false, phys, true))
    return translate(last, Access::kWrite, false, phys);
  return true;
}

std::optional<uint64_t> CpuImpl::translateNoSideEffects(uint64_t linear, bool write) const {
  // translate() with noSideEffects reads page tables only and records nothing.
  CpuImpl* self = const_cast<CpuImpl*>(this);
  uint64_t phys;
  self->debugWalk_ = !write;
  const bool ok = self->translate(linear, write ? Access::kWrite : Access::kRead, true, phys, true);
  self->debugWalk_ = false;
  if (!ok) return std::nullopt;
  return phys;
}

bool CpuImpl::readLinearDebug(uint64_t linear, std::span<uint8_t> out) const {
  for (size_t k = 0; k < out.size(); ++k) {
    const std::optional<uint64_t> phys = translateNoSideEffects(linear + k, false);
    if (!phys || !isRam(*phys)) return false;
    out[k] = mem_.ram[*phys];
  }
  return true;
}

}  // namespace ttvm
