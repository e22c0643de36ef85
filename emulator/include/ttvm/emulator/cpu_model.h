// CpuModel: what the emulated CPU says it is. CPUID leaves and the MSRs a
// guest may read come from this table, which the trace stores, so a trace
// replays identically on any host. The default model advertises exactly the
// features the emulator implements; anything else raises #UD in the guest and
// is logged once.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
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

// ttvm's own CPUID leaves, in the hypervisor range, where a model declares
// its vendor choices (the CpuModel switches below) to the guest, since the
// vendor string cannot say them (a KVM recording on an AMD host shows an
// Intel model): leaf 0x40000000 EAX = 0x40000001 (the highest of them), EBX
// ECX EDX = "TTVMTTVMTTVM"; leaf 0x40000001 EAX = the kVendorChoice bits.
// behaveAsHost() adds them to a model with any choice set; a model without
// them makes the choices of its vendor string. CPUID.1:ECX[31] (hypervisor
// present) stays clear: Linux does not look for them.
inline constexpr uint32_t kTtvmCpuidLeaf = 0x40000000u;
inline constexpr uint32_t kTtvmCpuidChoicesLeaf = 0x40000001u;
inline constexpr uint32_t kVendorChoicePushSegmentZeroExtends = 1u << 0;
inline constexpr uint32_t kVendorChoiceSysretApm = 1u << 1;

struct CpuModel {
  std::string name;  // e.g. "ttvm-x86-64 v1"
  CpuVendor vendor = CpuVendor::kIntel;
  std::vector<CpuidLeaf> cpuid;
  uint64_t tscFrequencyHz = 1'000'000'000;  // nominal; virtual time derives from steps
  // How the CPU that runs the guest behaves where the SDM leaves the vendor
  // a choice (independent of the vendor CPUID shows: a KVM recording on an
  // AMD host shows ttvm's Intel model but runs on AMD). PUSH of a segment
  // register with a 32/64-bit operand size: AMD writes the zero-extended
  // selector (the whole slot); current Intel CPUs write 16 bits and leave
  // the rest of the slot (SDM vol. 2B "PUSH").
  bool pushSegmentZeroExtends = false;
  // SYSRET as the AMD APM defines it (vol. 3 "SYSRET") instead of the SDM
  // (vol. 2B "SYSRET"): RCX is not checked for a canonical address (the SDM
  // raises #GP(0) at CPL 0; on AMD the fetch at the new RIP faults, at CPL
  // 3); SS gets its selector only, keeping its base, limit and attributes
  // (Linux's X86_BUG_SYSRET_SS_ATTRS: an unusable SS stays unusable), its
  // DPL excepted, which becomes 3 as KVM reports it (svm_get_segment); and
  // outside 64-bit mode (legacy protected and compatibility mode) it returns
  // to 32-bit code with IF set instead of raising #UD.
  bool sysretSkipsRipCheckAndSsCache = false;

  // The leaf the CPU answers for (leaf, subleaf): an exact entry, else the
  // Intel rule (highest basic leaf's values for leaves above the maximum).
  // A hypervisor leaf (0x40000000-0x4FFFFFFF) is in range up to the EAX of
  // its group's first leaf (leaf & ~0xFF), as KVM answers a guest.
  CpuidLeaf lookup(uint32_t leaf, uint32_t subleaf) const;

  bool operator==(const CpuModel&) const = default;

  // The model ttvm's emulator implements: long mode, NX, PAE, PSE, PGE, TSC,
  // MSR, CX8, CX16, CMOV, FXSR, SSE, SSE2, APIC, x2APIC, SYSCALL, RDTSCP,
  // POPCNT, LZCNT, MOVBE, RDRAND; no AVX/XSAVE.
  static CpuModel ttvmDefault();
};

// A CPUID feature bit a recording may hide from the guest (`ttvm record
// --cpuid-hide`): the instructions KVM lets a guest execute without an exit,
// reading the host (RDTSC and RDTSCP the host-timed TSC, RDRAND and RDSEED
// the host's generator, RDPID IA32_TSC_AUX). Hiding a bit tells a guest that
// checks CPUID not to use the instruction; it does not stop a guest that
// executes it anyway (docs/kvm-recording.md, "What KVM does not trap").
struct CpuidFeature {
  const char* name;         // as --cpuid-hide spells it: "tsc", "rdrand", ...
  const char* instruction;  // the instruction it announces: "RDTSC", ...
  uint32_t leaf = 0, subleaf = 0;
  char reg = 'a';  // 'a', 'b', 'c' or 'd'
  unsigned bit = 0;
};
// tsc (CPUID.1:EDX[4]), rdtscp (CPUID.80000001h:EDX[27]), rdrand
// (CPUID.1:ECX[30]), rdseed (CPUID.7.0:EBX[18]), rdpid (CPUID.7.0:ECX[22]).
std::span<const CpuidFeature> hideableCpuidFeatures();
// By name; nullptr for a name not in hideableCpuidFeatures().
const CpuidFeature* findCpuidFeature(std::string_view name);
// Whether the CPUID instruction shows `f` under `model` (its bit is set in
// the leaf lookup() answers).
bool showsFeature(const CpuModel& model, const CpuidFeature& f);
// `model` with f's bit cleared in every entry of f's leaf (and subleaf), and
// " -NAME" added to its name when the bit was shown, so that the trace's
// header says what the guest was not told. Only ever clears a bit: the
// result shows nothing `model` does not.
CpuModel hideFeature(CpuModel model, const CpuidFeature& f);

}  // namespace ttvm
