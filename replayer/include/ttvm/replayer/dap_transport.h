// The stream side of `ttvm dap`: the Debug Adapter Protocol's framing
// ("Content-Length: N\r\n\r\n" then N bytes of JSON, the base protocol of
// the specification) and the loop that carries one client over a pair of
// file descriptors (stdin/stdout for an editor that starts the adapter).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "ttvm/base/result.h"
#include "ttvm/replayer/dap_server.h"

namespace ttvm {

// "Content-Length: N\r\n\r\n" + body.
std::string dapFrame(std::string_view body);

// Splits a byte stream into message bodies. Header lines other than
// Content-Length are ignored (the specification allows Content-Type).
class DapFramer {
 public:
  void feed(std::string_view bytes) { buffer_.append(bytes); }
  // The next complete body; nullopt while one is incomplete; an error for a
  // header without a valid Content-Length (naming the header).
  Result<std::optional<std::string>> next();

 private:
  std::string buffer_;
};

// Serves one client: reads framed requests from `inFd`, answers through
// `server`, writes framed replies to `outFd`, until the client disconnects
// (DapServer::done) or closes its end. An error for a read or write
// failure or a malformed header.
Status serveDap(int inFd, int outFd, DapServer& server);

}  // namespace ttvm
