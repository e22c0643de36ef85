// The CPU models `ttvm record --cpu-model` offers (emulator/cpu_models.h):
// what each tells the guest, that none advertises a feature the emulator
// lacks, fromHost() on simulated hosts of both vendors, the vendors' rules for
// leaves above the maximum, the text form of a host's table, and what the
// emulator enforces from the model (RDTSCP, x2APIC, LZCNT decoding).
#include <cpuid.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <tuple>

#include "cpu_harness.h"
#include "ttvm/emulator/cpu_models.h"

namespace ttvm::cputest {
namespace {

uint32_t str4(const char* s) {
  uint32_t v = 0;
  std::memcpy(&v, s, 4);
  return v;
}

// A host table as readHostCpuid() returns it, of `vendor` with every
// feature bit set (so fromHost keeps exactly ttvm's) unless `features`.
std::vector<CpuidLeaf> fakeHost(const char* vendor, uint32_t signature, const char* brand,
                                uint32_t features = ~0u) {
  std::vector<CpuidLeaf> t;
  t.push_back({0, 0, false, 0x16, str4(vendor), str4(vendor + 8), str4(vendor + 4)});
  t.push_back({1, 0, false, signature, 0x12345678, features, features});
  t.push_back({7, 0, true, 0, features, features, features});
  t.push_back({0x80000000u, 0, false, 0x80000008u, 0, 0, 0});
  t.push_back({0x80000001u, 0, false, 0, 0, features, features});
  char b[48] = {};
  std::memcpy(b, brand, std::min<size_t>(std::strlen(brand), 48));
  for (uint32_t k = 0; k < 3; ++k)
    t.push_back({0x80000002u + k, 0, false, str4(b + 16 * k), str4(b + 16 * k + 4),
                 str4(b + 16 * k + 8), str4(b + 16 * k + 12)});
  return t;
}

// The harness's machine with the CPU of `model` instead of ttvmDefault()'s.
struct ModelMachine : Machine {
  explicit ModelMachine(const CpuModel& model) {
    PhysicalMemory mem;
    mem.ram = std::span<uint8_t>(ram.data(), ram.size());
    cpu = std::make_unique<Cpu>(model, mem, env);
  }
};

// Every feature register of `m` holds only bits ttvmDefault() has.
void expectFeaturesWithinTtvm(const CpuModel& m) {
  const CpuModel t = CpuModel::ttvmDefault();
  for (uint32_t leaf : {1u, 7u, 0x80000001u}) {
    const CpuidLeaf a = m.lookup(leaf, 0), b = t.lookup(leaf, 0);
    EXPECT_EQ(a.ecx & ~b.ecx, 0u) << m.name << " leaf " << std::hex << leaf;
    EXPECT_EQ(a.edx & ~b.edx, 0u) << m.name << " leaf " << std::hex << leaf;
    if (leaf == 7) {
      EXPECT_EQ(a.ebx & ~b.ebx, 0u) << m.name;
    }
  }
  // Structural leaves are ttvm's machine, whatever the model.
  EXPECT_EQ(m.lookup(0, 0).eax, t.lookup(0, 0).eax);
  EXPECT_EQ(m.lookup(1, 0).ebx, t.lookup(1, 0).ebx);
  EXPECT_EQ(m.lookup(0x80000008u, 0), t.lookup(0x80000008u, 0));
  EXPECT_EQ(m.tscFrequencyHz, t.tscFrequencyHz);
}

std::string brandOf(const CpuModel& m) {
  char b[49] = {};
  for (uint32_t k = 0; k < 3; ++k) {
    const CpuidLeaf l = m.lookup(0x80000002u + k, 0);
    std::memcpy(b + 16 * k, &l.eax, 4);
    std::memcpy(b + 16 * k + 4, &l.ebx, 4);
    std::memcpy(b + 16 * k + 8, &l.ecx, 4);
    std::memcpy(b + 16 * k + 12, &l.edx, 4);
  }
  return b;
}

TEST(CpuModel, BaselineIsX8664V1) {
  const CpuModel b = baselineCpuModel();
  expectFeaturesWithinTtvm(b);
  EXPECT_EQ(cpuVendorString(b), "GenuineIntel");
  EXPECT_EQ(b.vendor, CpuVendor::kIntel);
  // psABI x86-64-v1: CMOV, CX8, FPU, FXSR, MMX, SSE, SSE2, SYSCALL, plus LM.
  const uint32_t v1edx =
      (1u << 15) | (1u << 8) | (1u << 0) | (1u << 24) | (1u << 23) | (1u << 25) | (1u << 26);
  EXPECT_EQ(b.lookup(1, 0).edx & v1edx, v1edx);
  EXPECT_EQ(b.lookup(1, 0).ecx, 0u);  // no SSE3 or later, no CX16, POPCNT, x2APIC, RDRAND
  EXPECT_EQ(b.lookup(7, 0).ebx, 0u);
  EXPECT_EQ(b.lookup(0x80000001u, 0).ecx, 0u);
  EXPECT_EQ(b.lookup(0x80000001u, 0).edx, (1u << 11) | (1u << 20) | (1u << 29));
  EXPECT_EQ(brandOf(b).rfind("ttvm x86-64-v1 baseline", 0), 0u);
  EXPECT_NE(b, CpuModel::ttvmDefault());
  EXPECT_NE(b.name, CpuModel::ttvmDefault().name);
}

TEST(CpuModel, FromHostTakesTheHostsIdentityAndOnlyTtvmsFeatures) {
  const CpuModel amd =
      hostCpuModel(fakeHost("AuthenticAMD", 0x00A20F12, "AMD Ryzen 9 5950X 16-Core Processor  "));
  EXPECT_EQ(amd.vendor, CpuVendor::kAmd);
  EXPECT_EQ(cpuVendorString(amd), "AuthenticAMD");
  EXPECT_EQ(amd.lookup(1, 0).eax, 0x00A20F12u);
  EXPECT_EQ(brandOf(amd).rfind("AMD Ryzen 9 5950X 16-Core Processor", 0), 0u);
  EXPECT_NE(amd.name.find("AuthenticAMD family 25 model 33 stepping 2"), std::string::npos)
      << amd.name;
  // A host with every bit keeps exactly ttvm's features.
  const CpuModel t = CpuModel::ttvmDefault();
  for (uint32_t leaf : {1u, 7u, 0x80000001u}) {
    EXPECT_EQ(amd.lookup(leaf, 0).ecx, t.lookup(leaf, 0).ecx);
    EXPECT_EQ(amd.lookup(leaf, 0).edx, t.lookup(leaf, 0).edx);
  }
  expectFeaturesWithinTtvm(amd);

  const CpuModel intel =
      hostCpuModel(fakeHost("GenuineIntel", 0x000506E3, "Intel(R) Core(TM) i7-6700"));
  EXPECT_EQ(intel.vendor, CpuVendor::kIntel);
  EXPECT_NE(intel, amd);
  EXPECT_NE(intel.name.find("GenuineIntel family 6 model 94 stepping 3"), std::string::npos);

  // Random host feature sets: the result is exactly the intersection.
  std::mt19937 rng(7);
  for (int k = 0; k < 200; ++k) {
    const uint32_t f = rng();
    const CpuModel h = hostCpuModel(fakeHost("GenuineIntel", 0x306A9, "x", f));
    expectFeaturesWithinTtvm(h);
    for (uint32_t leaf : {1u, 0x80000001u}) {
      ASSERT_EQ(h.lookup(leaf, 0).ecx, t.lookup(leaf, 0).ecx & f);
      ASSERT_EQ(h.lookup(leaf, 0).edx, t.lookup(leaf, 0).edx & f);
    }
    ASSERT_EQ(h.lookup(7, 0).ebx, t.lookup(7, 0).ebx & f);
  }
  // A host without leaf 7 or the extended leaves has none of their features.
  std::vector<CpuidLeaf> bare = fakeHost("GenuineIntel", 0x306A9, "");
  bare.resize(2);
  const CpuModel b = hostCpuModel(bare);
  EXPECT_EQ(b.lookup(7, 0).ebx, 0u);
  EXPECT_EQ(b.lookup(0x80000001u, 0).edx, 0u);
  EXPECT_EQ(brandOf(b), brandOf(t));  // no host brand: ttvm's stays
}

TEST(CpuModel, HostModelOfThisMachineNamesItsVendor) {
  unsigned a, b, c, d;
  __cpuid(0, a, b, c, d);
  char vendor[13] = {};
  std::memcpy(vendor, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &c, 4);
  const CpuModel h = hostCpuModel(readHostCpuid());
  EXPECT_EQ(cpuVendorString(h), vendor);
  __cpuid(1, a, b, c, d);
  EXPECT_EQ(h.lookup(1, 0).eax, a & 0x0FFF3FFFu);
  EXPECT_EQ(h.lookup(1, 0).ecx, CpuModel::ttvmDefault().lookup(1, 0).ecx & c);
  expectFeaturesWithinTtvm(h);
}

TEST(CpuModel, LeavesAboveTheMaximumFollowTheVendor) {
  const CpuModel intel = CpuModel::ttvmDefault();
  const CpuidLeaf top = intel.lookup(7, 0);
  const CpuidLeaf i = intel.lookup(0x1234, 0);
  EXPECT_EQ(i.ebx, top.ebx);  // Intel: the highest basic leaf's values
  EXPECT_EQ(i.eax, top.eax);
  const CpuModel amd = hostCpuModel(fakeHost("AuthenticAMD", 0xA20F12, "r"));
  const CpuidLeaf a = amd.lookup(0x1234, 0);
  EXPECT_EQ(a.eax | a.ebx | a.ecx | a.edx, 0u);  // AMD: zeros
  EXPECT_NE(amd.lookup(7, 0).ebx, 0u);
  const CpuidLeaf e = amd.lookup(0x80000009u, 0);
  EXPECT_EQ(e.eax | e.ebx | e.ecx | e.edx, 0u);
}

TEST(CpuModel, NamedModelsAndAnUnknownNameListsThem) {
  int hostReads = 0;
  auto host = [&]() -> Result<std::vector<CpuidLeaf>> {
    ++hostReads;
    return fakeHost("AuthenticAMD", 0xA20F12, "fake");
  };
  EXPECT_EQ(*cpuModelNamed("ttvm", host), CpuModel::ttvmDefault());
  EXPECT_EQ(*cpuModelNamed("baseline", host), baselineCpuModel());
  EXPECT_EQ(hostReads, 0);  // only "host" reads the host
  EXPECT_EQ(cpuVendorString(*cpuModelNamed("host", host)), "AuthenticAMD");
  EXPECT_EQ(hostReads, 1);
  const Result<CpuModel> bad = cpuModelNamed("pentium", host);
  ASSERT_FALSE(bad.ok());
  const std::string& msg = bad.error().message;
  EXPECT_NE(msg.find("unknown CPU model 'pentium'"), std::string::npos) << msg;
  for (const CpuModelChoice& c : kCpuModelChoices)
    EXPECT_NE(msg.find(std::string(c.name) + ": "), std::string::npos) << msg;
  const Result<CpuModel> failed = cpuModelNamed(
      "host", []() -> Result<std::vector<CpuidLeaf>> { return makeError("no host table"); });
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().message, "no host table");
}

TEST(CpuModel, CpuidTableTextRoundTripsAndErrorsNameTheLine) {
  auto t = parseCpuidTable(
      "# a host\n0 0 0x16 0x68747541 0x444d4163 0x69746e65\n\n7 0 0 219c07ab 0 0  # leaf 7\n",
      "amd.txt");
  ASSERT_TRUE(t.ok()) << t.error().message;
  ASSERT_EQ(t->size(), 2u);
  EXPECT_EQ((*t)[0], (CpuidLeaf{0, 0, false, 0x16, 0x68747541, 0x444d4163, 0x69746e65}));
  EXPECT_EQ((*t)[1], (CpuidLeaf{7, 0, true, 0, 0x219c07ab, 0, 0}));
  EXPECT_EQ(cpuVendorString(hostCpuModel(*t)), "AuthenticAMD");
  auto bad = parseCpuidTable("0 0 1 2 3 4\n1 0 zz 2 3 4\n", "f.txt");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("f.txt: line 2"), std::string::npos) << bad.error().message;
  auto shortLine = parseCpuidTable("1 0 2 3\n", "g.txt");
  ASSERT_FALSE(shortLine.ok());
  EXPECT_NE(shortLine.error().message.find("g.txt: line 1: expected 6 hex numbers"),
            std::string::npos);
  EXPECT_FALSE(parseCpuidTable("# nothing\n", "e.txt").ok());
}

