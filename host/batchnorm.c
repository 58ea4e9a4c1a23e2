/* Batch normalisation forward (train / eval) and backward, PyTorch semantics (SPEC section 2).
 * Kernels: cl/batchnorm.cl. Per-channel statistics are a deterministic two-stage reduction
 * into the scratch slot STFPM_SCRATCH_PARTIALS. CPU variant: one work-item per (plane segment,
 * channel) writes a partial, then one work-item per channel combines its partials in a fixed
 * order. GPU variant: one work-group per (chunk of the channel's N*H*W values, channel) writes a
 * partial (a tree in local memory), then one work-group per channel combines them (a tree). */
#include "runtime.h"
#include "stfpm/ops.h"

#define BN_PROG "batchnorm"
#define BN_SEG 4096          /* values per work-item when a plane is split (multiple of 16) */
#define BN_SPLIT 8192        /* planes up to this many values are one work-item each */
#define BN_G_ITEMS 8         /* GPU variant: target values per work-item in a stage-1 chunk */
#define BN_G_MAX_GROUPS 1024 /* GPU variant: most stage-1 work-groups (partials) per channel */
#define BN_FINAL_LSZ 64      /* CPU variant: local size of the per-channel final kernels */

/* How a channel's N*HW values are split (see cl/batchnorm.cl): every (sample, channel) plane
 * of HW values is cut into S segments of seg values; one work-item per (segment, channel). */
typedef struct { cl_int seg, S, P; } bn_plan;

static bn_plan bn_make_plan(int N, int HW) {
    bn_plan pl;
    pl.seg = HW > BN_SPLIT ? BN_SEG : (HW > 0 ? HW : 1);
    pl.S = (HW + pl.seg - 1) / pl.seg;
    if (pl.S < 1) pl.S = 1;
    pl.P = N * pl.S;
    return pl;
}

/* Largest power of two <= min(cap, the launch limit of kernel name). */
static size_t bn_local(stfpm_ctx *ctx, const char *name, size_t cap) {
    size_t lim = stfpm_kernel_wg_limit(ctx, BN_PROG, name), l = cap;
    while (l > 1 && l > lim) l >>= 1;
    return l;
}

/* GPU variant: a channel's M = N*HW values (numbered n * HW + i) in G chunks of chunk values,
 * one stage-1 work-group of lsz work-items per (chunk, channel). */
typedef struct { cl_int chunk, G; size_t lsz; } bn_gplan;

static bn_gplan bn_make_gplan(stfpm_ctx *ctx, const char *partial_kernel, int M) {
    bn_gplan pl;
    pl.lsz = bn_local(ctx, partial_kernel, 256);
    long per = (long)pl.lsz * BN_G_ITEMS, m = M > 0 ? M : 1;
    long g = (m + per - 1) / per;
    if (g > BN_G_MAX_GROUPS) g = BN_G_MAX_GROUPS;
    pl.chunk = (cl_int)((m + g - 1) / g);
    pl.G = (cl_int)((m + pl.chunk - 1) / pl.chunk);
    return pl;
}

static stfpm_status bn_check_tensor(const stfpm_tensor *t, const char *op, const char *what) {
    if (!t || !t->buf)
        return stfpm_set_error(STFPM_ERR_ARG, "%s: tensor %s is missing", op, what);
    return STFPM_OK;
}

static stfpm_status bn_check_param(const stfpm_tensor *t, int C, const char *op, const char *what) {
    STFPM_TRY(bn_check_tensor(t, op, what));
    if (t->n != 1 || t->c != C || t->h != 1 || t->w != 1)
        return stfpm_set_error(STFPM_ERR_ARG, "%s: %s has shape (%d, %d, %d, %d), expected (1, %d, 1, 1)",
                               op, what, t->n, t->c, t->h, t->w, C);
    return STFPM_OK;
}

static stfpm_status bn_check_same(const stfpm_tensor *x, const stfpm_tensor *t, const char *op,
                                  const char *what) {
    STFPM_TRY(bn_check_tensor(t, op, what));
    if (!stfpm_tensor_same_shape(x, t))
        return stfpm_set_error(STFPM_ERR_ARG, "%s: %s has shape (%d, %d, %d, %d), x has (%d, %d, %d, %d)",
                               op, what, t->n, t->c, t->h, t->w, x->n, x->c, x->h, x->w);
    return STFPM_OK;
}

/* y = (x - mean) * inv * w + b, one work-item per (plane segment, channel) (GPU variant: per
 * element); inv = s, or 1/sqrt(s + eps) if is_var. */
