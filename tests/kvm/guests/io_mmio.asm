; Real-mode guest of the KVM layer's tests (vcpu_test.cc), loaded at 0x1000
; with CS=DS=ES=SS=0: port OUT of each size, IN, REP OUTSB, REP INSB, MMIO
; writes of each size in the hole at 0xB0000 and an MMIO read, then HLT.
org 0x1000
bits 16
start:
    mov dx, 0x3F8
    mov al, 'K'
    out dx, al                      ; out 0x3f8, byte 'K'
    mov ax, 0x1234
    out 0x80, ax                    ; out 0x80, word
    mov eax, 0xDEADBEEF
    out 0x84, eax                   ; out 0x84, dword
    in al, 0x60                     ; the test answers 0x41
    inc al
    out 0x61, al                    ; 0x42
    cld
    mov si, msg
    mov cx, msg_len
    mov dx, 0x3F8
    rep outsb                       ; "hello"
    mov di, buf
    mov cx, 4
    mov dx, 0x62
    rep insb                        ; the test answers 1, 2, 3, 4
    mov eax, [buf]
    out 0x84, eax                   ; 0x04030201
    mov ax, 0xB000
    mov es, ax
    mov byte [es:0x10], 0x5A        ; MMIO write 0xB0010, 1 byte
    mov word [es:0x20], 0xBEEF      ; 0xB0020, 2 bytes
    mov dword [es:0x30], 0x01020304 ; 0xB0030, 4 bytes
    mov eax, [es:0x40]              ; MMIO read 0xB0040: the test answers 0xCAFEF00D
    out 0x84, eax
    hlt
msg: db 'hello'
msg_len equ $ - msg
align 4
buf: dd 0
