// The FNSTENV/FLDENV/FNSAVE images of emulator/src/fpu/env_image.h in their
// four layouts, byte for byte, and FNSTENV/FRSTOR through the CPU in real
// mode with 16-bit operands (the host comparison covers the 32-bit
// protected layout only).
#include "fpu/env_image.h"

#include <gtest/gtest.h>

#include <array>
#include <vector>

#include "cpu_harness.h"

namespace ttvm::cputest {
namespace {

using fpu::EnvFormat;

FpuState sample() {
  FpuState f;
  f.fcw = 0x027F;
  f.fsw = uint16_t(5 << 11 | 0x4100);                // TOP 5, C3 C0
  f.ftw = 0b10100001;                                // R0, R5, R7 valid
  f.st[0] = Float80{0x8000000000000000ull, 0x3FFF};  // valid
  f.st[5] = Float80{0, 0};                           // zero
  f.st[7] = Float80{0x8000000000000000ull, 0x7FFF};  // special (infinity)
  f.fip = 0x1234;
  f.fcs = 0x2000;
  f.fop = 0x5DB;
  f.fdp = 0x5678;
  f.fds = 0x3000;
  return f;
}

// Tags: R7 special (10), R5 zero (01), R0 valid (00), the rest empty (11).
constexpr uint16_t kTags = 0b10'11'01'11'11'11'11'00;

std::vector<uint8_t> image(const FpuState& f, EnvFormat e) {
  std::vector<uint8_t> b(fpu::kEnvMaxSize, 0xAA);
  fpu::envImage(f, e, b.data());
  b.resize(fpu::envSize(e));
  return b;
}

TEST(EnvImage, FullTagWord) {
  EXPECT_EQ(fpu::fullTagWord(sample()), kTags);
}

TEST(EnvImage, Protected32) {
  const std::vector<uint8_t> want = {0x7F, 0x02, 0xFF, 0xFF, 0x00, 0x69, 0xFF, 0xFF, 0xFC, 0xB7,
                                     0xFF, 0xFF, 0x34, 0x12, 0x00, 0x00, 0x00, 0x20, 0xDB, 0x05,
                                     0x78, 0x56, 0x00, 0x00, 0x00, 0x30, 0xFF, 0xFF};
  EXPECT_EQ(image(sample(), {true, false}), want);
}

TEST(EnvImage, Real32) {
  // FIP linear 0x2000 * 16 + 0x1234 = 0x21234, FDP 0x30000 + 0x5678 = 0x35678.
  const std::vector<uint8_t> want = {0x7F, 0x02, 0xFF, 0xFF, 0x00, 0x69, 0xFF, 0xFF, 0xFC, 0xB7,
                                     0xFF, 0xFF, 0x34, 0x12, 0xFF, 0xFF, 0xDB, 0x25, 0x00, 0x00,
                                     0x78, 0x56, 0xFF, 0xFF, 0x00, 0x30, 0x00, 0x00};
  EXPECT_EQ(image(sample(), {true, true}), want);
}

TEST(EnvImage, Protected16) {
  const std::vector<uint8_t> want = {0x7F, 0x02, 0x00, 0x69, 0xFC, 0xB7, 0x34,
                                     0x12, 0x00, 0x20, 0x78, 0x56, 0x00, 0x30};
  EXPECT_EQ(image(sample(), {false, false}), want);
}

TEST(EnvImage, Real16) {
  const std::vector<uint8_t> want = {0x7F, 0x02, 0x00, 0x69, 0xFC, 0xB7, 0x34,
                                     0x12, 0xDB, 0x25, 0x78, 0x56, 0x00, 0x30};
  EXPECT_EQ(image(sample(), {false, true}), want);
}

TEST(EnvImage, LoadIsTheInverseUpToTagsAndSelectors) {
  for (EnvFormat e : {EnvFormat{true, false}, EnvFormat{true, true}, EnvFormat{false, false},
                      EnvFormat{false, true}}) {
    const FpuState f = sample();
    const std::vector<uint8_t> b = image(f, e);
    FpuState g;
    fpu::loadEnvImage(g, e, b.data());
    EXPECT_EQ(g.fcw, f.fcw);
    EXPECT_EQ(g.fsw, f.fsw);
    EXPECT_EQ(g.ftw, f.ftw);
    EXPECT_EQ(g.fop, e.real ? f.fop : (e.bits32 ? f.fop : 0));
    if (e.real) {  // linear pointers, no selectors
      EXPECT_EQ(g.fip, 0x21234u);
      EXPECT_EQ(g.fdp, 0x35678u);
    } else {
      EXPECT_EQ(g.fip, f.fip);
      EXPECT_EQ(g.fcs, f.fcs);
      EXPECT_EQ(g.fdp, f.fdp);
      EXPECT_EQ(g.fds, f.fds);
    }
  }
  // A pending unmasked exception in the image sets ES and B.
  std::vector<uint8_t> b = image(sample(), {false, false});
  b[0] = 0x7E;  // IM clear
  b[2] = 0x01;  // IE
  FpuState g;
  fpu::loadEnvImage(g, {false, false}, b.data());
  EXPECT_EQ(g.fsw & 0x8081, 0x8081);
}

TEST(EnvImage, FnstenvAndFrstorInRealMode) {
  Machine m;
  m.setupReal(0x0000, 0x7C00);
  // fnstenv [0x1000] (14 bytes, real 16-bit layout), then frstor [0x2000].
  m.loadHex(0x7C00, "d9 36 00 10 dd 26 00 20");
  FpuState f = sample();
  m.edit([&](CpuState& s) { s.fpu = f; });
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  const std::vector<uint8_t> want = image(f, {false, true});
  for (unsigned k = 0; k < want.size(); ++k)
    EXPECT_EQ(m.get(0x1000 + k, 1), want[k]) << "byte " << k;
  EXPECT_EQ(m.state().fpu.fcw, 0x027F | 0x3F) << "FNSTENV masks every exception";
  // FRSTOR: 14-byte environment then ST0..ST7.
  std::array<uint8_t, 94> img{};
  FpuState r;
  r.fcw = 0x0F7F;
  r.fsw = uint16_t(2 << 11);
  r.ftw = 0xFF;
  fpu::envImage(r, {false, true}, img.data());
  for (unsigned i = 0; i < 8; ++i) {
    img[14 + 10 * i] = uint8_t(i + 1);
    img[14 + 10 * i + 7] = 0x80;
    img[14 + 10 * i + 8] = 0xFF;
    img[14 + 10 * i + 9] = 0x3F;
  }
  for (unsigned k = 0; k < img.size(); ++k) m.put(0x2000 + k, img[k], 1);
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  const FpuState& g = m.state().fpu;
  EXPECT_EQ(g.fcw, 0x0F7F);
  EXPECT_EQ(fpu::fpuTop(g), 2u);
  EXPECT_EQ(g.ftw, 0xFF);
  EXPECT_EQ(g.st[2].significand, 0x8000000000000001ull) << "ST0 is R[TOP]";
  EXPECT_EQ(g.st[1].significand, 0x8000000000000008ull) << "ST7 is R[TOP+7]";
}

}  // namespace
}  // namespace ttvm::cputest
