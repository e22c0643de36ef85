// Sample traces for the format tests, the golden-trace generator and the
// fuzz corpus: deterministic headers, states and event streams.
//
// goldenV1_0() is built from every generator in this file, and
// golden_trace_test compares the committed tests/data/golden-v1.0.ttvm with
// it: never change what an existing generator produces (std::mt19937_64 is
// specified by the standard, so its output is the same everywhere). Add new
// generators instead.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "ttvm/formats/trace_types.h"

namespace ttvm::testing {

// A CpuState with every field set to a distinct value drawn from `rng`
// (enums kept in range), so a lost or swapped field is caught.
CpuState randomCpuState(std::mt19937_64& rng);
// A header with two images (one with symbols), CPUID leaves and model MSRs.
TraceHeader sampleHeader();
// RAM of `pages` non-zero pages with increasing, gapped page numbers.
RamPages sampleRam(std::mt19937_64& rng, size_t pages);
// A random well-formed event at `step`, its kind drawn from the first
// `kinds` event kinds (all of them by default; format 1.0's 15 for the
// golden traces written before 1.3, which must stay what they were).
TraceEvent randomEvent(std::mt19937_64& rng, uint64_t step, int kinds = kNumEventKinds - 1);
// `n` random events with non-decreasing steps (some equal, some far apart).
std::vector<TraceEvent> randomEvents(std::mt19937_64& rng, size_t n,
                                     int kinds = kNumEventKinds - 1);
// One event of every kind, with boundary values.
std::vector<TraceEvent> everyKindEvents(uint64_t firstStep);
TraceEnd sampleEnd(std::mt19937_64& rng, uint64_t steps);

// The golden trace of format 1.0: what make_golden_trace writes and
// golden_trace_test expects. Never change these once the file is committed.
struct GoldenTrace {
  TraceHeader header;
  InitialState initial;
  std::vector<TraceEvent> events;     // in order
  std::vector<size_t> snapshotAfter;  // a snapshot is taken after events[i]
  std::vector<Snapshot> snapshots;
  std::vector<size_t> flushAfter;  // chunk boundaries: flush after events[i]
  TraceEnd end;
  // The kDiskSector events' bytes: event e's are sectors[e.count * 512, +512)
  // (count numbers them across the whole trace here; a chunk read back
  // numbers them within the chunk).
  std::vector<uint8_t> sectors;
};
GoldenTrace goldenV1_0();
// Format 1.1: the same trace with a fixed trace identity in its header (the
// writer repeats it in every state, chunk and footer message).
GoldenTrace goldenV1_1();
// Format 1.2: replay-computed devices in the header and DiskSector events
// (with their sector bytes) in the middle and at the end.
GoldenTrace goldenV1_2();
// 1.3: a header naming the whole machine as replayed, and the events of a
// machine-mode trace (serial input from the terminal and the line, idle
// skips, device digests) added to 1.2's.
GoldenTrace goldenV1_3();
// 1.4: the header's slice origin (a trace cut by `ttvm slice`).
GoldenTrace goldenV1_4();
// 1.5: a KVM trace's stop points (dirty page runs, then the point) added to
// 1.4's.
GoldenTrace goldenV1_5();
// 1.6: the CPU model's SYSRET choice (AMD's) in the header, with AMD's PUSH
// of a segment register (1.5's field, false in goldenV1_5's).
GoldenTrace goldenV1_6();

// Writes `g` with TraceWriter; returns an error message or "".
std::string writeGolden(const GoldenTrace& g, const std::string& path);

// A small complete trace (header, 2 RAM pages, 3 chunks, 1 snapshot, footer)
// for the truncation and corruption tests; returns its events.
std::vector<TraceEvent> writeSmallTrace(const std::string& path);

// A unique path under the test temp dir.
std::string tempPath(const std::string& name);
std::vector<uint8_t> readFileBytes(const std::string& path);
void writeFileBytes(const std::string& path, const std::vector<uint8_t>& bytes);

// An in-memory file with a path (/proc/self/fd/N) for tests that write
// thousands of variants of a trace: no disk I/O.
class MemFile {
 public:
  MemFile();
  ~MemFile();
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  const std::string& path() const { return path_; }
  void set(const uint8_t* data, size_t size);
  void set(const std::vector<uint8_t>& bytes) { set(bytes.data(), bytes.size()); }

 private:
  int fd_ = -1;
  std::string path_;
};

}  // namespace ttvm::testing
