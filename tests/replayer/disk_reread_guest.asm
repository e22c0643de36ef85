; The guest of disk_replay_test: a boot sector that reads disk sectors
; through the primary IDE channel (LBA28, polling, REP INSW), some of them
; many times, so that the test can count what the trace keeps of them.
;
;   ROUNDS times READ SECTORS of LBA 1 (one sector);
;   once READ SECTORS of LBA 2-3 (two DRQ blocks in one command);
;   WRITE SECTORS of LBA 4 (the last block read), then LBA 4 read back
;   (the controller's overlay serves it: not from the image).
;
; The word sum of every block read (mod 2^16) is kept at SUM; its low byte
; goes to isa-debug-exit. Interrupts stay off (the IRQ 14 requests are
; never taken).
bits 16
org 0x7c00
ROUNDS equ 8
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
  mov bp, ROUNDS
.again:
  mov bx, 0x0101                ; bh = count 1, bl = LBA 1
  mov al, 0x20
  call command
  call read_block
  dec bp
  jnz .again
  mov bx, 0x0202                ; LBA 2, two sectors
  mov al, 0x20
  call command
  call read_block
  call read_block
  mov bx, 0x0104                ; write LBA 4 from BUF
  mov al, 0x30
  call command
  call write_block
  mov bx, 0x0104                ; and read it back
  mov al, 0x20
  call command
  call read_block
  jmp exit_with_sum

%include "disk_guest_io.inc"

times 510 - ($ - $$) db 0
dw 0xaa55
