// The differential engine test (issue 14): random 64-bit and 32-bit
// protected-mode programs run on the fast engine (CpuEngine::kFast, exec/block_cache.h) and on the
// reference interpreter in lockstep. Both machines run the same slices (random lengths, so slices
// end inside blocks, at their ends and across chains); after every slice the outcome, the whole
// CpuState and the RAM that the program, its page tables, its stack and its data occupy must be
// equal.
//
// The programs loop over a body of random units built for what the fast
// engine special-cases and what it must get right around them: the fast
// forms (MOV, MOVZX, LEA, ADD..TEST with registers, immediates and memory,
// INC/DEC, shifts, Jcc over the next unit, CALL/RET, PUSH/POP), the forms
// only its compiled code runs (MOVZX from byte/word registers and words,
// NEG/NOT, ROL/ROR, IMUL/MUL, ADC/SBB with immediates, JMP r64, SETcc on
// byte registers, byte and immediate stores, CMP/TEST of memory with an
// immediate, ALU ops with a memory destination, NOPs; exec/block_jit.h),
// loads through FS, readers of
// lazily kept flags (ADC/SBB, SETcc, CMOVcc, PUSHF, LAHF), self-modifying
// stores into later instructions of the body, page-table edits with and
// without INVLPG or a CR3 reload (and loads/stores through the remapped
// window, so A/D bits and stale translations count), TF set mid-block by
// POPF (#DB handler clears it), CLI/STI, #DE from DIV (handler skips it),
// unaligned and page-crossing accesses, and external interrupts injected at
// the same step on both machines; a third of the programs run under a random
// debugger watchpoint, whose stops must match too. The 32-bit programs
// (flat segments, paging on or off; also in compatibility mode) add what
// differs there: one-byte INC/DEC, ESP stack forms, JMP r32, addresses that
// wrap at 4 GiB, 16-bit operand and address sizes and FS/ES overrides
// (interpreted), and ES switched to a based segment and back (compiled code
// must not run while it is). TTVM_BLOCK_DIFF_PROGRAMS sets the count.
#include <gtest/gtest.h>

#include <Zydis/Zydis.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu_harness.h"
#include "diff/diff_generator_support.h"

namespace ttvm::cputest {
namespace {

constexpr uint64_t kHandlers = 0x180000;
constexpr uint64_t kWindow = 0x40000000;  // 4 KiB pages through PT 0x14000
constexpr uint64_t kWindowPhys = 0x300000;
constexpr uint64_t kPt = 0x14000;
constexpr uint8_t kIrqVector = 0x20;

// Registers the body may clobber; r8 = data, r12 = page table, r13 = the
// window, r14 = code, r15 = loop counter, rsp = stack stay fixed.
const ZydisRegister kFree64[] = {ZYDIS_REGISTER_RAX, ZYDIS_REGISTER_RBX, ZYDIS_REGISTER_RCX,
                                 ZYDIS_REGISTER_RDX, ZYDIS_REGISTER_RSI, ZYDIS_REGISTER_RDI,
                                 ZYDIS_REGISTER_RBP, ZYDIS_REGISTER_R9,  ZYDIS_REGISTER_R10,
                                 ZYDIS_REGISTER_R11};
const ZydisRegister kFree32[] = {ZYDIS_REGISTER_EAX, ZYDIS_REGISTER_EBX, ZYDIS_REGISTER_ECX,
                                 ZYDIS_REGISTER_EDX, ZYDIS_REGISTER_ESI, ZYDIS_REGISTER_EDI,
                                 ZYDIS_REGISTER_EBP, ZYDIS_REGISTER_R9D, ZYDIS_REGISTER_R10D,
                                 ZYDIS_REGISTER_R11D};

ZydisEncoderOperand reg(ZydisRegister r) {
  return difftest::opReg(r);
}
ZydisEncoderOperand imm(int64_t v) {
  return difftest::opImm(v);
}
ZydisEncoderOperand mem(ZydisRegister base, int64_t disp, unsigned size) {
  ZydisEncoderOperand o{};
  o.type = ZYDIS_OPERAND_TYPE_MEMORY;
  o.mem.base = base;
  o.mem.displacement = disp;
  o.mem.size = static_cast<ZyanU16>(size);
  return o;
}

std::vector<uint8_t> encode(ZydisMnemonic m, std::initializer_list<ZydisEncoderOperand> ops,
                            ZydisMachineMode mode = ZYDIS_MACHINE_MODE_LONG_64) {
  ZydisEncoderRequest req{};
  req.machine_mode = mode;
  req.mnemonic = m;
  req.operand_count = static_cast<ZyanU8>(ops.size());
  int k = 0;
  for (const ZydisEncoderOperand& o : ops) req.operands[k++] = o;
  uint8_t buf[ZYDIS_MAX_INSTRUCTION_LENGTH];
  ZyanUSize len = sizeof buf;
  const ZyanStatus st = ZydisEncoderEncodeInstruction(&req, buf, &len);
  EXPECT_TRUE(ZYAN_SUCCESS(st)) << "cannot encode mnemonic " << m;
  return std::vector<uint8_t>(buf, buf + (ZYAN_SUCCESS(st) ? len : 0));
}

const ZydisMnemonic kJcc[16] = {
    ZYDIS_MNEMONIC_JO, ZYDIS_MNEMONIC_JNO, ZYDIS_MNEMONIC_JB,  ZYDIS_MNEMONIC_JNB,
    ZYDIS_MNEMONIC_JZ, ZYDIS_MNEMONIC_JNZ, ZYDIS_MNEMONIC_JBE, ZYDIS_MNEMONIC_JNBE,
    ZYDIS_MNEMONIC_JS, ZYDIS_MNEMONIC_JNS, ZYDIS_MNEMONIC_JP,  ZYDIS_MNEMONIC_JNP,
    ZYDIS_MNEMONIC_JL, ZYDIS_MNEMONIC_JNL, ZYDIS_MNEMONIC_JLE, ZYDIS_MNEMONIC_JNLE};
const ZydisMnemonic kSetcc[4] = {ZYDIS_MNEMONIC_SETB, ZYDIS_MNEMONIC_SETZ, ZYDIS_MNEMONIC_SETL,
                                 ZYDIS_MNEMONIC_SETNBE};
const ZydisMnemonic kCmovcc[4] = {ZYDIS_MNEMONIC_CMOVO, ZYDIS_MNEMONIC_CMOVP, ZYDIS_MNEMONIC_CMOVLE,
                                  ZYDIS_MNEMONIC_CMOVNB};
const ZydisMnemonic kAlu[] = {ZYDIS_MNEMONIC_ADD, ZYDIS_MNEMONIC_SUB, ZYDIS_MNEMONIC_AND,
                              ZYDIS_MNEMONIC_OR,  ZYDIS_MNEMONIC_XOR, ZYDIS_MNEMONIC_CMP,
                              ZYDIS_MNEMONIC_TEST};

// 32-bit programs (RandomProtectedModeProgramsMatch...): EBX = data, ESP =
// stack; the loop counter is in memory.
const ZydisRegister kFree32Only[] = {ZYDIS_REGISTER_EAX, ZYDIS_REGISTER_ECX, ZYDIS_REGISTER_EDX,
                                     ZYDIS_REGISTER_ESI, ZYDIS_REGISTER_EDI, ZYDIS_REGISTER_EBP};
constexpr uint64_t kCounter32 = layout::kData + 0x4000;
constexpr uint16_t kBasedData = 0x58;  // a data segment based at 0x10 (not flat)

// A random program: the loop body's bytes, its self-modifying stores patched
// to aim at the immediates of its `mov r32, imm32` units. `mode32`: for
// 32-bit protected or compatibility mode (with `paging`, the window and its
// page-table edits, `pteBytes` a page-table entry's size).
class ProgramGenerator {
 public:
  explicit ProgramGenerator(uint64_t seed, bool mode32 = false, bool paging = true,
                            unsigned pteBytes = 4)
      : rng_(seed), m32_(mode32), paging_(paging), pteBytes_(pteBytes) {}

  std::vector<uint8_t> body() {
    std::vector<std::vector<uint8_t>> units;
    std::vector<size_t> smcStores, smcTargets;
    const int n = 20 + below(60);
    for (int k = 0; k < n; ++k) {
      bool isStore = false, isTarget = false;
      std::vector<uint8_t> u = unit(isStore, isTarget);
      // A Jcc mostly right after a flag-setting fast op, with operands that
      // are often equal or small, so that every condition is taken both ways
      // from lazily kept flags.
      if (u.size() == 1 && u[0] == kJccMarker && below(4) != 0) units.push_back(edgyAlu());
      units.push_back(u);
      if (isStore) smcStores.push_back(units.size() - 1);
      if (isTarget) smcTargets.push_back(units.size() - 1);
    }
    // Jcc units skip the unit after them: encode with its length now.
    std::vector<uint8_t> out;
    std::vector<size_t> offsets;
    for (size_t k = 0; k < units.size(); ++k) {
      if (units[k].size() == 1 && units[k][0] == kJccMarker) {
        const size_t skip = k + 1 < units.size() ? units[k + 1].size() : 0;
        units[k] = enc(kJcc[below(16)], {imm(static_cast<int64_t>(skip))});
      }
    }
    for (const auto& u : units) {
      offsets.push_back(out.size());
      out.insert(out.end(), u.begin(), u.end());
    }
    // mov byte [r14 + disp32], imm8 (41 C6 86 disp32 imm8; 32-bit: C6 05
    // abs32 imm8): aim at a target's immediate, or at its own bytes'
    // neighbourhood when there is none.
    for (size_t s : smcStores) {
      uint32_t disp = static_cast<uint32_t>(offsets[s] + 8);
      if (!smcTargets.empty()) {
        const size_t t = smcTargets[below(static_cast<int>(smcTargets.size()))];
        disp = static_cast<uint32_t>(offsets[t] + 1 + below(4));
      }
      if (m32_) disp += static_cast<uint32_t>(layout::kCode);
      std::memcpy(&out[offsets[s] + (m32_ ? 2 : 3)], &disp, 4);
    }
    return out;
  }

 private:
  static constexpr uint8_t kJccMarker = 0xF1;  // placeholder, replaced above

