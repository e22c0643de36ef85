#include "ttvm/ui/memory_model.h"

#include <QBrush>
#include <QColor>
#include <QFontDatabase>

namespace ttvm::ui {

MemoryModel::MemoryModel(QObject* parent) : QAbstractTableModel(parent) {}

void MemoryModel::setBytes(uint64_t address, std::vector<int16_t> bytes, uint64_t step) {
  beginResetModel();
  // A new window at the same step (the address moved) keeps the reference,
  // so the highlighting still shows what the last motion changed.
  if (!bytes_.empty() && step != step_) {
    previous_ = Window{address_, step_, bytes_};
    hasPrevious_ = true;
  }
  address_ = address;
  step_ = step;
  bytes_ = std::move(bytes);
  endResetModel();
}

int MemoryModel::rowCount(const QModelIndex& parent) const {
  if (parent.isValid()) return 0;
  return static_cast<int>((bytes_.size() + kBytesPerRow - 1) / kBytesPerRow);
}

int MemoryModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : kAsciiColumn + 1;
}

int MemoryModel::byteAt(uint64_t offset) const {
  return offset < bytes_.size() ? bytes_[offset] : -1;
}

int MemoryModel::previousByte(uint64_t linear) const {
  if (!hasPrevious_ || linear < previous_.address ||
      linear - previous_.address >= previous_.bytes.size())
    return -2;
  return previous_.bytes[linear - previous_.address];
}

bool MemoryModel::changed(uint64_t offset) const {
  if (offset >= bytes_.size()) return false;
  const int before = previousByte(address_ + offset);
  return before != -2 && before != bytes_[offset];
}

QVariant MemoryModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= rowCount()) return {};
  if (role == Qt::FontRole) return QFontDatabase::systemFont(QFontDatabase::FixedFont);
  const size_t first = static_cast<size_t>(index.row()) * kBytesPerRow;
  const size_t last = std::min(bytes_.size(), first + kBytesPerRow);
  const int col = index.column();
  if (col > kAddressColumn && col < kAsciiColumn) {
    const size_t i = first + static_cast<size_t>(col - 1);
    if (i >= last) return {};
    if (role == Qt::ForegroundRole)
      return changed(i) ? QVariant(QBrush(QColor(Qt::red))) : QVariant();
    if (role == Qt::ToolTipRole && changed(i)) {
      const int before = previousByte(address_ + i);
      return QStringLiteral("was %1 at step %2")
          .arg(before < 0 ? QStringLiteral("??")
                          : QStringLiteral("%1").arg(before, 2, 16, QLatin1Char('0')))
          .arg(previous_.step);
    }
    if (role != Qt::DisplayRole) return {};
    const int b = bytes_[i];
    return b < 0 ? QStringLiteral("??") : QStringLiteral("%1").arg(b, 2, 16, QLatin1Char('0'));
  }
  if (role != Qt::DisplayRole) return {};
  if (col == kAddressColumn)
    return QStringLiteral("%1").arg(address_ + first, 16, 16, QLatin1Char('0'));
  QString out;
  for (size_t i = first; i < last; ++i) {
    const int b = bytes_[i];
    out += (b >= 0x20 && b < 0x7F) ? QChar(b) : QChar('.');
  }
  return out;
}

QVariant MemoryModel::headerData(int section, Qt::Orientation o, int role) const {
  if (o != Qt::Horizontal || role != Qt::DisplayRole) return {};
  if (section == kAddressColumn) return QStringLiteral("Address");
  if (section == kAsciiColumn) return QStringLiteral("ASCII");
  return QStringLiteral("%1").arg(section - 1, 0, 16);
}

}  // namespace ttvm::ui
