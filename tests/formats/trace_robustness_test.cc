// Damaged and hostile files: truncation at every byte offset, corruption of
// every byte (several patterns, > 10,000 mutations), a killed writer and
// `recover`, random garbage. Each read ends in a clean error or in data that
// is exactly a prefix of what was written; nothing crashes (run under
// ASan+UBSan in the sanitize preset).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include "trace_samples.h"
#include "ttvm/formats/trace_reader.h"
#include "ttvm/formats/trace_writer.h"

namespace ttvm {
namespace {

using testing::readFileBytes;
using testing::tempPath;
using testing::writeFileBytes;

struct ReadOutcome {
  bool opened = false;
  bool recovered = false;
  std::string error;
  std::vector<TraceEvent> events;  // every event read before the first error
};

// Reads everything a reader offers; checks the invariants every outcome must meet.
ReadOutcome readEverything(const std::string& path) {
  ReadOutcome out;
  auto r = TraceReader::open(path);
  if (!r.ok()) {
    out.error = r.error().message;
    EXPECT_FALSE(out.error.empty());
    return out;
  }
  out.opened = true;
  out.recovered = r->recovered();
  if (r->recovered()) {
    EXPECT_FALSE(r->recoveryNote().empty());
  }
  auto init = r->initialState();
  if (!init.ok()) {
    out.error = init.error().message;
    EXPECT_NE(out.error.find("byte"), std::string::npos) << out.error;
  }
  for (size_t i = 0; i < r->snapshots().size(); ++i) {
    auto s = r->loadSnapshot(i);
    if (!s.ok()) {
      EXPECT_NE(s.error().message.find("byte"), std::string::npos) << s.error().message;
      if (out.error.empty()) out.error = s.error().message;
    }
  }
  auto cur = r->cursor();
  TraceEvent e;
  while (cur.next(e)) out.events.push_back(e);
  if (!cur.status().ok()) {
    EXPECT_NE(cur.status().error().message.find("byte"), std::string::npos)
        << cur.status().error().message;
    if (out.error.empty()) out.error = cur.status().error().message;
  }
  return out;
}

bool isPrefix(const std::vector<TraceEvent>& a, const std::vector<TraceEvent>& b) {
  return a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin());
}

class SmallTrace : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = tempPath("small.ttvm");
    events_ = testing::writeSmallTrace(path_);
    bytes_ = readFileBytes(path_);
    auto r = TraceReader::open(path_);
    ASSERT_TRUE(r.ok());
    chunks_ = r->chunks();
    header_ = r->header();
  }
  void TearDown() override { std::remove(path_.c_str()); }
  std::string path_;
  testing::MemFile memFile_;
  const std::string& mutated_ = memFile_.path();
  std::vector<TraceEvent> events_;
  std::vector<uint8_t> bytes_;
  std::vector<ChunkInfo> chunks_;
  TraceHeader header_;
};

TEST_F(SmallTrace, HasTheShapeTheTestsAssume) {
  EXPECT_EQ(chunks_.size(), 4u);  // 10 events, 3 (snapshot flushes), 10, 1
  EXPECT_GT(bytes_.size(), 1000u);
  EXPECT_LT(bytes_.size(), 20000u);
}

TEST_F(SmallTrace, TruncationAtEveryOffset) {
  size_t opened = 0;
  for (size_t len = 0; len < bytes_.size(); ++len) {
    memFile_.set(std::vector<uint8_t>(bytes_.begin(), bytes_.begin() + len));
    ReadOutcome o = readEverything(mutated_);
    if (!o.opened) continue;
    ++opened;
    EXPECT_TRUE(o.recovered) << "a truncated file cannot have its trailer, len " << len;
    // The longest valid prefix: every chunk that ends before the cut.
    size_t expected = 0;
    for (const ChunkInfo& c : chunks_)
      if (c.offset + 40 + c.compressedBytes <= len) expected += c.eventCount;
    EXPECT_EQ(o.events.size(), expected) << "len " << len;
    EXPECT_TRUE(isPrefix(o.events, events_)) << "len " << len;
    EXPECT_TRUE(o.error.empty()) << o.error;
  }
  EXPECT_GT(opened, bytes_.size() / 3);  // all cuts after the initial state open
}

