#include "main_window_test.h"

#include <QDir>
#include <QElapsedTimer>
#include <QEventLoop>
#include <QFile>
#include <QHeaderView>
#include <QLabel>
#include <QPlainTextEdit>
#include <QProcess>
#include <QProgressBar>
#include <QRegularExpression>
#include <QScrollBar>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTableView>
#include <QThread>
#include <QTimer>
#include <QtTest>
#include <algorithm>
#include <functional>
#include <map>
#include <numeric>

#include "gdb_oracle.h"
#include "ttvm/formats/trace_reader.h"
#include "ttvm/replayer/timeline.h"
#include "ttvm/ui/bookmark_file.h"
#include "ttvm/ui/main_window.h"

namespace ttvm::ui {

namespace {

// Replay of 6 M steps plus reverse scans; generous for a loaded machine.
constexpr int kTimeoutMs = 180000;

// A System.map of the demo ELF (nm's output) with every name prefixed, so
// that a name can only come from it; its path, empty when nm failed.
QString prefixedSystemMap(const QTemporaryDir& dir, const QString& prefix) {
  const QString map = dir.filePath(prefix + QStringLiteral("demo.map"));
  QProcess nm;
  nm.setStandardOutputFile(map);
  nm.start(QStringLiteral("sh"),
           {QStringLiteral("-c"),
            QStringLiteral("nm -n " TTVM_BUILD_DIR "/guests/demo/demo.elf.elf | sed 's/ \\([^ "
                           "]*\\)$/ %1\\1/'")
                .arg(prefix)});
  return nm.waitForFinished(kTimeoutMs) && nm.exitCode() == 0 ? map : QString();
}

}  // namespace

// Waits (running the event loop) until the window's operation is over.
#define WAIT_IDLE(w) QTRY_VERIFY_WITH_TIMEOUT(!(w).busy(), kTimeoutMs)

#define OPEN(w)                                                     \
  do {                                                              \
    QVERIFY((w).openTrace(trace_));                                 \
    WAIT_IDLE(w);                                                   \
    QVERIFY2((w).snapshot().has_value(), "no snapshot after open"); \
  } while (0)

void MainWindowTest::initTestCase() {
  QVERIFY(dir_.isValid());
  const QString elf = QStringLiteral(TTVM_BUILD_DIR "/guests/demo/demo.elf");
  QVERIFY2(QFile::exists(elf), "build the ttvm_demo_guest target first");
  trace_ = dir_.filePath(QStringLiteral("demo.ttvm"));
  QProcess p;
  p.setProcessChannelMode(QProcess::MergedChannels);
  p.start(QStringLiteral(TTVM_BIN),
          {QStringLiteral("record"), QStringLiteral("--max-steps"), QStringLiteral("40000000"),
           QStringLiteral("--timeout"), QStringLiteral("120"), QStringLiteral("-o"), trace_, elf});
  QVERIFY(p.waitForFinished(kTimeoutMs));
  // The demo guest panics (exit status 6): that is the crash we debug.
  QVERIFY2(QFile::exists(trace_), p.readAll().constData());
  auto reader = TraceReader::open(trace_.toStdString());
  QVERIFY(reader.ok());
  auto tl = Timeline::open(*reader);
  QVERIFY(tl.ok());
  (*tl)->runToEnd();
  auto arena = (*tl)->symbols().find("arena");
  QVERIFY(arena.has_value());
  auto hit = (*tl)->lastWrite(*arena + 0x2FA8, 8, false, false);
  QVERIFY(hit.ok() && hit->has_value());
  storeStep_ = (**hit).step;
}

void MainWindowTest::opensAtTheEndOfTheHistory() {
  MainWindow w;
  w.show();
  QSignalSpy shown(&w, &MainWindow::snapshotShown);
  OPEN(w);
  QCOMPARE(shown.count(), 1);
  const Snapshot s = *w.snapshot();  // a copy: later operations replace it
  QVERIFY(s.endStep > 6000000);      // the demo runs about 6.28 M steps
  QCOMPARE(s.step, s.endStep);
  QCOMPARE(s.stopKind, StopKind::kHistoryEnd);
  // The same as the replayer says on its own.
  auto reader = TraceReader::open(trace_.toStdString());
  QVERIFY(reader.ok());
  auto tl = Timeline::open(*reader);
  QVERIFY(tl.ok());
  QCOMPARE((*tl)->runToEnd().step, s.endStep);
  QCOMPARE(w.registerModel().value(w.registerModel().rowOf(QStringLiteral("rip"))),
           (*tl)->registers().rip);
  // The console shows the guest's panic report (its #PF message).
  QVERIFY2(w.console()->toPlainText().contains(QStringLiteral("lookup")) ||
               w.console()->toPlainText().contains(QStringLiteral("70756b6f6f6c")),
           qPrintable(w.console()->toPlainText().right(600)));
  // Disassembly around RIP, with the line at RIP marked.
  QVERIFY(w.disassemblyModel().rowCount() > 10);
  const int cur = w.disassemblyModel().currentRow();
  QVERIFY(cur >= 0);
  QCOMPARE(w.disassemblyModel().line(cur)->address, s.registers.rip);
  QVERIFY(!w.disassemblyModel().line(cur)->text.isEmpty());
}

void MainWindowTest::stepBackChangesStepAndRegisters() {
  MainWindow w;
  OPEN(w);
  const uint64_t end = w.snapshot()->step;
  const int ripRow = w.registerModel().rowOf(QStringLiteral("rip"));
  const uint64_t ripAtEnd = w.registerModel().value(ripRow);
  QVERIFY(w.stepBackAction()->isEnabled());
  w.stepBackAction()->trigger();  // what Shift+F7 and the toolbar button do
  QVERIFY(w.busy());
  WAIT_IDLE(w);
  QCOMPARE(w.snapshot()->step, end - 1);
  QVERIFY(w.registerModel().value(ripRow) != ripAtEnd);
  QVERIFY(w.registerModel().changed(ripRow));
  QCOMPARE(w.registerModel()
               .data(w.registerModel().index(ripRow, 1), Qt::ForegroundRole)
               .value<QBrush>()
               .color(),
           QColor(Qt::red));
  // Forward again: back where we were.
  QVERIFY(w.stepForward());
  WAIT_IDLE(w);
  QCOMPARE(w.snapshot()->step, end);
  QCOMPARE(w.registerModel().value(ripRow), ripAtEnd);
  // The shortcuts are the ones the brief names.
  QCOMPARE(w.stepBackAction()->shortcut(), QKeySequence(Qt::SHIFT | Qt::Key_F7));
  QCOMPARE(w.stepForwardAction()->shortcut(), QKeySequence(Qt::Key_F7));
  QCOMPARE(w.continueAction()->shortcut(), QKeySequence(Qt::Key_F9));
  QCOMPARE(w.reverseContinueAction()->shortcut(), QKeySequence(Qt::SHIFT | Qt::Key_F9));
}

void MainWindowTest::reverseContinueStopsAtABreakpoint() {
  MainWindow w;
  OPEN(w);
  auto keyDup = w.symbols()->find("key_dup");
  QVERIFY(keyDup.has_value());
  QVERIFY(w.toggleBreakpoint(*keyDup));
  WAIT_IDLE(w);
  QCOMPARE(w.snapshot()->breakpoints.size(), size_t{1});
  const uint64_t end = w.snapshot()->step;
  QVERIFY(w.reverseContinue());
  WAIT_IDLE(w);
  const Snapshot first = *w.snapshot();
  QCOMPARE(first.stopKind, StopKind::kBreakpoint);
  QCOMPARE(first.registers.rip, *keyDup);
  QCOMPARE(first.location, QStringLiteral("key_dup"));
  QVERIFY(first.step < end);
  const int cur = w.disassemblyModel().currentRow();
  QVERIFY(cur >= 0);
  QVERIFY(w.disassemblyModel().line(cur)->breakpoint);
  // Again: the previous call of key_dup, strictly earlier.
  QVERIFY(w.reverseContinue());
  WAIT_IDLE(w);
  QCOMPARE(w.snapshot()->stopKind, StopKind::kBreakpoint);
  QVERIFY(w.snapshot()->step < first.step);
  // Forward continue comes back to the first stop.
  QVERIFY(w.continueForward());
  WAIT_IDLE(w);
  QCOMPARE(w.snapshot()->stopKind, StopKind::kBreakpoint);
  QCOMPARE(w.snapshot()->step, first.step);
  // Removing it: reverse-continue now runs to the beginning.
  QVERIFY(w.toggleBreakpoint(*keyDup));
  WAIT_IDLE(w);
  QVERIFY(w.snapshot()->breakpoints.empty());
  QVERIFY(w.reverseContinue());
  WAIT_IDLE(w);
  QCOMPARE(w.snapshot()->stopKind, StopKind::kHistoryBegin);
}

void MainWindowTest::lastWriteLandsOnTheStoreInKeyDup() {
  MainWindow w;
  w.show();
  OPEN(w);
  auto arena = w.symbols()->find("arena");
  QVERIFY(arena.has_value());
  const uint64_t field = *arena + 0x2FA8;  // Y->next (docs: guests/demo/README.md)
  QVERIFY(w.lastWrite(field, 8));
  WAIT_IDLE(w);
  const Snapshot s = *w.snapshot();  // a copy: later operations replace it
  QVERIFY2(s.location.startsWith(QStringLiteral("key_dup+")), qPrintable(s.location));
  const int cur = w.disassemblyModel().currentRow();
  QVERIFY(cur >= 0);
  const QString text = w.disassemblyModel().line(cur)->text;
  QVERIFY2(text.startsWith(QStringLiteral("mov")) && text.endsWith(QStringLiteral(", dl")),
           qPrintable(text));
  QVERIFY2(s.stopText.contains(QStringLiteral("step %1").arg(s.step)), qPrintable(s.stopText));
  // The replayer's own answer (the CLI's --last-write) is the same step.
  auto reader = TraceReader::open(trace_.toStdString());
  QVERIFY(reader.ok());
  auto tl = Timeline::open(*reader);
  QVERIFY(tl.ok());
  (*tl)->runToEnd();
  auto hit = (*tl)->lastWrite(field, 8, false, false);
  QVERIFY(hit.ok() && hit->has_value());
  QCOMPARE(s.step, (**hit).step);
  // The memory view at the field: "lookup" is already there (written by the
  // iterations before); this store writes the NUL at +6.
  QVERIFY(w.setMemoryAddress(field));
  WAIT_IDLE(w);
  QCOMPARE(w.snapshot()->step, s.step);  // the view changed, not the position
  // The highlighting still shows what the jump changed.
  QVERIFY(w.registerModel().changed(w.registerModel().rowOf(QStringLiteral("rip"))));
  QCOMPARE(w.memoryModel().address(), field);
  const char* kWord = "lookup";
  for (int i = 0; i < 6; ++i) QCOMPARE(w.memoryModel().byteAt(uint64_t(i)), int(kWord[i]));
  QVERIFY(w.memoryModel()
              .data(w.memoryModel().index(0, MemoryModel::kAsciiColumn), Qt::DisplayRole)
              .toString()
              .startsWith(QStringLiteral("lookup")));
  // One picture of this moment for docs/ (only when asked: TTVM_UI_SCREENSHOT=path).
  const QByteArray shot = qgetenv("TTVM_UI_SCREENSHOT");
  if (!shot.isEmpty()) {
    w.resize(1600, 1000);
    QTest::qWait(200);
    QVERIFY(w.grab().save(QString::fromLocal8Bit(shot)));
  }
  // A breakpoint on the selected line (the one after the store), then
  // Continue (the F9 action): it stops there, one step later.
  const int next = w.disassemblyModel().currentRow() + 1;
  const uint64_t nextAddress = w.disassemblyModel().line(next)->address;
  w.disassemblyView()->selectRow(next);
  QVERIFY(w.toggleBreakpointAtSelection());
  WAIT_IDLE(w);
  QCOMPARE(w.snapshot()->breakpoints, std::vector<uint64_t>{nextAddress});
  w.continueAction()->trigger();
  WAIT_IDLE(w);
  QCOMPARE(w.snapshot()->stopKind, StopKind::kBreakpoint);
  QCOMPARE(w.snapshot()->registers.rip, nextAddress);
  QCOMPARE(w.snapshot()->step, s.step + 1);
}

void MainWindowTest::registerLastChangeFindsTheFault() {
  MainWindow w;
  OPEN(w);
  // CR2 was last written by the #PF in table_find; the answer is the position
  // before that step: the faulting `cmp dword ptr [rcx], esi`
  // (/guests/demo/README.md).
  const uint64_t cr2AtEnd = w.snapshot()->registers.cr2;
  QCOMPARE(cr2AtEnd, uint64_t{0x000070756b6f6f6c});  // "lookup"
  QVERIFY(w.registerLastChange(QStringLiteral("cr2")));
  WAIT_IDLE(w);
  const Snapshot s = *w.snapshot();  // a copy: later operations replace it
  QVERIFY2(s.location == QStringLiteral("table_find+0x59"), qPrintable(s.location));
  QVERIFY(s.registers.cr2 != cr2AtEnd);
  const int cur = w.disassemblyModel().currentRow();
  QVERIFY(cur >= 0);
  QVERIFY2(w.disassemblyModel().line(cur)->text.startsWith(QStringLiteral("cmp")),
           qPrintable(w.disassemblyModel().line(cur)->text));
  QVERIFY2(s.stopText.contains(QStringLiteral("0x70756b6f6f6c")), qPrintable(s.stopText));
  // An unknown name is an answer, not a failure.
  QVERIFY(w.registerLastChange(QStringLiteral("xyz")));
  WAIT_IDLE(w);
  QCOMPARE(w.snapshot()->step, s.step);
  QVERIFY(w.snapshot()->stopText.contains(QStringLiteral("no register called 'xyz'")));
}

void MainWindowTest::timelineShowsEventsAndClickGoesThere() {
  MainWindow w;
  w.resize(1200, 800);
  w.show();
  QVERIFY(QTest::qWaitForWindowExposed(&w));
  OPEN(w);
  TimelineWidget* tl = w.timeline();
  QVERIFY(tl->marks() != nullptr);
  const std::vector<uint64_t>& serial = tl->marks()->serial;
  QVERIFY(serial.size() > 100);  // the demo prints a few KB
  QCOMPARE(tl->position(), w.snapshot()->endStep);
  QCOMPARE(qsizetype(w.snapshot()->serial.size()), qsizetype(serial.size()));
  // The console shows that text (the guest ends lines with CR LF).
  QCOMPARE(w.console()->toPlainText(), QString(w.snapshot()->serial).remove(QLatin1Char('\r')));
  // The console holds exactly the bytes written before the current step.
  const uint64_t k = serial[serial.size() / 2];
  QVERIFY(w.goToStep(k + 1));
  WAIT_IDLE(w);
  const auto before = std::upper_bound(serial.begin(), serial.end(), k) - serial.begin();
  QCOMPARE(qsizetype(w.snapshot()->serial.size()), qsizetype(before));
  QVERIFY(w.goToStep(k));
  WAIT_IDLE(w);
  QCOMPARE(qsizetype(w.snapshot()->serial.size()), qsizetype(before - 1));
  // A column holding that write is marked.
  int column = -1;
  for (int x = 0; x < tl->width() && column < 0; ++x)
    if (tl->stepAt(x) <= k && (x + 1 == tl->width() || k < tl->stepAt(x + 1))) column = x;
  QVERIFY(column >= 0);
  QVERIFY(tl->marked(serial, column));
  // Previous / next serial output walk the same marks.
  QVERIFY(w.serialOutput(false));
  WAIT_IDLE(w);
  QCOMPARE(w.snapshot()->step, serial[serial.size() / 2 - 1]);
  QVERIFY2(w.snapshot()->location.size() > 0, "the OUT instruction has a symbol");
  QVERIFY(w.serialOutput(true));
  WAIT_IDLE(w);
  QCOMPARE(w.snapshot()->step, k);
  QVERIFY(w.serialOutput(true));
  WAIT_IDLE(w);
  QCOMPARE(w.snapshot()->step, *std::upper_bound(serial.begin(), serial.end(), k));
  // Clicking a point of the bar goes to the step under it.
  const int x = tl->width() / 3;
  QTest::mouseClick(tl, Qt::LeftButton, {}, QPoint(x, tl->height() / 2));
  QVERIFY(w.busy());
  WAIT_IDLE(w);
  QCOMPARE(w.snapshot()->step, tl->stepAt(x));
  QCOMPARE(tl->position(), tl->stepAt(x));
}

void MainWindowTest::reverseContinueStopsAtAWatchedWrite() {
  MainWindow w;
  OPEN(w);
  const uint64_t field = *w.symbols()->find("arena") + 0x2FA8;
  QVERIFY(w.lastWrite(field, 8));  // reference: the query's answer
  WAIT_IDLE(w);
  const uint64_t lastWriteStep = w.snapshot()->step;
  QVERIFY(w.goToStep(w.snapshot()->endStep));
  WAIT_IDLE(w);
  QVERIFY(w.toggleWatchpoint(field, 8));
  WAIT_IDLE(w);
  QCOMPARE(w.snapshot()->watchpoints.size(), size_t{1});
  QVERIFY(w.reverseContinue());
  WAIT_IDLE(w);
  const Snapshot s = *w.snapshot();  // a copy: later operations replace it
  QCOMPARE(s.stopKind, StopKind::kWatchpoint);
  // Going backward, the stop is at the writing instruction: the same step.
  QCOMPARE(s.step, lastWriteStep);
  QVERIFY2(s.location.startsWith(QStringLiteral("key_dup+")), qPrintable(s.location));
  QVERIFY2(s.stopText.contains(QStringLiteral("write")), qPrintable(s.stopText));
  // Removed: reverse-continue runs to the beginning.
  QVERIFY(w.toggleWatchpoint(field, 8));
  WAIT_IDLE(w);
  QVERIFY(w.snapshot()->watchpoints.empty());
  QVERIFY(w.reverseContinue());
  WAIT_IDLE(w);
  QCOMPARE(w.snapshot()->stopKind, StopKind::kHistoryBegin);
}

void MainWindowTest::closingWhileBusyIsClean() {
  // The window is destroyed while the worker replays: the destructor cancels
  // the operation and joins the thread; nothing is delivered to a dead window.
  for (int i = 0; i < 3; ++i) {
    auto w = std::make_unique<MainWindow>();
    QVERIFY(w->openTrace(trace_));
    QTest::qWait(5 * i);
    QVERIFY(w->busy() || i > 0);
    w.reset();
  }
  QTest::qWait(50);  // a stray queued event would run here (ASan builds catch it)
}

void MainWindowTest::longOperationRunsOffTheGuiThreadAndCancels() {
  MainWindow w;
  OPEN(w);
  // A breakpoint nothing executes: reverse-continue scans the whole history.
  QVERIFY(w.toggleBreakpoint(0x1));
  WAIT_IDLE(w);
  const uint64_t end = w.snapshot()->step;

  // 1. Cancel requested before the worker even starts the operation: it
  // stops at once, at a valid position, without reaching the beginning.
  QVERIFY(w.reverseContinue());
  w.cancelOperation();
  WAIT_IDLE(w);
  QCOMPARE(w.snapshot()->stopKind, StopKind::kCancelled);
  QCOMPARE(w.snapshot()->step, end);

  // 2. While a full scan runs, the GUI thread keeps handling events: a timer
  // on it ticks and the progress signals reach it; Cancel from the GUI
  // thread stops the scan.
  QVERIFY(w.goToStep(end));
  WAIT_IDLE(w);
  int ticks = 0;
  QTimer timer;
  QObject::connect(&timer, &QTimer::timeout, &w, [&] {
    if (w.busy()) ++ticks;
  });
  timer.start(0);  // fires whenever the GUI thread's event loop is free
  int progressSeen = 0;
  QObject::connect(&w, &MainWindow::operationProgress, &w, [&](quint64, quint64) {
    if (++progressSeen == 2) w.cancelAction()->trigger();
  });
  QElapsedTimer clock;
  clock.start();
  QVERIFY(w.reverseContinue());
  QVERIFY(!w.stepBackAction()->isEnabled());  // motion is off while busy
  QVERIFY(w.cancelAction()->isEnabled());
  WAIT_IDLE(w);
  const qint64 ms = clock.elapsed();
  QVERIFY(progressSeen >= 1);
  QVERIFY2(ticks >= 1, "the GUI thread handled no timer event during the operation");
  const Snapshot s = *w.snapshot();
  qInfo("reverse scan: %lld ms, %d progress reports, %d GUI timer ticks while busy, stop %s",
        static_cast<long long>(ms), progressSeen, ticks, toString(s.stopKind));
  if (progressSeen >= 2) {
    // Cancel returns to the position the move started from, as gdb does
    // (the scan had gone back to an earlier checkpoint interval).
    QCOMPARE(s.stopKind, StopKind::kCancelled);
    QCOMPARE(s.step, end);
  } else {
    // The whole scan ended before a second progress report.
    QCOMPARE(s.stopKind, StopKind::kHistoryBegin);
  }
  QVERIFY(s.step <= end);
  QVERIFY(w.stepBackAction()->isEnabled());
  QVERIFY(!w.cancelAction()->isEnabled());
  // Still usable after a cancel.
  QVERIFY(w.goToStep(end));
  WAIT_IDLE(w);
  QCOMPARE(w.snapshot()->step, end);

  // 3. Cancel returns to the position the move started from, as gdb does:
  // a continue from step 1000 (to the end: nothing hits the breakpoint) is
  // cancelled part way, where the session stands somewhere in the middle;
  // the window shows step 1000 again.
  QVERIFY(w.goToStep(1000));
  WAIT_IDLE(w);
  progressSeen = 0;
  quint64 lastDone = 0;
  QObject::disconnect(&w, &MainWindow::operationProgress, &w, nullptr);
  QObject::connect(&w, &MainWindow::operationProgress, &w, [&](quint64 done, quint64) {
    lastDone = done;
    if (++progressSeen == 2) w.cancelAction()->trigger();
  });
  QVERIFY(w.continueForward());
  WAIT_IDLE(w);
  if (progressSeen < 2) QSKIP("the continue ended before a second progress report");
  QVERIFY(lastDone > 0);  // it had moved when the cancel came
  QCOMPARE(w.snapshot()->stopKind, StopKind::kCancelled);
  QCOMPARE(w.snapshot()->step, uint64_t{1000});
  QVERIFY2(w.snapshot()->stopText.contains(QStringLiteral("back at step 1000")),
           qPrintable(w.snapshot()->stopText));
}

void MainWindowTest::badTraceIsReportedNotFatal() {
  const QString bad = dir_.filePath(QStringLiteral("not-a-trace.ttvm"));
  QFile f(bad);
  QVERIFY(f.open(QIODevice::WriteOnly));
  f.write("this is not a ttvm trace\n");
  f.close();
  MainWindow w;
  QSignalSpy failed(&w, &MainWindow::operationFailed);
  QVERIFY(w.openTrace(bad));
  WAIT_IDLE(w);
  QCOMPARE(failed.count(), 1);
  const QString msg = failed.first().first().toString();
  QVERIFY2(msg.contains(bad), qPrintable(msg));
  QVERIFY(!w.snapshot().has_value());
  QVERIFY(!w.stepBackAction()->isEnabled());
  // A good trace still opens in the same window.
  OPEN(w);
  QCOMPARE(w.snapshot()->step, w.snapshot()->endStep);
  // A bad one now leaves it where it is, still usable.
  QVERIFY(w.openTrace(bad));
  WAIT_IDLE(w);
  QCOMPARE(failed.count(), 2);
  QVERIFY(w.stepBack());
  WAIT_IDLE(w);
  QCOMPARE(w.snapshot()->step, w.snapshot()->endStep - 1);
}

// ttvm-ui --symbols: a System.map (nm's output for the demo ELF, names
// prefixed so that they can only come from the map) joins the trace's own
// symbols; the current instruction is named from it. A bad map fails the
// open with the file and line, and the window stays usable.
void MainWindowTest::symbolFilesAddToTheTracesSymbols() {
  const QString map = prefixedSystemMap(dir_, QStringLiteral("map_"));
  QVERIFY(!map.isEmpty());
  MainWindow w;
  QVERIFY(w.openTrace(trace_, {map}));
  WAIT_IDLE(w);
  QVERIFY(w.snapshot().has_value());
  QVERIFY(w.symbols() != nullptr);
  QVERIFY(w.symbols()->find("map_kmain").has_value());
  QVERIFY(w.symbols()->find("kmain").has_value());  // the trace's own
  QCOMPARE(w.symbols()->find("map_kmain"), w.symbols()->find("kmain"));
  QVERIFY2(w.snapshot()->location.startsWith(QStringLiteral("map_panic+")),
           qPrintable(w.snapshot()->location));
  const QString bad = dir_.filePath(QStringLiteral("bad.map"));
  QFile f(bad);
  QVERIFY(f.open(QIODevice::WriteOnly));
  f.write("ffffffff81000000 T fine\nffffffff81000010 T\n");
  f.close();
  QSignalSpy failed(&w, &MainWindow::operationFailed);
  QVERIFY(w.openTrace(trace_, {bad}));
  WAIT_IDLE(w);
  QCOMPARE(failed.count(), 1);
  const QString msg = failed.first().first().toString();
  QVERIFY2(msg.contains(bad + QStringLiteral(":2: expected 'ADDRESS TYPE NAME'")), qPrintable(msg));
  QVERIFY(w.symbols()->find("map_kmain").has_value());  // still the first open's
}

void MainWindowTest::loadSymbolsAddsAFileToTheOpenTrace() {
  // File → Load symbols… on an open trace: a System.map whose names the
  // trace does not have become known, the position stays.
  const QString map = prefixedSystemMap(dir_, QStringLiteral("loaded_"));
  QVERIFY(!map.isEmpty());
  MainWindow w;
  OPEN(w);
  const uint64_t step = w.snapshot()->step;
  const int sources = static_cast<int>(w.snapshot()->symbolSources.size());
  QVERIFY(!w.symbols()->find("loaded_kmain").has_value());
  QVERIFY(w.loadSymbolsAction()->isEnabled());
  QVERIFY(w.loadSymbols(map));
  WAIT_IDLE(w);
  QCOMPARE(w.snapshot()->step, step);
  QCOMPARE(static_cast<int>(w.snapshot()->symbolSources.size()), sources + 1);
  QCOMPARE(w.symbols()->find("loaded_kmain"), w.symbols()->find("kmain"));
  // A file that is not there fails with its name; the symbols stay.
  QSignalSpy failed(&w, &MainWindow::operationFailed);
  QVERIFY(w.loadSymbols(dir_.filePath(QStringLiteral("missing.map"))));
  WAIT_IDLE(w);
  QCOMPARE(failed.count(), 1);
  QVERIFY2(failed.first().first().toString().contains(QStringLiteral("missing.map")),
           qPrintable(failed.first().first().toString()));
  QVERIFY(w.symbols()->find("loaded_kmain").has_value());
}

void MainWindowTest::sourceViewFollowsStepping() {
  MainWindow w;
  w.show();
  OPEN(w);
  QVERIFY(w.goToStep(storeStep_));
  WAIT_IDLE(w);
  // The store in key_dup: workload.c:64, the copy loop, marked in the view.
  // The line of RIP, or where RIP begins an inlined call (kmalloc's first
  // instruction, after key_dup returned), the line of that call in its
  // caller, as gdb shows such a stop (frame 0 is the caller; tests/replayer
  // checks the call stack there against gdb's after `finish`).
  auto lineHere = [&]() -> std::optional<SourceLine> {
    const uint64_t rip = w.snapshot()->registers.rip;
    const std::vector<GuestFunction> functions = w.symbols()->functionsAt(rip);
    size_t first = 0;
    while (first + 1 < functions.size() && functions[first].starts) ++first;
    if (first > 0) return functions[first].line;
    return w.symbols()->sourceLine(rip);
  };
  QVERIFY(lineHere().has_value());
  QVERIFY2(w.sourceModel().file().endsWith(QStringLiteral("/workload.c")),
           qPrintable(w.sourceModel().file()));
  QCOMPARE(w.sourceModel().currentLine(), 64u);
  QVERIFY2(w.sourceModel().lineText(64).contains(QStringLiteral("copy[i] = key[i]")),
           qPrintable(w.sourceModel().lineText(64)));
  const int row = w.sourceModel().currentRow();
  QVERIFY(row >= 0);
  QVERIFY(w.sourceModel()
              .data(w.sourceModel().index(row, 0), Qt::DisplayRole)
              .toString()
              .startsWith(QStringLiteral("→")));
  // Step over by line: each stop is on a new line, and the view follows
  // RIP's line. From the store: `return copy;` (65), the closing brace
  // (66), then the caller's next lines.
  const uint64_t from = w.snapshot()->step;
  std::vector<unsigned> seen{64};
  std::vector<QString> where{w.snapshot()->location};
  for (int i = 0; i < 4; ++i) {
    QVERIFY(w.stepOverAction()->isEnabled());
    w.stepOverAction()->trigger();
    WAIT_IDLE(w);
    const auto l = lineHere();
    QVERIFY(l.has_value());
    QCOMPARE(w.sourceModel().currentLine(), l->line);
    QCOMPARE(w.sourceModel().currentRow(), static_cast<int>(l->line) - 1);
    QVERIFY2(l->line != seen.back(), "step over stayed on its line");
    QVERIFY(QString::fromStdString(l->file).endsWith(QStringLiteral("workload.c")));
    seen.push_back(l->line);
    where.push_back(w.snapshot()->location);
  }
  QVERIFY(w.snapshot()->step > from);
  QCOMPARE(seen[1], 65u);  // return copy; (gdb: "Line 65" at 0x100f10)
  // Back over by line, within table_insert: the previous line again.
  QVERIFY2(where[4].startsWith(QStringLiteral("table_insert+")) &&
               where[3].startsWith(QStringLiteral("table_insert+")),
           qPrintable(where[3] + QLatin1Char(' ') + where[4]));
  w.stepBackOverAction()->trigger();
  WAIT_IDLE(w);
  QCOMPARE(w.sourceModel().currentLine(), seen[3]);
  QCOMPARE(w.sourceModel().currentLine(), lineHere()->line);
  // And from there back over the call (gdb's reverse-next): line 110 in
  // table_insert, at its start, not inside key_dup.
  auto backOverToTheCallLine = [&] {
    w.stepBackOverAction()->trigger();
    WAIT_IDLE(w);
    QVERIFY2(w.snapshot()->location.startsWith(QStringLiteral("table_insert+")),
             qPrintable(w.snapshot()->location));
    QCOMPARE(w.sourceModel().currentLine(), 110u);
    QVERIFY(w.snapshot()->step < storeStep_);
  };
  backOverToTheCallLine();
  if (QTest::currentTestFailed()) return;
  // Out of key_dup into table_insert (after the call), then backward out:
  // the call that entered key_dup, named in the disassembly.
  QVERIFY(w.goToStep(storeStep_));
  WAIT_IDLE(w);
  w.stepOutAction()->trigger();
  WAIT_IDLE(w);
  QVERIFY2(w.snapshot()->location.startsWith(QStringLiteral("table_insert+")),
           qPrintable(w.snapshot()->location));
  QCOMPARE(w.sourceModel().currentLine(), lineHere()->line);
  // Step back into (gdb's reverse-step) from there: back in key_dup, at
  // the start of its last line (66, the closing brace), after the store;
  // step back over instead stays in table_insert, at line 110's start.
  const uint64_t returned = w.snapshot()->step;
  QVERIFY(w.stepBackIntoAction()->isEnabled());
  w.stepBackIntoAction()->trigger();
  WAIT_IDLE(w);
  QVERIFY2(w.snapshot()->location.startsWith(QStringLiteral("key_dup+")),
           qPrintable(w.snapshot()->location));
  QCOMPARE(w.sourceModel().currentLine(), 66u);
  QVERIFY(w.snapshot()->step > storeStep_ && w.snapshot()->step < returned);
  QVERIFY(w.goToStep(returned));
  WAIT_IDLE(w);
  backOverToTheCallLine();
  if (QTest::currentTestFailed()) return;
  QVERIFY(w.goToStep(storeStep_));
  WAIT_IDLE(w);
  w.stepOutBackwardAction()->trigger();
  WAIT_IDLE(w);
  QVERIFY(w.snapshot()->step < storeStep_);
  QVERIFY2(w.snapshot()->location.startsWith(QStringLiteral("table_insert+")),
           qPrintable(w.snapshot()->location));
  const DisasmLine* call = w.disassemblyModel().line(w.disassemblyModel().currentRow());
  QVERIFY(call != nullptr);
  QVERIFY2(call->text.startsWith(QStringLiteral("call ")) &&
               call->text.endsWith(QStringLiteral("<key_dup>")),
           qPrintable(call->text));
  QCOMPARE(w.sourceModel().currentLine(), 110u);  // char* copy = key_dup(key);
  // Into it again: the first line of key_dup.
  w.stepIntoAction()->trigger();
  WAIT_IDLE(w);
  QVERIFY2(w.snapshot()->location.startsWith(QStringLiteral("key_dup")),
           qPrintable(w.snapshot()->location));
  QCOMPARE(w.sourceModel().currentLine(), lineHere()->line);
}

void MainWindowTest::callStackAndLocalsAtTheCorruptingStoreMatchGdb() {
  const std::string gdb = QStandardPaths::findExecutable(QStringLiteral("gdb")).toStdString();
  if (gdb.empty()) QSKIP("gdb not found: it is the oracle");
  const std::string elf = TTVM_BUILD_DIR "/guests/demo/demo.elf.elf";
  const std::vector<std::string> cmds = testing::backtraceAndFrameCommands(3);
  MainWindow w;
  w.show();
  OPEN(w);
  // The callers' registers unwind through the CFI of the debug ELF, which
  // File → Load symbols… adds (the trace's multiboot image has none).
  QVERIFY(w.loadSymbols(QString::fromStdString(elf)));
  WAIT_IDLE(w);
  // A hundred steps before the store, str_len is inlined into key_dup: gdb
  // shows it as frame 0 and key_dup as frame 1 at the same pc; the dock
  // does too (marked "(inlined)"), each with its own line and locals.
  for (const uint64_t step : {storeStep_ - 100, storeStep_}) {
    std::string why;
    // gdb's answers, one frame at a time ("info args" of frame f follows
    // the f-th "frame" command).
    std::vector<std::vector<testing::GdbVariable>> gdbVars;
    auto out = testing::askGdb(TTVM_BIN, gdb, trace_.toStdString(), elf, step, cmds, &why);
    QVERIFY2(out.has_value(), why.c_str());
    const auto gdbFrames = testing::parseGdbBacktrace(testing::gdbSection(*out, "bt"));
    QVERIFY2(gdbFrames.size() >= 4, out->c_str());
    QCOMPARE(gdbFrames[0].function, std::string(step == storeStep_ ? "key_dup" : "str_len"));
    QCOMPARE(gdbFrames[1].hasAddress, step == storeStep_);
    {
      size_t pos = 0;
      for (int f = 0; f < 3; ++f) {
        pos = out->find("@@ frame " + std::to_string(f) + "\n", pos);
        QVERIFY(pos != std::string::npos);
        std::vector<testing::GdbVariable> v;
        for (const char* c : {"info args", "info locals"}) {
          const std::string mark = std::string("@@ ") + c + "\n";
          const size_t at = out->find(mark, pos);
          QVERIFY(at != std::string::npos);
          const size_t end = out->find("@@ ", at + mark.size());
          for (auto& g :
               testing::parseGdbVariables(out->substr(at + mark.size(), end - at - mark.size())))
            v.push_back(g);
          pos = at + mark.size();
        }
        gdbVars.push_back(std::move(v));
      }
    }
    QVERIFY(w.goToStep(step));
    WAIT_IDLE(w);
    // The call stack dock: gdb's frames, by function and file:line, in order.
    const CallStackModel& stack = w.callStackModel();
    QVERIFY(stack.rowCount() >= static_cast<int>(gdbFrames.size()));
    for (size_t i = 0; i < gdbFrames.size(); ++i) {
      const FrameInfo* f = stack.frame(static_cast<int>(i));
      QVERIFY(f != nullptr);
      QVERIFY2(f->function == QString::fromStdString(gdbFrames[i].function) ||
                   f->function.startsWith(QString::fromStdString(gdbFrames[i].function) +
                                          QLatin1Char('+')),
               qPrintable(QStringLiteral("frame %1: %2 vs gdb's %3")
                              .arg(i)
                              .arg(f->function, QString::fromStdString(gdbFrames[i].function))));
      // An inlined call: gdb prints no address for the frame after it.
      const bool inlined = i + 1 < gdbFrames.size() && !gdbFrames[i + 1].hasAddress;
      QCOMPARE(f->inlined, inlined);
      QCOMPARE(
          stack.data(stack.index(static_cast<int>(i), CallStackModel::kFunction), Qt::DisplayRole)
              .toString()
              .endsWith(QStringLiteral(" (inlined)")),
          inlined);
      if (gdbFrames[i].line != 0) {
        QVERIFY2(f->source.has_value(), qPrintable(f->function));
        QCOMPARE(QString::fromStdString(f->source->file),
                 QString::fromStdString(gdbFrames[i].file));
        QCOMPARE(f->source->line, gdbFrames[i].line);
      }
    }
    // The locals dock for each of the first three frames, selected by a
    // click in the call stack: the source view moves to the frame's line,
    // and every variable gdb prints has the value gdb prints (optimized out
    // exactly where gdb says so; of a name gdb prints twice, as str_len's
    // n, one of its values).
    for (int fr = 0; fr < 3; ++fr) {
      const QRect r = w.callStackView()->visualRect(stack.index(fr, CallStackModel::kFunction));
      QTest::mouseClick(w.callStackView()->viewport(), Qt::LeftButton, {}, r.center());
      QCOMPARE(w.selectedFrame(), fr);
      QCOMPARE(w.sourceModel().currentLine(), gdbFrames[static_cast<size_t>(fr)].line);
      const auto& vars = gdbVars[static_cast<size_t>(fr)];
      QVERIFY(!vars.empty());
      for (const auto& g : vars) {
        const QString name = QString::fromStdString(g.name);
        const QString ours = name + QStringLiteral(" = ") + w.localsModel().value(name);
        const QString gdbs = name + QStringLiteral(" = ") + QString::fromStdString(g.value);
        if (ours != gdbs && std::any_of(vars.begin(), vars.end(), [&](const auto& o) {
              return o.name == g.name &&
                     ours == name + QStringLiteral(" = ") + QString::fromStdString(o.value);
            }))
          continue;
        if (ours != gdbs)
          for (int v = 0; v < w.localsModel().rowCount(); ++v)
            qInfo("frame %d: %s = %s", fr, w.localsModel().variable(v)->name.c_str(),
                  w.localsModel().variable(v)->value.c_str());
        QCOMPARE(ours, gdbs);
      }
    }
  }
  // i is the loop counter: 14 at this store (the NUL after "lookup").
  w.selectFrame(0);
  QCOMPARE(w.localsModel().value(QStringLiteral("i")), QStringLiteral("14"));
  std::map<std::string, std::string> atStore;
  for (int r = 0; r < w.localsModel().rowCount(); ++r)
    atStore[w.localsModel().variable(r)->name] = w.localsModel().variable(r)->value;
  // One iteration of the copy loop earlier (5 instructions a byte): i is
  // 13; exactly the variables whose value differs from the store's are
  // highlighted (i, and nothing that kept its value: key).
  QVERIFY(w.goToStep(storeStep_ - 5));
  WAIT_IDLE(w);
  QCOMPARE(w.localsModel().value(QStringLiteral("i")), QStringLiteral("13"));
  int changedRows = 0;
  for (int r = 0; r < w.localsModel().rowCount(); ++r) {
    const bool changed = w.localsModel().changed(r);
    const GuestVariable* v = w.localsModel().variable(r);
    changedRows += changed ? 1 : 0;
    QCOMPARE(changed, atStore.count(v->name) != 0 && atStore[v->name] != v->value);
    if (v->name == "i" || v->name == "key") QCOMPARE(changed, v->name == "i");
    const QVariant fg =
        w.localsModel().data(w.localsModel().index(r, LocalsModel::kValue), Qt::ForegroundRole);
    QCOMPARE(fg.isValid(), changed);
  }
  QVERIFY(changedRows >= 1);
}

void MainWindowTest::flagsTargetsAndChangedMemoryAreShown() {
  MainWindow w;
  OPEN(w);
  // RFLAGS by name: every set flag among the ones named, none that is clear.
  const RegisterModel& regs = w.registerModel();
  const int row = regs.rowOf(QStringLiteral("rflags"));
  const uint64_t fl = regs.value(row);
  const QString shown = regs.data(regs.index(row, 1), Qt::DisplayRole).toString();
  QVERIFY2(shown.contains(QStringLiteral("%1").arg(fl, 8, 16, QLatin1Char('0'))),
           qPrintable(shown));
  QCOMPARE(shown.contains(QStringLiteral(" IF ")), (fl & 0x200) != 0);
  QCOMPARE(shown.contains(QStringLiteral(" ZF ")), (fl & 0x40) != 0);
  QCOMPARE(shown.contains(QStringLiteral(" CF ")), (fl & 0x1) != 0);
  QCOMPARE(RegisterModel::flagNames(0x246), QStringLiteral("[ IF ZF PF ]"));
  QCOMPARE(RegisterModel::flagNames(0x3083), QStringLiteral("[ SF CF IOPL=3 ]"));
  // The memory view opens at the fault address (CR2) when it is mapped,
  // else at the stack: the demo's #PF address is a non-canonical pointer
  // made of the text "lookup", so the stack it is.
  const uint64_t cr2 = w.snapshot()->registers.cr2;
  QCOMPARE(cr2 >> 32, uint64_t{0x7075});  // "pu": the top of "lookup" read as an address
  QCOMPARE(w.memoryModel().address(), w.snapshot()->registers.reg(Gpr::kRsp) & ~uint64_t{0xF});
  QVERIFY(w.memoryModel().byteAt(0) >= 0);
  // Changed bytes: the store of copy[0] in this key_dup call (the last
  // write to the byte before the corrupting store) replaces an old entry's
  // byte with 'i'. One step over it: the cells that differ from the window
  // before are red, the others not.
  const uint64_t copy = *w.symbols()->find("arena") + 0x2FA0;
  QVERIFY(w.goToStep(storeStep_));
  WAIT_IDLE(w);
  QVERIFY(w.lastWrite(copy, 1));
  WAIT_IDLE(w);
  QVERIFY(w.snapshot()->step < storeStep_);
  QVERIFY(w.setMemoryAddress(copy));
  WAIT_IDLE(w);
  const MemoryModel& mem = w.memoryModel();
  std::vector<int> before;
  for (uint64_t i = 0; i < 64; ++i) before.push_back(mem.byteAt(i));
  QVERIFY(w.stepForward());
  WAIT_IDLE(w);
  QCOMPARE(mem.address(), copy);
  QCOMPARE(mem.byteAt(0), int('i'));
  QVERIFY(before[0] != int('i'));
  for (uint64_t i = 0; i < 64; ++i) QCOMPARE(mem.changed(i), before[i] != mem.byteAt(i));
  const QModelIndex cell = mem.index(0, 1);
  QCOMPARE(mem.data(cell, Qt::DisplayRole).toString(), QStringLiteral("69"));
  QCOMPARE(mem.data(cell, Qt::ForegroundRole).value<QBrush>().color(), QColor(Qt::red));
  QVERIFY(!mem.data(mem.index(0, 2), Qt::ForegroundRole).isValid());
  QVERIFY(mem.data(mem.index(0, MemoryModel::kAsciiColumn), Qt::DisplayRole)
              .toString()
              .startsWith(QLatin1Char('i')));
  // Call and jump targets named: every direct branch with a known target.
  QVERIFY(w.goToStep(storeStep_));
  WAIT_IDLE(w);
  int named = 0;
  for (int r = 0; r < w.disassemblyModel().rowCount(); ++r) {
    const QString t = w.disassemblyModel().line(r)->text;
    const QRegularExpressionMatch m =
        QRegularExpression(QStringLiteral("^j\\w+ (0x[0-9A-F]+) <(.+)>$")).match(t);
    if (!m.hasMatch()) continue;
    ++named;
    const uint64_t target = m.captured(1).toULongLong(nullptr, 16);
    QCOMPARE(m.captured(2).toStdString(), *w.symbols()->describe(target));
  }
  QVERIFY2(named >= 1, "no named jump around the store in key_dup");
}

// The engine fallback (engine_fallback.h) in the GUI: the replay runs the
// fast engine by default; the test seam TTVM_TEST_FAST_ENGINE_FAULT (read
// when the trace opens) makes it wrong after step 1000, the replay goes on
// with the reference engine, and the status bar says so. With --engine
// reference (openTrace's engine) the seam has nothing to touch.
void MainWindowTest::fastEngineDivergenceFallsBackVisibly() {
  qputenv("TTVM_TEST_FAST_ENGINE_FAULT", "1000");
  MainWindow w;
  w.show();
  QSignalSpy fellBack(&w, &MainWindow::engineFellBack);
  OPEN(w);
  MainWindow onReference;
  onReference.show();
  QVERIFY(onReference.openTrace(trace_, {}, CpuEngine::kReference));
  WAIT_IDLE(onReference);
  qunsetenv("TTVM_TEST_FAST_ENGINE_FAULT");
  QCOMPARE(fellBack.count(), 1);
  const QString message = fellBack.at(0).at(0).toString();
  QVERIFY2(message.contains(QStringLiteral("BUG IN TTVM'S FAST ENGINE")), qPrintable(message));
  QVERIFY(w.engineLabel()->isVisible());
  QCOMPARE(w.engineLabel()->toolTip(), message);
  // The position it reached is the reference's: the end, the crash's RIP.
  QCOMPARE(w.snapshot()->step, w.snapshot()->endStep);
  QVERIFY(onReference.snapshot().has_value());
  QCOMPARE(w.snapshot()->step, onReference.snapshot()->step);
  QCOMPARE(
      w.registerModel().value(w.registerModel().rowOf(QStringLiteral("rip"))),
      onReference.registerModel().value(onReference.registerModel().rowOf(QStringLiteral("rip"))));
  QCOMPARE(
      w.registerModel().value(w.registerModel().rowOf(QStringLiteral("r15"))),
      onReference.registerModel().value(onReference.registerModel().rowOf(QStringLiteral("r15"))));
  QVERIFY(!onReference.engineLabel()->isVisible());
}

void MainWindowTest::helpWorksWithoutADisplay() {
  QProcess p;
  QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
  for (const char* v : {"DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"})
    env.remove(QString::fromLatin1(v));
  p.setProcessEnvironment(env);
  p.setProcessChannelMode(QProcess::MergedChannels);
  p.start(QStringLiteral(TTVM_UI_BIN), {QStringLiteral("--help")});
  QVERIFY(p.waitForFinished(30000));
  const QString out = QString::fromLocal8Bit(p.readAll());
  QCOMPARE(p.exitStatus(), QProcess::NormalExit);
  QVERIFY2(p.exitCode() == 0, qPrintable(out));
  QVERIFY2(out.contains(QStringLiteral("--symbols")) && out.contains(QStringLiteral("trace")),
           qPrintable(out));
  QVERIFY2(out.contains(QStringLiteral("--engine")), qPrintable(out));
  // A bad engine: a usage error (status 2), without a display.
  p.start(QStringLiteral(TTVM_UI_BIN), {QStringLiteral("--engine"), QStringLiteral("jit")});
  QVERIFY(p.waitForFinished(30000));
  QCOMPARE(p.exitStatus(), QProcess::NormalExit);
  QCOMPARE(p.exitCode(), 2);
  QVERIFY(QString::fromLocal8Bit(p.readAll()).contains(QStringLiteral("use fast or reference")));
  // A bad option: an error and status 1, still without a display.
  p.start(QStringLiteral(TTVM_UI_BIN), {QStringLiteral("--no-such-option")});
  QVERIFY(p.waitForFinished(30000));
  QCOMPARE(p.exitStatus(), QProcess::NormalExit);
  QCOMPARE(p.exitCode(), 1);
  QVERIFY(QString::fromLocal8Bit(p.readAll()).contains(QStringLiteral("no-such-option")));
}

void MainWindowTest::eventsDockListsTheTracesEvents() {
  MainWindow w;
  w.show();
  OPEN(w);
  // The trace's own events through TraceEventRows, row by row against a
  // cursor over the chunks: the chunk index maps rows to chunks.
  auto reader = TraceReader::open(trace_.toStdString());
  QVERIFY(reader.ok());
  std::vector<TraceEvent> inTrace;
  EventCursor cur = reader->cursor();
  for (TraceEvent e; cur.next(e);) inTrace.push_back(e);
  auto rows = TraceEventRows::open(trace_.toStdString());
  QVERIFY(rows.ok());
  QCOMPARE((*rows)->count(), static_cast<uint64_t>(inTrace.size()));
  std::vector<EventRow> got;
  for (uint64_t first = 0; first < (*rows)->count(); first += 100) (*rows)->read(first, 100, got);
  QCOMPARE(got.size(), inTrace.size());
  for (size_t i = 0; i < got.size(); ++i) QVERIFY(got[i] == EventRow{inTrace[i]});
  QVERIFY((*rows)->chunksDecoded() <= reader->chunkCount());
  // The dock: for a whole-machine trace (the recorder's default) the port
  // and MMIO I/O, interrupts and exceptions the replay saw, which the trace
  // does not hold, in step order; for an older trace its events.
  auto tl = Timeline::open(*reader);
  QVERIFY(tl.ok());
  (*tl)->runToEnd();
  QVERIFY((*tl)->session().runsWholeMachine());
  std::vector<EventRow> all;
  for (const TraceEvent& e : (*tl)->replayedAccesses()) all.push_back(EventRow{e});
  for (const ReplayedException& x : (*tl)->replayedExceptions()) all.push_back(EventRow{x});
  std::stable_sort(all.begin(), all.end(), [](const EventRow& a, const EventRow& b) {
    return a.step() < b.step() || (a.step() == b.step() && a.exception() && !b.exception());
  });
  QVERIFY2(all.size() > 1000, qPrintable(QString::number(all.size())));
  const EventListModel& m = w.eventListModel();
  QCOMPARE(static_cast<size_t>(m.rowCount()), all.size());
  int serialRow = -1, mmioRow = -1, faultRow = -1;
  for (size_t i = 0; i < all.size(); ++i) {
    const EventRow* e = m.event(static_cast<int>(i));
    QVERIFY(e != nullptr);
    QVERIFY(*e == all[i]);
    if (i % 97 == 0 || i + 1 == all.size())
      QCOMPARE(
          m.data(m.index(static_cast<int>(i), EventListModel::kStep), Qt::DisplayRole).toString(),
          QString::number(all[i].step()));
    const TraceEvent* t = all[i].event();
    if (t != nullptr && serialRow < 0 && t->kind == EventKind::kPortOut && t->address == 0x3F8 &&
        (t->value & 0xFF) >= 0x41 && (t->value & 0xFF) < 0x7B)
      serialRow = static_cast<int>(i);
    if (t != nullptr && mmioRow < 0 &&
        (t->kind == EventKind::kMmioRead || t->kind == EventKind::kMmioWrite))
      mmioRow = static_cast<int>(i);
    if (all[i].exception() && all[i].exception()->vector == 14) faultRow = static_cast<int>(i);
  }
  // An MMIO row (the LAPIC's) names its address; the page fault's row names it.
  QVERIFY(mmioRow >= 0);
  const TraceEvent& mmio = *all[size_t(mmioRow)].event();
  QCOMPARE(
      m.data(m.index(mmioRow, EventListModel::kDetail), Qt::DisplayRole).toString(),
      QStringLiteral("MMIO %1 0x%2 %3 0x%4 (%5 bytes)")
          .arg(mmio.kind == EventKind::kMmioRead ? QStringLiteral("read") : QStringLiteral("write"))
          .arg(mmio.address, 0, 16)
          .arg(mmio.kind == EventKind::kMmioRead ? QStringLiteral("→") : QStringLiteral("←"))
          .arg(mmio.value, 0, 16)
          .arg(mmio.size));
  QVERIFY(faultRow >= 0);
  QCOMPARE(m.data(m.index(faultRow, EventListModel::kKind), Qt::DisplayRole).toString(),
           QStringLiteral("exception"));
  const QString fault =
      m.data(m.index(faultRow, EventListModel::kDetail), Qt::DisplayRole).toString();
  QVERIFY2(fault.startsWith(QStringLiteral("exception #PF (error code 0x")), qPrintable(fault));
  // A serial output row says which byte; double-click goes to the OUT that
  // wrote it.
  QVERIFY(serialRow >= 0);
  const TraceEvent& serial = *all[size_t(serialRow)].event();
  const QString detail =
      m.data(m.index(serialRow, EventListModel::kDetail), Qt::DisplayRole).toString();
  QVERIFY2(
      detail.startsWith(
          QStringLiteral("serial output '%1'").arg(QChar(static_cast<int>(serial.value & 0xFF)))),
      qPrintable(detail));
  QCOMPARE(m.rowAtStep(serial.step) <= serialRow, true);
  auto doubleClick = [&](int row) {
    w.eventsView()->scrollTo(m.index(row, 0));
    const QRect r = w.eventsView()->visualRect(m.index(row, EventListModel::kDetail));
    QVERIFY(r.isValid());
    QSignalSpy shown(&w, &MainWindow::snapshotShown);
    QTest::mouseClick(w.eventsView()->viewport(), Qt::LeftButton, {}, r.center());
    QTest::mouseDClick(w.eventsView()->viewport(), Qt::LeftButton, {}, r.center());
    QTRY_COMPARE_WITH_TIMEOUT(shown.count(), 1, kTimeoutMs);
    WAIT_IDLE(w);
  };
  doubleClick(serialRow);
  QCOMPARE(w.snapshot()->step, serial.step);
  // At that step the instruction is the OUT to the serial port.
  const DisasmLine* line = w.disassemblyModel().line(w.disassemblyModel().currentRow());
  QVERIFY2(line != nullptr && line->text.startsWith(QStringLiteral("out")), qPrintable(line->text));
  // The page fault's row goes to the faulting load in table_find.
  doubleClick(faultRow);
  QCOMPARE(w.snapshot()->step, all[size_t(faultRow)].step());
  QVERIFY2(w.snapshot()->location.startsWith(QStringLiteral("table_find+")),
           qPrintable(w.snapshot()->location));
}

namespace {

// Events computed from their row (step = 3·row, kinds in turn), never
// stored: a stand-in for a trace of tens of millions of events.
class GeneratedRows final : public EventRows {
 public:
  explicit GeneratedRows(uint64_t n) : n_(n) {}
  uint64_t count() const override { return n_; }
  void read(uint64_t first, uint64_t n, std::vector<EventRow>& out) const override {
    for (uint64_t i = first; i < first + n && i < n_; ++i) out.push_back(EventRow{at(i)});
  }
  static TraceEvent at(uint64_t row) {
    if (row % 3 == 0) return TraceEvent::portOut(3 * row, 0x3F8, 1, 'a' + row % 26);
    if (row % 3 == 1) return TraceEvent::interrupt(3 * row, 0x20);
    return TraceEvent::portIn(3 * row, 0x60, 1, row & 0xFF);
  }

