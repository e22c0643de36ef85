// Self-modifying and freshly loaded code, debugger breakpoints/watchpoints,
// dirty-page tracking, stop requests, the unimplemented-instruction log,
// KVM's forced-emulation prefix, CPUID/TSC/MSR through the model and the
// environment, port I/O permission checks, and segmentation checks.
#include <gtest/gtest.h>

#include "cpu_harness.h"

namespace ttvm::cputest {
namespace {

constexpr uint64_t kCode = layout::kCode;
constexpr uint64_t kData = layout::kData;
constexpr uint64_t kHandler = layout::kCode + 0x8000;

void longWithHandlers(Machine& m) {
  m.setupLong64(kCode);
  m.setAllIdt64(kHandler);
  m.loadHex(kHandler, "f4");
}

// SDM vol. 3A 3.4.5.1: loading a code or data segment register sets the
// descriptor's accessed bit in the GDT if it is clear (the nested VM's CPU,
// QEMU's TCG, leaves it clear on a far JMP, so KVM stop points hash it as
// clear: machine/stop_point.h). MOV DS and a far JMP, each through a
// descriptor whose bit is clear.
TEST(SegmentLoads, SetTheDescriptorAccessedBit) {
  Machine m;
  m.setupFlat32(layout::kCode);
  m.put(layout::kGdt + layout::kData16, descriptor(0, 0xFFFFF, 0x92, 0xC), 8);
  m.put(layout::kGdt + layout::kCode32, descriptor(0, 0xFFFFF, 0x9A, 0xC), 8);
  // mov ax, 0x50; mov ds, ax; jmp far 0x40:kCode+0x20; ...; nop
  m.loadHex(layout::kCode, "66 b8 50 00 8e d8 ea 20 00 10 00 40 00");
  m.loadHex(layout::kCode + 0x20, "90");
  m.run(3);
  EXPECT_EQ(m.state().rip, layout::kCode + 0x20);
  EXPECT_EQ(m.get(layout::kGdt + layout::kData16 + 5, 1), 0x93u);
  EXPECT_EQ(m.get(layout::kGdt + layout::kCode32 + 5, 1), 0x9Bu);
  // A bit already set is not written again (no other byte changes).
  EXPECT_EQ(m.get(layout::kGdt + layout::kData16, 8), descriptor(0, 0xFFFFF, 0x93, 0xC));
}

TEST(SelfModifyingCode, GuestWriteToDecodedInstructionIsSeen) {
  Machine m;
  m.setupLong64(kCode);
  // 0: mov al,0x11 ; 2: mov byte [rip-8],0x42 (patches the immediate at 1) ; 9: jmp 0
  m.loadHex(kCode, "b0 11 c6 05 f8 ff ff ff 42 eb f5");
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().reg(Gpr::kRax) & 0xFF, 0x11u);
  ASSERT_EQ(m.run(3).outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().rip, kCode + 2);
  EXPECT_EQ(m.state().reg(Gpr::kRax) & 0xFF, 0x42u);
}

TEST(SelfModifyingCode, RepStosOverwritesCodeAhead) {
  Machine m;
  m.setupLong64(kCode);
  // rep stosb over the following 2 bytes (the original "mov al,0x11" becomes 2 NOPs... of 0x90)
  m.loadHex(kCode, "f3 aa b0 11 90");
  m.edit([](CpuState& s) {
    s.reg(Gpr::kRdi) = kCode + 2;
    s.reg(Gpr::kRcx) = 2;
    s.reg(Gpr::kRax) = 0x90;
  });
  ASSERT_EQ(m.run(5).outcome, StepOutcome::kRetired);  // 2 iterations, 3 NOPs
  EXPECT_EQ(m.state().rip, kCode + 5);
  EXPECT_EQ(m.state().reg(Gpr::kRax), 0x90u);
}

TEST(SelfModifyingCode, CodeWrittenThroughAnotherMappingIsSeen) {
  Machine m;
  m.setupLong64(kCode);
  m.map4k(0x40000000, kCode & ~0xFFFull, 7);  // alias of the code page
  // 0: mov al,0x11 ; 2: mov byte [rbx+1],0x33 ; 6: jmp 0
  m.loadHex(kCode, "b0 11 c6 43 01 33 eb f8");
  m.edit([](CpuState& s) { s.reg(Gpr::kRbx) = 0x40000000 + (kCode & 0xFFF); });
  ASSERT_EQ(m.run(4).outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().reg(Gpr::kRax) & 0xFF, 0x33u);
}

TEST(SelfModifyingCode, MachineLoadsFreshCodeWithNotifyRamWritten) {
  Machine m;
  m.setupLong64(kCode);
  m.loadHex(kCode, "b0 11");
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  m.ram[kCode + 1] = 0x77;                // behind the CPU's back...
  m.cpu->notifyRamWritten(kCode + 1, 1);  // ...and told
  m.edit([](CpuState& s) { s.rip = kCode; });
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().reg(Gpr::kRax) & 0xFF, 0x77u);
}

TEST(SelfModifyingCode, SameBytesDecodedPerMode) {
  // 48 89 d8 is "mov rax, rbx" in 64-bit mode and "dec eax; mov eax, ebx" in 32-bit mode.
  Machine m;
  m.setupLong64(kCode);
  m.loadHex(kCode, "48 89 d8");
  m.edit([](CpuState& s) {
    s.reg(Gpr::kRbx) = 0x100000005ull;
    s.reg(Gpr::kRax) = 0;
  });
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().reg(Gpr::kRax), 0x100000005ull);
  m.setupFlat32(kCode);
  m.edit([](CpuState& s) {
    s.reg(Gpr::kRbx) = 5;
    s.reg(Gpr::kRax) = 10;
  });
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().reg(Gpr::kRax), 9u);
  EXPECT_EQ(m.state().rip, kCode + 1);
}

