// The SSE/SSE2 floating-point handlers (fpu/sse_arith.cc, fpu/sse_convert.cc)
// against the HOST CPU: each form runs natively (its bytes between a load and
// a store of MXCSR, XMM0, XMM1, RAX, MM0, MM1 and a 16-byte operand at [RSI])
// and in the emulator, on operands drawn from the special classes (signed
// zeros, denormals, the smallest and largest normals, infinities, quiet and
// signalling NaNs, values at the integer-conversion limits, random bits), with
// random rounding modes, DAZ, FTZ, exception masks and sticky flags. The
// destination, the other registers, the memory, MXCSR and (for COMIS) the
// arithmetic flags must agree bit for bit.
//
// Unmasked exceptions: the native run traps (SIGFPE); the signal frame's
// MXCSR is the host's answer and nothing was written. The emulator must then
// deliver #XM (CR4.OSXMMEXCPT) or #UD, with the same MXCSR and every register
// and the memory unchanged.
//
// TTVM_SSE_FP_CASES sets the cases per form (default 400; the `exhaustive`
// CTest label runs 40000).
#include <gtest/gtest.h>
#include <signal.h>
#include <ucontext.h>

#include <bit>
#include <csetjmp>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cpu_harness.h"
#include "fpu/sse_approx.h"
#include "host_thunk_support.h"

