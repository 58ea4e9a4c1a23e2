/* Convolution forward / backward (host/conv.c, cl/conv.cl) against the plain C reference
 * (tests/ref_conv.c, double accumulation), plus central finite differences in double, and
 * stfpm_gemm with the CLBlast parameters tuned for this device (host/gemm.c).
 *
 * Tolerances: |got - want| <= atol + rtol * |want| with rtol = 1e-4 and
 * atol = 1e-4 + 2e-7 * R, R = the number of products summed into one output (forward:
 * Cin*KH*KW, dx: Cout*KH*KW, dw: N*Ho*Wo, GEMM: K). Inputs, weights and dy are uniform in
 * [-1, 1), so a product has rms 1/3 and float32 summation of R of them errs by up to
 * ~eps*R/3 = 4e-8*R (measured: 2.2e-4 for the dw of the 64-channel case, R = 12288, atol
 * there 2.6e-3, while |dw| ~ 40). Any indexing error gives O(0.1..1) errors and fails. For
 * the small cases atol is ~1e-4.
 * Finite differences: L(x, w) = sum(dy * conv(x, w)) evaluated in double on the reference,
 * dL/dv ~ (L(v + e) - L(v - e)) / 2e with e = 1e-2 (L is linear in each entry, so the
 * difference is exact up to double rounding, ~1e-12); compared with the device gradient at
 * the same tolerance as the gradient itself.
 * Every case with batch > 1 also runs with a small STFPM_CONV_CHUNK_BYTES (forward im2col in
 * chunks of 3 output rows that cross image boundaries, one image per backward / Winograd
 * chunk: dW accumulated over chunks with beta = 1); all write over garbage-filled outputs
 * (overwrite semantics). */
#include "testutil.h"
#include "ref_conv.h"
#include "runtime.h"
#include "gemm.h"
#include "tu_options.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RTOL 1e-4
static double atol_for(size_t reduction_len) { return 1e-4 + 2e-7 * (double)reduction_len; }

typedef struct conv_case {
    const char *name;
    ref_conv_shape s;
    int views;   /* run on per-sample views (non-zero tensor offsets) */
    int fd;      /* also check a few entries against finite differences */
} conv_case;

/*                 name                              n  cin  h   w  cout kh kw st pad */
static const conv_case k_cases[] = {
    {"3x3/1 pad1 7x9 n1 cin3 cout5",         {1, 3, 7, 9, 5, 3, 3, 1, 1}, 0, 1},
    {"3x3/2 pad1 13x11 n3 cin5 cout17",      {3, 5, 13, 11, 17, 3, 3, 2, 1}, 1, 1},
    {"7x7/2 pad3 21x19 n2 (conv1-like)",     {2, 3, 21, 19, 5, 7, 7, 2, 3}, 0, 1},
    {"7x7/2 pad3 16x16 n3 cin3 cout17",      {3, 3, 16, 16, 17, 7, 7, 2, 3}, 1, 0},
    {"1x1/1 pad0 7x9 n3 cin17 cout5",        {3, 17, 7, 9, 5, 1, 1, 1, 0}, 1, 1},
    {"1x1/2 pad0 13x11 n3 (downsample)",     {3, 5, 13, 11, 3, 1, 1, 2, 0}, 0, 1},
    {"3x3/1 pad0 9x7 n1 cin5 cout3",         {1, 5, 9, 7, 3, 3, 3, 1, 0}, 0, 0},
    {"3x3/2 pad3 5x6 n3 (all-pad outputs)",  {3, 3, 5, 6, 4, 3, 3, 2, 3}, 0, 1},
    {"3x5/2 pad1 9x8 n2 (non-square k)",     {2, 3, 9, 8, 5, 3, 5, 2, 1}, 1, 1},
    {"7x7/1 pad3 11x13 n3 cin3 cout5",       {3, 3, 11, 13, 5, 7, 7, 1, 3}, 0, 0},
    {"3x3/2 pad1 8x8 n2 cin4 cout8 (even)",  {2, 4, 8, 8, 8, 3, 3, 2, 1}, 0, 0},
    /* Winograd tiling: outputs not a multiple of the 4x4 tile, one-pixel outputs, pad 2 (the
     * backward pass then pads by 0), views, batch > 1 */
    {"3x3/1 pad1 10x5 n3 cin6 cout7",        {3, 6, 10, 5, 7, 3, 3, 1, 1}, 1, 1},
    {"3x3/1 pad0 3x3 n2 cin4 cout3 (1 px)",  {2, 4, 3, 3, 3, 3, 3, 1, 0}, 0, 1},
    {"3x3/1 pad2 6x5 n2 cin3 cout4",         {2, 3, 6, 5, 4, 3, 3, 1, 2}, 1, 1},
    {"3x3/1 pad1 17x13 n2 cin33 cout40",     {2, 33, 17, 13, 40, 3, 3, 1, 1}, 0, 0},
    /* Winograd output transform four tiles at a time (Wo >= 16) plus a one-at-a-time tail */
    {"3x3/1 pad1 20x37 n2 cin8 cout6",       {2, 8, 20, 37, 6, 3, 3, 1, 1}, 1, 1},
    /* a large case: ld padding (4096 -> 4160), one-image chunks by default on CPUs, and
     * M*N*K above CLBlast's default direct/indirect threshold (896^3 on PoCL untuned) */
    {"3x3/1 pad1 64x64 n3 cin64 cout64",     {3, 64, 64, 64, 64, 3, 3, 1, 1}, 0, 0},
};
#define N_CASES ((int)(sizeof k_cases / sizeof k_cases[0]))

