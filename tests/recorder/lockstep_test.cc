// Lockstep on the host: the emulator as both reference and follower (KVM's
// run is the nested VM's test, kvm.lockstep). Two equal CPUs over one
// machine must never differ; a reference that is made to differ at a known
// instruction (a register, a defined or an undefined flag, a RAM byte, an
// access) must be reported there and nowhere else. compareStates' masks
// each pinned.
#include "ttvm/recorder/lockstep.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>

#include "ttvm/recorder/emu_backend.h"

namespace ttvm {
namespace {

using machine::CpuBackend;
using End = LockstepResult::End;

// The reference: the emulator, with `tamper` applied to its state and the
// machine's RAM right after the step that reaches `atStep` (and each of
// `moreSteps`). It reads back as
// KVM does for lockstep: step() shows only the state parts it was asked for
// (setStepReadBack), the others keep their old values until refreshState()
// (each call counted in `refreshes`, by the parts asked for).
class TamperedEmu final : public CpuBackend {
 public:
  TamperedEmu(const CpuModel& model, PhysicalMemory memory, Environment& env, uint64_t atStep,
              std::function<void(CpuState&, std::span<uint8_t>)> tamper,
              std::vector<uint64_t> moreSteps = {})
      : inner_(model, memory, env),
        ram_(memory.ram),
        atStep_(atStep),
        moreSteps_(std::move(moreSteps)),
        tamper_(std::move(tamper)) {}
  Backend kind() const override { return Backend::kEmulator; }
  bool countsSteps() const override { return true; }
  StepResult run(uint64_t n) override { return inner_.run(n); }
  StepResult step() override {
    const CpuState before = inner_.state();
    StepResult r = inner_.step();
    if (afterStep) afterStep(inner_, before, r);
    const uint64_t n = inner_.state().steps;
    if (tamper_ && (n == atStep_ || std::ranges::find(moreSteps_, n) != moreSteps_.end())) {
      CpuState s = inner_.state();
      tamper_(s, ram_);
      inner_.setState(s);
    }
    CpuState shown = inner_.state();
    copyStateParts(shown, shown_, state_part::kAll & ~stepParts_);
    shown_ = shown;
    return r;
  }
  const CpuState& state() const override { return shown_; }
  void setState(const CpuState& s) override {
    inner_.setState(s);
    shown_ = s;
  }
  void inject(const machine::InjectedEvent& e) override { inner_.inject(e); }
  bool pendingInjection() const override { return inner_.pendingInjection(); }
  bool readLinear(uint64_t a, std::span<uint8_t> out) const override {
    return inner_.readLinear(a, out);
  }
  void setDirtyTracking(bool on) override { inner_.setDirtyTracking(on); }
  std::vector<uint64_t> takeDirtyPages() override { return inner_.takeDirtyPages(); }
  const std::vector<std::string>& unimplementedLog() const override {
    return inner_.unimplementedLog();
  }
  const std::string& failure() const override { return inner_.failure(); }
  void setStepReadBack(StateParts parts) override { stepParts_ = parts; }
  void refreshState(StateParts parts) override {
    copyStateParts(shown_, inner_.state(), parts);
    ++refreshes[parts];
  }

  static inline std::map<StateParts, uint64_t> refreshes;
  // Makes the emulator's step the hardware's (`before`: the state it started from).
  std::function<void(EmuBackend& inner, const CpuState& before, const StepResult& r)> afterStep;

