#include "diff_generator_support.h"

#include <cpuid.h>

#include <initializer_list>
#include <random>

namespace ttvm::difftest {

Features hostFeatures() {
  Features f;
  unsigned a, b, c, d;
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    f.popcnt = (c >> 23) & 1;
    f.movbe = (c >> 22) & 1;
  }
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) f.tzcnt = (b >> 3) & 1;
  if (__get_cpuid(0x80000001, &a, &b, &c, &d)) f.lzcnt = (c >> 5) & 1;
  return f;
}

Features intersect(Features a, Features b) {
  return {a.popcnt && b.popcnt, a.lzcnt && b.lzcnt, a.tzcnt && b.tzcnt, a.movbe && b.movbe};
}

void applyFeatures(GeneratorOptions& o, Features f) {
  o.popcnt = f.popcnt;
  o.lzcnt = f.lzcnt;
  o.tzcnt = f.tzcnt;
  o.movbe = f.movbe;
}

ZydisEncoderOperand opReg(ZydisRegister r) {
  ZydisEncoderOperand o{};
  o.type = ZYDIS_OPERAND_TYPE_REGISTER;
  o.reg.value = r;
  return o;
}

ZydisEncoderOperand opImm(int64_t v) {
  ZydisEncoderOperand o{};
  o.type = ZYDIS_OPERAND_TYPE_IMMEDIATE;
  o.imm.s = v;
  return o;
}

namespace {

constexpr uint32_t kCF = 0x1, kPF = 0x4, kAF = 0x10, kZF = 0x40, kSF = 0x80, kOF = 0x800;
constexpr uint32_t kAll = kCF | kPF | kAF | kZF | kSF | kOF;

int64_t signExtend(uint64_t v, int bits) {
  if (bits >= 64) return static_cast<int64_t>(v);
  uint64_t m = 1ull << (bits - 1);
  v &= (1ull << bits) - 1;
  return static_cast<int64_t>((v ^ m) - m);
}

// Condition codes in encoding order, with the flags each reads.
struct Cond {
  ZydisMnemonic jcc, setcc, cmovcc;
  uint32_t reads;
};
const Cond kConds[16] = {
    {ZYDIS_MNEMONIC_JO, ZYDIS_MNEMONIC_SETO, ZYDIS_MNEMONIC_CMOVO, kOF},
    {ZYDIS_MNEMONIC_JNO, ZYDIS_MNEMONIC_SETNO, ZYDIS_MNEMONIC_CMOVNO, kOF},
    {ZYDIS_MNEMONIC_JB, ZYDIS_MNEMONIC_SETB, ZYDIS_MNEMONIC_CMOVB, kCF},
    {ZYDIS_MNEMONIC_JNB, ZYDIS_MNEMONIC_SETNB, ZYDIS_MNEMONIC_CMOVNB, kCF},
    {ZYDIS_MNEMONIC_JZ, ZYDIS_MNEMONIC_SETZ, ZYDIS_MNEMONIC_CMOVZ, kZF},
    {ZYDIS_MNEMONIC_JNZ, ZYDIS_MNEMONIC_SETNZ, ZYDIS_MNEMONIC_CMOVNZ, kZF},
    {ZYDIS_MNEMONIC_JBE, ZYDIS_MNEMONIC_SETBE, ZYDIS_MNEMONIC_CMOVBE, kCF | kZF},
    {ZYDIS_MNEMONIC_JNBE, ZYDIS_MNEMONIC_SETNBE, ZYDIS_MNEMONIC_CMOVNBE, kCF | kZF},
    {ZYDIS_MNEMONIC_JS, ZYDIS_MNEMONIC_SETS, ZYDIS_MNEMONIC_CMOVS, kSF},
    {ZYDIS_MNEMONIC_JNS, ZYDIS_MNEMONIC_SETNS, ZYDIS_MNEMONIC_CMOVNS, kSF},
    {ZYDIS_MNEMONIC_JP, ZYDIS_MNEMONIC_SETP, ZYDIS_MNEMONIC_CMOVP, kPF},
    {ZYDIS_MNEMONIC_JNP, ZYDIS_MNEMONIC_SETNP, ZYDIS_MNEMONIC_CMOVNP, kPF},
    {ZYDIS_MNEMONIC_JL, ZYDIS_MNEMONIC_SETL, ZYDIS_MNEMONIC_CMOVL, kSF | kOF},
    {ZYDIS_MNEMONIC_JNL, ZYDIS_MNEMONIC_SETNL, ZYDIS_MNEMONIC_CMOVNL, kSF | kOF},
    {ZYDIS_MNEMONIC_JLE, ZYDIS_MNEMONIC_SETLE, ZYDIS_MNEMONIC_CMOVLE, kZF | kSF | kOF},
    {ZYDIS_MNEMONIC_JNLE, ZYDIS_MNEMONIC_SETNLE, ZYDIS_MNEMONIC_CMOVNLE, kZF | kSF | kOF},
};

constexpr int kSp = 4;
constexpr uint32_t bit(int n) {
  return 1u << n;
}

class Generator {
 public:
  Generator(const GeneratorOptions& o, uint64_t seed)
      : o_(o), rng_(seed), layout_(layoutFor(o.mode)), bits_(modeBits(o.mode)) {}

  TestCase make(uint64_t seed) {
    TestCase tc;
    tc.seed = seed;
    tc.program.mode = o_.mode;
    makeInitialState(tc.initial);
    int n = o_.minUnits + below(o_.maxUnits - o_.minUnits + 1);
    int attempts = 0;
    while (static_cast<int>(tc.program.units.size()) < n && attempts++ < n * 20) {
      Unit u;
      if (!genUnit(u, /*inBranch=*/false)) {
        preUnits_.clear();
        pushed_ = pushedCommitted_;
        popped_ = poppedCommitted_;
        continue;
      }
      commit(tc.program, u);
    }
    return tc;
  }

 private:
  // ---- randomness ----
  uint64_t next() { return rng_(); }
  int below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }
  bool chance(int pct) { return below(100) < pct; }
  template <typename T>
  T pick(std::initializer_list<T> l) {
    return *(l.begin() + below(static_cast<int>(l.size())));
  }
  // Values that hit carry/overflow/sign boundaries often.
  uint64_t interesting(int bits) {
    uint64_t v;
    switch (below(10)) {
      case 0: v = pick<uint64_t>({0, 1, ~0ull, 2, ~1ull}); break;
      case 1: v = below(256); break;
      case 2: {
        int b = below(bits);
        v = (1ull << b) + pick<uint64_t>({0, 1, ~0ull});
        break;
      }
      case 3: {
        uint64_t sign = 1ull << (pick<int>({8, 16, 32, 64}) - 1);
        v = sign + pick<uint64_t>({0, ~0ull, 1});
        break;
      }
      case 4: v = ~static_cast<uint64_t>(below(256)); break;
      default: v = next(); break;
    }
    if (bits < 64) v &= (1ull << bits) - 1;
    return v;
  }

  bool is64() const { return o_.mode == CodeMode::kLong64; }
  int numRegs() const { return is64() ? 16 : 8; }
  int addrBits() const { return bits_; }

  // ---- registers ----
  // 8-bit: num 0-3 AL-BL; 64-bit mode: 5-7 BPL/SIL/DIL, 8-15 R8B-R15B, and
  // `high` selects AH-BH (num 0-3); legacy modes: 4-7 are AH-BH.
  static ZydisRegister gpr(int num, int bits, bool high = false) {
    static const ZydisRegister k8[] = {
        ZYDIS_REGISTER_AL,   ZYDIS_REGISTER_CL,   ZYDIS_REGISTER_DL,   ZYDIS_REGISTER_BL,
        ZYDIS_REGISTER_SPL,  ZYDIS_REGISTER_BPL,  ZYDIS_REGISTER_SIL,  ZYDIS_REGISTER_DIL,
        ZYDIS_REGISTER_R8B,  ZYDIS_REGISTER_R9B,  ZYDIS_REGISTER_R10B, ZYDIS_REGISTER_R11B,
        ZYDIS_REGISTER_R12B, ZYDIS_REGISTER_R13B, ZYDIS_REGISTER_R14B, ZYDIS_REGISTER_R15B};
    static const ZydisRegister kHigh[] = {ZYDIS_REGISTER_AH, ZYDIS_REGISTER_CH, ZYDIS_REGISTER_DH,
                                          ZYDIS_REGISTER_BH};
    switch (bits) {
      case 8: return high ? kHigh[num & 3] : k8[num];
      case 16: return static_cast<ZydisRegister>(ZYDIS_REGISTER_AX + num);
      case 32: return static_cast<ZydisRegister>(ZYDIS_REGISTER_EAX + num);
      default: return static_cast<ZydisRegister>(ZYDIS_REGISTER_RAX + num);
    }
  }
  int pickRegNum(uint32_t avoid) {
    for (;;) {
      int n = below(numRegs());
      if (n != kSp && !(avoid & bit(n))) return n;
    }
  }
  // A register of `bits` (never SP, nor a register in `avoid`). In legacy
  // modes the 8-bit registers 4-7 are AH-BH (their low-byte owners 0-3).
  ZydisRegister pickReg(int bits, uint32_t avoid = 0) {
    if (bits == 8) {
      if (!is64()) {
        for (;;) {
          int n = below(8);
          if (!(avoid & bit(n & 3))) return gpr(n < 4 ? n : n - 4, 8, n >= 4);
        }
      }
      if (chance(15)) {
        int n = below(4);
        if (!(avoid & bit(n))) return gpr(n, 8, true);
      }
    }
    return gpr(pickRegNum(avoid), bits);
  }
  int pickSize(bool allow8 = true) {
    for (;;) {
      int b = pick<int>({8, 16, 32, 64});
      if (b == 8 && !allow8) continue;
      if (b == 64 && !is64()) continue;
      return b;
    }
  }
  int pickSize16Up() { return pickSize(false); }

