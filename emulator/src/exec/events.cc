// Event delivery (IVT, 32-bit and 64-bit IDT, privilege changes through the
// TSS, IST, double/triple fault), IRET in every direction, far JMP/CALL/RET.
#include "exec/internals.h"
#include "ttvm/base/log.h"

namespace ttvm {

namespace {

enum class FaultClass { kBenign, kContributory, kPageFault };

FaultClass classify(uint8_t v) {
  switch (v) {
    case vec::kDE:
    case vec::kTS:
    case vec::kNP:
    case vec::kSS:
    case vec::kGP: return FaultClass::kContributory;
    case vec::kPF: return FaultClass::kPageFault;
    default: return FaultClass::kBenign;
  }
}

bool vectorHasErrorCode(uint8_t v) {
  return v == vec::kDF || v == vec::kTS || v == vec::kNP || v == vec::kSS || v == vec::kGP ||
         v == vec::kPF || v == vec::kAC;
}

}  // namespace

bool CpuImpl::deliverEvent(PendingException e, std::optional<uint64_t> instructionRip) {
  s_.pending.halted = false;
  PendingException cur = e;
  for (;;) {
    exc_.valid = false;
    if (deliverOnce(cur)) {
      exc_.valid = false;
      delivered_ = cur;
      if (cur.kind == EventKind::kNmi) s_.pending.nmiBlocked = true;
      return true;
    }
    TTVM_ASSERT(exc_.valid, "event delivery failed without an exception");
    PendingException second = exc_;
    second.kind = EventKind::kFault;
    // A fault while delivering INT n/INT3/INTO/INT1 is reported at that
    // instruction, not after it.
    if (instructionRip) s_.rip = *instructionRip;
    if (cur.vector == vec::kDF) {
      tripleFault_ = true;
      updateRunSlow();
      return false;
    }
    const FaultClass a = classify(cur.vector);
    const FaultClass b = classify(second.vector);
    const bool isFaultLike = cur.kind == EventKind::kFault || cur.kind == EventKind::kTrap;
    if (isFaultLike && ((a == FaultClass::kContributory && b == FaultClass::kContributory) ||
                        (a == FaultClass::kPageFault && b != FaultClass::kBenign))) {
      cur = PendingException{true, vec::kDF, true, 0, EventKind::kFault};
    } else {
      cur = second;
    }
  }
}

bool CpuImpl::deliverOnce(const PendingException& e) {
  if (!protectedMode()) return deliverReal(e);
  if (longMode()) return deliverLong(e);
  return deliverProtected(e);
}

bool CpuImpl::deliverReal(const PendingException& e) {
  const uint64_t off = uint64_t{e.vector} * 4;
  if (off + 3 > s_.idtr.limit) return fault(vec::kGP, e.vector * 8u + 2);
  uint32_t vecEntry;
  if (!readLinear<uint32_t>(s_.idtr.base + off, vecEntry, true)) return false;
  const uint64_t savedSp = s_.gpr[4];
  uint16_t fl = static_cast<uint16_t>(s_.rflags);
  if (!push<uint16_t>(fl) || !push<uint16_t>(s_.seg[1].selector) ||
      !push<uint16_t>(static_cast<uint16_t>(s_.rip))) {
    s_.gpr[4] = savedSp;
    return false;
  }
  s_.rflags &= ~(flags::kIF | flags::kTF | flags::kAC | flags::kRF);
  s_.seg[1].selector = static_cast<uint16_t>(vecEntry >> 16);
  s_.seg[1].base = uint64_t{vecEntry >> 16} << 4;
  s_.rip = vecEntry & 0xFFFF;
  return true;
}

bool CpuImpl::deliverProtected(const PendingException& e) {
  const bool soft = e.kind == EventKind::kSoftInt;
  const uint32_t ext = (e.kind == EventKind::kSoftInt || e.kind == EventKind::kIcebp) ? 0 : 1;
  const uint32_t idtErr = e.vector * 8u + 2 + ext;
  if (e.vector * 8u + 7 > s_.idtr.limit) return fault(vec::kGP, idtErr);
  uint64_t gate;
  if (!readLinear<uint64_t>(s_.idtr.base + e.vector * 8u, gate, true)) return false;
  const uint32_t gtype = (gate >> 40) & 0x1F;
  if (gtype == 0x5) {  // task gate
    if (soft && ((gate >> 45) & 3) < static_cast<uint64_t>(cpl_))
      return fault(vec::kGP, e.vector * 8u + 2);
    if (!(gate & (1ull << 47))) return fault(vec::kNP, idtErr);
    const bool pushError =
        e.hasErrorCode && vectorHasErrorCode(e.vector) && e.kind == EventKind::kFault;
    return taskSwitch(static_cast<uint16_t>(gate >> 16), TaskSwitchReason::kInt, s_.rip,
                      pushError ? &e : nullptr);
  }
  if (gtype != 0x6 && gtype != 0x7 && gtype != 0xE && gtype != 0xF) return fault(vec::kGP, idtErr);
  const int gdpl = (gate >> 45) & 3;
  if (soft && gdpl < cpl_) return fault(vec::kGP, e.vector * 8u + 2);
  if (!(gate & (1ull << 47))) return fault(vec::kNP, idtErr);
  const bool gate32 = gtype & 8;
  const bool trapGate = gtype & 1;
  const uint16_t sel = static_cast<uint16_t>(gate >> 16);
  uint64_t offset = (gate & 0xFFFF) | (gate32 ? ((gate >> 48) & 0xFFFF) << 16 : 0);
  if ((sel & ~3u) == 0) return fault(vec::kGP, ext);
  uint64_t raw;
  if (!readDescriptor(sel, raw)) {
    exc_.errorCode |= ext;
    return false;
  }
  const SegmentRegister cs = descriptorToCache(sel, raw);
  const uint32_t selErr = (sel & ~3u) + ext;
  if (!(cs.attributes & segattr::kS) || !(cs.attributes & 8)) return fault(vec::kGP, selErr);
  const int dpl = (cs.attributes >> 5) & 3;
  if (dpl > cpl_) return fault(vec::kGP, selErr);
  if (!(cs.attributes & segattr::kP)) return fault(vec::kNP, selErr);
  const bool conforming = cs.attributes & 4;
  const bool fromV86 = v86();
  const unsigned w = gate32 ? 4 : 2;

  uint64_t pushedFlags = s_.rflags;
  // RF = 1 for every fault but an instruction-breakpoint #DB (SDM vol. 3
  // 18.3.1.1); of the #DB faults, only those set a B0-B3 bit (general detect
  // clears them and sets BD).
  if (e.kind == EventKind::kFault && !(e.vector == vec::kDB && (s_.dr6 & 0xF)))
    pushedFlags |= flags::kRF;

  uint64_t vals[10];
  int n = 0;
  int newCpl = cpl_;
  SegmentRegister newSs = s_.seg[2];
  uint64_t sp = s_.gpr[4];
  unsigned spSize = stackSize_;
  bool inner = false;
  if (!conforming && dpl < cpl_) {
    inner = true;
    newCpl = dpl;
    uint16_t ssSel;
    uint64_t newSp;
    if (!tssStack(newCpl, ssSel, newSp)) return false;
    if ((ssSel & ~3u) == 0) return fault(vec::kTS, ext);
    uint64_t ssRaw;
    if (!readDescriptor(ssSel, ssRaw, vec::kTS)) {
      exc_.errorCode |= ext;
      return false;
    }
    newSs = descriptorToCache(ssSel, ssRaw);
    const uint32_t ssErr = (ssSel & ~3u) + ext;
    const uint32_t t = newSs.attributes & 0xF;
    if ((ssSel & 3) != newCpl || ((newSs.attributes >> 5) & 3) != static_cast<uint32_t>(newCpl) ||
        !(newSs.attributes & segattr::kS) || (t & 8) || !(t & 2))
      return fault(vec::kTS, ssErr);
    if (!(newSs.attributes & segattr::kP)) return fault(vec::kSS, ssErr);
    newSs.attributes |= segattr::kAccessed;
    spSize = (newSs.attributes & segattr::kDB) ? 4 : 2;
    sp = newSp;
    if (fromV86) {
      vals[n++] = s_.seg[5].selector;
      vals[n++] = s_.seg[4].selector;
      vals[n++] = s_.seg[3].selector;
      vals[n++] = s_.seg[0].selector;
    }
    vals[n++] = s_.seg[2].selector;
    vals[n++] = s_.gpr[4];
  } else if (fromV86) {
    return fault(vec::kGP, selErr);
  }
  vals[n++] = pushedFlags;
  vals[n++] = s_.seg[1].selector;
  vals[n++] = s_.rip;
  if (e.hasErrorCode && vectorHasErrorCode(e.vector) && e.kind == EventKind::kFault)
    vals[n++] = e.errorCode;
  if (offset > cs.limit) return fault(vec::kGP, 0);

  // Write the frame below sp on the (new) stack, checking the SS limit.
  const uint64_t spMask = spSize == 4 ? 0xFFFFFFFFull : 0xFFFFull;
  uint64_t cur = sp;
  const bool supervisorAccess = newCpl < 3;
  for (int k = 0; k < n; ++k) {
    cur = (cur - w) & spMask;
    const bool expandDown = !(newSs.attributes & 8) && (newSs.attributes & 4);
    if (!expandDown && cur + w - 1 > newSs.limit) return fault(vec::kSS, inner ? ext : 0);
    const uint64_t lin = (newSs.base + cur) & 0xFFFFFFFFull;
    const bool ok =
        w == 4 ? writeLinear<uint32_t>(lin, static_cast<uint32_t>(vals[k]), supervisorAccess)
               : writeLinear<uint16_t>(lin, static_cast<uint16_t>(vals[k]), supervisorAccess);
    if (!ok) return false;
  }
  // Commit.
  if (inner) {
    s_.seg[2] = newSs;
    if (spSize == 4)
      s_.gpr[4] = cur;
    else
      s_.gpr[4] = (s_.gpr[4] & ~0xFFFFull) | cur;
    if (fromV86) {
      for (unsigned sr : {0u, 3u, 4u, 5u}) {
        s_.seg[sr] = SegmentRegister{0, 0, 0, segattr::kUnusable};
      }
    }
  } else {
    setSp(cur);
  }
  s_.rflags &= ~(flags::kTF | flags::kNT | flags::kVM | flags::kRF);
  if (!trapGate) s_.rflags &= ~flags::kIF;
  loadCs(sel, raw, newCpl);
  s_.rip = offset;
  return true;
}

bool CpuImpl::deliverLong(const PendingException& e) {
  const bool soft = e.kind == EventKind::kSoftInt;
  const uint32_t ext = (e.kind == EventKind::kSoftInt || e.kind == EventKind::kIcebp) ? 0 : 1;
  const uint32_t idtErr = e.vector * 8u + 2 + ext;
  if (e.vector * 16u + 15 > s_.idtr.limit) return fault(vec::kGP, idtErr);
  uint64_t lo, hi;
  if (!readLinear<uint64_t>(s_.idtr.base + e.vector * 16u, lo, true) ||
      !readLinear<uint64_t>(s_.idtr.base + e.vector * 16u + 8, hi, true))
    return false;
  const uint32_t gtype = (lo >> 40) & 0x1F;
  if (gtype != 0xE && gtype != 0xF) return fault(vec::kGP, idtErr);
  const int gdpl = (lo >> 45) & 3;
  if (soft && gdpl < cpl_) return fault(vec::kGP, e.vector * 8u + 2);
  if (!(lo & (1ull << 47))) return fault(vec::kNP, idtErr);
  const bool trapGate = gtype & 1;
  const uint16_t sel = static_cast<uint16_t>(lo >> 16);
  const uint64_t offset = (lo & 0xFFFF) | (((lo >> 48) & 0xFFFF) << 16) | ((hi & 0xFFFFFFFF) << 32);
  const unsigned ist = (lo >> 32) & 7;
  if ((sel & ~3u) == 0) return fault(vec::kGP, ext);
  uint64_t raw;
  if (!readDescriptor(sel, raw)) {
    exc_.errorCode |= ext;
    return false;
  }
  const SegmentRegister cs = descriptorToCache(sel, raw);
  const uint32_t selErr = (sel & ~3u) + ext;
  if (!(cs.attributes & segattr::kS) || !(cs.attributes & 8) || !(cs.attributes & segattr::kL) ||
      (cs.attributes & segattr::kDB))
    return fault(vec::kGP, selErr);
  const int dpl = (cs.attributes >> 5) & 3;
  if (dpl > cpl_) return fault(vec::kGP, selErr);
  if (!(cs.attributes & segattr::kP)) return fault(vec::kNP, selErr);
  const bool conforming = cs.attributes & 4;
  int newCpl = cpl_;
  uint64_t sp = s_.gpr[4];
  if (!conforming && dpl < cpl_) {
    newCpl = dpl;
    uint16_t dummy;
    if (!tssStack(newCpl, dummy, sp)) return false;
  }
  if (ist) {
    if (!tssIst(ist, sp)) return false;
  }
  if (!isCanonical(offset)) return fault(vec::kGP, 0);
  sp &= ~0xFull;
  uint64_t pushedFlags = s_.rflags;
  if (e.kind == EventKind::kFault && !(e.vector == vec::kDB && (s_.dr6 & 0xF)))
    pushedFlags |= flags::kRF;  // as above
  uint64_t vals[6];
  int n = 0;
  vals[n++] = s_.seg[2].selector;
  vals[n++] = s_.gpr[4];
  vals[n++] = pushedFlags;
  vals[n++] = s_.seg[1].selector;
  vals[n++] = s_.rip;
  if (e.hasErrorCode && vectorHasErrorCode(e.vector) && e.kind == EventKind::kFault)
    vals[n++] = e.errorCode;
  uint64_t cur = sp;
  for (int k = 0; k < n; ++k) {
    cur -= 8;
    if (!isCanonical(cur)) return fault(vec::kSS, 0);
    if (!writeLinear<uint64_t>(cur, vals[k], newCpl < 3)) return false;
  }
  // A stack switch loads a null SS with RPL = the new CPL: on a privilege
  // change and through an IST entry at the same CPL alike (SDM vol. 3
  // 6.14.4, 6.14.5: "the new SS selector is forced to NULL").
  if (newCpl != cpl_ || ist) {
    s_.seg[2] = SegmentRegister{static_cast<uint16_t>(newCpl), 0, 0,
                                segattr::kUnusable | (static_cast<uint32_t>(newCpl) << 5)};
  }
  s_.gpr[4] = cur;
  s_.rflags &= ~(flags::kTF | flags::kNT | flags::kVM | flags::kRF);
  if (!trapGate) s_.rflags &= ~flags::kIF;
  loadCs(sel, raw, newCpl);
  s_.rip = offset;
  return true;
}

// ---------------------------------------------------------------- IRET

ExecStatus CpuImpl::iret(const Instr& i) {
  const unsigned w = i.opSize ? i.opSize : 2;
  const uint64_t savedSp = s_.gpr[4];
  auto undo = [&] {
    s_.gpr[4] = savedSp;
    return ExecStatus::kException;
  };
  const int iopl = (s_.rflags >> 12) & 3;
  if (!protectedMode() || v86()) {
    if (v86() && iopl < 3) return raiseGp(0);
    uint64_t ip, cs, fl;
    if (!popSized(w, ip) || !popSized(w, cs) || !popSized(w, fl)) return undo();
    if (ip > s_.seg[1].limit) {
      s_.gpr[4] = savedSp;
      return raiseGp(0);
    }
    uint64_t mask = flags::kArith | flags::kTF | flags::kIF | flags::kDF | flags::kNT;
    if (w == 4) mask |= flags::kAC | flags::kID | flags::kRF;
    if (!v86()) mask |= flags::kIOPL;
    s_.rflags = ((s_.rflags & ~mask) | (fl & mask)) | flags::kFixed1;
    s_.seg[1].selector = static_cast<uint16_t>(cs);
    s_.seg[1].base = (cs & 0xFFFF) << 4;
    s_.rip = ip;
    s_.pending.nmiBlocked = false;
    updateMode();
    return ExecStatus::kJumped;
  }
  if (s_.rflags & flags::kNT) {
    if (longMode()) return raiseGp(0);
    uint16_t back;
    TTVM_RETURN_ON_FAULT(readLinear<uint16_t>(s_.tr.base, back, true));
    s_.pending.nmiBlocked = false;
    TTVM_RETURN_ON_FAULT(taskSwitch(back, TaskSwitchReason::kIret, nextRip(i)));
    return ExecStatus::kJumped;
  }
  uint64_t ip, csw, fl;
  if (!popSized(w, ip) || !popSized(w, csw) || !popSized(w, fl)) return undo();
  const uint16_t csSel = static_cast<uint16_t>(csw);
  // Return to virtual-8086 mode.
  if (!longMode() && w == 4 && (fl & flags::kVM) && cpl_ == 0) {
    uint64_t esp, ss, es, ds, fs, gs;
    if (!popSized(4, esp) || !popSized(4, ss) || !popSized(4, es) || !popSized(4, ds) ||
        !popSized(4, fs) || !popSized(4, gs))
      return undo();
    s_.rflags = (fl & 0x3F7FD7) | flags::kFixed1;
    auto realSeg = [&](unsigned r, uint64_t sel) {
      s_.seg[r] = SegmentRegister{static_cast<uint16_t>(sel), (sel & 0xFFFF) << 4, 0xFFFF, 0xF3};
    };
    realSeg(1, csw);
    s_.seg[1].attributes = 0xFB;
    realSeg(2, ss);
    realSeg(0, es);
    realSeg(3, ds);
    realSeg(4, fs);
    realSeg(5, gs);
    s_.gpr[4] = esp & 0xFFFFFFFF;
    s_.rip = ip & 0xFFFF;
    s_.pending.nmiBlocked = false;
    updateMode();
    return ExecStatus::kJumped;
  }
  if ((csSel & ~3u) == 0) {
    s_.gpr[4] = savedSp;
    return raiseGp(0);
  }
  uint64_t raw;
  if (!readDescriptor(csSel, raw)) return undo();
  const SegmentRegister cs = descriptorToCache(csSel, raw);
  const int rpl = csSel & 3;
  const int dpl = (cs.attributes >> 5) & 3;
  const uint32_t err = csSel & ~3u;
  auto gp = [&](uint32_t e) {
    s_.gpr[4] = savedSp;
    return raiseGp(e);
  };
  if (!(cs.attributes & segattr::kS) || !(cs.attributes & 8)) return gp(err);
  if (rpl < cpl_) return gp(err);
  if ((cs.attributes & 4) ? dpl > rpl : dpl != rpl) return gp(err);
  if (!(cs.attributes & segattr::kP)) {
    s_.gpr[4] = savedSp;
    return raiseNp(err);
  }
  const bool target64 = longMode() && (cs.attributes & segattr::kL);
  if (longMode() && (cs.attributes & segattr::kL) && (cs.attributes & segattr::kDB)) return gp(err);
  const bool popStack = rpl > cpl_ || mode_ == CpuMode::kLong64;
  uint64_t newSp = 0;
  uint16_t ssSel = 0;
  SegmentRegister newSs = s_.seg[2];
  if (popStack) {
    uint64_t spv, ssv;
    if (!popSized(w, spv) || !popSized(w, ssv)) return undo();
    newSp = spv;
    ssSel = static_cast<uint16_t>(ssv);
    if ((ssSel & ~3u) == 0) {
      if (!(target64 && rpl < 3 && (ssSel & 3) == rpl)) return gp(0);
      newSs = SegmentRegister{ssSel, 0, 0, segattr::kUnusable | (static_cast<uint32_t>(rpl) << 5)};
    } else {
      uint64_t ssRaw;
      if (!readDescriptor(ssSel, ssRaw)) return undo();
      newSs = descriptorToCache(ssSel, ssRaw);
      const uint32_t t = newSs.attributes & 0xF;
      if ((ssSel & 3) != rpl || ((newSs.attributes >> 5) & 3) != static_cast<uint32_t>(rpl) ||
          !(newSs.attributes & segattr::kS) || (t & 8) || !(t & 2))
        return gp(ssSel & ~3u);
      if (!(newSs.attributes & segattr::kP)) {
        s_.gpr[4] = savedSp;
        return raiseSs(ssSel & ~3u);
      }
      newSs.attributes |= segattr::kAccessed;
    }
  }
  if (!target64 && ip > cs.limit) return gp(0);
  if (target64 && !isCanonical(ip)) return gp(0);
  // RFLAGS: what this privilege level may change.
  uint64_t mask = flags::kArith | flags::kTF | flags::kDF | flags::kNT;
  if (w >= 4) mask |= flags::kRF | flags::kAC | flags::kID;
  if (cpl_ <= iopl) mask |= flags::kIF;
  if (cpl_ == 0) {
    mask |= flags::kIOPL;
    if (w >= 4) mask |= flags::kVIF | flags::kVIP;
  }
  s_.rflags = ((s_.rflags & ~mask) | (fl & mask)) | flags::kFixed1;
  const int oldCpl = cpl_;
  loadCs(csSel, raw, rpl);
  s_.rip = target64 ? ip : (ip & (w == 2 ? 0xFFFF : 0xFFFFFFFF));
  if (popStack) {
    s_.seg[2] = newSs;
    updateMode();
    if (stackSize_ == 8 || target64)
      s_.gpr[4] = newSp;
    else if (stackSize_ == 4)
      s_.gpr[4] = newSp & 0xFFFFFFFF;
    else
      s_.gpr[4] = (s_.gpr[4] & ~0xFFFFull) | (newSp & 0xFFFF);
  }
  if (rpl > oldCpl) {
    // Data segments the outer level may not use become null.
    for (unsigned r : {0u, 3u, 4u, 5u}) {
      const SegmentRegister& sr = s_.seg[r];
      const uint32_t d = (sr.attributes >> 5) & 3;
      const bool confCode = (sr.attributes & 8) && (sr.attributes & 4);
      if (!(sr.attributes & segattr::kUnusable) && !confCode && d < static_cast<uint32_t>(rpl)) {
        s_.seg[r].selector = 0;
        s_.seg[r].attributes |= segattr::kUnusable;
      }
    }
  }
  s_.pending.nmiBlocked = false;
  updateMode();
  return ExecStatus::kJumped;
}

// ------------------------------------------------------ far JMP/CALL/RET

namespace {
struct FarTarget {
  uint64_t raw = 0;
  int newCpl = 0;
};
}  // namespace

// Checks a direct far JMP/CALL target code segment (no gates).
static bool checkFarCode(CpuImpl& c, uint16_t sel, uint64_t& raw) {
  if ((sel & ~3u) == 0) return c.fault(vec::kGP, 0);
  if (!c.readDescriptor(sel, raw)) return false;
  const SegmentRegister cs = CpuImpl::descriptorToCache(sel, raw);
  const uint32_t err = sel & ~3u;
  if (!(cs.attributes & segattr::kS)) {
    const uint32_t t = cs.attributes & 0xF;
    if (t == 0x5 || t == 0x9 || t == 0xB) {
      TTVM_LOG("emulator", kWarn,
               "far transfer to a task gate/TSS (selector " << sel << ", type " << t
                                                            << "): task switches are not emulated");
    }
    return c.fault(vec::kGP, err);
  }
  if (!(cs.attributes & 8)) return c.fault(vec::kGP, err);
  const int dpl = (cs.attributes >> 5) & 3;
  const int rpl = sel & 3;
  if (cs.attributes & 4) {
    if (dpl > c.cpl()) return c.fault(vec::kGP, err);
  } else if (rpl > c.cpl() || dpl != c.cpl()) {
    return c.fault(vec::kGP, err);
  }
  if (!(cs.attributes & segattr::kP)) return c.fault(vec::kNP, err);
  if (c.longMode() && (cs.attributes & segattr::kL) && (cs.attributes & segattr::kDB))
    return c.fault(vec::kGP, err);
  return true;
}

static bool farTargetOk(CpuImpl& c, uint64_t raw, uint64_t offset) {
  const SegmentRegister cs = CpuImpl::descriptorToCache(0, raw);
  if (c.longMode() && (cs.attributes & segattr::kL)) {
    if (!CpuImpl::isCanonical(offset)) return c.fault(vec::kGP, 0);
  } else if (offset > cs.limit) {
    return c.fault(vec::kGP, 0);
  }
  return true;
}

// Whether `selector` names a call gate (peeks at the descriptor without
// faulting; the gate path repeats every check).
// JMP/CALL to a TSS descriptor or a task gate in the GDT/LDT: a task switch.
// Returns nullopt when `selector` is neither.
std::optional<ExecStatus> CpuImpl::farToTask(uint16_t selector, const Instr& i, bool isCall) {
  if ((selector & ~3u) == 0 || longMode()) return std::nullopt;
  const uint64_t base = (selector & 4) ? s_.ldtr.base : s_.gdtr.base;
  const uint32_t limit = (selector & 4) ? s_.ldtr.limit : s_.gdtr.limit;
  if ((selector & ~7u) + 7 > limit) return std::nullopt;
  const std::optional<uint64_t> phys = translateNoSideEffects(base + (selector & ~7u), false);
  if (!phys) return std::nullopt;
  const uint64_t raw = readPhys(*phys, 8);
  const uint32_t type = (raw >> 40) & 0x1F;
  if (type != 0x5 && type != 0x9 && type != 0xB && type != 0x1 && type != 0x3) return std::nullopt;
  const int dpl = (raw >> 45) & 3;
  if (dpl < cpl_ || dpl < (selector & 3)) return raiseGp(selector & ~3u);
  if (!(raw & (1ull << 47))) return raiseNp(selector & ~3u);
  const uint16_t tss = type == 0x5 ? static_cast<uint16_t>(raw >> 16) : selector;
  const TaskSwitchReason why = isCall ? TaskSwitchReason::kCall : TaskSwitchReason::kJmp;
  if (!taskSwitch(tss, why, nextRip(i))) return ExecStatus::kException;
  return ExecStatus::kJumped;
}

bool CpuImpl::isCallGate(uint16_t selector) {
  if ((selector & ~3u) == 0) return false;
  const uint64_t base = (selector & 4) ? s_.ldtr.base : s_.gdtr.base;
  const uint32_t limit = (selector & 4) ? s_.ldtr.limit : s_.gdtr.limit;
  if ((selector & ~7u) + 7 > limit) return false;
  const std::optional<uint64_t> phys = translateNoSideEffects(base + (selector & ~7u) + 5, false);
  if (!phys) return false;
  const uint8_t type = static_cast<uint8_t>(readPhys(*phys, 1));
  return (type & 0x1F) == 0x0C || (!longMode() && (type & 0x1F) == 0x04);
}

// Far CALL/JMP through a call gate (16/32-bit gates; 64-bit gates in long
// mode), with the stack switch and parameter copy of a CALL to a more
// privileged non-conforming segment. SDM vol. 3 5.8.4-5.8.6.
ExecStatus CpuImpl::callGate(uint16_t gateSel, const Instr& i, bool isCall) {
  uint64_t gate;
  TTVM_RETURN_ON_FAULT(readDescriptor(gateSel, gate));
  const uint32_t gateErr = gateSel & ~3u;
  const int gateDpl = (gate >> 45) & 3;
  if (gateDpl < cpl_ || gateDpl < (gateSel & 3)) return raiseGp(gateErr);
  if (!(gate & (1ull << 47))) return raiseNp(gateErr);
  const bool gate64 = longMode();
  const bool gate32 = gate64 || ((gate >> 40) & 0xF) == 0xC;
  const uint16_t sel = static_cast<uint16_t>(gate >> 16);
  uint64_t offset = (gate & 0xFFFF) | (gate32 ? ((gate >> 48) & 0xFFFF) << 16 : 0);
  if (gate64) {
    uint64_t high;
    const uint64_t tableBase = (gateSel & 4) ? s_.ldtr.base : s_.gdtr.base;
    TTVM_RETURN_ON_FAULT(readLinear<uint64_t>(tableBase + (gateSel & ~7u) + 8, high, true));
    if (((high >> 40) & 0x1F) != 0) return raiseGp(gateErr);
    offset |= (high & 0xFFFFFFFF) << 32;
  }
  const unsigned params = gate64 ? 0 : static_cast<unsigned>((gate >> 32) & 0x1F);
  if ((sel & ~3u) == 0) return raiseGp(0);
  uint64_t raw;
  TTVM_RETURN_ON_FAULT(readDescriptor(sel, raw));
  const SegmentRegister cs = descriptorToCache(sel, raw);
  const uint32_t err = sel & ~3u;
  if (!(cs.attributes & segattr::kS) || !(cs.attributes & 8)) return raiseGp(err);
  const int dpl = (cs.attributes >> 5) & 3;
  const bool conforming = cs.attributes & 4;
  if (dpl > cpl_) return raiseGp(err);
  if (!isCall && !conforming && dpl != cpl_) return raiseGp(err);
  if (!(cs.attributes & segattr::kP)) return raiseNp(err);
  if (gate64 && (!(cs.attributes & segattr::kL) || (cs.attributes & segattr::kDB)))
    return raiseGp(err);
  TTVM_RETURN_ON_FAULT(farTargetOk(*this, raw, offset));
  const uint64_t ret = nextRip(i);
  const unsigned w = gate64 ? 8 : gate32 ? 4 : 2;

  if (!isCall || conforming || dpl == cpl_) {
    if (isCall) {
      const uint64_t savedSp = s_.gpr[4];
      if (!pushSized(w, s_.seg[1].selector) || !pushSized(w, ret)) {
        s_.gpr[4] = savedSp;
        return ExecStatus::kException;
      }
    }
    loadCs(sel, raw, cpl_);
    s_.rip = offset;
    return ExecStatus::kJumped;
  }

  // CALL to an inner level: new stack from the TSS.
  const int newCpl = dpl;
  uint16_t ssSel;
  uint64_t newSp;
  TTVM_RETURN_ON_FAULT(tssStack(newCpl, ssSel, newSp));
  SegmentRegister newSs;
  unsigned newStackSize;
  if (gate64) {
    ssSel = static_cast<uint16_t>(newCpl);
    newSs = SegmentRegister{ssSel, 0, 0, segattr::kUnusable | (static_cast<uint32_t>(newCpl) << 5)};
    newStackSize = 8;
  } else {
    if ((ssSel & ~3u) == 0) return raiseTs(0);
    uint64_t ssRaw;
    TTVM_RETURN_ON_FAULT(readDescriptor(ssSel, ssRaw, vec::kTS));
    newSs = descriptorToCache(ssSel, ssRaw);
    const uint32_t t = newSs.attributes & 0xF;
    if ((ssSel & 3) != newCpl || ((newSs.attributes >> 5) & 3) != static_cast<uint32_t>(newCpl) ||
        !(newSs.attributes & segattr::kS) || (t & 8) || !(t & 2))
      return raiseTs(ssSel & ~3u);
    if (!(newSs.attributes & segattr::kP)) return raiseSs(ssSel & ~3u);
    newSs.attributes |= segattr::kAccessed;
    newStackSize = (newSs.attributes & segattr::kDB) ? 4 : 2;
  }
  // Values for the new stack: SS, ESP, parameters (copied from the old
  // stack, deepest first), CS, EIP.
  uint64_t vals[36];
  int n = 0;
  vals[n++] = s_.seg[2].selector;
  vals[n++] = s_.gpr[4];
  for (unsigned k = params; k > 0; --k) {
    uint64_t v = 0;
    const uint64_t ea = truncAddr(s_.gpr[4] + (k - 1) * w, stackSize_);
    TTVM_RETURN_ON_FAULT(readMemBlock(2, ea, &v, w));
    vals[n++] = v;
  }
  vals[n++] = s_.seg[1].selector;
  vals[n++] = ret;
  const uint64_t mask = newStackSize == 8 ? ~0ull : newStackSize == 4 ? 0xFFFFFFFFull : 0xFFFFull;
  uint64_t cur = newSp & mask;
  for (int k = 0; k < n; ++k) {
    cur = (cur - w) & mask;
    const uint64_t lin = gate64 ? cur : ((newSs.base + cur) & 0xFFFFFFFFull);
    if (!gate64 && cur + w - 1 > newSs.limit) return raiseSs(ssSel & ~3u);
    uint64_t v = vals[k];
    TTVM_RETURN_ON_FAULT(writeLinearBlock(lin, &v, w, newCpl < 3));
  }
  s_.seg[2] = newSs;
  loadCs(sel, raw, newCpl);
  if (newStackSize == 2)
    s_.gpr[4] = (s_.gpr[4] & ~0xFFFFull) | cur;
  else
    s_.gpr[4] = cur;
  s_.rip = offset;
  updateMode();
  return ExecStatus::kJumped;
}

ExecStatus CpuImpl::farJump(uint16_t selector, uint64_t offset, const Instr& i) {
  (void)i;
  if (!protectedMode() || v86()) {
    if (offset > s_.seg[1].limit) return raiseGp(0);
    s_.seg[1].selector = selector;
    s_.seg[1].base = uint64_t{selector} << 4;
    s_.rip = offset;
    return ExecStatus::kJumped;
  }
  if (isCallGate(selector)) return callGate(selector, i, false);
  if (const std::optional<ExecStatus> t = farToTask(selector, i, false)) return *t;
  uint64_t raw;
  TTVM_RETURN_ON_FAULT(checkFarCode(*this, selector, raw));
  TTVM_RETURN_ON_FAULT(farTargetOk(*this, raw, offset));
  TTVM_RETURN_ON_FAULT(writeDescriptorAccessed(selector, raw));
  loadCs(selector, raw, cpl_);
  s_.rip = offset;
  return ExecStatus::kJumped;
}

ExecStatus CpuImpl::farCall(uint16_t selector, uint64_t offset, const Instr& i) {
  const unsigned w = i.opSize ? i.opSize : 2;
  const uint64_t savedSp = s_.gpr[4];
  const uint64_t ret = nextRip(i);
  if (!protectedMode() || v86()) {
    if (offset > s_.seg[1].limit) return raiseGp(0);
    if (!pushSized(w, s_.seg[1].selector) || !pushSized(w, ret)) {
      s_.gpr[4] = savedSp;
      return ExecStatus::kException;
    }
    s_.seg[1].selector = selector;
    s_.seg[1].base = uint64_t{selector} << 4;
    s_.rip = offset;
    return ExecStatus::kJumped;
  }
  if (isCallGate(selector)) return callGate(selector, i, true);
  if (const std::optional<ExecStatus> t = farToTask(selector, i, true)) return *t;
  uint64_t raw;
  TTVM_RETURN_ON_FAULT(checkFarCode(*this, selector, raw));
  TTVM_RETURN_ON_FAULT(farTargetOk(*this, raw, offset));
  if (!pushSized(w, s_.seg[1].selector) || !pushSized(w, ret)) {
    s_.gpr[4] = savedSp;
    return ExecStatus::kException;
  }
  if (!writeDescriptorAccessed(selector, raw)) {
    s_.gpr[4] = savedSp;
    return ExecStatus::kException;
  }
  loadCs(selector, raw, cpl_);
  s_.rip = offset;
  return ExecStatus::kJumped;
}

ExecStatus CpuImpl::farReturn(const Instr& i, uint16_t popBytes) {
  const unsigned w = i.opSize ? i.opSize : 2;
  const uint64_t savedSp = s_.gpr[4];
  auto undo = [&] {
    s_.gpr[4] = savedSp;
    return ExecStatus::kException;
  };
  uint64_t ip, csw;
  if (!popSized(w, ip) || !popSized(w, csw)) return undo();
  const uint16_t sel = static_cast<uint16_t>(csw);
  if (!protectedMode() || v86()) {
    if (ip > s_.seg[1].limit) {
      s_.gpr[4] = savedSp;
      return raiseGp(0);
    }
    s_.seg[1].selector = sel;
    s_.seg[1].base = uint64_t{sel} << 4;
    s_.rip = ip;
    setSp(s_.gpr[4] + popBytes);
    return ExecStatus::kJumped;
  }
  auto gp = [&](uint32_t e) {
    s_.gpr[4] = savedSp;
    return raiseGp(e);
  };
  if ((sel & ~3u) == 0) return gp(0);
  uint64_t raw;
  if (!readDescriptor(sel, raw)) return undo();
  const SegmentRegister cs = descriptorToCache(sel, raw);
  const int rpl = sel & 3;
  const int dpl = (cs.attributes >> 5) & 3;
  if (!(cs.attributes & segattr::kS) || !(cs.attributes & 8) || rpl < cpl_) return gp(sel & ~3u);
  if ((cs.attributes & 4) ? dpl > rpl : dpl != rpl) return gp(sel & ~3u);
  if (!(cs.attributes & segattr::kP)) {
    s_.gpr[4] = savedSp;
    return raiseNp(sel & ~3u);
  }
  if (!farTargetOk(*this, raw, ip)) return undo();
  if (rpl == cpl_) {
    loadCs(sel, raw, cpl_);
    s_.rip = ip;
    setSp(s_.gpr[4] + popBytes);
    return ExecStatus::kJumped;
  }
  // Return to an outer level: pop SS:RSP after the parameters.
  setSp(s_.gpr[4] + popBytes);
  uint64_t spv, ssv;
  if (!popSized(w, spv) || !popSized(w, ssv)) return undo();
  const uint16_t ssSel = static_cast<uint16_t>(ssv);
  SegmentRegister newSs;
  if ((ssSel & ~3u) == 0) {
    if (!(longMode() && (cs.attributes & segattr::kL) && rpl < 3)) return gp(0);
    newSs = SegmentRegister{ssSel, 0, 0, segattr::kUnusable | (static_cast<uint32_t>(rpl) << 5)};
  } else {
    uint64_t ssRaw;
    if (!readDescriptor(ssSel, ssRaw)) return undo();
    newSs = descriptorToCache(ssSel, ssRaw);
    const uint32_t t = newSs.attributes & 0xF;
    if ((ssSel & 3) != rpl || ((newSs.attributes >> 5) & 3) != static_cast<uint32_t>(rpl) ||
        (t & 8) || !(t & 2) || !(newSs.attributes & segattr::kS))
      return gp(ssSel & ~3u);
    if (!(newSs.attributes & segattr::kP)) {
      s_.gpr[4] = savedSp;
      return raiseSs(ssSel & ~3u);
    }
  }
  loadCs(sel, raw, rpl);
  s_.rip = ip;
  s_.seg[2] = newSs;
  updateMode();
  setSp(spv + popBytes);
  for (unsigned r : {0u, 3u, 4u, 5u}) {
    const SegmentRegister& sr = s_.seg[r];
    const uint32_t d = (sr.attributes >> 5) & 3;
    const bool confCode = (sr.attributes & 8) && (sr.attributes & 4);
    if (!(sr.attributes & segattr::kUnusable) && !confCode && d < static_cast<uint32_t>(rpl)) {
      s_.seg[r].selector = 0;
      s_.seg[r].attributes |= segattr::kUnusable;
    }
  }
  return ExecStatus::kJumped;
}

}  // namespace ttvm