 private:
  EmuBackend inner_;
  std::span<uint8_t> ram_;
  uint64_t atStep_;
  std::vector<uint64_t> moreSteps_;
  std::function<void(CpuState&, std::span<uint8_t>)> tamper_;
  CpuState shown_;
  StateParts stepParts_ = state_part::kAll;
};

// Real mode at 0x1000: a port write, REP OUTSB of 3 bytes, MUL (SF ZF AF PF
// undefined), ADD, a store, a port read, then the exit device.
//   step 1 mov dx,0x3f8   2 mov al,'A'   3 out dx,al   4 mov cx,3
//   5 mov si,0x3000       6-8 rep outsb (3 iterations)  9 mov cx,5
//   10 mov ax,7           11 mul cx      12 add ax,1    13 mov [0x4000],ax
//   14 mov dx,0x3fd       15 in al,dx    16 mov dx,0xf4 17 mov al,0
//   18 out dx,al (isa-debug-exit)
const uint8_t kCode[] = {
    0xBA, 0xF8, 0x03,  // mov dx, 0x3f8
    0xB0, 0x41,        // mov al, 'A'
    0xEE,              // out dx, al
    0xB9, 0x03, 0x00,  // mov cx, 3
    0xBE, 0x00, 0x30,  // mov si, 0x3000
    0xF3, 0x6E,        // rep outsb
    0xB9, 0x05, 0x00,  // mov cx, 5
    0xB8, 0x07, 0x00,  // mov ax, 7
    0xF7, 0xE1,        // mul cx
    0x05, 0x01, 0x00,  // add ax, 1
    0xA3, 0x00, 0x40,  // mov [0x4000], ax
    0xBA, 0xFD, 0x03,  // mov dx, 0x3fd
    0xEC,              // in al, dx
    0xBA, 0xF4, 0x00,  // mov dx, 0xf4
    0xB0, 0x00,        // mov al, 0
    0xEE,              // out dx, al
};

struct LockstepRun {
  std::unique_ptr<machine::Machine> machine;
  LockstepResult result;
};

// `code` at 0x1000 (and "xyz" at 0x3000) run in real mode by lockstep with
// the reference `make` builds.
LockstepRun runCode(std::span<const uint8_t> code, const LockstepOptions& o,
                    const Lockstep::BackendFactory& make) {
  machine::MachineOptions mo;
  mo.ramBytes = 2u << 20;
  auto m = machine::Machine::create(mo);
  EXPECT_TRUE(m.ok());
  LockstepRun run{std::move(*m), {}};
  std::memcpy(run.machine->ram().data() + 0x1000, code.data(), code.size());
  std::memcpy(run.machine->ram().data() + 0x3000, "xyz", 3);
  CpuState s = machine::Machine::initialCpuState();
  s.seg[static_cast<int>(SegReg::kCs)].selector = 0;
  s.seg[static_cast<int>(SegReg::kCs)].base = 0;
  s.rip = 0x1000;
  s.reg(Gpr::kRsp) = 0x8000;
  Lockstep l(*run.machine, s, make, o);
  EXPECT_TRUE(l.start().ok());
  run.result = l.run();
  return run;
}

LockstepRun lockstep(uint64_t atStep, std::function<void(CpuState&, std::span<uint8_t>)> tamper,
                     uint64_t memoryEvery = 4096) {
  LockstepOptions o;
  o.memoryCompareInterval = memoryEvery;
  return runCode(kCode, o,
                 [&](const CpuModel& model, PhysicalMemory memory,
                     Environment& env) -> Result<std::unique_ptr<CpuBackend>> {
                   return std::unique_ptr<CpuBackend>(
                       std::make_unique<TamperedEmu>(model, memory, env, atStep, tamper));
                 });
}

// `code` run by lockstep with the emulator, untouched, as the reference.
LockstepRun runUntampered(std::span<const uint8_t> code, const LockstepOptions& o) {
  return runCode(code, o,
                 [](const CpuModel& model, PhysicalMemory memory,
                    Environment& env) -> Result<std::unique_ptr<CpuBackend>> {
                   return std::unique_ptr<CpuBackend>(
                       std::make_unique<TamperedEmu>(model, memory, env, 0, nullptr));
                 });
}

TEST(Lockstep, TwoEqualCpusNeverDiffer) {
  LockstepRun r = lockstep(0, nullptr, 1);
  EXPECT_EQ(r.result.end, End::kGuestEnded) << describeDifference(r.result);
  EXPECT_EQ(r.result.guestEnd, EndReason::kExitDevice);
  EXPECT_EQ(r.result.steps, 18u);
  EXPECT_EQ(r.result.followerSteps, 18u);
  EXPECT_TRUE(r.result.masked.empty());
  // RAM compared after every instruction, and at the end.
  EXPECT_EQ(r.result.memoryCompares, 19u);
  EXPECT_EQ(r.machine->ram()[0x4000], 36);  // 7 * 5 + 1
}

TEST(Lockstep, ARegisterThatDiffersIsReportedAtItsInstruction) {
  LockstepRun r = lockstep(10, [](CpuState& s, std::span<uint8_t>) { s.reg(Gpr::kRbx) ^= 0x10; });
  ASSERT_EQ(r.result.end, End::kDifference);
  EXPECT_EQ(r.result.steps, 10u);
  ASSERT_EQ(r.result.differences.size(), 1u);
  EXPECT_EQ(r.result.differences[0], (FieldDifference{"rbx", 0x10, 0}));
  EXPECT_EQ(r.result.instructionRip, 0x1011u);  // mov ax, 7
  EXPECT_EQ(r.result.instruction, "mov ax, 0x07");
  EXPECT_EQ(r.result.before.rip, 0x1011u);
  const std::string text = describeDifference(r.result);
  EXPECT_NE(text.find("mov ax, 0x07"), std::string::npos) << text;
  EXPECT_NE(text.find("rbx"), std::string::npos) << text;
}

TEST(Lockstep, AnUndefinedFlagIsMaskedAndAdoptedADefinedOneIsNot) {
  // After MUL (step 11) AF is undefined: masked, and the emulator takes the
  // reference's value, so ADD's flags (which define AF) agree again.
  LockstepRun masked =
      lockstep(11, [](CpuState& s, std::span<uint8_t>) { s.rflags ^= flags::kAF; });
  EXPECT_EQ(masked.result.end, End::kGuestEnded) << describeDifference(masked.result);
  EXPECT_EQ(masked.result.masked[MaskReason::kUndefinedFlags], 1u);
  // After ADD (step 12) AF is defined: a difference.
  LockstepRun reported =
      lockstep(12, [](CpuState& s, std::span<uint8_t>) { s.rflags ^= flags::kAF; });
  ASSERT_EQ(reported.result.end, End::kDifference);
  EXPECT_EQ(reported.result.steps, 12u);
  ASSERT_EQ(reported.result.differences.size(), 1u);
  EXPECT_EQ(reported.result.differences[0].field, "rflags");
  EXPECT_EQ(reported.result.instruction, "add ax, 0x01");
}

TEST(Lockstep, RamTheReferenceAloneWroteIsFoundAtTheNextComparison) {
  // A byte no instruction touches: found by the comparison of all of RAM
  // after step 5 (every instruction) or at the end (the default interval).
  auto poke = [](CpuState&, std::span<uint8_t> ram) { ram[0x5123] ^= 0x80; };
  LockstepRun every = lockstep(5, poke, 1);
  ASSERT_EQ(every.result.end, End::kDifference);
  EXPECT_EQ(every.result.steps, 5u);
  EXPECT_EQ(every.result.pagesDiffering, std::vector<uint64_t>{5});
  LockstepRun atEnd = lockstep(5, poke);
  ASSERT_EQ(atEnd.result.end, End::kDifference);
  EXPECT_EQ(atEnd.result.pagesDiffering, std::vector<uint64_t>{5});
  EXPECT_NE(atEnd.result.message.find("at the end"), std::string::npos) << atEnd.result.message;
}

TEST(Lockstep, AnAccessTheSidesDoNotShareIsADifference) {
  // The reference's second byte for REP OUTSB becomes 'Y' (RAM the follower
  // has not compared yet): the second iteration's port writes differ.
  LockstepRun r = lockstep(5, [](CpuState&, std::span<uint8_t> ram) { ram[0x3001] = 'Y'; });
  ASSERT_EQ(r.result.end, End::kDifference);
  EXPECT_EQ(r.result.steps, 7u);
  EXPECT_EQ(r.result.instruction, "rep outsb");
  EXPECT_EQ(r.result.accessProblem,
            "the emulator made a port write of 1 bytes at 0x3f8 (value 0x79) where KVM made a "
            "port write of 1 bytes at 0x3f8 (value 0x59)");
}

// Real mode at 0x1000: a loop of 400 INC/LOOP pairs, its count stored.
//   1 mov bx,0   2 mov cx,400   3-802 inc bx; loop   803 mov [0x4000],bx
//   804 mov dx,0xf4   805 mov al,0   806 out dx,al (isa-debug-exit)
const uint8_t kLoopCode[] = {
    0xBB, 0x00, 0x00,        // mov bx, 0
    0xB9, 0x90, 0x01,        // mov cx, 400
    0x43,                    // inc bx
    0xE2, 0xFD,              // loop -3
    0x89, 0x1E, 0x00, 0x40,  // mov [0x4000], bx
    0xBA, 0xF4, 0x00,        // mov dx, 0xf4
    0xB0, 0x00,              // mov al, 0
    0xEE,                    // out dx, al
};

// kLoopCode with BX tampered after step 101 and a RAM byte no instruction
// touches after step 701, far apart; RAM compared after every instruction.
LockstepRun twoTampered(uint64_t maxDifferences) {
  LockstepOptions o;
  o.memoryCompareInterval = 1;
  o.maxDifferences = maxDifferences;
  auto tamper = [](CpuState& s, std::span<uint8_t> ram) {
    if (s.steps == 101) s.reg(Gpr::kRbx) ^= 0x1000;
    if (s.steps == 701) ram[0x5123] ^= 0x80;
  };
  return runCode(kLoopCode, o,
                 [&](const CpuModel& model, PhysicalMemory memory,
                     Environment& env) -> Result<std::unique_ptr<CpuBackend>> {
                   return std::unique_ptr<CpuBackend>(std::make_unique<TamperedEmu>(
                       model, memory, env, 101, tamper, std::vector<uint64_t>{701}));
                 });
}

TEST(Lockstep, WithoutKeepGoingTheFirstDifferenceStops) {
  LockstepRun r = twoTampered(1);
  ASSERT_EQ(r.result.end, End::kDifference);
  EXPECT_EQ(r.result.steps, 101u);
  ASSERT_EQ(r.result.found.size(), 1u);
  EXPECT_EQ(r.result.found[0].step, 101u);
  EXPECT_EQ(r.result.message, "the states differ");
  EXPECT_NE(describeDifference(r.result).find("first difference after 101 instructions"),
            std::string::npos);
}

TEST(Lockstep, KeepGoingReportsBothDifferencesAndAdoptsTheReferencesSide) {
  LockstepRun r = twoTampered(0);
  // The guest ran to its end; both differences, and nothing after them:
  // the emulator took the reference's BX and page, so the loop's count,
  // the store and the comparisons of all of RAM after each step agree.
  EXPECT_EQ(r.result.end, End::kGuestEnded) << r.result.message;
  EXPECT_EQ(r.result.guestEnd, EndReason::kExitDevice);
  EXPECT_EQ(r.result.steps, 806u);
  ASSERT_EQ(r.result.found.size(), 2u);
  const LockstepDifference& first = r.result.found[0];
  EXPECT_EQ(first.step, 101u);
  EXPECT_EQ(first.message, "the states differ");
  EXPECT_EQ(first.first.substr(0, 4), "rbx:") << first.first;
  EXPECT_TRUE(first.instruction == "inc bx" || first.instruction.starts_with("loop"))
      << first.instruction;
  EXPECT_EQ(first.pagesAdopted, 0u);
  const LockstepDifference& second = r.result.found[1];
  EXPECT_EQ(second.step, 701u);
  EXPECT_EQ(second.message, "RAM differs");
  EXPECT_EQ(second.first.substr(0, 10), "RAM 0x5120") << second.first;
  EXPECT_EQ(second.pagesAdopted, 1u);
  // The final states agree (the emulator's BX is the reference's, tampered)
  // and the guest stored the reference's count.
  EXPECT_EQ(r.result.follower.reg(Gpr::kRbx), 400u + 0x1000);
  EXPECT_EQ(r.result.reference.reg(Gpr::kRbx), 400u + 0x1000);
  EXPECT_EQ(r.result.reference.rip, r.result.follower.rip);
  EXPECT_EQ(r.machine->ram()[0x4001], 0x11);
  EXPECT_EQ(r.machine->ram()[0x4000], 0x90);
}

TEST(Lockstep, KeepGoingStopsAtItsLimit) {
  LockstepRun r = twoTampered(2);
  ASSERT_EQ(r.result.end, End::kDifference);
  EXPECT_EQ(r.result.steps, 701u);
  ASSERT_EQ(r.result.found.size(), 2u);
  EXPECT_EQ(r.result.message, "RAM differs (difference 2, the --keep-going limit)");
  EXPECT_NE(describeDifference(r.result).find("difference 2 after 701 instructions"),
            std::string::npos);
}

TEST(Lockstep, KeepGoingDropsTheAccessesOnlyOneSideMade) {
  // As AnAccessTheSidesDoNotShareIsADifference: the second REP OUTSB
  // iteration's port write differs. The emulator takes the reference's
  // state and page 3 ('Y'), the queue is emptied, and the third iteration
  // and the port read after it are shared again.
  LockstepOptions o;
  o.maxDifferences = 0;
  auto tamper = [](CpuState&, std::span<uint8_t> ram) { ram[0x3001] = 'Y'; };
  LockstepRun r = runCode(kCode, o,
                          [&](const CpuModel& model, PhysicalMemory memory,
                              Environment& env) -> Result<std::unique_ptr<CpuBackend>> {
                            return std::unique_ptr<CpuBackend>(
                                std::make_unique<TamperedEmu>(model, memory, env, 5, tamper));
                          });
  EXPECT_EQ(r.result.end, End::kGuestEnded) << r.result.message;
  EXPECT_EQ(r.result.steps, 18u);
  ASSERT_EQ(r.result.found.size(), 1u);
  EXPECT_EQ(r.result.found[0].step, 7u);
  EXPECT_EQ(r.result.found[0].instruction, "rep outsb");
  EXPECT_EQ(r.result.found[0].first,
            "access: the emulator made a port write of 1 bytes at 0x3f8 (value 0x79) where KVM "
            "made a port write of 1 bytes at 0x3f8 (value 0x59)");
  EXPECT_EQ(r.result.found[0].pagesAdopted, 1u);
  EXPECT_EQ(r.result.follower.reg(Gpr::kRax) & 0xFF, 0u);  // mov al, 0
}

// Real mode at 0x1000: IVT entry 13 (#GP) set to 0000:1100, then RDMSR of
// the x2APIC ID (0x802) with the APIC in xAPIC mode, which the machine
// refuses: #GP to 0x1100, which exits with status 0; had the RDMSR been
// answered, the code after it exits with 1.
const uint8_t kRefusedRdmsrCode[] = {
    0xC7, 0x06, 0x34, 0x00, 0x00, 0x11,  // mov word [0x34], 0x1100
    0xC7, 0x06, 0x36, 0x00, 0x00, 0x00,  // mov word [0x36], 0
    0x66, 0xB9, 0x02, 0x08, 0x00, 0x00,  // mov ecx, 0x802
    0x0F, 0x32,                          // rdmsr
    0xBA, 0xF4, 0x00,                    // mov dx, 0xf4
    0xB0, 0x01,                          // mov al, 1
    0xEE,                                // out dx, al
};
const uint8_t kExitZero[] = {0xBA, 0xF4, 0x00, 0xB0, 0x00, 0xEE};  // at 0x1100

TEST(Lockstep, AnRdmsrTheMachineRefusesFaultsOnBothSides) {
  // The reference's RDMSR reaches the machine (as KVM's MSR exit does), and
  // the follower's gets the same refusal from the queue, not an answer.
  std::vector<uint8_t> code(0x106);
  std::memcpy(code.data(), kRefusedRdmsrCode, sizeof kRefusedRdmsrCode);
  std::memcpy(code.data() + 0x100, kExitZero, sizeof kExitZero);
  LockstepOptions o;
  o.maxDifferences = 0;
  LockstepRun r = runUntampered(code, o);
  EXPECT_EQ(r.result.end, End::kGuestEnded) << r.result.message;
  EXPECT_TRUE(r.result.found.empty()) << (r.result.found.empty() ? "" : r.result.found[0].first);
  EXPECT_EQ(r.result.exitStatus, 1u);  // isa-debug-exit: (0 << 1) | 1
  EXPECT_EQ(r.result.follower.rip, 0x1106u);
}

// Real mode at 0x1000: WRMSR of IA32_TIME_STAMP_COUNTER (0x10), which moves
// IA32_TSC_ADJUST by the write's delta (SDM vol. 3 17.17.3), RDMSR of
// IA32_TSC_ADJUST (0x3B), WRMSR of IA32_TSC_ADJUST, which moves the TSC,
// RDTSC, then the exit device.
const uint8_t kTscWritesCode[] = {
    0x66, 0xB9, 0x10, 0x00, 0x00, 0x00,  // mov ecx, 0x10
    0x66, 0xBA, 0x01, 0x00, 0x00, 0x00,  // mov edx, 1
    0x66, 0xB8, 0x00, 0x00, 0x00, 0x00,  // mov eax, 0
    0x0F, 0x30,                          // wrmsr: TSC = 1 << 32
    0x66, 0xB9, 0x3B, 0x00, 0x00, 0x00,  // mov ecx, 0x3b
    0x0F, 0x32,                          // rdmsr
    0x66, 0x31, 0xD2,                    // xor edx, edx
    0x66, 0xB8, 0x00, 0x50, 0x00, 0x00,  // mov eax, 0x5000
    0x0F, 0x30,                          // wrmsr: TSC_ADJUST = 0x5000
    0x0F, 0x31,                          // rdtsc
    0xBA, 0xF4, 0x00,                    // mov dx, 0xf4
    0xB0, 0x00,                          // mov al, 0
    0xEE,                                // out dx, al
};

TEST(Lockstep, TscWritesMoveTscAdjustOnBothSides) {
  // The follower's TSC comes from the reference's EDX:EAX less
  // IA32_TSC_ADJUST; at a WRMSR of the TSC, EDX:EAX is the value written,
  // so the follower must take the reference's new TSC_ADJUST (the raw TSC
  // the write started from), not its own old one, or its TSC_ADJUST stays
  // put where the reference's moved.
  LockstepOptions o;
  o.maxDifferences = 0;
  LockstepRun r = runUntampered(kTscWritesCode, o);
  EXPECT_EQ(r.result.end, End::kGuestEnded) << describeDifference(r.result);
  EXPECT_TRUE(r.result.found.empty()) << (r.result.found.empty() ? "" : r.result.found[0].first);
  EXPECT_EQ(r.result.follower.msr.tscAdjust, 0x5000u);
  EXPECT_EQ(r.result.steps, 13u);
}

// Real mode at 0x1000: x87, a debug register and an MSR written among
// instructions that touch none of them.
//   1 mov ax,1   2 fninit   3 fld1   4 mov bx,2   5 mov cx,3   6 mov dx,4
//   7 mov eax,0x401   8 mov dr7,eax   9 mov ecx,0x174   10 xor edx,edx
//   11 mov eax,8   12 wrmsr   13 nop   14 nop   15 mov dx,0xf4   16 mov al,0
//   17 out dx,al (isa-debug-exit)
const uint8_t kCostlyCode[] = {
    0xB8, 0x01, 0x00,                    // mov ax, 1
    0xDB, 0xE3,                          // fninit
    0xD9, 0xE8,                          // fld1
    0xBB, 0x02, 0x00,                    // mov bx, 2
    0xB9, 0x03, 0x00,                    // mov cx, 3
    0xBA, 0x04, 0x00,                    // mov dx, 4
    0x66, 0xB8, 0x01, 0x04, 0x00, 0x00,  // mov eax, 0x401
    0x0F, 0x23, 0xF8,                    // mov dr7, eax
    0x66, 0xB9, 0x74, 0x01, 0x00, 0x00,  // mov ecx, 0x174 (IA32_SYSENTER_CS)
    0x66, 0x31, 0xD2,                    // xor edx, edx
    0x66, 0xB8, 0x08, 0x00, 0x00, 0x00,  // mov eax, 8
    0x0F, 0x30,                          // wrmsr
    0x90, 0x90,                          // nop; nop
    0xBA, 0xF4, 0x00,                    // mov dx, 0xf4
    0xB0, 0x00,                          // mov al, 0
    0xEE,                                // out dx, al
};

LockstepRun lazyLockstep(uint64_t atStep, std::function<void(CpuState&)> tamper,
                         uint64_t fullStateEvery) {
  LockstepOptions o;
  o.fullStateInterval = fullStateEvery;
  TamperedEmu::refreshes.clear();
  auto tamperState = [&](CpuState& s, std::span<uint8_t>) { tamper(s); };
  return runCode(
      kCostlyCode, o,
      [&](const CpuModel& model, PhysicalMemory memory,
          Environment& env) -> Result<std::unique_ptr<CpuBackend>> {
        return std::unique_ptr<CpuBackend>(std::make_unique<TamperedEmu>(
            model, memory, env, atStep,
            tamper ? std::function<void(CpuState&, std::span<uint8_t>)>(tamperState) : nullptr));
      });
}

TEST(Lockstep, CostlyPartsAreReadBackOnlyAfterInstructionsThatWriteThem) {
  LockstepRun r = lazyLockstep(0, nullptr, 64);
  EXPECT_EQ(r.result.end, End::kGuestEnded) << describeDifference(r.result);
  EXPECT_EQ(r.result.steps, 17u);
  // Each step read what its instruction can write: fninit and fld1 the FPU,
  // MOV DR7 the debug registers, WRMSR the MSRs (before the follower's
  // step, nothing after it), the 13 others nothing; all of them once more
  // at the end.
  EXPECT_EQ(r.result.partialReads, 17u);
  EXPECT_EQ(TamperedEmu::refreshes[0], 14u);
  EXPECT_EQ(TamperedEmu::refreshes[state_part::kFpu], 2u);
  EXPECT_EQ(TamperedEmu::refreshes[state_part::kDebugRegs], 1u);
  EXPECT_EQ(TamperedEmu::refreshes[state_part::kMsrs], 1u);
  EXPECT_EQ(TamperedEmu::refreshes[state_part::kAll], 1u);
}

TEST(Lockstep, AnFpuThatDiffersOnAnX87InstructionIsReportedThere) {
  LockstepRun r = lazyLockstep(
      3, [](CpuState& s) { s.fpu.fcw ^= 0x0400; }, 64);
  ASSERT_EQ(r.result.end, End::kDifference) << r.result.message;
  EXPECT_EQ(r.result.steps, 3u);
  EXPECT_EQ(r.result.instruction, "fld1");
  ASSERT_EQ(r.result.differences.size(), 1u);
  EXPECT_EQ(r.result.differences[0].field, "fcw");
}

TEST(Lockstep, DebugRegistersAndMsrsThatDifferAreReportedAtTheirWrite) {
  LockstepRun dr = lazyLockstep(
      8, [](CpuState& s) { s.dr7 ^= 0x2; }, 64);
  ASSERT_EQ(dr.result.end, End::kDifference) << dr.result.message;
  EXPECT_EQ(dr.result.steps, 8u);
  EXPECT_EQ(dr.result.instruction, "mov dr7, eax");
  LockstepRun msr = lazyLockstep(
      12, [](CpuState& s) { s.msr.sysenterCs ^= 0x10; }, 64);
  ASSERT_EQ(msr.result.end, End::kDifference) << msr.result.message;
  EXPECT_EQ(msr.result.steps, 12u);
  EXPECT_EQ(msr.result.instruction, "wrmsr");
}

TEST(Lockstep, ACostlyPartTheRuleMissesIsFoundByTheNextFullRead) {
  // The FPU changed on MOV CX (step 5), which cannot write it: a hardware
  // fault the per-instruction rule does not look for. Found at the next
  // full read: step 6 every 2 steps, step 5 every step, at the end with the
  // default interval.
  auto tamper = [](CpuState& s) { s.fpu.mxcsr ^= 0x0040; };
  LockstepRun every2 = lazyLockstep(5, tamper, 2);
  ASSERT_EQ(every2.result.end, End::kDifference) << every2.result.message;
  EXPECT_EQ(every2.result.steps, 6u);
  LockstepRun every1 = lazyLockstep(5, tamper, 1);
  ASSERT_EQ(every1.result.end, End::kDifference) << every1.result.message;
  EXPECT_EQ(every1.result.steps, 5u);
  EXPECT_EQ(every1.result.instruction, "mov cx, 0x03");
  EXPECT_EQ(every1.result.partialReads, 0u);
  LockstepRun atEnd = lazyLockstep(5, tamper, 64);
  ASSERT_EQ(atEnd.result.end, End::kDifference) << atEnd.result.message;
  EXPECT_NE(atEnd.result.message.find("the states differ at the end"), std::string::npos)
      << atEnd.result.message;
  ASSERT_EQ(atEnd.result.differences.size(), 1u);
  EXPECT_EQ(atEnd.result.differences[0].field, "mxcsr");
}

TEST(CompareStates, MasksWhatTheCpuModelExplains) {
  std::map<MaskReason, uint64_t> masked;
  CpuState ref, fol;
  ref.pending.shadow = InterruptShadow::kMovSs;  // SVM: one bit, read as MOV SS
  fol.pending.shadow = InterruptShadow::kSti;
  ref.fpu.fip = 0x1234;  // AMD's FXSAVE: no error pointers without an exception
  ref.rflags |= flags::kCF | flags::kZF;
  auto d = compareStates(ref, fol, flags::kZF, masked);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0], (FieldDifference{"rflags", ref.rflags, ref.rflags & ~flags::kCF}));
  EXPECT_EQ(masked[MaskReason::kShadowKind], 1u);
  EXPECT_EQ(masked[MaskReason::kFpuPointers], 1u);
  EXPECT_EQ(masked[MaskReason::kUndefinedFlags], 1u);
  EXPECT_EQ(fol.fpu.fip, 0x1234u);                       // adopted
  EXPECT_TRUE(fol.rflags & flags::kZF);                  // adopted
  EXPECT_EQ(fol.pending.shadow, InterruptShadow::kSti);  // not adopted
  // A shadow on one side only is a difference.
  fol.pending.shadow = InterruptShadow::kNone;
  fol.rflags = ref.rflags;
  d = compareStates(ref, fol, 0, masked);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].field, "shadow");
  // Every other field is compared: one of each kind.
  CpuState a, b;
  b.seg[static_cast<int>(SegReg::kSs)].attributes ^= segattr::kAccessed;
  b.msr.efer = efer::kLME;
  b.fpu.xmm[15].q[1] = 1;
  b.dr[3] = 4;
  b.steps = 99;  // not compared
  d = compareStates(a, b, 0, masked);
  std::vector<std::string> names;
  for (const auto& f : d) names.push_back(f.field);
  EXPECT_EQ(names, (std::vector<std::string>{"ss.attributes", "dr3", "efer", "xmm15.hi"}));
}

