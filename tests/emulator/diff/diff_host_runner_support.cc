#include "diff_host_runner_support.h"

#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <initializer_list>

namespace ttvm::difftest {
namespace {

// Fixed addresses in the child (below the code at 0x100000 and far from
// where Linux puts a PIE binary, its heap and mappings).
constexpr uint64_t kStubPage = 0x180000;
constexpr uint64_t kEntryStub = kStubPage;
constexpr uint64_t kExitStub = kStubPage + 0x400;
constexpr uint64_t kTailStub = kStubPage + 0x800;
constexpr uint64_t kBlockPage = 0x190000;
constexpr uint64_t kInBlock = kBlockPage;
constexpr uint64_t kOutBlock = kBlockPage + 0x400;
constexpr uint64_t kHostRspSlot = kBlockPage + 0x800;
constexpr uint64_t kCodeMapSize = kMaxCodeSize + 0x1000;
// 32-bit (compatibility mode) path: a 32-bit entry and exit stub, far
// pointers for the mode switches, a small stack below 4 GiB for PUSHFD/POPFD,
// and the host's DS/ES (compatibility-mode code needs usable data segments).
constexpr uint64_t kEntry32Stub = kStubPage + 0xA00;
constexpr uint64_t kExit32Stub = kStubPage + 0xC00;
constexpr uint64_t kFarEntry32 = kBlockPage + 0xA00;  // m16:32 -> 0x23:kEntry32Stub
constexpr uint64_t kFarTail64 = kBlockPage + 0xA10;   // m16:32 -> 0x33:kTailStub
constexpr uint64_t kSegSlot = kBlockPage + 0xA20;     // saved DS, ES
constexpr uint64_t kPrivateStack32 = kBlockPage + 0xF00;
constexpr uint16_t kUserCs64 = 0x33, kUserDs = 0x2B;

// State block layout used by the stubs.
constexpr int kGprOff = 0;
constexpr int kFlagsOff = 0x80;
constexpr int kXmmOff = 0x100;

struct Block {
  uint64_t gpr[16];
  uint64_t rflags;
  uint64_t pad[15];
  uint64_t xmm[16][2];
};
static_assert(offsetof(Block, rflags) == kFlagsOff);
static_assert(offsetof(Block, xmm) == kXmmOff);

// Written by the signal handler.
struct FaultInfo {
  uint64_t faulted;
  uint64_t vector;
  uint64_t rip;
};
constexpr uint64_t kFaultSlot = kBlockPage + 0x900;

}  // namespace

struct HostRunner::Shared {
  uint32_t codeLen;
  uint8_t code[kMaxCodeSize];
  uint8_t memIn[kMemSize];
  uint8_t memOut[kMemSize];
  Block in;
  Block out;
  FaultInfo fault;
};

namespace {

class StubWriter {
 public:
  explicit StubWriter(uint64_t address, ZydisMachineMode mode = ZYDIS_MACHINE_MODE_LONG_64)
      : addr_(address), mode_(mode) {}
  ZydisEncoderOperand reg(ZydisRegister r) {
    ZydisEncoderOperand o{};
    o.type = ZYDIS_OPERAND_TYPE_REGISTER;
    o.reg.value = r;
    return o;
  }
  ZydisEncoderOperand abs(uint64_t a, int size) {
    ZydisEncoderOperand o{};
    o.type = ZYDIS_OPERAND_TYPE_MEMORY;
    o.mem.displacement = static_cast<int64_t>(a);
    o.mem.size = static_cast<ZyanU16>(size);
    return o;
  }
  ZydisEncoderOperand imm(int64_t v) {
    ZydisEncoderOperand o{};
    o.type = ZYDIS_OPERAND_TYPE_IMMEDIATE;
    o.imm.s = v;
    return o;
  }
  void emit(ZydisMnemonic m, std::initializer_list<ZydisEncoderOperand> ops) {
    ZydisEncoderRequest r{};
    r.machine_mode = mode_;
    r.mnemonic = m;
    r.operand_count = static_cast<ZyanU8>(ops.size());
    int i = 0;
    for (const auto& o : ops) r.operands[i++] = o;
    uint8_t buf[ZYDIS_MAX_INSTRUCTION_LENGTH];
    ZyanUSize len = sizeof(buf);
    ZyanStatus st = ZydisEncoderEncodeInstructionAbsolute(&r, buf, &len, addr_ + bytes_.size());
    TTVM_ASSERT(ZYAN_SUCCESS(st), "host stub: cannot encode ", ZydisMnemonicGetString(m));
    bytes_.insert(bytes_.end(), buf, buf + len);
  }
  void raw(std::initializer_list<uint8_t> b) { bytes_.insert(bytes_.end(), b); }
  void raw32(uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  uint64_t addr_;
  ZydisMachineMode mode_;
  std::vector<uint8_t> bytes_;
};

ZydisRegister gpr64(int i) {
  return static_cast<ZydisRegister>(ZYDIS_REGISTER_RAX + i);
}
ZydisRegister xmmReg(int i) {
  return static_cast<ZydisRegister>(ZYDIS_REGISTER_XMM0 + i);
}
const ZydisRegister kCalleeSaved[] = {ZYDIS_REGISTER_RBX, ZYDIS_REGISTER_RBP, ZYDIS_REGISTER_R12,
                                      ZYDIS_REGISTER_R13, ZYDIS_REGISTER_R14, ZYDIS_REGISTER_R15};

ZydisRegister gpr32(int i) {
  return static_cast<ZydisRegister>(ZYDIS_REGISTER_EAX + i);
}

// Common head of both entry stubs: save the host's callee-saved registers,
// RSP, DS and ES.
void saveHost(StubWriter& w) {
  for (ZydisRegister r : kCalleeSaved) w.emit(ZYDIS_MNEMONIC_PUSH, {w.reg(r)});
  w.emit(ZYDIS_MNEMONIC_MOV, {w.abs(kHostRspSlot, 8), w.reg(ZYDIS_REGISTER_RSP)});
  w.emit(ZYDIS_MNEMONIC_MOV, {w.abs(kSegSlot, 2), w.reg(ZYDIS_REGISTER_DS)});
  w.emit(ZYDIS_MNEMONIC_MOV, {w.abs(kSegSlot + 2, 2), w.reg(ZYDIS_REGISTER_ES)});
}

// 64-bit: load XMM0-15, RFLAGS and the 16 GPRs, jump to the code.
std::vector<uint8_t> entryStub64(uint64_t codeAddress) {
  StubWriter w(kEntryStub);
  saveHost(w);
  for (int i = 0; i < 16; ++i) {
    w.emit(ZYDIS_MNEMONIC_MOVDQU, {w.reg(xmmReg(i)), w.abs(kInBlock + kXmmOff + 16 * i, 16)});
  }
  w.emit(ZYDIS_MNEMONIC_PUSH, {w.abs(kInBlock + kFlagsOff, 8)});
  w.emit(ZYDIS_MNEMONIC_POPFQ, {});
  for (int i = 0; i < 16; ++i) {
    w.emit(ZYDIS_MNEMONIC_MOV, {w.reg(gpr64(i)), w.abs(kInBlock + kGprOff + 8 * i, 8)});
  }
  w.emit(ZYDIS_MNEMONIC_JMP, {w.imm(static_cast<int64_t>(codeAddress))});
  return w.bytes();
}

// 64-bit: store everything, then the common tail.
std::vector<uint8_t> exitStub64() {
  StubWriter w(kExitStub);
  for (int i = 0; i < 16; ++i) {
    w.emit(ZYDIS_MNEMONIC_MOV, {w.abs(kOutBlock + kGprOff + 8 * i, 8), w.reg(gpr64(i))});
  }
  for (int i = 0; i < 16; ++i) {
    w.emit(ZYDIS_MNEMONIC_MOVDQU, {w.abs(kOutBlock + kXmmOff + 16 * i, 16), w.reg(xmmReg(i))});
  }
  w.emit(ZYDIS_MNEMONIC_MOV, {w.reg(ZYDIS_REGISTER_RSP), w.abs(kHostRspSlot, 8)});
  w.emit(ZYDIS_MNEMONIC_PUSHFQ, {});
  w.emit(ZYDIS_MNEMONIC_POP, {w.reg(ZYDIS_REGISTER_RAX)});
  w.emit(ZYDIS_MNEMONIC_MOV, {w.abs(kOutBlock + kFlagsOff, 8), w.reg(ZYDIS_REGISTER_RAX)});
  w.emit(ZYDIS_MNEMONIC_JMP, {w.imm(static_cast<int64_t>(kTailStub))});
  return w.bytes();
}

// 64-bit, entered by the exit stubs and by the fault handler: host RSP, DS,
// ES back, DF clear, callee-saved registers back, return to the C caller.
std::vector<uint8_t> tailStub() {
  StubWriter w(kTailStub);
  w.emit(ZYDIS_MNEMONIC_MOV, {w.reg(ZYDIS_REGISTER_RSP), w.abs(kHostRspSlot, 8)});
  w.emit(ZYDIS_MNEMONIC_MOV, {w.reg(ZYDIS_REGISTER_DS), w.abs(kSegSlot, 2)});
  w.emit(ZYDIS_MNEMONIC_MOV, {w.reg(ZYDIS_REGISTER_ES), w.abs(kSegSlot + 2, 2)});
  w.emit(ZYDIS_MNEMONIC_CLD, {});
  for (int i = 5; i >= 0; --i) w.emit(ZYDIS_MNEMONIC_POP, {w.reg(kCalleeSaved[i])});
  w.emit(ZYDIS_MNEMONIC_RET, {});
  return w.bytes();
}

// 32-bit path, 64-bit half: load XMM0-7, usable DS/ES, far jump into the
// 32-bit user code segment.
std::vector<uint8_t> entryStub64To32() {
  StubWriter w(kEntryStub);
  saveHost(w);
  for (int i = 0; i < 8; ++i) {
    w.emit(ZYDIS_MNEMONIC_MOVDQU, {w.reg(xmmReg(i)), w.abs(kInBlock + kXmmOff + 16 * i, 16)});
  }
  w.emit(ZYDIS_MNEMONIC_MOV, {w.reg(ZYDIS_REGISTER_EAX), w.imm(kUserDs)});
  w.emit(ZYDIS_MNEMONIC_MOV, {w.reg(ZYDIS_REGISTER_DS), w.reg(ZYDIS_REGISTER_AX)});
  w.emit(ZYDIS_MNEMONIC_MOV, {w.reg(ZYDIS_REGISTER_ES), w.reg(ZYDIS_REGISTER_AX)});
  w.raw({0xFF, 0x2C, 0x25});  // jmp far m16:32 [kFarEntry32]
  w.raw32(static_cast<uint32_t>(kFarEntry32));
  return w.bytes();
}

// 32-bit (compatibility mode): EFLAGS from a private stack, the 8 GPRs, jump.
std::vector<uint8_t> entryStub32(uint64_t codeAddress) {
  StubWriter w(kEntry32Stub, ZYDIS_MACHINE_MODE_LONG_COMPAT_32);
  w.emit(ZYDIS_MNEMONIC_MOV, {w.reg(ZYDIS_REGISTER_ESP), w.imm(kPrivateStack32)});
  w.emit(ZYDIS_MNEMONIC_PUSH, {w.abs(kInBlock + kFlagsOff, 4)});
  w.emit(ZYDIS_MNEMONIC_POPFD, {});
  for (int i = 0; i < 8; ++i) {
    w.emit(ZYDIS_MNEMONIC_MOV, {w.reg(gpr32(i)), w.abs(kInBlock + kGprOff + 8 * i, 4)});
  }
  w.emit(ZYDIS_MNEMONIC_JMP, {w.imm(static_cast<int64_t>(codeAddress))});
  return w.bytes();
}

// 32-bit: store the 8 GPRs, XMM0-7 and EFLAGS, far jump back to 64-bit.
std::vector<uint8_t> exitStub32() {
  StubWriter w(kExit32Stub, ZYDIS_MACHINE_MODE_LONG_COMPAT_32);
  for (int i = 0; i < 8; ++i) {
    w.emit(ZYDIS_MNEMONIC_MOV, {w.abs(kOutBlock + kGprOff + 8 * i, 4), w.reg(gpr32(i))});
  }
  for (int i = 0; i < 8; ++i) {
    w.emit(ZYDIS_MNEMONIC_MOVDQU, {w.abs(kOutBlock + kXmmOff + 16 * i, 16), w.reg(xmmReg(i))});
  }
  w.emit(ZYDIS_MNEMONIC_MOV, {w.reg(ZYDIS_REGISTER_ESP), w.imm(kPrivateStack32)});
  w.emit(ZYDIS_MNEMONIC_PUSHFD, {});
  w.emit(ZYDIS_MNEMONIC_POP, {w.reg(ZYDIS_REGISTER_EAX)});
  w.emit(ZYDIS_MNEMONIC_MOV, {w.abs(kOutBlock + kFlagsOff, 4), w.reg(ZYDIS_REGISTER_EAX)});
  w.raw({0xFF, 0x2D});  // jmp far m16:32 [kFarTail64]
  w.raw32(static_cast<uint32_t>(kFarTail64));
  return w.bytes();
}

struct Stubs {
  std::vector<uint8_t> entry, exit, tail, entry32, exit32;
};

Stubs makeStubs(CodeMode mode) {
  Stubs st;
  uint64_t code = layoutFor(mode).code;
  st.tail = tailStub();
  if (mode == CodeMode::kLong64) {
    st.entry = entryStub64(code);
    st.exit = exitStub64();
  } else {
    st.entry = entryStub64To32();
    st.entry32 = entryStub32(code);
    st.exit32 = exitStub32();
  }
  return st;
}

// ---- child side (async-signal-safe from here on) ----

uint64_t gChildCode = 0;  // the child's code address (set before any run)
bool gChildIs32 = false;  // running compatibility-mode code

void onFault(int, siginfo_t*, void* ctx) {
  auto* uc = static_cast<ucontext_t*>(ctx);
  greg_t* g = uc->uc_mcontext.gregs;
  uint64_t rip = static_cast<uint64_t>(g[REG_RIP]);
  uint64_t code = gChildCode;
  if (rip < code || rip >= code + kCodeMapSize) _exit(90);  // the harness itself faulted
  auto* out = reinterpret_cast<Block*>(kOutBlock);
  static const int kMap[16] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP,
                               REG_RSI, REG_RDI, REG_R8,  REG_R9,  REG_R10, REG_R11,
                               REG_R12, REG_R13, REG_R14, REG_R15};
  for (int i = 0; i < 16; ++i) out->gpr[i] = static_cast<uint64_t>(g[kMap[i]]);
  if (gChildIs32) {
    for (int i = 0; i < 16; ++i) out->gpr[i] = i < 8 ? out->gpr[i] & 0xFFFFFFFF : 0;
  }
  out->rflags = static_cast<uint64_t>(g[REG_EFL]);
  for (int i = 0; i < 16; ++i) {
    std::memcpy(out->xmm[i], uc->uc_mcontext.fpregs->_xmm[i].element, 16);
  }
  auto* f = reinterpret_cast<FaultInfo*>(kFaultSlot);
  f->faulted = 1;
  f->vector = static_cast<uint64_t>(g[REG_TRAPNO]);
  f->rip = rip;
  g[REG_RSP] = static_cast<greg_t>(*reinterpret_cast<uint64_t*>(kHostRspSlot));
  g[REG_RIP] = static_cast<greg_t>(kTailStub);
  g[REG_EFL] &= ~static_cast<greg_t>(flags::kDF | flags::kTF | flags::kAC);
  // Back to the 64-bit code segment if the fault was in compatibility mode
  // (REG_CSGSFS holds CS in its low 16 bits).
  g[REG_CSGSFS] = (g[REG_CSGSFS] & ~static_cast<greg_t>(0xFFFF)) | kUserCs64;
}

void* mapFixed(uint64_t addr, uint64_t size, int prot) {
  void* p = mmap(reinterpret_cast<void*>(addr), size, prot,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (p != reinterpret_cast<void*>(addr)) _exit(91);
  return p;
}

[[noreturn]] void childMain(int fd, HostRunner::Shared* sh, CodeMode mode, uint16_t compatCs,
                            const Stubs& st) {
  const Layout lay = layoutFor(mode);
  gChildCode = lay.code;
  gChildIs32 = mode != CodeMode::kLong64;
  auto* code =
      static_cast<uint8_t*>(mapFixed(lay.code, kCodeMapSize, PROT_READ | PROT_WRITE | PROT_EXEC));
  auto* data = static_cast<uint8_t*>(mapFixed(lay.data, kMemSize, PROT_READ | PROT_WRITE));
  auto* stubs =
      static_cast<uint8_t*>(mapFixed(kStubPage, 0x1000, PROT_READ | PROT_WRITE | PROT_EXEC));
  mapFixed(kBlockPage, 0x1000, PROT_READ | PROT_WRITE);
  auto place = [&](uint64_t at, const std::vector<uint8_t>& b) {
    if (!b.empty()) std::memcpy(stubs + (at - kStubPage), b.data(), b.size());
  };
  place(kEntryStub, st.entry);
  place(kExitStub, st.exit);
  place(kTailStub, st.tail);
  place(kEntry32Stub, st.entry32);
  place(kExit32Stub, st.exit32);
  // Far pointers (m16:32) for the mode switches.
  auto* block = reinterpret_cast<uint8_t*>(kBlockPage);
  uint32_t off32 = static_cast<uint32_t>(kEntry32Stub), offTail = static_cast<uint32_t>(kTailStub);
  std::memcpy(block + (kFarEntry32 - kBlockPage), &off32, 4);
  std::memcpy(block + (kFarEntry32 - kBlockPage) + 4, &compatCs, 2);
  std::memcpy(block + (kFarTail64 - kBlockPage), &offTail, 4);
  std::memcpy(block + (kFarTail64 - kBlockPage) + 4, &kUserCs64, 2);
  const uint64_t exitStub = mode == CodeMode::kLong64 ? kExitStub : kExit32Stub;

  static uint8_t altStack[64 * 1024];
  stack_t ss{};
  ss.ss_sp = altStack;
  ss.ss_size = sizeof(altStack);
  sigaltstack(&ss, nullptr);
  struct sigaction sa {};
  sa.sa_sigaction = onFault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP}) sigaction(sig, &sa, nullptr);

