// EmulatorRunner: executes test cases in ttvm's emulator through the public
// Cpu API, in the same three modes as the other runners.
//
// Machine. 4 MiB of flat RAM as PhysicalMemory. The runner builds the system
// structures a real kernel would have set up, then loads a CpuState directly
// in the target mode:
//  - 64-bit: long mode with 4-level identity paging of the first 4 MiB (4 KiB
//    pages; user-accessible above 64 KiB), a GDT with kernel/user segments
//    and a 64-bit TSS, an IDT of interrupt gates; the code runs at CPL 3 like
//    the host's user-mode code (TTVM_DIFF_CPL=0 runs it at CPL 0 instead,
//    with exceptions on IST1).
//  - 32-bit: protected mode, flat 4 GiB code/data segments, CPL 0, no
//    paging, an IDT of 32-bit interrupt gates.
//  - real mode: every segment register = layout.realSegment, the IVT at 0.
// The code runs step by step until RIP reaches the end of the code. A fault
// is delivered by the emulator into the IDT/IVT; the runner reads the
// faulting RIP/RFLAGS/RSP back from the exception frame and, where the frame
// landed on the guest's own stack (CPL 0), restores the bytes it overwrote,
// so that the outcome is the state at the faulting instruction, like the
// other oracles report it.
//
// The Environment fails the run on any port, MMIO, TSC, RDRAND or MSR
// access: none of the generated instructions may need one.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "diff_generator_support.h"
#include "diff_program_support.h"
#include "ttvm/emulator/cpu.h"

namespace ttvm::difftest {

class EmulatorRunner final : public Runner {
 public:
  explicit EmulatorRunner(CodeMode mode);
  ~EmulatorRunner() override;
  EmulatorRunner(const EmulatorRunner&) = delete;
  EmulatorRunner& operator=(const EmulatorRunner&) = delete;

  const char* name() const override { return "ttvm emulator"; }
  Result<Outcome> run(const TestCase& tc, const Encoded& code) override;

  // The optional instructions the default CPU model advertises.
  static Features modelFeatures();

  static constexpr uint64_t kRamSize = 4ull << 20;
  static constexpr uint64_t kMaxSteps = 50'000;

 private:
  class TestEnvironment;
  void buildSystem();
  CpuState initialState(const TestCase& tc) const;

  CodeMode mode_;
  int cpl_ = 3;
  std::vector<uint8_t> ram_;
  std::unique_ptr<TestEnvironment> env_;
  std::unique_ptr<Cpu> cpu_;
};

}  // namespace ttvm::difftest
