// The MC146818 CMOS real-time clock at 0x70 (index; bit 7 = NMI mask) and
// 0x71 (data), IRQ 8.
//
// Time is the recording's start clock (MachineConfig::startClockUnixNs,
// stored in the trace) plus virtual time, so a replay reads the same dates.
// Registers: seconds..year (0-9), status A (UIP for the last 244 us of each
// second, rate select), B (SET, PIE, AIE, UIE, DM binary/BCD, 24/12 hour),
// C (IRQF, PF, AF, UF; cleared by reading), D (VRT), century at 0x32, and
// the CMOS memory a BIOS fills (base/extended memory sizes at 0x15-0x18,
// 0x30/0x31, 0x34/0x35, 0x5B-0x5D). Periodic, alarm and update-ended
// interrupts are deadlines on the virtual clock; writes to the time
// registers (with SET or without) move the clock's offset.
#pragma once

#include <array>
#include <cstdint>

#include "ttvm/machine/device.h"
#include "ttvm/machine/irq.h"
#include "ttvm/machine/virtual_clock.h"

namespace ttvm::machine {

class CmosRtc final : public Device, public PortDevice, public TimedDevice {
 public:
  CmosRtc(IrqLine irq8, VirtualClock* clock, int64_t startUnixNs, uint64_t ramBytes);

  std::string_view name() const override { return "rtc"; }
  void saveState(StateWriter& out) const override;
  Status loadState(StateReader& in) override;

  uint32_t portRead(uint16_t port, unsigned size) override;
  void portWrite(uint16_t port, unsigned size, uint32_t value) override;

  std::optional<uint64_t> nextDeadlineNs() const override;
  void advanceTo(uint64_t nowNs) override;

  bool nmiMasked() const { return index_ & 0x80; }
  // Seconds since 1970 the guest's clock shows now.
  int64_t unixSecondsNow() const;

 private:
  uint8_t readRegister(uint8_t reg);
  void writeRegister(uint8_t reg, uint8_t v);
  uint8_t toGuest(int value) const;  // BCD or binary per register B
  int fromGuest(uint8_t v) const;
  uint64_t periodicPeriodNs() const;
  void updateIrq();
  void recompute();

  IrqLine irq_;
  VirtualClock* clock_;
  int64_t offsetSec_;    // guest time = offsetSec_ + floor(virtual ns / 1e9) + base frac
  int64_t startFracNs_;  // sub-second part of the start clock
  uint8_t index_ = 0;
  std::array<uint8_t, 128> cmos_{};
  uint64_t nextPeriodicNs_ = 0;  // 0 = off
  uint64_t nextSecondNs_ = 0;    // next update cycle (UF, alarm check)
  bool irqLevel_ = false;
};

}  // namespace ttvm::machine
