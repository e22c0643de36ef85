#include "ttvm/recorder/emu_backend.h"

namespace ttvm {

// Forwards every question to the machine's environment, with the injected
// events in front of its interrupts and NMIs.
class EmuBackend::Injecting final : public Environment {
 public:
  explicit Injecting(Environment& inner) : inner_(inner) {}

  uint32_t portIn(uint16_t port, unsigned size) override { return inner_.portIn(port, size); }
  void portOut(uint16_t port, unsigned size, uint32_t value) override {
    inner_.portOut(port, size, value);
  }
  uint64_t mmioRead(uint64_t addr, unsigned size) override { return inner_.mmioRead(addr, size); }
  void mmioWrite(uint64_t addr, unsigned size, uint64_t value) override {
    inner_.mmioWrite(addr, size, value);
  }
  uint64_t readTsc() override { return inner_.readTsc(); }
  std::optional<uint64_t> readRandom(unsigned size) override { return inner_.readRandom(size); }
  std::optional<uint64_t> readMsr(uint32_t index) override { return inner_.readMsr(index); }
  bool writeMsr(uint32_t index, uint64_t value) override { return inner_.writeMsr(index, value); }
  bool interruptPending() override { return vector_.has_value() || inner_.interruptPending(); }
  uint8_t acknowledgeInterrupt() override {
    if (!vector_) return inner_.acknowledgeInterrupt();
    const uint8_t v = *vector_;
    vector_.reset();
    return v;
  }
  bool nmiPending() override { return nmi_ || inner_.nmiPending(); }
  void acknowledgeNmi() override {
    if (nmi_) {
      nmi_ = false;
      return;
    }
    inner_.acknowledgeNmi();
  }
  bool stopRequested() override { return inner_.stopRequested(); }
  // Read by the CPU at the start of each run(): while an event waits, ask
  // at every boundary.
  const volatile uint32_t* eventHint() const override {
    static const volatile uint32_t kAsk = 1;
    return pending() ? &kAsk : inner_.eventHint();
  }

  bool pending() const { return vector_.has_value() || nmi_; }
  void inject(const machine::InjectedEvent& e) {
    if (e.kind == machine::InjectedEvent::Kind::kNmi)
      nmi_ = true;
    else
      vector_ = e.vector;
  }

 private:
  Environment& inner_;
  std::optional<uint8_t> vector_;
  bool nmi_ = false;
};

EmuBackend::EmuBackend(const CpuModel& model, PhysicalMemory memory, Environment& env)
    : env_(std::make_unique<Injecting>(env)),
      cpu_(std::make_unique<Cpu>(model, std::move(memory), *env_)) {}

EmuBackend::~EmuBackend() = default;

StepResult EmuBackend::run(uint64_t maxSteps) {
  return cpu_->run(maxSteps);
}
StepResult EmuBackend::step() {
  return cpu_->step();
}
const CpuState& EmuBackend::state() const {
  return cpu_->state();
}
void EmuBackend::setState(const CpuState& state) {
  cpu_->setState(state);
}
void EmuBackend::inject(const machine::InjectedEvent& e) {
  env_->inject(e);
}
bool EmuBackend::pendingInjection() const {
  return env_->pending();
}
bool EmuBackend::readLinear(uint64_t linear, std::span<uint8_t> out) const {
  return cpu_->readLinear(linear, out);
}
void EmuBackend::setDirtyTracking(bool on) {
  cpu_->setDirtyTracking(on);
}
std::vector<uint64_t> EmuBackend::takeDirtyPages() {
  return cpu_->takeDirtyPages();
}
const std::vector<std::string>& EmuBackend::unimplementedLog() const {
  return cpu_->unimplementedLog();
}

}  // namespace ttvm
