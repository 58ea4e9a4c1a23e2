/* SGD step (PyTorch semantics, SPEC section 3: g' = g + wd*w; v = first ? g' : momentum*v + g';
 * w -= lr*v) on the device vs the CPU reference (tests/ref_ops.c, float storage per step) and vs
 * a double-precision reference kept in double across steps. Shapes: one value, odd sizes, sizes
 * not a multiple of 4 or 16, more than one work-group (65537 values, the prime 10007), batch 3
 * with C = 19. First-step semantics (v's old contents ignored), a momentum buffer carried in
 * (first_step 0 on the first call), no momentum buffer, lr 0, views, argument errors. The test
 * case "tiny" runs every form of the step on views at small odd shapes (the Oclgrind run,
 * scripts/oclgrind.sh).
 *
 * Tolerances (|got - want| <= atol + rtol * |want|):
 *   w, v vs the float reference, any number of steps    atol 1e-6, rtol 1e-5 (-cl-mad-enable)
 *   w, v vs the double reference after two steps         atol 1e-6, rtol 1e-6
 *   lr 0: w unchanged                                     exact */
#include "testutil.h"
#include "ref_ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { int n, c, h, w; } shape;

#define EXACT 1e-30, 0.0
#define STEP_TOL 1e-6, 1e-5
#define DOUBLE_TOL 1e-6, 1e-6

static size_t numel(const shape *s) { return (size_t)s->n * s->c * s->h * s->w; }

/* 9408 (a conv weight), 17, 1, 7, 1155, 4099, 65537, 10007, 1995 values */
static const shape SS[] = {{64, 3, 7, 7}, {1, 17, 1, 1}, {1, 1, 1, 1}, {1, 1, 1, 7},
                           {3, 5, 7, 11}, {1, 4099, 1, 1}, {1, 1, 1, 65537}, {1, 1, 1, 10007},
                           {3, 19, 5, 7}};
#define N_SS (int)(sizeof SS / sizeof SS[0])

/* Three steps vs the float reference; the first step must ignore v's previous contents. Then
 * one step with momentum 0 and no buffer. */
START_TEST(test_sgd) {
    stfpm_ctx *ctx = tu_ctx();
    const float lr = 0.4f, mom = 0.9f, wd = 0.05f;
    for (int si = 0; si < N_SS; si++) {
        const shape *s = &SS[si];
        size_t n = numel(s);
        float *hw = tu_host_rand(n, 80 + si, -1.0f, 1.0f), *hv = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) hv[i] = 123.0f;   /* garbage the first step must overwrite */
        stfpm_tensor w = tu_tensor(hw, s->n, s->c, s->h, s->w), v = tu_tensor(hv, s->n, s->c, s->h, s->w);
        stfpm_tensor g = tu_tensor(NULL, s->n, s->c, s->h, s->w);
        for (int step = 0; step < 3; step++) {
            float *hg = tu_host_rand(n, 90 + 10 * si + step, -0.5f, 0.5f);
            TU_CHECK_STATUS(stfpm_tensor_write(ctx, &g, hg));
            TU_CHECK_STATUS(stfpm_sgd_step(ctx, &w, &g, &v, lr, mom, wd, step == 0));
            ref_sgd_step(hw, hg, hv, n, lr, mom, wd, step == 0);
            if (step == 0)
                for (size_t i = 0; i < n; i++)
                    ck_assert_msg(fabsf(hv[i]) < 2.0f, "reference first step kept the old v");
            char what[64];
            snprintf(what, sizeof what, "shape %d step %d w", si, step);
            tu_assert_tensor_close(what, &w, hw, STEP_TOL);
            snprintf(what, sizeof what, "shape %d step %d v", si, step);
            tu_assert_tensor_close(what, &v, hv, STEP_TOL);
            free(hg);
        }
        /* momentum 0 without a buffer: plain w -= lr * (g + wd * w) */
        float *hg = tu_host_rand(n, 99, -0.5f, 0.5f);
        TU_CHECK_STATUS(stfpm_tensor_write(ctx, &g, hg));
        TU_CHECK_STATUS(stfpm_sgd_step(ctx, &w, &g, NULL, lr, 0.0f, wd, 0));
        ref_sgd_step(hw, hg, NULL, n, lr, 0.0f, wd, 0);
        tu_assert_tensor_close("sgd without momentum", &w, hw, STEP_TOL);
        stfpm_tensor_free(ctx, &w); stfpm_tensor_free(ctx, &v); stfpm_tensor_free(ctx, &g);
        free(hw); free(hv); free(hg);
    }
}
END_TEST

