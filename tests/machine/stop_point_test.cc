// Stop points (machine/stop_point.h): the dirty-log runs and the
// fingerprint a KVM trace locates a between-exit injection by.
#include "ttvm/machine/stop_point.h"

#include <gtest/gtest.h>

#include <vector>

namespace ttvm::machine {
namespace {

TEST(StopPoint, DirtyBitmapBecomesRunsOfPages) {
  // Slot at page 0x100: pages 0x100-0x102, 0x13F-0x141 (across a word),
  // 0x17F; a second slot at page 0x200 continuing nothing.
  std::vector<uint64_t> bitmap = {0x7ull | (1ull << 63), 0x3ull | (1ull << 63)};
  std::vector<PageRun> runs;
  appendDirtyRuns(bitmap, 0x100, runs);
  EXPECT_EQ(runs, (std::vector<PageRun>{{0x100, 3}, {0x13F, 3}, {0x17F, 1}}));
  // A slot that starts where the last run ends continues it.
  std::vector<uint64_t> next = {0x1};
  appendDirtyRuns(next, 0x180, runs);
  EXPECT_EQ(runs.back(), (PageRun{0x17F, 2}));
  appendDirtyRuns(std::vector<uint64_t>{0, 0}, 0x400, runs);
  EXPECT_EQ(runs.size(), 3u);
}

TEST(StopPoint, FingerprintCoversRegistersAndListedPagesOnly) {
  std::vector<uint8_t> ram(16 * kPageSize, 0);
  CpuState s;
  s.rip = 0x1000;
  s.gpr[0] = 7;
  const std::vector<PageRun> runs = {{2, 2}};
  const uint64_t f = stopFingerprint(s, ram, runs);
  // The step count is not part of it.
  CpuState later = s;
  later.steps = 12345;
  EXPECT_EQ(stopFingerprint(later, ram, runs), f);
  // Every register is.
  CpuState other = s;
  other.cr3 = 0x5000;
  EXPECT_NE(stopFingerprint(other, ram, runs), f);
  other = s;
  other.fpu.xmm[3].q[1] = 1;
  EXPECT_NE(stopFingerprint(other, ram, runs), f);
  // A byte of a listed page is (the last byte of page 3).
  ram[4 * kPageSize - 1] = 1;
  EXPECT_NE(stopFingerprint(s, ram, runs), f);
  ram[4 * kPageSize - 1] = 0;
  // A page not listed is not.
  ram[9 * kPageSize] = 1;
  EXPECT_EQ(stopFingerprint(s, ram, runs), f);
  // The same contents under other page numbers differ.
  EXPECT_NE(stopFingerprint(s, ram, std::vector<PageRun>{{4, 2}}), f);
  // An STI shadow counts as a MOV SS one (SVM reports one bit), but a
  // shadow is not no shadow.
  CpuState sti = s, movSs = s;
  sti.pending.shadow = InterruptShadow::kSti;
  movSs.pending.shadow = InterruptShadow::kMovSs;
  EXPECT_EQ(stopFingerprint(sti, ram, runs), stopFingerprint(movSs, ram, runs));
  EXPECT_NE(stopFingerprint(sti, ram, runs), f);
}

TEST(StopPoint, EventsListTheRunsThenThePoint) {
  std::vector<uint8_t> ram(8 * kPageSize, 0);
  CpuState s;
  s.rip = 0x100090;
  s.gpr[1] = 3;
  const std::vector<PageRun> runs = {{1, 1}, {5, 2}};
  const std::vector<TraceEvent> ev = stopPointEvents(42, s, ram, runs);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0], TraceEvent::dirtyPages(42, 1, 1));
  EXPECT_EQ(ev[1], TraceEvent::dirtyPages(42, 5, 2));
  EXPECT_EQ(ev[2],
            TraceEvent::stopPoint(42, 0x100090, stopFingerprint(s, ram, runs), stopQuickKey(s)));
  // The quick key follows the general registers.
  CpuState t = s;
  t.gpr[1] = 4;
  EXPECT_NE(stopQuickKey(t), stopQuickKey(s));
}

