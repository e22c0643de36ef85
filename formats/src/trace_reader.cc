#include "ttvm/formats/trace_reader.h"

#include <capnp/serialize.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "crc32c.h"
#include "frame.h"
#include "schema_convert.h"
#include "ttvm/formats/chunk_codec.h"

namespace ttvm {

using namespace formats;

namespace {

template <typename Root, typename Fn>
Status readMessage(const RawPayload& raw, const std::string& where, Fn&& fn) {
  if (raw.bytes % 8 != 0)
    return makeError(where + ": message size " + std::to_string(raw.bytes) +
                     " is not a multiple of 8");
  return guardCapnp(where, [&]() -> Status {
    capnp::FlatArrayMessageReader reader(
        kj::ArrayPtr<const capnp::word>(reinterpret_cast<const capnp::word*>(raw.data()),
                                        raw.bytes / 8),
        readerOptionsFor(raw.bytes));
    return fn(reader.template getRoot<Root>());
  });
}

std::string frameWhere(const InputFile& f, const char* what, uint64_t offset) {
  return f.path() + ": " + what + " at byte " + std::to_string(offset);
}

// A machine state (INIT or SNAP frame plus its PAGE frames).
struct MachineStateRead {
  uint64_t step = 0;
  CpuState cpu;
  RamPages ram;
  std::vector<uint8_t> deviceState;
  uint64_t end = 0;  // offset after the last PAGE frame
};

// `id` and `sequence`: what a 1.1 trace's state message must carry (its
// trace's id; 0 for INIT, k for the k-th snapshot); nothing is checked for
// an empty id (1.0). Its PAGE frames must match its pagesCrc.
Result<MachineStateRead> readMachineState(const InputFile& f, uint64_t offset, uint32_t tag,
                                          bool keepPages, const TraceId& id, uint64_t sequence) {
  RawPayload raw;
  auto hr = f.readFrame(offset, tag, raw);
  if (!hr.ok()) return hr.error();
  MachineStateRead out;
  uint64_t pageCount = 0;
  uint32_t pageFrames = 0;
  ChunkIdentity carried;
  uint32_t pagesCrc = 0;
  const std::string where = frameWhere(f, tag == kTagInit ? "initial state" : "snapshot", offset);
  Status parsed =
      readMessage<schema::MachineState>(raw, where, [&](schema::MachineState::Reader m) -> Status {
        out.step = m.getStep();
        TTVM_TRY(fromCapnp(m.getCpu(), out.cpu, where));
        auto ds = m.getDeviceState();
        out.deviceState.assign(ds.begin(), ds.end());
        pageCount = m.getPageCount();
        pageFrames = m.getPageFrames();
        carried = {{m.getTraceIdLo(), m.getTraceIdHi()}, m.getSequence()};
        pagesCrc = m.getPagesCrc();
        return Status{};
      });
  if (!parsed.ok()) return parsed.error();
  if (!id.empty() && (carried.trace != id || carried.sequence != sequence))
    return makeError(where + ": belongs to " +
                     (carried.trace != id
                          ? std::string("another trace (its id differs from the header's)")
                          : "sequence number " + std::to_string(carried.sequence)) +
                     ", expected " + (tag == kTagInit ? "the initial state" : "snapshot ") +
                     (tag == kTagInit ? "" : std::to_string(sequence)) +
                     " of this trace (a frame spliced, duplicated or out of place)");
  uint32_t pagesSeenCrc = 0;
  if (out.step != hr->firstStep || out.step != hr->lastStep)
    return makeError(where + ": message step " + std::to_string(out.step) +
                     " differs from the frame's step " + std::to_string(hr->firstStep));
  // Each PAGE frame holds at least one page, so neither count can exceed what
  // the rest of the file could hold; checked as the frames are read.
  uint64_t at = offset + kFrameHeaderBytes + hr->storedBytes;
  uint64_t pagesSeen = 0;
  for (uint32_t k = 0; k < pageFrames; ++k) {
    auto ph = f.readFrame(at, kTagPage, raw);
    if (!ph.ok())
      return makeError(ph.error().message + " (PAGE frame " + std::to_string(k + 1) + " of " +
                       std::to_string(pageFrames) + " of the " +
                       (tag == kTagInit ? "initial state" : "snapshot") + " at byte " +
                       std::to_string(offset) + ")");
    const uint32_t n = ph->count;
    if (n == 0 || n > kMaxPagesPerFrame || raw.bytes != uint64_t{n} * (8 + kPageSize))
      return f.errorAt(at, "PAGE frame: expected 1.." + std::to_string(kMaxPagesPerFrame) +
                               " pages of 8 + 4096 bytes each, found count " + std::to_string(n) +
                               " and " + std::to_string(raw.bytes) + " bytes");
    if (pagesSeen + n > pageCount)
      return f.errorAt(at, "PAGE frame: more pages than the " + std::to_string(pageCount) +
                               " announced at byte " + std::to_string(offset));
    const uint8_t* p = raw.span().data();
    pagesSeenCrc = crc32c(pagesSeenCrc, p, raw.bytes);
    for (uint32_t i = 0; i < n; ++i) {
      const uint64_t number = getU64(p + 8 * i);
      const uint64_t prev = keepPages ? (out.ram.numbers.empty() ? 0 : out.ram.numbers.back()) : 0;
      if (keepPages && !out.ram.numbers.empty() && number <= prev)
        return f.errorAt(at + kFrameHeaderBytes, "PAGE frame: page numbers must increase, found " +
                                                     std::to_string(number) + " after " +
                                                     std::to_string(prev));
      if (number > (uint64_t{1} << 52))
        return f.errorAt(at + kFrameHeaderBytes,
                         "PAGE frame: page number " + std::to_string(number) + " is impossible");
      if (keepPages) {
        out.ram.numbers.push_back(number);
        out.ram.bytes.insert(out.ram.bytes.end(), p + 8 * n + kPageSize * i,
                             p + 8 * n + kPageSize * (i + 1));
      }
    }
    pagesSeen += n;
    at += kFrameHeaderBytes + ph->storedBytes;
  }
  if (pagesSeen != pageCount)
    return makeError(where + ": announced " + std::to_string(pageCount) + " RAM pages, found " +
                     std::to_string(pagesSeen));
  if (!id.empty() && pagesSeenCrc != pagesCrc)
    return makeError(where + ": its PAGE frames are not the ones it was written with (checksum " +
                     hex(pagesSeenCrc) + ", recorded " + hex(pagesCrc) + ")");
  out.end = at;
  return out;
}

struct FooterRead {
  uint64_t headerOffset = 0;
  uint64_t initOffset = 0;
  std::vector<ChunkInfo> chunks;
  std::vector<SnapshotInfo> snapshots;
  TraceEnd end;
  TraceId traceId;
  uint64_t frameEnd = 0;  // offset just after the FOOT frame
};

Result<FooterRead> readFooter(const InputFile& f, uint64_t offset) {
  RawPayload raw;
  auto hr = f.readFrame(offset, kTagFoot, raw);
  if (!hr.ok()) return hr.error();
  FooterRead out;
  out.frameEnd = offset + kFrameHeaderBytes + hr->storedBytes;
  const std::string where = frameWhere(f, "footer", offset);
  Status parsed = readMessage<schema::Footer>(raw, where, [&](schema::Footer::Reader r) -> Status {
    out.headerOffset = r.getHeaderOffset();
    out.traceId = {r.getTraceIdLo(), r.getTraceIdHi()};
    out.initOffset = r.getInitOffset();
    auto cl = r.getChunks();
    // Each chunk takes at least a frame header in the file: bounds the index.
    if (cl.size() > f.size() / kFrameHeaderBytes)
      return (makeError(where + ": " + std::to_string(cl.size()) +
                        " chunks cannot fit in a file of " + std::to_string(f.size()) + " bytes"));
    out.chunks.reserve(cl.size());
    uint64_t prevEnd = kPreambleBytes;
    uint64_t prevStep = 0;
    for (unsigned i = 0; i < cl.size(); ++i) {
      auto c = cl[i];
      ChunkInfo ci{c.getOffset(),     c.getCompressedBytes(), c.getRawBytes(),
                   c.getEventCount(), c.getFirstStep(),       c.getLastStep()};
      const std::string what = where + ": index entry " + std::to_string(i) + " (chunk at byte " +
                               std::to_string(ci.offset) + ")";
      if (ci.offset < prevEnd || ci.offset > offset || ci.compressedBytes > offset - ci.offset ||
          ci.offset + kFrameHeaderBytes + ci.compressedBytes > offset)
        return (makeError(what + ": outside the file's event area or overlapping"));
      if (ci.eventCount == 0 || ci.firstStep > ci.lastStep || ci.firstStep < prevStep)
        return (makeError(what + ": bad event count or step range [" +
                          std::to_string(ci.firstStep) + ", " + std::to_string(ci.lastStep) + "]"));
      prevEnd = ci.offset + kFrameHeaderBytes + ci.compressedBytes;
      prevStep = ci.lastStep;
      out.chunks.push_back(ci);
    }
    auto sl = r.getSnapshots();
    if (sl.size() > f.size() / kFrameHeaderBytes)
      return (makeError(where + ": too many snapshots for the file size"));
    uint64_t prevSnap = 0;
    for (unsigned i = 0; i < sl.size(); ++i) {
      SnapshotInfo si{sl[i].getOffset(), sl[i].getStep()};
      if (si.offset >= offset || si.offset < kPreambleBytes || si.step < prevSnap)
        return (makeError(where + ": snapshot index entry " + std::to_string(i) +
                          " is out of order or outside the file"));
      prevSnap = si.step;
      out.snapshots.push_back(si);
    }
    if (!r.hasEnd()) return (makeError(where + ": the end of run is missing"));
    return fromCapnp(r.getEnd(), out.end, where);
  });
  if (!parsed.ok()) return parsed.error();
  if (out.headerOffset != kPreambleBytes || out.initOffset <= kPreambleBytes ||
      out.initOffset >= offset)
    return makeError(where + ": header/initial-state offsets " + std::to_string(out.headerOffset) +
                     "/" + std::to_string(out.initOffset) + " are impossible");
  return out;
}

// A 1.1 chunk must carry its trace's id and its index among the chunks: a
// chunk of another trace, a duplicated one or a missing one is refused.
Status checkChunkIdentity(const InputFile& f, uint64_t at, const ChunkIdentity& ci,
                          const TraceId& id, uint64_t index) {
  if (ci.trace != id)
    return f.errorAt(at, "CHNK frame: belongs to another trace (its id differs from the header's)");
  if (ci.sequence != index)
    return f.errorAt(at, "CHNK frame: sequence number " + std::to_string(ci.sequence) +
                             ", expected " + std::to_string(index) +
                             " (a chunk duplicated, missing or out of place)");
  return {};
}

// The footer's end of run against the events and the index. The recorder
// appends EndOfRun at the end step, after every event and snapshot, and
// `ttvm recover` ends a prefix at its last event or snapshot, so:
//  - the end may not lie before the last event or the last snapshot;
//  - when the last event is an EndOfRun, the end is that event's step;
//  - without one, the end is at most one step past the last event or
//    snapshot (the step that ended the run, which logged nothing: a triple
//    fault is a step of its own). A writer that runs further must say so
//    with an EndOfRun.
// A footer claiming 10^11 steps over events that end at step 328 would make
// a replay run for hours; it is refused here, naming the footer's offset and
// the chunk's (or snapshot's). The last chunk is decoded and a snapshot past
// it is read, so the bound is the frames', not what the index claims.
Status checkEndAgainstEvents(const InputFile& f, uint64_t footerAt, const FooterRead& foot) {
  const uint64_t steps = foot.end.steps;
  const std::string where = f.path() + ": byte " + std::to_string(footerAt) +
                            ": footer: the end of run at step " + std::to_string(steps);
  bool endOfRun = false;
  uint64_t reach = 0;
  std::string reachFrame;  // "chunk at byte N" or "snapshot at byte N"
  if (!foot.chunks.empty()) {
    const ChunkInfo& last = foot.chunks.back();
    RawPayload raw;
    auto hr = f.readFrame(last.offset, kTagChunk, raw);
    std::vector<TraceEvent> events;
    // A chunk that cannot be read here is the index's problem (the caller
    // scans instead); only a readable chunk that contradicts the footer is.
    if (!hr.ok() ||
        !EventChunkCodec::decode(
             raw.span(), f.path() + ": chunk at byte " + std::to_string(last.offset), events)
             .ok() ||
        events.empty())
      return {};
    endOfRun = events.back().kind == EventKind::kEndOfRun;
    reach = events.back().step;
    reachFrame = "chunk at byte " + std::to_string(last.offset);
    if (endOfRun && reach != steps)
      return makeError(where + " disagrees with the events, which end with EndOfRun at step " +
                       std::to_string(reach) + " (" + reachFrame + ")");
    if (steps < reach)
      return makeError(where + " lies before the last event, at step " + std::to_string(reach) +
                       " (" + reachFrame + ")");
  }
  if (!foot.snapshots.empty() && foot.snapshots.back().step > reach) {
    const SnapshotInfo& snap = foot.snapshots.back();
    if (steps < snap.step)
      return makeError(where + " lies before the last snapshot, at step " +
                       std::to_string(snap.step) + " (snapshot at byte " +
                       std::to_string(snap.offset) + ")");
    auto read = readMachineState(f, snap.offset, kTagSnap, /*keepPages=*/false, foot.traceId,
                                 foot.snapshots.size());
    if (!read.ok()) return {};  // the index's problem, as above
    reach = read->step;
    reachFrame = "snapshot at byte " + std::to_string(snap.offset);
  }
  if (!endOfRun && steps > reach + 1)
    return makeError(
        where +
        " lies past the recorded run: without an EndOfRun it may end at most "
        "one step after its last event or snapshot, at step " +
        std::to_string(reach) +
        (reachFrame.empty() ? std::string(" (no chunk, no snapshot)") : " (" + reachFrame + ")"));
  return {};
}

Result<TraceHeader> readHeader(const InputFile& f, uint64_t offset, uint64_t& end) {
  RawPayload raw;
  auto hr = f.readFrame(offset, kTagHead, raw);
  if (!hr.ok()) return hr.error();
  TraceHeader h;
  const std::string where = frameWhere(f, "header", offset);
  Status parsed = readMessage<schema::Header>(
      raw, where, [&](schema::Header::Reader r) -> Status { return fromCapnp(r, h, where); });
  if (!parsed.ok()) return parsed.error();
  // The version is the preamble's; a 1.1 header repeats its minor under a checksum.
  uint8_t pre[kPreambleBytes];
  TTVM_TRY(f.readExact(0, pre, sizeof pre, "the ttvm trace preamble"));
  const uint16_t minor = getU16(pre + 10);
  if (!h.traceId.empty() && h.formatMinor != minor)
    return f.errorAt(10, "preamble: minor version " + std::to_string(minor) +
                             " differs from the header's (" + std::to_string(h.formatMinor) + ")");
  h.formatMajor = getU16(pre + 8);
  h.formatMinor = minor;
  end = offset + kFrameHeaderBytes + hr->storedBytes;
  return h;
}

}  // namespace

TraceReader::TraceReader(TraceReader&& o) noexcept {
  *this = std::move(o);
}

TraceReader& TraceReader::operator=(TraceReader&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(o.path_);
    fd_ = o.fd_;
    o.fd_ = -1;
    fileBytes_ = o.fileBytes_;
    usableBytes_ = o.usableBytes_;
    initOffset_ = o.initOffset_;
    header_ = std::move(o.header_);
    chunks_ = std::move(o.chunks_);
    snapshots_ = std::move(o.snapshots_);
    end_ = std::move(o.end_);
    recovered_ = o.recovered_;
    recoveryNote_ = std::move(o.recoveryNote_);
    footerProblem_ = std::move(o.footerProblem_);
    eventsEnd_ = o.eventsEnd_;
  }
  return *this;
}

