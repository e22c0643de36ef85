#include "ttvm/replayer/gdb_transport.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "ttvm/replayer/gdb_protocol.h"

namespace ttvm {
namespace {

bool sendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads what is available within timeoutMs (returning early when `wake`
// becomes readable); false when the peer closed or the socket failed.
bool readSome(int fd, int timeoutMs, std::string& out, int wake = -1) {
  pollfd p[2] = {{fd, POLLIN, 0}, {wake, POLLIN, 0}};
  const int r = ::poll(p, wake >= 0 ? 2 : 1, timeoutMs);
  if (r < 0) return errno == EINTR;
  if (r == 0 || (p[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0) return true;
  char buf[4096];
  const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  if (n < 0) return errno == EINTR || errno == EAGAIN;
  if (n == 0) return false;
  out.append(buf, static_cast<size_t>(n));
  return true;
}

}  // namespace

Result<GdbListener> GdbListener::listen(const std::string& address, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (::inet_pton(AF_INET, address.c_str(), &sa.sin_addr) != 1)
    return makeError("gdbserver: '" + address + "' is not a numeric IPv4 address");
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return makeError(std::string("gdbserver: socket: ") + std::strerror(errno));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 16) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    return makeError("gdbserver: cannot listen on " + address + ":" + std::to_string(port) + ": " +
                     why);
  }
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  GdbListener l;
  l.fd_ = fd;
  l.port_ = ntohs(sa.sin_port);
  return l;
}

GdbListener::GdbListener(GdbListener&& other) noexcept : fd_(other.fd_), port_(other.port_) {
  other.fd_ = -1;
}

GdbListener& GdbListener::operator=(GdbListener&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    port_ = other.port_;
    other.fd_ = -1;
  }
  return *this;
}

GdbListener::~GdbListener() {
  if (fd_ >= 0) ::close(fd_);
}

Result<int> GdbListener::accept(const std::atomic<bool>* stop) {
  while (stop == nullptr || !stop->load()) {
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, 200);
    if (r < 0 && errno != EINTR)
      return makeError(std::string("gdbserver: poll: ") + std::strerror(errno));
    if (r <= 0) continue;
    const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return makeError(std::string("gdbserver: accept: ") + std::strerror(errno));
    }
    const int one = 1;
    ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return c;
  }
  return makeError("gdbserver: interrupted while waiting for gdb");
}

Result<GdbConnectionStats> serveGdbConnection(int fd, GdbServer& server,
                                              const std::atomic<bool>* stop) {
  GdbConnectionStats stats;
  GdbPacketDecoder decoder;
  std::deque<GdbInput> pending;
  std::string lastReply;
  bool open = true;
  bool failed = false;

  // The worker writes a byte here when its reply is ready, waking the poll.
  int wake[2] = {-1, -1};
  if (::pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    ::close(fd);
    return makeError(std::string("gdbserver: pipe: ") + std::strerror(errno));
  }
  auto readInto = [&](int timeoutMs) {
    std::string bytes;
    if (!readSome(fd, timeoutMs, bytes, wake[0])) {
      open = false;
      return;
    }
    std::vector<GdbInput> inputs;
    decoder.feed(bytes, inputs);
    for (auto& in : inputs) pending.push_back(std::move(in));
  };
  auto send = [&](std::string_view data) {
    if (!sendAll(fd, data)) {
      open = false;
      failed = true;
    }
  };

  while (open && (stop == nullptr || !stop->load())) {
    if (pending.empty()) {
      readInto(200);
      continue;
    }
    GdbInput in = std::move(pending.front());
    pending.pop_front();
    switch (in.kind) {
      case GdbInput::Kind::kAck:
      case GdbInput::Kind::kInterrupt:  // nothing running: nothing to interrupt
        if (in.kind == GdbInput::Kind::kInterrupt) ++stats.interrupts;
        break;
      case GdbInput::Kind::kNak:
        if (!lastReply.empty()) send(lastReply);
        break;
      case GdbInput::Kind::kBadChecksum:
        ++stats.badChecksums;
        send("-");
        break;
      case GdbInput::Kind::kPacket: {
        ++stats.packets;
        send("+");
        // Answer on a worker; meanwhile watch the socket for 0x03. The flag
        // is cleared here, before the worker exists, and an 0x03 read together
        // with the packet (gdb sends it right after 'c') is for this request.
        server.cancelFlag().store(false);
        for (const GdbInput& next : pending) {
          if (next.kind == GdbInput::Kind::kPacket) break;
          if (next.kind == GdbInput::Kind::kInterrupt) {
            ++stats.interrupts;
            server.cancelFlag().store(true);
          }
        }
        GdbReply reply;
        std::atomic<bool> done{false};
        std::thread worker([&] {
          reply = server.handle(in.payload);
          done.store(true);
          const char one = 1;
          [[maybe_unused]] const ssize_t w = ::write(wake[1], &one, 1);
        });
        while (!done.load()) {
          const size_t before = pending.size();
          if (open) readInto(100);
          if (!open) server.cancelFlag().store(true);  // gdb went away: stop the motion
          for (size_t i = before; i < pending.size(); ++i) {
            if (pending[i].kind == GdbInput::Kind::kInterrupt) {
              ++stats.interrupts;
              server.cancelFlag().store(true);
            }
          }
          if (!open) std::this_thread::sleep_for(std::chrono::milliseconds(5));
          if (stop != nullptr && stop->load()) server.cancelFlag().store(true);
        }
        worker.join();
        char drain[16];
        while (::read(wake[0], drain, sizeof drain) > 0) {
        }
        // Interrupts consumed during the motion must not linger.
        std::erase_if(pending,
                      [](const GdbInput& i) { return i.kind == GdbInput::Kind::kInterrupt; });
        if (!open) break;
        for (const std::string& text : reply.console) {
          // Long text in several packets so each stays well inside PacketSize.
          for (size_t off = 0; off < text.size(); off += 1024)
            send(gdbEncodePacket("O" + gdbHexEncode(std::string_view(text).substr(off, 1024))));
        }
        lastReply = gdbEncodePacket(reply.payload);
        send(lastReply);
        if (reply.close) open = false;
        break;
      }
    }
  }
  ::close(fd);
  ::close(wake[0]);
  ::close(wake[1]);
  if (failed) return makeError(std::string("gdbserver: send failed: ") + std::strerror(errno));
  return stats;
}

