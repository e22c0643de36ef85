// Footers that pass their checksum but lie: an index out of order, entries
// that disagree with the frames they point at, offsets into the middle of a
// frame. The reader must notice, name the byte offset, and fall back to
// scanning where the index itself is impossible.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>

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
    traceId_ = r->header().traceId;
    footerAt_ = formats::getU64(bytes_.data() + bytes_.size() - formats::kTrailerBytes);
    // The INIT frame follows the HEAD frame.
    const uint32_t headStored = formats::getU32(bytes_.data() + 16 + 8);
    initAt_ = 16 + formats::kFrameHeaderBytes + headStored;
  }
  void TearDown() override { std::remove(path_.c_str()); }

  // The trace with its footer replaced by one holding `chunks` (and `end`).
  Result<TraceReader> openWith(const std::vector<ChunkInfo>& chunks) {
    return openWith(chunks, end_);
  }
  Result<TraceReader> openWith(const std::vector<ChunkInfo>& chunks, const TraceEnd& end) {
    std::vector<uint8_t> out(bytes_.begin(), bytes_.begin() + footerAt_);
    formats::appendFooterFrame(16, initAt_, chunks, snapshots_, end, traceId_, out);
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
  TraceId traceId_;
  uint64_t footerAt_ = 0;
  uint64_t initAt_ = 0;
  testing::MemFile mem_;
};

TEST_F(HostileIndex, UnchangedFooterOpensByIndex) {
  auto r = openWith(chunks_);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->recovered());
}

TEST_F(HostileIndex, FooterClaimingMoreStepsThanTheEventsIsRefused) {
  // The events end with EndOfRun; a footer claiming 7.3e11 steps would make
  // a replay run for hours. Refused, naming the footer's byte offset.
  TraceEnd lying = end_;
  lying.steps = 730'000'000'000ull;
  auto r = openWith(chunks_, lying);
  ASSERT_FALSE(r.ok());
  const std::string& m = r.error().message;
  EXPECT_NE(m.find("byte " + std::to_string(footerAt_) + ": footer"), std::string::npos) << m;
  EXPECT_NE(m.find("EndOfRun at step " + std::to_string(end_.steps)), std::string::npos) << m;
  EXPECT_NE(m.find("chunk at byte " + std::to_string(chunks_.back().offset)), std::string::npos)
      << m;
}

TEST_F(HostileIndex, EveryRandomBitFlipIsRefusedByTheFullCheck) {
  // What `ttvm verify` and `ttvm info` ask before saying anything is fine:
  // the trace opens by its footer and every frame checks. A flipped bit
  // anywhere (the snapshot and its PAGE frame included, which opening by
  // the footer does not read) must fail one or the other (the preamble's
  // minor version too: a 1.1 header repeats it).
  std::mt19937_64 rng(20261206);
  int snapshotFlips = 0;
  for (int i = 0; i < 1500; ++i) {
    std::vector<uint8_t> m = bytes_;
    const size_t pos = rng() % m.size();
    m[pos] ^= uint8_t(1u << (rng() % 8));
    if (pos >= snapshots_[0].offset && pos < chunks_.back().offset) ++snapshotFlips;
    mem_.set(m);
    auto r = TraceReader::open(mem_.path());
    if (!r.ok() || r->recovered()) continue;  // refused, or only a readable prefix
    EXPECT_FALSE(r->checkAllFrames().ok()) << "a flip at byte " << pos << " passed every check";
  }
  EXPECT_GT(snapshotFlips, 10);
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

// Format 1.1: every state, chunk and footer message carries the trace's id
// and its sequence number, so frames of another trace or a chunk copied
// twice are found (by the footer's id, and by the scan that follows).
TEST(TraceIdentity, SpliceOfOneTracesHeaderOntoAnothersChunksIsCaught) {
  const std::string a = testing::tempPath("splice_a.ttvm"), b = testing::tempPath("splice_b.ttvm");
  testing::writeSmallTrace(a);
  testing::writeSmallTrace(b);  // the same content, another id
  auto ra = TraceReader::open(a);
  auto rb = TraceReader::open(b);
  ASSERT_TRUE(ra.ok() && rb.ok());
  ASSERT_NE(ra->header().traceId, rb->header().traceId);
  const std::vector<uint8_t> ba = testing::readFileBytes(a), bb = testing::readFileBytes(b);
  std::vector<uint8_t> spliced(ba.begin(), ba.begin() + ra->chunks()[0].offset);
  spliced.insert(spliced.end(), bb.begin() + rb->chunks()[0].offset, bb.end());
  testing::MemFile mem;
  mem.set(spliced);
  auto r = TraceReader::open(mem.path());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->recovered());
  EXPECT_FALSE(r->end().has_value());  // B's end of run is not taken for A's
  EXPECT_EQ(r->chunkCount(), 0u);
  EXPECT_NE(r->recoveryNote().find("CHNK frame: belongs to another trace"), std::string::npos)
      << r->recoveryNote();
  std::remove(a.c_str());
  std::remove(b.c_str());
}

TEST(TraceIdentity, DuplicatedChunkStopsTheScanThere) {
  const std::string path = testing::tempPath("dup.ttvm");
  testing::writeSmallTrace(path);
  auto r0 = TraceReader::open(path);
  ASSERT_TRUE(r0.ok());
  ASSERT_GE(r0->chunkCount(), 3u);
  const ChunkInfo c1 = r0->chunks()[1];
  const std::vector<uint8_t> bytes = testing::readFileBytes(path);
  const size_t end1 = c1.offset + formats::kFrameHeaderBytes + c1.compressedBytes;
  std::vector<uint8_t> dup(bytes.begin(), bytes.begin() + end1);
  dup.insert(dup.end(), bytes.begin() + c1.offset, bytes.begin() + end1);  // chunk 1 again
  dup.insert(dup.end(), bytes.begin() + end1, bytes.end());
  testing::MemFile mem;
  mem.set(dup);
  auto r = TraceReader::open(mem.path());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->recovered());
  EXPECT_FALSE(r->end().has_value());
  EXPECT_EQ(r->chunkCount(), 2u);
  EXPECT_NE(r->recoveryNote().find("byte " + std::to_string(end1) +
                                   ": CHNK frame: sequence number 1, expected 2"),
            std::string::npos)
      << r->recoveryNote();
  std::remove(path.c_str());
}

}  // namespace
}  // namespace ttvm
