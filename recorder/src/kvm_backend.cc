#include "ttvm/recorder/kvm_backend.h"

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <utility>

#include "ttvm/base/hex.h"
#include "ttvm/base/log.h"
#include "ttvm/emulator/disassembler.h"
#include "ttvm/machine/loader.h"

namespace ttvm {
namespace {

constexpr uint64_t kPage = 4096;
// run() gives the loop back after at most this much wall time, and a guest
// still inside KVM_RUN then is kicked out.
constexpr auto kWallSlice = std::chrono::milliseconds(20);
// Instructions stepped at most to leave possible interrupt shadows before a
// stop point (each step leaves one; MOV SS chains are bounded by this).
constexpr int kMaxShadowSteps = 4;
// ... and after at least this much when the loop asks for less (a timer due
// sooner): a guest that computes without exiting gets its timer interrupts
// at most this late, and the trace at most this many stop points per second.
constexpr auto kMinWallSlice = std::chrono::milliseconds(1);

uint64_t loadLe(std::span<const uint8_t> bytes) {
  uint64_t v = 0;
  std::memcpy(&v, bytes.data(), std::min<size_t>(bytes.size(), 8));
  return v;
}

void storeLe(std::span<uint8_t> bytes, uint64_t v) {
  std::memcpy(bytes.data(), &v, std::min<size_t>(bytes.size(), 8));
}

// serveMsr's environment: an emulated RDMSR or WRMSR reaches the machine
// for its MSRs and the TSC, and nothing else can happen in that one step.
class MsrEnvironment final : public Environment {
 public:
  explicit MsrEnvironment(Environment& env) : env_(env) {}
  uint32_t portIn(uint16_t, unsigned) override { return unexpected("a port read"), 0; }
  void portOut(uint16_t, unsigned, uint32_t) override { unexpected("a port write"); }
  uint64_t mmioRead(uint64_t, unsigned) override { return unexpected("an MMIO read"), 0; }
  void mmioWrite(uint64_t, unsigned, uint64_t) override { unexpected("an MMIO write"); }
  uint64_t readTsc() override { return env_.readTsc(); }
  std::optional<uint64_t> readRandom(unsigned) override {
    unexpected("RDRAND");
    return std::nullopt;
  }
  std::optional<uint64_t> readMsr(uint32_t index) override { return env_.readMsr(index); }
  bool writeMsr(uint32_t index, uint64_t value) override { return env_.writeMsr(index, value); }
  bool interruptPending() override { return false; }
  uint8_t acknowledgeInterrupt() override { return unexpected("an interrupt"), 0; }
  bool nmiPending() override { return false; }
  void acknowledgeNmi() override { unexpected("an NMI"); }
  bool stopRequested() override { return false; }

 private:
  static void unexpected(const char* what) {
    TTVM_ASSERT(false, "an emulated RDMSR/WRMSR made ", what);
  }
  Environment& env_;
};

}  // namespace

// emulateRun's environment: the instruction reaches the machine as
// it would in the emulator (each access logged as the environment logs it),
// and the accesses are counted; interrupts are KVM's business (offered at
// exits), never taken inside the emulated instruction.
class KvmBackend::EmulatedEnvironment final : public Environment {
 public:
  explicit EmulatedEnvironment(Environment& env) : env_(env) {}
  uint32_t portIn(uint16_t port, unsigned size) override {
    ++accesses_;
    return env_.portIn(port, size);
  }
  void portOut(uint16_t port, unsigned size, uint32_t value) override {
    ++accesses_;
    env_.portOut(port, size, value);
  }
  uint64_t mmioRead(uint64_t addr, unsigned size) override {
    ++accesses_;
    return env_.mmioRead(addr, size);
  }
  void mmioWrite(uint64_t addr, unsigned size, uint64_t value) override {
    ++accesses_;
    env_.mmioWrite(addr, size, value);
  }
  uint64_t readTsc() override {
    ++accesses_;
    return env_.readTsc();
  }
  std::optional<uint64_t> readRandom(unsigned size) override {
    ++accesses_;
    return env_.readRandom(size);
  }
  std::optional<uint64_t> readMsr(uint32_t index) override {
    ++accesses_;
    return env_.readMsr(index);
  }
  bool writeMsr(uint32_t index, uint64_t value) override {
    ++accesses_;
    return env_.writeMsr(index, value);
  }
  bool interruptPending() override { return false; }
  uint8_t acknowledgeInterrupt() override {
    TTVM_ASSERT(false, "an emulated instruction took an interrupt");
    return 0;
  }
  bool nmiPending() override { return false; }
  void acknowledgeNmi() override { TTVM_ASSERT(false, "an emulated instruction took an NMI"); }
  bool stopRequested() override { return false; }

  uint64_t takeAccesses() { return std::exchange(accesses_, 0); }

