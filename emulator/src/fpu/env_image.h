// The x87 environment image of FNSTENV/FLDENV/FNSAVE/FRSTOR as pure functions
// between FpuState and bytes (SDM vol. 1 figures 8-9 to 8-12).
//
// 32-bit protected: 0 FCW  4 FSW  8 FTW  12 FIP  16 FCS | FOP << 16  20 FDP  24 FDS
// 32-bit real/V86:  0 FCW  4 FSW  8 FTW  12 FIP[15:0]  16 FOP | FIP[31:16] << 12
//                   20 FDP[15:0]  24 FDP[31:16] << 12
// 16-bit protected: 0 FCW  2 FSW  4 FTW  6 FIP  8 FCS  10 FDP  12 FDS
// 16-bit real/V86:  0 FCW  2 FSW  4 FTW  6 FIP[15:0]  8 FOP | FIP[19:16] << 12
//                   10 FDP[15:0]  12 FDP[19:16] << 12
// Real-mode pointers are linear (selector * 16 + offset). The upper halves of
// the 32-bit forms' FCW, FSW, FTW and FDS dwords are stored as 0xFFFF (as the
// host CPU writes them). FTW is the full 2-bit tag word, computed from the
// register contents; loading it keeps only empty / not empty.
#pragma once

#include <cstdint>
#include <cstring>

#include "fpu/f80.h"
#include "fpu/fxsave.h"

