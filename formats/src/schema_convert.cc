#include "schema_convert.h"

#include "crc32c.h"

#include <capnp/serialize.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "frame.h"

namespace ttvm::formats {
namespace {

kj::ArrayPtr<const kj::byte> bytesOf(std::span<const uint8_t> s) {
  return kj::ArrayPtr<const kj::byte>(s.data(), s.size());
}
std::vector<uint8_t> toVector(capnp::Data::Reader d) {
  return {d.begin(), d.end()};
}
std::string toString(capnp::Text::Reader t) {
  return std::string(t.cStr(), t.size());
}
capnp::Text::Reader textOf(const std::string& s) {
  return capnp::Text::Reader(s.data(), s.size());
}

Error badList(const std::string& where, const char* field, size_t expected, size_t found) {
  return makeError(where + ": field '" + field + "' must have " + std::to_string(expected) +
                   " entries, found " + std::to_string(found));
}

template <typename E>
Status checkEnum(const std::string& where, const char* field, E value, unsigned maxValue,
                 unsigned& out) {
  const auto v = static_cast<unsigned>(value);
  if (v > maxValue)
    return makeError(where + ": field '" + field + "' has unknown value " + std::to_string(v));
  out = v;
  return {};
}

void toCapnp(const SegmentRegister& s, schema::Segment::Builder b) {
  b.setSelector(s.selector);
  b.setBase(s.base);
  b.setLimit(s.limit);
  b.setAttributes(s.attributes);
}
SegmentRegister fromCapnp(schema::Segment::Reader r) {
  return {r.getSelector(), r.getBase(), r.getLimit(), r.getAttributes()};
}

}  // namespace

void toCapnp(const CpuState& s, schema::CpuState::Builder b) {
  auto gpr = b.initGpr(kNumGprs);
  for (int i = 0; i < kNumGprs; ++i) gpr.set(i, s.gpr[i]);
  b.setRip(s.rip);
  b.setRflags(s.rflags);
  auto seg = b.initSeg(kNumSegRegs);
  for (int i = 0; i < kNumSegRegs; ++i) toCapnp(s.seg[i], seg[i]);
  b.getGdtr().setBase(s.gdtr.base);
  b.getGdtr().setLimit(s.gdtr.limit);
  b.getIdtr().setBase(s.idtr.base);
  b.getIdtr().setLimit(s.idtr.limit);
  toCapnp(s.ldtr, b.getLdtr());
  toCapnp(s.tr, b.getTr());
  b.setCr0(s.cr0);
  b.setCr2(s.cr2);
  b.setCr3(s.cr3);
  b.setCr4(s.cr4);
  b.setCr8(s.cr8);
  b.setXcr0(s.xcr0);
  auto dr = b.initDr(4);
  for (int i = 0; i < 4; ++i) dr.set(i, s.dr[i]);
  b.setDr6(s.dr6);
  b.setDr7(s.dr7);
  auto m = b.getMsr();
  m.setEfer(s.msr.efer);
  m.setStar(s.msr.star);
  m.setLstar(s.msr.lstar);
  m.setCstar(s.msr.cstar);
  m.setSfmask(s.msr.sfmask);
  m.setKernelGsBase(s.msr.kernelGsBase);
  m.setSysenterCs(s.msr.sysenterCs);
  m.setSysenterEsp(s.msr.sysenterEsp);
  m.setSysenterEip(s.msr.sysenterEip);
  m.setPat(s.msr.pat);
  m.setApicBase(s.msr.apicBase);
  m.setTscAux(s.msr.tscAux);
  m.setMiscEnable(s.msr.miscEnable);
  m.setTscAdjust(s.msr.tscAdjust);
  auto f = b.getFpu();
  f.setFcw(s.fpu.fcw);
  f.setFsw(s.fpu.fsw);
  f.setFtw(s.fpu.ftw);
  f.setFop(s.fpu.fop);
  f.setFip(s.fpu.fip);
  f.setFdp(s.fpu.fdp);
  f.setFcs(s.fpu.fcs);
  f.setFds(s.fpu.fds);
  auto st = f.initSt(8);
  for (int i = 0; i < 8; ++i) {
    st[i].setSignificand(s.fpu.st[i].significand);
    st[i].setSignExponent(s.fpu.st[i].signExponent);
  }
  auto xmm = f.initXmm(16);
  for (int i = 0; i < 16; ++i) {
    xmm[i].setLo(s.fpu.xmm[i].q[0]);
    xmm[i].setHi(s.fpu.xmm[i].q[1]);
  }
  f.setMxcsr(s.fpu.mxcsr);
  auto p = b.getPending();
  p.setShadow(static_cast<schema::InterruptShadow>(s.pending.shadow));
  p.setPendingDr6(s.pending.pendingDr6);
  p.setNmiBlocked(s.pending.nmiBlocked);
  p.setHalted(s.pending.halted);
  b.setSteps(s.steps);
}

Status fromCapnp(schema::CpuState::Reader r, CpuState& s, const std::string& where) {
  auto gpr = r.getGpr();
  if (gpr.size() != kNumGprs) return badList(where, "cpu.gpr", kNumGprs, gpr.size());
  for (int i = 0; i < kNumGprs; ++i) s.gpr[i] = gpr[i];
  s.rip = r.getRip();
  s.rflags = r.getRflags();
  auto seg = r.getSeg();
  if (seg.size() != kNumSegRegs) return badList(where, "cpu.seg", kNumSegRegs, seg.size());
  for (int i = 0; i < kNumSegRegs; ++i) s.seg[i] = fromCapnp(seg[i]);
  s.gdtr = {r.getGdtr().getBase(), r.getGdtr().getLimit()};
  s.idtr = {r.getIdtr().getBase(), r.getIdtr().getLimit()};
  s.ldtr = fromCapnp(r.getLdtr());
  s.tr = fromCapnp(r.getTr());
  s.cr0 = r.getCr0();
  s.cr2 = r.getCr2();
  s.cr3 = r.getCr3();
  s.cr4 = r.getCr4();
  s.cr8 = r.getCr8();
  s.xcr0 = r.getXcr0();
  auto dr = r.getDr();
  if (dr.size() != 4) return badList(where, "cpu.dr", 4, dr.size());
  for (int i = 0; i < 4; ++i) s.dr[i] = dr[i];
  s.dr6 = r.getDr6();
  s.dr7 = r.getDr7();
  auto m = r.getMsr();
  s.msr.efer = m.getEfer();
  s.msr.star = m.getStar();
  s.msr.lstar = m.getLstar();
  s.msr.cstar = m.getCstar();
  s.msr.sfmask = m.getSfmask();
  s.msr.kernelGsBase = m.getKernelGsBase();
  s.msr.sysenterCs = m.getSysenterCs();
  s.msr.sysenterEsp = m.getSysenterEsp();
  s.msr.sysenterEip = m.getSysenterEip();
  s.msr.pat = m.getPat();
  s.msr.apicBase = m.getApicBase();
  s.msr.tscAux = m.getTscAux();
  s.msr.miscEnable = m.getMiscEnable();
  s.msr.tscAdjust = m.getTscAdjust();
  auto f = r.getFpu();
  s.fpu.fcw = f.getFcw();
  s.fpu.fsw = f.getFsw();
  s.fpu.ftw = f.getFtw();
  s.fpu.fop = f.getFop();
  s.fpu.fip = f.getFip();
  s.fpu.fdp = f.getFdp();
  s.fpu.fcs = f.getFcs();
  s.fpu.fds = f.getFds();
  auto st = f.getSt();
  if (st.size() != 8) return badList(where, "cpu.fpu.st", 8, st.size());
  for (int i = 0; i < 8; ++i) s.fpu.st[i] = {st[i].getSignificand(), st[i].getSignExponent()};
  auto xmm = f.getXmm();
  if (xmm.size() != 16) return badList(where, "cpu.fpu.xmm", 16, xmm.size());
  for (int i = 0; i < 16; ++i) s.fpu.xmm[i].q = {xmm[i].getLo(), xmm[i].getHi()};
  s.fpu.mxcsr = f.getMxcsr();
  auto p = r.getPending();
  unsigned shadow = 0;
  TTVM_TRY(checkEnum(where, "cpu.pending.shadow", p.getShadow(), 2, shadow));
  s.pending.shadow = static_cast<InterruptShadow>(shadow);
  s.pending.pendingDr6 = p.getPendingDr6();
  s.pending.nmiBlocked = p.getNmiBlocked();
  s.pending.halted = p.getHalted();
  s.steps = r.getSteps();
  return {};
}

void toCapnp(const TraceHeader& h, schema::Header::Builder b) {
  b.setTtvmVersion(textOf(h.ttvmVersion));
  b.setHost(textOf(h.host));
  b.setBackend(static_cast<schema::Backend>(h.backend));
  b.setCreatedUnixNs(h.createdUnixNs);
  auto m = b.getMachine();
  m.setRamBytes(h.machine.ramBytes);
  auto devices = m.initDevices(static_cast<unsigned>(h.machine.devices.size()));
  for (size_t i = 0; i < h.machine.devices.size(); ++i)
    devices.set(i, textOf(h.machine.devices[i]));
  m.setStartClockUnixNs(h.machine.startClockUnixNs);
  m.setTscHz(h.machine.tscHz);
  m.setCmdline(textOf(h.machine.cmdline));
  b.setTraceIdLo(h.traceId.lo);
  b.setTraceIdHi(h.traceId.hi);
  b.setFormatMinor(kTraceFormatMinor);
  auto cm = b.getCpuModel();
  cm.setName(textOf(h.cpuModel.name));
  cm.setVendor(static_cast<schema::CpuVendor>(h.cpuModel.vendor));
  cm.setPushSegmentZeroExtends(h.cpuModel.pushSegmentZeroExtends);
  cm.setSysretSkipsRipCheckAndSsCache(h.cpuModel.sysretSkipsRipCheckAndSsCache);
  auto leaves = cm.initCpuid(static_cast<unsigned>(h.cpuModel.cpuid.size()));
  for (size_t i = 0; i < h.cpuModel.cpuid.size(); ++i) {
    const CpuidLeaf& l = h.cpuModel.cpuid[i];
    auto lb = leaves[i];
    lb.setLeaf(l.leaf);
    lb.setSubleaf(l.subleaf);
    lb.setSubleafSignificant(l.subleafSignificant);
    lb.setEax(l.eax);
    lb.setEbx(l.ebx);
    lb.setEcx(l.ecx);
    lb.setEdx(l.edx);
  }
  cm.setTscFrequencyHz(h.cpuModel.tscFrequencyHz);
  auto msrs = b.initModelMsrs(static_cast<unsigned>(h.modelMsrs.size()));
  for (size_t i = 0; i < h.modelMsrs.size(); ++i) {
    msrs[i].setIndex(h.modelMsrs[i].index);
    msrs[i].setValue(h.modelMsrs[i].value);
  }
  auto images = b.initImages(static_cast<unsigned>(h.images.size()));
  for (size_t i = 0; i < h.images.size(); ++i) {
    const GuestImage& g = h.images[i];
    auto ib = images[i];
    ib.setName(textOf(g.name));
    ib.setFormat(static_cast<schema::ImageFormat>(g.format));
    ib.setLoadAddress(g.loadAddress);
    ib.setEntry(g.entry);
    ib.setBytes(bytesOf(g.bytes));
    auto syms = ib.initSymbols(static_cast<unsigned>(g.symbols.size()));
    for (size_t k = 0; k < g.symbols.size(); ++k) {
      syms[k].setName(textOf(g.symbols[k].name));
      syms[k].setAddress(g.symbols[k].address);
      syms[k].setSize(g.symbols[k].size);
      syms[k].setKind(static_cast<schema::SymbolKind>(g.symbols[k].kind));
    }
  }
  auto replayed = b.initReplayedDevices(static_cast<unsigned>(h.replayedDevices.size()));
  for (size_t i = 0; i < h.replayedDevices.size(); ++i)
    replayed.set(static_cast<unsigned>(i), textOf(h.replayedDevices[i]));
  if (h.slice) {
    auto sl = b.initSlice();
    sl.setSourceTraceIdLo(h.slice->sourceTraceId.lo);
    sl.setSourceTraceIdHi(h.slice->sourceTraceId.hi);
    sl.setFromStep(h.slice->fromStep);
    sl.setToStep(h.slice->toStep);
    sl.setSourceEndStep(h.slice->sourceEndStep);
    sl.setSourceBytes(h.slice->sourceBytes);
    sl.setSourceName(textOf(h.slice->sourceName));
    sl.setPartialRam(h.slice->partialRam);
  }
  auto emulated = b.initEmulatedPages(static_cast<unsigned>(h.emulatedPages.size()));
  for (size_t i = 0; i < h.emulatedPages.size(); ++i)
    emulated.set(static_cast<unsigned>(i), h.emulatedPages[i]);
}

Status fromCapnp(schema::Header::Reader r, TraceHeader& h, const std::string& where) {
  h.ttvmVersion = toString(r.getTtvmVersion());
  h.host = toString(r.getHost());
  unsigned v = 0;
  TTVM_TRY(checkEnum(where, "backend", r.getBackend(), 1, v));
  h.backend = static_cast<Backend>(v);
  h.createdUnixNs = r.getCreatedUnixNs();
  auto m = r.getMachine();
  h.machine.ramBytes = m.getRamBytes();
  h.machine.devices.clear();
  for (auto d : m.getDevices()) h.machine.devices.push_back(toString(d));
  h.machine.startClockUnixNs = m.getStartClockUnixNs();
  h.machine.tscHz = m.getTscHz();
  h.machine.cmdline = toString(m.getCmdline());
  auto cm = r.getCpuModel();
  h.cpuModel.name = toString(cm.getName());
  TTVM_TRY(checkEnum(where, "cpuModel.vendor", cm.getVendor(), 1, v));
  h.cpuModel.vendor = static_cast<CpuVendor>(v);
  h.cpuModel.cpuid.clear();
  for (auto l : cm.getCpuid())
    h.cpuModel.cpuid.push_back({l.getLeaf(), l.getSubleaf(), l.getSubleafSignificant(), l.getEax(),
                                l.getEbx(), l.getEcx(), l.getEdx()});
  h.cpuModel.tscFrequencyHz = cm.getTscFrequencyHz();
  h.cpuModel.pushSegmentZeroExtends = cm.getPushSegmentZeroExtends();
  h.cpuModel.sysretSkipsRipCheckAndSsCache = cm.getSysretSkipsRipCheckAndSsCache();
  h.modelMsrs.clear();
  for (auto x : r.getModelMsrs()) h.modelMsrs.push_back({x.getIndex(), x.getValue()});
  h.images.clear();
  for (auto ir : r.getImages()) {
    GuestImage g;
    g.name = toString(ir.getName());
    TTVM_TRY(checkEnum(where, "images.format", ir.getFormat(), 5, v));
    g.format = static_cast<ImageFormat>(v);
    g.loadAddress = ir.getLoadAddress();
    g.entry = ir.getEntry();
    g.bytes = toVector(ir.getBytes());
    for (auto sr : ir.getSymbols()) {
      Symbol s;
      s.name = toString(sr.getName());
      s.address = sr.getAddress();
      s.size = sr.getSize();
      TTVM_TRY(checkEnum(where, "images.symbols.kind", sr.getKind(), 2, v));
      s.kind = static_cast<SymbolKind>(v);
      g.symbols.push_back(std::move(s));
    }
    h.images.push_back(std::move(g));
  }
  h.traceId = {r.getTraceIdLo(), r.getTraceIdHi()};
  h.formatMinor = r.getFormatMinor();  // 0 in 1.0; the reader checks it against the preamble
  h.replayedDevices.clear();
  for (auto d : r.getReplayedDevices()) h.replayedDevices.push_back(toString(d));
  h.emulatedPages.clear();
  for (uint64_t p : r.getEmulatedPages()) {
    if (!h.emulatedPages.empty() && p <= h.emulatedPages.back())
      return makeError(where + ": the header's emulated pages are not in increasing order (page " +
                       std::to_string(p) + " after " + std::to_string(h.emulatedPages.back()) +
                       ")");
    if (p >= h.machine.ramBytes / kPageSize)
      return makeError(where + ": the header's emulated page " + std::to_string(p) +
                       " lies beyond the machine's RAM");
    h.emulatedPages.push_back(p);
  }
  h.slice.reset();
  if (r.hasSlice()) {
    auto sl = r.getSlice();
    SliceOrigin o;
    o.sourceTraceId = {sl.getSourceTraceIdLo(), sl.getSourceTraceIdHi()};
    o.fromStep = sl.getFromStep();
    o.toStep = sl.getToStep();
    o.sourceEndStep = sl.getSourceEndStep();
    o.sourceBytes = sl.getSourceBytes();
    o.sourceName = toString(sl.getSourceName());
    o.partialRam = sl.getPartialRam();
    if (o.fromStep > o.toStep || o.toStep > o.sourceEndStep)
      return makeError(where + ": slice origin: steps " + std::to_string(o.fromStep) + ".." +
                       std::to_string(o.toStep) + " do not lie in the source's 0.." +
                       std::to_string(o.sourceEndStep));
    h.slice = std::move(o);
  }
  return {};
}

void toCapnp(const TraceEnd& e, schema::End::Builder b) {
  b.setReason(static_cast<schema::EndReason>(e.reason));
  b.setExitStatus(e.exitStatus);
  b.setMessage(textOf(e.message));
  toCapnp(e.finalCpu, b.getFinalCpu());
  b.setFinalDigest(e.finalDigest);
  b.setSteps(e.steps);
  auto li = b.initLastInstructions(static_cast<unsigned>(e.lastInstructions.size()));
  for (size_t i = 0; i < e.lastInstructions.size(); ++i) {
    li[i].setRip(e.lastInstructions[i].rip);
    li[i].setBytes(bytesOf(e.lastInstructions[i].bytes));
  }
}

Status fromCapnp(schema::End::Reader r, TraceEnd& e, const std::string& where) {
  unsigned v = 0;
  TTVM_TRY(checkEnum(where, "end.reason", r.getReason(), 9, v));
  e.reason = static_cast<EndReason>(v);
  e.exitStatus = r.getExitStatus();
  e.message = toString(r.getMessage());
  TTVM_TRY(fromCapnp(r.getFinalCpu(), e.finalCpu, where));
  e.finalDigest = r.getFinalDigest();
  e.steps = r.getSteps();
  e.lastInstructions.clear();
  for (auto ir : r.getLastInstructions())
    e.lastInstructions.push_back({ir.getRip(), toVector(ir.getBytes())});
  return {};
}

void serializeMessage(capnp::MessageBuilder& message, std::vector<uint8_t>& out) {
  auto segments = message.getSegmentsForOutput();
  const size_t n = segments.size();
  const size_t tableWords = (n + 2) / 2;  // u32 count-1, n u32 sizes, padded to a word
  size_t total = tableWords * 8;
  for (auto s : segments) total += s.size() * 8;
  out.assign(total, 0);
  putU32(out.data(), static_cast<uint32_t>(n - 1));
  for (size_t i = 0; i < n; ++i)
    putU32(out.data() + 4 + 4 * i, static_cast<uint32_t>(segments[i].size()));
  size_t at = tableWords * 8;
  for (auto s : segments) {
    std::memcpy(out.data() + at, s.begin(), s.size() * 8);
    at += s.size() * 8;
  }
}

capnp::ReaderOptions readerOptionsFor(size_t bytes) {
  capnp::ReaderOptions o;
  o.traversalLimitInWords = 2 * (bytes / 8) + 1024;
  o.nestingLimit = 16;
  return o;
}

}  // namespace ttvm::formats