TEST_F(SmallTrace, CorruptionOfEveryByte) {
  // Four patterns per byte: more than 10,000 mutated files in all.
  const uint8_t patterns[] = {0x01, 0x80, 0xFF, 0x5A};
  size_t mutations = 0, clean = 0, errors = 0;
  for (uint8_t pattern : patterns) {
    for (size_t pos = 0; pos < bytes_.size(); ++pos) {
      std::vector<uint8_t> m = bytes_;
      m[pos] ^= pattern;
      memFile_.set(m);
      ReadOutcome o = readEverything(mutated_);
      ++mutations;
      if (!o.opened || !o.error.empty()) ++errors;
      if (o.opened) {
        // What was read is what was written (checksums catch the rest).
        EXPECT_TRUE(isPrefix(o.events, events_)) << "pos " << pos;
        auto r = TraceReader::open(mutated_);
        ASSERT_TRUE(r.ok());
        EXPECT_EQ(r->header(), header_) << "pos " << pos;
        if (o.error.empty() && !o.recovered) {
          ++clean;
          // Nothing may change unnoticed: the reserved fields of the
          // preamble and the trailer must be 0, and a 1.1 header repeats
          // the preamble's minor version under its checksum.
          ADD_FAILURE() << "undetected change at byte " << pos;
        }
      }
    }
  }
  EXPECT_GE(mutations, 10000u) << "make the small trace larger to mutate 10,000 positions";
  EXPECT_EQ(clean, 0u);
  EXPECT_GT(errors, 0u);
}

TEST_F(SmallTrace, RandomGarbageAndHostileSizes) {
  std::mt19937_64 rng(11);
  for (int i = 0; i < 2000; ++i) {
    std::vector<uint8_t> m = bytes_;
    // Overwrite a random run with random bytes, sometimes keep a valid
    // preamble so the reader goes deeper.
    const size_t at = rng() % m.size();
    const size_t len = 1 + rng() % 64;
    for (size_t k = at; k < std::min(m.size(), at + len); ++k) m[k] = static_cast<uint8_t>(rng());
    if (rng() % 4 == 0) m.resize(rng() % m.size());
    memFile_.set(m);
    ReadOutcome o = readEverything(mutated_);
    if (o.opened) {
      EXPECT_TRUE(isPrefix(o.events, events_));
    }
  }
  // A frame header that claims a huge raw size must not allocate it.
  std::vector<uint8_t> m = bytes_;
  m[16 + 12] = 0xFF;
  m[16 + 13] = 0xFF;
  m[16 + 14] = 0xFF;
  m[16 + 15] = 0x7F;
  memFile_.set(m);
  auto r = TraceReader::open(mutated_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("byte 28"), std::string::npos) << r.error().message;
  // Not a trace at all.
  memFile_.set(std::vector<uint8_t>{'h', 'e', 'l', 'l', 'o'});
  r = TraceReader::open(mutated_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("byte 0"), std::string::npos) << r.error().message;
  EXPECT_FALSE(TraceReader::open(tempPath("missing.ttvm")).ok());
}

TEST_F(SmallTrace, NewerMajorVersionIsRefused) {
  std::vector<uint8_t> m = bytes_;
  m[8] = 2;
  memFile_.set(m);
  auto r = TraceReader::open(mutated_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("format 2." + std::to_string(kTraceFormatMinor)),
            std::string::npos)
      << r.error().message;
}

