/* ttvm test-guest library: serial/0xE9 output, printf, exit through
 * isa-debug-exit, GDT/IDT/TSS helpers with per-vector stubs that log every
 * trap, and CHECK/PASS/FAIL reporting. Works in 32-bit protected mode and in
 * 64-bit long mode (the same source, built -m32 or -m64).
 *
 * Reporting protocol (read by tests/guests/run_guest.py):
 *   "FAIL: <case>: <message>"  one per failed check;
 *   "PASS: <guest>"            last line when every check held;
 *   exit status (v<<1)|1 with v = 0 on success, 1 on failure.
 */
#ifndef TTVM_GUEST_H
#define TTVM_GUEST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef uintptr_t ureg;

/* ---- port and control-register access ---------------------------------- */
static inline void outb(uint16_t port, uint8_t v) {
  __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port));
}
static inline void outw(uint16_t port, uint16_t v) {
  __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(port));
}
static inline void outl(uint16_t port, uint32_t v) {
  __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port));
}
static inline uint8_t inb(uint16_t port) {
  uint8_t v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline uint16_t inw(uint16_t port) {
  uint16_t v;
  __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline uint32_t inl(uint16_t port) {
  uint32_t v;
  __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

#define DEFINE_CR(n)                                         \
  static inline ureg read_cr##n(void) {                      \
    ureg v;                                                  \
    __asm__ volatile("mov %%cr" #n ", %0" : "=r"(v));        \
    return v;                                                \
  }                                                          \
  static inline void write_cr##n(ureg v) {                   \
    __asm__ volatile("mov %0, %%cr" #n ::"r"(v) : "memory"); \
  }
DEFINE_CR(0)
DEFINE_CR(2)
DEFINE_CR(3)
DEFINE_CR(4)
#define DEFINE_DR(n)                                         \
  static inline ureg read_dr##n(void) {                      \
    ureg v;                                                  \
    __asm__ volatile("mov %%dr" #n ", %0" : "=r"(v));        \
    return v;                                                \
  }                                                          \
  static inline void write_dr##n(ureg v) {                   \
    __asm__ volatile("mov %0, %%dr" #n ::"r"(v) : "memory"); \
  }
DEFINE_DR(0)
DEFINE_DR(1)
DEFINE_DR(2)
DEFINE_DR(3)
DEFINE_DR(6)
DEFINE_DR(7)

static inline uint64_t rdmsr(uint32_t msr) {
  uint32_t lo, hi;
  __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
  return ((uint64_t)hi << 32) | lo;
}
static inline void wrmsr(uint32_t msr, uint64_t v) {
  __asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)) : "memory");
}
static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
  __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}
static inline ureg read_flags(void) {
  ureg f;
  __asm__ volatile("pushf; pop %0" : "=r"(f));
  return f;
}
static inline void invlpg(const volatile void* p) {
  __asm__ volatile("invlpg (%0)" ::"r"(p) : "memory");
}
static inline void cli(void) {
  __asm__ volatile("cli");
}
static inline void sti(void) {
  __asm__ volatile("sti");
}

#define MSR_EFER 0xC0000080u
#define MSR_STAR 0xC0000081u
#define MSR_LSTAR 0xC0000082u
#define MSR_CSTAR 0xC0000083u
#define MSR_SFMASK 0xC0000084u
#define MSR_SYSENTER_CS 0x174u
#define MSR_SYSENTER_ESP 0x175u
#define MSR_SYSENTER_EIP 0x176u
#define MSR_APIC_BASE 0x1Bu

#define FL_CF 0x1u
#define FL_PF 0x4u
#define FL_ZF 0x40u
#define FL_TF 0x100u
#define FL_IF 0x200u
#define FL_DF 0x400u
#define FL_OF 0x800u
#define FL_RF 0x10000u

/* DR6 bits the tests compare (B0-B3, BD, BS, BT); bits 4-11 and 16-31 are
 * reserved-as-1 except BLD (11) and RTM (16), which depend on the CPU model. */
