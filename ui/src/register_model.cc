#include "ttvm/ui/register_model.h"

#include <QBrush>
#include <QColor>
#include <QFontDatabase>
#include <QStringList>
#include <utility>

namespace ttvm::ui {

const std::vector<RegisterModel::Row>& RegisterModel::rows() {
  static const std::vector<Row> kRows = {
      {"rax", [](const CpuState& s) { return s.reg(Gpr::kRax); }, 16},
      {"rbx", [](const CpuState& s) { return s.reg(Gpr::kRbx); }, 16},
      {"rcx", [](const CpuState& s) { return s.reg(Gpr::kRcx); }, 16},
      {"rdx", [](const CpuState& s) { return s.reg(Gpr::kRdx); }, 16},
      {"rsi", [](const CpuState& s) { return s.gpr[6]; }, 16},
      {"rdi", [](const CpuState& s) { return s.gpr[7]; }, 16},
      {"rbp", [](const CpuState& s) { return s.reg(Gpr::kRbp); }, 16},
      {"rsp", [](const CpuState& s) { return s.reg(Gpr::kRsp); }, 16},
      {"r8", [](const CpuState& s) { return s.gpr[8]; }, 16},
      {"r9", [](const CpuState& s) { return s.gpr[9]; }, 16},
      {"r10", [](const CpuState& s) { return s.gpr[10]; }, 16},
      {"r11", [](const CpuState& s) { return s.gpr[11]; }, 16},
      {"r12", [](const CpuState& s) { return s.gpr[12]; }, 16},
      {"r13", [](const CpuState& s) { return s.gpr[13]; }, 16},
      {"r14", [](const CpuState& s) { return s.gpr[14]; }, 16},
      {"r15", [](const CpuState& s) { return s.gpr[15]; }, 16},
      {"rip", [](const CpuState& s) { return s.rip; }, 16},
      {"rflags", [](const CpuState& s) { return s.rflags; }, 8},
      {"cs", [](const CpuState& s) { return uint64_t{s.segment(SegReg::kCs).selector}; }, 4},
      {"ss", [](const CpuState& s) { return uint64_t{s.segment(SegReg::kSs).selector}; }, 4},
      {"ds", [](const CpuState& s) { return uint64_t{s.segment(SegReg::kDs).selector}; }, 4},
      {"es", [](const CpuState& s) { return uint64_t{s.segment(SegReg::kEs).selector}; }, 4},
      {"fs", [](const CpuState& s) { return uint64_t{s.segment(SegReg::kFs).selector}; }, 4},
      {"gs", [](const CpuState& s) { return uint64_t{s.segment(SegReg::kGs).selector}; }, 4},
      {"fs_base", [](const CpuState& s) { return s.segment(SegReg::kFs).base; }, 16},
      {"gs_base", [](const CpuState& s) { return s.segment(SegReg::kGs).base; }, 16},
      {"cr0", [](const CpuState& s) { return s.cr0; }, 8},
      {"cr2", [](const CpuState& s) { return s.cr2; }, 16},
      {"cr3", [](const CpuState& s) { return s.cr3; }, 16},
      {"cr4", [](const CpuState& s) { return s.cr4; }, 8},
      {"efer", [](const CpuState& s) { return s.msr.efer; }, 8},
  };
  return kRows;
}

QString RegisterModel::flagNames(uint64_t rflags) {
  // Set flags by name, most significant first, as gdb prints eflags; IOPL
  // when it is not 0.
  static const std::pair<int, const char*> kFlags[] = {
      {21, "ID"}, {20, "VIP"}, {19, "VIF"}, {18, "AC"}, {17, "VM"}, {16, "RF"},
      {14, "NT"}, {11, "OF"},  {10, "DF"},  {9, "IF"},  {8, "TF"},  {7, "SF"},
      {6, "ZF"},  {4, "AF"},   {2, "PF"},   {0, "CF"}};
  QStringList set;
  for (const auto& [bit, name] : kFlags)
    if (rflags & (uint64_t{1} << bit)) set << QString::fromLatin1(name);
  const uint64_t iopl = (rflags >> 12) & 3;
  if (iopl != 0) set << QStringLiteral("IOPL=%1").arg(iopl);
  return QStringLiteral("[ %1 ]").arg(set.join(QLatin1Char(' ')));
}

RegisterModel::RegisterModel(QObject* parent) : QAbstractTableModel(parent) {}

void RegisterModel::setState(const CpuState& state) {
  // A new snapshot of the same position (the memory window moved, a
  // breakpoint was toggled) keeps the reference, so the highlighting still
  // shows what the last motion changed.
  if (!current_ || current_->steps != state.steps) previous_ = current_;
  current_ = state;
  // The row set never changes; only values and highlighting do.
  emit dataChanged(index(0, 0), index(rowCount() - 1, columnCount() - 1));
}

int RegisterModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : static_cast<int>(rows().size());
}

int RegisterModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : 2;
}

QString RegisterModel::name(int row) const {
  return row >= 0 && row < rowCount() ? QString::fromLatin1(rows()[row].name) : QString();
}

uint64_t RegisterModel::value(int row) const {
  if (!current_ || row < 0 || row >= rowCount()) return 0;
  return rows()[row].read(*current_);
}

bool RegisterModel::changed(int row) const {
  if (!current_ || !previous_ || row < 0 || row >= rowCount()) return false;
  return rows()[row].read(*current_) != rows()[row].read(*previous_);
}

int RegisterModel::rowOf(const QString& n) const {
  for (int i = 0; i < rowCount(); ++i)
    if (n == QLatin1String(rows()[i].name)) return i;
  return -1;
}

QVariant RegisterModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= rowCount()) return {};
  const Row& r = rows()[index.row()];
  switch (role) {
    case Qt::DisplayRole:
      if (index.column() == 0) return QString::fromLatin1(r.name);
      if (!current_) return QString();
      if (QLatin1String(r.name) == QLatin1String("rflags"))
        return QStringLiteral("%1  %2")
            .arg(r.read(*current_), r.digits, 16, QLatin1Char('0'))
            .arg(flagNames(r.read(*current_)));
      return QStringLiteral("%1").arg(r.read(*current_), r.digits, 16, QLatin1Char('0'));
    case Qt::ForegroundRole:
      if (index.column() == 1 && changed(index.row())) return QBrush(QColor(Qt::red));
      return {};
    case Qt::FontRole: return QFontDatabase::systemFont(QFontDatabase::FixedFont);
    default: return {};
  }
}

QVariant RegisterModel::headerData(int section, Qt::Orientation o, int role) const {
  if (o != Qt::Horizontal || role != Qt::DisplayRole) return {};
  return section == 0 ? QStringLiteral("Register") : QStringLiteral("Value");
}

}  // namespace ttvm::ui