/* One step of the double-precision reference: w, v kept in double. */
static void sgd_double(double *w, const float *g, double *v, size_t n, double lr, double mom, double wd, int first) {
    for (size_t i = 0; i < n; i++) {
        double d = g[i] + wd * w[i];
        if (!first) d += mom * v[i];
        v[i] = d;
        w[i] -= lr * d;
    }
}

static float *to_float(const double *x, size_t n) {
    float *f = malloc(n * sizeof *f);
    ck_assert_ptr_nonnull(f);
    for (size_t i = 0; i < n; i++) f[i] = (float)x[i];
    return f;
}

/* Weight decay and momentum over two steps vs the double reference, for two settings
 * (STFPM's default 0.4 / 0.9 / 1e-4 and a large decay 0.3 / 0.5 / 0.2, where a wrong decay
 * term is far outside the tolerance). The device's w after the second step must also be far
 * (> 1e-2 somewhere over the shapes) from what a second step without momentum gives. */
START_TEST(test_two_steps_vs_double) {
    stfpm_ctx *ctx = tu_ctx();
    static const float P[2][3] = {{0.4f, 0.9f, 1e-4f}, {0.3f, 0.5f, 0.2f}};
    for (int pi = 0; pi < 2; pi++) {
        const float lr = P[pi][0], mom = P[pi][1], wd = P[pi][2];
        double moved = 0;   /* max |device w - w of a second step without momentum| */
        for (int si = 0; si < N_SS; si++) {
            const shape *s = &SS[si];
            size_t n = numel(s);
            float *hw = tu_host_rand(n, 600 + si, -2.0f, 2.0f);
            double *dw = malloc(n * sizeof *dw), *dv = malloc(n * sizeof *dv), *nomom = malloc(n * sizeof *nomom);
            for (size_t i = 0; i < n; i++) { dw[i] = hw[i]; dv[i] = 0; }
            stfpm_tensor w = tu_tensor(hw, s->n, s->c, s->h, s->w), v = tu_tensor(NULL, s->n, s->c, s->h, s->w);
            stfpm_tensor g = tu_tensor(NULL, s->n, s->c, s->h, s->w);
            for (int step = 0; step < 2; step++) {
                float *hg = tu_host_rand(n, 700 + 10 * si + step, -1.0f, 1.0f);
                TU_CHECK_STATUS(stfpm_tensor_write(ctx, &g, hg));
                TU_CHECK_STATUS(stfpm_sgd_step(ctx, &w, &g, &v, lr, mom, wd, step == 0));
                if (step == 1)   /* the same step without momentum, for the check below */
                    for (size_t i = 0; i < n; i++) nomom[i] = dw[i] - (double)lr * (hg[i] + (double)wd * dw[i]);
                sgd_double(dw, hg, dv, n, lr, mom, wd, step == 0);
                free(hg);
            }
            float *fw = to_float(dw, n), *fv = to_float(dv, n);
            char what[96];
            snprintf(what, sizeof what, "lr %g mom %g wd %g, %zu values: w after 2 steps", lr, mom, wd, n);
            tu_assert_tensor_close(what, &w, fw, DOUBLE_TOL);
            snprintf(what, sizeof what, "lr %g mom %g wd %g, %zu values: v after 2 steps", lr, mom, wd, n);
            tu_assert_tensor_close(what, &v, fv, DOUBLE_TOL);
            float *gw = tu_read(&w);
            for (size_t i = 0; i < n; i++) moved = fmax(moved, fabs(gw[i] - nomom[i]));
            free(gw);
            stfpm_tensor_free(ctx, &w); stfpm_tensor_free(ctx, &v); stfpm_tensor_free(ctx, &g);
            free(hw); free(dw); free(dv); free(nomom); free(fw); free(fv);
        }
        ck_assert_msg(moved > 1e-2, "lr %g mom %g wd %g: w after 2 steps is within %.3g of a step without momentum",
                      lr, mom, wd, moved);
    }
}
END_TEST

