/* Batch norm on the device vs the CPU reference (tests/ref_ops.c) and vs central finite
 * differences in double precision; running statistics; views; in-place; argument errors.
 * Shapes include planes split across work-items (CPU variant: planes of more than 8192 values)
 * and channels split across work-groups (GPU variant: chunks of about L x 8 of a channel's
 * N*H*W values, L the work-group size), chunks that cross from one sample's plane into the
 * next, a prime N*H*W, C not a multiple of 16, batch 1 and 3, a large mean. The test case
 * "tiny" runs every pass on views at small odd shapes (the Oclgrind run, scripts/oclgrind.sh).
 *
 * Tolerances (|got - want| <= atol + rtol * |want|):
 *   y (train / eval)           atol 1e-4, rtol 1e-4   (|xhat| <= ~4, float32 statistics)
 *   save_mean                  atol 1e-5, rtol 1e-6
 *   save_invstd, running_var   atol 1e-5, rtol 2e-5
 *   running_mean               atol 1e-5, rtol 1e-6
 *   dx vs reference            atol 2e-4, rtol 1e-3   (dx is a difference of O(1) terms)
 *   dweight, dbias vs ref      atol 1e-3, rtol 1e-4   (sums of up to 65537 O(1) terms)
 *   reference vs finite diff   atol 1e-7, rtol 1e-6   (double, h = 1e-5)
 *   device vs finite diff      atol 2e-4, rtol 1e-3 */
#include "testutil.h"
#include "ref_ops.h"
#include "runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { int n, c, h, w; float lo, hi; } bn_case;

static const bn_case CASES[] = {
    {1, 5, 7, 9, -1.0f, 3.0f},
    {3, 17, 13, 11, -2.0f, 2.0f},
    {2, 3, 3, 5, 0.0f, 1.0f},
    {4, 8, 33, 35, -1.0f, 3.0f},    /* 4620 values per channel: several chunks per channel */
    {2, 3, 64, 64, 99.0f, 101.0f},  /* mean 100, std 0.58: a naive sum-of-squares would fail */
    {6, 4, 1, 1, -1.0f, 1.0f},      /* H*W = 1 */
    {1, 3, 97, 131, -1.0f, 3.0f},   /* H*W = 12707: planes split into 4096-value segments + tail */
    {2, 2, 91, 100, 99.0f, 101.0f}, /* split planes (3 segments) with a large mean */
    {1, 7, 1, 10007, -1.0f, 3.0f},  /* N*H*W = 10007 (prime): several work-groups per channel */
    {3, 19, 37, 41, -1.0f, 2.0f},   /* batch 3, C = 19: chunks cross from one plane into the next */
    {1, 3, 1, 65537, 99.0f, 101.0f}, /* N*H*W = 65537 (prime), 32 or more partials, mean 100 */
};
#define N_CASES (int)(sizeof CASES / sizeof CASES[0])

static const float EPS = 1e-5f, MOMENTUM = 0.1f;

typedef struct {
    int n, c, h, w;
    size_t cnt;
    float *x, *wt, *b, *rm, *rv;  /* host copies */
} bn_data;

static bn_data make_data(const bn_case *k, uint64_t seed) {
    bn_data d = {k->n, k->c, k->h, k->w, (size_t)k->n * k->c * k->h * k->w, NULL, NULL, NULL, NULL, NULL};
    d.x = malloc(d.cnt * sizeof(float));
    d.wt = malloc(k->c * sizeof(float));
    d.b = malloc(k->c * sizeof(float));
    d.rm = malloc(k->c * sizeof(float));
    d.rv = malloc(k->c * sizeof(float));
    tu_fill_uniform(d.x, d.cnt, seed, k->lo, k->hi);
    tu_fill_uniform(d.wt, k->c, seed + 1, 0.5f, 1.5f);
    tu_fill_uniform(d.b, k->c, seed + 2, -0.5f, 0.5f);
    tu_fill_uniform(d.rm, k->c, seed + 3, -0.2f, 0.2f);
    tu_fill_uniform(d.rv, k->c, seed + 4, 0.5f, 2.0f);
    return d;
}

static void free_data(bn_data *d) {
    free(d->x); free(d->wt); free(d->b); free(d->rm); free(d->rv);
}

