#include "ttvm/recorder/lockstep.h"

#include <sys/mman.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <deque>
#include <optional>

#include "ttvm/base/hex.h"
#include "ttvm/emulator/disassembler.h"
#include "ttvm/recorder/emu_backend.h"

namespace ttvm {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kDr6Bd = 1u << 13;  // general detect (SDM vol. 3 18.2.3)

// One port or MMIO access the reference made, with its value, or an RDMSR
// or WRMSR of a machine-owned MSR KVM sent to user space (address = the MSR).
struct Access {
  enum class Kind : uint8_t { kPortIn, kPortOut, kMmioRead, kMmioWrite, kMsrRead, kMsrWrite };
  Kind kind = Kind::kPortIn;
  uint64_t address = 0;
  unsigned size = 0;
  uint64_t value = 0;
  bool accepted = true;  // kMsrRead, kMsrWrite: the machine took it
  bool sameRequest(const Access& o) const {
    const bool write =
        kind == Kind::kPortOut || kind == Kind::kMmioWrite || kind == Kind::kMsrWrite;
    return kind == o.kind && address == o.address && size == o.size && (!write || value == o.value);
  }
};

std::string describe(const Access& a) {
  const char* what = a.kind == Access::Kind::kPortIn     ? "port read"
                     : a.kind == Access::Kind::kPortOut  ? "port write"
                     : a.kind == Access::Kind::kMmioRead ? "MMIO read"
                     : a.kind == Access::Kind::kMsrWrite ? "WRMSR"
                     : a.kind == Access::Kind::kMsrRead  ? "RDMSR"
                                                         : "MMIO write";
  std::string s =
      std::string(what) + " of " + std::to_string(a.size) + " bytes at " + hex(a.address);
  if (a.kind == Access::Kind::kPortOut || a.kind == Access::Kind::kMmioWrite ||
      a.kind == Access::Kind::kMsrWrite)
    s += " (value " + hex(a.value) + ")";
  return s;
}

// The reference's environment: the machine answers, each access is queued
// for the follower. No interrupt is ever pending here: lockstep injects.
class ReferenceEnvironment final : public Environment {
 public:
  ReferenceEnvironment(machine::Machine& m, std::deque<Access>& queue) : m_(m), queue_(queue) {}
  uint32_t portIn(uint16_t port, unsigned size) override {
    const uint32_t v = m_.portIn(port, size);
    queue_.push_back({Access::Kind::kPortIn, port, size, v});
    return v;
  }
  void portOut(uint16_t port, unsigned size, uint32_t value) override {
    queue_.push_back({Access::Kind::kPortOut, port, size, value});
    m_.portOut(port, size, value);
  }
  uint64_t mmioRead(uint64_t addr, unsigned size) override {
    const uint64_t v = m_.mmioRead(addr, size);
    queue_.push_back({Access::Kind::kMmioRead, addr, size, v});
    return v;
  }
  void mmioWrite(uint64_t addr, unsigned size, uint64_t value) override {
    queue_.push_back({Access::Kind::kMmioWrite, addr, size, value});
    m_.mmioWrite(addr, size, value);
  }
  uint64_t readTsc() override { return m_.readTsc(); }
  std::optional<uint64_t> readRandom(unsigned size) override { return m_.readRandom(size); }
  // KVM's RDMSR of a machine-owned MSR (an MSR exit): queued with the
  // machine's answer or refusal (#GP), which the follower's RDMSR gets.
  std::optional<uint64_t> readMsr(uint32_t index) override {
    const std::optional<uint64_t> v = m_.readMsr(index);
    queue_.push_back({Access::Kind::kMsrRead, index, 8, v.value_or(0), v.has_value()});
    return v;
  }
  // KVM's WRMSR of a machine-owned MSR (an MSR exit, KvmBackend::serveMsr):
  // the machine takes it once, here.
  bool writeMsr(uint32_t index, uint64_t value) override {
    const bool ok = m_.writeMsr(index, value);
    queue_.push_back({Access::Kind::kMsrWrite, index, 8, value, ok});
    return ok;
  }
  bool interruptPending() override { return false; }
  uint8_t acknowledgeInterrupt() override {
    TTVM_ASSERT(false, "lockstep's reference acknowledged an interrupt it was not offered");
    return 0;
  }
  bool nmiPending() override { return false; }
  void acknowledgeNmi() override {}
  bool stopRequested() override { return m_.serviceNeeded(); }

 private:
  machine::Machine& m_;
  std::deque<Access>& queue_;
};

// The follower's environment: answers from the reference's queue, checking
// that each access is the one the reference made; what the hardware did not
// trap (RDTSC, RDMSR of a machine-owned MSR) from the reference's EDX:EAX
// after the instruction. The first mismatch is kept in problem().
class FollowerEnvironment final : public Environment {
 public:
  FollowerEnvironment(machine::Machine& m, std::deque<Access>& queue) : m_(m), queue_(queue) {}
  void setReference(const CpuState* after, const CpuState* follower) {
    after_ = after;
    follower_ = follower;
  }
  const std::string& problem() const { return problem_; }
  void clearProblem() { problem_.clear(); }

