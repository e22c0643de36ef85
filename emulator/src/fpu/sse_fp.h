// MXCSR and the SIMD floating-point exception rules (SDM vol. 1 11.5), as
// pure functions, and SimdExceptions: the per-instruction accumulator every
// SSE floating-point handler runs its lanes through.
//
// Each lane runs on the host with every exception masked (fpu/sse_host.h).
// What the guest sees is then derived from those flags:
//   - pre-computation exceptions (IE, DE, ZE) of every lane are collected
//     first; if one is unmasked, the instruction faults with only those
//     flags set (no post-computation flag, nothing written);
//   - otherwise post-computation exceptions (OE, UE, PE): a lane whose
//     overflow (underflow) is unmasked reports OE (UE), plus PE only when
//     the result rounded to the lane's precision with an unbounded exponent
//     is inexact (the masked response's PE is about the delivered infinity or
//     denormal, which is not delivered here); that exactness is decided on
//     the integer significands (unboundedInexact*). An unmasked underflow is
//     any tiny result, exact or not (a masked one needs tiny and inexact), so
//     with UM clear a lane is rerun with FTZ=1, where the host flags every
//     tiny result. Any unmasked flag faults, with all the flags set and
//     nothing written;
//   - with nothing unmasked the flags are ORed into MXCSR and the result
//     written.
// Measured on the host under SIGFPE (tests/emulator/sse_fp_host_test.cc).
// A fault is #XM with CR4.OSXMMEXCPT, else #UD.
#pragma once

#include <bit>
#include <cstdint>
#include <utility>

namespace ttvm::fpu {

namespace mxcsr {
inline constexpr uint32_t kIE = 1u << 0;  // invalid operation
inline constexpr uint32_t kDE = 1u << 1;  // denormal operand
inline constexpr uint32_t kZE = 1u << 2;  // divide by zero
inline constexpr uint32_t kOE = 1u << 3;  // overflow
inline constexpr uint32_t kUE = 1u << 4;  // underflow
inline constexpr uint32_t kPE = 1u << 5;  // precision (inexact)
inline constexpr uint32_t kFlags = 0x3F;
inline constexpr uint32_t kPre = kIE | kDE | kZE;
inline constexpr uint32_t kPost = kOE | kUE | kPE;
inline constexpr uint32_t kDAZ = 1u << 6;
inline constexpr unsigned kMaskShift = 7;  // IM..PM are bits 7-12
inline constexpr uint32_t kMasks = kFlags << kMaskShift;
inline constexpr uint32_t kRC = 3u << 13;
inline constexpr uint32_t kFTZ = 1u << 15;
// The flags whose exception is unmasked in `m`.
inline constexpr uint32_t unmasked(uint32_t m) {
  return ~(m >> kMaskShift) & kFlags;
}
}  // namespace mxcsr

// What one lane reports to the instruction under the guest's MXCSR `guest`,
// from the flags of its all-masked host run, whether its result was tiny
// (only asked when UM is clear) and whether it is inexact with an unbounded
// exponent (only asked for an unmasked overflow or underflow).
struct LaneFlags {
  uint32_t pre = 0;
  uint32_t post = 0;
};
// Whether the lane's flags need `inexactUnbounded`.
inline bool needsUnboundedInexact(uint32_t guest, uint32_t maskedFlags, bool tiny) {
  const uint32_t open = mxcsr::unmasked(guest);
  return ((maskedFlags & mxcsr::kOE) && (open & mxcsr::kOE)) || (tiny && (open & mxcsr::kUE));
}
inline LaneFlags laneFlags(uint32_t guest, uint32_t maskedFlags, bool tiny, bool inexactUnbounded) {
  using namespace mxcsr;
  const uint32_t open = unmasked(guest);
  LaneFlags f{maskedFlags & kPre, maskedFlags & kPost};
  const uint32_t pe = inexactUnbounded ? kPE : 0;
  if ((maskedFlags & kOE) && (open & kOE)) {
    f.post = kOE | pe;
  } else if (tiny && (open & kUE)) {
    f.post = kUE | pe;
  }
  return f;
}

// ------------------------------------------------ exactness, unbounded
__extension__ typedef unsigned __int128 SigBits;  // room for a 53 x 53-bit product
// A finite operand as man * 2^exp (man 0 for zeros, and for denormals under
// DAZ). T is the lane (uint32_t single, uint64_t double).
struct Unpacked {
  bool sign;
  int exp;
  uint64_t man;
};
template <class T>
inline Unpacked unpackFinite(T bits, bool daz) {
  constexpr int kMant = sizeof(T) == 4 ? 23 : 52;
  constexpr int kBias = sizeof(T) == 4 ? 127 : 1023;
  const bool sign = bits >> (sizeof(T) * 8 - 1);
  const int e = int((bits >> kMant) & ((T(1) << (sizeof(T) * 8 - 1 - kMant)) - 1));
  const uint64_t f = uint64_t(bits & ((T(1) << kMant) - 1));
  if (e == 0) return {sign, 1 - kBias - kMant, daz ? 0 : f};
  return {sign, e - kBias - kMant, f | (uint64_t(1) << kMant)};
}
// Significant bits of v: from the highest set bit to the lowest (v != 0).
inline int bitSpan(SigBits v) {
  const uint64_t hi = uint64_t(v >> 64), lo = uint64_t(v);
  const int top = hi ? 127 - std::countl_zero(hi) : 63 - std::countl_zero(lo);
  const int bottom = lo ? std::countr_zero(lo) : 64 + std::countr_zero(hi);
  return top - bottom + 1;
}
template <class T>
inline constexpr int kPrecision = sizeof(T) == 4 ? 24 : 53;

// a + b (kSubtract: a - b) with an unbounded exponent: inexact?
template <class T>
inline bool unboundedInexactSum(T a, T b, bool subtract, bool daz) {
  Unpacked x = unpackFinite(a, daz), y = unpackFinite(b, daz);
  y.sign ^= subtract;
  if (x.man == 0 || y.man == 0) return false;
  if (x.exp < y.exp) std::swap(x, y);
  const int d = x.exp - y.exp;
  if (d > kPrecision<T> + 1) return true;  // y lies entirely below the result's last bit
  const SigBits big = static_cast<SigBits>(x.man) << d;
  const SigBits v = x.sign == y.sign ? big + y.man : big > y.man ? big - y.man : y.man - big;
  return v != 0 && bitSpan(v) > kPrecision<T>;
}
template <class T>
inline bool unboundedInexactProduct(T a, T b, bool daz) {
  const Unpacked x = unpackFinite(a, daz), y = unpackFinite(b, daz);
  if (x.man == 0 || y.man == 0) return false;
  return bitSpan(static_cast<SigBits>(x.man) * y.man) > kPrecision<T>;
}
template <class T>
inline bool unboundedInexactQuotient(T a, T b, bool daz) {
  const Unpacked x = unpackFinite(a, daz), y = unpackFinite(b, daz);
  if (x.man == 0 || y.man == 0) return false;
  const uint64_t odd = y.man >> std::countr_zero(y.man);  // powers of two divide exactly
  if (x.man % odd != 0) return true;
  return bitSpan(x.man / odd) > kPrecision<T>;
}
// CVTSD2SS/CVTPD2PS: the double's significand in single precision.
inline bool unboundedInexactNarrowing(uint64_t a, bool daz) {
  const Unpacked x = unpackFinite(a, daz);
  return x.man != 0 && bitSpan(x.man) > kPrecision<uint32_t>;
}

// The instruction's outcome from its lanes' flags.
struct SimdOutcome {
  uint32_t mxcsr;  // MXCSR afterwards (also when it faults)
  bool fault;      // #XM/#UD, destination not written
};
inline SimdOutcome resolveSimd(uint32_t guest, uint32_t pre, uint32_t post) {
  const uint32_t open = mxcsr::unmasked(guest);
  if (pre & open) return {guest | pre, true};
  const uint32_t all = pre | post;
  return {guest | all, (all & open) != 0};
}

// Runs the lanes of one instruction. A lane is a callable
// `uint32_t op(uint32_t mxcsr, R& result)` that computes on the host with that
// MXCSR and returns the MXCSR after (the fpu/sse_host.h primitives, bound to
// their inputs).
class SimdExceptions {
 public:
  explicit SimdExceptions(uint32_t guest)
      : guest_(guest), run_((guest & ~mxcsr::kFlags) | mxcsr::kMasks) {}