/* Two training steps (different batches): y, saved statistics and running statistics. */
START_TEST(test_forward_train) {
    stfpm_ctx *ctx = tu_ctx();
    for (int ci = 0; ci < N_CASES; ci++) {
        const bn_case *k = &CASES[ci];
        bn_data d = make_data(k, 100 + ci);
        stfpm_tensor x = tu_tensor(d.x, d.n, d.c, d.h, d.w), y = tu_tensor(NULL, d.n, d.c, d.h, d.w);
        stfpm_tensor w = tu_tensor(d.wt, 1, d.c, 1, 1), b = tu_tensor(d.b, 1, d.c, 1, 1);
        stfpm_tensor rm = tu_tensor(d.rm, 1, d.c, 1, 1), rv = tu_tensor(d.rv, 1, d.c, 1, 1);
        stfpm_tensor sm = tu_tensor(NULL, 1, d.c, 1, 1), si = tu_tensor(NULL, 1, d.c, 1, 1);
        float *ry = malloc(d.cnt * sizeof(float)), *rsm = malloc(d.c * sizeof(float)),
              *rsi = malloc(d.c * sizeof(float));
        for (int step = 0; step < 2; step++) {
            if (step == 1) {
                tu_fill_uniform(d.x, d.cnt, 900 + ci, k->lo * 0.5f, k->hi * 1.5f);
                TU_CHECK_STATUS(stfpm_tensor_write(ctx, &x, d.x));
            }
            TU_CHECK_STATUS(stfpm_batchnorm_forward_train(ctx, &x, &w, &b, &rm, &rv, MOMENTUM, EPS, &y,
                                                          &sm, &si));
            if (step == 0) {
                /* independent of the reference: channel 0 by hand, unbiased variance */
                size_t hw = (size_t)d.h * d.w, m = (size_t)d.n * hw;
                double s = 0, q = 0;
                for (int bi = 0; bi < d.n; bi++)
                    for (size_t i = 0; i < hw; i++) s += d.x[(size_t)bi * d.c * hw + i];
                double mean = s / m;
                for (int bi = 0; bi < d.n; bi++)
                    for (size_t i = 0; i < hw; i++) {
                        double v = d.x[(size_t)bi * d.c * hw + i] - mean;
                        q += v * v;
                    }
                double want_v = 0.9 * d.rv[0] + 0.1 * q / (double)(m - 1);
                double want_m = 0.9 * d.rm[0] + 0.1 * mean;
                float *gv = tu_read(&rv), *gm = tu_read(&rm);
                ck_assert_msg(fabs(gv[0] - want_v) <= 1e-5 + 2e-5 * fabs(want_v),
                              "case %d running_var[0] %.8g want %.8g (biased would give %.8g)", ci, gv[0],
                              want_v, 0.9 * d.rv[0] + 0.1 * q / (double)m);
                ck_assert_msg(fabs(gm[0] - want_m) <= 1e-5 + 1e-6 * fabs(want_m),
                              "case %d running_mean[0] %.8g want %.8g", ci, gm[0], want_m);
                free(gv); free(gm);
            }
            ref_batchnorm_forward_train(d.x, d.n, d.c, d.h, d.w, d.wt, d.b, d.rm, d.rv, MOMENTUM, EPS,
                                        ry, rsm, rsi);
            char what[96];
            snprintf(what, sizeof what, "case %d step %d y", ci, step);
            tu_assert_tensor_close(what, &y, ry, 1e-4, 1e-4);
            snprintf(what, sizeof what, "case %d step %d save_mean", ci, step);
            tu_assert_tensor_close(what, &sm, rsm, 1e-5, 1e-6);
            snprintf(what, sizeof what, "case %d step %d save_invstd", ci, step);
            tu_assert_tensor_close(what, &si, rsi, 1e-5, 2e-5);
            snprintf(what, sizeof what, "case %d step %d running_mean", ci, step);
            tu_assert_tensor_close(what, &rm, d.rm, 1e-5, 1e-6);
            snprintf(what, sizeof what, "case %d step %d running_var", ci, step);
            tu_assert_tensor_close(what, &rv, d.rv, 1e-5, 2e-5);
        }
        stfpm_tensor *all[] = {&x, &y, &w, &b, &rm, &rv, &sm, &si};
        for (int i = 0; i < 8; i++) stfpm_tensor_free(ctx, all[i]);
        free(ry); free(rsm); free(rsi);
        free_data(&d);
    }
}
END_TEST

/* No running statistics, y aliasing x. */
START_TEST(test_forward_train_inplace_no_running) {
    stfpm_ctx *ctx = tu_ctx();
    for (int ci = 0; ci < N_CASES; ci += 2) {
        bn_data d = make_data(&CASES[ci], 200 + ci);
        stfpm_tensor x = tu_tensor(d.x, d.n, d.c, d.h, d.w);
        stfpm_tensor w = tu_tensor(d.wt, 1, d.c, 1, 1), b = tu_tensor(d.b, 1, d.c, 1, 1);
        stfpm_tensor sm = tu_tensor(NULL, 1, d.c, 1, 1), si = tu_tensor(NULL, 1, d.c, 1, 1);
        TU_CHECK_STATUS(stfpm_batchnorm_forward_train(ctx, &x, &w, &b, NULL, NULL, MOMENTUM, EPS, &x,
                                                      &sm, &si));
        float *ry = malloc(d.cnt * sizeof(float)), *rsm = malloc(d.c * sizeof(float));
        ref_batchnorm_forward_train(d.x, d.n, d.c, d.h, d.w, d.wt, d.b, NULL, NULL, MOMENTUM, EPS, ry,
                                    rsm, NULL);
        tu_assert_tensor_close("in-place y", &x, ry, 1e-4, 1e-4);
        tu_assert_tensor_close("save_mean", &sm, rsm, 1e-5, 1e-6);
        stfpm_tensor *all[] = {&x, &w, &b, &sm, &si};
        for (int i = 0; i < 5; i++) stfpm_tensor_free(ctx, all[i]);
        free(ry); free(rsm);
        free_data(&d);
    }
}
END_TEST

