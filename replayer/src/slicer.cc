#include "ttvm/replayer/slicer.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

#include "ttvm/emulator/cpu_state.h"
#include "ttvm/formats/trace_writer.h"
#include "ttvm/replayer/replay_session.h"

namespace ttvm {
namespace {

// Bytes of stack above RSP kept beside the accessed pages (what the
// backtrace's stack scan reads at the first position).
constexpr uint64_t kStackBytesKept = 16 * 1024;

bool isElfImage(const GuestImage& g) {
  return g.bytes.size() >= 4 && g.bytes[0] == 0x7F && g.bytes[1] == 'E' && g.bytes[2] == 'L' &&
         g.bytes[3] == 'F';
}

// Pages the CPU state at the cut points at: code at RIP, the stack above
// RSP, the GDT, the IDT, the TSS and the page-table root.
std::vector<uint64_t> referencedPages(const ReplaySession& session, const Cpu& cpu) {
  const CpuState& s = session.state();
  std::vector<uint64_t> pages;
  auto linear = [&](uint64_t lin) {
    if (auto phys = cpu.translate(lin)) pages.push_back(*phys >> 12);
  };
  linear(session.linearRip(s.rip));
  const bool longMode = cpuMode(s) == CpuMode::kLong64;
  const uint64_t stackBase = longMode ? 0 : s.segment(SegReg::kSs).base;
  for (uint64_t off = 0; off <= kStackBytesKept; off += kPageSize) {
    uint64_t lin = stackBase + s.gpr[4] + off;
    if (!longMode) lin &= 0xFFFFFFFFull;
    linear(lin);
  }
  linear(s.gdtr.base);
  linear(s.idtr.base);
  linear(s.tr.base);
  if (s.cr0 & (1ull << 31)) pages.push_back(s.cr3 >> 12);
  return pages;
}

// The pages of `all` whose numbers are in `wanted` (ascending, unique).
RamPages keepPages(const RamPages& all, const std::vector<uint64_t>& wanted) {
  RamPages kept;
  size_t w = 0;
  for (size_t k = 0; k < all.pageCount(); ++k) {
    const uint64_t p = all.numbers[k];
    while (w < wanted.size() && wanted[w] < p) ++w;
    if (w < wanted.size() && wanted[w] == p) kept.add(p, all.page(k));
  }
  return kept;
}

// A disk sector the source read before the cut (its kDiskSector event is
// not in the slice) that the guest reads again over the slice's range: the
// slice logs it where its replay reads it, as a recording logs a first read.
struct SectorInsert {
  uint64_t beforeEvent = 0;  // index of the slice event it goes before
  uint64_t step = 0;
  unsigned slot = 0;
  uint64_t lba = 0;
  std::array<uint8_t, kDiskSectorBytes> bytes{};
};

struct Cut {
  TraceHeader header;
  InitialState initial;  // RAM: every non-zero page at the cut
  machine::EventPosition position;
  uint64_t from = 0;
  uint64_t to = 0;
  uint64_t sourceEnd = 0;
  std::vector<uint64_t> wanted;  // pages accessed or referenced, ascending, unique
  CpuState endCpu;
  std::vector<uint8_t> endDevices;
  // The sectors the source logged before the cut, or the guest wrote before
  // it (their bytes at the cut), and those of them the range reads again
  // (found by replaying the slice, findSectorRereads).
  SectorTable sectorsBefore;
  std::vector<SectorInsert> inserts;
  // The source's snapshots strictly inside the range (indexes), copied
  // into the slice with the slice's RAM (see writeSlice).
  std::vector<size_t> snapshots;
};

// Why a replay (`whose`: "the source's", "the slice's") did not reach
// `target`; empty when it did.
std::string stopProblem(const ReplaySession& session, const SessionStop& stop, uint64_t target,
                        const std::string& whose) {
  if (stop.kind == SessionStopKind::kDivergence) {
    auto d = session.divergence();
    return whose + " replay diverged: " + (d ? d->format() : std::string("(no report)")) +
           (session.engine() == CpuEngine::kFast
                ? "(on the fast engine: `--engine reference` slices on the reference engine; if "
                  "that succeeds, this divergence is a bug in ttvm's fast engine)\n"
                : "");
  }
  if (stop.kind == SessionStopKind::kCancelled) return "cancelled";
  if (stop.step != target)
    return whose + " replay stopped (" + toString(stop.kind) + ") at step " +
           std::to_string(stop.step) + " before step " + std::to_string(target);
  return "";
}

// Writes the slice file from `cut` with RAM `ram`.
Result<uint64_t> writeSlice(const TraceReader& source, const Cut& cut, const RamPages& ram,
                            const std::string& out) {
  InitialState initial;
  initial.cpu = cut.initial.cpu;
  initial.deviceState = cut.initial.deviceState;
  initial.ram = ram;
  TraceWriter::Options wo;
  wo.flushInterval = std::chrono::hours(1);  // chunks by size only: the same file every time
  auto writer = TraceWriter::create(out, cut.header, initial, wo);
  if (!writer.ok()) return writer.error();
  TraceWriter& w = **writer;
  const bool toEnd = cut.to == cut.sourceEnd;
  uint64_t events = 0;
  std::vector<TraceEvent> chunk;
  std::vector<uint8_t> sectors;
  bool done = false;
  size_t nextInsert = 0;
  auto insertUpTo = [&](uint64_t index, uint64_t beforeStep) {
    for (; nextInsert < cut.inserts.size() && cut.inserts[nextInsert].beforeEvent <= index &&
           cut.inserts[nextInsert].step < beforeStep;
         ++nextInsert) {
      const SectorInsert& s = cut.inserts[nextInsert];
      w.appendDiskSector(s.step, static_cast<uint8_t>(s.slot), s.lba, s.bytes);
    }
  };
  uint64_t written = 0;  // source events written (the index inserts refer to)
  // A source snapshot lies between two chunks (the recorder flushes before
  // it): it goes into the slice before the first chunk written after it,
  // after the sectors the slice's replay read again before its step. Its
  // RAM is the slice's: the pages the slice holds (the others are zero in
  // the slice's replay and nothing in the range touches them).
  size_t nextSnapshot = 0;
  auto snapshotsBefore = [&](uint64_t offset) -> Status {
    for (; nextSnapshot < cut.snapshots.size() &&
           source.snapshots()[cut.snapshots[nextSnapshot]].offset < offset;
         ++nextSnapshot) {
      auto snap = source.loadSnapshot(cut.snapshots[nextSnapshot]);
      if (!snap.ok()) return snap.error();
      insertUpTo(written, snap->step);
      if (cut.header.slice->partialRam) snap->ram = keepPages(snap->ram, cut.wanted);
      TTVM_TRY(w.addSnapshot(*snap));
    }
    return {};
  };
  for (size_t c = cut.position.chunk; c < source.chunkCount() && !done; ++c) {
    TTVM_TRY(snapshotsBefore(source.chunks()[c].offset));
    TTVM_TRY(source.readChunkInto(c, chunk, &sectors));
    for (size_t i = c == cut.position.chunk ? cut.position.index : 0; i < chunk.size(); ++i) {
      const TraceEvent& e = chunk[i];
      if (!toEnd && e.step >= cut.to) {
        done = true;
        break;
      }
      insertUpTo(written++, ~uint64_t{0});
      if (e.kind == EventKind::kDiskSector) {
        w.appendDiskSector(e.step, static_cast<uint8_t>(e.value), e.address,
                           std::span<const uint8_t>(sectors).subspan(
                               size_t{e.count} * kDiskSectorBytes, kDiskSectorBytes));
      } else {
        w.append(e);
      }
      ++events;
    }
  }
  TTVM_TRY(snapshotsBefore(~uint64_t{0}));
  insertUpTo(~uint64_t{0}, ~uint64_t{0});
  events += cut.inserts.size();
  TraceEnd end;
  if (toEnd) {
    end = *source.end();
  } else {
    w.append(TraceEvent::endOfRun(cut.to));
    ++events;
    const TraceEnd& src = *source.end();
    end.reason = EndReason::kMaxSteps;
    end.message = "slice of " + cut.header.slice->sourceName + " ends at step " +
                  std::to_string(cut.to) + "; the source ran to step " +
                  std::to_string(cut.sourceEnd) + " (" + std::string(endReasonName(src.reason)) +
                  (src.message.empty() ? "" : ": " + src.message) + ")";
    end.finalCpu = cut.endCpu;
    end.finalDigest = stateDigest(cut.endCpu);
    end.steps = cut.to;
  }
  TTVM_TRY(w.close(end));
  return events;
}

// Replays the slice written at `out` with the sectors read before the cut
// as its fallback and notes, for each one the range reads again, where its
// replay read it first: the event it was about to consume and the step.
// Errors: a sector neither the slice nor the source before the cut holds
// comes out as the check's divergence later, not here.
Status findSectorRereads(const std::string& out, Cut& cut, const SliceOptions& options) {
  auto reader = TraceReader::open(out);
  if (!reader.ok()) return reader.error();
  auto session = ReplaySession::open(*reader, options.engine);
  if (!session.ok()) return session.error();
  ReplaySession& s = **session;
  std::vector<uint64_t> chunkStart;  // the index of each chunk's first event
  uint64_t total = 0;
  for (const ChunkInfo& c : reader->chunks()) {
    chunkStart.push_back(total);
    total += c.eventCount;
  }
  cut.inserts.clear();
  s.environment().setSectorFallback([&](unsigned slot, uint64_t lba, std::span<uint8_t> bytes) {
    auto it = cut.sectorsBefore.find({slot, lba});
    if (it == cut.sectorsBefore.end()) return false;
    std::memcpy(bytes.data(), it->second.data(), kDiskSectorBytes);
    const machine::EventPosition at = s.environment().position();
    SectorInsert ins;
    ins.beforeEvent = at.chunk < chunkStart.size() ? chunkStart[at.chunk] + at.index : total;
    ins.step = s.step();
    ins.slot = slot;
    ins.lba = lba;
    ins.bytes = it->second;
    cut.inserts.push_back(ins);
    return true;
  });
  RunOptions ro;
  ro.cancel = options.cancel;
  if (options.progress)
    ro.progress = [&options](uint64_t step) { options.progress("finding sectors re-read", step); };
  s.runTo(cut.to, ro);
  std::stable_sort(
      cut.inserts.begin(), cut.inserts.end(),
      [](const SectorInsert& a, const SectorInsert& b) { return a.beforeEvent < b.beforeEvent; });
  return {};
}

// Replays the slice over its range: empty when it ends in the source's
// state at `to` (CPU and devices), else what differs.
std::string checkSlice(const std::string& out, const Cut& cut, const SliceOptions& options) {
  auto reader = TraceReader::open(out);
  if (!reader.ok()) return reader.error().message;
  auto session = ReplaySession::open(*reader, options.engine);
  if (!session.ok()) return session.error().message;
  RunOptions ro;
  ro.cancel = options.cancel;
  if (options.progress)
    ro.progress = [&options](uint64_t step) { options.progress("checking the slice", step); };
  const SessionStop stop = (*session)->runTo(cut.to, ro);
  if (std::string p = stopProblem(**session, stop, cut.to, "the slice's"); !p.empty()) return p;
  if (std::string d = (*session)->checkEndState(); !d.empty()) return "end state: " + d;
  if ((*session)->saveDevices() != cut.endDevices)
    return "the device state at step " + std::to_string(cut.to) + " differs from the source's";
  return "";
}

}  // namespace

Result<SliceResult> sliceTrace(const TraceReader& source, const std::string& out,
                               const SliceOptions& options) {
  std::error_code ec;
  if (std::filesystem::equivalent(source.path(), out, ec))
    return makeError(out + ": the slice would overwrite its source");
  if (!source.end())
    return makeError(source.path() +
                     ": the trace has no footer (the recording was cut off); "
                     "`ttvm recover` completes it, then it can be sliced");
  auto opened = ReplaySession::open(source, options.engine);
  if (!opened.ok()) return opened.error();
  std::unique_ptr<ReplaySession> replay = std::move(*opened);
  Cut cut;
  cut.sourceEnd = replay->endStep();
  cut.from = options.from;
  cut.to = options.to.value_or(cut.sourceEnd);
  const uint64_t begin = replay->step();
  if (cut.from < begin || cut.from >= cut.to || cut.to > cut.sourceEnd)
    return makeError(source.path() + ": steps " + std::to_string(cut.from) + ".." +
                     std::to_string(cut.to) + ": give 'from' < 'to' within the recorded run, " +
                     std::to_string(begin) + ".." + std::to_string(cut.sourceEnd));

  // From the last stored snapshot at or before the cut, if the source has
  // one (ttvm record --snapshot-every), instead of from its first step.
  SliceResult result;
  result.replayedFrom = begin;
  RunOptions ro;
  ro.cancel = options.cancel;
  std::vector<uint64_t>& wanted = cut.wanted;
  for (bool fromSnapshot = options.useSnapshots;; fromSnapshot = false) {
    if (result.replayedFrom != begin) {  // a replay from a snapshot diverged: start again
      auto fresh = ReplaySession::open(source, options.engine);
      if (!fresh.ok()) return fresh.error();
      replay = std::move(*fresh);
    }
    result.replayedFrom = begin;
    if (fromSnapshot && replay->runsWholeMachine()) {
      const std::vector<SnapshotInfo>& snaps = source.snapshots();
      for (size_t i = snaps.size(); i-- > 0;) {
        if (snaps[i].step > cut.from || snaps[i].step <= begin) continue;
        if (Status st = replay->startFromSnapshot(i); !st.ok()) return st.error();
        result.replayedFrom = snaps[i].step;
        break;
      }
    }
    ReplaySession& session = *replay;
    // A snapshot does not hold the sectors the guest wrote before it (the
    // disk's overlay is in no device state): a replay started there that
    // reads one diverges, before the cut or after it. The replay from the
    // first step has them.
    auto givenUp = [&](const SessionStop& stop, uint64_t target) {
      if (stop.kind != SessionStopKind::kDivergence || result.replayedFrom == begin) return false;
      result.snapshotProblem = "the replay from the snapshot at step " +
                               std::to_string(result.replayedFrom) + ": " +
                               stopProblem(session, stop, target, "the source's");
      return true;
    };
    if (options.progress)
      ro.progress = [&options](uint64_t step) { options.progress("replaying to the cut", step); };
    SessionStop stop = session.runTo(cut.from, ro);
    if (givenUp(stop, cut.from)) continue;
    if (std::string p = stopProblem(session, stop, cut.from, "the source's"); !p.empty())
      return makeError(source.path() + ": " + p);

    // The state at the cut.
    cut.initial.cpu = session.state();
    // A 1.2 trace's INIT holds every device though its replay runs only the
    // IDE channels: the others keep the state it gave them.
    cut.initial.deviceState = session.saveInitialDeviceState();
    cut.initial.ram = RamPages::fromFlat(session.ram());
    cut.position = session.environment().position();
    auto sectorsBefore = sectorsLoggedBefore(source, cut.position);
    if (!sectorsBefore.ok()) return sectorsBefore.error();
    cut.sectorsBefore = std::move(*sectorsBefore);
    // A sector the guest wrote before the cut is in the source's disk
    // overlay, which no device state holds: for the slice it is what the
    // disk holds there, logged like a sector read before the cut where the
    // slice reads it.
    for (const auto& [where, bytes] : session.writtenSectors()) cut.sectorsBefore[where] = bytes;
    Cpu& cpu = session.cpu();
    wanted = referencedPages(session, cpu);

    // Over the range: which pages the CPU accesses, and the end state.
    cpu.setAccessTracking(true);
    if (options.progress)
      ro.progress = [&options](uint64_t step) { options.progress("replaying the slice", step); };
    stop = session.runTo(cut.to, ro);
    std::vector<uint64_t> accessed = cpu.takeAccessedPages();
    cpu.setAccessTracking(false);
    if (givenUp(stop, cut.to)) continue;
    if (std::string p = stopProblem(session, stop, cut.to, "the source's"); !p.empty())
      return makeError(source.path() + ": " + p);
    cut.endCpu = session.state();
    cut.endDevices = session.saveDevices();
    wanted.insert(wanted.end(), accessed.begin(), accessed.end());
    std::sort(wanted.begin(), wanted.end());
    wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
    break;
  }

  // The source's snapshots inside the range travel in the slice (a replay
  // of the slice, or a slice of it, can start there).
  for (size_t i = 0; options.copySnapshots && i < source.snapshots().size(); ++i) {
    const uint64_t at = source.snapshots()[i].step;
    if (at > cut.from && (at < cut.to || cut.to == cut.sourceEnd)) cut.snapshots.push_back(i);
  }

  // The header: the source's, with the slice's origin, a new identity and
  // the images that are not ELF reduced to their names.
  cut.header = source.header();
  cut.header.traceId = {};
  SliceOrigin origin;
  origin.sourceTraceId = source.header().traceId;
  origin.fromStep = cut.from;
  origin.toStep = cut.to;
  origin.sourceEndStep = cut.sourceEnd;
  origin.sourceBytes = source.fileBytes();
  origin.sourceName = std::filesystem::path(source.path()).filename().string();
  // A slice of a slice keeps the first source's steps; its origin names the
  // file it was cut from.
  for (GuestImage& g : cut.header.images)
    if (!isElfImage(g)) g.bytes.clear();

  result.from = cut.from;
  result.to = cut.to;
  result.nonZeroPages = cut.initial.ram.pageCount();
  const RamPages partial = keepPages(cut.initial.ram, wanted);
  result.partialRam = !options.fullRam && partial.pageCount() < cut.initial.ram.pageCount();
  for (int attempt = 0;; ++attempt) {
    cut.header.slice = origin;
    cut.header.slice->partialRam = result.partialRam;
    auto events = writeSlice(source, cut, result.partialRam ? partial : cut.initial.ram, out);
    if (!events.ok()) return events.error();
    if (attempt == 0 && !cut.sectorsBefore.empty()) {
      // Sectors read before the cut and again after it: found by a replay
      // of the slice, then logged where that replay read them.
      TTVM_TRY(findSectorRereads(out, cut, options));
      if (!cut.inserts.empty()) {
        events = writeSlice(source, cut, result.partialRam ? partial : cut.initial.ram, out);
        if (!events.ok()) return events.error();
      }
    }
    result.sectorsReread = cut.inserts.size();
    result.snapshots = cut.snapshots.size();
    result.events = *events;
    result.pages = result.partialRam ? partial.pageCount() : cut.initial.ram.pageCount();
    if (!options.check) break;
    const std::string problem = checkSlice(out, cut, options);
    if (problem.empty()) {
      result.checked = true;
      break;
    }
    if (!result.partialRam || attempt > 0)
      return makeError(out + ": the slice does not replay as its source over steps " +
                       std::to_string(cut.from) + ".." + std::to_string(cut.to) + ": " + problem);
    // The fallback: the whole RAM (a page the tracking missed would be a bug
    // in it; the slice stays usable meanwhile).
    result.fallbackReason = problem;
    result.partialRam = false;
  }
  std::error_code sizeError;
  result.bytes = std::filesystem::file_size(out, sizeError);
  return result;
}

}  // namespace ttvm
