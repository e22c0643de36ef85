// The local APIC of the (single) CPU: xAPIC registers in the 4 KiB MMIO page
// at IA32_APIC_BASE's address (0xFEE00000 after reset; the guest may move
// it) and x2APIC registers as MSRs 0x800-0x8FF (Environment::readMsr/
// writeMsr), selected by IA32_APIC_BASE (owned by the CPU: bit 11 global
// enable, bit 10 x2APIC mode), which the APIC reads through a pointer the
// machine binds. The MMIO bus asks mmioWindow() at every access, so the page
// follows the MSR as the CPU writes it; disabled or in x2APIC mode there is
// no page (the old address is unclaimed: all-ones).
//
// Registers: ID, version (0x14, 6 LVT entries), TPR, APR, PPR, EOI, LDR,
// DFR, SVR, ISR/TMR/IRR (256 bits each), ESR, ICR (self-IPI by shorthand or
// by destination; NMI delivery), LVT timer/thermal/perf/LINT0/LINT1/error,
// timer initial/current count and divide configuration, x2APIC SELF_IPI.
// No CMCI LVT (the version says 6 entries): 0x2F0 is reserved, as are APR,
// DFR and ICR2 in x2APIC mode (#GP there, like any reserved register).
//
// Priority: PPR = TPR if TPR[7:4] >= ISRV[7:4], else ISRV & 0xF0; a request
// is delivered when its vector class is above PPR's. EOI clears the highest
// ISR bit and, for a level-triggered vector (TMR), tells the I/O APIC.
//
// Timer: counts down at 1 GHz / divide (time from the VirtualClock);
// one-shot, periodic, and TSC-deadline (IA32_TSC_DEADLINE, MSR 0x6E0) modes.
// The timer's expiries are the device's deadlines. Changing between one-shot
// and periodic keeps the current count (no reload); an expired one-shot
// count stays 0 in periodic mode until TMICT is written again.
//
// TPR and CR8: the emulator keeps CR8 in CpuState; the APIC takes TPR from
// CR8 whenever the guest changed CR8 since the APIC last looked (at every
// register read and interrupt check). A TPR written through the APIC is not
// seen by a later MOV from CR8 (the CPU owns CR8).
#pragma once

#include <array>
#include <cstdint>
#include <functional>

#include "ttvm/emulator/cpu_state.h"
#include "ttvm/machine/device.h"
#include "ttvm/machine/virtual_clock.h"

namespace ttvm::machine {

class LocalApic final : public Device, public MovableMmioDevice, public TimedDevice {
 public:
  static constexpr uint64_t kDefaultBase = 0xFEE00000;
  static constexpr uint32_t kMsrTscDeadline = 0x6E0;

  // tscHz converts TSC-deadline values to virtual ns.
  LocalApic(VirtualClock* clock, uint64_t tscHz);

  std::string_view name() const override { return "lapic"; }
  void saveState(StateWriter& out) const override;
  Status loadState(StateReader& in) override;

  // xAPIC MMIO (offset within the 4 KiB page). Ignored unless the APIC is
  // globally enabled and not in x2APIC mode.
  uint64_t mmioRead(uint64_t offset, unsigned size) override;
  void mmioWrite(uint64_t offset, unsigned size, uint64_t value) override;
  // The register page's address while the APIC is globally enabled in xAPIC
  // mode, else nullopt.
  std::optional<uint64_t> mmioWindow() const override;

  // x2APIC MSRs and IA32_TSC_DEADLINE; nullopt/false = #GP.
  std::optional<uint64_t> readMsr(uint32_t index);
  // Whether readMsr answers `index` (else #GP) with IA32_APIC_BASE
  // `apicBase`: a function of the two alone, so the replay of a KVM trace,
  // which has no machine, knows which reads the recorder's machine refused
  // (nothing is logged for those).
  static bool answersMsrRead(uint32_t index, uint64_t apicBase);
  bool writeMsr(uint32_t index, uint64_t value);

  std::optional<uint64_t> nextDeadlineNs() const override;
  void advanceTo(uint64_t nowNs) override;

