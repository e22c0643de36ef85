#include "ttvm/machine/state_io.h"

#include <cstring>

namespace ttvm::machine {

uint64_t StateReader::get(int n) {
  if (failed_) return 0;
  if (data_.size() - pos_ < static_cast<size_t>(n)) {
    fail("needed " + std::to_string(n) + " more bytes, " + std::to_string(remaining()) + " left");
    return 0;
  }
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(data_[pos_ + i]) << (8 * i);
  pos_ += n;
  return v;
}

std::vector<uint8_t> StateReader::bytes(size_t maxBytes) {
  const std::span<const uint8_t> v = view(maxBytes);
  return std::vector<uint8_t>(v.begin(), v.end());
}

std::string StateReader::str(size_t maxBytes) {
  auto b = bytes(maxBytes);
  return std::string(b.begin(), b.end());
}

void StateReader::fixedBytes(std::span<uint8_t> out) {
  uint32_t n = u32();
  if (failed_) return;
  if (n != out.size() || n > remaining()) {
    fail("byte string of " + std::to_string(n) + " bytes where " + std::to_string(out.size()) +
         " were expected");
    return;
  }
  std::memcpy(out.data(), data_.data() + pos_, n);
  pos_ += n;
}

std::span<const uint8_t> StateReader::view(size_t maxBytes) {
  uint32_t n = u32();
  if (failed_) return {};
  if (n > maxBytes || n > remaining()) {
    fail("byte string of " + std::to_string(n) + " bytes (at most " + std::to_string(maxBytes) +
         ", " + std::to_string(remaining()) + " left)");
    return {};
  }
  std::span<const uint8_t> out = data_.subspan(pos_, n);
  pos_ += n;
  return out;
}

std::span<uint8_t> DeviceMemory::own() {
  if (bytes_.use_count() != 1) bytes_ = std::make_shared<std::vector<uint8_t>>(*bytes_);
  return *bytes_;
}

void DeviceMemory::restore(const Snapshot& s) {
  if (s.version == version_) return;  // the same contents (versions are never reused)
  // Shared from now on: own() copies it before any write.
  bytes_ = std::const_pointer_cast<std::vector<uint8_t>>(s.bytes);
  version_ = s.version;
}

void StateReader::memory(DeviceMemory& m) {
  if (!held_) {
    // Into a buffer of its own (a snapshot's is not copied first: all of
    // it is overwritten), under a new version even when the load fails.
    if (m.bytes_.use_count() != 1) m.bytes_ = std::make_shared<std::vector<uint8_t>>(m.size());
    fixedBytes(*m.bytes_);
    m.version_ = ++m.lastVersion_;
    return;
  }
  // Held apart: only the length is here.
  const uint32_t n = u32();
  if (failed_) return;
  if (nextApart_ == apart_.size()) {
    fail("a device memory of " + std::to_string(n) + " bytes where no more were held apart");
    return;
  }
  const DeviceMemory::Snapshot& s = apart_[nextApart_++];
  if (n != m.size() || s.bytes == nullptr || s.bytes->size() != n) {
    fail("device memory of " + std::to_string(n) +
         " bytes (held apart: " + std::to_string(s.bytes ? s.bytes->size() : 0) + ") where " +
         std::to_string(m.size()) + " were expected");
    return;
  }
  m.restore(s);
}

void StateReader::fail(std::string why) {
  if (failed_) return;
  failed_ = true;
  failOffset_ = pos_;
  why_ = std::move(why);
}

Status StateReader::status() const {
  if (!failed_) return {};
  return makeError(what_ + ": bad data at byte offset " + std::to_string(failOffset_) + ": " +
                   why_);
}

}  // namespace ttvm::machine
