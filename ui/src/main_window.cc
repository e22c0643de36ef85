#include "ttvm/ui/main_window.h"

#include <QAction>
#include <QDockWidget>
#include <QFileDialog>
#include <QFileInfo>
#include <QFontDatabase>
#include <QHeaderView>
#include <QInputDialog>
#include <QLabel>
#include <QLineEdit>
#include <QMenuBar>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QScrollBar>
#include <QSplitter>
#include <QStatusBar>
#include <QTableView>
#include <QToolBar>
#include <QVBoxLayout>

#include "ttvm/ui/address_parser.h"
#include "ttvm/ui/bookmark_file.h"

namespace ttvm::ui {

namespace {

QTableView* makeTable(QAbstractItemModel* model, QWidget* parent) {
  auto* v = new QTableView(parent);
  v->setModel(model);
  v->setSelectionBehavior(QAbstractItemView::SelectRows);
  v->setSelectionMode(QAbstractItemView::SingleSelection);
  v->setEditTriggers(QAbstractItemView::NoEditTriggers);
  v->verticalHeader()->setVisible(false);
  // Fixed row height: the view then lays out and paints only visible rows.
  v->verticalHeader()->setSectionResizeMode(QHeaderView::Fixed);
  v->verticalHeader()->setDefaultSectionSize(v->fontMetrics().height() + 4);
  v->horizontalHeader()->setStretchLastSection(true);
  v->setShowGrid(false);
  v->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
  return v;
}

}  // namespace

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) {
  qRegisterMetaType<Snapshot>();
  qRegisterMetaType<SymbolsPtr>();
  qRegisterMetaType<MarksPtr>();
  qRegisterMetaType<EventRowsPtr>();
  setWindowTitle(QStringLiteral("ttvm-ui"));

  engine_ = new ReplayEngine;
  engine_->moveToThread(&thread_);
  connect(&thread_, &QThread::finished, engine_, &QObject::deleteLater);
  connect(engine_, &ReplayEngine::stopped, this, [this](const Snapshot& s) {
    setBusy(false);
    showSnapshot(s);
  });
  connect(engine_, &ReplayEngine::failed, this, [this](const QString& m) {
    setBusy(false);
    stopLabel_->setText(m);
    emit operationFailed(m);
  });
  connect(engine_, &ReplayEngine::opened, this,
          [this](const QString& path, const QString& identity, quint64 begin, quint64 end,
                 const SymbolsPtr& symbols, const MarksPtr& marks) {
            symbols_ = symbols;
            timeline_->setHistory(begin, end, marks);
            // The bookmarks saved beside this trace, if any (bookmark_file.h).
            bookmarks_.clear();
            bookmarkFile_ = bookmarkFilePath(path);
            traceIdentity_ = identity;
            bookmarkProblem_.clear();
            for (Bookmark& b : loadBookmarks(bookmarkFile_, identity, &bookmarkProblem_))
              if (b.step >= begin && b.step <= end) bookmarks_.add(std::move(b));
            if (!bookmarkProblem_.isEmpty()) qWarning("%s", qPrintable(bookmarkProblem_));
            events_.setRows(nullptr);
            setWindowTitle(QStringLiteral("ttvm-ui — %1").arg(QFileInfo(path).fileName()));
          });
  // A followed recording: the history grows; the position moves on with it
  // when it was at the live end and the user is not running an operation
  // (whose own result comes next).
  connect(engine_, &ReplayEngine::grew, this,
          [this](quint64 begin, quint64 end, const MarksPtr& marks, bool) {
            timeline_->setHistory(begin, end, marks);
            if (snapshot_)
              stepLabel_->setText(QStringLiteral("step %1 / %2").arg(snapshot_->step).arg(end));
          });
  connect(engine_, &ReplayEngine::advanced, this, [this](const Snapshot& s) {
    if (!busy_) showSnapshot(s);
  });
  connect(engine_, &ReplayEngine::followingChanged, this, [this](bool on, const QString& why) {
    const bool was = following_;
    following_ = on;
    followLabel_->setVisible(on || !why.isEmpty());
    followLabel_->setText(on ? QStringLiteral("● following the recording") : why);
    followLabel_->setToolTip(why);
    if (was != on) emit followingChanged(on);
  });
  connect(engine_, &ReplayEngine::engineFellBack, this, [this](const QString& m) {
    engineLabel_->setText(QStringLiteral("⚠ the fast engine diverged: on the reference engine"));
    engineLabel_->setToolTip(m);
    engineLabel_->setVisible(true);
    emit engineFellBack(m);
  });
  connect(engine_, &ReplayEngine::eventsReady, this,
          [this](const EventRowsPtr& rows) { events_.setRows(rows); });
  connect(engine_, &ReplayEngine::symbolsChanged, this,
          [this](const SymbolsPtr& symbols) { symbols_ = symbols; });
  connect(engine_, &ReplayEngine::busy, this,
          [this](const QString& what) { stopLabel_->setText(what + QStringLiteral("…")); });
  connect(engine_, &ReplayEngine::progress, this, [this](quint64 done, quint64 total) {
    progress_->setVisible(true);
    progress_->setValue(
        total == 0 ? 0 : static_cast<int>(std::min<quint64>(done, total) * 1000 / total));
    emit operationProgress(done, total);
  });
  thread_.setObjectName(QStringLiteral("ttvm-replay"));
  thread_.start();

  buildActions();
  buildDocks();
  buildStatusBar();
  setBusy(false);
  resize(1280, 800);
}

