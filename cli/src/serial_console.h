// The host side of the guest's serial console during `ttvm record`.
//
// Output: StdoutConsole writes COM1 and debug-console bytes to stdout. On a
// terminal every byte is written as it arrives (stdout unbuffered); into a
// pipe or file the bytes are buffered and flushed at the end of every CPU
// slice (RecordOptions::poll, at most ~10 ms apart), never held per line.
//
// Input from a terminal (stdin a terminal, unless it is ttvm's controlling
// terminal and ttvm runs in its background: then stdin is left alone):
// TerminalConsole
// puts stdin in raw mode as QEMU's
// -nographic does (no local echo, no line buffering, no CR->NL translation,
// no signal keys: Ctrl-C goes to the guest as 0x03) and forwards what is
// typed to COM1's receive FIFO as room allows. Ctrl-A is the escape key:
// Ctrl-A x ends the recording as "interrupted" (the trace is complete, as
// after SIGINT), Ctrl-A Ctrl-A sends one Ctrl-A, Ctrl-A h prints the keys;
// anything else after Ctrl-A is dropped. Keys wait in a host-side queue
// while the FIFO is full, so Ctrl-A x works even when the guest never reads.
// The terminal is restored on every way out: the destructor, and
// restoreTerminal() from the CLI's signal handlers (async-signal-safe);
// SIGTSTP restores it before stopping and SIGCONT takes it again; the other
// signals that would end ttvm by default (SIGPIPE, SIGQUIT, SIGUSR1/2,
// SIGALRM, ...) restore it and then end ttvm as their default would.
//
// What the guest received is recorded as the UART reads that returned it,
// so the recording is replayable; terminal input is wall-clock-timed, hence
// not repeatable — `--serial-input FILE` is (Uart16550::setLineInput).
#pragma once

#include <csignal>
#include <cstdint>
#include <deque>

#include "ttvm/machine/device.h"

namespace ttvm {
namespace machine {
class Machine;
}  // namespace machine
}  // namespace ttvm

namespace ttvm::cli {

class StdoutConsole final : public machine::ConsoleSink {
 public:
  StdoutConsole();
  void write(uint8_t b) override;
  // Writes out what is buffered (a pipe or file as stdout).
  void flush();
};

class TerminalConsole {
 public:
  // Takes the terminal if stdin is one. `quitFlag` receives `quitValue` on
  // Ctrl-A x (the record loop's interrupt flag).
  TerminalConsole(volatile std::sig_atomic_t* quitFlag, std::sig_atomic_t quitValue);
  ~TerminalConsole();
  TerminalConsole(const TerminalConsole&) = delete;
  TerminalConsole& operator=(const TerminalConsole&) = delete;

  bool active() const { return active_; }
  // Reads what was typed, acts on escapes, feeds COM1 as far as it has room.
  void poll(machine::Machine& m);

 private:
  void key(uint8_t b);

  volatile std::sig_atomic_t* quitFlag_;
  std::sig_atomic_t quitValue_;
  bool active_ = false;
  bool escape_ = false;
  std::deque<uint8_t> pending_;
};

// Puts stdin's terminal mode and file flags back as TerminalConsole found
// them, if it changed them. Async-signal-safe; idempotent.
void restoreTerminal();

}  // namespace ttvm::cli
