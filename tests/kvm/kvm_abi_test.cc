// The pure half of the KVM layer, on any host: CpuState <-> KVM structures,
// the CPU model's CPUID table <-> KVM_SET_CPUID2 entries, and the exit decoder
// over made-up kvm_run pages.
#include "ttvm/kvm/kvm_abi.h"

#include <gtest/gtest.h>

#include <cstring>
#include <set>

#include "test_states.h"
#include "ttvm/base/hex.h"
#include "ttvm/emulator/disassembler.h"

namespace ttvm::kvm {
namespace {

// A state in which every field KVM carries has a distinct, non-default value
// (a long-mode state, plus what KVM hardware would refuse but the conversion
// must carry: a 16-bit GS, a present LDT, XCR0 with SSE, a pending STI shadow).
CpuState richState() {
  CpuState s = longModeState();
  const uint32_t data = 0x3 | segattr::kS | segattr::kP | segattr::kDB | segattr::kG;
  s.segment(SegReg::kDs) = {0x2B, 0x1000, 0xFFFFF, data | (3u << segattr::kDplShift)};
  s.segment(SegReg::kFs) = {0x33, 0x7FFF12345000ull, 0xFFFFFFFF, data | segattr::kAvl};
  s.segment(SegReg::kGs) = {0x3B, 0xFFFF888000001000ull, 0xFFFF, 0x13 | segattr::kS | segattr::kP};
  s.ldtr = {0x40, 0x5000, 0x67, 0x2 | segattr::kP};
  s.tr = {0x48, 0xFFFFFE0000003000ull, 0x4087, 0xB | segattr::kP};
  s.xcr0 = 3;
  s.msr.apicBase = 0xFEE00900ull;
  s.msr.miscEnable = 0x801;
  s.msr.tscAdjust = 0x123456;
  s.fpu.fsw = uint16_t((5u << 11) | 0x41);  // TOP = 5, C0, IE
  s.fpu.ftw = 0xE1;
  s.pending.shadow = InterruptShadow::kSti;
  return s;
}

TEST(KvmState, RegistersLandInKvmsOrder) {
  const CpuState s = richState();
  const Result<KvmCpuState> k = toKvm(s);
  ASSERT_TRUE(k.ok()) << k.error().message;
  // kvm_regs: rax rbx rcx rdx rsi rdi rsp rbp r8..r15 (not the encoding order).
  EXPECT_EQ(k->regs.rax, s.reg(Gpr::kRax));
  EXPECT_EQ(k->regs.rbx, s.reg(Gpr::kRbx));
  EXPECT_EQ(k->regs.rcx, s.reg(Gpr::kRcx));
  EXPECT_EQ(k->regs.rdx, s.reg(Gpr::kRdx));
  EXPECT_EQ(k->regs.rsp, s.reg(Gpr::kRsp));
  EXPECT_EQ(k->regs.rbp, s.reg(Gpr::kRbp));
  EXPECT_EQ(k->regs.rsi, s.reg(Gpr::kRsi));
  EXPECT_EQ(k->regs.rdi, s.reg(Gpr::kRdi));
  EXPECT_EQ(k->regs.r8, s.reg(Gpr::kR8));
  EXPECT_EQ(k->regs.r15, s.reg(Gpr::kR15));
  EXPECT_EQ(k->regs.rip, s.rip);
  EXPECT_EQ(k->regs.rflags, s.rflags);
  EXPECT_EQ(k->sregs.cr0, s.cr0);
  EXPECT_EQ(k->sregs.cr2, s.cr2);
  EXPECT_EQ(k->sregs.cr3, s.cr3);
  EXPECT_EQ(k->sregs.cr4, s.cr4);
  EXPECT_EQ(k->sregs.cr8, s.cr8);
  EXPECT_EQ(k->sregs.efer, s.msr.efer);
  EXPECT_EQ(k->sregs.apic_base, s.msr.apicBase);
  EXPECT_EQ(k->sregs.gdt.base, s.gdtr.base);
  EXPECT_EQ(k->sregs.gdt.limit, s.gdtr.limit);
  EXPECT_EQ(k->sregs.idt.limit, s.idtr.limit);
  EXPECT_EQ(k->debugregs.db[2], 0x3000u);
  EXPECT_EQ(k->debugregs.dr6, s.dr6);
  EXPECT_EQ(k->debugregs.dr7, s.dr7);
  EXPECT_EQ(k->xcrs.nr_xcrs, 1u);
  EXPECT_EQ(k->xcrs.xcrs[0].xcr, 0u);
  EXPECT_EQ(k->xcrs.xcrs[0].value, 3u);
}

TEST(KvmState, SegmentAttributesSplitIntoFields) {
  const CpuState s = richState();
  const KvmCpuState k = toKvm(s).value();
  // CS: 64-bit code, type 0xB, S, P, L, G.
  EXPECT_EQ(k.sregs.cs.selector, 0x10);
  EXPECT_EQ(k.sregs.cs.type, 0xB);
  EXPECT_EQ(k.sregs.cs.s, 1);
  EXPECT_EQ(k.sregs.cs.present, 1);
  EXPECT_EQ(k.sregs.cs.l, 1);
  EXPECT_EQ(k.sregs.cs.db, 0);
  EXPECT_EQ(k.sregs.cs.g, 1);
  EXPECT_EQ(k.sregs.cs.dpl, 0);
  EXPECT_EQ(k.sregs.cs.limit, 0xFFFFFFFFu);
  EXPECT_EQ(k.sregs.ds.dpl, 3);
  EXPECT_EQ(k.sregs.ds.base, 0x1000u);
  EXPECT_EQ(k.sregs.es.unusable, 1);
  EXPECT_EQ(k.sregs.es.present, 0);
  EXPECT_EQ(k.sregs.fs.avl, 1);
  EXPECT_EQ(k.sregs.fs.base, 0x7FFF12345000ull);
  EXPECT_EQ(k.sregs.gs.db, 0);
  EXPECT_EQ(k.sregs.tr.type, 0xB);
  EXPECT_EQ(k.sregs.tr.s, 0);
  EXPECT_EQ(k.sregs.ldt.type, 0x2);
  EXPECT_EQ(k.sregs.ldt.selector, 0x40);
  // Every attribute bit survives the trip through kvm_segment.
  for (uint32_t attr = 0; attr < (1u << 17); ++attr) {
    if (attr & 0xF00) continue;  // bits 8-11 are not attributes
    const SegmentRegister r{0x1234, 0xABCDE000, 0xFFFFF, attr};
    ASSERT_EQ(fromKvmSegment(toKvmSegment(r)), r) << "attributes " << std::hex << attr;
  }
}

TEST(KvmState, FpuStackIsRotatedByTop) {
  const CpuState s = richState();
  const KvmCpuState k = toKvm(s).value();
  // FXSAVE's ST(i) is physical register (TOP + i) mod 8; TOP is 5.
  for (unsigned i = 0; i < 8; ++i) {
    const unsigned phys = (5 + i) & 7;
    uint64_t sig;
    uint16_t se;
    std::memcpy(&sig, &k.fpu.fpr[i][0], 8);
    std::memcpy(&se, &k.fpu.fpr[i][8], 2);
    EXPECT_EQ(sig, 0x8000000000000000ull | phys) << "ST(" << i << ")";
    EXPECT_EQ(se, 0x3FFF + phys) << "ST(" << i << ")";
  }
  EXPECT_EQ(k.fpu.ftwx, 0xE1);  // abridged, by physical register: not rotated
  EXPECT_EQ(k.fpu.fcw, 0x027F);
  EXPECT_EQ(k.fpu.last_opcode, 0x5D9);
  EXPECT_EQ(k.fpu.last_ip, 0x401234u);
  EXPECT_EQ(k.fpu.last_dp, 0x605678u);
  EXPECT_EQ(k.fpu.mxcsr, 0x1FA0u);
  uint64_t x7[2];
  std::memcpy(x7, k.fpu.xmm[7], 16);
  EXPECT_EQ(x7[0], 0x0102030405060708ull * 8);
  EXPECT_EQ(x7[1], ~uint64_t(7));
}

TEST(KvmState, XsaveRegionIsTheFxsave64ImageWithX87AndSseLive) {
  const KvmCpuState k = toKvm(richState()).value();
  const XsaveRegion r = toXsaveRegion(k.fpu);
  const auto* b = reinterpret_cast<const uint8_t*>(r.data());
  auto u16 = [&](unsigned off) { return uint16_t(b[off] | b[off + 1] << 8); };
  auto u32 = [&](unsigned off) {
    uint32_t v;
    std::memcpy(&v, b + off, 4);
    return v;
  };
  auto u64 = [&](unsigned off) {
    uint64_t v;
    std::memcpy(&v, b + off, 8);
    return v;
  };
  // SDM vol. 1 table 10-2 (64-bit form) and the XSAVE header.
  EXPECT_EQ(u16(0), 0x027F);                      // FCW
  EXPECT_EQ(u16(2), (5u << 11) | 0x41);           // FSW
  EXPECT_EQ(b[4], 0xE1);                          // abridged FTW
  EXPECT_EQ(u16(6), 0x5D9);                       // FOP
  EXPECT_EQ(u64(8), 0x401234u);                   // FIP
  EXPECT_EQ(u64(16), 0x605678u);                  // FDP
  EXPECT_EQ(u32(24), 0x1FA0u);                    // MXCSR
  EXPECT_EQ(u64(32), 0x8000000000000000ull | 5);  // ST(0) = R5 (TOP 5)
  EXPECT_EQ(u16(40), 0x3FFF + 5);
  EXPECT_EQ(u64(32 + 16 * 3), 0x8000000000000000ull | 0);  // ST(3) = R0
  EXPECT_EQ(u64(160 + 16 * 15 + 8), ~uint64_t(15));        // XMM15 high
  EXPECT_EQ(u64(512), 0x3u) << "XSTATE_BV: x87 and SSE";
  // And back: kvm_fpu with its MXCSR.
  const kvm_fpu f = fromXsaveRegion(r);
  EXPECT_EQ(std::memcmp(&f, &k.fpu, sizeof f), 0);
  EXPECT_EQ(f.mxcsr, 0x1FA0u);
}

TEST(KvmState, MsrsAndEvents) {
  const CpuState s = richState();
  const KvmCpuState k = toKvm(s).value();
  ASSERT_EQ(k.msrs.size(), kOwnedMsrs.size());
  std::set<uint32_t> indices;
  for (size_t i = 0; i < k.msrs.size(); ++i) {
    EXPECT_EQ(k.msrs[i].index, kOwnedMsrs[i].index);
    indices.insert(k.msrs[i].index);
  }
  EXPECT_EQ(indices.size(), kOwnedMsrs.size()) << "an MSR listed twice";
  auto value = [&](uint32_t index) -> uint64_t {
    for (const kvm_msr_entry& e : k.msrs)
      if (e.index == index) return e.data;
    ADD_FAILURE() << "MSR " << std::hex << index << " missing";
    return uint64_t(0);
  };
  EXPECT_EQ(value(0xC0000082), s.msr.lstar);
  EXPECT_EQ(value(0xC0000102), s.msr.kernelGsBase);
  EXPECT_EQ(value(0x277), s.msr.pat);
  EXPECT_EQ(value(0x176), s.msr.sysenterEip);
  EXPECT_EQ(value(0xC0000103), 3u);
  EXPECT_EQ(value(0x3B), 0x123456u);
  // ttvm numbers the shadows STI=1, MOV SS=2; KVM the other way round.
  EXPECT_EQ(k.events.interrupt.shadow, KVM_X86_SHADOW_INT_STI);
  EXPECT_TRUE(k.events.flags & KVM_VCPUEVENT_VALID_SHADOW);
  EXPECT_EQ(k.events.nmi.masked, 1);
  EXPECT_TRUE(k.halted);
  CpuState movss = s;
  movss.pending.shadow = InterruptShadow::kMovSs;
  EXPECT_EQ(toKvm(movss)->events.interrupt.shadow, KVM_X86_SHADOW_INT_MOV_SS);
}

TEST(KvmState, RoundTripKeepsEverythingButFpuSelectors) {
  CpuState s = richState();
  s.fpu.fcs = 0x23;
  s.fpu.fds = 0x2B;
  s.steps = 999;
  const CpuState back = fromKvm(toKvm(s).value());
  CpuState want = s;
  want.fpu.fcs = 0;  // kvm_fpu is the FXSAVE64 image: no selectors
  want.fpu.fds = 0;
  want.steps = 0;
  EXPECT_EQ(back.gpr, want.gpr);
  EXPECT_EQ(back.seg, want.seg);
  EXPECT_EQ(back.fpu, want.fpu);
  EXPECT_EQ(back.msr, want.msr);
  EXPECT_EQ(back.pending, want.pending);
  EXPECT_EQ(back, want);
  // The reset state and a real-mode state too.
  const CpuState reset = resetState();
  EXPECT_EQ(fromKvm(toKvm(reset).value()), reset);
  for (InterruptShadow sh :
       {InterruptShadow::kNone, InterruptShadow::kSti, InterruptShadow::kMovSs}) {
    CpuState t = reset;
    t.pending.shadow = sh;
    EXPECT_EQ(fromKvm(toKvm(t).value()).pending.shadow, sh);
  }
}

TEST(KvmState, RefusesADeferredDebugTrap) {
  CpuState s = richState();
  s.pending.pendingDr6 = 0x4000;
  const Result<KvmCpuState> k = toKvm(s);
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.error().message.find("MOV SS"), std::string::npos) << k.error().message;
  EXPECT_NE(k.error().message.find("0x4000"), std::string::npos) << k.error().message;
}

// ---- CPUID -------------------------------------------------------------------

TEST(KvmCpuid, TranslatesEveryLeafOfTheModelAndNothingElse) {
  const CpuModel m = CpuModel::ttvmDefault();
  const std::vector<kvm_cpuid_entry2> e = toKvmCpuid(m);
  ASSERT_EQ(e.size(), m.cpuid.size());
  for (size_t i = 0; i < e.size(); ++i) {
    const CpuidLeaf& l = m.cpuid[i];
    EXPECT_EQ(e[i].function, l.leaf);
    EXPECT_EQ(e[i].eax, l.eax) << std::hex << l.leaf;
    EXPECT_EQ(e[i].ebx, l.ebx) << std::hex << l.leaf;
    EXPECT_EQ(e[i].ecx, l.ecx) << std::hex << l.leaf;
    EXPECT_EQ(e[i].edx, l.edx) << std::hex << l.leaf;
    EXPECT_EQ((e[i].flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) != 0, l.subleafSignificant);
    EXPECT_EQ(e[i].index, l.subleafSignificant ? l.subleaf : 0u);
  }
  // Leaf 7 selects by ECX; leaf 1 does not.
  bool saw7 = false;
  for (const kvm_cpuid_entry2& x : e)
    if (x.function == 7) {
      saw7 = true;
      EXPECT_EQ(x.flags, uint32_t(KVM_CPUID_FLAG_SIGNIFCANT_INDEX));
    } else if (x.function == 1) {
      EXPECT_EQ(x.flags, 0u);
    }
  EXPECT_TRUE(saw7);
  // And back: the same table.
  EXPECT_EQ(fromKvmCpuid(e), m.cpuid);
}

TEST(KvmCpuid, RestrictToHostOnlyClearsFeatureBits) {
  const CpuModel m = CpuModel::ttvmDefault();
  // A host with everything of the model and more (AVX, XSAVE, HLE...),
  // except RDRAND (1:ECX[30]) and SMAP (7.0:EBX[20]), and with an odd
  // vendor and family (identity leaves must not be touched).
  std::vector<CpuidLeaf> host;
  host.push_back({0, 0, false, 0xD, 0x68747541, 0x444D4163, 0x69746E65});
  host.push_back({1, 0, false, 0x00A00F11, 0xFFFFFFFF, 0xFFFFFFFF & ~(1u << 30), 0xFFFFFFFF});
  host.push_back({7, 0, true, 0, 0xFFFFFFFF & ~(1u << 20), 0xFFFFFFFF, 0xFFFFFFFF});
  host.push_back({0x80000001u, 0, false, 0, 0, 0xFFFFFFFF, 0xFFFFFFFF});
  std::vector<MissingFeature> removed;
  const CpuModel r = restrictToHost(m, host, &removed);
  ASSERT_EQ(removed.size(), 2u);
  EXPECT_EQ(removed[0], (MissingFeature{1, 0, 'c', 30}));
  EXPECT_EQ(removed[1], (MissingFeature{7, 0, 'b', 20}));
  EXPECT_EQ(describe(removed[0]), "CPUID.0x1:ECX[30]");
  EXPECT_EQ(describe(removed[1]), "CPUID.0x7.0:EBX[20]");
  ASSERT_EQ(r.cpuid.size(), m.cpuid.size());
  for (size_t i = 0; i < m.cpuid.size(); ++i) {
    const CpuidLeaf &a = m.cpuid[i], &b = r.cpuid[i];
    // Never a bit the model lacks.
    EXPECT_EQ(b.eax & ~a.eax, 0u);
    EXPECT_EQ(b.ebx & ~a.ebx, 0u);
    EXPECT_EQ(b.ecx & ~a.ecx, 0u);
    EXPECT_EQ(b.edx & ~a.edx, 0u);
    if (a.leaf == 1) {
      EXPECT_EQ(b.ecx, a.ecx & ~(1u << 30));
      EXPECT_EQ(b.eax, a.eax) << "family/model/stepping is identity, not a feature";
      EXPECT_EQ(b.ebx, a.ebx);
    } else if (a.leaf == 7) {
      EXPECT_EQ(b.ebx, a.ebx & ~(1u << 20));
    } else {
      EXPECT_EQ(b, a) << std::hex << "leaf " << a.leaf;
    }
  }
  // A host without leaf 7 at all takes every leaf-7 feature away.
  host.erase(host.begin() + 2);
  removed.clear();
  const CpuModel r2 = restrictToHost(m, host, &removed);
  for (const CpuidLeaf& l : r2.cpuid) {
    if (l.leaf == 7) {
      EXPECT_EQ(l.ebx, 0u);
    }
  }
  EXPECT_EQ(removed.size(), 3u);  // RDRAND, SMEP, SMAP
}

TEST(KvmSelfCheck, GuestCodeIsWhatItsCommentsSay) {
  const std::vector<std::string> want = {"xor eax, eax",
                                         "xor ecx, ecx",
                                         "cpuid",
                                         "mov eax, ebx",
                                         "out 0x70, eax",
                                         "mov eax, edx",
                                         "out 0x70, eax",
                                         "mov eax, ecx",
                                         "out 0x70, eax",
                                         "mov eax, 0x01",
                                         "xor ecx, ecx",
                                         "cpuid",
                                         "mov eax, ecx",
                                         "out 0x70, eax",
                                         "mov eax, edx",
                                         "out 0x70, eax",
                                         "hlt"};
  std::span<const uint8_t> code(kSelfCheckCode);
  size_t at = 0;
  for (const std::string& w : want) {
    const Disassembly d = disassemble(code.subspan(at), CpuMode::kReal, at);
    ASSERT_GT(d.length, 0u) << "at " << at;
    EXPECT_EQ(d.text, w) << "at byte " << at;
    at += d.length;
  }
  EXPECT_EQ(at, code.size());
}

// ---- exits -------------------------------------------------------------------

// A kvm_run page followed by the I/O data page, as KVM maps it.
struct alignas(4096) RunPages {
  uint8_t bytes[2 * 4096] = {};
  kvm_run& run() { return *reinterpret_cast<kvm_run*>(bytes); }
};

TEST(KvmExit, StringOutWithCountPointsAtAllItsBytes) {
  RunPages p;
  p.run().exit_reason = KVM_EXIT_IO;
  p.run().io.direction = KVM_EXIT_IO_OUT;
  p.run().io.size = 2;
  p.run().io.port = 0x3F8;
  p.run().io.count = 5;
  p.run().io.data_offset = 4096;
  for (int i = 0; i < 10; ++i) p.bytes[4096 + i] = uint8_t(0xA0 + i);
  const VcpuExit e = decodeExit(p.run(), sizeof p.bytes);
  ASSERT_EQ(e.kind, ExitKind::kIo);
  EXPECT_FALSE(e.io.in);
  EXPECT_EQ(e.io.port, 0x3F8);
  EXPECT_EQ(e.io.size, 2);
  EXPECT_EQ(e.io.count, 5u);
  ASSERT_EQ(e.io.data.size(), 10u);
  EXPECT_EQ(e.io.data.data(), p.bytes + 4096);
  EXPECT_EQ(e.io.data[9], 0xA9);
  EXPECT_EQ(describe(e), "io out port 0x3f8 size 2 count 5");
}

TEST(KvmExit, InAnswersGoIntoTheRunPage) {
  RunPages p;
  p.run().exit_reason = KVM_EXIT_IO;
  p.run().io.direction = KVM_EXIT_IO_IN;
  p.run().io.size = 4;
  p.run().io.port = 0x60;
  p.run().io.count = 1;
  p.run().io.data_offset = 4096 + 64;
  VcpuExit e = decodeExit(p.run(), sizeof p.bytes);
  ASSERT_EQ(e.kind, ExitKind::kIo);
  EXPECT_TRUE(e.io.in);
  const uint32_t v = 0xCAFEF00D;
  std::memcpy(e.io.data.data(), &v, 4);
  uint32_t there;
  std::memcpy(&there, p.bytes + 4096 + 64, 4);
  EXPECT_EQ(there, v);
}

TEST(KvmExit, MmioReadAndWrite) {
  RunPages p;
  p.run().exit_reason = KVM_EXIT_MMIO;
  p.run().mmio.phys_addr = 0xFEE00300;
  p.run().mmio.len = 4;
  p.run().mmio.is_write = 1;
  const uint32_t v = 0x000C4500;
  std::memcpy(p.run().mmio.data, &v, 4);
  VcpuExit e = decodeExit(p.run(), sizeof p.bytes);
  ASSERT_EQ(e.kind, ExitKind::kMmio);
  EXPECT_TRUE(e.mmio.write);
  EXPECT_EQ(e.mmio.address, 0xFEE00300u);
  ASSERT_EQ(e.mmio.data.size(), 4u);
  EXPECT_EQ(e.mmio.data[1], 0x45);
  EXPECT_EQ(describe(e), "mmio write 0xfee00300 size 4");
  p.run().mmio.is_write = 0;
  p.run().mmio.len = 2;
  e = decodeExit(p.run(), sizeof p.bytes);
  EXPECT_FALSE(e.mmio.write);
  e.mmio.data[0] = 0x5A;
  EXPECT_EQ(p.run().mmio.data[0], 0x5A);
  EXPECT_EQ(e.mmio.data.size(), 2u);
}

TEST(KvmExit, EveryOtherKind) {
  RunPages p;
  struct Case {
    uint32_t reason;
    ExitKind kind;
  };
  for (Case c :
       {Case{KVM_EXIT_HLT, ExitKind::kHlt}, Case{KVM_EXIT_SHUTDOWN, ExitKind::kShutdown},
        Case{KVM_EXIT_INTR, ExitKind::kInterrupted},
        Case{KVM_EXIT_IRQ_WINDOW_OPEN, ExitKind::kIrqWindowOpen},
        Case{KVM_EXIT_SET_TPR, ExitKind::kSetTpr}, Case{KVM_EXIT_HYPERCALL, ExitKind::kOther}}) {
    p.run().exit_reason = c.reason;
    const VcpuExit e = decodeExit(p.run(), sizeof p.bytes);
    EXPECT_EQ(e.kind, c.kind) << c.reason;
    EXPECT_EQ(e.rawReason, c.reason);
  }
  p.run().exit_reason = KVM_EXIT_DEBUG;
  p.run().debug.arch.exception = 1;
  p.run().debug.arch.pc = 0x1005;
  p.run().debug.arch.dr6 = 0xFFFF4FF0;
  p.run().debug.arch.dr7 = 0x400;
  VcpuExit e = decodeExit(p.run(), sizeof p.bytes);
  ASSERT_EQ(e.kind, ExitKind::kDebug);
  EXPECT_EQ(e.debug.exception, 1u);
  EXPECT_EQ(e.debug.pc, 0x1005u);
  EXPECT_EQ(e.debug.dr6, 0xFFFF4FF0u);
  EXPECT_EQ(describe(e), "debug exception 1 at 0x1005 dr6 0xffff4ff0");

  p.run().exit_reason = KVM_EXIT_INTERNAL_ERROR;
  p.run().internal.suberror = KVM_INTERNAL_ERROR_EMULATION;
  p.run().internal.ndata = 2;
  p.run().internal.data[0] = 0x11;
  p.run().internal.data[1] = 0x22;
  e = decodeExit(p.run(), sizeof p.bytes);
  ASSERT_EQ(e.kind, ExitKind::kInternalError);
  EXPECT_EQ(e.internal.suberror, uint32_t(KVM_INTERNAL_ERROR_EMULATION));
  EXPECT_EQ(e.internal.data, (std::vector<uint64_t>{0x11, 0x22}));
  EXPECT_EQ(describe(e), "internal error, suberror 1 0x11 0x22");
  p.run().internal.ndata = 1000;  // KVM's count is clamped to the array
  EXPECT_EQ(decodeExit(p.run(), sizeof p.bytes).internal.data.size(),
            std::size(p.run().internal.data));

  p.run().exit_reason = KVM_EXIT_FAIL_ENTRY;
  p.run().fail_entry.hardware_entry_failure_reason = 0x21;
  p.run().fail_entry.cpu = 1;
  e = decodeExit(p.run(), sizeof p.bytes);
  ASSERT_EQ(e.kind, ExitKind::kFailEntry);
  EXPECT_EQ(e.failEntry.reason, 0x21u);
  EXPECT_EQ(e.failEntry.cpu, 1u);
  EXPECT_EQ(describe(e), "VM entry failed, hardware reason 0x21 on host CPU 1");
}

TEST(KvmExitDeathTest, IoDataOutsideTheMappingIsAKvmBug) {
  RunPages p;
  p.run().exit_reason = KVM_EXIT_IO;
  p.run().io.size = 4;
  p.run().io.count = 1025;
  p.run().io.data_offset = 4096;
  EXPECT_DEATH(decodeExit(p.run(), sizeof p.bytes), "outside the 8192-byte kvm_run mapping");
}

TEST(KvmCpuid, AHiddenFeatureIsAbsentFromWhatKvmIsGiven) {
  // --cpuid-hide all: KVM_SET_CPUID2 gets the model with the five bits
  // clear, every other bit as the model has it.
  CpuModel m = CpuModel::ttvmDefault();
  for (const CpuidFeature& f : hideableCpuidFeatures()) m = hideFeature(m, f);
  const std::vector<CpuidLeaf> back = fromKvmCpuid(toKvmCpuid(m));
  EXPECT_EQ(back, m.cpuid);
  CpuModel fromKvm = m;
  fromKvm.cpuid = back;
  for (const CpuidFeature& f : hideableCpuidFeatures())
    EXPECT_FALSE(showsFeature(fromKvm, f)) << f.name;
  const CpuidLeaf def1 = CpuModel::ttvmDefault().lookup(1, 0), l1 = fromKvm.lookup(1, 0);
  EXPECT_EQ(l1.ecx, def1.ecx & ~(1u << 30));
  EXPECT_EQ(l1.edx, def1.edx & ~(1u << 4));
}

TEST(KvmMsrFilter, OnlyTheStateMsrsStayInTheKernel) {
  const KvmMsrFilter filter(inKernelMsrs());
  const kvm_msr_filter& f = filter.get();
  EXPECT_EQ(f.flags, uint32_t{KVM_MSR_FILTER_DEFAULT_DENY});
  // Every MSR KVM loads and reads back as CPU state is KVM's, both ways:
  // kOwnedMsrs, EFER and the APIC base, FS/GS base.
  std::vector<uint32_t> state = {0xC0000080, 0x1B, 0xC0000100, 0xC0000101};
  for (const OwnedMsr& m : kOwnedMsrs) state.push_back(m.index);
  for (uint32_t i : state) {
    EXPECT_TRUE(msrFilterAllows(f, i, false)) << hex(i);
    EXPECT_TRUE(msrFilterAllows(f, i, true)) << hex(i);
  }
  // IA32_TSC: written in the kernel (KVM moves its offset), read by ttvm.
  EXPECT_FALSE(msrFilterAllows(f, 0x10, false));
  EXPECT_TRUE(msrFilterAllows(f, 0x10, true));
  // What KVM answers from its own defaults or the host leaves it: the
  // microcode revision, machine check, TSC deadline, the platform ID, and
  // MSRs neither knows.
  for (uint32_t i : {0x8Bu, 0x17u, 0x179u, 0x17Au, 0x6E0u, 0xCEu, 0xE7u, 0x3Au, 0x12345678u}) {
    EXPECT_FALSE(msrFilterAllows(f, i, false)) << hex(i);
    EXPECT_FALSE(msrFilterAllows(f, i, true)) << hex(i);
  }
  // Neighbours of the allowed ranges are not allowed (the bitmaps are exact).
  for (uint32_t i :
       {0x173u, 0x177u, 0x1Au, 0x1Cu, 0xC000007Fu, 0xC0000085u, 0xC00000FFu, 0xC0000104u})
    EXPECT_FALSE(msrFilterAllows(f, i, false)) << hex(i);
  // x2APIC MSRs are never filtered: without an in-kernel LAPIC KVM refuses
  // them, and that exits too (reason INVAL).
  EXPECT_TRUE(msrFilterAllows(f, 0x830, false));
  // The layout KVM reads: a range per entry, its bitmap one bit per MSR.
  size_t ranges = 0;
  for (const kvm_msr_filter_range& r : f.ranges) {
    if (r.bitmap == nullptr) {
      EXPECT_EQ(r.nmsrs, 0u);
      continue;
    }
    ++ranges;
    EXPECT_NE(r.flags & (KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE), 0u);
    for (uint32_t k = 0; k < r.nmsrs; ++k) EXPECT_TRUE((r.bitmap[k / 8] >> (k % 8)) & 1);
  }
  EXPECT_EQ(ranges, inKernelMsrs().size());
  EXPECT_LE(ranges, size_t{KVM_MSR_FILTER_MAX_RANGES});
}

TEST(KvmExit, MsrReadsAndWritesAreAnsweredInTheRunPage) {
  alignas(4096) static uint8_t page[4096];
  std::memset(page, 0, sizeof page);
  auto& run = *reinterpret_cast<kvm_run*>(page);
  run.exit_reason = KVM_EXIT_X86_RDMSR;
  run.msr.index = 0x8B;
  run.msr.reason = KVM_MSR_EXIT_REASON_FILTER;
  run.msr.data = 0xDEAD;  // whatever KVM left there: not a written value
  VcpuExit e = decodeExit(run, sizeof page);
  ASSERT_EQ(e.kind, ExitKind::kMsr);
  EXPECT_FALSE(e.msr.write);
  EXPECT_EQ(e.msr.index, 0x8Bu);
  EXPECT_EQ(e.msr.value, 0u);
  EXPECT_EQ(describe(e), "rdmsr 0x8b (filter)");
  answerMsrExit(run, 0x2100000000ull);
  EXPECT_EQ(run.msr.error, 0);
  EXPECT_EQ(run.msr.data, 0x2100000000ull);
  answerMsrExit(run, std::nullopt);  // #GP
  EXPECT_EQ(run.msr.error, 1);

  run.exit_reason = KVM_EXIT_X86_WRMSR;
  run.msr.index = 0x830;
  run.msr.reason = KVM_MSR_EXIT_REASON_INVAL;
  run.msr.data = 0x4000000FEull;
  e = decodeExit(run, sizeof page);
  ASSERT_EQ(e.kind, ExitKind::kMsr);
  EXPECT_TRUE(e.msr.write);
  EXPECT_EQ(e.msr.value, 0x4000000FEull);
  EXPECT_EQ(describe(e), "wrmsr 0x830 value 0x4000000fe (refused by KVM)");
  answerMsrExit(run, 0);
  EXPECT_EQ(run.msr.error, 0);
  EXPECT_EQ(run.msr.data, 0x4000000FEull);  // a write's data is not touched
}

}  // namespace
}  // namespace ttvm::kvm
