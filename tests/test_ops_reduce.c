/* Reductions (per-sample max / mean over C*H*W, mean over a whole tensor) on the device vs the
 * CPU reference (tests/ref_ops.c, double sums). Shapes: one value, prime lengths, lengths that
 * are not multiples of 4 or 16, batch 3 with C = 19, rows that need several work-groups (the
 * host splits a row into chunks of about L x 8 values, L the work-group size: 256, or less under
 * a lower launch limit; at most 256 chunks with the CPU variant, 1024 with the GPU variant:
 * 65537 values per row need 33 chunks at L = 256, 1000003 values hit the CPU variant's limit,
 * 2621447 the GPU variant's). Also every element counted exactly once (integer data, where
 * float sums are exact), the maximum found at any position of a row, NaN propagation, views,
 * determinism, argument errors. The test case "tiny" runs max, mean and mean_all on views at
 * small odd shapes (the Oclgrind run, scripts/oclgrind.sh).
 *
 * Tolerances (|got - want| <= atol + rtol * |want|):
 *   max                        exact (a selection, no rounding)
 *   mean, mean_all             atol 1e-6, rtol 1e-5 (float tree sums vs a double sum)
 *   mean of values in {-2, -1, 1, 2}  exact sums, so only the final division rounds: rtol 4 ulp,
 *                              atol 0.25 / len (a value lost or counted twice moves the mean by
 *                              >= 1 / len) */
#include "testutil.h"
#include "ref_ops.h"
#include "runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { int n, c, h, w; } shape;

#define EXACT 1e-30, 0.0
#define MEAN_TOL 1e-6, 1e-5

static size_t numel(const shape *s) { return (size_t)s->n * s->c * s->h * s->w; }

/* Per-sample lengths 315, 2431, 9240, 3, 1, 65536 (32 chunks per row), the prime 7919, 17, 1155,
 * 2049 (just past one chunk), 4097, 257, the prime 65537, 39007 (batch 3, C = 19) and the prime
 * 10007. */
static const shape RS[] = {{1, 5, 7, 9},  {3, 17, 13, 11}, {4, 8, 33, 35}, {2, 3, 1, 1},   {1, 1, 1, 1},
                           {3, 1, 256, 256}, {1, 1, 1, 7919}, {5, 17, 1, 1}, {2, 3, 5, 77}, {3, 1, 1, 2049},
                           {2, 1, 17, 241}, {7, 1, 1, 257}, {2, 1, 1, 65537}, {3, 19, 1, 2053},
                           {1, 1, 1, 10007}};
#define N_RS (int)(sizeof RS / sizeof RS[0])

/* Each shape with mixed values and a maximum near the end (sign 0) and all negative (sign 1:
 * the maximum must not be 0, the identity is -inf). */
