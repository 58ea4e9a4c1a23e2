/* Parity with PyTorch on real data (tests/ref/parity_real_ref.h, from tests/ref/gen_parity.py):
 * the ImageNet teacher ../shared/weights/resnet18_imagenet_l3_bnfolded.safetensors loaded through
 * stfpm_weights_load + stfpm_resnet_load, one MVTec AD image (bottle/test/broken_large/000.png)
 * through the library's loader and preprocessing (stfpm_image_load_tensor at 256 x 256), the
 * teacher in eval mode. PyTorch side: torchvision Resize([256, 256]) + ToTensor + Normalize and
 * torchvision resnet18 with the same weights, in float64.
 *
 * Compared:
 *   preprocessed input: sampled values and the per-(channel, row) sums of the resized 8-bit image
 *     (recovered from the tensor); PIL's resize is what torchvision runs, so an exact match is
 *     expected; a difference of 1/255 at a few pixels is tolerated (at most 1 grey level per pixel,
 *     at most 1e-3 of the 3 x 256 x 256 values changed in total) and reported;
 *   layer1..layer3 features: sampled values, sum, sum of squares, error <= 1e-3 of the level's RMS;
 *   the same image as sample 0 of a batch of two (with bottle/test/good/000.png): features equal
 *     to the single-image run within 1e-5 of the level's RMS (no cross-sample leakage).
 * When ../shared (weights or image) is absent the test is skipped (exit 77: "Skipped" in CTest);
 * when only the second image is absent the batch-of-two part is reported as skipped. */
#include "testutil.h"
#include "parity_util.h"
#include "stfpm/image.h"
#include "stfpm/resnet.h"
#include "stfpm/weights.h"
#include "ref/parity_real_ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TOL_REAL_FEAT 1e-3
#define TOL_BATCH 1e-5
#define REAL_IMAGE2 "data/mvtec_ad/bottle/test/good/000.png"

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

