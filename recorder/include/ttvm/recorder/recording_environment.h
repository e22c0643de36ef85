// RecordingEnvironment: the Environment of a recording — the live Machine
// answers every question of the CPU, and each answer is appended to the
// trace as an event carrying the CPU's step count at that moment (the step
// that consumes it; CpuState::steps before it is incremented).
//
// This is the split the replayer mirrors: a replay environment answers the
// same calls from the trace instead of the machine. With no writer
// (--no-trace) the environment is the bare machine.
//
// What becomes an event depends on what the replay runs (Machine::
// replayedDevices). A machine that replays the whole machine (every trace
// recorded since 1.3) logs only what comes from outside it: each serial
// byte as it enters the UART (kSerialInput, from the terminal or the
// --serial-input line) and each disk sector the first time it is read from
// its image (kDiskSector); the record loop adds the idle skips (kIdle). Port
// and MMIO accesses, TSC values, RDRAND values, machine-owned MSRs,
// interrupts and NMIs are computed again by the replay, and are logged only
// with `logDeviceAccesses` (`ttvm record --log-device-reads`): the replay
// then checks each of its devices' answers against the recorded one. A
// machine that replays fewer devices (tests building old-mode traces) logs
// every access but those of its replayed devices' ports.
//
// stopRequested() ends the CPU's current slice when a device asked to stop,
// a timer was reprogrammed, or the user interrupted. The CPU asks that, and
// about interrupts, only while the machine's event hint is set
// (Machine::eventHint). The user's interrupt flag does not set it: a Ctrl-C
// is seen when the slice ends, after at most RecordOptions::sliceCap steps
// (~10 ms), if nothing made the CPU ask first.
#pragma once

#include <csignal>
#include <cstdint>
#include <functional>
#include <utility>

#include "ttvm/emulator/environment.h"
#include "ttvm/formats/trace_writer.h"
#include "ttvm/machine/devices/uart_16550.h"
#include "ttvm/machine/machine.h"

namespace ttvm {

class RecordingEnvironment final : public Environment {
 public:
  // `writer` may be null (no trace). `interrupt` (may be null) is a flag a
  // signal handler sets; the record loop sees it between slices, or the
  // current slice ends after a step whose stopRequested() call sees it.
  RecordingEnvironment(machine::Machine& machine, TraceWriter* writer,
                       const volatile std::sig_atomic_t* interrupt = nullptr,
                       bool logDeviceAccesses = false)
      : machine_(machine), interrupt_(interrupt), logDeviceAccesses_(logDeviceAccesses) {
    setWriter(writer);
  }
  ~RecordingEnvironment() override { setWriter(nullptr); }

  // The trace the events go to from now on (null: none). The record loop
  // builds its CPU backend over the environment before the trace exists
  // (the header names the backend).
  void setWriter(TraceWriter* writer) {
    if (writer_ != nullptr) {
      machine_.observeFirstDiskReads(nullptr);
      if (machine_.replaysWholeMachine()) machine_.com1().observeInput(nullptr);
    }
    writer_ = writer;
    logAll_ = writer != nullptr && (logDeviceAccesses_ || !machine_.replaysWholeMachine());
    logPorts_ = writer != nullptr && logDeviceAccesses_;
    if (writer_ == nullptr) return;
    if (machine_.replaysWholeMachine())
      machine_.com1().observeInput([this](uint8_t byte, bool line) {
        writer_->append(TraceEvent::serialInput(step(), byte, line));
      });
    // Sectors go to the trace only where a replay runs the disk controller;
    // otherwise its port reads carry the data.
    if (!machine_.replayedDevices().empty())
      machine_.observeFirstDiskReads(
          [this](unsigned slot, uint64_t lba, std::span<const uint8_t> bytes) {
            writer_->appendDiskSector(step(), static_cast<uint8_t>(slot), lba, bytes);
          });
  }
  RecordingEnvironment(const RecordingEnvironment&) = delete;
  RecordingEnvironment& operator=(const RecordingEnvironment&) = delete;