  // A lane that cannot overflow or underflow (compares, MIN/MAX, SQRT,
  // conversions to integers or to a wider format).
  template <class R, class Op>
  void lane(R& result, Op op) {
    const uint32_t f = op(run_, result) & mxcsr::kFlags;
    const LaneFlags l = laneFlags(guest_, f, false, false);
    pre_ |= l.pre;
    post_ |= l.post;
  }
  // A lane that can (arithmetic, CVTSD2SS): `bool inexact()` answers
  // unboundedInexact* for its inputs. With UM clear a result that was not
  // flagged tiny is rerun with FTZ=1 into a scratch result.
  template <class R, class Op, class Inexact>
  void lane(R& result, Op op, Inexact inexact) {
    const uint32_t f = op(run_, result) & mxcsr::kFlags;
    bool tiny = (f & mxcsr::kUE) != 0;
    if ((mxcsr::unmasked(guest_) & mxcsr::kUE) && !tiny) {
      R scratch{};
      tiny = (op(run_ | mxcsr::kFTZ, scratch) & mxcsr::kUE) != 0;
    }
    const bool need = needsUnboundedInexact(guest_, f, tiny);
    const LaneFlags l = laneFlags(guest_, f, tiny, need && inexact());
    pre_ |= l.pre;
    post_ |= l.post;
  }
  bool daz() const { return guest_ & mxcsr::kDAZ; }
  SimdOutcome outcome() const { return resolveSimd(guest_, pre_, post_); }

  // With every exception masked nothing can fault and an instruction's flags
  // are the OR of its lanes': a packed operation may then run as one host
  // instruction under runMxcsr() and report its flags through addFlags().
  bool allMasked() const { return (guest_ & mxcsr::kMasks) == mxcsr::kMasks; }
  uint32_t runMxcsr() const { return run_; }
  void addFlags(uint32_t mxcsrAfter) { post_ |= mxcsrAfter & mxcsr::kFlags; }

 private:
  uint32_t guest_;
  uint32_t run_;  // guest RC/DAZ/FTZ, flags clear, every exception masked
  uint32_t pre_ = 0;
  uint32_t post_ = 0;
};

}  // namespace ttvm::fpu
