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
  call wait_drq
  mov si, BUF
  mov cx, 256
  mov dx, 0x1f0
  rep outsw
  call wait_ready
  mov bx, 0x0104                ; and read it back
  mov al, 0x20
  call command
  call read_block
  mov ax, [SUM]
  mov dx, 0xf4
  out dx, al
.hang:
  hlt
  jmp .hang

; al = command, bl = LBA (0-255), bh = sector count
command:
  push ax
  call wait_ready
  mov dx, 0x1f6
  mov al, 0xe0                  ; LBA, master, LBA bits 27-24 = 0
  out dx, al
  mov dx, 0x1f2
  mov al, bh
  out dx, al
  mov dx, 0x1f3
  mov al, bl
  out dx, al
  mov dx, 0x1f4
  xor al, al
  out dx, al
  mov dx, 0x1f5
  out dx, al
  mov dx, 0x1f7
  pop ax
  out dx, al
  ret

; One 512-byte DRQ block into BUF, added to SUM.
read_block:
  call wait_drq
  mov di, BUF
  mov cx, 256
  mov dx, 0x1f0
  rep insw
  mov bx, BUF
  mov cx, 256
.sum:
  mov ax, [bx]
  add [SUM], ax
  add bx, 2
  loop .sum
  ret

wait_ready:
  mov dx, 0x1f7
.w:
  in al, dx
  test al, 0x80
  jnz .w
  ret

wait_drq:
  mov dx, 0x1f7
.w:
  in al, dx
  test al, 0x80
  jnz .w
  test al, 0x08
  jz .w
  ret

times 510 - ($ - $$) db 0
dw 0xaa55
