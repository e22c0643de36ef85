; The guest of event_hint_test: takes every kind of interrupt the machine
; offers, each a few times, then exits through isa-debug-exit.
;
; Real mode at 0:0x1000, entered with IF=0 and 4 GiB limits on DS and SS
; (the test sets them: no segment register is loaded here), so that
; addresses above 1 MiB reach the local and I/O APIC. Each of 20 rounds:
; some work, an 8259 request from pc-testdev (IRQ 1), a self-IPI, an I/O
; APIC request from pc-testdev (pin 6), an NMI to self, a self-IPI held back
; by the TPR and released, a request made with IF=0 and taken at STI, and a
; HLT until a timer (8254 on IRQ 0, APIC timer). Word counters at 0x600
; count the handlers: +0 8254, +2 IRQ 1, +4 IPI, +6 APIC timer, +8 I/O APIC,
; +10 NMI, +12 rounds.
bits 16
org 0x1000
LAPIC  equ 0xFEE00000
IOAPIC equ 0xFEC00000
CNT    equ 0x600

%macro vector 2
  mov word [%1*4], %2
  mov word [%1*4+2], 0
%endmacro

start:
  vector 0x08, pit_isr                        ; (the firmware's IVT points elsewhere)
  vector 0x09, tdev_isr
  vector 0x02, nmi_isr
  vector 0x40, ipi_isr
  vector 0x41, ltmr_isr
  vector 0x42, ioap_isr
  mov al, 0xF8                                ; 8259: IRQ 0, 1, 2 open
  out 0x21, al
  mov al, 0x34                                ; 8254 channel 0: rate generator, count 200
  out 0x43, al
  mov al, 200
  out 0x40, al
  xor al, al
  out 0x40, al
  mov dword [dword LAPIC+0xF0], 0x1FF         ; APIC software enable
  mov dword [dword LAPIC+0x3E0], 0xB          ; timer: divide by 1
  mov dword [dword LAPIC+0x320], 0x20041      ; periodic, vector 0x41
  mov dword [dword LAPIC+0x380], 70000
  mov dword [dword IOAPIC], 0x1C              ; pin 6: vector 0x42, edge, to APIC 0
  mov dword [dword IOAPIC+0x10], 0x42
  mov dword [dword IOAPIC], 0x1D
  mov dword [dword IOAPIC+0x10], 0
  sti
round:
  mov ecx, 5000
.work:
  add ebx, ecx
  dec ecx
  jnz .work
  mov dx, 0x2001                              ; pc-testdev line 1: 8259 IRQ 1
  mov al, 1
  out dx, al
  mov dword [dword LAPIC+0x300], 0x00040040   ; self-IPI, vector 0x40
  mov dx, 0x2006                              ; pc-testdev line 6: I/O APIC pin 6
  mov al, 1
  out dx, al
  mov dword [dword LAPIC+0x300], 0x00040400   ; NMI to self
  mov dword [dword LAPIC+0x80], 0x50          ; TPR above vector 0x40's class
  mov dword [dword LAPIC+0x300], 0x00040040
  mov ecx, 1000
.held:
  dec ecx
  jnz .held
  mov dword [dword LAPIC+0x80], 0
  cli
  mov dx, 0x2001
  mov al, 1
  out dx, al
  mov ecx, 1000
.masked:
  dec ecx
  jnz .masked
  sti
  hlt
  inc word [CNT+12]
  cmp word [CNT+12], 20
  jb round
  cli
  xor al, al
  out 0xF4, al                                ; isa-debug-exit
  jmp $

pit_isr:
  inc word [CNT+0]
  push ax
  mov al, 0x20
  out 0x20, al
  pop ax
  iret
tdev_isr:
  inc word [CNT+2]
  push ax
  push dx
  mov dx, 0x2001
  xor al, al
  out dx, al
  mov al, 0x20
  out 0x20, al
  pop dx
  pop ax
  iret
ipi_isr:
  inc word [CNT+4]
  mov dword [dword LAPIC+0xB0], 0
  iret
ltmr_isr:
  inc word [CNT+6]
  mov dword [dword LAPIC+0xB0], 0
  iret
ioap_isr:
  inc word [CNT+8]
  push ax
  push dx
  mov dx, 0x2006
  xor al, al
  out dx, al
  mov dword [dword LAPIC+0xB0], 0
  pop dx
  pop ax
  iret
nmi_isr:
  inc word [CNT+10]
  iret
