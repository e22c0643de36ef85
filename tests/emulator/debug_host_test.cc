// The host CPU as an oracle for the debug semantics user mode can see
// (issue 4): single-step (TF set by POPF / IRETQ, cleared by POPF), MOV SS
// deferral, INT3, INT 3, INT1/ICEBP, INT 1 through a DPL-0 gate, REP string
// iterations and branches under TF.
//
// Each sequence runs twice:
//  - natively, in a forked child, from an executable page; Linux turns every
//    #DB/#BP into SIGTRAP (si_code TRAP_TRACE when DR6.BS was set,
//    TRAP_HWBKPT for B0-B3, TRAP_BRKPT for an ICEBP #DB with no DR6 reason,
//    SI_KERNEL for #BP) and a #GP into SIGSEGV (SI_KERNEL); the handler
//    records si_code and the RIP/RFLAGS the kernel saved in the ucontext
//    (what the hardware pushed), and sigreturn resumes with the saved TF;
//  - in the emulator, at CPL 3 in 64-bit mode with an IDT whose #DB (DPL 0),
//    #BP (DPL 3) and #GP handlers are real guest code: at each handler entry
//    the test reads the frame the handler sees (RIP, RFLAGS) and DR6, and the
//    handler clears DR6 (as Linux does) and returns with IRETQ (#GP: skips
//    the two-byte INT n first, as the native SIGSEGV handler does).
// The emulator's events are mapped to (signal, si_code) with the kernel's
// rules (arch/x86/kernel/traps.c, get_si_code) and both lists must be equal:
// the same events, in the same order, at the same RIP offsets, with the same
// TF in the saved image.
#include <cpuid.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "cpu_harness.h"

namespace ttvm::cputest {
namespace {

// POPF that sets TF (no trap after it) and the stepped tail that clears it
// (traps after PUSHF, AND and POPF, the last with TF clear in the image).
constexpr const char* kTfOn = "9c 48 81 0c 24 00 01 00 00 9d ";
constexpr const char* kTfOff = "9c 48 81 24 24 ff fe ff ff 9d ";

struct Sequence {
  const char* name;
  std::string hex;  // 64-bit code; the last byte is the RET that ends it
  // Offset of a REP string instruction: traps after its non-final iterations
  // push RF = 1 on Intel (SDM 18.3.1.1, ttvm's model) and RF = 0 on AMD
  // hardware (measured; docs/debug-semantics.md). -1: none.
  int64_t repOffset = -1;
};

// Test names and failure messages show the sequence's name.
void PrintTo(const Sequence& s, std::ostream* os) {
  *os << s.name;
}

std::vector<Sequence> sequences() {
  const std::string on = kTfOn, off = kTfOff;
  return {
      {"popf_sets_and_clears_tf", on + "90 90 " + off + "c3"},
      // mov %ss,%ecx; mov %rsp,%rax; push rcx; push rax; pushfq; orq TF;
      // mov %cs,%ecx; push rcx; lea 1f(%rip),%rcx; push rcx; iretq; 1: nop
      {"iretq_sets_tf",
       "8c d1 48 89 e0 51 50 9c 48 81 0c 24 00 01 00 00 8c c9 51 48 8d 0d 03 00 00 00 51 48 cf "
       "90 " +
           off + "c3"},
      {"int3", "cc 90 c3"},
      {"int3_with_tf", on + "90 cc 90 " + off + "c3"},
      {"int_n_3", "cd 03 90 c3"},
      {"int1", "f1 90 c3"},
      {"int1_with_tf", on + "90 f1 90 " + off + "c3"},
      // INT 1 (CD 01) through a DPL-0 gate at CPL 3: #GP(1*8+2), not #DB.
      {"int_n_1_dpl0", "cd 01 90 c3"},
      // mov %ss,%eax; TF on; mov %eax,%ss; nop; nop: the trap owed to MOV SS
      // is taken after the first NOP only.
      {"movss_tf", "8c d0 " + on + "8e d0 90 90 " + off + "c3"},
      // ICEBP in the MOV SS shadow with TF: one #DB for the ICEBP, no BS.
      {"movss_int1_tf", "8c d0 " + on + "8e d0 f1 90 " + off + "c3"},
      // mov $3,%ecx; xor %eax,%eax; TF on; rep stosb (RDI = scratch): a trap
      // per iteration, RIP on the REP until the last.
      {"rep_stosb_tf", "b9 03 00 00 00 31 c0 " + on + "f3 aa " + off + "c3", 17},
      // jmp 1f; nop; 1: call 2f; 2: pop %rax
      {"branches_tf", on + "eb 01 90 e8 00 00 00 00 58 " + off + "c3"},
  };
}

// One observed event: a signal (or the emulator's equivalent) with the RIP
// offset from the sequence start and TF in the saved RFLAGS.
struct Event {
  int signo = 0;
  int code = 0;
  int64_t ripOffset = 0;
  bool tf = false;
  bool rf = false;
  bool operator==(const Event&) const = default;
};

std::string describe(const std::vector<Event>& events) {
  std::string s;
  for (const Event& e : events) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "  %s code %d rip +%#llx TF=%d RF=%d\n",
                  e.signo == SIGTRAP   ? "SIGTRAP"
                  : e.signo == SIGSEGV ? "SIGSEGV"
                                       : "signal",
                  e.code, static_cast<long long>(e.ripOffset), e.tf ? 1 : 0, e.rf ? 1 : 0);
    s += buf;
  }
  return s.empty() ? "  (none)\n" : s;
}

