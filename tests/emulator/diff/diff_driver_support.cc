#include "diff_driver_support.h"

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace ttvm::difftest {

uint64_t sequenceSeed(uint64_t base, uint64_t index) {
  uint64_t z = base + 0x9E3779B97F4A7C15ull * (index + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t envU64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == 0) return fallback;
  return std::strtoull(v, nullptr, 0);
}

void applyEnvironment(DiffConfig& c, uint64_t ciCount) {
  c.count = envU64("TTVM_DIFF_SEQUENCES", ciCount);
  c.baseSeed = envU64("TTVM_DIFF_SEED", c.baseSeed);
  c.first = envU64("TTVM_DIFF_FIRST", 0);
  // Diagnostic runs only: TTVM_DIFF_SSE=0 leaves the SSE2 group out.
  c.gen.sse2 = envU64("TTVM_DIFF_SSE", 1) != 0;
}

std::string DiffSummary::summaryLine() const {
  char b[256];
  std::snprintf(b, sizeof(b),
                "%" PRIu64 " sequences, %" PRIu64 " mismatches, %" PRIu64
                " documented oracle differences excluded, %" PRIu64 " harness errors, %" PRIu64
                " expected faults",
                run, mismatches, excluded, harnessErrors, faults);
  return b;
}

namespace {

struct Verdict {
  bool harnessError = false;
  std::string error;
  std::vector<std::string> diffs;
  const char* excludedBy = nullptr;
  Outcome expected, actual;
  Encoded code;
};

Verdict judge(const DiffConfig& c, const TestCase& tc, Runner& exp, Runner& act) {
  Verdict v;
  auto code = encode(tc.program, layoutFor(tc.program.mode).code);
  if (!code.ok()) {
    v.harnessError = true;
    v.error = "encode: " + code.error().message;
    return v;
  }
  v.code = *code;
  auto e = exp.run(tc, v.code);
  if (!e.ok()) {
    v.harnessError = true;
    v.error = std::string(exp.name()) + ": " + e.error().message;
    return v;
  }
  auto a = act.run(tc, v.code);
  if (!a.ok()) {
    v.harnessError = true;
    v.error = std::string(act.name()) + ": " + a.error().message;
    return v;
  }
  v.expected = *e;
  v.actual = *a;
  if (v.expected.unreliable || v.actual.unreliable) {
    v.diffs.push_back("oracle failed");
    v.excludedBy = v.expected.unreliable ? v.expected.unreliable : v.actual.unreliable;
    return v;
  }
  v.diffs = compareOutcomes(tc.program.mode, v.code, v.expected, v.actual, c.compare);
  if (!v.diffs.empty() && c.knownOracleBug) {
    v.excludedBy = c.knownOracleBug(tc, v.code, v.expected, v.actual);
  }
  return v;
}

bool stillMismatches(const DiffConfig& c, const TestCase& tc, Runner& exp, Runner& act) {
  Verdict v = judge(c, tc, exp, act);
  return !v.harnessError && !v.diffs.empty() && v.excludedBy == nullptr;
}

// Greedy shrinking: drop one unit at a time (last first) while the mismatch
// persists; repeat until nothing can be dropped.
TestCase minimize(const DiffConfig& c, const TestCase& tc, Runner& exp, Runner& act) {
  TestCase best = tc;
  for (int pass = 0; pass < 4; ++pass) {
    bool changed = false;
    for (size_t i = best.program.units.size(); i-- > 0;) {
      TestCase t = best;
      t.program.units.erase(t.program.units.begin() + static_cast<long>(i));
      if (stillMismatches(c, t, exp, act)) {
        best = std::move(t);
        changed = true;
      }
    }
    if (!changed) break;
  }
  return best;
}

std::string hexBytes(const std::vector<uint8_t>& b) {
  std::string s;
  char x[4];
  for (uint8_t v : b) {
    std::snprintf(x, sizeof(x), "%02x", v);
    s += x;
  }
  return s;
}

}  // namespace

DiffSummary runDifferential(const DiffConfig& c, Runner& exp, Runner& act) {
  DiffSummary s;
  int printed = 0;
  for (uint64_t i = c.first; i < c.first + c.count; ++i) {
    uint64_t seed = sequenceSeed(c.baseSeed, i);
    TestCase tc = generateTestCase(c.gen, seed);
    Verdict v = judge(c, tc, exp, act);
    ++s.run;
    if (v.harnessError) {
      ++s.harnessErrors;
      if (s.harnessErrors <= 5) {
        s.report += "harness error in sequence " + std::to_string(i) + " (seed " +
                    std::to_string(seed) + "): " + v.error + "\n";
      }
      continue;
    }
    if (v.expected.faulted) ++s.faults;
    if (v.diffs.empty()) continue;
    if (v.excludedBy != nullptr) {
      ++s.excluded;
      ++s.excludedReasons[v.excludedBy];
      continue;
    }
    ++s.mismatches;
    Layout lay = layoutFor(tc.program.mode);
    if (s.mismatches > static_cast<uint64_t>(c.maxMinimized)) {
      ++s.categories["(not minimized) " + lastMnemonic(tc.program.mode, v.code, lay.code)];
      continue;
    }
    TestCase small = minimize(c, tc, exp, act);
    Verdict m = judge(c, small, exp, act);
    std::string category = lastMnemonic(tc.program.mode, m.code, lay.code);
    if (!m.diffs.empty()) {
      std::string field = m.diffs[0].substr(0, m.diffs[0].find(':'));
      category += " [" + field + "]";
    }
    ++s.categories[category];
    if (printed >= c.maxReports) continue;
    ++printed;
    char head[512];
    std::snprintf(head, sizeof(head),
                  "=== MISMATCH %s vs %s, %s, sequence %" PRIu64 " (seed %" PRIu64
                  ")\n    rerun: TTVM_DIFF_SEED=%" PRIu64 " TTVM_DIFF_FIRST=%" PRIu64
                  " TTVM_DIFF_SEQUENCES=1\n    minimized from %zu to %zu units; code bytes: %s\n",
                  exp.name(), act.name(), toString(tc.program.mode), i, seed, c.baseSeed, i,
                  tc.program.units.size(), small.program.units.size(),
                  hexBytes(m.code.bytes).c_str());
    std::string r = head;
    r += listing(tc.program.mode, m.code, lay.code);
    r += "  initial state:\n" + describeState(tc.program.mode, small.initial, false);
    r += "  expected (" + std::string(exp.name()) + ") vs actual (" + act.name() + "):\n";
    for (const auto& d : m.diffs) r += "    " + d + "\n";
    if (m.diffs.empty()) r += "    (no longer mismatches after minimization: flaky?)\n";
    s.report += r;
  }
  if (!s.categories.empty()) {
    s.report += "mismatch categories (last instruction of the minimized sequence [first field]):\n";
    for (const auto& [k, n] : s.categories) s.report += "  " + k + ": " + std::to_string(n) + "\n";
  }
  if (!s.excludedReasons.empty()) {
    s.report += "excluded as documented oracle bugs:\n";
    for (const auto& [k, n] : s.excludedReasons)
      s.report += "  " + k + ": " + std::to_string(n) + "\n";
  }
  if (const char* path = std::getenv("TTVM_DIFF_REPORT")) {
    std::ofstream f(path, std::ios::app);
    f << s.summaryLine() << "\n" << s.report;
  }
  return s;
}

}  // namespace ttvm::difftest
