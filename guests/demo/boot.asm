; Entry of the ttvm demo kernel.
;
; A multiboot v1 loader (QEMU's -kernel, `ttvm record`) enters _start in
; 32-bit protected mode with paging off, EAX = 0x2BADB002 and EBX = the
; physical address of the multiboot information. This file builds page
; tables that identity-map the first 4 GiB with 2 MiB pages (so the local
; APIC at 0xFEE00000 is reachable), switches to long mode, and calls
; kmain(magic, info). It also holds the interrupt entry stubs: each pushes
; its vector (and a zero where the CPU pushes no error code), saves the
; general-purpose registers in the order of struct InterruptFrame (demo.h),
; and calls interrupt_dispatch(frame).

MB_MAGIC    equ 0x1BADB002
MB_FLAGS    equ 0x00000003          ; align modules on pages, want memory info
EFER        equ 0xC0000080
EFER_LME    equ 1 << 8
CR4_PAE     equ 1 << 5
CR0_PE_PG   equ 0x80000001
PTE_P_W     equ 0x003               ; present, writable
PDE_LARGE   equ 0x083               ; present, writable, 2 MiB page
PDE_UNCACHED equ 0x018              ; PWT | PCD, for the MMIO gigabyte

section .multiboot
align 4
    dd MB_MAGIC
    dd MB_FLAGS
    dd -(MB_MAGIC + MB_FLAGS)

section .bss
align 4096
pml4:       resb 4096
pdpt:       resb 4096
page_dirs:  resb 4 * 4096           ; four page directories: 4 GiB
stack_bottom:
            resb 16384
global stack_top
stack_top:

section .data
align 16
gdt64:
    dq 0                            ; null
    dq 0x00AF9A000000FFFF           ; 0x08: 64-bit code, DPL 0
    dq 0x00CF92000000FFFF           ; 0x10: data, DPL 0
gdt64_end:
gdt64_ptr:
    dw gdt64_end - gdt64 - 1
    dq gdt64

section .text.boot
BITS 32
global _start
_start:
    cli
    mov esp, stack_top
    mov edi, eax                    ; multiboot magic -> kmain's 1st argument
    mov esi, ebx                    ; multiboot info  -> kmain's 2nd argument

    ; Zero the page tables (a loader zeroes .bss, but do not rely on it).
    push edi
    mov edi, pml4
    mov ecx, (6 * 4096) / 4
    xor eax, eax
    rep stosd
    pop edi

    mov dword [pml4], pdpt + PTE_P_W
    xor ecx, ecx
.pdpt_loop:                         ; PDPT[i] -> page_dirs + i * 4096
    mov eax, ecx
    shl eax, 12
    add eax, page_dirs + PTE_P_W
    mov [pdpt + ecx * 8], eax
    inc ecx
    cmp ecx, 4
    jb .pdpt_loop

    xor ecx, ecx
.pd_loop:                           ; PDE[j] -> j * 2 MiB, for j < 2048
    mov eax, ecx
    shl eax, 21
    or eax, PDE_LARGE
    cmp ecx, 3 * 512                ; the top gigabyte holds the APIC, IOAPIC
    jb .cached
    or eax, PDE_UNCACHED
.cached:
    mov [page_dirs + ecx * 8], eax  ; the upper dword stays 0 (< 4 GiB)
    inc ecx
    cmp ecx, 4 * 512
    jb .pd_loop

    mov eax, cr4
    or eax, CR4_PAE
    mov cr4, eax
    mov eax, pml4
    mov cr3, eax
    mov ecx, EFER
    rdmsr
    or eax, EFER_LME
    wrmsr
    mov eax, cr0
    or eax, CR0_PE_PG
    mov cr0, eax
    lgdt [gdt64_ptr]
    jmp 0x08:long_mode_entry

BITS 64
long_mode_entry:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov rsp, stack_top
    mov edi, edi                    ; the upper halves are undefined after
    mov esi, esi                    ; the mode switch: zero-extend
    xor ebp, ebp                    ; ends frame-pointer backtraces
    extern kmain
    call kmain
.hang:
    cli
    hlt
    jmp .hang

; ---------------------------------------------------------------------------
; Interrupt entry stubs.
section .text
extern interrupt_dispatch

%macro STUB_NOERR 1
isr_%1:
    push 0
    push %1
    jmp interrupt_common
%endmacro

%macro STUB_ERR 1
isr_%1:
    push %1
    jmp interrupt_common
%endmacro

; Exceptions that push an error code: #DF, #TS, #NP, #SS, #GP, #PF, #AC,
; #CP, #VC, #SX.
%assign v 0
%rep 32
%if v == 8 || v == 10 || v == 11 || v == 12 || v == 13 || v == 14 || v == 17 || v == 21 || v == 29 || v == 30
    STUB_ERR v
%else
    STUB_NOERR v
%endif
%assign v v + 1
%endrep
STUB_NOERR 64                       ; local APIC timer (0x40)
STUB_NOERR 255                      ; local APIC spurious (0xFF)

interrupt_common:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    cld
    mov rdi, rsp                    ; 16-byte aligned: 5 + 2 + 15 quadwords
    call interrupt_dispatch
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16                     ; vector and error code
    iretq

; Stub addresses for the IDT: exceptions 0..31, then the timer and the
; spurious vector.
section .rodata
global isr_exception_stubs, isr_timer_stub, isr_spurious_stub
align 8
isr_exception_stubs:
%assign v 0
%rep 32
    dq isr_ %+ v
%assign v v + 1
%endrep
isr_timer_stub:
    dq isr_64
isr_spurious_stub:
    dq isr_255

section .note.GNU-stack noalloc noexec nowrite progbits