/* A momentum buffer carried in (first_step 0 on the first call, as after a resume): v is used. */
START_TEST(test_momentum_buffer_carried_in) {
    stfpm_ctx *ctx = tu_ctx();
    const shape s = {3, 5, 7, 11};
    size_t n = numel(&s);
    const float lr = 0.1f, mom = 0.9f, wd = 0.01f;
    float *hw = tu_host_rand(n, 800, -1.0f, 1.0f), *hv = tu_host_rand(n, 801, -1.0f, 1.0f);
    float *hg = tu_host_rand(n, 802, -1.0f, 1.0f);
    stfpm_tensor w = tu_tensor(hw, s.n, s.c, s.h, s.w), v = tu_tensor(hv, s.n, s.c, s.h, s.w);
    stfpm_tensor g = tu_tensor(hg, s.n, s.c, s.h, s.w);
    TU_CHECK_STATUS(stfpm_sgd_step(ctx, &w, &g, &v, lr, mom, wd, 0));
    double *dw = malloc(n * sizeof *dw), *dv = malloc(n * sizeof *dv);
    for (size_t i = 0; i < n; i++) { dw[i] = hw[i]; dv[i] = hv[i]; }
    sgd_double(dw, hg, dv, n, lr, mom, wd, 0);
    float *fw = to_float(dw, n), *fv = to_float(dv, n);
    tu_assert_tensor_close("carried-in momentum: w", &w, fw, DOUBLE_TOL);
    tu_assert_tensor_close("carried-in momentum: v", &v, fv, DOUBLE_TOL);
    stfpm_tensor_free(ctx, &w); stfpm_tensor_free(ctx, &v); stfpm_tensor_free(ctx, &g);
    free(hw); free(hv); free(hg); free(dw); free(dv); free(fw); free(fv);
}
END_TEST

/* lr 0: w unchanged bit for bit, v still updated. */
START_TEST(test_lr_zero) {
    stfpm_ctx *ctx = tu_ctx();
    const int n = 1155;
    float *hw = tu_host_rand(n, 810, -1.0f, 1.0f), *hg = tu_host_rand(n, 811, -1.0f, 1.0f);
    float *hv = malloc(n * sizeof *hv);
    stfpm_tensor w = tu_tensor(hw, 1, 1, 1, n), v = tu_tensor(NULL, 1, 1, 1, n), g = tu_tensor(hg, 1, 1, 1, n);
    TU_CHECK_STATUS(stfpm_sgd_step(ctx, &w, &g, &v, 0.0f, 0.9f, 0.05f, 1));
    tu_assert_tensor_close("lr 0: w", &w, hw, EXACT);
    float *wcopy = malloc(n * sizeof *wcopy);
    memcpy(wcopy, hw, n * sizeof *wcopy);
    for (int i = 0; i < n; i++) hv[i] = 0.0f;
    ref_sgd_step(wcopy, hg, hv, n, 0.0f, 0.9f, 0.05f, 1);
    tu_assert_tensor_close("lr 0: v", &v, hv, STEP_TOL);
    stfpm_tensor_free(ctx, &w); stfpm_tensor_free(ctx, &v); stfpm_tensor_free(ctx, &g);
    free(hw); free(hg); free(hv); free(wcopy);
}
END_TEST

