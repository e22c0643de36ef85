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
    ; The code descriptor's accessed bit is set already: the far jump below
    ; sets it on a real CPU and in ttvm's emulator, but not under QEMU's TCG
    ; (the nested VM's KVM), and a KVM trace's stop points compare memory
    ; (docs/kvm-recording.md).
    dq 0x00AF9B000000FFFF           ; 0x08: 64-bit code, DPL 0
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
DISPATCH_RETURN equ $ - interrupt_common ; (for the unwind table below; an equ
    pop r15                         ; adds no label that would name this code)
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

;
; ---------------------------------------------------------------------------
; Unwind table for debuggers (gdb reads .debug_frame; nasm has no .cfi
; directives, so the entries are written out). Without them gdb's
; prologue guesses run past the two places where the stack is not a chain
; of calls: it printed junk frames (0x13, 0x0) below long_mode_entry, and
; stopped at interrupt_common instead of reaching the interrupted code.
;  - `call kmain` in long_mode_entry: the return address is undefined, so
;    long_mode_entry is the outermost frame (entered by a far jump);
;  - `call interrupt_dispatch` in interrupt_common: a signal frame ("S":
;    the caller's pc is the interrupted instruction itself, not a return
;    address) whose registers are the ones the stub pushed, below the
;    CPU's interrupt frame (RIP, CS, RFLAGS, RSP, SS).
; Each entry covers the 5-byte call before the label that follows it,
; which is where gdb looks for a caller (a return address minus one); the
; signal frame's also covers the return address itself, where gdb looks
; for a signal frame (the CFI is right there too: nothing popped yet).
; DWARF x86-64 registers: rax 0, rdx 1, rcx 2, rbx 3, rsi 4, rdi 5, rbp 6,
; rsp 7, r8..r15 8..15, return address (rip) 16, rflags 49, cs 51, ss 52.
DW_CFA_def_cfa          equ 0x0c
DW_CFA_undefined        equ 0x07
DW_CFA_offset           equ 0x80    ; | register; operand: offset / -8
DW_CFA_offset_extended  equ 0x05
section .debug_frame noalloc noexec nowrite progbits align=8
cie_plain:
    dd .end - .start
.start:
    dd 0xFFFFFFFF                   ; a CIE
    db 1                            ; version
    db 0                            ; augmentation ""
    db 1, 0x78, 16                  ; code align 1, data align -8, RA column 16
    db DW_CFA_def_cfa, 7, 8         ; CFA = rsp + 8
    db DW_CFA_offset | 16, 1        ; rip at CFA - 8
    align 8, db 0
.end:
cie_signal:
    dd .end - .start
.start:
    dd 0xFFFFFFFF
    db 1
    db "S", 0                       ; a signal frame
    db 1, 0x78, 16
    align 8, db 0
.end:
fde_long_mode_entry:
    dd .end - .start
.start:
    dd cie_plain                    ; offset of the CIE in .debug_frame
    dq long_mode_entry.hang - 5, 5
    db DW_CFA_undefined, 16         ; no caller
    align 8, db 0
.end:
fde_interrupt_common:
    dd .end - .start
.start:
    dd cie_signal
    dq interrupt_common + DISPATCH_RETURN - 5, 6
    ; rsp points at r15; the stub pushed 15 registers, the vector and the
    ; error code (17 quadwords), then come RIP, CS, RFLAGS, RSP, SS: the
    ; CFA is the end of that frame, rsp + 22 * 8.
    db DW_CFA_def_cfa, 7, 176, 1    ; CFA = rsp + 176 (uleb128 0xb0 0x01)
    db DW_CFA_offset | 16, 5        ; rip     at CFA - 40
    db DW_CFA_offset_extended, 51, 4 ; cs     at CFA - 32
    db DW_CFA_offset_extended, 49, 3 ; rflags at CFA - 24
    db DW_CFA_offset | 7, 2         ; rsp     at CFA - 16
    db DW_CFA_offset_extended, 52, 1 ; ss     at CFA - 8
    db DW_CFA_offset | 0, 8         ; rax     at CFA - 64 (rsp + 112)
    db DW_CFA_offset | 3, 9         ; rbx
    db DW_CFA_offset | 2, 10        ; rcx
    db DW_CFA_offset | 1, 11        ; rdx
    db DW_CFA_offset | 4, 12        ; rsi
    db DW_CFA_offset | 5, 13        ; rdi
    db DW_CFA_offset | 6, 14        ; rbp
    db DW_CFA_offset | 8, 15        ; r8
    db DW_CFA_offset | 9, 16        ; r9
    db DW_CFA_offset | 10, 17       ; r10
    db DW_CFA_offset | 11, 18       ; r11
    db DW_CFA_offset | 12, 19       ; r12
    db DW_CFA_offset | 13, 20       ; r13
    db DW_CFA_offset | 14, 21       ; r14
    db DW_CFA_offset | 15, 22       ; r15     at CFA - 176 (rsp + 0)
    align 8, db 0
.end:

section .note.GNU-stack noalloc noexec nowrite progbits
