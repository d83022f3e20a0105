/*
 * mcu_count: a QEMU TCG plugin for system emulation (qemu-system-arm) that counts
 * the guest instructions executed and records the count each time the guest
 * reaches one of a few marker addresses.
 *
 * edgeprune's bare-metal harness calls empty, never-inlined marker functions
 * around each inference (and, through TFLite Micro's profiler interface, around
 * each operator). Their addresses, read from the linked ELF, are given here as
 * mark=ADDR (in order; marker i is the i-th mark=). Every translation block adds
 * its instruction count to a counter inline, and an execution callback on the
 * first instruction of each marker function appends one event
 * (marker, instructions so far, per-class counts so far) to a list. The block
 * holding a marker is counted before its callback runs, so the difference of two
 * events is exactly the instructions executed after the first marker's block up
 * to and including the second's; the marker functions are one `bx lr`, so a
 * window holds the code between the two calls and the second call's return.
 * The harness runs one core with interrupts off, so no block is left half-way.
 *
 * Instruction classes (decided once per instruction at translation time, from
 * QEMU's own disassembly):
 *   0 load/store   ldr*, str*, ldm*, stm*, push, pop, vldr, vstr, vldm, vstm,
 *                  vpush, vpop, vld*, vst* (Helium)
 *   1 mac          multiplies and multiply-accumulates, scalar, DSP SIMD
 *                  (smla*, smlad*, smuad*, ...), float and Helium
 *   2 branch       b*, cb(n)z, bl(x), bx, tbb/tbh, and anything writing pc
 *   3 other        everything else (ALU, moves, compares, DSP SIMD add/sub, ...)
 *
 * Arguments: out=PATH (written at exit), mark=ADDR (hex or decimal, up to 16).
 * Output, text:
 *   edgeprune-mcu-count 1
 *   classes load_store mac branch other
 *   MARK TOTAL C0 C1 C2 C3      one line per event, in order
 *   end EVENTS TOTAL            the last line, after a complete run
 * Built with gcc against QEMU's own qemu-plugin.h (no glib).
 */

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MAX_MARKS 16
#define N_CLASSES 4

static uint64_t total;
static uint64_t by_class[N_CLASSES];
static uint64_t marks[MAX_MARKS];
static int n_marks;
static const char *out_path;

struct event {
    uint32_t mark;
    uint64_t total;
    uint64_t by_class[N_CLASSES];
};
static struct event *events;
static size_t n_events, cap_events;
static int out_of_memory;

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int classify(const char *disas)
{
    char mnem[32];
    size_t i = 0;
    while (disas[i] == ' ' || disas[i] == '\t') {
        disas++;
    }
    while (disas[i] && disas[i] != ' ' && disas[i] != '\t' && i < sizeof mnem - 1) {
        mnem[i] = disas[i];
        i++;
    }
    mnem[i] = '\0';
    const char *ops = disas + i;
    if (strstr(ops, "pc") && (starts_with(mnem, "pop") || starts_with(mnem, "ldm") ||
                              (starts_with(mnem, "ldr") && strncmp(ops, " pc", 3) == 0) ||
                              (starts_with(mnem, "mov") && strncmp(ops, " pc", 3) == 0))) {
        return 2;
    }
    if (mnem[0] == 'b' && !starts_with(mnem, "bic") && !starts_with(mnem, "bfc") &&
        !starts_with(mnem, "bfi") && !starts_with(mnem, "bkpt")) {
        return 2;
    }
    if (starts_with(mnem, "cbz") || starts_with(mnem, "cbnz") || starts_with(mnem, "tbb") ||
        starts_with(mnem, "tbh") || starts_with(mnem, "le") || starts_with(mnem, "wls") ||
        starts_with(mnem, "dls") || starts_with(mnem, "lctp")) {
        return 2;
    }
    if (starts_with(mnem, "ldr") || starts_with(mnem, "str") || starts_with(mnem, "ldm") ||
        starts_with(mnem, "stm") || starts_with(mnem, "push") || starts_with(mnem, "pop") ||
        starts_with(mnem, "ldrex") || starts_with(mnem, "strex") || starts_with(mnem, "lda") ||
        starts_with(mnem, "stl") || starts_with(mnem, "vldr") || starts_with(mnem, "vstr") ||
        starts_with(mnem, "vldm") || starts_with(mnem, "vstm") || starts_with(mnem, "vpush") ||
        starts_with(mnem, "vpop") || starts_with(mnem, "vld") || starts_with(mnem, "vst")) {
        return 0;
    }
    if (strstr(mnem, "mul") || strstr(mnem, "mla") || strstr(mnem, "mls") ||
        starts_with(mnem, "smla") || starts_with(mnem, "smls") || starts_with(mnem, "smua") ||
        starts_with(mnem, "smus") || starts_with(mnem, "smul") || starts_with(mnem, "smmul") ||
        starts_with(mnem, "smml") || starts_with(mnem, "umla") || starts_with(mnem, "umaal") ||
        starts_with(mnem, "vfma") || starts_with(mnem, "vfms") || starts_with(mnem, "vfnm") ||
        starts_with(mnem, "vmla") || starts_with(mnem, "vmls") || starts_with(mnem, "vnml") ||
        starts_with(mnem, "vmlav") || starts_with(mnem, "vmlad") || starts_with(mnem, "vrmlal") ||
        starts_with(mnem, "vqdmul") || starts_with(mnem, "vqrdmul") || starts_with(mnem, "vdiv") ||
        starts_with(mnem, "sdiv") || starts_with(mnem, "udiv")) {
        return 1;
    }
    return 3;
}

