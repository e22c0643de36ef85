// The IDE controller as a replay-computed device (trace format 1.1): the
// trace holds each disk sector the guest read from the image once (a
// kDiskSector event) and none of the controller's port accesses; replay, the
// timeline's checkpoints and the recorder's tail re-execution run the
// controller over those sectors. The guest (disk_reread_guest.asm) reads
// sector 1 eight times, sectors 2-3 in one command, writes sector 4 and
// reads it back.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <set>

#include "scripted_trace_support.h"
#include "slice_compare_support.h"
#include "ttvm/formats/trace_reader.h"
#include "ttvm/formats/trace_writer.h"
#include "ttvm/machine/devices/ide_channel.h"
#include "ttvm/machine/disk_image.h"
#include "ttvm/machine/loader.h"
#include "ttvm/machine/machine.h"
#include "ttvm/recorder/record_session.h"
#include "ttvm/replayer/replay_session.h"
#include "ttvm/replayer/slicer.h"
#include "ttvm/replayer/timeline.h"

namespace ttvm {
using ttvm::machine::DiskImage;
using ttvm::machine::loadBootDisk;
using ttvm::machine::Machine;
using ttvm::machine::MachineOptions;
namespace {

constexpr uint64_t kDiskSectors = 16;
constexpr int kRounds = 8;  // ROUNDS in the guest

// The disk: random sectors behind the boot sector `guest`.
std::vector<uint8_t> diskBytes(const char* guest = DISK_REREAD_GUEST) {
  std::vector<uint8_t> d(kDiskSectors * DiskImage::kSectorBytes);
  std::mt19937_64 rng(11);
  for (uint8_t& b : d) b = static_cast<uint8_t>(rng());
  std::ifstream f(guest, std::ios::binary);
  std::vector<uint8_t> boot((std::istreambuf_iterator<char>(f)), {});
  EXPECT_EQ(boot.size(), DiskImage::kSectorBytes) << guest;
  std::copy(boot.begin(), boot.end(), d.begin());
  return d;
}

std::span<const uint8_t> sector(const std::vector<uint8_t>& disk, uint64_t lba) {
  return std::span<const uint8_t>(disk).subspan(lba * DiskImage::kSectorBytes,
                                                DiskImage::kSectorBytes);
}

uint16_t wordSum(std::span<const uint8_t> s) {
  uint16_t sum = 0;
  for (size_t i = 0; i < s.size(); i += 2)
    sum = static_cast<uint16_t>(sum + (s[i] | s[i + 1] << 8));
  return sum;
}

// What the replay runs: nothing (format 1.0's mode: every IDE port access
// logged), the IDE channels (1.2's), or the whole machine (since 1.3).
enum class Mode { kNone, kIde, kWhole };

std::unique_ptr<Machine> diskMachine(Mode mode, const char* guest = DISK_REREAD_GUEST) {
  MachineOptions o;
  o.ramBytes = 16ull << 20;
  o.startClockUnixNs = 1'700'000'000'000'000'000;
  auto m = Machine::create(o);
  EXPECT_TRUE(m.ok());
  (*m)->ports().setReportStream(nullptr);
  (*m)->mmio().setReportStream(nullptr);
  if (mode == Mode::kNone) {
    EXPECT_TRUE((*m)->setReplayedDevices({}).ok());
  } else if (mode == Mode::kIde) {
    EXPECT_TRUE((*m)->setReplayedDevices({"ide0", "ide1"}).ok());
  }
  EXPECT_EQ((*m)->replaysWholeMachine(), mode == Mode::kWhole);
  EXPECT_TRUE((*m)->attachDisk(0, DiskImage::fromBytes("reread.img", diskBytes(guest))).ok());
  return std::move(m).value();
}

struct Recorded {
  std::string path;
  TraceEnd end;
  std::string tailProblem;
};

Recorded record(const std::string& stem, Mode mode, uint64_t snapshotInterval = 0,
                const char* bootSector = DISK_REREAD_GUEST) {
  auto m = diskMachine(mode, bootSector);
  auto guest = loadBootDisk(*m);
  EXPECT_TRUE(guest.ok()) << guest.error().message;
  RecordOptions ro;
  ro.tracePath = testing::tempTracePath(stem);
  ro.ttvmVersion = "test";
  ro.digestInterval = 256;
  ro.tailWindow = 600;  // the tail starts mid-run: sectors read before it come from the trace
  ro.snapshotInterval = snapshotInterval;
  RecordSession s(*m, std::move(guest).value(), ro);
  EXPECT_TRUE(s.start().ok());
  auto r = s.run();
  EXPECT_TRUE(r.ok()) << r.error().message;
  return {ro.tracePath, r.ok() ? r->end : TraceEnd{}, s.tailProblem};
}

struct Counted {
  uint64_t events = 0, diskEvents = 0, idePortEvents = 0;
  std::map<uint64_t, std::vector<uint8_t>> sectors;  // LBA -> bytes, disk 0
};

Counted countEvents(const std::string& path) {
  Counted c;
  auto r = TraceReader::open(path);
  EXPECT_TRUE(r.ok());
  std::vector<TraceEvent> ev;
  std::vector<uint8_t> bytes;
  for (size_t i = 0; i < r->chunkCount(); ++i) {
    EXPECT_TRUE(r->readChunkInto(i, ev, &bytes).ok());
    for (const TraceEvent& e : ev) {
      ++c.events;
      if ((e.kind == EventKind::kPortIn || e.kind == EventKind::kPortOut) &&
          ((e.address >= 0x1F0 && e.address <= 0x1F7) || e.address == 0x3F6))
        ++c.idePortEvents;
      if (e.kind != EventKind::kDiskSector) continue;
      ++c.diskEvents;
      EXPECT_EQ(e.value, 0u);
      EXPECT_FALSE(c.sectors.count(e.address)) << "sector " << e.address << " logged twice";
      auto at = bytes.begin() + e.count * DiskImage::kSectorBytes;
      c.sectors[e.address] = std::vector<uint8_t>(at, at + DiskImage::kSectorBytes);
    }
  }
  return c;
}

uint64_t fileBytes(const std::string& path) {
  auto r = TraceReader::open(path);
  return r.ok() ? r->fileBytes() : 0;
}

// Replays `path` to the end: empty when it matches the recording, else why not.
std::string replayToEnd(const std::string& path) {
  auto reader = TraceReader::open(path);
  if (!reader.ok()) return reader.error().message;
  auto s = ReplaySession::open(*reader);
  if (!s.ok()) return s.error().message;
  SessionStop stop = (*s)->runTo(~0ull);
  if (stop.kind != SessionStopKind::kEnd)
    return (*s)->divergence() ? (*s)->divergence()->format() : toString(stop.kind);
  return (*s)->checkEndState();
}

class DiskReplay : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    now_ = new Recorded(record("disk-whole", Mode::kWhole));
    ide_ = new Recorded(record("disk-ide", Mode::kIde));
    old_ = new Recorded(record("disk-none", Mode::kNone));
  }
  static void TearDownTestSuite() {
    for (Recorded* r : {now_, ide_, old_}) {
      std::remove(r->path.c_str());
      delete r;
    }
  }
  static Recorded* now_;
  static Recorded* ide_;
  static Recorded* old_;
};
Recorded* DiskReplay::now_ = nullptr;
Recorded* DiskReplay::ide_ = nullptr;
Recorded* DiskReplay::old_ = nullptr;

