/* 2-D convolution (no bias) as im2col + CLBlast SGEMM; backward with a gather-form col2im.
 * 3x3 stride-1 convolutions with enough channels go to Winograd instead (host/winograd.c);
 * stfpm_conv2d_forward_fused adds a bias / residual / ReLU epilogue.
 *
 * The batch is processed in chunks: the forward in chunks of output rows (forward_im2col, a
 * chunk may end inside an image), the backward in chunks of nb images. im2col writes a chunk
 * into one column matrix col (K x nb*P), K = Cin*KH*KW, P = Ho*Wo, columns ordered (image, oh,
 * ow), so one GEMM covers the whole chunk:
 *   forward          Yc (Cout x nb*P) = W (Cout x K) * col (K x nb*P)  -> epilogue into y (NCHW)
 *   backward-weight  dW (Cout x K)   += dYc (Cout x ld) * colT (ld x K)  (beta 1 after chunk 0)
 *   backward-data    dcol (K x ld)    = W^T * dYc                       -> col2im (gather) into dx
 * where dYc is dy of the chunk copied to (Cout, nb*P) with row stride ld >= nb*P (zero columns
 * beyond nb*P, see backward_ld) and colT the transposed im2col (zero rows beyond nb*P). The
 * operands are laid out so that the big matrices enter every GEMM untransposed: with the
 * tuned CLBlast kernel for PoCL (GEMMK=1, host/clblast_params.c) row-major A, B and C then need no
 * transpose copies; only W (small) is transposed for backward-data.
 * Chunks bound the scratch memory (slots 0 and 1): col + the (Cout x nb*P) matrix stay under
 * 256 MiB on GPUs, ~8 MiB (about one image) on CPUs for the backward and 1 MiB for the forward,
 * see CONV_CHUNK_BYTES_* and CONV_FWD_CHUNK_BYTES_CPU; STFPM_CONV_CHUNK_BYTES overrides them
 * (the tests use it to force small chunks).
 * 1x1 / stride 1 / pad 0 convolutions skip im2col in forward and backward-data: x_i (Cin x P)
 * is already image i's column matrix, one GEMM per image reads / writes NCHW directly.
 * (Not CLBlast's batched GEMM: 1.5.3's returns wrong results whenever it takes its internal
 * copy path, see host/clblast_params.c.) Which of these paths a convolution takes is decided
 * in one place, host/conv_algo.c. */
#include "stfpm/ops.h"
#include "conv_algo.h"
#include "gemm.h"
#include "runtime.h"
#include "winograd.h"

#include <stdio.h>
#include <stdlib.h>

/* Scratch budget per chunk (col + the Cout x nb*P matrix). GPUs: large chunks (few, big
 * GEMMs). CPUs: about one image's columns, which keeps them in cache between im2col and the
 * GEMM and keeps CLBlast's operands small; measured on PoCL at batch 8 (GFLOP per CPU-second
 * over conv1..layer3): forward 60-64 with 8 MiB or one-image chunks vs 42 with 256 MiB,
 * backward-weight 0.80 s vs 1.0 s. */
#define CONV_CHUNK_BYTES_GPU ((size_t)256 << 20)
#define CONV_CHUNK_BYTES_CPU ((size_t)8 << 20)
/* Forward (forward_im2col): chunks of output rows with col + the GEMM output within about the
 * L2 cache (1 MiB per core here). Inference at batch 32, 256x256, three processes each
 * (bench_step --infer): 512 KiB 25.6-26.4 images/s (more GEMM calls); 1 MiB 28.5-29.0; 2 MiB
 * 23.8-30.3; 8 MiB (about one image, the old unit) 26.1-31.1, conv1's im2col taking 51 or
 * 160-166 ms per batch depending on the process. 1 MiB: stable and as fast on average. */
#define CONV_FWD_CHUNK_BYTES_CPU ((size_t)1 << 20)
/* The same with our own GEMM kernel (stfpm_gemm_own; the epilogue in its stores): larger chunks.
 * Inference at batch 32 (bench_step --infer, two runs each, Winograd chunks 16 MiB): 1 MiB 37.8 /
 * 36.5 images/s, 4 MiB 40.9 / 39.2, 8 MiB 39.5 / 40.4. */
#define CONV_FWD_CHUNK_BYTES_OWN ((size_t)4 << 20)
/* Row stride (floats) of dYc, colT's rows and dcol in the backward pass for nb*P = np
 * columns (the columns [np, ld) are zero), and of col in the forward: conv_algo.h. */
static size_t backward_ld(size_t np) { return stfpm_conv_row_stride(np); }

typedef struct conv_geom {
    int n, cin, h, w;      /* input */
    int cout, kh, kw;      /* weight */
    int ho, wo;            /* output */
    int stride, pad;
    size_t k, p;           /* K = cin*kh*kw rows of col, P = ho*wo */
    stfpm_conv_shape shape;
    stfpm_conv_algo fwd;   /* the forward's algorithm (host/conv_algo.c) */
} conv_geom;

static void fmt_shape(char *buf, size_t n, const stfpm_tensor *t) {
    snprintf(buf, n, "(%d, %d, %d, %d)", t->n, t->c, t->h, t->w);
}