 private:
  Environment& env_;
  uint64_t accesses_ = 0;
};

std::vector<uint64_t> tscReadingPages(std::span<const uint8_t> ram,
                                      std::span<const PhysicalMemory::Range> holes) {
  std::vector<uint64_t> pages;
  auto mark = [&](uint64_t at) {
    const uint64_t page = at / kPage;
    for (const PhysicalMemory::Range& h : holes)
      if (page * kPage < h.end && h.begin < (page + 1) * kPage) return;
    if (pages.empty() || pages.back() < page) pages.push_back(page);
  };
  const uint8_t* base = ram.data();
  const size_t n = ram.size();
  for (size_t i = 0; i + 1 < n;) {
    const void* hit = std::memchr(base + i, 0x0F, n - 1 - i);
    if (hit == nullptr) break;
    i = size_t(static_cast<const uint8_t*>(hit) - base);
    size_t length = 0;
    if (base[i + 1] == 0x31)
      length = 2;  // RDTSC
    else if (i + 2 < n && base[i + 1] == 0x01 && base[i + 2] == 0xF9)
      length = 3;  // RDTSCP
    if (length != 0) {
      mark(i);
      mark(i + length - 1);
    }
    ++i;
  }
  return pages;
}

bool mayFollowShadowOpener(std::span<const uint8_t> before, CpuMode mode) {
  for (size_t k = 1; k <= before.size() && k <= 15; ++k) {
    const std::span<const uint8_t> tail = before.subspan(before.size() - k);
    const Disassembly d = disassemble(tail, mode, 0);
    if (d.length != k) continue;
    if (d.text == "sti" || d.text == "pop ss" || d.text.starts_with("mov ss,")) return true;
  }
  return false;
}

void normalizeSvmSegments(CpuState& now, const CpuState& before) {
  for (int i = 0; i < kNumSegRegs; ++i) {
    SegmentRegister& r = now.seg[i];
    if (!(r.attributes & segattr::kUnusable) && (r.attributes & segattr::kS))
      r.attributes |= segattr::kAccessed;
    if (i != static_cast<int>(SegReg::kCs) && i != static_cast<int>(SegReg::kSs) &&
        (r.selector & ~3u) == 0 && (r.attributes & segattr::kUnusable))
      r.limit = before.seg[i].limit;
    // A data segment made unusable (IRET to an outer level with DPL <
    // CPL): SVM reports it not present, the emulator keeps its attributes.
    if (i != static_cast<int>(SegReg::kCs) && i != static_cast<int>(SegReg::kSs) &&
        (r.attributes & segattr::kUnusable) &&
        (r.attributes | segattr::kP) == (before.seg[i].attributes | segattr::kUnusable))
      r.attributes = before.seg[i].attributes | segattr::kUnusable;
  }
  // A conforming code segment keeps the CPL (SDM vol. 3 5.8.1.2): SVM's CS
  // holds the descriptor's DPL and the CPL is the VMCB's, which KVM reports
  // as SS's DPL; the emulator's state keeps the CPL in CS's DPL.
  SegmentRegister& cs = now.segment(SegReg::kCs);
  const uint32_t conformingCode = segattr::kS | 0xC;
  if ((now.cr0 & cr0::kPE) && !(now.rflags & flags::kVM) &&
      (cs.attributes & (segattr::kS | 0x8 | 0x4)) == conformingCode) {
    const uint32_t dplMask = 3u << segattr::kDplShift;
    cs.attributes = (cs.attributes & ~dplMask) | (now.segment(SegReg::kSs).attributes & dplMask);
  }
}

StringPrefixes stringPrefixes(std::span<const uint8_t> code, CpuMode mode) {
  StringPrefixes p;
  p.addrMask = mode == CpuMode::kLong64 ? ~0ull
               : (mode == CpuMode::kProtected32 || mode == CpuMode::kCompatibility32)
                   ? 0xFFFFFFFFull
                   : 0xFFFFull;
  size_t i = 0;
  for (; i < code.size(); ++i) {
    const uint8_t b = code[i];
    if (b == 0xF2 || b == 0xF3) {
      p.rep = true;
    } else if (b == 0x67) {
      p.addrMask = p.addrMask == ~0ull           ? 0xFFFFFFFFull
                   : p.addrMask == 0xFFFFFFFFull ? 0xFFFFull
                                                 : 0xFFFFFFFFull;
    } else if (!(b == 0x66 || b == 0x26 || b == 0x2E || b == 0x36 || b == 0x3E || b == 0x64 ||
                 b == 0x65 || (mode == CpuMode::kLong64 && (b & 0xF0) == 0x40))) {
      break;
    }
  }
  if (i < code.size()) {
    p.length = i + 1;
    p.opcode = code[i];
  }
  return p;
}

uint64_t linearRipOf(const CpuState& s) {
  if (cpuMode(s) == CpuMode::kLong64) return s.rip;
  return (s.segment(SegReg::kCs).base + s.rip) & 0xFFFFFFFFull;
}

bool completeRepRestart(CpuState& s, std::span<const uint8_t> code) {
  if (!(s.rflags & flags::kRF)) return false;
  const CpuMode mode = cpuMode(s);
  const StringPrefixes p = stringPrefixes(code, mode);
  if (!p.rep || p.length == 0 || !p.isString()) return false;
  if ((s.reg(Gpr::kRcx) & p.addrMask) != 0) return false;
  s.rip += p.length;
  if (mode == CpuMode::kReal || mode == CpuMode::kVirtual8086 || mode == CpuMode::kProtected16 ||
      mode == CpuMode::kCompatibility16)
    s.rip &= 0xFFFF;
  else if (mode != CpuMode::kLong64)
    s.rip &= 0xFFFFFFFF;
  s.rflags &= ~flags::kRF;
  return true;
}

Result<std::vector<PhysicalMemory::Range>> kvmRamSlots(
    uint64_t ramBytes, std::span<const PhysicalMemory::Range> holes) {
  std::vector<PhysicalMemory::Range> slots;
  uint64_t at = 0;
  auto add = [&](uint64_t begin, uint64_t end) -> Status {
    if (end <= begin) return {};
    if (begin % kPage != 0 || end % kPage != 0)
      return makeError("RAM stretch " + hex(begin) + "-" + hex(end) +
                       " between MMIO holes is not page-aligned; KVM maps whole pages");
    slots.push_back({begin, end});
    return {};
  };
  for (const PhysicalMemory::Range& hole : holes) {
    if (hole.begin >= ramBytes) break;
    TTVM_TRY(add(at, hole.begin));
    at = std::max(at, hole.end);
  }
  TTVM_TRY(add(at, ramBytes));
  return slots;
}

Result<std::unique_ptr<KvmBackend>> KvmBackend::create(const kvm::Kvm& kvm, const CpuModel& model,
                                                       PhysicalMemory memory, Environment& env,
                                                       bool stopPoints, bool emulateTscPages) {
  auto vm = kvm.createVm();
  if (!vm) return vm.error();
  // The emulated pages are holes in KVM's memory as the MMIO ones are.
  std::vector<uint64_t> emulated;
  std::vector<PhysicalMemory::Range> holes = memory.mmioHoles;
  if (emulateTscPages) {
    TTVM_TRY(vm->exitOnEmulationFailure());
    emulated = tscReadingPages(memory.ram, memory.mmioHoles);
    for (uint64_t p : emulated) holes.push_back({p * kPage, (p + 1) * kPage});
    std::sort(holes.begin(), holes.end(),
              [](const auto& a, const auto& b) { return a.begin < b.begin; });
  }
  auto slots = kvmRamSlots(memory.ram.size(), holes);
  if (!slots) return slots.error();
  // With stop points every slot logs the pages the guest writes.
  for (uint32_t i = 0; i < slots->size(); ++i) {
    const PhysicalMemory::Range& r = (*slots)[i];
    TTVM_TRY(vm->setMemory(i, r.begin, memory.ram.subspan(r.begin, r.end - r.begin), stopPoints));
  }
  auto vcpu = vm->createVcpu(0);
  if (!vcpu) return vcpu.error();
  TTVM_TRY(vcpu->setCpuid(model));
  std::unique_ptr<KvmBackend> b(
      new KvmBackend(std::move(*vm), std::move(*vcpu), model, std::move(memory), env));
  // MSRs KVM would answer from its own defaults or the host come to ttvm.
  if (Status st = b->vm_.msrsToUserSpace(); st.ok())
    b->msrNote_ = "answered by ttvm's model, but the state MSRs KVM keeps";
  else
    b->msrNote_ = "answered by KVM (" + st.error().message + ")";
  // The TSC runs at the model's frequency where KVM can make it.
  const auto khz = uint32_t(model.tscFrequencyHz / 1000);
  Status set = b->vcpu_.setTscKhz(khz);
  auto now = b->vcpu_.tscKhz();
  b->tscNote_ =
      (now ? std::to_string(*now) + " kHz" : "unknown rate (" + now.error().message + ")") +
      (set.ok() ? std::string(", set to the model's")
                : ", the host's (" + set.error().message + ")") +
      "; RDTSC reads it without an exit";
  b->slots_ = std::move(*slots);
  b->emulated_ = std::move(emulated);
  b->stopPoints_ = stopPoints;
  // Stop points are found by state; an exact branch count would locate
  // them without a search, where the host's PMU gives one (not recorded yet).
  Status pmu = kvm::probeGuestBranchCounter();
  b->pmuNote_ = pmu.ok() ? "a guest-only retired-branch counter is available (not used)"
                         : "none (" + pmu.error().message + ")";
  return b;
}

KvmBackend::KvmBackend(kvm::Vm vm, kvm::Vcpu vcpu, const CpuModel& model, PhysicalMemory memory,
                       Environment& env)
    : vm_(std::move(vm)),
      vcpu_(std::move(vcpu)),
      model_(model),
      memory_(std::move(memory)),
      env_(env) {}

KvmBackend::~KvmBackend() {
  if (kicker_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(kickMutex_);
      stopKicker_ = true;
    }
    kickCv_.notify_all();
    kicker_.join();
  }
}

