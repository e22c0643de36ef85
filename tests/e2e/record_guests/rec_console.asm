; The serial console's guest: sets COM1 up as a driver does (8N1, FIFO on,
; DTR RTS OUT2), prints "ready>" without a newline, then prints every byte it
; receives as "[hh]" (hex), polling LSR.DR. A 'q' prints " bye" and exits with
; value 0x21 (status 0x43); it otherwise runs until ttvm ends it.
%include "rec.inc"
global _start
section .text
_start:
  mov esp, stack_top
  mov dx, 0x3FB
  mov al, 0x03                ; LCR: 8N1
  out dx, al
  mov dx, 0x3FA
  mov al, 0x07                ; FCR: FIFO on, both cleared
  out dx, al
  mov dx, 0x3FC
  mov al, 0x0B                ; MCR: DTR RTS OUT2 (ready to receive)
  out dx, al
  mov esi, ready
  call serial_puts
.poll:
  mov dx, 0x3FD
  in al, dx
  test al, 0x01
  jz .poll
  mov dx, 0x3F8
  in al, dx
  mov bl, al
  movzx eax, bl
  shr eax, 4
  mov al, [hexdigits + eax]
  mov [buf + 1], al
  movzx eax, bl
  and eax, 15
  mov al, [hexdigits + eax]
  mov [buf + 2], al
  mov esi, buf
  call serial_puts
  cmp bl, 'q'
  jne .poll
  mov esi, bye
  call serial_puts
  EXIT 0x21
section .rodata
ready: db "ready>", 0
bye: db " bye", 10, 0
hexdigits: db "0123456789abcdef"
section .data
buf: db "[xx]", 0
section .bss
  resb 4096
stack_top:
