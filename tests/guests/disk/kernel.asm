; The raw-disk guest's kernel: 16-bit real mode at 0000:8000, loaded by
; boot.asm from the primary master. It reads the primary slave, which holds
; a tiny file system (TTFS, written by mkfs.py), through the IDE ports:
;   - IDENTIFY DEVICE: the slave's capacity must match the superblock's, and
;     LBA48 must be supported;
;   - the superblock with LBA48 READ SECTORS EXT (polling);
;   - the directory with READ SECTORS, waiting in HLT for IRQ 14 (through the
;     8259s, IVT vector 0x76) after clearing nIEN;
;   - every file with READ MULTIPLE (after SET MULTIPLE MODE 4), checking
;     its FNV-1a hash against the directory entry, printing hello.txt;
;   - a WRITE SECTORS to the slave's last (scratch) sector, read back.
; It reports over COM1 and exits through isa-debug-exit with 0x31 (status
; 0x63), or 0x7F after printing what failed.
bits 16
org 0x8000

IDE equ 0x1F0
IDE_CTL equ 0x3F6
SB equ 0x0600                ; superblock
DIR equ 0x0800               ; directory sector
IDBUF equ 0x0A00             ; IDENTIFY data
WBUF equ 0x0C00              ; the sector written
RBUF equ 0x0E00              ; and read back
FILESEG equ 0x2000           ; file contents at 2000:0000
IRQ14_VECTOR equ 0x76        ; the slave 8259 at 0x70 (as a PC BIOS leaves it)

start:
  xor ax, ax
  mov ds, ax
  mov es, ax
  cld
  mov si, msg_kernel
  call puts

  ; IDENTIFY DEVICE on the slave.
  mov al, 0xB0
  call select
  mov dx, IDE + 7
  mov al, 0xEC
  out dx, al
  call wait_drq
  mov di, IDBUF
  mov cx, 256
  mov dx, IDE
  rep insw
  test word [IDBUF + 83 * 2], 1 << 10
  mov si, err_lba48
  jz fail

  ; The superblock: LBA48 READ SECTORS EXT, LBA 0, 1 sector.
  xor eax, eax
  mov cx, 1
  mov di, SB
  call read_ext
  mov si, SB
  mov di, magic
  mov cx, 8
  repe cmpsb
  mov si, err_magic
  jne fail
  mov eax, [IDBUF + 60 * 2]  ; LBA28 capacity (words 60-61)
  cmp eax, [SB + 16]
  mov si, err_capacity
  jne fail
  mov si, msg_capacity
  call puts
  mov eax, [SB + 16]
  call putdec
  mov si, msg_sectors
  call puts

  ; The directory: READ SECTORS, interrupt-driven.
  call read_dir

  ; Every file: READ MULTIPLE, FNV-1a.
  mov al, 0xF0
  call select
  mov dx, IDE + 2
  mov al, 4
  out dx, al
  mov dx, IDE + 7
  mov al, 0xC6               ; SET MULTIPLE MODE: 4 sectors per block
  out dx, al
  call wait_ready
  mov si, err_multiple
  test al, 0x01
  jnz fail
  mov bx, DIR
  mov bp, [SB + 8]           ; file count
.file:
  test bp, bp
  jz .files_done
  call check_file
  add bx, 32
  dec bp
  jmp .file
.files_done:
  mov si, msg_files
  call puts

  call write_test
  mov si, msg_done
  call puts
  mov ax, 0x31
  out 0xF4, ax
.spin:
  hlt
  jmp .spin

; ---- the directory, interrupt-driven -----------------------------------------
read_dir:
  cli
  mov word [IRQ14_VECTOR * 4], irq14
  mov word [IRQ14_VECTOR * 4 + 2], 0
  in al, 0xA1                ; unmask IRQ 14 on the slave 8259 ...
  and al, ~(1 << 6)
  out 0xA1, al
  in al, 0x21                ; ... and the cascade on the master
  and al, ~(1 << 2)
  out 0x21, al
  mov byte [irq_count], 0
  mov al, 0xF0
  call select
  mov dx, IDE_CTL
  xor al, al                 ; nIEN clear: the drive may interrupt
  out dx, al
  mov eax, [SB + 12]         ; directory LBA
  mov cl, 1
  call set_count_lba
  mov dx, IDE + 7
  mov al, 0x20               ; READ SECTORS
  out dx, al
.wait:
  cli
  cmp byte [irq_count], 0
  jne .got
  sti
  hlt                        ; IRQ 14 wakes us
  jmp .wait
