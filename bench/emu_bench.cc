// emu_bench: ttvm's emulator and Unicorn (QEMU's TCG JIT) run the same
// CPU-bound 64-bit guest workload (bench/emu_workload: checksum, quicksort +
// insertion sort, hash table, bytecode interpreter) in the same process; the
// benchmark prints steps per second for both and their ratio, and checks
// that both computed the same result.
//
// Steps: the emulator's exact step count (the workload has no REP string
// instructions, so steps = retired instructions). Unicorn executes the same
// instructions; its rate is that count over its wall time. `--count` also
// counts Unicorn's instructions with a code hook (slow) to prove the counts
// agree. Times are the benchmark thread's CPU time (Unicorn runs in the
// calling thread when no timeout is set).
//
// Usage: emu_bench [--iterations N] [--count] [--emulator-only] [--workload FILE]
// (--emulator-only: for profiling the emulator alone with perf/callgrind)
#include <time.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "ttvm/emulator/cpu.h"

#if TTVM_BENCH_HAVE_UNICORN
#include <unicorn/unicorn.h>
#endif

namespace {

using namespace ttvm;

constexpr uint64_t kRamSize = 16ull << 20;
constexpr uint64_t kLoadAddress = 0x100000;
constexpr uint64_t kHaltAddress = kLoadAddress + 5;  // see emu_workload/start.asm
constexpr uint64_t kStackTop = 0xF00000;
constexpr uint64_t kPml4 = 0x1000, kPdpt = 0x2000, kPd = 0x3000;

// The workload touches no device: any call here is a bug in the workload or
// the CPU.
class NoDevices final : public Environment {
 public:
  uint32_t portIn(uint16_t port, unsigned) override { die("port read", port); }
  void portOut(uint16_t port, unsigned, uint32_t) override { die("port write", port); }
  uint64_t mmioRead(uint64_t a, unsigned) override { die("MMIO read", a); }
  void mmioWrite(uint64_t a, unsigned, uint64_t) override { die("MMIO write", a); }
  uint64_t readTsc() override { return 0; }
  std::optional<uint64_t> readRandom(unsigned) override { return std::nullopt; }
  std::optional<uint64_t> readMsr(uint32_t) override { return std::nullopt; }
  bool writeMsr(uint32_t, uint64_t) override { return false; }
  bool interruptPending() override { return false; }
  uint8_t acknowledgeInterrupt() override { return 0; }
  bool nmiPending() override { return false; }
  void acknowledgeNmi() override {}
  bool stopRequested() override { return false; }
  // Nothing is ever pending: lets Cpu::run skip the per-step event polls.
  const volatile uint32_t* eventHint() const override { return &noEvents_; }

