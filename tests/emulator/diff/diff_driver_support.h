// The differential-test loop shared by diff_host_test.cc and
// diff_unicorn_test.cc: generate N test cases from a base seed, run each in
// an expected and an actual runner, compare, and for every mismatch shrink
// the program to the fewest units that still mismatch and print it
// (disassembled), its initial state, the differences and how to rerun it.
//
// Environment variables (read by the tests, not here):
//   TTVM_DIFF_SEQUENCES  how many test cases (default: the test's CI count)
//   TTVM_DIFF_SEED       base seed (default: fixed, so CI is reproducible)
//   TTVM_DIFF_FIRST      index of the first test case (rerun one case)
//   TTVM_DIFF_REPORT     append the mismatch reports to this file too
//   TTVM_DIFF_SSE=0      leave out the SSE2 group (diagnostics only)
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "diff_generator_support.h"
#include "diff_program_support.h"

namespace ttvm::difftest {

// Why an observed difference is a documented flaw of the oracle rather than
// of the system under test; nullptr when it is not one.
using KnownOracleBug = std::function<const char*(const TestCase&, const Encoded&,
                                                 const Outcome& oracle, const Outcome& other)>;

struct DiffConfig {
  GeneratorOptions gen;
  CompareOptions compare;
  uint64_t baseSeed = 0x7474766D64696666ull;  // "ttvmdiff"
  uint64_t first = 0;
  uint64_t count = 1000;
  int maxReports = 8;  // fully printed (minimized) mismatches
  // Mismatches shrunk for categorizing; the rest are counted under the last
  // instruction of the whole sequence (keeps a badly broken run fast).
  int maxMinimized = 200;
  KnownOracleBug knownOracleBug;
};

struct DiffSummary {
  uint64_t run = 0;
  uint64_t mismatches = 0;
  uint64_t excluded = 0;  // differences explained by a documented oracle bug
  uint64_t harnessErrors = 0;
  uint64_t faults = 0;                              // test cases whose expected outcome was a fault
  std::map<std::string, uint64_t> categories;       // minimized last instruction -> count
  std::map<std::string, uint64_t> excludedReasons;  // reason -> count
  std::string report;                               // the printed mismatches and harness errors
  std::string summaryLine() const;
};

// Seed of test case `index` under `base` (splitmix64 of both).
uint64_t sequenceSeed(uint64_t base, uint64_t index);
uint64_t envU64(const char* name, uint64_t fallback);
// Applies TTVM_DIFF_SEQUENCES/SEED/FIRST to `c`, with `ciCount` as the default count.
void applyEnvironment(DiffConfig& c, uint64_t ciCount);

DiffSummary runDifferential(const DiffConfig& c, Runner& expected, Runner& actual);

}  // namespace ttvm::difftest
