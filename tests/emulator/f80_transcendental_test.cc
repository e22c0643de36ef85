// The software transcendentals of emulator/src/fpu/f80_transcendental.cc on
// their special cases (SDM vol. 2 tables for FSIN..FYL2XP1), exact results,
// the out-of-range rule, the 66-bit reduction and the rounding control. The
// host comparison (x87_host_test.cc) covers random operands within 1 ulp.
#include "fpu/f80_transcendental.h"

#include <gtest/gtest.h>

namespace ttvm::fpu::f80 {
namespace {

constexpr uint64_t kJ = 1ull << 63;
constexpr uint16_t kNearest = 0x037F;
constexpr uint16_t kDownCw = 0x077F;
constexpr uint16_t kUpCw = 0x0B7F;

Float80 num(bool neg, uint16_t exp, uint64_t sig) {
  return make(neg, exp, sig);
}
const Float80 kZero = num(false, 0, 0);
const Float80 kNegZero = num(true, 0, 0);
const Float80 kOne = num(false, kBias, kJ);
const Float80 kNegOne = num(true, kBias, kJ);
const Float80 kInf = num(false, kExpMask, kJ);
const Float80 kNegInf = num(true, kExpMask, kJ);
const Float80 kSnan = num(false, kExpMask, kJ | 1);
const Float80 kQnan = num(false, kExpMask, kJ | kQuietBit | 1);

TEST(F80Transcendental, SpecialOperandsOfTheOneOperandFunctions) {
  for (auto fn : {fsin, fcos, fptan, f2xm1}) {
    EXPECT_EQ(fn(kSnan, kNearest).value, kQnan) << "SNaN is quieted";
    EXPECT_EQ(fn(kSnan, kNearest).flags, fsw::kIE);
    EXPECT_EQ(fn(kQnan, kNearest).flags, 0);
    const Float80 unnormal = num(false, 0x3FFF, 0x4000000000000000ull);
    EXPECT_EQ(fn(unnormal, kNearest).value, kIndefinite);
    EXPECT_EQ(fn(unnormal, kNearest).flags, fsw::kIE);
  }
  EXPECT_EQ(fsin(kNegZero, kNearest).value, kNegZero);
  EXPECT_EQ(fsin(kNegZero, kNearest).flags, 0);
  EXPECT_EQ(fcos(kNegZero, kNearest).value, kOne);
  EXPECT_EQ(fptan(kZero, kNearest).value, kZero);
  EXPECT_EQ(fsin(kInf, kNearest).value, kIndefinite);
  EXPECT_EQ(fcos(kNegInf, kNearest).flags, fsw::kIE);
  EXPECT_EQ(f2xm1(kNegInf, kNearest).value, kNegOne);
  EXPECT_EQ(f2xm1(kInf, kNearest).value, kInf);
  EXPECT_EQ(f2xm1(kNegZero, kNearest).value, kNegZero);
  // Denormal operand: DE, and sin(x) rounds to x.
  const Float80 den = num(false, 0, 0x0000000012345678ull);
  EXPECT_EQ(fsin(den, kNearest).value, den);
  EXPECT_EQ(fsin(den, kNearest).flags & fsw::kDE, fsw::kDE);
}

TEST(F80Transcendental, ExactResultsRaiseNoPrecisionException) {
  // 2^1 - 1 = 1, 2^-1 - 1 = -0.5.
  EXPECT_EQ(f2xm1(kOne, kNearest).value, kOne);
  EXPECT_EQ(f2xm1(kOne, kNearest).flags, 0);
  EXPECT_EQ(f2xm1(kNegOne, kNearest).value, num(true, kBias - 1, kJ));
  // 3 * log2(8) = 9.
  const Float80 three = num(false, kBias + 1, 0xC000000000000000ull);
  const Float80 eight = num(false, kBias + 3, kJ);
  EXPECT_EQ(fyl2x(three, eight, kNearest).value, num(false, kBias + 3, 0x9000000000000000ull));
  EXPECT_EQ(fyl2x(three, eight, kNearest).flags, 0);
}

TEST(F80Transcendental, OutOfRangeTrigonometry) {
  const Float80 big = num(false, kBias + 63, kJ);  // 2^63
  for (auto fn : {fsin, fcos, fsincos, fptan}) {
    EXPECT_TRUE(fn(big, kNearest).outOfRange);
    EXPECT_FALSE(fn(num(false, kBias + 62, ~0ull), kNearest).outOfRange);
  }
}

// The host's FSIN (the oracle for the reduction: within 1 ulp).
Float80 hostFsin(Float80 x) {
  asm volatile("fldt %0\n\tfsin\n\tfstpt %0" : "+m"(x));
  return x;
}

int64_t ulpsApart(const Float80& a, const Float80& b) {
  if (a.signExponent != b.signExponent) return a == b ? 0 : 1 << 30;
  const int64_t d = int64_t(a.significand - b.significand);
  return d < 0 ? -d : d;
}

TEST(F80Transcendental, ReductionUsesThe66BitPi) {
  // Near multiples of pi/2 and for large arguments the hardware's result
  // follows its 66-bit pi, not the true sine (for FLDPI's value the two
  // differ in most of their bits); the software result follows the host's.
  const Float80 args[] = {
      num(false, kBias + 1, 0xC90FDAA22168C235ull),   // fldpi (to nearest)
      num(false, kBias + 1, 0xC90FDAA22168C234ull),   // fldpi (down)
      num(false, kBias, 0xC90FDAA22168C235ull),       // pi/2
      num(false, kBias + 33, 0x9502F90000000000ull),  // 1e10
      num(true, kBias + 40, 0xE8D4A51000000000ull),   // -1e12
      num(false, kBias - 1, kJ),                      // 0.5
  };
  for (const Float80& x : args) {
    const Float80 mine = fsin(x, kNearest).value, host = hostFsin(x);
    EXPECT_LE(ulpsApart(mine, host), 1)
        << std::hex << x.signExponent << " " << x.significand << ": " << mine.signExponent << " "
        << mine.significand << " vs " << host.signExponent << " " << host.significand;
  }
}

TEST(F80Transcendental, RoundingControlDirectsTheLastBit) {
  const Float80 x = num(false, kBias - 1, 0xA000000000000000ull);  // 0.625
  const TranscendentalResult down = fcos(x, kDownCw), up = fcos(x, kUpCw);
  EXPECT_EQ(up.value.significand, down.value.significand + 1);
  EXPECT_EQ(up.flags & fsw::kC1, fsw::kC1);
  EXPECT_EQ(down.flags & fsw::kC1, 0);
  EXPECT_EQ(down.flags & fsw::kPE, fsw::kPE);
}

TEST(F80Transcendental, Fyl2xAndFpatanTables) {
  const Float80 two = num(false, kBias + 1, kJ);
  // log of a negative number, 0 * log2(0), inf * log2(1): invalid.
  EXPECT_EQ(fyl2x(kOne, kNegOne, kNearest).flags, fsw::kIE);
  EXPECT_EQ(fyl2x(kZero, kZero, kNearest).flags, fsw::kIE);
  EXPECT_EQ(fyl2x(kInf, kOne, kNearest).flags, fsw::kIE);
  // y * log2(+-0) with finite y != 0: ZE and -sign(y) infinity.
  EXPECT_EQ(fyl2x(two, kNegZero, kNearest).value, kNegInf);
  EXPECT_EQ(fyl2x(two, kNegZero, kNearest).flags, fsw::kZE);
  EXPECT_EQ(fyl2x(num(true, kBias, kJ), kZero, kNearest).value, kInf);
  // y * log2(1) = +-0 with the sign of y; log2(+inf) = +inf.
  EXPECT_EQ(fyl2x(num(true, kBias, kJ), kOne, kNearest).value, kNegZero);
  EXPECT_EQ(fyl2x(two, kInf, kNearest).value, kInf);
  // FYL2XP1: y * log2(1 + +-0) = +-0 with the product's sign.
  EXPECT_EQ(fyl2xp1(two, kNegZero, kNearest).value, kNegZero);
  // FPATAN: atan2 of zeros and infinities.
  EXPECT_EQ(fpatan(kZero, kOne, kNearest).value, kZero);
  EXPECT_EQ(fpatan(kNegZero, kOne, kNearest).value, kNegZero);
  const Float80 pi = num(false, kBias + 1, 0xC90FDAA22168C235ull);
  EXPECT_EQ(fpatan(kZero, kNegOne, kNearest).value, pi);
  EXPECT_EQ(fpatan(kOne, kZero, kNearest).value, num(false, kBias, 0xC90FDAA22168C235ull));
  EXPECT_EQ(fpatan(kInf, kInf, kNearest).value, num(false, kBias - 1, 0xC90FDAA22168C235ull));
  // Of an SNaN and a QNaN the QNaN is returned.
  const Float80 q2 = num(true, kExpMask, kJ | kQuietBit | 7);
  EXPECT_EQ(fpatan(num(false, kExpMask, kJ | 9), q2, kNearest).value, q2);
  EXPECT_EQ(fpatan(num(false, kExpMask, kJ | 9), q2, kNearest).flags, fsw::kIE);
}

}  // namespace
}  // namespace ttvm::fpu::f80
