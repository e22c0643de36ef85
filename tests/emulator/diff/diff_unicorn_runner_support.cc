#include "diff_unicorn_runner_support.h"

#if TTVM_DIFF_HAVE_UNICORN

#include <setjmp.h>
#include <signal.h>

#include <cstdio>
#include <cstring>

namespace ttvm::difftest {
namespace {

const int kGpr64[16] = {UC_X86_REG_RAX, UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_RBX,
                        UC_X86_REG_RSP, UC_X86_REG_RBP, UC_X86_REG_RSI, UC_X86_REG_RDI,
                        UC_X86_REG_R8,  UC_X86_REG_R9,  UC_X86_REG_R10, UC_X86_REG_R11,
                        UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14, UC_X86_REG_R15};
const int kGpr32[8] = {UC_X86_REG_EAX, UC_X86_REG_ECX, UC_X86_REG_EDX, UC_X86_REG_EBX,
                       UC_X86_REG_ESP, UC_X86_REG_EBP, UC_X86_REG_ESI, UC_X86_REG_EDI};

std::string ucError(const char* what, uc_err e) {
  return std::string("Unicorn: ") + what + ": " + uc_strerror(e);
}

// QEMU's helper for 32-bit IDIV divides EDX:EAX by the divisor in int64
// arithmetic before checking for overflow, so EDX:EAX = 2^63 with divisor -1
// traps in the host (SIGFPE) instead of raising #DE in the guest (SDM Vol. 2A
// IDIV: quotient too large -> #DE). The runner catches the signal and marks
// the case as an oracle failure.
sigjmp_buf gFpeJump;
void onHostFpe(int) {
  siglongjmp(gFpeJump, 1);
}
const char* const kUnicornIdivCrash =
    "Unicorn: IDIV r/m32 with EDX:EAX = 2^63 and divisor -1 raises SIGFPE in the host process "
    "instead of #DE in the guest (SDM Vol. 2A IDIV)";

void onInterrupt(uc_engine* uc, uint32_t intno, void* user) {
  *static_cast<int*>(user) = static_cast<int>(intno);
  uc_emu_stop(uc);
}

}  // namespace

Features UnicornRunner::unicornFeatures() {
  // Ask Unicorn's own CPUID: its TCG drops some of the model's features
  // (Unicorn 2.0.1's Haswell has LZCNT and BMI1 but neither POPCNT nor MOVBE,
  // and raises #UD for them).
  Features f;
  uc_engine* uc = nullptr;
  if (uc_open(UC_ARCH_X86, UC_MODE_64, &uc) != UC_ERR_OK) return f;
  uc_ctl_set_cpu_model(uc, UC_CPU_X86_HASWELL);
  const uint8_t kCpuid[] = {0x0F, 0xA2};
  uint32_t regs[3][4] = {};
  const uint32_t kLeaves[3] = {1, 7, 0x80000001};
  if (uc_mem_map(uc, 0x1000, 0x1000, UC_PROT_ALL) == UC_ERR_OK &&
      uc_mem_write(uc, 0x1000, kCpuid, sizeof(kCpuid)) == UC_ERR_OK) {
    for (int i = 0; i < 3; ++i) {
      uint64_t a = kLeaves[i], c = 0;
      uc_reg_write(uc, UC_X86_REG_RAX, &a);
      uc_reg_write(uc, UC_X86_REG_RCX, &c);
      if (uc_emu_start(uc, 0x1000, 0x1002, 0, 0) != UC_ERR_OK) continue;
      const int ids[4] = {UC_X86_REG_RAX, UC_X86_REG_RBX, UC_X86_REG_RCX, UC_X86_REG_RDX};
      for (int r = 0; r < 4; ++r) {
        uint64_t v = 0;
        uc_reg_read(uc, ids[r], &v);
        regs[i][r] = static_cast<uint32_t>(v);
      }
    }
  }
  uc_close(uc);
  f.popcnt = (regs[0][2] >> 23) & 1;
  f.movbe = (regs[0][2] >> 22) & 1;
  f.tzcnt = (regs[1][1] >> 3) & 1;
  f.lzcnt = (regs[2][2] >> 5) & 1;
  return f;
}

UnicornRunner::UnicornRunner(CodeMode mode) : mode_(mode) {
  Status s = open();
  if (!s.ok()) openError_ = s.error().message;
}

UnicornRunner::~UnicornRunner() {
  if (uc_) uc_close(uc_);
}

Status UnicornRunner::open() {
  uc_mode m = mode_ == CodeMode::kLong64        ? UC_MODE_64
              : mode_ == CodeMode::kProtected32 ? UC_MODE_32
                                                : UC_MODE_16;
  uc_err e = uc_open(UC_ARCH_X86, m, &uc_);
  if (e != UC_ERR_OK) return makeError(ucError("uc_open", e));
  e = uc_ctl_set_cpu_model(uc_, UC_CPU_X86_HASWELL);
  if (e != UC_ERR_OK) return makeError(ucError("set CPU model", e));
  Layout lay = layoutFor(mode_);
  e = uc_mem_map(uc_, lay.linearCode(), 0x2000, UC_PROT_ALL);
  if (e != UC_ERR_OK) return makeError(ucError("map code", e));
  e = uc_mem_map(uc_, lay.linearData(), kMemSize, UC_PROT_READ | UC_PROT_WRITE);
  if (e != UC_ERR_OK) return makeError(ucError("map data", e));
  e = uc_hook_add(uc_, &intrHook_, UC_HOOK_INTR, reinterpret_cast<void*>(onInterrupt), &vector_, 1,
                  0);
  if (e != UC_ERR_OK) return makeError(ucError("hook", e));
  if (mode_ == CodeMode::kReal16) {
    // SSE in real mode needs CR4.OSFXSR. Unicorn's register write of CR4
    // does not reach QEMU's cached hflags (SSE stays #UD), so execute
    // MOV CR4, EAX once instead.
    uint64_t sel = lay.realSegment;
    uc_reg_write(uc_, UC_X86_REG_CS, &sel);
    const uint8_t kMovCr4Eax[] = {0x0F, 0x22, 0xE0};
    uint64_t cr4v = cr4::kOSFXSR | cr4::kOSXMMEXCPT;
    uc_reg_write(uc_, UC_X86_REG_EAX, &cr4v);
    e = uc_mem_write(uc_, lay.linearCode(), kMovCr4Eax, sizeof(kMovCr4Eax));
    if (e == UC_ERR_OK) {
      e = uc_emu_start(uc_, lay.linearCode(), lay.linearCode() + sizeof(kMovCr4Eax), 0, 0);
    }
    if (e != UC_ERR_OK) return makeError(ucError("enable SSE (MOV CR4)", e));
  }
  return {};
}

Result<Outcome> UnicornRunner::run(const TestCase& tc, const Encoded& code) {
  if (!openError_.empty()) return makeError(openError_);
  if (tc.program.mode != mode_) return makeError("UnicornRunner: test case is for another mode");
  Layout lay = layoutFor(mode_);
  bool is64 = mode_ == CodeMode::kLong64;
  std::vector<uint8_t> page(0x2000, 0xF4);  // HLT after the code: never reached
  std::memcpy(page.data(), code.bytes.data(), code.bytes.size());
  uc_err e = uc_mem_write(uc_, lay.linearCode(), page.data(), page.size());
  if (e != UC_ERR_OK) return makeError(ucError("write code", e));
  // The code page changed: drop translations made from it.
  e = uc_ctl_remove_cache(uc_, lay.linearCode(), lay.linearCode() + page.size());
  if (e != UC_ERR_OK) return makeError(ucError("remove cache", e));
  e = uc_mem_write(uc_, lay.linearData(), tc.initial.mem.data(), kMemSize);
  if (e != UC_ERR_OK) return makeError(ucError("write data", e));

  const ArchState& s = tc.initial;
  if (mode_ == CodeMode::kReal16) {
    for (int r : {UC_X86_REG_CS, UC_X86_REG_DS, UC_X86_REG_ES, UC_X86_REG_SS, UC_X86_REG_FS,
                  UC_X86_REG_GS}) {
      uint64_t sel = lay.realSegment;
      e = uc_reg_write(uc_, r, &sel);
      if (e != UC_ERR_OK) return makeError(ucError("write segment", e));
    }
  }
  for (int i = 0; i < (is64 ? 16 : 8); ++i) {
    uint64_t v = is64 ? s.gpr[i] : (s.gpr[i] & 0xFFFFFFFF);
    uc_reg_write(uc_, is64 ? kGpr64[i] : kGpr32[i], &v);
  }
  uint64_t fl = s.rflags;
  uc_reg_write(uc_, UC_X86_REG_EFLAGS, &fl);
  for (int i = 0; i < (is64 ? 16 : 8); ++i) {
    uint64_t x[2] = {s.xmm[i].q[0], s.xmm[i].q[1]};
    uc_reg_write(uc_, UC_X86_REG_XMM0 + i, x);
  }

  vector_ = -1;
  uint64_t begin = lay.linearCode();
  uint64_t until = begin + code.bytes.size();
  Outcome o;
  if (!code.bytes.empty()) {
    struct sigaction fpe {
    }, oldFpe{};
    fpe.sa_handler = onHostFpe;
    sigemptyset(&fpe.sa_mask);
    fpe.sa_flags = SA_NODEFER;
    sigaction(SIGFPE, &fpe, &oldFpe);
    if (sigsetjmp(gFpeJump, 1) != 0) {
      sigaction(SIGFPE, &oldFpe, nullptr);
      // The engine was left in the middle of generated code: abandon it
      // (closing it is not safe) and start a new one.
      uc_ = nullptr;
      Status reopened = open();
      if (!reopened.ok()) openError_ = reopened.error().message;
      o.faulted = true;
      o.unreliable = kUnicornIdivCrash;
      return o;
    }
    e = uc_emu_start(uc_, begin, until, 2'000'000, 100'000);
    sigaction(SIGFPE, &oldFpe, nullptr);
    if (e == UC_ERR_INSN_INVALID) {
      vector_ = 6;
    } else if (e == UC_ERR_READ_UNMAPPED || e == UC_ERR_WRITE_UNMAPPED ||
               e == UC_ERR_FETCH_UNMAPPED || e == UC_ERR_READ_PROT || e == UC_ERR_WRITE_PROT) {
      vector_ = is64 ? 14 : 13;
    } else if (e != UC_ERR_OK) {
      return makeError(ucError("emu_start", e) + " (seed " + std::to_string(tc.seed) + ")");
    }
  }
  for (int i = 0; i < (is64 ? 16 : 8); ++i) {
    uint64_t v = 0;
    uc_reg_read(uc_, is64 ? kGpr64[i] : kGpr32[i], &v);
    o.state.gpr[i] = is64 ? v : (v & 0xFFFFFFFF);
  }
  uint64_t rflags = 0;
  uc_reg_read(uc_, UC_X86_REG_EFLAGS, &rflags);
  o.state.rflags = rflags & 0xFFFFFFFF;
  for (int i = 0; i < (is64 ? 16 : 8); ++i) {
    uint64_t x[2] = {0, 0};
    uc_reg_read(uc_, UC_X86_REG_XMM0 + i, x);
    o.state.xmm[i].q = {x[0], x[1]};
  }
  uint64_t ip = 0;
  uc_reg_read(uc_, is64 ? UC_X86_REG_RIP : UC_X86_REG_EIP, &ip);
  o.state.rip = is64 ? ip : (mode_ == CodeMode::kReal16 ? ip & 0xFFFF : ip & 0xFFFFFFFF);
  e = uc_mem_read(uc_, lay.linearData(), o.state.mem.data(), kMemSize);
  if (e != UC_ERR_OK) return makeError(ucError("read data", e));
  if (vector_ >= 0) {
    o.faulted = true;
    o.vector = static_cast<uint8_t>(vector_);
    // Stopping in the interrupt hook leaves QEMU's exception state behind
    // (the next exception would be taken as a double fault): start afresh.
    uc_close(uc_);
    uc_ = nullptr;
    Status reopened = open();
    if (!reopened.ok()) openError_ = reopened.error().message;
  } else if (o.state.rip != lay.code + code.bytes.size()) {
    char b[128];
    std::snprintf(b, sizeof(b), "Unicorn stopped at 0x%llx, before the end of the code (seed %llu)",
                  static_cast<unsigned long long>(o.state.rip),
                  static_cast<unsigned long long>(tc.seed));
    return makeError(b);
  }
  return o;
}

}  // namespace ttvm::difftest

#endif  // TTVM_DIFF_HAVE_UNICORN
