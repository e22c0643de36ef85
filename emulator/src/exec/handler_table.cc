#include "exec/handler_table.h"

#include "alu/alu.h"
#include "fpu/fpu.h"
#include "ttvm/base/assert.h"

namespace ttvm {

const HandlerTable& HandlerTable::instance() {
  static const HandlerTable table = [] {
    HandlerTable t;
    // Each mnemonic belongs to exactly one group (claim() asserts otherwise),
    // so the order below does not matter.
    t.registerGroup("data", registerDataHandlers);
    t.registerGroup("stack", registerStackHandlers);
    t.registerGroup("control", registerControlHandlers);
    t.registerGroup("string", registerStringHandlers);
    t.registerGroup("system", registerSystemHandlers);
    t.registerGroup("alu", registerAluHandlers);
    t.registerGroup("fpu", registerFpuHandlers);
    return t;
  }();
  return table;
}

void HandlerTable::claim(Slot slot, ZydisMnemonic m) {
  static constexpr const char* kSlotNames[kSlots] = {"handler", "vector handler",
                                                     "operand-form picker"};
  TTVM_ASSERT(static_cast<size_t>(m) < kMnemonics, "mnemonic number ", static_cast<int>(m));
  const char*& registrant = registrants_[slot][m];
  TTVM_ASSERT(registrant == nullptr, ZydisMnemonicGetString(m), ": ", kSlotNames[slot],
              " registered twice, by ", registrant, " and again by ", group_);
  registrant = group_;
}

}  // namespace ttvm
