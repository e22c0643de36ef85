#include "scripted_trace_support.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "ttvm/emulator/cpu.h"
#include "ttvm/formats/trace_reader.h"
#include "ttvm/formats/trace_writer.h"
#include "ttvm/machine/loader.h"
#include "ttvm/machine/machine.h"

namespace ttvm::testing {
using ttvm::machine::Machine;
using ttvm::machine::MachineOptions;
using ttvm::machine::realModeState;
namespace {

// prog.asm (nasm -f bin, org 0x1000, bits 16):
//   start:  cli; xor ax,ax; mov ds,ax; mov es,ax; mov ss,ax; mov sp,0x8000
//           mov word [0x80], handler; mov word [0x82], 0; xor si,si; xor dx,dx; sti
//   main_loop: in al,0x60; mov ah,0; mov di,si; and di,0xFE; add [0x3000+di],ax
//           out 0xE9,al; inc si; mov cx,20
//   inner:  add dx,cx; loop inner
//           cmp si,[0x0FF0]; jb main_loop; cli; hlt
//   handler: push ax; mov ax,[0x500]; inc ax; mov [0x500],ax; in al,0x61
//           mov [0x502],al; pop ax; iret
const uint8_t kProgram[] = {
    0xfa, 0x31, 0xc0, 0x8e, 0xd8, 0x8e, 0xc0, 0x8e, 0xd0, 0xbc, 0x00, 0x80, 0xc7, 0x06, 0x80, 0x00,
    0x3d, 0x10, 0xc7, 0x06, 0x82, 0x00, 0x00, 0x00, 0x31, 0xf6, 0x31, 0xd2, 0xfb, 0xe4, 0x60, 0xb4,
    0x00, 0x89, 0xf7, 0x81, 0xe7, 0xfe, 0x00, 0x01, 0x85, 0x00, 0x30, 0xe6, 0xe9, 0x46, 0xb9, 0x14,
    0x00, 0x01, 0xca, 0xe2, 0xfc, 0x3b, 0x36, 0xf0, 0x0f, 0x72, 0xe2, 0xfa, 0xf4, 0x50, 0xa1, 0x00,
    0x05, 0x40, 0xa3, 0x00, 0x05, 0xe4, 0x61, 0xa2, 0x02, 0x05, 0x58, 0xcf};

class ScriptedEnvironment final : public Environment {
 public:
  ScriptedEnvironment(TraceWriter& w, std::vector<TraceEvent>& log, uint64_t seed)
      : w_(w), log_(log), rng_(seed * 0x9E3779B97F4A7C15ull + 1) {
    nextIrq_ = 300 + next() % 700;
  }
  void bind(const CpuState* s) { s_ = s; }

  uint32_t portIn(uint16_t port, unsigned size) override {
    uint32_t v = port == kInputPort || port == 0x61 ? static_cast<uint32_t>(next() & 0xFF)
                                                    : (size == 4 ? ~0u : (1u << (8 * size)) - 1);
    put(TraceEvent::portIn(step(), port, static_cast<uint8_t>(size), v));
    return v;
  }
  void portOut(uint16_t port, unsigned size, uint32_t value) override {
    put(TraceEvent::portOut(step(), port, static_cast<uint8_t>(size), value));
  }
  uint64_t mmioRead(uint64_t a, unsigned size) override {
    const uint64_t v = size == 8 ? ~0ull : (1ull << (8 * size)) - 1;
    put(TraceEvent::mmioRead(step(), a, static_cast<uint8_t>(size), v));
    return v;
  }
  void mmioWrite(uint64_t a, unsigned size, uint64_t v) override {
    put(TraceEvent::mmioWrite(step(), a, static_cast<uint8_t>(size), v));
  }
  uint64_t readTsc() override {
    put(TraceEvent::rdtsc(step(), step() * 3));
    return step() * 3;
  }
  std::optional<uint64_t> readRandom(unsigned size) override {
    const uint64_t v = next();
    put(TraceEvent::rdrand(step(), static_cast<uint8_t>(size), v));
    return v;
  }
  std::optional<uint64_t> readMsr(uint32_t) override { return std::nullopt; }
  bool writeMsr(uint32_t i, uint64_t v) override {
    put(TraceEvent::msrWrite(step(), i, v, false));
    return false;
  }
  bool interruptPending() override { return step() >= nextIrq_; }
  uint8_t acknowledgeInterrupt() override {
    put(TraceEvent::interrupt(step(), 0x20));
    nextIrq_ = step() + 200 + next() % 900;
    return 0x20;
  }
  bool nmiPending() override { return false; }
  void acknowledgeNmi() override {}
  bool stopRequested() override { return false; }

  void put(const TraceEvent& e) {
    w_.append(e);
    log_.push_back(e);
  }

