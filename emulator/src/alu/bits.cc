// BT BTS BTR BTC, BSF BSR TZCNT LZCNT POPCNT, BSWAP.
#include <type_traits>

#include "alu/alu.h"
#include "alu/flags.h"
#include "alu/handler_util.h"

namespace ttvm::alu {
namespace {

enum class BitOp { kTest, kSet, kReset, kComplement };

// BT* op[0], op[1]. An immediate bit offset is taken mod the operand size. A
// register offset with a register destination likewise; with a memory
// destination it is a signed bit string index: the operand accessed is the
// T-sized one at ea + (offset >> log2(bits)) * sizeof(T) (SDM "Bit(BitBase,
// BitOffset)"), the address wrapping at the address size.
template <BitOp kOp>
struct BitTest {
  template <class T>
  struct H {
    static ExecStatus run(CpuImpl& cpu, const Instr& i) {
      using S = std::make_signed_t<T>;
      T offset;
      TTVM_RETURN_ON_FAULT(cpu.readOp<T>(i, 1, offset));
      T v;
      AluResult<T> r{};
      if (i.op[0].kind != OpKind::kMem || i.op[1].kind == OpKind::kImm) {
        TTVM_RETURN_ON_FAULT(cpu.readOp<T>(i, 0, v));
        r = apply(v, offset, cpu.rflags());
        if constexpr (kOp != BitOp::kTest) TTVM_RETURN_ON_FAULT(cpu.writeOp<T>(i, 0, r.value));
      } else {
        const int64_t index = int64_t(S(offset)) >> (sizeof(T) == 2 ? 4 : sizeof(T) == 4 ? 5 : 6);
        const uint64_t ea =
            CpuImpl::truncAddr(cpu.effectiveAddress(i) + uint64_t(index) * sizeof(T), i.addrSize);
        TTVM_RETURN_ON_FAULT(cpu.readMem<T>(i.mem.seg, ea, v));
        r = apply(v, offset, cpu.rflags());
        if constexpr (kOp != BitOp::kTest)
          TTVM_RETURN_ON_FAULT(cpu.writeMem<T>(i.mem.seg, ea, r.value));
      }
      cpu.rflags() = r.rflags;
      return ExecStatus::kNext;
    }
    static AluResult<T> apply(T v, T bit, uint64_t f) {
      switch (kOp) {
        case BitOp::kTest: return {v, bt(v, unsigned(bit), f)};
        case BitOp::kSet: return bts(v, unsigned(bit), f);
        case BitOp::kReset: return btr(v, unsigned(bit), f);
        case BitOp::kComplement: return btc(v, unsigned(bit), f);
      }
      return {v, f};
    }
  };
};

// BSF/BSR op[0] = index of op[1]; when op[1] is 0 the destination register
// is not written at all (its upper half is not even zero-extended: measured
// on the host, and what AMD documents).
template <bool kForward>
struct BitScan {
  template <class T>
  struct H {
    static ExecStatus run(CpuImpl& cpu, const Instr& i) {
      T src;
      TTVM_RETURN_ON_FAULT(cpu.readOp<T>(i, 1, src));
      const T dest = cpu.readGpr<T>(i.op[0].reg);
      const AluResult<T> r = kForward ? bsf(dest, src, cpu.rflags()) : bsr(dest, src, cpu.rflags());
      if (src != 0) cpu.writeGpr<T>(i.op[0].reg, r.value);
      cpu.rflags() = r.rflags;
      return ExecStatus::kNext;
    }
  };
};

enum class CountOp { kTz, kLz, kPop };

template <CountOp kOp>
struct Count {
  template <class T>
  struct H {
    static ExecStatus run(CpuImpl& cpu, const Instr& i) {
      T src;
      TTVM_RETURN_ON_FAULT(cpu.readOp<T>(i, 1, src));
      const uint64_t f = cpu.rflags();
      const AluResult<T> r = kOp == CountOp::kTz   ? tzcnt(src, f)
                             : kOp == CountOp::kLz ? lzcnt(src, f)
                                                   : popcnt(src, f);
      cpu.writeGpr<T>(i.op[0].reg, r.value);
      cpu.rflags() = r.rflags;
      return ExecStatus::kNext;
    }
  };
};

// BSWAP r: the 16-bit form writes 0 to the low word (flags.h).
template <class T>
struct Bswap {
  static ExecStatus run(CpuImpl& cpu, const Instr& i) {
    cpu.writeGpr<T>(i.op[0].reg, bswap(cpu.readGpr<T>(i.op[0].reg)));
    return ExecStatus::kNext;
  }
};

}  // namespace

void registerBitHandlers(HandlerTable& t) {
  setWideSizes<BitTest<BitOp::kTest>::H>(t, ZYDIS_MNEMONIC_BT);
  setWideSizes<BitTest<BitOp::kSet>::H>(t, ZYDIS_MNEMONIC_BTS);
  setWideSizes<BitTest<BitOp::kReset>::H>(t, ZYDIS_MNEMONIC_BTR);
  setWideSizes<BitTest<BitOp::kComplement>::H>(t, ZYDIS_MNEMONIC_BTC);
  setWideSizes<BitScan<true>::H>(t, ZYDIS_MNEMONIC_BSF);
  setWideSizes<BitScan<false>::H>(t, ZYDIS_MNEMONIC_BSR);
  // TZCNT exists only where the CPU model advertises BMI1; elsewhere F3 0F BC
  // is REP BSF, which the decoder must give as BSF (see alu-notes.md).
  setWideSizes<Count<CountOp::kTz>::H>(t, ZYDIS_MNEMONIC_TZCNT);
  setWideSizes<Count<CountOp::kLz>::H>(t, ZYDIS_MNEMONIC_LZCNT);
  setWideSizes<Count<CountOp::kPop>::H>(t, ZYDIS_MNEMONIC_POPCNT);
  setWideSizes<Bswap>(t, ZYDIS_MNEMONIC_BSWAP);
}

}  // namespace ttvm::alu
