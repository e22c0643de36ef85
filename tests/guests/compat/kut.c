/* Compat test-kernel library (see kut.h): start-up after cstart.asm, output,
 * reports, exceptions, APIC/I/O APIC/fw_cfg/ACPI helpers. */
#include "kut.h"

#define COM1 0x3F8

/* ---- strings ------------------------------------------------------------------ */
void* memset(void* d, int c, size_t n) {
  uint8_t* p = d;
  while (n--) *p++ = (uint8_t)c;
  return d;
}
void* memcpy(void* d, const void* s, size_t n) {
  uint8_t* p = d;
  const uint8_t* q = s;
  while (n--) *p++ = *q++;
  return d;
}
int memcmp(const void* a, const void* b, size_t n) {
  const uint8_t *p = a, *q = b;
  for (; n; n--, p++, q++)
    if (*p != *q) return *p - *q;
  return 0;
}
size_t strlen(const char* s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}
int strncmp(const char* a, const char* b, size_t n) {
  for (; n; n--, a++, b++) {
    if (*a != *b) return (uint8_t)*a - (uint8_t)*b;
    if (!*a) return 0;
  }
  return 0;
}
int strcmp(const char* a, const char* b) {
  return strncmp(a, b, (size_t)-1);
}
long atol(const char* s) {
  long v = 0;
  int neg = *s == '-';
  if (neg || *s == '+') s++;
  while (*s >= '0' && *s <= '9') v = v * 10 + (*s++ - '0');
  return neg ? -v : v;
}

/* ---- serial console: polled 16550, initialised on first use ----------------- */
static int serial_ready;
static void kut_serial_init(void) {
  outb(COM1 + 3, inb(COM1 + 3) | 0x80); /* DLAB */
  outb(COM1 + 0, 0x01);                 /* 115200 baud */
  outb(COM1 + 1, 0x00);
  outb(COM1 + 3, inb(COM1 + 3) & ~0x80);
  outb(COM1 + 1, 0x00); /* no interrupts */
  outb(COM1 + 3, 0x03); /* 8N1 */
  outb(COM1 + 2, 0x00); /* FIFOs off */
  outb(COM1 + 4, 0x03); /* DTR, RTS */
  serial_ready = 1;
}
static void serial_put(char c) {
  /* Unbounded wait for THRE, as the original: a UART that never drains hangs
   * the test, which the harness reports as a timeout. */
  while (!(inb(COM1 + 5) & 0x20)) {
  }
  outb(COM1, (uint8_t)c);
}
void puts_(const char* s) {
  if (!serial_ready) kut_serial_init();
  for (; *s; s++) {
    if (*s == '\n') serial_put('\r');
    serial_put(*s);
  }
}

