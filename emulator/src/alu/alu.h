// The integer ALU instruction groups: handlers built on the pure flag
// arithmetic of alu/flags.h, one file per family, every operand size.
//
//   arith.cc   ADD ADC SUB SBB CMP AND OR XOR TEST NEG NOT INC DEC
//   shift.cc   SHL/SAL SHR SAR ROL ROR RCL RCR SHLD SHRD
//   muldiv.cc  MUL, IMUL (one-, two- and three-operand forms), DIV, IDIV
//   bits.cc    BT BTS BTR BTC BSF BSR TZCNT LZCNT POPCNT BSWAP
//   bcd.cc     DAA DAS AAA AAS AAM AAD (Zydis rejects them in 64-bit mode: #UD)
//
// Handlers follow the contract in exec/instr.h: every memory access that can
// fault happens before any register or RFLAGS is written; a read-modify-write
// destination is read, computed and written back, then RFLAGS is stored.
// LOCK on a memory destination is accepted (the emulator executes one
// instruction at a time, so every RMW is atomic); Zydis rejects LOCK elsewhere.
#pragma once

#include "exec/handler_table.h"

namespace ttvm {

// Registers every ALU handler above, each family as a group of its own
// ("alu/arith", ...; see HandlerTable::registerGroup).
void registerAluHandlers(HandlerTable& t);

namespace alu {
void registerArithHandlers(HandlerTable& t);
void registerShiftHandlers(HandlerTable& t);
void registerMulDivHandlers(HandlerTable& t);
void registerBitHandlers(HandlerTable& t);
void registerBcdHandlers(HandlerTable& t);
}  // namespace alu

}  // namespace ttvm
