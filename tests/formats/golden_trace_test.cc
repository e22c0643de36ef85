// The golden traces in tests/data were written once by a past version of
// the writer (tests/formats/make_golden_trace.cc). Every later version must
// read them exactly: this is the backward-compatibility promise of the format.
#include <gtest/gtest.h>

#include <algorithm>

#include "trace_samples.h"
#include "ttvm/formats/trace_reader.h"

namespace ttvm {
namespace {

void expectReadsExactly(const std::string& path, const testing::GoldenTrace& g, uint16_t minor) {
  // Tests run from the source root (ttvm_test sets WORKING_DIRECTORY).
  auto r = TraceReader::open(path);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->recovered()) << r->recoveryNote();
  EXPECT_EQ(r->header().formatMajor, 1);
  EXPECT_EQ(r->header().formatMinor, minor);
  TraceHeader expected = g.header;
  expected.formatMinor = minor;
  EXPECT_EQ(r->header(), expected);
  auto init = r->initialState();
  ASSERT_TRUE(init.ok()) << init.error().message;
  EXPECT_EQ(*init, g.initial);
  // Chunk boundaries exactly where the generator flushed (plus the close).
  ASSERT_EQ(r->chunkCount(), g.flushAfter.size() + 1);
  std::vector<TraceEvent> all;
  std::vector<uint8_t> sectors, chunkSectors;
  for (size_t i = 0; i < r->chunkCount(); ++i) {
    std::vector<TraceEvent> c;
    Status st = r->readChunkInto(i, c, &chunkSectors);
    ASSERT_TRUE(st.ok()) << st.error().message;
    // A chunk numbers its sectors from 0; the golden trace across the file.
    for (TraceEvent& e : c)
      if (e.kind == EventKind::kDiskSector) e.count += sectors.size() / kDiskSectorBytes;
    sectors.insert(sectors.end(), chunkSectors.begin(), chunkSectors.end());
    if (i < g.flushAfter.size()) {
      EXPECT_EQ(c.back(), g.events[g.flushAfter[i]]);
    }
    all.insert(all.end(), c.begin(), c.end());
  }
  EXPECT_EQ(all, g.events);
  EXPECT_EQ(sectors, g.sectors);
  ASSERT_EQ(r->snapshots().size(), g.snapshots.size());
  for (size_t i = 0; i < g.snapshots.size(); ++i) {
    auto s = r->loadSnapshot(i);
    ASSERT_TRUE(s.ok()) << s.error().message;
    EXPECT_EQ(*s, g.snapshots[i]);
  }
  ASSERT_TRUE(r->end().has_value());
  EXPECT_EQ(*r->end(), g.end);
  EXPECT_EQ(r->end()->reason, EndReason::kTripleFault);
  Status all_frames = r->checkAllFrames();
  EXPECT_TRUE(all_frames.ok()) << all_frames.error().message;
}

TEST(GoldenTrace, V1_0ReadsExactly) {
  // No trace identity: nothing to check frames against, and none reported.
  expectReadsExactly("tests/data/golden-v1.0.ttvm", testing::goldenV1_0(), 0);
}

TEST(GoldenTrace, V1_1ReadsExactly) {
  // The identity and the sequence numbers of every state, chunk and footer.
  expectReadsExactly("tests/data/golden-v1.1.ttvm", testing::goldenV1_1(), 1);
}

TEST(GoldenTrace, V1_2ReadsExactly) {
  // Replay-computed devices in the header; DiskSector events with their bytes.
  const testing::GoldenTrace g = testing::goldenV1_2();
  ASSERT_EQ(std::count_if(g.events.begin(), g.events.end(),
                          [](const TraceEvent& e) { return e.kind == EventKind::kDiskSector; }),
            3);
  expectReadsExactly("tests/data/golden-v1.2.ttvm", g, 2);
}

TEST(GoldenTrace, V1_3ReadsExactly) {
  // The whole machine replayed: serial input, idle skips, device digests.
  const testing::GoldenTrace g = testing::goldenV1_3();
  for (EventKind k : {EventKind::kSerialInput, EventKind::kIdle, EventKind::kDeviceDigest})
    EXPECT_TRUE(std::any_of(g.events.begin(), g.events.end(), [k](const TraceEvent& e) {
      return e.kind == k;
    })) << eventKindName(k);
  expectReadsExactly("tests/data/golden-v1.3.ttvm", g, 3);
}

TEST(GoldenTrace, V1_4ReadsExactly) {
  // The slice origin in the header (a 1.3 trace has none).
  const testing::GoldenTrace g = testing::goldenV1_4();
  ASSERT_TRUE(g.header.slice.has_value());
  expectReadsExactly("tests/data/golden-v1.4.ttvm", g, 4);
  auto older = TraceReader::open("tests/data/golden-v1.3.ttvm");
  ASSERT_TRUE(older.ok()) << older.error().message;
  EXPECT_FALSE(older->header().slice.has_value());
}

// A trace from a newer ttvm: the preamble's version patched into a copy of
// a golden trace (bytes 8-9 major, 10-11 minor), as a future writer would set it.
std::string withVersion(const std::string& golden, uint16_t major, uint16_t minor) {
  std::vector<uint8_t> bytes = testing::readFileBytes(golden);
  bytes[8] = static_cast<uint8_t>(major);
  bytes[9] = static_cast<uint8_t>(major >> 8);
  bytes[10] = static_cast<uint8_t>(minor);
  bytes[11] = static_cast<uint8_t>(minor >> 8);
  const std::string path = testing::tempPath("future.ttvm");
  testing::writeFileBytes(path, bytes);
  return path;
}

TEST(GoldenTrace, NewerMajorVersionIsRefusedNamingWhoMadeIt) {
  const std::string path = withVersion("tests/data/golden-v1.3.ttvm", kTraceFormatMajor + 1, 3);
  auto r = TraceReader::open(path);
  ASSERT_FALSE(r.ok());
  const std::string want = "made by ttvm " + testing::goldenV1_3().header.ttvmVersion +
                           ", format " + std::to_string(kTraceFormatMajor + 1) +
                           ".3; this reader supports formats 1.0 to 1." +
                           std::to_string(kTraceFormatMinor) + ": open it with a newer ttvm";
  EXPECT_NE(r.error().message.find(want), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("byte 8"), std::string::npos) << r.error().message;
}

TEST(GoldenTrace, NewerMinorVersionReadsWithANote) {
  // A 1.0 header does not repeat the minor version, so only the preamble
  // says 1.(N+5); a newer minor only adds fields, which this reader ignores.
  const uint16_t future = kTraceFormatMinor + 5;
  const std::string path = withVersion("tests/data/golden-v1.0.ttvm", 1, future);
  auto r = TraceReader::open(path);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->header().formatMinor, future);
  EXPECT_EQ(r->newerFormatNote(),
            path + ": made by ttvm " + testing::goldenV1_0().header.ttvmVersion + ", format 1." +
                std::to_string(future) + "; this reader supports up to 1." +
                std::to_string(kTraceFormatMinor) +
                ": it reads the trace but ignores what the newer format added");
  auto current = TraceReader::open("tests/data/golden-v1.4.ttvm");
  ASSERT_TRUE(current.ok()) << current.error().message;
  EXPECT_EQ(current->newerFormatNote(), "");
}