TEST(CompareStates, RfBetweenRepIterationsIsMaskedOnlyMidRep) {
  std::map<MaskReason, uint64_t> masked;
  CpuState ref, fol;
  fol.rflags |= flags::kRF;  // Intel model, mid-REP
  EXPECT_TRUE(compareStates(ref, fol, 0, masked, true).empty());
  EXPECT_EQ(masked[MaskReason::kRepResumeFlag], 1u);
  EXPECT_TRUE(fol.rflags & flags::kRF);  // not adopted
  auto d = compareStates(ref, fol, 0, masked, false);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].field, "rflags");
}

TEST(CompareStates, TheGuestsTfHiddenByKvmAndV86SegmentTypes) {
  std::map<MaskReason, uint64_t> masked;
  CpuState ref, fol;
  fol.rflags |= flags::kTF;  // the guest's POPF set it; KVM reads it back clear
  EXPECT_TRUE(compareStates(ref, fol, 0, masked).empty());
  EXPECT_EQ(masked[MaskReason::kGuestTrapFlagHidden], 1u);
  ref.rflags |= flags::kTF;  // KVM's side only: a difference
  fol.rflags &= ~flags::kTF;
  EXPECT_EQ(compareStates(ref, fol, 0, masked).size(), 1u);
  // Virtual-8086 mode: SVM's type 3 for CS is masked (and adopted), a DPL is not.
  CpuState a, b;
  a.rflags = b.rflags = flags::kFixed1 | flags::kVM;
  a.seg[1].attributes = 0xF3;
  b.seg[1].attributes = 0xFB;
  EXPECT_TRUE(compareStates(a, b, 0, masked).empty());
  EXPECT_EQ(masked[MaskReason::kV86SegmentType], 1u);
  b.seg[1].attributes = 0xD3;
  EXPECT_EQ(compareStates(a, b, 0, masked).size(), 1u);
  b.rflags = a.rflags = flags::kFixed1;  // outside V86 every bit counts
  b.seg[1].attributes = 0xFB;
  EXPECT_EQ(compareStates(a, b, 0, masked).size(), 1u);
}

