// The flag arithmetic of emulator/src/alu/flags.h checked against the HOST
// CPU executing the same instructions natively.
//
//  - 8-bit forms exhaustively: every operand pair with carry-in 0 and 1 for
//    ADD ADC SUB SBB CMP AND OR XOR TEST, every value for NEG INC DEC, every
//    value and every count 0..255 for SHL SHR SAR ROL ROR RCL RCR, every pair
//    for MUL IMUL, every AX and divisor for DIV IDIV; 16-bit shifts and rotates
//    over every value and every count 0..31.
//  - 16/32/64-bit forms by random sampling (kSamples per op and size), with
//    edge values (0, 1, sign bit, all ones...) mixed in.
//  - DAA DAS AAA AAS AAM AAD are invalid in 64-bit mode. They run on the host
//    CPU in compatibility mode: the test process far-calls into a 32-bit code
//    segment (the kernel's user 32-bit CS), which loops over a table of inputs.
//    Exhaustive: every AL (DAA/DAS) or AX (AAA/AAS) with every CF/AF, every AX
//    with every immediate (AAM/AAD).
//  - DIV/IDIV/AAM cases that raise #DE are not run natively except near the
//    boundary, where the host's SIGFPE is the oracle; everywhere else the test
//    checks that flags.h reports the divide error exactly when the host would
//    (the host is run on every case flags.h says does not fault).
//
// Only flags the SDM calls undefined are masked (see the kUndef* constants in
// flags.h, quoted from the SDM's "Flags Affected"):
//   AND OR XOR TEST: AF.  MUL IMUL: SF ZF AF PF.  DIV IDIV: all six.
//   SHL SHR SAR: AF for count != 0, OF for count > 1; SHL SHR: CF for count >=
//   the operand size.  ROL ROR RCL RCR: OF for
//   masked count > 1.  SHLD SHRD: as shifts; 16-bit count > 16: result and all
//   flags.  BT*: OF SF AF PF.  BSF BSR: CF OF SF AF PF.  TZCNT LZCNT: OF SF AF
//   PF.  DAA DAS: OF.  AAA AAS: OF SF ZF PF.  AAM AAD: OF AF CF.
// Differences in undefined flags between ttvm's choice and the host are
// counted and printed (they are the Intel-vs-this-host differences), not
// failed on.
#include <gtest/gtest.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cpuid.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "alu/flags.h"