  int below(int n) { return static_cast<int>(rng_() % static_cast<uint64_t>(n)); }
  ZydisRegister r64() { return kFree64[below(10)]; }
  ZydisRegister r32() { return m32_ ? kFree32Only[below(6)] : kFree32[below(10)]; }
  ZydisRegister rw(bool wide) { return wide ? r64() : r32(); }
  std::vector<uint8_t> enc(ZydisMnemonic m, std::initializer_list<ZydisEncoderOperand> ops) {
    return encode(m, ops, m32_ ? ZYDIS_MACHINE_MODE_LEGACY_32 : ZYDIS_MACHINE_MODE_LONG_64);
  }
  int64_t dataDisp(unsigned size) {
    switch (below(8)) {
      case 0: return 0x1000 - 1 - below(static_cast<int>(size) - 1 + 1);  // page-crossing
      case 1: return below(0x4000 - 8) | 1;                               // unaligned
      default: return below(0x4000 / 8) * 8;
    }
  }
  int64_t edgyImm() {
    const int64_t v[] = {0, 1, -1, 0x7F, -128, 2, -2};
    return below(3) ? v[below(7)] : static_cast<int8_t>(rng_());
  }
  std::vector<uint8_t> edgyAlu() {
    const bool wide = !m32_ && below(2);
    const ZydisRegister a = rw(wide);
    const ZydisMnemonic m = kAlu[below(7)];
    if (below(3) == 0) return enc(m, {reg(a), imm(edgyImm())});
    return enc(m, {reg(a), reg(below(3) == 0 ? a : rw(wide))});
  }
  std::vector<uint8_t> cat(std::vector<uint8_t> a, const std::vector<uint8_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }

  std::vector<uint8_t> unit(bool& smcStore, bool& smcTarget) {
    if (m32_) return unit32(smcStore, smcTarget);
    const bool wide = below(2);
    const unsigned size = wide ? 8 : 4;
    switch (below(41)) {
      case 0: return encode(ZYDIS_MNEMONIC_MOV, {reg(rw(wide)), reg(rw(wide))});
      case 1:
        return encode(ZYDIS_MNEMONIC_MOV,
                      {reg(rw(wide)), imm(below(2) ? edgyImm() : static_cast<int32_t>(rng_()))});
      case 2:
        return encode(ZYDIS_MNEMONIC_MOV,
                      {reg(rw(wide)), mem(ZYDIS_REGISTER_R8, dataDisp(size), size)});
      case 3:
        return encode(ZYDIS_MNEMONIC_MOV,
                      {mem(ZYDIS_REGISTER_R8, dataDisp(size), size), reg(rw(wide))});
      case 4:
        return encode(ZYDIS_MNEMONIC_MOVZX,
                      {reg(rw(wide)), mem(ZYDIS_REGISTER_R8, dataDisp(1), 1)});
      case 5: {
        ZydisEncoderOperand m = mem(r64(), static_cast<int32_t>(rng_()) >> 8, 0);
        m.mem.index = r64();
        m.mem.scale = static_cast<ZyanU8>(1u << below(4));
        m.mem.size = 8;  // LEA: the address size
        return encode(ZYDIS_MNEMONIC_LEA, {reg(rw(wide)), m});
      }
      case 6:
      case 7: return encode(kAlu[below(7)], {reg(rw(wide)), reg(rw(wide))});
      case 8: return encode(kAlu[below(7)], {reg(rw(wide)), imm(static_cast<int8_t>(rng_()))});
      case 9:
        return encode(kAlu[below(6)],
                      {reg(rw(wide)), mem(ZYDIS_REGISTER_R8, dataDisp(size), size)});
      case 10: return encode(below(2) ? ZYDIS_MNEMONIC_INC : ZYDIS_MNEMONIC_DEC, {reg(rw(wide))});
      case 11: {
        const ZydisMnemonic m[] = {ZYDIS_MNEMONIC_SHL, ZYDIS_MNEMONIC_SHR, ZYDIS_MNEMONIC_SAR};
        return encode(m[below(3)], {reg(rw(wide)), imm(below(70))});
      }
      case 12:
      case 13: return {kJccMarker};
      case 14:
        return encode(below(2) ? ZYDIS_MNEMONIC_ADC : ZYDIS_MNEMONIC_SBB,
                      {reg(rw(wide)), reg(rw(wide))});
      case 15: return encode(kSetcc[below(4)], {reg(ZYDIS_REGISTER_AL)});
      case 16: return encode(kCmovcc[below(4)], {reg(rw(wide)), reg(rw(wide))});
      case 17:
        return cat(encode(ZYDIS_MNEMONIC_PUSHFQ, {}), encode(ZYDIS_MNEMONIC_POP, {reg(r64())}));
      case 18: return encode(ZYDIS_MNEMONIC_LAHF, {});
      case 19:
        // call L; jmp +1; L: ret
        return {0xE8, 0x02, 0x00, 0x00, 0x00, 0xEB, 0x01, 0xC3};
      case 20:
        return cat(encode(ZYDIS_MNEMONIC_PUSH, {reg(r64())}),
                   encode(ZYDIS_MNEMONIC_POP, {reg(r64())}));
      case 21: smcStore = true; return {0x41, 0xC6, 0x86, 0, 0, 0, 0, static_cast<uint8_t>(rng_())};
      case 22:
        smcTarget = true;
        return encode(ZYDIS_MNEMONIC_MOV, {reg(r32()), imm(static_cast<int32_t>(rng_()))});
      case 23: {
        // Remap window page k to another physical page (A/D clear), then
        // maybe invalidate it (INVLPG or a CR3 reload) and touch the window.
        const int k = below(4);
        const int64_t pte = static_cast<int64_t>(kWindowPhys + below(8) * 0x1000) | 3;
        std::vector<uint8_t> u =
            encode(ZYDIS_MNEMONIC_MOV, {mem(ZYDIS_REGISTER_R12, k * 8, 8), imm(pte)});
        switch (below(3)) {
          case 0:
            u = cat(u, encode(ZYDIS_MNEMONIC_INVLPG, {mem(ZYDIS_REGISTER_R13, k * 0x1000, 1)}));
            break;
          case 1:
            u = cat(u,
                    encode(ZYDIS_MNEMONIC_MOV, {reg(ZYDIS_REGISTER_RAX), reg(ZYDIS_REGISTER_CR3)}));
            u = cat(u,
                    encode(ZYDIS_MNEMONIC_MOV, {reg(ZYDIS_REGISTER_CR3), reg(ZYDIS_REGISTER_RAX)}));
            break;
          default: break;
        }
        return u;
      }
      case 24:
        return encode(
            ZYDIS_MNEMONIC_MOV,
            {reg(rw(wide)), mem(ZYDIS_REGISTER_R13, below(4) * 0x1000 + below(0xFF8), size)});
      case 25:
        return encode(
            ZYDIS_MNEMONIC_MOV,
            {mem(ZYDIS_REGISTER_R13, below(4) * 0x1000 + below(0xFF8), size), reg(rw(wide))});
      case 26:
        // pushfq; or qword [rsp], TF; popfq: the next instruction traps.
        return cat(cat(encode(ZYDIS_MNEMONIC_PUSHFQ, {}),
                       encode(ZYDIS_MNEMONIC_OR, {mem(ZYDIS_REGISTER_RSP, 0, 8), imm(0x100)})),
                   encode(ZYDIS_MNEMONIC_POPFQ, {}));
      case 27: return encode(below(2) ? ZYDIS_MNEMONIC_CLI : ZYDIS_MNEMONIC_STI, {});
      case 28: return {0x48, 0xF7, 0xF1};  // div rcx (#DE skipped by the handler)
      case 29: {
        // Through FS (its base is the data area): the one segment base the
        // compiled code adds.
        const ZydisEncoderOperand m = mem(ZYDIS_REGISTER_NONE, dataDisp(size), size);
        return cat({0x64}, below(2) ? encode(ZYDIS_MNEMONIC_MOV, {reg(rw(wide)), m})
                                    : encode(ZYDIS_MNEMONIC_ADD, {reg(rw(wide)), m}));
      }
      // The forms only compiled code runs (exec/block_cache.h, after kRet).
      case 30: {
        const ZydisRegister b8[] = {ZYDIS_REGISTER_AL,  ZYDIS_REGISTER_BL, ZYDIS_REGISTER_SIL,
                                    ZYDIS_REGISTER_R9B, ZYDIS_REGISTER_AH, ZYDIS_REGISTER_CH};
        const ZydisRegister b16[] = {ZYDIS_REGISTER_AX, ZYDIS_REGISTER_DI, ZYDIS_REGISTER_R10W};
        switch (below(4)) {
          case 0: return encode(ZYDIS_MNEMONIC_MOVZX, {reg(r32()), reg(b8[below(4)])});
          case 1: return encode(ZYDIS_MNEMONIC_MOVZX, {reg(rw(wide)), reg(b16[below(3)])});
          case 2:
            return encode(ZYDIS_MNEMONIC_MOVZX,
                          {reg(rw(wide)), mem(ZYDIS_REGISTER_R8, dataDisp(2), 2)});
          default: return encode(kSetcc[below(4)], {reg(b8[below(6)])});
        }
      }
      case 31: return encode(below(2) ? ZYDIS_MNEMONIC_NEG : ZYDIS_MNEMONIC_NOT, {reg(rw(wide))});
      case 32:
        return encode(below(2) ? ZYDIS_MNEMONIC_ROL : ZYDIS_MNEMONIC_ROR,
                      {reg(rw(wide)), imm(below(70))});
      case 33:
        switch (below(3)) {
          case 0: return encode(ZYDIS_MNEMONIC_IMUL, {reg(rw(wide)), reg(rw(wide))});
          case 1:
            return encode(ZYDIS_MNEMONIC_IMUL, {reg(rw(wide)), reg(rw(wide)), imm(edgyImm())});
          default: return encode(ZYDIS_MNEMONIC_MUL, {reg(rw(wide))});
        }
      case 34:
        return encode(below(2) ? ZYDIS_MNEMONIC_ADC : ZYDIS_MNEMONIC_SBB,
                      {reg(rw(wide)), imm(edgyImm())});
      case 35:
        // lea rax, [rip + 2]; jmp rax: an indirect jump to the next unit.
        return {0x48, 0x8D, 0x05, 0x02, 0x00, 0x00, 0x00, 0xFF, 0xE0};
      case 36: {
        const unsigned sz = below(3) == 0 ? 1 : size;
        if (below(2))
          return encode(ZYDIS_MNEMONIC_MOV,
                        {mem(ZYDIS_REGISTER_R8, dataDisp(sz), sz), imm(edgyImm())});
        return encode(ZYDIS_MNEMONIC_MOV, {mem(ZYDIS_REGISTER_R8, dataDisp(1), 1),
                                           reg(below(2) ? ZYDIS_REGISTER_DL : ZYDIS_REGISTER_SIL)});
      }
      case 37: {
        const unsigned sz = below(3) == 0 ? 1 : size;
        return encode(below(2) ? ZYDIS_MNEMONIC_CMP : ZYDIS_MNEMONIC_TEST,
                      {mem(ZYDIS_REGISTER_R8, dataDisp(sz), sz), imm(edgyImm())});
      }
      case 38:  // nop; nopw 0x0(%rax,%rax,1)
        return below(2) ? std::vector<uint8_t>{0x90}
                        : std::vector<uint8_t>{0x66, 0x0F, 0x1F, 0x44, 0x00, 0x00};
      case 39:  // ALU with a memory destination
        if (below(2))
          return encode(kAlu[below(7)],
                        {mem(ZYDIS_REGISTER_R8, dataDisp(size), size), reg(rw(wide))});
        return encode(kAlu[below(5)],
                      {mem(ZYDIS_REGISTER_R8, dataDisp(size), size), imm(edgyImm())});
      default:
        return encode(ZYDIS_MNEMONIC_XOR,
                      {reg(rw(wide)), mem(ZYDIS_REGISTER_R8, dataDisp(size), size)});
    }
  }

