// Random, seeded, reproducible instruction sequences for the differential
// tests. The same (options, seed) always gives the same TestCase.
//
// Every memory operand addresses the data/stack pages of layoutFor(mode): the
// generator sets the base/index registers right before the instruction (a
// `mov reg, imm` in the same Unit), or uses absolute, RIP-relative or
// SP-relative forms whose address it knows. SP only moves through PUSH/POP
// whose total is bounded, so any subset of the units (the minimizer drops
// units) still stays inside the stack page.
//
// What is avoided by construction (outcomes the SDM leaves undefined or that
// differ between vendors): BSF/BSR of zero, SHLD/SHRD counts above the operand
// size, reads of undefined flags, 66h-prefixed near branches in 64-bit mode,
// junk in the upper halves of RCX/RSI/RDI for a 32-bit-address REP string
// instruction that runs zero times in 64-bit mode (Intel clears them).
// Divide errors are not avoided: most divisions are prepared so that they do
// not fault, the rest fault, and a #DE is an outcome compared like any other.
#pragma once

#include <cstdint>

#include "diff_program_support.h"

namespace ttvm::difftest {

// Which SSE floating-point instructions to generate.
enum class SseFp : uint8_t {
  kOff,
  // Everything but ADD/SUB/MUL/DIV, whose result, when both operands are
  // NaNs, is the first operand's (SDM vol. 1 table 4-7): QEMU's softfloat,
  // Unicorn's engine, returns the one with the larger significand instead.
  // The rest has no such choice. (MXCSR is not compared by the harness.)
  kNoNanChoice,
  kAll,  // where hardware is on both sides
};

struct GeneratorOptions {
  CodeMode mode = CodeMode::kLong64;
  // Optional instructions: generate them only where every oracle in the
  // comparison implements them (see hostFeatures()).
  bool popcnt = false;
  bool lzcnt = false;
  bool tzcnt = false;  // BMI1: without it F3 0F BC is REP BSF
  bool movbe = false;
  bool sse2 = true;
  // SSE/SSE2 floating point and conversions among the SSE units.
  SseFp sseFp = SseFp::kOff;
  bool allowFaults = true;  // generate divisions that may raise #DE
  // Occasionally misalign the 16-byte memory operand of a legacy SSE
  // instruction (#GP). Off where Unicorn is an oracle: QEMU 5's TCG does not
  // check SSE alignment (SDM Vol. 1 11.6.7 requires #GP).
  bool misalignedSse = false;
  int minUnits = 6;
  int maxUnits = 28;
};

struct Features {
  bool popcnt = false, lzcnt = false, tzcnt = false, movbe = false;
};
// What the host CPU supports (CPUID).
Features hostFeatures();
// Zydis encoder operands: a register, an immediate.
ZydisEncoderOperand opReg(ZydisRegister r);
ZydisEncoderOperand opImm(int64_t v);
Features intersect(Features a, Features b);
void applyFeatures(GeneratorOptions& o, Features f);

TestCase generateTestCase(const GeneratorOptions& opts, uint64_t seed);

}  // namespace ttvm::difftest
