// Lockstep: one guest run on two CPU backends side by side, compared after
// every instruction (`ttvm lockstep`, issue 13 point 5). The *reference* is
// the hardware (KvmBackend under KVM_GUESTDBG_SINGLESTEP); the *follower* is
// ttvm's emulator (EmuBackend). The first state where they differ, beyond
// what the CPU model explains, is the result.
//
// Devices run once. One Machine serves the reference: its port and MMIO
// exits reach the machine's devices through a logging environment, which
// queues each access with its value. The follower runs on a private copy of
// RAM and answers its own accesses from that queue, in order; an access
// that is not the queue's next one (kind, port or address, size, a write's
// value) is a difference by itself. Why this and not two machines on one
// virtual clock: the two sides do not retire the same number of steps per
// instruction (KVM steps a REP string instruction whole, and a guest #DB
// under host single-step is KVM's), so two clocks agree only on average;
// fed from one machine, both sides see every device answer bit for bit.
// The machine's clock follows the follower's step count (exact, as in an
// emulator recording). An RDMSR of a machine-owned MSR KVM sends to user
// space is queued like an access, with the machine's answer or refusal;
// what KVM does not trap (RDTSC, an RDMSR it keeps) the follower takes
// from the reference's registers after the instruction.
//
// Interrupts are lockstep's to decide: neither backend asks the machine.
// At an aligned boundary where the follower's state accepts one (IF=1 and
// no shadow; NMIs unless blocked), the machine's vector is acknowledged once
// and injected into both (CpuBackend::inject).
//
// Alignment. One reference step is one instruction as KVM traps it; the
// follower steps until its RIP is the reference's (one step, or every
// iteration of a REP string instruction, or an event delivery and the
// handler's first instruction where KVM traps only after it), at most
// kCatchUpLimit steps. Then the states are compared field by field
// (compareStates), and the RAM pages the follower wrote in those steps;
// all of RAM every `memoryCompareInterval` steps and at the end.
//
// What the CPU model explains (masked, counted per reason, documented in
// docs/kvm-recording.md, each pinned by a test):
//  - arithmetic flags the SDM leaves undefined after the instruction (the
//    follower adopts the hardware's values, so they do not spread);
//  - the interrupt shadow's kind (SVM has one bit: an STI shadow reads back
//    as MOV SS);
//  - the x87 error pointers FIP/FDP/FOP/FCS/FDS (AMD's FXSAVE keeps them only
//    while an exception is pending; KVM has no FCS/FDS);
//  - the accessed bit of a code segment descriptor in RAM: the emulator sets
//    it on every load (SDM 3.4.5.1); the nested VM's CPU (QEMU's TCG under
//    KVM) leaves it clear on a far JMP/CALL. A RAM byte at offset 5 of an
//    8-byte slot (a present code/data descriptor's access byte) that
//    differs only in bit 0, set by the emulator, is adopted from the
//    reference (descriptorAccessedOnly);
//  - KVM steps by setting the guest's real TF: a flags image the guest
//    writes (PUSHF, an event delivery's frame) holds it. A RAM difference
//    made only of bit 0 of odd bytes (TF is bit 8 of a flags image), set
//    on the reference, is KVM's: the reference takes the follower's bytes,
//    so that the guest never pops a TF it did not set (hostTrapFlagOnly);
//  - RF after a REP iteration that is not the last: 1 in the Intel model
//    (SDM 18.3.1.1), 0 on AMD (docs/debug-semantics.md); masked while the
//    follower is still on the REP instruction;
//  - the guest's own TF (POPF, IRET): KVM reads RFLAGS back without TF
//    while it single-steps (kvm_get_rflags), whoever set it. Masked when
//    TF is the only RFLAGS difference and the follower has it;
//  - virtual-8086 mode's hidden segment attributes: SVM reports every
//    segment as type 3 (0xF3), the emulator CS as a code type (0xFB); a
//    type-only difference of a segment is masked while RFLAGS.VM is set;
//  - PUSH of a segment register with a 32- or 64-bit operand size: Intel
//    CPUs (the model) write only the 16-bit selector and leave the rest of
//    the slot, AMD (the nested VM's CPU) writes it zero-extended (SDM vol.
//    2B "PUSH": both are allowed). After a step that pushed a segment
//    register, an aligned dword or qword that KVM holds as a zero-extended
//    selector the emulator's low 16 bits equal is adopted from KVM
//    (adoptSegmentPushWidth);
//  - a #DB the guest armed itself (its TF, its DR0-DR3) on an instruction
//    the host single-steps: KVM reports it to the host and does not deliver
//    it (svm's db_interception). The follower delivers it; the reference
//    then takes the follower's state and the pages it wrote. Except general
//    detect (DR7.GD) on a MOV DR: KVM intercepts MOV DR while it debugs the
//    guest, and its emulator delivers that fault itself and runs on into
//    the handler unstepped; where the follower's frame does not return to
//    the reference's RIP, the follower follows (kDebugTrapKvmDelivered).
//  - in a step where the accessed-bit mask applied, the D bit that the
//    emulator's write of that descriptor set in its paging entry
//    (pagingDirtyBitByte); in a step where the follower delivered an
//    exception, RF in the EFLAGS image it pushed, which QEMU's TCG pushes
//    as 0 (faultFrameResumeFlagByte): both adopted from the reference;
//  - SYSCALL saves RFLAGS in R11 with KVM's stepping TF: the reference
//    takes the follower's R11 (hostTrapFlagInR11).
//
// Keep going (LockstepOptions::maxDifferences > 1, `--keep-going`). After a
// difference is reported, the follower adopts the reference's side: its
// whole state (all parts read back; the follower keeps its step count, which
// the machine's clock follows), and every RAM page that still differs after
// the masks above, copied from the machine's RAM into the follower's copy.
// Device accesses: the machine has seen the reference's accesses, and only
// them, so the reference's stand: the queued accesses the follower did not
// take are dropped, and an access the follower made that the reference did
// not (answered 0, reaching no device) vanishes with the follower's state.
// The next instruction starts from one state on both sides. A triple fault
// on one side only ends the run (KVM's vCPU is then in its reset state).
#pragma once

