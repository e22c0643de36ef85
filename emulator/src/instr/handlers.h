// Helpers shared between the instruction groups in instr/ (MOV CRn/DRn, the
// CPL 0 check, the REP count and index registers); not an API for anything
// outside emulator/src/.
#pragma once

#include "exec/cpu_impl.h"

namespace ttvm {

// MOV to/from CRn and DRn (system.cc); MOV's handler dispatches here.
ExecStatus handleMovCr(CpuImpl& c, const Instr& i);
ExecStatus handleMovDr(CpuImpl& c, const Instr& i);

// Requires CPL 0 (real mode counts as CPL 0); records #GP(0) otherwise.
inline bool requireCpl0(CpuImpl& c) {
  if (c.cpl() != 0) return c.fault(vec::kGP, 0);
  return true;
}

// The register holding the count/index for the address size: CX/ECX/RCX etc.
inline uint64_t readAddrReg(CpuImpl& c, Gpr r, unsigned addrSize) {
  return CpuImpl::truncAddr(c.gpr(r), addrSize);
}
inline void writeAddrReg(CpuImpl& c, Gpr r, unsigned addrSize, uint64_t v) {
  c.writeGprSized(static_cast<uint8_t>(r), addrSize, v);
}

}  // namespace ttvm