// segments' D_GRAN (G = 1, limit field 0: hidden limit 0xFFF), loaded by MOV
// ES in the nested VM: KVM 0x4093 (svm_get_segment: G = limit > 0xFFFFF),
// the emulator the descriptor's 0xC093. Masked and adopted only when the limits
// agree and KVM's G is the one its limit gives.
TEST(CompareStates, SegmentGranularityAsKvmDerivesItFromTheLimit) {
  std::map<MaskReason, uint64_t> masked;
  CpuState ref, fol;
  ref.seg[0] = {0x68, 0x200000, 0xFFF, 0x4093};
  fol.seg[0] = {0x68, 0x200000, 0xFFF, 0xC093};
  EXPECT_TRUE(compareStates(ref, fol, 0, masked).empty());
  EXPECT_EQ(masked[MaskReason::kSegmentGranularity], 1u);
  EXPECT_EQ(fol.seg[0].attributes, 0x4093u);  // adopted
  // A limit that G = 0 cannot give: KVM's G is not derived, a difference.
  ref.seg[0] = {0x68, 0x200000, 0xFFFFFFFF, 0x4093};
  fol.seg[0] = {0x68, 0x200000, 0xFFFFFFFF, 0xC093};
  EXPECT_EQ(compareStates(ref, fol, 0, masked).size(), 1u);
  // Different limits, or another bit besides G: differences.
  ref.seg[0] = {0x68, 0x200000, 0xFFF, 0x4093};
  fol.seg[0] = {0x68, 0x200000, 0xFFFF, 0xC093};
  EXPECT_EQ(compareStates(ref, fol, 0, masked).size(), 2u);
  fol.seg[0] = {0x68, 0x200000, 0xFFF, 0xC0F3};
  EXPECT_EQ(compareStates(ref, fol, 0, masked).size(), 1u);
  EXPECT_EQ(masked[MaskReason::kSegmentGranularity], 1u);
}

