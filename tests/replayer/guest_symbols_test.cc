// The symbol layer: System.map parsing (types, sorting, inferred sizes,
// errors that name the line), lookups, and ELF files read with libelf/libdw
// checked against binutils (nm, addr2line) on the demo guest's ELF.
#include "ttvm/replayer/guest_symbols.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <regex>
#include <span>

#include "gdb_oracle.h"
#include "ttvm/formats/trace_reader.h"
#include "ttvm/replayer/backtrace.h"
#include "ttvm/replayer/queries.h"
#include "ttvm/replayer/source_step.h"
#include "ttvm/replayer/timeline.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

namespace ttvm {
namespace {

namespace fs = std::filesystem;

std::string shell(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

std::string demoDebugElf() {
  return std::string(TTVM_BUILD_DIR) + "/guests/demo/demo.elf.elf";
}

std::string writeTemp(const std::string& name, const std::string& text) {
  const fs::path p =
      fs::temp_directory_path() / ("ttvm-symbols-" + std::to_string(getpid()) + "-" + name);
  std::ofstream(p, std::ios::binary) << text;
  return p.string();
}

const Symbol* byName(const std::vector<Symbol>& v, const std::string& name) {
  for (const Symbol& s : v)
    if (s.name == name) return &s;
  return nullptr;
}

TEST(SystemMap, TypesSortingAndInferredSizes) {
  // Out of order, aliases at one address, undefined and blank lines.
  const std::string text =
      "ffffffff81000100 T second\n"
      "ffffffff81000000 T _stext\n"
      "ffffffff81000000 t first_alias\n"
      "                 U undefined_here\n"
      "\n"
      "ffffffff81000180 W weak_default\n"
      "ffffffff82000000 D some_data\n"
      "ffffffff82000040 b bss_thing\n"
      "ffffffff82000080 r rodata_thing\n"
      "0000000000000000 A absolute_zero\n"
      "ffffffff83000000 A last_absolute\n";
  auto r = parseSystemMap(text, "System.map");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const std::vector<Symbol>& v = *r;
  ASSERT_EQ(v.size(), 9u);
  for (size_t i = 1; i < v.size(); ++i) EXPECT_LE(v[i - 1].address, v[i].address);
  EXPECT_EQ(byName(v, "_stext")->kind, SymbolKind::kFunction);
  EXPECT_EQ(byName(v, "first_alias")->kind, SymbolKind::kFunction);
  EXPECT_EQ(byName(v, "weak_default")->kind, SymbolKind::kFunction);
  EXPECT_EQ(byName(v, "some_data")->kind, SymbolKind::kObject);
  EXPECT_EQ(byName(v, "bss_thing")->kind, SymbolKind::kObject);
  EXPECT_EQ(byName(v, "rodata_thing")->kind, SymbolKind::kObject);
  EXPECT_EQ(byName(v, "last_absolute")->kind, SymbolKind::kOther);
  EXPECT_EQ(byName(v, "undefined_here"), nullptr);
  // Sizes run to the next higher address; aliases share one; the last has none.
  EXPECT_EQ(byName(v, "_stext")->size, 0x100u);
  EXPECT_EQ(byName(v, "first_alias")->size, 0x100u);
  EXPECT_EQ(byName(v, "second")->size, 0x80u);
  EXPECT_EQ(byName(v, "weak_default")->size, 0xFFFE80u);
  EXPECT_EQ(byName(v, "rodata_thing")->size, 0xFFFF80u);
  EXPECT_EQ(byName(v, "last_absolute")->size, 0u);
}

TEST(SystemMap, KallsymsModuleColumn) {
  auto r = parseSystemMap("ffffffffc0200000 t e1000_probe\t[e1000]\n", "kallsyms");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].name, "e1000_probe");
  EXPECT_EQ((*r)[0].address, 0xffffffffc0200000ull);
}

TEST(SystemMap, ErrorsNameTheFileAndLine) {
  struct Case {
    const char* text;
    const char* want;
  } cases[] = {
      {"ffffffff81000000 T ok\nzzzz T bad\n", "m.map:2: 'zzzz' is not a hexadecimal address"},
      {"ffffffff81000000 TT two_letters\n", "m.map:1: 'TT' is not a symbol type letter"},
      {"ffffffff81000000 T\n", "m.map:1: expected 'ADDRESS TYPE NAME'"},
      {"ffffffff81000000 T a b c\n", "m.map:1: more than 'ADDRESS TYPE NAME [module]'"},
      {"ffffffff81000000 T a notamodule\n", "m.map:1: more than"},
      {"1ffffffff81000000 T too_long\n", "m.map:1: '1ffffffff81000000' is not a hexadecimal"},
      {"", "m.map: no symbols"},
      {"   U only_undefined\n", "m.map: no symbols"},
      // Debian's linux-image packages ship this one line instead of a map.
      {"ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package\n",
       "m.map:1: a placeholder, not a System.map"},
  };
  for (const Case& c : cases) {
    const std::string text = c.text;
    auto r = parseSystemMap(text, "m.map");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.error().message.find(c.want), std::string::npos)
        << "got: " << r.error().message << "\nwant: " << c.want;
  }
  // A NUL byte (a binary file that is not ELF).
  const std::string nul("ffffffff81000000 T a\n\x01\x02\0\x03\n", 26);
  auto r = parseSystemMap(nul, "m.map");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("m.map:2: a NUL byte"), std::string::npos) << r.error().message;
}

