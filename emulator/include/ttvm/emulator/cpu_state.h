// CpuState: every architectural register of an x86-64 CPU in every mode, as a
// value type (copyable, comparable, no virtuals). The trace format stores it,
// checkpoints copy it, and the differential tests compare it field by field.
//
// Invariants:
//  - Segment registers keep their hidden descriptor cache (base, byte-granular
//    limit, attributes) exactly as the CPU loaded it; the selector alone never
//    decides behaviour.
//  - `steps` is the position of this CPU in time (see Cpu::step): it is part
//    of the state so that two states at different positions never compare equal.
#pragma once

#include <array>
#include <cstdint>
#include <optional>

namespace ttvm {

enum class Gpr : uint8_t {
  kRax,
  kRcx,
  kRdx,
  kRbx,
  kRsp,
  kRbp,
  kRsi,
  kRdi,
  kR8,
  kR9,
  kR10,
  kR11,
  kR12,
  kR13,
  kR14,
  kR15,
};
inline constexpr int kNumGprs = 16;

enum class SegReg : uint8_t { kEs, kCs, kSs, kDs, kFs, kGs };
inline constexpr int kNumSegRegs = 6;

// RFLAGS bits.
namespace flags {
inline constexpr uint64_t kCF = 1u << 0;
inline constexpr uint64_t kFixed1 = 1u << 1;  // always reads as 1
inline constexpr uint64_t kPF = 1u << 2;
inline constexpr uint64_t kAF = 1u << 4;
inline constexpr uint64_t kZF = 1u << 6;
inline constexpr uint64_t kSF = 1u << 7;
inline constexpr uint64_t kTF = 1u << 8;
inline constexpr uint64_t kIF = 1u << 9;
inline constexpr uint64_t kDF = 1u << 10;
inline constexpr uint64_t kOF = 1u << 11;
inline constexpr uint64_t kIOPL = 3u << 12;
inline constexpr uint64_t kNT = 1u << 14;
inline constexpr uint64_t kRF = 1u << 16;
inline constexpr uint64_t kVM = 1u << 17;
inline constexpr uint64_t kAC = 1u << 18;
inline constexpr uint64_t kVIF = 1u << 19;
inline constexpr uint64_t kVIP = 1u << 20;
inline constexpr uint64_t kID = 1u << 21;
inline constexpr uint64_t kArith = kCF | kPF | kAF | kZF | kSF | kOF;
}  // namespace flags

// A segment register: the visible selector and the hidden descriptor cache.
struct SegmentRegister {
  uint16_t selector = 0;
  uint64_t base = 0;
  uint32_t limit = 0xFFFF;  // byte granular (already scaled by G)
  // Descriptor attribute bits in the VMX "access rights" layout:
  // bits 0-3 type, 4 S, 5-6 DPL, 7 P, 12 AVL, 13 L, 14 D/B, 15 G, 16 unusable.
  uint32_t attributes = 0x93;

  bool operator==(const SegmentRegister&) const = default;
};

namespace segattr {
inline constexpr uint32_t kTypeMask = 0xF;
inline constexpr uint32_t kAccessed = 1u << 0;
inline constexpr uint32_t kS = 1u << 4;  // code/data (1) vs system (0)
inline constexpr int kDplShift = 5;
inline constexpr uint32_t kP = 1u << 7;
inline constexpr uint32_t kAvl = 1u << 12;
inline constexpr uint32_t kL = 1u << 13;
inline constexpr uint32_t kDB = 1u << 14;
inline constexpr uint32_t kG = 1u << 15;
inline constexpr uint32_t kUnusable = 1u << 16;
}  // namespace segattr

// GDTR/IDTR: a linear base and a byte limit.
struct TableRegister {
  uint64_t base = 0;
  uint16_t limit = 0xFFFF;
  bool operator==(const TableRegister&) const = default;
};

// An 80-bit x87 register: 64-bit significand and 16-bit sign+exponent.
struct Float80 {
  uint64_t significand = 0;
  uint16_t signExponent = 0;
  bool operator==(const Float80&) const = default;
};

// A 128-bit XMM register, little-endian qwords.
struct Vec128 {
  std::array<uint64_t, 2> q{};
  bool operator==(const Vec128&) const = default;
};

// x87 / MMX / SSE state, in the same terms as the FXSAVE image.
struct FpuState {
  uint16_t fcw = 0x037F;  // control word after FNINIT
  uint16_t fsw = 0;       // status word, TOP in bits 11-13
  uint8_t ftw = 0;        // abridged tag word (FXSAVE form): bit i set = ST register i valid
  uint16_t fop = 0;
  uint64_t fip = 0;
  uint64_t fdp = 0;
  uint16_t fcs = 0;
  uint16_t fds = 0;
  std::array<Float80, 8> st{};  // physical registers R0..R7 (MMX aliases the significands)
  std::array<Vec128, 16> xmm{};
  uint32_t mxcsr = 0x1F80;

