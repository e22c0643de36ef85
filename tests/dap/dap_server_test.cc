// The DAP server (replayer/dap_server.h) driven message by message on a
// recording of the demo guest (guests/demo/README.md), and its framing
// (dap_transport.h). The positions it reports are checked against a second
// Timeline on the same trace: the end step, the last write to the corrupted
// field, the disassembly at RIP.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gdb_oracle.h"
#include "scripted_trace_support.h"
#include "ttvm/base/hex.h"
#include "ttvm/formats/trace_reader.h"
#include "ttvm/replayer/dap_server.h"
#include "ttvm/replayer/dap_transport.h"
#include "ttvm/replayer/timeline.h"

namespace ttvm {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string demoElf() {
  return std::string(TTVM_BUILD_DIR) + "/guests/demo/demo.elf";
}

// The demo recorded once by `ttvm record` for the whole test program.
const std::string& demoTrace() {
  static const std::string trace = [] {
    const std::string t = testing::tempTracePath("dap-demo");
    const std::string cmd =
        std::string(TTVM_BIN) + " record -o " + t + " " + demoElf() + " > /dev/null 2>&1";
    const int st = std::system(cmd.c_str());
    (void)st;  // the demo panics (status 6): only the trace matters
    return t;
  }();
  return trace;
}

// A DapServer on its own Timeline, with the messages it sent kept.
class DapSession {
 public:
  DapSession() {
    auto reader = TraceReader::open(demoTrace());
    EXPECT_TRUE(reader.ok()) << demoTrace();
    if (!reader.ok()) return;
    reader_ = std::make_unique<TraceReader>(std::move(*reader));
    auto tl = Timeline::open(*reader_);
    EXPECT_TRUE(tl.ok());
    if (!tl.ok()) return;
    timeline_ = std::move(*tl);
    server_ = std::make_unique<DapServer>(*timeline_, DapServerOptions{demoTrace()});
  }
  bool ok() const { return server_ != nullptr; }

  // Sends a request; returns everything the server answered with.
  std::vector<json> send(const std::string& command, json arguments = json::object()) {
    const json req{{"seq", seq_++},
                   {"type", "request"},
                   {"command", command},
                   {"arguments", std::move(arguments)}};
    std::vector<json> out;
    for (const std::string& m : server_->handle(req.dump())) out.push_back(json::parse(m));
    return out;
  }
  // The response to `command` (the first message), checked successful.
  json request(const std::string& command, json arguments = json::object()) {
    std::vector<json> out = send(command, std::move(arguments));
    EXPECT_FALSE(out.empty()) << command;
    if (out.empty()) return json::object();
    EXPECT_EQ(out[0].value("type", ""), "response") << out[0].dump();
    EXPECT_EQ(out[0].value("command", ""), command) << out[0].dump();
    EXPECT_TRUE(out[0].value("success", false)) << out[0].dump();
    last_ = out;
    return out[0];
  }
  // The stopped event the last request sent.
  json stopped() const {
    for (const json& m : last_)
      if (m.value("type", "") == "event" && m.value("event", "") == "stopped") return m["body"];
    ADD_FAILURE() << "no stopped event";
    return json::object();
  }
  // initialize, launch, configurationDone: at the end of the recording.
  void start() {
    request("initialize", json{{"adapterID", "ttvm"}});
    request("launch");
    request("configurationDone");
  }
  // The step `evaluate when` reports.
  uint64_t when() {
    const std::string r = request("evaluate", json{{"expression", "when"}})["body"]["result"];
    EXPECT_EQ(r.rfind("step ", 0), 0u) << r;
    return std::stoull(r.substr(5));
  }
  json frame0() {
    const json st = request("stackTrace", json{{"threadId", 1}})["body"]["stackFrames"];
    EXPECT_FALSE(st.empty());
    return st.empty() ? json::object() : st[0];
  }
  Timeline& timeline() { return *timeline_; }
  DapServer& server() { return *server_; }

 private:
  std::unique_ptr<TraceReader> reader_;
  std::unique_ptr<Timeline> timeline_;
  std::unique_ptr<DapServer> server_;
  std::vector<json> last_;
  int seq_ = 1;
};

// The oracle: a second timeline on the same trace.
struct Oracle {
  std::unique_ptr<TraceReader> reader;
  std::unique_ptr<Timeline> timeline;
  Oracle() {
    auto r = TraceReader::open(demoTrace());
    EXPECT_TRUE(r.ok());
    reader = std::make_unique<TraceReader>(std::move(*r));
    auto t = Timeline::open(*reader);
    EXPECT_TRUE(t.ok());
    timeline = std::move(*t);
    EXPECT_EQ(timeline->runToEnd().kind, StopKind::kHistoryEnd);
  }
};

uint64_t address(const json& ref) {
  return std::stoull(ref.get<std::string>(), nullptr, 0);
}

TEST(DapServer, InitializeAnswersTheCapabilitiesAndSendsInitialized) {
  DapSession s;
  ASSERT_TRUE(s.ok());
  const std::vector<json> out = s.send("initialize", json{{"adapterID", "ttvm"}});
  ASSERT_EQ(out.size(), 2u);
  const json& caps = out[0]["body"];
  for (const char* c :
       {"supportsStepBack", "supportsConfigurationDoneRequest", "supportsDataBreakpoints",
        "supportsDisassembleRequest", "supportsReadMemoryRequest", "supportsInstructionBreakpoints",
        "supportsFunctionBreakpoints"})
    EXPECT_TRUE(caps.value(c, false)) << c;
  EXPECT_EQ(out[1].value("event", ""), "initialized");
  EXPECT_GT(out[1].value("seq", 0), out[0].value("seq", 0));
}

TEST(DapServer, ConfigurationDoneStopsAtTheEndOfTheRecording) {
  DapSession s;
  ASSERT_TRUE(s.ok());
  s.start();
  EXPECT_EQ(s.stopped().value("reason", ""), "entry");
  EXPECT_EQ(s.stopped().value("threadId", 0), 1);
  Oracle o;
  EXPECT_EQ(s.when(), o.timeline->endStep());
  const json threads = s.request("threads")["body"]["threads"];
  ASSERT_EQ(threads.size(), 1u);
  EXPECT_EQ(threads[0].value("id", 0), 1);
}

TEST(DapServer, StackTraceAtTheCrashNamesPanicAndTheFaultingFunction) {
  DapSession s;
  ASSERT_TRUE(s.ok());
  s.start();
  const json frames = s.request("stackTrace", json{{"threadId", 1}})["body"]["stackFrames"];
  ASSERT_GE(frames.size(), 2u);
  // As gdb's bt there: outb inlined into halt_forever inlined into panic,
  // three frames at one instruction.
  EXPECT_EQ(frames[0]["name"], "outb") << frames.dump();
  EXPECT_EQ(frames[1]["name"], "halt_forever") << frames.dump();
  const std::string name2 = frames[2]["name"];
  EXPECT_EQ(name2.rfind("panic+", 0), 0u) << frames.dump();
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(address(frames[i]["instructionPointerReference"]), s.timeline().registers().rip);
  bool tableFind = false;
  for (const json& f : frames)
    if (f["name"].get<std::string>().rfind("table_find+", 0) == 0) {
      tableFind = true;
      ASSERT_TRUE(f.contains("source")) << f.dump();
      EXPECT_EQ(f["source"]["name"], "workload.c");
      EXPECT_GT(f.value("line", 0), 0);
    }
  EXPECT_TRUE(tableFind) << frames.dump();
  // Registers: rip as the timeline has it.
  json registers;
  const json scopes = s.request("scopes", json{{"frameId", 0}})["body"]["scopes"];
  for (const json& scope : scopes)
    if (scope["name"] == "Registers") registers = scope;
  ASSERT_TRUE(registers.is_object());
  const json vars =
      s.request("variables", json{{"variablesReference", registers["variablesReference"]}})["body"];
  bool rip = false;
  for (const json& v : vars["variables"])
    if (v["name"] == "rip") {
      rip = true;
      EXPECT_EQ(std::stoull(v["value"].get<std::string>(), nullptr, 0),
                s.timeline().registers().rip);
    }
  EXPECT_TRUE(rip) << vars.dump();
}

TEST(DapServer, InstructionGranularityStepsMoveOneStep) {
  DapSession s;
  ASSERT_TRUE(s.ok());
  s.start();
  const uint64_t end = s.when();
  const json one{{"threadId", 1}, {"granularity", "instruction"}};
  s.request("stepBack", one);
  EXPECT_EQ(s.stopped().value("reason", ""), "step");
  EXPECT_EQ(s.when(), end - 1);
  s.request("stepBack", one);
  EXPECT_EQ(s.when(), end - 2);
  s.request("stepIn", one);
  EXPECT_EQ(s.when(), end - 1);
  s.request("next", one);
  EXPECT_EQ(s.when(), end);
}

// The source line of the position `step` on the oracle.
std::optional<SourceLine> lineAt(Timeline& t, uint64_t step) {
  EXPECT_EQ(t.seek(step).kind, StopKind::kStepDone);
  return t.symbols().sourceLine(t.registers().rip);
}

// Statement steps from the corrupting store (key_dup, workload.c:64), checked
// against the oracle stepping one instruction at a time, and each backward
// step against the forward one it undoes.
TEST(DapServer, StatementStepsMoveByLinesAtOneDepth) {
  DapSession s;
  ASSERT_TRUE(s.ok());
  s.start();
  s.request("evaluate", json{{"expression", "last-write arena+0x2fa8:8"}});
  const uint64_t store = s.when();
  ASSERT_EQ(s.frame0().value("line", 0), 64);
  Oracle o;
  Timeline& t = *o.timeline;
  // next: the first position whose line is not 64 (the loop has no calls).
  s.request("next", json{{"threadId", 1}});
  EXPECT_EQ(s.stopped().value("reason", ""), "step");
  const uint64_t afterLoop = s.when();
  uint64_t expect = store + 1;
  while (lineAt(t, expect) && lineAt(t, expect)->line == 64) ++expect;
  EXPECT_EQ(afterLoop, expect);
  EXPECT_EQ(s.frame0()["name"].get<std::string>().rfind("key_dup+", 0), 0u);
  // next until key_dup returns: in table_insert, one frame fewer.
  const size_t depth = s.request("stackTrace", json{{"threadId", 1}})["body"]["stackFrames"].size();
  uint64_t previous = afterLoop;
  std::vector<uint64_t> stops = {afterLoop};
  for (int i = 0; i < 20 && s.frame0()["name"].get<std::string>().rfind("key_dup", 0) == 0; ++i) {
    s.request("next", json{{"threadId", 1}});
    EXPECT_GT(s.when(), previous);
    previous = s.when();
    stops.push_back(previous);
  }
  EXPECT_EQ(s.frame0()["name"].get<std::string>().rfind("table_insert+", 0), 0u) << s.frame0();
  EXPECT_EQ(s.request("stackTrace", json{{"threadId", 1}})["body"]["stackFrames"].size(),
            depth - 1);
  // stepBack from the caller skips key_dup: the position before its call,
  // from which next comes back here.
  const uint64_t inCaller = s.when();
  s.request("stepBack", json{{"threadId", 1}});
  const uint64_t callLine = s.when();
  EXPECT_LT(callLine, store);
  EXPECT_EQ(s.frame0()["name"].get<std::string>().rfind("table_insert+", 0), 0u) << s.frame0();
  s.request("next", json{{"threadId", 1}});
  EXPECT_EQ(s.when(), inCaller);
  // stepIn from the call line enters key_dup at its first line; stepBack
  // from there returns to the call line.
  s.request("evaluate", json{{"expression", "seek " + std::to_string(callLine)}});
  s.request("stepIn", json{{"threadId", 1}});
  EXPECT_EQ(s.frame0()["name"], "key_dup") << s.frame0();
  EXPECT_EQ(s.request("stackTrace", json{{"threadId", 1}})["body"]["stackFrames"].size(), depth);
  s.request("stepBack", json{{"threadId", 1}});
  EXPECT_EQ(s.when(), callLine);
  // stepOut from the store: back in table_insert, reason step.
  s.request("evaluate", json{{"expression", "seek " + std::to_string(store)}});
  s.request("stepOut", json{{"threadId", 1}});
  EXPECT_EQ(s.stopped().value("reason", ""), "step");
  EXPECT_GT(s.when(), store);
  EXPECT_EQ(s.frame0()["name"].get<std::string>().rfind("table_insert+", 0), 0u) << s.frame0();
  // stepBack with "into" (gdb's reverse-step; tests/replayer checks it
  // against gdb) from there: back in key_dup at the start of its last line
  // (66, the closing brace), after the store; the Debug Console's
  // "reverse-step" does the same; plain stepBack stays in table_insert.
  const uint64_t returned = s.when();
  s.request("stepBack", json{{"threadId", 1}, {"into", true}});
  EXPECT_EQ(s.stopped().value("reason", ""), "step");
  const uint64_t lastLine = s.when();
  EXPECT_GT(lastLine, store);
  EXPECT_LT(lastLine, returned);
  EXPECT_EQ(s.frame0()["name"].get<std::string>().rfind("key_dup+", 0), 0u) << s.frame0();
  EXPECT_EQ(s.frame0().value("line", 0), 66);
  s.request("evaluate", json{{"expression", "seek " + std::to_string(returned)}});
  s.request("evaluate", json{{"expression", "reverse-step"}});
  EXPECT_EQ(s.when(), lastLine);
  s.request("evaluate", json{{"expression", "seek " + std::to_string(returned)}});
  s.request("stepBack", json{{"threadId", 1}});
  EXPECT_LT(s.when(), store);
  EXPECT_EQ(s.frame0()["name"].get<std::string>().rfind("table_insert+", 0), 0u) << s.frame0();
  EXPECT_EQ(s.frame0().value("line", 0), 110);
}

// Locals at the corrupting store, as gdb prints them there ("key =
// 0x10cf98 \"id-0034:lookup\"", "i = 14", "n = <optimized out>", "copy =
// 0x111200 <arena+12192> \"id-0034:lookup\""), checked against the store's
// operands (mov [rcx+rax*1], dl: copy in RCX, i in RAX) and the README's
// story (round 34's alias; the last byte written is the NUL at i = 14).
TEST(DapServer, LocalsAtTheCorruptingStore) {
  DapSession s;
  ASSERT_TRUE(s.ok());
  s.start();
  s.request("evaluate", json{{"expression", "last-write arena+0x2fa8:8"}});
  const json scopes = s.request("scopes", json{{"frameId", 0}})["body"]["scopes"];
  ASSERT_FALSE(scopes.empty());
  ASSERT_EQ(scopes[0]["name"], "Locals") << scopes.dump();
  const json vars =
      s.request("variables",
                json{{"variablesReference", scopes[0]["variablesReference"]}})["body"]["variables"];
  std::map<std::string, json> byName;
  for (const json& v : vars) byName[v["name"]] = v;
  ASSERT_EQ(byName.size(), 4u) << vars.dump();
  const CpuState& cpu = s.timeline().registers();
  EXPECT_EQ(byName["key"]["type"], "const char *");
  EXPECT_NE(byName["key"]["value"].get<std::string>().find(" \"id-0034:lookup\""),
            std::string::npos)
      << byName["key"].dump();
  EXPECT_EQ(byName["i"]["value"], std::to_string(cpu.reg(Gpr::kRax)));
  EXPECT_EQ(byName["i"]["value"], "14");
  EXPECT_EQ(byName["n"]["value"], "<optimized out>");
  const uint64_t arena = *s.timeline().symbols().find("arena");
  EXPECT_EQ(byName["copy"]["value"], hex(cpu.reg(Gpr::kRcx)) + " <arena+" +
                                         std::to_string(cpu.reg(Gpr::kRcx) - arena) +
                                         "> \"id-0034:lookup\"");
  EXPECT_EQ(cpu.reg(Gpr::kRcx), arena + 0x2fa0);  // chunk Y; its next field is at +8
  // By name in the Debug Console or a hover.
  const json hover = s.request("evaluate", json{{"expression", "i"}, {"context", "hover"}})["body"];
  EXPECT_EQ(hover["result"], "14");
  EXPECT_EQ(hover["type"], "size_t");
  // Frame 1 has registers only: the trace's image is the 32-bit multiboot
  // container, whose CFI libdw reads with 4-byte addresses (no unwinding;
  // the test below loads the 64-bit debug ELF for that).
  const json up = s.request("scopes", json{{"frameId", 1}})["body"]["scopes"];
  ASSERT_FALSE(up.empty());
  EXPECT_NE(up[0]["name"], "Locals");
  // At the end: outb inlined into panic, its parameters optimized out (gdb:
  // "outb (value=<optimized out>, port=<optimized out>)").
  s.request("evaluate", json{{"expression", "seek end"}});
  const json end =
      s.request("variables",
                json{{"variablesReference", scopes[0]["variablesReference"]}})["body"]["variables"];
  ASSERT_EQ(end.size(), 2u) << end.dump();
  EXPECT_EQ(end[0]["name"], "value");
  EXPECT_EQ(end[1]["name"], "port");
  EXPECT_EQ(end[1]["value"], "<optimized out>");
}

// Callers' locals, their registers unwound through the CFI of the debug
// ELF (--symbols): at the corrupting store, table_insert's value is 10034
// (gdb: "table_insert (key=..., value=value@entry=10034)") and
// workload_run's round is 34 (guests/demo/README.md: round 34's alias);
// table_insert's key, in RBX, which key_dup does not touch (no CFI rule:
// it keeps its value, as gdb says), is key_dup's key.
TEST(DapServer, CallersLocalsThroughTheCfi) {
  DapSession s;
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s.timeline().addSymbolFile(demoElf() + ".elf").ok());
  s.start();
  s.request("evaluate", json{{"expression", "last-write arena+0x2fa8:8"}});
  const json frames = s.request("stackTrace", json{{"threadId", 1}})["body"]["stackFrames"];
  ASSERT_GE(frames.size(), 3u);
  auto localsOf = [&](int frame) {
    std::map<std::string, std::string> out;
    const json scopes = s.request("scopes", json{{"frameId", frame}})["body"]["scopes"];
    if (scopes.empty() || scopes[0]["name"] != "Locals") return out;
    const json vars = s.request(
        "variables",
        json{{"variablesReference", scopes[0]["variablesReference"]}})["body"]["variables"];
    for (const json& v : vars) out[v["name"]] = v["value"];
    return out;
  };
  EXPECT_EQ(localsOf(0)["i"], "14");
  ASSERT_EQ(frames[1]["name"].get<std::string>().rfind("table_insert+", 0), 0u);
  std::map<std::string, std::string> insert = localsOf(1);
  EXPECT_EQ(insert["value"], "10034");
  EXPECT_EQ(insert["key"], localsOf(0)["key"]);
  EXPECT_NE(insert["key"].find(" \"id-0034:lookup\""), std::string::npos) << insert["key"];
  ASSERT_EQ(frames[2]["name"].get<std::string>().rfind("workload_run+", 0), 0u);
  EXPECT_EQ(localsOf(2)["round"], "34");
}

// Inlined calls are frames of their own in stackTrace, as in gdb's bt: a
// hundred steps before the corrupting store, str_len (inlined into key_dup)
// is frame 0 and key_dup frame 1, at the same instruction, each on its own
// line; the frames' names and lines and the locals of the first three
// (str_len's, key_dup's, table_insert's) are gdb's there.
TEST(DapServer, InlinedFramesAndTheirLocalsMatchGdb) {
  const std::string gdb = TTVM_GDB_BIN;
  if (gdb.empty()) GTEST_SKIP() << "gdb not found: it is the oracle";
  DapSession s;
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s.timeline().addSymbolFile(demoElf() + ".elf").ok());
  s.start();
  s.request("evaluate", json{{"expression", "last-write arena+0x2fa8:8"}});
  const uint64_t step = s.when() - 100;
  s.request("evaluate", json{{"expression", "seek " + std::to_string(step)}});
  ASSERT_EQ(s.when(), step);
  const std::vector<std::string> cmds = testing::backtraceAndFrameCommands(3);
  std::string why;
  const auto out =
      testing::askGdb(TTVM_BIN, gdb, demoTrace(), demoElf() + ".elf", step, cmds, &why);
  ASSERT_TRUE(out.has_value()) << why;
  const auto gdbFrames = testing::parseGdbBacktrace(testing::gdbSection(*out, "bt"));
  ASSERT_GE(gdbFrames.size(), 4u) << *out;
  ASSERT_EQ(gdbFrames[0].function, "str_len") << *out;
  ASSERT_FALSE(gdbFrames[1].hasAddress) << *out;  // key_dup: str_len's caller, same pc
  const json frames = s.request("stackTrace", json{{"threadId", 1}})["body"]["stackFrames"];
  ASSERT_GE(frames.size(), gdbFrames.size()) << frames.dump();
  for (size_t i = 0; i < gdbFrames.size(); ++i) {
    SCOPED_TRACE("frame " + std::to_string(i));
    const std::string name = frames[i]["name"];
    EXPECT_EQ(name.substr(0, name.find('+')), gdbFrames[i].function);
    if (gdbFrames[i].line == 0) continue;
    EXPECT_EQ(frames[i].value("line", 0u), gdbFrames[i].line);
    EXPECT_EQ(frames[i]["source"].value("path", ""), gdbFrames[i].file);
  }
  EXPECT_EQ(frames[0]["instructionPointerReference"], frames[1]["instructionPointerReference"]);
  int compared = 0;
  for (int f = 0; f < 3; ++f) {
    std::multimap<std::string, std::string> ours;
    const json scopes = s.request("scopes", json{{"frameId", f}})["body"]["scopes"];
    ASSERT_FALSE(scopes.empty());
    ASSERT_EQ(scopes[0]["name"], "Locals") << "frame " << f;
    const json vars = s.request(
        "variables", json{{"variablesReference", scopes[0]["variablesReference"]}})["body"];
    for (const json& v : vars["variables"]) ours.emplace(v["name"], v["value"]);
    // gdb's "info args" and "info locals" after its "frame f".
    const size_t at = out->find("@@ frame " + std::to_string(f) + "\n");
    ASSERT_NE(at, std::string::npos) << *out;
    const size_t next = out->find("@@ frame ", at + 1);
    const std::string section =
        out->substr(at, next == std::string::npos ? std::string::npos : next - at);
    const auto gdbVars = testing::parseGdbVariables(section);
    for (const testing::GdbVariable& g : gdbVars) {
      SCOPED_TRACE("frame " + std::to_string(f) + " " + g.name + " = " + g.value);
      const auto [lo, hi] = ours.equal_range(g.name);
      auto has = [&](const std::string& value) {
        return std::any_of(lo, hi, [&](const auto& kv) { return kv.second == value; });
      };
      // A name gdb prints twice (str_len's n): one of its values is ours.
      if (!has(g.value) && std::any_of(gdbVars.begin(), gdbVars.end(), [&](const auto& o) {
            return o.name == g.name && o.value != g.value && has(o.value);
          }))
        continue;
      EXPECT_TRUE(has(g.value)) << vars.dump();
      ++compared;
    }
  }
  EXPECT_GE(compared, 8);
}

