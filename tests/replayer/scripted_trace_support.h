// Builds traces for the replayer's tests without the recorder's devices: a
// small real-mode program runs on a Cpu whose Environment is a script
// (pseudo-random port input, a timer interrupt at pseudo-random intervals,
// RDTSC) and every answer is appended to a TraceWriter exactly as the
// recorder's RecordingEnvironment does. This tests the replayer
// independently of the recorder, with a trace whose every event is known.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ttvm/base/result.h"
#include "ttvm/emulator/cpu_state.h"
#include "ttvm/formats/trace_types.h"

namespace ttvm {
class TraceReader;
}

namespace ttvm::testing {

// Addresses in the test program (real mode, CS = DS = 0).
inline constexpr uint64_t kProgStart = 0x1000;
inline constexpr uint64_t kProgMainLoop = 0x101D;
inline constexpr uint64_t kProgStoreInsn = 0x1027;     // add [0x3000 + di], ax
inline constexpr uint64_t kProgHandler = 0x103D;       // interrupt 0x20 handler
inline constexpr uint64_t kProgCounterStore = 0x1042;  // mov [0x0500], ax
inline constexpr uint64_t kIrqCounter = 0x0500;        // word: interrupts taken
inline constexpr uint64_t kBuffer = 0x3000;            // 256 bytes the loop adds input into
inline constexpr uint16_t kInputPort = 0x60;
inline constexpr uint16_t kOutputPort = 0xE9;

struct ScriptedTraceOptions {
  uint16_t iterations = 2000;  // main loop iterations (about 50 steps each)
  uint64_t seed = 1;
  uint64_t digestInterval = 4096;
  uint64_t ramBytes = 2u << 20;
};

struct ScriptedTrace {
  std::string path;
  uint64_t steps = 0;
  std::vector<TraceEvent> events;  // every event written, in order
  CpuState finalCpu;
  std::vector<uint8_t> finalRam;
};

Result<ScriptedTrace> buildScriptedTrace(const std::string& path,
                                         const ScriptedTraceOptions& options);

// Copies `in` to `out`, replacing event number `index` (in trace order) by `replacement`.
Status rewriteTraceEvent(const std::string& in, const std::string& out, size_t index,
                         const TraceEvent& replacement);

// FNV-1a of a byte range (RAM comparisons).
uint64_t hashBytes(const uint8_t* p, size_t n);

// A fresh temporary file name for this test process.
std::string tempTracePath(const std::string& stem);

// A shell command's exit status (-1 when it did not exit) and its stdout
// and stderr together.
struct CommandRun {
  int status = -1;
  std::string output;
};
CommandRun runCommand(const std::string& cmd);

// Every event of a trace, in trace order.
std::vector<TraceEvent> allEvents(const TraceReader& reader);

}  // namespace ttvm::testing
