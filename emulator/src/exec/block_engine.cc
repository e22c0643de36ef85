// The fast engine (CpuEngine::kFast): the block cache, block translation and
// CpuImpl::runBlocks. See exec/block_cache.h for the design and the
// exactness argument; the reference is CpuImpl::runReference, which
// runBlocks calls for every step it does not run itself.
#include <algorithm>
#include <cstring>
#include <new>
#include <type_traits>

#include "alu/flags.h"

#include "exec/block_cache.h"
#include "exec/internals.h"

namespace ttvm {

// ------------------------------------------------------------ BlockCache

BlockCache::BlockCache() : index_(size_t{1} << kIndexBits, nullptr) {}
BlockCache::~BlockCache() = default;

bool BlockCache::reserve() {
  if (!ops_) ops_.reset(new BlockOp[kMaxOps]);
  if (opsUsed_ + kMaxBlockOps <= kMaxOps && blocks_.size() < kMaxBlocks && !jit_.nearlyFull())
    return false;
  flush();
  return true;
}

Block* BlockCache::publish(uint64_t phys, CpuMode m, uint32_t firstOp, uint16_t bytes) {
  auto b = std::make_unique<Block>();
  b->tag = tagOf(phys, m);
  b->phys = phys;
  b->firstOp = firstOp;
  b->numOps = static_cast<uint16_t>(opsUsed_ - firstOp);
  b->bytes = bytes;
  Block* raw = b.get();
  blocks_.push_back(std::move(b));
  index_[slot(phys)] = raw;
  byPage_[phys >> 12].push_back(raw);
  ++stats_.builds;
  return raw;
}

bool BlockCache::invalidate(uint64_t begin, uint64_t end) {
  bool any = false;
  for (uint64_t page = begin >> 12; page <= (end - 1) >> 12; ++page) {
    auto it = byPage_.find(page);
    if (it == byPage_.end()) continue;
    std::vector<Block*>& list = it->second;
    for (size_t k = 0; k < list.size();) {
      Block* b = list[k];
      if (b->phys < end && b->phys + b->bytes > begin) {
        if (index_[slot(b->phys)] == b) index_[slot(b->phys)] = nullptr;
        b->tag = 0;
        ++stats_.invalidations;
        any = true;
        list[k] = list.back();
        list.pop_back();
      } else {
        ++k;
      }
    }
  }
  return any;
}

void BlockCache::flush() {
  std::fill(index_.begin(), index_.end(), nullptr);
  byPage_.clear();
  blocks_.clear();
  opsUsed_ = 0;
  jit_.reset();
  ++stats_.flushes;
}

// ------------------------------------------------------------ translation

namespace {

int jccCondition(uint16_t mnemonic) {
  switch (mnemonic) {
    case ZYDIS_MNEMONIC_JO: return 0;
    case ZYDIS_MNEMONIC_JNO: return 1;
    case ZYDIS_MNEMONIC_JB: return 2;
    case ZYDIS_MNEMONIC_JNB: return 3;
    case ZYDIS_MNEMONIC_JZ: return 4;
    case ZYDIS_MNEMONIC_JNZ: return 5;
    case ZYDIS_MNEMONIC_JBE: return 6;
    case ZYDIS_MNEMONIC_JNBE: return 7;
    case ZYDIS_MNEMONIC_JS: return 8;
    case ZYDIS_MNEMONIC_JNS: return 9;
    case ZYDIS_MNEMONIC_JP: return 10;
    case ZYDIS_MNEMONIC_JNP: return 11;
    case ZYDIS_MNEMONIC_JL: return 12;
    case ZYDIS_MNEMONIC_JNL: return 13;
    case ZYDIS_MNEMONIC_JLE: return 14;
    case ZYDIS_MNEMONIC_JNLE: return 15;
    default: return -1;
  }
}

int aluOp(uint16_t mnemonic) {
  switch (mnemonic) {
    case ZYDIS_MNEMONIC_ADD: return static_cast<int>(AluOp::kAdd);
    case ZYDIS_MNEMONIC_SUB: return static_cast<int>(AluOp::kSub);
    case ZYDIS_MNEMONIC_AND: return static_cast<int>(AluOp::kAnd);
    case ZYDIS_MNEMONIC_OR: return static_cast<int>(AluOp::kOr);
    case ZYDIS_MNEMONIC_XOR: return static_cast<int>(AluOp::kXor);
    case ZYDIS_MNEMONIC_CMP: return static_cast<int>(AluOp::kCmp);
    case ZYDIS_MNEMONIC_TEST: return static_cast<int>(AluOp::kTest);
    default: return -1;
  }
}

// Instructions after which nothing in the same block can run: unconditional
// transfers and instructions that stop or trap.
bool endsBlock(uint16_t mnemonic) {
  switch (mnemonic) {
    case ZYDIS_MNEMONIC_JMP:
    case ZYDIS_MNEMONIC_RET:
    case ZYDIS_MNEMONIC_IRET:
    case ZYDIS_MNEMONIC_IRETD:
    case ZYDIS_MNEMONIC_IRETQ:
    case ZYDIS_MNEMONIC_HLT:
    case ZYDIS_MNEMONIC_UD0:
    case ZYDIS_MNEMONIC_UD1:
    case ZYDIS_MNEMONIC_UD2:
    case ZYDIS_MNEMONIC_INT:
    case ZYDIS_MNEMONIC_INT1:
    case ZYDIS_MNEMONIC_INT3:
    case ZYDIS_MNEMONIC_SYSRET:
    case ZYDIS_MNEMONIC_SYSEXIT: return true;
    default: return false;
  }
}

}  // namespace

// 32-bit code with segmentation (compatibility mode segments as protected
// mode does): what host code may run under flat segments.
bool isFlat32Mode(CpuMode m) {
  return m == CpuMode::kProtected32 || m == CpuMode::kCompatibility32;
}

namespace {

bool gpr16(const Operand& o) {
  return o.kind == OpKind::kGpr && o.reg < 16;
}

// The condition code of CMOVcc / SETcc (16 mnemonics in cc order), or -1.
constexpr uint16_t kCmovMnemonics[16] = {
    ZYDIS_MNEMONIC_CMOVO, ZYDIS_MNEMONIC_CMOVNO, ZYDIS_MNEMONIC_CMOVB,  ZYDIS_MNEMONIC_CMOVNB,
    ZYDIS_MNEMONIC_CMOVZ, ZYDIS_MNEMONIC_CMOVNZ, ZYDIS_MNEMONIC_CMOVBE, ZYDIS_MNEMONIC_CMOVNBE,
    ZYDIS_MNEMONIC_CMOVS, ZYDIS_MNEMONIC_CMOVNS, ZYDIS_MNEMONIC_CMOVP,  ZYDIS_MNEMONIC_CMOVNP,
    ZYDIS_MNEMONIC_CMOVL, ZYDIS_MNEMONIC_CMOVNL, ZYDIS_MNEMONIC_CMOVLE, ZYDIS_MNEMONIC_CMOVNLE};
constexpr uint16_t kSetMnemonics[16] = {
    ZYDIS_MNEMONIC_SETO, ZYDIS_MNEMONIC_SETNO, ZYDIS_MNEMONIC_SETB,  ZYDIS_MNEMONIC_SETNB,
    ZYDIS_MNEMONIC_SETZ, ZYDIS_MNEMONIC_SETNZ, ZYDIS_MNEMONIC_SETBE, ZYDIS_MNEMONIC_SETNBE,
    ZYDIS_MNEMONIC_SETS, ZYDIS_MNEMONIC_SETNS, ZYDIS_MNEMONIC_SETP,  ZYDIS_MNEMONIC_SETNP,
    ZYDIS_MNEMONIC_SETL, ZYDIS_MNEMONIC_SETNL, ZYDIS_MNEMONIC_SETLE, ZYDIS_MNEMONIC_SETNLE};
int conditionOf(uint16_t mnemonic, const uint16_t (&table)[16]) {
  for (int k = 0; k < 16; ++k)
    if (table[k] == mnemonic) return k;
  return -1;
}

// A byte register: 0..15 (SPL..DIL with REX) or AH..BH.
bool gpr8(const Operand& o) {
  return o.kind == OpKind::kGpr && o.size == 1 && o.reg <= regid::kBh;
}

// The forms only compiled code runs (64-bit mode and 32-bit protected
// mode), for an op classify() left generic.
void classifyHostOnly(BlockOp& op, CpuMode mode) {
  const Instr& i = op.instr;
  const bool is64 = mode == CpuMode::kLong64;
  const bool wide = i.opSize == 4 || i.opSize == 8;
  const Operand& d = i.op[0];
  const Operand& s = i.op[1];
  const bool memOk = !i.mem.agen;
  const bool sizedMem = i.opSize == 1 || i.opSize == 4 || i.opSize == 8;
  const bool wideDst = wide && gpr16(d) && d.size == i.opSize;
  op.a = d.reg;
  op.b = s.reg;
  switch (i.mnemonic) {
    case ZYDIS_MNEMONIC_MOVZX:
      if (!wideDst || i.numOps != 2) return;
      if (s.kind == OpKind::kGpr && (gpr8(s) || (s.size == 2 && s.reg < 16))) {
        op.kind = FastKind::kMovzxRR;
        op.sub = static_cast<uint8_t>(s.size);
      } else if (s.kind == OpKind::kMem && s.size == 2 && memOk) {
        op.kind = FastKind::kMovzxRM16;
      }
      return;
    case ZYDIS_MNEMONIC_NOP:
      // 90 and 0F 1F /0 (the multi-byte NOP): nothing to do but retire.
      if (i.opcode == 0x90 || i.opcode == 0x1F) op.kind = FastKind::kNop;
      return;
    case ZYDIS_MNEMONIC_NEG:
    case ZYDIS_MNEMONIC_NOT:
      if (wideDst && i.numOps == 1) {
        op.kind = FastKind::kUnaryR;
        op.sub = i.mnemonic == ZYDIS_MNEMONIC_NEG ? 0 : 1;
      }
      return;
    case ZYDIS_MNEMONIC_JMP:
      if (i.numOps == 1 && gpr16(d) && d.size == (is64 ? 8 : 4) && i.opSize == d.size)
        op.kind = FastKind::kJmpR;
      return;
    // 32-bit code's stack forms (64-bit mode's are classify()'s).
    case ZYDIS_MNEMONIC_PUSH:
      if (!is64 && i.opSize == 4 && i.numOps == 1 && gpr16(d)) op.kind = FastKind::kPush32;
      return;
    case ZYDIS_MNEMONIC_POP:
      if (!is64 && i.opSize == 4 && i.numOps == 1 && gpr16(d)) op.kind = FastKind::kPop32;
      return;
    case ZYDIS_MNEMONIC_CALL:
      if (!is64 && i.opSize == 4 && i.numOps == 1 && d.kind == OpKind::kImm)
        op.kind = FastKind::kCall32;
      return;
    case ZYDIS_MNEMONIC_RET:
      if (!is64 && i.opSize == 4 && i.numOps == 0 && i.opcode == 0xC3) op.kind = FastKind::kRet32;
      return;
    case ZYDIS_MNEMONIC_ROL:
    case ZYDIS_MNEMONIC_ROR:
      if (wideDst && i.numOps == 2 && s.kind == OpKind::kImm) {
        op.kind = FastKind::kRotRI;
        op.sub = i.mnemonic == ZYDIS_MNEMONIC_ROL ? 0 : 1;
      }
      return;
    case ZYDIS_MNEMONIC_IMUL:
      if (!wideDst || !gpr16(s) || s.size != i.opSize) return;
      if (i.numOps == 2) op.kind = FastKind::kImulRR;
      if (i.numOps == 3 && i.op[2].kind == OpKind::kImm) op.kind = FastKind::kImulRRI;
      return;
    case ZYDIS_MNEMONIC_MUL:
      if (wideDst && i.numOps == 1) op.kind = FastKind::kMulR;
      return;
    case ZYDIS_MNEMONIC_ADC:
    case ZYDIS_MNEMONIC_SBB:
      if (!wideDst || i.numOps != 2) return;
      op.sub = i.mnemonic == ZYDIS_MNEMONIC_ADC ? 0 : 1;
      if (gpr16(s) && s.size == i.opSize) op.kind = FastKind::kAdcSbbRR;
      if (s.kind == OpKind::kImm) op.kind = FastKind::kAdcSbbRI;
      return;
    case ZYDIS_MNEMONIC_MOV:
      if (i.numOps != 2 || d.kind != OpKind::kMem || !memOk) return;
      if (i.opSize == 1 && gpr8(s)) op.kind = FastKind::kStoreR8;
      if (sizedMem && s.kind == OpKind::kImm) op.kind = FastKind::kStoreImm;
      return;
    case ZYDIS_MNEMONIC_CMP:
    case ZYDIS_MNEMONIC_TEST:
      if (i.numOps == 2 && d.kind == OpKind::kMem && memOk && sizedMem && s.kind == OpKind::kImm) {
        op.kind = FastKind::kCmpTestMI;
        op.sub = static_cast<uint8_t>(aluOp(i.mnemonic));
        return;
      }
      [[fallthrough]];
    default:
      // ALU with a memory destination (read-modify-write, or CMP/TEST).
      if (const int a = aluOp(i.mnemonic); a >= 0 && wide && i.numOps == 2 &&
                                           d.kind == OpKind::kMem && memOk && d.size == i.opSize) {
        op.sub = static_cast<uint8_t>(a);
        if (gpr16(s) && s.size == i.opSize) op.kind = FastKind::kAluMR;
        if (s.kind == OpKind::kImm && a != static_cast<int>(AluOp::kCmp) &&
            a != static_cast<int>(AluOp::kTest))
          op.kind = FastKind::kAluMI;
        return;
      }
      if (const int cc = conditionOf(i.mnemonic, kCmovMnemonics);
          cc >= 0 && wideDst && i.numOps == 2 && gpr16(s) && s.size == i.opSize) {
        op.kind = FastKind::kCmovRR;
        op.sub = static_cast<uint8_t>(cc);
      }
      if (const int cc = conditionOf(i.mnemonic, kSetMnemonics);
          cc >= 0 && i.numOps == 1 && gpr8(d)) {
        op.kind = FastKind::kSetccR;
        op.sub = static_cast<uint8_t>(cc);
      }
      return;
  }
}

// Picks the fast form of `i` (decoded for `mode`), or kGeneric.
void classify(BlockOp& op, CpuMode mode) {
  const Instr& i = op.instr;
  op.kind = FastKind::kGeneric;
  if (i.prefixes & (prefix::kLock | prefix::kRep | prefix::kRepne)) return;
  const bool wide = i.opSize == 4 || i.opSize == 8;
  const bool is64 = mode == CpuMode::kLong64;
  // Relative jumps whose target is (next RIP + displacement) & ipMask_.
  const bool relJumps = is64 || (isFlat32Mode(mode) && i.opSize == 4);
  const Operand& d = i.op[0];
  const Operand& s = i.op[1];
  const bool memOk = !i.mem.agen;
  if (const int cc = jccCondition(i.mnemonic); cc >= 0) {
    if (relJumps && i.numOps == 1 && d.kind == OpKind::kImm) {
      op.kind = FastKind::kJcc;
      op.a = static_cast<uint8_t>(cc);
    }
    return;
  }
  switch (i.mnemonic) {
    case ZYDIS_MNEMONIC_MOV:
      if (!wide || i.numOps != 2 || d.size != i.opSize || s.size != i.opSize) return;
      if (gpr16(d) && gpr16(s)) op.kind = FastKind::kMovRR;
      if (gpr16(d) && s.kind == OpKind::kImm) op.kind = FastKind::kMovRI;
      if (gpr16(d) && s.kind == OpKind::kMem && memOk) op.kind = FastKind::kMovRM;
      if (d.kind == OpKind::kMem && memOk && gpr16(s)) op.kind = FastKind::kMovMR;
      break;
    case ZYDIS_MNEMONIC_MOVZX:
      if (wide && i.numOps == 2 && gpr16(d) && s.kind == OpKind::kMem && s.size == 1 && memOk)
        op.kind = FastKind::kMovzxRM8;
      break;
    case ZYDIS_MNEMONIC_LEA:
      if (wide && i.numOps == 2 && gpr16(d) && s.kind == OpKind::kMem) op.kind = FastKind::kLea;
      break;
    case ZYDIS_MNEMONIC_INC:
    case ZYDIS_MNEMONIC_DEC:
      if (wide && i.numOps == 1 && gpr16(d)) {
        op.kind = FastKind::kIncDecR;
        op.sub = i.mnemonic == ZYDIS_MNEMONIC_INC ? 0 : 1;
      }
      break;
    case ZYDIS_MNEMONIC_SHL:
    case ZYDIS_MNEMONIC_SHR:
    case ZYDIS_MNEMONIC_SAR:
      if (wide && i.numOps == 2 && gpr16(d) && s.kind == OpKind::kImm) {
        op.kind = FastKind::kShiftRI;
        op.sub = i.mnemonic == ZYDIS_MNEMONIC_SHL ? 0 : i.mnemonic == ZYDIS_MNEMONIC_SHR ? 1 : 2;
      }
      break;
    case ZYDIS_MNEMONIC_JMP:
      if (relJumps && i.numOps == 1 && d.kind == OpKind::kImm) op.kind = FastKind::kJmpRel;
      break;
    case ZYDIS_MNEMONIC_CALL:
      if (is64 && i.opSize == 8 && i.numOps == 1 && d.kind == OpKind::kImm)
        op.kind = FastKind::kCallRel;
      break;
    case ZYDIS_MNEMONIC_RET:
      if (is64 && i.opSize == 8 && i.numOps == 0 && i.opcode == 0xC3) op.kind = FastKind::kRet;
      break;
    case ZYDIS_MNEMONIC_PUSH:
      if (is64 && i.opSize == 8 && i.numOps == 1 && gpr16(d)) op.kind = FastKind::kPushR;
      break;
    case ZYDIS_MNEMONIC_POP:
      if (is64 && i.opSize == 8 && i.numOps == 1 && gpr16(d)) op.kind = FastKind::kPopR;
      break;
    default: {
      const int a = aluOp(i.mnemonic);
      if (a < 0 || !wide || i.numOps != 2 || !gpr16(d) || d.size != i.opSize) return;
      op.sub = static_cast<uint8_t>(a);
      if (gpr16(s) && s.size == i.opSize) op.kind = FastKind::kAluRR;
      if (s.kind == OpKind::kImm) op.kind = FastKind::kAluRI;
      if (s.kind == OpKind::kMem && memOk && s.size == i.opSize) op.kind = FastKind::kAluRM;
      break;
    }
  }
  op.a = d.reg;
  op.b = s.reg;
}

}  // namespace

Block* CpuImpl::buildBlock(uint64_t lin, uint64_t phys) {
  if (!isRamRange(phys, 1)) return nullptr;
  BlockCache& bc = *blocks_;
  if (bc.reserve()) ++linkEpoch_;  // flushed: every chain link is stale
  const uint32_t firstOp = static_cast<uint32_t>(bc.opsUsed());
  const ZydisDecoder& dec = in_->decoders[static_cast<int>(mode_)];
  const uint64_t pageEnd = (phys | 0xFFF) + 1;
  uint64_t at = phys;
  unsigned n = 0;
  while (n < BlockCache::kMaxBlockOps && at < pageEnd) {
    const unsigned have = static_cast<unsigned>(std::min<uint64_t>(15, pageEnd - at));
    if (!isRamRange(at, have)) break;
    const uint8_t* bytes = mem_.ram.data() + at;
    Instr out;
    bool needMore = false, tooLong = false;
    // Undecodable, page-crossing and KVM forced-emulation instructions end
    // the block before them: the reference path runs (and faults on) them.
    if (!decodeInstr(in_->decoders[static_cast<int>(mode_)], mode_, bytes, have, out, needMore,
                     tooLong))
      break;
    if (skipKvmFep_ && out.mnemonic == ZYDIS_MNEMONIC_UD2 && have >= 5 && bytes[2] == 'k' &&
        bytes[3] == 'v' && bytes[4] == 'm')
      break;
    BlockOp& op = bc.appendOp();
    op.instr = out;
    classify(op, mode_);
    if (op.kind == FastKind::kGeneric && (mode_ == CpuMode::kLong64 || isFlat32Mode(mode_)) &&
        !(out.prefixes & (prefix::kLock | prefix::kRep | prefix::kRepne)))
      classifyHostOnly(op, mode_);
    markCode(at, out.length);
    at += out.length;
    ++n;
    if (endsBlock(out.mnemonic)) break;
  }
  (void)dec;
  if (n == 0) return nullptr;
  Block* b = bc.publish(phys, mode_, firstOp, static_cast<uint16_t>(at - phys));
  (void)lin;
  return b;
}

// Host code for a 64-bit or 32-bit (isFlat32Mode) block entered for the
// kCompileAfter-th time, for the linear RIP and privilege of that entry
// (exec/block_jit.h): code run only a few times (most of a kernel's boot) is
// not worth compiling. 32-bit code is compiled for flat segments and
// entered only while they are (flatSegments32()).
void CpuImpl::maybeCompile(Block* b) {
  BlockCache& bc = *blocks_;
  if (b->jitTried || (mode_ != CpuMode::kLong64 && !flatSegments32()) || !BlockJit::available() ||
      ++b->entries < BlockCache::kCompileAfter || bc.jit().nearlyFull())
    return;
  b->jitTried = true;
  b->jit = bc.jit().compile(bc.ops() + b->firstOp, b->numOps, s_.rip, cpl_ == 3,
                            mode_ != CpuMode::kLong64, b, b->jitBody);
  b->jitRip = s_.rip;
  b->jitUser = cpl_ == 3;
  if (b->jit != nullptr) ++bc.counters().compiled;
}

bool CpuImpl::flatSegments32() const {
  if (!isFlat32Mode(mode_) || stackSize_ != 4) return false;
  for (unsigned k = 0; k < 4; ++k)
    if (s_.seg[k].base != 0 || s_.seg[k].limit != 0xFFFFFFFFu) return false;
  return segFast_[0] && segWritable_[0] && segFast_[2] && segWritable_[2] && segFast_[3] &&
         segWritable_[3];
}

// The block at CS:RIP through the TLB, translated on a miss; nullptr where
// the reference path must run the next step (a TLB miss: its fetch walks the
// page tables and faults exactly as the reference does; not RAM).
Block* CpuImpl::lookupBlock() {
  uint64_t lin;
  if (mode_ == CpuMode::kLong64) {
    lin = s_.rip;
  } else {
    lin = (s_.seg[1].base + s_.rip) & 0xFFFFFFFFull;
  }
  const TlbEntry& t = tlb_[(lin >> 12) & (kTlbSize - 1)];
  if (t.tag != (lin >> 12) || !(t.allowed & tlbperm::bit(Access::kExec, cpl_ == 3))) return nullptr;
  const uint64_t phys = t.physPage | (lin & 0xFFF);
  Block* b = blocks_->find(phys, mode_);
  if (b == nullptr) b = buildBlock(lin, phys);
  return b;
}

// ------------------------------------------------------------ lazy flags
//
// The arithmetic flags of the last ADD/SUB/CMP/logic fast op are kept as its
// operands and result, and RFLAGS is brought up to date (by the same pure
// functions of alu/flags.h the handlers use) before anything else can read
// it: a handler call, a condition the lazy form cannot answer, a fault, a
// call into the environment, leaving the block loop.
namespace {

template <class T>
uint64_t lazyFlagsOf(const LazyFlags& l, uint64_t rf) {
  switch (l.op) {
    case 1: return alu::add<T>(T(l.a), T(l.b), rf).rflags;
    case 2: return alu::sub<T>(T(l.a), T(l.b), rf).rflags;
    default: return alu::logic<T>(T(l.r), rf).rflags;
  }
}

}  // namespace

void materialize(LazyFlags& l, uint64_t& rflags) {
  if (l.op == 0) return;
  rflags = l.size == 8 ? lazyFlagsOf<uint64_t>(l, rflags) : lazyFlagsOf<uint32_t>(l, rflags);
  l.op = 0;
}

namespace {

// Condition `cc` from the lazy form where it is cheap: -1 = not known here.
template <class T>
int lazyCondition(const LazyFlags& l, unsigned cc) {
  using S = std::make_signed_t<T>;
  const T a = T(l.a), b = T(l.b), r = T(l.r);
  bool v;
  switch (cc >> 1) {
    case 2: v = r == 0; break;    // Z
    case 4: v = S(r) < 0; break;  // S
    case 1:                       // B
      if (l.op == 2)
        v = a < b;
      else if (l.op == 3)
        v = false;
      else
        return -1;
      break;
    case 3:  // BE
      if (l.op == 2)
        v = a <= b;
      else if (l.op == 3)
        v = r == 0;
      else
        return -1;
      break;
    case 6:  // L
      if (l.op == 2)
        v = S(a) < S(b);
      else if (l.op == 3)
        v = S(r) < 0;
      else
        return -1;
      break;
    case 7:  // LE
      if (l.op == 2)
        v = S(a) <= S(b);
      else if (l.op == 3)
        v = r == 0 || S(r) < 0;
      else
        return -1;
      break;
    default: return -1;
  }
  return (cc & 1) ? !v : v;
}

template <class T>
inline T aluApply(AluOp op, T a, T b, LazyFlags& l) {
  T r;
  switch (op) {
    case AluOp::kAdd:
      r = T(a + b);
      l.op = 1;
      break;
    case AluOp::kSub:
    case AluOp::kCmp:
      r = T(a - b);
      l.op = 2;
      break;
    case AluOp::kAnd:
    case AluOp::kTest:
      r = T(a & b);
      l.op = 3;
      break;
    case AluOp::kOr:
      r = T(a | b);
      l.op = 3;
      break;
    default:
      r = T(a ^ b);
      l.op = 3;
      break;
  }
  l.size = sizeof(T);
  l.a = a;
  l.b = b;
  l.r = r;
  return r;
}

}  // namespace

// ------------------------------------------------------------ memory
//
// The inline fast path of readMem/writeMem for 64-bit mode (no segment
// limits; FS/GS bases; a TLB hit is canonical since the TLB holds only
// canonical pages and the access stays inside the page), with the flags
// left lazy. Anything else brings RFLAGS up to date and takes the
// reference accessor, which faults, walks and notifies exactly as always.

template <typename T>
[[gnu::always_inline]] inline bool CpuImpl::blockReadAt(unsigned seg, uint64_t ea, T& out,
                                                        LazyFlags& lazy) {
  if (__builtin_expect(mode_ == CpuMode::kLong64 && !(s_.rflags & flags::kAC), 1)) {
    const uint64_t lin = ea + ((seg >= 4) ? s_.seg[seg].base : 0);
    const TlbEntry& e = tlb_[(lin >> 12) & (kTlbSize - 1)];
    if (__builtin_expect(e.tag == (lin >> 12) &&
                             (e.allowed & tlbperm::bit(Access::kRead, cpl_ == 3)) &&
                             (lin & 0xFFF) <= 4096 - sizeof(T),
                         1)) {
      std::memcpy(&out, e.host + (lin & 0xFFF), sizeof(T));
      return true;
    }
  }
  materialize(lazy, s_.rflags);
  blockSlow_ = true;
  exc_.valid = false;
  return readMem<T>(seg, ea, out);
}

template <typename T>
[[gnu::always_inline]] inline bool CpuImpl::blockWriteAt(unsigned seg, uint64_t ea, T v,
                                                         LazyFlags& lazy) {
  if (__builtin_expect(mode_ == CpuMode::kLong64 && !(s_.rflags & flags::kAC), 1)) {
    const uint64_t lin = ea + ((seg >= 4) ? s_.seg[seg].base : 0);
    const TlbEntry& e = tlb_[(lin >> 12) & (kTlbSize - 1)];
    if (__builtin_expect(e.tag == (lin >> 12) &&
                             (e.allowed & tlbperm::bit(Access::kWrite, cpl_ == 3)) &&
                             (lin & 0xFFF) <= 4096 - sizeof(T),
                         1)) {
      std::memcpy(e.host + (lin & 0xFFF), &v, sizeof(T));
      return true;
    }
  }
  materialize(lazy, s_.rflags);
  blockSlow_ = true;
  exc_.valid = false;
  return writeMem<T>(seg, ea, v);
}

// ------------------------------------------------------------ the loop

bool CpuImpl::eventDue(uint32_t h) {
  return (h != kEventHintMaskableOnly && !s_.pending.nmiBlocked && env_.nmiPending()) ||
         ((s_.rflags & flags::kIF) && env_.interruptPending());
}

bool CpuImpl::runUnusual() const {
  return blocksSlow_ || s_.pending.halted || s_.pending.pendingDr6 ||
         s_.pending.shadow != InterruptShadow::kNone || (s_.rflags & (flags::kTF | flags::kRF)) ||
         skipBreakpoint_;
}

// The index of the first op of `b` (entered at the current RIP) that a
// debugger breakpoint is on, linear or physical; kMaxBlockOps if none. step()
// checks the same addresses before each instruction (atDebuggerBreakpoint).
unsigned CpuImpl::breakpointOffset(const Block* b) const {
  const uint64_t lin =
      mode_ == CpuMode::kLong64 ? s_.rip : ((s_.seg[1].base + s_.rip) & 0xFFFFFFFFull);
  uint64_t first = ~0ull;  // the lowest breakpointed byte offset inside the block
  auto it = std::lower_bound(linearBreakpoints_.begin(), linearBreakpoints_.end(), lin);
  if (it != linearBreakpoints_.end() && *it < lin + b->bytes) first = *it - lin;
  if (hasPhysicalBreakpoints_) {
    for (const DebuggerBreakpoint& bp : in_->breakpoints)
      if (bp.physical && bp.address >= b->phys && bp.address < b->phys + b->bytes)
        first = std::min(first, bp.address - b->phys);
  }
  if (first == ~0ull) return BlockCache::kMaxBlockOps;
  // Ops are contiguous from the block's start; a breakpoint inside an
  // instruction's bytes (never reached as an RIP) ends the block after it.
  const BlockOp* op = blocks_->ops() + b->firstOp;
  uint64_t at = 0;
  unsigned k = 0;
  while (k < b->numOps && at < first) at += op[k++].instr.length;
  return k;
}

StepResult CpuImpl::runBlocks(uint64_t maxSteps) {
  if (!blocks_) blocks_ = std::make_unique<BlockCache>();
  const uint64_t before = s_.steps;
  const StepResult r = runBlocksLoop(maxSteps);
  blocks_->counters().steps += s_.steps - before;
  return r;
}

StepResult CpuImpl::runBlocksLoop(uint64_t maxSteps) {
  BlockCache& bc = *blocks_;
  EngineStats& st = bc.counters();
  static const volatile uint32_t kAlwaysAsk = 1;
  const volatile uint32_t* hint = env_.eventHint();
  if (hint == nullptr) hint = &kAlwaysAsk;
  StepResult r;
  Block* prev = nullptr;
  // The last block ended after fast forms only, with no slow memory access
  // and the hint clear: nothing run() checks at a boundary can have changed.
  bool clean = false;
  uint64_t n = 0;
  LazyFlags lazy;
  // Debugger breakpoints end a block before the instruction they are on
  // (breakpointOffset); host code then runs only blocks without one.
  const bool breakpointsArmed = !linearBreakpoints_.empty() || hasPhysicalBreakpoints_;
  // As step() does at each step's start: a hit is reported by the step that
  // makes it (a debugger read between two runs may have left one recorded).
  in_->watchHit = false;
  while (n < maxSteps) {
    // The block's first instruction: where run() would take its fast path.
    Block* b = nullptr;
    // Ops of the block that run before a debugger breakpoint it holds.
    unsigned stopAt = BlockCache::kMaxBlockOps;
    if (clean || !runUnusual()) {
      const uint32_t h = clean ? 0 : *hint;
      if (h == 0 || !eventDue(h)) {
        const uint64_t key = s_.seg[1].base + s_.rip;
        if (prev != nullptr) {
          for (const BlockLink& l : prev->link) {
            if (l.rip == key && l.epoch == linkEpoch_) {
              b = l.to;
              ++st.chained;
              break;
            }
          }
        }
        if (b == nullptr) {
          const bool okRip =
              mode_ == CpuMode::kLong64 ? isCanonical(s_.rip) : s_.rip <= s_.seg[1].limit;
          const uint64_t flushes = st.flushes;
          if (okRip) b = lookupBlock();
          if (st.flushes != flushes) prev = nullptr;  // the cache was flushed under it
          if (b != nullptr && prev != nullptr) {
            prev->link[1] = prev->link[0];
            prev->link[0] = BlockLink{key, linkEpoch_, b};
          }
        }
        if (b != nullptr && mode_ != CpuMode::kLong64 &&
            (s_.rip + b->bytes - 1 > s_.seg[1].limit || s_.rip + b->bytes - 1 > ipMask_))
          b = nullptr;
        if (b != nullptr && breakpointsArmed) {
          stopAt = breakpointOffset(b);
          if (stopAt == 0) b = nullptr;  // step() reports it (or skips it once)
        }
      }
    }
    prev = b;
    if (b == nullptr) {
      materialize(lazy, s_.rflags);
      r = runReference(1);
      ++st.fallbackSteps;
      if (r.outcome != StepOutcome::kRetired) return r;
      ++n;
      continue;
    }
    ++st.blockRuns;
    const uint64_t epoch = linkEpoch_;
    // With the hint clear at entry, only a handler or a slow memory access
    // (MMIO, a device, a code write) can set it or bump the link epoch: the
    // checks between instructions run after those, and at every boundary
    // while the hint is set (the environment may answer differently at each
    // step). A stop requested by another thread is seen at the block's end.
    // As in runReference, the maskable-only hint counts as clear while IF=0
    // (a guest running with interrupts off while a request waits at the
    // PIC): no fast form or compiled op changes IF, and the handlers that do
    // are followed by the checks, which read the hint as it is.
    static_assert(kEventHintMaskableOnly == 2 && flags::kIF == 1u << 9);
    const uint32_t hintMask = ~(static_cast<uint32_t>(~s_.rflags >> 8) & kEventHintMaskableOnly);
    bool checkEach = (*hint & hintMask) != 0;
    unsigned first = 0;
    // Host code (exec/block_jit.h): it runs fast forms only and leaves
    // before any memory access off the TLB's fast path, so nothing it does
    // can set the hint or bump the link epoch; it stops where its prefix
    // ends or an access needs the reference accessors, and the ops from
    // there are interpreted below.
    if (b->jit == nullptr) maybeCompile(b);
    if (b->jit != nullptr && !checkEach && stopAt >= b->numOps && s_.rip == b->jitRip &&
        b->jitUser == (cpl_ == 3) && !(s_.rflags & flags::kAC) && maxSteps - n >= b->numOps &&
        (mode_ == CpuMode::kLong64 || flatSegments32())) {
      materialize(lazy, s_.rflags);
      JitContext ctx;
      ctx.s = &s_;
      ctx.tlb = tlb_;
      ctx.budget = std::min<uint64_t>(maxSteps - n, 1u << 30);
      ctx.epoch = linkEpoch_;
      ctx.cache = bc.jit().cache();
      ctx.hint = hint;
      ctx.hintMask = hintMask;
      // This entry is where compiled code that ends at this RIP may go on:
      // it was checked for breakpoints above, and the set of breakpoints
      // (like the translation a physical one depends on) is constant under
      // one link epoch (setBreakpoints bumps it).
      bc.jit().cache()[jitCacheSlot(s_.rip)] =
          JitCacheEntry{s_.rip, linkEpoch_, b->jitBody, b->numOps};
      const uint64_t res = b->jit(&ctx);
      const uint32_t retired = static_cast<uint32_t>(res);
      s_.steps += retired;
      n += retired;
      st.compiledSteps += retired;
      if (!(res & kJitResume)) {
        clean = (*hint & hintMask) == 0;  // another thread may have set it (a stop request)
        continue;
      }
      // Possibly another block's ops, if the code went on into it.
      b = static_cast<Block*>(ctx.resumeBlock);
      prev = b;
      first = static_cast<unsigned>((res >> 32) & 0xFFFF);
    }
    const BlockOp* op = bc.ops() + b->firstOp + first;
    const BlockOp* const end =
        bc.ops() + b->firstOp +
        std::min<uint64_t>(std::min<unsigned>(b->numOps, stopAt), first + (maxSteps - n));
    clean = false;
    blockSlow_ = false;
    for (;; ++op) {
      const Instr& i = op->instr;
      const uint64_t rip0 = s_.rip;
      ExecStatus es = ExecStatus::kNext;
      bool fast = true;
      switch (op->kind) {
        case FastKind::kMovRR:
          if (i.opSize == 8)
            writeGpr<uint64_t>(op->a, readGpr<uint64_t>(op->b));
          else
            writeGpr<uint32_t>(op->a, readGpr<uint32_t>(op->b));
          break;
        case FastKind::kMovRI:
          if (i.opSize == 8)
            writeGpr<uint64_t>(op->a, i.imm);
          else
            writeGpr<uint32_t>(op->a, static_cast<uint32_t>(i.imm));
          break;
        case FastKind::kMovRM:
          if (i.opSize == 8) {
            uint64_t v;
            if (!blockReadAt<uint64_t>(i.mem.seg, effectiveAddress(i), v, lazy)) {
              es = ExecStatus::kException;
              break;
            }
            writeGpr<uint64_t>(op->a, v);
          } else {
            uint32_t v;
            if (!blockReadAt<uint32_t>(i.mem.seg, effectiveAddress(i), v, lazy)) {
              es = ExecStatus::kException;
              break;
            }
            writeGpr<uint32_t>(op->a, v);
          }
          break;
        case FastKind::kMovMR: {
          const bool ok = i.opSize == 8 ? blockWriteAt<uint64_t>(i.mem.seg, effectiveAddress(i),
                                                                 readGpr<uint64_t>(op->b), lazy)
                                        : blockWriteAt<uint32_t>(i.mem.seg, effectiveAddress(i),
                                                                 readGpr<uint32_t>(op->b), lazy);
          if (!ok) es = ExecStatus::kException;
          break;
        }
        case FastKind::kMovzxRM8: {
          uint8_t v;
          if (!blockReadAt<uint8_t>(i.mem.seg, effectiveAddress(i), v, lazy)) {
            es = ExecStatus::kException;
            break;
          }
          if (i.opSize == 8)
            writeGpr<uint64_t>(op->a, v);
          else
            writeGpr<uint32_t>(op->a, v);
          break;
        }
        case FastKind::kLea:
          if (i.opSize == 8)
            writeGpr<uint64_t>(op->a, effectiveAddress(i));
          else
            writeGpr<uint32_t>(op->a, static_cast<uint32_t>(effectiveAddress(i)));
          break;
        case FastKind::kAluRR:
        case FastKind::kAluRI:
        case FastKind::kAluRM: {
          const AluOp aop = static_cast<AluOp>(op->sub);
          const bool writes = aop != AluOp::kCmp && aop != AluOp::kTest;
          if (i.opSize == 8) {
            uint64_t src;
            if (op->kind == FastKind::kAluRR) {
              src = readGpr<uint64_t>(op->b);
            } else if (op->kind == FastKind::kAluRI) {
              src = i.imm;
            } else if (!blockReadAt<uint64_t>(i.mem.seg, effectiveAddress(i), src, lazy)) {
              es = ExecStatus::kException;
              break;
            }
            const uint64_t v = aluApply<uint64_t>(aop, readGpr<uint64_t>(op->a), src, lazy);
            if (writes) writeGpr<uint64_t>(op->a, v);
          } else {
            uint32_t src;
            if (op->kind == FastKind::kAluRR) {
              src = readGpr<uint32_t>(op->b);
            } else if (op->kind == FastKind::kAluRI) {
              src = static_cast<uint32_t>(i.imm);
            } else if (!blockReadAt<uint32_t>(i.mem.seg, effectiveAddress(i), src, lazy)) {
              es = ExecStatus::kException;
              break;
            }
            const uint32_t v = aluApply<uint32_t>(aop, readGpr<uint32_t>(op->a), src, lazy);
            if (writes) writeGpr<uint32_t>(op->a, v);
          }
          break;
        }
        case FastKind::kIncDecR:
          materialize(lazy, s_.rflags);
          if (i.opSize == 8) {
            const alu::AluResult<uint64_t> v =
                op->sub == 0 ? alu::inc<uint64_t>(readGpr<uint64_t>(op->a), s_.rflags)
                             : alu::dec<uint64_t>(readGpr<uint64_t>(op->a), s_.rflags);
            writeGpr<uint64_t>(op->a, v.value);
            s_.rflags = v.rflags;
          } else {
            const alu::AluResult<uint32_t> v =
                op->sub == 0 ? alu::inc<uint32_t>(readGpr<uint32_t>(op->a), s_.rflags)
                             : alu::dec<uint32_t>(readGpr<uint32_t>(op->a), s_.rflags);
            writeGpr<uint32_t>(op->a, v.value);
            s_.rflags = v.rflags;
          }
          break;
        case FastKind::kShiftRI: {
          materialize(lazy, s_.rflags);
          const uint8_t count = static_cast<uint8_t>(i.imm);
          if (i.opSize == 8) {
            const uint64_t a = readGpr<uint64_t>(op->a);
            const alu::AluResult<uint64_t> v =
                op->sub == 0   ? alu::shl<uint64_t>(a, count, s_.rflags)
                : op->sub == 1 ? alu::shr<uint64_t>(a, count, s_.rflags)
                               : alu::sar<uint64_t>(a, count, s_.rflags);
            writeGpr<uint64_t>(op->a, v.value);
            s_.rflags = v.rflags;
          } else {
            const uint32_t a = readGpr<uint32_t>(op->a);
            const alu::AluResult<uint32_t> v =
                op->sub == 0   ? alu::shl<uint32_t>(a, count, s_.rflags)
                : op->sub == 1 ? alu::shr<uint32_t>(a, count, s_.rflags)
                               : alu::sar<uint32_t>(a, count, s_.rflags);
            writeGpr<uint32_t>(op->a, v.value);
            s_.rflags = v.rflags;
          }
          break;
        }
        case FastKind::kJcc: {
          int taken = -1;
          if (lazy.op != 0)
            taken = lazy.size == 8 ? lazyCondition<uint64_t>(lazy, op->a)
                                   : lazyCondition<uint32_t>(lazy, op->a);
          if (taken < 0) {
            materialize(lazy, s_.rflags);
            taken = condition(op->a);
          }
          // 64-bit mode: #GP(0) if not canonical; 32-bit: the CS limit.
          if (taken) es = jumpTo((nextRip(i) + i.imm) & ipMask_);
          break;
        }
        case FastKind::kJmpRel: es = jumpTo((nextRip(i) + i.imm) & ipMask_); break;
        case FastKind::kCallRel: {
          const uint64_t t = nextRip(i) + i.imm;
          if (!isCanonical(t)) {
            es = raiseGp(0);
            break;
          }
          const uint64_t sp = s_.gpr[4] - 8;
          if (!blockWriteAt<uint64_t>(2, sp, nextRip(i), lazy)) {
            es = ExecStatus::kException;
            break;
          }
          s_.gpr[4] = sp;
          s_.rip = t;
          es = ExecStatus::kJumped;
          break;
        }
        case FastKind::kRet: {
          uint64_t t;
          if (!blockReadAt<uint64_t>(2, s_.gpr[4], t, lazy)) {
            es = ExecStatus::kException;
            break;
          }
          if (!isCanonical(t)) {
            es = raiseGp(0);
            break;
          }
          s_.gpr[4] += 8;
          s_.rip = t;
          es = ExecStatus::kJumped;
          break;
        }
        case FastKind::kPushR: {
          const uint64_t v = s_.gpr[op->a];
          const uint64_t sp = s_.gpr[4] - 8;
          if (!blockWriteAt<uint64_t>(2, sp, v, lazy)) {
            es = ExecStatus::kException;
            break;
          }
          s_.gpr[4] = sp;
          break;
        }
        case FastKind::kPopR: {
          uint64_t v;
          if (!blockReadAt<uint64_t>(2, s_.gpr[4], v, lazy)) {
            es = ExecStatus::kException;
            break;
          }
          s_.gpr[4] += 8;
          s_.gpr[op->a] = v;
          break;
        }
        default: fast = false; break;
      }
      if (!fast) {
        materialize(lazy, s_.rflags);
        exc_.valid = false;
        es = i.handler(*this, i);
      }
      if (__builtin_expect(es == ExecStatus::kNext, 1)) {
        s_.rip = nextRip(i);
      } else if (es == ExecStatus::kRepeat) {
        s_.rflags |= flags::kRF;
      } else if (es != ExecStatus::kJumped) {
        materialize(lazy, s_.rflags);
        r = finishInstruction(es, &i, rip0, s_.rflags, InterruptShadow::kNone);
        ++n;
        if (r.outcome != StepOutcome::kRetired) return r;
        break;
      }
      ++s_.steps;
      ++n;
      // run()'s checks between two instructions. The environment answers
      // from the step count, never from RFLAGS' arithmetic flags: they may
      // stay lazy across the question.
      const bool slowNow = blockSlow_;
      if (__builtin_expect(checkEach || !fast || slowNow, 0)) {
        blockSlow_ = false;
        // A debugger watchpoint hit by this instruction (only the reference
        // accessors, on a slow access or in a handler, check them: a watched
        // page has no fast-path TLB entry): the stop step() reports.
        if (__builtin_expect(in_->watchHit, 0)) {
          materialize(lazy, s_.rflags);
          r = StepResult{};
          r.outcome = StepOutcome::kWatchpoint;
          r.watch = in_->hit;
          in_->watchHit = false;
          return r;
        }
        if (const uint32_t h = *hint; h != 0) {
          checkEach = true;  // set by this instruction: ask at every boundary from now on
          if (h != kEventHintMaskableOnly && env_.stopRequested()) {
            materialize(lazy, s_.rflags);
            r = StepResult{};
            r.outcome = StepOutcome::kStopRequested;
            return r;
          }
          if (eventDue(h)) break;
        }
        if (linkEpoch_ != epoch || (!fast && runUnusual())) break;
      }
      if (es != ExecStatus::kNext || op + 1 == end) {
        clean = !checkEach && fast && !slowNow;
        break;
      }
    }
    // The flags stay lazy into the next block: nothing between two blocks
    // reads the arithmetic flags.
  }
  materialize(lazy, s_.rflags);
  return StepResult{};
}

}  // namespace ttvm
