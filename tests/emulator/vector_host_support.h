// The native-vs-emulator harness of the SSE floating-point and MMX host
// tests (sse_fp_host_test.cc, mmx_host_test.cc): a form's bytes run natively
// between a load and a store of MXCSR, XMM0, XMM1, RAX, MM0, MM1 and a
// 16-byte operand at [RSI], and in the emulator, on generated operands; the
// destination, the other registers, the memory, MXCSR and (for COMIS) the
// arithmetic flags must agree bit for bit.
//
// Unmasked SIMD exceptions: the native run traps (SIGFPE); the signal
// frame's MXCSR is the host's answer and nothing was written. The emulator
// must then deliver #XM (CR4.OSXMMEXCPT, chosen at random) or #UD, with the
// same MXCSR and every register and the memory unchanged.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "host_thunk_support.h"

namespace ttvm::cputest {

// How a form's operands are generated.
enum class Lane : uint8_t {
  kSingle,   // single-precision lanes from the special classes (zeros,
             // denormals, extreme normals, infinities, NaNs, integer limits)
  kDouble,   // the same for double precision
  kInteger,  // bytes with 00/FF/80/7F runs, small values (shift counts)
};

struct VectorForm {
  std::string name;
  std::vector<uint8_t> bytes;  // uses only XMM0, XMM1, RAX, MM0, MM1 and [RSI]
  Lane lane;
  bool setsFlags = false;  // compare RFLAGS' arithmetic flags
};

// Operands for the forms, and random MXCSR values.
class VectorOperands : public SplitMix64 {
 public:
  using SplitMix64::SplitMix64;
  uint64_t below(uint64_t n) { return next() % n; }

  // One floating-point value of the given width (bits) from a special class.
  template <class T>
  T special() {
    constexpr bool kSingle = sizeof(T) == 4;
    constexpr int kMantBits = kSingle ? 23 : 52;
    constexpr int kExpBits = kSingle ? 8 : 11;
    constexpr T kExpMax = (T(1) << kExpBits) - 1;
    constexpr int kBias = kSingle ? 127 : 1023;
    const T sign = T(next() & 1) << (kMantBits + kExpBits);
    const T mant = T(next()) & ((T(1) << kMantBits) - 1);
    auto make = [&](T exp, T m) { return T(sign | (exp << kMantBits) | m); };
    switch (below(16)) {
      case 0: return sign;                                // +-0
      case 1: return make(0, mant | 1);                   // denormal
      case 2: return make(0, below(2) ? 1 : mant >> 20);  // tiny denormal
      case 3: return make(1, below(2) ? 0 : mant);        // smallest normals
      case 4: return make(kExpMax - 1, below(2) ? ~T(0) >> (kExpBits + 1) : mant);  // largest
      case 5: return make(kExpMax, 0);                                              // +-inf
      case 6: return make(kExpMax, mant | (T(1) << (kMantBits - 1)));               // QNaN
      case 7: return make(kExpMax, (mant & ~(T(1) << (kMantBits - 1))) | 1);        // SNaN
      case 8: {  // near the integer-conversion limits (2^31, 2^63) and small integers
        const int e = below(3) == 0 ? 31 : below(2) ? 63 : int(below(24));
        return make(T(kBias + e - (below(2) ? 1 : 0)), below(2) ? mant & 0xF : mant);
      }
      case 9: return make(T(kBias + int(below(8)) - 4), mant);  // around 1
      case 10:  // exponents near the bottom (underflow of products/quotients)
        return make(T(below(40) + 1), mant);
      case 11:  // exponents near the top (overflow)
        return make(kExpMax - 1 - T(below(40)), mant);
      case 12:  // doubles that round to the edges of single precision
        if constexpr (!kSingle) {
          return make(T(kBias + (below(2) ? 127 : -126 - int(below(24)))), mant);
        }
        return make(T(below(kExpMax)), mant);
      case 13: return T(int64_t(int32_t(next() >> 40)));  // small integers (as bits)
      default: return make(T(below(kExpMax + 1)), mant);  // any bits
    }
  }
  template <class T>
  void fill(uint8_t* p, size_t bytes) {
    for (size_t k = 0; k < bytes; k += sizeof(T)) {
      const T v = special<T>();
      std::memcpy(p + k, &v, sizeof(T));
    }
  }
  // Bytes with runs of 00/FF/80/7F, or a small value (a shift count).
  uint64_t integer() {
    const uint64_t r = next();
    uint64_t v = next();
    if ((r & 7) == 0) return r >> 58;  // 0..63
    if ((r & 7) == 1) return v;
    uint8_t b[8];
    std::memcpy(b, &v, 8);
    static constexpr uint8_t kEdges[] = {0x00, 0xFF, 0x80, 0x7F};
    for (int k = 0; k < 8; ++k) {
      if ((r >> (3 + 3 * k)) & 4) b[k] = kEdges[(r >> (3 + 3 * k)) & 3];
    }
    std::memcpy(&v, b, 8);
    return v;
  }
  void fillLanes(Lane lane, uint8_t* p, size_t bytes) {
    switch (lane) {
      case Lane::kSingle: fill<uint32_t>(p, bytes); break;
      case Lane::kDouble: fill<uint64_t>(p, bytes); break;
      case Lane::kInteger:
        for (size_t k = 0; k < bytes; k += 8) {
          const uint64_t v = integer();
          std::memcpy(p + k, &v, 8);
        }
        break;
    }
  }
  // Rounding control, DAZ, FTZ and sticky flags random; exceptions masked in
  // three cases of four, else a random mask set.
  uint32_t mxcsr() {
    uint32_t m = uint32_t(below(4)) << 13;
    if (below(2)) m |= 1u << 6;   // DAZ
    if (below(2)) m |= 1u << 15;  // FTZ
    if (below(4) == 0) m |= uint32_t(next()) & 0x3F;
    m |= below(4) ? 0x1F80u : (uint32_t(next()) & 0x1F80u);
    return m;
  }
};

struct VectorStats {
  int retired = 0;
  int trapped = 0;
};

// Runs `cases` random cases of the form natively and in the emulator, with
// random MXCSR (rounding, DAZ, FTZ, sticky flags, masks in one case of
// four) and reports mismatches through GoogleTest (fatal).
void checkVectorForm(const VectorForm& form, int cases, VectorStats& stats);

// A digest of what the emulator alone computes for `cases` cases of the form
// (the same cases checkVectorForm draws): destination and other registers,
// memory, MXCSR, RFLAGS and the outcome. The emulator must give the same
// digest on every host (the trace contract), whatever the host's vendor.
uint64_t emulatorDigest(const VectorForm& form, int cases);

// The value of an environment variable as a case count, or `fallback`.
int caseCount(const char* variable, int fallback);

}  // namespace ttvm::cputest
