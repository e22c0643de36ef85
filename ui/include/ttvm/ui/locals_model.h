// LocalsModel: the locals dock's model, the parameters then the locals of
// the selected frame (name, value, type), as GuestSymbols::variablesAt
// gives them. A variable whose value differs from the one shown for the
// same function at the previous position (the last one of another step) is
// "changed" and drawn in red, as the registers are.
#pragma once

#include <QAbstractTableModel>
#include <QString>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ttvm/replayer/guest_symbols.h"

namespace ttvm::ui {

class LocalsModel : public QAbstractTableModel {
  Q_OBJECT

 public:
  enum Column { kName, kValue, kType, kColumns };

  explicit LocalsModel(QObject* parent = nullptr);
  // `function` names the frame's function (without offset); `step` the
  // position. The first call at a new step makes the previous frame-0
  // values the reference.
  void setVariables(std::vector<GuestVariable> variables, const QString& function, uint64_t step);

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation o, int role) const override;

  const GuestVariable* variable(int row) const;
  bool changed(int row) const;
  // The value of the variable called `name`, empty when none.
  QString value(const QString& name) const;

 private:
  using Values = std::map<std::string, std::string>;  // name -> value

  std::vector<GuestVariable> variables_;
  QString function_;
  uint64_t step_ = ~uint64_t{0};
  // Per function: the values shown at the current step, and at the
  // previous one (the reference).
  std::map<QString, Values> now_;
  std::map<QString, Values> before_;
};

}  // namespace ttvm::ui
