/* A qemu TCG plugin that counts the guest instructions a program executes
 * and prints "insns: N" at exit: where no ARM core is at hand, the count
 * under qemu-aarch64 is what a NEON change can be measured by (it is not a
 * time: it weighs a four-register `tbl` as one instruction, like an add).
 * Each translated block adds its length to the count when it runs.
 *
 * qemu ships the plugin interface but Debian no header for it, so the few
 * entry points used are declared here as qemu 7.2 defines them (plugin API
 * version 1, whose inline adds later versions replaced). tools/neon_icount.sh
 * builds and runs it:
 *
 *   gcc -shared -fPIC -O2 tools/qemu_icount.c -o /tmp/libqemu_icount.so
 *   qemu-aarch64 -L /usr/aarch64-linux-gnu -plugin /tmp/libqemu_icount.so -d plugin <program>
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };

void qemu_plugin_register_vcpu_tb_trans_cb(
    qemu_plugin_id_t id, void (*cb)(qemu_plugin_id_t, struct qemu_plugin_tb *));
void qemu_plugin_register_vcpu_tb_exec_inline(
    struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr, uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_atexit_cb(
    qemu_plugin_id_t id, void (*cb)(qemu_plugin_id_t, void *), void *userdata);
void qemu_plugin_outs(const char *string);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* One guest thread: the programs counted here run on one. */
static uint64_t executed;

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(
        tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed, qemu_plugin_tb_n_insns(tb));
}

static void on_exit(qemu_plugin_id_t id, void *userdata) {
    (void)id;
    (void)userdata;
    char line[48];
    snprintf(line, sizeof line, "insns: %llu\n", (unsigned long long)executed);
    qemu_plugin_outs(line);
}

__attribute__((visibility("default"))) int qemu_plugin_install(
    qemu_plugin_id_t id, const struct qemu_info_t *info, int argc, char **argv) {
    (void)info;
    (void)argc;
    (void)argv;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_exit, NULL);
    return 0;
}