TraceReader::~TraceReader() {
  if (fd_ >= 0) ::close(fd_);
}

std::string TraceReader::newerFormatNote() const {
  if (header_.formatMinor <= kTraceFormatMinor) return "";
  return path_ + ": made by ttvm " + header_.ttvmVersion + ", format " +
         std::to_string(header_.formatMajor) + "." + std::to_string(header_.formatMinor) +
         "; this reader supports up to " + std::to_string(kTraceFormatMajor) + "." +
         std::to_string(kTraceFormatMinor) +
         ": it reads the trace but ignores what the newer format added";
}

Result<TraceReader> TraceReader::open(const std::string& path) {
  auto fr = openInputFile(path);
  if (!fr.ok()) return fr.error();
  TraceReader r;
  r.path_ = path;
  r.fd_ = fr->fd();
  r.fileBytes_ = fr->size();
  const InputFile& f = *fr;

  uint8_t pre[kPreambleBytes];
  TTVM_TRY(f.readExact(0, pre, sizeof pre, "the ttvm trace preamble"));
  if (std::memcmp(pre, kPreambleMagic, 8) != 0)
    return f.errorAt(0, "not a ttvm trace: expected the magic 89 54 54 56 4d 0d 0a 1a");
  const uint16_t major = getU16(pre + 8);
  const uint16_t minor = getU16(pre + 10);
  if (getU32(pre + 12) != 0)
    return f.errorAt(12, "preamble: reserved field must be 0, found " + hex(getU32(pre + 12)));
  if (major != kTraceFormatMajor) {
    // Say who made it where the header still reads (a new major may have
    // changed anything after the preamble, so this is a best effort).
    uint64_t headEnd = 0;
    auto h = readHeader(f, kPreambleBytes, headEnd);
    const std::string maker = h.ok() && !h->ttvmVersion.empty()
                                  ? "made by ttvm " + h->ttvmVersion
                                  : "made by another ttvm (its header does not read here)";
    return f.errorAt(8, maker + ", format " + std::to_string(major) + "." + std::to_string(minor) +
                            "; this reader supports formats " + std::to_string(kTraceFormatMajor) +
                            ".0 to " + std::to_string(kTraceFormatMajor) + "." +
                            std::to_string(kTraceFormatMinor) +
                            (major > kTraceFormatMajor ? ": open it with a newer ttvm" : ""));
  }

  // By the footer.
  std::string footerProblem;
  if (f.size() >= kPreambleBytes + 2 * kFrameHeaderBytes + kTrailerBytes) {
    uint8_t t[kTrailerBytes];
    const uint64_t tAt = f.size() - kTrailerBytes;
    Status s = f.readExact(tAt, t, sizeof t, "the trailer");
    if (!s.ok()) {
      footerProblem = s.error().message;
    } else if (std::memcmp(t + 16, kTrailerMagic, 8) != 0) {
      footerProblem = f.errorAt(tAt + 16, "no trailer (expected the magic \"TTVMEND\")").message;
    } else if (crc32c(0, t, 8) != getU32(t + 8)) {
      footerProblem = f.errorAt(tAt + 8, "trailer checksum mismatch").message;
    } else if (getU32(t + 12) != 0) {
      footerProblem = f.errorAt(tAt + 12, "trailer: reserved field must be 0").message;
    } else {
      const uint64_t footerAt = getU64(t);
      if (footerAt < kPreambleBytes || footerAt > tAt - kFrameHeaderBytes) {
        footerProblem = f.errorAt(tAt, "trailer points at byte " + std::to_string(footerAt) +
                                           ", outside the file")
                            .message;
      } else {
        auto foot = readFooter(f, footerAt);
        if (!foot.ok()) {
          footerProblem = foot.error().message;
        } else if (foot->frameEnd != tAt) {
          footerProblem =
              f.errorAt(footerAt, "the footer frame ends at byte " +
                                      std::to_string(foot->frameEnd) +
                                      ", expected the trailer at byte " + std::to_string(tAt))
                  .message;
        } else {
          uint64_t headEnd = 0;
          auto h = readHeader(f, kPreambleBytes, headEnd);
          if (!h.ok()) return h.error();  // the header is needed either way
          if (foot->initOffset != headEnd) {
            footerProblem = f.errorAt(footerAt, "footer says the initial state is at byte " +
                                                    std::to_string(foot->initOffset) +
                                                    ", expected " + std::to_string(headEnd))
                                .message;
          } else if (foot->traceId != h->traceId) {
            footerProblem = f.errorAt(footerAt,
                                      "the footer belongs to another trace (its id "
                                      "differs from the header's)")
                                .message;
          } else if (Status c = checkEndAgainstEvents(f, footerAt, *foot); !c.ok()) {
            return c.error();  // a footer that lies about the events: refused
          } else {
            r.header_ = std::move(*h);
            r.initOffset_ = foot->initOffset;
            r.chunks_ = std::move(foot->chunks);
            r.snapshots_ = std::move(foot->snapshots);
            r.end_ = std::move(foot->end);
            r.usableBytes_ = f.size();
            r.eventsEnd_ = footerAt;
            return r;
          }
        }
      }
    }
  } else {
    footerProblem = "the file is too short to have a footer";
  }

  // By scanning.
  r.recovered_ = true;
  uint64_t at = 0;
  auto h = readHeader(f, kPreambleBytes, at);
  if (!h.ok()) return h.error();
  r.header_ = std::move(*h);
  r.initOffset_ = at;
  const TraceId id = r.header_.traceId;
  auto init = readMachineState(f, at, kTagInit, /*keepPages=*/false, id, 0);
  if (!init.ok()) return init.error();
  at = init->end;
  r.footerProblem_ = std::move(footerProblem);
  r.scanFrom(f, at);
  return r;
}

