// Stack: PUSH/POP in every form, PUSHA/POPA, PUSHF/POPF (IOPL and VM rules),
// ENTER/LEAVE.
#include "exec/handler_table.h"
#include "instr/handlers.h"

namespace ttvm {

namespace {

template <typename T>
struct Push {
  static ExecStatus run(CpuImpl& c, const Instr& i) {
    if (i.op[0].kind == OpKind::kSeg) {
      const uint16_t selector = c.state().seg[i.op[0].reg].selector;
      // AMD writes the zero-extended selector (CpuModel::
      // pushSegmentZeroExtends); current Intel CPUs write only the 16-bit
      // selector and leave the other bytes of the slot unchanged.
      if (c.model().pushSegmentZeroExtends) {
        TTVM_RETURN_ON_FAULT(c.push<T>(selector));
        return ExecStatus::kNext;
      }
      const uint64_t sp = CpuImpl::truncAddr(c.gpr(Gpr::kRsp) - sizeof(T), c.stackAddrSize());
      TTVM_RETURN_ON_FAULT(c.writeMem<uint16_t>(2, sp, selector));
      c.setSp(sp);
      return ExecStatus::kNext;
    }
    T v;
    TTVM_RETURN_ON_FAULT(c.readOp<T>(i, 0, v));
    TTVM_RETURN_ON_FAULT(c.push<T>(v));
    return ExecStatus::kNext;
  }
};

template <typename T>
struct Pop {
  static ExecStatus run(CpuImpl& c, const Instr& i) {
    const Operand& o = i.op[0];
    if (o.kind == OpKind::kSeg) {
      T v;
      TTVM_RETURN_ON_FAULT(c.peek<T>(0, v));
      TTVM_RETURN_ON_FAULT(c.loadSegment(static_cast<SegReg>(o.reg), static_cast<uint16_t>(v)));
      c.setSp(c.gpr(Gpr::kRsp) + sizeof(T));
      if (o.reg == 2) c.state().pending.shadow = InterruptShadow::kMovSs;
      return ExecStatus::kNext;
    }
    if (o.kind == OpKind::kGpr) {
      T v;
      TTVM_RETURN_ON_FAULT(c.pop<T>(v));
      c.writeGpr<T>(o.reg, v);
      return ExecStatus::kNext;
    }
    // POP m: the address is computed with RSP already incremented.
    T v;
    TTVM_RETURN_ON_FAULT(c.peek<T>(0, v));
    const uint64_t savedSp = c.gpr(Gpr::kRsp);
    c.setSp(savedSp + sizeof(T));
    if (!c.writeOp<T>(i, 0, v)) {
      c.gpr(Gpr::kRsp) = savedSp;
      return ExecStatus::kException;
    }
    return ExecStatus::kNext;
  }
};

template <typename T>
ExecStatus pusha(CpuImpl& c, const Instr&) {
  const uint64_t savedSp = c.gpr(Gpr::kRsp);
  const T sp = static_cast<T>(savedSp);
  for (int r = 0; r < 8; ++r) {
    const T v = r == 4 ? sp : static_cast<T>(c.gpr(static_cast<unsigned>(r)));
    if (!c.push<T>(v)) {
      c.gpr(Gpr::kRsp) = savedSp;
      return ExecStatus::kException;
    }
  }
  return ExecStatus::kNext;
}

template <typename T>
ExecStatus popa(CpuImpl& c, const Instr&) {
  T v[8];
  for (int k = 0; k < 8; ++k) TTVM_RETURN_ON_FAULT(c.peek<T>(k * sizeof(T), v[k]));
  for (int r = 7, k = 0; r >= 0; --r, ++k)
    if (r != 4) c.writeGpr<T>(static_cast<uint8_t>(r), v[k]);
  c.setSp(c.gpr(Gpr::kRsp) + 8 * sizeof(T));
  return ExecStatus::kNext;
}

bool v86NeedsIopl3(CpuImpl& c) {
  if (c.v86() && ((c.rflags() >> 12) & 3) < 3) return c.fault(vec::kGP, 0);
  return true;
}

ExecStatus pushf(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(v86NeedsIopl3(c));
  const uint64_t f = c.rflags() & ~(flags::kVM | flags::kRF);
  TTVM_RETURN_ON_FAULT(c.pushSized(i.opSize, f));
  return ExecStatus::kNext;
}

ExecStatus popf(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(v86NeedsIopl3(c));
  uint64_t v;
  TTVM_RETURN_ON_FAULT(c.popSized(i.opSize, v));
  const int iopl = (c.rflags() >> 12) & 3;
  uint64_t mask = flags::kArith | flags::kTF | flags::kDF | flags::kNT | flags::kAC | flags::kID;
  if (c.cpl() == 0 && !c.v86()) mask |= flags::kIOPL;
  if (c.cpl() <= iopl || c.v86()) mask |= flags::kIF;
  if (i.opSize == 2) mask &= 0xFFFF;
  uint64_t& f = c.rflags();
  f = (f & ~mask) | (v & mask) | flags::kFixed1;
  if (c.cpl() == 0 && !c.v86() && i.opSize >= 4) f &= ~(flags::kVIP | flags::kVIF);
  return ExecStatus::kNext;
}

ExecStatus enter(CpuImpl& c, const Instr& i) {
  const unsigned w = i.opSize;
  const unsigned level = static_cast<unsigned>(i.imm2) & 31;
  const uint64_t size = i.imm & 0xFFFF;
  const uint64_t savedSp = c.gpr(Gpr::kRsp);
  const uint64_t savedBp = c.gpr(Gpr::kRbp);
  const unsigned ss = c.stackAddrSize();
  auto undo = [&] {
    c.gpr(Gpr::kRsp) = savedSp;
    c.gpr(Gpr::kRbp) = savedBp;
    return ExecStatus::kException;
  };
  if (!c.pushSized(w, c.gpr(Gpr::kRbp))) return undo();
  const uint64_t frame = CpuImpl::truncAddr(c.gpr(Gpr::kRsp), ss);
  uint64_t bp = CpuImpl::truncAddr(savedBp, ss);
  if (level > 0) {
    for (unsigned k = 1; k < level; ++k) {
      bp = CpuImpl::truncAddr(bp - w, ss);
      uint64_t v = 0;
      if (!c.readMemBlock(2, bp, &v, w) || !c.pushSized(w, v)) return undo();
    }
    if (!c.pushSized(w, frame)) return undo();
  }
  const uint64_t newSp = CpuImpl::truncAddr(c.gpr(Gpr::kRsp) - size, ss);
  // The final stack pointer must be writable (hardware checks it).
  if (size > 0) {
    uint8_t probe;
    if (!c.readMem<uint8_t>(2, newSp, probe)) return undo();
  }
  c.writeGprSized(5, w, frame);
  c.setSp(newSp);
  return ExecStatus::kNext;
}

ExecStatus leave(CpuImpl& c, const Instr& i) {
  const unsigned ss = c.stackAddrSize();
  const uint64_t savedSp = c.gpr(Gpr::kRsp);
  c.setSp(CpuImpl::truncAddr(c.gpr(Gpr::kRbp), ss));
  uint64_t v;
  if (!c.popSized(i.opSize, v)) {
    c.gpr(Gpr::kRsp) = savedSp;
    return ExecStatus::kException;
  }
  c.writeGprSized(5, i.opSize, v);
  return ExecStatus::kNext;
}

}  // namespace

void registerStackHandlers(HandlerTable& t) {
  t.setSized(ZYDIS_MNEMONIC_PUSH, nullptr, &Push<uint16_t>::run, &Push<uint32_t>::run,
             &Push<uint64_t>::run);
  t.setSized(ZYDIS_MNEMONIC_POP, nullptr, &Pop<uint16_t>::run, &Pop<uint32_t>::run,
             &Pop<uint64_t>::run);
  t.set(ZYDIS_MNEMONIC_PUSHA, &pusha<uint16_t>);
  t.set(ZYDIS_MNEMONIC_PUSHAD, &pusha<uint32_t>);
  t.set(ZYDIS_MNEMONIC_POPA, &popa<uint16_t>);
  t.set(ZYDIS_MNEMONIC_POPAD, &popa<uint32_t>);
  for (ZydisMnemonic m : {ZYDIS_MNEMONIC_PUSHF, ZYDIS_MNEMONIC_PUSHFD, ZYDIS_MNEMONIC_PUSHFQ})
    t.set(m, &pushf);
  for (ZydisMnemonic m : {ZYDIS_MNEMONIC_POPF, ZYDIS_MNEMONIC_POPFD, ZYDIS_MNEMONIC_POPFQ})
    t.set(m, &popf);
  t.set(ZYDIS_MNEMONIC_ENTER, &enter);
  t.set(ZYDIS_MNEMONIC_LEAVE, &leave);
}

}  // namespace ttvm