  // A unit of a 32-bit protected-mode program: the same kinds of units
  // (EBX-based data, absolute addresses for the window and the code), and
  // what 32-bit code adds: the one-byte INC/DEC (40-4F), 32-bit stack forms
  // (PUSH ESP too), JMP r32, effective addresses that wrap at 4 GiB (LEA
  // of random registers, loads at EBX + r + disp with r + disp = 2^32),
  // 16-bit operand and address sizes, FS and ES overrides, and ES toggled
  // between a flat and a based segment (compiled code must then not run).
  std::vector<uint8_t> unit32(bool& smcStore, bool& smcTarget) {
    const ZydisRegister kData = ZYDIS_REGISTER_EBX;
    const auto at = [](uint64_t a) { return mem(ZYDIS_REGISTER_NONE, static_cast<int64_t>(a), 4); };
    const auto abs32 = [](uint64_t a) {
      std::vector<uint8_t> v(4);
      const uint32_t x = static_cast<uint32_t>(a);
      std::memcpy(v.data(), &x, 4);
      return v;
    };
    const uint8_t r8s[] = {0, 1, 2, 5, 6, 7};  // EAX ECX EDX EBP ESI EDI
    const uint8_t r = r8s[below(6)];
    switch (below(47)) {
      case 0: return enc(ZYDIS_MNEMONIC_MOV, {reg(r32()), reg(r32())});
      case 1:
        return enc(ZYDIS_MNEMONIC_MOV,
                   {reg(r32()), imm(below(2) ? edgyImm() : static_cast<int32_t>(rng_()))});
      case 2: return enc(ZYDIS_MNEMONIC_MOV, {reg(r32()), mem(kData, dataDisp(4), 4)});
      case 3: return enc(ZYDIS_MNEMONIC_MOV, {mem(kData, dataDisp(4), 4), reg(r32())});
      case 4: return enc(ZYDIS_MNEMONIC_MOVZX, {reg(r32()), mem(kData, dataDisp(1), 1)});
      case 5: {
        ZydisEncoderOperand m = mem(r32(), static_cast<int32_t>(rng_()) >> 8, 0);
        m.mem.index = r32();
        m.mem.scale = static_cast<ZyanU8>(1u << below(4));
        m.mem.size = 4;
        return enc(ZYDIS_MNEMONIC_LEA, {reg(r32()), m});
      }
      case 6:
      case 7: return enc(kAlu[below(7)], {reg(r32()), reg(r32())});
      case 8: return enc(kAlu[below(7)], {reg(r32()), imm(static_cast<int8_t>(rng_()))});
      case 9: return enc(kAlu[below(6)], {reg(r32()), mem(kData, dataDisp(4), 4)});
      case 10: return {static_cast<uint8_t>((below(2) ? 0x40 : 0x48) + r)};  // INC/DEC r32
      case 11: {
        const ZydisMnemonic m[] = {ZYDIS_MNEMONIC_SHL, ZYDIS_MNEMONIC_SHR, ZYDIS_MNEMONIC_SAR};
        return enc(m[below(3)], {reg(r32()), imm(below(40))});
      }
      case 12:
      case 13: return {kJccMarker};
      case 14:
        return enc(below(2) ? ZYDIS_MNEMONIC_ADC : ZYDIS_MNEMONIC_SBB, {reg(r32()), reg(r32())});
      case 15: {
        const ZydisRegister b8[] = {ZYDIS_REGISTER_AL, ZYDIS_REGISTER_CL, ZYDIS_REGISTER_DH,
                                    ZYDIS_REGISTER_AH};
        return enc(kSetcc[below(4)], {reg(b8[below(4)])});
      }
      case 16: return enc(kCmovcc[below(4)], {reg(r32()), reg(r32())});
      case 17: return {0x9C, static_cast<uint8_t>(0x58 + r)};  // pushfd; pop r
      case 18: return enc(ZYDIS_MNEMONIC_LAHF, {});
      case 19: return {0xE8, 0x02, 0x00, 0x00, 0x00, 0xEB, 0x01, 0xC3};  // call L; jmp +1; L: ret
      case 20:                                                           // push r / push esp; pop r
        return {static_cast<uint8_t>(0x50 + (below(4) ? r8s[below(6)] : 4)),
                static_cast<uint8_t>(0x58 + r)};
      case 21: smcStore = true; return {0xC6, 0x05, 0, 0, 0, 0, static_cast<uint8_t>(rng_())};
      case 22:
        smcTarget = true;
        return enc(ZYDIS_MNEMONIC_MOV, {reg(r32()), imm(static_cast<int32_t>(rng_()))});
      case 23: {
        if (!paging_) return enc(ZYDIS_MNEMONIC_XOR, {reg(r32()), mem(kData, dataDisp(4), 4)});
        // Remap window page k (A/D clear), maybe INVLPG or reload CR3.
        const int k = below(4);
        const int64_t pte = static_cast<int64_t>(kWindowPhys + below(8) * 0x1000) | 3;
        std::vector<uint8_t> u = enc(ZYDIS_MNEMONIC_MOV, {at(kPt + k * pteBytes_), imm(pte)});
        switch (below(3)) {
          case 0: return cat(cat(u, {0x0F, 0x01, 0x3D}), abs32(kWindow + k * 0x1000));
          case 1: return cat(u, {0x0F, 0x20, 0xD8, 0x0F, 0x22, 0xD8});  // eax = cr3; cr3 = eax
          default: return u;
        }
      }
      case 24:
      case 25: {
        const uint64_t a = paging_ ? kWindow + below(4) * 0x1000 + below(0xFF8)
                                   : layout::kData + static_cast<uint64_t>(dataDisp(4));
        return below(2) ? enc(ZYDIS_MNEMONIC_MOV, {reg(r32()), at(a)})
                        : enc(ZYDIS_MNEMONIC_MOV, {at(a), reg(r32())});
      }
      case 26:  // pushfd; or dword [esp], TF; popfd: the next instruction traps.
        return {0x9C, 0x81, 0x0C, 0x24, 0x00, 0x01, 0x00, 0x00, 0x9D};
      case 27: return {static_cast<uint8_t>(below(2) ? 0xFA : 0xFB)};
      case 28: return {0xF7, 0xF1};  // div ecx (#DE skipped by the handler)
      case 29:
      case 43:
      case 44: {
        const uint8_t d8 = static_cast<uint8_t>(below(0x78) & ~3);
        switch (below(3)) {
          case 0:
            return {0x64, 0x8B, static_cast<uint8_t>(0x43 | r << 3), d8};  // mov r, fs:[ebx+d8]
          case 1:
            return {0x26, 0x8B, static_cast<uint8_t>(0x43 | r << 3), d8};  // mov r, es:[ebx+d8]
          default:
            return {0x26, 0x01, static_cast<uint8_t>(0x43 | r << 3), d8};  // add es:[ebx+d8], r
        }
      }
      case 30:
        switch (below(3)) {
          case 0: return enc(ZYDIS_MNEMONIC_MOVZX, {reg(r32()), reg(ZYDIS_REGISTER_CH)});
          case 1: return enc(ZYDIS_MNEMONIC_MOVZX, {reg(r32()), reg(ZYDIS_REGISTER_SI)});
          default: return enc(ZYDIS_MNEMONIC_MOVZX, {reg(r32()), mem(kData, dataDisp(2), 2)});
        }
      case 31: return enc(below(2) ? ZYDIS_MNEMONIC_NEG : ZYDIS_MNEMONIC_NOT, {reg(r32())});
      case 32:
        return enc(below(2) ? ZYDIS_MNEMONIC_ROL : ZYDIS_MNEMONIC_ROR,
                   {reg(r32()), imm(below(40))});
      case 33:
        switch (below(3)) {
          case 0: return enc(ZYDIS_MNEMONIC_IMUL, {reg(r32()), reg(r32())});
          case 1: return enc(ZYDIS_MNEMONIC_IMUL, {reg(r32()), reg(r32()), imm(edgyImm())});
          default: return enc(ZYDIS_MNEMONIC_MUL, {reg(r32())});
        }
      case 34:
        return enc(below(2) ? ZYDIS_MNEMONIC_ADC : ZYDIS_MNEMONIC_SBB,
                   {reg(r32()), imm(edgyImm())});
      case 35:
        // call $+5; pop r; add r, 6; jmp r: an indirect jump to the next unit.
        return {0xE8,
                0,
                0,
                0,
                0,
                static_cast<uint8_t>(0x58 + r),
                0x83,
                static_cast<uint8_t>(0xC0 + r),
                0x06,
                0xFF,
                static_cast<uint8_t>(0xE0 + r)};
      case 36:
        if (below(2)) {
          const unsigned sz = below(3) == 0 ? 1 : 4;
          return enc(ZYDIS_MNEMONIC_MOV, {mem(kData, dataDisp(sz), sz), imm(edgyImm())});
        }
        return enc(ZYDIS_MNEMONIC_MOV, {mem(kData, dataDisp(1), 1), reg(ZYDIS_REGISTER_DL)});
      case 37: {
        const unsigned sz = below(3) == 0 ? 1 : 4;
        return enc(below(2) ? ZYDIS_MNEMONIC_CMP : ZYDIS_MNEMONIC_TEST,
                   {mem(kData, dataDisp(sz), sz), imm(edgyImm())});
      }
      case 38:
        return below(2) ? std::vector<uint8_t>{0x90}
                        : std::vector<uint8_t>{0x66, 0x0F, 0x1F, 0x44, 0x00, 0x00};
      case 39:
        // 16-bit operand and address sizes (interpreted).
        switch (below(4)) {
          case 0: return enc(kAlu[below(7)], {reg(ZYDIS_REGISTER_AX), reg(ZYDIS_REGISTER_SI)});
          case 1:
            return {0x66, static_cast<uint8_t>(0x50 + r), 0x66, static_cast<uint8_t>(0x58 + r)};
          case 2: return {0x67, 0x8B, static_cast<uint8_t>(0x47 | r << 3), 0x10};  // mov r, [bx+16]
          default: return {0x66, static_cast<uint8_t>(0x40 + r)};                  // inc r16
        }
      case 40:
        // mov eax, es; xor eax, 0x10 ^ 0x58; mov es, eax: ES toggles between
        // flat and based at 0x10 (not flat) at every pass.
        static_assert((layout::kData0 ^ kBasedData) == 0x48);
        return {0x8C, 0xC0, 0x83, 0xF0, 0x48, 0x8E, 0xC0};
      case 41: {
        // mov r2, imm32; op r, [ebx + r2 + disp]: r2 + disp = 2^32.
        const ZydisRegister idx = r32();
        const int64_t k = 0x100000 + below(0x7000000);
        ZydisEncoderOperand m = mem(kData, k + dataDisp(4), 4);
        m.mem.index = idx;
        m.mem.scale = 1;
        return cat(enc(ZYDIS_MNEMONIC_MOV, {reg(idx), imm(-k)}),
                   below(2) ? enc(ZYDIS_MNEMONIC_MOV, {reg(r32()), m})
                            : enc(ZYDIS_MNEMONIC_ADD, {m, reg(r32())}));
      }
      case 42:
        return cat(enc(ZYDIS_MNEMONIC_CALL, {imm(1)}),
                   {0xCC, 0x8D, 0x64, 0x24, 0x04});  // lea esp, [esp+4]
      case 45:                                       // ALU with a memory destination
        if (below(2)) return enc(kAlu[below(7)], {mem(kData, dataDisp(4), 4), reg(r32())});
        return enc(kAlu[below(5)], {mem(kData, dataDisp(4), 4), imm(edgyImm())});
      default: return enc(ZYDIS_MNEMONIC_XOR, {reg(r32()), mem(kData, dataDisp(4), 4)});
    }
  }