TEST(GuestSymbols, LookupsOverInferredSizes) {
  auto r = parseSystemMap(
      "ffffffff81000000 T alpha\n"
      "ffffffff81000000 d alpha_data\n"
      "ffffffff81000040 T beta\n"
      "ffffffff81000080 T gamma\n",
      "m");
  ASSERT_TRUE(r.ok());
  GuestSymbols s;
  s.addSymbols(std::move(*r), "m");
  EXPECT_EQ(s.describe(0xffffffff81000000ull), "alpha");  // the function over the data alias
  EXPECT_EQ(s.describe(0xffffffff8100003full), "alpha+0x3f");
  EXPECT_EQ(s.describe(0xffffffff81000040ull), "beta");
  EXPECT_EQ(s.describe(0xffffffff8100007full), "beta+0x3f");
  // gamma is last (no size): it covers 64 KiB and no more.
  EXPECT_EQ(s.describe(0xffffffff81000080ull + 0xFFFF), "gamma+0xffff");
  EXPECT_EQ(s.describe(0xffffffff81000080ull + 0x10000), std::nullopt);
  EXPECT_EQ(s.describe(0xffffffff80ffffffull), std::nullopt);
  EXPECT_EQ(s.find("gamma"), 0xffffffff81000080ull);
  EXPECT_EQ(s.find("alpha_data"), 0xffffffff81000000ull);
  EXPECT_EQ(s.find("delta"), std::nullopt);
  // A later source wins at the same address.
  s.addSymbols({Symbol{"beta_renamed", 0xffffffff81000040ull, 0x40, SymbolKind::kFunction}}, "n");
  EXPECT_EQ(s.describe(0xffffffff81000041ull), "beta_renamed+0x1");
  EXPECT_EQ(s.find("beta"), 0xffffffff81000040ull);
  ASSERT_EQ(s.sources().size(), 2u);
}

// nm's own output is a System.map: every text symbol nm lists resolves to
// its address, and back to its name.
TEST(GuestSymbols, SystemMapFromNmMatchesNm) {
  ASSERT_TRUE(fs::exists(demoDebugElf())) << "build ttvm_demo_guest first";
  const std::string nm = shell("nm -n " + demoDebugElf());
  const std::string map = writeTemp("demo.map", nm);
  GuestSymbols s;
  Status st = s.addFile(map);
  ASSERT_TRUE(st.ok()) << st.error().message;
  int checked = 0;
  std::map<std::string, uint64_t> text;
  for (size_t pos = 0; pos < nm.size();) {
    const size_t eol = nm.find('\n', pos);
    const std::string line = nm.substr(pos, eol - pos);
    pos = eol == std::string::npos ? nm.size() : eol + 1;
    char type = 0;
    char name[256] = {};
    unsigned long long addr = 0;
    if (std::sscanf(line.c_str(), "%llx %c %255s", &addr, &type, name) != 3) continue;
    if (type != 'T' && type != 't') continue;
    text[name] = addr;
  }
  for (const auto& [name, addr] : text) {
    EXPECT_EQ(s.find(name), addr) << name;
    ++checked;
  }
  EXPECT_GE(checked, 20);
  ASSERT_TRUE(text.count("table_find"));
  EXPECT_EQ(s.describe(text["table_find"] + 3), "table_find+0x3");
  fs::remove(map);
}

