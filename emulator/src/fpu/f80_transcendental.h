// The x87 transcendentals as pure functions, computed in software (binary128
// through libquadmath, never the host FPU) and rounded once to the 80-bit
// format with 64-bit precision and the rounding control (precision control
// does not apply to them, SDM vol. 1 8.1.5.2). Not a public interface.
//
// Argument reduction of FSIN/FCOS/FSINCOS/FPTAN is done exactly, in integer
// arithmetic, modulo the 66-bit approximation of pi/2 the x87 uses (SDM vol. 1
// 8.3.10), so results for large arguments follow the hardware rather than the
// true sine. |x| >= 2^63 is out of range: C2 = 1, the operand is unchanged.
//
// Each takes the whole control word: its rounding control, and the masks
// (an unmasked overflow or underflow gives the bias-adjusted result).
//
// Accuracy: the binary128 result is within a few ulps of 2^-112 of the exact
// value of the reduced function, so the final rounding is the correctly
// rounded 64-bit value except within ~2^-48 ulp of a rounding boundary. The
// hardware's own results are within 1 ulp (Intel: "accurate to 1 ulp" for
// FSIN..FYL2XP1), which is the tolerance the host comparison uses.
#pragma once

#include "fpu/f80.h"

namespace ttvm::fpu::f80 {

struct TranscendentalResult {
  Float80 value;       // ST0 (FSIN, FCOS, F2XM1), the new ST1 (FPATAN, FYL2X, FYL2XP1), tan (FPTAN)
  Float80 value2;      // FSINCOS: the sine (value is the cosine)
  uint16_t flags = 0;  // IE DE ZE OE UE PE, C1 = rounded up
  bool outOfRange = false;  // FSIN/FCOS/FSINCOS/FPTAN with |x| >= 2^63: C2 = 1, nothing stored
};

TranscendentalResult fsin(const Float80& x, uint16_t fcw);
TranscendentalResult fcos(const Float80& x, uint16_t fcw);
TranscendentalResult fsincos(const Float80& x, uint16_t fcw);
TranscendentalResult fptan(const Float80& x, uint16_t fcw);
TranscendentalResult f2xm1(const Float80& x, uint16_t fcw);
// FPATAN: atan(y / x) with the quadrant of (x, y); y = ST1, x = ST0.
TranscendentalResult fpatan(const Float80& y, const Float80& x, uint16_t fcw);
// FYL2X: y * log2(x); FYL2XP1: y * log2(x + 1). y = ST1, x = ST0.
TranscendentalResult fyl2x(const Float80& y, const Float80& x, uint16_t fcw);
TranscendentalResult fyl2xp1(const Float80& y, const Float80& x, uint16_t fcw);

}  // namespace ttvm::fpu::f80
