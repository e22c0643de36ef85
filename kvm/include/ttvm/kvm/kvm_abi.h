// The pure half of the KVM layer: conversions between ttvm's value types and
// the structures of <linux/kvm.h>. No file descriptor, no ioctl: everything
// here is tested on hosts without /dev/kvm. This header and the kvm library's
// sources are the only places that include the KVM UAPI header (STYLE.md:
// KVM types stay behind one owner).
#pragma once

#include <linux/kvm.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ttvm/base/result.h"
#include "ttvm/emulator/cpu_model.h"
#include "ttvm/emulator/cpu_state.h"
#include "ttvm/kvm/vcpu_exit.h"

namespace ttvm::kvm {

// Every piece of vCPU state ttvm hands to KVM (KVM_SET_REGS, _SREGS, _FPU,
// _DEBUGREGS, _XCRS, _MSRS, _VCPU_EVENTS) or reads back.
//
// What a CpuState holds that KVM cannot take, and what happens to it:
//  - FPU CS and DS selectors (FpuState::fcs/fds): kvm_fpu is the 64-bit
//    FXSAVE image, which has none; they read back as 0.
//  - `pending.halted`: without an in-kernel LAPIC KVM refuses a HALTED
//    mp_state, so a halt is ttvm's to keep (Vcpu tracks it; `halted` here).
//  - `pending.pendingDr6` (a #DB deferred by a MOV SS shadow): KVM has no
//    field for it; toKvm refuses a state that has one.
//  - `steps`: a position in time, not a register; fromKvm leaves it 0.
struct KvmCpuState {
  kvm_regs regs{};
  kvm_sregs sregs{};
  kvm_fpu fpu{};
  kvm_debugregs debugregs{};
  kvm_xcrs xcrs{};
  kvm_vcpu_events events{};
  std::vector<kvm_msr_entry> msrs;  // one per kOwnedMsrs entry, in that order
  bool halted = false;
};

// The MSRs of MsrState that KVM takes through KVM_SET_MSRS (EFER and
// IA32_APIC_BASE travel in kvm_sregs).
struct OwnedMsr {
  uint32_t index;
  uint64_t MsrState::*field;
  const char* name;
};
extern const std::array<OwnedMsr, 12> kOwnedMsrs;

// The 4096-byte region of KVM_GET_XSAVE/KVM_SET_XSAVE (struct kvm_xsave
// without its flexible tail): the FXSAVE64 legacy area in bytes 0-511 and the
// XSAVE header (XSTATE_BV) at 512. The FPU travels this way where KVM has
// KVM_CAP_XSAVE, because KVM_SET_FPU and KVM_GET_FPU ignore kvm_fpu.mxcsr.
using XsaveRegion = std::array<uint32_t, 1024>;
// XSTATE_BV says x87 and SSE state are live, so that entry loads them.
XsaveRegion toXsaveRegion(const kvm_fpu& f);
kvm_fpu fromXsaveRegion(const XsaveRegion& r);

// CpuState -> KVM. Fails (naming the field) for what KVM cannot represent.
Result<KvmCpuState> toKvm(const CpuState& s);
// KVM -> CpuState (steps 0, FPU selectors 0). `msrs` must hold kOwnedMsrs.
CpuState fromKvm(const KvmCpuState& k);

// Segment registers: CpuState keeps the VMX access-rights layout (see
// SegmentRegister::attributes); kvm_segment keeps one field per bit.
kvm_segment toKvmSegment(const SegmentRegister& s);
SegmentRegister fromKvmSegment(const kvm_segment& k);

// ---- CPUID -----------------------------------------------------------------

// The model's table as KVM_SET_CPUID2 entries: one per CpuidLeaf, same
// registers, KVM_CPUID_FLAG_SIGNIFCANT_INDEX where the subleaf matters.
// Nothing is added: a leaf the model lacks is one the guest does not see.
std::vector<kvm_cpuid_entry2> toKvmCpuid(const CpuModel& model);
std::vector<CpuidLeaf> fromKvmCpuid(std::span<const kvm_cpuid_entry2> entries);

// A feature bit of the model the host cannot give a guest.
struct MissingFeature {
  uint32_t leaf = 0, subleaf = 0;
  char reg = 'a';  // 'a', 'b', 'c' or 'd'
  unsigned bit = 0;
  bool operator==(const MissingFeature&) const = default;
};
std::string describe(const MissingFeature& f);  // "CPUID.1:ECX[30]"

// The model restricted to what the host's KVM supports
// (KVM_GET_SUPPORTED_CPUID): feature flags (leaf 1 ECX/EDX, leaf 7 EBX/ECX/EDX,
// leaf 0x80000001 ECX/EDX) are ANDed with the host's; identity leaves
// (vendor, family, brand, address sizes) are kept. Bits only ever go from 1
// to 0, so the guest never sees a feature the model lacks. `removed` lists
// what the host took away.
CpuModel restrictToHost(const CpuModel& model, std::span<const CpuidLeaf> hostSupported,
                        std::vector<MissingFeature>* removed);

// The guest of Kvm::checkGuestCpuid, real mode at address 0: CPUID leaf 0
// (EBX, EDX, ECX: the vendor string) and leaf 1 (ECX, EDX: feature flags),
// each register written to port kSelfCheckPort, then HLT.
inline constexpr uint16_t kSelfCheckPort = 0x70;
inline constexpr uint8_t kSelfCheckCode[] = {
    0x66, 0x31, 0xC0,                    // xor eax, eax
    0x66, 0x31, 0xC9,                    // xor ecx, ecx
    0x0F, 0xA2,                          // cpuid
    0x66, 0x89, 0xD8,                    // mov eax, ebx
    0x66, 0xE7, 0x70,                    // out 0x70, eax
    0x66, 0x89, 0xD0,                    // mov eax, edx
    0x66, 0xE7, 0x70,                    // out 0x70, eax
    0x66, 0x89, 0xC8,                    // mov eax, ecx
    0x66, 0xE7, 0x70,                    // out 0x70, eax
    0x66, 0xB8, 0x01, 0x00, 0x00, 0x00,  // mov eax, 1
    0x66, 0x31, 0xC9,                    // xor ecx, ecx
    0x0F, 0xA2,                          // cpuid
    0x66, 0x89, 0xC8,                    // mov eax, ecx
    0x66, 0xE7, 0x70,                    // out 0x70, eax
    0x66, 0x89, 0xD0,                    // mov eax, edx
    0x66, 0xE7, 0x70,                    // out 0x70, eax
    0xF4,                                // hlt
};

// ---- MSRs that leave the kernel ---------------------------------------------

// With KVM_CAP_X86_USER_SPACE_MSR and this filter (KVM_X86_SET_MSR_FILTER,
// default deny), every RDMSR and WRMSR KVM would answer itself from host
// facts or its own defaults exits to user space (ExitKind::kMsr), where the
// recorder answers as ttvm's CPU model does and logs what the machine
// answered: the MSRs of inKernelMsrs() stay in the kernel, all others leave
// it (x2APIC MSRs are never filtered; without an in-kernel LAPIC KVM refuses
// them, which exits with reason INVAL).
struct MsrFilterRange {
  uint32_t base = 0, count = 0;
  bool read = false, write = false;  // the accesses KVM keeps for itself
};
std::span<const MsrFilterRange> inKernelMsrs();

// kvm_msr_filter over `allowed` (at most 16 ranges), with the bitmaps it
// points into. Not copyable or movable (the pointers).
class KvmMsrFilter {
 public:
  explicit KvmMsrFilter(std::span<const MsrFilterRange> allowed);
  KvmMsrFilter(const KvmMsrFilter&) = delete;
  KvmMsrFilter& operator=(const KvmMsrFilter&) = delete;
  const kvm_msr_filter& get() const { return filter_; }

 private:
  kvm_msr_filter filter_{};
  std::vector<std::vector<uint8_t>> bitmaps_;
};

// KVM's rule (kvm_msr_allowed): whether an access stays in the kernel under `f`.
bool msrFilterAllows(const kvm_msr_filter& f, uint32_t index, bool write);

// Completes a kMsr exit in `run` before the next KVM_RUN: a RDMSR's value
// (or a WRMSR accepted), or nullopt for #GP.
void answerMsrExit(kvm_run& run, std::optional<uint64_t> value);

// ---- exits -----------------------------------------------------------------

// Decodes the exit KVM left in `run`, the vCPU's mapping of `mapSize` bytes
// (KVM_GET_VCPU_MMAP_SIZE). I/O data outside the mapping is a KVM bug
// (assertion).
VcpuExit decodeExit(kvm_run& run, size_t mapSize);

}  // namespace ttvm::kvm