// The ELF reader: symbols as nm sees them, lines as addr2line sees them.
TEST(GuestSymbols, ElfSymbolsAndLinesMatchBinutils) {
  ASSERT_TRUE(fs::exists(demoDebugElf())) << "build ttvm_demo_guest first";
  GuestSymbols s;
  Status st = s.addFile(demoDebugElf());
  ASSERT_TRUE(st.ok()) << st.error().message;
  ASSERT_EQ(s.sources().size(), 1u);
  EXPECT_NE(s.sources()[0].find("DWARF lines"), std::string::npos) << s.sources()[0];
  uint64_t tableFind = 0;
  ASSERT_EQ(std::sscanf(shell("nm " + demoDebugElf() + " | grep ' table_find$'").c_str(), "%lx",
                        &tableFind),
            1);
  EXPECT_EQ(s.find("table_find"), tableFind);
  int compared = 0;
  for (uint64_t off : {0x0, 0x10, 0x30, 0x59}) {
    char cmd[512];
    std::snprintf(cmd, sizeof cmd, "addr2line -e %s 0x%llx", demoDebugElf().c_str(),
                  static_cast<unsigned long long>(tableFind + off));
    std::string want = shell(cmd);
    while (!want.empty() && want.back() == '\n') want.pop_back();
    auto got = s.sourceLine(tableFind + off);
    if (want.find("?") != std::string::npos) {
      EXPECT_FALSE(got.has_value()) << want;
      continue;
    }
    ASSERT_TRUE(got.has_value()) << "addr2line: " << want;
    // addr2line may append " (discriminator N)".
    EXPECT_EQ(want.rfind(got->file + ":" + std::to_string(got->line), 0), 0u)
        << "addr2line: " << want << " ttvm: " << got->file << ":" << got->line;
    ++compared;
  }
  EXPECT_GE(compared, 3);
}

// Line -> addresses (breakpoints by source line): each address's own line
// is the line asked for (addr2line, the other direction, agrees), a line
// without code moves to the next one that has, a path in another checkout
// matches by its trailing components, and an unknown file has none.
TEST(GuestSymbols, LineAddressesRoundTripThroughAddr2line) {
  ASSERT_TRUE(fs::exists(demoDebugElf())) << "build ttvm_demo_guest first";
  GuestSymbols s;
  ASSERT_TRUE(s.addFile(demoDebugElf()).ok());
  for (unsigned wanted : {64u, 99u, 134u}) {
    unsigned line = wanted;
    const std::vector<uint64_t> at = s.lineAddresses("/elsewhere/guests/demo/workload.c", line);
    ASSERT_FALSE(at.empty()) << "line " << wanted;
    EXPECT_EQ(line, wanted);
    for (uint64_t a : at) {
      char cmd[512];
      std::snprintf(cmd, sizeof cmd, "addr2line -e %s 0x%llx", demoDebugElf().c_str(),
                    static_cast<unsigned long long>(a));
      const std::string want = shell(cmd);
      EXPECT_NE(want.find("workload.c:" + std::to_string(wanted)), std::string::npos)
          << "line " << wanted << " at 0x" << std::hex << a << ": addr2line says " << want;
    }
  }
  unsigned line = 142;  // TABLE_PRUNE_BUG: no code of its own
  EXPECT_FALSE(s.lineAddresses("workload.c", line).empty());
  EXPECT_GT(line, 142u);
  line = 10;
  EXPECT_TRUE(s.lineAddresses("no_such_file.c", line).empty());
  line = 100000;
  EXPECT_TRUE(s.lineAddresses("workload.c", line).empty());
}

