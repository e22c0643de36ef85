// StateWriter / StateReader: the little-endian byte encoding of device state
// (checkpoints, the INIT frame's deviceState, snapshots). Each device writes
// its registers in a fixed order and reads them back in the same order; the
// Machine frames every device's bytes with its name and length, so a blob
// from another machine configuration is rejected with a message naming the
// device and the byte offset.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ttvm/base/result.h"

namespace ttvm::machine {

// A device's bulk memory (the CGA's 32 KiB of text, the pc-testdev's 64
// KiB): bytes the guest reads and writes, saved by StateWriter::memory()
// like bytes(). Every change goes through change(), which gives the contents
// a new version: a version names one content of this memory.
//
// The bytes live in a buffer that snapshot() shares instead of copying: a
// replay checkpoint (StateWriter::holdMemoriesApart) keeps the snapshot, and
// so do all later checkpoints while the memory is not changed. change()
// first copies the buffer when anything else still holds it (copy on
// write), so a snapshot never changes. Loading a snapshot back
// (StateReader::takeMemoriesFrom) takes its buffer, or nothing at all when
// the memory holds its version still: no checkpoint copies a memory's bytes.
class DeviceMemory {
 public:
  // One content of the memory: its version, and the buffer holding it,
  // which nothing writes while shared.
  struct Snapshot {
    uint64_t version = 0;
    std::shared_ptr<const std::vector<uint8_t>> bytes;
  };

  explicit DeviceMemory(size_t size) : bytes_(std::make_shared<std::vector<uint8_t>>(size, 0)) {}
  size_t size() const { return bytes_->size(); }
  uint8_t operator[](size_t i) const { return (*bytes_)[i]; }
  std::span<const uint8_t> bytes() const { return *bytes_; }
  // The bytes to change; they get a new version. Write through the span
  // before the next save, load or snapshot, and keep it no longer.
  std::span<uint8_t> change() {
    version_ = ++lastVersion_;
    return own();
  }
  uint64_t version() const { return version_; }
  // The current contents, sharing the buffer.
  Snapshot snapshot() const { return Snapshot{version_, bytes_}; }

 private:
  friend class StateReader;
  // The buffer, copied first when a snapshot still holds it.
  std::span<uint8_t> own();
  // Takes a snapshot's contents (one this memory gave, or of its size).
  void restore(const Snapshot& s);

  // Made writable here (own()); shared read-only with snapshots otherwise.
  std::shared_ptr<std::vector<uint8_t>> bytes_;
  uint64_t version_ = 0;      // 0: the zeros it was made with
  uint64_t lastVersion_ = 0;  // the highest version given out: none is given twice
};

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
    openLeftOut_.push_back(leftOut_);
    return mark;
  }
  void endBytes(size_t mark) {
    const uint64_t n = bytes_.size() - mark - 4 + (leftOut_ - openLeftOut_.back());
    openLeftOut_.pop_back();
    for (int i = 0; i < 4; ++i) bytes_[mark + i] = static_cast<uint8_t>(n >> (8 * i));
  }
  void reserve(size_t n) { bytes_.reserve(n); }
  // A DeviceMemory: the same bytes as bytes(m.bytes()), unless left out or
  // held apart.
  void memory(const DeviceMemory& m) {
    if (apart_ != nullptr) {
      u32(static_cast<uint32_t>(m.size()));
      apart_->push_back(m.snapshot());
      return;
    }
    if (marks_ == nullptr) {
      bytes(m.bytes());
      return;
    }
    u32(static_cast<uint32_t>(m.size()));
    marks_->push_back(MemoryMark{bytes_.size(), &m});
    leftOut_ += m.size();
  }
  // Where a left-out memory's bytes belong: before data()[offset].
  struct MemoryMark {
    size_t offset;
    const DeviceMemory* memory;
  };
  // From now on, memory() writes only the length and appends a mark to
  // `out`; lengths of beginBytes() sections still count the memories' bytes.
  // data() with each memory's bytes inserted at its mark is what the writer
  // writes otherwise (Machine::deviceDigest hashes it without copying them).
  void leaveOutMemories(std::vector<MemoryMark>* out) { marks_ = out; }
  // From now on, memory() writes only the length and appends the memory's
  // snapshot to `out`, in the order written, sharing its bytes; lengths of
  // beginBytes() sections count only what is written. A StateReader given
  // the snapshots (takeMemoriesFrom) reads it back.
  void holdMemoriesApart(std::vector<DeviceMemory::Snapshot>* out) { apart_ = out; }

  const std::vector<uint8_t>& data() const { return bytes_; }
  std::vector<uint8_t> take() { return std::move(bytes_); }

 private:
  void put(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) bytes_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t> bytes_;
  std::vector<DeviceMemory::Snapshot>* apart_ = nullptr;
  std::vector<MemoryMark>* marks_ = nullptr;
  uint64_t leftOut_ = 0;               // bytes of memories left out so far
  std::vector<uint64_t> openLeftOut_;  // leftOut_ at each open beginBytes()
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
  // A length-prefixed string of at most `maxBytes`, without a copy (valid
  // as long as the data).
  std::span<const uint8_t> view(size_t maxBytes);
  // What StateWriter::memory() wrote, into `m` (whose size it must have),
  // under a new version. With snapshots (takeMemoriesFrom), the next one
  // instead: `m` shares its buffer, or keeps its own when it holds the
  // snapshot's version still; nothing is copied.
  void memory(DeviceMemory& m);
  // The snapshots StateWriter::holdMemoriesApart gave, for the memory()
  // calls from now on, in order; valid as long as the reader. They must be
  // of the memories that gave them (a version names one memory's contents).
  void takeMemoriesFrom(std::span<const DeviceMemory::Snapshot> memories) {
    held_ = true;
    apart_ = memories;
  }
  // How many snapshots memory() has used (a sub-reader's go on from there).
  size_t memoriesUsed() const { return nextApart_; }

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
  bool held_ = false;  // takeMemoriesFrom
  std::span<const DeviceMemory::Snapshot> apart_;
  size_t nextApart_ = 0;
  std::string what_;
  size_t pos_ = 0;
  bool failed_ = false;
  size_t failOffset_ = 0;
  std::string why_;
};

}  // namespace ttvm::machine
