// Data movement: MOV (all forms), MOVZX/MOVSX/MOVSXD, XCHG, CMPXCHG,
// CMPXCHG8B/16B, XADD, MOVBE, LEA, CMOVcc, SETcc, CBW..CQO, LAHF/SAHF,
// XLAT, flag operations, SALC, LDS..LSS, NOP forms.
#include "exec/handler_table.h"
#include "instr/basic_flags.h"
#include "instr/handlers.h"

namespace ttvm {

namespace {

bool plainKind(OpKind k) {
  return k == OpKind::kGpr || k == OpKind::kMem || k == OpKind::kImm;
}

ExecStatus movSegment(CpuImpl& c, const Instr& i) {
  if (i.op[0].kind == OpKind::kSeg) {
    const unsigned s = i.op[0].reg;
    if (s == 1) return c.raiseUd();  // MOV CS
    uint16_t sel;
    TTVM_RETURN_ON_FAULT(c.readOp<uint16_t>(i, 1, sel));
    TTVM_RETURN_ON_FAULT(c.loadSegment(static_cast<SegReg>(s), sel));
    if (s == 2) c.state().pending.shadow = InterruptShadow::kMovSs;
    return ExecStatus::kNext;
  }
  const uint16_t sel = c.state().seg[i.op[1].reg].selector;
  if (i.op[0].kind == OpKind::kMem) {
    TTVM_RETURN_ON_FAULT(c.writeMem<uint16_t>(i.mem.seg, c.effectiveAddress(i), sel));
  } else {
    c.writeGprSized(i.op[0].reg, i.op[0].size, sel);  // 32/64-bit: zero-extended
  }
  return ExecStatus::kNext;
}

template <typename T>
struct Mov {
  static ExecStatus run(CpuImpl& c, const Instr& i) {
    if (__builtin_expect(plainKind(i.op[0].kind) && plainKind(i.op[1].kind), 1)) {
      T v;
      TTVM_RETURN_ON_FAULT(c.readOp<T>(i, 1, v));
      TTVM_RETURN_ON_FAULT(c.writeOp<T>(i, 0, v));
      return ExecStatus::kNext;
    }
    if (i.op[0].kind == OpKind::kSeg || i.op[1].kind == OpKind::kSeg) return movSegment(c, i);
    if (i.op[0].kind == OpKind::kCr || i.op[1].kind == OpKind::kCr) return handleMovCr(c, i);
    if (i.op[0].kind == OpKind::kDr || i.op[1].kind == OpKind::kDr) return handleMovDr(c, i);
    return c.unimplemented(i);
  }
};

// MOV specialized by operand form (picked at decode time).
template <typename T>
ExecStatus movRR(CpuImpl& c, const Instr& i) {
  c.writeGpr<T>(i.op[0].reg, c.readGpr<T>(i.op[1].reg));
  return ExecStatus::kNext;
}
template <typename T>
ExecStatus movRI(CpuImpl& c, const Instr& i) {
  c.writeGpr<T>(i.op[0].reg, static_cast<T>(i.imm));
  return ExecStatus::kNext;
}
template <typename T>
ExecStatus movRM(CpuImpl& c, const Instr& i) {
  T v;
  TTVM_RETURN_ON_FAULT(c.readMem<T>(i.mem.seg, c.effectiveAddress(i), v));
  c.writeGpr<T>(i.op[0].reg, v);
  return ExecStatus::kNext;
}
template <typename T>
ExecStatus movMR(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(c.writeMem<T>(i.mem.seg, c.effectiveAddress(i), c.readGpr<T>(i.op[1].reg)));
  return ExecStatus::kNext;
}
template <typename T>
ExecStatus movMI(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(c.writeMem<T>(i.mem.seg, c.effectiveAddress(i), static_cast<T>(i.imm)));
  return ExecStatus::kNext;
}

template <typename T>
Handler pickMovSized(const Instr& i) {
  const OpKind a = i.op[0].kind, b = i.op[1].kind;
  if (a == OpKind::kGpr && b == OpKind::kGpr) return &movRR<T>;
  if (a == OpKind::kGpr && b == OpKind::kImm) return &movRI<T>;
  if (a == OpKind::kGpr && b == OpKind::kMem) return &movRM<T>;
  if (a == OpKind::kMem && b == OpKind::kGpr) return &movMR<T>;
  if (a == OpKind::kMem && b == OpKind::kImm) return &movMI<T>;
  return nullptr;
}

Handler pickMov(const Instr& i) {
  if (i.op[0].size != i.opSize || i.op[1].size != i.opSize) return nullptr;
  switch (i.opSize) {
    case 1: return pickMovSized<uint8_t>(i);
    case 2: return pickMovSized<uint16_t>(i);
    case 4: return pickMovSized<uint32_t>(i);
    case 8: return pickMovSized<uint64_t>(i);
    default: return nullptr;
  }
}

// Reads operand n with its own size (for MOVZX/MOVSX sources), zero-extended.
bool readSource(CpuImpl& c, const Instr& i, int n, uint64_t& v) {
  switch (i.op[n].size) {
    case 1: {
      uint8_t x;
      if (!c.readOp<uint8_t>(i, n, x)) return false;
      v = x;
      return true;
    }
    case 2: {
      uint16_t x;
      if (!c.readOp<uint16_t>(i, n, x)) return false;
      v = x;
      return true;
    }
    case 4: {
      uint32_t x;
      if (!c.readOp<uint32_t>(i, n, x)) return false;
      v = x;
      return true;
    }
    default: return c.readOp<uint64_t>(i, n, v);
  }
}

template <typename T>
struct Movzx {
  static ExecStatus run(CpuImpl& c, const Instr& i) {
    uint64_t v;
    TTVM_RETURN_ON_FAULT(readSource(c, i, 1, v));
    c.writeGpr<T>(i.op[0].reg, static_cast<T>(v));
    return ExecStatus::kNext;
  }
};

template <typename T>
struct Movsx {
  static ExecStatus run(CpuImpl& c, const Instr& i) {
    uint64_t v;
    TTVM_RETURN_ON_FAULT(readSource(c, i, 1, v));
    const unsigned bits = i.op[1].size * 8;
    const int64_t s = bits >= 64 ? static_cast<int64_t>(v)
                                 : static_cast<int64_t>(v << (64 - bits)) >> (64 - bits);
    c.writeGpr<T>(i.op[0].reg, static_cast<T>(s));
    return ExecStatus::kNext;
  }
};

template <typename T>
struct Xchg {
  static ExecStatus run(CpuImpl& c, const Instr& i) {
    T a, b;
    TTVM_RETURN_ON_FAULT(c.readOp<T>(i, 0, a));
    TTVM_RETURN_ON_FAULT(c.readOp<T>(i, 1, b));
    // Memory (if any) first: a fault leaves the registers unchanged.
    if (i.op[1].kind == OpKind::kMem) {
      TTVM_RETURN_ON_FAULT(c.writeOp<T>(i, 1, a));
      TTVM_RETURN_ON_FAULT(c.writeOp<T>(i, 0, b));
    } else {
      TTVM_RETURN_ON_FAULT(c.writeOp<T>(i, 0, b));
      TTVM_RETURN_ON_FAULT(c.writeOp<T>(i, 1, a));
    }
    return ExecStatus::kNext;
  }
};

template <typename T>
struct Cmpxchg {
  static ExecStatus run(CpuImpl& c, const Instr& i) {
    T dest, src;
    TTVM_RETURN_ON_FAULT(c.readOp<T>(i, 0, dest));
    TTVM_RETURN_ON_FAULT(c.readOp<T>(i, 1, src));
    const T acc = c.readGpr<T>(0);
    const uint64_t f = basicflags::sub<T>(acc, dest, static_cast<T>(acc - dest));
    if (acc == dest) {
      TTVM_RETURN_ON_FAULT(c.writeOp<T>(i, 0, src));
    } else {
      if (i.op[0].kind == OpKind::kMem) TTVM_RETURN_ON_FAULT(c.writeOp<T>(i, 0, dest));
      c.writeGpr<T>(0, dest);
    }
    c.setArithFlags(flags::kArith, f);
    return ExecStatus::kNext;
  }
};

ExecStatus cmpxchg8b(CpuImpl& c, const Instr& i) {
  const uint64_t ea = c.effectiveAddress(i);
  auto& s = c.state();
  if (i.opSize == 8 || i.mnemonic == ZYDIS_MNEMONIC_CMPXCHG16B) {
    if (ea & 15) return c.raiseGp(0);
    uint64_t m[2];
    TTVM_RETURN_ON_FAULT(c.readMemBlock(i.mem.seg, ea, m, 16));
    if (m[0] == s.gpr[0] && m[1] == s.gpr[2]) {
      const uint64_t w[2] = {s.gpr[3], s.gpr[1]};
      TTVM_RETURN_ON_FAULT(c.writeMemBlock(i.mem.seg, ea, w, 16));
      c.rflags() |= flags::kZF;
    } else {
      TTVM_RETURN_ON_FAULT(c.writeMemBlock(i.mem.seg, ea, m, 16));
      s.gpr[0] = m[0];
      s.gpr[2] = m[1];
      c.rflags() &= ~flags::kZF;
    }
    return ExecStatus::kNext;
  }
  uint64_t m;
  TTVM_RETURN_ON_FAULT(c.readMem<uint64_t>(i.mem.seg, ea, m));
  const uint64_t edxeax = (s.gpr[2] & 0xFFFFFFFF) << 32 | (s.gpr[0] & 0xFFFFFFFF);
  if (m == edxeax) {
    TTVM_RETURN_ON_FAULT(c.writeMem<uint64_t>(
        i.mem.seg, ea, (s.gpr[1] & 0xFFFFFFFF) << 32 | (s.gpr[3] & 0xFFFFFFFF)));
    c.rflags() |= flags::kZF;
  } else {
    TTVM_RETURN_ON_FAULT(c.writeMem<uint64_t>(i.mem.seg, ea, m));
    c.writeGpr<uint32_t>(0, static_cast<uint32_t>(m));
    c.writeGpr<uint32_t>(2, static_cast<uint32_t>(m >> 32));
    c.rflags() &= ~flags::kZF;
  }
  return ExecStatus::kNext;
}

template <typename T>
struct Xadd {
  static ExecStatus run(CpuImpl& c, const Instr& i) {
    T dest, src;
    TTVM_RETURN_ON_FAULT(c.readOp<T>(i, 0, dest));
    TTVM_RETURN_ON_FAULT(c.readOp<T>(i, 1, src));
    const T sum = static_cast<T>(dest + src);
    TTVM_RETURN_ON_FAULT(c.writeOp<T>(i, 0, sum));
    if (!(i.op[0].kind == OpKind::kGpr && i.op[0].reg == i.op[1].reg))
      c.writeGpr<T>(i.op[1].reg, dest);
    c.setArithFlags(flags::kArith, basicflags::add<T>(dest, src, sum));
    return ExecStatus::kNext;
  }
};

template <typename T>
T byteSwap(T v) {
  if constexpr (sizeof(T) == 8) return __builtin_bswap64(v);
  if constexpr (sizeof(T) == 4) return __builtin_bswap32(v);
  if constexpr (sizeof(T) == 2) return __builtin_bswap16(v);
  return v;
}

template <typename T>
struct Movbe {
  static ExecStatus run(CpuImpl& c, const Instr& i) {
    T v;
    TTVM_RETURN_ON_FAULT(c.readOp<T>(i, 1, v));
    TTVM_RETURN_ON_FAULT(c.writeOp<T>(i, 0, byteSwap<T>(v)));
    return ExecStatus::kNext;
  }
};

template <typename T>
struct Lea {
  static ExecStatus run(CpuImpl& c, const Instr& i) {
    c.writeGpr<T>(i.op[0].reg, static_cast<T>(c.effectiveAddress(i)));
    return ExecStatus::kNext;
  }
};

template <unsigned cc>
struct Cmov {
  template <typename T>
  struct Sized {
    static ExecStatus run(CpuImpl& c, const Instr& i) {
      T v;
      TTVM_RETURN_ON_FAULT(c.readOp<T>(i, 1, v));
      if (c.condition(cc))
        c.writeGpr<T>(i.op[0].reg, v);
      else if constexpr (sizeof(T) == 4)
        c.writeGpr<uint32_t>(i.op[0].reg, c.readGpr<uint32_t>(i.op[0].reg));  // zero-extends
      return ExecStatus::kNext;
    }
  };
};

template <unsigned cc>
ExecStatus setcc(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(c.writeOp<uint8_t>(i, 0, c.condition(cc) ? 1 : 0));
  return ExecStatus::kNext;
}

ExecStatus cbw(CpuImpl& c, const Instr& i) {
  uint64_t& a = c.gpr(Gpr::kRax);
  switch (i.opSize) {
    case 2: c.writeGpr<uint16_t>(0, static_cast<uint16_t>(static_cast<int8_t>(a))); break;
    case 4: c.writeGpr<uint32_t>(0, static_cast<uint32_t>(static_cast<int16_t>(a))); break;
    default: a = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(a))); break;
  }
  return ExecStatus::kNext;
}

