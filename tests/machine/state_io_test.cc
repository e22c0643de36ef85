#include "ttvm/machine/state_io.h"

#include <gtest/gtest.h>

#include <vector>

namespace ttvm {
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

}  // namespace
}  // namespace ttvm
