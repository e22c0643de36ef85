// BlockJit: see exec/block_jit.h for the design and what stays exact.
#include "exec/block_jit.h"

#include "exec/block_cache.h"
#include "exec/cpu_impl.h"
#include "ttvm/base/assert.h"

#if defined(__x86_64__)
#define XBYAK_NO_EXCEPTION
#include <sys/mman.h>
#include <xbyak/xbyak.h>

#include <algorithm>
#include <cstddef>
#include <vector>
#endif

namespace ttvm {

#if defined(__x86_64__)

namespace {

using Xbyak::Label;
using Xbyak::Reg32;
using Xbyak::Reg64;
using Xbyak::RegExp;

constexpr uint32_t kArithMask = 0x8D5;  // OF SF ZF AF PF CF
constexpr uint32_t kNoAfMask = 0x8C5;   // the same without AF (the reference writes AF := 0)

// Offsets of CpuState's fields, taken from an object (CpuState need not be
// standard-layout for offsetof).
struct StateLayout {
  int gpr, rip, rflags, segBase[kNumSegRegs];
  StateLayout() {
    const CpuState s{};
    const auto at = [&](const void* p) {
      return static_cast<int>(static_cast<const char*>(p) - reinterpret_cast<const char*>(&s));
    };
    gpr = at(&s.gpr[0]);
    rip = at(&s.rip);
    rflags = at(&s.rflags);
    for (int k = 0; k < kNumSegRegs; ++k) segBase[k] = at(&s.seg[k].base);
  }
};

static_assert(sizeof(TlbEntry) == 32, "the probe scales the TLB index by 32");
static_assert(sizeof(JitCacheEntry) == 32, "the chain scales the cache index by 32");
static_assert(offsetof(TlbEntry, tag) == 0 && offsetof(TlbEntry, host) == 8 &&
              offsetof(TlbEntry, allowed) == 24);

// Where the guest's arithmetic flags are while code is emitted. Liveness
// guarantees that at an exit or a reader at least one holds them.
struct FlagPlace {
  bool host = false;    // in the host flags (since the last writer, nothing clobbered them)
  bool saved = false;   // in r15 (PUSHFQ'd, or RFLAGS loaded at entry)
  bool afZero = false;  // r15's AF is not the guest's: the guest's is 0
};

bool fitsInt32(int64_t v) {
  return v == static_cast<int32_t>(v);
}

bool fastJitKind(FastKind k) {
  return k != FastKind::kGeneric;
}

// Whether op (the next at `next`) has host code here (`flat32`: in 32-bit
// protected or compatibility mode under flat segments, exec/block_jit.h).
bool compilable(const BlockOp& op, uint64_t next, bool flat32) {
  const Instr& i = op.instr;
  if (!fastJitKind(op.kind)) return false;
  bool usesMem = false;
  switch (op.kind) {
    case FastKind::kJcc:
    case FastKind::kJmpRel:
      // 32-bit: the target wraps and the CS limit is 4 GiB.
      return flat32 ? i.opSize == 4 : CpuImpl::isCanonical(next + i.imm);
    case FastKind::kCallRel: return !flat32 && CpuImpl::isCanonical(next + i.imm);
    case FastKind::kRet:
    case FastKind::kPushR:
    case FastKind::kPopR: return !flat32;
    case FastKind::kCall32:
    case FastKind::kRet32:
    case FastKind::kPush32:
    case FastKind::kPop32: return flat32 && i.opSize == 4;
    case FastKind::kJmpR: return i.opSize == (flat32 ? 4 : 8);
    case FastKind::kSetccR:
    case FastKind::kNop: return true;
    case FastKind::kShiftRI:
    case FastKind::kRotRI:
      if ((i.imm & (i.opSize == 8 ? 63 : 31)) == 0) return false;
      break;
    case FastKind::kImulRRI:
      if (!fitsInt32(static_cast<int64_t>(i.imm))) return false;
      break;
    case FastKind::kMovRM:
    case FastKind::kMovMR:
    case FastKind::kMovzxRM8:
    case FastKind::kMovzxRM16:
    case FastKind::kLea:
    case FastKind::kAluRM:
    case FastKind::kAluMR: usesMem = true; break;
    case FastKind::kAluMI:
      if (i.opSize == 8 && !fitsInt32(static_cast<int64_t>(i.imm))) return false;
      usesMem = true;
      break;
    case FastKind::kStoreR8:
    case FastKind::kStoreImm:
    case FastKind::kCmpTestMI:
      if (i.opSize == 8 && !fitsInt32(static_cast<int64_t>(i.imm))) return false;
      if (i.opSize != 1 && i.opSize != 4 && i.opSize != 8) return false;
      usesMem = true;
      break;
    default: break;
  }
  if (!usesMem && i.opSize != 4 && i.opSize != 8) return false;
  if (usesMem) {
    if (flat32) {
      // DS, ES and SS only (the flat ones); 32-bit addresses.
      if (i.addrSize != 4 || (i.mem.seg != 0 && i.mem.seg != 2 && i.mem.seg != 3)) return false;
    } else if (i.addrSize != 8 && i.addrSize != 4) {
      return false;
    }
    if (i.mem.base == regid::kRip) {
      if (i.mem.index != regid::kNone) return false;
    } else {
      if (i.mem.base != regid::kNone && i.mem.base >= 16) return false;
      if (!fitsInt32(i.mem.disp)) return false;
    }
    if (i.mem.index != regid::kNone && i.mem.index >= 16) return false;
    if (i.mem.scale != 1 && i.mem.scale != 2 && i.mem.scale != 4 && i.mem.scale != 8) return false;
  }
  return true;
}

// Ops that read the flags on entry, or may leave the code before they run
// (an exit needs the flags in RFLAGS).
bool readsFlags(const BlockOp& op) {
  switch (op.kind) {
    case FastKind::kNop:
    case FastKind::kMovRR:
    case FastKind::kMovRI:
    case FastKind::kLea:
    case FastKind::kAluRR:
    case FastKind::kAluRI:
    case FastKind::kShiftRI:
    case FastKind::kMovzxRR:
    case FastKind::kUnaryR:
    case FastKind::kImulRR:
    case FastKind::kImulRRI:
    case FastKind::kMulR: return false;
    default: return true;
  }
}
bool writesAllFlags(const BlockOp& op) {
  switch (op.kind) {
    case FastKind::kAluRR:
    case FastKind::kAluRI:
    case FastKind::kAluRM:
    case FastKind::kShiftRI:
    case FastKind::kImulRR:
    case FastKind::kImulRRI:
    case FastKind::kMulR:
    case FastKind::kCmpTestMI:
    case FastKind::kAluMR:
    case FastKind::kAluMI: return true;
    case FastKind::kUnaryR: return op.sub == 0;  // NEG
    default: return false;
  }
}

class Emitter : public Xbyak::CodeGenerator {
 public:
  Emitter(size_t room, void* at, const StateLayout& lay)
      : Xbyak::CodeGenerator(room, at), lay_(lay) {
    setDefaultJmpNEAR(true);
  }

