// Checkpoints: saved positions of a replay that share RAM pages.
//
// A checkpoint is a CpuState, the trace position of the replay environment,
// and a PageMap: guest RAM as immutable 4 KiB pages shared by reference
// count between every checkpoint (and the timeline's picture of live RAM)
// that holds the same bytes. A page that no checkpoint changed exists once.
//
// PageMap is persistent and two-level: a vector of groups of 512 page
// pointers (2 MiB of guest RAM each). Copying a map copies the group
// pointers only; changing a page clones its group first when the group is
// shared (copy-on-write). Taking a checkpoint therefore costs O(pages dirtied
// since the last one + RAM/2 MiB), and restoring one costs O(pages that
// differ), found by comparing group pointers, then page pointers.
//
// Zero pages are null pointers. Memory is accounted by PageStats: every page
// and group knows the stats object it was made under and subtracts itself
// when the last reference goes.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "ttvm/emulator/cpu_state.h"
#include "ttvm/machine/machine.h"
#include "ttvm/machine/replay_environment.h"

namespace ttvm {

inline constexpr uint64_t kRamPageBytes = 4096;

// Bytes held by pages and groups made under one store (shared by a timeline).
struct PageStats {
  std::atomic<int64_t> pages{0};
  std::atomic<int64_t> groups{0};
  int64_t bytes() const;
};

struct RamPage {
  std::array<uint8_t, kRamPageBytes> bytes;
};
using RamPagePtr = std::shared_ptr<const RamPage>;

class PageMap {
 public:
  static constexpr size_t kGroupPages = 512;

  PageMap() = default;
  // A map of `pageCount` zero pages whose pages and groups count in `stats`.
  PageMap(uint64_t pageCount, std::shared_ptr<PageStats> stats);

  uint64_t pageCount() const { return pageCount_; }
  const RamPagePtr& get(uint64_t page) const;
  // Replaces a page (null = zero page), cloning its group when shared.
  void set(uint64_t page, RamPagePtr p);
  // A new shared page holding `bytes`, counted in this map's stats.
  RamPagePtr makePage(std::span<const uint8_t> bytes) const;

  // Appends to `out` every page number whose pointer differs between the maps.
  void diff(const PageMap& other, std::vector<uint64_t>& out) const;

 private:
  struct Group {
    std::array<RamPagePtr, kGroupPages> pages;
  };
  std::shared_ptr<Group> makeGroup(const Group* from) const;

  uint64_t pageCount_ = 0;
  std::vector<std::shared_ptr<Group>> groups_;  // null group = all zero pages
  std::shared_ptr<PageStats> stats_;
};

struct Checkpoint {
  CpuState cpu;  // cpu.steps is the checkpoint's position
  machine::EventPosition events;
  PageMap ram;
  machine::Machine::DeviceCheckpoint devices;  // ReplaySession::checkpointDevices()
  uint64_t step() const { return cpu.steps; }
};

}  // namespace ttvm
