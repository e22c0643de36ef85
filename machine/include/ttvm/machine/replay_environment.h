// ReplayEnvironment: the Environment of a replay. Every answer the CPU asks
// for comes from the trace, never from a device.
//
// Matching rule. Events carry the step during which the CPU consumed them
// (docs/architecture.md): a request made while CpuState::steps == N must be
// the trace's next event and that event's step must be N, with the same
// kind, port/address and size; the recorded value is returned. Writes (port
// out, MMIO write, MSR write) also compare the value. interruptPending() is
// true exactly when the next event is kInterrupt at the current step (NMI
// likewise). Anything else is a divergence: it is recorded (first one wins),
// the CPU gets a harmless answer (all-ones, no interrupt) and stopRequested()
// turns true so the CPU stops after the current step.
//
// Replay-computed devices. When the trace names replayed devices
// (TraceHeader::replayedDevices, bindMachine), their port accesses are not
// in the trace: the environment hands them to the machine's device, which
// computes the answer. A disk sector such a device reads comes from the
// trace: the first read of a sector at this step consumes its kDiskSector
// event (the recorder logged it right there) and keeps its bytes in a
// sector table; a later read, or one after a restore to an earlier
// position, finds it in the table (an image's content never changes). A
// sector neither holds is a divergence naming the disk, the LBA and the
// step: the replay never guesses a sector.
//
// The whole machine (a 1.3 trace whose header names every device,
// Machine::replaysWholeMachine). The bound machine answers every question
// of the CPU — ports, MMIO, the TSC, RDRAND, MSRs, interrupts and NMIs —
// exactly as it did while recording, and the trace supplies only what came
// from outside: serial bytes (the line's inside a UART access through the
// UART's line source, the terminal's at instruction boundaries through
// applyBoundaryInputs), disk sectors, and the idle skips of a halted CPU
// (takeIdle). A recording made with --log-device-reads also holds every
// answer: each one found at its step is compared with the replayed
// device's, and a difference is a divergence naming the device. The
// replay loop (replay_loop.h) steps the machine's timers with the CPU.
//
// Passive events (state digests, HLT marks, interrupt windows, debug-exit
// values, end of run) are consumed by the session at instruction boundaries
// (takeBoundaryEvent), where a digest can be compared with a whole state.
//
// Position. The environment reads the trace chunk by chunk through a small
// cache of decoded chunks; its position (chunk, index) is a value that
// checkpoints store and restore.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "ttvm/emulator/cpu.h"
#include "ttvm/emulator/cpu_state.h"
#include "ttvm/emulator/environment.h"
#include "ttvm/formats/trace_reader.h"
#include "ttvm/machine/divergence.h"

namespace ttvm::machine {

class Machine;

// Where the next event of a trace is: chunk number and index inside it.
struct EventPosition {
  size_t chunk = 0;
  size_t index = 0;
  bool operator==(const EventPosition&) const = default;
  auto operator<=>(const EventPosition&) const = default;
};

// Events that carry no input: consumed at instruction boundaries.
bool isPassiveEvent(EventKind k);

class ReplayEnvironment final : public Environment {
 public:
  // `reader` must outlive the environment; `cpu` is the state of the CPU it
  // serves (read for the current step).
  ReplayEnvironment(const EventSource& source, const CpuState* cpu);
  ~ReplayEnvironment() override;
  ReplayEnvironment(const ReplayEnvironment&) = delete;
  ReplayEnvironment& operator=(const ReplayEnvironment&) = delete;

  // Environment.
  uint32_t portIn(uint16_t port, unsigned size) override;
  void portOut(uint16_t port, unsigned size, uint32_t value) override;
  uint64_t mmioRead(uint64_t physAddr, unsigned size) override;
  void mmioWrite(uint64_t physAddr, unsigned size, uint64_t value) override;
  uint64_t readTsc() override;
  std::optional<uint64_t> readRandom(unsigned size) override;
  std::optional<uint64_t> readMsr(uint32_t index) override;
  bool writeMsr(uint32_t index, uint64_t value) override;
  bool interruptPending() override;
  uint8_t acknowledgeInterrupt() override;
  bool nmiPending() override;
  void acknowledgeNmi() override;
  bool stopRequested() override;
  const volatile uint32_t* eventHint() const override;

  // Called by the session before each CPU slice: `eventNow` says whether the
  // trace's next event is at the current step. The session never runs a
  // slice past the next event's step, so inside a slice that starts before
  // it no interrupt or NMI can be pending and the CPU may skip asking.
  // (A whole-machine replay reads the machine's hint instead.)
  void beginSlice(bool eventNow) {
    hint_ = (eventNow || divergence_.has_value() || externalStop_) ? 1u : 0u;
  }

  // The next event, or nullptr at the end of the trace (or when a chunk could
  // not be read: see readError()).
  const TraceEvent* peek() { return head_ != nullptr ? head_ : peekSlow(); }
  // Consumes the next event (which must exist).
  void advance();
  EventPosition position() const { return pos_; }
  void setPosition(EventPosition p);
  // The last event consumed (for divergence reports).
  const std::optional<TraceEvent>& lastConsumed() const { return last_; }

  // The first divergence since the last clearDivergence(); the RIP/symbol/
  // disassembly fields are filled by the session.
  const std::optional<DivergenceReport>& divergence() const { return divergence_; }
  void diverge(std::string reason, std::string actual);
  void clearDivergence();
  // A trace chunk that could not be decoded (damaged file); empty when none.
  const std::string& readError() const { return readError_; }

