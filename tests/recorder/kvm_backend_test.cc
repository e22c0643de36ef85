// KvmBackend's host-independent part: which RAM becomes KVM memory slots.
// The backend itself runs on a real /dev/kvm inside the nested VM
// (tests/kvm/record_kvm.sh, ctest -L kvm).
#include "ttvm/recorder/kvm_backend.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "ttvm/emulator/cpu.h"

namespace ttvm {
namespace {

using Range = PhysicalMemory::Range;

TEST(KvmRamSlots, RamMinusTheHolesBelowItsEnd) {
  // The machine's map: the VGA hole in low memory, the LAPIC above RAM.
  const std::vector<Range> holes = {{0xA0000, 0xC0000}, {0xFEE00000, 0xFEE01000}};
  auto slots = kvmRamSlots(256u << 20, holes);
  ASSERT_TRUE(slots.ok()) << slots.error().message;
  ASSERT_EQ(slots->size(), 2u);
  EXPECT_EQ((*slots)[0].begin, 0u);
  EXPECT_EQ((*slots)[0].end, 0xA0000u);
  EXPECT_EQ((*slots)[1].begin, 0xC0000u);
  EXPECT_EQ((*slots)[1].end, 256u << 20);
}

TEST(KvmRamSlots, HolesAtTheEdgesLeaveNoEmptySlot) {
  auto slots = kvmRamSlots(0x10000, std::vector<Range>{{0, 0x1000}, {0xF000, 0x20000}});
  ASSERT_TRUE(slots.ok()) << slots.error().message;
  ASSERT_EQ(slots->size(), 1u);
  EXPECT_EQ((*slots)[0].begin, 0x1000u);
  EXPECT_EQ((*slots)[0].end, 0xF000u);
}

TEST(KvmRamSlots, AStretchThatIsNotWholePagesIsRefusedByName) {
  auto slots = kvmRamSlots(0x10000, std::vector<Range>{{0x800, 0x1000}});
  ASSERT_FALSE(slots.ok());
  EXPECT_NE(slots.error().message.find("0x0-0x800"), std::string::npos) << slots.error().message;
}

// The pages --kvm-trap-tsc keeps out of KVM: every place the bytes of
// RDTSC (0F 31) or RDTSCP (0F 01 F9) start, including inside other
// instructions' bytes and across a page boundary (both pages), but not in
// an MMIO hole; other 0F opcodes (RDMSR 0F 32, 0F 01 F8 SWAPGS) are not.
TEST(TscReadingPages, EveryPlaceTheBytesOfRdtscOrRdtscpStartAndBothPagesOfOneThatStraddles) {
  std::vector<uint8_t> ram(16 * 4096, 0);
  auto put = [&](size_t at, std::initializer_list<uint8_t> bytes) {
    std::memcpy(ram.data() + at, std::data(bytes), bytes.size());
  };
  put(1 * 4096 + 100, {0x0F, 0x31});            // page 1: RDTSC
  put(2 * 4096 + 7, {0x48, 0xB8, 0x0F, 0x31});  // page 2: inside MOV RAX, imm64
  put(3 * 4096 + 4095, {0x0F});                 // pages 3 and 4: RDTSC across them
  put(4 * 4096, {0x31});
  put(5 * 4096 + 4094, {0x0F, 0x01});  // pages 5 and 6: RDTSCP across them
  put(6 * 4096, {0xF9});
  put(7 * 4096 + 10, {0x0F, 0x32, 0x0F, 0x01, 0xF8, 0x0F, 0x0F, 0x30});  // none
  put(9 * 4096 + 5, {0x0F, 0x01, 0xF9});  // page 9 (in the hole below)
  put(15 * 4096 + 4094, {0x0F, 0x31});    // page 15: at RAM's end
  EXPECT_EQ(tscReadingPages(ram, {}), (std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 9, 15}));
  const std::vector<Range> holes = {{9 * 4096, 10 * 4096}};
  EXPECT_EQ(tscReadingPages(ram, holes), (std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 15}));
  put(15 * 4096 + 4094, {0x00, 0x0F});  // a lone 0F as RAM's last byte
  EXPECT_EQ(tscReadingPages(ram, holes), (std::vector<uint64_t>{1, 2, 3, 4, 5, 6}));
}