void KvmBackend::kicker() {
  std::unique_lock<std::mutex> lock(kickMutex_);
  while (!stopKicker_) {
    if (kickRun_ == 0) {
      kickCv_.wait(lock);
      continue;
    }
    const uint64_t call = kickRun_;
    if (kickCv_.wait_until(lock, kickAt_, [&] { return stopKicker_ || kickRun_ != call; }))
      continue;
    // The run() call is still going at its deadline. The signal is blocked
    // outside KVM_RUN: sent while the vCPU serves an exit, it stops the next
    // entry of the same call at once (that call checks the wall clock only
    // after an exit, so it could otherwise enter a guest that never exits).
    pthread_kill(vcpuThread_, kvm::Vcpu::kickSignal());
    kickRun_ = 0;
  }
}

void KvmBackend::armKick(std::chrono::steady_clock::time_point at) {
  {
    std::lock_guard<std::mutex> lock(kickMutex_);
    kickRun_ = ++runCalls_;
    kickAt_ = at;
  }
  kickCv_.notify_all();
}

void KvmBackend::disarmKick() {
  std::lock_guard<std::mutex> lock(kickMutex_);
  kickRun_ = 0;
}

void KvmBackend::setWallSlice(std::chrono::nanoseconds slice) {
  if (!stopPoints_) return;
  wallSlice_ = std::clamp<std::chrono::nanoseconds>(slice, kMinWallSlice, kWallSlice);
}

Status KvmBackend::recordStopPoint() {
  std::vector<machine::PageRun> runs;
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    const PhysicalMemory::Range& r = slots_[i];
    const uint64_t pages = (r.end - r.begin) / kPage;
    dirtyBitmap_.assign((pages + 63) / 64, 0);
    TTVM_TRY(vm_.takeDirtyLog(i, dirtyBitmap_));
    machine::appendDirtyRuns(dirtyBitmap_, r.begin / kPage, runs);
  }
  // Pages KVM's log does not see: written by emulated instructions, or on
  // emulated pages (served from RAM).
  std::sort(emulatedDirty_.begin(), emulatedDirty_.end());
  emulatedDirty_.erase(std::unique(emulatedDirty_.begin(), emulatedDirty_.end()),
                       emulatedDirty_.end());
  for (uint64_t p : emulatedDirty_) {
    if (!runs.empty() && runs.back().first + runs.back().count == p)
      ++runs.back().count;
    else
      runs.push_back({p, 1});
  }
  emulatedDirty_.clear();
  if (!walker_) walker_ = std::make_unique<Cpu>(model_, memory_, env_);
  walker_->setState(state_);
  const std::vector<uint64_t> accessBytes = machine::descriptorAccessBytes(
      state_, [this](uint64_t linear) { return walker_->translate(linear); });
  std::vector<TraceEvent> events =
      machine::stopPointEvents(state_.steps, state_, memory_.ram, runs, accessBytes);
  TTVM_LOG("kvm", kDebug,
           "stop point " << state_.steps << " at rip " << hex(state_.rip) << ", " << runs.size()
                         << " dirty runs");
  TTVM_LOG("kvm", kTrace,
           "stop point " << state_.steps << ": "
                         << machine::describeStopState(state_, memory_.ram, runs, accessBytes));
  stopEvents_.insert(stopEvents_.end(), events.begin(), events.end());
  ++counts_.stops;
  return {};
}

std::vector<TraceEvent> KvmBackend::takeStopPoint() {
  std::vector<TraceEvent> out;
  out.swap(stopEvents_);
  return out;
}

Status KvmBackend::mapAllRam() {
  // or dword [edi], 0; add edi, 0x1000; cmp edi, ecx; jb (to the OR); hlt
  static constexpr uint8_t kLoop[] = {0x83, 0x0F, 0x00, 0x81, 0xC7, 0x00, 0x10,
                                      0x00, 0x00, 0x39, 0xCF, 0x72, 0xF3, 0xF4};
  constexpr uint64_t kReach = 0x100000000ull - kPage;  // the last page a 32-bit EDI loops to
  if (slots_.empty() || slots_[0].end - slots_[0].begin < sizeof kLoop || slots_[0].begin >= kReach)
    return makeError("mapping RAM in KVM: no RAM slot below 4 GiB for the loop");
  uint8_t* code = memory_.ram.data() + slots_[0].begin;
  uint8_t saved[sizeof kLoop];
  std::memcpy(saved, code, sizeof kLoop);
  std::memcpy(code, kLoop, sizeof kLoop);
  Status result;
  for (const PhysicalMemory::Range& r : slots_) {
    if (r.begin >= kReach) break;
    CpuState s = machine::protectedModeState(static_cast<uint32_t>(slots_[0].begin));
    s.reg(Gpr::kRdi) = r.begin;
    s.reg(Gpr::kRcx) = std::min(r.end, kReach);
    if (Status st = vcpu_.setState(s); !st.ok()) {
      result = st;
      break;
    }
    auto e = vcpu_.run();
    if (!e) {
      result = e.error();
      break;
    }
    if (e->kind != kvm::ExitKind::kHlt) {
      result = makeError("mapping RAM in KVM: the loop over " + hex(r.begin) + ".." + hex(r.end) +
                         " ended in " + kvm::describe(*e) + ", not at its HLT");
      break;
    }
  }
  std::memcpy(code, saved, sizeof kLoop);
  return result;
}

