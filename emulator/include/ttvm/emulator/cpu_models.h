// The CPU models `ttvm record --cpu-model NAME` offers (docs/cpu-models.md),
// built as CpuModel tables. Every model's feature bits are a subset of
// CpuModel::ttvmDefault()'s, so whichever is chosen the emulator implements
// what the guest is told, and the KVM backend sets the same table
// (KVM_SET_CPUID2). The trace stores the chosen table whole; nothing that
// replays a trace reads the host's CPUID.
//
// A model whose vendor is AMD answers a leaf above its maximum with zeros
// (CpuModel::lookup follows the vendor: AMD APM vol. 3 "CPUID", as KVM does
// for AMD guests); an Intel one with the highest basic leaf's values.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ttvm/base/result.h"
#include "ttvm/emulator/cpu_model.h"

namespace ttvm {

// The models a recording may choose, by their command-line names; the first
// is the default (CpuModel::ttvmDefault()).
struct CpuModelChoice {
  const char* name;
  const char* summary;
};
inline constexpr CpuModelChoice kCpuModelChoices[] = {
    {"ttvm", "ttvm-x86-64 v1, every feature the emulator implements (the default)"},
    {"baseline", "x86-64-v1, the features every x86-64 CPU has"},
    {"host", "this host's vendor, family, model and brand with the features of 'ttvm' it has"},
};

// kCpuModelChoices as lines "\n  NAME: SUMMARY", for messages.
std::string describeCpuModelChoices();

// The x86-64 baseline (psABI level x86-64-v1): FPU, TSC, MSR, PAE, CX8,
// APIC, SEP, PGE, CMOV, PAT, PSE, PSE-36, MMX, FXSR, SSE, SSE2, SYSCALL, NX,
// LM; none of ttvmDefault()'s later additions (no CX16, POPCNT, LZCNT, MOVBE,
// RDRAND, RDTSCP, x2APIC, LAHF in 64-bit mode, 1 GiB pages, SMEP, SMAP). An
// Intel family 6 model 0x0F signature. Every x86-64 CPU has these features,
// so a guest that runs under it runs anywhere.
CpuModel baselineCpuModel();

// The host's own identity (vendor, family/model/stepping, brand) with
// ttvmDefault()'s feature bits ANDed with the host's: the guest sees the
// host's CPU, minus what the emulator does not implement. `host` is a CPUID
// table as readHostCpuid() returns it; leaves it lacks count as zero.
// Structural leaves (maximum leaves, leaf 1 EBX, address sizes) stay
// ttvmDefault()'s: they describe ttvm's machine, not the host's.
CpuModel hostCpuModel(std::span<const CpuidLeaf> host);

// Sets the model's vendor choices (CpuModel::pushSegmentZeroExtends,
// sysretSkipsRipCheckAndSsCache) to those of the CPU whose CPUID table is
// `host` (its leaf 0 vendor): a KVM recording replays as the host ran the
// guest. What CPUID shows is kept, but for ttvm's leaves (kTtvmCpuidLeaf),
// which declare the choices to the guest when any is set.
void behaveAsHost(CpuModel& model, std::span<const CpuidLeaf> host);

// The model `--cpu-model NAME` names (one of kCpuModelChoices). `hostCpuid`
// is called only for "host" (its error is returned). An unknown name is an
// error that lists the models.
Result<CpuModel> cpuModelNamed(std::string_view name,
                               const std::function<Result<std::vector<CpuidLeaf>>()>& hostCpuid);

// The 12-character vendor string of leaf 0 ("GenuineIntel").
std::string cpuVendorString(const CpuModel& model);

// The leaves of the host CPU that hostCpuModel() reads (0, 1, 7.0,
// 0x80000000, 0x80000001, 0x80000002-4), from the CPUID instruction.
std::vector<CpuidLeaf> readHostCpuid();

// A CPUID table written as text, one leaf per line:
//   leaf subleaf eax ebx ecx edx      (hex, with or without 0x)
// '#' starts a comment. It stands in for the host's table where a test
// simulates another host (TTVM_HOST_CPUID, docs/cpu-models.md). Errors name
// `where` and the line.
Result<std::vector<CpuidLeaf>> parseCpuidTable(std::string_view text, const std::string& where);

}  // namespace ttvm
