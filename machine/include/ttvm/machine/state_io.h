// StateWriter / StateReader: the little-endian byte encoding of device state
// (checkpoints, the INIT frame's deviceState, snapshots). Each device writes
// its registers in a fixed order and reads them back in the same order; the
// Machine frames every device's bytes with its name and length, so a blob
// from another machine configuration is rejected with a message naming the
// device and the byte offset.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ttvm/base/result.h"

namespace ttvm::machine {

class StateWriter {
 public:
  void u8(uint8_t v) { bytes_.push_back(v); }
  void u16(uint16_t v) { put(v, 2); }
  void u32(uint32_t v) { put(v, 4); }
  void u64(uint64_t v) { put(v, 8); }
  void boolean(bool v) { u8(v ? 1 : 0); }
  void bytes(std::span<const uint8_t> b) {
    u32(static_cast<uint32_t>(b.size()));
    bytes_.insert(bytes_.end(), b.begin(), b.end());
  }
  void str(std::string_view s) {
    bytes(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  }
  // A length-prefixed byte string written in place: the same bytes as
  // bytes(X) where X is what is written between beginBytes() and
  // endBytes(mark), without building X in a buffer of its own.
  size_t beginBytes() {
    const size_t mark = bytes_.size();
    u32(0);
    return mark;
  }
  void endBytes(size_t mark) {
    const uint64_t n = bytes_.size() - mark - 4;
    for (int i = 0; i < 4; ++i) bytes_[mark + i] = static_cast<uint8_t>(n >> (8 * i));
  }
  void reserve(size_t n) { bytes_.reserve(n); }

  const std::vector<uint8_t>& data() const { return bytes_; }
  std::vector<uint8_t> take() { return std::move(bytes_); }

 private:
  void put(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) bytes_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t> bytes_;
};

// Reads what StateWriter wrote. Running past the end makes every later read
// return zero and the reader failed(); status() then names the offset.
class StateReader {
 public:
  explicit StateReader(std::span<const uint8_t> data, std::string what = "device state")
      : data_(data), what_(std::move(what)) {}

  uint8_t u8() { return static_cast<uint8_t>(get(1)); }
  uint16_t u16() { return static_cast<uint16_t>(get(2)); }
  uint32_t u32() { return static_cast<uint32_t>(get(4)); }
  uint64_t u64() { return get(8); }
  bool boolean() { return get(1) != 0; }
  // A length-prefixed byte string of at most `maxBytes`.
  std::vector<uint8_t> bytes(size_t maxBytes);
  std::string str(size_t maxBytes);
  // Reads exactly out.size() bytes of a length-prefixed string whose length must match.
  void fixedBytes(std::span<uint8_t> out);

  bool failed() const { return failed_; }
  size_t offset() const { return pos_; }
  size_t remaining() const { return data_.size() - pos_; }
  // Ok, or an error naming `what` and the byte offset where reading failed.
  Status status() const;
  // Marks the data as invalid (e.g. a register value out of range).
  void fail(std::string why);

 private:
  uint64_t get(int n);

  std::span<const uint8_t> data_;
  std::string what_;
  size_t pos_ = 0;
  bool failed_ = false;
  size_t failOffset_ = 0;
  std::string why_;
};

}  // namespace ttvm::machine