void KvmBackend::setState(const CpuState& s) {
  // A state KVM cannot hold (docs/kvm-recording.md) is the backend's
  // failure: the next run() stops with it.
  if (Status st = vcpu_.setState(s); !st.ok() && failure_.empty())
    failure_ = "KVM refused the CPU state: " + st.error().message;
  state_ = s;
  halted_ = s.pending.halted;
  exitPending_ = false;
  kicked_ = false;
  offerDue_ = true;
}

void KvmBackend::inject(const machine::InjectedEvent& e) {
  if (e.kind == machine::InjectedEvent::Kind::kNmi)
    injectNmi_ = true;
  else
    injectVector_ = e.vector;
  offerDue_ = true;
}

StepResult KvmBackend::fail(std::string message) {
  if (failure_.empty()) failure_ = std::move(message);
  (void)settle();
  return {StepOutcome::kStopRequested};
}

Status KvmBackend::offerEvents() {
  offerDue_ = false;
  if (injectNmi_ || env_.nmiPending()) {
    if (injectNmi_)
      injectNmi_ = false;
    else
      env_.acknowledgeNmi();
    TTVM_TRY(vcpu_.injectNmi());
    halted_ = false;
  }
  // A vector is acknowledged only where the guest takes it now: the trace
  // then holds it after every access made before its delivery, which is the
  // order the replay finds it in. Otherwise KVM reports the window opening.
  const bool ready = vcpu_.readyForInterrupt();
  bool wanted = false;
  if (injectVector_ || env_.interruptPending()) {
    if (ready) {
      uint8_t v = 0;
      if (injectVector_) {
        v = *injectVector_;
        injectVector_.reset();
      } else {
        v = env_.acknowledgeInterrupt();
      }
      TTVM_TRY(vcpu_.injectInterrupt(v));
      TTVM_LOG("kvm", kDebug,
               "vector " << hex(v) << " injected after exit " << state_.steps
                         << (halted_ ? " (halted)" : ""));
      halted_ = false;
    } else {
      wanted = true;
      TTVM_LOG("kvm", kDebug, "interrupt window requested after exit " << state_.steps);
    }
  }
  vcpu_.requestInterruptWindow(wanted);
  windowWanted_ = wanted;
  return {};
}

Status KvmBackend::serveMsr(const kvm::VcpuExit& e) {
  ++counts_.msr;
  exitPending_ = true;
  // KVM's state at the instruction (RIP on the RDMSR/WRMSR), run one step
  // in the emulator with nothing else able to happen: no trap, breakpoint
  // or interrupt.
  auto s = vcpu_.state();
  if (!s) return s.error();
  // The machine reads the CPU's registers it depends on (the APIC base:
  // x2APIC mode, set by a WRMSR KVM kept) from state(): bring it up to date.
  const uint64_t steps = state_.steps;
  normalizeSvmSegments(*s, state_);
  state_ = std::move(*s);
  state_.steps = steps;
  state_.pending.halted = halted_;
  CpuState at = state_;
  at.rflags &= ~(flags::kTF | flags::kRF);
  at.dr7 = 0x400;
  at.pending = {};
  if (!msrCpu_) {
    msrEnv_ = std::make_unique<MsrEnvironment>(env_);
    msrCpu_ = std::make_unique<Cpu>(model_, memory_, *msrEnv_);
  }
  msrCpu_->setState(at);
  const StepResult r = msrCpu_->step();
  const CpuState& after = msrCpu_->state();
  std::optional<uint64_t> answer;
  if (r.outcome == StepOutcome::kRetired) {
    answer = e.msr.write
                 ? 0
                 : (after.reg(Gpr::kRdx) & 0xFFFFFFFF) << 32 | (after.reg(Gpr::kRax) & 0xFFFFFFFF);
    // What an accepted WRMSR changed beside the machine: CR8 (the x2APIC
    // TPR) goes in at the next entry; the MSRs KVM keeps never come here.
    if (e.msr.write && after.cr8 != at.cr8) vcpu_.setEntryCr8(after.cr8);
    if (e.msr.write && !(after.msr == at.msr))
      return makeError("WRMSR " + hex(e.msr.index) + " = " + hex(e.msr.value) +
                       " changed CPU state KVM keeps, which KVM refused");
  } else if (!(r.outcome == StepOutcome::kException && r.vector == 13)) {
    return makeError("answering " + kvm::describe(e) + " at rip " + hex(at.rip) +
                     ", the emulator's step ended with outcome " + std::to_string(int(r.outcome)) +
                     " vector " + std::to_string(r.vector));
  }
  TTVM_LOG("kvm", kDebug,
           kvm::describe(e) << " at rip " << hex(at.rip) << ": "
                            << (answer ? hex(*answer) : std::string("#GP")));
  vcpu_.answerMsr(answer);
  return {};
}

bool KvmBackend::isEmulatedPage(uint64_t physical) const {
  return std::binary_search(emulated_.begin(), emulated_.end(), physical / kPage);
}

bool KvmBackend::serveEmulatedRam(const kvm::VcpuExit& e) {
  if (e.kind != kvm::ExitKind::kMmio || !isEmulatedPage(e.mmio.address)) return false;
  // KVM splits an access at page boundaries: this one lies in the page.
  const kvm::MmioExit& m = e.mmio;
  TTVM_ASSERT(m.address + m.data.size() <= memory_.ram.size(), "an emulated page beyond RAM");
  uint8_t* at = memory_.ram.data() + m.address;
  if (m.write) {
    std::memcpy(at, m.data.data(), m.data.size());
    emulatedDirty_.push_back(m.address / kPage);
  } else {
    std::memcpy(m.data.data(), at, m.data.size());
  }
  ++counts_.emulatedRam;
  exitPending_ = true;
  return true;
}

