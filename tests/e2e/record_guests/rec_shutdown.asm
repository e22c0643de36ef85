; Writes "Shutdown" to port 0x8900 (Bochs/QEMU power-off).
%include "rec.inc"
global _start
section .text
_start:
  mov esi, word_
  mov dx, 0x8900
.next:
  lodsb
  test al, al
  jz .done
  out dx, al
  jmp .next
.done:
  cli
  hlt
section .rodata
word_: db "Shutdown", 0
