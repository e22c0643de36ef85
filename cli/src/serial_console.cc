#include "serial_console.h"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "ttvm/machine/devices/uart_16550.h"
#include "ttvm/machine/machine.h"

namespace ttvm::cli {
using ttvm::machine::Machine;
namespace {

constexpr uint8_t kEscape = 0x01;     // Ctrl-A
constexpr size_t kMaxPending = 4096;  // typed keys waiting for FIFO room
constexpr const char* kKeysHelp =
    "\r\nttvm serial console keys:\r\n"
    "  Ctrl-A x        end the recording (the trace is complete, end reason: interrupted)\r\n"
    "  Ctrl-A Ctrl-A   send Ctrl-A to the guest\r\n"
    "  Ctrl-A h        this text\r\n";

// What the handlers need to put the terminal back; written only while no
// handler that reads it is installed, or before `saved` turns true.
struct SavedTerminal {
  termios mode{};
  int flags = -1;
  volatile std::sig_atomic_t saved = 0;
  termios raw{};
};
SavedTerminal gTerminal;

void applyRaw() {
  tcsetattr(STDIN_FILENO, TCSAFLUSH, &gTerminal.raw);
  fcntl(STDIN_FILENO, F_SETFL, gTerminal.flags | O_NONBLOCK);
}

void onStop(int) {
  restoreTerminal();
  raise(SIGSTOP);
}

void onContinue(int) {
  if (gTerminal.saved) applyRaw();
}

// Signals whose default action ends the process and that the record command
// does not handle itself (SIGPIPE: stdout into a pipe whose reader left).
constexpr int kOtherDeadlySignals[] = {SIGPIPE, SIGQUIT, SIGUSR1,   SIGUSR2, SIGALRM,
                                       SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF};

void onDeadlySignal(int sig) {
  restoreTerminal();
  std::signal(sig, SIG_DFL);
  raise(sig);
}

}  // namespace

void restoreTerminal() {
  if (!gTerminal.saved) return;
  tcsetattr(STDIN_FILENO, TCSAFLUSH, &gTerminal.mode);
  fcntl(STDIN_FILENO, F_SETFL, gTerminal.flags);
}

StdoutConsole::StdoutConsole() {
  if (isatty(STDOUT_FILENO)) std::setvbuf(stdout, nullptr, _IONBF, 0);
}

void StdoutConsole::write(uint8_t b) {
  std::fputc(b, stdout);
}

void StdoutConsole::flush() {
  std::fflush(stdout);
}

TerminalConsole::TerminalConsole(volatile std::sig_atomic_t* quitFlag, std::sig_atomic_t quitValue)
    : quitFlag_(quitFlag), quitValue_(quitValue) {
  // Not from the background of our controlling terminal: changing it would
  // stop ttvm (SIGTTOU), as reading it would (SIGTTIN). A terminal that is
  // not our controlling one (tcgetpgrp fails) sends no such signals.
  if (!isatty(STDIN_FILENO)) return;
  const pid_t foreground = tcgetpgrp(STDIN_FILENO);
  if (foreground != -1 && foreground != getpgrp()) return;
  termios mode{};
  const int flags = fcntl(STDIN_FILENO, F_GETFL);
  if (flags < 0 || tcgetattr(STDIN_FILENO, &mode) != 0) return;
  // As QEMU's stdio character device without signals (-nographic).
  termios raw = mode;
  raw.c_iflag &=
      ~static_cast<tcflag_t>(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
  raw.c_oflag |= OPOST;
  raw.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHONL | ICANON | IEXTEN | ISIG);
  raw.c_cflag &= ~static_cast<tcflag_t>(CSIZE | PARENB);
  raw.c_cflag |= CS8;
  raw.c_cc[VMIN] = 1;
  raw.c_cc[VTIME] = 0;
  gTerminal.mode = mode;
  gTerminal.flags = flags;
  gTerminal.raw = raw;
  gTerminal.saved = 1;
  std::signal(SIGTSTP, onStop);
  std::signal(SIGCONT, onContinue);
  // Only where the default action is in force (an ignored SIGPIPE or
  // SIGXFSZ stays ignored: then the write fails and ttvm reports it).
  for (int sig : kOtherDeadlySignals) {
    struct sigaction old {};
    if (sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_DFL)
      std::signal(sig, onDeadlySignal);
  }
  applyRaw();
  active_ = true;
  std::fputs(
      "ttvm: the serial console is on this terminal; Ctrl-A x ends the recording, "
      "Ctrl-A h lists the keys\r\n",
      stderr);
}

TerminalConsole::~TerminalConsole() {
  if (!active_) return;
  restoreTerminal();
  std::signal(SIGTSTP, SIG_DFL);
  std::signal(SIGCONT, SIG_DFL);
  for (int sig : kOtherDeadlySignals) {
    struct sigaction now {};
    if (sigaction(sig, nullptr, &now) == 0 && now.sa_handler == onDeadlySignal)
      std::signal(sig, SIG_DFL);
  }
  gTerminal.saved = 0;
}

void TerminalConsole::key(uint8_t b) {
  if (escape_) {
    escape_ = false;
    if (b == kEscape) {
      if (pending_.size() < kMaxPending) pending_.push_back(b);
    } else if (b == 'x' || b == 'X') {
      *quitFlag_ = quitValue_;
    } else if (b == 'h' || b == 'H' || b == '?') {
      std::fputs(kKeysHelp, stderr);
    }
    return;
  }
  if (b == kEscape) {
    escape_ = true;
  } else if (pending_.size() < kMaxPending) {
    pending_.push_back(b);  // beyond that, typed-ahead keys are lost (an overrun)
  }
}

void TerminalConsole::poll(Machine& m) {
  if (!active_) return;
  uint8_t buf[256];
  for (;;) {
    const ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) key(buf[i]);
  }
  for (unsigned room = m.com1().receiveRoom(); room > 0 && !pending_.empty(); --room) {
    m.com1().receive(pending_.front());
    pending_.pop_front();
  }
}

}  // namespace ttvm::cli