TEST(RamMasks, SegmentPushWidth) {
  // PUSH DS (0x10) with a 32-bit operand size over 0x00100000: Intel writes
  // 16 bits (0x00100010), AMD the zero-extended dword (0x00000010).
  std::vector<uint8_t> hw(4096), emu(4096);
  const uint32_t amd = 0x10, intel = 0x00100010;
  std::memcpy(&hw[0xf04], &amd, 4);
  std::memcpy(&emu[0xf04], &intel, 4);
  EXPECT_TRUE(adoptSegmentPushWidth(hw, emu));
  EXPECT_EQ(hw, emu);
  // 64-bit: the qword zero-extended.
  const uint64_t amd64 = 0x2b, intel64 = 0xffffffff0010002bull;
  std::memcpy(&hw[0x808], &amd64, 8);
  std::memcpy(&emu[0x808], &intel64, 8);
  EXPECT_TRUE(adoptSegmentPushWidth(hw, emu));
  EXPECT_EQ(hw, emu);
  // Not when the low 16 bits differ, nor when KVM's value is wider.
  const uint32_t other = 0x00100018, wide = 0x00010010;
  std::memcpy(&emu[0x100], &other, 4);
  std::memcpy(&hw[0x100], &amd, 4);
  std::memcpy(&hw[0x200], &wide, 4);
  EXPECT_FALSE(adoptSegmentPushWidth(hw, emu));
  EXPECT_NE(hw, emu);
}

