// Guest debug facilities that hook into the step loop and the memory slow
// path: DR0-DR3 breakpoints, DR6/DR7. The single-step trap (TF, DR6.BS, MOV SS
// deferral) is in the step loop (exec/cpu_impl.cc, executeOne).
//
// Status: instruction and data breakpoints through DR0-DR3 are not yet
// evaluated here (the debug-semantics work completes this file); DR7 is kept
// so that enabling them turns on the slow data path.
#include "exec/cpu_impl.h"

namespace ttvm {

void CpuImpl::debugRegistersChanged() {
  // Data/IO breakpoints are not evaluated yet: keep the fast path.
  dataBreakpointsActive_ = false;
  guestDebugActive_ = false;
  updateRunSlow();
}

void CpuImpl::debugDataAccess(uint64_t lin, unsigned size, bool write) {
  (void)lin;
  (void)size;
  (void)write;
}

bool CpuImpl::debugBeforeInstruction() {
  return true;
}

}  // namespace ttvm
