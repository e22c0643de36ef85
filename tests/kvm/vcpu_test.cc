// The KVM layer on a real /dev/kvm: tiny guests (tests/kvm/guests/*.asm) run
// under KVM, and the exits they produce, the CPUID they see, the single-step
// trap sequence and the state read back are checked. CTest runs this binary
// inside the nested VM (kvm.nested, scripts/nested_kvm.sh), whose KVM is the
// reference; run by hand without /dev/kvm every test skips with the reason.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <thread>

#include "test_states.h"
#include "ttvm/emulator/disassembler.h"
#include "ttvm/kvm/kvm.h"
#include "ttvm/kvm/kvm_abi.h"

#ifndef TTVM_KVM_GUEST_DIR
#error "TTVM_KVM_GUEST_DIR must name the directory of the built test guests"
#endif

namespace ttvm::kvm {
namespace {

constexpr uint64_t kLoad = 0x1000;
constexpr uint64_t kRamSize = 2 << 20;     // host buffer: 2 MiB
constexpr uint64_t kLowEnd = 0xA0000;      // slot 0: [0, 640 KiB)
constexpr uint64_t kHighStart = 0x100000;  // slot 1: [1 MiB, 2 MiB)
constexpr uint64_t kHoleMmio = 0xB0000;    // in the hole: MMIO

// /dev/kvm, opened once for the whole binary; the reason when it cannot be.
const Kvm* sharedKvm(std::string* why) {
  static std::optional<Result<Kvm>> k;
  if (!k) {
    k.emplace(Kvm::open());
    if (k->ok()) std::printf("kvm: %s opened\n", (*k)->path().c_str());
  }
  if (!k->ok()) {
    *why = k->error().message;
    return nullptr;
  }
  return &k->value();
}

std::vector<uint8_t> readGuest(const std::string& name) {
  const std::string path = std::string(TTVM_KVM_GUEST_DIR) + "/" + name;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  return {std::istreambuf_iterator<char>(in), {}};
}

// A VM with 2 MiB of RAM minus the hole [640 KiB, 1 MiB), one vCPU with the
// ttvm CPU model restricted to what the host's KVM supports, in real mode at
// 0x1000.
class KvmVcpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    kvm_ = sharedKvm(&why);
    // Inside the nested VM (scripts/nested_kvm.sh) /dev/kvm is promised.
    if (kvm_ == nullptr && std::getenv("TTVM_NESTED_KVM") != nullptr)
      FAIL() << "inside the nested VM, which checked /dev/kvm: " << why;
    if (kvm_ == nullptr) GTEST_SKIP() << why;
    void* p = mmap(nullptr, kRamSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(p, MAP_FAILED);
    ram_ = static_cast<uint8_t*>(p);
    Result<Vm> vm = kvm_->createVm();
    ASSERT_TRUE(vm.ok()) << vm.error().message;
    vm_.emplace(std::move(vm.value()));
    Status s = vm_->setMemory(0, 0, {ram_, kLowEnd});
    ASSERT_TRUE(s.ok()) << s.error().message;
    s = vm_->setMemory(1, kHighStart, {ram_ + kHighStart, kRamSize - kHighStart});
    ASSERT_TRUE(s.ok()) << s.error().message;
    Result<Vcpu> v = vm_->createVcpu(0);
    ASSERT_TRUE(v.ok()) << v.error().message;
    vcpu_.emplace(std::move(v.value()));
    const Result<std::vector<CpuidLeaf>> host = kvm_->supportedCpuid();
    ASSERT_TRUE(host.ok()) << host.error().message;
    std::vector<MissingFeature> removed;
    model_ = restrictToHost(CpuModel::ttvmDefault(), *host, &removed);
    for (const MissingFeature& f : removed)
      std::printf("kvm: the host's KVM lacks %s of the ttvm model: hidden from the guest\n",
                  describe(f).c_str());
    s = vcpu_->setCpuid(model_);
    ASSERT_TRUE(s.ok()) << s.error().message;
  }
  void TearDown() override {
    vcpu_.reset();
    vm_.reset();
    if (ram_ != nullptr) munmap(ram_, kRamSize);
  }

