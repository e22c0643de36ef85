; Mode switches as kernels do them (32-bit guest): protected -> long (64-bit)
; -> compatibility -> protected (IA-32e off) -> 16-bit protected -> real mode
; (own IVT, no BIOS) -> protected. SDM vol. 3, 9.8.5 "Initializing IA-32e
; Mode" and 9.8.5.4 "Switching Out of IA-32e Mode Operation", 9.9.2
; "Switching Back to Real-Address Mode", 9.9.1 "Switching to Protected Mode",
; 20.1 "Real-Address Mode" (linear = segment * 16 + offset; INT pushes FLAGS,
; CS, IP and vectors through the IVT at IDTR.base).
bits 32

section .bss
align 4096
ms_pml4: resb 4096
ms_pdpt: resb 4096
ms_pd:   resb 4096

section .data
global ms_result
ms_result:
    times 16 dd 0       ; see mode_switch.c for the layout
saved_esp: dd 0
saved_idtr: dw 0
            dd 0

RM_BASE equ 0x7000      ; the 16-bit code runs from here (below 1 MiB)
SCRATCH equ 0x6000      ; real-mode results

section .text
global mode_switch_run
mode_switch_run:
    pushad
    mov [saved_esp], esp
    sidt [saved_idtr]
    sgdt [rm_gdtr]
    ; identity map of the first GiB with 2 MiB pages
    mov dword [ms_pml4], ms_pdpt + 3
    mov dword [ms_pdpt], ms_pd + 3
    xor ecx, ecx
.pd:
    mov eax, ecx
    shl eax, 21
    or eax, 0x83
    mov [ms_pd + ecx * 8], eax
    mov dword [ms_pd + ecx * 8 + 4], 0
    inc ecx
    cmp ecx, 512
    jne .pd
    mov eax, cr4
    or eax, 0x20                ; PAE
    mov cr4, eax
    mov eax, ms_pml4
    mov cr3, eax
    mov ecx, 0xC0000080
    rdmsr
    or eax, 0x100               ; EFER.LME
    wrmsr
    mov eax, cr0
    or eax, 0x80000000          ; PG: IA-32e mode active (compatibility mode)
    mov cr0, eax
    jmp 0x18:long64

bits 64
long64:
    mov ecx, 0xC0000080
    rdmsr
    mov [rel ms_result + 0], eax        ; EFER in 64-bit mode
    mov ax, cs
    movzx eax, ax
    mov [rel ms_result + 4], eax        ; CS
    mov r8, 0x00000000FFFFFFFF
    add r8, 2                           ; 0x1_0000_0001: needs 64-bit registers
    mov [rel ms_result + 8], r8
    mov rax, rsp
    push 0x1234                         ; 64-bit push: RSP moves by 8
    sub rax, rsp
    pop rcx
    mov [rel ms_result + 16], eax       ; -8
    push qword 0x08                     ; far return to compatibility mode (32-bit CS)
    lea rax, [rel compat32]
    push rax
    o64 retf

bits 32
compat32:
    mov ax, cs
    movzx eax, ax
    mov [ms_result + 20], eax           ; CS in compatibility mode
    mov ecx, 0xC0000080
    rdmsr
    mov [ms_result + 24], eax           ; EFER: LMA still 1
    ; leave IA-32e mode: paging off (from compatibility mode), then LME off
    mov eax, cr0
    and eax, 0x7FFFFFFF
    mov cr0, eax
    mov ecx, 0xC0000080
    rdmsr
    and eax, ~0x100
    wrmsr
    rdmsr
    mov [ms_result + 28], eax           ; EFER: LME = LMA = 0
    mov eax, cr4
    and eax, ~0x20
    mov cr4, eax
    mov eax, cr0
    mov [ms_result + 32], eax           ; CR0: PE, no PG
    ; copy the 16-bit code below 1 MiB and enter 16-bit protected mode
    mov esi, rm_blob
    mov edi, RM_BASE
    mov ecx, rm_blob_end - rm_blob
    cld
    rep movsb
    jmp 0x40:RM_BASE

bits 16
rm_blob:
    mov ax, 0x48                        ; 64 KiB data segments before clearing PE
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov eax, cr0
    and eax, 0xFFFFFFFE
    mov cr0, eax
    jmp 0x0000:(rm_real - rm_blob + RM_BASE)
rm_real:
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov sp, 0x6F00
    mov ax, cs
    mov [SCRATCH + 0], ax
    mov eax, cr0
    mov [SCRATCH + 4], eax
    ; segment arithmetic: 0x0650:0x0010 is linear 0x6510
    mov ax, 0x0650
    mov ds, ax
    mov word [0x10], 0xBEEF
    xor ax, ax
    mov ds, ax
    mov ax, [0x6510]
    mov [SCRATCH + 8], ax
    ; offset wrap inside a segment: 16-bit addressing wraps at 64 KiB
    mov bx, 0xFFFF
    mov byte [bx + 0x6021], 0x5A        ; (0xFFFF + 0x6021) & 0xFFFF = 0x6020
    mov al, [SCRATCH + 0x20]
    mov [SCRATCH + 0x21], al
    ; INT through our own IVT at linear 0
    lidt [rm_ivt_desc - rm_blob + RM_BASE]
    mov word [0x40 * 4], rm_isr - rm_blob + RM_BASE
    mov word [0x40 * 4 + 2], 0
    mov word [SCRATCH + 12], 0
    mov word [SCRATCH + 20], rm_after_int - rm_blob + RM_BASE
    int 0x40
rm_after_int:
    mov [SCRATCH + 14], sp
    ; back to protected mode
    o32 lgdt [rm_gdtr - rm_blob + RM_BASE]
    mov eax, cr0
    or eax, 1
    mov cr0, eax
    jmp dword 0x08:pm_back
rm_isr:
    mov word [SCRATCH + 12], 0x4040
    mov bp, sp
    mov ax, [bp]
    mov [SCRATCH + 16], ax              ; pushed IP
    mov ax, [bp + 2]
    mov [SCRATCH + 18], ax              ; pushed CS
    iret
align 4
rm_ivt_desc:
    dw 0x3FF
    dd 0
rm_gdtr:
    dw 0
    dd 0
rm_blob_end:

bits 32
pm_back:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    mov ss, ax
    mov esp, [saved_esp]
    lidt [saved_idtr]
    mov dword [ms_result + 36], 1
    popad
    ret

section .note.GNU-stack noalloc noexec nowrite progbits