MainWindow::~MainWindow() {
  engine_->requestCancel();
  thread_.quit();
  thread_.wait();
}

void MainWindow::buildActions() {
  auto add = [this](const QString& text, const QKeySequence& key, auto slot) {
    auto* a = new QAction(text, this);
    if (!key.isEmpty()) a->setShortcut(key);
    a->setToolTip(key.isEmpty() ? text : QStringLiteral("%1 (%2)").arg(text, key.toString()));
    connect(a, &QAction::triggered, this, slot);
    return a;
  };
  openAction_ = add(QStringLiteral("Open…"), QKeySequence::Open, [this] {
    const QString f =
        QFileDialog::getOpenFileName(this, QStringLiteral("Open trace"), {},
                                     QStringLiteral("ttvm traces (*.ttvm);;All files (*)"));
    if (!f.isEmpty()) openTrace(f);
  });
  stepBackAction_ = add(QStringLiteral("Step back"), QKeySequence(Qt::SHIFT | Qt::Key_F7),
                        [this] { stepBack(); });
  stepAction_ = add(QStringLiteral("Step"), QKeySequence(Qt::Key_F7), [this] { stepForward(); });
  stepBackOverAction_ = add(QStringLiteral("Step back over (line)"),
                            QKeySequence(Qt::SHIFT | Qt::Key_F10), [this] { stepBackOver(); });
  stepBackIntoAction_ = add(QStringLiteral("Step back into (line)"),
                            QKeySequence(Qt::CTRL | Qt::Key_F11), [this] { stepBackInto(); });
  stepOverAction_ =
      add(QStringLiteral("Step over (line)"), QKeySequence(Qt::Key_F10), [this] { stepOver(); });
  stepIntoAction_ =
      add(QStringLiteral("Step into (line)"), QKeySequence(Qt::Key_F11), [this] { stepInto(); });
  stepOutBackAction_ =
      add(QStringLiteral("Step out backward"), QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_F11),
          [this] { stepOutBackward(); });
  stepOutAction_ =
      add(QStringLiteral("Step out"), QKeySequence(Qt::SHIFT | Qt::Key_F11), [this] { stepOut(); });
  loadSymbolsAction_ =
      add(QStringLiteral("Load symbols…"), QKeySequence(Qt::CTRL | Qt::Key_L), [this] {
        const QString f =
            QFileDialog::getOpenFileName(this, QStringLiteral("Load symbols"), {},
                                         QStringLiteral("ELF files and System.map (*)"));
        if (!f.isEmpty()) loadSymbols(f);
      });
  reverseAction_ = add(QStringLiteral("Reverse continue"), QKeySequence(Qt::SHIFT | Qt::Key_F9),
                       [this] { reverseContinue(); });
  continueAction_ =
      add(QStringLiteral("Continue"), QKeySequence(Qt::Key_F9), [this] { continueForward(); });
  breakpointAction_ = add(QStringLiteral("Toggle breakpoint"), QKeySequence(Qt::Key_F2),
                          [this] { toggleBreakpointAtSelection(); });
  lastWriteAction_ = add(QStringLiteral("Last write to…"), QKeySequence(Qt::CTRL | Qt::Key_W),
                         [this] { promptLastWrite(); });
  prevOutputAction_ = add(QStringLiteral("Previous output"), QKeySequence(Qt::CTRL | Qt::Key_Left),
                          [this] { serialOutput(false); });
  nextOutputAction_ = add(QStringLiteral("Next output"), QKeySequence(Qt::CTRL | Qt::Key_Right),
                          [this] { serialOutput(true); });
  watchAction_ = add(QStringLiteral("Watch writes to…"), QKeySequence(Qt::CTRL | Qt::Key_B),
                     [this] { promptWatch(); });
  goToAction_ = add(QStringLiteral("Go to step…"), QKeySequence(Qt::CTRL | Qt::Key_G),
                    [this] { promptGoToStep(); });
  cancelAction_ =
      add(QStringLiteral("Cancel"), QKeySequence(Qt::Key_Escape), [this] { cancelOperation(); });
  bookmarkAction_ =
      add(QStringLiteral("Bookmark here…"), QKeySequence(Qt::CTRL | Qt::Key_D), [this] {
        bool ok = false;
        const QString name = QInputDialog::getText(this, QStringLiteral("Bookmark"),
                                                   QStringLiteral("Name of this step:"),
                                                   QLineEdit::Normal, QString(), &ok);
        if (ok) addBookmark(name);
      });

  QToolBar* tb = addToolBar(QStringLiteral("Debug"));
  tb->setObjectName(QStringLiteral("debugToolBar"));
  for (QAction* a : {stepBackAction_, stepAction_, reverseAction_, continueAction_})
    tb->addAction(a);
  tb->addSeparator();
  for (QAction* a : {stepBackOverAction_, stepOverAction_, stepBackIntoAction_, stepIntoAction_,
                     stepOutBackAction_, stepOutAction_})
    tb->addAction(a);
  tb->addSeparator();
  for (QAction* a : {prevOutputAction_, nextOutputAction_}) tb->addAction(a);
  tb->addSeparator();
  for (QAction* a : {breakpointAction_, watchAction_, lastWriteAction_, goToAction_})
    tb->addAction(a);
  tb->addSeparator();
  tb->addAction(cancelAction_);

  QMenu* file = menuBar()->addMenu(QStringLiteral("&File"));
  file->addAction(openAction_);
  file->addAction(loadSymbolsAction_);
  file->addAction(QStringLiteral("Quit"), QKeySequence::Quit, this, &QWidget::close);
  QMenu* debug = menuBar()->addMenu(QStringLiteral("&Debug"));
  for (QAction* a :
       {stepBackAction_, stepAction_, stepBackOverAction_, stepOverAction_, stepBackIntoAction_,
        stepIntoAction_, stepOutBackAction_, stepOutAction_, reverseAction_, continueAction_,
        prevOutputAction_, nextOutputAction_, breakpointAction_, watchAction_, lastWriteAction_,
        goToAction_, bookmarkAction_, cancelAction_})
    debug->addAction(a);
}

