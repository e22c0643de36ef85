#include "vector_host_support.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <ucontext.h>

#include <algorithm>
#include <csetjmp>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cpu_harness.h"
#include "host_thunk_support.h"

namespace ttvm::cputest {

int caseCount(const char* variable, int fallback) {
  if (const char* v = std::getenv(variable)) return std::max(1, std::atoi(v));
  return fallback;
}

namespace {

struct alignas(16) HostIo {
  uint64_t xmm0[2];    // 0
  uint64_t xmm1[2];    // 16
  uint64_t rax;        // 32
  uint64_t mm0;        // 40
  uint64_t mm1;        // 48
  uint64_t pad;        // 56
  uint8_t mem[16];     // 64
  uint64_t rflags;     // 80
  uint32_t mxcsr;      // 88
  uint32_t hostMxcsr;  // 92
};
static_assert(offsetof(HostIo, mem) == 64 && offsetof(HostIo, mxcsr) == 88);

sigjmp_buf gTrapJump;
volatile uint32_t gTrapMxcsr;

void onSigfpe(int, siginfo_t*, void* context) {
  auto* uc = static_cast<ucontext_t*>(context);
  gTrapMxcsr = uc->uc_mcontext.fpregs->mxcsr;
  uc->uc_mcontext.fpregs->mxcsr |= 0x1F80;
  siglongjmp(gTrapJump, 1);
}

class HostThunk {
 public:
  HostThunk() {
    struct sigaction sa {};
    sa.sa_sigaction = &onSigfpe;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGFPE, &sa, &old_);
  }
  ~HostThunk() { sigaction(SIGFPE, &old_, nullptr); }
  bool ok() const { return page_.ok(); }
  void set(const std::vector<uint8_t>& insn) {
    static const uint8_t kPrologue[] = {
        0x0F, 0xAE, 0x5F, 0x5C,        // stmxcsr [rdi+92]   (the host's)
        0xF3, 0x0F, 0x6F, 0x07,        // movdqu xmm0, [rdi]
        0xF3, 0x0F, 0x6F, 0x4F, 0x10,  // movdqu xmm1, [rdi+16]
        0x48, 0x8B, 0x47, 0x20,        // mov rax, [rdi+32]
        0x0F, 0x6F, 0x47, 0x28,        // movq mm0, [rdi+40]
        0x0F, 0x6F, 0x4F, 0x30,        // movq mm1, [rdi+48]
        0x48, 0x8D, 0x77, 0x40,        // lea rsi, [rdi+64]
        0x0F, 0xAE, 0x57, 0x58,        // ldmxcsr [rdi+88]   (the guest's)
    };
    static const uint8_t kEpilogue[] = {
        0x0F, 0xAE, 0x5F, 0x58,        // stmxcsr [rdi+88]
        0x9C, 0x59,                    // pushfq; pop rcx
        0x48, 0x89, 0x4F, 0x50,        // mov [rdi+80], rcx
        0xF3, 0x0F, 0x7F, 0x07,        // movdqu [rdi], xmm0
        0xF3, 0x0F, 0x7F, 0x4F, 0x10,  // movdqu [rdi+16], xmm1
        0x48, 0x89, 0x47, 0x20,        // mov [rdi+32], rax
        0x0F, 0x7F, 0x47, 0x28,        // movq [rdi+40], mm0
        0x0F, 0x7F, 0x4F, 0x30,        // movq [rdi+48], mm1
        0x0F, 0x77,                    // emms
        0x0F, 0xAE, 0x57, 0x5C,        // ldmxcsr [rdi+92]
        0xC3,                          // ret
    };
    page_.set(kPrologue, insn, kEpilogue);
  }
  // Runs the form; false when it trapped (io.mxcsr is then the trap's MXCSR
  // and nothing else in io changed).
  bool run(HostIo& io) {
    if (sigsetjmp(gTrapJump, 1) != 0) {
      static const uint32_t kDefault = 0x1F80;
      asm volatile("emms\n\tldmxcsr %0" ::"m"(kDefault));
      io.mxcsr = gTrapMxcsr;
      return false;
    }
    page_.call(io);
    return true;
  }

