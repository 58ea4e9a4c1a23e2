/* Element-wise ops (ReLU forward / backward, add, mul, axpy, scale) on the device vs the CPU
 * reference (tests/ref_ops.c). Odd sizes (a prime count over several work-groups, C not a
 * multiple of 16, batch 1 and 3), views, in-place use, argument errors. The test case "tiny"
 * runs every kernel on views at small odd shapes (the Oclgrind run, scripts/oclgrind.sh). The
 * reductions and the SGD step have their own files (test_ops_reduce.c, test_ops_sgd.c).
 *
 * Tolerances (|got - want| <= atol + rtol * |want|):
 *   relu, relu backward, add, mul, scale   exact (one float rounding, same as the reference)
 *   axpy                                    atol 1e-7, rtol 1e-6 (the device may fuse to fma) */
#include "testutil.h"
#include "ref_ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { int n, c, h, w; } shape;

static const shape SHAPES[] = {
    {1, 5, 7, 9}, {3, 17, 13, 11}, {4, 8, 33, 35}, {2, 3, 1, 1}, {1, 1, 1, 1}, {2, 6, 16, 16},
    {1, 1, 1, 10007}, {3, 19, 5, 7},   /* a prime count (40 work-groups of 256); batch 3, C = 19 */
};
#define N_SHAPES (int)(sizeof SHAPES / sizeof SHAPES[0])
#define EXACT 1e-30, 0.0

static size_t numel(const shape *s) { return (size_t)s->n * s->c * s->h * s->w; }

START_TEST(test_relu) {
    stfpm_ctx *ctx = tu_ctx();
    for (int si = 0; si < N_SHAPES; si++) {
        const shape *s = &SHAPES[si];
        size_t n = numel(s);
        float *hx = tu_host_rand(n, 10 + si, -1.0f, 1.0f), *hdy = tu_host_rand(n, 20 + si, -1.0f, 1.0f);
        for (size_t i = 0; i < n; i += 7) hx[i] = 0.0f;   /* exact zeros: relu'(0) = 0 */
        float *ry = malloc(n * sizeof(float)), *rdx = malloc(n * sizeof(float));
        ref_relu_forward(hx, n, ry);
        stfpm_tensor x = tu_tensor(hx, s->n, s->c, s->h, s->w), y = tu_tensor(NULL, s->n, s->c, s->h, s->w);
        stfpm_tensor dy = tu_tensor(hdy, s->n, s->c, s->h, s->w), dx = tu_tensor(NULL, s->n, s->c, s->h, s->w);
        TU_CHECK_STATUS(stfpm_relu_forward(ctx, &x, &y));
        tu_assert_tensor_close("relu y", &y, ry, EXACT);
        /* backward from the forward OUTPUT y */
        ref_relu_backward(ry, hdy, n, rdx);
        TU_CHECK_STATUS(stfpm_relu_backward(ctx, &y, &dy, &dx));
        tu_assert_tensor_close("relu dx", &dx, rdx, EXACT);
        /* in place: dx aliasing dy, y aliasing x */
        TU_CHECK_STATUS(stfpm_relu_backward(ctx, &y, &dy, &dy));
        tu_assert_tensor_close("relu dx in place", &dy, rdx, EXACT);
        TU_CHECK_STATUS(stfpm_relu_forward(ctx, &x, &x));
        tu_assert_tensor_close("relu y in place", &x, ry, EXACT);
        stfpm_tensor *all[] = {&x, &y, &dy, &dx};
        for (int i = 0; i < 4; i++) stfpm_tensor_free(ctx, all[i]);
        free(hx); free(hdy); free(ry); free(rdx);
    }
}
END_TEST

/* relu, add and axpy on views (off != 0): only the viewed samples change (reductions on views:
 * test_ops_reduce.c). */