#define DR6_B0 0x1u
#define DR6_B1 0x2u
#define DR6_B2 0x4u
#define DR6_B3 0x8u
#define DR6_BD 0x2000u
#define DR6_BS 0x4000u
#define DR6_BT 0x8000u
#define DR6_MASK 0xE00Fu
#define DR6_INIT 0xFFFF0FF0u

/* ---- GDT selectors (lib/entry.asm builds this table) -------------------- */
#define SEL_CODE32 0x08
#define SEL_DATA 0x10
#define SEL_CODE64 0x18
#define SEL_DATA64 0x20  /* = SEL_CODE64 + 8, the SS that SYSCALL loads */
#define SEL_UCODE32 0x28 /* STAR[63:48] base for SYSRET: +0 code32, +8 data, +16 code64 */
#define SEL_UDATA 0x30
#define SEL_UCODE64 0x38
#define SEL_CODE16 0x40
#define SEL_DATA16 0x48
#define SEL_TSS 0x50  /* 16 bytes in long mode */
#define SEL_FREE 0x60 /* entries 12..31 are free for tests */
#define GDT_ENTRIES 32

extern uint64_t gdt[GDT_ENTRIES];
/* Builds an 8-byte code/data descriptor. access: P|DPL|S|type byte; flags: G|DB|L|AVL nibble. */
uint64_t gdt_make(uint32_t base, uint32_t limit, uint8_t access, uint8_t flags);
void gdt_set(int index, uint64_t desc);

/* ---- output ---------------------------------------------------------------- */
void serial_init(void);
void putchar_(char c);
extern int output_e9; /* also copy output to port 0xE9 (default 0) */
void puts_(const char* s);
int printf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char* fmt, va_list ap);
void* memset(void* d, int c, size_t n);
void* memcpy(void* d, const void* s, size_t n);
int memcmp(const void* a, const void* b, size_t n);

/* Writes v to the isa-debug-exit port (status (v<<1)|1), then halts forever. */
__attribute__((noreturn)) void guest_exit(uint32_t v);
/* Stops the machine through a triple fault: loads an empty IDT and raises #UD.
 * Prints "TRIPLE-FAULT-NEXT" first so the harness knows it was intended. */
__attribute__((noreturn)) void guest_triple_fault(void);