TEST(GuestSymbols, BadFilesGetClearErrors) {
  GuestSymbols s;
  Status missing = s.addFile("/nonexistent/System.map");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("/nonexistent/System.map: cannot open"), std::string::npos)
      << missing.error().message;
  // An ELF with its symbols and DWARF stripped.
  const std::string stripped = writeTemp("stripped.elf", "");
  ASSERT_EQ(std::system(("strip --strip-all -o " + stripped + " " + demoDebugElf()).c_str()), 0);
  Status st = s.addFile(stripped);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(
      st.error().message.find(stripped + ": an ELF file with neither a symbol table nor DWARF"),
      std::string::npos)
      << st.error().message;
  // A truncated ELF: libelf's reason, with the file name, and no crash.
  std::ifstream in(demoDebugElf(), std::ios::binary);
  std::string head(100, '\0');
  in.read(head.data(), 100);
  const std::string truncated = writeTemp("truncated.elf", head);
  Status t = s.addFile(truncated);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().message.rfind(truncated + ": ", 0), 0u) << t.error().message;
  // A binary file that is not ELF: a System.map error naming the line.
  const std::string binary = writeTemp("binary", std::string("\x01\x02\x00\x04 garbage", 12));
  Status b = s.addFile(binary);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message.find(binary + ":1: a NUL byte"), std::string::npos)
      << b.error().message;
  EXPECT_TRUE(s.empty());
  for (const std::string& f : {stripped, truncated, binary}) fs::remove(f);
}

// Char arrays against gdb's own printing of string literals (gdb -batch,
// no program: `p "\141\141…"` is a char[N+1] with its NUL): repeats on
// either side of the threshold, NULs, escapes, quotes, high bytes, a run at
// the start and at the end, and an array longer than 200 elements.
TEST(GuestSymbols, CharArraysPrintAsGdbPrintsThem) {
  const std::string gdb = shell("command -v gdb | tr -d '\\n'");
  if (gdb.empty()) GTEST_SKIP() << "gdb not found: it is the oracle";
  std::vector<std::vector<uint8_t>> cases = {
      {},
      {'a', 'b', 'c'},
      std::vector<uint8_t>(10, 'x'),
      std::vector<uint8_t>(11, 'x'),
      {'i', 'd', 0, 0, ' ', 'N', 0, 0, 0, 0, 0, 0x10, '"', '\\', '\n', '\t', 0x7F, 0xC3, 0x1B},
  };
  std::vector<uint8_t> mixed(16, 0);
  for (const char* t = "lookup\\\"'"; *t; ++t) mixed.push_back(static_cast<uint8_t>(*t));
  mixed.insert(mixed.end(), 12, '\'');
  mixed.insert(mixed.end(), 11, '"');
  mixed.insert(mixed.end(), 30, 0);
  cases.push_back(mixed);
  std::vector<uint8_t> longer;
  for (int i = 0; i < 230; ++i) longer.push_back(static_cast<uint8_t>('a' + i % 26));
  cases.push_back(longer);
  std::string cmd = gdb + " -batch -nx";
  for (const auto& c : cases) {
    std::string literal;
    for (uint8_t b : c) {
      char oct[8];
      std::snprintf(oct, sizeof oct, "\\%03o", b);
      literal += oct;
    }
    cmd += " -ex 'p \"" + literal + "\"'";
  }
  const std::string out = shell(cmd + " 2>&1");
  std::vector<std::string> gdbs;
  static const std::regex kValue(R"(^\$\d+ = (.*)$)");
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (std::regex_match(line, m, kValue)) gdbs.push_back(m[1].str());
  }
  ASSERT_EQ(gdbs.size(), cases.size()) << out;
  for (size_t i = 0; i < cases.size(); ++i) {
    std::vector<uint8_t> array = cases[i];
    array.push_back(0);  // the literal's NUL
    EXPECT_EQ(formatCharArray(array), gdbs[i]) << "case " << i;
  }
}

// The demo recorded into a temporary trace (removed at the end), its
// timeline at the end of the history with the debug ELF's symbols, and the
// step of the corrupting store (guests/demo/README.md).
struct DemoTimeline {
  std::string trace;
  std::unique_ptr<TraceReader> reader;
  std::unique_ptr<Timeline> timeline;
  uint64_t storeStep = 0;

