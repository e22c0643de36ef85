// Documented flaws of the oracles. Unicorn is QEMU's TCG: where it disagrees
// with the host CPU and the Intel SDM, the case is excluded here explicitly,
// with the SDM reference, and counted in the test output — never silently.
#pragma once

#include "diff_program_support.h"

namespace ttvm::difftest {

// Returns why `unicorn` differs from the architecturally right `reference`
// because of a known Unicorn/QEMU bug, or nullptr when the difference is not
// explained by one (then it is a real mismatch).
const char* unicornKnownBug(const TestCase& tc, const Encoded& code, const Outcome& reference,
                            const Outcome& unicorn);

}  // namespace ttvm::difftest