TEST(Debugger, BreakpointStopsBeforeExecutingAndSkipOnceResumes) {
  Machine m;
  m.setupLong64(kCode);
  m.loadHex(kCode, "90 90 b0 05 90");
  m.cpu->setBreakpoints({DebuggerBreakpoint{kCode + 2, false}});
  StepResult r = m.run(100);
  ASSERT_EQ(r.outcome, StepOutcome::kBreakpoint);
  EXPECT_EQ(m.state().rip, kCode + 2);
  EXPECT_EQ(m.state().steps, 2u);
  EXPECT_EQ(m.step().outcome, StepOutcome::kBreakpoint);  // still there
  EXPECT_EQ(m.state().steps, 2u);
  m.cpu->skipBreakpointOnce();
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().reg(Gpr::kRax) & 0xFF, 5u);
  // Physical breakpoint through an alias mapping.
  m.cpu->setBreakpoints({DebuggerBreakpoint{kCode + 4, true}});
  EXPECT_EQ(m.step().outcome, StepOutcome::kBreakpoint);
}

TEST(Debugger, RunStopsAtLinearBreakpointsInALoopWithTheSameStepCounts) {
  // 0: inc eax; 2: jmp 0 — a breakpoint at 2 stops every iteration.
  Machine m;
  m.setupLong64(kCode);
  m.loadHex(kCode, "ff c0 eb fc");
  m.cpu->setBreakpoints({DebuggerBreakpoint{kCode + 2, false}, DebuggerBreakpoint{0x999, false}});
  for (int k = 1; k <= 3; ++k) {
    const StepResult r = m.run(1000);
    ASSERT_EQ(r.outcome, StepOutcome::kBreakpoint);
    EXPECT_EQ(m.state().rip, kCode + 2);
    EXPECT_EQ(m.state().reg(Gpr::kRax), static_cast<uint64_t>(k));
    EXPECT_EQ(m.state().steps, static_cast<uint64_t>(2 * k - 1));
    m.cpu->skipBreakpointOnce();
  }
  m.cpu->setBreakpoints({});
  EXPECT_EQ(m.run(10).outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().steps, 15u);
}

TEST(Debugger, WatchpointsReportTheAccessAfterTheStep) {
  Machine m;
  m.setupLong64(kCode);
  m.loadHex(kCode, "8b 03 89 03 90");  // mov eax,[rbx]; mov [rbx],eax; nop
  m.edit([](CpuState& s) { s.reg(Gpr::kRbx) = kData + 2; });
  m.cpu->setWatchpoints({DebuggerWatchpoint{kData, 4, WatchKind::kWrite, false}});
  StepResult r = m.run(10);
  ASSERT_EQ(r.outcome, StepOutcome::kWatchpoint);
  EXPECT_EQ(r.watch.watchId, 0);
  EXPECT_TRUE(r.watch.write);
  EXPECT_EQ(r.watch.address, kData + 2);
  EXPECT_EQ(m.state().rip, kCode + 4);  // the write retired
  EXPECT_EQ(m.state().steps, 2u);
  Machine m2;
  m2.setupLong64(kCode);
  m2.loadHex(kCode, "8b 03 89 03");
  m2.edit([](CpuState& s) { s.reg(Gpr::kRbx) = kData; });
  m2.cpu->setWatchpoints({DebuggerWatchpoint{kData + 3, 1, WatchKind::kRead, true}});
  r = m2.step();
  ASSERT_EQ(r.outcome, StepOutcome::kWatchpoint);
  EXPECT_FALSE(r.watch.write);
  EXPECT_EQ(m2.step().outcome, StepOutcome::kRetired);  // a write does not hit a read watch
}

TEST(Debugger, DirtyPageTracking) {
  Machine m;
  m.setupLong64(kCode);
  m.loadHex(kCode, "89 03 89 43 08 89 83 00 10 00 00 89 03");
  m.edit([](CpuState& s) { s.reg(Gpr::kRbx) = kData; });
  m.cpu->setDirtyTracking(true);
  ASSERT_EQ(m.run(3).outcome, StepOutcome::kRetired);
  // The page walker's accessed-bit writes to PML4/PDPT/PD are CPU writes too.
  EXPECT_EQ(m.cpu->takeDirtyPages(),
            (std::vector<uint64_t>{layout::kPml4 >> 12, layout::kPdpt >> 12, layout::kPd >> 12,
                                   kData >> 12, (kData >> 12) + 1}));
  EXPECT_TRUE(m.cpu->takeDirtyPages().empty());
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);  // a write to an already-cached page
  EXPECT_EQ(m.cpu->takeDirtyPages(), (std::vector<uint64_t>{kData >> 12}));
}

// What `ttvm slice` keeps of RAM: every page the CPU reads, writes or
// fetches from, page walks included; a page it skips over is not marked.
TEST(Debugger, AccessTrackingMarksEveryPageTheCpuReadsWritesOrFetches) {
  Machine m;
  m.setupLong64(kCode);
  // mov eax,[rbx]; mov [rbx+0x2000],eax; mov eax,[rbx+4]
  m.loadHex(kCode, "8b 03 89 83 00 20 00 00 8b 43 04");
  m.edit([](CpuState& s) { s.reg(Gpr::kRbx) = kData; });
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);  // warm the TLB and the decode cache
  m.cpu->setAccessTracking(true);
  ASSERT_EQ(m.run(2).outcome, StepOutcome::kRetired);
  // The code page and kData were cached before tracking began: turning it
  // on dropped both caches, so they are seen again (with the page walk).
  EXPECT_EQ(m.cpu->takeAccessedPages(),
            (std::vector<uint64_t>{layout::kPml4 >> 12, layout::kPdpt >> 12, layout::kPd >> 12,
                                   kCode >> 12, kData >> 12, (kData >> 12) + 2}));
  EXPECT_TRUE(m.cpu->takeAccessedPages().empty());
  m.cpu->setAccessTracking(false);
  m.edit([](CpuState& s) { s.rip = kCode; });
  ASSERT_EQ(m.run(3).outcome, StepOutcome::kRetired);
  EXPECT_TRUE(m.cpu->takeAccessedPages().empty());  // off: nothing marked
}