namespace ttvm::alu {
namespace {

constexpr uint64_t kSamples = 1'000'000;
// IF and the always-one bit; the arithmetic flags are ORed in per case.
constexpr uint64_t kBaseFlags = 0x202;

// ------------------------------------------------------------------ host ops

template <class T>
struct HostOut {
  T value;
  uint64_t rflags;
};

// Load RFLAGS, run one instruction, read RFLAGS back. The red zone below RSP
// is stepped over because the compiler may keep live data there.
#define TTVM_PRE "lea -128(%%rsp), %%rsp\n\tpush %[f]\n\tpopfq\n\t"
#define TTVM_POST "\n\tpushfq\n\tpop %[f]\n\tlea 128(%%rsp), %%rsp"

#define TTVM_HOST_BINOP(fn, insn)                                                              \
  template <class T>                                                                           \
  HostOut<T> fn(T a, T b, uint64_t f) {                                                        \
    asm(TTVM_PRE insn " %[b], %[a]" TTVM_POST : [a] "+q"(a), [f] "+r"(f) : [b] "q"(b) : "cc"); \
    return {a, f};                                                                             \
  }
TTVM_HOST_BINOP(hostAdd, "add")
TTVM_HOST_BINOP(hostAdc, "adc")
TTVM_HOST_BINOP(hostSub, "sub")
TTVM_HOST_BINOP(hostSbb, "sbb")
TTVM_HOST_BINOP(hostCmp, "cmp")
TTVM_HOST_BINOP(hostAnd, "and")
TTVM_HOST_BINOP(hostOr, "or")
TTVM_HOST_BINOP(hostXor, "xor")
TTVM_HOST_BINOP(hostTest, "test")
TTVM_HOST_BINOP(hostImul2, "imul")  // two-operand form, 16/32/64 only
TTVM_HOST_BINOP(hostBt, "bt")       // register forms: the bit index is reduced mod size
TTVM_HOST_BINOP(hostBts, "bts")
TTVM_HOST_BINOP(hostBtr, "btr")
TTVM_HOST_BINOP(hostBtc, "btc")
TTVM_HOST_BINOP(hostBsf, "bsf")  // a = destination (kept when b == 0), b = source
TTVM_HOST_BINOP(hostBsr, "bsr")
TTVM_HOST_BINOP(hostTzcnt, "tzcnt")
TTVM_HOST_BINOP(hostLzcnt, "lzcnt")
TTVM_HOST_BINOP(hostPopcnt, "popcnt")

#define TTVM_HOST_UNOP(fn, insn)                                              \
  template <class T>                                                          \
  HostOut<T> fn(T a, uint64_t f) {                                            \
    asm(TTVM_PRE insn " %[a]" TTVM_POST : [a] "+q"(a), [f] "+r"(f) : : "cc"); \
    return {a, f};                                                            \
  }
TTVM_HOST_UNOP(hostNeg, "neg")
TTVM_HOST_UNOP(hostInc, "inc")
TTVM_HOST_UNOP(hostDec, "dec")
TTVM_HOST_UNOP(hostBswap, "bswap")  // 32/64 only

#define TTVM_HOST_SHIFT(fn, insn)                                                          \
  template <class T>                                                                       \
  HostOut<T> fn(T a, uint8_t c, uint64_t f) {                                              \
    asm(TTVM_PRE insn " %%cl, %[a]" TTVM_POST : [a] "+q"(a), [f] "+r"(f) : "c"(c) : "cc"); \
    return {a, f};                                                                         \
  }
TTVM_HOST_SHIFT(hostShl, "shl")
TTVM_HOST_SHIFT(hostSal, "sal")
TTVM_HOST_SHIFT(hostShr, "shr")
TTVM_HOST_SHIFT(hostSar, "sar")
TTVM_HOST_SHIFT(hostRol, "rol")
TTVM_HOST_SHIFT(hostRor, "ror")
TTVM_HOST_SHIFT(hostRcl, "rcl")
TTVM_HOST_SHIFT(hostRcr, "rcr")

#define TTVM_HOST_DSHIFT(fn, insn)                  \
  template <class T>                                \
  HostOut<T> fn(T a, T b, uint8_t c, uint64_t f) {  \
    asm(TTVM_PRE insn " %%cl, %[b], %[a]" TTVM_POST \
        : [a] "+r"(a), [f] "+r"(f)                  \
        : [b] "r"(b), "c"(c)                        \
        : "cc");                                    \
    return {a, f};                                  \
  }
TTVM_HOST_DSHIFT(hostShld, "shld")
TTVM_HOST_DSHIFT(hostShrd, "shrd")

HostOut<uint16_t> hostBswap16(uint16_t a, uint64_t f) {
  uint64_t v = 0x1122334455660000ull | a;
  // 66 0F C8 = BSWAP AX (operand-size prefix; undefined in the SDM).
  asm(TTVM_PRE ".byte 0x66, 0x0f, 0xc8" TTVM_POST : "+a"(v), [f] "+r"(f) : : "cc");
  EXPECT_EQ(v >> 16, 0x112233445566ull) << "BSWAP r16 changed bits above 15";
  return {uint16_t(v), f};
}

template <class T>
struct HostMul {
  T lo, hi;
  uint64_t rflags;
};

#define TTVM_HOST_MUL(fn, insn)                                                                    \
  template <class T>                                                                               \
  HostMul<T> fn(T a, T b, uint64_t f) {                                                            \
    if constexpr (sizeof(T) == 1) {                                                                \
      uint16_t ax = a;                                                                             \
      asm(TTVM_PRE insn " %[b]" TTVM_POST : "+a"(ax), [f] "+r"(f) : [b] "q"(b) : "cc");            \
      return {uint8_t(ax), uint8_t(ax >> 8), f};                                                   \
    } else {                                                                                       \
      T lo = a, hi;                                                                                \
      asm(TTVM_PRE insn " %[b]" TTVM_POST : "+a"(lo), "=&d"(hi), [f] "+r"(f) : [b] "r"(b) : "cc"); \
      return {lo, hi, f};                                                                          \
    }                                                                                              \
  }
TTVM_HOST_MUL(hostMul, "mul")
TTVM_HOST_MUL(hostImul, "imul")

// DIV/IDIV hi:lo by d; the caller makes sure it does not fault (or catches it).
#define TTVM_HOST_DIV(fn, insn)                                                                  \
  template <class T>                                                                             \
  HostMul<T> fn(T hi, T lo, T d, uint64_t f) {                                                   \
    if constexpr (sizeof(T) == 1) {                                                              \
      uint16_t ax = uint16_t((hi << 8) | lo);                                                    \
      asm volatile(TTVM_PRE insn " %[d]" TTVM_POST : "+a"(ax), [f] "+r"(f) : [d] "q"(d) : "cc"); \
      return {uint8_t(ax), uint8_t(ax >> 8), f}; /* quotient, remainder */                       \
    } else {                                                                                     \
      asm volatile(TTVM_PRE insn " %[d]" TTVM_POST                                               \
                   : "+a"(lo), "+d"(hi), [f] "+r"(f)                                             \
                   : [d] "r"(d)                                                                  \
                   : "cc");                                                                      \
      return {lo, hi, f};                                                                        \
    }                                                                                            \
  }
TTVM_HOST_DIV(hostDiv, "div")
TTVM_HOST_DIV(hostIdiv, "idiv")

// A native divide that raises #DE: SIGFPE, caught and turned into `true`.
sigjmp_buf gFpeJump;
void onSigfpe(int) {
  siglongjmp(gFpeJump, 1);
}

class FpeCatcher {
 public:
  FpeCatcher() {
    struct sigaction sa {};
    sa.sa_handler = onSigfpe;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGFPE, &sa, &old_);
  }
  ~FpeCatcher() { sigaction(SIGFPE, &old_, nullptr); }

 private:
  struct sigaction old_ {};
};

template <class T, bool kSigned>
bool hostDivFaults(T hi, T lo, T d) {
  if (sigsetjmp(gFpeJump, 1) != 0) return true;
  if constexpr (kSigned) {
    hostIdiv<T>(hi, lo, d, kBaseFlags);
  } else {
    hostDiv<T>(hi, lo, d, kBaseFlags);
  }
  return false;
}

// ------------------------------------------------------------------ checking

// xorshift64*: deterministic, so failures reproduce.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed | 1) {}
  uint64_t next() {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 0x2545F4914F6CDD1Dull;
  }
  // Mostly uniform, sometimes an edge value of T.
  template <class T>
  T operand() {
    uint64_t r = next();
    if ((r & 7) != 0) return T(next());
    constexpr T kMsb = T(T(1) << (sizeof(T) * 8 - 1));
    const T edges[] = {0,    1,    2,    T(~T(0)), kMsb, T(kMsb - 1), T(kMsb + 1), T(~T(0) - 1),
                       0x7F, 0x80, 0xFF, 0x0F,     0x10, 9,           10};
    return edges[(r >> 3) % (sizeof(edges) / sizeof(edges[0]))];
  }
  // Random values for the arithmetic flags, to check what is preserved.
  uint64_t arithFlags() { return next() & kArith; }

 private:
  uint64_t s_;
};

const char* flagName(int bit) {
  switch (bit) {
    case 0: return "CF";
    case 2: return "PF";
    case 4: return "AF";
    case 6: return "ZF";
    case 7: return "SF";
    case 11: return "OF";
    default: return "?";
  }
}

std::string flagList(uint64_t f) {
  std::string s;
  for (int b : {0, 2, 4, 6, 7, 11}) {
    if (f & (1ull << b)) s += std::string(s.empty() ? "" : " ") + flagName(b);
  }
  return s.empty() ? "-" : s;
}

