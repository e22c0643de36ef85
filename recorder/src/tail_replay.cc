#include "tail_replay.h"

#include <cinttypes>
#include <cstdio>

#include "ttvm/machine/disk_image.h"
#include "ttvm/machine/replay_environment.h"
#include "ttvm/machine/replay_loop.h"

namespace ttvm {
using ttvm::machine::DiskImage;
using ttvm::machine::Machine;
using ttvm::machine::ReplayEnvironment;
using ttvm::machine::ReplayLoop;
using ttvm::machine::SessionStop;
using ttvm::machine::SessionStopKind;
namespace {

// The recorder's buffer of events since the tail checkpoint, as the one
// chunk of an event source (the sectors its kDiskSector events index).
class BufferedEvents final : public EventSource {
 public:
  BufferedEvents(std::span<const TraceEvent> events, std::span<const uint8_t> sectors)
      : events_(events), sectors_(sectors) {}
  size_t chunkCount() const override { return events_.empty() ? 0 : 1; }
  Status readChunkInto(size_t, std::vector<TraceEvent>& out,
                       std::vector<uint8_t>* sectors) const override {
    out.assign(events_.begin(), events_.end());
    if (sectors != nullptr) sectors->assign(sectors_.begin(), sectors_.end());
    return {};
  }

 private:
  std::span<const TraceEvent> events_;
  std::span<const uint8_t> sectors_;
};

std::string problemOf(const ReplayEnvironment& env) {
  const auto& d = env.divergence();
  std::string p = "at step " + std::to_string(d->step) + " " + d->reason;
  if (!d->actual.empty()) p += " (the replay did " + d->actual + ")";
  if (d->expected) p += "; the recording has " + describeEvent(*d->expected);
  return p;
}

}  // namespace

TailResult replayTail(const CpuModel& model, std::span<uint8_t> ram,
                      std::vector<PhysicalMemory::Range> holes, const CpuState& checkpoint,
                      std::span<const TraceEvent> events, std::span<const uint8_t> sectors,
                      const CpuState& finalState, size_t count, const TailDevices& devices) {
  TailResult result;
  BufferedEvents source(events, sectors);
  ReplayEnvironment env(source, nullptr);
  std::unique_ptr<Machine> replayed;
  if (devices.header != nullptr && !devices.header->replayedDevices.empty()) {
    auto m = Machine::fromTraceHeader(*devices.header);
    Status s = m.ok() ? Status{} : Status(m.error());
    if (s.ok())
      s = (*m)->attachDisksOf(devices.header->machine,
                              [&env](unsigned slot, uint64_t lba, std::span<uint8_t> out) {
                                return env.diskSector(slot, lba, out);
                              });
    if (s.ok()) s = (*m)->loadReplayedState(devices.state);
    if (!s.ok()) {
      result.problem = "cannot build the replayed devices: " + s.error().message;
      return result;
    }
    replayed = std::move(m).value();
    // A sector logged before the checkpoint is not among these events: the
    // recorded image holds it.
    const Machine* recorded = devices.recorded;
    env.setSectorFallback([recorded](unsigned slot, uint64_t lba, std::span<uint8_t> out) {
      const DiskImage* d = recorded != nullptr ? recorded->disk(slot) : nullptr;
      return d != nullptr && d->readObserved(lba, out);
    });
    env.bindMachine(replayed.get());
  }
  PhysicalMemory pm;
  pm.ram = ram;
  pm.mmioHoles = std::move(holes);
  Cpu cpu(model, pm, env);
  cpu.setState(checkpoint);
  env.bindCpuState(&cpu.state());
  if (replayed != nullptr && replayed->replaysWholeMachine()) replayed->bindCpuState(&cpu.state());
  const CpuState& s = cpu.state();
  const uint64_t end = finalState.steps;
  ReplayLoop loop(cpu, env, env.wholeMachine() ? replayed.get() : nullptr, end);
  // Run (fast) to `count` steps before the end, then one step at a time.
  bool failed = false;
  if (end > s.steps + count) failed = loop.runTo(end - count).kind == SessionStopKind::kDivergence;
  std::vector<RecentInstruction> ring;
  while (!failed && s.steps < end) {
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
    const uint64_t before = s.steps;
    const SessionStop stop = loop.runTo(before + 1);
    if (stop.kind == SessionStopKind::kDivergence) failed = true;
    if (s.steps == before) break;  // no progress: the recorded end came first
    // Interrupt and exception deliveries are steps too, but not instructions.
    if (stop.result.outcome != StepOutcome::kInterrupt &&
        stop.result.outcome != StepOutcome::kNmi && !ri.bytes.empty())
      ring.push_back(std::move(ri));
    if (ring.size() > count) ring.erase(ring.begin());
  }
  result.instructions = std::move(ring);
  if (env.divergence()) {
    result.problem = problemOf(env);
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
