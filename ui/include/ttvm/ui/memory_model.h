// MemoryModel: the memory dock's model, 16 bytes a row: the address, one
// column per byte (hex, "??" when unmapped) and the ASCII text. A byte that
// differs from the one shown at the same address at the previous position
// (the last window of another step) is "changed" and drawn in red, as the
// registers are.
#pragma once

#include <QAbstractTableModel>
#include <cstdint>
#include <vector>

namespace ttvm::ui {

class MemoryModel : public QAbstractTableModel {
  Q_OBJECT

 public:
  static constexpr int kBytesPerRow = 16;
  // Columns: kAddressColumn, then byte i at column 1 + i, then kAsciiColumn.
  static constexpr int kAddressColumn = 0;
  static constexpr int kAsciiColumn = 1 + kBytesPerRow;

  explicit MemoryModel(QObject* parent = nullptr);
  // bytes[i]: the byte at address + i, or -1 when unmapped, at `step`.
  void setBytes(uint64_t address, std::vector<int16_t> bytes, uint64_t step = 0);

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation o, int role) const override;

  uint64_t address() const { return address_; }
  int byteAt(uint64_t offset) const;  // -1 unmapped or outside the window
  // The byte at address() + offset differs from the previous position's.
  bool changed(uint64_t offset) const;

 private:
  struct Window {
    uint64_t address = 0;
    uint64_t step = 0;
    std::vector<int16_t> bytes;
  };
  int previousByte(uint64_t linear) const;  // -2 when not in the reference window

  uint64_t address_ = 0;
  uint64_t step_ = 0;
  std::vector<int16_t> bytes_;
  Window previous_;  // the reference for "changed"
  bool hasPrevious_ = false;
};

}  // namespace ttvm::ui