  // ---- instructions ----
  Insn insn(ZydisMnemonic m, std::initializer_list<ZydisEncoderOperand> ops, uint32_t reads = 0,
            uint32_t defines = 0, uint32_t undefines = 0) {
    Insn in;
    in.req.machine_mode = zydisMode(o_.mode);
    in.req.mnemonic = m;
    in.req.operand_count = static_cast<ZyanU8>(ops.size());
    int i = 0;
    for (const auto& op : ops) in.req.operands[i++] = op;
    in.reads = reads;
    in.defines = defines;
    in.undefines = undefines;
    return in;
  }
  static Insn raw(std::vector<uint8_t> bytes, uint32_t reads = 0, uint32_t defines = 0,
                  uint32_t undefines = 0) {
    Insn in;
    in.raw = std::move(bytes);
    in.reads = reads;
    in.defines = defines;
    in.undefines = undefines;
    return in;
  }
  // mov reg(num), value at `bits` width (no flags).
  void setReg(Unit& u, int num, uint64_t value, int bits) {
    u.insns.push_back(
        insn(ZYDIS_MNEMONIC_MOV, {opReg(gpr(num, bits)), opImm(signExtend(value, bits))}));
  }
  // Puts a CMP (which defines all six flags) first in `u` when `reads` are undefined now.
  void ensureDefined(Unit& u, uint32_t reads) {
    if (!(reads & undefined_)) return;
    int b = pickSize();
    Insn c = insn(ZYDIS_MNEMONIC_CMP, {opReg(pickReg(b)), opReg(pickReg(b))}, 0, kAll, 0);
    u.insns.insert(u.insns.begin(), c);
  }

  int randomDisp(int maxBits) {
    switch (below(5)) {
      case 0:
      case 1: return 0;
      case 2:
      case 3: return below(256) - 128;
      default: return maxBits == 16 ? below(0x800) - 0x400 : below(0x200000) - 0x100000;
    }
  }

  // A memory operand of `size` bytes (aligned to `align`) inside the data and
  // stack pages, at least `margin` bytes from their ends; emits the register
  // preludes it needs into `u`. Base/index never come from `avoid`.
  ZydisEncoderOperand mem(Unit& u, int size, uint32_t avoid, int align = 1, int margin = 0) {
    ZydisEncoderOperand o{};
    o.type = ZYDIS_OPERAND_TYPE_MEMORY;
    o.mem.size = static_cast<ZyanU16>(size);
    uint64_t span = memLimit_ - size - 2 * margin;
    uint64_t off = margin + (next() % (span + 1));
    off &= ~static_cast<uint64_t>(align - 1);
    uint64_t target = layout_.data + off;
    int form = below(6);
    if (is64()) {
      switch (form) {
        case 0: o.mem.displacement = static_cast<int64_t>(target); return o;
        case 1:
          o.mem.base = ZYDIS_REGISTER_RIP;
          o.mem.displacement = static_cast<int64_t>(target);
          return o;
        case 2: {
          int b = pickRegNum(avoid);
          int64_t disp = randomDisp(64);
          setReg(u, b, target - disp, 64);
          o.mem.base = gpr(b, 64);
          o.mem.displacement = disp;
          return o;
        }
        case 3:
        case 4: {
          // base + index*scale + disp; form 4 uses 32-bit addressing (67h)
          // with junk in the upper halves, which the CPU must ignore.
          int ab = form == 3 ? 64 : 32;
          int b = pickRegNum(avoid);
          int x = pickRegNum(avoid | bit(b));
          int scale = pick<int>({1, 2, 4, 8});
          int64_t idx = below(129) - 64;
          int64_t disp = randomDisp(ab);
          uint64_t base = target - static_cast<uint64_t>(idx * scale) - disp;
          uint64_t idxv = static_cast<uint64_t>(idx);
          if (ab == 32) {
            base = (base & 0xFFFFFFFF) | (next() << 32);
            idxv = (idxv & 0xFFFFFFFF) | (next() << 32);
          }
          setReg(u, b, base, 64);
          setReg(u, x, idxv, 64);
          o.mem.base = gpr(b, ab);
          o.mem.index = gpr(x, ab);
          o.mem.scale = static_cast<ZyanU8>(scale);
          o.mem.displacement = disp;
          return o;
        }
        default: return spRelative(u, size, avoid, align, margin);
      }
    }
    if (o_.mode == CodeMode::kProtected32) {
      switch (form) {
        case 0: o.mem.displacement = static_cast<int64_t>(target); return o;
        case 1: return addr16(u, target, size, avoid);
        case 2: {
          int b = pickRegNum(avoid);
          int64_t disp = randomDisp(32);
          setReg(u, b, target - disp, 32);
          o.mem.base = gpr(b, 32);
          o.mem.displacement = disp;
          return o;
        }
        case 3:
        case 4: {
          int b = pickRegNum(avoid);
          int x = pickRegNum(avoid | bit(b));
          int scale = pick<int>({1, 2, 4, 8});
          int64_t idx = below(129) - 64;
          int64_t disp = randomDisp(32);
          setReg(u, b, target - static_cast<uint64_t>(idx * scale) - disp, 32);
          setReg(u, x, static_cast<uint64_t>(idx), 32);
          o.mem.base = gpr(b, 32);
          o.mem.index = gpr(x, 32);
          o.mem.scale = static_cast<ZyanU8>(scale);
          o.mem.displacement = disp;
          return o;
        }
        default: return spRelative(u, size, avoid, align, margin);
      }
    }
    // Real mode: 16-bit forms, and 32-bit forms (67h) that stay below the
    // 64 KiB segment limit.
    if (form == 4 || form == 5) {
      int b = pickRegNum(avoid);
      int x = pickRegNum(avoid | bit(b));
      int scale = pick<int>({1, 2, 4, 8});
      int64_t idx = below(65);
      int64_t disp = below(0x400);
      setReg(u, b, target - static_cast<uint64_t>(idx * scale) - disp, 32);
      setReg(u, x, static_cast<uint64_t>(idx), 32);
      o.mem.base = gpr(b, 32);
      o.mem.index = gpr(x, 32);
      o.mem.scale = static_cast<ZyanU8>(scale);
      o.mem.displacement = disp;
      return o;
    }
    if (form == 0) {
      o.mem.displacement = static_cast<int64_t>(target);
      return o;
    }
    return addr16(u, target, size, avoid);
  }

  // The 16-bit ModRM forms [bx|bp][+si|di][+disp].
  ZydisEncoderOperand addr16(Unit& u, uint64_t target, int size, uint32_t avoid) {
    ZydisEncoderOperand o{};
    o.type = ZYDIS_OPERAND_TYPE_MEMORY;
    o.mem.size = static_cast<ZyanU16>(size);
    for (int tries = 0; tries < 20; ++tries) {
      int base = pick<int>({-1, 3, 5});   // none, BX, BP
      int index = pick<int>({-1, 6, 7});  // none, SI, DI
      if (base < 0 && index < 0) continue;
      if ((base >= 0 && (avoid & bit(base))) || (index >= 0 && (avoid & bit(index)))) continue;
      int64_t disp = pick<int>({0, 1, 2}) == 0 ? 0 : (chance(50) ? below(256) - 128 : below(0x800));
      uint64_t idxv = index >= 0 ? next() & 0xFFFF : 0;
      uint64_t basev = (target - idxv - disp) & 0xFFFF;
      if (index >= 0) setReg(u, index, idxv | (next() << 16), 32);
      if (base >= 0) {
        setReg(u, base, basev | (next() << 16), 32);
      } else {
        // Only an index: it alone must give the address.
        u.insns.pop_back();
        setReg(u, index, ((target - disp) & 0xFFFF) | (next() << 16), 32);
      }
      o.mem.base = base >= 0 ? gpr(base, 16) : ZYDIS_REGISTER_NONE;
      o.mem.index = index >= 0 ? gpr(index, 16) : ZYDIS_REGISTER_NONE;
      o.mem.scale = index >= 0 ? 1 : 0;
      o.mem.displacement = disp;
      return o;
    }
    o.mem.displacement = static_cast<int64_t>(target);
    return o;
  }

