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
// (The harness: vector_host_support.h.)
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
#include "vector_host_support.h"

namespace ttvm::cputest {
namespace {

int casesPerForm() {
  return caseCount("TTVM_SSE_FP_CASES", 400);
}

using Form = VectorForm;

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
TEST(SseFpHost, EveryFormMatchesHost) {
  VectorStats stats;
  const int cases = casesPerForm();
  int formsChecked = 0;
  for (const Form& form : forms()) {
    SCOPED_TRACE(form.name);
    checkVectorForm(form, cases, stats);
    if (HasFatalFailure()) return;
    ++formsChecked;
  }
  std::printf("[sse-fp] %d forms x %d cases match the host (%d retired, %d unmasked traps)\n",
              formsChecked, cases, stats.retired, stats.trapped);
  // The generator must reach both outcomes, or the test checks less than it says.
  EXPECT_GT(stats.trapped, formsChecked);
  EXPECT_GT(stats.retired, stats.trapped);
}

// The trace contract across hosts: a recording made on one CPU replays on
// any other, so the emulator's SSE results may not depend on the host it
// runs on. The digest of 100 cases of every form (results, MXCSR, RFLAGS,
// #XM/#UD outcome; no host involved) was computed on the Intel host these
// tests were written on; every other x86-64 host, AMD included, must compute
// the same. A deliberate change of the emulator's SSE semantics changes it:
// update kDigest then, after EveryFormMatchesHost passes.
TEST(SseFpDeterminism, SameResultsOnEveryHost) {
  constexpr uint64_t kDigest = 0xce4b49bc9023809cull;
  uint64_t h = 0;
  for (const Form& form : forms()) h = h * 0x100000001B3ull ^ emulatorDigest(form, 100);
  EXPECT_EQ(h, kDigest) << std::hex << "digest 0x" << h;
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
  VectorOperands rng(11);
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
