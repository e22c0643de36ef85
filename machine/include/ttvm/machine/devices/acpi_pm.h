// ACPI fixed hardware of a PIIX4-style power-management block at 0x600, as
// QEMU's "pc" machine has it (and the FADT describes): PM1a event block at
// 0x600 (status, enable), PM1a control at 0x604, and the PM timer at 0x608
// (24-bit, 3.579545 MHz, from virtual time — kernels calibrate against it).
// Writing PM1a control with SLP_EN (bit 13) ends the run as a shutdown. The
// machine is always in ACPI mode (FADT SMI_CMD = 0), so SCI_EN reads as 1.
#pragma once

#include "ttvm/machine/device.h"
#include "ttvm/machine/virtual_clock.h"

namespace ttvm::machine {

class AcpiPm final : public Device, public PortDevice {
 public:
  static constexpr uint16_t kBase = 0x600;
  static constexpr uint16_t kPorts = 0x0C;
  static constexpr uint64_t kTimerHz = 3'579'545;

  AcpiPm(RunControl* control, VirtualClock* clock) : control_(control), clock_(clock) {}

  std::string_view name() const override { return "acpi-pm"; }
  void saveState(StateWriter& out) const override {
    out.u16(status_);
    out.u16(enable_);
    out.u16(control_reg_);
  }
  Status loadState(StateReader& in) override {
    status_ = in.u16();
    enable_ = in.u16();
    control_reg_ = in.u16();
    return in.status();
  }

  uint32_t portRead(uint16_t port, unsigned size) override;
  void portWrite(uint16_t port, unsigned size, uint32_t value) override;

  uint32_t timer() const {
    return static_cast<uint32_t>(mulDiv(clock_->nowNs(), kTimerHz, 1'000'000'000) & 0xFFFFFF);
  }

 private:
  RunControl* control_;
  VirtualClock* clock_;
  uint16_t status_ = 0;
  uint16_t enable_ = 0;
  uint16_t control_reg_ = 1;  // SCI_EN
};

}  // namespace ttvm::machine
