/* ttvm test-guest library (see guest.h). */
#include "guest.h"

#define COM1 0x3F8
#define DEBUGCON 0xE9
#define EXIT_PORT 0xF4

const char* current_case = "init";
/* Off by default: `ttvm record` prints serial and debug-console output to the
 * same stdout, so mirroring would double every character. */
int output_e9;
int fail_count;

/* ---- memory -------------------------------------------------------------- */
void* memset(void* d, int c, size_t n) {
  unsigned char* p = d;
  while (n--) *p++ = (unsigned char)c;
  return d;
}
void* memcpy(void* d, const void* s, size_t n) {
  unsigned char* p = d;
  const unsigned char* q = s;
  while (n--) *p++ = *q++;
  return d;
}
int memcmp(const void* a, const void* b, size_t n) {
  const unsigned char *p = a, *q = b;
  for (; n; n--, p++, q++)
    if (*p != *q) return *p < *q ? -1 : 1;
  return 0;
}

/* ---- serial: 16550 on COM1, 115200 8N1, polled ---------------------------- */
void serial_init(void) {
  outb(COM1 + 1, 0x00); /* IER: no interrupts */
  outb(COM1 + 3, 0x80); /* LCR: DLAB */
  outb(COM1 + 0, 0x01); /* divisor 1 = 115200 baud */
  outb(COM1 + 1, 0x00);
  outb(COM1 + 3, 0x03); /* 8N1 */
  outb(COM1 + 2, 0xC7); /* FIFO on, cleared */
  outb(COM1 + 4, 0x03); /* DTR | RTS */
}

void putchar_(char c) {
  /* Wait for THR empty (LSR bit 5), bounded so a missing UART cannot hang us. */
  for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++) {
  }
  outb(COM1, (uint8_t)c);
  if (output_e9) outb(DEBUGCON, (uint8_t)c);
}

void puts_(const char* s) {
  while (*s) {
    if (*s == '\n') putchar_('\r');
    putchar_(*s++);
  }
}

/* u /= base, returning the remainder; shift-subtract so that 32-bit guests
 * need no libgcc helper for 64-bit division. */
static unsigned divmod(unsigned long long* u, unsigned base) {
  unsigned long long q = 0, r = 0, n = *u;
  for (int i = 63; i >= 0; i--) {
    r = (r << 1) | ((n >> i) & 1);
    if (r >= base) {
      r -= base;
      q |= 1ull << i;
    }
  }
  *u = q;
  return (unsigned)r;
}

/* ---- printf: %d %i %u %x %X %p %s %c %%, flags 0 # -, width, l/ll/z ------ */
static void emit(char c) {
  if (c == '\n') putchar_('\r');
  putchar_(c);
}

int vprintf(const char* fmt, va_list ap) {
  int count = 0;
  for (; *fmt; fmt++) {
    if (*fmt != '%') {
      emit(*fmt);
      count++;
      continue;
    }
    fmt++;
    int zero = 0, alt = 0, left = 0, plus = 0, width = 0, lng = 0;
    for (;; fmt++) {
      if (*fmt == '0') zero = 1;
      else if (*fmt == '+') plus = 1;
      else if (*fmt == '#') alt = 1;
      else if (*fmt == '-') left = 1;
      else break;
    }
    while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
    while (*fmt == 'l' || *fmt == 'z') {
      lng++;
      fmt++;
    }
    char buf[32];
    int n = 0;
    const char* s = buf;
    unsigned long long u = 0;
    int neg = 0, base = 10;
    const char* prefix = "";
    switch (*fmt) {
      case 'c':
        buf[n++] = (char)va_arg(ap, int);
        break;
      case 's':
        s = va_arg(ap, const char*);
        if (!s) s = "(null)";
        while (s[n]) n++;
        break;
      case 'p':
        u = (uintptr_t)va_arg(ap, void*);
        base = 16;
        prefix = "0x";
        goto number;
      case 'd':
      case 'i': {
        long long v = lng >= 2 ? va_arg(ap, long long) : lng ? va_arg(ap, long) : va_arg(ap, int);
        if (v < 0) {
          neg = 1;
          u = (unsigned long long)(-(v + 1)) + 1;
        } else {
          u = (unsigned long long)v;
        }
        goto number;
      }
      case 'x':
      case 'X':
        base = 16;
        if (alt) prefix = "0x";
        /* fallthrough */
      case 'u':
        u = lng >= 2 ? va_arg(ap, unsigned long long)
            : lng    ? va_arg(ap, unsigned long)
                     : va_arg(ap, unsigned int);
      number : {
        char tmp[24];
        int t = 0;
        const char* digits = *fmt == 'X' ? "0123456789ABCDEF" : "0123456789abcdef";
        do {
          tmp[t++] = digits[divmod(&u, (unsigned)base)];
        } while (u);
        if (neg)
          buf[n++] = '-';
        else if (plus && (*fmt == 'd' || *fmt == 'i'))
          buf[n++] = '+';
        for (const char* p = prefix; *p; p++) buf[n++] = *p;
        int pad = width - n - t;
        if (zero && !left)
          while (pad-- > 0) buf[n++] = '0';
        while (t) buf[n++] = tmp[--t];
        break;
      }
      case '%':
        buf[n++] = '%';
        break;
      default:
        buf[n++] = '%';
        buf[n++] = *fmt;
        break;
    }
    int pad = width - n;
    if (!left)
      while (pad-- > 0) emit(' ');
    for (int i = 0; i < n; i++) emit(s[i]);
    if (left)
      while (pad-- > 0) emit(' ');
    count += n;
  }
  return count;
}