StepResult KvmBackend::emulateRun(const kvm::VcpuExit& e,
                                  std::chrono::steady_clock::time_point wallEnd, bool single,
                                  bool* windowOpened, const CpuState* start) {
  // An event KVM holds for the guest: an NMI given while NMIs were blocked
  // is delivered at the first boundary where they are not, which ends the
  // run (the state given back does not touch a pending NMI). An interrupt
  // or NMI KVM was delivering when it could not fetch is not expected.
  auto queued = vcpu_.queuedEvents();
  if (!queued) return fail(queued.error().message);
  Result<CpuState> s = start != nullptr ? Result<CpuState>(*start) : vcpu_.state();
  if (!s) return fail(s.error().message);
  if (queued->interrupt)
    return fail("KVM could not run the instruction at rip " + hex(s->rip) +
                " while it held an interrupt for the guest (" + kvm::describe(e) + ")");
  const uint64_t exits = state_.steps;
  normalizeSvmSegments(*s, state_);
  state_ = std::move(*s);
  // The exit number its events carry, kept only if it makes one.
  state_.steps = exits + 1;
  state_.pending.halted = false;
  if (!emuCpu_) {
    emuEnv_ = std::make_unique<EmulatedEnvironment>(env_);
    emuCpu_ = std::make_unique<Cpu>(model_, memory_, *emuEnv_);
    emuCpu_->setDirtyTracking(true);
  }
  emuCpu_->setState(state_);
  TTVM_LOG("kvm", kTrace,
           "emulating from " << instructionAtRip() << " at rip " << hex(state_.rip) << " ("
                             << kvm::describe(e) << ")");
  // Instructions that make no access are invisible to the trace: a run of
  // them costs one KVM state round trip, not one each.
  StepResult r;
  bool counted = false;
  for (uint64_t n = 1;; ++n) {
    r = emuCpu_->step();
    ++counts_.emulated;
    const CpuState& now = emuCpu_->state();
    counted = emuEnv_->takeAccesses() != 0 || now.pending.halted ||
              r.outcome == StepOutcome::kTripleFault;
    if (counted || single || r.outcome == StepOutcome::kTripleFault) break;
    // KVM exits at the first boundary where the guest can take the vector
    // it was asked to wait for: so does the emulated run.
    if (windowWanted_ && (now.rflags & flags::kIF) &&
        now.pending.shadow == InterruptShadow::kNone) {
      if (windowOpened != nullptr) *windowOpened = true;
      break;
    }
    if (queued->nmi && !now.pending.nmiBlocked && now.pending.shadow != InterruptShadow::kMovSs)
      break;
    const std::optional<uint64_t> physical = emuCpu_->translate(linearRipOf(now));
    if (!physical || !isEmulatedPage(*physical)) break;
    if (n % 256 == 0 && std::chrono::steady_clock::now() >= wallEnd) break;
  }
  CpuState after = emuCpu_->state();
  for (uint64_t p : emuCpu_->takeDirtyPages()) emulatedDirty_.push_back(p);
  after.steps = counted ? exits + 1 : exits;
  TTVM_LOG("kvm", kTrace,
           "emulated to rip " << hex(after.rip) << (counted ? ", a counted exit" : ""));
  if (r.outcome == StepOutcome::kTripleFault) {
    state_ = after;
    return {StepOutcome::kTripleFault};
  }
  if (Status st = vcpu_.setState(after); !st.ok())
    return fail("KVM refused the state after an emulated instruction at rip " + hex(state_.rip) +
                ": " + st.error().message);
  state_ = std::move(after);
  halted_ = state_.pending.halted;
  return {StepOutcome::kRetired};
}

std::optional<StepResult> KvmBackend::stepRepPortIteration(const kvm::VcpuExit& first,
                                                           bool hostStep) {
  auto exitAt = vcpu_.ripAndFlags();
  if (!exitAt) return fail(exitAt.error().message);
  if (!hostStep && !(exitAt->rflags & flags::kTF)) return std::nullopt;
  auto s = vcpu_.state();
  if (!s) return fail(s.error().message);
  // Only a string instruction (INS, OUTS, REP or not): KVM traps after an
  // IN or OUT itself. Under the host's step, only a REP one: KVM completes
  // a single INS or OUTS and traps after it.
  uint8_t buffer[15];
  const StringPrefixes prefixes = stringPrefixes(codeAt(*s, buffer), cpuMode(*s));
  if (!prefixes.isPortString() || (hostStep && !prefixes.rep)) return std::nullopt;
  if (!first.io.in) {
    // OUTS: KVM has run the iteration and written the registers back (RIP
    // still on the instruction while its count is not exhausted), and
    // exits without the single-step check (its "FIXME: return into
    // emulator if single-stepping"), which the final pass that moves RIP
    // then makes once. The access goes to the machine as any; then the
    // trap is queued, with RF set in the image while the instruction goes
    // on (SDM vol. 3 18.3.1.1, the emulator's rule). Under the host's step
    // the step ends here instead: the host's trap after the iteration.
    ++state_.steps;
    serve(first);
    if (Status st = settle(); !st.ok()) return fail(st.error().message);
    if (state_.rip == exitAt->rip && !(state_.rflags & flags::kRF)) {
      state_.rflags |= flags::kRF;
      // The last iteration leaves only the final pass that moves RIP.
      const std::span<const uint8_t> code = codeAt(state_, buffer);
      if (hostStep && !code.empty()) completeRepRestart(state_, code);
      if (Status st = vcpu_.setState(state_); !st.ok()) return fail(st.error().message);
    }
    if (!hostStep) {
      if (Status st = vcpu_.queueSingleStepTrap(); !st.ok()) return fail(st.error().message);
    }
    ++counts_.repIterations;
    return StepResult{StepOutcome::kRetired};
  }
  // INS: KVM writes the registers back when the instruction completes: this
  // is the state before it.
  CpuState before = std::move(*s);
  normalizeSvmSegments(before, state_);
  before.steps = state_.steps;
  // INS: each element KVM will store gets the bytes already there (at
  // ES:RDI in the instruction's address size, by DF).
  auto fillFromMemory = [this, &prefixes](const CpuState& at, const kvm::IoExit& io) {
    walker_->setState(at);
    const bool long64 = cpuMode(at) == CpuMode::kLong64;
    const uint64_t base = long64 ? 0 : at.segment(SegReg::kEs).base;
    const int64_t stride = (at.rflags & flags::kDF) ? -int64_t(io.size) : int64_t(io.size);
    for (uint32_t i = 0; i < io.count; ++i) {
      const uint64_t offset =
          (at.reg(Gpr::kRdi) + uint64_t(stride * int64_t(i))) & prefixes.addrMask;
      (void)walker_->readLinear((base + offset) & (long64 ? ~0ull : 0xFFFFFFFFull),
                                io.data.subspan(size_t(i) * io.size, io.size));
    }
  };
  fillFromMemory(before, first.io);
  exitPending_ = true;
  for (;;) {
    auto next = vcpu_.completeExit();
    if (!next) return fail(next.error().message);
    if (!*next) break;
    const kvm::VcpuExit& e = **next;
    // Under the host's step, KVM's emulator traps once the batch is consumed.
    if (hostStep && e.kind == kvm::ExitKind::kDebug) break;
    if (e.kind != kvm::ExitKind::kIo)
      return fail("completing a REP string port instruction, KVM returned " + kvm::describe(e));
    if (e.io.in) {
      auto now = vcpu_.state();
      if (!now) return fail(now.error().message);
      fillFromMemory(*now, e.io);
    }
  }
  exitPending_ = false;
  ++counts_.repIterations;
  TTVM_LOG("kvm", kDebug,
           "REP string port instruction at rip " << hex(before.rip)
                                                 << " under TF: " << kvm::describe(first)
                                                 << " given nothing to do, one iteration run");
  return emulateRun(first, std::chrono::steady_clock::time_point::max(), true, nullptr, &before);
}

