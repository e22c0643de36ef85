// Test harness for the CPU tests (cpu_*_test.cc, system_*_test.cc): a RAM
// buffer, a scriptable Environment, and helpers that build GDT/IDT/TSS/page
// tables in guest RAM for real, 32-bit protected and long mode.
#pragma once

#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ttvm/emulator/cpu.h"

namespace ttvm::cputest {

class TestEnv final : public Environment {
 public:
  struct Access {
    bool write;
    uint64_t addr;
    unsigned size;
    uint64_t value;
    bool operator==(const Access&) const = default;
  };
  std::map<uint16_t, uint32_t> portValues;  // what IN returns (default 0xFFFFFFFF masked)
  std::vector<Access> portLog;
  std::map<uint64_t, uint64_t> mmioValues;  // what MMIO reads return
  std::vector<Access> mmioLog;
  uint64_t tsc = 0x1000;
  std::optional<uint64_t> random = 0x0123456789ABCDEFull;
  std::deque<uint8_t> interrupts;  // pending external interrupt vectors
  int nmis = 0;
  bool stop = false;
  std::map<uint32_t, uint64_t> msrs;

  uint32_t portIn(uint16_t port, unsigned size) override {
    auto it = portValues.find(port);
    const uint32_t mask = size == 4 ? 0xFFFFFFFFu : ((1u << (8 * size)) - 1);
    const uint32_t v = (it == portValues.end() ? 0xFFFFFFFFu : it->second) & mask;
    portLog.push_back({false, port, size, v});
    return v;
  }
  void portOut(uint16_t port, unsigned size, uint32_t value) override {
    portLog.push_back({true, port, size, value});
  }
  uint64_t mmioRead(uint64_t a, unsigned size) override {
    auto it = mmioValues.find(a);
    const uint64_t v = it == mmioValues.end() ? 0 : it->second;
    mmioLog.push_back({false, a, size, v});
    return v;
  }
  void mmioWrite(uint64_t a, unsigned size, uint64_t value) override {
    mmioLog.push_back({true, a, size, value});
  }
  uint64_t readTsc() override { return tsc; }
  std::optional<uint64_t> readRandom(unsigned) override { return random; }
  std::optional<uint64_t> readMsr(uint32_t index) override {
    auto it = msrs.find(index);
    if (it == msrs.end()) return std::nullopt;
    return it->second;
  }
  bool writeMsr(uint32_t index, uint64_t value) override {
    auto it = msrs.find(index);
    if (it == msrs.end()) return false;
    it->second = value;
    return true;
  }
  bool interruptPending() override {
    ++interruptQueries;
    return !interrupts.empty();
  }
  uint8_t acknowledgeInterrupt() override {
    const uint8_t v = interrupts.front();
    interrupts.pop_front();
    return v;
  }
  bool nmiPending() override {
    ++nmiQueries;
    return nmis > 0;
  }
  void acknowledgeNmi() override { --nmis; }
  bool stopRequested() override { return stop; }
  // Environment::eventHint, when `useHint`: the test keeps `hint` nonzero
  // while an interrupt, an NMI or a stop may be pending; otherwise the CPU
  // asks at every boundary.
  bool useHint = false;
  volatile uint32_t hint = 0;
  const volatile uint32_t* eventHint() const override { return useHint ? &hint : nullptr; }
  int interruptQueries = 0;  // interruptPending() calls
  int nmiQueries = 0;        // nmiPending() calls
};

// Parses "0f 1f 00" / "0f1f00" into bytes.
std::vector<uint8_t> hexBytes(const std::string& hex);

// Long-mode layout used by setupLong64 (physical = linear, identity-mapped
// with 2 MiB pages over the first 1 GiB, U/S=1, R/W=1).
namespace layout {
inline constexpr uint64_t kGdt = 0x1000;
inline constexpr uint64_t kIdt = 0x2000;  // 256 x 16 bytes
inline constexpr uint64_t kTss = 0x3000;
inline constexpr uint64_t kPml4 = 0x10000;
inline constexpr uint64_t kPdpt = 0x11000;
inline constexpr uint64_t kPd = 0x12000;
inline constexpr uint64_t kCode = 0x100000;
inline constexpr uint64_t kData = 0x200000;
inline constexpr uint64_t kStackTop = 0x80000;
inline constexpr uint64_t kRsp0 = 0x70000;  // ring-0 stack in the TSS
inline constexpr uint64_t kIst1 = 0x60000;
// Selectors (SYSRET layout: STAR[63:48] = 0x18).
inline constexpr uint16_t kCode64 = 0x08, kData0 = 0x10, kUserCode32 = 0x18, kUserData = 0x20,
                          kUserCode64 = 0x28, kTssSel = 0x30, kCode32 = 0x40, kCode16 = 0x48,
                          kData16 = 0x50;
}  // namespace layout

// A flat GDT descriptor.
uint64_t descriptor(uint32_t base, uint32_t limit, uint32_t access, uint32_t flags4);

class Machine {
 public:
  explicit Machine(size_t ramSize = 8u << 20, std::vector<PhysicalMemory::Range> holes = {});