  uint32_t portIn(uint16_t port, unsigned size) override {
    return static_cast<uint32_t>(take({Access::Kind::kPortIn, port, size, 0}));
  }
  void portOut(uint16_t port, unsigned size, uint32_t value) override {
    take({Access::Kind::kPortOut, port, size, value});
  }
  uint64_t mmioRead(uint64_t addr, unsigned size) override {
    return take({Access::Kind::kMmioRead, addr, size, 0});
  }
  void mmioWrite(uint64_t addr, unsigned size, uint64_t value) override {
    take({Access::Kind::kMmioWrite, addr, size, value});
  }
  // The emulator adds IA32_TSC_ADJUST to what this returns: the reference's
  // TSC less its IA32_TSC_ADJUST after the instruction, both read back
  // before the follower runs it. At a WRMSR of the TSC, EDX:EAX is the
  // value written and the reference's TSC_ADJUST moved by the write's delta
  // (SDM vol. 3 17.17.3); the follower's own, not moved yet, would keep it
  // where it was.
  uint64_t readTsc() override { return edxEax() - (after_ ? after_->msr.tscAdjust : 0); }
  std::optional<uint64_t> readRandom(unsigned) override {
    note(
        "the emulator asked for a random number (RDRAND/RDSEED), which lockstep cannot take "
        "from the hardware");
    return std::nullopt;
  }
  // The machine's answer to KVM's RDMSR, refusal included, where KVM sent
  // it to user space; else what KVM's instruction left in EDX:EAX.
  std::optional<uint64_t> readMsr(uint32_t index) override {
    if (!queue_.empty() && queue_.front().kind == Access::Kind::kMsrRead) {
      const Access got = queue_.front();
      take({Access::Kind::kMsrRead, index, 8, 0});
      if (!got.accepted) return std::nullopt;
      return got.value;
    }
    return edxEax();
  }
  // Where KVM sent the WRMSR to user space the machine already has it;
  // where it handled it in the kernel (a KVM without MSR exits) the
  // emulator's write goes to the machine.
  bool writeMsr(uint32_t index, uint64_t value) override {
    if (!queue_.empty() && queue_.front().kind == Access::Kind::kMsrWrite) {
      const bool ok = queue_.front().accepted;
      take({Access::Kind::kMsrWrite, index, 8, value});
      return ok;
    }
    return m_.writeMsr(index, value);
  }
  bool interruptPending() override { return false; }
  uint8_t acknowledgeInterrupt() override {
    TTVM_ASSERT(false, "lockstep's follower acknowledged an interrupt it was not offered");
    return 0;
  }
  bool nmiPending() override { return false; }
  void acknowledgeNmi() override {}
  bool stopRequested() override { return false; }

 private:
  uint64_t edxEax() const {
    if (after_ == nullptr) return 0;
    return (after_->reg(Gpr::kRdx) << 32) | (after_->reg(Gpr::kRax) & 0xFFFFFFFFull);
  }
  void note(std::string what) {
    if (problem_.empty()) problem_ = std::move(what);
  }
  uint64_t take(const Access& want) {
    if (queue_.empty()) {
      note("the emulator made a " + describe(want) + " that KVM did not make");
      return 0;
    }
    const Access got = queue_.front();
    if (!got.sameRequest(want)) {
      note("the emulator made a " + describe(want) + " where KVM made a " + describe(got));
      return 0;
    }
    queue_.pop_front();
    return got.value;
  }

  machine::Machine& m_;
  std::deque<Access>& queue_;
  const CpuState* after_ = nullptr;
  const CpuState* follower_ = nullptr;
  std::string problem_;
};

// Whether the event frame at the top of the stack in `s`, read through
// `b`, returns to `rip` (true where it cannot be read).
bool eventFrameReturnsTo(const CpuState& s, const machine::CpuBackend& b, uint64_t rip) {
  const ReturnRipSlot slot = returnRipSlot(s);
  uint8_t bytes[8] = {};
  if (!b.readLinear(slot.linear, std::span<uint8_t>(bytes, slot.width))) return true;
  uint64_t pushed = 0;
  std::memcpy(&pushed, bytes, slot.width);
  const uint64_t mask = slot.width == 8 ? ~0ull : (1ull << (8 * slot.width)) - 1;
  return pushed == (rip & mask);
}

uint64_t linearRip(const CpuState& s) {
  if (cpuMode(s) == CpuMode::kLong64) return s.rip;
  return (s.segment(SegReg::kCs).base + s.rip) & 0xFFFFFFFFull;
}

// The first few aligned dwords that differ in one page, in words.
std::string pageDetail(uint64_t page, const uint8_t* hw, const uint8_t* emu) {
  std::string s;
  int shown = 0;
  for (uint64_t i = 0; i < kPage && shown < 6; i += 4) {
    uint32_t a = 0, b = 0;
    std::memcpy(&a, hw + i, 4);
    std::memcpy(&b, emu + i, 4);
    if (a == b) continue;
    char t[80];
    std::snprintf(t, sizeof t, "%s%#" PRIx64 ": KVM %08x, emulator %08x", shown ? "; " : "",
                  page * kPage + i, a, b);
    s += t;
    ++shown;
  }
  return s;
}

}  // namespace

std::string_view maskReasonName(MaskReason r) {
  switch (r) {
    case MaskReason::kUndefinedFlags: return "flags the SDM leaves undefined";
    case MaskReason::kShadowKind: return "interrupt shadow kind (SVM has one bit)";
    case MaskReason::kFpuPointers: return "x87 error pointers (FIP/FDP/FOP/FCS/FDS)";
    case MaskReason::kGuestDebugTrap: return "guest #DB under host single-step (KVM keeps it)";
    case MaskReason::kDescriptorAccessed: return "descriptor accessed bit the host CPU left clear";
    case MaskReason::kHostTrapFlag: return "KVM's stepping TF in a flags image in RAM";
    case MaskReason::kRepResumeFlag: return "RF between REP iterations (AMD 0, Intel model 1)";
    case MaskReason::kGuestTrapFlagHidden: return "the guest's TF, hidden by KVM while it steps";
    case MaskReason::kV86SegmentType: return "virtual-8086 segment type (SVM: 3)";
    case MaskReason::kSegmentGranularity: return "segment G bit (KVM: limit > 0xFFFFF)";
    case MaskReason::kSegmentPushWidth:
      return "PUSH Sreg: 16-bit write (Intel model) vs zero-extended (AMD)";
    case MaskReason::kPagingDirtyBit:
      return "paging D bit of the emulator's descriptor accessed-bit write";
    case MaskReason::kFaultFrameResumeFlag:
      return "RF in a fault's EFLAGS image (QEMU's TCG pushes 0)";
    case MaskReason::kHostTrapFlagInR11: return "KVM's stepping TF saved in R11 by SYSCALL";
    case MaskReason::kDebugTrapKvmDelivered:
      return "guest #DB KVM's emulator delivered itself (followed into the handler)";
  }
  return "?";
}