// Counts cases and mismatches of one instruction form; prints the first few
// mismatches and a summary of undefined-flag differences.
class Checker {
 public:
  explicit Checker(std::string name) : name_(std::move(name)) {}
  ~Checker() {
    std::string undef;
    for (int b : {0, 2, 4, 6, 7, 11}) {
      if (undefDiff_[b]) {
        // How the host's value relates to the flag's input value (kept) and
        // how often it is set, over the cases where the flag is undefined.
        char buf[128];
        std::snprintf(buf, sizeof buf, " %s:%" PRIu64 " (host kept %.0f%% set %.0f%%)", flagName(b),
                      undefDiff_[b], 100.0 * undefKept_[b] / undefCases_[b],
                      100.0 * undefSet_[b] / undefCases_[b]);
        undef += buf;
      }
    }
    std::printf("[flags] %-14s %10" PRIu64 " cases, %" PRIu64 " mismatches%s%s%s\n", name_.c_str(),
                cases_, mismatches_,
                undef.empty() ? "" : "; undefined flags differ from host:", undef.c_str(),
                resultUndefDiff_ ? " (undefined result differs)" : "");
    EXPECT_EQ(mismatches_, 0u) << name_;
  }

  // Compares one case. `undef` flags and (if resultUndef) the value are masked.
  void check(uint64_t mineValue, uint64_t mineFlags, uint64_t hostValue, uint64_t hostFlags,
             uint64_t undef, uint64_t in0, uint64_t in1, uint64_t in2, uint64_t inFlags,
             bool resultUndef = false) {
    ++cases_;
    uint64_t diff = (mineFlags ^ hostFlags) & kArith;
    uint64_t undefDiff = diff & undef;
    for (uint64_t d = undefDiff; d; d &= d - 1) ++undefDiff_[std::countr_zero(d)];
    for (uint64_t u = undef & kArith; u; u &= u - 1) {
      int b = std::countr_zero(u);
      ++undefCases_[b];
      undefKept_[b] += ((hostFlags ^ inFlags) >> b & 1) == 0;
      undefSet_[b] += hostFlags >> b & 1;
    }
    if (resultUndef && mineValue != hostValue) ++resultUndefDiff_;
    bool bad = (diff & ~undef) != 0 || (!resultUndef && mineValue != hostValue);
    if (!bad) return;
    if (++mismatches_ <= 8) {
      ADD_FAILURE() << name_ << " in=(0x" << std::hex << in0 << ", 0x" << in1 << ", 0x" << in2
                    << ") flags-in=[" << flagList(inFlags) << "]: ttvm 0x" << mineValue << " ["
                    << flagList(mineFlags) << "], host 0x" << hostValue << " ["
                    << flagList(hostFlags) << "], undefined [" << flagList(undef) << "]";
    }
  }

 private:
  std::string name_;
  uint64_t cases_ = 0;
  uint64_t mismatches_ = 0;
  uint64_t resultUndefDiff_ = 0;
  std::array<uint64_t, 64> undefDiff_{};
  std::array<uint64_t, 64> undefCases_{};
  std::array<uint64_t, 64> undefKept_{};
  std::array<uint64_t, 64> undefSet_{};
};

template <class T>
std::string sized(const char* op) {
  return std::string(op) + std::to_string(sizeof(T) * 8);
}

// ------------------------------------------------------------------ binary ops

template <class T>
struct BinaryOp {
  const char* name;
  AluResult<T> (*mine)(T, T, uint64_t);
  HostOut<T> (*host)(T, T, uint64_t);
  uint64_t undef;
  bool writesResult;
};

template <class T>
std::vector<BinaryOp<T>> binaryOps() {
  return {
      {"add", &add<T>, &hostAdd<T>, 0, true},
      {"adc", &adc<T>, &hostAdc<T>, 0, true},
      {"sub", &sub<T>, &hostSub<T>, 0, true},
      {"sbb", &sbb<T>, &hostSbb<T>, 0, true},
      {"cmp",
       [](T a, T b, uint64_t f) {
         return AluResult<T>{a, cmp(a, b, f)};
       },
       &hostCmp<T>, 0, false},
      {"and", &andOp<T>, &hostAnd<T>, kUndefLogic, true},
      {"or", &orOp<T>, &hostOr<T>, kUndefLogic, true},
      {"xor", &xorOp<T>, &hostXor<T>, kUndefLogic, true},
      {"test",
       [](T a, T b, uint64_t f) {
         return AluResult<T>{a, test(a, b, f)};
       },
       &hostTest<T>, kUndefLogic, false},
  };
}

template <class T>
void checkBinary(const BinaryOp<T>& op, Checker& c, T a, T b, uint64_t fin) {
  AluResult<T> m = op.mine(a, b, fin);
  HostOut<T> h = op.host(a, b, fin);
  c.check(m.value, m.rflags, h.value, h.rflags, op.undef, a, b, 0, fin);
}

TEST(FlagsHost, BinaryExhaustive8) {
  Rng rng(1);
  for (const BinaryOp<uint8_t>& op : binaryOps<uint8_t>()) {
    Checker c(sized<uint8_t>(op.name));
    for (unsigned a = 0; a < 256; ++a) {
      for (unsigned b = 0; b < 256; ++b) {
        for (uint64_t cf = 0; cf < 2; ++cf) {
          uint64_t fin = kBaseFlags | (rng.arithFlags() & ~kCF) | cf;
          checkBinary<uint8_t>(op, c, uint8_t(a), uint8_t(b), fin);
        }
      }
    }
  }
}

template <class T>
void binaryRandom() {
  Rng rng(sizeof(T) * 1000 + 1);
  for (const BinaryOp<T>& op : binaryOps<T>()) {
    Checker c(sized<T>(op.name));
    for (uint64_t i = 0; i < kSamples; ++i) {
      T a = rng.operand<T>();
      T b = (i & 15) == 0 ? a : rng.operand<T>();
      checkBinary<T>(op, c, a, b, kBaseFlags | rng.arithFlags());
    }
  }
}
TEST(FlagsHost, BinaryRandom16) {
  binaryRandom<uint16_t>();
}
TEST(FlagsHost, BinaryRandom32) {
  binaryRandom<uint32_t>();
}
TEST(FlagsHost, BinaryRandom64) {
  binaryRandom<uint64_t>();
}

