// The IEEE-defined SSE/SSE2 floating-point operations, one lane at a time,
// executed by the HOST CPU's own SSE instruction with the guest's MXCSR.
//
// Why the host: for these operations (add, sub, mul, div, sqrt, min, max,
// compares, the conversions) the SDM and the APM define every result bit and
// every MXCSR flag, including NaN propagation, DAZ, FTZ and the integer
// indefinite; Intel and AMD agree, so the host instruction *is* the
// reference, at a few nanoseconds per lane. The approximations (RCP, RSQRT),
// which vendors compute differently, are in software (fpu/sse_approx.h).
//
// How MXCSR is kept away from the compiler: each primitive is one asm
// statement that saves the host MXCSR, loads the MXCSR it is given, runs the
// instruction, stores the MXCSR it produced and restores the host's. Nothing
// the compiler emits runs under the guest's MXCSR, and the compiler cannot
// move a floating-point operation of its own into that window (there are no
// intrinsics across an LDMXCSR). The caller passes an MXCSR with every
// exception masked (fpu/sse_fp.h): the host never traps.
//
// Values travel as bit patterns (uint32_t single, uint64_t double); the
// compiler only moves them into XMM registers (MOVD/MOVQ/MOVSS, which never
// quiet a signalling NaN).
#pragma once

#if !defined(__x86_64__)
#error "fpu/sse_host.h runs SSE instructions on the host: x86-64 hosts only"
#endif

#include <bit>
#include <cstdint>

#include "ttvm/emulator/cpu_state.h"