  auto* in = reinterpret_cast<Block*>(kInBlock);
  auto* out = reinterpret_cast<Block*>(kOutBlock);
  auto* fault = reinterpret_cast<FaultInfo*>(kFaultSlot);
  for (;;) {
    char c;
    ssize_t n = read(fd, &c, 1);
    if (n != 1) _exit(0);
    uint32_t len = sh->codeLen;
    std::memcpy(code, sh->code, len);
    // jmp rel32 to the exit stub.
    int32_t rel = static_cast<int32_t>(exitStub - (lay.code + len + 5));
    code[len] = 0xE9;
    std::memcpy(code + len + 1, &rel, 4);
    std::memcpy(data, sh->memIn, kMemSize);
    *in = sh->in;
    std::memset(out, 0, sizeof(*out));
    *fault = {};
    reinterpret_cast<void (*)()>(kEntryStub)();
    sh->out = *out;
    sh->fault = *fault;
    std::memcpy(sh->memOut, data, kMemSize);
    if (send(fd, &c, 1, MSG_NOSIGNAL) != 1) _exit(0);
  }
}

}  // namespace

Status HostRunner::available(CodeMode mode) {
  if (mode == CodeMode::kReal16) return makeError("the host cannot run real-mode code");
  if (mode == CodeMode::kProtected32) {
    // The 32-bit layout lives below 64 KiB (so that 16-bit address forms
    // reach it): the kernel must allow mapping there.
    std::FILE* f = std::fopen("/proc/sys/vm/mmap_min_addr", "r");
    unsigned long minAddr = 65536;
    if (f != nullptr) {
      if (std::fscanf(f, "%lu", &minAddr) != 1) minAddr = 65536;
      std::fclose(f);
    }
    if (minAddr > layoutFor(mode).code && geteuid() != 0) {
      return makeError(
          "32-bit host runs need vm.mmap_min_addr <= " + std::to_string(layoutFor(mode).code) +
          " (it is " + std::to_string(minAddr) + ")");
    }
    static const Status compat = probeCompat(kUserCs32);
    return compat;
  }
  return {};
}

