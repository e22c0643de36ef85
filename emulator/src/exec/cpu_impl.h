// CpuImpl: the execution context every instruction handler receives, and the
// implementation behind the public ttvm::Cpu (pimpl).
//
// It owns the CpuState, the software TLB and the decode cache; RAM and the
// Environment belong to the machine. It is `final` and has no virtual calls on
// the hot path: a RAM access that hits the TLB is a tag compare plus a
// memcpy; everything else (page walk, MMIO, watchpoints, self-modifying code,
// dirty tracking, page-crossing accesses) goes through the out-of-line slow
// path.
//
// Handler contract: see exec/instr.h. In short, every accessor that can fault
// returns bool (false = the exception is recorded; return
// ExecStatus::kException, e.g. via TTVM_RETURN_ON_FAULT), and raise*() record
// an exception and return ExecStatus::kException.
//
// Address spaces:
//   effective address (ea): offset inside a segment, computed from the ModRM
//     operand and truncated to the address size;
//   linear: seg.base + ea (truncated to 32 bits outside 64-bit mode), after
//     limit/type/privilege checks, or the canonical check in 64-bit mode;
//   physical: after paging (identity when CR0.PG = 0).
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "exec/instr.h"
#include "ttvm/base/assert.h"
#include "ttvm/emulator/cpu.h"

namespace ttvm {

struct DecodeCacheEntry;
struct Block;
class BlockCache;
struct LazyFlags;

// Exception vectors.
namespace vec {
inline constexpr uint8_t kDE = 0, kDB = 1, kNMI = 2, kBP = 3, kOF = 4, kBR = 5, kUD = 6, kNM = 7,
                         kDF = 8, kTS = 10, kNP = 11, kSS = 12, kGP = 13, kPF = 14, kMF = 16,
                         kAC = 17, kMC = 18, kXM = 19;
}  // namespace vec

enum class Access : uint8_t { kRead = 0, kWrite = 1, kExec = 2 };

// How an event enters the guest: decides the return RIP, the privilege check
// against the gate DPL, and error-code/double-fault rules.
enum class EventKind : uint8_t {
  kFault,     // return RIP = the faulting instruction
  kTrap,      // return RIP = the next instruction (#DB traps, INTO/#OF)
  kSoftInt,   // INT n / INT3 / INTO: gate DPL checked against CPL, RIP = next
  kIcebp,     // INT1 (F1): like a trap, no DPL check
  kExternal,  // external interrupt (EXT bit set in error codes)
  kNmi,
};

struct PendingException {
  bool valid = false;
  uint8_t vector = 0;
  bool hasErrorCode = false;
  uint32_t errorCode = 0;
  EventKind kind = EventKind::kFault;
};

// One entry of the software TLB. `allowed` has a bit per (access, privilege)
// that may proceed on the fast path; anything else (first write to a clean
// page, a code page, a watched page, SMAP with EFLAGS.AC) takes the slow path,
// which redoes the full check.
struct TlbEntry {
  uint64_t tag = ~0ull;     // linear page number (linear >> 12), ~0 = invalid
  uint8_t* host = nullptr;  // host address of the RAM page; nullptr = not RAM (slow path)
  uint64_t physPage = 0;    // physical page base
  uint8_t allowed = 0;      // tlbperm:: bits
  bool global = false;
  uint8_t pageShift = 12;  // size of the page this came from (12, 21, 22, 30)
};

namespace tlbperm {
// bit = 1 << (access * 2 + user)
inline constexpr uint8_t bit(Access a, bool user) {
  return static_cast<uint8_t>(1u << (static_cast<unsigned>(a) * 2 + (user ? 1 : 0)));
}
}  // namespace tlbperm

class CpuImpl final {
 public:
  CpuImpl(const CpuModel& model, PhysicalMemory memory, Environment& env);
  ~CpuImpl();
  CpuImpl(const CpuImpl&) = delete;
  CpuImpl& operator=(const CpuImpl&) = delete;