TEST(Debugger, TranslateAndReadLinearHaveNoSideEffects) {
  Machine m;
  m.setupLong64(kCode);
  m.map4k(0x40000000, 0x300000, 7);
  m.put(0x300010, 0xAABBCCDD, 4);
  EXPECT_EQ(m.cpu->translate(0x40000010), std::optional<uint64_t>(0x300010));
  uint8_t buf[4];
  ASSERT_TRUE(m.cpu->readLinear(0x40000010, buf));
  EXPECT_EQ(buf[0], 0xDD);
  EXPECT_EQ(m.get(0x14000, 8) & 0x20, 0u);  // no accessed bit
  EXPECT_FALSE(m.cpu->readLinear(0x40001000, buf));
}

TEST(Environment, StopRequestedEndsRunAfterTheStep) {
  Machine m;
  m.setupLong64(kCode);
  m.loadHex(kCode, "90 90 90");
  m.env.stop = true;
  const StepResult r = m.run(100);
  EXPECT_EQ(r.outcome, StepOutcome::kStopRequested);
  EXPECT_EQ(m.state().steps, 1u);
}

TEST(Environment, UnimplementedInstructionRaisesUdAndIsLoggedOnce) {
  Machine m;
  longWithHandlers(m);
  m.loadHex(kCode, "c5 f8 77");  // vzeroupper (AVX: not advertised)
  for (int k = 0; k < 2; ++k) {
    m.edit([](CpuState& s) { s.rip = kCode; });
    const StepResult r = m.step();
    ASSERT_EQ(r.outcome, StepOutcome::kException);
    EXPECT_EQ(int(r.vector), 6);
  }
  ASSERT_EQ(m.cpu->unimplementedLog().size(), 1u);
  EXPECT_NE(m.cpu->unimplementedLog()[0].find("c5 f8 77"), std::string::npos);
}

TEST(Environment, InstructionLongerThan15BytesIsGp) {
  Machine m;
  longWithHandlers(m);
  m.loadHex(kCode, "66 66 66 66 66 66 66 66 66 66 66 66 66 66 66 90");  // 15 prefixes + NOP
  const StepResult r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 13);
}

TEST(Environment, KvmForcedEmulationPrefixIsSkipped) {
  Machine m;
  m.setupLong64(kCode);
  m.loadHex(kCode, "0f 0b 6b 76 6d b0 05 90");
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().reg(Gpr::kRax) & 0xFF, 5u);
  EXPECT_EQ(m.state().rip, kCode + 7);
  EXPECT_EQ(m.state().steps, 1u);
}

// KVM advances RIP past the prefix before it emulates: a fault in the
// prefixed instruction is reported at the instruction, not at the ud2.
TEST(Environment, KvmForcedEmulationPrefixFaultReportsTheInstruction) {
  for (const bool viaRun : {false, true}) {
    SCOPED_TRACE(viaRun ? "run()" : "step()");
    Machine m;
    longWithHandlers(m);
    m.loadHex(kCode, "0f 0b 6b 76 6d 0f 0b");  // prefixed ud2: #UD
    const StepResult r = viaRun ? m.run(1) : m.step();
    ASSERT_EQ(r.outcome, StepOutcome::kException);
    EXPECT_EQ(int(r.vector), 6);
    EXPECT_EQ(m.get(m.state().reg(Gpr::kRsp), 8), kCode + 5);
    EXPECT_EQ(m.state().steps, 1u);
  }
}

// The decode cache links the jmp to the instruction after the prefix; that
// link must not be taken from the prefix's address, or the second pass starts
// inside the prefix.
TEST(Environment, KvmForcedEmulationPrefixRunsAgainFromTheDecodeCache) {
  for (const bool viaRun : {false, true}) {
    SCOPED_TRACE(viaRun ? "run()" : "step()");
    Machine m;
    longWithHandlers(m);
    m.loadHex(kCode, "0f 0b 6b 76 6d ff c0 eb f7");  // 0: prefixed inc eax; 7: jmp 0
    for (int k = 0; k < 8; ++k) {
      const StepResult r = viaRun ? m.run(2) : m.step();
      ASSERT_EQ(r.outcome, StepOutcome::kRetired) << "step " << m.state().steps;
      if (!viaRun) {
        ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
      }
      ASSERT_EQ(m.state().rip, kCode) << "pass " << k;
    }
    EXPECT_EQ(m.state().reg(Gpr::kRax), 8u);
    EXPECT_EQ(m.state().steps, 16u);
  }
}

TEST(Environment, CpuidFromTheModel) {
  Machine m;
  m.setupLong64(kCode);
  m.loadHex(kCode, "0f a2 0f a2 0f a2");
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().reg(Gpr::kRbx), 0x756E6547u);  // "Genu"
  EXPECT_EQ(m.state().reg(Gpr::kRdx), 0x49656E69u);  // "ineI"
  EXPECT_EQ(m.state().reg(Gpr::kRcx), 0x6C65746Eu);  // "ntel"
  m.edit([](CpuState& s) { s.reg(Gpr::kRax) = 0x80000001; });
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_TRUE(m.state().reg(Gpr::kRdx) & (1u << 29));      // LM
  EXPECT_TRUE(m.state().reg(Gpr::kRdx) & (1u << 20));      // NX
  m.edit([](CpuState& s) { s.reg(Gpr::kRax) = 0x1234; });  // above the maximum basic leaf
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  const CpuidLeaf top = m.cpu->model().lookup(7, 0);
  EXPECT_EQ(m.state().reg(Gpr::kRbx), top.ebx);
}