bool descriptorAccessedByte(size_t i, uint8_t hw, uint8_t emu) {
  // Access byte: P (bit 7) and S (bit 4) set, only A (bit 0) differs, set by the emulator.
  return i % 8 == 5 && (hw ^ emu) == 1 && (emu & 1) && (emu & 0x90) == 0x90;
}

bool descriptorAccessedOnly(std::span<const uint8_t> hw, std::span<const uint8_t> emu) {
  bool any = false;
  for (size_t i = 0; i < hw.size() && i < emu.size(); ++i) {
    if (hw[i] == emu[i]) continue;
    if (!descriptorAccessedByte(i, hw[i], emu[i])) return false;
    any = true;
  }
  return any;
}

bool adoptSegmentPushWidth(std::span<const uint8_t> hw, std::span<uint8_t> emu) {
  bool any = false;
  for (unsigned width : {8u, 4u}) {
    for (size_t i = 0; i + width <= hw.size() && i + width <= emu.size(); i += width) {
      uint64_t a = 0, b = 0;
      std::memcpy(&a, hw.data() + i, width);
      std::memcpy(&b, emu.data() + i, width);
      if (a == b || (a >> 16) != 0 || (a & 0xFFFF) != (b & 0xFFFF)) continue;
      std::memcpy(emu.data() + i, hw.data() + i, width);
      any = true;
    }
  }
  return any;
}

bool hostTrapFlagByte(size_t i, uint8_t hw, uint8_t emu) {
  return i % 2 == 1 && (hw ^ emu) == 1 && (hw & 1);
}

bool pagingDirtyBitByte(size_t i, uint8_t hw, uint8_t emu) {
  // Present (bit 0) and accessed (bit 5): an entry the walk used.
  return i % 4 == 0 && (hw ^ emu) == 0x40 && (emu & 0x40) && (emu & 0x21) == 0x21;
}

bool faultFrameResumeFlagByte(size_t i, uint8_t hw, uint8_t emu) {
  return i % 4 == 2 && (hw ^ emu) == 1 && (emu & 1);
}

bool hostTrapFlagInR11(std::string_view instruction, const CpuState& hw, const CpuState& emu) {
  const uint64_t k = hw.reg(Gpr::kR11), f = emu.reg(Gpr::kR11);
  return instruction == "syscall" && (k ^ f) == flags::kTF && (k & flags::kTF);
}

bool generalDetectByKvm(std::string_view instruction, const CpuState& after) {
  const bool movDr =
      instruction.starts_with("mov dr") ||
      (instruction.starts_with("mov ") && instruction.find(", dr") != std::string::npos);
  return movDr && (after.dr6 & kDr6Bd);
}

ReturnRipSlot returnRipSlot(const CpuState& s) {
  if (s.msr.efer & efer::kLMA) return {s.reg(Gpr::kRsp), 8};
  const uint64_t base = s.segment(SegReg::kSs).base;
  if (s.cr0 & cr0::kPE) return {(base + s.reg(Gpr::kRsp)) & 0xFFFFFFFF, 4};
  return {(base + (s.reg(Gpr::kRsp) & 0xFFFF)) & 0xFFFFFFFF, 2};
}

bool hostTrapFlagOnly(std::span<const uint8_t> hw, std::span<const uint8_t> emu) {
  bool any = false;
  for (size_t i = 0; i < hw.size() && i < emu.size(); ++i) {
    if (hw[i] == emu[i]) continue;
    if (!hostTrapFlagByte(i, hw[i], emu[i])) return false;
    any = true;
  }
  return any;
}