TEST(DapServer, ReverseContinueStopsAtAnInstructionBreakpoint) {
  DapSession s;
  ASSERT_TRUE(s.ok());
  s.start();
  const auto keyDup = s.timeline().symbols().find("key_dup");
  ASSERT_TRUE(keyDup.has_value());
  const json bps = s.request(
      "setInstructionBreakpoints",
      json{{"breakpoints",
            json::array({json{{"instructionReference", hex(*keyDup)}}})}})["body"]["breakpoints"];
  ASSERT_EQ(bps.size(), 1u);
  EXPECT_TRUE(bps[0].value("verified", false));
  s.request("reverseContinue", json{{"threadId", 1}});
  EXPECT_EQ(s.stopped().value("reason", ""), "instruction breakpoint");
  ASSERT_TRUE(s.stopped().contains("hitBreakpointIds"));
  EXPECT_EQ(s.stopped()["hitBreakpointIds"][0], bps[0]["id"]);
  EXPECT_EQ(address(s.frame0()["instructionPointerReference"]), *keyDup);
  const uint64_t hit = s.when();
  // The last call before the end: none between it and the end.
  Oracle o;
  o.timeline->addBreakpoint(*keyDup);
  ASSERT_EQ(o.timeline->seek(hit + 1).kind, StopKind::kStepDone);
  EXPECT_EQ(o.timeline->continueForward().kind, StopKind::kHistoryEnd);
}

