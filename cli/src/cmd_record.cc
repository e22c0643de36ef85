// ttvm record: boot a guest on ttvm's small PC under the emulator or KVM
// backend and write every input it receives into a trace. Guest console output goes to
// stdout; ttvm's own messages and the end-of-run summary go to stderr.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "cli_args.h"
#include "commands.h"
#include "disk_options.h"
#include "serial_console.h"
#include "ttvm/base/log.h"
#include "ttvm/emulator/cpu_model.h"
#include "ttvm/emulator/cpu_models.h"
#include "ttvm/kvm/kvm.h"
#include "ttvm/machine/devices/uart_16550.h"
#include "ttvm/machine/disk_image.h"
#include "ttvm/machine/loader.h"
#include "ttvm/machine/machine.h"
#include "ttvm/recorder/emu_backend.h"
#include "ttvm/recorder/kvm_backend.h"
#include "ttvm/recorder/record_session.h"
#include "ttvm/replayer/guest_symbols.h"

namespace ttvm::cli {
using ttvm::machine::DiskImage;
using ttvm::machine::GuestMode;
using ttvm::machine::loadBootDisk;
using ttvm::machine::loadGuest;
using ttvm::machine::LoadOptions;
using ttvm::machine::Machine;
using ttvm::machine::MachineOptions;
using ttvm::machine::readFileBytes;
namespace {

constexpr const char* kUsage =
    "usage: ttvm record [options] GUEST\n"
    "       ttvm record [options] --disk IMAGE...\n"
    "       ttvm record [options] --kernel bzImage [--initrd FILE] [--append CMDLINE]\n"
    "\n"
    "Boots GUEST on ttvm's PC (16550A serial, 8259 PICs, 8254 PIT, CMOS RTC, local\n"
    "and I/O APIC, fw_cfg, ACPI tables, isa-debug-exit, pvpanic, pc-testdev) and\n"
    "records every input into a trace. GUEST is a multiboot kernel, an ELF32/ELF64\n"
    "file, a Linux bzImage, a boot sector, or a flat binary (with --load-addr).\n"
    "Guest serial and debug-console output goes to stdout; ttvm's messages go to\n"
    "stderr.\n"
    "\n"
    "options:\n"
    "  -o, --output FILE     trace file (default: GUEST's name with .ttvm, in the\n"
    "                        current directory)\n"
    "  --no-trace            run without writing a trace\n"
    "  --no-kvm-stop-points  under KVM, virtual time follows exits only (a guest\n"
    "                        that waits for a timer without exiting waits forever);\n"
    "                        by default it follows the wall time the guest runs and\n"
    "                        a guest that computes without exiting is stopped where\n"
    "                        a timer falls due (a stop point the replay finds by\n"
    "                        its state; --kvm-stop-points says so explicitly)\n"
    "  --kvm-trap-tsc        under KVM, keep the RAM pages that hold RDTSC or RDTSCP\n"
    "                        when the guest starts out of KVM's memory: ttvm's\n"
    "                        emulator runs every instruction fetched from them, so\n"
    "                        the TSC values they read (the virtual clock) are in\n"
    "                        the trace and the replay gets past them. Slower where\n"
    "                        the guest runs or reads those pages; code the guest\n"
    "                        writes itself later is not covered\n"
    "                        (docs/kvm-recording.md)\n"
    "  --cpuid-hide LIST     clear these features from the guest's CPUID (the trace\n"
    "                        keeps the model): tsc, rdtscp, rdrand, rdseed, rdpid,\n"
    "                        comma-separated, or all. KVM lets a guest execute\n"
    "                        these untrapped with host values a trace cannot hold;\n"
    "                        a guest that checks CPUID then does without them\n"
    "                        (docs/kvm-recording.md)\n"
    "  --backend B           auto | emu | kvm (default auto: KVM where /dev/kvm opens\n"
    "                        and shows the guest ttvm's CPUID, else the emulator;\n"
    "                        it says which). Under KVM events carry exit numbers and\n"
    "                        every device answer is logged (docs/kvm-recording.md)\n"
    "  --cpu-model NAME      what CPUID and the model's MSRs tell the guest; the\n"
    "                        trace keeps the table, so a replay answers the same on\n"
    "                        any host (docs/cpu-models.md):\n"
    "                          ttvm      every feature the emulator implements\n"
    "                                    (the default)\n"
    "                          baseline  x86-64-v1, what every x86-64 CPU has\n"
    "                          host      this host's vendor, family, model and\n"
    "                                    brand, with the features of 'ttvm' it has\n"
    "  --engine E            the emulator's engine: reference (default) or fast\n"
    "                        (blocks translated once; the same steps, events and\n"
    "                        states; docs/emulator.md). Replays run the fast engine by\n"
    "                        default, checked against the trace; the trace itself, the\n"
    "                        ground truth, is recorded on the reference\n"
    "                        (docs/time-travel.md)\n"
    "  --ram SIZE            guest RAM, e.g. 256M, 1G (default 256M; 2M to 3G); RAM\n"
    "                        the guest never touches costs nothing\n"
    "  --kernel FILE         the guest is this kernel (Linux bzImage, multiboot or\n"
    "                        ELF), as QEMU's -kernel; instead of GUEST\n"
    "  --append CMDLINE      kernel command line (Linux, multiboot; also fw_cfg)\n"
    "  --initrd FILES        Linux: the initrd (several files, comma-separated, are\n"
    "                        put back to back); multiboot: modules, each\n"
    "                        'FILE[ ARGS]'\n"
    "  --load-addr ADDR      load GUEST as a flat binary at ADDR\n"
    "  --entry ADDR          flat binary entry point (default: the load address)\n"
    "  --mode M              flat binary CPU mode: real | prot | long (default prot)\n"
    "  --max-steps N         end the run after N steps (0, the default: no limit)\n"
    "  --timeout S           end the run after S seconds of wall time (0, the default:\n"
    "                        no limit)\n"
    "  --start-clock T       guest wall clock at step 0, seconds since 1970 (default:\n"
    "                        now); also the trace's creation time, so two recordings\n"
    "                        of the same guest are identical\n"
    "  --rng-seed N          seed of the RDRAND source (default: from the start clock)\n"
    "  --digest-interval N   state digest every N steps, N >= 1 (default 65536)\n"
    "  --snapshot-every N    a full snapshot (seek point) every N steps (0, the default:\n"
    "                        none)\n"
    "  --realtime            while the guest idles, let its timers run at wall-clock\n"
    "                        speed (default: jump to the next timer at once)\n"
    "  --log-device-reads    also log every answer the devices give (port and MMIO\n"
    "                        reads and writes, TSC, RDRAND, MSRs, interrupts): the\n"
    "                        replay computes them anyway and checks each against its\n"
    "                        own devices, naming the first that differs (a larger\n"
    "                        trace; for debugging a divergence)\n"
    "  --disk IMAGE          a raw disk image on the IDE controller; repeatable, in\n"
    "                        IDE order (primary master, primary slave, secondary\n"
    "                        master, secondary slave). Without GUEST, the first disk\n"
    "                        boots as a BIOS hands over (sector 0 at 0x7c00, real\n"
    "                        mode, DL = 0x80). The image is never written: guest\n"
    "                        writes stay in memory; the trace holds what the guest\n"
    "                        read, so replay needs no image\n"
    "  --drive file=IMAGE[,format=raw][,if=ide][,index=N]\n"
    "                        QEMU's spelling of --disk (index = IDE slot 0-3)\n"
    "  --serial-input FILE   COM1's line input: FILE's bytes, each sent when the guest\n"
    "                        can take it (receive FIFO empty, RTS asserted, no\n"
    "                        loopback); the trace keeps what the guest read, so\n"
    "                        replay needs no FILE. stdin is then left alone\n"
    "  -v, --verbose         more messages (loader, devices, timing)\n"
    "  -h, --help            this text\n"
    "\n"
    "With stdin a terminal (and no --serial-input) the terminal is the serial\n"
    "console, as in QEMU's -nographic: raw mode, Ctrl-C goes to the guest,\n"
    "Ctrl-A x ends the recording (interrupted), Ctrl-A Ctrl-A sends Ctrl-A.\n"
    "\n"
    "Exit status: the guest's isa-debug-exit status ((value << 1) | 1, always odd)\n"
    "when it used that device; otherwise how the run ended: 0 shutdown, 2 reset,\n"
    "4 triple fault, 6 panic, 8 hang, 10 step limit, 124 timeout, 130 interrupted.\n"
    "ttvm's own failures have even statuses of their own (as sysexits.h names them):\n"
    "  64  bad usage: unknown option, missing or malformed value\n"
    "  66  GUEST or an --initrd, --disk or --serial-input file cannot be used\n"
    "      (missing, not a regular file, too large, not in a format ttvm loads,\n"
    "      more disks than IDE slots)\n"
    "  70  internal error (a bug in ttvm, or KVM could not run the guest; the\n"
    "      trace's footer says which)\n"
    "  74  the trace cannot be created or written (its readable prefix stays)\n"
    "  78  this host cannot provide what was asked (the KVM backend, the RAM)\n";

// `model` without the features of LIST (--cpuid-hide: names of
// hideableCpuidFeatures(), comma-separated, or "all").
Result<CpuModel> hideCpuidFeatures(CpuModel model, std::string_view list) {
  std::string names;
  for (const CpuidFeature& f : hideableCpuidFeatures())
    names += (names.empty() ? "" : ", ") + std::string(f.name);
  if (list == "all") {
    for (const CpuidFeature& f : hideableCpuidFeatures()) model = hideFeature(model, f);
    return model;
  }
  for (size_t pos = 0; pos <= list.size();) {
    const size_t comma = std::min(list.find(',', pos), list.size());
    const std::string_view name = list.substr(pos, comma - pos);
    const CpuidFeature* f = findCpuidFeature(name);
    if (f == nullptr)
      return makeError("'" + std::string(name) + "' is not a feature ttvm hides (" + names +
                       ", or all)");
    model = hideFeature(model, *f);
    pos = comma + 1;
  }
  return model;
}

// --timeout and --start-clock become nanosecond counts in int64_t (2^63 ns is
// about 292 years): the bounds keep them inside it.
constexpr double kMaxTimeoutSeconds = 1e9;
constexpr double kMaxStartClockSeconds = 9e9;
// --serial-input is read whole before the run.
constexpr uint64_t kMaxSerialInputBytes = 1ull << 30;

volatile std::sig_atomic_t gInterrupted = 0;
RecordSession* gActiveSession = nullptr;  // for the fatal-signal handler only
volatile std::sig_atomic_t gInFatalHandler = 0;

// Ctrl-C, SIGTERM, SIGHUP: end the run and close the trace. A second signal
// (GNU timeout signals the child and then its whole process group; an
// impatient Ctrl-C) must not abort the close: the footer is written within
// a slice and the tail's re-execution, well under a second. Only SIGKILL
// stops a recorder without its footer, and `ttvm recover` completes that.
void onInterrupt(int) {
  if (gInterrupted) {
    static const char kNote[] = "ttvm record: already stopping; the trace is being closed\n";
    (void)!write(STDERR_FILENO, kNote, sizeof kNote - 1);
    return;
  }
  gInterrupted = kInterruptBySignal;
}

// A crash of ttvm itself (a bug, or an assertion's abort): close the trace
// with an internal-error footer if the writer is in a usable state. Guarded
// against re-entry, and bounded by an alarm in case the crash left a lock held.
void onFatalSignal(int sig) {
  restoreTerminal();
  if (gInFatalHandler == 0 && gActiveSession != nullptr) {
    gInFatalHandler = 1;
    alarm(5);
    char msg[96];
    std::snprintf(msg, sizeof msg,
                  "ttvm crashed with signal %d (%s); footer written by the crash handler", sig,
                  strsignal(sig));
    gActiveSession->emergencyClose(msg);
  }
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

std::string baseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string hostDescription() {
  utsname u{};
  if (uname(&u) != 0) return "unknown host";
  return std::string(u.sysname) + " " + u.release + " " + u.machine;
}

int exitStatusFor(const TraceEnd& end) {
  switch (end.reason) {
    case EndReason::kExitDevice: return static_cast<int>(((end.exitStatus << 1) | 1) & 0xFF);
    case EndReason::kShutdown: return 0;
    case EndReason::kReset: return 2;
    case EndReason::kTripleFault: return 4;
    case EndReason::kPanic: return 6;
    case EndReason::kHang: return 8;
    case EndReason::kMaxSteps: return 10;
    case EndReason::kTimeout: return 124;
    case EndReason::kInterrupted: return 130;
    case EndReason::kInternalError: return kExitSoftware;
  }
  return kExitSoftware;
}

const char* modeName(CpuMode m) {
  switch (m) {
    case CpuMode::kReal: return "real mode";
    case CpuMode::kVirtual8086: return "virtual-8086 mode";
    case CpuMode::kProtected16: return "16-bit protected mode";
    case CpuMode::kProtected32: return "32-bit protected mode";
    case CpuMode::kCompatibility16: return "16-bit compatibility mode";
    case CpuMode::kCompatibility32: return "32-bit compatibility mode";
    case CpuMode::kLong64: return "64-bit mode";
  }
  return "?";
}

void printSummary(const RecordResult& r, const TraceHeader& header, const machine::CpuBackend* cpu,
                  const std::string& tracePath, bool verbose, const std::string& guestDescription) {
  const TraceEnd& e = r.end;
  const CpuState& s = e.finalCpu;
  std::fflush(stdout);
  std::fprintf(stderr, "\nttvm record: %.*s — %s\n",
               static_cast<int>(endReasonName(e.reason).size()), endReasonName(e.reason).data(),
               e.message.c_str());
  if (header.backend == Backend::kKvm) {
    // Under KVM the position is the exit number (no step count).
    double rate = r.wallSeconds > 0 ? static_cast<double>(e.steps) / r.wallSeconds : 0;
    std::fprintf(stderr, "  exits    %" PRIu64 " in %.3f s (%.0f exits/s, KVM)\n", e.steps,
                 r.wallSeconds, rate);
    if (const auto* k = dynamic_cast<const KvmBackend*>(cpu); k != nullptr && verbose) {
      const KvmBackend::ExitCounts& c = k->exitCounts();
      std::fprintf(stderr,
                   "  kvm      %" PRIu64 " I/O, %" PRIu64 " MMIO, %" PRIu64 " MSR, %" PRIu64
                   " HLT, %" PRIu64 " CR8-lowering exits; %" PRIu64 " interrupt windows, %" PRIu64
                   " kicks, %" PRIu64 " stop points (%" PRIu64
                   " instructions stepped past a possible shadow), %" PRIu64
                   " single-step traps after MMIO writes queued by ttvm, %" PRIu64
                   " REP string port iterations stepped one by one under the guest's TF, %" PRIu64
                   " I/O breakpoint traps after port exits queued by ttvm\n",
                   c.io, c.mmio, c.msr, c.hlt, c.setTpr, c.window, c.kicks, c.stops, c.shadowSteps,
                   c.repairedTraps, c.repIterations, c.ioBreakpoints);
      std::fprintf(stderr, "  pmu      %s\n", k->pmuNote().c_str());
      std::fprintf(stderr, "  msrs     %s\n", k->msrNote().c_str());
      std::fprintf(stderr, "  tsc      %s\n", k->tscNote().c_str());
      if (!header.emulatedPages.empty())
        std::fprintf(stderr,
                     "  emulated %zu pages holding RDTSC/RDTSCP: %" PRIu64
                     " instructions run by ttvm's emulator, %" PRIu64
                     " of the guest's accesses to those pages served from RAM\n",
                     header.emulatedPages.size(), c.emulated, c.emulatedRam);
    }
  } else {
    double mips = r.wallSeconds > 0 ? static_cast<double>(e.steps) / r.wallSeconds / 1e6 : 0;
    std::fprintf(stderr, "  steps    %" PRIu64 " in %.3f s (%.1f M steps/s)\n", e.steps,
                 r.wallSeconds, mips);
    if (const auto* emu = dynamic_cast<const EmuBackend*>(cpu);
        emu != nullptr && emu->cpu().engine() == CpuEngine::kFast)
      std::fprintf(stderr, "  engine   fast: %s\n", describe(emu->cpu().engineStats()).c_str());
  }
  GuestSymbols symbols(header);
  uint64_t linear = cpuMode(s) == CpuMode::kLong64 ? s.rip : s.segment(SegReg::kCs).base + s.rip;
  std::string where;
  if (auto name = symbols.describe(linear)) where = " <" + *name + ">";
  std::string text = "(instruction bytes not readable)";
  std::vector<uint8_t> bytes(15);
  for (size_t n = 15; n > 0 && cpu != nullptr; --n) {
    bytes.resize(n);
    if (cpu->readLinear(linear, bytes)) {
      Disassembly d = disassemble(bytes, cpuMode(s), linear);
      text = d.length != 0 ? d.text : "(undecodable bytes)";
      break;
    }
  }
  std::fprintf(stderr, "  rip      0x%" PRIx64 "%s  %s  [%s]\n", s.rip, where.c_str(), text.c_str(),
               modeName(cpuMode(s)));
  if (!tracePath.empty()) {
    std::fprintf(stderr, "  trace    %s: %" PRIu64 " bytes, %" PRIu64 " events\n",
                 tracePath.c_str(), r.traceBytes, r.events);
  } else {
    std::fprintf(stderr, "  trace    none (--no-trace)\n");
  }
  if (verbose) std::fprintf(stderr, "  guest    %s\n", guestDescription.c_str());
  for (const std::string& u : r.unimplemented)
    std::fprintf(stderr, "  note     the emulator met an unimplemented instruction: %s\n",
                 u.c_str());
}

}  // namespace

int cmdRecord(std::span<char* const> args) {
  std::string output, guestPath, append, initrd, serialInput, backend = "auto";
  std::optional<std::string> cpuidHide;  // --cpuid-hide, applied to --cpu-model's model
  CpuEngine engine = CpuEngine::kReference;
  std::vector<DiskSpec> disks;
  bool noTrace = false, stopPoints = true, verbose = false, realtime = false, kernelOnly = false,
       logDeviceReads = false, trapTsc = false;
  uint64_t ram = 256ull << 20, maxSteps = 0, digestInterval = 1u << 16, snapshotEvery = 0;
  double timeout = 0;
  std::optional<uint64_t> loadAddr, entry, rngSeed;
  std::optional<GuestMode> mode;
  std::optional<double> startClock;
  CpuModel cpuModel = CpuModel::ttvmDefault();

  auto need = [&](size_t& i, const char* opt) -> const char* {
    if (i + 1 >= args.size()) {
      std::fprintf(stderr, "ttvm record: %s needs a value\n", opt);
      return nullptr;
    }
    return args[++i];
  };
  for (size_t i = 1; i < args.size(); ++i) {
    std::string a = args[i];
    const char* v = nullptr;
    uint64_t n = 0;
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "-v" || a == "--verbose") {
      verbose = true;
    } else if (a == "--no-trace") {
      noTrace = true;
    } else if (a == "--realtime") {
      realtime = true;
    } else if (a == "--kvm-stop-points") {
      stopPoints = true;
    } else if (a == "--no-kvm-stop-points") {
      stopPoints = false;
    } else if (a == "--kvm-trap-tsc") {
      trapTsc = true;
    } else if (a == "--log-device-reads") {
      logDeviceReads = true;
    } else if (a == "-o" || a == "--output") {
      if (!(v = need(i, "-o"))) return kExitUsage;
      output = v;
    } else if (a == "--engine") {
      if (!(v = need(i, "--engine"))) return kExitUsage;
      if (!parseEngine(v)) {
        std::fprintf(stderr, "ttvm record: --engine '%s': use fast or reference\n", v);
        return kExitUsage;
      }
      engine = *parseEngine(v);
    } else if (a == "--cpu-model") {
      if (!(v = need(i, "--cpu-model"))) return kExitUsage;
      Option o = cpuModelOption("--cpu-model", cpuModel);
      if (Status st = o.take(v); !st.ok()) {
        std::fprintf(stderr, "ttvm record: --cpu-model '%s' %s\n", v, st.error().message.c_str());
        return kExitUsage;
      }
    } else if (a == "--cpuid-hide") {
      if (!(v = need(i, "--cpuid-hide"))) return kExitUsage;
      cpuidHide = v;
    } else if (a == "--backend") {
      if (!(v = need(i, "--backend"))) return kExitUsage;
      backend = v;
    } else if (a == "--ram") {
      if (!(v = need(i, "--ram"))) return kExitUsage;
      if (!parseSize(v, ram)) {
        std::fprintf(stderr, "ttvm record: --ram '%s' is not a size (e.g. 256M, 1G)\n", v);
        return kExitUsage;
      }
      if (Status st = Machine::checkRamSize(ram); !st.ok()) {
        std::fprintf(stderr, "ttvm record: --ram '%s': %s\n", v, st.error().message.c_str());
        return kExitUsage;
      }
    } else if (a == "--append") {
      if (!(v = need(i, "--append"))) return kExitUsage;
      append = v;
    } else if (a == "--disk") {
      if (!(v = need(i, "--disk"))) return kExitUsage;
      disks.push_back({v, std::nullopt});
    } else if (a == "--drive" || a == "-drive") {
      if (!(v = need(i, "--drive"))) return kExitUsage;
      auto spec = parseDriveOption(v);
      if (!spec) {
        std::fprintf(stderr, "ttvm record: %s\n", spec.error().message.c_str());
        return kExitUsage;
      }
      disks.push_back(std::move(*spec));
    } else if (a == "--serial-input") {
      if (!(v = need(i, "--serial-input"))) return kExitUsage;
      serialInput = v;
    } else if (a == "--kernel") {
      if (!(v = need(i, "--kernel"))) return 64;
      if (!guestPath.empty()) {
        std::fprintf(stderr, "ttvm record: more than one guest given ('%s' and --kernel '%s')\n",
                     guestPath.c_str(), v);
        return 64;
      }
      guestPath = v;
      kernelOnly = true;
    } else if (a == "--initrd") {
      if (!(v = need(i, "--initrd"))) return kExitUsage;
      initrd = v;
    } else if (a == "--load-addr" || a == "--entry" || a == "--max-steps" || a == "--rng-seed" ||
               a == "--digest-interval" || a == "--snapshot-every") {
      if (!(v = need(i, a.c_str()))) return kExitUsage;
      if (!parseU64(v, n)) {
        std::fprintf(stderr, "ttvm record: %s '%s' is not a number\n", a.c_str(), v);
        return kExitUsage;
      }
      if (a == "--load-addr")
        loadAddr = n;
      else if (a == "--entry")
        entry = n;
      else if (a == "--max-steps")
        maxSteps = n;
      else if (a == "--rng-seed")
        rngSeed = n;
      else if (a == "--snapshot-every")
        snapshotEvery = n;
      else if (n != 0)
        digestInterval = n;
      else {
        std::fprintf(stderr, "ttvm record: --digest-interval 0: the interval is at least 1\n");
        return kExitUsage;
      }
    } else if (a == "--mode") {
      if (!(v = need(i, "--mode"))) return kExitUsage;
      std::string m = v;
      if (m == "real")
        mode = GuestMode::kReal;
      else if (m == "prot" || m == "protected")
        mode = GuestMode::kProtected;
      else if (m == "long")
        mode = GuestMode::kLong;
      else {
        std::fprintf(stderr, "ttvm record: --mode '%s': use real, prot or long\n", v);
        return kExitUsage;
      }
    } else if (a == "--timeout" || a == "--start-clock") {
      if (!(v = need(i, a.c_str()))) return kExitUsage;
      const double max = a == "--timeout" ? kMaxTimeoutSeconds : kMaxStartClockSeconds;
      double d = 0;
      if (!parseSeconds(v, max, d)) {
        std::fprintf(stderr, "ttvm record: %s '%s' is not a number of seconds from 0 to %.0f\n",
                     a.c_str(), v, max);
        return kExitUsage;
      }
      if (a == "--timeout")
        timeout = d;
      else
        startClock = d;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "ttvm record: unknown option '%s' (see ttvm record --help)\n",
                   a.c_str());
      return kExitUsage;
    } else if (guestPath.empty()) {
      guestPath = a;
    } else if (kernelOnly) {
      std::fprintf(stderr, "ttvm record: more than one guest given (--kernel '%s' and '%s')\n",
                   guestPath.c_str(), a.c_str());
      return 64;
    } else {
      std::fprintf(stderr, "ttvm record: more than one guest given ('%s' and '%s')\n",
                   guestPath.c_str(), a.c_str());
      return kExitUsage;
    }
  }
  if (guestPath.empty() && disks.empty()) {
    std::fputs(kUsage, stderr);
    return kExitUsage;
  }
  // -v adds the recorder's info lines to what TTVM_LOG asks for (which wins
  // where it names the recorder too).
  if (verbose) {
    const char* env = std::getenv("TTVM_LOG");
    setLogSpec(std::string("recorder=info") + (env != nullptr ? std::string(",") + env : ""));
  }
  if (cpuidHide) {
    auto hidden = hideCpuidFeatures(cpuModel, *cpuidHide);
    if (!hidden) {
      std::fprintf(stderr, "ttvm record: --cpuid-hide: %s\n", hidden.error().message.c_str());
      return kExitUsage;
    }
    cpuModel = std::move(*hidden);
  }
  if (backend != "auto" && backend != "emu" && backend != "kvm") {
    std::fprintf(stderr, "ttvm record: --backend '%s': use auto, emu or kvm\n", backend.c_str());
    return kExitUsage;
  }
  // KVM is usable when /dev/kvm opens and its guests see the CPUID table
  // (some paravirtualized /dev/kvm devices show them the host's).
  std::optional<kvm::Kvm> kvmDevice;
  if (backend != "emu") {
    auto k = kvm::Kvm::open();
    Status usable = k ? k->checkGuestCpuid() : Status(k.error());
    if (usable.ok()) {
      kvmDevice.emplace(std::move(*k));
      // The guest runs on the host's CPU: where the SDM leaves the vendor a
      // choice, the replay does what this host does.
      auto hostCpuid = kvmDevice->supportedCpuid();
      if (!hostCpuid) {
        std::fprintf(stderr, "ttvm record: --backend kvm: %s\n", hostCpuid.error().message.c_str());
        return kExitConfig;
      }
      behaveAsHost(cpuModel, *hostCpuid);
      if (backend == "auto") std::fprintf(stderr, "ttvm record: backend: kvm (/dev/kvm)\n");
    } else if (backend == "kvm") {
      std::fprintf(stderr, "ttvm record: --backend kvm: %s\n", usable.error().message.c_str());
      return kExitConfig;
    } else {
      std::fprintf(stderr, "ttvm record: backend: emu (KVM is not usable here: %s)\n",
                   usable.error().message.c_str());
    }
  }

