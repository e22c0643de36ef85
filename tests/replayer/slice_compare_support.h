// Compares a slice (ttvm slice, replayer/slicer.h) with its source over the
// slice's range: both replayed side by side. Shared by the sharing e2e tests
// and the replayer's disk tests (a 1.2 trace's slices).
#pragma once

#include <cstdint>
#include <string>

namespace ttvm::testing {

// Replays `source` and `slice` side by side over the slice's range
// [from, to] and compares them every `compareEvery` steps and at `to`: CPU
// state, device state (ReplaySession::saveDevices), and every RAM page that
// is non-zero in either or was written since the cut. A page the slice left
// out must still hold its bytes of the cut in the source and never be
// written in the slice (it reads as zero there). The slice must end in its
// recorded end state. Fails the current test (gtest) where they differ.
void expectReplaysAsSource(const std::string& sourcePath, const std::string& slicePath,
                           uint64_t from, uint64_t to, uint64_t compareEvery = 10'000);

}  // namespace ttvm::testing
