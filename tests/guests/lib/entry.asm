; ttvm test-guest entry: multiboot v1 header, 32-bit entry, GDT, optional
; switch to long mode (when assembled as elf64), and the 256 per-vector
; interrupt stubs that call trap_dispatch() in guest.c.
;
; Multiboot v1 (spec section 3.2, "Machine state"): EAX = 0x2BADB002,
; EBX = info, CS/DS flat 32-bit, paging off, IF = 0, GDTR undefined -> we load ours.

%ifidn __OUTPUT_FORMAT__, elf64
%define LONG 1
%endif

MB_MAGIC equ 0x1BADB002
MB_FLAGS equ 0x00000003             ; page-align modules, want memory info

section .multiboot progbits alloc noexec nowrite align=4
    dd MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

section .bss nobits alloc noexec write align=4096
global stack_bottom, stack_top
stack_bottom: resb 16384
stack_top:
global intr_stack_top, user_stack_top
    resb 16384                      ; TSS.RSP0 stack for interrupts from ring 3
intr_stack_top:
    resb 16384                      ; ring-3 stack used by user_call()
user_stack_top:
%ifdef LONG
global boot_pml4, boot_pdpt, boot_pd
boot_pml4: resb 4096
boot_pdpt: resb 4096
boot_pd:   resb 4096 * 4            ; identity map of the first 4 GiB with 2 MiB pages
%endif
global mb_info
mb_info: resd 1
global user_saved_sp
user_saved_sp: resq 1                  ; kernel SP saved by user_call (also for guests that build their own CPL-3 entry)

section .data progbits alloc noexec write align=16
global gdt, gdtr
gdt:
    dq 0
    dq 0x00CF9A000000FFFF           ; 0x08 code32, DPL0, 4 GiB
    dq 0x00CF92000000FFFF           ; 0x10 data, DPL0, 4 GiB
    dq 0x00AF9A000000FFFF           ; 0x18 code64 (L=1), DPL0
    dq 0x00CF92000000FFFF           ; 0x20 data, DPL0 (SYSCALL SS = CS + 8)
    dq 0x00CFFA000000FFFF           ; 0x28 code32, DPL3 (SYSRET base)
    dq 0x00CFF2000000FFFF           ; 0x30 data, DPL3
    dq 0x00AFFA000000FFFF           ; 0x38 code64, DPL3
    dq 0x00009A000000FFFF           ; 0x40 code16, 64 KiB
    dq 0x000092000000FFFF           ; 0x48 data16, 64 KiB
    times 22 dq 0                   ; 0x50 TSS (16 bytes in long mode), 0x60.. free
gdt_end:
align 8
    dw 0
gdtr:
    dw gdt_end - gdt - 1
    dd gdt, 0

section .text progbits alloc exec nowrite align=16
bits 32
global _start
extern lib_start
_start:
    cli
    mov esp, stack_top
    mov [mb_info], ebx
    lgdt [gdtr]
    jmp 0x08:.flat
.flat:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov fs, ax
    mov gs, ax
%ifndef LONG
    call lib_start
.hang:
    hlt
    jmp .hang
%else
    ; PML4[0] -> PDPT; PDPT[0..3] -> PD0..3; PDn[i] = 2 MiB page, P|RW|PS.
    mov dword [boot_pml4], boot_pdpt + 7   ; P|RW|US
    mov ecx, 0
.pdpt:
    mov eax, ecx
    shl eax, 12
    add eax, boot_pd + 7
    mov [boot_pdpt + ecx * 8], eax
    inc ecx
    cmp ecx, 4
    jne .pdpt
    xor ecx, ecx
.pd:
    mov eax, ecx
    shl eax, 21
    or eax, 0x87                    ; P|RW|US|PS
    mov [boot_pd + ecx * 8], eax
    mov eax, ecx
    shr eax, 11
    mov [boot_pd + ecx * 8 + 4], eax
    inc ecx
    cmp ecx, 2048
    jne .pd
    mov eax, cr4
    or eax, 1 << 5                  ; PAE
    mov cr4, eax
    mov eax, boot_pml4
    mov cr3, eax
    mov ecx, 0xC0000080             ; EFER
    rdmsr
    or eax, 1 << 8                  ; LME
    wrmsr
    mov eax, cr0
    or eax, 0x80000001              ; PG | PE
    mov cr0, eax
    jmp 0x18:.long
