// The Bochs/QEMU debug console at port 0xE9: a byte written goes to the
// console; a read returns 0xE9 (how guests detect it).
#pragma once

#include "ttvm/machine/device.h"

namespace ttvm::machine {

class DebugConsole final : public Device, public PortDevice {
 public:
  static constexpr uint16_t kPort = 0xE9;
  explicit DebugConsole(ConsoleSink* console) : console_(console) {}

  std::string_view name() const override { return "debugcon"; }
  void saveState(StateWriter&) const override {}
  Status loadState(StateReader&) override { return {}; }

  uint32_t portRead(uint16_t, unsigned) override { return kPort; }
  void portWrite(uint16_t, unsigned size, uint32_t value) override {
    // A wider write sends its bytes in order, as QEMU's debugcon does.
    for (unsigned i = 0; i < size; ++i)
      if (console_ != nullptr) console_->write(static_cast<uint8_t>(value >> (8 * i)));
  }

 private:
  ConsoleSink* console_;
};

}  // namespace ttvm::machine
