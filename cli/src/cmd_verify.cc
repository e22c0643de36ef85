// ttvm verify trace.ttvm: a full replay with every input request, state
// digest and the final state checked; the exit status is for scripts.
#include <atomic>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <string>

#include "cli_args.h"
#include "commands.h"
#include "replay_options.h"
#include "ttvm/formats/trace_reader.h"
#include "ttvm/replayer/engine_fallback.h"
#include "ttvm/replayer/kvm_steps.h"
#include "ttvm/replayer/replay_session.h"

namespace ttvm::cli {
namespace {

const char* kVerifyHelp =
    "usage: ttvm verify TRACE [-q] [--engine fast|reference]\n\n"
    "Checks every frame's checksum (header, initial state, chunks, snapshots,\n"
    "footer), then replays TRACE from its start to its end, checking every input\n"
    "request, every state digest and the final state against the recording.\n"
    "  -q                     print nothing when everything agrees\n" TTVM_ENGINE_HELP
    "\n"
    "Exit status (stable, for scripts):\n"
    "  0  everything was checked and agrees, to the end of the recording (for a\n"
    "     trace completed by `ttvm recover`: to the step where it was cut)\n"
    "  1  the replay disagrees: a divergence, or a different end state (on the\n"
    "     fast engine: on the reference engine too)\n"
    "  2  bad arguments, or the trace is unreadable or damaged (a bad checksum,\n"
    "     a footer that disagrees with the events)\n"
    "  3  no footer: the readable prefix replays without divergence, but the end\n"
    "     of the run cannot be checked (run `ttvm recover` to complete it)\n"
    "  4  a bug in ttvm's fast engine: its replay disagrees with the trace where the\n"
    "     reference engine's agrees to the end (the trace itself is good)\n";

std::atomic<bool> gCancel{false};
void onSigint(int) {
  gCancel.store(true);
}

constexpr int kExitFastEngineBug = 4;

// One replay of the whole trace on one engine, and what disagreed: its
// divergence, or (with a footer) the end state, as a report at the end.
struct WholeReplay {
  std::unique_ptr<ReplaySession> session;
  uint64_t first = 0;  // the initial state's step
  SessionStop stop;
  std::optional<machine::DivergenceReport> disagreement;
};

Result<WholeReplay> replayWhole(const TraceReader& reader, CpuEngine engine) {
  auto session = ReplaySession::open(reader, engine);
  if (!session.ok()) return session.error();
  WholeReplay out;
  out.session = std::move(session).value();
  RunOptions ro;
  ro.cancel = &gCancel;
  out.first = out.session->step();
  out.stop = out.session->runTo(~0ull, ro);
  if (out.stop.kind == SessionStopKind::kDivergence) {
    out.disagreement = out.session->divergence();
    if (!out.disagreement) out.disagreement.emplace().step = out.stop.step;
  } else if (out.stop.kind != SessionStopKind::kCancelled && reader.end()) {
    if (std::string diff = out.session->checkEndState(); !diff.empty())
      out.disagreement = endStateDivergence(out.session->step(), out.session->state().rip, diff);
  }
  return out;
}

}  // namespace

int cmdVerify(std::span<char* const> args) {
  bool quiet = false;
  CpuEngine engine = kDefaultReplayEngine;
  const Option options[] = {flagOption("-q", quiet), engineOption("--engine", engine)};
  auto parsed = parseTraceArgs(args, options);
  if (auto status = earlyExit(parsed, "ttvm verify", kVerifyHelp)) return *status;
  const std::string& path = parsed->trace;
  std::string kvmNote;
  auto reader = openForReplay(path, &kvmNote);
  if (!reader.ok()) {
    std::fprintf(stderr, "ttvm verify: %s\n", reader.error().message.c_str());
    return 2;
  }
  if (Status frames = reader->checkAllFrames(); !frames.ok()) {
    std::fprintf(stderr, "ttvm verify: damaged trace: %s\n", frames.error().message.c_str());
    return 2;
  }
  if (!kvmNote.empty() && !quiet) std::printf("%s\n", kvmNote.c_str());
  if (!quiet) printTraceNotes(*reader, "ttvm verify");
  std::signal(SIGINT, onSigint);
  auto replayed = replayWhole(*reader, engine);
  if (!replayed.ok()) {
    std::fprintf(stderr, "ttvm verify: %s\n", replayed.error().message.c_str());
    return 2;
  }
  if (replayed->disagreement && engine == CpuEngine::kFast) {
    // The engine fallback (engine_fallback.h): the whole replay again on
    // the reference engine, from the trace's initial state.
    auto reference = replayWhole(*reader, CpuEngine::kReference);
    if (!reference.ok()) {
      std::fprintf(stderr, "ttvm verify: %s\n", reference.error().message.c_str());
      return 2;
    }
    if (reference->stop.kind != SessionStopKind::kCancelled) {
      EngineFallback f;
      f.fast = *replayed->disagreement;
      f.replayedFrom = reference->first;
      f.reference = reference->disagreement;
      f.referenceReached = reference->session->step();
      // Without a disagreement the reference replayed to the end (and
      // checked the end state, with a footer).
      f.referencePassed = !f.reference && reference->stop.kind == SessionStopKind::kEnd;
      std::fprintf(stderr, "ttvm verify: %s: %s", path.c_str(), f.describe().c_str());
      return f.fastEngineBug() ? kExitFastEngineBug : 1;
    }
    replayed = std::move(reference);
  }
  ReplaySession& s = *replayed->session;
  if (replayed->stop.kind == SessionStopKind::kCancelled) {
    std::fprintf(stderr, "ttvm verify: cancelled at step %" PRIu64 "\n", s.step());
    return 1;
  }
  if (replayed->disagreement) {
    std::fprintf(stderr, "ttvm verify: %s: %s", path.c_str(),
                 replayed->disagreement->format().c_str());
    return 1;
  }
  if (!reader->end()) {
    std::fprintf(stderr,
                 "ttvm verify: %s: no footer (%s)\n"
                 "  checked: every frame up to byte %" PRIu64 ", %" PRIu64
                 " steps replayed with %" PRIu64 " events and %" PRIu64
                 " state digests matching\n"
                 "  not checked: the end of the run (its reason and final state are not in the\n"
                 "  file) and whatever the recorder did not write; `ttvm recover` completes it\n",
                 path.c_str(), reader->recoveryNote().c_str(), reader->usableBytes(), s.step(),
                 reader->eventCount(), s.digestsChecked());
    return 3;
  }
  if (!quiet) {
    const uint64_t first = reader->header().slice ? reader->header().slice->fromStep : 0;
    std::printf("%s: ok: %" PRIu64 " steps%s, %" PRIu64 " events, %" PRIu64
                " state digests and the final state match the recording\n",
                path.c_str(), s.step() - first,
                first == 0 ? ""
                           : (" (" + std::to_string(first) + ".." + std::to_string(s.step()) +
                              " of the source)")
                                 .c_str(),
                reader->eventCount(), s.digestsChecked());
    if (isRecoveredEnd(*reader->end()))
      std::printf(
          "%s: note: this trace was completed by `ttvm recover`: the recording was cut "
          "at step %" PRIu64
          "; the checks cover that readable prefix, not what the "
          "guest did after it\n",
          path.c_str(), s.step());
  }
  return 0;
}

}  // namespace ttvm::cli