  // Host code for ops[0, m): see BlockJit::compile.
  void block(const BlockOp* ops, unsigned m, unsigned n, uint64_t rip, bool user, bool flat32,
             void* cookie) {
    user_ = user;
    flat32_ = flat32;
    cookie_ = cookie;
    // Which ops' flags something after them reads (shifts fix OF only then).
    std::vector<bool> liveOut(m);
    bool live = true;  // the exit after the last op reads them
    for (unsigned k = m; k-- > 0;) {
      liveOut[k] = live;
      if (readsFlags(ops[k]))
        live = true;
      else if (writesAllFlags(ops[k]))
        live = false;
    }

    push(rbx);
    push(rbp);
    push(r12);
    push(r13);
    push(r14);
    push(r15);
    mov(rbp, rdi);
    mov(rbx, qword[rbp + static_cast<int>(offsetof(JitContext, s))]);
    mov(r13, qword[rbp + static_cast<int>(offsetof(JitContext, tlb))]);
    mov(r12, qword[rbp + static_cast<int>(offsetof(JitContext, budget))]);
    xor_(r14d, r14d);
    mov(r15, qword[rbx + lay_.rflags]);
    Label head;
    L(head);
    body_ = getCurr();
    FlagPlace f{false, true, false};
    uint64_t at = rip;
    bool ended = false;
    for (unsigned k = 0; k < m && !ended; ++k) {
      const BlockOp& op = ops[k];
      const Instr& i = op.instr;
      const uint64_t next = ipWrap(at + i.length);
      ended = one(op, k, at, next, rip, liveOut[k], f);
      at = next;
    }
    if (!ended) {
      // Fell off the compiled prefix: the rest (if any) is interpreted.
      Label& l = newLabel();
      jmp(l);
      exitTo(l, m, m < n, at, f);
    }
    emitBacks(n, rip, head);
    L(epilogue_);
    pop(r15);
    pop(r14);
    pop(r13);
    pop(r12);
    pop(rbp);
    pop(rbx);
    ret();
    for (size_t k = 0; k < exits_.size(); ++k) emitExit(exits_[k]);
  }

 private:
  struct Exit {
    Label* label;
    unsigned retired;  // ops of this pass retired
    bool resume;       // interpreted ops go on at op `retired`
    bool ripInRsi;
    uint64_t rip;
    FlagPlace f;
  };

  // EIP and 32-bit jump targets wrap at 4 GiB.
  uint64_t ipWrap(uint64_t v) const { return flat32_ ? (v & 0xFFFFFFFFull) : v; }

  Xbyak::Address g64(unsigned r) { return qword[rbx + lay_.gpr + 8 * static_cast<int>(r)]; }
  Xbyak::Address g32(unsigned r) { return dword[rbx + lay_.gpr + 8 * static_cast<int>(r)]; }
  // A byte register: 0..15 (the low byte) or AH..BH (the second byte).
  Xbyak::Address g8(unsigned r) {
    if (r >= regid::kAh) return byte[rbx + lay_.gpr + 8 * static_cast<int>(r - regid::kAh) + 1];
    return byte[rbx + lay_.gpr + 8 * static_cast<int>(r)];
  }

