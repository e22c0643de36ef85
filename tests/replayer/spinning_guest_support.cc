#include "spinning_guest_support.h"

#include <gtest/gtest.h>

#include <vector>

#include "scripted_trace_support.h"
#include "ttvm/machine/loader.h"
#include "ttvm/machine/machine.h"
#include "ttvm/recorder/record_session.h"

namespace ttvm::testing {

std::string recordSpinningBootSector(const std::string& stem, uint64_t steps) {
  machine::MachineOptions mo;
  mo.ramBytes = 2ull << 20;
  mo.startClockUnixNs = 1'700'000'000'000'000'000;
  mo.nsPerStep = 1000;
  auto m = machine::Machine::create(mo);
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
  if (!m.ok()) return "";
  std::vector<uint8_t> bootSector(512, 0);
  bootSector[0] = 0xEB;  // jmp $
  bootSector[1] = 0xFE;
  bootSector[510] = 0x55;
  bootSector[511] = 0xAA;
  auto guest = machine::loadGuest(**m, bootSector, machine::LoadOptions{});
  EXPECT_TRUE(guest.ok()) << (guest.ok() ? "" : guest.error().message);
  if (!guest.ok()) return "";
  RecordOptions ro;
  ro.tracePath = tempTracePath(stem);
  ro.ttvmVersion = "test";
  ro.maxSteps = steps;
  RecordSession rec(**m, std::move(guest).value(), ro);
  EXPECT_TRUE(rec.start().ok());
  auto recorded = rec.run();
  EXPECT_TRUE(recorded.ok()) << (recorded.ok() ? "" : recorded.error().message);
  if (recorded.ok()) {
    EXPECT_EQ(recorded->end.steps, steps);
  }
  return ro.tracePath;
}

}  // namespace ttvm::testing