/* ---- formatting ---------------------------------------------------------------- */
struct outbuf {
  char* p;
  int left, n;
};
static void emit(struct outbuf* o, char c) {
  if (o->left > 1) {
    *o->p++ = c;
    o->left--;
  }
  o->n++;
}
/* u /= base, returning the remainder (no libgcc in 32-bit builds). */
static unsigned divmod(unsigned long long* u, unsigned base) {
  unsigned long long q = 0, r = 0;
  for (int i = 63; i >= 0; i--) {
    r = (r << 1) | ((*u >> i) & 1);
    if (r >= base) {
      r -= base;
      q |= 1ull << i;
    }
  }
  *u = q;
  return (unsigned)r;
}
static int vformat(char* buf, int size, const char* fmt, va_list ap) {
  struct outbuf o = {buf, size, 0};
  for (; *fmt; fmt++) {
    if (*fmt != '%') {
      emit(&o, *fmt);
      continue;
    }
    fmt++;
    int alt = 0, zero = 0, width = 0, lng = 0;
    if (*fmt == '#') alt = 1, fmt++;
    if (*fmt == '0') zero = 1, fmt++;
    while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
    while (*fmt == 'l') lng++, fmt++;
    unsigned long long v;
    int neg = 0;
    unsigned base = 10;
    switch (*fmt) {
      case 's': {
        const char* s = va_arg(ap, const char*);
        if (!s) s = "(null)";
        while (*s) emit(&o, *s++);
        continue;
      }
      case 'c': emit(&o, (char)va_arg(ap, int)); continue;
      case '%': emit(&o, '%'); continue;
      case 'd': {
        long long s = lng >= 2 ? va_arg(ap, long long) : lng ? va_arg(ap, long) : va_arg(ap, int);
        if (s < 0) neg = 1, s = -s;
        v = (unsigned long long)s;
        break;
      }
      case 'u':
      case 'x':
      case 'p':
        base = *fmt == 'u' ? 10 : 16;
        if (*fmt == 'p') {
          v = (ulong_t)va_arg(ap, void*);
          alt = 1;
        } else {
          v = lng >= 2 ? va_arg(ap, unsigned long long)
              : lng    ? va_arg(ap, unsigned long)
                       : va_arg(ap, unsigned);
        }
        break;
      default: emit(&o, '%'), emit(&o, *fmt); continue;
    }
    char tmp[24];
    int n = 0;
    do tmp[n++] = "0123456789abcdef"[divmod(&v, base)];
    while (v);
    if (neg) emit(&o, '-');
    if (alt && base == 16) emit(&o, '0'), emit(&o, 'x');
    for (int k = n; k < width; k++) emit(&o, zero ? '0' : ' ');
    while (n) emit(&o, tmp[--n]);
  }
  if (o.left > 0) *o.p = 0;
  return o.n;
}
int snprintf(char* buf, int size, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vformat(buf, size, fmt, ap);
  va_end(ap);
  return n;
}
int printf(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vformat(buf, sizeof buf, fmt, ap);
  va_end(ap);
  puts_(buf);
  return n;
}

/* ---- reports ----------------------------------------------------------------- */
static const char* prefixes[8];
static int nprefix;
static unsigned tests, failures, skipped;

void report_prefix_push(const char* p) {
  if (nprefix < 8) prefixes[nprefix++] = p;
}
void report_prefix_pop(void) {
  if (nprefix) nprefix--;
}
static void report_line(const char* kind, const char* fmt, va_list ap) {
  char msg[256];
  vformat(msg, sizeof msg, fmt, ap);
  printf("%s: ", kind);
  for (int i = 0; i < nprefix; i++) printf("%s: ", prefixes[i]);
  printf("%s\n", msg);
}
void report(int pass, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  tests++;
  if (!pass) failures++;
  report_line(pass ? "PASS" : "FAIL", fmt, ap);
  va_end(ap);
}
void report_skip(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  skipped++;
  report_line("SKIP", fmt, ap);
  va_end(ap);
}
extern const char* kut_name;
int report_summary(void) {
  printf("SUMMARY: %u tests, %u unexpected failures, %u skipped\n", tests, failures, skipped);
  if (failures == 0 && tests > 0) {
    printf("PASS: %s\n", kut_name);
    return 0;
  }
  if (tests == 0) printf("FAIL: %s: no test ran\n", kut_name);
  return 1;
}

void kut_exit(int code) {
  /* The exit device first (status (code << 1) | 1), then the Bochs/QEMU
   * shutdown port, then halt. */
  outl(0xF4, (uint32_t)code);
  static const char shutdown[8] = "Shutdown";
  for (int i = 0; i < 8; i++) outb(0x8900, (uint8_t)shutdown[i]);
  for (;;) __asm__ volatile("cli; hlt");
}
void kut_abort(const char* why) {
  printf("FAIL: %s: abort: %s\n", kut_name, why);
  kut_exit(1);
}

/* ---- exceptions and interrupts ------------------------------------------------ */
extern uint64_t idt[];
extern ulong_t isr_stubs[256];
static kut_handler handlers[256];
struct ex_entry {
  ulong_t from, to;
};
extern struct ex_entry ex_table_start[], ex_table_end[];

static void set_gate(int vector, ulong_t handler) {
#ifdef __x86_64__
  uint64_t* g = &idt[vector * 2];
  g[0] = (handler & 0xFFFF) | ((uint64_t)read_cs() << 16) | (0x8EULL << 40) |
         ((uint64_t)(handler >> 16) << 48);
  g[1] = handler >> 32;
#else
  idt[vector] = (handler & 0xFFFF) | ((uint64_t)read_cs() << 16) | (0x8EULL << 40) |
                ((uint64_t)(handler >> 16) << 48);
#endif
}

