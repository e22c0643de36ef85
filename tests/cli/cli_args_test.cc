// The option parsers shared by the ttvm subcommands: every value either
// parses exactly or is refused (never wrapped, rounded or taken as NaN).
#include "cli_args.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace ttvm::cli {
namespace {

TEST(ParseSize, SuffixesAndFractions) {
  uint64_t v = 0;
  EXPECT_TRUE(parseSize("4096", v));
  EXPECT_EQ(v, 4096u);
  EXPECT_TRUE(parseSize("256M", v));
  EXPECT_EQ(v, 256ull << 20);
  EXPECT_TRUE(parseSize("2MiB", v));
  EXPECT_EQ(v, 2ull << 20);
  EXPECT_TRUE(parseSize("1.5G", v));
  EXPECT_EQ(v, 3ull << 29);
  EXPECT_TRUE(parseSize("1T", v));
  EXPECT_EQ(v, 1ull << 40);
  EXPECT_TRUE(parseSize("2TiB", v));
  EXPECT_EQ(v, 2ull << 40);
  EXPECT_TRUE(parseSize("0x1000", v));
  EXPECT_EQ(v, 0x1000u);
  EXPECT_TRUE(parseSize("0x10M", v));
  EXPECT_EQ(v, 16ull << 20);
  EXPECT_TRUE(parseSize("512B", v));
  EXPECT_EQ(v, 512u);
}

TEST(ParseSize, TheLargestValuesAreExactNotWrapped) {
  uint64_t v = 0;
  EXPECT_TRUE(parseSize("18446744073709551615", v));
  EXPECT_EQ(v, UINT64_MAX);
  EXPECT_TRUE(parseSize("16777215T", v));
  EXPECT_EQ(v, 16777215ull << 40);
  v = 7;
  for (const char* s : {"18446744073709551616", "99999999999999999999999", "16777216T",
                        "17179869184G", "0x10000000000000000", "16777215.9999999T"}) {
    EXPECT_FALSE(parseSize(s, v)) << s;
    EXPECT_EQ(v, 7u) << s;
  }
}

TEST(ParseSize, RefusesWhatIsNotAByteCount) {
  uint64_t v = 0;
  for (const char* s : {"", "-1", "+1", " 1", "M", ".", "1.5", "0.1K", "1X", "1MB", "nan", "inf",
                        "1e9", "0x", "0x1p20", "1.5.5G", "1 M"})
    EXPECT_FALSE(parseSize(s, v)) << "'" << s << "'";
}

TEST(ParseU64, WholeStringInRange) {
  uint64_t v = 0;
  EXPECT_TRUE(parseU64("18446744073709551615", v));
  EXPECT_EQ(v, UINT64_MAX);
  EXPECT_TRUE(parseU64("0x7c00", v));
  EXPECT_EQ(v, 0x7c00u);
  for (const char* s : {"", "-1", " 1", "+1", "18446744073709551616", "12abc", "0x"})
    EXPECT_FALSE(parseU64(s, v)) << "'" << s << "'";
}

TEST(ParseSeconds, FiniteNonNegativeAndBounded) {
  double d = -1;
  EXPECT_TRUE(parseSeconds("0", 100, d));
  EXPECT_EQ(d, 0);
  EXPECT_TRUE(parseSeconds("2.5", 100, d));
  EXPECT_EQ(d, 2.5);
  EXPECT_TRUE(parseSeconds("1e2", 100, d));
  EXPECT_EQ(d, 100);
  for (const char* s : {"", "nan", "NaN", "inf", "-inf", "infinity", "-1", "-0", "1e400", "100.5",
                        "0x10", "1s", " 1", "+1"})
    EXPECT_FALSE(parseSeconds(s, 100, d)) << "'" << s << "'";
}

}  // namespace
}  // namespace ttvm::cli
