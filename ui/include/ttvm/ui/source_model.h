// SourceModel: the source view's model, one row per line of one source
// file (line number, text). The line being executed in the selected frame
// is marked: blue with "→" for frame 0, grey for a caller's call site.
// Files are read from disk by the path the DWARF line tables give (the
// compiler's path); a file that is not there shows one row saying so.
#pragma once

#include <QAbstractTableModel>
#include <QHash>
#include <QString>
#include <QStringList>

namespace ttvm::ui {

class SourceModel : public QAbstractTableModel {
  Q_OBJECT

 public:
  enum Column { kLine, kText, kColumns };

  explicit SourceModel(QObject* parent = nullptr);
  // Shows `file` (read once, then cached) with `line` (1-based) marked;
  // `innermost`: the line is the one about to execute (frame 0). An empty
  // file clears the view (no line information here).
  void show(const QString& file, unsigned line, bool innermost);

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation o, int role) const override;

  const QString& file() const { return file_; }
  unsigned currentLine() const { return line_; }
  // Row of the marked line, -1 when none.
  int currentRow() const;
  QString lineText(unsigned line) const;  // 1-based; empty when out of range

 private:
  QString file_;
  unsigned line_ = 0;
  bool innermost_ = true;
  QStringList lines_;
  QHash<QString, QStringList> cache_;
};

}  // namespace ttvm::ui
