; Start-up code of the compat test kernels: the boot path of the x86 unit
; test kernels written for QEMU's -kernel (kvm-unit-tests' cstart.S and
; cstart64.S are the model), written again here so that ttvm is exercised the
; way such kernels use the machine:
;
;  - a multiboot v1 header with flags 0 (no address fields: the loader must
;    take the load addresses from the ELF program headers; 64-bit kernels are
;    ELF64 converted to elf32-i386, linked at 4 MiB);
;  - 32-bit: own GDT, paging with 4 MiB pages (CR4.PSE only) over all 4 GiB,
;    a TSS and a per-CPU data segment in GS;
;  - 64-bit: IA32_GS_BASE written in 32-bit protected mode and kept across the
;    segment reloads (rdmsr/wrmsr around them), 2 MiB pages over the first
;    4 GiB (G bit set, CR4.PGE clear), long mode entered from flat protected
;    mode, then LIDT and LTR;
;  - the AP trampoline (16-bit code) that kut_boot() copies to physical 0
;    before the INIT and STARTUP IPIs.
; Everything else (APIC reset, PIC masks, multiboot parsing, SMP bring-up,
; x2APIC) is C, in kut.c, as in the original library.

%ifidn __OUTPUT_FORMAT__, elf64
%define LONG 1
%endif

MAX_CPUS equ 4
MSR_GS_BASE equ 0xC0000101

section .init progbits alloc exec nowrite align=4
bits 32
    dd 0x1BADB002, 0, -0x1BADB002        ; multiboot: magic, flags 0, checksum

global start
start:
%ifdef LONG
    mov [mb_boot_info], ebx
    mov esp, stacktop
    lea eax, [percpu_area]               ; per-CPU area: IA32_GS_BASE before the GDT switch
    xor edx, edx
    mov ecx, MSR_GS_BASE
    wrmsr
    lgdt [gdt_descr]
    ; Reloading GS in protected mode replaces its base with the descriptor's:
    ; save the MSR around the reloads, as the original does.
    mov ecx, MSR_GS_BASE
    rdmsr
    mov bx, 0x10
    mov ds, bx
    mov es, bx
    mov fs, bx
    mov gs, bx
    mov ss, bx
    wrmsr
    mov eax, cr4
    bts eax, 5                           ; PAE
    mov cr4, eax
    mov eax, ptl4
    mov cr3, eax
    mov ecx, 0xC0000080                  ; EFER.LME
    rdmsr
    bts eax, 8
    wrmsr
    mov eax, cr0
    bts eax, 0
    bts eax, 31
    mov cr0, eax
    jmp 0x08:start64

bits 64
start64:
    lidt [idt_descr]
    mov edi, [mb_boot_info]
    call kut_boot                        ; never returns
.hang:
    hlt
    jmp .hang
%else
    lgdt [gdt_descr]
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    mov ss, ax
    jmp 0x08:.cs
.cs:
    mov esp, stacktop
    push ebx
    call kut_multiboot                   ; before paging, as the original
    add esp, 4
    mov eax, 1 << 4                      ; CR4 = PSE only
    mov cr4, eax
    mov eax, page_dir
    mov cr3, eax
    mov eax, cr0
    bts eax, 0
    bts eax, 31
    mov cr0, eax
    jmp 0x08:start32
start32:
    lidt [idt_descr]
    push dword 0
    call kut_boot                        ; never returns
.hang:
    hlt
    jmp .hang
%endif

extern kut_boot
%ifndef LONG
extern kut_multiboot
%endif

; ---- AP trampoline (copied to physical 0; SIPI vector 0) -----------------------
bits 16
global rm_trampoline, rm_trampoline_end
rm_trampoline:
    cli
    mov eax, cr0
    or eax, 1
    mov cr0, eax
    o32 lgdt [cs:ap_gdt_descr - rm_trampoline]
    jmp dword 0x08:ap_start32
ap_gdt_descr:
    dw gdt_end - gdt - 1
    dd gdt
rm_trampoline_end:

bits 32
ap_start32:
    ; No AP is expected on the one-CPU machines these tests run on: an AP
    ; that arrives anyway counts itself and parks.
    mov ax, 0x10
    mov ds, ax
    lock inc dword [ap_arrived]
.park:
    cli
    hlt
    jmp .park

global ap_arrived
section .data
align 4
ap_arrived: dd 0

