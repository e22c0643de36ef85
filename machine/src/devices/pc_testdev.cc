#include "ttvm/machine/devices/pc_testdev.h"

namespace ttvm::machine {

uint32_t PcTestDev::portRead(uint16_t port, unsigned size) {
  if (port >= kLatchPort && port < kLatchPort + 4) {
    uint32_t v = 0;
    for (unsigned i = 0; i < size && port - kLatchPort + i < 4; ++i)
      v |= uint32_t{latch_[port - kLatchPort + i]} << (8 * i);
    return v;
  }
  if (port >= kIrqPort && port < kIrqPort + kIrqLines) return (irqLevels_ >> (port - kIrqPort)) & 1;
  return 0;
}

void PcTestDev::portWrite(uint16_t port, unsigned size, uint32_t value) {
  if (port >= kLatchPort && port < kLatchPort + 4) {
    for (unsigned i = 0; i < size && port - kLatchPort + i < 4; ++i)
      latch_[port - kLatchPort + i] = static_cast<uint8_t>(value >> (8 * i));
    return;
  }
  if (port >= kIrqPort && port < kIrqPort + kIrqLines) {
    unsigned line = port - kIrqPort;
    bool level = value != 0;
    if (level) {
      irqLevels_ |= 1u << line;
    } else {
      irqLevels_ &= ~(1u << line);
    }
    if (irqs_ != nullptr) irqs_->setIrqLevel(line, level);
  }
}

uint64_t PcTestDev::mmioRead(uint64_t offset, unsigned size) {
  uint64_t v = 0;
  for (unsigned i = 0; i < size && offset + i < kMemSize; ++i)
    v |= uint64_t{mem_[offset + i]} << (8 * i);
  return v;
}

void PcTestDev::mmioWrite(uint64_t offset, unsigned size, uint64_t value) {
  std::span<uint8_t> m = mem_.change();
  for (unsigned i = 0; i < size && offset + i < kMemSize; ++i)
    m[offset + i] = static_cast<uint8_t>(value >> (8 * i));
}

void PcTestDev::saveState(StateWriter& out) const {
  out.bytes(latch_);
  out.u32(irqLevels_);
  out.memory(mem_);
}

Status PcTestDev::loadState(StateReader& in) {
  in.fixedBytes(latch_);
  irqLevels_ = in.u32();
  in.memory(mem_);
  return in.status();
}

}  // namespace ttvm::machine