TEST_F(DiskReplay, TheGuestReadWhatTheDiskHolds) {
  const std::vector<uint8_t> disk = diskBytes();
  const uint16_t sum = static_cast<uint16_t>(
      kRounds * wordSum(sector(disk, 1)) + wordSum(sector(disk, 2)) + 2 * wordSum(sector(disk, 3)));
  for (const Recorded* r : {now_, ide_, old_}) {
    EXPECT_EQ(r->end.reason, EndReason::kExitDevice) << r->end.message;
    EXPECT_EQ(r->end.exitStatus, sum & 0xFFu) << r->end.message;
  }
}

TEST_F(DiskReplay, ASectorReadManyTimesIsInTheTraceOnce) {
  const Counted now = countEvents(now_->path), old = countEvents(old_->path);
  const uint64_t nowBytes = fileBytes(now_->path), oldBytes = fileBytes(old_->path);
  std::printf(
      "disk guest (sector 1 read %d times, sectors 2-3 once, sector 4 written and read "
      "back):\n  no device replayed (IDE reads logged): %llu bytes, %llu events, %llu IDE port "
      "events, %llu disk sectors\n  the whole machine replayed:            %llu bytes, %llu "
      "events, %llu IDE port events, %llu disk sectors (%llu sector bytes)\n",
      kRounds, static_cast<unsigned long long>(oldBytes),
      static_cast<unsigned long long>(old.events),
      static_cast<unsigned long long>(old.idePortEvents),
      static_cast<unsigned long long>(old.diskEvents), static_cast<unsigned long long>(nowBytes),
      static_cast<unsigned long long>(now.events),
      static_cast<unsigned long long>(now.idePortEvents),
      static_cast<unsigned long long>(now.diskEvents),
      static_cast<unsigned long long>(now.diskEvents * DiskImage::kSectorBytes));
  // Sectors 1, 2 and 3 once each; sector 4 came from the guest's own write.
  ASSERT_EQ(now.diskEvents, 3u);
  const std::vector<uint8_t> disk = diskBytes();
  for (uint64_t lba : {1, 2, 3}) {
    ASSERT_TRUE(now.sectors.count(lba)) << "sector " << lba;
    const auto want = sector(disk, lba);
    EXPECT_TRUE(std::equal(want.begin(), want.end(), now.sectors.at(lba).begin()))
        << "sector " << lba << " holds other bytes than the image";
  }
  EXPECT_EQ(now.idePortEvents, 0u);
  // The old mode logged every data word: 11 blocks of 256 words read.
  EXPECT_EQ(old.diskEvents, 0u);
  EXPECT_GE(old.idePortEvents, (kRounds + 3) * 256u);
  EXPECT_LT(now.events * 10, old.events);
  EXPECT_LT(nowBytes, oldBytes);
}

TEST_F(DiskReplay, EveryModeReplaysToTheRecordedEnd) {
  for (const Recorded* m : {now_, ide_, old_}) EXPECT_EQ(replayToEnd(m->path), "") << m->path;
  auto r = TraceReader::open(now_->path);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->header().formatMinor, kTraceFormatMinor);  // written by this ttvm
  EXPECT_EQ(r->header().replayedDevices, diskMachine(Mode::kWhole)->wholeMachine());
  auto i = TraceReader::open(ide_->path);
  ASSERT_TRUE(i.ok());
  EXPECT_EQ(i->header().replayedDevices, (std::vector<std::string>{"ide0", "ide1"}));
  auto o = TraceReader::open(old_->path);
  ASSERT_TRUE(o.ok());
  EXPECT_TRUE(o->header().replayedDevices.empty());
}

TEST_F(DiskReplay, TheRecordersTailRunsTheController) {
  // The tail re-execution starts at a checkpoint after sector 1 was first
  // read (tailWindow 600): it needs the sector from the trace, not the image.
  for (const Recorded* m : {now_, ide_}) {
    EXPECT_EQ(m->tailProblem, "") << m->path;
    EXPECT_GT(m->end.lastInstructions.size(), 1u) << m->path;
  }
}

// Copies a trace, dropping the events `drop` says to (sectors kept with theirs).
Status copyTrace(const std::string& in, const std::string& out,
                 const std::function<bool(const TraceEvent&)>& drop) {
  auto r = TraceReader::open(in);
  if (!r.ok()) return r.error();
  auto init = r->initialState();
  if (!init.ok()) return init.error();
  auto w = TraceWriter::create(out, r->header(), *init);
  if (!w.ok()) return w.error();
  std::vector<TraceEvent> ev;
  std::vector<uint8_t> bytes;
  for (size_t c = 0; c < r->chunkCount(); ++c) {
    TTVM_TRY(r->readChunkInto(c, ev, &bytes));
    for (const TraceEvent& e : ev) {
      if (drop(e)) continue;
      if (e.kind == EventKind::kDiskSector)
        (*w)->appendDiskSector(e.step, static_cast<uint8_t>(e.value), e.address,
                               std::span<const uint8_t>(bytes).subspan(
                                   e.count * DiskImage::kSectorBytes, DiskImage::kSectorBytes));
      else
        (*w)->append(e);
    }
  }
  return (*w)->close(*r->end());
}

