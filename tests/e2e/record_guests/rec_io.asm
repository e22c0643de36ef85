; I/O-heavy guest for the recording benchmark: 1,000,000 port I/O operations
; (500,000 OUT + 500,000 IN on pc-testdev's latch at 0xE0), then exit 0.
%include "rec.inc"
global _start
section .text
_start:
  mov ecx, 500000
  xor eax, eax
.loop:
  out 0xE0, eax
  in eax, 0xE0
  inc eax
  dec ecx
  jnz .loop
  cmp eax, 500000
  jne .bad
  EXIT 0
.bad:
  EXIT 1
