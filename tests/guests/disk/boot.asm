; The raw-disk guest's boot sector (sector 0 of the primary master). A PC
; BIOS (or ttvm without a kernel) loads it at 0000:7C00 in real mode with
; DL = 0x80. It reads the kernel, KERNEL_SECTORS sectors from LBA 1 of the
; same disk, to 0000:8000 through the IDE ports (LBA28 READ SECTORS,
; polling BSY/DRQ, REP INSW), and jumps to it. No BIOS service is used.
bits 16
org 0x7C00

KERNEL_SECTORS equ 16
KERNEL_ADDR equ 0x8000
IDE equ 0x1F0

start:
  cli
  xor ax, ax
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov sp, 0x7C00
  cld
  cmp dl, 0x80               ; booted from the first hard disk
  jne fail
  mov si, msg_boot
  call puts
  ; LBA28 READ SECTORS: KERNEL_SECTORS sectors from LBA 1, master.
  call wait_ready
  mov dx, IDE + 2
  mov al, KERNEL_SECTORS
  out dx, al
  inc dx                     ; LBA 0-7
  mov al, 1
  out dx, al
  inc dx                     ; LBA 8-15
  xor al, al
  out dx, al
  inc dx                     ; LBA 16-23
  out dx, al
  inc dx                     ; device: LBA, master, LBA 24-27 = 0
  mov al, 0xE0
  out dx, al
  inc dx
  mov al, 0x20               ; READ SECTORS
  out dx, al
  mov di, KERNEL_ADDR
  mov bx, KERNEL_SECTORS
.sector:
  mov dx, IDE + 7
.poll:
  in al, dx
  test al, 0x80              ; BSY
  jnz .poll
  test al, 0x01              ; ERR
  jnz fail
  test al, 0x08              ; DRQ
  jz .poll
  mov dx, IDE
  mov cx, 256
  rep insw
  dec bx
  jnz .sector
  mov si, msg_loaded
  call puts
  mov dl, 0x80
  jmp 0:KERNEL_ADDR

wait_ready:
  mov dx, IDE + 7
.w:
  in al, dx
  test al, 0x80
  jnz .w
  test al, 0x40              ; DRDY
  jz .w
  ret

; Prints the zero-terminated string at DS:SI on COM1 (polling THRE).
puts:
  lodsb
  test al, al
  jz .done
  mov ah, al
  mov dx, 0x3FD
.thre:
  in al, dx
  test al, 0x20
  jz .thre
  mov dx, 0x3F8
  mov al, ah
  out dx, al
  jmp puts
.done:
  ret

fail:
  mov si, msg_fail
  call puts
  mov ax, 0x7F
  out 0xF4, ax
.spin:
  hlt
  jmp .spin

msg_boot: db "boot: loading the kernel from the primary master", 13, 10, 0
msg_loaded: db "boot: kernel loaded", 13, 10, 0
msg_fail: db "boot: disk error", 13, 10, 0

times 510 - ($ - $$) db 0
dw 0xAA55