  ZydisEncoderOperand spRelative(Unit& u, int size, uint32_t avoid, int align, int margin) {
    if (align > 1 || margin > 0 || inBranch_) return mem(u, size, avoid, align, margin);
    ZydisEncoderOperand o{};
    o.type = ZYDIS_OPERAND_TYPE_MEMORY;
    o.mem.size = static_cast<ZyanU16>(size);
    o.mem.base = gpr(kSp, bits_);
    o.mem.displacement = below(0x1F0) - 0x100;
    return o;
  }

  // ---- instruction groups ----
  bool genUnit(Unit& u, bool inBranch) {
    inBranch_ = inBranch;
    int k = below(inBranch ? 14 : 26);
    switch (k) {
      case 0:
      case 1:
      case 2: return genAlu(u);
      case 3: return genUnary(u);
      case 4:
      case 5: return genShift(u);
      case 6: return genShiftDouble(u);
      case 7: return genMul(u);
      case 8: return genBitTest(u);
      case 9: return genSetCmov(u);
      case 10: return genLea(u);
      case 11: return genMov(u);
      case 12: return genMovExtend(u);
      case 13: return genFlagOps(u);
      case 14: return genDiv(u);
      case 15: return genExchange(u);
      case 16: return genBitScanCount(u);
      case 17: return genConvertBswap(u);
      case 18: return genPushPop(u);
      case 19: return genPushfPopf(u);
      case 20: return genString(u);
      case 21: return genSse(u);
      case 22:
      case 23: return genBranch(u);
      case 24: return is64() ? genMisc(u) : genLegacyOnly(u);
      default: return is64() ? genSse(u) : genLegacyOnly(u);
    }
  }

  static bool isLogic(ZydisMnemonic m) {
    return m == ZYDIS_MNEMONIC_AND || m == ZYDIS_MNEMONIC_OR || m == ZYDIS_MNEMONIC_XOR ||
           m == ZYDIS_MNEMONIC_TEST;
  }

  int64_t randomImm(int bits) {
    int ib = bits == 64 ? 32 : bits;
    if (chance(40)) return below(256) - 128;  // imm8 forms
    return signExtend(interesting(ib), ib);
  }

  void maybeLock(Insn& in, bool memDest) {
    if (memDest && chance(20)) in.req.prefixes |= ZYDIS_ATTRIB_HAS_LOCK;
  }

  bool genAlu(Unit& u) {
    ZydisMnemonic m = pick({ZYDIS_MNEMONIC_ADD, ZYDIS_MNEMONIC_OR, ZYDIS_MNEMONIC_ADC,
                            ZYDIS_MNEMONIC_SBB, ZYDIS_MNEMONIC_AND, ZYDIS_MNEMONIC_SUB,
                            ZYDIS_MNEMONIC_XOR, ZYDIS_MNEMONIC_CMP, ZYDIS_MNEMONIC_TEST});
    uint32_t reads = (m == ZYDIS_MNEMONIC_ADC || m == ZYDIS_MNEMONIC_SBB) ? kCF : 0;
    uint32_t def = isLogic(m) ? kAll & ~kAF : kAll;
    uint32_t undef = isLogic(m) ? kAF : 0;
    ensureDefined(u, reads);
    int b = pickSize();
    int form = below(5);
    if (m == ZYDIS_MNEMONIC_TEST && form == 1) form = 2;
    Insn in;
    bool memDest = false;
    switch (form) {
      case 0: in = insn(m, {opReg(pickReg(b)), opReg(pickReg(b))}, reads, def, undef); break;
      case 1: {
        auto mo = mem(u, b / 8, 0);
        in = insn(m, {opReg(pickReg(b)), mo}, reads, def, undef);
        break;
      }
      case 2: {
        auto mo = mem(u, b / 8, 0);
        in = insn(m, {mo, opReg(pickReg(b))}, reads, def, undef);
        memDest = true;
        break;
      }
      case 3: in = insn(m, {opReg(pickReg(b)), opImm(randomImm(b))}, reads, def, undef); break;
      default: {
        auto mo = mem(u, b / 8, 0);
        in = insn(m, {mo, opImm(randomImm(b))}, reads, def, undef);
        memDest = true;
      }
    }
    if (m != ZYDIS_MNEMONIC_CMP && m != ZYDIS_MNEMONIC_TEST) maybeLock(in, memDest);
    u.insns.push_back(in);
    return true;
  }

  bool genUnary(Unit& u) {
    ZydisMnemonic m =
        pick({ZYDIS_MNEMONIC_INC, ZYDIS_MNEMONIC_DEC, ZYDIS_MNEMONIC_NEG, ZYDIS_MNEMONIC_NOT});
    uint32_t def = m == ZYDIS_MNEMONIC_NOT ? 0 : (m == ZYDIS_MNEMONIC_NEG ? kAll : kAll & ~kCF);
    int b = pickSize();
    Insn in;
    if (chance(50)) {
      in = insn(m, {opReg(pickReg(b))}, 0, def, 0);
    } else {
      auto mo = mem(u, b / 8, 0);
      in = insn(m, {mo}, 0, def, 0);
      maybeLock(in, true);
    }
    u.insns.push_back(in);
    return true;
  }

  bool genShift(Unit& u) {
    ZydisMnemonic m =
        pick({ZYDIS_MNEMONIC_ROL, ZYDIS_MNEMONIC_ROR, ZYDIS_MNEMONIC_RCL, ZYDIS_MNEMONIC_RCR,
              ZYDIS_MNEMONIC_SHL, ZYDIS_MNEMONIC_SHR, ZYDIS_MNEMONIC_SAR});
    int b = pickSize();
    int kind = below(3);  // 0: by 1, 1: imm8, 2: CL
    int count = kind == 0 ? 1 : below(kind == 1 && chance(50) ? 64 : 256);
    uint32_t avoid = 0;
    bool rc = m == ZYDIS_MNEMONIC_RCL || m == ZYDIS_MNEMONIC_RCR;
    if (rc) ensureDefined(u, kCF);
    if (kind == 2) {
      setReg(u, 1, static_cast<uint64_t>(count), 8);
      avoid = bit(1);
    }
    int c = count & (b == 64 ? 63 : 31);
    uint32_t def = 0, undef = 0;
    if (c != 0) {
      if (m == ZYDIS_MNEMONIC_SHL || m == ZYDIS_MNEMONIC_SHR || m == ZYDIS_MNEMONIC_SAR) {
        def = kCF | kPF | kZF | kSF;
        undef = kAF;
        // SDM: CF is undefined for SHL/SHR when the count is >= the operand size.
        if (m != ZYDIS_MNEMONIC_SAR && c >= b) {
          def &= ~kCF;
          undef |= kCF;
        }
      } else {
        def = kCF;
      }
      // OF is defined only for 1-bit shifts and rotates.
      if (c == 1) {
        def |= kOF;
      } else {
        undef |= kOF;
      }
    }
    ZydisEncoderOperand dst = chance(50) ? opReg(pickReg(b, avoid)) : mem(u, b / 8, avoid);
    ZydisEncoderOperand cnt = kind == 2 ? opReg(ZYDIS_REGISTER_CL) : opImm(count);
    u.insns.push_back(insn(m, {dst, cnt}, rc ? kCF : 0, def, undef));
    return true;
  }

  bool genShiftDouble(Unit& u) {
    ZydisMnemonic m = chance(50) ? ZYDIS_MNEMONIC_SHLD : ZYDIS_MNEMONIC_SHRD;
    int b = pickSize16Up();
    bool useCl = chance(50);
    int count;
    do {
      count = below(256);
    } while (b == 16 && (count & 31) > 16);  // SDM: count > operand size is undefined
    uint32_t avoid = 0;
    if (useCl) {
      setReg(u, 1, static_cast<uint64_t>(count), 8);
      avoid = bit(1);
    }
    int c = count & (b == 64 ? 63 : 31);
    uint32_t def = 0, undef = 0;
    if (c != 0) {
      def = kCF | kPF | kZF | kSF;
      undef = kAF;
      if (c == 1) {
        def |= kOF;
      } else {
        undef |= kOF;
      }
    }
    ZydisEncoderOperand dst = chance(50) ? opReg(pickReg(b, avoid)) : mem(u, b / 8, avoid);
    ZydisEncoderOperand cnt = useCl ? opReg(ZYDIS_REGISTER_CL) : opImm(count);
    u.insns.push_back(insn(m, {dst, opReg(pickReg(b)), cnt}, 0, def, undef));
    return true;
  }

  ZydisEncoderOperand regOrMem(Unit& u, int bits, uint32_t avoid = 0, int align = 1) {
    return chance(50) ? opReg(pickReg(bits, avoid)) : mem(u, bits / 8, avoid, align);
  }