START_TEST(test_views) {
    stfpm_ctx *ctx = tu_ctx();
    const int N = 4, C = 3, H = 5, W = 7;
    size_t per = (size_t)C * H * W, n = N * per;
    float *ha = tu_host_rand(n, 30, -2.0f, 2.0f), *hb = tu_host_rand(n, 31, -2.0f, 2.0f);
    stfpm_tensor a = tu_tensor(ha, N, C, H, W), b = tu_tensor(hb, N, C, H, W);
    stfpm_tensor av = stfpm_tensor_view(&a, 1, 2), bv = stfpm_tensor_view(&b, 2, 2);
    ck_assert(av.off != 0 && bv.off != av.off);
    float *want = malloc(n * sizeof(float));
    /* a[1..2] = relu(a[1..2]) */
    TU_CHECK_STATUS(stfpm_relu_forward(ctx, &av, &av));
    memcpy(want, ha, n * sizeof(float));
    ref_relu_forward(ha + per, 2 * per, want + per);
    tu_assert_tensor_close("relu on a view", &a, want, EXACT);
    /* a[1..2] += b[2..3] */
    TU_CHECK_STATUS(stfpm_add(ctx, &av, &bv, &av));
    ref_add(want + per, hb + 2 * per, 2 * per, want + per);
    tu_assert_tensor_close("add on views", &a, want, EXACT);
    /* a[1..2] += 0.5 * b[2..3] */
    TU_CHECK_STATUS(stfpm_axpy(ctx, 0.5f, &bv, &av));
    ref_axpy(0.5f, hb + 2 * per, 2 * per, want + per);
    tu_assert_tensor_close("axpy on views", &a, want, 1e-7, 1e-6);
    stfpm_tensor_free(ctx, &a); stfpm_tensor_free(ctx, &b);
    free(ha); free(hb); free(want);
}
END_TEST

START_TEST(test_add_mul_axpy_scale) {
    stfpm_ctx *ctx = tu_ctx();
    for (int si = 0; si < N_SHAPES; si++) {
        const shape *s = &SHAPES[si];
        size_t n = numel(s);
        float *ha = tu_host_rand(n, 40 + si, -3.0f, 3.0f), *hb = tu_host_rand(n, 50 + si, -3.0f, 3.0f);
        float *want = malloc(n * sizeof(float));
        stfpm_tensor a = tu_tensor(ha, s->n, s->c, s->h, s->w), b = tu_tensor(hb, s->n, s->c, s->h, s->w);
        stfpm_tensor y = tu_tensor(NULL, s->n, s->c, s->h, s->w);
        ref_add(ha, hb, n, want);
        TU_CHECK_STATUS(stfpm_add(ctx, &a, &b, &y));
        tu_assert_tensor_close("add", &y, want, EXACT);
        ref_mul(ha, hb, n, want);
        TU_CHECK_STATUS(stfpm_mul(ctx, &a, &b, &y));
        tu_assert_tensor_close("mul", &y, want, EXACT);
        /* y = a*b, then y = -1.75*a + y */
        ref_axpy(-1.75f, ha, n, want);
        TU_CHECK_STATUS(stfpm_axpy(ctx, -1.75f, &a, &y));
        tu_assert_tensor_close("axpy", &y, want, 1e-7, 1e-6);
        TU_CHECK_STATUS(stfpm_tensor_write(ctx, &y, want));   /* scale alone, exact */
        ref_scale(0.3f, want, n);
        TU_CHECK_STATUS(stfpm_scale(ctx, 0.3f, &y));
        tu_assert_tensor_close("scale", &y, want, EXACT);
        /* aliasing: b = a * b, then a = a + a */
        ref_mul(ha, hb, n, want);
        TU_CHECK_STATUS(stfpm_mul(ctx, &a, &b, &b));
        tu_assert_tensor_close("mul in place", &b, want, EXACT);
        ref_add(ha, ha, n, want);
        TU_CHECK_STATUS(stfpm_add(ctx, &a, &a, &a));
        tu_assert_tensor_close("add in place", &a, want, EXACT);
        stfpm_tensor_free(ctx, &a); stfpm_tensor_free(ctx, &b); stfpm_tensor_free(ctx, &y);
        free(ha); free(hb); free(want);
    }
}
END_TEST

START_TEST(test_argument_errors) {
    stfpm_ctx *ctx = tu_ctx();
    stfpm_tensor a = tu_tensor(NULL, 2, 3, 4, 5), b = tu_tensor(NULL, 2, 3, 5, 4);
    stfpm_tensor c = tu_tensor(NULL, 1, 3, 4, 5);
    ck_assert_int_eq(stfpm_relu_forward(ctx, &a, &b), STFPM_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(stfpm_last_error(), "relu_forward"));
    ck_assert_int_eq(stfpm_relu_backward(ctx, &a, &b, &a), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_relu_backward(ctx, &a, &a, &c), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_add(ctx, &a, &b, &a), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_add(ctx, &a, &a, &c), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_mul(ctx, &a, &c, &a), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_axpy(ctx, 1.0f, &a, &b), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_scale(ctx, 1.0f, NULL), STFPM_ERR_ARG);
    /* nothing was written by the failed calls */
    float zero[120] = {0};
    tu_assert_tensor_close("a untouched", &a, zero, EXACT);
    stfpm_tensor *all[] = {&a, &b, &c};
    for (int i = 0; i < 3; i++) stfpm_tensor_free(ctx, all[i]);
}
END_TEST

