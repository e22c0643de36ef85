#include "ttvm/machine/state_io.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace ttvm {
using ttvm::machine::DeviceMemory;
using ttvm::machine::StateReader;
using ttvm::machine::StateWriter;
namespace {

TEST(StateIo, BytesWrittenInPlaceEqualABufferOfTheirOwn) {
  // What Machine::saveDevices writes per device: a length-prefixed section.
  // In place (beginBytes/endBytes) it must be byte for byte what bytes()
  // writes from a separate buffer: device digests and checkpoints hold it.
  std::vector<uint8_t> big(70000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 7 + 3);
  auto content = [&](StateWriter& w) {
    w.u8(0xA5);
    w.u32(0x12345678);
    w.bytes(big);
    w.u64(0x0102030405060708ull);
  };
  StateWriter separate;
  separate.u32(2);
  StateWriter inner;
  content(inner);
  separate.bytes(inner.data());
  separate.bytes({});

  StateWriter inPlace;
  inPlace.reserve(16);  // smaller than the content: the marks survive growth
  inPlace.u32(2);
  const size_t first = inPlace.beginBytes();
  content(inPlace);
  inPlace.endBytes(first);
  inPlace.endBytes(inPlace.beginBytes());  // empty
  EXPECT_EQ(inPlace.data(), separate.data());

  StateReader r(inPlace.data());
  EXPECT_EQ(r.u32(), 2u);
  EXPECT_EQ(r.bytes(1 << 20), inner.data());
  EXPECT_TRUE(r.bytes(16).empty());
  EXPECT_EQ(r.remaining(), 0u);
  EXPECT_TRUE(r.status().ok());
}

// DeviceMemory's snapshots against a plain copy: random changes, saves with
// the memory held apart and loads of random earlier saves (some with the
// memory unchanged since) always leave the bytes that were saved, and never
// change a snapshot. A save shares the memory's buffer (no copy) until the
// memory changes; a load shares the snapshot's.
TEST(StateIo, DeviceMemorySnapshotsShareUnchangedContents) {
  DeviceMemory mem(4096);
  struct Saved {
    std::vector<uint8_t> bytes;
    std::vector<DeviceMemory::Snapshot> apart;
    std::vector<uint8_t> contents;
  };
  std::vector<Saved> saved;
  std::mt19937_64 rng(11);
  bool changed = false;
  int shared = 0;
  auto save = [&] {
    StateWriter w;
    std::vector<DeviceMemory::Snapshot> apart;
    w.holdMemoriesApart(&apart);
    const size_t mark = w.beginBytes();
    w.u8(0x5A);
    w.memory(mem);
    w.endBytes(mark);
    EXPECT_EQ(apart.size(), 1u);
    // Only the length is written, and the section counts only that.
    StateWriter plain;
    plain.u32(5);
    plain.u8(0x5A);
    plain.u32(4096);
    EXPECT_EQ(w.data(), plain.data());
    EXPECT_EQ(apart[0].bytes->data(), mem.bytes().data());  // shared, not copied
    EXPECT_EQ(apart[0].version, mem.version());
    if (!saved.empty()) {
      const bool same = apart[0].bytes == saved.back().apart[0].bytes;
      EXPECT_EQ(same, !changed);
      shared += same ? 1 : 0;
    }
    changed = false;
    saved.push_back({w.take(), apart, {mem.bytes().begin(), mem.bytes().end()}});
  };
  save();
  for (int i = 0; i < 2000; ++i) {
    switch (rng() % 3) {
      case 0: {
        std::span<uint8_t> b = mem.change();
        b[rng() % b.size()] = static_cast<uint8_t>(rng());
        changed = true;
        break;
      }
      case 1: save(); break;
      default: {
        const Saved& s = saved[rng() % saved.size()];
        StateReader r(s.bytes);
        const std::span<const uint8_t> section = r.view(1 << 20);
        StateReader sr(section);
        sr.takeMemoriesFrom(s.apart);
        EXPECT_EQ(sr.u8(), 0x5A);
        sr.memory(mem);
        ASSERT_TRUE(sr.status().ok()) << sr.status().error().message;
        EXPECT_EQ(sr.remaining(), 0u);
        EXPECT_EQ(sr.memoriesUsed(), 1u);
        ASSERT_TRUE(std::equal(mem.bytes().begin(), mem.bytes().end(), s.contents.begin()))
            << "step " << i;
        EXPECT_EQ(mem.version(), s.apart[0].version);
        EXPECT_EQ(mem.bytes().data(), s.apart[0].bytes->data());  // shared, not copied
        changed = saved.back().apart[0].bytes.get() != s.apart[0].bytes.get();
      }
    }
  }
  EXPECT_GT(shared, 100);
  // No snapshot changed with the memory.
  for (const Saved& s : saved) ASSERT_EQ(*s.apart[0].bytes, s.contents);
  // Loaded in full (bytes()): copied, under a version no save has used,
  // into a buffer of its own: the snapshot it held before stays as it was.
  const Saved& first = saved.front();
  const Saved& last = saved.back();
  const DeviceMemory::Snapshot held = mem.snapshot();
  const std::vector<uint8_t> heldBytes = *held.bytes;
  StateWriter full;
  full.u8(0x5A);
  full.bytes(first.contents);
  StateReader r(full.data());
  r.u8();
  r.memory(mem);
  ASSERT_TRUE(r.status().ok());
  EXPECT_TRUE(std::equal(mem.bytes().begin(), mem.bytes().end(), first.contents.begin()));
  for (const Saved& s : saved) EXPECT_NE(mem.version(), s.apart[0].version);
  EXPECT_EQ(*held.bytes, heldBytes);
  EXPECT_NE(mem.bytes().data(), held.bytes->data());
  // A memory of another size is refused, held apart or not; so is a memory
  // where no more snapshots are given.
  DeviceMemory small(16);
  StateReader q(full.data());
  q.u8();
  q.memory(small);
  EXPECT_FALSE(q.status().ok());
  StateReader p(last.bytes);
  p.takeMemoriesFrom(last.apart);
  p.u32();
  p.u8();
  p.memory(small);
  EXPECT_FALSE(p.status().ok());
  StateReader none(last.bytes);
  none.takeMemoriesFrom({});
  none.u32();
  none.u8();
  none.memory(mem);
  ASSERT_FALSE(none.status().ok());
  EXPECT_NE(none.status().error().message.find("held apart"), std::string::npos);
}

}  // namespace
}  // namespace ttvm