// What the emulator enforces from the model, beside CPUID itself.
// PUSH Sreg with a 32- or 64-bit operand size: an Intel-behaving model
// writes the selector's 16 bits and keeps the rest of the slot, an
// AMD-behaving one (a KVM recording on an AMD host) the zero-extended
// selector; RSP moves by the operand size in both.
TEST(CpuModel, PushSegmentFollowsTheModelsVendorChoice) {
  for (const bool amd : {false, true}) {
    SCOPED_TRACE(amd ? "zero-extends" : "16-bit write");
    CpuModel model = CpuModel::ttvmDefault();
    model.pushSegmentZeroExtends = amd;
    {
      ModelMachine m(model);
      m.setupFlat32(layout::kCode);
      m.loadHex(layout::kCode, "1e");  // push ds (32-bit operand size)
      m.edit([](CpuState& s) { s.reg(Gpr::kRsp) = 0x8000; });
      m.put(0x7FFC, 0xAAAAAAAA, 4);
      const uint16_t ds = m.state().segment(SegReg::kDs).selector;
      ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
      EXPECT_EQ(m.state().reg(Gpr::kRsp), 0x7FFCu);
      EXPECT_EQ(m.get(0x7FFC, 4), amd ? uint64_t{ds} : 0xAAAA0000u | ds);
    }
    {
      ModelMachine m(model);
      m.setupLong64(layout::kCode);
      m.loadHex(layout::kCode, "0f a0");  // push fs (64-bit operand size)
      m.edit([](CpuState& s) { s.reg(Gpr::kRsp) = 0x8000; });
      m.put(0x7FF8, 0xBBBBBBBBBBBBBBBBull, 8);
      const uint16_t fs = m.state().segment(SegReg::kFs).selector;
      ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
      EXPECT_EQ(m.state().reg(Gpr::kRsp), 0x7FF8u);
      EXPECT_EQ(m.get(0x7FF8, 8), amd ? uint64_t{fs} : 0xBBBBBBBBBBBB0000ull | fs);
    }
  }
}

