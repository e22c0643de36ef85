// ttvm slice in.ttvm -o out.ttvm --last N | --from A [--to B]: a smaller
// trace holding one stretch of another (replayer/slicer.h).
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <string>

#include "cli_args.h"
#include "commands.h"
#include "ttvm/formats/trace_reader.h"
#include "ttvm/replayer/slicer.h"

namespace ttvm::cli {
namespace {

const char* kSliceHelp =
    "usage: ttvm slice <in.ttvm> -o <out.ttvm> (--last <N> | --from <A> [--to <B>])\n\n"
    "Writes a new trace that starts from a full state snapshot at the cut (CPU,\n"
    "every device, and the RAM pages the CPU accesses over the range plus those\n"
    "its state points at) and replays identically up to its end. Step numbers\n"
    "are the source's: position A of the slice is position A of the source;\n"
    "`ttvm info` shows where it came from. Other RAM pages read as zero in the\n"
    "slice (--full-ram keeps them all).\n"
    "  -o <out>        the slice (required; not the input)\n"
    "  --last <N>      the last N steps of the run (up to its end)\n"
    "  --from <A>      start at step A\n"
    "  --to <B>        end at step B (default: the end of the run)\n"
    "  --full-ram      keep every non-zero RAM page\n"
    "  --no-check      do not replay the slice to compare its end with the source's\n"
    "  --no-snapshots  leave out the source's snapshots inside the range (smaller;\n"
    "                  a replay of the slice then starts only at its first step)\n"
    "  --engine E      the emulator engine that replays: fast (the default) or\n"
    "                  reference (a divergence on the fast engine says so)\n"
    "Exit status: 0 written (and checked), 1 the input cannot be read, replayed or\n"
    "sliced, or the slice cannot be written, 2 bad usage.\n";

std::atomic<bool> gCancel{false};

// A step count, remembering that it was given.
Option stepOption(std::string_view name, std::optional<uint64_t>& out) {
  return Option{name, {}, true, [&out](const std::string& v) -> Status {
                  uint64_t n = 0;
                  if (!parseU64(v, n)) return makeError("is not a step count");
                  out = n;
                  return Status();
                }};
}

}  // namespace

int cmdSlice(std::span<char* const> args) {
  std::string out;
  std::optional<uint64_t> last, from, to;
  bool fullRam = false, noCheck = false, noSnapshots = false;
  CpuEngine engine = kDefaultReplayEngine;
  Option output = textOption("-o", out);
  output.alias = "--output";
  const Option options[] = {output,
                            stepOption("--last", last),
                            stepOption("--from", from),
                            stepOption("--to", to),
                            flagOption("--full-ram", fullRam),
                            flagOption("--no-check", noCheck),
                            flagOption("--no-snapshots", noSnapshots),
                            engineOption("--engine", engine)};
  auto parsed = parseTraceArgs(args, options);
  if (auto status = earlyExit(parsed, "ttvm slice", kSliceHelp)) return *status;
  if (out.empty()) return usageError("ttvm slice", Error{"-o <out.ttvm> is required"}, kSliceHelp);
  if (last.has_value() == from.has_value())
    return usageError("ttvm slice", Error{"give either --last N or --from A [--to B]"}, kSliceHelp);
  if (last && to)
    return usageError("ttvm slice", Error{"--last ends at the end of the run: no --to with it"},
                      kSliceHelp);
  if (last && *last == 0)
    return usageError("ttvm slice", Error{"--last 0: nothing to keep"}, kSliceHelp);

  auto r = TraceReader::open(parsed->trace);
  if (!r.ok()) {
    std::fprintf(stderr, "ttvm slice: %s\n", r.error().message.c_str());
    return 1;
  }
  // A newer minor version: the slice is written in this ttvm's format,
  // without what the newer one added.
  if (std::string note = r->newerFormatNote(); !note.empty())
    std::fprintf(stderr, "ttvm slice: note: %s\n", note.c_str());
  if (!r->end()) {
    std::fprintf(stderr,
                 "ttvm slice: %s has no footer (the recording was cut off): `ttvm recover` "
                 "completes it first\n",
                 parsed->trace.c_str());
    return 1;
  }
  SliceOptions so;
  if (last) {
    const uint64_t end = r->end()->steps;
    so.from = *last >= end ? 0 : end - *last;
  } else {
    so.from = *from;
    so.to = to;
  }
  so.fullRam = fullRam;
  so.check = !noCheck;
  so.copySnapshots = !noSnapshots;
  so.engine = engine;
  so.cancel = &gCancel;
  std::signal(SIGINT, [](int) { gCancel.store(true); });
  auto result = sliceTrace(*r, out, so);
  if (!result.ok()) {
    std::fprintf(stderr, "ttvm slice: %s\n", result.error().message.c_str());
    return 1;
  }
  const SliceResult& s = *result;
  std::printf("wrote %s: steps %" PRIu64 "..%" PRIu64 " of %s, %" PRIu64 " events, %" PRIu64
              " of %" PRIu64 " non-zero RAM pages%s, %" PRIu64 " bytes%s\n",
              out.c_str(), s.from, s.to, parsed->trace.c_str(), s.events, s.pages, s.nonZeroPages,
              s.partialRam ? " (those the slice accesses)" : " (full RAM)", s.bytes,
              s.checked ? "; replayed and checked against the source" : "");
  // A slice's own replay starts at its first step, not at a snapshot.
  const uint64_t sourceBegin = r->header().slice ? r->header().slice->fromStep : 0;
  if (s.replayedFrom != sourceBegin)
    std::printf("  the source replayed from its snapshot at step %" PRIu64 "\n", s.replayedFrom);
  if (!s.snapshotProblem.empty())
    std::fprintf(stderr, "ttvm slice: note: %s; replayed from the first step instead\n",
                 s.snapshotProblem.c_str());
  if (s.snapshots != 0)
    std::printf("  %" PRIu64 " of the source's snapshots copied (those inside the range)\n",
                s.snapshots);
  if (s.sectorsReread != 0)
    std::printf("  %" PRIu64
                " disk sector(s) read or written before the cut and read after it: logged in the "
                "slice\n",
                s.sectorsReread);
  if (!s.fallbackReason.empty())
    std::fprintf(stderr,
                 "ttvm slice: the slice with only the accessed pages did not replay as its "
                 "source (%s); it holds the full RAM\n",
                 s.fallbackReason.c_str());
  return 0;
}

}  // namespace ttvm::cli