TEST(Environment, TscAndMsrs) {
  Machine m;
  longWithHandlers(m);
  m.env.tsc = 0x123456789ull;
  m.env.msrs[0x830] = 0;  // an x2APIC register the machine owns
  // rdtsc; mov ecx,0x10; wrmsr (TSC := 0); rdtsc; mov ecx,0x830; wrmsr; mov ecx,0x999; rdmsr
  m.loadHex(kCode,
            "0f 31 b9 10 00 00 00 31 c0 31 d2 0f 30 0f 31 b9 30 08 00 00 b8 05 00 00 00 0f 30 "
            "b9 99 09 00 00 0f 32");
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().reg(Gpr::kRax), 0x23456789u);
  EXPECT_EQ(m.state().reg(Gpr::kRdx), 0x1u);
  ASSERT_EQ(m.run(5).outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().reg(Gpr::kRax), 0u);  // TSC written to 0 through IA32_TSC_ADJUST
  EXPECT_EQ(m.state().msr.tscAdjust, 0ull - 0x123456789ull);
  ASSERT_EQ(m.run(3).outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.env.msrs[0x830], 5u);
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  const StepResult r = m.step();  // unknown MSR
  EXPECT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 13);
}

// The local APIC's TPR is CR8 (TPR[7:4]): a TPR written through the xAPIC
// page or the x2APIC MSR is what MOV from CR8 reads next; other registers,
// a disabled APIC, x2APIC mode for the page, and a refused MSR write are not.
TEST(Environment, ApicTprWritesAreSeenInCr8) {
  constexpr uint64_t kApic = 0x700000;  // the APIC page, moved below the test's 8 MiB
  Machine m(8u << 20, {{kApic, kApic + 0x1000}});
  longWithHandlers(m);
  m.edit([](CpuState& s) { s.msr.apicBase = kApic | 0x900; });  // BSP, enabled, xAPIC
  // mov dword [kApic+0x80],0x55 ; mov rax,cr8
  // mov dword [kApic+0x90],0x77 ; mov rbx,cr8       (APR: not the TPR)
  // mov ecx,0x808 ; mov eax,0x35 ; xor edx,edx ; wrmsr ; mov rsi,cr8
  m.loadHex(kCode,
            "c7 04 25 80 00 70 00 55 00 00 00 44 0f 20 c0 "
            "c7 04 25 90 00 70 00 77 00 00 00 44 0f 20 c3 "
            "b9 08 08 00 00 b8 35 00 00 00 31 d2 0f 30 44 0f 20 c6");
  ASSERT_EQ(m.run(2).outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().reg(Gpr::kRax), 5u);
  ASSERT_EQ(m.env.mmioLog.size(), 1u);  // the device still gets the write
  EXPECT_EQ(m.env.mmioLog[0].addr, kApic + 0x80);
  ASSERT_EQ(m.run(2).outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().reg(Gpr::kRbx), 5u);
  // x2APIC mode: the TPR MSR, once the environment takes it, is CR8 too.
  m.edit([](CpuState& s) { s.msr.apicBase = kApic | 0xD00; });  // x2APIC
  m.env.msrs[0x808] = 0;
  ASSERT_EQ(m.run(5).outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().reg(Gpr::kRsi), 3u);
  EXPECT_EQ(m.env.msrs[0x808], 0x35u);

  // x2APIC mode: the page is not the APIC's; disabled: neither.
  for (uint64_t base : {kApic | 0xD00, kApic | 0x100}) {
    Machine d(8u << 20, {{kApic, kApic + 0x1000}});
    longWithHandlers(d);
    d.edit([&](CpuState& s) {
      s.msr.apicBase = base;
      s.cr8 = 2;
    });
    d.loadHex(kCode, "c7 04 25 80 00 70 00 55 00 00 00 44 0f 20 c0");
    ASSERT_EQ(d.run(2).outcome, StepOutcome::kRetired);
    EXPECT_EQ(d.state().reg(Gpr::kRax), 2u) << std::hex << base;
  }
}

TEST(Environment, PortIoAndIoPermissionBitmap) {
  Machine m;
  longWithHandlers(m);
  m.env.portValues[0x80] = 0x5A;
  m.loadHex(kCode, "e4 80 e6 80 e4 80");  // in al,0x80; out 0x80,al; in al,0x80
  m.enterUser64();                        // CPL 3 > IOPL 0: the TSS bitmap decides
  ASSERT_EQ(m.run(2).outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().reg(Gpr::kRax) & 0xFF, 0x5Au);
  ASSERT_EQ(m.env.portLog.size(), 2u);
  EXPECT_EQ(m.env.portLog[1], (TestEnv::Access{true, 0x80, 1, 0x5A}));
  m.put(layout::kTss + 0x68 + 0x80 / 8, 1, 1);  // deny port 0x80
  const StepResult r = m.step();
  EXPECT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 13);
  EXPECT_EQ(m.env.portLog.size(), 2u);  // no access reached the device
}