  bool operator==(const FpuState&) const = default;
};

// IA32_APIC_BASE fields (MsrState::apicBase).
namespace apicbase {
inline constexpr uint64_t kX2apic = 1u << 10;           // EXTD: x2APIC mode
inline constexpr uint64_t kEnabled = 1u << 11;          // EN: the local APIC is on
inline constexpr uint64_t kBaseMask = 0xFFFFFFF000ull;  // bits 12-39: the page (MAXPHYADDR 40)
// The xAPIC register page offset of the task-priority register, whose bits
// 7:4 are CR8, and its x2APIC MSR.
inline constexpr uint64_t kTprOffset = 0x80;
inline constexpr uint32_t kTprMsr = 0x808;
// CR8 after a write of `value` (`size` bytes) to guest-physical `phys` with
// IA32_APIC_BASE `base`: TPR[7:4] when it is the xAPIC page's TPR (an
// enabled APIC, not in x2APIC mode, a write of at least 4 bytes), else none.
// The local APIC is part of the CPU: a later MOV from CR8 reads it.
inline std::optional<uint64_t> cr8AfterWrite(uint64_t base, uint64_t phys, unsigned size,
                                             uint64_t value) {
  if ((base & kEnabled) == 0 || (base & kX2apic) != 0) return std::nullopt;
  if (phys != (base & kBaseMask) + kTprOffset || size < 4) return std::nullopt;
  return (value >> 4) & 0xF;
}
}  // namespace apicbase

// Model-specific registers the CPU itself owns. MSRs that belong to devices
// (x2APIC, TSC deadline) are answered by the Environment.
struct MsrState {
  uint64_t efer = 0;
  uint64_t star = 0;
  uint64_t lstar = 0;
  uint64_t cstar = 0;
  uint64_t sfmask = 0;
  uint64_t kernelGsBase = 0;
  uint64_t sysenterCs = 0;
  uint64_t sysenterEsp = 0;
  uint64_t sysenterEip = 0;
  uint64_t pat = 0x0007040600070406ull;
  uint64_t apicBase = 0xFEE00900ull;  // BSP, enabled, xAPIC at 0xFEE00000
  uint64_t tscAux = 0;
  uint64_t miscEnable = 1;  // fast strings
  uint64_t tscAdjust = 0;   // IA32_TSC_ADJUST: added to the environment's TSC

  bool operator==(const MsrState&) const = default;
};

namespace efer {
inline constexpr uint64_t kSCE = 1u << 0;
inline constexpr uint64_t kLME = 1u << 8;
inline constexpr uint64_t kLMA = 1u << 10;
inline constexpr uint64_t kNXE = 1u << 11;
}  // namespace efer

namespace cr0 {
inline constexpr uint64_t kPE = 1u << 0;
inline constexpr uint64_t kMP = 1u << 1;
inline constexpr uint64_t kEM = 1u << 2;
inline constexpr uint64_t kTS = 1u << 3;
inline constexpr uint64_t kET = 1u << 4;
inline constexpr uint64_t kNE = 1u << 5;
inline constexpr uint64_t kWP = 1u << 16;
inline constexpr uint64_t kAM = 1u << 18;
inline constexpr uint64_t kNW = 1u << 29;
inline constexpr uint64_t kCD = 1u << 30;
inline constexpr uint64_t kPG = 1u << 31;
}  // namespace cr0

namespace cr4 {
inline constexpr uint64_t kVME = 1u << 0;
inline constexpr uint64_t kPVI = 1u << 1;
inline constexpr uint64_t kTSD = 1u << 2;
inline constexpr uint64_t kDE = 1u << 3;
inline constexpr uint64_t kPSE = 1u << 4;
inline constexpr uint64_t kPAE = 1u << 5;
inline constexpr uint64_t kMCE = 1u << 6;
inline constexpr uint64_t kPGE = 1u << 7;
inline constexpr uint64_t kPCE = 1u << 8;
inline constexpr uint64_t kOSFXSR = 1u << 9;
inline constexpr uint64_t kOSXMMEXCPT = 1u << 10;
inline constexpr uint64_t kUMIP = 1u << 11;
inline constexpr uint64_t kFSGSBASE = 1u << 16;
inline constexpr uint64_t kSMEP = 1u << 20;
inline constexpr uint64_t kSMAP = 1u << 21;
}  // namespace cr4

// What blocks event delivery at the next instruction boundary.
enum class InterruptShadow : uint8_t {
  kNone = 0,
  kSti = 1,    // after STI that set IF: blocks maskable interrupts for one instruction
  kMovSs = 2,  // after MOV SS / POP SS: blocks interrupts, NMI and #DB traps for one instruction
};

// Events that are pending between instructions.
struct PendingEvents {
  InterruptShadow shadow = InterruptShadow::kNone;
  // DR6 bits (B0-B3, BS, BD) of a debug trap deferred by a MOV SS shadow, to
  // be delivered at the end of the next instruction. Zero when none.
  uint64_t pendingDr6 = 0;
  bool nmiBlocked = false;  // set on NMI delivery, cleared by IRET
  bool halted = false;      // HLT executed, waiting for an interrupt

