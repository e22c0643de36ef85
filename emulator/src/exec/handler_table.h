// HandlerTable: the one opcode table. It maps a Zydis mnemonic (and the
// instruction's operand width) to the handler that executes it, Bochs-style.
//
// Where it sits in emulator/src/: exec/ is the CPU framework (CpuImpl and the
// step loop, decoding into Instr, this table, memory and paging, segment
// loads, event delivery, task switches); the instruction groups live in
// instr/ (data, stack, control, string, system), alu/ (integer arithmetic)
// and fpu/ (x87, SSE, MMX). Groups include the framework; the framework
// knows the groups only through the registration functions below.
//
// Each instruction-group file provides one registration function
//
//     void registerXxxHandlers(HandlerTable& t);
//
// declared below and called, under the group's name, from
// HandlerTable::instance() (handler_table.cc). To add a group: declare its
// function here, add one line to instance(), done.
// A mnemonic without a handler decodes fine but raises #UD and is logged once
// in Cpu::unimplementedLog() (with its bytes), so a user sees why.
// A mnemonic registered twice (handler, vector handler or picker) is a bug in
// ttvm: the second registration asserts, naming the mnemonic and both groups,
// instead of silently replacing the first.
#pragma once

#include <Zydis/Zydis.h>

#include <array>
#include <cstdint>

#include "exec/instr.h"

namespace ttvm {

class HandlerTable {
 public:
  // Size index: 0 = 8-bit, 1 = 16-bit, 2 = 32-bit, 3 = 64-bit operand width.
  static constexpr int kSizes = 4;

  // Runs `registerHandlers(*this)` with `group` named as the registrant of
  // everything it registers (restored afterwards, so groups may nest).
  void registerGroup(const char* group, void (*registerHandlers)(HandlerTable&)) {
    const char* outer = group_;
    group_ = group;
    registerHandlers(*this);
    group_ = outer;
  }

  // One handler for every operand width.
  void set(ZydisMnemonic m, Handler h) {
    claim(kHandlerSlot, m);
    entries_[m].fill(h);
  }
  // One handler per operand width (nullptr: that width is not supported and
  // raises #UD). Handlers for widths an instruction cannot have may be nullptr.
  void setSized(ZydisMnemonic m, Handler h8, Handler h16, Handler h32, Handler h64) {
    claim(kHandlerSlot, m);
    entries_[m] = {h8, h16, h32, h64};
  }
  // Registers one template instantiated for uint8_t..uint64_t.
  template <template <typename> class F>
  void setTemplate(ZydisMnemonic m) {
    setSized(m, &F<uint8_t>::run, &F<uint16_t>::run, &F<uint32_t>::run, &F<uint64_t>::run);
  }

  // A handler used instead when an operand is an XMM or MMX register: the
  // SSE forms that share a mnemonic with a string instruction (MOVSD, CMPSD)
  // and any other vector form of a mnemonic.
  void setVector(ZydisMnemonic m, Handler h) {
    claim(kVectorSlot, m);
    vector_[m] = h;
  }
  Handler lookupVector(ZydisMnemonic m) const {
    return static_cast<unsigned>(m) < vector_.size() ? vector_[m] : nullptr;
  }

  // Operand-form specialization: after decoding, `pick(instr)` may return a
  // handler specialized for the instruction's operand kinds (e.g. MOV r,r vs
  // MOV r,m), or nullptr to keep the table's handler. Decode time only.
  using Picker = Handler (*)(const Instr& i);
  void setPicker(ZydisMnemonic m, Picker p) {
    claim(kPickerSlot, m);
    pickers_[m] = p;
  }
  Picker picker(ZydisMnemonic m) const {
    return static_cast<unsigned>(m) < pickers_.size() ? pickers_[m] : nullptr;
  }

  // The handler for `m` at operand width `opSizeBytes` (0 counts as 8 bytes'
  // slot for instructions without a width, i.e. set() handlers).
  Handler lookup(ZydisMnemonic m, unsigned opSizeBytes) const {
    if (static_cast<unsigned>(m) >= entries_.size()) return nullptr;
    return entries_[m][sizeIndex(opSizeBytes)];
  }
  bool has(ZydisMnemonic m) const {
    for (Handler h : entries_[m])
      if (h) return true;
    return false;
  }

  // The table with every group registered (built once, immutable afterwards).
  static const HandlerTable& instance();

 private:
  static constexpr size_t kMnemonics = ZYDIS_MNEMONIC_MAX_VALUE + 1;
  // What a registration fills; each may be registered once per mnemonic.
  enum Slot { kHandlerSlot, kVectorSlot, kPickerSlot, kSlots };

  // Records the current group as the registrant of `slot` for `m`; asserts
  // when another registration (this group's or an earlier one's) holds it.
  void claim(Slot slot, ZydisMnemonic m);

  static int sizeIndex(unsigned bytes) {
    switch (bytes) {
      case 1: return 0;
      case 2: return 1;
      case 4: return 2;
      default: return 3;
    }
  }
  std::array<std::array<Handler, kSizes>, kMnemonics> entries_{};
  std::array<Handler, kMnemonics> vector_{};
  std::array<Picker, kMnemonics> pickers_{};
  // The group that registered each slot (nullptr: not registered yet).
  std::array<std::array<const char*, kMnemonics>, kSlots> registrants_{};
  const char* group_ = "a registration outside any group";
};

// Registration functions of the groups in instr/, one per file (alu/alu.h
// and fpu/fpu.h declare the others).
// instr/data.cc: MOV, XCHG, MOVZX, CMOVcc, ...
void registerDataHandlers(HandlerTable& t);
// instr/stack.cc: PUSH/POP/PUSHA/PUSHF/ENTER/LEAVE
void registerStackHandlers(HandlerTable& t);
// instr/control.cc: Jcc, JMP, CALL, RET, LOOP, INT, IRET
void registerControlHandlers(HandlerTable& t);
// instr/string.cc: MOVS..SCAS, INS/OUTS
void registerStringHandlers(HandlerTable& t);
// instr/system.cc: CRn, DTRs, MSRs, CPUID, IN/OUT, ...
void registerSystemHandlers(HandlerTable& t);

}  // namespace ttvm