  // Copies a guest to 0x1000 and enters real mode there (CS=DS=ES=SS=0).
  void loadRealMode(const std::vector<uint8_t>& code) {
    ASSERT_FALSE(code.empty());
    std::memcpy(ram_ + kLoad, code.data(), code.size());
    code_ = code;
    CpuState s = resetState();
    for (SegmentRegister& r : s.seg) r = {0, 0, 0xFFFF, 0x93};
    s.segment(SegReg::kCs) = {0, 0, 0xFFFF, 0x9B};
    s.rip = kLoad;
    s.reg(Gpr::kRsp) = 0x8000;
    const Status st = vcpu_->setState(s);
    ASSERT_TRUE(st.ok()) << st.error().message;
  }

  VcpuExit run() {
    Result<VcpuExit> e = vcpu_->run();
    EXPECT_TRUE(e.ok()) << e.error().message;
    if (!e.ok()) return VcpuExit{};
    return std::move(e.value());
  }

  // The next exit must be port I/O: returns it (data writable for an IN).
  VcpuExit expectIo(bool in, uint16_t port, uint8_t size) {
    VcpuExit e = run();
    EXPECT_EQ(e.kind, ExitKind::kIo) << describe(e);
    EXPECT_EQ(e.io.in, in) << describe(e);
    EXPECT_EQ(e.io.port, port) << describe(e);
    EXPECT_EQ(e.io.size, size) << describe(e);
    return e;
  }
  uint32_t expectOut(uint16_t port, uint8_t size) {
    const VcpuExit e = expectIo(false, port, size);
    uint32_t v = 0;
    if (e.kind == ExitKind::kIo && e.io.data.size() >= size)
      std::memcpy(&v, e.io.data.data(), size);
    EXPECT_EQ(e.io.count, 1u);
    return v;
  }
  VcpuExit expectMmio(bool write, uint64_t address, size_t size) {
    VcpuExit e = run();
    EXPECT_EQ(e.kind, ExitKind::kMmio) << describe(e);
    EXPECT_EQ(e.mmio.write, write) << describe(e);
    EXPECT_EQ(e.mmio.address, address) << describe(e);
    EXPECT_EQ(e.mmio.data.size(), size) << describe(e);
    return e;
  }
  static uint64_t value(std::span<const uint8_t> b) {
    uint64_t v = 0;
    std::memcpy(&v, b.data(), std::min<size_t>(b.size(), 8));
    return v;
  }

