// The x87 register stack and the rules every non-control x87 instruction
// shares (not a public interface): TOP, tags, push/pop, stack faults, the
// masked/unmasked exception responses, FIP/FDP/FOP.
//
// Exception response (SDM vol. 1 8.5, 4.9.2): an operation's flags are ORed
// into FSW; ES and B follow the unmasked ones. An unmasked IE, DE or ZE leaves
// the destination and TOP unchanged; for a memory destination an unmasked OE
// or UE does too. An unmasked OE/UE with a register destination stores the
// bias-adjusted result (the host computes it). The exception itself is raised
// as #MF by the next waiting x87 instruction (x87Begin) when CR0.NE is set.
#pragma once

#include <cstdint>

#include "exec/cpu_impl.h"
#include "fpu/f80.h"
#include "fpu/fpu_util.h"
#include "fpu/fxsave.h"

namespace ttvm::fpu {

inline void setTop(FpuState& f, unsigned top) {
  f.fsw = uint16_t((f.fsw & ~fsw::kTopMask) | ((top & 7) << 11));
}
inline unsigned physIndex(const FpuState& f, unsigned i) {
  return (fpuTop(f) + i) & 7;
}
inline bool isEmpty(const FpuState& f, unsigned i) {
  return !((f.ftw >> physIndex(f, i)) & 1);
}
inline Float80& st(FpuState& f, unsigned i) {
  return f.st[physIndex(f, i)];
}
// Writes ST(i) and marks it valid.
inline void setSt(FpuState& f, unsigned i, const Float80& v) {
  const unsigned p = physIndex(f, i);
  f.st[p] = v;
  f.ftw = uint8_t(f.ftw | (1u << p));
}
inline void push(FpuState& f, const Float80& v) {
  setTop(f, fpuTop(f) - 1);
  setSt(f, 0, v);
}
inline void pop(FpuState& f) {
  f.ftw = uint8_t(f.ftw & ~(1u << fpuTop(f)));
  setTop(f, fpuTop(f) + 1);
}
inline void setC1(FpuState& f, bool v) {
  f.fsw = uint16_t((f.fsw & ~fsw::kC1) | (v ? fsw::kC1 : 0));
}
// Replaces C0, C2, C3 (and C1 when `withC1`) by those in `cc`.
inline void setConditions(FpuState& f, uint16_t cc, bool withC1) {
  const uint16_t mask = withC1 ? fsw::kConditions : uint16_t(fsw::kC0 | fsw::kC2 | fsw::kC3);
  f.fsw = uint16_t((f.fsw & ~mask) | (cc & mask));
}

// ORs exception flags (IE..PE, SF) into FSW and updates ES/B.
inline void signal(FpuState& f, uint16_t flags) {
  f.fsw = fswWithSummary(uint16_t(f.fsw | (flags & (fsw::kExceptions | fsw::kSF))), f.fcw);
}
inline bool masked(const FpuState& f, uint16_t flag) {
  return (f.fcw & flag) == flag;
}

// A stack fault: IE + SF, C1 = 1 on overflow, 0 on underflow. Returns true
// when IE is masked (the caller then stores the masked response).
inline bool stackFault(FpuState& f, bool overflow) {
  setC1(f, overflow);
  signal(f, fsw::kIE | fsw::kSF);
  return masked(f, fsw::kIE);
}

// Applies the flags of an operation computed on the host (or in software):
// returns true when its result is to be stored. C1 takes the operation's
// round-up bit when the result is stored, else 0.
// `abort`: the unmasked flags that stop the store.
inline bool applyResultWith(FpuState& f, uint16_t resultFsw, uint16_t abort) {
  const uint16_t flags = resultFsw & fsw::kExceptions;
  const uint16_t unmasked = flags & ~f.fcw;
  signal(f, flags);
  const bool store = !(unmasked & abort);
  setC1(f, store && (resultFsw & fsw::kC1));
  return store;
}
inline bool applyResult(FpuState& f, uint16_t resultFsw, bool memoryDestination) {
  uint16_t abort = fsw::kIE | fsw::kDE | fsw::kZE;
  if (memoryDestination) abort |= fsw::kOE | fsw::kUE;
  return applyResultWith(f, resultFsw, abort);
}

inline bool hasMemOperand(const Instr& i) {
  for (int k = 0; k < i.numOps; ++k)
    if (i.op[k].kind == OpKind::kMem) return true;
  return false;
}

// Reads / writes the memory operand's bytes.
inline bool readOperandBytes(CpuImpl& c, const Instr& i, void* dst, unsigned n) {
  return c.readMemBlock(i.mem.seg, c.effectiveAddress(i), dst, n);
}
inline bool writeOperandBytes(CpuImpl& c, const Instr& i, const void* src, unsigned n) {
  return c.writeMemBlock(i.mem.seg, c.effectiveAddress(i), src, n);
}

// The start of every non-control x87 instruction: #NM (CR0.EM/TS), then a
// pending unmasked exception raised as #MF (CR0.NE; with NE clear ttvm's
// machines do not wire FERR#: the instruction runs). Call it before any
// memory access; x87Pointers() afterwards, once nothing can fault.
inline bool x87Begin(CpuImpl& c) {
  if (!x87Available(c)) return false;
  const CpuState& s = c.state();
  if ((s.fpu.fsw & fsw::kES) && (s.cr0 & cr0::kNE)) return c.fault(vec::kMF);
  return true;
}

// FIP/FCS (this instruction, prefixes included), FOP (the last opcode byte's
// low 3 bits and ModRM) and, for a memory operand, FDP/FDS.
inline void x87Pointers(CpuImpl& c, const Instr& i) {
  CpuState& s = c.state();
  FpuState& f = s.fpu;
  f.fip = c.rip();
  f.fcs = s.segment(SegReg::kCs).selector;
  f.fop = uint16_t(((i.opcode & 7) << 8) | i.modrm);
  if (hasMemOperand(i)) {
    f.fdp = c.effectiveAddress(i);
    f.fds = s.seg[i.mem.seg].selector;
  }
}

}  // namespace ttvm::fpu
