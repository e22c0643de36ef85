// The FXSAVE image of fpu/fxsave.h against the host CPU: an image built by
// ttvm is loaded with the host's FXRSTOR and saved again with its FXSAVE;
// the bytes must come back unchanged, and ttvm must read the host's image
// back into the same state. Both the 64-bit (REX.W) and the 32-bit layout.
#include <cpuid.h>
#include <gtest/gtest.h>

#include <array>
#include <cstring>

#include "fpu/fxsave.h"
#include "ttvm/emulator/cpu_model.h"

namespace ttvm::fpu {
namespace {

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

FpuState randomState(uint64_t& seed, FxsaveFormat fmt) {
  FpuState f;
  // FCW: all exceptions masked so the host never traps on the loaded state.
  f.fcw = uint16_t((splitmix(seed) & 0x0F00) | 0x3F | 0x40);
  // FSW: random flags/TOP/condition codes but no pending exception.
  f.fsw = uint16_t(splitmix(seed) & 0x7F40);
  f.ftw = uint8_t(splitmix(seed));
  f.fop = uint16_t(splitmix(seed) & 0x7FF);
  f.fip = splitmix(seed);
  f.fdp = splitmix(seed);
  f.fcs = uint16_t(splitmix(seed));
  f.fds = uint16_t(splitmix(seed));
  if (fmt == FxsaveFormat::k32) {
    f.fip &= 0xFFFFFFFF;
    f.fdp &= 0xFFFFFFFF;
  } else {
    // Canonical 48-bit addresses: the host canonicalises FIP/FDP to its own
    // linear-address width (57 bits with LA57), ttvm to its model's 48.
    f.fip = uint64_t(int64_t(f.fip << 16) >> 16);
    f.fdp = uint64_t(int64_t(f.fdp << 16) >> 16);
    f.fcs = f.fds = 0;
  }
  for (Float80& r : f.st) {
    r.significand = splitmix(seed);
    r.signExponent = uint16_t(splitmix(seed));
  }
  for (Vec128& x : f.xmm) x = {{splitmix(seed), splitmix(seed)}};
  f.mxcsr = uint32_t(0x1F80 | (splitmix(seed) & 0xE07F));  // exceptions masked
  return f;
}

// CPUID.(EAX=7,ECX=0):EBX[13]: the CPU deprecates FCS and FDS and saves them
// as 0 (Intel since Haswell; SDM vol. 1 8.1.8).
bool hostDeprecatesFcsFds() {
  unsigned a, b, c, d;
  return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b >> 13) & 1;
}

// Loads `image` into the host FPU, saves it again into `out`, and puts the
// test's own FPU state back, all in one asm block.
void hostRoundTrip(const uint8_t* image, uint8_t* out, bool rexW) {
  alignas(16) static uint8_t saved[512];
  if (rexW) {
    asm volatile("fxsave64 (%2)\n\tfxrstor64 (%0)\n\tfxsave64 (%1)\n\tfxrstor64 (%2)"
                 :
                 : "r"(image), "r"(out), "r"(saved)
                 : "memory");
  } else {
    asm volatile("fxsave64 (%2)\n\tfxrstor (%0)\n\tfxsave (%1)\n\tfxrstor64 (%2)"
                 :
                 : "r"(image), "r"(out), "r"(saved)
                 : "memory");
  }
}

void roundTrip(FxsaveFormat fmt) {
  uint64_t seed = fmt == FxsaveFormat::k64 ? 1 : 2;
  const bool rexW = fmt == FxsaveFormat::k64;
  int checked = 0;
  for (int n = 0; n < 2000; ++n) {
    FpuState f = randomState(seed, fmt);
    // Every other case has an unmasked invalid-operation exception pending
    // (FSW.IE, ES, B; FCW.IM clear): AMD then saves FOP/FIP/FDP too, so their
    // offsets are checked against the host. The host FPU never executes an
    // x87 instruction while this state is loaded.
    const bool pending = n & 1;
    if (pending) {
      f.fcw = uint16_t(f.fcw & ~1);
      f.fsw = uint16_t(f.fsw | 0x8081);
    }
    alignas(16) std::array<uint8_t, 512> mine, host, again;
    mine.fill(0xA5);
    fxsaveImage(f, fmt, 16, mine);
    // A context switch between the host's FXRSTOR and FXSAVE lets the kernel
    // save and restore the x87 state in between (on AMD with its FXSAVE-leak
    // workaround, which touches the x87 pointers): take the image two round
    // trips in a row agree on.
    for (int attempt = 0; attempt < 5; ++attempt) {
      host.fill(0xA5);
      again.fill(0xA5);
      hostRoundTrip(mine.data(), host.data(), rexW);
      hostRoundTrip(mine.data(), again.data(), rexW);
      if (host == again) break;
    }
    // The oracle property: ttvm's FXRSTOR then FXSAVE gives the host's bytes
    // (this also covers the canonicalisation of FIP/FDP by FXRSTOR64).
    FpuState loaded;
    ASSERT_TRUE(fxrstorImage(loaded, fmt, 16, mine));
    fxsaveImage(loaded, fmt, 16, mine);
    // AMD saves FOP/FIP/FDP (and FCS/FDS) only while FSW.ES is set, which
    // these states never have (no exception is pending); compare them only
    // where the host kept them.
    std::array<uint8_t, 512> masked = mine;
    // Where the host deprecates FCS/FDS the 32-bit image has zeros there.
    const bool noSelectors = fmt == FxsaveFormat::k32 && hostDeprecatesFcsFds();
    if (noSelectors) {
      for (unsigned off : {12u, 20u}) {
        ASSERT_EQ(host[off] | host[off + 1], 0) << "FCS/FDS of a deprecating host, case " << n;
        mine[off] = mine[off + 1] = 0;
      }
      masked = mine;
    }
    bool hostKeepsPointers = std::memcmp(host.data() + 6, mine.data() + 6, 18) == 0;
    if (pending) {
      ASSERT_TRUE(hostKeepsPointers) << "FOP/FIP/FDP with an exception pending, case " << n;
    }
    if (!hostKeepsPointers) std::memcpy(masked.data() + 6, host.data() + 6, 18);
    // MXCSR_MASK is the host CPU's own (e.g. 0x2FFFF on AMD Zen: MM bit).
    std::memcpy(masked.data() + 28, host.data() + 28, 4);
    for (unsigned b = 0; b < 512; ++b) {
      ASSERT_EQ(masked[b], host[b]) << "image byte " << b << " case " << n;
    }
    FpuState back;
    ASSERT_TRUE(fxrstorImage(back, fmt, 16, host));
    if (!hostKeepsPointers) {
      back.fop = loaded.fop, back.fip = loaded.fip, back.fdp = loaded.fdp;
      back.fcs = loaded.fcs, back.fds = loaded.fds;
    } else if (noSelectors) {
      back.fcs = loaded.fcs, back.fds = loaded.fds;
    }
    ASSERT_EQ(back, loaded) << "case " << n;
    ++checked;
  }
  EXPECT_EQ(checked, 2000);
}

TEST(FpuFxsave, Layout64MatchesHost) {
  roundTrip(FxsaveFormat::k64);
}
TEST(FpuFxsave, Layout32MatchesHost) {
  roundTrip(FxsaveFormat::k32);
}

// ttvm's own 32-bit image keeps FCS and FDS: its CPU model does not set
// CPUID.7.0:EBX[13] (FCS/FDS deprecation). On a deprecating host
// Layout32MatchesHost compares those bytes as zeros, so this pins them.
TEST(FpuFxsave, Image32KeepsSelectorsAsTheModelSays) {
  EXPECT_EQ((CpuModel::ttvmDefault().lookup(7, 0).ebx >> 13) & 1, 0u);
  FpuState f;
  f.fop = 0x5AB;
  f.fip = 0x89ABCDEF;
  f.fcs = 0x1234;
  f.fdp = 0x01234567;
  f.fds = 0x5678;
  std::array<uint8_t, 512> img;
  img.fill(0xEE);
  fxsaveImage(f, FxsaveFormat::k32, 8, img);
  uint16_t fop, fcs, fds;
  uint32_t fip, fdp;
  std::memcpy(&fop, img.data() + 6, 2);
  std::memcpy(&fip, img.data() + 8, 4);
  std::memcpy(&fcs, img.data() + 12, 2);
  std::memcpy(&fdp, img.data() + 16, 4);
  std::memcpy(&fds, img.data() + 20, 2);
  EXPECT_EQ(fop, 0x5AB);
  EXPECT_EQ(fip, 0x89ABCDEFu);
  EXPECT_EQ(fcs, 0x1234);
  EXPECT_EQ(fdp, 0x01234567u);
  EXPECT_EQ(fds, 0x5678);
  FpuState back;
  ASSERT_TRUE(fxrstorImage(back, FxsaveFormat::k32, 8, img));
  EXPECT_EQ(back.fcs, 0x1234);
  EXPECT_EQ(back.fds, 0x5678);
}

TEST(FpuFxsave, StackOrderAndWrittenBytes) {
  FpuState f;
  f.fsw = 5 << 11;  // TOP = 5: ST0 is physical register 5
  f.st[5].significand = 0x1111;
  f.st[4].significand = 0x4444;  // ST7
  std::array<uint8_t, 512> img;
  img.fill(0xEE);
  fxsaveImage(f, FxsaveFormat::k32, 8, img);
  uint64_t st0, st7;
  std::memcpy(&st0, img.data() + 32, 8);
  std::memcpy(&st7, img.data() + 32 + 7 * 16, 8);
  EXPECT_EQ(st0, 0x1111u);
  EXPECT_EQ(st7, 0x4444u);
  EXPECT_EQ(img[287], 0);     // last byte of XMM7
  EXPECT_EQ(img[288], 0xEE);  // XMM8 area: not written outside 64-bit mode
  EXPECT_EQ(img[511], 0xEE);
}

TEST(FpuFxsave, Fxrstor64CanonicalisesPointers) {
  std::array<uint8_t, 512> img{};
  uint64_t fip = 0x1234800000001000ull, fdp = 0x00007FFFFFFFFFF0ull;
  std::memcpy(img.data() + 8, &fip, 8);
  std::memcpy(img.data() + 16, &fdp, 8);
  uint32_t mxcsr = 0x1F80;
  std::memcpy(img.data() + 24, &mxcsr, 4);
  FpuState f;
  ASSERT_TRUE(fxrstorImage(f, FxsaveFormat::k64, 16, img));
  EXPECT_EQ(f.fip, 0xFFFF800000001000ull);  // 48-bit linear addresses in ttvm's model
  EXPECT_EQ(f.fdp, 0x00007FFFFFFFFFF0ull);
}

TEST(FpuFxsave, ReservedMxcsrBitsRejected) {
  std::array<uint8_t, 512> img{};
  uint32_t mxcsr = 0x1F80 | 0x10000;
  std::memcpy(img.data() + 24, &mxcsr, 4);
  FpuState f;
  f.fcw = 0x1234;
  EXPECT_FALSE(fxrstorImage(f, FxsaveFormat::k64, 16, img));
  EXPECT_EQ(f.fcw, 0x1234) << "a rejected FXRSTOR must change nothing";
}

TEST(FpuFxsave, FldcwSummaryBits) {
  EXPECT_EQ(fswWithSummary(0x0001, 0x037F), 0x0001);  // IE pending but masked
  EXPECT_EQ(fswWithSummary(0x0001, 0x037E), 0x8081);  // IE unmasked: ES and B
  EXPECT_EQ(fswWithSummary(0x8081, 0x037F), 0x0001);
}

}  // namespace
}  // namespace ttvm::fpu
