// QEMU's firmware configuration device, traditional I/O interface: selector
// at 0x510 (16-bit write), data at 0x511 (byte reads advance through the
// selected item; past the end read 0). No DMA (FW_CFG_ID bit 1 clear, so
// drivers that check it use the port interface).
//
// Items: signature "QEMU" (0x00), ID (0x01), UUID (0x02), RAM size (0x03),
// nographic (0x04), nb_cpus = 1 (0x05), NUMA (0x0d), boot menu (0x0e),
// max_cpus (0x0f), command line size/data (0x14/0x15), the file directory
// (0x19: big-endian count, then {be32 size, be16 select, be16 reserved,
// char name[56]}), the x86 keys IRQ0 override (0x8002) and the legacy E820
// table (0x8003), and files from 0x20 on (etc/e820 by default).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ttvm/machine/device.h"

namespace ttvm::machine {

class FwCfg final : public Device, public PortDevice {
 public:
  static constexpr uint16_t kSelectorPort = 0x510;
  static constexpr uint16_t kDataPort = 0x511;
  static constexpr uint16_t kFileDir = 0x19;
  static constexpr uint16_t kFirstFile = 0x20;

  std::string_view name() const override { return "fw_cfg"; }
  void saveState(StateWriter& out) const override;
  Status loadState(StateReader& in) override;

  uint32_t portRead(uint16_t port, unsigned size) override;
  void portWrite(uint16_t port, unsigned size, uint32_t value) override;

  // Items are configured before the guest runs (they are not device state:
  // the machine rebuilds them from its configuration).
  void setItem(uint16_t key, std::vector<uint8_t> data);
  void setItemU16(uint16_t key, uint16_t v);
  void setItemU32(uint16_t key, uint32_t v);
  void setItemU64(uint16_t key, uint64_t v);
  // Adds a named file and rebuilds the directory; returns its key.
  uint16_t addFile(const std::string& name, std::vector<uint8_t> data);

 private:
  void rebuildDirectory();

  std::map<uint16_t, std::vector<uint8_t>> items_;
  std::vector<std::pair<std::string, uint16_t>> files_;
  uint16_t selector_ = 0;
  uint32_t offset_ = 0;
};

}  // namespace ttvm::machine
