/* Element-wise ops (ReLU forward / backward, add, mul, axpy, scale), reductions
 * (per-sample max / mean, mean over all) and the SGD step on the device vs the CPU
 * reference (tests/ref_ops.c). Views, in-place use, determinism, argument errors.
 *
 * Tolerances (|got - want| <= atol + rtol * |want|):
 *   relu, relu backward, add, mul, scale, max   exact (one float rounding, same as the reference)
 *   axpy                                         atol 1e-7, rtol 1e-6 (the device may fuse to fma)
 *   mean, mean_all                               atol 1e-6, rtol 1e-5 (float tree sums)
 *   sgd w, v after 3 steps                       atol 1e-6, rtol 1e-5 */
#include "testutil.h"
#include "ref_ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { int n, c, h, w; } shape;

static const shape SHAPES[] = {
    {1, 5, 7, 9}, {3, 17, 13, 11}, {4, 8, 33, 35}, {2, 3, 1, 1}, {1, 1, 1, 1}, {2, 6, 16, 16},
};
#define N_SHAPES (int)(sizeof SHAPES / sizeof SHAPES[0])
#define EXACT 1e-30, 0.0

static size_t numel(const shape *s) { return (size_t)s->n * s->c * s->h * s->w; }

static float *host_rand(size_t n, uint64_t seed, float lo, float hi) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    tu_fill_uniform(x, n, seed, lo, hi);
    return x;
}

static void close_t(const char *what, const stfpm_tensor *t, const float *want, double atol, double rtol) {
    float *got = tu_read(t);
    tu_assert_close(what, got, want, stfpm_tensor_numel(t), atol, rtol);
    free(got);
}

START_TEST(test_relu) {
    stfpm_ctx *ctx = tu_ctx();
    for (int si = 0; si < N_SHAPES; si++) {
        const shape *s = &SHAPES[si];
        size_t n = numel(s);
        float *hx = host_rand(n, 10 + si, -1.0f, 1.0f), *hdy = host_rand(n, 20 + si, -1.0f, 1.0f);
        for (size_t i = 0; i < n; i += 7) hx[i] = 0.0f;   /* exact zeros: relu'(0) = 0 */
        float *ry = malloc(n * sizeof(float)), *rdx = malloc(n * sizeof(float));
        ref_relu_forward(hx, n, ry);
        stfpm_tensor x = tu_tensor(hx, s->n, s->c, s->h, s->w), y = tu_tensor(NULL, s->n, s->c, s->h, s->w);
        stfpm_tensor dy = tu_tensor(hdy, s->n, s->c, s->h, s->w), dx = tu_tensor(NULL, s->n, s->c, s->h, s->w);
        TU_CHECK_STATUS(stfpm_relu_forward(ctx, &x, &y));
        close_t("relu y", &y, ry, EXACT);
        /* backward from the forward OUTPUT y */
        ref_relu_backward(ry, hdy, n, rdx);
        TU_CHECK_STATUS(stfpm_relu_backward(ctx, &y, &dy, &dx));
        close_t("relu dx", &dx, rdx, EXACT);
        /* in place: dx aliasing dy, y aliasing x */
        TU_CHECK_STATUS(stfpm_relu_backward(ctx, &y, &dy, &dy));
        close_t("relu dx in place", &dy, rdx, EXACT);
        TU_CHECK_STATUS(stfpm_relu_forward(ctx, &x, &x));
        close_t("relu y in place", &x, ry, EXACT);
        stfpm_tensor *all[] = {&x, &y, &dy, &dx};
        for (int i = 0; i < 4; i++) stfpm_tensor_free(ctx, all[i]);
        free(hx); free(hdy); free(ry); free(rdx);
    }
}
END_TEST