  const Kvm* kvm_ = nullptr;
  uint8_t* ram_ = nullptr;
  std::optional<Vm> vm_;
  std::optional<Vcpu> vcpu_;
  CpuModel model_;
  std::vector<uint8_t> code_;
};

TEST_F(KvmVcpuTest, RealModePortIoStringIoMmioAndHlt) {
  loadRealMode(readGuest("io_mmio.bin"));
  EXPECT_EQ(expectOut(0x3F8, 1), uint32_t('K'));
  EXPECT_EQ(expectOut(0x80, 2), 0x1234u);
  EXPECT_EQ(expectOut(0x84, 4), 0xDEADBEEFu);
  VcpuExit in = expectIo(true, 0x60, 1);
  ASSERT_EQ(in.io.data.size(), 1u);
  in.io.data[0] = 0x41;
  EXPECT_EQ(expectOut(0x61, 1), 0x42u) << "the guest's INC of what IN read";

  // REP OUTSB of "hello": however KVM splits it, the bytes arrive in order.
  std::string out;
  unsigned outExits = 0;
  while (out.size() < 5) {
    const VcpuExit e = expectIo(false, 0x3F8, 1);
    if (e.kind != ExitKind::kIo) return;
    out.append(e.io.data.begin(), e.io.data.end());
    ++outExits;
  }
  EXPECT_EQ(out, "hello");
  // REP INSB of 4 bytes: answered 1, 2, 3, 4 across however many exits.
  unsigned answered = 0, inExits = 0, maxCount = 0;
  while (answered < 4) {
    VcpuExit e = expectIo(true, 0x62, 1);
    if (e.kind != ExitKind::kIo) return;
    for (uint8_t& b : e.io.data) b = uint8_t(++answered);
    maxCount = std::max(maxCount, e.io.count);
    ++inExits;
  }
  EXPECT_EQ(answered, 4u);
  std::printf(
      "kvm: REP OUTSB of 5 bytes: %u exits; REP INSB of 4 bytes: %u exit(s), count up to %u\n",
      outExits, inExits, maxCount);
  EXPECT_GT(maxCount, 1u) << "KVM batches INS into one exit with count > 1 (its PIO read-ahead)";
  EXPECT_EQ(expectOut(0x84, 4), 0x04030201u) << "the bytes REP INSB stored";

  EXPECT_EQ(value(expectMmio(true, kHoleMmio + 0x10, 1).mmio.data), 0x5Au);
  EXPECT_EQ(value(expectMmio(true, kHoleMmio + 0x20, 2).mmio.data), 0xBEEFu);
  EXPECT_EQ(value(expectMmio(true, kHoleMmio + 0x30, 4).mmio.data), 0x01020304u);
  VcpuExit rd = expectMmio(false, kHoleMmio + 0x40, 4);
  const uint32_t answer = 0xCAFEF00D;
  if (rd.mmio.data.size() == 4) std::memcpy(rd.mmio.data.data(), &answer, 4);
  EXPECT_EQ(expectOut(0x84, 4), answer) << "the MMIO read's answer, as the guest saw it";

  const VcpuExit h = run();
  ASSERT_EQ(h.kind, ExitKind::kHlt) << describe(h);
  const Result<CpuState> s = vcpu_->state();
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_TRUE(s->pending.halted);
  ASSERT_GE(s->rip, kLoad + 1);
  EXPECT_EQ(ram_[s->rip - 1], 0xF4) << "RIP " << std::hex << s->rip << " is not after the HLT";
}

TEST_F(KvmVcpuTest, ProtectedModeSwitchAndMmioAboveRam) {
  const uint32_t magic = 0xFEEDFACE;
  std::memcpy(ram_ + kHighStart, &magic, 4);
  loadRealMode(readGuest("prot_mode.bin"));
  EXPECT_EQ(expectOut(0x84, 4), 0x54524F50u);
  EXPECT_EQ(value(expectMmio(true, 0xFEB00000, 4).mmio.data), 0x11223344u);
  EXPECT_EQ(expectOut(0x84, 4), magic) << "RAM of the second memory slot, read in protected mode";
  const VcpuExit h = run();
  ASSERT_EQ(h.kind, ExitKind::kHlt) << describe(h);
  const Result<CpuState> s = vcpu_->state();
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(cpuMode(*s), CpuMode::kProtected32);
  EXPECT_TRUE(s->cr0 & cr0::kPE);
  const uint32_t code32 = 0xB | segattr::kS | segattr::kP | segattr::kDB | segattr::kG;
  const uint32_t data32 = 0x3 | segattr::kS | segattr::kP | segattr::kDB | segattr::kG;
  EXPECT_EQ(s->segment(SegReg::kCs), (SegmentRegister{0x08, 0, 0xFFFFFFFF, code32}));
  EXPECT_EQ(s->segment(SegReg::kDs), (SegmentRegister{0x10, 0, 0xFFFFFFFF, data32}));
  EXPECT_EQ(s->segment(SegReg::kSs), (SegmentRegister{0x10, 0, 0xFFFFFFFF, data32}));
  EXPECT_EQ(s->reg(Gpr::kRsp), 0x8000u);
  EXPECT_EQ(s->gdtr.limit, 23);
  EXPECT_EQ(s->reg(Gpr::kRax), magic);
}

TEST_F(KvmVcpuTest, SingleStepTrapsAfterEveryInstructionIncludingPortAndMmio) {
  loadRealMode(readGuest("single_step.bin"));
  // The instructions, their kinds of exit, from the guest's own bytes.
  enum Exit { kNone, kPortOut, kPortIn, kMmioWrite };
  const std::vector<std::pair<std::string, Exit>> want = {
      {"mov al", kNone},  {"out ", kPortOut},       {"mov bx", kNone},
      {"mov es", kNone},  {"mov es:[", kMmioWrite}, {"nop", kNone},
      {"in al", kPortIn}, {"mov es:[", kMmioWrite}, {"inc ", kNone}};
  std::vector<uint64_t> starts;
  uint64_t at = 0;
  for (const auto& [mnemonic, kind] : want) {
    const Disassembly d = disassemble(std::span(code_).subspan(at), CpuMode::kReal, kLoad + at);
    ASSERT_GT(d.length, 0u);
    ASSERT_EQ(d.text.rfind(mnemonic, 0), 0u) << "instruction " << starts.size() << " is '" << d.text
                                             << "', the test expects '" << mnemonic << "...'";
    starts.push_back(kLoad + at);
    at += d.length;
  }
  const uint64_t hltAt = kLoad + at;
  ASSERT_EQ(code_[at], 0xF4);

  ASSERT_TRUE(vcpu_->setSingleStep(true).ok());
  std::string trace;
  for (size_t i = 0; i < want.size(); ++i) {
    const uint64_t next = i + 1 < starts.size() ? starts[i + 1] : hltAt;
    switch (want[i].second) {
      case kNone: break;
      case kPortOut: EXPECT_EQ(expectOut(0x80, 1), 0x11u); break;
      case kPortIn: {
        VcpuExit e = expectIo(true, 0x60, 1);
        if (e.io.data.size() == 1) e.io.data[0] = 0x77;
        break;
      }
      case kMmioWrite: {
        const uint64_t addr = kHoleMmio + (i == 4 ? 0 : 4);
        EXPECT_EQ(value(expectMmio(true, addr, 1).mmio.data), i == 4 ? 0x11u : 0x77u);
        break;
      }
    }
    const VcpuExit d = run();
    ASSERT_EQ(d.kind, ExitKind::kDebug)
        << "after '" << want[i].first << "' at " << std::hex << starts[i] << ": " << describe(d);
    EXPECT_EQ(d.debug.exception, 1u);
    EXPECT_EQ(d.debug.pc, next) << "the trap after '" << want[i].first << "'";
    EXPECT_TRUE(d.debug.dr6 & (1u << 14)) << "DR6.BS, dr6 " << std::hex << d.debug.dr6;
    // Pinned host fact: KVM loses the trap after an MMIO write it hands to
    // user space (complete_emulated_mmio's FIXME), and Vcpu::run supplies
    // it. Should a kernel deliver it, the repair is dead code: revisit.
    EXPECT_EQ(d.debug.repaired, want[i].second == kMmioWrite)
        << "after '" << want[i].first << "': KVM " << (d.debug.repaired ? "lost" : "delivered")
        << " the trap";
    char line[64];
    std::snprintf(line, sizeof line, " %llx%s", static_cast<unsigned long long>(d.debug.pc),
                  d.debug.repaired ? "(repaired)" : "");
    trace += line;
  }
  std::printf("kvm: single-step traps at%s\n", trace.c_str());
  ASSERT_TRUE(vcpu_->setSingleStep(false).ok());
  const VcpuExit h = run();
  EXPECT_EQ(h.kind, ExitKind::kHlt) << describe(h);
  const Result<CpuState> s = vcpu_->state();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->rip, hltAt + 1);
  EXPECT_EQ(s->reg(Gpr::kRax) & 0xFF, 0x78u);
  EXPECT_FALSE(s->rflags & flags::kTF)
      << "the host's single-step never shows in the guest's RFLAGS";
}