TEST(Environment, RepInsAndOutsOneIterationPerStep) {
  Machine m;
  m.setupLong64(kCode);
  m.env.portValues[0x3F8] = 0x41;
  m.loadHex(kCode, "f3 6c f3 6e");  // rep insb; rep outsb
  m.edit([](CpuState& s) {
    s.reg(Gpr::kRdx) = 0x3F8;
    s.reg(Gpr::kRcx) = 3;
    s.reg(Gpr::kRdi) = kData;
  });
  ASSERT_EQ(m.run(3).outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.get(kData, 4), 0x414141u);
  EXPECT_EQ(m.env.portLog.size(), 3u);
  m.edit([](CpuState& s) {
    s.reg(Gpr::kRcx) = 3;
    s.reg(Gpr::kRsi) = kData;
  });
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.env.portLog.size(), 4u);
  EXPECT_EQ(m.state().rip, kCode + 2);
  ASSERT_EQ(m.run(2).outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.env.portLog.size(), 6u);
  EXPECT_EQ(m.state().rip, kCode + 4);
}

TEST(Environment, AlignmentCheckAtCpl3) {
  Machine m;
  longWithHandlers(m);
  m.loadHex(kCode, "8b 03 8b 03");  // mov eax,[rbx] twice
  m.enterUser64();
  m.edit([](CpuState& s) {
    s.cr0 |= cr0::kAM;
    s.reg(Gpr::kRbx) = kData + 4;
  });
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);  // AC=0: no check
  m.edit([](CpuState& s) {
    s.rflags |= flags::kAC;
    s.reg(Gpr::kRbx) = kData + 2;
  });
  const StepResult r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 17);
  EXPECT_EQ(r.errorCode, 0u);
}

// -------------------------------------------------------------- segmentation

void flat32WithHandlers(Machine& m) {
  m.setupFlat32(kCode);
  for (uint8_t v = 0; v < 32; ++v) m.setIdt32(v, static_cast<uint32_t>(kHandler));
  m.loadHex(kHandler, "f4");
}

// Installs descriptor `raw` at GDT slot `sel` (>= 0x58) and grows the GDT limit.
void addDescriptor(Machine& m, uint16_t sel, uint64_t raw) {
  m.put(layout::kGdt + sel, raw, 8);
  m.edit([&](CpuState& s) { s.gdtr.limit = std::max<uint16_t>(s.gdtr.limit, sel + 7); });
}

struct SegFault {
  uint8_t vector;
  uint32_t error;
};

SegFault runFault(Machine& m) {
  const StepResult r = m.step();
  EXPECT_EQ(r.outcome, StepOutcome::kException);
  return SegFault{r.vector, r.errorCode};
}

TEST(Segmentation, LimitChecksOnDataAndStack) {
  Machine m;
  flat32WithHandlers(m);
  addDescriptor(m, 0x58, descriptor(0x200000, 0xFFF, 0x93, 0x4));  // 4 KiB data, byte granular
  m.loadHex(kCode, "8e d9 8b 03 8b 03");                           // mov ds,cx; mov eax,[ebx] x2
  m.edit([](CpuState& s) {
    s.reg(Gpr::kRcx) = 0x58;
    s.reg(Gpr::kRbx) = 0xFFC;
  });
  m.put(0x200FFC, 0x12345678, 4);
  ASSERT_EQ(m.run(2).outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().reg(Gpr::kRax), 0x12345678u);
  m.edit([](CpuState& s) { s.reg(Gpr::kRbx) = 0xFFD; });  // last byte past the limit
  const SegFault f = runFault(m);
  EXPECT_EQ(f.vector, 13);
  EXPECT_EQ(f.error, 0u);
}

TEST(Segmentation, ExpandDownStackSegment) {
  Machine m;
  flat32WithHandlers(m);
  // Expand-down, B=1: valid offsets (0xFFF, 0xFFFFFFFF].
  addDescriptor(m, 0x58, descriptor(0, 0xFFF, 0x97, 0x4));
  m.loadHex(kCode, "8e d1 50 50");  // mov ss,cx; push eax; push eax
  m.edit([](CpuState& s) {
    s.reg(Gpr::kRcx) = 0x58;
    s.reg(Gpr::kRsp) = 0x1004;
  });
  ASSERT_EQ(m.run(2).outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().reg(Gpr::kRsp), 0x1000u);
  const SegFault f = runFault(m);  // push to 0xFFC: below the expand-down limit
  EXPECT_EQ(f.vector, 12);
  EXPECT_EQ(f.error, 0u);
}

TEST(Segmentation, SegmentLoadChecks) {
  struct Case {
    const char* name;
    uint64_t raw;
    uint16_t sel;
    bool ss;
    uint8_t vector;  // 0 = loads fine
  };
  const Case cases[] = {
      {"DataOk", descriptor(0, 0xFFFFF, 0x93, 0xC), 0x58, false, 0},
      {"NotPresentNp", descriptor(0, 0xFFFFF, 0x13, 0xC), 0x58, false, 11},
      {"NotPresentSsIsSs", descriptor(0, 0xFFFFF, 0x13, 0xC), 0x58, true, 12},
      {"ExecuteOnlyCodeGp", descriptor(0, 0xFFFFF, 0x99, 0xC), 0x58, false, 13},
      {"ReadableCodeOk", descriptor(0, 0xFFFFF, 0x9B, 0xC), 0x58, false, 0},
      {"SsReadOnlyGp", descriptor(0, 0xFFFFF, 0x91, 0xC), 0x58, true, 13},
      {"SsRplMismatchGp", descriptor(0, 0xFFFFF, 0x93, 0xC), 0x5B, true, 13},
      {"SystemDescriptorGp", descriptor(0, 0x67, 0x89, 0x0), 0x58, false, 13},
      {"OutsideGdtGp", 0, 0x100, false, 13},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Machine m;
    flat32WithHandlers(m);
    if (c.sel < 0x100) addDescriptor(m, c.sel & ~7, c.raw);
    m.loadHex(kCode, c.ss ? "8e d1" : "8e d9");
    m.edit([&](CpuState& s) { s.reg(Gpr::kRcx) = c.sel; });
    const StepResult r = m.step();
    if (c.vector == 0) {
      EXPECT_EQ(r.outcome, StepOutcome::kRetired);
      EXPECT_TRUE(m.get(layout::kGdt + (c.sel & ~7), 8) & (1ull << 40));  // accessed
    } else {
      EXPECT_EQ(r.outcome, StepOutcome::kException);
      EXPECT_EQ(int(r.vector), c.vector);
      EXPECT_EQ(r.errorCode, c.sel & ~3u);
    }
  }
}

