// Paging as the hardware does it: #PF error codes and CR2 for each
// permission case, accessed/dirty bits, TLB flush semantics (INVLPG, CR3,
// global pages, CR4), large pages, 32-bit and PAE paging, MMIO.
#include <gtest/gtest.h>

#include "cpu_harness.h"

namespace ttvm::cputest {
namespace {

constexpr uint64_t kP = 1, kW = 2, kU = 4, kA = 0x20, kD = 0x40, kG = 0x100;
constexpr uint64_t kNx = 1ull << 63;
constexpr uint64_t kLin = 0x40000000;  // mapped by map4k
constexpr uint64_t kFrame = 0x300000;  // physical frames used by the tests
constexpr uint64_t kHandler = layout::kCode + 0x8000;

struct PfCase {
  const char* name;
  uint64_t pte;
  bool user;
  const char* code;  // at layout::kCode, accesses [rbx] = kLin
  bool faults;
  uint32_t errorCode;
  uint64_t cr0Extra = 0, cr4Extra = 0, rflagsExtra = 0;
  bool superCodePage = false;  // make the code page supervisor-only (SMEP)
};

class PageFault : public ::testing::TestWithParam<PfCase> {};

TEST_P(PageFault, ErrorCodeAndCr2) {
  const PfCase& c = GetParam();
  Machine m;
  m.setupLong64(layout::kCode);
  m.setAllIdt64(kHandler);
  m.loadHex(kHandler, "f4");
  m.map4k(kLin, kFrame, c.pte);
  m.loadHex(layout::kCode, c.code);
  if (c.superCodePage) m.put(layout::kPd, 0x87 & ~kU, 8);
  m.edit([&](CpuState& s) {
    s.reg(Gpr::kRbx) = kLin + 0x10;
    s.cr0 |= c.cr0Extra;
    s.cr4 |= c.cr4Extra;
    s.rflags |= c.rflagsExtra;
  });
  if (c.user) m.enterUser64();
  const bool fetch = std::string(c.code) == "ff e3";
  StepResult r = m.step();
  if (fetch) {  // the JMP retires; the fault is on fetching its target
    ASSERT_EQ(r.outcome, StepOutcome::kRetired);
    r = m.step();
  }
  if (!c.faults) {
    EXPECT_EQ(r.outcome, StepOutcome::kRetired) << int(r.vector) << " err " << r.errorCode;
    return;
  }
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 14);
  EXPECT_EQ(r.errorCode, c.errorCode);
  EXPECT_EQ(m.state().cr2, kLin + 0x10);
  EXPECT_EQ(m.state().rip, kHandler);
  // The error code is on the handler's stack (ring 0 stack when from user).
  const uint64_t sp = m.state().reg(Gpr::kRsp);
  EXPECT_EQ(m.get(sp, 8), c.errorCode);
  EXPECT_EQ(m.get(sp + 8, 8), fetch ? kLin + 0x10 : layout::kCode);  // faulting RIP
  if (c.user) {
    EXPECT_EQ(sp, layout::kRsp0 - 6 * 8);
  }
}

// Instruction bytes: read "48 8b 03" (mov rax,[rbx]), write "48 89 03"
// (mov [rbx],rax), fetch "ff e3" (jmp rbx; the fault is on the target).
const PfCase kPfCases[] = {
    {"NotPresentRead", 0, false, "48 8b 03", true, 0},
    {"NotPresentWriteUser", 0, true, "48 89 03", true, 6},
    {"UserReadsSupervisor", kP | kW, true, "48 8b 03", true, 5},
    {"UserWritesReadOnly", kP | kU, true, "48 89 03", true, 7},
    {"SupervisorWritesReadOnlyWp", kP, false, "48 89 03", true, 3},
    {"UserReadOk", kP | kU, true, "48 8b 03", false, 0},
    {"NxFetch", kP | kW | kNx, false, "ff e3", true, 0x11},
    {"NotPresentFetch", 0, false, "ff e3", true, 0x10},
    {"ReservedBit", kP | kW | (1ull << 51), false, "48 8b 03", true, 9},
    {"SmepFetchUserPage", kP | kU, false, "ff e3", true, 0x11, 0, cr4::kSMEP, 0, true},
    {"SmapReadUserPage", kP | kU, false, "48 8b 03", true, 1, 0, cr4::kSMAP, 0, true},
    {"SmapReadUserPageWithAc", kP | kU, false, "48 8b 03", false, 0, 0, cr4::kSMAP, flags::kAC,
     true},
};

INSTANTIATE_TEST_SUITE_P(Cases, PageFault, ::testing::ValuesIn(kPfCases),
                         [](const auto& row) { return std::string(row.param.name); });

TEST(Paging, SupervisorWriteToReadOnlyWithoutWpSucceeds) {
  Machine m;
  m.setupLong64(layout::kCode);
  m.map4k(kLin, kFrame, kP);
  m.loadHex(layout::kCode, "48 89 03");  // mov [rbx], rax
  m.edit([](CpuState& s) {
    s.cr0 &= ~cr0::kWP;
    s.reg(Gpr::kRbx) = kLin;
    s.reg(Gpr::kRax) = 0x55;
  });
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.get(kFrame, 8), 0x55u);
}