  // ------------------------------------------------------------------ state
  CpuState& state() { return s_; }
  const CpuState& state() const { return s_; }
  const CpuModel& model() const { return model_; }
  Environment& env() { return env_; }
  CpuMode mode() const { return mode_; }
  bool is64() const { return mode_ == CpuMode::kLong64; }
  bool longMode() const { return s_.msr.efer & efer::kLMA; }
  bool protectedMode() const { return s_.cr0 & cr0::kPE; }
  bool v86() const { return mode_ == CpuMode::kVirtual8086; }
  int cpl() const { return cpl_; }

  uint64_t& gpr(Gpr r) { return s_.gpr[static_cast<int>(r)]; }
  uint64_t& gpr(unsigned r) { return s_.gpr[r]; }
  uint64_t& rflags() { return s_.rflags; }
  uint64_t rip() const { return s_.rip; }
  // RIP of the instruction after `i` (IP wraps at 64 KiB in 16-bit code).
  uint64_t nextRip(const Instr& i) const { return (s_.rip + i.length) & ipMask_; }
  // Sets RIP without checks (the caller checked the target).
  void setRip(uint64_t v) { s_.rip = v; }
  // Near control transfer to `target` (already truncated to the operand size
  // by the caller): #GP(0) if outside the CS limit or non-canonical.
  ExecStatus jumpTo(uint64_t target);

  // Replaces only the arithmetic flags in `mask` (a subset of flags::kArith).
  void setArithFlags(uint64_t mask, uint64_t values) {
    s_.rflags = (s_.rflags & ~mask) | (values & mask);
  }
  // Evaluates condition code cc (0..15, the low nibble of Jcc/SETcc/CMOVcc).
  bool condition(unsigned cc) const;

  // ------------------------------------------------------ register operands
  // reg: 0..15 or regid::kAh..kBh (8-bit only). Writing 32 bits zero-extends.
  template <typename T>
  T readGpr(uint8_t reg) const {
    if constexpr (sizeof(T) == 1) {
      if (reg >= regid::kAh) return static_cast<T>(s_.gpr[reg - regid::kAh] >> 8);
    }
    return static_cast<T>(s_.gpr[reg]);
  }
  template <typename T>
  void writeGpr(uint8_t reg, T v) {
    if constexpr (sizeof(T) == 1) {
      if (reg >= regid::kAh) {
        uint64_t& r = s_.gpr[reg - regid::kAh];
        r = (r & ~0xFF00ull) | (uint64_t{v} << 8);
        return;
      }
      s_.gpr[reg] = (s_.gpr[reg] & ~0xFFull) | v;
    } else if constexpr (sizeof(T) == 2) {
      s_.gpr[reg] = (s_.gpr[reg] & ~0xFFFFull) | v;
    } else {
      s_.gpr[reg] = static_cast<uint64_t>(v);  // 32-bit: zero-extends
    }
  }
  // Size-erased forms (bytes = 1/2/4/8).
  uint64_t readGprSized(uint8_t reg, unsigned bytes) const;
  void writeGprSized(uint8_t reg, unsigned bytes, uint64_t v);

  // --------------------------------------------------------------- operands
  // The effective address of i.mem (needs the current RIP for RIP-relative).
  uint64_t effectiveAddress(const Instr& i) const {
    const MemRef& m = i.mem;
    uint64_t a = static_cast<uint64_t>(m.disp);
    if (m.base != regid::kNone) a += (m.base == regid::kRip) ? s_.rip + i.length : s_.gpr[m.base];
    if (m.index != regid::kNone) a += s_.gpr[m.index] * m.scale;
    return truncAddr(a, i.addrSize);
  }
  static uint64_t truncAddr(uint64_t a, unsigned addrSize) {
    return addrSize == 8 ? a : addrSize == 4 ? (a & 0xFFFFFFFFull) : (a & 0xFFFFull);
  }