// SYSRET, SDM vol. 2B "SYSRET" (the Intel model) against AMD APM vol. 3
// "SYSRET" (sysretSkipsRipCheckAndSsCache), case by case of the APM's
// pseudo-code. The model with the choice set, and the one without.
CpuModel sysretModel(bool apm) {
  CpuModel model = CpuModel::ttvmDefault();
  model.sysretSkipsRipCheckAndSsCache = apm;
  return model;
}

constexpr uint64_t kSysretHandler = layout::kCode + 0x800;
constexpr uint64_t kNonCanonical = 0x0000800000000000ull;

// The step `r` delivered #GP(0) to kSysretHandler at CPL 0, its 64-bit frame
// (error code, RIP, CS, RFLAGS, RSP, SS) ending at `top`.
void expectGp0Frame(const ModelMachine& m, const StepResult& r, uint64_t top, uint64_t rip,
                    uint64_t cs, uint64_t rsp, uint64_t ss) {
  ASSERT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(r.vector, 13);
  EXPECT_EQ(r.errorCode, 0u);
  const CpuState k = m.state();
  EXPECT_EQ(k.rip, kSysretHandler);
  EXPECT_EQ(currentPrivilegeLevel(k), 0);
  ASSERT_EQ(k.reg(Gpr::kRsp), top - 48);
  EXPECT_EQ(m.get(top - 48, 8), 0u);
  EXPECT_EQ(m.get(top - 40, 8), rip);
  EXPECT_EQ(m.get(top - 32, 8), cs);
  EXPECT_EQ(m.get(top - 16, 8), rsp);
  EXPECT_EQ(m.get(top - 8, 8), ss);
}

