// The values a trace holds, as plain C++ types (copyable, comparable, no
// virtuals). TraceWriter takes them and TraceReader returns them; Cap'n Proto
// and LZ4 never appear here (they stay inside formats/src).
//
// Position. Every event carries a `step`: in a trace recorded by the emulator
// (Backend::kEmulator) it is the CPU's step count when the event happened
// (CpuState::steps, one per retired instruction and per REP iteration); in a
// KVM trace (Backend::kKvm) it is the exit sequence number, and the replayer
// assigns step counts as it goes. Steps never decrease along a trace.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ttvm/emulator/cpu_model.h"
#include "ttvm/emulator/cpu_state.h"

namespace ttvm {

// The format version this build writes. A reader accepts every file with the
// same major version; a newer minor version may carry fields it ignores.
inline constexpr uint16_t kTraceFormatMajor = 1;
inline constexpr uint16_t kTraceFormatMinor = 6;

inline constexpr uint64_t kPageSize = 4096;

enum class Backend : uint8_t {
  kEmulator = 0,  // events carry step counts
  kKvm = 1,       // events carry exit sequence numbers
};

enum class ImageFormat : uint8_t {
  kFlat = 0,  // raw bytes copied to loadAddress
  kElf32 = 1,
  kElf64 = 2,
  kMultiboot = 3,   // a multiboot (v1) kernel
  kBootSector = 4,  // a disk image whose first sector is loaded at 0x7C00
  kLinux = 5,       // a Linux bzImage loaded by the x86 boot protocol
};

enum class SymbolKind : uint8_t { kOther = 0, kFunction = 1, kObject = 2 };

struct Symbol {
  std::string name;
  uint64_t address = 0;  // guest virtual address (ELF st_value)
  uint64_t size = 0;     // bytes; 0 when unknown
  SymbolKind kind = SymbolKind::kOther;
  bool operator==(const Symbol&) const = default;
};

// A guest image as it was given to the recorder. `bytes` is the file itself,
// so the trace is self-contained: the person who opens it needs no guest.
struct GuestImage {
  std::string name;  // file name as given (no directories)
  ImageFormat format = ImageFormat::kFlat;
  uint64_t loadAddress = 0;  // guest-physical address of the first loaded byte
  uint64_t entry = 0;        // first RIP
  std::vector<uint8_t> bytes;
  std::vector<Symbol> symbols;  // sorted by address when they come from ELF
  bool operator==(const GuestImage&) const = default;
};

// An MSR value the machine's CPU model reports (e.g. platform info).
// CPU-owned MSRs (EFER, STAR, ...) are part of CpuState instead.
struct MsrValue {
  uint32_t index = 0;
  uint64_t value = 0;
  bool operator==(const MsrValue&) const = default;
};

struct MachineConfig {
  uint64_t ramBytes = 0;             // guest RAM, a multiple of kPageSize
  std::vector<std::string> devices;  // e.g. "serial@0x3f8", "pit", "pic", "debug-exit@0xf4"
  int64_t startClockUnixNs = 0;      // the guest's wall clock (RTC) at step 0, ns since 1970
  uint64_t tscHz = 0;                // virtual TSC frequency, Hz
  std::string cmdline;               // kernel command line (multiboot), may be empty
  bool operator==(const MachineConfig&) const = default;
};

// A trace's identity (format 1.1): 128 random bits in the header, repeated
// in every INIT, SNAP, CHNK and FOOT message. Zero in 1.0 traces.
struct TraceId {
  uint64_t lo = 0;
  uint64_t hi = 0;
  bool empty() const { return lo == 0 && hi == 0; }
  bool operator==(const TraceId&) const = default;
};
// 128 bits from the kernel's random source.
TraceId randomTraceId();

// What a CHNK message says about its place (format 1.1).
struct ChunkIdentity {
  TraceId trace;
  uint64_t sequence = 0;  // index among the trace's chunks, from 0
};

// Where a slice (`ttvm slice`, format 1.4) comes from. A slice keeps its
// source's step numbers: its initial state is the source's machine at
// fromStep (CpuState::steps == fromStep), its events the source's from there.
struct SliceOrigin {
  TraceId sourceTraceId;
  uint64_t fromStep = 0;       // the source's step of the slice's initial state
  uint64_t toStep = 0;         // where the slice ends (its footer's step count)
  uint64_t sourceEndStep = 0;  // where the source's run ended
  uint64_t sourceBytes = 0;    // the source file's size
  std::string sourceName;      // the source's file name, no directories
  // Only the RAM pages the CPU accesses over [fromStep, toStep) are in the
  // initial state (the rest reads as zero); false: all of RAM.
  bool partialRam = false;
  bool operator==(const SliceOrigin&) const = default;
};

struct TraceHeader {
  // Read side: the version the file was written with. The writer ignores
  // these and writes kTraceFormatMajor/Minor.
  uint16_t formatMajor = kTraceFormatMajor;
  uint16_t formatMinor = kTraceFormatMinor;
  std::string ttvmVersion;  // e.g. "0.1.0"
  std::string host;         // host description, e.g. "Linux 6.1 x86_64, AMD EPYC"
  Backend backend = Backend::kEmulator;
  int64_t createdUnixNs = 0;  // wall time when recording started, ns since 1970
  MachineConfig machine;
  CpuModel cpuModel;
  std::vector<MsrValue> modelMsrs;
  std::vector<GuestImage> images;
  // Drawn by TraceWriter::create when empty; read back from 1.1 traces.
  TraceId traceId;
  // Devices the replay runs itself (since 1.2; see trace.capnp): their port
  // accesses are not in the trace, disk sectors they read are (kDiskSector).
  // Empty in 1.0 and 1.1 traces, which replay in the old mode (every read logged).
  std::vector<std::string> replayedDevices;
  // Set when the trace is a slice of another (since 1.4).
  std::optional<SliceOrigin> slice;
  // KVM traces (since 1.5; see trace.capnp): the pages whose instructions
  // ran in ttvm's emulator during the recording (RDTSC kept off KVM);
  // sorted page numbers.
  std::vector<uint64_t> emulatedPages;
  bool operator==(const TraceHeader&) const = default;
};

// RAM as its non-zero 4 KiB pages: page number i (guest-physical address
// i * kPageSize) has the bytes [k * kPageSize, (k+1) * kPageSize) where
// numbers[k] == i. Numbers are strictly increasing. Pages missing from the
// list are zero. Stored compactly (one buffer) because RAM can be large.
struct RamPages {
  std::vector<uint64_t> numbers;
  std::vector<uint8_t> bytes;  // numbers.size() * kPageSize bytes