START_TEST(test_reduce) {
    stfpm_ctx *ctx = tu_ctx();
    for (int si = 0; si < N_RS; si++) {
        const shape *s = &RS[si];
        size_t n = numel(s), per = n / s->n;
        for (int sign = 0; sign < 2; sign++) {
            float *hx = sign ? tu_host_rand(n, 60 + si, -5.0f, -0.5f) : tu_host_rand(n, 70 + si, -1.0f, 3.0f);
            if (!sign && n > 10) hx[n - 3] = 50.0f;   /* a maximum near the end of the last sample */
            float *rmax = malloc(s->n * sizeof(float)), *rmean = malloc(s->n * sizeof(float));
            ref_reduce_max(hx, s->n, per, rmax);
            ref_reduce_mean(hx, s->n, per, rmean);
            float rall = ref_reduce_mean_all(hx, n);
            stfpm_tensor x = tu_tensor(hx, s->n, s->c, s->h, s->w), out = tu_tensor(NULL, s->n, 1, 1, 1);
            stfpm_tensor all = tu_tensor(NULL, 1, 1, 1, 1);
            char what[96];
            TU_CHECK_STATUS(stfpm_reduce_max(ctx, &x, &out));
            snprintf(what, sizeof what, "shape %d (%d x %zu) sign %d reduce_max", si, s->n, per, sign);
            tu_assert_tensor_close(what, &out, rmax, EXACT);
            TU_CHECK_STATUS(stfpm_reduce_mean(ctx, &x, &out));
            snprintf(what, sizeof what, "shape %d (%d x %zu) sign %d reduce_mean", si, s->n, per, sign);
            tu_assert_tensor_close(what, &out, rmean, MEAN_TOL);
            /* deterministic: bit-identical on a repeat */
            float *m1 = tu_read(&out);
            TU_CHECK_STATUS(stfpm_reduce_mean(ctx, &x, &out));
            float *m2 = tu_read(&out);
            ck_assert_msg(memcmp(m1, m2, s->n * sizeof(float)) == 0, "shape %d: reduce_mean not deterministic", si);
            free(m1);
            free(m2);
            TU_CHECK_STATUS(stfpm_reduce_mean_all(ctx, &x, &all));
            snprintf(what, sizeof what, "shape %d (%zu values) sign %d reduce_mean_all", si, n, sign);
            tu_assert_tensor_close(what, &all, &rall, MEAN_TOL);
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

/* mean_all over 1000003 values (prime; past 256 chunks of 256 x 8), as one sample and spread
 * over several samples of the same data: both must match the reference. */
START_TEST(test_mean_all_large) {
    stfpm_ctx *ctx = tu_ctx();
    const int len = 1000003;
    float *hx = tu_host_rand(len, 77, -1.0f, 3.0f);
    float want = ref_reduce_mean_all(hx, len);
    stfpm_tensor x = tu_tensor(hx, 1, 1, 1, len), all = tu_tensor(NULL, 1, 1, 1, 1);
    TU_CHECK_STATUS(stfpm_reduce_mean_all(ctx, &x, &all));
    tu_assert_tensor_close("reduce_mean_all of 1000003 values", &all, &want, MEAN_TOL);
    float got1;
    TU_CHECK_STATUS(stfpm_tensor_read(ctx, &all, &got1));
    /* per-sample mean of the single row is the same quantity */
    stfpm_tensor out = tu_tensor(NULL, 1, 1, 1, 1);
    TU_CHECK_STATUS(stfpm_reduce_mean(ctx, &x, &out));
    tu_assert_tensor_close("reduce_mean of one 1000003-value row", &out, &want, MEAN_TOL);
    stfpm_tensor_free(ctx, &x);
    /* 1000003 = 1 x 1000003 only (prime): use 999999 = 3 x 333333 values for the multi-sample form */
    const int len3 = 999999;
    float want3 = ref_reduce_mean_all(hx, len3);
    stfpm_tensor x3 = tu_tensor(hx, 3, 1, 1, len3 / 3);
    TU_CHECK_STATUS(stfpm_reduce_mean_all(ctx, &x3, &all));
    tu_assert_tensor_close("reduce_mean_all of 3 x 333333 values", &all, &want3, MEAN_TOL);
    printf("reduce_mean_all: 1000003 values got %.9g want %.9g\n", got1, want);
    stfpm_tensor_free(ctx, &x3);
    free(hx);
    /* 2621447 values (prime): past 1024 chunks of 256 x 8 (the GPU variant's limit) */
    const int len4 = 2621447;
    hx = tu_host_rand(len4, 78, -1.0f, 3.0f);
    want = ref_reduce_mean_all(hx, len4);
    stfpm_tensor x4 = tu_tensor(hx, 1, 1, 1, len4);
    TU_CHECK_STATUS(stfpm_reduce_mean_all(ctx, &x4, &all));
    tu_assert_tensor_close("reduce_mean_all of 2621447 values", &all, &want, MEAN_TOL);
    TU_CHECK_STATUS(stfpm_reduce_mean(ctx, &x4, &out));
    tu_assert_tensor_close("reduce_mean of one 2621447-value row", &out, &want, MEAN_TOL);
    stfpm_tensor_free(ctx, &x4); stfpm_tensor_free(ctx, &out); stfpm_tensor_free(ctx, &all);
    free(hx);
}
END_TEST

/* Values in {-2, -1, 1, 2}: every partial sum is an integer below 2^24, exact in float, so the
 * device mean is the exact mean rounded once (OpenCL allows a division 2.5 ulp off). No value is
 * 0: one dropped or counted twice changes the sum by >= 1 and the mean by >= 1 / len. */
START_TEST(test_mean_counts_every_value) {
    stfpm_ctx *ctx = tu_ctx();
    static const shape S[] = {{1, 1, 1, 1}, {3, 1, 1, 7919}, {2, 1, 1, 65537}, {4, 1, 1, 2048},
                              {3, 1, 1, 2049}, {1, 1, 1, 1000003}, {5, 3, 7, 13}};
    for (int si = 0; si < (int)(sizeof S / sizeof S[0]); si++) {
        const shape *s = &S[si];
        size_t n = numel(s), per = n / s->n;
        float *hx = tu_host_rand(n, 300 + si, 0.0f, 4.0f);
        static const float VALS[4] = {-2.0f, -1.0f, 1.0f, 2.0f};
        for (size_t i = 0; i < n; i++) hx[i] = VALS[(int)hx[i] & 3];
        float *want = malloc(s->n * sizeof(float));
        for (int b = 0; b < s->n; b++) {
            long long sum = 0;
            for (size_t i = 0; i < per; i++) sum += (long long)hx[(size_t)b * per + i];
            want[b] = (float)((double)sum / (double)per);
        }
        long long total = 0;
        for (size_t i = 0; i < n; i++) total += (long long)hx[i];
        float want_all = (float)((double)total / (double)n);
        stfpm_tensor x = tu_tensor(hx, s->n, s->c, s->h, s->w), out = tu_tensor(NULL, s->n, 1, 1, 1);
        stfpm_tensor all = tu_tensor(NULL, 1, 1, 1, 1);
        char what[96];
        TU_CHECK_STATUS(stfpm_reduce_mean(ctx, &x, &out));
        snprintf(what, sizeof what, "integer data %d x %zu: reduce_mean", s->n, per);
        tu_assert_tensor_close(what, &out, want, 0.25 / (double)per, 4 * 0x1p-23);
        TU_CHECK_STATUS(stfpm_reduce_mean_all(ctx, &x, &all));
        snprintf(what, sizeof what, "integer data %zu values: reduce_mean_all", n);
        tu_assert_tensor_close(what, &all, &want_all, 0.25 / (double)n, 4 * 0x1p-23);
        stfpm_tensor_free(ctx, &x); stfpm_tensor_free(ctx, &out); stfpm_tensor_free(ctx, &all);
        free(hx); free(want);
    }
}
END_TEST

/* The single largest value at the first / last position of a row, at chunk edges and in the
 * middle: max must find it wherever it is. Other rows keep their own maximum. */
START_TEST(test_max_any_position) {
    stfpm_ctx *ctx = tu_ctx();
    static const int LENS[] = {7, 2048, 65537};
    for (int li = 0; li < 3; li++) {
        const int len = LENS[li], rows = 3;
        size_t n = (size_t)rows * len;
        float *hx = tu_host_rand(n, 400 + li, -1.0f, 1.0f);
        const int pos[] = {0, 1, 2047, 2048, 2049, len / 2, len - 2, len - 1};
        stfpm_tensor x = tu_tensor(NULL, rows, 1, 1, len), out = tu_tensor(NULL, rows, 1, 1, 1);
        float want[3], got[3];
        for (int pi = 0; pi < (int)(sizeof pos / sizeof pos[0]); pi++) {
            if (pos[pi] >= len) continue;
            float *h = malloc(n * sizeof *h);
            memcpy(h, hx, n * sizeof *h);
            h[(size_t)1 * len + pos[pi]] = 7.0f;   /* row 1 only */
            ref_reduce_max(h, rows, len, want);
            ck_assert(want[1] == 7.0f && want[0] < 1.0f && want[2] < 1.0f);
            TU_CHECK_STATUS(stfpm_tensor_write(ctx, &x, h));
            TU_CHECK_STATUS(stfpm_reduce_max(ctx, &x, &out));
            TU_CHECK_STATUS(stfpm_tensor_read(ctx, &out, got));
            char what[80];
            snprintf(what, sizeof what, "reduce_max, row length %d, maximum at %d", len, pos[pi]);
            tu_assert_close(what, got, want, rows, EXACT);
            free(h);
        }
        stfpm_tensor_free(ctx, &x); stfpm_tensor_free(ctx, &out);
        free(hx);
    }
}
END_TEST

/* A NaN makes its sample's max and mean NaN (like torch.max / torch.mean); the other samples
 * are unaffected. */
START_TEST(test_nan) {
    stfpm_ctx *ctx = tu_ctx();
    const int rows = 3, len = 5000;
    size_t n = (size_t)rows * len;
    float *hx = tu_host_rand(n, 500, -1.0f, 1.0f);
    hx[(size_t)1 * len + 3001] = NAN;
    float rmax[3], rmean[3];
    ref_reduce_max(hx, rows, len, rmax);
    ref_reduce_mean(hx, rows, len, rmean);
    ck_assert(isnan(rmax[1]) && isnan(rmean[1]) && !isnan(rmax[0]) && !isnan(rmax[2]));
    stfpm_tensor x = tu_tensor(hx, rows, 1, 1, len), out = tu_tensor(NULL, rows, 1, 1, 1);
    stfpm_tensor all = tu_tensor(NULL, 1, 1, 1, 1);
    TU_CHECK_STATUS(stfpm_reduce_max(ctx, &x, &out));
    tu_assert_tensor_close("reduce_max with a NaN in sample 1", &out, rmax, EXACT);
    TU_CHECK_STATUS(stfpm_reduce_mean(ctx, &x, &out));
    tu_assert_tensor_close("reduce_mean with a NaN in sample 1", &out, rmean, MEAN_TOL);
    TU_CHECK_STATUS(stfpm_reduce_mean_all(ctx, &x, &all));
    float got;
    TU_CHECK_STATUS(stfpm_tensor_read(ctx, &all, &got));
    ck_assert_msg(isnan(got), "reduce_mean_all with a NaN gave %.8g", got);
    stfpm_tensor_free(ctx, &x); stfpm_tensor_free(ctx, &out); stfpm_tensor_free(ctx, &all);
    free(hx);
}
END_TEST

/* Per-sample max / mean of the view b[2..3], into samples 2..3 of a (4, 1, 1, 1) tensor:
 * samples 0..1 of the output stay untouched. */
START_TEST(test_views) {
    stfpm_ctx *ctx = tu_ctx();
    const int N = 4, C = 3, H = 5, W = 7;
    size_t per = (size_t)C * H * W, n = N * per;
    float *hb = tu_host_rand(n, 31, -2.0f, 2.0f);
    stfpm_tensor b = tu_tensor(hb, N, C, H, W), bv = stfpm_tensor_view(&b, 2, 2);
    ck_assert(bv.off != 0);
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
    ck_assert(got[0] == 0.0f && got[1] == 0.0f);
    tu_assert_close("reduce_mean on a view", got + 2, rmean, 2, MEAN_TOL);
    /* mean_all of the view covers only its two samples */
    stfpm_tensor all = tu_tensor(NULL, 1, 1, 1, 1);
    float rall = ref_reduce_mean_all(hb + 2 * per, 2 * per);
    TU_CHECK_STATUS(stfpm_reduce_mean_all(ctx, &bv, &all));
    tu_assert_tensor_close("reduce_mean_all on a view", &all, &rall, MEAN_TOL);
    stfpm_tensor_free(ctx, &b); stfpm_tensor_free(ctx, &out); stfpm_tensor_free(ctx, &all);
    free(hb);
}
END_TEST

START_TEST(test_argument_errors) {
    stfpm_ctx *ctx = tu_ctx();
    stfpm_tensor a = tu_tensor(NULL, 2, 3, 4, 5), o1 = tu_tensor(NULL, 1, 1, 1, 1);
    stfpm_tensor o2 = tu_tensor(NULL, 2, 1, 1, 1), o3 = tu_tensor(NULL, 3, 1, 1, 1);
    stfpm_tensor o21 = tu_tensor(NULL, 2, 2, 1, 1);
    ck_assert_int_eq(stfpm_reduce_max(ctx, &a, &o3), STFPM_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(stfpm_last_error(), "reduce_max"));
    ck_assert_int_eq(stfpm_reduce_mean(ctx, &a, &o21), STFPM_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(stfpm_last_error(), "reduce_mean"));
    ck_assert_int_eq(stfpm_reduce_mean_all(ctx, &a, &o2), STFPM_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(stfpm_last_error(), "reduce_mean_all"));
    ck_assert_int_eq(stfpm_reduce_max(ctx, NULL, &o2), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_reduce_mean(ctx, &a, NULL), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_reduce_mean_all(ctx, NULL, &o1), STFPM_ERR_ARG);
    /* nothing was written by the failed calls */
    float zero[4] = {0};   /* o21 has 4 values */
    tu_assert_tensor_close("o3 untouched", &o3, zero, EXACT);
    tu_assert_tensor_close("o21 untouched", &o21, zero, EXACT);
    tu_assert_tensor_close("o2 untouched", &o2, zero, EXACT);
    stfpm_tensor *all[] = {&a, &o1, &o2, &o3, &o21};
    for (int i = 0; i < 5; i++) stfpm_tensor_free(ctx, all[i]);
}
END_TEST

/* max, mean and mean_all of views (samples 1..n of an (n + 1)-sample tensor, off != 0) into
 * views (samples 1..n of an (n + 1)-sample output) at small odd shapes, rows over several
 * chunks under a 64-wide work-group (1031 values), a NaN in one row of the last shape. */
/* The partial-sums scratch slot allocated once, large enough for every tiny shape: Oclgrind's
 * uninitialised-value check misreports a scratch buffer that grows (released and recreated)
 * between two ops as never written. */
static void reserve_partials(stfpm_ctx *ctx) {
    cl_mem m;
    TU_CHECK_STATUS(stfpm_scratch(ctx, STFPM_SCRATCH_PARTIALS, 64 * 1024, &m));
}

static void close_nan(const char *what, const float *got, const float *want, int n, double atol, double rtol) {
    for (int i = 0; i < n; i++) {
        if (isnan(want[i])) ck_assert_msg(isnan(got[i]), "%s: element %d got %.8g, want NaN", what, i, got[i]);
        else tu_assert_close(what, got + i, want + i, 1, atol, rtol);
    }
}

START_TEST(test_tiny) {
    stfpm_ctx *ctx = tu_ctx();
    static const shape T[] = {{3, 5, 7, 9}, {1, 1, 1, 1}, {2, 1, 1, 1031}, {3, 1, 1, 13}};
    const int n_t = (int)(sizeof T / sizeof T[0]);
    reserve_partials(ctx);
    for (int si = 0; si < n_t; si++) {
        const shape *s = &T[si];
        const size_t per = (size_t)s->c * s->h * s->w, n = numel(s);
        float *hx = tu_host_rand(n + per, 950 + si, -3.0f, -0.5f);   /* all negative: max is not 0 */
        if (si == n_t - 1) hx[2 * per + 4] = NAN;                /* row 1 of the view */
        float rmax[3], rmean[3], rall = ref_reduce_mean_all(hx + per, n);
        ref_reduce_max(hx + per, s->n, per, rmax);
        ref_reduce_mean(hx + per, s->n, per, rmean);
        stfpm_tensor x = tu_tensor(hx, s->n + 1, s->c, s->h, s->w), out = tu_tensor(NULL, s->n + 1, 1, 1, 1);
        stfpm_tensor all = tu_tensor(NULL, 2, 1, 1, 1);
        stfpm_tensor xv = stfpm_tensor_view(&x, 1, s->n), ov = stfpm_tensor_view(&out, 1, s->n);
        stfpm_tensor av = stfpm_tensor_view(&all, 1, 1);
        ck_assert(xv.off != 0 && ov.off != 0);
        float got[4];
        char what[64];
        TU_CHECK_STATUS(stfpm_reduce_max(ctx, &xv, &ov));
        TU_CHECK_STATUS(stfpm_tensor_read(ctx, &out, got));
        ck_assert(got[0] == 0.0f);
        snprintf(what, sizeof what, "tiny %d reduce_max", si);
        close_nan(what, got + 1, rmax, s->n, EXACT);
        TU_CHECK_STATUS(stfpm_reduce_mean(ctx, &xv, &ov));
        TU_CHECK_STATUS(stfpm_tensor_read(ctx, &out, got));
        ck_assert(got[0] == 0.0f);
        snprintf(what, sizeof what, "tiny %d reduce_mean", si);
        close_nan(what, got + 1, rmean, s->n, MEAN_TOL);
        TU_CHECK_STATUS(stfpm_reduce_mean_all(ctx, &xv, &av));
        TU_CHECK_STATUS(stfpm_tensor_read(ctx, &all, got));
        ck_assert(got[0] == 0.0f);
        snprintf(what, sizeof what, "tiny %d reduce_mean_all", si);
        close_nan(what, got + 1, &rall, 1, MEAN_TOL);
        stfpm_tensor_free(ctx, &x); stfpm_tensor_free(ctx, &out); stfpm_tensor_free(ctx, &all);
        free(hx);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops_reduce");
    TCase *tc = tcase_create("reduce");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_reduce);
    tcase_add_test(tc, test_mean_all_large);
    tcase_add_test(tc, test_mean_counts_every_value);
    tcase_add_test(tc, test_max_any_position);
    tcase_add_test(tc, test_nan);
    tcase_add_test(tc, test_views);
    tcase_add_test(tc, test_argument_errors);
    suite_add_tcase(s, tc);
    TCase *tiny = tcase_create("tiny");
    tcase_set_timeout(tiny, 300);
    tcase_add_test(tiny, test_tiny);
    suite_add_tcase(s, tiny);
    return tu_run_suite(s);
}
