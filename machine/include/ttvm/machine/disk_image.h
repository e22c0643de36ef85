// DiskImage: a raw disk image file behind an emulated drive, read-only on
// the host with a copy-on-write overlay in memory.
//
// The file is opened O_RDONLY and never written: sectors the guest writes
// go to an in-memory overlay (sector number -> 512 bytes) that later reads
// see, and that disappears with the machine. A recording therefore leaves
// the image byte-for-byte and mtime unchanged, and two recordings from the
// same image start from the same disk.
//
// What the guest reads reaches the trace once per sector: the recorder
// observes the first read of each sector from the image
// (observeFirstReads) and logs its bytes as a kDiskSector event. A replay
// builds the same disk over those sectors (fromSource), so it needs no
// image; a sector the trace lacks is the source's to report.
//
// Invariant: the image's own content never changes (writes stay in the
// overlay), so a sector read once reads the same bytes at any later time.
//
// The overlay is copy-on-write, for replay checkpoints: snapshotOverlay()
// shares it (no copy), and the next write() while a snapshot holds it
// copies the map of sector pointers (not the sectors' bytes) first, so a
// snapshot never changes; restoreOverlay() shares the snapshot's back.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "ttvm/base/result.h"

namespace ttvm::machine {

class DiskImage {
 public:
  static constexpr uint32_t kSectorBytes = 512;

  // Opens a raw image. Errors (each naming the path): missing or unreadable
  // file, a directory or other non-regular file, an empty file, a size that
  // is not a multiple of 512 bytes (the size and the remainder are named).
  static Result<std::unique_ptr<DiskImage>> open(const std::string& path);
  // An image held in memory (tests): `bytes` must be a non-empty multiple of 512.
  static std::unique_ptr<DiskImage> fromBytes(std::string name, std::vector<uint8_t> bytes);
  // A disk of `sectors` sectors whose image content comes from `source`
  // (replay: the sectors the trace holds). The source fills `out` (512
  // bytes) and returns true, or returns false for a sector it cannot give
  // (read() then fails, as on a host read error).
  using SectorSource = std::function<bool(uint64_t lba, std::span<uint8_t> out)>;
  static std::unique_ptr<DiskImage> fromSource(std::string name, uint64_t sectors,
                                               SectorSource source);
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
  size_t writtenSectors() const { return overlay_->size(); }
  // Calls `f` with each sector the guest has written and its bytes now.
  void forEachWritten(
      const std::function<void(uint64_t lba, std::span<const uint8_t> bytes)>& f) const {
    for (const auto& [lba, bytes] : *overlay_) f(lba, *bytes);
  }

 private:
  using Sector = std::array<uint8_t, kSectorBytes>;
  using Overlay = std::unordered_map<uint64_t, std::shared_ptr<const Sector>>;

 public:
  // The overlay as it stands, shared with the disk until its next write.
  class OverlaySnapshot {
   public:
    OverlaySnapshot() = default;
    // Whether both hold the same overlay (no write between them).
    bool sharesWith(const OverlaySnapshot& o) const { return overlay_ == o.overlay_; }

   private:
    friend class DiskImage;
    std::shared_ptr<Overlay> overlay_;  // never changed while shared
  };
  OverlaySnapshot snapshotOverlay() const;
  // Makes the overlay the snapshot's (one this disk took; an empty one,
  // taken before the disk was there: no sector written).
  void restoreOverlay(const OverlaySnapshot& snapshot);

  // From now on, calls `observer` once per sector, with its bytes, the first
  // time read() takes that sector from the image rather than the overlay.
  using FirstReadObserver = std::function<void(uint64_t lba, std::span<const uint8_t> bytes)>;
  void observeFirstReads(FirstReadObserver observer);
  // Reads sector `lba` from the image, ignoring the overlay, if the observer
  // has seen it (the sector is in the trace); false otherwise or on a host
  // read error. The recorder's tail re-execution reads the trace's sectors
  // through this without keeping a copy of them.
  bool readObserved(uint64_t lba, std::span<uint8_t> out) const;

 private:
  DiskImage() = default;
  bool readImage(uint64_t lba, std::span<uint8_t> out) const;

  std::string path_;
  int fd_ = -1;                  // -1: held in memory_
  std::vector<uint8_t> memory_;  // fromBytes
  SectorSource source_;          // fromSource
  FirstReadObserver observer_;
  mutable std::vector<bool> observed_;  // sectors passed to observer_ (sized when set)
  uint64_t sectors_ = 0;
  std::shared_ptr<Overlay> overlay_ = std::make_shared<Overlay>();  // never null
};

}  // namespace ttvm::machine