/* Validate x / w / stride / pad and fill g. */
static stfpm_status conv_geometry(stfpm_ctx *ctx, const char *op, const stfpm_tensor *x, const stfpm_tensor *w,
                                  int stride, int pad, conv_geom *g) {
    if (!x || !w)
        return stfpm_set_error(STFPM_ERR_ARG, "%s: x and w must not be NULL", op);
    char xs[64], ws[64];
    fmt_shape(xs, sizeof xs, x);
    fmt_shape(ws, sizeof ws, w);
    if (stride < 1 || pad < 0)
        return stfpm_set_error(STFPM_ERR_ARG, "%s: stride %d / pad %d invalid (need stride >= 1, pad >= 0)",
                               op, stride, pad);
    if (x->c != w->c)
        return stfpm_set_error(STFPM_ERR_ARG, "%s: x %s has %d channels but w %s expects %d input channels",
                               op, xs, x->c, ws, w->c);
    g->n = x->n; g->cin = x->c; g->h = x->h; g->w = x->w;
    g->cout = w->n; g->kh = w->h; g->kw = w->w;
    g->stride = stride; g->pad = pad;
    g->ho = stfpm_conv_out_size(x->h, w->h, stride, pad);
    g->wo = stfpm_conv_out_size(x->w, w->w, stride, pad);
    if (x->h + 2 * pad < w->h || x->w + 2 * pad < w->w || g->ho < 1 || g->wo < 1)
        return stfpm_set_error(STFPM_ERR_ARG, "%s: kernel %dx%d larger than the padded input %dx%d (x %s, pad %d)",
                               op, w->h, w->w, x->h + 2 * pad, x->w + 2 * pad, xs, pad);
    g->k = (size_t)g->cin * g->kh * g->kw;
    g->p = (size_t)g->ho * g->wo;
    g->shape = (stfpm_conv_shape){g->n, g->cin, g->cout, g->kh, g->kw, stride, pad, g->ho, g->wo};
    g->fwd = stfpm_conv_choose(ctx, &g->shape, STFPM_CONV_FORWARD);
    return STFPM_OK;
}

static stfpm_status check_shape(const char *op, const char *name, const stfpm_tensor *t, int n, int c,
                                int h, int w, const char *why) {
    if (!t) return stfpm_set_error(STFPM_ERR_ARG, "%s: %s must not be NULL", op, name);
    if (t->n != n || t->c != c || t->h != h || t->w != w) {
        char ts[64];
        fmt_shape(ts, sizeof ts, t);
        return stfpm_set_error(STFPM_ERR_ARG, "%s: %s has shape %s, expected (%d, %d, %d, %d) %s", op, name,
                               ts, n, c, h, w, why);
    }
    return STFPM_OK;
}

/* Images per chunk so that `per_image` bytes of scratch per image stay within the budget. */
static int chunk_images(stfpm_ctx *ctx, const conv_geom *g, size_t per_image) {
    size_t budget = stfpm_chunk_budget(ctx, CONV_CHUNK_BYTES_CPU, CONV_CHUNK_BYTES_GPU,
                                       stfpm_ctx_get_options(ctx)->conv_chunk_bytes);
    size_t nb = per_image ? budget / per_image : (size_t)g->n;
    if (nb < 1) nb = 1;
    if (nb > (size_t)g->n) nb = (size_t)g->n;
    return (int)nb;
}

/* colT (rows x ldk) of images [i0, i0+nb): rows [0, nb*P) the transposed im2col (zeros in
 * columns K..ldk-1), rows [nb*P, rows) zero. */
static stfpm_status im2col_t(stfpm_ctx *ctx, const conv_geom *g, const stfpm_tensor *x, int i0, int nb,
                             size_t ldk, size_t rows, cl_mem col) {
    cl_int off = (cl_int)(x->off + (size_t)i0 * g->cin * g->h * g->w);
    cl_int C = g->cin, H = g->h, W = g->w, KH = g->kh, KW = g->kw, S = g->stride, PD = g->pad;
    cl_int Ho = g->ho, Wo = g->wo, NB = nb;
    cl_int LDK = (cl_int)ldk, NR = (cl_int)rows;
    const size_t np = (size_t)nb * g->p;
    if (stfpm_gpu_kernels(ctx)) {
        /* one entry per work-item, dimension 0 along a colT row (coalesced writes); the zero rows
         * in the same launch */
        stfpm_karg ag[] = {KARG(x->buf), KARG(off), KARG(C), KARG(H), KARG(W), KARG(KH), KARG(KW), KARG(S),
                           KARG(PD), KARG(Ho), KARG(Wo), KARG(NB), KARG(LDK), KARG(NR), KARG(col)};
        size_t gg[2] = {ldk, rows};
        return stfpm_enqueue(ctx, "conv", "conv_im2col_t_g", 2, gg, NULL, KARGS(ag));
    }
    stfpm_karg at[] = {KARG(x->buf), KARG(off), KARG(C), KARG(H), KARG(W), KARG(KH), KARG(KW),
                       KARG(S), KARG(PD), KARG(Ho), KARG(Wo), KARG(NB), KARG(LDK), KARG(col)};
    size_t gws[2] = {(size_t)g->wo, (size_t)nb * g->ho};
    STFPM_TRY(stfpm_enqueue(ctx, "conv", "conv_im2col_t", 2, gws, NULL, KARGS(at)));
    if (rows > np) {
        /* the zero rows: entries [np * ldk, rows * ldk) as one row of a (1 x rows * ldk) matrix,
         * one work-item (a kernel rather than clEnqueueFillBuffer, after which Oclgrind 21.10
         * treats the whole buffer as uninitialised; fewer than 128 rows of ldk, e.g. 64 x 576
         * floats for layer1 at 256x256) */
        cl_int one = 1, len = (cl_int)(rows * ldk), c0 = (cl_int)(np * ldk);
        stfpm_karg za[] = {KARG(col), KARG(one), KARG(len), KARG(c0)};
        STFPM_TRY(stfpm_enqueue1d(ctx, "conv", "conv_zero_cols", 1, KARGS(za)));
    }
    return STFPM_OK;
}

