// Engine fallback: what a replay did when the fast engine diverged.
//
// Replays run the fast engine by default (kDefaultReplayEngine,
// replay_session.h). It is exact against the reference engine by
// construction and by test (issue 14); should it ever be wrong, the replay's
// checks against the trace stop it with a divergence. The replay is then run
// again on the reference engine from a state no engine computed (the trace's
// initial state), and one of two things holds:
//  - the reference agrees with the trace past the fast engine's divergence:
//    the divergence is a bug in ttvm's fast engine, not in the trace (said
//    loudly; the replay goes on with the reference engine);
//  - the reference diverges too: the trace and this ttvm disagree whatever
//    the engine (a damaged trace, a recorder or machine bug): the reference's
//    report is the one to read.
// Timeline does this for every motion and query (Timeline::engineFallback),
// `ttvm verify` for its whole replay (exit status 4 for the first case).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "ttvm/machine/divergence.h"

namespace ttvm {

struct EngineFallback {
  machine::DivergenceReport fast;  // the fast engine's divergence
  uint64_t replayedFrom = 0;       // the step the reference replayed from
  // The reference engine's own divergence, when it diverged too.
  std::optional<machine::DivergenceReport> reference;
  // The furthest step the reference replayed to without divergence.
  uint64_t referenceReached = 0;
  // The reference replayed past the fast engine's divergence without one:
  // past its step, or through the end-state check the fast engine failed.
  bool referencePassed = false;

  // The fast engine alone was wrong.
  bool fastEngineBug() const { return !reference && referencePassed; }
  // Several lines for a terminal: both outcomes and what they mean.
  std::string describe() const;
};

// A final state that differs from the footer's (ReplaySession::
// checkEndState's `differences`), as a divergence at the end.
machine::DivergenceReport endStateDivergence(uint64_t step, uint64_t rip,
                                             const std::string& differences);

}  // namespace ttvm