int printf(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vprintf(fmt, ap);
  va_end(ap);
  return n;
}

/* ---- exit ---------------------------------------------------------------------- */
void guest_exit(uint32_t v) {
  outl(EXIT_PORT, v);
  /* No exit device: stop here with interrupts off. */
  for (;;) __asm__ volatile("cli; hlt");
}

void case_begin(const char* name) {
  current_case = name;
  printf("case %s\n", name);
}

void check_fail(const char* file, int line, const char* fmt, ...) {
  fail_count++;
  printf("FAIL: %s: %s:%d: ", current_case, file, line);
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
}

void guest_finish(void) {
  if (fail_count) {
    printf("FAIL: %s: %d check(s) failed\n", guest_name, fail_count);
    guest_exit(1);
  }
  printf("PASS: %s\n", guest_name);
  guest_exit(0);
}

/* ---- GDT -------------------------------------------------------------------------- */
uint64_t gdt_make(uint32_t base, uint32_t limit, uint8_t access, uint8_t flags) {
  uint64_t d = limit & 0xFFFFu;
  d |= (uint64_t)(base & 0xFFFFFFu) << 16;
  d |= (uint64_t)access << 40;
  d |= (uint64_t)((limit >> 16) & 0xF) << 48;
  d |= (uint64_t)(flags & 0xF) << 52;
  d |= (uint64_t)(base >> 24) << 56;
  return d;
}
void gdt_set(int index, uint64_t desc) { gdt[index] = desc; }

/* ---- IDT ------------------------------------------------------------------------- */
#ifdef __x86_64__
struct idt_gate {
  uint16_t off0, sel;
  uint8_t ist, attr;
  uint16_t off1;
  uint32_t off2, zero;
};
#else
struct idt_gate {
  uint16_t off0, sel;
  uint8_t zero, attr;
  uint16_t off1;
};
#endif
static struct idt_gate idt[256] __attribute__((aligned(16)));
extern ureg isr_table[256];

ureg idt_stub(int vector) { return isr_table[vector]; }

void idt_set_gate(int vector, ureg handler, uint16_t sel, int type, int dpl, int ist) {
  struct idt_gate* g = &idt[vector];
  g->off0 = (uint16_t)handler;
  g->off1 = (uint16_t)(handler >> 16);
  g->sel = sel;
  g->attr = (uint8_t)(0x80 | (dpl << 5) | type);
#ifdef __x86_64__
  g->off2 = (uint32_t)(handler >> 32);
  g->ist = (uint8_t)ist;
  g->zero = 0;
#else
  (void)ist;
  g->zero = 0;
#endif
}

void idt_set_attr(int vector, int type, int dpl, int ist) {
#ifdef __x86_64__
  idt_set_gate(vector, isr_table[vector], SEL_CODE64, type, dpl, ist);
#else
  idt_set_gate(vector, isr_table[vector], SEL_CODE32, type, dpl, ist);
#endif
}

void idt_set_present(int vector, int present) {
  if (present)
    idt[vector].attr |= 0x80;
  else
    idt[vector].attr &= 0x7F;
}

void idt_load(void) {
  struct __attribute__((packed)) {
    uint16_t limit;
    ureg base;
  } r = {sizeof(idt) - 1, (ureg)idt};
  __asm__ volatile("lidt %0" ::"m"(r));
}

void idt_init(void) {
  for (int v = 0; v < 256; v++) idt_set_attr(v, 0xE, 0, 0);
#ifdef __x86_64__
  idt_set_gate(0x81, (ureg)user_return_stub, SEL_CODE64, 0xE, 3, 0);
#else
  idt_set_gate(0x81, (ureg)user_return_stub, SEL_CODE32, 0xE, 3, 0);
#endif
  idt_load();
}