void TraceReader::scanFrom(const InputFile& f, uint64_t at) {
  std::string stop;
  uint64_t prevStep = chunks_.empty() ? 0 : chunks_.back().lastStep;
  if (!snapshots_.empty()) prevStep = std::max(prevStep, snapshots_.back().step);
  const TraceId id = header_.traceId;
  RawPayload raw;
  while (true) {
    if (at == f.size()) {
      stop = "the end of the file";
      break;
    }
    auto fh = f.readFrameHeader(at);
    if (!fh.ok()) {
      stop = fh.error().message;
      break;
    }
    if (fh->tag == kTagChunk) {
      auto full = f.readFrame(at, kTagChunk, raw);
      if (!full.ok()) {
        stop = full.error().message;
        break;
      }
      if (!id.empty()) {
        auto ci = EventChunkCodec::identity(raw.span(), frameWhere(f, "chunk", at));
        if (!ci.ok()) {
          stop = ci.error().message;
          break;
        }
        if (Status c = checkChunkIdentity(f, at, *ci, id, chunks_.size()); !c.ok()) {
          stop = c.error().message;
          break;
        }
      }
      if (fh->count == 0 || fh->firstStep > fh->lastStep || fh->firstStep < prevStep) {
        stop = f.errorAt(at, "CHNK frame: bad event count or step range").message;
        break;
      }
      chunks_.push_back(
          {at, fh->storedBytes, fh->rawBytes, fh->count, fh->firstStep, fh->lastStep});
      prevStep = fh->lastStep;
      at += kFrameHeaderBytes + fh->storedBytes;
    } else if (fh->tag == kTagSnap) {
      auto snap = readMachineState(f, at, kTagSnap, /*keepPages=*/false, id, snapshots_.size() + 1);
      if (!snap.ok()) {
        stop = snap.error().message;
        break;
      }
      if (snap->step < prevStep) {
        stop = f.errorAt(at, "snapshot step goes backward").message;
        break;
      }
      snapshots_.push_back({at, snap->step});
      prevStep = snap->step;
      at = snap->end;
    } else if (fh->tag == kTagFoot) {
      auto foot = readFooter(f, at);
      if (!foot.ok()) {
        stop = foot.error().message;
        break;
      }
      Status agrees = checkEndAgainstEvents(f, at, *foot);
      if (foot->chunks == chunks_ && foot->snapshots == snapshots_ && foot->traceId == id &&
          agrees.ok())
        end_ = foot->end;
      stop = "a footer at byte " + std::to_string(at) +
             (end_           ? " (its end of run is used)"
              : !agrees.ok() ? " that disagrees with the events (" + agrees.error().message + ")"
                             : " whose index does not match the scan");
      eventsEnd_ = at;
      break;
    } else {
      stop =
          f.errorAt(at, "unexpected " + tagName(fh->tag) + " frame between event chunks").message;
      break;
    }
  }
  usableBytes_ = at;
  if (!end_) eventsEnd_ = at;
  uint64_t events = 0;
  for (const ChunkInfo& c : chunks_) events += c.eventCount;
  recoveryNote_ = "footer unusable (" + footerProblem_ + "); scanned " +
                  std::to_string(chunks_.size()) + " chunks (" + std::to_string(events) +
                  " events) and " + std::to_string(snapshots_.size()) +
                  " snapshots, stopped at byte " + std::to_string(at) + ": " + stop;
}

