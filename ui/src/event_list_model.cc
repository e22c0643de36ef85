#include "ttvm/ui/event_list_model.h"

#include <QBrush>
#include <QColor>
#include <QFontDatabase>
#include <QString>
#include <algorithm>
#include <climits>

#include "ttvm/replayer/queries.h"

namespace ttvm::ui {

void VectorEventRows::read(uint64_t first, uint64_t n, std::vector<EventRow>& out) const {
  for (uint64_t i = first; i < first + n && i < rows_.size(); ++i) out.push_back(rows_[i]);
}

std::shared_ptr<const VectorEventRows> VectorEventRows::merge(
    const std::vector<TraceEvent>& events, const std::vector<ReplayedException>& exceptions) {
  std::vector<EventRow> rows;
  rows.reserve(events.size() + exceptions.size());
  auto e = events.begin();
  for (const ReplayedException& x : exceptions) {
    for (; e != events.end() && e->step < x.step; ++e) rows.push_back(EventRow{*e});
    rows.push_back(EventRow{x});
  }
  for (; e != events.end(); ++e) rows.push_back(EventRow{*e});
  return std::make_shared<const VectorEventRows>(std::move(rows));
}

TraceEventRows::TraceEventRows(TraceReader reader) : reader_(std::move(reader)) {
  uint64_t row = 0;
  starts_.push_back(0);
  for (const ChunkInfo& c : reader_.chunks()) starts_.push_back(row += c.eventCount);
}

Result<std::shared_ptr<TraceEventRows>> TraceEventRows::open(const std::string& path) {
  auto reader = TraceReader::open(path);
  if (!reader.ok()) return reader.error();
  return std::shared_ptr<TraceEventRows>(new TraceEventRows(std::move(*reader)));
}

void TraceEventRows::read(uint64_t first, uint64_t n, std::vector<EventRow>& out) const {
  while (n > 0 && first < count()) {
    // The chunk holding row `first`: the last start <= first.
    const size_t chunk = static_cast<size_t>(
        std::upper_bound(starts_.begin(), starts_.end(), first) - starts_.begin() - 1);
    if (chunk != cachedChunk_) {
      auto events = reader_.readChunk(chunk);
      if (!events.ok()) return;  // a bad chunk: the rows after it stay empty
      cached_ = std::move(*events);
      cachedChunk_ = chunk;
      ++decoded_;
    }
    const uint64_t offset = first - starts_[chunk];
    const uint64_t take =
        std::min<uint64_t>(n, cached_.size() - std::min<uint64_t>(offset, cached_.size()));
    if (take == 0) return;
    for (uint64_t i = offset; i < offset + take; ++i) out.push_back(EventRow{cached_[i]});
    first += take;
    n -= take;
  }
}

EventListModel::EventListModel(QObject* parent) : QAbstractTableModel(parent) {}

void EventListModel::setRows(EventRowsPtr rows) {
  beginResetModel();
  rows_ = std::move(rows);
  pages_.clear();
  lru_.clear();
  rowsRead_ = 0;
  endResetModel();
}

int EventListModel::rowCount(const QModelIndex& parent) const {
  if (parent.isValid() || !rows_) return 0;
  return static_cast<int>(std::min<uint64_t>(rows_->count(), INT_MAX));
}

int EventListModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : kColumns;
}

const std::vector<EventRow>* EventListModel::page(uint64_t index) const {
  auto it = pages_.find(index);
  if (it != pages_.end()) {
    lru_.remove(index);
    lru_.push_front(index);
    return &it->second;
  }
  std::vector<EventRow> events;
  events.reserve(kPageRows);
  rows_->read(index * kPageRows, kPageRows, events);
  rowsRead_ += events.size();
  if (pages_.size() >= kMaxPages) {
    pages_.erase(lru_.back());
    lru_.pop_back();
  }
  lru_.push_front(index);
  return &pages_.emplace(index, std::move(events)).first->second;
}

const EventRow* EventListModel::event(int row) const {
  if (row < 0 || row >= rowCount()) return nullptr;
  const std::vector<EventRow>* p = page(static_cast<uint64_t>(row) / kPageRows);
  const size_t i = static_cast<size_t>(row) % kPageRows;
  return i < p->size() ? &(*p)[i] : nullptr;
}