/* ---- TSS -------------------------------------------------------------------------- */
/* 104-byte TSS + room for an I/O permission bitmap of ports 0..0x3FF and its
 * terminating 0xFF byte (tss_set_iomap). */
uint8_t tss_area[TSS_AREA_SIZE] __attribute__((aligned(16)));

void tss_init(void) {
  memset(tss_area, 0, sizeof(tss_area));
  ureg base = (ureg)tss_area;
#ifdef __x86_64__
  *(uint16_t*)(tss_area + 102) = 104; /* I/O map base beyond the limit: no bitmap */
  gdt[SEL_TSS / 8] = gdt_make((uint32_t)base, 103, 0x89, 0x0);
  gdt[SEL_TSS / 8 + 1] = (uint64_t)base >> 32;
  tss_set_rsp0((ureg)intr_stack_top);
#else
  *(uint16_t*)(tss_area + 102) = 104;
  *(uint32_t*)(tss_area + 8) = SEL_DATA; /* SS0 */
  gdt[SEL_TSS / 8] = gdt_make(base, 103, 0x89, 0x0);
  tss_set_rsp0((ureg)intr_stack_top);
#endif
  __asm__ volatile("ltr %w0" ::"r"(SEL_TSS));
}

void tss_set_iomap(const uint8_t* bitmap, int bytes) {
  /* SDM vol. 1 19.5.2 "I/O Permission Bit Map": bit set = port denied; the map
   * starts at the I/O map base (offset 102) and the byte after it must be 0xFF. */
  *(uint16_t*)(tss_area + 102) = 104;
  memcpy(tss_area + 104, bitmap, (size_t)bytes);
  tss_area[104 + bytes] = 0xFF;
  uint32_t limit = 104 + (uint32_t)bytes; /* the last byte inside the segment */
  ureg base = (ureg)tss_area;
  gdt[SEL_TSS / 8] = gdt_make((uint32_t)base, limit, 0x89, 0x0); /* available again for LTR */
  __asm__ volatile("ltr %w0" ::"r"(SEL_TSS));
}

void tss_set_rsp0(ureg rsp) {
#ifdef __x86_64__
  memcpy(tss_area + 4, &rsp, 8);
#else
  memcpy(tss_area + 4, &rsp, 4);
#endif
}

void tss_set_ist(int n, ureg rsp) {
#ifdef __x86_64__
  memcpy(tss_area + 36 + 8 * (n - 1), &rsp, 8);
#else
  (void)n;
  (void)rsp;
#endif
}

/* ---- traps ------------------------------------------------------------------------ */
volatile struct trap_record trap_log[TRAP_LOG_MAX];
volatile int trap_count;
volatile ureg trap_resume;
volatile int trap_reset_dr6 = 1;
volatile int trap_tf_limit = TRAP_LOG_MAX;
static trap_hook hooks[256];
static uint8_t record_only[256];

void trap_log_clear(void) { trap_count = 0; }

void trap_log_dump(void) {
  int n = trap_count < TRAP_LOG_MAX ? trap_count : TRAP_LOG_MAX;
  for (int i = 0; i < n; i++)
    printf("  trap %d: vector %u error %#x rip %#lx cs %#lx rflags %#lx dr6 %#lx cr2 %#lx rcx %#lx\n",
           i, trap_log[i].vector, trap_log[i].error, (unsigned long)trap_log[i].rip,
           (unsigned long)trap_log[i].cs, (unsigned long)trap_log[i].rflags,
           (unsigned long)trap_log[i].dr6, (unsigned long)trap_log[i].cr2,
           (unsigned long)trap_log[i].rcx);
}

