#include "ttvm/replayer/engine_fallback.h"

namespace ttvm {

std::string EngineFallback::describe() const {
  std::string out = "the replay on the fast engine disagrees with the trace: " + fast.format() +
                    "replayed again on the reference engine from step " +
                    std::to_string(replayedFrom) + ": ";
  if (reference)
    return out +
           "it diverges too, so the trace and this ttvm disagree whatever the engine (not "
           "a fast-engine bug); the reference engine's report:\n" +
           reference->format();
  if (fastEngineBug())
    return out + "it agrees with the trace past that point (to step " +
           std::to_string(referenceReached) +
           "): THIS IS A BUG IN TTVM'S FAST ENGINE, not in the trace; please report it with the "
           "trace.\n";
  return out + "it agrees with the trace to step " + std::to_string(referenceReached) +
         " so far, not yet past the fast engine's divergence at step " + std::to_string(fast.step) +
         ".\n";
}

machine::DivergenceReport endStateDivergence(uint64_t step, uint64_t rip,
                                             const std::string& differences) {
  machine::DivergenceReport d;
  d.step = step;
  d.rip = rip;
  d.reason = "the end state differs from the recording: " + differences;
  d.actual = "reached the end of the recording";
  return d;
}

}  // namespace ttvm
