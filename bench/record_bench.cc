// record_bench: what recording costs, measured in one run.
//
//  1. Recording overhead: the same guest recorded with and without a trace,
//     in this process (RecordSession directly, from run() to the closed
//     trace), best of N alternating runs: a CPU-bound guest (target ratio
//     <= 1.05) and a guest doing 1,000,000 port I/O operations (target
//     <= 1.2). Three clocks: wall time (what the user waits; the target is
//     judged on it), CPU time of the recording thread, and CPU time of the
//     whole process (the recording thread plus the trace writer's thread
//     that encodes, compresses and writes chunks on another core).
//  2. Against QEMU: `qemu-system-x86_64 -accel tcg -kernel` and `ttvm record`
//     (as processes) booting the same multiboot guest to its isa-debug-exit;
//     wall time and child CPU time, best of N.
//  3. Trace size: bytes per million steps for the I/O guest, the CPU guest
//     and the demo guest.
//  4. Trace density (issue 12): bytes per 1000 steps of the compressed event
//     chunks and of the whole file, for the demo guest, the I/O guest and a
//     guest that reads the local APIC's ID and the TSC in a loop, recorded
//     by default (format 1.3: the replay computes every device answer) and
//     with --log-device-reads (every answer logged: the density before) in
//     the same run; target <= 0.5 event bytes per 1000 steps where nothing
//     comes from outside the machine.
//
// usage: record_bench [--runs N] [--qemu PATH] [--no-qemu] [--only cpu|io|density]
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "ttvm/formats/trace_reader.h"
#include "ttvm/machine/loader.h"
#include "ttvm/machine/machine.h"
#include "ttvm/recorder/record_session.h"

namespace {

using namespace ttvm;
using ttvm::machine::loadGuest;
using ttvm::machine::LoadOptions;
using ttvm::machine::Machine;
using ttvm::machine::MachineOptions;
using ttvm::machine::readFileBytes;

double threadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double processCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto secs = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) * 1e-6;
  };
  return secs(u.ru_utime) + secs(u.ru_stime);
}

double wallSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct InProcess {
  double wallSeconds = 0;
  double cpuSeconds = 0;         // the recording thread
  double processCpuSeconds = 0;  // every thread
  uint64_t steps = 0;
  uint64_t traceBytes = 0;
  uint64_t events = 0;
  uint64_t eventBytes = 0;  // the event chunks' compressed payloads (traced runs)
  EndReason reason = EndReason::kInternalError;
};

InProcess recordOnce(const std::string& guestPath, bool traced, bool logDeviceReads = false) {
  auto file = readFileBytes(guestPath, MachineOptions{}.ramBytes, "of guest RAM");
  if (!file) {
    std::fprintf(stderr, "record_bench: %s\n", file.error().message.c_str());
    std::exit(1);
  }
  MachineOptions mo;
  mo.startClockUnixNs = 1'700'000'000'000'000'000;
  auto machine = Machine::create(mo);
  LoadOptions lo;
  lo.name = guestPath;
  auto guest = loadGuest(**machine, *file, lo);
  if (!guest) {
    std::fprintf(stderr, "record_bench: %s\n", guest.error().message.c_str());
    std::exit(1);
  }
  RecordOptions ro;
  ro.tracePath = traced ? "/tmp/ttvm_record_bench.ttvm" : "";
  ro.ttvmVersion = "bench";
  ro.createdUnixNs = mo.startClockUnixNs;
  ro.logDeviceAccesses = logDeviceReads;
  if (const char* a = std::getenv("REC_BENCH_LZ4_ACCEL"))
    ro.writerOptions.lz4Acceleration = std::atoi(a);
  RecordSession session(**machine, std::move(*guest), ro);
  if (!session.start().ok()) std::exit(1);
  const double w0 = wallSeconds(), p0 = processCpuSeconds(), t0 = threadCpuSeconds();
  auto r = session.run();
  const double t1 = threadCpuSeconds(), p1 = processCpuSeconds(), w1 = wallSeconds();
  if (!r) {
    std::fprintf(stderr, "record_bench: %s\n", r.error().message.c_str());
    std::exit(1);
  }
  InProcess out;
  out.wallSeconds = w1 - w0;
  out.cpuSeconds = t1 - t0;
  out.processCpuSeconds = p1 - p0;
  out.steps = r->end.steps;
  out.traceBytes = r->traceBytes;
  out.events = r->events;
  out.reason = r->end.reason;
  if (traced) {
    auto reader = TraceReader::open("/tmp/ttvm_record_bench.ttvm");
    if (!reader) {
      std::fprintf(stderr, "record_bench: %s\n", reader.error().message.c_str());
      std::exit(1);
    }
    out.eventBytes = reader->compressedEventBytes();
    ::unlink("/tmp/ttvm_record_bench.ttvm");
  }
  return out;
}

// Best (smallest) of each clock over the runs, taken separately.
struct Overhead {
  InProcess plain, traced;
};

