// The ttvm demo kernel's platform code: serial console, IDT and exception
// reports, 8259 PIC masking, local APIC timer. The workload is in workload.c.
#include "demo.h"

// ---------------------------------------------------------------------------
// COM1: a 16550A at 0x3F8, 115200 baud 8N1, FIFOs on, polled output.
enum {
  kCom1 = 0x3F8,
  kUartData = 0,
  kUartIer = 1,
  kUartFcr = 2,
  kUartLcr = 3,
  kUartMcr = 4,
  kUartLsr = 5,
  kLcrDlab = 0x80,
  kLcr8N1 = 0x03,
  kLsrThre = 0x20,
};

static void serial_init(void) {
  outb(kCom1 + kUartIer, 0x00);      // no UART interrupts: output is polled
  outb(kCom1 + kUartLcr, kLcrDlab);  // divisor latch access
  outb(kCom1 + 0, 1);                // divisor 1: 115200 baud
  outb(kCom1 + 1, 0);
  outb(kCom1 + kUartLcr, kLcr8N1);
  outb(kCom1 + kUartFcr, 0xC7);  // enable and clear FIFOs, 14-byte trigger
  outb(kCom1 + kUartMcr, 0x03);  // DTR, RTS
}

static void serial_putc(char c) {
  if (c == '\n') serial_putc('\r');
  while (!(inb(kCom1 + kUartLsr) & kLsrThre)) {
  }
  outb(kCom1 + kUartData, (uint8_t)c);
}

// ---------------------------------------------------------------------------
// A small printf: %s %c %d %u %x %p with optional '0', width and 'l'.
static void put_str(const char* s) {
  while (*s) serial_putc(*s++);
}

static void put_uint(uint64_t v, unsigned base, int width, char pad) {
  char buf[24];
  int n = 0;
  do {
    buf[n++] = "0123456789abcdef"[v % base];
    v /= base;
  } while (v);
  while (n < width--) serial_putc(pad);
  while (n) serial_putc(buf[--n]);
}

static void kvprintf(const char* fmt, va_list ap) {
  for (; *fmt; fmt++) {
    if (*fmt != '%') {
      serial_putc(*fmt);
      continue;
    }
    fmt++;
    char pad = ' ';
    int width = 0;
    bool is_long = false;
    if (*fmt == '0') {
      pad = '0';
      fmt++;
    }
    while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
    if (*fmt == 'l') {
      is_long = true;
      fmt++;
    }
    switch (*fmt) {
      case 's': put_str(va_arg(ap, const char*)); break;
      case 'c': serial_putc((char)va_arg(ap, int)); break;
      case 'd': {
        int64_t v = is_long ? va_arg(ap, int64_t) : va_arg(ap, int);
        if (v < 0) {
          serial_putc('-');
          v = -v;
        }
        put_uint((uint64_t)v, 10, width, pad);
        break;
      }
      case 'u':
        put_uint(is_long ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10, width, pad);
        break;
      case 'x':
        put_uint(is_long ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 16, width, pad);
        break;
      case 'p':
        put_str("0x");
        put_uint((uint64_t)va_arg(ap, void*), 16, 16, '0');
        break;
      case '%': serial_putc('%'); break;
      default: serial_putc('?'); break;
    }
  }
}

void kprintf(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  kvprintf(fmt, ap);
  va_end(ap);
}

// Reports a guest panic to the host through QEMU's pvpanic device (ISA port
// 0x505, bit 0 = "guest panicked") and stops with interrupts off. A host
// without pvpanic sees a halted CPU with nothing pending.
static __attribute__((noreturn)) void halt_forever(void) {
  outb(0x505, 1);
  for (;;) __asm__ volatile("cli; hlt");
}

void panic(const char* fmt, ...) {
  __asm__ volatile("cli");
  put_str("PANIC: ");
  va_list ap;
  va_start(ap, fmt);
  kvprintf(fmt, ap);
  va_end(ap);
  put_str("\n");
  halt_forever();
}

// ---------------------------------------------------------------------------
// IDT: 64-bit interrupt gates, kernel code selector 0x08.
struct IdtGate {
  uint16_t offset_low;
  uint16_t selector;
  uint8_t ist;
  uint8_t type_attr;  // 0x8E: present, DPL 0, 64-bit interrupt gate
  uint16_t offset_mid;
  uint32_t offset_high;
  uint32_t reserved;
} __attribute__((packed));