  void open(const std::string& name) {
    trace = writeTemp(name, "");
    const std::string elf = std::string(TTVM_BUILD_DIR) + "/guests/demo/demo.elf";
    ASSERT_EQ(std::system(
                  (std::string(TTVM_BIN) + " record -o " + trace + " " + elf + " > /dev/null 2>&1")
                      .c_str()) == -1,
              false);
    auto r = TraceReader::open(trace);
    ASSERT_TRUE(r.ok()) << r.error().message;
    reader = std::make_unique<TraceReader>(std::move(*r));
    auto tl = Timeline::open(*reader);
    ASSERT_TRUE(tl.ok()) << tl.error().message;
    timeline = std::move(*tl);
    ASSERT_TRUE(timeline->addSymbolFile(demoDebugElf()).ok());
    timeline->runToEnd();
    const auto arena = timeline->symbols().find("arena");
    ASSERT_TRUE(arena.has_value());
    auto store = timeline->lastWrite(*arena + 0x2FA8, 8, false, false);
    ASSERT_TRUE(store.ok() && store->has_value());
    storeStep = (**store).step;
  }
  ~DemoTimeline() {
    timeline.reset();
    if (!trace.empty()) std::remove(trace.c_str());
  }
};

// The number of the first line of `file` that contains `text` (0: none).
unsigned lineContaining(const std::string& file, const std::string& text) {
  std::ifstream in(file);
  unsigned n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    if (line.find(text) != std::string::npos) return n;
  }
  return 0;
}