/* relu, add, axpy and reduce on views (off != 0): only the viewed samples change. */
START_TEST(test_views) {
    stfpm_ctx *ctx = tu_ctx();
    const int N = 4, C = 3, H = 5, W = 7;
    size_t per = (size_t)C * H * W, n = N * per;
    float *ha = host_rand(n, 30, -2.0f, 2.0f), *hb = host_rand(n, 31, -2.0f, 2.0f);
    stfpm_tensor a = tu_tensor(ha, N, C, H, W), b = tu_tensor(hb, N, C, H, W);
    stfpm_tensor av = stfpm_tensor_view(&a, 1, 2), bv = stfpm_tensor_view(&b, 2, 2);
    ck_assert(av.off != 0 && bv.off != av.off);
    float *want = malloc(n * sizeof(float));
    /* a[1..2] = relu(a[1..2]) */
    TU_CHECK_STATUS(stfpm_relu_forward(ctx, &av, &av));
    memcpy(want, ha, n * sizeof(float));
    ref_relu_forward(ha + per, 2 * per, want + per);
    close_t("relu on a view", &a, want, EXACT);
    /* a[1..2] += b[2..3] */
    TU_CHECK_STATUS(stfpm_add(ctx, &av, &bv, &av));
    ref_add(want + per, hb + 2 * per, 2 * per, want + per);
    close_t("add on views", &a, want, EXACT);
    /* a[1..2] += 0.5 * b[2..3] */
    TU_CHECK_STATUS(stfpm_axpy(ctx, 0.5f, &bv, &av));
    ref_axpy(0.5f, hb + 2 * per, 2 * per, want + per);
    close_t("axpy on views", &a, want, 1e-7, 1e-6);
    /* per-sample max / mean of the view b[2..3], into samples 2..3 of a (4, 1, 1, 1) tensor */
    stfpm_tensor out = tu_tensor(NULL, 4, 1, 1, 1), ov = stfpm_tensor_view(&out, 2, 2);
    float rmax[2], rmean[2];
    ref_reduce_max(hb + 2 * per, 2, per, rmax);
    ref_reduce_mean(hb + 2 * per, 2, per, rmean);
    TU_CHECK_STATUS(stfpm_reduce_max(ctx, &bv, &ov));
    float got[4];
    TU_CHECK_STATUS(stfpm_tensor_read(ctx, &out, got));
    ck_assert(got[0] == 0.0f && got[1] == 0.0f);
    tu_assert_close("reduce_max on a view", got + 2, rmax, 2, EXACT);
    TU_CHECK_STATUS(stfpm_reduce_mean(ctx, &bv, &ov));
    TU_CHECK_STATUS(stfpm_tensor_read(ctx, &out, got));
    tu_assert_close("reduce_mean on a view", got + 2, rmean, 2, 1e-6, 1e-5);
    stfpm_tensor_free(ctx, &a); stfpm_tensor_free(ctx, &b); stfpm_tensor_free(ctx, &out);
    free(ha); free(hb); free(want);
}
END_TEST

START_TEST(test_add_mul_axpy_scale) {
    stfpm_ctx *ctx = tu_ctx();
    for (int si = 0; si < N_SHAPES; si++) {
        const shape *s = &SHAPES[si];
        size_t n = numel(s);
        float *ha = host_rand(n, 40 + si, -3.0f, 3.0f), *hb = host_rand(n, 50 + si, -3.0f, 3.0f);
        float *want = malloc(n * sizeof(float));
        stfpm_tensor a = tu_tensor(ha, s->n, s->c, s->h, s->w), b = tu_tensor(hb, s->n, s->c, s->h, s->w);
        stfpm_tensor y = tu_tensor(NULL, s->n, s->c, s->h, s->w);
        ref_add(ha, hb, n, want);
        TU_CHECK_STATUS(stfpm_add(ctx, &a, &b, &y));
        close_t("add", &y, want, EXACT);
        ref_mul(ha, hb, n, want);
        TU_CHECK_STATUS(stfpm_mul(ctx, &a, &b, &y));
        close_t("mul", &y, want, EXACT);
        /* y = a*b, then y = -1.75*a + y */
        ref_axpy(-1.75f, ha, n, want);
        TU_CHECK_STATUS(stfpm_axpy(ctx, -1.75f, &a, &y));
        close_t("axpy", &y, want, 1e-7, 1e-6);
        TU_CHECK_STATUS(stfpm_tensor_write(ctx, &y, want));   /* scale alone, exact */
        ref_scale(0.3f, want, n);
        TU_CHECK_STATUS(stfpm_scale(ctx, 0.3f, &y));
        close_t("scale", &y, want, EXACT);
        /* aliasing: b = a * b, then a = a + a */
        ref_mul(ha, hb, n, want);
        TU_CHECK_STATUS(stfpm_mul(ctx, &a, &b, &b));
        close_t("mul in place", &b, want, EXACT);
        ref_add(ha, ha, n, want);
        TU_CHECK_STATUS(stfpm_add(ctx, &a, &a, &a));
        close_t("add in place", &a, want, EXACT);
        stfpm_tensor_free(ctx, &a); stfpm_tensor_free(ctx, &b); stfpm_tensor_free(ctx, &y);
        free(ha); free(hb); free(want);
    }
}
END_TEST

