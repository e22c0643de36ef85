// QEMU's pvpanic ISA device at port 0x505. Reads return the supported events
// (bit 0 PANICKED, bit 1 CRASH_LOADED); writing PANICKED ends the run as a
// guest panic. CRASH_LOADED (a crash kernel is about to run) is logged and
// the guest continues, as under QEMU.
#pragma once

#include "ttvm/machine/device.h"

namespace ttvm::machine {

class PvPanic final : public Device, public PortDevice {
 public:
  static constexpr uint16_t kPort = 0x505;
  static constexpr uint8_t kPanicked = 1;
  static constexpr uint8_t kCrashLoaded = 2;
  explicit PvPanic(RunControl* control) : control_(control) {}

  std::string_view name() const override { return "pvpanic"; }
  void saveState(StateWriter& out) const override { out.u8(events_); }
  Status loadState(StateReader& in) override {
    events_ = in.u8();
    return in.status();
  }

  uint32_t portRead(uint16_t, unsigned) override { return kPanicked | kCrashLoaded; }
  void portWrite(uint16_t, unsigned, uint32_t value) override;

  // Events the guest reported so far (bits as above).
  uint8_t events() const { return events_; }

 private:
  RunControl* control_;
  uint8_t events_ = 0;
};

}  // namespace ttvm::machine