// SYSRETQ to a non-canonical RCX: Intel raises #GP(0) on the SYSRET, at CPL 0
// on the stack it ran with; AMD loads it, returns to CPL 3 and the fetch
// there raises #GP(0) with that RIP, delivered through the TSS's RSP0.
TEST(CpuModel, SysretToANonCanonicalRcxFaultsWhereTheModelSays) {
  for (const bool apm : {false, true}) {
    SCOPED_TRACE(apm ? "APM" : "SDM");
    ModelMachine m(sysretModel(apm));
    m.setupLong64(layout::kCode);
    m.setAllIdt64(kSysretHandler);
    m.loadHex(layout::kCode, "48 0f 07");  // o64 sysret
    m.loadHex(kSysretHandler, "f4");
    constexpr uint64_t kUserRsp = 0x50000;
    m.edit([](CpuState& s) {
      s.msr.star = uint64_t{layout::kUserCode32} << 48;
      s.reg(Gpr::kRcx) = kNonCanonical;
      s.reg(Gpr::kR11) = flags::kFixed1 | flags::kIF;
      s.reg(Gpr::kRsp) = kUserRsp;
    });
    StepResult r = m.step();
    if (!apm) {
      // No privilege change: the frame is on the user's RSP, the kernel's CS.
      expectGp0Frame(m, r, kUserRsp, layout::kCode, layout::kCode64, kUserRsp, layout::kData0);
      continue;
    }
    ASSERT_EQ(r.outcome, StepOutcome::kRetired);
    const CpuState u = m.state();
    EXPECT_EQ(u.rip, kNonCanonical);
    EXPECT_EQ(u.segment(SegReg::kCs).selector, layout::kUserCode64 | 3);
    EXPECT_EQ(u.segment(SegReg::kSs).selector, layout::kUserData | 3);
    EXPECT_EQ(currentPrivilegeLevel(u), 3);
    EXPECT_EQ(cpuMode(u), CpuMode::kLong64);
    EXPECT_EQ(u.rflags, flags::kFixed1 | flags::kIF);
    expectGp0Frame(m, m.step(), layout::kRsp0, kNonCanonical, layout::kUserCode64 | 3, kUserRsp,
                   layout::kUserData | 3);
  }
}

