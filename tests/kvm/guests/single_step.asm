; Straight-line real-mode code for the single-step test (vcpu_test.cc): a
; port OUT, an MMIO write, a port IN and an MMIO write of what it read, each
; followed by an instruction that does not exit. The test expects a #DB trap
; after every instruction, after the exit of those that leave the CPU, with
; the next instruction's address (the case KVM once missed).
org 0x1000
bits 16
start:
    mov al, 0x11
    out 0x80, al
    mov bx, 0xB000
    mov es, bx
    mov byte [es:0], al
    nop
    in al, 0x60
    mov [es:4], al
    inc ax
    hlt
