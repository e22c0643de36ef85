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

// DeviceMemory's versions against a plain copy: random changes, saves with
// versions and loads of random earlier saves (some with the memory unchanged
// since, which copy nothing) always leave the bytes that were saved.
TEST(StateIo, DeviceMemoryVersionsSkipOnlyUnchangedContents) {
  DeviceMemory mem(4096);
  struct Saved {
    std::vector<uint8_t> bytes;
    std::vector<uint64_t> versions;
    std::vector<uint8_t> contents;
  };
  std::vector<Saved> saved;
  std::mt19937_64 rng(11);
  auto save = [&] {
    StateWriter w;
    std::vector<uint64_t> versions;
    w.recordVersions(&versions);
    w.u8(0x5A);
    w.memory(mem);
    EXPECT_EQ(versions.size(), 1u);
    StateWriter plain;
    plain.u8(0x5A);
    plain.bytes(mem.bytes());
    EXPECT_EQ(w.data(), plain.data());  // the same bytes as bytes()
    saved.push_back({w.take(), versions, {mem.bytes().begin(), mem.bytes().end()}});
  };
  save();
  for (int i = 0; i < 2000; ++i) {
    switch (rng() % 3) {
      case 0: {
        std::span<uint8_t> b = mem.change();
        b[rng() % b.size()] = static_cast<uint8_t>(rng());
        break;
      }
      case 1: save(); break;
      default: {
        const Saved& s = saved[rng() % saved.size()];
        StateReader r(s.bytes);
        r.skipMemoriesAt(s.versions);
        EXPECT_EQ(r.u8(), 0x5A);
        r.memory(mem);
        ASSERT_TRUE(r.status().ok()) << r.status().error().message;
        EXPECT_EQ(r.remaining(), 0u);
        EXPECT_EQ(r.versionsUsed(), 1u);
        ASSERT_TRUE(std::equal(mem.bytes().begin(), mem.bytes().end(), s.contents.begin()))
            << "step " << i;
        EXPECT_EQ(mem.version(), s.versions[0]);
      }
    }
  }
  // Loaded without versions: copied, under a version no save has used.
  const Saved& first = saved.front();
  StateReader r(first.bytes);
  r.u8();
  r.memory(mem);
  ASSERT_TRUE(r.status().ok());
  EXPECT_TRUE(std::equal(mem.bytes().begin(), mem.bytes().end(), first.contents.begin()));
  for (const Saved& s : saved) EXPECT_NE(mem.version(), s.versions[0]);
  // A memory of another size is refused, with or without its version.
  DeviceMemory small(16);
  StateReader q(first.bytes);
  q.skipMemoriesAt(first.versions);
  q.u8();
  q.memory(small);
  EXPECT_FALSE(q.status().ok());
}

}  // namespace
}  // namespace ttvm
