#include "diff_emulator_runner_support.h"

#include <cstdio>
#include <cstring>

#include "diff_driver_support.h"

namespace ttvm::difftest {
namespace {

// Physical layout of the system structures (all below 64 KiB).
constexpr uint64_t kPml4 = 0x1000;
constexpr uint64_t kPdpt = 0x2000;
constexpr uint64_t kPd = 0x3000;
constexpr uint64_t kPt0 = 0x4000;  // 0-2 MiB
constexpr uint64_t kPt1 = 0x5000;  // 2-4 MiB
constexpr uint64_t kGdt = 0x6000;
constexpr uint64_t kTss = 0x6100;
constexpr uint64_t kIdt = 0x7000;
constexpr uint64_t kKernelStackTop = 0x9000;  // RSP0 / IST1
constexpr uint64_t kHandler = 0x9000;         // never executed: the runner stops at delivery
constexpr int kVectors = 32;

// GDT selectors.
constexpr uint16_t kKernelCode = 0x08, kKernelData = 0x10, kUserData = 0x18, kUserCode = 0x20,
                   kTssSel = 0x28;

void put64(std::vector<uint8_t>& ram, uint64_t addr, uint64_t v) {
  std::memcpy(&ram[addr], &v, 8);
}
void put32(std::vector<uint8_t>& ram, uint64_t addr, uint32_t v) {
  std::memcpy(&ram[addr], &v, 4);
}
void put16(std::vector<uint8_t>& ram, uint64_t addr, uint16_t v) {
  std::memcpy(&ram[addr], &v, 2);
}
uint64_t get(const std::vector<uint8_t>& ram, uint64_t addr, int size) {
  uint64_t v = 0;
  if (addr + size <= ram.size()) std::memcpy(&v, &ram[addr], size);
  return v;
}

SegmentRegister seg(uint16_t sel, uint64_t base, uint32_t limit, uint32_t attr) {
  SegmentRegister s;
  s.selector = sel;
  s.base = base;
  s.limit = limit;
  s.attributes = attr;
  return s;
}

}  // namespace

class EmulatorRunner::TestEnvironment final : public Environment {
 public:
  std::vector<std::string> unexpected;

  uint32_t portIn(uint16_t port, unsigned size) override {
    note("portIn", port, size);
    return 0;
  }
  void portOut(uint16_t port, unsigned size, uint32_t) override { note("portOut", port, size); }
  uint64_t mmioRead(uint64_t a, unsigned size) override {
    note("mmioRead", a, size);
    return 0;
  }
  void mmioWrite(uint64_t a, unsigned size, uint64_t) override { note("mmioWrite", a, size); }
  uint64_t readTsc() override {
    note("readTsc", 0, 0);
    return 0;
  }
  std::optional<uint64_t> readRandom(unsigned size) override {
    note("readRandom", 0, size);
    return std::nullopt;
  }
  std::optional<uint64_t> readMsr(uint32_t index) override {
    note("readMsr", index, 0);
    return std::nullopt;
  }
  bool writeMsr(uint32_t index, uint64_t) override {
    note("writeMsr", index, 0);
    return false;
  }
  // Asked at every instruction boundary: expected, and never pending.
  bool interruptPending() override { return false; }
  uint8_t acknowledgeInterrupt() override {
    note("acknowledgeInterrupt", 0, 0);
    return 0;
  }
  bool nmiPending() override { return false; }
  void acknowledgeNmi() override { note("acknowledgeNmi", 0, 0); }
  bool stopRequested() override { return false; }

