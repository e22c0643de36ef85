#include "ttvm/replayer/gdb_protocol.h"

namespace ttvm {
namespace {

int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

constexpr char kDigits[] = "0123456789abcdef";

}  // namespace

void GdbPacketDecoder::feed(std::string_view bytes, std::vector<GdbInput>& out) {
  for (const char c : bytes) {
    const auto u = static_cast<uint8_t>(c);
    switch (state_) {
      case State::kIdle:
        if (c == '$') {
          state_ = State::kBody;
          body_.clear();
          sum_ = 0;
          overflow_ = false;
        } else if (u == 0x03) {
          out.push_back({GdbInput::Kind::kInterrupt, {}});
        } else if (c == '+') {
          out.push_back({GdbInput::Kind::kAck, {}});
        } else if (c == '-') {
          out.push_back({GdbInput::Kind::kNak, {}});
        }
        break;
      case State::kBody:
        if (c == '#') {
          state_ = State::kSum1;
          break;
        }
        sum_ = static_cast<uint8_t>(sum_ + u);
        if (c == '}') {
          state_ = State::kEscape;
          break;
        }
        if (body_.size() >= maxPacket_)
          overflow_ = true;
        else
          body_.push_back(c);
        break;
      case State::kEscape:
        sum_ = static_cast<uint8_t>(sum_ + u);
        if (body_.size() >= maxPacket_)
          overflow_ = true;
        else
          body_.push_back(static_cast<char>(u ^ 0x20));
        state_ = State::kBody;
        break;
      case State::kSum1:
        sumHigh_ = hexDigit(c);
        state_ = State::kSum2;
        break;
      case State::kSum2: {
        const int low = hexDigit(c);
        const bool good = sumHigh_ >= 0 && low >= 0 && !overflow_ &&
                          static_cast<uint8_t>(sumHigh_ * 16 + low) == sum_;
        if (good)
          out.push_back({GdbInput::Kind::kPacket, std::move(body_)});
        else
          out.push_back({GdbInput::Kind::kBadChecksum, {}});
        body_.clear();
        state_ = State::kIdle;
        break;
      }
    }
  }
}

std::string gdbEscape(std::string_view data) {
  std::string out;
  out.reserve(data.size());
  for (const char c : data) {
    if (c == '#' || c == '$' || c == '}' || c == '*') {
      out.push_back('}');
      out.push_back(static_cast<char>(static_cast<uint8_t>(c) ^ 0x20));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string gdbEncodePacket(std::string_view payload) {
  const std::string body = gdbEscape(payload);
  uint8_t sum = 0;
  for (const char c : body) sum = static_cast<uint8_t>(sum + static_cast<uint8_t>(c));
  std::string out;
  out.reserve(body.size() + 4);
  out.push_back('$');
  out += body;
  out.push_back('#');
  out.push_back(kDigits[sum >> 4]);
  out.push_back(kDigits[sum & 0xF]);
  return out;
}

std::optional<uint64_t> gdbParseHexU64(std::string_view s) {
  if (s.empty() || s.size() > 16) return std::nullopt;
  uint64_t v = 0;
  for (const char c : s) {
    const int d = hexDigit(c);
    if (d < 0) return std::nullopt;
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  return v;
}

std::optional<std::string> gdbHexDecode(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int h = hexDigit(hex[i]);
    const int l = hexDigit(hex[i + 1]);
    if (h < 0 || l < 0) return std::nullopt;
    out.push_back(static_cast<char>(h * 16 + l));
  }
  return out;
}

std::string gdbHexEncode(std::span<const uint8_t> bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xF]);
  }
  return out;
}

std::string gdbHexEncode(std::string_view text) {
  return gdbHexEncode(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

std::string gdbHexU64(uint64_t v) {
  if (v == 0) return "0";
  std::string out;
  while (v != 0) {
    out.insert(out.begin(), kDigits[v & 0xF]);
    v >>= 4;
  }
  return out;
}

}  // namespace ttvm
