// The SSE/SSE2 handlers (emulator/src/fpu/sse.cc) against the HOST CPU:
// every implemented form, register and memory variants, is executed natively
// (its bytes copied between a load and a store of XMM0, XMM1, RAX and a
// 16-byte memory operand at [RSI]) and by the emulator in 64-bit mode, on
// random inputs with edge values mixed in; XMM0, XMM1, RAX, the memory and
// RFLAGS must agree. Plus the fault rules the host cannot show from user
// mode: #UD without CR4.OSFXSR or with CR0.EM, #NM with CR0.TS, #GP on a
// misaligned 128-bit operand.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "cpu_harness.h"
#include "host_thunk_support.h"

namespace ttvm::cputest {
namespace {

constexpr int kCasesPerForm = 1500;

struct Form {
  std::string name;
  std::vector<uint8_t> bytes;  // uses only XMM0, XMM1, RAX and [RSI]
};

std::vector<uint8_t> cat(std::vector<uint8_t> a, std::initializer_list<uint8_t> b) {
  a.insert(a.end(), b);
  return a;
}

std::vector<Form> forms() {
  std::vector<Form> f;
  auto add = [&](std::string name, std::vector<uint8_t> bytes) {
    f.push_back({std::move(name), std::move(bytes)});
  };
  // 128-bit moves: load from xmm1, load from [rsi], store xmm1 to [rsi].
  struct Mov {
    const char* name;
    std::vector<uint8_t> op;  // prefix + 0F + load opcode
    uint8_t storeOpcode;
  };
  for (const Mov& m :
       {Mov{"movdqa", {0x66, 0x0F, 0x6F}, 0x7F}, Mov{"movdqu", {0xF3, 0x0F, 0x6F}, 0x7F},
        Mov{"movaps", {0x0F, 0x28}, 0x29}, Mov{"movups", {0x0F, 0x10}, 0x11},
        Mov{"movapd", {0x66, 0x0F, 0x28}, 0x29}, Mov{"movupd", {0x66, 0x0F, 0x10}, 0x11},
        Mov{"movss", {0xF3, 0x0F, 0x10}, 0x11}, Mov{"movsd", {0xF2, 0x0F, 0x10}, 0x11}}) {
    add(std::string(m.name) + " xmm0, xmm1", cat(m.op, {0xC1}));
    add(std::string(m.name) + " xmm0, [rsi]", cat(m.op, {0x06}));
    std::vector<uint8_t> st = m.op;
    st.back() = m.storeOpcode;
    add(std::string(m.name) + " [rsi], xmm1", cat(st, {0x0E}));
  }
  add("movntdq [rsi], xmm1", {0x66, 0x0F, 0xE7, 0x0E});
  add("movntps [rsi], xmm1", {0x0F, 0x2B, 0x0E});
  add("movntpd [rsi], xmm1", {0x66, 0x0F, 0x2B, 0x0E});
  add("movnti [rsi], eax", {0x0F, 0xC3, 0x06});
  add("movnti [rsi], rax", {0x48, 0x0F, 0xC3, 0x06});
  add("movd xmm0, eax", {0x66, 0x0F, 0x6E, 0xC0});
  add("movd xmm0, [rsi]", {0x66, 0x0F, 0x6E, 0x06});
  add("movd eax, xmm1", {0x66, 0x0F, 0x7E, 0xC8});
  add("movd [rsi], xmm1", {0x66, 0x0F, 0x7E, 0x0E});
  add("movq xmm0, rax", {0x66, 0x48, 0x0F, 0x6E, 0xC0});
  add("movq rax, xmm1", {0x66, 0x48, 0x0F, 0x7E, 0xC8});
  add("movq xmm0, xmm1", {0xF3, 0x0F, 0x7E, 0xC1});
  add("movq xmm0, [rsi]", {0xF3, 0x0F, 0x7E, 0x06});
  add("movq [rsi], xmm1", {0x66, 0x0F, 0xD6, 0x0E});
  add("movq xmm0, xmm1 (66 0F D6)", {0x66, 0x0F, 0xD6, 0xC8});
  add("movlps xmm0, [rsi]", {0x0F, 0x12, 0x06});
  add("movlps [rsi], xmm1", {0x0F, 0x13, 0x0E});
  add("movhps xmm0, [rsi]", {0x0F, 0x16, 0x06});
  add("movhps [rsi], xmm1", {0x0F, 0x17, 0x0E});
  add("movlpd xmm0, [rsi]", {0x66, 0x0F, 0x12, 0x06});
  add("movlpd [rsi], xmm1", {0x66, 0x0F, 0x13, 0x0E});
  add("movhpd xmm0, [rsi]", {0x66, 0x0F, 0x16, 0x06});
  add("movhpd [rsi], xmm1", {0x66, 0x0F, 0x17, 0x0E});
  add("movhlps xmm0, xmm1", {0x0F, 0x12, 0xC1});
  add("movlhps xmm0, xmm1", {0x0F, 0x16, 0xC1});
  // op xmm0, xmm1 / op xmm0, [rsi] with 66 0F xx.
  struct Op {
    const char* name;
    uint8_t opcode;
  };
  std::vector<Op> ops;
  for (const IntegerOpcode& o : kMmxAndSse2IntegerOps) ops.push_back({o.name, o.opcode});
  for (const Op& o : {Op{"punpcklqdq", 0x6C}, Op{"punpckhqdq", 0x6D}, Op{"xorpd", 0x57},
                      Op{"andpd", 0x54}, Op{"andnpd", 0x55}, Op{"orpd", 0x56}}) {
    ops.push_back(o);
  }
  for (const Op& o : ops) {
    add(std::string(o.name) + " xmm0, xmm1", {0x66, 0x0F, o.opcode, 0xC1});
    add(std::string(o.name) + " xmm0, [rsi]", {0x66, 0x0F, o.opcode, 0x06});
  }
  for (const Op& o : {Op{"xorps", 0x57}, Op{"andps", 0x54}, Op{"andnps", 0x55}, Op{"orps", 0x56}}) {
    add(std::string(o.name) + " xmm0, xmm1", {0x0F, o.opcode, 0xC1});
    add(std::string(o.name) + " xmm0, [rsi]", {0x0F, o.opcode, 0x06});
  }
  for (uint8_t imm :
       {0x00, 0x01, 0x07, 0x08, 0x0F, 0x10, 0x1B, 0x20, 0x3F, 0x40, 0x4E, 0xB1, 0xE4, 0xFF}) {
    const std::string s = ", " + std::to_string(imm);
    add("pshufd xmm0, xmm1" + s, {0x66, 0x0F, 0x70, 0xC1, imm});
    add("pshufd xmm0, [rsi]" + s, {0x66, 0x0F, 0x70, 0x06, imm});
    add("pshuflw xmm0, xmm1" + s, {0xF2, 0x0F, 0x70, 0xC1, imm});
    add("pshufhw xmm0, [rsi]" + s, {0xF3, 0x0F, 0x70, 0x06, imm});
    add("shufps xmm0, xmm1" + s, {0x0F, 0xC6, 0xC1, imm});
    add("shufps xmm0, [rsi]" + s, {0x0F, 0xC6, 0x06, imm});
    add("shufpd xmm0, xmm1" + s, {0x66, 0x0F, 0xC6, 0xC1, imm});
    add("psllw xmm0" + s, {0x66, 0x0F, 0x71, 0xF0, imm});
    add("psrlw xmm0" + s, {0x66, 0x0F, 0x71, 0xD0, imm});
    add("psraw xmm0" + s, {0x66, 0x0F, 0x71, 0xE0, imm});
    add("pslld xmm0" + s, {0x66, 0x0F, 0x72, 0xF0, imm});
    add("psrld xmm0" + s, {0x66, 0x0F, 0x72, 0xD0, imm});
    add("psrad xmm0" + s, {0x66, 0x0F, 0x72, 0xE0, imm});
    add("psllq xmm0" + s, {0x66, 0x0F, 0x73, 0xF0, imm});
    add("psrlq xmm0" + s, {0x66, 0x0F, 0x73, 0xD0, imm});
    add("pslldq xmm0" + s, {0x66, 0x0F, 0x73, 0xF8, imm});
    add("psrldq xmm0" + s, {0x66, 0x0F, 0x73, 0xD8, imm});
    add("pextrw eax, xmm1" + s, {0x66, 0x0F, 0xC5, 0xC1, imm});
    add("pinsrw xmm0, eax" + s, {0x66, 0x0F, 0xC4, 0xC0, imm});
    add("pinsrw xmm0, [rsi]" + s, {0x66, 0x0F, 0xC4, 0x06, imm});
  }
  add("pmovmskb eax, xmm1", {0x66, 0x0F, 0xD7, 0xC1});
  add("movmskps eax, xmm1", {0x0F, 0x50, 0xC1});
  add("movmskpd eax, xmm1", {0x66, 0x0F, 0x50, 0xC1});
  add("pmovmskb rax, xmm1 (REX.W)", {0x66, 0x48, 0x0F, 0xD7, 0xC1});
  return f;
}

// The native side: XMM0, XMM1, RAX in and out, RSI -> mem.
struct alignas(16) HostIo {
  uint64_t xmm0[2];
  uint64_t xmm1[2];
  uint64_t rax;
  uint64_t pad;
  uint8_t mem[16];  // offset 48, 16-byte aligned
};
static_assert(offsetof(HostIo, mem) == 48);

class HostThunk {
 public:
  bool ok() const { return page_.ok(); }
  void set(const std::vector<uint8_t>& insn) {
    static const uint8_t kPrologue[] = {
        0xF3, 0x0F, 0x6F, 0x07,        // movdqu xmm0, [rdi]
        0xF3, 0x0F, 0x6F, 0x4F, 0x10,  // movdqu xmm1, [rdi+16]
        0x48, 0x8B, 0x47, 0x20,        // mov rax, [rdi+32]
        0x48, 0x8D, 0x77, 0x30,        // lea rsi, [rdi+48]
    };
    static const uint8_t kEpilogue[] = {
        0xF3, 0x0F, 0x7F, 0x07,        // movdqu [rdi], xmm0
        0xF3, 0x0F, 0x7F, 0x4F, 0x10,  // movdqu [rdi+16], xmm1
        0x48, 0x89, 0x47, 0x20,        // mov [rdi+32], rax
        0xC3,                          // ret
    };
    page_.set(kPrologue, insn, kEpilogue);
  }
  void run(HostIo& io) { page_.call(io); }