/* col (K x nr*Wo, row stride ld; zeros in columns [nr*Wo, ld), which the GEMM reads) of the batch's
 * output rows [r0, r0+nr) (r = image * Ho + oh). */
static stfpm_status im2col_rows(stfpm_ctx *ctx, const conv_geom *g, const stfpm_tensor *x, int r0, int nr,
                                size_t ld, cl_mem col) {
    cl_int off = (cl_int)x->off, C = g->cin, H = g->h, W = g->w, KH = g->kh, KW = g->kw, S = g->stride;
    cl_int PD = g->pad, Ho = g->ho, Wo = g->wo, R0 = r0, NR = nr, LD = (cl_int)ld;
    stfpm_karg a[] = {KARG(x->buf), KARG(off), KARG(C), KARG(H), KARG(W), KARG(KH), KARG(KW), KARG(S),
                      KARG(PD), KARG(Ho), KARG(Wo), KARG(R0), KARG(NR), KARG(LD), KARG(col)};
    if (stfpm_gpu_kernels(ctx)) {
        /* one entry per work-item, dimension 0 along a col row (coalesced writes) */
        size_t gg[2] = {ld, g->k};
        return stfpm_enqueue(ctx, "conv", "conv_im2col_g", 2, gg, NULL, KARGS(a));
    }
    size_t gws[2] = {(size_t)nr, g->k};
    return stfpm_enqueue(ctx, "conv", "conv_im2col", 2, gws, NULL, KARGS(a));
}

/* Forward as im2col + GEMM over chunks of output rows (a chunk may end inside an image), with
 * the epilogue (bias, residual, ReLU; each optional). Row chunks rather than whole images: one
 * image of conv1 is a 147 x 16384 column matrix (9.7 MB); in chunks that stay in the L2 cache
 * im2col and the GEMM stopped depending on the process's luck with the shared L3 (conv1's
 * im2col took 55-60 or 180-190 ms per inference batch of 32 from one process to the next;
 * see CONV_FWD_CHUNK_BYTES_CPU). */
static stfpm_status forward_im2col_n(stfpm_ctx *ctx, const conv_geom *g, const stfpm_tensor *x, int nw,
                                     const stfpm_tensor *const *ws, const stfpm_tensor *const *biases,
                                     const stfpm_tensor *res, int relu, stfpm_tensor *const *ys);

static stfpm_status forward_im2col(stfpm_ctx *ctx, const conv_geom *g, const stfpm_tensor *x,
                                   const stfpm_tensor *w, const stfpm_tensor *bias, const stfpm_tensor *res,
                                   int relu, stfpm_tensor *y) {
    const stfpm_tensor *ws[1] = {w}, *bs[1] = {bias};
    stfpm_tensor *ys[1] = {y};
    return forward_im2col_n(ctx, g, x, 1, ws, bs, res, relu, ys);
}

/* forward_im2col for nw weight tensors of the same shape applied to the same x: each chunk's
 * im2col is made once and used by nw GEMMs (the teacher's and the student's conv1 on the same
 * images, stfpm_conv2d_forward_fused_shared). */