TEST(Segmentation, NullSelectorLoadsButUseFaults) {
  Machine m;
  flat32WithHandlers(m);
  m.loadHex(kCode, "8e d9 8b 03");  // mov ds,cx (null); mov eax,[ebx]
  m.edit([](CpuState& s) { s.reg(Gpr::kRcx) = 0; });
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  const SegFault f = runFault(m);
  EXPECT_EQ(f.vector, 13);
}

TEST(Segmentation, PrivilegeOnDataSegmentLoad) {
  Machine m;
  longWithHandlers(m);
  m.loadHex(kCode, "8e d9");  // mov ds,cx with a DPL0 data segment at CPL 3
  m.enterUser64();
  m.edit([](CpuState& s) { s.reg(Gpr::kRcx) = layout::kData0; });
  const SegFault f = runFault(m);
  EXPECT_EQ(f.vector, 13);
  EXPECT_EQ(f.error, layout::kData0);
}

TEST(Segmentation, LarLslVerrVerw) {
  Machine m;
  m.setupLong64(kCode);
  // lar eax,ecx; lsl eax,ecx; verr cx; verw cx
  m.loadHex(kCode, "0f 02 c1");
  m.edit([](CpuState& s) { s.reg(Gpr::kRcx) = layout::kUserData | 3; });
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_TRUE(m.state().rflags & flags::kZF);
  EXPECT_EQ(m.state().reg(Gpr::kRax), 0x00C0F300u);  // limit bits 19:16 masked
  m.loadHex(kCode + 3, "0f 03 c1 0f 00 e1 0f 00 e9");
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().reg(Gpr::kRax), 0xFFFFFFFFu);
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_TRUE(m.state().rflags & flags::kZF);
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_TRUE(m.state().rflags & flags::kZF);
  // From CPL 3 a DPL 0 segment is not accessible: ZF=0, no fault.
  m.loadHex(kCode + 12, "0f 00 e1");
  m.enterUser64();
  m.edit([](CpuState& s) { s.reg(Gpr::kRcx) = layout::kData0; });
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_FALSE(m.state().rflags & flags::kZF);
}

TEST(Segmentation, FarCallAndReturnSamePrivilegeAndRetfToUser) {
  Machine m;
  flat32WithHandlers(m);
  // call 0x40:kCode+0x20 ; at +0x20: retf
  m.loadHex(kCode, "9a 20 00 10 00 40 00 90");
  m.loadHex(kCode + 0x20, "cb");
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().rip, kCode + 0x20);
  EXPECT_EQ(m.get(layout::kStackTop - 4, 4), layout::kCode32);
  EXPECT_EQ(m.get(layout::kStackTop - 8, 4), kCode + 7);
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().rip, kCode + 7);
  EXPECT_EQ(m.state().reg(Gpr::kRsp), layout::kStackTop);

  // RETF from ring 0 to ring 3 pops SS:ESP too.
  Machine u;
  flat32WithHandlers(u);
  u.loadHex(kCode, "cb");
  u.edit([](CpuState& s) { s.reg(Gpr::kRsp) = 0x7F00; });
  u.put(0x7F00, 0x401000, 4);
  u.put(0x7F04, layout::kUserCode32 | 3, 4);
  u.put(0x7F08, 0x50000, 4);
  u.put(0x7F0C, layout::kUserData | 3, 4);
  ASSERT_EQ(u.step().outcome, StepOutcome::kRetired);
  EXPECT_EQ(currentPrivilegeLevel(u.state()), 3);
  EXPECT_EQ(u.state().rip, 0x401000u);
  EXPECT_EQ(u.state().reg(Gpr::kRsp), 0x50000u);
  EXPECT_EQ(u.state().segment(SegReg::kSs).selector, layout::kUserData | 3);
  EXPECT_TRUE(u.state().segment(SegReg::kDs).attributes & segattr::kUnusable);  // DPL0 DS nulled
}

// CPL 3 -> CPL 0 through a 32-bit call gate with one parameter, RETF 4 back.
TEST(Segmentation, CallGateWithParameterAndPrivilegeChange) {
  Machine m;
  flat32WithHandlers(m);
  constexpr uint64_t kTss32 = 0x4000;
  constexpr uint16_t kTssSel = 0x58, kGateSel = 0x60;
  addDescriptor(m, kTssSel, descriptor(kTss32, 0x67, 0x89, 0));
  m.put(kTss32 + 4, 0x70000, 4);         // ESP0
  m.put(kTss32 + 8, layout::kData0, 2);  // SS0
  const uint64_t target = kCode + 0x40;
  const uint64_t gate = (target & 0xFFFF) | (uint64_t{layout::kCode32} << 16) | (1ull << 32) |
                        (0xECull << 40) | ((target >> 16) << 48);  // P, DPL3, type C, 1 param
  addDescriptor(m, kGateSel, gate);
  m.loadHex(kCode, "68 34 12 00 00 9a 00 00 00 00 63 00 90");  // push 0x1234; call 0x63:0; nop
  m.loadHex(target, "ca 04 00");                               // retf 4
  m.edit([&](CpuState& s) {
    s.tr = SegmentRegister{kTssSel, kTss32, 0x67, 0x8B};
    s.segment(SegReg::kCs) = SegmentRegister{layout::kUserCode32 | 3, 0, 0xFFFFFFFF, 0xCFFB};
    s.segment(SegReg::kSs) = SegmentRegister{layout::kUserData | 3, 0, 0xFFFFFFFF, 0xCFF3};
    s.reg(Gpr::kRsp) = 0x50000;
  });
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  const StepResult r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kRetired) << int(r.vector) << " " << r.errorCode;
  CpuState k = m.state();
  EXPECT_EQ(currentPrivilegeLevel(k), 0);
  EXPECT_EQ(k.rip, target);
  EXPECT_EQ(k.reg(Gpr::kRsp), 0x70000u - 20);
  EXPECT_EQ(m.get(0x70000 - 4, 4), layout::kUserData | 3u);  // SS
  EXPECT_EQ(m.get(0x70000 - 8, 4), 0x50000u - 4);            // ESP
  EXPECT_EQ(m.get(0x70000 - 12, 4), 0x1234u);                // copied parameter
  EXPECT_EQ(m.get(0x70000 - 16, 4), layout::kUserCode32 | 3u);
  EXPECT_EQ(m.get(0x70000 - 20, 4), kCode + 12);
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);  // retf 4
  CpuState u = m.state();
  EXPECT_EQ(currentPrivilegeLevel(u), 3);
  EXPECT_EQ(u.rip, kCode + 12);
  EXPECT_EQ(u.reg(Gpr::kRsp), 0x50000u);  // parameter released on the caller's stack too
}

