// Shared by the tests that run one instruction natively next to the emulator
// (sse_host_test.cc, sse_fp_host_test.cc): an executable page holding
// prologue + instruction + epilogue, called with a pointer to the test's I/O
// block, and the SplitMix64 generator their operand generators build on.
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
