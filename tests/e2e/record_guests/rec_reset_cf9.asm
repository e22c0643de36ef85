; Resets the machine through the reset control register at 0xCF9.
%include "rec.inc"
global _start
section .text
_start:
  mov dx, 0xCF9
  mov al, 0x02
  out dx, al
  mov al, 0x06
  out dx, al
  cli
  hlt
