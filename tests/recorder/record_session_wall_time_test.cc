// Virtual time between exits under a backend that cannot count steps (KVM
// with stop points, RecordOptions::betweenExits): a device the guest reads
// twice inside one run() of the backend, with no exit in between but wall
// time passing, sees that time (the PIT latched around a loop, the ACPI PM
// timer polled: pit_irq0's `latch`, pit_mode0, acpi under KVM). Time by
// exits alone moves one ns per exit there. A scripted backend stands in for
// KVM: it makes the accesses a guest's exits would, sleeping between them.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

#include "ttvm/machine/machine.h"
#include "ttvm/recorder/record_session.h"

namespace ttvm {
namespace {

constexpr uint16_t kPmTimer = 0x608;  // 24 bits at 3.579545 MHz
constexpr auto kSleep = std::chrono::milliseconds(20);

// Reads the PM timer (one exit), sleeps, reads it again (one exit), then
// writes the isa-debug-exit port (one exit). Exit numbers as KVM counts.
class ScriptedExits final : public machine::CpuBackend {
 public:
  ScriptedExits(PhysicalMemory, Environment& env) : env_(env) {}
  Backend kind() const override { return Backend::kKvm; }
  bool countsSteps() const override { return false; }
  StepResult run(uint64_t) override {
    ++state_.steps;
    reads.push_back(env_.portIn(kPmTimer, 4));
    std::this_thread::sleep_for(kSleep);
    ++state_.steps;
    reads.push_back(env_.portIn(kPmTimer, 4));
    ++state_.steps;
    env_.portOut(0xF4, 1, 0);
    return {StepOutcome::kStopRequested};
  }
  StepResult step() override { return run(1); }
  const CpuState& state() const override { return state_; }
  void setState(const CpuState& s) override { state_ = s; }
  void inject(const machine::InjectedEvent&) override {}
  bool pendingInjection() const override { return false; }
  bool readLinear(uint64_t, std::span<uint8_t>) const override { return false; }
  void setDirtyTracking(bool) override {}
  std::vector<uint64_t> takeDirtyPages() override { return {}; }
  const std::vector<std::string>& unimplementedLog() const override { return none_; }
  const std::string& failure() const override { return noFailure_; }

  std::vector<uint32_t> reads;

 private:
  Environment& env_;
  CpuState state_;
  std::vector<std::string> none_;
  std::string noFailure_;
};

// The PM timer ticks between the two reads of one run().
uint32_t ticksBetweenReads(bool betweenExits) {
  machine::MachineOptions mo;
  mo.ramBytes = 2u << 20;
  auto m = machine::Machine::create(mo);
  EXPECT_TRUE(m.ok());
  if (!m.ok()) return 0;
  machine::LoadedGuest guest;
  guest.cpu = machine::Machine::initialCpuState();
  RecordOptions ro;
  ro.betweenExits = betweenExits;
  ScriptedExits* backend = nullptr;
  ro.makeBackend = [&](const CpuModel&, PhysicalMemory memory,
                       Environment& env) -> Result<std::unique_ptr<machine::CpuBackend>> {
    auto b = std::make_unique<ScriptedExits>(memory, env);
    backend = b.get();
    return std::unique_ptr<machine::CpuBackend>(std::move(b));
  };
  RecordSession session(**m, std::move(guest), ro);
  EXPECT_TRUE(session.start().ok());
  auto r = session.run();
  EXPECT_TRUE(r.ok());
  if (!r.ok() || backend == nullptr || backend->reads.size() != 2) return 0;
  EXPECT_EQ(r->end.reason, EndReason::kExitDevice);
  return (backend->reads[1] - backend->reads[0]) & 0xFFFFFF;
}

TEST(RecordSessionWallTime, ADeviceReadBetweenExitsSeesTheWallTimeTheGuestRan) {
  // At least the 20 ms slept (3.58 MHz: 71,591 ticks), less a margin for
  // the clock's granularity; at most the 24-bit counter's 4.7 s wrap.
  const uint32_t ticks = ticksBetweenReads(true);
  EXPECT_GE(ticks, 70000u);
}

TEST(RecordSessionWallTime, TimeByExitsMovesOnlyWithTheExits) {
  // --no-kvm-stop-points: one exit between the reads is 1 ns of virtual
  // time, not a PM timer tick.
  EXPECT_EQ(ticksBetweenReads(false), 0u);
}

}  // namespace
}  // namespace ttvm
