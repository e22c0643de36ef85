#include "ttvm/emulator/disassembler.h"

#include <algorithm>

#include "exec/internals.h"

namespace ttvm {
namespace {

StateParts writesOf(const ZydisDecodedInstruction& insn, const ZydisDecodedOperand* ops) {
  StateParts writes = 0;
  switch (insn.meta.isa_ext) {
    case ZYDIS_ISA_EXT_X87:
    case ZYDIS_ISA_EXT_MMX:
    case ZYDIS_ISA_EXT_AMD3DNOW:
    case ZYDIS_ISA_EXT_SSE:
    case ZYDIS_ISA_EXT_SSE2:
    case ZYDIS_ISA_EXT_SSE3:
    case ZYDIS_ISA_EXT_SSSE3:
    case ZYDIS_ISA_EXT_SSE4:
    case ZYDIS_ISA_EXT_SSE4A:
    case ZYDIS_ISA_EXT_AVX:
    case ZYDIS_ISA_EXT_AVX2:
    case ZYDIS_ISA_EXT_AVX2GATHER:
    case ZYDIS_ISA_EXT_AVX512EVEX:
    case ZYDIS_ISA_EXT_AVX512VEX:
    case ZYDIS_ISA_EXT_AVXAES:
    case ZYDIS_ISA_EXT_FMA:
    case ZYDIS_ISA_EXT_FMA4:
    case ZYDIS_ISA_EXT_F16C:
    case ZYDIS_ISA_EXT_XOP:
    case ZYDIS_ISA_EXT_XSAVE:
    case ZYDIS_ISA_EXT_XSAVEC:
    case ZYDIS_ISA_EXT_XSAVEOPT:
    case ZYDIS_ISA_EXT_XSAVES: writes |= state_part::kFpu; break;
    default: break;
  }
  for (unsigned i = 0; i < insn.operand_count; ++i) {
    if (ops[i].type != ZYDIS_OPERAND_TYPE_REGISTER) continue;
    const ZydisRegister r = ops[i].reg.value;
    switch (ZydisRegisterGetClass(r)) {
      case ZYDIS_REGCLASS_X87:
      case ZYDIS_REGCLASS_MMX:
      case ZYDIS_REGCLASS_XMM:
      case ZYDIS_REGCLASS_YMM:
      case ZYDIS_REGCLASS_ZMM:
      case ZYDIS_REGCLASS_MASK: writes |= state_part::kFpu; break;
      case ZYDIS_REGCLASS_DEBUG:
        if (ops[i].actions & ZYDIS_OPERAND_ACTION_MASK_WRITE) writes |= state_part::kDebugRegs;
        break;
      default: break;
    }
    if (r == ZYDIS_REGISTER_MXCSR || r == ZYDIS_REGISTER_X87CONTROL ||
        r == ZYDIS_REGISTER_X87STATUS || r == ZYDIS_REGISTER_X87TAG)
      writes |= state_part::kFpu;
  }
  // A far branch may switch tasks (DR7's local enables cleared); an event
  // delivery writes DR6 (#DB).
  if (insn.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR) writes |= state_part::kDebugRegs;
  switch (insn.mnemonic) {
    case ZYDIS_MNEMONIC_FXRSTOR:
    case ZYDIS_MNEMONIC_FXRSTOR64:
    case ZYDIS_MNEMONIC_XRSTOR:
    case ZYDIS_MNEMONIC_XRSTOR64:
    case ZYDIS_MNEMONIC_XRSTORS:
    case ZYDIS_MNEMONIC_XRSTORS64: writes |= state_part::kFpu; break;
    case ZYDIS_MNEMONIC_XSETBV: writes |= state_part::kXcr0 | state_part::kFpu; break;
    case ZYDIS_MNEMONIC_WRMSR:
    case ZYDIS_MNEMONIC_SWAPGS: writes |= state_part::kMsrs; break;
    case ZYDIS_MNEMONIC_INT:
    case ZYDIS_MNEMONIC_INT1:
    case ZYDIS_MNEMONIC_INT3:
    case ZYDIS_MNEMONIC_INTO:
    case ZYDIS_MNEMONIC_IRET:
    case ZYDIS_MNEMONIC_IRETD:
    case ZYDIS_MNEMONIC_IRETQ: writes |= state_part::kDebugRegs; break;
    default: break;
  }
  return writes;
}

}  // namespace

Disassembly disassemble(std::span<const uint8_t> bytes, CpuMode mode, uint64_t rip) {
  ZydisDecoder decoder;
  initDecoder(decoder, mode);
  ZydisFormatter formatter;
  if (ZYAN_FAILED(ZydisFormatterInit(&formatter, ZYDIS_FORMATTER_STYLE_INTEL))) return {};
  ZydisDecodedInstruction insn;
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
  const size_t n = std::min<size_t>(bytes.size(), 15);
  if (ZYAN_FAILED(ZydisDecoderDecodeFull(&decoder, bytes.data(), n, &insn, ops))) return {};
  char text[256];
  if (ZYAN_FAILED(ZydisFormatterFormatInstruction(
          &formatter, &insn, ops, insn.operand_count_visible, text, sizeof text, rip, nullptr)))
    return {};
  // Zydis' CPU flag masks use the RFLAGS bit positions.
  const uint32_t undefined = insn.cpu_flags != nullptr ? insn.cpu_flags->undefined : 0;
  return Disassembly{insn.length, text, undefined, writesOf(insn, ops)};
}

}  // namespace ttvm
