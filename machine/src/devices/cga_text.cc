#include "ttvm/machine/devices/cga_text.h"

namespace ttvm::machine {

void CgaText::saveState(StateWriter& out) const {
  out.u8(index_);
  out.bytes(crtc_);
  out.memory(memory_);
}

Status CgaText::loadState(StateReader& in) {
  index_ = in.u8();
  in.fixedBytes(crtc_);
  in.memory(memory_);
  return in.status();
}

uint32_t CgaText::portRead(uint16_t port, unsigned size) {
  // A 16-bit access at 0x3D4 reads the index and the selected register, as
  // a word OUT there writes both.
  uint32_t v = 0;
  for (unsigned i = 0; i < size; ++i) {
    const uint16_t p = static_cast<uint16_t>(port + i);
    uint8_t b = 0xFF;
    if (p == kCrtcIndex) b = index_;
    if (p == kCrtcData) b = crtc_[index_ % crtc_.size()];
    v |= uint32_t{b} << (8 * i);
  }
  return v;
}

void CgaText::portWrite(uint16_t port, unsigned size, uint32_t value) {
  for (unsigned i = 0; i < size; ++i) {
    const uint16_t p = static_cast<uint16_t>(port + i);
    const auto b = static_cast<uint8_t>(value >> (8 * i));
    if (p == kCrtcIndex) index_ = b;
    if (p == kCrtcData) crtc_[index_ % crtc_.size()] = b;
  }
}

uint64_t CgaText::mmioRead(uint64_t offset, unsigned size) {
  uint64_t v = 0;
  for (unsigned i = 0; i < size; ++i) v |= uint64_t{memory_[(offset + i) % kMemSize]} << (8 * i);
  return v;
}

void CgaText::mmioWrite(uint64_t offset, unsigned size, uint64_t value) {
  std::span<uint8_t> m = memory_.change();
  for (unsigned i = 0; i < size; ++i)
    m[(offset + i) % kMemSize] = static_cast<uint8_t>(value >> (8 * i));
}

}  // namespace ttvm::machine
