// The interfaces between the Machine and its devices (kvmtool/Firecracker
// style): a device is a small object that owns its registers and answers the
// accesses a bus hands it. Devices never reach for globals; what they need
// (an interrupt line, the clock, the console, a way to end the run) is given
// to them at construction, so several machines can live in one process.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ttvm/base/result.h"
#include "ttvm/formats/trace_types.h"
#include "ttvm/machine/state_io.h"

namespace ttvm::machine {

// Every device: a stable name (the key of its saved state) and its state.
class Device {
 public:
  virtual ~Device() = default;
  virtual std::string_view name() const = 0;
  virtual void saveState(StateWriter& out) const = 0;
  virtual Status loadState(StateReader& in) = 0;
};

// A device on the port bus. `port` is the absolute port of the access's first
// byte; size is 1, 2 or 4. Values are zero-extended.
class PortDevice {
 public:
  virtual ~PortDevice() = default;
  virtual uint32_t portRead(uint16_t port, unsigned size) = 0;
  virtual void portWrite(uint16_t port, unsigned size, uint32_t value) = 0;
};

// A device on the MMIO bus. `offset` is relative to the start of the range
// the device was mapped at; size is 1, 2, 4 or 8.
class MmioDevice {
 public:
  virtual ~MmioDevice() = default;
  virtual uint64_t mmioRead(uint64_t offset, unsigned size) = 0;
  virtual void mmioWrite(uint64_t offset, unsigned size, uint64_t value) = 0;
};

// An MMIO device whose window the guest moves or switches off through CPU
// state (the local APIC's page follows IA32_APIC_BASE). The bus asks for the
// window at every access, so it follows any change the CPU made, restored
// checkpoints included, without being told.
class MovableMmioDevice : public MmioDevice {
 public:
  // The window's first physical address now, or nullopt while it is off.
  virtual std::optional<uint64_t> mmioWindow() const = 0;
};

// A device with a timer. Deadlines are in virtual nanoseconds (VirtualClock).
// The machine runs the CPU up to the earliest deadline, then calls advanceTo.
// Invariant: advanceTo(now) changes nothing (state, interrupts) while now is
// before nextDeadlineNs() or there is none. Record and replay call it at
// different boundaries (a replay stops where a debugger or a checkpoint
// asks), so a change made between deadlines would happen at different steps
// and the device digests would differ.
class TimedDevice {
 public:
  virtual ~TimedDevice() = default;
  // The earliest virtual time at which the device has something to do.
  virtual std::optional<uint64_t> nextDeadlineNs() const = 0;
  // Processes everything due at or before nowNs (raises interrupts).
  virtual void advanceTo(uint64_t nowNs) = 0;
};

// Where guest console output goes (the terminal, a test's buffer).
class ConsoleSink {
 public:
  virtual ~ConsoleSink() = default;
  virtual void write(uint8_t byte) = 0;
};

// A device's request to end the run (isa-debug-exit, pvpanic, reset).
struct StopRequest {
  EndReason reason = EndReason::kShutdown;
  uint32_t exitStatus = 0;  // kExitDevice: the process exit status ((v << 1) | 1)
  uint32_t guestValue = 0;  // kExitDevice: the value the guest wrote
  std::string message;
};

class RunControl {
 public:
  virtual ~RunControl() = default;
  // The first request wins; later ones are ignored.
  virtual void requestStop(StopRequest request) = 0;
};

}  // namespace ttvm::machine
