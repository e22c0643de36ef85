// ttvm-ui [TRACE]: the time-travel GUI. Opens TRACE at the end of its
// history (the crash); see docs/ui.md.
#include <QApplication>
#include <QCommandLineParser>
#include <QCoreApplication>
#include <cstdio>

#include "ttvm/ui/main_window.h"

namespace {

// The command line; `parser.process` prints --help / --version and exits,
// or prints the error and exits 1.
void describe(QCommandLineParser& parser, const QCommandLineOption& symbols,
              const QCommandLineOption& engine) {
  parser.setApplicationDescription(QStringLiteral("ttvm time-travel debugger GUI"));
  parser.addHelpOption();
  parser.addPositionalArgument(QStringLiteral("trace"), QStringLiteral("a .ttvm trace to open"));
  parser.addOption(symbols);
  parser.addOption(engine);
}

}  // namespace

int main(int argc, char** argv) {
  const QCommandLineOption symbols(
      QStringLiteral("symbols"),
      QStringLiteral("More guest symbols: a System.map or an ELF file (vmlinux, with or without "
                     "DWARF); repeatable. The trace's own image's symbols are always used."),
      QStringLiteral("FILE"));
  const QCommandLineOption engine(
      QStringLiteral("engine"),
      QStringLiteral("The emulator engine that replays: fast (the default) or reference. A "
                     "divergence on the fast engine is replayed again on the reference, which "
                     "tells a fast-engine bug from a trace that disagrees with ttvm."),
      QStringLiteral("E"), QStringLiteral("fast"));
  // The command line is parsed before the GUI exists: a QApplication needs
  // a display (it aborts without one), --help and a bad option do not.
  {
    QCoreApplication core(argc, argv);
    QCoreApplication::setApplicationName(QStringLiteral("ttvm-ui"));
    QCommandLineParser parser;
    describe(parser, symbols, engine);
    parser.process(core);
    const QString e = parser.value(engine);
    if (e != QStringLiteral("fast") && e != QStringLiteral("reference")) {
      std::fprintf(stderr, "ttvm-ui: --engine '%s': use fast or reference\n", qPrintable(e));
      return 2;
    }
  }
  QApplication app(argc, argv);
  QApplication::setApplicationName(QStringLiteral("ttvm-ui"));
  QCommandLineParser parser;
  describe(parser, symbols, engine);
  parser.process(app);
  ttvm::ui::MainWindow w;
  // Failures are in the status bar; also on stderr for scripts and logs.
  QObject::connect(&w, &ttvm::ui::MainWindow::operationFailed,
                   [](const QString& m) { qWarning("ttvm-ui: %s", qPrintable(m)); });
  QObject::connect(&w, &ttvm::ui::MainWindow::engineFellBack,
                   [](const QString& m) { qWarning("ttvm-ui: %s", qPrintable(m)); });
  w.show();
  const QStringList args = parser.positionalArguments();
  const ttvm::CpuEngine cpuEngine = parser.value(engine) == QStringLiteral("reference")
                                        ? ttvm::CpuEngine::kReference
                                        : ttvm::CpuEngine::kFast;
  if (!args.isEmpty()) w.openTrace(args.first(), parser.values(symbols), cpuEngine);
  return QApplication::exec();
}