Status HostRunner::probeCompat(uint16_t compatCs) {
  const CodeMode mode = CodeMode::kProtected32;
  TestCase tc;
  tc.program.mode = mode;
  Unit u;
  Insn nop;
  nop.raw = {0x90};
  u.insns.push_back(nop);
  tc.program.units.push_back(u);
  tc.initial.gpr[4] = layoutFor(mode).data + kInitialStackOffset;
  auto enc = encode(tc.program, layoutFor(mode).code);
  if (!enc.ok()) return enc.error();
  HostRunner r(mode, compatCs);
  auto o = r.run(tc, *enc);
  if (!o.ok() || o->faulted || o->state.rip != layoutFor(mode).code + enc->bytes.size()) {
    std::string what = !o.ok()      ? o.error().message
                       : o->faulted ? "vector " + std::to_string(o->vector)
                                    : "it ended at the wrong address";
    char sel[8];
    std::snprintf(sel, sizeof sel, "%#x", compatCs);
    return makeError(
        "this kernel cannot run 32-bit code (no IA-32 emulation?): a NOP in code "
        "segment " +
        std::string(sel) + " failed: " + what);
  }
  return {};
}

HostRunner::HostRunner(CodeMode mode, uint16_t compatCs) : mode_(mode), compatCs_(compatCs) {
  void* p =
      mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  TTVM_ASSERT(p != MAP_FAILED, "HostRunner: mmap of the shared block failed: ", strerror(errno));
  shared_ = static_cast<Shared*>(p);
}

