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
#include "ttvm/formats/trace_writer.h"

namespace ttvm {
namespace {

// `bytes` (a trace whose footer is at `footerAt`) with that footer replaced
// by one holding the given index and end, opened from `mem`.
Result<TraceReader> openWithFooter(const std::vector<uint8_t>& bytes, uint64_t footerAt,
                                   uint64_t initAt, const std::vector<ChunkInfo>& chunks,
                                   const std::vector<SnapshotInfo>& snapshots, const TraceEnd& end,
                                   const TraceId& traceId, testing::MemFile& mem) {
  std::vector<uint8_t> out(bytes.begin(), bytes.begin() + footerAt);
  formats::appendFooterFrame(16, initAt, chunks, snapshots, end, traceId, out);
  const size_t at = out.size();
  out.resize(at + formats::kTrailerBytes);
  formats::encodeTrailer(footerAt, out.data() + at);
  mem.set(out);
  return TraceReader::open(mem.path());
}

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
    return openWithFooter(bytes_, footerAt_, initAt_, chunks, snapshots_, end, traceId_, mem_);
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

// A run whose events end at step 328 without an EndOfRun (chunks of 10
// events), optionally followed by a snapshot at step 400, written once with a
// footer that agrees; refusal() swaps in a footer claiming `steps`.
class FooterEnd : public ::testing::Test {
 protected:
  struct Run {
    std::vector<uint8_t> bytes;
    std::vector<ChunkInfo> chunks;
    std::vector<SnapshotInfo> snapshots;
    TraceEnd end;
    TraceId traceId;
    uint64_t footerAt = 0;
    uint64_t initAt = 0;
  };
  static void write(const std::string& path, bool snapshot, Run& run) {
    std::mt19937_64 rng(328);
    TraceWriter::Options options;
    options.maxEventsPerChunk = 10;
    auto w = TraceWriter::create(path, testing::sampleHeader(), InitialState{}, options);
    ASSERT_TRUE(w.ok()) << w.error().message;
    for (uint64_t step = 8; step <= 328; step += 8) (*w)->append(TraceEvent::hlt(step));
    if (snapshot) {
      Snapshot s;
      s.step = 400;
      s.cpu = testing::randomCpuState(rng);
      s.cpu.steps = 400;
      s.ram = testing::sampleRam(rng, 1);
      ASSERT_TRUE((*w)->addSnapshot(s).ok());
    }
    TraceEnd end;
    end.reason = EndReason::kTripleFault;
    end.steps = snapshot ? 400 : 328;
    ASSERT_TRUE((*w)->close(end).ok());
    auto r = TraceReader::open(path);
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_FALSE(r->recovered());
    ASSERT_EQ(r->chunks().back().lastStep, 328u);
    run.bytes = testing::readFileBytes(path);
    run.chunks = r->chunks();
    run.snapshots = r->snapshots();
    run.end = *r->end();
    run.traceId = r->header().traceId;
    run.footerAt = formats::getU64(run.bytes.data() + run.bytes.size() - formats::kTrailerBytes);
    run.initAt = 16 + formats::kFrameHeaderBytes + formats::getU32(run.bytes.data() + 16 + 8);
  }
  void SetUp() override {
    path_ = testing::tempPath("footer-end.ttvm");
    write(path_, false, plain_);
    write(path_, true, snapshot_);
  }
  void TearDown() override { std::remove(path_.c_str()); }

  // "opened", or the refusal of the run with a footer claiming `steps`.
  std::string refusal(uint64_t steps, bool snapshot) {
    const Run& run = snapshot ? snapshot_ : plain_;
    TraceEnd end = run.end;
    end.steps = steps;
    auto r = openWithFooter(run.bytes, run.footerAt, run.initAt, run.chunks, run.snapshots, end,
                            run.traceId, mem_);
    if (r.ok()) return r->recovered() ? "recovered" : "opened";
    const std::string& m = r.error().message;
    EXPECT_NE(m.find("byte " + std::to_string(run.footerAt) + ": footer: the end of run at step " +
                     std::to_string(steps)),
              std::string::npos)
        << m;
    return m;
  }

  std::string path_;
  Run plain_, snapshot_;
  testing::MemFile mem_;
  uint64_t chunkAt() const { return plain_.chunks.back().offset; }
  uint64_t snapshotAt() const { return snapshot_.snapshots.back().offset; }
};

TEST_F(FooterEnd, ClaimingMoreStepsThanTheChunksWithoutEndOfRunIsRefused) {
  // Issue 10's 5 KB file: events ending at step 328, no EndOfRun, a footer
  // claiming 7.3e11 steps.
  const std::string m = refusal(730'000'000'000ull, false);
  EXPECT_NE(m.find("lies past the recorded run"), std::string::npos) << m;
  EXPECT_NE(m.find("at step 328 (chunk at byte " + std::to_string(chunkAt()) + ")"),
            std::string::npos)
      << m;
  // The bound is one step past the last event: the step that ended the run.
  EXPECT_EQ(refusal(328, false), "opened");
  EXPECT_EQ(refusal(329, false), "opened");
  EXPECT_NE(refusal(330, false).find("lies past the recorded run"), std::string::npos);
}

TEST_F(FooterEnd, EndBeforeTheLastEventIsRefused) {
  const std::string m = refusal(327, false);
  EXPECT_NE(m.find("lies before the last event, at step 328 (chunk at byte " +
                   std::to_string(chunkAt()) + ")"),
            std::string::npos)
      << m;
  EXPECT_NE(refusal(0, false).find("lies before the last event"), std::string::npos);
}

TEST_F(FooterEnd, ASnapshotPastTheEventsBoundsTheEndBothWays) {
  // A recording cut off after a snapshot that `ttvm recover` ended there.
  EXPECT_EQ(refusal(400, true), "opened");
  EXPECT_EQ(refusal(401, true), "opened");
  std::string m = refusal(402, true);
  EXPECT_NE(m.find("lies past the recorded run"), std::string::npos) << m;
  EXPECT_NE(m.find("at step 400 (snapshot at byte " + std::to_string(snapshotAt()) + ")"),
            std::string::npos)
      << m;
  m = refusal(399, true);
  EXPECT_NE(m.find("lies before the last snapshot, at step 400 (snapshot at byte " +
                   std::to_string(snapshotAt()) + ")"),
            std::string::npos)
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
