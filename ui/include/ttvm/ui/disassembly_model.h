// DisassemblyModel: the disassembly dock's model, the lines around RIP of
// the current snapshot (address, bytes, instruction, symbol). The line at
// RIP is highlighted; lines with a breakpoint are marked.
#pragma once

#include <QAbstractTableModel>
#include <vector>

#include "ttvm/ui/snapshot.h"

namespace ttvm::ui {

class DisassemblyModel : public QAbstractTableModel {
  Q_OBJECT

 public:
  enum Column { kBreakpoint, kAddress, kBytes, kInstruction, kSymbol, kColumns };

  explicit DisassemblyModel(QObject* parent = nullptr);
  void setLines(std::vector<DisasmLine> lines);

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation o, int role) const override;

  const DisasmLine* line(int row) const;
  int currentRow() const;  // the line at RIP, -1 when none

 private:
  std::vector<DisasmLine> lines_;
};

}  // namespace ttvm::ui
