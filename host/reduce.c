/* Reductions: per-sample max / mean over C*H*W and the mean over a whole tensor
 * (kernels: cl/reduce.cl). Deterministic: a fixed split into chunks per row, a local-memory
 * tree per chunk, then an in-order combination of the chunks. */
#include "runtime.h"
#include "stfpm/ops.h"

#define RED_PROG "reduce"
#define RED_LSZ 256
#define RED_ITEMS 8          /* target elements per work-item in a chunk */
#define RED_MAX_CHUNKS 256   /* partials per row */
enum { RED_SUM = 0, RED_MAX = 1 };

/* rows x len values from x (rows contiguous) -> out[0 .. rows) */
static stfpm_status reduce_rows(stfpm_ctx *ctx, const stfpm_tensor *x, int rows, int len, int op,
                                stfpm_tensor *out) {
    cl_kernel k;
    STFPM_TRY(stfpm_get_kernel(ctx, RED_PROG, "reduce_partial", &k));
    size_t max = 0;
    STFPM_CL(clGetKernelWorkGroupInfo(k, stfpm_ctx_cl_device(ctx), CL_KERNEL_WORK_GROUP_SIZE,
                                      sizeof max, &max, NULL));
    size_t lsz = RED_LSZ;
    while (lsz > 1 && lsz > max) lsz >>= 1;

    int per = (int)lsz * RED_ITEMS;
    int p = (len + per - 1) / per;
    if (p > RED_MAX_CHUNKS) p = RED_MAX_CHUNKS;
    if (p < 1) p = 1;
    cl_int chunk = (len + p - 1) / p;
    cl_int P = (len + chunk - 1) / chunk;

    cl_mem part;
    STFPM_TRY(stfpm_scratch(ctx, STFPM_SCRATCH_PARTIALS, (size_t)rows * P * sizeof(float), &part));
    cl_int xoff = (cl_int)x->off, clen = len, cop = op;
    stfpm_karg a1[] = {KARG(x->buf), KARG(xoff), KARG(clen), KARG(chunk), KARG(P), KARG(cop),
                       KARG(part), KLOCAL(lsz * sizeof(float))};
    size_t g1[2] = {(size_t)P * lsz, (size_t)rows}, l1[2] = {lsz, 1};
    STFPM_TRY(stfpm_enqueue(ctx, RED_PROG, "reduce_partial", 2, g1, l1, KARGS(a1)));

    cl_int crows = rows, ooff = (cl_int)out->off;
    float div = (float)len;
    stfpm_karg a2[] = {KARG(part), KARG(P), KARG(crows), KARG(cop), KARG(div), KARG(out->buf),
                       KARG(ooff)};
    size_t g2 = (size_t)rows, l2 = 32;
    return stfpm_enqueue(ctx, RED_PROG, "reduce_final", 1, &g2, &l2, KARGS(a2));
}

static stfpm_status reduce_check(const stfpm_tensor *x, const stfpm_tensor *out, int n_out,
                                 const char *op) {
    if (!x || !x->buf) return stfpm_set_error(STFPM_ERR_ARG, "%s: tensor x is missing", op);
    if (!out || !out->buf) return stfpm_set_error(STFPM_ERR_ARG, "%s: tensor out is missing", op);
    if (out->n != n_out || out->c != 1 || out->h != 1 || out->w != 1)
        return stfpm_set_error(STFPM_ERR_ARG, "%s: out has shape (%d, %d, %d, %d), expected (%d, 1, 1, 1)",
                               op, out->n, out->c, out->h, out->w, n_out);
    return STFPM_OK;
}

stfpm_status stfpm_reduce_max(stfpm_ctx *ctx, const stfpm_tensor *x, stfpm_tensor *out) {
    STFPM_TRY(reduce_check(x, out, x ? x->n : 0, "reduce_max"));
    return reduce_rows(ctx, x, x->n, x->c * x->h * x->w, RED_MAX, out);
}

stfpm_status stfpm_reduce_mean(stfpm_ctx *ctx, const stfpm_tensor *x, stfpm_tensor *out) {
    STFPM_TRY(reduce_check(x, out, x ? x->n : 0, "reduce_mean"));
    return reduce_rows(ctx, x, x->n, x->c * x->h * x->w, RED_SUM, out);
}

stfpm_status stfpm_reduce_mean_all(stfpm_ctx *ctx, const stfpm_tensor *x, stfpm_tensor *out) {
    STFPM_TRY(reduce_check(x, out, 1, "reduce_mean_all"));
    return reduce_rows(ctx, x, 1, (int)stfpm_tensor_numel(x), RED_SUM, out);
}
