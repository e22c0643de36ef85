#include "alu/alu.h"

namespace ttvm {

void registerAluHandlers(HandlerTable& t) {
  alu::registerArithHandlers(t);
  alu::registerShiftHandlers(t);
  alu::registerMulDivHandlers(t);
  alu::registerBitHandlers(t);
  alu::registerBcdHandlers(t);
}

}  // namespace ttvm
