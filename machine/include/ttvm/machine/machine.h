// Machine: one small PC — RAM with the PC memory map, a port bus and an MMIO
// bus, the devices on them, the interrupt routing between them, virtual time
// and the CPU model. It owns no CPU (the record loop or the replayer does)
// and no globals: any number of machines can live in one process.
//
// Memory map. RAM starts at physical 0 (at most 3 GiB). 0xA0000-0xBFFFF is
// the VGA window: not RAM, accesses go to the MMIO bus (CGA text memory at 0xB8000-0xBFFFF, the
// rest unclaimed). The BIOS area 0xC0000-0xFFFFF is RAM holding what firmware leaves (firmware.h).
// MMIO devices sit at the top of the 32-bit space: I/O APIC 0xFEC00000,
// local APIC 0xFEE00000, pc-testdev memory 0xFF000000. The local APIC's page
// follows IA32_APIC_BASE (the MMIO bus asks the APIC at each access) and
// answers before any other device there. A page moved into RAM is not
// reachable: the CPU keeps RAM addresses (holes aside) to itself, as KVM's
// memory slots do; hardware would map the APIC over the RAM. The recorder
// reports that once on stderr (noteApicBase).
//
// Interrupts. Devices raise ISA IRQ lines through the machine (IrqSink):
// each goes to the 8259 pair and to the I/O APIC (ISA IRQ 0 -> pin 2, as the
// MADT says). The CPU sees the local APIC's deliverable vector when there is
// one, else the 8259's INTR when the LAPIC passes it (globally disabled, or
// LINT0 as ExtINT: virtual-wire mode).
//
// Time. VirtualClock derives ns from the CPU's step count; timed devices
// (PIT, RTC, LAPIC timer, UART timeout) expose deadlines; the loop runs the
// CPU up to the earliest and calls advanceTimers().
//
// State. saveDeviceState()/loadDeviceState() serialise every device (and the
// clock's idle offset) for checkpoints and the trace's INIT frame; RAM and
// the CPU are saved by their owners.
//
// Event hint. eventHint() is the word Environment::eventHint() asks for: it
// is nonzero whenever interruptPending(), nmiPending() or serviceNeeded()
// might return true, so that the CPU may skip those three calls while it
// reads zero. Every entry point that can change what they answer recomputes
// it before returning. Between entry points only the CPU runs, and the CPU
// can change the answer of exactly one of them, interruptPending(): through
// CR8 (the APIC's TPR) and IA32_APIC_BASE (APIC enable, which also decides
// whether the 8259's INTR counts). So the hint does not ask for delivery, only
// for a request: it is set while the local APIC's IRR holds any vector or the
// 8259's INTR is high, whatever the CPU state. It is also set while the TPR
// holds a value written through the APIC's registers that CR8 does not: the
// APIC notices a CR8 write only when asked (LocalApic::syncTprFromCr8), and
// a CR8 written and restored unobserved would leave that TPR in place.
// A change made to a device directly (pic(), com1(), clock(), ...) shows in
// the hint after the next entry point: the record loop makes such changes
// only between slices and calls advanceTimers() before each slice.
#pragma once

#include <array>
#include <bitset>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ttvm/base/result.h"
#include "ttvm/emulator/cpu.h"
#include "ttvm/emulator/cpu_model.h"
#include "ttvm/formats/trace_types.h"
#include "ttvm/machine/bus.h"
#include "ttvm/machine/device.h"
#include "ttvm/machine/disk_image.h"
#include "ttvm/machine/irq.h"
#include "ttvm/machine/virtual_clock.h"

namespace ttvm::machine {

class Uart16550;
class DebugConsole;
class DebugExit;
class PvPanic;
class KeyboardController;
class ResetControl;
class SystemControlA;
class PostPort;
class ShutdownPort;
class Pic8259Pair;
class Pit8254;
class CmosRtc;
class LocalApic;
class IoApic;
class FwCfg;
class PcTestDev;
class AcpiPm;
class IdeChannel;
class PciHost;
class CgaText;

struct MachineOptions {
  uint64_t ramBytes = 256ull << 20;
  int64_t startClockUnixNs = 0;  // the RTC's time at step 0
  uint64_t nsPerStep = 1;        // nominal rate of virtual time
  CpuModel cpuModel = CpuModel::ttvmDefault();
  std::string cmdline;   // also offered through fw_cfg
  uint64_t rngSeed = 0;  // RDRAND/RDSEED source (recorded; a seed makes runs repeatable)
};

class Machine final : public IrqSink, public RunControl {
 public:
  static Result<std::unique_ptr<Machine>> create(const MachineOptions& options);
  // Whether `ramBytes` is a RAM size create() accepts (2 MiB to 3 GiB, whole
  // 4 KiB pages); the error says which bound it misses.
  static Status checkRamSize(uint64_t ramBytes);
  // The machine a trace was recorded on (same RAM, devices, CPU model, clock).
  static Result<std::unique_ptr<Machine>> fromTraceHeader(const TraceHeader& header);
  ~Machine() override;
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  // What the trace header stores about this machine.
  MachineConfig config() const;
  const MachineOptions& options() const { return options_; }
  const CpuModel& cpuModel() const { return options_.cpuModel; }

