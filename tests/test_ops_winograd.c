/* Winograd convolutions (host/winograd.c, cl/winograd.cl) forced through the conv_algo option:
 * F(4x4, 3x3) (STFPM_CONV_ALGO_WINOGRAD: forward, backward-data, weight gradient) and F(2x2, 3x3)
 * (STFPM_CONV_ALGO_WINOGRAD2: forward only), plain and fused (bias / residual / ReLU), with and
 * without prepared weights, against the double-accumulation references of tests/ref_conv.c.
 *
 * Shapes: prime H and W (outputs not a multiple of the tile, one-row outputs), channel counts
 * that are not multiples of 16, batch 1 and 3, pad 0 (the backward-data pass then pads by 2) and
 * 1, tensors as views (non-zero offsets, neighbours checked untouched), outputs over garbage
 * (overwrite semantics). Tile counts below 64 and between multiples of 64 give planes with
 * padded columns (ld > T); 512 tiles the ld = T + 64 case. Chunking: a scratch budget of one or
 * two images splits a batch of 3 into 1 + 1 + 1 or 2 + 1 chunks (dw accumulated over chunks).
 *
 * Tolerances (the rule of tests/test_ops_conv.c, measured there on a 64-channel case):
 * |got - want| <= atol + 1e-4 |want| with atol = 1e-4 + 2e-6 R for y and dx and
 * 1e-4 + 5e-7 R for dw, R the number of products in one output (y: Cin*9, dx: Cout*9,
 * dw: N*Ho*Wo). Winograd's transforms scale intermediate values by up to ~100 before the channel
 * sums, so it errs ~10x more than direct summation; indexing or coefficient errors are O(1).
 *
 * The test case "tiny" (scripts/oclgrind.sh) runs every kernel of the family at small shapes. */
#include "testutil.h"
#include "ref_conv.h"
#include "tu_options.h"
#include "runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RTOL 1e-4
static double atol_y(size_t r) { return 1e-4 + 2e-6 * (double)r; }
static double atol_dw(size_t r) { return 1e-4 + 5e-7 * (double)r; }

#define SENTINEL 12345.0f

typedef struct wino_case {
    const char *name;
    int n, cin, h, w, cout, pad;
    int views;   /* tensors are views into larger ones (samples [1, 1+n) of n+2) */
} wino_case;

static const wino_case k_cases[] = {
    {"n1 c5 7x11 k6 pad1", 1, 5, 7, 11, 6, 1, 0},
    {"n3 c17 13x11 k19 pad0", 3, 17, 13, 11, 19, 0, 1},
    {"n3 c7 23x19 k5 pad1", 3, 7, 23, 19, 5, 1, 0},
    {"n1 c3 37x41 k13 pad1 (110 tiles)", 1, 3, 37, 41, 13, 1, 1},
    {"n3 c33 17x13 k21 pad1", 3, 33, 17, 13, 21, 1, 1},
    {"n1 c4 3x5 k3 pad0 (one output row)", 1, 4, 3, 5, 3, 0, 0},
    {"n3 c9 29x31 k10 pad1", 3, 9, 29, 31, 10, 1, 0},
    {"n2 c3 61x61 k5 pad1 (512 tiles)", 2, 3, 61, 61, 5, 1, 0},
};
#define N_CASES ((int)(sizeof k_cases / sizeof k_cases[0]))

static ref_conv_shape shape_of(const wino_case *c) {
    ref_conv_shape s = {c->n, c->cin, c->h, c->w, c->cout, 3, 3, 1, c->pad};
    return s;
}

