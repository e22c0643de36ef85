#include "ttvm/replayer/dap_server.h"

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "command_words.h"
#include "ttvm/base/hex.h"
#include "ttvm/emulator/disassembler.h"
#include "ttvm/replayer/address_expression.h"
#include "ttvm/replayer/backtrace.h"
#include "ttvm/replayer/queries.h"
#include "ttvm/replayer/source_step.h"

namespace ttvm {
namespace {

using nlohmann::json;

constexpr int kThreadId = 1;
// variablesReference values: 0 means "no children" in the protocol.
constexpr int kGeneralRegisters = 1;
constexpr int kSystemRegisters = 2;
constexpr int kLocals = 100;  // + frame id: that frame's parameters and locals

const char* const kGeneralNames[] = {"rax", "rbx", "rcx", "rdx", "rsi", "rdi",
                                     "rbp", "rsp", "r8",  "r9",  "r10", "r11",
                                     "r12", "r13", "r14", "r15", "rip", "rflags"};
const char* const kSystemNames[] = {"cs",      "ss",  "ds",  "es",  "fs",  "gs",  "fs_base",
                                    "gs_base", "cr0", "cr2", "cr3", "cr4", "cr8", "efer"};

// The exception breakpoint filters offered: the guest exceptions a
// continue or reverse continue stops at (Timeline::setExceptionStops).
struct ExceptionFilter {
  const char* filter;
  const char* label;
  uint32_t vectors;  // bit i = vector i
};
constexpr ExceptionFilter kExceptionFilters[] = {
    {"pf", "Page fault (#PF)", 1u << 14},
    {"gp", "General protection (#GP)", 1u << 13},
    {"ud", "Invalid opcode (#UD)", 1u << 6},
    {"de", "Divide error (#DE)", 1u << 0},
    {"all", "Any CPU exception (vectors 0-31)", 0xFFFFFFFFu},
};

const char* kEvaluateHelp =
    "ttvm evaluate commands (Debug Console):\n"
    "  when                    the current step and the history's bounds\n"
    "  seek STEP|begin|end     move to STEP\n"
    "  last-write ADDR[:LEN]   move to the last write to [ADDR, ADDR+LEN) before now\n"
    "  next-write ADDR[:LEN]   move to the next write after now\n"
    "  reverse-step            back by line into the callee that returned (gdb's\n"
    "                          reverse-step; also stepBack with \"into\": true)\n"
    "  backtrace               the call stack, as text\n"
    "  NAME                    a local or parameter of frame 0\n"
    "  EXPR                    the value of an address expression (arena+0x2fa8, $rsp+8)\n"
    "ADDR and LEN are address expressions: numbers, guest symbols and $registers\n"
    "with + - * ( ), e.g. arena+0x2fa8:8.\n";

std::string base64(std::span<const uint8_t> bytes) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (uint32_t{bytes[i]} << 16) | (uint32_t{bytes[i + 1]} << 8) | bytes[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = uint32_t{bytes[i]} << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = (uint32_t{bytes[i]} << 16) | (uint32_t{bytes[i + 1]} << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string hexBytes(std::span<const uint8_t> bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

// A source object for a DWARF file name: `name` is its last component.
json sourceOf(const SourceLine& line) {
  const size_t slash = line.file.find_last_of('/');
  return json{{"name", slash == std::string::npos ? line.file : line.file.substr(slash + 1)},
              {"path", line.file}};
}

}  // namespace

struct DapServer::Impl {
  Impl(DapServer& server, Timeline& timeline) : self(server), timeline(timeline) {}

  DapServer& self;
  Timeline& timeline;
  int seq = 1;
  std::vector<std::string> out;  // what handle() returns
  // Timeline ids of the breakpoints each request set (each request replaces its own set).
  std::vector<int> functionBps;
  std::vector<int> instructionBps;
  std::vector<int> dataWps;
  std::map<std::string, std::vector<int>> sourceBps;  // by source path
  std::map<int, std::string> bpReason;                // Timeline breakpoint id -> stop reason
  std::map<int, int> dapId;  // Timeline id (breakpoint or watchpoint) -> DAP id
  std::map<int, int> dapWatchId;
  int nextDapId = 1;
  std::optional<Backtrace> frames;                       // at the current position; reset by motion
  std::optional<uint8_t> lastException;                  // the vector of the last exception stop
  std::map<int, std::vector<GuestVariable>> variables_;  // locals() by frame; reset by motion

  // Motion stops early when a pause request arrives (DapServer::cancelFlag).
  Control control() const {
    Control c;
    c.cancel = &self.cancel_;
    return c;
  }
  bool cancelled() const { return self.cancel_.load(); }
  StopReason cancelledStop() const { return StopReason{StopKind::kCancelled, timeline.now()}; }

  void send(json message) {
    message["seq"] = seq++;
    out.push_back(message.dump());
  }
  void event(const std::string& name, json body = json::object()) {
    send(json{{"type", "event"}, {"event", name}, {"body", std::move(body)}});
  }
  void respond(const json& request, json body = json::object()) {
    send(json{{"type", "response"},
              {"request_seq", request.value("seq", 0)},
              {"success", true},
              {"command", request.value("command", "")},
              {"body", std::move(body)}});
  }
  void fail(const json& request, const std::string& message) {
    send(json{{"type", "response"},
              {"request_seq", request.value("seq", 0)},
              {"success", false},
              {"command", request.value("command", "")},
              {"message", message},
              {"body", json{{"error", json{{"id", 1}, {"format", message}}}}}});
  }
  void console(const std::string& text) {
    event("output", json{{"category", "console"}, {"output", text}});
  }

  std::string when() const {
    return "step " + std::to_string(timeline.now()) + " (history " +
           std::to_string(timeline.beginStep()) + ".." + std::to_string(timeline.endStep()) + ")";
  }

  // "name+0x12" of a value that points into a function or an object (not
  // into an absolute symbol, as small numbers would).
  std::optional<std::string> pointee(uint64_t value) const {
    const Symbol* sym = timeline.symbols().lookup(value);
    if (sym == nullptr || sym->kind == SymbolKind::kOther) return std::nullopt;
    return timeline.symbols().describe(value);
  }

  const Backtrace& backtrace() {
    if (!frames) {
      BacktraceOptions o;
      o.inlined = true;  // inlined calls are frames, as gdb's after a stop
      o.skipStartingInlined = true;
      frames = unwindStack(timeline, o);
    }
    return *frames;
  }

  // The stopped event for `r`; `reason` overrides the reason of a plain step.
  void stopped(const StopReason& r, const std::string& stepReason = "step") {
    frames.reset();
    variables_.clear();
    lastException.reset();
    json body{{"threadId", kThreadId}, {"allThreadsStopped", true}};
    std::string reason = stepReason;
    std::string description;
    switch (r.kind) {
      case StopKind::kStepDone: break;
      case StopKind::kBreakpoint: {
        const auto it = bpReason.find(r.breakpointId);
        reason = it != bpReason.end() ? it->second : "breakpoint";
        if (const auto d = dapId.find(r.breakpointId); d != dapId.end())
          body["hitBreakpointIds"] = json::array({d->second});
        break;
      }
      case StopKind::kWatchpoint: {
        reason = "data breakpoint";
        description = std::string(r.watchWrite ? "write" : "read") + " of " +
                      std::to_string(r.watchSize) + " bytes at " + hex(r.watchAddress) +
                      " by step " + std::to_string(r.accessStep);
        if (const auto d = dapWatchId.find(r.watchpointId); d != dapWatchId.end())
          body["hitBreakpointIds"] = json::array({d->second});
        break;
      }
      case StopKind::kHistoryBegin: description = "the start of the recording"; break;
      case StopKind::kHistoryEnd: description = "the end of the recording"; break;
      case StopKind::kException:
        reason = "exception";
        description = exceptionName(r.vector) + " (vector " + std::to_string(r.vector) +
                      "): the instruction here faulted or trapped";
        lastException = r.vector;
        break;
      case StopKind::kCancelled: reason = "pause"; break;
      case StopKind::kDivergence:
        reason = "exception";
        description = "the replay diverged from the trace";
        console("ttvm: the replay diverged from the trace:\n" +
                (r.divergence ? r.divergence->format() : std::string("?")) + "\n");
        break;
    }
    body["reason"] = reason;
    if (!description.empty()) body["description"] = description;
    body["text"] = when();
    event("stopped", std::move(body));
  }

  // ---- requests ----

  void initialize(const json& req) {
    json filters = json::array();
    for (const ExceptionFilter& f : kExceptionFilters)
      filters.push_back(json{{"filter", f.filter}, {"label", f.label}, {"default", false}});
    respond(req, json{{"supportsConfigurationDoneRequest", true},
                      {"supportsStepBack", true},
                      {"supportsDataBreakpoints", true},
                      {"supportsDisassembleRequest", true},
                      {"supportsReadMemoryRequest", true},
                      {"supportsInstructionBreakpoints", true},
                      {"supportsFunctionBreakpoints", true},
                      {"supportsSteppingGranularity", true},
                      {"supportsTerminateRequest", true},
                      {"supportsEvaluateForHovers", true},
                      {"supportsExceptionInfoRequest", true},
                      {"exceptionBreakpointFilters", filters},
                      {"supportsSetVariable", false}});
    event("initialized");
  }

  void launch(const json& req) {
    respond(req);
    console("ttvm dap: " + self.options_.tracePath + ", steps " +
            std::to_string(timeline.beginStep()) + ".." + std::to_string(timeline.endStep()) +
            "; type 'help' in the Debug Console for the ttvm commands\n");
  }

  void configurationDone(const json& req) {
    respond(req);
    const StopReason r = timeline.seek(timeline.endStep(), control());
    if (r.kind == StopKind::kDivergence)
      stopped(r);
    else
      stopped(StopReason{StopKind::kHistoryEnd, timeline.now()}, "entry");
  }

  void threads(const json& req) {
    respond(req, json{{"threads", json::array({json{{"id", kThreadId}, {"name", "cpu0"}}})}});
  }

  void stackTrace(const json& req) {
    const json& args = req.value("arguments", json::object());
    const Backtrace& bt = backtrace();
    const size_t start = std::min<size_t>(args.value("startFrame", 0), bt.frames.size());
    size_t levels = args.value("levels", 0);
    if (levels == 0) levels = bt.frames.size();
    json list = json::array();
    for (size_t i = start; i < bt.frames.size() && i - start < levels; ++i) {
      const BacktraceFrame& f = bt.frames[i];
      json frame{{"id", i},
                 {"name", f.symbol.empty() ? hex(f.pc) : f.symbol},
                 {"instructionPointerReference", hex(f.pc)},
                 {"line", 0},
                 {"column", 0}};
      if (f.source) {
        frame["source"] = sourceOf(*f.source);
        frame["line"] = f.source->line;
        frame["column"] = 1;
      }
      if (f.kind == FrameKind::kStackScan) frame["presentationHint"] = "subtle";
      list.push_back(std::move(frame));
    }
    respond(req, json{{"stackFrames", std::move(list)}, {"totalFrames", bt.frames.size()}});
  }

  void scopes(const json& req) {
    json list = json::array();
    // Locals where DWARF and the CFI give them (GuestSymbols::variablesAt).
    const int frame = req.value("arguments", json::object()).value("frameId", 0);
    if (frame >= 0 && frame < 64 && !locals(frame).empty())
      list.push_back(json{{"name", "Locals"},
                          {"presentationHint", "locals"},
                          {"variablesReference", kLocals + frame},
                          {"expensive", false}});
    for (json& scope : registerScopes()) list.push_back(std::move(scope));
    respond(req, json{{"scopes", std::move(list)}});
  }

  // The variables of frame `frame` of stackTrace (0 = innermost; an
  // inlined call's are its function's), unwound through the CFI.
  const std::vector<GuestVariable>& locals(int frame = 0) {
    auto it = variables_.find(frame);
    if (it == variables_.end()) {
      const Backtrace& bt = backtrace();
      std::vector<GuestVariable> vars;
      if (frame >= 0 && static_cast<size_t>(frame) < bt.frames.size()) {
        const BacktraceFrame& f = bt.frames[static_cast<size_t>(frame)];
        vars = timeline.symbols().variablesAt(
            timeline.registers(),
            [this](uint64_t a, std::span<uint8_t> out) { return timeline.readLinear(a, out); },
            f.stackFrame, f.inlineDepth);
      }
      it = variables_.emplace(frame, std::move(vars)).first;
    }
    return it->second;
  }

  static json registerScopes() {
    return json::array({json{{"name", "Registers"},
                             {"presentationHint", "registers"},
                             {"variablesReference", kGeneralRegisters},
                             {"expensive", false}},
                        json{{"name", "System registers"},
                             {"presentationHint", "registers"},
                             {"variablesReference", kSystemRegisters},
                             {"expensive", false}}});
  }

  void variables(const json& req) {
    const int ref = req.value("arguments", json::object()).value("variablesReference", 0);
    json list = json::array();
    auto add = [&](const char* name) {
      const auto reg = registerByName(name);
      if (!reg) return;
      const uint64_t v = reg->read(timeline.registers());
      json var{{"name", name},
               {"value", hex(v)},
               {"variablesReference", 0},
               {"memoryReference", hex(v)}};
      if (const auto sym = pointee(v)) var["value"] = hex(v) + " <" + *sym + ">";
      list.push_back(std::move(var));
    };
    if (ref >= kLocals && ref < kLocals + 64) {
      for (const GuestVariable& v : locals(ref - kLocals)) {
        json var{{"name", v.name}, {"value", v.value}, {"type", v.type}, {"variablesReference", 0}};
        if (v.address) var["memoryReference"] = hex(*v.address);
        if (v.parameter) var["presentationHint"] = json{{"kind", "property"}};
        list.push_back(std::move(var));
      }
    } else if (ref == kGeneralRegisters) {
      for (const char* n : kGeneralNames) add(n);
    } else if (ref == kSystemRegisters) {
      for (const char* n : kSystemNames) add(n);
    } else {
      fail(req, "no variables with reference " + std::to_string(ref));
      return;
    }
    respond(req, json{{"variables", std::move(list)}});
  }

  // ---- breakpoints ----

  void clear(std::vector<int>& ids, bool watch) {
    for (int id : ids) {
      if (watch) {
        timeline.removeWatchpoint(id);
        dapWatchId.erase(id);
      } else {
        timeline.removeBreakpoint(id);
        dapId.erase(id);
        bpReason.erase(id);
      }
    }
    ids.clear();
  }

  json verifiedBreakpoint(int timelineId, uint64_t address, const std::string& reason) {
    const int id = nextDapId++;
    dapId[timelineId] = id;
    bpReason[timelineId] = reason;
    json bp{{"id", id}, {"verified", true}, {"instructionReference", hex(address)}};
    if (const auto line = timeline.symbols().sourceLine(address)) {
      bp["source"] = sourceOf(*line);
      bp["line"] = line->line;
    }
    return bp;
  }

  void setFunctionBreakpoints(const json& req) {
    clear(functionBps, false);
    json list = json::array();
    for (const json& b :
         req.value("arguments", json::object()).value("breakpoints", json::array())) {
      const std::string name = b.value("name", "");
      const auto address = timeline.symbols().find(name);
      if (!address) {
        list.push_back(json{{"verified", false}, {"message", "no guest symbol '" + name + "'"}});
        continue;
      }
      const int id = timeline.addBreakpoint(*address);
      functionBps.push_back(id);
      list.push_back(verifiedBreakpoint(id, *address, "function breakpoint"));
    }
    respond(req, json{{"breakpoints", std::move(list)}});
  }

  void setInstructionBreakpoints(const json& req) {
    clear(instructionBps, false);
    json list = json::array();
    for (const json& b :
         req.value("arguments", json::object()).value("breakpoints", json::array())) {
      const std::string ref = b.value("instructionReference", "");
      const auto base = parseNumber(ref);
      if (!base) {
        list.push_back(json{{"verified", false}, {"message", "not an address: '" + ref + "'"}});
        continue;
      }
      const uint64_t address = *base + static_cast<uint64_t>(b.value("offset", int64_t{0}));
      const int id = timeline.addBreakpoint(address);
      instructionBps.push_back(id);
      list.push_back(verifiedBreakpoint(id, address, "instruction breakpoint"));
    }
    respond(req, json{{"breakpoints", std::move(list)}});
  }

  // Source-line breakpoints: per source path, each request replaces that
  // file's set. A line's breakpoint is one Timeline breakpoint per function
  // the line has code in (GuestSymbols::lineAddresses).
  void setBreakpoints(const json& req) {
    const json& args = req.value("arguments", json::object());
    const std::string path = args.value("source", json::object()).value("path", "");
    std::vector<int>& ids = sourceBps[path];
    clear(ids, false);
    json list = json::array();
    for (const json& b : args.value("breakpoints", json::array())) {
      const int wanted = b.value("line", 0);
      unsigned line = wanted > 0 ? static_cast<unsigned>(wanted) : 0;
      const std::vector<uint64_t> addresses =
          line > 0 ? timeline.symbols().lineAddresses(path, line) : std::vector<uint64_t>();
      if (addresses.empty()) {
        list.push_back(json{{"verified", false},
                            {"line", wanted},
                            {"message", "no code at or after line " + std::to_string(wanted) +
                                            " of " + path + " in the guest's line tables"}});
        continue;
      }
      const int id = nextDapId++;
      for (uint64_t a : addresses) {
        const int t = timeline.addBreakpoint(a);
        ids.push_back(t);
        dapId[t] = id;
        bpReason[t] = "breakpoint";
      }
      json bp{{"id", id},
              {"verified", true},
              {"line", line},
              {"instructionReference", hex(addresses[0])}};
      if (const auto where = timeline.symbols().sourceLine(addresses[0]))
        bp["source"] = sourceOf(*where);
      list.push_back(std::move(bp));
    }
    respond(req, json{{"breakpoints", std::move(list)}});
  }

  void setExceptionBreakpoints(const json& req) {
    uint32_t vectors = 0;
    json list = json::array();
    for (const json& name :
         req.value("arguments", json::object()).value("filters", json::array())) {
      const std::string f = name.is_string() ? name.get<std::string>() : "";
      const auto it = std::find_if(std::begin(kExceptionFilters), std::end(kExceptionFilters),
                                   [&](const ExceptionFilter& e) { return f == e.filter; });
      if (it == std::end(kExceptionFilters)) {
        list.push_back(json{{"verified", false}, {"message", "no exception filter '" + f + "'"}});
        continue;
      }
      vectors |= it->vectors;
      list.push_back(json{{"verified", true}});
    }
    timeline.setExceptionStops(vectors);
    respond(req, json{{"breakpoints", std::move(list)}});
  }

  void exceptionInfo(const json& req) {
    if (!lastException) {
      fail(req, "not stopped at an exception");
      return;
    }
    const uint64_t rip = timeline.registers().rip;
    respond(req, json{{"exceptionId", exceptionName(*lastException)},
                      {"description", exceptionName(*lastException) + " at " + hex(rip) + " <" +
                                          timeline.session().symbolAt(rip) +
                                          ">: " + timeline.session().disassembleAt(rip)},
                      {"breakMode", "always"}});
  }

  void dataBreakpointInfo(const json& req) {
    const json& args = req.value("arguments", json::object());
    std::string name = args.value("name", "");
    // A register in the Registers scope: watch the memory it points to (8 bytes).
    if (args.value("variablesReference", 0) != 0 && registerByName(name)) name = "$" + name + ":8";
    const CpuState& cpu = timeline.registers();
    auto range = parseAddressRange(name, timeline.symbols(), &cpu);
    if (!range.ok()) {
      respond(req, json{{"dataId", nullptr}, {"description", range.error().message}});
      return;
    }
    const std::string dataId = hex(range->address) + ":" + std::to_string(range->length);
    respond(req, json{{"dataId", dataId},
                      {"description",
                       std::to_string(range->length) + " bytes at " + hex(range->address)},
                      {"accessTypes", json::array({"read", "write", "readWrite"})},
                      {"canPersist", true}});
  }

  void setDataBreakpoints(const json& req) {
    clear(dataWps, true);
    json list = json::array();
    for (const json& b :
         req.value("arguments", json::object()).value("breakpoints", json::array())) {
      const std::string dataId = b.value("dataId", "");
      const size_t colon = dataId.find(':');
      const auto address = parseNumber(dataId.substr(0, colon));
      const auto length = colon == std::string::npos ? std::optional<uint64_t>(1)
                                                     : parseNumber(dataId.substr(colon + 1));
      if (!address || !length || *length == 0 || *length > kMaxAddressRangeLength) {
        list.push_back(json{{"verified", false}, {"message", "bad dataId '" + dataId + "'"}});
        continue;
      }
      const std::string access = b.value("accessType", "write");
      const WatchKind kind = access == "read"        ? WatchKind::kRead
                             : access == "readWrite" ? WatchKind::kAccess
                                                     : WatchKind::kWrite;
      const int id = timeline.addWatchpoint(*address, *length, kind);
      dataWps.push_back(id);
      const int dap = nextDapId++;
      dapWatchId[id] = dap;
      list.push_back(json{{"id", dap}, {"verified", true}});
    }
    respond(req, json{{"breakpoints", std::move(list)}});
  }

  // ---- motion ----

  void motion(const json& req, const std::string& command) {
    if (command == "continue")
      respond(req, json{{"allThreadsContinued", true}});
    else
      respond(req);
    // Statements when the position has a line and the client did not ask
    // for instructions (VS Code does from its disassembly view).
    const bool byLine =
        req.value("arguments", json::object()).value("granularity", "statement") != "instruction" &&
        timeline.symbols().sourceLine(timeline.registers().rip).has_value();
    StopReason r;
    if (command == "continue") {
      r = timeline.continueForward(control());
    } else if (command == "reverseContinue") {
      r = timeline.reverseContinue(control());
    } else if (command == "next" || command == "stepIn") {
      r = byLine ? stepLine(timeline, command == "stepIn", control()) : timeline.step(1, control());
    } else if (command == "stepBack") {
      // Backward step into the callee that returned (gdb's reverse-step)
      // when the client asks for it: stepBack has no "into" of its own.
      const bool into = req.value("arguments", json::object()).value("into", false);
      r = byLine ? stepBackLine(timeline, into, control()) : timeline.stepBack(1, control());
    } else {  // stepOut: to frame 1's return address, in a shallower frame
      std::string why;
      r = stepOut(timeline, control(), &why);
      if (!why.empty()) console("ttvm dap: " + why + "\n");
    }
    stopped(r);
  }

  // ---- memory ----

  // memoryReference + offset of a readMemory or disassemble request.
  std::optional<uint64_t> memoryAddress(const json& args) const {
    const auto base = parseNumber(args.value("memoryReference", ""));
    if (!base) return std::nullopt;
    return *base + static_cast<uint64_t>(args.value("offset", int64_t{0}));
  }

  // Reads the readable prefix of [address, address + out.size()), page by
  // page; returns its length.
  size_t readPrefix(uint64_t address, std::span<uint8_t> out) const {
    size_t done = 0;
    while (done < out.size()) {
      const uint64_t a = address + done;
      const size_t chunk = std::min<uint64_t>(out.size() - done, 0x1000 - (a & 0xFFF));
      if (!timeline.readLinear(a, out.subspan(done, chunk))) break;
      done += chunk;
    }
    return done;
  }

  void readMemory(const json& req) {
    const json& args = req.value("arguments", json::object());
    const auto address = memoryAddress(args);
    if (!address) {
      fail(req, "bad memoryReference");
      return;
    }
    const uint64_t count = std::min<uint64_t>(args.value("count", uint64_t{0}), 1u << 20);
    std::vector<uint8_t> buf(count);
    const size_t done = readPrefix(*address, buf);
    json body{{"address", hex(*address)}};
    if (done > 0) body["data"] = base64(std::span<const uint8_t>(buf.data(), done));
    if (done < count) body["unreadableBytes"] = count - done;
    respond(req, std::move(body));
  }

  // The instruction at `address` (length 0 when its bytes do not decode or
  // are unmapped) and the bytes read.
  Disassembly decodeAt(uint64_t address, std::span<uint8_t, 15> bytes, size_t& n) const {
    n = readPrefix(address, bytes);
    return disassemble(std::span<const uint8_t>(bytes.data(), n), cpuMode(timeline.registers()),
                       address);
  }

  json instruction(uint64_t address, bool symbols) {
    uint8_t bytes[15] = {};
    size_t n = 0;
    const Disassembly d = decodeAt(address, bytes, n);
    json ins{{"address", hex(address)}};
    if (d.length == 0) {
      ins["instruction"] = n == 0 ? "(unmapped)" : "(bad)";
      ins["presentationHint"] = "invalid";
      ins["instructionBytes"] = hexBytes(std::span<const uint8_t>(bytes, n ? 1 : 0));
      return ins;
    }
    ins["instruction"] = d.text;
    ins["instructionBytes"] = hexBytes(std::span<const uint8_t>(bytes, d.length));
    if (symbols) {
      if (const auto sym = timeline.symbols().describe(address)) ins["symbol"] = *sym;
    }
    if (const auto line = timeline.symbols().sourceLine(address)) {
      ins["location"] = sourceOf(*line);
      ins["line"] = line->line;
    }
    return ins;
  }

  // The length of the instruction at `address`; 1 for bytes that do not decode.
  unsigned lengthAt(uint64_t address) const {
    uint8_t bytes[15] = {};
    size_t n = 0;
    const unsigned len = decodeAt(address, bytes, n).length;
    return len == 0 ? 1 : len;
  }

  // The addresses of `count` instructions that end exactly at `address`,
  // decoding forward from the containing function's start (or from below).
  std::vector<uint64_t> instructionsBefore(uint64_t address, size_t count) {
    std::vector<uint64_t> starts;
    const Symbol* sym = timeline.symbols().lookup(address);
    if (sym != nullptr && address - sym->address <= 0x10000) starts.push_back(sym->address);
    starts.push_back(address >= 16 * count ? address - 16 * count : 0);
    for (uint64_t start : starts) {
      std::vector<uint64_t> seen;
      uint64_t a = start;
      while (a < address) {
        seen.push_back(a);
        a += lengthAt(a);
      }
      if (a != address) continue;
      if (seen.size() > count) seen.erase(seen.begin(), seen.end() - count);
      if (seen.size() == count || start == starts.back()) return seen;
    }
    return {};
  }

  void disassembleRequest(const json& req) {
    const json& args = req.value("arguments", json::object());
    const auto start = memoryAddress(args);
    if (!start) {
      fail(req, "bad memoryReference");
      return;
    }
    const uint64_t address = *start;
    const int64_t first = args.value("instructionOffset", int64_t{0});
    const int64_t count = std::clamp<int64_t>(args.value("instructionCount", int64_t{0}), 0, 4096);
    const bool symbols = args.value("resolveSymbols", true);
    json list = json::array();
    std::vector<uint64_t> addresses;
    if (first < 0) {
      const size_t before = static_cast<size_t>(-first);
      addresses = instructionsBefore(address, before);
      // Pad with invalid entries below when too few decoded (the protocol wants `count`).
      while (addresses.size() < before) {
        const uint64_t lowest = addresses.empty() ? address : addresses.front();
        addresses.insert(addresses.begin(), lowest - 1);
      }
    }
    uint64_t a = address;
    for (int64_t i = 0; i < first; ++i) a += lengthAt(a);
    while (static_cast<int64_t>(addresses.size()) < count) {
      addresses.push_back(a);
      a += lengthAt(a);
    }
    for (size_t i = 0; i < addresses.size() && static_cast<int64_t>(list.size()) < count; ++i)
      list.push_back(instruction(addresses[i], symbols));
    respond(req, json{{"instructions", std::move(list)}});
  }

  // ---- evaluate ----

  void evaluate(const json& req) {
    const json& args = req.value("arguments", json::object());
    std::string text = args.value("expression", "");
    text.erase(0, text.find_first_not_of(' '));
    const std::vector<std::string> words = splitWords(text);
    auto result = [&](const std::string& value) {
      respond(req, json{{"result", value}, {"variablesReference", 0}});
    };
    if (words.empty() || words[0] == "help") {
      result(kEvaluateHelp);
      return;
    }
    const std::string& verb = words[0];
    if (verb == "when") {
      result(when());
      return;
    }
    if (verb == "backtrace" || verb == "bt") {
      result(formatBacktrace(backtrace()));
      return;
    }
    if (verb == "seek") {
      std::optional<uint64_t> target;
      if (words.size() == 2 && words[1] == "begin")
        target = timeline.beginStep();
      else if (words.size() == 2 && words[1] == "end")
        target = timeline.endStep();
      else if (words.size() == 2)
        target = parseNumber(words[1]);
      if (!target || *target < timeline.beginStep() || *target > timeline.endStep()) {
        fail(req, "seek: give a step in " + std::to_string(timeline.beginStep()) + ".." +
                      std::to_string(timeline.endStep()) + ", begin or end");
        return;
      }
      const StopReason r = timeline.seek(*target, control());
      result("now at " + when());
      stopped(r, "goto");
      return;
    }
    if (verb == "reverse-step" && words.size() == 1) {
      // gdb's reverse-step: back by line, into a callee that returned.
      const StopReason r = timeline.symbols().sourceLine(timeline.registers().rip)
                               ? stepBackLine(timeline, true, control())
                               : timeline.stepBack(1, control());
      result("now at " + when());
      stopped(r);
      return;
    }
    if (verb == "last-write" || verb == "next-write") {
      const std::string spec = text.substr(verb.size());
      const CpuState& cpu = timeline.registers();
      auto range = parseAddressRange(spec, timeline.symbols(), &cpu);
      if (!range.ok()) {
        fail(req, verb + ": " + range.error().message);
        return;
      }
      const bool last = verb == "last-write";
      const uint64_t before = timeline.now();
      auto hit = last ? timeline.lastWrite(range->address, range->length, false, true, control())
                      : timeline.nextWrite(range->address, range->length, false, true, control());
      if (!hit.ok()) {
        fail(req, verb + ": " + hit.error().message);
        return;
      }
      const std::string what = "[" + hex(range->address) + ", " +
                               hex(range->address + range->length) + ")" +
                               (last ? " before step " : " after step ") + std::to_string(before);
      if (!hit.value()) {
        result("no write to " + what);
        return;
      }
      const uint64_t rip = timeline.registers().rip;
      result(std::string(last ? "last" : "next") + " write to " + what + ": " + when() + ", rip " +
             hex(rip) + " <" + timeline.session().symbolAt(rip) +
             ">: " + timeline.session().disassembleAt(rip));
      stopped(StopReason{StopKind::kStepDone, timeline.now()}, "goto");
      return;
    }
    // A local of frame 0 by name (a hover over it in the editor).
    for (const GuestVariable& v : locals()) {
      if (v.name != text) continue;
      json body{{"result", v.value}, {"type", v.type}, {"variablesReference", 0}};
      if (v.address) body["memoryReference"] = hex(*v.address);
      respond(req, std::move(body));
      return;
    }
    const CpuState& cpu = timeline.registers();
    auto value = evaluateAddress(text, timeline.symbols(), &cpu);
    if (!value.ok()) {
      fail(req, value.error().message + " ('help' lists the ttvm commands)");
      return;
    }
    json body{{"result", hex(*value)}, {"variablesReference", 0}, {"memoryReference", hex(*value)}};
    if (const auto sym = pointee(*value)) body["result"] = hex(*value) + " <" + *sym + ">";
    respond(req, std::move(body));
  }

  void dispatch(const json& req) {
    const std::string command = req.value("command", "");
    if (command == "initialize") {
      initialize(req);
    } else if (command == "launch" || command == "attach") {
      launch(req);
    } else if (command == "configurationDone") {
      configurationDone(req);
    } else if (command == "threads") {
      threads(req);
    } else if (command == "stackTrace") {
      stackTrace(req);
    } else if (command == "scopes") {
      scopes(req);
    } else if (command == "variables") {
      variables(req);
    } else if (command == "setBreakpoints") {
      setBreakpoints(req);
    } else if (command == "setFunctionBreakpoints") {
      setFunctionBreakpoints(req);
    } else if (command == "setInstructionBreakpoints") {
      setInstructionBreakpoints(req);
    } else if (command == "setExceptionBreakpoints") {
      setExceptionBreakpoints(req);
    } else if (command == "exceptionInfo") {
      exceptionInfo(req);
    } else if (command == "dataBreakpointInfo") {
      dataBreakpointInfo(req);
    } else if (command == "setDataBreakpoints") {
      setDataBreakpoints(req);
    } else if (command == "continue" || command == "reverseContinue" || command == "next" ||
               command == "stepIn" || command == "stepOut" || command == "stepBack") {
      motion(req, command);
    } else if (command == "pause") {
      // The transport set the cancel flag when this request arrived, which
      // stopped the motion before it (if any); answered, the flag clears.
      respond(req);
      self.cancel_.store(false);
    } else if (command == "readMemory") {
      readMemory(req);
    } else if (command == "disassemble") {
      disassembleRequest(req);
    } else if (command == "evaluate") {
      evaluate(req);
    } else if (command == "terminate") {
      respond(req);
      event("terminated");
    } else if (command == "disconnect") {
      respond(req);
      self.done_ = true;
    } else {
      fail(req, "ttvm dap: unsupported request '" + command + "'");
    }
  }
};

DapServer::DapServer(Timeline& timeline, DapServerOptions options)
    : timeline_(timeline),
      options_(std::move(options)),
      impl_(std::make_unique<Impl>(*this, timeline)) {}

DapServer::~DapServer() = default;

bool DapServer::isPause(std::string_view message) {
  const json m = json::parse(message, nullptr, /*allow_exceptions=*/false);
  return m.is_object() && m.contains("command") && m["command"] == "pause";
}

std::vector<std::string> DapServer::handle(std::string_view message) {
  impl_->out.clear();
  json req = json::parse(message, nullptr, /*allow_exceptions=*/false);
  if (req.is_discarded() || !req.is_object()) {
    impl_->console("ttvm dap: a message that is not a JSON object was ignored\n");
  } else if (req.value("type", "") != "request") {
    impl_->console("ttvm dap: a message that is not a request was ignored\n");
  } else {
    // nlohmann::json throws on a field of the wrong type; it stops here.
    try {
      impl_->dispatch(req);
    } catch (const nlohmann::json::exception& e) {
      impl_->out.clear();
      const json seq = req.contains("seq") && req["seq"].is_number() ? req["seq"] : json(0);
      const json command =
          req.contains("command") && req["command"].is_string() ? req["command"] : json("");
      impl_->fail(json{{"seq", seq}, {"command", command}},
                  std::string("ttvm dap: bad arguments: ") + e.what());
    }
  }
  return std::move(impl_->out);
}

}  // namespace ttvm
