// EmuBackend: the CpuBackend that runs the guest on ttvm's own emulator
// (emulator/cpu.h). The CPU asks the environment about interrupts at
// instruction boundaries; inject() puts an event in front of what the
// environment presents (an environment of its own wraps the given one: an
// injected vector is pending until the CPU acknowledges it, and while one
// waits the CPU asks at every boundary instead of following the event hint).
#pragma once

#include <memory>
#include <optional>

#include "ttvm/emulator/cpu.h"
#include "ttvm/machine/cpu_backend.h"

namespace ttvm {

class EmuBackend final : public machine::CpuBackend {
 public:
  // `env` must outlive the backend.
  EmuBackend(const CpuModel& model, PhysicalMemory memory, Environment& env);
  ~EmuBackend() override;

  Backend kind() const override { return Backend::kEmulator; }
  bool countsSteps() const override { return true; }
  StepResult run(uint64_t maxSteps) override;
  StepResult step() override;
  const CpuState& state() const override;
  void setState(const CpuState& state) override;
  void inject(const machine::InjectedEvent& e) override;
  bool pendingInjection() const override;
  bool readLinear(uint64_t linear, std::span<uint8_t> out) const override;
  void setDirtyTracking(bool on) override;
  std::vector<uint64_t> takeDirtyPages() override;
  const std::vector<std::string>& unimplementedLog() const override;
  // The emulator always goes on.
  const std::string& failure() const override {
    static const std::string kNone;
    return kNone;
  }

  // The emulator itself (debugger breakpoints, decode caches).
  Cpu& cpu() { return *cpu_; }
  const Cpu& cpu() const { return *cpu_; }

 private:
  class Injecting;
  std::unique_ptr<Injecting> env_;
  std::unique_ptr<Cpu> cpu_;
};

}  // namespace ttvm