  // The CPU whose step count stamps the events.
  void bindCpu(const CpuState* state) { state_ = state; }
  // Called before every device access (port, MMIO, TSC, MSR) when set: a
  // KVM recording with stop points brings virtual time up to the wall time
  // the guest has run there, so that a device read between two exits sees
  // the time that passed between them (docs/kvm-recording.md).
  void setBeforeAccess(std::function<void()> f) { beforeAccess_ = std::move(f); }

  uint32_t portIn(uint16_t port, unsigned size) override {
    timeMoves();
    uint32_t v = machine_.portIn(port, size);
    if (logsPort(port)) append(TraceEvent::portIn(step(), port, static_cast<uint8_t>(size), v));
    return v;
  }
  void portOut(uint16_t port, unsigned size, uint32_t value) override {
    timeMoves();
    if (logsPort(port))
      append(TraceEvent::portOut(step(), port, static_cast<uint8_t>(size), value));
    machine_.portOut(port, size, value);
  }
  uint64_t mmioRead(uint64_t addr, unsigned size) override {
    timeMoves();
    uint64_t v = machine_.mmioRead(addr, size);
    if (logAll_) append(TraceEvent::mmioRead(step(), addr, static_cast<uint8_t>(size), v));
    return v;
  }
  void mmioWrite(uint64_t addr, unsigned size, uint64_t value) override {
    timeMoves();
    if (logAll_) append(TraceEvent::mmioWrite(step(), addr, static_cast<uint8_t>(size), value));
    machine_.mmioWrite(addr, size, value);
  }
  uint64_t readTsc() override {
    timeMoves();
    uint64_t v = machine_.readTsc();
    if (logAll_) append(TraceEvent::rdtsc(step(), v));
    return v;
  }
  std::optional<uint64_t> readRandom(unsigned size) override {
    auto v = machine_.readRandom(size);
    if (logAll_) append(TraceEvent::rdrand(step(), static_cast<uint8_t>(size), v));
    return v;
  }
  std::optional<uint64_t> readMsr(uint32_t index) override {
    timeMoves();
    auto v = machine_.readMsr(index);
    // A refused read (#GP) is not an input: the CPU model decides it again on replay.
    if (logAll_ && v) append(TraceEvent::msrRead(step(), index, *v));
    return v;
  }
  bool writeMsr(uint32_t index, uint64_t value) override {
    timeMoves();
    bool ok = machine_.writeMsr(index, value);
    if (logAll_) append(TraceEvent::msrWrite(step(), index, value, ok));
    return ok;
  }
  bool interruptPending() override { return machine_.interruptPending(); }
  uint8_t acknowledgeInterrupt() override {
    uint8_t v = machine_.acknowledgeInterrupt();
    if (logAll_) append(TraceEvent::interrupt(step(), v));
    return v;
  }
  bool nmiPending() override { return machine_.nmiPending(); }
  void acknowledgeNmi() override {
    machine_.acknowledgeNmi();
    if (logAll_) append(TraceEvent::nmi(step()));
  }
  bool stopRequested() override {
    return machine_.serviceNeeded() || (interrupt_ != nullptr && *interrupt_ != 0);
  }
  const volatile uint32_t* eventHint() const override { return machine_.eventHint(); }

 private:
  uint64_t step() const { return state_ != nullptr ? state_->steps : 0; }
  bool logsPort(uint16_t port) const {
    return logPorts_ || (logAll_ && !machine_.portReplayed(port));
  }
  void append(const TraceEvent& e) { writer_->append(e); }
  void timeMoves() {
    if (beforeAccess_) beforeAccess_();
  }

  machine::Machine& machine_;
  TraceWriter* writer_ = nullptr;
  const volatile std::sig_atomic_t* interrupt_;
  bool logDeviceAccesses_;
  // Every answer is logged (an old-mode machine, or --log-device-reads);
  // ports also those of replayed devices (--log-device-reads).
  bool logAll_ = false;
  bool logPorts_ = false;
  const CpuState* state_ = nullptr;
  std::function<void()> beforeAccess_;
};

}  // namespace ttvm
