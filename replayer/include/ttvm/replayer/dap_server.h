// DapServer: answers Debug Adapter Protocol requests (one JSON message at a
// time, already unframed) from a Timeline, so that VS Code, nvim-dap and
// Emacs dap-mode debug a recording with reverse execution. It knows nothing
// of streams (dap_transport.h frames and carries the bytes), so tests drive
// it message by message, as the gdb stub's GdbServer.
//
// Design.
//  - One thread ("cpu0", id 1). Frame ids are indexes into the backtrace
//    (backtrace.h) at the current position; they, and variable references,
//    stay valid until the next motion.
//  - The session: initialize (capabilities, then the `initialized` event),
//    launch or attach (no arguments: the trace and symbols come from the
//    command line), the breakpoint requests, configurationDone; then the
//    timeline moves to the end of the recording and a `stopped` event
//    (reason "entry") says so — the crash, for a recording that ended in one.
//  - Motion (continue, reverseContinue, next, stepIn, stepOut, stepBack,
//    evaluate "seek"/"last-write") answers the request, then sends one
//    `stopped` event: "breakpoint", "function breakpoint", "instruction
//    breakpoint", "data breakpoint", "step" (also at either end of the
//    history, with a description saying which), "goto" (evaluate moves) or
//    "exception" (the replay diverged from the trace), "pause" (a pause
//    request stopped it; see cancelFlag).
//  - Steps are by statement where the position has a source line (unless
//    the client asks for granularity "instruction", as VS Code's
//    disassembly view does), by instruction otherwise. A statement step
//    stays at one call depth, as gdb's: next steps over calls, stepIn into
//    callees with line tables, interrupts are always stepped over; stepBack
//    goes to the start of the previous statement at this depth (or into the
//    caller from a function's first one), or with "into": true (and the
//    evaluate command "reverse-step") into a callee that returned, as gdb's
//    reverse-step; stepOut runs to frame 1's return
//    address in a shallower frame (source_step.h, shared with ttvm-ui).
//  - Breakpoints: source line (GuestSymbols::lineAddresses: where gdb puts
//    them; each source path's set replaced by its own request; a line
//    without code is answered unverified with a message), instruction (an
//    address), function (a guest symbol, as GuestSymbols::find).
//    Data breakpoints are the Timeline's watchpoints, any length, read,
//    write or both, in both directions; dataBreakpointInfo takes an address
//    expression (address_expression.h: "arena+0x2fa8:8", "$rsp:8").
//  - Exception breakpoints: filters (pf, gp, ud, de, all) choose the
//    guest exceptions continue and reverse continue stop at
//    (Timeline::setExceptionStops); exceptionInfo names the last one.
//  - evaluate: "when", "seek STEP|begin|end", "last-write ADDR[:LEN]",
//    "next-write ADDR[:LEN]", "backtrace", else an address expression whose
//    value is shown.
//  - Scopes: Locals for each frame (GuestSymbols::variablesAt; callers'
//    registers unwound through the CFI), and the general and system
//    registers.
// The history is read-only: setVariable, writeMemory and the like are not
// offered (their capabilities are absent).
//
// nlohmann::json (Debian's nlohmann-json3-dev) parses and builds the
// messages; it stays inside dap_server.cc.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ttvm/replayer/timeline.h"

namespace ttvm {

struct DapServerOptions {
  std::string tracePath;  // named in the launch output event
};

class DapServer {
 public:
  explicit DapServer(Timeline& timeline, DapServerOptions options = {});
  ~DapServer();
  DapServer(const DapServer&) = delete;
  DapServer& operator=(const DapServer&) = delete;

  // Answers one message (a JSON object). Returns what to send, in order:
  // the response, then any events. A message that is not JSON, or not a
  // request, gets an `output` event on the console category saying why.
  std::vector<std::string> handle(std::string_view message);
  // True after disconnect (the transport stops reading).
  bool done() const { return done_; }

  // Pausing. Motion runs with this flag as its cancel flag; a transport that
  // reads ahead sets it when a pause request arrives (isPause), so the
  // motion before the pause stops early (stopped, reason "pause") — or at
  // once, when the pause came before the motion began — and handling the
  // pause request clears it.
  std::atomic<bool>& cancelFlag() { return cancel_; }
  static bool isPause(std::string_view message);

 private:
  struct Impl;
  Timeline& timeline_;
  DapServerOptions options_;
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> cancel_{false};
  std::atomic<bool> done_{false};
};

}  // namespace ttvm
