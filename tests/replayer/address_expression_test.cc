// Addresses typed by a person: numbers, guest symbols, $registers, + - * ( )
// and an optional :LEN, with errors that say where the text goes wrong.
#include "ttvm/replayer/address_expression.h"

#include <gtest/gtest.h>

namespace ttvm {
namespace {

class AddressExpressionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    symbols_.addSymbols({{"arena", 0x10e260, 0x8000, SymbolKind::kObject},
                         {"_start.spin", 0x100030, 0, SymbolKind::kFunction},
                         {"key_dup", 0x100eb0, 0x80, SymbolKind::kFunction}},
                        "test");
    cpu_.gpr[static_cast<size_t>(Gpr::kRcx)] = 0x111200;
    cpu_.rip = 0x100f04;
  }
  Result<uint64_t> eval(std::string_view text) { return evaluateAddress(text, symbols_, &cpu_); }
  std::string error(std::string_view text) {
    auto r = parseAddressRange(text, symbols_, &cpu_);
    return r.ok() ? "(no error)" : r.error().message;
  }
  GuestSymbols symbols_;
  CpuState cpu_;
};

TEST_F(AddressExpressionTest, NumbersSymbolsRegistersAndOperators) {
  EXPECT_EQ(eval("0x111208").value(), 0x111208u);
  EXPECT_EQ(eval("4096").value(), 4096u);
  EXPECT_EQ(eval("arena").value(), 0x10e260u);
  EXPECT_EQ(eval("arena+0x2fa8").value(), 0x111208u);
  EXPECT_EQ(eval("arena + 0x2fa8").value(), 0x111208u);
  EXPECT_EQ(eval("arena+0x3000-0x58").value(), 0x111208u);
  EXPECT_EQ(eval("arena+8*3").value(), 0x10e278u);  // * binds tighter
  EXPECT_EQ(eval("(arena+8)*2").value(), 0x21c4d0u);
  EXPECT_EQ(eval("_start.spin+1").value(), 0x100031u);
  EXPECT_EQ(eval("$rcx+8").value(), 0x111208u);
  EXPECT_EQ(eval("$rip-key_dup").value(), 0x54u);
  EXPECT_EQ(eval("0-1").value(), ~uint64_t{0});  // wraps
}

TEST_F(AddressExpressionTest, RangesTakeALength) {
  auto r = parseAddressRange("arena+0x2fa8:8", symbols_, &cpu_);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->address, 0x111208u);
  EXPECT_EQ(r->length, 8u);
  r = parseAddressRange("$rcx+8", symbols_, &cpu_);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->address, 0x111208u);
  EXPECT_EQ(r->length, 1u);
  r = parseAddressRange("arena:2*4", symbols_, &cpu_);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->length, 8u);
}

TEST_F(AddressExpressionTest, ErrorsSayWhereAndWhat) {
  EXPECT_EQ(error("arenax+8"), "in 'arenax+8' at offset 0: 'arenax' is not a guest symbol");
  EXPECT_EQ(error("arena+"),
            "in 'arena+' at offset 6: a number, symbol, $register or '(' is missing");
  EXPECT_EQ(error("(arena+8"), "in '(arena+8' at offset 8: ')' is missing");
  EXPECT_EQ(error("$xyz"), "in '$xyz' at offset 0: no register named 'xyz'");
  EXPECT_EQ(error("0x"), "in '0x' at offset 0: hex digits are missing after 0x");
  EXPECT_EQ(error("12ab"), "in '12ab' at offset 0: not a number");
  EXPECT_EQ(error("0x10000000000000000"), "in '0x10000000000000000' at offset 0: number too large");
  EXPECT_EQ(error("arena#"), "in 'arena#' at offset 5: unexpected '#'");
  EXPECT_EQ(error("arena:0"), "in 'arena:0': the length 0 is not in 1..2^30");
  EXPECT_EQ(error("arena:0x40000001"),
            "in 'arena:0x40000001': the length 1073741825 is not in 1..2^30");
  EXPECT_EQ(error("arena:x"), "length in 'x' at offset 0: 'x' is not a guest symbol");
  EXPECT_EQ(error(""), "in '' at offset 0: a number, symbol, $register or '(' is missing");
  auto noCpu = evaluateAddress("$rax", symbols_, nullptr);
  ASSERT_FALSE(noCpu.ok());
  EXPECT_EQ(noCpu.error().message, "in '$rax' at offset 0: registers are not available here");
}

}  // namespace
}  // namespace ttvm