namespace {

// Tells a client that cannot be served now why, as gdb's error reply to its
// first packet (gdb prints "Remote failure reply: E.…"), and closes it. A
// client that sends no packet within 2 s gets the reply unasked. Reading
// first also keeps the close orderly (a reset could lose the reply).
void refuse(int fd) {
  const std::string reply = gdbEncodePacket(
      "E.ttvm gdbserver: another gdb is connected to this replay, and only one is served at a "
      "time; disconnect it, or start ttvm gdbserver with --multi to wait for a turn");
  GdbPacketDecoder decoder;
  std::vector<GdbInput> inputs;
  bool open = true;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (open && std::chrono::steady_clock::now() < deadline &&
         std::none_of(inputs.begin(), inputs.end(),
                      [](const GdbInput& i) { return i.kind == GdbInput::Kind::kPacket; })) {
    std::string bytes;
    open = readSome(fd, 100, bytes);
    decoder.feed(bytes, inputs);
  }
  if (open) {
    (void)sendAll(fd, "+" + reply);
    ::shutdown(fd, SHUT_WR);
    const auto drainUntil = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    std::string ignored;
    while (std::chrono::steady_clock::now() < drainUntil && readSome(fd, 100, ignored))
      ignored.clear();
  }
  ::close(fd);
}

}  // namespace

Status serveGdb(GdbListener& listener, GdbServer& server, const GdbServeOptions& options,
                const std::atomic<bool>* stop) {
  auto log = [&](const std::string& line) {
    if (options.log) options.log(line);
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<int> queue;  // accepted, not yet served
  bool serving = false;
  bool lobbyFailed = false;
  std::string lobbyError;
  std::atomic<bool> lobbyStop{false};  // ends the lobby's accept()
  std::vector<std::thread> refusals;
  uint64_t accepted = 0;

  std::thread lobby([&] {
    while (!lobbyStop.load()) {
      auto fd = listener.accept(&lobbyStop);
      if (!fd.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (!lobbyStop.load()) {
          lobbyFailed = true;
          lobbyError = fd.error().message;
        }
        cv.notify_all();
        return;
      }
      std::unique_lock<std::mutex> lock(mu);
      const uint64_t n = ++accepted;
      if (!serving && queue.empty()) {
        queue.push_back(*fd);
      } else if (options.multi) {
        queue.push_back(*fd);
        const std::string note = "ttvm gdbserver: another gdb is connected; this connection is " +
                                 std::to_string(queue.size()) +
                                 " in the queue and is served when those before it disconnect\n";
        (void)sendAll(*fd, note);
        log("gdb connection " + std::to_string(n) + " waits for its turn (" +
            std::to_string(queue.size()) + " in the queue)");
      } else {
        log("gdb connection " + std::to_string(n) +
            " refused: another gdb is connected (--multi queues it)");
        refusals.emplace_back(refuse, *fd);
      }
      cv.notify_all();
    }
  });
  auto stopped = [&] { return stop != nullptr && stop->load(); };

  Status result;
  bool servedOne = false;
  for (;;) {
    int fd = -1;
    {
      std::unique_lock<std::mutex> lock(mu);
      while (queue.empty() && !lobbyFailed && !stopped())
        cv.wait_for(lock, std::chrono::milliseconds(100));
      if (stopped() || queue.empty()) {
        if (lobbyFailed) result = makeError(lobbyError);
        break;
      }
      fd = queue.front();
      queue.pop_front();
      serving = true;
    }
    log("gdb connected; it starts at " + server.resetConnection());
    auto stats = serveGdbConnection(fd, server, stop);
    servedOne = true;
    if (!stats.ok()) {
      log(stats.error().message);
    } else {
      log("gdb disconnected (" + std::to_string(stats->packets) + " packets, " +
          std::to_string(stats->badChecksums) + " bad checksums, " +
          std::to_string(stats->interrupts) + " interrupts)");
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      serving = false;
    }
    if (!options.multi && servedOne) break;
  }
  lobbyStop.store(true);
  lobby.join();
  for (std::thread& t : refusals) t.join();
  for (int fd : queue) ::close(fd);
  return result;
}

}  // namespace ttvm