void MainWindow::buildDocks() {
  // Disassembly: the central view.
  disasmView_ = makeTable(&disassembly_, this);
  disasmView_->horizontalHeader()->resizeSection(DisassemblyModel::kBreakpoint, 24);
  disasmView_->horizontalHeader()->resizeSection(DisassemblyModel::kAddress, 140);
  disasmView_->horizontalHeader()->resizeSection(DisassemblyModel::kBytes, 130);
  disasmView_->horizontalHeader()->resizeSection(DisassemblyModel::kInstruction, 320);
  connect(disasmView_, &QTableView::doubleClicked, this, [this](const QModelIndex& i) {
    if (const DisasmLine* l = disassembly_.line(i.row())) {
      const uint64_t csBase = snapshot_ ? snapshot_->registers.segment(SegReg::kCs).base : 0;
      toggleBreakpoint(csBase + l->address);
    }
  });
  // Source beside the disassembly: the line of the selected frame.
  sourceView_ = makeTable(&source_, this);
  sourceView_->horizontalHeader()->resizeSection(SourceModel::kLine, 60);
  auto* split = new QSplitter(Qt::Horizontal, this);
  split->addWidget(disasmView_);
  split->addWidget(sourceView_);
  split->setStretchFactor(0, 3);
  split->setStretchFactor(1, 2);
  setCentralWidget(split);

  // Call stack: a click shows the frame's source and variables.
  stackView_ = makeTable(&stack_, this);
  stackView_->horizontalHeader()->resizeSection(CallStackModel::kNumber, 36);
  stackView_->horizontalHeader()->resizeSection(CallStackModel::kFunction, 220);
  connect(stackView_, &QTableView::clicked, this,
          [this](const QModelIndex& i) { selectFrame(i.row()); });
  auto* stackDock = new QDockWidget(QStringLiteral("Call stack"), this);
  stackDock->setObjectName(QStringLiteral("callStackDock"));
  stackDock->setWidget(stackView_);
  addDockWidget(Qt::LeftDockWidgetArea, stackDock);

  localsView_ = makeTable(&locals_, this);
  localsView_->horizontalHeader()->resizeSection(LocalsModel::kName, 90);
  localsView_->horizontalHeader()->resizeSection(LocalsModel::kValue, 200);
  auto* localsDock = new QDockWidget(QStringLiteral("Locals"), this);
  localsDock->setObjectName(QStringLiteral("localsDock"));
  localsDock->setWidget(localsView_);
  addDockWidget(Qt::LeftDockWidgetArea, localsDock);

  registerView_ = makeTable(&registers_, this);
  registerView_->horizontalHeader()->resizeSection(0, 70);
  registerView_->setToolTip(QStringLiteral("double-click: go to the last change of the register"));
  connect(registerView_, &QTableView::doubleClicked, this, [this](const QModelIndex& i) {
    const QString name = registers_.name(i.row());
    if (!name.isEmpty()) registerLastChange(name);
  });
  auto* regDock = new QDockWidget(QStringLiteral("Registers"), this);
  regDock->setObjectName(QStringLiteral("registersDock"));
  regDock->setWidget(registerView_);
  addDockWidget(Qt::RightDockWidgetArea, regDock);

  auto* memWidget = new QWidget(this);
  auto* memLayout = new QVBoxLayout(memWidget);
  memLayout->setContentsMargins(0, 0, 0, 0);
  memoryAddress_ = new QLineEdit(memWidget);
  memoryAddress_->setPlaceholderText(QStringLiteral("address or symbol+offset, Enter"));
  memoryView_ = makeTable(&memory_, memWidget);
  memoryView_->horizontalHeader()->resizeSection(MemoryModel::kAddressColumn, 150);
  for (int i = 0; i < MemoryModel::kBytesPerRow; ++i)
    memoryView_->horizontalHeader()->resizeSection(
        1 + i, memoryView_->fontMetrics().horizontalAdvance(QStringLiteral("000")));
  memLayout->addWidget(memoryAddress_);
  memLayout->addWidget(memoryView_);
  connect(memoryAddress_, &QLineEdit::returnPressed, this, [this] {
    auto a = parseAddress(memoryAddress_->text(), symbols_.get());
    if (!a) {
      stopLabel_->setText(
          QStringLiteral("not an address or symbol: '%1'").arg(memoryAddress_->text()));
      return;
    }
    setMemoryAddress(*a);
  });
  auto* memDock = new QDockWidget(QStringLiteral("Memory"), this);
  memDock->setObjectName(QStringLiteral("memoryDock"));
  memDock->setWidget(memWidget);
  addDockWidget(Qt::BottomDockWidgetArea, memDock);

  console_ = new QPlainTextEdit(this);
  console_->setReadOnly(true);
  console_->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
  console_->setLineWrapMode(QPlainTextEdit::NoWrap);
  auto* conDock = new QDockWidget(QStringLiteral("Serial console"), this);
  conDock->setObjectName(QStringLiteral("consoleDock"));
  conDock->setWidget(console_);
  addDockWidget(Qt::RightDockWidgetArea, conDock);

  // Timeline: the whole history with its serial and interrupt events; a
  // click goes there.
  auto* tl = new QToolBar(QStringLiteral("Timeline"), this);
  tl->setObjectName(QStringLiteral("timelineBar"));
  timeline_ = new TimelineWidget(tl);
  timeline_->setToolTip(
      QStringLiteral("green: serial output, orange: interrupts; click to go there"));
  stepLabel_ = new QLabel(QStringLiteral("no trace"), tl);
  stepLabel_->setMinimumWidth(220);
  tl->addWidget(new QLabel(QStringLiteral(" Timeline "), tl));
  tl->addWidget(timeline_);
  tl->addWidget(stepLabel_);
  addToolBar(Qt::BottomToolBarArea, tl);
  connect(timeline_, &TimelineWidget::seekRequested, this,
          [this](quint64 step) { goToStep(step); });
  buildListDocks();
  resizeDocks({regDock, conDock}, {420, 420}, Qt::Horizontal);
  resizeDocks({regDock, conDock}, {380, 200}, Qt::Vertical);
  resizeDocks({memDock}, {260}, Qt::Vertical);
}