// What the nested VM's kvm-amd reported for the demo guest, against what
// the emulator holds after the same loads.
TEST(NormalizeSvmSegments, AccessedBitsAndNullSelectorLimitsAsTheEmulatorKeepsThem) {
  CpuState before;
  before.segment(SegReg::kFs).limit = 0xFFFFFFFF;
  before.segment(SegReg::kGs).limit = 0xFFFFFFFF;
  CpuState now = before;
  now.segment(SegReg::kCs) = {0x08, 0, 0xFFFFFFFF, 0xA09A};  // 64-bit code, type read as 0xA
  now.segment(SegReg::kDs) = {0x10, 0, 0xFFFFFFFF, 0xC093};  // accessed already
  now.segment(SegReg::kFs) = {0, 0, 0, segattr::kUnusable};  // null: SVM says limit 0
  now.segment(SegReg::kGs) = {0, 0, 0, segattr::kUnusable};
  now.segment(SegReg::kSs) = {0, 0, 0, segattr::kUnusable};  // null SS: left as it is
  now.ldtr = {0, 0, 0, 0x82};                                // system segment: left as it is
  normalizeSvmSegments(now, before);
  EXPECT_EQ(now.segment(SegReg::kCs).attributes, 0xA09Bu);
  EXPECT_EQ(now.segment(SegReg::kDs).attributes, 0xC093u);
  EXPECT_EQ(now.segment(SegReg::kFs).limit, 0xFFFFFFFFu);
  EXPECT_EQ(now.segment(SegReg::kGs).limit, 0xFFFFFFFFu);
  EXPECT_EQ(now.segment(SegReg::kSs).limit, 0u);
  EXPECT_EQ(now.ldtr.attributes, 0x82u);
  // A usable segment's limit is KVM's.
  now.segment(SegReg::kEs) = {0x10, 0, 0xFFFF, 0x93};
  normalizeSvmSegments(now, before);
  EXPECT_EQ(now.segment(SegReg::kEs).limit, 0xFFFFu);
  // FS made unusable by an IRET to CPL 3 (selector 0x10, DPL 0): SVM says
  // not present (0x1C013), the emulator keeps 0xC093 with the unusable bit.
  CpuState was = now;
  was.segment(SegReg::kFs) = {0x10, 0, 0xFFFFFFFF, 0xC093};
  now.segment(SegReg::kFs) = {0x10, 0, 0xFFFFFFFF, 0x1C013};
  normalizeSvmSegments(now, was);
  EXPECT_EQ(now.segment(SegReg::kFs).attributes, 0x1C093u);
  // Another descriptor (a different type) is KVM's.
  now.segment(SegReg::kFs) = {0x10, 0, 0xFFFFFFFF, 0x1C01B};
  normalizeSvmSegments(now, was);
  EXPECT_EQ(now.segment(SegReg::kFs).attributes, 0x1C01Bu);
}

// segments' far CALL from CPL 3 into a conforming DPL-0 code segment, read
// back in the nested VM: CS 0xC09F (the descriptor's DPL 0), SS DPL 3 (the
// CPL). The emulator keeps the CPL in CS's DPL: 0xC0FF.
TEST(NormalizeSvmSegments, AConformingCodeSegmentHasTheCplAsItsDpl) {
  CpuState before;
  before.cr0 = cr0::kPE | cr0::kET;
  before.segment(SegReg::kCs) = {0x1B, 0, 0xFFFFFFFF, 0xC0FB};
  before.segment(SegReg::kSs) = {0x23, 0, 0xFFFFFFFF, 0xC0F3};
  CpuState now = before;
  now.segment(SegReg::kCs) = {0xC3, 0, 0xFFFFFFFF, 0xC09F};
  normalizeSvmSegments(now, before);
  EXPECT_EQ(now.segment(SegReg::kCs).attributes, 0xC0FFu);
  EXPECT_EQ(now.segment(SegReg::kSs).attributes, 0xC0F3u);
  // A non-conforming one is left as KVM reads it (its DPL is the CPL).
  now.segment(SegReg::kCs) = {0x08, 0, 0xFFFFFFFF, 0xC09B};
  normalizeSvmSegments(now, before);
  EXPECT_EQ(now.segment(SegReg::kCs).attributes, 0xC09Bu);
  // Real mode: no CPL in the attributes.
  now.cr0 = cr0::kET;
  now.segment(SegReg::kCs) = {0xF000, 0xF0000, 0xFFFF, 0x9F};
  normalizeSvmSegments(now, before);
  EXPECT_EQ(now.segment(SegReg::kCs).attributes, 0x9Fu);
}

