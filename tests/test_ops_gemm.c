/* The GEMM kernels of cl/gemm.cl against a double-precision CPU GEMM: split-K
 * (stfpm_gemm_splitk) and the CPU variant's own GEMM (stfpm_gemm_cpu, A or A^T). Several planes
 * in one launch, odd sizes (ragged column panels and row blocks), padded row strides, offsets
 * and plane strides, beta 0 (C's old contents, NaN here, never read), 1 (accumulate) and others,
 * alpha other than 1, reductions split into several slices / blocks and not; nothing outside
 * the C planes may change. The GPU variant routes the weight-gradient GEMMs through split-K, the
 * CPU variant every GEMM through its own kernel; the convolution tests cover both end to end. */
#include "testutil.h"
#include "gemm.h"
#include "runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* kind: 0 split-K, 1 own GEMM C = alpha A B + beta C, 2 own GEMM with A^T (A_z is k x m) */
typedef struct { int planes, m, n, k, pad_a, pad_b, pad_c, off; float beta; int kind; float alpha; } gcase;

static void run(const gcase *g) {
    stfpm_ctx *ctx = tu_ctx();
    const int ta = g->kind == 2;
    const float alpha = g->kind ? g->alpha : 1.0f;
    const size_t lda = (ta ? (size_t)g->m : (size_t)g->k) + g->pad_a, ldb = (size_t)g->n + g->pad_b, ldc = (size_t)g->n + g->pad_c;
    const size_t sa = (ta ? (size_t)g->k : (size_t)g->m) * lda + 3, sb = (size_t)g->k * ldb + 5, sc = (size_t)g->m * ldc + 7;
    const size_t na = g->off + g->planes * sa, nb = g->off + g->planes * sb, nc = g->off + g->planes * sc;
    float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b), *c = malloc(nc * sizeof *c);
    tu_fill_uniform(a, na, 11 + g->m, -1, 1);
    tu_fill_uniform(b, nb, 12 + g->n, -1, 1);
    tu_fill_uniform(c, nc, 13 + g->k, -1, 1);
    if (g->beta == 0.0f)
        for (size_t i = 0; i < nc; i++) c[i] = NAN;   /* must not be read */
    float *want = malloc(nc * sizeof *want);
    for (size_t i = 0; i < nc; i++) want[i] = c[i];
    for (int z = 0; z < g->planes; z++)
        for (int i = 0; i < g->m; i++)
            for (int j = 0; j < g->n; j++) {
                double acc = 0;
                for (int l = 0; l < g->k; l++)
                    acc += (double)a[g->off + z * sa + (ta ? (size_t)l * lda + i : i * lda + l)] *
                           b[g->off + z * sb + (size_t)l * ldb + j];
                float *w = &want[g->off + z * sc + i * ldc + j];
                *w = (float)(g->beta != 0.0f ? alpha * acc + g->beta * *w : alpha * acc);
            }
    stfpm_tensor tA = tu_tensor(a, 1, 1, 1, (int)na), tb = tu_tensor(b, 1, 1, 1, (int)nb), tc = tu_tensor(c, 1, 1, 1, (int)nc);
    if (g->kind)
        TU_CHECK_STATUS(stfpm_gemm_cpu(ctx, ta, g->planes, g->m, g->n, g->k, alpha, tA.buf, g->off, lda, sa, tb.buf,
                                       g->off, ldb, sb, g->beta, tc.buf, g->off, ldc, sc));
    else
        TU_CHECK_STATUS(stfpm_gemm_splitk(ctx, g->planes, g->m, g->n, g->k, tA.buf, g->off, lda, sa, tb.buf, g->off,
                                          ldb, sb, g->beta, tc.buf, g->off, ldc, sc));
    float *got = tu_read(&tc);
    /* the padding between and around the C planes stays as it was: compare everything */
    for (size_t i = 0; i < nc; i++) {
        int inside = 0;
        if (i >= (size_t)g->off) {
            size_t r = (i - g->off) % sc, z = (i - g->off) / sc;
            inside = z < (size_t)g->planes && r / ldc < (size_t)g->m && r % ldc < (size_t)g->n;
        }
        if (!inside)
            ck_assert_msg((isnan(got[i]) && isnan(want[i])) || got[i] == want[i], "element %zu outside C changed", i);
    }
    char what[160];
    snprintf(what, sizeof what, "%s %d x (%d x %d x %d), alpha %g, beta %g",
             g->kind == 0 ? "split-K" : ta ? "own GEMM A^T" : "own GEMM", g->planes, g->m, g->n, g->k, alpha, g->beta);
    for (size_t i = 0; i < nc; i++)
        if (isnan(want[i])) want[i] = got[i] = 0;   /* compared above */
    tu_assert_close(what, got, want, nc, 1e-4 + 2e-7 * g->k, 1e-5);
    free(a); free(b); free(c); free(want); free(got);
    stfpm_tensor_free(ctx, &tA);
    stfpm_tensor_free(ctx, &tb);
    stfpm_tensor_free(ctx, &tc);
}

static const gcase k_cases[] = {
    {1, 64, 192, 4099, 0, 0, 0, 0, 0.0f, 0, 0.0f},   /* conv1's weight gradient shape, a prime reduction */
    {1, 64, 147, 3000, 5, 3, 2, 17, 1.0f, 0, 0.0f},  /* unpadded K columns, offsets, accumulate */
    {36, 17, 19, 1025, 1, 2, 3, 4, 0.0f, 0, 0.0f},   /* Winograd-style: many planes in one launch */
    {3, 5, 7, 11, 0, 0, 0, 1, 1.0f, 0, 0.0f},        /* tiny, one slice */
    {2, 31, 33, 300, 0, 1, 0, 0, 0.5f, 0, 0.0f},     /* beta other than 0 / 1 */
};

