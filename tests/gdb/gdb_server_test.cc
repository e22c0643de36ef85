// GdbServer packet by packet on a scripted real-mode trace (the replayer's
// test program): every reply checked against the Timeline itself, malformed
// packets included; then the socket transport with acks, NAKs and Ctrl-C.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>

#include "scripted_trace_support.h"
#include "ttvm/formats/trace_reader.h"
#include "ttvm/replayer/gdb_protocol.h"
#include "ttvm/replayer/gdb_server.h"
#include "ttvm/replayer/gdb_transport.h"
#include "ttvm/replayer/timeline.h"

namespace ttvm {
namespace {

using testing::ScriptedTrace;

class GdbServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    testing::ScriptedTraceOptions o;
    o.iterations = 4000;
    auto t = testing::buildScriptedTrace(testing::tempTracePath("gdb"), o);
    ASSERT_TRUE(t.ok()) << t.error().message;
    trace_ = new ScriptedTrace(std::move(t).value());
    auto r = TraceReader::open(trace_->path);
    ASSERT_TRUE(r.ok());
    reader_ = new TraceReader(std::move(r).value());
  }
  static void TearDownTestSuite() {
    std::remove(trace_->path.c_str());
    delete reader_;
    delete trace_;
  }
  void SetUp() override {
    TimelineOptions o;
    o.checkpointInterval = 4096;
    o.checkpointMemBytes = 64ull << 20;
    auto t = Timeline::open(*reader_, o);
    ASSERT_TRUE(t.ok()) << t.error().message;
    timeline_ = std::move(t).value();
    server_ = std::make_unique<GdbServer>(*timeline_);
  }
  // Clears the cancel flag first, as the transport does for each request.
  std::string ask(std::string_view p) {
    server_->cancelFlag().store(false);
    return server_->handle(p).payload;
  }
  std::string monitor(std::string_view cmd, std::string* console = nullptr) {
    server_->cancelFlag().store(false);
    GdbReply r = server_->handle("qRcmd," + gdbHexEncode(cmd));
    if (console != nullptr) {
      console->clear();
      for (const auto& c : r.console) *console += c;
    }
    return r.payload;
  }
  // Holds each motion in its progress callback until an interrupt sets the
  // cancel flag (or `hold` is cleared), `limit` in all, so that an interrupt
  // always arrives mid-motion.
  void holdMotionsForInterrupt(std::chrono::seconds limit,
                               const std::atomic<bool>* hold = nullptr) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    server_->setProgress([this, deadline, hold](uint64_t, uint64_t) {
      while ((hold == nullptr || hold->load()) && !server_->cancelFlag().load() &&
             std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
  }
  static ScriptedTrace* trace_;
  static TraceReader* reader_;
  std::unique_ptr<Timeline> timeline_;
  std::unique_ptr<GdbServer> server_;
};
ScriptedTrace* GdbServerTest::trace_ = nullptr;
TraceReader* GdbServerTest::reader_ = nullptr;

std::string le32(uint64_t v) {
  std::string s;
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  return gdbHexEncode(std::string_view(s));
}

TEST_F(GdbServerTest, AdvertisesFeatures) {
  EXPECT_EQ(ask("qSupported:multiprocess+;swbreak+;hwbreak+;xmlRegisters=i386"),
            "PacketSize=4000;qXfer:features:read+;ReverseStep+;ReverseContinue+;swbreak+;"
            "hwbreak+");
  EXPECT_EQ(ask("qAttached"), "1");
  EXPECT_EQ(ask("qC"), "QC1");
  EXPECT_EQ(ask("qfThreadInfo"), "m1");
  EXPECT_EQ(ask("qsThreadInfo"), "l");
  EXPECT_EQ(ask("qSymbol::"), "OK");
  EXPECT_EQ(ask("Hg0"), "OK");
  EXPECT_EQ(ask("T1"), "OK");
  EXPECT_EQ(ask("vCont?"), "vCont;c;C;s;S");
  EXPECT_EQ(ask("?"), "T05thread:1;");
  EXPECT_EQ(ask("vMustReplyEmpty"), "");
  EXPECT_EQ(ask("qTStatus"), "");
}

TEST_F(GdbServerTest, TargetXmlInChunks) {
  // Real mode, and the run ends in real mode: i386.
  std::string xml;
  for (uint64_t off = 0;;) {
    const std::string r = ask("qXfer:features:read:target.xml:" + gdbHexU64(off) + ",100");
    ASSERT_FALSE(r.empty());
    ASSERT_TRUE(r[0] == 'm' || r[0] == 'l') << r;
    xml += r.substr(1);
    off += r.size() - 1;
    if (r[0] == 'l') break;
  }
  EXPECT_EQ(xml, gdbTargetXml(GdbArch::kI386));
  EXPECT_EQ(server_->arch(), GdbArch::kI386);
  EXPECT_EQ(ask("qXfer:features:read:target.xml:ffffff,100"), "l");
  EXPECT_EQ(ask("qXfer:features:read:other.xml:0,100").substr(0, 1), "E");
  EXPECT_EQ(ask("qXfer:features:read:target.xml:zz,100"), "E01");
  EXPECT_EQ(ask("qXfer:features:read:target.xml"), "E01");
}

TEST_F(GdbServerTest, RegistersMatchTheTimeline) {
  ASSERT_EQ(timeline_->step(1000).kind, StopKind::kStepDone);
  const CpuState& s = timeline_->registers();
  const std::string g = ask("g");
  size_t bytes = 0;
  for (const auto& r : gdbRegisters(GdbArch::kI386)) bytes += r.bits / 8;
  ASSERT_EQ(g.size(), bytes * 2);
  EXPECT_EQ(g.substr(0, 8), le32(s.reg(Gpr::kRax)));
  EXPECT_EQ(g.substr(8, 8), le32(s.reg(Gpr::kRcx)));
  EXPECT_EQ(g.substr(8 * 8, 8), le32(s.rip));
  EXPECT_EQ(g.substr(9 * 8, 8), le32(s.rflags));
  EXPECT_EQ(ask("p8"), le32(s.rip));
  EXPECT_EQ(ask("p4"), le32(s.reg(Gpr::kRsp)));
  // cr0 is the first org.ttvm.sys register.
  const auto& regs = gdbRegisters(GdbArch::kI386);
  size_t cr0 = 0;
  while (regs[cr0].name != "cr0") ++cr0;
  EXPECT_EQ(ask("p" + gdbHexU64(cr0)).substr(0, 8), le32(s.cr0));
  EXPECT_EQ(ask("pzz"), "E01");
  EXPECT_EQ(ask("p"), "E01");
  EXPECT_EQ(ask("p3e8").substr(0, 1), "E");
}

TEST_F(GdbServerTest, WritesAreRefused) {
  const std::string g = ask("g");
  std::vector<uint8_t> before(2);
  ASSERT_TRUE(timeline_->readLinear(0x500, before));
  // Writes get "E." + a text that says why, with or without error-message+
  // (E.text is a standard reply to G, P, M and X).
  for (const std::string& p : {"G" + g, std::string("P0=01000000"), std::string("M500,2:0000"),
                               std::string("X500,2:ab"), std::string("X500,0:")}) {
    const std::string e = ask(p);
    EXPECT_EQ(e.rfind("E.ttvm: the recorded history is read-only; a replay cannot write ", 0), 0u)
        << p << " -> " << e;
    EXPECT_NE(e.find(p[0] == 'G' || p[0] == 'P' ? "registers" : "memory"), std::string::npos) << e;
  }
  for (const std::string& p : {std::string("c1000"), std::string("s1000")})
    EXPECT_EQ(ask(p), "E01") << p;
  EXPECT_EQ(ask("g"), g);  // nothing changed
  std::vector<uint8_t> after(2);
  ASSERT_TRUE(timeline_->readLinear(0x500, after));
  EXPECT_EQ(after, before);
  // With error-message+ the other refusals carry text too.
  ask("qSupported:error-message+");
  const std::string e = ask("c1000");
  EXPECT_EQ(e.rfind("E.", 0), 0u) << e;
}

TEST_F(GdbServerTest, MemoryReads) {
  std::vector<uint8_t> prog(16);
  ASSERT_TRUE(timeline_->readLinear(testing::kProgStart, prog));
  EXPECT_EQ(ask("m1000,10"), gdbHexEncode(prog));
  EXPECT_EQ(ask("m1000,0"), "");
  // Beyond RAM (2 MiB) with paging off: nothing there.
  EXPECT_EQ(ask("m40000000,4"), "E14");
  // A read that starts in RAM and runs past its end returns the prefix.
  const std::string tail = ask("m1ffff8,10");
  EXPECT_EQ(tail.size(), 16u) << tail;
  for (const char* bad : {"m", "m1000", "mzz,4", "m1000,", "m,4", "m1000,zz"})
    EXPECT_EQ(ask(bad), "E01") << bad;
}

TEST_F(GdbServerTest, BreakpointsBothDirections) {
  const std::string bp = "Z0," + gdbHexU64(testing::kProgStoreInsn) + ",1";
  EXPECT_EQ(ask(bp), "OK");
  EXPECT_EQ(ask(bp), "OK");  // again: still one
  EXPECT_EQ(ask("c"), "T05swbreak:;thread:1;");
  EXPECT_EQ(timeline_->registers().rip, testing::kProgStoreInsn);
  const uint64_t first = timeline_->now();
  EXPECT_EQ(ask("c"), "T05swbreak:;thread:1;");
  const uint64_t second = timeline_->now();
  EXPECT_GT(second, first);
  EXPECT_EQ(ask("bc"), "T05swbreak:;thread:1;");
  EXPECT_EQ(timeline_->now(), first);
  // Stepping off and back.
  EXPECT_EQ(ask("s"), "T05thread:1;");
  EXPECT_EQ(timeline_->now(), first + 1);
  EXPECT_EQ(ask("bs"), "T05swbreak:;thread:1;");  // lands on the breakpoint again
  EXPECT_EQ(timeline_->now(), first);
  EXPECT_EQ(ask("bc"), "T05replaylog:begin;thread:1;");
  EXPECT_EQ(timeline_->now(), timeline_->beginStep());
  EXPECT_EQ(ask("bs"), "T05replaylog:begin;thread:1;");
  // Hardware breakpoints report hwbreak; removal works.
  EXPECT_EQ(ask("z0," + gdbHexU64(testing::kProgStoreInsn) + ",1"), "OK");
  EXPECT_EQ(ask("Z1," + gdbHexU64(testing::kProgHandler) + ",1"), "OK");
  EXPECT_EQ(ask("vCont;c:1"), "T05hwbreak:;thread:1;");
  EXPECT_EQ(timeline_->registers().rip, testing::kProgHandler);
  EXPECT_EQ(ask("z1," + gdbHexU64(testing::kProgHandler) + ",1"), "OK");
  EXPECT_EQ(ask("vCont;c"), "T05replaylog:end;thread:1;");
  EXPECT_EQ(timeline_->now(), timeline_->endStep());
  EXPECT_EQ(ask("s"), "T05replaylog:end;thread:1;");
  const uint64_t end = timeline_->now();
  EXPECT_EQ(ask("vCont;s:1"), "T05replaylog:end;thread:1;");
  EXPECT_EQ(ask("bs"), "T05thread:1;");
  EXPECT_EQ(timeline_->now(), end - 1);
  EXPECT_EQ(ask("vCont;s"), "T05thread:1;");
  EXPECT_EQ(timeline_->now(), end);
  EXPECT_EQ(ask("?"), "T05thread:1;");
}

TEST_F(GdbServerTest, WatchpointsBothDirections) {
  // The interrupt handler does mov ax,[0x500]; inc ax; mov [0x500],ax.
  EXPECT_EQ(ask("Z2,500,2"), "OK");
  EXPECT_EQ(ask("c"), "T05watch:500;thread:1;");
  const uint64_t after = timeline_->now();
  // Forward: stopped after the store.
  std::vector<uint8_t> counter(2);
  ASSERT_TRUE(timeline_->readLinear(testing::kIrqCounter, counter));
  EXPECT_EQ(counter[0] | (counter[1] << 8), 1);
  EXPECT_EQ(ask("c"), "T05watch:500;thread:1;");
  const uint64_t after2 = timeline_->now();
  EXPECT_GT(after2, after);
  // Backward: at the store instruction, before it ran.
  EXPECT_EQ(ask("bc"), "T05watch:500;thread:1;");
  EXPECT_EQ(timeline_->registers().rip, testing::kProgCounterStore);
  EXPECT_EQ(timeline_->now(), after2 - 1);
  EXPECT_EQ(ask("bc"), "T05watch:500;thread:1;");
  EXPECT_EQ(timeline_->now(), after - 1);
  EXPECT_EQ(ask("z2,500,2"), "OK");
  // A read watchpoint on the same word: the load before it.
  EXPECT_EQ(ask("Z3,500,2"), "OK");
  EXPECT_EQ(ask("bc"), "T05rwatch:500;thread:1;");
  EXPECT_EQ(ask("z3,500,2"), "OK");
  // Access watchpoint of an odd length covering the counter's high byte.
  EXPECT_EQ(ask("Z4,501,3"), "OK");
  const std::string r = ask("c");
  EXPECT_EQ(r, "T05awatch:501;thread:1;");
  EXPECT_EQ(ask("z4,501,3"), "OK");
}

TEST_F(GdbServerTest, MalformedPacketsNeverCrash) {
  for (const char* p : {"Z0", "Z0,", "Z0,zz,1", "Z0,1000", "Z2,500,0", "z0,,", "Z0x1000,1",
                        "vCont;x", "vCont;", "qRcmd,zz", "qRcmd,6", "T"})
    EXPECT_EQ(ask(p).substr(0, 1), "E") << p;
  for (const char* p : {"Z9,1000,1", "J", "qFoo", "vFoo", "bz", "!", "", "\x01\xff"})
    EXPECT_EQ(ask(p), "") << p;
  EXPECT_EQ(ask("?"), "T05thread:1;");
}

TEST_F(GdbServerTest, MonitorCommands) {
  std::string out;
  EXPECT_EQ(monitor("help", &out), "OK");
  EXPECT_NE(out.find("last-write"), std::string::npos);
  EXPECT_EQ(monitor("seek 5000", &out), "OK");
  EXPECT_EQ(timeline_->now(), 5000u);
  EXPECT_NE(out.find("step 5000"), std::string::npos) << out;
  EXPECT_EQ(monitor("when", &out), "OK");
  EXPECT_EQ(out, "step 5000 (history 0.." + std::to_string(timeline_->endStep()) + ")\n");
  EXPECT_EQ(monitor("seek end"), "OK");
  EXPECT_EQ(timeline_->now(), timeline_->endStep());
  EXPECT_EQ(monitor("last-write 0x500:2", &out), "OK");
  EXPECT_EQ(timeline_->registers().rip, testing::kProgCounterStore) << out;
  EXPECT_NE(out.find("before step " + std::to_string(timeline_->endStep()) + ": step " +
                     std::to_string(timeline_->now())),
            std::string::npos)
      << out;
  // The same range as an expression with spaces, and over a symbol of a
  // --symbols file (a System.map here).
  const uint64_t store = timeline_->now();
  EXPECT_EQ(monitor("seek end"), "OK");
  EXPECT_EQ(monitor("last-write 0x400 + 0x80*2 : 1+1", &out), "OK");
  EXPECT_EQ(timeline_->now(), store) << out;
  const std::string map = testing::tempTracePath("gdb-expr-map");
  FILE* f = std::fopen(map.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fprintf(f, "00000000000004f0 D counter_page\n");
  std::fclose(f);
  ASSERT_TRUE(timeline_->addSymbolFile(map).ok());
  std::remove(map.c_str());
  EXPECT_EQ(monitor("seek end"), "OK");
  EXPECT_EQ(monitor("last-write counter_page+0x10:2", &out), "OK");
  EXPECT_EQ(timeline_->now(), store) << out;
  EXPECT_NE(out.find("last write to [0x500, 0x502)"), std::string::npos) << out;
  EXPECT_EQ(monitor("last-write counter_pag+0x10:2", &out).substr(0, 1), "E");
  EXPECT_EQ(out,
            "last-write: in 'counter_pag+0x10:2' at offset 0: 'counter_pag' is not a guest "
            "symbol\n");
  EXPECT_EQ(monitor("seek 0"), "OK");
  EXPECT_EQ(monitor("last-write 0x500:2", &out), "OK");
  EXPECT_NE(out.find("no write"), std::string::npos) << out;
  EXPECT_EQ(monitor("seek 99999999999", &out).substr(0, 1), "E");
  EXPECT_NE(out.find("outside the history"), std::string::npos);
  for (const char* bad : {"seek", "seek x", "last-write", "last-write nosuchsymbol",
                          "last-write 0x500:0", "frobnicate"})
    EXPECT_EQ(monitor(bad).substr(0, 1), "E") << bad;
  EXPECT_EQ(timeline_->now(), 0u);
}

// monitor backtrace: ttvm's own walker with the timeline's symbols, those
// of a --symbols file (GuestSymbols::addFile) included, which win at the
// same address (here main_loop's). The scripted guest
// runs in real mode: frame 0 only, and the walk says why.
TEST_F(GdbServerTest, MonitorBacktraceUsesAddedSymbols) {
  std::string out;
  EXPECT_EQ(monitor("seek 5000"), "OK");
  ASSERT_EQ(monitor("backtrace", &out), "OK");
  const std::string here = timeline_->session().symbolAt(timeline_->registers().rip);
  ASSERT_FALSE(here.empty());
  EXPECT_NE(out.find("#0  0x"), std::string::npos) << out;
  EXPECT_NE(out.find("<" + here + ">"), std::string::npos) << out;
  EXPECT_NE(out.find("(end: 16-bit code: no stack walk)"), std::string::npos) << out;
  const std::string map = testing::tempTracePath("gdb-map");
  FILE* f = std::fopen(map.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fprintf(f, "%016llx T from_the_map\n%016llx T after_it\n",
               static_cast<unsigned long long>(testing::kProgMainLoop),
               static_cast<unsigned long long>(testing::kProgMainLoop + 0x1000));
  std::fclose(f);
  ASSERT_TRUE(timeline_->addSymbolFile(map).ok());
  std::remove(map.c_str());
  ASSERT_EQ(monitor("bt", &out), "OK");
  EXPECT_NE(out.find("<from_the_map+0x"), std::string::npos) << out;
}

TEST_F(GdbServerTest, MonitorQueries) {
  std::string out;
  EXPECT_EQ(monitor("next-write 0x500:2", &out), "OK");
  EXPECT_EQ(timeline_->registers().rip, testing::kProgCounterStore) << out;
  EXPECT_NE(out.find("next write to [0x500, 0x502) after step 0: step "), std::string::npos) << out;
  const uint64_t store = timeline_->now();
  EXPECT_EQ(monitor("next-event port 0x60", &out), "OK");
  EXPECT_GT(timeline_->now(), store);
  EXPECT_EQ(timeline_->registers().rip, testing::kProgMainLoop) << out;
  const uint64_t in = timeline_->now();
  EXPECT_EQ(monitor("prev-event interrupt", &out), "OK");
  EXPECT_LT(timeline_->now(), in);
  EXPECT_EQ(monitor("seek " + std::to_string(in)), "OK");
  EXPECT_EQ(monitor("reg-change rax", &out), "OK");
  const uint64_t change = timeline_->now();
  EXPECT_LT(change, in);
  EXPECT_NE(out.find("rax changed 0x"), std::string::npos) << out;
  // The step at `change` is the one that changed rax.
  const uint64_t raxBefore = timeline_->registers().reg(Gpr::kRax);
  ASSERT_EQ(ask("s"), "T05thread:1;");
  EXPECT_NE(timeline_->registers().reg(Gpr::kRax), raxBefore);
  EXPECT_EQ(monitor("seek 0"), "OK");
  EXPECT_EQ(monitor("prev-event serial", &out), "OK");
  EXPECT_NE(out.find("no such event before step 0"), std::string::npos) << out;
  for (const char* bad :
       {"next-write", "next-write 0x500:x", "reg-change", "reg-change xyz", "prev-event",
        "prev-event bogus", "next-event port", "next-event port 70000", "next-event interrupt now"})
    EXPECT_EQ(monitor(bad).substr(0, 1), "E") << bad;
  EXPECT_EQ(timeline_->now(), 0u);
}

TEST_F(GdbServerTest, ProgressCanCancelAnyMotion) {
  // The transport sets the flag on 0x03; here the progress callback does.
  int calls = 0;
  server_->setProgress([&](uint64_t, uint64_t) {
    if (++calls == 20) server_->cancelFlag().store(true);
  });
  EXPECT_EQ(ask("c"), "T02thread:1;");
  const uint64_t at = timeline_->now();
  EXPECT_GT(at, 0u);
  EXPECT_LT(at, timeline_->endStep());
  calls = 0;
  EXPECT_EQ(ask("c"), "T02thread:1;");  // the flag is cleared for each request
  EXPECT_GT(timeline_->now(), at);
  server_->setProgress({});
  EXPECT_EQ(ask("c"), "T05replaylog:end;thread:1;");
  calls = 0;
  server_->setProgress([&](uint64_t, uint64_t) {
    if (++calls == 3) server_->cancelFlag().store(true);
  });
  EXPECT_EQ(ask("bc"), "T02thread:1;");
  EXPECT_GT(timeline_->now(), 0u);
}

TEST_F(GdbServerTest, RandomPacketsNeverCrash) {
  // Packets built from the protocol's own alphabet, so most reach the
  // parsers' deeper branches; every reply must be well-formed.
  std::mt19937_64 rng(11);
  const std::string heads[] = {
      "m",      "p",      "g",           "Z0,", "z0,",
      "Z2,",    "z2,",    "Z3,",         "Z4,", "qXfer:features:read:target.xml:",
      "qRcmd,", "vCont;", "H",           "T",   "s",
      "bs",     "?",      "qSupported:", "P",   "G",
      "M",      "X"};
  const std::string alphabet = "0123456789abcdefxyz,;:-=#$}*";
  size_t moves = 0;
  for (int i = 0; i < 4000; ++i) {
    std::string p = heads[rng() % std::size(heads)];
    const size_t n = rng() % 24;
    for (size_t k = 0; k < n; ++k) p.push_back(alphabet[rng() % alphabet.size()]);
    const uint64_t before = timeline_->now();
    const GdbReply r = server_->handle(p);
    if (timeline_->now() != before) ++moves;
    const std::string& y = r.payload;
    const bool wellFormed = y.empty() || y == "OK" || y[0] == 'E' || y[0] == 'T' || y[0] == 'm' ||
                            y[0] == 'l' ||
                            y.find_first_not_of("0123456789abcdef") == std::string::npos ||
                            y.rfind("PacketSize=", 0) == 0;
    ASSERT_TRUE(wellFormed) << "packet '" << p << "' -> '" << y << "'";
    ASSERT_LE(timeline_->now(), timeline_->endStep());
  }
  EXPECT_GT(moves, 0u);
  // The server still answers sensibly.
  EXPECT_EQ(ask("qC"), "QC1");
  std::vector<uint8_t> prog(4);
  ASSERT_TRUE(timeline_->readLinear(testing::kProgStart, prog));
  EXPECT_EQ(ask("m1000,4"), gdbHexEncode(prog));
}

TEST_F(GdbServerTest, ResetConnectionForgetsPoints) {
  GdbServerOptions o;
  o.start.kind = GdbStart::Kind::kBegin;
  server_ = std::make_unique<GdbServer>(*timeline_, o);
  EXPECT_EQ(ask("Z0," + gdbHexU64(testing::kProgStoreInsn) + ",1"), "OK");
  EXPECT_EQ(ask("Z2,500,2"), "OK");
  EXPECT_EQ(ask("c"), "T05swbreak:;thread:1;");
  server_->resetConnection();
  EXPECT_EQ(timeline_->now(), 0u);
  EXPECT_EQ(ask("c"), "T05replaylog:end;thread:1;");
}

// Each connection starts at options.start (the end by default), whatever
// the previous one did, and says where.
TEST_F(GdbServerTest, EachConnectionStartsAtTheChosenStep) {
  ASSERT_EQ(timeline_->seek(1234).kind, StopKind::kStepDone);
  std::string where = server_->resetConnection();
  EXPECT_EQ(timeline_->now(), timeline_->endStep());
  EXPECT_EQ(where.rfind("step " + std::to_string(timeline_->endStep()) +
                            " (the end of the recording), rip 0x",
                        0),
            0u)
      << where;
  EXPECT_EQ(ask("?"), "T05thread:1;");
  for (const auto& [kind, step] : {std::pair{GdbStart::Kind::kBegin, uint64_t{0}},
                                   std::pair{GdbStart::Kind::kStep, uint64_t{5000}}}) {
    GdbServerOptions o;
    o.start = {kind, step};
    server_ = std::make_unique<GdbServer>(*timeline_, o);
    ASSERT_EQ(timeline_->seek(1234).kind, StopKind::kStepDone);
    where = server_->resetConnection();
    EXPECT_EQ(timeline_->now(), step);
    EXPECT_EQ(where.rfind("step " + std::to_string(step) +
                              (step == 0 ? " (the start of the recording)" : "") + ", rip 0x",
                          0),
              0u)
        << where;
  }
}

// warmUp moves to the start on its own thread before gdb connects; the
// first resetConnection finds the replay there (and waits for it), and a
// server destroyed meanwhile cancels it.
TEST_F(GdbServerTest, WarmUpMovesBeforeTheFirstConnection) {
  std::atomic<uint64_t> calls{0};
  server_->setProgress([&](uint64_t, uint64_t) { ++calls; });
  server_->warmUp();
  const std::string where = server_->resetConnection();
  EXPECT_EQ(timeline_->now(), timeline_->endStep()) << where;
  EXPECT_GT(calls.load(), 0u);  // the warm-up replayed, with the server's progress
  EXPECT_EQ(ask("?"), "T05thread:1;");
  GdbServerOptions o;
  o.start.kind = GdbStart::Kind::kBegin;
  auto other = std::make_unique<GdbServer>(*timeline_, o);
  other->warmUp();
  other.reset();  // joins (cancelled or done)
  EXPECT_EQ(monitor("seek 100"), "OK");
  EXPECT_EQ(timeline_->now(), 100u);
}

TEST_F(GdbServerTest, DivergenceStopsWithSigabrtAndAReport) {
  // Change the value of the 300th OUT to port 0xE9: the replay must stop there.
  size_t index = SIZE_MAX;
  for (size_t i = 0, n = 0; i < trace_->events.size(); ++i) {
    const TraceEvent& e = trace_->events[i];
    if (e.kind == EventKind::kPortOut && e.address == testing::kOutputPort && n++ == 300) {
      index = i;
      break;
    }
  }
  ASSERT_NE(index, SIZE_MAX);
  TraceEvent bad = trace_->events[index];
  bad.value ^= 0x5A;
  const std::string path = testing::tempTracePath("gdb_corrupt");
  ASSERT_TRUE(testing::rewriteTraceEvent(trace_->path, path, index, bad).ok());
  auto reader = TraceReader::open(path);
  ASSERT_TRUE(reader.ok());
  auto tl = Timeline::open(*reader);
  ASSERT_TRUE(tl.ok());
  GdbServer server(**tl);
  const GdbReply r = server.handle("c");
  std::remove(path.c_str());
  EXPECT_EQ(r.payload, "T06thread:1;");
  ASSERT_EQ(r.console.size(), 1u);
  EXPECT_NE(r.console[0].find("divergence at step " + std::to_string(bad.step)), std::string::npos)
      << r.console[0];
}

// --- the socket transport ---------------------------------------------------

int connectTo(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Reads until `want` bytes have arrived or 10 s pass.
std::string readBytes(int fd, size_t want) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (out.size() < want && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, std::min(sizeof buf, want - out.size()), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

void sendStr(int fd, std::string_view s) {
  ASSERT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
}

// One connection served by serveGdbConnection in a thread, with the
// client's socket.
struct ServedConnection {
  ServedConnection(GdbListener& listener, GdbServer& server)
      : thread([this, &listener, &server] {
          auto accepted = listener.accept(nullptr);
          if (accepted.ok()) stats = serveGdbConnection(*accepted, server, nullptr);
        }),
        fd(connectTo(listener.port())) {}
  ~ServedConnection() {
    if (thread.joinable()) finish();
  }
  // Waits for the server to end the connection; its counts.
  const Result<GdbConnectionStats>& finish() {
    thread.join();
    if (fd >= 0) ::close(fd);
    fd = -1;
    return stats;
  }
  Result<GdbConnectionStats> stats = makeError("not run");
  std::thread thread;
  int fd;
};

TEST_F(GdbServerTest, SocketAcksNaksAndInterrupts) {
  auto listener = GdbListener::listen("127.0.0.1", 0);
  ASSERT_TRUE(listener.ok()) << listener.error().message;
  ASSERT_NE(listener->port(), 0);
  EXPECT_FALSE(GdbListener::listen("not-an-address", 0).ok());
  std::atomic<bool> hold{true};
  holdMotionsForInterrupt(std::chrono::seconds(10), &hold);
  ServedConnection served(*listener, *server_);
  const int fd = served.fd;
  ASSERT_GE(fd, 0);
  sendStr(fd, "+$qC#b4");
  EXPECT_EQ(readBytes(fd, 8), "+$QC1#c5");
  sendStr(fd, "$qC#b5");  // bad checksum
  EXPECT_EQ(readBytes(fd, 1), "-");
  sendStr(fd, "-");  // NAK: the last reply again
  EXPECT_EQ(readBytes(fd, 7), "$QC1#c5");
  // A monitor command's output comes as O packets before OK.
  sendStr(fd, gdbEncodePacket("qRcmd," + gdbHexEncode(std::string_view("when"))));
  const std::string expectO = gdbEncodePacket(
      "O" + gdbHexEncode(std::string_view("step 0 (history 0.." +
                                          std::to_string(timeline_->endStep()) + ")\n")));
  EXPECT_EQ(readBytes(fd, 1 + expectO.size() + 6), "+" + expectO + "$OK#9a");
  // Ctrl-C during continue.
  sendStr(fd, "$c#63");
  EXPECT_EQ(readBytes(fd, 1), "+");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  sendStr(fd, "\x03");
  const std::string stop = gdbEncodePacket("T02thread:1;");
  EXPECT_EQ(readBytes(fd, stop.size()), stop);
  const uint64_t interrupted = timeline_->now();
  EXPECT_GT(interrupted, 0u);
  EXPECT_LT(interrupted, timeline_->endStep());
  // And during reverse-continue (with a breakpoint never hit, so that it
  // scans the history instead of going straight to its start).
  hold.store(false);
  const std::string seekEnd =
      gdbEncodePacket("qRcmd," + gdbHexEncode(std::string_view("seek end")));
  sendStr(fd, "+" + seekEnd);
  const std::string seekReply = readBytes(fd, 1 + 1 + 6);  // '+', then '$O...' or '$OK'
  ASSERT_EQ(seekReply.substr(0, 3), "+$O");
  // Skip the O packet up to the final OK.
  std::string rest;
  while (rest.find("$OK#9a") == std::string::npos) {
    const std::string more = readBytes(fd, 1);
    ASSERT_FALSE(more.empty());
    rest += more;
  }
  EXPECT_EQ(timeline_->now(), timeline_->endStep());
  hold.store(true);
  sendStr(fd, "+" + gdbEncodePacket("Z0,dead,1"));
  EXPECT_EQ(readBytes(fd, 7), "+$OK#9a");
  sendStr(fd, "+$bc#c5");
  EXPECT_EQ(readBytes(fd, 1), "+");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  sendStr(fd, "\x03");
  EXPECT_EQ(readBytes(fd, stop.size()), stop);
  // A cancelled reverse-continue keeps a valid position (the timeline
  // returns to where it started).
  EXPECT_LE(timeline_->now(), timeline_->endStep());
  // 0x03 while nothing runs is ignored; the next packet is answered.
  sendStr(fd, "+\x03$qC#b4");
  EXPECT_EQ(readBytes(fd, 8), "+$QC1#c5");
  sendStr(fd, "+$D#44");
  EXPECT_EQ(readBytes(fd, 7), "+$OK#9a");
  const Result<GdbConnectionStats>& stats = served.finish();
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  EXPECT_EQ(stats->badChecksums, 1u);
  EXPECT_EQ(stats->interrupts, 3u);
  EXPECT_EQ(stats->packets, 8u);
}

// gdb sends 0x03 right after 'c' when the user presses Ctrl-C at once; it
// can reach the server in the same read as the packet, or before the motion
// has begun. Either way it interrupts that motion (it used to be dropped, and
// the continue ran on to the end of the history).
TEST_F(GdbServerTest, AnInterruptSentWithTheContinueStopsIt) {
  auto listener = GdbListener::listen("127.0.0.1", 0);
  ASSERT_TRUE(listener.ok()) << listener.error().message;
  // Without the interrupt the continue runs on to the end of the history.
  holdMotionsForInterrupt(std::chrono::seconds(2));
  ServedConnection served(*listener, *server_);
  const int fd = served.fd;
  ASSERT_GE(fd, 0);
  sendStr(fd, "+$c#63\x03");
  const std::string stop = gdbEncodePacket("T02thread:1;");
  EXPECT_EQ(readBytes(fd, 1 + stop.size()), "+" + stop);
  EXPECT_LT(timeline_->now(), timeline_->endStep());
  sendStr(fd, "+$D#44");
  EXPECT_EQ(readBytes(fd, 7), "+$OK#9a");
  const Result<GdbConnectionStats>& stats = served.finish();
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  EXPECT_EQ(stats->interrupts, 1u);
}

// Everything a client has sent until it closes (or 10 s pass).
std::string readToClose(int fd) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Reads up to and including the next '\n' (or 10 s pass).
std::string readLine(int fd) {
  std::string out;
  while (out.empty() || out.back() != '\n') {
    const std::string more = readBytes(fd, 1);
    if (more.empty()) break;
    out += more;
  }
  return out;
}

// One gdb is connected and idle; five more connect at once. Each is refused
// within a second with a gdb error reply and closed, and the first one is
// still served (before, they all waited on the kernel's backlog of 1 until
// the first disconnected, and the 4th could not connect at all).
TEST_F(GdbServerTest, ASecondClientIsRefusedAtOnce) {
  auto listener = GdbListener::listen("127.0.0.1", 0);
  ASSERT_TRUE(listener.ok()) << listener.error().message;
  std::vector<std::string> log;
  std::mutex logMu;
  GdbServeOptions o;
  o.log = [&](const std::string& line) {
    std::lock_guard<std::mutex> lock(logMu);
    log.push_back(line);
  };
  Status served = makeError("not run");
  std::thread serverThread([&] { served = serveGdb(*listener, *server_, o, nullptr); });
  const int first = connectTo(listener->port());
  ASSERT_GE(first, 0);
  sendStr(first, "+$qC#b4");
  EXPECT_EQ(readBytes(first, 8), "+$QC1#c5");
  std::vector<int> others;
  for (int k = 0; k < 5; ++k) {
    others.push_back(connectTo(listener->port()));
    ASSERT_GE(others.back(), 0) << "connection " << k + 2;
  }
  for (int fd : others) {
    const auto t0 = std::chrono::steady_clock::now();
    sendStr(fd, "+$qSupported#37");
    const std::string got = readToClose(fd);
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 3.0);
    EXPECT_EQ(got.rfind("+$E.ttvm gdbserver: another gdb is connected", 0), 0u) << got;
    EXPECT_NE(got.find("--multi"), std::string::npos) << got;
    ::close(fd);
  }
  // The first client never noticed.
  sendStr(first, "+$qC#b4");
  EXPECT_EQ(readBytes(first, 8), "+$QC1#c5");
  sendStr(first, "+$D#44");
  EXPECT_EQ(readBytes(first, 7), "+$OK#9a");
  serverThread.join();
  ::close(first);
  EXPECT_TRUE(served.ok()) << served.error().message;
  std::lock_guard<std::mutex> lock(logMu);
  EXPECT_EQ(std::count_if(log.begin(), log.end(),
                          [](const std::string& l) { return l.find("refused") != l.npos; }),
            5);
}

// With multi, a client that connects while another is served is told its
// place in the queue and served, its buffered packets answered in order,
// when the one before it disconnects; the server then goes on accepting.
TEST_F(GdbServerTest, WithMultiASecondClientWaitsForItsTurn) {
  auto listener = GdbListener::listen("127.0.0.1", 0);
  ASSERT_TRUE(listener.ok()) << listener.error().message;
  std::atomic<bool> stop{false};
  std::atomic<int> disconnected{0};
  GdbServeOptions o;
  o.multi = true;
  o.log = [&](const std::string& line) {
    if (line.rfind("gdb disconnected", 0) == 0) ++disconnected;
  };
  Status served = makeError("not run");
  std::thread serverThread([&] { served = serveGdb(*listener, *server_, o, &stop); });
  const int a = connectTo(listener->port());
  ASSERT_GE(a, 0);
  sendStr(a, "+$qC#b4");
  EXPECT_EQ(readBytes(a, 8), "+$QC1#c5");
  const int b = connectTo(listener->port());
  const int c = connectTo(listener->port());
  ASSERT_GE(b, 0);
  ASSERT_GE(c, 0);
  const std::string noticeB = readLine(b);
  EXPECT_NE(noticeB.find("another gdb is connected; this connection is 1 in the queue"),
            std::string::npos)
      << noticeB;
  const std::string noticeC = readLine(c);
  EXPECT_NE(noticeC.find("is 2 in the queue"), std::string::npos) << noticeC;
  // b asks while it waits: no answer yet.
  sendStr(b, "+$qC#b4");
  pollfd p{b, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 300), 0) << "answered before its turn";
  sendStr(a, "+$D#44");
  EXPECT_EQ(readBytes(a, 7), "+$OK#9a");
  ::close(a);
  EXPECT_EQ(readBytes(b, 8), "+$QC1#c5");
  sendStr(b, "+$D#44");
  EXPECT_EQ(readBytes(b, 7), "+$OK#9a");
  ::close(b);
  sendStr(c, "+$qC#b4");
  EXPECT_EQ(readBytes(c, 8), "+$QC1#c5");
  ::close(c);
  // A new client after the queue emptied (the server saw c go) is served at once.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (disconnected.load() < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(disconnected.load(), 3);
  const int d = connectTo(listener->port());
  ASSERT_GE(d, 0);
  sendStr(d, "+$qC#b4");
  EXPECT_EQ(readBytes(d, 8), "+$QC1#c5");
  stop.store(true);
  serverThread.join();
  ::close(d);
  EXPECT_TRUE(served.ok()) << served.error().message;
}

}  // namespace
}  // namespace ttvm
