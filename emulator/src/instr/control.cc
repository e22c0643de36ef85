// Control flow: Jcc, JMP/CALL/RET near and far, LOOP*, JrCXZ, INT n, INT3,
// INTO, INT1, IRET, UD0/UD1/UD2, BOUND.
#include "exec/handler_table.h"
#include "instr/handlers.h"

namespace ttvm {

namespace {

// Truncates a branch target to the operand size (64-bit mode: 64 bits).
uint64_t branchTarget(const CpuImpl& c, const Instr& i, uint64_t t) {
  if (c.is64()) return t;
  return i.opSize == 2 ? (t & 0xFFFF) : (t & 0xFFFFFFFF);
}

uint64_t relTarget(const CpuImpl& c, const Instr& i) {
  return branchTarget(c, i, c.nextRip(i) + i.imm);
}

template <unsigned cc>
ExecStatus jcc(CpuImpl& c, const Instr& i) {
  if (!c.condition(cc)) return ExecStatus::kNext;
  return c.jumpTo(relTarget(c, i));
}

// Reads a far pointer m16:16/32/64 (offset first).
bool readFarPointer(CpuImpl& c, const Instr& i, uint16_t& sel, uint64_t& off) {
  const uint64_t ea = c.effectiveAddress(i);
  off = 0;
  if (!c.readMemBlock(i.mem.seg, ea, &off, i.opSize)) return false;
  return c.readMem<uint16_t>(i.mem.seg, CpuImpl::truncAddr(ea + i.opSize, i.addrSize), sel);
}

ExecStatus jmp(CpuImpl& c, const Instr& i) {
  const Operand& o = i.op[0];
  if (o.kind == OpKind::kImm) return c.jumpTo(relTarget(c, i));
  if (o.kind == OpKind::kPtr) return c.farJump(static_cast<uint16_t>(i.imm2), i.imm, i);
  if (i.opcode == 0xFF && i.modrmReg == 5) {  // far: JMP m16:xx
    uint16_t sel;
    uint64_t off;
    TTVM_RETURN_ON_FAULT(readFarPointer(c, i, sel, off));
    return c.farJump(sel, off, i);
  }
  uint64_t t = 0;
  switch (i.opSize) {
    case 2: {
      uint16_t v;
      TTVM_RETURN_ON_FAULT(c.readOp<uint16_t>(i, 0, v));
      t = v;
      break;
    }
    case 4: {
      uint32_t v;
      TTVM_RETURN_ON_FAULT(c.readOp<uint32_t>(i, 0, v));
      t = v;
      break;
    }
    default: TTVM_RETURN_ON_FAULT(c.readOp<uint64_t>(i, 0, t)); break;
  }
  return c.jumpTo(t);
}

bool targetOk(CpuImpl& c, uint64_t t) {
  if (c.is64()) {
    if (!CpuImpl::isCanonical(t)) return c.fault(vec::kGP, 0);
  } else if (t > c.state().seg[1].limit) {
    return c.fault(vec::kGP, 0);
  }
  return true;
}

ExecStatus call(CpuImpl& c, const Instr& i) {
  const Operand& o = i.op[0];
  if (o.kind == OpKind::kPtr) return c.farCall(static_cast<uint16_t>(i.imm2), i.imm, i);
  if (i.opcode == 0xFF && i.modrmReg == 3) {  // far: CALL m16:xx
    uint16_t sel;
    uint64_t off;
    TTVM_RETURN_ON_FAULT(readFarPointer(c, i, sel, off));
    return c.farCall(sel, off, i);
  }
  uint64_t t;
  if (o.kind == OpKind::kImm) {
    t = relTarget(c, i);
  } else {
    t = 0;
    switch (i.opSize) {
      case 2: {
        uint16_t v;
        TTVM_RETURN_ON_FAULT(c.readOp<uint16_t>(i, 0, v));
        t = v;
        break;
      }
      case 4: {
        uint32_t v;
        TTVM_RETURN_ON_FAULT(c.readOp<uint32_t>(i, 0, v));
        t = v;
        break;
      }
      default: TTVM_RETURN_ON_FAULT(c.readOp<uint64_t>(i, 0, t)); break;
    }
  }
  TTVM_RETURN_ON_FAULT(targetOk(c, t));
  TTVM_RETURN_ON_FAULT(c.pushSized(i.opSize, c.nextRip(i)));
  c.setRip(t);
  return ExecStatus::kJumped;
}

ExecStatus retf(CpuImpl& c, const Instr& i);

ExecStatus ret(CpuImpl& c, const Instr& i) {
  if (i.opcode == 0xCA || i.opcode == 0xCB) return retf(c, i);
  const uint64_t savedSp = c.gpr(Gpr::kRsp);
  uint64_t t;
  TTVM_RETURN_ON_FAULT(c.popSized(i.opSize, t));
  if (!targetOk(c, t)) {
    c.gpr(Gpr::kRsp) = savedSp;
    return ExecStatus::kException;
  }
  if (i.numOps > 0 && i.op[0].kind == OpKind::kImm) c.setSp(c.gpr(Gpr::kRsp) + (i.imm & 0xFFFF));
  c.setRip(t);
  return ExecStatus::kJumped;
}

ExecStatus retf(CpuImpl& c, const Instr& i) {
  const uint16_t pop = (i.numOps > 0 && i.op[0].kind == OpKind::kImm) ? (i.imm & 0xFFFF) : 0;
  return c.farReturn(i, pop);
}

enum class LoopKind { kLoop, kLoope, kLoopne };

template <LoopKind k>
ExecStatus loop(CpuImpl& c, const Instr& i) {
  const uint64_t count = CpuImpl::truncAddr(c.gpr(Gpr::kRcx) - 1, i.addrSize);
  bool take = count != 0;
  if (k == LoopKind::kLoope) take = take && (c.rflags() & flags::kZF);
  if (k == LoopKind::kLoopne) take = take && !(c.rflags() & flags::kZF);
  if (take) {
    const uint64_t t = relTarget(c, i);
    TTVM_RETURN_ON_FAULT(targetOk(c, t));
    c.setRip(t);
  }
  writeAddrReg(c, Gpr::kRcx, i.addrSize, count);
  return take ? ExecStatus::kJumped : ExecStatus::kNext;
}

ExecStatus jrcxz(CpuImpl& c, const Instr& i) {
  if (readAddrReg(c, Gpr::kRcx, i.addrSize) != 0) return ExecStatus::kNext;
  return c.jumpTo(relTarget(c, i));
}

ExecStatus intN(CpuImpl& c, const Instr& i) {
  if (c.v86() && ((c.rflags() >> 12) & 3) < 3) return c.raiseGp(0);
  return c.raiseSoftware(static_cast<uint8_t>(i.imm), EventKind::kSoftInt);
}

ExecStatus int3(CpuImpl& c, const Instr&) {
  return c.raiseSoftware(vec::kBP, EventKind::kSoftInt);
}

ExecStatus into(CpuImpl& c, const Instr&) {
  if (!(c.rflags() & flags::kOF)) return ExecStatus::kNext;
  return c.raiseSoftware(vec::kOF, EventKind::kSoftInt);
}

ExecStatus int1(CpuImpl& c, const Instr&) {
  return c.raiseSoftware(vec::kDB, EventKind::kIcebp);
}

ExecStatus iret(CpuImpl& c, const Instr& i) {
  return c.iret(i);
}

ExecStatus ud(CpuImpl& c, const Instr&) {
  return c.raiseUd();
}

template <typename T>
struct Bound {
  static ExecStatus run(CpuImpl& c, const Instr& i) {
    using S = std::make_signed_t<T>;
    const uint64_t ea = c.effectiveAddress(i);
    T lo, hi;
    TTVM_RETURN_ON_FAULT(c.readMem<T>(i.mem.seg, ea, lo));
    TTVM_RETURN_ON_FAULT(
        c.readMem<T>(i.mem.seg, CpuImpl::truncAddr(ea + sizeof(T), i.addrSize), hi));
    const S v = static_cast<S>(c.readGpr<T>(i.op[0].reg));
    if (v < static_cast<S>(lo) || v > static_cast<S>(hi)) return c.raise(vec::kBR);
    return ExecStatus::kNext;
  }
};

}  // namespace

void registerControlHandlers(HandlerTable& t) {
  t.set(ZYDIS_MNEMONIC_JO, &jcc<0>);
  t.set(ZYDIS_MNEMONIC_JNO, &jcc<1>);
  t.set(ZYDIS_MNEMONIC_JB, &jcc<2>);
  t.set(ZYDIS_MNEMONIC_JNB, &jcc<3>);
  t.set(ZYDIS_MNEMONIC_JZ, &jcc<4>);
  t.set(ZYDIS_MNEMONIC_JNZ, &jcc<5>);
  t.set(ZYDIS_MNEMONIC_JBE, &jcc<6>);
  t.set(ZYDIS_MNEMONIC_JNBE, &jcc<7>);
  t.set(ZYDIS_MNEMONIC_JS, &jcc<8>);
  t.set(ZYDIS_MNEMONIC_JNS, &jcc<9>);
  t.set(ZYDIS_MNEMONIC_JP, &jcc<10>);
  t.set(ZYDIS_MNEMONIC_JNP, &jcc<11>);
  t.set(ZYDIS_MNEMONIC_JL, &jcc<12>);
  t.set(ZYDIS_MNEMONIC_JNL, &jcc<13>);
  t.set(ZYDIS_MNEMONIC_JLE, &jcc<14>);
  t.set(ZYDIS_MNEMONIC_JNLE, &jcc<15>);
  t.set(ZYDIS_MNEMONIC_JMP, &jmp);
  t.set(ZYDIS_MNEMONIC_CALL, &call);
  t.set(ZYDIS_MNEMONIC_RET, &ret);
  t.set(ZYDIS_MNEMONIC_LOOP, &loop<LoopKind::kLoop>);
  t.set(ZYDIS_MNEMONIC_LOOPE, &loop<LoopKind::kLoope>);
  t.set(ZYDIS_MNEMONIC_LOOPNE, &loop<LoopKind::kLoopne>);
  t.set(ZYDIS_MNEMONIC_JCXZ, &jrcxz);
  t.set(ZYDIS_MNEMONIC_JECXZ, &jrcxz);
  t.set(ZYDIS_MNEMONIC_JRCXZ, &jrcxz);
  t.set(ZYDIS_MNEMONIC_INT, &intN);
  t.set(ZYDIS_MNEMONIC_INT3, &int3);
  t.set(ZYDIS_MNEMONIC_INTO, &into);
  t.set(ZYDIS_MNEMONIC_INT1, &int1);
  t.set(ZYDIS_MNEMONIC_IRET, &iret);
  t.set(ZYDIS_MNEMONIC_IRETD, &iret);
  t.set(ZYDIS_MNEMONIC_IRETQ, &iret);
  t.set(ZYDIS_MNEMONIC_UD0, &ud);
  t.set(ZYDIS_MNEMONIC_UD1, &ud);
  t.set(ZYDIS_MNEMONIC_UD2, &ud);
  t.setSized(ZYDIS_MNEMONIC_BOUND, nullptr, &Bound<uint16_t>::run, &Bound<uint32_t>::run, nullptr);
}

}  // namespace ttvm