HostRunner::~HostRunner() {
  stop();
  munmap(shared_, sizeof(Shared));
}

Status HostRunner::start() {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
    return makeError(std::string("HostRunner: socketpair: ") + strerror(errno));
  }
  // Encode the stubs before forking (the child only copies bytes).
  Stubs st = makeStubs(mode_);
  pid_t pid = fork();
  if (pid < 0) return makeError(std::string("HostRunner: fork: ") + strerror(errno));
  if (pid == 0) {
    close(sv[0]);
    childMain(sv[1], shared_, mode_, compatCs_, st);
  }
  close(sv[1]);
  child_ = pid;
  fd_ = sv[0];
  return {};
}

void HostRunner::stop() {
  if (child_ > 0) {
    kill(child_, SIGKILL);
    waitpid(child_, nullptr, 0);
    child_ = -1;
  }
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
}

Result<Outcome> HostRunner::run(const TestCase& tc, const Encoded& code) {
  if (tc.program.mode != mode_) return makeError("HostRunner: test case is for another mode");
  if (code.bytes.size() > kMaxCodeSize) return makeError("HostRunner: code too large");
  if (child_ < 0) TTVM_TRY(start());
  Shared* sh = shared_;
  sh->codeLen = static_cast<uint32_t>(code.bytes.size());
  std::memcpy(sh->code, code.bytes.data(), code.bytes.size());
  std::memcpy(sh->memIn, tc.initial.mem.data(), kMemSize);
  Block in{};
  for (int i = 0; i < 16; ++i) in.gpr[i] = tc.initial.gpr[i];
  in.rflags = tc.initial.rflags;
  for (int i = 0; i < 16; ++i) {
    in.xmm[i][0] = tc.initial.xmm[i].q[0];
    in.xmm[i][1] = tc.initial.xmm[i].q[1];
  }
  sh->in = in;

  char c = 'r';
  std::string failure;
  if (send(fd_, &c, 1, MSG_NOSIGNAL) != 1) {
    failure = std::string("cannot reach the host child: ") + strerror(errno);
  } else {
    pollfd pfd{fd_, POLLIN, 0};
    int r = poll(&pfd, 1, timeoutMs_);
    if (r == 0) {
      failure = "host child timed out after " + std::to_string(timeoutMs_) + " ms";
    } else if (read(fd_, &c, 1) != 1) {
      int status = 0;
      waitpid(child_, &status, 0);
      child_ = -1;
      failure = "host child died (" +
                (WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                                     : "exit " + std::to_string(WEXITSTATUS(status))) +
                ")";
    }
  }
  if (!failure.empty()) {
    stop();
    return makeError("HostRunner, seed " + std::to_string(tc.seed) + ": " + failure);
  }

  Outcome o;
  const Block& out = sh->out;
  for (int i = 0; i < 16; ++i) o.state.gpr[i] = out.gpr[i];
  o.state.rflags = out.rflags;
  for (int i = 0; i < 16; ++i) o.state.xmm[i].q = {out.xmm[i][0], out.xmm[i][1]};
  std::memcpy(o.state.mem.data(), sh->memOut, kMemSize);
  if (sh->fault.faulted) {
    o.faulted = true;
    o.vector = static_cast<uint8_t>(sh->fault.vector);
    o.state.rip = sh->fault.rip;
  } else {
    o.state.rip = layoutFor(mode_).code + code.bytes.size();
  }
  return o;
}

}  // namespace ttvm::difftest
