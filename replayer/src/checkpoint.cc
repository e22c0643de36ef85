#include "ttvm/replayer/checkpoint.h"

#include <cstring>

#include "ttvm/base/assert.h"

namespace ttvm {
namespace {

// Pages and groups remember their stats so the count drops with the last reference.
struct CountedPage final : RamPage {
  explicit CountedPage(std::shared_ptr<PageStats> s) : stats(std::move(s)) { ++stats->pages; }
  ~CountedPage() { --stats->pages; }
  CountedPage(const CountedPage&) = delete;
  CountedPage& operator=(const CountedPage&) = delete;
  std::shared_ptr<PageStats> stats;
};

const RamPagePtr kNullPage;

}  // namespace

int64_t PageStats::bytes() const {
  return pages.load() * static_cast<int64_t>(kRamPageBytes + 64) +
         groups.load() * static_cast<int64_t>(PageMap::kGroupPages * sizeof(RamPagePtr) + 64);
}

PageMap::PageMap(uint64_t pageCount, std::shared_ptr<PageStats> stats)
    : pageCount_(pageCount),
      groups_((pageCount + kGroupPages - 1) / kGroupPages),
      stats_(std::move(stats)) {}

const RamPagePtr& PageMap::get(uint64_t page) const {
  TTVM_ASSERT(page < pageCount_, "page ", page, " beyond RAM of ", pageCount_, " pages");
  const auto& g = groups_[page / kGroupPages];
  return g ? g->pages[page % kGroupPages] : kNullPage;
}

std::shared_ptr<PageMap::Group> PageMap::makeGroup(const Group* from) const {
  struct CountedGroup final : Group {
    explicit CountedGroup(std::shared_ptr<PageStats> s) : stats(std::move(s)) { ++stats->groups; }
    ~CountedGroup() { --stats->groups; }
    CountedGroup(const CountedGroup&) = delete;
    CountedGroup& operator=(const CountedGroup&) = delete;
    std::shared_ptr<PageStats> stats;
  };
  auto g = std::make_shared<CountedGroup>(stats_);
  if (from != nullptr) g->pages = from->pages;
  return g;
}

void PageMap::set(uint64_t page, RamPagePtr p) {
  TTVM_ASSERT(page < pageCount_, "page ", page, " beyond RAM of ", pageCount_, " pages");
  auto& g = groups_[page / kGroupPages];
  if (!g) {
    if (!p) return;
    g = makeGroup(nullptr);
  } else if (g.use_count() > 1) {
    g = makeGroup(g.get());
  }
  g->pages[page % kGroupPages] = std::move(p);
}

RamPagePtr PageMap::makePage(std::span<const uint8_t> bytes) const {
  TTVM_ASSERT(bytes.size() == kRamPageBytes, "page of ", bytes.size(), " bytes");
  auto p = std::make_shared<CountedPage>(stats_);
  std::memcpy(p->bytes.data(), bytes.data(), kRamPageBytes);
  return p;
}

void PageMap::diff(const PageMap& other, std::vector<uint64_t>& out) const {
  TTVM_ASSERT(pageCount_ == other.pageCount_, "maps of different RAM sizes");
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const Group* a = groups_[gi].get();
    const Group* b = other.groups_[gi].get();
    if (a == b) continue;
    const uint64_t first = gi * kGroupPages;
    const uint64_t n = std::min<uint64_t>(kGroupPages, pageCount_ - first);
    for (uint64_t i = 0; i < n; ++i) {
      const RamPage* pa = a ? a->pages[i].get() : nullptr;
      const RamPage* pb = b ? b->pages[i].get() : nullptr;
      if (pa != pb) out.push_back(first + i);
    }
  }
}

}  // namespace ttvm