// ------------------------------------------------------------------ unary ops

template <class T>
struct UnaryOp {
  const char* name;
  AluResult<T> (*mine)(T, uint64_t);
  HostOut<T> (*host)(T, uint64_t);
};

template <class T>
std::vector<UnaryOp<T>> unaryOps() {
  return {
      {"neg", &neg<T>, &hostNeg<T>}, {"inc", &inc<T>, &hostInc<T>}, {"dec", &dec<T>, &hostDec<T>}};
}

template <class T>
void unaryCases(uint64_t n, bool exhaustive) {
  Rng rng(sizeof(T) * 1000 + 2);
  for (const UnaryOp<T>& op : unaryOps<T>()) {
    Checker c(sized<T>(op.name));
    for (uint64_t i = 0; i < n; ++i) {
      T a = exhaustive ? T(i >> 1) : rng.operand<T>();
      uint64_t fin = kBaseFlags | rng.arithFlags();
      if (exhaustive) fin = (fin & ~kCF) | (i & 1);
      AluResult<T> m = op.mine(a, fin);
      HostOut<T> h = op.host(a, fin);
      c.check(m.value, m.rflags, h.value, h.rflags, 0, a, 0, 0, fin);
    }
  }
}
TEST(FlagsHost, UnaryExhaustive8) {
  unaryCases<uint8_t>(512, true);
}
TEST(FlagsHost, UnaryExhaustive16) {
  unaryCases<uint16_t>(131072, true);
}
TEST(FlagsHost, UnaryRandom32) {
  unaryCases<uint32_t>(kSamples, false);
}
TEST(FlagsHost, UnaryRandom64) {
  unaryCases<uint64_t>(kSamples, false);
}

// ------------------------------------------------------------------ shifts

template <class T>
struct ShiftOp {
  const char* name;
  AluResult<T> (*mine)(T, uint8_t, uint64_t);
  HostOut<T> (*host)(T, uint8_t, uint64_t);
  bool rotate;
};

template <class T>
std::vector<ShiftOp<T>> shiftOps() {
  return {
      {"shl", &shl<T>, &hostShl<T>, false}, {"sal", &shl<T>, &hostSal<T>, false},
      {"shr", &shr<T>, &hostShr<T>, false}, {"sar", &sar<T>, &hostSar<T>, false},
      {"rol", &rol<T>, &hostRol<T>, true},  {"ror", &ror<T>, &hostRor<T>, true},
      {"rcl", &rcl<T>, &hostRcl<T>, true},  {"rcr", &rcr<T>, &hostRcr<T>, true},
  };
}

template <class T>
void checkShift(const ShiftOp<T>& op, Checker& c, T a, uint8_t count, uint64_t fin) {
  unsigned masked = count & kCountMask<T>;
  uint64_t undef = op.rotate                       ? undefRotate(masked)
                   : std::string(op.name) == "sar" ? undefShift(masked)
                                                   : undefShiftLogical(masked, sizeof(T) * 8);
  AluResult<T> m = op.mine(a, count, fin);
  HostOut<T> h = op.host(a, count, fin);
  c.check(m.value, m.rflags, h.value, h.rflags, undef, a, count, 0, fin);
}

// Every value with every count 0..255 (8-bit) or 0..31 (16-bit), carry 0 and 1.
template <class T>
void shiftExhaustive(unsigned counts) {
  Rng rng(sizeof(T) * 1000 + 3);
  for (const ShiftOp<T>& op : shiftOps<T>()) {
    Checker c(sized<T>(op.name));
    for (uint64_t a = 0; a <= T(~T(0)); ++a) {
      for (unsigned count = 0; count < counts; ++count) {
        for (uint64_t cf = 0; cf < 2; ++cf) {
          checkShift<T>(op, c, T(a), uint8_t(count), kBaseFlags | (rng.arithFlags() & ~kCF) | cf);
        }
      }
    }
  }
}
TEST(FlagsHost, ShiftExhaustive8) {
  shiftExhaustive<uint8_t>(256);
}
TEST(FlagsHost, ShiftExhaustive16) {
  shiftExhaustive<uint16_t>(32);
}

template <class T>
void shiftRandom() {
  Rng rng(sizeof(T) * 1000 + 4);
  for (const ShiftOp<T>& op : shiftOps<T>()) {
    Checker c(sized<T>(op.name));
    for (uint64_t i = 0; i < kSamples; ++i) {
      // Counts 0..255 with extra weight on 0..size+1.
      uint8_t count = uint8_t((i & 1) ? rng.next() % (sizeof(T) * 8 + 2) : rng.next());
      checkShift<T>(op, c, rng.operand<T>(), count, kBaseFlags | rng.arithFlags());
    }
  }
}
TEST(FlagsHost, ShiftRandom32) {
  shiftRandom<uint32_t>();
}
TEST(FlagsHost, ShiftRandom64) {
  shiftRandom<uint64_t>();
}

// ------------------------------------------------------------------ SHLD/SHRD

