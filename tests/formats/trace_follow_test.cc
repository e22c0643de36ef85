// TraceReader::refresh(): a trace read while its writer appends to it. The
// file grows one byte at a time, so every frame is seen half-written before
// it is complete; the reader must neither take it nor mistake it for damage.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>

#include "trace_samples.h"
#include "ttvm/formats/trace_reader.h"

namespace ttvm {
namespace {

using testing::readFileBytes;
using testing::tempPath;

std::vector<TraceEvent> allEvents(const TraceReader& r) {
  std::vector<TraceEvent> out;
  auto cur = r.cursor();
  TraceEvent e;
  while (cur.next(e)) out.push_back(e);
  EXPECT_TRUE(cur.status().ok()) << cur.status().error().message;
  return out;
}

TEST(TraceFollow, RefreshOnAFileGrownByteByByte) {
  const std::string full = tempPath("follow-full.ttvm");
  const std::vector<TraceEvent> events = testing::writeSmallTrace(full);
  const std::vector<uint8_t> bytes = readFileBytes(full);
  auto complete = TraceReader::open(full);
  ASSERT_TRUE(complete.ok());
  ASSERT_FALSE(complete->recovered());
  ASSERT_TRUE(complete->end().has_value());
  ASSERT_GE(complete->chunks().size(), 2u);
  ASSERT_GE(complete->snapshots().size(), 1u);

  const std::string path = tempPath("follow-growing.ttvm");
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  // The shortest prefix that opens: preamble, header and initial state.
  size_t len = 0;
  std::optional<TraceReader> reader;
  while (len < bytes.size() && !reader) {
    ASSERT_EQ(::write(fd, bytes.data() + len, 1), 1);
    ++len;
    auto r = TraceReader::open(path);
    if (r.ok()) reader.emplace(std::move(*r));
  }
  ASSERT_TRUE(reader.has_value());
  EXPECT_TRUE(reader->recovered());
  EXPECT_TRUE(reader->chunks().empty());
  const size_t openedAt = len;

  size_t grew = 0, prevChunks = 0, prevSnapshots = 0;
  bool prevEnd = false;
  while (len < bytes.size()) {
    ASSERT_EQ(::write(fd, bytes.data() + len, 1), 1);
    ++len;
    auto g = reader->refresh();
    ASSERT_TRUE(g.ok()) << "len " << len << ": " << g.error().message;
    // Exactly the chunks whose frames are complete, never one cut short.
    size_t expected = 0;
    for (const ChunkInfo& c : complete->chunks())
      if (c.offset + 40 + c.compressedBytes <= len) ++expected;
    ASSERT_EQ(reader->chunks().size(), expected) << "len " << len;
    for (size_t i = 0; i < expected; ++i)
      EXPECT_EQ(reader->chunks()[i], complete->chunks()[i]) << "len " << len;
    EXPECT_GE(reader->snapshots().size(), prevSnapshots);
    EXPECT_LE(reader->usableBytes(), len);
    const bool changed = reader->chunks().size() != prevChunks ||
                         reader->snapshots().size() != prevSnapshots ||
                         (reader->end().has_value() && !prevEnd);
    EXPECT_EQ(*g, changed) << "len " << len;
    if (*g) ++grew;
    prevEnd = reader->end().has_value();
    prevChunks = reader->chunks().size();
    prevSnapshots = reader->snapshots().size();
  }
  ::close(fd);
  EXPECT_GT(len, openedAt);
  EXPECT_TRUE(prevEnd);
  // Every chunk and snapshot was announced, then the footer's end.
  EXPECT_EQ(grew, complete->chunks().size() + complete->snapshots().size() + 1);
  EXPECT_EQ(reader->chunks(), complete->chunks());
  EXPECT_EQ(reader->snapshots(), complete->snapshots());
  ASSERT_TRUE(reader->end().has_value());
  EXPECT_EQ(*reader->end(), *complete->end());
  EXPECT_EQ(allEvents(*reader), events);
  for (size_t i = 0; i < reader->snapshots().size(); ++i)
    EXPECT_TRUE(reader->loadSnapshot(i).ok()) << i;
  // Once the end is known there is nothing left to follow.
  auto again = reader->refresh();
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
  std::remove(full.c_str());
  std::remove(path.c_str());
}

TEST(TraceFollow, ATraceOpenedByItsFooterHasNothingToFollow) {
  const std::string path = tempPath("follow-complete.ttvm");
  testing::writeSmallTrace(path);
  auto r = TraceReader::open(path);
  ASSERT_TRUE(r.ok());
  auto g = r->refresh();
  ASSERT_TRUE(g.ok());
  EXPECT_FALSE(*g);
  std::remove(path.c_str());
}

TEST(TraceFollow, AFileThatShrinksIsAnError) {
  const std::string full = tempPath("follow-shrink-src.ttvm");
  testing::writeSmallTrace(full);
  std::vector<uint8_t> bytes = readFileBytes(full);
  const std::string path = tempPath("follow-shrink.ttvm");
  bytes.resize(bytes.size() - 100);  // no footer: opened by scanning
  testing::writeFileBytes(path, bytes);
  auto r = TraceReader::open(path);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->recovered());
  bytes.resize(bytes.size() / 2);
  testing::writeFileBytes(path, bytes);
  auto g = r->refresh();
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.error().message.find("shrank"), std::string::npos) << g.error().message;
  std::remove(full.c_str());
  std::remove(path.c_str());
}

}  // namespace
}  // namespace ttvm
