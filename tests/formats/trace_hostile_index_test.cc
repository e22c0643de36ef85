// Footers that pass their checksum but lie: an index out of order, entries
// that disagree with the frames they point at, offsets into the middle of a
// frame. The reader must notice, name the byte offset, and fall back to
// scanning where the index itself is impossible.
#include <gtest/gtest.h>

#include <cstdio>

#include "frame.h"
#include "schema_convert.h"
#include "trace_samples.h"
#include "ttvm/formats/trace_reader.h"

namespace ttvm {
namespace {

class HostileIndex : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::tempPath("hostile.ttvm");
    testing::writeSmallTrace(path_);
    bytes_ = testing::readFileBytes(path_);
    auto r = TraceReader::open(path_);
    ASSERT_TRUE(r.ok());
    chunks_ = r->chunks();
    snapshots_ = r->snapshots();
    end_ = *r->end();
    footerAt_ = formats::getU64(bytes_.data() + bytes_.size() - formats::kTrailerBytes);
    // The INIT frame follows the HEAD frame.
    const uint32_t headStored = formats::getU32(bytes_.data() + 16 + 8);
    initAt_ = 16 + formats::kFrameHeaderBytes + headStored;
  }
  void TearDown() override { std::remove(path_.c_str()); }

  // The trace with its footer replaced by one holding `chunks`.
  Result<TraceReader> openWith(const std::vector<ChunkInfo>& chunks) {
    std::vector<uint8_t> out(bytes_.begin(), bytes_.begin() + footerAt_);
    formats::appendFooterFrame(16, initAt_, chunks, snapshots_, end_, out);
    const size_t at = out.size();
    out.resize(at + formats::kTrailerBytes);
    formats::encodeTrailer(footerAt_, out.data() + at);
    mem_.set(out);
    return TraceReader::open(mem_.path());
  }

  std::string path_;
  std::vector<uint8_t> bytes_;
  std::vector<ChunkInfo> chunks_;
  std::vector<SnapshotInfo> snapshots_;
  TraceEnd end_;
  uint64_t footerAt_ = 0;
  uint64_t initAt_ = 0;
  testing::MemFile mem_;
};

TEST_F(HostileIndex, UnchangedFooterOpensByIndex) {
  auto r = openWith(chunks_);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->recovered());
}

TEST_F(HostileIndex, OutOfOrderIndexFallsBackToScanning) {
  std::vector<ChunkInfo> c = chunks_;
  std::swap(c[0], c[1]);
  auto r = openWith(c);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->recovered());
  EXPECT_NE(r->recoveryNote().find("index entry"), std::string::npos) << r->recoveryNote();
  EXPECT_EQ(r->chunks(), chunks_);  // the scan finds the real chunks
}

TEST_F(HostileIndex, EntryPastTheFooterFallsBackToScanning) {
  std::vector<ChunkInfo> c = chunks_;
  c.back().offset = footerAt_ + 100;
  auto r = openWith(c);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->recovered());
}

TEST_F(HostileIndex, EntryThatDisagreesWithItsFrame) {
  std::vector<ChunkInfo> c = chunks_;
  c[1].eventCount += 1;
  auto r = openWith(c);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->recovered());
  EXPECT_TRUE(r->readChunk(0).ok());
  auto bad = r->readChunk(1);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("byte " + std::to_string(c[1].offset)), std::string::npos)
      << bad.error().message;
  EXPECT_NE(bad.error().message.find("disagrees"), std::string::npos) << bad.error().message;
}

TEST_F(HostileIndex, EntryIntoTheMiddleOfAFrame) {
  std::vector<ChunkInfo> c = chunks_;
  c[2].offset += 8;
  c[2].compressedBytes -= 8;
  auto r = openWith(c);
  ASSERT_TRUE(r.ok());
  auto bad = r->readChunk(2);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("byte " + std::to_string(c[2].offset)), std::string::npos)
      << bad.error().message;
  // The cursor stops there with the same kind of error.
  auto cur = r->cursor();
  TraceEvent e;
  size_t n = 0;
  while (cur.next(e)) ++n;
  EXPECT_EQ(n, chunks_[0].eventCount + chunks_[1].eventCount);
  EXPECT_FALSE(cur.status().ok());
}

TEST_F(HostileIndex, HugeChunkCountIsRefusedBeforeAllocating) {
  std::vector<ChunkInfo> c(100000, chunks_[0]);  // more entries than the file could hold
  auto r = openWith(c);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->recovered());
  EXPECT_NE(r->recoveryNote().find("cannot fit"), std::string::npos) << r->recoveryNote();
}

}  // namespace
}  // namespace ttvm
