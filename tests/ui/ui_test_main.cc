// Runs every QtTest class of ttvm-ui; the exit status is the number of
// failed test functions (0 = all passed).
#include <QApplication>
#include <QtTest>

#include "address_parser_test.h"
#include "main_window_test.h"

int main(int argc, char** argv) {
  // Offscreen unless the caller chose a platform (CTest sets offscreen too).
  if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
  QApplication app(argc, argv);
  int failures = 0;
  {
    ttvm::ui::AddressParserTest t;
    failures += QTest::qExec(&t, argc, argv);
  }
  {
    ttvm::ui::MainWindowTest t;
    failures += QTest::qExec(&t, argc, argv);
  }
  return failures;
}