START_TEST(test_reduce) {
    stfpm_ctx *ctx = tu_ctx();
    /* the last shape has 65536 values per sample: many chunks per row */
    static const shape RS[] = {{1, 5, 7, 9}, {3, 17, 13, 11}, {4, 8, 33, 35}, {2, 3, 1, 1},
                               {1, 1, 1, 1}, {3, 1, 256, 256}};
    for (int si = 0; si < (int)(sizeof RS / sizeof RS[0]); si++) {
        const shape *s = &RS[si];
        size_t n = numel(s), per = n / s->n;
        for (int sign = 0; sign < 2; sign++) {
            /* sign 0: mixed values with an offset; sign 1: all negative (max must not be 0) */
            float *hx = sign ? host_rand(n, 60 + si, -5.0f, -0.5f) : host_rand(n, 70 + si, -1.0f, 3.0f);
            if (!sign && n > 10) hx[n - 3] = 50.0f;   /* a maximum near the end of the last sample */
            float *rmax = malloc(s->n * sizeof(float)), *rmean = malloc(s->n * sizeof(float));
            ref_reduce_max(hx, s->n, per, rmax);
            ref_reduce_mean(hx, s->n, per, rmean);
            float rall = ref_reduce_mean_all(hx, n);
            stfpm_tensor x = tu_tensor(hx, s->n, s->c, s->h, s->w), out = tu_tensor(NULL, s->n, 1, 1, 1);
            stfpm_tensor all = tu_tensor(NULL, 1, 1, 1, 1);
            char what[64];
            TU_CHECK_STATUS(stfpm_reduce_max(ctx, &x, &out));
            snprintf(what, sizeof what, "shape %d sign %d reduce_max", si, sign);
            close_t(what, &out, rmax, EXACT);
            TU_CHECK_STATUS(stfpm_reduce_mean(ctx, &x, &out));
            snprintf(what, sizeof what, "shape %d sign %d reduce_mean", si, sign);
            close_t(what, &out, rmean, 1e-6, 1e-5);
            TU_CHECK_STATUS(stfpm_reduce_mean_all(ctx, &x, &all));
            snprintf(what, sizeof what, "shape %d sign %d reduce_mean_all", si, sign);
            close_t(what, &all, &rall, 1e-6, 1e-5);
            /* deterministic: bit-identical on a repeat */
            float first, second;
            TU_CHECK_STATUS(stfpm_tensor_read(ctx, &all, &first));
            TU_CHECK_STATUS(stfpm_reduce_mean_all(ctx, &x, &all));
            TU_CHECK_STATUS(stfpm_tensor_read(ctx, &all, &second));
            ck_assert_msg(memcmp(&first, &second, sizeof first) == 0, "reduce_mean_all not deterministic");
            stfpm_tensor_free(ctx, &x); stfpm_tensor_free(ctx, &out); stfpm_tensor_free(ctx, &all);
            free(hx); free(rmax); free(rmean);
        }
    }
}
END_TEST