TEST_F(DiskReplay, AMissingSectorIsADivergenceNamingItsStepAndLba) {
  const std::string bad = testing::tempTracePath("disk-missing");
  uint64_t step = 0;
  ASSERT_TRUE(copyTrace(now_->path, bad, [&](const TraceEvent& e) {
                if (e.kind != EventKind::kDiskSector || e.address != 2) return false;
                step = e.step;
                return true;
              }).ok());
  ASSERT_NE(step, 0u);
  auto reader = TraceReader::open(bad);
  ASSERT_TRUE(reader.ok());
  auto s = ReplaySession::open(*reader);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->runTo(~0ull).kind, SessionStopKind::kDivergence);
  auto d = (*s)->divergence();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->step, step);
  const std::string text = d->format();
  std::printf("%s", text.c_str());
  EXPECT_NE(text.find("divergence at step " + std::to_string(step)), std::string::npos) << text;
  EXPECT_NE(text.find("disk 0 sector (LBA) 2"), std::string::npos) << text;
  EXPECT_NE(text.find("which the trace does not hold"), std::string::npos) << text;
  std::remove(bad.c_str());
  // The copy with nothing dropped replays: the copying kept every sector.
  const std::string same = testing::tempTracePath("disk-copy");
  ASSERT_TRUE(copyTrace(now_->path, same, [](const TraceEvent&) { return false; }).ok());
  EXPECT_EQ(replayToEnd(same), "");
  std::remove(same.c_str());
}

// The replayed IDE state saved and restored: the same bytes again, and the
// same reads afterwards, for a controller in the middle of a transfer.
TEST(IdeState, SnapshotRoundTripsMidTransfer) {
  auto a = diskMachine(Mode::kIde);
  auto b = diskMachine(Mode::kIde);
  const std::vector<uint8_t> disk = diskBytes();
  // READ SECTORS of LBA 2, two sectors, then 100 words of the first.
  a->portOut(0x1F6, 1, 0xE0);
  a->portOut(0x1F2, 1, 2);
  a->portOut(0x1F3, 1, 2);
  a->portOut(0x1F4, 1, 0);
  a->portOut(0x1F5, 1, 0);
  a->portOut(0x1F7, 1, 0x20);
  for (int i = 0; i < 100; ++i) a->portIn(0x1F0, 2);
  const std::vector<uint8_t> saved = a->saveReplayedState();
  ASSERT_TRUE(b->loadReplayedState(saved).ok());
  EXPECT_EQ(b->saveReplayedState(), saved);
  // The rest of both blocks, word by word, from both machines and the disk.
  for (unsigned w = 100; w < 512; ++w) {
    const uint32_t va = a->portIn(0x1F0, 2), vb = b->portIn(0x1F0, 2);
    const auto s = sector(disk, 2 + w / 256);
    const unsigned at = (w % 256) * 2;
    ASSERT_EQ(va, vb) << "word " << w;
    ASSERT_EQ(va, static_cast<uint32_t>(s[at] | s[at + 1] << 8)) << "word " << w;
  }
  EXPECT_EQ(a->portIn(0x1F7, 1), b->portIn(0x1F7, 1));
  EXPECT_EQ(a->saveReplayedState(), b->saveReplayedState());
  // After the transfer (the state a controller spends most of its time in).
  const std::vector<uint8_t> idle = a->saveReplayedState();
  ASSERT_TRUE(b->loadReplayedState(idle).ok());
  EXPECT_EQ(b->saveReplayedState(), idle);
  // A blob for other devices or cut short is refused with a message.
  EXPECT_FALSE(b->loadReplayedState(std::span<const uint8_t>(saved).first(saved.size() - 1)).ok());
  auto none = diskMachine(Mode::kNone);
  EXPECT_FALSE(none->loadReplayedState(saved).ok());
}

