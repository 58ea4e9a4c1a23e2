/* SGD with momentum and weight decay, PyTorch semantics (kernel: cl/sgd.cl). */
#include "runtime.h"
#include "stfpm/ops.h"

#include <math.h>

static stfpm_status sgd_check_same(const stfpm_tensor *w, const stfpm_tensor *t, const char *what) {
    if (!t || !t->buf) return stfpm_set_error(STFPM_ERR_ARG, "sgd_step: tensor %s is missing", what);
    if (!stfpm_tensor_same_shape(w, t))
        return stfpm_set_error(STFPM_ERR_ARG, "sgd_step: %s has shape (%d, %d, %d, %d), w has (%d, %d, %d, %d)",
                               what, t->n, t->c, t->h, t->w, w->n, w->c, w->h, w->w);
    return STFPM_OK;
}

/* v may be NULL only when momentum == 0 (PyTorch keeps no momentum buffer then). */
stfpm_status stfpm_sgd_step(stfpm_ctx *ctx, stfpm_tensor *w, const stfpm_tensor *g, stfpm_tensor *v,
                            float lr, float momentum, float weight_decay, stfpm_sgd_step_kind first_step) {
    if (!w || !w->buf) return stfpm_set_error(STFPM_ERR_ARG, "sgd_step: tensor w is missing");
    STFPM_TRY(sgd_check_same(w, g, "g"));
    if (v) STFPM_TRY(sgd_check_same(w, v, "v"));
    else if (momentum != 0.0f)
        return stfpm_set_error(STFPM_ERR_ARG, "sgd_step: momentum %g needs a momentum buffer v", momentum);
    if (!isfinite(lr) || !isfinite(momentum) || !isfinite(weight_decay) || lr < 0 || momentum < 0 ||
        weight_decay < 0)
        return stfpm_set_error(STFPM_ERR_ARG, "sgd_step: invalid hyper-parameters lr %g momentum %g "
                               "weight_decay %g", lr, momentum, weight_decay);
    cl_int woff = (cl_int)w->off, goff = (cl_int)g->off, has_v = v != NULL;
    cl_int voff = has_v ? (cl_int)v->off : 0, n = (cl_int)stfpm_tensor_numel(w);
    cl_int first = first_step != 0;
    cl_mem vb = has_v ? v->buf : w->buf;   /* placeholder, never touched without has_v */
    stfpm_karg a[] = {KARG(w->buf), KARG(woff), KARG(g->buf), KARG(goff), KARG(vb), KARG(voff),
                      KARG(has_v), KARG(n), KARG(lr), KARG(momentum), KARG(weight_decay), KARG(first)};
    size_t gsz = (size_t)(n ? n : 1);
    /* one element per work-item, neighbouring work-items on neighbouring elements (both
     * variants). GPU variant: the runtime's local size; CPU variant: 256, or the largest power
     * of two within the kernel's launch limit. */
    if (stfpm_gpu_kernels(ctx)) return stfpm_enqueue(ctx, "sgd", "sgd_step", 1, &gsz, NULL, KARGS(a));
    size_t lim = stfpm_kernel_wg_limit(ctx, "sgd", "sgd_step"), l = 256;
    while (l > 1 && l > lim) l >>= 1;
    return stfpm_enqueue(ctx, "sgd", "sgd_step", 1, &gsz, &l, KARGS(a));
}
