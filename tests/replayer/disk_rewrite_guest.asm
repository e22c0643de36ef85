; The guest of disk_replay_test's checkpoint test: a boot sector that reads
; a disk sector, writes other bytes over it and reads it again, through the
; primary IDE channel (LBA28, polling, REP INSW / REP OUTSW).
;
;   READ SECTORS of LBA 5 (from the image);
;   WRITE SECTORS of LBA 5: the bytes read, each word plus one;
;   READ SECTORS of LBA 5 again (the disk's overlay serves it).
;
; The word sum of both blocks read (mod 2^16) is kept at SUM (twice the
; sector's sum plus 256; plus 768 for a replay whose first read saw the
; written bytes) and ends in AX; its low byte goes to isa-debug-exit. A
; replay that seeks back to before the first read must read the image's
; bytes there again, not the ones written after it. Interrupts stay off.
bits 16
org 0x7c00
LBA    equ 5
BUF    equ 0x8000
SUM    equ 0x600

start:
  cli
  xor ax, ax
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov sp, 0x7c00
  cld
  mov word [SUM], 0
  mov bx, 0x0100 | LBA          ; read LBA 5 (one sector)
  mov al, 0x20
  call command
  call read_block
  mov bx, BUF                   ; add one to every word of it
  mov cx, 256
.change:
  inc word [bx]
  add bx, 2
  loop .change
  mov bx, 0x0100 | LBA          ; write it back to LBA 5
  mov al, 0x30
  call command
  call write_block
  mov bx, 0x0100 | LBA          ; and read LBA 5 again
  mov al, 0x20
  call command
  call read_block
  jmp exit_with_sum

%include "disk_guest_io.inc"

times 510 - ($ - $$) db 0
dw 0xaa55
