; Spins forever (for step limits, timeouts, signals).
%include "rec.inc"
global _start
section .text
_start:
  xor ecx, ecx
.spin:
  inc ecx
  jmp .spin