TEST(Recover, AfterTheWriterIsKilled) {
  const std::string path = tempPath("killed.ttvm");
  const std::string fixed = tempPath("recovered.ttvm");
  std::mt19937_64 rng(21);
  std::vector<TraceEvent> events = testing::randomEvents(rng, 3800);
  // Chunks of 1000 events; the snapshot after event 3500 flushes the buffer;
  // the last 300 events are still buffered when the writer dies.
  const size_t flushed = 3000;
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    TraceWriter::Options options;
    options.maxEventsPerChunk = 1000;
    auto w = TraceWriter::create(path, testing::sampleHeader(), InitialState{}, options);
    if (!w.ok()) _exit(1);
    for (size_t i = 0; i < events.size(); ++i) {
      (*w)->append(events[i]);
      if (i + 1 == flushed && !(*w)->flush().ok()) _exit(1);
      if (i + 1 == flushed + 500) {
        Snapshot s;
        s.step = events[i].step;
        if (!(*w)->addSnapshot(s).ok()) _exit(1);
      }
    }
    raise(SIGKILL);
    _exit(2);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;

  auto r = TraceReader::open(path);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->recovered());
  EXPECT_FALSE(r->end().has_value());
  EXPECT_NE(r->recoveryNote().find("end of the file"), std::string::npos) << r->recoveryNote();
  std::vector<TraceEvent> expected(events.begin(), events.begin() + flushed + 500);
  std::vector<TraceEvent> got;
  auto cur = r->cursor();
  TraceEvent e;
  while (cur.next(e)) got.push_back(e);
  EXPECT_EQ(got, expected);
  EXPECT_EQ(r->snapshots().size(), 1u);

  Status s = TraceReader::recover(path, fixed);
  ASSERT_TRUE(s.ok()) << s.error().message;
  auto f = TraceReader::open(fixed);
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_FALSE(f->recovered());
  ASSERT_TRUE(f->end().has_value());
  EXPECT_EQ(f->end()->reason, EndReason::kInterrupted);
  EXPECT_EQ(f->end()->steps, expected.back().step);
  EXPECT_EQ(f->chunks(), r->chunks());
  EXPECT_EQ(f->snapshots(), r->snapshots());
  EXPECT_TRUE(f->loadSnapshot(0).ok());
  got.clear();
  auto cur2 = f->cursor();
  while (cur2.next(e)) got.push_back(e);
  EXPECT_EQ(got, expected);

  // Recovering into the input itself is refused.
  EXPECT_FALSE(TraceReader::recover(path, path).ok());
  std::remove(path.c_str());
  std::remove(fixed.c_str());
}

TEST(Recover, CompleteTraceIsCopiedUnchanged) {
  const std::string path = tempPath("complete.ttvm");
  const std::string copy = tempPath("copy.ttvm");
  testing::writeSmallTrace(path);
  ASSERT_TRUE(TraceReader::recover(path, copy).ok());
  EXPECT_EQ(readFileBytes(path), readFileBytes(copy));
  std::remove(path.c_str());
  std::remove(copy.c_str());
}

TEST(Recover, CutInTheMiddleOfAChunk) {
  const std::string path = tempPath("cut.ttvm");
  const std::string fixed = tempPath("cutfixed.ttvm");
  std::vector<TraceEvent> events = testing::writeSmallTrace(path);
  std::vector<uint8_t> bytes = readFileBytes(path);
  auto r = TraceReader::open(path);
  ASSERT_TRUE(r.ok());
  const ChunkInfo last = r->chunks().back();
  bytes.resize(last.offset + 50);  // inside the last chunk
  writeFileBytes(path, bytes);
  ASSERT_TRUE(TraceReader::recover(path, fixed).ok());
  auto f = TraceReader::open(fixed);
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(f->recovered());
  EXPECT_EQ(f->chunkCount(), r->chunkCount() - 1);
  EXPECT_EQ(f->eventCount(), events.size() - last.eventCount);
  std::remove(path.c_str());
  std::remove(fixed.c_str());
}

}  // namespace
}  // namespace ttvm
