/*
 * insn_count: a QEMU TCG plugin that counts the guest instructions executed
 * between pairs of marker system calls.
 *
 * edgeprune's runner brackets each timed invoke with getppid() (aarch64
 * syscall 173) when its request says "mark_invokes". Every translation block
 * gets an execution callback that adds the block's instruction count to a
 * counter of the guest thread (vCPU) running it. At the first marker of a
 * pair the plugin notes the marking thread's counter; at the second it
 * records the difference as one window. So a window holds the instructions
 * the invoking thread executed, and no other thread's: a runtime's idle
 * helper threads (onnxruntime keeps a timer thread) cannot leak into it.
 * Counting whole blocks is exact as long as no block is left half-way by a
 * fault, which does not happen in the runtimes' normal work.
 *
 * Arguments (qemu-aarch64 -plugin libinsn_count.so,out=PATH[,syscall=N]):
 *   out=PATH     where the windows are written when the guest exits
 *   syscall=N    the marker system call number (default 173, getppid on aarch64)
 *
 * Output file, text:
 *   edgeprune-insn-count 1
 *   vcpus N          guest threads that ever existed
 *   unpaired N       markers left open at exit (0 when the runner finished)
 *   crossed N        windows closed by another thread than opened them
 *   COUNT            one line per window, in order
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

#define MAX_VCPUS 4096
static uint64_t executed[MAX_VCPUS]; /* guest instructions executed so far, per guest thread */
static int too_many_vcpus;
static int64_t marker_syscall = 173;
static const char *out_path;

static int window_open;
static unsigned int window_vcpu;
static uint64_t window_start;
static uint64_t *windows;
static size_t n_windows, cap_windows;
static unsigned int vcpus;
static unsigned int crossed;
static int out_of_memory;

static void on_tb_exec(unsigned int vcpu_index, void *n_insns)
{
    if (vcpu_index < MAX_VCPUS) {
        executed[vcpu_index] += (uint64_t)(uintptr_t)n_insns;
    } else {
        too_many_vcpus = 1;
    }
}

static void on_tb_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_tb_exec, QEMU_PLUGIN_CB_NO_REGS,
                                         (void *)(uintptr_t)n);
}

static void record(uint64_t count)
{
    if (n_windows == cap_windows) {
        size_t cap = cap_windows ? cap_windows * 2 : 256;
        uint64_t *grown = realloc(windows, cap * sizeof *windows);
        if (grown == NULL) {
            out_of_memory = 1;
            return;
        }
        windows = grown;
        cap_windows = cap;
    }
    windows[n_windows++] = count;
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num,
                       uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                       uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    if (num != marker_syscall) {
        return;
    }
    if (!window_open) {
        window_open = 1;
        window_vcpu = vcpu_index;
        window_start = vcpu_index < MAX_VCPUS ? executed[vcpu_index] : 0;
        return;
    }
    if (vcpu_index != window_vcpu) {
        crossed++;
    }
    window_open = 0;
    record((vcpu_index < MAX_VCPUS ? executed[vcpu_index] : 0) - window_start);
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
    fprintf(fh, "edgeprune-insn-count 1\n");
    fprintf(fh, "vcpus %u\n", vcpus);
    fprintf(fh, "unpaired %d\n", window_open);
    fprintf(fh, "crossed %u\n", crossed);
    if (out_of_memory) {
        fprintf(fh, "error out-of-memory\n");
    }
    if (too_many_vcpus) {
        fprintf(fh, "error too-many-threads\n");
    }
    for (size_t i = 0; i < n_windows; i++) {
        fprintf(fh, "%" PRIu64 "\n", windows[i]);
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