Result<bool> TraceReader::refresh() {
  if (!recovered_ || end_) return false;
  struct stat st;
  if (::fstat(fd_, &st) != 0)
    return makeError(path_ + ": cannot stat while following: " + std::strerror(errno));
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < fileBytes_)
    return makeError(path_ + ": the file shrank from " + std::to_string(fileBytes_) + " to " +
                     std::to_string(size) + " bytes while following it");
  if (size == usableBytes_) return false;
  fileBytes_ = size;
  const size_t chunks = chunks_.size(), snapshots = snapshots_.size();
  scanFrom(InputFile(fd_, path_, fileBytes_), usableBytes_);
  return chunks_.size() != chunks || snapshots_.size() != snapshots || end_.has_value();
}

Result<InitialState> TraceReader::initialState() const {
  InputFile f(fd_, path_, fileBytes_);
  auto m = readMachineState(f, initOffset_, kTagInit, true, header_.traceId, 0);
  if (!m.ok()) return m.error();
  InitialState s;
  s.cpu = m->cpu;
  s.ram = std::move(m->ram);
  s.deviceState = std::move(m->deviceState);
  return s;
}

Result<Snapshot> TraceReader::loadSnapshot(size_t i) const {
  if (i >= snapshots_.size())
    return makeError(path_ + ": snapshot " + std::to_string(i) + " does not exist (" +
                     std::to_string(snapshots_.size()) + " snapshots)");
  InputFile f(fd_, path_, fileBytes_);
  auto m = readMachineState(f, snapshots_[i].offset, kTagSnap, true, header_.traceId, i + 1);
  if (!m.ok()) return m.error();
  if (m->step != snapshots_[i].step)
    return f.errorAt(snapshots_[i].offset, "snapshot step " + std::to_string(m->step) +
                                               " differs from the index (" +
                                               std::to_string(snapshots_[i].step) + ")");
  Snapshot s;
  s.step = m->step;
  s.cpu = m->cpu;
  s.ram = std::move(m->ram);
  s.deviceState = std::move(m->deviceState);
  return s;
}