  template <typename T>
  bool readOp(const Instr& i, int n, T& out) {
    const Operand& o = i.op[n];
    switch (o.kind) {
      case OpKind::kGpr: out = readGpr<T>(o.reg); return true;
      case OpKind::kImm: out = static_cast<T>(i.imm); return true;
      case OpKind::kMem: return readMem<T>(i.mem.seg, effectiveAddress(i), out);
      case OpKind::kSeg: out = static_cast<T>(s_.seg[o.reg].selector); return true;
      default: return readOpSlow(i, n, out);
    }
  }
  template <typename T>
  bool writeOp(const Instr& i, int n, T v) {
    const Operand& o = i.op[n];
    if (o.kind == OpKind::kGpr) {
      writeGpr<T>(o.reg, v);
      return true;
    }
    TTVM_ASSERT(o.kind == OpKind::kMem, "writeOp on operand kind ", int(o.kind));
    return writeMem<T>(i.mem.seg, effectiveAddress(i), v);
  }

  // ----------------------------------------------------------------- memory
  // Data accesses at the current privilege through segment `seg` (SegReg
  // index). Faults: #GP/#SS (segment checks, non-canonical), #PF, #AC never.
  template <typename T>
  bool readMem(unsigned seg, uint64_t ea, T& out) {
    uint64_t lin;
    if (!segCheck(seg, ea, sizeof(T), Access::kRead, lin)) return false;
    return readLinear<T>(lin, out);
  }
  template <typename T>
  bool writeMem(unsigned seg, uint64_t ea, T v) {
    uint64_t lin;
    if (!segCheck(seg, ea, sizeof(T), Access::kWrite, lin)) return false;
    return writeLinear<T>(lin, v);
  }
  // Any size (10-byte x87, 16-byte SSE, 512-byte FXSAVE): all translations are
  // checked before any byte is written.
  bool readMemBlock(unsigned seg, uint64_t ea, void* dst, unsigned n);
  bool writeMemBlock(unsigned seg, uint64_t ea, const void* src, unsigned n);
  // Checks that [ea, ea+n) could be written (segment + paging, sets no A/D).
  bool probeWrite(unsigned seg, uint64_t ea, unsigned n);

  // Linear accesses. `implicitSupervisor` = a system-structure access (GDT,
  // IDT, TSS) which is checked as a supervisor access whatever the CPL.
  template <typename T>
  bool readLinear(uint64_t lin, T& out, bool implicitSupervisor = false) {
    const bool user = cpl_ == 3 && !implicitSupervisor;
    const TlbEntry& e = tlb_[(lin >> 12) & (kTlbSize - 1)];
    if (__builtin_expect(e.tag == (lin >> 12) && (e.allowed & tlbperm::bit(Access::kRead, user)) &&
                             (lin & 0xFFF) <= 4096 - sizeof(T),
                         1)) {
      std::memcpy(&out, e.host + (lin & 0xFFF), sizeof(T));
      return true;
    }
    uint64_t v = 0;
    if (!accessSlow(lin, &v, sizeof(T), Access::kRead, implicitSupervisor)) return false;
    out = static_cast<T>(v);
    return true;
  }
  template <typename T>
  bool writeLinear(uint64_t lin, T v, bool implicitSupervisor = false) {
    const bool user = cpl_ == 3 && !implicitSupervisor;
    const TlbEntry& e = tlb_[(lin >> 12) & (kTlbSize - 1)];
    if (__builtin_expect(e.tag == (lin >> 12) && (e.allowed & tlbperm::bit(Access::kWrite, user)) &&
                             (lin & 0xFFF) <= 4096 - sizeof(T),
                         1)) {
      std::memcpy(e.host + (lin & 0xFFF), &v, sizeof(T));
      return true;
    }
    uint64_t w = static_cast<uint64_t>(v);
    return accessSlow(lin, &w, sizeof(T), Access::kWrite, implicitSupervisor);
  }
  bool readLinearBlock(uint64_t lin, void* dst, unsigned n, bool implicitSupervisor = false);
  bool writeLinearBlock(uint64_t lin, const void* src, unsigned n, bool implicitSupervisor = false);