void handle_irq(int vector, kut_handler h) {
  handlers[vector] = h;
}

void kut_trap(struct ex_regs* r) {
  unsigned v = (unsigned)r->vector;
  if (handlers[v]) {
    handlers[v](r);
    return;
  }
  if (v < 32) {
    for (struct ex_entry* e = ex_table_start; e != ex_table_end; e++) {
      if (e->from == r->rip) {
        uint32_t info = v | (((r->rflags >> 16) & 1) << 8) | ((uint32_t)r->error_code << 16);
        __asm__ volatile("movl %0, %%gs:4" ::"r"(info) : "memory");
        r->rip = e->to;
        return;
      }
    }
  }
  printf("Unhandled exception %u at ip %#lx, error code %#lx, rflags %#lx\n", v,
         (unsigned long)r->rip, (unsigned long)r->error_code, (unsigned long)r->rflags);
  kut_abort("unhandled exception");
}

/* ---- local APIC: xAPIC over MMIO, x2APIC over MSRs 0x800+ -------------------- */
static int x2apic_on;
uint32_t apic_read(unsigned reg) {
  return x2apic_on ? (uint32_t)rdmsr(0x800 + reg / 16) : xapic_read(reg);
}
void apic_write(unsigned reg, uint32_t val) {
  if (x2apic_on)
    wrmsr(0x800 + reg / 16, val);
  else
    xapic_write(reg, val);
}
void apic_icr_write(uint32_t val, uint32_t dest) {
  if (x2apic_on) {
    wrmsr(0x800 + APIC_ICR / 16, ((uint64_t)dest << 32) | val);
    return;
  }
  while (xapic_read(APIC_ICR) & APIC_ICR_BUSY) {
  }
  xapic_write(APIC_ICR2, dest << 24);
  xapic_write(APIC_ICR, val);
}
uint32_t apic_id(void) {
  return x2apic_on ? apic_read(APIC_ID) : apic_read(APIC_ID) >> 24;
}
int apic_read_bit(unsigned reg, int vector) {
  return (apic_read(reg + (unsigned)(vector >> 5) * 16) >> (vector & 31)) & 1;
}
void eoi(void) {
  apic_write(APIC_EOI, 0);
}
int enable_x2apic(void) {
  if (!(cpuid_leaf(1).c & (1u << 21))) return 0;
  wrmsr(MSR_IA32_APICBASE, rdmsr(MSR_IA32_APICBASE) | APIC_EXTD);
  x2apic_on = 1;
  return 1;
}
void disable_apic(void) {
  wrmsr(MSR_IA32_APICBASE, rdmsr(MSR_IA32_APICBASE) & ~(uint64_t)(APIC_EN | APIC_EXTD));
  x2apic_on = 0;
}
void reset_apic(void) {
  disable_apic();
  wrmsr(MSR_IA32_APICBASE, rdmsr(MSR_IA32_APICBASE) | APIC_EN);
  xapic_write(APIC_SPIV, 0x1FF);
}
void enable_apic(void) {
  xapic_write(APIC_SPIV, 0x1FF);
}
void mask_pic_interrupts(void) {
  outb(0x21, 0xFF);
  outb(0xA1, 0xFF);
}

/* ---- I/O APIC -------------------------------------------------------------------- */
uint32_t ioapic_read_reg(unsigned reg) {
  *(volatile uint32_t*)(ulong_t)IO_APIC_BASE = reg;
  return *(volatile uint32_t*)(ulong_t)(IO_APIC_BASE + 0x10);
}
void ioapic_write_reg(unsigned reg, uint32_t v) {
  *(volatile uint32_t*)(ulong_t)IO_APIC_BASE = reg;
  *(volatile uint32_t*)(ulong_t)(IO_APIC_BASE + 0x10) = v;
}
uint64_t ioapic_read_redir(unsigned line) {
  return ioapic_read_reg(0x10 + line * 2) | ((uint64_t)ioapic_read_reg(0x11 + line * 2) << 32);
}
void ioapic_write_redir(unsigned line, uint64_t e) {
  ioapic_write_reg(0x10 + line * 2, (uint32_t)e);
  ioapic_write_reg(0x11 + line * 2, (uint32_t)(e >> 32));
}
void ioapic_set_redir(unsigned line, unsigned vector, int trigger) {
  ioapic_write_redir(line, vector | ((uint64_t)trigger << 15));
}
void ioapic_set_mask(unsigned line, int mask) {
  uint64_t e = ioapic_read_redir(line);
  e = mask ? e | (1u << 16) : e & ~(uint64_t)(1u << 16);
  ioapic_write_redir(line, e);
}