 private:
  uint64_t step() const { return s_->steps; }
  uint64_t next() {
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    return rng_;
  }
  TraceWriter& w_;
  std::vector<TraceEvent>& log_;
  const CpuState* s_ = nullptr;
  uint64_t rng_;
  uint64_t nextIrq_;
};

}  // namespace

uint64_t hashBytes(const uint8_t* p, size_t n) {
  // Word at a time (RAM images are large); the tail byte-wise.
  uint64_t h = 0xcbf29ce484222325ull;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
  }
  for (; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

CommandRun runCommand(const std::string& cmd) {
  CommandRun r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string tempTracePath(const std::string& stem) {
  static int counter = 0;
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/ttvm-replayer-" + std::to_string(getpid()) + "-" +
         std::to_string(counter++) + "-" + stem + ".ttvm";
}

Result<ScriptedTrace> buildScriptedTrace(const std::string& path,
                                         const ScriptedTraceOptions& options) {
  MachineOptions mo;
  mo.ramBytes = options.ramBytes;
  auto machine = Machine::create(mo);
  if (!machine.ok()) return machine.error();
  Machine& m = **machine;
  std::span<uint8_t> ram = m.ram();
  std::memcpy(ram.data() + kProgStart, kProgram, sizeof kProgram);
  std::memcpy(ram.data() + 0x0FF0, &options.iterations, 2);

  TraceHeader h;
  h.ttvmVersion = "test";
  h.host = "scripted";
  h.machine = m.config();
  h.cpuModel = m.cpuModel();
  GuestImage img;
  img.name = "scripted.bin";
  img.format = ImageFormat::kFlat;
  img.loadAddress = kProgStart;
  img.entry = kProgStart;
  img.bytes.assign(kProgram, kProgram + sizeof kProgram);
  img.symbols = {
      Symbol{"start", kProgStart, kProgMainLoop - kProgStart, SymbolKind::kFunction},
      Symbol{"main_loop", kProgMainLoop, kProgHandler - kProgMainLoop, SymbolKind::kFunction},
      Symbol{"handler", kProgHandler, sizeof kProgram - (kProgHandler - kProgStart),
             SymbolKind::kFunction}};
  h.images.push_back(img);
  InitialState init;
  init.cpu = realModeState(0, static_cast<uint16_t>(kProgStart));
  init.ram = RamPages::fromFlat(ram);
  init.deviceState = m.saveDeviceState();
  TraceWriter::Options wo;
  wo.maxEventsPerChunk = 4096;  // several chunks even for short traces
  auto w = TraceWriter::create(path, h, init, wo);
  if (!w.ok()) return w.error();
  TraceWriter& writer = **w;

  ScriptedTrace out;
  out.path = path;
  ScriptedEnvironment env(writer, out.events, options.seed);
  Cpu cpu(m.cpuModel(), m.physicalMemory(), env);
  cpu.setState(init.cpu);
  env.bind(&cpu.state());
  env.put(TraceEvent::stateDigest(0, stateDigest(cpu.state())));
  uint64_t nextDigest = options.digestInterval;
  TraceEnd end;
  for (;;) {
    const CpuState& s = cpu.state();
    const StepResult r = cpu.run(nextDigest - s.steps);
    if (s.steps >= nextDigest) {
      env.put(TraceEvent::stateDigest(s.steps, stateDigest(s)));
      nextDigest += options.digestInterval;
    }
    if (r.outcome == StepOutcome::kHalted) {
      if (s.rflags & flags::kIF) return makeError("scripted program halted with IF=1");
      env.put(TraceEvent::hlt(s.steps));
      end.reason = EndReason::kHang;
      end.message = "HLT with interrupts disabled";
      break;
    }
    if (r.outcome == StepOutcome::kTripleFault) return makeError("scripted program triple-faulted");
    if (s.steps > 50'000'000) return makeError("scripted program ran away");
    if (!cpu.unimplementedLog().empty())
      return makeError("unimplemented instruction: " + cpu.unimplementedLog().front());
  }
  end.finalCpu = cpu.state();
  end.finalDigest = stateDigest(cpu.state());
  end.steps = cpu.state().steps;
  env.put(TraceEvent::endOfRun(end.steps));
  TTVM_TRY(writer.close(end));
  out.steps = end.steps;
  out.finalCpu = end.finalCpu;
  out.finalRam.assign(ram.begin(), ram.end());
  return out;
}

Status rewriteTraceEvent(const std::string& in, const std::string& out, size_t index,
                         const TraceEvent& replacement) {
  auto r = TraceReader::open(in);
  if (!r.ok()) return r.error();
  auto init = r->initialState();
  if (!init.ok()) return init.error();
  TraceWriter::Options wo;
  wo.maxEventsPerChunk = 4096;
  auto w = TraceWriter::create(out, r->header(), *init, wo);
  if (!w.ok()) return w.error();
  size_t n = 0;
  for (size_t c = 0; c < r->chunkCount(); ++c) {
    auto events = r->readChunk(c);
    if (!events.ok()) return events.error();
    for (const TraceEvent& e : *events) (*w)->append(n++ == index ? replacement : e);
  }
  if (!r->end()) return makeError("input trace has no footer");
  return (*w)->close(*r->end());
}

std::vector<TraceEvent> allEvents(const TraceReader& reader) {
  std::vector<TraceEvent> out;
  for (size_t i = 0; i < reader.chunkCount(); ++i) {
    auto c = reader.readChunk(i);
    EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
    if (c.ok()) out.insert(out.end(), c->begin(), c->end());
  }
  return out;
}

}  // namespace ttvm::testing
