#include "ttvm/ui/disassembly_model.h"

#include <QBrush>
#include <QColor>
#include <QFontDatabase>

namespace ttvm::ui {

DisassemblyModel::DisassemblyModel(QObject* parent) : QAbstractTableModel(parent) {}

void DisassemblyModel::setLines(std::vector<DisasmLine> lines) {
  beginResetModel();
  lines_ = std::move(lines);
  endResetModel();
}

int DisassemblyModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : static_cast<int>(lines_.size());
}

int DisassemblyModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : kColumns;
}

const DisasmLine* DisassemblyModel::line(int row) const {
  return row >= 0 && row < rowCount() ? &lines_[static_cast<size_t>(row)] : nullptr;
}

int DisassemblyModel::currentRow() const {
  for (int i = 0; i < rowCount(); ++i)
    if (lines_[static_cast<size_t>(i)].current) return i;
  return -1;
}

QVariant DisassemblyModel::data(const QModelIndex& index, int role) const {
  const DisasmLine* l = line(index.row());
  if (l == nullptr) return {};
  switch (role) {
    case Qt::DisplayRole:
      switch (index.column()) {
        case kBreakpoint:
          return l->breakpoint ? QStringLiteral("●")
                               : (l->current ? QStringLiteral("→") : QString());
        case kAddress: return QStringLiteral("%1").arg(l->address, 16, 16, QLatin1Char('0'));
        case kBytes: return l->bytes;
        case kInstruction: return l->text;
        case kSymbol: return l->symbol;
        default: return {};
      }
    case Qt::BackgroundRole:
      if (l->current) return QBrush(QColor(0xc8, 0xe6, 0xff));
      if (l->breakpoint) return QBrush(QColor(0xff, 0xd0, 0xd0));
      return {};
    case Qt::ForegroundRole:
      if (index.column() == kBreakpoint && l->breakpoint) return QBrush(QColor(Qt::red));
      return {};
    case Qt::FontRole: return QFontDatabase::systemFont(QFontDatabase::FixedFont);
    default: return {};
  }
}

QVariant DisassemblyModel::headerData(int section, Qt::Orientation o, int role) const {
  if (o != Qt::Horizontal || role != Qt::DisplayRole) return {};
  switch (section) {
    case kBreakpoint: return QString();
    case kAddress: return QStringLiteral("Address");
    case kBytes: return QStringLiteral("Bytes");
    case kInstruction: return QStringLiteral("Instruction");
    case kSymbol: return QStringLiteral("Symbol");
    default: return {};
  }
}

}  // namespace ttvm::ui
