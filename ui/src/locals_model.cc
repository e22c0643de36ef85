#include "ttvm/ui/locals_model.h"

#include <QBrush>
#include <QColor>
#include <QFontDatabase>

namespace ttvm::ui {

LocalsModel::LocalsModel(QObject* parent) : QAbstractTableModel(parent) {}

void LocalsModel::setVariables(std::vector<GuestVariable> variables, const QString& function,
                               uint64_t step) {
  beginResetModel();
  if (step != step_) {
    before_ = std::move(now_);
    now_.clear();
    step_ = step;
  }
  function_ = function;
  Values& v = now_[function];
  for (const GuestVariable& g : variables) v[g.name] = g.value;
  variables_ = std::move(variables);
  endResetModel();
}

int LocalsModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : static_cast<int>(variables_.size());
}

int LocalsModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : kColumns;
}

const GuestVariable* LocalsModel::variable(int row) const {
  return row >= 0 && row < rowCount() ? &variables_[static_cast<size_t>(row)] : nullptr;
}

bool LocalsModel::changed(int row) const {
  const GuestVariable* g = variable(row);
  if (g == nullptr) return false;
  auto f = before_.find(function_);
  if (f == before_.end()) return false;
  auto it = f->second.find(g->name);
  return it != f->second.end() && it->second != g->value;
}

QString LocalsModel::value(const QString& name) const {
  for (const GuestVariable& g : variables_)
    if (QString::fromStdString(g.name) == name) return QString::fromStdString(g.value);
  return {};
}

QVariant LocalsModel::data(const QModelIndex& index, int role) const {
  const GuestVariable* g = variable(index.row());
  if (g == nullptr) return {};
  switch (role) {
    case Qt::DisplayRole:
      switch (index.column()) {
        case kName: return QString::fromStdString(g->name);
        case kValue: return QString::fromStdString(g->value);
        default:
          return g->parameter ? QString::fromStdString(g->type) + QStringLiteral(" (argument)")
                              : QString::fromStdString(g->type);
      }
    case Qt::ToolTipRole:
      return g->address ? QStringLiteral("at 0x%1").arg(*g->address, 0, 16) : QVariant();
    case Qt::ForegroundRole:
      if (index.column() == kValue && changed(index.row())) return QBrush(QColor(Qt::red));
      return {};
    case Qt::FontRole: return QFontDatabase::systemFont(QFontDatabase::FixedFont);
    default: return {};
  }
}

QVariant LocalsModel::headerData(int section, Qt::Orientation o, int role) const {
  if (o != Qt::Horizontal || role != Qt::DisplayRole) return {};
  switch (section) {
    case kName: return QStringLiteral("Name");
    case kValue: return QStringLiteral("Value");
    default: return QStringLiteral("Type");
  }
}

}  // namespace ttvm::ui