TEST(Paging, AccessedAndDirtyBits) {
  Machine m;
  m.setupLong64(layout::kCode);
  m.map4k(kLin, kFrame, kP | kW);
  m.map4k(kLin + 0x1000, kFrame + 0x1000, kP | kW);
  // mov rax,[rbx]; mov [rbx+0x1000],rax
  m.loadHex(layout::kCode, "48 8b 03 48 89 83 00 10 00 00");
  m.edit([](CpuState& s) { s.reg(Gpr::kRbx) = kLin; });
  const uint64_t pte0 = 0x14000, pte1 = 0x14008, pd2 = 0x13000;
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.get(pte0, 8) & (kA | kD), kA);
  EXPECT_EQ(m.get(pd2, 8) & kA, kA);
  EXPECT_EQ(m.get(layout::kPdpt + 8, 8) & kA, kA);
  EXPECT_EQ(m.get(pte1, 8) & (kA | kD), 0u);
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.get(pte1, 8) & (kA | kD), kA | kD);
  EXPECT_EQ(m.get(pte0, 8) & kD, 0u);
}

TEST(Paging, DirtyBitSetOnFirstWriteAfterReadCachedTranslation) {
  Machine m;
  m.setupLong64(layout::kCode);
  m.map4k(kLin, kFrame, kP | kW);
  m.loadHex(layout::kCode, "48 8b 03 48 89 03");  // read then write the same page
  m.edit([](CpuState& s) { s.reg(Gpr::kRbx) = kLin; });
  m.run(2);
  EXPECT_EQ(m.get(0x14000, 8) & (kA | kD), kA | kD);
}

TEST(Paging, TlbKeepsStaleTranslationUntilInvlpg) {
  Machine m;
  m.setupLong64(layout::kCode);
  m.map4k(kLin, kFrame, kP | kW);
  m.put(kFrame, 0x1111, 8);
  m.put(kFrame + 0x1000, 0x2222, 8);
  // mov rax,[rbx]; mov rcx,[rbx]; invlpg [rbx]; mov rdx,[rbx]
  m.loadHex(layout::kCode, "48 8b 03 48 8b 0b 0f 01 3b 48 8b 13");
  m.edit([](CpuState& s) { s.reg(Gpr::kRbx) = kLin; });
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  m.map4k(kLin, kFrame + 0x1000, kP | kW);  // remap without telling the CPU
  m.run(3);
  EXPECT_EQ(m.state().reg(Gpr::kRax), 0x1111u);
  EXPECT_EQ(m.state().reg(Gpr::kRcx), 0x1111u);  // stale TLB entry
  EXPECT_EQ(m.state().reg(Gpr::kRdx), 0x2222u);  // after INVLPG
}

