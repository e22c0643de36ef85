; 64-bit guest entered directly in long mode by the test (vcpu_test.cc),
; which builds identity page tables with 2 MiB pages (RAM at 0, MMIO at
; 0xFEA00000-0xFEBFFFFF): a port OUT, an MMIO write and read through paging,
; a RAM write in the second memory slot, then HLT. Loaded at 0x1000.
org 0x1000
bits 64
start:
    mov eax, 0x34365F4C             ; "L_64"
    out 0x84, eax
    mov rbx, 0xFEB00000
    mov dword [rbx + 8], 0x55667788
    mov eax, [rbx + 0x10]           ; the test answers 0x0BADCAFE
    out 0x84, eax
    mov rcx, 0x100000
    mov qword [rcx + 8], rax        ; RAM of slot 1, through a 2 MiB page
    hlt
