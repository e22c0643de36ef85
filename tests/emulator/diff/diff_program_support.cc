#include "diff_program_support.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>

namespace ttvm::difftest {

const char* toString(CodeMode m) {
  switch (m) {
    case CodeMode::kReal16: return "real mode (16-bit)";
    case CodeMode::kProtected32: return "32-bit protected mode (flat)";
    case CodeMode::kLong64: return "64-bit long mode";
  }
  return "?";
}

int modeBits(CodeMode m) {
  switch (m) {
    case CodeMode::kReal16: return 16;
    case CodeMode::kProtected32: return 32;
    case CodeMode::kLong64: return 64;
  }
  return 64;
}

ZydisMachineMode zydisMode(CodeMode m) {
  switch (m) {
    case CodeMode::kReal16: return ZYDIS_MACHINE_MODE_REAL_16;
    case CodeMode::kProtected32: return ZYDIS_MACHINE_MODE_LEGACY_32;
    case CodeMode::kLong64: return ZYDIS_MACHINE_MODE_LONG_64;
  }
  return ZYDIS_MACHINE_MODE_LONG_64;
}

Layout layoutFor(CodeMode m) {
  Layout l;
  switch (m) {
    case CodeMode::kLong64:
      // Above mmap_min_addr so that the host runner can map it; below 2 GiB
      // so that [disp32] absolute addressing reaches the data.
      l.code = 0x100000;
      l.data = 0x200000;
      break;
    case CodeMode::kProtected32:
      // Below 64 KiB so that 16-bit address forms (67h prefix) reach the data.
      l.code = 0xA000;
      l.data = 0xC000;
      break;
    case CodeMode::kReal16:
      l.realSegment = 0x1000;
      l.code = 0xA000;
      l.data = 0xC000;
      break;
  }
  return l;
}

const char* gprName(CodeMode mode, int i) {
  static const char* k64[] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                              "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
  static const char* k32[] = {"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"};
  return mode == CodeMode::kLong64 ? k64[i] : k32[i];
}

namespace {

Result<std::vector<uint8_t>> encodeOne(const Insn& in, uint64_t address, uint64_t branchTarget) {
  if (!in.raw.empty()) return in.raw;
  ZydisEncoderRequest req = in.req;
  if (branchTarget != 0) req.operands[0].imm.u = branchTarget;
  uint8_t buf[ZYDIS_MAX_INSTRUCTION_LENGTH];
  ZyanUSize len = sizeof(buf);
  ZyanStatus st = ZydisEncoderEncodeInstructionAbsolute(&req, buf, &len, address);
  if (ZYAN_FAILED(st)) {
    char msg[96];
    std::snprintf(msg, sizeof(msg), "Zydis cannot encode %s (status 0x%x) at 0x%" PRIx64,
                  ZydisMnemonicGetString(in.req.mnemonic), static_cast<unsigned>(st), address);
    return makeError(msg);
  }
  return std::vector<uint8_t>(buf, buf + len);
}

struct Encoder {
  Encoded out;
  uint64_t base = 0;
  uint32_t undefined = 0;

