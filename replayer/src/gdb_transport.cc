#include "ttvm/replayer/gdb_transport.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
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
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 1) != 0) {
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
  server.resetConnection();
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
        // Answer on a worker; meanwhile watch the socket for 0x03.
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

}  // namespace ttvm