  // Segment checks for a data access of `size` bytes at `ea`: limit
  // (expand-up/down), type (read/write), usability, canonical form in 64-bit
  // mode. On success `lin` is the linear address.
  bool segCheck(unsigned seg, uint64_t ea, unsigned size, Access a, uint64_t& lin) {
    if (__builtin_expect(s_.rflags & flags::kAC, 0) && !alignmentOk(seg, ea, size)) return false;
    const SegmentRegister& sr = s_.seg[seg];
    if (mode_ == CpuMode::kLong64) {
      lin = ea + ((seg >= 4) ? sr.base : 0);
      if (__builtin_expect(isCanonical(lin) && isCanonical(lin + size - 1), 1)) return true;
      return segFault(seg, 0);
    }
    if (__builtin_expect(
            segFast_[seg] && ea + size - 1 <= sr.limit && (a == Access::kRead || segWritable_[seg]),
            1)) {
      lin = (sr.base + ea) & 0xFFFFFFFFull;
      return true;
    }
    return segCheckSlow(seg, ea, size, a, lin);
  }
  static bool isCanonical(uint64_t a) {
    return static_cast<uint64_t>(static_cast<int64_t>(a << 16) >> 16) == a;
  }

  // ------------------------------------------------------------------ stack
  // Stack address size in bytes: 8 in 64-bit mode, else SS.B ? 4 : 2.
  unsigned stackAddrSize() const { return stackSize_; }
  // Pushes/pops at RSP through SS, updating RSP (truncated to the stack
  // address size) only on success.
  template <typename T>
  bool push(T v) {
    const uint64_t sp = truncAddr(s_.gpr[4] - sizeof(T), stackSize_);
    if (!writeMem<T>(2, sp, v)) return false;
    setSp(sp);
    return true;
  }
  template <typename T>
  bool pop(T& v) {
    const uint64_t sp = truncAddr(s_.gpr[4], stackSize_);
    if (!readMem<T>(2, sp, v)) return false;
    setSp(sp + sizeof(T));
    return true;
  }
  // Reads the stack at RSP + offset without changing RSP.
  template <typename T>
  bool peek(uint64_t offset, T& v) {
    return readMem<T>(2, truncAddr(s_.gpr[4] + offset, stackSize_), v);
  }
  bool pushSized(unsigned bytes, uint64_t v);
  bool popSized(unsigned bytes, uint64_t& v);
  // Writes RSP keeping the bits above the stack address size (16-bit SP).
  void setSp(uint64_t sp) {
    if (stackSize_ == 2)
      s_.gpr[4] = (s_.gpr[4] & ~0xFFFFull) | (sp & 0xFFFF);
    else
      s_.gpr[4] = stackSize_ == 4 ? (sp & 0xFFFFFFFFull) : sp;
  }

  // ------------------------------------------------------------- exceptions
  // Record an exception for the current instruction and return kException.
  ExecStatus raise(uint8_t vector);
  ExecStatus raise(uint8_t vector, uint32_t errorCode);
  ExecStatus raiseGp(uint32_t e = 0) { return raise(vec::kGP, e); }
  ExecStatus raiseSs(uint32_t e = 0) { return raise(vec::kSS, e); }
  ExecStatus raiseNp(uint32_t e) { return raise(vec::kNP, e); }
  ExecStatus raiseTs(uint32_t e) { return raise(vec::kTS, e); }
  ExecStatus raiseUd() { return raise(vec::kUD); }
  ExecStatus raiseDe() { return raise(vec::kDE); }
  ExecStatus raiseNm() { return raise(vec::kNM); }
  // INT n / INT3 / INTO / INT1: delivered with RIP = next instruction.
  ExecStatus raiseSoftware(uint8_t vector, EventKind kind);
  // Boolean forms for accessors: record and return false.
  bool fault(uint8_t vector) {
    raise(vector);
    return false;
  }
  bool fault(uint8_t vector, uint32_t e) {
    raise(vector, e);
    return false;
  }
  const PendingException& pendingException() const { return exc_; }

