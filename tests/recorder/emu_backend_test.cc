// EmuBackend through the CpuBackend interface: run, step, state, and
// injected events delivered where the architecture says (IF, STI's shadow,
// NMI blocking), in front of what the environment presents.
#include "ttvm/recorder/emu_backend.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace ttvm {
namespace {

using machine::CpuBackend;
using machine::InjectedEvent;

// An environment with nothing attached: a vector of its own when asked.
class QuietEnv final : public Environment {
 public:
  uint32_t portIn(uint16_t, unsigned) override { return 0xFF; }
  void portOut(uint16_t, unsigned, uint32_t) override {}
  uint64_t mmioRead(uint64_t, unsigned) override { return ~0ull; }
  void mmioWrite(uint64_t, unsigned, uint64_t) override {}
  uint64_t readTsc() override { return 0; }
  std::optional<uint64_t> readRandom(unsigned) override { return std::nullopt; }
  std::optional<uint64_t> readMsr(uint32_t) override { return std::nullopt; }
  bool writeMsr(uint32_t, uint64_t) override { return false; }
  bool interruptPending() override { return vector.has_value(); }
  uint8_t acknowledgeInterrupt() override {
    const uint8_t v = *vector;
    vector.reset();
    return v;
  }
  bool nmiPending() override { return false; }
  void acknowledgeNmi() override {}
  bool stopRequested() override { return false; }
  const volatile uint32_t* eventHint() const override { return &hint; }

  std::optional<uint8_t> vector;
  volatile uint32_t hint = 0;  // what a machine says when nothing is pending
};

// A real-mode guest at 0x1000: CLI, NOPs, STI, NOP, then a loop of NOPs;
// every IVT entry points at a handler that is an endless loop at 0x2000.
struct Guest {
  std::vector<uint8_t> ram = std::vector<uint8_t>(1 << 20);
  QuietEnv env;
  std::unique_ptr<CpuBackend> cpu;

  Guest() {
    for (unsigned v = 0; v < 256; ++v) {
      const uint16_t ip = 0x2000, cs = 0;
      std::memcpy(&ram[v * 4], &ip, 2);
      std::memcpy(&ram[v * 4 + 2], &cs, 2);
    }
    const uint8_t code[] = {0xFA, 0x90, 0x90, 0x90, 0xFB, 0x90, 0x90, 0xEB, 0xFD};
    std::memcpy(&ram[0x1000], code, sizeof code);
    ram[0x2000] = 0xEB;  // jmp $
    ram[0x2001] = 0xFE;
    PhysicalMemory pm;
    pm.ram = ram;
    cpu = std::make_unique<EmuBackend>(CpuModel::ttvmDefault(), pm, env);
    CpuState s = resetState();
    s.seg[1].selector = 0;
    s.seg[1].base = 0;
    s.rip = 0x1000;
    s.gpr[4] = 0x8000;
    cpu->setState(s);
  }
};

TEST(EmuBackend, RunsAndStepsThroughTheInterface) {
  Guest g;
  EXPECT_EQ(g.cpu->kind(), Backend::kEmulator);
  EXPECT_TRUE(g.cpu->countsSteps());
  StepResult r = g.cpu->step();
  EXPECT_EQ(r.outcome, StepOutcome::kRetired);
  EXPECT_EQ(g.cpu->state().steps, 1u);
  EXPECT_EQ(g.cpu->state().rip, 0x1001u);
  r = g.cpu->run(5);
  EXPECT_EQ(r.outcome, StepOutcome::kRetired);
  EXPECT_EQ(g.cpu->state().steps, 6u);
  uint8_t b = 0;
  EXPECT_TRUE(g.cpu->readLinear(0x1004, std::span<uint8_t>(&b, 1)));
  EXPECT_EQ(b, 0xFB);
}

TEST(EmuBackend, AnInjectedVectorWaitsForIfAndTheStiShadow) {
  Guest g;
  g.cpu->step();  // CLI
  g.cpu->inject(InjectedEvent::interrupt(0x41));
  EXPECT_TRUE(g.cpu->pendingInjection());
  // IF=0: the NOPs and STI run; STI's shadow covers the NOP after it.
  StepResult r = g.cpu->run(4);  // 3 NOPs, STI
  EXPECT_EQ(r.outcome, StepOutcome::kRetired);
  EXPECT_EQ(g.cpu->state().rip, 0x1005u);
  r = g.cpu->run(10);
  ASSERT_EQ(r.outcome, StepOutcome::kInterrupt);
  EXPECT_EQ(r.vector, 0x41);
  // Delivered after the NOP in the shadow: the return address is 0x1006.
  EXPECT_EQ(g.cpu->state().rip, 0x2000u);
  uint16_t ret = 0;
  std::memcpy(&ret, &g.ram[g.cpu->state().gpr[4]], 2);
  EXPECT_EQ(ret, 0x1006u);
  EXPECT_FALSE(g.cpu->pendingInjection());
}

TEST(EmuBackend, AnInjectedVectorComesBeforeTheEnvironmentsAndHintsTheCpu) {
  Guest g;
  g.cpu->run(6);  // past CLI ... STI and its shadow: IF=1
  // The machine presents 0x30 but its hint says nothing is pending: the CPU
  // does not ask. An injected event makes it ask, and goes first.
  g.env.vector = 0x30;
  StepResult r = g.cpu->run(3);
  EXPECT_EQ(r.outcome, StepOutcome::kRetired);
  g.cpu->inject(InjectedEvent::interrupt(0x42));
  r = g.cpu->run(10);
  ASSERT_EQ(r.outcome, StepOutcome::kInterrupt);
  EXPECT_EQ(r.vector, 0x42);
  EXPECT_TRUE(g.env.vector.has_value());  // the environment's is still there
}

TEST(EmuBackend, AnInjectedNmiIgnoresIf) {
  Guest g;
  g.cpu->step();  // CLI
  g.cpu->inject(InjectedEvent::nmi());
  const StepResult r = g.cpu->run(10);
  ASSERT_EQ(r.outcome, StepOutcome::kNmi);
  EXPECT_EQ(g.cpu->state().rip, 0x2000u);
  EXPECT_FALSE(g.cpu->pendingInjection());
}

}  // namespace
}  // namespace ttvm
