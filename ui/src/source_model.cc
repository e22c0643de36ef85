#include "ttvm/ui/source_model.h"

#include <QBrush>
#include <QColor>
#include <QFile>
#include <QFontDatabase>

namespace ttvm::ui {

SourceModel::SourceModel(QObject* parent) : QAbstractTableModel(parent) {}

void SourceModel::show(const QString& file, unsigned line, bool innermost) {
  if (file == file_ && line == line_ && innermost == innermost_) return;
  if (file != file_) {
    beginResetModel();
    file_ = file;
    auto it = cache_.find(file);
    if (it == cache_.end()) {
      QStringList text;
      QFile f(file);
      if (file.isEmpty()) {
        // No line here: an empty view.
      } else if (f.open(QIODevice::ReadOnly | QIODevice::Text)) {
        text = QString::fromUtf8(f.readAll()).split(QLatin1Char('\n'));
        if (!text.isEmpty() && text.last().isEmpty()) text.removeLast();
      } else {
        text << QStringLiteral("(source file %1 not found: %2)").arg(file, f.errorString());
      }
      it = cache_.insert(file, text);
    }
    lines_ = *it;
    line_ = line;
    innermost_ = innermost;
    endResetModel();
    return;
  }
  const int was = currentRow();
  line_ = line;
  innermost_ = innermost;
  for (int row : {was, currentRow()})
    if (row >= 0) emit dataChanged(index(row, 0), index(row, kColumns - 1));
}

int SourceModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : static_cast<int>(lines_.size());
}

int SourceModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : kColumns;
}

int SourceModel::currentRow() const {
  return line_ >= 1 && line_ <= static_cast<unsigned>(lines_.size()) ? static_cast<int>(line_ - 1)
                                                                     : -1;
}

QString SourceModel::lineText(unsigned line) const {
  return line >= 1 && line <= static_cast<unsigned>(lines_.size()) ? lines_[line - 1] : QString();
}

QVariant SourceModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= rowCount()) return {};
  const bool current = index.row() == currentRow();
  switch (role) {
    case Qt::DisplayRole:
      if (index.column() == kLine)
        return current && innermost_ ? QStringLiteral("→ %1").arg(index.row() + 1)
                                     : QString::number(index.row() + 1);
      return lines_[index.row()];
    case Qt::BackgroundRole:
      if (current) return QBrush(innermost_ ? QColor(0xcc, 0xe0, 0xff) : QColor(0xe4, 0xe4, 0xe4));
      return {};
    case Qt::TextAlignmentRole:
      if (index.column() == kLine) return int(Qt::AlignRight | Qt::AlignVCenter);
      return {};
    case Qt::FontRole: return QFontDatabase::systemFont(QFontDatabase::FixedFont);
    default: return {};
  }
}

QVariant SourceModel::headerData(int section, Qt::Orientation o, int role) const {
  if (o != Qt::Horizontal || role != Qt::DisplayRole) return {};
  return section == kLine ? QStringLiteral("Line") : file_;
}

}  // namespace ttvm::ui
