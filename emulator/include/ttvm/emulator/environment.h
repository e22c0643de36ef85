// Environment: the one interface through which the emulated CPU meets the
// world. Every non-deterministic input enters here, so the CPU is a pure
// function of (initial state, environment answers). In record mode the
// environment is the live machine plus the trace writer; in replay mode it is
// the trace feed, which reports a divergence when the CPU asks for something
// the trace does not hold.
//
// Calls happen in instruction order. A REP string instruction calls portIn /
// portOut / mmio* once per iteration, and each iteration is one step.
#pragma once

#include <cstdint>
#include <optional>

namespace ttvm {

// An eventHint() value: only interruptPending() might be true (the CPU need
// not ask while IF=0).
inline constexpr uint32_t kEventHintMaskableOnly = 2;

class Environment {
 public:
  virtual ~Environment() = default;

  // Port I/O. `size` is 1, 2 or 4 bytes. Values are zero-extended.
  virtual uint32_t portIn(uint16_t port, unsigned size) = 0;
  virtual void portOut(uint16_t port, unsigned size, uint32_t value) = 0;

  // Accesses to guest-physical addresses that are not RAM. `size` is 1, 2, 4
  // or 8; larger or page-crossing accesses are split by the CPU.
  virtual uint64_t mmioRead(uint64_t physAddr, unsigned size) = 0;
  virtual void mmioWrite(uint64_t physAddr, unsigned size, uint64_t value) = 0;

  // The time-stamp counter before IA32_TSC_ADJUST is added.
  virtual uint64_t readTsc() = 0;
  // RDRAND/RDSEED: a value, or nothing when the source has no entropy (CF=0).
  virtual std::optional<uint64_t> readRandom(unsigned size) = 0;

  // MSRs that belong to the machine, not the CPU (x2APIC 0x800-0x8FF,
  // IA32_TSC_DEADLINE). nullopt = not this environment's: the CPU raises #GP.
  virtual std::optional<uint64_t> readMsr(uint32_t index) = 0;
  virtual bool writeMsr(uint32_t index, uint64_t value) = 0;

  // External interrupts. The CPU asks at every instruction boundary where it
  // could take one (IF=1, no interrupt shadow) and acknowledges the one it
  // takes; the environment decides whether one is pending.
  virtual bool interruptPending() = 0;
  virtual uint8_t acknowledgeInterrupt() = 0;
  virtual bool nmiPending() = 0;
  virtual void acknowledgeNmi() = 0;

  // A device asked the run to end after the current step (isa-debug-exit,
  // pvpanic, reset) or the replay diverged. Checked after every step.
  virtual bool stopRequested() = 0;

  // Optional fast path for Cpu::run: a word that the environment keeps
  // nonzero whenever interruptPending(), nmiPending() or stopRequested()
  // might return true. While it reads zero the CPU skips those three calls;
  // while it reads kEventHintMaskableOnly only interruptPending() might be
  // true, and the CPU asks only where it could take one (IF=1). nullptr (the
  // default) means: ask at every instruction boundary.
  virtual const volatile uint32_t* eventHint() const { return nullptr; }
};

}  // namespace ttvm
