#include "ttvm/machine/devices/local_apic.h"

#include <cstdio>

#include "ttvm/base/assert.h"

namespace ttvm::machine {
namespace {

constexpr uint32_t kLvtMasked = 1u << 16;
enum LvtIndex {
  kLvtCmci = 0,
  kLvtTimer = 1,
  kLvtThermal = 2,
  kLvtPerf = 3,
  kLvtLint0 = 4,
  kLvtLint1 = 5,
  kLvtError = 6
};
constexpr uint32_t kTimerModeShift = 17;
constexpr uint32_t kModeOneShot = 0, kModePeriodic = 1, kModeTscDeadline = 2;
constexpr uint32_t kVersion = 0x00050014;  // version 0x14, max LVT entry 5 (6 entries)

int lvtIndexOf(uint32_t offset) {
  switch (offset) {
    case 0x320: return kLvtTimer;
    case 0x330: return kLvtThermal;
    case 0x340: return kLvtPerf;
    case 0x350: return kLvtLint0;
    case 0x360: return kLvtLint1;
    case 0x370: return kLvtError;
    default: return -1;
  }
}

uint32_t lvtWritableMask(int i) {
  switch (i) {
    case kLvtTimer: return 0x700FF;
    case kLvtLint0:
    case kLvtLint1: return 0x1A7FF;
    case kLvtError: return 0x100FF;
    default: return 0x107FF;
  }
}

}  // namespace

LocalApic::LocalApic(VirtualClock* clock, uint64_t tscHz)
    : clock_(clock), tscHz_(tscHz == 0 ? 1'000'000'000 : tscHz) {
  for (uint32_t& l : lvt_) l = kLvtMasked;
  // As QEMU and BIOSes leave the BSP: LINT0 in ExtINT mode (virtual wire),
  // so the 8259's interrupts reach the CPU; LINT1 NMI, masked.
  lvt_[kLvtLint0] = 0x700;
  lvt_[kLvtLint1] = kLvtMasked | 0x400;
}

void LocalApic::bindCpuRegisters(const uint64_t* apicBaseMsr, const uint64_t* cr8) {
  apicBase_ = apicBaseMsr != nullptr ? apicBaseMsr : &defaultApicBase_;
  cr8_ = cr8 != nullptr ? cr8 : &defaultCr8_;
  lastCr8_ = *cr8_;
}

int LocalApic::highest(const Bits& b) {
  for (int i = 7; i >= 0; --i)
    if (b[i] != 0) return i * 32 + 31 - __builtin_clz(b[i]);
  return -1;
}

uint8_t LocalApic::ppr() const {
  int isrv = highest(isr_);
  if (isrv < 0) isrv = 0;
  if ((tpr_ >> 4) >= (isrv >> 4)) return tpr_;
  return static_cast<uint8_t>(isrv & 0xF0);
}

void LocalApic::updatePending() {
  int v = highest(irr_);
  deliverable_ = softwareEnabled() && v >= 0 && (v & 0xF0) > (ppr() & 0xF0);
}

void LocalApic::syncTprFromCr8() {
  if (*cr8_ != lastCr8_) {
    lastCr8_ = *cr8_;
    // A CR8 equal to TPR[7:4] is the CPU following a TPR written through
    // the registers (the CPU owns CR8 and sets it after such a write: see
    // CpuImpl::noteApicWrite and WRMSR); anything else is a MOV to CR8,
    // which also clears TPR[3:0]. (A MOV to CR8 of the value CR8 already
    // holds therefore keeps TPR[3:0], where hardware would clear them.)
    if ((tpr_ >> 4) != (lastCr8_ & 0xF)) {
      tpr_ = static_cast<uint8_t>((lastCr8_ & 0xF) << 4);
      updatePending();
    }
  }
}

bool LocalApic::hasDeliverable() {
  if (!globallyEnabled()) return false;
  syncTprFromCr8();
  return deliverable_;
}

uint8_t LocalApic::acknowledge() {
  syncTprFromCr8();
  int v = highest(irr_);
  if (!globallyEnabled() || !deliverable_ || v < 0) return static_cast<uint8_t>(svr_ & 0xFF);
  clearBit(irr_, static_cast<unsigned>(v));
  setBit(isr_, static_cast<unsigned>(v));
  updatePending();
  return static_cast<uint8_t>(v);
}

bool LocalApic::acceptsPicInterrupts() const {
  if (!globallyEnabled()) return true;
  uint32_t l = lvt_[kLvtLint0];
  return !(l & kLvtMasked) && ((l >> 8) & 7) == 7;
}

void LocalApic::raiseLint1() {
  uint32_t l = lvt_[kLvtLint1];
  if (l & kLvtMasked) return;
  if (((l >> 8) & 7) == 4) {
    nmiPending_ = true;
  } else if (((l >> 8) & 7) == 0) {
    acceptInterrupt(static_cast<uint8_t>(l & 0xFF), false);
  }
}

void LocalApic::acceptInterrupt(uint8_t vector, bool levelTriggered) {
  if (vector < 16) {
    pendingEsr_ |= 0x40;  // received illegal vector
    return;
  }
  setBit(irr_, vector);
  if (levelTriggered) {
    setBit(tmr_, vector);
  } else {
    clearBit(tmr_, vector);
  }
  updatePending();
}

void LocalApic::eoi() {
  int v = highest(isr_);
  if (v < 0) return;
  clearBit(isr_, static_cast<unsigned>(v));
  if (bit(tmr_, static_cast<unsigned>(v)) && eoiListener_) eoiListener_(static_cast<uint8_t>(v));
  updatePending();
}

void LocalApic::sendIpi(uint64_t icr) {
  auto vector = static_cast<uint8_t>(icr & 0xFF);
  unsigned mode = (icr >> 8) & 7;
  bool logical = (icr >> 11) & 1;
  unsigned shorthand = (icr >> 18) & 3;
  bool toSelf = false;
  if (shorthand == 1 || shorthand == 2) {
    toSelf = true;
  } else if (shorthand == 0) {
    if (x2apicMode()) {
      auto dest = static_cast<uint32_t>(icr >> 32);
      if (!logical) {
        toSelf = dest == id_ || dest == 0xFFFFFFFF;
      } else {
        uint32_t ldr = ((id_ >> 4) << 16) | (1u << (id_ & 0xF));
        toSelf = dest == 0xFFFFFFFF || ((dest >> 16) == (ldr >> 16) && (dest & ldr & 0xFFFF) != 0);
      }
    } else {
      auto dest = static_cast<uint8_t>(icr >> 56);
      if (!logical) {
        toSelf = dest == (id_ & 0xFF) || dest == 0xFF;
      } else if ((dfr_ >> 28) == 0xF) {  // flat model
        toSelf = (dest & (ldr_ >> 24)) != 0;
      } else {  // cluster model
        auto l = static_cast<uint8_t>(ldr_ >> 24);
        toSelf = dest == 0xFF || ((dest >> 4) == (l >> 4) && (dest & l & 0x0F) != 0);
      }
    }
  }
  if (!toSelf) return;  // no other CPUs
  switch (mode) {
    case 0:  // fixed
    case 1:  // lowest priority
      if (vector < 16) {
        pendingEsr_ |= 0x20 | 0x40;  // send and receive illegal vector
        return;
      }
      acceptInterrupt(vector, false);
      break;
    case 4: nmiPending_ = true; break;
    default: break;  // SMI, INIT, SIPI to itself: a single-CPU machine ignores them
  }
}

uint32_t LocalApic::timerDivide() const {
  uint32_t v = (timerDcr_ & 3) | ((timerDcr_ >> 1) & 4);
  return v == 7 ? 1 : 2u << v;
}

uint64_t LocalApic::timerCountIn(uint32_t mode) const {
  // A stopped timer (expired one-shot, or stopped by a mode change) has no
  // deadline and counts 0 in either count mode.
  if (timerInitial_ == 0 || mode == kModeTscDeadline || timerDeadlineNs_ == 0) return 0;
  uint64_t now = clock_->nowNs();
  uint64_t elapsed = (now - timerStartNs_) / timerDivide();
  if (mode == kModePeriodic) return timerInitial_ - (elapsed % timerInitial_);
  return elapsed >= timerInitial_ ? 0 : timerInitial_ - elapsed;
}

uint64_t LocalApic::timerCurrentCount() const {
  return timerCountIn((lvt_[kLvtTimer] >> kTimerModeShift) & 3);
}

void LocalApic::startTimer() {
  timerStartNs_ = clock_->nowNs();
  uint32_t mode = (lvt_[kLvtTimer] >> kTimerModeShift) & 3;
  if (mode == kModeTscDeadline) return;
  timerDeadlineNs_ =
      timerInitial_ == 0 ? 0 : timerStartNs_ + uint64_t{timerInitial_} * timerDivide();
  clock_->requestReschedule();
}

void LocalApic::timerLvtChanged(uint32_t oldLvt) {
  uint32_t oldMode = (oldLvt >> kTimerModeShift) & 3;
  uint32_t mode = (lvt_[kLvtTimer] >> kTimerModeShift) & 3;
  if (oldMode == mode) return;
  // Switching between TSC-deadline and count modes disarms the timer.
  if (oldMode == kModeTscDeadline || mode == kModeTscDeadline) {
    timerDeadlineNs_ = 0;
    timerInitial_ = 0;
    tscDeadline_ = 0;
    clock_->requestReschedule();
    return;
  }
  // One-shot <-> periodic: the count goes on from where it is, without a
  // reload from TMICT; an expired one-shot count stays at 0 (as KVM's APIC
  // and hardware do). Re-base the start so that the new mode computes the
  // same current count now, and expire when it reaches 0.
  uint64_t current = timerCountIn(oldMode);
  uint64_t now = clock_->nowNs();
  if (current == 0) {
    timerDeadlineNs_ = 0;
  } else {
    timerStartNs_ = now - (timerInitial_ - current) * timerDivide();
    timerDeadlineNs_ = now + current * timerDivide();
  }
  clock_->requestReschedule();
}

std::optional<uint64_t> LocalApic::nextDeadlineNs() const {
  if (timerDeadlineNs_ == 0) return std::nullopt;
  return timerDeadlineNs_;
}

void LocalApic::advanceTo(uint64_t nowNs) {
  if (timerDeadlineNs_ == 0 || nowNs < timerDeadlineNs_) return;
  uint32_t l = lvt_[kLvtTimer];
  uint32_t mode = (l >> kTimerModeShift) & 3;
  if (!(l & kLvtMasked)) acceptInterrupt(static_cast<uint8_t>(l & 0xFF), false);
  if (mode == kModePeriodic && timerInitial_ != 0) {
    uint64_t period = uint64_t{timerInitial_} * timerDivide();
    uint64_t k = (nowNs - timerStartNs_) / period + 1;
    timerDeadlineNs_ = timerStartNs_ + k * period;
  } else {
    timerDeadlineNs_ = 0;
    if (mode == kModeTscDeadline) tscDeadline_ = 0;
  }
}

bool LocalApic::registerReadable(uint32_t offset, bool x2apic) {
  switch (offset) {
    case 0x20:                   // ID
    case 0x30:                   // version
    case 0x80:                   // TPR
    case 0xA0:                   // PPR
    case 0xD0:                   // LDR
    case 0xF0:                   // SVR
    case 0x280:                  // ESR
    case 0x300:                  // ICR (low; all 64 bits as the x2APIC MSR)
    case 0x380:                  // TMICT
    case 0x390:                  // TMCCT
    case 0x3E0: return true;     // TDCR
    case 0x90:                   // APR: not in x2APIC
    case 0xB0:                   // EOI: write-only in x2APIC
    case 0xE0:                   // DFR: not in x2APIC
    case 0x310: return !x2apic;  // ICR high: part of the ICR MSR in x2APIC
    case 0x3F0: return false;    // SELF IPI is write-only
    default: break;
  }
  return (offset >= 0x100 && offset < 0x280) || lvtIndexOf(offset) >= 0;  // ISR, TMR, IRR, LVTs
}

bool LocalApic::answersMsrRead(uint32_t index, uint64_t apicBase) {
  if (index == kMsrTscDeadline) return true;
  constexpr uint64_t kBoth = apicbase::kEnabled | apicbase::kX2apic;
  if (index < 0x800 || index > 0x8FF || (apicBase & kBoth) != kBoth) return false;
  return registerReadable((index - 0x800) << 4, true);
}

std::optional<uint32_t> LocalApic::readRegister(uint32_t offset) const {
  bool x2 = x2apicMode();
  if (!registerReadable(offset, x2)) return std::nullopt;
  switch (offset) {
    case 0x20: return x2 ? id_ : id_ << 24;
    case 0x30: return kVersion;
    case 0x80: return tpr_;
    case 0x90: return 0;  // APR
    case 0xA0: return ppr();
    case 0xB0: return 0;  // EOI
    case 0xD0: return x2 ? ((id_ >> 4) << 16) | (1u << (id_ & 0xF)) : ldr_;
    case 0xE0: return dfr_;
    case 0xF0: return svr_;
    case 0x280: return esr_;
    case 0x300: return static_cast<uint32_t>(icr_);  // delivery status always idle
    case 0x310: return static_cast<uint32_t>(icr_ >> 32);
    case 0x380: return timerInitial_;
    case 0x390: return static_cast<uint32_t>(timerCurrentCount());
    case 0x3E0: return timerDcr_;
    default: break;
  }
  if (offset >= 0x100 && offset < 0x180) return isr_[(offset - 0x100) >> 4];
  if (offset >= 0x180 && offset < 0x200) return tmr_[(offset - 0x180) >> 4];
  if (offset >= 0x200 && offset < 0x280) return irr_[(offset - 0x200) >> 4];
  const int li = lvtIndexOf(offset);
  TTVM_ASSERT(li >= 0, "local APIC register ", offset, " readable but not read");
  return lvt_[li];
}

bool LocalApic::writeRegister(uint32_t offset, uint32_t value) {
  bool x2 = x2apicMode();
  switch (offset) {
    case 0x20:
      if (x2) return false;  // read-only in x2APIC mode
      id_ = value >> 24;
      return true;
    case 0x80:
      tpr_ = static_cast<uint8_t>(value);
      updatePending();
      return true;
    case 0xB0:
      if (x2 && value != 0) return false;
      eoi();
      return true;
    case 0xD0:
      if (x2) return false;
      ldr_ = value & 0xFF000000;
      return true;
    case 0xE0:
      if (x2) return false;
      dfr_ = value | 0x0FFFFFFF;
      return true;
    case 0xF0: {
      bool wasEnabled = softwareEnabled();
      svr_ = value & 0x1FF;
      if (wasEnabled && !softwareEnabled()) {
        for (uint32_t& l : lvt_) l |= kLvtMasked;  // software disable masks every LVT
      }
      updatePending();
      return true;
    }
    case 0x280:
      if (x2 && value != 0) return false;
      esr_ = pendingEsr_;
      pendingEsr_ = 0;
      return true;
    case 0x300:
      if (x2) return false;  // the 64-bit ICR is MSR 0x830 (handled by writeMsr)
      icr_ = (icr_ & 0xFFFFFFFF00000000ull) | (value & ~(1u << 12));
      sendIpi(icr_);
      return true;
    case 0x310:
      if (x2) return false;
      icr_ = (icr_ & 0xFFFFFFFFull) | (uint64_t{value} << 32);
      return true;
    case 0x380:
      if (((lvt_[kLvtTimer] >> kTimerModeShift) & 3) == kModeTscDeadline) return true;  // ignored
      timerInitial_ = value;
      startTimer();
      return true;
    case 0x3E0: timerDcr_ = value & 0xB; return true;
    case 0x3F0:
      if (!x2 || (value & ~0xFFu)) return false;  // bits 31:8 reserved
      acceptInterrupt(static_cast<uint8_t>(value), false);
      return true;
    default: break;
  }
  int li = lvtIndexOf(offset);
  if (li >= 0) {
    uint32_t old = lvt_[li];
    uint32_t v = value & lvtWritableMask(li);
    if (!softwareEnabled()) v |= kLvtMasked;
    if (li == kLvtTimer && ((v >> kTimerModeShift) & 3) == 3) v &= ~(3u << kTimerModeShift);
    lvt_[li] = v;
    if (li == kLvtTimer) timerLvtChanged(old);
    return true;
  }
  // Read-only registers (version, PPR, ISR, TMR, IRR, current count): writes
  // are ignored in xAPIC mode and #GP in x2APIC mode.
  return !x2;
}

std::optional<uint64_t> LocalApic::mmioWindow() const {
  if (!globallyEnabled() || x2apicMode()) return std::nullopt;
  return *apicBase_ & apicbase::kBaseMask;
}

uint64_t LocalApic::mmioRead(uint64_t offset, unsigned size) {
  if (!globallyEnabled() || x2apicMode()) return size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
  syncTprFromCr8();  // TPR and PPR reads see a CR8 written just before
  auto v = readRegister(static_cast<uint32_t>(offset & 0xFF0)).value_or(0);
  uint64_t r = v >> (8 * (offset & 3));
  return size >= 8 ? r : r & ((1ull << (8 * size)) - 1);
}

void LocalApic::mmioWrite(uint64_t offset, unsigned size, uint64_t value) {
  if (!globallyEnabled() || x2apicMode()) return;
  if ((offset & 0xF) != 0 || size < 4) return;  // registers take aligned 32-bit writes
  writeRegister(static_cast<uint32_t>(offset & 0xFF0), static_cast<uint32_t>(value));
}

std::optional<uint64_t> LocalApic::readMsr(uint32_t index) {
  if (!answersMsrRead(index, *apicBase_)) return std::nullopt;
  if (index == kMsrTscDeadline) {
    if (((lvt_[kLvtTimer] >> kTimerModeShift) & 3) != kModeTscDeadline) return 0;
    return tscDeadline_;
  }
  syncTprFromCr8();
  uint32_t offset = (index - 0x800) << 4;
  if (offset == 0x300) return icr_;
  return *readRegister(offset);
}

bool LocalApic::writeMsr(uint32_t index, uint64_t value) {
  if (index == kMsrTscDeadline) {
    if (((lvt_[kLvtTimer] >> kTimerModeShift) & 3) != kModeTscDeadline) return true;  // ignored
    tscDeadline_ = value;
    if (value == 0) {
      timerDeadlineNs_ = 0;
    } else {
      uint64_t ns = mulDivCeil(value, 1'000'000'000, tscHz_);
      timerDeadlineNs_ = ns <= clock_->nowNs() ? clock_->nowNs() : ns;
      if (timerDeadlineNs_ == 0) timerDeadlineNs_ = 1;
    }
    clock_->requestReschedule();
    return true;
  }
  if (index < 0x800 || index > 0x8FF || !x2apicMode()) return false;
  uint32_t offset = (index - 0x800) << 4;
  if (offset == 0x300) {
    icr_ = value & ~(1ull << 12);
    sendIpi(icr_);
    return true;
  }
  if (value >> 32) return false;  // reserved bits of a 32-bit register
  return writeRegister(offset, static_cast<uint32_t>(value));
}

void LocalApic::saveState(StateWriter& out) const {
  out.u32(id_);
  out.u8(tpr_);
  for (uint32_t v : {ldr_, dfr_, svr_, esr_, pendingEsr_}) out.u32(v);
  out.u64(icr_);
  for (uint32_t l : lvt_) out.u32(l);
  for (const Bits* b : {&irr_, &isr_, &tmr_})
    for (uint32_t w : *b) out.u32(w);
  out.u32(timerInitial_);
  out.u32(timerDcr_);
  out.u64(timerStartNs_);
  out.u64(timerDeadlineNs_);
  out.u64(tscDeadline_);
  out.boolean(nmiPending_);
  out.u64(lastCr8_);
}

Status LocalApic::loadState(StateReader& in) {
  id_ = in.u32();
  tpr_ = in.u8();
  for (uint32_t* v : {&ldr_, &dfr_, &svr_, &esr_, &pendingEsr_}) *v = in.u32();
  icr_ = in.u64();
  for (uint32_t& l : lvt_) l = in.u32();
  for (Bits* b : {&irr_, &isr_, &tmr_})
    for (uint32_t& w : *b) w = in.u32();
  timerInitial_ = in.u32();
  timerDcr_ = in.u32();
  timerStartNs_ = in.u64();
  timerDeadlineNs_ = in.u64();
  tscDeadline_ = in.u64();
  nmiPending_ = in.boolean();
  lastCr8_ = in.u64();
  updatePending();
  return in.status();
}

}  // namespace ttvm::machine