static struct IdtGate idt[256] __attribute__((aligned(16)));

extern const uint64_t isr_exception_stubs[32];
extern const uint64_t isr_timer_stub;
extern const uint64_t isr_spurious_stub;

enum { kTimerVector = 0x40, kSpuriousVector = 0xFF };

static void idt_set(unsigned vector, uint64_t handler) {
  idt[vector] = (struct IdtGate){
      .offset_low = (uint16_t)handler,
      .selector = 0x08,
      .type_attr = 0x8E,
      .offset_mid = (uint16_t)(handler >> 16),
      .offset_high = (uint32_t)(handler >> 32),
  };
}

static void idt_init(void) {
  for (unsigned v = 0; v < 32; v++) idt_set(v, isr_exception_stubs[v]);
  idt_set(kTimerVector, isr_timer_stub);
  idt_set(kSpuriousVector, isr_spurious_stub);
  struct {
    uint16_t limit;
    uint64_t base;
  } __attribute__((packed)) idtr = {sizeof(idt) - 1, (uint64_t)idt};
  __asm__ volatile("lidt %0" : : "m"(idtr));
}

static const char* const kExceptionNames[32] = {"divide error",
                                                "debug",
                                                "NMI",
                                                "breakpoint",
                                                "overflow",
                                                "bound range",
                                                "invalid opcode",
                                                "device not available",
                                                "double fault",
                                                "coprocessor segment overrun",
                                                "invalid TSS",
                                                "segment not present",
                                                "stack fault",
                                                "general protection",
                                                "page fault",
                                                "reserved",
                                                "x87 floating point",
                                                "alignment check",
                                                "machine check",
                                                "SIMD floating point",
                                                "virtualization",
                                                "control protection",
                                                "reserved",
                                                "reserved",
                                                "reserved",
                                                "reserved",
                                                "reserved",
                                                "reserved",
                                                "hypervisor injection",
                                                "VMM communication",
                                                "security",
                                                "reserved"};

// Prints the bytes of a value that looks like text, e.g. a pointer that was
// overwritten with part of a string: 0x70756b6f6f6c -> "lookup".
static void print_as_text(uint64_t v) {
  put_str(" (as bytes: \"");
  for (int i = 0; i < 8 && (v >> (8 * i)); i++) {
    char c = (char)(v >> (8 * i));
    serial_putc(c >= 0x20 && c < 0x7F ? c : '.');
  }
  put_str("\")");
}

static void report_exception(const struct InterruptFrame* f) {
  __asm__ volatile("cli");
  kprintf("\n*** %s (vector %lu) at rip=%p, error code=%lx\n", kExceptionNames[f->vector],
          f->vector, (void*)f->rip, f->error_code);
  if (f->vector == 14) {
    uint64_t cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    kprintf("*** faulting address cr2=%p%s%s%s", (void*)cr2,
            f->error_code & 1 ? " protection-violation" : " not-present",
            f->error_code & 2 ? " write" : " read", f->error_code & 16 ? " instruction-fetch" : "");
    print_as_text(cr2);
    kprintf("\n");
  }
  kprintf("    rax=%p rbx=%p rcx=%p rdx=%p\n", (void*)f->rax, (void*)f->rbx, (void*)f->rcx,
          (void*)f->rdx);
  kprintf("    rsi=%p rdi=%p rbp=%p rsp=%p\n", (void*)f->rsi, (void*)f->rdi, (void*)f->rbp,
          (void*)f->rsp);
  kprintf("    r8 =%p r9 =%p r10=%p r11=%p\n", (void*)f->r8, (void*)f->r9, (void*)f->r10,
          (void*)f->r11);
  kprintf("    r12=%p r13=%p r14=%p r15=%p\n", (void*)f->r12, (void*)f->r13, (void*)f->r14,
          (void*)f->r15);
  // Frame-pointer backtrace (the kernel is built with frame pointers).
  kprintf("    backtrace: %p", (void*)f->rip);
  const uint64_t* fp = (const uint64_t*)f->rbp;
  for (int depth = 0; depth < 8 && fp && ((uint64_t)fp >> 32) == 0; depth++) {
    kprintf(" %p", (void*)fp[1]);
    fp = (const uint64_t*)fp[0];
  }
  kprintf("\n");
  panic("unhandled %s in kernel mode", kExceptionNames[f->vector]);
}

