#include "ttvm/replayer/backtrace.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "ttvm/base/hex.h"
#include "ttvm/emulator/disassembler.h"
#include "ttvm/replayer/timeline.h"

namespace ttvm {
namespace {

// RFLAGS bits that read as 1 (bit 1) and as 0 (3, 5, 15, 22-63).
constexpr uint64_t kFlagsFixed1 = 1u << 1;
constexpr uint64_t kFlagsFixed0 = (1u << 3) | (1u << 5) | (1u << 15) | ~((1ull << 22) - 1);

// How far above a frame an interrupt entry's saved registers and the CPU's
// interrupt frame may lie (bytes).
constexpr uint64_t kMaxEntryFrame = 1024;

class Walker {
 public:
  Walker(const CpuState& regs, const LinearReader& read, const GuestSymbols& symbols,
         const BacktraceOptions& options)
      : regs_(regs),
        read_(read),
        symbols_(symbols),
        o_(options),
        mode_(cpuMode(regs)),
        is64_(mode_ == CpuMode::kLong64),
        w_(is64_ ? 8 : 4),
        csBase_(is64_ ? 0 : regs.segment(SegReg::kCs).base),
        ssBase_(is64_ ? 0 : regs.segment(SegReg::kSs).base) {}

  Backtrace run() {
    bt_.frames.push_back(frame(FrameKind::kRegisters, regs_.rip, 0));
    if (mode_ != CpuMode::kLong64 && mode_ != CpuMode::kProtected32 &&
        mode_ != CpuMode::kCompatibility32) {
      bt_.end = "16-bit code: no stack walk";
      return finish();
    }
    const uint64_t mask = is64_ ? ~0ull : 0xFFFFFFFFull;
    const uint64_t rsp = regs_.gpr[static_cast<int>(Gpr::kRsp)] & mask;
    scanFrom_ = rsp;
    followChain(rsp, regs_.gpr[static_cast<int>(Gpr::kRbp)] & mask);
    // Above the last frame the chain gave: its end may be a bad link or, in
    // code without frame pointers, a register that happened to look like
    // one; a scan finds what lies there (nothing, for a clean chain).
    if (o_.scan && bt_.frames.size() < o_.maxFrames) {
      const uint64_t from = scanFrom_;
      uint64_t to = 0;
      const bool unmapped = scan(from, from + o_.scanBytes, &to);
      bt_.end += "; scanned the stack from " + hex(from) + " to " + hex(to);
      if (unmapped) bt_.end += " (unmapped)";
    }
    return finish();
  }

 private:
  // Numbers the frames on the stack and, when asked, puts the calls
  // inlined at each frame's pc before it.
  Backtrace finish() {
    std::vector<BacktraceFrame> out;
    for (size_t i = 0; i < bt_.frames.size(); ++i) {
      BacktraceFrame& f = bt_.frames[i];
      f.stackFrame = static_cast<unsigned>(i);
      if (o_.inlined) {
        const bool ret = f.kind == FrameKind::kFramePointer || f.kind == FrameKind::kStackScan;
        const std::vector<GuestFunction> functions =
            symbols_.functionsAt(csBase_ + f.pc - (ret ? 1 : 0));
        size_t first = 0;  // calls that begin at RIP and are skipped
        if (i == 0 && o_.skipStartingInlined)
          while (first + 1 < functions.size() && functions[first].starts) ++first;
        for (size_t d = first; d + 1 < functions.size(); ++d) {
          BacktraceFrame call = f;
          call.inlined = true;
          call.symbol = functions[d].name;
          call.source = functions[d].line;
          call.inlineDepth = static_cast<unsigned>(d);
          out.push_back(std::move(call));
        }
        if (functions.size() > 1) {
          f.source = functions.back().line;
          f.inlineDepth = static_cast<unsigned>(functions.size() - 1);
        }
      }
      out.push_back(std::move(f));
    }
    bt_.frames = std::move(out);
    return std::move(bt_);
  }

  bool canonical(uint64_t a) const {
    return is64_ ? static_cast<uint64_t>(static_cast<int64_t>(a << 16) >> 16) == a
                 : a <= 0xFFFFFFFFull;
  }

  std::optional<uint64_t> word(uint64_t address) const {
    uint8_t b[8] = {};
    if (!read_(ssBase_ + address, std::span<uint8_t>(b, w_))) return std::nullopt;
    uint64_t v = 0;
    std::memcpy(&v, b, w_);
    return v;
  }

  // Inside code: a known function (or an untyped label) when symbols are
  // loaded; any canonical address otherwise.
  bool inCode(uint64_t pc) const {
    if (!canonical(pc)) return false;
    if (symbols_.empty()) return true;
    const Symbol* s = symbols_.lookup(csBase_ + pc);
    return s != nullptr && s->kind != SymbolKind::kObject;
  }

