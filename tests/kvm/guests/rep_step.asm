; REP string I/O for the single-step test of string instructions
; (vcpu_test.cc): REP OUTSB of 3 bytes to port 0x80, REP INSB of 3 bytes from
; port 0x60, REP MOVSB of 3 bytes to MMIO at 0xB0000, then HLT. Real mode,
; loaded at 0x1000.
org 0x1000
bits 16
start:
    cld
    mov si, src
    mov cx, 3
    mov dx, 0x80
    rep outsb
    mov di, dst
    mov cx, 3
    mov dx, 0x60
    rep insb
    mov ax, 0xB000
    mov es, ax
    mov si, src
    xor di, di
    mov cx, 3
    rep movsb
    hlt
src: db 0xA1, 0xA2, 0xA3
dst: db 0, 0, 0
