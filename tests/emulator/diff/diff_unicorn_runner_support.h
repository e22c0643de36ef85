// UnicornRunner: executes test cases in Unicorn (QEMU's TCG as a library),
// in 64-bit long mode, 32-bit protected flat mode or real mode.
//
// One Unicorn instance per runner; per test case the code and data pages are
// rewritten, the translation cache for the code page dropped, and the
// registers loaded. A CPU exception stops emulation and is reported as a
// fault with its vector; an access outside the mapped pages becomes a fault
// with vector 14 (64-bit) or 13. Unicorn emulates a Haswell CPU model;
// unicornFeatures() reads from its CPUID which optional instructions it has.
#pragma once

#include "diff_generator_support.h"
#include "diff_program_support.h"

#if __has_include(<unicorn/unicorn.h>)
#define TTVM_DIFF_HAVE_UNICORN 1
#include <unicorn/unicorn.h>

namespace ttvm::difftest {

class UnicornRunner final : public Runner {
 public:
  explicit UnicornRunner(CodeMode mode);
  ~UnicornRunner() override;
  UnicornRunner(const UnicornRunner&) = delete;
  UnicornRunner& operator=(const UnicornRunner&) = delete;

  const char* name() const override { return "Unicorn"; }
  Result<Outcome> run(const TestCase& tc, const Encoded& code) override;

  // The optional instructions Unicorn implements (from its CPUID).
  static Features unicornFeatures();

 private:
  Status open();

  CodeMode mode_;
  uc_engine* uc_ = nullptr;
  uc_hook intrHook_ = 0;
  int vector_ = -1;
  std::string openError_;
};

}  // namespace ttvm::difftest
#else
#define TTVM_DIFF_HAVE_UNICORN 0
#endif
