#include "alu/alu.h"

namespace ttvm {

void registerAluHandlers(HandlerTable& t) {
  t.registerGroup("alu/arith", alu::registerArithHandlers);
  t.registerGroup("alu/shift", alu::registerShiftHandlers);
  t.registerGroup("alu/muldiv", alu::registerMulDivHandlers);
  t.registerGroup("alu/bits", alu::registerBitHandlers);
  t.registerGroup("alu/bcd", alu::registerBcdHandlers);
}

}  // namespace ttvm
