; A flat real-mode binary (loaded with --load-addr 0x7c00 --mode real, or
; as a boot sector): checks the BIOS data area's memory size and the IVT's
; IRET stub, prints over COM1 with BIOS-less code, exits with value 0x11.
bits 16
org 0x7C00
start:
  xor ax, ax
  mov ds, ax
  cmp word [0x413], 639        ; base memory in KiB
  jne bad
  cmp word [0x08*4 + 2], 0xF000 ; IRQ 0 vector points into the BIOS segment
  jne bad
  mov si, msg
.next:
  lodsb
  test al, al
  jz .done
  mov dx, 0x3F8
  out dx, al
  jmp .next
.done:
  mov eax, 0x11
  out 0xF4, eax
bad:
  mov eax, 0x7F
  out 0xF4, eax
  jmp bad
msg: db "real mode ok", 10, 0
times 510 - ($ - $$) db 0
dw 0xAA55
