#include "ttvm/machine/machine.h"

#include <sys/mman.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "ttvm/base/assert.h"
#include "ttvm/machine/devices/acpi_pm.h"
#include "ttvm/machine/devices/cga_text.h"
#include "ttvm/machine/devices/cmos_rtc.h"
#include "ttvm/machine/devices/debug_console.h"
#include "ttvm/machine/devices/debug_exit.h"
#include "ttvm/machine/devices/fw_cfg.h"
#include "ttvm/machine/devices/ide_channel.h"
#include "ttvm/machine/devices/io_apic.h"
#include "ttvm/machine/devices/local_apic.h"
#include "ttvm/machine/devices/pc_testdev.h"
#include "ttvm/machine/devices/pci_host.h"
#include "ttvm/machine/devices/pic_8259.h"
#include "ttvm/machine/devices/pit_8254.h"
#include "ttvm/machine/devices/pvpanic.h"
#include "ttvm/machine/devices/system_control.h"
#include "ttvm/machine/devices/uart_16550.h"
#include "ttvm/machine/disk_image.h"
#include "ttvm/machine/firmware.h"

namespace ttvm::machine {
namespace {

constexpr char kDeviceStateMagic[8] = {'T', 'T', 'V', 'M', 'D', 'E', 'V', '1'};
constexpr uint32_t kDeviceStateVersion = 1;
// Room for the whole machine's device state in one allocation (99.7 KB: the
// pc-testdev's 64 KiB memory, the CGA's 32 KiB text memory, 3 KB for the
// rest). It is saved at every device digest (each 64 Ki steps); grown by
// doubling from empty, each save copied it 8 times and faulted in fresh heap
// pages (182,000 page faults in a 1e9-step replay).
constexpr size_t kDeviceStateReserve = 128 << 10;

// The devices this build puts in every machine, as the trace header lists
// them (a trace from a machine with other devices is refused by fromTraceHeader).
std::vector<std::string> deviceList(uint64_t nsPerStep) {
  return {"clock:ns-per-step=" + std::to_string(nsPerStep),
          "pic@0x20,0xa0,elcr@0x4d0",
          "pit@0x40,irq0",
          "rtc@0x70,irq8",
          "lapic@0xfee00000",
          "ioapic@0xfec00000",
          "uart16550@0x3f8,irq4",
          "debugcon@0xe9",
          "isa-debug-exit@0xf4,size=4",
          "pvpanic@0x505",
          "i8042@0x60,irq1,irq12",
          "reset-control@0xcf9",
          "port92@0x92",
          "post@0x80",
          "shutdown@0x8900",
          "fw_cfg@0x510",
          "pc-testdev@0xe0,0x2000,0x4000,mem@0xff000000",
          "acpi-pm@0x600",
          "ide@0x1f0,0x3f6,irq14",
          "ide@0x170,0x376,irq15",
          "pci-host@0xcf8,0xcfc,i440fx@00.0",
          "cga-text@0x3d4,mem@0xb8000"};
}

// Entries earlier versions of this ttvm wrote for a device that is still at
// the same ports with the same memory map, under a name that has changed
// since: an old-mode trace (every answer in the trace) lists them.
// "i8042@0x60": the keyboard controller before it raised IRQ 1 and 12
// (decf9f3); traces recorded before then, tests/data/recorded-v1.0-demo.ttvm
// among them, name it so.
const std::vector<std::string> kRetiredDeviceEntries = {"i8042@0x60"};

// The device-list entries naming the attached disks (not devices of their
// own: the replayed machine has none).
constexpr std::string_view kDiskEntryPrefix = "disk@";

// Whether the local APIC's IRR holds a vector (it accepts none below 16).
bool apicIrrNonEmpty(const LocalApic& apic) {
  for (unsigned v = 16; v < 256; ++v)
    if (apic.irrBit(static_cast<uint8_t>(v))) return true;
  return false;
}

// Whether an MMIO access reaches the registers of the local APIC (its page
// where IA32_APIC_BASE puts it now) or the I/O APIC.
bool reachesApic(const LocalApic& lapic, uint64_t addr) {
  const uint64_t page = addr & ~uint64_t{0xFFF};
  return page == lapic.mmioWindow() || page == IoApic::kBase;
}

}  // namespace

Machine::Machine(const MachineOptions& options)
    : options_(options),
      clock_(options.nsPerStep),
      rngState_(options.rngSeed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull) {}

Machine::~Machine() {
  if (ramBase_ != nullptr) munmap(ramBase_, ramBytes_);
}

Status Machine::checkRamSize(uint64_t ramBytes) {
  if (ramBytes < (2u << 20))
    return makeError("RAM size " + std::to_string(ramBytes) + " bytes is below 2 MiB");
  if (ramBytes > firmware::kMaxRamBytes)
    return makeError("RAM size " + std::to_string(ramBytes >> 20) +
                     " MiB is above the 3 GiB that fit below the MMIO region");
  if (ramBytes % kPageSize != 0)
    return makeError("RAM size " + std::to_string(ramBytes) + " is not a multiple of 4 KiB");
  return {};
}

Result<std::unique_ptr<Machine>> Machine::create(const MachineOptions& options) {
  TTVM_TRY(checkRamSize(options.ramBytes));
  if (options.cpuModel.tscFrequencyHz == 0) return makeError("CPU model has a TSC frequency of 0");
  std::unique_ptr<Machine> m(new Machine(options));
  void* p = mmap(nullptr, options.ramBytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    return makeError("cannot allocate " + std::to_string(options.ramBytes >> 20) +
                     " MiB of guest RAM: " + std::strerror(errno));
  m->ramBase_ = static_cast<uint8_t*>(p);
  m->ramBytes_ = options.ramBytes;
  firmware::writeFirmware(m->ram(), options.cpuModel);
  TTVM_TRY(m->wire());
  TTVM_TRY(m->setReplayedDevices(m->wholeMachine()));
  return m;
}

Result<std::unique_ptr<Machine>> Machine::fromTraceHeader(const TraceHeader& header) {
  MachineOptions o;
  o.ramBytes = header.machine.ramBytes;
  o.startClockUnixNs = header.machine.startClockUnixNs;
  o.cmdline = header.machine.cmdline;
  o.cpuModel = header.cpuModel;
  o.nsPerStep = 0;
  const std::string kClock = "clock:ns-per-step=";
  for (const std::string& d : header.machine.devices) {
    if (d.rfind(kClock, 0) == 0)
      o.nsPerStep = std::strtoull(d.c_str() + kClock.size(), nullptr, 10);
  }
  if (o.nsPerStep == 0)
    return makeError("trace header: the machine's device list has no valid '" + kClock +
                     "N' entry");
  if (header.machine.tscHz != o.cpuModel.tscFrequencyHz)
    return makeError("trace header: machine TSC frequency " + std::to_string(header.machine.tscHz) +
                     " Hz differs from the CPU model's " +
                     std::to_string(o.cpuModel.tscFrequencyHz) + " Hz");
  std::vector<std::string> expected = deviceList(o.nsPerStep);
  std::vector<std::string> devices;
  for (const std::string& d : header.machine.devices)
    if (d.rfind(kDiskEntryPrefix, 0) != 0) devices.push_back(d);
  if (header.replayedDevices.empty()) {
    // Old mode (1.0, 1.1): no device runs, every answer is in the trace, so
    // only the memory map matters, which every device list of this ttvm's
    // history shares. A device this build does not know is still refused:
    // it might have mapped memory.
    for (const std::string& d : devices)
      if (std::find(expected.begin(), expected.end(), d) == expected.end() &&
          std::find(kRetiredDeviceEntries.begin(), kRetiredDeviceEntries.end(), d) ==
              kRetiredDeviceEntries.end())
        return makeError("trace header: device '" + d + "' is unknown to this ttvm");
  } else if (devices != expected) {
    for (size_t i = 0; i < std::max(expected.size(), devices.size()); ++i) {
      std::string have = i < devices.size() ? devices[i] : "(none)";
      std::string want = i < expected.size() ? expected[i] : "(none)";
      if (have != want)
        return makeError("trace header: device " + std::to_string(i) + " is '" + have +
                         "' but this ttvm builds '" + want + "'");
    }
  }
  auto m = create(o);
  if (!m.ok()) return m;
  TTVM_TRY((*m)->setReplayedDevices(header.replayedDevices));
  // The recording reported the guest's unclaimed accesses and an APIC page
  // moved into RAM as they happened; a replay of the same run stays quiet.
  (*m)->ports().setReportStream(nullptr);
  (*m)->mmio().setReportStream(nullptr);
  return m;
}

Status Machine::wire() {
  IrqSink* irqs = this;
  pic_ = std::make_unique<Pic8259Pair>();
  lapic_ = std::make_unique<LocalApic>(&clock_, options_.cpuModel.tscFrequencyHz);
  ioapic_ = std::make_unique<IoApic>(lapic_.get());
  lapic_->setEoiListener([io = ioapic_.get()](uint8_t v) { io->endOfInterrupt(v); });
  pit_ = std::make_unique<Pit8254>(IrqLine(irqs, 0), &clock_);
  rtc_ = std::make_unique<CmosRtc>(IrqLine(irqs, 8), &clock_, options_.startClockUnixNs,
                                   options_.ramBytes);
  com1_ = std::make_unique<Uart16550>("com1", &consoleForward_, IrqLine(irqs, Uart16550::kCom1Irq),
                                      &clock_);
  debugcon_ = std::make_unique<DebugConsole>(&consoleForward_);
  debugExit_ = std::make_unique<DebugExit>(this);
  pvpanic_ = std::make_unique<PvPanic>(this);
  i8042_ =
      std::make_unique<KeyboardController>(this, IrqLine(irqs, KeyboardController::kKeyboardIrq),
                                           IrqLine(irqs, KeyboardController::kAuxIrq));
  resetControl_ = std::make_unique<ResetControl>(this);
  port92_ = std::make_unique<SystemControlA>(this);
  post_ = std::make_unique<PostPort>();
  shutdown_ = std::make_unique<ShutdownPort>(this);
  fwCfg_ = std::make_unique<FwCfg>();
  testDev_ = std::make_unique<PcTestDev>(irqs);
  acpiPm_ = std::make_unique<AcpiPm>(this, &clock_);
  ide0_ =
      std::make_unique<IdeChannel>("ide0", IdeChannel::kPrimaryBase, IdeChannel::kPrimaryControl,
                                   IrqLine(irqs, IdeChannel::kPrimaryIrq));
  ide1_ = std::make_unique<IdeChannel>("ide1", IdeChannel::kSecondaryBase,
                                       IdeChannel::kSecondaryControl,
                                       IrqLine(irqs, IdeChannel::kSecondaryIrq));
  pciHost_ = std::make_unique<PciHost>();
  cga_ = std::make_unique<CgaText>();

  TTVM_TRY(ports_.map(0x20, 2, pic_.get(), "pic-master"));
  TTVM_TRY(ports_.map(0xA0, 2, pic_.get(), "pic-slave"));
  TTVM_TRY(ports_.map(0x4D0, 2, pic_.get(), "elcr"));
  TTVM_TRY(ports_.map(0x40, 4, pit_.get(), "pit"));
  TTVM_TRY(ports_.map(0x61, 1, pit_.get(), "port61"));
  TTVM_TRY(ports_.map(0x70, 2, rtc_.get(), "rtc"));
  TTVM_TRY(ports_.map(Uart16550::kCom1, 8, com1_.get(), "com1"));
  TTVM_TRY(ports_.map(DebugConsole::kPort, 1, debugcon_.get(), "debugcon"));
  TTVM_TRY(ports_.map(DebugExit::kPort, DebugExit::kPorts, debugExit_.get(), "isa-debug-exit"));
  TTVM_TRY(ports_.map(PvPanic::kPort, 1, pvpanic_.get(), "pvpanic"));
  TTVM_TRY(ports_.map(0x60, 1, i8042_.get(), "i8042-data"));
  TTVM_TRY(ports_.map(0x64, 1, i8042_.get(), "i8042-command"));
  TTVM_TRY(ports_.map(ResetControl::kPort, 1, resetControl_.get(), "reset-control"));
  TTVM_TRY(ports_.map(SystemControlA::kPort, 1, port92_.get(), "port92"));
  TTVM_TRY(ports_.map(PostPort::kPort, 1, post_.get(), "post"));
  TTVM_TRY(ports_.map(ShutdownPort::kPort, 1, shutdown_.get(), "shutdown"));
  TTVM_TRY(ports_.map(FwCfg::kSelectorPort, 2, fwCfg_.get(), "fw_cfg"));
  TTVM_TRY(ports_.map(PcTestDev::kLatchPort, 4, testDev_.get(), "pc-testdev"));
  TTVM_TRY(ports_.map(PcTestDev::kIrqPort, PcTestDev::kIrqLines, testDev_.get(), "pc-testdev-irq"));
  TTVM_TRY(ports_.map(PcTestDev::kFlushPort, 4, testDev_.get(), "pc-testdev-flush"));
  TTVM_TRY(ports_.map(AcpiPm::kBase, AcpiPm::kPorts, acpiPm_.get(), "acpi-pm"));
  TTVM_TRY(ports_.map(IdeChannel::kPrimaryBase, 8, ide0_.get(), "ide0"));
  TTVM_TRY(ports_.map(IdeChannel::kPrimaryControl, 1, ide0_.get(), "ide0-control"));
  TTVM_TRY(ports_.map(IdeChannel::kSecondaryBase, 8, ide1_.get(), "ide1"));
  TTVM_TRY(ports_.map(IdeChannel::kSecondaryControl, 1, ide1_.get(), "ide1-control"));
  // CONFIG_ADDRESS is the dword at 0xCF8; 0xCF9 is the reset control register.
  TTVM_TRY(ports_.map(PciHost::kAddressPort, 1, pciHost_.get(), "pci-config-address"));
  TTVM_TRY(ports_.map(PciHost::kAddressPort + 2, 2, pciHost_.get(), "pci-config-address-high"));
  TTVM_TRY(ports_.map(PciHost::kDataPort, 4, pciHost_.get(), "pci-config-data"));
  TTVM_TRY(ports_.map(CgaText::kCrtcIndex, 2, cga_.get(), "cga-crtc"));
  TTVM_TRY(mmio_.mapMovable(0x1000, lapic_.get(), "lapic"));
  TTVM_TRY(mmio_.map(IoApic::kBase, 0x1000, ioapic_.get(), "ioapic"));
  TTVM_TRY(mmio_.map(PcTestDev::kMemBase, PcTestDev::kMemSize, testDev_.get(), "pc-testdev-mem"));
  TTVM_TRY(mmio_.map(CgaText::kMemBase, CgaText::kMemSize, cga_.get(), "cga-text-mem"));

  devices_ = {pic_.get(),          lapic_.get(),    ioapic_.get(),    pit_.get(),      rtc_.get(),
              com1_.get(),         debugcon_.get(), debugExit_.get(), pvpanic_.get(),  i8042_.get(),
              resetControl_.get(), port92_.get(),   post_.get(),      shutdown_.get(), fwCfg_.get(),
              testDev_.get(),      acpiPm_.get()};
  devices_.push_back(ide0_.get());
  devices_.push_back(ide1_.get());
  devices_.push_back(pciHost_.get());
  devices_.push_back(cga_.get());
  timed_ = {pit_.get(), rtc_.get(), lapic_.get(), com1_.get()};

  // The state a PC BIOS leaves: PICs at vector bases 0x08/0x70 with IRQ 0, 1,
  // 2 (cascade) and 6 open as SeaBIOS leaves them; PIT channel 0 at 18.2 Hz.
  pic_->biosInit(0x08, 0x70, 0xB8, 0x8F);
  pit_->biosInit();
  configureFwCfg();
  clock_.clearReschedule();
  updateEventHint(ApicChange::kAny);
  return {};
}

void Machine::configureFwCfg() {
  FwCfg& f = *fwCfg_;
  f.setItem(0x00, {'Q', 'E', 'M', 'U'});
  f.setItemU32(0x01, 1);  // traditional interface only (no DMA)
  f.setItem(0x02, std::vector<uint8_t>(16, 0));
  f.setItemU64(0x03, options_.ramBytes);
  f.setItemU16(0x04, 1);                         // nographic
  f.setItemU16(0x05, 1);                         // nb_cpus
  f.setItem(0x0D, std::vector<uint8_t>(16, 0));  // NUMA: 0 nodes, one CPU's entry
  f.setItemU16(0x0E, 0);                         // boot menu off
  f.setItemU16(0x0F, 1);                         // max_cpus
  std::vector<uint8_t> cmd(options_.cmdline.begin(), options_.cmdline.end());
  cmd.push_back(0);
  f.setItemU32(0x14, static_cast<uint32_t>(cmd.size()));
  f.setItem(0x15, std::move(cmd));
  f.setItem(0x8002, {1});  // IRQ0 override present
  auto map = firmware::e820Map(options_.ramBytes);
  std::vector<uint8_t> legacy;
  auto n = static_cast<uint32_t>(map.size());
  for (int i = 0; i < 4; ++i) legacy.push_back(static_cast<uint8_t>(n >> (8 * i)));
  auto entries = firmware::encodeE820(map);
  legacy.insert(legacy.end(), entries.begin(), entries.end());
  f.setItem(0x8003, std::move(legacy));
  f.addFile("etc/e820", entries);
  f.addFile("etc/boot-fail-wait", {0, 0, 0, 0});
}

Status Machine::attachDisk(unsigned slot, std::unique_ptr<DiskImage> disk) {
  if (slot >= kDiskSlots)
    return makeError("at most " + std::to_string(kDiskSlots) +
                     " disks (IDE primary and secondary, master and slave); disk " +
                     std::to_string(slot + 1) + (disk ? " (" + disk->path() + ")" : "") +
                     " has no place");
  if (disks_[slot] != nullptr)
    return makeError("IDE slot " + std::to_string(slot) + " already holds " + disks_[slot]->path());
  disks_[slot] = std::move(disk);
  ide(slot / 2).attach(slot % 2, disks_[slot].get());
  if (diskObserver_) observeFirstDiskReads(diskObserver_);
  return {};
}

const DiskImage* Machine::disk(unsigned slot) const {
  return slot < kDiskSlots ? disks_[slot].get() : nullptr;
}

DiskImage* Machine::disk(unsigned slot) {
  return slot < kDiskSlots ? disks_[slot].get() : nullptr;
}

void Machine::observeFirstDiskReads(DiskReadObserver observer) {
  diskObserver_ = std::move(observer);
  for (unsigned slot = 0; slot < kDiskSlots; ++slot) {
    if (disks_[slot] == nullptr) continue;
    if (!diskObserver_) {
      disks_[slot]->observeFirstReads(nullptr);
      continue;
    }
    disks_[slot]->observeFirstReads([this, slot](uint64_t lba, std::span<const uint8_t> bytes) {
      diskObserver_(slot, lba, bytes);
    });
  }
}

Result<std::vector<Machine::DiskEntry>> Machine::disksOf(const MachineConfig& config) {
  std::vector<DiskEntry> out;
  for (const std::string& d : config.devices) {
    if (d.rfind(kDiskEntryPrefix, 0) != 0) continue;
    unsigned channel = 0, drive = 0;
    unsigned long long sectors = 0;
    int used = 0;
    if (std::sscanf(d.c_str(), "disk@ide%u.%u:sectors=%llu%n", &channel, &drive, &sectors, &used) !=
            3 ||
        static_cast<size_t>(used) != d.size() || channel > 1 || drive > 1 || sectors == 0)
      return makeError("trace header: cannot read the disk entry '" + d + "'");
    out.push_back({channel * 2 + drive, sectors});
  }
  return out;
}

Status Machine::attachDisksOf(const MachineConfig& config, const SlotSectorSource& source) {
  auto disks = disksOf(config);
  if (!disks.ok()) return disks.error();
  for (const DiskEntry& d : *disks)
    TTVM_TRY(attachDisk(
        d.slot,
        DiskImage::fromSource("disk " + std::to_string(d.slot) + " (from the trace)", d.sectors,
                              [source, slot = d.slot](uint64_t lba, std::span<uint8_t> out) {
                                return source(slot, lba, out);
                              })));
  return {};
}

// The devices' count, then each one's name and state bytes.
void Machine::saveDevices(const std::vector<Device*>& devices, StateWriter& w) {
  w.u32(static_cast<uint32_t>(devices.size()));
  for (const Device* d : devices) {
    w.str(d->name());
    const size_t mark = w.beginBytes();
    d->saveState(w);
    w.endBytes(mark);
  }
}

std::vector<std::string> Machine::wholeMachine() const {
  std::vector<std::string> names = {"clock"};
  for (const Device* d : devices_) names.emplace_back(d->name());
  return names;
}

Status Machine::setReplayedDevices(std::vector<std::string> names) {
  std::vector<Device*> devices;
  const bool whole = !names.empty() && names == wholeMachine();
  if (whole) {
    devices = devices_;
  } else {
    // Before 1.3: some IDE channels, nothing else.
    static const std::vector<std::string> kPartial = {"ide0", "ide1"};
    for (const std::string& n : names) {
      if (std::find(kPartial.begin(), kPartial.end(), n) == kPartial.end())
        return makeError("the trace's device '" + n +
                         "' is computed by the replay, which this ttvm cannot do for it "
                         "outside a whole-machine list");
      for (Device* d : devices_)
        if (d->name() == n) devices.push_back(d);
    }
  }
  replayedPorts_.reset();
  for (uint32_t port = 0; port < 65536; ++port) {
    auto* d = dynamic_cast<Device*>(ports_.deviceAt(static_cast<uint16_t>(port)));
    if (d != nullptr && std::find(devices.begin(), devices.end(), d) != devices.end())
      replayedPorts_.set(port);
  }
  if (whole) replayedPorts_.set();
  replayed_ = std::move(names);
  replayedDevices_ = std::move(devices);
  whole_ = whole;
  return {};
}

namespace {

// The device digest's hash over a stream given in pieces: its 64-bit
// little-endian words through a multiply-xorshift chain, then the last
// size % 8 bytes one at a time (the stream is tens of KiB: the device
// memories are device state).
class DigestHash {
 public:
  explicit DigestHash(uint64_t size) : h_(0x9E3779B97F4A7C15ull ^ size) {}
  void add(std::span<const uint8_t> b) {
    size_t i = 0;
    while (pending_ != 0 && i < b.size()) {
      word_[pending_++] = b[i++];
      if (pending_ == 8) {
        mix(word_);
        pending_ = 0;
      }
    }
    for (; i + 8 <= b.size(); i += 8) mix(b.data() + i);
    for (; i < b.size(); ++i) word_[pending_++] = b[i];
  }
  // How many bytes the stream needs before the next word starts.
  size_t toWordStart() const { return pending_ == 0 ? 0 : 8 - pending_; }
  // The chain value; at a word start it is all that the bytes so far left.
  uint64_t value() const { return h_; }
  void setValue(uint64_t h) { h_ = h; }
  uint64_t finish() {
    for (size_t i = 0; i < pending_; ++i) h_ = (h_ ^ word_[i]) * 0xC4CEB9FE1A85EC53ull;
    return h_ ^ (h_ >> 29);
  }

 private:
  void mix(const uint8_t* p) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h_ = (h_ ^ w) * 0xFF51AFD7ED558CCDull;
    h_ ^= h_ >> 32;
  }
  uint64_t h_;
  uint8_t word_[8] = {};
  size_t pending_ = 0;
};

}  // namespace

uint64_t Machine::digestOf(std::span<const uint8_t> blob) {
  DigestHash h(blob.size());
  h.add(blob);
  return h.finish();
}

uint64_t Machine::deviceDigest() const {
  // The state without the memories' bytes, hashed with each memory's bytes
  // taken where they stand.
  std::vector<StateWriter::MemoryMark> marks;
  const std::vector<uint8_t> rest = saveDeviceState(nullptr, &marks);
  uint64_t size = rest.size();
  for (const StateWriter::MemoryMark& m : marks) size += m.memory->size();
  const std::span<const uint8_t> restBytes(rest);
  DigestHash h(size);
  digestMemo_.resize(marks.size());
  size_t at = 0;
  for (size_t i = 0; i < marks.size(); ++i) {
    h.add(restBytes.subspan(at, marks[i].offset - at));
    at = marks[i].offset;
    const DeviceMemory& m = *marks[i].memory;
    const std::span<const uint8_t> b = m.bytes();
    const size_t head = std::min(h.toWordStart(), b.size());
    h.add(b.first(head));
    const size_t words = (b.size() - head) / 8 * 8;
    DigestMemo& memo = digestMemo_[i];
    if (memo.valid && memo.version == m.version() && memo.head == head && memo.in == h.value()) {
      h.setValue(memo.out);
    } else {
      memo = DigestMemo{true, m.version(), head, h.value(), 0};
      h.add(b.subspan(head, words));
      memo.out = h.value();
    }
    h.add(b.subspan(head + words));
  }
  h.add(restBytes.subspan(at));
  return h.finish();
}

void Machine::setAttention(bool on) {
  attention_ = on;
  updateEventHint(ApicChange::kNone, false);
}

std::vector<uint8_t> Machine::saveReplayedState() const {
  if (whole_) return saveDeviceState();
  StateWriter w;
  saveDevices(replayedDevices_, w);
  return w.take();
}

Machine::DeviceCheckpoint Machine::checkpointReplayedState() const {
  DeviceCheckpoint c;
  c.takenBy = this;
  if (whole_)
    c.state = saveDeviceState(&c.memories, nullptr);
  else
    c.state = saveReplayedState();
  for (unsigned slot = 0; slot < kDiskSlots; ++slot)
    if (disks_[slot] != nullptr) c.disks[slot] = disks_[slot]->snapshotOverlay();
  return c;
}

Status Machine::restoreReplayedState(const DeviceCheckpoint& checkpoint) {
  // A snapshot's version names contents of this machine's memories only.
  TTVM_ASSERT(checkpoint.takenBy == this, "a device checkpoint restored into another machine");
  for (unsigned slot = 0; slot < kDiskSlots; ++slot)
    if (disks_[slot] != nullptr) disks_[slot]->restoreOverlay(checkpoint.disks[slot]);
  if (whole_) return loadDeviceState(checkpoint.state, &checkpoint.memories);
  return loadReplayedState(checkpoint.state);
}

Status Machine::loadReplayedState(std::span<const uint8_t> blob) {
  if (whole_) return loadDeviceState(blob);
  StateReader r(blob, "replayed device state");
  const uint32_t count = r.u32();
  if (!r.failed() && count != replayedDevices_.size())
    r.fail(std::to_string(count) + " devices where this replay runs " +
           std::to_string(replayedDevices_.size()));
  for (Device* d : replayedDevices_) {
    if (r.failed()) break;
    const std::string name = r.str(64);
    if (!r.failed() && name != d->name())
      r.fail("device '" + name + "' where '" + std::string(d->name()) + "' was expected");
    const std::vector<uint8_t> bytes = r.bytes(r.remaining());
    if (r.failed()) break;
    StateReader dr(bytes, std::string(d->name()) + " state");
    if (Status s = d->loadState(dr); !s.ok()) return s;
  }
  if (!r.failed() && r.remaining() != 0) r.fail("bytes left over after the last device");
  return r.status();
}

MachineConfig Machine::config() const {
  MachineConfig c;
  c.ramBytes = options_.ramBytes;
  c.devices = deviceList(options_.nsPerStep);
  for (unsigned slot = 0; slot < kDiskSlots; ++slot)
    if (disks_[slot] != nullptr)
      c.devices.push_back(std::string(kDiskEntryPrefix) + "ide" + std::to_string(slot / 2) + "." +
                          std::to_string(slot % 2) +
                          ":sectors=" + std::to_string(disks_[slot]->sectors()));
  c.startClockUnixNs = options_.startClockUnixNs;
  c.tscHz = options_.cpuModel.tscFrequencyHz;
  c.cmdline = options_.cmdline;
  return c;
}

RamPages Machine::nonZeroPages() const {
  RamPages pages;
  const size_t n = ramBytes_ / kPageSize;
  // Untouched pages of the anonymous mapping are not resident: they are zero.
  // Asked a window at a time, so that the answer for a 3 GiB guest is not a
  // 768 KiB vector of its own.
  constexpr size_t kWindow = 4096;
  unsigned char resident[kWindow];
  for (size_t i = 0; i < n; ++i) {
    if (i % kWindow == 0) {
      const size_t count = std::min(kWindow, n - i);
      if (mincore(ramBase_ + i * kPageSize, count * kPageSize, resident) != 0)
        std::fill(resident, resident + count, 1);
    }
    if (!(resident[i % kWindow] & 1)) continue;
    const uint8_t* p = ramBase_ + i * kPageSize;
    bool zero = true;
    for (size_t k = 0; k < kPageSize; k += 8) {
      uint64_t w;
      std::memcpy(&w, p + k, 8);
      if (w != 0) {
        zero = false;
        break;
      }
    }
    if (!zero) pages.add(i, std::span<const uint8_t>(p, kPageSize));
  }
  return pages;
}

void Machine::clearRam() {
  // A private anonymous mapping reads as zeros after MADV_DONTNEED.
  const int rc = madvise(ramBase_, ramBytes_, MADV_DONTNEED);
  TTVM_ASSERT(rc == 0, "madvise(MADV_DONTNEED) on guest RAM: ", std::strerror(errno));
}

PhysicalMemory Machine::physicalMemory() {
  PhysicalMemory pm;
  pm.ram = ram();
  pm.mmioHoles.push_back({firmware::kVgaHoleBegin, firmware::kVgaHoleEnd});
  return pm;
}

void Machine::bindCpuState(const CpuState* state) {
  cpu_ = state;
  clock_.bindSteps(state != nullptr ? &state->steps : nullptr);
  lapic_->bindCpuRegisters(state != nullptr ? &state->msr.apicBase : nullptr,
                           state != nullptr ? &state->cr8 : nullptr);
  updateEventHint(ApicChange::kAny, false);
}

CpuState Machine::initialCpuState() {
  return resetState();
}

uint64_t Machine::readTsc() const {
  return mulDiv(clock_.nowNs(), options_.cpuModel.tscFrequencyHz, 1'000'000'000);
}

std::optional<uint64_t> Machine::readRandom(unsigned size) {
  // xorshift64*: the values are inputs like any other (the trace keeps them);
  // the seed only makes two recordings of the same guest identical.
  rngState_ ^= rngState_ >> 12;
  rngState_ ^= rngState_ << 25;
  rngState_ ^= rngState_ >> 27;
  uint64_t v = rngState_ * 0x2545F4914F6CDD1Dull;
  return size >= 8 ? v : v & ((1ull << (8 * size)) - 1);
}

uint32_t Machine::portIn(uint16_t port, unsigned size) {
  const uint32_t v = ports_.read(port, size);
  updateEventHint(ApicChange::kNone);
  return v;
}

void Machine::portOut(uint16_t port, unsigned size, uint32_t v) {
  ports_.write(port, size, v);
  updateEventHint(ApicChange::kNone);
}

uint64_t Machine::mmioRead(uint64_t addr, unsigned size) {
  const uint64_t v = mmio_.read(addr, size);
  updateEventHint(reachesApic(*lapic_, addr) ? ApicChange::kMayAdd : ApicChange::kNone);
  return v;
}

void Machine::mmioWrite(uint64_t addr, unsigned size, uint64_t v) {
  syncApicTpr();
  mmio_.write(addr, size, v);
  updateEventHint(reachesApic(*lapic_, addr) ? ApicChange::kMayAdd : ApicChange::kNone);
}

std::optional<uint64_t> Machine::readMsr(uint32_t index) {
  const std::optional<uint64_t> v = lapic_->readMsr(index);
  updateEventHint(ApicChange::kMayAdd);
  return v;
}

bool Machine::writeMsr(uint32_t index, uint64_t value) {
  syncApicTpr();
  const bool ok = lapic_->writeMsr(index, value);
  updateEventHint(ApicChange::kMayAdd);
  return ok;
}

bool Machine::interruptPending() {
  if (lapic_->hasDeliverable()) return true;
  return pic_->outputHigh() && lapic_->acceptsPicInterrupts();
}

uint8_t Machine::acknowledgeInterrupt() {
  const uint8_t v = lapic_->hasDeliverable() ? lapic_->acknowledge() : pic_->acknowledge();
  updateEventHint(ApicChange::kAny);
  return v;
}

bool Machine::nmiPending() const {
  return lapic_->nmiPending();
}
void Machine::acknowledgeNmi() {
  lapic_->clearNmi();
  updateEventHint(ApicChange::kNone);
}

void Machine::setIrqLevel(unsigned irq, bool level) {
  if (irq < 16) {
    pic_->setIrq(irq, level);
    ioapic_->setPin(irq == 0 ? 2 : irq, level);
  } else {
    ioapic_->setPin(irq, level);
  }
  updateEventHint(ApicChange::kMayAdd);
}

void Machine::syncApicTpr() {
  (void)lapic_->hasDeliverable();
}

void Machine::noteApicBase() {
  const uint64_t base = cpu_->msr.apicBase;
  if (base == seenApicBase_) return;
  seenApicBase_ = base;
  const std::optional<uint64_t> page = lapic_->mmioWindow();
  if (!page || *page >= ramBytes_ ||
      (*page >= firmware::kVgaHoleBegin && *page < firmware::kVgaHoleEnd) || apicInRamReported_)
    return;
  apicInRamReported_ = true;
  if (std::FILE* f = mmio_.reportStream())
    std::fprintf(f,
                 "ttvm: guest moved the local APIC's registers to 0x%" PRIx64
                 ", inside RAM: the CPU's accesses there reach RAM, not the APIC (as under "
                 "KVM; ttvm does not map the APIC page over RAM as hardware does)\n",
                 *page);
}

void Machine::updateEventHint(ApicChange apic, bool syncTpr) {
  if (syncTpr) syncApicTpr();
  if (cpu_ != nullptr) noteApicBase();
  if (apic == ApicChange::kAny || (apic == ApicChange::kMayAdd && !apicRequest_))
    apicRequest_ = apicIrrNonEmpty(*lapic_);
  const uint64_t cr8 = cpu_ != nullptr ? cpu_->cr8 : 0;
  const bool tprAwayFromCr8 = lapic_->tpr() != ((cr8 & 0xF) << 4);
  const bool any =
      stop_.has_value() || clock_.reschedulePending() || lapic_->nmiPending() || attention_;
  const bool maskable = pic_->outputHigh() || apicRequest_ || tprAwayFromCr8;
  eventHint_ = any ? 1u : maskable ? kEventHintMaskableOnly : 0u;
}

std::optional<uint64_t> Machine::nextDeadlineNs() const {
  std::optional<uint64_t> best;
  for (const TimedDevice* t : timed_) {
    auto d = t->nextDeadlineNs();
    if (d && (!best || *d < *best)) best = d;
  }
  return best;
}

void Machine::advanceTimers() {
  uint64_t now = clock_.nowNs();
  for (TimedDevice* t : timed_) t->advanceTo(now);
  updateEventHint(ApicChange::kMayAdd);
}

void Machine::clearStopRequest() {
  stop_.reset();
  updateEventHint(ApicChange::kNone, false);
}

void Machine::requestStop(StopRequest request) {
  if (!stop_) stop_ = std::move(request);
  updateEventHint(ApicChange::kNone);
}

std::vector<uint8_t> Machine::saveDeviceState() const {
  return saveDeviceState(nullptr, nullptr);
}

std::vector<uint8_t> Machine::saveDeviceState(std::vector<DeviceMemory::Snapshot>* apart,
                                              std::vector<StateWriter::MemoryMark>* leftOut) const {
  StateWriter w;
  w.reserve(leftOut != nullptr || apart != nullptr ? kDeviceStateReserve / 16
                                                   : kDeviceStateReserve);
  if (apart != nullptr) w.holdMemoriesApart(apart);
  if (leftOut != nullptr) w.leaveOutMemories(leftOut);
  for (char c : kDeviceStateMagic) w.u8(static_cast<uint8_t>(c));
  w.u32(kDeviceStateVersion);
  w.u64(clock_.idleNs());
  w.u64(rngState_);
  saveDevices(devices_, w);
  return w.take();
}

Status Machine::loadDeviceState(std::span<const uint8_t> blob) {
  return loadDeviceState(blob, nullptr);
}

Status Machine::loadDeviceState(std::span<const uint8_t> blob,
                                const std::vector<DeviceMemory::Snapshot>* apart) {
  // Whatever part of the state got loaded, the hint follows it.
  struct UpdateHint {
    Machine* m;
    ~UpdateHint() { m->updateEventHint(ApicChange::kAny, false); }
  } updateHint{this};
  StateReader r(blob, "machine device state");
  for (char c : kDeviceStateMagic) {
    if (r.u8() != static_cast<uint8_t>(c)) {
      r.fail("bad magic (not a ttvm device-state blob)");
      return r.status();
    }
  }
  uint32_t version = r.u32();
  if (!r.failed() && version != kDeviceStateVersion) {
    r.fail("version " + std::to_string(version) + ", this ttvm reads version " +
           std::to_string(kDeviceStateVersion));
    return r.status();
  }
  uint64_t idle = r.u64();
  uint64_t rng = r.u64();
  uint32_t count = r.u32();
  if (!r.failed() && count != devices_.size()) {
    r.fail(std::to_string(count) + " devices where this machine has " +
           std::to_string(devices_.size()));
  }
  TTVM_TRY(r.status());
  size_t memoriesUsed = 0;  // of *apart
  for (Device* d : devices_) {
    std::string name = r.str(64);
    if (!r.failed() && name != d->name())
      r.fail("device '" + name + "' where '" + std::string(d->name()) + "' was expected");
    const std::span<const uint8_t> bytes = r.view(1u << 20);
    TTVM_TRY(r.status());
    StateReader dr(bytes, "state of device '" + name + "'");
    if (apart != nullptr) dr.takeMemoriesFrom(std::span(*apart).subspan(memoriesUsed));
    TTVM_TRY(d->loadState(dr));
    memoriesUsed += dr.memoriesUsed();
    if (dr.remaining() != 0)
      return makeError("state of device '" + name + "': " + std::to_string(dr.remaining()) +
                       " bytes left over");
  }
  if (r.remaining() != 0)
    return makeError("machine device state: " + std::to_string(r.remaining()) +
                     " bytes after the last device");
  if (apart != nullptr && memoriesUsed != apart->size())
    return makeError("machine device state: " + std::to_string(apart->size()) +
                     " device memories held apart, " + std::to_string(memoriesUsed) + " read");
  clock_.setIdleNs(idle);
  rngState_ = rng;
  return {};
}

}  // namespace ttvm::machine