/* ---- checks ------------------------------------------------------------------ */
extern const char* guest_name; /* defined by each guest: GUEST_NAME("x") */
#define GUEST_NAME(n) const char* guest_name = n
extern const char* current_case;
extern int fail_count;
void case_begin(const char* name); /* prints "case <name>" */
void check_fail(const char* file, int line, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define CHECK(cond)                                                \
  do {                                                             \
    if (!(cond)) check_fail(__FILE_NAME__, __LINE__, "%s", #cond); \
  } while (0)
#define CHECK_EQ(a, b)                                                                   \
  do {                                                                                   \
    uint64_t ck_a_ = (uint64_t)(a), ck_b_ = (uint64_t)(b);                               \
    if (ck_a_ != ck_b_)                                                                  \
      check_fail(__FILE_NAME__, __LINE__, "%s == %s: got %#llx, expected %#llx", #a, #b, \
                 (unsigned long long)ck_a_, (unsigned long long)ck_b_);                  \
  } while (0)
#define CHECK_MSG(cond, ...)                                       \
  do {                                                             \
    if (!(cond)) check_fail(__FILE_NAME__, __LINE__, __VA_ARGS__); \
  } while (0)
/* Ends the guest: "PASS: <name>" + exit(0), or a FAIL summary + exit(1). */
__attribute__((noreturn)) void guest_finish(void);

/* ---- interrupts and traps ---------------------------------------------------- */
#ifdef __x86_64__
struct trap_frame {
  uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rdi, rsi, rbp, rbx, rdx, rcx, rax;
  uint64_t vector, error, rip, cs, rflags, rsp, ss; /* rsp/ss always pushed in 64-bit mode */
};
#else
struct trap_frame {
  uint32_t edi, esi, ebp, esp0, ebx, edx, ecx, eax; /* pushad order */
  uint32_t es, ds;
  uint32_t vector, error, rip, cs, rflags;
  uint32_t rsp, ss; /* present only when the trap came from another privilege level */
};
#endif

/* One record per trap delivered, in order. */
struct trap_record {
  uint32_t vector, error;
  ureg rip, cs, rflags, rsp;
  ureg rcx; /* the interrupted RCX/ECX (REP counts) */
  ureg dr6, cr2;
};
#define TRAP_LOG_MAX 64
extern volatile struct trap_record trap_log[TRAP_LOG_MAX];
extern volatile int trap_count;
void trap_log_clear(void);
void trap_log_dump(void); /* prints every record */

/* Expected trap sequences (debug guests). dr6 is compared under DR6_MASK for
 * vectors 1 and 3; rflags_set/rflags_clear bits must be set/clear in the
 * saved RFLAGS image; rcx is compared when has_rcx. */
struct trap_expect {
  uint32_t vector;
  ureg rip;
  uint32_t dr6;
  uint32_t rflags_set, rflags_clear;
  int has_rcx;
  ureg rcx;
};
void expect_traps(const struct trap_expect* e, int n);

/* What the common handler does after logging a trap:
 *  1. if trap_resume != 0: set the saved RIP to it, clear it, return (for
 *     "this instruction must fault" probes);
 *  2. else if a hook is set for the vector: call it (it may edit the frame);
 *  3. else if the vector is in the "record" set (trap_record_only): return;
 *  4. else print the trap and FAIL. */
typedef void (*trap_hook)(struct trap_frame* f);
extern volatile ureg trap_resume;
void set_trap_hook(int vector, trap_hook h);
void set_trap_record_only(int vector, int on);
/* When set (default), the handler reads DR6 for vectors 1 and 3, logs it and
 * resets DR6 to DR6_INIT, so each #DB is seen with only its own bits. */
extern volatile int trap_reset_dr6;
/* Stop runaway single-stepping: after this many records, TF is cleared in the frame. */
extern volatile int trap_tf_limit;

/* IDT: 256 gates pointing at the per-vector stubs of lib/isr.asm. */
void idt_init(void);
/* type: 0xE interrupt gate, 0xF trap gate; dpl; ist (64-bit only, 0 = none). */
void idt_set_gate(int vector, ureg handler, uint16_t sel, int type, int dpl, int ist);
void idt_set_attr(int vector, int type, int dpl, int ist); /* keep the stub handler */
ureg idt_stub(int vector);
void idt_set_present(int vector, int present);
void idt_load(void);

/* TSS: lib keeps one; tss_set_rsp0 / tss_set_ist / 32-bit esp0+ss0. */
void tss_init(void);
void tss_set_rsp0(ureg rsp);
void tss_set_ist(int n, ureg rsp);
#define TSS_AREA_SIZE (104 + 128 + 8)
extern uint8_t tss_area[];
/* Installs an I/O permission bitmap of `bytes` bytes (ports 0 .. 8*bytes-1),
 * grows the TSS limit over it and reloads TR. bytes <= 128. */
void tss_set_iomap(const uint8_t* bitmap, int bytes);

extern uint8_t stack_top[];      /* the boot stack */
extern uint8_t intr_stack_top[]; /* TSS.RSP0 (ESP0) */
extern uint8_t user_stack_top[]; /* default CPL-3 stack */

/* Runs fn(arg) at CPL 3 on user_sp with RFLAGS = flags (bit 1 is forced by
 * the CPU) and returns fn's result. Vector 0x81 (DPL 3) is reserved for the
 * return path. In 32-bit guests DS/ES/FS/GS are SEL_UDATA|3 while fn runs. */
ureg user_call(ureg (*fn)(ureg), ureg user_sp, ureg arg, ureg flags);
void user_return_stub(void);
#define USER_VECTOR 0x81

/* Provided by the guest. */
void guest_main(void);

#endif