static float *rand_host(size_t n, uint64_t seed) {
    float *a = malloc(n * sizeof *a);
    ck_assert_ptr_nonnull(a);
    tu_fill_uniform(a, n, seed, -1.0f, 1.0f);
    return a;
}

static double *to_f64(const float *a, size_t n) {
    double *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = a[i];
    return d;
}

/* Write `host` into the view (samples [1, 1+n)) of parent, with the sentinel 12345 around it.
 * One write of the whole parent: Oclgrind 21.10's uninitialized-value checker marks the rest of
 * a buffer uninitialised after a write of part of it (at a non-zero offset, most of the written
 * part too), which would flag every kernel reading a view. */
static void write_view(stfpm_tensor *parent, const float *host) {
    size_t per = (size_t)parent->c * parent->h * parent->w, all = (size_t)parent->n * per;
    float *buf = malloc(all * sizeof *buf);
    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < all; i++) buf[i] = 12345.0f;
    memcpy(buf + per, host, (all - 2 * per) * sizeof *buf);
    TU_CHECK_STATUS(stfpm_tensor_write(tu_ctx(), parent, buf));
    free(buf);
}

/* A device tensor holding `host`, either owning its buffer or as a view (samples [1, 1+n))
 * of a larger tensor whose other samples hold a sentinel. *parent receives what to free. */
static stfpm_tensor make_tensor(const float *host, int n, int c, int h, int w, int view,
                                stfpm_tensor *parent) {
    if (!view) {
        *parent = tu_tensor(host, n, c, h, w);
        return *parent;
    }
    *parent = tu_tensor(NULL, n + 2, c, h, w);
    if (host) write_view(parent, host);
    else TU_CHECK_STATUS(stfpm_tensor_fill(tu_ctx(), parent, 12345.0f));
    return stfpm_tensor_view(parent, 1, n);
}

/* The samples around a view must be untouched (12345). */
static void check_sentinels(const char *what, const stfpm_tensor *parent) {
    float *all = tu_read(parent);
    size_t per = (size_t)parent->c * parent->h * parent->w;
    for (size_t i = 0; i < per; i++) {
        ck_assert_msg(all[i] == 12345.0f && all[(parent->n - 1) * per + i] == 12345.0f,
                      "%s: write outside the view at element %zu", what, i);
    }
    free(all);
}

/* Winograd F(4x4, 3x3) (3x3 / stride-1 convolutions, STFPM_CONV_ALGO=winograd) rounds
 * differently from direct summation: its transforms scale intermediate values by up to ~100
 * (B^T's 4 and 5, A^T's 8) before the channel sums, so the float32 error per output is about
 * 10x that of im2col + GEMM for the same reduction length. Measured on the 64-channel case:
 * y and dx 2.5e-4 at R = 576 (outputs of rms ~8: 3e-5 of rms), i.e. 4.4e-7 * R; dw 1.8e-3 at
 * R = 12288 (rms ~40), 1.5e-7 * R. Tolerances: atol = 1e-4 + 2e-6 * R for y and dx,
 * 1e-4 + 5e-7 * R for dw. An indexing or transform-coefficient error gives O(1) errors. */
static double atol_wino(size_t reduction_len) { return 1e-4 + 2e-6 * (double)reduction_len; }
static double atol_wino_dw(size_t reduction_len) { return 1e-4 + 5e-7 * (double)reduction_len; }

static int g_winograd;   /* the case runs with STFPM_CONV_ALGO=winograd (1) or winograd2 (2:
                            F(2x2, 3x3) forward, the backward passes then use im2col) */

/* id: the case's seed and reference-cache key (its index in k_cases, or 1000 + its index in
 * k_tiny). */