// ------------------------------------------------------------------ native

constexpr int kMaxEvents = 32;
struct NativeLog {
  uint64_t base;
  int count;
  // The host reported an ICEBP #DB with RIP still on the ICEBP (F1). Both
  // manuals make INT1 a trap (RIP after it); a hypervisor that intercepts
  // ICEBP and re-injects #DB without skipping the instruction (seen on AMD
  // hosts under KVM) does this, and then the host is no oracle for INT1.
  bool icebpNotAdvanced;
  Event events[kMaxEvents];
};
NativeLog* g_log = nullptr;

void onSignal(int signo, siginfo_t* info, void* ctx) {
  auto* uc = static_cast<ucontext_t*>(ctx);
  const uint64_t rip = static_cast<uint64_t>(uc->uc_mcontext.gregs[REG_RIP]);
  if (g_log->count < kMaxEvents) {
    Event& e = g_log->events[g_log->count];
    e.signo = signo;
    e.code = info->si_code;
    e.ripOffset = static_cast<int64_t>(rip - g_log->base);
    e.tf = uc->uc_mcontext.gregs[REG_EFL] & flags::kTF;
    e.rf = uc->uc_mcontext.gregs[REG_EFL] & flags::kRF;
  }
  ++g_log->count;
  // #GP from INT n: continue after the two-byte instruction.
  if (signo == SIGSEGV) uc->uc_mcontext.gregs[REG_RIP] += 2;
  if (signo == SIGTRAP && info->si_code == TRAP_BRKPT && rip >= g_log->base &&
      rip < g_log->base + 4096 && *reinterpret_cast<const uint8_t*>(rip) == 0xF1) {
    g_log->icebpNotAdvanced = true;
    uc->uc_mcontext.gregs[REG_RIP] += 1;
  }
  if (g_log->count > kMaxEvents) _exit(3);  // runaway
}