  // Arranges an exit at `l` (jumped to from the body).
  void exitTo(Label& l, unsigned retired, bool resume, uint64_t ripValue, const FlagPlace& f,
              bool ripInRsi = false) {
    exits_.push_back(Exit{&l, retired, resume, ripInRsi, ripValue, f});
  }
  Label& newLabel() {
    labels_.emplace_back(std::make_unique<Label>());
    return *labels_.back();
  }

  void emitExit(const Exit& e) {
    L(*e.label);
    FlagPlace f = e.f;
    if (f.host && !f.saved) {
      pushfq();
      pop(r15);
      f.saved = true;
    }
    TTVM_ASSERT(f.saved, "jit exit with the flags nowhere");
    if (!e.resume) {
      // Straight on into the target's code (exec/block_jit.h): it starts
      // with the flags in r15, AF included.
      if (f.afZero) {
        and_(r15d, ~0x10u);
        f.afZero = false;
      }
      if (e.ripInRsi)
        mov(rax, rsi);
      else
        mov(rax, e.rip);
      Label no;
      mov(rcx, qword[rbp + static_cast<int>(offsetof(JitContext, hint))]);
      mov(ecx, dword[rcx]);
      and_(ecx, dword[rbp + static_cast<int>(offsetof(JitContext, hintMask))]);
      jnz(no);
      mov(rcx, rax);
      shr(rcx, 10);
      xor_(rcx, rax);
      and_(ecx, (1u << kJitCacheBits) - 1);
      shl(ecx, 5);
      add(rcx, qword[rbp + static_cast<int>(offsetof(JitContext, cache))]);
      cmp(rax, qword[rcx + static_cast<int>(offsetof(JitCacheEntry, rip))]);
      jne(no);
      mov(rdx, qword[rcx + static_cast<int>(offsetof(JitCacheEntry, epoch))]);
      cmp(rdx, qword[rbp + static_cast<int>(offsetof(JitContext, epoch))]);
      jne(no);
      lea(rdx, ptr[r14 + static_cast<int>(e.retired)]);
      add(rdx, qword[rcx + static_cast<int>(offsetof(JitCacheEntry, ops))]);
      cmp(rdx, r12);
      ja(no);
      add(r14, static_cast<int>(e.retired));
      jmp(qword[rcx + static_cast<int>(offsetof(JitCacheEntry, body))]);
      L(no);
    }
    mov(rax, qword[rbx + lay_.rflags]);
    and_(rax, static_cast<int32_t>(~kArithMask));
    mov(ecx, r15d);
    and_(ecx, f.afZero ? kNoAfMask : kArithMask);
    or_(rax, rcx);
    mov(qword[rbx + lay_.rflags], rax);
    if (e.ripInRsi) {
      mov(qword[rbx + lay_.rip], rsi);
    } else {
      mov(rax, e.rip);
      mov(qword[rbx + lay_.rip], rax);
    }
    lea(rax, ptr[r14 + static_cast<int>(e.retired)]);
    if (e.resume) {
      mov(rcx, reinterpret_cast<uint64_t>(cookie_));
      mov(qword[rbp + static_cast<int>(offsetof(JitContext, resumeBlock))], rcx);
      mov(rcx, kJitResume | (uint64_t{e.retired} << 32));
      or_(rax, rcx);
    }
    jmp(epilogue_);
  }

  // Before code that clobbers the host flags.
  void saveFlags(FlagPlace& f) {
    if (f.host && !f.saved) {
      pushfq();
      pop(r15);
      f.saved = true;
    }
    f.host = false;
  }
  // After an op that writes all arithmetic flags in the host flags.
  static void wroteFlags(FlagPlace& f, bool afZero) {
    f.host = true;
    f.saved = false;
    f.afZero = afZero;
  }

  // rax = the linear address of i.mem (64-bit mode: FS/GS bases only).
  void address(const Instr& i, uint64_t next, bool addBase) {
    const MemRef& m = i.mem;
    if (m.base == regid::kRip) {
      uint64_t a = next + static_cast<uint64_t>(m.disp);
      if (i.addrSize == 4) a &= 0xFFFFFFFFull;
      mov(rax, a);
    } else {
      const int32_t disp = static_cast<int32_t>(m.disp);
      const bool hasBase = m.base != regid::kNone, hasIndex = m.index != regid::kNone;
      if (hasBase) mov(rax, g64(m.base));
      if (hasIndex) mov(rcx, g64(m.index));
      if (hasBase && hasIndex)
        lea(rax, ptr[rax + rcx * m.scale + disp]);
      else if (hasBase && disp != 0)
        lea(rax, ptr[rax + disp]);
      else if (hasIndex)
        lea(rax, ptr[rcx * m.scale + disp]);
      else if (!hasBase)
        mov(rax, static_cast<uint64_t>(static_cast<int64_t>(disp)));
      if (i.addrSize == 4) mov(eax, eax);
    }
    if (addBase && m.seg >= 4) {
      mov(rcx, qword[rbx + lay_.segBase[m.seg]]);
      lea(rax, ptr[rax + rcx]);
    }
  }

  // rax = the stack pointer less one slot: RSP - 8, or (ESP - 4) mod 4 GiB.
  void stackPointerMinus(bool w) {
    mov(rax, g64(4));
    if (w)
      lea(rax, ptr[rax - 8]);
    else
      lea(eax, ptr[rax - 4]);
  }