 private:
  void note(const char* what, uint64_t a, unsigned size) {
    char b[96];
    std::snprintf(b, sizeof(b), "unexpected Environment::%s(0x%llx, %u)", what,
                  static_cast<unsigned long long>(a), size);
    unexpected.push_back(b);
  }
};

Features EmulatorRunner::modelFeatures() {
  CpuModel m = CpuModel::ttvmDefault();
  Features f;
  CpuidLeaf l1 = m.lookup(1, 0);
  f.popcnt = (l1.ecx >> 23) & 1;
  f.movbe = (l1.ecx >> 22) & 1;
  f.tzcnt = (m.lookup(7, 0).ebx >> 3) & 1;
  f.lzcnt = (m.lookup(0x80000001, 0).ecx >> 5) & 1;
  return f;
}

EmulatorRunner::EmulatorRunner(CodeMode mode)
    : mode_(mode), ram_(kRamSize), env_(std::make_unique<TestEnvironment>()) {
  if (mode_ != CodeMode::kLong64 || envU64("TTVM_DIFF_CPL", 3) == 0) cpl_ = 0;
  if (mode_ == CodeMode::kReal16) cpl_ = 0;
  PhysicalMemory pm;
  pm.ram = std::span<uint8_t>(ram_.data(), ram_.size());
  cpu_ = std::make_unique<Cpu>(CpuModel::ttvmDefault(), pm, *env_);
}

EmulatorRunner::~EmulatorRunner() = default;

void EmulatorRunner::buildSystem() {
  std::memset(ram_.data(), 0, 0x10000);
  if (mode_ == CodeMode::kLong64) {
    constexpr uint64_t P = 1, RW = 2, US = 4;
    put64(ram_, kPml4, kPdpt | P | RW | US);
    put64(ram_, kPdpt, kPd | P | RW | US);
    put64(ram_, kPd, kPt0 | P | RW | US);
    put64(ram_, kPd + 8, kPt1 | P | RW | US);
    for (uint64_t page = 0; page < 1024; ++page) {
      uint64_t addr = page << 12;
      // System structures (below 64 KiB) are supervisor-only.
      uint64_t pte = addr | P | RW | (addr >= 0x10000 ? US : 0);
      put64(ram_, kPt0 + page * 8, pte);  // kPt1 follows kPt0 directly
    }
    put64(ram_, kGdt + 0x00, 0);
    put64(ram_, kGdt + kKernelCode, 0x00AF9A000000FFFFull);
    put64(ram_, kGdt + kKernelData, 0x00CF92000000FFFFull);
    put64(ram_, kGdt + kUserData, 0x00CFF2000000FFFFull);
    put64(ram_, kGdt + kUserCode, 0x00AFFA000000FFFFull);
    // 64-bit TSS descriptor (busy), base kTss, limit 0x67.
    uint64_t lo = 0x67 | ((kTss & 0xFFFFFF) << 16) | (0x8Bull << 40) | ((kTss >> 24) << 56);
    put64(ram_, kGdt + kTssSel, lo);
    put64(ram_, kGdt + kTssSel + 8, kTss >> 32);
    put64(ram_, kTss + 4, kKernelStackTop);     // RSP0
    put64(ram_, kTss + 0x24, kKernelStackTop);  // IST1
    put16(ram_, kTss + 0x66, 0x68);             // no I/O bitmap
    for (int v = 0; v < kVectors; ++v) {
      uint64_t ist = cpl_ == 0 ? 1 : 0;
      uint64_t gate = (kHandler & 0xFFFF) | (uint64_t{kKernelCode} << 16) | (ist << 32) |
                      (0x8Eull << 40) | (((kHandler >> 16) & 0xFFFF) << 48);
      put64(ram_, kIdt + v * 16, gate);
      put64(ram_, kIdt + v * 16 + 8, kHandler >> 32);
    }
  } else if (mode_ == CodeMode::kProtected32) {
    put64(ram_, kGdt + kKernelCode, 0x00CF9A000000FFFFull);
    put64(ram_, kGdt + kKernelData, 0x00CF92000000FFFFull);
    for (int v = 0; v < kVectors; ++v) {
      uint64_t gate = (kHandler & 0xFFFF) | (uint64_t{kKernelCode} << 16) | (0x8Eull << 40) |
                      (((kHandler >> 16) & 0xFFFF) << 48);
      put64(ram_, kIdt + v * 8, gate);
    }
  } else {
    for (int v = 0; v < 256; ++v) put32(ram_, v * 4, static_cast<uint32_t>((kHandler >> 4) << 16));
  }
  ram_[kHandler] = 0xF4;  // HLT
}

CpuState EmulatorRunner::initialState(const TestCase& tc) const {
  const Layout lay = layoutFor(mode_);
  CpuState s;
  s.msr = MsrState{};
  for (int i = 0; i < 16; ++i) s.gpr[i] = tc.initial.gpr[i];
  for (int i = 0; i < 16; ++i) s.fpu.xmm[i] = tc.initial.xmm[i];
  s.rflags = tc.initial.rflags;
  s.rip = lay.code;
  s.cr4 = cr4::kOSFXSR | cr4::kOSXMMEXCPT;
  s.cr0 = cr0::kET | cr0::kNE | cr0::kMP;
  constexpr uint32_t kFlat = 0xFFFFFFFF;
  if (mode_ == CodeMode::kLong64) {
    s.cr0 |= cr0::kPE | cr0::kPG | cr0::kWP;
    s.cr3 = kPml4;
    s.cr4 |= cr4::kPAE;
    s.msr.efer = efer::kLME | efer::kLMA | efer::kNXE | efer::kSCE;
    s.gdtr = {kGdt, 0x37};
    s.idtr = {kIdt, kVectors * 16 - 1};
    s.tr = seg(kTssSel, kTss, 0x67, 0x8B);
    s.ldtr = seg(0, 0, 0, segattr::kUnusable);
    if (cpl_ == 3) {
      SegmentRegister data = seg(kUserData | 3, 0, kFlat, 0xC0F3);
      for (auto& r : s.seg) r = data;
      s.segment(SegReg::kCs) = seg(kUserCode | 3, 0, kFlat, 0xA0FB);
    } else {
      SegmentRegister data = seg(kKernelData, 0, kFlat, 0xC093);
      for (auto& r : s.seg) r = data;
      s.segment(SegReg::kCs) = seg(kKernelCode, 0, kFlat, 0xA09B);
    }
  } else if (mode_ == CodeMode::kProtected32) {
    s.cr0 |= cr0::kPE;
    s.gdtr = {kGdt, 0x17};
    s.idtr = {kIdt, kVectors * 8 - 1};
    s.tr = seg(0, 0, 0x67, 0x8B);
    SegmentRegister data = seg(kKernelData, 0, kFlat, 0xC093);
    for (auto& r : s.seg) r = data;
    s.segment(SegReg::kCs) = seg(kKernelCode, 0, kFlat, 0xC09B);
  } else {
    s.idtr = {0, 0x3FF};
    SegmentRegister data = seg(lay.realSegment, lay.realSegment * 16ull, 0xFFFF, 0x93);
    for (auto& r : s.seg) r = data;
    s.segment(SegReg::kCs) = seg(lay.realSegment, lay.realSegment * 16ull, 0xFFFF, 0x9B);
  }
  return s;
}

Result<Outcome> EmulatorRunner::run(const TestCase& tc, const Encoded& code) {
  if (tc.program.mode != mode_) return makeError("EmulatorRunner: test case is for another mode");
  const Layout lay = layoutFor(mode_);
  buildSystem();
  uint64_t codeLin = lay.linearCode();
  uint64_t dataLin = lay.linearData();
  std::memset(&ram_[codeLin], 0xF4, 0x2000);  // HLT after the code: never reached
  std::memcpy(&ram_[codeLin], code.bytes.data(), code.bytes.size());
  std::memcpy(&ram_[dataLin], tc.initial.mem.data(), kMemSize);
  cpu_->notifyRamWritten(0, 0x10000);
  cpu_->notifyRamWritten(codeLin, 0x2000);
  cpu_->notifyRamWritten(dataLin, kMemSize);
  cpu_->setState(initialState(tc));
  env_->unexpected.clear();

  const uint64_t end = lay.code + code.bytes.size();
  const bool is64 = mode_ == CodeMode::kLong64;
  const int sp = static_cast<int>(Gpr::kRsp);
  Outcome o;
  uint64_t steps = 0;
  bool done = cpu_->state().rip == end;
  while (!done) {
    if (++steps > kMaxSteps) {
      return makeError("emulator did not reach the end of the code within " +
                       std::to_string(kMaxSteps) + " steps (seed " + std::to_string(tc.seed) + ")");
    }
    // What an exception frame on the guest's own stack would overwrite.
    const CpuState before = cpu_->state();
    uint64_t spLin = (before.gpr[sp] & (mode_ == CodeMode::kReal16 ? 0xFFFF : ~0ull)) +
                     before.segment(SegReg::kSs).base;
    uint8_t below[64] = {};
    bool haveBelow = spLin >= 64 && spLin <= ram_.size();
    if (haveBelow) std::memcpy(below, &ram_[spLin - 64], 64);

    StepResult r = cpu_->step();
    if (!env_->unexpected.empty()) {
      return makeError(env_->unexpected.front() + " at rip 0x" + std::to_string(before.rip) +
                       " (seed " + std::to_string(tc.seed) + ")");
    }
    if (r.outcome == StepOutcome::kRetired) {
      done = cpu_->state().rip == end;
      continue;
    }
    o.faulted = true;
    const CpuState& s = cpu_->state();
    if (r.outcome != StepOutcome::kException) {
      // Not something a user-mode sequence can do: report it as an outcome
      // the oracle never has (vector 0xFD: triple fault, 0xFE: anything else).
      o.vector = r.outcome == StepOutcome::kTripleFault ? 0xFD : 0xFE;
      o.state.gpr = s.gpr;
      o.state.rip = s.rip;
      o.state.rflags = s.rflags;
      break;
    }
    o.vector = r.vector;
    o.state.gpr = s.gpr;
    uint64_t frame = s.gpr[sp] + s.segment(SegReg::kSs).base;
    if (mode_ == CodeMode::kReal16) frame = (s.gpr[sp] & 0xFFFF) + s.segment(SegReg::kSs).base;
    int w = is64 ? 8 : (mode_ == CodeMode::kProtected32 ? 4 : 2);
    if (r.hasErrorCode) frame += w;
    o.state.rip = get(ram_, frame, w);
    o.state.rflags = get(ram_, frame + 2 * w, w);
    if (is64) {
      o.state.gpr[sp] = get(ram_, frame + 3 * w, w);
    } else {
      o.state.gpr[sp] = before.gpr[sp];
      if (haveBelow) std::memcpy(&ram_[spLin - 64], below, 64);
    }
    break;
  }
  if (!o.faulted) {
    const CpuState& s = cpu_->state();
    o.state.gpr = s.gpr;
    o.state.rip = s.rip;
    o.state.rflags = s.rflags;
  }
  for (int i = 0; i < 16; ++i) o.state.xmm[i] = cpu_->state().fpu.xmm[i];
  if (!is64) {
    for (int i = 0; i < 16; ++i) o.state.gpr[i] &= 0xFFFFFFFF;
  }
  std::memcpy(o.state.mem.data(), &ram_[dataLin], kMemSize);
  return o;
}

}  // namespace ttvm::difftest
