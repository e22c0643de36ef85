// RegisterModel: the registers dock's model (name, value). A register whose
// value differs from the one shown at the previous position (the last
// snapshot with a different step) is "changed" and drawn in red, as in x64dbg.
// RFLAGS is shown with its set flags by name.
#pragma once

#include <QAbstractTableModel>
#include <cstdint>
#include <optional>
#include <vector>

#include "ttvm/emulator/cpu_state.h"

namespace ttvm::ui {

class RegisterModel : public QAbstractTableModel {
  Q_OBJECT

 public:
  explicit RegisterModel(QObject* parent = nullptr);

  // Shows `state`; when its step differs from the one shown, that one
  // becomes the reference for "changed".
  void setState(const CpuState& state);

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation o, int role) const override;

  // For tests and tooltips.
  QString name(int row) const;
  uint64_t value(int row) const;
  bool changed(int row) const;
  int rowOf(const QString& name) const;
  // "[ IF ZF PF ]": the set flags of `rflags` by name (shown after its value).
  static QString flagNames(uint64_t rflags);

 private:
  struct Row {
    const char* name;
    uint64_t (*read)(const CpuState&);
    int digits;  // hex digits shown
  };
  static const std::vector<Row>& rows();

  std::optional<CpuState> current_;
  std::optional<CpuState> previous_;
};

}  // namespace ttvm::ui