TEST(Paging, Cr3ReloadFlushesNonGlobalButNotGlobal) {
  for (const bool global : {false, true}) {
    SCOPED_TRACE(global ? "global page" : "non-global page");
    Machine m;
    m.setupLong64(layout::kCode);
    m.map4k(kLin, kFrame, kP | kW | (global ? kG : 0));
    m.put(kFrame, 0x1111, 8);
    m.put(kFrame + 0x1000, 0x2222, 8);
    // mov rax,[rbx]; mov rcx,cr3; mov cr3,rcx; mov rdx,[rbx]
    m.loadHex(layout::kCode, "48 8b 03 0f 20 d9 0f 22 d9 48 8b 13");
    m.edit([](CpuState& s) { s.reg(Gpr::kRbx) = kLin; });
    ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
    m.map4k(kLin, kFrame + 0x1000, kP | kW | (global ? kG : 0));
    m.run(3);
    EXPECT_EQ(m.state().reg(Gpr::kRdx), global ? 0x1111u : 0x2222u);
  }
}

TEST(Paging, Cr4PgeToggleFlushesGlobalPages) {
  Machine m;
  m.setupLong64(layout::kCode);
  m.map4k(kLin, kFrame, kP | kW | kG);
  m.put(kFrame, 0x1111, 8);
  m.put(kFrame + 0x1000, 0x2222, 8);
  // mov rax,[rbx]; mov rcx,cr4; btr rcx,7; mov cr4,rcx; mov rdx,[rbx]
  m.loadHex(layout::kCode, "48 8b 03 0f 20 e1 48 0f ba f1 07 0f 22 e1 48 8b 13");
  m.edit([](CpuState& s) { s.reg(Gpr::kRbx) = kLin; });
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  m.map4k(kLin, kFrame + 0x1000, kP | kW | kG);
  const StepResult r = m.run(4);
  if (r.outcome != StepOutcome::kRetired) GTEST_SKIP() << "BTR not implemented yet";
  EXPECT_EQ(m.state().reg(Gpr::kRdx), 0x2222u);
}

TEST(Paging, LargePages2M1G) {
  Machine m;
  m.setupLong64(layout::kCode);
  // PDPT[2] -> 1 GiB page at phys 0 (linear 2 GiB); PD[1] is a 2 MiB page already.
  m.put(layout::kPdpt + 16, 0x0 | 0x83, 8);
  m.put(0x1234, 0xABCD, 8);
  m.put(0x201234, 0xBEEF, 8);
  // mov rax,[rbx]; mov rcx,[rdx]
  m.loadHex(layout::kCode, "48 8b 03 48 8b 0a");
  m.edit([](CpuState& s) {
    s.reg(Gpr::kRbx) = 0x80001234;
    s.reg(Gpr::kRdx) = 0x201234;
  });
  m.run(2);
  EXPECT_EQ(m.state().reg(Gpr::kRax), 0xABCDu);
  EXPECT_EQ(m.state().reg(Gpr::kRcx), 0xBEEFu);
  EXPECT_EQ(m.cpu->translate(0x80001234), std::optional<uint64_t>(0x1234));
  EXPECT_EQ(m.cpu->translate(0xC0000000), std::nullopt);
}

// 32-bit paging: a 4 KiB page through a page table and a 4 MiB PSE page.
TEST(Paging, Legacy32BitWith4MPages) {
  Machine m;
  m.setupFlat32(layout::kCode);
  const uint64_t pd = 0x20000, pt = 0x21000;
  m.put(pd + 0, pt | 7, 4);  // 0-4 MiB via a page table
  for (uint64_t k = 0; k < 1024; ++k) m.put(pt + k * 4, (k << 12) | 7, 4);
  m.put(pt + 0x3FF * 4, kFrame | 7, 4);  // linear 0x3FF000 -> kFrame
  m.put(pd + 4, 0x400000 | 0x87, 4);     // 4-8 MiB: 4 MiB page, identity
  m.put(kFrame + 8, 0x12345678, 4);
  m.put(0x500010, 0x9ABCDEF0, 4);
  // mov eax,[ebx]; mov ecx,[edx]
  m.loadHex(layout::kCode, "8b 03 8b 0a");
  m.edit([&](CpuState& s) {
    s.cr3 = pd;
    s.cr4 |= cr4::kPSE;
    s.cr0 |= cr0::kPG;
    s.reg(Gpr::kRbx) = 0x3FF008;
    s.reg(Gpr::kRdx) = 0x500010;
  });
  m.run(2);
  EXPECT_EQ(m.state().reg(Gpr::kRax), 0x12345678u);
  EXPECT_EQ(m.state().reg(Gpr::kRcx), 0x9ABCDEF0u);
  EXPECT_EQ(m.get(pt + 0x3FF * 4, 4) & kA, kA);
}