  bool genMul(Unit& u) {
    constexpr uint32_t def = kCF | kOF, undef = kSF | kZF | kAF | kPF;
    switch (below(3)) {
      case 0: {
        ZydisMnemonic m = chance(50) ? ZYDIS_MNEMONIC_MUL : ZYDIS_MNEMONIC_IMUL;
        int b = pickSize();
        u.insns.push_back(insn(m, {regOrMem(u, b)}, 0, def, undef));
        return true;
      }
      case 1: {
        int b = pickSize16Up();
        auto src = regOrMem(u, b);
        u.insns.push_back(insn(ZYDIS_MNEMONIC_IMUL, {opReg(pickReg(b)), src}, 0, def, undef));
        return true;
      }
      default: {
        int b = pickSize16Up();
        auto src = regOrMem(u, b);
        u.insns.push_back(insn(ZYDIS_MNEMONIC_IMUL, {opReg(pickReg(b)), src, opImm(randomImm(b))},
                               0, def, undef));
        return true;
      }
    }
  }

  bool genDiv(Unit& u) {
    bool sign = chance(50);
    ZydisMnemonic m = sign ? ZYDIS_MNEMONIC_IDIV : ZYDIS_MNEMONIC_DIV;
    int b = pickSize();
    bool prepared = !o_.allowFaults || chance(85);
    // The divisor never lives in RAX/RDX (AX for byte division): the
    // preparation below writes them.
    uint32_t avoid = bit(0) | bit(2);
    ZydisEncoderOperand divisor = regOrMem(u, b, avoid);
    if (prepared) {
      if (sign) {
        // Sign-extend the dividend (CBW for bytes, else CWD/CDQ/CQO): the
        // quotient then fits unless it is MIN / -1.
        std::vector<uint8_t> bytes;
        int opBits = b == 8 ? 16 : b;
        if ((opBits == 16) != (bits_ == 16) && opBits != 64) bytes.push_back(0x66);
        if (opBits == 64) bytes.push_back(0x48);
        bytes.push_back(b == 8 ? 0x98 : 0x99);
        u.insns.push_back(raw(bytes));
      } else if (b == 8) {
        u.insns.push_back(
            insn(ZYDIS_MNEMONIC_MOVZX, {opReg(ZYDIS_REGISTER_AX), opReg(ZYDIS_REGISTER_AL)}));
      } else {
        setReg(u, 2, 0, b == 64 ? 32 : b);
      }
      // A nonzero divisor.
      u.insns.push_back(
          insn(ZYDIS_MNEMONIC_OR, {divisor, opImm(1 << below(7))}, 0, kAll & ~kAF, kAF));
    }
    u.insns.push_back(insn(m, {divisor}, 0, 0, kAll));
    return true;
  }

  bool genBitTest(Unit& u) {
    ZydisMnemonic m =
        pick({ZYDIS_MNEMONIC_BT, ZYDIS_MNEMONIC_BTS, ZYDIS_MNEMONIC_BTR, ZYDIS_MNEMONIC_BTC});
    int b = pickSize16Up();
    constexpr uint32_t def = kCF, undef = kOF | kSF | kAF | kPF;
    Insn in;
    if (chance(50)) {
      in = insn(m, {opReg(pickReg(b)), chance(50) ? opImm(below(256)) : opReg(pickReg(b))}, 0, def,
                undef);
    } else if (chance(50)) {
      auto mo = mem(u, b / 8, 0);
      in = insn(m, {mo, opImm(below(256))}, 0, def, undef);
      maybeLock(in, m != ZYDIS_MNEMONIC_BT);
    } else {
      // A register bit offset reaches outside the operand: keep it within
      // +-256 bits and the operand 48 bytes away from the page ends.
      int r = pickRegNum(0);
      setReg(u, r, static_cast<uint64_t>(below(512) - 256), b);
      auto mo = mem(u, b / 8, bit(r), 1, 48);
      in = insn(m, {mo, opReg(gpr(r, b))}, 0, def, undef);
      maybeLock(in, m != ZYDIS_MNEMONIC_BT);
    }
    u.insns.push_back(in);
    return true;
  }

  bool genBitScanCount(Unit& u) {
    int b = pickSize16Up();
    int k = below(5);
    if (k == 2 && !o_.popcnt) k = 0;
    if (k == 3 && !o_.lzcnt) k = 1;
    if (k == 4 && !o_.tzcnt) k = 0;
    ZydisEncoderOperand src = regOrMem(u, b);
    switch (k) {
      case 0:
      case 1:
        // SDM: the destination is undefined when the source is 0; make it nonzero.
        u.insns.push_back(
            insn(ZYDIS_MNEMONIC_BTS, {src, opImm(below(b))}, 0, kCF, kOF | kSF | kAF | kPF));
        u.insns.push_back(insn(k == 0 ? ZYDIS_MNEMONIC_BSF : ZYDIS_MNEMONIC_BSR,
                               {opReg(pickReg(b)), src}, 0, kZF, kAll & ~kZF));
        return true;
      case 2:
        u.insns.push_back(insn(ZYDIS_MNEMONIC_POPCNT, {opReg(pickReg(b)), src}, 0, kAll, 0));
        return true;
      default:
        u.insns.push_back(insn(k == 3 ? ZYDIS_MNEMONIC_LZCNT : ZYDIS_MNEMONIC_TZCNT,
                               {opReg(pickReg(b)), src}, 0, kCF | kZF, kOF | kSF | kAF | kPF));
        return true;
    }
  }

  bool genSetCmov(Unit& u) {
    const Cond& c = kConds[below(16)];
    ensureDefined(u, c.reads);
    if (chance(50)) {
      u.insns.push_back(insn(c.setcc, {regOrMem(u, 8)}, c.reads));
    } else {
      int b = pickSize16Up();
      auto src = regOrMem(u, b);
      u.insns.push_back(insn(c.cmovcc, {opReg(pickReg(b)), src}, c.reads));
    }
    return true;
  }

  bool genLea(Unit& u) {
    // LEA computes an address without touching memory: random registers work.
    int b = pickSize16Up();
    ZydisEncoderOperand o{};
    o.type = ZYDIS_OPERAND_TYPE_MEMORY;
    int ab = bits_;
    if (chance(25)) ab = bits_ == 32 ? 16 : 32;
    if (ab == 16) {
      int base = pick<int>({-1, 3, 5});
      int index = pick<int>({-1, 6, 7});
      if (base >= 0) o.mem.base = gpr(base, 16);
      if (index >= 0) {
        o.mem.index = gpr(index, 16);
        o.mem.scale = 1;
      }
      o.mem.displacement = chance(50) ? below(256) - 128 : below(0x10000) - 0x8000;
    } else if (is64() && ab == 64 && chance(15)) {
      o.mem.base = ZYDIS_REGISTER_RIP;
      o.mem.displacement = static_cast<int64_t>(layout_.code + below(0x100000));
    } else {
      if (chance(85)) o.mem.base = gpr(below(numRegs()), ab);
      if (chance(60)) {
        o.mem.index = gpr(pickRegNum(0), ab);
        o.mem.scale = static_cast<ZyanU8>(pick<int>({1, 2, 4, 8}));
      }
      o.mem.displacement = randomDisp(32);
    }
    o.mem.size = static_cast<ZyanU16>(ab / 8);
    u.insns.push_back(insn(ZYDIS_MNEMONIC_LEA, {opReg(pickReg(b)), o}));
    return true;
  }

  bool genMov(Unit& u) {
    int b = pickSize();
    switch (below(6)) {
      case 0:
        u.insns.push_back(insn(ZYDIS_MNEMONIC_MOV, {opReg(pickReg(b)), opReg(pickReg(b))}));
        break;
      case 1: {
        auto mo = mem(u, b / 8, 0);
        u.insns.push_back(insn(ZYDIS_MNEMONIC_MOV, {opReg(pickReg(b)), mo}));
        break;
      }
      case 2: {
        auto mo = mem(u, b / 8, 0);
        u.insns.push_back(insn(ZYDIS_MNEMONIC_MOV, {mo, opReg(pickReg(b))}));
        break;
      }
      case 3: {
        int64_t v = b == 64 && chance(50) ? static_cast<int64_t>(interesting(64)) : randomImm(b);
        u.insns.push_back(insn(ZYDIS_MNEMONIC_MOV, {opReg(pickReg(b)), opImm(v)}));
        break;
      }
      case 4: {
        auto mo = mem(u, b / 8, 0);
        u.insns.push_back(insn(ZYDIS_MNEMONIC_MOV, {mo, opImm(randomImm(b))}));
        break;
      }
      default:
        // NOP forms (90, 66 90, 0F 1F /0 with the ModRM forms compilers pad
        // with); the ModRM bytes mean other lengths with 16-bit addressing.
        if (bits_ == 16) {
          u.insns.push_back(raw(pick<std::vector<uint8_t>>({{0x90},
                                                            {0x66, 0x90},
                                                            {0x0F, 0x1F, 0x00},
                                                            {0x0F, 0x1F, 0x40, 0x00},
                                                            {0x0F, 0x1F, 0x80, 0x00, 0x00},
                                                            {0x66, 0x0F, 0x1F, 0x40, 0x00}})));
        } else {
          u.insns.push_back(
              raw(pick<std::vector<uint8_t>>({{0x90},
                                              {0x66, 0x90},
                                              {0x0F, 0x1F, 0x00},
                                              {0x0F, 0x1F, 0x40, 0x00},
                                              {0x0F, 0x1F, 0x44, 0x00, 0x00},
                                              {0x66, 0x0F, 0x1F, 0x44, 0x00, 0x00},
                                              {0x0F, 0x1F, 0x80, 0x00, 0x00, 0x00, 0x00}})));
        }
    }
    return true;
  }