TEST(DapServer, FunctionBreakpointThenStepOutReturnsToTheCaller) {
  DapSession s;
  ASSERT_TRUE(s.ok());
  s.start();
  const json bps = s.request(
      "setFunctionBreakpoints",
      json{{"breakpoints", json::array({json{{"name", "key_dup"}},
                                        json{{"name", "no_such_fn"}}})}})["body"]["breakpoints"];
  ASSERT_EQ(bps.size(), 2u);
  EXPECT_TRUE(bps[0].value("verified", false));
  EXPECT_FALSE(bps[1].value("verified", true));
  s.request("evaluate", json{{"expression", "seek begin"}});
  EXPECT_EQ(s.stopped().value("reason", ""), "goto");
  EXPECT_EQ(s.when(), 0u);
  s.request("continue", json{{"threadId", 1}});
  EXPECT_EQ(s.stopped().value("reason", ""), "function breakpoint");
  EXPECT_EQ(s.frame0()["name"], "key_dup");
  s.request("setFunctionBreakpoints", json{{"breakpoints", json::array()}});
  s.request("stepOut", json{{"threadId", 1}});
  const std::string caller = s.frame0()["name"];
  EXPECT_EQ(caller.rfind("table_insert+", 0), 0u) << caller;
}

TEST(DapServer, DataBreakpointReverseContinueLandsOnTheCorruptingStore) {
  DapSession s;
  ASSERT_TRUE(s.ok());
  s.start();
  // Y's next field, arena+0x2fa8 (guests/demo/README.md).
  const json info = s.request("dataBreakpointInfo", json{{"name", "arena+0x2fa8:8"}})["body"];
  ASSERT_TRUE(info["dataId"].is_string()) << info.dump();
  const json set = s.request(
      "setDataBreakpoints",
      json{{"breakpoints",
            json::array({json{{"dataId", info["dataId"]}, {"accessType", "write"}}})}})["body"];
  ASSERT_EQ(set["breakpoints"].size(), 1u);
  EXPECT_TRUE(set["breakpoints"][0].value("verified", false));
  s.request("reverseContinue", json{{"threadId", 1}});
  EXPECT_EQ(s.stopped().value("reason", ""), "data breakpoint");
  const uint64_t step = s.when();
  Oracle o;
  const uint64_t field = *o.timeline->symbols().find("arena") + 0x2fa8;
  auto hit = o.timeline->lastWrite(field, 8, false, true);
  ASSERT_TRUE(hit.ok() && hit->has_value());
  EXPECT_EQ(step, (**hit).step);
  const json f = s.frame0();
  EXPECT_EQ(f["name"].get<std::string>().rfind("key_dup+", 0), 0u) << f.dump();
  ASSERT_TRUE(f.contains("source")) << f.dump();
  EXPECT_EQ(f["source"]["name"], "workload.c");
  EXPECT_EQ(f.value("line", 0), 64);  // KEY_DUP_STORE
  // The frames above it: table_insert called key_dup.
  const json frames = s.request("stackTrace", json{{"threadId", 1}})["body"]["stackFrames"];
  ASSERT_GE(frames.size(), 2u);
  EXPECT_EQ(frames[1]["name"].get<std::string>().rfind("table_insert+", 0), 0u) << frames.dump();
  // Again: the write before it, the same store one byte lower.
  s.request("reverseContinue", json{{"threadId", 1}});
  EXPECT_EQ(s.stopped().value("reason", ""), "data breakpoint");
  EXPECT_LT(s.when(), step);
  EXPECT_EQ(address(s.frame0()["instructionPointerReference"]), o.timeline->registers().rip);
  // Forward from there: the write just left behind.
  s.request("continue", json{{"threadId", 1}});
  EXPECT_EQ(s.stopped().value("reason", ""), "data breakpoint");
}

