#include "ttvm/ui/replay_engine.h"

#include <QByteArray>
#include <QRegularExpression>
#include <algorithm>
#include <array>
#include <exception>
#include <optional>
#include <string>

#include "ttvm/replayer/backtrace.h"
#include "ttvm/replayer/queries.h"
#include "ttvm/replayer/source_step.h"
#include "ttvm/ui/bookmark_file.h"

namespace ttvm::ui {

namespace {

QString hex(uint64_t v) {
  return QStringLiteral("0x") + QString::number(v, 16);
}

// The serial console's ports (queries.h: EventQuery::Kind::kSerialOutput).
bool isSerialPort(uint64_t port) {
  return port == 0x3F8 || port == 0xE9;
}

// Most serial text kept in a snapshot (the tail); bytes.
constexpr size_t kMaxSerialBytes = 256 * 1024;

// Adds what `e` means to the console and the timeline's marks: a byte the
// guest wrote to a serial port, or an interrupt taken.
void noteEvent(const TraceEvent& e, std::vector<std::pair<uint64_t, char>>& serial,
               TimelineMarks& marks) {
  if (e.kind == EventKind::kPortOut && isSerialPort(e.address)) {
    serial.emplace_back(e.step, static_cast<char>(e.value & 0xFF));
    marks.serial.push_back(e.step);
  } else if (e.kind == EventKind::kInterrupt || e.kind == EventKind::kNmi) {
    marks.interrupts.push_back(e.step);
  }
}

}  // namespace

ReplayEngine::ReplayEngine(QObject* parent) : QObject(parent), followTimer_(new QTimer(this)) {
  connect(followTimer_, &QTimer::timeout, this, &ReplayEngine::followTick);
}
ReplayEngine::~ReplayEngine() = default;

void ReplayEngine::run(const QString& what, const std::function<QString(const Control&)>& op) {
  emit busy(what);
  Control control;
  control.cancel = &cancel_;
  control.progress = [this](uint64_t done, uint64_t total) { emit progress(done, total); };
  try {
    if (timeline_ == nullptr && what != QStringLiteral("open")) {
      emit failed(QStringLiteral("%1: no trace is open").arg(what));
      return;
    }
    const bool hadTrace = timeline_ != nullptr;
    const uint64_t origin = hadTrace ? timeline_->now() : 0;
    QString text = op(control);
    if (text.isNull()) return;  // the operation failed and said so
    // Cancelled: back where the move started (the seek itself is bounded by
    // the checkpoints, and runs without the cancel flag).
    if (lastKind_ == StopKind::kCancelled && hadTrace && what != QStringLiteral("open") &&
        timeline_->now() != origin) {
      timeline_->seek(origin);
      text =
          QStringLiteral("%1 cancelled; back at step %2, where it started").arg(what).arg(origin);
    }
    lastStopText_ = text;
    // A followed trace's new steps replayed by this operation: their output
    // and marks join the console and the timeline.
    if (collectAccesses()) {
      emit grew(timeline_->beginStep(), timeline_->endStep(), marksCopy(),
                reader_->end().has_value());
      emit eventsReady(replayPassRows());
    }
    emit stopped(snapshot(lastKind_, text));
  } catch (const std::exception& e) {
    emit failed(QStringLiteral("%1 failed: %2").arg(what, QString::fromUtf8(e.what())));
  } catch (...) {
    emit failed(QStringLiteral("%1 failed: unknown error").arg(what));
  }
}

void ReplayEngine::open(const QString& path, const QStringList& symbolFiles, CpuEngine engine) {
  run(QStringLiteral("open"), [&](const Control& control) -> QString {
    // The trace open now stays until the new one is ready: a file that
    // fails to open leaves the window where it was.
    auto reader = TraceReader::open(path.toStdString());
    if (!reader.ok()) {
      emit failed(QStringLiteral("cannot open %1: %2")
                      .arg(path, QString::fromStdString(reader.error().message)));
      return {};
    }
    auto owned = std::make_unique<TraceReader>(std::move(*reader));
    // The console text: every byte the guest wrote to a serial port, with
    // its step, and the steps that took interrupts. An old-mode trace holds
    // them as events (one pass; they are in step order); a whole-machine
    // trace does not, and the replay to the end below reports them as its
    // devices see them.
    TimelineMarks marks;
    std::vector<std::pair<uint64_t, char>> serial;
    auto note = [&serial, &marks](const TraceEvent& e) { noteEvent(e, serial, marks); };
    // Progress while reading them: chunks read of the chunk index.
    EventCursor cur = owned->cursor();
    TraceEvent e;
    const uint64_t chunks = owned->chunkCount();
    size_t lastChunk = 0;
    while (cur.next(e)) {
      note(e);
      if (cur.chunkIndex() != lastChunk) {
        lastChunk = cur.chunkIndex();
        emit progress(lastChunk, chunks);
      }
    }
    if (!cur.status().ok()) {
      emit failed(
          QStringLiteral("%1: %2").arg(path, QString::fromStdString(cur.status().error().message)));
      return {};
    }
    TimelineOptions options;
    options.engine = engine;
    auto timeline = Timeline::open(*owned, options);
    if (!timeline.ok()) {
      emit failed(QStringLiteral("cannot replay %1: %2")
                      .arg(path, QString::fromStdString(timeline.error().message)));
      return {};
    }
    (*timeline)->setEngineFallbackHandler([this](const EngineFallback& f) {
      emit engineFellBack(QString::fromStdString(f.describe()));
    });
    for (const QString& f : symbolFiles) {
      Status st = (*timeline)->addSymbolFile(f.toStdString());
      if (!st.ok()) {
        emit failed(QStringLiteral("cannot open %1: symbols: %2")
                        .arg(path, QString::fromStdString(st.error().message)));
        return {};
      }
    }
    timeline_.reset();  // before the reader it reads from
    reader_ = std::move(owned);
    timeline_ = std::move(*timeline);
    breakpoints_.clear();
    watchpoints_.clear();
    symbols_ = std::make_shared<const GuestSymbols>(timeline_->symbols());
    // A whole-machine trace's console and marks are known only once the
    // replay has been to the end: the timeline indexes its accesses there.
    const bool whole = timeline_->session().runsWholeMachine();
    // Without a footer the recorder may still be writing it: followed
    // (a whole-machine emulator trace; a KVM trace's steps are assigned
    // once, when it opens).
    const bool follow = !reader_->end() && whole && reader_->header().backend == Backend::kEmulator;
    std::optional<StopReason> r;
    if (whole) {
      // A prefix's last step may have events in the chunk not flushed yet.
      r = follow
              ? timeline_->seek(std::max(timeline_->beginStep(), timeline_->endStep() - 1), control)
              : timeline_->runToEnd(control);
      for (const TraceEvent& ev : timeline_->replayedAccesses()) note(ev);
    }
    accessesSeen_ = timeline_->replayedAccesses().size();
    serial_ = std::move(serial);
    marks_ = std::move(marks);
    emit opened(path, traceIdentity(reader_->header()), timeline_->beginStep(),
                timeline_->endStep(), symbols_, marksCopy());
    // The Events dock's rows: the trace's own events, read lazily through a
    // reader of its own; a whole-machine trace's I/O, interrupts and
    // exceptions are the replay's (the index its pass to the end built).
    if (whole) {
      emit eventsReady(replayPassRows());
    } else if (auto rows = TraceEventRows::open(path.toStdString()); rows.ok()) {
      emit eventsReady(std::move(*rows));
    }
    emit busy(QStringLiteral("replaying to the end"));
    if (!whole) r = timeline_->runToEnd(control);
    // The memory view opens at the faulting address (CR2 of the last page
    // fault) when it is mapped, else at the stack.
    const CpuState& cpu = timeline_->registers();
    uint8_t probe = 0;
    const bool fault =
        cpu.cr2 != 0 && timeline_->readLinear(cpu.cr2, std::span<uint8_t>(&probe, 1));
    memoryAddress_ = (fault ? cpu.cr2 : cpu.reg(Gpr::kRsp)) & ~uint64_t{0xF};
    const QString text = describeStop(*r);
    setFollowing(follow && r->kind != StopKind::kDivergence,
                 follow ? QStringLiteral("no footer yet: following the recording") : QString());
    return follow && r->kind != StopKind::kDivergence ? followText() : text;
  });
}

void ReplayEngine::setFollowing(bool on, const QString& why) {
  const bool was = following_;
  following_ = on;
  if (on)
    followTimer_->start(kFollowPollMs);
  else
    followTimer_->stop();
  if (on != was || !why.isEmpty()) emit followingChanged(on, why);
}

QString ReplayEngine::followText() const {
  return QStringLiteral("following the recording: step %1 of %2 so far (%3 chunks)")
      .arg(timeline_->now())
      .arg(timeline_->endStep())
      .arg(reader_->chunkCount());
}

void ReplayEngine::followTick() {
  if (!following_ || timeline_ == nullptr) return;
  try {
    const Result<bool> more = reader_->refresh();
    if (!more.ok()) {
      setFollowing(false, QString::fromStdString(more.error().message));
      return;
    }
    if (!*more) return;
    // At the live end (the user has not moved back): move on with it.
    const bool atEdge = timeline_->now() + 1 >= timeline_->endStep();
    timeline_->extendEnd();
    const bool ended = reader_->end().has_value();
    QString text;
    if (atEdge) {
      // Bounded by what the recorder flushed since the last poll; not
      // cancellable (Cancel is for the user's operations).
      const Control control;
      const StopReason r =
          ended ? timeline_->runToEnd(control)
                : timeline_->seek(std::max(timeline_->now(), timeline_->endStep() - 1), control);
      text = describeStop(r);
      if (r.kind == StopKind::kDivergence) setFollowing(false, text);
      if (following_ && !ended) text = followText();
    }
    collectAccesses();
    emit grew(timeline_->beginStep(), timeline_->endStep(), marksCopy(), ended);
    emit eventsReady(replayPassRows());
    if (atEdge) {
      lastStopText_ = text;
      emit advanced(snapshot(lastKind_, text));
    }
    if (ended)
      setFollowing(false,
                   QStringLiteral("the recording ended at step %1").arg(reader_->end()->steps));
  } catch (const std::exception& e) {
    setFollowing(false, QStringLiteral("following failed: %1").arg(QString::fromUtf8(e.what())));
  }
}

EventRowsPtr ReplayEngine::replayPassRows() const {
  return VectorEventRows::merge(timeline_->replayedAccesses(), timeline_->replayedExceptions());
}

bool ReplayEngine::collectAccesses() {
  if (timeline_ == nullptr) return false;
  const std::vector<TraceEvent>& acc = timeline_->replayedAccesses();
  if (accessesSeen_ >= acc.size()) return false;
  for (size_t i = accessesSeen_; i < acc.size(); ++i) noteEvent(acc[i], serial_, marks_);
  accessesSeen_ = acc.size();
  return true;
}

void ReplayEngine::seek(uint64_t step) {
  run(QStringLiteral("seek"),
      [&](const Control& c) { return describeStop(timeline_->seek(step, c)); });
}

void ReplayEngine::stepForward(uint64_t n) {
  run(QStringLiteral("step"),
      [&](const Control& c) { return describeStop(timeline_->step(n, c)); });
}

void ReplayEngine::stepBack(uint64_t n) {
  run(QStringLiteral("step back"),
      [&](const Control& c) { return describeStop(timeline_->stepBack(n, c)); });
}

void ReplayEngine::stepLine(bool into) {
  run(into ? QStringLiteral("step into") : QStringLiteral("step over"), [&](const Control& c) {
    if (!timeline_->symbols().sourceLine(timeline_->registers().rip))
      return describeStop(timeline_->step(1, c));
    return describeStop(ttvm::stepLine(*timeline_, into, c));
  });
}

void ReplayEngine::stepBackLine(bool into) {
  run(into ? QStringLiteral("step back into") : QStringLiteral("step back over"),
      [&](const Control& c) {
        if (!timeline_->symbols().sourceLine(timeline_->registers().rip))
          return describeStop(timeline_->stepBack(1, c));
        return describeStop(ttvm::stepBackLine(*timeline_, into, c));
      });
}

void ReplayEngine::stepOut(bool forward) {
  run(forward ? QStringLiteral("step out") : QStringLiteral("step out backward"),
      [&](const Control& c) -> QString {
        std::string why;
        if (forward) {
          const QString text = describeStop(ttvm::stepOut(*timeline_, c, &why));
          return why.empty() ? text
                             : QStringLiteral("%1 (%2)").arg(text, QString::fromStdString(why));
        }
        // Back to the call that entered this function: the instruction
        // before frame 1's return address, executed with RSP above now.
        const Backtrace bt = unwindStack(*timeline_);
        auto call = bt.frames.size() >= 2 ? callBefore(bt.frames[1].pc) : std::nullopt;
        if (!call) {
          lastKind_ = StopKind::kStepDone;
          return QStringLiteral("no call to return through here (%1)")
              .arg(QString::fromStdString(bt.end));
        }
        return describeStop(ttvm::runToFrame(
            *timeline_, *call, timeline_->registers().reg(Gpr::kRsp), false, true, c));
      });
}

void ReplayEngine::loadSymbols(const QString& path) {
  run(QStringLiteral("load symbols"), [&](const Control&) -> QString {
    Status st = timeline_->addSymbolFile(path.toStdString());
    if (!st.ok()) {
      emit failed(QStringLiteral("cannot load symbols: %1")
                      .arg(QString::fromStdString(st.error().message)));
      return {};
    }
    symbols_ = std::make_shared<const GuestSymbols>(timeline_->symbols());
    emit symbolsChanged(symbols_);
    return QStringLiteral("symbols loaded from %1").arg(path);
  });
}

std::optional<uint64_t> ReplayEngine::callBefore(uint64_t returnAddress) const {
  // x86 cannot be decoded backward: try each length a call can have and
  // keep the one that decodes as a call ending exactly at the address.
  for (unsigned len : {5u, 2u, 3u, 6u, 7u, 4u}) {
    if (returnAddress < len) continue;
    std::array<uint8_t, 15> buf{};
    if (!timeline_->readLinear(returnAddress - len, std::span<uint8_t>(buf.data(), len))) continue;
    const Disassembly d = disassemble(std::span<const uint8_t>(buf.data(), len),
                                      cpuMode(timeline_->registers()), returnAddress - len);
    if (d.length == len && d.text.starts_with("call")) return returnAddress - len;
  }
  return std::nullopt;
}

void ReplayEngine::continueForward() {
  run(QStringLiteral("continue"),
      [&](const Control& c) { return describeStop(timeline_->continueForward(c)); });
}

void ReplayEngine::reverseContinue() {
  run(QStringLiteral("reverse continue"),
      [&](const Control& c) { return describeStop(timeline_->reverseContinue(c)); });
}

void ReplayEngine::lastWrite(uint64_t address, uint64_t length) {
  run(QStringLiteral("last write"), [&](const Control& c) -> QString {
    const uint64_t from = timeline_->now();
    const QString range = QStringLiteral("[%1, %2)").arg(hex(address), hex(address + length));
    auto hit = timeline_->lastWrite(address, length, false, true, c);
    if (!hit.ok()) {
      lastKind_ = StopKind::kCancelled;
      return QStringLiteral("last write to %1: %2")
          .arg(range, QString::fromStdString(hit.error().message));
    }
    lastKind_ = StopKind::kStepDone;
    if (!hit->has_value())
      return QStringLiteral("no write to %1 before step %2").arg(range).arg(from);
    const QueryHit& h = **hit;
    return QStringLiteral("last write to %1 before step %2: step %3, %4 bytes at %5")
        .arg(range)
        .arg(from)
        .arg(h.step)
        .arg(h.size)
        .arg(hex(h.address));
  });
}

void ReplayEngine::registerLastChange(const QString& name) {
  run(QStringLiteral("register last change"), [&](const Control& c) -> QString {
    auto reg = registerByName(name.toStdString());
    lastKind_ = StopKind::kStepDone;
    if (!reg) return QStringLiteral("no register called '%1'").arg(name);
    const uint64_t from = timeline_->now();
    auto hit = timeline_->registerLastChange(*reg, true, c);
    if (!hit.ok()) {
      lastKind_ = StopKind::kCancelled;
      return QStringLiteral("last change of %1: %2")
          .arg(name, QString::fromStdString(hit.error().message));
    }
    if (!hit->has_value())
      return QStringLiteral("%1 did not change before step %2").arg(name).arg(from);
    return QStringLiteral("%1 last changed before step %2: step %3, %4 -> %5")
        .arg(name)
        .arg(from)
        .arg((**hit).step)
        .arg(hex((**hit).oldValue), hex((**hit).newValue));
  });
}

void ReplayEngine::serialOutput(bool forward) {
  run(forward ? QStringLiteral("next output") : QStringLiteral("previous output"),
      [&](const Control& c) -> QString {
        EventQuery q;
        q.kind = EventQuery::Kind::kSerialOutput;
        const uint64_t from = timeline_->now();
        auto hit =
            forward ? timeline_->nextEvent(q, true, c) : timeline_->previousEvent(q, true, c);
        lastKind_ = StopKind::kStepDone;
        if (!hit.ok()) {
          lastKind_ = StopKind::kCancelled;
          return QStringLiteral("serial output search: %1")
              .arg(QString::fromStdString(hit.error().message));
        }
        if (!hit->has_value())
          return QStringLiteral("no serial output %1 step %2")
              .arg(forward ? QStringLiteral("after") : QStringLiteral("before"))
              .arg(from);
        const QueryHit& h = **hit;
        const int ch = h.event ? static_cast<int>(h.event->value & 0xFF) : -1;
        return QStringLiteral("serial output at step %1: %2")
            .arg(h.step)
            .arg(ch >= 0x20 && ch < 0x7F ? QStringLiteral("'%1'").arg(QChar(ch))
                                         : QStringLiteral("byte %1").arg(hex(uint64_t(ch & 0xFF))));
      });
}

void ReplayEngine::toggleBreakpoint(uint64_t address) {
  run(QStringLiteral("breakpoint"), [&](const Control&) -> QString {
    auto it = breakpoints_.find(address);
    if (it != breakpoints_.end()) {
      timeline_->removeBreakpoint(it->second);
      breakpoints_.erase(it);
      return QStringLiteral("breakpoint at %1 removed").arg(hex(address));
    }
    breakpoints_[address] = timeline_->addBreakpoint(address, false);
    return QStringLiteral("breakpoint at %1 set").arg(hex(address));
  });
}

void ReplayEngine::toggleWatchpoint(uint64_t address, uint64_t length) {
  run(QStringLiteral("watchpoint"), [&](const Control&) -> QString {
    const QString range = QStringLiteral("[%1, %2)").arg(hex(address), hex(address + length));
    auto it = watchpoints_.find({address, length});
    if (it != watchpoints_.end()) {
      timeline_->removeWatchpoint(it->second);
      watchpoints_.erase(it);
      return QStringLiteral("write watchpoint on %1 removed").arg(range);
    }
    watchpoints_[{address, length}] =
        timeline_->addWatchpoint(address, length, WatchKind::kWrite, false);
    return QStringLiteral("write watchpoint on %1 set").arg(range);
  });
}

void ReplayEngine::setMemoryAddress(uint64_t address) {
  run(QStringLiteral("memory"), [&](const Control&) {
    memoryAddress_ = address;
    return lastStopText_;
  });
}

QString ReplayEngine::symbolAt(uint64_t address) const {
  auto s = symbols_ ? symbols_->describe(address) : std::nullopt;
  return s ? QString::fromStdString(*s) : QString();
}

QString ReplayEngine::describeStop(const StopReason& r) {
  lastKind_ = r.kind;
  switch (r.kind) {
    case StopKind::kStepDone: return QStringLiteral("at step %1").arg(r.step);
    case StopKind::kBreakpoint: {
      uint64_t addr = 0;
      for (const auto& [a, id] : breakpoints_)
        if (id == r.breakpointId) addr = a;
      return QStringLiteral("breakpoint at %1 (%2) hit at step %3")
          .arg(hex(addr), symbolAt(addr))
          .arg(r.step);
    }
    case StopKind::kWatchpoint:
      return QStringLiteral("watchpoint: %1 of %2 bytes at %3 by step %4")
          .arg(r.watchWrite ? QStringLiteral("write") : QStringLiteral("read"))
          .arg(r.watchSize)
          .arg(hex(r.watchAddress))
          .arg(r.accessStep);
    case StopKind::kHistoryBegin:
      return QStringLiteral("beginning of the history (step %1)").arg(r.step);
    case StopKind::kHistoryEnd: return QStringLiteral("end of the history (step %1)").arg(r.step);
    case StopKind::kCancelled: return QStringLiteral("cancelled at step %1").arg(r.step);
    case StopKind::kDivergence:
      return QStringLiteral("replay diverged from the trace at step %1: %2")
          .arg(r.divergence ? r.divergence->step : r.step)
          .arg(r.divergence ? QString::fromStdString(r.divergence->reason) : QString());
    default:  // kinds added to the Timeline later: its own name for them
      break;
  }
  return QStringLiteral("stopped (%1) at step %2")
      .arg(QString::fromLatin1(toString(r.kind)))
      .arg(r.step);
}

std::vector<DisasmLine> ReplayEngine::disassemblyAround(const CpuState& s) const {
  const CpuMode mode = cpuMode(s);
  // CS base: instruction addresses are offsets in CS; memory reads are linear.
  const uint64_t csBase = timeline_->session().linearRip(s.rip) - s.rip;
  auto decode = [&](uint64_t addr, DisasmLine& line) -> unsigned {
    std::array<uint8_t, 15> buf{};
    size_t n = 0;
    // Bytes up to the first unmapped one (an instruction may end before it).
    while (n < buf.size() &&
           timeline_->readLinear(csBase + addr + n, std::span<uint8_t>(&buf[n], 1)))
      ++n;
    line.address = addr;
    Disassembly d = disassemble(std::span<const uint8_t>(buf.data(), n), mode, addr);
    const unsigned len = d.length == 0 ? 1 : d.length;
    line.text =
        d.length == 0 ? QStringLiteral("(bad)") : nameTarget(QString::fromStdString(d.text));
    QStringList bytes;
    for (unsigned i = 0; i < len && i < n; ++i)
      bytes << QStringLiteral("%1").arg(buf[i], 2, 16, QLatin1Char('0'));
    if (n == 0) line.text = QStringLiteral("(unmapped)");
    line.bytes = bytes.join(QLatin1Char(' '));
    line.symbol = symbolAt(csBase + addr);
    line.breakpoint = breakpoints_.count(csBase + addr) != 0;
    return len;
  };
  // Lines before RIP: x86 cannot be decoded backward, so decode forward from
  // the start of RIP's function (when it is near) and keep the instructions
  // that end exactly at RIP; otherwise start at RIP.
  std::vector<DisasmLine> before;
  const QString sym = symbolAt(csBase + s.rip);
  const int plus = sym.lastIndexOf(QStringLiteral("+0x"));
  if (plus > 0) {
    bool ok = false;
    const uint64_t off = sym.mid(plus + 3).toULongLong(&ok, 16);
    if (ok && off <= 4096 && off <= s.rip) {
      uint64_t a = s.rip - off;
      std::vector<DisasmLine> lines;
      while (a < s.rip) {
        DisasmLine l;
        a += decode(a, l);
        lines.push_back(std::move(l));
      }
      if (a == s.rip) {
        const size_t keep = std::min<size_t>(lines.size(), kLinesBefore);
        before.assign(lines.end() - static_cast<std::ptrdiff_t>(keep), lines.end());
      }
    }
  }
  std::vector<DisasmLine> out = std::move(before);
  uint64_t a = s.rip;
  for (int i = 0; i < kLinesAfter; ++i) {
    DisasmLine l;
    l.current = i == 0;
    a += decode(a, l);
    out.push_back(std::move(l));
  }
  return out;
}

Snapshot ReplayEngine::snapshot(StopKind kind, const QString& stopText) const {
  Snapshot s;
  s.step = timeline_->now();
  s.beginStep = timeline_->beginStep();
  s.endStep = timeline_->endStep();
  s.registers = timeline_->registers();
  s.stopKind = kind;
  s.stopText = stopText;
  const uint64_t linRip = timeline_->session().linearRip(s.registers.rip);
  s.location = symbolAt(linRip);
  s.disassembly = disassemblyAround(s.registers);
  s.memoryAddress = memoryAddress_;
  s.memory.resize(kMemoryBytes);
  for (uint64_t i = 0; i < kMemoryBytes; ++i) {
    uint8_t b = 0;
    s.memory[i] = timeline_->readLinear(memoryAddress_ + i, std::span<uint8_t>(&b, 1))
                      ? static_cast<int16_t>(b)
                      : int16_t{-1};
  }
  // A port write at step k is done by the instruction that executes at k, so
  // it has happened once the position is past k.
  auto end = std::lower_bound(serial_.begin(), serial_.end(), s.step,
                              [](const auto& p, uint64_t step) { return p.first < step; });
  auto begin = serial_.begin();
  if (static_cast<size_t>(end - begin) > kMaxSerialBytes) begin = end - kMaxSerialBytes;
  QByteArray text;
  text.reserve(static_cast<qsizetype>(end - begin));
  for (auto it = begin; it != end; ++it) text.append(it->second);
  s.serial = QString::fromLatin1(text);
  for (const auto& [addr, id] : breakpoints_) s.breakpoints.push_back(addr);
  for (const auto& [range, id] : watchpoints_) s.watchpoints.push_back(range);
  fillFrames(s);
  for (const std::string& src : timeline_->symbols().sources())
    s.symbolSources << QString::fromStdString(src);
  return s;
}

QString ReplayEngine::nameTarget(const QString& text) const {
  // Direct branches only: Zydis prints their target as one absolute number.
  static const QRegularExpression kBranch(
      QStringLiteral("^(call|j[a-z]+|loop[a-z]*|jmp) (0x[0-9A-Fa-f]+)$"));
  const QRegularExpressionMatch m = kBranch.match(text);
  if (!m.hasMatch()) return text;
  bool ok = false;
  const uint64_t target = m.captured(2).toULongLong(&ok, 16);
  const QString name = ok ? symbolAt(target) : QString();
  return name.isEmpty() ? text : QStringLiteral("%1 <%2>").arg(text, name);
}

void ReplayEngine::fillFrames(Snapshot& s) const {
  BacktraceOptions o;
  o.inlined = true;  // inlined calls are frames, as gdb's after a stop
  o.skipStartingInlined = true;
  const Backtrace bt = unwindStack(*timeline_, o);
  const GuestMemoryReader read = [this](uint64_t a, std::span<uint8_t> out) {
    return timeline_->readLinear(a, out);
  };
  for (size_t i = 0; i < bt.frames.size() && i < kMaxFrames; ++i) {
    const BacktraceFrame& f = bt.frames[i];
    FrameInfo fi;
    fi.pc = f.pc;
    fi.function = f.symbol.empty() ? hex(f.pc) : QString::fromStdString(f.symbol);
    fi.unreliable = f.kind == FrameKind::kStackScan;
    fi.source = f.source;
    fi.inlined = f.inlined;
    fi.variables = timeline_->symbols().variablesAt(s.registers, read, f.stackFrame, f.inlineDepth);
    s.frames.push_back(std::move(fi));
  }
  s.framesEnd = QString::fromStdString(bt.end);
}

}  // namespace ttvm::ui