TEST(GoldenTrace, V1_5ReadsExactly) {
  // A KVM trace's stop points: dirty page runs, then the point.
  const testing::GoldenTrace g = testing::goldenV1_5();
  for (EventKind k : {EventKind::kDirtyPages, EventKind::kStopPoint})
    EXPECT_TRUE(std::any_of(g.events.begin(), g.events.end(), [k](const TraceEvent& e) {
      return e.kind == k;
    })) << eventKindName(k);
  expectReadsExactly("tests/data/golden-v1.5.ttvm", g, 5);
}

TEST(GoldenTrace, V1_6ReadsExactly) {
  // The CPU model's SYSRET choice: set in 1.6's header, false in every older
  // trace (Cap'n Proto's default for a field the writer did not know).
  const testing::GoldenTrace g = testing::goldenV1_6();
  ASSERT_TRUE(g.header.cpuModel.sysretSkipsRipCheckAndSsCache);
  expectReadsExactly("tests/data/golden-v1.6.ttvm", g, 6);
  for (const char* older : {"tests/data/golden-v1.0.ttvm", "tests/data/golden-v1.5.ttvm"}) {
    auto r = TraceReader::open(older);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_FALSE(r->header().cpuModel.sysretSkipsRipCheckAndSsCache) << older;
  }
}

}  // namespace
}  // namespace ttvm
