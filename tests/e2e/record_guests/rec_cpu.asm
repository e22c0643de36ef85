; CPU-bound guest for the recording benchmark: 10,000,000 iterations of an
; xorshift loop in registers and a small memory array, no I/O, then exit 0.
%include "rec.inc"
global _start
section .text
_start:
  mov esp, stack_top
  mov ecx, 10000000
  mov eax, 2463534242
  xor edi, edi
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
  and ebx, 1023
  add [table + ebx*4], eax
  dec ecx
  jnz .loop
  EXIT 0
section .bss
table: resd 1024
  resb 4096
stack_top:
