#pragma once

#include <QObject>

namespace ttvm::ui {

class AddressParserTest : public QObject {
  Q_OBJECT

 private slots:
  void numbers();
  void ranges();
  void rejectsGarbage();
};

}  // namespace ttvm::ui
