// The gdb remote serial protocol's framing, independent of any transport:
// "$payload#cs" packets with a two-hex-digit modulo-256 checksum, '}' escapes
// (byte ^ 0x20) for '#', '$', '}' and '*', '+'/'-' acknowledgements and the
// out-of-band interrupt byte 0x03. Replies are never run-length encoded.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ttvm {

// One thing the decoder found in the byte stream.
struct GdbInput {
  enum class Kind : uint8_t {
    kPacket,       // a packet with a good checksum: `payload` unescaped; answer '+'
    kBadChecksum,  // a packet whose checksum did not match: answer '-'
    kInterrupt,    // 0x03 outside a packet (Ctrl-C)
    kAck,          // '+'
    kNak,          // '-': resend the last reply
  };
  Kind kind = Kind::kPacket;
  std::string payload;
};

// Incremental decoder: feed() any chunk of bytes, take the inputs it completes.
// Bytes outside a packet other than '$', '+', '-' and 0x03 are ignored;
// a packet longer than maxPacket bytes is dropped with kBadChecksum.
class GdbPacketDecoder {
 public:
  explicit GdbPacketDecoder(size_t maxPacket = 1u << 20) : maxPacket_(maxPacket) {}
  void feed(std::string_view bytes, std::vector<GdbInput>& out);

 private:
  enum class State : uint8_t { kIdle, kBody, kEscape, kSum1, kSum2 };
  size_t maxPacket_;
  State state_ = State::kIdle;
  std::string body_;  // unescaped payload so far
  uint8_t sum_ = 0;   // running checksum of the raw (escaped) bytes
  int sumHigh_ = 0;
  bool overflow_ = false;
};

// "$<escaped payload>#<checksum>".
std::string gdbEncodePacket(std::string_view payload);
// Escapes '#', '$', '}' and '*' as '}' followed by byte ^ 0x20 (binary data in
// qXfer replies and the framing itself).
std::string gdbEscape(std::string_view data);

// Hex helpers. Parsing fails (nullopt) on an empty string, a non-hex digit or
// more than 16 digits.
std::optional<uint64_t> gdbParseHexU64(std::string_view s);
std::optional<std::string> gdbHexDecode(std::string_view hex);  // bytes; odd length fails
std::string gdbHexEncode(std::span<const uint8_t> bytes);
std::string gdbHexEncode(std::string_view text);
std::string gdbHexU64(uint64_t v);  // lowercase, no leading zeros ("0" for 0)

}  // namespace ttvm