  std::span<uint8_t> ram() { return {ramBase_, ramBytes_}; }
  std::span<const uint8_t> ram() const { return {ramBase_, ramBytes_}; }
  PhysicalMemory physicalMemory();
  // The non-zero RAM pages (the INIT frame, snapshots). Pages the host never
  // faulted in are zero and are skipped without being read (mincore), so this
  // costs time in proportion to the RAM the guest touched, not its size.
  RamPages nonZeroPages() const;
  // Every RAM byte zero again, the pages given back to the host
  // (MADV_DONTNEED): costs the pages that were in use, not the RAM size.
  void clearRam();
  // Guest console output (serial, debug console). Default: discarded.
  void setConsole(ConsoleSink* sink) { consoleForward_.target = sink; }

  // Binds the CPU whose registers the machine reads (step count for time,
  // IA32_APIC_BASE and CR8 for the local APIC). The state must outlive the binding.
  void bindCpuState(const CpuState* state);
  // The CPU state a machine starts a guest with before a loader runs.
  static CpuState initialCpuState();

  // The environment's questions (the record loop adds the trace).
  uint32_t portIn(uint16_t port, unsigned size);
  void portOut(uint16_t port, unsigned size, uint32_t v);
  uint64_t mmioRead(uint64_t addr, unsigned size);
  void mmioWrite(uint64_t addr, unsigned size, uint64_t v);
  uint64_t readTsc() const;
  std::optional<uint64_t> readRandom(unsigned size);
  std::optional<uint64_t> readMsr(uint32_t index);
  bool writeMsr(uint32_t index, uint64_t value);
  bool interruptPending();
  uint8_t acknowledgeInterrupt();
  bool nmiPending() const;
  void acknowledgeNmi();
  // Nonzero whenever interruptPending(), nmiPending() or serviceNeeded() might
  // be true (see "Event hint" above). Valid as long as the machine.
  const volatile uint32_t* eventHint() const { return &eventHint_; }

  // IrqSink: ISA IRQ 0-15 (to both controllers) or GSI 16-23 (I/O APIC).
  void setIrqLevel(unsigned irq, bool level) override;

  // Time.
  VirtualClock& clock() { return clock_; }
  std::optional<uint64_t> nextDeadlineNs() const;
  // Lets every timed device process what is due at clock().nowNs().
  void advanceTimers();

  // Run control: devices ask to end the run; the loop reads the request.
  void requestStop(StopRequest request) override;
  const std::optional<StopRequest>& stopRequest() const { return stop_; }
  // Forgets the request (a replay moving back before the recording's end).
  void clearStopRequest();
  // Whether the loop must end the current slice (a stop, or a timer changed).
  bool serviceNeeded() const { return stop_.has_value() || clock_.reschedulePending(); }

  // Device state (every device, in a fixed order, framed by name and length).
  std::vector<uint8_t> saveDeviceState() const;
  Status loadDeviceState(std::span<const uint8_t> blob);

  PortBus& ports() { return ports_; }
  MmioBus& mmio() { return mmio_; }
  Uart16550& com1() { return *com1_; }
  Pic8259Pair& pic() { return *pic_; }
  Pit8254& pit() { return *pit_; }
  CmosRtc& rtc() { return *rtc_; }
  LocalApic& lapic() { return *lapic_; }
  IoApic& ioapic() { return *ioapic_; }
  FwCfg& fwCfg() { return *fwCfg_; }
  PcTestDev& testDev() { return *testDev_; }
  // IDE channel 0 (primary) or 1 (secondary).
  IdeChannel& ide(unsigned channel) { return channel == 0 ? *ide0_ : *ide1_; }
  PciHost& pciHost() { return *pciHost_; }
  CgaText& cga() { return *cga_; }