static stfpm_status forward_im2col_n(stfpm_ctx *ctx, const conv_geom *g, const stfpm_tensor *x, int nw,
                                     const stfpm_tensor *const *ws, const stfpm_tensor *const *biases,
                                     const stfpm_tensor *res, int relu, stfpm_tensor *const *ys) {
    const int R = g->n * g->ho;
    /* the own GEMM writes y itself (epilogue in its stores): no Yc matrix */
    const int own = stfpm_gemm_own(ctx);
    size_t budget = stfpm_chunk_budget(ctx, own ? CONV_FWD_CHUNK_BYTES_OWN : CONV_FWD_CHUNK_BYTES_CPU,
                                       CONV_CHUNK_BYTES_GPU,
                                       stfpm_ctx_get_options(ctx)->conv_chunk_bytes);
    size_t per_row = (g->k + g->cout) * (size_t)g->wo * sizeof(float);
    int rows = (int)(budget / per_row);
    if (rows < 1) rows = 1;
    if (rows > R) rows = R;
    size_t ld_max = backward_ld((size_t)rows * g->wo);
    cl_mem col, yc = NULL;
    STFPM_TRY(stfpm_scratch(ctx, STFPM_SCRATCH_COLS, g->k * ld_max * sizeof(float), &col));
    if (!own) STFPM_TRY(stfpm_scratch(ctx, STFPM_SCRATCH_ROWS, (size_t)g->cout * ld_max * sizeof(float), &yc));
    cl_int hr = res != NULL, rl = relu != 0, K = g->cout, Ho = g->ho, Wo = g->wo;
    cl_int ro = res ? (cl_int)res->off : 0;
    for (int r0 = 0; r0 < R; r0 += rows) {
        int nr = R - r0 < rows ? R - r0 : rows;
        /* row stride padded off multiples of 512 floats (backward_ld): the GEMMK=1 kernel runs at
         * half speed on such strides, and the columns beyond nr * Wo are never read back */
        size_t ld = backward_ld((size_t)nr * g->wo);
        STFPM_TRY(im2col_rows(ctx, g, x, r0, nr, ld, col));
        for (int j = 0; j < nw; j++) {
            const stfpm_tensor *w = ws[j], *bias = biases[j];
            stfpm_tensor *y = ys[j];
            cl_int hb = bias != NULL, bo = bias ? (cl_int)bias->off : 0, yo = (cl_int)y->off;
            cl_mem bb = bias ? bias->buf : y->buf, rb = res ? res->buf : y->buf;
            if (own) {
                STFPM_TRY(stfpm_gemm_cpu_conv_ep(ctx, g->cout, (size_t)nr * g->wo, g->k, w->buf, w->off, g->k, col, 0,
                                                 ld, y->buf, y->off, (size_t)r0 * g->wo, (size_t)g->ho * g->wo,
                                                 bias ? bias->buf : NULL, bias ? bias->off : 0,
                                                 res ? res->buf : NULL, res ? res->off : 0, relu));
                continue;
            }
            STFPM_TRY(stfpm_gemm(ctx, 0, 0, g->cout, ld, g->k, 1.0f, w->buf, w->off, g->k, col, 0, ld, 0.0f, yc,
                                 0, ld));
            cl_int LD = (cl_int)ld, R0 = r0, NR = nr;
            stfpm_karg a[] = {KARG(yc), KARG(LD), KARG(R0), KARG(NR), KARG(K), KARG(Ho), KARG(Wo), KARG(y->buf),
                              KARG(yo), KARG(hb), KARG(bb), KARG(bo), KARG(hr), KARG(rb), KARG(ro), KARG(rl)};
            if (stfpm_gpu_kernels(ctx)) {
                size_t gg[2] = {(size_t)nr * g->wo, (size_t)g->cout};
                STFPM_TRY(stfpm_enqueue(ctx, "conv", "conv_epilogue_rows_g", 2, gg, NULL, KARGS(a)));
            } else {
                size_t gws[2] = {(size_t)nr, (size_t)g->cout};
                STFPM_TRY(stfpm_enqueue(ctx, "conv", "conv_epilogue_rows", 2, gws, NULL, KARGS(a)));
            }
        }
    }
    return STFPM_OK;
}

stfpm_status stfpm_conv2d_forward_fused_shared(stfpm_ctx *ctx, const stfpm_tensor *x, int nw,
                                               const stfpm_tensor *const *ws, int stride, int pad,
                                               const stfpm_tensor *const *biases, stfpm_activation relu,
                                               const stfpm_conv_prepared *const *prepared,
                                               stfpm_tensor *const *ys) {
    static const char *op = "conv2d_forward_fused_shared";
    if (nw < 1 || !ws || !ys)
        return stfpm_set_error(STFPM_ERR_ARG, "%s: need at least one weight and output tensor", op);
    conv_geom g = {0};
    STFPM_TRY(conv_geometry(ctx, op, x, ws[0], stride, pad, &g));
    int shared = g.fwd == STFPM_CONV_IM2COL && nw > 1;
    for (int j = 0; j < nw; j++) {
        conv_geom gj = {0};
        STFPM_TRY(conv_geometry(ctx, op, x, ws[j], stride, pad, &gj));
        if (gj.cout != g.cout || gj.kh != g.kh || gj.kw != g.kw)
            return stfpm_set_error(STFPM_ERR_ARG, "%s: weight %d has a different shape than weight 0", op, j);
        STFPM_TRY(check_shape(op, "y", ys[j], g.n, g.cout, g.ho, g.wo, "from x, w, stride and pad"));
        if (biases && biases[j])
            STFPM_TRY(check_shape(op, "bias", biases[j], 1, g.cout, 1, 1, "(one value per output channel)"));
    }
    if (!shared) {
        for (int j = 0; j < nw; j++)
            STFPM_TRY(stfpm_conv2d_forward_fused(ctx, x, ws[j], stride, pad, biases ? biases[j] : NULL, NULL, relu,
                                                 prepared ? prepared[j] : NULL, ys[j]));
        return STFPM_OK;
    }
    const stfpm_tensor *nob[8] = {NULL};
    if (nw > 8) return stfpm_set_error(STFPM_ERR_ARG, "%s: at most 8 weight tensors, got %d", op, nw);
    return forward_im2col_n(ctx, &g, x, nw, ws, biases ? biases : nob, NULL, relu, ys);
}