START_TEST(test_forward_eval) {
    stfpm_ctx *ctx = tu_ctx();
    for (int ci = 0; ci < N_CASES; ci++) {
        bn_data d = make_data(&CASES[ci], 300 + ci);
        stfpm_tensor x = tu_tensor(d.x, d.n, d.c, d.h, d.w), y = tu_tensor(NULL, d.n, d.c, d.h, d.w);
        stfpm_tensor w = tu_tensor(d.wt, 1, d.c, 1, 1), b = tu_tensor(d.b, 1, d.c, 1, 1);
        stfpm_tensor rm = tu_tensor(d.rm, 1, d.c, 1, 1), rv = tu_tensor(d.rv, 1, d.c, 1, 1);
        float *ry = malloc(d.cnt * sizeof(float));
        ref_batchnorm_forward_eval(d.x, d.n, d.c, d.h, d.w, d.wt, d.b, d.rm, d.rv, EPS, ry);
        TU_CHECK_STATUS(stfpm_batchnorm_forward_eval(ctx, &x, &w, &b, &rm, &rv, EPS, &y));
        tu_assert_tensor_close("eval y", &y, ry, 1e-4, 1e-4);
        TU_CHECK_STATUS(stfpm_batchnorm_forward_eval(ctx, &x, &w, &b, &rm, &rv, EPS, &x));
        tu_assert_tensor_close("eval in-place y", &x, ry, 1e-4, 1e-4);
        /* running statistics untouched */
        tu_assert_tensor_close("eval running_mean", &rm, d.rm, 1e-30, 0);
        stfpm_tensor *all[] = {&x, &y, &w, &b, &rm, &rv};
        for (int i = 0; i < 6; i++) stfpm_tensor_free(ctx, all[i]);
        free(ry);
        free_data(&d);
    }
}
END_TEST

/* Views (off != 0) for x, y, dy, dx in train forward, eval forward and backward. */
START_TEST(test_views) {
    stfpm_ctx *ctx = tu_ctx();
    bn_case k = {3, 5, 6, 7, -1.0f, 2.0f};
    bn_data d = make_data(&k, 400);   /* samples 1..2 of this are the batch */
    stfpm_tensor big = tu_tensor(d.x, 3, 5, 6, 7), ybig = tu_tensor(NULL, 3, 5, 6, 7);
    stfpm_tensor dybig = tu_tensor_rand(401, 3, 5, 6, 7, -1, 1), dxbig = tu_tensor(NULL, 3, 5, 6, 7);
    stfpm_tensor x = stfpm_tensor_view(&big, 1, 2), y = stfpm_tensor_view(&ybig, 1, 2);
    stfpm_tensor dy = stfpm_tensor_view(&dybig, 1, 2), dx = stfpm_tensor_view(&dxbig, 1, 2);
    ck_assert(x.off != 0);
    /* per-channel parameters as views too: channels of a (2, C, 1, 1) tensor, second half */
    float par[10];
    memcpy(par, d.rm, 5 * sizeof(float));
    memcpy(par + 5, d.wt, 5 * sizeof(float));
    stfpm_tensor pbig = tu_tensor(par, 2, 5, 1, 1), w = stfpm_tensor_view(&pbig, 1, 1);
    stfpm_tensor b = tu_tensor(d.b, 1, 5, 1, 1);
    stfpm_tensor smbig = tu_tensor(NULL, 2, 5, 1, 1), sm = stfpm_tensor_view(&smbig, 1, 1);
    stfpm_tensor si = tu_tensor(NULL, 1, 5, 1, 1);
    size_t cnt = (size_t)2 * 5 * 42;
    const float *hx = d.x + 5 * 42;
    float *ry = malloc(cnt * sizeof(float)), *rsm = malloc(5 * sizeof(float)), *rsi = malloc(5 * sizeof(float));
    float *rdx = malloc(cnt * sizeof(float)), rdw[5], rdb[5];
    TU_CHECK_STATUS(stfpm_batchnorm_forward_train(ctx, &x, &w, &b, NULL, NULL, MOMENTUM, EPS, &y, &sm, &si));
    ref_batchnorm_forward_train(hx, 2, 5, 6, 7, d.wt, d.b, NULL, NULL, MOMENTUM, EPS, ry, rsm, rsi);
    tu_assert_tensor_close("view train y", &y, ry, 1e-4, 1e-4);
    tu_assert_tensor_close("view save_mean", &sm, rsm, 1e-5, 1e-6);
    float *hdy = tu_read(&dy);
    stfpm_tensor dw = tu_tensor(NULL, 1, 5, 1, 1), db = tu_tensor(NULL, 1, 5, 1, 1);
    TU_CHECK_STATUS(stfpm_batchnorm_backward(ctx, &x, &dy, &w, &sm, &si, &dx, &dw, &db));
    ref_batchnorm_backward(hx, hdy, 2, 5, 6, 7, d.wt, rsm, rsi, rdx, rdw, rdb);
    tu_assert_tensor_close("view dx", &dx, rdx, 2e-4, 1e-3);
    tu_assert_tensor_close("view dweight", &dw, rdw, 1e-3, 1e-4);
    tu_assert_tensor_close("view dbias", &db, rdb, 1e-3, 1e-4);
    /* sample 0 of dx and y untouched */
    stfpm_tensor dx0 = stfpm_tensor_view(&dxbig, 0, 1), y0 = stfpm_tensor_view(&ybig, 0, 1);
    float zero[210] = {0};
    tu_assert_tensor_close("dx sample 0 untouched", &dx0, zero, 1e-30, 0);
    tu_assert_tensor_close("y sample 0 untouched", &y0, zero, 1e-30, 0);
    /* eval with views */
    stfpm_tensor rm = stfpm_tensor_view(&pbig, 0, 1), rv = tu_tensor(d.rv, 1, 5, 1, 1);
    TU_CHECK_STATUS(stfpm_batchnorm_forward_eval(ctx, &x, &w, &b, &rm, &rv, EPS, &y));
    ref_batchnorm_forward_eval(hx, 2, 5, 6, 7, d.wt, d.b, d.rm, d.rv, EPS, ry);
    tu_assert_tensor_close("view eval y", &y, ry, 1e-4, 1e-4);
    stfpm_tensor *all[] = {&big, &ybig, &dybig, &dxbig, &pbig, &b, &smbig, &si, &dw, &db, &rv};
    for (int i = 0; i < 11; i++) stfpm_tensor_free(ctx, all[i]);
    free(ry); free(rsm); free(rsi); free(rdx); free(hdy);
    free_data(&d);
}
END_TEST