int EventListModel::rowAtStep(uint64_t step) const {
  int lo = 0, hi = rowCount();  // first row with event.step >= step in [lo, hi]
  while (lo < hi) {
    const int mid = lo + (hi - lo) / 2;
    const EventRow* e = event(mid);
    if (e != nullptr && e->step() < step)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

QString EventListModel::describe(const TraceEvent& e) {
  auto hex = [](uint64_t v) { return QStringLiteral("0x") + QString::number(v, 16); };
  switch (e.kind) {
    case EventKind::kPortOut:
      if ((e.address == 0x3F8 || e.address == 0xE9) && e.size == 1) {
        const int c = static_cast<int>(e.value & 0xFF);
        return QStringLiteral("serial output %1 (port %2)")
            .arg(c >= 0x20 && c < 0x7F ? QStringLiteral("'%1'").arg(QChar(c))
                 : c == '\n'           ? QStringLiteral("'\\n'")
                                       : hex(uint64_t(c)),
                 hex(e.address));
      }
      return QStringLiteral("out port %1 ← %2 (%3 bytes)")
          .arg(hex(e.address), hex(e.value))
          .arg(e.size);
    case EventKind::kPortIn:
      return QStringLiteral("in port %1 → %2 (%3 bytes)")
          .arg(hex(e.address), hex(e.value))
          .arg(e.size);
    case EventKind::kMmioRead:
      return QStringLiteral("MMIO read %1 → %2 (%3 bytes)")
          .arg(hex(e.address), hex(e.value))
          .arg(e.size);
    case EventKind::kMmioWrite:
      return QStringLiteral("MMIO write %1 ← %2 (%3 bytes)")
          .arg(hex(e.address), hex(e.value))
          .arg(e.size);
    case EventKind::kInterrupt: return QStringLiteral("interrupt vector %1").arg(hex(e.value));
    case EventKind::kNmi: return QStringLiteral("NMI");
    case EventKind::kDebugExit: return QStringLiteral("exit device: status %1").arg(e.value);
    case EventKind::kRdtsc: return QStringLiteral("RDTSC → %1").arg(e.value);
    case EventKind::kMsrRead:
      return QStringLiteral("RDMSR %1 → %2").arg(hex(e.address), hex(e.value));
    case EventKind::kMsrWrite:
      return QStringLiteral("WRMSR %1 ← %2").arg(hex(e.address), hex(e.value));
    case EventKind::kSerialInput: return QStringLiteral("serial input %1").arg(hex(e.value & 0xFF));
    case EventKind::kDiskSector:
      return QStringLiteral("disk %1 sector %2").arg(e.value).arg(e.address);
    default: return QStringLiteral("%1").arg(hex(e.value));
  }
}

QString EventListModel::describe(const EventRow& row) {
  if (const TraceEvent* e = row.event()) return describe(*e);
  const ReplayedException& x = *row.exception();
  const QString name = QString::fromStdString(exceptionName(x.vector));
  if (!x.hasErrorCode) return QStringLiteral("exception %1").arg(name);
  return QStringLiteral("exception %1 (error code 0x%2)").arg(name).arg(x.errorCode, 0, 16);
}

QVariant EventListModel::data(const QModelIndex& index, int role) const {
  if (role == Qt::FontRole) return QFontDatabase::systemFont(QFontDatabase::FixedFont);
  if (role != Qt::DisplayRole && role != Qt::ForegroundRole) return {};
  const EventRow* row = event(index.row());
  if (row == nullptr) return {};
  const TraceEvent* e = row->event();
  if (e == nullptr) {  // an exception
    if (role == Qt::ForegroundRole) return QBrush(QColor(0xc0, 0x00, 0x00));
    switch (index.column()) {
      case kStep: return QString::number(row->step());
      case kKind: return QStringLiteral("exception");
      default: return describe(*row);
    }
  }
  if (role == Qt::ForegroundRole) {
    if (e->kind == EventKind::kInterrupt || e->kind == EventKind::kNmi)
      return QBrush(QColor(0xc0, 0x60, 0x00));
    if (e->kind == EventKind::kPortOut && (e->address == 0x3F8 || e->address == 0xE9))
      return QBrush(QColor(0x00, 0x80, 0x00));
    return {};
  }
  switch (index.column()) {
    case kStep: return QString::number(e->step);
    case kKind:
      return QString::fromLatin1(eventKindName(e->kind).data(),
                                 static_cast<qsizetype>(eventKindName(e->kind).size()));
    default: return describe(*e);
  }
}

QVariant EventListModel::headerData(int section, Qt::Orientation o, int role) const {
  if (o != Qt::Horizontal || role != Qt::DisplayRole) return {};
  switch (section) {
    case kStep: return QStringLiteral("Step");
    case kKind: return QStringLiteral("Event");
    default: return QStringLiteral("Details");
  }
}

}  // namespace ttvm::ui
