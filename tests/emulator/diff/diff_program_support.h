// Shared vocabulary of the differential tests (tests/emulator/diff_*_test.cc):
// a random instruction sequence (Program), its machine-code form (Encoded),
// the architectural state it starts from and ends in (ArchState/Outcome), and
// the comparison of two outcomes that masks exactly the flags the SDM calls
// undefined for the instructions that ran.
//
// A Program is a list of Units. A Unit is the smallest piece the minimizer may
// drop: an instruction together with the preludes that make it well defined
// (e.g. `mov rbx, <address>` before `add [rbx+8], ecx`, `mov cl, 7` before
// `shl eax, cl`). A branch Unit starts with a short forward branch over the
// rest of the unit.
//
// Flag definedness is tracked per instruction: every Insn says which
// arithmetic flags it reads (they must be defined at that point, so the
// outcome cannot depend on an undefined flag), which it sets to defined values
// and which it leaves undefined. encode() replays this over the units and
// refuses a Program that reads an undefined flag; what is still undefined at
// the end (or at a faulting instruction) is masked in the comparison.
#pragma once

#include <Zydis/Zydis.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "ttvm/base/result.h"
#include "ttvm/emulator/cpu_state.h"

namespace ttvm::difftest {

enum class CodeMode : uint8_t { kReal16, kProtected32, kLong64 };
const char* toString(CodeMode m);
// The default operand/address/stack width of the mode in bits.
int modeBits(CodeMode m);
ZydisMachineMode zydisMode(CodeMode m);

// The memory a sequence may touch: a data page followed by a stack page.
inline constexpr uint64_t kMemSize = 0x2000;
// SP/ESP/RSP starts at data + kInitialStackOffset (the middle of the stack page).
inline constexpr uint64_t kInitialStackOffset = 0x1800;
inline constexpr uint64_t kMaxCodeSize = 0x1000;

// Where a sequence lives, as the code sees it: linear addresses in
// protected and long mode; in real mode offsets inside the one segment that
// every segment register holds (linear = segment * 16 + offset).
struct Layout {
  uint64_t code = 0;
  uint64_t data = 0;  // data page at data, stack page at data + 0x1000
  uint16_t realSegment = 0;
  uint64_t linearCode() const { return code + realSegment * 16ull; }
  uint64_t linearData() const { return data + realSegment * 16ull; }
};
Layout layoutFor(CodeMode m);

// One instruction: a Zydis encoder request (operands with absolute addresses
// for RIP-relative memory and branch targets) or hand-encoded bytes.
struct Insn {
  ZydisEncoderRequest req{};
  std::vector<uint8_t> raw;  // used verbatim when non-empty
  uint32_t reads = 0;        // arithmetic flags read; must be defined
  uint32_t defines = 0;      // flags written with defined values
  uint32_t undefines = 0;    // flags the SDM leaves undefined
};

struct Unit {
  std::vector<Insn> insns;
  // insns[0] is a short forward branch whose target is the end of the unit
  // (its request's first operand is patched at encode time).
  bool branch = false;
  // insns[0] is a near CALL to insns[2], insns[1] a short JMP to the end of
  // the unit, and insns[2..] a subroutine ending in RET: executed as CALL,
  // subroutine, RET, JMP (targets patched at encode time).
  bool call = false;
};

struct Program {
  CodeMode mode = CodeMode::kLong64;
  std::vector<Unit> units;
};

struct Encoded {
  std::vector<uint8_t> bytes;
  struct Pos {
    uint32_t offset = 0;
    uint32_t length = 0;
    uint32_t undefinedBefore = 0;  // arithmetic flags undefined when it starts
  };
  std::vector<Pos> insns;  // in address order
  uint32_t undefinedAtEnd = 0;
};

// Lays the program out at `codeAddress` (the address the code sees). Errors:
// an instruction Zydis cannot encode, a branch too far, a flag read while
// undefined, code larger than kMaxCodeSize.
Result<Encoded> encode(const Program& p, uint64_t codeAddress);
// The same for a run of units starting at `codeAddress` with the flags in
// `undefinedIn` already undefined (the generator encodes unit by unit).
Result<Encoded> encodeUnits(const std::vector<Unit>& units, uint64_t codeAddress,
                            uint32_t undefinedIn);

// Architectural state at the start or the end of a sequence. In 16/32-bit
// modes only the low 32 bits of the first 8 GPRs are meaningful. `rip` is an
// address as the code sees it (an offset in real mode).
struct ArchState {
  std::array<uint64_t, 16> gpr{};
  uint64_t rip = 0;
  uint64_t rflags = flags::kFixed1 | flags::kIF;
  std::array<Vec128, 16> xmm{};
  std::vector<uint8_t> mem = std::vector<uint8_t>(kMemSize);
};

// How a run ended: at the end of the code, or at a fault (state as of the
// faulting instruction, which did not retire; rip points at it).
struct Outcome {
  bool faulted = false;
  uint8_t vector = 0;
  ArchState state;
  // Set by a runner whose oracle broke on this case (a documented oracle
  // bug, e.g. Unicorn crashing): the case is excluded, with this reason.
  const char* unreliable = nullptr;
};

struct TestCase {
  uint64_t seed = 0;
  Program program;
  ArchState initial;
};

// Something that executes a test case: the host CPU, Unicorn, ttvm's emulator.
class Runner {
 public:
  virtual ~Runner() = default;
  virtual const char* name() const = 0;
  // An error is a harness failure (not a guest outcome): it says what broke.
  virtual Result<Outcome> run(const TestCase& tc, const Encoded& code) = 0;
};

struct CompareOptions {
  // RFLAGS bits compared (before the undefined ones are removed).
  uint64_t flagMask = 0x3FFFFF & ~flags::kRF;
  bool compareXmm = true;
  int xmmCount = 16;
};

// Differences between `expected` and `actual`, one line each; empty = equal.
std::vector<std::string> compareOutcomes(CodeMode mode, const Encoded& code,
                                         const Outcome& expected, const Outcome& actual,
                                         const CompareOptions& opts);

// Intel-syntax listing with addresses and bytes, one instruction a line.
std::string listing(CodeMode mode, const Encoded& code, uint64_t codeAddress);
// The initial registers, flags and XMM registers, for a report.
std::string describeState(CodeMode mode, const ArchState& s, bool withXmm);
// Name of the last instruction in the program (category of a mismatch).
std::string lastMnemonic(CodeMode mode, const Encoded& code, uint64_t codeAddress);

const char* gprName(CodeMode mode, int i);

}  // namespace ttvm::difftest
