// The pure 80-bit functions of emulator/src/fpu/f80.{h,cc}: classification,
// FXAM codes and tags, the constants (against the host's FLDPI..FLDLN2 in
// every rounding mode), the binary128 -> 80-bit rounding, and hostExec on
// values whose results are known.
#include "fpu/f80.h"

#include <gtest/gtest.h>

namespace ttvm::fpu::f80 {
namespace {

constexpr uint64_t kJ = 1ull << 63;

struct ClassCase {
  Float80 v;
  Class cls;
  uint16_t fxam;  // C3 C2 C0
  unsigned tag;
};

TEST(F80, ClassifyFxamAndTag) {
  const ClassCase cases[] = {
      {{0, 0x0000}, Class::kZero, fsw::kC3, 1},
      {{0, 0x8000}, Class::kZero, fsw::kC3, 1},
      {{1, 0x0000}, Class::kDenormal, fsw::kC3 | fsw::kC2, 2},
      {{kJ | 5, 0x0000}, Class::kDenormal, fsw::kC3 | fsw::kC2, 2},  // pseudo-denormal
      {{kJ, 0x3FFF}, Class::kNormal, fsw::kC2, 0},
      {{0x4000000000000000ull, 0x3FFF}, Class::kUnsupported, 0, 2},  // unnormal
      {{kJ, 0x7FFF}, Class::kInfinity, fsw::kC2 | fsw::kC0, 2},
      {{0, 0x7FFF}, Class::kUnsupported, 0, 2},                      // pseudo-infinity
      {{kJ | 1, 0x7FFF}, Class::kNan, fsw::kC0, 2},                  // SNaN
      {{0xC000000000000000ull, 0xFFFF}, Class::kNan, fsw::kC0, 2},   // indefinite
      {{0x4000000000000000ull, 0x7FFF}, Class::kUnsupported, 0, 2},  // pseudo-NaN
  };
  for (const ClassCase& c : cases) {
    SCOPED_TRACE(testing::Message() << std::hex << c.v.signExponent << " " << c.v.significand);
    EXPECT_EQ(classify(c.v), c.cls);
    EXPECT_EQ(fxamConditions(c.v, false), c.fxam);
    EXPECT_EQ(fullTag(c.v, false), c.tag);
    EXPECT_EQ(fxamConditions(c.v, true), fsw::kC3 | fsw::kC0);
    EXPECT_EQ(fullTag(c.v, true), 3u);
  }
  EXPECT_TRUE(isSignalingNan({kJ | 1, 0x7FFF}));
  EXPECT_FALSE(isSignalingNan(kIndefinite));
}

// The host's constant for D9 E8+k under rounding control rc.
Float80 hostConstant(unsigned k, unsigned rc) {
  const uint16_t cw = uint16_t(0x037F | rc << 10);
  Float80 v;
  uint16_t saved;
  asm volatile("fnstcw %[saved]\n\tfldcw %[cw]\n\t" : [saved] "=m"(saved) : [cw] "m"(cw));
  switch (k) {
    case 0: asm volatile("fld1\n\tfstpt %0" : "=m"(v)); break;
    case 1: asm volatile("fldl2t\n\tfstpt %0" : "=m"(v)); break;
    case 2: asm volatile("fldl2e\n\tfstpt %0" : "=m"(v)); break;
    case 3: asm volatile("fldpi\n\tfstpt %0" : "=m"(v)); break;
    case 4: asm volatile("fldlg2\n\tfstpt %0" : "=m"(v)); break;
    case 5: asm volatile("fldln2\n\tfstpt %0" : "=m"(v)); break;
    default: asm volatile("fldz\n\tfstpt %0" : "=m"(v)); break;
  }
  asm volatile("fldcw %0" : : "m"(saved));
  return v;
}

TEST(F80, ConstantsMatchTheHostInEveryRoundingMode) {
  for (unsigned k = 0; k < 7; ++k)
    for (unsigned rc = 0; rc < 4; ++rc) {
      const Float80 mine = loadConstant(Constant(k), fcw::Rounding(rc));
      const Float80 host = hostConstant(k, rc);
      EXPECT_EQ(mine, host) << "constant " << k << " rc " << rc << std::hex << ": "
                            << mine.significand << " vs " << host.significand;
    }
  // The documented values (SDM vol. 1 8.3.8): pi to nearest and down.
  EXPECT_EQ(loadConstant(Constant::kPi, fcw::Rounding::kNearest).significand,
            0xC90FDAA22168C235ull);
  EXPECT_EQ(loadConstant(Constant::kPi, fcw::Rounding::kDown).significand, 0xC90FDAA22168C234ull);
}

struct RoundCase {
  bool neg;
  uint32_t exp;
  uint64_t hi, lo;  // 113-bit significand: integer bit at hi bit 48
  fcw::Rounding rc;
  Float80 value;
  uint16_t flags;
};

TEST(F80, RoundQuadBits) {
  using R = fcw::Rounding;
  const uint64_t one = 1ull << 48;
  const uint64_t half = 1ull << 48;  // lo bit 48: the first discarded bit
  const RoundCase cases[] = {
      // Exact: 1.0.
      {false, 0x3FFF, one, 0, R::kNearest, {kJ, 0x3FFF}, 0},
      // A tie rounds to even (down from even, up from odd).
      {false, 0x3FFF, one, half, R::kNearest, {kJ, 0x3FFF}, fsw::kPE},
      {false, 0x3FFF, one, half | (1ull << 49), R::kNearest, {kJ | 2, 0x3FFF}, fsw::kPE | fsw::kC1},
      // Directed: up and down on a negative value.
      {true, 0x3FFF, one, 1, R::kDown, {kJ | 1, 0xBFFF}, fsw::kPE | fsw::kC1},
      {true, 0x3FFF, one, 1, R::kUp, {kJ, 0xBFFF}, fsw::kPE},
      {false, 0x3FFF, one, 1, R::kZero, {kJ, 0x3FFF}, fsw::kPE},
      // Carry out of the significand: the next binade.
      {false, 0x3FFF, (1ull << 49) - 1, ~0ull, R::kUp, {kJ, 0x4000}, fsw::kPE | fsw::kC1},
      // A denormal that rounds up to the smallest normal.
      {false, 0, one - 1, ~0ull, R::kUp, {kJ, 0x0001}, fsw::kPE | fsw::kC1 | fsw::kUE},
      // A tiny inexact result: UE with PE.
      {false, 0, 1, 1, R::kNearest, {1ull << 15, 0}, fsw::kPE | fsw::kUE},
      // Overflow: infinity to nearest, the largest finite toward zero.
      {false, 0x7FFF, one, 0, R::kNearest, {kJ, 0x7FFF}, fsw::kOE | fsw::kPE | fsw::kC1},
      {false, 0x7FFE, (1ull << 49) - 1, ~0ull, R::kZero, {~0ull, 0x7FFE}, fsw::kPE},
      {true, 0x7FFF, one, 0, R::kUp, {~0ull, 0xFFFE}, fsw::kOE | fsw::kPE},
  };
  int n = 0;
  for (const RoundCase& c : cases) {
    SCOPED_TRACE(n++);
    const Rounded r = roundQuadBits(c.neg, c.exp, c.hi, c.lo, c.rc);
    EXPECT_EQ(r.value, c.value) << std::hex << r.value.signExponent << " " << r.value.significand;
    EXPECT_EQ(r.flags, c.flags) << std::hex << r.flags;
  }
}

TEST(F80, HostExecKnownResults) {
  // 1 + 1 = 2, exact.
  HostIo io;
  io.st0 = {kJ, 0x3FFF};
  io.st1 = {kJ, 0x3FFF};
  hostExec(HostOp::kFadd, io);
  EXPECT_EQ(io.st0, (Float80{kJ, 0x4000}));
  EXPECT_EQ(io.fsw & fsw::kExceptions, 0);
  // 1 / 3 with 24-bit precision, to nearest: 0xAAAAAB << 40, PE and C1 (up).
  io = HostIo{};
  io.fcw = 0x007F;
  io.st0 = {kJ, 0x3FFF};
  io.st1 = {0xC000000000000000ull, 0x4000};
  hostExec(HostOp::kFdiv, io);
  EXPECT_EQ(io.st0, (Float80{0xAAAAAB0000000000ull, 0x3FFD}));
  EXPECT_EQ(io.fsw & (fsw::kExceptions | fsw::kC1), fsw::kPE | fsw::kC1);
  // 1 / 0: ZE, +infinity.
  io = HostIo{};
  io.st0 = {kJ, 0x3FFF};
  io.st1 = {0, 0};
  hostExec(HostOp::kFdiv, io);
  EXPECT_EQ(io.st0, (Float80{kJ, 0x7FFF}));
  EXPECT_EQ(io.fsw & fsw::kExceptions, fsw::kZE);
  // fistp m16 of 40000.0: out of range, IE and the integer indefinite.
  io = HostIo{};
  io.st0 = {0x9C40000000000000ull, 0x400E};
  hostExec(HostOp::kFistpM16, io);
  EXPECT_EQ(io.mem[0] | io.mem[1] << 8, 0x8000);
  EXPECT_EQ(io.fsw & fsw::kExceptions, fsw::kIE);
  // The guest's condition codes reach the host: FPREM of 7 by 2 gives Q=3
  // (C0=0? C3=1, C1=1) and C2=0; a compare keeps nothing of them.
  io = HostIo{};
  io.fsw = fsw::kC2;
  io.st0 = {0xE000000000000000ull, 0x4001};  // 7
  io.st1 = {kJ, 0x4000};                     // 2
  hostExec(HostOp::kFprem, io);
  EXPECT_EQ(io.st0, (Float80{kJ, 0x3FFF}));                   // 7 mod 2 = 1
  EXPECT_EQ(io.fsw & fsw::kConditions, fsw::kC3 | fsw::kC1);  // quotient 3: Q1 (C3), Q0 (C1)
}

TEST(F80, RemainderTable) {
  const Float80 seven{0xE000000000000000ull, 0x4001}, two{kJ, 0x4000}, one{kJ, 0x3FFF};
  // 7 = 3 * 2 + 1: Q = 3 (C3 = Q1, C1 = Q0).
  Remainder r = fprem(seven, two, false, 0, 0x037F);
  EXPECT_EQ(r.value, one);
  EXPECT_EQ(r.fsw, fsw::kC3 | fsw::kC1);
  // FPREM1: 7 = 4 * 2 - 1: Q = 4 (C0 = Q2), remainder -1.
  r = fprem(seven, two, true, 0, 0x037F);
  EXPECT_EQ(r.value, (Float80{kJ, 0xBFFF}));
  EXPECT_EQ(r.fsw, fsw::kC0);
  // 2^100 by 3: d = 99 >= 64, reduced by 32 + (99 mod 32) = 35 bits:
  // 2^98 mod 3 * 2^62 = 2^62 units of 2^2, so 2^64, incomplete (C2).
  const Float80 big{kJ, 0x3FFF + 100}, three{0xC000000000000000ull, 0x4000};
  r = fprem(big, three, false, fsw::kC0 | fsw::kC3, 0x037F);
  EXPECT_EQ(r.value, (Float80{kJ, 0x3FFF + 64}));
  EXPECT_EQ(r.fsw, fsw::kC2);
  // Invalid: an infinite dividend or a zero divisor; x comes back for y = inf.
  EXPECT_EQ(fprem({kJ, 0x7FFF}, two, false, 0, 0x037F).fsw & fsw::kIE, fsw::kIE);
  EXPECT_EQ(fprem(seven, {0, 0}, true, 0, 0x037F).value, kIndefinite);
  EXPECT_EQ(fprem(seven, {kJ, 0xFFFF}, false, 0, 0x037F).value, seven);
  // Of an SNaN and a QNaN the QNaN comes back, with IE.
  const Float80 snan{kJ | 5, 0x7FFF}, qnan{kJ | kQuietBit | 1, 0xFFFF};
  EXPECT_EQ(fprem(snan, qnan, false, 0, 0x037F).value, qnan);
  EXPECT_EQ(fprem(snan, qnan, false, 0, 0x037F).fsw & fsw::kIE, fsw::kIE);
  EXPECT_EQ(propagateNan(qnan, snan), qnan);
  EXPECT_EQ(propagateNan(snan, Float80{kJ | 7, 0x7FFF}), (Float80{kJ | kQuietBit | 7, 0x7FFF}));
}

// The software FPREM/FPREM1 against the host's over a sweep of exponent
// differences (each d mod 32 of the incomplete reductions, both signs).
TEST(F80, RemainderMatchesHostOverExponentDifferences) {
  uint64_t seed = 0x1234567;
  auto next = [&] {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return seed;
  };
  for (int d = -3; d < 200; ++d)
    for (int k = 0; k < 20; ++k)
      for (bool ieee : {false, true}) {
        const Float80 y{next() | kJ, uint16_t(0x3FFF + int(next() % 64) - 32)};
        const Float80 x{next() | kJ, uint16_t((y.signExponent + d) | ((next() & 1) ? 0x8000 : 0))};
        HostIo io;
        io.st0 = x;
        io.st1 = y;
        hostExec(ieee ? HostOp::kFprem1 : HostOp::kFprem, io);
        const Remainder r = fprem(x, y, ieee, 0, 0x037F);
        ASSERT_EQ(r.value, io.st0) << "d " << d << " ieee " << ieee;
        ASSERT_EQ(r.fsw & (fsw::kConditions | fsw::kExceptions),
                  io.fsw & (fsw::kConditions | fsw::kExceptions))
            << "d " << d << " ieee " << ieee;
      }
}

}  // namespace
}  // namespace ttvm::fpu::f80