void expect_traps(const struct trap_expect* e, int n) {
  int before = fail_count;
  CHECK_MSG(trap_count == n, "%d trap(s) taken, expected %d", trap_count, n);
  for (int i = 0; i < n && i < trap_count && i < TRAP_LOG_MAX; i++) {
    volatile struct trap_record* r = &trap_log[i];
    CHECK_MSG(r->vector == e[i].vector, "trap %d: vector %u, expected %u", i, r->vector,
              e[i].vector);
    CHECK_MSG(r->rip == e[i].rip, "trap %d: rip %#lx, expected %#lx", i, (unsigned long)r->rip,
              (unsigned long)e[i].rip);
    if (e[i].vector == 1 || e[i].vector == 3)
      CHECK_MSG((r->dr6 & DR6_MASK) == e[i].dr6, "trap %d: dr6 %#lx, expected %#x (mask %#x)", i,
                (unsigned long)(r->dr6 & DR6_MASK), e[i].dr6, DR6_MASK);
    CHECK_MSG((r->rflags & e[i].rflags_set) == e[i].rflags_set,
              "trap %d: saved rflags %#lx lacks %#x", i, (unsigned long)r->rflags,
              e[i].rflags_set);
    CHECK_MSG((r->rflags & e[i].rflags_clear) == 0, "trap %d: saved rflags %#lx has %#x set", i,
              (unsigned long)r->rflags, e[i].rflags_clear);
    if (e[i].has_rcx)
      CHECK_MSG(r->rcx == e[i].rcx, "trap %d: rcx %#lx, expected %#lx", i, (unsigned long)r->rcx,
                (unsigned long)e[i].rcx);
  }
  if (fail_count != before) trap_log_dump();
}
void set_trap_hook(int vector, trap_hook h) { hooks[vector] = h; }
void set_trap_record_only(int vector, int on) { record_only[vector] = (uint8_t)on; }

static const char* const kNames[32] = {"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
                                       "#DF", "CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "15",
                                       "#MF", "#AC", "#MC", "#XM", "#VE", "#CP"};

void trap_dispatch(struct trap_frame* f);
static int trap_depth;

void trap_dispatch(struct trap_frame* f) {
  int v = (int)f->vector;
  /* A fault inside the handler chain (a broken guest or CPU) must not loop
   * forever printing: give up after a few nested levels. */
  if (++trap_depth > 4) {
    outb(0x3F8, '!');
    guest_exit(2);
  }
  ureg dr6 = 0, cr2 = 0;
  if (v == 1 || v == 3) dr6 = read_dr6();
  if (v == 14) cr2 = read_cr2();
  int i = trap_count;
  if (i < TRAP_LOG_MAX) {
    trap_log[i].vector = (uint32_t)v;
    trap_log[i].error = (uint32_t)f->error;
    trap_log[i].rip = f->rip;
    trap_log[i].cs = f->cs;
    trap_log[i].rflags = f->rflags;
#ifdef __x86_64__
    trap_log[i].rsp = f->rsp;
#else
    trap_log[i].rsp = (f->cs & 3) ? f->rsp : 0;
#endif
    trap_log[i].dr6 = dr6;
#ifdef __x86_64__
    trap_log[i].rcx = f->rcx;
#else
    trap_log[i].rcx = f->ecx;
#endif
    trap_log[i].cr2 = cr2;
  }
  trap_count = i + 1;
  if (v == 1 && trap_reset_dr6) write_dr6(DR6_INIT);
  if (trap_count >= trap_tf_limit) f->rflags &= ~(ureg)FL_TF;

  if (trap_resume) {
    f->rip = trap_resume;
    trap_resume = 0;
    trap_depth--;
    return;
  }
  if (hooks[v]) {
    hooks[v](f);
    trap_depth--;
    return;
  }
  if (record_only[v]) {
    trap_depth--;
    return;
  }
  printf("FAIL: %s: unexpected %s (vector %d) error %#lx at %#lx:%#lx rflags %#lx cr2 %#lx\n",
         current_case, v < 32 && kNames[v] ? kNames[v] : "interrupt", v, (unsigned long)f->error,
         (unsigned long)f->cs, (unsigned long)f->rip, (unsigned long)f->rflags,
         (unsigned long)cr2);
  guest_exit(1);
}

/* ---- triple fault ------------------------------------------------------------------ */
void guest_triple_fault(void) {
  printf("TRIPLE-FAULT-NEXT\n");
  struct __attribute__((packed)) {
    uint16_t limit;
    ureg base;
  } r = {0, 0};
  /* Empty IDT: #UD cannot be delivered (#GP), nor can #GP (-> #DF), nor #DF:
   * shutdown (SDM vol. 3 6.15, "Interrupt 8 - Double Fault Exception"). */
  __asm__ volatile("lidt %0; ud2" ::"m"(r));
  for (;;) __asm__ volatile("cli; hlt");
}

/* ---- start -------------------------------------------------------------------------- */
void lib_start(void);
void lib_start(void) {
  /* Mask both 8259 PICs: firmware may have left the PIT's IRQ 0 unmasked at
   * vector 8, which would look like #DF the moment a guest sets IF. */
  outb(0x21, 0xFF);
  outb(0xA1, 0xFF);
  serial_init();
  idt_init();
  tss_init();
  printf("guest %s (%s)\n", guest_name,
#ifdef __x86_64__
         "64-bit"
#else
         "32-bit"
#endif
  );
  guest_main();
  guest_finish();
}
