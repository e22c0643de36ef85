#include "ttvm/machine/bus.h"

#include <algorithm>
#include <cinttypes>

namespace ttvm::machine {

PortBus::PortBus() : reported_(65536, false) {
  entries_.push_back(Entry{nullptr, ""});
}

Status PortBus::map(uint16_t first, uint32_t count, PortDevice* device, std::string name) {
  TTVM_ASSERT(device != nullptr);
  if (count == 0 || first + count > 65536u)
    return makeError("port range " + std::to_string(first) + "+" + std::to_string(count) +
                     " (decimal) for " + name + " is outside the 64 KiB port space");
  if (entries_.size() >= 255) return makeError("too many port devices (at most 254)");
  for (uint32_t p = first; p < first + count; ++p) {
    if (owner_[p] != 0) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "port 0x%x is claimed by both %s and %s", p,
                    entries_[owner_[p]].name.c_str(), name.c_str());
      return makeError(buf);
    }
  }
  entries_.push_back(Entry{device, std::move(name)});
  auto idx = static_cast<uint8_t>(entries_.size() - 1);
  for (uint32_t p = first; p < first + count; ++p) owner_[p] = idx;
  return {};
}

uint32_t PortBus::read(uint16_t port, unsigned size) {
  uint8_t idx = owner_[port];
  if (idx != 0) return entries_[idx].device->portRead(port, size);
  reportUnclaimed(port, false);
  return static_cast<uint32_t>(allOnes(size));
}

void PortBus::write(uint16_t port, unsigned size, uint32_t value) {
  uint8_t idx = owner_[port];
  if (idx != 0) return entries_[idx].device->portWrite(port, size, value);
  reportUnclaimed(port, true);
}

std::string PortBus::ownerOf(uint16_t port) const {
  return entries_[owner_[port]].name;
}

void PortBus::reportUnclaimed(uint16_t port, bool write) {
  ++unclaimedCount_;
  if (reported_[port]) return;
  reported_[port] = true;
  if (report_ != nullptr)
    std::fprintf(report_,
                 "ttvm: guest %s unclaimed port 0x%x (first access; reads return all-ones, "
                 "writes are dropped)\n",
                 write ? "wrote" : "read", port);
}

Status MmioBus::map(uint64_t base, uint64_t length, MmioDevice* device, std::string name) {
  TTVM_ASSERT(device != nullptr);
  if (length == 0 || base + length < base)
    return makeError("MMIO range for " + name + " is empty or wraps around");
  for (const Range& r : ranges_) {
    if (base < r.base + r.length && r.base < base + length) {
      char buf[200];
      std::snprintf(buf, sizeof buf,
                    "MMIO range 0x%" PRIx64 "+0x%" PRIx64 " of %s overlaps %s at 0x%" PRIx64, base,
                    length, name.c_str(), r.name.c_str(), r.base);
      return makeError(buf);
    }
  }
  ranges_.push_back(Range{base, length, device, std::move(name)});
  std::sort(ranges_.begin(), ranges_.end(),
            [](const Range& a, const Range& b) { return a.base < b.base; });
  return {};
}

Status MmioBus::mapMovable(uint64_t length, MovableMmioDevice* device, std::string name) {
  TTVM_ASSERT(device != nullptr);
  if (length == 0) return makeError("MMIO window for " + name + " is empty");
  movable_.push_back(Movable{length, device, std::move(name)});
  return {};
}

MmioBus::Target MmioBus::find(uint64_t addr) const {
  for (const Movable& m : movable_) {
    const std::optional<uint64_t> base = m.device->mmioWindow();
    if (base && addr - *base < m.length) return Target{m.device, addr - *base, &m.name};
  }
  // Few ranges (a handful of devices): a linear scan beats a tree.
  for (const Range& r : ranges_) {
    if (addr - r.base < r.length) return Target{r.device, addr - r.base, &r.name};
  }
  return Target{};
}

uint64_t MmioBus::read(uint64_t addr, unsigned size) {
  const Target t = find(addr);
  if (t.device != nullptr) return t.device->mmioRead(t.offset, size);
  reportUnclaimed(addr, false);
  return allOnes(size);
}

void MmioBus::write(uint64_t addr, unsigned size, uint64_t value) {
  const Target t = find(addr);
  if (t.device != nullptr) return t.device->mmioWrite(t.offset, size, value);
  reportUnclaimed(addr, true);
}

std::string MmioBus::ownerOf(uint64_t addr) const {
  const Target t = find(addr);
  return t.name != nullptr ? *t.name : std::string();
}

void MmioBus::reportUnclaimed(uint64_t addr, bool write) {
  ++unclaimedCount_;
  if (!reportedPages_.insert(addr >> 12).second) return;
  if (report_ != nullptr)
    std::fprintf(report_,
                 "ttvm: guest %s unclaimed physical address 0x%" PRIx64
                 " (first access to this page; reads return all-ones, writes are dropped)\n",
                 write ? "wrote" : "read", addr);
}

}  // namespace ttvm::machine