START_TEST(test_backward_vs_reference) {
    stfpm_ctx *ctx = tu_ctx();
    for (int ci = 0; ci < N_CASES; ci++) {
        bn_data d = make_data(&CASES[ci], 500 + ci);
        float *hdy = malloc(d.cnt * sizeof(float));
        tu_fill_uniform(hdy, d.cnt, 550 + ci, -1.0f, 1.0f);
        stfpm_tensor x = tu_tensor(d.x, d.n, d.c, d.h, d.w), y = tu_tensor(NULL, d.n, d.c, d.h, d.w);
        stfpm_tensor dy = tu_tensor(hdy, d.n, d.c, d.h, d.w), dx = tu_tensor(NULL, d.n, d.c, d.h, d.w);
        stfpm_tensor w = tu_tensor(d.wt, 1, d.c, 1, 1), b = tu_tensor(d.b, 1, d.c, 1, 1);
        stfpm_tensor sm = tu_tensor(NULL, 1, d.c, 1, 1), si = tu_tensor(NULL, 1, d.c, 1, 1);
        stfpm_tensor dw = tu_tensor(NULL, 1, d.c, 1, 1), db = tu_tensor(NULL, 1, d.c, 1, 1);
        TU_CHECK_STATUS(stfpm_batchnorm_forward_train(ctx, &x, &w, &b, NULL, NULL, MOMENTUM, EPS, &y, &sm, &si));
        float *rsm = tu_read(&sm), *rsi = tu_read(&si);
        float *rdx = malloc(d.cnt * sizeof(float)), *rdw = malloc(d.c * sizeof(float)),
              *rdb = malloc(d.c * sizeof(float));
        ref_batchnorm_backward(d.x, hdy, d.n, d.c, d.h, d.w, d.wt, rsm, rsi, rdx, rdw, rdb);
        TU_CHECK_STATUS(stfpm_batchnorm_backward(ctx, &x, &dy, &w, &sm, &si, &dx, &dw, &db));
        char what[64];
        snprintf(what, sizeof what, "case %d dx", ci);
        tu_assert_tensor_close(what, &dx, rdx, 2e-4, 1e-3);
        snprintf(what, sizeof what, "case %d dweight", ci);
        tu_assert_tensor_close(what, &dw, rdw, 1e-3, 1e-4);
        snprintf(what, sizeof what, "case %d dbias", ci);
        tu_assert_tensor_close(what, &db, rdb, 1e-3, 1e-4);
        /* dweight / dbias optional; dx deterministic across calls */
        float *first = tu_read(&dx);
        TU_CHECK_STATUS(stfpm_tensor_fill(ctx, &dx, 7.0f));
        TU_CHECK_STATUS(stfpm_batchnorm_backward(ctx, &x, &dy, &w, &sm, &si, &dx, NULL, NULL));
        float *second = tu_read(&dx);
        ck_assert_msg(memcmp(first, second, d.cnt * sizeof(float)) == 0,
                      "case %d: dx differs between two identical calls", ci);
        stfpm_tensor *all[] = {&x, &y, &dy, &dx, &w, &b, &sm, &si, &dw, &db};
        for (int i = 0; i < 10; i++) stfpm_tensor_free(ctx, all[i]);
        free(hdy); free(rsm); free(rsi); free(rdx); free(rdw); free(rdb); free(first); free(second);
        free_data(&d);
    }
}
END_TEST

