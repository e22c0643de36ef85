// The socket side of `ttvm gdbserver`: a TCP listener, the loop that
// carries one gdb connection — framing (gdb_protocol.h), acknowledgements,
// and Ctrl-C — and serveGdb, which serves one connection at a time while it
// keeps accepting the others (refused at once, or queued with --multi). Each packet is answered by
// GdbServer::handle on a worker thread while this thread keeps reading the socket, so a 0x03 byte
// sets the server's cancel flag during any motion (c, s, bc, bs, monitor seek).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "ttvm/base/result.h"
#include "ttvm/replayer/gdb_server.h"

namespace ttvm {

class GdbListener {
 public:
  // Binds `address` (numeric IPv4, e.g. 127.0.0.1) and `port` (0 = any free port).
  static Result<GdbListener> listen(const std::string& address, uint16_t port);
  GdbListener(GdbListener&& other) noexcept;
  GdbListener& operator=(GdbListener&& other) noexcept;
  GdbListener(const GdbListener&) = delete;
  GdbListener& operator=(const GdbListener&) = delete;
  ~GdbListener();

  uint16_t port() const { return port_; }
  // Waits for a connection; gives up (error) when *stop becomes true.
  Result<int> accept(const std::atomic<bool>* stop);

 private:
  GdbListener() = default;
  int fd_ = -1;
  uint16_t port_ = 0;
};

struct GdbConnectionStats {
  uint64_t packets = 0;
  uint64_t badChecksums = 0;
  uint64_t interrupts = 0;
};

// Serves gdb on the connected socket `fd` until gdb detaches, kills, or
// closes the connection, or *stop becomes true; closes fd. An error only
// for a socket failure. It does not reset `server` (serveGdb calls
// GdbServer::resetConnection before each connection).
Result<GdbConnectionStats> serveGdbConnection(int fd, GdbServer& server,
                                              const std::atomic<bool>* stop);

struct GdbServeOptions {
  // Queue connections that arrive while one is served and serve them in
  // turn (and keep serving new ones after the last disconnects); without
  // it, each of them is refused at once and serveGdb returns after the first.
  bool multi = false;
  // One line per connection event (connected, refused, queued, done).
  std::function<void(const std::string&)> log;
};

// Serves gdb connections from `listener` one at a time, until *stop becomes
// true (or, without multi, the first connection ends). Each connection
// starts with GdbServer::resetConnection (at GdbServerOptions::start), and
// the log says where ("gdb connected; it starts at step N (the end of the
// recording), rip …"). The listener is
// accepted from all the while, on a thread of its own, so no client waits on
// the kernel's backlog: a client that cannot be served now gets, without
// multi, a gdb error reply at once ("E.ttvm gdbserver: another gdb is
// connected…", which gdb prints as "Remote failure reply") and is closed;
// with multi it gets a line of plain text with its place in the queue
// (outside any packet: gdb skips it, a raw client reads it) and is served,
// its packets answered in order, when its turn comes.
// An error only when the listener fails.
Status serveGdb(GdbListener& listener, GdbServer& server, const GdbServeOptions& options,
                const std::atomic<bool>* stop);

}  // namespace ttvm