  // ----------------------------------------------------- segments and modes
  // MOV/POP Sreg, LDS..LGS: loads a data/stack segment register with every
  // protected-mode check (#GP/#SS/#NP with the selector as error code).
  bool loadSegment(SegReg s, uint16_t selector);
  // Loads CS:RIP for a far JMP/CALL/RET/IRET target that was already checked.
  void loadCs(uint16_t selector, uint64_t descriptorRaw, int newCpl);
  // Reads the 8-byte descriptor for `selector` from the GDT/LDT; #GP(sel & ~3)
  // (or the vector/error given) when outside the table limit.
  bool readDescriptor(uint16_t selector, uint64_t& raw, uint8_t vector = vec::kGP);
  bool writeDescriptorAccessed(uint16_t selector, uint64_t raw);
  static SegmentRegister descriptorToCache(uint16_t selector, uint64_t raw);
  // Must be called after anything that changes CR0, EFER, CS attributes,
  // RFLAGS.VM, SS.B: recomputes the cached mode, CPL, IP mask, stack size.
  void updateMode();
  // Recomputes the fast segment-check flags after a segment register load.
  void updateSegmentCache(unsigned seg);

  // ------------------------------------------------------------ TLB, caches
  void flushTlb(bool includeGlobal);
  void invalidatePage(uint64_t linear);
  // Control-register writes with their TLB side effects and checks
  // (#GP on reserved bits). Return false with #GP recorded.
  bool writeCr0(uint64_t v);
  bool writeCr3(uint64_t v);
  bool writeCr4(uint64_t v);
  bool writeEfer(uint64_t v);
  bool checkPaePdptes(uint64_t cr0v, uint64_t cr3v, uint64_t cr4v, uint64_t eferv);

  // Translates `lin` for access `a`; on a fault records #PF (CR2, error code)
  // unless `noFault`. Sets A/D bits unless `noSideEffects`.
  bool translate(uint64_t lin, Access a, bool implicitSupervisor, uint64_t& phys,
                 bool noSideEffects = false);

  // Physical accesses (RAM or MMIO), used by the page walker and loaders.
  uint64_t readPhys(uint64_t phys, unsigned size);
  void writePhys(uint64_t phys, unsigned size, uint64_t value);
  // Keeps CR8 in step with a TPR written through the xAPIC page (memory.cc).
  void noteApicWrite(uint64_t phys, unsigned size, uint64_t value);
  bool isRam(uint64_t phys) const;
  bool isRamRange(uint64_t phys, uint64_t n) const;

  // Instructions not implemented: #UD plus one log line per distinct bytes.
  ExecStatus unimplemented(const Instr& i);
  const std::vector<std::string>& unimplementedLog() const { return unimplementedLog_; }

  // ------------------------------------------------------------ public API
  StepResult step();
  StepResult run(uint64_t maxSteps) {
    return engine_ == CpuEngine::kFast ? runBlocks(maxSteps) : runReference(maxSteps);
  }
  void setEngine(CpuEngine e) { engine_ = e; }
  CpuEngine engine() const { return engine_; }
  EngineStats engineStats() const;
  void setState(const CpuState& s);
  void notifyRamWritten(uint64_t physAddr, uint64_t length);
  void flushCaches();
  void setDirtyTracking(bool on);
  std::vector<uint64_t> takeDirtyPages();
  void setAccessTracking(bool on);
  std::vector<uint64_t> takeAccessedPages();
  void setBreakpoints(std::vector<DebuggerBreakpoint> bps);
  void setWatchpoints(std::vector<DebuggerWatchpoint> wps);
  void skipBreakpointOnce() { skipBreakpoint_ = true; }
  std::optional<uint64_t> translateNoSideEffects(uint64_t linear, bool write) const;
  bool readLinearDebug(uint64_t linear, std::span<uint8_t> out) const;

  // Option: skip KVM's forced-emulation prefix (0F 0B 'k' 'v' 'm').
  void setSkipKvmForcedEmulationPrefix(bool on) { skipKvmFep_ = on; }