.got:
  ; An IRQ 14 that finds the drive still busy is not this command's: the
  ; polled reads before left the drive's interrupt latched in the masked
  ; 8259, and it is delivered at the first STI after the unmask. A drive
  ; that completes its reads at once (ttvm's) has DRQ set by then; QEMU's
  ; completes them asynchronously, so under load it is still BSY. Wait for
  ; the interrupt that ends the command (ATA-6 9.2: BSY clear).
  test byte [irq_status], 0x80
  jz .done
  mov byte [irq_count], 0
  jmp .wait
.done:
  sti
  test byte [irq_status], 0x01
  mov si, err_dir
  jnz fail
  test byte [irq_status], 0x08
  jz fail
  mov di, DIR
  mov cx, 256
  mov dx, IDE
  rep insw
  mov si, msg_irq
  call puts
  ret

irq14:
  push ax
  push dx
  mov dx, IDE + 7            ; reading status acknowledges the drive
  in al, dx
  mov [cs:irq_status], al
  inc byte [cs:irq_count]
  mov al, 0x20               ; EOI to both 8259s
  out 0xA0, al
  out 0x20, al
  pop dx
  pop ax
  iret

; ---- one file: BX = its directory entry ---------------------------------------
check_file:
  mov byte [is_hello], 0
  mov si, bx
  mov di, hello_name
  mov cx, 10
  repe cmpsb
  jne .named
  mov byte [is_hello], 1
.named:
  mov si, msg_file
  call puts
  mov si, bx
  call puts                  ; the name (zero-padded to 16 bytes)
  ; sectors = ceil(size / 512)
  mov eax, [bx + 20]
  add eax, 511
  shr eax, 9
  mov cx, ax
  mov eax, [bx + 16]         ; LBA
  push es
  mov dx, FILESEG
  mov es, dx
  xor di, di
  jcxz .read                 ; an empty file has no sector to read
  call read_multiple
.read:
  ; FNV-1a over `size` bytes at FILESEG:0.
  mov ecx, [bx + 20]
  xor si, si
  mov edx, 0x811C9DC5
.hash:
  jecxz .hashed
  movzx eax, byte [es:si]
  xor edx, eax
  imul edx, edx, 0x01000193
  inc si
  dec ecx
  jmp .hash
.hashed:
  cmp edx, [bx + 24]
  mov si, err_hash
  jne fail
  mov si, msg_bytes
  call puts
  mov eax, [bx + 20]
  call putdec
  mov si, msg_ok
  call puts
  ; hello.txt is printed.
  cmp byte [is_hello], 0
  je .out
  mov ecx, [bx + 20]
  xor si, si
.print:
  mov al, [es:si]
  call putc
  inc si
  loop .print
.out:
  pop es
  ret

; READ MULTIPLE on the slave: EAX = LBA, CX = sectors (<= 127), to ES:DI.
read_multiple:
  push bx
  push eax
  mov al, 0xF0
  call select
  pop eax
  mov bx, cx
  call set_count_lba
  shr eax, 24
  and al, 0x0F
  or al, 0xF0                ; LBA, slave, LBA 27-24
  mov dx, IDE + 6
  out dx, al
  inc dx
  mov al, 0xC4
  out dx, al
.block:
  call wait_drq
  mov cx, bx
  cmp cx, 4
  jbe .n
  mov cx, 4
.n:
  sub bx, cx
  shl cx, 8                  ; words
  mov dx, IDE
  rep insw
  test bx, bx
  jnz .block
  pop bx
  ret

; LBA48 READ SECTORS EXT on the slave: EAX = LBA (< 2^32), CX = sectors, to ES:DI.
read_ext:
  push eax
  mov al, 0x50
  call select
  pop eax
  mov dx, IDE + 2
  push ax
  mov al, ch                 ; count 15-8
  out dx, al
  pop ax
  push eax
  shr eax, 24
  inc dx
  out dx, al                 ; LBA 31-24
  xor al, al
  inc dx
  out dx, al                 ; LBA 39-32
  inc dx
  out dx, al                 ; LBA 47-40
  pop eax
  call set_count_lba         ; count 7-0, LBA 23-0
  mov dx, IDE + 7
  mov al, 0x24
  out dx, al
  mov bx, cx
.sector:
  call wait_drq
  mov cx, 256
  mov dx, IDE
  rep insw
  dec bx
  jnz .sector
  ret

; ---- a write to the slave's scratch sector, read back ------------------------
write_test:
  mov di, WBUF
  mov cx, 512
  mov al, 0x5A
.fill:
  stosb
  add al, 3
  loop .fill
  mov al, 0xF0
  call select
  mov eax, [SB + 16]
  dec eax                    ; the last sector
  mov [scratch_lba], eax
  mov cl, 1
  call set_count_lba
  mov dx, IDE + 7
  mov al, 0x30               ; WRITE SECTORS
  out dx, al
  call wait_drq
  mov si, WBUF
  mov cx, 256
  mov dx, IDE
  rep outsw
  call wait_ready
  mov si, err_write
  test al, 0x21              ; ERR, DF
  jnz fail
  mov dx, IDE + 7
  mov al, 0xE7               ; FLUSH CACHE
  out dx, al
  call wait_ready
  mov eax, [scratch_lba]
  mov cx, 1
  mov di, RBUF
  call read_ext
  mov si, WBUF
  mov di, RBUF
  mov cx, 512
  repe cmpsb
  mov si, err_readback
  jne fail
  mov si, msg_write
  call puts
  ret

; ---- the drive ----------------------------------------------------------------
; Writes CL to the sector count and EAX bits 23-0 to LBA low, mid and high
; (for LBA48: the low-order half). EAX is kept.
set_count_lba:
  push eax
  mov dx, IDE + 2
  push ax
  mov al, cl
  out dx, al
  pop ax
  inc dx
  out dx, al
  shr eax, 8
  inc dx
  out dx, al
  shr eax, 8
  inc dx
  out dx, al
  pop eax
  ret

; Selects a drive (AL = device register value) once it is not busy.
select:
  mov dx, IDE + 6
  out dx, al
  ; fall through
; Waits for BSY clear and DRDY; AL = status.
wait_ready:
  mov dx, IDE + 7
.w:
  in al, dx
  test al, 0x80
  jnz .w
  test al, 0x40
  jz .w
  ret

; Waits for DRQ (fails on ERR).
wait_drq:
  mov dx, IDE + 7
.w:
  in al, dx
  test al, 0x80
  jnz .w
  test al, 0x01
  jnz .err
  test al, 0x08
  jz .w
  ret
.err:
  mov si, err_drive
  jmp fail

; ---- output -------------------------------------------------------------------
putc:
  push dx
  push ax
  mov dx, 0x3FD
.thre:
  in al, dx
  test al, 0x20
  jz .thre
  pop ax
  mov dx, 0x3F8
  out dx, al
  pop dx
  ret

puts:
  push ax
.next:
  lodsb
  test al, al
  jz .done
  call putc
  jmp .next
.done:
  pop ax
  ret

; Prints EAX in decimal.
putdec:
  push ebx
  push ecx
  push edx
  mov ebx, 10
  xor cx, cx
.div:
  xor edx, edx
  div ebx
  push dx
  inc cx
  test eax, eax
  jnz .div
.out:
  pop ax
  add al, '0'
  call putc
  loop .out
  pop edx
  pop ecx
  pop ebx
  ret

fail:
  push si
  mov si, msg_fail
  call puts
  pop si
  call puts
  mov si, crlf
  call puts
  mov ax, 0x7F
  out 0xF4, ax
.spin:
  hlt
  jmp .spin

magic: db "TTFS0001"
hello_name: db "hello.txt", 0
msg_kernel: db "kernel: running from 0x8000", 13, 10, 0
msg_capacity: db "kernel: slave disk: TTFS, ", 0
msg_sectors: db " sectors (IDENTIFY agrees)", 13, 10, 0
msg_irq: db "kernel: directory read on IRQ 14", 13, 10, 0
msg_file: db "kernel: file ", 0
msg_bytes: db ": ", 0
msg_ok: db " bytes, hash ok", 13, 10, 0
msg_files: db "kernel: all files ok", 13, 10, 0
msg_write: db "kernel: scratch sector written and read back", 13, 10, 0
msg_done: db "kernel: done", 13, 10, 0
msg_fail: db "kernel: FAILED: ", 0
crlf: db 13, 10, 0
err_lba48: db "IDENTIFY: no LBA48", 0
err_magic: db "superblock magic", 0
err_capacity: db "IDENTIFY capacity differs from the superblock", 0
err_dir: db "directory read", 0
err_multiple: db "SET MULTIPLE MODE", 0
err_hash: db "file hash", 0
err_write: db "write", 0
err_readback: db "read-back differs", 0
err_drive: db "drive error", 0

is_hello: db 0
irq_count: db 0
irq_status: db 0
align 4
scratch_lba: dd 0
