// CpuImpl: construction, the step loop, fetch through the decode cache,
// self-modifying-code invalidation, and the public Cpu API.
#include "exec/cpu_impl.h"

#include <algorithm>
#include <cstdio>
#include <new>

#include "exec/block_cache.h"
#include "exec/handler_table.h"
#include "exec/internals.h"
#include "ttvm/base/log.h"

namespace ttvm {

namespace {
constexpr uint64_t kCacheMask = (1ull << 16) - 1;
inline uint64_t cacheTag(uint64_t phys, CpuMode m) {
  return phys | (static_cast<uint64_t>(m) + 1) << 56;
}
}  // namespace

CpuImpl::CpuImpl(const CpuModel& model, PhysicalMemory memory, Environment& env)
    : model_(model), mem_(std::move(memory)), env_(env), in_(std::make_unique<Internals>()) {
  static_assert((1ull << kDecodeCacheBits) - 1 == kCacheMask);
  in_->index.assign(1ull << kDecodeCacheBits, nullptr);
  in_->pool.reset(
      static_cast<DecodeCacheEntry*>(::operator new(kDecodePoolSize * sizeof(DecodeCacheEntry))));
  const size_t pages = (mem_.ram.size() + 0xFFF) >> 12;
  in_->codeChunks.reset(pages + 1);
  in_->dirty.reset(pages + 1);
  in_->accessed.reset(pages + 1);
  for (int m = 0; m < 7; ++m) {
    initDecoder(in_->decoders[m], static_cast<CpuMode>(m));
    configureDecoderForModel(in_->decoders[m], model_);
  }
  s_ = resetState();
  updateMode();
}

CpuImpl::~CpuImpl() = default;

void CpuImpl::updateMode() {
  ++linkEpoch_;
  mode_ = cpuMode(s_);
  cpl_ = currentPrivilegeLevel(s_);
  if (mode_ == CpuMode::kLong64) {
    ipMask_ = ~0ull;
    stackSize_ = 8;
  } else {
    ipMask_ = (s_.seg[1].attributes & segattr::kDB) && protectedMode() && !v86() ? 0xFFFFFFFFull
                                                                                 : 0xFFFFull;
    stackSize_ = (protectedMode() && !v86() && (s_.seg[2].attributes & segattr::kDB)) ? 4 : 2;
    // Real mode with a 32-bit CS cache (unreal/big-real mode) keeps 16-bit IP
    // semantics only when D=0; follow the cache like hardware does.
    if (!protectedMode()) {
      ipMask_ = (s_.seg[1].attributes & segattr::kDB) ? 0xFFFFFFFFull : 0xFFFFull;
      stackSize_ = (s_.seg[2].attributes & segattr::kDB) ? 4 : 2;
    }
  }
  for (unsigned k = 0; k < kNumSegRegs; ++k) updateSegmentCache(k);
}

// ----------------------------------------------------------- small helpers

uint64_t CpuImpl::readGprSized(uint8_t reg, unsigned bytes) const {
  switch (bytes) {
    case 1: return readGpr<uint8_t>(reg);
    case 2: return readGpr<uint16_t>(reg);
    case 4: return readGpr<uint32_t>(reg);
    default: return readGpr<uint64_t>(reg);
  }
}

void CpuImpl::writeGprSized(uint8_t reg, unsigned bytes, uint64_t v) {
  switch (bytes) {
    case 1: writeGpr<uint8_t>(reg, static_cast<uint8_t>(v)); break;
    case 2: writeGpr<uint16_t>(reg, static_cast<uint16_t>(v)); break;
    case 4: writeGpr<uint32_t>(reg, static_cast<uint32_t>(v)); break;
    default: writeGpr<uint64_t>(reg, v); break;
  }
}

bool CpuImpl::readOpOther(const Instr& i, int n, uint64_t& v) {
  const Operand& o = i.op[n];
  switch (o.kind) {
    case OpKind::kPtr: v = i.imm; return true;
    case OpKind::kCr:
      switch (o.reg) {
        case 0: v = s_.cr0; return true;
        case 2: v = s_.cr2; return true;
        case 3: v = s_.cr3; return true;
        case 4: v = s_.cr4; return true;
        case 8: v = s_.cr8; return true;
        default: return fault(vec::kUD);
      }
    default: TTVM_UNREACHABLE("readOp on operand kind ", int(o.kind), " of mnemonic ", i.mnemonic);
  }
}

bool CpuImpl::condition(unsigned cc) const {
  const uint64_t f = s_.rflags;
  bool r;
  switch (cc >> 1) {
    case 0: r = f & flags::kOF; break;
    case 1: r = f & flags::kCF; break;
    case 2: r = f & flags::kZF; break;
    case 3: r = (f & flags::kCF) || (f & flags::kZF); break;
    case 4: r = f & flags::kSF; break;
    case 5: r = f & flags::kPF; break;
    case 6: r = !(f & flags::kSF) != !(f & flags::kOF); break;
    default: r = (f & flags::kZF) || (!(f & flags::kSF) != !(f & flags::kOF)); break;
  }
  return (cc & 1) ? !r : r;
}

ExecStatus CpuImpl::jumpTo(uint64_t target) {
  if (mode_ == CpuMode::kLong64) {
    if (!isCanonical(target)) return raiseGp(0);
  } else if (target > s_.seg[1].limit && protectedMode()) {
    return raiseGp(0);
  } else if (!protectedMode() && target > s_.seg[1].limit) {
    return raiseGp(0);
  }
  s_.rip = target;
  return ExecStatus::kJumped;
}

bool CpuImpl::pushSized(unsigned bytes, uint64_t v) {
  switch (bytes) {
    case 2: return push<uint16_t>(static_cast<uint16_t>(v));
    case 4: return push<uint32_t>(static_cast<uint32_t>(v));
    default: return push<uint64_t>(v);
  }
}

bool CpuImpl::popSized(unsigned bytes, uint64_t& v) {
  switch (bytes) {
    case 2: {
      uint16_t x;
      if (!pop(x)) return false;
      v = x;
      return true;
    }
    case 4: {
      uint32_t x;
      if (!pop(x)) return false;
      v = x;
      return true;
    }
    default: return pop(v);
  }
}

ExecStatus CpuImpl::raise(uint8_t vector) {
  exc_ = PendingException{true, vector, false, 0, EventKind::kFault};
  return ExecStatus::kException;
}

ExecStatus CpuImpl::raise(uint8_t vector, uint32_t errorCode) {
  exc_ = PendingException{true, vector, true, errorCode, EventKind::kFault};
  return ExecStatus::kException;
}

ExecStatus CpuImpl::raiseSoftware(uint8_t vector, EventKind kind) {
  exc_ = PendingException{true, vector, false, 0, kind};
  return ExecStatus::kException;
}

ExecStatus handleUnimplemented(CpuImpl& cpu, const Instr& i) {
  return cpu.unimplemented(i);
}

ExecStatus CpuImpl::unimplemented(const Instr& i) {
  uint8_t bytes[15] = {};
  const uint64_t lin = mode_ == CpuMode::kLong64 ? s_.rip : (s_.seg[1].base + s_.rip);
  readLinearDebug(lin, std::span<uint8_t>(bytes, i.length));
  std::string hex;
  char buf[8];
  for (unsigned k = 0; k < i.length; ++k) {
    std::snprintf(buf, sizeof buf, "%s%02x", k ? " " : "", bytes[k]);
    hex += buf;
  }
  if (in_->unimplementedSeen.insert(hex).second) {
    char line[160];
    std::snprintf(line, sizeof line, "%s (%s) mode %d rip 0x%llx", hex.c_str(),
                  ZydisMnemonicGetString(static_cast<ZydisMnemonic>(i.mnemonic)),
                  static_cast<int>(mode_), static_cast<unsigned long long>(s_.rip));
    unimplementedLog_.push_back(line);
    TTVM_LOG("emulator", kWarn, "unimplemented instruction: " << line);
  }
  return raiseUd();
}

// ------------------------------------------------------------------- fetch

// Returns the decoded instruction at CS:RIP, or nullptr with a fault recorded
// (#PF, #GP for limit/canonical, #UD for undecodable bytes). A KVM
// forced-emulation prefix at CS:RIP is skipped: RIP then holds the address
// of the instruction after it (see fetchSlow), which is where that
// instruction starts for fault reporting and instruction breakpoints.
const Instr* CpuImpl::fetch() {
  // Linked successor of the previous instruction: no TLB or index lookup.
  // Links are keyed by CS.base + RIP (real-mode far transfers change the base
  // without a mode change).
  const uint64_t key = s_.seg[1].base + s_.rip;
  if (__builtin_expect(prevEntry_ != nullptr, 1)) {
    for (const DecodeCacheEntry::Link& l : prevEntry_->link) {
      if (l.rip == key && l.epoch == linkEpoch_) {
        DecodeCacheEntry* e = l.to;
        if (mode_ != CpuMode::kLong64 && s_.rip + e->instr.length - 1 > s_.seg[1].limit) break;
        prevEntry_ = e;
        return &e->instr;
      }
    }
  }
  DecodeCacheEntry* e = nullptr;
  const Instr* i = fetchLookup(e);
  // No link across a skipped forced-emulation prefix: the link would be
  // keyed by the prefix's address, and taking it would not move RIP past it.
  if (e != nullptr && prevEntry_ != nullptr && s_.seg[1].base + s_.rip == key) {
    DecodeCacheEntry::Link* links = prevEntry_->link;
    links[1] = links[0];
    links[0] = DecodeCacheEntry::Link{key, linkEpoch_, e};
  }
  prevEntry_ = e;
  return i;
}

const Instr* CpuImpl::fetchLookup(DecodeCacheEntry*& entry) {
  uint64_t lin;
  if (mode_ == CpuMode::kLong64) {
    lin = s_.rip;
    if (!isCanonical(lin)) {
      raiseGp(0);
      return nullptr;
    }
  } else {
    if (s_.rip > s_.seg[1].limit) {
      raiseGp(0);
      return nullptr;
    }
    lin = (s_.seg[1].base + s_.rip) & 0xFFFFFFFFull;
  }
  const bool user = cpl_ == 3;
  const TlbEntry& t = tlb_[(lin >> 12) & (kTlbSize - 1)];
  uint64_t phys;
  if (__builtin_expect(t.tag == (lin >> 12) && (t.allowed & tlbperm::bit(Access::kExec, user)),
                       1)) {
    phys = t.physPage | (lin & 0xFFF);
  } else if (!translate(lin, Access::kExec, false, phys)) {
    return nullptr;
  }
  DecodeCacheEntry* ce = in_->index[phys & kCacheMask];
  if (__builtin_expect(ce != nullptr && ce->tag == cacheTag(phys, mode_), 1)) {
    if (mode_ != CpuMode::kLong64 && s_.rip + ce->instr.length - 1 > s_.seg[1].limit) {
      raiseGp(0);
      return nullptr;
    }
    entry = ce;
    return &ce->instr;
  }
  return fetchSlow(lin, phys, entry);
}

const Instr* CpuImpl::fetchSlow(uint64_t lin, uint64_t phys, DecodeCacheEntry*& entry) {
  uint8_t bytes[16] = {};
  unsigned have = std::min<unsigned>(15, 0x1000 - (lin & 0xFFF));
  // CS limit: bytes beyond it may not be fetched.
  unsigned limitBytes = 15;
  if (mode_ != CpuMode::kLong64) {
    const uint64_t room = uint64_t{s_.seg[1].limit} - s_.rip + 1;
    limitBytes = static_cast<unsigned>(std::min<uint64_t>(15, room));
  }
  have = std::min(have, limitBytes);
  physAccess(phys, bytes, have, false);
  bool cacheable = isRamRange(phys, have);
  const ZydisDecoder& dec = in_->decoders[static_cast<int>(mode_)];
  Instr& out = in_->scratch;
  bool needMore = false, tooLong = false;
  bool ok = decodeInstr(dec, mode_, bytes, have, out, needMore, tooLong);
  if (!ok && needMore) {
    const unsigned more = std::min(15u, limitBytes) - have;
    if (more == 0) {
      // The instruction runs past the CS limit.
      raiseGp(0);
      return nullptr;
    }
    uint64_t lin2 = lin + have;
    if (!longMode()) lin2 &= 0xFFFFFFFFull;
    uint64_t phys2;
    if (!translate(lin2, Access::kExec, false, phys2)) return nullptr;
    physAccess(phys2, bytes + have, more, false);
    ok = decodeInstr(dec, mode_, bytes, have + more, out, needMore, tooLong);
    cacheable = false;  // spans two pages
  }
  if (!ok) {
    if (needMore || tooLong) {  // past the CS limit, or longer than 15 bytes
      raiseGp(0);
      return nullptr;
    }
    raiseUd();
    return nullptr;
  }
  // KVM's forced-emulation prefix: ud2; .ascii "kvm" — execute what follows,
  // as KVM does: it moves RIP past the prefix before emulating, so the
  // instruction behaves as if it started there (faults and instruction
  // breakpoints at its own address). The prefix itself is never cached, so
  // every pass through it comes here.
  if (skipKvmFep_ && out.mnemonic == ZYDIS_MNEMONIC_UD2 && have >= 5 && bytes[2] == 'k' &&
      bytes[3] == 'v' && bytes[4] == 'm') {
    s_.rip = (s_.rip + 5) & ipMask_;
    return fetchLookup(entry);
  }
  if (!cacheable) return &out;
  if (in_->poolUsed == kDecodePoolSize) dropDecodedCode();
  // The slot is raw storage, or an entry dropped with the rest of the cache.
  DecodeCacheEntry& ce =
      *::new (&in_->pool[in_->poolUsed++]) DecodeCacheEntry{cacheTag(phys, mode_), out, {}};
  in_->index[phys & kCacheMask] = &ce;
  entry = &ce;
  markCode(phys, out.length);
  return &ce.instr;
}

void CpuImpl::markCode(uint64_t phys, unsigned length) {
  const uint64_t pfn = phys >> 12;
  const unsigned first = (phys & 0xFFF) >> 6;
  const unsigned last = ((phys & 0xFFF) + length - 1) >> 6;
  uint64_t bits = 0;
  for (unsigned c = first; c <= last; ++c) bits |= 1ull << c;
  if (in_->codeChunks[pfn] == 0) stripTlbWrite(pfn << 12);
  in_->codeChunks[pfn] |= bits;
}

EngineStats CpuImpl::engineStats() const {
  return blocks_ ? blocks_->stats() : EngineStats{};
}

void CpuImpl::notifyRamWritten(uint64_t physAddr, uint64_t length) {
  // Only RAM holds cached code: clamp to it (any address/length is accepted).
  const uint64_t ramSize = mem_.ram.size();
  if (length == 0 || physAddr >= ramSize) return;
  const uint64_t end = physAddr + std::min(length, ramSize - physAddr);
  for (uint64_t page = physAddr >> 12; page <= (end - 1) >> 12; ++page) {
    if (page >= in_->codeChunks.size() || in_->codeChunks[page] == 0) continue;
    const uint64_t pBegin = std::max(physAddr, page << 12);
    const uint64_t pEnd = std::min(end, (page + 1) << 12);
    const unsigned c0 = (pBegin & 0xFFF) >> 6;
    const unsigned c1 = ((pEnd - 1) & 0xFFF) >> 6;
    uint64_t hitMask = 0;
    for (unsigned c = c0; c <= c1; ++c) hitMask |= 1ull << c;
    if (!(in_->codeChunks[page] & hitMask)) continue;
    if (blocks_ && blocks_->invalidate(pBegin, pEnd)) ++linkEpoch_;
    // Drop every cached instruction of this page that overlaps the write:
    // those starting in [pBegin - 14, pEnd).
    const uint64_t scanBegin = std::max(page << 12, pBegin >= 14 ? pBegin - 14 : 0);
    for (uint64_t a = scanBegin; a < pEnd; ++a) {
      DecodeCacheEntry*& ce = in_->index[a & kCacheMask];
      if (ce != nullptr && (ce->tag & ((1ull << 56) - 1)) == a && a + ce->instr.length > pBegin) {
        ce->tag = 0;
        ce = nullptr;
        ++linkEpoch_;
      }
    }
    // Chunks fully inside the write hold no cached instruction any more.
    for (unsigned c = c0; c <= c1; ++c) {
      const uint64_t cb = (page << 12) + c * 64;
      if (cb >= pBegin && cb + 64 <= pEnd && (cb + 64) % 4096 != 0) {
        // an instruction starting in this chunk may extend into the next;
        // it was dropped above, so clearing this chunk's bit is exact.
        in_->codeChunks[page] &= ~(1ull << c);
      }
    }
  }
}

void CpuImpl::dropDecodedCode() {
  ++linkEpoch_;
  // Blocks rely on the code map too.
  if (blocks_) blocks_->flush();
  prevEntry_ = nullptr;
  std::fill(in_->index.begin(), in_->index.end(), nullptr);
  in_->poolUsed = 0;
  in_->codeChunks.clear();
}

void CpuImpl::flushCaches() {
  dropDecodedCode();
  flushTlb(true);
}

// -------------------------------------------------------------- step loop

StepResult CpuImpl::step() {
  StepResult r;
  if (tripleFault_) {
    r.outcome = StepOutcome::kTripleFault;
    return r;
  }
  if (!in_->breakpoints.empty() && !skipBreakpoint_ && atDebuggerBreakpoint()) {
    r.outcome = StepOutcome::kBreakpoint;
    return r;
  }
  skipBreakpoint_ = false;
  in_->watchHit = false;

  // Events at the instruction boundary.
  const InterruptShadow shadow = s_.pending.shadow;
  if (shadow != InterruptShadow::kMovSs && !s_.pending.nmiBlocked && env_.nmiPending()) {
    env_.acknowledgeNmi();
    s_.pending.shadow = InterruptShadow::kNone;
    s_.pending.halted = false;
    const bool ok = deliverEvent(PendingException{true, vec::kNMI, false, 0, EventKind::kNmi});
    ++s_.steps;  // delivered, or the shutdown it ended in
    r.outcome = ok ? StepOutcome::kNmi : StepOutcome::kTripleFault;
    r.vector = vec::kNMI;
    return finishStep(r);
  }
  if ((s_.rflags & flags::kIF) && shadow == InterruptShadow::kNone && env_.interruptPending()) {
    const uint8_t v = env_.acknowledgeInterrupt();
    s_.pending.halted = false;
    const bool ok = deliverEvent(PendingException{true, v, false, 0, EventKind::kExternal});
    ++s_.steps;  // delivered, or the shutdown it ended in
    r.outcome = ok ? StepOutcome::kInterrupt : StepOutcome::kTripleFault;
    r.vector = ok ? delivered_.vector : v;
    if (ok && delivered_.vector != v) {
      // Delivering the interrupt faulted: what the guest got is an exception.
      r.outcome = StepOutcome::kException;
      r.hasErrorCode = delivered_.hasErrorCode;
      r.errorCode = delivered_.errorCode;
    }
    return finishStep(r);
  }
  if (s_.pending.halted) {
    r.outcome = StepOutcome::kHalted;
    return r;
  }
  return executeOne(shadow);
}

StepResult CpuImpl::finishStep(StepResult r) {
  if (in_->watchHit && r.outcome != StepOutcome::kTripleFault) {
    r.outcome = StepOutcome::kWatchpoint;
    r.watch = in_->hit;
    in_->watchHit = false;
  }
  if (r.outcome == StepOutcome::kRetired && env_.stopRequested())
    r.outcome = StepOutcome::kStopRequested;
  return r;
}

StepResult CpuImpl::executeOne(InterruptShadow shadowBefore) {
  uint64_t rip0 = s_.rip;
  const uint64_t flagsBefore = s_.rflags;
  exc_.valid = false;
  debugTrapBits_ = 0;
  s_.pending.shadow = InterruptShadow::kNone;

  ExecStatus st;
  const Instr* i = nullptr;
  // An instruction breakpoint on the instruction in a MOV SS / POP SS shadow
  // is not triggered (SDM vol. 3 18.3.1.1; see debug_hooks.cc).
  const bool breakpointsOn = shadowBefore != InterruptShadow::kMovSs;
  if (breakpointsOn && !debugBeforeInstruction()) {
    st = ExecStatus::kException;
  } else {
    i = fetch();
    // A forced-emulation prefix was skipped: the instruction starts after it.
    // Its faults are reported there, and its own address is checked for an
    // instruction breakpoint as KVM's emulator does (the prefix's address was
    // checked above, as the hardware does for the ud2 KVM intercepts).
    const bool skippedPrefix = s_.rip != rip0;
    rip0 = s_.rip;
    if (skippedPrefix && i != nullptr && breakpointsOn && !debugBeforeInstruction()) i = nullptr;
    st = i ? i->handler(*this, *i) : ExecStatus::kException;
  }
  return finishInstruction(st, i, rip0, flagsBefore, shadowBefore);
}

// Completes a step after the handler ran: RIP, HLT, fault/trap delivery,
// RF, the step count, single-step and deferred debug traps.
StepResult CpuImpl::finishInstruction(ExecStatus st, const Instr* i, uint64_t rip0,
                                      uint64_t flagsBefore, InterruptShadow shadowBefore) {
  StepResult r;
  switch (st) {
    case ExecStatus::kNext: s_.rip = nextRip(*i); break;
    case ExecStatus::kJumped:
    case ExecStatus::kRepeat: break;
    case ExecStatus::kHalt:
      s_.rip = nextRip(*i);
      s_.pending.halted = true;
      break;
    case ExecStatus::kException: {
      TTVM_ASSERT(exc_.valid, "handler returned kException without raising, rip ", rip0);
      if (exc_.kind == EventKind::kFault) {
        s_.rip = rip0;
        s_.pending.shadow = shadowBefore == InterruptShadow::kMovSs ? InterruptShadow::kNone
                                                                    : InterruptShadow::kNone;
      } else {
        s_.rip = nextRip(*i);
      }
      const PendingException e = exc_;
      // A #DB raised by the shadowed instruction itself (INT1, general
      // detect) absorbs a single-step owed to MOV SS/POP SS (as hardware and
      // KVM do): it is not delivered separately.
      if (e.vector == vec::kDB && (e.kind == EventKind::kIcebp || e.kind == EventKind::kFault))
        s_.pending.pendingDr6 = 0;
      const bool delivered = deliverEvent(
          e, e.kind == EventKind::kFault ? std::nullopt : std::optional<uint64_t>(rip0));
      // A triple fault is a step too: the failed deliveries changed the
      // machine (CR2, DR6, stack bytes), and replay must reach that state.
      ++s_.steps;
      if (!delivered) {
        r.outcome = StepOutcome::kTripleFault;
        return r;
      }
      r.outcome = StepOutcome::kException;
      r.vector = delivered_.vector;
      r.hasErrorCode = delivered_.hasErrorCode;
      r.errorCode = delivered_.errorCode;
      // Debug traps owed to MOV SS / POP SS (single-step, data breakpoint on
      // its read) whose shadowed instruction raised another event are taken
      // at the first boundary after it: before the handler's first
      // instruction (hardware behaviour behind CVE-2018-8897; debug_hooks.cc).
      if (s_.pending.pendingDr6) {
        s_.dr6 = (s_.dr6 & ~0xFull) | s_.pending.pendingDr6;
        s_.pending.pendingDr6 = 0;
        if (!deliverEvent(PendingException{true, vec::kDB, false, 0, EventKind::kTrap})) {
          r.outcome = StepOutcome::kTripleFault;
          return r;
        }
        r.vector = delivered_.vector;
        r.hasErrorCode = delivered_.hasErrorCode;
        r.errorCode = delivered_.errorCode;
      }
      // A trap-like software event with TF set: #DB follows after delivery
      // only for INT1/INTO-style traps is not architectural; TF is cleared on
      // handler entry, so nothing more here.
      return finishStep(r);
    }
  }
  // Retired. RF is cleared, except between REP iterations: there it is set
  // so that a trap or interrupt taken before the next iteration pushes RF=1
  // (SDM vol. 3 18.3.1.1) and an instruction breakpoint does not re-fire.
  // IRET keeps the RF it loaded (a handler resuming at an instruction
  // breakpoint sets RF in the image).
  const bool loadsRf =
      i != nullptr && (i->mnemonic == ZYDIS_MNEMONIC_IRET || i->mnemonic == ZYDIS_MNEMONIC_IRETD ||
                       i->mnemonic == ZYDIS_MNEMONIC_IRETQ);
  if (st == ExecStatus::kRepeat)
    s_.rflags |= flags::kRF;
  else if (!loadsRf)
    s_.rflags &= ~flags::kRF;
  ++s_.steps;
  r.outcome = StepOutcome::kRetired;

  // Debug traps: single-step (TF set before the instruction) and data
  // breakpoints, deferred across a MOV SS / POP SS shadow.
  uint64_t dbBits = debugTrapBits_;
  if (flagsBefore & flags::kTF) dbBits |= kDr6Bs;
  if (s_.pending.shadow == InterruptShadow::kMovSs) {
    s_.pending.pendingDr6 |= dbBits;
  } else {
    dbBits |= s_.pending.pendingDr6;
    s_.pending.pendingDr6 = 0;
    if (dbBits) {
      // B0-B3 report this trap's breakpoints (cleared for a single-step-only
      // trap); BS and the other bits are sticky.
      s_.dr6 = (s_.dr6 & ~0xFull) | dbBits;
      s_.pending.halted = false;
      const bool ok = deliverEvent(PendingException{true, vec::kDB, false, 0, EventKind::kTrap});
      r.outcome = ok ? StepOutcome::kException : StepOutcome::kTripleFault;
      r.vector = ok ? delivered_.vector : vec::kDB;
      r.hasErrorCode = ok && delivered_.hasErrorCode;
      r.errorCode = ok ? delivered_.errorCode : 0;
    }
  }
  return finishStep(r);
}

bool CpuImpl::atDebuggerBreakpoint() {
  const uint64_t lin =
      mode_ == CpuMode::kLong64 ? s_.rip : ((s_.seg[1].base + s_.rip) & 0xFFFFFFFFull);
  std::optional<uint64_t> phys;
  bool physKnown = false;
  for (const DebuggerBreakpoint& b : in_->breakpoints) {
    if (!b.physical) {
      if (b.address == lin) return true;
      continue;
    }
    if (!physKnown) {
      phys = translateNoSideEffects(lin, false);
      physKnown = true;
    }
    if (phys && *phys == b.address) return true;
  }
  return false;
}

StepResult CpuImpl::runReference(uint64_t maxSteps) {
  // The fast loop: the same semantics as calling step() maxSteps times, with
  // the per-step bookkeeping that cannot apply skipped. Anything unusual
  // (debugger breakpoints/watchpoints, guest debug registers, TF/RF, an
  // interrupt shadow, HLT, a pending event) goes through step().
  StepResult r;
  // Without a hint from the environment: ask at every boundary.
  static const volatile uint32_t kAlwaysAsk = 1;
  const volatile uint32_t* hint = env_.eventHint();
  if (hint == nullptr) hint = &kAlwaysAsk;
  for (uint64_t n = 0; n < maxSteps; ++n) {
    const bool unusual = runSlow_ || s_.pending.halted || s_.pending.pendingDr6 ||
                         s_.pending.shadow != InterruptShadow::kNone ||
                         (s_.rflags & (flags::kTF | flags::kRF)) || skipBreakpoint_;
    // The hint without its maskable-only bit while IF=0, where no maskable
    // interrupt can be taken: a guest that runs with interrupts off while a
    // request waits at the PIC (the PIT's IRQ 0 after the BIOS set-up) then
    // costs no branch per step. The conditions below still test IF.
    static_assert(kEventHintMaskableOnly == 2 && flags::kIF == 1u << 9);
    const uint32_t h = *hint & ~(static_cast<uint32_t>(~s_.rflags >> 8) & kEventHintMaskableOnly);
    // Linear debugger breakpoints are checked here so that they do not force
    // the slow path; step() reports the stop (and honours skipBreakpointOnce).
    bool atBreakpoint = false;
    if (!linearBreakpoints_.empty()) {
      const uint64_t lin =
          mode_ == CpuMode::kLong64 ? s_.rip : ((s_.seg[1].base + s_.rip) & 0xFFFFFFFFull);
      atBreakpoint = std::binary_search(linearBreakpoints_.begin(), linearBreakpoints_.end(), lin);
    }
    if (__builtin_expect(unusual || atBreakpoint, 0) ||
        (__builtin_expect(h != 0, 0) &&
         ((h != kEventHintMaskableOnly && !s_.pending.nmiBlocked && env_.nmiPending()) ||
          ((s_.rflags & flags::kIF) && env_.interruptPending())))) {
      r = step();
      if (r.outcome != StepOutcome::kRetired) return r;
      continue;
    }
    exc_.valid = false;
    // fetch()'s first link check, inlined for the common sequential case.
    const Instr* i;
    const DecodeCacheEntry* pe = prevEntry_;
    if (__builtin_expect(pe != nullptr && pe->link[0].rip == s_.seg[1].base + s_.rip &&
                             pe->link[0].epoch == linkEpoch_ && mode_ == CpuMode::kLong64,
                         1)) {
      prevEntry_ = pe->link[0].to;
      i = &prevEntry_->instr;
    } else {
      i = fetch();
    }
    // Taken after fetch(): past a skipped forced-emulation prefix. Guest
    // instruction breakpoints, the other thing that depends on it, go
    // through step().
    const uint64_t rip0 = s_.rip;
    const ExecStatus st = i ? i->handler(*this, *i) : ExecStatus::kException;
    if (__builtin_expect(st == ExecStatus::kNext, 1)) {
      s_.rip = nextRip(*i);
    } else if (st == ExecStatus::kRepeat) {
      s_.rflags |= flags::kRF;  // as finishInstruction does between iterations
    } else if (st != ExecStatus::kJumped) {
      r = finishInstruction(st, i, rip0, s_.rflags, InterruptShadow::kNone);
      if (r.outcome != StepOutcome::kRetired) return r;
      continue;
    }
    ++s_.steps;
    // The hint is read again: the instruction may have set it (a port write
    // that asks the run to end must end it after this step, as step() does).
    if (const uint32_t after = *hint; __builtin_expect(after != 0, 0) &&
                                      after != kEventHintMaskableOnly && env_.stopRequested()) {
      r = StepResult{};
      r.outcome = StepOutcome::kStopRequested;
      return r;
    }
  }
  r = StepResult{};
  return r;
}

void CpuImpl::setState(const CpuState& s) {
  s_ = s;
  tripleFault_ = false;
  updateRunSlow();
  updateMode();
  flushTlb(true);
  debugRegistersChanged();
}

void CpuImpl::setDirtyTracking(bool on) {
  (void)takeDirtyPages();
  in_->dirtyTracking = on;
}

std::vector<uint64_t> CpuImpl::takeDirtyPages() {
  // A copy, so that dirtyPages keeps its capacity for the next interval.
  std::vector<uint64_t> out(in_->dirtyPages.begin(), in_->dirtyPages.end());
  in_->dirtyPages.clear();
  for (uint64_t p : out) in_->dirty[p] = 0;
  std::sort(out.begin(), out.end());
  // The next write to any page must mark it again: no TLB entry may keep
  // fast-path write permission.
  for (TlbEntry& e : tlb_)
    e.allowed &= ~(tlbperm::bit(Access::kWrite, true) | tlbperm::bit(Access::kWrite, false));
  return out;
}

void CpuImpl::setAccessTracking(bool on) {
  (void)takeAccessedPages();
  in_->accessTracking = on;
}

std::vector<uint64_t> CpuImpl::takeAccessedPages() {
  std::vector<uint64_t> out = std::move(in_->accessedPages);
  in_->accessedPages.clear();
  for (uint64_t p : out) in_->accessed[p] = 0;
  std::sort(out.begin(), out.end());
  // Every page must be seen again from here: no TLB entry or decoded
  // instruction may reach a page without passing a slow path that marks it.
  flushCaches();
  return out;
}

void CpuImpl::setBreakpoints(std::vector<DebuggerBreakpoint> bps) {
  in_->breakpoints = std::move(bps);
  linearBreakpoints_.clear();
  hasPhysicalBreakpoints_ = false;
  for (const DebuggerBreakpoint& b : in_->breakpoints) {
    if (b.physical)
      hasPhysicalBreakpoints_ = true;
    else
      linearBreakpoints_.push_back(b.address);
  }
  std::sort(linearBreakpoints_.begin(), linearBreakpoints_.end());
  // Compiled code goes on into another block only through entries made
  // under the current link epoch for blocks without a breakpoint.
  ++linkEpoch_;
  updateRunSlow();
}

void CpuImpl::setWatchpoints(std::vector<DebuggerWatchpoint> wps) {
  in_->watchpoints = std::move(wps);
  flushTlb(true);
  updateRunSlow();
}

void CpuImpl::updateRunSlow() {
  blocksSlow_ = tripleFault_ || guestDebugActive_ || dataBreakpointsActive_;
  runSlow_ = blocksSlow_ || hasPhysicalBreakpoints_ || !in_->watchpoints.empty();
}

}  // namespace ttvm