template <class T>
void doubleShiftRandom() {
  Rng rng(sizeof(T) * 1000 + 5);
  constexpr unsigned kSize = sizeof(T) * 8;
  struct Op {
    const char* name;
    AluResult<T> (*mine)(T, T, uint8_t, uint64_t);
    HostOut<T> (*host)(T, T, uint8_t, uint64_t);
  };
  for (const Op& op : {Op{"shld", &shld<T>, &hostShld<T>}, Op{"shrd", &shrd<T>, &hostShrd<T>}}) {
    Checker c(sized<T>(op.name));
    for (uint64_t i = 0; i < kSamples; ++i) {
      T d = rng.operand<T>(), s = rng.operand<T>();
      uint8_t count = uint8_t(rng.next());
      if (i & 1) count = uint8_t(count % 34);  // weight the interesting counts
      uint64_t fin = kBaseFlags | rng.arithFlags();
      unsigned masked = count & kCountMask<T>;
      AluResult<T> m = op.mine(d, s, count, fin);
      HostOut<T> h = op.host(d, s, count, fin);
      c.check(m.value, m.rflags, h.value, h.rflags, undefDoubleShift(masked, kSize), d, s, count,
              fin, masked > kSize);
    }
  }
}
TEST(FlagsHost, DoubleShiftRandom16) {
  doubleShiftRandom<uint16_t>();
}
TEST(FlagsHost, DoubleShiftRandom32) {
  doubleShiftRandom<uint32_t>();
}
TEST(FlagsHost, DoubleShiftRandom64) {
  doubleShiftRandom<uint64_t>();
}

// ------------------------------------------------------------------ MUL/IMUL

template <class T>
void mulCases(uint64_t n, bool exhaustive) {
  Rng rng(sizeof(T) * 1000 + 6);
  Checker cm(sized<T>("mul")), ci(sized<T>("imul")), c2(sized<T>("imul.2op"));
  for (uint64_t i = 0; i < n; ++i) {
    T a = exhaustive ? T(i >> 8) : rng.operand<T>();
    T b = exhaustive ? T(i) : rng.operand<T>();
    uint64_t fin = kBaseFlags | rng.arithFlags();
    MulResult<T> m = mul(a, b, fin);
    HostMul<T> h = hostMul(a, b, fin);
    // Compare lo and hi: checks both halves through `value` and `in2`.
    cm.check(m.lo, m.rflags, h.lo, h.rflags, kUndefMul, a, b, 0, fin);
    cm.check(m.hi, m.rflags, h.hi, h.rflags, kUndefMul, a, b, 1, fin);
    MulResult<T> mi = imul(a, b, fin);
    HostMul<T> hi = hostImul(a, b, fin);
    ci.check(mi.lo, mi.rflags, hi.lo, hi.rflags, kUndefMul, a, b, 0, fin);
    ci.check(mi.hi, mi.rflags, hi.hi, hi.rflags, kUndefMul, a, b, 1, fin);
    if constexpr (sizeof(T) > 1) {
      HostOut<T> h2 = hostImul2(a, b, fin);
      c2.check(mi.lo, mi.rflags, h2.value, h2.rflags, kUndefMul, a, b, 2, fin);
    }
  }
}
TEST(FlagsHost, MulExhaustive8) {
  mulCases<uint8_t>(65536, true);
}
TEST(FlagsHost, MulRandom16) {
  mulCases<uint16_t>(kSamples, false);
}
TEST(FlagsHost, MulRandom32) {
  mulCases<uint32_t>(kSamples, false);
}
TEST(FlagsHost, MulRandom64) {
  mulCases<uint64_t>(kSamples, false);
}

// ------------------------------------------------------------------ DIV/IDIV

// Runs DIV (kSigned false) or IDIV on one case: natively when flags.h says it
// does not fault (the host would crash the test otherwise: no hidden skips).
template <class T, bool kSigned>
void checkDivide(Checker& c, T hi, T lo, T d, uint64_t fin) {
  DivResult<T> m = kSigned ? idiv(hi, lo, d) : div(hi, lo, d);
  if (m.fault) return;
  HostMul<T> h = kSigned ? hostIdiv(hi, lo, d, fin) : hostDiv(hi, lo, d, fin);
  // DIV/IDIV leave every flag undefined; ttvm leaves RFLAGS unchanged.
  c.check(m.quotient, fin, h.lo, h.rflags, kUndefDiv, hi, lo, d, fin);
  c.check(m.remainder, fin, h.hi, h.rflags, kUndefDiv, hi, lo, d, fin);
}

// The #DE predicate of flags.h against the host's own SIGFPE, on the cases
// next to the boundary (each divisor's smallest and largest faulting
// dividends and their neighbours) and on random ones.
template <class T, bool kSigned>
void checkDivideFaults(Checker& c, T hi, T lo, T d) {
  DivResult<T> m = kSigned ? idiv(hi, lo, d) : div(hi, lo, d);
  bool host = hostDivFaults<T, kSigned>(hi, lo, d);
  c.check(m.fault, 0, host, 0, 0, hi, lo, d, 0);
}

template <class T, bool kSigned>
void faultBoundary(Checker& c, T d, Rng& rng) {
  using W = typename detail::Wide<T>::U;
  using SW = typename detail::Wide<T>::S;
  using S = std::make_signed_t<T>;
  constexpr unsigned n = sizeof(T) * 8;
  std::vector<W> dividends;
  if constexpr (!kSigned) {
    W first = W(W(d) << n);  // smallest dividend whose quotient does not fit
    dividends = {W(first - 1), first, W(first + 1), W(rng.next())};
  } else {
    // Quotient range [Smin, Smax]: dividends d*Smax + (|d|-1) fit, one more does not.
    SW sd = S(d);
    SW smax = std::numeric_limits<S>::max(), smin = std::numeric_limits<S>::min();
    SW ad = sd < 0 ? -sd : sd;
    for (SW base : {SW(sd * smax), SW(sd * smin)}) {
      for (SW delta : {SW(-ad), SW(-1), SW(0), SW(1), SW(ad - 1), SW(ad), SW(ad + 1)}) {
        dividends.push_back(W(base + delta));
      }
    }
    dividends.push_back(W(rng.next()));
  }
  for (W v : dividends) checkDivideFaults<T, kSigned>(c, T(v >> n), T(v), d);
}