bits 64
.long:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov rsp, stack_top
    call lib_start
.hang:
    hlt
    jmp .hang
%endif

; ---- ring 3 ------------------------------------------------------------------
; ureg user_call(ureg fn, ureg user_sp, ureg arg, ureg flags): runs fn(arg) at
; CPL 3 (code SEL_UCODE64/32 | 3, stack user_sp, RFLAGS flags) and returns its
; result once fn returns; fn's return goes through INT 0x81 (gate DPL 3), whose
; handler user_return_stub restores the kernel context saved here.
global user_call, user_return_stub
%ifdef LONG
user_call:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    mov [user_saved_sp], rsp
    mov rax, rdi
    push 0x33                       ; SS = SEL_UDATA | 3
    push rsi                        ; RSP
    push rcx                        ; RFLAGS
    push 0x3B                       ; CS = SEL_UCODE64 | 3
    lea r8, [rel .tramp]
    push r8
    mov rdi, rdx
    iretq
.tramp:
    call rax
    int 0x81
user_return_stub:
    mov rsp, [user_saved_sp]
    mov cx, 0x10
    mov ss, cx
    mov ds, cx                      ; the IRETQ to CPL 3 nulled DS/ES (DPL 0):
    mov es, cx                      ; harmless in 64-bit mode, not in compat mode
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret
%else
user_call:
    push ebp
    push ebx
    push esi
    push edi
    mov [user_saved_sp], esp
    mov eax, [esp + 20]             ; fn
    mov ecx, [esp + 24]             ; user stack
    mov esi, [esp + 28]             ; arg
    mov ebx, [esp + 32]             ; eflags
    mov dx, 0x33                    ; data segments a CPL-3 IRET keeps
    mov ds, dx
    mov es, dx
    mov fs, dx
    mov gs, dx
    push 0x33
    push ecx
    push ebx
    push 0x2B                       ; CS = SEL_UCODE32 | 3
    push .tramp
    iretd
.tramp:
    push esi
    call eax
    add esp, 4
    int 0x81
user_return_stub:
    mov cx, 0x10
    mov ds, cx
    mov es, cx
    mov fs, cx
    mov gs, cx
    mov ss, cx
    mov esp, [user_saved_sp]
    pop edi
    pop esi
    pop ebx
    pop ebp
    ret
%endif

; ---- interrupt stubs ---------------------------------------------------------
; Vectors that push an error code (SDM vol. 3 table 6-1): 8, 10-14, 17, 21, 29, 30.
%macro STUB 1
align 16
isr_stub_%1:
%if (%1 == 8) || (%1 >= 10 && %1 <= 14) || (%1 == 17) || (%1 == 21) || (%1 == 29) || (%1 == 30)
%else
    push 0
%endif
    push %1
    jmp isr_common
%endmacro

extern trap_dispatch
%assign v 0
%rep 256
STUB v
%assign v v+1
%endrep

%ifdef LONG
isr_common:
    push rax
    push rcx
    push rdx
    push rbx
    push rbp
    push rsi
    push rdi
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    cld
    call trap_dispatch
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    pop rdx
    pop rcx
    pop rax
    add rsp, 16
    iretq
%else
isr_common:
    push ds
    push es
    pushad
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov eax, esp
    push eax
    cld
    call trap_dispatch
    add esp, 4
    popad
    pop es
    pop ds
    add esp, 8
    iretd
%endif

section .data
align 8
global isr_table
isr_table:
%assign v 0
%rep 256
%ifdef LONG
    dq isr_stub_ %+ v
%else
    dd isr_stub_ %+ v
%endif
%assign v v+1
%endrep

section .note.GNU-stack noalloc noexec nowrite progbits
