// KvmBackend's host-independent part: which RAM becomes KVM memory slots.
// The backend itself runs on a real /dev/kvm inside the nested VM
// (tests/kvm/record_kvm.sh, ctest -L kvm).
#include "ttvm/recorder/kvm_backend.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace ttvm
