#include "main_window_test.h"

#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QPlainTextEdit>
#include <QProcess>
#include <QSignalSpy>
#include <QTableView>
#include <QThread>
#include <QTimer>
#include <QtTest>
#include <algorithm>

#include "ttvm/formats/trace_reader.h"
#include "ttvm/replayer/timeline.h"
#include "ttvm/ui/main_window.h"

namespace ttvm::ui {

namespace {

// Replay of 6 M steps plus reverse scans; generous for a loaded machine.
constexpr int kTimeoutMs = 180000;

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
              .data(w.memoryModel().index(0, 2), Qt::DisplayRole)
              .toString()
              .startsWith(QStringLiteral("lookup")));
  // One picture of this moment for docs/ (only when asked: TTVM_UI_SCREENSHOT=path).
  const QByteArray shot = qgetenv("TTVM_UI_SCREENSHOT");
  if (!shot.isEmpty()) {
    w.resize(1400, 860);
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
    QCOMPARE(s.stopKind, StopKind::kCancelled);
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
  const QString map = dir_.filePath(QStringLiteral("demo.map"));
  QProcess nm;
  nm.setStandardOutputFile(map);
  nm.start(QStringLiteral("sh"),
           {QStringLiteral("-c"),
            QStringLiteral("nm -n " TTVM_BUILD_DIR "/guests/demo/demo.elf.elf | sed 's/ \\([^ "
                           "]*\\)$/ map_\\1/'")});
  QVERIFY(nm.waitForFinished(kTimeoutMs));
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

}  // namespace ttvm::ui