; ---- descriptors ----------------------------------------------------------------
section .data
align 16
global gdt, gdt_descr, tss_descr
%ifdef LONG
gdt:
    dq 0
    dq 0x00AF9B000000FFFF                ; 0x08 64-bit code
    dq 0x00CF93000000FFFF                ; 0x10 data
    dq 0x00AF1B000000FFFF                ; 0x18 64-bit code, not present
    dq 0x00CF9B000000FFFF                ; 0x20 32-bit code
    dq 0x008F9B000000FFFF                ; 0x28 16-bit code
    dq 0x008F93000000FFFF                ; 0x30 16-bit data
    dq 0x00CFFB000000FFFF                ; 0x38 32-bit code, DPL 3
    dq 0x00CFF3000000FFFF                ; 0x40 data, DPL 3
    dq 0x00AFFB000000FFFF                ; 0x48 64-bit code, DPL 3
    times 6 dq 0                         ; 0x50.. spare
tss_descr:                               ; 0x80: 64-bit TSS (kut.c fills the base)
    dq 0x0000890000000067
    dq 0
gdt_end:
%else
gdt:
    dq 0
    dq 0x00CF9B000000FFFF                ; 0x08 32-bit code
    dq 0x00CF93000000FFFF                ; 0x10 data
    dq 0x00CF1B000000FFFF                ; 0x18 32-bit code, not present
    dq 0                                 ; 0x20 free
    dq 0x008F9B000000FFFF                ; 0x28 16-bit code
    dq 0x008F93000000FFFF                ; 0x30 16-bit data
    dq 0x00CFFB000000FFFF                ; 0x38 32-bit code, DPL 3
    dq 0x00CFF3000000FFFF                ; 0x40 data, DPL 3
    times 7 dq 0                         ; 0x48.. spare
tss_descr:                               ; 0x80: 32-bit TSS (kut.c fills the base)
    dq 0x0000890000000067
    dq 0x00CF93000000FFFF                ; 0x88: per-CPU data segment for GS (base filled in)
gdt_end:
%endif
align 8
    dw 0
gdt_descr:
    dw gdt_end - gdt - 1
    dd gdt, 0

global idt, idt_descr
align 16
idt:
%ifdef LONG
    times 256 dq 0, 0
%else
    times 256 dq 0
%endif
idt_end:
    dw 0
idt_descr:
    dw idt_end - idt - 1
    dd idt, 0

%ifdef LONG
global mb_boot_info
mb_boot_info: dd 0, 0

; 2 MiB pages over 4 GiB: P|RW|US|A|D|PS|G (0x1E7), as the original.
align 4096
ptl2:
%assign i 0
%rep 2048
    dq 0x1E7 | (i << 21)
%assign i i+1
%endrep
ptl3:
    dq ptl2 + 0x0007, ptl2 + 0x1007, ptl2 + 0x2007, ptl2 + 0x3007
    times 508 dq 0
ptl4:
    dq ptl3 + 7
    times 511 dq 0
%else
; 4 MiB pages over 4 GiB: P|RW|US|A|D|PS|G (0x1E7).
align 4096
global page_dir
page_dir:
%assign i 0
%rep 1024
    dd 0x1E7 | (i << 22)
%assign i i+1
%endrep
%endif

section .bss nobits alloc noexec write align=4096
global percpu_area, stacktop, ring0_stacktop
    resb 4096 * MAX_CPUS
stacktop:
    resb 4096
ring0_stacktop:
percpu_area:
    resb 4096

; ---- interrupt stubs: vector (and a 0 error code where the CPU pushes none) ----
section .text
%ifdef LONG
bits 64
%else
bits 32
%endif
%macro STUB 1
align 8
isr_%1:
%if (%1 == 8) || (%1 >= 10 && %1 <= 14) || (%1 == 17) || (%1 == 21) || (%1 == 29) || (%1 == 30)
%else
    push 0
%endif
    push %1
    jmp isr_common
%endmacro
%assign v 0
%rep 256
STUB v
%assign v v+1
%endrep

extern kut_trap
%ifdef LONG
isr_common:
    push r15
    push r14
    push r13
    push r12
    push r11
    push r10
    push r9
    push r8
    push rdi
    push rsi
    push rbp
    push rbx
    push rdx
    push rcx
    push rax
    mov rdi, rsp
    cld
    call kut_trap
    pop rax
    pop rcx
    pop rdx
    pop rbx
    pop rbp
    pop rsi
    pop rdi
    pop r8
    pop r9
    pop r10
    pop r11
    pop r12
    pop r13
    pop r14
    pop r15
    add rsp, 16
    iretq
%else
isr_common:
    pushad
    mov eax, esp
    push eax
    cld
    call kut_trap
    add esp, 4
    popad
    add esp, 8
    iretd
%endif

section .data
align 8
global isr_stubs
isr_stubs:
%assign v 0
%rep 256
%ifdef LONG
    dq isr_ %+ v
%else
    dd isr_ %+ v
%endif
%assign v v+1
%endrep

section .note.GNU-stack noalloc noexec nowrite progbits
