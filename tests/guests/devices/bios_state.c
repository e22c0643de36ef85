/* The state a PC BIOS leaves behind, which kernels booted by QEMU's -kernel
 * find and some rely on: the BIOS data area's base-memory size, a real-mode
 * interrupt vector table, the 8259s at vector bases 0x08 and 0x70 (observed
 * by taking IRQ 0 and IRQ 8 without reprogramming them), the PIT's channel 0
 * running in mode 2/3 with the full 65536 divisor (18.2 Hz), A20 enabled in
 * port 0x92, and all-ones from a port nobody claims. */
#include "dev.h"

GUEST_NAME("bios_state");

/* IRQ 0 arrives on vector 8, where the library's stub expects a #DF error
 * code: this stub takes the interrupt frame as it is. */
volatile int vec8_count;
void irq0_vec8_stub(void);
__asm__(
    ".text\n.globl irq0_vec8_stub\nirq0_vec8_stub:\n"
    "  push %rax\n"
    "  lock incl vec8_count(%rip)\n"
    "  mov $0x20, %al\n"
    "  outb %al, $0x20\n" /* non-specific EOI, master */
    "  pop %rax\n"
    "  iretq\n");

static volatile int vec70_count;
static void irq8_vec70(struct trap_frame* f) {
  (void)f;
  (void)cmos_read(0x0C);
  vec70_count++;
  outb(0xA0, 0x20);
  outb(0x20, 0x20);
}

/* Waits with HLT (interrupts on) until *counter reaches target; at most
 * `limit` wake-ups, so a machine where nothing fires ends the case. */
/* A pointer to low physical memory that the compiler cannot see through
 * (GCC treats constant addresses below 4 KiB as null-pointer arithmetic). */
static const volatile void* low_mem(uintptr_t addr) {
  __asm__("" : "+r"(addr));
  return (const volatile void*)addr;
}

static int hlt_wait(volatile int* counter, int target, int limit) {
  for (int i = 0; i < limit && *counter < target; i++) __asm__ volatile("sti; hlt; cli");
  return *counter;
}

void guest_main(void) {
  cli();

  case_begin("bda");
  uint16_t base_kib = *(const volatile uint16_t*)low_mem(0x413);
  CHECK_MSG(base_kib >= 512 && base_kib <= 640, "BDA base memory %u KiB", base_kib);

  case_begin("ivt");
  const volatile uint32_t* ivt = (const volatile uint32_t*)low_mem(0);
  static const int kVectors[] = {0x00, 0x05, 0x08, 0x09, 0x10, 0x13, 0x15,
                                 0x16, 0x19, 0x1A, 0x70, 0x74, 0x75, 0x76};
  for (unsigned i = 0; i < sizeof kVectors / sizeof kVectors[0]; i++) {
    uint32_t e = ivt[kVectors[i]];
    uint32_t linear = ((e >> 16) << 4) + (e & 0xFFFF);
    CHECK_MSG(e != 0 && linear >= 0x400 && linear < 0x100000,
              "IVT vector %#x = %04x:%04x (linear %#x): not a handler below 1 MiB", kVectors[i],
              e >> 16, e & 0xFFFF, linear);
  }

  case_begin("pit_ch0");
  outb(0x43, 0xE2); /* read-back: status only, counter 0 */
  uint8_t status = inb(0x40);
  int mode = (status >> 1) & 7;
  CHECK_MSG((status & 0x30) == 0x30, "PIT ch0 status %#x: access not lobyte/hibyte", status);
  CHECK_MSG(mode == 2 || mode == 3 || mode == 6 || mode == 7, "PIT ch0 status %#x: mode %d", status,
            mode);
  CHECK_MSG(!(status & 1), "PIT ch0 status %#x: BCD counting", status);

  case_begin("irq0_vector8");
  idt_set_gate(8, (ureg)irq0_vec8_stub, SEL_CODE64, 0xE, 0, 0);
  outb(0x21, 0xFE); /* OCW1 only: IRQ 0 unmasked; the BIOS's ICW2 stays */
  outb(0xA1, 0xFF);
  /* Just after a tick the counter has just reloaded: with the BIOS's divisor
   * of 65536 (18.2 Hz) it is still far above 0x4000 (41 ms of margin for a
   * loaded host delaying the interrupt; 100 Hz or 1 kHz divisors are below).
   * The highest count read after any of 4 ticks counts. A count of 0 is
   * 65536: the value just at the reload. */
  uint32_t after_tick = 0;
  for (int i = 0; i < 50 && vec8_count < 4; i++) {
    int before = vec8_count;
    __asm__ volatile("sti; hlt; cli");
    if (vec8_count > before) {
      uint16_t c = pit_read_count(0);
      uint32_t v = c ? c : 0x10000;
      if (v > after_tick) after_tick = v;
    }
  }
  int n = vec8_count;
  outb(0x21, 0xFF);
  idt_set_gate(8, idt_stub(8), SEL_CODE64, 0xE, 0, 0);
  CHECK_MSG(n >= 2, "%d timer interrupts on vector 8 (master 8259 base 0x08)", n);
  current_case = "pit_ch0";
  CHECK_MSG(n < 2 || after_tick > 0x4000,
            "PIT ch0 count %#x right after a tick: divisor below 0x4000, not 18.2 Hz", after_tick);

  case_begin("irq8_vector70");
  set_trap_hook(0x70, irq8_vec70);
  uint8_t a = cmos_read(0x0A), b = cmos_read(0x0B);
  cmos_write(0x0A, (uint8_t)((a & 0xF0) | 0x06)); /* 1024 Hz */
  (void)cmos_read(0x0C);
  cmos_write(0x0B, b | 0x40);
  outb(0x21, 0xFB); /* cascade */
  outb(0xA1, 0xFE); /* IRQ 8 */
  n = hlt_wait(&vec70_count, 4, 200);
  outb(0x21, 0xFF);
  outb(0xA1, 0xFF);
  cmos_write(0x0B, b);
  (void)cmos_read(0x0C);
  cmos_write(0x0A, a);
  CHECK_MSG(n >= 4, "%d RTC interrupts on vector 0x70 (slave 8259 base 0x70)", n);

  case_begin("a20_port92");
  CHECK_MSG(inb(0x92) & 0x02, "port 0x92 reads %#x: A20 gate bit clear", inb(0x92));

  case_begin("unclaimed_port");
  outb(0x80, 0x42); /* POST code: accepted, no effect */
  uint8_t v = inb(0x3E8);
  CHECK_MSG(v == 0xFF, "unclaimed port 0x3E8 (no COM3) reads %#x, expected 0xFF", v);
}