  bool genMovExtend(Unit& u) {
    int k = below(is64() ? 3 : 2);
    if (k == 2) {
      u.insns.push_back(insn(ZYDIS_MNEMONIC_MOVSXD, {opReg(pickReg(64)), regOrMem(u, 32)}));
      return true;
    }
    ZydisMnemonic m = k == 0 ? ZYDIS_MNEMONIC_MOVZX : ZYDIS_MNEMONIC_MOVSX;
    int db = pickSize16Up();
    int sb = db == 16 ? 8 : pick<int>({8, 16});
    auto src = regOrMem(u, sb);
    u.insns.push_back(insn(m, {opReg(pickReg(db)), src}));
    return true;
  }

  bool genExchange(Unit& u) {
    int k = below(5);
    int b = pickSize();
    switch (k) {
      case 0: {
        // XCHG r, r; Zydis writes xchg eax,eax as 90 (NOP), so keep them distinct.
        ZydisRegister a = pickReg(b), c = pickReg(b);
        if (a == c) return false;
        u.insns.push_back(insn(ZYDIS_MNEMONIC_XCHG, {opReg(a), opReg(c)}));
        return true;
      }
      case 1: {
        auto mo = mem(u, b / 8, 0);
        Insn in = insn(ZYDIS_MNEMONIC_XCHG, {mo, opReg(pickReg(b))});
        maybeLock(in, true);
        u.insns.push_back(in);
        return true;
      }
      case 2:
      case 3: {
        ZydisMnemonic m = k == 2 ? ZYDIS_MNEMONIC_XADD : ZYDIS_MNEMONIC_CMPXCHG;
        bool memDest = chance(50);
        auto dst = memDest ? mem(u, b / 8, 0) : opReg(pickReg(b));
        if (m == ZYDIS_MNEMONIC_CMPXCHG && !memDest && b == 32 && is64()) {
          // Vendors differ: when the comparison fails Intel writes the
          // destination back (zero-extending it to 64 bits, SDM CMPXCHG),
          // AMD leaves it alone. Clear its upper half first so that both agree.
          u.insns.push_back(insn(ZYDIS_MNEMONIC_MOV, {dst, dst}));
        }
        Insn in = insn(m, {dst, opReg(pickReg(b))}, 0, kAll, 0);
        maybeLock(in, memDest);
        u.insns.push_back(in);
        return true;
      }
      default: {
        bool wide = is64() && chance(50);
        auto mo = mem(u, wide ? 16 : 8, 0, wide ? 16 : 1);
        Insn in = insn(wide ? ZYDIS_MNEMONIC_CMPXCHG16B : ZYDIS_MNEMONIC_CMPXCHG8B, {mo}, 0, kZF);
        maybeLock(in, true);
        u.insns.push_back(in);
        return true;
      }
    }
  }

  bool genConvertBswap(Unit& u) {
    if (chance(40)) {
      int b = is64() && chance(50) ? 64 : 32;
      u.insns.push_back(insn(ZYDIS_MNEMONIC_BSWAP, {opReg(pickReg(b))}));
      return true;
    }
    if (o_.movbe && chance(35)) {
      int b = pickSize16Up();
      auto mo = mem(u, b / 8, 0);
      if (chance(50)) {
        u.insns.push_back(insn(ZYDIS_MNEMONIC_MOVBE, {opReg(pickReg(b)), mo}));
      } else {
        u.insns.push_back(insn(ZYDIS_MNEMONIC_MOVBE, {mo, opReg(pickReg(b))}));
      }
      return true;
    }
    // CBW/CWDE/CDQE and CWD/CDQ/CQO in every operand size.
    std::vector<uint8_t> bytes;
    int b = pickSize16Up();
    if ((b == 16) != (bits_ == 16)) bytes.push_back(0x66);
    if (b == 64) bytes.push_back(0x48);
    bytes.push_back(chance(50) ? 0x98 : 0x99);
    u.insns.push_back(raw(bytes));
    return true;
  }

  // PUSH/POP move SP; the totals stay within kStackBudget each way so that any
  // subset of units keeps SP inside the stack page.
  static constexpr int kStackBudget = 0x300;
  bool stackRoom(int push, int pop) const {
    return pushed_ + push <= kStackBudget && popped_ + pop <= kStackBudget;
  }

  bool genPushPop(Unit& u) {
    int w = chance(20) ? (bits_ == 16 ? 32 : 16) : (bits_ == 16 ? 16 : bits_);
    if (is64() && w == 32) w = 64;
    int bytes = w / 8;
    if (chance(50)) {
      if (!stackRoom(bytes, 0)) return false;
      switch (below(3)) {
        case 0:
          u.insns.push_back(insn(ZYDIS_MNEMONIC_PUSH, {opReg(gpr(below(numRegs()), w))}));
          break;
        case 1: {
          auto mo = mem(u, bytes, 0);
          u.insns.push_back(insn(ZYDIS_MNEMONIC_PUSH, {mo}));
          break;
        }
        default: {
          if (w != bits_ && !(is64() && w == 64)) return false;
          Insn in = insn(ZYDIS_MNEMONIC_PUSH, {opImm(randomImm(w == 64 ? 32 : w))});
          u.insns.push_back(in);
        }
      }
      pushed_ += bytes;
    } else {
      if (!stackRoom(0, bytes)) return false;
      if (chance(60)) {
        u.insns.push_back(insn(ZYDIS_MNEMONIC_POP, {opReg(pickReg(w))}));
      } else {
        auto mo = mem(u, bytes, 0);
        u.insns.push_back(insn(ZYDIS_MNEMONIC_POP, {mo}));
      }
      popped_ += bytes;
    }
    return true;
  }

  // PUSHF; pop r; xor r, <arith flags and DF>; push r; POPF.
  bool genPushfPopf(Unit& u) {
    int w = bits_ == 64 ? 64 : bits_;
    if (!stackRoom(w / 8 * 2, w / 8 * 2)) return false;
    ensureDefined(u, kAll);
    int r = pickRegNum(0);
    u.insns.push_back(raw({0x9C}, kAll));
    u.insns.push_back(insn(ZYDIS_MNEMONIC_POP, {opReg(gpr(r, w))}));
    uint32_t toggle = static_cast<uint32_t>(next()) & (kAll | 0x400);
    int xb = w == 64 ? 32 : w;
    u.insns.push_back(
        insn(ZYDIS_MNEMONIC_XOR, {opReg(gpr(r, xb)), opImm(toggle)}, 0, kAll & ~kAF, kAF));
    if (w == 64) {
      // xor r32 cleared the upper half; PUSH r64 pushes it, POPF ignores it.
    }
    u.insns.push_back(insn(ZYDIS_MNEMONIC_PUSH, {opReg(gpr(r, w))}));
    u.insns.push_back(raw({0x9D}, 0, kAll, 0));
    pushed_ += w / 4;
    popped_ += w / 4;
    return true;
  }

  bool genString(Unit& u) {
    // op: 0 MOVS, 1 CMPS, 2 STOS, 3 LODS, 4 SCAS
    int op = below(5);
    static const uint8_t kOpcode[] = {0xA4, 0xA6, 0xAA, 0xAC, 0xAE};
    int size = pick<int>({1, 2, 4, 8});
    if (size == 8 && !is64()) size = 4;
    int rep = below(3);  // 0 none, 1 F3 (REP/REPE), 2 F2 (REPNE; only CMPS/SCAS)
    if (rep == 2 && op != 1 && op != 4) rep = 1;
    bool altAddr = chance(20);
    int ab = altAddr ? (bits_ == 64 ? 32 : (bits_ == 32 ? 16 : 32)) : bits_;
    bool usesSi = op == 0 || op == 1 || op == 3;
    bool usesDi = op != 3;
    int n = below(13);
    // A REP with a 32-bit address size in 64-bit mode that runs zero times
    // is vendor-dependent: Intel CPUs clear RCX[63:32], and MOVS (RSI, RDI)
    // and STOS (RDI) zero-extend their index registers, while LODS, CMPS and
    // SCAS leave them (measured on an Intel Xeon host); AMD CPUs and QEMU
    // leave all of them; the SDM's REP pseudocode writes nothing. Keep their
    // upper halves zero then, so the host cannot show the difference (the
    // junk is still drawn, so every other case stays as it was). ttvm's own
    // choice (nothing written) is pinned by CpuStringTable.
    const bool vendorDependent = rep != 0 && n == 0 && ab == 32 && bits_ == 64;
    auto upperJunk = [&] {
      const uint64_t junk = next() << 32;
      return vendorDependent ? 0 : junk;
    };
    auto addrValue = [&](uint64_t target) {
      // Junk above the address size must be ignored by the CPU; real mode
      // with 32-bit addressing must stay below the 64 KiB limit.
      if (ab == 16) return (target & 0xFFFF) | (next() << 16);
      if (ab == 32 && bits_ == 64) return (target & 0xFFFFFFFF) | upperJunk();
      return target;
    };
    int setBits = bits_ == 64 ? 64 : 32;
    if (usesSi) setReg(u, 6, addrValue(layout_.data + 0x100 + below(kMemSize - 0x200)), setBits);
    if (usesDi) setReg(u, 7, addrValue(layout_.data + 0x100 + below(kMemSize - 0x200)), setBits);
    if (rep) {
      uint64_t cv = static_cast<uint64_t>(n);
      if (ab == 16) cv |= next() << 16;
      if (ab == 32 && bits_ == 64) cv |= upperJunk();
      setReg(u, 1, cv, setBits);
    }
    std::vector<uint8_t> bytes;
    if (rep == 1) bytes.push_back(0xF3);
    if (rep == 2) bytes.push_back(0xF2);
    if (altAddr) bytes.push_back(0x67);
    if ((size == 2) != (bits_ == 16) && size != 1 && size != 8) bytes.push_back(0x66);
    if (usesSi && chance(25)) {
      // Segment override of the source. CS/SS/DS/ES have base 0 (flat) or
      // the one real-mode segment everywhere; FS/GS only in real mode: under
      // a 64-bit host kernel they hold the host's TLS bases.
      bytes.push_back(bits_ == 16 ? pick<uint8_t>({0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65})
                                  : pick<uint8_t>({0x26, 0x2E, 0x36, 0x3E}));
    }
    if (size == 8) bytes.push_back(0x48);
    bytes.push_back(static_cast<uint8_t>(kOpcode[op] + (size == 1 ? 0 : 1)));
    bool cmp = op == 1 || op == 4;
    bool anyIteration = rep == 0 || n > 0;
    u.insns.push_back(raw(bytes, 0, cmp && anyIteration ? kAll : 0, 0));
    return true;
  }

  bool genFlagOps(Unit& u) {
    switch (below(7)) {
      case 0: u.insns.push_back(raw({0xF8}, 0, kCF)); break;  // CLC
      case 1: u.insns.push_back(raw({0xF9}, 0, kCF)); break;  // STC
      case 2:
        ensureDefined(u, kCF);
        u.insns.push_back(raw({0xF5}, kCF, kCF));  // CMC
        break;
      case 3: u.insns.push_back(raw({0xFC})); break;  // CLD
      case 4: u.insns.push_back(raw({0xFD})); break;  // STD
      case 5:
        ensureDefined(u, kSF | kZF | kAF | kPF | kCF);
        u.insns.push_back(raw({0x9F}, kSF | kZF | kAF | kPF | kCF));  // LAHF
        break;
      default: u.insns.push_back(raw({0x9E}, 0, kSF | kZF | kAF | kPF | kCF)); break;  // SAHF
    }
    return true;
  }

  ZydisRegister xmm(int i) { return static_cast<ZydisRegister>(ZYDIS_REGISTER_XMM0 + i); }
  ZydisRegister pickXmm() { return xmm(below(is64() ? 16 : 8)); }

  // Alignment of a legacy SSE m128 operand: 16, or 1 (almost always
  // misaligned, so #GP) in a few percent of cases when asked for.
  int sseAlign() { return o_.misalignedSse && chance(4) ? 1 : 16; }

  // SSE/SSE2 floating point (o_.sseFp). Operands come from the XMM
  // registers' and memory's "interesting" bit patterns: zeros, all ones
  // (NaNs), small integers (denormals), sign bits, random bits.
  bool genSseFp(Unit& u) {
    // Per operation: PS, PD, SS, SD.
    static const ZydisMnemonic kArith[][4] = {
        {ZYDIS_MNEMONIC_ADDPS, ZYDIS_MNEMONIC_ADDPD, ZYDIS_MNEMONIC_ADDSS, ZYDIS_MNEMONIC_ADDSD},
        {ZYDIS_MNEMONIC_SUBPS, ZYDIS_MNEMONIC_SUBPD, ZYDIS_MNEMONIC_SUBSS, ZYDIS_MNEMONIC_SUBSD},
        {ZYDIS_MNEMONIC_MULPS, ZYDIS_MNEMONIC_MULPD, ZYDIS_MNEMONIC_MULSS, ZYDIS_MNEMONIC_MULSD},
        {ZYDIS_MNEMONIC_DIVPS, ZYDIS_MNEMONIC_DIVPD, ZYDIS_MNEMONIC_DIVSS, ZYDIS_MNEMONIC_DIVSD},
        {ZYDIS_MNEMONIC_MINPS, ZYDIS_MNEMONIC_MINPD, ZYDIS_MNEMONIC_MINSS, ZYDIS_MNEMONIC_MINSD},
        {ZYDIS_MNEMONIC_MAXPS, ZYDIS_MNEMONIC_MAXPD, ZYDIS_MNEMONIC_MAXSS, ZYDIS_MNEMONIC_MAXSD},
        {ZYDIS_MNEMONIC_SQRTPS, ZYDIS_MNEMONIC_SQRTPD, ZYDIS_MNEMONIC_SQRTSS,
         ZYDIS_MNEMONIC_SQRTSD},
        {ZYDIS_MNEMONIC_CMPPS, ZYDIS_MNEMONIC_CMPPD, ZYDIS_MNEMONIC_CMPSS, ZYDIS_MNEMONIC_CMPSD},
        {ZYDIS_MNEMONIC_UNPCKLPS, ZYDIS_MNEMONIC_UNPCKLPD, ZYDIS_MNEMONIC_UNPCKHPS,
         ZYDIS_MNEMONIC_UNPCKHPD},
    };
    constexpr int kCompareRow = 7, kUnpackRow = 8, kFirstNanFreeRow = 4;
    // An XMM register or memory: m128 (aligned) for packed forms, else m32/m64.
    auto source = [&](int bytes) {
      if (chance(50)) return opReg(pickXmm());
      return bytes == 16 ? mem(u, 16, 0, sseAlign()) : mem(u, bytes, 0);
    };
    switch (below(5)) {
      case 0:
      case 1: {
        const int rows = sizeof(kArith) / sizeof(kArith[0]);
        const int row = o_.sseFp == SseFp::kAll ? below(rows)
                                                : kFirstNanFreeRow + below(rows - kFirstNanFreeRow);
        const int form = below(4);
        const ZydisMnemonic m = kArith[row][form];
        const int bytes = row == kUnpackRow || form < 2 ? 16 : form == 2 ? 4 : 8;
        if (row == kCompareRow) {
          u.insns.push_back(insn(m, {opReg(pickXmm()), source(bytes), opImm(below(8))}));
        } else {
          u.insns.push_back(insn(m, {opReg(pickXmm()), source(bytes)}));
        }
        return true;
      }
      case 2: {  // COMISS/UCOMISS/COMISD/UCOMISD: ZF PF CF, OF SF AF cleared
        static const ZydisMnemonic kComi[] = {ZYDIS_MNEMONIC_COMISS, ZYDIS_MNEMONIC_UCOMISS,
                                              ZYDIS_MNEMONIC_COMISD, ZYDIS_MNEMONIC_UCOMISD};
        const int k = below(4);
        u.insns.push_back(insn(kComi[k], {opReg(pickXmm()), source(k < 2 ? 4 : 8)}, 0, kAll, 0));
        return true;
      }
      case 3: {  // to a GPR, rounded or truncated
        static const ZydisMnemonic kToInt[] = {ZYDIS_MNEMONIC_CVTSS2SI, ZYDIS_MNEMONIC_CVTTSS2SI,
                                               ZYDIS_MNEMONIC_CVTSD2SI, ZYDIS_MNEMONIC_CVTTSD2SI};
        const int k = below(4);
        const int bits = is64() && chance(50) ? 64 : 32;
        u.insns.push_back(insn(kToInt[k], {opReg(pickReg(bits)), source(k < 2 ? 4 : 8)}));
        return true;
      }
      default: {  // between formats
        struct Convert {
          ZydisMnemonic m;
          int srcBytes;
        };
        static const Convert kConverts[] = {
            {ZYDIS_MNEMONIC_CVTSS2SD, 4},   {ZYDIS_MNEMONIC_CVTSD2SS, 8},
            {ZYDIS_MNEMONIC_CVTPS2PD, 8},   {ZYDIS_MNEMONIC_CVTPD2PS, 16},
            {ZYDIS_MNEMONIC_CVTDQ2PS, 16},  {ZYDIS_MNEMONIC_CVTPS2DQ, 16},
            {ZYDIS_MNEMONIC_CVTTPS2DQ, 16}, {ZYDIS_MNEMONIC_CVTDQ2PD, 8},
            {ZYDIS_MNEMONIC_CVTPD2DQ, 16},  {ZYDIS_MNEMONIC_CVTTPD2DQ, 16}};
        if (chance(25)) {
          const int bits = is64() && chance(50) ? 64 : 32;
          const ZydisMnemonic m = chance(50) ? ZYDIS_MNEMONIC_CVTSI2SS : ZYDIS_MNEMONIC_CVTSI2SD;
          u.insns.push_back(insn(m, {opReg(pickXmm()), regOrMem(u, bits)}));
          return true;
        }
        const Convert& c = kConverts[below(sizeof(kConverts) / sizeof(kConverts[0]))];
        u.insns.push_back(insn(c.m, {opReg(pickXmm()), source(c.srcBytes)}));
        return true;
      }
    }
  }

