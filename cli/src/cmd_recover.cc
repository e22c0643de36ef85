// ttvm recover in.ttvm [-o out.ttvm]: completes a trace whose recorder was
// killed: keeps every good frame, replays them to the last recorded step and
// writes a new footer (the replay's final state, "recovered at step N") and
// trailer.
#include <cinttypes>
#include <cstdio>
#include <string>

#include "cli_args.h"
#include "commands.h"
#include "ttvm/formats/trace_reader.h"
#include "ttvm/replayer/kvm_steps.h"
#include "ttvm/replayer/replay_session.h"

namespace ttvm::cli {
namespace {

const char* kRecoverHelp =
    "usage: ttvm recover <in.ttvm> [-o <out.ttvm>]\n\n"
    "Rewrites the footer of a trace whose recorder was killed or whose end was\n"
    "cut off. Every complete chunk and snapshot is kept; the kept events are\n"
    "replayed to the last recorded step, and the end of run is written as\n"
    "'interrupted' with the state reached there (\"recovered at step N\"), so\n"
    "that `ttvm verify` checks the readable prefix. The input is never modified.\n"
    "  -o <out>   where to write (default: <in>.recovered.ttvm)\n\n"
    "Exit status: 0 written with the end computed (or the trace was complete);\n"
    "1 unreadable input or a write error; 2 bad arguments; 3 written, but the\n"
    "prefix could not be replayed here or its replay disagrees with its events,\n"
    "so the footer's final state is unknown (`ttvm verify` cannot check it).\n";

std::string defaultOutput(const std::string& in) {
  const std::string ext = ".ttvm";
  std::string stem = in;
  if (stem.size() > ext.size() && stem.compare(stem.size() - ext.size(), ext.size(), ext) == 0)
    stem.resize(stem.size() - ext.size());
  return stem + ".recovered.ttvm";
}

// The status of a recovery that kept every frame but could not compute the
// final state (not a success: `ttvm verify` cannot check such an end).
constexpr int kUnknownEnd = 3;

// Replays `replayed` to its end and returns the state there. On the
// reference engine, not the replay default: this state is written into the
// trace's footer, which `ttvm verify` then checks replays against, so like
// a recording it must not depend on the fast engine being right past the
// last state digest (replay_session.h, kDefaultReplayEngine).
Result<CpuState> replayToEnd(const TraceReader& replayed) {
  auto session = ReplaySession::open(replayed, CpuEngine::kReference);
  if (!session.ok()) return makeError("cannot replay the prefix (" + session.error().message + ")");
  const SessionStop stop = (*session)->runTo(~0ull);
  if (stop.kind != SessionStopKind::kEnd) {
    auto d = (*session)->divergence();
    return makeError("the replay of the prefix stopped at step " + std::to_string(stop.step) +
                     " (" + toString(stop.kind) + ")" + (d ? ": " + d->format() : ""));
  }
  return (*session)->state();
}

// Replays `r`'s readable prefix to its last recorded step and returns the
// end to record there. A KVM trace's prefix is first given emulator steps
// (openForReplay); its end is then placed at its last exit, the unit in
// which its events count.
Result<TraceEnd> replayPrefix(const TraceReader& r) {
  Result<CpuState> state = makeError("");
  if (r.header().backend == Backend::kKvm) {
    auto stepped = openForReplay(r.path(), nullptr);
    if (!stepped.ok())
      return makeError("cannot replay the prefix (" + stepped.error().message + ")");
    state = replayToEnd(*stepped);
    if (state.ok()) state->steps = r.chunkCount() == 0 ? 0 : r.chunks().back().lastStep;
  } else {
    state = replayToEnd(r);
  }
  if (!state.ok()) return state.error();
  return recoveredEnd(*state, stateDigest(*state),
                      "the recording stopped without a footer (" + r.recoveryNote() + ")");
}

}  // namespace

int cmdRecover(std::span<char* const> args) {
  std::string out;
  Option output = textOption("-o", out);
  output.alias = "--output";
  const Option options[] = {output};
  auto parsed = parseTraceArgs(args, options);
  if (auto status = earlyExit(parsed, "ttvm recover", kRecoverHelp)) return *status;
  const std::string& in = parsed->trace;
  if (out.empty()) out = defaultOutput(in);

  auto r = TraceReader::open(in);
  if (!r.ok()) {
    std::fprintf(stderr, "ttvm recover: %s\n", r.error().message.c_str());
    return 1;
  }
  if (!r->recovered())
    std::fprintf(stderr, "ttvm recover: %s is complete (it has a valid footer); copying it\n",
                 in.c_str());
  else
    std::fprintf(stderr, "ttvm recover: %s\n", r->recoveryNote().c_str());
  // Re-execute the readable prefix: the true state at its last step is the
  // end the new footer records. A prefix that cannot be replayed here, or
  // whose replay disagrees with its events, still gets its footer (nothing
  // recorded is lost), but with an unknown final state, and the status says
  // so: a recovery is only a success when its end was computed.
  std::optional<TraceEnd> end;
  int status = 0;
  if (r->recovered() && !r->end()) {
    Result<TraceEnd> computed = replayPrefix(*r);
    if (computed.ok()) {
      end = std::move(computed).value();
    } else {
      std::fprintf(stderr, "ttvm recover: %s; the footer records an unknown final state\n",
                   computed.error().message.c_str());
      status = kUnknownEnd;
    }
  }
  Status s = TraceReader::recover(in, out, end);
  if (!s.ok()) {
    std::fprintf(stderr, "ttvm recover: %s\n", s.error().message.c_str());
    return 1;
  }
  std::printf("wrote %s: %zu chunks, %" PRIu64 " events, %zu snapshots", out.c_str(),
              r->chunkCount(), r->eventCount(), r->snapshots().size());
  if (end) std::printf("; recovered at step %" PRIu64, end->steps);
  if (status == kUnknownEnd) std::printf("; final state unknown");
  std::printf("\n");
  return status;
}

}  // namespace ttvm::cli
