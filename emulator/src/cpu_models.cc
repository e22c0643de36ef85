// The CPU models of `ttvm record --cpu-model` (cpu_models.h): subsets of
// CpuModel::ttvmDefault() with other identities.
#include "ttvm/emulator/cpu_models.h"

#include <cpuid.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace ttvm {

namespace {

uint32_t str4(const char* s) {
  uint32_t v = 0;
  std::memcpy(&v, s, 4);
  return v;
}

CpuidLeaf* findLeaf(std::vector<CpuidLeaf>& t, uint32_t leaf) {
  for (CpuidLeaf& l : t)
    if (l.leaf == leaf && (!l.subleafSignificant || l.subleaf == 0)) return &l;
  return nullptr;
}

const CpuidLeaf* findLeaf(std::span<const CpuidLeaf> t, uint32_t leaf) {
  for (const CpuidLeaf& l : t)
    if (l.leaf == leaf && (!l.subleafSignificant || l.subleaf == 0)) return &l;
  return nullptr;
}

// Leaves 0x80000002-4 := the 48 bytes at `brand`.
void setBrand(CpuModel& m, const char* brand) {
  for (uint32_t k = 0; k < 3; ++k) {
    const char* p = brand + 16 * k;
    CpuidLeaf* l = findLeaf(m.cpuid, 0x80000002u + k);
    TTVM_ASSERT(l != nullptr, "brand leaf ", 0x80000002u + k, " missing from ", m.name);
    *l = CpuidLeaf{0x80000002u + k, 0, false, str4(p), str4(p + 4), str4(p + 8), str4(p + 12)};
  }
}

// Leaves whose ECX selects a subleaf (SDM vol. 2A and APM vol. 3 "CPUID").
bool subleafIndexed(uint32_t leaf) {
  constexpr uint32_t kIndexed[] = {4,    7,    0xB,  0xD,  0xF,  0x10,        0x12,
                                   0x14, 0x17, 0x18, 0x1D, 0x1F, 0x8000001Du, 0x80000020u};
  for (uint32_t l : kIndexed)
    if (l == leaf) return true;
  return false;
}

// The registers of a leaf that hold feature flags (a 1 means "the CPU has
// it"), intersected by hostCpuModel().
struct FeatureRegs {
  uint32_t leaf;
  bool a, b, c, d;
};
constexpr FeatureRegs kFeatureRegs[] = {
    {1, false, false, true, true},
    {7, false, true, true, true},
    {0x80000001u, false, false, true, true},
};

}  // namespace

std::string cpuVendorString(const CpuModel& model) {
  const CpuidLeaf l = model.lookup(0, 0);
  std::string v(12, '\0');
  std::memcpy(v.data(), &l.ebx, 4);
  std::memcpy(v.data() + 4, &l.edx, 4);
  std::memcpy(v.data() + 8, &l.ecx, 4);
  return v;
}

CpuModel baselineCpuModel() {
  CpuModel m = CpuModel::ttvmDefault();
  m.name = "x86-64-v1 baseline";
  CpuidLeaf* l1 = findLeaf(m.cpuid, 1);
  l1->eax = 0x000006FB;  // family 6, model 0x0F, stepping 11
  l1->ecx = 0;           // no CX16, x2APIC, MOVBE, POPCNT, RDRAND
  CpuidLeaf* l7 = findLeaf(m.cpuid, 7);
  l7->ebx = l7->ecx = l7->edx = 0;  // no SMEP, SMAP
  CpuidLeaf* e1 = findLeaf(m.cpuid, 0x80000001u);
  e1->ecx = 0;                                     // no LAHF/SAHF in 64-bit mode, no LZCNT
  e1->edx = (1u << 11) | (1u << 20) | (1u << 29);  // SYSCALL NX LM
  setBrand(m, "ttvm x86-64-v1 baseline                         ");
  return m;
}

void behaveAsHost(CpuModel& model, std::span<const CpuidLeaf> host) {
  const CpuidLeaf* l0 = findLeaf(host, 0);
  CpuModel vendorOnly;
  if (l0 != nullptr) vendorOnly.cpuid.push_back(*l0);
  const std::string vendor = cpuVendorString(vendorOnly);
  const bool amd = vendor == "AuthenticAMD" || vendor == "HygonGenuine";
  model.pushSegmentZeroExtends = amd;
  model.sysretSkipsRipCheckAndSsCache = amd;
  // The choices declared to the guest (kTtvmCpuidLeaf), replacing earlier ones.
  std::erase_if(model.cpuid, [](const CpuidLeaf& l) {
    return l.leaf == kTtvmCpuidLeaf || l.leaf == kTtvmCpuidChoicesLeaf;
  });
  const uint32_t choices =
      (model.pushSegmentZeroExtends ? kVendorChoicePushSegmentZeroExtends : 0) |
      (model.sysretSkipsRipCheckAndSsCache ? kVendorChoiceSysretApm : 0);
  if (choices == 0) return;
  model.cpuid.push_back(CpuidLeaf{kTtvmCpuidLeaf, 0, false, kTtvmCpuidChoicesLeaf, str4("TTVM"),
                                  str4("TTVM"), str4("TTVM")});
  model.cpuid.push_back(CpuidLeaf{kTtvmCpuidChoicesLeaf, 0, false, choices, 0, 0, 0});
}