  bool genSse(Unit& u) {
    if (!o_.sse2) return genAlu(u);
    if (o_.sseFp != SseFp::kOff && chance(40)) return genSseFp(u);
    static const ZydisMnemonic kBinary[] = {
        ZYDIS_MNEMONIC_PXOR,       ZYDIS_MNEMONIC_POR,       ZYDIS_MNEMONIC_PAND,
        ZYDIS_MNEMONIC_PANDN,      ZYDIS_MNEMONIC_PADDB,     ZYDIS_MNEMONIC_PADDW,
        ZYDIS_MNEMONIC_PADDD,      ZYDIS_MNEMONIC_PADDQ,     ZYDIS_MNEMONIC_PSUBB,
        ZYDIS_MNEMONIC_PSUBW,      ZYDIS_MNEMONIC_PSUBD,     ZYDIS_MNEMONIC_PSUBQ,
        ZYDIS_MNEMONIC_PCMPEQB,    ZYDIS_MNEMONIC_PCMPEQW,   ZYDIS_MNEMONIC_PCMPEQD,
        ZYDIS_MNEMONIC_PCMPGTB,    ZYDIS_MNEMONIC_PCMPGTW,   ZYDIS_MNEMONIC_PCMPGTD,
        ZYDIS_MNEMONIC_PUNPCKLBW,  ZYDIS_MNEMONIC_PUNPCKLWD, ZYDIS_MNEMONIC_PUNPCKLDQ,
        ZYDIS_MNEMONIC_PUNPCKLQDQ, ZYDIS_MNEMONIC_PUNPCKHBW, ZYDIS_MNEMONIC_PUNPCKHWD,
        ZYDIS_MNEMONIC_PUNPCKHDQ,  ZYDIS_MNEMONIC_PUNPCKHQDQ};
    switch (below(7)) {
      case 0:
      case 1: {
        ZydisMnemonic m = kBinary[below(sizeof(kBinary) / sizeof(kBinary[0]))];
        // Legacy SSE memory operands must be 16-byte aligned (#GP otherwise).
        auto src = chance(50) ? opReg(pickXmm()) : mem(u, 16, 0, sseAlign());
        u.insns.push_back(insn(m, {opReg(pickXmm()), src}));
        return true;
      }
      case 2: {
        auto src = chance(50) ? opReg(pickXmm()) : mem(u, 16, 0, sseAlign());
        u.insns.push_back(insn(ZYDIS_MNEMONIC_PSHUFD, {opReg(pickXmm()), src, opImm(below(256))}));
        return true;
      }
      case 3: {
        bool aligned = chance(30);
        auto mo = mem(u, 16, 0, aligned ? sseAlign() : 1);
        ZydisMnemonic m = aligned ? ZYDIS_MNEMONIC_MOVDQA : ZYDIS_MNEMONIC_MOVDQU;
        if (chance(50)) {
          u.insns.push_back(insn(m, {opReg(pickXmm()), mo}));
        } else {
          u.insns.push_back(insn(m, {mo, opReg(pickXmm())}));
        }
        return true;
      }
      case 4:
        u.insns.push_back(insn(ZYDIS_MNEMONIC_PMOVMSKB,
                               {opReg(pickReg(is64() && chance(50) ? 64 : 32)), opReg(pickXmm())}));
        return true;
      case 5: {
        bool q = is64() && chance(50);
        int b = q ? 64 : 32;
        ZydisMnemonic m = q ? ZYDIS_MNEMONIC_MOVQ : ZYDIS_MNEMONIC_MOVD;
        auto rm = regOrMem(u, b);
        if (chance(50)) {
          u.insns.push_back(insn(m, {opReg(pickXmm()), rm}));
        } else {
          u.insns.push_back(insn(m, {rm, opReg(pickXmm())}));
        }
        return true;
      }
      default: {
        auto src = chance(50) ? opReg(pickXmm()) : mem(u, 8, 0);
        u.insns.push_back(insn(ZYDIS_MNEMONIC_MOVQ, {opReg(pickXmm()), src}));
        return true;
      }
    }
  }

  bool genBranch(Unit& u) {
    // A short forward branch over 1-3 simple units.
    Insn br;
    int k = below(10);
    uint32_t reads = 0;
    if (k < 6) {
      const Cond& c = kConds[below(16)];
      reads = c.reads;
      br = insn(c.jcc, {opImm(0)}, reads);
    } else if (k == 6) {
      br = insn(ZYDIS_MNEMONIC_JMP, {opImm(0)});
    } else if (k == 7) {
      bool alt = chance(30);
      ZydisMnemonic m = bits_ == 64   ? (alt ? ZYDIS_MNEMONIC_JECXZ : ZYDIS_MNEMONIC_JRCXZ)
                        : bits_ == 32 ? (alt ? ZYDIS_MNEMONIC_JCXZ : ZYDIS_MNEMONIC_JECXZ)
                                      : (alt ? ZYDIS_MNEMONIC_JECXZ : ZYDIS_MNEMONIC_JCXZ);
      br = insn(m, {opImm(0)});
      if (chance(50)) setReg(u, 1, 0, bits_ == 64 ? 64 : 32);
    } else {
      ZydisMnemonic m = pick({ZYDIS_MNEMONIC_LOOP, ZYDIS_MNEMONIC_LOOPE, ZYDIS_MNEMONIC_LOOPNE});
      if (m != ZYDIS_MNEMONIC_LOOP) reads = kZF;
      br = insn(m, {opImm(0)}, reads);
      if (chance(30))
        br.req.address_size_hint = bits_ == 32   ? ZYDIS_ADDRESS_SIZE_HINT_16
                                   : bits_ == 64 ? ZYDIS_ADDRESS_SIZE_HINT_32
                                                 : ZYDIS_ADDRESS_SIZE_HINT_32;
      if (chance(50)) setReg(u, 1, below(3), bits_ == 64 ? 64 : 32);
    }
    br.req.branch_type = ZYDIS_BRANCH_TYPE_SHORT;
    br.req.branch_width = ZYDIS_BRANCH_WIDTH_8;
    ensureDefined(u, reads);
    // Preludes (CMP, MOV ECX) stay outside: make them their own unit.
    if (!u.insns.empty()) {
      Unit pre;
      pre.insns = u.insns;
      preUnits_.push_back(pre);
      u.insns.clear();
    }
    u.branch = true;
    u.insns.push_back(br);
    uint32_t saved = undefined_;
    int n = 1 + below(3);
    for (int i = 0; i < n; ++i) {
      Unit body;
      if (!genUnit(body, /*inBranch=*/true)) continue;
      auto e = encodeUnits({body}, layout_.code + 0x800, undefined_);
      if (!e.ok()) continue;
      undefined_ = e->undefinedAtEnd;
      u.insns.insert(u.insns.end(), body.insns.begin(), body.insns.end());
    }
    inBranch_ = false;
    undefined_ = saved;
    return u.insns.size() > 1;
  }

  // Whether any instruction of `e` writes (E/R)BP or BPL, explicitly or not.
  bool writesFramePointer(const Encoded& e) const {
    ZydisDecoder dec;
    ZydisDecoderInit(&dec, zydisMode(o_.mode),
                     is64()        ? ZYDIS_STACK_WIDTH_64
                     : bits_ == 32 ? ZYDIS_STACK_WIDTH_32
                                   : ZYDIS_STACK_WIDTH_16);
    for (const auto& pos : e.insns) {
      ZydisDecodedInstruction in;
      ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
      if (ZYAN_FAILED(
              ZydisDecoderDecodeFull(&dec, e.bytes.data() + pos.offset, pos.length, &in, ops))) {
        return true;
      }
      for (int k = 0; k < in.operand_count; ++k) {
        if (ops[k].type != ZYDIS_OPERAND_TYPE_REGISTER) continue;
        if (!(ops[k].actions & ZYDIS_OPERAND_ACTION_MASK_WRITE)) continue;
        ZydisRegister r = ZydisRegisterGetLargestEnclosing(zydisMode(o_.mode), ops[k].reg.value);
        if (r == ZYDIS_REGISTER_RBP || r == ZYDIS_REGISTER_EBP || r == ZYDIS_REGISTER_BP) {
          return true;
        }
      }
    }
    return false;
  }

