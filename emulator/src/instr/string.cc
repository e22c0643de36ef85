// String instructions: MOVS, CMPS, STOS, LODS, SCAS, INS, OUTS with
// REP/REPE/REPNE. Each iteration is one step: while iterations remain the
// handler returns kRepeat and RIP stays on the instruction, so interrupts and
// single-step traps land between iterations exactly as on hardware.
#include "exec/handler_table.h"
#include "instr/basic_flags.h"
#include "instr/handlers.h"

namespace ttvm {

namespace {

enum class Str { kMovs, kCmps, kStos, kLods, kScas, kIns, kOuts };

unsigned srcSeg(const Instr& i) {
  return (i.prefixes & prefix::kSegOverride) ? i.segOverride : 3;
}

template <Str op, typename T>
ExecStatus stringOp(CpuImpl& c, const Instr& i) {
  const unsigned as = i.addrSize;
  const bool rep = i.hasRep();
  // A REP that runs zero times writes nothing: the SDM's REP pseudocode
  // touches the count and index registers only per iteration. This holds
  // for a 32-bit address size in 64-bit mode too, where Intel hardware
  // clears RCX[63:32] (and MOVS/STOS zero-extend RSI/RDI) anyway while AMD
  // leaves them: ttvm keeps the documented behaviour whatever the host or
  // the model's vendor (CpuStringTable "... ecx=0 keeps upper halves").
  if (rep && readAddrReg(c, Gpr::kRcx, as) == 0) return ExecStatus::kNext;
  const int64_t delta = (c.rflags() & flags::kDF) ? -static_cast<int64_t>(sizeof(T)) : sizeof(T);
  const uint64_t si = readAddrReg(c, Gpr::kRsi, as);
  const uint64_t di = readAddrReg(c, Gpr::kRdi, as);
  bool advSi = false, advDi = false;
  bool stop = false;  // REPE/REPNE termination
  switch (op) {
    case Str::kMovs: {
      T v;
      TTVM_RETURN_ON_FAULT(c.readMem<T>(srcSeg(i), si, v));
      TTVM_RETURN_ON_FAULT(c.writeMem<T>(0, di, v));
      advSi = advDi = true;
      break;
    }
    case Str::kCmps: {
      T a, b;
      TTVM_RETURN_ON_FAULT(c.readMem<T>(srcSeg(i), si, a));
      TTVM_RETURN_ON_FAULT(c.readMem<T>(0, di, b));
      const uint64_t f = basicflags::sub<T>(a, b, static_cast<T>(a - b));
      c.setArithFlags(flags::kArith, f);
      advSi = advDi = true;
      stop = (i.prefixes & prefix::kRep) ? !(f & flags::kZF) : (f & flags::kZF);
      break;
    }
    case Str::kStos:
      TTVM_RETURN_ON_FAULT(c.writeMem<T>(0, di, c.readGpr<T>(0)));
      advDi = true;
      break;
    case Str::kLods: {
      T v;
      TTVM_RETURN_ON_FAULT(c.readMem<T>(srcSeg(i), si, v));
      c.writeGpr<T>(0, v);
      advSi = true;
      break;
    }
    case Str::kScas: {
      T b;
      TTVM_RETURN_ON_FAULT(c.readMem<T>(0, di, b));
      const T a = c.readGpr<T>(0);
      const uint64_t f = basicflags::sub<T>(a, b, static_cast<T>(a - b));
      c.setArithFlags(flags::kArith, f);
      advDi = true;
      stop = (i.prefixes & prefix::kRep) ? !(f & flags::kZF) : (f & flags::kZF);
      break;
    }
    case Str::kIns: {
      const uint16_t port = static_cast<uint16_t>(c.gpr(Gpr::kRdx));
      TTVM_RETURN_ON_FAULT(c.ioPermitted(port, sizeof(T)));
      TTVM_RETURN_ON_FAULT(c.probeWrite(0, di, sizeof(T)));
      const T v = static_cast<T>(c.env().portIn(port, sizeof(T)));
      c.debugIoAccess(port, sizeof(T));
      TTVM_RETURN_ON_FAULT(c.writeMem<T>(0, di, v));
      advDi = true;
      break;
    }
    case Str::kOuts: {
      const uint16_t port = static_cast<uint16_t>(c.gpr(Gpr::kRdx));
      TTVM_RETURN_ON_FAULT(c.ioPermitted(port, sizeof(T)));
      T v;
      TTVM_RETURN_ON_FAULT(c.readMem<T>(srcSeg(i), si, v));
      c.env().portOut(port, sizeof(T), v);
      c.debugIoAccess(port, sizeof(T));
      advSi = true;
      break;
    }
  }
  if (advSi) writeAddrReg(c, Gpr::kRsi, as, si + delta);
  if (advDi) writeAddrReg(c, Gpr::kRdi, as, di + delta);
  if (!rep) return ExecStatus::kNext;
  const uint64_t count = CpuImpl::truncAddr(readAddrReg(c, Gpr::kRcx, as) - 1, as);
  writeAddrReg(c, Gpr::kRcx, as, count);
  if (count == 0 || stop) return ExecStatus::kNext;
  return ExecStatus::kRepeat;
}

}  // namespace

void registerStringHandlers(HandlerTable& t) {
#define TTVM_STR(op, b, w, d, q)                           \
  t.set(ZYDIS_MNEMONIC_##b, &stringOp<Str::op, uint8_t>);  \
  t.set(ZYDIS_MNEMONIC_##w, &stringOp<Str::op, uint16_t>); \
  t.set(ZYDIS_MNEMONIC_##d, &stringOp<Str::op, uint32_t>); \
  if (ZYDIS_MNEMONIC_##q != ZYDIS_MNEMONIC_INVALID)        \
    t.set(ZYDIS_MNEMONIC_##q, &stringOp<Str::op, uint64_t>);
  TTVM_STR(kMovs, MOVSB, MOVSW, MOVSD, MOVSQ)
  TTVM_STR(kCmps, CMPSB, CMPSW, CMPSD, CMPSQ)
  TTVM_STR(kStos, STOSB, STOSW, STOSD, STOSQ)
  TTVM_STR(kLods, LODSB, LODSW, LODSD, LODSQ)
  TTVM_STR(kScas, SCASB, SCASW, SCASD, SCASQ)
  TTVM_STR(kIns, INSB, INSW, INSD, INVALID)
  TTVM_STR(kOuts, OUTSB, OUTSW, OUTSD, INVALID)
#undef TTVM_STR
}

}  // namespace ttvm
