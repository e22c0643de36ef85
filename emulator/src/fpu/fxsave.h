// The 512-byte FXSAVE/FXRSTOR image (SDM vol. 1 table 10-2 and 10-3/10-4),
// as pure functions between FpuState and bytes.
//
// Layout (byte offsets):
//   0 FCW  2 FSW  4 abridged FTW  5 reserved  6 FOP (11 bits)
//   32-bit form: 8 FIP[31:0]  12 FCS  16 FDP[31:0]  20 FDS
//   64-bit form (FXSAVE64, REX.W): 8 FIP[63:0]  16 FDP[63:0]
//   24 MXCSR  28 MXCSR_MASK
//   32 + 16*i  ST(i) in stack order (ST0 = physical R[TOP]), 10 bytes + 6 zero
//   160 + 16*i XMMi: 8 registers outside 64-bit mode, 16 in 64-bit mode
// FXSAVE writes bytes [0, 160 + 16 * xmmCount), reserved bytes as 0, and never
// touches the rest (bytes 416..511 are the OS's; measured on the host as well).
#pragma once

#include <cstdint>
#include <cstring>
#include <span>

#include "ttvm/emulator/cpu_state.h"

namespace ttvm::fpu {

// MXCSR bits that may be set (FXSAVE's MXCSR_MASK): DAZ supported.
inline constexpr uint32_t kMxcsrMask = 0xFFFF;
inline constexpr unsigned kFxsaveSize = 512;

enum class FxsaveFormat : uint8_t {
  k32,  // FXSAVE/FXRSTOR outside 64-bit mode, or without REX.W: FIP/FDP 32-bit + selectors
  k64,  // FXSAVE64/FXRSTOR64: FIP/FDP 64-bit
};

// TOP: FSW bits 11-13.
inline unsigned fpuTop(const FpuState& f) {
  return (f.fsw >> 11) & 7;
}

// Number of bytes FXSAVE writes from the start of the image.
inline unsigned fxsaveWrittenBytes(unsigned xmmCount) {
  return 160 + 16 * xmmCount;
}

namespace detail {
template <class T>
inline void put(uint8_t* p, unsigned off, T v) {
  std::memcpy(p + off, &v, sizeof(T));
}
template <class T>
inline T get(const uint8_t* p, unsigned off) {
  T v;
  std::memcpy(&v, p + off, sizeof(T));
  return v;
}
}  // namespace detail

// Writes the image of `f` into out[0, fxsaveWrittenBytes(xmmCount)).
inline void fxsaveImage(const FpuState& f, FxsaveFormat fmt, unsigned xmmCount,
                        std::span<uint8_t, kFxsaveSize> out) {
  using detail::put;
  uint8_t* p = out.data();
  std::memset(p, 0, fxsaveWrittenBytes(xmmCount));
  put<uint16_t>(p, 0, f.fcw);
  put<uint16_t>(p, 2, f.fsw);
  put<uint8_t>(p, 4, f.ftw);
  put<uint16_t>(p, 6, uint16_t(f.fop & 0x7FF));
  if (fmt == FxsaveFormat::k64) {
    put<uint64_t>(p, 8, f.fip);
    put<uint64_t>(p, 16, f.fdp);
  } else {
    put<uint32_t>(p, 8, uint32_t(f.fip));
    put<uint16_t>(p, 12, f.fcs);
    put<uint32_t>(p, 16, uint32_t(f.fdp));
    put<uint16_t>(p, 20, f.fds);
  }
  put<uint32_t>(p, 24, f.mxcsr);
  put<uint32_t>(p, 28, kMxcsrMask);
  const unsigned top = fpuTop(f);
  for (unsigned i = 0; i < 8; ++i) {
    const Float80& r = f.st[(top + i) & 7];
    put<uint64_t>(p, 32 + 16 * i, r.significand);
    put<uint16_t>(p, 40 + 16 * i, r.signExponent);
  }
  for (unsigned i = 0; i < xmmCount; ++i) {
    put<uint64_t>(p, 160 + 16 * i, f.xmm[i].q[0]);
    put<uint64_t>(p, 168 + 16 * i, f.xmm[i].q[1]);
  }
}

// Loads `f` from an image. Returns false, changing nothing, when MXCSR has a
// bit outside kMxcsrMask set (the instruction then raises #GP(0)).
inline bool fxrstorImage(FpuState& f, FxsaveFormat fmt, unsigned xmmCount,
                         std::span<const uint8_t, kFxsaveSize> in) {
  using detail::get;
  const uint8_t* p = in.data();
  const uint32_t mxcsr = get<uint32_t>(p, 24);
  if (mxcsr & ~kMxcsrMask) return false;
  f.fcw = get<uint16_t>(p, 0);
  f.fsw = get<uint16_t>(p, 2);
  f.ftw = get<uint8_t>(p, 4);
  f.fop = uint16_t(get<uint16_t>(p, 6) & 0x7FF);
  if (fmt == FxsaveFormat::k64) {
    // The pointers are linear addresses: kept canonical (sign-extended from
    // bit 47), as the hardware does.
    f.fip = uint64_t(int64_t(get<uint64_t>(p, 8) << 16) >> 16);
    f.fdp = uint64_t(int64_t(get<uint64_t>(p, 16) << 16) >> 16);
    f.fcs = 0;
    f.fds = 0;
  } else {
    f.fip = get<uint32_t>(p, 8);
    f.fcs = get<uint16_t>(p, 12);
    f.fdp = get<uint32_t>(p, 16);
    f.fds = get<uint16_t>(p, 20);
  }
  f.mxcsr = mxcsr;
  const unsigned top = fpuTop(f);
  for (unsigned i = 0; i < 8; ++i) {
    Float80& r = f.st[(top + i) & 7];
    r.significand = get<uint64_t>(p, 32 + 16 * i);
    r.signExponent = get<uint16_t>(p, 40 + 16 * i);
  }
  for (unsigned i = 0; i < xmmCount; ++i) {
    f.xmm[i].q[0] = get<uint64_t>(p, 160 + 16 * i);
    f.xmm[i].q[1] = get<uint64_t>(p, 168 + 16 * i);
  }
  return true;
}

// FNINIT/FINIT: the x87 part of the state after initialisation (MXCSR and
// the XMM registers are not touched).
inline void fpuInit(FpuState& f) {
  f.fcw = 0x037F;
  f.fsw = 0;
  f.ftw = 0;  // abridged: all empty
  f.fop = 0;
  f.fip = 0;
  f.fdp = 0;
  f.fcs = 0;
  f.fds = 0;
}

// FSW.ES (bit 7) and B (bit 15) follow the unmasked pending exceptions
// (FSW bits 0-5 not masked by FCW bits 0-5); FLDCW recomputes them.
inline uint16_t fswWithSummary(uint16_t fsw, uint16_t fcw) {
  const bool pending = (fsw & ~fcw & 0x3F) != 0;
  return pending ? uint16_t(fsw | 0x8080) : uint16_t(fsw & ~0x8080);
}

}  // namespace ttvm::fpu
