/* Compat test-kernel library: what the x86 unit-test kernels for QEMU's
 * -kernel expect from their machine (kvm-unit-tests' lib/x86 is the model;
 * this is our own code). cstart.asm boots; kut_boot() then does what the
 * original start-up does before main(): reset the local APIC through
 * IA32_APIC_BASE and software-enable it, mask the 8259s, read the APIC ID
 * over MMIO, parse the multiboot information (memory, command line, the
 * initrd holding the environment), copy the AP trampoline to physical 0 and
 * send INIT and STARTUP to all other CPUs, wait for the CPU count that
 * fw_cfg reports, switch to x2APIC when CPUID offers it, and install the
 * exception handlers. main()'s return value goes to the exit device.
 *
 * Reporting (read by run_guest.py): "PASS: <what>" / "FAIL: <what>" /
 * "SKIP: <what>" per check, then "SUMMARY: ..." and finally "PASS: <guest>"
 * when nothing failed. Exit: outl(status, 0xF4), then the 0x8900 "Shutdown"
 * string as a fallback, then HLT.
 */
#ifndef TTVM_COMPAT_KUT_H
#define TTVM_COMPAT_KUT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef uintptr_t ulong_t;

#ifdef __x86_64__
#define KUT_PTR ".quad"
#else
#define KUT_PTR ".long"
#endif

/* Port, MSR and control-register helpers are the guest library's. */
#include "guest.h"

struct cpuid_regs {
  uint32_t a, b, c, d;
};
static inline struct cpuid_regs cpuid_indexed(uint32_t leaf, uint32_t sub) {
  struct cpuid_regs r;
  __asm__ volatile("cpuid" : "=a"(r.a), "=b"(r.b), "=c"(r.c), "=d"(r.d) : "a"(leaf), "c"(sub));
  return r;
}
static inline struct cpuid_regs cpuid_leaf(uint32_t leaf) {
  return cpuid_indexed(leaf, 0);
}
static inline uint64_t rdtsc(void) {
  uint32_t lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((uint64_t)hi << 32) | lo;
}
static inline uint64_t rdtscp(uint32_t* aux) {
  uint32_t lo, hi;
  __asm__ volatile("rdtscp" : "=a"(lo), "=d"(hi), "=c"(*aux));
  return ((uint64_t)hi << 32) | lo;
}
#ifdef __x86_64__
static inline ulong_t read_cr8(void) {
  ulong_t v;
  __asm__ volatile("mov %%cr8, %0" : "=r"(v));
  return v;
}
static inline void write_cr8(ulong_t v) {
  __asm__ volatile("mov %0, %%cr8" ::"r"(v) : "memory");
}
#endif
static inline void irq_enable(void) {
  __asm__ volatile("sti" ::: "memory");
}
static inline void irq_disable(void) {
  __asm__ volatile("cli" ::: "memory");
}
static inline void pause_(void) {
  __asm__ volatile("pause" ::: "memory");
}
static inline uint16_t read_cs(void) {
  uint16_t v;
  __asm__ volatile("mov %%cs, %0" : "=r"(v));
  return v;
}
static inline uint16_t str_(void) {
  uint16_t v;
  __asm__ volatile("str %0" : "=r"(v));
  return v;
}

#define MSR_IA32_TSC 0x10u
#define MSR_IA32_APICBASE MSR_APIC_BASE
#define MSR_IA32_TSC_ADJUST 0x3Bu
#define MSR_IA32_TSCDEADLINE 0x6E0u
#define MSR_GS_BASE 0xC0000101u
#define MSR_TSC_AUX 0xC0000103u
#define APIC_EN (1u << 11)
#define APIC_EXTD (1u << 10)
#define APIC_BSP (1u << 8)

