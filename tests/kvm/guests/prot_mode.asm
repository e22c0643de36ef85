; Real mode -> 32-bit protected mode (own GDT, far jump), then a port OUT, an
; MMIO write above RAM (0xFEB00000) and a read of RAM in the second memory
; slot (0x100000, where the test put a magic value), then HLT. Loaded at
; 0x1000 with CS=DS=ES=SS=0 (vcpu_test.cc).
org 0x1000
bits 16
start:
    cli
    lgdt [gdt_desc]
    mov eax, cr0
    or eax, 1
    mov cr0, eax
    jmp 0x08:pm
bits 32
pm:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov esp, 0x8000
    mov eax, 0x54524F50             ; "PORT"
    out 0x84, eax
    mov dword [0xFEB00000], 0x11223344
    mov eax, [0x100000]
    out 0x84, eax
    hlt
align 8
gdt:
    dq 0
    dq 0x00CF9B000000FFFF           ; 0x08: code, base 0, 4 GiB, 32-bit, accessed
    dq 0x00CF93000000FFFF           ; 0x10: data, base 0, 4 GiB, accessed
gdt_desc:
    dw gdt_desc - gdt - 1
    dd gdt