  // rsi = the stack slot at RSP (8 bytes) or ESP (4), rax = the stack
  // pointer past it (ESP wraps at 4 GiB); leaves before op k on a miss.
  void popSlot(bool w, unsigned k, uint64_t at, FlagPlace& f) {
    w ? mov(rax, g64(4)) : mov(eax, g32(4));
    access(k, at, w ? 8 : 4, false, f);
    if (w) {
      mov(rsi, qword[rcx + rdx]);
      lea(rax, ptr[rax + 8]);
    } else {
      mov(esi, dword[rcx + rdx]);
      lea(eax, ptr[rax + 4]);
    }
  }

  // The TLB probe for `size` bytes at linear rax: on a hit, the host address
  // is rcx + rdx (rax kept); else jumps to `slow`. Clobbers the host flags.
  // `write`: a store; `rmw`: a load and a store (both permission bits: a
  // page may be watched for one kind of access only).
  void probe(unsigned size, bool write, Label& slow, bool rmw = false) {
    const uint8_t bit = tlbperm::bit(write ? Access::kWrite : Access::kRead, user_);
    mov(rdx, rax);
    shr(rdx, 12);
    mov(ecx, edx);
    and_(ecx, 1023);
    shl(ecx, 5);
    cmp(rdx, qword[r13 + rcx]);
    jne(slow);
    if (rmw) {
      const uint8_t both = bit | tlbperm::bit(Access::kRead, user_);
      movzx(edx, byte[r13 + rcx + 24]);
      not_(edx);
      test(edx, both);
      jnz(slow);
    } else {
      test(byte[r13 + rcx + 24], bit);
      jz(slow);
    }
    mov(edx, eax);
    and_(edx, 0xFFF);
    cmp(edx, 4096 - size);
    ja(slow);
    mov(rcx, qword[r13 + rcx + 8]);
  }

  // A memory access of op k: flags saved, probe, slow exit before the op.
  void access(unsigned k, uint64_t at, unsigned size, bool write, FlagPlace& f, bool rmw = false) {
    saveFlags(f);
    Label& slow = newLabel();
    exitTo(slow, k, true, at, f);
    probe(size, write, slow, rmw);
  }

  // The host ALU op `a` on d, s; true for a logic op (AF: the reference's 0).
  bool aluHost(AluOp a, const Xbyak::Reg& d, const Xbyak::Reg& s) {
    switch (a) {
      case AluOp::kAdd: add(d, s); return false;
      case AluOp::kSub: sub(d, s); return false;
      case AluOp::kCmp: cmp(d, s); return false;
      case AluOp::kAnd: and_(d, s); return true;
      case AluOp::kOr: or_(d, s); return true;
      case AluOp::kXor: xor_(d, s); return true;
      case AluOp::kTest: test(d, s); return true;
    }
    return true;
  }

  void branchCc(unsigned cc, Label& l) {
    switch (cc) {
      case 0: jo(l); break;
      case 1: jno(l); break;
      case 2: jb(l); break;
      case 3: jnb(l); break;
      case 4: jz(l); break;
      case 5: jnz(l); break;
      case 6: jbe(l); break;
      case 7: jnbe(l); break;
      case 8: js(l); break;
      case 9: jns(l); break;
      case 10: jp(l); break;
      case 11: jnp(l); break;
      case 12: jl(l); break;
      case 13: jnl(l); break;
      case 14: jle(l); break;
      default: jnle(l); break;
    }
  }
  // Jumps to `l` if condition cc holds on the flags saved in r15 (scratch:
  // r8, r9 only; the ops keep values in rax, rcx, rdx and rsi across it).
  void branchSaved(unsigned cc, Label& l) {
    const bool neg = cc & 1;
    switch (cc >> 1) {
      case 0: bt(r15, 11); break;  // O
      case 1: bt(r15, 0); break;   // B
      case 2: bt(r15, 6); break;   // Z
      case 3:                      // BE: CF | ZF
        test(r15d, 0x41);
        neg ? jz(l) : jnz(l);
        return;
      case 4: bt(r15, 7); break;  // S
      case 5: bt(r15, 2); break;  // P
      case 6:                     // L: SF != OF
        mov(r8d, r15d);
        shr(r8d, 4);
        xor_(r8d, r15d);
        bt(r8d, 7);
        break;
      default:  // LE: ZF | SF != OF
        mov(r8d, r15d);
        shr(r8d, 4);
        xor_(r8d, r15d);
        and_(r8d, 0x80);
        mov(r9d, r15d);
        and_(r9d, 0x40);
        or_(r8d, r9d);
        neg ? jz(l) : jnz(l);
        return;
    }
    neg ? jnc(l) : jc(l);
  }

