#include "trace_samples.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "ttvm/formats/trace_writer.h"

namespace ttvm::testing {

CpuState randomCpuState(std::mt19937_64& rng) {
  auto r64 = [&] { return rng(); };
  auto r32 = [&] { return static_cast<uint32_t>(rng()); };
  auto r16 = [&] { return static_cast<uint16_t>(rng()); };
  auto seg = [&] { return SegmentRegister{r16(), r64(), r32(), r32()}; };
  CpuState s;
  for (auto& g : s.gpr) g = r64();
  s.rip = r64();
  s.rflags = r64();
  for (auto& x : s.seg) x = seg();
  s.gdtr = {r64(), r16()};
  s.idtr = {r64(), r16()};
  s.ldtr = seg();
  s.tr = seg();
  s.cr0 = r64();
  s.cr2 = r64();
  s.cr3 = r64();
  s.cr4 = r64();
  s.cr8 = r64();
  s.xcr0 = r64();
  for (auto& d : s.dr) d = r64();
  s.dr6 = r64();
  s.dr7 = r64();
  MsrState& m = s.msr;
  for (uint64_t* f : {&m.efer, &m.star, &m.lstar, &m.cstar, &m.sfmask, &m.kernelGsBase,
                      &m.sysenterCs, &m.sysenterEsp, &m.sysenterEip, &m.pat, &m.apicBase, &m.tscAux,
                      &m.miscEnable, &m.tscAdjust})
    *f = r64();
  FpuState& f = s.fpu;
  f.fcw = r16();
  f.fsw = r16();
  f.ftw = static_cast<uint8_t>(rng());
  f.fop = r16();
  f.fip = r64();
  f.fdp = r64();
  f.fcs = r16();
  f.fds = r16();
  for (auto& st : f.st) st = {r64(), r16()};
  for (auto& x : f.xmm) x.q = {r64(), r64()};
  f.mxcsr = r32();
  s.pending.shadow = static_cast<InterruptShadow>(rng() % 3);
  s.pending.pendingDr6 = r64();
  s.pending.nmiBlocked = rng() & 1;
  s.pending.halted = rng() & 1;
  s.steps = r64();
  return s;
}

TraceHeader sampleHeader() {
  TraceHeader h;
  h.ttvmVersion = "0.1.0";
  h.host = "Linux 6.1.0 x86_64 (test host)";
  h.backend = Backend::kEmulator;
  h.createdUnixNs = 1'764'000'000'123'456'789;
  h.machine.ramBytes = 32ull << 20;
  h.machine.devices = {"serial@0x3f8", "pit@0x40", "pic@0x20", "debug-exit@0xf4"};
  h.machine.startClockUnixNs = 1'700'000'000'000'000'000;
  h.machine.tscHz = 2'000'000'000;
  h.machine.cmdline = "console=ttyS0 quiet";
  h.cpuModel.name = "ttvm-x86-64 v1";
  h.cpuModel.vendor = CpuVendor::kAmd;
  h.cpuModel.cpuid = {{0, 0, false, 0xd, 0x68747541, 0x444d4163, 0x69746e65},
                      {7, 0, true, 0, 0x209, 0, 0},
                      {7, 1, true, 0, 0, 0, 0},
                      {0x80000001, 0, false, 0, 0, 0x1, 0x20100800}};
  h.cpuModel.tscFrequencyHz = 2'000'000'000;
  h.modelMsrs = {{0xCE, 0x80000000}, {0x10A, 0}};
  GuestImage kernel;
  kernel.name = "kernel.elf";
  kernel.format = ImageFormat::kElf64;
  kernel.loadAddress = 0x100000;
  kernel.entry = 0x100020;
  for (int i = 0; i < 700; ++i) kernel.bytes.push_back(static_cast<uint8_t>(i * 7 + (i >> 3)));
  kernel.symbols = {{"_start", 0x100020, 16, SymbolKind::kFunction},
                    {"main", 0x100100, 0x80, SymbolKind::kFunction},
                    {"counter", 0x102000, 8, SymbolKind::kObject},
                    {"", 0x103000, 0, SymbolKind::kOther}};
  GuestImage boot;
  boot.name = "boot.bin";
  boot.format = ImageFormat::kFlat;
  boot.loadAddress = 0x7C00;
  boot.entry = 0x7C00;
  boot.bytes = {0xFA, 0x31, 0xC0, 0xF4};
  h.images = {kernel, boot};
  return h;
}

RamPages sampleRam(std::mt19937_64& rng, size_t pages) {
  RamPages ram;
  uint64_t number = rng() % 4;
  std::vector<uint8_t> page(kPageSize);
  for (size_t k = 0; k < pages; ++k) {
    // Half-compressible content: a pattern with random bytes sprinkled in.
    for (size_t i = 0; i < kPageSize; ++i)
      page[i] = (i % 512 == 0) ? static_cast<uint8_t>(rng()) : static_cast<uint8_t>(k + i / 256);
    ram.add(number, page);
    number += 1 + rng() % 5;
  }
  return ram;
}

TraceEvent randomEvent(std::mt19937_64& rng, uint64_t step, int kinds) {
  const unsigned sizes[] = {1, 2, 4, 8};
  const auto kind = static_cast<EventKind>(1 + rng() % static_cast<uint64_t>(kinds));
  const uint64_t v = rng();
  switch (kind) {
    case EventKind::kPortIn:
    case EventKind::kPortOut: {
      const uint8_t size = static_cast<uint8_t>(sizes[rng() % 3]);
      const uint32_t value = static_cast<uint32_t>(v & ((uint64_t{1} << (8 * size)) - 1));
      const uint32_t count = (rng() % 8 == 0) ? static_cast<uint32_t>(rng() % 100) : 1;
      const auto port = static_cast<uint16_t>(rng());
      return kind == EventKind::kPortIn ? TraceEvent::portIn(step, port, size, value, count)
                                        : TraceEvent::portOut(step, port, size, value, count);
    }
    case EventKind::kMmioRead:
    case EventKind::kMmioWrite: {
      const uint8_t size = static_cast<uint8_t>(sizes[rng() % 4]);
      const uint64_t value = size == 8 ? v : v & ((uint64_t{1} << (8 * size)) - 1);
      const uint64_t addr = rng() >> (rng() % 64);
      return kind == EventKind::kMmioRead ? TraceEvent::mmioRead(step, addr, size, value)
                                          : TraceEvent::mmioWrite(step, addr, size, value);
    }
    case EventKind::kInterrupt: return TraceEvent::interrupt(step, static_cast<uint8_t>(v));
    case EventKind::kNmi: return TraceEvent::nmi(step);
    case EventKind::kInterruptWindow: return TraceEvent::interruptWindow(step);
    case EventKind::kRdtsc: return TraceEvent::rdtsc(step, v);
    case EventKind::kRdrand: {
      const uint8_t size = static_cast<uint8_t>(sizes[1 + rng() % 3]);
      const uint64_t value = size == 8 ? v : v & ((uint64_t{1} << (8 * size)) - 1);
      return TraceEvent::rdrand(step, size,
                                rng() % 4 ? std::optional<uint64_t>(value) : std::nullopt);
    }
    case EventKind::kMsrRead: return TraceEvent::msrRead(step, static_cast<uint32_t>(rng()), v);
    case EventKind::kMsrWrite:
      return TraceEvent::msrWrite(step, static_cast<uint32_t>(rng()), v, rng() & 1);
    case EventKind::kDebugExit: return TraceEvent::debugExit(step, static_cast<uint32_t>(v));
    case EventKind::kHlt: return TraceEvent::hlt(step);
    case EventKind::kStateDigest: return TraceEvent::stateDigest(step, v);
    case EventKind::kEndOfRun: return TraceEvent::endOfRun(step);
    case EventKind::kDiskSector: break;  // needs its bytes beside the events (not drawn)
    case EventKind::kSerialInput:
      return TraceEvent::serialInput(step, static_cast<uint8_t>(v), rng() & 1);
    case EventKind::kIdle: return TraceEvent::idle(step, v);
    case EventKind::kDeviceDigest: return TraceEvent::deviceDigest(step, v);
    case EventKind::kDirtyPages:
      return TraceEvent::dirtyPages(step, v >> 12, 1 + static_cast<uint32_t>(rng() % 600));
    case EventKind::kStopPoint:
      return TraceEvent::stopPoint(step, rng(), v, static_cast<uint32_t>(rng()));
  }
  return TraceEvent::hlt(step);
}

std::vector<TraceEvent> randomEvents(std::mt19937_64& rng, size_t n, int kinds) {
  std::vector<TraceEvent> out;
  uint64_t step = rng() % 1000;
  for (size_t i = 0; i < n; ++i) {
    switch (rng() % 8) {
      case 0: break;                                             // same step
      case 1: step += (uint64_t{1} << 32) + rng() % 100; break;  // an escaped delta
      default: step += rng() % 300; break;
    }
    out.push_back(randomEvent(rng, step, kinds));
  }
  return out;
}

std::vector<TraceEvent> everyKindEvents(uint64_t s) {
  return {
      TraceEvent::portIn(s, 0x3FD, 1, 0x60),
      TraceEvent::portIn(s + 1, 0xFFFF, 4, 0xFFFFFFFF, 7),
      TraceEvent::portOut(s + 2, 0x3F8, 1, 'A'),
      TraceEvent::portOut(s + 2, 0x80, 2, 0xBEEF, 0),
      TraceEvent::mmioRead(s + 3, 0xFEE00030, 4, 0x50014),
      TraceEvent::mmioRead(s + 4, 0xFFFFFFFFFFFFFFF8ull, 8, 0xFFFFFFFFFFFFFFFFull),
      TraceEvent::mmioWrite(s + 5, 0xFEC00000, 1, 0x12),
      TraceEvent::mmioWrite(s + 5, 0xB8000, 2, 0x0741),
      TraceEvent::interrupt(s + 6, 0x20),
      TraceEvent::interrupt(s + 6, 0xFF),
      TraceEvent::nmi(s + 7),
      TraceEvent::interruptWindow(s + 8),
      TraceEvent::rdtsc(s + 9, 123456789),
      TraceEvent::rdtsc(s + 10, 5),  // TSC going backward still round-trips
      TraceEvent::rdrand(s + 11, 8, 0xDEADBEEFCAFEF00Dull),
      TraceEvent::rdrand(s + 12, 2, std::nullopt),
      TraceEvent::rdrand(s + 12, 4, 0),
      TraceEvent::msrRead(s + 13, 0x6E0, 0x1234),
      TraceEvent::msrWrite(s + 14, 0x830, 0xFFFFFFFFFFFFFFFFull, true),
      TraceEvent::msrWrite(s + 14, 0xFFFFFFFF, 0, false),
      TraceEvent::debugExit(s + 15, 0xFFFFFFFF),
      TraceEvent::hlt(s + 16),
      TraceEvent::stateDigest(s + 17, 0x0123456789ABCDEFull),
      TraceEvent::endOfRun(s + 0x1'0000'0010ull),
  };
}

TraceEnd sampleEnd(std::mt19937_64& rng, uint64_t steps) {
  TraceEnd e;
  e.reason = EndReason::kTripleFault;
  e.exitStatus = 0;
  e.message = "triple fault at rip 0xdeadbeef (#PF while delivering #DF)";
  e.finalCpu = randomCpuState(rng);
  e.finalDigest = 0x5EED5EED12345678ull;  // a fixed value: the format does not compute digests
  e.steps = steps;
  e.lastInstructions = {{0x100020, {0x90}}, {0x100021, {0x48, 0x8B, 0x04, 0x25, 0, 0, 0, 0}}};
  return e;
}

GoldenTrace goldenV1_0() {
  std::mt19937_64 rng(20261125);
  GoldenTrace g;
  g.header = sampleHeader();
  g.initial.cpu = randomCpuState(rng);
  g.initial.cpu.steps = 0;
  g.initial.ram = sampleRam(rng, 260);  // two PAGE frames
  g.initial.deviceState = {1, 2, 3, 4, 5, 0, 0xFF};
  g.events = everyKindEvents(10);
  std::vector<TraceEvent> more = randomEvents(rng, 2000, 15);
  const uint64_t base = g.events.back().step;
  for (TraceEvent& e : more) {
    e.step += base;
    g.events.push_back(e);
  }
  g.flushAfter = {5, 23, 700, 1500};
  g.snapshotAfter = {23, 1500};
  for (size_t after : g.snapshotAfter) {
    Snapshot s;
    s.step = g.events[after].step;
    s.cpu = randomCpuState(rng);
    s.cpu.steps = s.step;
    s.ram = sampleRam(rng, 3);
    s.deviceState = {9, 8, 7};
    g.snapshots.push_back(s);
  }
  g.end = sampleEnd(rng, g.events.back().step + 1);
  return g;
}

GoldenTrace goldenV1_1() {
  GoldenTrace g = goldenV1_0();
  g.header.traceId = {0x0123456789ABCDEFull, 0xFEDCBA9876543210ull};
  return g;
}

GoldenTrace goldenV1_2() {
  GoldenTrace g = goldenV1_1();
  g.header.replayedDevices = {"ide0", "ide1"};
  auto sector = [&g](uint8_t slot, uint64_t lba, uint64_t step) {
    const auto index = static_cast<uint32_t>(g.sectors.size() / kDiskSectorBytes);
    for (uint32_t i = 0; i < kDiskSectorBytes; ++i)
      g.sectors.push_back(static_cast<uint8_t>(i * 7 + lba * 13 + slot));
    return TraceEvent::diskSector(step, slot, lba, index);
  };
  // One right after the last flush point (at the next event's step: the
  // snapshot taken there may be past the previous one's), two at the end;
  // chunk boundaries and snapshots stay where they were.
  const size_t mid = g.flushAfter.back() + 1;
  g.events.insert(g.events.begin() + static_cast<ptrdiff_t>(mid), sector(0, 1, g.events[mid].step));
  const uint64_t last = g.events.back().step;
  g.events.push_back(sector(1, 0x123456789AB, last));
  g.events.push_back(sector(3, 7, last));
  return g;
}

GoldenTrace goldenV1_3() {
  GoldenTrace g = goldenV1_2();
  g.header.replayedDevices = {"clock",  "pic",       "pit",  "rtc", "lapic",
                              "ioapic", "uart16550", "ide0", "ide1"};
  const uint64_t last = g.events.back().step;
  for (const TraceEvent& e :
       {TraceEvent::serialInput(last, 'l', false), TraceEvent::serialInput(last + 1, 0xFF, true),
        TraceEvent::hlt(last + 2), TraceEvent::idle(last + 2, 0x0123456789ABCDEFull),
        TraceEvent::idle(last + 2, ~uint64_t{0}),
        TraceEvent::stateDigest(last + 3, 0x1111222233334444ull),
        TraceEvent::deviceDigest(last + 3, 0x5555666677778888ull)})
    g.events.push_back(e);
  g.end.steps = g.events.back().step + 1;
  return g;
}

GoldenTrace goldenV1_4() {
  GoldenTrace g = goldenV1_3();
  SliceOrigin o;
  o.sourceTraceId = {0x1122334455667788ull, 0x99AABBCCDDEEFF00ull};
  o.fromStep = g.initial.cpu.steps;
  o.toStep = g.end.steps;
  o.sourceEndStep = g.end.steps + 123456789;
  o.sourceBytes = 987654321;
  o.sourceName = "crash.ttvm";
  o.partialRam = true;
  g.header.slice = o;
  return g;
}

GoldenTrace goldenV1_5() {
  GoldenTrace g = goldenV1_4();
  g.header.backend = Backend::kKvm;
  const uint64_t last = g.events.back().step;
  for (const TraceEvent& e :
       {TraceEvent::dirtyPages(last, 0x10, 3), TraceEvent::dirtyPages(last, 0xFEDCBA987ull, 1),
        TraceEvent::stopPoint(last, 0x100123, 0x9E3779B97F4A7C15ull, 0x89ABCDEF),
        TraceEvent::interrupt(last, 0x20), TraceEvent::stopPoint(last + 1, 0x200, 0, 0)})
    g.events.push_back(e);
  g.end.steps = g.events.back().step + 1;
  return g;
}

GoldenTrace goldenV1_6() {
  GoldenTrace g = goldenV1_5();
  g.header.cpuModel.pushSegmentZeroExtends = true;
  g.header.cpuModel.sysretSkipsRipCheckAndSsCache = true;
  return g;
}

std::string writeGolden(const GoldenTrace& g, const std::string& path) {
  TraceWriter::Options options;
  options.flushInterval = std::chrono::hours(1);  // chunks only where flushAfter says
  auto w = TraceWriter::create(path, g.header, g.initial, options);
  if (!w.ok()) return w.error().message;
  size_t snap = 0;
  size_t flush = 0;
  for (size_t i = 0; i < g.events.size(); ++i) {
    const TraceEvent& e = g.events[i];
    if (e.kind == EventKind::kDiskSector)
      (*w)->appendDiskSector(e.step, static_cast<uint8_t>(e.value), e.address,
                             std::span<const uint8_t>(g.sectors).subspan(
                                 size_t{e.count} * kDiskSectorBytes, kDiskSectorBytes));
    else
      (*w)->append(e);
    if (flush < g.flushAfter.size() && g.flushAfter[flush] == i) {
      ++flush;
      Status s = (*w)->flush();
      if (!s.ok()) return s.error().message;
    }
    if (snap < g.snapshotAfter.size() && g.snapshotAfter[snap] == i) {
      Status s = (*w)->addSnapshot(g.snapshots[snap++]);
      if (!s.ok()) return s.error().message;
    }
  }
  Status s = (*w)->close(g.end);
  return s.ok() ? "" : s.error().message;
}

std::vector<TraceEvent> writeSmallTrace(const std::string& path) {
  std::mt19937_64 rng(7);
  TraceHeader h = sampleHeader();
  h.images.resize(1);
  h.images[0].bytes.resize(64);
  InitialState init;
  init.cpu = randomCpuState(rng);
  init.ram = sampleRam(rng, 2);
  init.deviceState = {1, 2, 3};
  std::vector<TraceEvent> events = everyKindEvents(100);
  TraceWriter::Options options;
  options.maxEventsPerChunk = 10;  // three chunks
  auto w = TraceWriter::create(path, h, init, options);
  if (!w.ok()) std::abort();
  for (size_t i = 0; i < events.size(); ++i) {
    (*w)->append(events[i]);
    if (i == 12) {
      Snapshot s;
      s.step = events[i].step;
      s.cpu = randomCpuState(rng);
      s.ram = sampleRam(rng, 1);
      if (!(*w)->addSnapshot(s).ok()) std::abort();
    }
  }
  TraceEnd end;
  end.reason = EndReason::kExitDevice;
  end.exitStatus = 3;
  end.message = "exit";
  end.steps = events.back().step;
  if (!(*w)->close(end).ok()) std::abort();
  return events;
}

std::string tempPath(const std::string& name) {
  static std::atomic<int> counter{0};
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/ttvm-fmt-" + std::to_string(::getpid()) + "-" +
         std::to_string(counter++) + "-" + name;
}

std::vector<uint8_t> readFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void writeFileBytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

MemFile::MemFile() {
  fd_ = memfd_create("ttvm-test", 0);
  if (fd_ < 0) std::abort();
  path_ = "/proc/self/fd/" + std::to_string(fd_);
}

MemFile::~MemFile() {
  ::close(fd_);
}

void MemFile::set(const uint8_t* data, size_t size) {
  if (::ftruncate(fd_, 0) != 0) std::abort();
  if (size && ::pwrite(fd_, data, size, 0) != static_cast<ssize_t>(size)) std::abort();
}

}  // namespace ttvm::testing
