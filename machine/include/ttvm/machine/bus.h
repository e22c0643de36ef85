// PortBus and MmioBus: dispatch guest I/O by address range to devices
// (kvmtool's model). Unclaimed ports and addresses read as all-ones and drop
// writes; the first access to each unclaimed port (or 4 KiB MMIO page) is
// reported once on stderr, so nothing is silently ignored.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <string>
#include <unordered_set>
#include <vector>

#include "ttvm/base/result.h"
#include "ttvm/machine/device.h"

namespace ttvm::machine {

class PortBus {
 public:
  PortBus();
  // Claims ports [first, first + count) for `device`. Overlaps are an error.
  Status map(uint16_t first, uint32_t count, PortDevice* device, std::string name);

  uint32_t read(uint16_t port, unsigned size);
  void write(uint16_t port, unsigned size, uint32_t value);

  // The device name claiming `port`, or empty.
  std::string ownerOf(uint16_t port) const;
  // The device claiming `port`, or null.
  PortDevice* deviceAt(uint16_t port) const { return entries_[owner_[port]].device; }
  // Unclaimed accesses seen so far (for tests and the summary).
  uint64_t unclaimedAccesses() const { return unclaimedCount_; }
  // Where to report the first unclaimed access to each port (default stderr;
  // nullptr = silent, for tests that count instead).
  void setReportStream(std::FILE* f) { report_ = f; }

 private:
  struct Entry {
    PortDevice* device;
    std::string name;
  };
  void reportUnclaimed(uint16_t port, bool write);

  std::vector<Entry> entries_;          // index 0 is "unclaimed"
  std::array<uint8_t, 65536> owner_{};  // port -> entries_ index
  std::vector<bool> reported_;          // 65536 bits
  uint64_t unclaimedCount_ = 0;
  std::FILE* report_ = stderr;
};

class MmioBus {
 public:
  // Claims [base, base + length) for `device`. Overlaps are an error.
  Status map(uint64_t base, uint64_t length, MmioDevice* device, std::string name);
  // Claims `length` bytes wherever device->mmioWindow() says, while it says
  // so. Such a window answers before the fixed ranges it may cover, as the
  // CPU's own local APIC answers before anything on the bus.
  Status mapMovable(uint64_t length, MovableMmioDevice* device, std::string name);

  uint64_t read(uint64_t addr, unsigned size);
  void write(uint64_t addr, unsigned size, uint64_t value);

  std::string ownerOf(uint64_t addr) const;
  uint64_t unclaimedAccesses() const { return unclaimedCount_; }
  void setReportStream(std::FILE* f) { report_ = f; }
  std::FILE* reportStream() const { return report_; }

 private:
  struct Range {
    uint64_t base;
    uint64_t length;
    MmioDevice* device;
    std::string name;
  };
  struct Movable {
    uint64_t length;
    MovableMmioDevice* device;
    std::string name;
  };
  // The device answering `addr` (nullptr: unclaimed), `addr`'s offset in its
  // window and the name it was mapped with.
  struct Target {
    MmioDevice* device = nullptr;
    uint64_t offset = 0;
    const std::string* name = nullptr;
  };
  Target find(uint64_t addr) const;
  void reportUnclaimed(uint64_t addr, bool write);

  std::vector<Movable> movable_;  // asked first
  std::vector<Range> ranges_;     // sorted by base, disjoint
  std::unordered_set<uint64_t> reportedPages_;
  uint64_t unclaimedCount_ = 0;
  std::FILE* report_ = stderr;
};

// All-ones of `size` bytes (what an unclaimed read returns).
inline uint64_t allOnes(unsigned size) {
  return size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
}

}  // namespace ttvm::machine
