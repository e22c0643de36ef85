#include "ttvm/replayer/dap_transport.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

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
  DapFramer framer;
  char buf[65536];
  while (!server.done()) {
    auto message = framer.next();
    if (!message.ok()) return message.error();
    if (message.value()) {
      for (const std::string& reply : server.handle(**message)) {
        if (Status st = writeAll(outFd, dapFrame(reply)); !st.ok()) return st;
      }
      continue;
    }
    const ssize_t n = ::read(inFd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return makeError(std::string("dap: read: ") + std::strerror(errno));
    if (n == 0) break;  // the client closed its end
    framer.feed(std::string_view(buf, static_cast<size_t>(n)));
  }
  return Status();
}

}  // namespace ttvm
