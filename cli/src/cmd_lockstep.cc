// ttvm lockstep: run a guest under KVM (single-stepped) and in the emulator
// side by side and compare the whole architectural state after every
// instruction (recorder/lockstep.h). Prints the first difference with the
// instruction and both states, and exits non-zero.
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <optional>
#include <string>

#include "cli_args.h"
#include "commands.h"
#include "serial_console.h"
#include "ttvm/emulator/cpu_models.h"
#include "ttvm/kvm/kvm.h"
#include "ttvm/machine/loader.h"
#include "ttvm/machine/machine.h"
#include "ttvm/recorder/kvm_backend.h"
#include "ttvm/recorder/lockstep.h"

namespace ttvm::cli {
namespace {

constexpr const char* kUsage =
    "usage: ttvm lockstep [options] GUEST\n"
    "\n"
    "Runs GUEST under KVM, stepping it one instruction at a time\n"
    "(KVM_GUESTDBG_SINGLESTEP), and in ttvm's emulator beside it, and compares\n"
    "the architectural state after every instruction: GPRs, RIP, RFLAGS,\n"
    "segments, descriptor tables, control and debug registers, EFER and the\n"
    "other MSRs, x87/SSE, pending events, and the RAM pages the emulator wrote\n"
    "(all of RAM every --memory-every instructions and at the end). The devices\n"
    "run once, for KVM; the emulator gets the same answers. Differences the CPU\n"
    "model explains (flags the SDM leaves undefined, SVM's one interrupt-shadow\n"
    "bit, the x87 error pointers, a guest #DB KVM keeps while it steps) are\n"
    "counted, not reported (docs/kvm-recording.md). Guest output goes to stdout.\n"
    "\n"
    "options (the guest ones as for ttvm record):\n"
    "  --ram SIZE            guest RAM (default 256M)\n"
    "  --append CMDLINE      kernel command line\n"
    "  --initrd FILES        Linux initrd / multiboot modules, comma-separated\n"
    "  --load-addr ADDR      load GUEST as a flat binary at ADDR\n"
    "  --entry ADDR          flat binary entry point (default: the load address)\n"
    "  --mode M              flat binary CPU mode: real | prot | long (default prot)\n"
    "  --start-clock T       guest wall clock at step 0, seconds since 1970\n"
    "  --rng-seed N          seed of the RDRAND source\n"
    "  --max-steps N         stop after N instructions (0, the default: no limit)\n"
    "  --timeout S           stop after S seconds of wall time\n"
    "  --memory-every N      compare all of RAM every N instructions (default 4096)\n"
    "  --full-state-every N  read KVM's FPU, debug registers, XCR0 and MSRs back\n"
    "                        every N instructions (default 64; 1: after each), and\n"
    "                        after each instruction that can write them\n"
    "  --map-ram             have KVM map all guest RAM below 4 GiB before the guest\n"
    "                        runs, so that no first touch of a page exits in the\n"
    "                        middle of an event delivery (the nested VM's KVM then\n"
    "                        delivers an INT n's fault chain again from the next\n"
    "                        instruction); 0.3 ms a page in the nested VM\n"
    "  --keep-going[=N]      at a difference, print it, let the emulator take KVM's\n"
    "                        state and the RAM pages that differ, and go on; stop\n"
    "                        at the Nth difference (default 100; 0: no limit).\n"
    "                        The summary lists every difference\n"
    "  -v                    also print KVM's ioctls (count and time of each kind)\n"
    "  --cpu-model NAME      ttvm (default), baseline or host (as for ttvm record)\n"
    "  -h, --help            this text\n"
    "\n"
    "Exit status: 0 when the guest ended (or the limit came) with no difference;\n"
    "1 at the first difference (with --keep-going: when there was any); 64 bad usage; 66 GUEST "
    "cannot be used; 70 KVM\n"
    "could not run the guest; 78 no usable /dev/kvm (use ttvm record --backend emu).\n";

// --keep-going without N: enough for a guest's known cases, few enough to
// read when every instruction differs.
constexpr uint64_t kKeepGoingDefault = 100;

volatile std::sig_atomic_t gStop = 0;
void onSignal(int) {
  gStop = 1;
}

}  // namespace

int cmdLockstep(std::span<char* const> args) {
  std::string guestPath, append, initrd, modeText;
  uint64_t ram = 256ull << 20, maxSteps = 0, memoryEvery = 4096, loadAddr = 0, entry = 0,
           rngSeed = 0, fullStateEvery = 64, maxDifferences = 1;
  std::string timeoutText, startClockText;
  bool help = false, haveLoad = false, haveEntry = false, haveSeed = false, verbose = false,
       mapRam = false;
  CpuModel cpuModel = CpuModel::ttvmDefault();
  const Option options[] = {
      flagOption("-h", help),
      flagOption("-v", verbose),
      flagOption("--map-ram", mapRam),
      Option{"--help",
             {},
             false,
             [&help](const std::string&) {
               help = true;
               return Status();
             }},
      sizeOption("--ram", ram),
      textOption("--append", append),
      textOption("--initrd", initrd),
      Option{"--load-addr",
             {},
             true,
             [&](const std::string& v) {
               haveLoad = true;
               return parseU64(v, loadAddr) ? Status() : makeError("is not a number");
             }},
      Option{"--entry",
             {},
             true,
             [&](const std::string& v) {
               haveEntry = true;
               return parseU64(v, entry) ? Status() : makeError("is not a number");
             }},
      Option{"--rng-seed",
             {},
             true,
             [&](const std::string& v) {
               haveSeed = true;
               return parseU64(v, rngSeed) ? Status() : makeError("is not a number");
             }},
      textOption("--mode", modeText),
      textOption("--timeout", timeoutText),
      textOption("--start-clock", startClockText),
      numberOption("--max-steps", maxSteps, ~0ull),
      numberOption("--memory-every", memoryEvery, ~0ull),
      numberOption("--full-state-every", fullStateEvery, ~0ull),
      cpuModelOption("--cpu-model", cpuModel),
  };
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string a = args[i];
    if (a == "--keep-going") {
      maxDifferences = kKeepGoingDefault;
      continue;
    }
    if (a.starts_with("--keep-going=")) {
      if (!parseU64(a.substr(13), maxDifferences)) {
        std::fprintf(stderr, "ttvm lockstep: %s: N is not a number\n", a.c_str());
        return kExitUsage;
      }
      continue;
    }
    const Option* o = nullptr;
    for (const Option& c : options)
      if (a == c.name || (!c.alias.empty() && a == c.alias)) o = &c;
    if (o == nullptr) {
      if (!a.empty() && a[0] == '-') {
        std::fprintf(stderr, "ttvm lockstep: unknown option '%s' (see ttvm lockstep --help)\n",
                     a.c_str());
        return kExitUsage;
      }
      if (!guestPath.empty()) {
        std::fprintf(stderr, "ttvm lockstep: more than one guest given ('%s' and '%s')\n",
                     guestPath.c_str(), a.c_str());
        return kExitUsage;
      }
      guestPath = a;
      continue;
    }
    std::string v;
    if (o->hasValue) {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "ttvm lockstep: %s needs a value\n", a.c_str());
        return kExitUsage;
      }
      v = args[++i];
    }
    if (Status st = o->take(v); !st.ok()) {
      std::fprintf(stderr, "ttvm lockstep: %s '%s' %s\n", a.c_str(), v.c_str(),
                   st.error().message.c_str());
      return kExitUsage;
    }
  }
  if (help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (guestPath.empty()) {
    std::fputs(kUsage, stderr);
    return kExitUsage;
  }
  double timeout = 0, startClock = 0;
  if (!timeoutText.empty() && !parseSeconds(timeoutText, 1e9, timeout)) {
    std::fprintf(stderr, "ttvm lockstep: --timeout '%s' is not a number of seconds\n",
                 timeoutText.c_str());
    return kExitUsage;
  }
  if (!startClockText.empty() && !parseSeconds(startClockText, 9e9, startClock)) {
    std::fprintf(stderr, "ttvm lockstep: --start-clock '%s' is not a number of seconds\n",
                 startClockText.c_str());
    return kExitUsage;
  }
  std::optional<machine::GuestMode> mode;
  if (modeText == "real") {
    mode = machine::GuestMode::kReal;
  } else if (modeText == "prot" || modeText == "protected") {
    mode = machine::GuestMode::kProtected;
  } else if (modeText == "long") {
    mode = machine::GuestMode::kLong;
  } else if (!modeText.empty()) {
    std::fprintf(stderr, "ttvm lockstep: --mode '%s': use real, prot or long\n", modeText.c_str());
    return kExitUsage;
  }
  if (Status st = machine::Machine::checkRamSize(ram); !st.ok()) {
    std::fprintf(stderr, "ttvm lockstep: --ram: %s\n", st.error().message.c_str());
    return kExitUsage;
  }

  // KVM first: without it there is nothing to compare against.
  auto kvmDevice = kvm::Kvm::open();
  Status usable = kvmDevice ? kvmDevice->checkGuestCpuid() : Status(kvmDevice.error());
  if (!usable.ok()) {
    std::fprintf(stderr, "ttvm lockstep: needs KVM: %s\n", usable.error().message.c_str());
    return kExitConfig;
  }
  // The emulator does what this host's CPU does where the SDM lets vendors
  // differ (as `ttvm record --backend kvm` records it).
  auto hostCpuid = kvmDevice->supportedCpuid();
  if (!hostCpuid) {
    std::fprintf(stderr, "ttvm lockstep: %s\n", hostCpuid.error().message.c_str());
    return kExitConfig;
  }
  behaveAsHost(cpuModel, *hostCpuid);

  auto file = machine::readFileBytes(guestPath, ram, "of guest RAM (--ram)");
  if (!file) {
    std::fprintf(stderr, "ttvm lockstep: %s\n", file.error().message.c_str());
    return kExitNoInput;
  }
  machine::MachineOptions mo;
  mo.ramBytes = ram;
  mo.startClockUnixNs = static_cast<int64_t>(startClock * 1e9);
  mo.cmdline = append;
  mo.cpuModel = cpuModel;
  mo.rngSeed = haveSeed ? rngSeed : static_cast<uint64_t>(mo.startClockUnixNs);
  auto machine = machine::Machine::create(mo);
  if (!machine) {
    std::fprintf(stderr, "ttvm lockstep: %s\n", machine.error().message.c_str());
    return kExitConfig;
  }
  StdoutConsole console;
  (*machine)->setConsole(&console);
  machine::LoadOptions lo;
  lo.name = guestPath;
  lo.append = append;
  if (haveLoad) lo.loadAddress = loadAddr;
  if (haveEntry) lo.entry = entry;
  lo.mode = mode;
  for (size_t pos = 0; !initrd.empty() && pos <= initrd.size();) {
    const size_t comma = initrd.find(',', pos);
    std::string item = initrd.substr(pos, comma == std::string::npos ? comma : comma - pos);
    if (!item.empty()) lo.modules.push_back(item);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  auto guest = machine::loadGuest(**machine, *file, lo);
  if (!guest) {
    std::fprintf(stderr, "ttvm lockstep: %s\n", guest.error().message.c_str());
    return kExitNoInput;
  }

  LockstepOptions opt;
  opt.maxSteps = maxSteps;
  opt.timeoutSeconds = timeout;
  opt.memoryCompareInterval = memoryEvery;
  opt.fullStateInterval = fullStateEvery;
  opt.interruptFlag = &gStop;
  opt.maxDifferences = maxDifferences;
  const bool keepGoing = maxDifferences != 1;
  if (keepGoing) {
    // Each difference as it comes, as the run without --keep-going prints
    // its only one.
    opt.onDifference = [](const LockstepResult& d) {
      std::fflush(stdout);
      std::fprintf(stderr, "\nttvm lockstep: %s (difference %zu; the emulator takes KVM's side)\n",
                   d.found.back().message.c_str(), d.found.size());
      std::fputs(describeDifference(d).c_str(), stderr);
    };
  }
  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  const kvm::Kvm& k = *kvmDevice;
  const KvmBackend* kvmBackend = nullptr;  // owned by lockstep
  Lockstep lockstep(
      **machine, guest->cpu,
      [&k, &kvmBackend, mapRam](const CpuModel& model, PhysicalMemory memory,
                                Environment& env) -> Result<std::unique_ptr<machine::CpuBackend>> {
        auto b = KvmBackend::create(k, model, std::move(memory), env);
        if (!b) return b.error();
        if (mapRam) {
          if (Status st = (*b)->mapAllRam(); !st.ok()) return st.error();
        }
        kvmBackend = b->get();
        return std::unique_ptr<machine::CpuBackend>(std::move(*b));
      },
      opt);
  if (Status st = lockstep.start(); !st.ok()) {
    std::fprintf(stderr, "ttvm lockstep: %s\n", st.error().message.c_str());
    return kExitSoftware;
  }
  const LockstepResult r = lockstep.run();
  console.flush();
  std::fflush(stdout);
  using End = LockstepResult::End;
  std::fprintf(stderr, "\nttvm lockstep: %s\n", r.message.c_str());
  std::fprintf(stderr,
               "  compared %" PRIu64 " instructions (%" PRIu64
               " emulator steps) in %.2f s, all of RAM %" PRIu64 " times\n",
               r.steps, r.followerSteps, r.wallSeconds, r.memoryCompares);
  if (r.wallSeconds > 0)
    std::fprintf(stderr,
                 "  speed    %.0f instructions/s; %" PRIu64
                 " steps read KVM's FPU, debug registers, XCR0 and MSRs back only in part\n",
                 double(r.steps) / r.wallSeconds, r.partialReads);
  if (verbose && kvmBackend != nullptr) {
    uint64_t calls = 0;
    for (const auto& st : kvmBackend->ioctlStats()) calls += st.calls;
    std::fprintf(stderr, "  ioctls   %" PRIu64 " (%.2f per instruction)\n", calls,
                 r.steps > 0 ? double(calls) / double(r.steps) : 0.0);
    for (const auto& st : kvmBackend->ioctlStats())
      std::fprintf(stderr, "           %-22s %9" PRIu64 " x %8.1f us = %7.3f s\n", st.name,
                   st.calls, st.calls > 0 ? double(st.ns) / double(st.calls) / 1e3 : 0.0,
                   double(st.ns) / 1e9);
  }
  for (const auto& [reason, count] : r.masked)
    std::fprintf(stderr, "  masked   %" PRIu64 " x %.*s\n", count,
                 static_cast<int>(maskReasonName(reason).size()), maskReasonName(reason).data());
  if (keepGoing) {
    std::fprintf(stderr, "  differences %zu%s\n", r.found.size(),
                 r.found.empty() ? "" : " (each printed above):");
    for (size_t i = 0; i < r.found.size(); ++i) {
      const LockstepDifference& d = r.found[i];
      std::fprintf(stderr,
                   "  difference %zu at instruction %" PRIu64 ": %#" PRIx64 " %s: %s; %" PRIu64
                   " pages taken\n",
                   i + 1, d.step, d.rip,
                   !d.instruction.empty()                              ? d.instruction.c_str()
                   : d.message.find("at the end") != std::string::npos ? "(the end)"
                                                                       : "(bytes not readable)",
                   d.first.c_str(), d.pagesAdopted);
    }
  }
  switch (r.end) {
    case End::kDifference:
      if (!keepGoing) std::fputs(describeDifference(r).c_str(), stderr);
      return 1;
    case End::kReferenceFailed: return kExitSoftware;
    case End::kInterrupted: return 130;
    default:
      if (!r.found.empty()) return 1;
      std::fprintf(stderr, "  result   no difference\n");
      return 0;
  }
}

}  // namespace ttvm::cli