template <class T, bool kSigned>
void divideCases(uint64_t n, bool exhaustive) {
  Rng rng(sizeof(T) * 1000 + 7 + kSigned);
  Checker c(sized<T>(kSigned ? "idiv" : "div"));
  Checker cf(sized<T>(kSigned ? "idiv#DE" : "div#DE"));
  FpeCatcher catcher;
  for (uint64_t i = 0; i < n; ++i) {
    T hi, lo, d;
    if (exhaustive) {
      hi = T(i >> 16), lo = T(i >> 8), d = T(i);
    } else {
      d = rng.operand<T>();
      lo = rng.operand<T>();
      // Keep most dividends in range so that the host runs them.
      hi = (i & 3) == 0 ? rng.operand<T>() : T(d == 0 ? 0 : rng.next() % d);
      if (kSigned && (i & 3) != 0) hi = T(std::make_signed_t<T>(lo) < 0 ? ~T(0) : T(0));
    }
    checkDivide<T, kSigned>(c, hi, lo, d, kBaseFlags | rng.arithFlags());
  }
  // Every divisor of 8-bit (and 1 in 4096 random divisors otherwise) at the boundary.
  uint64_t divisors = sizeof(T) == 1 ? 256 : 4096;
  for (uint64_t i = 0; i < divisors; ++i) {
    faultBoundary<T, kSigned>(cf, sizeof(T) == 1 ? T(i) : rng.operand<T>(), rng);
  }
  for (T d : {T(0), T(1), T(~T(0))}) faultBoundary<T, kSigned>(cf, d, rng);
}
TEST(FlagsHost, DivExhaustive8) {
  divideCases<uint8_t, false>(1u << 24, true);
}
TEST(FlagsHost, IdivExhaustive8) {
  divideCases<uint8_t, true>(1u << 24, true);
}
TEST(FlagsHost, DivRandom16) {
  divideCases<uint16_t, false>(kSamples, false);
}
TEST(FlagsHost, IdivRandom16) {
  divideCases<uint16_t, true>(kSamples, false);
}
TEST(FlagsHost, DivRandom32) {
  divideCases<uint32_t, false>(kSamples, false);
}
TEST(FlagsHost, IdivRandom32) {
  divideCases<uint32_t, true>(kSamples, false);
}
TEST(FlagsHost, DivRandom64) {
  divideCases<uint64_t, false>(kSamples, false);
}
TEST(FlagsHost, IdivRandom64) {
  divideCases<uint64_t, true>(kSamples, false);
}

// ------------------------------------------------------------------ bit ops

bool hostHas(unsigned leaf, int reg, unsigned bit) {
  unsigned r[4];
  if (!__get_cpuid_count(leaf, 0, &r[0], &r[1], &r[2], &r[3])) return false;
  return (r[reg] >> bit) & 1;
}

template <class T>
void bitCases(uint64_t n) {
  Rng rng(sizeof(T) * 1000 + 9);
  struct Op {
    const char* name;
    AluResult<T> (*mine)(T, T, uint64_t);
    HostOut<T> (*host)(T, T, uint64_t);
    uint64_t undef;
  };
  std::vector<Op> ops = {
      {"bt",
       [](T v, T b, uint64_t f) {
         return AluResult<T>{v, bt(v, b, f)};
       },
       &hostBt<T>, kUndefBt},
      {"bts", [](T v, T b, uint64_t f) { return bts(v, b, f); }, &hostBts<T>, kUndefBt},
      {"btr", [](T v, T b, uint64_t f) { return btr(v, b, f); }, &hostBtr<T>, kUndefBt},
      {"btc", [](T v, T b, uint64_t f) { return btc(v, b, f); }, &hostBtc<T>, kUndefBt},
      {"bsf", &bsf<T>, &hostBsf<T>, kUndefBsf},
      {"bsr", &bsr<T>, &hostBsr<T>, kUndefBsf},
  };
  // LZCNT (ABM, CPUID 80000001h ECX bit 5), TZCNT (BMI1, 7.0 EBX bit 3), POPCNT (1 ECX bit 23).
  if (hostHas(0x80000001, 2, 5)) {
    ops.push_back(
        {"lzcnt", [](T, T s, uint64_t f) { return lzcnt(s, f); }, &hostLzcnt<T>, kUndefCount});
  }
  if (hostHas(7, 1, 3)) {
    ops.push_back(
        {"tzcnt", [](T, T s, uint64_t f) { return tzcnt(s, f); }, &hostTzcnt<T>, kUndefCount});
  }
  if (hostHas(1, 2, 23)) {
    ops.push_back({"popcnt", [](T, T s, uint64_t f) { return popcnt(s, f); }, &hostPopcnt<T>, 0});
  }
  for (const Op& op : ops) {
    Checker c(sized<T>(op.name));
    for (uint64_t i = 0; i < n; ++i) {
      T a = rng.operand<T>();
      T b = (i & 7) == 0 ? T(0) : (i & 1) ? T(rng.next() % (sizeof(T) * 8)) : rng.operand<T>();
      uint64_t fin = kBaseFlags | rng.arithFlags();
      AluResult<T> m = op.mine(a, b, fin);
      HostOut<T> h = op.host(a, b, fin);
      c.check(m.value, m.rflags, h.value, h.rflags, op.undef, a, b, 0, fin);
    }
  }
}
TEST(FlagsHost, Bits16) {
  bitCases<uint16_t>(kSamples);
}
TEST(FlagsHost, Bits32) {
  bitCases<uint32_t>(kSamples);
}
TEST(FlagsHost, Bits64) {
  bitCases<uint64_t>(kSamples);
}

TEST(FlagsHost, Bswap) {
  Rng rng(10);
  Checker c16("bswap16"), c32("bswap32"), c64("bswap64");
  for (uint64_t i = 0; i < 65536; ++i) {
    uint64_t fin = kBaseFlags | rng.arithFlags();
    HostOut<uint16_t> h16 = hostBswap16(uint16_t(i), fin);
    c16.check(bswap(uint16_t(i)), fin, h16.value, h16.rflags, 0, i, 0, 0, fin);
    uint32_t v32 = uint32_t(rng.next());
    HostOut<uint32_t> h32 = hostBswap<uint32_t>(v32, fin);
    c32.check(bswap(v32), fin, h32.value, h32.rflags, 0, v32, 0, 0, fin);
    uint64_t v64 = rng.next();
    HostOut<uint64_t> h64 = hostBswap<uint64_t>(v64, fin);
    c64.check(bswap(v64), fin, h64.value, h64.rflags, 0, v64, 0, 0, fin);
  }
}

