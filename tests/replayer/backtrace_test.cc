// The stack walker on synthetic Linux-like x86-64 kernel stacks in guest
// memory: frame-pointer chains, the faulting frame first, noreturn calls,
// clean stops at bad links (non-canonical, unmapped, looping), the stack
// scan for code without frame pointers, interrupt frames, and the bound.
#include "ttvm/replayer/backtrace.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>

namespace ttvm {
namespace {

constexpr uint64_t kText = 0xffffffff81000000ull;
constexpr uint64_t kStack = 0xffffc90000010000ull;  // 16 KiB, mapped
constexpr uint64_t kStackSize = 0x4000;
constexpr uint64_t kRsp = kStack + 0x3000;
constexpr uint16_t kKernelCs = 0x10;

// Return addresses of the calls placed in the text (see Fixture()).
constexpr uint64_t kEntryRet = kText + 0x045;  // entry_SYSCALL_64: call rel32 at +0x40
constexpr uint64_t kKsysRet = kText + 0x125;   // ksys_write: call rel32 at +0x120
constexpr uint64_t kSysrqRet = kText + 0x232;  // __handle_sysrq: call rax at +0x230
constexpr uint64_t kCrashRet = kText + 0x314;  // sysrq_handle_crash: call panic at +0x30f,
                                               // its last instruction (noreturn)
constexpr uint64_t kPanic = kText + 0x314;
constexpr uint64_t kExcRet = kText + 0x41b;    // asm_exc_page_fault: call [rip+0] at +0x415
constexpr uint64_t kFaultRip = kText + 0x537;  // fault_here+0x37 (a load)
constexpr uint64_t kPanicRet = kText + 0x3f5;  // panic: call rel32 at +0xdc (to delay_tsc)
constexpr uint64_t kDelay = kText + 0x580;     // delay_tsc

const char* kSystemMap =
    "ffffffff81000000 T entry_SYSCALL_64\n"
    "ffffffff81000100 T ksys_write\n"
    "ffffffff81000200 t __handle_sysrq\n"
    "ffffffff81000300 t sysrq_handle_crash\n"
    "ffffffff81000314 T panic\n"
    "ffffffff81000400 T asm_exc_page_fault\n"
    "ffffffff81000500 t fault_here\n"
    "ffffffff81000580 T delay_tsc\n"
    "ffffffff81000600 T _etext\n"
    "ffffffff82000000 D some_data\n";

class Backtraces : public testing::Test {
 protected:
  Backtraces() {
    text_.assign(0x600, 0x90);  // NOPs
    auto put = [&](uint64_t at, std::initializer_list<uint8_t> b) {
      std::copy(b.begin(), b.end(), text_.begin() + static_cast<ptrdiff_t>(at - kText));
    };
    put(kEntryRet - 5, {0xE8, 0, 0, 0, 0});
    put(kKsysRet - 5, {0xE8, 0, 0, 0, 0});
    put(kSysrqRet - 2, {0xFF, 0xD0});
    put(kCrashRet - 5, {0xE8, 0, 0, 0, 0});
    put(kExcRet - 6, {0xFF, 0x15, 0, 0, 0, 0});
    const int32_t toDelay = static_cast<int32_t>(kDelay - kPanicRet);
    put(kPanicRet - 5, {0xE8, static_cast<uint8_t>(toDelay), static_cast<uint8_t>(toDelay >> 8),
                        static_cast<uint8_t>(toDelay >> 16), static_cast<uint8_t>(toDelay >> 24)});
    stack_.assign(kStackSize, 0);
    auto map = parseSystemMap(kSystemMap, "System.map");
    EXPECT_TRUE(map.ok());
    symbols_.addSymbols(std::move(*map), "System.map");
    regs_.cr0 = cr0::kPE | cr0::kPG;
    regs_.msr.efer = efer::kLME | efer::kLMA;
    regs_.segment(SegReg::kCs).selector = kKernelCs;
    regs_.segment(SegReg::kCs).attributes |= segattr::kL;
    regs_.rip = kPanic + 0x20;
    regs_.gpr[static_cast<int>(Gpr::kRsp)] = kRsp;
  }

