/* Max pooling forward / backward (cl/pool.cl). */
#include "runtime.h"
#include "stfpm/ops.h"

static stfpm_status check_params(const stfpm_tensor *x, int k, int stride, int pad, int *ho, int *wo) {
    if (k < 1 || stride < 1 || pad < 0 || pad > k / 2)
        return stfpm_set_error(STFPM_ERR_ARG,
                               "maxpool: invalid kernel %d / stride %d / pad %d (need k >= 1, "
                               "stride >= 1, 0 <= pad <= k/2)", k, stride, pad);
    if (x->h + 2 * pad < k || x->w + 2 * pad < k)
        return stfpm_set_error(STFPM_ERR_ARG, "maxpool: input %dx%d (pad %d) smaller than the %dx%d window",
                               x->h, x->w, pad, k, k);
    *ho = stfpm_conv_out_size(x->h, k, stride, pad);
    *wo = stfpm_conv_out_size(x->w, k, stride, pad);
    return STFPM_OK;
}

static stfpm_status check_out(const char *what, const char *name, const stfpm_tensor *t, int n, int c,
                              int h, int w) {
    if (t->n != n || t->c != c || t->h != h || t->w != w)
        return stfpm_set_error(STFPM_ERR_ARG, "%s: %s has shape (%d, %d, %d, %d), expected (%d, %d, %d, %d)",
                               what, name, t->n, t->c, t->h, t->w, n, c, h, w);
    return STFPM_OK;
}

stfpm_status stfpm_maxpool_forward(stfpm_ctx *ctx, const stfpm_tensor *x, int k, int stride, int pad,
                                   stfpm_tensor *y) {
    int ho = 0, wo = 0;
    STFPM_TRY(check_params(x, k, stride, pad, &ho, &wo));
    STFPM_TRY(check_out("maxpool forward", "y", y, x->n, x->c, ho, wo));
    cl_int xo = (cl_int)x->off, yo = (cl_int)y->off, planes = x->n * x->c;
    cl_int H = x->h, W = x->w, Ho = ho, Wo = wo, K = k, S = stride, P = pad;
    stfpm_karg a[] = {KARG(x->buf), KARG(xo), KARG(y->buf), KARG(yo), KARG(planes), KARG(H), KARG(W),
                      KARG(Ho), KARG(Wo), KARG(K), KARG(S), KARG(P)};
    if (stfpm_gpu_kernels(ctx)) {                         /* one work-item per output element */
        size_t g3[3] = {(size_t)Wo, (size_t)Ho, (size_t)planes};
        return stfpm_enqueue(ctx, "pool", "maxpool_fwd_g", 3, g3, NULL, KARGS(a));
    }
    size_t g[2] = {(size_t)Ho, (size_t)planes};           /* one work-item per output row */
    return stfpm_enqueue(ctx, "pool", "maxpool_fwd", 2, g, NULL, KARGS(a));
}

stfpm_status stfpm_maxpool_backward(stfpm_ctx *ctx, const stfpm_tensor *x, int k, int stride, int pad,
                                    const stfpm_tensor *dy, stfpm_tensor *dx) {
    int ho = 0, wo = 0;
    STFPM_TRY(check_params(x, k, stride, pad, &ho, &wo));
    STFPM_TRY(check_out("maxpool backward", "dy", dy, x->n, x->c, ho, wo));
    STFPM_TRY(check_out("maxpool backward", "dx", dx, x->n, x->c, x->h, x->w));
    cl_int xo = (cl_int)x->off, dyo = (cl_int)dy->off, dxo = (cl_int)dx->off, planes = x->n * x->c;
    cl_int H = x->h, W = x->w, Ho = ho, Wo = wo, K = k, S = stride, P = pad;
    /* Two passes through an argmax buffer (STFPM_SCRATCH_AUX): ~5x fewer reads than recomputing
     * every window's argmax per input element (maxpool_bwd, kept as the reference kernel).
     * CPU variant: both passes in row form (one work-item per row, see cl/pool.cl); GPU variant:
     * one work-item per argmax (pass 1) and per dx element (pass 2). */
    cl_mem idx;
    STFPM_TRY(stfpm_scratch(ctx, STFPM_SCRATCH_AUX, stfpm_tensor_numel(dy) * sizeof(cl_int), &idx));
    stfpm_karg a1[] = {KARG(x->buf), KARG(xo), KARG(idx), KARG(planes), KARG(H), KARG(W), KARG(Ho), KARG(Wo),
                       KARG(K), KARG(S), KARG(P)};
    stfpm_karg a[] = {KARG(idx), KARG(dy->buf), KARG(dyo), KARG(dx->buf), KARG(dxo),
                      KARG(planes), KARG(H), KARG(W), KARG(Ho), KARG(Wo), KARG(K), KARG(S), KARG(P)};
    if (stfpm_gpu_kernels(ctx)) {
        size_t o3[3] = {(size_t)Wo, (size_t)Ho, (size_t)planes}, i3[3] = {(size_t)W, (size_t)H, (size_t)planes};
        STFPM_TRY(stfpm_enqueue(ctx, "pool", "maxpool_argmax_idx_g", 3, o3, NULL, KARGS(a1)));
        return stfpm_enqueue(ctx, "pool", "maxpool_bwd_idx_g", 3, i3, NULL, KARGS(a));
    }
    size_t g1[2] = {(size_t)Ho, (size_t)planes};          /* one work-item per output row */
    STFPM_TRY(stfpm_enqueue(ctx, "pool", "maxpool_argmax_idx", 2, g1, NULL, KARGS(a1)));
    size_t g2[2] = {(size_t)H, (size_t)planes};           /* one work-item per input row */
    return stfpm_enqueue(ctx, "pool", "maxpool_bwd_idx", 2, g2, NULL, KARGS(a));
}
