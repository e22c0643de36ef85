#include "ttvm/replayer/guest_symbols.h"

#include <algorithm>
#include <cstdio>

namespace ttvm {

GuestSymbols::GuestSymbols(const TraceHeader& header) {
  for (const GuestImage& img : header.images)
    for (const Symbol& s : img.symbols)
      if (s.address != 0 && !s.name.empty()) symbols_.push_back(s);
  std::stable_sort(symbols_.begin(), symbols_.end(),
                   [](const Symbol& a, const Symbol& b) { return a.address < b.address; });
}

std::optional<std::string> GuestSymbols::describe(uint64_t address) const {
  // The last symbol starting at or below `address`; prefer functions when
  // several start at the same address.
  auto it = std::upper_bound(symbols_.begin(), symbols_.end(), address,
                             [](uint64_t a, const Symbol& s) { return a < s.address; });
  if (it == symbols_.begin()) return std::nullopt;
  const Symbol* best = nullptr;
  for (auto j = it; j != symbols_.begin();) {
    --j;
    const Symbol& s = *j;
    const bool inside = s.size != 0 ? address < s.address + s.size : address - s.address < 0x10000;
    if (inside &&
        (best == nullptr || (best->address == s.address && s.kind == SymbolKind::kFunction)))
      best = &s;
    if (best != nullptr && s.address != best->address) break;
    if (address - s.address > (1ull << 20)) break;  // nothing sized can cover it
  }
  if (best == nullptr) return std::nullopt;
  const uint64_t off = address - best->address;
  if (off == 0) return best->name;
  char buf[32];
  std::snprintf(buf, sizeof buf, "+0x%llx", static_cast<unsigned long long>(off));
  return best->name + buf;
}

std::optional<uint64_t> GuestSymbols::find(const std::string& name) const {
  for (const Symbol& s : symbols_)
    if (s.name == name) return s.address;
  return std::nullopt;
}

}  // namespace ttvm
