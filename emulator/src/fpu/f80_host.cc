// hostExec (fpu/f80.h): one host x87 instruction, for the IEEE-defined
// operations only. Each operation is a fixed instruction, written as bytes so
// that no assembler's operand-order conventions (the AT&T fsub/fsubr swap)
// can change what runs; a memory operand is always [RSI].
//
// Around the instruction: FNCLEX clears stale flags, FLDCW loads the guest's
// control word, two FLDs push ST1 and ST0. Afterwards FNSTSW takes the status
// before anything else can change it, FNCLEX clears it so that no unmasked
// exception is pending, a masked FLDCW makes the read-back stores silent
// (even from an empty register after a popping store), FFREE empties all
// eight registers (the SysV ABI wants an empty stack; TOP is free) and the
// host's FCW comes back. No FNSTENV/FLDENV: the handlers take only what the
// instruction defines from the host (flags, C1, a compare's C0 C2 C3), so
// the guest's condition codes need not be loaded, and the environment
// instructions cost more than the operation itself.
#include "fpu/f80.h"

#include <cstddef>

#if !defined(__x86_64__)
#error "ttvm's x87 emulation runs the IEEE-defined x87 operations on an x86-64 host's FPU"
#endif

namespace ttvm::fpu::f80 {
namespace {

constexpr uint16_t kAllMasked = 0x037F;

#define TTVM_X87_HOST_OP(name, bytes)                                                        \
  void name(HostIo& io) {                                                                    \
    uint16_t saved;                                                                          \
    asm volatile(                                                                            \
        "fnstcw %[saved]\n\t"                                                                \
        "fnclex\n\t"                                                                         \
        "fldcw %[cw]\n\t"                                                                    \
        "fldt %[b]\n\t"                                                                      \
        "fldt %[a]\n\t"                                                                      \
        ".byte " bytes                                                                       \
        "\n\t"                                                                               \
        "lahf\n\t"                                                                           \
        "movb %%ah, %[fl]\n\t"                                                               \
        "fnstsw %[sw]\n\t"                                                                   \
        "fnclex\n\t"                                                                         \
        "fldcw %[masked]\n\t"                                                                \
        "fstpt %[a]\n\t"                                                                     \
        "fstpt %[b]\n\t"                                                                     \
        "ffree %%st(0)\n\t"                                                                  \
        "ffree %%st(1)\n\t"                                                                  \
        "ffree %%st(2)\n\t"                                                                  \
        "ffree %%st(3)\n\t"                                                                  \
        "ffree %%st(4)\n\t"                                                                  \
        "ffree %%st(5)\n\t"                                                                  \
        "ffree %%st(6)\n\t"                                                                  \
        "ffree %%st(7)\n\t"                                                                  \
        "fnclex\n\t"                                                                         \
        "fldcw %[saved]\n\t"                                                                 \
        : [a] "+m"(io.st0), [b] "+m"(io.st1), [sw] "=m"(io.fsw), [fl] "=m"(io.rflags),       \
          [saved] "=m"(saved)                                                                \
        : [cw] "m"(io.fcw), [masked] "m"(kAllMasked), "S"(io.mem)                            \
        : "memory", "cc", "rax", "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", \
          "st(7)");                                                                          \
  }

// ST0 op ST1 -> ST0.
TTVM_X87_HOST_OP(fadd, "0xD8, 0xC1")
TTVM_X87_HOST_OP(fmul, "0xD8, 0xC9")
TTVM_X87_HOST_OP(fsub, "0xD8, 0xE1")
TTVM_X87_HOST_OP(fsubr, "0xD8, 0xE9")
TTVM_X87_HOST_OP(fdiv, "0xD8, 0xF1")
TTVM_X87_HOST_OP(fdivr, "0xD8, 0xF9")
// ST0 op [RSI] (ModRM 00 /r 110).
TTVM_X87_HOST_OP(faddM32, "0xD8, 0x06")
TTVM_X87_HOST_OP(fmulM32, "0xD8, 0x0E")
TTVM_X87_HOST_OP(fsubM32, "0xD8, 0x26")
TTVM_X87_HOST_OP(fsubrM32, "0xD8, 0x2E")
TTVM_X87_HOST_OP(fdivM32, "0xD8, 0x36")
TTVM_X87_HOST_OP(fdivrM32, "0xD8, 0x3E")
TTVM_X87_HOST_OP(faddM64, "0xDC, 0x06")
TTVM_X87_HOST_OP(fmulM64, "0xDC, 0x0E")
TTVM_X87_HOST_OP(fsubM64, "0xDC, 0x26")
TTVM_X87_HOST_OP(fsubrM64, "0xDC, 0x2E")
TTVM_X87_HOST_OP(fdivM64, "0xDC, 0x36")
TTVM_X87_HOST_OP(fdivrM64, "0xDC, 0x3E")
TTVM_X87_HOST_OP(fiaddM32, "0xDA, 0x06")
TTVM_X87_HOST_OP(fimulM32, "0xDA, 0x0E")
TTVM_X87_HOST_OP(fisubM32, "0xDA, 0x26")
TTVM_X87_HOST_OP(fisubrM32, "0xDA, 0x2E")
TTVM_X87_HOST_OP(fidivM32, "0xDA, 0x36")
TTVM_X87_HOST_OP(fidivrM32, "0xDA, 0x3E")
TTVM_X87_HOST_OP(fiaddM16, "0xDE, 0x06")
TTVM_X87_HOST_OP(fimulM16, "0xDE, 0x0E")
TTVM_X87_HOST_OP(fisubM16, "0xDE, 0x26")
TTVM_X87_HOST_OP(fisubrM16, "0xDE, 0x2E")
TTVM_X87_HOST_OP(fidivM16, "0xDE, 0x36")
TTVM_X87_HOST_OP(fidivrM16, "0xDE, 0x3E")
// Compares.
TTVM_X87_HOST_OP(fcom, "0xD8, 0xD1")
TTVM_X87_HOST_OP(fucom, "0xDD, 0xE1")
TTVM_X87_HOST_OP(fcomi, "0xDB, 0xF1")
TTVM_X87_HOST_OP(fucomi, "0xDB, 0xE9")
TTVM_X87_HOST_OP(ftst, "0xD9, 0xE4")
TTVM_X87_HOST_OP(fcomM32, "0xD8, 0x16")
TTVM_X87_HOST_OP(fcomM64, "0xDC, 0x16")
TTVM_X87_HOST_OP(ficomM32, "0xDA, 0x16")
TTVM_X87_HOST_OP(ficomM16, "0xDE, 0x16")
// ST0 (, ST1) -> ST0 (, ST1).
TTVM_X87_HOST_OP(fprem, "0xD9, 0xF8")
TTVM_X87_HOST_OP(fprem1, "0xD9, 0xF5")
TTVM_X87_HOST_OP(fscale, "0xD9, 0xFD")
TTVM_X87_HOST_OP(fsqrt, "0xD9, 0xFA")
TTVM_X87_HOST_OP(frndint, "0xD9, 0xFC")
TTVM_X87_HOST_OP(fxtract, "0xD9, 0xF4")
// Loads.
TTVM_X87_HOST_OP(fldM32, "0xD9, 0x06")
TTVM_X87_HOST_OP(fldM64, "0xDD, 0x06")
TTVM_X87_HOST_OP(fildM16, "0xDF, 0x06")
TTVM_X87_HOST_OP(fildM32, "0xDB, 0x06")
TTVM_X87_HOST_OP(fildM64, "0xDF, 0x2E")
TTVM_X87_HOST_OP(fbld, "0xDF, 0x26")
// Stores.
TTVM_X87_HOST_OP(fstpM32, "0xD9, 0x1E")
TTVM_X87_HOST_OP(fstpM64, "0xDD, 0x1E")
TTVM_X87_HOST_OP(fistpM16, "0xDF, 0x1E")
TTVM_X87_HOST_OP(fistpM32, "0xDB, 0x1E")
TTVM_X87_HOST_OP(fistpM64, "0xDF, 0x3E")
TTVM_X87_HOST_OP(fisttpM16, "0xDF, 0x0E")
TTVM_X87_HOST_OP(fisttpM32, "0xDB, 0x0E")
TTVM_X87_HOST_OP(fisttpM64, "0xDD, 0x0E")
TTVM_X87_HOST_OP(fbstp, "0xDF, 0x36")

#undef TTVM_X87_HOST_OP

using HostFn = void (*)(HostIo&);

// In HostOp order.
constexpr HostFn kHostOps[] = {
    fadd,      fmul,     fsub,      fsubr,     fdiv,      fdivr,     faddM32,  fmulM32,  fsubM32,
    fsubrM32,  fdivM32,  fdivrM32,  faddM64,   fmulM64,   fsubM64,   fsubrM64, fdivM64,  fdivrM64,
    fiaddM32,  fimulM32, fisubM32,  fisubrM32, fidivM32,  fidivrM32, fiaddM16, fimulM16, fisubM16,
    fisubrM16, fidivM16, fidivrM16, fcom,      fucom,     fcomi,     fucomi,   ftst,     fcomM32,
    fcomM64,   ficomM32, ficomM16,  fprem,     fprem1,    fscale,    fsqrt,    frndint,  fxtract,
    fldM32,    fldM64,   fildM16,   fildM32,   fildM64,   fbld,      fstpM32,  fstpM64,  fistpM16,
    fistpM32,  fistpM64, fisttpM16, fisttpM32, fisttpM64, fbstp,
};
static_assert(sizeof(kHostOps) / sizeof(kHostOps[0]) == std::size_t(HostOp::kFbstp) + 1);

}  // namespace

void hostExec(HostOp op, HostIo& io) {
  kHostOps[static_cast<int>(op)](io);
}

}  // namespace ttvm::fpu::f80
