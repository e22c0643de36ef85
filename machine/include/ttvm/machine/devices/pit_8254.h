// The 8254 programmable interval timer at 0x40-0x43 (1.193182 MHz), with
// port 0x61 (channel 2 gate, speaker data, OUT2 and the refresh toggle).
//
// Counters are not ticked: each channel remembers when its count was loaded
// (virtual ns) and computes count and OUT from the elapsed time, so reading
// them is exact and costs nothing while the guest runs. Channel 0's OUT
// rising edges (mode 2: every period; mode 3: every period; mode 0/1: at
// terminal count; mode 4/5: the strobe) pulse IRQ 0; they are the device's
// deadlines. Modes 0-5, counter latch, read-back (count and status),
// LSB/MSB/LSB-then-MSB access, and gate semantics of channel 2 (modes 0/4
// pause while the gate is low; 1/2/3/5 restart on its rising edge) are
// implemented. BCD counting is not (the BCD bit is kept and reported).
#pragma once

#include <cstdint>

#include "ttvm/machine/device.h"
#include "ttvm/machine/irq.h"
#include "ttvm/machine/virtual_clock.h"

namespace ttvm::machine {

class Pit8254 final : public Device, public PortDevice, public TimedDevice {
 public:
  static constexpr uint64_t kFrequencyHz = 1'193'182;

  Pit8254(IrqLine irq0, VirtualClock* clock) : irq0_(irq0), clock_(clock) {}

  std::string_view name() const override { return "pit"; }
  void saveState(StateWriter& out) const override;
  Status loadState(StateReader& in) override;

  uint32_t portRead(uint16_t port, unsigned size) override;
  void portWrite(uint16_t port, unsigned size, uint32_t value) override;

  std::optional<uint64_t> nextDeadlineNs() const override;
  void advanceTo(uint64_t nowNs) override;

  // Channel 0 in mode 3 with the given reload (65536 = 18.2 Hz), as a BIOS leaves it.
  void biosInit();
  // Counter value of a channel now (tests).
  uint16_t currentCount(int channel) const;
  bool output(int channel) const;

 private:
  struct Channel {
    uint32_t reload = 0x10000;  // 1..65536
    uint8_t mode = 0;
    uint8_t access = 3;  // 1 LSB, 2 MSB, 3 LSB then MSB
    bool bcd = false;
    bool gate = true;
    bool counting = false;      // a count has been loaded (and the gate allows)
    bool nullCount = true;      // a count was written but not yet loaded
    uint64_t loadNs = 0;        // virtual time the count was loaded
    uint64_t pausedTicks = 0;   // modes 0/4: ticks elapsed before the gate fell
    bool readMsbNext = false;   // LSB-then-MSB read toggle
    bool writeMsbNext = false;  // LSB-then-MSB write toggle
    uint8_t writeLatch = 0;
    bool countLatched = false;
    uint16_t latchedCount = 0;
    bool latchMsbNext = false;  // for a latched count in LSB-then-MSB mode
    uint8_t latchedAccess = 3;
    bool statusLatched = false;
    uint8_t latchedStatus = 0;
  };
  uint64_t ticksSinceLoad(const Channel& c, uint64_t nowNs) const;
  uint16_t countAt(const Channel& c, uint64_t nowNs) const;
  bool outAt(const Channel& c, uint64_t nowNs) const;
  // Virtual time of the next OUT rising edge of channel c strictly after nowNs.
  std::optional<uint64_t> nextEdgeAfter(const Channel& c, uint64_t nowNs) const;
  uint64_t tickToNs(const Channel& c, uint64_t ticks) const;
  void loadCount(int ch, uint32_t value);
  void setGate(int ch, bool gate);
  uint8_t statusByte(int ch) const;
  void recomputeIrqDeadline();

  IrqLine irq0_;
  VirtualClock* clock_;
  Channel ch_[3];
  uint8_t port61_ = 0;  // bits 0 (gate 2) and 1 (speaker data) as written
  uint64_t nextIrqNs_ = 0;
  bool irqArmed_ = false;
};

}  // namespace ttvm::machine