void keepBest(InProcess& best, const InProcess& run) {
  if (best.steps == 0) {
    best = run;
    return;
  }
  best.wallSeconds = std::min(best.wallSeconds, run.wallSeconds);
  best.cpuSeconds = std::min(best.cpuSeconds, run.cpuSeconds);
  best.processCpuSeconds = std::min(best.processCpuSeconds, run.processCpuSeconds);
}

Overhead overhead(const std::string& guest, int runs) {
  Overhead o;
  for (int i = 0; i < runs; ++i) {
    // Alternate so that drifts in machine load hit both sides alike.
    keepBest(o.plain, recordOnce(guest, false));
    keepBest(o.traced, recordOnce(guest, true));
  }
  return o;
}

struct ProcessTime {
  double wall = 1e30, cpu = 1e30;
  int status = -1;
};

// Runs argv to completion with stdout/stderr discarded; best wall and CPU time.
ProcessTime timeProcess(const std::vector<std::string>& argv, int runs) {
  ProcessTime best;
  for (int i = 0; i < runs; ++i) {
    rusage before{}, after{};
    getrusage(RUSAGE_CHILDREN, &before);
    auto t0 = std::chrono::steady_clock::now();
    pid_t pid = fork();
    if (pid == 0) {
      FILE* null = std::fopen("/dev/null", "w");
      dup2(fileno(null), 1);
      dup2(fileno(null), 2);
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execvp(args[0], args.data());
      _exit(127);
    }
    int ws = 0;
    waitpid(pid, &ws, 0);
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    getrusage(RUSAGE_CHILDREN, &after);
    auto secs = [](const timeval& tv) {
      return static_cast<double>(tv.tv_sec) + tv.tv_usec * 1e-6;
    };
    double cpu =
        secs(after.ru_utime) - secs(before.ru_utime) + secs(after.ru_stime) - secs(before.ru_stime);
    best.wall = std::min(best.wall, wall);
    best.cpu = std::min(best.cpu, cpu);
    best.status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
  }
  return best;
}

void printOverhead(const char* what, const Overhead& o, double target) {
  const double wall = o.traced.wallSeconds / o.plain.wallSeconds;
  std::printf("%-22s %-18s %9.3f s %9.3f s %7.3f  (target <= %.2f: %s)\n", what, "wall",
              o.plain.wallSeconds, o.traced.wallSeconds, wall, target,
              wall <= target ? "met" : "NOT met");
  std::printf("%-22s %-18s %9.3f s %9.3f s %7.3f\n", "", "recording thread CPU", o.plain.cpuSeconds,
              o.traced.cpuSeconds, o.traced.cpuSeconds / o.plain.cpuSeconds);
  std::printf("%-22s %-18s %9.3f s %9.3f s %7.3f\n", "", "process CPU", o.plain.processCpuSeconds,
              o.traced.processCpuSeconds, o.traced.processCpuSeconds / o.plain.processCpuSeconds);
  std::printf("%-22s %" PRIu64 " steps, %" PRIu64 " events, %.1f M steps/s traced (wall)\n", "",
              o.traced.steps, o.traced.events,
              static_cast<double>(o.traced.steps) / o.traced.wallSeconds / 1e6);
}

double perThousandSteps(uint64_t bytes, uint64_t steps) {
  return static_cast<double>(bytes) * 1000.0 / static_cast<double>(steps);
}

// One guest recorded both ways in this run: event and file bytes per 1000
// steps, and how many times smaller the default trace is.
void printDensity(const char* what, const std::string& guest) {
  const InProcess now = recordOnce(guest, true);
  const InProcess logged = recordOnce(guest, true, true);
  if (now.steps != logged.steps) {
    std::fprintf(stderr, "record_bench: %s ran %" PRIu64 " steps, %" PRIu64 " with every read\n",
                 what, now.steps, logged.steps);
    std::exit(1);
  }
  const double ev = perThousandSteps(now.eventBytes, now.steps);
  std::printf("  %s, %" PRIu64 " steps\n", what, now.steps);
  std::printf("    %-22s %9" PRIu64 " events %10" PRIu64 " B (%9.3f B/1000 steps)  file %10" PRIu64
              " B (%9.3f B/1000 steps)\n",
              "default", now.events, now.eventBytes, ev, now.traceBytes,
              perThousandSteps(now.traceBytes, now.steps));
  std::printf("    %-22s %9" PRIu64 " events %10" PRIu64 " B (%9.3f B/1000 steps)  file %10" PRIu64
              " B (%9.3f B/1000 steps)\n",
              "--log-device-reads", logged.events, logged.eventBytes,
              perThousandSteps(logged.eventBytes, logged.steps), logged.traceBytes,
              perThousandSteps(logged.traceBytes, logged.steps));
  std::printf(
      "    ratio --log-device-reads / default: events %.1fx, file %.2fx; target <= 0.5 "
      "event B/1000 steps: %s\n",
      static_cast<double>(logged.eventBytes) / static_cast<double>(now.eventBytes),
      static_cast<double>(logged.traceBytes) / static_cast<double>(now.traceBytes),
      ev <= 0.5 ? "met" : "NOT met");
}