// Two 32-bit tasks: CALL to a TSS, IRET (NT=1) back; #DF through a task gate.
struct TwoTasks {
  static constexpr uint64_t kTssA = 0x4000, kTssB = 0x5000;
  static constexpr uint16_t kSelA = 0x58, kSelB = 0x60, kGateSel = 0x68;
  static constexpr uint64_t kTaskBEntry = kCode + 0x100;

  static void setup(Machine& m) {
    flat32WithHandlers(m);
    addDescriptor(m, kSelA, descriptor(kTssA, 0x67, 0x8B, 0));  // busy: the current task
    addDescriptor(m, kSelB, descriptor(kTssB, 0x67, 0x89, 0));  // available
    addDescriptor(m, kGateSel, (uint64_t{kSelB} << 16) | (0x85ull << 40));  // task gate
    m.put(kTssB + 0x20, kTaskBEntry, 4);                                    // EIP
    m.put(kTssB + 0x24, 0x2, 4);                                            // EFLAGS
    m.put(kTssB + 0x28, 0xB0B, 4);                                          // EAX
    m.put(kTssB + 0x38, 0x60000, 4);                                        // ESP
    m.put(kTssB + 0x48, layout::kData0, 4);                                 // ES
    m.put(kTssB + 0x4C, layout::kCode32, 4);                                // CS
    m.put(kTssB + 0x50, layout::kData0, 4);                                 // SS
    m.put(kTssB + 0x54, layout::kData0, 4);                                 // DS
    m.edit([](CpuState& s) {
      s.tr = SegmentRegister{kSelA, kTssA, 0x67, 0x8B};
      s.reg(Gpr::kRax) = 0xA;
    });
  }
};

// LTR/LLDT in IA-32e mode read 16-byte descriptors; a base whose upper half
// makes it non-canonical is #GP(selector), and nothing is loaded or marked
// busy (SDM Vol. 2, LLDT and LTR, 64-bit mode exceptions).
TEST(Segmentation, LtrLldtInLongModeRefuseANonCanonicalBase) {
  struct Case {
    const char* name;
    const char* code;  // ltr cx / lldt cx
    uint32_t access;   // available 64-bit TSS / LDT
  };
  for (const Case& k : {Case{"ltr", "0f 00 d9", 0x89}, Case{"lldt", "0f 00 d1", 0x82}}) {
    for (const bool canonical : {false, true}) {
      SCOPED_TRACE(std::string(k.name) + (canonical ? " canonical" : " non-canonical"));
      Machine m;
      longWithHandlers(m);
      constexpr uint16_t kSel = 0x58;
      const uint32_t high = canonical ? 0xFFFF8000u : 0x00008000u;  // base bits 63:32
      m.put(layout::kGdt + kSel, descriptor(0x12345000, 0x67, k.access, 0), 8);
      m.put(layout::kGdt + kSel + 8, high, 8);
      m.edit([](CpuState& s) {
        s.gdtr.limit = kSel + 15;
        s.reg(Gpr::kRcx) = kSel;
      });
      m.loadHex(kCode, k.code);
      const CpuState before = m.state();
      const StepResult r = m.step();
      const SegmentRegister& loaded = k.access == 0x89 ? m.state().tr : m.state().ldtr;
      const SegmentRegister& was = k.access == 0x89 ? before.tr : before.ldtr;
      if (canonical) {
        ASSERT_EQ(r.outcome, StepOutcome::kRetired);
        EXPECT_EQ(loaded.base, 0xFFFF800012345000ull);
        EXPECT_EQ(loaded.selector, kSel);
      } else {
        ASSERT_EQ(r.outcome, StepOutcome::kException);
        EXPECT_EQ(int(r.vector), 13);
        EXPECT_EQ(r.errorCode, kSel);
        EXPECT_EQ(loaded.selector, was.selector);
        EXPECT_EQ(loaded.base, was.base);
        // LTR did not mark the descriptor busy.
        EXPECT_EQ(m.get(layout::kGdt + kSel + 5, 1), k.access);
      }
    }
  }
}

