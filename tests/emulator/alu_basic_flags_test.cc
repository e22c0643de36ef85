// instr/basic_flags.h (used by the data and string groups' CMPXCHG, XADD,
// CMPS, SCAS) must agree with alu/flags.h, which flags_host_test.cc checks
// against the host CPU: exhaustively for 8-bit operands and carry-in, by
// sampling for 16/32/64.
#include <gtest/gtest.h>

#include "alu/flags.h"
#include "instr/basic_flags.h"

namespace ttvm {
namespace {

template <class T>
void compare(T a, T b, uint64_t carry) {
  const uint64_t in = flags::kFixed1 | carry;
  const alu::AluResult<T> add = carry ? alu::adc(a, b, in) : alu::add(a, b, in);
  ASSERT_EQ(basicflags::add<T>(a, b, add.value, carry != 0), add.rflags & flags::kArith)
      << "add " << uint64_t(a) << " " << uint64_t(b) << " carry " << carry;
  const alu::AluResult<T> sub = carry ? alu::sbb(a, b, in) : alu::sub(a, b, in);
  ASSERT_EQ(basicflags::sub<T>(a, b, sub.value, carry != 0), sub.rflags & flags::kArith)
      << "sub " << uint64_t(a) << " " << uint64_t(b) << " carry " << carry;
  const alu::AluResult<T> land = alu::andOp(a, b, in);
  ASSERT_EQ(basicflags::logic<T>(land.value), land.rflags & flags::kArith);
}

TEST(AluBasicFlags, Exhaustive8) {
  for (unsigned a = 0; a < 256; ++a)
    for (unsigned b = 0; b < 256; ++b)
      for (uint64_t c = 0; c < 2; ++c) compare<uint8_t>(uint8_t(a), uint8_t(b), c);
}

template <class T>
void sampled() {
  uint64_t s = 0x243F6A8885A308D3ull * sizeof(T);
  for (int n = 0; n < 200000; ++n) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    const T a = T(s), b = (n & 7) == 0 ? a : T(s >> 17 | s << 47);
    compare<T>(a, b, n & 1);
    if (::testing::Test::HasFatalFailure()) return;
  }
}
TEST(AluBasicFlags, Sampled16) {
  sampled<uint16_t>();
}
TEST(AluBasicFlags, Sampled32) {
  sampled<uint32_t>();
}
TEST(AluBasicFlags, Sampled64) {
  sampled<uint64_t>();
}

}  // namespace
}  // namespace ttvm