// KVM leaves REP INSB at the instruction with ECX 0 and RF set after its
// batched iterations (nested VM, rec_kvm_irq): reported one boundary later.
TEST(CompleteRepRestart, AnExhaustedRepStringInstructionWithRfIsSteppedPast) {
  CpuState s;
  s.cr0 = cr0::kPE | cr0::kET;
  s.segment(SegReg::kCs) = {0x08, 0, 0xFFFFFFFF, 0xC09B};
  s.rip = 0x1000A3;
  s.rflags = flags::kFixed1 | flags::kRF;
  const uint8_t repInsb[] = {0xF3, 0x6C, 0xE6, 0x80};
  ASSERT_TRUE(completeRepRestart(s, repInsb));
  EXPECT_EQ(s.rip, 0x1000A5u);
  EXPECT_EQ(s.rflags, flags::kFixed1);
  // Not without RF (a REP with count 0 the guest is about to run), not with
  // iterations left, not without a REP prefix, not another instruction.
  CpuState t = s;
  t.rip = 0x1000A3;
  EXPECT_FALSE(completeRepRestart(t, repInsb));
  t.rflags |= flags::kRF;
  t.reg(Gpr::kRcx) = 3;
  EXPECT_FALSE(completeRepRestart(t, repInsb));
  t.reg(Gpr::kRcx) = 0x1'0000'0000;  // ECX is 0 under a 32-bit address size
  const uint8_t insb[] = {0x6C};
  EXPECT_FALSE(completeRepRestart(t, insb));
  const uint8_t repNop[] = {0xF3, 0x90};
  EXPECT_FALSE(completeRepRestart(t, repNop));
  // Prefixes before the opcode: segment override and address size (CX).
  t.reg(Gpr::kRcx) = 0x10000;
  const uint8_t repOutswCx[] = {0x67, 0x2E, 0xF3, 0x66, 0x6F};
  ASSERT_TRUE(completeRepRestart(t, repOutswCx));
  EXPECT_EQ(t.rip, 0x1000A3u + 5);
  EXPECT_EQ(t.rflags & flags::kRF, 0u);
}

// An environment for one instruction that makes no access outside RAM.
class NoDevices final : public Environment {
 public:
  uint32_t portIn(uint16_t, unsigned) override { return 0xFF; }
  void portOut(uint16_t, unsigned, uint32_t) override {}
  uint64_t mmioRead(uint64_t, unsigned) override { return ~0ull; }
  void mmioWrite(uint64_t, unsigned, uint64_t) override {}
  uint64_t readTsc() override { return 0; }
  std::optional<uint64_t> readRandom(unsigned) override { return std::nullopt; }
  std::optional<uint64_t> readMsr(uint32_t) override { return std::nullopt; }
  bool writeMsr(uint32_t, uint64_t) override { return false; }
  bool interruptPending() override { return false; }
  uint8_t acknowledgeInterrupt() override { return 0; }
  bool nmiPending() override { return false; }
  void acknowledgeNmi() override {}
  bool stopRequested() override { return false; }
};

// Before a stop point KvmBackend steps past an instruction that may have
// opened an interrupt shadow (the nested VM's KVM injects inside STI's).
// The emulator is the oracle of which instructions open one: each
// real-mode instruction below runs once from IF=0, and every one that
// leaves a shadow must be recognised from its bytes; the others must not be
// (else every stop point would cost a step), except where their last bytes
// are a shadow opener's (MOV AL, 0xFB ends in STI's 0xFB: conservative).
// The prefix decoding completeRepRestart and the REP INS/OUTS repair share:
// REP, the address size by mode and 0x67, the opcode after the prefixes.
TEST(StringPrefixes, RepAddressSizeAndOpcodeAfterThePrefixes) {
  const std::vector<uint8_t> repInsb = {0xF3, 0x6C};
  StringPrefixes p = stringPrefixes(repInsb, CpuMode::kLong64);
  EXPECT_TRUE(p.rep);
  EXPECT_EQ(p.addrMask, ~0ull);
  EXPECT_EQ(p.length, 2u);
  EXPECT_TRUE(p.isPortString());
  // 0x67 in each mode; a segment override and REX before the opcode.
  const std::vector<uint8_t> a32Outsd = {0x67, 0x2E, 0x48, 0x6F};
  p = stringPrefixes(a32Outsd, CpuMode::kLong64);
  EXPECT_FALSE(p.rep);
  EXPECT_EQ(p.addrMask, 0xFFFFFFFFull);
  EXPECT_EQ(p.length, 4u);
  EXPECT_TRUE(p.isPortString());
  EXPECT_EQ(stringPrefixes(a32Outsd, CpuMode::kProtected32).addrMask, 0xFFFFull);
  // 0x48 is DEC EAX outside 64-bit mode: the opcode, not a prefix.
  EXPECT_EQ(stringPrefixes(a32Outsd, CpuMode::kProtected32).opcode, 0x48);
  EXPECT_EQ(stringPrefixes(std::vector<uint8_t>{0x67, 0x6C}, CpuMode::kReal).addrMask,
            0xFFFFFFFFull);
  // MOVS is a string instruction, not a port one; IN is neither; prefixes
  // alone have no opcode.
  EXPECT_TRUE(stringPrefixes(std::vector<uint8_t>{0xF3, 0xA4}, CpuMode::kLong64).isString());
  EXPECT_FALSE(stringPrefixes(std::vector<uint8_t>{0xF3, 0xA4}, CpuMode::kLong64).isPortString());
  EXPECT_FALSE(stringPrefixes(std::vector<uint8_t>{0xEC}, CpuMode::kLong64).isString());
  p = stringPrefixes(std::vector<uint8_t>{0xF3, 0x66}, CpuMode::kLong64);
  EXPECT_EQ(p.length, 0u);
  EXPECT_FALSE(p.isString());
}