TEST(RamMasks, DescriptorAccessedBitAndHostTrapFlag) {
  std::vector<uint8_t> hw(4096), emu(4096);
  EXPECT_FALSE(descriptorAccessedOnly(hw, emu));  // equal pages
  EXPECT_FALSE(hostTrapFlagOnly(hw, emu));
  // A present code descriptor's access byte (offset 5): 0x9a on the host, 0x9b emulated.
  hw[0x18 + 5] = 0x9a;
  emu[0x18 + 5] = 0x9b;
  EXPECT_TRUE(descriptorAccessedOnly(hw, emu));
  EXPECT_FALSE(hostTrapFlagOnly(hw, emu));
  emu[0x18 + 5] = 0x9a;
  hw[0x18 + 5] = 0x9b;  // the other way round: not the host's omission
  EXPECT_FALSE(descriptorAccessedOnly(hw, emu));
  hw[0x18 + 5] = emu[0x18 + 5] = 0;
  hw[0x20 + 4] = 0x12;  // any other byte
  EXPECT_FALSE(descriptorAccessedOnly(hw, emu));
  hw[0x20 + 4] = 0;
  // A pushed EFLAGS image (0x202 emulated, 0x302 with KVM's TF): byte 1, bit 0.
  emu[0xff4] = hw[0xff4] = 0x02;
  emu[0xff5] = 0x02;
  hw[0xff5] = 0x03;
  EXPECT_TRUE(hostTrapFlagOnly(hw, emu));
  EXPECT_FALSE(descriptorAccessedOnly(hw, emu));
  hw[0xff4] = 0x03;  // an even byte: not a TF
  EXPECT_FALSE(hostTrapFlagOnly(hw, emu));
  hw[0xff4] = 0x02;
  std::swap(hw, emu);  // TF set by the emulator only: not KVM's
  EXPECT_FALSE(hostTrapFlagOnly(hw, emu));
}