// SS after SYSRET: Intel loads a flat DPL-3 data segment's hidden parts; AMD
// loads the selector only and keeps base, limit and attributes (APM: "SS
// base, limit, attributes unchanged"), the DPL made the CPL's, as KVM reports
// it. A 16-bit SS with a base survives SYSRETQ; an unusable SS (what an
// interrupt from CPL 3 leaves) survives SYSRETL into compatibility mode,
// where the next push raises #SS(0) (Linux's X86_BUG_SYSRET_SS_ATTRS).
TEST(CpuModel, SysretLoadsOrKeepsSsAsTheModelSays) {
  const SegmentRegister flatUser{layout::kUserData | 3, 0, 0xFFFFFFFF,
                                 0xF3 | segattr::kG | segattr::kDB};
  for (const bool apm : {false, true}) {
    SCOPED_TRACE(apm ? "APM" : "SDM");
    {
      ModelMachine m(sysretModel(apm));
      m.setupLong64(layout::kCode);
      m.loadHex(layout::kCode, "48 0f 07");  // o64 sysret
      const SegmentRegister ss16{layout::kData16, 0x1230, 0xFFFF, 0x93};
      m.edit([&](CpuState& s) {
        s.msr.star = uint64_t{layout::kUserCode32} << 48;
        s.reg(Gpr::kRcx) = layout::kCode + 0x40;
        s.reg(Gpr::kR11) = flags::kFixed1;
        s.segment(SegReg::kSs) = ss16;
      });
      ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
      const SegmentRegister kept{layout::kUserData | 3, 0x1230, 0xFFFF, 0xF3};
      EXPECT_EQ(m.state().segment(SegReg::kSs), apm ? kept : flatUser);
    }
    {
      ModelMachine m(sysretModel(apm));
      m.setupLong64(layout::kCode);
      m.setAllIdt64(kSysretHandler);
      m.loadHex(layout::kCode, "0f 07");      // sysret (32-bit operand size)
      m.loadHex(layout::kCode + 0x40, "50");  // push eax
      m.loadHex(kSysretHandler, "f4");
      m.edit([](CpuState& s) {
        s.msr.star = uint64_t{layout::kUserCode32} << 48;
        s.reg(Gpr::kRcx) = layout::kCode + 0x40;
        s.reg(Gpr::kR11) = flags::kFixed1;
        s.reg(Gpr::kRsp) = 0x50000;
        s.segment(SegReg::kSs) = SegmentRegister{0, 0, 0, segattr::kUnusable};
      });
      ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
      EXPECT_EQ(cpuMode(m.state()), CpuMode::kCompatibility32);
      const SegmentRegister unusable{layout::kUserData | 3, 0, 0, segattr::kUnusable | 0x60};
      EXPECT_EQ(m.state().segment(SegReg::kSs), apm ? unusable : flatUser);
      const StepResult r = m.step();
      if (apm) {
        ASSERT_EQ(r.outcome, StepOutcome::kException);
        EXPECT_EQ(r.vector, 12);
        EXPECT_EQ(r.errorCode, 0u);
        EXPECT_EQ(m.get(layout::kRsp0 - 40, 8), layout::kCode + 0x40);  // the push
      } else {
        ASSERT_EQ(r.outcome, StepOutcome::kRetired);
        EXPECT_EQ(m.state().reg(Gpr::kRsp), 0x50000u - 4);
      }
    }
  }
}