  // Leaves before op k (the interpreted op raises its #GP) unless the jump
  // target in rsi is canonical. Clobbers rcx and the host flags (saved).
  void canonicalOrLeave(unsigned k, uint64_t at, const FlagPlace& f) {
    TTVM_ASSERT(!f.host || f.saved, "jit: flags not saved before a canonical check");
    mov(rcx, rsi);
    shl(rcx, 16);
    sar(rcx, 16);
    cmp(rcx, rsi);
    Label& slow = newLabel();
    exitTo(slow, k, true, at, f);
    jne(slow);
  }
  // Leaves after op k retired, with RIP = rsi.
  void leaveToRsi(unsigned k, const FlagPlace& f) {
    Label& out = newLabel();
    jmp(out);
    exitTo(out, k + 1, false, 0, f, true);
  }

  // A transfer to the constant `target` after op k retired: a loop back to
  // the head while the budget allows a whole pass, else an exit.
  void transfer(Label& taken, unsigned k, uint64_t target, uint64_t blockRip, const FlagPlace& f) {
    if (target != blockRip)
      exitTo(taken, k + 1, false, target, f);
    else
      backs_.push_back(Back{&taken, k, f});
  }

  // Emits op k; true if it ends the compiled code (an unconditional transfer).
  bool one(const BlockOp& op, unsigned k, uint64_t at, uint64_t next, uint64_t blockRip,
           bool liveOut, FlagPlace& f) {
    const Instr& i = op.instr;
    const bool q = i.opSize == 8;
    switch (op.kind) {
      case FastKind::kMovRR:
        if (q) {
          mov(rax, g64(op.b));
        } else {
          mov(eax, g32(op.b));
        }
        mov(g64(op.a), rax);
        return false;
      case FastKind::kMovRI:
        if (q)
          mov(rax, i.imm);
        else
          mov(eax, static_cast<uint32_t>(i.imm));
        mov(g64(op.a), rax);
        return false;
      case FastKind::kLea:
        address(i, next, false);
        if (!q) mov(eax, eax);
        mov(g64(op.a), rax);
        return false;
      case FastKind::kMovRM:
      case FastKind::kMovzxRM8: {
        const unsigned size = op.kind == FastKind::kMovzxRM8 ? 1 : i.opSize;
        address(i, next, true);
        access(k, at, size, false, f);
        if (size == 1)
          movzx(eax, byte[rcx + rdx]);
        else if (size == 4)
          mov(eax, dword[rcx + rdx]);
        else
          mov(rax, qword[rcx + rdx]);
        mov(g64(op.a), rax);
        return false;
      }
      case FastKind::kMovMR:
        address(i, next, true);
        access(k, at, i.opSize, true, f);
        if (q) {
          mov(rsi, g64(op.b));
          mov(qword[rcx + rdx], rsi);
        } else {
          mov(esi, g32(op.b));
          mov(dword[rcx + rdx], esi);
        }
        return false;
      case FastKind::kAluRR:
      case FastKind::kAluRI:
      case FastKind::kAluRM: {
        const AluOp a = static_cast<AluOp>(op.sub);
        const Reg64 src64 = rsi;
        if (op.kind == FastKind::kAluRM) {
          address(i, next, true);
          access(k, at, i.opSize, false, f);
          if (q)
            mov(rsi, qword[rcx + rdx]);
          else
            mov(esi, dword[rcx + rdx]);
        } else if (op.kind == FastKind::kAluRR) {
          if (q)
            mov(rsi, g64(op.b));
          else
            mov(esi, g32(op.b));
        } else if (q) {
          mov(rsi, i.imm);
        } else {
          mov(esi, static_cast<uint32_t>(i.imm));
        }
        if (q)
          mov(rax, g64(op.a));
        else
          mov(eax, g32(op.a));
        const Xbyak::Reg& d = q ? static_cast<const Xbyak::Reg&>(rax) : eax;
        const Xbyak::Reg& s = q ? static_cast<const Xbyak::Reg&>(src64) : esi;
        wroteFlags(f, aluHost(a, d, s));
        if (a != AluOp::kCmp && a != AluOp::kTest) mov(g64(op.a), rax);
        return false;
      }
      case FastKind::kAluMR:
      case FastKind::kAluMI: {
        // Load, operate, store back (the reference's read then write: both
        // permissions probed, so a fault or a watch of either kind leaves
        // before the op).
        const AluOp a = static_cast<AluOp>(op.sub);
        const bool writes = a != AluOp::kCmp && a != AluOp::kTest;
        address(i, next, true);
        access(k, at, i.opSize, writes, f, writes);
        if (op.kind == FastKind::kAluMR)
          q ? mov(rsi, g64(op.b)) : mov(esi, g32(op.b));
        else
          q ? mov(rsi, i.imm) : mov(esi, static_cast<uint32_t>(i.imm));
        q ? mov(rax, qword[rcx + rdx]) : mov(eax, dword[rcx + rdx]);
        wroteFlags(f, q ? aluHost(a, rax, rsi) : aluHost(a, eax, esi));
        if (writes) q ? mov(qword[rcx + rdx], rax) : mov(dword[rcx + rdx], eax);
        return false;
      }
      case FastKind::kIncDecR:
        if (!f.host) {
          TTVM_ASSERT(f.saved, "jit INC/DEC with CF nowhere");
          bt(r15, 0);  // host CF = guest CF, which INC/DEC keep
        }
        if (q) {
          mov(rax, g64(op.a));
          op.sub == 0 ? inc(rax) : dec(rax);
        } else {
          mov(eax, g32(op.a));
          op.sub == 0 ? inc(eax) : dec(eax);
        }
        mov(g64(op.a), rax);
        wroteFlags(f, false);
        return false;
      case FastKind::kShiftRI: {
        const uint8_t c = static_cast<uint8_t>(i.imm & (q ? 63 : 31));
        const unsigned bits = q ? 64 : 32;
        if (q)
          mov(rax, g64(op.a));
        else
          mov(eax, g32(op.a));
        const Xbyak::Reg& d = q ? static_cast<const Xbyak::Reg&>(rax) : eax;
        if (op.sub == 0)
          shl(d, c);
        else if (op.sub == 1)
          shr(d, c);
        else
          sar(d, c);
        mov(g64(op.a), rax);
        wroteFlags(f, true);
        if (liveOut && c > 1) {
          // The reference's OF for counts above 1: SHL msb(r) ^ CF, SHR
          // bit (n-2) of r, SAR 0.
          saveFlags(f);
          if (op.sub == 0) {
            mov(ecx, r15d);
            shr(ecx, 7);
            xor_(ecx, r15d);
            and_(ecx, 1);
            shl(ecx, 11);
          } else if (op.sub == 1) {
            mov(rcx, rax);
            shr(rcx, bits - 2);
            and_(ecx, 1);
            shl(ecx, 11);
          } else {
            xor_(ecx, ecx);
          }
          and_(r15d, ~0x800u);
          or_(r15d, ecx);
        }
        return false;
      }
      case FastKind::kJcc: {
        const uint64_t target = ipWrap(next + i.imm);
        Label& taken = newLabel();
        if (f.host) {
          branchCc(op.a, taken);
        } else {
          TTVM_ASSERT(f.saved, "jit Jcc with the flags nowhere");
          branchSaved(op.a, taken);
          f.host = false;
        }
        transfer(taken, k, target, blockRip, f);
        return false;
      }
      case FastKind::kJmpRel: {
        Label& taken = newLabel();
        jmp(taken);
        transfer(taken, k, ipWrap(next + i.imm), blockRip, f);
        return true;
      }
      // The stack forms: RSP (8 bytes), or ESP (4 bytes; the new ESP and the
      // address wrap at 4 GiB, as the reference's truncAddr and setSp). A
      // 32-bit return address needs no check: the CS limit is 4 GiB.
      case FastKind::kCallRel:
      case FastKind::kCall32: {
        const bool w = op.kind == FastKind::kCallRel;
        stackPointerMinus(w);
        access(k, at, w ? 8 : 4, true, f);
        if (w) {
          mov(rsi, next);
          mov(qword[rcx + rdx], rsi);
        } else {
          mov(dword[rcx + rdx], static_cast<uint32_t>(next));
        }
        mov(g64(4), rax);
        Label& taken = newLabel();
        jmp(taken);
        transfer(taken, k, ipWrap(next + i.imm), blockRip, f);
        return true;
      }
      case FastKind::kRet:
      case FastKind::kRet32: {
        const bool w = op.kind == FastKind::kRet;
        popSlot(w, k, at, f);
        if (w) canonicalOrLeave(k, at, f);
        mov(g64(4), rax);
        leaveToRsi(k, f);
        return true;
      }
      case FastKind::kPushR:
      case FastKind::kPush32: {
        const bool w = op.kind == FastKind::kPushR;
        mov(rsi, g64(op.a));  // before RSP moves (PUSH RSP pushes the old value)
        stackPointerMinus(w);
        access(k, at, w ? 8 : 4, true, f);
        w ? mov(qword[rcx + rdx], rsi) : mov(dword[rcx + rdx], esi);
        mov(g64(4), rax);
        return false;
      }
      case FastKind::kPopR:
      case FastKind::kPop32:
        popSlot(op.kind == FastKind::kPopR, k, at, f);
        mov(g64(4), rax);
        mov(g64(op.a), rsi);  // after RSP (POP RSP keeps the value read)
        return false;
      case FastKind::kNop: return false;
      case FastKind::kMovzxRR:
        if (op.sub == 1)
          movzx(eax, g8(op.b));
        else
          movzx(eax, word[rbx + lay_.gpr + 8 * static_cast<int>(op.b)]);
        mov(g64(op.a), rax);
        return false;
      case FastKind::kMovzxRM16:
        address(i, next, true);
        access(k, at, 2, false, f);
        movzx(eax, word[rcx + rdx]);
        mov(g64(op.a), rax);
        return false;
      case FastKind::kUnaryR:
        if (q)
          mov(rax, g64(op.a));
        else
          mov(eax, g32(op.a));
        if (op.sub == 0) {
          q ? neg(rax) : neg(eax);
          wroteFlags(f, false);
        } else {
          q ? not_(rax) : not_(eax);
        }
        mov(g64(op.a), rax);
        return false;
      case FastKind::kJmpR: {
        saveFlags(f);
        if (flat32_) {
          mov(esi, g32(op.a));  // within the 4 GiB CS limit
        } else {
          mov(rsi, g64(op.a));
          canonicalOrLeave(k, at, f);
        }
        leaveToRsi(k, f);
        return true;
      }
      case FastKind::kRotRI: {
        const uint8_t c = static_cast<uint8_t>(i.imm & (q ? 63 : 31));
        const int bits = q ? 64 : 32;
        saveFlags(f);
        if (q) {
          mov(rax, g64(op.a));
          op.sub == 0 ? rol(rax, c) : ror(rax, c);
        } else {
          mov(eax, g32(op.a));
          op.sub == 0 ? rol(eax, c) : ror(eax, c);
        }
        mov(g64(op.a), rax);
        // The reference's CF and OF for every count (alu/flags.h): ROL CF =
        // bit 0, OF = msb ^ CF; ROR CF = msb, OF = msb ^ bit n-2.
        mov(rcx, rax);
        shr(rcx, bits - 1);
        if (op.sub == 0) {
          mov(edx, eax);
          and_(edx, 1);
          xor_(ecx, edx);
          shl(ecx, 11);
          or_(ecx, edx);
        } else {
          mov(rdx, rax);
          shr(rdx, bits - 2);
          and_(edx, 1);
          xor_(edx, ecx);
          shl(edx, 11);
          or_(ecx, edx);
        }
        and_(r15d, ~0x801u);
        or_(r15d, ecx);
        return false;
      }
      case FastKind::kImulRR:
      case FastKind::kImulRRI:
      case FastKind::kMulR: {
        if (op.kind == FastKind::kMulR) {
          mov(rax, g64(0));
          if (q) {
            mov(rsi, g64(op.a));
            mul(rsi);
          } else {
            mov(esi, g32(op.a));
            mul(esi);
          }
          if (liveOut) seto(cl);
          mov(g64(0), rax);
          mov(g64(2), rdx);
        } else {
          const int32_t imm = static_cast<int32_t>(i.imm);
          if (q) {
            mov(rsi, g64(op.b));
            if (op.kind == FastKind::kImulRR) {
              mov(rax, g64(op.a));
              imul(rax, rsi);
            } else {
              imul(rax, rsi, imm);
            }
          } else {
            mov(esi, g32(op.b));
            if (op.kind == FastKind::kImulRR) {
              mov(eax, g32(op.a));
              imul(eax, esi);
            } else {
              imul(eax, esi, imm);
            }
          }
          if (liveOut) seto(cl);
          mov(g64(op.a), rax);
        }
        if (!liveOut) {
          wroteFlags(f, true);  // nothing reads them before they are written again
          return false;
        }
        // The reference: CF = OF from the multiply, SF ZF PF of the low
        // half, AF 0.
        q ? test(rax, rax) : test(eax, eax);
        pushfq();
        pop(r15);
        movzx(ecx, cl);
        imul(ecx, ecx, 0x801);
        or_(r15d, ecx);
        f = FlagPlace{false, true, true};
        return false;
      }
      case FastKind::kAdcSbbRR:
      case FastKind::kAdcSbbRI: {
        if (op.kind == FastKind::kAdcSbbRR) {
          q ? mov(rsi, g64(op.b)) : mov(esi, g32(op.b));
        } else {
          q ? mov(rsi, i.imm) : mov(esi, static_cast<uint32_t>(i.imm));
        }
        q ? mov(rax, g64(op.a)) : mov(eax, g32(op.a));
        if (!f.host) {
          TTVM_ASSERT(f.saved, "jit ADC/SBB with CF nowhere");
          bt(r15, 0);
        }
        if (op.sub == 0)
          q ? adc(rax, rsi) : adc(eax, esi);
        else
          q ? sbb(rax, rsi) : sbb(eax, esi);
        mov(g64(op.a), rax);
        wroteFlags(f, false);
        return false;
      }
      case FastKind::kCmovRR:
      case FastKind::kSetccR: {
        Label& skip = newLabel();
        if (op.kind == FastKind::kCmovRR) {
          q ? mov(rax, g64(op.a)) : mov(eax, g32(op.a));  // 32 bits: zero-extended either way
          q ? mov(rsi, g64(op.b)) : mov(esi, g32(op.b));
        } else {
          mov(eax, 0);
        }
        if (f.host) {
          branchCc(op.sub ^ 1u, skip);
        } else {
          TTVM_ASSERT(f.saved, "jit CMOVcc/SETcc with the flags nowhere");
          branchSaved(op.sub ^ 1u, skip);
        }
        if (op.kind == FastKind::kCmovRR) {
          mov(rax, rsi);
          L(skip);
          mov(g64(op.a), rax);
        } else {
          mov(eax, 1);
          L(skip);
          mov(g8(op.a), al);
        }
        return false;
      }
      case FastKind::kStoreR8:
      case FastKind::kStoreImm: {
        const unsigned size = i.opSize;
        address(i, next, true);
        access(k, at, size, true, f);
        if (op.kind == FastKind::kStoreR8) {
          movzx(esi, g8(op.b));
          mov(byte[rcx + rdx], sil);
        } else if (size == 1) {
          mov(byte[rcx + rdx], static_cast<uint8_t>(i.imm));
        } else if (size == 4) {
          mov(dword[rcx + rdx], static_cast<uint32_t>(i.imm));
        } else {
          mov(qword[rcx + rdx], i.imm);  // an imm32, sign-extended
        }
        return false;
      }
      case FastKind::kCmpTestMI: {
        const unsigned size = i.opSize;
        address(i, next, true);
        access(k, at, size, false, f);
        const bool isTest = static_cast<AluOp>(op.sub) == AluOp::kTest;
        if (size == 1) {
          mov(al, byte[rcx + rdx]);
          isTest ? test(al, static_cast<uint8_t>(i.imm)) : cmp(al, static_cast<uint8_t>(i.imm));
        } else if (size == 4) {
          mov(eax, dword[rcx + rdx]);
          isTest ? test(eax, static_cast<uint32_t>(i.imm)) : cmp(eax, static_cast<uint32_t>(i.imm));
        } else {
          mov(rax, qword[rcx + rdx]);
          isTest ? test(rax, static_cast<uint32_t>(i.imm)) : cmp(rax, static_cast<uint32_t>(i.imm));
        }
        wroteFlags(f, isTest);
        return false;
      }
      default: TTVM_ASSERT(false, "jit: op kind ", int(op.kind), " has no host code");
    }
    return true;
  }

