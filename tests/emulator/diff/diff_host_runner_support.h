// HostRunner: executes 64-bit test cases natively on the host CPU, and
// 32-bit ones in compatibility mode (a far jump to the kernel's 32-bit user
// code segment, as a 32-bit program on a 64-bit kernel runs).
//
// Design. A child process (forked once, re-forked after a crash or a
// timeout) maps the code, data and stack pages at the addresses of
// layoutFor(kLong64), plus a page of entry/exit stubs and a state block.
// Per test case the parent writes code, memory and registers into shared
// memory and sends one byte; the child copies them into place and calls the
// entry stub, which saves the host's callee-saved registers, loads every GPR,
// RFLAGS and XMM register from the state block and jumps to the code. The
// code ends in a jump to the exit stub, which stores them all back. A fault
// (SIGFPE for #DE, SIGSEGV, SIGILL, ...) inside the code is caught by a
// handler on an alternate stack that records the registers from the signal
// context (RIP = the faulting instruction, vector = the trap number) and
// resumes the exit path. Anything else (a fault in the harness, a hang)
// kills only the child: the parent reports it and starts a new one.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "diff_program_support.h"

namespace ttvm::difftest {

class HostRunner final : public Runner {
 public:
  // `compatCs` is the code segment 32-bit cases run in: the kernel's user
  // 32-bit CS (0x23) unless a test wants one that does not work.
  explicit HostRunner(CodeMode mode = CodeMode::kLong64, uint16_t compatCs = kUserCs32);
  // Whether this host can run `mode` (never real mode; 32-bit needs the
  // low pages of layoutFor(kProtected32) to be mappable, and a kernel with
  // IA-32 emulation: probed once per process with probeCompat(kUserCs32)).
  static Status available(CodeMode mode);
  // Runs one NOP in compatibility mode through `compatCs`; the error says the
  // kernel cannot run 32-bit code (every 32-bit case would otherwise kill its
  // child, one after the other, for minutes).
  static Status probeCompat(uint16_t compatCs);
  static constexpr uint16_t kUserCs32 = 0x23;  // x86-64 Linux's __USER32_CS
  ~HostRunner() override;
  HostRunner(const HostRunner&) = delete;
  HostRunner& operator=(const HostRunner&) = delete;

  const char* name() const override { return "host CPU"; }
  Result<Outcome> run(const TestCase& tc, const Encoded& code) override;

  // Wall-clock limit for one test case, in milliseconds.
  void setTimeoutMs(int ms) { timeoutMs_ = ms; }

  // The block shared with the child (code, memory and registers in and out).
  struct Shared;

 private:
  Status start();
  void stop();

  CodeMode mode_;
  uint16_t compatCs_;
  Shared* shared_ = nullptr;
  pid_t child_ = -1;
  int fd_ = -1;  // parent's end of the socketpair
  int timeoutMs_ = 5000;
};

}  // namespace ttvm::difftest
