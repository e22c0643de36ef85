// The x87 control instructions and the SSE/SSE2 subset ttvm implements.
//
//   x87.cc  FNINIT, FNSTSW (AX, m16), FNSTCW, FLDCW, FNCLEX, FWAIT, EMMS,
//           FXSAVE/FXSAVE64, FXRSTOR/FXRSTOR64 (fpu/fxsave.h), LDMXCSR, STMXCSR
//   sse.cc  the moves (MOVD/MOVQ, MOVDQA/MOVDQU/MOVAPS/MOVUPS/MOVAPD/MOVUPD,
//           MOVNTDQ/MOVNTPS/MOVNTPD/MOVNTI, MOVLPS/MOVHPS/MOVLPD/MOVHPD,
//           MOVHLPS/MOVLHPS, MOVSS/MOVSD) and the SSE2 integer and bitwise
//           operations of fpu/sse_ops.h on XMM registers (logic, compares,
//           add/sub incl. saturating, multiplies, PMADDWD, PAVG, PSADBW,
//           min/max, packs, unpacks, shuffles, shifts, PMOVMSKB/MOVMSKPS/PD,
//           PEXTRW/PINSRW).
//
// Fault rules (SDM vol. 3 table 13-1, vol. 2 per instruction):
//   x87 instructions: #NM when CR0.EM or CR0.TS; FWAIT only when TS and MP.
//   SSE instructions: #UD when CR0.EM = 1 or CR4.OSFXSR = 0, then #NM when
//     CR0.TS = 1; a 128-bit memory operand must be 16-byte aligned (#GP(0))
//     except for the unaligned moves (MOVUPS/MOVUPD/MOVDQU).
//   FXSAVE/FXRSTOR: #NM when CR0.TS or CR0.EM; #GP(0) when the area is not
//     16-byte aligned; FXRSTOR #GP(0) on reserved MXCSR bits.
//   MOVNTI uses only GPRs: no CR0/CR4 checks.
// MMX register forms (operands MM0-7) raise #UD: ttvm does not implement
// MMX arithmetic. EMMS and MOVD/MOVQ to and from MM registers are accepted.
// There is no x87 or SSE floating-point arithmetic: those raise #UD and are
// logged once by the framework.
#pragma once

#include "exec/handler_table.h"

namespace ttvm {

void registerFpuHandlers(HandlerTable& t);

namespace fpu {
void registerX87Handlers(HandlerTable& t);
void registerSseHandlers(HandlerTable& t);
}  // namespace fpu

}  // namespace ttvm
