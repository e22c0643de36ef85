// MainWindow: ttvm-ui's window. It owns the worker thread and the
// ReplayEngine on it (no global core object), one model + one view per dock
// (registers, disassembly beside the source, call stack, locals, memory,
// serial console, events, breakpoints & watchpoints, bookmarks) and the
// timeline bar.
//
// Flow: an action calls dispatch(), which marks the window busy (motion
// actions off, Cancel on) and queues the engine operation on the worker
// thread; the engine's stopped() or failed() signal ends the busy state and
// stopped() fills every model from the Snapshot. The GUI thread never waits
// on the engine, so the window keeps painting and Cancel keeps working
// during long reverse scans.
#pragma once

#include <QMainWindow>
#include <QThread>
#include <cstdint>
#include <functional>
#include <optional>

#include "ttvm/ui/call_stack_model.h"
#include "ttvm/ui/disassembly_model.h"
#include "ttvm/ui/event_list_model.h"
#include "ttvm/ui/locals_model.h"
#include "ttvm/ui/memory_model.h"
#include "ttvm/ui/register_model.h"
#include "ttvm/ui/replay_engine.h"
#include "ttvm/ui/snapshot.h"
#include "ttvm/ui/source_model.h"
#include "ttvm/ui/stop_list_model.h"
#include "ttvm/ui/timeline_widget.h"

class QAction;
class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QProgressBar;
class QPushButton;
class QTableView;

namespace ttvm::ui {

class MainWindow : public QMainWindow {
  Q_OBJECT

 public:
  explicit MainWindow(QWidget* parent = nullptr);
  ~MainWindow() override;

  // Operations (each queued on the engine; ignored while busy, returning false).
  // The replay runs `engine` (ttvm-ui --engine; replay_session.h).
  bool openTrace(const QString& path, const QStringList& symbolFiles = {},
                 CpuEngine engine = kDefaultReplayEngine);
  bool stepForward();
  bool stepBack();
  bool continueForward();
  bool reverseContinue();
  // By source line (one instruction where RIP has no line): over calls,
  // into them, back to the previous line, out to the caller, and back to
  // the call that entered the current function.
  bool stepOver();
  bool stepInto();
  bool stepBackOver();
  bool stepBackInto();
  bool stepOut();
  bool stepOutBackward();
  // Adds a System.map or an ELF file (with DWARF: lines and variables).
  bool loadSymbols(const QString& path);
  // Shows frame `row` of the call stack: its source line and variables.
  void selectFrame(int row);
  // Removes the breakpoint or watchpoint of row `row` of the Breakpoints &
  // Watchpoints dock.
  bool removeStop(int row);
  // Bookmarks the current step as `name` (empty: "step N at SYMBOL").
  void addBookmark(const QString& name = {});
  // Goes to the step of bookmark `row`.
  bool goToBookmark(int row);
  // Removes bookmark `row` (also: Delete in the dock).
  void removeBookmark(int row);
  // What went wrong last reading or writing the trace's bookmark file
  // (bookmark_file.h), "" when nothing did; also shown in the status bar.
  const QString& bookmarkFileProblem() const { return bookmarkProblem_; }
  bool goToStep(uint64_t step);
  bool lastWrite(uint64_t address, uint64_t length);
  bool toggleBreakpoint(uint64_t address);
  // To the previous / next byte the guest wrote to the serial console.
  bool serialOutput(bool forward);
  // To the step that last changed register `name` (also: double-click a register).
  bool registerLastChange(const QString& name);
  // The selected disassembly line's address (the current line if none).
  bool toggleBreakpointAtSelection();
  bool setMemoryAddress(uint64_t address);
  // Write watchpoint on [address, address+length) (toggled).
  bool toggleWatchpoint(uint64_t address, uint64_t length);
  // Asks the running operation to stop (any time; harmless when idle).
  void cancelOperation();

