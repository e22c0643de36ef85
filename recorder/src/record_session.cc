#include "ttvm/recorder/record_session.h"

#include <cinttypes>
#include <cstdio>

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "tail_replay.h"
#include "ttvm/base/hex.h"
#include "ttvm/base/log.h"
#include "ttvm/recorder/emu_backend.h"

namespace ttvm {
using ttvm::machine::LoadedGuest;
using ttvm::machine::Machine;
using ttvm::machine::VirtualClock;
RecordSession::RecordSession(Machine& machine, LoadedGuest guest, RecordOptions options)
    : machine_(machine), guest_(std::move(guest)), options_(std::move(options)) {}

RecordSession::~RecordSession() {
  machine_.bindCpuState(nullptr);
}

Status RecordSession::start() {
  header_.ttvmVersion = options_.ttvmVersion;
  header_.host = options_.host;
  // The backend decides what events carry (steps or exit numbers): built
  // first, the header says which.
  env_ = std::make_unique<RecordingEnvironment>(machine_, nullptr, options_.interruptFlag,
                                                options_.logDeviceAccesses);
  if (options_.makeBackend) {
    auto b = options_.makeBackend(machine_.cpuModel(), machine_.physicalMemory(), *env_);
    if (!b.ok()) return b.error();
    cpu_ = std::move(b).value();
  } else {
    cpu_ = std::make_unique<EmuBackend>(machine_.cpuModel(), machine_.physicalMemory(), *env_);
  }
  header_.backend = cpu_->kind();
  if (!cpu_->countsSteps() && options_.betweenExits) {
    // A device the guest reads between two exits sees the wall time it ran
    // in between (a PIT count latched twice around a loop, a PM timer
    // polled), not only the clock's ns per exit.
    env_->setBeforeAccess([this] {
      if (inRun_) followWallTime();
    });
  }
  if (!cpu_->countsSteps()) {
    // Events carry exit numbers (KVM): a replay cannot run the devices in
    // step with the recording's clock, so every answer goes to the trace
    // and the replay takes them from there (the old mode, in exit order).
    TTVM_TRY(machine_.setReplayedDevices({}));
  }
  header_.createdUnixNs = options_.createdUnixNs;
  header_.machine = machine_.config();
  header_.cpuModel = machine_.cpuModel();
  header_.images = guest_.images;
  header_.replayedDevices = machine_.replayedDevices();
  header_.emulatedPages = cpu_->emulatedPages();

  if (!options_.tracePath.empty()) {
    InitialState init;
    init.cpu = guest_.cpu;
    init.ram = machine_.nonZeroPages();
    init.deviceState = machine_.saveDeviceState();
    // The record loop hands chunks over between slices (flushIfDue below), so
    // that the events since the tail checkpoint stay in the writer's buffer.
    TraceWriter::Options wo = options_.writerOptions;
    wo.flushFromAppend = false;
    auto w = TraceWriter::create(options_.tracePath, header_, init, wo);
    if (!w) return makeError("cannot write the trace: " + w.error().message);
    writer_ = std::move(*w);
    // The tail re-execution matches events by step: not for exit numbers.
    if (options_.recentInstructions > 0 && cpu_->countsSteps()) {
      void* p = mmap(nullptr, machine_.ram().size(), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p != MAP_FAILED) {
        shadow_ = static_cast<uint8_t*>(p);
        shadowBytes_ = machine_.ram().size();
        // A fresh anonymous mapping reads as zeros: copy only the non-zero
        // pages (RamPages::applyTo would first zero, and so fault in, every
        // page of guest RAM — hundreds of ms for a large --ram).
        tailEnabled_ = true;
        for (size_t k = 0; k < init.ram.pageCount(); ++k) {
          const uint64_t at = init.ram.numbers[k] * kPageSize;
          if (at >= shadowBytes_) {
            tailEnabled_ = false;
            break;
          }
          std::memcpy(shadow_ + at, init.ram.page(k).data(),
                      std::min<uint64_t>(kPageSize, shadowBytes_ - at));
        }
        checkpoint_ = guest_.cpu;
        checkpointDevices_ = machine_.saveReplayedState();
      }
    }
  }
  env_->setWriter(writer_.get());
  cpu_->setState(guest_.cpu);
  env_->bindCpu(&cpu_->state());
  machine_.bindCpuState(&cpu_->state());
  if (tailEnabled_) cpu_->setDirtyTracking(true);
  if (writer_) appendDigests();
  return {};
}

void RecordSession::appendDigests() {
  const CpuState& s = cpu_->state();
  if (!cpu_->countsSteps()) {
    // Under KVM the position is an exit number, which the replay's step
    // count is not: the digest hashes the state at step 0 (kvm_steps.h
    // checks it so and rewrites it for the step the replay assigns).
    CpuState atZero = s;
    atZero.steps = 0;
    writer_->append(TraceEvent::stateDigest(s.steps, stateDigest(atZero)));
    return;
  }
  writer_->append(TraceEvent::stateDigest(s.steps, stateDigest(s)));
  if (machine_.replaysWholeMachine())
    writer_->append(TraceEvent::deviceDigest(s.steps, machine_.deviceDigest()));
}

TraceEnd RecordSession::makeEnd(EndReason reason, std::string message, uint32_t exitStatus) const {
  TraceEnd end;
  end.reason = reason;
  end.exitStatus = exitStatus;
  end.message = std::move(message);
  if (cpu_) {
    const CpuState& s = cpu_->state();
    end.finalCpu = s;
    end.finalDigest = stateDigest(s);
    end.steps = s.steps;
    // The instruction the CPU stopped at (the crash site for a fault or
    // panic). The bytes are read through the guest's paging.
    RecentInstruction ri;
    ri.rip = s.segment(SegReg::kCs).base + s.rip;
    if (cpuMode(s) == CpuMode::kLong64) ri.rip = s.rip;
    std::vector<uint8_t> bytes(15);
    for (size_t n = 15; n > 0; --n) {
      bytes.resize(n);
      if (cpu_->readLinear(ri.rip, bytes)) {
        ri.bytes = bytes;
        break;
      }
    }
    if (!ri.bytes.empty()) end.lastInstructions.push_back(std::move(ri));
  }
  return end;
}

void RecordSession::takeCheckpoint() {
  auto ram = machine_.ram();
  for (uint64_t page : cpu_->takeDirtyPages())
    std::memcpy(shadow_ + page * kPageSize, ram.data() + page * kPageSize, kPageSize);
  checkpoint_ = cpu_->state();
  checkpointDevices_ = machine_.saveReplayedState();
  tailHandedOver_ = writer_->eventsHandedOver();
  tailMark_ = writer_->buffered().size();
}

void RecordSession::keepTailInStep() {
  if (tailEnabled_ && (writer_->eventsHandedOver() != tailHandedOver_ ||
                       cpu_->state().steps - checkpoint_.steps >= options_.tailWindow))
    takeCheckpoint();
}

void RecordSession::fillLastInstructions(TraceEnd& end) {
  if (!tailEnabled_) return;
  TTVM_ASSERT(writer_->eventsHandedOver() == tailHandedOver_,
              "the trace writer handed over events after the tail checkpoint");
  // The shadow holds RAM as of the checkpoint (pages dirtied since were not
  // copied): the re-execution rewrites them as the recording did.
  TailResult t =
      replayTail(machine_.cpuModel(), std::span<uint8_t>(shadow_, shadowBytes_),
                 machine_.physicalMemory().mmioHoles, checkpoint_,
                 writer_->buffered().subspan(tailMark_), writer_->bufferedSectors(), end.finalCpu,
                 options_.recentInstructions, TailDevices{&header_, checkpointDevices_, &machine_});
  tailEnabled_ = false;  // the shadow no longer holds the checkpoint
  if (!t.reachedFinalState) {
    tailProblem = t.problem;
    TTVM_LOG("recorder", kWarn,
             "re-executing the last steps from step "
                 << checkpoint_.steps << " did not reproduce the recording: " << t.problem);
  }
  if (t.instructions.empty()) return;
  // (A triple fault is a step of its own: the faulting instruction ends the
  // list, as the crash site.)
  end.lastInstructions = std::move(t.instructions);
}

Result<RecordResult> RecordSession::finish(TraceEnd end) {
  RecordResult result;
  if (writer_ && !closed_) {
    fillLastInstructions(end);
    if (end.reason == EndReason::kExitDevice)
      writer_->append(TraceEvent::debugExit(end.steps, end.exitStatus));
    writer_->append(TraceEvent::endOfRun(end.steps));
    result.events = writer_->eventsAppended();
    closed_ = true;
    Status s = writer_->close(end);
    if (!s.ok())
      return makeError("the trace could not be written: " + s.error().message +
                       ". The run ended at step " + std::to_string(end.steps) + " (" +
                       std::string(endReasonName(end.reason)) +
                       "); what reached the file is readable, and `ttvm recover` completes it");
    result.traceBytes = writer_->bytesWritten();
  }
  result.end = std::move(end);
  result.wallSeconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - startTime_).count();
  result.unimplemented = cpu_->unimplementedLog();
  return result;
}