void MainWindow::buildListDocks() {
  // Events: every event of the trace, rows read on demand (event_list_model.h);
  // double-click goes to the instruction that caused it.
  eventsView_ = makeTable(&events_, this);
  eventsView_->horizontalHeader()->resizeSection(EventListModel::kStep, 110);
  eventsView_->horizontalHeader()->resizeSection(EventListModel::kKind, 110);
  connect(eventsView_, &QTableView::doubleClicked, this, [this](const QModelIndex& i) {
    if (const EventRow* e = events_.event(i.row())) goToStep(e->step());
  });
  auto* eventsDock = new QDockWidget(QStringLiteral("Events"), this);
  eventsDock->setObjectName(QStringLiteral("eventsDock"));
  eventsDock->setWidget(eventsView_);
  addDockWidget(Qt::BottomDockWidgetArea, eventsDock);

  // Breakpoints & watchpoints: Delete (or double-click) removes one.
  stopsView_ = makeTable(&stops_, this);
  stopsView_->setToolTip(QStringLiteral("Delete or double-click: remove"));
  connect(stopsView_, &QTableView::doubleClicked, this,
          [this](const QModelIndex& i) { removeStop(i.row()); });
  auto* removeStopAction = new QAction(QStringLiteral("Remove"), stopsView_);
  removeStopAction->setShortcut(QKeySequence::Delete);
  removeStopAction->setShortcutContext(Qt::WidgetShortcut);
  connect(removeStopAction, &QAction::triggered, this,
          [this] { removeStop(stopsView_->currentIndex().row()); });
  stopsView_->addAction(removeStopAction);
  auto* stopsDock = new QDockWidget(QStringLiteral("Breakpoints && Watchpoints"), this);
  stopsDock->setObjectName(QStringLiteral("stopsDock"));
  stopsDock->setWidget(stopsView_);
  addDockWidget(Qt::LeftDockWidgetArea, stopsDock);

  // Bookmarks: double-click goes there, Delete removes.
  bookmarksView_ = makeTable(&bookmarks_, this);
  connect(bookmarksView_, &QTableView::doubleClicked, this,
          [this](const QModelIndex& i) { goToBookmark(i.row()); });
  auto* removeMarkAction = new QAction(QStringLiteral("Remove"), bookmarksView_);
  removeMarkAction->setShortcut(QKeySequence::Delete);
  removeMarkAction->setShortcutContext(Qt::WidgetShortcut);
  connect(removeMarkAction, &QAction::triggered, this,
          [this] { removeBookmark(bookmarksView_->currentIndex().row()); });
  bookmarksView_->addAction(removeMarkAction);
  auto* marksDock = new QDockWidget(QStringLiteral("Bookmarks"), this);
  marksDock->setObjectName(QStringLiteral("bookmarksDock"));
  marksDock->setWidget(bookmarksView_);
  addDockWidget(Qt::LeftDockWidgetArea, marksDock);
  tabifyDockWidget(stopsDock, marksDock);
  stopsDock->raise();
}

