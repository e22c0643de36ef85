// Shared declarations of the ttvm demo kernel (freestanding, x86-64).
#ifndef TTVM_DEMO_H
#define TTVM_DEMO_H

// Keep frame pointers so that `ttvm replay --backtrace` and gdb can walk the
// stack, and keep the byte-copy loops as written (no calls to memcpy).
#pragma GCC optimize("no-omit-frame-pointer", "no-tree-loop-distribute-patterns")

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Saved state on interrupt entry, lowest address first (see boot.asm).
struct InterruptFrame {
  uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
  uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
  uint64_t vector;
  uint64_t error_code;  // 0 where the CPU pushes none
  uint64_t rip, cs, rflags, rsp, ss;
};

// kernel.c
void kprintf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void panic(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
uint64_t timer_ticks(void);

// workload.c
void workload_run(void);

static inline void outb(uint16_t port, uint8_t value) {
  __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}
static inline uint8_t inb(uint16_t port) {
  uint8_t value;
  __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
  return value;
}

#endif