std::optional<size_t> TraceReader::snapshotBefore(uint64_t step) const {
  auto it = std::upper_bound(snapshots_.begin(), snapshots_.end(), step,
                             [](uint64_t s, const SnapshotInfo& si) { return s < si.step; });
  if (it == snapshots_.begin()) return std::nullopt;
  return static_cast<size_t>(it - snapshots_.begin() - 1);
}

std::optional<size_t> TraceReader::chunkForStep(uint64_t step) const {
  auto it = std::lower_bound(chunks_.begin(), chunks_.end(), step,
                             [](const ChunkInfo& c, uint64_t s) { return c.lastStep < s; });
  if (it == chunks_.end()) return std::nullopt;
  return static_cast<size_t>(it - chunks_.begin());
}

Result<std::vector<TraceEvent>> TraceReader::readChunk(size_t i) const {
  std::vector<TraceEvent> out;
  TTVM_TRY(readChunkInto(i, out));
  return out;
}

Status TraceReader::readChunkInto(size_t i, std::vector<TraceEvent>& out,
                                  std::vector<uint8_t>* sectors) const {
  if (i >= chunks_.size())
    return makeError(path_ + ": chunk " + std::to_string(i) + " does not exist (" +
                     std::to_string(chunks_.size()) + " chunks)");
  const ChunkInfo& c = chunks_[i];
  InputFile f(fd_, path_, fileBytes_);
  thread_local RawPayload raw;
  auto hr = f.readFrame(c.offset, kTagChunk, raw);
  if (!hr.ok()) return hr.error();
  if (hr->storedBytes != c.compressedBytes || hr->rawBytes != c.rawBytes ||
      hr->count != c.eventCount || hr->firstStep != c.firstStep || hr->lastStep != c.lastStep)
    return f.errorAt(c.offset, "chunk " + std::to_string(i) +
                                   ": the frame header disagrees with the chunk index");
  const std::string where = path_ + ": chunk " + std::to_string(i) + " (CHNK frame at byte " +
                            std::to_string(c.offset) + ")";
  ChunkIdentity ci;
  TTVM_TRY(EventChunkCodec::decode(raw.span(), where, out, &ci, sectors));
  if (!header_.traceId.empty()) TTVM_TRY(checkChunkIdentity(f, c.offset, ci, header_.traceId, i));
  if (out.size() != c.eventCount || out.front().step != c.firstStep ||
      out.back().step != c.lastStep)
    return makeError(where + ": holds " + std::to_string(out.size()) + " events in steps [" +
                     std::to_string(out.front().step) + ", " + std::to_string(out.back().step) +
                     "], the frame says " + std::to_string(c.eventCount) + " in [" +
                     std::to_string(c.firstStep) + ", " + std::to_string(c.lastStep) + "]");
  return {};
}

