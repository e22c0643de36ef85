#include "ttvm/machine/devices/ide_channel.h"

#include <algorithm>
#include <cstring>

namespace ttvm::machine {
namespace {

constexpr unsigned kData = 0, kError = 1, kCount = 2, kLbaLow = 3, kLbaMid = 4, kLbaHigh = 5,
                   kDevice = 6, kStatus = 7;
constexpr uint8_t kNien = 0x02, kSrst = 0x04, kHob = 0x80;
constexpr uint8_t kDeviceLba = 0x40;
constexpr uint8_t kReady = IdeChannel::kDrdy | IdeChannel::kDsc;
constexpr uint32_t kSector = DiskImage::kSectorBytes;

// ATA strings: space-padded, two characters per word, the first in the high byte.
void putString(std::span<uint8_t> identify, unsigned word, unsigned words, std::string_view s) {
  for (unsigned i = 0; i < words * 2; ++i) {
    const char c = i < s.size() ? s[i] : ' ';
    identify[word * 2 + (i ^ 1)] = static_cast<uint8_t>(c);
  }
}

void putWord(std::span<uint8_t> identify, unsigned word, uint16_t v) {
  identify[word * 2] = static_cast<uint8_t>(v);
  identify[word * 2 + 1] = static_cast<uint8_t>(v >> 8);
}

}  // namespace

IdeChannel::IdeChannel(std::string name, uint16_t base, uint16_t control, IrqLine irq)
    : name_(std::move(name)), base_(base), control_(control), irq_(irq) {}

void IdeChannel::attach(unsigned drive, DiskImage* disk) {
  Drive& d = drives_[drive & 1];
  d = Drive{};
  d.disk = disk;
  if (disk != nullptr) {
    d.status = kReady;
    d.error = 0x01;  // diagnostic passed (the power-on signature)
  }
}

// ---- registers ---------------------------------------------------------------

uint32_t IdeChannel::portRead(uint16_t port, unsigned size) {
  if (port == control_) {  // alternate status: no side effect
    const Drive& d = selected();
    return d.disk != nullptr ? d.status : 0;
  }
  const unsigned reg = port - base_;
  if (reg == kData && size >= 2) {
    uint32_t v = readData();
    if (size == 4) v |= uint32_t{readData()} << 16;
    return v;
  }
  // Byte-wide registers; a wider access reads successive ones.
  uint32_t v = 0;
  for (unsigned i = 0; i < size; ++i) v |= uint32_t{readRegister((reg + i) & 7u)} << (8 * i);
  return v;
}

void IdeChannel::portWrite(uint16_t port, unsigned size, uint32_t value) {
  if (port == control_) {
    writeDeviceControl(static_cast<uint8_t>(value));
    return;
  }
  const unsigned reg = port - base_;
  if (reg == kData && size >= 2) {
    writeData(static_cast<uint16_t>(value));
    if (size == 4) writeData(static_cast<uint16_t>(value >> 16));
    return;
  }
  for (unsigned i = 0; i < size; ++i)
    writeRegister((reg + i) & 7u, static_cast<uint8_t>(value >> (8 * i)));
}

uint8_t IdeChannel::readRegister(unsigned reg) {
  Drive& d = selected();
  if (d.disk == nullptr) return reg == kData ? 0xFF : 0;
  const unsigned h = (deviceControl_ & kHob) ? 1 : 0;
  switch (reg) {
    case kData: return 0xFF;  // byte access to the data port moves nothing
    case kError: return d.error;
    case kCount: return count_[h];
    case kLbaLow: return lbaLow_[h];
    case kLbaMid: return lbaMid_[h];
    case kLbaHigh: return lbaHigh_[h];
    case kDevice: return device_;
    default:
      d.irqPending = false;
      updateIrq();
      return d.status;
  }
}

void IdeChannel::writeRegister(unsigned reg, uint8_t v) {
  deviceControl_ &= static_cast<uint8_t>(~kHob);  // any command-block write clears HOB
  auto push = [v](std::array<uint8_t, 2>& r) {
    r[1] = r[0];
    r[0] = v;
  };
  switch (reg) {
    case kData: return;
    case kError: features_ = v; return;
    case kCount: push(count_); return;
    case kLbaLow: push(lbaLow_); return;
    case kLbaMid: push(lbaMid_); return;
    case kLbaHigh: push(lbaHigh_); return;
    case kDevice:
      device_ = v;
      updateIrq();  // INTRQ follows the selected drive
      return;
    default: execute(v); return;
  }
}

void IdeChannel::writeDeviceControl(uint8_t v) {
  const bool wasReset = deviceControl_ & kSrst;
  deviceControl_ = v;
  if (v & kSrst) {
    for (Drive& d : drives_) {
      if (d.disk == nullptr) continue;
      d.status = kBsy;
      d.transfer = Transfer::kNone;
      d.irqPending = false;
    }
  } else if (wasReset) {
    resetDrives();
  }
  updateIrq();
}

// The state after a software reset: each drive ready with the ATA signature
// (count 1, LBA 1/0/0), diagnostic code 1, the master selected, no interrupt.
void IdeChannel::resetDrives() {
  for (Drive& d : drives_) {
    if (d.disk == nullptr) continue;
    d.status = kReady;
    d.error = 0x01;
    d.transfer = Transfer::kNone;
    d.irqPending = false;
    d.multiple = 0;
  }
  count_ = {1, 0};
  lbaLow_ = {1, 0};
  lbaMid_ = {0, 0};
  lbaHigh_ = {0, 0};
  device_ = 0;
}

void IdeChannel::raise(Drive& d) {
  d.irqPending = true;
  updateIrq();
}

void IdeChannel::updateIrq() {
  const bool level = selected().irqPending && !(deviceControl_ & kNien);
  if (level != irqLevel_) {
    irqLevel_ = level;
    irq_.set(level);
  }
}

// ---- commands ------------------------------------------------------------------

std::optional<uint64_t> IdeChannel::address(const Drive& d, bool lba48) const {
  if (lba48)
    return uint64_t{lbaHigh_[1]} << 40 | uint64_t{lbaMid_[1]} << 32 | uint64_t{lbaLow_[1]} << 24 |
           uint64_t{lbaHigh_[0]} << 16 | uint64_t{lbaMid_[0]} << 8 | lbaLow_[0];
  if (device_ & kDeviceLba)
    return uint64_t{device_ & 0x0Fu} << 24 | uint64_t{lbaHigh_[0]} << 16 |
           uint64_t{lbaMid_[0]} << 8 | lbaLow_[0];
  const uint64_t cylinder = uint64_t{lbaHigh_[0]} << 8 | lbaMid_[0];
  const unsigned head = device_ & 0x0Fu, sector = lbaLow_[0];
  if (sector == 0 || sector > d.sectorsPerTrack || head >= d.heads) return std::nullopt;
  return (cylinder * d.heads + head) * d.sectorsPerTrack + sector - 1;
}

void IdeChannel::setAddress(const Drive& d, uint64_t lba, bool lba48) {
  if (lba48) {
    lbaLow_ = {static_cast<uint8_t>(lba), static_cast<uint8_t>(lba >> 24)};
    lbaMid_ = {static_cast<uint8_t>(lba >> 8), static_cast<uint8_t>(lba >> 32)};
    lbaHigh_ = {static_cast<uint8_t>(lba >> 16), static_cast<uint8_t>(lba >> 40)};
  } else if (device_ & kDeviceLba) {
    lbaLow_[0] = static_cast<uint8_t>(lba);
    lbaMid_[0] = static_cast<uint8_t>(lba >> 8);
    lbaHigh_[0] = static_cast<uint8_t>(lba >> 16);
    device_ = static_cast<uint8_t>((device_ & 0xF0) | ((lba >> 24) & 0x0F));
  } else {
    const uint64_t perCylinder = uint64_t{d.heads} * d.sectorsPerTrack;
    const uint64_t cylinder = lba / perCylinder;
    const uint64_t rest = lba % perCylinder;
    lbaMid_[0] = static_cast<uint8_t>(cylinder);
    lbaHigh_[0] = static_cast<uint8_t>(cylinder >> 8);
    device_ = static_cast<uint8_t>((device_ & 0xF0) | (rest / d.sectorsPerTrack));
    lbaLow_[0] = static_cast<uint8_t>(rest % d.sectorsPerTrack + 1);
  }
}

uint64_t IdeChannel::sectorCount(bool lba48) const {
  if (lba48) {
    const uint64_t n = uint64_t{count_[1]} << 8 | count_[0];
    return n == 0 ? 65536 : n;
  }
  return count_[0] == 0 ? 256 : count_[0];
}

void IdeChannel::complete(Drive& d) {
  d.transfer = Transfer::kNone;
  d.status = kReady;
  raise(d);
}

void IdeChannel::fail(Drive& d, uint8_t error, uint64_t lba) {
  d.transfer = Transfer::kNone;
  d.error = error;
  d.status = kReady | kErr;
  if (error == kIdnf) setAddress(d, lba, d.lba48);
  raise(d);
}

void IdeChannel::abort(Drive& d) {
  fail(d, kAbrt, 0);
}

void IdeChannel::execute(uint8_t command) {
  Drive& d = selected();
  if (command == 0x90) {  // EXECUTE DEVICE DIAGNOSTIC: both drives, reported by the master
    resetDrives();
    if (drives_[0].disk != nullptr) raise(drives_[0]);
    return;
  }
  if (d.disk == nullptr || (d.status & kBsy)) return;  // nobody there, or in reset
  d.command = command;
  d.error = 0;
  d.status = kReady;
  d.transfer = Transfer::kNone;
  d.lba48 = false;
  const uint64_t sectors = d.disk->sectors();
  switch (command) {
    case 0xEC: identify(d); return;
    case 0x20:
    case 0x21:
    case 0x24:
    case 0xC4:
    case 0x29:
    case 0x30:
    case 0x31:
    case 0x34:
    case 0xC5:
    case 0x39: {
      const bool lba48 = command == 0x24 || command == 0x29 || command == 0x34 || command == 0x39;
      const bool multiple =
          command == 0xC4 || command == 0x29 || command == 0xC5 || command == 0x39;
      const bool write = command >= 0x30 && command != 0xC4 && command != 0x29;
      if (multiple && d.multiple == 0) return abort(d);
      d.lba48 = lba48;
      const auto lba = address(d, lba48);
      if (!lba) return fail(d, kIdnf, 0);
      startTransfer(d, write ? Transfer::kOut : Transfer::kIn, *lba, sectorCount(lba48),
                    multiple ? d.multiple : 1, lba48);
      return;
    }
    case 0xC6: {  // SET MULTIPLE MODE: a power of two up to kMaxMultiple, or 0 (off)
      const uint8_t n = count_[0];
      if (n > kMaxMultiple || (n & (n - 1)) != 0) return abort(d);
      d.multiple = n;
      return complete(d);
    }
    case 0x91:  // INITIALIZE DEVICE PARAMETERS: the CHS translation
      if (count_[0] == 0) return abort(d);
      d.sectorsPerTrack = count_[0];
      d.heads = static_cast<uint8_t>((device_ & 0x0F) + 1);
      return complete(d);
    case 0x40:
    case 0x41:
    case 0x42: {  // READ VERIFY SECTORS (EXT): check the range only
      const bool lba48 = command == 0x42;
      d.lba48 = lba48;
      const auto lba = address(d, lba48);
      if (!lba || *lba + sectorCount(lba48) > sectors) return fail(d, kIdnf, lba.value_or(0));
      return complete(d);
    }
    case 0xF8:  // READ NATIVE MAX ADDRESS
      if (!(device_ & kDeviceLba)) return abort(d);
      setAddress(d, std::min<uint64_t>(sectors, 1ull << 28) - 1, false);
      return complete(d);
    case 0x27:  // READ NATIVE MAX ADDRESS EXT
      d.lba48 = true;
      setAddress(d, sectors - 1, true);
      return complete(d);
    case 0xEF:  // SET FEATURES: transfer mode, write cache, look-ahead, defaults
      switch (features_) {
        case 0x02:
        case 0x03:
        case 0x55:
        case 0x66:
        case 0x82:
        case 0xAA:
        case 0xCC: return complete(d);
        default: return abort(d);
      }
    case 0xE5:  // CHECK POWER MODE: active
      count_[0] = 0xFF;
      return complete(d);
    case 0x70:  // SEEK
    case 0xE7:  // FLUSH CACHE
    case 0xEA:  // FLUSH CACHE EXT
    case 0xE0:  // STANDBY IMMEDIATE
    case 0xE1:  // IDLE IMMEDIATE
    case 0xE2:  // STANDBY
    case 0xE3:  // IDLE
      return complete(d);
    default:
      if (command >= 0x10 && command <= 0x1F) return complete(d);  // RECALIBRATE
      return abort(d);  // incl. IDENTIFY PACKET DEVICE, PACKET, DEVICE RESET (ATAPI only)
  }
}

void IdeChannel::startTransfer(Drive& d, Transfer t, uint64_t lba, uint64_t count, uint32_t block,
                               bool lba48) {
  d.transfer = t;
  d.fromDisk = true;
  d.lba48 = lba48;
  d.blockSectors = block;
  d.lba = lba;
  d.remaining = count;
  if (!nextBlock(d)) return;
  if (t == Transfer::kIn) raise(d);  // a write's first DRQ comes without an interrupt
}

bool IdeChannel::nextBlock(Drive& d) {
  const uint64_t n = std::min<uint64_t>(d.remaining, d.blockSectors);
  for (uint64_t i = 0; i < n; ++i) {
    if (d.lba + i >= d.disk->sectors()) {
      fail(d, kIdnf, d.lba + i);
      return false;
    }
    if (d.transfer == Transfer::kIn &&
        !d.disk->read(d.lba + i, std::span<uint8_t>(d.buffer).subspan(i * kSector, kSector))) {
      // A host read error: the drive reports an uncorrectable data error.
      fail(d, 0x40, d.lba + i);
      return false;
    }
  }
  // A write block starts zeroed, so that the state (saved with the block) is
  // a function of the guest's writes, not of what a previous block left.
  if (d.transfer == Transfer::kOut) std::fill_n(d.buffer.begin(), n * kSector, uint8_t{0});
  d.remaining -= n;
  d.bufferBytes = static_cast<uint32_t>(n * kSector);
  d.position = 0;
  d.status = kReady | kDrq;
  return true;
}

uint16_t IdeChannel::readData() {
  Drive& d = selected();
  if (d.disk == nullptr || d.transfer != Transfer::kIn) return d.disk == nullptr ? 0xFFFF : 0;
  const uint16_t v = static_cast<uint16_t>(d.buffer[d.position] | d.buffer[d.position + 1] << 8);
  d.position += 2;
  if (d.position < d.bufferBytes) return v;
  // The block is done: the next one with an interrupt, or the end.
  if (d.fromDisk) {
    const uint64_t last = d.lba + d.bufferBytes / kSector - 1;
    d.lba += d.bufferBytes / kSector;
    if (d.remaining > 0) {
      if (nextBlock(d)) raise(d);
      return v;
    }
    setAddress(d, last, d.lba48);
  }
  d.transfer = Transfer::kNone;
  d.status = kReady;
  return v;
}

void IdeChannel::writeData(uint16_t v) {
  Drive& d = selected();
  if (d.disk == nullptr || d.transfer != Transfer::kOut) return;
  d.buffer[d.position] = static_cast<uint8_t>(v);
  d.buffer[d.position + 1] = static_cast<uint8_t>(v >> 8);
  d.position += 2;
  if (d.position < d.bufferBytes) return;
  const uint64_t n = d.bufferBytes / kSector;
  for (uint64_t i = 0; i < n; ++i)
    d.disk->write(d.lba + i, std::span<const uint8_t>(d.buffer).subspan(i * kSector, kSector));
  const uint64_t last = d.lba + n - 1;
  d.lba += n;
  if (d.remaining > 0) {
    if (nextBlock(d)) raise(d);
    return;
  }
  setAddress(d, last, d.lba48);
  complete(d);
}

// IDENTIFY DEVICE (ATA-7 layout; the fields QEMU's ide_identify fills).
void IdeChannel::identify(Drive& d) {
  std::span<uint8_t> id(d.buffer.data(), kSector);
  std::fill(id.begin(), id.end(), 0);
  const uint64_t total = d.disk->sectors();
  // The default geometry: 16 heads, 63 sectors per track, at most 16383
  // cylinders (and at least 2, as QEMU guesses it).
  const uint64_t cylinders = std::clamp<uint64_t>(total / (16 * 63), 2, 16383);
  const uint64_t chsCapacity =
      std::min<uint64_t>(total, cylinders * d.heads * uint64_t{d.sectorsPerTrack});
  const uint64_t lba28 = std::min<uint64_t>(total, 0x0FFFFFFF);
  const bool slave = &d == &drives_[1];
  putWord(id, 0, 0x0040);  // fixed device
  putWord(id, 1, static_cast<uint16_t>(cylinders));
  putWord(id, 3, 16);
  putWord(id, 4, 512 * 63);
  putWord(id, 5, 512);
  putWord(id, 6, 63);
  putString(id, 10, 10, slave ? "TTVM0000000000000002" : "TTVM0000000000000001");
  putWord(id, 20, 3);    // buffer type
  putWord(id, 21, 512);  // buffer size in sectors
  putWord(id, 22, 4);    // ECC bytes
  putString(id, 23, 4, "1.0");
  putString(id, 27, 20, "TTVM HARDDISK");
  putWord(id, 47, 0x8000 | kMaxMultiple);
  putWord(id, 48, 1);       // 32-bit PIO
  putWord(id, 49, 1 << 9);  // LBA (no DMA)
  putWord(id, 51, 0x200);   // PIO timing mode 2
  putWord(id, 52, 0x200);
  putWord(id, 53, 0x7);  // words 54-58, 64-70 and 88 are valid
  putWord(id, 54, static_cast<uint16_t>(cylinders));
  putWord(id, 55, d.heads);
  putWord(id, 56, d.sectorsPerTrack);
  putWord(id, 57, static_cast<uint16_t>(chsCapacity));
  putWord(id, 58, static_cast<uint16_t>(chsCapacity >> 16));
  putWord(id, 59, d.multiple != 0 ? static_cast<uint16_t>(0x100 | d.multiple) : 0);
  putWord(id, 60, static_cast<uint16_t>(lba28));
  putWord(id, 61, static_cast<uint16_t>(lba28 >> 16));
  putWord(id, 64, 0x03);  // PIO modes 3 and 4
  for (unsigned w = 65; w <= 68; ++w) putWord(id, w, 120);
  putWord(id, 80, 0xF0);                                   // ATA-4 to ATA-7
  putWord(id, 81, 0x16);                                   // minor version
  putWord(id, 82, 1 << 14);                                // NOP
  putWord(id, 83, 1 << 14 | 1 << 13 | 1 << 12 | 1 << 10);  // FLUSH EXT, FLUSH, LBA48
  putWord(id, 84, 1 << 14);
  putWord(id, 85, 1 << 14);
  putWord(id, 86, 1 << 13 | 1 << 12 | 1 << 10);
  putWord(id, 87, 1 << 14);
  putWord(id, 93, slave ? 0x4B00 : 0x407F);  // hardware reset result (ATA-7)
  for (unsigned w = 0; w < 4; ++w) putWord(id, 100 + w, static_cast<uint16_t>(total >> (16 * w)));
  d.transfer = Transfer::kIn;
  d.fromDisk = false;
  d.bufferBytes = kSector;
  d.position = 0;
  d.remaining = 0;
  d.status = kReady | kDrq;
  raise(d);
}

// ---- state ---------------------------------------------------------------------

void IdeChannel::saveState(StateWriter& out) const {
  for (uint8_t r : {features_, device_, deviceControl_, count_[0], count_[1], lbaLow_[0],
                    lbaLow_[1], lbaMid_[0], lbaMid_[1], lbaHigh_[0], lbaHigh_[1]})
    out.u8(r);
  out.boolean(irqLevel_);
  for (const Drive& d : drives_) {
    out.boolean(d.disk != nullptr);
    out.u64(d.disk != nullptr ? d.disk->sectors() : 0);
    for (uint8_t r : {d.status, d.error, d.command, d.multiple, d.heads, d.sectorsPerTrack})
      out.u8(r);
    out.boolean(d.irqPending);
    out.u8(static_cast<uint8_t>(d.transfer));
    out.boolean(d.fromDisk);
    out.boolean(d.lba48);
    out.u32(d.blockSectors);
    out.u32(d.position);
    out.u64(d.lba);
    out.u64(d.remaining);
    out.bytes(std::span<const uint8_t>(d.buffer).first(
        d.transfer == Transfer::kNone ? 0 : d.bufferBytes));
  }
}

Status IdeChannel::loadState(StateReader& in) {
  for (uint8_t* r : {&features_, &device_, &deviceControl_, &count_[0], &count_[1], &lbaLow_[0],
                     &lbaLow_[1], &lbaMid_[0], &lbaMid_[1], &lbaHigh_[0], &lbaHigh_[1]})
    *r = in.u8();
  irqLevel_ = in.boolean();
  for (Drive& d : drives_) {
    const bool present = in.boolean();
    const uint64_t sectors = in.u64();
    if (!in.failed() && present != (d.disk != nullptr))
      in.fail(present ? "a drive is present in the state but not attached here"
                      : "a drive is attached here but absent in the state");
    if (!in.failed() && present && sectors != d.disk->sectors())
      in.fail("the drive had " + std::to_string(sectors) + " sectors, the attached disk has " +
              std::to_string(d.disk->sectors()));
    for (uint8_t* r : {&d.status, &d.error, &d.command, &d.multiple, &d.heads, &d.sectorsPerTrack})
      *r = in.u8();
    d.irqPending = in.boolean();
    const uint8_t transfer = in.u8();
    d.fromDisk = in.boolean();
    d.lba48 = in.boolean();
    d.blockSectors = in.u32();
    d.position = in.u32();
    d.lba = in.u64();
    d.remaining = in.u64();
    const std::vector<uint8_t> block = in.bytes(d.buffer.size());
    if (in.failed()) break;
    if (transfer > static_cast<uint8_t>(Transfer::kOut) || d.blockSectors == 0 ||
        d.blockSectors > kMaxMultiple || block.size() % 2 != 0 ||
        // (the position of a finished transfer stays where it ended; its block is not saved)
        (transfer != 0 && d.position > block.size()) || (transfer != 0 && block.empty()) ||
        d.heads == 0 || d.sectorsPerTrack == 0) {
      in.fail("IDE drive state out of range");
      break;
    }
    d.transfer = static_cast<Transfer>(transfer);
    d.bufferBytes = static_cast<uint32_t>(block.size());
    std::copy(block.begin(), block.end(), d.buffer.begin());
  }
  return in.status();
}

}  // namespace ttvm::machine
