// ttvm::Cpu: the public face of CpuImpl (exec/cpu_impl.h).
#include "ttvm/emulator/cpu.h"

#include <cstdio>

#include "exec/cpu_impl.h"

namespace ttvm {

const char* toString(StepOutcome o) {
  switch (o) {
    case StepOutcome::kRetired: return "retired";
    case StepOutcome::kException: return "exception";
    case StepOutcome::kInterrupt: return "interrupt";
    case StepOutcome::kNmi: return "nmi";
    case StepOutcome::kHalted: return "halted";
    case StepOutcome::kTripleFault: return "triple-fault";
    case StepOutcome::kBreakpoint: return "breakpoint";
    case StepOutcome::kWatchpoint: return "watchpoint";
    case StepOutcome::kStopRequested: return "stop-requested";
  }
  return "?";
}

Cpu::Cpu(const CpuModel& model, PhysicalMemory memory, Environment& env)
    : impl_(std::make_unique<CpuImpl>(model, std::move(memory), env)) {}
Cpu::~Cpu() = default;

const CpuState& Cpu::state() const {
  return impl_->state();
}
void Cpu::setState(const CpuState& s) {
  impl_->setState(s);
}
const CpuModel& Cpu::model() const {
  return impl_->model();
}
StepResult Cpu::step() {
  return impl_->step();
}
StepResult Cpu::run(uint64_t maxSteps) {
  return impl_->run(maxSteps);
}
void Cpu::setEngine(CpuEngine e) {
  impl_->setEngine(e);
}
CpuEngine Cpu::engine() const {
  return impl_->engine();
}
EngineStats Cpu::engineStats() const {
  return impl_->engineStats();
}
std::string describe(const EngineStats& s) {
  const uint64_t found = s.chained + s.hits;
  const uint64_t asked = s.chained + s.lookups;
  char line[320];
  std::snprintf(
      line, sizeof line,
      "%llu blocks run, %.2f%% chained or found in the cache (%llu chained, %llu of "
      "%llu lookups hit), %llu translated, %llu invalidated, %llu flushes, %llu steps "
      "on the reference path; %llu compiled (%llu KiB), %.1f%% of steps in host code",
      static_cast<unsigned long long>(s.blockRuns),
      asked ? 100.0 * static_cast<double>(found) / static_cast<double>(asked) : 0.0,
      static_cast<unsigned long long>(s.chained), static_cast<unsigned long long>(s.hits),
      static_cast<unsigned long long>(s.lookups), static_cast<unsigned long long>(s.builds),
      static_cast<unsigned long long>(s.invalidations), static_cast<unsigned long long>(s.flushes),
      static_cast<unsigned long long>(s.fallbackSteps), static_cast<unsigned long long>(s.compiled),
      static_cast<unsigned long long>(s.compiledBytes >> 10),
      s.steps ? 100.0 * static_cast<double>(s.compiledSteps) / static_cast<double>(s.steps) : 0.0);
  return line;
}

const char* toString(CpuEngine e) {
  return e == CpuEngine::kFast ? "fast" : "reference";
}
void Cpu::notifyRamWritten(uint64_t physAddr, uint64_t length) {
  impl_->notifyRamWritten(physAddr, length);
}
void Cpu::flushCaches() {
  impl_->flushCaches();
}
void Cpu::setDirtyTracking(bool on) {
  impl_->setDirtyTracking(on);
}
std::vector<uint64_t> Cpu::takeDirtyPages() {
  return impl_->takeDirtyPages();
}
void Cpu::setAccessTracking(bool on) {
  impl_->setAccessTracking(on);
}
std::vector<uint64_t> Cpu::takeAccessedPages() {
  return impl_->takeAccessedPages();
}
void Cpu::setBreakpoints(std::vector<DebuggerBreakpoint> bps) {
  impl_->setBreakpoints(std::move(bps));
}
void Cpu::setWatchpoints(std::vector<DebuggerWatchpoint> wps) {
  impl_->setWatchpoints(std::move(wps));
}
void Cpu::skipBreakpointOnce() {
  impl_->skipBreakpointOnce();
}
std::optional<uint64_t> Cpu::translate(uint64_t linear, bool write) const {
  return impl_->translateNoSideEffects(linear, write);
}
bool Cpu::readLinear(uint64_t linear, std::span<uint8_t> out) const {
  return impl_->readLinearDebug(linear, out);
}
const std::vector<std::string>& Cpu::unimplementedLog() const {
  return impl_->unimplementedLog();
}

}  // namespace ttvm