#include <csignal>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ttvm/base/result.h"
#include "ttvm/emulator/cpu.h"
#include "ttvm/emulator/state_diff.h"
#include "ttvm/machine/cpu_backend.h"
#include "ttvm/machine/loader.h"
#include "ttvm/machine/machine.h"

namespace ttvm {

// Why a difference was explained by the CPU model (LockstepResult::masked).
enum class MaskReason : uint8_t {
  kUndefinedFlags,         // arithmetic flags the SDM leaves undefined
  kShadowKind,             // SVM's one interrupt-shadow bit
  kFpuPointers,            // x87 FIP/FDP/FOP/FCS/FDS
  kGuestDebugTrap,         // a guest #DB under host single-step (KVM keeps it)
  kDescriptorAccessed,     // a descriptor's accessed bit the host CPU left clear
  kHostTrapFlag,           // the TF KVM sets to step, in a flags image the guest wrote
  kRepResumeFlag,          // RF between REP iterations (AMD 0, the Intel model 1)
  kGuestTrapFlagHidden,    // the guest's own TF, which KVM hides while it steps
  kV86SegmentType,         // SVM's data type 3 for virtual-8086 segments
  kSegmentPushWidth,       // PUSH Sreg: Intel writes 16 bits, AMD zero-extends
  kPagingDirtyBit,         // the D bit the emulator's descriptor accessed-bit write set
  kFaultFrameResumeFlag,   // RF in a fault's EFLAGS image (QEMU's TCG pushes 0)
  kHostTrapFlagInR11,      // the TF KVM steps with, saved in R11 by SYSCALL
  kDebugTrapKvmDelivered,  // a guest #DB KVM's emulator delivered itself: followed
  kSegmentGranularity,     // SVM's G bit, derived by KVM from the hidden limit
};
std::string_view maskReasonName(MaskReason r);

// Compares the architectural state of `reference` and `follower` (GPRs,
// RIP, RFLAGS, segments and descriptor tables, CR0-CR4, CR8, XCR0, DR0-DR3,
// DR6, DR7, the MSRs of MsrState, x87/SSE, pending events; not the step
// count). `undefinedFlags` are the RFLAGS bits the instruction just executed
// leaves undefined. What the CPU model explains is copied from the
// reference into `follower` and counted in `masked`; what stays is returned.
// `midRep`: the follower is between two iterations of a REP string
// instruction.
std::vector<FieldDifference> compareStates(const CpuState& reference, CpuState& follower,
                                           uint32_t undefinedFlags,
                                           std::map<MaskReason, uint64_t>& masked,
                                           bool midRep = false);

// Whether every byte where `hw` and `emu` (one RAM page each) differ is the
// access byte of a descriptor whose accessed bit the emulator set and the
// reference did not (see above); false when they are equal.
bool descriptorAccessedOnly(std::span<const uint8_t> hw, std::span<const uint8_t> emu);
// The same for one byte at `offset` in its page.
bool descriptorAccessedByte(size_t offset, uint8_t hw, uint8_t emu);

// Whether every byte where `hw` and `emu` differ is an odd byte whose only
// difference is bit 0, set in `hw`: the host's TF in flags images.
bool hostTrapFlagOnly(std::span<const uint8_t> hw, std::span<const uint8_t> emu);
bool hostTrapFlagByte(size_t offset, uint8_t hw, uint8_t emu);

// The first byte of a 4- or 8-byte paging-structure entry whose only
// difference is D (bit 6), set by the emulator: the page's dirty bit, set by
// the emulator's write of a descriptor's accessed bit that the nested VM's
// CPU leaves clear (kDescriptorAccessed). Adopted from the reference only
// in a step where that mask applied.
bool pagingDirtyBitByte(size_t offset, uint8_t hw, uint8_t emu);
// Bit 16 (RF) of a dword-aligned EFLAGS image, set by the emulator and clear
// in the reference: the SDM (6.8.3) and the APM push RF = 1 for faults,
// QEMU's TCG (the nested VM's CPU) pushes 0. Adopted from the reference only
// in a step where the emulator delivered an exception.
bool faultFrameResumeFlagByte(size_t offset, uint8_t hw, uint8_t emu);

// After `instruction` (its disassembly): whether R11 differs only in TF,
// set in `hw`'s: SYSCALL saved RFLAGS with the TF KVM steps with (as PUSHF
// writes it to RAM, kHostTrapFlag). The reference then takes the
// follower's R11, so that SYSRET does not load the TF.
bool hostTrapFlagInR11(std::string_view instruction, const CpuState& hw, const CpuState& emu);

// Whether `instruction` (its disassembly) is a MOV to or from a debug
// register and `after`, the state once the #DB it raised was delivered,
// has DR6.BD: general detect, which KVM's emulator raises and delivers
// itself while KVM debugs the guest (it intercepts MOV DR then).
bool generalDetectByKvm(std::string_view instruction, const CpuState& after);

// After an event delivery in `s` (the handler's first instruction): where
// the frame's return RIP lies, at the top of the stack (linear), and its
// width: RIP 8 bytes in long mode, EIP 4 in protected mode (a 32-bit gate),
// IP 2 in real mode. Lockstep reads it to tell a guest #DB KVM reported
// (KVM stopped where the frame returns to) from one KVM delivered itself.
struct ReturnRipSlot {
  uint64_t linear = 0;
  unsigned width = 0;
  bool operator==(const ReturnRipSlot&) const = default;
};
ReturnRipSlot returnRipSlot(const CpuState& s);

// In one RAM page of each side: every aligned qword, then dword, where `hw`
// holds a zero-extended 16-bit value whose low 16 bits `emu` has too is
// copied from `hw` into `emu` (see PUSH Sreg above). Whether any was.
bool adoptSegmentPushWidth(std::span<const uint8_t> hw, std::span<uint8_t> emu);

struct LockstepResult;

struct LockstepOptions {
  uint64_t maxSteps = 0;  // reference steps (instructions); 0: no limit
  double timeoutSeconds = 0;
  // All of RAM compared every this many reference steps (and at the end).
  uint64_t memoryCompareInterval = 4096;
  // The reference's state parts that cost a read each (state_part: FPU,
  // debug registers, XCR0, MSRs) are read back after an instruction that
  // can write them (Disassembly::writes), after a step that was not one
  // plain instruction (an event delivered, more than one emulator step but
  // for a REP instruction's iterations, an outcome other than retired), and
  // all of them every this many reference steps and at the end, which
  // catches what the rule missed within K instructions. 1: after every
  // instruction.
  uint64_t fullStateInterval = 64;
  // Halted with IF=1 this long in virtual time: hang.
  uint64_t idleHangNs = 60'000'000'000ull;
  const volatile std::sig_atomic_t* interruptFlag = nullptr;
  // The run stops at this many differences (`--keep-going=N`); 0: no limit.
  // 1, the default, stops at the first as before. Otherwise, after each
  // difference the emulator adopts KVM's side (keepGoing below) and the
  // run goes on.
  uint64_t maxDifferences = 1;
  // Called at each difference, its fields in the result filled as for the
  // last one (describeDifference), before the emulator adopts KVM's side.
  std::function<void(const LockstepResult&)> onDifference;
};

// One difference of a run, for the summary: where, and what differed first.
struct LockstepDifference {
  uint64_t step = 0;          // reference steps compared when it was found
  uint64_t followerStep = 0;  // the emulator's step count then
  uint64_t rip = 0;           // the instruction's linear RIP
  std::string instruction;    // its disassembly (empty: a difference at the end)
  // The first field ("rax: KVM 0x3, emulator 0x11111111"), RAM page
  // ("RAM 0x5120: KVM 00a70000, emulator 00270000") or access that differed.
  std::string first;
  std::string message;        // "the states differ", "RAM differs", ...
  uint64_t pagesAdopted = 0;  // RAM pages the emulator took from KVM after it
};

struct LockstepResult {
  enum class End : uint8_t {
    kGuestEnded,   // a device ended the run (exit device, shutdown, panic, reset)
    kTripleFault,  // both sides
    kHang,         // HLT with nothing that can wake it
    kStepLimit,
    kTimeout,
    kInterrupted,
    kDifference,      // the states (or accesses, or RAM) differ: see below
    kReferenceFailed  // the reference backend could not go on (its failure())
  };
  End end = End::kGuestEnded;
  std::string message;                        // the end in words (the stop request's, the failure)
  uint32_t exitStatus = 0;                    // kGuestEnded by the exit device: its status
  EndReason guestEnd = EndReason::kShutdown;  // kGuestEnded: the machine's reason
  uint64_t steps = 0;                         // reference steps compared
  uint64_t followerSteps = 0;                 // the follower's step count at the end
  uint64_t memoryCompares = 0;                // full RAM comparisons made
  uint64_t partialReads = 0;  // reference steps whose costly state parts were not all read back
  std::map<MaskReason, uint64_t> masked;
  // kDifference: the state both had before the instruction, the
  // instruction there (linear RIP, bytes, disassembly), both states after,
  // the fields that differ, and the pages or access that differ. At any
  // other end but kReferenceFailed, `reference` and `follower` are the
  // final states.
  CpuState before, reference, follower;
  uint64_t instructionRip = 0;
  std::string instruction;
  std::vector<FieldDifference> differences;
  std::vector<uint64_t> pagesDiffering;  // guest-physical page numbers
  // For each of those: the differing bytes ("0x104008: KVM 9b, emulator 9a"),
  // the first few.
  std::vector<std::string> pageDetails;
  std::string accessProblem;  // an access the sides did not share
  // Every difference found, in order (one unless maxDifferences > 1). The
  // fields above describe the last; a run that found any failed, whatever
  // its end.
  std::vector<LockstepDifference> found;
  double wallSeconds = 0;
};

// The difference in words: the instruction, the differing fields and both
// states side by side (what `ttvm lockstep` prints).
std::string describeDifference(const LockstepResult& r);

class Lockstep {
 public:
  // How the reference backend is built (over the machine's memory and the
  // environment lockstep gives it).
  using BackendFactory = std::function<Result<std::unique_ptr<machine::CpuBackend>>(
      const CpuModel& model, PhysicalMemory memory, Environment& env)>;
  // The follower is always the emulator. `machine` must outlive this.
  Lockstep(machine::Machine& machine, const CpuState& initial, BackendFactory makeReference,
           LockstepOptions options);
  ~Lockstep();
  Lockstep(const Lockstep&) = delete;
  Lockstep& operator=(const Lockstep&) = delete;

  Status start();
  LockstepResult run();

  // The most follower steps one reference step may take.
  static constexpr uint64_t kCatchUpLimit = 1u << 22;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ttvm