TEST(RamMasks, PagingDirtyBitAndFaultFrameResumeFlag) {
  // A 2 MiB PDE (P, RW, US, A, PS: 0xa7), D (0x40) set by the emulator's
  // write of a descriptor's accessed bit (cpu guests' far JMP to long mode).
  EXPECT_TRUE(pagingDirtyBitByte(0x000, 0xa7, 0xe7));
  EXPECT_TRUE(pagingDirtyBitByte(0x004, 0x23, 0x63));   // a 32-bit entry
  EXPECT_FALSE(pagingDirtyBitByte(0x000, 0xe7, 0xa7));  // D set by the host only
  EXPECT_FALSE(pagingDirtyBitByte(0x001, 0xa7, 0xe7));  // not an entry's first byte
  EXPECT_FALSE(pagingDirtyBitByte(0x000, 0x86, 0xc6));  // an entry the walk did not use (A clear)
  EXPECT_FALSE(pagingDirtyBitByte(0x000, 0xa6, 0xa7));  // another bit
  // A fault's EFLAGS image 0x00010002 (RF) emulated, 0x00000002 from QEMU's
  // TCG: byte 2 of the dword, bit 0.
  EXPECT_TRUE(faultFrameResumeFlagByte(0xf7a, 0x00, 0x01));
  EXPECT_TRUE(faultFrameResumeFlagByte(0xfe6, 0x02, 0x03));   // with AC (bit 18) set on both
  EXPECT_FALSE(faultFrameResumeFlagByte(0xf7a, 0x01, 0x00));  // RF from the host only
  EXPECT_FALSE(faultFrameResumeFlagByte(0xf79, 0x00, 0x01));  // not bit 16 of a dword
  EXPECT_FALSE(faultFrameResumeFlagByte(0xf7a, 0x00, 0x03));  // more than RF
}

// Real mode at 0x1000, #DB's IVT entry pointing at a handler that counts in
// [0x5000], clears TF in the FLAGS image and returns:
//   mov word [4],handler   mov word [6],0   then `arm`, then
//   mov al,[0x5000]   mov dx,0xf4   out dx,al (isa-debug-exit)
// handler: inc byte [0x5000]  mov bp,sp  and word [bp+4],0xfeff
//          xor eax,eax  mov dr7,eax  iret
std::vector<uint8_t> debugTrapCode(std::initializer_list<uint8_t> arm) {
  std::vector<uint8_t> c = {0xC7, 0x06, 0x04, 0x00, 0x00, 0x00,   // mov word [4], handler
                            0xC7, 0x06, 0x06, 0x00, 0x00, 0x00};  // mov word [6], 0
  c.insert(c.end(), arm);
  c.insert(c.end(), {0xA0, 0x00, 0x50,  // mov al, [0x5000]
                     0xBA, 0xF4, 0x00,  // mov dx, 0xf4
                     0xEE});            // out dx, al
  const size_t handler = 0x1000 + c.size();
  c[4] = uint8_t(handler);
  c[5] = uint8_t(handler >> 8);
  c.insert(c.end(), {0xFE, 0x06, 0x00, 0x50,        // inc byte [0x5000]
                     0x89, 0xE5,                    // mov bp, sp
                     0x81, 0x66, 0x04, 0xFF, 0xFE,  // and word [bp+4], 0xfeff
                     0x66, 0x31, 0xC0,              // xor eax, eax
                     0x0F, 0x23, 0xF8,              // mov dr7, eax
                     0xCF});                        // iret
  return c;
}

LockstepRun debugTrapLockstep(
    std::span<const uint8_t> code,
    std::function<void(EmuBackend&, const CpuState&, const StepResult&)> hardware) {
  LockstepOptions o;
  o.memoryCompareInterval = 1;
  return runCode(code, o,
                 [&](const CpuModel& model, PhysicalMemory memory,
                     Environment& env) -> Result<std::unique_ptr<CpuBackend>> {
                   auto b = std::make_unique<TamperedEmu>(model, memory, env, 0, nullptr);
                   b->afterStep = hardware;
                   return std::unique_ptr<CpuBackend>(std::move(b));
                 });
}

bool deliveredDebugTrap(const StepResult& r) {
  return r.outcome == StepOutcome::kException && r.vector == 1;
}

TEST(Lockstep, AGuestSingleStepTrapKvmReportsIsTakenFromTheEmulator) {
  // pushf; pop ax; or ax,0x100; push ax; popf; nop: the trap after the NOP.
  // KVM reports it to the host and stops after the NOP, undelivered: the
  // hardware here runs that instruction again from before it with TF clear.
  const std::vector<uint8_t> code = debugTrapCode({0x9C, 0x58, 0x0D, 0x00, 0x01, 0x50, 0x9D, 0x90});
  LockstepRun r =
      debugTrapLockstep(code, [](EmuBackend& inner, const CpuState& before, const StepResult& s) {
        if (!deliveredDebugTrap(s)) return;
        CpuState t = before;
        t.rflags &= ~flags::kTF;
        inner.setState(t);
        inner.step();
        CpuState after = inner.state();
        after.rflags |= flags::kTF;  // the guest's TF stays set
        inner.setState(after);
      });
  EXPECT_EQ(r.result.end, End::kGuestEnded) << describeDifference(r.result);
  EXPECT_EQ(r.result.masked[MaskReason::kGuestDebugTrap], 1u);
  EXPECT_EQ(r.result.masked.count(MaskReason::kDebugTrapKvmDelivered), 0u);
  EXPECT_EQ(r.machine->ram()[0x5000], 1);  // the handler ran once, from the emulator's state
}

