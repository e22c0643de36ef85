// fpu/sse_ops.h against the host CPU's SSE2 instructions (through the
// compiler's intrinsics, which emit exactly those instructions) on random
// inputs, with edge values (all ones, sign bits, equal operands) mixed in.
#include <emmintrin.h>
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <functional>
#include <string>
#include <utility>

#include "fpu/sse_ops.h"
#include "host_thunk_support.h"

namespace ttvm::sse {
namespace {

constexpr int kCases = 200'000;

__m128i toHost(const Vec128& v) {
  __m128i r;
  std::memcpy(&r, v.q.data(), 16);
  return r;
}
Vec128 fromHost(__m128i h) {
  Vec128 v;
  std::memcpy(v.q.data(), &h, 16);
  return v;
}

class Inputs : public cputest::SplitMix64 {
 public:
  using SplitMix64::SplitMix64;
  // Random bytes, sometimes with lanes forced to edge values.
  Vec128 vec() {
    Vec128 v{{next(), next()}};
    uint64_t r = next();
    if ((r & 3) == 0) {
      uint8_t b[16];
      std::memcpy(b, v.q.data(), 16);
      for (int k = 0; k < 16; ++k) {
        switch ((r >> (2 + 2 * k)) & 3) {
          case 0: b[k] = 0; break;
          case 1: b[k] = 0xFF; break;
          case 2: b[k] = 0x80; break;
          default: break;
        }
      }
      std::memcpy(v.q.data(), b, 16);
    }
    return v;
  }
};

// Compares ours(a, b) with host(a, b) over random pairs (a == b sometimes).
template <class Ours, class Host>
void binary(const char* name, Ours ours, Host host) {
  Inputs in(std::hash<std::string>{}(name));
  for (int n = 0; n < kCases; ++n) {
    Vec128 a = in.vec(), b = (n % 8 == 0) ? a : in.vec();
    if (n % 8 == 1) b.q[0] = a.q[0];
    Vec128 mine = ours(a, b);
    Vec128 ref = fromHost(host(toHost(a), toHost(b)));
    ASSERT_EQ(mine, ref) << name << " a=" << std::hex << a.q[1] << ":" << a.q[0] << " b=" << b.q[1]
                         << ":" << b.q[0];
  }
}

TEST(SseOps, Bitwise) {
  binary("pxor", bitXor, [](__m128i x, __m128i y) { return _mm_xor_si128(x, y); });
  binary("por", bitOr, [](__m128i x, __m128i y) { return _mm_or_si128(x, y); });
  binary("pand", bitAnd, [](__m128i x, __m128i y) { return _mm_and_si128(x, y); });
  binary("pandn", bitAndNot, [](__m128i x, __m128i y) { return _mm_andnot_si128(x, y); });
}

TEST(SseOps, Compare) {
  binary("pcmpeqb", cmpEq<uint8_t>, [](__m128i x, __m128i y) { return _mm_cmpeq_epi8(x, y); });
  binary("pcmpeqw", cmpEq<uint16_t>, [](__m128i x, __m128i y) { return _mm_cmpeq_epi16(x, y); });
  binary("pcmpeqd", cmpEq<uint32_t>, [](__m128i x, __m128i y) { return _mm_cmpeq_epi32(x, y); });
  binary("pcmpgtb", cmpGt<uint8_t>, [](__m128i x, __m128i y) { return _mm_cmpgt_epi8(x, y); });
  binary("pcmpgtw", cmpGt<uint16_t>, [](__m128i x, __m128i y) { return _mm_cmpgt_epi16(x, y); });
  binary("pcmpgtd", cmpGt<uint32_t>, [](__m128i x, __m128i y) { return _mm_cmpgt_epi32(x, y); });
}

TEST(SseOps, Arithmetic) {
  binary("paddb", addLanes<uint8_t>, [](__m128i x, __m128i y) { return _mm_add_epi8(x, y); });
  binary("paddw", addLanes<uint16_t>, [](__m128i x, __m128i y) { return _mm_add_epi16(x, y); });
  binary("paddd", addLanes<uint32_t>, [](__m128i x, __m128i y) { return _mm_add_epi32(x, y); });
  binary("paddq", addLanes<uint64_t>, [](__m128i x, __m128i y) { return _mm_add_epi64(x, y); });
  binary("psubb", subLanes<uint8_t>, [](__m128i x, __m128i y) { return _mm_sub_epi8(x, y); });
  binary("psubw", subLanes<uint16_t>, [](__m128i x, __m128i y) { return _mm_sub_epi16(x, y); });
  binary("psubd", subLanes<uint32_t>, [](__m128i x, __m128i y) { return _mm_sub_epi32(x, y); });
  binary("psubq", subLanes<uint64_t>, [](__m128i x, __m128i y) { return _mm_sub_epi64(x, y); });
  binary("psubusb", subUnsignedSaturate8, [](__m128i x, __m128i y) { return _mm_subs_epu8(x, y); });
  binary("psubusw", subUnsignedSaturate16,
         [](__m128i x, __m128i y) { return _mm_subs_epu16(x, y); });
  binary("paddusb", addUnsignedSaturate8, [](__m128i x, __m128i y) { return _mm_adds_epu8(x, y); });
  binary("pminub", minUnsigned8, [](__m128i x, __m128i y) { return _mm_min_epu8(x, y); });
  binary("pmaxub", maxUnsigned8, [](__m128i x, __m128i y) { return _mm_max_epu8(x, y); });
  binary("pminsw", minSigned16, [](__m128i x, __m128i y) { return _mm_min_epi16(x, y); });
  binary("pmaxsw", maxSigned16, [](__m128i x, __m128i y) { return _mm_max_epi16(x, y); });
}

TEST(SseOps, SaturatingAndMultiply) {
  binary("paddsb", addSignedSaturate<uint8_t>,
         [](__m128i x, __m128i y) { return _mm_adds_epi8(x, y); });
  binary("paddsw", addSignedSaturate<uint16_t>,
         [](__m128i x, __m128i y) { return _mm_adds_epi16(x, y); });
  binary("psubsb", subSignedSaturate<uint8_t>,
         [](__m128i x, __m128i y) { return _mm_subs_epi8(x, y); });
  binary("psubsw", subSignedSaturate<uint16_t>,
         [](__m128i x, __m128i y) { return _mm_subs_epi16(x, y); });
  binary("paddusw", addUnsignedSaturate16,
         [](__m128i x, __m128i y) { return _mm_adds_epu16(x, y); });
  binary("pavgb", average<uint8_t>, [](__m128i x, __m128i y) { return _mm_avg_epu8(x, y); });
  binary("pavgw", average<uint16_t>, [](__m128i x, __m128i y) { return _mm_avg_epu16(x, y); });
  binary("pmullw", mulLow16, [](__m128i x, __m128i y) { return _mm_mullo_epi16(x, y); });
  binary("pmulhw", mulHighSigned16, [](__m128i x, __m128i y) { return _mm_mulhi_epi16(x, y); });
  binary("pmulhuw", mulHighUnsigned16, [](__m128i x, __m128i y) { return _mm_mulhi_epu16(x, y); });
  binary("pmuludq", mulUnsigned32, [](__m128i x, __m128i y) { return _mm_mul_epu32(x, y); });
  binary("pmaddwd", multiplyAddWords, [](__m128i x, __m128i y) { return _mm_madd_epi16(x, y); });
  binary("psadbw", sumAbsDiff8, [](__m128i x, __m128i y) { return _mm_sad_epu8(x, y); });
  binary("packsswb", packSignedWords, [](__m128i x, __m128i y) { return _mm_packs_epi16(x, y); });
  binary("packuswb", packUnsignedWords,
         [](__m128i x, __m128i y) { return _mm_packus_epi16(x, y); });
  binary("packssdw", packSignedDwords, [](__m128i x, __m128i y) { return _mm_packs_epi32(x, y); });
}

TEST(SseOps, Unpack) {
  binary("punpcklbw", unpackLow<uint8_t>,
         [](__m128i x, __m128i y) { return _mm_unpacklo_epi8(x, y); });
  binary("punpcklwd", unpackLow<uint16_t>,
         [](__m128i x, __m128i y) { return _mm_unpacklo_epi16(x, y); });
  binary("punpckldq", unpackLow<uint32_t>,
         [](__m128i x, __m128i y) { return _mm_unpacklo_epi32(x, y); });
  binary("punpcklqdq", unpackLow<uint64_t>,
         [](__m128i x, __m128i y) { return _mm_unpacklo_epi64(x, y); });
  binary("punpckhbw", unpackHigh<uint8_t>,
         [](__m128i x, __m128i y) { return _mm_unpackhi_epi8(x, y); });
  binary("punpckhwd", unpackHigh<uint16_t>,
         [](__m128i x, __m128i y) { return _mm_unpackhi_epi16(x, y); });
  binary("punpckhdq", unpackHigh<uint32_t>,
         [](__m128i x, __m128i y) { return _mm_unpackhi_epi32(x, y); });
  binary("punpckhqdq", unpackHigh<uint64_t>,
         [](__m128i x, __m128i y) { return _mm_unpackhi_epi64(x, y); });
}

// The shift counts come from an XMM register (low 64 bits), so every count
// including huge ones is tried.
TEST(SseOps, ShiftsByRegister) {
  Inputs in(7);
  for (int n = 0; n < kCases; ++n) {
    Vec128 a = in.vec();
    uint64_t count = (n & 1) ? in.next() % 70 : in.next() >> (in.next() % 64);
    __m128i h = toHost(a), c = _mm_set_epi64x(int64_t(in.next()), int64_t(count));
#define TTVM_CHECK_SHIFT(ours, intr) \
  ASSERT_EQ(ours, fromHost(intr(h, c))) << #intr << " count " << count;
    TTVM_CHECK_SHIFT(shiftLeftLanes<uint16_t>(a, count), _mm_sll_epi16)
    TTVM_CHECK_SHIFT(shiftLeftLanes<uint32_t>(a, count), _mm_sll_epi32)
    TTVM_CHECK_SHIFT(shiftLeftLanes<uint64_t>(a, count), _mm_sll_epi64)
    TTVM_CHECK_SHIFT(shiftRightLanes<uint16_t>(a, count), _mm_srl_epi16)
    TTVM_CHECK_SHIFT(shiftRightLanes<uint32_t>(a, count), _mm_srl_epi32)
    TTVM_CHECK_SHIFT(shiftRightLanes<uint64_t>(a, count), _mm_srl_epi64)
    TTVM_CHECK_SHIFT(shiftRightArithLanes<uint16_t>(a, count), _mm_sra_epi16)
    TTVM_CHECK_SHIFT(shiftRightArithLanes<uint32_t>(a, count), _mm_sra_epi32)
#undef TTVM_CHECK_SHIFT
  }
}

// Immediate forms: every imm8. The intrinsics need constants, so a template
// instantiated for each value computes the host's results; the comparison
// is done once, at run time, against ttvm's functions.
constexpr int kImmOps = 12;

template <int kImm>
std::array<Vec128, kImmOps> hostImmediate(const Vec128& a, const Vec128& b) {
  __m128i ha = toHost(a), hb = toHost(b);
  __m128 fa, fb;
  std::memcpy(&fa, &ha, 16);
  std::memcpy(&fb, &hb, 16);
  __m128d da, db;
  std::memcpy(&da, &ha, 16);
  std::memcpy(&db, &hb, 16);
  __m128 fr = _mm_shuffle_ps(fa, fb, kImm);
  __m128d dr = _mm_shuffle_pd(da, db, kImm & 3);
  __m128i ps, pd;
  std::memcpy(&ps, &fr, 16);
  std::memcpy(&pd, &dr, 16);
  return {fromHost(_mm_shuffle_epi32(hb, kImm)),
          fromHost(_mm_shufflelo_epi16(hb, kImm)),
          fromHost(_mm_shufflehi_epi16(hb, kImm)),
          fromHost(ps),
          fromHost(pd),
          fromHost(_mm_slli_si128(ha, kImm)),
          fromHost(_mm_srli_si128(ha, kImm)),
          fromHost(_mm_slli_epi16(ha, kImm)),
          fromHost(_mm_srli_epi32(ha, kImm)),
          fromHost(_mm_slli_epi64(ha, kImm)),
          fromHost(_mm_srai_epi16(ha, kImm)),
          fromHost(_mm_srli_epi64(ha, kImm))};
}

std::array<Vec128, kImmOps> oursImmediate(const Vec128& a, const Vec128& b, uint8_t imm) {
  return {shuffleDwords(b, imm),
          shuffleLowWords(b, imm),
          shuffleHighWords(b, imm),
          shufflePs(a, b, imm),
          shufflePd(a, b, imm & 3),
          shiftLeftBytes(a, imm),
          shiftRightBytes(a, imm),
          shiftLeftLanes<uint16_t>(a, imm),
          shiftRightLanes<uint32_t>(a, imm),
          shiftLeftLanes<uint64_t>(a, imm),
          shiftRightArithLanes<uint16_t>(a, imm),
          shiftRightLanes<uint64_t>(a, imm)};
}

using HostImmediateFn = std::array<Vec128, kImmOps> (*)(const Vec128&, const Vec128&);
template <int... kImms>
constexpr std::array<HostImmediateFn, 256> hostImmediateTable(
    std::integer_sequence<int, kImms...>) {
  return {&hostImmediate<kImms>...};
}

TEST(SseOps, ImmediateForms) {
  static constexpr auto kTable = hostImmediateTable(std::make_integer_sequence<int, 256>{});
  const char* names[kImmOps] = {"pshufd", "pshuflw", "pshufhw", "shufps", "shufpd", "pslldq",
                                "psrldq", "psllw",   "psrld",   "psllq",  "psraw",  "psrlq"};
  Inputs in(9);
  for (int n = 0; n < 200; ++n) {
    Vec128 a = in.vec(), b = in.vec();
    for (int imm = 0; imm < 256; ++imm) {
      std::array<Vec128, kImmOps> host = kTable[imm](a, b),
                                  ours = oursImmediate(a, b, uint8_t(imm));
      for (int k = 0; k < kImmOps; ++k) {
        ASSERT_EQ(ours[k], host[k]) << names[k] << " imm " << imm;
      }
    }
  }
}

TEST(SseOps, MoveMasks) {
  Inputs in(11);
  for (int n = 0; n < kCases; ++n) {
    Vec128 a = in.vec();
    __m128i h = toHost(a);
    ASSERT_EQ(moveMaskBytes(a), uint32_t(_mm_movemask_epi8(h)));
    __m128 f;
    std::memcpy(&f, &h, 16);
    ASSERT_EQ(moveMaskPs(a), uint32_t(_mm_movemask_ps(f)));
    __m128d d;
    std::memcpy(&d, &h, 16);
    ASSERT_EQ(moveMaskPd(a), uint32_t(_mm_movemask_pd(d)));
  }
}

}  // namespace
}  // namespace ttvm::sse