  // Disks, in IDE order: slot 0 primary master, 1 primary slave, 2 secondary
  // master, 3 secondary slave. The machine owns them; the trace header's
  // device list names each with its size ("disk@ide0.0:sectors=N"), and
  // fromTraceHeader builds a machine without them (replay runs no device).
  static constexpr unsigned kDiskSlots = 4;
  Status attachDisk(unsigned slot, std::unique_ptr<DiskImage> disk);
  const DiskImage* disk(unsigned slot) const;
  DiskImage* disk(unsigned slot);
  // The disks a trace header's device list names: slot and size each. An
  // entry this build cannot parse is an error naming it.
  struct DiskEntry {
    unsigned slot = 0;
    uint64_t sectors = 0;
  };
  static Result<std::vector<DiskEntry>> disksOf(const MachineConfig& config);
  // Attaches each disk `config` names, its image content read through
  // `source(slot, lba, out)` (a replay: the sectors the trace holds).
  using SlotSectorSource = std::function<bool(unsigned slot, uint64_t lba, std::span<uint8_t> out)>;
  Status attachDisksOf(const MachineConfig& config, const SlotSectorSource& source);
  // Calls `observer(slot, lba, bytes)` the first time each sector of every
  // attached disk (and every disk attached later) is read from its image.
  using DiskReadObserver =
      std::function<void(unsigned slot, uint64_t lba, std::span<const uint8_t> bytes)>;
  void observeFirstDiskReads(DiskReadObserver observer);

  // Replay-computed devices (TraceHeader::replayedDevices): devices whose
  // reads are a function of their state, the guest's writes, virtual time
  // and what the trace holds besides (disk sectors, serial input, idle
  // skips), so that a replay runs them and the recorder logs none of their
  // accesses. Three lists exist:
  //  - none (1.0, 1.1 traces): every device access is in the trace;
  //  - the IDE channels (1.2 traces): their port accesses are not;
  //  - the whole machine (since 1.3; wholeMachine()): "clock" and every
  //    device. The replay runs the machine as the recording did — devices,
  //    timers, interrupt controllers, the TSC and RDRAND of the virtual
  //    clock and the seeded generator — and the trace keeps only what comes
  //    from outside (Machine::replaysWholeMachine).
  // A machine from create() replays the whole machine; fromTraceHeader()
  // sets the header's list.
  std::vector<std::string> wholeMachine() const;
  const std::vector<std::string>& replayedDevices() const { return replayed_; }
  // Errors for a list this build cannot replay (a newer trace).
  Status setReplayedDevices(std::vector<std::string> names);
  bool replaysWholeMachine() const { return whole_; }
  // Whether `port` belongs to a replayed device.
  bool portReplayed(uint16_t port) const { return replayedPorts_[port]; }
  // The replayed devices' state only (the whole machine's: saveDeviceState).
  std::vector<uint8_t> saveReplayedState() const;
  // Loads the bytes of a state any machine of this configuration saved.
  Status loadReplayedState(std::span<const uint8_t> bytes);
  // What a replay checkpoint keeps: the replayed devices' state with each
  // device memory held apart (DeviceMemory::Snapshot), its bytes shared with
  // the memory and every other checkpoint while they stay the same. Taking
  // one copies only the devices' registers (~3 KB); restoring one copies no
  // memory at all. It also holds each attached disk's overlay (the sectors
  // the guest wrote, in no device state), shared the same way
  // (DiskImage::snapshotOverlay), so that a replay restored to a point
  // before a sector write reads the sector as it was there. For the machine
  // that took it only.
  struct DeviceCheckpoint {
    std::vector<uint8_t> state;  // StateWriter::holdMemoriesApart
    std::vector<DeviceMemory::Snapshot> memories;
    std::array<DiskImage::OverlaySnapshot, kDiskSlots> disks;  // empty where no disk
    const Machine* takenBy = nullptr;
  };
  DeviceCheckpoint checkpointReplayedState() const;
  Status restoreReplayedState(const DeviceCheckpoint& checkpoint);
  // A digest of saveDeviceState(): every device's registers, the clock's
  // idle offset and the generator (the trace's kDeviceDigest). Equal to
  // digestOf(saveDeviceState()), without copying the device memories, and
  // without hashing those unchanged since the last digest (see digestMemo_).
  uint64_t deviceDigest() const;
  // The device digest's definition: a hash of a saveDeviceState() blob.
  static uint64_t digestOf(std::span<const uint8_t> blob);

  // While on, the event hint stays set so that the CPU asks stopRequested()
  // at the next instruction boundary (a replay that diverged inside a
  // device access, or a stop asked from outside).
  void setAttention(bool on);