START_TEST(test_splitk) { run(&k_cases[_i]); }
END_TEST

/* The own GEMM: full 32-column panels and 8-row blocks, ragged ones (n % 32, m % 8), fewer than
 * 8 rows, one column, reductions longer than one block (1024: the later blocks add to C,
 * beta applied once), many planes (Winograd: 36), rows split over several work-items (small
 * n, large m). */
static const gcase k_own[] = {
    {1, 64, 64, 64, 0, 0, 0, 0, 0.0f, 1, 1.0f},
    {36, 16, 96, 24, 0, 64, 0, 0, 0.0f, 1, 1.0f},      /* Winograd-style planes, padded B / C */
    {1, 19, 147, 2100, 3, 5, 1, 7, 1.0f, 1, 1.0f},     /* ragged both ways, 3 blocks, accumulate */
    {2, 7, 33, 9, 0, 0, 0, 2, 0.5f, 1, -2.0f},         /* fewer than 8 rows, one extra column */
    {1, 200, 5, 13, 0, 0, 0, 0, 0.0f, 1, 1.0f},        /* rows split across items, a narrow panel */
    {1, 1, 1, 1, 0, 0, 0, 0, 0.25f, 1, 3.0f},
    {1, 40, 70, 300, 2, 1, 3, 5, 0.0f, 2, 1.0f},       /* A^T (backward data) */
    {3, 27, 64, 1030, 1, 0, 0, 1, 1.0f, 2, 0.5f},      /* A^T, 2 blocks, accumulate, ragged rows */
    {2, 16, 64, 2049, 0, 0, 0, 0, 0.0f, 1, 1.0f},      /* 3 blocks, beta 0: later blocks add */
};

START_TEST(test_own) { run(&k_own[_i]); }
END_TEST

/* Oclgrind's run (scripts/oclgrind.sh): small shapes, several slices and planes. */
START_TEST(test_splitk_tiny) {
    static const gcase t[] = {{2, 5, 9, 600, 1, 2, 1, 3, 1.0f, 0, 0.0f}, {1, 3, 17, 40, 0, 0, 0, 0, 0.0f, 0, 0.0f},
                              {2, 9, 35, 1030, 1, 2, 1, 3, 0.0f, 1, 1.0f}, {1, 10, 40, 7, 1, 0, 0, 0, 0.0f, 2, 2.0f}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) run(&t[i]);
}
END_TEST

START_TEST(test_splitk_args) {
    stfpm_ctx *ctx = tu_ctx();
    stfpm_tensor t = tu_tensor(NULL, 1, 1, 1, 16);
    ck_assert_int_eq(stfpm_gemm_splitk(ctx, 0, 2, 2, 2, t.buf, 0, 2, 0, t.buf, 0, 2, 0, 0.0f, t.buf, 0, 2, 0), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_gemm_splitk(ctx, 1, 0, 2, 2, t.buf, 0, 2, 0, t.buf, 0, 2, 0, 0.0f, t.buf, 0, 2, 0), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_gemm_cpu(ctx, 0, 1, 2, 2, 0, 1.0f, t.buf, 0, 2, 0, t.buf, 0, 2, 0, 0.0f, t.buf, 0, 2, 0),
                     STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_gemm_cpu(ctx, 0, 1, 2, 4, 2, 1.0f, t.buf, 0, 2, 0, t.buf, 0, 2, 0, 0.0f, t.buf, 0, 2, 0),
                     STFPM_ERR_ARG);   /* ldb < n */
    stfpm_tensor_free(ctx, &t);
    /* the gemm option: AUTO = own kernels for the CPU variant only */
    ck_assert_int_eq(stfpm_gemm_own(ctx), stfpm_ctx_get_options(ctx)->gemm == STFPM_GEMM_OWN ||
                                              (stfpm_ctx_get_options(ctx)->gemm == STFPM_GEMM_AUTO &&
                                               !stfpm_gpu_kernels(ctx)));
    /* only the GPU variant routes GEMMs here, and only small outputs with long reductions */
    const int gpu = stfpm_gpu_kernels(ctx);
    ck_assert_int_eq(stfpm_gemm_splitk_wanted(ctx, 1, 64, 192, 131072), gpu);
    ck_assert_int_eq(stfpm_gemm_splitk_wanted(ctx, 1, 64, 192, 512), 0);
    ck_assert_int_eq(stfpm_gemm_splitk_wanted(ctx, 1, 4096, 4096, 131072), 0);
    ck_assert_int_eq(stfpm_gemm_splitk_wanted(ctx, 36, 256, 256, 131072), 0);   /* 576 tiles in all */
}
END_TEST

int main(void) {
    Suite *s = suite_create("gemm");
    TCase *tc = tcase_create("gemm");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_splitk, 0, (int)(sizeof k_cases / sizeof k_cases[0]));
    tcase_add_loop_test(tc, test_own, 0, (int)(sizeof k_own / sizeof k_own[0]));
    tcase_add_test(tc, test_splitk_args);
    suite_add_tcase(s, tc);
    TCase *tiny = tcase_create("tiny");
    tcase_add_test(tiny, test_splitk_tiny);
    suite_add_tcase(s, tiny);
    return tu_run_suite(s);
}