  Status place(const Insn& in, uint64_t branchTarget) {
    uint64_t addr = base + out.bytes.size();
    auto bytes = encodeOne(in, addr, branchTarget);
    if (!bytes.ok()) return bytes.error();
    if (in.reads & undefined) {
      char msg[128];
      std::snprintf(msg, sizeof(msg),
                    "instruction at 0x%" PRIx64 " reads flags 0x%x that are undefined there", addr,
                    in.reads & undefined);
      return makeError(msg);
    }
    out.insns.push_back(
        {static_cast<uint32_t>(out.bytes.size()), static_cast<uint32_t>(bytes->size()), undefined});
    out.bytes.insert(out.bytes.end(), bytes->begin(), bytes->end());
    undefined = (undefined & ~in.defines) | in.undefines;
    return {};
  }
};

}  // namespace

Result<Encoded> encode(const Program& p, uint64_t codeAddress) {
  return encodeUnits(p.units, codeAddress, 0);
}

Result<Encoded> encodeUnits(const std::vector<Unit>& units, uint64_t codeAddress,
                            uint32_t undefinedIn) {
  Encoder e;
  e.base = codeAddress;
  e.undefined = undefinedIn;
  for (const Unit& u : units) {
    if (u.call) {
      // CALL body; JMP end; body: ...; RET. Size CALL and JMP with
      // provisional targets, lay the body out, then encode them for real.
      uint64_t at = codeAddress + e.out.bytes.size();
      auto callProv = encodeOne(u.insns[0], at, at + 0x40);
      if (!callProv.ok()) return callProv.error();
      uint64_t jmpAt = at + callProv->size();
      auto jmpProv = encodeOne(u.insns[1], jmpAt, jmpAt + 0x10);
      if (!jmpProv.ok()) return jmpProv.error();
      Encoder body;
      body.base = jmpAt + jmpProv->size();
      body.undefined = e.undefined;
      for (size_t i = 2; i < u.insns.size(); ++i) TTVM_TRY(body.place(u.insns[i], 0));
      uint64_t end = body.base + body.out.bytes.size();
      size_t before = e.out.bytes.size();
      TTVM_TRY(e.place(u.insns[0], body.base));
      TTVM_TRY(e.place(u.insns[1], end));
      if (e.out.bytes.size() - before != callProv->size() + jmpProv->size()) {
        return makeError("call unit changed size (subroutine too long for a short JMP)");
      }
      for (auto pos : body.out.insns) {
        pos.offset += static_cast<uint32_t>(e.out.bytes.size());
        e.out.insns.push_back(pos);
      }
      e.out.bytes.insert(e.out.bytes.end(), body.out.bytes.begin(), body.out.bytes.end());
      e.undefined = body.undefined;  // the subroutine always runs
      continue;
    }
    if (!u.branch) {
      for (const Insn& in : u.insns) TTVM_TRY(e.place(in, 0));
      continue;
    }
    // Branch over insns[1..]: size the branch with a provisional target, lay
    // the body out after it, then encode the branch for real at the same size.
    uint64_t at = codeAddress + e.out.bytes.size();
    auto provisional = encodeOne(u.insns[0], at, at + 2);
    if (!provisional.ok()) return provisional.error();
    Encoder body;
    body.base = at + provisional->size();
    body.undefined = (e.undefined & ~u.insns[0].defines) | u.insns[0].undefines;
    if (u.insns[0].reads & e.undefined) return makeError("branch reads undefined flags");
    for (size_t i = 1; i < u.insns.size(); ++i) TTVM_TRY(body.place(u.insns[i], 0));
    uint64_t target = body.base + body.out.bytes.size();
    size_t before = e.out.bytes.size();
    uint32_t afterBranch = body.undefined;  // state if the body ran to its end
    TTVM_TRY(e.place(u.insns[0], target));
    if (e.out.bytes.size() - before != provisional->size()) {
      return makeError("short branch changed size (body too long for rel8)");
    }
    for (auto pos : body.out.insns) {
      pos.offset += static_cast<uint32_t>(e.out.bytes.size());
      e.out.insns.push_back(pos);
    }
    e.out.bytes.insert(e.out.bytes.end(), body.out.bytes.begin(), body.out.bytes.end());
    // Taken or not, a flag is deterministic afterwards only if it is on both paths.
    e.undefined |= afterBranch;
  }
  if (e.out.bytes.size() > kMaxCodeSize) return makeError("program larger than kMaxCodeSize");
  e.out.undefinedAtEnd = e.undefined;
  return std::move(e.out);
}

namespace {

std::string hex64(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof(b), "0x%016" PRIx64, v);
  return b;
}

std::string flagNames(uint64_t f) {
  static const struct {
    uint64_t bit;
    const char* name;
  } kNames[] = {{flags::kCF, "CF"}, {flags::kPF, "PF"}, {flags::kAF, "AF"}, {flags::kZF, "ZF"},
                {flags::kSF, "SF"}, {flags::kTF, "TF"}, {flags::kIF, "IF"}, {flags::kDF, "DF"},
                {flags::kOF, "OF"}, {flags::kAC, "AC"}, {flags::kID, "ID"}};
  std::string s;
  for (const auto& n : kNames) {
    if (f & n.bit) {
      if (!s.empty()) s += ' ';
      s += n.name;
    }
  }
  return s;
}

}  // namespace