bool MainWindow::removeStop(int row) {
  const StopListModel::Row* r = stops_.row(row);
  if (r == nullptr) return false;
  return r->watchpoint ? toggleWatchpoint(r->address, r->length) : toggleBreakpoint(r->address);
}

void MainWindow::addBookmark(const QString& name) {
  if (!snapshot_) return;
  QString n = name.trimmed();
  if (n.isEmpty())
    n = snapshot_->location.isEmpty()
            ? QStringLiteral("step %1").arg(snapshot_->step)
            : QStringLiteral("step %1 at %2").arg(snapshot_->step).arg(snapshot_->location);
  bookmarksView_->selectRow(bookmarks_.add(Bookmark{snapshot_->step, n}));
  saveBookmarkFile();
}

void MainWindow::removeBookmark(int row) {
  if (bookmarks_.bookmark(row) == nullptr) return;
  bookmarks_.remove(row);
  saveBookmarkFile();
}

void MainWindow::saveBookmarkFile() {
  bookmarkProblem_.clear();
  if (!saveBookmarks(bookmarkFile_, traceIdentity_, bookmarks_.marks(), &bookmarkProblem_))
    stopLabel_->setText(QStringLiteral("bookmarks not saved: %1").arg(bookmarkProblem_));
}

bool MainWindow::goToBookmark(int row) {
  const Bookmark* b = bookmarks_.bookmark(row);
  return b != nullptr && goToStep(b->step);
}