  // Binds IA32_APIC_BASE and CR8 of the CPU (CpuState fields).
  void bindCpuRegisters(const uint64_t* apicBaseMsr, const uint64_t* cr8);

  bool globallyEnabled() const { return (*apicBase_ & apicbase::kEnabled) != 0; }
  bool x2apicMode() const {
    constexpr uint64_t kBoth = apicbase::kEnabled | apicbase::kX2apic;
    return (*apicBase_ & kBoth) == kBoth;
  }
  bool softwareEnabled() const { return (svr_ & 0x100) != 0; }

  // An interrupt message from the I/O APIC, an IPI or a local source.
  void acceptInterrupt(uint8_t vector, bool levelTriggered);
  // Whether the CPU has an interrupt to take from the APIC now.
  bool hasDeliverable();
  // INTA: moves the highest deliverable IRR vector to ISR (or returns the
  // spurious vector when none is deliverable any more).
  uint8_t acknowledge();
  // Whether the PIC's INTR reaches the CPU (APIC globally disabled, or LINT0
  // programmed as an unmasked ExtINT).
  bool acceptsPicInterrupts() const;
  // NMI requests (ICR with NMI delivery, LINT1 as NMI).
  bool nmiPending() const { return nmiPending_; }
  void clearNmi() { nmiPending_ = false; }
  void raiseLint1();

  // Called with the vector of every EOI of a level-triggered interrupt.
  void setEoiListener(std::function<void(uint8_t)> listener) { eoiListener_ = std::move(listener); }

  uint8_t tpr() const { return tpr_; }
  uint8_t ppr() const;
  bool irrBit(uint8_t v) const { return bit(irr_, v); }
  bool isrBit(uint8_t v) const { return bit(isr_, v); }

 private:
  using Bits = std::array<uint32_t, 8>;
  static bool bit(const Bits& b, unsigned v) { return (b[v >> 5] >> (v & 31)) & 1; }
  static void setBit(Bits& b, unsigned v) { b[v >> 5] |= 1u << (v & 31); }
  static void clearBit(Bits& b, unsigned v) { b[v >> 5] &= ~(1u << (v & 31)); }
  static int highest(const Bits& b);

  // Register access by xAPIC offset (bits 4-11 of the address); a read is
  // answered where registerReadable says so (in the mode given).
  static bool registerReadable(uint32_t offset, bool x2apic);
  std::optional<uint32_t> readRegister(uint32_t offset) const;
  bool writeRegister(uint32_t offset, uint32_t value);
  void sendIpi(uint64_t icr);
  void eoi();
  void syncTprFromCr8();
  void updatePending();
  uint32_t timerDivide() const;
  uint64_t timerCurrentCount() const;
  uint64_t timerCountIn(uint32_t mode) const;  // TMCCT as `mode` would count now
  void startTimer();
  void timerLvtChanged(uint32_t oldLvt);
  uint32_t& lvt(int i) { return lvt_[i]; }

  VirtualClock* clock_;
  uint64_t tscHz_;
  uint64_t defaultApicBase_ = kDefaultBase | 0x900;
  uint64_t defaultCr8_ = 0;
  const uint64_t* apicBase_ = &defaultApicBase_;
  const uint64_t* cr8_ = &defaultCr8_;
  uint64_t lastCr8_ = 0;

  uint32_t id_ = 0;
  uint8_t tpr_ = 0;
  uint32_t ldr_ = 0, dfr_ = 0xFFFFFFFF, svr_ = 0xFF, esr_ = 0, pendingEsr_ = 0;
  uint64_t icr_ = 0;
  // LVT: 0 CMCI (unused), 1 timer, 2 thermal, 3 perf, 4 LINT0, 5 LINT1, 6 error.
  std::array<uint32_t, 7> lvt_{};
  Bits irr_{}, isr_{}, tmr_{};
  uint32_t timerInitial_ = 0, timerDcr_ = 0;
  uint64_t timerStartNs_ = 0;
  uint64_t timerDeadlineNs_ = 0;  // next expiry; 0 = none
  uint64_t tscDeadline_ = 0;
  bool nmiPending_ = false;
  bool deliverable_ = false;
  std::function<void(uint8_t)> eoiListener_;
};

}  // namespace ttvm::machine