// The symbol layer against stock gdb (issue 15): the demo recorded once,
// then at known steps — the corrupting store in key_dup, a hundred steps
// before it (str_len inlined into key_dup), the faulting load in
// table_find, one line further from the store, and table_insert after
// key_dup returned, where `key` lives only as an entry value — gdb's answers
// (bt, info args, info locals, against `ttvm gdbserver --start STEP` with
// the debug ELF) and the layer's: the source line of RIP, the backtrace's
// functions and file:line, and every variable gdb prints in the first
// three frames with gdb's value, optimized out where gdb says so and
// nowhere else: callers' registers unwound as gdb does (a register without
// a CFI rule keeps its value: workload_run's `i` in R11 and `found` in RBX
// at the faulting load), entry values from the caller's call site.
TEST(GuestSymbols, LinesFramesAndLocalsMatchStockGdbOnTheDemo) {
  const std::string gdb = shell("command -v gdb | tr -d '\\n'");
  if (gdb.empty()) GTEST_SKIP() << "gdb not found: it is the oracle";
  DemoTimeline demo;
  ASSERT_NO_FATAL_FAILURE(demo.open("gdb-oracle.ttvm"));
  Timeline& t = *demo.timeline;
  const std::string& trace = demo.trace;
  const uint64_t storeStep = demo.storeStep;
  auto fault = t.registerLastChange(*registerByName("cr2"), false);
  ASSERT_TRUE(fault.ok() && fault->has_value());
  t.seek(storeStep);
  stepLine(t, false);
  const uint64_t nextLine = t.now();
  ASSERT_GT(nextLine, storeStep);

  // Back in table_insert, at `e->hash = h;`: gdb's `info address key`
  // says that the pc is in a range where key is DW_OP_entry_value(RDI)
  // (RBX, its home elsewhere, holds another value there), so its value
  // comes from workload_run's call site (DW_AT_call_value: the frame base
  // - 56, workload_run's `key` array).
  t.seek(storeStep);
  stepOut(t);
  const auto here = t.symbols().sourceLine(t.registers().rip);
  ASSERT_TRUE(here.has_value());
  const unsigned hashLine = lineContaining(here->file, "e->hash = h;");
  ASSERT_NE(hashLine, 0u) << here->file;
  for (int i = 0; i < 8 && t.symbols().sourceLine(t.registers().rip)->line != hashLine; ++i)
    stepLine(t, false);
  ASSERT_EQ(t.symbols().sourceLine(t.registers().rip)->line, hashLine);
  const uint64_t entryStep = t.now();
  {
    std::string why;
    const auto out = testing::askGdb(TTVM_BIN, gdb, trace, demoDebugElf(), entryStep,
                                     {"info address key"}, &why);
    ASSERT_TRUE(out.has_value()) << why;
    static const std::regex kRange(
        R"(Range (0x[0-9a-f]+)-(0x[0-9a-f]+): a complex DWARF expression:\s*0: DW_OP_entry_value)");
    bool inEntryRange = false;
    for (std::sregex_iterator it(out->begin(), out->end(), kRange), end; it != end; ++it) {
      const uint64_t lo = std::stoull((*it)[1].str(), nullptr, 16);
      const uint64_t hi = std::stoull((*it)[2].str(), nullptr, 16);
      inEntryRange |= t.registers().rip >= lo && t.registers().rip < hi;
    }
    ASSERT_TRUE(inEntryRange) << "rip " << std::hex << t.registers().rip << "\n" << *out;
  }

  const std::vector<uint64_t> steps{storeStep, storeStep - 100, (**fault).step, nextLine,
                                    entryStep};
  std::vector<std::string> cmds{"info line *$pc", "bt"};
  for (int f = 0; f < 3; ++f)
    for (const char* c : {"frame ", "info args @", "info locals @"})
      cmds.push_back(std::string(c) + std::to_string(f));
  int compared = 0, inlined = 0;
  for (uint64_t step : steps) {
    SCOPED_TRACE("step " + std::to_string(step));
    // gdb's commands, each frame's "info" tagged so that the sections differ.
    std::vector<std::string> gdbCmds;
    for (const std::string& c : cmds) {
      const size_t at = c.find(" @");
      gdbCmds.push_back(at == std::string::npos ? c : c.substr(0, at));
    }
    std::string why;
    const auto out = testing::askGdb(TTVM_BIN, gdb, trace, demoDebugElf(), step, gdbCmds, &why);
    ASSERT_TRUE(out.has_value()) << why;
    t.seek(step);
    const CpuState& cpu = t.registers();
    // The line of RIP: gdb's "Line N of \"FILE\"".
    const std::string il = testing::gdbSection(*out, "info line *$pc");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(il, m, std::regex(R"(Line (\d+) of \"([^\"]+)\")"))) << il;
    const auto line = t.symbols().sourceLine(cpu.rip);
    ASSERT_TRUE(line.has_value());
    EXPECT_EQ(line->line, std::stoul(m[1].str()));
    EXPECT_EQ(line->file, m[2].str());
    // Frames, one for one with gdb's: inlined calls are frames of their
    // own (BacktraceOptions::inlined), named by their function, on their
    // line, at the pc of the frame they were inlined into (gdb prints no
    // address for that frame: its pc is the inlined call's).
    const auto gdbFrames = testing::parseGdbBacktrace(testing::gdbSection(*out, "bt"));
    ASSERT_FALSE(gdbFrames.empty()) << *out;
    BacktraceOptions options;
    options.inlined = true;
    const Backtrace bt = unwindStack(t, options);
    ASSERT_GE(bt.frames.size(), gdbFrames.size()) << formatBacktrace(bt) << *out;
    for (size_t i = 0; i < gdbFrames.size(); ++i) {
      SCOPED_TRACE("gdb frame " + std::to_string(i));
      const BacktraceFrame& ours = bt.frames[i];
      EXPECT_EQ(ours.symbol.substr(0, ours.symbol.find('+')), gdbFrames[i].function);
      EXPECT_EQ(ours.inlined, i + 1 < gdbFrames.size() && !gdbFrames[i + 1].hasAddress);
      if (ours.inlined) {
        ++inlined;
        EXPECT_EQ(ours.pc, bt.frames[i + 1].pc);
      }
      if (gdbFrames[i].line != 0) {
        ASSERT_TRUE(ours.source.has_value());
        EXPECT_EQ(ours.source->line, gdbFrames[i].line);
        EXPECT_EQ(ours.source->file, gdbFrames[i].file);
      }
    }
    // Variables of gdb's frames 0-2 (after each "frame N"), against the
    // layer's for the same frame (an inlined call's: its function's).
    size_t pos = 0;
    for (unsigned f = 0; f < 3 && f < gdbFrames.size(); ++f) {
      pos = out->find("@@ frame " + std::to_string(f) + "\n", pos);
      ASSERT_NE(pos, std::string::npos);
      const size_t next = out->find("@@ frame ", pos + 1);
      const std::string section = out->substr(pos, next == std::string::npos ? next : next - pos);
      pos = next == std::string::npos ? out->size() : next;
      std::multimap<std::string, std::string> ours;
      for (const GuestVariable& v : t.symbols().variablesAt(
               cpu, [&t](uint64_t a, std::span<uint8_t> o) { return t.readLinear(a, o); },
               bt.frames[f].stackFrame, bt.frames[f].inlineDepth))
        ours.emplace(v.name, v.value);
      const auto vars = testing::parseGdbVariables(section);
      for (const testing::GdbVariable& g : vars) {
        SCOPED_TRACE("gdb frame " + std::to_string(f) + " " + g.name + " = " + g.value);
        const auto [lo, hi] = ours.equal_range(g.name);
        ASSERT_NE(lo, hi) << "no variable " << g.name << " here";
        auto has = [&](const std::string& v) {
          return std::any_of(lo, hi, [&](const auto& kv) { return kv.second == v; });
        };
        // A name gdb prints twice (nested scopes): one of its values is ours.
        if (!has(g.value) && std::any_of(vars.begin(), vars.end(), [&](const auto& o) {
              return o.name == g.name && o.value != g.value && has(o.value);
            }))
          continue;
        EXPECT_TRUE(has(g.value)) << "ours: " << lo->second;
        ++compared;
      }
    }
  }
  // gdb stopped by `finish` at key_dup's return — the first instruction of
  // kmalloc, inlined into table_insert — shows table_insert at the call's
  // line as frame 0 (a gdb attached at that step shows kmalloc):
  // BacktraceOptions::skipStartingInlined, which the GUI and DAP use.
  {
    std::string why;
    const auto out = testing::askGdb(TTVM_BIN, gdb, trace, demoDebugElf(), storeStep,
                                     {"finish", "monitor when", "bt"}, &why);
    ASSERT_TRUE(out.has_value()) << why;
    std::smatch when;
    const std::string w = testing::gdbSection(*out, "monitor when");
    ASSERT_TRUE(std::regex_search(w, when, std::regex(R"(step (\d+) \(history)"))) << *out;
    t.seek(storeStep);
    stepOut(t);
    ASSERT_EQ(t.now(), std::stoull(when[1].str()));
    const auto gdbFrames = testing::parseGdbBacktrace(testing::gdbSection(*out, "bt"));
    ASSERT_GE(gdbFrames.size(), 2u) << *out;
    EXPECT_EQ(gdbFrames[0].function, "table_insert") << *out;
    BacktraceOptions options;
    options.inlined = true;
    options.skipStartingInlined = true;
    const Backtrace bt = unwindStack(t, options);
    ASSERT_GE(bt.frames.size(), gdbFrames.size()) << formatBacktrace(bt);
    for (size_t i = 0; i < gdbFrames.size(); ++i) {
      SCOPED_TRACE("after finish, gdb frame " + std::to_string(i));
      const BacktraceFrame& ours = bt.frames[i];
      EXPECT_EQ(ours.symbol.substr(0, ours.symbol.find('+')), gdbFrames[i].function);
      if (gdbFrames[i].line == 0) continue;
      ASSERT_TRUE(ours.source.has_value());
      EXPECT_EQ(ours.source->line, gdbFrames[i].line);
      EXPECT_EQ(ours.source->file, gdbFrames[i].file);
    }
    // Attached there, as gdb --start shows it: kmalloc, inlined.
    options.skipStartingInlined = false;
    const Backtrace attached = unwindStack(t, options);
    ASSERT_GE(attached.frames.size(), 2u);
    EXPECT_EQ(attached.frames[0].symbol, "kmalloc");
    EXPECT_TRUE(attached.frames[0].inlined);
  }
  std::printf(
      "symbol layer vs gdb: %d variables equal at %zu steps; %d inlined calls gdb lists "
      "as frames\n",
      compared, steps.size(), inlined);
  EXPECT_GE(compared, 60);
  EXPECT_GE(inlined, 1);  // str_len in key_dup, a hundred steps before the store
}