std::vector<FieldDifference> compareStates(const CpuState& ref, CpuState& fol,
                                           uint32_t undefinedFlags,
                                           std::map<MaskReason, uint64_t>& masked, bool midRep) {
  // What the CPU model explains first: adopted where it would spread.
  const uint64_t flagDiff = (ref.rflags ^ fol.rflags) & undefinedFlags & flags::kArith;
  if (flagDiff != 0) {
    fol.rflags ^= flagDiff;
    ++masked[MaskReason::kUndefinedFlags];
  }
  FpuState& ff = fol.fpu;
  const FpuState& rf = ref.fpu;
  if (ff.fip != rf.fip || ff.fdp != rf.fdp || ff.fop != rf.fop || ff.fcs != rf.fcs ||
      ff.fds != rf.fds) {
    ff.fip = rf.fip;
    ff.fdp = rf.fdp;
    ff.fop = rf.fop;
    ff.fcs = rf.fcs;
    ff.fds = rf.fds;
    ++masked[MaskReason::kFpuPointers];
  }
  uint64_t flagsMask = ~0ull;
  if ((ref.rflags ^ fol.rflags) == flags::kTF && (fol.rflags & flags::kTF)) {
    flagsMask = ~flags::kTF;
    ++masked[MaskReason::kGuestTrapFlagHidden];
  }
  if (fol.rflags & flags::kVM) {
    for (int i = 0; i < kNumSegRegs; ++i) {
      SegmentRegister& fs = fol.seg[i];
      if (fs.attributes != ref.seg[i].attributes &&
          ((fs.attributes ^ ref.seg[i].attributes) & ~0xFu) == 0) {
        fs.attributes = ref.seg[i].attributes;
        ++masked[MaskReason::kV86SegmentType];
      }
    }
  }
  // KVM reports SVM's G as `limit > 0xFFFFF` (svm_get_segment), not the
  // descriptor's bit, which the emulator keeps: a G = 1 descriptor with a
  // limit field under 0x100 (hidden limit 0xFFF..0xFFFFF) reads back G = 0.
  // The hidden limit, which is what the CPU checks, is compared.
  for (int i = 0; i < kNumSegRegs; ++i) {
    SegmentRegister& fs = fol.seg[i];
    const SegmentRegister& rs = ref.seg[i];
    if ((fs.attributes ^ rs.attributes) == segattr::kG && fs.limit == rs.limit &&
        ((rs.attributes & segattr::kG) != 0) == (rs.limit > 0xFFFFF)) {
      fs.attributes = rs.attributes;
      ++masked[MaskReason::kSegmentGranularity];
    }
  }
  if (midRep && ((ref.rflags ^ fol.rflags) & flags::kRF) && (fol.rflags & flags::kRF)) {
    // Not adopted: the emulator's RF keeps its instruction breakpoint quiet.
    flagsMask = ~flags::kRF;
    ++masked[MaskReason::kRepResumeFlag];
  }
  bool shadowMasked = false;
  if (ref.pending.shadow != fol.pending.shadow && ref.pending.shadow != InterruptShadow::kNone &&
      fol.pending.shadow != InterruptShadow::kNone) {
    // Not adopted: the emulator's kind decides what the shadow blocks.
    shadowMasked = true;
    ++masked[MaskReason::kShadowKind];
  }

  // Compared with what is masked but not adopted taken out of both sides
  // (most steps: nothing differs).
  {
    const uint64_t steps = fol.steps;  // not compared: KVM counts exits
    fol.steps = ref.steps;
    const bool same = ref == fol;
    fol.steps = steps;
    if (same) return {};
  }
  CpuState r = ref, f = fol;
  r.rflags &= flagsMask;
  f.rflags &= flagsMask;
  if (shadowMasked) f.pending.shadow = r.pending.shadow;
  return stateDifferences(r, f);
}

std::string describeDifference(const LockstepResult& r) {
  std::string s;
  char line[200];
  std::snprintf(line, sizeof line,
                "first difference after %" PRIu64 " instructions (emulator step %" PRIu64 ")\n",
                r.steps, r.followerSteps);
  if (r.found.size() > 1)
    std::snprintf(line, sizeof line,
                  "difference %zu after %" PRIu64 " instructions (emulator step %" PRIu64 ")\n",
                  r.found.size(), r.steps, r.followerSteps);
  s += line;
  std::snprintf(line, sizeof line, "  instruction  %#" PRIx64 "  %s\n", r.instructionRip,
                r.instruction.empty() ? "(bytes not readable)" : r.instruction.c_str());
  s += line;
  if (!r.accessProblem.empty()) s += "  access       " + r.accessProblem + "\n";
  for (size_t i = 0; i < r.pagesDiffering.size() && i < 8; ++i) {
    std::snprintf(line, sizeof line,
                  "  RAM page     %#" PRIx64 " differs: ", r.pagesDiffering[i] * kPage);
    s += line;
    s += (i < r.pageDetails.size() ? r.pageDetails[i] : std::string()) + "\n";
  }
  if (!r.differences.empty()) {
    std::snprintf(line, sizeof line, "  %-22s %-18s %-18s\n", "field", "KVM", "emulator");
    s += line;
  }
  for (const FieldDifference& f : r.differences) {
    std::snprintf(line, sizeof line, "  %-22s %#-18" PRIx64 " %#-18" PRIx64 "\n", f.field.c_str(),
                  f.reference, f.follower);
    s += line;
  }
  // Both states in full (the registers a reader looks at first), with the
  // state before the instruction.
  s += "  state        before             KVM after          emulator after\n";
  auto row = [&](const char* name, uint64_t b, uint64_t k, uint64_t e) {
    std::snprintf(line, sizeof line, "  %-12s %#-18" PRIx64 " %#-18" PRIx64 " %#-18" PRIx64 "%s\n",
                  name, b, k, e, k != e ? "  *" : "");
    s += line;
  };
  for (int i = 0; i < kNumGprs; ++i)
    row(kGprNames[i], r.before.gpr[i], r.reference.gpr[i], r.follower.gpr[i]);
  row("rip", r.before.rip, r.reference.rip, r.follower.rip);
  row("rflags", r.before.rflags, r.reference.rflags, r.follower.rflags);
  for (int i = 0; i < kNumSegRegs; ++i)
    row(kSegNames[i], r.before.seg[i].selector, r.reference.seg[i].selector,
        r.follower.seg[i].selector);
  row("cr0", r.before.cr0, r.reference.cr0, r.follower.cr0);
  row("cr2", r.before.cr2, r.reference.cr2, r.follower.cr2);
  row("cr3", r.before.cr3, r.reference.cr3, r.follower.cr3);
  row("cr4", r.before.cr4, r.reference.cr4, r.follower.cr4);
  row("efer", r.before.msr.efer, r.reference.msr.efer, r.follower.msr.efer);
  row("dr6", r.before.dr6, r.reference.dr6, r.follower.dr6);
  row("dr7", r.before.dr7, r.reference.dr7, r.follower.dr7);
  return s;
}

