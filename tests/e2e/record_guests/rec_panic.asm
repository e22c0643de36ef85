; Reports a panic through pvpanic (port 0x505).
%include "rec.inc"
global _start
section .text
_start:
  mov esi, msg
  call serial_puts
  mov dx, 0x505
  in al, dx                    ; capabilities: bit 0 = panicked supported
  test al, 1
  jz .bad
  mov al, 1
  out dx, al
  hlt
.bad:
  EXIT 0x7F
section .rodata
msg: db "guest panic", 10, 0
