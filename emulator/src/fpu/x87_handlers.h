// The x87 instruction groups' registration functions and what their files
// share (not a public interface). registerX87Handlers (x87.cc) calls them.
//
//   x87.cc                the control instructions, FXSAVE/FXRSTOR, MXCSR
//   x87_load_store.cc     loads, stores, register moves, constants, FCMOVcc,
//                         FFREE, FINCSTP/FDECSTP, FNOP
//   x87_arith.cc          FADD..FDIVR (all forms), compares, FCHS/FABS/FXAM,
//                         FSQRT, FRNDINT, FSCALE, FXTRACT, FPREM/FPREM1
//   x87_transcendental.cc FSIN, FCOS, FSINCOS, FPTAN, FPATAN, F2XM1, FYL2X,
//                         FYL2XP1 (software, f80_transcendental.cc)
//   x87_env.cc            FNSTENV/FLDENV, FNSAVE/FRSTOR
#pragma once

#include <cstring>

#include "exec/handler_table.h"
#include "fpu/x87_state.h"

namespace ttvm::fpu {

void registerX87LoadStoreHandlers(HandlerTable& t);
void registerX87ArithHandlers(HandlerTable& t);
void registerX87TranscendentalHandlers(HandlerTable& t);
void registerX87EnvHandlers(HandlerTable& t);

}  // namespace ttvm::fpu
