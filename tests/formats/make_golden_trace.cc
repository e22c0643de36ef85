// Writes the golden trace of the current format version:
//   ttvm_make_golden_trace tests/data/golden-v1.0.ttvm
// Run once when a format version is introduced; the file is committed and
// golden_trace_test.cc checks that every later ttvm still reads it exactly.
#include <cstdio>

#include "trace_samples.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: ttvm_make_golden_trace <out.ttvm>\n");
    return 2;
  }
  const std::string err = ttvm::testing::writeGolden(ttvm::testing::goldenV1_0(), argv[1]);
  if (!err.empty()) {
    std::fprintf(stderr, "ttvm_make_golden_trace: %s\n", err.c_str());
    return 1;
  }
  return 0;
}
