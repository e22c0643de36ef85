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

Float80 propagateNan(const Float80& a, const Float80& b) {
  const bool na = classify(a) == Class::kNan, nb = classify(b) == Class::kNan;
  auto quiet = [](const Float80& v) { return Float80{v.significand | kQuietBit, v.signExponent}; };
  if (na && nb) {
    const bool qa = a.significand & kQuietBit, qb = b.significand & kQuietBit;
    if (qa != qb) return qa ? a : b;
    return quiet((b.significand & ~kQuietBit) > (a.significand & ~kQuietBit) ? b : a);
  }
  return quiet(na ? a : b);
}

namespace {

__extension__ typedef unsigned __int128 U128;

// A finite nonzero value as significand (integer bit 63 set) x 2^(exp - 63),
// exp unbiased; denormals are normalized.
struct Unpacked {
  uint64_t sig;
  int exp;
};
Unpacked unpack(const Float80& v) {
  int e = exponent(v) == 0 ? 1 - kBias : int(exponent(v)) - kBias;
  uint64_t m = v.significand;
  const int lz = __builtin_clzll(m);
  return {m << lz, e - lz};
}

// sig x 2^(exp - 63), sig < 2^64 (any width), exact: normalized, or a
// denormal when the exponent is below the normal range (the caller knows
// the value is on the denormal grid). With UE unmasked a tiny value is
// bias-adjusted by 2^24576.
Float80 packExact(bool negative, uint64_t sig, int exp, uint16_t fcw, uint16_t& flags) {
  if (sig == 0) return make(negative, 0, 0);
  const int lz = __builtin_clzll(sig);
  sig <<= lz;
  exp -= lz;
  int biased = exp + kBias;
  if (biased >= 1) return make(negative, uint16_t(biased), sig);
  if (!(fcw & fsw::kUE)) {
    flags |= fsw::kUE;
    return make(negative, uint16_t(biased + 24576), sig);
  }
  return make(negative, 0, sig >> (1 - biased));  // exact: on the denormal grid
}

}  // namespace

Remainder fprem(const Float80& x, const Float80& y, bool ieee, uint16_t fswIn, uint16_t fcw) {
  Remainder r;
  // Special results keep C0 and C3, clear C1 and C2 (measured on the host).
  const uint16_t keep = fswIn & (fsw::kC0 | fsw::kC3);
  const Class cx = classify(x), cy = classify(y);
  auto invalid = [&] {
    r.value = kIndefinite;
    r.fsw = uint16_t(keep | fsw::kIE);
    return r;
  };
  if (cx == Class::kUnsupported || cy == Class::kUnsupported) return invalid();
  if (cx == Class::kNan || cy == Class::kNan) {
    r.value = propagateNan(x, y);
    r.fsw = keep;
    if (isSignalingNan(x) || isSignalingNan(y)) r.fsw |= fsw::kIE;
    return r;
  }
  if (cx == Class::kInfinity || cy == Class::kZero) return invalid();
  uint16_t flags = (cx == Class::kDenormal || cy == Class::kDenormal) ? fsw::kDE : 0;
  if (flags & ~fcw) {  // an unmasked denormal stops it before any result
    r.value = x;
    r.fsw = flags;
    return r;
  }
  // x coming back for x = 0 or y = inf: as it is, even a denormal, except
  // that a pseudo-denormal gets its exponent 1 (measured on the host).
  const Float80 xBack =
      exponent(x) == 0 && (x.significand & kIntegerBit) ? make(sign(x), 1, x.significand) : x;
  if (cx == Class::kZero || cy == Class::kInfinity) {
    r.value = xBack;
    r.fsw = flags;
    return r;
  }
  const Unpacked ux = unpack(x), uy = unpack(y);
  const int d = ux.exp - uy.exp;
  const bool negative = sign(x);
  if (d >= 64) {
    // Incomplete: reduce the exponent difference by n = 32 + (d mod 32).
    const int n = 32 + (d & 31);
    const U128 num = U128(ux.sig) << n;
    const uint64_t rem = uint64_t(num % uy.sig);
    r.value = packExact(negative, rem, uy.exp + (d - n), fcw, flags);
    r.fsw = uint16_t(flags | fsw::kC2);  // C0 C1 C3 clear (measured on the host)
    return r;
  }
  uint64_t q = 0;     // the quotient's low bits
  uint64_t rem = 0;   // |x| - q |y| in units of 2^(ey - 63)
  bool flip = false;  // FPREM1: the remainder is negative (q rounded up)
  if (d < 0) {
    if (ieee && d == -1 && ux.sig > uy.sig) {  // |x| > |y| / 2: q = 1
      q = 1;
      flip = true;
      // |y| - |x| in units of 2^(ey - 64): 2 my - mx.
      const U128 diff = (U128(uy.sig) << 1) - ux.sig;
      r.value = packExact(!negative, uint64_t(diff), uy.exp - 1, fcw, flags);
    } else {
      // x, normalized (and bias-adjusted if tiny with UE unmasked; measured).
      r.value = packExact(negative, ux.sig, ux.exp, fcw, flags);
    }
  } else {
    const U128 num = U128(ux.sig) << d;
    const U128 qq = num / uy.sig;
    rem = uint64_t(num % uy.sig);
    q = uint64_t(qq);
    if (ieee) {
      const U128 twice = U128(rem) << 1;
      if (twice > uy.sig || (twice == uy.sig && (q & 1))) {
        ++q;
        rem = uy.sig - rem;
        flip = true;
      }
    }
    r.value = packExact(negative != flip, rem, uy.exp, fcw, flags);
    if (rem == 0) r.value = make(negative, 0, 0);  // an exact zero keeps x's sign
  }
  r.fsw = uint16_t(flags | ((q & 4) ? fsw::kC0 : 0) | ((q & 2) ? fsw::kC3 : 0) |
                   ((q & 1) ? fsw::kC1 : 0));
  return r;
}

}  // namespace ttvm::fpu::f80