static stfpm_status bn_apply(stfpm_ctx *ctx, const stfpm_tensor *x, stfpm_tensor *y,
                             const stfpm_tensor *mean, const stfpm_tensor *s, int is_var, float eps,
                             const stfpm_tensor *w, const stfpm_tensor *b) {
    cl_int xoff = (cl_int)x->off, yoff = (cl_int)y->off, moff = (cl_int)mean->off,
           soff = (cl_int)s->off, woff = (cl_int)w->off, boff = (cl_int)b->off;
    cl_int N = x->n, C = x->c, HW = x->h * x->w;
    if (stfpm_gpu_kernels(ctx)) {
        stfpm_karg a[] = {KARG(x->buf), KARG(xoff), KARG(y->buf), KARG(yoff), KARG(mean->buf), KARG(moff),
                          KARG(s->buf), KARG(soff), KARG(is_var), KARG(eps), KARG(w->buf), KARG(woff),
                          KARG(b->buf), KARG(boff), KARG(N), KARG(C), KARG(HW)};
        size_t gws[3] = {(size_t)HW, (size_t)C, (size_t)N};
        return stfpm_enqueue(ctx, BN_PROG, "bn_apply_g", 3, gws, NULL, KARGS(a));
    }
    bn_plan pl = bn_make_plan(N, HW);
    stfpm_karg a[] = {KARG(x->buf), KARG(xoff), KARG(y->buf), KARG(yoff), KARG(mean->buf), KARG(moff),
                      KARG(s->buf), KARG(soff), KARG(is_var), KARG(eps), KARG(w->buf), KARG(woff),
                      KARG(b->buf), KARG(boff), KARG(N), KARG(C), KARG(HW), KARG(pl.seg), KARG(pl.S)};
    size_t gws[2] = {(size_t)pl.P, (size_t)C};
    return stfpm_enqueue(ctx, BN_PROG, "bn_apply", 2, gws, NULL, KARGS(a));
}

stfpm_status stfpm_batchnorm_forward_train(stfpm_ctx *ctx, const stfpm_tensor *x,
                                           const stfpm_tensor *weight, const stfpm_tensor *bias,
                                           stfpm_tensor *running_mean, stfpm_tensor *running_var,
                                           float momentum, float eps, stfpm_tensor *y,
                                           stfpm_tensor *save_mean, stfpm_tensor *save_invstd) {
    const char *op = "batchnorm_forward_train";
    STFPM_TRY(bn_check_tensor(x, op, "x"));
    int C = x->c;
    STFPM_TRY(bn_check_param(weight, C, op, "weight"));
    STFPM_TRY(bn_check_param(bias, C, op, "bias"));
    STFPM_TRY(bn_check_param(save_mean, C, op, "save_mean"));
    STFPM_TRY(bn_check_param(save_invstd, C, op, "save_invstd"));
    STFPM_TRY(bn_check_same(x, y, op, "y"));
    if ((running_mean == NULL) != (running_var == NULL))
        return stfpm_set_error(STFPM_ERR_ARG, "%s: running_mean and running_var must both be given or "
                               "both be NULL", op);
    cl_int update = running_mean != NULL;
    if (update) {
        STFPM_TRY(bn_check_param(running_mean, C, op, "running_mean"));
        STFPM_TRY(bn_check_param(running_var, C, op, "running_var"));
    }
    int total = x->n * x->h * x->w;
    if (total < 2)
        return stfpm_set_error(STFPM_ERR_ARG, "%s: expected more than 1 value per channel when "
                               "training, got x of shape (%d, %d, %d, %d)", op, x->n, x->c, x->h, x->w);

    cl_int N = x->n, Cc = C, HW = x->h * x->w, xoff = (cl_int)x->off;
    /* with no running statistics, pass save_mean as a placeholder buffer (never touched) */
    const stfpm_tensor *rm = update ? running_mean : save_mean, *rv = update ? running_var : save_mean;
    cl_int rmoff = (cl_int)rm->off, rvoff = (cl_int)rv->off, smoff = (cl_int)save_mean->off,
           sioff = (cl_int)save_invstd->off;
    cl_mem part;
    if (stfpm_gpu_kernels(ctx)) {
        cl_int M = total;
        bn_gplan pl = bn_make_gplan(ctx, "bn_stats_partial_g", M);
        STFPM_TRY(stfpm_scratch(ctx, STFPM_SCRATCH_PARTIALS, (size_t)3 * C * pl.G * sizeof(float), &part));
        stfpm_karg a1[] = {KARG(x->buf), KARG(xoff), KARG(Cc), KARG(HW), KARG(M), KARG(pl.chunk), KARG(pl.G),
                           KARG(part), KLOCAL(pl.lsz * sizeof(float))};
        size_t g1[2] = {(size_t)pl.G * pl.lsz, (size_t)C}, l1[2] = {pl.lsz, 1};
        STFPM_TRY(stfpm_enqueue(ctx, BN_PROG, "bn_stats_partial_g", 2, g1, l1, KARGS(a1)));
        size_t lf = bn_local(ctx, "bn_stats_final_g", 256);
        stfpm_karg a2[] = {KARG(part), KARG(pl.G), KARG(Cc), KARG(eps), KARG(momentum), KARG(update),
                           KARG(rm->buf), KARG(rmoff), KARG(rv->buf), KARG(rvoff), KARG(save_mean->buf),
                           KARG(smoff), KARG(save_invstd->buf), KARG(sioff), KLOCAL(3 * lf * sizeof(float))};
        size_t g2[2] = {lf, (size_t)C}, l2[2] = {lf, 1};
        STFPM_TRY(stfpm_enqueue(ctx, BN_PROG, "bn_stats_final_g", 2, g2, l2, KARGS(a2)));
        return bn_apply(ctx, x, y, save_mean, save_invstd, 0, eps, weight, bias);
    }

    bn_plan pl = bn_make_plan(N, HW);
    cl_int P = pl.P;
    STFPM_TRY(stfpm_scratch(ctx, STFPM_SCRATCH_PARTIALS, (size_t)3 * C * P * sizeof(float), &part));
    stfpm_karg a1[] = {KARG(x->buf), KARG(xoff), KARG(N), KARG(Cc), KARG(HW), KARG(pl.seg), KARG(pl.S),
                       KARG(P), KARG(part)};
    size_t g1[2] = {(size_t)P, (size_t)C};
    STFPM_TRY(stfpm_enqueue(ctx, BN_PROG, "bn_stats_partial", 2, g1, NULL, KARGS(a1)));

    stfpm_karg a2[] = {KARG(part), KARG(P), KARG(Cc), KARG(eps), KARG(momentum), KARG(update),
                       KARG(rm->buf), KARG(rmoff), KARG(rv->buf), KARG(rvoff), KARG(save_mean->buf),
                       KARG(smoff), KARG(save_invstd->buf), KARG(sioff)};
    size_t g2 = (size_t)C, l2 = bn_local(ctx, "bn_stats_final", BN_FINAL_LSZ);
    STFPM_TRY(stfpm_enqueue(ctx, BN_PROG, "bn_stats_final", 1, &g2, &l2, KARGS(a2)));

    return bn_apply(ctx, x, y, save_mean, save_invstd, 0, eps, weight, bias);
}