/* ---- exceptions and interrupts ---------------------------------------------- */
#ifdef __x86_64__
struct ex_regs {
  uint64_t rax, rcx, rdx, rbx, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15;
  uint64_t vector, error_code, rip, cs, rflags;
};
#else
struct ex_regs {
  uint32_t rdi, rsi, rbp, rsp0, rbx, rdx, rcx, rax; /* pushad order */
  uint32_t vector, error_code, rip, cs, rflags;
};
#endif
typedef void (*kut_handler)(struct ex_regs* regs);
/* Exceptions (vectors 0-31) and interrupts go to the handler set here.
 * Unhandled exceptions look up the exception table (KUT_TRY), else abort. */
void handle_irq(int vector, kut_handler h);

/* Per-CPU area (GS base): offset 0 holds its own address, offset 4 the last
 * exception caught through the table: vector | RF << 8 | error code << 16. */
#define KUT_EX_ENTRY(from, to) \
  ".pushsection .kut_ex, \"aw\"\n\t" KUT_PTR " " #from ", " #to "\n\t.popsection\n\t"
/* Runs `insn` (asm text) and records into %gs:4 the exception it raised (0 if
 * none); execution continues after it either way. */
#define KUT_TRY(insn) "movl $0, %%gs:4\n\t1111: " insn "\n\t1112:\n\t" KUT_EX_ENTRY(1111b, 1112b)
static inline unsigned exception_vector(void) {
  uint8_t v;
  __asm__ volatile("movb %%gs:4, %0" : "=q"(v));
  return v;
}
static inline unsigned exception_error_code(void) {
  uint16_t v;
  __asm__ volatile("movw %%gs:6, %0" : "=r"(v));
  return v;
}
static inline int rdmsr_safe(uint32_t msr, uint64_t* out) {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile(KUT_TRY("rdmsr") : "+a"(lo), "+d"(hi) : "c"(msr) : "memory");
  *out = ((uint64_t)hi << 32) | lo;
  return (int)exception_vector();
}
static inline int wrmsr_safe(uint32_t msr, uint64_t v) {
  __asm__ volatile(KUT_TRY("wrmsr")::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32))
                   : "memory");
  return (int)exception_vector();
}
#define DE_VECTOR 0
#define DB_VECTOR 1
#define NMI_VECTOR 2
#define UD_VECTOR 6
#define GP_VECTOR 13
#define PF_VECTOR 14

