// Flag arithmetic the data and string groups need (CMPXCHG, XADD, CMPS,
// SCAS). The ALU group keeps its exhaustively tested versions in
// alu/flags.h; these must agree with them (alu_basic_flags_test.cc).
#pragma once

#include <cstdint>
#include <type_traits>

#include "ttvm/emulator/cpu_state.h"

namespace ttvm::basicflags {

template <typename T>
constexpr uint64_t signBit() {
  return uint64_t{1} << (sizeof(T) * 8 - 1);
}

inline uint64_t parity(uint64_t v) {
  return (__builtin_popcount(static_cast<unsigned>(v & 0xFF)) & 1) ? 0 : flags::kPF;
}

// Flags of r = a + b + carryIn.
template <typename T>
uint64_t add(T a, T b, T r, bool carryIn = false) {
  uint64_t f = 0;
  if (carryIn ? r <= a : r < a) f |= flags::kCF;
  f |= parity(r);
  if ((a ^ b ^ r) & 0x10) f |= flags::kAF;
  if (r == 0) f |= flags::kZF;
  if (r & signBit<T>()) f |= flags::kSF;
  if (((a ^ r) & (b ^ r)) & signBit<T>()) f |= flags::kOF;
  return f;
}

// Flags of r = a - b - borrowIn.
template <typename T>
uint64_t sub(T a, T b, T r, bool borrowIn = false) {
  uint64_t f = 0;
  if (borrowIn ? a <= b : a < b) f |= flags::kCF;
  f |= parity(r);
  if ((a ^ b ^ r) & 0x10) f |= flags::kAF;
  if (r == 0) f |= flags::kZF;
  if (r & signBit<T>()) f |= flags::kSF;
  if (((a ^ b) & (a ^ r)) & signBit<T>()) f |= flags::kOF;
  return f;
}

// Flags of a logic result (CF=OF=0, AF undefined: ttvm clears it like current Intel CPUs).
template <typename T>
uint64_t logic(T r) {
  uint64_t f = parity(r);
  if (r == 0) f |= flags::kZF;
  if (r & signBit<T>()) f |= flags::kSF;
  return f;
}

}  // namespace ttvm::basicflags