 private:
  HostThunkPage page_;
  struct sigaction old_ {};
};

constexpr uint64_t kFaultHandler = layout::kCode + 0x8000;

// FNV-1a: a per-form seed that is the same with every standard library.
uint64_t formSeed(const std::string& name) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char ch : name) h = (h ^ ch) * 0x100000001B3ull;
  return h;
}

// One generated case: the inputs, and whether CR4.OSXMMEXCPT is set.
struct VectorCase {
  HostIo in{};
  bool osxmmexcpt = false;
};
VectorCase nextCase(VectorOperands& rng, Lane lane) {
  VectorCase c;
  HostIo& in = c.in;
  rng.fillLanes(lane, reinterpret_cast<uint8_t*>(in.xmm0), 16);
  rng.fillLanes(lane, reinterpret_cast<uint8_t*>(in.xmm1), 16);
  rng.fillLanes(lane, in.mem, 16);
  rng.fillLanes(lane, reinterpret_cast<uint8_t*>(&in.rax), 8);
  rng.fillLanes(lane, reinterpret_cast<uint8_t*>(&in.mm0), 8);
  rng.fillLanes(lane, reinterpret_cast<uint8_t*>(&in.mm1), 8);
  in.mxcsr = rng.mxcsr();
  c.osxmmexcpt = rng.below(2);
  return c;
}

// The emulator side: a machine holding the form, run once per case.
class EmulatorSide {
 public:
  explicit EmulatorSide(const VectorForm& form) : size_(form.bytes.size()) {
    m_.setupLong64(code_);
    m_.load(code_, form.bytes);
    m_.loadHex(kFaultHandler, "f4");
    m_.setAllIdt64(kFaultHandler);
  }
  struct Result {
    StepResult step;
    CpuState state;
    uint64_t mem[2];
  };
  Result run(const VectorCase& c) {
    const HostIo& in = c.in;
    m_.edit([&](CpuState& s) {
      s.rip = code_;
      s.fpu.xmm[0] = Vec128{{in.xmm0[0], in.xmm0[1]}};
      s.fpu.xmm[1] = Vec128{{in.xmm1[0], in.xmm1[1]}};
      s.fpu.st[0] = Float80{in.mm0, 0};
      s.fpu.st[1] = Float80{in.mm1, 0};
      s.fpu.fsw = 0;
      s.fpu.ftw = 0;
      s.fpu.mxcsr = in.mxcsr;
      s.reg(Gpr::kRax) = in.rax;
      s.reg(Gpr::kRsi) = layout::kData;
      s.reg(Gpr::kRsp) = layout::kStackTop;
      s.rflags = 0x2;
      s.cr4 = c.osxmmexcpt ? (s.cr4 | cr4::kOSXMMEXCPT) : (s.cr4 & ~cr4::kOSXMMEXCPT);
    });
    for (int k = 0; k < 16; k += 8) {
      uint64_t v;
      std::memcpy(&v, in.mem + k, 8);
      m_.put(layout::kData + k, v, 8);
    }
    Result r{m_.step(), m_.state(), {}};
    r.mem[0] = m_.get(layout::kData, 8);
    r.mem[1] = m_.get(layout::kData + 8, 8);
    return r;
  }
  uint64_t endRip() const { return code_ + size_; }
  std::string lastUnimplemented() const {
    return m_.cpu->unimplementedLog().empty() ? "" : m_.cpu->unimplementedLog().back();
  }

 private:
  Machine m_;
  uint64_t code_ = codeAddress(CpuMode::kLong64);
  size_t size_;
};

}  // namespace

