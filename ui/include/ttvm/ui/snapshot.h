// Snapshot: everything the GUI shows about one instant of the replay, as a
// plain value. The engine builds it on its worker thread after each
// operation and hands it to the GUI thread by a queued signal, so no widget
// ever touches the Timeline (which is single-threaded).
#pragma once

#include <QMetaType>
#include <QString>
#include <QStringList>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "ttvm/emulator/cpu_state.h"
#include "ttvm/replayer/guest_symbols.h"
#include "ttvm/replayer/timeline.h"

namespace ttvm::ui {

// One line of the disassembly window.
struct DisasmLine {
  uint64_t address = 0;  // RIP-relative (CS offset), as the guest sees it
  QString bytes;         // "48 8b 05 ..."
  QString text;          // Intel syntax, or "(bad)" when the bytes do not decode
  QString symbol;        // "key_dup+0x54", empty when unknown
  bool current = false;  // the instruction at RIP
  bool breakpoint = false;
};

// One frame of the call stack (backtrace.h) with the variables in scope
// there (GuestSymbols::variablesAt: parameters first, then locals).
struct FrameInfo {
  uint64_t pc = 0;          // RIP, or the return address / interrupted RIP
  QString function;         // "key_dup+0x54", or the hex address when unknown
  bool unreliable = false;  // found by a stack scan
  bool inlined = false;     // a call inlined into the next frame (same pc)
  std::optional<SourceLine> source;
  std::vector<GuestVariable> variables;
};

struct Snapshot {
  uint64_t step = 0;  // Timeline::now()
  uint64_t beginStep = 0;
  uint64_t endStep = 0;
  CpuState registers;
  StopKind stopKind = StopKind::kStepDone;
  QString stopText;  // why the last operation stopped, for the status bar
  QString location;  // symbol of RIP, "" when unknown
  std::vector<DisasmLine> disassembly;
  // Memory window: `memory[i]` is the byte at memoryAddress + i, or -1 when
  // that linear address is unmapped now.
  uint64_t memoryAddress = 0;
  std::vector<int16_t> memory;
  // Serial console output (COM1 0x3F8 and port 0xE9) written before `step`.
  QString serial;
  std::vector<uint64_t> breakpoints;                       // linear addresses with a breakpoint
  std::vector<std::pair<uint64_t, uint64_t>> watchpoints;  // write watches: (address, length)
  // The call stack, frame 0 first, and why its walk ended.
  std::vector<FrameInfo> frames;
  QString framesEnd;
  // Symbol files loaded, one line per source (GuestSymbols::sources()).
  QStringList symbolSources;
};

// Symbols of the trace's guest images, shared read-only with the GUI thread.
using SymbolsPtr = std::shared_ptr<const GuestSymbols>;

}  // namespace ttvm::ui

Q_DECLARE_METATYPE(ttvm::ui::Snapshot)
Q_DECLARE_METATYPE(ttvm::ui::SymbolsPtr)