uint64_t TraceReader::compressedEventBytes() const {
  uint64_t n = 0;
  for (const ChunkInfo& c : chunks_) n += c.compressedBytes;
  return n;
}
uint64_t TraceReader::rawEventBytes() const {
  uint64_t n = 0;
  for (const ChunkInfo& c : chunks_) n += c.rawBytes;
  return n;
}
uint64_t TraceReader::eventCount() const {
  uint64_t n = 0;
  for (const ChunkInfo& c : chunks_) n += c.eventCount;
  return n;
}

bool EventCursor::refill() {
  if (!status_.ok() || chunk_ >= reader_->chunkCount()) return false;
  Status s = reader_->readChunkInto(chunk_, events_);
  pos_ = 0;
  if (!s.ok()) {
    status_ = s;
    events_.clear();
    return false;
  }
  ++chunk_;
  return !events_.empty();
}

Status EventCursor::seek(uint64_t step) {
  status_ = Status{};
  events_.clear();
  pos_ = 0;
  auto c = reader_->chunkForStep(step);
  if (!c) {
    chunk_ = reader_->chunkCount();
    return {};
  }
  chunk_ = *c;
  if (!refill()) return status_;
  auto it = std::lower_bound(events_.begin(), events_.end(), step,
                             [](const TraceEvent& e, uint64_t s) { return e.step < s; });
  pos_ = static_cast<size_t>(it - events_.begin());
  return {};
}