void checkVectorForm(const VectorForm& form, int cases, VectorStats& stats) {
  HostThunk thunk;
  ASSERT_TRUE(thunk.ok());
  thunk.set(form.bytes);
  EmulatorSide emu(form);
  VectorOperands rng(formSeed(form.name));
  for (int n = 0; n < cases; ++n) {
    const VectorCase c = nextCase(rng, form.lane);
    const HostIo& in = c.in;
    HostIo host = in;
    const bool retired = thunk.run(host);
    const EmulatorSide::Result e = emu.run(c);
    const CpuState& s = e.state;
    uint64_t mem[2];
    std::memcpy(mem, in.mem, 16);
    char at[200];
    std::snprintf(at, sizeof at, "case %d: mxcsr %#x xmm0 %016llx:%016llx src %016llx:%016llx", n,
                  in.mxcsr, (unsigned long long)in.xmm0[1], (unsigned long long)in.xmm0[0],
                  (unsigned long long)(form.bytes.back() == 0x06 ? mem[1] : in.xmm1[1]),
                  (unsigned long long)(form.bytes.back() == 0x06 ? mem[0] : in.xmm1[0]));
    ASSERT_EQ(s.fpu.mxcsr, host.mxcsr) << "MXCSR, " << at;
    if (retired) {
      ++stats.retired;
      ASSERT_EQ(e.step.outcome, StepOutcome::kRetired)
          << "vector " << int(e.step.vector) << " " << at << " " << emu.lastUnimplemented();
      ASSERT_EQ(s.rip, emu.endRip());
    } else {
      ++stats.trapped;
      ASSERT_EQ(e.step.outcome, StepOutcome::kException) << at;
      ASSERT_EQ(int(e.step.vector), c.osxmmexcpt ? 19 : 6) << at;
    }
    ASSERT_EQ(s.fpu.xmm[0], (Vec128{{host.xmm0[0], host.xmm0[1]}})) << "xmm0, " << at;
    ASSERT_EQ(s.fpu.xmm[1], (Vec128{{host.xmm1[0], host.xmm1[1]}})) << "xmm1, " << at;
    ASSERT_EQ(s.fpu.st[0].significand, host.mm0) << "mm0, " << at;
    ASSERT_EQ(s.fpu.st[1].significand, host.mm1) << "mm1, " << at;
    ASSERT_EQ(s.reg(Gpr::kRax), host.rax) << "rax, " << at;
    uint64_t hlo, hhi;
    std::memcpy(&hlo, host.mem, 8);
    std::memcpy(&hhi, host.mem + 8, 8);
    ASSERT_EQ(e.mem[0], hlo) << "mem[0..8), " << at;
    ASSERT_EQ(e.mem[1], hhi) << "mem[8..16), " << at;
    if (form.setsFlags && retired) {
      ASSERT_EQ(s.rflags & flags::kArith, host.rflags & flags::kArith) << "RFLAGS, " << at;
    }
  }
}

uint64_t emulatorDigest(const VectorForm& form, int cases) {
  EmulatorSide emu(form);
  VectorOperands rng(formSeed(form.name));
  uint64_t h = 0xCBF29CE484222325ull;
  auto mix = [&h](uint64_t v) {
    for (int k = 0; k < 8; ++k) h = (h ^ ((v >> (8 * k)) & 0xFF)) * 0x100000001B3ull;
  };
  for (int n = 0; n < cases; ++n) {
    const EmulatorSide::Result e = emu.run(nextCase(rng, form.lane));
    const CpuState& s = e.state;
    mix(uint64_t(e.step.outcome) << 8 | e.step.vector);
    for (int k = 0; k < 2; ++k) mix(s.fpu.xmm[k].q[0]), mix(s.fpu.xmm[k].q[1]);
    mix(s.fpu.st[0].significand);
    mix(s.fpu.st[1].significand);
    mix(s.reg(Gpr::kRax));
    mix(s.fpu.mxcsr);
    mix(s.rflags & flags::kArith);
    mix(e.mem[0]);
    mix(e.mem[1]);
  }
  return h;
}

}  // namespace ttvm::cputest