void RecordSession::emergencyClose(const char* message) {
  if (!writer_ || closed_) return;
  closed_ = true;
  TraceEnd end = makeEnd(EndReason::kInternalError, message);
  writer_->append(TraceEvent::endOfRun(end.steps));
  (void)writer_->close(end);
}

void RecordSession::followWallTime() {
  machine_.clock().skipTo(runStartNs_ +
                          uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                       std::chrono::steady_clock::now() - runStart_)
                                       .count()));
}

uint64_t RecordSession::wallNsSinceStart() const {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now() - startTime_)
                                   .count());
}

Result<RecordResult> RecordSession::run() {
  TTVM_ASSERT(cpu_ != nullptr, "RecordSession::run() before start()");
  startTime_ = std::chrono::steady_clock::now();
  const auto deadline =
      options_.timeoutSeconds > 0
          ? startTime_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                             std::chrono::duration<double>(options_.timeoutSeconds))
          : std::chrono::steady_clock::time_point::max();
  VirtualClock& clock = machine_.clock();
  const CpuState& s = cpu_->state();
  uint64_t nextDigest = options_.digestInterval;
  uint64_t nextSnapshot = options_.snapshotInterval;
  uint64_t haltedSinceNs = 0;
  bool halted = false;
  uint64_t hltLoggedAt = ~0ull;

  for (;;) {
    // Why the last slice ended, in order of precedence.
    if (const auto& stop = machine_.stopRequest()) {
      return finish(makeEnd(stop->reason, stop->message,
                            stop->reason == EndReason::kExitDevice ? stop->guestValue : 0));
    }
    if (options_.interruptFlag != nullptr && *options_.interruptFlag != 0)
      return finish(
          makeEnd(EndReason::kInterrupted, *options_.interruptFlag == kInterruptByConsole
                                               ? "ended from the serial console (Ctrl-A x)"
                                               : "interrupted by a signal (Ctrl-C or SIGTERM)"));
    if (std::chrono::steady_clock::now() >= deadline)
      return finish(
          makeEnd(EndReason::kTimeout,
                  "wall-clock limit of " + std::to_string(options_.timeoutSeconds) + " s reached"));
    if (options_.maxSteps != 0 && s.steps >= options_.maxSteps)
      return finish(makeEnd(EndReason::kMaxSteps,
                            "step limit of " + std::to_string(options_.maxSteps) + " reached"));
    if (writer_ && !writer_->ok())
      return finish(makeEnd(EndReason::kInternalError,
                            "trace write failed: " + writer_->status().error().message));
    if (options_.poll) options_.poll(machine_);
    // The writer hands chunks over only here and below (between slices): a
    // full buffer, or the flush interval passed.
    if (writer_) {
      (void)writer_->flushIfDue();
      keepTailInStep();
    }

    clock.clearReschedule();
    machine_.advanceTimers();

    uint64_t budget = options_.sliceCap;
    if (writer_) budget = std::min(budget, nextDigest - s.steps);
    if (writer_ && nextSnapshot != 0) budget = std::min(budget, nextSnapshot - s.steps);
    if (options_.maxSteps != 0) budget = std::min(budget, options_.maxSteps - s.steps);
    if (auto d = machine_.nextDeadlineNs())
      budget = std::min(budget, std::max<uint64_t>(1, clock.stepsUntil(*d)));

    const bool betweenExits = !cpu_->countsSteps() && options_.betweenExits;
    if (betweenExits) {
      // Virtual time follows the wall time the guest runs (KVM cannot count
      // steps): the backend stops a guest that does not exit when the next
      // deadline is due in wall time.
      const uint64_t now = clock.nowNs();
      const auto d = machine_.nextDeadlineNs();
      cpu_->setWallSlice(std::chrono::nanoseconds(d ? (*d > now ? *d - now : 0) : ~0ull >> 2));
      runStartNs_ = now;
      runStart_ = std::chrono::steady_clock::now();
      inRun_ = true;
    }
    uint64_t before = s.steps;
    StepResult r = cpu_->run(budget);
    if (betweenExits) {
      followWallTime();
      inRun_ = false;
      for (const TraceEvent& e : cpu_->takeStopPoint())
        if (writer_) writer_->append(e);
    }
    if (s.steps != before) halted = false;
    if (!cpu_->failure().empty())
      return finish(makeEnd(EndReason::kInternalError, cpu_->failure()));

    if (writer_ && s.steps >= nextDigest) {
      appendDigests();
      nextDigest = (s.steps / options_.digestInterval + 1) * options_.digestInterval;
    }

    if (writer_ && nextSnapshot != 0 && s.steps >= nextSnapshot) {
      Snapshot snap;
      snap.step = s.steps;
      snap.cpu = s;
      snap.ram = machine_.nonZeroPages();
      snap.deviceState = machine_.saveDeviceState();
      Status st = writer_->addSnapshot(snap);
      keepTailInStep();
      if (!st.ok())
        return finish(
            makeEnd(EndReason::kInternalError, "writing a snapshot: " + st.error().message));
      nextSnapshot = (s.steps / options_.snapshotInterval + 1) * options_.snapshotInterval;
    }

    switch (r.outcome) {
      case StepOutcome::kTripleFault:
        return finish(makeEnd(
            EndReason::kTripleFault,
            "triple fault at rip " + hex(s.rip) + " (step " + std::to_string(s.steps) + ")"));
      case StepOutcome::kHalted: {
        if (!(s.rflags & flags::kIF) && !machine_.nmiPending())
          return finish(
              makeEnd(EndReason::kHang,
                      "HLT with interrupts disabled and nothing pending at rip " + hex(s.rip)));
        if (writer_ && hltLoggedAt != s.steps) {
          writer_->append(TraceEvent::hlt(s.steps));
          hltLoggedAt = s.steps;
          (void)writer_->flushIfDue();
          keepTailInStep();
        }
        if (!halted) {
          halted = true;
          haltedSinceNs = clock.nowNs();
        }
        auto next = machine_.nextDeadlineNs();
        if (!next)
          return finish(makeEnd(EndReason::kHang,
                                "HLT with interrupts enabled but no timer armed and no "
                                "interrupt pending at rip " +
                                    hex(s.rip)));
        // Already past (virtual time moved on with the wall clock while a
        // KVM guest ran, --kvm-stop-points): the loop fires it first.
        if (*next < clock.nowNs()) break;
        if (*next - haltedSinceNs > options_.idleHangNs)
          return finish(makeEnd(EndReason::kHang,
                                "halted at rip " + hex(s.rip) + " for " +
                                    std::to_string(options_.idleHangNs / 1'000'000'000) +
                                    " s of virtual time: timers fire but no interrupt reaches "
                                    "the CPU"));
        // Idle skip: time jumps to the next deadline; no steps, no busy waiting.
        if (options_.realtime) {
          // Pace virtual time to wall time: sleep until the deadline is due
          // in wall time, waking early for terminal input or a signal (the
          // input's interrupt then arrives at the virtual time reached).
          const uint64_t wallBase = clock.nowNs() - wallNsSinceStart();
          while (wallBase + wallNsSinceStart() < *next) {
            if (options_.interruptFlag != nullptr && *options_.interruptFlag != 0) break;
            if (options_.poll) options_.poll(machine_);
            if (machine_.interruptPending()) break;
            uint64_t left = *next - (wallBase + wallNsSinceStart());
            std::this_thread::sleep_for(
                std::chrono::nanoseconds(std::min<uint64_t>(left, 10'000'000)));
          }
          clock.skipTo(std::min(*next, wallBase + wallNsSinceStart()));
          appendIdle();
          break;
        }
        clock.skipTo(*next);
        appendIdle();
        break;
      }
      default: break;  // retired (budget used), interrupt/exception delivered, stop requested
    }
  }
}

}  // namespace ttvm
