/* ckpt_tool.c - the checkpoint operations tools/syscall_sweep.sh kills and checks:
 *   ckpt_tool make DIR SEED STEP   a small model (seed) saved with its trainer state at STEP
 *   ckpt_tool copy SRC DST         load SRC (weights and trainer state), save it to DST: the save under test
 *   ckpt_tool step DIR             load DIR as a resume would (falling back to DIR.old); print its step
 * Exit status 0 on success, 1 with the library's message on stderr. */
#define DEEPSEEK_IMPLEMENTATION
#include "../deepseek.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    ds_error err;
    ds_model *m = NULL;
    ds_train_state st;
    memset(&st, 0, sizeof st);
    if (argc == 5 && !strcmp(argv[1], "make")) {
        ds_config c;
        ds_config_preset("test", &c, &err);
        c.vocab = 256, c.d_model = 64, c.n_heads = 4, c.n_kv_heads = 2, c.d_ff = 160, c.n_layers = 2;
        st.step = atol(argv[4]), st.rng = (uint64_t)st.step * 7919;
        if (!(m = ds_model_new(&c, 1, 8, &err)) || ds_model_init(m, (uint64_t)atol(argv[3])) ||
            ds_checkpoint_save(m, NULL, &st, argv[2], DS_DTYPE_F32, &err))
            goto fail;
    } else if (argc == 4 && !strcmp(argv[1], "copy")) {
        if (!(m = ds_checkpoint_load(argv[2], 1, 8, &st, &err)) || ds_checkpoint_save(m, NULL, &st, argv[3], DS_DTYPE_F32, &err)) goto fail;
    } else if (argc == 3 && !strcmp(argv[1], "step")) {
        if (!(m = ds_checkpoint_load(argv[2], 1, 8, &st, &err))) goto fail;
        printf("%ld\n", st.step);
    } else {
        fprintf(stderr, "usage: ckpt_tool make DIR SEED STEP | copy SRC DST | step DIR\n");
        return 2;
    }
    ds_model_free(m);
    return 0;
fail:
    fprintf(stderr, "ckpt_tool: %s\n", err.msg);
    ds_model_free(m);
    return 1;
}