  void put64(uint64_t at, uint64_t v) {
    ASSERT_GE(at, kStack);
    ASSERT_LE(at + 8, kStack + kStackSize);
    std::memcpy(stack_.data() + (at - kStack), &v, 8);
  }
  // A frame at `fp`: [fp] = next frame pointer, [fp+8] = return address.
  void frameAt(uint64_t fp, uint64_t next, uint64_t ret) {
    put64(fp, next);
    put64(fp + 8, ret);
  }

  Backtrace unwind(uint64_t rbp, BacktraceOptions o = {}) {
    regs_.gpr[static_cast<int>(Gpr::kRbp)] = rbp;
    const LinearReader read = [this](uint64_t a, std::span<uint8_t> out) {
      for (const auto& [base, bytes] : {std::pair{kText, &text_}, std::pair{kStack, &stack_}})
        if (a >= base && a - base <= bytes->size() && out.size() <= bytes->size() - (a - base)) {
          std::memcpy(out.data(), bytes->data() + (a - base), out.size());
          return true;
        }
      return false;
    };
    return unwindStack(regs_, read, symbols_, o);
  }

  std::vector<uint8_t> text_, stack_;
  GuestSymbols symbols_;
  CpuState regs_;
};

std::vector<std::string> names(const Backtrace& bt) {
  std::vector<std::string> out;
  for (const BacktraceFrame& f : bt.frames) out.push_back(f.symbol);
  return out;
}

TEST_F(Backtraces, FramePointerChainWithTheCurrentFrameFirst) {
  frameAt(kRsp + 0x10, kRsp + 0x40, kCrashRet);
  frameAt(kRsp + 0x40, kRsp + 0x80, kSysrqRet);
  frameAt(kRsp + 0x80, kRsp + 0xC0, kKsysRet);
  frameAt(kRsp + 0xC0, 0, kEntryRet);
  const Backtrace bt = unwind(kRsp + 0x10);
  EXPECT_EQ(names(bt), (std::vector<std::string>{"panic+0x20", "sysrq_handle_crash+0x14",
                                                 "__handle_sysrq+0x32", "ksys_write+0x25",
                                                 "entry_SYSCALL_64+0x45"}));
  ASSERT_EQ(bt.frames.size(), 5u);
  EXPECT_EQ(bt.frames[0].kind, FrameKind::kRegisters);
  EXPECT_EQ(bt.frames[0].pc, kPanic + 0x20);
  EXPECT_EQ(bt.frames[1].kind, FrameKind::kFramePointer);
  EXPECT_EQ(bt.frames[1].pc, kCrashRet);
  EXPECT_EQ(bt.frames[1].slot, kRsp + 0x10);
  EXPECT_EQ(bt.frames[4].slot, kRsp + 0xC0);
  EXPECT_NE(bt.end.find("frame pointer 0: the outermost frame"), std::string::npos) << bt.end;
  const std::string text = formatBacktrace(bt);
  EXPECT_NE(text.find("#0  0xffffffff81000334 <panic+0x20>\n"), std::string::npos) << text;
  EXPECT_NE(
      text.find("#1  0xffffffff81000314 <sysrq_handle_crash+0x14>  (frame 0xffffc90000013010)"),
      std::string::npos)
      << text;
}

TEST_F(Backtraces, StopsCleanlyAtANonCanonicalFramePointer) {
  frameAt(kRsp + 0x10, kRsp + 0x40, kCrashRet);
  frameAt(kRsp + 0x40, 0x8000000000000000ull, kSysrqRet);
  BacktraceOptions noScan;
  noScan.scan = false;
  const Backtrace bt = unwind(kRsp + 0x10, noScan);
  EXPECT_EQ(bt.frames.size(), 3u);
  EXPECT_NE(bt.end.find("the next frame pointer 0x8000000000000000 is not above"),
            std::string::npos)
      << bt.end;
  // A non-canonical frame pointer to start with.
  const Backtrace first = unwind(0x0000800000000000ull, noScan);
  EXPECT_EQ(first.frames.size(), 1u);
  EXPECT_NE(first.end.find("frame pointer 0x800000000000 is not canonical"), std::string::npos)
      << first.end;
}

TEST_F(Backtraces, StopsCleanlyAtAnUnmappedFrame) {
  BacktraceOptions noScan;
  noScan.scan = false;
  // On the stack's side of RSP but past the mapped 16 KiB (a guard page).
  frameAt(kRsp + 0x10, kStack + kStackSize + 0x100, kCrashRet);
  const Backtrace bt = unwind(kRsp + 0x10, noScan);
  EXPECT_EQ(bt.frames.size(), 2u);
  EXPECT_NE(bt.end.find("frame pointer 0xffffc90000014100 is not mapped"), std::string::npos)
      << bt.end;
}

TEST_F(Backtraces, ALoopingChainEnds) {
  frameAt(kRsp + 0x10, kRsp + 0x40, kCrashRet);
  frameAt(kRsp + 0x40, kRsp + 0x10, kSysrqRet);  // points back down
  BacktraceOptions noScan;
  noScan.scan = false;
  const Backtrace bt = unwind(kRsp + 0x10, noScan);
  EXPECT_EQ(bt.frames.size(), 3u);
  EXPECT_NE(bt.end.find("is not above"), std::string::npos) << bt.end;
}

TEST_F(Backtraces, AWordThatIsNotAReturnAddressEndsTheChain) {
  // panic+0x8 is code, but no call precedes it; some_data is not code.
  frameAt(kRsp + 0x10, kRsp + 0x40, kPanic + 0x8);
  BacktraceOptions noScan;
  noScan.scan = false;
  Backtrace bt = unwind(kRsp + 0x10, noScan);
  EXPECT_EQ(bt.frames.size(), 1u);
  EXPECT_NE(bt.end.find("is not a return address after a call"), std::string::npos) << bt.end;
  frameAt(kRsp + 0x10, kRsp + 0x40, 0xffffffff82000010ull);
  bt = unwind(kRsp + 0x10, noScan);
  EXPECT_EQ(bt.frames.size(), 1u);
}

TEST_F(Backtraces, ScansTheStackWithoutFramePointers) {
  // An ORC kernel: RBP holds data. The stack holds return addresses among
  // other words, which the scan must pass over.
  put64(kRsp + 0x00, 0x42);
  put64(kRsp + 0x08, 0xffffffff82000010ull);  // a data pointer
  put64(kRsp + 0x10, kPanic + 0x8);           // code, not after a call
  put64(kRsp + 0x18, kCrashRet);
  put64(kRsp + 0x20, 0x0000000000401000ull);  // a user address
  put64(kRsp + 0x28, 0xdead000000000100ull);  // non-canonical
  put64(kRsp + 0x30, kSysrqRet);
  put64(kRsp + 0x60, kKsysRet);
  const Backtrace bt = unwind(0xffff888003a4b000ull);
  EXPECT_EQ(names(bt), (std::vector<std::string>{"panic+0x20", "sysrq_handle_crash+0x14",
                                                 "__handle_sysrq+0x32", "ksys_write+0x25"}));
  ASSERT_EQ(bt.frames.size(), 4u);
  EXPECT_EQ(bt.frames[1].kind, FrameKind::kStackScan);
  EXPECT_EQ(bt.frames[1].slot, kRsp + 0x18);
  EXPECT_EQ(bt.frames[3].slot, kRsp + 0x60);
  EXPECT_NE(bt.end.find("is not on the stack"), std::string::npos) << bt.end;
  // The scan ends where the stack's mapping ends.
  EXPECT_NE(
      bt.end.find("scanned the stack from 0xffffc90000013000 to 0xffffc90000014000 (unmapped)"),
      std::string::npos)
      << bt.end;
  EXPECT_NE(formatBacktrace(bt).find("#1  ? 0xffffffff81000314 <sysrq_handle_crash+0x14>"),
            std::string::npos)
      << formatBacktrace(bt);
}

TEST_F(Backtraces, ScanContinuesAboveTheLastGoodFrame) {
  frameAt(kRsp + 0x10, 0x1234, kCrashRet);  // the chain breaks after one frame
  put64(kRsp + 0x08, kKsysRet);             // below the good frame: not scanned
  put64(kRsp + 0x28, kSysrqRet);
  const Backtrace bt = unwind(kRsp + 0x10);
  EXPECT_EQ(names(bt), (std::vector<std::string>{"panic+0x20", "sysrq_handle_crash+0x14",
                                                 "__handle_sysrq+0x32"}));
}

TEST_F(Backtraces, InterruptFrameNamesTheInterruptedInstruction) {
  // panic <- the page-fault handler <- (CPU: the fault in fault_here) <- ksys_write.
  frameAt(kRsp + 0x10, kRsp + 0x80, kExcRet);
  put64(kRsp + 0x20, 0xffffffff82000010ull);  // saved registers...
  put64(kRsp + 0x28, 0);                      // error code
  put64(kRsp + 0x30, kFaultRip);              // RIP
  put64(kRsp + 0x38, kKernelCs);              // CS
  put64(kRsp + 0x40, 0x10046);                // RFLAGS
  put64(kRsp + 0x48, kRsp + 0x80);            // RSP
  put64(kRsp + 0x50, 0x18);                   // SS
  frameAt(kRsp + 0x80, 0, kKsysRet);
  const Backtrace bt = unwind(kRsp + 0x10);
  EXPECT_EQ(names(bt), (std::vector<std::string>{"panic+0x20", "asm_exc_page_fault+0x1b",
                                                 "fault_here+0x37", "ksys_write+0x25"}));
  ASSERT_EQ(bt.frames.size(), 4u);
  EXPECT_EQ(bt.frames[2].kind, FrameKind::kInterrupted);
  EXPECT_EQ(bt.frames[2].slot, kRsp + 0x30);
  // RFLAGS with a reserved bit set, or another privilege's CS, is no frame.
  put64(kRsp + 0x40, 0x10046 | (1u << 15));
  EXPECT_EQ(unwind(kRsp + 0x10).frames.size(), 3u);
  put64(kRsp + 0x40, 0x10046);
  put64(kRsp + 0x38, 0x08);
  EXPECT_EQ(unwind(kRsp + 0x10).frames.size(), 3u);
}

// An ORC kernel at a panic: RBP happens to lead to sysrq_handle_crash's
// return address, but that call went to panic, not to delay_tsc (frame 0):
// the frames between have no frame pointers, and the stretch of stack below
// the link is scanned for them. Above the outermost link, the rest of the
// stack is scanned too.
TEST_F(Backtraces, ADirectCallThatSkipsFramesIsFilledByAScan) {
  regs_.rip = kDelay + 0x10;
  put64(kRsp + 0x08, kPanicRet);  // panic called delay_tsc
  frameAt(kRsp + 0x20, kRsp + 0x60, kCrashRet);
  frameAt(kRsp + 0x60, 0, kSysrqRet);
  put64(kRsp + 0x100, kKsysRet);  // above the chain's end
  Backtrace bt = unwind(kRsp + 0x20);
  EXPECT_EQ(names(bt),
            (std::vector<std::string>{"delay_tsc+0x10", "panic+0xe1", "sysrq_handle_crash+0x14",
                                      "__handle_sysrq+0x32", "ksys_write+0x25"}))
      << formatBacktrace(bt);
  ASSERT_EQ(bt.frames.size(), 5u);
  EXPECT_EQ(bt.frames[1].kind, FrameKind::kStackScan);
  EXPECT_EQ(bt.frames[1].slot, kRsp + 0x08);
  EXPECT_EQ(bt.frames[2].kind, FrameKind::kFramePointer);
  EXPECT_EQ(bt.frames[4].kind, FrameKind::kStackScan);
  // Frame 0 in panic itself: the link is consistent and the stretch below
  // it is not scanned (the stale word there stays out).
  regs_.rip = kPanic + 0x20;
  bt = unwind(kRsp + 0x20);
  EXPECT_EQ(names(bt), (std::vector<std::string>{"panic+0x20", "sysrq_handle_crash+0x14",
                                                 "__handle_sysrq+0x32", "ksys_write+0x25"}))
      << formatBacktrace(bt);
}

TEST_F(Backtraces, BoundedByMaxFrames) {
  for (uint64_t i = 0; i < 100; ++i) frameAt(kRsp + 0x10 * i, kRsp + 0x10 * (i + 1), kKsysRet);
  BacktraceOptions o;
  o.maxFrames = 10;
  const Backtrace bt = unwind(kRsp, o);
  EXPECT_EQ(bt.frames.size(), 10u);
  EXPECT_NE(bt.end.find("stopped after 10 frames"), std::string::npos) << bt.end;
}

}  // namespace
}  // namespace ttvm