void KvmBackend::serve(const kvm::VcpuExit& e) {
  if (e.kind == kvm::ExitKind::kIo) {
    const kvm::IoExit& io = e.io;
    for (uint32_t i = 0; i < io.count; ++i) {
      std::span<uint8_t> d = io.data.subspan(size_t(i) * io.size, io.size);
      if (io.in)
        storeLe(d, env_.portIn(io.port, io.size));
      else
        env_.portOut(io.port, io.size, uint32_t(loadLe(d)));
    }
    ++counts_.io;
  } else {
    const kvm::MmioExit& m = e.mmio;
    const auto size = unsigned(m.data.size());
    if (m.write) {
      env_.mmioWrite(m.address, size, loadLe(m.data));
      // The TPR written through the xAPIC page is CR8, as in the emulator
      // (its noteApicWrite): KVM, with no in-kernel LAPIC, loads CR8 from
      // kvm_run at the next entry (the completion of this exit included).
      if (auto cr8 =
              apicbase::cr8AfterWrite(vcpu_.exitApicBase(), m.address, size, loadLe(m.data))) {
        vcpu_.setEntryCr8(*cr8);
        state_.cr8 = *cr8;
      }
    } else
      storeLe(m.data, env_.mmioRead(m.address, size));
    ++counts_.mmio;
  }
  exitPending_ = true;
}

Status KvmBackend::settle(StateParts parts) {
  while (exitPending_) {
    auto next = vcpu_.completeExit();
    if (!next) return next.error();
    exitPending_ = false;
    if (!*next) break;
    const kvm::VcpuExit& e = **next;
    // Completing never enters the guest: only a further access of the
    // same instruction (the next iteration of a REP string one) can come.
    if (e.kind != kvm::ExitKind::kIo && e.kind != kvm::ExitKind::kMmio)
      return makeError("completing an access, KVM returned " + kvm::describe(e));
    if (serveEmulatedRam(e)) continue;
    ++state_.steps;  // one more access of the same instruction: a counted exit
    serve(e);
  }
  auto s = vcpu_.state(parts);
  if (!s) return s.error();
  const uint64_t steps = state_.steps;
  normalizeSvmSegments(*s, state_);
  state_ = std::move(*s);
  state_.steps = steps;
  // A REP string instruction KVM finished but has not stepped past.
  uint8_t buffer[15];
  const std::span<const uint8_t> code = codeAt(state_, buffer);
  if (!code.empty() && completeRepRestart(state_, code)) {
    // KVM's vCPU takes the same position (its final pass has no effect).
    if (Status st = vcpu_.setState(state_); !st.ok()) return st;
  }
  state_.pending.halted = halted_;
  return {};
}

Status KvmBackend::deliverLostSingleStep() {
  // KVM's emulator has written the instruction back when it exits for an
  // MMIO write (RIP after it, or still on a REP string instruction with its
  // count decremented), and skips the single-step check because it exits:
  // RFLAGS.TF now is the guest's TF before the instruction (no instruction
  // that writes MMIO changes TF).
  auto now = vcpu_.ripAndFlags();
  if (!now) return now.error();
  if (!(now->rflags & flags::kTF)) return {};
  TTVM_TRY(settle());
  TTVM_TRY(vcpu_.queueSingleStepTrap());
  ++counts_.repairedTraps;
  return {};
}

Status KvmBackend::deliverIoBreakpoint(const kvm::IoExit& io) {
  // CR4 comes with kvm_run's synced registers; the debug registers cost an
  // ioctl, only with CR4.DE set.
  auto regs = vcpu_.state(0);
  if (!regs) return regs.error();
  if (!(regs->cr4 & cr4::kDE)) return {};
  auto s = vcpu_.state(state_part::kDebugRegs);
  if (!s) return s.error();
  const uint64_t hits = ioBreakpointHits(*s, io.port, io.size);
  if (hits == 0) return {};
  TTVM_TRY(settle());
  TTVM_TRY(vcpu_.queueBreakpointTrap(hits));
  ++counts_.ioBreakpoints;
  return {};
}

StepResult KvmBackend::run(uint64_t maxSteps) {
  if (!kicker_.joinable()) {
    vcpuThread_ = pthread_self();
    if (Status st = vcpu_.kickOnlyInRun(); !st.ok()) return fail(st.error().message);
    kicker_ = std::thread([this] { kicker(); });
  }
  if (!failure_.empty()) return {StepOutcome::kStopRequested};
  const uint64_t end = state_.steps + std::max<uint64_t>(maxSteps, 1);
  const auto wallEnd = std::chrono::steady_clock::now() + wallSlice_;
  armKick(wallEnd);
  const StepResult r = runUntil(end, wallEnd);
  disarmKick();
  return r;
}

bool KvmBackend::injectionDue() {
  if (injectNmi_ || env_.nmiPending()) return true;
  return (injectVector_ || env_.interruptPending()) && vcpu_.readyForInterrupt();
}

