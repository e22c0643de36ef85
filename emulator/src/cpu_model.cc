// CpuModel: the CPUID table ttvm's emulator answers with. ttvmDefault()
// advertises only what the emulator implements (the other models of
// cpu_models.h advertise subsets of it).
#include "ttvm/emulator/cpu_model.h"

#include <cstring>

namespace ttvm {

namespace {

constexpr CpuidFeature kHideable[] = {
    {"tsc", "RDTSC", 1, 0, 'd', 4},      {"rdtscp", "RDTSCP", 0x80000001u, 0, 'd', 27},
    {"rdrand", "RDRAND", 1, 0, 'c', 30}, {"rdseed", "RDSEED", 7, 0, 'b', 18},
    {"rdpid", "RDPID", 7, 0, 'c', 22},
};

uint32_t& reg(CpuidLeaf& l, char r) {
  return r == 'a' ? l.eax : r == 'b' ? l.ebx : r == 'c' ? l.ecx : l.edx;
}

uint32_t str4(const char* s) {
  uint32_t v = 0;
  std::memcpy(&v, s, 4);
  return v;
}

}  // namespace

CpuidLeaf CpuModel::lookup(uint32_t leaf, uint32_t subleaf) const {
  uint32_t maxBasic = 0, maxExt = 0;
  const bool hypervisor = leaf >= 0x40000000u && leaf <= 0x4FFFFFFFu;
  bool hypervisorInRange = false;
  for (const CpuidLeaf& l : cpuid) {
    if (l.leaf == 0) maxBasic = l.eax;
    if (l.leaf == 0x80000000u) maxExt = l.eax;
    if (hypervisor && l.leaf == (leaf & ~0xFFu) && leaf <= l.eax) hypervisorInRange = true;
  }
  const bool ext = leaf >= 0x80000000u;
  if ((!ext && leaf < 0x40000000u && leaf > maxBasic) || (ext && leaf > maxExt) ||
      (leaf >= 0x40000000u && leaf < 0x80000000u && !hypervisorInRange)) {
    if (vendor == CpuVendor::kAmd) {
      // AMD: a leaf above the maximum returns zeros (APM vol. 3 "CPUID"; KVM
      // answers an AMD guest so). No model before cpu_models.h's host model
      // on an AMD host had vendor AMD.
      CpuidLeaf zero;
      zero.leaf = leaf;
      zero.subleaf = subleaf;
      return zero;
    }
    // Intel: an invalid leaf returns the highest basic leaf's data.
    leaf = maxBasic;
    subleaf = 0;
  }
  for (const CpuidLeaf& l : cpuid)
    if (l.leaf == leaf && (!l.subleafSignificant || l.subleaf == subleaf)) {
      CpuidLeaf r = l;
      r.subleaf = subleaf;
      return r;
    }
  CpuidLeaf zero;
  zero.leaf = leaf;
  zero.subleaf = subleaf;
  return zero;
}

std::span<const CpuidFeature> hideableCpuidFeatures() {
  return kHideable;
}

const CpuidFeature* findCpuidFeature(std::string_view name) {
  for (const CpuidFeature& f : kHideable)
    if (name == f.name) return &f;
  return nullptr;
}

bool showsFeature(const CpuModel& model, const CpuidFeature& f) {
  CpuidLeaf l = model.lookup(f.leaf, f.subleaf);
  // lookup() answers a leaf above the maximum with another leaf's values:
  // the feature is not there.
  if (l.leaf != f.leaf) return false;
  return (reg(l, f.reg) >> f.bit) & 1;
}

CpuModel hideFeature(CpuModel model, const CpuidFeature& f) {
  if (!showsFeature(model, f)) return model;
  for (CpuidLeaf& l : model.cpuid)
    if (l.leaf == f.leaf && (!l.subleafSignificant || l.subleaf == f.subleaf))
      reg(l, f.reg) &= ~(1u << f.bit);
  model.name += std::string(" -") + f.name;
  return model;
}

CpuModel CpuModel::ttvmDefault() {
  CpuModel m;
  m.name = "ttvm-x86-64 v1";
  m.vendor = CpuVendor::kIntel;
  m.tscFrequencyHz = 1'000'000'000;
  auto add = [&](uint32_t leaf, uint32_t sub, bool sig, uint32_t a, uint32_t b, uint32_t c,
                 uint32_t d) {
    m.cpuid.push_back(CpuidLeaf{leaf, sub, sig, a, b, c, d});
  };
  add(0, 0, false, 7, str4("Genu"), str4("ntel"), str4("ineI"));
  // Family 6, model 0x3A, stepping 9. EBX: CLFLUSH line 8*8 bytes, 1 logical CPU, APIC ID 0.
  const uint32_t ecx1 = (1u << 13)     // CMPXCHG16B
                        | (1u << 21)   // x2APIC
                        | (1u << 22)   // MOVBE
                        | (1u << 23)   // POPCNT
                        | (1u << 30);  // RDRAND
  const uint32_t edx1 = (1u << 0)      // FPU
                        | (1u << 3)    // PSE
                        | (1u << 4)    // TSC
                        | (1u << 5)    // MSR
                        | (1u << 6)    // PAE
                        | (1u << 8)    // CX8
                        | (1u << 9)    // APIC
                        | (1u << 11)   // SEP (SYSENTER/SYSEXIT)
                        | (1u << 13)   // PGE
                        | (1u << 15)   // CMOV
                        | (1u << 16)   // PAT
                        | (1u << 17)   // PSE-36
                        | (1u << 23)   // MMX
                        | (1u << 24)   // FXSR
                        | (1u << 25)   // SSE
                        | (1u << 26);  // SSE2
  add(1, 0, false, 0x000306A9, 0x00010800, ecx1, edx1);
  add(7, 0, true, 0, (1u << 7) | (1u << 20), 0, 0);  // SMEP, SMAP
  add(0x80000000u, 0, false, 0x80000008u, 0, 0, 0);
  add(0x80000001u, 0, false, 0, 0, (1u << 0) | (1u << 5),  // LAHF/SAHF in 64-bit, LZCNT
      (1u << 11) | (1u << 20) | (1u << 26) | (1u << 27) | (1u << 29));  // SYSCALL NX 1G RDTSCP LM
  const char brand[49] = "ttvm x86-64 emulator                            ";
  for (uint32_t k = 0; k < 3; ++k) {
    const char* p = brand + 16 * k;
    add(0x80000002u + k, 0, false, str4(p), str4(p + 4), str4(p + 8), str4(p + 12));
  }
  add(0x80000008u, 0, false, 0x00003028, 0, 0, 0);  // 40-bit physical, 48-bit linear
  return m;
}

}  // namespace ttvm
