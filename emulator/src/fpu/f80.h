// The x87 80-bit value and its pure functions (not a public interface).
//
// Two kinds of computation, chosen per operation (docs/emulator.md, "x87"):
//
//  - IEEE-defined operations (FADD..FDIVR, FSQRT, FRNDINT, FSCALE, FXTRACT,
//    the compares, every load and store conversion incl. BCD) run on the
//    HOST x87 through hostExec(): the guest's FCW is loaded, the
//    operation is the guest's own opcode on copies of the operands, and the
//    host FSW (exception flags, C0-C3) and result are read back. IEEE 754
//    fixes these results bit for bit, and Intel and AMD x87 units agree on
//    them, including the x87-specific parts (precision control, denormal and
//    unnormal operands, the C1 round-up bit, unmasked overflow/underflow
//    bias adjustment, QNaN indefinite).
//  - FPREM/FPREM1 are computed here in software (fprem()): the step of an
//    incomplete reduction is the implementation's choice in the SDM.
//  - The transcendentals (f80_transcendental.cc) are computed in software with
//    binary128 arithmetic (libquadmath) and rounded to 64 bits here: vendors'
//    microcode differs for them, the host FPU is never used.
//
// Float80 is the register bit pattern: significand with explicit integer bit
// (bit 63), sign in bit 15 and biased exponent in bits 0-14 of signExponent.
#pragma once

#include <cstdint>

#include "ttvm/emulator/cpu_state.h"