/* ---- fw_cfg and ACPI -------------------------------------------------------------- */
uint64_t fwcfg_get(uint16_t index, int bytes) {
  uint64_t r = 0;
  __asm__ volatile("outw %0, %1" ::"a"(index), "d"((uint16_t)0x510)); /* 16-bit selector */
  for (int i = 0; i < bytes; i++) r |= (uint64_t)inb(0x511) << (8 * i);
  return r;
}

int acpi_checksum_ok(const void* table, uint32_t length) {
  uint8_t sum = 0;
  for (uint32_t i = 0; i < length; i++) sum += ((const uint8_t*)table)[i];
  return sum == 0;
}

void* find_acpi_table(const char sig[4]) {
  if (!memcmp(sig, "FACS", 4)) {
    uint8_t* fadt = find_acpi_table("FACP");
    return fadt ? (void*)(ulong_t) * (uint32_t*)(fadt + 36) : 0;
  }
  uint8_t* rsdp = 0;
  for (ulong_t a = 0xE0000; a < 0x100000; a += 16)
    if (!memcmp((void*)a, "RSD PTR ", 8)) {
      rsdp = (uint8_t*)a;
      break;
    }
  if (!rsdp) return 0;
  if (!memcmp(sig, "RSDP", 4)) return rsdp;
  uint8_t* rsdt = (uint8_t*)(ulong_t) * (uint32_t*)(rsdp + 16);
  if (!rsdt || memcmp(rsdt, "RSDT", 4)) return 0;
  if (!memcmp(sig, "RSDT", 4)) return rsdt;
  uint32_t len = *(uint32_t*)(rsdt + 4);
  for (uint32_t off = 36; off + 4 <= len; off += 4) {
    uint8_t* t = (uint8_t*)(ulong_t) * (uint32_t*)(rsdt + off);
    if (t && !memcmp(t, sig, 4)) return t;
  }
  return 0;
}

/* ---- boot ------------------------------------------------------------------------ */
struct mbi_bootinfo* boot_info;
const char* initrd;
uint32_t initrd_size;
int kut_argc;
char* kut_argv[32];
static char args_copy[1024];
static char env[4096];
static const char* envp[64];
unsigned kut_cpu_count;
uint32_t kut_boot_apic_id;

/* The command line is "<kernel> args...": argv[0] is the kernel name. */
static void setup_args(const char* cmdline) {
  int n = 0;
  while (cmdline[n] && n < (int)sizeof args_copy - 1) args_copy[n] = cmdline[n], n++;
  args_copy[n] = 0;
  char* p = args_copy;
  kut_argc = 0;
  while (*p && kut_argc < 31) {
    while (*p == ' ') *p++ = 0;
    if (!*p) break;
    kut_argv[kut_argc++] = p;
    while (*p && *p != ' ') p++;
  }
  kut_argv[kut_argc] = 0;
}

/* The initrd is the environment: NAME=VALUE lines. */
static void setup_env(void) {
  uint32_t n = initrd_size < sizeof env - 1 ? initrd_size : sizeof env - 1;
  memcpy(env, initrd, n);
  env[n] = 0;
  int k = 0;
  char* p = env;
  while (*p && k < 63) {
    envp[k++] = p;
    while (*p && *p != '\n') p++;
    if (*p) *p++ = 0;
  }
  envp[k] = 0;
}

const char* getenv(const char* name) {
  size_t len = strlen(name);
  for (int i = 0; envp[i]; i++)
    if (!strncmp(envp[i], name, len) && envp[i][len] == '=') return envp[i] + len + 1;
  return 0;
}

