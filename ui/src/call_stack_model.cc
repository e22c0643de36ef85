#include "ttvm/ui/call_stack_model.h"

#include <QBrush>
#include <QColor>
#include <QFileInfo>
#include <QFontDatabase>

namespace ttvm::ui {

CallStackModel::CallStackModel(QObject* parent) : QAbstractTableModel(parent) {}

void CallStackModel::setFrames(std::vector<FrameInfo> frames) {
  beginResetModel();
  frames_ = std::move(frames);
  endResetModel();
}

int CallStackModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : static_cast<int>(frames_.size());
}

int CallStackModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : kColumns;
}

const FrameInfo* CallStackModel::frame(int row) const {
  return row >= 0 && row < rowCount() ? &frames_[static_cast<size_t>(row)] : nullptr;
}

QVariant CallStackModel::data(const QModelIndex& index, int role) const {
  const FrameInfo* f = frame(index.row());
  if (f == nullptr) return {};
  switch (role) {
    case Qt::DisplayRole:
      switch (index.column()) {
        case kNumber: return QStringLiteral("#%1").arg(index.row());
        case kFunction:
          if (f->inlined) return f->function + QStringLiteral(" (inlined)");
          return f->unreliable ? QStringLiteral("? ") + f->function : f->function;
        default:
          if (!f->source) return QString();
          return QStringLiteral("%1:%2")
              .arg(QFileInfo(QString::fromStdString(f->source->file)).fileName())
              .arg(f->source->line);
      }
    case Qt::ToolTipRole:
      return f->source ? QStringLiteral("%1:%2 (pc 0x%3)")
                             .arg(QString::fromStdString(f->source->file))
                             .arg(f->source->line)
                             .arg(f->pc, 0, 16)
                       : QStringLiteral("pc 0x%1").arg(f->pc, 0, 16);
    case Qt::ForegroundRole:
      if (f->unreliable) return QBrush(QColor(Qt::gray));
      return {};
    case Qt::FontRole: return QFontDatabase::systemFont(QFontDatabase::FixedFont);
    default: return {};
  }
}

QVariant CallStackModel::headerData(int section, Qt::Orientation o, int role) const {
  if (o != Qt::Horizontal || role != Qt::DisplayRole) return {};
  switch (section) {
    case kNumber: return QStringLiteral("#");
    case kFunction: return QStringLiteral("Function");
    default: return QStringLiteral("Source");
  }
}

}  // namespace ttvm::ui
