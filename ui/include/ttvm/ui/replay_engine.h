// ReplayEngine: the GUI's owner of a Timeline. It lives on a worker thread
// (MainWindow moves it there); every public operation is meant to be invoked
// on that thread through a queued call, runs to completion there, and
// reports back with signals: busy() when it starts, progress() while it runs,
// then exactly one of stopped() (with a Snapshot of the new position) or
// failed() (a message; the position, if any, is unchanged or still valid).
//
// Cancellation: requestCancel() is the one method that may be called from
// any thread; it sets the flag the running operation's Control polls (the
// Timeline checks it at least every million steps). clearCancel() re-arms it.
//
// Nothing throws out of the engine: ttvm's APIs return Result, and anything
// else (allocation failure) is caught at the operation boundary and reported
// with failed().
//
// Following a recording in progress: a trace opened without a footer (the
// recorder is still writing it, or was killed) is *followed*. The engine's
// own timer polls it every kFollowPollMs between operations (followTick):
// TraceReader::refresh() takes the chunks flushed since (the recorder
// flushes each second), Timeline::extendEnd() lengthens the history, and
// when the position was at the live end it replays on to the new one (one
// step short, whose events may still be split across chunks) and reports
// the new position with advanced(); elsewhere the position stays and only
// the history grows. grew() carries the new end with the console marks and
// the Events dock's rows. When the footer appears the trace is complete:
// the position at the live end moves to the very end, as when a finished
// trace opens, and following() turns false.
#pragma once

#include <QObject>
#include <QString>
#include <QStringList>
#include <QTimer>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ttvm/formats/trace_reader.h"
#include "ttvm/replayer/timeline.h"
#include "ttvm/ui/event_list_model.h"
#include "ttvm/ui/snapshot.h"
#include "ttvm/ui/timeline_widget.h"

namespace ttvm::ui {

class ReplayEngine : public QObject {
  Q_OBJECT

 public:
  explicit ReplayEngine(QObject* parent = nullptr);
  ~ReplayEngine() override;

  // Thread-safe (see above). The caller clears the flag before it queues an
  // operation (never while one runs), so a cancel that arrives before the
  // operation starts still stops it.
  void requestCancel() { cancel_.store(true); }
  void clearCancel() { cancel_.store(false); }

  // Operations (call on the engine's thread).
  // Opens `path`, adds the symbol files (System.map or ELF; guest_symbols.h)
  // to the trace's own symbols, and moves to the end of its history (the
  // crash). A symbol file that cannot be read fails the open. The replay
  // runs `engine` (engine_fallback.h: a divergence on the fast engine moves
  // it to the reference engine, with engineFellBack()).
  void open(const QString& path, const QStringList& symbolFiles = {},
            CpuEngine engine = kDefaultReplayEngine);
  void seek(uint64_t step);
  void stepForward(uint64_t n);
  void stepBack(uint64_t n);
  // By source line at one call depth (source_step.h): over calls or into
  // them, back to the previous line (over calls, or into the callee that
  // returned: gdb's reverse-next / reverse-step), out to the caller
  // (forward), or back to the call that entered this function (backward).
  // Without a line at RIP, one instruction.
  void stepLine(bool into);
  void stepBackLine(bool into);
  void stepOut(bool forward);
  // Adds a symbol file (System.map or ELF with DWARF) to the open trace's.
  void loadSymbols(const QString& path);
  void continueForward();
  void reverseContinue();
  // Moves to the last write to [address, address+length) before now.
  void lastWrite(uint64_t address, uint64_t length);
  // Moves to the step that last changed register `name` (queries.h names:
  // "rax", "rip", "cr2", ...) before now.
  void registerLastChange(const QString& name);
  // Moves to the previous (forward: next) byte written to the serial console,
  // at the OUT instruction that wrote it.
  void serialOutput(bool forward);
  // Adds a breakpoint at linear `address`, or removes the one there.
  void toggleBreakpoint(uint64_t address);
  // Adds a write watchpoint on linear [address, address+length), or removes
  // the one with exactly that range. Continue and reverse-continue stop at
  // writes to it (reverse: at the writing instruction).
  void toggleWatchpoint(uint64_t address, uint64_t length);
  // The memory window's first address (linear).
  void setMemoryAddress(uint64_t address);
  // One poll of a followed trace (see above); nothing when none is followed.
  void followTick();

