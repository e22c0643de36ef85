#pragma once

#include <QObject>
#include <QString>
#include <QTemporaryDir>
#include <memory>

namespace ttvm::ui {

// Drives ttvm-ui's MainWindow on a trace of the demo guest recorded at test
// time with the ttvm binary of the same build tree.
class MainWindowTest : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase();
  void opensAtTheEndOfTheHistory();
  void fastEngineDivergenceFallsBackVisibly();
  void stepBackChangesStepAndRegisters();
  void reverseContinueStopsAtABreakpoint();
  void lastWriteLandsOnTheStoreInKeyDup();
  void registerLastChangeFindsTheFault();
  void reverseContinueStopsAtAWatchedWrite();
  void closingWhileBusyIsClean();
  void timelineShowsEventsAndClickGoesThere();
  void longOperationRunsOffTheGuiThreadAndCancels();
  void badTraceIsReportedNotFatal();
  void symbolFilesAddToTheTracesSymbols();
  void loadSymbolsAddsAFileToTheOpenTrace();
  void sourceViewFollowsStepping();
  void callStackAndLocalsAtTheCorruptingStoreMatchGdb();
  void flagsTargetsAndChangedMemoryAreShown();
  void helpWorksWithoutADisplay();
  void eventsDockListsTheTracesEvents();
  void eventsDockScrollsMillionsOfRowsLazily();
  void breakpointsWatchpointsAndBookmarksDocks();
  void bookmarksAreKeptBesideTheTrace();
  void openingShowsProgress();
  void stepBackLatency();
  void followsARecordingInProgress();

 private:
  QTemporaryDir dir_;
  QString trace_;
  // The step of the corrupting store (the last write to arena+0x2fa8:8).
  uint64_t storeStep_ = 0;
};

}  // namespace ttvm::ui