// Runs the bytes natively in a child process; nullopt with a message when the
// child could not run them.
std::optional<std::vector<Event>> runNative(const std::vector<uint8_t>& code, std::string& why,
                                            bool* icebpNotAdvanced = nullptr) {
  // Shared with the child so that nothing needs serializing.
  void* shared =
      mmap(nullptr, sizeof(NativeLog), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) {
    why = "mmap(shared) failed";
    return std::nullopt;
  }
  auto* log = new (shared) NativeLog{};
  const pid_t pid = fork();
  if (pid < 0) {
    why = "fork failed";
    munmap(shared, sizeof(NativeLog));
    return std::nullopt;
  }
  if (pid == 0) {
    void* page =
        mmap(nullptr, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) _exit(4);
    std::memcpy(page, code.data(), code.size());
    static uint8_t scratch[64];
    g_log = log;
    log->base = reinterpret_cast<uint64_t>(page);
    struct sigaction sa {};
    sa.sa_sigaction = onSignal;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTRAP, &sa, nullptr);
    sigaction(SIGSEGV, &sa, nullptr);
    alarm(10);
    reinterpret_cast<void (*)(void*)>(page)(scratch);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  std::optional<std::vector<Event>> out;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    out.emplace(log->events, log->events + std::min(log->count, kMaxEvents));
    if (icebpNotAdvanced) *icebpNotAdvanced = log->icebpNotAdvanced;
  } else {
    why = "native child ended with status " + std::to_string(status);
  }
  munmap(shared, sizeof(NativeLog));
  return out;
}

// ---------------------------------------------------------------- emulator

constexpr uint64_t kUserCode = 0x300000;
constexpr uint64_t kUserStack = 0x380000;
constexpr uint64_t kScratch = 0x390000;
constexpr uint64_t kDbHandler = layout::kCode + 0x100;
constexpr uint64_t kBpHandler = layout::kCode + 0x200;
constexpr uint64_t kGpHandler = layout::kCode + 0x300;

// Linux's mapping of an exception to (signal, si_code), user mode.
Event linuxSignalFor(uint8_t vector, uint64_t dr6) {
  Event e;
  if (vector == 13) {
    e.signo = SIGSEGV;
    e.code = SI_KERNEL;
  } else if (vector == 3) {
    e.signo = SIGTRAP;
    e.code = SI_KERNEL;
  } else {
    e.signo = SIGTRAP;
    e.code = (dr6 & (1u << 14)) ? TRAP_TRACE : (dr6 & 0xF) ? TRAP_HWBKPT : TRAP_BRKPT;
  }
  return e;
}

std::vector<Event> runEmulated(const std::vector<uint8_t>& code, std::string& why) {
  Machine m;
  m.setupLong64(layout::kCode);
  // push rax; mov $0xFFFF0FF0,%eax; mov %rax,%dr6; pop rax; iretq
  const char* kClearDr6AndReturn = "50 b8 f0 0f ff ff 0f 23 f0 58 48 cf";
  m.loadHex(kDbHandler, kClearDr6AndReturn);
  m.loadHex(kBpHandler, kClearDr6AndReturn);
  // addq $2,8(%rsp); add $8,%rsp; iretq
  m.loadHex(kGpHandler, "48 83 44 24 08 02 48 83 c4 08 48 cf");
  m.setIdt64(1, kDbHandler, 0);  // Linux: #DB gate DPL 0, #BP DPL 3
  m.setIdt64(3, kBpHandler, 3);
  m.setIdt64(13, kGpHandler, 0);
  m.load(kUserCode, code);
  m.enterUser64();
  m.edit([](CpuState& s) {
    s.rip = kUserCode;
    s.reg(Gpr::kRsp) = kUserStack;
    s.reg(Gpr::kRdi) = kScratch;
    s.rflags = flags::kFixed1 | flags::kIF;
  });
  const uint64_t retAddr = kUserCode + code.size() - 1;
  std::vector<Event> events;
  for (int n = 0; n < 500; ++n) {
    const StepResult r = m.step();
    const CpuState s = m.state();
    if (r.outcome == StepOutcome::kException) {
      // The handler's view: [error code,] RIP, CS, RFLAGS, RSP, SS.
      const uint64_t frame = s.reg(Gpr::kRsp) + (r.hasErrorCode ? 8 : 0);
      Event e = linuxSignalFor(r.vector, s.dr6);
      e.ripOffset = static_cast<int64_t>(m.get(frame, 8) - kUserCode);
      e.tf = m.get(frame + 16, 8) & flags::kTF;
      e.rf = m.get(frame + 16, 8) & flags::kRF;
      events.push_back(e);
      continue;
    }
    if (r.outcome != StepOutcome::kRetired) {
      why = std::string("emulator stopped: ") + toString(r.outcome);
      return events;
    }
    if (s.rip == retAddr && (s.segment(SegReg::kCs).selector & 3) == 3) return events;
  }
  why = "emulator did not reach the final RET";
  return events;
}

