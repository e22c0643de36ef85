#include "ttvm/replayer/gdb_server.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>

#include "command_words.h"
#include "ttvm/base/assert.h"
#include "ttvm/base/hex.h"
#include "ttvm/replayer/address_expression.h"
#include "ttvm/replayer/backtrace.h"
#include "ttvm/replayer/gdb_protocol.h"

namespace ttvm {
namespace {

constexpr const char* kThread = "thread:1;";

bool startsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// "ADDR,LEN" in hex; nullopt on anything else.
std::optional<std::pair<uint64_t, uint64_t>> parseAddrLen(std::string_view s) {
  const size_t comma = s.find(',');
  if (comma == std::string_view::npos) return std::nullopt;
  const auto a = gdbParseHexU64(s.substr(0, comma));
  const auto l = gdbParseHexU64(s.substr(comma + 1));
  if (!a || !l) return std::nullopt;
  return std::make_pair(*a, *l);
}

const char* kMonitorHelp =
    "ttvm gdbserver monitor commands:\n"
    "  monitor when                    the current step and the history's bounds\n"
    "  monitor seek STEP|begin|end     move to STEP (a replay position)\n"
    "  monitor last-write ADDR[:LEN]   move to the last write to [ADDR, ADDR+LEN) before now\n"
    "                                  (ADDR, LEN: numbers, guest symbols and $registers\n"
    "                                  with + - * ( ), e.g. arena+0x2fa8:8; LEN default 1)\n"
    "  monitor next-write ADDR[:LEN]   move to the next write to [ADDR, ADDR+LEN) after now\n"
    "  monitor reg-change REG          move to the last step before now that changed REG\n"
    "                                  (rax..r15, rip, rflags, cr0..cr8, efer, cs.., fs_base..)\n"
    "  monitor prev-event KIND         move to the previous / next event of KIND:\n"
    "  monitor next-event KIND         interrupt, exception, serial, port N\n"
    "  monitor backtrace               the guest's call stack here (frame pointers, then a\n"
    "                                  stack scan; symbols from the trace and --symbols)\n"
    "  monitor help                    this text\n"
    "After a move (seek, last-write, ...), run 'maintenance flush register-cache'\n"
    "and 'maintenance flush dcache' so gdb re-reads the registers and memory at\n"
    "the new position; gdb -x scripts/ttvm-gdb.py does it for you ('ttvm seek',\n"
    "'ttvm last-write EXPR', and after a plain 'monitor').\n";

}  // namespace

GdbServer::GdbServer(Timeline& timeline, GdbServerOptions options)
    : timeline_(timeline), options_(std::move(options)) {}

GdbServer::~GdbServer() {
  cancel_.store(true);
  if (warmUp_.joinable()) warmUp_.join();
}

uint64_t GdbServer::startStep() const {
  if (options_.start.kind == GdbStart::Kind::kBegin) return timeline_.beginStep();
  if (options_.start.kind == GdbStart::Kind::kStep)
    return std::clamp(options_.start.step, timeline_.beginStep(), timeline_.endStep());
  return timeline_.endStep();
}

void GdbServer::warmUp() {
  TTVM_ASSERT(!warmUp_.joinable());
  cancel_.store(false);
  warmUp_ = std::thread([this] { (void)timeline_.seek(startStep(), control()); });
}

std::string GdbServer::resetConnection() {
  lockedArch_.reset();
  errorMessages_ = false;
  for (const auto& [key, id] : points_) {
    if (std::get<0>(key) <= 1)
      timeline_.removeBreakpoint(id);
    else
      timeline_.removeWatchpoint(id);
  }
  points_.clear();
  breakType_.clear();
  watchType_.clear();
  watchRange_.clear();
  if (warmUp_.joinable()) warmUp_.join();  // it moved to the start, or most of the way
  const uint64_t target = startStep();
  cancel_.store(false);
  const StopReason r = timeline_.seek(target, control());
  lastStop_ = r.kind == StopKind::kDivergence ? "T06thread:1;" : "T05thread:1;";
  // describePosition() is "step N, rip …"; say which end N is, if one.
  std::string where = describePosition();
  const size_t comma = where.find(',');
  if (r.kind == StopKind::kDivergence)
    where.insert(comma, " (the replay diverged before step " + std::to_string(target) + ")");
  else if (timeline_.now() == timeline_.endStep())
    where.insert(comma, " (the end of the recording)");
  else if (timeline_.now() == timeline_.beginStep())
    where.insert(comma, " (the start of the recording)");
  return where;
}

GdbArch GdbServer::arch() const {
  if (options_.arch) return *options_.arch;
  if (lockedArch_) return *lockedArch_;
  if (cpuMode(timeline_.registers()) == CpuMode::kLong64) return GdbArch::kX86_64;
  if (options_.finalCpu && cpuMode(*options_.finalCpu) == CpuMode::kLong64) return GdbArch::kX86_64;
  return GdbArch::kI386;
}

std::string GdbServer::error(int code, std::string_view message) const {
  if (errorMessages_) return "E." + std::string(message);
  char buf[8];
  std::snprintf(buf, sizeof buf, "E%02x", code & 0xFF);
  return buf;
}

std::string GdbServer::readOnly(std::string_view what) {
  // "E.text" is a standard reply to every packet but m and qRcmd (the
  // protocol's "Standard Replies"), so it needs no error-message+.
  return "E.ttvm: the recorded history is read-only; a replay cannot write " + std::string(what) +
         " (seek to another step to see other values)";
}

Control GdbServer::control() {
  Control c;
  c.cancel = &cancel_;
  c.progress = progress_;
  return c;
}

std::string GdbServer::describePosition() const {
  const uint64_t rip = timeline_.registers().rip;
  auto& session = const_cast<Timeline&>(timeline_).session();
  const std::string sym = session.symbolAt(rip);
  return "step " + std::to_string(timeline_.now()) + ", rip " + hex(rip) +
         (sym.empty() ? "" : " <" + sym + ">") + ": " + session.disassembleAt(rip);
}

GdbReply GdbServer::handle(std::string_view p) {
  GdbReply reply;
  if (p.empty()) return reply;
  const std::string_view arg = p.substr(1);
  switch (p[0]) {
    case '?': reply.payload = lastStop_; break;
    case 'g': reply.payload = readRegisters(); break;
    case 'G':
    case 'P': reply.payload = readOnly("registers"); break;
    case 'p': reply.payload = readRegister(arg); break;
    case 'm': reply.payload = readMemory(arg); break;
    case 'M':
    case 'X': reply.payload = readOnly("memory"); break;
    case 'Z':
    case 'z': reply.payload = breakpoint(p, p[0] == 'Z'); break;
    case 'c':
    case 'C':
      // An address argument ("c ADDR") would change RIP: refused.
      if (p[0] == 'c' && !arg.empty()) {
        reply.payload = error(1, "a replay cannot resume at another address");
        break;
      }
      reply.payload = motion('c', reply);
      break;
    case 's':
    case 'S':
      if (p[0] == 's' && !arg.empty()) {
        reply.payload = error(1, "a replay cannot resume at another address");
        break;
      }
      reply.payload = motion('s', reply);
      break;
    case 'b':
      if (arg == "c")
        reply.payload = motion('C', reply);
      else if (arg == "s")
        reply.payload = motion('S', reply);
      break;  // other 'b' packets (baud rate): unsupported, empty reply
    case 'H': reply.payload = "OK"; break;
    case 'T': {
      const auto tid = gdbParseHexU64(arg);
      reply.payload = (tid && *tid == 1) || arg == "-1" ? "OK" : error(1, "no such thread");
      break;
    }
    case 'q':
    case 'Q': return query(p);
    case 'v':
      if (p == "vCont?") {
        reply.payload = "vCont;c;C;s;S";
      } else if (startsWith(p, "vCont;")) {
        reply.payload = vCont(p.substr(6), reply);
      } else if (startsWith(p, "vKill")) {
        reply.payload = "OK";
        reply.close = true;
      }
      break;  // vMustReplyEmpty and the rest: empty reply
    case 'k': reply.close = true; break;
    case 'D':
      reply.payload = "OK";
      reply.close = true;
      break;
    default: break;  // unknown: empty reply
  }
  return reply;
}

GdbReply GdbServer::query(std::string_view p) {
  GdbReply reply;
  if (startsWith(p, "qSupported")) {
    errorMessages_ = p.find("error-message+") != std::string_view::npos;
    char buf[32];
    std::snprintf(buf, sizeof buf, "PacketSize=%zx", options_.packetSize);
    reply.payload =
        std::string(buf) + ";qXfer:features:read+;ReverseStep+;ReverseContinue+;swbreak+;hwbreak+";
    if (errorMessages_) reply.payload += ";error-message+";
  } else if (startsWith(p, "qXfer:features:read:")) {
    std::string_view rest = p.substr(20);
    const size_t colon = rest.find(':');
    if (colon == std::string_view::npos) {
      reply.payload = error(1, "malformed qXfer request");
      return reply;
    }
    const std::string_view annex = rest.substr(0, colon);
    const auto range = parseAddrLen(rest.substr(colon + 1));
    if (!range) {
      reply.payload = error(1, "malformed qXfer offset/length");
      return reply;
    }
    if (annex != "target.xml") {
      reply.payload = error(0, "no such annex: " + std::string(annex));
      return reply;
    }
    if (!lockedArch_) lockedArch_ = arch();
    const std::string& xml = gdbTargetXml(arch());
    const uint64_t offset = range->first;
    if (offset >= xml.size()) {
      reply.payload = "l";
      return reply;
    }
    // At most a packet's worth (the reply grows by its 'm'/'l' and escapes).
    const uint64_t most = options_.packetSize > 64 ? options_.packetSize / 2 : 32;
    const uint64_t n =
        std::min<uint64_t>(std::min<uint64_t>(range->second, most), xml.size() - offset);
    reply.payload = (offset + n >= xml.size() ? "l" : "m") + xml.substr(offset, n);
  } else if (p == "qAttached" || startsWith(p, "qAttached:")) {
    reply.payload = "1";
  } else if (p == "qC") {
    reply.payload = "QC1";
  } else if (p == "qfThreadInfo") {
    reply.payload = "m1";
  } else if (p == "qsThreadInfo") {
    reply.payload = "l";
  } else if (startsWith(p, "qSymbol")) {
    reply.payload = "OK";
  } else if (startsWith(p, "qRcmd,")) {
    const auto text = gdbHexDecode(p.substr(6));
    if (!text) {
      reply.payload = error(1, "qRcmd: bad hex");
      return reply;
    }
    return monitor(*text);
  }
  return reply;  // unknown queries: empty reply
}

std::string GdbServer::readRegisters() {
  const GdbArch a = arch();
  const CpuState& s = timeline_.registers();
  std::string out;
  const size_t n = gdbRegisters(a).size();
  for (size_t i = 0; i < n; ++i) {
    const std::string bytes = gdbRegisterBytes(a, s, i);
    out += gdbHexEncode(std::string_view(bytes));
  }
  return out;
}

std::string GdbServer::readRegister(std::string_view arg) {
  const auto n = gdbParseHexU64(arg);
  if (!n) return error(1, "p: bad register number");
  const std::string bytes = gdbRegisterBytes(arch(), timeline_.registers(), *n);
  if (bytes.empty()) return error(0x45, "p: no such register");
  return gdbHexEncode(std::string_view(bytes));
}

std::string GdbServer::readMemory(std::string_view arg) {
  const auto range = parseAddrLen(arg);
  if (!range) return "E01";
  const uint64_t address = range->first;
  // Each byte is two hex digits; keep the reply inside the packet size.
  const uint64_t length = std::min<uint64_t>(range->second, (options_.packetSize - 16) / 2);
  std::vector<uint8_t> buf(length);
  if (length == 0) return "";
  if (timeline_.readLinear(address, buf)) return gdbHexEncode(buf);
  // Partly mapped: return the readable prefix, page by page (gdb accepts a
  // short reply); nothing readable -> E14 (EFAULT).
  uint64_t done = 0;
  while (done < length) {
    const uint64_t a = address + done;
    const uint64_t chunk = std::min<uint64_t>(length - done, 0x1000 - (a & 0xFFF));
    if (!timeline_.readLinear(a, std::span<uint8_t>(buf.data() + done, chunk))) break;
    done += chunk;
  }
  if (done == 0) return "E14";
  return gdbHexEncode(std::span<const uint8_t>(buf.data(), done));
}

std::string GdbServer::breakpoint(std::string_view p, bool insert) {
  // Z<type>,<addr>,<kind>[;cond...]
  if (p.size() < 2 || p[1] < '0' || p[1] > '4') return "";  // unsupported type: empty
  const int type = p[1] - '0';
  if (p.size() < 3 || p[2] != ',') return "E01";
  std::string_view rest = p.substr(3);
  const size_t semi = rest.find(';');
  if (semi != std::string_view::npos) rest = rest.substr(0, semi);
  const auto range = parseAddrLen(rest);
  if (!range) return "E01";
  const auto [address, kind] = *range;
  if (type >= 2 && kind == 0) return "E01";
  // Breakpoints are keyed by address only (the kind is the instruction size).
  const auto key = std::make_tuple(type, address, type >= 2 ? kind : 0);
  auto it = points_.find(key);
  if (insert) {
    if (it != points_.end()) return "OK";  // gdb may insert the same one again
    int id = -1;
    if (type <= 1) {
      id = timeline_.addBreakpoint(address, false);
      breakType_[id] = type;
    } else {
      const WatchKind wk =
          type == 2 ? WatchKind::kWrite : (type == 3 ? WatchKind::kRead : WatchKind::kAccess);
      id = timeline_.addWatchpoint(address, kind, wk, false);
      watchType_[id] = type;
      watchRange_[id] = {address, kind};
    }
    points_[key] = id;
    return "OK";
  }
  if (it == points_.end()) return "OK";  // removing one never inserted is harmless
  const int id = it->second;
  if (type <= 1) {
    timeline_.removeBreakpoint(id);
    breakType_.erase(id);
  } else {
    timeline_.removeWatchpoint(id);
    watchType_.erase(id);
    watchRange_.erase(id);
  }
  points_.erase(it);
  return "OK";
}

std::string GdbServer::vCont(std::string_view p, GdbReply& reply) {
  // Actions separated by ';', each "a[:tid]"; there is one thread, so the
  // first action that names it (or all threads) decides.
  while (!p.empty()) {
    const size_t semi = p.find(';');
    std::string_view action = p.substr(0, semi);
    p = semi == std::string_view::npos ? std::string_view() : p.substr(semi + 1);
    const size_t colon = action.find(':');
    if (colon != std::string_view::npos) {
      const std::string_view tid = action.substr(colon + 1);
      if (tid != "-1" && tid != "1" && tid != "p1.1" && tid != "p1.-1") continue;
      action = action.substr(0, colon);
    }
    if (action.empty()) return "E01";
    switch (action[0]) {
      case 'c':
      case 'C': return motion('c', reply);
      case 's':
      case 'S': return motion('s', reply);
      default: return "E01";
    }
  }
  return "E01";
}

std::string GdbServer::motion(char what, GdbReply& reply) {
  const Control c = control();
  StopReason r;
  switch (what) {
    case 'c': r = timeline_.continueForward(c); break;
    case 's': r = timeline_.step(1, c); break;
    case 'C': r = timeline_.reverseContinue(c); break;
    default: r = timeline_.stepBack(1, c); break;
  }
  lastStop_ = stopReply(r, reply);
  return lastStop_;
}

std::string GdbServer::stopReply(const StopReason& r, GdbReply& reply) {
  std::string t = "T05";
  switch (r.kind) {
    case StopKind::kStepDone: break;
    case StopKind::kBreakpoint: {
      const auto it = breakType_.find(r.breakpointId);
      t += (it != breakType_.end() && it->second == 1) ? "hwbreak:;" : "swbreak:;";
      break;
    }
    case StopKind::kWatchpoint: {
      const auto it = watchType_.find(r.watchpointId);
      const int type = it != watchType_.end() ? it->second : 2;
      // Report an address inside the watched range so gdb matches it.
      uint64_t a = r.watchAddress;
      const auto range = watchRange_.find(r.watchpointId);
      if (range != watchRange_.end()) {
        const auto [start, len] = range->second;
        if (a < start || a >= start + len) a = start;
      }
      t += type == 3 ? "rwatch:" : (type == 4 ? "awatch:" : "watch:");
      t += gdbHexU64(a) + ";";
      break;
    }
    case StopKind::kHistoryBegin: t += "replaylog:begin;"; break;
    case StopKind::kHistoryEnd: t += "replaylog:end;"; break;
    case StopKind::kCancelled: t = "T02"; break;
    case StopKind::kException:  // only after Timeline::setExceptionStops
      // #DE -> SIGFPE, #UD -> SIGILL, #GP/#PF -> SIGSEGV, others SIGTRAP.
      t = r.vector == 0    ? "T08"
          : r.vector == 6  ? "T04"
          : r.vector == 13 ? "T0b"
          : r.vector == 14 ? "T0b"
                           : "T05";
      break;
    case StopKind::kDivergence:
      t = "T06";  // SIGABRT: the replay cannot go on
      reply.console.push_back("ttvm: the replay diverged from the trace:\n" +
                              (r.divergence ? r.divergence->format() : std::string("?")) + "\n");
      break;
  }
  return t + kThread;
}

GdbReply GdbServer::monitor(const std::string& command) {
  GdbReply reply;
  const std::vector<std::string> words = splitWords(command);
  auto out = [&](std::string text) { reply.console.push_back(std::move(text)); };
  if (words.empty() || words[0] == "help") {
    out(kMonitorHelp);
    reply.payload = "OK";
    return reply;
  }
  const std::string& verb = words[0];
  if (verb == "when") {
    out("step " + std::to_string(timeline_.now()) + " (history " +
        std::to_string(timeline_.beginStep()) + ".." + std::to_string(timeline_.endStep()) + ")\n");
    reply.payload = "OK";
    return reply;
  }
  if (verb == "backtrace" || verb == "bt") {
    out(formatBacktrace(unwindStack(timeline_)));
    reply.payload = "OK";
    return reply;
  }
  if (verb == "seek") {
    if (words.size() != 2) {
      reply.payload = error(1, "usage: monitor seek STEP|begin|end");
      return reply;
    }
    std::optional<uint64_t> target;
    if (words[1] == "begin")
      target = timeline_.beginStep();
    else if (words[1] == "end")
      target = timeline_.endStep();
    else
      target = parseNumber(words[1]);
    if (!target) {
      out("seek: '" + words[1] + "' is not a step number\n");
      reply.payload = error(1, "seek: bad step '" + words[1] + "'");
      return reply;
    }
    if (*target < timeline_.beginStep() || *target > timeline_.endStep()) {
      out("seek: step " + words[1] + " is outside the history (" +
          std::to_string(timeline_.beginStep()) + ".." + std::to_string(timeline_.endStep()) +
          ")\n");
      reply.payload = error(1, "seek: step outside the history");
      return reply;
    }
    const StopReason r = timeline_.seek(*target, control());
    if (r.kind == StopKind::kDivergence && r.divergence)
      out("the replay diverged:\n" + r.divergence->format() + "\n");
    else if (r.kind == StopKind::kCancelled)
      out("seek interrupted\n");
    out("now at " + describePosition() + "\n");
    reply.payload = "OK";
    return reply;
  }
  if (verb == "last-write" || verb == "next-write") {
    if (words.size() < 2) {
      reply.payload = error(1, "usage: monitor " + verb + " ADDR[:LEN]");
      return reply;
    }
    // The argument is the rest of the command: "arena + 0x2fa8 : 8" too.
    std::string spec = command.substr(command.find(verb) + verb.size());
    spec.erase(0, spec.find_first_not_of(' '));
    const CpuState& cpu = timeline_.registers();
    auto parsed = parseAddressRange(spec, timeline_.symbols(), &cpu);
    if (!parsed.ok()) {
      out(verb + ": " + parsed.error().message + "\n");
      reply.payload = error(1, verb + ": bad address");
      return reply;
    }
    const uint64_t address = parsed->address;
    const uint64_t length = parsed->length;
    const bool last = verb == "last-write";
    const uint64_t before = timeline_.now();
    auto hit = last ? timeline_.lastWrite(address, length, false, true, control())
                    : timeline_.nextWrite(address, length, false, true, control());
    if (!hit.ok()) {
      out(verb + ": " + hit.error().message + "\n");
      reply.payload = error(1, verb + " failed");
      return reply;
    }
    const std::string range = "[" + hex(address) + ", " + hex(address + length) + ")";
    const std::string where = (last ? " before step " : " after step ") + std::to_string(before);
    if (!hit.value())
      out("no write to " + range + where + "\n");
    else
      out((last ? "last write to " : "next write to ") + range + where + ": " + describePosition() +
          "\n");
    reply.payload = "OK";
    return reply;
  }
  if (verb == "reg-change") {
    const auto reg = words.size() == 2 ? registerByName(words[1]) : std::nullopt;
    if (!reg) {
      out(words.size() == 2 ? "reg-change: no register named '" + words[1] + "'\n"
                            : "usage: monitor reg-change REG\n");
      reply.payload = error(1, "reg-change: bad register");
      return reply;
    }
    const uint64_t before = timeline_.now();
    auto hit = timeline_.registerLastChange(*reg, true, control());
    if (!hit.ok()) {
      out("reg-change: " + hit.error().message + "\n");
      reply.payload = error(1, "reg-change failed");
      return reply;
    }
    if (!hit.value())
      out(words[1] + " did not change before step " + std::to_string(before) + "\n");
    else
      out(words[1] + " changed " + hex(hit.value()->oldValue) + " -> " +
          hex(hit.value()->newValue) + ": " + describePosition() + "\n");
    reply.payload = "OK";
    return reply;
  }
  if (verb == "prev-event" || verb == "next-event") {
    EventQuery q;
    bool ok = words.size() >= 2;
    if (ok && words[1] == "interrupt" && words.size() == 2) {
      q.kind = EventQuery::Kind::kInterrupt;
    } else if (ok && words[1] == "exception" && words.size() == 2) {
      q.kind = EventQuery::Kind::kException;
    } else if (ok && words[1] == "serial" && words.size() == 2) {
      q.kind = EventQuery::Kind::kSerialOutput;
    } else if (ok && words[1] == "port" && words.size() == 3) {
      const auto port = parseNumber(words[2]);
      ok = port && *port <= 0xFFFF;
      q.kind = EventQuery::Kind::kPortIo;
      q.port = static_cast<uint16_t>(port.value_or(0));
    } else {
      ok = false;
    }
    if (!ok) {
      out("usage: monitor " + verb + " interrupt|exception|serial|port N\n");
      reply.payload = error(1, verb + ": bad kind");
      return reply;
    }
    const uint64_t before = timeline_.now();
    auto hit = verb == "prev-event" ? timeline_.previousEvent(q, true, control())
                                    : timeline_.nextEvent(q, true, control());
    if (!hit.ok()) {
      out(verb + ": " + hit.error().message + "\n");
      reply.payload = error(1, verb + " failed");
      return reply;
    }
    if (!hit.value())
      out("no such event " + std::string(verb == "prev-event" ? "before" : "after") + " step " +
          std::to_string(before) + "\n");
    else
      out(describePosition() + "\n");
    reply.payload = "OK";
    return reply;
  }
  out("unknown monitor command '" + verb + "' ('monitor help' lists them)\n");
  reply.payload = error(1, "unknown monitor command");
  return reply;
}

}  // namespace ttvm