namespace ttvm::cputest {
namespace {

int casesPerForm() {
  if (const char* v = std::getenv("TTVM_SSE_FP_CASES")) return std::max(1, std::atoi(v));
  return 400;
}

// Lane kinds of a form's operands, for the operand generator.
enum class Lane : uint8_t { kSingle, kDouble };

struct Form {
  std::string name;
  std::vector<uint8_t> bytes;  // uses only XMM0, XMM1, RAX, MM0, MM1 and [RSI]
  Lane lane;
  bool setsFlags = false;  // COMIS/UCOMIS: compare RFLAGS' arithmetic flags
};

std::vector<Form> forms() {
  std::vector<Form> f;
  auto add = [&](std::string name, std::vector<uint8_t> bytes, Lane lane, bool flags = false) {
    f.push_back({std::move(name), std::move(bytes), lane, flags});
  };
  struct Prefix {
    const char* suffix;
    std::vector<uint8_t> bytes;
    Lane lane;
  };
  const Prefix ps{"ps", {}, Lane::kSingle}, pd{"pd", {0x66}, Lane::kDouble},
      ss{"ss", {0xF3}, Lane::kSingle}, sd{"sd", {0xF2}, Lane::kDouble};
  auto withPrefix = [](const Prefix& p, std::initializer_list<uint8_t> rest) {
    std::vector<uint8_t> b = p.bytes;
    b.insert(b.end(), rest);
    return b;
  };
  struct Op {
    const char* name;
    uint8_t opcode;
  };
  for (const Op& o : {Op{"add", 0x58}, Op{"mul", 0x59}, Op{"sub", 0x5C}, Op{"min", 0x5D},
                      Op{"div", 0x5E}, Op{"max", 0x5F}, Op{"sqrt", 0x51}}) {
    for (const Prefix& p : {ps, pd, ss, sd}) {
      const std::string n = std::string(o.name) + p.suffix;
      add(n + " xmm0, xmm1", withPrefix(p, {0x0F, o.opcode, 0xC1}), p.lane);
      add(n + " xmm0, [rsi]", withPrefix(p, {0x0F, o.opcode, 0x06}), p.lane);
    }
  }
  for (const Prefix& p : {ps, pd, ss, sd}) {
    for (uint8_t imm = 0; imm < 8; ++imm) {
      const std::string n = std::string("cmp") + p.suffix + " xmm0, ";
      add(n + "xmm1, " + std::to_string(imm), withPrefix(p, {0x0F, 0xC2, 0xC1, imm}), p.lane);
      add(n + "[rsi], " + std::to_string(imm), withPrefix(p, {0x0F, 0xC2, 0x06, imm}), p.lane);
    }
  }
  add("comiss xmm0, xmm1", {0x0F, 0x2F, 0xC1}, Lane::kSingle, true);
  add("comiss xmm0, [rsi]", {0x0F, 0x2F, 0x06}, Lane::kSingle, true);
  add("ucomiss xmm0, xmm1", {0x0F, 0x2E, 0xC1}, Lane::kSingle, true);
  add("comisd xmm0, xmm1", {0x66, 0x0F, 0x2F, 0xC1}, Lane::kDouble, true);
  add("ucomisd xmm0, xmm1", {0x66, 0x0F, 0x2E, 0xC1}, Lane::kDouble, true);
  add("ucomisd xmm0, [rsi]", {0x66, 0x0F, 0x2E, 0x06}, Lane::kDouble, true);
  // Conversions between single and double.
  add("cvtss2sd xmm0, xmm1", {0xF3, 0x0F, 0x5A, 0xC1}, Lane::kSingle);
  add("cvtss2sd xmm0, [rsi]", {0xF3, 0x0F, 0x5A, 0x06}, Lane::kSingle);
  add("cvtsd2ss xmm0, xmm1", {0xF2, 0x0F, 0x5A, 0xC1}, Lane::kDouble);
  add("cvtsd2ss xmm0, [rsi]", {0xF2, 0x0F, 0x5A, 0x06}, Lane::kDouble);
  add("cvtps2pd xmm0, xmm1", {0x0F, 0x5A, 0xC1}, Lane::kSingle);
  add("cvtps2pd xmm0, [rsi]", {0x0F, 0x5A, 0x06}, Lane::kSingle);
  add("cvtpd2ps xmm0, xmm1", {0x66, 0x0F, 0x5A, 0xC1}, Lane::kDouble);
  add("cvtpd2ps xmm0, [rsi]", {0x66, 0x0F, 0x5A, 0x06}, Lane::kDouble);
  // Integer <-> floating point.
  add("cvtdq2ps xmm0, xmm1", {0x0F, 0x5B, 0xC1}, Lane::kSingle);
  add("cvtps2dq xmm0, xmm1", {0x66, 0x0F, 0x5B, 0xC1}, Lane::kSingle);
  add("cvtps2dq xmm0, [rsi]", {0x66, 0x0F, 0x5B, 0x06}, Lane::kSingle);
  add("cvttps2dq xmm0, xmm1", {0xF3, 0x0F, 0x5B, 0xC1}, Lane::kSingle);
  add("cvtdq2pd xmm0, xmm1", {0xF3, 0x0F, 0xE6, 0xC1}, Lane::kSingle);
  add("cvtdq2pd xmm0, [rsi]", {0xF3, 0x0F, 0xE6, 0x06}, Lane::kSingle);
  add("cvtpd2dq xmm0, xmm1", {0xF2, 0x0F, 0xE6, 0xC1}, Lane::kDouble);
  add("cvttpd2dq xmm0, xmm1", {0x66, 0x0F, 0xE6, 0xC1}, Lane::kDouble);
  add("cvttpd2dq xmm0, [rsi]", {0x66, 0x0F, 0xE6, 0x06}, Lane::kDouble);
  add("cvtsi2ss xmm0, eax", {0xF3, 0x0F, 0x2A, 0xC0}, Lane::kSingle);
  add("cvtsi2ss xmm0, rax", {0xF3, 0x48, 0x0F, 0x2A, 0xC0}, Lane::kDouble);
  add("cvtsi2ss xmm0, [rsi]", {0xF3, 0x0F, 0x2A, 0x06}, Lane::kSingle);
  add("cvtsi2sd xmm0, eax", {0xF2, 0x0F, 0x2A, 0xC0}, Lane::kSingle);
  add("cvtsi2sd xmm0, rax", {0xF2, 0x48, 0x0F, 0x2A, 0xC0}, Lane::kDouble);
  add("cvtsi2sd xmm0, qword [rsi]", {0xF2, 0x48, 0x0F, 0x2A, 0x06}, Lane::kDouble);
  for (const Prefix& p : {ss, sd}) {
    const std::string s = std::string(p.suffix) + "2si ";
    add("cvtt" + s + "eax, xmm1", withPrefix(p, {0x0F, 0x2C, 0xC1}), p.lane);
    add("cvtt" + s + "rax, xmm1", withPrefix(p, {0x48, 0x0F, 0x2C, 0xC1}), p.lane);
    add("cvtt" + s + "eax, [rsi]", withPrefix(p, {0x0F, 0x2C, 0x06}), p.lane);
    add("cvt" + s + "eax, xmm1", withPrefix(p, {0x0F, 0x2D, 0xC1}), p.lane);
    add("cvt" + s + "rax, xmm1", withPrefix(p, {0x48, 0x0F, 0x2D, 0xC1}), p.lane);
    add("cvt" + s + "rax, [rsi]", withPrefix(p, {0x48, 0x0F, 0x2D, 0x06}), p.lane);
  }
  // The MMX conversions.
  add("cvtpi2ps xmm0, mm1", {0x0F, 0x2A, 0xC1}, Lane::kSingle);
  add("cvtpi2ps xmm0, [rsi]", {0x0F, 0x2A, 0x06}, Lane::kSingle);
  add("cvtpi2pd xmm0, mm1", {0x66, 0x0F, 0x2A, 0xC1}, Lane::kSingle);
  add("cvtps2pi mm0, xmm1", {0x0F, 0x2D, 0xC1}, Lane::kSingle);
  add("cvttps2pi mm0, [rsi]", {0x0F, 0x2C, 0x06}, Lane::kSingle);
  add("cvtpd2pi mm0, xmm1", {0x66, 0x0F, 0x2D, 0xC1}, Lane::kDouble);
  add("cvttpd2pi mm0, [rsi]", {0x66, 0x0F, 0x2C, 0x06}, Lane::kDouble);
  // Unpacks (no exceptions, but floating-point lanes).
  add("unpcklps xmm0, xmm1", {0x0F, 0x14, 0xC1}, Lane::kSingle);
  add("unpckhps xmm0, [rsi]", {0x0F, 0x15, 0x06}, Lane::kSingle);
  add("unpcklpd xmm0, [rsi]", {0x66, 0x0F, 0x14, 0x06}, Lane::kDouble);
  add("unpckhpd xmm0, xmm1", {0x66, 0x0F, 0x15, 0xC1}, Lane::kDouble);
  return f;
}

// The native side. Offsets are used by the thunk's hand-written code.
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

class Rng : public SplitMix64 {
 public:
  using SplitMix64::SplitMix64;
  uint64_t below(uint64_t n) { return next() % n; }