/* w, g, v as views (off != 0) of larger tensors: only the viewed samples change. */
START_TEST(test_views) {
    stfpm_ctx *ctx = tu_ctx();
    const int N = 5, C = 3, H = 7, W = 9;
    size_t per = (size_t)C * H * W, n = N * per;
    const float lr = 0.2f, mom = 0.9f, wd = 0.1f;
    float *hw = tu_host_rand(n, 820, -1.0f, 1.0f), *hg = tu_host_rand(n, 821, -1.0f, 1.0f);
    float *hv = tu_host_rand(n, 822, -1.0f, 1.0f);
    stfpm_tensor w = tu_tensor(hw, N, C, H, W), g = tu_tensor(hg, N, C, H, W), v = tu_tensor(hv, N, C, H, W);
    stfpm_tensor wv = stfpm_tensor_view(&w, 1, 3), gv = stfpm_tensor_view(&g, 2, 3), vv = stfpm_tensor_view(&v, 0, 3);
    ck_assert(wv.off != 0 && gv.off != 0 && gv.off != wv.off);
    TU_CHECK_STATUS(stfpm_sgd_step(ctx, &wv, &gv, &vv, lr, mom, wd, 0));
    float *ww = malloc(n * sizeof *ww), *wvv = malloc(n * sizeof *wvv);
    memcpy(ww, hw, n * sizeof *ww);
    memcpy(wvv, hv, n * sizeof *wvv);
    ref_sgd_step(ww + per, hg + 2 * per, wvv, 3 * per, lr, mom, wd, 0);
    tu_assert_tensor_close("sgd on views: w", &w, ww, STEP_TOL);
    tu_assert_tensor_close("sgd on views: v", &v, wvv, STEP_TOL);
    tu_assert_tensor_close("sgd on views: g untouched", &g, hg, EXACT);
    stfpm_tensor_free(ctx, &w); stfpm_tensor_free(ctx, &g); stfpm_tensor_free(ctx, &v);
    free(hw); free(hg); free(hv); free(ww); free(wvv);
}
END_TEST

START_TEST(test_argument_errors) {
    stfpm_ctx *ctx = tu_ctx();
    stfpm_tensor a = tu_tensor(NULL, 2, 3, 4, 5), b = tu_tensor(NULL, 2, 3, 5, 4);
    stfpm_tensor c = tu_tensor(NULL, 1, 3, 4, 5), d = tu_tensor(NULL, 2, 3, 4, 5);
    ck_assert_int_eq(stfpm_sgd_step(ctx, &a, &b, &a, 0.1f, 0.9f, 0.0f, 1), STFPM_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(stfpm_last_error(), "sgd_step"));
    ck_assert_int_eq(stfpm_sgd_step(ctx, &a, &a, &c, 0.1f, 0.9f, 0.0f, 1), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_sgd_step(ctx, &a, &a, NULL, 0.1f, 0.9f, 0.0f, 1), STFPM_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(stfpm_last_error(), "momentum"));
    ck_assert_int_eq(stfpm_sgd_step(ctx, &a, &a, &a, NAN, 0.9f, 0.0f, 1), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_sgd_step(ctx, NULL, &a, &d, 0.1f, 0.9f, 0.0f, 1), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_sgd_step(ctx, &a, NULL, &d, 0.1f, 0.9f, 0.0f, 1), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_sgd_step(ctx, &a, &d, &d, -0.1f, 0.9f, 0.0f, 1), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_sgd_step(ctx, &a, &d, &d, 0.1f, -0.5f, 0.0f, 1), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_sgd_step(ctx, &a, &d, &d, 0.1f, 0.9f, INFINITY, 1), STFPM_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(stfpm_last_error(), "hyper-parameters"));
    /* nothing was written by the failed calls */
    float zero[120] = {0};
    tu_assert_tensor_close("a untouched", &a, zero, EXACT);
    tu_assert_tensor_close("d untouched", &d, zero, EXACT);
    stfpm_tensor *all[] = {&a, &b, &c, &d};
    for (int i = 0; i < 4; i++) stfpm_tensor_free(ctx, all[i]);
}
END_TEST