TEST(DapServer, PageFaultFilterReverseContinueStopsAtTheFaultingLoad) {
  DapSession s;
  ASSERT_TRUE(s.ok());
  const json init = s.request("initialize", json{{"adapterID", "ttvm"}})["body"];
  ASSERT_TRUE(init.contains("exceptionBreakpointFilters"));
  s.request("launch");
  const json set = s.request("setExceptionBreakpoints",
                             json{{"filters", json::array({"pf", "no-such-filter"})}})["body"];
  ASSERT_EQ(set["breakpoints"].size(), 2u);
  EXPECT_TRUE(set["breakpoints"][0].value("verified", false));
  EXPECT_FALSE(set["breakpoints"][1].value("verified", true));
  s.request("configurationDone");
  s.request("reverseContinue", json{{"threadId", 1}});
  EXPECT_EQ(s.stopped().value("reason", ""), "exception");
  const json info = s.request("exceptionInfo", json{{"threadId", 1}})["body"];
  EXPECT_EQ(info["exceptionId"], "#PF");
  // The chain walk's load from the stale entry (guests/demo/README.md:
  // TABLE_FIND_WALK, workload.c:99), with RCX = "lookup" read as a pointer.
  const json f = s.frame0();
  EXPECT_EQ(f["name"].get<std::string>().rfind("table_find+", 0), 0u) << f.dump();
  EXPECT_EQ(f.value("line", 0), 99);
  EXPECT_EQ(s.timeline().registers().reg(Gpr::kRcx), 0x000070756b6f6f6cull);
  Oracle o;
  o.timeline->setExceptionStops(1u << 14);
  const StopReason r = o.timeline->reverseContinue();
  EXPECT_EQ(r.kind, StopKind::kException);
  EXPECT_EQ(s.when(), r.step);
  // Without the filter the same move runs to the start of the recording.
  s.request("setExceptionBreakpoints", json{{"filters", json::array()}});
  s.request("evaluate", json{{"expression", "seek end"}});
  s.request("reverseContinue", json{{"threadId", 1}});
  EXPECT_EQ(s.when(), 0u);
  EXPECT_FALSE(s.send("exceptionInfo", json{{"threadId", 1}})[0].value("success", true));
}

TEST(DapServer, ReadMemoryAndDisassembleAtTheCorruptingStore) {
  DapSession s;
  ASSERT_TRUE(s.ok());
  s.start();
  const json value = s.request("evaluate", json{{"expression", "arena+0x2fa8"}})["body"];
  const json mem = s.request(
      "readMemory", json{{"memoryReference", value["memoryReference"]}, {"count", 8}})["body"];
  EXPECT_EQ(mem["data"], "bG9va3VwAAA=");  // base64 of "lookup\0\0"
  EXPECT_FALSE(mem.contains("unreadableBytes"));
  s.request("evaluate", json{{"expression", "last-write arena+0x2fa8:8"}});
  EXPECT_EQ(s.stopped().value("reason", ""), "goto");
  const json f = s.frame0();
  const json ins =
      s.request("disassemble", json{{"memoryReference", f["instructionPointerReference"]},
                                    {"instructionOffset", -2},
                                    {"instructionCount", 5}})["body"]["instructions"];
  ASSERT_EQ(ins.size(), 5u);
  Oracle o;
  const uint64_t field = *o.timeline->symbols().find("arena") + 0x2fa8;
  ASSERT_TRUE(o.timeline->lastWrite(field, 8, false, true).ok());
  const uint64_t rip = o.timeline->registers().rip;
  EXPECT_EQ(address(ins[2]["address"]), rip);
  EXPECT_EQ(ins[2]["instruction"], o.timeline->session().disassembleAt(rip));
  EXPECT_EQ(ins[2]["instructionBytes"], "881401");  // mov [rcx+rax*1], dl
  EXPECT_LT(address(ins[1]["address"]), rip);
  EXPECT_GT(address(ins[3]["address"]), rip);
  // Unmapped memory is reported as such.
  const json none =
      s.request("readMemory", json{{"memoryReference", "0x70756b6f6f6c"}, {"count", 16}})["body"];
  EXPECT_EQ(none.value("unreadableBytes", 0), 16);
  EXPECT_FALSE(none.contains("data"));
}