TEST(Paging, PaeWithNx) {
  Machine m;
  m.setupFlat32(layout::kCode);
  m.setAllIdt64(0);  // unused (32-bit IDT below)
  for (uint8_t v = 0; v < 32; ++v) m.setIdt32(v, static_cast<uint32_t>(kHandler));
  m.loadHex(kHandler, "f4");
  const uint64_t pdpt = 0x20000, pd = 0x21000, pt = 0x22000;
  m.put(pdpt, pd | 1, 8);
  m.put(pd, 0x83, 8);              // 0-2 MiB identity, 2 MiB page
  m.put(pd + 8, pt | 3, 8);        // 2-4 MiB via page table
  m.put(pt, kFrame | 3 | kNx, 8);  // linear 0x200000 -> kFrame, NX
  m.put(kFrame, 0xC3, 1);
  m.loadHex(layout::kCode, "8b 03 ff e3");  // mov eax,[ebx]; jmp ebx
  m.edit([&](CpuState& s) {
    s.cr3 = pdpt;
    s.cr4 |= cr4::kPAE;
    s.msr.efer = efer::kNXE;
    s.cr0 |= cr0::kPG;
    s.reg(Gpr::kRbx) = 0x200000;
  });
  const StepResult r0 = m.step();
  ASSERT_EQ(r0.outcome, StepOutcome::kRetired) << int(r0.vector) << " " << r0.errorCode;
  EXPECT_EQ(m.state().reg(Gpr::kRax), 0xC3u);
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);  // the jmp itself
  const StepResult r = m.step();                       // fetch at the NX page
  EXPECT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 14);
  EXPECT_EQ(r.errorCode, 0x11u);
  EXPECT_EQ(m.state().cr2, 0x200000u);
}

// PAE paging switched on from 32-bit protected mode by MOV CR4/CR3/CR0,
// the way 32-bit PAE kernels do it; the stack keeps working afterwards.
TEST(Paging, EnablePaeFrom32BitProtectedMode) {
  Machine m;
  m.setupFlat32(layout::kCode);
  const uint64_t pdpt = 0x20000, pd = 0x21000;
  m.put(pdpt, pd | 1, 8);
  m.put(pdpt + 8, pd | 1, 8);
  for (uint64_t k = 0; k < 512; ++k) m.put(pd + k * 8, (k << 21) | 0x87, 8);
  m.loadHex(layout::kCode,
            "0f 20 e0 83 c8 20 0f 22 e0 b8 00 00 02 00 0f 22 d8 0f 20 c0 0d 00 00 01 80 0f 22 c0 "
            "83 ec 08 50 5b");
  const StepResult r = m.run(11);
  ASSERT_EQ(r.outcome, StepOutcome::kRetired) << int(r.vector) << " " << r.errorCode;
  EXPECT_EQ(m.state().reg(Gpr::kRbx), 0x80010011u);
  EXPECT_EQ(m.state().reg(Gpr::kRsp), layout::kStackTop - 8);
  EXPECT_EQ(m.get(pdpt, 8), pd | 1);  // PDPTEs have no accessed bit
  EXPECT_EQ(m.get(pd, 8) & kA, kA);
}