void density() {
  std::printf(
      "\ntrace density: default (replay computes every device answer) against "
      "--log-device-reads (every answer logged), same run\n");
#ifdef REC_BENCH_DEMO_GUEST
  printDensity("demo guest", REC_BENCH_DEMO_GUEST);
#endif
  printDensity("1M port I/O (rec_io)", REC_BENCH_IO_GUEST);
  printDensity("1M LAPIC ID + RDTSC reads (rec_lapic)", REC_BENCH_LAPIC_GUEST);
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 3;
  std::string qemu = "qemu-system-x86_64";
  bool withQemu = true;
  std::string only;  // cpu, io or density: that measurement alone
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc)
      runs = std::max(1, std::atoi(argv[++i]));
    else if (a == "--qemu" && i + 1 < argc)
      qemu = argv[++i];
    else if (a == "--no-qemu")
      withQemu = false;
    else if (a == "--only" && i + 1 < argc)
      only = argv[++i];
    else {
      std::fprintf(stderr,
                   "usage: record_bench [--runs N] [--qemu PATH] [--no-qemu] "
                   "[--only cpu|io|density]\n");
      return 2;
    }
  }
  const std::string cpuGuest = REC_BENCH_CPU_GUEST, ioGuest = REC_BENCH_IO_GUEST;
  std::printf("record_bench: best of %d alternating runs per clock (%u CPUs online)\n\n", runs,
              static_cast<unsigned>(sysconf(_SC_NPROCESSORS_ONLN)));
  if (only == "density") {
    density();
    return 0;
  }
  std::printf("%-22s %-18s %11s %11s %7s\n", "guest", "clock", "--no-trace", "traced", "ratio");
  if (only == "io" || only == "cpu") {
    const bool io = only == "io";
    printOverhead(io ? "1M port I/O (rec_io)" : "CPU-bound (rec_cpu)",
                  overhead(io ? ioGuest : cpuGuest, runs), io ? 1.20 : 1.05);
    return 0;
  }
  Overhead cpu = overhead(cpuGuest, runs);
  printOverhead("CPU-bound (rec_cpu)", cpu, 1.05);
  Overhead io = overhead(ioGuest, runs);
  printOverhead("1M port I/O (rec_io)", io, 1.20);

  std::printf("\ntrace size\n");
  auto perMillion = [](const InProcess& p) {
    return static_cast<double>(p.traceBytes) / (static_cast<double>(p.steps) / 1e6);
  };
  std::printf("  %-24s %12" PRIu64 " bytes, %9" PRIu64 " events, %10.0f bytes per million steps\n",
              "CPU-bound (rec_cpu)", cpu.traced.traceBytes, cpu.traced.events,
              perMillion(cpu.traced));
  std::printf("  %-24s %12" PRIu64 " bytes, %9" PRIu64 " events, %10.0f bytes per million steps\n",
              "1M port I/O (rec_io)", io.traced.traceBytes, io.traced.events,
              perMillion(io.traced));
#ifdef REC_BENCH_DEMO_GUEST
  InProcess demo = recordOnce(REC_BENCH_DEMO_GUEST, true);
  std::printf("  %-24s %12" PRIu64 " bytes, %9" PRIu64
              " events, %10.0f bytes per million steps (%" PRIu64 " steps)\n",
              "demo guest", demo.traceBytes, demo.events, perMillion(demo), demo.steps);
#endif
  density();

  if (withQemu) {
    std::printf("\nagainst QEMU (processes booting %s to its exit port; best wall / CPU time)\n",
                cpuGuest.c_str());
    ProcessTime q =
        timeProcess({qemu, "-accel", "tcg", "-kernel", cpuGuest, "-device",
                     "isa-debug-exit,iobase=0xf4,iosize=0x04", "-display", "none", "-serial",
                     "none", "-monitor", "none", "-nodefaults", "-no-reboot", "-m", "256"},
                    runs);
    if (q.status < 0 || q.status == 127) {
      std::printf("  %s could not run (status %d): no QEMU comparison\n", qemu.c_str(), q.status);
    } else {
      ProcessTime t = timeProcess({REC_BENCH_TTVM, "record", "--no-trace", cpuGuest}, runs);
      ProcessTime tt = timeProcess(
          {REC_BENCH_TTVM, "record", "-o", "/tmp/ttvm_record_bench_q.ttvm", cpuGuest}, runs);
      ::unlink("/tmp/ttvm_record_bench_q.ttvm");
      std::printf("  %-34s wall %7.3f s  cpu %7.3f s  (exit %d)\n", "qemu-system-x86_64 -accel tcg",
                  q.wall, q.cpu, q.status);
      std::printf("  %-34s wall %7.3f s  cpu %7.3f s  (exit %d)\n", "ttvm record --no-trace",
                  t.wall, t.cpu, t.status);
      std::printf("  %-34s wall %7.3f s  cpu %7.3f s  (exit %d)\n", "ttvm record (traced)", tt.wall,
                  tt.cpu, tt.status);
      std::printf("  ratio ttvm traced / qemu: wall %.2f, cpu %.2f\n", tt.wall / q.wall,
                  tt.cpu / q.cpu);
    }
  }
  return 0;
}