TEST_F(KvmVcpuTest, SingleStepOverRepStringIo) {
  loadRealMode(readGuest("rep_step.bin"));
  ASSERT_TRUE(vcpu_->setSingleStep(true).ok());
  // Every exit until HLT, written down: the observed sequence, printed.
  std::string seq;
  uint8_t nextIn = 0xB1;
  for (int n = 0; n < 64; ++n) {
    VcpuExit e = run();
    char item[64];
    if (e.kind == ExitKind::kDebug) {
      std::snprintf(item, sizeof item, " db@%llx%s", static_cast<unsigned long long>(e.debug.pc),
                    e.debug.repaired ? "r" : "");
    } else if (e.kind == ExitKind::kIo) {
      if (e.io.in)
        for (uint8_t& b : e.io.data) b = nextIn++;
      std::snprintf(item, sizeof item, " %s%x*%u", e.io.in ? "in" : "out", e.io.port, e.io.count);
    } else if (e.kind == ExitKind::kMmio) {
      std::snprintf(item, sizeof item, " mmio%s@%llx", e.mmio.write ? "w" : "r",
                    static_cast<unsigned long long>(e.mmio.address));
    } else {
      std::snprintf(item, sizeof item, " %s", describe(e).c_str());
    }
    seq += item;
    if (e.kind == ExitKind::kHlt || e.kind == ExitKind::kShutdown ||
        e.kind == ExitKind::kInternalError || e.kind == ExitKind::kFailEntry)
      break;
  }
  std::printf("kvm: single-step over REP OUTSB/INSB/MOVSB x3:%s\n", seq.c_str());
  // Pinned: what KVM (Debian 6.1 kvm-amd) does, with Vcpu::run's repairs.
  // A trap after every plain instruction; each REP instruction (at 0x100a,
  // 0x1015, 0x1024) traps once after its iterations, not after each one as
  // the architecture and ttvm's emulator do: lockstep must expect this. REP
  // INSB's three reads come in one exit, and KVM traps at the instruction
  // once the batch is consumed, then after its final zero-count pass.
  EXPECT_EQ(seq,
            " db@1001 db@1004 db@1007 db@100a out80*1 out80*1 out80*1 db@100c db@100f db@1012"
            " db@1015 in60*3 db@1015 db@1017 db@101a db@101c db@101f db@1021 db@1024"
            " mmiow@b0000 mmiow@b0001 mmiow@b0002 db@1026 hlt");
  // The bytes went where they should: REP INSB stored the answers.
  EXPECT_EQ(ram_[kLoad + code_.size() - 3], 0xB1);
  EXPECT_EQ(ram_[kLoad + code_.size() - 1], 0xB3);
}

