#include "ttvm/ui/stop_list_model.h"

#include <QFileInfo>
#include <QFontDatabase>
#include <algorithm>

namespace ttvm::ui {

namespace {

QString hexOf(uint64_t v) {
  return QStringLiteral("0x") + QString::number(v, 16);
}

QString nameOf(uint64_t address, const GuestSymbols* symbols) {
  if (symbols == nullptr) return {};
  QString out;
  if (auto d = symbols->describe(address)) out = QString::fromStdString(*d);
  if (auto l = symbols->sourceLine(address))
    out += QStringLiteral(" (%1:%2)")
               .arg(QFileInfo(QString::fromStdString(l->file)).fileName())
               .arg(l->line);
  return out;
}

}  // namespace

StopListModel::StopListModel(QObject* parent) : QAbstractTableModel(parent) {}

void StopListModel::setStops(const Snapshot& s, const GuestSymbols* symbols) {
  beginResetModel();
  rows_.clear();
  for (uint64_t a : s.breakpoints) rows_.push_back(Row{false, a, 0, nameOf(a, symbols)});
  for (const auto& [a, len] : s.watchpoints) rows_.push_back(Row{true, a, len, nameOf(a, symbols)});
  endResetModel();
}

int StopListModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : static_cast<int>(rows_.size());
}

int StopListModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : kColumns;
}

const StopListModel::Row* StopListModel::row(int r) const {
  return r >= 0 && r < rowCount() ? &rows_[static_cast<size_t>(r)] : nullptr;
}

QVariant StopListModel::data(const QModelIndex& index, int role) const {
  const Row* r = row(index.row());
  if (r == nullptr) return {};
  if (role == Qt::FontRole) return QFontDatabase::systemFont(QFontDatabase::FixedFont);
  if (role != Qt::DisplayRole) return {};
  switch (index.column()) {
    case kKind:
      return r->watchpoint ? QStringLiteral("watch (write)") : QStringLiteral("breakpoint");
    case kWhere:
      return r->watchpoint ? QStringLiteral("%1:%2").arg(hexOf(r->address)).arg(r->length)
                           : hexOf(r->address);
    default: return r->symbol;
  }
}

QVariant StopListModel::headerData(int section, Qt::Orientation o, int role) const {
  if (o != Qt::Horizontal || role != Qt::DisplayRole) return {};
  switch (section) {
    case kKind: return QStringLiteral("Kind");
    case kWhere: return QStringLiteral("Address");
    default: return QStringLiteral("Symbol");
  }
}

BookmarkModel::BookmarkModel(QObject* parent) : QAbstractTableModel(parent) {}

int BookmarkModel::add(Bookmark b) {
  beginResetModel();
  auto it = std::lower_bound(marks_.begin(), marks_.end(), b.step,
                             [](const Bookmark& m, uint64_t step) { return m.step < step; });
  if (it != marks_.end() && it->step == b.step)
    *it = std::move(b);
  else
    it = marks_.insert(it, std::move(b));
  endResetModel();
  return static_cast<int>(it - marks_.begin());
}

void BookmarkModel::remove(int row) {
  if (bookmark(row) == nullptr) return;
  beginRemoveRows({}, row, row);
  marks_.erase(marks_.begin() + row);
  endRemoveRows();
}

void BookmarkModel::clear() {
  beginResetModel();
  marks_.clear();
  endResetModel();
}

int BookmarkModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : static_cast<int>(marks_.size());
}

int BookmarkModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : 2;
}

const Bookmark* BookmarkModel::bookmark(int row) const {
  return row >= 0 && row < rowCount() ? &marks_[static_cast<size_t>(row)] : nullptr;
}

QVariant BookmarkModel::data(const QModelIndex& index, int role) const {
  const Bookmark* b = bookmark(index.row());
  if (b == nullptr || role != Qt::DisplayRole) return {};
  return index.column() == 0 ? QString::number(b->step) : b->name;
}

QVariant BookmarkModel::headerData(int section, Qt::Orientation o, int role) const {
  if (o != Qt::Horizontal || role != Qt::DisplayRole) return {};
  return section == 0 ? QStringLiteral("Step") : QStringLiteral("Bookmark");
}

}  // namespace ttvm::ui