  // One floating-point value of the given width (bits) from a special class.
  template <class T>
  T special() {
    constexpr bool kSingle = sizeof(T) == 4;
    constexpr int kMantBits = kSingle ? 23 : 52;
    constexpr int kExpBits = kSingle ? 8 : 11;
    constexpr T kExpMax = (T(1) << kExpBits) - 1;
    constexpr int kBias = kSingle ? 127 : 1023;
    const T sign = T(next() & 1) << (kMantBits + kExpBits);
    const T mant = T(next()) & ((T(1) << kMantBits) - 1);
    auto make = [&](T exp, T m) { return T(sign | (exp << kMantBits) | m); };
    switch (below(16)) {
      case 0: return sign;                                // +-0
      case 1: return make(0, mant | 1);                   // denormal
      case 2: return make(0, below(2) ? 1 : mant >> 20);  // tiny denormal
      case 3: return make(1, below(2) ? 0 : mant);        // smallest normals
      case 4: return make(kExpMax - 1, below(2) ? ~T(0) >> (kExpBits + 1) : mant);  // largest
      case 5: return make(kExpMax, 0);                                              // +-inf
      case 6: return make(kExpMax, mant | (T(1) << (kMantBits - 1)));               // QNaN
      case 7: return make(kExpMax, (mant & ~(T(1) << (kMantBits - 1))) | 1);        // SNaN
      case 8: {  // near the integer-conversion limits (2^31, 2^63) and small integers
        const int e = below(3) == 0 ? 31 : below(2) ? 63 : int(below(24));
        return make(T(kBias + e - (below(2) ? 1 : 0)), below(2) ? mant & 0xF : mant);
      }
      case 9: return make(T(kBias + int(below(8)) - 4), mant);  // around 1
      case 10:  // exponents near the bottom (underflow of products/quotients)
        return make(T(below(40) + 1), mant);
      case 11:  // exponents near the top (overflow)
        return make(kExpMax - 1 - T(below(40)), mant);
      case 12:  // doubles that round to the edges of single precision
        if constexpr (!kSingle) {
          return make(T(kBias + (below(2) ? 127 : -126 - int(below(24)))), mant);
        }
        return make(T(below(kExpMax)), mant);
      case 13: return T(int64_t(int32_t(next() >> 40)));  // small integers (as bits)
      default: return make(T(below(kExpMax + 1)), mant);  // any bits
    }
  }
  template <class T>
  void fill(uint8_t* p, size_t bytes) {
    for (size_t k = 0; k < bytes; k += sizeof(T)) {
      const T v = special<T>();
      std::memcpy(p + k, &v, sizeof(T));
    }
  }
  void fillLanes(Lane lane, uint8_t* p, size_t bytes) {
    if (lane == Lane::kSingle) {
      fill<uint32_t>(p, bytes);
    } else {
      fill<uint64_t>(p, bytes);
    }
  }
  // Rounding control, DAZ, FTZ and sticky flags random; exceptions masked in
  // three cases of four, else a random mask set.
  uint32_t mxcsr() {
    uint32_t m = uint32_t(below(4)) << 13;
    if (below(2)) m |= 1u << 6;   // DAZ
    if (below(2)) m |= 1u << 15;  // FTZ
    if (below(4) == 0) m |= uint32_t(next()) & 0x3F;
    m |= below(4) ? 0x1F80u : (uint32_t(next()) & 0x1F80u);
    return m;
  }
};

constexpr uint64_t kFaultHandler = layout::kCode + 0x8000;

struct Stats {
  int retired = 0;
  int trapped = 0;
};

// Runs `cases` random cases of one form on the host and the emulator.
void checkForm(const Form& form, int cases, Stats& stats) {
  HostThunk thunk;
  ASSERT_TRUE(thunk.ok());
  thunk.set(form.bytes);
  Machine m;
  const uint64_t code = codeAddress(CpuMode::kLong64);
  m.setupLong64(code);
  m.load(code, form.bytes);
  m.loadHex(kFaultHandler, "f4");
  m.setAllIdt64(kFaultHandler);
  Rng rng(std::hash<std::string>{}(form.name));
  for (int n = 0; n < cases; ++n) {
    HostIo in{};
    rng.fillLanes(form.lane, reinterpret_cast<uint8_t*>(in.xmm0), 16);
    rng.fillLanes(form.lane, reinterpret_cast<uint8_t*>(in.xmm1), 16);
    rng.fillLanes(form.lane, in.mem, 16);
    rng.fillLanes(form.lane, reinterpret_cast<uint8_t*>(&in.rax), 8);
    rng.fillLanes(form.lane, reinterpret_cast<uint8_t*>(&in.mm0), 8);
    rng.fillLanes(form.lane, reinterpret_cast<uint8_t*>(&in.mm1), 8);
    in.mxcsr = rng.mxcsr();
    const bool osxmmexcpt = rng.below(2);
    HostIo host = in;
    const bool retired = thunk.run(host);

    m.edit([&](CpuState& s) {
      s.rip = code;
      s.fpu.xmm[0] = Vec128{{in.xmm0[0], in.xmm0[1]}};
      s.fpu.xmm[1] = Vec128{{in.xmm1[0], in.xmm1[1]}};
      s.fpu.st[0] = Float80{in.mm0, 0};
      s.fpu.st[1] = Float80{in.mm1, 0};
      s.fpu.mxcsr = in.mxcsr;
      s.reg(Gpr::kRax) = in.rax;
      s.reg(Gpr::kRsi) = layout::kData;
      s.reg(Gpr::kRsp) = layout::kStackTop;
      s.rflags = 0x2;
      s.cr4 = osxmmexcpt ? (s.cr4 | cr4::kOSXMMEXCPT) : (s.cr4 & ~cr4::kOSXMMEXCPT);
    });
    for (int k = 0; k < 16; k += 8) {
      uint64_t v;
      std::memcpy(&v, in.mem + k, 8);
      m.put(layout::kData + k, v, 8);
    }
    const StepResult r = m.step();
    const CpuState s = m.state();
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
      ASSERT_EQ(r.outcome, StepOutcome::kRetired)
          << "vector " << int(r.vector) << " " << at << " "
          << (m.cpu->unimplementedLog().empty() ? "" : m.cpu->unimplementedLog().back());
      ASSERT_EQ(s.rip, code + form.bytes.size());
    } else {
      ++stats.trapped;
      ASSERT_EQ(r.outcome, StepOutcome::kException) << at;
      ASSERT_EQ(int(r.vector), osxmmexcpt ? 19 : 6) << at;
    }
    ASSERT_EQ(s.fpu.xmm[0], (Vec128{{host.xmm0[0], host.xmm0[1]}})) << "xmm0, " << at;
    ASSERT_EQ(s.fpu.xmm[1], (Vec128{{host.xmm1[0], host.xmm1[1]}})) << "xmm1, " << at;
    ASSERT_EQ(s.fpu.st[0].significand, host.mm0) << "mm0, " << at;
    ASSERT_EQ(s.fpu.st[1].significand, host.mm1) << "mm1, " << at;
    ASSERT_EQ(s.reg(Gpr::kRax), host.rax) << "rax, " << at;
    uint64_t hlo, hhi;
    std::memcpy(&hlo, host.mem, 8);
    std::memcpy(&hhi, host.mem + 8, 8);
    ASSERT_EQ(m.get(layout::kData, 8), hlo) << "mem[0..8), " << at;
    ASSERT_EQ(m.get(layout::kData + 8, 8), hhi) << "mem[8..16), " << at;
    if (form.setsFlags && retired) {
      ASSERT_EQ(s.rflags & flags::kArith, host.rflags & flags::kArith) << "RFLAGS, " << at;
    }
  }
}

TEST(SseFpHost, EveryFormMatchesHost) {
  Stats stats;
  const int cases = casesPerForm();
  int formsChecked = 0;
  for (const Form& form : forms()) {
    SCOPED_TRACE(form.name);
    checkForm(form, cases, stats);
    if (HasFatalFailure()) return;
    ++formsChecked;
  }
  std::printf("[sse-fp] %d forms x %d cases match the host (%d retired, %d unmasked traps)\n",
              formsChecked, cases, stats.retired, stats.trapped);
  // The generator must reach both outcomes, or the test checks less than it says.
  EXPECT_GT(stats.trapped, formsChecked);
  EXPECT_GT(stats.retired, stats.trapped);
}

// RCPPS/RCPSS/RSQRTPS/RSQRTSS: ttvm's own approximation (fpu/sse_approx.h).
// Special operands must give the host's exact bits; other results must lie
// within the architectural bound (1.5 * 2^-12 relative) of the exact value,
// as the host's do, and so within 3 * 2^-12 of the host's.
uint32_t hostApprox(bool sqrt, uint32_t x) {
  float v = std::bit_cast<float>(x);
  if (sqrt) {
    asm("rsqrtss %1, %0" : "=x"(v) : "x"(v));
  } else {
    asm("rcpss %1, %0" : "=x"(v) : "x"(v));
  }
  return std::bit_cast<uint32_t>(v);
}

TEST(SseFpHost, ReciprocalApproximations) {
  Rng rng(11);
  int special = 0, approximated = 0;
  for (int n = 0; n < 200'000; ++n) {
    const uint32_t x = rng.special<uint32_t>();
    for (bool sqrt : {false, true}) {
      const uint32_t ours = sqrt ? sse::reciprocalSqrt(x) : sse::reciprocal(x);
      const uint32_t theirs = hostApprox(sqrt, x);
      const uint32_t mag = x & 0x7FFFFFFF;
      const bool isSpecial = mag >= 0x7F800000 || mag < 0x00800000 || (sqrt && (x >> 31));
      // RCP's tiny region, where implementations may or may not flush.
      const bool tinyBand = !sqrt && mag >= 0x7E000000;
      if (isSpecial) {
        ++special;
        ASSERT_EQ(ours, theirs) << std::hex << "x=" << x << " sqrt=" << sqrt;
        continue;
      }
      if (tinyBand) continue;
      ++approximated;
      const double exact = sqrt ? 1.0 / std::sqrt(double(std::bit_cast<float>(x)))
                                : 1.0 / double(std::bit_cast<float>(x));
      const double o = std::bit_cast<float>(ours), t = std::bit_cast<float>(theirs);
      ASSERT_LE(std::fabs(o - exact), std::fabs(exact) * 0x1p-12) << std::hex << "x=" << x;
      ASSERT_LE(std::fabs(o - t), std::fabs(exact) * 3 * 0x1p-12) << std::hex << "x=" << x;
    }
  }
  EXPECT_GT(special, 10'000);
  EXPECT_GT(approximated, 100'000);
}

// The method's own bits (docs/emulator.md), the same on every host.
TEST(SseApprox, DocumentedBits) {
  EXPECT_EQ(sse::reciprocal(0x3F800000u), 0x3F800000u);      // 1 -> 1
  EXPECT_EQ(sse::reciprocal(0x40400000u), 0x3EAAB000u);      // 3 -> 1.01010101011b * 2^-2
  EXPECT_EQ(sse::reciprocal(0xC0400000u), 0xBEAAB000u);      // -3
  EXPECT_EQ(sse::reciprocal(0x7F000000u), 0x00000000u);      // 2^127 -> tiny, flushed
  EXPECT_EQ(sse::reciprocal(0x80000001u), 0xFF800000u);      // -denormal -> -inf
  EXPECT_EQ(sse::reciprocal(0x7F800001u), 0x7FC00001u);      // SNaN quieted
  EXPECT_EQ(sse::reciprocalSqrt(0x40800000u), 0x3F000000u);  // 4 -> 0.5
  EXPECT_EQ(sse::reciprocalSqrt(0x40000000u), 0x3F350000u);  // 2 -> 1.01101010000b * 2^-1
  EXPECT_EQ(sse::reciprocalSqrt(0xBF800000u), 0xFFC00000u);  // -1 -> indefinite
  EXPECT_EQ(sse::reciprocalSqrt(0x80000000u), 0xFF800000u);  // -0 -> -inf
  EXPECT_EQ(sse::reciprocalSqrt(0x7F800000u), 0x00000000u);  // +inf -> +0
}

}  // namespace
}  // namespace ttvm::cputest