stfpm_status stfpm_batchnorm_forward_eval(stfpm_ctx *ctx, const stfpm_tensor *x,
                                          const stfpm_tensor *weight, const stfpm_tensor *bias,
                                          const stfpm_tensor *running_mean,
                                          const stfpm_tensor *running_var, float eps,
                                          stfpm_tensor *y) {
    const char *op = "batchnorm_forward_eval";
    STFPM_TRY(bn_check_tensor(x, op, "x"));
    int C = x->c;
    STFPM_TRY(bn_check_param(weight, C, op, "weight"));
    STFPM_TRY(bn_check_param(bias, C, op, "bias"));
    STFPM_TRY(bn_check_param(running_mean, C, op, "running_mean"));
    STFPM_TRY(bn_check_param(running_var, C, op, "running_var"));
    STFPM_TRY(bn_check_same(x, y, op, "y"));
    return bn_apply(ctx, x, y, running_mean, running_var, 1, eps, weight, bias);
}

stfpm_status stfpm_batchnorm_backward(stfpm_ctx *ctx, const stfpm_tensor *x, const stfpm_tensor *dy,
                                      const stfpm_tensor *weight, const stfpm_tensor *save_mean,
                                      const stfpm_tensor *save_invstd, stfpm_tensor *dx,
                                      stfpm_tensor *dweight, stfpm_tensor *dbias) {
    const char *op = "batchnorm_backward";
    STFPM_TRY(bn_check_tensor(x, op, "x"));
    int C = x->c;
    STFPM_TRY(bn_check_same(x, dy, op, "dy"));
    STFPM_TRY(bn_check_same(x, dx, op, "dx"));
    STFPM_TRY(bn_check_param(weight, C, op, "weight"));
    STFPM_TRY(bn_check_param(save_mean, C, op, "save_mean"));
    STFPM_TRY(bn_check_param(save_invstd, C, op, "save_invstd"));
    if (dweight) STFPM_TRY(bn_check_param(dweight, C, op, "dweight"));
    if (dbias) STFPM_TRY(bn_check_param(dbias, C, op, "dbias"));

    cl_int N = x->n, Cc = C, HW = x->h * x->w, M = x->n * x->h * x->w;
    cl_int xoff = (cl_int)x->off, dyoff = (cl_int)dy->off, moff = (cl_int)save_mean->off;
    cl_int ioff = (cl_int)save_invstd->off, woff = (cl_int)weight->off, dxoff = (cl_int)dx->off;
    cl_int has_dw = dweight != NULL, has_db = dbias != NULL;
    cl_int dwoff = has_dw ? (cl_int)dweight->off : 0, dboff = has_db ? (cl_int)dbias->off : 0;
    cl_mem part;
    if (stfpm_gpu_kernels(ctx)) {
        bn_gplan pl = bn_make_gplan(ctx, "bn_bwd_partial_g", M);
        STFPM_TRY(stfpm_scratch(ctx, STFPM_SCRATCH_PARTIALS,
                                ((size_t)2 * C * pl.G + (size_t)3 * C) * sizeof(float), &part));
        cl_int coff = 2 * C * pl.G;
        stfpm_karg a1[] = {KARG(x->buf), KARG(xoff), KARG(dy->buf), KARG(dyoff), KARG(save_mean->buf),
                           KARG(moff), KARG(Cc), KARG(HW), KARG(M), KARG(pl.chunk), KARG(pl.G), KARG(part),
                           KLOCAL(2 * pl.lsz * sizeof(float))};
        size_t g1[2] = {(size_t)pl.G * pl.lsz, (size_t)C}, l1[2] = {pl.lsz, 1};
        STFPM_TRY(stfpm_enqueue(ctx, BN_PROG, "bn_bwd_partial_g", 2, g1, l1, KARGS(a1)));
        cl_mem dwb = has_dw ? dweight->buf : part, dbb = has_db ? dbias->buf : part;
        size_t lf = bn_local(ctx, "bn_bwd_final_g", 256);
        stfpm_karg a2[] = {KARG(part), KARG(pl.G), KARG(Cc), KARG(M), KARG(save_invstd->buf), KARG(ioff),
                           KARG(weight->buf), KARG(woff), KARG(part), KARG(coff), KARG(has_dw), KARG(dwb),
                           KARG(dwoff), KARG(has_db), KARG(dbb), KARG(dboff), KLOCAL(2 * lf * sizeof(float))};
        size_t g2[2] = {lf, (size_t)C}, l2[2] = {lf, 1};
        STFPM_TRY(stfpm_enqueue(ctx, BN_PROG, "bn_bwd_final_g", 2, g2, l2, KARGS(a2)));
        stfpm_karg a3[] = {KARG(x->buf), KARG(xoff), KARG(dy->buf), KARG(dyoff), KARG(save_mean->buf),
                           KARG(moff), KARG(part), KARG(coff), KARG(N), KARG(Cc), KARG(HW), KARG(dx->buf),
                           KARG(dxoff)};
        size_t g3[3] = {(size_t)HW, (size_t)C, (size_t)N};
        return stfpm_enqueue(ctx, BN_PROG, "bn_bwd_dx_g", 3, g3, NULL, KARGS(a3));
    }

    bn_plan pl = bn_make_plan(N, HW);
    cl_int P = pl.P;
    STFPM_TRY(stfpm_scratch(ctx, STFPM_SCRATCH_PARTIALS, ((size_t)2 * C * P + (size_t)3 * C) * sizeof(float),
                            &part));
    cl_int coff = 2 * C * P;

    stfpm_karg a1[] = {KARG(x->buf), KARG(xoff), KARG(dy->buf), KARG(dyoff), KARG(save_mean->buf),
                       KARG(moff), KARG(N), KARG(Cc), KARG(HW), KARG(pl.seg), KARG(pl.S), KARG(P),
                       KARG(part)};
    size_t g1[2] = {(size_t)P, (size_t)C};
    STFPM_TRY(stfpm_enqueue(ctx, BN_PROG, "bn_bwd_partial", 2, g1, NULL, KARGS(a1)));

    cl_mem dwb = has_dw ? dweight->buf : part, dbb = has_db ? dbias->buf : part;
    stfpm_karg a2[] = {KARG(part), KARG(P), KARG(Cc), KARG(M), KARG(save_invstd->buf), KARG(ioff),
                       KARG(weight->buf), KARG(woff), KARG(part), KARG(coff), KARG(has_dw), KARG(dwb),
                       KARG(dwoff), KARG(has_db), KARG(dbb), KARG(dboff)};
    size_t g2 = (size_t)C, l2 = bn_local(ctx, "bn_bwd_final", BN_FINAL_LSZ);
    STFPM_TRY(stfpm_enqueue(ctx, BN_PROG, "bn_bwd_final", 1, &g2, &l2, KARGS(a2)));

    stfpm_karg a3[] = {KARG(x->buf), KARG(xoff), KARG(dy->buf), KARG(dyoff), KARG(save_mean->buf),
                       KARG(moff), KARG(part), KARG(coff), KARG(N), KARG(Cc), KARG(HW), KARG(pl.seg),
                       KARG(pl.S), KARG(dx->buf), KARG(dxoff)};
    size_t g3[2] = {(size_t)P, (size_t)C};
    return stfpm_enqueue(ctx, BN_PROG, "bn_bwd_dx", 2, g3, NULL, KARGS(a3));
}
