// CallStackModel: the call-stack dock's model, one row per frame of the
// snapshot's backtrace (frame number, function, file:line). The selected
// frame is the one whose source and variables the other docks show.
#pragma once

#include <QAbstractTableModel>
#include <vector>

#include "ttvm/ui/snapshot.h"

namespace ttvm::ui {

class CallStackModel : public QAbstractTableModel {
  Q_OBJECT

 public:
  enum Column { kNumber, kFunction, kLocation, kColumns };

  explicit CallStackModel(QObject* parent = nullptr);
  void setFrames(std::vector<FrameInfo> frames);

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation o, int role) const override;

  const FrameInfo* frame(int row) const;

 private:
  std::vector<FrameInfo> frames_;
};

}  // namespace ttvm::ui