  // Far-transfer and event-delivery helpers used by control/system handlers.
  // Delivers an event now (fault/trap/interrupt) with the double-fault rules;
  // false only on triple fault (the CPU is then frozen: the caller counts the
  // step that got there, unless it counted it already; every later step
  // returns kTripleFault and the step count does not advance).
  bool deliverEvent(PendingException e, std::optional<uint64_t> instructionRip = std::nullopt);
  ExecStatus farJump(uint16_t selector, uint64_t offset, const Instr& i);
  ExecStatus farCall(uint16_t selector, uint64_t offset, const Instr& i);
  ExecStatus farReturn(const Instr& i, uint16_t popBytes);
  bool isCallGate(uint16_t selector);
  std::optional<ExecStatus> farToTask(uint16_t selector, const Instr& i, bool isCall);
  // Hardware task switch to the 32-bit TSS `sel` (exec/task.cc). `returnRip`
  // is saved as the outgoing task's EIP; `errorToPush` (exceptions through a
  // task gate) is pushed on the new task's stack. False with a fault recorded.
  enum class TaskSwitchReason : uint8_t { kJmp, kCall, kInt, kIret };
  bool taskSwitch(uint16_t sel, TaskSwitchReason reason, uint64_t returnRip,
                  const PendingException* errorToPush = nullptr);
  ExecStatus callGate(uint16_t gateSel, const Instr& i, bool isCall);
  ExecStatus iret(const Instr& i);

  // The TSS's stack pointer for ring `cpl` (32/64-bit TSS), or IST entry `ist`.
  bool tssStack(int cpl, uint16_t& ss, uint64_t& sp);
  bool tssIst(unsigned ist, uint64_t& sp);
  // The TSS I/O permission bitmap check for ports [port, port+size).
  bool ioPermitted(uint16_t port, unsigned size);

 private:
  friend struct CpuImplTestAccess;
  static constexpr unsigned kTlbSize = 1024;
  static constexpr unsigned kDecodeCacheBits = 16;
  static constexpr size_t kDecodePoolSize = 1u << 16;
  void dropDecodedCode();

  const Instr* fetch();
  const Instr* fetchLookup(DecodeCacheEntry*& entry);
  const Instr* fetchSlow(uint64_t lin, uint64_t phys, DecodeCacheEntry*& entry);
  DecodeCacheEntry* prevEntry_ = nullptr;  // the last instruction fetched from the cache
  uint64_t linkEpoch_ = 1;                 // see DecodeCacheEntry::Link
  StepResult executeOne(InterruptShadow shadowBefore);
  // The reference loop (exec/cpu_impl.cc) and the fast engine
  // (exec/block_engine.cc, design in exec/block_cache.h).
  StepResult runReference(uint64_t maxSteps);
  StepResult runBlocks(uint64_t maxSteps);
  StepResult runBlocksLoop(uint64_t maxSteps);
  Block* lookupBlock();
  Block* buildBlock(uint64_t lin, uint64_t phys);
  void maybeCompile(Block* b);
  // 32-bit protected or compatibility mode with the segments 32-bit host
  // code assumes: CS,
  // DS, ES and SS based at 0 with 4 GiB limits, DS/ES/SS usable writable
  // expand-up data, a 32-bit stack (exec/block_jit.h).
  bool flatSegments32() const;
  bool eventDue(uint32_t hint);
  bool runUnusual() const;
  unsigned breakpointOffset(const Block* b) const;
  template <typename T>
  bool blockReadAt(unsigned seg, uint64_t ea, T& out, LazyFlags& lazy);
  template <typename T>
  bool blockWriteAt(unsigned seg, uint64_t ea, T v, LazyFlags& lazy);
  // Marks [phys, phys + length) as holding cached code (self-modifying-code
  // detection; the first code on a page takes write permission from the TLB).
  void markCode(uint64_t phys, unsigned length);
  CpuEngine engine_ = CpuEngine::kReference;
  bool blockSlow_ = false;              // a block's memory access took the reference accessor
  std::unique_ptr<BlockCache> blocks_;  // the fast engine's cache, built on first use
  StepResult finishInstruction(ExecStatus st, const Instr* i, uint64_t rip0, uint64_t flagsBefore,
                               InterruptShadow shadowBefore);
  void updateRunSlow();
  bool runSlow_ = false;  // run() must take step() for every step (see updateRunSlow)
  // The same for the fast engine's blocks: debugger watchpoints and physical
  // breakpoints are not in it (blocks check them exactly: watched pages have
  // no fast-path TLB entry and a hit ends the block at its instruction;
  // a block holding a breakpoint is not entered).
  bool blocksSlow_ = false;
  std::vector<uint64_t> linearBreakpoints_;  // sorted linear debugger breakpoints
  bool hasPhysicalBreakpoints_ = false;
  StepResult finishStep(StepResult r);
  bool atDebuggerBreakpoint();
  bool deliverOnce(const PendingException& e);
  bool deliverReal(const PendingException& e);
  bool deliverProtected(const PendingException& e);
  bool deliverLong(const PendingException& e);

