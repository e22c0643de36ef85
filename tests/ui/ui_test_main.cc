// Runs every QtTest class of ttvm-ui; the exit status is the number of
// failed test functions (0 = all passed). Test-function names on the command
// line go to the class that has them (options go to every class), so
// `ttvm_ui_tests stepBackChangesStepAndRegisters` runs just that one.
#include <QApplication>
#include <QtTest>
#include <vector>

#include "address_parser_test.h"
#include "main_window_test.h"

namespace {

int runClass(QObject* test, int argc, char** argv) {
  std::vector<char*> args{argv[0]};
  bool named = false;  // the command line names functions
  bool mine = false;   // ... and some are this class's
  for (int i = 1; i < argc; ++i) {
    const QByteArray a(argv[i]);
    if (a.startsWith('-')) {
      args.push_back(argv[i]);
      // Options with a value (-o file, -maxwarnings n, ...) keep it.
      if (i + 1 < argc && (a == "-o" || a == "-maxwarnings" || a == "-eventdelay" ||
                           a == "-keydelay" || a == "-mousedelay"))
        args.push_back(argv[++i]);
      continue;
    }
    named = true;
    const qsizetype colon = a.indexOf(':');  // "function:dataTag"
    const QByteArray fn = colon < 0 ? a : a.left(colon);
    if (test->metaObject()->indexOfMethod(fn + "()") >= 0) {
      args.push_back(argv[i]);
      mine = true;
    }
  }
  if (named && !mine) return 0;
  return QTest::qExec(test, static_cast<int>(args.size()), args.data());
}

}  // namespace

int main(int argc, char** argv) {
  // Offscreen unless the caller chose a platform (CTest sets offscreen too).
  if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
  QApplication app(argc, argv);
  int failures = 0;
  {
    ttvm::ui::AddressParserTest t;
    failures += runClass(&t, argc, argv);
  }
  {
    ttvm::ui::MainWindowTest t;
    failures += runClass(&t, argc, argv);
  }
  return failures;
}
