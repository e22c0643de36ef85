// One channel of a PC's ATA/IDE controller (primary: ports 0x1F0-0x1F7,
// control 0x3F6, IRQ 14; secondary: 0x170-0x177, 0x376, IRQ 15) with a
// master and a slave drive, each a raw DiskImage or absent. PIO only, as
// QEMU's ISA IDE serves it.
//
// Registers (command block at base + 0..7, control block at `control`):
//  0 data (16-bit; a 32-bit access moves two words), 1 error / features,
//  2 sector count, 3-5 LBA low/mid/high, 6 device (bit 4 selects the slave,
//  bit 6 LBA), 7 status (reading it clears the selected drive's interrupt) /
//  command; control: alternate status (no side effect) / device control
//  (bit 1 nIEN masks INTRQ, bit 2 SRST resets both drives, bit 7 HOB reads
//  the previous ("high order") values of registers 2-5).
// Registers 2-5 are two deep, as LBA48 needs: a write pushes the old value
// to the high-order byte. Taskfile writes go to both drives (they share
// the registers here); the command, status and error belong to the selected
// drive. An absent selected drive reads 0 in every register and ignores
// commands (QEMU's behaviour, which BIOSes and Linux probe with).
//
// Commands: IDENTIFY DEVICE; READ/WRITE SECTORS (0x20/0x21, 0x30/0x31), READ/
// WRITE MULTIPLE (0xC4/0xC5, after SET MULTIPLE MODE 0xC6), their LBA48 forms
// (0x24/0x34, 0x29/0x39); LBA28, LBA48 and CHS addressing (CHS through the
// current geometry, INITIALIZE DEVICE PARAMETERS 0x91 changes it); READ
// VERIFY, SEEK, RECALIBRATE, FLUSH CACHE (EXT), CHECK POWER MODE, the idle/
// standby commands, SET FEATURES (transfer mode, caches), READ NATIVE MAX
// ADDRESS (EXT), EXECUTE DEVICE DIAGNOSTIC. Anything else aborts (ERR, error
// ABRT). An address outside the disk ends the command with error IDNF.
//
// Timing: a command completes inside the write that issues it (the disk is
// as fast as the UART's transmitter): status never reads BSY after a
// command, a read has its first block ready with DRQ and an interrupt at
// once, a write asks for its first block with DRQ (no interrupt), and each
// later block, or the end of a write, raises the interrupt when the
// previous block's last word moves. Everything depends only on the guest's
// accesses, so recordings are deterministic.
//
// Writes go to the DiskImage's in-memory overlay; the image file is never
// written. The overlay is not part of saveState() (the trace does not need
// it: what the guest read is in it as the data-port reads); replay
// checkpoints hold it apart (Machine::DeviceCheckpoint).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "ttvm/machine/device.h"
#include "ttvm/machine/disk_image.h"
#include "ttvm/machine/irq.h"

namespace ttvm::machine {

class IdeChannel final : public Device, public PortDevice {
 public:
  static constexpr uint16_t kPrimaryBase = 0x1F0, kPrimaryControl = 0x3F6;
  static constexpr uint16_t kSecondaryBase = 0x170, kSecondaryControl = 0x376;
  static constexpr unsigned kPrimaryIrq = 14, kSecondaryIrq = 15;
  static constexpr unsigned kMaxMultiple = 16;  // sectors per DRQ block (READ/WRITE MULTIPLE)

  // Status and error register bits.
  static constexpr uint8_t kBsy = 0x80, kDrdy = 0x40, kDf = 0x20, kDsc = 0x10, kDrq = 0x08,
                           kErr = 0x01;
  static constexpr uint8_t kAbrt = 0x04, kIdnf = 0x10;

  IdeChannel(std::string name, uint16_t base, uint16_t control, IrqLine irq);

  // Puts `disk` (not owned; may be null) behind drive 0 (master) or 1 (slave).
  void attach(unsigned drive, DiskImage* disk);
  const DiskImage* disk(unsigned drive) const { return drives_[drive].disk; }

  std::string_view name() const override { return name_; }
  void saveState(StateWriter& out) const override;
  Status loadState(StateReader& in) override;

  uint32_t portRead(uint16_t port, unsigned size) override;
  void portWrite(uint16_t port, unsigned size, uint32_t value) override;

  bool irqLevel() const { return irqLevel_; }

 private:
  enum class Transfer : uint8_t { kNone, kIn, kOut };
  struct Drive {
    DiskImage* disk = nullptr;
    uint8_t status = 0, error = 0, command = 0;
    bool irqPending = false;
    // PIO transfer in progress: direction, the data block and the position in
    // it, the sectors still to move after this block and where they start.
    Transfer transfer = Transfer::kNone;
    bool fromDisk = false;  // the block is disk sectors (not IDENTIFY data)
    bool lba48 = false;
    uint32_t blockSectors = 1;  // sectors per DRQ block of this command
    uint32_t bufferBytes = 0, position = 0;
    uint64_t lba = 0;        // first sector of the current block
    uint64_t remaining = 0;  // sectors after the current block
    std::array<uint8_t, kMaxMultiple * DiskImage::kSectorBytes> buffer{};
    // Settings.
    uint8_t multiple = 0;                      // SET MULTIPLE MODE (0: READ/WRITE MULTIPLE abort)
    uint8_t heads = 16, sectorsPerTrack = 63;  // CHS translation
  };

  Drive& selected() { return drives_[(device_ >> 4) & 1]; }
  const Drive& selected() const { return drives_[(device_ >> 4) & 1]; }
  uint8_t readRegister(unsigned reg);
  void writeRegister(unsigned reg, uint8_t v);
  uint16_t readData();
  void writeData(uint16_t v);
  void writeDeviceControl(uint8_t v);
  void execute(uint8_t command);
  void complete(Drive& d);
  void abort(Drive& d);
  void fail(Drive& d, uint8_t error, uint64_t lba);
  void raise(Drive& d);
  void updateIrq();
  void resetDrives();
  // The command's start sector from the taskfile (LBA28, LBA48 or CHS);
  // nullopt for an invalid CHS address.
  std::optional<uint64_t> address(const Drive& d, bool lba48) const;
  void setAddress(const Drive& d, uint64_t lba, bool lba48);
  uint64_t sectorCount(bool lba48) const;
  void startTransfer(Drive& d, Transfer t, uint64_t lba, uint64_t count, uint32_t block,
                     bool lba48);
  // Loads (reads) or prepares (writes) the next block; false if it failed.
  bool nextBlock(Drive& d);
  void identify(Drive& d);

  std::string name_;
  uint16_t base_, control_;
  IrqLine irq_;
  std::array<Drive, 2> drives_;
  // The shared taskfile: [0] the current value, [1] the previous (HOB).
  uint8_t features_ = 0, device_ = 0, deviceControl_ = 0;
  std::array<uint8_t, 2> count_{1, 0}, lbaLow_{1, 0}, lbaMid_{}, lbaHigh_{};
  bool irqLevel_ = false;
};

}  // namespace ttvm::machine