TEST_F(KvmVcpuTest, AnExitCompletedWhileSteppingIsNotCompletedAgain) {
  // KvmBackend's step runs one iteration of a REP OUTSB at a time: it
  // completes each exit itself (completeExit) and, after the last, moves
  // RIP past the instruction (its final zero-count pass). The next run()
  // must then enter there and trap after that instruction, not report a
  // step that ran nothing because RIP moved.
  loadRealMode(readGuest("rep_step.bin"));
  ASSERT_TRUE(vcpu_->setSingleStep(true).ok());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(run().kind, ExitKind::kDebug);  // up to 0x100a
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(expectOut(0x80, 1), 0xA1u + uint32_t(i));
    Result<std::optional<VcpuExit>> next = vcpu_->completeExit();
    ASSERT_TRUE(next.ok()) << next.error().message;
    EXPECT_FALSE(next->has_value()) << describe(**next);  // OUTS: nothing more to complete
  }
  Result<CpuState> s = vcpu_->state();
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->reg(Gpr::kRcx) & 0xFFFF, 0u);
  s->rip = 0x100C;  // past REP OUTSB (F3 6E)
  s->rflags &= ~flags::kRF;
  ASSERT_TRUE(vcpu_->setState(*s).ok());
  const VcpuExit e = run();
  ASSERT_EQ(e.kind, ExitKind::kDebug) << describe(e);
  EXPECT_EQ(e.debug.pc, 0x100Fu);  // after mov di, dst
  EXPECT_FALSE(e.debug.repaired);
}

TEST_F(KvmVcpuTest, PortOutLoopExitsOncePerOut) {
  loadRealMode(readGuest("out_loop.bin"));
  constexpr uint32_t kCount = 20000;
  CpuState s = vcpu_->state().value();
  s.reg(Gpr::kRcx) = kCount;
  ASSERT_TRUE(vcpu_->setState(s).ok());
  const auto t0 = std::chrono::steady_clock::now();
  uint32_t expected = 1;
  for (; expected <= kCount; ++expected) {
    const VcpuExit e = run();
    ASSERT_EQ(e.kind, ExitKind::kIo) << describe(e) << " at iteration " << expected;
    uint32_t v;
    std::memcpy(&v, e.io.data.data(), 4);
    ASSERT_EQ(v, expected);
  }
  const double s2 = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(run().kind, ExitKind::kHlt);
  std::printf("kvm: %u port-OUT exits in %.3f s: %.0f exits/s (%.1f us each)\n", kCount, s2,
              kCount / s2, 1e6 * s2 / kCount);
}