/* dcol (K x nb*P, row stride ld) -> images [i0, i0+nb) of dx. */
static stfpm_status col2im(stfpm_ctx *ctx, const conv_geom *g, cl_mem col, size_t ld, int i0, int nb,
                           stfpm_tensor *dx) {
    cl_int off = (cl_int)(dx->off + (size_t)i0 * g->cin * g->h * g->w), LD = (cl_int)ld;
    cl_int C = g->cin, H = g->h, W = g->w, KH = g->kh, KW = g->kw, S = g->stride, PD = g->pad;
    cl_int Ho = g->ho, Wo = g->wo, NB = nb;
    stfpm_karg a[] = {KARG(col), KARG(LD), KARG(C), KARG(H), KARG(W), KARG(KH), KARG(KW), KARG(S),
                      KARG(PD), KARG(Ho), KARG(Wo), KARG(NB), KARG(dx->buf), KARG(off)};
    if (stfpm_gpu_kernels(ctx)) {
        /* one dx element per work-item, dimension 0 along W */
        size_t gg[2] = {(size_t)g->w, (size_t)nb * g->cin * g->h};
        return stfpm_enqueue(ctx, "conv", "conv_col2im_g", 2, gg, NULL, KARGS(a));
    }
    size_t gws[2] = {(size_t)g->h, (size_t)nb * g->cin};
    return stfpm_enqueue(ctx, "conv", "conv_col2im", 2, gws, NULL, KARGS(a));
}

/* Images [i0, i0+nb) of t (n, C, P) -> the matrix m (C, nb*P; row stride ld floats). One kernel
 * (row form); measured faster on PoCL than one clEnqueueCopyBufferRect per image. The other
 * direction is the epilogue kernel (below) without bias / residual / ReLU. */
static stfpm_status to_rows(stfpm_ctx *ctx, const stfpm_tensor *t, int i0, int nb, cl_mem m, size_t ld) {
    const size_t P = (size_t)t->h * t->w;
    cl_int to = (cl_int)(t->off + (size_t)i0 * t->c * P), K = t->c, Pi = (cl_int)P, NB = nb, LD = (cl_int)ld;
    stfpm_karg a[] = {KARG(t->buf), KARG(to), KARG(K), KARG(Pi), KARG(NB), KARG(LD), KARG(m)};
    if (stfpm_gpu_kernels(ctx)) {
        size_t gg[2] = {P, (size_t)nb * t->c};
        return stfpm_enqueue(ctx, "conv", "conv_to_rows_g", 2, gg, NULL, KARGS(a));
    }
    return stfpm_enqueue1d(ctx, "conv", "conv_to_rows", (size_t)nb * t->c, KARGS(a));
}

static stfpm_status epilogue(stfpm_ctx *ctx, const conv_geom *g, cl_mem src, size_t src_off, size_t ks,
                             size_t is, int i0, int nb, const stfpm_tensor *bias, const stfpm_tensor *res,
                             int relu, stfpm_tensor *y);

stfpm_status stfpm_conv2d_forward(stfpm_ctx *ctx, const stfpm_tensor *x, const stfpm_tensor *w,
                                  int stride, int pad, stfpm_tensor *y) {
    static const char *op = "conv2d_forward";
    conv_geom g = {0};
    STFPM_TRY(conv_geometry(ctx, op, x, w, stride, pad, &g));
    STFPM_TRY(check_shape(op, "y", y, g.n, g.cout, g.ho, g.wo, "from x, w, stride and pad"));

    if (g.fwd == STFPM_CONV_POINTWISE) {
        /* y_i (Cout x P) = W (Cout x Cin) * x_i (Cin x P) */
        for (int i = 0; i < g.n; i++)
            STFPM_TRY(stfpm_gemm(ctx, 0, 0, g.cout, g.p, g.k, 1.0f, w->buf, w->off, g.k, x->buf,
                                 x->off + i * g.cin * g.p, g.p, 0.0f, y->buf, y->off + i * g.cout * g.p,
                                 g.p));
        return STFPM_OK;
    }
    if (g.fwd == STFPM_CONV_WINOGRAD4)
        return stfpm_winograd_conv(ctx, x->buf, x->off, g.n, g.cin, g.h, g.w, w->buf, w->off, 0, g.pad,
                                   y->buf, y->off, g.cout, g.ho, g.wo);
    if (g.fwd == STFPM_CONV_WINOGRAD2)
        return stfpm_winograd2_conv_ep(ctx, x->buf, x->off, g.n, g.cin, g.h, g.w, w->buf, w->off, g.pad, y->buf,
                                       y->off, g.cout, g.ho, g.wo, NULL);
    return forward_im2col(ctx, &g, x, w, NULL, NULL, 0, y);
}