std::vector<std::string> compareOutcomes(CodeMode mode, const Encoded& code,
                                         const Outcome& expected, const Outcome& actual,
                                         const CompareOptions& opts) {
  std::vector<std::string> diffs;
  char line[256];
  if (expected.faulted != actual.faulted ||
      (expected.faulted && expected.vector != actual.vector)) {
    auto what = [](const Outcome& o) {
      return o.faulted ? "fault #" + std::to_string(o.vector) : std::string("completion");
    };
    std::snprintf(line, sizeof(line), "outcome: expected %s, got %s", what(expected).c_str(),
                  what(actual).c_str());
    diffs.push_back(line);
  }
  const ArchState& e = expected.state;
  const ArchState& a = actual.state;
  bool is64 = mode == CodeMode::kLong64;
  int n = is64 ? 16 : 8;
  uint64_t regMask = is64 ? ~0ull : 0xFFFFFFFFull;
  for (int i = 0; i < n; ++i) {
    if ((e.gpr[i] & regMask) != (a.gpr[i] & regMask)) {
      std::snprintf(line, sizeof(line), "%s: expected %s, got %s", gprName(mode, i),
                    hex64(e.gpr[i] & regMask).c_str(), hex64(a.gpr[i] & regMask).c_str());
      diffs.push_back(line);
    }
  }
  if (e.rip != a.rip) {
    std::snprintf(line, sizeof(line), "rip: expected %s, got %s", hex64(e.rip).c_str(),
                  hex64(a.rip).c_str());
    diffs.push_back(line);
  }
  // Flags undefined at the point where the expected run stopped.
  uint32_t undefined = code.undefinedAtEnd;
  if (expected.faulted) {
    undefined = flags::kArith;  // unless the faulting instruction is found below
    uint64_t codeStart = layoutFor(mode).code;
    for (const auto& pos : code.insns) {
      if (codeStart + pos.offset == e.rip) undefined = pos.undefinedBefore;
    }
  }
  uint64_t fmask = opts.flagMask & ~static_cast<uint64_t>(undefined);
  if ((e.rflags & fmask) != (a.rflags & fmask)) {
    uint64_t d = (e.rflags ^ a.rflags) & fmask;
    std::snprintf(line, sizeof(line), "rflags: expected %s, got %s (differ: %s; undefined: %s)",
                  hex64(e.rflags & fmask).c_str(), hex64(a.rflags & fmask).c_str(),
                  flagNames(d).c_str(), flagNames(undefined).c_str());
    diffs.push_back(line);
  }
  if (opts.compareXmm) {
    for (int i = 0; i < opts.xmmCount; ++i) {
      if (e.xmm[i] != a.xmm[i]) {
        std::snprintf(line, sizeof(line),
                      "xmm%d: expected %016" PRIx64 "%016" PRIx64 ", got %016" PRIx64 "%016" PRIx64,
                      i, e.xmm[i].q[1], e.xmm[i].q[0], a.xmm[i].q[1], a.xmm[i].q[0]);
        diffs.push_back(line);
      }
    }
  }
  int memDiffs = 0;
  for (uint64_t off = 0; off < kMemSize; ++off) {
    if (e.mem[off] != a.mem[off]) {
      if (++memDiffs <= 8) {
        std::snprintf(line, sizeof(line), "mem[data+0x%04" PRIx64 "]: expected 0x%02x, got 0x%02x",
                      off, e.mem[off], a.mem[off]);
        diffs.push_back(line);
      }
    }
  }
  if (memDiffs > 8)
    diffs.push_back("... " + std::to_string(memDiffs - 8) + " more memory bytes differ");
  return diffs;
}

std::string listing(CodeMode mode, const Encoded& code, uint64_t codeAddress) {
  std::string out;
  for (const auto& pos : code.insns) {
    ZydisDisassembledInstruction d;
    const uint8_t* p = code.bytes.data() + pos.offset;
    char line[200];
    std::string bytes;
    for (uint32_t i = 0; i < pos.length; ++i) {
      char b[4];
      std::snprintf(b, sizeof(b), "%02x ", p[i]);
      bytes += b;
    }
    const char* text = "(undecodable)";
    if (ZYAN_SUCCESS(
            ZydisDisassembleIntel(zydisMode(mode), codeAddress + pos.offset, p, pos.length, &d))) {
      text = d.text;
    }
    std::snprintf(line, sizeof(line), "  %08" PRIx64 ": %-36s %s\n", codeAddress + pos.offset,
                  bytes.c_str(), text);
    out += line;
  }
  return out;
}

std::string lastMnemonic(CodeMode mode, const Encoded& code, uint64_t codeAddress) {
  if (code.insns.empty()) return "(empty)";
  const auto& pos = code.insns.back();
  ZydisDisassembledInstruction d;
  if (ZYAN_FAILED(ZydisDisassembleIntel(zydisMode(mode), codeAddress + pos.offset,
                                        code.bytes.data() + pos.offset, pos.length, &d))) {
    return "(undecodable)";
  }
  std::string m = ZydisMnemonicGetString(d.info.mnemonic);
  // Operand size tells apart most implementation paths.
  return m + "/" + std::to_string(d.info.operand_width);
}

std::string describeState(CodeMode mode, const ArchState& s, bool withXmm) {
  std::string out;
  char line[128];
  int n = mode == CodeMode::kLong64 ? 16 : 8;
  for (int i = 0; i < n; ++i) {
    std::snprintf(line, sizeof(line), "  %-3s=%s%s", gprName(mode, i), hex64(s.gpr[i]).c_str(),
                  (i % 4 == 3) ? "\n" : "");
    out += line;
  }
  std::snprintf(line, sizeof(line), "  rflags=%s [%s]\n", hex64(s.rflags).c_str(),
                flagNames(s.rflags).c_str());
  out += line;
  if (withXmm) {
    for (int i = 0; i < (mode == CodeMode::kLong64 ? 16 : 8); ++i) {
      std::snprintf(line, sizeof(line), "  xmm%-2d=%016" PRIx64 "%016" PRIx64 "%s", i,
                    s.xmm[i].q[1], s.xmm[i].q[0], (i % 2 == 1) ? "\n" : "");
      out += line;
    }
  }
  return out;
}

}  // namespace ttvm::difftest
