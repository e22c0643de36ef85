; Reads the machine's own clocks and IDs in a loop, as a kernel's lock or
; scheduler path does: 1,000,000 iterations of a local APIC ID read (MMIO
; 0xFEE00020) and an RDTSC, nothing from outside the machine. Exits 0 when
; every ID read gave the first one's value and the TSC never went backwards,
; else 1. The recorder logs none of these answers (format 1.3: replay
; computes them); with --log-device-reads it logs 2,000,000.
%include "rec.inc"
global _start
section .text
_start:
  mov esp, stack_top
  mov ecx, 1000000
  mov esi, [0xFEE00020]       ; the ID every later read must match
  rdtsc
  mov ebp, edx                ; EBP:EDI = the previous TSC
  mov edi, eax
.loop:
  mov ebx, [0xFEE00020]
  cmp ebx, esi
  jne .bad
  rdtsc
  cmp edx, ebp
  jb .bad
  ja .later
  cmp eax, edi
  jb .bad
.later:
  mov ebp, edx
  mov edi, eax
  dec ecx
  jnz .loop
  EXIT 0
.bad:
  EXIT 1
section .bss
  resb 4096
stack_top:
