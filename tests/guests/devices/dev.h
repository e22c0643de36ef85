/* Helpers shared by the device test guests: 8259 PICs, local APIC, I/O APIC,
 * CMOS, bounded waits. Each guest programs the devices itself, as a driver
 * does, and never trusts what the firmware (or ttvm's BIOS state) left. */
#ifndef TTVM_DEVICES_DEV_H
#define TTVM_DEVICES_DEV_H

#include "guest.h"

/* ---- 8259A pair: master 0x20/0x21, slave 0xA0/0xA1 ---------------------- */
#define PIC_MASTER_BASE 0x20 /* vectors of IRQ 0..7 */
#define PIC_SLAVE_BASE 0x28  /* vectors of IRQ 8..15 */

/* ICW1-4: edge triggered, cascade on IRQ 2, 8086 mode, normal EOI; then
 * masks everything. */
static inline void pic_init(void) {
  outb(0x20, 0x11);
  outb(0xA0, 0x11);
  outb(0x21, PIC_MASTER_BASE);
  outb(0xA1, PIC_SLAVE_BASE);
  outb(0x21, 0x04);
  outb(0xA1, 0x02);
  outb(0x21, 0x01);
  outb(0xA1, 0x01);
  outb(0x21, 0xFF);
  outb(0xA1, 0xFF);
}

/* Clears the mask bit of `irq` (and of the cascade for a slave line). */
static inline void pic_unmask(int irq) {
  if (irq < 8) {
    outb(0x21, inb(0x21) & ~(1u << irq));
  } else {
    outb(0xA1, inb(0xA1) & ~(1u << (irq - 8)));
    outb(0x21, inb(0x21) & ~(1u << 2));
  }
}
static inline void pic_mask(int irq) {
  if (irq < 8)
    outb(0x21, inb(0x21) | (1u << irq));
  else
    outb(0xA1, inb(0xA1) | (1u << (irq - 8)));
}
/* Non-specific EOI to the slave (for IRQ 8..15) and the master. */
static inline void pic_eoi(int irq) {
  if (irq >= 8) outb(0xA0, 0x20);
  outb(0x20, 0x20);
}
/* OCW3: 0x0A selects IRR, 0x0B selects ISR for the next read of the command port. */
static inline uint8_t pic_read_isr(uint16_t cmd) {
  outb(cmd, 0x0B);
  return inb(cmd);
}
static inline uint8_t pic_read_irr(uint16_t cmd) {
  outb(cmd, 0x0A);
  return inb(cmd);
}

/* ---- local APIC, xAPIC MMIO ----------------------------------------------- */
#define LAPIC_BASE 0xFEE00000u
#define LAPIC_ID 0x020
#define LAPIC_VERSION 0x030
#define LAPIC_TPR 0x080
#define LAPIC_EOI 0x0B0
#define LAPIC_SVR 0x0F0
#define LAPIC_ISR 0x100 /* 8 registers, 0x10 apart */
#define LAPIC_TMR 0x180
#define LAPIC_IRR 0x200
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360
#define LAPIC_TIMER_INITIAL 0x380
#define LAPIC_TIMER_CURRENT 0x390
#define LAPIC_TIMER_DIVIDE 0x3E0
#define LVT_MASKED (1u << 16)
#define LVT_PERIODIC (1u << 17)
#define LVT_TSC_DEADLINE (2u << 17)
#define MSR_TSC_DEADLINE 0x6E0u

static inline uint32_t lapic_read(uint32_t reg) {
  return *(volatile uint32_t*)(uintptr_t)(LAPIC_BASE + reg);
}
static inline void lapic_write(uint32_t reg, uint32_t v) {
  *(volatile uint32_t*)(uintptr_t)(LAPIC_BASE + reg) = v;
}
/* Bit `vector` of the 256-bit ISR/TMR/IRR array starting at `base`. */
static inline int lapic_vector_bit(uint32_t base, int vector) {
  return (lapic_read(base + 0x10 * (uint32_t)(vector / 32)) >> (vector % 32)) & 1;
}
/* Software-enables the APIC (SVR bit 8) with spurious vector 0xFF, TPR 0. */
static inline void lapic_enable(void) {
  lapic_write(LAPIC_SVR, 0x100 | 0xFF);
  lapic_write(LAPIC_TPR, 0);
}
static inline void lapic_eoi(void) {
  lapic_write(LAPIC_EOI, 0);
}