ExecStatus cwd(CpuImpl& c, const Instr& i) {
  const uint64_t a = c.gpr(Gpr::kRax);
  switch (i.opSize) {
    case 2: c.writeGpr<uint16_t>(2, (a & 0x8000) ? 0xFFFF : 0); break;
    case 4: c.writeGpr<uint32_t>(2, (a & 0x80000000u) ? 0xFFFFFFFFu : 0); break;
    default: c.writeGpr<uint64_t>(2, (a >> 63) ? ~0ull : 0); break;
  }
  return ExecStatus::kNext;
}

ExecStatus lahf(CpuImpl& c, const Instr&) {
  const uint64_t f = c.rflags();
  c.writeGpr<uint8_t>(regid::kAh, static_cast<uint8_t>((f & 0xD5) | 2));
  return ExecStatus::kNext;
}

ExecStatus sahf(CpuImpl& c, const Instr&) {
  const uint64_t ah = c.readGpr<uint8_t>(regid::kAh);
  c.setArithFlags(flags::kCF | flags::kPF | flags::kAF | flags::kZF | flags::kSF, ah);
  return ExecStatus::kNext;
}

ExecStatus xlat(CpuImpl& c, const Instr& i) {
  const unsigned seg = (i.prefixes & prefix::kSegOverride) ? i.segOverride : 3;
  const uint64_t ea = CpuImpl::truncAddr(c.gpr(Gpr::kRbx) + (c.gpr(Gpr::kRax) & 0xFF), i.addrSize);
  uint8_t v;
  TTVM_RETURN_ON_FAULT(c.readMem<uint8_t>(seg, ea, v));
  c.writeGpr<uint8_t>(0, v);
  return ExecStatus::kNext;
}

template <uint64_t clear, uint64_t set, bool complement>
ExecStatus flagOp(CpuImpl& c, const Instr&) {
  if (complement)
    c.rflags() ^= flags::kCF;
  else
    c.rflags() = (c.rflags() & ~clear) | set;
  return ExecStatus::kNext;
}

// SALC (D6): AL = CF ? FFh : 00h, flags unchanged. Valid in real, V8086 and
// protected mode; Zydis does not decode D6 in 64-bit mode, so the framework
// raises #UD there, as the CPU does.
ExecStatus salc(CpuImpl& c, const Instr&) {
  c.writeGpr<uint8_t>(0, (c.rflags() & flags::kCF) ? 0xFF : 0x00);
  return ExecStatus::kNext;
}

ExecStatus nop(CpuImpl&, const Instr&) {
  return ExecStatus::kNext;
}

// CLFLUSH/CLFLUSHOPT: no caches to flush, but the address is checked like a read.
ExecStatus clflush(CpuImpl& c, const Instr& i) {
  uint64_t lin, phys;
  TTVM_RETURN_ON_FAULT(c.segCheck(i.mem.seg, c.effectiveAddress(i), 1, Access::kRead, lin));
  TTVM_RETURN_ON_FAULT(c.translate(lin, Access::kRead, false, phys));
  return ExecStatus::kNext;
}

