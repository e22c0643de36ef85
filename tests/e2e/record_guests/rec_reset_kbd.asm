; Resets the machine through the keyboard controller (0x64 <- 0xFE).
%include "rec.inc"
global _start
section .text
_start:
.wait:
  in al, 0x64
  test al, 2                   ; input buffer full?
  jnz .wait
  mov al, 0xFE
  out 0x64, al
  cli
  hlt