Status TraceReader::checkAllFrames() const {
  InputFile f(fd_, path_, fileBytes_);
  RawPayload raw;
  uint64_t headEnd = 0;
  auto h = readHeader(f, kPreambleBytes, headEnd);
  if (!h.ok()) return h.error();
  if (headEnd != initOffset_)
    return f.errorAt(headEnd, "expected the initial state, which the index puts at byte " +
                                  std::to_string(initOffset_));
  auto init = readMachineState(f, initOffset_, kTagInit, /*keepPages=*/false, header_.traceId, 0);
  if (!init.ok()) return init.error();
  uint64_t at = init->end;
  size_t chunk = 0, snapshot = 0;
  while (at < eventsEnd_) {
    auto fh = f.readFrameHeader(at);
    if (!fh.ok()) return fh.error();
    if (fh->tag == kTagChunk) {
      if (chunk >= chunks_.size() || chunks_[chunk].offset != at)
        return f.errorAt(at, "a CHNK frame the chunk index does not list here");
      auto full = f.readFrame(at, kTagChunk, raw);
      if (!full.ok()) return full.error();
      if (!header_.traceId.empty()) {
        auto ci = EventChunkCodec::identity(raw.span(), frameWhere(f, "chunk", at));
        if (!ci.ok()) return ci.error();
        TTVM_TRY(checkChunkIdentity(f, at, *ci, header_.traceId, chunk));
      }
      ++chunk;
      at += kFrameHeaderBytes + fh->storedBytes;
    } else if (fh->tag == kTagSnap) {
      if (snapshot >= snapshots_.size() || snapshots_[snapshot].offset != at)
        return f.errorAt(at, "a SNAP frame the snapshot index does not list here");
      auto snap =
          readMachineState(f, at, kTagSnap, /*keepPages=*/false, header_.traceId, snapshot + 1);
      if (!snap.ok()) return snap.error();
      if (snap->step != snapshots_[snapshot].step)
        return f.errorAt(at, "snapshot step " + std::to_string(snap->step) +
                                 " differs from the index (" +
                                 std::to_string(snapshots_[snapshot].step) + ")");
      ++snapshot;
      at = snap->end;
    } else {
      return f.errorAt(at, "unexpected " + tagName(fh->tag) + " frame between event chunks");
    }
  }
  if (at != eventsEnd_)
    return f.errorAt(at,
                     "the last frame runs past the footer at byte " + std::to_string(eventsEnd_));
  if (chunk != chunks_.size())
    return f.errorAt(chunks_[chunk].offset, "the chunk index lists a chunk the frames skip");
  if (snapshot != snapshots_.size())
    return f.errorAt(snapshots_[snapshot].offset,
                     "the snapshot index lists a snapshot the frames skip");
  return {};
}

