#include "ttvm/machine/disk_image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ttvm/base/assert.h"

namespace ttvm::machine {

Result<std::unique_ptr<DiskImage>> DiskImage::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return makeError(path + ": cannot open the disk image: " + std::strerror(errno));
  std::unique_ptr<DiskImage> d(new DiskImage);
  d->fd_ = fd;
  d->path_ = path;
  struct stat st {};
  if (fstat(fd, &st) != 0)
    return makeError(path + ": cannot stat the disk image: " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) return makeError(path + ": is a directory, not a disk image");
  if (!S_ISREG(st.st_mode))
    return makeError(path + ": not a regular file (a raw disk image file is needed)");
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size == 0) return makeError(path + ": the disk image is empty");
  if (size % kSectorBytes != 0)
    return makeError(path + ": the disk image's size, " + std::to_string(size) +
                     " bytes, is not a multiple of 512 (" + std::to_string(size % kSectorBytes) +
                     " bytes past the last whole sector)");
  d->sectors_ = size / kSectorBytes;
  return d;
}

std::unique_ptr<DiskImage> DiskImage::fromBytes(std::string name, std::vector<uint8_t> bytes) {
  TTVM_ASSERT(!bytes.empty() && bytes.size() % kSectorBytes == 0,
              "an in-memory disk image must be a non-empty multiple of 512 bytes");
  std::unique_ptr<DiskImage> d(new DiskImage);
  d->path_ = std::move(name);
  d->sectors_ = bytes.size() / kSectorBytes;
  d->memory_ = std::move(bytes);
  return d;
}

std::unique_ptr<DiskImage> DiskImage::fromSource(std::string name, uint64_t sectors,
                                                 SectorSource source) {
  TTVM_ASSERT(sectors != 0 && source, "a disk from a sector source needs sectors and a source");
  std::unique_ptr<DiskImage> d(new DiskImage);
  d->path_ = std::move(name);
  d->sectors_ = sectors;
  d->source_ = std::move(source);
  return d;
}

void DiskImage::observeFirstReads(FirstReadObserver observer) {
  observer_ = std::move(observer);
  observed_.assign(observer_ ? sectors_ : 0, false);
}

bool DiskImage::readObserved(uint64_t lba, std::span<uint8_t> out) const {
  if (lba >= observed_.size() || !observed_[lba]) return false;
  return readImage(lba, out);
}

DiskImage::~DiskImage() {
  if (fd_ >= 0) ::close(fd_);
}

bool DiskImage::read(uint64_t lba, std::span<uint8_t> out) const {
  TTVM_ASSERT(lba < sectors_ && out.size() == kSectorBytes, "disk read out of range");
  if (auto it = overlay_->find(lba); it != overlay_->end()) {
    std::memcpy(out.data(), it->second->data(), kSectorBytes);
    return true;
  }
  if (!readImage(lba, out)) return false;
  if (observer_ && !observed_[lba]) {
    observed_[lba] = true;
    observer_(lba, out);
  }
  return true;
}

bool DiskImage::readImage(uint64_t lba, std::span<uint8_t> out) const {
  if (source_) return source_(lba, out);
  if (fd_ < 0) {
    std::memcpy(out.data(), memory_.data() + lba * kSectorBytes, kSectorBytes);
    return true;
  }
  size_t done = 0;
  while (done < kSectorBytes) {
    const ssize_t n = pread(fd_, out.data() + done, kSectorBytes - done,
                            static_cast<off_t>(lba * kSectorBytes + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

void DiskImage::write(uint64_t lba, std::span<const uint8_t> in) {
  TTVM_ASSERT(lba < sectors_ && in.size() == kSectorBytes, "disk write out of range");
  // A snapshot holds the overlay: change a copy (of the sector pointers).
  if (overlay_.use_count() > 1) overlay_ = std::make_shared<Overlay>(*overlay_);
  auto sector = std::make_shared<Sector>();
  std::memcpy(sector->data(), in.data(), kSectorBytes);
  (*overlay_)[lba] = std::move(sector);
}

DiskImage::OverlaySnapshot DiskImage::snapshotOverlay() const {
  OverlaySnapshot s;
  s.overlay_ = overlay_;
  return s;
}

void DiskImage::restoreOverlay(const OverlaySnapshot& snapshot) {
  overlay_ = snapshot.overlay_ != nullptr ? snapshot.overlay_ : std::make_shared<Overlay>();
}

}  // namespace ttvm::machine
