// MUL, IMUL (one-operand: rDX:rAX = rAX * src; two-operand: r = r * src;
// three-operand: r = src * imm) and DIV/IDIV with #DE.
#include "alu/alu.h"
#include "alu/flags.h"
#include "alu/handler_util.h"

namespace ttvm::alu {
namespace {

// Stores the double-width product of the one-operand forms: AX for 8-bit,
// rDX:rAX otherwise (32-bit writes zero-extend both).
template <class T>
void storeWide(CpuImpl& cpu, const MulResult<T>& r) {
  if constexpr (sizeof(T) == 1) {
    cpu.writeGpr<uint16_t>(kRax, uint16_t(r.lo | (r.hi << 8)));
  } else {
    cpu.writeGpr<T>(kRax, r.lo);
    cpu.writeGpr<T>(kRdx, r.hi);
  }
}

template <class T>
struct Mul {
  static ExecStatus run(CpuImpl& cpu, const Instr& i) {
    T src;
    TTVM_RETURN_ON_FAULT(cpu.readOp<T>(i, 0, src));
    const MulResult<T> r = mul(cpu.readGpr<T>(kRax), src, cpu.rflags());
    storeWide(cpu, r);
    cpu.rflags() = r.rflags;
    return ExecStatus::kNext;
  }
};

template <class T>
struct Imul {
  static ExecStatus run(CpuImpl& cpu, const Instr& i) {
    if (i.numOps == 1) {
      T src;
      TTVM_RETURN_ON_FAULT(cpu.readOp<T>(i, 0, src));
      const MulResult<T> r = imul(cpu.readGpr<T>(kRax), src, cpu.rflags());
      storeWide(cpu, r);
      cpu.rflags() = r.rflags;
      return ExecStatus::kNext;
    }
    if constexpr (sizeof(T) == 1) {
      return cpu.raiseUd();  // the two- and three-operand forms have no 8-bit size
    } else {
      // Two-operand: op[0] *= op[1]; three-operand: op[0] = op[1] * op[2] (imm).
      T a, b;
      TTVM_RETURN_ON_FAULT(cpu.readOp<T>(i, 1, b));
      if (i.numOps >= 3) {
        TTVM_RETURN_ON_FAULT(cpu.readOp<T>(i, 2, a));
      } else {
        TTVM_RETURN_ON_FAULT(cpu.readOp<T>(i, 0, a));
      }
      const MulResult<T> r = imul(a, b, cpu.rflags());
      TTVM_RETURN_ON_FAULT(cpu.writeOp<T>(i, 0, r.lo));
      cpu.rflags() = r.rflags;
      return ExecStatus::kNext;
    }
  }
};

// DIV/IDIV: AX / src8 -> AL quotient, AH remainder; rDX:rAX / src -> rAX, rDX.
// RFLAGS is left unchanged (all six flags are undefined; see flags.h).
template <bool kSigned>
struct Divide {
  template <class T>
  struct H {
    static ExecStatus run(CpuImpl& cpu, const Instr& i) {
      T src;
      TTVM_RETURN_ON_FAULT(cpu.readOp<T>(i, 0, src));
      T hi, lo;
      if constexpr (sizeof(T) == 1) {
        const uint16_t ax = cpu.readGpr<uint16_t>(kRax);
        hi = T(ax >> 8);
        lo = T(ax);
      } else {
        hi = cpu.readGpr<T>(kRdx);
        lo = cpu.readGpr<T>(kRax);
      }
      const DivResult<T> r = kSigned ? idiv(hi, lo, src) : div(hi, lo, src);
      if (r.fault) return cpu.raiseDe();
      if constexpr (sizeof(T) == 1) {
        cpu.writeGpr<uint16_t>(kRax, uint16_t(r.quotient | (r.remainder << 8)));
      } else {
        cpu.writeGpr<T>(kRax, r.quotient);
        cpu.writeGpr<T>(kRdx, r.remainder);
      }
      return ExecStatus::kNext;
    }
  };
};

}  // namespace

void registerMulDivHandlers(HandlerTable& t) {
  setAllSizes<Mul>(t, ZYDIS_MNEMONIC_MUL);
  setAllSizes<Imul>(t, ZYDIS_MNEMONIC_IMUL);
  setAllSizes<Divide<false>::H>(t, ZYDIS_MNEMONIC_DIV);
  setAllSizes<Divide<true>::H>(t, ZYDIS_MNEMONIC_IDIV);
}

}  // namespace ttvm::alu
