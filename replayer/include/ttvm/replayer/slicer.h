// sliceTrace: `ttvm slice` — a new, smaller trace holding one stretch of
// another, small enough to attach to a bug report.
//
// Design. A slice starts from a full machine state at the cut and keeps the
// source's step numbers, so every position, event and end state reads the
// same in both files (a replay, a gdb session or a report of the slice names
// the source's steps; the header's SliceOrigin says where it came from).
//  - The state at `from` is the source replayed there (from its last stored
//    snapshot at or before `from` where it has one: ReplaySession::
//    startFromSnapshot, else from its first step): the CPU, every device
//    (ReplaySession::saveDevices, the state a whole-machine trace's INIT
//    holds) and RAM.
//  - RAM: only the pages the CPU accesses over [from, to) (Cpu access
//    tracking: reads, writes, fetches, page walks), plus the pages the state
//    at the cut points at (code at RIP, the stack above RSP, the page-table
//    root, GDT and IDT) so that a debugger shows them at the first position.
//    Every other page reads as zero in the slice; nothing the guest does in
//    the range can tell. With SliceOptions::fullRam, or when the check below
//    fails, the slice holds every non-zero page instead (the fallback).
//  - Disk sectors: a sector the source read before the cut (its DiskSector
//    event is not in the slice), or the guest wrote before it (the disk's
//    overlay, in no device state: its bytes at the cut), that the guest
//    reads again in the range is
//    logged in the slice where the slice's replay reads it, as the recorder
//    logs a first read: a replay of the slice with those sectors as its
//    fallback finds the places (ReplayEnvironment::setSectorFallback).
//  - Events: the source's from its position at the cut up to `to`; a cut
//    before the source's end closes with an EndOfRun at `to` and an end of
//    EndReason::kMaxSteps holding the CPU state there; a slice to the end
//    keeps the source's end as it was.
//  - Snapshots: the source's stored snapshots after `from` (up to `to`, or
//    to the end for a slice to the end) are copied, with their RAM reduced
//    to the slice's pages when the slice holds only those: each is the
//    slice's own replay at its step, so startFromSnapshot works in a slice.
//  - A 1.2 trace (only the IDE channels replayed): the INIT holds every
//    device (ReplaySession::saveInitialDeviceState), the IDE channels at
//    the cut, the others as the source's INIT left them (never consulted).
//  - Guest images keep their bytes where they are ELF (their symbols and
//    line tables name addresses); other images (a bzImage, an initrd, a flat
//    binary) are in RAM already and keep only their name.
//  - Check: unless SliceOptions::check is off, the slice is replayed over its
//    range and its end state (CPU and devices) compared with the source's at
//    `to`; a slice with partial RAM that disagrees is written again with the
//    full RAM, one that still disagrees is an error.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "ttvm/base/result.h"
#include "ttvm/formats/trace_reader.h"
#include "ttvm/replayer/replay_session.h"

namespace ttvm {

struct SliceOptions {
  uint64_t from = 0;           // the source's step where the slice starts
  std::optional<uint64_t> to;  // where it ends; nullopt: the source's end
  bool fullRam = false;        // every non-zero page, not only the accessed ones
  bool check = true;           // replay the slice and compare its end (see above)
  bool useSnapshots = true;    // start the source's replay at its last snapshot before `from`
  bool copySnapshots = true;   // copy the source's snapshots inside the range into the slice
  CpuEngine engine = kDefaultReplayEngine;  // what the replays run (replay_session.h)
  const std::atomic<bool>* cancel = nullptr;
  // (what is being done, step reached) between replay slices.
  std::function<void(const char* phase, uint64_t step)> progress;
};

struct SliceResult {
  uint64_t from = 0;
  uint64_t to = 0;
  uint64_t pages = 0;          // RAM pages in the slice's initial state
  uint64_t nonZeroPages = 0;   // non-zero RAM pages of the source's machine at `from`
  bool partialRam = false;     // false: the full RAM (asked for, or the fallback)
  std::string fallbackReason;  // why the partial slice was replaced, if it was
  uint64_t replayedFrom = 0;  // where the source's replay started (a snapshot's step, or its first)
  // Why the replay from a snapshot was given up for one from the first step
  // (it diverged: a snapshot lacks the sectors the guest wrote before it).
  std::string snapshotProblem;
  uint64_t events = 0;         // events written
  uint64_t sectorsReread = 0;  // disk sectors read or written before the cut, logged in the slice
  uint64_t snapshots = 0;      // the source's snapshots inside the range, copied into the slice
  uint64_t bytes = 0;          // the slice file's size
  bool checked = false;        // the check ran and agreed
};

// Writes the slice of `source` over [options.from, options.to] to `out`
// (which must differ from the source's path). Errors name what is wrong:
// steps outside the recorded run, a source without footer, a KVM trace, a
// divergence of the source's replay.
Result<SliceResult> sliceTrace(const TraceReader& source, const std::string& out,
                               const SliceOptions& options);

}  // namespace ttvm
