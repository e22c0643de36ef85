#include "ttvm/machine/devices/pci_host.h"

namespace ttvm::machine {
namespace {

constexpr unsigned kCommand = 0x04, kLatencyTimer = 0x0D;
constexpr uint16_t kCommandWritable = 0x0007;  // I/O space, memory space, bus master
constexpr uint32_t kAddressEnable = 0x80000000u;
constexpr uint32_t kAddressWritable = 0x80FFFFFCu;  // reserved 30:24 and 1:0 read as 0

}  // namespace

PciHost::PciHost() {
  auto put = [&](unsigned off, uint32_t v, unsigned n) {
    for (unsigned i = 0; i < n; ++i) config_[off + i] = static_cast<uint8_t>(v >> (8 * i));
  };
  put(0x00, kVendorId, 2);
  put(0x02, kDeviceId, 2);
  put(kCommand, 0x0006, 2);  // memory space, bus master (as firmware leaves it)
  put(0x06, 0x0280, 2);      // status: fast back-to-back, DEVSEL medium
  put(0x08, 0x02, 1);        // revision
  put(0x09, 0x060000, 3);    // class: bridge, host bridge, programming interface 0
  put(0x0E, 0x00, 1);        // header type 0, single function
  put(0x2C, 0x1AF4, 2);      // subsystem vendor (as QEMU's)
  put(0x2E, 0x1100, 2);      // subsystem
}

void PciHost::saveState(StateWriter& out) const {
  out.u32(address_);
  out.u16(static_cast<uint16_t>(config_[kCommand] | (config_[kCommand + 1] << 8)));
  out.u8(config_[kLatencyTimer]);
}

Status PciHost::loadState(StateReader& in) {
  address_ = in.u32();
  const uint16_t command = in.u16();
  config_[kCommand] = static_cast<uint8_t>(command);
  config_[kCommand + 1] = static_cast<uint8_t>(command >> 8);
  config_[kLatencyTimer] = in.u8();
  if (!in.failed() && (address_ & ~kAddressWritable) != 0)
    in.fail("pci-host address reserved bits");
  return in.status();
}

std::optional<unsigned> PciHost::selected(uint16_t port) const {
  if (!(address_ & kAddressEnable)) return std::nullopt;
  // Bus 0, device 0, function 0 only.
  if ((address_ & 0x00FFFF00u) != 0) return std::nullopt;
  return (address_ & 0xFC) + (port - kDataPort);
}

uint32_t PciHost::portRead(uint16_t port, unsigned size) {
  const uint32_t none = size >= 4 ? 0xFFFFFFFFu : (1u << (8 * size)) - 1;
  if (port == kAddressPort) return size == 4 ? address_ : none;
  if (port < kDataPort) return none;  // 0xCFA/0xCFB
  const std::optional<unsigned> off = selected(port);
  if (!off) return none;
  uint32_t v = 0;
  for (unsigned i = 0; i < size && *off + i < config_.size(); ++i)
    v |= uint32_t{config_[*off + i]} << (8 * i);
  return v;
}

void PciHost::portWrite(uint16_t port, unsigned size, uint32_t value) {
  if (port == kAddressPort) {
    if (size == 4) address_ = value & kAddressWritable;
    return;
  }
  if (port < kDataPort) return;
  const std::optional<unsigned> off = selected(port);
  if (!off) return;
  for (unsigned i = 0; i < size; ++i) {
    const unsigned at = *off + i;
    const auto b = static_cast<uint8_t>(value >> (8 * i));
    if (at == kCommand)
      config_[at] =
          static_cast<uint8_t>((config_[at] & ~kCommandWritable) | (b & kCommandWritable));
    else if (at == kLatencyTimer)
      config_[at] = b;
  }
}

}  // namespace ttvm::machine