// Outside 64-bit mode: SYSRET is #UD on Intel; AMD's SYSRET_NON_64BIT_MODE
// returns to flat 32-bit code at CPL 3 (CS = STAR[63:48] | 3, EIP = ECX),
// sets IF and leaves the other flags (R11 is not read), from legacy
// protected mode and from compatibility mode alike. Both raise #UD with
// EFER.SCE clear and #GP(0) at CPL 3. (In real and virtual-8086 mode the
// decoder knows no SYSRET: #UD, where AMD raises #GP(0); not modelled.)
TEST(CpuModel, SysretOutside64BitModeFollowsTheModelsVendorChoice) {
  constexpr uint64_t kFlags = flags::kFixed1 | flags::kCF | flags::kDF;
  for (const bool apm : {false, true}) {
    SCOPED_TRACE(apm ? "APM" : "SDM");
    for (const bool compat : {false, true}) {
      SCOPED_TRACE(compat ? "compatibility mode" : "legacy protected mode");
      ModelMachine m(sysretModel(apm));
      if (compat) {
        m.setupLong64(layout::kCode);
        m.enterCompat32();
        m.setAllIdt64(kSysretHandler);
      } else {
        m.setupFlat32(layout::kCode);
        m.setIdt32(6, kSysretHandler);
      }
      m.loadHex(layout::kCode, "0f 07");
      const SegmentRegister ssBefore = m.state().segment(SegReg::kSs);
      m.edit([](CpuState& s) {
        s.msr.efer |= efer::kSCE;
        s.msr.star = uint64_t{0x1B} << 48;  // an RPL-3 selector: SS = 0x23
        s.reg(Gpr::kRcx) = 0xABCD000000401000ull;
        s.reg(Gpr::kR11) = flags::kFixed1 | flags::kZF;
        s.rflags = kFlags;
      });
      const StepResult r = m.step();
      if (!apm) {
        ASSERT_EQ(r.outcome, StepOutcome::kException);
        EXPECT_EQ(r.vector, 6);
        continue;
      }
      ASSERT_EQ(r.outcome, StepOutcome::kRetired);
      const CpuState u = m.state();
      EXPECT_EQ(u.rip, 0x401000u);
      EXPECT_EQ(u.rflags, kFlags | flags::kIF);
      EXPECT_EQ(u.segment(SegReg::kCs),
                (SegmentRegister{0x1B, 0, 0xFFFFFFFF, 0xFB | segattr::kG | segattr::kDB}));
      SegmentRegister ss = ssBefore;
      ss.selector = 0x23;
      ss.attributes |= 0x60;
      EXPECT_EQ(u.segment(SegReg::kSs), ss);
      EXPECT_EQ(currentPrivilegeLevel(u), 3);
      EXPECT_EQ(cpuMode(u), compat ? CpuMode::kCompatibility32 : CpuMode::kProtected32);
    }
    {
      ModelMachine m(sysretModel(apm));
      m.setupLong64(layout::kCode);
      m.setAllIdt64(kSysretHandler);
      m.loadHex(layout::kCode, "48 0f 07");
      m.enterUser64();
      StepResult r = m.step();
      ASSERT_EQ(r.outcome, StepOutcome::kException);
      EXPECT_EQ(r.vector, 13);
      m.setupLong64(layout::kCode);
      m.setAllIdt64(kSysretHandler);
      m.edit([](CpuState& s) { s.msr.efer &= ~efer::kSCE; });
      r = m.step();
      ASSERT_EQ(r.outcome, StepOutcome::kException);
      EXPECT_EQ(r.vector, 6);
    }
  }
}