namespace ttvm::fpu::host {

// Lane bit patterns -> the host's float type.
template <class T>
using Float = std::conditional_t<sizeof(T) == 4, float, double>;

// The arithmetic the host computes: op(a, b) with a the destination lane.
// kSqrt ignores a and returns sqrt(b) (SQRTSS/SD take one source).
enum class Arith : uint8_t { kAdd, kSub, kMul, kDiv, kMin, kMax, kSqrt };

// One asm statement: MXCSR = m, `insn src, dst` (AT&T order), m = MXCSR after.
#define TTVM_SSE_HOST(insn, dst, src)                             \
  do {                                                            \
    uint32_t save_;                                               \
    asm volatile("stmxcsr %[save]\n\tldmxcsr %[m]\n\t" insn       \
                 " %[s], %[d]\n\tstmxcsr %[m]\n\tldmxcsr %[save]" \
                 : [d] dst, [m] "+m"(m), [save] "=m"(save_)       \
                 : [s] src);                                      \
  } while (0)

// r = a OP b for one lane of T (uint32_t: single, uint64_t: double).
// Returns MXCSR after the operation.
template <class T>
inline uint32_t arith(Arith op, T a, T b, uint32_t m, T& r) {
  using F = Float<T>;
  F x = std::bit_cast<F>(a);
  const F y = std::bit_cast<F>(b);
  if constexpr (sizeof(T) == 4) {
    switch (op) {
      case Arith::kAdd: TTVM_SSE_HOST("addss", "+x"(x), "x"(y)); break;
      case Arith::kSub: TTVM_SSE_HOST("subss", "+x"(x), "x"(y)); break;
      case Arith::kMul: TTVM_SSE_HOST("mulss", "+x"(x), "x"(y)); break;
      case Arith::kDiv: TTVM_SSE_HOST("divss", "+x"(x), "x"(y)); break;
      case Arith::kMin: TTVM_SSE_HOST("minss", "+x"(x), "x"(y)); break;
      case Arith::kMax: TTVM_SSE_HOST("maxss", "+x"(x), "x"(y)); break;
      case Arith::kSqrt: TTVM_SSE_HOST("sqrtss", "+x"(x), "x"(y)); break;
    }
  } else {
    switch (op) {
      case Arith::kAdd: TTVM_SSE_HOST("addsd", "+x"(x), "x"(y)); break;
      case Arith::kSub: TTVM_SSE_HOST("subsd", "+x"(x), "x"(y)); break;
      case Arith::kMul: TTVM_SSE_HOST("mulsd", "+x"(x), "x"(y)); break;
      case Arith::kDiv: TTVM_SSE_HOST("divsd", "+x"(x), "x"(y)); break;
      case Arith::kMin: TTVM_SSE_HOST("minsd", "+x"(x), "x"(y)); break;
      case Arith::kMax: TTVM_SSE_HOST("maxsd", "+x"(x), "x"(y)); break;
      case Arith::kSqrt: TTVM_SSE_HOST("sqrtsd", "+x"(x), "x"(y)); break;
    }
  }
  r = std::bit_cast<T>(x);
  return m;
}

// A whole XMM register as the host sees it (GCC's vector extension, no
// intrinsics).
typedef double HostVec __attribute__((vector_size(16)));

// ADDPS..SQRTPD in one host instruction (a op= b). Only for an MXCSR with
// every exception masked: the flags are then the OR of the lanes' flags and
// the lanes' results are those of the scalar form, so this is arith() on
// every lane, in one step.
template <class T>
inline uint32_t arithPacked(Arith op, Vec128& a, const Vec128& b, uint32_t m) {
  HostVec x = std::bit_cast<HostVec>(a);
  const HostVec y = std::bit_cast<HostVec>(b);
  if constexpr (sizeof(T) == 4) {
    switch (op) {
      case Arith::kAdd: TTVM_SSE_HOST("addps", "+x"(x), "x"(y)); break;
      case Arith::kSub: TTVM_SSE_HOST("subps", "+x"(x), "x"(y)); break;
      case Arith::kMul: TTVM_SSE_HOST("mulps", "+x"(x), "x"(y)); break;
      case Arith::kDiv: TTVM_SSE_HOST("divps", "+x"(x), "x"(y)); break;
      case Arith::kMin: TTVM_SSE_HOST("minps", "+x"(x), "x"(y)); break;
      case Arith::kMax: TTVM_SSE_HOST("maxps", "+x"(x), "x"(y)); break;
      case Arith::kSqrt: TTVM_SSE_HOST("sqrtps", "+x"(x), "x"(y)); break;
    }
  } else {
    switch (op) {
      case Arith::kAdd: TTVM_SSE_HOST("addpd", "+x"(x), "x"(y)); break;
      case Arith::kSub: TTVM_SSE_HOST("subpd", "+x"(x), "x"(y)); break;
      case Arith::kMul: TTVM_SSE_HOST("mulpd", "+x"(x), "x"(y)); break;
      case Arith::kDiv: TTVM_SSE_HOST("divpd", "+x"(x), "x"(y)); break;
      case Arith::kMin: TTVM_SSE_HOST("minpd", "+x"(x), "x"(y)); break;
      case Arith::kMax: TTVM_SSE_HOST("maxpd", "+x"(x), "x"(y)); break;
      case Arith::kSqrt: TTVM_SSE_HOST("sqrtpd", "+x"(x), "x"(y)); break;
    }
  }
  a = std::bit_cast<Vec128>(x);
  return m;
}

// CMPSS/CMPSD with predicate kPred (0..7): r = all ones or zero.
template <class T, int kPred>
inline uint32_t compare(T a, T b, uint32_t m, T& r) {
  using F = Float<T>;
  F x = std::bit_cast<F>(a);
  const F y = std::bit_cast<F>(b);
  uint32_t save;
  if constexpr (sizeof(T) == 4) {
    asm volatile(
        "stmxcsr %[save]\n\tldmxcsr %[m]\n\tcmpss %[p], %[s], %[d]\n\tstmxcsr %[m]\n\t"
        "ldmxcsr %[save]"
        : [d] "+x"(x), [m] "+m"(m), [save] "=m"(save)
        : [s] "x"(y), [p] "i"(kPred));
  } else {
    asm volatile(
        "stmxcsr %[save]\n\tldmxcsr %[m]\n\tcmpsd %[p], %[s], %[d]\n\tstmxcsr %[m]\n\t"
        "ldmxcsr %[save]"
        : [d] "+x"(x), [m] "+m"(m), [save] "=m"(save)
        : [s] "x"(y), [p] "i"(kPred));
  }
  r = std::bit_cast<T>(x);
  return m;
}

// COMISS/COMISD (kSignalling) and UCOMISS/UCOMISD: ZF, PF, CF as RFLAGS bits.
template <class T, bool kSignalling>
inline uint32_t compareFlags(T a, T b, uint32_t m, uint64_t& rflags) {
  using F = Float<T>;
  const F x = std::bit_cast<F>(a);
  const F y = std::bit_cast<F>(b);
  uint32_t save;
  bool z, p, cf;
#define TTVM_SSE_HOST_COMI(insn)                                                     \
  asm volatile("stmxcsr %[save]\n\tldmxcsr %[m]\n\t" insn                            \
               " %[s], %[d]\n\tstmxcsr %[m]\n\tldmxcsr %[save]"                      \
               : "=@ccz"(z), "=@ccp"(p), "=@ccc"(cf), [m] "+m"(m), [save] "=m"(save) \
               : [d] "x"(x), [s] "x"(y))
  if constexpr (sizeof(T) == 4 && kSignalling) {
    TTVM_SSE_HOST_COMI("comiss");
  } else if constexpr (sizeof(T) == 4) {
    TTVM_SSE_HOST_COMI("ucomiss");
  } else if constexpr (kSignalling) {
    TTVM_SSE_HOST_COMI("comisd");
  } else {
    TTVM_SSE_HOST_COMI("ucomisd");
  }
#undef TTVM_SSE_HOST_COMI
  rflags = (z ? 0x40u : 0u) | (p ? 0x4u : 0u) | (cf ? 0x1u : 0u);
  return m;
}

// CVTSS2SD (T = uint32_t -> uint64_t) and CVTSD2SS (uint64_t -> uint32_t).
template <class From, class To>
inline uint32_t convertFloat(From a, uint32_t m, To& r) {
  static_assert(sizeof(From) != sizeof(To));
  Float<To> y{};
  const Float<From> x = std::bit_cast<Float<From>>(a);
  if constexpr (sizeof(From) == 4) {
    TTVM_SSE_HOST("cvtss2sd", "+x"(y), "x"(x));
  } else {
    TTVM_SSE_HOST("cvtsd2ss", "+x"(y), "x"(x));
  }
  r = std::bit_cast<To>(y);
  return m;
}

// CVTSI2SS/CVTSI2SD: I is int32_t or int64_t, T the float lane.
template <class I, class T>
inline uint32_t fromInt(I v, uint32_t m, T& r) {
  Float<T> y{};
  if constexpr (sizeof(T) == 4 && sizeof(I) == 4) {
    TTVM_SSE_HOST("cvtsi2ssl", "+x"(y), "r"(v));
  } else if constexpr (sizeof(T) == 4) {
    TTVM_SSE_HOST("cvtsi2ssq", "+x"(y), "r"(v));
  } else if constexpr (sizeof(I) == 4) {
    TTVM_SSE_HOST("cvtsi2sdl", "+x"(y), "r"(v));
  } else {
    TTVM_SSE_HOST("cvtsi2sdq", "+x"(y), "r"(v));
  }
  r = std::bit_cast<T>(y);
  return m;
}

// CVTSS2SI/CVTSD2SI (kTruncate false: MXCSR.RC) and CVTTSS2SI/CVTTSD2SI,
// to I = int32_t or int64_t; out of range or NaN gives the integer indefinite.
template <class T, class I, bool kTruncate>
inline uint32_t toInt(T a, uint32_t m, I& r) {
  const Float<T> x = std::bit_cast<Float<T>>(a);
  I y = 0;
  if constexpr (sizeof(T) == 4 && kTruncate) {
    TTVM_SSE_HOST("cvttss2si", "+r"(y), "x"(x));
  } else if constexpr (sizeof(T) == 4) {
    TTVM_SSE_HOST("cvtss2si", "+r"(y), "x"(x));
  } else if constexpr (kTruncate) {
    TTVM_SSE_HOST("cvttsd2si", "+r"(y), "x"(x));
  } else {
    TTVM_SSE_HOST("cvtsd2si", "+r"(y), "x"(x));
  }
  r = y;
  return m;
}

#undef TTVM_SSE_HOST

}  // namespace ttvm::fpu::host
