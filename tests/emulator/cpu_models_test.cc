// The CPU models `ttvm record --cpu-model` offers (emulator/cpu_models.h):
// what each tells the guest, that none advertises a feature the emulator
// lacks, fromHost() on simulated hosts of both vendors, the vendors' rules for
// leaves above the maximum, the text form of a host's table, and what the
// emulator enforces from the model (RDTSCP, x2APIC, LZCNT decoding).
#include <cpuid.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>

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

// behaveAsHost takes the vendor choices from the host's CPUID vendor and
// leaves what the model's CPUID shows alone; the host model does the same.
TEST(CpuModel, BehaveAsHostFollowsTheHostsVendor) {
  CpuModel m = CpuModel::ttvmDefault();
  behaveAsHost(m, fakeHost("AuthenticAMD", 0x00A20F12, "AMD"));
  EXPECT_TRUE(m.pushSegmentZeroExtends);
  EXPECT_EQ(m.cpuid, CpuModel::ttvmDefault().cpuid);
  EXPECT_EQ(m.vendor, CpuVendor::kIntel);
  behaveAsHost(m, fakeHost("HygonGenuine", 0x00900F01, "Hygon"));
  EXPECT_TRUE(m.pushSegmentZeroExtends);
  behaveAsHost(m, fakeHost("GenuineIntel", 0x000506E3, "Intel"));
  EXPECT_FALSE(m.pushSegmentZeroExtends);
  EXPECT_EQ(m, CpuModel::ttvmDefault());
  EXPECT_TRUE(hostCpuModel(fakeHost("AuthenticAMD", 0x00A20F12, "AMD")).pushSegmentZeroExtends);
  EXPECT_FALSE(hostCpuModel(fakeHost("GenuineIntel", 0x000506E3, "Intel")).pushSegmentZeroExtends);
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
