#include "ttvm/machine/devices/acpi_pm.h"

namespace ttvm::machine {

uint32_t AcpiPm::portRead(uint16_t port, unsigned size) {
  // Registers by byte offset; a wider read takes successive bytes.
  uint32_t v = 0;
  for (unsigned i = 0; i < size; ++i) {
    unsigned off = port - kBase + i;
    uint8_t b = 0;
    if (off < 2) {
      b = static_cast<uint8_t>(status_ >> (8 * off));
    } else if (off < 4) {
      b = static_cast<uint8_t>(enable_ >> (8 * (off - 2)));
    } else if (off < 6) {
      b = static_cast<uint8_t>(control_reg_ >> (8 * (off - 4)));
    } else if (off >= 8 && off < 12) {
      b = static_cast<uint8_t>(timer() >> (8 * (off - 8)));
    }
    v |= uint32_t{b} << (8 * i);
  }
  return v;
}

void AcpiPm::portWrite(uint16_t port, unsigned size, uint32_t value) {
  for (unsigned i = 0; i < size; ++i) {
    unsigned off = port - kBase + i;
    auto b = static_cast<uint8_t>(value >> (8 * i));
    if (off < 2) {
      status_ &= static_cast<uint16_t>(~(uint16_t{b} << (8 * off)));  // write 1 to clear
    } else if (off < 4) {
      unsigned sh = 8 * (off - 2);
      enable_ = static_cast<uint16_t>((enable_ & ~(0xFF << sh)) | (b << sh));
    } else if (off < 6) {
      unsigned sh = 8 * (off - 4);
      control_reg_ = static_cast<uint16_t>((control_reg_ & ~(0xFF << sh)) | (b << sh));
    }
  }
  if (control_reg_ & (1u << 13)) {  // SLP_EN
    unsigned type = (control_reg_ >> 10) & 7;
    control_reg_ &= static_cast<uint16_t>(~(1u << 13));
    StopRequest r;
    r.reason = EndReason::kShutdown;
    r.message = "guest entered ACPI sleep state (SLP_TYP " + std::to_string(type) +
                ") through PM1a control at 0x604: power off";
    control_->requestStop(std::move(r));
  }
  control_reg_ |= 1;  // always in ACPI mode
}

}  // namespace ttvm::machine
