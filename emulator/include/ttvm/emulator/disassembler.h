// Disassembly of guest code for people: replay output, crash summaries, the
// gdb stub and the GUI. It uses the same Zydis decoder configuration as the
// CPU (exec/decoder.cc), so what the user reads is what ran. Zydis itself
// stays inside the emulator library.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "ttvm/emulator/cpu_state.h"

namespace ttvm {

struct Disassembly {
  unsigned length = 0;  // 0 when the bytes do not decode
  std::string text;     // Intel syntax, e.g. "mov qword ptr [rax+0x8], rdx"
  // RFLAGS bits the SDM leaves undefined after this instruction (MUL's SF,
  // ZF, AF, PF; BSF's all but ZF...): a CPU may leave any value there.
  uint32_t undefinedFlags = 0;
  // The state parts this instruction may write beside the general
  // registers, segments, control registers and RFLAGS, decided
  // conservatively from its mnemonic and operands: kFpu for any instruction
  // of the x87, MMX, SSE, AVX or XSAVE families or with such a register
  // operand (read or written), kDebugRegs for MOV to a debug register and
  // for INT n, INT1, INT3, INTO, IRET and far branches (a #DB or a task
  // switch writes DR6, DR7), kMsrs for WRMSR and SWAPGS, kXcr0 for XSETBV.
  StateParts writes = 0;
};

// Decodes one instruction from `bytes` (at most 15 are looked at) as the CPU
// would in `mode`; `rip` resolves relative branch targets.
Disassembly disassemble(std::span<const uint8_t> bytes, CpuMode mode, uint64_t rip);

}  // namespace ttvm