/* ---- I/O APIC at 0xFEC00000: IOREGSEL +0x00, IOWIN +0x10 ------------------ */
#define IOAPIC_BASE 0xFEC00000u
static inline uint32_t ioapic_read(uint32_t reg) {
  *(volatile uint32_t*)(uintptr_t)IOAPIC_BASE = reg;
  return *(volatile uint32_t*)(uintptr_t)(IOAPIC_BASE + 0x10);
}
static inline void ioapic_write(uint32_t reg, uint32_t v) {
  *(volatile uint32_t*)(uintptr_t)IOAPIC_BASE = reg;
  *(volatile uint32_t*)(uintptr_t)(IOAPIC_BASE + 0x10) = v;
}
#define IOAPIC_RTE_LO(pin) (0x10 + 2 * (pin))
#define IOAPIC_RTE_HI(pin) (0x11 + 2 * (pin))
#define RTE_MASKED (1u << 16)
#define RTE_LEVEL (1u << 15)
#define RTE_REMOTE_IRR (1u << 14)
#define RTE_ACTIVE_LOW (1u << 13)
#define RTE_DELIVS (1u << 12)

/* Routes `pin` to `vector` on the APIC with ID `dest` (fixed, physical). */
static inline void ioapic_route(int pin, int vector, uint32_t flags, uint8_t dest) {
  ioapic_write(IOAPIC_RTE_HI(pin), (uint32_t)dest << 24);
  ioapic_write(IOAPIC_RTE_LO(pin), (uint32_t)vector | flags);
}

/* ---- CMOS / RTC: index 0x70 (bit 7 = NMI disable), data 0x71 -------------- */
static inline uint8_t cmos_read(uint8_t reg) {
  outb(0x70, reg);
  return inb(0x71);
}
static inline void cmos_write(uint8_t reg, uint8_t v) {
  outb(0x70, reg);
  outb(0x71, v);
}

/* ---- PIT 8254: channels 0x40-0x42, mode/command 0x43 ---------------------- */
#define PIT_HZ 1193182u
static inline void pit_program(int channel, int mode, uint16_t count) {
  outb(0x43, (uint8_t)((channel << 6) | 0x30 | (mode << 1))); /* lobyte/hibyte, binary */
  outb((uint16_t)(0x40 + channel), (uint8_t)count);
  outb((uint16_t)(0x40 + channel), (uint8_t)(count >> 8));
}
/* Counter latch command, then the latched value (low, high). */
static inline uint16_t pit_read_count(int channel) {
  outb(0x43, (uint8_t)(channel << 6));
  uint8_t lo = inb((uint16_t)(0x40 + channel));
  uint8_t hi = inb((uint16_t)(0x40 + channel));
  return (uint16_t)(lo | (hi << 8));
}

/* ---- waiting ---------------------------------------------------------------- */
/* Spins with interrupts enabled until *counter >= target or `limit`
 * iterations pass; returns the final count. The bound keeps a broken device
 * from hanging the run (every emulator advances virtual time per instruction). */
static inline int wait_count(volatile int* counter, int target, uint64_t limit) {
  sti();
  for (uint64_t i = 0; i < limit && *counter < target; i++) __asm__ volatile("pause");
  cli();
  return *counter;
}
/* Spins `n` iterations with interrupts enabled (lets pending interrupts in). */
static inline void spin_sti(uint64_t n) {
  sti();
  for (uint64_t i = 0; i < n; i++) __asm__ volatile("pause");
  cli();
}
static inline uint64_t rdtsc(void) {
  uint32_t lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((uint64_t)hi << 32) | lo;
}

#define WAIT_LIMIT 50000000ull /* iterations; ~0.1-1 s under emulation */

#endif
