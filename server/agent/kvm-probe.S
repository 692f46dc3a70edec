/*
 * The accelerator probe's test guest: one boot sector that SeaBIOS loads at 0x7c00.
 * It runs what boot loaders and kernels run on their way up, and prints a letter on
 * the serial port as it finishes each step:
 *
 *   R  real mode (SeaBIOS's POST before it, which switches modes itself)
 *   P  32-bit protected mode, including an iret at the same privilege (ISOLINUX's
 *      helpers return that way; some nested KVMs stop there with an emulation failure)
 *   U  back in real mode with 4 GiB data segments (unreal mode), a 32-bit access above
 *      1 MiB, and a software interrupt through the real-mode vector table
 *   L  64-bit long mode with paging, entered straight from real mode
 *
 * then writes 0x31 to QEMU's isa-debug-exit port, so QEMU exits with (0x31 << 1) | 1 = 99.
 *
 * server/agent/kvm-probe.ts carries the assembled bytes; tests/unit/kvm-probe.test.ts
 * assembles this file again and checks they match. To rebuild:
 *   as --32 -o probe.o server/agent/kvm-probe.S
 *   ld -m elf_i386 -Ttext=0x7c00 --oformat binary -o probe.bin probe.o
 *   base64 -w0 probe.bin
 */
        .set CODE32, 0x08
        .set DATA,   0x10
        .set CODE16, 0x18
        .set CODE64, 0x20
        .set SERIAL, 0x3f8
        .set EXIT_PORT, 0xf4
        .set EXIT_VALUE, 0x31

        .macro say ch
        movb $\ch, %al
        movw $SERIAL, %dx
        outb %al, %dx
        .endm

        .code16
        .globl _start
_start:
        cli
        xorw %ax, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movw $0x7c00, %sp
        ljmp $0, $real
real:
        say 'R'
        /* A20 through the fast gate */
        inb $0x92, %al
        orb $2, %al
        andb $0xfe, %al
        outb %al, $0x92
        /* 32-bit protected mode, flat segments */
        lgdt gdtr
        movl %cr0, %eax
        orb $1, %al
        movl %eax, %cr0
        ljmp $CODE32, $pm32

        .code32
pm32:
        movw $DATA, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movl $0x7c00, %esp
        /* an iret at the same privilege */
        pushfl
        pushl $CODE32
        pushl $after_iret
        iretl
after_iret:
        xorl %eax, %eax
        cpuid
        rdtsc
        say 'P'
        /* back to real mode through a 16-bit segment, keeping the 4 GiB data limits */
        ljmp $CODE16, $pm16

        .code16
pm16:
        movl %cr0, %eax
        andb $0xfe, %al
        movl %eax, %cr0
        ljmp $0, $unreal
unreal:
        xorw %ax, %ax
        movw %ax, %ss
        movl $0x100000, %esi
        movl $0x47484748, %eax
        addr32 movl %eax, (%esi)
        addr32 cmpl (%esi), %eax
        jne fail
        /* a software interrupt to a handler of our own, which returns with iret */
        movw $handler, (0x80 * 4)
        movw $0, (0x80 * 4 + 2)
        int $0x80
        /* long mode straight from real mode: the first 2 MiB identity-mapped */
        movw $0x1000, %di
        movw $0x3000 / 4, %cx
        xorl %eax, %eax
        cld
        rep stosl
        movl $0x2003, (0x1000)
        movl $0x3003, (0x2000)
        movl $0x0083, (0x3000)
        movl $0x1000, %eax
        movl %eax, %cr3
        movl %cr4, %eax
        orl $0x20, %eax
        movl %eax, %cr4
        movl $0xc0000080, %ecx
        rdmsr
        orl $0x100, %eax
        wrmsr
        movl %cr0, %eax
        orl $0x80000001, %eax
        movl %eax, %cr0
        ljmp $CODE64, $lm64

handler:
        say 'U'
        iret
fail:
        hlt
        jmp fail

        .code64
lm64:
        say 'L'
        say '\n'
        movb $EXIT_VALUE, %al
        outb %al, $EXIT_PORT
halt64:
        hlt
        jmp halt64

        .p2align 3
gdt:
        .quad 0
        .quad 0x00cf9a000000ffff   /* CODE32: base 0, 4 GiB, 32-bit */
        .quad 0x00cf92000000ffff   /* DATA: base 0, 4 GiB */
        .quad 0x00009a000000ffff   /* CODE16: base 0, 64 KiB, 16-bit */
        .quad 0x00af9a000000ffff   /* CODE64 */
gdtr:
        .word gdtr - gdt - 1
        .long gdt

        .org 510
        .byte 0x55, 0xaa
