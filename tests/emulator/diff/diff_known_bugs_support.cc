#include "diff_known_bugs_support.h"

namespace ttvm::difftest {
namespace {

bool hasRipRelativeMemory(const ZydisDecodedOperand* ops, int n) {
  for (int i = 0; i < n; ++i) {
    if (ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY && ops[i].mem.base == ZYDIS_REGISTER_RIP) {
      return true;
    }
  }
  return false;
}

bool hasImmediate(const ZydisDecodedOperand* ops, int n) {
  for (int i = 0; i < n; ++i) {
    if (ops[i].type == ZYDIS_OPERAND_TYPE_IMMEDIATE) return true;
  }
  return false;
}

}  // namespace

const char* unicornKnownBug(const TestCase& tc, const Encoded& code, const Outcome&,
                            const Outcome&) {
  ZydisDecoder dec;
  CodeMode mode = tc.program.mode;
  ZydisDecoderInit(&dec, zydisMode(mode),
                   mode == CodeMode::kLong64        ? ZYDIS_STACK_WIDTH_64
                   : mode == CodeMode::kProtected32 ? ZYDIS_STACK_WIDTH_32
                                                    : ZYDIS_STACK_WIDTH_16);
  for (const auto& pos : code.insns) {
    ZydisDecodedInstruction in;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    if (ZYAN_FAILED(
            ZydisDecoderDecodeFull(&dec, code.bytes.data() + pos.offset, pos.length, &in, ops))) {
      continue;
    }
    int n = in.operand_count_visible;
    // QEMU TCG computes the RIP-relative address of SHLD/SHRD r/m, r, imm8
    // without counting the trailing imm8, so it accesses one byte too low.
    // SDM Vol. 2A 2.2.1.6: RIP-relative addresses are relative to the next
    // instruction (after any immediate).
    if ((in.mnemonic == ZYDIS_MNEMONIC_SHLD || in.mnemonic == ZYDIS_MNEMONIC_SHRD) &&
        hasRipRelativeMemory(ops, n) && hasImmediate(ops, n)) {
      return "Unicorn: SHLD/SHRD imm8 with a RIP-relative operand addresses 1 byte too low "
             "(SDM Vol. 2A 2.2.1.6)";
    }
    // A 32-bit CMPXCHG that succeeds does not write EAX (SDM Vol. 2A
    // CMPXCHG: the accumulator is loaded only when the operands differ), so
    // RAX keeps its upper half; QEMU TCG zero-extends RAX anyway.
    if (mode == CodeMode::kLong64 && in.mnemonic == ZYDIS_MNEMONIC_CMPXCHG &&
        in.operand_width == 32) {
      return "Unicorn: 32-bit CMPXCHG that succeeds clears RAX[63:32] (SDM Vol. 2A CMPXCHG)";
    }
    // QEMU TCG's LOCK NEG (a compare-exchange loop) sets SF/ZF/PF from the
    // wrong value; SDM Vol. 2B NEG: SF, ZF, PF are set according to the result.
    if (in.mnemonic == ZYDIS_MNEMONIC_NEG && (in.attributes & ZYDIS_ATTRIB_HAS_LOCK)) {
      return "Unicorn: LOCK NEG m sets SF/ZF/PF wrongly (SDM Vol. 2B NEG: flags per result)";
    }
  }
  return nullptr;
}

}  // namespace ttvm::difftest