/* L = sum(R * y(x, w, b)) with the double reference forward; central differences. */
static double fd_loss(const double *x, int n, int c, int h, int w, const double *wt, const double *b,
                      const double *R) {
    size_t cnt = (size_t)n * c * h * w;
    double *y = malloc(cnt * sizeof *y), L = 0;
    ref_batchnorm_forward_train_d(x, n, c, h, w, wt, b, NULL, NULL, 0.1, 1e-5, y, NULL, NULL);
    for (size_t i = 0; i < cnt; i++) L += R[i] * y[i];
    free(y);
    return L;
}

static void fd_grad(double *p, size_t np, double *g, const double *x, int n, int c, int h, int w,
                    const double *wt, const double *b, const double *R) {
    const double hstep = 1e-5;
    for (size_t i = 0; i < np; i++) {
        double keep = p[i];
        p[i] = keep + hstep;
        double lp = fd_loss(x, n, c, h, w, wt, b, R);
        p[i] = keep - hstep;
        double lm = fd_loss(x, n, c, h, w, wt, b, R);
        p[i] = keep;
        g[i] = (lp - lm) / (2 * hstep);
    }
}

static void assert_close_d(const char *what, const double *got, const double *want, size_t n,
                           double atol, double rtol) {
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs(got[i] - want[i]) <= atol + rtol * fabs(want[i]),
                      "%s: element %zu got %.10g want %.10g", what, i, got[i], want[i]);
}

START_TEST(test_backward_finite_differences) {
    stfpm_ctx *ctx = tu_ctx();
    static const int shapes[][4] = {{2, 3, 3, 5}, {1, 2, 4, 3}, {3, 1, 2, 2}};
    for (int si_ = 0; si_ < 3; si_++) {
        int n = shapes[si_][0], c = shapes[si_][1], h = shapes[si_][2], w = shapes[si_][3];
        size_t cnt = (size_t)n * c * h * w;
        float *fx = malloc(cnt * sizeof(float)), *fR = malloc(cnt * sizeof(float));
        float fw[8], fb[8];
        tu_fill_uniform(fx, cnt, 600 + si_, -1.0f, 2.0f);
        tu_fill_uniform(fR, cnt, 610 + si_, -1.0f, 1.0f);
        tu_fill_uniform(fw, c, 620 + si_, 0.5f, 1.5f);
        tu_fill_uniform(fb, c, 630 + si_, -0.5f, 0.5f);
        double *x = malloc(cnt * sizeof(double)), *R = malloc(cnt * sizeof(double));
        double wt[8], b[8], sm[8], sinv[8], rdw[8], rdb[8], fdw[8], fdb[8];
        for (size_t i = 0; i < cnt; i++) { x[i] = fx[i]; R[i] = fR[i]; }
        for (int i = 0; i < c; i++) { wt[i] = fw[i]; b[i] = fb[i]; }
        double *y = malloc(cnt * sizeof(double)), *rdx = malloc(cnt * sizeof(double)),
               *fdx = malloc(cnt * sizeof(double));
        ref_batchnorm_forward_train_d(x, n, c, h, w, wt, b, NULL, NULL, 0.1, 1e-5, y, sm, sinv);
        ref_batchnorm_backward_d(x, R, n, c, h, w, wt, sm, sinv, rdx, rdw, rdb);
        fd_grad(x, cnt, fdx, x, n, c, h, w, wt, b, R);
        fd_grad(wt, c, fdw, x, n, c, h, w, wt, b, R);
        fd_grad(b, c, fdb, x, n, c, h, w, wt, b, R);
        assert_close_d("reference dx vs finite differences", rdx, fdx, cnt, 1e-7, 1e-6);
        assert_close_d("reference dweight vs finite differences", rdw, fdw, c, 1e-7, 1e-6);
        assert_close_d("reference dbias vs finite differences", rdb, fdb, c, 1e-7, 1e-6);

        /* the device backward (float32) against the same finite differences */
        stfpm_tensor tx = tu_tensor(fx, n, c, h, w), ty = tu_tensor(NULL, n, c, h, w);
        stfpm_tensor tdy = tu_tensor(fR, n, c, h, w), tdx = tu_tensor(NULL, n, c, h, w);
        stfpm_tensor tw = tu_tensor(fw, 1, c, 1, 1), tb = tu_tensor(fb, 1, c, 1, 1);
        stfpm_tensor tsm = tu_tensor(NULL, 1, c, 1, 1), tsi = tu_tensor(NULL, 1, c, 1, 1);
        stfpm_tensor tdw = tu_tensor(NULL, 1, c, 1, 1), tdb = tu_tensor(NULL, 1, c, 1, 1);
        TU_CHECK_STATUS(stfpm_batchnorm_forward_train(ctx, &tx, &tw, &tb, NULL, NULL, 0.1f, 1e-5f, &ty, &tsm, &tsi));
        TU_CHECK_STATUS(stfpm_batchnorm_backward(ctx, &tx, &tdy, &tw, &tsm, &tsi, &tdx, &tdw, &tdb));
        float *gdx = tu_read(&tdx), *gdw = tu_read(&tdw), *gdb = tu_read(&tdb);
        float *wdx = malloc(cnt * sizeof(float)), wdw[8], wdb[8];
        for (size_t i = 0; i < cnt; i++) wdx[i] = (float)fdx[i];
        for (int i = 0; i < c; i++) { wdw[i] = (float)fdw[i]; wdb[i] = (float)fdb[i]; }
        tu_assert_close("device dx vs finite differences", gdx, wdx, cnt, 2e-4, 1e-3);
        tu_assert_close("device dweight vs finite differences", gdw, wdw, c, 2e-4, 1e-3);
        tu_assert_close("device dbias vs finite differences", gdb, wdb, c, 2e-4, 1e-3);
        stfpm_tensor *all[] = {&tx, &ty, &tdy, &tdx, &tw, &tb, &tsm, &tsi, &tdw, &tdb};
        for (int i = 0; i < 10; i++) stfpm_tensor_free(ctx, all[i]);
        free(fx); free(fR); free(x); free(R); free(y); free(rdx); free(fdx);
        free(gdx); free(gdw); free(gdb); free(wdx);
    }
}
END_TEST

