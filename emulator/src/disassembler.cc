#include "ttvm/emulator/disassembler.h"

#include <algorithm>

#include "exec/internals.h"

namespace ttvm {

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
  return Disassembly{insn.length, text, undefined};
}

}  // namespace ttvm