static void run_case(const conv_case *tc, int id, int chunked) {
    stfpm_ctx *ctx = tu_ctx();
    const ref_conv_shape *s = &tc->s;
    int ho = ref_conv_ho(s), wo = ref_conv_wo(s);
    size_t nx = ref_conv_x_numel(s), nw = ref_conv_w_numel(s), ny = ref_conv_y_numel(s);
    uint64_t seed = (uint64_t)id * 101 + 7;
    float *x = rand_host(nx, seed), *w = rand_host(nw, seed + 1), *dy = rand_host(ny, seed + 2);
    char what[256];
    /* chunked: a scratch budget of 3 output rows: the forward's im2col works on chunks of 3
     * rows (crossing image boundaries when Ho % 3 != 0), the backward on one image per chunk
     * (dW accumulated across chunks), Winograd on one image per chunk */
    if (chunked) {
        tu_set_conv_chunk_bytes((size_t)3 * ((size_t)s->cin * s->kh * s->kw + s->cout) * ref_conv_wo(s) * 4);
    } else {
        tu_set_conv_chunk_bytes(0);
    }
    int wino = g_winograd && s->kh == 3 && s->kw == 3 && s->stride == 1;
    int wino_bwd = wino && g_winograd == 1;
    double atol_y = (wino ? atol_wino : atol_for)((size_t)s->cin * s->kh * s->kw);
    double atol_dx = (wino_bwd ? atol_wino : atol_for)((size_t)s->cout * s->kh * s->kw);
    double atol_dw = (wino_bwd ? atol_wino_dw : atol_for)((size_t)s->n * ho * wo);

    stfpm_tensor px, pw, py, pdy, pdx, pdw;
    int v = tc->views;
    stfpm_tensor tx = make_tensor(x, s->n, s->cin, s->h, s->w, v, &px);
    stfpm_tensor tw = make_tensor(w, s->cout, s->cin, s->kh, s->kw, v, &pw);
    stfpm_tensor tdy = make_tensor(dy, s->n, s->cout, ho, wo, v, &pdy);
    stfpm_tensor ty = make_tensor(NULL, s->n, s->cout, ho, wo, v, &py);
    stfpm_tensor tdx = make_tensor(NULL, s->n, s->cin, s->h, s->w, v, &pdx);
    stfpm_tensor tdw = make_tensor(NULL, s->cout, s->cin, s->kh, s->kw, v, &pdw);
    /* outputs are overwritten: start from garbage */
    TU_CHECK_STATUS(stfpm_tensor_fill(ctx, &ty, NAN));
    TU_CHECK_STATUS(stfpm_tensor_fill(ctx, &tdx, -777.0f));
    TU_CHECK_STATUS(stfpm_tensor_fill(ctx, &tdw, NAN));

    /* forward */
    /* the references (double accumulation) depend only on the case: computed once per case and
     * kept for its other algorithms / chunkings (under ASan they dominated the suite's time) */
    static int ref_case = -1;
    static float *want_y, *want_dx, *want_dw;
    if (ref_case != id) {
        free(want_y); free(want_dx); free(want_dw);
        want_y = malloc(ny * sizeof *want_y);
        want_dx = malloc(nx * sizeof *want_dx);
        want_dw = malloc(nw * sizeof *want_dw);
        ref_conv2d_forward(s, x, w, want_y);
        ref_conv2d_backward_data(s, dy, w, want_dx);
        ref_conv2d_backward_weight(s, x, dy, want_dw);
        ref_case = id;
    }
    TU_CHECK_STATUS(stfpm_conv2d_forward(ctx, &tx, &tw, s->stride, s->pad, &ty));
    float *got_y = tu_read(&ty);
    const char *tag = !wino ? (chunked ? " [chunked]" : "")
                      : g_winograd == 2 ? (chunked ? " [chunked, winograd2]" : " [winograd2]")
                                        : (chunked ? " [chunked, winograd]" : " [winograd]");
    snprintf(what, sizeof what, "%s%s: forward y", tc->name, tag);
    tu_assert_close(what, got_y, want_y, ny, atol_y, RTOL);

    /* backward, both gradients */
    TU_CHECK_STATUS(stfpm_conv2d_backward(ctx, &tx, &tw, s->stride, s->pad, &tdy, &tdx, &tdw));
    float *got_dx = tu_read(&tdx), *got_dw = tu_read(&tdw);
    snprintf(what, sizeof what, "%s%s: backward dx", tc->name, tag);
    tu_assert_close(what, got_dx, want_dx, nx, atol_dx, RTOL);
    snprintf(what, sizeof what, "%s%s: backward dw", tc->name, tag);
    tu_assert_close(what, got_dw, want_dw, nw, atol_dw, RTOL);

    /* each gradient alone (the other NULL) gives the same values */
    TU_CHECK_STATUS(stfpm_tensor_fill(ctx, &tdx, NAN));
    TU_CHECK_STATUS(stfpm_conv2d_backward(ctx, &tx, &tw, s->stride, s->pad, &tdy, &tdx, NULL));
    float *got_dx2 = tu_read(&tdx);
    snprintf(what, sizeof what, "%s%s: backward dx only", tc->name, tag);
    tu_assert_close(what, got_dx2, want_dx, nx, atol_dx, RTOL);
    TU_CHECK_STATUS(stfpm_tensor_fill(ctx, &tdw, NAN));
    TU_CHECK_STATUS(stfpm_conv2d_backward(ctx, &tx, &tw, s->stride, s->pad, &tdy, NULL, &tdw));
    float *got_dw2 = tu_read(&tdw);
    snprintf(what, sizeof what, "%s%s: backward dw only", tc->name, tag);
    tu_assert_close(what, got_dw2, want_dw, nw, atol_dw, RTOL);

    if (v) {
        check_sentinels("y view", &py);
        check_sentinels("dx view", &pdx);
        check_sentinels("dw view", &pdw);
    }

    /* finite differences of L = sum(dy * y) in double, at a few x and w entries */
    if (tc->fd && !chunked) {
        double *xd = to_f64(x, nx), *wd = to_f64(w, nw), *dyd = to_f64(dy, ny);
        const double e = 1e-2;
        for (int t = 0; t < 6; t++) {
            int is_x = t < 3;
            size_t n = is_x ? nx : nw;
            size_t picks[3] = {n / 3, (2 * n) / 3 + 1, n - 1};   /* n - 1: a corner entry */
            size_t j = picks[t % 3] % n;
            double *p = is_x ? &xd[j] : &wd[j];
            double keep = *p;
            *p = keep + e;
            double lp = ref_conv2d_dot_loss(s, xd, wd, dyd);
            *p = keep - e;
            double lm = ref_conv2d_dot_loss(s, xd, wd, dyd);
            *p = keep;
            double fd = (lp - lm) / (2 * e);
            float fdf = (float)fd;
            float got = is_x ? got_dx[j] : got_dw[j];
            snprintf(what, sizeof what, "%s%s: d%s[%zu] vs finite difference", tc->name, tag, is_x ? "x" : "w", j);
            tu_assert_close(what, &got, &fdf, 1, is_x ? atol_dx : atol_dw, RTOL);
        }
        free(xd);
        free(wd);
        free(dyd);
    }

    if (chunked) tu_set_conv_chunk_bytes(0);
    free(x); free(w); free(dy);
    free(got_y);
    free(got_dx); free(got_dw); free(got_dx2); free(got_dw2);
    stfpm_tensor_free(ctx, &px);
    stfpm_tensor_free(ctx, &pw);
    stfpm_tensor_free(ctx, &py);
    stfpm_tensor_free(ctx, &pdy);
    stfpm_tensor_free(ctx, &pdx);
    stfpm_tensor_free(ctx, &pdw);
}