START_TEST(test_argument_errors) {
    stfpm_ctx *ctx = tu_ctx();
    stfpm_tensor x = tu_tensor_rand(700, 2, 3, 4, 5, -1, 1), y = tu_tensor(NULL, 2, 3, 4, 5);
    stfpm_tensor ybad = tu_tensor(NULL, 2, 3, 5, 4), p3 = tu_tensor(NULL, 1, 3, 1, 1);
    stfpm_tensor p4 = tu_tensor(NULL, 1, 4, 1, 1), pbad = tu_tensor(NULL, 3, 1, 1, 1);
    stfpm_tensor one = tu_tensor(NULL, 1, 3, 1, 1);
    TU_CHECK_STATUS(stfpm_tensor_fill(ctx, &p3, 1.0f));
    ck_assert_int_eq(stfpm_batchnorm_forward_train(ctx, &x, &p3, &p3, NULL, NULL, 0.1f, 1e-5f, &ybad, &p3, &p3),
                     STFPM_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(stfpm_last_error(), "y has shape"));
    ck_assert_int_eq(stfpm_batchnorm_forward_train(ctx, &x, &p4, &p3, NULL, NULL, 0.1f, 1e-5f, &y, &p3, &p3),
                     STFPM_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(stfpm_last_error(), "weight"));
    ck_assert_int_eq(stfpm_batchnorm_forward_train(ctx, &x, &pbad, &p3, NULL, NULL, 0.1f, 1e-5f, &y, &p3, &p3),
                     STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_batchnorm_forward_train(ctx, &x, &p3, &p3, &p3, NULL, 0.1f, 1e-5f, &y, &p3, &p3),
                     STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_batchnorm_forward_train(ctx, &x, &p3, &p3, NULL, NULL, 0.1f, 1e-5f, &y, &p4, &p3),
                     STFPM_ERR_ARG);
    /* one value per channel cannot be normalised in train mode (PyTorch raises too) */
    ck_assert_int_eq(stfpm_batchnorm_forward_train(ctx, &one, &p3, &p3, NULL, NULL, 0.1f, 1e-5f, &one, &p3, &p3),
                     STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_batchnorm_forward_eval(ctx, &x, &p3, &p3, &p3, &p4, 1e-5f, &y), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_batchnorm_forward_eval(ctx, &x, &p3, &p3, &p3, &p3, 1e-5f, &ybad), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_batchnorm_backward(ctx, &x, &ybad, &p3, &p3, &p3, &y, NULL, NULL), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_batchnorm_backward(ctx, &x, &y, &p3, &p3, &p3, &ybad, NULL, NULL), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_batchnorm_backward(ctx, &x, &y, &p3, &p3, &p3, &y, &p4, NULL), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_batchnorm_backward(ctx, &x, &y, &p3, &p3, &p3, &y, NULL, &pbad), STFPM_ERR_ARG);
    /* a valid call still works afterwards (weight 1, bias 1, mean 1, var 1: y = (x-1)/sqrt(1+eps)+1);
     * reading y also waits for the queue: a forked Check child must not exit while pocl is still
     * compiling a kernel variant (that aborts inside LLVM) */
    TU_CHECK_STATUS(stfpm_batchnorm_forward_eval(ctx, &x, &p3, &p3, &p3, &p3, 1e-5f, &y));
    float *hx = tu_read(&x), *hy = tu_read(&y);
    for (int i = 0; i < 120; i++) hx[i] = (float)((hx[i] - 1.0) / sqrt(1.0 + 1e-5) + 1.0);
    tu_assert_close("eval after errors", hy, hx, 120, 1e-6, 1e-6);
    free(hx); free(hy);
    stfpm_tensor *all[] = {&x, &y, &ybad, &p3, &p4, &pbad, &one};
    for (int i = 0; i < 7; i++) stfpm_tensor_free(ctx, all[i]);
}
END_TEST