TEST_F(KvmVcpuTest, CpuidIsTheModelsTable) {
  loadRealMode(readGuest("cpuid.bin"));
  std::vector<std::pair<uint32_t, uint32_t>> queries;
  for (const CpuidLeaf& l : model_.cpuid) queries.emplace_back(l.leaf, l.subleaf);
  // Leaves the model lacks inside its range (zeros), leaf 7's other
  // subleaves (zeros), and leaves above the maximum (the Intel rule: the
  // highest basic leaf) — KVM must answer each as the model does.
  for (auto q : {std::pair<uint32_t, uint32_t>{2, 0},
                 {5, 0},
                 {7, 1},
                 {0x20, 0},
                 {0x40000000u, 0},
                 {0x80000005u, 0},
                 {0x80000009u, 0}})
    queries.push_back(q);
  for (auto [leaf, subleaf] : queries) {
    VcpuExit e = expectIo(true, 0x70, 4);
    ASSERT_EQ(e.kind, ExitKind::kIo);
    std::memcpy(e.io.data.data(), &leaf, 4);
    e = expectIo(true, 0x71, 4);
    ASSERT_EQ(e.kind, ExitKind::kIo);
    std::memcpy(e.io.data.data(), &subleaf, 4);
    uint32_t r[4];
    for (uint32_t& v : r) v = expectOut(0x72, 4);
    const CpuidLeaf m = model_.lookup(leaf, subleaf);
    EXPECT_EQ(r[0], m.eax) << std::hex << "CPUID." << leaf << "." << subleaf << ":EAX";
    EXPECT_EQ(r[1], m.ebx) << std::hex << "CPUID." << leaf << "." << subleaf << ":EBX";
    EXPECT_EQ(r[2], m.ecx) << std::hex << "CPUID." << leaf << "." << subleaf << ":ECX";
    EXPECT_EQ(r[3], m.edx) << std::hex << "CPUID." << leaf << "." << subleaf << ":EDX";
  }
  const Result<std::vector<CpuidLeaf>> held = vcpu_->cpuid();
  ASSERT_TRUE(held.ok()) << held.error().message;
  EXPECT_EQ(*held, model_.cpuid) << "KVM holds exactly the model's leaves";
}

TEST_F(KvmVcpuTest, StateSetBeforeEnteringIsTheStateReadBack) {
  for (const CpuState& want : {longModeState(), resetState()}) {
    const Status st = vcpu_->setState(want);
    ASSERT_TRUE(st.ok()) << st.error().message;
    const Result<CpuState> got = vcpu_->state();
    ASSERT_TRUE(got.ok()) << got.error().message;
    EXPECT_EQ(got->gpr, want.gpr);
    EXPECT_EQ(got->rip, want.rip);
    EXPECT_EQ(got->rflags, want.rflags);
    for (int i = 0; i < kNumSegRegs; ++i)
      EXPECT_EQ(got->seg[i], want.seg[i])
          << "segment " << i << ": attributes " << std::hex << got->seg[i].attributes << " vs "
          << want.seg[i].attributes;
    EXPECT_EQ(got->tr, want.tr);
    EXPECT_EQ(got->ldtr, want.ldtr);
    EXPECT_EQ(got->gdtr, want.gdtr);
    EXPECT_EQ(got->idtr, want.idtr);
    EXPECT_EQ(got->cr0, want.cr0);
    EXPECT_EQ(got->cr2, want.cr2);
    EXPECT_EQ(got->cr3, want.cr3);
    EXPECT_EQ(got->cr4, want.cr4);
    EXPECT_EQ(got->cr8, want.cr8);
    EXPECT_EQ(got->xcr0, want.xcr0);
    EXPECT_EQ(got->dr, want.dr);
    EXPECT_EQ(got->dr6, want.dr6);
    EXPECT_EQ(got->dr7, want.dr7);
    EXPECT_EQ(got->msr, want.msr);
    EXPECT_EQ(got->fpu, want.fpu);
    EXPECT_EQ(got->pending, want.pending);
  }
}

TEST_F(KvmVcpuTest, StiShadowReadsBackAsAShadow) {
  CpuState s = resetState();
  s.rflags |= flags::kIF;
  s.pending.shadow = InterruptShadow::kSti;
  ASSERT_TRUE(vcpu_->setState(s).ok());
  const Result<CpuState> got = vcpu_->state();
  ASSERT_TRUE(got.ok());
  // VMX keeps STI and MOV SS shadows apart; SVM has one interrupt-shadow bit
  // and KVM reports it as both, which reads as the stronger MOV SS shadow.
  EXPECT_NE(got->pending.shadow, InterruptShadow::kNone);
  std::printf("kvm: an STI shadow reads back as %s\n",
              got->pending.shadow == InterruptShadow::kSti ? "STI (VMX)" : "MOV SS (SVM)");
}

