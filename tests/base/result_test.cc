#include "ttvm/base/result.h"

#include <gtest/gtest.h>

#include "ttvm/base/log.h"

namespace ttvm {
namespace {

Result<int> parsePositive(int v) {
  if (v <= 0) return makeError("value " + std::to_string(v) + " is not positive");
  return v;
}

Status chain(int v) {
  TTVM_TRY(parsePositive(v));
  return {};
}

TEST(ResultTest, CarriesValueOrError) {
  auto good = parsePositive(3);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 3);
  auto bad = parsePositive(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "value -1 is not positive");
}

TEST(ResultTest, TryPropagatesTheFirstError) {
  EXPECT_TRUE(chain(1).ok());
  Status s = chain(0);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message, "value 0 is not positive");
}

TEST(ResultDeathTest, ValueOfAnErrorIsABugAndNamesTheError) {
  auto bad = parsePositive(-7);
  EXPECT_DEATH((void)bad.value(), "value -7 is not positive");
}

TEST(AssertDeathTest, AssertEqPrintsBothValues) {
  int a = 3, b = 4;
  EXPECT_DEATH(TTVM_ASSERT_EQ(a, b), "a = 3, b = 4");
}

TEST(LogTest, PerModuleLevels) {
  setLogSpec("warn,emulator=debug");
  EXPECT_TRUE(logEnabled("emulator", LogLevel::kDebug));
  EXPECT_FALSE(logEnabled("emulator", LogLevel::kTrace));
  EXPECT_TRUE(logEnabled("recorder", LogLevel::kWarn));
  EXPECT_FALSE(logEnabled("recorder", LogLevel::kInfo));
  setLogSpec("");
}

}  // namespace
}  // namespace ttvm
