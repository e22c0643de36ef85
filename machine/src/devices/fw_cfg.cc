#include "ttvm/machine/devices/fw_cfg.h"

#include <algorithm>

namespace ttvm::machine {

void FwCfg::setItem(uint16_t key, std::vector<uint8_t> data) {
  items_[key] = std::move(data);
}

void FwCfg::setItemU16(uint16_t key, uint16_t v) {
  setItem(key, {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8)});
}
void FwCfg::setItemU32(uint16_t key, uint32_t v) {
  std::vector<uint8_t> b(4);
  for (int i = 0; i < 4; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
  setItem(key, std::move(b));
}
void FwCfg::setItemU64(uint16_t key, uint64_t v) {
  std::vector<uint8_t> b(8);
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
  setItem(key, std::move(b));
}

uint16_t FwCfg::addFile(const std::string& name, std::vector<uint8_t> data) {
  auto key = static_cast<uint16_t>(kFirstFile + files_.size());
  files_.emplace_back(name.substr(0, 55), key);
  setItem(key, std::move(data));
  rebuildDirectory();
  return key;
}

void FwCfg::rebuildDirectory() {
  // QEMU keeps the directory sorted by name.
  auto sorted = files_;
  std::sort(sorted.begin(), sorted.end());
  std::vector<uint8_t> dir;
  auto be32 = [&](uint32_t v) {
    for (int i = 3; i >= 0; --i) dir.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  be32(static_cast<uint32_t>(sorted.size()));
  for (const auto& [name, key] : sorted) {
    be32(static_cast<uint32_t>(items_[key].size()));
    dir.push_back(static_cast<uint8_t>(key >> 8));
    dir.push_back(static_cast<uint8_t>(key));
    dir.push_back(0);
    dir.push_back(0);
    std::string padded = name;
    padded.resize(56, '\0');
    dir.insert(dir.end(), padded.begin(), padded.end());
  }
  items_[kFileDir] = std::move(dir);
}

uint32_t FwCfg::portRead(uint16_t port, unsigned size) {
  if (port == kSelectorPort && size >= 2) return 0;  // the selector is write-only
  // Data reads: each byte lane reads the next byte of the item.
  uint32_t v = 0;
  auto it = items_.find(selector_);
  for (unsigned i = 0; i < size; ++i) {
    uint8_t b = 0;
    if (it != items_.end() && offset_ < it->second.size()) b = it->second[offset_];
    if (it != items_.end() && offset_ < it->second.size()) ++offset_;
    v |= uint32_t{b} << (8 * i);
  }
  return v;
}

void FwCfg::portWrite(uint16_t port, unsigned size, uint32_t value) {
  if (port == kSelectorPort) {
    selector_ = static_cast<uint16_t>(size >= 2 ? value : value & 0xFF);
    offset_ = 0;
  }
  // Data writes are ignored (QEMU 2.4+ made every item read-only).
}

void FwCfg::saveState(StateWriter& out) const {
  out.u16(selector_);
  out.u32(offset_);
}

Status FwCfg::loadState(StateReader& in) {
  selector_ = in.u16();
  offset_ = in.u32();
  return in.status();
}

}  // namespace ttvm::machine