TEST_F(KvmVcpuTest, KickInterruptsASpinningGuest) {
  loadRealMode({0xEB, 0xFE});  // jmp $: never exits by itself
  vcpu_->prepareKick();
  using Clock = std::chrono::steady_clock;
  for (int round = 0; round < 2; ++round) {
    const auto t0 = Clock::now();
    std::thread kicker([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      vcpu_->kick();
    });
    const VcpuExit e = run();
    kicker.join();
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    EXPECT_EQ(e.kind, ExitKind::kInterrupted) << describe(e);
    EXPECT_GE(ms, 90) << "KVM_RUN returned before the kick: the guest did not spin";
    const Result<CpuState> s = vcpu_->state();
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->rip, kLoad);
  }
  // A kick before KVM_RUN (immediate_exit): returns without entering.
  vcpu_->kick();
  const auto t0 = Clock::now();
  EXPECT_EQ(run().kind, ExitKind::kInterrupted);
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count(), 50);
}

TEST_F(KvmVcpuTest, LongModeWithPagingSetBeforeEntering) {
  // Identity map with 2 MiB pages: PML4 0x2000 -> PDPT 0x3000 -> PD 0x4000
  // (0-2 MiB) and PD 0x5000 (3-4 GiB, the page 0xFEA00000).
  auto pte = [&](uint64_t at, uint64_t v) { std::memcpy(ram_ + at, &v, 8); };
  constexpr uint64_t kP = 1, kRw = 2, kPs = 0x80, kAccessed = 0x20, kDirty = 0x40;
  pte(0x2000, 0x3000 | kP | kRw);
  pte(0x3000 + 0 * 8, 0x4000 | kP | kRw);
  pte(0x3000 + 3 * 8, 0x5000 | kP | kRw);
  pte(0x4000, 0 | kP | kRw | kPs);
  pte(0x5000 + 0x1F5 * 8, 0xFEA00000 | kP | kRw | kPs);
  const std::vector<uint8_t> code = readGuest("long_mode.bin");
  ASSERT_FALSE(code.empty());
  std::memcpy(ram_ + kLoad, code.data(), code.size());
  CpuState s = resetState();
  const uint32_t code64 = 0xB | segattr::kS | segattr::kP | segattr::kL | segattr::kG;
  const uint32_t data = 0x3 | segattr::kS | segattr::kP | segattr::kDB | segattr::kG;
  for (SegmentRegister& r : s.seg) r = {0x10, 0, 0xFFFFFFFF, data};
  s.segment(SegReg::kCs) = {0x08, 0, 0xFFFFFFFF, code64};
  s.tr = {0, 0, 0xFFFF, 0xB | segattr::kP};
  s.cr0 = cr0::kPE | cr0::kET | cr0::kNE | cr0::kPG;
  s.cr3 = 0x2000;
  s.cr4 = cr4::kPAE;
  s.msr.efer = efer::kLME | efer::kLMA;
  s.rip = kLoad;
  s.reg(Gpr::kRsp) = 0x8000;
  const Status st = vcpu_->setState(s);
  ASSERT_TRUE(st.ok()) << st.error().message;

  EXPECT_EQ(expectOut(0x84, 4), 0x34365F4Cu);
  EXPECT_EQ(value(expectMmio(true, 0xFEB00008, 4).mmio.data), 0x55667788u);
  VcpuExit rd = expectMmio(false, 0xFEB00010, 4);
  const uint32_t answer = 0x0BADCAFE;
  if (rd.mmio.data.size() == 4) std::memcpy(rd.mmio.data.data(), &answer, 4);
  EXPECT_EQ(expectOut(0x84, 4), answer);
  const VcpuExit h = run();
  ASSERT_EQ(h.kind, ExitKind::kHlt) << describe(h);
  uint64_t stored;
  std::memcpy(&stored, ram_ + kHighStart + 8, 8);
  EXPECT_EQ(stored, answer) << "the 64-bit store into the second memory slot";
  // The CPU walked the guest's tables: accessed bits on the way, dirty on
  // the written 2 MiB page.
  uint64_t pml4e, pde;
  std::memcpy(&pml4e, ram_ + 0x2000, 8);
  std::memcpy(&pde, ram_ + 0x4000, 8);
  EXPECT_TRUE(pml4e & kAccessed);
  EXPECT_TRUE(pde & kAccessed);
  EXPECT_TRUE(pde & kDirty);
  const Result<CpuState> got = vcpu_->state();
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(cpuMode(*got), CpuMode::kLong64);
  EXPECT_EQ(got->cr3, 0x2000u);
  EXPECT_EQ(got->reg(Gpr::kRcx), 0x100000u);
  EXPECT_EQ(got->reg(Gpr::kRbx), 0xFEB00000u);
}

