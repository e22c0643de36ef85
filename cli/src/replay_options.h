// What the commands that replay a trace share (`ttvm replay`, `ttvm
// gdbserver`): TRACE and the options that shape its timeline, and opening
// the trace, the timeline and the symbol files with their error messages.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "cli_args.h"
#include "ttvm/base/result.h"
#include "ttvm/formats/trace_reader.h"
#include "ttvm/replayer/timeline.h"

namespace ttvm::cli {

struct ReplayOptions {
  std::string trace;
  uint64_t checkpointMem = 0;               // --checkpoint-mem SIZE; 0: the Timeline's default
  std::vector<std::string> symbolFiles;     // --symbols FILE, in order
  CpuEngine engine = kDefaultReplayEngine;  // --engine fast|reference: what replays
};

// --engine's lines in the --help of the commands that replay.
#define TTVM_ENGINE_HELP                                                                    \
  "  --engine E             the emulator engine that replays: fast (the default) or\n"      \
  "                         reference. A divergence on the fast engine is replayed again\n" \
  "                         on the reference, which tells a fast-engine bug (said so)\n"    \
  "                         from a trace that disagrees with ttvm (docs/time-travel.md)\n"

struct ReplayArgs {
  bool help = false;  // -h or --help came
  ReplayOptions replay;
};
// parseTraceArgs with --checkpoint-mem, --symbols and --engine added to the command's
// `own` options (whose `take` may write into the caller's variables).
Result<ReplayArgs> parseReplayArgs(std::span<char* const> args, std::vector<Option> own);

// Prints on stderr, as "<command>: note: ...", what a reader of the trace
// should know: a newer format minor version, a slice and where it comes from.
void printTraceNotes(const TraceReader& reader, const char* command);

// A trace open for replay. The timeline refers to the reader: the reader is
// declared first so that it is destroyed last.
struct OpenReplay {
  std::unique_ptr<TraceReader> reader;
  std::unique_ptr<Timeline> timeline;
};
// Opens the trace, its timeline at step 0 (its CPU on the --engine) and
// every --symbols file; an engine fallback (engine_fallback.h) is printed
// on stderr as "<command>: ..." when it happens. A trace
// without footer is opened with a note on stderr ("<command>: note: ...").
// Errors: the trace's or the timeline's message, or "--symbols <message>".
Result<OpenReplay> openReplay(const ReplayOptions& options, const char* command);

}  // namespace ttvm::cli
