; HLT with interrupts disabled: hangs forever.
%include "rec.inc"
global _start
section .text
_start:
  cli
  hlt
  jmp _start
