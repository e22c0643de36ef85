// GdbServer: answers gdb remote-protocol packets (payloads, already unframed)
// from a Timeline. It knows nothing of sockets (gdb_transport.h frames and
// carries the bytes), so tests drive it packet by packet.
//
// A replay cannot change history: G, P, M and X are refused with
// "E.ttvm: the recorded history is read-only…", which gdb shows for register
// writes ("Could not write register …; remote failure reply 'E.…'"); for
// memory gdb 13 drops the text and says "Cannot access memory".
// Breakpoints (Z0/Z1) and watchpoints (Z2/Z3/Z4, any length) are the
// Timeline's debugger facilities; guest memory is never written. Motion (c,
// s, bc, bs, vCont, monitor seek / last-write) runs the Timeline with
// cancelFlag() as its cancel flag, so another thread (the transport, on a
// 0x03 byte) can interrupt it; an interrupted motion stops with T02.
//
// The register layout (i386 or x86-64) is chosen when gdb reads
// target.xml: x86-64 when the guest is in 64-bit mode (long mode, CS.L) at
// that position, or when the recorded run ended in 64-bit mode (a 64-bit OS
// that starts in 32-bit code); otherwise i386. gdb reads the description
// once per connection, so the layout then stays fixed for the connection;
// GdbServerOptions::arch forces one.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include "ttvm/replayer/gdb_registers.h"
#include "ttvm/replayer/timeline.h"

namespace ttvm {

// Where each gdb connection starts (GdbServer::resetConnection): the end of
// the recording unless asked otherwise, so that every client of a --multi
// server sees the same thing (the crash, for a recording that ended in one)
// whatever the one before it did.
struct GdbStart {
  enum class Kind : uint8_t { kEnd, kBegin, kStep };
  Kind kind = Kind::kEnd;
  uint64_t step = 0;  // kStep
};

struct GdbServerOptions {
  GdbStart start;
  std::optional<GdbArch> arch;       // nullopt: chosen by mode (see above)
  std::optional<CpuState> finalCpu;  // the recorded end state, for the auto choice
  size_t packetSize = 0x4000;        // advertised PacketSize (bytes)
};

struct GdbReply {
  std::vector<std::string> console;  // 'O' packets (text) sent before the payload
  std::string payload;               // the reply packet's payload ("" = empty reply)
  bool close = false;                // k / D / vKill: close the connection after replying
};

class GdbServer {
 public:
  explicit GdbServer(Timeline& timeline, GdbServerOptions options = {});
  ~GdbServer();  // cancels and waits for warmUp()
  GdbServer(const GdbServer&) = delete;
  GdbServer& operator=(const GdbServer&) = delete;

  // Starts moving to options.start on a thread of its own, before any gdb
  // connects: a seek to the end replays the whole recording (0.2 s on the
  // demo, a minute on a Linux boot), which would otherwise delay the first
  // connection's replies (gdb gives up on a reply after 2 s by default).
  // resetConnection waits for it; nothing else may use the Timeline
  // meanwhile. Called at most once.
  void warmUp();

  // Answers one packet. Motion blocks until it stops (or is cancelled).
  GdbReply handle(std::string_view packet);

  // Set from another thread to interrupt the current motion. Whoever hands
  // handle() a request clears it first, on its own thread: the transport does
  // so before its worker starts, so a 0x03 that arrives before the motion
  // begins still stops it (handle() clearing it itself lost such an interrupt).
  std::atomic<bool>& cancelFlag() { return cancel_; }
  // Called during long motion with (steps done, total).
  void setProgress(std::function<void(uint64_t, uint64_t)> progress) {
    progress_ = std::move(progress);
  }
  GdbArch arch() const;
  // A new gdb connected: forgets the previous connection's layout choice,
  // qSupported features, breakpoints and watchpoints, and moves to
  // options.start. Returns where that is, for the server's log ("step
  // 6276082, the end of the recording, rip 0x1007d2 <panic+0x62>: nop …").
  std::string resetConnection();

 private:
  GdbReply query(std::string_view p);
  GdbReply monitor(const std::string& command);
  std::string readRegisters();
  std::string readRegister(std::string_view arg);
  std::string readMemory(std::string_view arg);
  std::string breakpoint(std::string_view p, bool insert);
  std::string vCont(std::string_view p, GdbReply& reply);
  std::string motion(char what, GdbReply& reply);
  std::string stopReply(const StopReason& r, GdbReply& reply);
  std::string error(int code, std::string_view message) const;
  static std::string readOnly(std::string_view what);  // the E. reply to G, P, M, X
  Control control();
  std::string describePosition() const;
  uint64_t startStep() const;  // options_.start as a step inside the history

  Timeline& timeline_;
  GdbServerOptions options_;
  std::optional<GdbArch> lockedArch_;
  bool errorMessages_ = false;  // gdb sent error-message+ in qSupported
  std::atomic<bool> cancel_{false};
  std::function<void(uint64_t, uint64_t)> progress_;
  std::string lastStop_ = "T05thread:1;";
  // (Z type, address, kind/length) -> Timeline id.
  std::map<std::tuple<int, uint64_t, uint64_t>, int> points_;
  std::map<int, int> watchType_;  // Timeline watchpoint id -> Z type (2, 3, 4)
  std::map<int, int> breakType_;  // Timeline breakpoint id -> Z type (0, 1)
  std::map<int, std::pair<uint64_t, uint64_t>> watchRange_;  // id -> (address, length)
  std::thread warmUp_;  // warmUp()'s seek, joined by resetConnection
};

}  // namespace ttvm
