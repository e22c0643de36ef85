#include "ttvm/replayer/dap_transport.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace ttvm {
namespace {

Status writeAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return makeError(std::string("dap: write: ") + std::strerror(errno));
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return Status();
}

}  // namespace

std::string dapFrame(std::string_view body) {
  return "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

Result<std::optional<std::string>> DapFramer::next() {
  const size_t end = buffer_.find("\r\n\r\n");
  if (end == std::string::npos) return std::optional<std::string>();
  std::optional<uint64_t> length;
  size_t pos = 0;
  while (pos < end) {
    size_t eol = buffer_.find("\r\n", pos);
    if (eol == std::string::npos || eol > end) eol = end;
    const std::string line = buffer_.substr(pos, eol - pos);
    pos = eol + 2;
    constexpr std::string_view kKey = "Content-Length:";
    if (line.compare(0, kKey.size(), kKey) != 0) continue;
    std::string value = line.substr(kKey.size());
    value.erase(0, value.find_first_not_of(' '));
    char* stop = nullptr;
    const uint64_t n = std::strtoull(value.c_str(), &stop, 10);
    if (value.empty() || stop == nullptr || *stop != '\0' || n > (64u << 20))
      return makeError("dap: bad header line '" + line + "'");
    length = n;
  }
  if (!length)
    return makeError("dap: a message header without Content-Length: '" + buffer_.substr(0, end) +
                     "'");
  const size_t bodyStart = end + 4;
  if (buffer_.size() - bodyStart < *length) return std::optional<std::string>();
  std::string body = buffer_.substr(bodyStart, *length);
  buffer_.erase(0, bodyStart + *length);
  return std::optional<std::string>(std::move(body));
}

Status serveDap(int inFd, int outFd, DapServer& server) {
  // This thread reads and frames; a worker answers the requests in order
  // and writes the replies. Reading ahead lets a pause request stop the
  // motion before it (DapServer::cancelFlag): every message of a read is
  // looked at for pauses before any of them is queued.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> queue;
  bool closed = false;  // no more messages will come
  Status result;        // the first error (guarded by mu)
  std::thread worker([&] {
    for (;;) {
      std::string message;
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return closed || !queue.empty(); });
        if (queue.empty()) return;
        message = std::move(queue.front());
        queue.pop_front();
      }
      for (const std::string& reply : server.handle(message)) {
        if (Status st = writeAll(outFd, dapFrame(reply)); !st.ok()) {
          std::lock_guard lock(mu);
          if (result.ok()) result = st;
          closed = true;
          server.cancelFlag().store(true);
          return;
        }
      }
      if (server.done()) return;
    }
  });
  DapFramer framer;
  char buf[65536];
  Status readStatus;
  for (;;) {
    {
      std::lock_guard lock(mu);
      if (closed || server.done()) break;
    }
    // Wait in slices, so that a disconnect ends serving without more input.
    pollfd pfd{inFd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, 100);
    if (ready < 0 && errno != EINTR) {
      readStatus = makeError(std::string("dap: poll: ") + std::strerror(errno));
      break;
    }
    if (ready <= 0) continue;
    const ssize_t n = ::read(inFd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      readStatus = makeError(std::string("dap: read: ") + std::strerror(errno));
      break;
    }
    if (n == 0) break;  // the client closed its end
    framer.feed(std::string_view(buf, static_cast<size_t>(n)));
    std::vector<std::string> messages;
    for (;;) {
      auto message = framer.next();
      if (!message.ok()) {
        readStatus = message.error();
        break;
      }
      if (!message.value()) break;
      messages.push_back(std::move(**message));
    }
    for (const std::string& m : messages)
      if (DapServer::isPause(m)) server.cancelFlag().store(true);
    {
      std::lock_guard lock(mu);
      for (std::string& m : messages) queue.push_back(std::move(m));
    }
    cv.notify_one();
    if (!readStatus.ok()) break;
  }
  {
    std::lock_guard lock(mu);
    closed = true;
  }
  cv.notify_one();
  worker.join();
  if (!readStatus.ok()) return readStatus;
  return result;
}

}  // namespace ttvm