// ---------------------------------------------------------------------------
// Local APIC (xAPIC, MMIO at 0xFEE00000) and the legacy 8259 PICs.
enum {
  kApicBase = 0xFEE00000u,
  kApicTpr = 0x080,
  kApicEoi = 0x0B0,
  kApicSvr = 0x0F0,
  kApicLvtTimer = 0x320,
  kApicTimerInitial = 0x380,
  kApicTimerCurrent = 0x390,
  kApicTimerDivide = 0x3E0,
  kApicSvrEnable = 0x100,
  kLvtPeriodic = 1 << 17,
  kApicTimerDivideBy16 = 0x3,
  kApicTimerCount = 20000,  // 320 us at a 1 GHz APIC bus
  kIa32ApicBaseMsr = 0x1B,
  kApicGlobalEnable = 1 << 11,
};

static inline volatile uint32_t* apic_reg(uint32_t offset) {
  return (volatile uint32_t*)(uintptr_t)(kApicBase + offset);
}

static volatile uint64_t ticks;

uint64_t timer_ticks(void) {
  return ticks;
}

// Remaps the PICs away from the exception vectors (0x20/0x28) and masks every
// line: all interrupts come from the local APIC.
static void pic_disable(void) {
  outb(0x20, 0x11);  // ICW1: edge, cascade, ICW4 follows
  outb(0xA0, 0x11);
  outb(0x21, 0x20);  // ICW2: vector bases
  outb(0xA1, 0x28);
  outb(0x21, 0x04);  // ICW3: slave on IRQ 2
  outb(0xA1, 0x02);
  outb(0x21, 0x01);  // ICW4: 8086 mode
  outb(0xA1, 0x01);
  outb(0x21, 0xFF);  // OCW1: mask all
  outb(0xA1, 0xFF);
}

static void apic_init(void) {
  uint32_t lo, hi;
  __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(kIa32ApicBaseMsr));
  if ((lo & 0xFFFFF000u) != kApicBase || !(lo & kApicGlobalEnable))
    panic("local APIC not at %x or globally disabled (IA32_APIC_BASE=%x)", kApicBase, lo);
  *apic_reg(kApicSvr) = kApicSvrEnable | kSpuriousVector;
  *apic_reg(kApicTpr) = 0;
  *apic_reg(kApicTimerDivide) = kApicTimerDivideBy16;
  *apic_reg(kApicLvtTimer) = kLvtPeriodic | kTimerVector;
  *apic_reg(kApicTimerInitial) = kApicTimerCount;
  kprintf("local APIC: id %u, version %x, timer periodic every %u x 16 bus cycles\n",
          *apic_reg(0x20) >> 24, *apic_reg(0x30) & 0xFF, kApicTimerCount);
}

void interrupt_dispatch(struct InterruptFrame* frame) {
  if (frame->vector == kTimerVector) {
    ticks++;
    *apic_reg(kApicEoi) = 0;
    return;
  }
  if (frame->vector == kSpuriousVector) return;  // no EOI for spurious
  report_exception(frame);
}

// ---------------------------------------------------------------------------
struct MultibootInfo {
  uint32_t flags;
  uint32_t mem_lower;  // KiB below 1 MiB
  uint32_t mem_upper;  // KiB above 1 MiB
};

void kmain(uint32_t magic, uint32_t info_addr) {
  serial_init();
  kprintf("ttvm demo kernel: long mode, paging on\n");
  if (magic != 0x2BADB002) panic("not booted by a multiboot loader (eax=%x)", magic);
  const struct MultibootInfo* info = (const struct MultibootInfo*)(uintptr_t)info_addr;
  if (info->flags & 1)
    kprintf("memory: %u KiB low, %u KiB above 1 MiB\n", info->mem_lower, info->mem_upper);
  idt_init();
  pic_disable();
  apic_init();
  __asm__ volatile("sti");
  workload_run();
  kprintf("workload finished, ticks=%lu\n", timer_ticks());
  outb(0xF4, 0);  // isa-debug-exit, where present
  panic("workload returned");
}
