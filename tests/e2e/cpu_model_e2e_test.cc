// Portable traces (issue 16.2), end to end: `ttvm record --cpu-model NAME`
// shows the guest that model's CPUID (rec_cpuid prints what it sees), the
// trace keeps the table, and the replay answers from it whatever the host:
// a trace recorded with one model verifies, reports the guest's output and
// ends in the same registers when the host CPUID source is a simulated host
// of another vendor (TTVM_HOST_CPUID) or unreadable. Bad names are refused
// with the list of models.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "scripted_trace_support.h"
#include "ttvm/emulator/cpu_models.h"
#include "ttvm/formats/trace_reader.h"

namespace ttvm {
namespace {

namespace fs = std::filesystem;

using testing::CommandRun;

const std::string kTtvm = TTVM_BIN;

std::string cpuidGuest() {
  return std::string(REC_GUEST_DIR) + "/rec_cpuid.elf";
}

// Two simulated hosts in the text form of TTVM_HOST_CPUID (leaf subleaf
// eax ebx ecx edx): an AMD Zen 3 server and an Intel Sapphire Rapids one.
// The AMD one shows no x2APIC; the Intel one has every feature of ttvm's
// (its host model differs from 'ttvm' in signature and brand only).
constexpr const char* kFakeAmd =
    "# simulated host: AMD EPYC 7763 (family 25 model 1)\n"
    "0 0 00000010 68747541 444d4163 69746e65\n"
    "1 0 00a00f11 00800800 7ed8320b 178bfbff\n"
    "7 0 00000000 219c97a9 0040068c 00000010\n"
    "80000000 0 80000023 68747541 444d4163 69746e65\n"
    "80000001 0 00a00f11 40000000 75c237ff 2fd3fbff\n"
    "80000002 0 20444d41 43595045 36373720 34362033\n"
    "80000003 0 726f432d 72502065 7365636f 20726f73\n"
    "80000004 0 20202020 20202020 20202020 20202020\n";
constexpr const char* kFakeIntel =
    "# simulated host: Intel Xeon Platinum 8480+ (family 6 model 143)\n"
    "0 0 00000020 756e6547 6c65746e 49656e69\n"
    "1 0 000806f8 00800800 7ffefbff bfebfbff\n"
    "7 0 00000002 f3bfa7eb 1b417ffe a4174016\n"
    "80000000 0 80000008 00000000 00000000 00000000\n"
    "80000001 0 00000000 00000000 00000121 2c100800\n"
    "80000002 0 65746e49 2952286c 6f655820 2952286e\n"
    "80000003 0 616c5020 756e6974 3438206d 002b3038\n"
    "80000004 0 00000000 00000000 00000000 00000000\n";

std::string writeFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

struct Hosts {
  std::string amd, intel;
};
const Hosts& hosts() {
  static const Hosts h = [] {
    const std::string dir = fs::path(testing::tempTracePath("hosts")).replace_extension().string();
    fs::create_directories(dir);
    return Hosts{writeFile(dir + "/amd.cpuid", kFakeAmd),
                 writeFile(dir + "/intel.cpuid", kFakeIntel)};
  }();
  return h;
}

std::string withHost(const std::string& hostFile) {
  return "TTVM_HOST_CPUID=" + hostFile + " ";
}

// What rec_cpuid printed: its "cpuid", "lzcnt" and "rdtscp" lines in order.
std::vector<std::string> guestLines(const std::string& output) {
  std::vector<std::string> out;
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("cpuid ", 0) == 0 || line.rfind("lzcnt ", 0) == 0 ||
        line.rfind("rdtscp ", 0) == 0)
      out.push_back(line);
  return out;
}

std::string hex8(uint32_t v) {
  char b[9];
  std::snprintf(b, sizeof b, "%08x", v);
  return b;
}

// The lines rec_cpuid must print under `model`.
std::vector<std::string> expectedLines(const CpuModel& model) {
  std::vector<std::string> out;
  for (uint32_t leaf :
       {0u, 1u, 7u, 0x80000000u, 0x80000001u, 0x80000002u, 0x80000003u, 0x80000004u}) {
    const CpuidLeaf l = model.lookup(leaf, 0);
    out.push_back("cpuid " + hex8(leaf) + " " + hex8(l.eax) + " " + hex8(l.ebx) + " " +
                  hex8(l.ecx) + " " + hex8(l.edx));
  }
  const bool lzcnt = model.lookup(0x80000001u, 0).ecx & (1u << 5);
  out.push_back(std::string("lzcnt 1 -> ") + (lzcnt ? "0000001f" : "00000000"));
  const bool rdtscp = model.lookup(0x80000001u, 0).edx & (1u << 27);
  out.push_back(rdtscp ? "rdtscp ok" : "rdtscp #UD");
  return out;
}

CpuModel modelOf(const std::string& name, const std::string& hostFile) {
  Result<CpuModel> m = cpuModelNamed(name, [&]() -> Result<std::vector<CpuidLeaf>> {
    std::ifstream in(hostFile);
    std::stringstream text;
    text << in.rdbuf();
    return parseCpuidTable(text.str(), hostFile);
  });
  EXPECT_TRUE(m.ok()) << m.error().message;
  return m.ok() ? *m : CpuModel();
}

struct Recording {
  std::string label, trace;
  CpuModel model;
  std::vector<std::string> lines;
};

Recording recordWith(const std::string& model, const std::string& hostFile) {
  Recording r;
  r.label = model + (model == "host" ? " on " + fs::path(hostFile).stem().string() : "");
  r.trace = testing::tempTracePath("cpuid-" + model);
  r.model = modelOf(model, hostFile);
  CommandRun rec = testing::runCommand(withHost(hostFile) + kTtvm +
                                       " record --backend emu --start-clock 1700000000 "
                                       "--cpu-model " +
                                       model + " -o " + r.trace + " " + cpuidGuest());
  EXPECT_EQ(rec.status, 1) << r.label << ": " << rec.output;  // isa-debug-exit 0
  r.lines = guestLines(rec.output);
  return r;
}

// The guest sees each model's CPUID and feature behaviour, each trace keeps
// its model, and each replays exactly on a simulated host of the other
// vendor: verify passes and the replayed serial output is what the guest
// printed while recorded.
TEST(CpuModelE2E, GuestsSeeTheirModelAndEachReplaysExactlyOnAnotherHost) {
  ASSERT_TRUE(fs::exists(cpuidGuest())) << "build the rec_guest_rec_cpuid target first";
  const Hosts& h = hosts();
  std::vector<Recording> recs = {recordWith("ttvm", h.amd), recordWith("baseline", h.amd),
                                 recordWith("host", h.amd), recordWith("host", h.intel)};
  std::set<std::vector<std::string>> distinct;
  for (const Recording& r : recs) {
    SCOPED_TRACE(r.label);
    EXPECT_EQ(r.lines, expectedLines(r.model));
    distinct.insert(r.lines);
    auto reader = TraceReader::open(r.trace);
    ASSERT_TRUE(reader.ok()) << reader.error().message;
    EXPECT_EQ(reader->header().cpuModel, r.model);
    // Replayed where the host CPUID source is another vendor's, or unusable.
    const bool amdModel = r.model.vendor == CpuVendor::kAmd;
    const std::string other = withHost(amdModel ? h.intel : h.amd);
    CommandRun v = testing::runCommand(other + kTtvm + " verify " + r.trace);
    EXPECT_EQ(v.status, 0) << v.output;
    CommandRun v2 = testing::runCommand(withHost("/nonexistent") + kTtvm + " verify " + r.trace);
    EXPECT_EQ(v2.status, 0) << v2.output;
    CommandRun rep = testing::runCommand(other + kTtvm + " report " + r.trace);
    ASSERT_EQ(rep.status, 0) << rep.output;
    const size_t serial = rep.output.find("### Last serial output");
    ASSERT_NE(serial, std::string::npos) << rep.output;
    EXPECT_EQ(guestLines(rep.output.substr(serial)), r.lines);
  }
  // Every model told the guest something else.
  EXPECT_EQ(distinct.size(), recs.size());
  EXPECT_NE(recs[0].lines[0], recs[2].lines[0]);  // GenuineIntel vs AuthenticAMD
  for (const Recording& r : recs) std::remove(r.trace.c_str());
}

// The registers at the end of a replay do not depend on the host: replayed
// on the real host, on a simulated AMD and on a simulated Intel host, a
// trace recorded with `--cpu-model host` on a simulated AMD host ends in the
// same state (and that state holds the AMD model's answers, not the host's).
TEST(CpuModelE2E, ReplayEndsInTheSameStateOnEveryHost) {
  ASSERT_TRUE(fs::exists(cpuidGuest())) << "build the rec_guest_rec_cpuid target first";
  const Hosts& h = hosts();
  const Recording r = recordWith("host", h.amd);
  ASSERT_EQ(r.model.vendor, CpuVendor::kAmd);
  std::map<std::string, std::string> regs;
  for (const std::string& env : {std::string(), withHost(h.amd), withHost(h.intel)}) {
    CommandRun c = testing::runCommand(env + kTtvm + " replay " + r.trace + " --to end --regs");
    ASSERT_EQ(c.status, 0) << env << c.output;
    regs[env] = c.output;
  }
  EXPECT_EQ(regs[""], regs[withHost(h.amd)]);
  EXPECT_EQ(regs[""], regs[withHost(h.intel)]);
  CommandRun info = testing::runCommand(kTtvm + " info " + r.trace);
  EXPECT_NE(info.output.find("AuthenticAMD family 25 model 1 stepping 1 (AMD EPYC 7763 64-Core "
                             "Processor), features of ttvm-x86-64 v1 (AMD)"),
            std::string::npos)
      << info.output;
  std::remove(r.trace.c_str());
}

// The cpu guest `syscall` takes the SYSRET its model declares: with `host`
// on a simulated AMD host the model runs AMD's SYSRET (a non-canonical RCX
// faults at CPL 3 after the return) and the guest expects it, on an Intel
// host the SDM's (#GP(0) on the SYSRET, at CPL 0); either expectation fails
// on the other's behaviour. Each passes, keeps the choice in its trace and
// verifies on the other vendor's host.
TEST(CpuModelE2E, TheSyscallGuestPassesWithEitherVendorsSysret) {
  const std::string guest = std::string(TTVM_BUILD_DIR) + "/tests/guests/cpu/syscall.elf";
  ASSERT_TRUE(fs::exists(guest)) << "build the guest_syscall target first";
  const Hosts& h = hosts();
  for (const bool amd : {true, false}) {
    SCOPED_TRACE(amd ? "AMD host" : "Intel host");
    const std::string trace = testing::tempTracePath(amd ? "syscall-amd" : "syscall-intel");
    CommandRun rec =
        testing::runCommand(withHost(amd ? h.amd : h.intel) + kTtvm +
                            " record --backend emu --cpu-model host -o " + trace + " " + guest);
    EXPECT_EQ(rec.status, 1) << rec.output;  // isa-debug-exit 0: every check held
    EXPECT_NE(rec.output.find("PASS: syscall"), std::string::npos) << rec.output;
    auto reader = TraceReader::open(trace);
    ASSERT_TRUE(reader.ok()) << reader.error().message;
    EXPECT_EQ(reader->header().cpuModel.sysretSkipsRipCheckAndSsCache, amd);
    // `ttvm info` says how the CPU that ran the guest behaved.
    CommandRun info = testing::runCommand(kTtvm + " info " + trace);
    EXPECT_EQ(info.output.find("  behaves as AMD: PUSH Sreg zero-extends; SYSRET as the APM (no "
                               "RCX check, SS's hidden parts kept);\n") != std::string::npos,
              amd)
        << info.output;
    CommandRun json = testing::runCommand(kTtvm + " info --json " + trace);
    const std::string flag = amd ? "true" : "false";
    EXPECT_NE(json.output.find("\"pushSegmentZeroExtends\": " + flag +
                               ", \"sysretSkipsRipCheckAndSsCache\": " + flag + "}"),
              std::string::npos)
        << json.output;
    CommandRun v =
        testing::runCommand(withHost(amd ? h.intel : h.amd) + kTtvm + " verify " + trace);
    EXPECT_EQ(v.status, 0) << v.output;
    std::remove(trace.c_str());
  }
}

TEST(CpuModelE2E, AnUnknownModelIsRefusedListingTheModels) {
  const std::string out = testing::tempTracePath("refused");
  for (const std::string& cmd : {" record --backend emu -o " + out, std::string(" lockstep")}) {
    CommandRun c = testing::runCommand(kTtvm + cmd + " --cpu-model pentium " + cpuidGuest());
    EXPECT_EQ(c.status, 64) << c.output;
    EXPECT_NE(c.output.find("--cpu-model 'pentium' is not a CPU model; the models are:"),
              std::string::npos)
        << c.output;
    for (const CpuModelChoice& m : kCpuModelChoices)
      EXPECT_NE(c.output.find(std::string("  ") + m.name + ": " + m.summary), std::string::npos)
          << c.output;
  }
  EXPECT_FALSE(fs::exists(out));
  // A host table that cannot be used names the file and the line.
  const std::string bad = writeFile(fs::path(out).replace_extension("cpuid").string(),
                                    "0 0 1 2 3 4\n1 0 000306a9 zz 0 0\n");
  CommandRun c = testing::runCommand(withHost(bad) + kTtvm + " record --backend emu -o " + out +
                                     " --cpu-model host " + cpuidGuest());
  EXPECT_EQ(c.status, 64) << c.output;
  EXPECT_NE(c.output.find(bad + ": line 2"), std::string::npos) << c.output;
  EXPECT_FALSE(fs::exists(out));
  std::remove(bad.c_str());
}

}  // namespace
}  // namespace ttvm