Status TraceReader::recover(const std::string& in, const std::string& out,
                            const std::optional<TraceEnd>& replayedEnd) {
  {
    struct stat a, b;
    if (in == out || (::stat(in.c_str(), &a) == 0 && ::stat(out.c_str(), &b) == 0 &&
                      a.st_dev == b.st_dev && a.st_ino == b.st_ino))
      return makeError("recover: the output must be a different file than the input (" + in + ")");
  }
  auto r = open(in);
  if (!r.ok()) return r.error();
  const uint64_t copyBytes = r->recovered() ? r->eventsEnd_ : r->fileBytes();
  std::vector<uint8_t> tail;
  if (r->recovered()) {
    TraceEnd end;
    if (r->end()) {
      end = *r->end();
    } else if (replayedEnd) {
      end = *replayedEnd;
    } else {
      end.reason = EndReason::kInterrupted;
      end.steps = r->chunks().empty() ? 0 : r->chunks().back().lastStep;
      if (!r->snapshots().empty()) end.steps = std::max(end.steps, r->snapshots().back().step);
      end.message = "recovered by 'ttvm recover': the recording stopped without a footer (" +
                    r->recoveryNote() + "); the final CPU state is unknown";
    }
    appendFooterFrame(kPreambleBytes, r->initOffset_, r->chunks(), r->snapshots(), end,
                      r->header().traceId, tail);
    const size_t at = tail.size();
    tail.resize(at + kTrailerBytes);
    encodeTrailer(copyBytes, tail.data() + at);
  }
  int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return makeError(out + ": cannot create: " + std::strerror(errno));
  std::vector<uint8_t> buf(1 << 20);
  Status s;
  for (uint64_t at = 0; at < copyBytes && s.ok();) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), copyBytes - at));
    InputFile f(r->fd_, in, r->fileBytes());
    s = f.readExact(at, buf.data(), n, "trace bytes");
    if (s.ok()) s = writeAll(fd, out, std::span<const uint8_t>(buf.data(), n));
    at += n;
  }
  if (s.ok()) s = writeAll(fd, out, tail);
  if (s.ok() && ::fsync(fd) != 0) s = makeError(out + ": fsync failed: " + std::strerror(errno));
  ::close(fd);
  if (!s.ok()) return s;
  // Check the result opens by its footer.
  auto check = open(out);
  if (!check.ok())
    return makeError(out + ": the recovered trace does not open: " + check.error().message);
  if (check->recovered())
    return makeError(out + ": the recovered trace still needs scanning: " + check->recoveryNote());
  return {};
}

}  // namespace ttvm
