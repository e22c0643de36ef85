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
    "  -o <out>   where to write (default: <in>.recovered.ttvm)\n";

std::string defaultOutput(const std::string& in) {
  const std::string ext = ".ttvm";
  std::string stem = in;
  if (stem.size() > ext.size() && stem.compare(stem.size() - ext.size(), ext.size(), ext) == 0)
    stem.resize(stem.size() - ext.size());
  return stem + ".recovered.ttvm";
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
  // end the new footer records (a replay that disagrees with the events
  // leaves the end unknown, and says so).
  std::optional<TraceEnd> end;
  int status = 0;
  if (r->recovered() && !r->end()) {
    auto session = ReplaySession::open(*r);
    if (!session.ok()) {
      // Not replayable here (a KVM trace, a machine this ttvm cannot build):
      // the footer is still written, with the final state unknown.
      std::fprintf(stderr,
                   "ttvm recover: cannot replay the prefix (%s); the footer records an "
                   "unknown final state\n",
                   session.error().message.c_str());
    } else if (const SessionStop stop = (*session)->runTo(~0ull);
               stop.kind != SessionStopKind::kEnd) {
      auto d = (*session)->divergence();
      std::fprintf(stderr,
                   "ttvm recover: the replay of the prefix stopped at step %" PRIu64
                   " (%s)%s%s; the footer records an unknown final state\n",
                   stop.step, toString(stop.kind), d ? ": " : "", d ? d->format().c_str() : "");
      status = 1;
    } else {
      end = recoveredEnd((*session)->state(), stateDigest((*session)->state()),
                         "the recording stopped without a footer (" + r->recoveryNote() + ")");
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
  std::printf("\n");
  return status;
}

}  // namespace ttvm::cli