void kut_multiboot(struct mbi_bootinfo* bi) {
  boot_info = bi;
  if (bi->mods_count == 1) {
    struct mbi_module* m = (struct mbi_module*)(ulong_t)bi->mods_addr;
    initrd = (const char*)(ulong_t)m->start;
    initrd_size = m->end - m->start;
  }
  /* Copy what we keep now: the area after the kernel is free memory to the
   * original's page allocator. */
  if (initrd) setup_env();
  setup_args((bi->flags & 4) ? (const char*)(ulong_t)bi->cmdline : "");
}

extern uint64_t gdt[];
extern uint8_t rm_trampoline[], rm_trampoline_end[];
extern uint8_t ring0_stacktop[];
static uint32_t tss[26];

static void load_tss(void) {
  ulong_t base = (ulong_t)tss;
  memset(tss, 0, sizeof tss);
#ifdef __x86_64__
  tss[1] = (uint32_t)(ulong_t)ring0_stacktop; /* RSP0 */
  tss[2] = (uint32_t)((uint64_t)(ulong_t)ring0_stacktop >> 32);
  gdt[16] = 0x0000890000000067ull | ((uint64_t)(base & 0xFFFFFF) << 16) |
            ((uint64_t)(base >> 24 & 0xFF) << 56);
  gdt[17] = base >> 32;
#else
  tss[1] = (ulong_t)ring0_stacktop; /* ESP0 */
  tss[2] = 0x10;                    /* SS0 */
  tss[25] = sizeof tss << 16;       /* no I/O bitmap */
  gdt[16] = 0x0000890000000067ull | ((uint64_t)(base & 0xFFFFFF) << 16) |
            ((uint64_t)(base >> 24 & 0xFF) << 56);
  ulong_t pc = (ulong_t)percpu_area;
  gdt[17] = 0x00CF93000000FFFFull | ((uint64_t)(pc & 0xFFFFFF) << 16) |
            ((uint64_t)(pc >> 24 & 0xFF) << 56);
  __asm__ volatile("mov %0, %%gs" ::"r"((uint16_t)0x88));
#endif
  __asm__ volatile("ltr %0" ::"r"((uint16_t)0x80));
}

/* Sends INIT and STARTUP to every other CPU and waits for as many CPUs as
 * fw_cfg reports: with one CPU, none may answer and the BSP must survive. */
static void ap_init(void) {
  ulong_t dst = 0;
  __asm__ volatile("" : "+r"(dst)); /* physical 0 is RAM here, not a null pointer */
  memset((void*)dst, 0xCC, 4096);
  memcpy((void*)dst, rm_trampoline, (size_t)(rm_trampoline_end - rm_trampoline));
  apic_icr_write(APIC_DEST_ALLBUT | APIC_DEST_PHYSICAL | APIC_DM_INIT | APIC_INT_ASSERT, 0);
  apic_icr_write(APIC_DEST_ALLBUT | APIC_DEST_PHYSICAL | APIC_DM_STARTUP, 0);
  kut_cpu_count = (unsigned)fwcfg_get(FW_CFG_NB_CPUS, 2);
  printf("smp: waiting for %u APs\n", kut_cpu_count - 1);
  while (kut_cpu_count != 1 + ap_arrived) pause_();
}

const char* kut_name = "kut";

void kut_boot(struct mbi_bootinfo* bi) {
  *(ulong_t*)percpu_area = (ulong_t)percpu_area;
  load_tss();
  reset_apic();
  kut_boot_apic_id = xapic_read(APIC_ID) >> 24;
  mask_pic_interrupts();
  enable_apic();
#ifdef __x86_64__
  kut_multiboot(bi);
#else
  (void)bi; /* parsed before paging */
#endif
  for (int v = 0; v < 256; v++) set_gate(v, isr_stubs[v]);
  ap_init();
  enable_x2apic();
  if (kut_argc > 0) {
    const char* slash = kut_argv[0];
    for (const char* p = kut_argv[0]; *p; p++)
      if (*p == '/') slash = p + 1;
    kut_name = slash;
  }
  kut_exit(main(kut_argc, kut_argv));
}