// "Breakpoint N at 0xADDR: file F, line L." -> (ADDR, L) from stock gdb.
std::optional<std::pair<uint64_t, int>> gdbBreakpoint(const std::string& where) {
  const std::string cmd =
      std::string(TTVM_GDB_BIN) + " -nx -batch -ex 'break " + where + "' " + demoElf() + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return std::nullopt;
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, p) != nullptr) out += buf;
  pclose(p);
  const size_t at = out.find(" at 0x");
  const size_t line = out.find(", line ");
  if (at == std::string::npos || line == std::string::npos) return std::nullopt;
  return std::make_pair(std::stoull(out.substr(at + 4), nullptr, 16),
                        std::stoi(out.substr(line + 7)));
}

TEST(DapServer, SourceBreakpointsGoWhereGdbPutsThem) {
  if (std::string(TTVM_GDB_BIN).empty()) GTEST_SKIP() << "gdb not found: it is the oracle";
  DapSession s;
  ASSERT_TRUE(s.ok());
  s.start();
  // 142 has no code of its own (TABLE_PRUNE_BUG): gdb moves it to the next line that has.
  const std::vector<int> lines = {63, 64, 99, 134, 142};
  json wanted = json::array();
  for (int l : lines) wanted.push_back(json{{"line", l}});
  // Another checkout's path: matched by its trailing components.
  const json bps = s.request("setBreakpoints",
                             json{{"source", json{{"path", "/elsewhere/guests/demo/workload.c"}}},
                                  {"breakpoints", wanted}})["body"]["breakpoints"];
  ASSERT_EQ(bps.size(), lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto gdb = gdbBreakpoint("workload.c:" + std::to_string(lines[i]));
    ASSERT_TRUE(gdb.has_value()) << "gdb placed no breakpoint at line " << lines[i];
    EXPECT_TRUE(bps[i].value("verified", false)) << bps[i].dump();
    EXPECT_EQ(address(bps[i]["instructionReference"]), gdb->first) << "line " << lines[i];
    EXPECT_EQ(bps[i].value("line", 0), gdb->second) << "line " << lines[i];
  }
  // Each source keeps its own set: clear that one, set line 64 (the store)
  // on another spelling; reverse continue from the crash: the last time it ran.
  s.request("setBreakpoints", json{{"source", json{{"path", "/elsewhere/guests/demo/workload.c"}}},
                                   {"breakpoints", json::array()}});
  s.request("setBreakpoints", json{{"source", json{{"path", "workload.c"}}},
                                   {"breakpoints", json::array({json{{"line", 64}}})}});
  s.request("reverseContinue", json{{"threadId", 1}});
  EXPECT_EQ(s.stopped().value("reason", ""), "breakpoint");
  const json f = s.frame0();
  EXPECT_EQ(f.value("line", 0), 64) << f.dump();
  EXPECT_EQ(f["name"].get<std::string>().rfind("key_dup+", 0), 0u) << f.dump();
  // Replacing the file's set with none: reverse continue runs to the start.
  const json none =
      s.request("setBreakpoints", json{{"source", json{{"path", "workload.c"}}},
                                       {"breakpoints", json::array()}})["body"]["breakpoints"];
  EXPECT_TRUE(none.empty());
  s.request("reverseContinue", json{{"threadId", 1}});
  EXPECT_EQ(s.when(), 0u);
}

TEST(DapServer, LinesWithoutCodeAreUnverifiedAndBadRequestsFail) {
  DapSession s;
  ASSERT_TRUE(s.ok());
  s.start();
  const json bps =
      s.request("setBreakpoints",
                json{{"source", json{{"path", "workload.c"}}},
                     {"breakpoints", json::array({json{{"line", 99999}}})}})["body"]["breakpoints"];
  ASSERT_EQ(bps.size(), 1u);
  EXPECT_FALSE(bps[0].value("verified", true));
  EXPECT_TRUE(bps[0].contains("message"));
  const json other =
      s.request("setBreakpoints",
                json{{"source", json{{"path", "/no/such/file.c"}}},
                     {"breakpoints", json::array({json{{"line", 10}}})}})["body"]["breakpoints"];
  EXPECT_FALSE(other[0].value("verified", true));
  std::vector<json> out = s.send("frobnicate");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].value("success", true));
  out = s.send("evaluate", json{{"expression", "seek 99999999999"}});
  EXPECT_FALSE(out[0].value("success", true));
  out = s.send("stackTrace", json{{"startFrame", "x"}});  // a field of the wrong type
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].value("success", true)) << out[0].dump();
  out = s.send("dataBreakpointInfo", json{{"name", "no_such_symbol"}});
  EXPECT_TRUE(out[0]["body"]["dataId"].is_null()) << out[0].dump();
}