  // CALL to a subroutine of 0-2 simple units (optionally inside an
  // ENTER n, 0 / LEAVE frame) that returns with RET; then a short JMP past it.
  bool genCall(Unit& u) {
    int w = bits_ / 8;
    int frame = chance(40) ? 8 * below(8) : -1;  // ENTER size, -1: no ENTER/LEAVE
    int excursion = 2 * w + (frame > 0 ? frame : 0);
    if (!stackRoom(excursion, excursion)) return false;
    Insn call = insn(ZYDIS_MNEMONIC_CALL, {opImm(0)});
    call.req.branch_type = ZYDIS_BRANCH_TYPE_NEAR;
    call.req.branch_width = bits_ == 16 ? ZYDIS_BRANCH_WIDTH_16 : ZYDIS_BRANCH_WIDTH_32;
    Insn jmp = insn(ZYDIS_MNEMONIC_JMP, {opImm(0)});
    jmp.req.branch_type = ZYDIS_BRANCH_TYPE_SHORT;
    jmp.req.branch_width = ZYDIS_BRANCH_WIDTH_8;
    u.call = true;
    const uint32_t saved = undefined_;
    u.insns.push_back(call);
    u.insns.push_back(jmp);
    if (frame >= 0) {
      u.insns.push_back(raw({0xC8, static_cast<uint8_t>(frame), 0x00, 0x00}));  // ENTER frame, 0
    }
    int n = below(3);
    memLimit_ = 0x1000;  // the data page only
    for (int i = 0; i < n; ++i) {
      Unit body;
      if (!genUnit(body, /*inBranch=*/true)) continue;
      auto e = encodeUnits({body}, layout_.code + 0x800, undefined_);
      if (!e.ok()) continue;
      // LEAVE restores RSP from RBP: the frame's body must leave RBP alone.
      if (frame >= 0 && writesFramePointer(*e)) continue;
      undefined_ = e->undefinedAtEnd;
      u.insns.insert(u.insns.end(), body.insns.begin(), body.insns.end());
    }
    inBranch_ = false;
    memLimit_ = kMemSize;
    undefined_ = saved;                              // commit() recomputes it from the encoded unit
    if (frame >= 0) u.insns.push_back(raw({0xC9}));  // LEAVE
    u.insns.push_back(raw({0xC3}));                  // RET
    pushed_ += excursion;
    popped_ += excursion;
    return true;
  }

  bool genMisc(Unit& u) {
    if (chance(40)) return genCall(u);
    if (chance(50)) {
      // XLAT: AL = [BX + AL].
      uint64_t base = layout_.data + below(kMemSize - 256);
      setReg(u, 3, base, bits_ == 64 ? 64 : 32);
      std::vector<uint8_t> bytes;
      if (is64() && chance(30)) bytes.push_back(0x48);
      bytes.push_back(0xD7);
      u.insns.push_back(raw(bytes));
      return true;
    }
    return genFlagOps(u);
  }

  // Real mode only (every segment register holds the same selector, so
  // copying one into another changes nothing but is fully exercised):
  // MOV r/m16, Sreg; PUSH Sreg; POP Sreg of what was just pushed; MOV Sreg, r16.
  bool genSegmentMoves(Unit& u) {
    static const ZydisRegister kSeg[] = {ZYDIS_REGISTER_ES, ZYDIS_REGISTER_CS, ZYDIS_REGISTER_SS,
                                         ZYDIS_REGISTER_DS, ZYDIS_REGISTER_FS, ZYDIS_REGISTER_GS};
    ZydisRegister from = kSeg[below(6)];
    ZydisRegister to = kSeg[below(6)];
    if (to == ZYDIS_REGISTER_CS || to == ZYDIS_REGISTER_SS)
      to = ZYDIS_REGISTER_ES;  // no MOV/POP CS; SS would shadow
    switch (below(3)) {
      case 0:
        u.insns.push_back(insn(ZYDIS_MNEMONIC_MOV, {regOrMem(u, 16), opReg(from)}));
        return true;
      case 1: {
        if (!stackRoom(2, 2)) return false;
        u.insns.push_back(insn(ZYDIS_MNEMONIC_PUSH, {opReg(from)}));
        u.insns.push_back(insn(ZYDIS_MNEMONIC_POP, {opReg(to)}));
        pushed_ += 2;
        popped_ += 2;
        return true;
      }
      default: {
        ZydisRegister r = pickReg(16);
        u.insns.push_back(insn(ZYDIS_MNEMONIC_MOV, {opReg(r), opReg(from)}));
        u.insns.push_back(insn(ZYDIS_MNEMONIC_MOV, {opReg(to), opReg(r)}));
        return true;
      }
    }
  }

  // 16/32-bit only: BCD adjustment, PUSHA/POPA.
  bool genLegacyOnly(Unit& u) {
    switch (below(7)) {
      case 0:
      case 1:
        ensureDefined(u, kAF | kCF);
        u.insns.push_back(raw({below(2) ? uint8_t{0x27} : uint8_t{0x2F}}, kAF | kCF,
                              kCF | kAF | kSF | kZF | kPF, kOF));  // DAA/DAS
        return true;
      case 2:
        ensureDefined(u, kAF);
        u.insns.push_back(raw({below(2) ? uint8_t{0x37} : uint8_t{0x3F}}, kAF, kAF | kCF,
                              kOF | kSF | kZF | kPF));  // AAA/AAS
        return true;
      case 3: {
        // AAM/AAD imm8; AAM 0 raises #DE.
        bool aam = chance(50);
        int imm = chance(50) ? 10 : below(256);
        if (aam && imm == 0 && !o_.allowFaults) imm = 10;
        u.insns.push_back(raw({aam ? uint8_t{0xD4} : uint8_t{0xD5}, static_cast<uint8_t>(imm)}, 0,
                              kSF | kZF | kPF, kOF | kAF | kCF));
        return true;
      }
      case 4: return bits_ == 16 && chance(50) ? genSegmentMoves(u) : genMisc(u);
      default: {
        int w = chance(25) ? (bits_ == 16 ? 32 : 16) : bits_;
        int bytes = 8 * w / 8;
        std::vector<uint8_t> pre;
        if (w != bits_) pre.push_back(0x66);
        if (chance(50)) {
          if (!stackRoom(bytes, 0)) return false;
          pre.push_back(0x60);
          pushed_ += bytes;
        } else {
          if (!stackRoom(0, bytes)) return false;
          pre.push_back(0x61);
          popped_ += bytes;
        }
        u.insns.push_back(raw(pre));
        return true;
      }
    }
  }

  // Appends `u` (and any prelude units split off while building it) if it encodes.
  bool commit(Program& p, Unit& u) {
    std::vector<Unit> add = std::move(preUnits_);
    preUnits_.clear();
    add.push_back(u);
    auto e = encodeUnits(add, layout_.code + codeSize_, undefined_);
    if (!e.ok() || codeSize_ + e->bytes.size() > kMaxCodeSize - 64) {
      pushed_ = pushedCommitted_;
      popped_ = poppedCommitted_;
      return false;
    }
    codeSize_ += e->bytes.size();
    undefined_ = e->undefinedAtEnd;
    pushedCommitted_ = pushed_;
    poppedCommitted_ = popped_;
    for (auto& x : add) p.units.push_back(std::move(x));
    return true;
  }

  void makeInitialState(ArchState& s) {
    for (int i = 0; i < 16; ++i) s.gpr[i] = is64() ? interesting(64) : interesting(32);
    if (!is64()) {
      for (int i = 8; i < 16; ++i) s.gpr[i] = 0;
    }
    s.gpr[kSp] = layout_.data + kInitialStackOffset;
    s.rflags = flags::kFixed1 | flags::kIF | (next() & kAll) | (chance(25) ? flags::kDF : 0);
    for (auto& x : s.xmm) x.q = {interesting(64), interesting(64)};
    if (!is64()) {
      for (int i = 8; i < 16; ++i) s.xmm[i] = {};
    }
    for (uint64_t off = 0; off < kMemSize; off += 8) {
      uint64_t v = interesting(64);
      for (int i = 0; i < 8; ++i) s.mem[off + i] = static_cast<uint8_t>(v >> (8 * i));
    }
    s.rip = layout_.code;
    undefined_ = 0;
  }

  GeneratorOptions o_;
  std::mt19937_64 rng_;
  Layout layout_;
  int bits_;
  uint32_t undefined_ = 0;  // flags undefined at the end of the committed units
  bool inBranch_ = false;
  // Memory operands stay below data + memLimit_: inside a CALL the stack page
  // holds the return address (and ENTER's saved frame pointer), which a
  // random store must not hit.
  uint64_t memLimit_ = kMemSize;
  std::vector<Unit> preUnits_;
  uint64_t codeSize_ = 0;
  int pushed_ = 0, popped_ = 0;
  int pushedCommitted_ = 0, poppedCommitted_ = 0;
};

}  // namespace

TestCase generateTestCase(const GeneratorOptions& opts, uint64_t seed) {
  Generator g(opts, seed);
  return g.make(seed);
}

}  // namespace ttvm::difftest
