// RCPSS/RCPPS and RSQRTSS/RSQRTPS: approximations whose exact bits the
// architecture leaves to the implementation (SDM: relative error at most
// 1.5 * 2^-12). Intel and AMD parts return different bits, so ttvm never asks
// the host: it computes its own, the same on every host.
//
// ttvm's method (documented in docs/emulator.md): the exact value 1/x or
// 1/sqrt(x), computed in binary64 (one IEEE division, resp. an IEEE square
// root then a division, both correctly rounded, so bit-identical everywhere),
// then rounded to nearest-even at 12 significant bits (11 fraction bits). The
// relative error is at most 2^-12 (+2^-53 for the binary64 steps), inside the
// architectural bound. Special operands follow the hardware, which the host
// tests compare exactly:
//   - a denormal operand counts as zero (whatever MXCSR.DAZ says);
//   - RCP: +-0 -> +-inf, +-inf -> +-0, results below 2^-126 flush to +-0;
//   - RSQRT: +-0 -> +-inf, +inf -> +0, any other negative -> the QNaN
//     indefinite (0xFFC00000);
//   - a NaN comes back quieted (bit 22 set), payload and sign kept.
// Neither instruction reads or writes MXCSR.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace ttvm::sse {

namespace approx_detail {
// Rounds a positive normal binary64 to 12 significant bits, to nearest-even.
inline double roundTo12Bits(double v) {
  uint64_t b = std::bit_cast<uint64_t>(v);
  constexpr unsigned kDrop = 52 - 11;
  b += ((1ull << (kDrop - 1)) - 1) + ((b >> kDrop) & 1);
  b &= ~((1ull << kDrop) - 1);
  return std::bit_cast<double>(b);
}
inline bool isNan(uint32_t x) {
  return (x & 0x7FFFFFFFu) > 0x7F800000u;
}
// Zero or denormal: the instructions treat both as zero.
inline bool isZeroOrDenormal(uint32_t x) {
  return (x & 0x7F800000u) == 0;
}
inline constexpr uint32_t kSign = 0x80000000u;
inline constexpr uint32_t kInf = 0x7F800000u;
}  // namespace approx_detail

// RCPSS/RCPPS on one single-precision lane.
inline uint32_t reciprocal(uint32_t x) {
  using namespace approx_detail;
  const uint32_t sign = x & kSign;
  if (isNan(x)) return x | 0x00400000u;
  if (isZeroOrDenormal(x)) return sign | kInf;
  if ((x & ~kSign) == kInf) return sign;
  const double m = std::fabs(double(std::bit_cast<float>(x)));
  const double r = roundTo12Bits(1.0 / m);
  if (r < 0x1p-126) return sign;  // tiny: flushed to zero
  return sign | std::bit_cast<uint32_t>(float(r));
}

// RSQRTSS/RSQRTPS on one single-precision lane.
inline uint32_t reciprocalSqrt(uint32_t x) {
  using namespace approx_detail;
  if (isNan(x)) return x | 0x00400000u;
  if (isZeroOrDenormal(x)) return (x & kSign) | kInf;
  if (x & kSign) return 0xFFC00000u;
  if (x == kInf) return 0;
  const double r = roundTo12Bits(1.0 / std::sqrt(double(std::bit_cast<float>(x))));
  return std::bit_cast<uint32_t>(float(r));
}

}  // namespace ttvm::sse