TEST(Lockstep, AGuestInstructionBreakpointTheHostCpuSkippedIsTakenFromTheEmulator) {
  // mov eax,0x101e; mov dr0,eax; mov eax,0x401; mov dr7,eax; nop: an
  // instruction breakpoint on the NOP (0x101e). The nested VM's CPU runs the
  // NOP under the host's step without the fault (debug_dr's exec_rf): KVM
  // stops after it, not where the emulator's frame returns to; that is no
  // general detect, so the emulator's delivery is taken, not followed.
  const std::vector<uint8_t> code =
      debugTrapCode({0x66, 0xB8, 0x1E, 0x10, 0x00, 0x00, 0x0F, 0x23, 0xC0, 0x66, 0xB8, 0x01, 0x04,
                     0x00, 0x00, 0x0F, 0x23, 0xF8, 0x90});
  ASSERT_EQ(code[0x1E], 0x90);
  LockstepRun r =
      debugTrapLockstep(code, [](EmuBackend& inner, const CpuState& before, const StepResult& s) {
        if (!deliveredDebugTrap(s)) return;
        CpuState t = before;
        t.dr7 = 0x400;
        inner.setState(t);
        inner.step();
        CpuState after = inner.state();
        after.dr7 = before.dr7;
        inner.setState(after);
      });
  EXPECT_EQ(r.result.end, End::kGuestEnded) << describeDifference(r.result);
  EXPECT_EQ(r.result.masked[MaskReason::kGuestDebugTrap], 1u);
  EXPECT_EQ(r.result.masked.count(MaskReason::kDebugTrapKvmDelivered), 0u);
  EXPECT_EQ(r.machine->ram()[0x5000], 1);
}

TEST(Lockstep, AGeneralDetectFaultKvmDeliversItselfIsFollowedIntoTheHandler) {
  // mov eax,0x2000 (DR7.GD); mov dr7,eax; xor eax,eax; mov dr0,eax: the MOV
  // DR0 faults, the delivery clears GD and the handler returns to it. KVM's
  // emulator raises the fault and delivers it, and the handler runs on
  // unstepped: here to the instruction after its INC. Taking the emulator's
  // state at the delivery instead would leave the hardware's count (1) in
  // RAM, and the handler's INC would then differ (2 against 1).
  const std::vector<uint8_t> code = debugTrapCode(
      {0x66, 0xB8, 0x00, 0x20, 0x00, 0x00, 0x0F, 0x23, 0xF8, 0x66, 0x31, 0xC0, 0x0F, 0x23, 0xC0});
  LockstepRun r =
      debugTrapLockstep(code, [](EmuBackend& inner, const CpuState&, const StepResult& s) {
        if (deliveredDebugTrap(s)) inner.step();
      });
  EXPECT_EQ(r.result.end, End::kGuestEnded) << describeDifference(r.result);
  EXPECT_EQ(r.result.masked[MaskReason::kDebugTrapKvmDelivered], 1u);
  EXPECT_EQ(r.result.masked.count(MaskReason::kGuestDebugTrap), 0u);
  EXPECT_EQ(r.machine->ram()[0x5000], 1);
  EXPECT_EQ(r.result.exitStatus, 3u);  // (1 << 1) | 1: the guest read its count back
}

TEST(Lockstep, WhereKvmDeliversAGuestDebugTrapIsDecidedByTheFrameAndGeneralDetect) {
  CpuState bd;
  bd.dr6 = 0xFFFF2FF0;  // BD
  EXPECT_TRUE(generalDetectByKvm("mov dr0, rcx", bd));
  EXPECT_TRUE(generalDetectByKvm("mov rax, dr7", bd));
  EXPECT_FALSE(generalDetectByKvm("mov rax, rbx", bd));  // not a MOV DR
  bd.dr6 = 0xFFFF4FF0;                                   // BS, not BD: a single-step trap
  EXPECT_FALSE(generalDetectByKvm("mov dr0, rcx", bd));
  // The frame's return RIP: at SS:SP in real mode (IP, 2 bytes), SS:ESP in
  // protected mode (EIP, 4 bytes), RSP in long mode (RIP, 8 bytes).
  CpuState s;
  s.seg[static_cast<int>(SegReg::kSs)].base = 0x7000;
  s.reg(Gpr::kRsp) = 0x10FF8;
  EXPECT_EQ(returnRipSlot(s), (ReturnRipSlot{0x7FF8, 2}));
  s.cr0 |= cr0::kPE;
  EXPECT_EQ(returnRipSlot(s), (ReturnRipSlot{0x17FF8, 4}));
  s.msr.efer |= efer::kLMA;
  s.reg(Gpr::kRsp) = 0xFFFF800000010FF8ull;
  EXPECT_EQ(returnRipSlot(s), (ReturnRipSlot{0xFFFF800000010FF8ull, 8}));
}

TEST(CompareStates, TheHostTrapFlagSavedInR11BySyscall) {
  CpuState hw, emu;
  emu.reg(Gpr::kR11) = 0x403;              // IF, CF and the fixed bit
  hw.reg(Gpr::kR11) = 0x403 | flags::kTF;  // KVM's stepping TF too
  EXPECT_TRUE(hostTrapFlagInR11("syscall", hw, emu));
  EXPECT_FALSE(hostTrapFlagInR11("mov r11, rax", hw, emu));  // only SYSCALL saves RFLAGS there
  EXPECT_FALSE(hostTrapFlagInR11("syscall", emu, hw));       // TF from the emulator only
  hw.reg(Gpr::kR11) |= flags::kCF << 2;                      // more than TF
  EXPECT_FALSE(hostTrapFlagInR11("syscall", hw, emu));
}

}  // namespace
}  // namespace ttvm