  std::mt19937_64 rng_;
  bool m32_;
  bool paging_;
  unsigned pteBytes_;
};

struct Pair {
  Machine ref;
  Machine fast;
};

// Loads the loop `body; decrement; jnz body; hlt` at layout::kCode and
// random data and window contents; returns the generator for the rest.
std::mt19937_64 loadLoop(Machine& m, const std::vector<uint8_t>& body,
                         const std::vector<uint8_t>& decrement, uint64_t seed) {
  std::vector<uint8_t> code = body;
  code.insert(code.end(), decrement.begin(), decrement.end());
  code.insert(code.end(), {0x0F, 0x85});
  const int32_t back = -static_cast<int32_t>(code.size() + 4);
  for (int k = 0; k < 4; ++k) code.push_back(static_cast<uint8_t>(back >> (8 * k)));
  code.push_back(0xF4);
  m.load(layout::kCode, code);
  std::mt19937_64 rng(seed);
  for (uint64_t a = layout::kData; a < layout::kData + 0x4000; a += 8) m.put(a, rng(), 8);
  for (uint64_t a = kWindowPhys; a < kWindowPhys + 0x8000; a += 8) m.put(a, rng(), 8);
  return rng;
}

void setUp(Machine& m, const std::vector<uint8_t>& body, uint64_t seed) {
  m.setupLong64(layout::kCode);
  // #DE: skip the 3-byte DIV; #DB: clear TF in the frame; the IRQ: return.
  m.loadHex(kHandlers, "48 83 04 24 03 48 cf");
  m.loadHex(kHandlers + 0x10, "48 81 64 24 10 ff fe ff ff 48 cf");
  m.loadHex(kHandlers + 0x20, "48 cf");
  for (int v = 0; v < 32; ++v) m.setIdt64(static_cast<uint8_t>(v), kHandlers + 0x30);  // hlt
  m.loadHex(kHandlers + 0x30, "f4");
  m.setIdt64(0, kHandlers);
  m.setIdt64(1, kHandlers + 0x10);
  m.setIdt64(kIrqVector, kHandlers + 0x20);
  for (int k = 0; k < 4; ++k) m.map4k(kWindow + k * 0x1000, kWindowPhys + k * 0x1000, 3);
  // The loop: body; dec r15; jnz body; hlt.
  std::mt19937_64 rng = loadLoop(m, body, {0x49, 0xFF, 0xCF}, seed);
  m.edit([&](CpuState& s) {
    for (int r = 0; r < 16; ++r) s.gpr[r] = rng();
    s.gpr[4] = layout::kStackTop;
    s.gpr[8] = layout::kData;
    s.gpr[12] = kPt;
    s.gpr[13] = kWindow;
    s.gpr[14] = layout::kCode;
    s.gpr[15] = 40;
    s.rflags = flags::kFixed1 | flags::kIF;
    s.seg[4].base = layout::kData;
  });
}

std::string compare(const Machine& a, const Machine& b) {
  std::string out;
  const CpuState& x = a.cpu->state();
  const CpuState& y = b.cpu->state();
  if (!(x == y)) {
    out += "CpuState differs:";
    for (int r = 0; r < 16; ++r)
      if (x.gpr[r] != y.gpr[r]) out += " r" + std::to_string(r);
    if (x.rip != y.rip) out += " rip " + std::to_string(x.rip) + "/" + std::to_string(y.rip);
    if (x.rflags != y.rflags)
      out += " rflags " + std::to_string(x.rflags) + "/" + std::to_string(y.rflags);
    if (x.steps != y.steps)
      out += " steps " + std::to_string(x.steps) + "/" + std::to_string(y.steps);
    if (!(x.pending == y.pending)) out += " pending";
    if (x.dr6 != y.dr6) out += " dr6";
    if (x.cr2 != y.cr2) out += " cr2";
    out += "\n";
  }
  // Page tables, stack, handlers' and program's code, data, the window.
  const std::pair<uint64_t, uint64_t> ranges[] = {{0x10000, 0x15000},
                                                  {layout::kStackTop - 0x1000, layout::kStackTop},
                                                  {layout::kCode, layout::kCode + 0x1000},
                                                  {layout::kData, layout::kData + 0x4000},
                                                  {kWindowPhys, kWindowPhys + 0x8000}};
  for (auto [lo, hi] : ranges)
    if (std::memcmp(a.ram.data() + lo, b.ram.data() + lo, hi - lo) != 0)
      out += "RAM differs in [" + std::to_string(lo) + ", " + std::to_string(hi) + ")\n";
  return out;
}

uint64_t programCount() {
  if (const char* v = std::getenv("TTVM_BLOCK_DIFF_PROGRAMS")) return std::strtoull(v, nullptr, 0);
  return 300;
}

// What a run of random programs did, over all of them.
struct DiffTotals {
  uint64_t slices = 0, irqs = 0, steps = 0, watchStops = 0;
  EngineStats engine;
};

// Runs one program (set up on both machines) in random slices on both
// engines, comparing after every slice; `p` picks the hint and watchpoint.
void runPair(Pair& m, uint64_t p, uint64_t seed, DiffTotals& t) {
  std::mt19937_64 rng(seed ^ 0x5A5A);
  // Half the programs run with an event hint (the recorder's and the
  // replayer's case: nothing to ask between most instructions), half with
  // the CPU asking at every boundary.
  const bool hinted = p % 2 == 0;
  m.ref.env.useHint = m.fast.env.useHint = hinted;
  // A third of the programs run under a debugger watchpoint (issue 14
  // point 3: blocks and host code keep running, the watched page's
  // accesses take the reference accessors): a random kind and length on
  // the data, the remapped window (linear or physical) or the stack.
  if (p % 3 == 2) {
    std::mt19937_64 wr(seed ^ 0x7761746368ull);  // "watch"
    DebuggerWatchpoint w;
    switch (wr() % 4) {
      case 0: w.address = layout::kData + wr() % 0x4000; break;
      case 1: w.address = kWindow + wr() % 0x4000; break;
      case 2:
        w.address = kWindowPhys + wr() % 0x8000;
        w.physical = true;
        break;
      default: w.address = layout::kStackTop - 1 - wr() % 0x100; break;
    }
    w.length = 1 + wr() % 8;
    w.kind = static_cast<WatchKind>(wr() % 3);
    m.ref.cpu->setWatchpoints({w});
    m.fast.cpu->setWatchpoints({w});
  }
  for (int k = 0; k < 400; ++k) {
    if (rng() % 8 == 0) {  // an external interrupt, pending on both from this boundary on
      m.ref.env.interrupts.push_back(kIrqVector);
      m.fast.env.interrupts.push_back(kIrqVector);
      ++t.irqs;
    }
    // A quarter of the programs say "maskable only" (the machine's hint
    // while a request waits at the PIC): the engines may then run on while
    // IF=0 and must take it at the same step once the program sets IF.
    const uint32_t pending = m.ref.env.interrupts.empty() ? 0
                             : p % 4 == 2                 ? kEventHintMaskableOnly
                                                          : 1;
    m.ref.env.hint = pending;
    m.fast.env.hint = pending;
    // Mostly short slices (ending inside blocks and chains), some long
    // ones (compiled code going on from block to block).
    const uint64_t n = rng() % 4 == 0 ? 1 + rng() % 2000 : 1 + rng() % 64;
    const StepResult a = m.ref.run(n);
    const StepResult b = m.fast.run(n);
    ++t.slices;
    ASSERT_EQ(a.outcome, b.outcome) << "program " << p << " slice " << k;
    ASSERT_EQ(a.vector, b.vector) << "program " << p << " slice " << k;
    if (a.outcome == StepOutcome::kWatchpoint) {
      ASSERT_EQ(a.watch.address, b.watch.address) << "program " << p << " slice " << k;
      ASSERT_EQ(a.watch.size, b.watch.size) << "program " << p << " slice " << k;
      ASSERT_EQ(a.watch.write, b.watch.write) << "program " << p << " slice " << k;
      ++t.watchStops;
    }
    const std::string diff = compare(m.ref, m.fast);
    ASSERT_TRUE(diff.empty()) << "program " << p << " (seed " << seed << ") slice " << k
                              << " at step " << m.ref.cpu->state().steps << ":\n"
                              << diff;
    if (a.outcome == StepOutcome::kHalted) break;
  }
  t.steps += m.ref.cpu->state().steps;
  const EngineStats s = m.fast.cpu->engineStats();
  t.engine.blockRuns += s.blockRuns;
  t.engine.invalidations += s.invalidations;
  t.engine.fallbackSteps += s.fallbackSteps;
  t.engine.compiledSteps += s.compiledSteps;
}

// The test must have exercised the engine, not only its fallback, and on
// x86-64 hosts its compiled code (exec/block_jit.h).
void expectEngineUsed(const DiffTotals& t) {
  EXPECT_GT(t.engine.blockRuns, t.steps / 20);
  EXPECT_GT(t.engine.invalidations, 0u);
  EXPECT_GT(t.watchStops, 0u);
#if defined(__x86_64__)
  EXPECT_GT(t.engine.compiledSteps, t.steps / 30);
#endif
  std::printf(
      "%llu slices, %llu steps, %llu interrupts, %llu watchpoint stops; fast engine: %llu blocks "
      "run, %llu invalidated, %llu steps on the reference path, %llu in compiled code\n",
      static_cast<unsigned long long>(t.slices), static_cast<unsigned long long>(t.steps),
      static_cast<unsigned long long>(t.irqs), static_cast<unsigned long long>(t.watchStops),
      static_cast<unsigned long long>(t.engine.blockRuns),
      static_cast<unsigned long long>(t.engine.invalidations),
      static_cast<unsigned long long>(t.engine.fallbackSteps),
      static_cast<unsigned long long>(t.engine.compiledSteps));
}

TEST(BlockEngine, RandomProgramsMatchTheReferenceAfterEverySlice) {
  DiffTotals t;
  for (uint64_t p = 0; p < programCount(); ++p) {
    const uint64_t seed = 0x626C6F636B730000ull + p;  // "blocks"
    ProgramGenerator gen(seed);
    const std::vector<uint8_t> body = gen.body();
    Pair m;
    m.fast.cpu->setEngine(CpuEngine::kFast);
    setUp(m.ref, body, seed);
    setUp(m.fast, body, seed);
    ASSERT_NO_FATAL_FAILURE(runPair(m, p, seed, t));
  }
  expectEngineUsed(t);
}

// 32-bit protected mode, flat segments (exec/block_jit.h), paging on for
// half the programs (4 MiB pages, the window through a page table at kPt)
// and off for the others.
void setUp32(Machine& m, const std::vector<uint8_t>& body, uint64_t seed, bool paging,
             bool compat = false) {
  if (compat) {
    m.setupLong64(layout::kCode);
    m.enterCompat32();
  } else {
    m.setupFlat32(layout::kCode);
  }
  m.put(layout::kGdt + kBasedData, descriptor(0x10, 0xFFFFF, 0x93, 0xC), 8);
  // #DE: skip the 2-byte DIV; #DB: clear TF in the frame; the IRQ: return.
  m.loadHex(kHandlers, compat ? "48 83 04 24 02 48 cf" : "83 04 24 02 cf");
  m.loadHex(kHandlers + 0x10,
            compat ? "48 81 64 24 10 ff fe ff ff 48 cf" : "81 64 24 08 ff fe ff ff cf");
  m.loadHex(kHandlers + 0x20, compat ? "48 cf" : "cf");
  m.loadHex(kHandlers + 0x30, "f4");
  const auto gate = [&](int v, uint64_t h) {
    compat ? m.setIdt64(static_cast<uint8_t>(v), h)
           : m.setIdt32(static_cast<uint8_t>(v), static_cast<uint32_t>(h));
  };
  for (int v = 0; v < 32; ++v) gate(v, kHandlers + 0x30);  // hlt
  gate(0, kHandlers);
  gate(1, kHandlers + 0x10);
  gate(kIrqVector, kHandlers + 0x20);
  constexpr uint64_t kPd = 0x10000;
  if (compat) {
    for (int k = 0; k < 4; ++k) m.map4k(kWindow + k * 0x1000, kWindowPhys + k * 0x1000, 3);
  } else if (paging) {
    m.put(kPd, 0x87, 4);  // 0-8 MiB: 4 MiB pages
    m.put(kPd + 4, 0x400087, 4);
    m.put(kPd + (kWindow >> 22) * 4, kPt | 7, 4);
    for (int k = 0; k < 4; ++k) m.put(kPt + k * 4, (kWindowPhys + k * 0x1000) | 3, 4);
  }
  // The loop: body; dec dword [counter]; jnz body; hlt.
  const uint32_t counter = static_cast<uint32_t>(kCounter32);
  std::mt19937_64 rng =
      loadLoop(m, body,
               {0xFF, 0x0D, static_cast<uint8_t>(counter), static_cast<uint8_t>(counter >> 8),
                static_cast<uint8_t>(counter >> 16), static_cast<uint8_t>(counter >> 24)},
               seed);
  m.put(kCounter32, 40, 4);
  m.edit([&](CpuState& s) {
    s.gdtr.limit = kBasedData + 7;
    for (int r = 0; r < 8; ++r) s.gpr[r] = static_cast<uint32_t>(rng());
    s.gpr[3] = layout::kData;
    s.gpr[4] = layout::kStackTop;
    s.rflags = flags::kFixed1 | flags::kIF;
    if (paging && !compat) {
      s.cr4 |= cr4::kPSE;
      s.cr3 = kPd;
      s.cr0 |= cr0::kPG;
    }
  });
}

// Compatibility mode (`compat`: a 32-bit code segment under long mode's
// paging, the window at kPt's 8-byte entries, 64-bit interrupt gates and
// handlers) with the same flat segments: its 32-bit blocks get host code too.
TEST(BlockEngine, RandomCompatibilityModeProgramsMatchTheReferenceAfterEverySlice) {
  DiffTotals t;
  for (uint64_t p = 0; p < programCount() / 3; ++p) {
    const uint64_t seed = 0x626C6F636B630000ull + p;
    ProgramGenerator gen(seed, true, true, 8);
    const std::vector<uint8_t> body = gen.body();
    Pair m;
    m.fast.cpu->setEngine(CpuEngine::kFast);
    setUp32(m.ref, body, seed, true, true);
    setUp32(m.fast, body, seed, true, true);
    ASSERT_NO_FATAL_FAILURE(runPair(m, p, seed, t));
  }
  expectEngineUsed(t);
}

// Random 32-bit protected-mode programs (ProgramGenerator::unit32), the
// same comparison as the 64-bit ones: blocks compiled under flat segments
// run while they are flat, and ES made non-flat stops their use.
TEST(BlockEngine, RandomProtectedModeProgramsMatchTheReferenceAfterEverySlice) {
  DiffTotals t;
  for (uint64_t p = 0; p < programCount(); ++p) {
    const uint64_t seed = 0x626C6F636B330000ull + p;
    const bool paging = p % 4 < 2;
    ProgramGenerator gen(seed, true, paging);
    const std::vector<uint8_t> body = gen.body();
    Pair m;
    m.fast.cpu->setEngine(CpuEngine::kFast);
    setUp32(m.ref, body, seed, paging);
    setUp32(m.fast, body, seed, paging);
    ASSERT_NO_FATAL_FAILURE(runPair(m, p, seed, t));
  }
  expectEngineUsed(t);
}

}  // namespace
}  // namespace ttvm::cputest

