; Virtual-8086 mode blob and entry (32-bit guest). See v86.c.
bits 32
extern user_saved_sp
V86_BASE equ 0x8000                 ; the 16-bit code runs at 0800:0000
SCRATCH equ 0x6000

section .data
global v86_offsets
v86_offsets:                        ; IPs (offsets from V86_BASE) the C side checks
    dw v86_int - v86_blob
    dw v86_after_int - v86_blob
    dw v86_out - v86_blob
    dw v86_exit - v86_blob
    dw v86_pushf - v86_blob

section .text
; v86_run(uint32_t eflags): enters v86 mode at 0800:0000 through IRETD with
; EFLAGS.VM (SDM vol. 3 20.2.5 "Entering Virtual-8086 Mode"); comes back when
; the #GP hook (HLT at v86_exit) resumes at user_return_stub, which restores
; the registers saved here (same layout as user_call).
global v86_run
v86_run:
    push ebp
    push ebx
    push esi
    push edi
    mov [user_saved_sp], esp
    mov ebx, [esp + 20]
    mov esi, v86_blob
    mov edi, V86_BASE
    mov ecx, v86_blob_end - v86_blob
    cld
    rep movsb
    or ebx, 0x20002                 ; VM | reserved bit 1
    push dword 0                    ; GS
    push dword 0                    ; FS
    push dword 0                    ; DS
    push dword 0                    ; ES
    push dword 0                    ; SS
    push dword 0x7000               ; ESP
    push ebx                        ; EFLAGS
    push dword V86_BASE >> 4        ; CS
    push dword 0                    ; EIP
    iretd

bits 16
v86_blob:
    mov ax, cs
    mov [SCRATCH + 0], ax
    mov ax, 0x0650                  ; 0650:0010 is linear 0x6510
    mov ds, ax
    mov word [0x10], 0xBEEF
    xor ax, ax
    mov ds, ax
    mov ax, [0x6510]
    mov [SCRATCH + 2], ax
v86_pushf:
    pushf                           ; IOPL-sensitive: #GP(0) with IOPL < 3
    pop ax
    mov [SCRATCH + 8], ax           ; FLAGS as v86 code sees them (IOPL 3 only)
v86_int:
    int 0x30                        ; IOPL 3: through the IDT; IOPL < 3: #GP(0)
v86_after_int:
    mov word [SCRATCH + 4], 0x1111
    mov dx, 0x3FF
    mov al, 0x5A
v86_out:
    out dx, al                      ; always checked against the TSS I/O bitmap
    mov word [SCRATCH + 6], 0x2222
v86_exit:
    hlt                             ; privileged at CPL 3: #GP(0), the way out
v86_blob_end:

section .note.GNU-stack noalloc noexec nowrite progbits