  template <typename T>
  bool readOpSlow(const Instr& i, int n, T& out) {
    uint64_t v = 0;
    if (!readOpOther(i, n, v)) return false;
    out = static_cast<T>(v);
    return true;
  }
  bool readOpOther(const Instr& i, int n, uint64_t& v);
  bool accessSlow(uint64_t lin, void* data, unsigned size, Access a, bool implicitSupervisor);
  bool accessBytes(uint64_t lin, void* data, unsigned n, Access a, bool implicitSupervisor);
  void physAccess(uint64_t phys, uint8_t* bytes, unsigned n, bool write);
  void checkWatchpoints(uint64_t lin, uint64_t phys, unsigned n, bool write);
  void finishTlbFill(TlbEntry& e, uint64_t lin);
  void stripTlbWrite(uint64_t physPage);
  // #AC(0) for a misaligned data access at CPL 3 with CR0.AM and RFLAGS.AC.
  bool alignmentOk(unsigned seg, uint64_t ea, unsigned size);
  bool segCheckSlow(unsigned seg, uint64_t ea, unsigned size, Access a, uint64_t& lin);
  bool segFault(unsigned seg, uint32_t err) { return fault(seg == 2 ? vec::kSS : vec::kGP, err); }

  struct Internals;
  CpuState s_;
  const CpuModel model_;
  PhysicalMemory mem_;
  Environment& env_;
  CpuMode mode_ = CpuMode::kReal;
  int cpl_ = 0;
  uint64_t ipMask_ = 0xFFFF;
  unsigned stackSize_ = 2;
  bool segFast_[kNumSegRegs] = {};      // usable, expand-up, readable, no special case
  bool segWritable_[kNumSegRegs] = {};  // writable data segment
  PendingException exc_;
  PendingException delivered_;  // the event deliverEvent() last put into the guest
  TlbEntry tlb_[kTlbSize];
  bool skipBreakpoint_ = false;
  bool skipKvmFep_ = true;
  std::vector<std::string> unimplementedLog_;
  std::unique_ptr<Internals> in_;  // decode cache, code/dirty page maps, debugger lists
  bool tripleFault_ = false;
  bool debugWalk_ = false;  // translate() for the debugger: no permission checks

 public:
  // ------------------------------------------------ debug-semantics hooks
  // Implemented in debug_hooks.cc (the debug-semantics work completes them).
  // When true, no TLB entry grants data access, so every data access reaches
  // debugDataAccess() (guest DR0-DR3 data breakpoints).
  bool dataBreakpointsActive_ = false;
  // When true, run() uses the full step() path for every step (guest DR7
  // instruction/IO breakpoints armed, GD...). Call updateRunSlow() after changing it.
  bool guestDebugActive_ = false;
  // Called after each data access on the slow path.
  void debugDataAccess(uint64_t lin, unsigned size, bool write);
  // Called before executing an instruction at the current RIP (after
  // external events were considered): instruction breakpoints. Returns false
  // with #DB recorded when one hits.
  bool debugBeforeInstruction();
  // DR6 bits of traps raised during the instruction just retired (data
  // breakpoints); consumed by the step loop with TF's BS.
  uint64_t debugTrapBits_ = 0;
  // I/O breakpoints for IN/OUT/INS/OUTS (called by those handlers).
  void debugIoAccess(uint16_t port, unsigned size);
  // Recomputes dataBreakpointsActive_ after a DR7/CR4 write.
  void debugRegistersChanged();
};

}  // namespace ttvm