  // The CPU state whose step count positions requests (set once the CPU exists).
  void bindCpuState(const CpuState* cpu) { cpu_ = cpu; }
  // The machine whose replay-computed devices (Machine::portReplayed) answer
  // their ports, or the whole machine (see above); null (the default) for a
  // trace that logged every access.
  void bindMachine(Machine* machine);
  bool wholeMachine() const { return whole_; }

  // Whole machine, at an instruction boundary: hands the terminal's bytes
  // recorded at the current step to the UART. Returns how many.
  size_t applyBoundaryInputs();
  // Whether the terminal's bytes next in the trace at the current step are
  // followed by an idle skip of the same step: they arrived while the
  // recorder waited out a halt (--realtime), after the CPU had halted.
  bool inputsBeforeIdle();
  // Whole machine, CPU halted: moves virtual time as the recording did at
  // this step (the next input is kIdle here). False when it is not.
  bool takeIdle();

  // Where a disk sector the trace does not hold comes from (the recorder's
  // tail re-execution: the sectors it logged before its checkpoint, which
  // the recorded image holds). Without one, such a read is a divergence.
  using SectorFallback = std::function<bool(unsigned slot, uint64_t lba, std::span<uint8_t> out)>;
  void setSectorFallback(SectorFallback fallback) { sectorFallback_ = std::move(fallback); }

  // Whole machine: called with each device access and interrupt as the
  // replay makes it, in the form an old-mode trace logged it (port and MMIO
  // reads and writes with their values, interrupts and NMIs acknowledged),
  // so that a timeline can index what the trace no longer holds (serial
  // output, interrupts). A position replayed twice reports its accesses
  // twice.
  using AccessObserver = std::function<void(const TraceEvent&)>;
  void observeAccesses(AccessObserver observer) { observer_ = std::move(observer); }
  // Any trace: called by the replay loop with each exception the CPU
  // delivered, `step` being the position before the step that raised it
  // (the faulting or trapping instruction, as Timeline's exception stops
  // land). A step replayed twice reports its exception twice.
  using ExceptionObserver = std::function<void(uint64_t step, const StepResult&)>;
  void observeExceptions(ExceptionObserver observer) { exceptionObserver_ = std::move(observer); }
  void exceptionDelivered(uint64_t step, const StepResult& r) const {
    if (exceptionObserver_) exceptionObserver_(step, r);
  }

  // Disk `slot`'s sector `lba` (512 bytes into `out`) for a replayed disk
  // controller; false (after recording a divergence) when the trace does
  // not hold it. See "Replay-computed devices" above.
  bool diskSector(unsigned slot, uint64_t lba, std::span<uint8_t> out);
  // Sectors the table holds (tests, `ttvm info`).
  size_t knownSectors() const { return sectors_.size(); }

  // Makes stopRequested() true (used to end a run from outside the CPU).
  void requestStop(bool on);

 private:
  // The next event if it is an input request at the current step, else
  // records a divergence for `actual` and returns nullptr.
  const TraceEvent* expectRequest(EventKind kind, uint64_t address, unsigned size,
                                  const std::string& actual);
  // The next event after the passive marks of step `now`.
  const TraceEvent* peekInput(uint64_t now);
  // Whole machine: the answer `value` the replayed device gave; when the
  // trace holds the recorded answer here (--log-device-reads), they must agree.
  void checkRecorded(EventKind kind, uint64_t address, unsigned size, uint64_t value,
                     const std::string& device);
  // Whole machine: the line's next byte if the recording sent one here.
  std::optional<uint8_t> takeLineByte();
  void updateAttention();
  bool loadChunk(size_t i);
  const TraceEvent* peekSlow();

  const EventSource& reader_;
  const CpuState* cpu_;
  EventPosition pos_;
  // Decoded chunks: the current one and a few recent ones (restores jump
  // around; decoding a chunk costs far more than a reverse step should).
  struct CachedChunk {
    size_t index = SIZE_MAX;
    std::shared_ptr<const std::vector<TraceEvent>> events;
    std::shared_ptr<const std::vector<uint8_t>> sectors;  // the kDiskSector events' bytes
    uint64_t lastUse = 0;
  };
  std::vector<CachedChunk> cache_;
  uint64_t useClock_ = 0;
  std::shared_ptr<const std::vector<TraceEvent>> current_;  // chunk pos_.chunk, or null
  std::shared_ptr<const std::vector<uint8_t>> currentSectors_;
  size_t currentIndex_ = SIZE_MAX;
  std::optional<TraceEvent> last_;
  std::optional<DivergenceReport> divergence_;
  std::string readError_;
  bool externalStop_ = false;
  const TraceEvent* head_ = nullptr;  // cached peek(); points into current_
  uint32_t hint_ = 1;
  Machine* machine_ = nullptr;
  bool whole_ = false;
  SectorFallback sectorFallback_;
  AccessObserver observer_;
  ExceptionObserver exceptionObserver_;
  // Disk sectors met so far, by slot << 56 | LBA (LBAs are 48-bit).
  std::unordered_map<uint64_t, std::array<uint8_t, kDiskSectorBytes>> sectors_;
};

}  // namespace ttvm::machine