/* On views (samples 1..n of an (n + 1)-sample tensor, off != 0) at small odd shapes: a first
 * step with momentum, a second one, a step without a momentum buffer; sample 0 untouched. */
START_TEST(test_tiny) {
    stfpm_ctx *ctx = tu_ctx();
    static const shape T[] = {{3, 5, 7, 11}, {1, 1, 1, 1}, {1, 3, 1, 67}};
    const float lr = 0.3f, mom = 0.9f, wd = 0.05f;
    for (int si = 0; si < (int)(sizeof T / sizeof T[0]); si++) {
        const shape *s = &T[si];
        const size_t per = (size_t)s->c * s->h * s->w, n = numel(s), all_n = n + per;
        float *hw = tu_host_rand(all_n, 900 + si, -1.0f, 1.0f), *hv = malloc(all_n * sizeof(float));
        for (size_t i = 0; i < all_n; i++) hv[i] = 123.0f;   /* the first step ignores it */
        stfpm_tensor w = tu_tensor(hw, s->n + 1, s->c, s->h, s->w), v = tu_tensor(hv, s->n + 1, s->c, s->h, s->w);
        stfpm_tensor g = tu_tensor(NULL, s->n + 1, s->c, s->h, s->w);
        stfpm_tensor wv = stfpm_tensor_view(&w, 1, s->n), vv = stfpm_tensor_view(&v, 1, s->n);
        stfpm_tensor gv = stfpm_tensor_view(&g, 1, s->n);
        ck_assert(wv.off != 0);
        for (int step = 0; step < 3; step++) {
            float *hg = tu_host_rand(all_n, 910 + 10 * si + step, -0.5f, 0.5f);
            TU_CHECK_STATUS(stfpm_tensor_write(ctx, &g, hg));
            if (step < 2) {
                TU_CHECK_STATUS(stfpm_sgd_step(ctx, &wv, &gv, &vv, lr, mom, wd, step == 0));
                ref_sgd_step(hw + per, hg + per, hv + per, n, lr, mom, wd, step == 0);
            } else {
                TU_CHECK_STATUS(stfpm_sgd_step(ctx, &wv, &gv, NULL, lr, 0.0f, wd, 0));
                ref_sgd_step(hw + per, hg + per, NULL, n, lr, 0.0f, wd, 0);
            }
            char what[64];
            snprintf(what, sizeof what, "tiny %d step %d w", si, step);
            tu_assert_tensor_close(what, &w, hw, STEP_TOL);
            snprintf(what, sizeof what, "tiny %d step %d v", si, step);
            tu_assert_tensor_close(what, &v, hv, STEP_TOL);
            free(hg);
        }
        stfpm_tensor_free(ctx, &w); stfpm_tensor_free(ctx, &v); stfpm_tensor_free(ctx, &g);
        free(hw); free(hv);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops_sgd");
    TCase *tc = tcase_create("sgd");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_sgd);
    tcase_add_test(tc, test_two_steps_vs_double);
    tcase_add_test(tc, test_momentum_buffer_carried_in);
    tcase_add_test(tc, test_lr_zero);
    tcase_add_test(tc, test_views);
    tcase_add_test(tc, test_argument_errors);
    suite_add_tcase(s, tc);
    TCase *tiny = tcase_create("tiny");
    tcase_set_timeout(tiny, 300);
    tcase_add_test(tiny, test_tiny);
    suite_add_tcase(s, tiny);
    return tu_run_suite(s);
}
