; A two-sector disk image that boots (sector 0 at 0x7c00, real mode) and
; reads its sector 1 twice through the primary master's IDE ports (LBA28
; READ SECTORS, polling), about 4 million steps apart, then compares the
; two copies and prints "same" or "differ"; exit value 0x21 when they are
; the same. The trace logs the sector once, at the first read: the second is
; answered from what the replay read before. A slice cut between the two
; reads must carry the sector itself (tests/e2e/slice_e2e_test.cc).
bits 16
org 0x7C00
start:
  cli
  xor ax, ax
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov sp, 0x7C00
  mov di, 0x8000
  call read_sector1
  mov ecx, 2000000
.spin:
  dec ecx
  jnz .spin
  mov di, 0x8200
  call read_sector1
  mov si, 0x8000
  mov di, 0x8200
  mov cx, 256
  cld
  repe cmpsw
  mov si, msg_same
  mov ebx, 0x21
  je .print
  mov si, msg_differ
  mov ebx, 0x7F
.print:
  lodsb
  test al, al
  jz .done
  mov dx, 0x3F8
  out dx, al
  jmp .print
.done:
  mov eax, ebx
  out 0xF4, eax
.halt:
  jmp .halt

; Reads LBA 1 of the primary master into ES:DI.
read_sector1:
  mov dx, 0x1F6
  mov al, 0xE0               ; LBA, master, LBA 27-24 = 0
  out dx, al
  mov dx, 0x1F2
  mov al, 1                  ; one sector
  out dx, al
  inc dx
  out dx, al                 ; LBA 7-0 = 1
  inc dx
  xor al, al
  out dx, al                 ; LBA 15-8
  inc dx
  out dx, al                 ; LBA 23-16
  mov dx, 0x1F7
  mov al, 0x20               ; READ SECTORS
  out dx, al
.wait:
  in al, dx
  test al, 0x80              ; BSY
  jnz .wait
  test al, 0x08              ; DRQ
  jz .wait
  mov dx, 0x1F0
  mov cx, 256
  rep insw
  ret

msg_same: db "same", 10, 0
msg_differ: db "differ", 10, 0
times 510 - ($ - $$) db 0
dw 0xAA55
; Sector 1: a pattern (byte i = i * 7 + 3).
%assign i 0
%rep 512
  db (i * 7 + 3) & 0xFF
%assign i i + 1
%endrep