class Lockstep::Impl {
 public:
  Impl(machine::Machine& m, const CpuState& initial, BackendFactory make, LockstepOptions o)
      : machine_(m), initial_(initial), make_(std::move(make)), options_(o) {}
  ~Impl() {
    machine_.bindCpuState(nullptr);
    follower_.reset();
    if (followerRam_ != nullptr) munmap(followerRam_, ramBytes_);
  }

  Status start();
  LockstepResult run();

 private:
  std::optional<Disassembly> instructionAt(const machine::CpuBackend& b, uint64_t& linear) const;
  void comparePage(uint64_t page, LockstepResult& r);
  bool comparePages(std::span<const uint64_t> pages, LockstepResult& r);
  bool compareAllRam(LockstepResult& r);
  void adoptFollower();
  uint64_t adoptReference(LockstepResult& r);
  bool record(LockstepResult& r, const std::string& message);
  LockstepResult& finish(LockstepResult& r, LockstepResult::End end, std::string message);

  machine::Machine& machine_;
  CpuState initial_;
  BackendFactory make_;
  LockstepOptions options_;
  std::deque<Access> queue_;
  std::unique_ptr<ReferenceEnvironment> referenceEnv_;
  std::unique_ptr<FollowerEnvironment> followerEnv_;
  std::unique_ptr<machine::CpuBackend> reference_;
  std::unique_ptr<EmuBackend> follower_;
  uint8_t* followerRam_ = nullptr;
  size_t ramBytes_ = 0;
  std::vector<uint64_t> lastFollowerPages_;
  bool pushedSegment_ = false;    // the last catch-up ran a PUSH of a segment register
  bool deliveredFault_ = false;   // the last catch-up delivered an exception
  bool accessedBitStep_ = false;  // comparePages found a kDescriptorAccessed byte
  // The last compared step's undefined flags and REP position (the final
  // comparison masks as it did).
  uint32_t lastUndefined_ = 0;
  bool lastMidRep_ = false;
};