  bool busy() const { return busy_; }
  // The open trace is still being recorded and is followed (ReplayEngine).
  bool following() const { return following_; }
  QLabel* followLabel() const { return followLabel_; }
  // Shown once the fast engine diverged and the replay fell back to the
  // reference engine; its tooltip holds both outcomes.
  QLabel* engineLabel() const { return engineLabel_; }
  const std::optional<Snapshot>& snapshot() const { return snapshot_; }
  const SymbolsPtr& symbols() const { return symbols_; }
  RegisterModel& registerModel() { return registers_; }
  DisassemblyModel& disassemblyModel() { return disassembly_; }
  MemoryModel& memoryModel() { return memory_; }
  SourceModel& sourceModel() { return source_; }
  CallStackModel& callStackModel() { return stack_; }
  LocalsModel& localsModel() { return locals_; }
  EventListModel& eventListModel() { return events_; }
  StopListModel& stopListModel() { return stops_; }
  BookmarkModel& bookmarkModel() { return bookmarks_; }
  QTableView* eventsView() const { return eventsView_; }
  int selectedFrame() const { return selectedFrame_; }
  QTableView* sourceView() const { return sourceView_; }
  QTableView* callStackView() const { return stackView_; }
  QTableView* disassemblyView() const { return disasmView_; }
  QPlainTextEdit* console() const { return console_; }
  QAction* stepForwardAction() const { return stepAction_; }
  QAction* stepBackAction() const { return stepBackAction_; }
  QAction* continueAction() const { return continueAction_; }
  QAction* reverseContinueAction() const { return reverseAction_; }
  QAction* cancelAction() const { return cancelAction_; }
  QAction* stepOverAction() const { return stepOverAction_; }
  QAction* stepIntoAction() const { return stepIntoAction_; }
  QAction* stepBackOverAction() const { return stepBackOverAction_; }
  QAction* stepBackIntoAction() const { return stepBackIntoAction_; }
  QAction* stepOutAction() const { return stepOutAction_; }
  QAction* stepOutBackwardAction() const { return stepOutBackAction_; }
  QAction* loadSymbolsAction() const { return loadSymbolsAction_; }
  QAction* bookmarkAction() const { return bookmarkAction_; }
  QProgressBar* progressBar() const { return progress_; }
  TimelineWidget* timeline() const { return timeline_; }

 signals:
  // A new snapshot is on screen (after every successful operation).
  void snapshotShown();
  // An operation failed; the message is also in the status bar.
  void operationFailed(const QString& message);
  void busyChanged(bool busy);
  // Progress of the running operation (steps done, total).
  void operationProgress(quint64 done, quint64 total);
  // Following a recording in progress started or stopped.
  void followingChanged(bool following);
  // The fast engine diverged; the replay runs the reference engine now
  // (ReplayEngine::engineFellBack).
  void engineFellBack(const QString& message);

 private:
  void buildActions();
  void buildDocks();
  void buildStatusBar();
  // Writes the bookmarks beside the trace; a failure goes to the status bar.
  void saveBookmarkFile();
  bool dispatch(const QString& what, std::function<void(ReplayEngine&)> op);
  void setBusy(bool busy, const QString& what = {});
  void showSnapshot(const Snapshot& s);
  void promptGoToStep();
  void promptLastWrite();
  void promptWatch();
  void buildListDocks();

  QThread thread_;
  ReplayEngine* engine_ = nullptr;  // lives on thread_, deleted there when it finishes
  bool busy_ = false;
  bool following_ = false;
  std::optional<Snapshot> snapshot_;
  SymbolsPtr symbols_;

  RegisterModel registers_;
  DisassemblyModel disassembly_;
  MemoryModel memory_;
  SourceModel source_;
  CallStackModel stack_;
  LocalsModel locals_;
  EventListModel events_;
  StopListModel stops_;
  BookmarkModel bookmarks_;
  // The open trace's bookmark file and identity (bookmark_file.h).
  QString bookmarkFile_;
  QString traceIdentity_;
  QString bookmarkProblem_;
  int selectedFrame_ = 0;

  QTableView* registerView_ = nullptr;
  QTableView* disasmView_ = nullptr;
  QTableView* memoryView_ = nullptr;
  QTableView* sourceView_ = nullptr;
  QTableView* stackView_ = nullptr;
  QTableView* localsView_ = nullptr;
  QTableView* eventsView_ = nullptr;
  QTableView* stopsView_ = nullptr;
  QTableView* bookmarksView_ = nullptr;
  QLineEdit* memoryAddress_ = nullptr;
  QPlainTextEdit* console_ = nullptr;
  TimelineWidget* timeline_ = nullptr;
  QLabel* stepLabel_ = nullptr;
  QLabel* stopLabel_ = nullptr;
  QLabel* followLabel_ = nullptr;
  QLabel* engineLabel_ = nullptr;
  QProgressBar* progress_ = nullptr;
  QPushButton* cancelButton_ = nullptr;

  QAction* openAction_ = nullptr;
  QAction* stepAction_ = nullptr;
  QAction* stepBackAction_ = nullptr;
  QAction* continueAction_ = nullptr;
  QAction* reverseAction_ = nullptr;
  QAction* breakpointAction_ = nullptr;
  QAction* lastWriteAction_ = nullptr;
  QAction* goToAction_ = nullptr;
  QAction* watchAction_ = nullptr;
  QAction* prevOutputAction_ = nullptr;
  QAction* nextOutputAction_ = nullptr;
  QAction* cancelAction_ = nullptr;
  QAction* stepOverAction_ = nullptr;
  QAction* stepIntoAction_ = nullptr;
  QAction* stepBackOverAction_ = nullptr;
  QAction* stepBackIntoAction_ = nullptr;
  QAction* stepOutAction_ = nullptr;
  QAction* stepOutBackAction_ = nullptr;
  QAction* loadSymbolsAction_ = nullptr;
  QAction* bookmarkAction_ = nullptr;
};

}  // namespace ttvm::ui
