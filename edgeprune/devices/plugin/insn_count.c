/*
 * insn_count: a QEMU TCG plugin that counts the guest instructions executed
 * between pairs of marker system calls, in total and per instruction class.
 *
 * edgeprune's runner brackets each timed invoke with getppid() (aarch64
 * syscall 173) when its request says "mark_invokes". Every translation block
 * is classified once, when it is translated: each of its aarch64 instructions
 * is decoded into one of the classes below, and the block gets an execution
 * callback that adds its per-class counts to counters of the guest thread
 * (vCPU) running it. At the first marker of a pair the plugin notes the
 * marking thread's counters; at the second it records the differences as one
 * window. So a window holds the instructions the invoking thread executed, and
 * no other thread's: a runtime's idle helper threads (onnxruntime keeps a
 * timer thread) cannot leak into it. Counting whole blocks is exact as long as
 * no block is left half-way by a fault, which does not happen in the
 * runtimes' normal work.
 *
 * Classes (decoded from the A64 encoding; every instruction is in exactly one):
 *   simd_int_mac  vector integer multiply and multiply-accumulate: MUL, MLA,
 *                 MLS, SMULL/UMULL, SMLAL/UMLAL, SMLSL, SQDMULH, SQRDMULH, the
 *                 dot products SDOT/UDOT/USDOT, and SADALP/UADALP
 *   simd_fp_mac   floating-point multiply and multiply-add: FMLA, FMLS, FMUL,
 *                 FMULX (vector and by element), scalar FMUL, FMADD, FMSUB
 *   simd_other    every other SIMD and floating-point data-processing
 *                 instruction (adds, shifts, narrowing, compares, permutes,
 *                 conversions, min/max, moves between register files)
 *   simd_load     loads into SIMD/FP registers (LDR Q/D/S, LDP, LD1..LD4, LD1R)
 *   simd_store    stores from SIMD/FP registers
 *   load          loads into general registers (and prefetches, atomics)
 *   store         stores from general registers
 *   branch        B, BL, B.cond, CBZ/CBNZ, TBZ/TBNZ, BR, BLR, RET
 *   scalar        everything else: integer arithmetic, logic, moves, system
 *
 * Arguments (qemu-aarch64 -plugin libinsn_count.so,out=PATH[,syscall=N]):
 *   out=PATH     where the windows are written when the guest exits
 *   syscall=N    the marker system call number (default 173, getppid on aarch64)
 *
 * Output file, text:
 *   edgeprune-insn-count 2
 *   classes NAME...  the class names, in the order of the counts below
 *   vcpus N          guest threads that ever existed
 *   unpaired N       markers left open at exit (0 when the runner finished)
 *   crossed N        windows closed by another thread than opened them
 *   w TOTAL C1 C2 ...  one line per window, in order: the total, then per class
 *
 * Threads: the runtimes run with one thread under emulation; work a runtime
 * spread over a thread pool would not be counted. "vcpus" lets the host see
 * how many guest threads there were. Built with gcc against QEMU's own
 * qemu-plugin.h (no glib).
 */

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

enum insn_class {
    SIMD_INT_MAC, SIMD_FP_MAC, SIMD_OTHER, SIMD_LOAD, SIMD_STORE, LOAD, STORE, BRANCH, SCALAR,
    N_CLASSES
};
static const char *const class_names[N_CLASSES] = {
    "simd_int_mac", "simd_fp_mac", "simd_other", "simd_load", "simd_store", "load", "store",
    "branch", "scalar",
};

#define MAX_VCPUS 1024
/* guest instructions executed so far per guest thread: [N_CLASSES] is the total */
static uint64_t executed[MAX_VCPUS][N_CLASSES + 1];
static int too_many_vcpus;
static int64_t marker_syscall = 173;
static const char *out_path;

static int window_open;
static unsigned int window_vcpu;
static uint64_t window_start[N_CLASSES + 1];
static uint64_t *windows; /* n_windows rows of N_CLASSES + 1 counts */
static size_t n_windows, cap_windows;
static unsigned int vcpus;
static unsigned int crossed;
static int out_of_memory;

/* A translation block's counts: only the classes it has, so the callback stays short. */
struct block {
    uint32_t total;
    uint8_t n;
    uint8_t cls[N_CLASSES];
    uint32_t count[N_CLASSES];
};

static int is_simd_mac(uint32_t insn, int *fp)
{
    *fp = 0;
    if ((insn & 0x9F200400u) == 0x0E200400u) {          /* three same */
        uint32_t opcode = (insn >> 11) & 0x1F;
        if (opcode >= 0x18) {                            /* the floating-point half */
            *fp = 1;
            return opcode == 0x19 || opcode == 0x1B;     /* FMLA/FMLS, FMUL/FMULX */
        }
        return opcode == 0x12 || opcode == 0x13 || opcode == 0x16; /* MLA/MLS, MUL, SQ(R)DMULH */
    }
    if ((insn & 0x9F208400u) == 0x0E008400u) {          /* three same extra: dot products */
        uint32_t opcode = (insn >> 11) & 0xF;
        return opcode <= 0x3;                            /* SQRDMLAH/SH, SDOT/UDOT, USDOT */
    }
    if ((insn & 0x9F200C00u) == 0x0E200000u) {          /* three different: long multiplies */
        uint32_t opcode = (insn >> 12) & 0xF;
        return opcode >= 0x8 && opcode <= 0xE;
    }
    if ((insn & 0x9F3E0C00u) == 0x0E200800u) {          /* two-register misc */
        return ((insn >> 12) & 0x1F) == 0x06;            /* SADALP/UADALP */
    }
    if ((insn & 0x9F000400u) == 0x0F000000u) {          /* vector x indexed element */
        uint32_t opcode = (insn >> 12) & 0xF;
        int u = (insn >> 29) & 1;
        if (opcode == 0x1 || opcode == 0x5 || opcode == 0x9) {
            *fp = 1;                                     /* FMLA, FMLS, FMUL/FMULX */
            return 1;
        }
        if ((opcode == 0x0 || opcode == 0x4) && !u) {
            *fp = 1;                                     /* FMLAL/FMLSL (half precision) */
            return 1;
        }
        return 1;                                        /* MLA, MLS, MUL, S/UMLAL, SMULL, SQDMULH, SDOT ... */
    }
    if ((insn & 0x5F000000u) == 0x1F000000u) {          /* scalar FMADD/FMSUB/FNMADD/FNMSUB */
        *fp = 1;
        return 1;
    }
    if ((insn & 0xFF200C00u) == 0x1E200800u) {          /* scalar two-source: FMUL, FNMUL */
        uint32_t opcode = (insn >> 12) & 0xF;
        *fp = 1;
        return opcode == 0x0 || opcode == 0x8;
    }
    return 0;
}

static enum insn_class classify(uint32_t insn)
{
    if ((insn & 0x0A000000u) == 0x08000000u) {          /* loads and stores */
        int simd = (insn >> 26) & 1;
        int load = (insn >> 22) & 1;
        uint32_t group = (insn >> 27) & 0x7;
        if (group == 0x3 && !((insn >> 24) & 1)) {
            load = 1;                                    /* load register (literal) */
        } else if (group == 0x7 && !simd) {
            load = ((insn >> 22) & 0x3) != 0;            /* opc 00 stores; LDR, LDRS*, PRFM load */
        }
        if (simd) {
            return load ? SIMD_LOAD : SIMD_STORE;
        }
        return load ? LOAD : STORE;
    }
    if ((insn & 0x0E000000u) == 0x0E000000u) {          /* SIMD and floating point */
        int fp;
        if (is_simd_mac(insn, &fp)) {
            return fp ? SIMD_FP_MAC : SIMD_INT_MAC;
        }
        return SIMD_OTHER;
    }
    if ((insn & 0x7C000000u) == 0x14000000u ||          /* B, BL */
        (insn & 0xFE000000u) == 0x54000000u ||          /* B.cond */
        (insn & 0x7E000000u) == 0x34000000u ||          /* CBZ, CBNZ */
        (insn & 0x7E000000u) == 0x36000000u ||          /* TBZ, TBNZ */
        (insn & 0xFE000000u) == 0xD6000000u) {          /* BR, BLR, RET */
        return BRANCH;
    }
    return SCALAR;
}

static void on_tb_exec(unsigned int vcpu_index, void *userdata)
{
    const struct block *b = userdata;
    if (vcpu_index >= MAX_VCPUS) {
        too_many_vcpus = 1;
        return;
    }
    uint64_t *counts = executed[vcpu_index];
    for (unsigned int i = 0; i < b->n; i++) {
        counts[b->cls[i]] += b->count[i];
    }
    counts[N_CLASSES] += b->total;
}