void MainWindow::buildStatusBar() {
  stopLabel_ = new QLabel(this);
  progress_ = new QProgressBar(this);
  progress_->setRange(0, 1000);
  progress_->setMaximumWidth(200);
  progress_->setVisible(false);
  cancelButton_ = new QPushButton(QStringLiteral("Cancel"), this);
  connect(cancelButton_, &QPushButton::clicked, this, &MainWindow::cancelOperation);
  followLabel_ = new QLabel(this);
  followLabel_->setVisible(false);
  engineLabel_ = new QLabel(this);
  engineLabel_->setVisible(false);
  statusBar()->addWidget(stopLabel_, 1);
  statusBar()->addPermanentWidget(engineLabel_);
  statusBar()->addPermanentWidget(followLabel_);
  statusBar()->addPermanentWidget(progress_);
  statusBar()->addPermanentWidget(cancelButton_);
}

bool MainWindow::dispatch(const QString& what, std::function<void(ReplayEngine&)> op) {
  if (busy_) return false;
  setBusy(true, what);
  engine_->clearCancel();
  ReplayEngine* e = engine_;
  QMetaObject::invokeMethod(
      engine_, [e, op = std::move(op)] { op(*e); }, Qt::QueuedConnection);
  return true;
}

void MainWindow::setBusy(bool busy, const QString& what) {
  const bool was = busy_;
  busy_ = busy;
  const bool open = snapshot_.has_value();
  for (QAction* a :
       {stepAction_, stepBackAction_, continueAction_, reverseAction_, prevOutputAction_,
        nextOutputAction_, breakpointAction_, watchAction_, lastWriteAction_, goToAction_,
        stepOverAction_, stepIntoAction_, stepBackOverAction_, stepBackIntoAction_, stepOutAction_,
        stepOutBackAction_, loadSymbolsAction_, bookmarkAction_})
    a->setEnabled(!busy && open);
  openAction_->setEnabled(!busy);
  timeline_->setEnabled(!busy && open);
  memoryAddress_->setEnabled(!busy && open);
  cancelAction_->setEnabled(busy);
  cancelButton_->setEnabled(busy);
  if (busy) {
    stopLabel_->setText(what + QStringLiteral("…"));
    progress_->setValue(0);
  } else {
    progress_->setVisible(false);
  }
  if (was != busy) emit busyChanged(busy);
}