/* Each case whole, then (batch > 1) split into one-image chunks; 3x3 / stride-1 cases both
 * with im2col + GEMM and with Winograd. */
START_TEST(test_conv_vs_reference) {
    const conv_case *tc = &k_cases[_i];
    int algos = tc->s.kh == 3 && tc->s.kw == 3 && tc->s.stride == 1 ? 3 : 1;
    static const stfpm_conv_algo_choice algo[3] = {STFPM_CONV_ALGO_IM2COL, STFPM_CONV_ALGO_WINOGRAD,
                                                   STFPM_CONV_ALGO_WINOGRAD2};
    for (int a = 0; a < algos; a++) {
        g_winograd = a;
        tu_set_conv_algo(algo[a]);
        run_case(tc, _i, 0);
        if (tc->s.n > 1) run_case(tc, _i, 1);
    }
    tu_reset_options();
    g_winograd = 0;
}
END_TEST

/* stfpm_gemm with the CLBlast parameters in effect for this device (host/gemm.c tunes them;
 * the conv GEMMs above only use some cases): every transpose combination, element offsets,
 * padded leading dimensions, alpha and beta != 0, sizes on both sides of CLBlast's
 * direct / indirect threshold and not multiples of the kernel tiles. */
START_TEST(test_gemm_tuned_params) {
    stfpm_ctx *ctx = tu_ctx();
    static const int sizes[][3] = {{5, 7, 3}, {67, 130, 33}, {64, 128, 64}, {130, 70, 147}};
    for (int si = 0; si < 4; si++) {
        for (int ta = 0; ta < 2; ta++) {
            for (int tb = 0; tb < 2; tb++) {
                size_t m = sizes[si][0], n = sizes[si][1], k = sizes[si][2];
                size_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
                size_t lda = ac + 3, ldb = bc + 1, ldc = n + 2, aoff = 3, boff = 5, coff = 2;
                size_t na = aoff + ar * lda, nb = boff + br * ldb, nc = coff + m * ldc;
                float *a = rand_host(na, 900 + si), *b = rand_host(nb, 901 + si), *c = rand_host(nc, 902 + si);
                float *want = malloc(nc * sizeof *want);
                memcpy(want, c, nc * sizeof *want);
                const float alpha = 0.75f, beta = 0.5f;
                for (size_t i = 0; i < m; i++)
                    for (size_t j = 0; j < n; j++) {
                        double acc = 0;
                        for (size_t l = 0; l < k; l++)
                            acc += (double)(ta ? a[aoff + l * lda + i] : a[aoff + i * lda + l]) *
                                   (tb ? b[boff + j * ldb + l] : b[boff + l * ldb + j]);
                        want[coff + i * ldc + j] = (float)(alpha * acc + beta * c[coff + i * ldc + j]);
                    }
                stfpm_tensor ta_t = tu_tensor(a, 1, 1, 1, (int)na), tb_t = tu_tensor(b, 1, 1, 1, (int)nb);
                stfpm_tensor tc_t = tu_tensor(c, 1, 1, 1, (int)nc);
                TU_CHECK_STATUS(stfpm_gemm(ctx, ta, tb, m, n, k, alpha, ta_t.buf, aoff, lda, tb_t.buf, boff,
                                           ldb, beta, tc_t.buf, coff, ldc));
                float *got = tu_read(&tc_t);
                char what[128];
                snprintf(what, sizeof what, "sgemm %zux%zux%zu trans_a %d trans_b %d", m, n, k, ta, tb);
                /* elements outside the m x n window (padding, offset) must keep their values:
                 * want holds c there */
                tu_assert_close(what, got, want, nc, atol_for(k), RTOL);
                free(a); free(b); free(c); free(want); free(got);
                stfpm_tensor_free(ctx, &ta_t);
                stfpm_tensor_free(ctx, &tb_t);
                stfpm_tensor_free(ctx, &tc_t);
            }
        }
    }
}
END_TEST

static void expect_arg_error(stfpm_status s, const char *needle) {
    ck_assert_msg(s == STFPM_ERR_ARG, "expected STFPM_ERR_ARG, got %s (%s)", stfpm_status_name(s),
                  stfpm_last_error());
    ck_assert_msg(strstr(stfpm_last_error(), needle) != NULL, "message \"%s\" should mention \"%s\"",
                  stfpm_last_error(), needle);
}

/* stfpm_conv2d_forward_fused: y = act(conv(x, w) + bias + residual) against the reference
 * conv plus the epilogue in double, for every combination of bias / residual / ReLU, with and
 * without prepared (Winograd-transformed) weights, on views, both algorithms for 3x3 / 1. */
static const int k_fused_cases[] = {0, 1, 2, 4, 5, 11, 12, 14, 15};   /* indices into k_cases */
#define N_FUSED ((int)(sizeof k_fused_cases / sizeof k_fused_cases[0]))

/* max_algos: 1 runs im2col only (the tiny case), 3 also both Winogards for 3x3 / 1; combos: the
 * bias / residual / ReLU combinations to run (bit c: combo c = bias | residual << 1 | ReLU << 2). */
static void run_fused(const conv_case *tc, uint64_t seed, int max_algos, unsigned combos) {
    stfpm_ctx *ctx = tu_ctx();
    const ref_conv_shape *s = &tc->s;
    int ho = ref_conv_ho(s), wo = ref_conv_wo(s);
    size_t nx = ref_conv_x_numel(s), nw = ref_conv_w_numel(s), ny = ref_conv_y_numel(s);
    float *x = rand_host(nx, seed), *w = rand_host(nw, seed + 1), *res = rand_host(ny, seed + 2);
    float *bias = rand_host((size_t)s->cout, seed + 3);
    float *conv = malloc(ny * sizeof *conv), *want = malloc(ny * sizeof *want);
    ref_conv2d_forward(s, x, w, conv);
    int algos = s->kh == 3 && s->kw == 3 && s->stride == 1 ? max_algos : 1;
    static const char *names[3] = {"im2col", "winograd", "winograd2"};
    static const stfpm_conv_algo_choice algo[3] = {STFPM_CONV_ALGO_IM2COL, STFPM_CONV_ALGO_WINOGRAD,
                                                   STFPM_CONV_ALGO_WINOGRAD2};
    stfpm_tensor px, pw, py, pr, pb;
    stfpm_tensor tx = make_tensor(x, s->n, s->cin, s->h, s->w, 1, &px);
    stfpm_tensor tw = make_tensor(w, s->cout, s->cin, s->kh, s->kw, 0, &pw);
    stfpm_tensor tr = make_tensor(res, s->n, s->cout, ho, wo, 1, &pr);
    stfpm_tensor tb = make_tensor(bias, 1, s->cout, 1, 1, 0, &pb);
    stfpm_tensor ty = make_tensor(NULL, s->n, s->cout, ho, wo, 1, &py);
    for (int a = 0; a < algos; a++) {
        tu_set_conv_algo(algo[a]);
        double atol = (a >= 1 ? atol_wino : atol_for)((size_t)s->cin * s->kh * s->kw);
        stfpm_conv_prepared *prep = NULL;
        tu_set_conv_algo(a == 0 ? STFPM_CONV_ALGO_IM2COL : STFPM_CONV_ALGO_WINOGRAD);   /* prepare both tiles */
        TU_CHECK_STATUS(stfpm_conv2d_prepare(ctx, &tw, s->stride, s->pad, &prep));
        tu_set_conv_algo(algo[a]);
        ck_assert_msg((prep != NULL) == (a >= 1), "%s: prepared weights only for Winograd", tc->name);
        for (int combo = 0; combo < 8; combo++) {
            if (!(combos >> combo & 1)) continue;
            int hb = combo & 1, hr = (combo >> 1) & 1, relu = (combo >> 2) & 1;
            for (size_t j = 0; j < ny; j++) {
                int k = (int)(j / ((size_t)ho * wo) % (size_t)s->cout);
                double v = (double)conv[j] + (hb ? bias[k] : 0.0) + (hr ? res[j] : 0.0);
                want[j] = (float)(relu && v < 0 ? 0.0 : v);
            }
            /* variant 2: the residual is y itself (allowed: same buffer and offset) */
            for (int var = 0; var < (prep ? 2 : 1) + hr; var++) {
                int use_prep = var == 1 && prep, alias = hr && var == (prep ? 2 : 1);
                if (alias) write_view(&py, res);
                else TU_CHECK_STATUS(stfpm_tensor_fill(ctx, &ty, NAN));
                TU_CHECK_STATUS(stfpm_conv2d_forward_fused(ctx, &tx, &tw, s->stride, s->pad, hb ? &tb : NULL,
                                                           hr ? (alias ? &ty : &tr) : NULL, relu,
                                                           use_prep ? prep : NULL, &ty));
                float *got = tu_read(&ty);
                char what[256];
                snprintf(what, sizeof what, "%s [%s] fused bias %d residual %d%s relu %d prepared %d", tc->name,
                         names[a], hb, hr, alias ? " (= y)" : "", relu, use_prep);
                tu_assert_close(what, got, want, ny, atol, RTOL);
                free(got);
            }
        }
        check_sentinels("fused y view", &py);
        stfpm_conv2d_prepared_free(ctx, prep);
    }
    tu_reset_options();
    free(x); free(w); free(res); free(bias); free(conv); free(want);
    stfpm_tensor *all[] = {&px, &pw, &py, &pr, &pb};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) stfpm_tensor_free(ctx, all[i]);
}

