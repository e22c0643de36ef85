// StopListModel: the Breakpoints & Watchpoints dock's model: the
// snapshot's breakpoints (address, symbol, source line) then its write
// watchpoints (range, symbol), one row each.
#pragma once

#include <QAbstractTableModel>
#include <cstdint>
#include <vector>

#include "ttvm/ui/snapshot.h"

namespace ttvm::ui {

class StopListModel : public QAbstractTableModel {
  Q_OBJECT

 public:
  enum Column { kKind, kWhere, kSymbol, kColumns };
  struct Row {
    bool watchpoint = false;
    uint64_t address = 0;
    uint64_t length = 0;  // watchpoints
    QString symbol;       // "key_dup+0x54 (workload.c:64)"
  };

  explicit StopListModel(QObject* parent = nullptr);
  // From a snapshot, naming addresses with `symbols` (may be null).
  void setStops(const Snapshot& s, const GuestSymbols* symbols);

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation o, int role) const override;

  const Row* row(int r) const;

 private:
  std::vector<Row> rows_;
};

// A named step of the history (Debug → Bookmark here), kept beside the
// trace (bookmark_file.h).
struct Bookmark {
  uint64_t step = 0;
  QString name;
  bool operator==(const Bookmark&) const = default;
};

// BookmarkModel: the Bookmarks dock's model (step, name), in step order.
class BookmarkModel : public QAbstractTableModel {
  Q_OBJECT

 public:
  explicit BookmarkModel(QObject* parent = nullptr);
  // Adds a bookmark (replacing one at the same step); returns its row.
  int add(Bookmark b);
  void remove(int row);
  void clear();

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation o, int role) const override;

  const Bookmark* bookmark(int row) const;
  const std::vector<Bookmark>& marks() const { return marks_; }

 private:
  std::vector<Bookmark> marks_;
};

}  // namespace ttvm::ui