  // The bytes before `ret` decode as a CALL that ends exactly at `ret`
  // (E8 rel32: 5 bytes; FF /2 forms: 2 to 7).
  bool afterCall(uint64_t ret) const {
    uint8_t buf[7];
    for (unsigned k = 2; k <= 7; ++k) {
      if (ret < k || !read_(csBase_ + ret - k, std::span<uint8_t>(buf, k))) continue;
      const Disassembly d = disassemble(std::span<const uint8_t>(buf, k), mode_, ret - k);
      if (d.length == k && d.text.rfind("call", 0) == 0) return true;
    }
    return false;
  }

  bool returnAddress(uint64_t ret) const {
    return ret > w_ && canonical(ret) && inCode(ret - 1) && afterCall(ret);
  }

  // An interrupt/exception frame at `at`: RIP, CS (a non-null selector),
  // RFLAGS with its fixed bits right, and RIP in code.
  bool interruptFrame(uint64_t at, uint64_t& rip) const {
    auto r = word(at), cs = word(at + w_), fl = word(at + 2 * w_);
    if (!r || !cs || !fl) return false;
    // A kernel interrupted at its own privilege (this CS), or user mode.
    const uint64_t ownCs = regs_.seg[static_cast<int>(SegReg::kCs)].selector;
    if (*cs > 0xFFFF || (*cs & ~3ull) == 0 || (*cs != ownCs && (*cs & 3) != 3)) return false;
    if ((*fl & kFlagsFixed1) == 0 || (*fl & (is64_ ? kFlagsFixed0 : kFlagsFixed0 & 0xFFFFFFFFull)))
      return false;
    if (!inCode(*r)) return false;
    rip = *r;
    return true;
  }

  BacktraceFrame frame(FrameKind kind, uint64_t pc, uint64_t slot) const {
    BacktraceFrame f;
    f.kind = kind;
    f.pc = pc;
    f.slot = slot;
    // A return address names its call instruction (pc - 1).
    const uint64_t at =
        kind == FrameKind::kFramePointer || kind == FrameKind::kStackScan ? pc - 1 : pc;
    if (const Symbol* s = symbols_.lookup(at)) {
      f.symbol = s->name;
      if (csBase_ + pc != s->address) f.symbol += "+" + hex(csBase_ + pc - s->address);
    }
    f.source = symbols_.sourceLine(at);
    return f;
  }

  // Follows RBP links from `fp`; true when the chain ended cleanly (a zero
  // link), false at a bad one (bt_.end says which). Frames that a direct
  // call shows missing are scanned for on the way.
  bool followChain(uint64_t rsp, uint64_t fp) {
    while (bt_.frames.size() < o_.maxFrames) {
      if (fp == 0) {
        bt_.end = "frame pointer 0: the outermost frame";
        return true;
      }
      if (!canonical(fp)) return bad("frame pointer " + hex(fp) + " is not canonical");
      if (fp % w_ != 0) return bad("frame pointer " + hex(fp) + " is not aligned");
      if (fp < rsp || fp - rsp >= o_.maxStackBytes)
        return bad("frame pointer " + hex(fp) + " is not on the stack (RSP " + hex(rsp) + ")");
      auto saved = word(fp), ret = word(fp + w_);
      if (!saved || !ret) return bad("frame pointer " + hex(fp) + " is not mapped");
      if (*ret == 0) {
        bt_.end = "return address 0 at " + hex(fp + w_) + ": the outermost frame";
        return true;
      }
      if (!returnAddress(*ret))
        return bad("the word at " + hex(fp + w_) + " (" + hex(*ret) +
                   ") is not a return address after a call");
      // A direct call that cannot have called the frame below: frames
      // without frame pointers lie between (Linux: panic's callees under an
      // ORC kernel). Scan that stretch for them.
      if (o_.scan && skipsFrames(*ret)) scan(scanFrom_, fp, nullptr);
      if (bt_.frames.size() >= o_.maxFrames) break;
      bt_.frames.push_back(frame(FrameKind::kFramePointer, *ret, fp));
      scanFrom_ = fp + 2 * w_;
      if (*saved != 0 && *saved <= fp)
        return bad("the next frame pointer " + hex(*saved) + " is not above " + hex(fp));
      // An interrupt entry between this frame and the next: the CPU pushed
      // the interrupted RIP there, which no frame pointer links to.
      if (*saved != 0) findInterruptFrame(fp + 2 * w_, std::min(*saved, fp + kMaxEntryFrame));
      fp = *saved;
    }
    bt_.end = "stopped after " + std::to_string(o_.maxFrames) + " frames";
    return true;
  }