START_TEST(test_conv_fused) {
    stfpm_ctx *ctx = tu_ctx();
    const conv_case *tc = &k_cases[k_fused_cases[_i]];
    const ref_conv_shape *s = &tc->s;
    run_fused(tc, (uint64_t)_i * 31 + 5, 3, 0xff);
    stfpm_tensor px, pw, py;
    stfpm_tensor tx = make_tensor(NULL, s->n, s->cin, s->h, s->w, 1, &px);
    stfpm_tensor tw = make_tensor(NULL, s->cout, s->cin, s->kh, s->kw, 0, &pw);
    stfpm_tensor ty = make_tensor(NULL, s->n, s->cout, ref_conv_ho(s), ref_conv_wo(s), 1, &py);
    /* by default, weights of a 3x3 / stride-1 conv with >= 32 channels are prepared (Winograd
     * is chosen for such convs at any batch with enough tiles); other convs need nothing */
    {
        stfpm_tensor w64 = tu_tensor(NULL, 64, 64, 3, 3), w64s = tu_tensor(NULL, 64, 64, 1, 1);
        TU_CHECK_STATUS(stfpm_tensor_fill(ctx, &w64, 0.5f));
        stfpm_conv_prepared *p64 = NULL, *p1 = NULL;
        TU_CHECK_STATUS(stfpm_conv2d_prepare(ctx, &w64, 1, 1, &p64));
        TU_CHECK_STATUS(stfpm_conv2d_prepare(ctx, &w64s, 1, 0, &p1));
        ck_assert_msg(p64 != NULL, "64-channel 3x3/1 weights were not prepared by default");
        ck_assert_msg(p1 == NULL, "1x1 weights need no preparation");
        stfpm_conv2d_prepared_free(ctx, p64);
        stfpm_tensor_free(ctx, &w64);
        stfpm_tensor_free(ctx, &w64s);
    }
    /* wrong shapes are refused */
    stfpm_tensor bad_b = tu_tensor(NULL, 1, s->cout + 1, 1, 1);
    stfpm_status st = stfpm_conv2d_forward_fused(ctx, &tx, &tw, s->stride, s->pad, &bad_b, NULL, 0, NULL, &ty);
    ck_assert_int_eq(st, STFPM_ERR_ARG);
    ck_assert_msg(strstr(stfpm_last_error(), "bias") != NULL, "error names the bias: %s", stfpm_last_error());
    stfpm_tensor_free(ctx, &bad_b);
    stfpm_tensor *all[] = {&px, &pw, &py};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) stfpm_tensor_free(ctx, all[i]);
}
END_TEST

/* Winograd on a device too small for the chunk its budget asks for: the chunk is halved until
 * the scratch fits (host/winograd.c, wino_scratch) and the results are still right. The device
 * is limited with STFPM_DEVICE_MEM_LIMIT (own context): the tensors + U take ~2.8 MB, V + M
 * ~1.2 MB per image (64 channels, 32x32), so 6 MB allows chunks of 2-3 images but not 4. */
/* case 0: the first scratch matrix already does not fit; case 1: it fits at the full chunk but
 * the second does not (8 images, 32 channels, 32x32: tensors + U 3.37 MB, each matrix 2.66 MB
 * for the whole batch, 1.18 MB for 4 images, 0.30 MB for one; 6.2 MB is enough only for a retry
 * that also frees the first matrix: keeping it, even one image per chunk needs 6.33 MB; sizes
 * with PoCL's 128-byte sub-buffer alignment) */