  size_t pageCount() const { return numbers.size(); }
  std::span<const uint8_t> page(size_t k) const {
    return std::span<const uint8_t>(bytes).subspan(k * kPageSize, kPageSize);
  }
  // Adds a page; `number` must be greater than every number already present
  // and `data` exactly kPageSize bytes.
  void add(uint64_t number, std::span<const uint8_t> data);
  // The non-zero pages of a flat RAM image whose byte 0 is guest-physical 0.
  static RamPages fromFlat(std::span<const uint8_t> ram);
  // Writes the pages into a flat RAM image and zeroes every other page.
  // Pages beyond ram.size() are an error (names the page).
  bool applyTo(std::span<uint8_t> ram, std::string* error = nullptr) const;

  bool operator==(const RamPages&) const = default;
};

struct InitialState {
  CpuState cpu;
  RamPages ram;
  std::vector<uint8_t> deviceState;  // opaque; owned and versioned by the recorder
  bool operator==(const InitialState&) const = default;
};

// A full machine state at `step` (a seek point; what `ttvm slice` starts from).
// cpu.steps == step for emulator traces.
struct Snapshot {
  uint64_t step = 0;
  CpuState cpu;
  RamPages ram;
  std::vector<uint8_t> deviceState;
  bool operator==(const Snapshot&) const = default;
};

// The kinds of events. The numeric values are stored in traces: never reuse one.
enum class EventKind : uint8_t {
  kPortIn = 1,           // address = port, size, value = what the device answered, count
  kPortOut = 2,          // address = port, size, value = what the guest wrote, count
  kMmioRead = 3,         // address = guest-physical address, size 1/2/4/8, value = answer
  kMmioWrite = 4,        // address, size, value = what the guest wrote
  kInterrupt = 5,        // value = vector the CPU acknowledged (taken at this step)
  kNmi = 6,              // an NMI was delivered at this step
  kInterruptWindow = 7,  // KVM: the guest opened an interrupt window
  kRdtsc = 8,            // value = TSC returned (before IA32_TSC_ADJUST)
  kRdrand = 9,           // size, value; flags & kFlagOk: the source had entropy (CF=1)
  kMsrRead = 10,         // address = MSR index, value (machine-owned MSRs only)
  kMsrWrite = 11,        // address = MSR index, value written; flags & kFlagOk: accepted
  kDebugExit = 12,       // value = status the guest wrote to the exit device
  kHlt = 13,             // the CPU halted at this step
  kStateDigest = 14,     // value = ttvm::stateDigest(cpu) after this step
  kEndOfRun = 15,        // the last event of a completed run
  // Since 1.2: the first read of a disk sector from the image (not from the
  // guest's own writes): address = LBA, value = disk slot (IDE order), and
  // count = the index of its 512 bytes in the sector list that goes with
  // the events (TraceWriter::appendDiskSector, TraceReader::readChunkInto).
  kDiskSector = 16,
  // Since 1.3, in traces whose replay runs the whole machine (every device,
  // the clock and the interrupt controllers: TraceHeader::replayedDevices
  // names them all), the trace keeps only what comes from outside it:
  // A byte arrived on the serial line: value = the byte. flags & kFlagLine:
  // from `--serial-input`'s line, during the guest's access to the UART at
  // this step; otherwise from the terminal, between instructions, before
  // the instruction of step `step` runs.
  kSerialInput = 17,
  // The CPU was halted and the record loop moved virtual time forward
  // without steps: value = the clock's nanoseconds after the move
  // (VirtualClock::nowNs). Where it moves to is a deadline the machine
  // computes, or under --realtime the wall clock: the trace says which.
  kIdle = 18,
  // value = ttvm::machine::Machine::deviceDigest() after this step: the
  // machine's device state, beside the CPU's kStateDigest of the same step.
  kDeviceDigest = 19,
  // Since 1.5, in KVM traces (docs/kvm-recording.md, "Between exits"): the
  // recorder stopped the vCPU between exits (a kick) at an instruction
  // boundary the replay finds by its state. A kStopPoint is preceded by the
  // kDirtyPages runs it covers:
  // guest-physical pages [address, address + count) were written since the
  // previous stop point (KVM's dirty log).
  kDirtyPages = 20,
  // address = RIP, value = ttvm::machine::stopFingerprint of the registers
  // and of the contents of the pages of the kDirtyPages runs before it,
  // count = ttvm::machine::stopQuickKey (the general registers and RFLAGS:
  // a cheap first test).
  kStopPoint = 21,
};
inline constexpr int kNumEventKinds = 22;  // index space for per-kind tables (0 unused)
inline constexpr uint32_t kDiskSectorBytes = 512;

std::string_view eventKindName(EventKind k);
bool isValidEventKind(uint8_t k);

// One non-deterministic input or notable point of a run. Small and flat (no
// heap), so appending one is cheap. Fields a kind does not use are zero;
// use the named constructors to get that right.
struct TraceEvent {
  static constexpr uint8_t kFlagOk = 1;
  static constexpr uint8_t kFlagLine = 1;  // kSerialInput: from the line, in a UART access