StepResult KvmBackend::runUntil(uint64_t end, std::chrono::steady_clock::time_point wallEnd) {
  if (kicked_) {
    // Stopped by a kick at a boundary no exit marks: a stop point only when
    // an event is to be injected there (the trace needs none elsewhere, and
    // after a guest's last STI none is ever used); otherwise the offer asks
    // for an interrupt window, whose exit is one.
    kicked_ = false;
    if (injectionDue()) return stopHere();
    offerDue_ = true;
  }
  for (;;) {
    // A halted CPU is offered what the loop's timers raised meanwhile (the
    // halt is a position the replay finds: it waits there too).
    if (offerDue_ || halted_ || injectVector_ || injectNmi_) {
      if (Status st = offerEvents(); !st.ok()) return fail(st.error().message);
    }
    if (halted_) {
      if (Status st = settle(); !st.ok()) return fail(st.error().message);
      return {StepOutcome::kHalted};
    }
    // Stepping (lockstep, a stop point's shadow steps) stays armed after
    // step(): a run goes free.
    if (Status st = vcpu_.setSingleStep(false); !st.ok()) return fail(st.error().message);
    auto r = vcpu_.run();
    if (!r) return fail(r.error().message);
    const kvm::VcpuExit& e = *r;
    TTVM_LOG("kvm", kTrace, "after exit " << state_.steps << ": " << kvm::describe(e));
    // A MOV to CR8 that raised it, and a WRMSR of the APIC base, which KVM
    // keeps, make no exit: the machine's LAPIC, bound to state().cr8 and
    // state().msr.apicBase, sees them at the next one (KVM reports both in
    // kvm_run after every KVM_RUN).
    state_.cr8 = vcpu_.exitCr8();
    state_.msr.apicBase = vcpu_.exitApicBase();
    exitPending_ = false;
    switch (e.kind) {
      case kvm::ExitKind::kIo:
      case kvm::ExitKind::kMmio:
        if (e.kind == kvm::ExitKind::kIo) {
          const uint64_t exits = state_.steps;
          if (std::optional<StepResult> done = stepRepPortIteration(e)) {
            if (done->outcome != StepOutcome::kRetired) return *done;
            offerDue_ = state_.steps != exits;
            break;
          }
        }
        if (!serveEmulatedRam(e)) {
          ++state_.steps;
          serve(e);
          offerDue_ = true;
        }
        if (e.kind == kvm::ExitKind::kMmio && e.mmio.write) {
          if (Status st = deliverLostSingleStep(); !st.ok()) return fail(st.error().message);
        }
        if (e.kind == kvm::ExitKind::kIo && e.io.count == 1) {
          if (Status st = deliverIoBreakpoint(e.io); !st.ok()) return fail(st.error().message);
        }
        break;
      case kvm::ExitKind::kMsr:
        ++state_.steps;
        if (Status st = serveMsr(e); !st.ok()) return fail(st.error().message);
        offerDue_ = true;
        break;
      case kvm::ExitKind::kSetTpr: {
        // SVM's KVM intercepts MOV to CR8 and, without an in-kernel LAPIC,
        // returns when one lowered it (cr8_write_interception): the MOV is
        // done. The machine's LAPIC takes the TPR from CR8 (the emulator's
        // rule: state().cr8 is bound to it), and an interrupt the old TPR
        // held may now be due: injected here, a stop point the replay finds
        // by state, as after a kick (the replay does not run the LAPIC, so
        // it could not tell that the TPR held it until this boundary).
        ++counts_.setTpr;
        if (stopPoints_ && injectionDue()) {
          if (Status st = settle(); !st.ok()) return fail(st.error().message);
          return stopHere();
        }
        offerDue_ = true;
        break;
      }
      case kvm::ExitKind::kHlt:
        ++state_.steps;
        ++counts_.hlt;
        halted_ = true;
        offerDue_ = true;
        break;
      case kvm::ExitKind::kIrqWindowOpen: {
        ++counts_.window;
        offerDue_ = true;  // the guest takes the pending vector here
        if (!stopPoints_) break;
        // With stop points, the boundary the vector is injected at is one:
        // the replay then takes it where KVM delivered it, not at the first
        // boundary the emulator would (the nested VM's QEMU opens windows
        // inside STI shadows; see stopHere).
        if (Status st = settle(); !st.ok()) return fail(st.error().message);
        auto queued = vcpu_.eventQueued();
        if (!queued) return fail(queued.error().message);
        if (*queued) break;
        return stopHere();
      }
      case kvm::ExitKind::kInterrupted: {
        // Kicked out between exits: a numbered stop point the replay finds
        // by its state, where the machine's due timers may now interrupt.
        // Not when KVM still holds an event it was given (the kick came
        // before the entry that delivers it): the trace already has that
        // event, whose delivery the replay places by the events before it,
        // and a stop point before the delivery would come after it there.
        ++counts_.kicks;
        if (Status st = settle(); !st.ok()) return fail(st.error().message);
        auto queued = vcpu_.eventQueued();
        TTVM_LOG("kvm", kDebug,
                 "kicked after exit " << state_.steps << " at rip " << hex(state_.rip)
                                      << (queued && *queued ? ", event queued" : ""));
        if (!queued) return fail(queued.error().message);
        // The loop now runs the timers that fell due; the next run() makes
        // this boundary a stop point if something is to be injected at it.
        kicked_ = stopPoints_ && !*queued;
        return {StepOutcome::kRetired};
      }
      case kvm::ExitKind::kShutdown:
        if (Status st = settle(); !st.ok()) return fail(st.error().message);
        return {StepOutcome::kTripleFault};
      case kvm::ExitKind::kInternalError: {
        if (!emulated_.empty() && e.internal.suberror == kvm::InternalErrorExit::kEmulation) {
          const uint64_t exits = state_.steps;
          bool window = false;
          const StepResult done = emulateRun(e, wallEnd, false, &window);
          if (done.outcome != StepOutcome::kRetired) return done;
          if (state_.steps != exits) {
            offerDue_ = true;
          } else if (window) {
            // As KVM's window exit (below): the vector goes in here.
            ++counts_.window;
            offerDue_ = true;
            if (stopPoints_) return stopHere();
          } else if (std::chrono::steady_clock::now() >= wallEnd) {
            // The guest runs on emulated pages without an access: a
            // boundary like a kick's (the loop's timers may interrupt here,
            // at a stop point).
            kicked_ = stopPoints_;
            return {StepOutcome::kRetired};
          }
          break;
        }
        std::string words;
        for (uint64_t w : e.internal.data) words += " " + hex(w);
        return fail("KVM internal error (suberror " + std::to_string(e.internal.suberror) +
                    (words.empty() ? "" : ", data" + words) + ") after exit " +
                    std::to_string(state_.steps));
      }
      case kvm::ExitKind::kFailEntry:
        return fail("KVM could not enter the guest: hardware entry failure reason " +
                    hex(e.failEntry.reason) + " on host CPU " + std::to_string(e.failEntry.cpu) +
                    " after exit " + std::to_string(state_.steps));
      default:
        return fail("unexpected KVM exit: " + kvm::describe(e) + " after exit " +
                    std::to_string(state_.steps));
    }
    // The machine may have asked to stop (exit device, panic, reset) or a
    // timer to be rescheduled.
    if (env_.stopRequested()) {
      if (Status st = settle(); !st.ok()) return fail(st.error().message);
      return {StepOutcome::kStopRequested};
    }
    if (state_.steps >= end || std::chrono::steady_clock::now() >= wallEnd) {
      if (Status st = settle(); !st.ok()) return fail(st.error().message);
      return {StepOutcome::kRetired};
    }
    if (halted_) continue;  // offer, then kHalted unless an event woke it
  }
}

