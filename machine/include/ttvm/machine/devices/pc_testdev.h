// QEMU's pc-testdev, which kernels built for QEMU (kvm-unit-tests style) use
// to check themselves:
//  - ports 0xE0-0xE3: a 4-byte latch (a write of any size at any of the
//    ports stores those bytes; reads return them);
//  - ports 0x2000-0x2017: writing v to 0x2000 + n sets interrupt line n
//    (ISA IRQ / GSI n) to (v != 0);
//  - ports 0x4000-0x4003: "flush page" (accepted and ignored: ttvm has no
//    host mappings to flush);
//  - 64 KiB of RAM-like memory at 0xFF000000 whose accesses go through the
//    MMIO path (each is an MMIO event in the trace).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "ttvm/machine/device.h"
#include "ttvm/machine/irq.h"

namespace ttvm::machine {

class PcTestDev final : public Device, public PortDevice, public MmioDevice {
 public:
  static constexpr uint16_t kLatchPort = 0xE0;
  static constexpr uint16_t kIrqPort = 0x2000;
  static constexpr unsigned kIrqLines = 24;
  static constexpr uint16_t kFlushPort = 0x4000;
  static constexpr uint64_t kMemBase = 0xFF000000;
  static constexpr uint64_t kMemSize = 0x10000;

  explicit PcTestDev(IrqSink* irqs) : irqs_(irqs), mem_(kMemSize) {}

  std::string_view name() const override { return "pc-testdev"; }
  void saveState(StateWriter& out) const override;
  Status loadState(StateReader& in) override;

  uint32_t portRead(uint16_t port, unsigned size) override;
  void portWrite(uint16_t port, unsigned size, uint32_t value) override;
  uint64_t mmioRead(uint64_t offset, unsigned size) override;
  void mmioWrite(uint64_t offset, unsigned size, uint64_t value) override;

 private:
  IrqSink* irqs_;
  std::array<uint8_t, 4> latch_{};
  uint32_t irqLevels_ = 0;
  DeviceMemory mem_;
};

}  // namespace ttvm::machine