// Backward by source line against stock gdb on the demo: from table_insert
// just after `copy = key_dup(key)` returned (mid-way through that line),
// gdb's reverse-step goes into key_dup (to the start of the line holding
// its ret, the last one it ran), then back line by line through key_dup; reverse-next goes to the
// start of the call's line, over the call, then to the line before.
// stepBackLine (into / over) must stop at the same steps (`monitor when`).
// (Not from the start of the next line: its first instruction belongs to an
// inlined kmalloc, which gdb steps out of as a frame of its own.)
TEST(SourceStep, ReverseStepAndReverseNextMatchStockGdbOnTheDemo) {
  const std::string gdb = shell("command -v gdb | tr -d '\\n'");
  if (gdb.empty()) GTEST_SKIP() << "gdb not found: it is the oracle";
  DemoTimeline demo;
  ASSERT_NO_FATAL_FAILURE(demo.open("reverse-step.ttvm"));
  Timeline& t = *demo.timeline;
  const std::string& trace = demo.trace;
  t.seek(demo.storeStep);
  // Out of key_dup: mid-way through the call's line.
  stepOut(t);
  const uint64_t start = t.now();
  ASSERT_EQ(t.session().symbolAt(t.registers().rip).rfind("table_insert+", 0), 0u)
      << t.session().symbolAt(t.registers().rip);
  auto gdbSteps = [&](const std::string& command, int times) {
    std::vector<std::string> cmds;
    for (int i = 0; i < times; ++i) {
      cmds.push_back(command);
      cmds.push_back("monitor when");
    }
    std::string why;
    const auto out = testing::askGdb(TTVM_BIN, gdb, trace, demoDebugElf(), start, cmds, &why);
    EXPECT_TRUE(out.has_value()) << why;
    std::vector<uint64_t> steps;
    if (!out) return steps;
    static const std::regex kWhen(R"(step (\d+) \(history)");
    for (std::sregex_iterator it(out->begin(), out->end(), kWhen), end; it != end; ++it)
      steps.push_back(std::stoull((*it)[1].str()));
    EXPECT_EQ(steps.size(), static_cast<size_t>(times)) << *out;
    return steps;
  };
  double slowestMs = 0;
  auto oursSteps = [&](bool into, int times) {
    t.seek(start);
    std::vector<uint64_t> steps;
    for (int i = 0; i < times; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      EXPECT_EQ(stepBackLine(t, into).kind, StopKind::kStepDone);
      slowestMs = std::max(
          slowestMs,
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      steps.push_back(t.now());
    }
    return steps;
  };
  const std::vector<uint64_t> gdbInto = gdbSteps("reverse-step", 3);
  const std::vector<uint64_t> into = oursSteps(true, 3);
  EXPECT_EQ(into, gdbInto);
  // The first one is in key_dup, on its last line.
  t.seek(into.front());
  EXPECT_EQ(t.session().symbolAt(t.registers().rip).rfind("key_dup+", 0), 0u)
      << t.session().symbolAt(t.registers().rip);
  const std::vector<uint64_t> gdbOver = gdbSteps("reverse-next", 2);
  const std::vector<uint64_t> over = oursSteps(false, 2);
  EXPECT_EQ(over, gdbOver);
  // Over stays in table_insert: the start of the call's line, then the
  // line before it.
  t.seek(over.front());
  EXPECT_EQ(t.session().symbolAt(t.registers().rip).rfind("table_insert+", 0), 0u)
      << t.session().symbolAt(t.registers().rip);
  std::printf("reverse-step from step %llu: gdb and ttvm at",
              static_cast<unsigned long long>(start));
  for (uint64_t s : into) std::printf(" %llu", static_cast<unsigned long long>(s));
  std::printf("; reverse-next at");
  for (uint64_t s : over) std::printf(" %llu", static_cast<unsigned long long>(s));
  std::printf(" (slowest move %.2f ms)\n", slowestMs);
}

}  // namespace
}  // namespace ttvm
