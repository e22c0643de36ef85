// MemoryModel: the memory dock's model, 16 bytes a row (address, hex,
// ASCII) of the snapshot's memory window; "??" for unmapped bytes.
#pragma once

#include <QAbstractTableModel>
#include <cstdint>
#include <vector>

namespace ttvm::ui {

class MemoryModel : public QAbstractTableModel {
  Q_OBJECT

 public:
  static constexpr int kBytesPerRow = 16;

  explicit MemoryModel(QObject* parent = nullptr);
  // bytes[i]: the byte at address + i, or -1 when unmapped.
  void setBytes(uint64_t address, std::vector<int16_t> bytes);

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation o, int role) const override;

  uint64_t address() const { return address_; }
  int byteAt(uint64_t offset) const;  // -1 unmapped or outside the window

 private:
  uint64_t address_ = 0;
  std::vector<int16_t> bytes_;
};

}  // namespace ttvm::ui
