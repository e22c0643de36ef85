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

 private:
  QTemporaryDir dir_;
  QString trace_;
};

}  // namespace ttvm::ui