/* Every pass on views (samples 1..n of (n + 1)-sample tensors, off != 0) at small odd shapes:
 * train forward with running statistics, backward with and without dweight / dbias (dx
 * aliasing dy), eval forward, train forward in place without running statistics. Sample 0 of
 * the outputs stays untouched. Shapes: 651 values per channel (two chunks under a 64-wide
 * work-group, crossing from sample 0's plane into sample 1's), H*W = 1, the prime 1031, and
 * 8209 values (a plane split into 3 segments by the CPU variant). */
START_TEST(test_tiny) {
    stfpm_ctx *ctx = tu_ctx();
    /* the partial-sums scratch slot allocated once, large enough for every shape: Oclgrind's
     * uninitialised-value check misreports a scratch buffer that grows (released and
     * recreated) between two ops as never written */
    cl_mem scratch;
    TU_CHECK_STATUS(stfpm_scratch(ctx, STFPM_SCRATCH_PARTIALS, 64 * 1024, &scratch));
    static const bn_case T[] = {{3, 3, 7, 31, -1.0f, 3.0f}, {2, 3, 1, 1, -1.0f, 1.0f},
                                {1, 2, 1, 1031, 9.0f, 11.0f}, {1, 1, 1, 8209, -1.0f, 3.0f}};
    for (int ci = 0; ci < (int)(sizeof T / sizeof T[0]); ci++) {
        const bn_case *k = &T[ci];
        const int n1 = k->n + 1;
        bn_data d = make_data(k, 1000 + ci);
        const size_t per = (size_t)k->c * k->h * k->w, all_n = d.cnt + per;
        float *hx = malloc(all_n * sizeof(float)), *hdy = malloc(all_n * sizeof(float));
        tu_fill_uniform(hx, per, 1010 + ci, k->lo, k->hi);
        memcpy(hx + per, d.x, d.cnt * sizeof(float));
        tu_fill_uniform(hdy, all_n, 1020 + ci, -1.0f, 1.0f);
        stfpm_tensor xb = tu_tensor(hx, n1, k->c, k->h, k->w), yb = tu_tensor(NULL, n1, k->c, k->h, k->w);
        stfpm_tensor dyb = tu_tensor(hdy, n1, k->c, k->h, k->w), dxb = tu_tensor(NULL, n1, k->c, k->h, k->w);
        stfpm_tensor x = stfpm_tensor_view(&xb, 1, k->n), y = stfpm_tensor_view(&yb, 1, k->n);
        stfpm_tensor dy = stfpm_tensor_view(&dyb, 1, k->n), dx = stfpm_tensor_view(&dxb, 1, k->n);
        ck_assert(x.off != 0);
        stfpm_tensor w = tu_tensor(d.wt, 1, k->c, 1, 1), b = tu_tensor(d.b, 1, k->c, 1, 1);
        stfpm_tensor rm = tu_tensor(d.rm, 1, k->c, 1, 1), rv = tu_tensor(d.rv, 1, k->c, 1, 1);
        stfpm_tensor sm = tu_tensor(NULL, 1, k->c, 1, 1), si = tu_tensor(NULL, 1, k->c, 1, 1);
        stfpm_tensor dw = tu_tensor(NULL, 1, k->c, 1, 1), db = tu_tensor(NULL, 1, k->c, 1, 1);
        float *ry = calloc(all_n, sizeof(float)), *rdx = calloc(all_n, sizeof(float));
        float *rsm = malloc(k->c * sizeof(float)), *rsi = malloc(k->c * sizeof(float));
        float *rdw = malloc(k->c * sizeof(float)), *rdb = malloc(k->c * sizeof(float));
        char what[64];

        TU_CHECK_STATUS(stfpm_batchnorm_forward_train(ctx, &x, &w, &b, &rm, &rv, MOMENTUM, EPS, &y, &sm, &si));
        ref_batchnorm_forward_train(d.x, d.n, d.c, d.h, d.w, d.wt, d.b, d.rm, d.rv, MOMENTUM, EPS, ry + per,
                                    rsm, rsi);
        snprintf(what, sizeof what, "tiny %d train y", ci);
        tu_assert_tensor_close(what, &yb, ry, 1e-4, 1e-4);
        snprintf(what, sizeof what, "tiny %d save_mean", ci);
        tu_assert_tensor_close(what, &sm, rsm, 1e-5, 1e-6);
        snprintf(what, sizeof what, "tiny %d save_invstd", ci);
        tu_assert_tensor_close(what, &si, rsi, 1e-5, 2e-5);
        snprintf(what, sizeof what, "tiny %d running_mean", ci);
        tu_assert_tensor_close(what, &rm, d.rm, 1e-5, 1e-6);
        snprintf(what, sizeof what, "tiny %d running_var", ci);
        tu_assert_tensor_close(what, &rv, d.rv, 1e-5, 2e-5);

        float *gsm = tu_read(&sm), *gsi = tu_read(&si);
        ref_batchnorm_backward(d.x, hdy + per, d.n, d.c, d.h, d.w, d.wt, gsm, gsi, rdx + per, rdw, rdb);
        TU_CHECK_STATUS(stfpm_batchnorm_backward(ctx, &x, &dy, &w, &sm, &si, &dx, &dw, &db));
        snprintf(what, sizeof what, "tiny %d dx", ci);
        tu_assert_tensor_close(what, &dxb, rdx, 2e-4, 1e-3);
        snprintf(what, sizeof what, "tiny %d dweight", ci);
        tu_assert_tensor_close(what, &dw, rdw, 1e-3, 1e-4);
        snprintf(what, sizeof what, "tiny %d dbias", ci);
        tu_assert_tensor_close(what, &db, rdb, 1e-3, 1e-4);
        /* without dweight / dbias, dx aliasing dy: sample 0 of dy keeps its values */
        TU_CHECK_STATUS(stfpm_batchnorm_backward(ctx, &x, &dy, &w, &sm, &si, &dy, NULL, NULL));
        memcpy(rdx, hdy, per * sizeof(float));
        snprintf(what, sizeof what, "tiny %d dx in place", ci);
        tu_assert_tensor_close(what, &dyb, rdx, 2e-4, 1e-3);

        ref_batchnorm_forward_eval(d.x, d.n, d.c, d.h, d.w, d.wt, d.b, d.rm, d.rv, EPS, ry + per);
        TU_CHECK_STATUS(stfpm_batchnorm_forward_eval(ctx, &x, &w, &b, &rm, &rv, EPS, &y));
        snprintf(what, sizeof what, "tiny %d eval y", ci);
        tu_assert_tensor_close(what, &yb, ry, 1e-4, 1e-4);

        /* train in place without running statistics: sample 0 of x keeps its values */
        ref_batchnorm_forward_train(d.x, d.n, d.c, d.h, d.w, d.wt, d.b, NULL, NULL, MOMENTUM, EPS, ry + per,
                                    rsm, NULL);
        memcpy(ry, hx, per * sizeof(float));
        TU_CHECK_STATUS(stfpm_batchnorm_forward_train(ctx, &x, &w, &b, NULL, NULL, MOMENTUM, EPS, &x, &sm, &si));
        snprintf(what, sizeof what, "tiny %d train in place", ci);
        tu_assert_tensor_close(what, &xb, ry, 1e-4, 1e-4);
        snprintf(what, sizeof what, "tiny %d in-place save_mean", ci);
        tu_assert_tensor_close(what, &sm, rsm, 1e-5, 1e-6);

        stfpm_tensor *all[] = {&xb, &yb, &dyb, &dxb, &w, &b, &rm, &rv, &sm, &si, &dw, &db};
        for (int i = 0; i < 12; i++) stfpm_tensor_free(ctx, all[i]);
        free(hx); free(hdy); free(ry); free(rdx); free(rsm); free(rsi); free(rdw); free(rdb);
        free(gsm); free(gsi);
        free_data(&d);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops_batchnorm");
    TCase *tc = tcase_create("batchnorm");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_forward_train);
    tcase_add_test(tc, test_forward_train_inplace_no_running);
    tcase_add_test(tc, test_forward_eval);
    tcase_add_test(tc, test_views);
    tcase_add_test(tc, test_backward_vs_reference);
    tcase_add_test(tc, test_backward_finite_differences);
    tcase_add_test(tc, test_argument_errors);
    suite_add_tcase(s, tc);
    TCase *tiny = tcase_create("tiny");
    tcase_set_timeout(tiny, 300);
    tcase_add_test(tiny, test_tiny);
    suite_add_tcase(s, tiny);
    return tu_run_suite(s);
}
