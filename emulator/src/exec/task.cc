// Hardware task switches between 32-bit TSSs (SDM vol. 3 ch. 7): far
// JMP/CALL to a TSS or task gate, INT/exception through an IDT task gate,
// IRET with NT=1. 16-bit TSSs and long mode (where task switches do not
// exist) raise #GP / #TS and are logged.
#include "exec/internals.h"
#include "ttvm/base/log.h"

namespace ttvm {

namespace {
// 32-bit TSS layout.
constexpr unsigned kBackLink = 0x00, kCr3 = 0x1C, kEip = 0x20, kEflags = 0x24, kEax = 0x28,
                   kEs = 0x48, kLdt = 0x60;
}  // namespace

bool CpuImpl::taskSwitch(uint16_t sel, TaskSwitchReason reason, uint64_t returnRip,
                         const PendingException* errorToPush) {
  const uint32_t err = sel & ~3u;
  if (longMode()) return fault(vec::kGP, err);
  if (sel & 4) return fault(vec::kTS, err);
  uint64_t raw;
  if (!readDescriptor(sel, raw, vec::kGP)) return false;
  SegmentRegister next = descriptorToCache(sel, raw);
  const uint32_t type = next.attributes & 0x1F;
  const bool wantBusy = reason == TaskSwitchReason::kIret;
  if (type == 0x01 || type == 0x03) {
    TTVM_LOG("emulator", kWarn,
             "task switch to a 16-bit TSS (selector " << sel << ") not emulated");
    return fault(vec::kGP, err);
  }
  if (type != (wantBusy ? 0x0Bu : 0x09u)) return fault(wantBusy ? vec::kTS : vec::kGP, err);
  if (!(next.attributes & segattr::kP)) return fault(vec::kNP, err);
  if (next.limit < 0x67) return fault(vec::kTS, err);

  // Save the outgoing task (32-bit TSS only).
  const SegmentRegister cur = s_.tr;
  if ((cur.attributes & 0xF) != 0xB || cur.limit < 0x5F) return fault(vec::kTS, cur.selector & ~3u);
  uint64_t savedFlags = s_.rflags & 0xFFFFFFFF;
  if (reason == TaskSwitchReason::kIret) savedFlags &= ~flags::kNT;
  uint32_t block[18];
  block[0] = static_cast<uint32_t>(returnRip);
  block[1] = static_cast<uint32_t>(savedFlags);
  for (int r = 0; r < 8; ++r) block[2 + r] = static_cast<uint32_t>(s_.gpr[r]);
  for (int sr = 0; sr < 6; ++sr) block[10 + sr] = s_.seg[sr].selector;
  if (!writeLinearBlock(cur.base + kEip, block, 16 * 4, true)) return false;

  // Read the incoming task.
  uint32_t in[26];
  if (!readLinearBlock(next.base, in, 0x68, true)) return false;

  const uint64_t gdt = s_.gdtr.base;
  if (reason == TaskSwitchReason::kJmp || reason == TaskSwitchReason::kIret) {
    uint64_t curRaw;
    if (!readLinear<uint64_t>(gdt + (cur.selector & ~7u), curRaw, true)) return false;
    if (!writeLinear<uint8_t>(gdt + (cur.selector & ~7u) + 5,
                              static_cast<uint8_t>((curRaw >> 40) & ~2u), true))
      return false;
  }
  uint32_t newFlags = in[kEflags / 4];
  if (reason == TaskSwitchReason::kCall || reason == TaskSwitchReason::kInt) {
    if (!writeLinear<uint16_t>(next.base + kBackLink, cur.selector, true)) return false;
    newFlags |= flags::kNT;
  }
  if (reason != TaskSwitchReason::kIret &&
      !writeLinear<uint8_t>(gdt + (sel & ~7u) + 5, static_cast<uint8_t>((raw >> 40) | 2), true))
    return false;

  // Commit the register state of the new task. From here on, faults belong
  // to the new task (SDM 7.3 step 12-13).
  next.attributes |= 2;  // busy
  s_.tr = next;
  s_.cr0 |= cr0::kTS;
  if (s_.cr0 & cr0::kPG) {
    s_.cr3 = in[kCr3 / 4];
    flushTlb(false);
  }
  s_.rip = in[kEip / 4];
  // Local breakpoint enables belong to the old task (SDM 18.2.4); the new
  // TSS's T bit raises a #DB trap (DR6.BT) before its first instruction
  // (delivered by the step loop after a JMP/CALL/IRET switch).
  s_.dr7 &= ~0x55ull;
  debugRegistersChanged();
  if (in[0x64 / 4] & 1) debugTrapBits_ |= 1ull << 15;
  s_.rflags = (newFlags & 0x3F7FD7) | flags::kFixed1;
  for (int r = 0; r < 8; ++r) s_.gpr[r] = in[kEax / 4 + r];
  const uint16_t ldtSel = static_cast<uint16_t>(in[kLdt / 4]);
  uint16_t segSel[6];
  for (int sr = 0; sr < 6; ++sr) segSel[sr] = static_cast<uint16_t>(in[kEs / 4 + sr]);
  // Provisional segment caches (selectors only) until the checked loads below.
  for (int sr = 0; sr < 6; ++sr) {
    s_.seg[sr].selector = segSel[sr];
    s_.seg[sr].attributes = segattr::kUnusable;
  }
  if (s_.rflags & flags::kVM) {
    for (int sr = 0; sr < 6; ++sr)
      s_.seg[sr] = SegmentRegister{segSel[sr], uint64_t{segSel[sr]} << 4, 0xFFFF,
                                   static_cast<uint32_t>(sr == 1 ? 0xFB : 0xF3)};
    updateMode();
    return true;
  }
  // LDT.
  if ((ldtSel & ~3u) == 0) {
    s_.ldtr = SegmentRegister{ldtSel, 0, 0, segattr::kUnusable};
  } else {
    uint64_t ldtRaw;
    if ((ldtSel & 4) || !readDescriptor(ldtSel, ldtRaw, vec::kTS))
      return fault(vec::kTS, ldtSel & ~3u);
    const SegmentRegister ldt = descriptorToCache(ldtSel, ldtRaw);
    if ((ldt.attributes & 0x1F) != 0x02) return fault(vec::kTS, ldtSel & ~3u);
    if (!(ldt.attributes & segattr::kP)) return fault(vec::kTS, ldtSel & ~3u);
    s_.ldtr = ldt;
  }
  // CS: its RPL is the new CPL.
  const uint16_t csSel = segSel[1];
  if ((csSel & ~3u) == 0) return fault(vec::kTS, 0);
  uint64_t csRaw;
  if (!readDescriptor(csSel, csRaw, vec::kTS)) return false;
  const SegmentRegister cs = descriptorToCache(csSel, csRaw);
  if (!(cs.attributes & segattr::kS) || !(cs.attributes & 8)) return fault(vec::kTS, csSel & ~3u);
  if (!(cs.attributes & segattr::kP)) return fault(vec::kNP, csSel & ~3u);
  loadCs(csSel, csRaw, csSel & 3);
  // SS and the data segments, checked as normal loads but reported as #TS.
  for (int sr : {2, 0, 3, 4, 5}) {
    if (!loadSegment(static_cast<SegReg>(sr), segSel[sr])) {
      if (exc_.vector == vec::kGP) exc_.vector = vec::kTS;
      return false;
    }
  }
  if (errorToPush != nullptr) {
    if (!pushSized((s_.seg[1].attributes & segattr::kDB) ? 4 : 2, errorToPush->errorCode))
      return false;
  }
  return true;
}

}  // namespace ttvm
