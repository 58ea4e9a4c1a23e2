/* Reductions: per-sample max / mean over C*H*W and the mean over a whole tensor
 * (kernels: cl/reduce.cl). Deterministic: a fixed split into chunks per row, a local-memory
 * tree per chunk, then an in-order combination of the chunks (GPU variant: a tree over them).
 * The work-group size is the largest power of two <= 256 within the kernel's launch limit
 * (256 on PoCL, so the CPU variant's chunks and results do not depend on the limit there). */
#include "runtime.h"
#include "stfpm/ops.h"

#define RED_PROG "reduce"
#define RED_LSZ 256
#define RED_FINAL_LSZ 32     /* CPU variant: local size of reduce_final */
#define RED_ITEMS 8          /* target elements per work-item in a chunk */
#define RED_MAX_CHUNKS 256   /* partials per row (CPU variant) */
#define RED_MAX_CHUNKS_G 1024 /* partials per row (GPU variant: combined by a tree) */
enum { RED_SUM = 0, RED_MAX = 1 };

/* rows x len values from x (rows contiguous) -> out[0 .. rows) */
/* Largest power of two <= min(cap, the launch limit of kernel name). */
static size_t red_local(stfpm_ctx *ctx, const char *name, size_t cap) {
    size_t lim = stfpm_kernel_wg_limit(ctx, RED_PROG, name), l = cap;
    while (l > 1 && l > lim) l >>= 1;
    return l;
}

static stfpm_status reduce_rows(stfpm_ctx *ctx, const stfpm_tensor *x, int rows, int len, int op,
                                stfpm_tensor *out) {
    cl_kernel k;
    STFPM_TRY(stfpm_get_kernel(ctx, RED_PROG, "reduce_partial", &k));   /* builds the program */
    size_t lsz = red_local(ctx, "reduce_partial", RED_LSZ);

    int per = (int)lsz * RED_ITEMS;
    int p = (len + per - 1) / per;
    int max_chunks = stfpm_gpu_kernels(ctx) ? RED_MAX_CHUNKS_G : RED_MAX_CHUNKS;
    if (p > max_chunks) p = max_chunks;
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
    if (stfpm_gpu_kernels(ctx)) {
        size_t lf = red_local(ctx, "reduce_final_g", RED_LSZ);
        while (lf > 1 && lf / 2 >= (size_t)P) lf >>= 1;   /* no more work-items than partials */
        stfpm_karg a2[] = {KARG(part), KARG(P), KARG(crows), KARG(cop), KARG(div), KARG(out->buf),
                           KARG(ooff), KLOCAL(lf * sizeof(float))};
        size_t g2[2] = {lf, (size_t)rows}, l2[2] = {lf, 1};
        return stfpm_enqueue(ctx, RED_PROG, "reduce_final_g", 2, g2, l2, KARGS(a2));
    }
    stfpm_karg a2[] = {KARG(part), KARG(P), KARG(crows), KARG(cop), KARG(div), KARG(out->buf),
                       KARG(ooff)};
    size_t g2 = (size_t)rows, l2 = red_local(ctx, "reduce_final", RED_FINAL_LSZ);
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
