// Temporary basic ALU handlers (ADD/ADC/SUB/SBB/CMP/AND/OR/XOR/TEST/INC/DEC/
// NEG/NOT) so the framework's own tests can run before the ALU group
// (emulator/src/alu/) lands. alu/ registers after this file and replaces these
// mnemonics; then this file is deleted.
#include "exec/basic_flags.h"
#include "exec/cpu_impl.h"
#include "exec/handler_table.h"

namespace ttvm {

namespace {

enum class Op { kAdd, kAdc, kSub, kSbb, kCmp, kAnd, kOr, kXor, kTest };

template <Op op>
struct Binary {
  template <typename T>
  struct Sized {
    static ExecStatus run(CpuImpl& c, const Instr& i) {
      T a, b;
      TTVM_TRY(c.readOp<T>(i, 0, a));
      TTVM_TRY(c.readOp<T>(i, 1, b));
      const bool cf = c.rflags() & flags::kCF;
      T r;
      uint64_t f;
      switch (op) {
        case Op::kAdd:
          r = static_cast<T>(a + b);
          f = basicflags::add<T>(a, b, r);
          break;
        case Op::kAdc:
          r = static_cast<T>(a + b + cf);
          f = basicflags::add<T>(a, b, r, cf);
          break;
        case Op::kSub:
        case Op::kCmp:
          r = static_cast<T>(a - b);
          f = basicflags::sub<T>(a, b, r);
          break;
        case Op::kSbb:
          r = static_cast<T>(a - b - cf);
          f = basicflags::sub<T>(a, b, r, cf);
          break;
        case Op::kAnd:
        case Op::kTest:
          r = a & b;
          f = basicflags::logic<T>(r);
          break;
        case Op::kOr:
          r = a | b;
          f = basicflags::logic<T>(r);
          break;
        default:
          r = a ^ b;
          f = basicflags::logic<T>(r);
          break;
      }
      if (op != Op::kCmp && op != Op::kTest) TTVM_TRY(c.writeOp<T>(i, 0, r));
      c.setArithFlags(flags::kArith, f);
      return ExecStatus::kNext;
    }
  };
};

enum class UOp { kInc, kDec, kNeg, kNot };

template <UOp op>
struct Unary {
  template <typename T>
  struct Sized {
    static ExecStatus run(CpuImpl& c, const Instr& i) {
      T a;
      TTVM_TRY(c.readOp<T>(i, 0, a));
      T r;
      switch (op) {
        case UOp::kInc:
          r = static_cast<T>(a + 1);
          TTVM_TRY(c.writeOp<T>(i, 0, r));
          c.setArithFlags(flags::kArith & ~flags::kCF, basicflags::add<T>(a, 1, r));
          break;
        case UOp::kDec:
          r = static_cast<T>(a - 1);
          TTVM_TRY(c.writeOp<T>(i, 0, r));
          c.setArithFlags(flags::kArith & ~flags::kCF, basicflags::sub<T>(a, 1, r));
          break;
        case UOp::kNeg:
          r = static_cast<T>(T{0} - a);
          TTVM_TRY(c.writeOp<T>(i, 0, r));
          c.setArithFlags(flags::kArith, basicflags::sub<T>(0, a, r));
          break;
        default:
          r = static_cast<T>(~a);
          TTVM_TRY(c.writeOp<T>(i, 0, r));
          break;
      }
      return ExecStatus::kNext;
    }
  };
};

}  // namespace

void registerAluBasicHandlers(HandlerTable& t) {
  t.setTemplate<Binary<Op::kAdd>::Sized>(ZYDIS_MNEMONIC_ADD);
  t.setTemplate<Binary<Op::kAdc>::Sized>(ZYDIS_MNEMONIC_ADC);
  t.setTemplate<Binary<Op::kSub>::Sized>(ZYDIS_MNEMONIC_SUB);
  t.setTemplate<Binary<Op::kSbb>::Sized>(ZYDIS_MNEMONIC_SBB);
  t.setTemplate<Binary<Op::kCmp>::Sized>(ZYDIS_MNEMONIC_CMP);
  t.setTemplate<Binary<Op::kAnd>::Sized>(ZYDIS_MNEMONIC_AND);
  t.setTemplate<Binary<Op::kOr>::Sized>(ZYDIS_MNEMONIC_OR);
  t.setTemplate<Binary<Op::kXor>::Sized>(ZYDIS_MNEMONIC_XOR);
  t.setTemplate<Binary<Op::kTest>::Sized>(ZYDIS_MNEMONIC_TEST);
  t.setTemplate<Unary<UOp::kInc>::Sized>(ZYDIS_MNEMONIC_INC);
  t.setTemplate<Unary<UOp::kDec>::Sized>(ZYDIS_MNEMONIC_DEC);
  t.setTemplate<Unary<UOp::kNeg>::Sized>(ZYDIS_MNEMONIC_NEG);
  t.setTemplate<Unary<UOp::kNot>::Sized>(ZYDIS_MNEMONIC_NOT);
}

}  // namespace ttvm
