#include "ttvm/ui/memory_model.h"

#include <QFontDatabase>

namespace ttvm::ui {

MemoryModel::MemoryModel(QObject* parent) : QAbstractTableModel(parent) {}

void MemoryModel::setBytes(uint64_t address, std::vector<int16_t> bytes) {
  beginResetModel();
  address_ = address;
  bytes_ = std::move(bytes);
  endResetModel();
}

int MemoryModel::rowCount(const QModelIndex& parent) const {
  if (parent.isValid()) return 0;
  return static_cast<int>((bytes_.size() + kBytesPerRow - 1) / kBytesPerRow);
}

int MemoryModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : 3;
}

int MemoryModel::byteAt(uint64_t offset) const {
  return offset < bytes_.size() ? bytes_[offset] : -1;
}

QVariant MemoryModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= rowCount()) return {};
  if (role == Qt::FontRole) return QFontDatabase::systemFont(QFontDatabase::FixedFont);
  if (role != Qt::DisplayRole) return {};
  const size_t first = static_cast<size_t>(index.row()) * kBytesPerRow;
  const size_t last = std::min(bytes_.size(), first + kBytesPerRow);
  if (index.column() == 0)
    return QStringLiteral("%1").arg(address_ + first, 16, 16, QLatin1Char('0'));
  QString out;
  for (size_t i = first; i < last; ++i) {
    const int b = bytes_[i];
    if (index.column() == 1) {
      if (i != first) out += (i - first == 8) ? QStringLiteral("  ") : QStringLiteral(" ");
      out += b < 0 ? QStringLiteral("??") : QStringLiteral("%1").arg(b, 2, 16, QLatin1Char('0'));
    } else {
      out += (b >= 0x20 && b < 0x7F) ? QChar(b) : QChar('.');
    }
  }
  return out;
}

QVariant MemoryModel::headerData(int section, Qt::Orientation o, int role) const {
  if (o != Qt::Horizontal || role != Qt::DisplayRole) return {};
  switch (section) {
    case 0: return QStringLiteral("Address");
    case 1: return QStringLiteral("Hex");
    default: return QStringLiteral("ASCII");
  }
}

}  // namespace ttvm::ui