 private:
  explicit Machine(const MachineOptions& options);
  Status wire();
  void configureFwCfg();
  // How an entry point may have changed the local APIC's IRR. Vectors enter
  // it through its registers (MMIO, MSRs), the I/O APIC (IRQ lines, its
  // registers, EOI), its timer and state loads; acknowledge() and state
  // loads are all that remove them.
  enum class ApicChange {
    kNone,    // other devices reach the interrupt controllers only through setIrqLevel
    kMayAdd,  // rescan unless a request is already known
    kAny,     // rescan
  };
  // Recomputes eventHint_ after an entry point (see "Event hint" above).
  // `syncTpr`: first let the APIC take up a CR8 the CPU wrote since it last
  // looked (entry points the CPU reaches; not a state load or a CPU binding,
  // which leave the TPR they set as it is).
  void updateEventHint(ApicChange apic, bool syncTpr = true);
  static void saveDevices(const std::vector<Device*>& devices, StateWriter& w);
  std::vector<uint8_t> saveDeviceState(std::vector<DeviceMemory::Snapshot>* apart,
                                       std::vector<StateWriter::MemoryMark>* leftOut) const;
  // loadDeviceState of a state saved with its memories held apart in
  // `*apart` (none when null).
  Status loadDeviceState(std::span<const uint8_t> blob,
                         const std::vector<DeviceMemory::Snapshot>* apart);
  // The APIC's TPR follows CR8 lazily (LocalApic::syncTprFromCr8): a write to
  // its registers must land after a CR8 write the CPU made since, as it did
  // when the CPU asked interruptPending() at every instruction boundary.
  void syncApicTpr();
  // Reports once when IA32_APIC_BASE put the local APIC's page inside RAM,
  // where the guest cannot reach it (see "Memory map"). Checked at each
  // entry point: the CPU writes the MSR without telling the machine.
  void noteApicBase();

  struct ConsoleForward final : ConsoleSink {
    ConsoleSink* target = nullptr;
    void write(uint8_t b) override {
      if (target != nullptr) target->write(b);
    }
  };

  MachineOptions options_;
  uint8_t* ramBase_ = nullptr;  // anonymous mapping: untouched pages cost nothing
  size_t ramBytes_ = 0;
  VirtualClock clock_;
  PortBus ports_;
  MmioBus mmio_;
  ConsoleForward consoleForward_;
  std::optional<StopRequest> stop_;
  uint64_t rngState_;
  const CpuState* cpu_ = nullptr;  // bindCpuState
  uint64_t seenApicBase_ = 0;      // cpu_->msr.apicBase when noteApicBase last looked
  bool apicInRamReported_ = false;
  // Whether the local APIC's IRR may hold a vector (false only after a scan
  // found it empty), and the event hint derived from it and the rest.
  bool apicRequest_ = true;
  volatile uint32_t eventHint_ = 1;

  std::unique_ptr<Pic8259Pair> pic_;
  std::unique_ptr<LocalApic> lapic_;
  std::unique_ptr<IoApic> ioapic_;
  std::unique_ptr<Pit8254> pit_;
  std::unique_ptr<CmosRtc> rtc_;
  std::unique_ptr<Uart16550> com1_;
  std::unique_ptr<DebugConsole> debugcon_;
  std::unique_ptr<DebugExit> debugExit_;
  std::unique_ptr<PvPanic> pvpanic_;
  std::unique_ptr<KeyboardController> i8042_;
  std::unique_ptr<ResetControl> resetControl_;
  std::unique_ptr<SystemControlA> port92_;
  std::unique_ptr<PostPort> post_;
  std::unique_ptr<ShutdownPort> shutdown_;
  std::unique_ptr<FwCfg> fwCfg_;
  std::unique_ptr<PcTestDev> testDev_;
  std::unique_ptr<AcpiPm> acpiPm_;
  std::unique_ptr<IdeChannel> ide0_, ide1_;
  std::unique_ptr<PciHost> pciHost_;
  std::unique_ptr<CgaText> cga_;
  std::array<std::unique_ptr<DiskImage>, kDiskSlots> disks_;
  DiskReadObserver diskObserver_;
  std::vector<std::string> replayed_;
  bool whole_ = false;
  bool attention_ = false;
  // deviceDigest()'s hash chain over each device memory's whole words (in
  // save order): the same memory contents (version) entered with the same
  // chain value give the same value after them, which is taken from here.
  struct DigestMemo {
    bool valid = false;
    uint64_t version = 0;
    size_t head = 0;  // the memory's bytes before its first whole word
    uint64_t in = 0, out = 0;
  };
  mutable std::vector<DigestMemo> digestMemo_;
  std::vector<Device*> replayedDevices_;  // save/load order of saveReplayedState (1.2 traces)
  std::bitset<65536> replayedPorts_;
  std::vector<Device*> devices_;  // save/load order
  std::vector<TimedDevice*> timed_;
};

}  // namespace ttvm::machine
