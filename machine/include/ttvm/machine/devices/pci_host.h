// PCI configuration mechanism #1 with one host bridge, as QEMU's "pc"
// machine has it (an Intel 440FX at 00:00.0, vendor 8086 device 1237, class
// 06 00 00): the address register CONFIG_ADDRESS at 0xCF8 (dword accesses
// only; bit 31 enable, bus 23:16, device 15:11, function 10:8, register 7:2)
// and the data window CONFIG_DATA at 0xCFC-0xCFF (any width; the byte offset
// within the dword comes from the port). Other devices and functions read
// all-ones (no device); writes to them are dropped. The bridge's registers
// are read-only but for the command register's memory/I/O/bus-master bits
// and the latency timer; it has no BARs. 0xCF9 (the reset control register)
// is another device; byte accesses to 0xCF8, 0xCFA and 0xCFB reach no register.
#pragma once

#include <array>

#include "ttvm/machine/device.h"

namespace ttvm::machine {

class PciHost final : public Device, public PortDevice {
 public:
  static constexpr uint16_t kAddressPort = 0xCF8, kDataPort = 0xCFC;
  static constexpr uint16_t kVendorId = 0x8086, kDeviceId = 0x1237;

  PciHost();
  std::string_view name() const override { return "pci-host"; }
  void saveState(StateWriter& out) const override;
  Status loadState(StateReader& in) override;
  uint32_t portRead(uint16_t port, unsigned size) override;
  void portWrite(uint16_t port, unsigned size, uint32_t value) override;

  // The host bridge's configuration space (for tests).
  uint8_t config(unsigned offset) const { return config_[offset & 0xFF]; }

 private:
  // The configuration-space byte offset CONFIG_ADDRESS selects for the data
  // port `port`, or nothing when it selects no register of the bridge.
  std::optional<unsigned> selected(uint16_t port) const;

  uint32_t address_ = 0;
  std::array<uint8_t, 256> config_{};
};

}  // namespace ttvm::machine
