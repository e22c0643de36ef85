// The x87 transcendentals in binary128 software (fpu/f80_transcendental.h).
#include "fpu/f80_transcendental.h"

#include <algorithm>
#include <cstring>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#include <quadmath.h>
#pragma GCC diagnostic pop

namespace ttvm::fpu::f80 {
namespace {

__extension__ typedef __float128 Quad;
__extension__ typedef unsigned __int128 U128;

// Exact conversion of a supported (finite or infinite) 80-bit value.
Quad toQuad(const Float80& v) {
  uint16_t e = exponent(v);
  uint64_t sig = v.significand;
  uint64_t hi, lo;
  if (e == kExpMask) {
    hi = 0x7FFFull << 48;
    lo = 0;
  } else {
    if (e == 0 && (sig & kIntegerBit)) e = 1;  // pseudo-denormal: 1.f x 2^-16382
    // Quad fraction = the 63 (or, for a denormal, 64 with j = 0) bits below j.
    const U128 frac = U128(sig & ~kIntegerBit) << 49;
    hi = uint64_t(e) << 48 | uint64_t(frac >> 64);
    lo = uint64_t(frac);
  }
  if (sign(v)) hi |= 1ull << 63;
  Quad q;
  uint64_t w[2] = {lo, hi};
  std::memcpy(&q, w, 16);
  return q;
}

Rounded roundQuad(Quad q, fcw::Rounding rc) {
  uint64_t w[2];
  std::memcpy(w, &q, 16);
  const bool neg = w[1] >> 63;
  const uint32_t e = (w[1] >> 48) & 0x7FFF;
  uint64_t hi = w[1] & ((1ull << 48) - 1);
  if (e != 0) hi |= 1ull << 48;
  return roundQuadBits(neg, e, hi, w[0], rc);
}

// Rounds to 64 bits under `cw`. With overflow or underflow unmasked, the
// result is bias-adjusted by 2^-+24576 as the hardware stores it.
Rounded fromQuad(Quad q, uint16_t cw) {
  const fcw::Rounding rc = fcw::rounding(cw);
  Rounded r = roundQuad(q, rc);
  const bool tiny = q != 0 && fabsq(q) < ldexpq(Quad(1), -16382);
  if (!(cw & fsw::kUE) && tiny) {
    r = roundQuad(ldexpq(q, 24576), rc);
    r.flags |= fsw::kUE;
  } else if (!(cw & fsw::kOE) && (r.flags & fsw::kOE)) {
    r = roundQuad(ldexpq(q, -24576), rc);
    r.flags |= fsw::kOE;
  }
  return r;
}

Float80 quiet(const Float80& v) {
  return Float80{v.significand | kQuietBit, v.signExponent};
}

// The common operand screening: unsupported encodings and NaNs decide the
// result (true); a denormal adds DE and goes on.
bool screen(const Float80& x, TranscendentalResult& r) {
  switch (classify(x)) {
    case Class::kUnsupported:
      r.flags |= fsw::kIE;
      r.value = kIndefinite;
      return true;
    case Class::kNan:
      if (!(x.significand & kQuietBit)) r.flags |= fsw::kIE;
      r.value = quiet(x);
      return true;
    case Class::kDenormal: r.flags |= fsw::kDE; return false;
    default: return false;
  }
}

// Two operands: an unsupported one is invalid; of two NaNs the quiet one,
// else the one with the larger significand wins (quieted), y on a tie.
bool screen2(const Float80& y, const Float80& x, TranscendentalResult& r) {
  const Class cy = classify(y), cx = classify(x);
  if (cy == Class::kUnsupported || cx == Class::kUnsupported) {
    r.flags |= fsw::kIE;
    r.value = kIndefinite;
    return true;
  }
  const bool ny = cy == Class::kNan, nx = cx == Class::kNan;
  if (ny || nx) {
    if ((ny && !(y.significand & kQuietBit)) || (nx && !(x.significand & kQuietBit)))
      r.flags |= fsw::kIE;
    const bool qy = ny && (y.significand & kQuietBit), qx = nx && (x.significand & kQuietBit);
    if (ny && nx && qy == qx)  // both signaling or both quiet: the larger significand
      r.value = quiet((x.significand & ~kQuietBit) > (y.significand & ~kQuietBit) ? x : y);
    else if (ny && nx)  // one of each: the quiet one (SDM vol. 1 table 4-7)
      r.value = qy ? y : x;
    else
      r.value = quiet(ny ? y : x);
    return true;
  }
  if (cy == Class::kDenormal || cx == Class::kDenormal) r.flags |= fsw::kDE;
  return false;
}

// An unmasked denormal operand stops the instruction before it computes
// anything: only DE is reported (measured on the host).
bool stoppedByDenormal(const TranscendentalResult& r, uint16_t cw) {
  return r.flags & fsw::kDE & ~cw;
}

void setRounded(TranscendentalResult& r, Quad q, uint16_t rc) {
  const Rounded v = fromQuad(q, rc);
  r.value = v.value;
  r.flags |= v.flags;
}

// |x| >= 2^63: the trigonometric instructions leave the operand alone.
bool outOfTrigRange(const Float80& x) {
  return exponent(x) >= kBias + 63;
}

// x = k * (pi/2)' + r with (pi/2)' the x87's 66-bit pi over 2, computed
// exactly; returns r (|r| <= (pi/4)') and k mod 4 for |x|.
struct Reduced {
  Quad r;
  unsigned quadrant;
};

Reduced reduce(const Float80& x) {
  // pi ~ kPi66 * 2^-64, so pi/2 ~ kPi66 * 2^-65: 0xC90FDAA22168C234 then "11".
  constexpr U128 kPi66 = (U128(0xC90FDAA22168C234ull) << 2) | 3;
  int e = exponent(x);
  if (e == 0) e = 1;
  // |x| = sig * 2^(e - 16383 - 63) = sig * 2^(e - 16381) units of 2^-65.
  const int shift = e - 16381;
  if (shift < 0) return {fabsq(toQuad(x)), 0};  // |x| < 1/4 < pi/2
  const U128 m = U128(x.significand) << shift;  // shift <= 64: fits
  U128 k = m / kPi66;
  const U128 rem = m % kPi66;
  // To [-pi/4, pi/4] with the same 66-bit constant, as the hardware does:
  // this is where its error near odd multiples of pi/2 comes from.
  if (rem > kPi66 / 2) {
    ++k;
    return {-ldexpq(Quad(kPi66 - rem), -65), unsigned(k & 3)};
  }
  return {ldexpq(Quad(rem), -65), unsigned(k & 3)};
}

// sin and cos of x through the exact reduction.
void sinCos(const Float80& x, Quad& s, Quad& c) {
  const Reduced red = reduce(x);
  const Quad sr = sinq(red.r), cr = cosq(red.r);
  switch (red.quadrant) {
    case 0: s = sr, c = cr; break;
    case 1: s = cr, c = -sr; break;
    case 2: s = -sr, c = -cr; break;
    default: s = -cr, c = sr; break;
  }
  if (sign(x)) s = -s;
}

enum class Trig : uint8_t { kSin, kCos, kSinCos, kTan };

TranscendentalResult trig(const Float80& x, uint16_t rc, Trig which) {
  TranscendentalResult r;
  if (screen(x, r)) {
    r.value2 = r.value;
    return r;
  }
  const Class cls = classify(x);
  if (cls == Class::kInfinity) {
    r.flags |= fsw::kIE;
    r.value = r.value2 = kIndefinite;
    return r;
  }
  if (outOfTrigRange(x)) {
    r.outOfRange = true;
    return r;
  }
  if (cls == Class::kZero) {
    // sin(+-0) = +-0 and tan(+-0) = +-0 exactly; cos(+-0) = 1.
    const Float80 one = make(false, kBias, kIntegerBit);
    r.value = which == Trig::kCos || which == Trig::kSinCos ? one : x;
    r.value2 = x;
    return r;
  }
  Quad s, c;
  if (stoppedByDenormal(r, rc)) return r;
  sinCos(x, s, c);
  switch (which) {
    case Trig::kSin: setRounded(r, s, rc); break;
    case Trig::kCos: setRounded(r, c, rc); break;
    case Trig::kTan: setRounded(r, s / c, rc); break;
    case Trig::kSinCos: {
      const Rounded sr = fromQuad(s, rc);
      r.value2 = sr.value;
      setRounded(r, c, rc);
      r.flags |= uint16_t(sr.flags & ~fsw::kC1);
      break;
    }
  }
  return r;
}

// Rounds q * 2^-24576 (q = a result scaled up into range) to the 80-bit
// format: the denormalization shifts the significand right with the
// discarded bits kept as a sticky bit.
Rounded roundScaledDown(Quad q, fcw::Rounding rc) {
  uint64_t w[2];
  std::memcpy(w, &q, 16);
  const bool neg = w[1] >> 63;
  const int e = int((w[1] >> 48) & 0x7FFF) - 24576;  // <= 0: tiny
  U128 sig = U128((w[1] & ((1ull << 48) - 1)) | (1ull << 48)) << 64 | w[0];
  const int shift = 1 - e;
  bool sticky;
  if (shift >= 120) {
    sticky = sig != 0;
    sig = 0;
  } else {
    sticky = (sig & ((U128(1) << shift) - 1)) != 0;
    sig >>= shift;
  }
  return roundQuadBits(neg, 0, uint64_t(sig >> 64), uint64_t(sig) | (sticky ? 1 : 0), rc);
}

// y * l * 2^s, with the scaling split between the factors so that neither
// leaves the binary128 range on its own.
Quad scaledProduct(Quad y, Quad l, int s) {
  const int ey = ilogbq(y);
  const int sy = s > 0 ? std::min(s, 16000 - ey) : std::max(s, -16000 - ey);
  return ldexpq(y, sy) * ldexpq(l, s - sy);
}

// r = y * l, rounded under `cw`. The product is formed again from a scaled
// y when it leaves the binary128 range: with overflow unmasked (the
// bias-adjusted result), and when it is tiny (bias-adjusted with underflow
// unmasked, else denormalized from the exact scaled product).
void setProduct(TranscendentalResult& r, Quad y, Quad l, uint16_t cw) {
  const Quad p = y * l;
  const fcw::Rounding rc = fcw::rounding(cw);
  const bool tiny = y != 0 && l != 0 && fabsq(p) < ldexpq(Quad(1), -16382);
  Rounded v;
  if (!(cw & fsw::kOE) && isinfq(p)) {
    v = roundQuad(scaledProduct(y, l, -24576), rc);
    v.flags |= fsw::kOE | fsw::kPE;
  } else if (tiny && !(cw & fsw::kUE)) {
    v = roundQuad(scaledProduct(y, l, 24576), rc);
    v.flags |= fsw::kUE;
  } else if (tiny) {
    v = roundScaledDown(scaledProduct(y, l, 24576), rc);
  } else {
    v = fromQuad(p, cw);
  }
  r.value = v.value;
  r.flags |= v.flags;
}

Quad ln2() {
  static const Quad kLn2 = logq(Quad(2));
  return kLn2;
}

Float80 infinity(bool negative) {
  return make(negative, kExpMask, kIntegerBit);
}
Float80 zero(bool negative) {
  return make(negative, 0, 0);
}

}  // namespace

TranscendentalResult fsin(const Float80& x, uint16_t rc) {
  return trig(x, rc, Trig::kSin);
}
TranscendentalResult fcos(const Float80& x, uint16_t rc) {
  return trig(x, rc, Trig::kCos);
}
TranscendentalResult fsincos(const Float80& x, uint16_t rc) {
  return trig(x, rc, Trig::kSinCos);
}
TranscendentalResult fptan(const Float80& x, uint16_t rc) {
  return trig(x, rc, Trig::kTan);
}

TranscendentalResult f2xm1(const Float80& x, uint16_t rc) {
  TranscendentalResult r;
  if (screen(x, r)) return r;
  switch (classify(x)) {
    case Class::kZero: r.value = x; return r;
    case Class::kInfinity:
      r.value = sign(x) ? make(true, kBias, kIntegerBit) : x;  // -inf -> -1
      return r;
    default: break;
  }
  if (stoppedByDenormal(r, rc)) return r;
  const Quad q = toQuad(x);
  // expm1 keeps the relative accuracy near 0, where 2^x - 1 ~ x ln 2.
  setRounded(r, fabsq(q) < Quad(0.5) ? expm1q(q * ln2()) : exp2q(q) - 1, rc);
  return r;
}

TranscendentalResult fpatan(const Float80& y, const Float80& x, uint16_t rc) {
  TranscendentalResult r;
  if (screen2(y, x, r)) return r;
  // C99 atan2 and FPATAN agree on every zero and infinity combination.
  if (stoppedByDenormal(r, rc)) return r;
  const Quad a = atan2q(toQuad(y), toQuad(x));
  if (!(rc & fsw::kUE) && classify(y) != Class::kZero && classify(x) != Class::kInfinity &&
      fabsq(a) < ldexpq(Quad(1), -16382)) {
    // Underflow unmasked (only with x > 0): the bias-adjusted result is
    // atan(y / x) 2^24576 = (y / x) 2^24576 to far below an ulp, with y
    // scaled up by 2^16000 and x down by 2^8576 (in range: |y| < x 2^-16382).
    const Quad scaled = ldexpq(toQuad(y), 16000) / ldexpq(toQuad(x), -8576);
    const Rounded v = roundQuad(scaled, fcw::rounding(rc));
    r.value = v.value;
    r.flags |= uint16_t(v.flags | fsw::kUE);
    return r;
  }
  setRounded(r, a, rc);
  if (classify(y) == Class::kZero ||
      (classify(x) == Class::kInfinity && classify(y) != Class::kInfinity))
    r.flags = uint16_t(r.flags & ~(fsw::kPE | fsw::kC1 | fsw::kUE));  // exact +-0 / +-pi below
  return r;
}

TranscendentalResult fyl2x(const Float80& y, const Float80& x, uint16_t rc) {
  TranscendentalResult r;
  if (screen2(y, x, r)) return r;
  const Class cx = classify(x), cy = classify(y);
  const bool ys = sign(y);
  auto invalid = [&] {
    r.flags = uint16_t((r.flags & ~fsw::kDE) | fsw::kIE);  // no DE with an invalid operation
    r.value = kIndefinite;
    return r;
  };
  if (cx != Class::kZero && sign(x)) return invalid();  // log of a negative number
  if (cx == Class::kZero) {
    if (cy == Class::kZero) return invalid();
    if (cy != Class::kInfinity) r.flags = uint16_t((r.flags & ~fsw::kDE) | fsw::kZE);
    r.value = infinity(!ys);  // y * -inf
    return r;
  }
  const bool xIsOne = exponent(x) == kBias && x.significand == kIntegerBit;
  if (cx == Class::kInfinity) {
    if (cy == Class::kZero) return invalid();
    r.value = infinity(ys);
    return r;
  }
  if (cy == Class::kInfinity) {
    if (xIsOne) return invalid();
    const bool below1 = exponent(x) < kBias;
    r.value = infinity(ys != below1);
    return r;
  }
  if (cy == Class::kZero || xIsOne) {
    const bool below1 = exponent(x) < kBias;
    r.value = zero(cy == Class::kZero ? ys != below1 : ys);
    return r;
  }
  if (stoppedByDenormal(r, rc)) return r;
  setProduct(r, toQuad(y), log2q(toQuad(x)), rc);
  return r;
}

TranscendentalResult fyl2xp1(const Float80& y, const Float80& x, uint16_t rc) {
  TranscendentalResult r;
  if (screen2(y, x, r)) return r;
  const Class cx = classify(x), cy = classify(y);
  const bool ys = sign(y);
  if (cx == Class::kZero) {
    if (cy == Class::kInfinity) {
      r.flags |= fsw::kIE;
      r.value = kIndefinite;
      return r;
    }
    r.value = zero(ys != sign(x));
    return r;
  }
  const Quad xq = toQuad(x);
  if (xq < -1 || (xq == -1 && cy == Class::kZero) ||
      (cx == Class::kInfinity && cy == Class::kZero)) {
    r.flags = uint16_t((r.flags & ~fsw::kDE) | fsw::kIE);
    r.value = kIndefinite;
    return r;
  }
  if (cy == Class::kZero) {
    r.value = zero(ys != (xq < 0));
    return r;
  }
  if (cy == Class::kInfinity || cx == Class::kInfinity || xq == -1) {
    const Quad l = log1pq(xq);
    if (xq == -1 && cy != Class::kInfinity) r.flags |= fsw::kZE;
    r.value = infinity((l < 0) != ys);
    return r;
  }
  if (stoppedByDenormal(r, rc)) return r;
  setProduct(r, toQuad(y), log1pq(xq) / ln2(), rc);
  return r;
}

}  // namespace ttvm::fpu::f80
