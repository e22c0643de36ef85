// Guest debug registers: DR0-DR3 instruction, data and I/O breakpoints as the
// guest's own #DB handler sees them (Intel SDM vol. 3 ch. 18.2-18.3, AMD APM
// vol. 2 ch. 13.1). The single-step trap (TF, DR6.BS, MOV SS deferral) and
// general detect live in the step loop (exec/cpu_impl.cc) and MOV DR
// (instr/system.cc); this file decides which DRn conditions were met.
//
// DR7 layout: Ln = bit 2n, Gn = bit 2n+1 (either enables breakpoint n; a
// hardware task switch clears L0-L3, exec/task.cc), R/Wn = bits 16+4n..17+4n (00
// execute, 01 write, 10 I/O with CR4.DE else undefined, 11 read/write), LENn = bits 18+4n..19+4n
// (00 = 1, 01 = 2, 11 = 4, 10 = 8 bytes).
//
// Semantics:
//  - instruction breakpoints are faults, checked before the instruction
//    executes and after external events were considered (priority table,
//    SDM 6.9); RFLAGS.RF = 1 suppresses them for one instruction; the step
//    loop does not check them for the instruction in a MOV SS / POP SS
//    shadow (SDM 18.3.1.1: "may not be triggered"; ttvm: never);
//  - data and I/O breakpoints are traps: the condition is noted during the
//    instruction and delivered by the step loop after it completes (with
//    BS when TF was set too: one #DB, both bits); the range of a breakpoint
//    is its address with the low LEN-1 bits ignored (the hardware requires
//    alignment and masks them), and any byte of an access inside it hits;
//  - for a #DB raised here, DR6.B0-B3 report exactly the breakpoints whose
//    conditions were met; the other DR6 bits are left alone (sticky).
#include "exec/cpu_impl.h"
#include "exec/internals.h"

namespace ttvm {

namespace {

enum class DrType : unsigned { kExec = 0, kWrite = 1, kIo = 2, kReadWrite = 3 };

bool drEnabled(uint64_t dr7, unsigned n) {
  return (dr7 >> (2 * n)) & 3;
}
DrType drType(uint64_t dr7, unsigned n) {
  return static_cast<DrType>((dr7 >> (16 + 4 * n)) & 3);
}
uint64_t drLength(uint64_t dr7, unsigned n) {
  static constexpr uint64_t kLen[4] = {1, 2, 8, 4};
  return kLen[(dr7 >> (18 + 4 * n)) & 3];
}

// Whether [a, a+n) overlaps breakpoint n's aligned range.
bool overlaps(uint64_t drAddr, uint64_t len, uint64_t a, uint64_t n) {
  const uint64_t begin = drAddr & ~(len - 1);
  return a < begin + len && begin < a + n;
}

}  // namespace

void CpuImpl::debugRegistersChanged() {
  const uint64_t dr7 = s_.dr7;
  const bool ioEnabled = s_.cr4 & cr4::kDE;
  bool data = false;
  bool other = false;
  for (unsigned n = 0; n < 4; ++n) {
    if (!drEnabled(dr7, n)) continue;
    switch (drType(dr7, n)) {
      case DrType::kWrite:
      case DrType::kReadWrite: data = true; break;
      case DrType::kExec: other = true; break;
      case DrType::kIo: other = other || ioEnabled; break;
    }
  }
  // GD must be seen by MOV DR (it is, in the handler); DR7 changes that arm
  // data breakpoints must take every data access off the TLB fast path.
  if (data != dataBreakpointsActive_) flushTlb(true);
  dataBreakpointsActive_ = data;
  guestDebugActive_ = other || data;
  updateRunSlow();
}

void CpuImpl::debugDataAccess(uint64_t lin, unsigned size, bool write) {
  const uint64_t dr7 = s_.dr7;
  for (unsigned n = 0; n < 4; ++n) {
    if (!drEnabled(dr7, n)) continue;
    const DrType t = drType(dr7, n);
    if (t == DrType::kWrite ? !write : t != DrType::kReadWrite) continue;
    if (overlaps(s_.dr[n], drLength(dr7, n), lin, size)) debugTrapBits_ |= 1ull << n;
  }
}

uint64_t ioBreakpointHits(const CpuState& s, uint16_t port, unsigned size) {
  if (!(s.cr4 & cr4::kDE)) return 0;
  uint64_t hits = 0;
  for (unsigned n = 0; n < 4; ++n) {
    if (!drEnabled(s.dr7, n) || drType(s.dr7, n) != DrType::kIo) continue;
    // I/O breakpoints compare the low 16 bits of DRn with the port.
    if (overlaps(s.dr[n] & 0xFFFF, drLength(s.dr7, n), port, size)) hits |= 1ull << n;
  }
  return hits;
}

void CpuImpl::debugIoAccess(uint16_t port, unsigned size) {
  if (!guestDebugActive_) return;
  debugTrapBits_ |= ioBreakpointHits(s_, port, size);
}

bool CpuImpl::debugBeforeInstruction() {
  if (!guestDebugActive_ || (s_.rflags & flags::kRF)) return true;
  const uint64_t dr7 = s_.dr7;
  const uint64_t lin =
      mode_ == CpuMode::kLong64 ? s_.rip : ((s_.seg[1].base + s_.rip) & 0xFFFFFFFFull);
  uint64_t hits = 0;
  for (unsigned n = 0; n < 4; ++n) {
    if (drEnabled(dr7, n) && drType(dr7, n) == DrType::kExec && s_.dr[n] == lin) hits |= 1ull << n;
  }
  if (!hits) return true;
  s_.dr6 = (s_.dr6 & ~0xFull) | hits;
  raise(vec::kDB);
  return false;
}

}  // namespace ttvm
