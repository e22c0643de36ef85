// DiskImage: a raw disk image file behind an emulated drive, read-only on
// the host with a copy-on-write overlay in memory.
//
// The file is opened O_RDONLY and never written: sectors the guest writes
// go to an in-memory overlay (sector number -> 512 bytes) that later reads
// see, and that disappears with the machine. A recording therefore leaves
// the image byte-for-byte and mtime unchanged, and two recordings from the
// same image start from the same disk.
//
// What the guest reads reaches the trace as the data-port reads of the
// controller (see IdeChannel), so a replay needs no image.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "ttvm/base/result.h"

namespace ttvm {

class DiskImage {
 public:
  static constexpr uint32_t kSectorBytes = 512;

  // Opens a raw image. Errors (each naming the path): missing or unreadable
  // file, a directory or other non-regular file, an empty file, a size that
  // is not a multiple of 512 bytes (the size and the remainder are named).
  static Result<std::unique_ptr<DiskImage>> open(const std::string& path);
  // An image held in memory (tests): `bytes` must be a non-empty multiple of 512.
  static std::unique_ptr<DiskImage> fromBytes(std::string name, std::vector<uint8_t> bytes);
  ~DiskImage();
  DiskImage(const DiskImage&) = delete;
  DiskImage& operator=(const DiskImage&) = delete;

  const std::string& path() const { return path_; }
  uint64_t sectors() const { return sectors_; }

  // Reads sector `lba` (< sectors()) into `out` (512 bytes): the overlay's
  // copy if the guest wrote it, else the file's. False on a host read error.
  bool read(uint64_t lba, std::span<uint8_t> out) const;
  // Writes sector `lba` (< sectors()) into the overlay.
  void write(uint64_t lba, std::span<const uint8_t> in);
  // Sectors the guest has written (the overlay's size).
  size_t writtenSectors() const { return overlay_.size(); }

 private:
  DiskImage() = default;

  std::string path_;
  int fd_ = -1;                  // -1: held in memory_
  std::vector<uint8_t> memory_;  // fromBytes
  uint64_t sectors_ = 0;
  std::unordered_map<uint64_t, std::array<uint8_t, kSectorBytes>> overlay_;
};

}  // namespace ttvm