  // From here on Ctrl-C/SIGTERM end the run cleanly (a signal during set-up
  // ends it at step 0 with a complete trace).
  std::signal(SIGINT, onInterrupt);
  std::signal(SIGTERM, onInterrupt);
  std::signal(SIGHUP, onInterrupt);
  auto file = guestPath.empty() ? std::vector<uint8_t>()
                                : readFileBytes(guestPath, ram, "of guest RAM (--ram)");
  if (!file) {
    std::fprintf(stderr, "ttvm record: %s\n", file.error().message.c_str());
    return kExitNoInput;
  }
  int64_t createdNs = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  int64_t startNs = startClock ? static_cast<int64_t>(*startClock * 1e9) : createdNs;
  if (startClock) createdNs = startNs;

  MachineOptions mo;
  mo.ramBytes = ram;
  mo.startClockUnixNs = startNs;
  mo.cmdline = append;
  mo.cpuModel = cpuModel;
  mo.rngSeed = rngSeed.value_or(static_cast<uint64_t>(startNs));
  auto machine = Machine::create(mo);
  if (!machine) {
    std::fprintf(stderr, "ttvm record: %s\n", machine.error().message.c_str());
    return kExitConfig;
  }
  StdoutConsole console;
  (*machine)->setConsole(&console);
  if (!serialInput.empty()) {
    auto bytes = readFileBytes(serialInput, kMaxSerialInputBytes, "ttvm takes as serial input");
    if (!bytes) {
      std::fprintf(stderr, "ttvm record: --serial-input: %s\n", bytes.error().message.c_str());
      return kExitNoInput;
    }
    (*machine)->com1().setLineInput(std::move(*bytes));
  }

