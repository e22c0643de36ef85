// A CGA/VGA colour text display as far as text-mode kernels use it: 32 KiB
// of text memory at 0xB8000 (character and attribute bytes; reads return
// what was written) and the CRT controller's index/data pair at
// 0x3D4/0x3D5, whose 32 registers read back what was written (cursor
// location high/low 0x0E/0x0F, start address 0x0C/0x0D...). Nothing is
// displayed: the guest's screen is its memory, which a replay recomputes.
#pragma once

#include <array>

#include "ttvm/machine/device.h"

namespace ttvm::machine {

class CgaText final : public Device, public PortDevice, public MmioDevice {
 public:
  static constexpr uint64_t kMemBase = 0xB8000, kMemSize = 0x8000;
  static constexpr uint16_t kCrtcIndex = 0x3D4, kCrtcData = 0x3D5;
  static constexpr uint8_t kCursorHigh = 0x0E, kCursorLow = 0x0F;

  std::string_view name() const override { return "cga-text"; }
  void saveState(StateWriter& out) const override;
  Status loadState(StateReader& in) override;
  uint32_t portRead(uint16_t port, unsigned size) override;
  void portWrite(uint16_t port, unsigned size, uint32_t value) override;
  uint64_t mmioRead(uint64_t offset, unsigned size) override;
  void mmioWrite(uint64_t offset, unsigned size, uint64_t value) override;

  // The cursor position (character cell index) the CRTC holds.
  uint16_t cursor() const {
    return static_cast<uint16_t>(crtc_[kCursorHigh] << 8 | crtc_[kCursorLow]);
  }
  uint8_t textByte(uint64_t offset) const { return memory_[offset % kMemSize]; }

 private:
  uint8_t index_ = 0;
  std::array<uint8_t, 32> crtc_{};
  DeviceMemory memory_{kMemSize};
};

}  // namespace ttvm::machine