/* Every kernel once on views (samples 1..n of an (n + 1)-sample tensor, off != 0) at small odd
 * shapes; sample 0 stays untouched. */
START_TEST(test_tiny) {
    stfpm_ctx *ctx = tu_ctx();
    static const shape T[] = {{3, 5, 7, 11}, {1, 1, 1, 1}, {1, 3, 1, 67}};
    for (int si = 0; si < (int)(sizeof T / sizeof T[0]); si++) {
        const shape *s = &T[si];
        const size_t per = (size_t)s->c * s->h * s->w, n = numel(s), all_n = n + per;
        float *ha = tu_host_rand(all_n, 60 + si, -2.0f, 2.0f), *hb = tu_host_rand(all_n, 70 + si, -2.0f, 2.0f);
        for (size_t i = 0; i < all_n; i += 5) ha[i] = 0.0f;
        stfpm_tensor a = tu_tensor(ha, s->n + 1, s->c, s->h, s->w), b = tu_tensor(hb, s->n + 1, s->c, s->h, s->w);
        stfpm_tensor y = tu_tensor(NULL, s->n + 1, s->c, s->h, s->w);
        stfpm_tensor av = stfpm_tensor_view(&a, 1, s->n), bv = stfpm_tensor_view(&b, 1, s->n);
        stfpm_tensor yv = stfpm_tensor_view(&y, 1, s->n);
        ck_assert(av.off != 0);
        float *want = calloc(all_n, sizeof(float)), *tmp = malloc(n * sizeof(float));
        char what[64];
        ref_relu_forward(ha + per, n, want + per);
        TU_CHECK_STATUS(stfpm_relu_forward(ctx, &av, &yv));
        snprintf(what, sizeof what, "tiny %d relu", si);
        tu_assert_tensor_close(what, &y, want, EXACT);
        memcpy(tmp, want + per, n * sizeof(float));   /* relu output */
        ref_relu_backward(tmp, hb + per, n, want + per);
        TU_CHECK_STATUS(stfpm_relu_backward(ctx, &yv, &bv, &yv));
        snprintf(what, sizeof what, "tiny %d relu backward", si);
        tu_assert_tensor_close(what, &y, want, EXACT);
        ref_add(ha + per, hb + per, n, want + per);
        TU_CHECK_STATUS(stfpm_add(ctx, &av, &bv, &yv));
        snprintf(what, sizeof what, "tiny %d add", si);
        tu_assert_tensor_close(what, &y, want, EXACT);
        ref_mul(ha + per, hb + per, n, want + per);
        TU_CHECK_STATUS(stfpm_mul(ctx, &av, &bv, &yv));
        snprintf(what, sizeof what, "tiny %d mul", si);
        tu_assert_tensor_close(what, &y, want, EXACT);
        ref_axpy(0.75f, ha + per, n, want + per);
        TU_CHECK_STATUS(stfpm_axpy(ctx, 0.75f, &av, &yv));
        snprintf(what, sizeof what, "tiny %d axpy", si);
        tu_assert_tensor_close(what, &y, want, 1e-7, 1e-6);
        float *got = tu_read(&y);
        memcpy(want, got, all_n * sizeof(float));
        free(got);
        ref_scale(-1.5f, want + per, n);
        TU_CHECK_STATUS(stfpm_scale(ctx, -1.5f, &yv));
        snprintf(what, sizeof what, "tiny %d scale", si);
        tu_assert_tensor_close(what, &y, want, EXACT);
        stfpm_tensor_free(ctx, &a); stfpm_tensor_free(ctx, &b); stfpm_tensor_free(ctx, &y);
        free(ha); free(hb); free(want); free(tmp);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops_elementwise");
    TCase *tc = tcase_create("elementwise");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_relu);
    tcase_add_test(tc, test_views);
    tcase_add_test(tc, test_add_mul_axpy_scale);
    tcase_add_test(tc, test_argument_errors);
    suite_add_tcase(s, tc);
    TCase *tiny = tcase_create("tiny");
    tcase_set_timeout(tiny, 300);
    tcase_add_test(tiny, test_tiny);
    suite_add_tcase(s, tiny);
    return tu_run_suite(s);
}