/* ---- output and reports ----------------------------------------------------- */
int printf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
int snprintf(char* buf, int size, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
void puts_(const char* s);
void* memset(void* d, int c, size_t n);
void* memcpy(void* d, const void* s, size_t n);
int memcmp(const void* a, const void* b, size_t n);
size_t strlen(const char* s);
int strcmp(const char* a, const char* b);
int strncmp(const char* a, const char* b, size_t n);
long atol(const char* s);

void report(int pass, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void report_skip(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void report_prefix_push(const char* prefix);
void report_prefix_pop(void);
/* Prints the summary; returns 0 when nothing failed, 1 otherwise. */
int report_summary(void);
__attribute__((noreturn)) void kut_exit(int code);
__attribute__((noreturn)) void kut_abort(const char* why);
#define kut_assert(cond)                                \
  do {                                                  \
    if (!(cond)) kut_abort("assertion failed: " #cond); \
  } while (0)

/* ---- local APIC and I/O APIC ---------------------------------------------------- */
#define APIC_DEFAULT_PHYS_BASE 0xFEE00000u
#define APIC_ID 0x20
#define APIC_LVR 0x30
#define APIC_TASKPRI 0x80
#define APIC_PROCPRI 0xA0
#define APIC_EOI 0xB0
#define APIC_SPIV 0xF0
#define APIC_ISR 0x100
#define APIC_TMR 0x180
#define APIC_IRR 0x200
#define APIC_ESR 0x280
#define APIC_ICR 0x300
#define APIC_ICR2 0x310
#define APIC_LVTT 0x320
#define APIC_LVT0 0x350
#define APIC_LVT1 0x360
#define APIC_TMICT 0x380
#define APIC_TMCCT 0x390
#define APIC_TDCR 0x3E0
#define APIC_SELF_IPI 0x3F0
#define APIC_ICR_BUSY 0x1000
#define APIC_DEST_SELF 0x40000
#define APIC_DEST_ALLINC 0x80000
#define APIC_DEST_ALLBUT 0xC0000
#define APIC_DEST_PHYSICAL 0
#define APIC_DM_FIXED 0
#define APIC_DM_NMI 0x400
#define APIC_DM_INIT 0x500
#define APIC_DM_STARTUP 0x600
#define APIC_INT_ASSERT 0x4000
#define APIC_LVT_MASKED (1u << 16)
#define APIC_LVT_TIMER_ONESHOT (0u << 17)
#define APIC_LVT_TIMER_PERIODIC (1u << 17)
#define APIC_LVT_TIMER_TSCDEADLINE (2u << 17)
#define APIC_LVT_TIMER_MASK (3u << 17)

uint32_t apic_read(unsigned reg);
void apic_write(unsigned reg, uint32_t val);
void apic_icr_write(uint32_t val, uint32_t dest);
uint32_t apic_id(void);
int apic_read_bit(unsigned reg, int vector);
void eoi(void);
int enable_x2apic(void); /* 1 if CPUID offers it and it is now on */
void disable_apic(void);
void reset_apic(void);
void enable_apic(void);
void mask_pic_interrupts(void);
static inline uint32_t xapic_read(unsigned reg) {
  return *(volatile uint32_t*)(ulong_t)(APIC_DEFAULT_PHYS_BASE + reg);
}
static inline void xapic_write(unsigned reg, uint32_t v) {
  *(volatile uint32_t*)(ulong_t)(APIC_DEFAULT_PHYS_BASE + reg) = v;
}

#define IO_APIC_BASE 0xFEC00000u
uint32_t ioapic_read_reg(unsigned reg);
void ioapic_write_reg(unsigned reg, uint32_t v);
#define TRIGGER_EDGE 0
#define TRIGGER_LEVEL 1
void ioapic_set_redir(unsigned line, unsigned vector, int trigger);
uint64_t ioapic_read_redir(unsigned line);
void ioapic_write_redir(unsigned line, uint64_t e);
void ioapic_set_mask(unsigned line, int mask);
/* pc-testdev: drives ISA IRQ line `line` (0x2000 + line). */
static inline void set_irq_line(unsigned line, int level) {
  outb((uint16_t)(0x2000 + line), (uint8_t)level);
}

/* ---- fw_cfg, ACPI --------------------------------------------------------------- */
#define FW_CFG_SIGNATURE 0x00
#define FW_CFG_ID 0x01
#define FW_CFG_RAM_SIZE 0x03
#define FW_CFG_NB_CPUS 0x05
#define FW_CFG_MAX_CPUS 0x0F
uint64_t fwcfg_get(uint16_t index, int bytes);
/* An ACPI table by signature ("FACS" through the FADT), as the original finds
 * it: RSDP on a 16-byte boundary in 0xE0000-0xFFFFF, then the RSDT. */
void* find_acpi_table(const char sig[4]);
int acpi_checksum_ok(const void* table, uint32_t length);

/* ---- boot information ---------------------------------------------------------- */
struct mbi_bootinfo {
  uint32_t flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
  uint32_t syms[4];
  uint32_t mmap_length, mmap_addr;
  uint32_t drives_length, drives_addr, config_table, boot_loader_name;
};
struct mbi_module {
  uint32_t start, end, cmdline, unused;
};
extern struct mbi_bootinfo* boot_info;
extern const char* initrd;
extern uint32_t initrd_size;
const char* getenv(const char* name);
extern int kut_argc;
extern char* kut_argv[];
extern unsigned kut_cpu_count;       /* from fw_cfg */
extern volatile uint32_t ap_arrived; /* APs that ran the trampoline */
extern uint32_t kut_boot_apic_id;    /* the xAPIC ID read over MMIO at boot */
extern uint8_t percpu_area[];
extern uint8_t edata[];      /* end of the image, page aligned */
extern uint8_t kernel_end[]; /* end of the last segment in memory */

int main(int argc, char** argv);

#endif
