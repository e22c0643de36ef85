; A long-running guest for replay_bench: about 1.0e9 steps of an xorshift
; loop that adds into a 256 KiB table (so checkpoints see dirty pages spread
; over 64 pages), with one byte written to the debug console (port 0xE9)
; every 65,536 iterations (trace events all along the run), then exit 0
; through isa-debug-exit. A 32-bit multiboot kernel.
bits 32

section .multiboot
align 4
  dd 0x1BADB002
  dd 0x00000003
  dd -(0x1BADB002 + 3)

section .text
global _start
_start:
  mov esp, stack_top
  mov ecx, 64000000
  mov eax, 2463534242
.loop:
  mov edx, eax
  shl edx, 13
  xor eax, edx
  mov edx, eax
  shr edx, 17
  xor eax, edx
  mov edx, eax
  shl edx, 5
  xor eax, edx
  mov ebx, eax
  and ebx, 0x3FFFC
  add [table + ebx], eax
  test ecx, 0xFFFF
  jnz .skip
  out 0xE9, al
.skip:
  dec ecx
  jnz .loop
  xor eax, eax
  out 0xF4, eax
.spin:
  jmp .spin

section .bss
align 4096
table:
  resb 0x40000
  resb 4096
stack_top:
