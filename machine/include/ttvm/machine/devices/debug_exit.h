// QEMU's isa-debug-exit at 0xF4 (4 ports wide): a write of v ends the run
// with process exit status (v << 1) | 1, as QEMU exits. Reads return all-ones
// (QEMU's device has no read side).
#pragma once

#include "ttvm/machine/device.h"

namespace ttvm::machine {

class DebugExit final : public Device, public PortDevice {
 public:
  static constexpr uint16_t kPort = 0xF4;
  static constexpr uint16_t kPorts = 4;
  explicit DebugExit(RunControl* control) : control_(control) {}

  std::string_view name() const override { return "isa-debug-exit"; }
  void saveState(StateWriter&) const override {}
  Status loadState(StateReader&) override { return {}; }

  uint32_t portRead(uint16_t, unsigned size) override {
    return static_cast<uint32_t>((1ull << (8 * size)) - 1);
  }
  void portWrite(uint16_t, unsigned, uint32_t value) override {
    StopRequest r;
    r.reason = EndReason::kExitDevice;
    r.guestValue = value;
    r.exitStatus = (value << 1) | 1;
    r.message = "guest wrote " + std::to_string(value) + " to isa-debug-exit (exit status " +
                std::to_string(((value << 1) | 1) & 0xFF) + ")";
    control_->requestStop(std::move(r));
  }

 private:
  RunControl* control_;
};

}  // namespace ttvm::machine