/* Three steps vs the reference; the first step must ignore v's previous contents. */
START_TEST(test_sgd) {
    stfpm_ctx *ctx = tu_ctx();
    static const shape SS[] = {{64, 3, 7, 7}, {1, 17, 1, 1}, {1, 1, 1, 1}};
    const float lr = 0.4f, mom = 0.9f, wd = 0.05f;
    for (int si = 0; si < 3; si++) {
        const shape *s = &SS[si];
        size_t n = numel(s);
        float *hw = host_rand(n, 80 + si, -1.0f, 1.0f), *hv = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) hv[i] = 123.0f;   /* garbage the first step must overwrite */
        stfpm_tensor w = tu_tensor(hw, s->n, s->c, s->h, s->w), v = tu_tensor(hv, s->n, s->c, s->h, s->w);
        stfpm_tensor g = tu_tensor(NULL, s->n, s->c, s->h, s->w);
        for (int step = 0; step < 3; step++) {
            float *hg = host_rand(n, 90 + 10 * si + step, -0.5f, 0.5f);
            TU_CHECK_STATUS(stfpm_tensor_write(ctx, &g, hg));
            TU_CHECK_STATUS(stfpm_sgd_step(ctx, &w, &g, &v, lr, mom, wd, step == 0));
            ref_sgd_step(hw, hg, hv, n, lr, mom, wd, step == 0);
            if (step == 0)
                for (size_t i = 0; i < n; i++)
                    ck_assert_msg(fabsf(hv[i]) < 2.0f, "reference first step kept the old v");
            char what[64];
            snprintf(what, sizeof what, "shape %d step %d w", si, step);
            close_t(what, &w, hw, 1e-6, 1e-5);
            snprintf(what, sizeof what, "shape %d step %d v", si, step);
            close_t(what, &v, hv, 1e-6, 1e-5);
            free(hg);
        }
        /* momentum 0 without a buffer: plain w -= lr * (g + wd * w) */
        float *hg = host_rand(n, 99, -0.5f, 0.5f);
        TU_CHECK_STATUS(stfpm_tensor_write(ctx, &g, hg));
        TU_CHECK_STATUS(stfpm_sgd_step(ctx, &w, &g, NULL, lr, 0.0f, wd, 0));
        ref_sgd_step(hw, hg, NULL, n, lr, 0.0f, wd, 0);
        close_t("sgd without momentum", &w, hw, 1e-6, 1e-5);
        stfpm_tensor_free(ctx, &w); stfpm_tensor_free(ctx, &v); stfpm_tensor_free(ctx, &g);
        free(hw); free(hv); free(hg);
    }
}
END_TEST

START_TEST(test_argument_errors) {
    stfpm_ctx *ctx = tu_ctx();
    stfpm_tensor a = tu_tensor(NULL, 2, 3, 4, 5), b = tu_tensor(NULL, 2, 3, 5, 4);
    stfpm_tensor c = tu_tensor(NULL, 1, 3, 4, 5), o2 = tu_tensor(NULL, 2, 1, 1, 1);
    stfpm_tensor o3 = tu_tensor(NULL, 3, 1, 1, 1), o21 = tu_tensor(NULL, 2, 2, 1, 1);
    ck_assert_int_eq(stfpm_relu_forward(ctx, &a, &b), STFPM_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(stfpm_last_error(), "relu_forward"));
    ck_assert_int_eq(stfpm_relu_backward(ctx, &a, &b, &a), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_relu_backward(ctx, &a, &a, &c), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_add(ctx, &a, &b, &a), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_add(ctx, &a, &a, &c), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_mul(ctx, &a, &c, &a), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_axpy(ctx, 1.0f, &a, &b), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_scale(ctx, 1.0f, NULL), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_reduce_max(ctx, &a, &o3), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_reduce_mean(ctx, &a, &o21), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_reduce_mean_all(ctx, &a, &o2), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_sgd_step(ctx, &a, &b, &a, 0.1f, 0.9f, 0.0f, 1), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_sgd_step(ctx, &a, &a, &c, 0.1f, 0.9f, 0.0f, 1), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_sgd_step(ctx, &a, &a, NULL, 0.1f, 0.9f, 0.0f, 1), STFPM_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(stfpm_last_error(), "momentum"));
    ck_assert_int_eq(stfpm_sgd_step(ctx, &a, &a, &a, NAN, 0.9f, 0.0f, 1), STFPM_ERR_ARG);
    /* nothing was written by the failed calls */
    float zero[120] = {0};
    close_t("a untouched", &a, zero, EXACT);
    stfpm_tensor *all[] = {&a, &b, &c, &o2, &o3, &o21};
    for (int i = 0; i < 6; i++) stfpm_tensor_free(ctx, all[i]);
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops_elementwise");
    TCase *tc = tcase_create("elementwise");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_relu);
    tcase_add_test(tc, test_views);
    tcase_add_test(tc, test_add_mul_axpy_scale);
    tcase_add_test(tc, test_reduce);
    tcase_add_test(tc, test_sgd);
    tcase_add_test(tc, test_argument_errors);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