  static constexpr int kFollowPollMs = 250;

  // Bytes in the memory window; lines of disassembly before and after RIP.
  static constexpr uint64_t kMemoryBytes = 512;
  static constexpr int kLinesBefore = 10;
  static constexpr int kLinesAfter = 30;
  // Frames of the call stack kept in a snapshot (each with its variables).
  static constexpr size_t kMaxFrames = 32;

 signals:
  // `identity`: the trace's (bookmark_file.h), for what is kept beside it.
  void opened(const QString& path, const QString& identity, quint64 beginStep, quint64 endStep,
              const ttvm::ui::SymbolsPtr& symbols, const ttvm::ui::MarksPtr& marks);
  void busy(const QString& what);
  void progress(quint64 done, quint64 total);
  void stopped(const ttvm::ui::Snapshot& snapshot);
  void failed(const QString& message);
  // The rows of the Events dock for the trace just opened (after opened()).
  void eventsReady(const ttvm::ui::EventRowsPtr& rows);
  // The symbol table grew (loadSymbols).
  void symbolsChanged(const ttvm::ui::SymbolsPtr& symbols);
  // A followed trace starts or stops being followed, and why.
  void followingChanged(bool following, const QString& why);
  // A followed trace grew (see above); `ended` once its footer is there.
  void grew(quint64 beginStep, quint64 endStep, const ttvm::ui::MarksPtr& marks, bool ended);
  // A followed trace moved the position on to its new live end.
  void advanced(const ttvm::ui::Snapshot& snapshot);
  // The fast engine diverged and the replay fell back to the reference
  // engine (EngineFallback::describe(): both outcomes). Before the
  // operation's own stopped() or failed().
  void engineFellBack(const QString& message);

 private:
  // Runs `op` (which returns the stop text) as one operation: busy(), the
  // Control, exception barrier, then stopped() or failed(). A move that
  // was cancelled goes back to the step it started from, as gdb does.
  void run(const QString& what, const std::function<QString(const Control&)>& op);
  Snapshot snapshot(StopKind kind, const QString& stopText) const;
  std::vector<DisasmLine> disassemblyAround(const CpuState& s) const;
  QString describeStop(const StopReason& r);
  QString symbolAt(uint64_t address) const;
  // The address of the call instruction that ends at `returnAddress`.
  std::optional<uint64_t> callBefore(uint64_t returnAddress) const;
  // The call stack with each frame's variables.
  void fillFrames(Snapshot& s) const;
  // "call 0x100ec0" -> "call 0x100ec0 <key_dup>": names a direct branch's target.
  QString nameTarget(const QString& text) const;
  // Adds the replay's accesses indexed since the last call (a whole-machine
  // trace) to the console bytes and the marks; true when there were any.
  bool collectAccesses();
  // Starts or stops the follow timer; followingChanged() on a change or a reason.
  void setFollowing(bool on, const QString& why);
  QString followText() const;
  // The Events dock's rows of a whole-machine trace: the replay's accesses
  // and exceptions so far, in step order.
  EventRowsPtr replayPassRows() const;
  MarksPtr marksCopy() const { return std::make_shared<const TimelineMarks>(marks_); }

  std::atomic<bool> cancel_{false};
  std::unique_ptr<TraceReader> reader_;
  std::unique_ptr<Timeline> timeline_;
  SymbolsPtr symbols_;
  // Serial bytes in trace order with the step that wrote each.
  std::vector<std::pair<uint64_t, char>> serial_;
  TimelineMarks marks_;            // the timeline's serial and interrupt marks
  size_t accessesSeen_ = 0;        // replayedAccesses() already in serial_ and marks_
  QTimer* followTimer_ = nullptr;  // a child: it moves to the engine's thread with it
  bool following_ = false;
  std::map<uint64_t, int> breakpoints_;                       // linear address -> timeline id
  std::map<std::pair<uint64_t, uint64_t>, int> watchpoints_;  // (address, length) -> id
  uint64_t memoryAddress_ = 0;
  StopKind lastKind_ = StopKind::kStepDone;
  QString lastStopText_;
};

}  // namespace ttvm::ui