START_TEST(test_parity_real_teacher) {
    const char *shared = tu_shared_dir();
    char wpath[2048], ipath[2048];
    if (!shared) TU_SKIP("parity_real: teacher features vs PyTorch not checked because ../shared is absent");
    snprintf(wpath, sizeof wpath, "%s/%s", shared, PARITY_REAL_WEIGHTS);
    snprintf(ipath, sizeof ipath, "%s/%s", shared, PARITY_REAL_IMAGE);
    if (!file_exists(wpath) || !file_exists(ipath))
        TU_SKIP("parity_real: teacher features vs PyTorch not checked because %s is absent",
                file_exists(wpath) ? ipath : wpath);
    stfpm_ctx *ctx = tu_ctx();
    double t0 = parity_now();
    const int S = PARITY_REAL_S;

    /* teacher through the ordinary loading path */
    stfpm_weights w = {0};
    TU_CHECK_STATUS(stfpm_weights_load(wpath, &w));
    stfpm_resnet *teacher = NULL;
    TU_CHECK_STATUS(stfpm_resnet_create(ctx, 3, STFPM_NET_FROZEN, &teacher));
    TU_CHECK_STATUS(stfpm_resnet_load(ctx, teacher, &w, wpath, NULL));
    stfpm_weights_free(&w);

    /* image through the library's loader and preprocessing */
    float *chw = malloc((size_t)3 * S * S * sizeof *chw);
    ck_assert_ptr_nonnull(chw);
    TU_CHECK_STATUS(stfpm_image_load_tensor(ipath, S, chw));

    /* input vs torchvision: float values at the samples and the resized 8-bit image's row sums */
    const parity_rec *ri = parity_find(parity_real_recs, (int)(sizeof parity_real_recs / sizeof *parity_real_recs), "input");
    ck_assert_ptr_nonnull(ri);
    parity_err ein = parity_compare(ri, parity_real_idx, parity_real_val, chw, NULL, (size_t)3 * S * S);
    double max_in = 0;       /* max |C - torch| over the sampled input values */
    for (int j = 0; j < ri->n_samp; j++) {
        double d = fabs(chw[parity_real_idx[ri->off + j]] - parity_real_val[ri->off + j]);
        if (d > max_in) max_in = d;
    }
    long rows_diff = 0, level_diff = 0, max_row_diff = 0;
    for (int c = 0; c < 3; c++) {
        for (int y = 0; y < S; y++) {
            long sum = 0;
            for (int x = 0; x < S; x++) {
                double v = (chw[((size_t)c * S + y) * S + x] * stfpm_imagenet_std[c] + stfpm_imagenet_mean[c]) * 255.0;
                sum += lround(v);
            }
            long d = labs(sum - parity_real_rowsum[c][y]);
            if (d) rows_diff++;
            level_diff += d;
            if (d > max_row_diff) max_row_diff = d;
        }
    }
    /* 1/255 in normalised units is 1 / (255 std) <= 0.0175 */
    double one_level = 1.0 / (255.0 * 0.224);
    printf("parity_real input (%dx%d, %s): max |C - torch| over %d sampled values %.3g (= %.2f grey levels), "
           "rows with a different 8-bit sum %ld of %d, sum of |row-sum differences| %ld grey levels\n",
           S, S, PARITY_REAL_IMAGE, ri->n_samp, max_in, max_in / one_level, rows_diff, 3 * S, level_diff);

    /* teacher features */
    stfpm_tensor x = tu_tensor(chw, 1, 3, S, S);
    stfpm_tensor f[4];
    double tf0 = parity_now();
    TU_CHECK_STATUS(stfpm_resnet_forward(ctx, teacher, &x, STFPM_BN_EVAL, 3, f));
    TU_CHECK_STATUS(stfpm_finish(ctx));
    double t_fwd = parity_now() - tf0;
    double worst = 0;
    int failed = 0;
    for (int l = 0; l < 3; l++) {
        char name[64];
        snprintf(name, sizeof name, "teacher_eval.layer%d", l + 1);
        const parity_rec *r = parity_find(parity_real_recs, (int)(sizeof parity_real_recs / sizeof *parity_real_recs), name);
        ck_assert_ptr_nonnull(r);
        float *got = tu_read(&f[l]);
        parity_err e = parity_compare(r, parity_real_idx, parity_real_val, got, NULL, stfpm_tensor_numel(&f[l]));
        free(got);
        printf("parity_real %s: error %.3g of RMS %.4g (samples %.3g, sum %.3g, sumsq %.3g; tol %.0e)\n", name,
               e.worst, e.rms, e.samp, e.sum, e.sumsq, TOL_REAL_FEAT);
        if (!(e.worst <= TOL_REAL_FEAT)) {
            failed++;
            printf("FAIL parity_real %s: worst sample at %lld got %.8g want %.8g\n", name, e.worst_index,
                   e.worst_got, e.worst_want);
        }
        if (e.worst > worst) worst = e.worst;
    }

    /* batch of two: sample 0 must reproduce the single-image features */
    double batch_err = 0;
    char ipath2[2048];
    snprintf(ipath2, sizeof ipath2, "%s/%s", shared, REAL_IMAGE2);
    if (file_exists(ipath2)) {
        float *single[3];
        for (int l = 0; l < 3; l++) single[l] = tu_read(&f[l]);
        float *chw2 = malloc((size_t)6 * S * S * sizeof *chw2);
        ck_assert_ptr_nonnull(chw2);
        memcpy(chw2, chw, (size_t)3 * S * S * sizeof *chw2);
        TU_CHECK_STATUS(stfpm_image_load_tensor(ipath2, S, chw2 + (size_t)3 * S * S));
        stfpm_tensor x2 = tu_tensor(chw2, 2, 3, S, S);
        TU_CHECK_STATUS(stfpm_resnet_forward(ctx, teacher, &x2, STFPM_BN_EVAL, 3, f));
        for (int l = 0; l < 3; l++) {
            float *both = tu_read(&f[l]);
            size_t n1 = stfpm_tensor_numel(&f[l]) / 2;
            double ss = 0, md = 0;
            for (size_t i = 0; i < n1; i++) {
                ss += (double)single[l][i] * single[l][i];
                md = fmax(md, fabs((double)both[i] - single[l][i]));
            }
            batch_err = fmax(batch_err, md / sqrt(ss / (double)n1));
            free(both);
            free(single[l]);
        }
        free(chw2);
        stfpm_tensor_free(ctx, &x2);
        printf("parity_real: batch of two vs single image, max |diff| / RMS %.3g (tol %.0e)\n", batch_err, TOL_BATCH);
    } else {
        tu_skip_part("parity_real: batch-of-two check not run because %s is absent", ipath2);
    }
    printf("parity_real: teacher forward %.2f s, total %.1f s, max feature error %.3g\n", t_fwd,
           parity_now() - t0, worst);
    fflush(stdout);

    ck_assert_msg(max_in <= one_level * 1.01 + 1e-6,
                  "preprocessed input differs from torchvision by %.3g (> 1 grey level) at a sample", max_in);
    ck_assert_msg(level_diff <= (long)(1e-3 * 3 * S * S),
                  "resized image differs from torchvision's in %ld rows (%ld grey levels in total, max %ld in a row)",
                  rows_diff, level_diff, max_row_diff);
    ck_assert_msg(ein.sum <= 1e-3, "preprocessed input: sum differs from torchvision's (error %.3g)", ein.sum);
    ck_assert_msg(failed == 0, "%d feature levels out of tolerance %.0e (listed above)", failed, TOL_REAL_FEAT);
    ck_assert_msg(batch_err <= TOL_BATCH, "batch of two: sample 0 differs from the single-image run by %.3g of RMS",
                  batch_err);

    free(chw);
    stfpm_tensor_free(ctx, &x);
    stfpm_resnet_free(ctx, teacher);
}
END_TEST

int main(void) {
    Suite *s = suite_create("parity_real");
    TCase *tc = tcase_create("imagenet_teacher");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_parity_real_teacher);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
