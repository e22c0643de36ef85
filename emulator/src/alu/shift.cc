// SHL/SAL SHR SAR ROL ROR RCL RCR (count 1, CL or imm8) and SHLD/SHRD.
//
// The destination is always written back, even for a masked count of 0:
// hardware does so (a 32-bit register destination is zero-extended to 64
// bits whatever the count); flags.h leaves RFLAGS alone for count 0.
#include "alu/alu.h"
#include "alu/flags.h"
#include "alu/handler_util.h"

namespace ttvm::alu {
namespace {

// The count operand: op[n] (CL or an immediate); D0/D1/D2 /r forms without a
// visible count operand shift by 1.
inline bool readCount(CpuImpl& cpu, const Instr& i, int n, uint8_t& count) {
  if (i.numOps <= n) {
    count = 1;
    return true;
  }
  if (i.op[n].kind == OpKind::kImm) {
    count = static_cast<uint8_t>(i.imm);
    return true;
  }
  return cpu.readOp<uint8_t>(i, n, count);
}

template <class Op>
struct Shift {
  template <class T>
  struct H {
    static ExecStatus run(CpuImpl& cpu, const Instr& i) {
      T a;
      uint8_t count;
      TTVM_RETURN_ON_FAULT(readCount(cpu, i, 1, count));
      if (__builtin_expect(i.op[0].kind == OpKind::kGpr, 1)) {
        const AluResult<T> r = Op::apply(cpu.readGpr<T>(i.op[0].reg), count, cpu.rflags());
        cpu.writeGpr<T>(i.op[0].reg, r.value);
        cpu.rflags() = r.rflags;
        return ExecStatus::kNext;
      }
      TTVM_RETURN_ON_FAULT(cpu.readOp<T>(i, 0, a));
      const AluResult<T> r = Op::apply(a, count, cpu.rflags());
      TTVM_RETURN_ON_FAULT(cpu.writeOp<T>(i, 0, r.value));
      cpu.rflags() = r.rflags;
      return ExecStatus::kNext;
    }
  };
};

#define TTVM_SHIFT_OP(Name, fn)                                       \
  struct Name {                                                       \
    template <class T>                                                \
    static constexpr AluResult<T> apply(T a, uint8_t c, uint64_t f) { \
      return fn(a, c, f);                                             \
    }                                                                 \
  };
TTVM_SHIFT_OP(ShlOp, shl)
TTVM_SHIFT_OP(ShrOp, shr)
TTVM_SHIFT_OP(SarOp, sar)
TTVM_SHIFT_OP(RolOp, rol)
TTVM_SHIFT_OP(RorOp, ror)
TTVM_SHIFT_OP(RclOp, rcl)
TTVM_SHIFT_OP(RcrOp, rcr)
#undef TTVM_SHIFT_OP

// SHLD/SHRD op[0], op[1] (register), op[2] (CL or imm8); no 8-bit form.
template <bool kLeft>
struct DoubleShift {
  template <class T>
  struct H {
    static ExecStatus run(CpuImpl& cpu, const Instr& i) {
      T d, s;
      uint8_t count;
      TTVM_RETURN_ON_FAULT(cpu.readOp<uint8_t>(i, 2, count));
      TTVM_RETURN_ON_FAULT(cpu.readOp<T>(i, 1, s));
      TTVM_RETURN_ON_FAULT(cpu.readOp<T>(i, 0, d));
      const AluResult<T> r =
          kLeft ? shld(d, s, count, cpu.rflags()) : shrd(d, s, count, cpu.rflags());
      TTVM_RETURN_ON_FAULT(cpu.writeOp<T>(i, 0, r.value));
      cpu.rflags() = r.rflags;
      return ExecStatus::kNext;
    }
  };
};

}  // namespace

void registerShiftHandlers(HandlerTable& t) {
  setAllSizes<Shift<ShlOp>::H>(t, ZYDIS_MNEMONIC_SHL);
  setAllSizes<Shift<ShrOp>::H>(t, ZYDIS_MNEMONIC_SHR);
  setAllSizes<Shift<SarOp>::H>(t, ZYDIS_MNEMONIC_SAR);
  setAllSizes<Shift<RolOp>::H>(t, ZYDIS_MNEMONIC_ROL);
  setAllSizes<Shift<RorOp>::H>(t, ZYDIS_MNEMONIC_ROR);
  setAllSizes<Shift<RclOp>::H>(t, ZYDIS_MNEMONIC_RCL);
  setAllSizes<Shift<RcrOp>::H>(t, ZYDIS_MNEMONIC_RCR);
  setWideSizes<DoubleShift<true>::H>(t, ZYDIS_MNEMONIC_SHLD);
  setWideSizes<DoubleShift<false>::H>(t, ZYDIS_MNEMONIC_SHRD);
}

}  // namespace ttvm::alu
