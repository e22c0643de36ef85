// CpuModel: what the emulated CPU says it is. CPUID leaves and the MSRs a
// guest may read come from this table, which the trace stores, so a trace
// replays identically on any host. The default model advertises exactly the
// features the emulator implements; anything else raises #UD in the guest and
// is logged once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ttvm {

struct CpuidLeaf {
  uint32_t leaf = 0;
  uint32_t subleaf = 0;
  bool subleafSignificant = false;  // ECX selects among entries of this leaf
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
  bool operator==(const CpuidLeaf&) const = default;
};

enum class CpuVendor : uint8_t { kIntel, kAmd };

struct CpuModel {
  std::string name;  // e.g. "ttvm-x86-64 v1"
  CpuVendor vendor = CpuVendor::kIntel;
  std::vector<CpuidLeaf> cpuid;
  uint64_t tscFrequencyHz = 1'000'000'000;  // nominal; virtual time derives from steps

  // The leaf the CPU answers for (leaf, subleaf): an exact entry, else the
  // Intel rule (highest basic leaf's values for leaves above the maximum).
  CpuidLeaf lookup(uint32_t leaf, uint32_t subleaf) const;

  bool operator==(const CpuModel&) const = default;

  // The model ttvm's emulator implements: long mode, NX, PAE, PSE, PGE, TSC,
  // MSR, CX8, CX16, CMOV, FXSR, SSE, SSE2, APIC, x2APIC, SYSCALL, RDTSCP,
  // POPCNT, LZCNT, MOVBE, RDRAND; no AVX/XSAVE.
  static CpuModel ttvmDefault();
};

}  // namespace ttvm