// Intel: MOV CR3 in PAE mode loads the PDPTEs and #GPs on reserved bits.
TEST(Paging, PaePdpteReservedBitsFaultAtMovCr3) {
  Machine m;
  m.setupFlat32(layout::kCode);
  for (uint8_t v = 0; v < 32; ++v) m.setIdt32(v, static_cast<uint32_t>(kHandler));
  m.loadHex(kHandler, "f4");
  const uint64_t pdpt = 0x20000, pdpt2 = 0x20020, pd = 0x21000;
  m.put(pdpt, pd | 1, 8);
  m.put(pd, 0x83, 8);
  m.put(pdpt2, pd | 1, 8);
  m.put(pdpt2 + 16, pd | 3, 8);          // R/W is reserved in a PAE PDPTE
  m.loadHex(layout::kCode, "0f 22 d8");  // mov cr3, eax
  m.edit([&](CpuState& s) {
    s.cr3 = pdpt;
    s.cr4 |= cr4::kPAE;
    s.cr0 |= cr0::kPG;
    s.reg(Gpr::kRax) = pdpt2;
  });
  const StepResult r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 13);
  EXPECT_EQ(r.errorCode, 0u);
  EXPECT_EQ(m.state().cr3, pdpt);
}

TEST(Paging, MmioOutsideRamAndInHoles) {
  Machine m(8u << 20, {{0x300000, 0x301000}});
  m.setupLong64(layout::kCode);
  m.env.mmioValues[0x300010] = 0xAB;
  m.env.mmioValues[0xFEE00030] = 0x50014;
  // mov eax,[rbx]; mov [rbx+4],eax; mov ecx,[rdx]
  m.loadHex(layout::kCode, "8b 03 89 43 04 8b 0a");
  m.put(layout::kPdpt + 24, 0xC0000000 | 0x83, 8);  // 3-4 GiB identity (1 GiB page)
  m.edit([](CpuState& s) {
    s.reg(Gpr::kRbx) = 0x300010;
    s.reg(Gpr::kRdx) = 0xFEE00030;
  });
  m.run(3);
  EXPECT_EQ(m.state().reg(Gpr::kRax), 0xABu);
  EXPECT_EQ(m.state().reg(Gpr::kRcx), 0x50014u);
  ASSERT_EQ(m.env.mmioLog.size(), 3u);
  EXPECT_EQ(m.env.mmioLog[1], (TestEnv::Access{true, 0x300014, 4, 0xAB}));
  EXPECT_EQ(m.get(0x300014, 4), 0u);  // the RAM behind the hole is untouched
}

// An MMIO hole smaller than a page: the rest of the page is RAM, the hole is
// not, even after the page's translation is cached.
TEST(Paging, SubPageMmioHoleIsNotCachedAsRam) {
  Machine m(8u << 20, {{0x300100, 0x300200}});
  m.setupLong64(layout::kCode);
  m.env.mmioValues[0x300150] = 0x77;
  m.put(0x300000, 0x11, 4);
  m.put(0x300150, 0x99, 4);                 // RAM bytes behind the hole
  m.loadHex(layout::kCode, "8b 03 8b 0a");  // mov eax,[rbx]; mov ecx,[rdx]
  m.edit([](CpuState& s) {
    s.reg(Gpr::kRbx) = 0x300000;
    s.reg(Gpr::kRdx) = 0x300150;
  });
  ASSERT_EQ(m.run(2).outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().reg(Gpr::kRax), 0x11u);
  EXPECT_EQ(m.state().reg(Gpr::kRcx), 0x77u);
  m.cpu->notifyRamWritten(0, ~0ull);  // any range is accepted
  m.cpu->notifyRamWritten(~0ull - 5, 100);
}

TEST(Paging, PageCrossingAccessChecksBothPagesBeforeWriting) {
  Machine m;
  m.setupLong64(layout::kCode);
  m.setAllIdt64(kHandler);
  m.loadHex(kHandler, "f4");
  m.map4k(kLin, kFrame, kP | kW);
  m.map4k(kLin + 0x1000, kFrame + 0x1000, kP);  // read-only
  m.loadHex(layout::kCode, "48 89 03");         // mov [rbx], rax
  m.edit([](CpuState& s) {
    s.reg(Gpr::kRbx) = kLin + 0xFFC;
    s.reg(Gpr::kRax) = ~0ull;
  });
  const StepResult r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(r.errorCode, 3u);
  EXPECT_EQ(m.state().cr2, kLin + 0x1000);
  EXPECT_EQ(m.get(kFrame + 0xFFC, 4), 0u);  // first half not written
}

}  // namespace
}  // namespace ttvm::cputest