TEST_F(DiskReplay, SeekAndStepBackMatchAStraightReplay) {
  auto reader = TraceReader::open(now_->path);
  ASSERT_TRUE(reader.ok());
  auto straight = ReplaySession::open(*reader);
  ASSERT_TRUE(straight.ok());
  const uint64_t end = (*straight)->endStep();
  // Where the timeline goes: random seeks, each followed by a step back.
  std::mt19937_64 rng(5);
  std::vector<std::pair<uint64_t, uint64_t>> moves;  // (seek target, steps back)
  std::set<uint64_t> visited{end};
  for (int i = 0; i < 400; ++i) {
    const uint64_t t = rng() % (end + 1), k = 1 + rng() % 300;
    moves.emplace_back(t, k);
    visited.insert(t);
    if (k <= t) visited.insert(t - k);
  }
  // The straight replay's CPU, RAM and controller state at each of those steps.
  struct At {
    CpuState cpu;
    uint64_t ram = 0;
    std::vector<uint8_t> devices;
  };
  std::map<uint64_t, At> ref;
  for (uint64_t t : visited) {
    ASSERT_NE((*straight)->runTo(t).kind, SessionStopKind::kDivergence) << t;
    ref[t] = {(*straight)->state(),
              testing::hashBytes((*straight)->ram().data(), (*straight)->ram().size()),
              (*straight)->saveDevices()};
  }
  TimelineOptions o;
  o.checkpointInterval = 97;  // many checkpoints, each with the controller's state
  auto tl = Timeline::open(*reader, o);
  ASSERT_TRUE(tl.ok());
  auto check = [&](const char* what) {
    const uint64_t t = (*tl)->now();
    const At& want = ref.at(t);
    ASSERT_TRUE((*tl)->registers() == want.cpu) << what << ": CPU differs at step " << t;
    ASSERT_EQ(testing::hashBytes((*tl)->ram().data(), (*tl)->ram().size()), want.ram)
        << what << ": RAM differs at step " << t;
    const std::vector<uint8_t> devices = (*tl)->session().saveDevices();
    size_t at = 0;
    while (at < devices.size() && at < want.devices.size() && devices[at] == want.devices[at]) ++at;
    ASSERT_EQ(devices, want.devices)
        << what << ": IDE state differs at step " << t << " from byte " << at << " of "
        << devices.size() << " (" << want.devices.size() << " in the straight replay)";
  };
  int steppedBack = 0;
  for (const auto& [t, k] : moves) {
    ASSERT_NE((*tl)->seek(t).kind, StopKind::kDivergence) << "seek " << t;
    ASSERT_EQ((*tl)->now(), t);
    ASSERT_NO_FATAL_FAILURE(check("seek"));
    if (k > t) continue;
    StopReason back = (*tl)->stepBack(k);
    ASSERT_NE(back.kind, StopKind::kDivergence) << back.divergence->format();
    ASSERT_EQ((*tl)->now(), t - k);
    ASSERT_NO_FATAL_FAILURE(check("stepBack"));
    ++steppedBack;
  }
  EXPECT_GT(steppedBack, 300);
  ASSERT_NE((*tl)->seek(end).kind, StopKind::kDivergence);
  ASSERT_NO_FATAL_FAILURE(check("end"));
  EXPECT_EQ((*tl)->session().checkEndState(), "");
}

// The steps at which the disk guest executes one REP INSW / REP OUTSW
// iteration (its sector transfers), found by stepping a replay of `reader`.
void findTransfers(const TraceReader& reader, std::vector<uint64_t>& insw,
                   std::vector<uint64_t>& outsw) {
  auto walk = ReplaySession::open(reader);
  ASSERT_TRUE(walk.ok()) << walk.error().message;
  ReplaySession& w = **walk;
  while (w.step() < w.endStep()) {
    const std::string insn = w.disassembleAt(w.state().rip);
    if (insn.find("insw") != std::string::npos) insw.push_back(w.step());
    if (insn.find("outsw") != std::string::npos) outsw.push_back(w.step());
    const uint64_t next = w.step() + 1;
    ASSERT_EQ(w.runTo(next).step, next);
  }
}