static void record(unsigned int vcpu_index, void *userdata)
{
    if (n_events == cap_events) {
        size_t cap = cap_events ? cap_events * 2 : 1024;
        struct event *grown = realloc(events, cap * sizeof *events);
        if (grown == NULL) {
            out_of_memory = 1;
            return;
        }
        events = grown;
        cap_events = cap;
    }
    struct event *e = &events[n_events++];
    e->mark = (uint32_t)(uintptr_t)userdata;
    e->total = total;
    memcpy(e->by_class, by_class, sizeof by_class);
}

static void on_tb_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    uint64_t counts[N_CLASSES] = {0};
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        char *text = qemu_plugin_insn_disas(insn);
        counts[classify(text ? text : "")]++;
        free(text);
        uint64_t vaddr = qemu_plugin_insn_vaddr(insn);
        for (int m = 0; m < n_marks; m++) {
            if (vaddr == marks[m]) {
                qemu_plugin_register_vcpu_insn_exec_cb(insn, record, QEMU_PLUGIN_CB_NO_REGS,
                                                       (void *)(uintptr_t)m);
            }
        }
    }
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &total, n);
    for (int c = 0; c < N_CLASSES; c++) {
        if (counts[c]) {
            qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
                                                     &by_class[c], counts[c]);
        }
    }
}

static void at_exit(qemu_plugin_id_t id, void *userdata)
{
    FILE *fh = fopen(out_path, "w");
    if (fh == NULL) {
        fprintf(stderr, "mcu_count: cannot write %s\n", out_path);
        return;
    }
    fprintf(fh, "edgeprune-mcu-count 1\n");
    fprintf(fh, "classes load_store mac branch other\n");
    if (out_of_memory) {
        fprintf(fh, "error out-of-memory\n");
    }
    for (size_t i = 0; i < n_events; i++) {
        struct event *e = &events[i];
        fprintf(fh, "%" PRIu32 " %" PRIu64, e->mark, e->total);
        for (int c = 0; c < N_CLASSES; c++) {
            fprintf(fh, " %" PRIu64, e->by_class[c]);
        }
        fprintf(fh, "\n");
    }
    fprintf(fh, "end %zu %" PRIu64 "\n", n_events, total);
    fclose(fh);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            out_path = argv[i] + 4;
        } else if (strncmp(argv[i], "mark=", 5) == 0 && n_marks < MAX_MARKS) {
            marks[n_marks++] = strtoull(argv[i] + 5, NULL, 0);
        } else {
            fprintf(stderr, "mcu_count: unknown argument %s (expected out=PATH or mark=ADDR)\n",
                    argv[i]);
            return 1;
        }
    }
    if (out_path == NULL || out_path[0] == '\0' || n_marks == 0) {
        fprintf(stderr, "mcu_count: needs out=PATH and at least one mark=ADDR\n");
        return 1;
    }
    if (!info->system_emulation) {
        fprintf(stderr, "mcu_count: made for system emulation (qemu-system-arm)\n");
        return 1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_translate);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
