#include "ttvm/replayer/address_expression.h"

#include <cctype>
#include <string>

#include "ttvm/replayer/queries.h"

namespace ttvm {
namespace {

// A recursive-descent evaluator over `text`; the first error wins.
class Evaluator {
 public:
  Evaluator(std::string_view text, const GuestSymbols& symbols, const CpuState* cpu)
      : text_(text), symbols_(symbols), cpu_(cpu) {}

  // Evaluates the whole of text_ (up to `end`); nullopt after an error.
  std::optional<uint64_t> run(size_t end) {
    end_ = end;
    const uint64_t v = expr();
    skipSpaces();
    if (error_.empty() && pos_ < end_) fail("unexpected '" + std::string(1, text_[pos_]) + "'");
    if (!error_.empty()) return std::nullopt;
    return v;
  }
  const std::string& error() const { return error_; }

 private:
  uint64_t expr() {
    uint64_t v = term();
    for (;;) {
      skipSpaces();
      if (!error_.empty() || pos_ >= end_ || (text_[pos_] != '+' && text_[pos_] != '-')) return v;
      const char op = text_[pos_++];
      const uint64_t r = term();
      v = op == '+' ? v + r : v - r;
    }
  }
  uint64_t term() {
    uint64_t v = factor();
    for (;;) {
      skipSpaces();
      if (!error_.empty() || pos_ >= end_ || text_[pos_] != '*') return v;
      ++pos_;
      v *= factor();
    }
  }
  uint64_t factor() {
    skipSpaces();
    if (!error_.empty()) return 0;
    if (pos_ >= end_) {
      fail("a number, symbol, $register or '(' is missing");
      return 0;
    }
    const char c = text_[pos_];
    if (c == '(') {
      ++pos_;
      const uint64_t v = expr();
      skipSpaces();
      if (error_.empty() && (pos_ >= end_ || text_[pos_] != ')')) fail("')' is missing");
      ++pos_;
      return v;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) return number();
    if (c == '$') {
      const size_t at = pos_++;
      const std::string name = word();
      const auto reg = registerByName(name);
      if (!reg) {
        fail("no register named '" + name + "'", at);
        return 0;
      }
      if (cpu_ == nullptr) {
        fail("registers are not available here", at);
        return 0;
      }
      return reg->read(*cpu_);
    }
    if (isWordStart(c)) {
      const size_t at = pos_;
      const std::string name = word();
      const auto a = symbols_.find(name);
      if (!a) fail("'" + name + "' is not a guest symbol", at);
      return a.value_or(0);
    }
    fail("unexpected '" + std::string(1, c) + "'");
    return 0;
  }
  uint64_t number() {
    const size_t at = pos_;
    int base = 10;
    if (pos_ + 1 < end_ && text_[pos_] == '0' &&
        (text_[pos_ + 1] == 'x' || text_[pos_ + 1] == 'X')) {
      base = 16;
      pos_ += 2;
    }
    uint64_t v = 0;
    size_t digits = 0;
    while (pos_ < end_) {
      const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(text_[pos_])));
      int d = -1;
      if (c >= '0' && c <= '9') d = c - '0';
      if (base == 16 && c >= 'a' && c <= 'f') d = c - 'a' + 10;
      if (d < 0) break;
      const uint64_t next = v * static_cast<uint64_t>(base) + static_cast<uint64_t>(d);
      if ((next - static_cast<uint64_t>(d)) / static_cast<uint64_t>(base) != v) {
        fail("number too large", at);
        return 0;
      }
      v = next;
      ++digits;
      ++pos_;
    }
    if (digits == 0) fail("hex digits are missing after 0x", at);
    if (pos_ < end_ && isWordStart(text_[pos_])) fail("not a number", at);
    return v;
  }
  static bool isWordStart(char c) {
    return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == '.';
  }
  std::string word() {
    const size_t start = pos_;
    while (pos_ < end_ &&
           (isWordStart(text_[pos_]) || std::isdigit(static_cast<unsigned char>(text_[pos_]))))
      ++pos_;
    return std::string(text_.substr(start, pos_ - start));
  }
  void skipSpaces() {
    while (pos_ < end_ && text_[pos_] == ' ') ++pos_;
  }
  void fail(std::string what, std::optional<size_t> at = std::nullopt) {
    if (!error_.empty()) return;
    error_ = "in '" + std::string(text_) + "' at offset " + std::to_string(at.value_or(pos_)) +
             ": " + std::move(what);
  }

  std::string_view text_;
  const GuestSymbols& symbols_;
  const CpuState* cpu_;
  size_t pos_ = 0;
  size_t end_ = 0;
  std::string error_;
};

}  // namespace

Result<uint64_t> evaluateAddress(std::string_view text, const GuestSymbols& symbols,
                                 const CpuState* cpu) {
  Evaluator e(text, symbols, cpu);
  const auto v = e.run(text.size());
  if (!v) return makeError(e.error());
  return *v;
}

Result<AddressRange> parseAddressRange(std::string_view text, const GuestSymbols& symbols,
                                       const CpuState* cpu) {
  const size_t colon = text.rfind(':');
  Evaluator a(text, symbols, cpu);
  const auto address = a.run(colon == std::string_view::npos ? text.size() : colon);
  if (!address) return makeError(a.error());
  AddressRange r;
  r.address = *address;
  if (colon == std::string_view::npos) return r;
  auto length = evaluateAddress(text.substr(colon + 1), symbols, cpu);
  if (!length.ok()) return makeError("length " + length.error().message);
  if (*length == 0 || *length > kMaxAddressRangeLength)
    return makeError("in '" + std::string(text) + "': the length " + std::to_string(*length) +
                     " is not in 1..2^30");
  r.length = *length;
  return r;
}

}  // namespace ttvm