// A 1.2 trace (the IDE channels replayed, every other device answered from
// the trace) sliced where the controller's state matters: in the middle of
// the first sector's transfer (half of it still in the controller's
// buffer), between two reads of sector 1 (read before the cut and again
// after it: the slice logs it again), in the middle of the write of sector
// 4 and just after it (the written bytes, which the trace never holds, are
// in the disk's overlay at the cut, which no device state holds: the slice
// logs them where it reads them; the guest's exit status sums them). Each
// slice replays as the source over its range, compared every 500 steps,
// and ends in the source's end state.
TEST_F(DiskReplay, A12TraceSlicesWhereTheControllerHoldsState) {
  auto reader = TraceReader::open(ide_->path);
  ASSERT_TRUE(reader.ok()) << reader.error().message;
  ASSERT_EQ(reader->header().replayedDevices, (std::vector<std::string>{"ide0", "ide1"}));
  const uint64_t end = reader->end()->steps;
  std::vector<uint64_t> insw, outsw;  // steps that execute one REP iteration of each
  ASSERT_NO_FATAL_FAILURE(findTransfers(*reader, insw, outsw));
  ASSERT_EQ(insw.size(), (kRounds + 3) * 256u);  // 11 sectors read
  ASSERT_EQ(outsw.size(), 256u);                 // one written
  struct Cut {
    const char* what;
    uint64_t from, to;
  };
  const std::vector<Cut> cuts = {
      {"inside the first transfer", insw[100], end},
      {"inside the first transfer, to the middle of the run", insw[100], insw[5 * 256 + 7]},
      {"between the first and the second read of sector 1", insw[256], end},
      {"inside the write of sector 4", outsw[128], end},
      {"after the write of sector 4", outsw.back() + 1, end},
  };
  uint64_t reread = 0;
  for (const Cut& c : cuts) {
    SCOPED_TRACE(std::string(c.what) + ": steps " + std::to_string(c.from) + ".." +
                 std::to_string(c.to));
    const std::string out = testing::tempTracePath("ide-slice");
    SliceOptions o;
    o.from = c.from;
    if (c.to != end) o.to = c.to;
    auto r = sliceTrace(*reader, out, o);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_TRUE(r->checked);
    EXPECT_TRUE(r->partialRam) << r->fallbackReason;
    reread += r->sectorsReread;
    auto slice = TraceReader::open(out);
    ASSERT_TRUE(slice.ok()) << slice.error().message;
    EXPECT_EQ(slice->header().replayedDevices, reader->header().replayedDevices);
    testing::expectReplaysAsSource(ide_->path, out, c.from, c.to, 500);
    if (c.to == end) {
      EXPECT_EQ(replayToEnd(out), "");
    }
    std::remove(out.c_str());
  }
  // Sector 1, read again after each of the first three cuts; sector 4,
  // written before the last cut and read after it (from the disk's overlay
  // at the cut, which no device state holds).
  EXPECT_EQ(reread, 4u);
}

// A stored snapshot does not hold the sectors the guest wrote before it
// (the disk's overlay is in no device state), so a replay started there
// diverges where the guest reads one back. The disk guest recorded with a
// snapshot every 16 steps, sliced from the first snapshot after its write
// of sector 4 (before it reads the sector back): the slicer gives the
// snapshot up for a replay from step 0, says why, and the slice replays as
// its source.
TEST(DiskReplaySlice, ASnapshotAfterADiskWriteIsGivenUpForTheFirstStep) {
  const Recorded rec = record("disk-snapshots", Mode::kWhole, 16);
  ASSERT_EQ(rec.end.reason, EndReason::kExitDevice) << rec.end.message;
  auto reader = TraceReader::open(rec.path);
  ASSERT_TRUE(reader.ok()) << reader.error().message;
  std::vector<uint64_t> insw, outsw;
  ASSERT_NO_FATAL_FAILURE(findTransfers(*reader, insw, outsw));
  ASSERT_EQ(outsw.size(), 256u);
  const uint64_t written = outsw.back() + 1;
  const uint64_t readBack = insw[(kRounds + 2) * 256];  // the first word of sector 4 read back
  uint64_t from = 0;
  for (const SnapshotInfo& s : reader->snapshots())
    if (s.step > written) {
      from = s.step;
      break;
    }
  ASSERT_GT(from, written);
  ASSERT_LT(from, readBack);
  const std::string out = testing::tempTracePath("disk-snapshot-slice");
  SliceOptions o;
  o.from = from;
  auto r = sliceTrace(*reader, out, o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->replayedFrom, 0u);
  EXPECT_NE(r->snapshotProblem.find("the replay from the snapshot at step " + std::to_string(from)),
            std::string::npos)
      << r->snapshotProblem;
  EXPECT_NE(r->snapshotProblem.find("sector (LBA) 4"), std::string::npos) << r->snapshotProblem;
  EXPECT_TRUE(r->checked);
  EXPECT_EQ(r->sectorsReread, 1u);  // sector 4, from the overlay at the cut
  testing::expectReplaysAsSource(rec.path, out, from, reader->end()->steps, 100);
  // A cut before the write starts from the snapshot as usual.
  o.from = outsw.front() - 40;
  auto early = sliceTrace(*reader, out, o);
  ASSERT_TRUE(early.ok()) << early.error().message;
  EXPECT_GT(early->replayedFrom, 0u);
  EXPECT_EQ(early->snapshotProblem, "");
  for (const std::string& f : {rec.path, out}) std::remove(f.c_str());
}