TEST_F(KvmVcpuTest, CodeFetchedFromMmioIsAnInternalError) {
  // A far jump into the hole: KVM cannot execute from MMIO (no RAM to
  // fetch from) and says so.
  loadRealMode({0xEA, 0x00, 0x00, 0x00, 0xB0});  // jmp 0xB000:0000
  const VcpuExit e = run();
  ASSERT_EQ(e.kind, ExitKind::kInternalError) << describe(e);
  std::printf("kvm: code in MMIO: %s\n", describe(e).c_str());
  EXPECT_EQ(e.internal.suberror, uint32_t(KVM_INTERNAL_ERROR_EMULATION));
}

TEST_F(KvmVcpuTest, InvalidGuestStateFailsEntry) {
  // CS with both L and D in long mode: KVM_SET_SREGS accepts it, the
  // hardware's VM-entry checks refuse it (SVM: VMEXIT_INVALID).
  CpuState s = longModeState();
  s.segment(SegReg::kCs).attributes |= segattr::kDB;
  s.pending = {};
  const Status st = vcpu_->setState(s);
  ASSERT_TRUE(st.ok()) << st.error().message;
  const VcpuExit e = run();
  ASSERT_EQ(e.kind, ExitKind::kFailEntry) << describe(e);
  std::printf("kvm: CS.L+CS.D in long mode: %s\n", describe(e).c_str());
  // SVM: VMEXIT_INVALID (-1, as KVM's 32-bit exit code); VMX: basic exit
  // reason 33 (invalid guest state) with bit 31 (entry failure).
  EXPECT_TRUE(e.failEntry.reason == 0xFFFFFFFFu || e.failEntry.reason == 0x80000021u)
      << std::hex << e.failEntry.reason;
}

TEST_F(KvmVcpuTest, GuestSeesTheCpuidTableKvmWasGiven) {
  const Status s = kvm_->checkGuestCpuid();
  EXPECT_TRUE(s.ok()) << s.error().message;
}

TEST_F(KvmVcpuTest, MemorySlotsMustBePageAligned) {
  const Status a = vm_->setMemory(2, 0x300000, {ram_ + 0x10, 4096});
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.error().message.find("memory slot 2"), std::string::npos) << a.error().message;
  EXPECT_NE(a.error().message.find("multiples of 4096"), std::string::npos) << a.error().message;
  EXPECT_FALSE(vm_->setMemory(2, 0x300800, {ram_, 4096}).ok());
  EXPECT_FALSE(vm_->setMemory(2, 0x300000, {ram_, 100}).ok());
  // A slot overlapping slot 1: KVM refuses, and the message names it.
  const Status o = vm_->setMemory(2, kHighStart, {ram_, 4096});
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.error().message.find("KVM_SET_USER_MEMORY_REGION (slot 2, guest 0x100000"),
            std::string::npos)
      << o.error().message;
}

TEST_F(KvmVcpuTest, TripleFaultIsShutdown) {
  loadRealMode({0xCC});  // INT3 with an empty IVT limit: #GP, #DF, shutdown
  CpuState s = vcpu_->state().value();
  s.idtr.limit = 0;
  ASSERT_TRUE(vcpu_->setState(s).ok());
  const VcpuExit e = run();
  EXPECT_EQ(e.kind, ExitKind::kShutdown) << describe(e);
}

}  // namespace
}  // namespace ttvm::kvm