/* ------------------------------------------------------------------------------------------ */
/* Fused forward (conv + bias + residual + ReLU) and prepared (Winograd-transformed) weights */

struct stfpm_conv_prepared {
    cl_mem u, u2;              /* stfpm_winograd_weights / stfpm_winograd2_weights of w */
    size_t bytes, bytes2;
    int cout, cin;
};

void stfpm_conv2d_prepared_free(stfpm_ctx *ctx, stfpm_conv_prepared *p) {
    if (!p) return;
    if (p->u) stfpm_buffer_free(ctx, p->u, p->bytes);
    if (p->u2) stfpm_buffer_free(ctx, p->u2, p->bytes2);
    free(p);
}

stfpm_status stfpm_conv2d_prepare(stfpm_ctx *ctx, const stfpm_tensor *w, int stride, int pad,
                                  stfpm_conv_prepared **out) {
    *out = NULL;
    if (!w) return stfpm_set_error(STFPM_ERR_ARG, "conv2d_prepare: w must not be NULL");
    const stfpm_conv_shape shape = {-1, w->c, w->n, w->h, w->w, stride, pad, 0, 0};
    if (stfpm_conv_choose(ctx, &shape, STFPM_CONV_PREPARE) != STFPM_CONV_WINOGRAD4) return STFPM_OK;
    stfpm_conv_prepared *p = calloc(1, sizeof *p);
    if (!p) return stfpm_set_error(STFPM_ERR_OOM, "conv2d_prepare: out of host memory");
    p->cout = w->n;
    p->cin = w->c;
    /* U for F(4x4) now; U2 for F(2x2) on the first forward that uses it (small batches only) */
    stfpm_status st = stfpm_winograd_weights(ctx, w->buf, w->off, w->n, w->c, &p->u);
    if (st == STFPM_OK) clGetMemObjectInfo(p->u, CL_MEM_SIZE, sizeof p->bytes, &p->bytes, NULL);
    if (st != STFPM_OK) {
        stfpm_conv2d_prepared_free(ctx, p);
        return st;
    }
    *out = p;
    return STFPM_OK;
}

/* The epilogue over src(k, i, p) = src[src_off + k * ks + i * is + p] into images [i0, i0+nb). */
static stfpm_status epilogue(stfpm_ctx *ctx, const conv_geom *g, cl_mem src, size_t src_off, size_t ks,
                             size_t is, int i0, int nb, const stfpm_tensor *bias, const stfpm_tensor *res,
                             int relu, stfpm_tensor *y) {
    cl_int so = (cl_int)src_off, KS = (cl_int)ks, IS = (cl_int)is, K = g->cout, P = (cl_int)g->p, NB = nb;
    cl_int yo = (cl_int)(y->off + (size_t)i0 * g->cout * g->p);
    cl_int hb = bias != NULL, hr = res != NULL, rl = relu != 0;
    cl_mem bb = bias ? bias->buf : y->buf, rb = res ? res->buf : y->buf;
    cl_int bo = bias ? (cl_int)bias->off : 0;
    cl_int ro = res ? (cl_int)(res->off + (size_t)i0 * g->cout * g->p) : 0;
    stfpm_karg a[] = {KARG(src), KARG(so), KARG(KS), KARG(IS), KARG(K), KARG(P), KARG(NB), KARG(y->buf), KARG(yo),
                      KARG(hb), KARG(bb), KARG(bo), KARG(hr), KARG(rb), KARG(ro), KARG(rl)};
    if (stfpm_gpu_kernels(ctx)) {
        size_t gg[2] = {g->p, (size_t)nb * g->cout};
        return stfpm_enqueue(ctx, "conv", "conv_epilogue_g", 2, gg, NULL, KARGS(a));
    }
    return stfpm_enqueue1d(ctx, "conv", "conv_epilogue", (size_t)nb * g->cout, KARGS(a));
}

