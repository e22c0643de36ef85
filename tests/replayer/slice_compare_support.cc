#include "slice_compare_support.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "ttvm/formats/trace_reader.h"
#include "ttvm/replayer/replay_session.h"

namespace ttvm::testing {

void expectReplaysAsSource(const std::string& sourcePath, const std::string& slicePath,
                           uint64_t from, uint64_t to, uint64_t compareEvery) {
  auto source = TraceReader::open(sourcePath);
  auto slice = TraceReader::open(slicePath);
  ASSERT_TRUE(source.ok() && slice.ok());
  auto a = ReplaySession::open(*source);
  auto b = ReplaySession::open(*slice);
  ASSERT_TRUE(a.ok()) << a.error().message;
  ASSERT_TRUE(b.ok()) << b.error().message;
  ReplaySession& src = **a;
  ReplaySession& cut = **b;
  ASSERT_EQ(cut.step(), from);
  ASSERT_EQ(cut.endStep(), to);
  ASSERT_EQ(src.runTo(from).step, from);
  const std::span<const uint8_t> srcRam = src.ram();
  const std::span<const uint8_t> cutRam = cut.ram();
  ASSERT_EQ(srcRam.size(), cutRam.size());
  const RamPages atCut = RamPages::fromFlat(srcRam);
  const std::set<uint64_t> kept(cut.initialPages().begin(), cut.initialPages().end());
  std::set<uint64_t> watched(atCut.numbers.begin(), atCut.numbers.end());
  src.cpu().setDirtyTracking(true);
  cut.cpu().setDirtyTracking(true);
  std::set<uint64_t> writtenInSlice;
  int compared = 0;
  for (uint64_t t = from;; t = std::min(to, t + compareEvery)) {
    const SessionStop sa = src.runTo(t);
    const SessionStop sb = cut.runTo(t);
    ASSERT_EQ(sa.step, t) << toString(sa.kind);
    ASSERT_EQ(sb.step, t) << toString(sb.kind) << " "
                          << (cut.divergence() ? cut.divergence()->format() : "");
    ASSERT_EQ(src.state(), cut.state()) << "CPU state at step " << t;
    ASSERT_EQ(src.saveDevices(), cut.saveDevices()) << "device state at step " << t;
    for (uint64_t p : src.cpu().takeDirtyPages()) watched.insert(p);
    for (uint64_t p : cut.cpu().takeDirtyPages()) {
      watched.insert(p);
      writtenInSlice.insert(p);
    }
    for (uint64_t p : watched) {
      const auto pa = srcRam.subspan(p * kPageSize, kPageSize);
      const auto pb = cutRam.subspan(p * kPageSize, kPageSize);
      if (std::memcmp(pa.data(), pb.data(), kPageSize) == 0) continue;
      ASSERT_FALSE(kept.count(p)) << "page " << p << " differs at step " << t;
      ASSERT_FALSE(writtenInSlice.count(p)) << "page " << p << " left out but written";
      ASSERT_TRUE(std::all_of(pb.begin(), pb.end(), [](uint8_t x) { return x == 0; }));
      const auto k = std::lower_bound(atCut.numbers.begin(), atCut.numbers.end(), p);
      ASSERT_TRUE(k != atCut.numbers.end() && *k == p) << "page " << p;
      const auto old = atCut.page(static_cast<size_t>(k - atCut.numbers.begin()));
      ASSERT_EQ(std::memcmp(pa.data(), old.data(), kPageSize), 0)
          << "page " << p << " was left out of the slice but the source wrote it by step " << t;
    }
    ++compared;
    if (t == to) break;
  }
  EXPECT_EQ(cut.checkEndState(), "");
  EXPECT_GE(compared, static_cast<int>((to - from) / compareEvery));
}

}  // namespace ttvm::testing