  uint64_t step = 0;     // step count (emulator) or exit number (KVM); see above
  uint64_t address = 0;  // port number, physical address or MSR index
  uint64_t value = 0;    // zero-extended to 64 bits
  uint32_t count = 0;    // port I/O: number of items this event moved (1 unless string I/O
                         // was recorded as one exit); 0 for other kinds
  EventKind kind = EventKind::kHlt;
  uint8_t size = 0;   // access size in bytes: 1, 2, 4 or 8; 0 where it has no meaning
  uint8_t flags = 0;  // kFlagOk for kRdrand/kMsrWrite

  bool operator==(const TraceEvent&) const = default;

  static TraceEvent portIn(uint64_t step, uint16_t port, uint8_t size, uint32_t value,
                           uint32_t count = 1) {
    return {step, port, value, count, EventKind::kPortIn, size, 0};
  }
  static TraceEvent portOut(uint64_t step, uint16_t port, uint8_t size, uint32_t value,
                            uint32_t count = 1) {
    return {step, port, value, count, EventKind::kPortOut, size, 0};
  }
  static TraceEvent mmioRead(uint64_t step, uint64_t addr, uint8_t size, uint64_t value) {
    return {step, addr, value, 0, EventKind::kMmioRead, size, 0};
  }
  static TraceEvent mmioWrite(uint64_t step, uint64_t addr, uint8_t size, uint64_t value) {
    return {step, addr, value, 0, EventKind::kMmioWrite, size, 0};
  }
  static TraceEvent interrupt(uint64_t step, uint8_t vector) {
    return {step, 0, vector, 0, EventKind::kInterrupt, 0, 0};
  }
  static TraceEvent nmi(uint64_t step) { return {step, 0, 0, 0, EventKind::kNmi, 0, 0}; }
  static TraceEvent interruptWindow(uint64_t step) {
    return {step, 0, 0, 0, EventKind::kInterruptWindow, 0, 0};
  }
  static TraceEvent rdtsc(uint64_t step, uint64_t tsc) {
    return {step, 0, tsc, 0, EventKind::kRdtsc, 0, 0};
  }
  static TraceEvent rdrand(uint64_t step, uint8_t size, std::optional<uint64_t> value) {
    return {step, 0, value.value_or(0), 0, EventKind::kRdrand, size, value ? kFlagOk : uint8_t{0}};
  }
  static TraceEvent msrRead(uint64_t step, uint32_t index, uint64_t value) {
    return {step, index, value, 0, EventKind::kMsrRead, 0, 0};
  }
  static TraceEvent msrWrite(uint64_t step, uint32_t index, uint64_t value, bool accepted) {
    return {step, index, value, 0, EventKind::kMsrWrite, 0, accepted ? kFlagOk : uint8_t{0}};
  }
  static TraceEvent debugExit(uint64_t step, uint32_t status) {
    return {step, 0, status, 0, EventKind::kDebugExit, 0, 0};
  }
  static TraceEvent hlt(uint64_t step) { return {step, 0, 0, 0, EventKind::kHlt, 0, 0}; }
  static TraceEvent stateDigest(uint64_t step, uint64_t digest) {
    return {step, 0, digest, 0, EventKind::kStateDigest, 0, 0};
  }
  static TraceEvent endOfRun(uint64_t step) { return {step, 0, 0, 0, EventKind::kEndOfRun, 0, 0}; }
  static TraceEvent diskSector(uint64_t step, uint8_t slot, uint64_t lba, uint32_t index) {
    return {step, lba, slot, index, EventKind::kDiskSector, 0, 0};
  }
  static TraceEvent serialInput(uint64_t step, uint8_t byte, bool line) {
    return {step, 0, byte, 0, EventKind::kSerialInput, 0, line ? kFlagLine : uint8_t{0}};
  }
  static TraceEvent idle(uint64_t step, uint64_t nowNs) {
    return {step, 0, nowNs, 0, EventKind::kIdle, 0, 0};
  }
  static TraceEvent deviceDigest(uint64_t step, uint64_t digest) {
    return {step, 0, digest, 0, EventKind::kDeviceDigest, 0, 0};
  }
  static TraceEvent dirtyPages(uint64_t step, uint64_t firstPage, uint32_t pages) {
    return {step, firstPage, 0, pages, EventKind::kDirtyPages, 0, 0};
  }
  static TraceEvent stopPoint(uint64_t step, uint64_t rip, uint64_t fingerprint,
                              uint32_t quickKey) {
    return {step, rip, fingerprint, quickKey, EventKind::kStopPoint, 0, 0};
  }
};

// "2023-11-14 22:13:20 UTC" for a time in ns since 1970 (header times).
std::string utcTimeText(int64_t unixNs);

// "a slice of crash.ttvm: steps 100..200 of its 0..200 (step numbers are
// the source's; ...)", for the commands that open a slice.
std::string describeSlice(const SliceOrigin& o);

// "step 12 PortOut port=0x3f8 size=1 value=0x41", for messages and `ttvm info`.
std::string describeEvent(const TraceEvent& e);

// How a run ended. Stored by number: never reuse one.
enum class EndReason : uint8_t {
  kExitDevice = 0,  // the guest wrote the exit device; exitStatus holds its value
  kShutdown = 1,    // ACPI/keyboard-controller shutdown
  kTripleFault = 2,
  kPanic = 3,  // pvpanic or a guest-reported panic
  kReset = 4,
  kHang = 5,           // the hang watchdog fired
  kMaxSteps = 6,       // the step limit was reached
  kTimeout = 7,        // the wall-clock limit was reached
  kInterrupted = 8,    // Ctrl-C / SIGTERM
  kInternalError = 9,  // ttvm failed; message says how
};
std::string_view endReasonName(EndReason r);

// One of the last instructions executed before the end (for crash reports).
struct RecentInstruction {
  uint64_t rip = 0;            // linear address
  std::vector<uint8_t> bytes;  // 1..15 instruction bytes
  bool operator==(const RecentInstruction&) const = default;
};

// What the footer says about the end of the run.
struct TraceEnd {
  EndReason reason = EndReason::kInternalError;
  uint32_t exitStatus = 0;  // kExitDevice: the value written; else 0
  std::string message;      // human-readable detail, e.g. "triple fault at rip 0x1234"
  CpuState finalCpu;
  uint64_t finalDigest = 0;  // stateDigest(finalCpu)
  uint64_t steps = 0;        // total steps (emulator) or exits (KVM) of the run
  std::vector<RecentInstruction> lastInstructions;  // oldest first
  bool operator==(const TraceEnd&) const = default;
};

// The end `ttvm recover` writes for a recording that stopped without a
// footer: reason kInterrupted, the state the replay reached at the last
// recorded step, and a message that starts with "recovered at step N".
TraceEnd recoveredEnd(const CpuState& finalCpu, uint64_t finalDigest, const std::string& why);
// Whether `e` was written that way (the checks then cover the readable prefix).
bool isRecoveredEnd(const TraceEnd& e);

// One entry of the chunk index.
struct ChunkInfo {
  uint64_t offset = 0;           // byte offset of the chunk's frame in the file
  uint32_t compressedBytes = 0;  // payload bytes on disk
  uint32_t rawBytes = 0;         // payload bytes after decompression
  uint32_t eventCount = 0;       // >= 1
  uint64_t firstStep = 0;        // step of the first event
  uint64_t lastStep = 0;         // step of the last event
  bool operator==(const ChunkInfo&) const = default;
};

// One entry of the snapshot index.
struct SnapshotInfo {
  uint64_t offset = 0;  // byte offset of the snapshot's first frame
  uint64_t step = 0;
  bool operator==(const SnapshotInfo&) const = default;
};

}  // namespace ttvm
