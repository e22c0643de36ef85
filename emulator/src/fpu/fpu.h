// The x87 and SSE/SSE2.
//
//   x87.cc  FNINIT, FNSTSW (AX, m16), FNSTCW, FLDCW, FNCLEX, FWAIT, EMMS,
//           FXSAVE/FXSAVE64, FXRSTOR/FXRSTOR64 (fpu/fxsave.h), LDMXCSR, STMXCSR;
//           the rest of the x87 in x87_*.cc (fpu/x87_handlers.h)
//   sse.cc  the moves (MOVD/MOVQ, MOVDQA/MOVDQU/MOVAPS/MOVUPS/MOVAPD/MOVUPD,
//           MOVNTDQ/MOVNTPS/MOVNTPD/MOVNTI, MOVLPS/MOVHPS/MOVLPD/MOVHPD,
//           MOVHLPS/MOVLHPS, MOVSS/MOVSD) and the SSE2 integer and bitwise
//           operations of fpu/sse_ops.h on XMM registers (logic, compares,
//           add/sub incl. saturating, multiplies, PMADDWD, PAVG, PSADBW,
//           min/max, packs, unpacks, shuffles, shifts, PMOVMSKB/MOVMSKPS/PD,
//           PEXTRW/PINSRW, UNPCKLPS..UNPCKHPD).
//   sse_arith.cc    SSE/SSE2 floating-point arithmetic and compares
//   sse_convert.cc  the conversions (CVT*), incl. to/from GPRs and MMX
//   (the IEEE lanes run on the host, fpu/sse_host.h; MXCSR exception rules
//   in fpu/sse_fp.h; RCP/RSQRT in software, fpu/sse_approx.h)
//   mmx.h/.cc  the MMX (MM0-7) forms of the integer operations, PSHUFW,
//           MOVNTQ, MASKMOVQ/MASKMOVDQU, MOVQ2DQ/MOVDQ2Q; CPUID.1:EDX.MMX
//           is advertised. MMX rules: #UD CR0.EM, #NM CR0.TS, #MF for a
//           pending x87 exception (CR0.NE); then TOP = 0, all tags valid.
//
// Fault rules (SDM vol. 3 table 13-1, vol. 2 per instruction):
//   x87 instructions: #NM when CR0.EM or CR0.TS; FWAIT only when TS and MP.
//   SSE instructions: #UD when CR0.EM = 1 or CR4.OSFXSR = 0, then #NM when
//     CR0.TS = 1; a 128-bit memory operand must be 16-byte aligned (#GP(0))
//     except for the unaligned moves (MOVUPS/MOVUPD/MOVDQU).
//   FXSAVE/FXRSTOR: #NM when CR0.TS or CR0.EM; #GP(0) when the area is not
//     16-byte aligned; FXRSTOR #GP(0) on reserved MXCSR bits.
//   MOVNTI uses only GPRs: no CR0/CR4 checks.
// An unmasked SIMD floating-point exception raises #XM when CR4.OSXMMEXCPT,
// else #UD (MXCSR flags set, no destination written).
#pragma once

#include "exec/handler_table.h"

namespace ttvm {

void registerFpuHandlers(HandlerTable& t);

namespace fpu {
void registerX87Handlers(HandlerTable& t);
void registerSseHandlers(HandlerTable& t);
void registerSseArithHandlers(HandlerTable& t);
void registerSseConvertHandlers(HandlerTable& t);
void registerMmxHandlers(HandlerTable& t);
}  // namespace fpu

}  // namespace ttvm
