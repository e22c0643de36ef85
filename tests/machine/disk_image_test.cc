#include "ttvm/machine/disk_image.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <random>
#include <string>

namespace ttvm {
using ttvm::machine::DiskImage;
namespace {

std::string tmpFile(const std::string& name, size_t bytes) {
  std::string path = ::testing::TempDir() + "/disk_image_" + name;
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  for (size_t i = 0; i < bytes; ++i) f.put(static_cast<char>(i * 13 + 1));
  return path;
}

TEST(DiskImage, BadFilesAreRefusedWithTheirReason) {
  auto missing = DiskImage::open(::testing::TempDir() + "/no_such_disk.img");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("no_such_disk.img"), std::string::npos);
  EXPECT_NE(missing.error().message.find("No such file"), std::string::npos);
  auto dir = DiskImage::open(::testing::TempDir());
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.error().message.find("is a directory"), std::string::npos);
  auto empty = DiskImage::open(tmpFile("empty", 0));
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.error().message.find("empty"), std::string::npos);
  auto odd = DiskImage::open(tmpFile("odd", 1000));
  ASSERT_FALSE(odd.ok());
  EXPECT_NE(odd.error().message.find("1000 bytes, is not a multiple of 512 (488 bytes"),
            std::string::npos)
      << odd.error().message;
}

TEST(DiskImage, WritesStayInMemoryAndTheFileIsUnchanged) {
  const std::string path = tmpFile("cow", 3 * 512);
  struct stat before {};
  ASSERT_EQ(stat(path.c_str(), &before), 0);
  auto d = DiskImage::open(path);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ((*d)->sectors(), 3u);
  std::vector<uint8_t> s(512);
  ASSERT_TRUE((*d)->read(1, s));
  EXPECT_EQ(s[0], static_cast<uint8_t>(512 * 13 + 1));
  std::vector<uint8_t> w(512, 0xEE);
  (*d)->write(1, w);
  ASSERT_TRUE((*d)->read(1, s));
  EXPECT_EQ(s, w);
  ASSERT_TRUE((*d)->read(2, s));
  EXPECT_EQ(s[0], static_cast<uint8_t>(1024 * 13 + 1));
  EXPECT_EQ((*d)->writtenSectors(), 1u);
  d->reset();
  struct stat after {};
  ASSERT_EQ(stat(path.c_str(), &after), 0);
  EXPECT_EQ(after.st_size, before.st_size);
  EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  EXPECT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  std::ifstream f(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  for (size_t i = 0; i < bytes.size(); ++i)
    ASSERT_EQ(static_cast<uint8_t>(bytes[i]), static_cast<uint8_t>(i * 13 + 1)) << i;
}

// Overlay snapshots (replay checkpoints): random writes, snapshots and
// restores against plain copies of the disk's contents. A snapshot shares
// the overlay exactly when no write came since the previous one, a restore
// brings back the contents at the snapshot, and no later write changes a
// snapshot (each one is restored and read back at the end).
TEST(DiskImage, OverlaySnapshotsShareUntilAWriteAndNeverChange) {
  constexpr uint64_t kSectors = 8;
  std::vector<uint8_t> image(kSectors * 512);
  for (size_t i = 0; i < image.size(); ++i) image[i] = static_cast<uint8_t>(i * 7);
  auto d = DiskImage::fromBytes("snap.img", image);
  auto contents = [&] {
    std::vector<uint8_t> all(image.size());
    for (uint64_t lba = 0; lba < kSectors; ++lba)
      EXPECT_TRUE(d->read(lba, std::span<uint8_t>(all).subspan(lba * 512, 512)));
    return all;
  };
  struct Saved {
    DiskImage::OverlaySnapshot snapshot;
    std::vector<uint8_t> contents;
    size_t written;
  };
  std::vector<Saved> saved{{d->snapshotOverlay(), image, 0}};
  std::mt19937_64 rng(3);
  bool wroteSinceSnapshot = false;
  int shared = 0, unshared = 0;
  for (int i = 0; i < 2000; ++i) {
    switch (rng() % 4) {
      case 0:
      case 1: {
        std::vector<uint8_t> w(512, static_cast<uint8_t>(rng()));
        d->write(rng() % kSectors, w);
        wroteSinceSnapshot = true;
        break;
      }
      case 2: {
        Saved s{d->snapshotOverlay(), contents(), d->writtenSectors()};
        ASSERT_EQ(s.snapshot.sharesWith(saved.back().snapshot), !wroteSinceSnapshot) << "at " << i;
        ++(wroteSinceSnapshot ? unshared : shared);
        saved.push_back(std::move(s));
        wroteSinceSnapshot = false;
        break;
      }
      case 3: {
        const Saved s = saved[rng() % saved.size()];
        d->restoreOverlay(s.snapshot);
        ASSERT_EQ(contents(), s.contents) << "at " << i;
        ASSERT_EQ(d->writtenSectors(), s.written) << "at " << i;
        saved.push_back({d->snapshotOverlay(), s.contents, s.written});
        ASSERT_TRUE(saved.back().snapshot.sharesWith(s.snapshot)) << "at " << i;
        wroteSinceSnapshot = false;
        break;
      }
    }
  }
  EXPECT_GT(shared, 50);
  EXPECT_GT(unshared, 50);
  for (size_t i = 0; i < saved.size(); ++i) {
    d->restoreOverlay(saved[i].snapshot);
    ASSERT_EQ(contents(), saved[i].contents) << "snapshot " << i;
  }
  // An empty snapshot (taken before the disk was attached): nothing written.
  d->restoreOverlay(DiskImage::OverlaySnapshot());
  EXPECT_EQ(d->writtenSectors(), 0u);
  EXPECT_EQ(contents(), image);
}

}  // namespace
}  // namespace ttvm
