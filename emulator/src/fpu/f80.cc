// Pure functions on 80-bit values: classification, tags, constants and the
// rounding of binary128 results (fpu/f80.h).
#include "fpu/f80.h"

namespace ttvm::fpu::f80 {

Class classify(const Float80& v) {
  const uint16_t e = exponent(v);
  const bool j = v.significand & kIntegerBit;
  if (e == kExpMask) {
    if (!j) return Class::kUnsupported;  // pseudo-infinity / pseudo-NaN
    return (v.significand << 1) == 0 ? Class::kInfinity : Class::kNan;
  }
  if (e == 0) return v.significand == 0 ? Class::kZero : Class::kDenormal;
  return j ? Class::kNormal : Class::kUnsupported;  // unnormal
}

uint16_t fxamConditions(const Float80& v, bool empty) {
  if (empty) return fsw::kC3 | fsw::kC0;
  switch (classify(v)) {
    case Class::kUnsupported: return 0;
    case Class::kNan: return fsw::kC0;
    case Class::kNormal: return fsw::kC2;
    case Class::kInfinity: return fsw::kC2 | fsw::kC0;
    case Class::kZero: return fsw::kC3;
    case Class::kDenormal: return fsw::kC3 | fsw::kC2;
  }
  return 0;
}

unsigned fullTag(const Float80& v, bool empty) {
  if (empty) return 3;
  switch (classify(v)) {
    case Class::kNormal: return 0;
    case Class::kZero: return 1;
    default: return 2;
  }
}

namespace {

// The constants truncated to 64 bits, with the sign of the rest: whether
// the true value lies above the midpoint to the next 64-bit value.
struct ConstantBits {
  uint16_t exp;
  uint64_t truncated;
  bool aboveHalf;  // irrational: never exactly half
  bool exact;
};

constexpr ConstantBits kConstants[] = {
    {0x3FFF, 0x8000000000000000ull, false, true},   // 1
    {0x4000, 0xD49A784BCD1B8AFEull, false, false},  // log2(10)
    {0x3FFF, 0xB8AA3B295C17F0BBull, true, false},   // log2(e)
    {0x4000, 0xC90FDAA22168C234ull, true, false},   // pi
    {0x3FFD, 0x9A209A84FBCFF798ull, true, false},   // log10(2)
    {0x3FFE, 0xB17217F7D1CF79ABull, true, false},   // ln(2)
    {0x0000, 0x0000000000000000ull, false, true},   // +0
};

}  // namespace

Float80 loadConstant(Constant k, fcw::Rounding rc) {
  const ConstantBits& c = kConstants[static_cast<int>(k)];
  uint64_t sig = c.truncated;
  if (!c.exact) {
    // Positive constants: down and zero truncate, up adds one ulp, nearest
    // follows the discarded bits. No constant is one ulp below a power of 2.
    const bool up = rc == fcw::Rounding::kUp || (rc == fcw::Rounding::kNearest && c.aboveHalf);
    if (up) ++sig;
  }
  return make(false, c.exp, sig);
}

Rounded roundQuadBits(bool negative, uint32_t exp, uint64_t hi, uint64_t lo, fcw::Rounding rc) {
  Rounded r;
  if (exp >= kExpMask) {  // already overflowed in binary128
    r.flags = fsw::kOE | fsw::kPE;
  }
  // 113-bit significand -> 64 bits + 49 discarded bits.
  uint64_t sig = (hi << 15) | (lo >> 49);
  const uint64_t rest = lo & ((1ull << 49) - 1);
  const uint64_t half = 1ull << 48;
  // The x87 detects tininess before rounding (measured: (1 - 2^-64) x
  // 2^-16382 rounds up to the smallest normal and still raises UE).
  const bool tiny = exp == 0;
  bool up = false;
  if (rest != 0) {
    r.flags |= fsw::kPE;
    switch (rc) {
      case fcw::Rounding::kNearest: up = rest > half || (rest == half && (sig & 1)); break;
      case fcw::Rounding::kDown: up = negative; break;
      case fcw::Rounding::kUp: up = !negative; break;
      case fcw::Rounding::kZero: up = false; break;
    }
  }
  if (up) {
    r.flags |= fsw::kC1;
    if (++sig == 0) {  // carry out of the significand
      sig = kIntegerBit;
      ++exp;
    } else if (exp == 0 && (sig & kIntegerBit)) {
      exp = 1;  // a denormal rounded up to the smallest normal
    }
  }
  if (exp >= kExpMask) {
    // Overflow: infinity, or the largest finite value when rounding toward zero.
    r.flags |= fsw::kOE | fsw::kPE;
    const bool toInf = rc == fcw::Rounding::kNearest || (rc == fcw::Rounding::kUp && !negative) ||
                       (rc == fcw::Rounding::kDown && negative);
    r.value = toInf ? make(negative, kExpMask, kIntegerBit) : make(negative, kExpMask - 1, ~0ull);
    r.flags = uint16_t((r.flags & ~fsw::kC1) | (toInf ? fsw::kC1 : 0));
    return r;
  }
  if (tiny && (r.flags & fsw::kPE)) r.flags |= fsw::kUE;
  r.value = make(negative, uint16_t(exp), sig);
  return r;
}

}  // namespace ttvm::fpu::f80