  std::vector<uint8_t> ram;
  TestEnv env;
  std::unique_ptr<Cpu> cpu;

  void load(uint64_t phys, const std::vector<uint8_t>& bytes);
  void loadHex(uint64_t phys, const std::string& hex) { load(phys, hexBytes(hex)); }
  void put(uint64_t phys, uint64_t v, unsigned size);
  uint64_t get(uint64_t phys, unsigned size) const;

  CpuState state() const { return cpu->state(); }
  void setState(const CpuState& s) { cpu->setState(s); }
  // Edits the state through a callback: m.edit([](CpuState& s){ s.gpr[0] = 1; });
  template <typename F>
  void edit(F f) {
    CpuState s = cpu->state();
    f(s);
    cpu->setState(s);
  }
  StepResult step() { return cpu->step(); }
  StepResult run(uint64_t n) { return cpu->run(n); }

  // Real mode at cs:ip with SS:SP = 0:0x7000.
  void setupReal(uint16_t cs, uint16_t ip);
  // 32-bit protected mode, flat 4 GiB segments, ring 0, no paging. GDT as in
  // layout (kCode32 / kData0), empty IDT at layout::kIdt (8-byte gates).
  void setupFlat32(uint64_t eip);
  // Long mode, 64-bit CS, ring 0, identity paging, TSS with RSP0/IST1.
  void setupLong64(uint64_t rip);
  // Switches a long-mode state to compatibility mode (32-bit CS, ring 0).
  void enterCompat32();
  // Switches a long-mode state to CPL 3 (64-bit user code, user data SS).
  void enterUser64();
  // Gives every vector 0-31 a 64-bit interrupt gate to `handler`.
  void setAllIdt64(uint64_t handler);
  // 4 KiB mappings in the 1-2 GiB linear window (PD at 0x13000, PT at
  // 0x14000 covering [0x40000000, 0x40200000)). `pte` holds the flag bits.
  void map4k(uint64_t linear, uint64_t phys, uint64_t pte);
  // 64-bit IDT gate; type 0xE interrupt / 0xF trap.
  void setIdt64(uint8_t vector, uint64_t handler, int dpl = 0, int ist = 0, uint8_t type = 0xE,
                uint16_t sel = layout::kCode64);
  // 32-bit IDT gate.
  void setIdt32(uint8_t vector, uint32_t handler, int dpl = 0, uint8_t type = 0xE,
                uint16_t sel = layout::kCode32);
};

// One row of an instruction table: {mode, bytes, state before, state after}.
struct RegValue {
  Gpr reg;
  uint64_t value;
};
struct MemValue {
  uint64_t addr;  // physical = linear in the test layouts
  unsigned size;
  uint64_t value;
};
struct InstrCase {
  const char* name;
  CpuMode mode;  // kReal (CS=0, code at 0x7C00), kProtected32, kCompatibility32, kLong64
                 // (code at layout::kCode)
  const char* bytes;
  std::vector<RegValue> before;
  std::vector<RegValue> after;
  uint64_t flagsBefore = flags::kFixed1;
  std::optional<uint64_t> flagsAfter = std::nullopt;  // whole RFLAGS when given
  std::vector<MemValue> memBefore = {};
  std::vector<MemValue> memAfter = {};
  std::optional<uint64_t> ripAfter = std::nullopt;  // default: start + instruction length
  int steps = 1;
  std::optional<uint8_t> exception = std::nullopt;  // expected vector delivered at the last step
};
// Runs the case and reports mismatches through GoogleTest (EXPECT_*).
void runInstrCase(const InstrCase& c);
uint64_t codeAddress(CpuMode mode);

}  // namespace ttvm::cputest
