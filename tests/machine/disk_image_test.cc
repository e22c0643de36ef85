#include "ttvm/machine/disk_image.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
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

}  // namespace
}  // namespace ttvm
