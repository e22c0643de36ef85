#include "ttvm/machine/stop_point.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>

#include "ttvm/emulator/state_diff.h"

namespace ttvm::machine {
namespace {

// FNV-1a over 64-bit words (a page is 512 of them).
class WordHash {
 public:
  void add(uint64_t v) {
    h_ ^= v;
    h_ *= 0x100000001B3ull;
  }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 0xCBF29CE484222325ull;
};

}  // namespace

void appendDirtyRuns(std::span<const uint64_t> bitmap, uint64_t firstPage,
                     std::vector<PageRun>& runs) {
  for (size_t w = 0; w < bitmap.size(); ++w) {
    uint64_t bits = bitmap[w];
    while (bits != 0) {
      const int i = std::countr_zero(bits);
      const uint64_t page = firstPage + 64 * w + uint64_t(i);
      bits &= bits - 1;
      if (!runs.empty() && runs.back().first + runs.back().count == page)
        ++runs.back().count;
      else
        runs.push_back({page, 1});
    }
  }
}

namespace {

// The registers as a stop point compares them: no step count, and a shadow
// of either kind as one (SVM keeps one shadow bit, which KVM reports as
// MOV SS also after STI; both block the interrupt injected there).
CpuState comparable(const CpuState& s) {
  CpuState c = s;
  c.steps = 0;
  if (c.pending.shadow != InterruptShadow::kNone) c.pending.shadow = InterruptShadow::kMovSs;
  return c;
}

}  // namespace

std::vector<uint64_t> descriptorAccessBytes(
    const CpuState& s, const std::function<std::optional<uint64_t>(uint64_t)>& translate) {
  std::vector<uint64_t> out;
  if (!(s.cr0 & cr0::kPE)) return out;
  auto table = [&](uint64_t base, uint32_t limit) {
    uint64_t linearPage = ~uint64_t{0};
    std::optional<uint64_t> physPage;
    for (uint64_t off = 0; off + 7 <= limit; off += 8) {
      const uint64_t lin = base + off + 5;
      if ((lin & ~0xFFFull) != linearPage) {
        linearPage = lin & ~0xFFFull;
        physPage = translate(linearPage);
      }
      if (physPage) out.push_back(*physPage + (lin & 0xFFF));
    }
  };
  table(s.gdtr.base, s.gdtr.limit);
  if ((s.ldtr.selector & ~3u) != 0 && !(s.ldtr.attributes & segattr::kUnusable))
    table(s.ldtr.base, s.ldtr.limit);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

uint64_t stopFingerprint(const CpuState& s, std::span<const uint8_t> ram,
                         std::span<const PageRun> runs, std::span<const uint64_t> accessBytes) {
  const CpuState atZero = comparable(s);
  WordHash h;
  h.add(stateDigest(atZero));
  uint8_t masked[kPageSize];
  for (const PageRun& r : runs) {
    for (uint64_t p = r.first; p < r.first + r.count; ++p) {
      h.add(p);
      if ((p + 1) * kPageSize > ram.size()) {
        h.add(~uint64_t{0});
        continue;
      }
      const uint8_t* page = ram.data() + p * kPageSize;
      // Descriptors' accessed bits in this page hash as clear.
      auto a = std::lower_bound(accessBytes.begin(), accessBytes.end(), p * kPageSize);
      if (a != accessBytes.end() && *a < (p + 1) * kPageSize) {
        std::memcpy(masked, page, kPageSize);
        for (; a != accessBytes.end() && *a < (p + 1) * kPageSize; ++a) {
          uint8_t& access = masked[*a - p * kPageSize];
          if (access & 0x10) access &= uint8_t(~1u);
        }
        page = masked;
      }
      for (size_t i = 0; i < kPageSize; i += 8) {
        uint64_t v;
        std::memcpy(&v, page + i, 8);
        h.add(v);
      }
    }
  }
  return h.value();
}

namespace {

// The registers the quick key leaves out, by name, so that two logs whose
// "regs" digests differ show which register differs.
std::string describeOtherRegisters(const CpuState& c) {
  std::string out;
  char buf[96];
  auto add = [&](const char* name, uint64_t v) {
    std::snprintf(buf, sizeof buf, " %s=%llx", name, static_cast<unsigned long long>(v));
    out += buf;
  };
  static constexpr const char* kSeg[] = {"es", "cs", "ss", "ds", "fs", "gs"};
  auto addSeg = [&](const char* name, const SegmentRegister& r) {
    std::snprintf(buf, sizeof buf, " %s=%x:%llx:%x:%x", name, unsigned{r.selector},
                  static_cast<unsigned long long>(r.base), r.limit, r.attributes);
    out += buf;
  };
  for (size_t i = 0; i < c.seg.size(); ++i)
    addSeg(i < std::size(kSeg) ? kSeg[i] : "seg?", c.seg[i]);
  addSeg("ldtr", c.ldtr);
  addSeg("tr", c.tr);
  add("gdt", c.gdtr.base);
  add("gdtlim", c.gdtr.limit);
  add("idt", c.idtr.base);
  add("idtlim", c.idtr.limit);
  add("cr0", c.cr0);
  add("cr2", c.cr2);
  add("cr3", c.cr3);
  add("cr4", c.cr4);
  add("cr8", c.cr8);
  add("xcr0", c.xcr0);
  add("dr6", c.dr6);
  add("dr7", c.dr7);
  for (size_t i = 0; i < c.dr.size(); ++i) add("dr", c.dr[i]);
  const MsrState& m = c.msr;
  add("efer", m.efer);
  add("star", m.star);
  add("lstar", m.lstar);
  add("cstar", m.cstar);
  add("sfmask", m.sfmask);
  add("kgsbase", m.kernelGsBase);
  add("syscs", m.sysenterCs);
  add("sysesp", m.sysenterEsp);
  add("syseip", m.sysenterEip);
  add("pat", m.pat);
  add("apicbase", m.apicBase);
  add("tscaux", m.tscAux);
  add("misc", m.miscEnable);
  add("tscadj", m.tscAdjust);
  const FpuState& f = c.fpu;
  add("fcw", f.fcw);
  add("fsw", f.fsw);
  add("ftw", f.ftw);
  add("fop", f.fop);
  add("fip", f.fip);
  add("fdp", f.fdp);
  add("fcs", f.fcs);
  add("fds", f.fds);
  add("mxcsr", f.mxcsr);
  WordHash st;
  for (const Float80& r : f.st) {
    st.add(r.significand);
    st.add(r.signExponent);
  }
  add("st#", st.value());
  WordHash xmm;
  for (const Vec128& x : f.xmm) {
    xmm.add(x.q[0]);
    xmm.add(x.q[1]);
  }
  add("xmm#", xmm.value());
  add("shadow", static_cast<uint64_t>(c.pending.shadow));
  add("pdr6", c.pending.pendingDr6);
  add("nmi", c.pending.nmiBlocked);
  add("halted", c.pending.halted);
  return out;
}

}  // namespace

std::string describeGeneralRegisters(const CpuState& s) {
  std::string out;
  char buf[48];
  for (size_t i = 0; i < s.gpr.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%s%s=%llx", i == 0 ? "" : " ", kGprNames[i],
                  static_cast<unsigned long long>(s.gpr[i]));
    out += buf;
  }
  std::snprintf(buf, sizeof buf, " rip=%llx rflags=%llx", static_cast<unsigned long long>(s.rip),
                static_cast<unsigned long long>(s.rflags));
  return out + buf;
}

std::string describeStopState(const CpuState& s, std::span<const uint8_t> ram,
                              std::span<const PageRun> runs,
                              std::span<const uint64_t> accessBytes) {
  const CpuState atZero = comparable(s);
  char buf[64];
  std::snprintf(buf, sizeof buf, "regs %016llx gprs %08x",
                static_cast<unsigned long long>(stateDigest(atZero)), stopQuickKey(s));
  std::string out = buf;
  out += " [" + describeGeneralRegisters(s) + "] (";
  out += describeOtherRegisters(atZero).substr(1);
  out += ") pages";
  for (const PageRun& r : runs)
    for (uint64_t p = r.first; p < r.first + r.count; ++p) {
      const PageRun one{p, 1};
      CpuState none;
      std::snprintf(
          buf, sizeof buf, " %llx:%016llx", static_cast<unsigned long long>(p),
          static_cast<unsigned long long>(stopFingerprint(none, ram, {&one, 1}, accessBytes)));
      out += buf;
    }
  return out;
}

uint32_t stopQuickKey(const CpuState& s) {
  WordHash h;
  for (uint64_t r : s.gpr) h.add(r);
  h.add(s.rip);
  h.add(s.rflags);
  return uint32_t(h.value() ^ (h.value() >> 32));
}

std::vector<TraceEvent> stopPointEvents(uint64_t exit, const CpuState& s,
                                        std::span<const uint8_t> ram, std::span<const PageRun> runs,
                                        std::span<const uint64_t> accessBytes) {
  std::vector<TraceEvent> events;
  events.reserve(runs.size() + 1);
  for (const PageRun& r : runs) events.push_back(TraceEvent::dirtyPages(exit, r.first, r.count));
  events.push_back(TraceEvent::stopPoint(exit, s.rip, stopFingerprint(s, ram, runs, accessBytes),
                                         stopQuickKey(s)));
  return events;
}

}  // namespace ttvm::machine
