// EventListModel: the Events dock's model, one row per event of the trace
// (port and MMIO I/O, serial output, interrupts, halts, ...) in step order:
// step, kind, details. A trace of 2·10⁸ steps holds millions of events, so
// no row exists until the view asks for it: the model knows only the count
// and reads pages of kPageRows events from an EventRows source when data()
// needs them, keeping the last kMaxPages pages (a view paints only the rows
// it shows, as QTableView with fixed row heights does).
//
// Sources: TraceEventRows reads the trace's event chunks through its own
// TraceReader (the chunk index gives each chunk's event count, so row ->
// chunk is a binary search over prefix sums and only that chunk is
// decoded); VectorEventRows serves rows already in memory: for a
// whole-machine trace, whose events hold none of this, the replay-pass
// index the Timeline builds while the open replays to the end (its port and
// MMIO accesses, interrupts and exceptions: Timeline::replayedAccesses,
// replayedExceptions), merged in step order.
#pragma once

#include <QAbstractTableModel>
#include <QMetaType>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "ttvm/formats/trace_reader.h"
#include "ttvm/formats/trace_types.h"
#include "ttvm/replayer/timeline.h"

namespace ttvm::ui {

// One row: an event (of the trace, or one the replay made: an access or an
// interrupt), or an exception the replay saw delivered.
struct EventRow {
  std::variant<TraceEvent, ReplayedException> what;
  uint64_t step() const {
    return std::visit([](const auto& w) { return w.step; }, what);
  }
  const TraceEvent* event() const { return std::get_if<TraceEvent>(&what); }
  const ReplayedException* exception() const { return std::get_if<ReplayedException>(&what); }
  bool operator==(const EventRow&) const = default;
};

// Events in step order, read a page at a time (on the GUI thread).
class EventRows {
 public:
  virtual ~EventRows() = default;
  virtual uint64_t count() const = 0;
  // Appends rows [first, first + n) (fewer at the end) to `out`.
  virtual void read(uint64_t first, uint64_t n, std::vector<EventRow>& out) const = 0;
};
using EventRowsPtr = std::shared_ptr<const EventRows>;

class VectorEventRows final : public EventRows {
 public:
  explicit VectorEventRows(std::vector<EventRow> rows) : rows_(std::move(rows)) {}
  // Both in step order, merged (at one step, the exception first).
  static std::shared_ptr<const VectorEventRows> merge(
      const std::vector<TraceEvent>& events, const std::vector<ReplayedException>& exceptions);
  uint64_t count() const override { return rows_.size(); }
  void read(uint64_t first, uint64_t n, std::vector<EventRow>& out) const override;

 private:
  std::vector<EventRow> rows_;
};

class TraceEventRows final : public EventRows {
 public:
  // Opens `path` again (the engine's reader belongs to its thread).
  static Result<std::shared_ptr<TraceEventRows>> open(const std::string& path);
  uint64_t count() const override { return starts_.empty() ? 0 : starts_.back(); }
  void read(uint64_t first, uint64_t n, std::vector<EventRow>& out) const override;
  // Chunks decoded so far (tests: pages come from few chunks).
  uint64_t chunksDecoded() const { return decoded_; }

 private:
  explicit TraceEventRows(TraceReader reader);

  TraceReader reader_;
  std::vector<uint64_t> starts_;  // starts_[i]: row of chunk i's first event; back() = count
  // The last decoded chunk.
  mutable size_t cachedChunk_ = SIZE_MAX;
  mutable std::vector<TraceEvent> cached_;
  mutable uint64_t decoded_ = 0;
};

class EventListModel : public QAbstractTableModel {
  Q_OBJECT

 public:
  enum Column { kStep, kKind, kDetail, kColumns };
  static constexpr uint64_t kPageRows = 256;
  static constexpr size_t kMaxPages = 64;

  explicit EventListModel(QObject* parent = nullptr);
  void setRows(EventRowsPtr rows);

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation o, int role) const override;

  // The row `row` (read on demand); nullptr outside the list.
  const EventRow* event(int row) const;
  // Rows read from the source so far (pages × kPageRows at most).
  uint64_t rowsRead() const { return rowsRead_; }
  // The first row whose step is >= `step` (binary search over pages).
  int rowAtStep(uint64_t step) const;
  // "serial out 'A'", "in port 0x60 → 0x1c", "interrupt vector 0x20", ...
  // "exception #PF (error code 0x2)".
  static QString describe(const TraceEvent& e);
  static QString describe(const EventRow& row);

 private:
  const std::vector<EventRow>* page(uint64_t index) const;

  EventRowsPtr rows_;
  // Page number -> events; `lru_` holds the page numbers, most recent first.
  mutable std::map<uint64_t, std::vector<EventRow>> pages_;
  mutable std::list<uint64_t> lru_;
  mutable uint64_t rowsRead_ = 0;
};

}  // namespace ttvm::ui

Q_DECLARE_METATYPE(ttvm::ui::EventRowsPtr)