// The timeline's checkpoints hold the disks' overlays: the guest of
// disk_rewrite_guest.asm reads sector 5, writes it changed and reads it
// again. A timeline that has run past the write and seeks back to before
// the first read (restoring a checkpoint taken before the write) must read
// the image's bytes there again, not the ones written later: CPU and RAM
// match a straight replay at every step of the way forward, the written
// sector's bytes in RAM included, and the run ends in the recorded state.
TEST(DiskReplayTimeline, ASeekBackBeforeADiskWriteReadsTheSectorAsRecorded) {
  const Recorded rec = record("disk-rewrite", Mode::kWhole, 0, DISK_REWRITE_GUEST);
  const std::vector<uint8_t> disk = diskBytes(DISK_REWRITE_GUEST);
  const uint16_t s5 = wordSum(sector(disk, 5));
  EXPECT_EQ(rec.end.reason, EndReason::kExitDevice) << rec.end.message;
  EXPECT_EQ(rec.end.finalCpu.gpr[0] & 0xFFFF, static_cast<uint16_t>(2 * s5 + 256));
  auto reader = TraceReader::open(rec.path);
  ASSERT_TRUE(reader.ok()) << reader.error().message;
  std::vector<uint64_t> insw, outsw;
  ASSERT_NO_FATAL_FAILURE(findTransfers(*reader, insw, outsw));
  ASSERT_EQ(insw.size(), 2 * 256u);
  ASSERT_EQ(outsw.size(), 256u);
  const uint64_t end = reader->end()->steps;
  // The straight replay's CPU and low RAM (the guest's code, data and stack
  // are below 64 KiB) at each step from before the first read.
  constexpr size_t kLow = 0x10000;
  const uint64_t from = insw.front() - 5;
  auto straight = ReplaySession::open(*reader);
  ASSERT_TRUE(straight.ok());
  std::vector<std::pair<CpuState, uint64_t>> ref;
  ASSERT_EQ((*straight)->runTo(from).step, from);
  for (uint64_t t = from; t <= end; ++t) {
    ASSERT_EQ((*straight)->runTo(t).step, t);
    ref.emplace_back((*straight)->state(), testing::hashBytes((*straight)->ram().data(), kLow));
  }
  TimelineOptions o;
  o.checkpointInterval = 64;  // checkpoints before the write and after it
  auto tl = Timeline::open(*reader, o);
  ASSERT_TRUE(tl.ok());
  for (const uint64_t t : {end, from}) {
    const StopReason r = (*tl)->seek(t);
    ASSERT_NE(r.kind, StopKind::kDivergence) << "seek " << t << ": " << r.divergence->format();
  }
  ASSERT_EQ((*tl)->now(), from);
  for (uint64_t t = from; t <= end; ++t) {
    if (t > from) {
      const StopReason r = (*tl)->step(1);
      ASSERT_NE(r.kind, StopKind::kDivergence) << r.divergence->format();
    }
    ASSERT_EQ((*tl)->now(), t);
    ASSERT_TRUE((*tl)->registers() == ref[t - from].first)
        << "CPU differs at step " << t << " (first sector word read at step " << insw.front()
        << ", written by step " << outsw.back() << "): ax " << std::hex << (*tl)->registers().gpr[0]
        << " vs " << ref[t - from].first.gpr[0];
    ASSERT_EQ(testing::hashBytes((*tl)->ram().data(), kLow), ref[t - from].second)
        << "RAM differs at step " << t << " (first sector word read at step " << insw.front()
        << ")";
  }
  EXPECT_EQ(testing::hashBytes((*tl)->ram().data(), (*tl)->ram().size()),
            testing::hashBytes((*straight)->ram().data(), (*straight)->ram().size()));
  EXPECT_EQ((*tl)->session().checkEndState(), "");
  std::remove(rec.path.c_str());
}

}  // namespace
}  // namespace ttvm