// ------------------------------------------------------------------ BCD in compatibility mode

// The 32-bit loop runs one patched 2-byte instruction (at ttvm_compat_insn)
// over `count` records {eax, eflags} and stores {eax, eflags} after it.
// ttvm_compat_begin is the 64-bit entry: it saves the 64-bit stack pointer
// and DS/ES, switches to a stack below 4 GiB and far-calls the 32-bit code in
// the kernel's user 32-bit code segment (selector 0x23 on x86-64 Linux).
extern "C" const char ttvm_compat_begin[], ttvm_compat_entry32[], ttvm_compat_insn[],
    ttvm_compat_end[];
asm(R"(
  .pushsection .rodata.ttvm_compat, "a"
  .globl ttvm_compat_begin, ttvm_compat_entry32, ttvm_compat_insn, ttvm_compat_end
  .hidden ttvm_compat_begin, ttvm_compat_entry32, ttvm_compat_insn, ttvm_compat_end
  .code64
ttvm_compat_begin:
  push %rbx
  push %rbp
  push %r12
  push %r13
  push %r14
  push %r15
  mov %rsp, .Lttvm_saved_rsp(%rip)
  mov %ds, %eax
  mov %ax, .Lttvm_saved_ds(%rip)
  mov %es, %eax
  mov %ax, .Lttvm_saved_es(%rip)
  mov 12(%rdi), %esp
  lcall *16(%rdi)
  movzwl .Lttvm_saved_ds(%rip), %eax
  mov %eax, %ds
  movzwl .Lttvm_saved_es(%rip), %eax
  mov %eax, %es
  mov .Lttvm_saved_rsp(%rip), %rsp
  pop %r15
  pop %r14
  pop %r13
  pop %r12
  pop %rbp
  pop %rbx
  ret
  .balign 8
.Lttvm_saved_rsp: .quad 0
.Lttvm_saved_ds: .word 0
.Lttvm_saved_es: .word 0
  .code32
ttvm_compat_entry32:
  push %ebp
  push %ebx
  push %esi
  push %edi
  mov %ss, %eax
  mov %eax, %ds
  mov %eax, %es
  mov 0(%edi), %esi
  mov 4(%edi), %ebx
  mov 8(%edi), %ecx
.Lttvm_loop:
  test %ecx, %ecx
  jz .Lttvm_done
  pushl 4(%esi)
  popfl
  mov 0(%esi), %eax
ttvm_compat_insn:
  nop
  nop
  pushfl
  popl 4(%ebx)
  mov %eax, 0(%ebx)
  add $8, %esi
  add $8, %ebx
  dec %ecx
  jmp .Lttvm_loop
.Lttvm_done:
  pop %edi
  pop %esi
  pop %ebx
  pop %ebp
  lret
  .code64
ttvm_compat_end:
  .popsection
)");

struct CompatRecord {
  uint32_t eax;
  uint32_t eflags;
};

// Memory below 2 GiB (MAP_32BIT) holding the code, a stack and the records.
class CompatRunner {
 public:
  static constexpr size_t kRecords = 1 << 16;
  static constexpr size_t kSize = (1 << 20) + 2 * kRecords * sizeof(CompatRecord);

