// Debugger-driven stepping through the public Cpu API (issue 4, points 7-8):
// step() stops after every instruction / REP iteration, including ones that
// complete outside the CPU (port I/O, MMIO), without any guest-visible change
// (no TF, RF, DR6, DR7 or stack change beyond the instruction's own effects);
// a guest that single-steps itself gets its #DB inside the same step (the
// next RIP is its handler's first instruction, as KVM_GUESTDBG_SINGLESTEP
// over such a guest); debugger breakpoints and watchpoints (any number, any
// size, linear or physical) never touch DR0-DR7.
//
// "No guest-visible change" is checked two ways: against explicit
// expectations, and against an identical machine that executed the same
// number of steps with run() and no debugger features (state and RAM equal).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "cpu_harness.h"

namespace ttvm::cputest {
namespace {

constexpr uint64_t kCode = layout::kCode;
constexpr uint64_t kHandler = layout::kCode + 0x8000;
constexpr uint64_t kData = layout::kData;
constexpr uint64_t kMmio = 0x700000;  // a hole: every access goes to TestEnv
constexpr uint64_t kDr6Init = 0xFFFF0FF0;
constexpr uint64_t kBs = 1u << 14;

// The stepped program (64-bit ring 0), one instruction per row; REP OUTSB
// with RCX = 3 takes three steps. RBX = kMmio, RSI = kData.
struct Insn {
  const char* hex;
  int iterations = 1;  // REP: steps spent on it
};
const std::vector<Insn>& program() {
  static const std::vector<Insn> p = {
      {"90"},              // nop
      {"b0 5a"},           // mov $0x5a,%al
      {"e6 80"},           // out %al,$0x80          (port write)
      {"e4 71"},           // in $0x71,%al           (port read)
      {"89 03"},           // mov %eax,(%rbx)        (MMIO write)
      {"8b 0b"},           // mov (%rbx),%ecx        (MMIO read)
      {"83 03 01"},        // addl $1,(%rbx)         (MMIO read-modify-write)
      {"b9 03 00 00 00"},  // mov $3,%ecx
      {"66 ba f8 03"},     // mov $0x3f8,%dx
      {"f3 6e", 3},        // rep outsb              (3 port writes)
      {"50"},              // push %rax
      {"58"},              // pop %rax
      {"eb 00"},           // jmp .+2
      {"90"},              // nop
  };
  return p;
}

std::vector<uint8_t> programBytes() {
  std::vector<uint8_t> out;
  for (const Insn& i : program()) {
    const std::vector<uint8_t> b = hexBytes(i.hex);
    out.insert(out.end(), b.begin(), b.end());
  }
  return out;
}

// RIPs after each step when nothing else happens.
std::vector<uint64_t> expectedRips() {
  std::vector<uint64_t> rips;
  uint64_t at = kCode;
  for (const Insn& i : program()) {
    const uint64_t next = at + hexBytes(i.hex).size();
    for (int k = 1; k < i.iterations; ++k) rips.push_back(at);
    rips.push_back(next);
    at = next;
  }
  return rips;
}

// Port / MMIO accesses each step adds.
std::vector<std::pair<size_t, size_t>> expectedAccesses() {
  std::vector<std::pair<size_t, size_t>> a;  // {ports, mmio} per step
  for (const Insn& i : program()) {
    const std::string h = i.hex;
    const size_t ports = (h == "e6 80" || h == "e4 71" || h == "f3 6e") ? 1 : 0;
    const size_t mmio = h == "83 03 01" ? 2 : (h == "89 03" || h == "8b 0b") ? 1 : 0;
    for (int k = 0; k < i.iterations; ++k) a.push_back({ports, mmio});
  }
  return a;
}

// Guest state with debug registers that must survive: DR0-DR3 hold
// addresses, DR7 arms an execute breakpoint that is never reached.
void setup(Machine& m, bool guestTf) {
  m.setupLong64(kCode);
  m.load(kCode, programBytes());
  m.loadHex(kData, "11 22 33 44");
  m.setIdt64(1, kHandler);
  m.loadHex(kHandler, "48 cf");  // iretq
  m.env.mmioValues[kMmio] = 0x1234;
  m.edit([&](CpuState& s) {
    s.reg(Gpr::kRbx) = kMmio;
    s.reg(Gpr::kRsi) = kData;
    s.dr = {0x1111000, 0x2222000, 0x3333000, 0x4444000};
    s.dr7 = 0x400 | 0x3;  // L0 | G0, execute, at an address never reached
    s.dr6 = kDr6Init;
    if (guestTf) s.rflags |= flags::kTF;
  });
}

Machine* newMachine() {
  return new Machine(8u << 20, {{kMmio, kMmio + 0x1000}});
}

void expectSameMachine(const Machine& a, const Machine& b, size_t step) {
  EXPECT_TRUE(a.state() == b.state()) << "CPU state differs after step " << step;
  EXPECT_TRUE(a.ram == b.ram) << "RAM differs after step " << step;
  EXPECT_TRUE(a.env.portLog == b.env.portLog) << "port log differs after step " << step;
  EXPECT_TRUE(a.env.mmioLog == b.env.mmioLog) << "MMIO log differs after step " << step;
}

TEST(DebuggerStepping, StopsAfterEveryInstructionAndIterationWithoutGuestChanges) {
  std::unique_ptr<Machine> m(newMachine());
  setup(*m, false);
  const CpuState start = m->state();
  const std::vector<uint8_t> stackBefore(m->ram.begin() + layout::kStackTop - 0x100,
                                         m->ram.begin() + layout::kStackTop);
  const std::vector<uint64_t> rips = expectedRips();
  const auto accesses = expectedAccesses();
  ASSERT_EQ(rips.size(), 16u);
  for (size_t n = 0; n < rips.size(); ++n) {
    SCOPED_TRACE(n);
    const size_t ports = m->env.portLog.size(), mmio = m->env.mmioLog.size();
    const StepResult r = m->step();
    ASSERT_EQ(r.outcome, StepOutcome::kRetired);
    const CpuState s = m->state();
    EXPECT_EQ(s.steps, start.steps + n + 1);
    EXPECT_EQ(s.rip, rips[n]);
    // The access completed within this step, before the stop.
    EXPECT_EQ(m->env.portLog.size() - ports, accesses[n].first);
    EXPECT_EQ(m->env.mmioLog.size() - mmio, accesses[n].second);
    EXPECT_FALSE(s.rflags & flags::kTF);
    EXPECT_EQ(s.dr6, kDr6Init);
    EXPECT_EQ(s.dr7, start.dr7);
    EXPECT_EQ(s.dr, start.dr);
    // RF is architecturally 1 only between REP iterations.
    EXPECT_EQ(bool(s.rflags & flags::kRF), n == 9 || n == 10) << std::hex << s.rflags;

    // The same number of steps with run() on a twin machine: identical.
    std::unique_ptr<Machine> twin(newMachine());
    setup(*twin, false);
    ASSERT_EQ(twin->run(n + 1).outcome, StepOutcome::kRetired);
    expectSameMachine(*m, *twin, n);
  }
  // The stack only holds what PUSH wrote (no #DB frame below it).
  const std::vector<uint8_t> stackAfter(m->ram.begin() + layout::kStackTop - 0x100,
                                        m->ram.begin() + layout::kStackTop);
  std::vector<uint8_t> expected = stackBefore;
  const uint64_t rax = m->state().reg(Gpr::kRax);
  std::memcpy(expected.data() + 0xF8, &rax, 8);
  EXPECT_TRUE(stackAfter == expected);
  EXPECT_EQ(m->env.portLog.size(), 5u);
  EXPECT_EQ(m->env.mmioLog.size(), 4u);
}

// The guest single-steps itself: each debugger step executes one
// instruction (or REP iteration) AND delivers the guest's #DB, so the next
// RIP is the handler's first instruction; the handler's IRETQ is the next
// step. DR6.BS and the pushed RIP/RF are the guest's own (architectural).
TEST(DebuggerStepping, GuestTfDeliversTheGuestsDebugExceptionWithinTheStep) {
  std::unique_ptr<Machine> m(newMachine());
  setup(*m, true);
  const std::vector<uint64_t> rips = expectedRips();
  const auto accesses = expectedAccesses();
  uint64_t steps = m->state().steps;
  for (size_t n = 0; n < rips.size(); ++n) {
    SCOPED_TRACE(n);
    const size_t ports = m->env.portLog.size(), mmio = m->env.mmioLog.size();
    const StepResult r = m->step();
    ASSERT_EQ(r.outcome, StepOutcome::kException);
    EXPECT_EQ(int(r.vector), 1);
    CpuState s = m->state();
    EXPECT_EQ(s.steps, ++steps);
    EXPECT_EQ(s.rip, kHandler) << "the debugger must see the handler's first instruction next";
    EXPECT_EQ(m->env.portLog.size() - ports, accesses[n].first);
    EXPECT_EQ(m->env.mmioLog.size() - mmio, accesses[n].second);
    EXPECT_EQ(s.dr6 & (0xF | kBs), kBs);
    EXPECT_FALSE(s.rflags & flags::kTF);  // cleared on handler entry
    const uint64_t sp = s.reg(Gpr::kRsp);
    EXPECT_EQ(m->get(sp, 8), rips[n]);  // trap: RIP after the instruction / iteration
    const uint64_t image = m->get(sp + 16, 8);
    EXPECT_TRUE(image & flags::kTF);
    // RF = 1 in the image only after a non-final REP iteration (SDM 18.3.1.1).
    EXPECT_EQ(bool(image & flags::kRF), n == 9 || n == 10) << std::hex << image;
    ASSERT_EQ(m->step().outcome, StepOutcome::kRetired);  // the handler's IRETQ
    s = m->state();
    EXPECT_EQ(s.steps, ++steps);
    EXPECT_EQ(s.rip, rips[n]);
    EXPECT_TRUE(s.rflags & flags::kTF);
  }
}

TEST(DebuggerStepping, GuestInstructionBreakpointAndDebuggerBreakpointOnOneInstruction) {
  std::unique_ptr<Machine> m(newMachine());
  setup(*m, false);
  const uint64_t target = expectedRips()[1];  // the OUT
  // Handler: or $RF in the image; iretq (resume past the guest's breakpoint).
  m->loadHex(kHandler, "81 4c 24 10 00 00 01 00 48 cf");
  m->edit([&](CpuState& s) {
    s.dr[2] = target;
    s.dr7 = 0x400 | (1u << 4);  // L2, execute
  });
  m->cpu->setBreakpoints({{target, false}});
  StepResult r = m->run(100);
  ASSERT_EQ(r.outcome, StepOutcome::kBreakpoint);
  EXPECT_EQ(m->state().rip, target);
  const CpuState atStop = m->state();
  EXPECT_EQ(atStop.steps, 2u);
  EXPECT_EQ(m->step().outcome, StepOutcome::kBreakpoint);  // stays stopped
  EXPECT_TRUE(m->state() == atStop);
  // Resuming: the guest's own breakpoint faults (nothing executed; the OUT
  // did not happen), reported with B2 only.
  m->cpu->skipBreakpointOnce();
  r = m->step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 1);
  EXPECT_EQ(m->state().rip, kHandler);
  EXPECT_EQ(m->state().dr6 & (0xF | kBs), 4u);
  EXPECT_TRUE(m->env.portLog.empty());
  EXPECT_EQ(m->run(2).outcome, StepOutcome::kRetired);  // or; iretq
  // Back at the OUT with RF = 1: the debugger breakpoint reports the arrival.
  EXPECT_EQ(m->step().outcome, StepOutcome::kBreakpoint);
  m->cpu->skipBreakpointOnce();
  EXPECT_EQ(m->step().outcome, StepOutcome::kRetired);  // RF suppresses the guest's
  EXPECT_EQ(m->env.portLog.size(), 1u);
  EXPECT_FALSE(m->state().rflags & flags::kRF);
  EXPECT_EQ(m->state().dr[2], target);
  EXPECT_EQ(m->state().dr7, 0x400u | (1u << 4));
}

// Many breakpoints (linear and physical) and watchpoints of odd sizes: stops
// where they say, state and DR0-DR7 untouched, and the same final machine as
// a run without them.
TEST(DebuggerStepping, ManyBreakpointsAndWatchpointsNeverChangeGuestState) {
  std::unique_ptr<Machine> m(newMachine());
  setup(*m, false);
  // Execute the program through an alias: linear 0x40000000 -> kCode.
  constexpr uint64_t kAlias = 0x40000000;
  m->map4k(kAlias, kCode, 0x3);
  m->map4k(kAlias + 0x1000, kData, 0x3);
  m->edit([&](CpuState& s) {
    s.rip = kAlias;
    s.reg(Gpr::kRsi) = kAlias + 0x1000;  // REP OUTSB reads kData through the alias
  });
  const std::vector<uint64_t> rips = expectedRips();
  std::vector<DebuggerBreakpoint> bps;
  for (uint64_t k = 0; k < 200; ++k) bps.push_back({0x500000 + k * 7, k % 2 == 0});
  // Linear kCode + x is NOT where the code runs (it runs at the alias), so a
  // linear breakpoint there must not stop; the physical one must.
  bps.push_back({rips[3], false});                      // linear, never reached
  bps.push_back({rips[3], true});                       // physical: the MOV to MMIO
  bps.push_back({kAlias + (rips[11] - kCode), false});  // linear at the alias: PUSH
  m->cpu->setBreakpoints(bps);
  std::vector<DebuggerWatchpoint> wps;
  for (uint64_t k = 0; k < 50; ++k)
    wps.push_back({0x600001 + k * 13, 3, WatchKind::kAccess, false});
  wps.push_back({kData + 1, 1, WatchKind::kRead, true});  // physical, 1 byte: 2nd OUTSB read
  m->cpu->setWatchpoints(wps);
  const CpuState start = m->state();

  auto expectGuestUntouched = [&](const char* where) {
    SCOPED_TRACE(where);
    const CpuState s = m->state();
    EXPECT_EQ(s.dr, start.dr);
    EXPECT_EQ(s.dr7, start.dr7);
    EXPECT_EQ(s.dr6, start.dr6);
    EXPECT_FALSE(s.rflags & flags::kTF);
  };

  StepResult r = m->run(1000);
  ASSERT_EQ(r.outcome, StepOutcome::kBreakpoint);
  EXPECT_EQ(m->state().rip, kAlias + (rips[3] - kCode));
  EXPECT_EQ(m->state().steps, 4u);
  expectGuestUntouched("physical breakpoint");
  m->cpu->skipBreakpointOnce();
  r = m->run(1000);
  ASSERT_EQ(r.outcome, StepOutcome::kWatchpoint);
  EXPECT_EQ(r.watch.watchId, 50);
  EXPECT_EQ(r.watch.address, kData + 1);
  EXPECT_FALSE(r.watch.write);
  EXPECT_EQ(m->state().steps, 11u);                       // after the second OUTSB iteration
  EXPECT_EQ(m->state().rip, kAlias + (rips[9] - kCode));  // still on the REP OUTSB
  EXPECT_EQ(m->state().reg(Gpr::kRcx), 1u);
  expectGuestUntouched("watchpoint");
  r = m->run(1000);
  ASSERT_EQ(r.outcome, StepOutcome::kBreakpoint);
  EXPECT_EQ(m->state().rip, kAlias + (rips[11] - kCode));
  EXPECT_EQ(m->state().steps, 12u);
  expectGuestUntouched("linear breakpoint at the alias");
  m->cpu->skipBreakpointOnce();
  EXPECT_EQ(m->run(4).outcome, StepOutcome::kRetired);
  EXPECT_EQ(m->state().steps, 16u);

  // The same program without debugger features ends in the same machine.
  std::unique_ptr<Machine> twin(newMachine());
  setup(*twin, false);
  twin->map4k(kAlias, kCode, 0x3);
  twin->map4k(kAlias + 0x1000, kData, 0x3);
  twin->edit([&](CpuState& s) {
    s.rip = kAlias;
    s.reg(Gpr::kRsi) = kAlias + 0x1000;
  });
  ASSERT_EQ(twin->run(16).outcome, StepOutcome::kRetired);
  expectSameMachine(*m, *twin, 16);
}

// A watchpoint and the guest's own data breakpoint on the same byte: the
// guest gets its #DB (B0) in the step, the debugger sees the watchpoint, and
// clearing the debugger's watchpoints changes nothing for the guest.
TEST(DebuggerStepping, WatchpointBesideGuestDataBreakpoint) {
  for (const bool watch : {false, true}) {
    SCOPED_TRACE(watch);
    std::unique_ptr<Machine> m(newMachine());
    setup(*m, false);
    m->loadHex(kCode, "89 06 90");  // mov %eax,(%rsi)
    m->edit([](CpuState& s) {
      s.dr[0] = kData + 2;
      s.dr7 = 0x400 | 1 | (1u << 16);  // L0, write, 1 byte
    });
    if (watch) m->cpu->setWatchpoints({{kData + 3, 1, WatchKind::kWrite, false}});
    const StepResult r = m->step();
    EXPECT_EQ(r.outcome, watch ? StepOutcome::kWatchpoint : StepOutcome::kException);
    EXPECT_EQ(m->state().rip, kHandler);
    EXPECT_EQ(m->state().dr6 & (0xF | kBs), 1u);
    EXPECT_EQ(m->get(m->state().reg(Gpr::kRsp), 8), kCode + 2);
    EXPECT_EQ(m->state().steps, 1u);
  }
}

}  // namespace
}  // namespace ttvm::cputest