namespace ttvm::fpu {

// FSW bits (SDM vol. 1 figure 8-5).
namespace fsw {
inline constexpr uint16_t kIE = 1u << 0;  // invalid operation
inline constexpr uint16_t kDE = 1u << 1;  // denormal operand
inline constexpr uint16_t kZE = 1u << 2;  // zero divide
inline constexpr uint16_t kOE = 1u << 3;  // overflow
inline constexpr uint16_t kUE = 1u << 4;  // underflow
inline constexpr uint16_t kPE = 1u << 5;  // precision (inexact)
inline constexpr uint16_t kSF = 1u << 6;  // stack fault (with IE; C1 = 1 overflow, 0 underflow)
inline constexpr uint16_t kES = 1u << 7;  // error summary
inline constexpr uint16_t kC0 = 1u << 8;
inline constexpr uint16_t kC1 = 1u << 9;
inline constexpr uint16_t kC2 = 1u << 10;
inline constexpr uint16_t kC3 = 1u << 14;
inline constexpr uint16_t kB = 1u << 15;
inline constexpr uint16_t kTopMask = 7u << 11;
inline constexpr uint16_t kExceptions = 0x3F;  // IE..PE: the bits FCW masks
inline constexpr uint16_t kConditions = kC0 | kC1 | kC2 | kC3;
}  // namespace fsw

// FCW fields.
namespace fcw {
inline constexpr unsigned kPcShift = 8;  // 0 = 24 bits, 2 = 53 bits, 3 = 64 bits
inline constexpr unsigned kRcShift = 10;
enum class Rounding : uint8_t { kNearest = 0, kDown = 1, kUp = 2, kZero = 3 };
inline Rounding rounding(uint16_t cw) {
  return static_cast<Rounding>((cw >> kRcShift) & 3);
}
}  // namespace fcw

namespace f80 {

inline constexpr uint16_t kExpMask = 0x7FFF;
inline constexpr uint16_t kBias = 0x3FFF;
inline constexpr uint64_t kIntegerBit = 1ull << 63;
inline constexpr uint64_t kQuietBit = 1ull << 62;

// The QNaN "real indefinite": the masked response to an invalid operation.
inline constexpr Float80 kIndefinite{0xC000000000000000ull, 0xFFFF};

inline bool sign(const Float80& v) {
  return v.signExponent & 0x8000;
}
inline uint16_t exponent(const Float80& v) {
  return v.signExponent & kExpMask;
}
inline Float80 make(bool negative, uint16_t exp, uint64_t significand) {
  return Float80{significand, uint16_t((negative ? 0x8000 : 0) | (exp & kExpMask))};
}

// What FXAM and the full tag word distinguish. kUnsupported: the encodings
// the 387 and later reject as operands (unnormals, pseudo-NaN, pseudo-infinity);
// kDenormal includes pseudo-denormals (exponent 0 with the integer bit set).
enum class Class : uint8_t { kUnsupported, kNan, kNormal, kInfinity, kZero, kDenormal };
Class classify(const Float80& v);

inline bool isSignalingNan(const Float80& v) {
  return classify(v) == Class::kNan && !(v.significand & kQuietBit);
}

// FXAM's C3 C2 C0 for a register (C1 = sign is added by the caller); empty
// registers are C3 C0 (SDM vol. 2 FXAM table).
uint16_t fxamConditions(const Float80& v, bool empty);

// The full 2-bit tag (FNSTENV/FNSAVE): 0 valid, 1 zero, 2 special, 3 empty.
unsigned fullTag(const Float80& v, bool empty);

// FLD1, FLDL2T, FLDL2E, FLDPI, FLDLG2, FLDLN2, FLDZ (the ModRM byte's low
// three bits of D9 E8..EE). The irrational constants are held to 66 bits and
// rounded to 64 by the rounding control, as the hardware does; PE is not set
// and precision control does not apply (SDM vol. 1 8.3.8).
enum class Constant : uint8_t { kOne, kL2t, kL2e, kPi, kLg2, kLn2, kZero };
Float80 loadConstant(Constant k, fcw::Rounding rc);

// The NaN an operation on two operands returns (SDM vol. 1 table 4-7), at
// least one of them a NaN: of a signaling and a quiet NaN the quiet one,
// else the larger significand, `a` (the destination) on a tie; quieted.
Float80 propagateNan(const Float80& a, const Float80& b);

// FPREM (ieee = false: the quotient truncated) and FPREM1 (ieee = true: to
// nearest) of x = ST0 by y = ST1, in software: the partial remainder's step
// (an exponent reduction of 32 + (D mod 32) when the exponents differ by
// D >= 64, the choice the SDM leaves to the implementation) must not depend
// on the host's vendor. `fsw` carries the guest's condition codes in;
// the result's fsw has the flags (IE, DE, UE) and C0-C3: C2 = 1 for an
// incomplete reduction, else C0 C3 C1 = the quotient's bits 2, 1, 0.
struct Remainder {
  Float80 value;
  uint16_t fsw = 0;
};
Remainder fprem(const Float80& x, const Float80& y, bool ieee, uint16_t fsw, uint16_t fcw);

// ----------------------------------------------------------- host x87
// One host x87 instruction on copies of the operands. The host loads FCW =
// `fcw`, ST1 = st1, ST0 = st0 (so a binary operation of the D8
// register form "ST0 op ST1" reads st0 as its destination operand), executes `op`, and reads back
// the raw FSW (exception flags and C0-C3; TOP and ES/B are the host's), the low byte of RFLAGS
// (FCOMI), ST0 and ST1 after the operation, and the memory operand (at most 16 bytes, addressed as
// [RSI]). The host's own x87 environment is restored afterwards.
enum class HostOp : uint8_t {
  // ST0 = ST0 op ST1 (the D8 C0+i forms with i = 1).
  kFadd,
  kFmul,
  kFsub,
  kFsubr,
  kFdiv,
  kFdivr,
  // ST0 = ST0 op m32fp / m64fp / m32int / m16int (D8 / DC / DA / DE with [RSI]).
  kFaddM32,
  kFmulM32,
  kFsubM32,
  kFsubrM32,
  kFdivM32,
  kFdivrM32,
  kFaddM64,
  kFmulM64,
  kFsubM64,
  kFsubrM64,
  kFdivM64,
  kFdivrM64,
  kFiaddM32,
  kFimulM32,
  kFisubM32,
  kFisubrM32,
  kFidivM32,
  kFidivrM32,
  kFiaddM16,
  kFimulM16,
  kFisubM16,
  kFisubrM16,
  kFidivM16,
  kFidivrM16,
  // Compares of ST0 with ST1 or the memory operand: C0 C2 C3 / RFLAGS.
  kFcom,
  kFucom,
  kFcomi,
  kFucomi,
  kFtst,
  kFcomM32,
  kFcomM64,
  kFicomM32,
  kFicomM16,
  // ST0 (and ST1) in, ST0 (and ST1) out.
  kFprem,
  kFprem1,
  kFscale,
  kFsqrt,
  kFrndint,
  kFxtract,  // pushes: ST0 significand, ST1 exponent
  // Loads: push the converted memory operand (ST0 after).
  kFldM32,
  kFldM64,
  kFildM16,
  kFildM32,
  kFildM64,
  kFbld,
  // Stores of ST0 to the memory operand (the popping forms).
  kFstpM32,
  kFstpM64,
  kFistpM16,
  kFistpM32,
  kFistpM64,
  kFisttpM16,
  kFisttpM32,
  kFisttpM64,
  kFbstp,
};

struct HostIo {
  Float80 st0;
  Float80 st1;
  alignas(16) uint8_t mem[16] = {};
  uint16_t fcw = 0x037F;
  uint16_t fsw = 0;    // out: the host FSW right after the operation
  uint8_t rflags = 0;  // out: RFLAGS[7:0] right after the operation (LAHF)
};

void hostExec(HostOp op, HostIo& io);

// Rounds a binary128 value given as sign, biased exponent (same bias as the
// 80-bit format) and its 113-bit significand (hi: bits 112..64 with the
// integer bit at bit 48 of hi; 0 exponent = binary128 denormal) to the 80-bit
// format with 64-bit precision and rounding control `rc`. Returns the value
// and the FSW bits it raises: PE (+C1 when rounded away from zero in
// magnitude), UE for an inexact result tiny before rounding, OE for overflow.
struct Rounded {
  Float80 value;
  uint16_t flags = 0;
};
Rounded roundQuadBits(bool negative, uint32_t exp, uint64_t hi, uint64_t lo, fcw::Rounding rc);

}  // namespace f80
}  // namespace ttvm::fpu