  CompatRunner() {
    void* p = mmap(nullptr, kSize, PROT_READ | PROT_WRITE | PROT_EXEC,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (p == MAP_FAILED) return;
    low_ = static_cast<uint8_t*>(p);
    std::memcpy(low_, ttvm_compat_begin, size_t(ttvm_compat_end - ttvm_compat_begin));
    args_ = reinterpret_cast<Args*>(low_ + 4096);
    in_ = reinterpret_cast<CompatRecord*>(low_ + (1 << 20));
    out_ = in_ + kRecords;
    args_->in = low32(in_);
    args_->out = low32(out_);
    args_->stackTop = low32(low_ + (1 << 20));
    args_->farOffset = low32(low_ + (ttvm_compat_entry32 - ttvm_compat_begin));
    args_->farSelector = 0x23;
  }
  ~CompatRunner() {
    if (low_) munmap(low_, kSize);
  }
  bool ok() const { return low_ != nullptr; }
  CompatRecord* in() { return in_; }
  const CompatRecord* out() const { return out_; }

  // Runs the 1- or 2-byte instruction over in()[0..count).
  void run(uint8_t b0, uint8_t b1, size_t count) {
    uint8_t* insn = low_ + (ttvm_compat_insn - ttvm_compat_begin);
    insn[0] = b0;
    insn[1] = b1;
    args_->count = uint32_t(count);
    reinterpret_cast<void (*)(Args*)>(low_)(args_);
  }

 private:
  struct Args {
    uint32_t in, out, count, stackTop;
    uint32_t farOffset;  // m16:32 far pointer at offset 16
    uint16_t farSelector;
  };
  static uint32_t low32(const void* p) { return uint32_t(reinterpret_cast<uintptr_t>(p)); }

  uint8_t* low_ = nullptr;
  Args* args_ = nullptr;
  CompatRecord* in_ = nullptr;
  CompatRecord* out_ = nullptr;
};

// Whether 32-bit code can run in this process (a kernel without IA-32
// emulation has no 32-bit user code segment): probed in a child process.
bool compatModeAvailable() {
  static const bool available = [] {
    pid_t pid = fork();
    if (pid == 0) {
      CompatRunner r;
      if (!r.ok()) _exit(2);
      r.in()[0] = {0x9A, uint32_t(kBaseFlags)};
      r.run(0x27, 0x90, 1);  // DAA; NOP
      _exit(r.out()[0].eax == 0 && (r.out()[0].eflags & kCF) ? 0 : 3);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }();
  return available;
}

#define TTVM_REQUIRE_COMPAT()                                                                   \
  if (!compatModeAvailable()) {                                                                 \
    GTEST_SKIP() << "this kernel cannot run 32-bit code (no IA-32 emulation): BCD ops need it"; \
  }

uint64_t flagsIn(uint64_t cf, uint64_t af, Rng& rng) {
  return kBaseFlags | (rng.arithFlags() & ~(kCF | kAF)) | cf | (af ? kAF : 0);
}

TEST(FlagsHost, DaaDasExhaustive) {
  TTVM_REQUIRE_COMPAT();
  CompatRunner r;
  ASSERT_TRUE(r.ok());
  Rng rng(11);
  for (bool isDas : {false, true}) {
    Checker c(isDas ? "das" : "daa");
    size_t n = 0;
    for (uint32_t al = 0; al < 256; ++al) {
      for (uint64_t cf = 0; cf < 2; ++cf) {
        for (uint64_t af = 0; af < 2; ++af) {
          // EAX's upper bytes must survive.
          r.in()[n++] = {0xA5C35A00u | al, uint32_t(flagsIn(cf, af, rng))};
        }
      }
    }
    r.run(isDas ? 0x2F : 0x27, 0x90, n);
    for (size_t i = 0; i < n; ++i) {
      CompatRecord in = r.in()[i], out = r.out()[i];
      AluResult<uint8_t> m =
          isDas ? das(uint8_t(in.eax), in.eflags) : daa(uint8_t(in.eax), in.eflags);
      uint32_t mine = (in.eax & ~0xFFu) | m.value;
      c.check(mine, m.rflags, out.eax, out.eflags, kUndefDaa, in.eax, 0, 0, in.eflags);
    }
  }
}

TEST(FlagsHost, AaaAasExhaustive) {
  TTVM_REQUIRE_COMPAT();
  CompatRunner r;
  ASSERT_TRUE(r.ok());
  Rng rng(12);
  for (bool isAas : {false, true}) {
    Checker c(isAas ? "aas" : "aaa");
    for (uint64_t cf = 0; cf < 2; ++cf) {
      for (uint64_t af = 0; af < 2; ++af) {
        for (uint32_t ax = 0; ax < 65536; ++ax) {
          r.in()[ax] = {0x5A3C0000u | ax, uint32_t(flagsIn(cf, af, rng))};
        }
        r.run(isAas ? 0x3F : 0x37, 0x90, 65536);
        for (uint32_t i = 0; i < 65536; ++i) {
          CompatRecord in = r.in()[i], out = r.out()[i];
          AluResult<uint16_t> m =
              isAas ? aas(uint16_t(in.eax), in.eflags) : aaa(uint16_t(in.eax), in.eflags);
          uint32_t mine = (in.eax & ~0xFFFFu) | m.value;
          c.check(mine, m.rflags, out.eax, out.eflags, kUndefAaa, in.eax, 0, 0, in.eflags);
        }
      }
    }
  }
}

TEST(FlagsHost, AamAadExhaustive) {
  TTVM_REQUIRE_COMPAT();
  CompatRunner r;
  ASSERT_TRUE(r.ok());
  Rng rng(13);
  Checker cm("aam"), cd("aad"), cz("aam0#DE");
  for (bool isAad : {false, true}) {
    for (uint32_t imm = 0; imm < 256; ++imm) {
      if (!isAad && imm == 0) continue;  // #DE: checked below
      for (uint32_t ax = 0; ax < 65536; ++ax) {
        r.in()[ax] = {0xC3A50000u | ax, uint32_t(kBaseFlags | rng.arithFlags())};
      }
      r.run(isAad ? 0xD5 : 0xD4, uint8_t(imm), 65536);
      for (uint32_t i = 0; i < 65536; ++i) {
        CompatRecord in = r.in()[i], out = r.out()[i];
        uint16_t ax = uint16_t(in.eax);
        if (isAad) {
          AluResult<uint16_t> m = aad(ax, uint8_t(imm), in.eflags);
          cd.check((in.eax & ~0xFFFFu) | m.value, m.rflags, out.eax, out.eflags, kUndefAam, ax, imm,
                   0, in.eflags);
        } else {
          AamResult m = aam(ax, uint8_t(imm), in.eflags);
          cm.check((in.eax & ~0xFFFFu) | m.ax, m.rflags, out.eax, out.eflags, kUndefAam, ax, imm, 0,
                   in.eflags);
          cm.check(m.fault, 0, 0, 0, 0, ax, imm, 1, in.eflags);
        }
      }
    }
  }
  // AAM 0 raises #DE on the host (SIGFPE) and in flags.h; run in a child
  // because the fault happens in the 32-bit code segment.
  for (uint16_t ax : {uint16_t(0), uint16_t(0x1234), uint16_t(0xFFFF)}) {
    pid_t pid = fork();
    if (pid == 0) {
      signal(SIGFPE, SIG_DFL);
      CompatRunner child;
      child.in()[0] = {ax, uint32_t(kBaseFlags)};
      child.run(0xD4, 0x00, 1);
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    bool hostFault = WIFSIGNALED(status) && WTERMSIG(status) == SIGFPE;
    cz.check(aam(ax, 0, kBaseFlags).fault, 0, hostFault, 0, 0, ax, 0, 0, 0);
  }
}

// ------------------------------------------------------------------ compile-time

// flags.h is constexpr: a few identities hold at compile time.
static_assert(add<uint8_t>(0xFF, 1, 0).value == 0);
static_assert(add<uint8_t>(0xFF, 1, 0).rflags == (kCF | kZF | kAF | kPF));
static_assert(sub<uint32_t>(0, 1, 0).rflags == (kCF | kSF | kAF | kPF));
static_assert(idiv<uint32_t>(0x80000000u, 0, ~0u).fault);
static_assert(idiv<uint8_t>(0xFF, 0x80, 1).quotient == 0x80);  // -128 / 1 fits
static_assert(div<uint64_t>(1, 0, 2).quotient == 0x8000000000000000ull);
static_assert(rcl<uint8_t>(0x80, 9, 0).rflags == kOF);  // count mod 9 == 0: CF kept, OF written
static_assert(kParityTable[0] == kPF && kParityTable[1] == 0 && kParityTable[3] == kPF);

}  // namespace
}  // namespace ttvm::alu
