// The SSE/SSE2 integer and bitwise operations compilers emit for memcpy,
// memset and string code, as pure functions on 128-bit values (little-endian
// lanes, as in the XMM registers). Floating point is elsewhere (fpu/sse_fp.h,
// fpu/sse_host.h).
//
// Each function is what the instruction computes with the destination as `a`
// and the source as `b`; the handlers in fpu/sse.cc do operands and faults.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "ttvm/emulator/cpu_state.h"

namespace ttvm::sse {

template <class L>
using Lanes = std::array<L, 16 / sizeof(L)>;

template <class L>
inline Lanes<L> lanes(const Vec128& v) {
  Lanes<L> l;
  std::memcpy(l.data(), v.q.data(), 16);
  return l;
}
template <class L>
inline Vec128 vec(const Lanes<L>& l) {
  Vec128 v;
  std::memcpy(v.q.data(), l.data(), 16);
  return v;
}

// r[k] = f(a[k], b[k]) for every lane of type L.
template <class L, class F>
inline Vec128 lanewise(const Vec128& a, const Vec128& b, F f) {
  Lanes<L> x = lanes<L>(a), y = lanes<L>(b);
  for (size_t k = 0; k < x.size(); ++k) x[k] = L(f(x[k], y[k]));
  return vec<L>(x);
}

// ------------------------------------------------------------ bitwise
// PXOR/XORPS/XORPD, POR/ORPS/ORPD, PAND/ANDPS/ANDPD, PANDN/ANDNPS/ANDNPD.
inline Vec128 bitXor(const Vec128& a, const Vec128& b) {
  return {{a.q[0] ^ b.q[0], a.q[1] ^ b.q[1]}};
}
inline Vec128 bitOr(const Vec128& a, const Vec128& b) {
  return {{a.q[0] | b.q[0], a.q[1] | b.q[1]}};
}
inline Vec128 bitAnd(const Vec128& a, const Vec128& b) {
  return {{a.q[0] & b.q[0], a.q[1] & b.q[1]}};
}
// ~a & b (the destination is the one inverted).
inline Vec128 bitAndNot(const Vec128& a, const Vec128& b) {
  return {{~a.q[0] & b.q[0], ~a.q[1] & b.q[1]}};
}

// ------------------------------------------------------------ compare
// PCMPEQB/W/D: all-ones where equal. PCMPGTB/W/D: all-ones where a > b (signed).
template <class L>
inline Vec128 cmpEq(const Vec128& a, const Vec128& b) {
  return lanewise<L>(a, b, [](L x, L y) { return x == y ? L(~L(0)) : L(0); });
}
template <class L>
inline Vec128 cmpGt(const Vec128& a, const Vec128& b) {
  using S = std::make_signed_t<L>;
  return lanewise<L>(a, b, [](L x, L y) { return S(x) > S(y) ? L(~L(0)) : L(0); });
}

// ------------------------------------------------------------ arithmetic
template <class L>
inline Vec128 addLanes(const Vec128& a, const Vec128& b) {  // PADDB/W/D/Q (wrapping)
  return lanewise<L>(a, b, [](L x, L y) { return L(x + y); });
}
template <class L>
inline Vec128 subLanes(const Vec128& a, const Vec128& b) {  // PSUBB/W/D/Q (wrapping)
  return lanewise<L>(a, b, [](L x, L y) { return L(x - y); });
}
inline Vec128 subUnsignedSaturate8(const Vec128& a, const Vec128& b) {  // PSUBUSB
  return lanewise<uint8_t>(a, b, [](uint8_t x, uint8_t y) { return x > y ? uint8_t(x - y) : 0; });
}
inline Vec128 subUnsignedSaturate16(const Vec128& a, const Vec128& b) {  // PSUBUSW
  return lanewise<uint16_t>(a, b,
                            [](uint16_t x, uint16_t y) { return x > y ? uint16_t(x - y) : 0; });
}
inline Vec128 addUnsignedSaturate8(const Vec128& a, const Vec128& b) {  // PADDUSB
  return lanewise<uint8_t>(a, b, [](uint8_t x, uint8_t y) {
    unsigned s = unsigned(x) + y;
    return uint8_t(s > 0xFF ? 0xFF : s);
  });
}
inline Vec128 minUnsigned8(const Vec128& a, const Vec128& b) {  // PMINUB
  return lanewise<uint8_t>(a, b, [](uint8_t x, uint8_t y) { return std::min(x, y); });
}
inline Vec128 maxUnsigned8(const Vec128& a, const Vec128& b) {  // PMAXUB
  return lanewise<uint8_t>(a, b, [](uint8_t x, uint8_t y) { return std::max(x, y); });
}
inline Vec128 minSigned16(const Vec128& a, const Vec128& b) {  // PMINSW
  return lanewise<uint16_t>(a, b,
                            [](uint16_t x, uint16_t y) { return int16_t(x) < int16_t(y) ? x : y; });
}
inline Vec128 maxSigned16(const Vec128& a, const Vec128& b) {  // PMAXSW
  return lanewise<uint16_t>(a, b,
                            [](uint16_t x, uint16_t y) { return int16_t(x) > int16_t(y) ? x : y; });
}

// Signed/unsigned saturating add and subtract (PADDSB/W, PSUBSB/W, PADDUSW).
template <class L>
inline Vec128 addSignedSaturate(const Vec128& a, const Vec128& b) {
  using S = std::make_signed_t<L>;
  return lanewise<L>(a, b, [](L x, L y) {
    const int64_t v = int64_t(S(x)) + S(y);
    return L(
        S(std::clamp<int64_t>(v, std::numeric_limits<S>::min(), std::numeric_limits<S>::max())));
  });
}
template <class L>
inline Vec128 subSignedSaturate(const Vec128& a, const Vec128& b) {
  using S = std::make_signed_t<L>;
  return lanewise<L>(a, b, [](L x, L y) {
    const int64_t v = int64_t(S(x)) - S(y);
    return L(
        S(std::clamp<int64_t>(v, std::numeric_limits<S>::min(), std::numeric_limits<S>::max())));
  });
}
inline Vec128 addUnsignedSaturate16(const Vec128& a, const Vec128& b) {  // PADDUSW
  return lanewise<uint16_t>(a, b, [](uint16_t x, uint16_t y) {
    unsigned s = unsigned(x) + y;
    return uint16_t(s > 0xFFFF ? 0xFFFF : s);
  });
}
// PAVGB/PAVGW: (a + b + 1) >> 1 without overflow.
template <class L>
inline Vec128 average(const Vec128& a, const Vec128& b) {
  return lanewise<L>(a, b, [](L x, L y) { return L((uint32_t(x) + y + 1) >> 1); });
}

// ------------------------------------------------------------ multiplies
inline Vec128 mulLow16(const Vec128& a, const Vec128& b) {  // PMULLW
  return lanewise<uint16_t>(a, b, [](uint16_t x, uint16_t y) { return uint16_t(x * y); });
}
inline Vec128 mulHighSigned16(const Vec128& a, const Vec128& b) {  // PMULHW
  return lanewise<uint16_t>(a, b, [](uint16_t x, uint16_t y) {
    return uint16_t(uint32_t(int32_t(int16_t(x)) * int16_t(y)) >> 16);
  });
}
inline Vec128 mulHighUnsigned16(const Vec128& a, const Vec128& b) {  // PMULHUW
  return lanewise<uint16_t>(
      a, b, [](uint16_t x, uint16_t y) { return uint16_t((uint32_t(x) * y) >> 16); });
}
// PMULUDQ: r.q[k] = a.d[2k] * b.d[2k] (unsigned).
inline Vec128 mulUnsigned32(const Vec128& a, const Vec128& b) {
  return {{uint64_t(uint32_t(a.q[0])) * uint32_t(b.q[0]),
           uint64_t(uint32_t(a.q[1])) * uint32_t(b.q[1])}};
}
// PMADDWD: r.d[k] = a.w[2k]*b.w[2k] + a.w[2k+1]*b.w[2k+1] (signed, wrapping:
// only 0x8000 * 0x8000 twice overflows, to 0x80000000).
inline Vec128 multiplyAddWords(const Vec128& a, const Vec128& b) {
  Lanes<uint16_t> x = lanes<uint16_t>(a), y = lanes<uint16_t>(b);
  Lanes<uint32_t> r;
  for (int k = 0; k < 4; ++k) {
    const int64_t v = int64_t(int16_t(x[2 * k])) * int16_t(y[2 * k]) +
                      int64_t(int16_t(x[2 * k + 1])) * int16_t(y[2 * k + 1]);
    r[k] = uint32_t(v);
  }
  return vec<uint32_t>(r);
}
// PSADBW: per qword, the sum of absolute byte differences in the low word.
inline Vec128 sumAbsDiff8(const Vec128& a, const Vec128& b) {
  Lanes<uint8_t> x = lanes<uint8_t>(a), y = lanes<uint8_t>(b);
  Vec128 r{};
  for (int h = 0; h < 2; ++h) {
    uint64_t sum = 0;
    for (int k = 0; k < 8; ++k)
      sum +=
          x[8 * h + k] > y[8 * h + k] ? x[8 * h + k] - y[8 * h + k] : y[8 * h + k] - x[8 * h + k];
    r.q[h] = sum;
  }
  return r;
}

// ------------------------------------------------------------ packs
// PACKSSWB/PACKUSWB: words of a then b saturated to bytes; PACKSSDW: dwords
// of a then b saturated to signed words.
inline Vec128 packSignedWords(const Vec128& a, const Vec128& b) {
  Lanes<uint16_t> x = lanes<uint16_t>(a), y = lanes<uint16_t>(b);
  Lanes<uint8_t> r;
  auto sat = [](uint16_t w) { return uint8_t(int8_t(std::clamp<int>(int16_t(w), -128, 127))); };
  for (int k = 0; k < 8; ++k) {
    r[k] = sat(x[k]);
    r[8 + k] = sat(y[k]);
  }
  return vec<uint8_t>(r);
}
inline Vec128 packUnsignedWords(const Vec128& a, const Vec128& b) {
  Lanes<uint16_t> x = lanes<uint16_t>(a), y = lanes<uint16_t>(b);
  Lanes<uint8_t> r;
  auto sat = [](uint16_t w) { return uint8_t(std::clamp<int>(int16_t(w), 0, 255)); };
  for (int k = 0; k < 8; ++k) {
    r[k] = sat(x[k]);
    r[8 + k] = sat(y[k]);
  }
  return vec<uint8_t>(r);
}
inline Vec128 packSignedDwords(const Vec128& a, const Vec128& b) {
  Lanes<uint32_t> x = lanes<uint32_t>(a), y = lanes<uint32_t>(b);
  Lanes<uint16_t> r;
  auto sat = [](uint32_t d) {
    return uint16_t(int16_t(std::clamp<int64_t>(int32_t(d), -32768, 32767)));
  };
  for (int k = 0; k < 4; ++k) {
    r[k] = sat(x[k]);
    r[4 + k] = sat(y[k]);
  }
  return vec<uint16_t>(r);
}

// PEXTRW: word imm & 7, zero-extended. PINSRW: replace word imm & 7.
inline uint32_t extractWord(const Vec128& a, uint8_t imm) {
  return lanes<uint16_t>(a)[imm & 7];
}
inline Vec128 insertWord(const Vec128& a, uint16_t w, uint8_t imm) {
  Lanes<uint16_t> x = lanes<uint16_t>(a);
  x[imm & 7] = w;
  return vec<uint16_t>(x);
}

// ------------------------------------------------------------ masks
// PMOVMSKB: bit k = MSB of byte k.
inline uint32_t moveMaskBytes(const Vec128& a) {
  Lanes<uint8_t> x = lanes<uint8_t>(a);
  uint32_t m = 0;
  for (int k = 0; k < 16; ++k) m |= uint32_t(x[k] >> 7) << k;
  return m;
}
// MOVMSKPS: bit k = sign of dword k. MOVMSKPD: of qword k.
inline uint32_t moveMaskPs(const Vec128& a) {
  Lanes<uint32_t> x = lanes<uint32_t>(a);
  uint32_t m = 0;
  for (int k = 0; k < 4; ++k) m |= (x[k] >> 31) << k;
  return m;
}
inline uint32_t moveMaskPd(const Vec128& a) {
  return uint32_t(a.q[0] >> 63) | uint32_t(a.q[1] >> 63) << 1;
}

// ------------------------------------------------------------ shuffles
// PSHUFD: r.d[k] = b.d[(imm >> 2k) & 3].
inline Vec128 shuffleDwords(const Vec128& b, uint8_t imm) {
  Lanes<uint32_t> s = lanes<uint32_t>(b), r;
  for (int k = 0; k < 4; ++k) r[k] = s[(imm >> (2 * k)) & 3];
  return vec<uint32_t>(r);
}
// PSHUFLW/PSHUFHW: shuffle the low/high four words, copy the other half.
inline Vec128 shuffleLowWords(const Vec128& b, uint8_t imm) {
  Lanes<uint16_t> s = lanes<uint16_t>(b), r = s;
  for (int k = 0; k < 4; ++k) r[k] = s[(imm >> (2 * k)) & 3];
  return vec<uint16_t>(r);
}
inline Vec128 shuffleHighWords(const Vec128& b, uint8_t imm) {
  Lanes<uint16_t> s = lanes<uint16_t>(b), r = s;
  for (int k = 0; k < 4; ++k) r[4 + k] = s[4 + ((imm >> (2 * k)) & 3)];
  return vec<uint16_t>(r);
}
// SHUFPS: r.d[0..1] from a, r.d[2..3] from b, selected by imm.
inline Vec128 shufflePs(const Vec128& a, const Vec128& b, uint8_t imm) {
  Lanes<uint32_t> x = lanes<uint32_t>(a), y = lanes<uint32_t>(b), r;
  r[0] = x[imm & 3];
  r[1] = x[(imm >> 2) & 3];
  r[2] = y[(imm >> 4) & 3];
  r[3] = y[(imm >> 6) & 3];
  return vec<uint32_t>(r);
}
// SHUFPD: r.q[0] = a.q[imm & 1], r.q[1] = b.q[(imm >> 1) & 1].
inline Vec128 shufflePd(const Vec128& a, const Vec128& b, uint8_t imm) {
  return {{a.q[imm & 1], b.q[(imm >> 1) & 1]}};
}

// PUNPCKL*/PUNPCKH*: interleave the low (high) halves of a and b, a first.
template <class L>
inline Vec128 unpackLow(const Vec128& a, const Vec128& b) {
  Lanes<L> x = lanes<L>(a), y = lanes<L>(b), r;
  constexpr size_t n = 16 / sizeof(L);
  for (size_t k = 0; k < n / 2; ++k) {
    r[2 * k] = x[k];
    r[2 * k + 1] = y[k];
  }
  return vec<L>(r);
}
template <class L>
inline Vec128 unpackHigh(const Vec128& a, const Vec128& b) {
  Lanes<L> x = lanes<L>(a), y = lanes<L>(b), r;
  constexpr size_t n = 16 / sizeof(L);
  for (size_t k = 0; k < n / 2; ++k) {
    r[2 * k] = x[n / 2 + k];
    r[2 * k + 1] = y[n / 2 + k];
  }
  return vec<L>(r);
}

// ------------------------------------------------------------ shifts
// PSLLDQ/PSRLDQ: byte shifts of the whole register; counts above 15 clear it.
inline Vec128 shiftLeftBytes(const Vec128& a, unsigned n) {
  Lanes<uint8_t> x = lanes<uint8_t>(a), r{};
  for (unsigned k = n; k < 16; ++k) r[k] = x[k - n];
  return vec<uint8_t>(r);
}
inline Vec128 shiftRightBytes(const Vec128& a, unsigned n) {
  Lanes<uint8_t> x = lanes<uint8_t>(a), r{};
  for (unsigned k = 0; k + n < 16; ++k) r[k] = x[k + n];
  return vec<uint8_t>(r);
}
// PSLLW/D/Q, PSRLW/D/Q by a 64-bit count (from an imm8 or the low qword of a
// register/memory source): a count >= the lane width clears the lane.
template <class L>
inline Vec128 shiftLeftLanes(const Vec128& a, uint64_t count) {
  if (count >= sizeof(L) * 8) return Vec128{};
  Lanes<L> x = lanes<L>(a);
  for (L& v : x) v = L(v << count);
  return vec<L>(x);
}
template <class L>
inline Vec128 shiftRightLanes(const Vec128& a, uint64_t count) {
  if (count >= sizeof(L) * 8) return Vec128{};
  Lanes<L> x = lanes<L>(a);
  for (L& v : x) v = L(v >> count);
  return vec<L>(x);
}
// PSRAW/PSRAD: arithmetic; counts >= the width fill with the sign.
template <class L>
inline Vec128 shiftRightArithLanes(const Vec128& a, uint64_t count) {
  using S = std::make_signed_t<L>;
  unsigned c = count >= sizeof(L) * 8 ? sizeof(L) * 8 - 1 : unsigned(count);
  Lanes<L> x = lanes<L>(a);
  for (L& v : x) v = L(S(v) >> c);
  return vec<L>(x);
}

}  // namespace ttvm::sse