 public:
  // The loops back to the head (after the body, before the exits).
  struct Back {
    Label* label;
    unsigned k;
    FlagPlace f;
  };
  void emitBacks(unsigned n, uint64_t blockRip, Label& head) {
    for (Back& b : backs_) {
      L(*b.label);
      FlagPlace f = b.f;
      if (f.host && !f.saved) {
        pushfq();
        pop(r15);
      }
      if (f.afZero) and_(r15d, ~0x10u);
      add(r14, static_cast<int>(b.k + 1));
      lea(rax, ptr[r14 + static_cast<int>(n)]);
      cmp(rax, r12);
      Label& out = newLabel();
      exitTo(out, 0, false, blockRip, FlagPlace{false, true, false});
      ja(out);
      jmp(head);
    }
  }

 private:
  const StateLayout& lay_;
  bool user_ = false;
  bool flat32_ = false;
  void* cookie_ = nullptr;

 public:
  const uint8_t* body_ = nullptr;  // past the entry sequence

 private:
  Label epilogue_;
  std::vector<Exit> exits_;
  std::vector<Back> backs_;
  std::vector<std::unique_ptr<Label>> labels_;
};

}  // namespace

struct BlockJit::Impl {
  uint8_t* code = nullptr;  // nullptr: the host gave no executable memory
  size_t used = 0;
  StateLayout layout;
  std::vector<JitCacheEntry> cache;
};

BlockJit::BlockJit() : impl_(std::make_unique<Impl>()) {
  void* p = mmap(nullptr, kCodeBytes, PROT_READ | PROT_WRITE | PROT_EXEC,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p != MAP_FAILED) impl_->code = static_cast<uint8_t*>(p);
  impl_->cache.resize(size_t{1} << kJitCacheBits);
}

BlockJit::~BlockJit() {
  if (impl_->code != nullptr) munmap(impl_->code, kCodeBytes);
}

bool BlockJit::available() {
  return true;
}

JitCacheEntry* BlockJit::cache() {
  return impl_->cache.data();
}

JitEntry BlockJit::compile(const BlockOp* ops, unsigned n, uint64_t rip, bool user, bool flat32,
                           void* cookie, const uint8_t*& body) {
  body = nullptr;
  if (impl_->code == nullptr) return nullptr;
  unsigned m = 0;
  for (uint64_t at = rip; m < n; ++m) {
    const uint64_t next = at + ops[m].instr.length;
    if (!compilable(ops[m], next, flat32)) break;
    at = next;
  }
  if (m == 0) return nullptr;
  TTVM_ASSERT(impl_->used + kBlockReserve <= kCodeBytes, "jit code buffer full: ", impl_->used);
  uint8_t* start = impl_->code + impl_->used;
  Emitter e(kBlockReserve, start, impl_->layout);
  e.block(ops, m, n, rip, user, flat32, cookie);
  TTVM_ASSERT(Xbyak::GetError() == 0, "jit: xbyak error ", Xbyak::GetError());
  impl_->used += e.getSize();
  body = e.body_;
  return reinterpret_cast<JitEntry>(start);
}

bool BlockJit::nearlyFull() const {
  return impl_->used + kBlockReserve > kCodeBytes;
}

void BlockJit::reset() {
  impl_->used = 0;
  std::fill(impl_->cache.begin(), impl_->cache.end(), JitCacheEntry{});
}

size_t BlockJit::bytesUsed() const {
  return impl_->used;
}

#else  // not an x86-64 host: no compiled code

struct BlockJit::Impl {};
BlockJit::BlockJit() = default;
BlockJit::~BlockJit() = default;
bool BlockJit::available() {
  return false;
}
JitEntry BlockJit::compile(const BlockOp*, unsigned, uint64_t, bool, bool, void*,
                           const uint8_t*& body) {
  body = nullptr;
  return nullptr;
}
JitCacheEntry* BlockJit::cache() {
  return nullptr;
}
bool BlockJit::nearlyFull() const {
  return false;
}
void BlockJit::reset() {}
size_t BlockJit::bytesUsed() const {
  return 0;
}

#endif

}  // namespace ttvm