stfpm_status stfpm_conv2d_forward_fused(stfpm_ctx *ctx, const stfpm_tensor *x, const stfpm_tensor *w,
                                        int stride, int pad, const stfpm_tensor *bias,
                                        const stfpm_tensor *residual, stfpm_activation relu,
                                        const stfpm_conv_prepared *prepared, stfpm_tensor *y) {
    static const char *op = "conv2d_forward_fused";
    conv_geom g = {0};
    STFPM_TRY(conv_geometry(ctx, op, x, w, stride, pad, &g));
    STFPM_TRY(check_shape(op, "y", y, g.n, g.cout, g.ho, g.wo, "from x, w, stride and pad"));
    if (bias) STFPM_TRY(check_shape(op, "bias", bias, 1, g.cout, 1, 1, "(one value per output channel)"));
    if (residual) {
        STFPM_TRY(check_shape(op, "residual", residual, g.n, g.cout, g.ho, g.wo, "(the shape of y)"));
        if (residual->buf == y->buf && residual->off != y->off)
            return stfpm_set_error(STFPM_ERR_ARG, "%s: residual overlaps y at a different offset", op);
    }
    if (prepared && (prepared->cout != g.cout || prepared->cin != g.cin))
        return stfpm_set_error(STFPM_ERR_ARG, "%s: prepared weights are for %d -> %d channels, w has %d -> %d",
                               op, prepared->cin, prepared->cout, g.cin, g.cout);
    int any = bias || residual || relu;
    const int wino2 = g.fwd == STFPM_CONV_WINOGRAD2;
    if (wino2 && prepared && !prepared->u2) {
        /* the prepared weights are a cache owned by the caller's object: fill in U2 once */
        stfpm_conv_prepared *pm = (stfpm_conv_prepared *)prepared;
        STFPM_TRY(stfpm_winograd2_weights(ctx, w->buf, w->off, g.cout, g.cin, &pm->u2));
        clGetMemObjectInfo(pm->u2, CL_MEM_SIZE, sizeof pm->bytes2, &pm->bytes2, NULL);
    }
    if (g.fwd == STFPM_CONV_WINOGRAD4 || wino2) {
        wino_epilogue ep = {bias ? bias->buf : NULL, bias ? bias->off : 0, residual ? residual->buf : NULL,
                            residual ? residual->off : 0, relu, prepared ? prepared->u : NULL,
                            prepared ? prepared->u2 : NULL};
        if (wino2)
            return stfpm_winograd2_conv_ep(ctx, x->buf, x->off, g.n, g.cin, g.h, g.w, w->buf, w->off, g.pad,
                                           y->buf, y->off, g.cout, g.ho, g.wo, &ep);
        return stfpm_winograd_conv_ep(ctx, x->buf, x->off, g.n, g.cin, g.h, g.w, w->buf, w->off, 0, g.pad,
                                      y->buf, y->off, g.cout, g.ho, g.wo, &ep);
    }
    if (g.fwd == STFPM_CONV_POINTWISE) {
        if (residual && residual->buf == y->buf) {
            /* residual is y: y_i = W x_i + y_i (GEMM with beta 1), then bias / ReLU in place */
            for (int i = 0; i < g.n; i++)
                STFPM_TRY(stfpm_gemm(ctx, 0, 0, g.cout, g.p, g.k, 1.0f, w->buf, w->off, g.k, x->buf,
                                     x->off + i * g.cin * g.p, g.p, 1.0f, y->buf, y->off + i * g.cout * g.p,
                                     g.p));
            residual = NULL;
        } else {
            STFPM_TRY(stfpm_conv2d_forward(ctx, x, w, stride, pad, y));
        }
        if (!bias && !residual && !relu) return STFPM_OK;
        return epilogue(ctx, &g, y->buf, y->off, g.p, (size_t)g.cout * g.p, 0, g.n, bias, residual, relu, y);
    }
    if (!any) return stfpm_conv2d_forward(ctx, x, w, stride, pad, y);
    return forward_im2col(ctx, &g, x, w, bias, residual, relu, y);
}