bool hostIsAmd() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return false;
  char vendor[13] = {};
  std::memcpy(vendor, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &c, 4);
  return std::strcmp(vendor, "AuthenticAMD") == 0;
}

class DebugHostOracle : public ::testing::TestWithParam<Sequence> {};

TEST_P(DebugHostOracle, SameTrapsAsTheHostCpu) {
  const Sequence& seq = GetParam();
  const std::vector<uint8_t> code = hexBytes(seq.hex);
  ASSERT_EQ(code.back(), 0xC3) << "sequence must end with RET";
  std::string why;
  bool icebpNotAdvanced = false;
  const auto native = runNative(code, why, &icebpNotAdvanced);
  if (!native) GTEST_SKIP() << "host could not run the sequence: " << why;
  if (icebpNotAdvanced)
    GTEST_SKIP() << "the host reports ICEBP's #DB with RIP on the ICEBP (a hypervisor that "
                    "intercepts ICEBP; architecturally INT1 is a trap): no oracle for INT1 here";
  ASSERT_FALSE(native->empty()) << "the host raised no signal: the sequence tests nothing";
  std::string emuWhy;
  const std::vector<Event> emulated = runEmulated(code, emuWhy);
  ASSERT_TRUE(emuWhy.empty()) << emuWhy;
  std::vector<Event> expected = *native;
  if (hostIsAmd()) {
    // The one documented vendor difference: where the host pushed RF = 0 for
    // a trap left on the REP instruction, ttvm's Intel model pushes RF = 1.
    for (Event& e : expected)
      if (e.ripOffset == seq.repOffset && e.signo == SIGTRAP && !e.rf) e.rf = true;
  }
  EXPECT_EQ(emulated, expected) << "host:\n"
                                << describe(*native) << "ttvm:\n"
                                << describe(emulated);
}

INSTANTIATE_TEST_SUITE_P(Sequences, DebugHostOracle, ::testing::ValuesIn(sequences()),
                         [](const ::testing::TestParamInfo<Sequence>& p) {
                           return std::string(p.param.name);
                         });

// The oracle itself must see what the SDM promises on this host, or a
// broken native run could make both sides agree on nothing: POPF-set TF
// traps after each following instruction, INT3 reports SI_KERNEL after it.
TEST(DebugHostOracleSelfCheck, HostShowsSingleStepAndInt3) {
  std::string why;
  const auto steps = runNative(hexBytes(std::string(kTfOn) + "90 " + kTfOff + "c3"), why);
  if (!steps) GTEST_SKIP() << why;
  // nop at +10, pushf +11, and +12, popf +20, ret +21
  const std::vector<Event> expected = {{SIGTRAP, TRAP_TRACE, 11, true},
                                       {SIGTRAP, TRAP_TRACE, 12, true},
                                       {SIGTRAP, TRAP_TRACE, 20, true},
                                       {SIGTRAP, TRAP_TRACE, 21, false}};
  EXPECT_EQ(*steps, expected) << describe(*steps);
  const auto bp = runNative(hexBytes("cc c3"), why);
  ASSERT_TRUE(bp.has_value()) << why;
  EXPECT_EQ(*bp, (std::vector<Event>{{SIGTRAP, SI_KERNEL, 1, false}})) << describe(*bp);
}

}  // namespace
}  // namespace ttvm::cputest