  void findInterruptFrame(uint64_t from, uint64_t to) {
    uint64_t rip = 0;
    for (uint64_t a = from; a + 3 * w_ <= to; a += w_)
      if (interruptFrame(a, rip)) {
        bt_.frames.push_back(frame(FrameKind::kInterrupted, rip, a));
        scanFrom_ = a + 3 * w_;
        return;
      }
  }

  bool bad(std::string why) {
    bt_.end = std::move(why);
    return false;
  }

  // The function a frame's pc is in (a return address names its call).
  const Symbol* frameFunction(const BacktraceFrame& f) const {
    const bool ret = f.kind == FrameKind::kFramePointer || f.kind == FrameKind::kStackScan;
    return symbols_.lookup(csBase_ + f.pc - (ret ? 1 : 0));
  }

  // The call that ends at `ret` is a direct one (E8 rel32) to a function
  // other than the one of the last frame found.
  bool skipsFrames(uint64_t ret) const {
    uint8_t b[5];
    if (ret < 5 || !read_(csBase_ + ret - 5, std::span<uint8_t>(b, 5)) || b[0] != 0xE8)
      return false;
    int32_t rel = 0;
    std::memcpy(&rel, b + 1, 4);
    uint64_t target = ret + static_cast<uint64_t>(static_cast<int64_t>(rel));
    if (!is64_) target &= 0xFFFFFFFFull;
    const Symbol* callee = symbols_.lookup(csBase_ + target);
    const Symbol* below = frameFunction(bt_.frames.back());
    return callee != nullptr && below != nullptr && callee->address != below->address;
  }

  // Scans the stack words in [from, to) for interrupt frames and return
  // addresses; true when it stopped at an unmapped word. *stop: where it
  // stopped (`to`, the unmapped word, or where the frame limit was hit).
  bool scan(uint64_t from, uint64_t to, uint64_t* stop) {
    from = (from + w_ - 1) / w_ * w_;
    uint64_t a = from;
    for (; a < to && bt_.frames.size() < o_.maxFrames; a += w_) {
      auto v = word(a);
      if (!v) {
        if (stop != nullptr) *stop = a;
        return true;
      }
      uint64_t rip = 0;
      if (interruptFrame(a, rip)) {
        bt_.frames.push_back(frame(FrameKind::kInterrupted, rip, a));
        a += 2 * w_;  // CS, RFLAGS (the loop skips RIP; RSP and SS get checked as words)
        continue;
      }
      if (returnAddress(*v)) bt_.frames.push_back(frame(FrameKind::kStackScan, *v, a));
    }
    if (stop != nullptr) *stop = std::min(a, to);
    return false;
  }

  const CpuState& regs_;
  const LinearReader& read_;
  const GuestSymbols& symbols_;
  const BacktraceOptions& o_;
  const CpuMode mode_;
  const bool is64_;
  const unsigned w_;
  // Outside 64-bit mode RIP and return addresses are CS offsets, and stack
  // addresses SS offsets; symbols and memory are linear.
  const uint64_t csBase_, ssBase_;
  Backtrace bt_;
  uint64_t scanFrom_ = 0;  // above the last frame found (RSP before the first)
};

}  // namespace

Backtrace unwindStack(const CpuState& regs, const LinearReader& read, const GuestSymbols& symbols,
                      const BacktraceOptions& options) {
  return Walker(regs, read, symbols, options).run();
}

Backtrace unwindStack(const Timeline& timeline, const BacktraceOptions& options) {
  const LinearReader read = [&](uint64_t a, std::span<uint8_t> out) {
    return timeline.readLinear(a, out);
  };
  return unwindStack(timeline.registers(), read, timeline.symbols(), options);
}

std::string formatBacktrace(const Backtrace& bt) {
  std::string out;
  for (size_t i = 0; i < bt.frames.size(); ++i) {
    const BacktraceFrame& f = bt.frames[i];
    char num[32];
    std::snprintf(num, sizeof num, "#%-3zu", i);
    out += num;
    if (f.kind == FrameKind::kStackScan) out += "? ";
    out += hex(f.pc);
    if (!f.symbol.empty()) out += " <" + f.symbol + ">";
    if (f.inlined) out += " (inlined)";
    if (f.source) out += " at " + f.source->file + ":" + std::to_string(f.source->line);
    if (f.inlined) {
      out += "\n";
      continue;
    }
    switch (f.kind) {
      case FrameKind::kRegisters: break;
      case FrameKind::kFramePointer: out += "  (frame " + hex(f.slot) + ")"; break;
      case FrameKind::kInterrupted: out += "  (interrupted; saved at " + hex(f.slot) + ")"; break;
      case FrameKind::kStackScan: out += "  (stack " + hex(f.slot) + ")"; break;
    }
    out += "\n";
  }
  if (!bt.end.empty()) out += "(end: " + bt.end + ")\n";
  return out;
}

}  // namespace ttvm