static const struct { ref_conv_shape s; const char *limit; } k_small_dev[] = {
    {{4, 64, 32, 32, 64, 3, 3, 1, 1}, "6000000"},
    {{8, 32, 32, 32, 32, 3, 3, 1, 1}, "6200000"},
};

START_TEST(test_conv_winograd_small_device) {
    const ref_conv_shape s = k_small_dev[_i].s;
    size_t nx = ref_conv_x_numel(&s), nw = ref_conv_w_numel(&s), ny = ref_conv_y_numel(&s);
    float *x = rand_host(nx, 77), *w = rand_host(nw, 78), *dy = rand_host(ny, 79);
    float *want = malloc(ny * sizeof *want), *want_dw = malloc(nw * sizeof *want_dw);
    ref_conv2d_forward(&s, x, w, want);
    ref_conv2d_backward_weight(&s, x, dy, want_dw);
    stfpm_ctx *ctx = NULL;
    stfpm_ctx_options o = {.device_mem_limit = (uint64_t)atoll(k_small_dev[_i].limit),
                           .wino_chunk_bytes = 268435456, .conv_algo = STFPM_CONV_ALGO_WINOGRAD};
    TU_CHECK_STATUS(stfpm_ctx_create(&ctx, &o));
    stfpm_tensor tx, tw, ty, tdy, tdw;
    TU_CHECK_STATUS(stfpm_tensor_alloc(ctx, &tx, s.n, s.cin, s.h, s.w));
    TU_CHECK_STATUS(stfpm_tensor_alloc(ctx, &tw, s.cout, s.cin, 3, 3));
    TU_CHECK_STATUS(stfpm_tensor_alloc(ctx, &ty, s.n, s.cout, s.h, s.w));
    TU_CHECK_STATUS(stfpm_tensor_alloc(ctx, &tdy, s.n, s.cout, s.h, s.w));
    TU_CHECK_STATUS(stfpm_tensor_alloc(ctx, &tdw, s.cout, s.cin, 3, 3));
    TU_CHECK_STATUS(stfpm_tensor_write(ctx, &tx, x));
    TU_CHECK_STATUS(stfpm_tensor_write(ctx, &tw, w));
    TU_CHECK_STATUS(stfpm_tensor_write(ctx, &tdy, dy));
    TU_CHECK_STATUS(stfpm_conv2d_forward(ctx, &tx, &tw, 1, 1, &ty));
    TU_CHECK_STATUS(stfpm_conv2d_backward(ctx, &tx, &tw, 1, 1, &tdy, NULL, &tdw));
    float *got = malloc(ny * sizeof *got), *got_dw = malloc(nw * sizeof *got_dw);
    TU_CHECK_STATUS(stfpm_tensor_read(ctx, &ty, got));
    TU_CHECK_STATUS(stfpm_tensor_read(ctx, &tdw, got_dw));
    ck_assert_msg(stfpm_ctx_mem_peak(ctx) <= (uint64_t)atoll(k_small_dev[_i].limit), "peak %llu over the %s limit",
                  (unsigned long long)stfpm_ctx_mem_peak(ctx), k_small_dev[_i].limit);
    tu_assert_close("winograd forward, small device", got, want, ny, atol_wino((size_t)s.cin * 9), RTOL);
    tu_assert_close("winograd dw, small device", got_dw, want_dw, nw, atol_wino_dw((size_t)s.n * s.h * s.w), RTOL);
    stfpm_tensor *all[] = {&tx, &tw, &ty, &tdy, &tdw};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) stfpm_tensor_free(ctx, all[i]);
    stfpm_ctx_free(ctx);
    free(x); free(w); free(dy); free(want); free(want_dw); free(got); free(got_dw);
}
END_TEST