void MainWindow::showSnapshot(const Snapshot& s) {
  const bool first = !snapshot_.has_value();
  registers_.setState(s.registers);
  disassembly_.setLines(s.disassembly);
  const int cur = disassembly_.currentRow();
  if (cur >= 0)
    disasmView_->scrollTo(disassembly_.index(cur, 0), QAbstractItemView::PositionAtCenter);
  memory_.setBytes(s.memoryAddress, s.memory, s.step);
  stack_.setFrames(s.frames);
  stops_.setStops(s, symbols_.get());
  if (!memoryAddress_->hasFocus())
    memoryAddress_->setText(QStringLiteral("0x") + QString::number(s.memoryAddress, 16));
  if (console_->toPlainText() != s.serial) {
    console_->setPlainText(s.serial);
    console_->verticalScrollBar()->setValue(console_->verticalScrollBar()->maximum());
  }
  stepLabel_->setText(QStringLiteral("step %1 / %2").arg(s.step).arg(s.endStep));
  timeline_->setPosition(s.step);
  QString where = s.location.isEmpty() ? QString() : QStringLiteral(" — at %1").arg(s.location);
  stopLabel_->setText(s.stopText + where);
  const bool samePosition = snapshot_ && snapshot_->step == s.step;
  snapshot_ = s;
  // A new position shows frame 0; the same one (a view changed) keeps the
  // frame the user picked.
  selectFrame(samePosition && selectedFrame_ < static_cast<int>(s.frames.size()) ? selectedFrame_
                                                                                 : 0);
  if (first) setBusy(false);  // enables the motion actions now that a trace is open
  emit snapshotShown();
}

bool MainWindow::openTrace(const QString& path, const QStringList& symbolFiles, CpuEngine engine) {
  return dispatch(
      QStringLiteral("opening %1").arg(path),
      [path, symbolFiles, engine](ReplayEngine& e) { e.open(path, symbolFiles, engine); });
}
bool MainWindow::stepForward() {
  return dispatch(QStringLiteral("step"), [](ReplayEngine& e) { e.stepForward(1); });
}
bool MainWindow::stepBack() {
  return dispatch(QStringLiteral("step back"), [](ReplayEngine& e) { e.stepBack(1); });
}
bool MainWindow::continueForward() {
  return dispatch(QStringLiteral("continue"), [](ReplayEngine& e) { e.continueForward(); });
}
bool MainWindow::reverseContinue() {
  return dispatch(QStringLiteral("reverse continue"), [](ReplayEngine& e) { e.reverseContinue(); });
}
bool MainWindow::stepOver() {
  return dispatch(QStringLiteral("step over"), [](ReplayEngine& e) { e.stepLine(false); });
}
bool MainWindow::stepInto() {
  return dispatch(QStringLiteral("step into"), [](ReplayEngine& e) { e.stepLine(true); });
}
bool MainWindow::stepBackOver() {
  return dispatch(QStringLiteral("step back over"), [](ReplayEngine& e) { e.stepBackLine(false); });
}
bool MainWindow::stepBackInto() {
  return dispatch(QStringLiteral("step back into"), [](ReplayEngine& e) { e.stepBackLine(true); });
}
bool MainWindow::stepOut() {
  return dispatch(QStringLiteral("step out"), [](ReplayEngine& e) { e.stepOut(true); });
}
bool MainWindow::stepOutBackward() {
  return dispatch(QStringLiteral("step out backward"), [](ReplayEngine& e) { e.stepOut(false); });
}
bool MainWindow::loadSymbols(const QString& path) {
  return dispatch(QStringLiteral("loading symbols from %1").arg(path),
                  [path](ReplayEngine& e) { e.loadSymbols(path); });
}

void MainWindow::selectFrame(int row) {
  if (!snapshot_) return;
  const FrameInfo* f = row >= 0 && row < static_cast<int>(snapshot_->frames.size())
                           ? &snapshot_->frames[static_cast<size_t>(row)]
                           : nullptr;
  selectedFrame_ = f ? row : 0;
  if (f) stackView_->selectRow(row);
  // The function without "+0x..": the locals' changes compare by function.
  QString fn = f ? f->function : QString();
  if (const int plus = fn.lastIndexOf(QLatin1Char('+')); plus > 0) fn.truncate(plus);
  locals_.setVariables(f ? f->variables : std::vector<GuestVariable>{}, fn, snapshot_->step);
  if (f && f->source) {
    source_.show(QString::fromStdString(f->source->file), f->source->line, row == 0);
    const int cur = source_.currentRow();
    if (cur >= 0) sourceView_->scrollTo(source_.index(cur, 0), QAbstractItemView::PositionAtCenter);
  } else {
    source_.show(QString(), 0, true);
  }
}