 private:
  volatile uint32_t noEvents_ = 0;
  [[noreturn]] static void die(const char* what, uint64_t where) {
    std::fprintf(stderr, "emu_bench: unexpected %s at 0x%" PRIx64 "\n", what, where);
    std::exit(1);
  }
};

// CPU time of this thread in seconds: the machine running the benchmark may
// be shared, and wall time would charge other processes' time to the CPU.
double cpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct RunResult {
  uint64_t steps = 0;
  uint64_t rax = 0;
  double seconds = 0;
};

void put64(std::vector<uint8_t>& ram, uint64_t a, uint64_t v) {
  std::memcpy(&ram[a], &v, 8);
}

// 64-bit long mode at CPL 0, identity-mapped with 2 MiB pages.
CpuState longModeState(std::vector<uint8_t>& ram, uint64_t iterations) {
  put64(ram, kPml4, kPdpt | 3);
  put64(ram, kPdpt, kPd | 3);
  for (uint64_t i = 0; i < kRamSize >> 21; ++i) put64(ram, kPd + 8 * i, (i << 21) | 0x83);
  CpuState s;
  s.cr0 = cr0::kPE | cr0::kMP | cr0::kET | cr0::kNE | cr0::kWP | cr0::kPG;
  s.cr3 = kPml4;
  s.cr4 = cr4::kPAE | cr4::kOSFXSR | cr4::kOSXMMEXCPT;
  s.msr.efer = efer::kLME | efer::kLMA | efer::kNXE;
  SegmentRegister data{0x10, 0, 0xFFFFFFFF, 0xC093};
  for (auto& r : s.seg) r = data;
  s.segment(SegReg::kCs) = SegmentRegister{0x08, 0, 0xFFFFFFFF, 0xA09B};
  s.rip = kLoadAddress;
  s.rflags = flags::kFixed1;
  s.reg(Gpr::kRsp) = kStackTop;
  s.reg(Gpr::kRdi) = iterations;
  return s;
}

RunResult runEmulator(const std::vector<uint8_t>& image, uint64_t iterations, CpuEngine engine,
                      EngineStats* stats = nullptr) {
  std::vector<uint8_t> ram(kRamSize);
  std::memcpy(&ram[kLoadAddress], image.data(), image.size());
  NoDevices env;
  PhysicalMemory pm;
  pm.ram = std::span<uint8_t>(ram.data(), ram.size());
  Cpu cpu(CpuModel::ttvmDefault(), pm, env);
  cpu.setEngine(engine);
  cpu.setState(longModeState(ram, iterations));
  double t0 = cpuSeconds();
  StepResult r;
  do {
    r = cpu.run(uint64_t{1} << 40);
  } while (r.outcome == StepOutcome::kRetired);
  double t1 = cpuSeconds();
  if (r.outcome != StepOutcome::kHalted || cpu.state().rip != kHaltAddress + 1) {
    std::fprintf(stderr, "emu_bench: emulator stopped with %s (vector %u) at rip 0x%" PRIx64 "\n",
                 toString(r.outcome), r.vector, cpu.state().rip);
    for (const auto& line : cpu.unimplementedLog())
      std::fprintf(stderr, "  unimplemented: %s\n", line.c_str());
    std::exit(1);
  }
  RunResult out;
  // The HLT itself is a step (it retired); the workload proper is the rest.
  out.steps = cpu.state().steps;
  out.rax = cpu.state().reg(Gpr::kRax);
  out.seconds = t1 - t0;
  if (stats != nullptr) *stats = cpu.engineStats();
  return out;
}

#if TTVM_BENCH_HAVE_UNICORN
void countInsn(uc_engine*, uint64_t, uint32_t, void* user) {
  ++*static_cast<uint64_t*>(user);
}

RunResult runUnicorn(const std::vector<uint8_t>& image, uint64_t iterations, bool count) {
  uc_engine* uc = nullptr;
  auto check = [](uc_err e, const char* what) {
    if (e != UC_ERR_OK) {
      std::fprintf(stderr, "emu_bench: Unicorn %s: %s\n", what, uc_strerror(e));
      std::exit(1);
    }
  };
  check(uc_open(UC_ARCH_X86, UC_MODE_64, &uc), "open");
  check(uc_mem_map(uc, 0, kRamSize, UC_PROT_ALL), "map");
  check(uc_mem_write(uc, kLoadAddress, image.data(), image.size()), "write");
  uint64_t rsp = kStackTop, rdi = iterations;
  uc_reg_write(uc, UC_X86_REG_RSP, &rsp);
  uc_reg_write(uc, UC_X86_REG_RDI, &rdi);
  uint64_t insns = 0;
  uc_hook hook;
  if (count)
    check(uc_hook_add(uc, &hook, UC_HOOK_CODE, reinterpret_cast<void*>(countInsn), &insns, 1, 0),
          "hook");
  double t0 = cpuSeconds();
  check(uc_emu_start(uc, kLoadAddress, kHaltAddress, 0, 0), "run");
  double t1 = cpuSeconds();
  RunResult out;
  uc_reg_read(uc, UC_X86_REG_RAX, &out.rax);
  out.steps = insns;
  out.seconds = t1 - t0;
  uc_close(uc);
  return out;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  uint64_t iterations = 40;
  bool count = false;
  bool emulatorOnly = false;
  std::string workload = TTVM_EMU_WORKLOAD;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--iterations" && i + 1 < argc) {
      iterations = std::strtoull(argv[++i], nullptr, 0);
    } else if (a == "--count") {
      count = true;
    } else if (a == "--emulator-only") {
      emulatorOnly = true;
    } else if (a == "--workload" && i + 1 < argc) {
      workload = argv[++i];
    } else {
      std::fprintf(
          stderr,
          "usage: emu_bench [--iterations N] [--count] [--emulator-only] [--workload FILE]\n");
      return 2;
    }
  }
  std::ifstream f(workload, std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "emu_bench: cannot open workload %s\n", workload.c_str());
    return 1;
  }
  std::vector<uint8_t> image((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (image.empty() || kLoadAddress + image.size() > kStackTop - 0x10000) {
    std::fprintf(stderr, "emu_bench: workload %s: bad size %zu\n", workload.c_str(), image.size());
    return 1;
  }

  RunResult emu = runEmulator(image, iterations, CpuEngine::kReference);
  double emuRate = static_cast<double>(emu.steps) / emu.seconds;
  std::printf("workload: %s, %" PRIu64 " iterations, %" PRIu64 " steps\n", workload.c_str(),
              iterations, emu.steps);
  std::printf("ttvm emulator: %8.3f s CPU  %8.1f M steps/s  result %016" PRIx64 "\n", emu.seconds,
              emuRate / 1e6, emu.rax);
  // The fast engine (issue 14) on the same image: same steps, same result.
  EngineStats stats;
  RunResult fast = runEmulator(image, iterations, CpuEngine::kFast, &stats);
  double fastRate = static_cast<double>(fast.steps) / fast.seconds;
  std::printf("ttvm fast engine: %8.3f s CPU  %8.1f M steps/s  result %016" PRIx64
              "  (%.2fx the reference)\n  %s\n",
              fast.seconds, fastRate / 1e6, fast.rax, fastRate / emuRate, describe(stats).c_str());
  if (fast.steps != emu.steps || fast.rax != emu.rax) {
    std::fprintf(stderr, "emu_bench: the engines differ (steps %" PRIu64 "/%" PRIu64 ")\n",
                 emu.steps, fast.steps);
    return 1;
  }
  if (emulatorOnly) return 0;
#if TTVM_BENCH_HAVE_UNICORN
  RunResult uc = runUnicorn(image, iterations, count);
  double ucRate = static_cast<double>(emu.steps) / uc.seconds;
  std::printf("Unicorn (TCG): %8.3f s CPU  %8.1f M steps/s  result %016" PRIx64 "%s\n", uc.seconds,
              ucRate / 1e6, uc.rax, count ? " (instruction-counting hook on: slow)" : "");
  std::printf("ratio emulator/Unicorn: %.3f (fast engine: %.3f)\n", emuRate / ucRate,
              fastRate / ucRate);
  if (uc.rax != emu.rax) {
    std::fprintf(stderr,
                 "emu_bench: results differ (emulator %016" PRIx64 ", Unicorn %016" PRIx64 ")\n",
                 emu.rax, uc.rax);
    return 1;
  }
  if (count) {
    // Unicorn stops before executing the HLT; the emulator counts it.
    std::printf("Unicorn instructions: %" PRIu64 " (emulator steps - 1 = %" PRIu64 ")\n", uc.steps,
                emu.steps - 1);
    if (uc.steps != emu.steps - 1) return 1;
  }
#else
  std::printf("Unicorn: not built (libunicorn-dev missing)\n");
#endif
  return 0;
}