TEST(MayFollowShadowOpener, EveryInstructionThatOpensAShadowInTheEmulatorIsRecognised) {
  struct Case {
    std::vector<uint8_t> bytes;
    bool endsLikeAnOpener;  // its last bytes decode as STI, MOV SS or POP SS
  };
  const Case cases[] = {
      {{0xFB}, true},               // sti
      {{0x8E, 0xD0}, true},         // mov ss, ax
      {{0x8E, 0x17}, true},         // mov ss, [bx]
      {{0x8E, 0x56, 0x02}, true},   // mov ss, [bp+2]
      {{0x17}, true},               // pop ss
      {{0x90}, false},              // nop
      {{0xFA}, false},              // cli
      {{0x8E, 0xD8}, false},        // mov ds, ax
      {{0x1F}, false},              // pop ds
      {{0x50}, false},              // push ax
      {{0x05, 0x34, 0x12}, false},  // add ax, 0x1234
      {{0xB0, 0xFB}, true},         // mov al, 0xfb: ends in 0xFB
      {{0xB8, 0x8E, 0xD0}, true},   // mov ax, 0xd08e: ends like mov ss, ax
      {{0x9D}, false},              // popf (IF from the stack: no shadow)
  };
  int openers = 0;
  for (const Case& c : cases) {
    std::vector<uint8_t> ram(1 << 20);
    std::memcpy(&ram[0x1000], c.bytes.data(), c.bytes.size());
    ram[0x1000 + c.bytes.size()] = 0x90;
    PhysicalMemory pm;
    pm.ram = ram;
    NoDevices env;
    Cpu cpu(CpuModel::ttvmDefault(), pm, env);
    CpuState s = resetState();
    s.seg[1].selector = 0;
    s.seg[1].base = 0;
    s.rip = 0x1000;
    s.gpr[4] = 0x8000;
    s.gpr[3] = 0x4000;  // BX: [bx] reads zeros
    s.rflags &= ~flags::kIF;
    // POPF pops IF=1 (the flags image holds only IF and the fixed bit).
    ram[0x8000] = 0x02;
    ram[0x8001] = 0x02;
    cpu.setState(s);
    (void)cpu.step();
    ASSERT_EQ(cpu.state().rip, 0x1000 + c.bytes.size()) << "case " << int(c.bytes[0]);
    const bool opened = cpu.state().pending.shadow != InterruptShadow::kNone;
    const bool recognised = mayFollowShadowOpener(c.bytes, CpuMode::kReal);
    openers += opened;
    if (opened) {
      EXPECT_TRUE(recognised) << "opens a shadow: " << int(c.bytes[0]);
    }
    EXPECT_EQ(recognised, c.endsLikeAnOpener) << "case " << int(c.bytes[0]);
    // Bytes of earlier instructions before it change nothing.
    std::vector<uint8_t> longer = {0x90, 0x90, 0x31, 0xC0};
    longer.insert(longer.end(), c.bytes.begin(), c.bytes.end());
    EXPECT_EQ(mayFollowShadowOpener(longer, CpuMode::kReal), recognised)
        << "case " << int(c.bytes[0]);
  }
  EXPECT_EQ(openers, 5) << "STI and the four MOV SS / POP SS forms open a shadow";
  // Nothing readable before the boundary: nothing to step past.
  EXPECT_FALSE(mayFollowShadowOpener(std::vector<uint8_t>{}, CpuMode::kReal));
  // 64-bit code: MOV SS with a REX prefix; POP SS does not exist there.
  EXPECT_TRUE(mayFollowShadowOpener(std::vector<uint8_t>{0x41, 0x8E, 0xD0}, CpuMode::kLong64));
  EXPECT_FALSE(mayFollowShadowOpener(std::vector<uint8_t>{0x17}, CpuMode::kLong64));
}

}  // namespace
}  // namespace ttvm