Status Lockstep::Impl::start() {
  PhysicalMemory memory = machine_.physicalMemory();
  ramBytes_ = memory.ram.size();
  void* p = mmap(nullptr, ramBytes_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return makeError("lockstep: cannot map a second copy of guest RAM");
  followerRam_ = static_cast<uint8_t*>(p);
  // A fresh mapping reads as zeros: copy the pages that are not.
  const RamPages pages = machine_.nonZeroPages();
  for (size_t k = 0; k < pages.pageCount(); ++k)
    std::memcpy(followerRam_ + pages.numbers[k] * kPage, pages.page(k).data(), kPage);

  referenceEnv_ = std::make_unique<ReferenceEnvironment>(machine_, queue_);
  auto ref = make_(machine_.cpuModel(), memory, *referenceEnv_);
  if (!ref) return ref.error();
  reference_ = std::move(*ref);
  followerEnv_ = std::make_unique<FollowerEnvironment>(machine_, queue_);
  PhysicalMemory fm{std::span<uint8_t>(followerRam_, ramBytes_), memory.mmioHoles};
  follower_ = std::make_unique<EmuBackend>(machine_.cpuModel(), fm, *followerEnv_);
  reference_->setState(initial_);
  reference_->setStepReadBack(0);  // run() asks for what it needs per step
  follower_->setState(initial_);
  follower_->setDirtyTracking(true);
  (void)follower_->takeDirtyPages();
  followerEnv_->setReference(&reference_->state(), &follower_->state());
  // Virtual time follows the emulator's exact step count.
  machine_.bindCpuState(&follower_->state());
  if (!reference_->failure().empty()) return makeError(reference_->failure());
  return {};
}

std::optional<Disassembly> Lockstep::Impl::instructionAt(const machine::CpuBackend& b,
                                                         uint64_t& linear) const {
  linear = linearRip(b.state());
  uint8_t bytes[15];
  for (size_t n = sizeof bytes; n > 0; --n) {
    if (b.readLinear(linear, std::span<uint8_t>(bytes, n))) {
      Disassembly d = disassemble(std::span<const uint8_t>(bytes, n), cpuMode(b.state()), linear);
      if (d.length != 0) return d;
      return std::nullopt;
    }
  }
  return std::nullopt;
}

void Lockstep::Impl::comparePage(uint64_t p, LockstepResult& r) {
  if (p * kPage >= ramBytes_) return;
  uint8_t* hw = machine_.ram().data() + p * kPage;
  uint8_t* emu = followerRam_ + p * kPage;
  if (std::memcmp(hw, emu, kPage) == 0) return;
  if (pushedSegment_ && adoptSegmentPushWidth({hw, kPage}, {emu, kPage})) {
    ++r.masked[MaskReason::kSegmentPushWidth];
    if (std::memcmp(hw, emu, kPage) == 0) return;
  }
  // Byte by byte: what the CPU model explains is adopted (each way, see
  // the header) and counted once per page; the rest is a difference.
  bool accessed = false, trapFlag = false, dirtyBit = false, resumeFlag = false, other = false;
  for (size_t i = 0; i < kPage; ++i) {
    if (hw[i] == emu[i]) continue;
    if (descriptorAccessedByte(i, hw[i], emu[i])) {
      emu[i] = hw[i];
      accessed = true;
    } else if (hostTrapFlagByte(i, hw[i], emu[i])) {
      hw[i] = emu[i];
      trapFlag = true;
    } else if (accessedBitStep_ && pagingDirtyBitByte(i, hw[i], emu[i])) {
      emu[i] = hw[i];
      dirtyBit = true;
    } else if (deliveredFault_ && faultFrameResumeFlagByte(i, hw[i], emu[i])) {
      emu[i] = hw[i];
      resumeFlag = true;
    } else {
      other = true;
    }
  }
  if (accessed) ++r.masked[MaskReason::kDescriptorAccessed];
  if (trapFlag) ++r.masked[MaskReason::kHostTrapFlag];
  if (dirtyBit) ++r.masked[MaskReason::kPagingDirtyBit];
  if (resumeFlag) ++r.masked[MaskReason::kFaultFrameResumeFlag];
  if (!other) return;
  r.pagesDiffering.push_back(p);
  r.pageDetails.push_back(pageDetail(p, hw, emu));
}

bool Lockstep::Impl::comparePages(std::span<const uint64_t> pages, LockstepResult& r) {
  // Whether the emulator wrote a descriptor's accessed bit the host left
  // clear in this step, on any of its pages: then its paging D bit too.
  accessedBitStep_ = false;
  for (uint64_t p : pages) {
    if (p * kPage >= ramBytes_) continue;
    const uint8_t* hw = machine_.ram().data() + p * kPage;
    const uint8_t* emu = followerRam_ + p * kPage;
    if (std::memcmp(hw, emu, kPage) == 0) continue;
    for (size_t i = 5; i < kPage && !accessedBitStep_; i += 8)
      accessedBitStep_ = descriptorAccessedByte(i, hw[i], emu[i]);
  }
  for (uint64_t p : pages) comparePage(p, r);
  accessedBitStep_ = false;
  return r.pagesDiffering.empty();
}

bool Lockstep::Impl::compareAllRam(LockstepResult& r) {
  ++r.memoryCompares;
  for (uint64_t p = 0; p < ramBytes_ / kPage; ++p) comparePage(p, r);
  return r.pagesDiffering.empty();
}

void Lockstep::Impl::adoptFollower() {
  // The reference takes the follower's state and the pages it wrote.
  uint8_t* hw = machine_.ram().data();
  for (uint64_t p : lastFollowerPages_)
    if (p * kPage < ramBytes_) std::memcpy(hw + p * kPage, followerRam_ + p * kPage, kPage);
  reference_->setState(follower_->state());
}

// The follower takes the reference's side (LockstepOptions::maxDifferences):
// its whole state but the step count, the pages that differ beyond the
// masks, and no access left over. The number of pages taken.
uint64_t Lockstep::Impl::adoptReference(LockstepResult& r) {
  reference_->refreshState(state_part::kAll);
  CpuState s = reference_->state();
  s.steps = follower_->state().steps;
  follower_->setState(s);
  uint64_t pages = 0;
  const uint8_t* hw = machine_.ram().data();
  for (uint64_t p = 0; p < ramBytes_ / kPage; ++p) {
    if (std::memcmp(hw + p * kPage, followerRam_ + p * kPage, kPage) == 0) continue;
    comparePage(p, r);  // what the masks explain goes its own way
    if (std::memcmp(hw + p * kPage, followerRam_ + p * kPage, kPage) == 0) continue;
    std::memcpy(followerRam_ + p * kPage, hw + p * kPage, kPage);
    follower_->cpu().notifyRamWritten(p * kPage, kPage);
    ++pages;
  }
  queue_.clear();
  followerEnv_->clearProblem();
  r.differences.clear();
  r.pagesDiffering.clear();
  r.pageDetails.clear();
  r.accessProblem.clear();
  return pages;
}

// Logs the difference the result describes and tells the caller; whether
// the run stops there.
bool Lockstep::Impl::record(LockstepResult& r, const std::string& message) {
  LockstepDifference d;
  d.step = r.steps;
  d.followerStep = follower_->state().steps;
  d.rip = r.instructionRip;
  d.instruction = r.instruction;
  d.message = message;
  if (!r.accessProblem.empty()) {
    d.first = "access: " + r.accessProblem;
  } else if (!r.differences.empty()) {
    char t[120];
    std::snprintf(t, sizeof t, "%s: KVM %#" PRIx64 ", emulator %#" PRIx64,
                  r.differences[0].field.c_str(), r.differences[0].reference,
                  r.differences[0].follower);
    d.first = t;
  } else if (!r.pageDetails.empty()) {
    d.first = "RAM " + r.pageDetails[0];
  } else {
    d.first = message;
  }
  r.found.push_back(std::move(d));
  r.followerSteps = follower_->state().steps;
  if (options_.onDifference) options_.onDifference(r);
  return options_.maxDifferences == 1 ||
         (options_.maxDifferences != 0 && r.found.size() >= options_.maxDifferences);
}

LockstepResult& Lockstep::Impl::finish(LockstepResult& r, LockstepResult::End end,
                                       std::string message) {
  r.end = end;
  r.message = std::move(message);
  r.followerSteps = follower_->state().steps;
  return r;
}

LockstepResult Lockstep::Impl::run() {
  using End = LockstepResult::End;
  LockstepResult r;
  const auto startTime = std::chrono::steady_clock::now();
  const auto deadline =
      options_.timeoutSeconds > 0
          ? startTime + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(options_.timeoutSeconds))
          : std::chrono::steady_clock::time_point::max();
  auto done = [&](End end, std::string message) -> LockstepResult {
    // A last look at the whole state (KVM reinitialises the vCPU after a
    // triple fault) and all of RAM, unless a difference already ended the run.
    bool endStateStops = true;  // a difference found here ends the comparisons
    if (end != End::kDifference && end != End::kReferenceFailed && end != End::kTripleFault) {
      endStateStops = false;
      reference_->refreshState(state_part::kAll);
      if (!reference_->failure().empty()) {
        r.reference = reference_->state();
        r.follower = follower_->state();
        finish(r, End::kReferenceFailed, reference_->failure());
        return r;
      }
      CpuState f = follower_->state();
      r.differences = compareStates(reference_->state(), f, lastUndefined_, r.masked, lastMidRep_);
      if (!r.differences.empty()) {
        r.before = r.reference = reference_->state();
        r.follower = follower_->state();
        message = "the states differ at the end (" + message + ")";
        end = End::kDifference;
        r.instructionRip = 0;
        r.instruction.clear();
        endStateStops = record(r, message);
      }
    }
    if ((end != End::kDifference || !endStateStops) && end != End::kReferenceFailed &&
        !compareAllRam(r)) {
      r.before = r.reference = reference_->state();
      r.follower = follower_->state();
      message = "RAM differs at the end (" + message + ")";
      end = End::kDifference;
      r.instructionRip = 0;
      r.instruction.clear();
      record(r, message);
    }
    if (end != End::kDifference && end != End::kReferenceFailed) {
      r.reference = reference_->state();
      r.follower = follower_->state();
    }
    finish(r, end, std::move(message));
    r.wallSeconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - startTime).count();
    return r;
  };
  machine::VirtualClock& clock = machine_.clock();
  uint64_t haltedSinceNs = 0;
  bool idle = false;
  uint64_t nextFullCompare = options_.memoryCompareInterval;
  const uint64_t fullStateEvery = std::max<uint64_t>(options_.fullStateInterval, 1);
  uint64_t nextFullState = fullStateEvery;

  for (;;) {
    if (const auto& stop = machine_.stopRequest()) {
      r.guestEnd = stop->reason;
      r.exitStatus = stop->exitStatus;
      return done(End::kGuestEnded, stop->message);
    }
    if (options_.interruptFlag != nullptr && *options_.interruptFlag != 0)
      return done(End::kInterrupted, "interrupted by a signal");
    if (std::chrono::steady_clock::now() >= deadline)
      return done(End::kTimeout, "wall-clock limit reached");
    if (options_.maxSteps != 0 && r.steps >= options_.maxSteps)
      return done(End::kStepLimit,
                  "step limit of " + std::to_string(options_.maxSteps) + " instructions reached");

    clock.clearReschedule();
    machine_.advanceTimers();

    // Interrupts: where the follower's state accepts them, into both.
    const CpuState& f = follower_->state();
    bool injected = reference_->pendingInjection() || follower_->pendingInjection();
    if (!injected) {
      if (machine_.nmiPending() && !f.pending.nmiBlocked &&
          f.pending.shadow != InterruptShadow::kMovSs) {
        machine_.acknowledgeNmi();
        reference_->inject(machine::InjectedEvent::nmi());
        follower_->inject(machine::InjectedEvent::nmi());
        injected = true;
      } else if ((f.rflags & flags::kIF) && f.pending.shadow == InterruptShadow::kNone &&
                 machine_.interruptPending()) {
        const uint8_t v = machine_.acknowledgeInterrupt();
        reference_->inject(machine::InjectedEvent::interrupt(v));
        follower_->inject(machine::InjectedEvent::interrupt(v));
        injected = true;
      }
    }

    // Both halted with nothing to deliver: virtual time jumps ahead.
    if (!injected && f.pending.halted && reference_->state().pending.halted) {
      if (!(f.rflags & flags::kIF) && !machine_.nmiPending())
        return done(End::kHang, "HLT with interrupts disabled at rip " + hex(f.rip));
      const auto next = machine_.nextDeadlineNs();
      if (!idle) haltedSinceNs = clock.nowNs();
      idle = true;
      if (!next || *next - haltedSinceNs > options_.idleHangNs)
        return done(End::kHang, "halted at rip " + hex(f.rip) + " with no interrupt to come");
      clock.skipTo(*next);
      continue;
    }
    idle = false;

    r.before = f;
    uint64_t rip0 = 0;
    const std::optional<Disassembly> insn = instructionAt(*follower_, rip0);

    const StepResult rr = reference_->step();
    if (!reference_->failure().empty()) {
      r.reference = reference_->state();
      r.follower = follower_->state();
      return done(End::kReferenceFailed, reference_->failure());
    }
    ++r.steps;
    const CpuState& k = reference_->state();

    // What the instruction writes of the MSRs is read back before the
    // follower runs it: its WRMSR of the TSC takes the reference's new
    // IA32_TSC_ADJUST (FollowerEnvironment::readTsc).
    StateParts early = 0;
    if (insn && (insn->writes & state_part::kMsrs)) {
      early = state_part::kMsrs;
      reference_->refreshState(early);
    }

    // The follower catches up: until its RIP is the reference's.
    uint32_t undefined = 0;
    pushedSegment_ = false;
    deliveredFault_ = false;
    bool guestDebugTrap = false;
    bool tripleFault = false;
    // What the reference must read back of its costly parts (see
    // LockstepOptions::fullStateInterval): what the instructions the
    // follower ran can write; all when the step was not one plain
    // instruction (or a REP instruction's iterations).
    StateParts parts = 0;
    bool plain = !injected;
    uint64_t catchUp = 0;
    for (uint64_t n = 0; n < kCatchUpLimit; ++n) {
      uint64_t at = 0;
      ++catchUp;
      // The first is the instruction decoded before the reference's step.
      const std::optional<Disassembly> d = catchUp == 1 ? insn : instructionAt(*follower_, at);
      if (catchUp == 1) at = rip0;
      // A REP string instruction's iterations are steps at its address.
      if (catchUp > 1 && !(insn && at == rip0 && insn->text.starts_with("rep"))) plain = false;
      if (d) {
        undefined |= d->undefinedFlags;
        parts |= d->writes;
        static const char* const kPushSeg[] = {"push es", "push cs", "push ss",
                                               "push ds", "push fs", "push gs"};
        for (const char* p : kPushSeg)
          if (d->text == p) pushedSegment_ = true;
      }
      const uint64_t before = follower_->state().steps;
      const StepResult fr = follower_->step();
      if (fr.outcome != StepOutcome::kRetired) plain = false;
      if (fr.outcome == StepOutcome::kException) deliveredFault_ = true;
      if (!followerEnv_->problem().empty()) break;
      if (fr.outcome == StepOutcome::kTripleFault) {
        tripleFault = true;
        break;
      }
      const CpuState& now = follower_->state();
      if (now.rip == k.rip) break;
      if (fr.outcome == StepOutcome::kException && fr.vector == 1) {
        // A #DB the guest armed: KVM reports it to the host instead of
        // delivering it. But general detect (DR7.GD) on a MOV DR is KVM's
        // own: while it debugs the guest it intercepts MOV DR, and its
        // emulator raises the fault and delivers it; the handler then runs
        // unstepped (the delivery clears TF) up to the next instruction KVM
        // emulates. Where KVM did not stop at the fault, the follower
        // follows it into the handler.
        if (!(d && generalDetectByKvm(d->text, now) &&
              !eventFrameReturnsTo(now, *follower_, k.rip))) {
          guestDebugTrap = true;
          break;
        }
        ++r.masked[MaskReason::kDebugTrapKvmDelivered];
      }
      if (fr.outcome == StepOutcome::kHalted && now.steps == before) break;
    }
    lastFollowerPages_ = follower_->takeDirtyPages();

    // A difference: reported, then the end or (maxDifferences) the
    // follower takes the reference's side and the run goes on.
    auto difference = [&](std::string message,
                          bool canGoOn = true) -> std::optional<LockstepResult> {
      r.reference = reference_->state();
      r.follower = follower_->state();
      r.instructionRip = rip0;
      r.instruction = insn ? insn->text : std::string();
      if (record(r, message) || !canGoOn) {
        if (options_.maxDifferences != 1 && canGoOn)
          message += " (difference " + std::to_string(r.found.size()) + ", the --keep-going limit)";
        return done(End::kDifference, std::move(message));
      }
      r.found.back().pagesAdopted = adoptReference(r);
      if (!reference_->failure().empty()) return done(End::kReferenceFailed, reference_->failure());
      return std::nullopt;
    };
    if (!followerEnv_->problem().empty()) {
      r.accessProblem = followerEnv_->problem();
      if (auto e = difference("the emulator's access differs from KVM's")) return *e;
      continue;
    }
    if (!queue_.empty()) {
      r.accessProblem = "KVM made a " + describe(queue_.front()) + " that the emulator did not";
      if (auto e = difference("KVM's access differs from the emulator's")) return *e;
      continue;
    }
    if (rr.outcome == StepOutcome::kTripleFault || tripleFault) {
      // KVM reinitialises the vCPU after a shutdown (SVM): its state is the
      // reset state, not the state at the fault; RAM is compared.
      if (rr.outcome == StepOutcome::kTripleFault && tripleFault)
        return done(End::kTripleFault, "triple fault on both sides at rip " + hex(r.before.rip));
      // KVM's vCPU is then in its reset state: nothing to go on from.
      return *difference(tripleFault ? "the emulator triple-faulted, KVM did not"
                                     : "KVM triple-faulted, the emulator did not",
                         false);
    }
    if (guestDebugTrap && follower_->state().rip != k.rip) {
      ++r.masked[MaskReason::kGuestDebugTrap];
      adoptFollower();
      continue;
    }
    if (!plain || r.steps >= nextFullState) {
      parts = state_part::kAll;
      nextFullState = r.steps + fullStateEvery;
    }
    if (parts != state_part::kAll) {
      ++r.partialReads;
      parts &= ~early;
    }
    reference_->refreshState(parts);
    if (!reference_->failure().empty()) {
      r.reference = reference_->state();
      r.follower = follower_->state();
      return done(End::kReferenceFailed, reference_->failure());
    }
    if (insn && hostTrapFlagInR11(insn->text, k, follower_->state())) {
      reference_->refreshState(state_part::kAll);
      CpuState fixed = k;
      fixed.reg(Gpr::kR11) = follower_->state().reg(Gpr::kR11);
      reference_->setState(fixed);
      ++r.masked[MaskReason::kHostTrapFlagInR11];
    }
    CpuState adopted = follower_->state();
    const bool midRep = insn && adopted.rip == r.before.rip && adopted.rip == k.rip &&
                        (insn->text.starts_with("rep") || insn->text.starts_with("repe") ||
                         insn->text.starts_with("repne"));
    r.differences = compareStates(k, adopted, undefined, r.masked, midRep);
    lastUndefined_ = undefined;
    lastMidRep_ = midRep;
    if (!(adopted == follower_->state())) follower_->setState(adopted);
    if (!r.differences.empty()) {
      if (auto e = difference("the states differ")) return *e;
      continue;
    }
    if (!comparePages(lastFollowerPages_, r)) {
      if (auto e = difference("RAM differs")) return *e;
      continue;
    }
    if (options_.memoryCompareInterval != 0 && r.steps >= nextFullCompare) {
      nextFullCompare = r.steps + options_.memoryCompareInterval;
      if (!compareAllRam(r)) {
        if (auto e = difference("RAM differs")) return *e;
        continue;
      }
    }
  }
}

Lockstep::Lockstep(machine::Machine& machine, const CpuState& initial, BackendFactory makeReference,
                   LockstepOptions options)
    : impl_(std::make_unique<Impl>(machine, initial, std::move(makeReference), options)) {}
Lockstep::~Lockstep() = default;
Status Lockstep::start() {
  return impl_->start();
}
LockstepResult Lockstep::run() {
  return impl_->run();
}

}  // namespace ttvm
