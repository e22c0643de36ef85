// CpuModel's feature hiding (`ttvm record --cpuid-hide`): each hideable
// feature clears exactly its own bit, in the table and in what the CPUID
// instruction returns, and never shows anything the model did not.
#include <gtest/gtest.h>

#include "cpu_harness.h"

namespace ttvm::cputest {
namespace {

uint32_t regOf(const CpuidLeaf& l, char r) {
  return r == 'a' ? l.eax : r == 'b' ? l.ebx : r == 'c' ? l.ecx : l.edx;
}

TEST(CpuModelHide, EachFeatureClearsOnlyItsBit) {
  const CpuModel base = CpuModel::ttvmDefault();
  ASSERT_EQ(hideableCpuidFeatures().size(), 5u);
  for (const CpuidFeature& f : hideableCpuidFeatures()) {
    SCOPED_TRACE(f.name);
    const bool shown = showsFeature(base, f);
    const CpuModel h = hideFeature(base, f);
    EXPECT_FALSE(showsFeature(h, f));
    ASSERT_EQ(h.cpuid.size(), base.cpuid.size());
    for (size_t i = 0; i < base.cpuid.size(); ++i) {
      const CpuidLeaf &a = base.cpuid[i], &b = h.cpuid[i];
      EXPECT_EQ(a.leaf, b.leaf);
      for (char r : {'a', 'b', 'c', 'd'}) {
        const uint32_t was = regOf(a, r), now = regOf(b, r);
        EXPECT_EQ(now & ~was, 0u) << "a bit appeared in leaf " << a.leaf << " " << r;
        const bool ours = a.leaf == f.leaf && r == f.reg;
        EXPECT_EQ(was & ~now, ours && shown ? (1u << f.bit) : 0u)
            << "leaf " << a.leaf << " reg " << r;
      }
    }
    // The name says what the guest was not told, only when something was hidden.
    EXPECT_EQ(h.name, shown ? base.name + " -" + f.name : base.name);
    // Hiding twice changes nothing more.
    EXPECT_EQ(hideFeature(h, f), h);
  }
  // What the default model shows today (the emulator executes all four;
  // RDPID is not implemented, RDSEED not announced).
  EXPECT_TRUE(showsFeature(base, *findCpuidFeature("tsc")));
  EXPECT_TRUE(showsFeature(base, *findCpuidFeature("rdtscp")));
  EXPECT_TRUE(showsFeature(base, *findCpuidFeature("rdrand")));
  EXPECT_FALSE(showsFeature(base, *findCpuidFeature("rdseed")));
  EXPECT_FALSE(showsFeature(base, *findCpuidFeature("rdpid")));
  EXPECT_EQ(findCpuidFeature("avx"), nullptr);
}

TEST(CpuModelHide, TheCpuidInstructionAnswersWithTheHiddenModel) {
  CpuModel model = CpuModel::ttvmDefault();
  for (const char* name : {"tsc", "rdtscp", "rdrand"})
    model = hideFeature(model, *findCpuidFeature(name));
  EXPECT_EQ(model.name, "ttvm-x86-64 v1 -tsc -rdtscp -rdrand");
  Machine m;
  PhysicalMemory mem;
  mem.ram = std::span<uint8_t>(m.ram.data(), m.ram.size());
  m.cpu = std::make_unique<Cpu>(model, mem, m.env);
  m.setupLong64(layout::kCode);
  // Two CPUIDs: leaf 1, then leaf 0x80000001.
  m.loadHex(layout::kCode, "0f a2 0f a2");
  m.edit([](CpuState& s) { s.reg(Gpr::kRax) = 1; });
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  const uint32_t ecx1 = uint32_t(m.state().reg(Gpr::kRcx)),
                 edx1 = uint32_t(m.state().reg(Gpr::kRdx));
  const CpuidLeaf def1 = CpuModel::ttvmDefault().lookup(1, 0);
  EXPECT_EQ(ecx1, def1.ecx & ~(1u << 30));  // RDRAND gone, nothing else
  EXPECT_EQ(edx1, def1.edx & ~(1u << 4));   // TSC gone, nothing else
  m.edit([](CpuState& s) { s.reg(Gpr::kRax) = 0x80000001u; });
  ASSERT_EQ(m.step().outcome, StepOutcome::kRetired);
  EXPECT_EQ(uint32_t(m.state().reg(Gpr::kRdx)),
            CpuModel::ttvmDefault().lookup(0x80000001u, 0).edx & ~(1u << 27));  // RDTSCP gone
}

}  // namespace
}  // namespace ttvm::cputest