namespace ttvm::formats {

void appendFooterFrame(uint64_t headerOffset, uint64_t initOffset,
                       const std::vector<ChunkInfo>& chunks,
                       const std::vector<SnapshotInfo>& snapshots, const TraceEnd& end,
                       const TraceId& traceId, std::vector<uint8_t>& out) {
  capnp::MallocMessageBuilder message(static_cast<unsigned>(1024 + chunks.size() * 6));
  auto f = message.initRoot<schema::Footer>();
  f.setTraceIdLo(traceId.lo);
  f.setTraceIdHi(traceId.hi);
  f.setHeaderOffset(headerOffset);
  f.setInitOffset(initOffset);
  auto cl = f.initChunks(static_cast<unsigned>(chunks.size()));
  for (size_t i = 0; i < chunks.size(); ++i) {
    auto c = cl[static_cast<unsigned>(i)];
    c.setOffset(chunks[i].offset);
    c.setCompressedBytes(chunks[i].compressedBytes);
    c.setRawBytes(chunks[i].rawBytes);
    c.setEventCount(chunks[i].eventCount);
    c.setFirstStep(chunks[i].firstStep);
    c.setLastStep(chunks[i].lastStep);
  }
  auto sl = f.initSnapshots(static_cast<unsigned>(snapshots.size()));
  for (size_t i = 0; i < snapshots.size(); ++i) {
    sl[static_cast<unsigned>(i)].setOffset(snapshots[i].offset);
    sl[static_cast<unsigned>(i)].setStep(snapshots[i].step);
  }
  toCapnp(end, f.initEnd());
  std::vector<uint8_t> raw;
  serializeMessage(message, raw);
  appendFrame(kTagFoot, raw, 0, 0, static_cast<uint32_t>(chunks.size()), 1, out);
}

Status appendMachineStateFrames(uint32_t tag, uint64_t step, const CpuState& cpu,
                                const RamPages& ram, const std::vector<uint8_t>& deviceState,
                                const TraceId& traceId, uint64_t sequence, int lz4Acceleration,
                                std::vector<uint8_t>& out) {
  const size_t pages = ram.numbers.size();
  if (ram.bytes.size() != pages * kPageSize)
    return makeError("RAM pages: " + std::to_string(pages) + " page numbers but " +
                     std::to_string(ram.bytes.size()) + " bytes (expected " +
                     std::to_string(pages * kPageSize) + ")");
  for (size_t k = 1; k < pages; ++k)
    if (ram.numbers[k] <= ram.numbers[k - 1])
      return makeError("RAM pages: page numbers must increase, found " +
                       std::to_string(ram.numbers[k]) + " after " +
                       std::to_string(ram.numbers[k - 1]));
  const uint32_t frames = static_cast<uint32_t>((pages + kPagesPerFrame - 1) / kPagesPerFrame);
  // The PAGE frames' raw payloads, built first: the state message holds
  // their checksum, which binds them to it.
  std::vector<std::vector<uint8_t>> pageRaw;
  uint32_t pagesCrc = 0;
  for (size_t first = 0; first < pages; first += kPagesPerFrame) {
    const size_t n = std::min<size_t>(kPagesPerFrame, pages - first);
    std::vector<uint8_t>& raw = pageRaw.emplace_back(n * (8 + kPageSize), 0);
    for (size_t k = 0; k < n; ++k) putU64(raw.data() + 8 * k, ram.numbers[first + k]);
    std::memcpy(raw.data() + 8 * n, ram.bytes.data() + first * kPageSize, n * kPageSize);
    pagesCrc = crc32c(pagesCrc, raw.data(), raw.size());
  }
  {
    capnp::MallocMessageBuilder message;
    auto m = message.initRoot<schema::MachineState>();
    m.setStep(step);
    toCapnp(cpu, m.initCpu());
    m.setDeviceState(kj::ArrayPtr<const kj::byte>(deviceState.data(), deviceState.size()));
    m.setPageCount(pages);
    m.setPageFrames(frames);
    m.setTraceIdLo(traceId.lo);
    m.setTraceIdHi(traceId.hi);
    m.setSequence(sequence);
    m.setPagesCrc(pagesCrc);
    std::vector<uint8_t> raw;
    serializeMessage(message, raw);
    if (raw.size() > maxRawBytes(tag))
      return makeError("machine state of " + std::to_string(raw.size()) +
                       " bytes exceeds the limit of " + std::to_string(maxRawBytes(tag)));
    appendFrame(tag, raw, step, step, 0, lz4Acceleration, out);
  }
  for (const std::vector<uint8_t>& raw : pageRaw)
    appendFrame(kTagPage, raw, step, step, static_cast<uint32_t>(raw.size() / (8 + kPageSize)),
                lz4Acceleration, out);
  return {};
}

Status writeAll(int fd, const std::string& path, std::span<const uint8_t> data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t r = ::write(fd, data.data() + done, data.size() - done);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return makeError(path + ": write failed: " + std::strerror(errno));
    done += static_cast<size_t>(r);
  }
  return {};
}

}  // namespace ttvm::formats