bool MainWindow::goToStep(uint64_t step) {
  return dispatch(QStringLiteral("go to step %1").arg(step),
                  [step](ReplayEngine& e) { e.seek(step); });
}
bool MainWindow::lastWrite(uint64_t address, uint64_t length) {
  return dispatch(QStringLiteral("searching the last write"),
                  [address, length](ReplayEngine& e) { e.lastWrite(address, length); });
}
bool MainWindow::registerLastChange(const QString& name) {
  return dispatch(QStringLiteral("searching the last change of %1").arg(name),
                  [name](ReplayEngine& e) { e.registerLastChange(name); });
}
bool MainWindow::serialOutput(bool forward) {
  return dispatch(forward ? QStringLiteral("next output") : QStringLiteral("previous output"),
                  [forward](ReplayEngine& e) { e.serialOutput(forward); });
}
bool MainWindow::toggleBreakpoint(uint64_t address) {
  return dispatch(QStringLiteral("breakpoint"),
                  [address](ReplayEngine& e) { e.toggleBreakpoint(address); });
}
bool MainWindow::toggleBreakpointAtSelection() {
  const QModelIndexList sel = disasmView_->selectionModel()->selectedRows();
  const int row = sel.isEmpty() ? disassembly_.currentRow() : sel.first().row();
  const DisasmLine* l = disassembly_.line(row);
  if (l == nullptr || !snapshot_) return false;
  return toggleBreakpoint(snapshot_->registers.segment(SegReg::kCs).base + l->address);
}
bool MainWindow::setMemoryAddress(uint64_t address) {
  return dispatch(QStringLiteral("memory"),
                  [address](ReplayEngine& e) { e.setMemoryAddress(address); });
}
bool MainWindow::toggleWatchpoint(uint64_t address, uint64_t length) {
  return dispatch(QStringLiteral("watchpoint"),
                  [address, length](ReplayEngine& e) { e.toggleWatchpoint(address, length); });
}
void MainWindow::cancelOperation() {
  engine_->requestCancel();
}

void MainWindow::promptGoToStep() {
  if (!snapshot_) return;
  bool ok = false;
  const QString t = QInputDialog::getText(
      this, QStringLiteral("Go to step"),
      QStringLiteral("Step (%1 to %2):").arg(snapshot_->beginStep).arg(snapshot_->endStep),
      QLineEdit::Normal, QString::number(snapshot_->step), &ok);
  if (!ok) return;
  const uint64_t step = t.trimmed().toULongLong(&ok);
  if (!ok) {
    stopLabel_->setText(QStringLiteral("not a step number: '%1'").arg(t));
    return;
  }
  goToStep(step);
}

void MainWindow::promptWatch() {
  bool ok = false;
  const QString t = QInputDialog::getText(
      this, QStringLiteral("Watch writes to"),
      QStringLiteral("Address[:length] (again to remove), e.g. arena+0x2fa8:8"), QLineEdit::Normal,
      QString(), &ok);
  if (!ok) return;
  auto r = parseRange(t, symbols_.get());
  if (!r) {
    stopLabel_->setText(QStringLiteral("not an address range: '%1'").arg(t));
    return;
  }
  toggleWatchpoint(r->address, r->length);
}

void MainWindow::promptLastWrite() {
  bool ok = false;
  const QString t = QInputDialog::getText(
      this, QStringLiteral("Last write to"),
      QStringLiteral("Address[:length] (hex number or symbol+offset), e.g. arena+0x2fa8:8"),
      QLineEdit::Normal, QString(), &ok);
  if (!ok) return;
  auto r = parseRange(t, symbols_.get());
  if (!r) {
    stopLabel_->setText(QStringLiteral("not an address range: '%1'").arg(t));
    return;
  }
  lastWrite(r->address, r->length);
}

}  // namespace ttvm::ui
