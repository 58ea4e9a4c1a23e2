/* STFPM feature-matching distance and its gradient w.r.t. the student (cl/loss.cl). */
#include "runtime.h"
#include "stfpm/ops.h"

static stfpm_status check_ts(const char *what, const stfpm_tensor *t, const stfpm_tensor *s) {
    if (!stfpm_tensor_same_shape(t, s))
        return stfpm_set_error(STFPM_ERR_ARG,
                               "%s: teacher (%d, %d, %d, %d) and student (%d, %d, %d, %d) features differ in shape",
                               what, t->n, t->c, t->h, t->w, s->n, s->c, s->h, s->w);
    return STFPM_OK;
}

stfpm_status stfpm_fm_distance(stfpm_ctx *ctx, const stfpm_tensor *t, const stfpm_tensor *s,
                               stfpm_tensor *d) {
    STFPM_TRY(check_ts("fm_distance", t, s));
    if (d->n != t->n || d->c != 1 || d->h != t->h || d->w != t->w)
        return stfpm_set_error(STFPM_ERR_ARG, "fm_distance: d has shape (%d, %d, %d, %d), expected (%d, 1, %d, %d)",
                               d->n, d->c, d->h, d->w, t->n, t->h, t->w);
    cl_int to = (cl_int)t->off, so = (cl_int)s->off, dof = (cl_int)d->off;
    cl_int N = t->n, C = t->c, HW = t->h * t->w;
    stfpm_karg a[] = {KARG(t->buf), KARG(to), KARG(s->buf), KARG(so), KARG(d->buf), KARG(dof),
                      KARG(N), KARG(C), KARG(HW)};
    if (stfpm_gpu_kernels(ctx)) {                         /* one work-item per position */
        size_t gg[2] = {(size_t)HW, (size_t)N};
        return stfpm_enqueue(ctx, "loss", "fm_distance_fwd_g", 2, gg, NULL, KARGS(a));
    }
    size_t g[2] = {((size_t)HW + 15) / 16, (size_t)N};  /* 16 positions per work-item */
    return stfpm_enqueue(ctx, "loss", "fm_distance_fwd", 2, g, NULL, KARGS(a));
}

stfpm_status stfpm_fm_distance_backward(stfpm_ctx *ctx, const stfpm_tensor *t, const stfpm_tensor *s,
                                        float scale, stfpm_grad_write accumulate, stfpm_tensor *ds) {
    STFPM_TRY(check_ts("fm_distance backward", t, s));
    if (!stfpm_tensor_same_shape(s, ds))
        return stfpm_set_error(STFPM_ERR_ARG, "fm_distance backward: ds has shape (%d, %d, %d, %d), expected (%d, %d, %d, %d)",
                               ds->n, ds->c, ds->h, ds->w, s->n, s->c, s->h, s->w);
    cl_int to = (cl_int)t->off, so = (cl_int)s->off, dso = (cl_int)ds->off;
    cl_int N = t->n, C = t->c, HW = t->h * t->w, acc = accumulate ? 1 : 0;
    stfpm_karg a[] = {KARG(t->buf), KARG(to), KARG(s->buf), KARG(so), KARG(ds->buf), KARG(dso),
                      KARG(N), KARG(C), KARG(HW), KARG(scale), KARG(acc)};
    if (stfpm_gpu_kernels(ctx)) {                         /* one work-item per position */
        size_t gg[2] = {(size_t)HW, (size_t)N};
        return stfpm_enqueue(ctx, "loss", "fm_distance_bwd_g", 2, gg, NULL, KARGS(a));
    }
    size_t g[2] = {((size_t)HW + 15) / 16, (size_t)N};  /* 16 positions per work-item */
    return stfpm_enqueue(ctx, "loss", "fm_distance_bwd", 2, g, NULL, KARGS(a));
}