StepResult KvmBackend::stopHere() {
  // KVM injects a vector where kvm_run says the guest is ready for one,
  // which (with SVM) reads the interrupt shadow from the VMCB. In the nested
  // VM (QEMU 7.2's TCG emulating SVM) that is not the architecture's
  // shadow: an interrupt window opens, and the vector is delivered, at the
  // instruction right after an STI that set IF (rec_kvm_compute, the demo:
  // `sti; call`), where the SDM (vol. 3A 6.8.3, STI in vol. 2B) defers
  // interrupts by one instruction and the emulator takes it after the CALL.
  // A stop point there would not be found. So before a stop point ttvm
  // steps the guest past any instruction that may have opened a shadow
  // (a conservative test of the bytes before RIP): the point is then one
  // where IF=1 from KVM's state and no shadow by the architecture, and the
  // emulator takes the vector at it as KVM delivers it. On hardware whose
  // VMCB holds the shadow this only costs a step at such boundaries.
  for (int i = 0; i < kMaxShadowSteps; ++i) {
    uint8_t before[15];
    size_t n = sizeof before;
    const uint64_t rip = linearRip();
    for (; n > 0 && (rip < n || !readLinear(rip - n, std::span<uint8_t>(before, n))); --n) {
    }
    if (!mayFollowShadowOpener(std::span<const uint8_t>(before, n), cpuMode(state_))) break;
    TTVM_LOG("kvm", kDebug, "stepping past a possible shadow at rip " << hex(state_.rip));
    const StepResult r = stepInstruction(false);
    ++counts_.shadowSteps;
    // A HLT (`sti; hlt`) is an exit the replay finds: it waits there.
    if (r.outcome != StepOutcome::kRetired) return r;
  }
  ++state_.steps;
  if (Status st = recordStopPoint(); !st.ok()) return fail(st.error().message);
  offerDue_ = true;
  return {StepOutcome::kRetired};
}

void KvmBackend::refreshState(StateParts parts) {
  if (parts == 0 || !failure_.empty()) return;
  auto s = vcpu_.state(parts);
  if (!s) {
    failure_ = "reading the state back: " + s.error().message;
    return;
  }
  copyStateParts(state_, *s, parts);
}

StepResult KvmBackend::step() {
  return stepInstruction(true);
}

StepResult KvmBackend::stepInstruction(bool offer) {
  if (!failure_.empty()) return {StepOutcome::kStopRequested};
  if (!offer) vcpu_.requestInterruptWindow(false);
  if (Status st = vcpu_.setSingleStep(true); !st.ok()) return fail(st.error().message);
  StepResult result{StepOutcome::kRetired};
  for (bool done = false; !done;) {
    if (offer && (offerDue_ || injectVector_ || injectNmi_)) {
      if (Status st = offerEvents(); !st.ok()) return fail(st.error().message);
    }
    if (halted_) {
      result = {StepOutcome::kHalted};
      break;
    }
    auto r = vcpu_.run();
    if (!r) return fail(r.error().message);
    switch (r->kind) {
      case kvm::ExitKind::kIo:
      case kvm::ExitKind::kMmio:
        if (serveEmulatedRam(*r)) break;
        // KVM's emulator runs a REP INS/OUTS whole, and a REP string
        // instruction writing MMIO without a single-step check after each
        // write: the host's TF traps after every iteration, and so does the
        // guest's own, which KVM hides while it steps (the record loop's
        // repairs, which read that TF). The step is one iteration.
        if (r->kind == kvm::ExitKind::kIo) {
          if (std::optional<StepResult> one = stepRepPortIteration(*r, true)) {
            if (one->outcome == StepOutcome::kStopRequested) return *one;
            result = *one;
            offerDue_ = true;
            done = true;
            break;
          }
        }
        ++state_.steps;
        serve(*r);
        offerDue_ = true;
        if (r->kind == kvm::ExitKind::kMmio && r->mmio.write) {
          // The instruction (or the iteration) is written back: complete
          // the access without entering the guest; the step ends there.
          if (Status st = settle(0); !st.ok()) return fail(st.error().message);
          done = true;
        }
        break;
      case kvm::ExitKind::kInternalError: {
        // An instruction on an emulated page is one step, run by ttvm.
        if (emulated_.empty() || r->internal.suberror != kvm::InternalErrorExit::kEmulation)
          return fail("unexpected KVM exit while stepping: " + kvm::describe(*r));
        const uint64_t exits = state_.steps;
        result = emulateRun(*r, std::chrono::steady_clock::time_point::max(), true);
        if (result.outcome == StepOutcome::kStopRequested) return result;
        if (state_.steps != exits) offerDue_ = true;
        if (halted_ && result.outcome == StepOutcome::kRetired) result = {StepOutcome::kHalted};
        done = true;
        break;
      }
      case kvm::ExitKind::kMsr:
        ++state_.steps;
        if (Status st = serveMsr(*r); !st.ok()) return fail(st.error().message);
        offerDue_ = true;
        break;
      case kvm::ExitKind::kDebug: done = true; break;
      case kvm::ExitKind::kHlt:
        ++state_.steps;
        halted_ = true;
        offerDue_ = true;
        done = true;
        break;
      case kvm::ExitKind::kShutdown:
        result = {StepOutcome::kTripleFault};
        done = true;
        break;
      case kvm::ExitKind::kIrqWindowOpen:
      case kvm::ExitKind::kInterrupted: break;
      default: return fail("unexpected KVM exit while stepping: " + kvm::describe(*r));
    }
  }
  // A port or MMIO exit with no trap yet: the Vcpu layer completes it on
  // the next run(); here the step ended at the trap, so nothing is pending.
  exitPending_ = false;
  if (Status st = settle(stepParts_); !st.ok()) return fail(st.error().message);
  return result;
}

std::string KvmBackend::instructionAtRip() const {
  uint8_t buffer[15];
  const std::span<const uint8_t> code = codeAt(state_, buffer);
  if (code.empty()) return "(unmapped)";
  return disassemble(code, cpuMode(state_), state_.rip).text;
}

uint64_t KvmBackend::linearRip() const {
  return linearRipOf(state_);
}

std::span<const uint8_t> KvmBackend::codeAt(const CpuState& s,
                                            std::span<uint8_t, 15> buffer) const {
  if (!walker_) walker_ = std::make_unique<Cpu>(model_, memory_, env_);
  walker_->setState(s);
  size_t n = buffer.size();
  while (n > 0 && !walker_->readLinear(linearRipOf(s), buffer.first(n))) --n;
  return buffer.first(n);
}

bool KvmBackend::readLinear(uint64_t linear, std::span<uint8_t> out) const {
  // The emulator's page walk (Cpu::readLinear reads RAM only, never asks
  // the environment).
  if (!walker_) walker_ = std::make_unique<Cpu>(model_, memory_, env_);
  walker_->setState(state_);
  return walker_->readLinear(linear, out);
}

std::vector<uint64_t> KvmBackend::takeDirtyPages() {
  std::vector<uint64_t> pages;
  if (!dirtyTracking_) return pages;
  pages.reserve(memory_.ram.size() / kPage);
  for (uint64_t p = 0; p < memory_.ram.size() / kPage; ++p) pages.push_back(p);
  return pages;
}

}  // namespace ttvm