template <SegReg kSeg>
ExecStatus loadFarPointer(CpuImpl& c, const Instr& i) {
  const uint64_t ea = c.effectiveAddress(i);
  const unsigned w = i.opSize;
  uint64_t off = 0;
  uint16_t sel;
  TTVM_RETURN_ON_FAULT(c.readMemBlock(i.mem.seg, ea, &off, w));
  TTVM_RETURN_ON_FAULT(c.readMem<uint16_t>(i.mem.seg, CpuImpl::truncAddr(ea + w, i.addrSize), sel));
  TTVM_RETURN_ON_FAULT(c.loadSegment(kSeg, sel));
  c.writeGprSized(i.op[0].reg, w, off);
  return ExecStatus::kNext;
}

}  // namespace

void registerDataHandlers(HandlerTable& t) {
  t.setTemplate<Mov>(ZYDIS_MNEMONIC_MOV);
  t.setPicker(ZYDIS_MNEMONIC_MOV, &pickMov);
  t.setTemplate<Movzx>(ZYDIS_MNEMONIC_MOVZX);
  t.setTemplate<Movsx>(ZYDIS_MNEMONIC_MOVSX);
  t.setTemplate<Movsx>(ZYDIS_MNEMONIC_MOVSXD);
  t.setTemplate<Xchg>(ZYDIS_MNEMONIC_XCHG);
  t.setTemplate<Cmpxchg>(ZYDIS_MNEMONIC_CMPXCHG);
  t.set(ZYDIS_MNEMONIC_CMPXCHG8B, &cmpxchg8b);
  t.set(ZYDIS_MNEMONIC_CMPXCHG16B, &cmpxchg8b);
  t.setTemplate<Xadd>(ZYDIS_MNEMONIC_XADD);
  t.setTemplate<Movbe>(ZYDIS_MNEMONIC_MOVBE);
  t.setTemplate<Lea>(ZYDIS_MNEMONIC_LEA);
#define TTVM_CC(n, cmovName, setName)                       \
  t.setTemplate<Cmov<n>::Sized>(ZYDIS_MNEMONIC_##cmovName); \
  t.set(ZYDIS_MNEMONIC_##setName, &setcc<n>);
  TTVM_CC(0, CMOVO, SETO)
  TTVM_CC(1, CMOVNO, SETNO)
  TTVM_CC(2, CMOVB, SETB)
  TTVM_CC(3, CMOVNB, SETNB)
  TTVM_CC(4, CMOVZ, SETZ)
  TTVM_CC(5, CMOVNZ, SETNZ)
  TTVM_CC(6, CMOVBE, SETBE)
  TTVM_CC(7, CMOVNBE, SETNBE)
  TTVM_CC(8, CMOVS, SETS)
  TTVM_CC(9, CMOVNS, SETNS)
  TTVM_CC(10, CMOVP, SETP)
  TTVM_CC(11, CMOVNP, SETNP)
  TTVM_CC(12, CMOVL, SETL)
  TTVM_CC(13, CMOVNL, SETNL)
  TTVM_CC(14, CMOVLE, SETLE)
  TTVM_CC(15, CMOVNLE, SETNLE)
#undef TTVM_CC
  t.set(ZYDIS_MNEMONIC_CBW, &cbw);
  t.set(ZYDIS_MNEMONIC_CWDE, &cbw);
  t.set(ZYDIS_MNEMONIC_CDQE, &cbw);
  t.set(ZYDIS_MNEMONIC_CWD, &cwd);
  t.set(ZYDIS_MNEMONIC_CDQ, &cwd);
  t.set(ZYDIS_MNEMONIC_CQO, &cwd);
  t.set(ZYDIS_MNEMONIC_LAHF, &lahf);
  t.set(ZYDIS_MNEMONIC_SAHF, &sahf);
  t.set(ZYDIS_MNEMONIC_XLAT, &xlat);
  t.set(ZYDIS_MNEMONIC_CLC, &flagOp<flags::kCF, 0, false>);
  t.set(ZYDIS_MNEMONIC_STC, &flagOp<0, flags::kCF, false>);
  t.set(ZYDIS_MNEMONIC_CMC, &flagOp<0, 0, true>);
  t.set(ZYDIS_MNEMONIC_SALC, &salc);
  t.set(ZYDIS_MNEMONIC_CLD, &flagOp<flags::kDF, 0, false>);
  t.set(ZYDIS_MNEMONIC_STD, &flagOp<0, flags::kDF, false>);
  for (ZydisMnemonic m :
       {ZYDIS_MNEMONIC_NOP, ZYDIS_MNEMONIC_PAUSE, ZYDIS_MNEMONIC_LFENCE, ZYDIS_MNEMONIC_MFENCE,
        ZYDIS_MNEMONIC_SFENCE, ZYDIS_MNEMONIC_PREFETCH, ZYDIS_MNEMONIC_PREFETCHNTA,
        ZYDIS_MNEMONIC_PREFETCHT0, ZYDIS_MNEMONIC_PREFETCHT1, ZYDIS_MNEMONIC_PREFETCHT2,
        ZYDIS_MNEMONIC_PREFETCHW})
    t.set(m, &nop);
  t.set(ZYDIS_MNEMONIC_CLFLUSH, &clflush);
  t.set(ZYDIS_MNEMONIC_CLFLUSHOPT, &clflush);
  t.set(ZYDIS_MNEMONIC_LDS, &loadFarPointer<SegReg::kDs>);
  t.set(ZYDIS_MNEMONIC_LES, &loadFarPointer<SegReg::kEs>);
  t.set(ZYDIS_MNEMONIC_LFS, &loadFarPointer<SegReg::kFs>);
  t.set(ZYDIS_MNEMONIC_LGS, &loadFarPointer<SegReg::kGs>);
  t.set(ZYDIS_MNEMONIC_LSS, &loadFarPointer<SegReg::kSs>);
}

}  // namespace ttvm