CpuModel hostCpuModel(std::span<const CpuidLeaf> host) {
  CpuModel m = CpuModel::ttvmDefault();
  const CpuidLeaf none;
  auto hostLeaf = [&](uint32_t leaf) -> const CpuidLeaf& {
    const CpuidLeaf* l = findLeaf(host, leaf);
    return l != nullptr ? *l : none;
  };
  const CpuidLeaf& h0 = hostLeaf(0);
  CpuidLeaf* l0 = findLeaf(m.cpuid, 0);
  l0->ebx = h0.ebx;
  l0->ecx = h0.ecx;
  l0->edx = h0.edx;
  const std::string vendor = cpuVendorString(m);
  m.vendor =
      vendor == "AuthenticAMD" || vendor == "HygonGenuine" ? CpuVendor::kAmd : CpuVendor::kIntel;
  behaveAsHost(m, host);
  // Family, model and stepping (no reserved bits: 31:28 and 15:14 are zero).
  findLeaf(m.cpuid, 1)->eax = hostLeaf(1).eax & 0x0FFF3FFFu;
  for (const FeatureRegs& fr : kFeatureRegs) {
    CpuidLeaf* mine = findLeaf(m.cpuid, fr.leaf);
    const CpuidLeaf& theirs = hostLeaf(fr.leaf);
    if (fr.a) mine->eax &= theirs.eax;
    if (fr.b) mine->ebx &= theirs.ebx;
    if (fr.c) mine->ecx &= theirs.ecx;
    if (fr.d) mine->edx &= theirs.edx;
  }
  char brand[49] = {};
  if (hostLeaf(0x80000000u).eax >= 0x80000004u)
    for (uint32_t k = 0; k < 3; ++k) {
      const CpuidLeaf& b = hostLeaf(0x80000002u + k);
      std::memcpy(brand + 16 * k, &b.eax, 4);
      std::memcpy(brand + 16 * k + 4, &b.ebx, 4);
      std::memcpy(brand + 16 * k + 8, &b.ecx, 4);
      std::memcpy(brand + 16 * k + 12, &b.edx, 4);
    }
  std::string shown(brand, strnlen(brand, 48));
  shown.erase(0, std::min(shown.size(), shown.find_first_not_of(' ')));
  while (!shown.empty() && shown.back() == ' ') shown.pop_back();
  if (!shown.empty()) setBrand(m, brand);  // else ttvm's brand stays
  const uint32_t sig = findLeaf(m.cpuid, 1)->eax;
  const uint32_t family = ((sig >> 8) & 0xF) + ((sig >> 8 & 0xF) == 0xF ? (sig >> 20) & 0xFF : 0);
  const uint32_t model = ((sig >> 4) & 0xF) | ((sig >> 12) & 0xF0);
  m.name = "host " + vendor + " family " + std::to_string(family) + " model " +
           std::to_string(model) + " stepping " + std::to_string(sig & 0xF) +
           (shown.empty() ? "" : " (" + shown + ")") + ", features of ttvm-x86-64 v1";
  return m;
}

Result<CpuModel> cpuModelNamed(std::string_view name,
                               const std::function<Result<std::vector<CpuidLeaf>>()>& hostCpuid) {
  if (name == "ttvm") return CpuModel::ttvmDefault();
  if (name == "baseline") return baselineCpuModel();
  if (name == "host") {
    Result<std::vector<CpuidLeaf>> host = hostCpuid();
    if (!host) return host.error();
    return hostCpuModel(*host);
  }
  return makeError("unknown CPU model '" + std::string(name) +
                   "'; the models are:" + describeCpuModelChoices());
}

std::string describeCpuModelChoices() {
  std::string list;
  for (const CpuModelChoice& c : kCpuModelChoices)
    list += std::string("\n  ") + c.name + ": " + c.summary;
  return list;
}

std::vector<CpuidLeaf> readHostCpuid() {
  std::vector<CpuidLeaf> out;
  auto read = [&](uint32_t leaf, uint32_t sub, bool significant) {
    CpuidLeaf l;
    l.leaf = leaf;
    l.subleaf = sub;
    l.subleafSignificant = significant;
    __cpuid_count(leaf, sub, l.eax, l.ebx, l.ecx, l.edx);
    out.push_back(l);
    return l;
  };
  const uint32_t maxBasic = read(0, 0, false).eax;
  if (maxBasic >= 1) read(1, 0, false);
  if (maxBasic >= 7) read(7, 0, true);
  const uint32_t maxExt = read(0x80000000u, 0, false).eax;
  for (uint32_t leaf = 0x80000001u; leaf <= std::min(maxExt, 0x80000004u); ++leaf)
    read(leaf, 0, false);
  return out;
}

Result<std::vector<CpuidLeaf>> parseCpuidTable(std::string_view text, const std::string& where) {
  std::vector<CpuidLeaf> out;
  size_t lineNo = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++lineNo;
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    uint32_t v[6];
    int n = 0;
    for (size_t i = 0; i < line.size();) {
      if (line[i] == ' ' || line[i] == '\t' || line[i] == '\r') {
        ++i;
        continue;
      }
      size_t j = i;
      while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
      std::string_view word = line.substr(i, j - i);
      if (word.size() > 2 && word[0] == '0' && (word[1] == 'x' || word[1] == 'X'))
        word.remove_prefix(2);
      uint32_t x = 0;
      auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), x, 16);
      if (n == 6 || ec != std::errc() || ptr != word.data() + word.size())
        return makeError(where + ": line " + std::to_string(lineNo) +
                         ": expected 'leaf subleaf eax " + "ebx ecx edx' in hex, found '" +
                         std::string(line) + "'");
      v[n++] = x;
      i = j;
    }
    if (n == 0) continue;
    if (n != 6)
      return makeError(where + ": line " + std::to_string(lineNo) + ": expected 6 hex numbers " +
                       "(leaf subleaf eax ebx ecx edx), found " + std::to_string(n));
    out.push_back(CpuidLeaf{v[0], v[1], subleafIndexed(v[0]), v[2], v[3], v[4], v[5]});
  }
  if (out.empty()) return makeError(where + ": no CPUID leaves");
  return out;
}

}  // namespace ttvm