  bool operator==(const PendingEvents&) const = default;
};

struct CpuState {
  std::array<uint64_t, kNumGprs> gpr{};
  uint64_t rip = 0xFFF0;
  uint64_t rflags = flags::kFixed1;

  std::array<SegmentRegister, kNumSegRegs> seg{};
  TableRegister gdtr;
  TableRegister idtr;
  SegmentRegister ldtr{0, 0, 0xFFFF, 0x82};  // LDT, present
  SegmentRegister tr{0, 0, 0xFFFF, 0x8B};    // busy 32-bit TSS

  uint64_t cr0 = cr0::kET | cr0::kNW | cr0::kCD;  // 0x60000010 at reset
  uint64_t cr2 = 0;
  uint64_t cr3 = 0;
  uint64_t cr4 = 0;
  uint64_t cr8 = 0;  // task priority, bits 0-3
  uint64_t xcr0 = 1;

  std::array<uint64_t, 4> dr{};  // DR0-DR3 linear addresses
  uint64_t dr6 = 0xFFFF0FF0;
  uint64_t dr7 = 0x400;

  MsrState msr;
  FpuState fpu;
  PendingEvents pending;

  // Position in time: the number of steps executed since the start of the
  // run (see Cpu::step for what one step is).
  uint64_t steps = 0;

  uint64_t& reg(Gpr r) { return gpr[static_cast<int>(r)]; }
  uint64_t reg(Gpr r) const { return gpr[static_cast<int>(r)]; }
  SegmentRegister& segment(SegReg s) { return seg[static_cast<int>(s)]; }
  const SegmentRegister& segment(SegReg s) const { return seg[static_cast<int>(s)]; }

  bool operator==(const CpuState&) const = default;
};

// The CPU mode, derived from CR0, EFER and CS/RFLAGS; decoded code is cached per mode.
// Parts of a CpuState that a CPU backend reading the state back from
// elsewhere (KVM: one ioctl each) may leave out when it knows they did not
// change: lockstep reads them only after an instruction that can write them
// (Disassembly::writes) and every few instructions
// (CpuBackend::setStepReadBack, kvm::Vcpu::state(parts)).
using StateParts = uint32_t;
namespace state_part {
inline constexpr StateParts kFpu = 1u << 0;        // fpu: x87, SSE, MXCSR
inline constexpr StateParts kDebugRegs = 1u << 1;  // dr[0-3], dr6, dr7
inline constexpr StateParts kXcr0 = 1u << 2;       // xcr0
inline constexpr StateParts kMsrs = 1u << 3;       // msr, but for efer and apicBase
inline constexpr StateParts kAll = kFpu | kDebugRegs | kXcr0 | kMsrs;
}  // namespace state_part

// Copies `parts` of `from` into `to` (the rest of `to` stays).
void copyStateParts(CpuState& to, const CpuState& from, StateParts parts);

enum class CpuMode : uint8_t {
  kReal,
  kVirtual8086,
  kProtected16,
  kProtected32,
  kCompatibility16,
  kCompatibility32,
  kLong64,
};

CpuMode cpuMode(const CpuState& s);
// The current privilege level (CS.DPL in protected mode, 3 in V8086, 0 in real mode).
int currentPrivilegeLevel(const CpuState& s);
// The state of an x86 CPU after RESET (real mode, CS:IP = F000:FFF0).
CpuState resetState();
// A 64-bit hash of every architectural register (not RAM): the state digest
// the trace records so a replay can say where it diverged. Stable across
// versions: changing it is a format change.
uint64_t stateDigest(const CpuState& s);
// DR6's B0-B3 for the I/O breakpoints (CR4.DE, R/Wn = 10) that an access of
// `size` bytes to `port` meets in `s` (debug_hooks.cc: the low 16 bits of
// DRn, the range aligned to LENn); 0 without CR4.DE.
uint64_t ioBreakpointHits(const CpuState& s, uint16_t port, unsigned size);

}  // namespace ttvm
