; Prints a line and exits through isa-debug-exit with value 0x21 (status 0x43).
%include "rec.inc"
global _start
section .text
_start:
  mov esp, stack_top
  cmp eax, 0x2BADB002         ; multiboot magic from the loader
  jne .bad
  mov esi, hello
  call serial_puts
  EXIT 0x21
.bad:
  EXIT 0x7F
section .rodata
hello: db "hello from rec_exit", 10, 0
section .bss
  resb 4096
stack_top:
