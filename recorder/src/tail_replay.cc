#include "tail_replay.h"

#include <cinttypes>
#include <cstdio>

#include "ttvm/machine/bus.h"
#include "ttvm/machine/disk_image.h"

namespace ttvm {
using ttvm::machine::DiskImage;
using ttvm::machine::Machine;
namespace {

bool isInput(EventKind k) {
  switch (k) {
    case EventKind::kPortIn:
    case EventKind::kPortOut:
    case EventKind::kMmioRead:
    case EventKind::kMmioWrite:
    case EventKind::kInterrupt:
    case EventKind::kNmi:
    case EventKind::kRdtsc:
    case EventKind::kRdrand:
    case EventKind::kMsrRead:
    case EventKind::kMsrWrite:
    case EventKind::kDiskSector: return true;
    default: return false;
  }
}

// Answers the CPU from recorded events; any mismatch marks the feed broken
// (the caller then reports that the tail could not be re-executed).
class EventFeed final : public Environment {
 public:
  explicit EventFeed(std::span<const TraceEvent> events) {
    for (const TraceEvent& e : events)
      if (isInput(e.kind)) inputs_.push_back(e);
  }
  void bind(const CpuState* s) { state_ = s; }
  // The machine whose replayed devices answer their ports (may be null).
  void bindDevices(Machine* m) { devices_ = m; }
  bool broken() const { return broken_; }
  const std::string& problem() const { return problem_; }

  // Disk `slot`'s sector `lba`, read by a replayed controller: consumes the
  // kDiskSector event the recording logged here, if it logged one (the first
  // read); the bytes are the recorded image's, which the trace holds.
  bool diskSector(const Machine& recorded, unsigned slot, uint64_t lba, std::span<uint8_t> out) {
    if (broken_) return false;
    if (const TraceEvent* e = peek(); e && e->kind == EventKind::kDiskSector &&
                                      e->step == state_->steps && e->value == slot &&
                                      e->address == lba)
      ++pos_;
    const DiskImage* d = recorded.disk(slot);
    if (d != nullptr && d->readObserved(lba, out)) return true;
    broken_ = true;
    problem_ = "at step " + std::to_string(state_->steps) + " disk " + std::to_string(slot) +
               " sector " + std::to_string(lba) + " was read but the trace does not hold it";
    return false;
  }

  uint32_t portIn(uint16_t port, unsigned size) override {
    if (devices_ != nullptr && devices_->portReplayed(port))
      return devices_->ports().read(port, size);
    const TraceEvent* e = take(EventKind::kPortIn, port);
    return e ? static_cast<uint32_t>(e->value) : static_cast<uint32_t>(~0u >> (32 - 8 * size));
  }
  void portOut(uint16_t port, unsigned size, uint32_t value) override {
    if (devices_ != nullptr && devices_->portReplayed(port))
      return devices_->ports().write(port, size, value);
    take(EventKind::kPortOut, port);
  }
  uint64_t mmioRead(uint64_t addr, unsigned) override {
    const TraceEvent* e = take(EventKind::kMmioRead, addr);
    return e ? e->value : ~0ull;
  }
  void mmioWrite(uint64_t addr, unsigned, uint64_t) override { take(EventKind::kMmioWrite, addr); }
  uint64_t readTsc() override {
    const TraceEvent* e = take(EventKind::kRdtsc, 0);
    return e ? e->value : 0;
  }
  std::optional<uint64_t> readRandom(unsigned) override {
    const TraceEvent* e = take(EventKind::kRdrand, 0);
    if (!e || !(e->flags & TraceEvent::kFlagOk)) return std::nullopt;
    return e->value;
  }
  std::optional<uint64_t> readMsr(uint32_t index) override {
    // Refused reads are not recorded: only a recorded read of this MSR here answers.
    if (const TraceEvent* e = peek();
        e && e->kind == EventKind::kMsrRead && e->address == index && e->step == state_->steps) {
      ++pos_;
      return e->value;
    }
    return std::nullopt;
  }
  bool writeMsr(uint32_t index, uint64_t) override {
    const TraceEvent* e = take(EventKind::kMsrWrite, index);
    return e && (e->flags & TraceEvent::kFlagOk);
  }
  bool interruptPending() override {
    const TraceEvent* e = peek();
    return e && e->kind == EventKind::kInterrupt && e->step == state_->steps;
  }
  uint8_t acknowledgeInterrupt() override {
    const TraceEvent* e = take(EventKind::kInterrupt, 0);
    return e ? static_cast<uint8_t>(e->value) : 0;
  }
  bool nmiPending() override {
    const TraceEvent* e = peek();
    return e && e->kind == EventKind::kNmi && e->step == state_->steps;
  }
  void acknowledgeNmi() override { take(EventKind::kNmi, 0); }
  bool stopRequested() override { return broken_; }