START_TEST(test_conv_shape_mismatch) {
    stfpm_ctx *ctx = tu_ctx();
    stfpm_tensor x = tu_tensor(NULL, 2, 3, 9, 9);
    stfpm_tensor w = tu_tensor(NULL, 4, 3, 3, 3);
    stfpm_tensor w_bad = tu_tensor(NULL, 4, 5, 3, 3);      /* Cin 5 != 3 */
    stfpm_tensor y = tu_tensor(NULL, 2, 4, 9, 9);          /* right for stride 1 pad 1 */
    stfpm_tensor y_small = tu_tensor(NULL, 2, 4, 7, 7);    /* that is pad 0 */
    stfpm_tensor y_ch = tu_tensor(NULL, 2, 5, 9, 9);
    stfpm_tensor dx_bad = tu_tensor(NULL, 2, 3, 9, 8);
    stfpm_tensor dw_bad = tu_tensor(NULL, 4, 3, 3, 1);
    stfpm_tensor w_big = tu_tensor(NULL, 4, 3, 13, 13);    /* larger than 9 + 2 */

    TU_CHECK_STATUS(stfpm_conv2d_forward(ctx, &x, &w, 1, 1, &y));
    expect_arg_error(stfpm_conv2d_forward(ctx, &x, &w_bad, 1, 1, &y), "channels");
    expect_arg_error(stfpm_conv2d_forward(ctx, &x, &w, 1, 1, &y_small), "y has shape (2, 4, 7, 7)");
    expect_arg_error(stfpm_conv2d_forward(ctx, &x, &w, 1, 1, &y_ch), "expected (2, 4, 9, 9)");
    expect_arg_error(stfpm_conv2d_forward(ctx, &x, &w, 0, 1, &y), "stride");
    expect_arg_error(stfpm_conv2d_forward(ctx, &x, &w, 1, -1, &y), "pad");
    expect_arg_error(stfpm_conv2d_forward(ctx, &x, &w_big, 1, 1, &y), "larger than the padded input");
    expect_arg_error(stfpm_conv2d_forward(ctx, &x, &w, 1, 1, NULL), "NULL");
    expect_arg_error(stfpm_conv2d_backward(ctx, &x, &w, 1, 1, &y_small, NULL, NULL), "dy has shape");
    expect_arg_error(stfpm_conv2d_backward(ctx, &x, &w, 1, 1, &y, &dx_bad, NULL), "dx has shape");
    expect_arg_error(stfpm_conv2d_backward(ctx, &x, &w, 1, 1, &y, NULL, &dw_bad), "dw has shape");
    TU_CHECK_STATUS(stfpm_conv2d_backward(ctx, &x, &w, 1, 1, &y, NULL, NULL));

    stfpm_tensor *all[] = {&x, &w, &w_bad, &y, &y_small, &y_ch, &dx_bad, &dw_bad, &w_big};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) stfpm_tensor_free(ctx, all[i]);
}
END_TEST

/* The tiny case (scripts/oclgrind.sh runs it alone under Oclgrind, both kernel variants): every
 * kernel of cl/conv.cl in every pass with im2col forced: forward im2col + row epilogue (whole,
 * and in 3-row chunks crossing images; Wo 9 at stride 2 takes the row form's vload16 path),
 * backward to_rows / zero_cols / transposed im2col (K 27 and 5, padded to 64) / col2im, the
 * fused epilogues (bias alone; residual, also y itself, with ReLU) of the row chunks and of the
 * pointwise path (conv_epilogue); views (non-zero offsets); fill_f32 fills the outputs with
 * garbage. About 20 CPU-seconds per kernel variant under Oclgrind. */
static const conv_case k_tiny[] = {
    {"tiny 3x3/2 pad1 7x17 n3 cin3 cout5",            {3, 3, 7, 17, 5, 3, 3, 2, 1}, 1, 1},
    {"tiny 1x1/1 pad0 5x3 n3 cin5 cout3 (pointwise)", {3, 5, 5, 3, 3, 1, 1, 1, 0}, 1, 1},
};
#define N_TINY ((int)(sizeof k_tiny / sizeof k_tiny[0]))

START_TEST(test_conv_tiny) {
    const conv_case *tc = &k_tiny[_i];
    /* Scratch slots at their largest size from the start: Oclgrind 21.10 keeps treating the part of
     * a buffer beyond the size of a released one (a slot that grows) as uninitialised, whatever
     * the kernels write there. 1 MiB each covers these shapes. */
    for (int slot = 0; slot < STFPM_SCRATCH_SLOTS; slot++) {
        cl_mem m;
        TU_CHECK_STATUS(stfpm_scratch(tu_ctx(), (stfpm_scratch_slot)slot, (size_t)1 << 20, &m));
    }
    tu_set_conv_algo(STFPM_CONV_ALGO_IM2COL);
    g_winograd = 0;
    run_case(tc, 1000 + _i, 0);
    run_case(tc, 1000 + _i, 1);
    run_fused(tc, (uint64_t)_i * 31 + 1005, 1, 1u << 1 | 1u << 6);   /* bias; residual (also = y) + ReLU */
    tu_reset_options();
}
END_TEST

int main(void) {
    /* One process for all tests (unless CK_FORK says otherwise): a fork per test would create
     * a context and rebuild CLBlast's GEMM program ~1 s each, 8x the test's own run time. */
    setenv("CK_FORK", "no", 0);
    Suite *s = suite_create("conv");
    TCase *tc = tcase_create("conv");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_conv_vs_reference, 0, N_CASES);
    tcase_add_test(tc, test_conv_shape_mismatch);
    tcase_add_loop_test(tc, test_conv_fused, 0, N_FUSED);
    tcase_add_loop_test(tc, test_conv_winograd_small_device, 0, 2);
    tcase_add_test(tc, test_gemm_tuned_params);
    suite_add_tcase(s, tc);
    TCase *tiny = tcase_create("tiny");
    tcase_set_timeout(tiny, 600);
    tcase_add_loop_test(tiny, test_conv_tiny, 0, N_TINY);
    suite_add_tcase(s, tiny);
    return tu_run_suite(s);
}