// behaveAsHost takes the vendor choices from the host's CPUID vendor and
// leaves what the model's CPUID shows alone but for ttvm's leaves, which
// declare the choices to the guest; the host model does the same.
TEST(CpuModel, BehaveAsHostFollowsTheHostsVendor) {
  CpuModel m = CpuModel::ttvmDefault();
  behaveAsHost(m, fakeHost("AuthenticAMD", 0x00A20F12, "AMD"));
  EXPECT_TRUE(m.pushSegmentZeroExtends);
  EXPECT_TRUE(m.sysretSkipsRipCheckAndSsCache);
  std::vector<CpuidLeaf> declared = CpuModel::ttvmDefault().cpuid;
  declared.push_back({0x40000000u, 0, false, 0x40000001u, 0x4D565454, 0x4D565454, 0x4D565454});
  declared.push_back({0x40000001u, 0, false, 3, 0, 0, 0});
  EXPECT_EQ(m.cpuid, declared);
  EXPECT_EQ(m.vendor, CpuVendor::kIntel);
  behaveAsHost(m, fakeHost("HygonGenuine", 0x00900F01, "Hygon"));
  EXPECT_TRUE(m.pushSegmentZeroExtends);
  EXPECT_TRUE(m.sysretSkipsRipCheckAndSsCache);
  EXPECT_EQ(m.cpuid, declared);  // declared once
  behaveAsHost(m, fakeHost("GenuineIntel", 0x000506E3, "Intel"));
  EXPECT_FALSE(m.pushSegmentZeroExtends);
  EXPECT_FALSE(m.sysretSkipsRipCheckAndSsCache);
  EXPECT_EQ(m, CpuModel::ttvmDefault());
  const CpuModel amdHost = hostCpuModel(fakeHost("AuthenticAMD", 0x00A20F12, "AMD"));
  EXPECT_TRUE(amdHost.pushSegmentZeroExtends);
  EXPECT_TRUE(amdHost.sysretSkipsRipCheckAndSsCache);
  EXPECT_EQ(amdHost.lookup(0x40000001u, 0).eax, 3u);
  const CpuModel intelHost = hostCpuModel(fakeHost("GenuineIntel", 0x000506E3, "Intel"));
  EXPECT_FALSE(intelHost.pushSegmentZeroExtends);
  EXPECT_FALSE(intelHost.sysretSkipsRipCheckAndSsCache);
}