// SALC (D6) sets AL from CF and leaves every flag alone outside 64-bit mode;
// in 64-bit mode it is #UD.
TEST(DataMovement, SalcSetsAlFromCarryOutside64BitMode) {
  for (const uint64_t cf : {0ull, 1ull}) {
    Machine m;
    flat32WithHandlers(m);
    m.loadHex(kCode, "d6");
    m.edit([&](CpuState& s) {
      s.reg(Gpr::kRax) = 0x11223344;
      s.rflags = 0x2 | flags::kZF | flags::kOF | cf;
    });
    ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
    EXPECT_EQ(m.state().reg(Gpr::kRax), cf ? 0x112233FFu : 0x11223300u);
    EXPECT_EQ(m.state().rflags, 0x2 | flags::kZF | flags::kOF | cf);
    EXPECT_EQ(m.state().rip, kCode + 1);
  }
  Machine real;
  real.setupReal(0, 0x7C00);
  real.loadHex(0x7C00, "f9 d6");  // stc; salc
  ASSERT_EQ(real.run(2).outcome, StepOutcome::kRetired);
  EXPECT_EQ(real.state().reg(Gpr::kRax) & 0xFF, 0xFFu);
  Machine m64;
  longWithHandlers(m64);
  m64.loadHex(kCode, "d6");
  const StepResult r = m64.step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 6);
}

TEST(TaskSwitch, CallToTssAndIretBack) {
  Machine m;
  TwoTasks::setup(m);
  m.loadHex(kCode, "9a 00 00 00 00 60 00 90");  // call 0x60:0; nop
  m.loadHex(TwoTasks::kTaskBEntry, "cf");       // iretd (NT=1: back to the caller task)
  const StepResult r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kRetired) << int(r.vector) << " " << r.errorCode;
  CpuState b = m.state();
  EXPECT_EQ(b.rip, TwoTasks::kTaskBEntry);
  EXPECT_EQ(b.reg(Gpr::kRax), 0xB0Bu);
  EXPECT_EQ(b.tr.selector, TwoTasks::kSelB);
  EXPECT_TRUE(b.rflags & flags::kNT);
  EXPECT_TRUE(b.cr0 & cr0::kTS);
  EXPECT_EQ(m.get(TwoTasks::kTssB, 2), TwoTasks::kSelA);                  // back link
  EXPECT_EQ(m.get(TwoTasks::kTssA + 0x20, 4), kCode + 7);                 // saved EIP of task A
  EXPECT_EQ(m.get(TwoTasks::kTssA + 0x28, 4), 0xAu);                      // saved EAX
  EXPECT_EQ((m.get(layout::kGdt + TwoTasks::kSelB + 5, 1) & 0xF), 0xBu);  // B busy
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);                     // iretd
  CpuState a = m.state();
  EXPECT_EQ(a.rip, kCode + 7);
  EXPECT_EQ(a.reg(Gpr::kRax), 0xAu);
  EXPECT_EQ(a.tr.selector, TwoTasks::kSelA);
  EXPECT_EQ((m.get(layout::kGdt + TwoTasks::kSelB + 5, 1) & 0xF), 0x9u);  // B available again
}

TEST(TaskSwitch, ClearsLocalBreakpointEnablesAndHonoursTheTBit) {
  Machine m;
  TwoTasks::setup(m);
  m.setIdt32(1, static_cast<uint32_t>(kHandler));
  m.put(TwoTasks::kTssB + 0x64, 1, 2);       // T bit
  m.loadHex(kCode, "ea 00 00 00 00 60 00");  // jmp 0x60:0
  m.loadHex(TwoTasks::kTaskBEntry, "90");
  m.edit([](CpuState& s) { s.dr7 = 0x400 | 0x3; });  // L0 | G0 (execute breakpoint on DR0 = 0)
  const StepResult r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 1);
  EXPECT_TRUE(m.state().dr6 & (1u << 15));                   // BT
  EXPECT_EQ(m.state().dr7 & 0xFF, 0x2u);                     // L0 cleared, G0 kept
  EXPECT_EQ(m.get(0x60000 - 12, 4), TwoTasks::kTaskBEntry);  // #DB pushed the new task's EIP
}

TEST(TaskSwitch, DoubleFaultThroughTaskGate) {
  Machine m;
  TwoTasks::setup(m);
  m.put(layout::kIdt + 8 * 8, (uint64_t{TwoTasks::kSelB} << 16) | (0x85ull << 40), 8);
  m.put(layout::kIdt + 13 * 8 + 5, 0x0E, 1);  // #GP gate not present -> #NP -> #DF
  m.loadHex(kCode, "8e d9");                  // mov ds, cx with a bad selector -> #GP
  m.loadHex(TwoTasks::kTaskBEntry, "f4");
  m.edit([](CpuState& s) { s.reg(Gpr::kRcx) = 0x1000; });  // outside the GDT
  const StepResult r = m.step();
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 8);
  EXPECT_EQ(m.state().rip, TwoTasks::kTaskBEntry);
  EXPECT_EQ(m.state().reg(Gpr::kRsp), 0x60000u - 4);
  EXPECT_EQ(m.get(0x60000 - 4, 4), 0u);                // #DF error code
  EXPECT_EQ(m.get(TwoTasks::kTssA + 0x20, 4), kCode);  // faulting EIP saved
}

TEST(Segmentation, JumpOutsideCsLimitFaults) {
  Machine m;
  flat32WithHandlers(m);
  addDescriptor(m, 0x58, descriptor(0, 0x100, 0x9B, 0xC));  // limit 0x100FFF
  m.loadHex(kCode, "ea 00 00 10 00 58 00");                 // jmp 0x58:kCode
  m.loadHex(kCode + 0x10, "ff e0");                         // jmp eax
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_EQ(m.state().segment(SegReg::kCs).limit, 0x100FFFu);
  m.edit([](CpuState& s) {
    s.rip = kCode + 0x10;
    s.reg(Gpr::kRax) = 0x101000;
  });
  const SegFault f = runFault(m);
  EXPECT_EQ(f.vector, 13);
}

}  // namespace
}  // namespace ttvm::cputest