TEST(StopPoint, DescriptionNamesTheRegistersOutsideTheQuickKey) {
  std::vector<uint8_t> ram(4 * kPageSize, 0);
  const std::vector<PageRun> runs = {{2, 1}};
  CpuState s;
  s.cr4 = 0x20;
  s.msr.efer = 0x500;
  const std::string a = describeStopState(s, ram, runs);
  EXPECT_NE(a.find(" cr4=20 "), std::string::npos) << a;
  EXPECT_NE(a.find(" efer=500 "), std::string::npos) << a;
  EXPECT_NE(a.find(" pages 2:"), std::string::npos) << a;
  // A difference the quick key cannot see shows by name, the rest equal.
  CpuState t = s;
  t.segment(SegReg::kCs).attributes ^= 1;  // the accessed bit
  ASSERT_EQ(stopQuickKey(t), stopQuickKey(s));
  const std::string b = describeStopState(t, ram, runs);
  EXPECT_NE(a, b);
  // Only the CS field differs: the same text before and after it.
  const size_t cs = a.find(" cs=");
  ASSERT_NE(cs, std::string::npos) << a;
  const size_t end = a.find(' ', cs + 1);
  ASSERT_EQ(b.substr(0, cs), a.substr(0, cs).replace(5, 16, b.substr(5, 16)));
  EXPECT_EQ(a.substr(cs, end - cs), " cs=0:0:ffff:93");
  EXPECT_EQ(b.substr(cs, end - cs), " cs=0:0:ffff:92");
  EXPECT_EQ(a.substr(end), b.substr(end));
}

// The access bytes of the GDT's and the LDT's descriptor slots, through
// the translation, in protected mode only.
TEST(StopPoint, DescriptorAccessBytesOfTheGdtAndLdt) {
  CpuState s;
  s.cr0 = cr0::kPE;
  s.gdtr = {0x2000, 0x17};  // three descriptors
  auto identity = [](uint64_t l) -> std::optional<uint64_t> { return l; };
  EXPECT_EQ(descriptorAccessBytes(s, identity), (std::vector<uint64_t>{0x2005, 0x200D, 0x2015}));
  // The LDT (selector 0x18) at linear 0x7FF8, across a page the translation
  // moves to 0x9000, and a page it cannot translate.
  s.ldtr = {0x18, 0x7FF8, 0x17, 0x82};
  auto moved = [](uint64_t l) -> std::optional<uint64_t> {
    if (l >= 0x8000 && l < 0x9000) return l + 0x1000;
    if (l >= 0x2000 && l < 0x3000) return std::nullopt;
    return l;
  };
  EXPECT_EQ(descriptorAccessBytes(s, moved), (std::vector<uint64_t>{0x7FFD, 0x9005, 0x900D}));
  s.cr0 = 0;
  EXPECT_TRUE(descriptorAccessBytes(s, identity).empty()) << "real mode has no descriptors";
}

// A code or data descriptor's accessed bit at an access byte hashes as
// clear; nothing else does (a system descriptor's type bit 0, another bit,
// the same bit elsewhere).
TEST(StopPoint, FingerprintHashesDescriptorAccessedBitsAsClear) {
  std::vector<uint8_t> ram(4 * kPageSize, 0);
  CpuState s;
  s.cr0 = cr0::kPE;
  const std::vector<PageRun> runs = {{2, 1}};
  const uint64_t gdt = 2 * kPageSize;
  ram[gdt + 8 + 5] = 0x9A;   // code, A clear (as QEMU's TCG leaves it)
  ram[gdt + 16 + 5] = 0x89;  // 32-bit TSS (S clear): type bit 0 is not A
  const std::vector<uint64_t> access = {gdt + 5, gdt + 13, gdt + 21};
  const uint64_t clear = stopFingerprint(s, ram, runs, access);
  ram[gdt + 8 + 5] = 0x9B;  // as the emulator and the SDM leave it
  EXPECT_EQ(stopFingerprint(s, ram, runs, access), clear);
  EXPECT_NE(stopFingerprint(s, ram, runs), stopFingerprint(s, ram, runs, access))
      << "without the access bytes the bit counts";
  ram[gdt + 16 + 5] = 0x88;
  EXPECT_NE(stopFingerprint(s, ram, runs, access), clear) << "a system descriptor's type";
  ram[gdt + 16 + 5] = 0x89;
  ram[gdt + 8 + 5] = 0x9F;  // a conforming code segment: another bit
  EXPECT_NE(stopFingerprint(s, ram, runs, access), clear);
  ram[gdt + 8 + 5] = 0x9B;
  ram[gdt + 24 + 5] = 0x01;  // bit 0 of a byte no descriptor slot holds
  EXPECT_NE(stopFingerprint(s, ram, runs, access), clear);
}

}  // namespace
}  // namespace ttvm::machine