 private:
  HostThunkPage page_;
};

class Rng : public SplitMix64 {
 public:
  using SplitMix64::SplitMix64;
  // Random 64 bits with whole bytes forced to 00/FF/80 now and then, and
  // small values (shift counts) sometimes.
  uint64_t value() {
    uint64_t r = next(), v = next();
    switch (r & 7) {
      case 0: return r >> 58;  // 0..63
      case 1: return (r >> 8) & 0xFF;
      case 2: {
        uint8_t b[8];
        std::memcpy(b, &v, 8);
        for (int k = 0; k < 8; ++k) {
          unsigned sel = (r >> (3 + 2 * k)) & 3;
          if (sel == 0) b[k] = 0;
          if (sel == 1) b[k] = 0xFF;
          if (sel == 2) b[k] = 0x80;
        }
        std::memcpy(&v, b, 8);
        return v;
      }
      default: return v;
    }
  }
};

TEST(SseHost, EveryFormMatchesHost) {
  HostThunk thunk;
  ASSERT_TRUE(thunk.ok());
  int formsChecked = 0;
  for (const Form& form : forms()) {
    SCOPED_TRACE(form.name);
    Machine m;
    const uint64_t code = codeAddress(CpuMode::kLong64);
    m.setupLong64(code);
    m.load(code, form.bytes);
    thunk.set(form.bytes);
    Rng rng(std::hash<std::string>{}(form.name));
    for (int n = 0; n < kCasesPerForm; ++n) {
      HostIo in{};
      in.xmm0[0] = rng.value(), in.xmm0[1] = rng.value();
      in.xmm1[0] = rng.value(), in.xmm1[1] = rng.value();
      if (n % 7 == 0) std::memcpy(in.xmm1, in.xmm0, 16);
      in.rax = rng.value();
      for (int k = 0; k < 16; k += 8) {
        uint64_t v = rng.value();
        std::memcpy(in.mem + k, &v, 8);
      }
      HostIo host = in;
      thunk.run(host);

      m.edit([&](CpuState& s) {
        s.rip = code;
        s.fpu.xmm[0] = Vec128{{in.xmm0[0], in.xmm0[1]}};
        s.fpu.xmm[1] = Vec128{{in.xmm1[0], in.xmm1[1]}};
        s.reg(Gpr::kRax) = in.rax;
        s.reg(Gpr::kRsi) = layout::kData;
        s.rflags = 0x2;
      });
      for (int k = 0; k < 16; k += 8) {
        uint64_t v;
        std::memcpy(&v, in.mem + k, 8);
        m.put(layout::kData + k, v, 8);
      }
      const StepResult r = m.step();
      ASSERT_EQ(r.outcome, StepOutcome::kRetired)
          << "vector " << int(r.vector) << " "
          << (m.cpu->unimplementedLog().empty() ? "" : m.cpu->unimplementedLog().back());
      const CpuState s = m.state();
      ASSERT_EQ(s.rip, code + form.bytes.size());
      ASSERT_EQ(s.fpu.xmm[0], (Vec128{{host.xmm0[0], host.xmm0[1]}})) << "xmm0, case " << n;
      ASSERT_EQ(s.fpu.xmm[1], (Vec128{{host.xmm1[0], host.xmm1[1]}})) << "xmm1, case " << n;
      ASSERT_EQ(s.reg(Gpr::kRax), host.rax) << "rax, case " << n;
      uint64_t lo, hi, hlo, hhi;
      std::memcpy(&hlo, host.mem, 8);
      std::memcpy(&hhi, host.mem + 8, 8);
      lo = m.get(layout::kData, 8);
      hi = m.get(layout::kData + 8, 8);
      ASSERT_EQ(lo, hlo) << "mem[0..8), case " << n;
      ASSERT_EQ(hi, hhi) << "mem[8..16), case " << n;
      ASSERT_EQ(s.rflags, 0x2u) << "RFLAGS changed";
    }
    ++formsChecked;
  }
  std::printf("[sse] %d instruction forms x %d random cases match the host\n", formsChecked,
              kCasesPerForm);
}

// One instruction in 64-bit mode with a state edit; returns the step result.
StepResult runOne(const std::string& hex, const std::function<void(CpuState&)>& edit,
                  Machine* keep = nullptr) {
  Machine local;
  Machine& m = keep ? *keep : local;
  const uint64_t code = codeAddress(CpuMode::kLong64);
  m.setupLong64(code);
  // Every exception vector halts, so a fault is reported as kException.
  m.loadHex(layout::kCode + 0x8000, "f4");
  m.setAllIdt64(layout::kCode + 0x8000);
  m.loadHex(code, hex);
  m.edit([&](CpuState& s) {
    s.reg(Gpr::kRsi) = layout::kData;
    edit(s);
  });
  return m.step();
}

void expectFault(const std::string& what, const std::string& hex,
                 const std::function<void(CpuState&)>& edit, uint8_t vector) {
  const StepResult r = runOne(hex, edit);
  EXPECT_EQ(r.outcome, StepOutcome::kException) << what;
  EXPECT_EQ(int(r.vector), int(vector)) << what;
}

void expectRetired(const std::string& what, const std::string& hex,
                   const std::function<void(CpuState&)>& edit) {
  const StepResult r = runOne(hex, edit);
  EXPECT_EQ(r.outcome, StepOutcome::kRetired) << what << " vector " << int(r.vector);
}

TEST(SseFaults, ControlRegisterRules) {
  auto noOsfxsr = [](CpuState& s) { s.cr4 &= ~cr4::kOSFXSR; };
  auto em = [](CpuState& s) { s.cr0 |= cr0::kEM; };
  auto ts = [](CpuState& s) { s.cr0 |= cr0::kTS; };
  auto emTs = [](CpuState& s) { s.cr0 |= cr0::kEM | cr0::kTS; };
  auto none = [](CpuState&) {};
  for (const char* hex :
       {"66 0f ef c1", "66 0f 6f 06", "f3 0f 6f 06", "66 0f 6e c0", "0f 28 c1", "66 0f d7 c1",
        "0f ae 16" /* ldmxcsr [rsi] */, "0f ae 1e" /* stmxcsr [rsi] */}) {
    expectFault(std::string(hex) + " without OSFXSR", hex, noOsfxsr, 6);
    expectFault(std::string(hex) + " with EM", hex, em, 6);
    expectFault(std::string(hex) + " with TS", hex, ts, 7);
    expectFault(std::string(hex) + " with EM+TS (#UD first)", hex, emTs, 6);
    expectRetired(std::string(hex) + " enabled", hex, [](CpuState& s) {
      s.fpu.mxcsr = 0x1F80;
      (void)s;
    });
  }
  // MOVNTI uses no XMM state: no CR0/CR4 checks.
  expectRetired("movnti with EM/TS, no OSFXSR", "0f c3 06", [](CpuState& s) {
    s.cr0 |= cr0::kEM | cr0::kTS;
    s.cr4 &= ~cr4::kOSFXSR;
  });
  // x87 control: #NM with EM or TS; FWAIT only with TS+MP.
  expectFault("fninit with TS", "db e3", ts, 7);
  expectFault("fninit with EM", "db e3", em, 7);
  expectRetired("fninit", "db e3", none);
  expectRetired("fwait with TS, MP clear", "9b", ts);
  expectFault(
      "fwait with TS+MP", "9b", [](CpuState& s) { s.cr0 |= cr0::kTS | cr0::kMP; }, 7);
  expectFault("fxsave with TS", "0f ae 06", ts, 7);
  expectFault("fxsave with EM", "0f ae 06", em, 7);
  expectRetired("fxsave without OSFXSR", "0f ae 06", noOsfxsr);
}

TEST(SseFaults, Alignment) {
  auto misaligned = [](CpuState& s) { s.reg(Gpr::kRsi) = layout::kData + 8; };
  expectFault("movdqa load", "66 0f 6f 06", misaligned, 13);
  expectFault("movaps store", "0f 29 0e", misaligned, 13);
  expectFault("movntdq", "66 0f e7 0e", misaligned, 13);
  expectFault("pxor m128", "66 0f ef 06", misaligned, 13);
  expectFault("pshufd m128", "66 0f 70 06 1b", misaligned, 13);
  expectFault("psllw by m128", "66 0f f1 06", misaligned, 13);
  expectFault("fxsave", "0f ae 06", misaligned, 13);
  expectFault("fxrstor", "0f ae 0e", misaligned, 13);
  expectRetired("movdqu", "f3 0f 6f 06", misaligned);
  expectRetired("movups store", "0f 11 0e", misaligned);
  expectRetired("movq m64", "f3 0f 7e 06", misaligned);
  expectRetired("movlps", "0f 12 06", misaligned);
  expectRetired("movsd", "f2 0f 10 06", misaligned);
}

// The MMX moves (MOVD/MOVQ) follow the x87 rules: #UD with CR0.EM, #NM with
// CR0.TS, regardless of CR4.OSFXSR (the MMX operations: mmx_host_test.cc).
TEST(SseFaults, MmxMoves) {
  auto none = [](CpuState&) {};
  auto em = [](CpuState& s) { s.cr0 |= cr0::kEM; };
  auto ts = [](CpuState& s) { s.cr0 |= cr0::kTS; };
  auto noOsfxsr = [](CpuState& s) { s.cr4 &= ~cr4::kOSFXSR; };
  for (const char* hex : {"0f 6f 06" /* movq mm0, [rsi] */, "0f 6e c0" /* movd mm0, eax */,
                          "0f 7e c0" /* movd eax, mm0 */, "0f 7f 06" /* movq [rsi], mm0 */}) {
    expectRetired(std::string(hex) + " enabled", hex, none);
    expectRetired(std::string(hex) + " without OSFXSR", hex, noOsfxsr);
    expectFault(std::string(hex) + " with EM", hex, em, 6);
    expectFault(std::string(hex) + " with TS", hex, ts, 7);
  }
  expectRetired("emms", "0f 77", none);
}

// PEXTRW m16, xmm, imm8 (66 0F 3A 15, SSE4.1): CPUID does not offer it but
// CPUs run it; it stores the word and leaves every register alone.
TEST(SseHost, PextrwToMemory) {
  Machine m;
  m.put(layout::kData, 0x1111111111111111ull, 8);
  const StepResult r = runOne(
      "66 0f 3a 15 0e 05",
      [](CpuState& s) {
        s.fpu.xmm[1] = Vec128{{0x0004000300020001, 0x0008000700060005}};
        s.reg(Gpr::kRax) = 0xAAAA;
      },
      &m);
  ASSERT_EQ(r.outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.get(layout::kData, 8), 0x1111111111110006ull);
  EXPECT_EQ(m.state().reg(Gpr::kRax), 0xAAAAu);
}

}  // namespace
}  // namespace ttvm::cputest