/* a seed per case (its name) */
static uint64_t case_seed(const wino_case *c) {
    uint64_t h = 1469598103934665603ull;
    for (const char *p = c->name; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

static float *rand_host(size_t n, uint64_t seed) {
    float *a = malloc(n * sizeof *a);
    ck_assert_ptr_nonnull(a);
    tu_fill_uniform(a, n, seed, -1.0f, 1.0f);
    return a;
}

/* Write host into t, a view of samples [1, 1+t->n) of whole when view (whole's other samples
 * get SENTINEL), else whole itself. The whole buffer is written at once: Oclgrind loses track
 * of what is initialised after a host write at an offset. */
static void set_tensor(stfpm_tensor *whole, int view, const float *host) {
    const size_t per = (size_t)whole->c * whole->h * whole->w, all_n = (size_t)whole->n * per;
    float *all = malloc(all_n * sizeof *all);
    ck_assert_ptr_nonnull(all);
    for (size_t j = 0; j < all_n; j++) all[j] = view ? SENTINEL : 0.0f;
    const size_t n = view ? all_n - 2 * per : all_n;
    for (size_t j = 0; j < n; j++) all[(view ? per : 0) + j] = host ? host[j] : 0.0f;
    TU_CHECK_STATUS(stfpm_tensor_write(tu_ctx(), whole, all));
    free(all);
}

/* A tensor holding host (NULL: zeros), on its own or as samples [1, 1+n) of a tensor of n+2
 * samples (set_tensor); *whole receives what to free. */
static stfpm_tensor dev_tensor(const float *host, int n, int c, int h, int w, int view, stfpm_tensor *whole) {
    TU_CHECK_STATUS(stfpm_tensor_alloc(tu_ctx(), whole, view ? n + 2 : n, c, h, w));
    set_tensor(whole, view, host);
    return view ? stfpm_tensor_view(whole, 1, n) : *whole;
}

static void expect_untouched(const char *what, const stfpm_tensor *whole) {
    float *all = tu_read(whole);
    size_t per = (size_t)whole->c * whole->h * whole->w;
    for (size_t j = 0; j < per; j++)
        ck_assert_msg(all[j] == SENTINEL && all[(size_t)(whole->n - 1) * per + j] == SENTINEL,
                      "%s: written outside the view (element %zu)", what, j);
    free(all);
}

/* Device buffers are released at once, or (g_defer, the tiny case) at the end of the test:
 * Oclgrind's uninitialised-value check keeps what it knows about a buffer under the buffer's
 * slot number, so a buffer that reuses the slot of a released one and is written only by
 * kernels (the prepared weights, grown scratch) would start from the old one's state. */
static int g_defer;
static stfpm_tensor g_deferred[64];
static int g_n_deferred;
static stfpm_conv_prepared *g_deferred_prep[8];
static int g_n_deferred_prep;

static void release_tensor(stfpm_tensor *t) {
    if (g_defer && g_n_deferred < (int)(sizeof g_deferred / sizeof g_deferred[0])) g_deferred[g_n_deferred++] = *t;
    else stfpm_tensor_free(tu_ctx(), t);
}

static void release_prep(stfpm_conv_prepared *p) {
    if (g_defer && g_n_deferred_prep < (int)(sizeof g_deferred_prep / sizeof g_deferred_prep[0]))
        g_deferred_prep[g_n_deferred_prep++] = p;
    else stfpm_conv2d_prepared_free(tu_ctx(), p);
}

static void release_deferred(void) {
    for (int j = 0; j < g_n_deferred_prep; j++) stfpm_conv2d_prepared_free(tu_ctx(), g_deferred_prep[j]);
    for (int j = 0; j < g_n_deferred; j++) stfpm_tensor_free(tu_ctx(), &g_deferred[j]);
    g_n_deferred = g_n_deferred_prep = 0;
    g_defer = 0;
}

static const char *algo_name(stfpm_conv_algo_choice a) {
    return a == STFPM_CONV_ALGO_WINOGRAD2 ? "F(2x2)" : "F(4x4)";
}

/* The scratch slots the convolutions use (their contents are undefined at the start of every
 * op), grown to at least min_bytes and filled with NaN over their whole size: a padded reduction
 * entry of the weight gradient (t >= T) left unset in both GEMM operands, or a plane entry a
 * transform leaves unset and a GEMM reads, then turns the result into NaN. */
static void poison_scratch(size_t min_bytes) {
    static const stfpm_scratch_slot slots[3] = {STFPM_SCRATCH_COLS, STFPM_SCRATCH_ROWS, STFPM_SCRATCH_AUX};
    for (int j = 0; j < 3; j++) {
        cl_mem m = NULL;
        size_t bytes = 0;
        TU_CHECK_STATUS(stfpm_scratch(tu_ctx(), slots[j], min_bytes, &m));
        TU_CHECK_STATUS(stfpm_cl_check(clGetMemObjectInfo(m, CL_MEM_SIZE, sizeof bytes, &bytes, NULL),
                                       "clGetMemObjectInfo"));
        float *nan_fill = malloc(bytes);
        ck_assert_ptr_nonnull(nan_fill);
        for (size_t k = 0; k < bytes / sizeof(float); k++) nan_fill[k] = NAN;
        TU_CHECK_STATUS(stfpm_cl_check(clEnqueueWriteBuffer(stfpm_ctx_queue(tu_ctx()), m, CL_TRUE, 0, bytes,
                                                            nan_fill, 0, NULL, NULL),
                                       "clEnqueueWriteBuffer"));
        free(nan_fill);
    }
}

/* A bound on the scratch (bytes per slot) of a Winograd pass over case c: 36 planes of
 * max(C, K) rows by the row stride of all its tiles (the backward-data tiles cover the input),
 * plus alignment. */
static size_t scratch_bound(const wino_case *c) {
    const size_t tiles = (size_t)c->n * ((size_t)(c->h + 3) / 4) * ((size_t)(c->w + 3) / 4);
    const size_t ld = (tiles + 63) / 64 * 64 + 64, rows = (size_t)(c->cin > c->cout ? c->cin : c->cout);
    return 36 * (rows * ld + 1024) * sizeof(float);
}

/* The passes check_plain runs (bit masks). The backward ones are F(4x4) only. */
enum { P_FWD = 1, P_BOTH = 2, P_DX = 4, P_DW = 8, P_ALL = 15 };

/* Forward and (F(4x4)) the gradients of case c under algorithm a: the passes in the mask
 * (P_BOTH: dx and dw in one call; P_DX, P_DW: each alone). */
static void check_plain(const wino_case *c, stfpm_conv_algo_choice a, unsigned passes, const char *tag) {
    stfpm_ctx *ctx = tu_ctx();
    const ref_conv_shape s = shape_of(c);
    const int ho = ref_conv_ho(&s), wo = ref_conv_wo(&s);
    const size_t nx = ref_conv_x_numel(&s), nw = ref_conv_w_numel(&s), ny = ref_conv_y_numel(&s);
    const uint64_t seed = case_seed(c);
    float *x = rand_host(nx, seed), *w = rand_host(nw, seed + 1), *dy = rand_host(ny, seed + 2);
    float *want_y = malloc(ny * sizeof *want_y), *want_dx = malloc(nx * sizeof *want_dx);
    float *want_dw = malloc(nw * sizeof *want_dw);
    if (passes & P_FWD) ref_conv2d_forward(&s, x, w, want_y);
    const int v = c->views;
    stfpm_tensor px, pw, pdy, py, pdx, pdw;
    stfpm_tensor tx = dev_tensor(x, s.n, s.cin, s.h, s.w, v, &px);
    stfpm_tensor tw = dev_tensor(w, s.cout, s.cin, 3, 3, v, &pw);
    stfpm_tensor tdy = dev_tensor(dy, s.n, s.cout, ho, wo, v, &pdy);
    stfpm_tensor ty = dev_tensor(NULL, s.n, s.cout, ho, wo, v, &py);
    stfpm_tensor tdx = dev_tensor(NULL, s.n, s.cin, s.h, s.w, v, &pdx);
    stfpm_tensor tdw = dev_tensor(NULL, s.cout, s.cin, 3, 3, v, &pdw);
    char what[256];
    tu_set_conv_algo(a);

    if (passes & P_FWD) {
        TU_CHECK_STATUS(stfpm_tensor_fill(ctx, &ty, NAN));
        TU_CHECK_STATUS(stfpm_conv2d_forward(ctx, &tx, &tw, 1, s.pad, &ty));
        float *got = tu_read(&ty);
        snprintf(what, sizeof what, "%s [%s%s] forward y", c->name, algo_name(a), tag);
        tu_assert_close(what, got, want_y, ny, atol_y((size_t)s.cin * 9), RTOL);
        free(got);
    }

    if (a == STFPM_CONV_ALGO_WINOGRAD && (passes & (P_BOTH | P_DX | P_DW))) {
        ref_conv2d_backward_data(&s, dy, w, want_dx);
        ref_conv2d_backward_weight(&s, x, dy, want_dw);
        const double adx = atol_y((size_t)s.cout * 9), adw = atol_dw((size_t)s.n * ho * wo);
        for (int which = 0; which < 3; which++) {   /* both, dx only, dw only */
            if (!(passes & (P_BOTH << which))) continue;
            const int want_x = which != 2, want_w = which != 1;
            poison_scratch(scratch_bound(c));
            TU_CHECK_STATUS(stfpm_tensor_fill(ctx, &tdx, -777.0f));
            TU_CHECK_STATUS(stfpm_tensor_fill(ctx, &tdw, NAN));
            TU_CHECK_STATUS(stfpm_conv2d_backward(ctx, &tx, &tw, 1, s.pad, &tdy, want_x ? &tdx : NULL,
                                                  want_w ? &tdw : NULL));
            static const char *parts[3] = {"", " (dx only)", " (dw only)"};
            if (want_x) {
                float *g = tu_read(&tdx);
                snprintf(what, sizeof what, "%s [%s%s] backward dx%s", c->name, algo_name(a), tag, parts[which]);
                tu_assert_close(what, g, want_dx, nx, adx, RTOL);
                free(g);
            }
            if (want_w) {
                float *g = tu_read(&tdw);
                snprintf(what, sizeof what, "%s [%s%s] backward dw%s", c->name, algo_name(a), tag, parts[which]);
                tu_assert_close(what, g, want_dw, nw, adw, RTOL);
                free(g);
            }
        }
    }
    if (v) {
        expect_untouched("y", &py);
        expect_untouched("dx", &pdx);
        expect_untouched("dw", &pdw);
    }
    stfpm_tensor *all[] = {&px, &pw, &pdy, &py, &pdx, &pdw};
    for (size_t j = 0; j < sizeof all / sizeof all[0]; j++) release_tensor(all[j]);
    free(x); free(w); free(dy); free(want_y); free(want_dx); free(want_dw);
}

/* The variants of check_fused (bit masks): the weights transformed per call, prepared by
 * stfpm_conv2d_prepare, and (with a residual) prepared with the residual being y itself. */
enum { V_PLAIN = 1, V_PREP = 2, V_ALIAS = 4, V_ALL = 7 };

/* stfpm_conv2d_forward_fused under algorithm a: the combinations of bias / residual / ReLU in
 * the mask combos (bit b for b = bias | residual << 1 | relu << 2), each in the variants in the
 * mask vars. */
static void check_fused(const wino_case *c, stfpm_conv_algo_choice a, unsigned combos, unsigned vars,
                        const char *tag) {
    stfpm_ctx *ctx = tu_ctx();
    const ref_conv_shape s = shape_of(c);
    const int ho = ref_conv_ho(&s), wo = ref_conv_wo(&s);
    const size_t nx = ref_conv_x_numel(&s), nw = ref_conv_w_numel(&s), ny = ref_conv_y_numel(&s);
    const uint64_t seed = case_seed(c) + 100;
    float *x = rand_host(nx, seed), *w = rand_host(nw, seed + 1), *res = rand_host(ny, seed + 2);
    float *bias = rand_host((size_t)s.cout, seed + 3);
    float *conv = malloc(ny * sizeof *conv), *want = malloc(ny * sizeof *want);
    ref_conv2d_forward(&s, x, w, conv);
    stfpm_tensor px, pw, pr, pb, py;
    stfpm_tensor tx = dev_tensor(x, s.n, s.cin, s.h, s.w, c->views, &px);
    stfpm_tensor tw = dev_tensor(w, s.cout, s.cin, 3, 3, c->views, &pw);
    stfpm_tensor tr = dev_tensor(res, s.n, s.cout, ho, wo, c->views, &pr);
    stfpm_tensor tb = dev_tensor(bias, 1, s.cout, 1, 1, c->views, &pb);
    stfpm_tensor ty = dev_tensor(NULL, s.n, s.cout, ho, wo, c->views, &py);
    /* prepared F(4x4) weights (the F(2x2) ones are added by the first forward that needs them) */
    tu_set_conv_algo(STFPM_CONV_ALGO_WINOGRAD);
    stfpm_conv_prepared *prep = NULL;
    TU_CHECK_STATUS(stfpm_conv2d_prepare(ctx, &tw, 1, s.pad, &prep));
    ck_assert_msg(prep != NULL, "%s: no prepared weights under the winograd algorithm", c->name);
    tu_set_conv_algo(a);
    const double atol = atol_y((size_t)s.cin * 9);
    for (int combo = 0; combo < 8; combo++) {
        if (!(combos >> combo & 1)) continue;
        const int hb = combo & 1, hr = combo >> 1 & 1, relu = combo >> 2 & 1;
        for (size_t j = 0; j < ny; j++) {
            const int k = (int)(j / ((size_t)ho * wo) % (size_t)s.cout);
            const double v = (double)conv[j] + (hb ? bias[k] : 0.0) + (hr ? res[j] : 0.0);
            want[j] = (float)(relu && v < 0 ? 0.0 : v);
        }
        for (int var = 0; var < 2 + hr; var++) {   /* 0: per call, 1: prepared, 2: residual = y */
            if (!(vars >> var & 1)) continue;
            const int alias = var == 2;
            if (alias) set_tensor(&py, c->views, res);
            else TU_CHECK_STATUS(stfpm_tensor_fill(ctx, &ty, NAN));
            TU_CHECK_STATUS(stfpm_conv2d_forward_fused(ctx, &tx, &tw, 1, s.pad, hb ? &tb : NULL,
                                                       hr ? (alias ? &ty : &tr) : NULL, relu,
                                                       var >= 1 ? prep : NULL, &ty));
            float *got = tu_read(&ty);
            char what[256];
            snprintf(what, sizeof what, "%s [%s%s] fused bias %d residual %d%s relu %d prepared %d", c->name,
                     algo_name(a), tag, hb, hr, alias ? " (= y)" : "", relu, var >= 1);
            tu_assert_close(what, got, want, ny, atol, RTOL);
            free(got);
        }
    }
    if (c->views) expect_untouched("fused y", &py);
    release_prep(prep);
    stfpm_tensor *all[] = {&px, &pw, &pr, &pb, &py};
    for (size_t j = 0; j < sizeof all / sizeof all[0]; j++) release_tensor(all[j]);
    free(x); free(w); free(res); free(bias); free(conv); free(want);
}

static const stfpm_conv_algo_choice k_algos[2] = {STFPM_CONV_ALGO_WINOGRAD, STFPM_CONV_ALGO_WINOGRAD2};

START_TEST(test_wino_plain) {
    for (int a = 0; a < 2; a++) check_plain(&k_cases[_i], k_algos[a], P_ALL, "");
    tu_reset_options();
}
END_TEST

START_TEST(test_wino_fused) {
    for (int a = 0; a < 2; a++) check_fused(&k_cases[_i], k_algos[a], 0xff, V_ALL, "");
    tu_reset_options();
}
END_TEST

/* Scratch per image of the forward (and the weight gradient, F(4x4)): planes * (C + K) * tiles
 * floats (host/winograd.c); a budget of q images gives chunks of q images. */
static size_t per_image_bytes(const wino_case *c, int tile) {
    const ref_conv_shape s = shape_of(c);
    const size_t th = (size_t)(ref_conv_ho(&s) + tile - 1) / tile, tw = (size_t)(ref_conv_wo(&s) + tile - 1) / tile;
    return (size_t)(tile + 2) * (tile + 2) * (size_t)(c->cin + c->cout) * th * tw * sizeof(float);
}

/* The batch-3 cases in chunks of one image and of two (2 + 1; the backward-data pass of a pad-0
 * case, whose tiles cover the larger input, in chunks of one). */
START_TEST(test_wino_chunked) {
    static const int cases[] = {1, 2, 4, 6};
    const wino_case *c = &k_cases[cases[_i]];
    ck_assert_int_eq(c->n, 3);
    for (int q = 1; q <= 2; q++) {
        for (int a = 0; a < 2; a++) {
            tu_set_conv_chunk_bytes(q * per_image_bytes(c, a == 0 ? 4 : 2));
            const char *tag = q == 1 ? ", chunks of 1 image" : ", chunks of 2 images";
            check_plain(c, k_algos[a], P_ALL, tag);
            check_fused(c, k_algos[a], 1u << 7 | 1u << 2, V_ALL, tag);   /* all three; residual only */
            tu_set_conv_chunk_bytes(0);
        }
    }
    tu_reset_options();
}
END_TEST

/* Small shapes for Oclgrind, every kernel of the family in four calls (test_wino_tiny):
 * - 7x15, pad 1, batch 2, views: F(2x2) forward fused with bias, residual and ReLU on prepared
 *   weights (the F(4x4) and F(2x2) weight transforms, the F(2x2) input and output transforms).
 * - 31x15, pad 1, batch 2, views: the same with F(4x4).
 * - 29x15, pad 0, batch 2: backward-data (flipped weights, pad 2, 64 tiles), then the weight
 *   gradient (56 tiles: columns 56..63 zero-padded), each on NaN-filled scratch.
 * The forward passes fill the GEMMs' columns exactly (64 tiles): the CPU variant leaves the
 * forward planes' padded columns unset (the GEMMs then compute garbage there, which the output
 * transform ignores, but which Oclgrind's uninitialised-value check reports). Outputs narrower
 * than 16 keep the CPU variant's four-tiles-at-a-time output path off (Oclgrind 21.10's
 * uninitialised-value check crashes on it). The scratch is allocated first, at a size no call
 * exceeds (it never grows: see g_defer). The GEMMs take most of the time (the weight
 * gradient's, 64-long reductions, about half). */
static const wino_case k_tiny[] = {
    {"tiny n2 c5 7x15 k6 pad1", 2, 5, 7, 15, 6, 1, 1},
    {"tiny n2 c5 31x15 k6 pad1", 2, 5, 31, 15, 6, 1, 1},
    {"tiny n2 c5 29x15 k6 pad0", 2, 5, 29, 15, 6, 0, 0},
};

START_TEST(test_wino_tiny) {
    poison_scratch((size_t)1 << 20);
    g_defer = 1;
    check_fused(&k_tiny[0], STFPM_CONV_ALGO_WINOGRAD2, 1u << 7, V_PREP, "");
    check_fused(&k_tiny[1], STFPM_CONV_ALGO_WINOGRAD, 1u << 7, V_PREP, "");
    check_plain(&k_tiny[2], STFPM_CONV_ALGO_WINOGRAD, P_DX | P_DW, "");
    release_deferred();
    tu_reset_options();
}
END_TEST

int main(void) {
    /* one process: a fork per test would rebuild the programs and CLBlast's kernels each time */
    setenv("CK_FORK", "no", 0);
    Suite *s = suite_create("winograd");
    TCase *tc = tcase_create("winograd");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_wino_plain, 0, N_CASES);
    tcase_add_loop_test(tc, test_wino_fused, 0, N_CASES);
    tcase_add_loop_test(tc, test_wino_chunked, 0, 4);
    suite_add_tcase(s, tc);
    TCase *tiny = tcase_create("tiny");
    tcase_set_timeout(tiny, 600);
    tcase_add_test(tiny, test_wino_tiny);
    suite_add_tcase(s, tiny);
    return tu_run_suite(s);
}