 private:
  uint64_t n_;
};

}  // namespace

void MainWindowTest::eventsDockScrollsMillionsOfRowsLazily() {
  // 50 million rows: the model holds only the pages the view paints.
  constexpr uint64_t kRows = 50'000'000;
  EventListModel m;
  m.setRows(std::make_shared<const GeneratedRows>(kRows));
  QCOMPARE(static_cast<uint64_t>(m.rowCount()), kRows);
  QCOMPARE(m.rowsRead(), uint64_t{0});  // nothing read before anything is shown
  QTableView v;
  v.setModel(&m);
  v.verticalHeader()->setSectionResizeMode(QHeaderView::Fixed);
  v.verticalHeader()->setDefaultSectionSize(18);
  v.resize(700, 500);
  v.show();
  QVERIFY(QTest::qWaitForWindowExposed(&v));
  QElapsedTimer clock;
  clock.start();
  // Jump across the whole list (scroll bar drags), painting each time.
  QScrollBar* bar = v.verticalScrollBar();
  for (int i = 0; i <= 100; ++i) {
    bar->setValue(static_cast<int>(static_cast<int64_t>(bar->maximum()) * i / 100));
    v.viewport()->repaint();
  }
  const qint64 ms = clock.elapsed();
  const uint64_t read = m.rowsRead();
  qInfo("events dock: 101 jumps over %llu rows in %lld ms, %llu rows read",
        static_cast<unsigned long long>(kRows), static_cast<long long>(ms),
        static_cast<unsigned long long>(read));
  // At most a page or two per jump (each page 256 rows), far from all.
  QVERIFY2(read <= 101 * 3 * EventListModel::kPageRows, qPrintable(QString::number(read)));
  QVERIFY2(ms < 5000, qPrintable(QString::number(ms)));
  // The rows on screen are the right ones.
  const int top = v.rowAt(0);
  QVERIFY(top >= 0);
  QCOMPARE(static_cast<uint64_t>(top) + 40 > kRows, true);  // at the bottom
  for (int r = top; r < top + 5 && r < m.rowCount(); ++r) {
    const TraceEvent want = GeneratedRows::at(static_cast<uint64_t>(r));
    QVERIFY(*m.event(r) == EventRow{want});
    QCOMPARE(m.data(m.index(r, EventListModel::kStep), Qt::DisplayRole).toString(),
             QString::number(want.step));
  }
  // Binary search by step touches a few pages, not the list.
  const uint64_t before = m.rowsRead();
  QCOMPARE(m.rowAtStep(3 * 31'415'926), 31'415'926);
  QVERIFY(m.rowsRead() - before <= 64 * EventListModel::kPageRows);
}

void MainWindowTest::breakpointsWatchpointsAndBookmarksDocks() {
  MainWindow w;
  OPEN(w);
  const uint64_t end = w.snapshot()->step;
  const uint64_t keyDup = *w.symbols()->find("key_dup");
  const uint64_t field = *w.symbols()->find("arena") + 0x2FA8;
  QVERIFY(w.toggleBreakpoint(keyDup));
  WAIT_IDLE(w);
  QVERIFY(w.toggleWatchpoint(field, 8));
  WAIT_IDLE(w);
  const StopListModel& stops = w.stopListModel();
  QCOMPARE(stops.rowCount(), 2);
  QCOMPARE(stops.row(0)->watchpoint, false);
  QCOMPARE(stops.row(0)->address, keyDup);
  QVERIFY2(stops.row(0)->symbol.startsWith(QStringLiteral("key_dup (workload.c:")),
           qPrintable(stops.row(0)->symbol));
  QCOMPARE(stops.row(1)->watchpoint, true);
  QCOMPARE(stops.data(stops.index(1, StopListModel::kWhere), Qt::DisplayRole).toString(),
           QStringLiteral("0x%1:8").arg(field, 0, 16));
  QVERIFY(stops.row(1)->symbol.startsWith(QStringLiteral("arena+0x2fa8")));
  // The watchpoint stops reverse-continue at the corrupting store.
  QVERIFY(w.reverseContinue());
  WAIT_IDLE(w);
  QCOMPARE(w.snapshot()->stopKind, StopKind::kWatchpoint);
  QCOMPARE(w.snapshot()->step, storeStep_);
  // Bookmark it, go elsewhere, come back through the bookmark.
  w.addBookmark(QStringLiteral("corrupting store"));
  QCOMPARE(w.bookmarkModel().rowCount(), 1);
  QCOMPARE(w.bookmarkModel().bookmark(0)->step, storeStep_);
  QVERIFY(w.goToStep(end));
  WAIT_IDLE(w);
  w.addBookmark();  // the default name: the step and where
  QCOMPARE(w.bookmarkModel().rowCount(), 2);
  QVERIFY2(
      w.bookmarkModel().bookmark(1)->name.startsWith(QStringLiteral("step %1 at panic+").arg(end)),
      qPrintable(w.bookmarkModel().bookmark(1)->name));
  QVERIFY(w.goToBookmark(0));
  WAIT_IDLE(w);
  QCOMPARE(w.snapshot()->step, storeStep_);
  // Removing from the dock removes the stop itself: reverse-continue no
  // longer stops at the store, the breakpoint at key_dup does.
  QVERIFY(w.removeStop(1));
  WAIT_IDLE(w);
  QCOMPARE(stops.rowCount(), 1);
  QVERIFY(w.snapshot()->watchpoints.empty());
  QVERIFY(w.goToStep(end));
  WAIT_IDLE(w);
  QVERIFY(w.reverseContinue());
  WAIT_IDLE(w);
  QCOMPARE(w.snapshot()->stopKind, StopKind::kBreakpoint);
  QCOMPARE(w.snapshot()->registers.rip, keyDup);
  QVERIFY(w.removeStop(0));
  WAIT_IDLE(w);
  QCOMPARE(stops.rowCount(), 0);
  QVERIFY(w.snapshot()->breakpoints.empty());
  // The bookmarks went beside the trace; removing the last removes the file
  // (so the other tests open the trace without them).
  QVERIFY(QFile::exists(bookmarkFilePath(trace_)));
  w.removeBookmark(1);
  w.removeBookmark(0);
  QCOMPARE(w.bookmarkModel().rowCount(), 0);
  QVERIFY(!QFile::exists(bookmarkFilePath(trace_)));
}

void MainWindowTest::bookmarksAreKeptBesideTheTrace() {
  // A copy of the trace of its own, so its bookmark file is this test's.
  const QString copy = dir_.filePath(QStringLiteral("bookmarked.ttvm"));
  QFile::remove(copy);
  QVERIFY(QFile::copy(trace_, copy));
  const QString file = bookmarkFilePath(copy);
  QCOMPARE(file, copy + QStringLiteral(".bookmarks"));
  uint64_t end = 0;
  {
    MainWindow w;
    QVERIFY(w.openTrace(copy));
    WAIT_IDLE(w);
    QCOMPARE(w.bookmarkModel().rowCount(), 0);
    end = w.snapshot()->step;
    w.addBookmark(QStringLiteral("the crash\twith a tab"));
    QVERIFY(w.goToStep(storeStep_));
    WAIT_IDLE(w);
    w.addBookmark(QStringLiteral("corrupting store"));
    QVERIFY(w.goToStep(storeStep_ - 1000));
    WAIT_IDLE(w);
    w.addBookmark(QStringLiteral("before it"));
    QCOMPARE(w.bookmarkModel().rowCount(), 3);
    QVERIFY(QFile::exists(file));
    w.removeBookmark(0);  // "before it": the lowest step
    QVERIFY2(w.bookmarkFileProblem().isEmpty(), qPrintable(w.bookmarkFileProblem()));
  }
  const std::vector<Bookmark> want{{storeStep_, QStringLiteral("corrupting store")},
                                   {end, QStringLiteral("the crash with a tab")}};
  {
    // Opened again in a new window: the same bookmarks, and they go there.
    MainWindow w;
    QVERIFY(w.openTrace(copy));
    WAIT_IDLE(w);
    QVERIFY2(w.bookmarkFileProblem().isEmpty(), qPrintable(w.bookmarkFileProblem()));
    QVERIFY(w.bookmarkModel().marks() == want);
    QVERIFY(w.goToBookmark(0));
    WAIT_IDLE(w);
    QCOMPARE(w.snapshot()->step, storeStep_);
    // Another trace opened in the window brings its own (none).
    QVERIFY(w.openTrace(trace_));
    WAIT_IDLE(w);
    QCOMPARE(w.bookmarkModel().rowCount(), 0);
  }
  // The file holds the trace's identity: bookmarks another recording left
  // at this path are not applied (and the window says why).
  QFile f(file);
  QVERIFY(f.open(QIODevice::ReadOnly));
  QString text = QString::fromUtf8(f.readAll());
  f.close();
  auto reader = TraceReader::open(copy.toStdString());
  QVERIFY(reader.ok());
  const QString identity = traceIdentity(reader->header());
  QVERIFY2(identity.startsWith(QStringLiteral("id ")) && identity.size() == 3 + 32,
           qPrintable(identity));
  QVERIFY2(text.startsWith(QStringLiteral("ttvm-bookmarks 1 %1\n").arg(identity)),
           qPrintable(text));
  QString other = text;
  other.replace(identity, QStringLiteral("id ") + QString(32, QLatin1Char('0')));
  QVERIFY(f.open(QIODevice::WriteOnly | QIODevice::Truncate));
  f.write(other.toUtf8());
  f.close();
  {
    MainWindow w;
    QVERIFY(w.openTrace(copy));
    WAIT_IDLE(w);
    QCOMPARE(w.bookmarkModel().rowCount(), 0);
    QVERIFY2(w.bookmarkFileProblem().contains(QStringLiteral("another recording")),
             qPrintable(w.bookmarkFileProblem()));
  }
  // A line that does not parse is skipped and named; the others load.
  QVERIFY(f.open(QIODevice::WriteOnly | QIODevice::Truncate));
  f.write((text + QStringLiteral("garbage\n")).toUtf8());
  f.close();
  std::vector<Bookmark> loaded;
  QString problem;
  loaded = loadBookmarks(file, identity, &problem);
  QVERIFY(loaded == want);
  QVERIFY2(problem.contains(QStringLiteral(".bookmarks:4:")), qPrintable(problem));
  QFile::remove(file);
  QFile::remove(copy);
}

void MainWindowTest::openingShowsProgress() {
  // The open reports progress (the events read, then the replay to the
  // end), and the status bar's progress bar is visible while it does.
  MainWindow w;
  w.show();
  int reports = 0;
  int visible = 0;
  bool ordered = true;
  QObject::connect(&w, &MainWindow::operationProgress, &w, [&](quint64 done, quint64 total) {
    ++reports;
    ordered &= done <= total;
    if (w.progressBar()->isVisible()) ++visible;
  });
  OPEN(w);
  qInfo("open: %d progress reports", reports);
  QVERIFY(reports >= 1);
  QCOMPARE(visible, reports);
  QVERIFY(ordered);
  QVERIFY(!w.progressBar()->isVisible());  // hidden once it is done
}

void MainWindowTest::stepBackLatency() {
  // What a user waits for: from the Step back action to the new snapshot on
  // screen (the worker's seek, then the snapshot: disassembly, call stack
  // with each frame's locals, memory, console), at the corrupting store
  // with the debug ELF loaded, on the offscreen platform. docs/performance.md
  // quotes the numbers; the bounds only catch a move that became a scan.
  MainWindow w;
  w.show();
  OPEN(w);
  QVERIFY(w.loadSymbols(QStringLiteral(TTVM_BUILD_DIR "/guests/demo/demo.elf.elf")));
  WAIT_IDLE(w);
  QVERIFY(w.goToStep(storeStep_));
  WAIT_IDLE(w);
  auto measure = [&](const std::function<void()>& action, int n, std::vector<double>& ms) {
    for (int i = 0; i < n; ++i) {
      // An event loop that ends on the snapshot (QTRY_* polls every 50 ms).
      QEventLoop loop;
      QObject::connect(&w, &MainWindow::snapshotShown, &loop, &QEventLoop::quit);
      QTimer::singleShot(kTimeoutMs, &loop, &QEventLoop::quit);
      QElapsedTimer t;
      t.start();
      action();
      loop.exec();
      ms.push_back(static_cast<double>(t.nsecsElapsed()) / 1e6);
      WAIT_IDLE(w);
    }
    std::sort(ms.begin(), ms.end());
  };
  std::vector<double> insn, line, refresh;
  const uint64_t from = w.snapshot()->step;
  measure([&] { w.stepBackAction()->trigger(); }, 30, insn);
  QCOMPARE(w.snapshot()->step, from - 30);
  measure([&] { w.stepBackOverAction()->trigger(); }, 10, line);
  QVERIFY(w.snapshot()->step < from - 30);
  // The same round trip without a move (a new snapshot of the position):
  // what the snapshot and the window's refresh cost on their own.
  const uint64_t memory = w.memoryModel().address();
  measure([&] { w.setMemoryAddress(memory); }, 10, refresh);
  // The Timeline's own reverse step, for comparison (DAP and gdb pay this).
  auto reader = TraceReader::open(trace_.toStdString());
  QVERIFY(reader.ok());
  auto tl = Timeline::open(*reader);
  QVERIFY(tl.ok());
  (*tl)->seek(storeStep_);
  std::vector<double> bare;
  for (int i = 0; i < 30; ++i) {
    QElapsedTimer t;
    t.start();
    (*tl)->stepBack(1);
    bare.push_back(static_cast<double>(t.nsecsElapsed()) / 1e6);
  }
  std::sort(bare.begin(), bare.end());
  // The engine alone, called on this thread: the step back plus building
  // the snapshot (disassembly, backtrace, each frame's variables, memory).
  ReplayEngine engine;
  engine.open(trace_, {QStringLiteral(TTVM_BUILD_DIR "/guests/demo/demo.elf.elf")});
  engine.seek(storeStep_);
  std::vector<double> worker;
  for (int i = 0; i < 30; ++i) {
    QElapsedTimer t;
    t.start();
    engine.stepBack(1);
    worker.push_back(static_cast<double>(t.nsecsElapsed()) / 1e6);
  }
  std::sort(worker.begin(), worker.end());
  qInfo(
      "Timeline::stepBack alone: median %.2f ms; the engine's step back with its snapshot: "
      "median %.2f ms; the GUI round trip without a move: median %.2f ms",
      bare[bare.size() / 2], worker[worker.size() / 2], refresh[refresh.size() / 2]);
  qInfo("GUI step back (instruction): median %.2f ms, max %.2f ms over %zu", insn[insn.size() / 2],
        insn.back(), insn.size());
  qInfo("GUI step back over (line): median %.2f ms, max %.2f ms over %zu", line[line.size() / 2],
        line.back(), line.size());
  QVERIFY2(insn[insn.size() / 2] < 250.0, "step back took longer than a quarter second");
  QVERIFY2(line[line.size() / 2] < 1000.0, "step back over took longer than a second");
}

// Follow mode: the window opens a trace that `ttvm record --realtime` is
// still writing (rec_ticker prints a line every ~0.22 s, the writer flushes
// a chunk each second) and keeps up with it: while the recorder runs the
// position moves on with the live end, the console grows with the guest's
// lines, and a user who steps back stays where they are while the history
// still grows; when the recorder ends, the window lands on the end of the
// finished trace (its final registers, the recorder's whole output) within
// about a second.
void MainWindowTest::followsARecordingInProgress() {
  const QString guest = QStringLiteral(REC_GUEST_DIR "/rec_ticker.elf");
  QVERIFY2(QFile::exists(guest), "build the rec_guest_rec_ticker target first");
  const QString trace = dir_.filePath(QStringLiteral("follow.ttvm"));
  const QString out = dir_.filePath(QStringLiteral("follow.out"));
  QProcess rec;
  rec.setStandardOutputFile(out);  // the guest's serial output
  rec.setStandardErrorFile(dir_.filePath(QStringLiteral("follow.err")));
  rec.start(QStringLiteral(TTVM_BIN),
            {QStringLiteral("record"), QStringLiteral("--backend"), QStringLiteral("emu"),
             QStringLiteral("--realtime"), QStringLiteral("--timeout"), QStringLiteral("8"),
             QStringLiteral("--start-clock"), QStringLiteral("1700000000"), QStringLiteral("-o"),
             trace, guest});
  QVERIFY(rec.waitForStarted());
  QElapsedTimer clock;
  clock.start();
  // The initial state is written at once; the first chunk a second later.
  QTRY_VERIFY_WITH_TIMEOUT(TraceReader::open(trace.toStdString()).ok(), 10000);
  MainWindow w;
  w.show();
  QVERIFY(w.openTrace(trace));
  WAIT_IDLE(w);
  QVERIFY2(w.snapshot().has_value(), qPrintable(w.followLabel()->text()));
  QVERIFY2(w.following(), qPrintable(w.followLabel()->text()));
  QVERIFY(rec.state() == QProcess::Running);

  // The positions the window moves on to by itself.
  struct Seen {
    uint64_t step, end;
    qsizetype lines;
    qint64 ms;
  };
  std::vector<Seen> seen;
  auto lines = [&w] { return w.console()->toPlainText().count(QStringLiteral("tick ")); };
  const QMetaObject::Connection watch = QObject::connect(&w, &MainWindow::snapshotShown, &w, [&] {
    if (rec.state() == QProcess::Running)
      seen.push_back({w.snapshot()->step, w.snapshot()->endStep, lines(), clock.elapsed()});
  });
  QTRY_VERIFY_WITH_TIMEOUT(seen.size() >= 3, 10000);
  QObject::disconnect(watch);
  for (size_t i = 1; i < seen.size(); ++i) {
    QVERIFY(seen[i].step > seen[i - 1].step);
    QVERIFY(seen[i].end > seen[i - 1].end);
    QCOMPARE(seen[i].step + 1, seen[i].end);  // one step short of the live end
    QVERIFY(seen[i].lines >= seen[i - 1].lines);
  }
  QVERIFY2(seen.back().lines > seen.front().lines, qPrintable(w.console()->toPlainText()));

  // A user who steps back stays there while the history grows.
  QVERIFY(rec.state() == QProcess::Running);
  QVERIFY(w.stepBack());
  WAIT_IDLE(w);
  const uint64_t parked = w.snapshot()->step;
  const uint64_t endWhenParked = w.timeline()->historyEnd();
  QTRY_VERIFY_WITH_TIMEOUT(w.timeline()->historyEnd() > endWhenParked, 5000);
  QCOMPARE(w.snapshot()->step, parked);
  // Going to the live end again: the window moves on with it.
  QVERIFY(w.goToStep(w.timeline()->historyEnd() - 1));
  WAIT_IDLE(w);
  const uint64_t rejoined = w.snapshot()->step;
  QTRY_VERIFY_WITH_TIMEOUT(w.snapshot()->step > rejoined || rec.state() != QProcess::Running, 5000);

  // The recorder ends (its --timeout): the window shows the end of the
  // finished trace.
  QTRY_VERIFY_WITH_TIMEOUT(rec.state() == QProcess::NotRunning, 20000);
  const qint64 recorderEnded = clock.elapsed();
  QCOMPARE(rec.exitCode(), 124);  // the --timeout ended the run
  QTRY_VERIFY_WITH_TIMEOUT(!w.following(), 10000);
  const qint64 lag = clock.elapsed() - recorderEnded;
  WAIT_IDLE(w);
  auto reader = TraceReader::open(trace.toStdString());
  QVERIFY(reader.ok() && reader->end().has_value());
  QCOMPARE(w.snapshot()->step, reader->end()->steps);
  QCOMPARE(w.snapshot()->endStep, reader->end()->steps);
  QCOMPARE(w.snapshot()->stopKind, StopKind::kHistoryEnd);
  QVERIFY(w.snapshot()->registers == reader->end()->finalCpu);
  QVERIFY2(w.followLabel()->text().contains(
               QStringLiteral("ended at step %1").arg(reader->end()->steps)),
           qPrintable(w.followLabel()->text()));
  QFile recorded(out);
  QVERIFY(recorded.open(QIODevice::ReadOnly));
  QCOMPARE(w.console()->toPlainText(), QString::fromLatin1(recorded.readAll()));
  std::vector<qint64> gaps;
  for (size_t i = 1; i < seen.size(); ++i) gaps.push_back(seen[i].ms - seen[i - 1].ms);
  qInfo(
      "follow: %zu positions shown while recording (%s ms apart), %lld lines at the last; "
      "window at the end %lld ms after the recorder exited",
      seen.size(),
      qPrintable(std::accumulate(gaps.begin(), gaps.end(), QString(),
                                 [](const QString& a, qint64 g) {
                                   return a.isEmpty() ? QString::number(g)
                                                      : a + QLatin1Char('/') + QString::number(g);
                                 })),
      static_cast<long long>(seen.back().lines), static_cast<long long>(lag));
  QVERIFY2(lag < 3000, qPrintable(QString::number(lag)));
}

}  // namespace ttvm::ui