// A client of serveDap over two pipes.
class PipeClient {
 public:
  explicit PipeClient(DapServer& server) {
    EXPECT_EQ(pipe(toServer_), 0);
    EXPECT_EQ(pipe(fromServer_), 0);
    thread_ = std::thread([this, &server] {
      status_ = serveDap(toServer_[0], fromServer_[1], server);
      close(fromServer_[1]);
    });
  }
  ~PipeClient() {
    close(toServer_[1]);
    thread_.join();
    close(toServer_[0]);
    close(fromServer_[0]);
  }
  // Sends the requests in one write (so the server reads them together).
  void send(const std::vector<std::pair<std::string, json>>& requests) {
    std::string bytes;
    for (const auto& [command, args] : requests)
      bytes += dapFrame(
          json{{"seq", seq_++}, {"type", "request"}, {"command", command}, {"arguments", args}}
              .dump());
    ASSERT_EQ(write(toServer_[1], bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  // The next message from the server (an empty object at end of stream).
  json next() {
    for (;;) {
      auto m = framer_.next();
      EXPECT_TRUE(m.ok());
      if (!m.ok()) return json::object();
      if (m->has_value()) return json::parse(**m);
      char buf[4096];
      const ssize_t n = read(fromServer_[0], buf, sizeof buf);
      if (n <= 0) return json::object();
      framer_.feed(std::string_view(buf, static_cast<size_t>(n)));
    }
  }
  // Messages up to and including the first that `last` accepts.
  std::vector<json> until(const std::function<bool(const json&)>& last) {
    std::vector<json> out;
    for (json m = next(); !m.empty(); m = next()) {
      out.push_back(m);
      if (last(m)) break;
    }
    return out;
  }
  const Status& status() const { return status_; }

 private:
  int toServer_[2] = {-1, -1};
  int fromServer_[2] = {-1, -1};
  std::thread thread_;
  Status status_;
  DapFramer framer_;
  int seq_ = 1;
};

bool isStopped(const json& m) {
  return m.value("event", "") == "stopped";
}

// A pause read together with the motion before it stops that motion (at
// once: it came before the motion began), and the next motion runs.
TEST(DapTransport, PauseStopsTheMotionBeforeIt) {
  DapSession s;
  ASSERT_TRUE(s.ok());
  {
    PipeClient c(s.server());
    c.send({{"initialize", json::object()},
            {"launch", json::object()},
            {"configurationDone", json::object()}});
    std::vector<json> out = c.until(isStopped);
    ASSERT_FALSE(out.empty());
    EXPECT_EQ(out.back()["body"].value("reason", ""), "entry");
    const uint64_t end = s.timeline().endStep();
    c.send({{"reverseContinue", json{{"threadId", 1}}}, {"pause", json{{"threadId", 1}}}});
    out = c.until([](const json& m) { return m.value("command", "") == "pause"; });
    ASSERT_GE(out.size(), 3u);
    EXPECT_EQ(out[0].value("command", ""), "reverseContinue");
    EXPECT_TRUE(isStopped(out[1]));
    EXPECT_EQ(out[1]["body"].value("reason", ""), "pause");
    EXPECT_TRUE(out.back().value("success", false));
    EXPECT_GT(s.timeline().now(), 0u);  // it did not run to the start
    EXPECT_LE(s.timeline().now(), end);
    // Without a pause the same move runs to the start of the recording.
    c.send({{"reverseContinue", json{{"threadId", 1}}}});
    out = c.until(isStopped);
    ASSERT_FALSE(out.empty());
    EXPECT_EQ(out.back()["body"].value("reason", ""), "step");
    EXPECT_EQ(s.timeline().now(), 0u);
    c.send({{"disconnect", json::object()}});
    out = c.until([](const json& m) { return m.value("command", "") == "disconnect"; });
    ASSERT_FALSE(out.empty());
    EXPECT_TRUE(out.back().value("success", false));
  }
}

TEST(DapTransport, FramerSplitsAndJoinsMessages) {
  DapFramer f;
  const std::string a = dapFrame(R"({"a":1})");
  const std::string b = dapFrame(R"({"b":22})");
  EXPECT_EQ(a, "Content-Length: 7\r\n\r\n{\"a\":1}");
  f.feed(a.substr(0, 10));
  auto m = f.next();
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(m->has_value());
  f.feed(a.substr(10) + b + "Content-Type: x\r\nContent-Length: 2\r\n\r\n{}");
  m = f.next();
  ASSERT_TRUE(m.ok() && m->has_value());
  EXPECT_EQ(**m, R"({"a":1})");
  m = f.next();
  ASSERT_TRUE(m.ok() && m->has_value());
  EXPECT_EQ(**m, R"({"b":22})");
  m = f.next();
  ASSERT_TRUE(m.ok() && m->has_value());
  EXPECT_EQ(**m, "{}");
  f.feed("Content-Size: 3\r\n\r\n");
  m = f.next();
  EXPECT_FALSE(m.ok());
}

}  // namespace
}  // namespace ttvm
