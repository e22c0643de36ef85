#include "exec/handler_table.h"

#include "alu/alu.h"
#include "fpu/fpu.h"

namespace ttvm {

const HandlerTable& HandlerTable::instance() {
  static const HandlerTable table = [] {
    HandlerTable t;
    // Groups register in this order; a later registration of the same
    // mnemonic replaces an earlier one.
    registerDataHandlers(t);
    registerStackHandlers(t);
    registerControlHandlers(t);
    registerStringHandlers(t);
    registerSystemHandlers(t);
    registerAluHandlers(t);
    registerFpuHandlers(t);
    return t;
  }();
  return table;
}

}  // namespace ttvm