stfpm_status stfpm_conv2d_backward(stfpm_ctx *ctx, const stfpm_tensor *x, const stfpm_tensor *w,
                                   int stride, int pad, const stfpm_tensor *dy,
                                   stfpm_tensor *dx, stfpm_tensor *dw) {
    static const char *op = "conv2d_backward";
    conv_geom g = {0};
    STFPM_TRY(conv_geometry(ctx, op, x, w, stride, pad, &g));
    STFPM_TRY(check_shape(op, "dy", dy, g.n, g.cout, g.ho, g.wo, "from x, w, stride and pad"));
    if (dx) STFPM_TRY(check_shape(op, "dx", dx, g.n, g.cin, g.h, g.w, "(the shape of x)"));
    if (dw) STFPM_TRY(check_shape(op, "dw", dw, g.cout, g.cin, g.kh, g.kw, "(the shape of w)"));
    if (!dx && !dw) return STFPM_OK;

    const stfpm_conv_algo ad = stfpm_conv_choose(ctx, &g.shape, STFPM_CONV_BACKWARD_DATA);
    const stfpm_conv_algo aw = stfpm_conv_choose(ctx, &g.shape, STFPM_CONV_BACKWARD_WEIGHT);
    if (dx && ad == STFPM_CONV_POINTWISE) {
        /* dx_i (Cin x P) = W^T (Cin x Cout) * dy_i (Cout x P) */
        for (int i = 0; i < g.n; i++)
            STFPM_TRY(stfpm_gemm(ctx, 1, 0, g.cin, g.p, g.cout, 1.0f, w->buf, w->off, g.k, dy->buf,
                                 dy->off + i * g.cout * g.p, g.p, 0.0f, dx->buf,
                                 dx->off + i * g.cin * g.p, g.p));
        dx = NULL;
    }
    if (dx && ad == STFPM_CONV_WINOGRAD4) {
        /* dx = conv3x3(dy, rot180(W)^T, padding 2 - pad) */
        STFPM_TRY(stfpm_winograd_conv(ctx, dy->buf, dy->off, g.n, g.cout, g.ho, g.wo, w->buf, w->off, 1,
                                      2 - g.pad, dx->buf, dx->off, g.cin, g.h, g.w));
        dx = NULL;
    }
    if (dw && aw == STFPM_CONV_WINOGRAD4) {
        STFPM_TRY(stfpm_winograd_wgrad(ctx, x->buf, x->off, g.n, g.cin, g.h, g.w, dy->buf, dy->off, g.cout,
                                       g.ho, g.wo, g.pad, dw->buf, dw->off));
        dw = NULL;
    }
    if (!dx && !dw) return STFPM_OK;

    /* the rest goes through im2col */
    int nb = chunk_images(ctx, &g, (g.k + g.cout) * g.p * sizeof(float));
    size_t ld_max = backward_ld((size_t)nb * g.p);
    /* dW's columns: K rounded up to 64 when it is not a multiple (conv1: 147 -> 192), so that
     * colT and dW enter CLBlast without its padding copies; dW then goes through a (Cout x kp)
     * scratch matrix (slot 2) and one rectangular copy. conv1's weight gradient, batch 8,
     * 256x256, bench_conv --cpu-time: 21-26 -> 25-37 GFLOP per CPU-second (noisy; this GEMM is
     * 64 x 192 with a 16384-long reduction per image: CLBlast runs it as 3 work-groups). */
    size_t kp = dw && g.k % 64 ? (g.k + 63) / 64 * 64 : g.k;
    cl_mem col, dyc, dwp = NULL;
    STFPM_TRY(stfpm_scratch(ctx, STFPM_SCRATCH_COLS, (kp > g.k ? kp : g.k) * ld_max * sizeof(float), &col));
    STFPM_TRY(stfpm_scratch(ctx, STFPM_SCRATCH_ROWS, (size_t)g.cout * ld_max * sizeof(float), &dyc));
    if (kp != g.k) STFPM_TRY(stfpm_scratch(ctx, STFPM_SCRATCH_AUX, (size_t)g.cout * kp * sizeof(float), &dwp));
    for (int i0 = 0; i0 < g.n; i0 += nb) {
        int cnt = g.n - i0 < nb ? g.n - i0 : nb;
        size_t np = (size_t)cnt * g.p, ld = backward_ld(np);
        /* dYc (Cout x ld): dy of the chunk, zeros in columns [np, ld) */
        STFPM_TRY(to_rows(ctx, dy, i0, cnt, dyc, ld));
        if (ld > np) {
            cl_int rows = g.cout, ldi = (cl_int)ld, c0 = (cl_int)np;
            stfpm_karg za[] = {KARG(dyc), KARG(rows), KARG(ldi), KARG(c0)};
            if (stfpm_gpu_kernels(ctx)) {
                size_t gg[2] = {ld - np, (size_t)g.cout};
                STFPM_TRY(stfpm_enqueue(ctx, "conv", "conv_zero_cols_g", 2, gg, NULL, KARGS(za)));
            } else {
                STFPM_TRY(stfpm_enqueue1d(ctx, "conv", "conv_zero_cols", (size_t)g.cout, KARGS(za)));
            }
        }
        if (dw) {
            /* dW (Cout x kp) (+)= dYc (Cout x ld) * colT (ld x kp); colT rows [np, ld) are zero */
            STFPM_TRY(im2col_t(ctx, &g, x, i0, cnt, kp, ld, col));
            const float beta = i0 == 0 ? 0.0f : 1.0f;
            cl_mem dst = dwp ? dwp : dw->buf;
            const size_t dn = dwp ? kp : g.k, doff = dwp ? 0 : dw->off;
            if (stfpm_gemm_splitk_wanted(ctx, 1, g.cout, dn, ld))
                /* GPU variant: a small output with a long reduction (conv1: 64 x 192 over every
                 * output pixel of the chunk) as split-K, so the whole device works on it */
                STFPM_TRY(stfpm_gemm_splitk(ctx, 1, g.cout, dn, ld, dyc, 0, ld, 0, col, 0, dn, 0, beta, dst, doff, dn, 0));
            else
                STFPM_TRY(stfpm_gemm(ctx, 0, 0, g.cout, dn, ld, 1.0f, dyc, 0, ld, col, 0, dn, beta, dst, doff, dn));
        }
        if (dx) {
            /* dcol (K x ld) = W^T (K x Cout) * dYc (Cout x ld); col is free again (in-order queue) */
            STFPM_TRY(stfpm_gemm(ctx, 1, 0, g.k, ld, g.cout, 1.0f, w->buf, w->off, g.k, dyc, 0, ld, 0.0f,
                                 col, 0, ld));
            STFPM_TRY(col2im(ctx, &g, col, ld, i0, cnt, dx));
        }
    }
    if (dwp) {
        /* dw (Cout x K) = the first K columns of dWp (Cout x kp) */
        size_t so[3] = {0, 0, 0}, dO[3] = {dw->off * sizeof(float), 0, 0};
        size_t region[3] = {g.k * sizeof(float), (size_t)g.cout, 1};
        STFPM_CL(clEnqueueCopyBufferRect(stfpm_ctx_queue(ctx), dwp, dw->buf, so, dO, region, kp * sizeof(float), 0,
                                         g.k * sizeof(float), 0, 0, NULL, NULL));
    }
    return STFPM_OK;
}