namespace ttvm::fpu {

struct EnvFormat {
  bool bits32 = true;  // 28-byte layout (else 14)
  bool real = false;   // real-address / virtual-8086 layout
};

inline constexpr unsigned kEnvMaxSize = 28;

inline unsigned envSize(EnvFormat e) {
  return e.bits32 ? 28 : 14;
}

// The full tag word of `f`.
inline uint16_t fullTagWord(const FpuState& f) {
  uint16_t tw = 0;
  for (unsigned p = 0; p < 8; ++p)
    tw = uint16_t(tw | f80::fullTag(f.st[p], !((f.ftw >> p) & 1)) << (2 * p));
  return tw;
}

inline void envImage(const FpuState& f, EnvFormat e, uint8_t* p) {
  using detail::put;
  const uint16_t tw = fullTagWord(f);
  const uint16_t fop = uint16_t(f.fop & 0x7FF);
  if (e.bits32) {
    put<uint32_t>(p, 0, 0xFFFF0000u | f.fcw);
    put<uint32_t>(p, 4, 0xFFFF0000u | f.fsw);
    put<uint32_t>(p, 8, 0xFFFF0000u | tw);
    if (e.real) {
      const uint32_t ip = uint32_t(f.fcs) * 16 + uint32_t(f.fip);
      const uint32_t dp = uint32_t(f.fds) * 16 + uint32_t(f.fdp);
      put<uint32_t>(p, 12, 0xFFFF0000u | (ip & 0xFFFF));
      put<uint32_t>(p, 16, uint32_t(fop) | ((ip >> 16) << 12));
      put<uint32_t>(p, 20, 0xFFFF0000u | (dp & 0xFFFF));
      put<uint32_t>(p, 24, (dp >> 16) << 12);
    } else {
      put<uint32_t>(p, 12, uint32_t(f.fip));
      put<uint32_t>(p, 16, uint32_t(f.fcs) | uint32_t(fop) << 16);
      put<uint32_t>(p, 20, uint32_t(f.fdp));
      put<uint32_t>(p, 24, 0xFFFF0000u | f.fds);
    }
    return;
  }
  put<uint16_t>(p, 0, f.fcw);
  put<uint16_t>(p, 2, f.fsw);
  put<uint16_t>(p, 4, tw);
  if (e.real) {
    const uint32_t ip = uint32_t(f.fcs) * 16 + uint32_t(f.fip);
    const uint32_t dp = uint32_t(f.fds) * 16 + uint32_t(f.fdp);
    put<uint16_t>(p, 6, uint16_t(ip));
    put<uint16_t>(p, 8, uint16_t(fop | ((ip >> 16) & 0xF) << 12));
    put<uint16_t>(p, 10, uint16_t(dp));
    put<uint16_t>(p, 12, uint16_t(((dp >> 16) & 0xF) << 12));
  } else {
    put<uint16_t>(p, 6, uint16_t(f.fip));
    put<uint16_t>(p, 8, f.fcs);
    put<uint16_t>(p, 10, uint16_t(f.fdp));
    put<uint16_t>(p, 12, f.fds);
  }
}

// Loads the environment; FSW's ES/B follow the loaded flags and masks.
inline void loadEnvImage(FpuState& f, EnvFormat e, const uint8_t* p) {
  using detail::get;
  uint16_t tw;
  if (e.bits32) {
    f.fcw = get<uint16_t>(p, 0);
    f.fsw = get<uint16_t>(p, 4);
    tw = get<uint16_t>(p, 8);
    if (e.real) {
      f.fip = (get<uint32_t>(p, 12) & 0xFFFF) | ((get<uint32_t>(p, 16) >> 12) & 0xFFFF) << 16;
      f.fop = uint16_t(get<uint32_t>(p, 16) & 0x7FF);
      f.fdp = (get<uint32_t>(p, 20) & 0xFFFF) | ((get<uint32_t>(p, 24) >> 12) & 0xFFFF) << 16;
      f.fcs = 0;
      f.fds = 0;
    } else {
      f.fip = get<uint32_t>(p, 12);
      f.fcs = get<uint16_t>(p, 16);
      f.fop = uint16_t((get<uint32_t>(p, 16) >> 16) & 0x7FF);
      f.fdp = get<uint32_t>(p, 20);
      f.fds = get<uint16_t>(p, 24);
    }
  } else {
    f.fcw = get<uint16_t>(p, 0);
    f.fsw = get<uint16_t>(p, 2);
    tw = get<uint16_t>(p, 4);
    if (e.real) {
      f.fip = get<uint16_t>(p, 6) | uint32_t(get<uint16_t>(p, 8) >> 12) << 16;
      f.fop = uint16_t(get<uint16_t>(p, 8) & 0x7FF);
      f.fdp = get<uint16_t>(p, 10) | uint32_t(get<uint16_t>(p, 12) >> 12) << 16;
      f.fcs = 0;
      f.fds = 0;
    } else {
      f.fip = get<uint16_t>(p, 6);
      f.fcs = get<uint16_t>(p, 8);
      f.fdp = get<uint16_t>(p, 10);
      f.fds = get<uint16_t>(p, 12);
    }
  }
  uint8_t ftw = 0;
  for (unsigned r = 0; r < 8; ++r)
    if (((tw >> (2 * r)) & 3) != 3) ftw = uint8_t(ftw | (1u << r));
  f.ftw = ftw;
  f.fsw = fswWithSummary(f.fsw, f.fcw);
}

// FNSAVE's register area: ST0..ST7, 10 bytes each.
inline void saveRegisters(const FpuState& f, uint8_t* p) {
  const unsigned top = fpuTop(f);
  for (unsigned i = 0; i < 8; ++i) {
    const Float80& r = f.st[(top + i) & 7];
    detail::put<uint64_t>(p, 10 * i, r.significand);
    detail::put<uint16_t>(p, 10 * i + 8, r.signExponent);
  }
}

inline void loadRegisters(FpuState& f, const uint8_t* p) {
  const unsigned top = fpuTop(f);
  for (unsigned i = 0; i < 8; ++i) {
    Float80& r = f.st[(top + i) & 7];
    r.significand = detail::get<uint64_t>(p, 10 * i);
    r.signExponent = detail::get<uint16_t>(p, 10 * i + 8);
  }
}

}  // namespace ttvm::fpu