 private:
  const TraceEvent* peek() const { return pos_ < inputs_.size() ? &inputs_[pos_] : nullptr; }
  const TraceEvent* take(EventKind kind, uint64_t address) {
    const TraceEvent* e = peek();
    bool addressed = kind != EventKind::kInterrupt && kind != EventKind::kNmi &&
                     kind != EventKind::kRdtsc && kind != EventKind::kRdrand;
    if (!e || e->kind != kind || e->step != state_->steps || (addressed && e->address != address)) {
      if (!broken_) {
        char buf[160];
        std::snprintf(buf, sizeof buf,
                      "at step %" PRIu64 " the CPU asked for %s 0x%" PRIx64
                      " but the recording has %s",
                      state_->steps, std::string(eventKindName(kind)).c_str(), address,
                      e ? describeEvent(*e).c_str() : "no more events");
        problem_ = buf;
      }
      broken_ = true;
      return nullptr;
    }
    ++pos_;
    return e;
  }

  std::vector<TraceEvent> inputs_;
  size_t pos_ = 0;
  const CpuState* state_ = nullptr;
  Machine* devices_ = nullptr;
  bool broken_ = false;
  std::string problem_;
};

}  // namespace

TailResult replayTail(const CpuModel& model, std::span<uint8_t> ram,
                      std::vector<PhysicalMemory::Range> holes, const CpuState& checkpoint,
                      std::span<const TraceEvent> events, const CpuState& finalState, size_t count,
                      const TailDevices& devices) {
  TailResult result;
  EventFeed feed(events);
  std::unique_ptr<Machine> replayed;
  if (devices.header != nullptr && !devices.header->replayedDevices.empty()) {
    auto m = Machine::fromTraceHeader(*devices.header);
    Status s = m.ok() ? Status{} : Status(m.error());
    if (s.ok())
      s = (*m)->attachDisksOf(
          devices.header->machine,
          [&feed, &devices](unsigned slot, uint64_t lba, std::span<uint8_t> out) {
            return feed.diskSector(*devices.recorded, slot, lba, out);
          });
    if (s.ok()) s = (*m)->loadReplayedState(devices.state);
    if (!s.ok()) {
      result.problem = "cannot build the replayed devices: " + s.error().message;
      return result;
    }
    replayed = std::move(m).value();
    feed.bindDevices(replayed.get());
  }
  PhysicalMemory pm;
  pm.ram = ram;
  pm.mmioHoles = std::move(holes);
  Cpu cpu(model, pm, feed);
  cpu.setState(checkpoint);
  feed.bind(&cpu.state());
  const CpuState& s = cpu.state();
  const uint64_t end = finalState.steps;
  // Run (fast) to `count` steps before the end; run() returns at every
  // interrupt or exception, so loop.
  while (end > s.steps + count && !feed.broken()) {
    uint64_t before = s.steps;
    cpu.run(end - count - s.steps);
    if (s.steps == before) break;  // halted with nothing to deliver
  }
  std::vector<RecentInstruction> ring;
  while (s.steps < end && !feed.broken()) {
    RecentInstruction ri;
    ri.rip = cpuMode(s) == CpuMode::kLong64 ? s.rip : s.segment(SegReg::kCs).base + s.rip;
    std::vector<uint8_t> bytes(15);
    for (size_t n = 15; n > 0; --n) {
      bytes.resize(n);
      if (cpu.readLinear(ri.rip, bytes)) {
        ri.bytes = bytes;
        break;
      }
    }
    uint64_t before = s.steps;
    StepResult r = cpu.step();
    if (s.steps == before) break;  // halted, or already shut down: no progress
    // Interrupt and exception deliveries are steps too, but not instructions.
    if (r.outcome != StepOutcome::kInterrupt && r.outcome != StepOutcome::kNmi && !ri.bytes.empty())
      ring.push_back(std::move(ri));
    if (ring.size() > count) ring.erase(ring.begin());
  }
  result.instructions = std::move(ring);
  if (feed.broken()) {
    result.problem = feed.problem();
  } else if (s.steps != end) {
    result.problem = "re-execution stopped at step " + std::to_string(s.steps) + " before " +
                     std::to_string(end);
  } else if (stateDigest(s) != stateDigest(finalState)) {
    result.problem =
        "re-execution reached step " + std::to_string(end) + " with a different CPU state";
  } else {
    result.reachedFinalState = true;
  }
  return result;
}

}  // namespace ttvm
