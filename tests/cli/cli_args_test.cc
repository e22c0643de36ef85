// The option parsers shared by the ttvm subcommands: every value either
// parses exactly or is refused (never wrapped, rounded or taken as NaN), and
// the argument walk of the commands on one trace names what it refuses.
#include "cli_args.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "argv.h"

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

// The options of a made-up command on one trace: every kind of option.
struct Parsed {
  bool flag = false;
  std::string text = "default";
  std::optional<std::string> maybe;
  std::vector<std::string> list;
  uint64_t size = 0, port = 1234;
  std::vector<Option> options() {
    Option output = textOption("-o", text);
    output.alias = "--output";
    return {flagOption("--flag", flag),   output,
            textOption("--maybe", maybe), listOption("--list", list),
            sizeOption("--size", size),   numberOption("--port", port, 65535)};
  }
};

TEST(ParseTraceArgs, TakesEachKindOfOptionAndOneTrace) {
  Parsed p;
  const auto options = p.options();
  auto r = parseTraceArgs(Argv{"cmd", "--flag", "--output", "out", "--list", "a", "t.ttvm",
                               "--list", "b", "--size", "1.5K", "--port", "0x50", "--maybe", ""}
                              .span(),
                          options);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->help);
  EXPECT_EQ(r->trace, "t.ttvm");
  EXPECT_TRUE(p.flag);
  EXPECT_EQ(p.text, "out");
  EXPECT_EQ(p.maybe, std::optional<std::string>(""));
  EXPECT_EQ(p.list, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(p.size, 1536u);
  EXPECT_EQ(p.port, 0x50u);
  // Untouched when not given.
  Parsed q;
  const auto qo = q.options();
  ASSERT_TRUE(parseTraceArgs(Argv{"cmd", "t.ttvm"}.span(), qo).ok());
  EXPECT_FALSE(q.flag);
  EXPECT_EQ(q.text, "default");
  EXPECT_FALSE(q.maybe.has_value());
  EXPECT_EQ(q.port, 1234u);
}

TEST(ParseTraceArgs, HelpStopsTheWalk) {
  Parsed p;
  const auto options = p.options();
  for (const char* h : {"-h", "--help"}) {
    auto r = parseTraceArgs(Argv{"cmd", h, "--no-such-option"}.span(), options);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_TRUE(r->help);
  }
  // An error before it is still an error.
  EXPECT_FALSE(parseTraceArgs(Argv{"cmd", "--no-such-option", "--help"}.span(), options).ok());
}

// Each refusal's message names the argument at fault.
TEST(ParseTraceArgs, ErrorsNameTheOption) {
  Parsed p;
  const auto options = p.options();
  struct Case {
    Argv argv;
    std::string message;
  };
  const Case cases[] = {
      {{"cmd", "t.ttvm", "--no-such-option"}, "unknown option '--no-such-option'"},
      {{"cmd", "t.ttvm", "-x"}, "unknown option '-x'"},
      {{"cmd", "t.ttvm", "--port"}, "--port needs a value"},
      {{"cmd", "t.ttvm", "-o"}, "-o needs a value"},
      {{"cmd", "t.ttvm", "--port", "65536"}, "--port '65536' is not a number in 0..65535"},
      {{"cmd", "t.ttvm", "--port", "12ab"}, "--port '12ab' is not a number in 0..65535"},
      {{"cmd", "t.ttvm", "--port", "-1"}, "--port '-1' is not a number in 0..65535"},
      {{"cmd", "--size", "1X", "t.ttvm"}, "--size '1X' is not a size (e.g. 512M)"},
      {{"cmd"}, "no TRACE given"},
      {{"cmd", "--flag"}, "no TRACE given"},
      {{"cmd", "a.ttvm", "b.ttvm"}, "more than one trace given ('a.ttvm', 'b.ttvm')"},
  };
  for (const Case& c : cases) {
    auto r = parseTraceArgs(c.argv.span(), options);
    ASSERT_FALSE(r.ok()) << c.message;
    EXPECT_EQ(r.error().message, c.message);
  }
}
}  // namespace
}  // namespace ttvm::cli
