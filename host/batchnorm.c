/* Batch normalisation forward (train / eval) and backward, PyTorch semantics (SPEC section 2).
 * Kernels: cl/batchnorm.cl. Per-channel statistics are a deterministic two-stage reduction:
 * one work-item per (plane segment, channel) writes a partial into a scratch buffer, then one
 * work-item per channel combines its partials in a fixed order. */
#include "runtime.h"
#include "stfpm/ops.h"

#define BN_PROG "batchnorm"
#define BN_SEG 4096          /* values per work-item when a plane is split (multiple of 16) */
#define BN_SPLIT 8192        /* planes up to this many values are one work-item each */

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

/* y = (x - mean) * inv * w + b, one work-item per (plane segment, channel); inv = s, or
 * 1/sqrt(s + eps) if is_var. */
static stfpm_status bn_apply(stfpm_ctx *ctx, const stfpm_tensor *x, stfpm_tensor *y,
                             const stfpm_tensor *mean, const stfpm_tensor *s, int is_var, float eps,
                             const stfpm_tensor *w, const stfpm_tensor *b) {
    cl_int xoff = (cl_int)x->off, yoff = (cl_int)y->off, moff = (cl_int)mean->off,
           soff = (cl_int)s->off, woff = (cl_int)w->off, boff = (cl_int)b->off;
    cl_int N = x->n, C = x->c, HW = x->h * x->w;
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
    bn_plan pl = bn_make_plan(N, HW);
    cl_int P = pl.P;
    cl_mem part;
    STFPM_TRY(stfpm_scratch(ctx, STFPM_SCRATCH_PARTIALS, (size_t)3 * C * P * sizeof(float), &part));
    stfpm_karg a1[] = {KARG(x->buf), KARG(xoff), KARG(N), KARG(Cc), KARG(HW), KARG(pl.seg), KARG(pl.S),
                       KARG(P), KARG(part)};
    size_t g1[2] = {(size_t)P, (size_t)C};
    STFPM_TRY(stfpm_enqueue(ctx, BN_PROG, "bn_stats_partial", 2, g1, NULL, KARGS(a1)));

    /* with no running statistics, pass save_mean as a placeholder buffer (never touched) */
    const stfpm_tensor *rm = update ? running_mean : save_mean, *rv = update ? running_var : save_mean;
    cl_int rmoff = (cl_int)rm->off, rvoff = (cl_int)rv->off, smoff = (cl_int)save_mean->off,
           sioff = (cl_int)save_invstd->off;
    stfpm_karg a2[] = {KARG(part), KARG(P), KARG(Cc), KARG(eps), KARG(momentum), KARG(update),
                       KARG(rm->buf), KARG(rmoff), KARG(rv->buf), KARG(rvoff), KARG(save_mean->buf),
                       KARG(smoff), KARG(save_invstd->buf), KARG(sioff)};
    size_t g2 = (size_t)C, l2 = 64;
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
    bn_plan pl = bn_make_plan(N, HW);
    cl_int P = pl.P;
    cl_mem part;
    STFPM_TRY(stfpm_scratch(ctx, STFPM_SCRATCH_PARTIALS, ((size_t)2 * C * P + (size_t)3 * C) * sizeof(float),
                            &part));
    cl_int coff = 2 * C * P;

    cl_int xoff = (cl_int)x->off, dyoff = (cl_int)dy->off, moff = (cl_int)save_mean->off;
    stfpm_karg a1[] = {KARG(x->buf), KARG(xoff), KARG(dy->buf), KARG(dyoff), KARG(save_mean->buf),
                       KARG(moff), KARG(N), KARG(Cc), KARG(HW), KARG(pl.seg), KARG(pl.S), KARG(P),
                       KARG(part)};
    size_t g1[2] = {(size_t)P, (size_t)C};
    STFPM_TRY(stfpm_enqueue(ctx, BN_PROG, "bn_bwd_partial", 2, g1, NULL, KARGS(a1)));

    cl_int ioff = (cl_int)save_invstd->off, woff = (cl_int)weight->off;
    cl_int has_dw = dweight != NULL, has_db = dbias != NULL;
    cl_mem dwb = has_dw ? dweight->buf : part, dbb = has_db ? dbias->buf : part;
    cl_int dwoff = has_dw ? (cl_int)dweight->off : 0, dboff = has_db ? (cl_int)dbias->off : 0;
    stfpm_karg a2[] = {KARG(part), KARG(P), KARG(Cc), KARG(M), KARG(save_invstd->buf), KARG(ioff),
                       KARG(weight->buf), KARG(woff), KARG(part), KARG(coff), KARG(has_dw), KARG(dwb),
                       KARG(dwoff), KARG(has_db), KARG(dbb), KARG(dboff)};
    size_t g2 = (size_t)C, l2 = 64;
    STFPM_TRY(stfpm_enqueue(ctx, BN_PROG, "bn_bwd_final", 1, &g2, &l2, KARGS(a2)));

    cl_int dxoff = (cl_int)dx->off;
    stfpm_karg a3[] = {KARG(x->buf), KARG(xoff), KARG(dy->buf), KARG(dyoff), KARG(save_mean->buf),
                       KARG(moff), KARG(part), KARG(coff), KARG(N), KARG(Cc), KARG(HW), KARG(pl.seg),
                       KARG(pl.S), KARG(dx->buf), KARG(dxoff)};
    size_t g3[2] = {(size_t)P, (size_t)C};
    return stfpm_enqueue(ctx, BN_PROG, "bn_bwd_dx", 2, g3, NULL, KARGS(a3));
}