// The hypervisor leaves answer as KVM answers a guest given them: an entry up
// to the EAX of its group's first leaf; beyond it, or without that leaf, the
// vendor's rule for a leaf out of range (Intel: the highest basic leaf).
TEST(CpuModel, TtvmLeavesAnswerInTheHypervisorRange) {
  CpuModel m = CpuModel::ttvmDefault();
  const CpuidLeaf highest = m.lookup(7, 0);
  for (uint32_t leaf : {0x40000000u, 0x40000001u, 0x40000100u, 0x4FFFFFFFu, 0x7FFFFFFFu}) {
    const CpuidLeaf l = m.lookup(leaf, 0);
    EXPECT_EQ(std::make_tuple(l.eax, l.ebx, l.ecx, l.edx),
              std::make_tuple(highest.eax, highest.ebx, highest.ecx, highest.edx))
        << std::hex << leaf;
  }
  behaveAsHost(m, fakeHost("AuthenticAMD", 0x00A20F12, "AMD"));
  const CpuidLeaf sig = m.lookup(0x40000000u, 0);
  char text[13] = {};
  std::memcpy(text, &sig.ebx, 4);
  std::memcpy(text + 4, &sig.ecx, 4);
  std::memcpy(text + 8, &sig.edx, 4);
  EXPECT_STREQ(text, "TTVMTTVMTTVM");
  EXPECT_EQ(sig.eax, 0x40000001u);
  EXPECT_EQ(m.lookup(0x40000001u, 0).eax,
            kVendorChoicePushSegmentZeroExtends | kVendorChoiceSysretApm);
  EXPECT_EQ(m.lookup(0x40000002u, 0).ebx, highest.ebx);  // beyond 0x40000001
  // An AMD-vendor model answers its own leaves too, zeros beyond them.
  CpuModel amd = hostCpuModel(fakeHost("AuthenticAMD", 0x00A20F12, "AMD"));
  EXPECT_EQ(amd.lookup(0x40000000u, 0).ebx, 0x4D565454u);
  EXPECT_EQ(amd.lookup(0x40000002u, 0), (CpuidLeaf{0x40000002u, 0, false, 0, 0, 0, 0}));
}

TEST(CpuModel, TheEmulatorFollowsTheModelsFeatures) {
  for (const CpuModel& model : {CpuModel::ttvmDefault(), baselineCpuModel()}) {
    const bool full = model == CpuModel::ttvmDefault();
    SCOPED_TRACE(model.name);
    ModelMachine m(model);
    m.setupLong64(layout::kCode);
    m.setAllIdt64(layout::kCode + 0x8000);
    m.loadHex(layout::kCode + 0x8000, "f4");
    // cpuid (leaf 1); lzcnt eax, ebx (ebx = 1); rdtscp
    m.loadHex(layout::kCode, "0f a2 f3 0f bd c3 0f 01 f9");
    m.edit([](CpuState& s) { s.reg(Gpr::kRax) = 1; });
    ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
    EXPECT_EQ(m.state().reg(Gpr::kRcx), model.lookup(1, 0).ecx);
    m.edit([](CpuState& s) { s.reg(Gpr::kRbx) = 1; });
    ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
    // LZCNT counts 31 leading zeros; without ABM it is REP BSR: bit 0.
    EXPECT_EQ(m.state().reg(Gpr::kRax) & 0xFFFFFFFF, full ? 31u : 0u);
    const StepResult r = m.step();
    if (full) {
      EXPECT_EQ(r.outcome, StepOutcome::kRetired);
    } else {
      EXPECT_EQ(r.outcome, StepOutcome::kException);
      EXPECT_EQ(int(r.vector), 6);  // #UD: RDTSCP is not in the model
    }
  }
  // IA32_APIC_BASE.EXTD (x2APIC) is reserved where the model lacks x2APIC.
  for (const CpuModel& model : {CpuModel::ttvmDefault(), baselineCpuModel()}) {
    SCOPED_TRACE(model.name);
    ModelMachine m(model);
    m.setupLong64(layout::kCode);
    m.setAllIdt64(layout::kCode + 0x8000);
    m.loadHex(layout::kCode + 0x8000, "f4");
    // mov ecx, 0x1b; mov eax, 0xfee00d00; xor edx, edx; wrmsr
    m.loadHex(layout::kCode, "b9 1b 00 00 00 b8 00 0d e0 fe 31 d2 0f 30");
    m.edit([](CpuState& s) { s.msr.apicBase = 0xFEE00900; });
    ASSERT_EQ(m.run(3).outcome, StepOutcome::kRetired);
    const StepResult r = m.step();
    if (model == CpuModel::ttvmDefault()) {
      EXPECT_EQ(r.outcome, StepOutcome::kRetired);
      EXPECT_EQ(m.state().msr.apicBase, 0xFEE00D00u);
    } else {
      EXPECT_EQ(r.outcome, StepOutcome::kException);
      EXPECT_EQ(int(r.vector), 13);
      EXPECT_EQ(m.state().msr.apicBase, 0xFEE00900u);
    }
  }
}

}  // namespace
}  // namespace ttvm::cputest