namespace ttvm::cputest {
namespace {

// A linear debugger breakpoint inside a block stops the fast engine at that
// instruction, at the step the reference stops at, every time round a loop
// (checked at block entry: the block is not entered, the reference path
// takes the steps up to the stop).
TEST(BlockEngine, DebuggerBreakpointInsideABlockStopsAtTheSameStep) {
  // loop: add rax, rbx; xor rbx, rax; inc rdx; shl rax, 3; dec rcx; jnz loop; hlt
  const char* kLoop = "48 01 d8 48 31 c3 48 ff c2 48 c1 e0 03 48 ff c9 75 ee f4";
  Machine ref, fast;
  fast.cpu->setEngine(CpuEngine::kFast);
  for (Machine* m : {&ref, &fast}) {
    m->setupLong64(layout::kCode);
    m->loadHex(layout::kCode, kLoop);
    m->edit([](CpuState& s) {
      s.gpr[0] = 3;
      s.gpr[3] = 5;
      s.gpr[1] = 50;
    });
    m->env.useHint = true;
    m->run(40);  // the blocks exist before the breakpoint is set
    m->cpu->setBreakpoints({DebuggerBreakpoint{layout::kCode + 9, false}});  // shl
  }
  int stops = 0;
  for (;;) {
    const StepResult a = ref.run(1'000'000);
    const StepResult b = fast.run(1'000'000);
    ASSERT_EQ(a.outcome, b.outcome);
    ASSERT_TRUE(ref.state() == fast.state()) << "after " << stops << " stops";
    if (a.outcome != StepOutcome::kBreakpoint) break;
    EXPECT_EQ(fast.state().rip, layout::kCode + 9);
    ++stops;
    ref.cpu->skipBreakpointOnce();
    fast.cpu->skipBreakpointOnce();
  }
  EXPECT_EQ(stops, 43);  // iterations 8..50 (the first 40 steps ran 6 and two thirds)
  EXPECT_GT(fast.cpu->engineStats().blockRuns, 0u);
}

// Runs both machines `slice` steps at a time until the reference stops
// retiring, comparing the outcome and the whole state after every slice.
void runInSlices(Machine& ref, Machine& fast, uint64_t slice) {
  for (;;) {
    const StepResult a = ref.run(slice);
    const StepResult b = fast.run(slice);
    ASSERT_EQ(a.outcome, b.outcome)
        << "slice " << slice << " steps " << ref.state().steps << "/" << fast.state().steps;
    ASSERT_TRUE(ref.state() == fast.state())
        << "slice " << slice << " at step " << ref.state().steps << ": rip " << ref.state().rip
        << "/" << fast.state().rip << " rflags " << ref.state().rflags << "/" << fast.state().rflags
        << " steps " << fast.state().steps;
    if (a.outcome != StepOutcome::kRetired) return;
  }
}

// A block that jumps back to its own start loops inside its compiled code
// (exec/block_jit.h) only while the step budget allows a whole pass: every
// slice length, including ones that end inside a pass, stops at the step the
// reference stops at, with the same registers and flags (CMP's flags leave
// through the loop's exit, SHL's OF for a count above 1 is read by PUSHFQ).
TEST(BlockEngine, CompiledLoopStopsAtTheStepBudget) {
  // loop: add rax, rbx; cmp rax, rdx; shl rbx, 3; mov [r8 + rcx*8], rax;
  //       dec rcx; jnz loop; pushfq; pop rsi; hlt
  const char* kLoop = "48 01 d8 48 39 d0 48 c1 e3 03 49 89 04 c8 48 ff c9 75 ed 9c 5e f4";
  for (uint64_t slice : {1, 2, 5, 6, 7, 13, 64, 1000}) {
    Machine ref, fast;
    fast.cpu->setEngine(CpuEngine::kFast);
    for (Machine* m : {&ref, &fast}) {
      m->setupLong64(layout::kCode);
      m->loadHex(layout::kCode, kLoop);
      m->edit([](CpuState& s) {
        s.gpr[0] = 0x7FFFFFFFFFFFFFF0ull;
        s.gpr[3] = 0x1234567;
        s.gpr[2] = 0x100;
        s.gpr[1] = 300;
        s.gpr[8] = layout::kData;
      });
      m->env.useHint = true;
    }
    ASSERT_NO_FATAL_FAILURE(runInSlices(ref, fast, slice));
    EXPECT_EQ(
        std::memcmp(ref.ram.data() + layout::kData, fast.ram.data() + layout::kData, 300 * 8 + 8),
        0);
    EXPECT_EQ(fast.state().steps, 300u * 6 + 3);
#if defined(__x86_64__)
    // The block runs from the loop's start to HLT (9 instructions): host
    // code is entered with a budget of at least that.
    if (slice >= 64) {
      EXPECT_GT(fast.cpu->engineStats().compiledSteps, 300u * 6 / 2) << slice;
    }
#endif
  }
}

// Compiled code goes on from block to block (through CALL, RET, a JMP to a
// register and a conditional branch) while the budget holds the next block,
// and a slow access in a block it went on into (the first touch of each data
// page: a TLB miss) hands that block's remaining ops to the interpreted loop.
// Every slice length stops where the reference stops, in the same state.
TEST(BlockEngine, CompiledCodeGoesOnAcrossBlocksAndStopsExactly) {
  // loop: mov rsi, rcx; shl rsi, 12; add rsi, r8; call f; lea rax, [rip + k];
  //       jmp rax; k: add rbx, rax; dec rcx; jnz loop; hlt
  // f:    mov [rsi], rcx; add rdx, [rsi]; ret
  const char* kCode =
      "48 89 ce 48 c1 e6 0c 4c 01 c6 e8 12 00 00 00 48 8d 05 02 00 00 00 ff e0 48 01 c3 48 ff c9 "
      "75 e0 f4 48 89 0e 48 03 16 c3";
  for (uint64_t slice : {1, 3, 9, 10, 17, 50, 333, 100000}) {
    Machine ref, fast;
    fast.cpu->setEngine(CpuEngine::kFast);
    for (Machine* m : {&ref, &fast}) {
      m->setupLong64(layout::kCode);
      m->loadHex(layout::kCode, kCode);
      m->edit([](CpuState& s) {
        s.gpr[1] = 40;  // 40 iterations, each touching page rcx of the data area
        s.gpr[8] = layout::kData;
      });
      m->env.useHint = true;
    }
    ASSERT_NO_FATAL_FAILURE(runInSlices(ref, fast, slice));
    EXPECT_EQ(fast.state().steps, 40u * 12 + 1) << slice;
    EXPECT_EQ(fast.state().gpr[2], ref.state().gpr[2]);
#if defined(__x86_64__)
    if (slice >= 50) {
      EXPECT_GT(fast.cpu->engineStats().compiledSteps, 40u * 12 / 2) << slice;
    }
#endif
  }
}

// 32-bit compiled code wraps at 4 GiB as the reference does: a block at the
// top of the linear space whose last instruction ends at 2^32 (EIP goes on
// at 0), a forward branch past 2^32 and backward ones from 0 to it, POPs
// that take ESP from 0xFFFFFFFC to 0, and a load at EBX + EBP = 2^32 +
// kData. With paging on (the top page mapped), every slice length stops in
// the reference's state, and the loop runs in host code: an effective
// address left unwrapped would miss the TLB and leave the code before the
// load at every pass.
TEST(BlockEngine, ProtectedModeCodeWrapsAddressesEipAndEspAt4GiB) {
  constexpr uint64_t kTopPhys = 0x50000, kPd = 0x10000, kTopPt = 0x15000;
  // 0xFFFFFFEC: pop esi; pop edi; sub esp, 8; inc ecx; test ecx, 1; jz 0x10;
  //             nop; nop (ends at 2^32)
  const char* kTop = "5e 5f 83 ec 08 41 f7 c1 01 00 00 00 0f 84 12 00 00 00 90 90";
  // 0x00 and 0x10: mov eax, [ebx + ebp]; dec edx; jnz 0xFFFFFFEC; hlt
  const char* kLow0 = "8b 04 2b 4a 0f 85 e2 ff ff ff f4";
  const char* kLow10 = "8b 04 2b 4a 0f 85 d2 ff ff ff f4";
  constexpr uint32_t kEsi = 0x0012840F;  // the bytes at 0xFFFFFFF8 (0f 84 12 00)
  for (uint64_t slice : {1, 4, 7, 10, 33, 100000}) {
    Machine ref, fast;
    fast.cpu->setEngine(CpuEngine::kFast);
    for (Machine* m : {&ref, &fast}) {
      m->setupFlat32(0xFFFFFFEC);
      m->put(kPd, 0x87, 4);
      m->put(kPd + 4, 0x400087, 4);
      m->put(kPd + 1023 * 4, kTopPt | 7, 4);
      m->put(kTopPt + 1023 * 4, kTopPhys | 3, 4);
      m->loadHex(kTopPhys + 0xFEC, kTop);
      m->loadHex(0, kLow0);
      m->loadHex(0x10, kLow10);
      m->put(layout::kData, 0x5EED1234, 4);
      m->edit([](CpuState& s) {
        s.cr4 |= cr4::kPSE;
        s.cr3 = kPd;
        s.cr0 |= cr0::kPG;
        s.gpr[4] = 0xFFFFFFF8;
        s.gpr[1] = 0;
        s.gpr[2] = 300;
        s.gpr[3] = 0xFFFF0000u;
        s.gpr[5] = layout::kData + 0x10000;
      });
      m->env.useHint = true;
    }
    ASSERT_NO_FATAL_FAILURE(runInSlices(ref, fast, slice));
    EXPECT_EQ(fast.state().steps, 150u * 9 + 150u * 11 + 1) << slice;  // JZ taken at odd ECX
    EXPECT_EQ(fast.state().gpr[0], 0x5EED1234u) << slice;
    EXPECT_EQ(fast.state().gpr[6], kEsi) << slice;
#if defined(__x86_64__)
    if (slice == 100000) {
      EXPECT_GT(fast.cpu->engineStats().compiledSteps, 3000u * 95 / 100);
    }
#endif
  }
}

// 32-bit host code at CPL 3 probes the TLB with the user permission bit: a
// load from a supervisor-only page (whose TLB entry the CPL 0 #PF handler's
// own read of it fills) leaves the code and faults, at the reference's step,
// every pass; the user loads around it stay in host code.
TEST(BlockEngine, ProtectedModeUserCodeFaultsOnSupervisorPages) {
  constexpr uint64_t kPd = 0x10000;
  // loop: mov eax, [ebx]; add eax, [esi] (#PF: supervisor page); dec ecx;
  //       jnz loop; int3
  const char* kUserLoop = "8b 03 03 06 49 75 f9 cc";
  for (uint64_t slice : {1, 3, 5, 100000}) {
    Machine ref, fast;
    fast.cpu->setEngine(CpuEngine::kFast);
    for (Machine* m : {&ref, &fast}) {
      m->setupFlat32(layout::kCode);
      m->put(kPd, 0x87, 4);  // 0-4 MiB: user, writable
      m->put(kPd + (kWindow >> 22) * 4, kPt | 7, 4);
      m->put(kPt, kWindowPhys | 3, 4);  // supervisor only
      m->put(kWindowPhys, 0x600DF00D, 4);
      m->put(layout::kData, 0x1234, 4);
      m->put(layout::kTss + 4, layout::kRsp0, 4);  // ESP0, SS0
      m->put(layout::kTss + 8, layout::kData0, 2);
      // #PF: drop the error code, read the page, skip the 2-byte ADD.
      m->loadHex(kHandlers, "83 c4 04 8b 16 83 04 24 02 cf");
      m->loadHex(kHandlers + 0x30, "f4");
      for (int v = 0; v < 32; ++v) m->setIdt32(static_cast<uint8_t>(v), kHandlers + 0x30);
      m->setIdt32(14, kHandlers);
      m->loadHex(layout::kCode, kUserLoop);
      m->edit([&](CpuState& s) {
        s.cr4 |= cr4::kPSE;
        s.cr3 = kPd;
        s.cr0 |= cr0::kPG;
        s.tr = SegmentRegister{layout::kTssSel, layout::kTss, 0x67, 0x8B};
        const uint32_t flat = segattr::kDB | segattr::kG;
        s.segment(SegReg::kCs) =
            SegmentRegister{layout::kUserCode32 | 3, 0, 0xFFFFFFFF, 0xFB | flat};
        for (SegReg r : {SegReg::kDs, SegReg::kEs, SegReg::kSs, SegReg::kFs, SegReg::kGs})
          s.segment(r) = SegmentRegister{layout::kUserData | 3, 0, 0xFFFFFFFF, 0xF3 | flat};
        s.gpr[3] = layout::kData;
        s.gpr[6] = kWindow;
        s.gpr[1] = 200;
      });
      m->env.useHint = true;
    }
    ASSERT_EQ(currentPrivilegeLevel(fast.state()), 3);
    // Every #PF is reported as an exception stop; the run goes on to HLT.
    for (int k = 0;; ++k) {
      ASSERT_LT(k, 100000) << "no HLT";
      const StepResult a = ref.run(slice);
      const StepResult b = fast.run(slice);
      ASSERT_EQ(a.outcome, b.outcome) << "slice " << slice << " at step " << ref.state().steps;
      ASSERT_EQ(a.vector, b.vector) << "slice " << slice << " at step " << ref.state().steps;
      ASSERT_TRUE(ref.state() == fast.state())
          << "slice " << slice << " at step " << ref.state().steps << ": rip " << ref.state().rip
          << "/" << fast.state().rip;
      if (a.outcome == StepOutcome::kHalted) break;
    }
    EXPECT_EQ(fast.state().gpr[1], 0u) << slice;
    EXPECT_EQ(fast.state().gpr[2], 0x600DF00Du) << slice;  // the handler ran
    EXPECT_EQ(fast.state().gpr[0], 0x1234u) << slice;
#if defined(__x86_64__)
    if (slice == 100000) {
      EXPECT_GT(fast.cpu->engineStats().compiledSteps, 200u);
    }
#endif
  }
}

// While only a maskable interrupt waits (the hint reads "maskable only")
// and IF=0, nothing can be taken: host code is entered and goes on from
// block to block (the machine's case for a guest that runs with interrupts
// off while the PIT's request waits at the PIC, as long_run does). The
// interrupt is taken at the same step on both engines once IF is set.
TEST(BlockEngine, MaskableOnlyHintWithIfClearKeepsHostCodeChaining) {
  // loop: add rax, rbx; jmp k; k: dec rcx; jnz loop; sti; nop; hlt
  const char* kTwoBlocks = "48 01 d8 eb 00 48 ff c9 75 f6 fb 90 f4";
  for (uint64_t slice : {7, 100000}) {
    Machine ref, fast;
    fast.cpu->setEngine(CpuEngine::kFast);
    for (Machine* m : {&ref, &fast}) {
      m->setupLong64(layout::kCode);
      m->loadHex(layout::kCode, kTwoBlocks);
      m->loadHex(kHandlers, "48 cf");  // iretq
      m->setIdt64(kIrqVector, kHandlers);
      m->edit([](CpuState& s) {
        s.gpr[3] = 0x1234567;
        s.gpr[1] = 1000;
        s.rflags = flags::kFixed1;  // IF = 0
      });
      m->env.useHint = true;
      m->env.hint = kEventHintMaskableOnly;
      m->env.interrupts.push_back(kIrqVector);
    }
    ASSERT_NO_FATAL_FAILURE(runInSlices(ref, fast, slice));
    EXPECT_TRUE(fast.env.interrupts.empty()) << "taken after STI";
    EXPECT_EQ(fast.state().steps, 1000u * 4 + 3) << slice;  // STI, NOP, the handler's IRETQ
#if defined(__x86_64__)
    if (slice == 100000) {
      const EngineStats st = fast.cpu->engineStats();
      EXPECT_GT(st.compiledSteps, 1000u * 4 * 95 / 100);
      EXPECT_LT(st.blockRuns, 100u) << "host code did not go on into the next block";
    }
#endif
  }
}

// Writing code behind the CPU's back (the debugger, DMA, a checkpoint
// restore: Cpu::notifyRamWritten) kills the block that holds it.
TEST(BlockEngine, RamWrittenBehindTheCpuKillsItsBlocks) {
  Machine m;
  m.cpu->setEngine(CpuEngine::kFast);
  m.setupLong64(layout::kCode);
  // loop: add eax, 1; dec ecx; jnz loop; hlt
  m.loadHex(layout::kCode, "83 c0 01 ff c9 75 f9 f4");
  m.env.useHint = true;
  m.edit([](CpuState& s) {
    s.gpr[0] = 0;
    s.gpr[1] = 100;
  });
  m.run(30);  // 10 iterations
  EXPECT_EQ(m.state().gpr[0], 10u);
  m.put(layout::kCode + 2, 7, 1);  // add eax, 7
  m.cpu->notifyRamWritten(layout::kCode + 2, 1);
  m.run(30);
  EXPECT_EQ(m.state().gpr[0], 10u + 10 * 7);
  EXPECT_GE(m.cpu->engineStats().invalidations, 1u);
}

// ------------------------------------------- watchpoints and breakpoints
//
// Debugger watchpoints and breakpoints keep the fast engine at block speed
// (issue 14, point 3): a watched page has no fast-path TLB entry, so only
// its accesses take the reference accessors, which check the watch and end
// the block after the instruction that hit it; a block holding a breakpoint
// runs up to it. Every stop lands on the step, with the state, at which the
// reference interpreter (step() for every step while any is set) stops.

// loop: mov [r8 + rcx*8], rax; add rdx, [r8 + rcx*8 + 0x800]; add rax, rbx;
//       dec rcx; jnz loop; hlt (5 fast forms: all host code)
const char* kStoreLoop = "49 89 04 c8 49 03 94 c8 00 08 00 00 48 01 d8 48 ff c9 75 ec f4";
// The same with add [r8 + rcx*8 + 0x1000], rbx (a handler) after the load.
const char* kHandlerLoop =
    "49 89 04 c8 49 03 94 c8 00 08 00 00 49 01 9c c8 00 10 00 00 48 01 d8 48 ff c9 75 e4 f4";

void setUpLoop(Machine& m, const char* code, uint64_t iterations) {
  m.setupLong64(layout::kCode);
  m.loadHex(layout::kCode, code);
  m.edit([&](CpuState& s) {
    s.gpr[0] = 0x1234;
    s.gpr[3] = 0x9E3779B97F4A7C15ull;
    s.gpr[1] = iterations;
    s.gpr[8] = layout::kData;
  });
  m.env.useHint = true;
}

std::string describeHit(const StepResult& r) {
  return "watch " + std::to_string(r.watch.watchId) + " at " + std::to_string(r.watch.address) +
         " size " + std::to_string(r.watch.size) + (r.watch.write ? " write" : " read");
}

// Runs both machines `slice` steps at a time to HLT, going on after each
// stop (watchpoint, or breakpoint with skipBreakpointOnce), comparing the
// outcome, the hit, the whole state and the data after every slice.
// Returns the number of stops.
int runToHalt(Machine& ref, Machine& fast, uint64_t slice) {
  int stops = 0;
  for (int k = 0; k < 100000; ++k) {
    const StepResult a = ref.run(slice);
    const StepResult b = fast.run(slice);
    EXPECT_EQ(a.outcome, b.outcome)
        << "slice " << k << " at step " << ref.state().steps << "/" << fast.state().steps;
    EXPECT_TRUE(ref.state() == fast.state())
        << "slice " << k << " at step " << ref.state().steps << ": rip " << ref.state().rip << "/"
        << fast.state().rip << " steps " << fast.state().steps;
    EXPECT_EQ(std::memcmp(ref.ram.data() + layout::kData, fast.ram.data() + layout::kData, 0x3000),
              0);
    if (a.outcome != b.outcome || !(ref.state() == fast.state())) return -1;
    if (a.outcome == StepOutcome::kWatchpoint) {
      EXPECT_EQ(describeHit(a), describeHit(b));
      ++stops;
    } else if (a.outcome == StepOutcome::kBreakpoint) {
      ref.cpu->skipBreakpointOnce();
      fast.cpu->skipBreakpointOnce();
      ++stops;
    } else if (a.outcome != StepOutcome::kRetired) {
      return stops;
    }
  }
  ADD_FAILURE() << "no HLT";
  return -1;
}

// A watchpoint on a page the loop never writes (a write watch on a page it
// reads, an access watch on a page it does not touch) leaves the loop in
// host code: no stop, and almost every step retired by compiled code.
TEST(BlockEngine, WatchpointOffTheLoopsPagesKeepsItInHostCode) {
  const DebuggerWatchpoint cases[] = {
      {layout::kData + 0x2100, 8, WatchKind::kWrite, false},   // only read by the loop
      {layout::kData + 0x3000, 4, WatchKind::kAccess, false},  // untouched page
      {layout::kData + 0x3010, 1, WatchKind::kRead, true},     // physical, untouched
  };
  for (const DebuggerWatchpoint& w : cases) {
    Machine ref, fast;
    fast.cpu->setEngine(CpuEngine::kFast);
    for (Machine* m : {&ref, &fast}) {
      setUpLoop(*m, kStoreLoop, 1000);
      m->cpu->setWatchpoints({w});
    }
    EXPECT_EQ(runToHalt(ref, fast, 100000), 0) << w.address;
    EXPECT_EQ(fast.state().steps, 1000u * 5 + 1);
    const EngineStats st = fast.cpu->engineStats();
    EXPECT_LT(st.fallbackSteps, 10u) << w.address;
#if defined(__x86_64__)
    EXPECT_GT(st.compiledSteps, 1000u * 5 * 95 / 100) << w.address;
#endif
  }
}

// A watchpoint on what the loop writes or reads (through a fast form, host
// code's store or load, or a handler) stops both engines after the same
// instruction, with the same hit and state, in slices of every kind of
// length; the run then goes on to HLT on both.
TEST(BlockEngine, WatchpointHitStopsAtTheSameStepAsTheReference) {
  struct Case {
    DebuggerWatchpoint w;
    int stops;
  };
  const Case cases[] = {
      {{layout::kData + 8 * 123, 8, WatchKind::kWrite, false}, 1},           // MOV store
      {{layout::kData + 8 * 123 + 3, 1, WatchKind::kAccess, true}, 1},       // physical, 1 byte
      {{layout::kData + 0x800 + 8 * 200, 8, WatchKind::kRead, false}, 1},    // ADD load
      {{layout::kData + 0x1000 + 8 * 77, 2, WatchKind::kWrite, false}, 1},   // handler's store
      {{layout::kData + 0x1000 + 8 * 50, 8, WatchKind::kAccess, false}, 1},  // handler's read
      {{layout::kData + 0x1000 + 8 * 60, 0x40, WatchKind::kWrite, false}, 8},
  };
  for (const Case& c : cases) {
    for (uint64_t slice : {1, 7, 64, 1000000}) {
      Machine ref, fast;
      fast.cpu->setEngine(CpuEngine::kFast);
      for (Machine* m : {&ref, &fast}) {
        setUpLoop(*m, kHandlerLoop, 300);
        m->cpu->setWatchpoints({c.w});
      }
      EXPECT_EQ(runToHalt(ref, fast, slice), c.stops) << c.w.address << " slice " << slice;
      EXPECT_EQ(fast.state().steps, 300u * 6 + 1);
      if (slice == 1000000) {
        // Blocks ran (the stores to a watched page take the reference
        // accessor inside them), not the reference path.
        EXPECT_LT(fast.cpu->engineStats().fallbackSteps, 10u) << c.w.address;
      }
    }
  }
}

// Watchpoints set and removed between runs: a watch set after the loop's
// code and TLB entries exist stops where the reference stops (the TLB's
// fast-path entries for the page are dropped), and once removed the loop
// goes back to host code.
TEST(BlockEngine, WatchpointSetAndRemovedMidRun) {
  Machine ref, fast;
  fast.cpu->setEngine(CpuEngine::kFast);
  for (Machine* m : {&ref, &fast}) setUpLoop(*m, kStoreLoop, 1000);
  for (Machine* m : {&ref, &fast}) m->run(700);  // compiled, data pages in the TLB
  ASSERT_TRUE(ref.state() == fast.state());
  const DebuggerWatchpoint w{layout::kData + 8 * 500, 8, WatchKind::kWrite, false};
  for (Machine* m : {&ref, &fast}) m->cpu->setWatchpoints({w});
  const StepResult a = ref.run(1'000'000);
  const StepResult b = fast.run(1'000'000);
  ASSERT_EQ(a.outcome, StepOutcome::kWatchpoint);
  ASSERT_EQ(b.outcome, StepOutcome::kWatchpoint);
  EXPECT_EQ(describeHit(a), describeHit(b));
  ASSERT_TRUE(ref.state() == fast.state());
  EXPECT_EQ(fast.state().steps, (1000u - 500) * 5 + 1);  // after the store of iteration 501
  for (Machine* m : {&ref, &fast}) m->cpu->setWatchpoints({});
  const uint64_t compiledBefore = fast.cpu->engineStats().compiledSteps;
  EXPECT_EQ(runToHalt(ref, fast, 1'000'000), 0);
  EXPECT_EQ(fast.state().steps, 1000u * 5 + 1);
#if defined(__x86_64__)
  EXPECT_GT(fast.cpu->engineStats().compiledSteps - compiledBefore, 500u * 5 * 9 / 10);
#endif
}

// A breakpoint inside a block ends the block before it: the ops before it
// run in the block (not the reference path), the stop is at the reference's
// step. Linear and physical breakpoints alike; removing them mid-run puts
// the loop back in host code, and one the loop never reaches keeps it there.
TEST(BlockEngine, BreakpointsEndBlocksAndStopAtTheSameStep) {
  for (const bool physical : {false, true}) {
    Machine ref, fast;
    fast.cpu->setEngine(CpuEngine::kFast);
    for (Machine* m : {&ref, &fast}) {
      setUpLoop(*m, kStoreLoop, 1000);
      m->run(40);  // compiled before the breakpoint is set
      // add rax, rbx: the third instruction of the loop's block.
      m->cpu->setBreakpoints({DebuggerBreakpoint{layout::kCode + 12, physical}});
    }
    const uint64_t fallbackBefore = fast.cpu->engineStats().fallbackSteps;
    int stops = 0;
    for (; stops < 20; ++stops) {
      const StepResult a = ref.run(1'000'000);
      const StepResult b = fast.run(1'000'000);
      ASSERT_EQ(a.outcome, StepOutcome::kBreakpoint) << physical;
      ASSERT_EQ(b.outcome, StepOutcome::kBreakpoint) << physical;
      ASSERT_TRUE(ref.state() == fast.state()) << physical << " stop " << stops;
      EXPECT_EQ(fast.state().rip, layout::kCode + 12);
      ref.cpu->skipBreakpointOnce();
      fast.cpu->skipBreakpointOnce();
    }
    // Two reference-path calls per stop: the one that reports it and the
    // skipped instruction (the two before it in the block ran in the block).
    EXPECT_LE(fast.cpu->engineStats().fallbackSteps - fallbackBefore, 2u * 20) << physical;
    // Removed: the rest runs in host code.
    for (Machine* m : {&ref, &fast}) m->cpu->setBreakpoints({});
    const uint64_t compiledBefore = fast.cpu->engineStats().compiledSteps;
    EXPECT_EQ(runToHalt(ref, fast, 1'000'000), 0);
    EXPECT_EQ(fast.state().steps, 1000u * 5 + 1);
#if defined(__x86_64__)
    EXPECT_GT(fast.cpu->engineStats().compiledSteps - compiledBefore, 900u * 5) << physical;
#endif
  }
  // A breakpoint the loop never reaches.
  for (const bool physical : {false, true}) {
    Machine ref, fast;
    fast.cpu->setEngine(CpuEngine::kFast);
    for (Machine* m : {&ref, &fast}) {
      setUpLoop(*m, kStoreLoop, 1000);
      m->cpu->setBreakpoints({DebuggerBreakpoint{layout::kCode + 0x800, physical}});
    }
    EXPECT_EQ(runToHalt(ref, fast, 1'000'000), 0);
    EXPECT_LT(fast.cpu->engineStats().fallbackSteps, 10u) << physical;
#if defined(__x86_64__)
    EXPECT_GT(fast.cpu->engineStats().compiledSteps, 1000u * 5 * 95 / 100) << physical;
#endif
  }
}

// Compiled code goes on from block to block while a breakpoint is armed
// (the jump cache holds only blocks checked to have none), and a breakpoint
// set mid-run in a block that compiled code used to go on into stops it
// there: setBreakpoints bumps the link epoch, so the old jump-cache entries
// die.
TEST(BlockEngine, CompiledCodeChainsWithBreakpointsArmedAndStopsAtNewOnes) {
  // loop: call f; dec rcx; jnz loop; hlt;  f: add rax, rbx; add rdx, rax; ret
  const char* kCode = "e8 06 00 00 00 48 ff c9 75 f6 f4 48 01 d8 48 01 c2 c3";
  Machine ref, fast;
  fast.cpu->setEngine(CpuEngine::kFast);
  for (Machine* m : {&ref, &fast}) {
    setUpLoop(*m, kCode, 2000);
    m->cpu->setBreakpoints({DebuggerBreakpoint{layout::kCode + 0x800, false}});  // never reached
  }
  const StepResult a = ref.run(1000 * 6);
  const StepResult b = fast.run(1000 * 6);
  ASSERT_EQ(a.outcome, b.outcome);
  ASSERT_TRUE(ref.state() == fast.state());
  // Three blocks per iteration; runBlocks itself entered only a few of them.
  EXPECT_LT(fast.cpu->engineStats().blockRuns, 100u);
  // add rdx, rax in f, reached from the call's compiled code.
  for (Machine* m : {&ref, &fast})
    m->cpu->setBreakpoints({DebuggerBreakpoint{layout::kCode + 14, false}});
  const StepResult c = ref.run(1'000'000);
  const StepResult d = fast.run(1'000'000);
  ASSERT_EQ(c.outcome, StepOutcome::kBreakpoint);
  ASSERT_EQ(d.outcome, StepOutcome::kBreakpoint);
  EXPECT_EQ(fast.state().rip, layout::kCode + 14);
  EXPECT_TRUE(ref.state() == fast.state()) << ref.state().steps << "/" << fast.state().steps;
}

// A watchpoint on the stack slot a CALL writes and its RET reads: compiled
// CALL/RET (and the interpreted ones after the exit) leave to the reference
// accessors on the watched page, and every stop is the reference's.
TEST(BlockEngine, WatchpointOnTheStackStopsAtEveryCallAndRet) {
  // loop: call f; dec rcx; jnz loop; hlt;  f: add rax, rbx; add rdx, rax; ret
  const char* kCode = "e8 06 00 00 00 48 ff c9 75 f6 f4 48 01 d8 48 01 c2 c3";
  const struct {
    WatchKind kind;
    int stops;
  } cases[] = {{WatchKind::kWrite, 50}, {WatchKind::kRead, 50}, {WatchKind::kAccess, 100}};
  for (const auto& c : cases) {
    for (uint64_t slice : {1, 5, 1000000}) {
      Machine ref, fast;
      fast.cpu->setEngine(CpuEngine::kFast);
      for (Machine* m : {&ref, &fast}) {
        setUpLoop(*m, kCode, 200);
        m->run(150 * 6);  // compiled and chained before the watch is set
        m->cpu->setWatchpoints({DebuggerWatchpoint{layout::kStackTop - 8, 8, c.kind, false}});
      }
      EXPECT_EQ(runToHalt(ref, fast, slice), c.stops) << static_cast<int>(c.kind) << " " << slice;
      EXPECT_EQ(fast.state().steps, 200u * 6 + 1);
    }
  }
}

}  // namespace
}  // namespace ttvm::cputest
