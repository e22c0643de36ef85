// ADD ADC SUB SBB CMP AND OR XOR TEST NEG NOT INC DEC, every operand size.
#include "alu/alu.h"
#include "alu/flags.h"
#include "alu/handler_util.h"

namespace ttvm::alu {
namespace {

// op[0] op= op[1]. kWrites false: CMP/TEST only set flags.
template <class Op, bool kWrites = true>
struct Binary {
  template <class T>
  struct H {
    static ExecStatus run(CpuImpl& cpu, const Instr& i) {
      T a, b;
      if (__builtin_expect(i.op[0].kind == OpKind::kGpr, 1)) {
        // Register destination: the common case, without the operand switch.
        a = cpu.readGpr<T>(i.op[0].reg);
        if (i.op[1].kind == OpKind::kGpr) {
          b = cpu.readGpr<T>(i.op[1].reg);
        } else if (i.op[1].kind == OpKind::kImm) {
          b = static_cast<T>(i.imm);
        } else {
          TTVM_RETURN_ON_FAULT(cpu.readOp<T>(i, 1, b));
        }
        const AluResult<T> r = Op::apply(a, b, cpu.rflags());
        if constexpr (kWrites) cpu.writeGpr<T>(i.op[0].reg, r.value);
        cpu.rflags() = r.rflags;
        return ExecStatus::kNext;
      }
      TTVM_RETURN_ON_FAULT(cpu.readOp<T>(i, 0, a));
      TTVM_RETURN_ON_FAULT(cpu.readOp<T>(i, 1, b));
      const AluResult<T> r = Op::apply(a, b, cpu.rflags());
      if constexpr (kWrites) TTVM_RETURN_ON_FAULT(cpu.writeOp<T>(i, 0, r.value));
      cpu.rflags() = r.rflags;
      return ExecStatus::kNext;
    }
  };
};

struct AddOp {
  template <class T>
  static constexpr AluResult<T> apply(T a, T b, uint64_t f) {
    return add(a, b, f);
  }
};
struct AdcOp {
  template <class T>
  static constexpr AluResult<T> apply(T a, T b, uint64_t f) {
    return adc(a, b, f);
  }
};
struct SubOp {
  template <class T>
  static constexpr AluResult<T> apply(T a, T b, uint64_t f) {
    return sub(a, b, f);
  }
};
struct SbbOp {
  template <class T>
  static constexpr AluResult<T> apply(T a, T b, uint64_t f) {
    return sbb(a, b, f);
  }
};
struct AndOp {
  template <class T>
  static constexpr AluResult<T> apply(T a, T b, uint64_t f) {
    return andOp(a, b, f);
  }
};
struct OrOp {
  template <class T>
  static constexpr AluResult<T> apply(T a, T b, uint64_t f) {
    return orOp(a, b, f);
  }
};
struct XorOp {
  template <class T>
  static constexpr AluResult<T> apply(T a, T b, uint64_t f) {
    return xorOp(a, b, f);
  }
};

// op[0] = f(op[0]).
template <class Op>
struct Unary {
  template <class T>
  struct H {
    static ExecStatus run(CpuImpl& cpu, const Instr& i) {
      if (__builtin_expect(i.op[0].kind == OpKind::kGpr, 1)) {
        const AluResult<T> r = Op::apply(cpu.readGpr<T>(i.op[0].reg), cpu.rflags());
        cpu.writeGpr<T>(i.op[0].reg, r.value);
        cpu.rflags() = r.rflags;
        return ExecStatus::kNext;
      }
      T a;
      TTVM_RETURN_ON_FAULT(cpu.readOp<T>(i, 0, a));
      const AluResult<T> r = Op::apply(a, cpu.rflags());
      TTVM_RETURN_ON_FAULT(cpu.writeOp<T>(i, 0, r.value));
      cpu.rflags() = r.rflags;
      return ExecStatus::kNext;
    }
  };
};

struct NegOp {
  template <class T>
  static constexpr AluResult<T> apply(T a, uint64_t f) {
    return neg(a, f);
  }
};
struct IncOp {
  template <class T>
  static constexpr AluResult<T> apply(T a, uint64_t f) {
    return inc(a, f);
  }
};
struct DecOp {
  template <class T>
  static constexpr AluResult<T> apply(T a, uint64_t f) {
    return dec(a, f);
  }
};
// NOT changes no flag.
struct NotOp {
  template <class T>
  static constexpr AluResult<T> apply(T a, uint64_t f) {
    return {T(~a), f};
  }
};

}  // namespace

void registerArithHandlers(HandlerTable& t) {
  setAllSizes<Binary<AddOp>::H>(t, ZYDIS_MNEMONIC_ADD);
  setAllSizes<Binary<AdcOp>::H>(t, ZYDIS_MNEMONIC_ADC);
  setAllSizes<Binary<SubOp>::H>(t, ZYDIS_MNEMONIC_SUB);
  setAllSizes<Binary<SbbOp>::H>(t, ZYDIS_MNEMONIC_SBB);
  setAllSizes<Binary<SubOp, false>::H>(t, ZYDIS_MNEMONIC_CMP);
  setAllSizes<Binary<AndOp>::H>(t, ZYDIS_MNEMONIC_AND);
  setAllSizes<Binary<OrOp>::H>(t, ZYDIS_MNEMONIC_OR);
  setAllSizes<Binary<XorOp>::H>(t, ZYDIS_MNEMONIC_XOR);
  setAllSizes<Binary<AndOp, false>::H>(t, ZYDIS_MNEMONIC_TEST);
  setAllSizes<Unary<NegOp>::H>(t, ZYDIS_MNEMONIC_NEG);
  setAllSizes<Unary<NotOp>::H>(t, ZYDIS_MNEMONIC_NOT);
  setAllSizes<Unary<IncOp>::H>(t, ZYDIS_MNEMONIC_INC);
  setAllSizes<Unary<DecOp>::H>(t, ZYDIS_MNEMONIC_DEC);
}

}  // namespace ttvm::alu