  LoadOptions lo;
  lo.name = guestPath;
  lo.append = append;
  lo.loadAddress = loadAddr;
  lo.entry = entry;
  lo.mode = mode;
  lo.kernelOnly = kernelOnly;
  for (size_t pos = 0; !initrd.empty() && pos <= initrd.size();) {
    size_t comma = initrd.find(',', pos);
    std::string item =
        initrd.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (!item.empty()) lo.modules.push_back(item);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  if (Status st = attachDisks(**machine, disks); !st.ok()) {
    std::fprintf(stderr, "ttvm record: %s\n", st.error().message.c_str());
    return kExitNoInput;
  }
  // Without a guest file the first disk boots (and names the trace).
  const bool bootDisk = guestPath.empty();
  for (unsigned slot = Machine::kDiskSlots; bootDisk && slot-- > 0;)
    if (const DiskImage* d = (*machine)->disk(slot)) guestPath = d->path();
  auto guest = bootDisk ? loadBootDisk(**machine) : loadGuest(**machine, *file, lo);
  if (!guest) {
    std::fprintf(stderr, "ttvm record: %s\n", guest.error().message.c_str());
    return kExitNoInput;
  }
  // The trace names the guest by its file name, not the path it came from.
  guest->images[0].name = baseName(guestPath);
  std::string description = guest->description;
  if (verbose)
    std::fprintf(stderr, "ttvm record: %s: %s\n", guestPath.c_str(), description.c_str());

  if (!noTrace && output.empty()) {
    std::string b = baseName(guestPath);
    size_t dot = b.rfind('.');
    if (dot != std::string::npos && dot > 0) b = b.substr(0, dot);
    output = b + ".ttvm";
  }
  if (!noTrace) {
    // The trace must not replace one of the files it is recorded from.
    std::vector<std::string> inputs = {guestPath, serialInput};
    for (const DiskSpec& d : disks) inputs.push_back(d.path);
    for (const std::string& m : lo.modules) inputs.push_back(m.substr(0, m.find(' ')));
    struct stat out {};
    if (::stat(output.c_str(), &out) == 0) {
      for (const std::string& in : inputs) {
        struct stat st {};
        if (!in.empty() && ::stat(in.c_str(), &st) == 0 && st.st_dev == out.st_dev &&
            st.st_ino == out.st_ino) {
          std::fprintf(stderr,
                       "ttvm record: the trace file '%s' is also an input ('%s'); writing it "
                       "would destroy that input: choose another -o\n",
                       output.c_str(), in.c_str());
          return 64;
        }
      }
    }
  }
  std::optional<TerminalConsole> terminal;
  if (serialInput.empty()) terminal.emplace(&gInterrupted, kInterruptByConsole);
  RecordOptions ro;
  ro.tracePath = noTrace ? std::string() : output;
  ro.maxSteps = maxSteps;
  ro.timeoutSeconds = timeout;
  ro.digestInterval = digestInterval;
  ro.snapshotInterval = snapshotEvery;
  ro.realtime = realtime;
  ro.logDeviceAccesses = logDeviceReads;
  ro.betweenExits = stopPoints;
  if (kvmDevice)
    ro.makeBackend = [&kvmDevice, stopPoints, trapTsc](
                         const CpuModel& model, PhysicalMemory memory,
                         Environment& env) -> Result<std::unique_ptr<machine::CpuBackend>> {
      auto b = KvmBackend::create(*kvmDevice, model, std::move(memory), env, stopPoints, trapTsc);
      if (!b) return b.error();
      return std::unique_ptr<machine::CpuBackend>(std::move(*b));
    };
  else
    ro.makeBackend = [engine](const CpuModel& model, PhysicalMemory memory,
                              Environment& env) -> Result<std::unique_ptr<machine::CpuBackend>> {
      auto b = std::make_unique<EmuBackend>(model, std::move(memory), env);
      b->cpu().setEngine(engine);
      return std::unique_ptr<machine::CpuBackend>(std::move(b));
    };
  ro.ttvmVersion = TTVM_VERSION;
  ro.host = hostDescription();
  ro.createdUnixNs = createdNs;
  ro.interruptFlag = &gInterrupted;
  ro.poll = [&terminal, &console](Machine& m) {
    if (terminal) terminal->poll(m);
    console.flush();
  };

  RecordSession session(**machine, std::move(*guest), std::move(ro));
  gActiveSession = &session;
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT}) std::signal(sig, onFatalSignal);
  if (Status st = session.start(); !st.ok()) {
    std::fprintf(stderr, "ttvm record: %s\n", st.error().message.c_str());
    gActiveSession = nullptr;
    return kExitIoError;
  }

  auto result = session.run();

  terminal.reset();
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT})
    std::signal(sig, SIG_DFL);
  gActiveSession = nullptr;
  if (!result) {  // the trace could not be written
    std::fprintf(stderr, "ttvm record: %s\n", result.error().message.c_str());
    return kExitIoError;
  }
  if (verbose && !session.tailProblem.empty())
    std::fprintf(stderr, "ttvm record: self-check: %s\n", session.tailProblem.c_str());
  printSummary(*result, session.header(), session.cpu(), noTrace ? std::string() : output, verbose,
               description);
  return exitStatusFor(result->end);
}

}  // namespace ttvm::cli
