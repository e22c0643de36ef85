// ttvm-ui [TRACE]: the time-travel GUI. Opens TRACE at the end of its
// history (the crash); see docs/ui.md.
#include <QApplication>
#include <QCommandLineParser>
#include <QCoreApplication>

#include "ttvm/ui/main_window.h"

namespace {

// The command line; `parser.process` prints --help / --version and exits,
// or prints the error and exits 1.
void describe(QCommandLineParser& parser, const QCommandLineOption& symbols) {
  parser.setApplicationDescription(QStringLiteral("ttvm time-travel debugger GUI"));
  parser.addHelpOption();
  parser.addPositionalArgument(QStringLiteral("trace"), QStringLiteral("a .ttvm trace to open"));
  parser.addOption(symbols);
}

}  // namespace

int main(int argc, char** argv) {
  const QCommandLineOption symbols(
      QStringLiteral("symbols"),
      QStringLiteral("More guest symbols: a System.map or an ELF file (vmlinux, with or without "
                     "DWARF); repeatable. The trace's own image's symbols are always used."),
      QStringLiteral("FILE"));
  // The command line is parsed before the GUI exists: a QApplication needs
  // a display (it aborts without one), --help and a bad option do not.
  {
    QCoreApplication core(argc, argv);
    QCoreApplication::setApplicationName(QStringLiteral("ttvm-ui"));
    QCommandLineParser parser;
    describe(parser, symbols);
    parser.process(core);
  }
  QApplication app(argc, argv);
  QApplication::setApplicationName(QStringLiteral("ttvm-ui"));
  QCommandLineParser parser;
  describe(parser, symbols);
  parser.process(app);
  ttvm::ui::MainWindow w;
  // Failures are in the status bar; also on stderr for scripts and logs.
  QObject::connect(&w, &ttvm::ui::MainWindow::operationFailed,
                   [](const QString& m) { qWarning("ttvm-ui: %s", qPrintable(m)); });
  w.show();
  const QStringList args = parser.positionalArguments();
  if (!args.isEmpty()) w.openTrace(args.first(), parser.values(symbols));
  return QApplication::exec();
}
