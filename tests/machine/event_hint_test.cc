// The machine's event hint (Machine::eventHint, which RecordingEnvironment
// hands the CPU): nonzero whenever an interrupt, an NMI or a stop might be
// pending, so that the CPU may skip asking while it reads zero. Checked by
// driving the machine through its entry points as a CPU does, and by
// recording a guest that takes every kind of interrupt with the hint and
// without it (step by step, checking the hint at every boundary): both must
// answer the same inputs at the same steps.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "ttvm/emulator/cpu.h"
#include "ttvm/machine/loader.h"
#include "ttvm/machine/machine.h"
#include "ttvm/recorder/recording_environment.h"

namespace ttvm {
using ttvm::machine::Machine;
using ttvm::machine::MachineOptions;
using ttvm::machine::readFileBytes;
using ttvm::machine::VirtualClock;
namespace {

constexpr uint64_t kApic = 0xFEE00000;
constexpr uint64_t kIoApic = 0xFEC00000;
constexpr uint16_t kTestDevIrq = 0x2000;  // + line: pc-testdev sets the line's level

std::unique_ptr<Machine> makeMachine() {
  MachineOptions o;
  o.ramBytes = 16ull << 20;
  o.startClockUnixNs = 1'700'000'000'000'000'000;
  auto m = Machine::create(o);
  EXPECT_TRUE(m.ok());
  (*m)->ports().setReportStream(nullptr);
  (*m)->mmio().setReportStream(nullptr);
  return std::move(*m);
}

// The hint's promise, asked now.
::testing::AssertionResult hintCovers(Machine& m) {
  const bool irq = m.interruptPending(), nmi = m.nmiPending(), service = m.serviceNeeded();
  if (!(irq || nmi || service) || *m.eventHint() != 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "the hint is 0 with interruptPending " << irq
                                       << ", nmiPending " << nmi << ", serviceNeeded " << service;
}

void ioApicRoute(Machine& m, unsigned pin, uint32_t low) {
  m.mmioWrite(kIoApic, 4, 0x10 + 2 * pin);
  m.mmioWrite(kIoApic + 0x10, 4, low);
  m.mmioWrite(kIoApic, 4, 0x11 + 2 * pin);
  m.mmioWrite(kIoApic + 0x10, 4, 0);  // destination: APIC 0
}

class EventHint : public ::testing::Test {
 protected:
  void SetUp() override {
    m_ = makeMachine();
    m_->bindCpuState(&cpu_);
  }
  uint32_t hint() const { return *m_->eventHint(); }
  void enableApic() { m_->mmioWrite(kApic + 0xF0, 4, 0x1FF); }
  void selfIpi(uint32_t icrLow) { m_->mmioWrite(kApic + 0x300, 4, (1u << 18) | icrLow); }
  void apicEoi() { m_->mmioWrite(kApic + 0xB0, 4, 0); }

  CpuState cpu_ = Machine::initialCpuState();
  std::unique_ptr<Machine> m_;
};

TEST_F(EventHint, ZeroWhileNothingIsPending) {
  EXPECT_EQ(hint(), 0u);
  m_->portOut(0xE0, 4, 0x12345678);  // pc-testdev latch
  EXPECT_EQ(m_->portIn(0xE0, 4), 0x12345678u);
  m_->mmioWrite(0xFF000000, 4, 0x12345678);  // pc-testdev memory
  EXPECT_EQ(m_->mmioRead(0xFF000000, 4), 0x12345678u);
  enableApic();
  EXPECT_EQ(m_->mmioRead(kApic + 0x30, 4) & 0xFF, 0x14u);
  m_->advanceTimers();
  EXPECT_EQ(hint(), 0u);
}

TEST_F(EventHint, Follows8259Requests) {
  m_->portOut(kTestDevIrq + 1, 1, 1);
  EXPECT_TRUE(m_->interruptPending());
  EXPECT_NE(hint(), 0u);
  EXPECT_EQ(m_->acknowledgeInterrupt(), 0x09);  // the BIOS's master base 0x08
  m_->portOut(kTestDevIrq + 1, 1, 0);
  m_->portOut(0x20, 1, 0x20);  // EOI
  EXPECT_FALSE(m_->interruptPending());
  EXPECT_EQ(hint(), 0u);

  // A line that is already high when the guest unmasks it: the UART's THR
  // empty interrupt on IRQ 4, which the BIOS leaves masked.
  m_->portOut(0x3F9, 1, 0x02);
  EXPECT_TRUE(hintCovers(*m_));
  EXPECT_FALSE(m_->interruptPending());
  m_->portOut(0x21, 1, 0xA8);
  EXPECT_TRUE(m_->interruptPending());
  EXPECT_NE(hint(), 0u);

  // LINT0 masked keeps the 8259 from the CPU, but the CPU alone can turn the
  // APIC off (IA32_APIC_BASE), which lets it through: the hint stays set.
  enableApic();
  m_->mmioWrite(kApic + 0x350, 4, 0x10700);
  EXPECT_FALSE(m_->interruptPending());
  EXPECT_NE(hint(), 0u);
  cpu_.msr.apicBase &= ~(1ull << 11);
  EXPECT_TRUE(m_->interruptPending());
}

TEST_F(EventHint, FollowsLocalApicRequests) {
  enableApic();
  selfIpi(0x40);
  EXPECT_TRUE(m_->interruptPending());
  EXPECT_NE(hint(), 0u);
  EXPECT_EQ(m_->acknowledgeInterrupt(), 0x40);
  EXPECT_EQ(hint(), 0u);  // in service, nothing requested
  apicEoi();
  EXPECT_EQ(hint(), 0u);

  // A request that CR8 holds back: the CPU alone can lower CR8.
  cpu_.cr8 = 15;
  m_->portOut(0xE0, 1, 0);  // any entry point: the APIC takes up CR8
  EXPECT_EQ(hint(), 0u);
  selfIpi(0x40);
  EXPECT_FALSE(m_->interruptPending());
  EXPECT_NE(hint(), 0u);
  cpu_.cr8 = 0;
  EXPECT_TRUE(m_->interruptPending());
  EXPECT_EQ(m_->acknowledgeInterrupt(), 0x40);
  apicEoi();
  EXPECT_EQ(hint(), 0u);

  // A TPR written through the registers that CR8 does not hold: a CR8 write
  // the APIC never looks at could leave it in place, so the CPU must look.
  m_->mmioWrite(kApic + 0x80, 4, 0x50);
  EXPECT_NE(hint(), 0u);
  m_->mmioWrite(kApic + 0x80, 4, 0);
  EXPECT_EQ(hint(), 0u);

  // The APIC timer: programming it asks for a new slice; expiring raises.
  m_->mmioWrite(kApic + 0x3E0, 4, 0xB);   // divide by 1
  m_->mmioWrite(kApic + 0x320, 4, 0x41);  // one-shot, vector 0x41
  m_->mmioWrite(kApic + 0x380, 4, 1000);  // 1000 ns
  EXPECT_TRUE(m_->serviceNeeded());
  EXPECT_NE(hint(), 0u);
  m_->clock().clearReschedule();
  m_->advanceTimers();
  EXPECT_EQ(hint(), 0u);
  cpu_.steps += 1000;
  m_->advanceTimers();
  EXPECT_TRUE(m_->interruptPending());
  EXPECT_NE(hint(), 0u);
  EXPECT_EQ(m_->acknowledgeInterrupt(), 0x41);
  EXPECT_EQ(hint(), 0u);
}

TEST_F(EventHint, FollowsNmisAndTheIoApic) {
  enableApic();
  selfIpi(0x400);  // NMI delivery
  EXPECT_TRUE(m_->nmiPending());
  EXPECT_NE(hint(), 0u);
  m_->acknowledgeNmi();
  EXPECT_EQ(hint(), 0u);

  // An I/O APIC pin in NMI mode, through LINT1.
  m_->mmioWrite(kApic + 0x360, 4, 0x400);
  ioApicRoute(*m_, 5, 0x400);
  m_->portOut(kTestDevIrq + 5, 1, 1);
  EXPECT_TRUE(m_->nmiPending());
  EXPECT_NE(hint(), 0u);
  m_->acknowledgeNmi();
  EXPECT_EQ(hint(), 0u);

  // A level-triggered pin still high at EOI is delivered again: the EOI
  // (an APIC register write) reaches the I/O APIC, which requests again.
  ioApicRoute(*m_, 7, 0x8043);
  m_->portOut(kTestDevIrq + 7, 1, 1);
  EXPECT_NE(hint(), 0u);
  EXPECT_EQ(m_->acknowledgeInterrupt(), 0x43);
  EXPECT_EQ(hint(), 0u);
  apicEoi();
  EXPECT_TRUE(m_->interruptPending());
  EXPECT_NE(hint(), 0u);
  EXPECT_EQ(m_->acknowledgeInterrupt(), 0x43);
  m_->portOut(kTestDevIrq + 7, 1, 0);
  apicEoi();
  EXPECT_EQ(hint(), 0u);
}

TEST_F(EventHint, FollowsTimersStopsAndLoadedState) {
  // Reprogramming the 8254 asks for a new slice.
  m_->portOut(0x43, 1, 0x34);
  m_->portOut(0x40, 1, 200);
  m_->portOut(0x40, 1, 0);
  EXPECT_TRUE(m_->serviceNeeded());
  EXPECT_NE(hint(), 0u);
  m_->clock().clearReschedule();
  m_->advanceTimers();
  EXPECT_EQ(hint(), 0u);
  cpu_.steps += 200'000;
  m_->advanceTimers();
  EXPECT_TRUE(m_->interruptPending());
  EXPECT_NE(hint(), 0u);

  // The same request reaches a machine that loads this one's state.
  auto other = makeMachine();
  CpuState otherCpu = Machine::initialCpuState();
  other->bindCpuState(&otherCpu);
  EXPECT_EQ(*other->eventHint(), 0u);
  ASSERT_TRUE(other->loadDeviceState(m_->saveDeviceState()).ok());
  EXPECT_TRUE(other->interruptPending());
  EXPECT_NE(*other->eventHint(), 0u);

  // A device's request to end the run (isa-debug-exit).
  m_->portOut(0xF4, 1, 0);
  EXPECT_TRUE(m_->serviceNeeded());
  EXPECT_NE(hint(), 0u);
}

// Forwards to a RecordingEnvironment, logging every answer that a trace
// would hold, with the CPU given the machine's hint or none.
class LoggingEnvironment final : public Environment {
 public:
  LoggingEnvironment(RecordingEnvironment& inner, bool useHint)
      : inner_(inner), useHint_(useHint) {}
  void bindCpu(const CpuState* state) { cpu_ = state; }

  std::vector<std::string> log;
  uint64_t asked = 0;  // calls of stopRequested

  uint32_t portIn(uint16_t port, unsigned size) override {
    return note("in", port, inner_.portIn(port, size));
  }
  void portOut(uint16_t port, unsigned size, uint32_t value) override {
    note("out", port, value);
    inner_.portOut(port, size, value);
  }
  uint64_t mmioRead(uint64_t addr, unsigned size) override {
    return note("mmio-read", addr, inner_.mmioRead(addr, size));
  }
  void mmioWrite(uint64_t addr, unsigned size, uint64_t value) override {
    note("mmio-write", addr, value);
    inner_.mmioWrite(addr, size, value);
  }
  uint64_t readTsc() override { return note("rdtsc", 0, inner_.readTsc()); }
  std::optional<uint64_t> readRandom(unsigned size) override {
    auto v = inner_.readRandom(size);
    note("rdrand", size, v.value_or(~0ull));
    return v;
  }
  std::optional<uint64_t> readMsr(uint32_t index) override {
    auto v = inner_.readMsr(index);
    note("rdmsr", index, v.value_or(~0ull));
    return v;
  }
  bool writeMsr(uint32_t index, uint64_t value) override {
    note("wrmsr", index, value);
    return inner_.writeMsr(index, value);
  }
  bool interruptPending() override { return inner_.interruptPending(); }
  uint8_t acknowledgeInterrupt() override {
    return static_cast<uint8_t>(note("interrupt", 0, inner_.acknowledgeInterrupt()));
  }
  bool nmiPending() override { return inner_.nmiPending(); }
  void acknowledgeNmi() override {
    note("nmi", 0, 0);
    inner_.acknowledgeNmi();
  }
  bool stopRequested() override {
    ++asked;
    return inner_.stopRequested();
  }
  const volatile uint32_t* eventHint() const override {
    return useHint_ ? inner_.eventHint() : nullptr;
  }

 private:
  uint64_t note(const char* what, uint64_t address, uint64_t value) {
    char line[96];
    std::snprintf(line, sizeof line, "step %llu %s 0x%llx 0x%llx",
                  static_cast<unsigned long long>(cpu_->steps), what,
                  static_cast<unsigned long long>(address), static_cast<unsigned long long>(value));
    log.push_back(line);
    return value;
  }

  RecordingEnvironment& inner_;
  bool useHint_;
  const CpuState* cpu_ = nullptr;
};

struct Recording {
  std::vector<std::string> log;
  uint64_t asked = 0;
  CpuState cpu;
  std::vector<uint8_t> devices;
  uint16_t counters[7] = {};       // event_hint_guest.asm's handler counts
  uint64_t pendingBoundaries = 0;  // checked boundaries with something pending
};

// RecordSession::run's loop, reduced: timers between slices, each slice
// capped at the next deadline, idle skip on HLT, until the guest exits.
// `checked` runs each slice one step at a time and checks after every step
// that the hint covers what is pending.
Recording record(bool useHint, bool checked) {
  Recording out;
  auto guest = readFileBytes(EVENT_HINT_GUEST, 1u << 20, "of test guest");
  EXPECT_TRUE(guest.ok()) << EVENT_HINT_GUEST;
  if (!guest.ok()) return out;
  auto m = makeMachine();
  std::copy(guest->begin(), guest->end(), m->ram().begin() + 0x1000);
  CpuState s = Machine::initialCpuState();
  for (SegmentRegister& r : s.seg) r = SegmentRegister{};
  s.segment(SegReg::kCs).attributes = 0x9B;
  s.segment(SegReg::kDs).limit = 0xFFFFFFFF;  // 4 GiB: the APICs sit near 4 GiB
  s.segment(SegReg::kSs).limit = 0xFFFFFFFF;
  s.rip = 0x1000;
  s.reg(Gpr::kRsp) = 0x8000;
  s.rflags = 0x2;

  RecordingEnvironment recording(*m, nullptr);
  LoggingEnvironment env(recording, useHint);
  Cpu cpu(m->cpuModel(), m->physicalMemory(), env);
  cpu.setState(s);
  recording.bindCpu(&cpu.state());
  env.bindCpu(&cpu.state());
  m->bindCpuState(&cpu.state());

  VirtualClock& clock = m->clock();
  constexpr uint64_t kSliceCap = 1u << 14;
  while (!m->stopRequest()) {
    if (cpu.state().steps > 20'000'000) {
      ADD_FAILURE() << "the guest did not exit; rip " << cpu.state().rip;
      break;
    }
    clock.clearReschedule();
    m->advanceTimers();
    uint64_t budget = kSliceCap;
    if (auto d = m->nextDeadlineNs())
      budget = std::min(budget, std::max<uint64_t>(1, clock.stepsUntil(*d)));
    StepResult r;
    if (!checked) {
      r = cpu.run(budget);
    } else {
      for (uint64_t n = 0; n < budget; ++n) {
        r = cpu.run(1);
        out.pendingBoundaries += m->interruptPending() || m->nmiPending() || m->serviceNeeded();
        if (const ::testing::AssertionResult covered = hintCovers(*m); !covered) {
          ADD_FAILURE() << "step " << cpu.state().steps << ": " << covered.message();
          return out;
        }
        if (r.outcome != StepOutcome::kRetired) break;
      }
    }
    if (r.outcome == StepOutcome::kTripleFault) {
      ADD_FAILURE() << "triple fault at rip " << cpu.state().rip;
      break;
    }
    if (r.outcome == StepOutcome::kHalted) {
      auto next = m->nextDeadlineNs();
      if (!next) {
        ADD_FAILURE() << "halted with no timer armed";
        break;
      }
      clock.skipTo(*next);
    }
  }
  out.log = std::move(env.log);
  out.asked = env.asked;
  out.cpu = cpu.state();
  out.devices = m->saveDeviceState();
  std::memcpy(out.counters, m->ram().data() + 0x600, sizeof out.counters);
  return out;
}

TEST(EventHintRecording, SameInputsWithAndWithoutTheHint) {
  const Recording fast = record(/*useHint=*/true, /*checked=*/false);
  const Recording slow = record(/*useHint=*/false, /*checked=*/true);
  if (HasFailure()) return;  // a run did not complete: what follows would only repeat it

  // The guest took every kind of interrupt, and the hint was checked with
  // requests pending.
  const uint16_t* c = fast.counters;
  EXPECT_EQ(c[6], 20) << "rounds";
  EXPECT_GT(c[0], 0) << "8254 ticks";
  EXPECT_EQ(c[1], 40) << "8259 requests from pc-testdev";
  EXPECT_EQ(c[2], 40) << "self-IPIs";
  EXPECT_GT(c[3], 0) << "APIC timer ticks";
  EXPECT_EQ(c[4], 20) << "I/O APIC requests";
  EXPECT_EQ(c[5], 20) << "NMIs";
  EXPECT_GT(slow.pendingBoundaries, 1000u);

  // The same inputs at the same steps, the same end.
  ASSERT_FALSE(fast.log.empty());
  const size_t n = std::min(fast.log.size(), slow.log.size());
  const size_t first =
      std::mismatch(fast.log.begin(), fast.log.begin() + n, slow.log.begin()).first -
      fast.log.begin();
  EXPECT_EQ(first, n) << "first difference: with the hint '" << fast.log[first] << "', without '"
                      << slow.log[first] << "'";
  EXPECT_EQ(fast.log.size(), slow.log.size());
  EXPECT_TRUE(fast.cpu == slow.cpu) << "steps " << fast.cpu.steps << " vs " << slow.cpu.steps;
  EXPECT_TRUE(fast.devices == slow.devices) << "device states differ";
  EXPECT_TRUE(std::equal(c, c + 7, slow.counters));

  // Without the hint the CPU asks after every retired instruction; with it,
  // only where the guest held a request back (TPR, IF=0) or just made one.
  EXPECT_GT(slow.asked, slow.cpu.steps * 9 / 10);
  EXPECT_LT(fast.asked, fast.cpu.steps / 2) << "of " << fast.cpu.steps << " steps";
}

}  // namespace
}  // namespace ttvm
