// Shared by the tests that run one instruction natively next to the emulator
// (sse_host_test.cc, sse_fp_host_test.cc): an executable page holding
// prologue + instruction + epilogue, called with a pointer to the test's I/O
// block, the SplitMix64 generator their operand generators build on, and the
// opcode list of the integer operations with MMX and SSE2 forms.
#pragma once

#include <sys/mman.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace ttvm::cputest {

class HostThunkPage {
 public:
  HostThunkPage() {
    void* p = mmap(nullptr, kSize, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (p != MAP_FAILED) code_ = static_cast<uint8_t*>(p);
  }
  ~HostThunkPage() {
    if (code_) munmap(code_, kSize);
  }
  HostThunkPage(const HostThunkPage&) = delete;
  HostThunkPage& operator=(const HostThunkPage&) = delete;

  bool ok() const { return code_ != nullptr; }
  void set(std::span<const uint8_t> prologue, const std::vector<uint8_t>& insn,
           std::span<const uint8_t> epilogue) {
    uint8_t* p = code_;
    std::memcpy(p, prologue.data(), prologue.size());
    p += prologue.size();
    std::memcpy(p, insn.data(), insn.size());
    p += insn.size();
    std::memcpy(p, epilogue.data(), epilogue.size());
  }
  // Calls the code as void(Io*) (System V: the block's address in RDI).
  template <class Io>
  void call(Io& io) const {
    reinterpret_cast<void (*)(Io*)>(code_)(&io);
  }

 private:
  static constexpr size_t kSize = 4096;
  uint8_t* code_ = nullptr;
};

// The integer operations that have both an MMX form (0F xx) and an SSE2 form
// (66 0F xx), with register-or-memory source: the opcode byte after 0F.
struct IntegerOpcode {
  const char* name;
  uint8_t opcode;
};
inline constexpr IntegerOpcode kMmxAndSse2IntegerOps[] = {
    {"pxor", 0xEF},      {"por", 0xEB},       {"pand", 0xDB},      {"pandn", 0xDF},
    {"pcmpeqb", 0x74},   {"pcmpeqw", 0x75},   {"pcmpeqd", 0x76},   {"pcmpgtb", 0x64},
    {"pcmpgtw", 0x65},   {"pcmpgtd", 0x66},   {"paddb", 0xFC},     {"paddw", 0xFD},
    {"paddd", 0xFE},     {"paddq", 0xD4},     {"psubb", 0xF8},     {"psubw", 0xF9},
    {"psubd", 0xFA},     {"psubq", 0xFB},     {"psubusb", 0xD8},   {"psubusw", 0xD9},
    {"paddusb", 0xDC},   {"paddusw", 0xDD},   {"paddsb", 0xEC},    {"paddsw", 0xED},
    {"psubsb", 0xE8},    {"psubsw", 0xE9},    {"pminub", 0xDA},    {"pmaxub", 0xDE},
    {"pminsw", 0xEA},    {"pmaxsw", 0xEE},    {"pavgb", 0xE0},     {"pavgw", 0xE3},
    {"pmullw", 0xD5},    {"pmulhw", 0xE5},    {"pmulhuw", 0xE4},   {"pmuludq", 0xF4},
    {"pmaddwd", 0xF5},   {"psadbw", 0xF6},    {"packsswb", 0x63},  {"packuswb", 0x67},
    {"packssdw", 0x6B},  {"punpcklbw", 0x60}, {"punpcklwd", 0x61}, {"punpckldq", 0x62},
    {"punpckhbw", 0x68}, {"punpckhwd", 0x69}, {"punpckhdq", 0x6A}, {"psllw", 0xF1},
    {"pslld", 0xF2},     {"psllq", 0xF3},     {"psrlw", 0xD1},     {"psrld", 0xD2},
    {"psrlq", 0xD3},     {"psraw", 0xE1},     {"psrad", 0xE2},
};

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

 private:
  uint64_t s_;
};

}  // namespace ttvm::cputest