static void on_tb_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    uint32_t per_class[N_CLASSES] = {0};
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint32_t word = 0;
        if (qemu_plugin_insn_size(insn) == 4) {
            memcpy(&word, qemu_plugin_insn_data(insn), 4);
        }
        per_class[classify(word)]++;
    }
    /* Kept for the life of the process: a block can be executed until the guest exits. */
    struct block *b = calloc(1, sizeof *b);
    if (b == NULL) {
        out_of_memory = 1;
        return;
    }
    b->total = (uint32_t)n;
    for (int c = 0; c < N_CLASSES; c++) {
        if (per_class[c]) {
            b->cls[b->n] = (uint8_t)c;
            b->count[b->n] = per_class[c];
            b->n++;
        }
    }
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_tb_exec, QEMU_PLUGIN_CB_NO_REGS, b);
}

static void record(const uint64_t *end)
{
    if (n_windows == cap_windows) {
        size_t cap = cap_windows ? cap_windows * 2 : 256;
        uint64_t *grown = realloc(windows, cap * (N_CLASSES + 1) * sizeof *windows);
        if (grown == NULL) {
            out_of_memory = 1;
            return;
        }
        windows = grown;
        cap_windows = cap;
    }
    uint64_t *row = windows + n_windows * (N_CLASSES + 1);
    for (int c = 0; c <= N_CLASSES; c++) {
        row[c] = end[c] - window_start[c];
    }
    n_windows++;
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num,
                       uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                       uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    static const uint64_t none[N_CLASSES + 1];
    if (num != marker_syscall) {
        return;
    }
    const uint64_t *now = vcpu_index < MAX_VCPUS ? executed[vcpu_index] : none;
    if (!window_open) {
        window_open = 1;
        window_vcpu = vcpu_index;
        memcpy(window_start, now, sizeof window_start);
        return;
    }
    if (vcpu_index != window_vcpu) {
        crossed++;
    }
    window_open = 0;
    record(now);
}

static void on_vcpu_init(qemu_plugin_id_t id, unsigned int vcpu_index)
{
    vcpus++;
}

static void at_guest_exit(qemu_plugin_id_t id, void *userdata)
{
    FILE *fh = fopen(out_path, "w");
    if (fh == NULL) {
        fprintf(stderr, "insn_count: cannot write %s\n", out_path);
        return;
    }
    fprintf(fh, "edgeprune-insn-count 2\nclasses");
    for (int c = 0; c < N_CLASSES; c++) {
        fprintf(fh, " %s", class_names[c]);
    }
    fprintf(fh, "\nvcpus %u\n", vcpus);
    fprintf(fh, "unpaired %d\n", window_open);
    fprintf(fh, "crossed %u\n", crossed);
    if (out_of_memory) {
        fprintf(fh, "error out-of-memory\n");
    }
    if (too_many_vcpus) {
        fprintf(fh, "error too-many-threads\n");
    }
    for (size_t i = 0; i < n_windows; i++) {
        const uint64_t *row = windows + i * (N_CLASSES + 1);
        fprintf(fh, "w %" PRIu64, row[N_CLASSES]);
        for (int c = 0; c < N_CLASSES; c++) {
            fprintf(fh, " %" PRIu64, row[c]);
        }
        fputc('\n', fh);
    }
    fclose(fh);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            out_path = argv[i] + 4;
        } else if (strncmp(argv[i], "syscall=", 8) == 0) {
            marker_syscall = strtoll(argv[i] + 8, NULL, 10);
        } else {
            fprintf(stderr, "insn_count: unknown argument %s (expected out=PATH or syscall=N)\n",
                    argv[i]);
            return 1;
        }
    }
    if (out_path == NULL || out_path[0] == '\0') {
        fprintf(stderr, "insn_count: missing argument out=PATH\n");
        return 1;
    }
    if (info->system_emulation) {
        fprintf(stderr, "insn_count: made for user-mode emulation (qemu-aarch64)\n");
        return 1;
    }
    qemu_plugin_register_vcpu_init_cb(id, on_vcpu_init);
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, at_guest_exit, NULL);
    return 0;
}
