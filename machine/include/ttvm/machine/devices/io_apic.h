// The I/O APIC at 0xFEC00000 (82093AA-style, version 0x20, 24 pins):
// IOREGSEL at +0x00, IOWIN at +0x10, EOI register at +0x40; registers ID (0),
// version (1), arbitration (2) and the redirection table (0x10 + 2n).
//
// Each pin's level comes from the machine's router. Edge-triggered entries
// deliver on a rising edge; level-triggered entries deliver while the line is
// asserted and Remote IRR is clear, set Remote IRR, and redeliver after the
// local APIC's EOI for their vector if the line is still asserted. Masked
// pins latch nothing (as hardware: an edge while masked is lost; a level
// delivers when unmasked). Delivery goes to the local APIC when the
// destination names it (physical ID, broadcast, or logical match); NMI
// delivery raises an NMI, ExtINT is left to the 8259 path.
#pragma once

#include <array>
#include <cstdint>

#include "ttvm/machine/device.h"
#include "ttvm/machine/devices/local_apic.h"

namespace ttvm::machine {

class IoApic final : public Device, public MmioDevice {
 public:
  static constexpr uint64_t kBase = 0xFEC00000;
  static constexpr unsigned kPins = 24;

  explicit IoApic(LocalApic* lapic) : lapic_(lapic) {
    for (uint64_t& e : redirection_) e = 1ull << 16;  // masked
  }

  std::string_view name() const override { return "ioapic"; }
  void saveState(StateWriter& out) const override;
  Status loadState(StateReader& in) override;

  uint64_t mmioRead(uint64_t offset, unsigned size) override;
  void mmioWrite(uint64_t offset, unsigned size, uint64_t value) override;

  void setPin(unsigned pin, bool level);
  // EOI broadcast from the local APIC for a level-triggered vector.
  void endOfInterrupt(uint8_t vector);

  uint64_t redirection(unsigned pin) const { return redirection_[pin]; }

 private:
  void service(unsigned pin);
  bool deliver(unsigned pin);

  LocalApic* lapic_;
  uint8_t id_ = 0;
  uint32_t select_ = 0;
  std::array<uint64_t, kPins> redirection_{};
  uint32_t levels_ = 0;  // pin input levels
};

}  // namespace ttvm::machine
