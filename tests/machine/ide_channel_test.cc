// The IDE channel at the register level, driven the way ATA drivers (a
// BIOS, Linux's libata PIO path, xv6's ide.c) drive it.
#include "ttvm/machine/devices/ide_channel.h"

#include <gtest/gtest.h>

#include "test_support.h"

namespace ttvm {
using ttvm::machine::DiskImage;
using ttvm::machine::IdeChannel;
using ttvm::machine::IrqLine;
using ttvm::machine::StateReader;
using ttvm::machine::StateWriter;
namespace {

constexpr uint16_t kBase = 0x1F0, kCtl = 0x3F6;
enum : uint16_t {
  DATA = kBase,
  ERR = kBase + 1,
  FEAT = kBase + 1,
  COUNT = kBase + 2,
  LBA0 = kBase + 3,
  LBA1 = kBase + 4,
  LBA2 = kBase + 5,
  DEV = kBase + 6,
  STATUS = kBase + 7,
  CMD = kBase + 7
};

// A disk whose sector n holds bytes (n * 7 + i) & 0xFF, tagged with n in its first 8 bytes.
std::vector<uint8_t> pattern(uint64_t sectors) {
  std::vector<uint8_t> b(sectors * 512);
  for (uint64_t n = 0; n < sectors; ++n) {
    for (unsigned i = 0; i < 512; ++i) b[n * 512 + i] = static_cast<uint8_t>(n * 7 + i);
    for (unsigned i = 0; i < 8; ++i) b[n * 512 + i] = static_cast<uint8_t>(n >> (8 * i));
  }
  return b;
}

struct IdeTest : ::testing::Test {
  test::RecordingIrqs irqs;
  std::unique_ptr<DiskImage> master = DiskImage::fromBytes("master", pattern(300));
  std::unique_ptr<DiskImage> slave = DiskImage::fromBytes("slave", pattern(4));
  IdeChannel ide{"ide0", kBase, kCtl, IrqLine(&irqs, 14)};
  IdeTest() {
    ide.attach(0, master.get());
    ide.attach(1, slave.get());
  }
  uint8_t in(uint16_t p) { return static_cast<uint8_t>(ide.portRead(p, 1)); }
  void out(uint16_t p, uint8_t v) { ide.portWrite(p, 1, v); }
  uint16_t word() { return static_cast<uint16_t>(ide.portRead(DATA, 2)); }
  std::vector<uint8_t> sectorData() {
    std::vector<uint8_t> s(512);
    for (unsigned i = 0; i < 512; i += 2) {
      uint16_t w = word();
      s[i] = static_cast<uint8_t>(w);
      s[i + 1] = static_cast<uint8_t>(w >> 8);
    }
    return s;
  }
  std::vector<uint8_t> expected(uint64_t n) {
    auto p = pattern(n + 1);
    return {p.begin() + static_cast<long>(n * 512), p.end()};
  }
  void lba28(uint8_t drive, uint32_t lba, uint8_t count) {
    out(COUNT, count);
    out(LBA0, static_cast<uint8_t>(lba));
    out(LBA1, static_cast<uint8_t>(lba >> 8));
    out(LBA2, static_cast<uint8_t>(lba >> 16));
    out(DEV, static_cast<uint8_t>(0xE0 | drive << 4 | ((lba >> 24) & 0xF)));
  }
  void lba48(uint64_t lba, uint16_t count) {
    out(COUNT, static_cast<uint8_t>(count >> 8));
    out(LBA0, static_cast<uint8_t>(lba >> 24));
    out(LBA1, static_cast<uint8_t>(lba >> 32));
    out(LBA2, static_cast<uint8_t>(lba >> 40));
    out(COUNT, static_cast<uint8_t>(count));
    out(LBA0, static_cast<uint8_t>(lba));
    out(LBA1, static_cast<uint8_t>(lba >> 8));
    out(LBA2, static_cast<uint8_t>(lba >> 16));
    out(DEV, 0x40);
  }
};

TEST_F(IdeTest, PowerOnSignatureAndAbsentDrives) {
  EXPECT_EQ(in(STATUS), 0x50);  // DRDY DSC
  EXPECT_EQ(in(ERR), 0x01);     // diagnostic passed
  EXPECT_EQ(in(COUNT), 1);
  EXPECT_EQ(in(LBA0), 1);
  EXPECT_EQ(in(LBA1), 0);  // ATA, not ATAPI (0x14/0xEB)
  EXPECT_EQ(in(LBA2), 0);
  // A channel without drives reads 0 everywhere (QEMU), data 0xFFFF.
  IdeChannel empty("ide1", 0x170, 0x376, IrqLine(&irqs, 15));
  EXPECT_EQ(empty.portRead(0x177, 1), 0u);
  EXPECT_EQ(empty.portRead(0x376, 1), 0u);
  EXPECT_EQ(empty.portRead(0x170, 2), 0xFFFFu);
  empty.portWrite(0x177, 1, 0xEC);  // ignored
  EXPECT_FALSE(irqs.level[15]);
  EXPECT_EQ(empty.portRead(0x177, 1), 0u);
}

TEST_F(IdeTest, IdentifyDeviceGeometryCapacityAndStrings) {
  out(DEV, 0xA0);
  out(CMD, 0xEC);
  EXPECT_TRUE(irqs.level[14]);
  EXPECT_EQ(ide.portRead(kCtl, 1), 0x58u);  // alternate status: DRQ, the interrupt stays
  EXPECT_TRUE(irqs.level[14]);
  EXPECT_EQ(in(STATUS), 0x58);  // status acknowledges
  EXPECT_FALSE(irqs.level[14]);
  std::vector<uint16_t> id(256);
  for (uint16_t& w : id) w = word();
  EXPECT_EQ(in(STATUS), 0x50);  // DRQ dropped after 256 words
  auto str = [&](unsigned first, unsigned words) {
    std::string s;
    for (unsigned i = 0; i < words; ++i) {
      s.push_back(static_cast<char>(id[first + i] >> 8));
      s.push_back(static_cast<char>(id[first + i] & 0xFF));
    }
    return s;
  };
  EXPECT_EQ(str(27, 20), "TTVM HARDDISK                           ");
  EXPECT_EQ(str(10, 10), "TTVM0000000000000001");
  EXPECT_EQ(id[0], 0x0040);
  EXPECT_EQ(id[1], 2);  // 300 sectors: cylinders clamp to 2
  EXPECT_EQ(id[3], 16);
  EXPECT_EQ(id[6], 63);
  EXPECT_EQ(id[49] & 0x0200, 0x0200);  // LBA
  EXPECT_EQ(id[60] | id[61] << 16, 300);
  EXPECT_EQ(id[83] & 0x0400, 0x0400);  // LBA48 supported
  EXPECT_EQ(id[86] & 0x0400, 0x0400);  // and enabled
  EXPECT_EQ(id[100] | id[101] << 16, 300);
  EXPECT_EQ(id[102] | id[103], 0);
  EXPECT_EQ(id[47] & 0xFF, IdeChannel::kMaxMultiple);
  // The slave answers with its own capacity and serial.
  out(DEV, 0xB0);
  out(CMD, 0xEC);
  for (uint16_t& w : id) w = word();
  EXPECT_EQ(id[60], 4);
  EXPECT_EQ(str(10, 10), "TTVM0000000000000002");
}

TEST_F(IdeTest, ReadSectorsLba28WithAnInterruptPerSector) {
  lba28(0, 5, 2);
  out(CMD, 0x20);
  EXPECT_EQ(irqs.rises[14], 1);
  EXPECT_EQ(in(STATUS), 0x58);
  EXPECT_EQ(sectorData(), expected(5));
  // The second sector: DRQ again, with a new interrupt.
  EXPECT_EQ(irqs.rises[14], 2);
  EXPECT_EQ(in(STATUS), 0x58);
  EXPECT_EQ(sectorData(), expected(6));
  EXPECT_EQ(in(STATUS), 0x50);
  EXPECT_EQ(irqs.rises[14], 2);  // none at the end of a read
  EXPECT_EQ(in(LBA0), 6);        // the address of the last sector moved
}

TEST_F(IdeTest, ThirtyTwoBitDataReadsMoveTwoWords) {
  lba28(0, 1, 1);
  out(CMD, 0x20);
  auto e = expected(1);
  for (unsigned i = 0; i < 512; i += 4) {
    uint32_t v = ide.portRead(DATA, 4);
    ASSERT_EQ(v, uint32_t{e[i]} | e[i + 1] << 8 | e[i + 2] << 16 | uint32_t{e[i + 3]} << 24) << i;
  }
  EXPECT_EQ(in(STATUS), 0x50);
}

TEST_F(IdeTest, SectorCountZeroMeans256AndSlaveSelection) {
  lba28(0, 10, 0);
  out(CMD, 0x20);
  for (int s = 0; s < 256; ++s) {
    ASSERT_EQ(in(STATUS), 0x58) << s;
    ASSERT_EQ(sectorData(), expected(10 + s)) << s;
  }
  EXPECT_EQ(in(STATUS), 0x50);
  lba28(1, 3, 1);
  out(CMD, 0x20);
  EXPECT_EQ(sectorData(), expected(3));  // the slave's sector 3 (same pattern, its own disk)
}

TEST_F(IdeTest, Lba48ReadAndHighOrderReadback) {
  lba48(0x107, 3);
  EXPECT_EQ(in(COUNT), 3);
  out(kCtl, 0x80);  // HOB: the previous writes
  EXPECT_EQ(in(COUNT), 0);
  EXPECT_EQ(in(LBA0), 0);
  out(kCtl, 0x00);
  out(CMD, 0x24);
  for (int s = 0; s < 3; ++s) {
    EXPECT_EQ(in(STATUS), 0x58);
    EXPECT_EQ(sectorData(), expected(0x107 + s));
  }
  EXPECT_EQ(in(STATUS), 0x50);
  // A start beyond the disk in the high-order bytes: IDNF.
  lba48(uint64_t{1} << 32, 1);
  out(CMD, 0x24);
  EXPECT_EQ(in(STATUS), 0x51);  // ERR
  EXPECT_EQ(in(ERR), IdeChannel::kIdnf);
}

TEST_F(IdeTest, WriteSectorsGoToTheOverlayAndReadBack) {
  lba28(0, 7, 2);
  out(CMD, 0x30);
  EXPECT_EQ(irqs.rises[14], 0);  // the first block is asked for without an interrupt
  EXPECT_EQ(in(STATUS), 0x58);
  for (unsigned i = 0; i < 256; ++i) ide.portWrite(DATA, 2, 0xA500 + i);
  EXPECT_EQ(irqs.rises[14], 1);  // the second block
  EXPECT_EQ(in(STATUS), 0x58);
  for (unsigned i = 0; i < 128; ++i) ide.portWrite(DATA, 4, 0x12345678);
  EXPECT_EQ(irqs.rises[14], 2);  // the end
  EXPECT_EQ(in(STATUS), 0x50);
  EXPECT_EQ(master->writtenSectors(), 2u);
  lba28(0, 7, 2);
  out(CMD, 0x20);
  auto a = sectorData();
  EXPECT_EQ(a[0], 0x00);
  EXPECT_EQ(a[1], 0xA5);
  EXPECT_EQ(a[511], 0xA5);
  EXPECT_EQ(a[510], 0xFF);
  auto b = sectorData();
  EXPECT_EQ(b[0], 0x78);
  EXPECT_EQ(b[3], 0x12);
  lba28(0, 9, 1);  // untouched sectors come from the image
  out(CMD, 0x20);
  EXPECT_EQ(sectorData(), expected(9));
}

TEST_F(IdeTest, MultipleModeMovesBlocksOfSectors) {
  lba28(0, 0, 5);
  out(CMD, 0xC4);  // READ MULTIPLE before SET MULTIPLE MODE: abort
  EXPECT_EQ(in(STATUS), 0x51);
  EXPECT_EQ(in(ERR), IdeChannel::kAbrt);
  out(COUNT, 3);  // not a power of two
  out(CMD, 0xC6);
  EXPECT_EQ(in(STATUS), 0x51);
  out(COUNT, 4);
  out(CMD, 0xC6);
  EXPECT_EQ(in(STATUS), 0x50);
  int rises = irqs.rises[14];
  lba28(0, 20, 5);
  out(CMD, 0xC4);
  EXPECT_EQ(in(STATUS), 0x58);  // what the interrupt handler reads first
  for (int s = 0; s < 4; ++s) EXPECT_EQ(sectorData(), expected(20 + s));
  EXPECT_EQ(irqs.rises[14], rises + 2);  // one interrupt for the block of 4, then the next block
  EXPECT_EQ(in(STATUS), 0x58);           // the last block: 1 sector
  EXPECT_EQ(sectorData(), expected(24));
  EXPECT_EQ(irqs.rises[14], rises + 2);  // none at the end of a read
  EXPECT_EQ(in(STATUS), 0x50);
}

TEST_F(IdeTest, ChsAddressingUsesTheCurrentGeometry) {
  // Cylinder 0, head 1, sector 3 with 16 heads and 63 sectors: LBA 65.
  out(COUNT, 1);
  out(LBA0, 3);
  out(LBA1, 0);
  out(LBA2, 0);
  out(DEV, 0xA1);
  out(CMD, 0x20);
  EXPECT_EQ(sectorData(), expected(65));
  // INITIALIZE DEVICE PARAMETERS: 4 heads, 10 sectors per track.
  out(COUNT, 10);
  out(DEV, 0xA3);
  out(CMD, 0x91);
  EXPECT_EQ(in(STATUS), 0x50);
  out(COUNT, 1);
  out(LBA0, 2);
  out(LBA1, 1);  // cylinder 1
  out(DEV, 0xA2);
  out(CMD, 0x20);
  EXPECT_EQ(sectorData(), expected((1 * 4 + 2) * 10 + 1));
  out(LBA0, 0);  // sector numbers start at 1
  out(COUNT, 1);
  out(CMD, 0x20);
  EXPECT_EQ(in(STATUS), 0x51);
  EXPECT_EQ(in(ERR), IdeChannel::kIdnf);
}

TEST_F(IdeTest, ErrorsAbortAndOutOfRange) {
  lba28(0, 299, 2);  // the second sector is past the end
  out(CMD, 0x20);
  EXPECT_EQ(in(STATUS), 0x58);
  EXPECT_EQ(sectorData(), expected(299));
  EXPECT_EQ(in(STATUS), 0x51);
  EXPECT_EQ(in(ERR), IdeChannel::kIdnf);
  EXPECT_EQ(in(LBA0), 300 & 0xFF);  // the failing sector
  out(CMD, 0xA1);                   // IDENTIFY PACKET DEVICE: not ATAPI
  EXPECT_EQ(in(STATUS), 0x51);
  EXPECT_EQ(in(ERR), IdeChannel::kAbrt);
  out(CMD, 0xEC);  // a good command clears the error
  EXPECT_EQ(in(ERR), 0);
  EXPECT_EQ(in(STATUS), 0x58);
}

TEST_F(IdeTest, NienMasksTheLineAndSrstResets) {
  out(kCtl, 0x02);  // nIEN
  lba28(0, 1, 1);
  out(CMD, 0x20);
  EXPECT_FALSE(irqs.level[14]);
  out(kCtl, 0x00);  // unmasked: the pending interrupt shows
  EXPECT_TRUE(irqs.level[14]);
  // Selecting the other drive: INTRQ follows the selected drive.
  out(DEV, 0xB0);
  EXPECT_FALSE(irqs.level[14]);
  out(DEV, 0xA0);
  EXPECT_TRUE(irqs.level[14]);
  // SRST: busy while set, then the signature; the transfer is gone.
  out(kCtl, 0x04);
  EXPECT_EQ(ide.portRead(kCtl, 1), 0x80u);
  EXPECT_FALSE(irqs.level[14]);
  out(kCtl, 0x00);
  EXPECT_EQ(in(STATUS), 0x50);
  EXPECT_EQ(in(ERR), 0x01);
  EXPECT_EQ(in(COUNT), 1);
  EXPECT_EQ(in(LBA0), 1);
  EXPECT_EQ(in(DEV), 0x00);
  EXPECT_EQ(word(), 0);  // no data
}

TEST_F(IdeTest, StateRoundTripMidTransfer) {
  lba28(0, 40, 2);
  out(CMD, 0x20);
  for (int i = 0; i < 100; ++i) (void)word();
  StateWriter w;
  ide.saveState(w);
  IdeChannel other("ide0", kBase, kCtl, IrqLine());
  other.attach(0, master.get());
  other.attach(1, slave.get());
  StateReader r(w.data());
  Status loaded = other.loadState(r);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(r.remaining(), 0u);
  std::vector<uint8_t> rest;
  for (int i = 100; i < 256; ++i) {
    auto v = other.portRead(DATA, 2);
    rest.push_back(static_cast<uint8_t>(v));
    rest.push_back(static_cast<uint8_t>(v >> 8));
  }
  auto e = expected(40);
  EXPECT_EQ(rest, std::vector<uint8_t>(e.begin() + 200, e.end()));
  EXPECT_EQ(other.portRead(STATUS, 1), 0x58u);  // the second sector follows
  // A state with a drive where this channel has none is refused.
  IdeChannel bare("ide0", kBase, kCtl, IrqLine());
  StateReader r2(w.data());
  EXPECT_FALSE(bare.loadState(r2).ok());
}

}  // namespace
}  // namespace ttvm
