/* Time of the pixel metrics (pixel AUROC, AU-PRO, paper PRO) on a test set the size of an MVTec
 * AD category: 83 maps of 256 x 256 (5.4 M pixels), 60 of them with 1-4 elliptical defect
 * blobs. Usage: bench_metrics [n_images [size [repeats]]] */
#include "stfpm/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t g_rng = 0x243f6a8885a308d3ULL;
static double rnd(void) {   /* splitmix64 -> [0, 1) */
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return ((z ^ (z >> 31)) >> 11) * (1.0 / 9007199254740992.0);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int n_img = argc > 1 ? atoi(argv[1]) : 83, s = argc > 2 ? atoi(argv[2]) : 256;
    int reps = argc > 3 ? atoi(argv[3]) : 3;
    if (n_img < 2 || s < 4 || reps < 1) {
        fprintf(stderr, "usage: %s [n_images >= 2 [size >= 4 [repeats >= 1]]]\n", argv[0]);
        return 2;
    }
    size_t hw = (size_t)s * s;
    float *maps = malloc(hw * n_img * sizeof *maps), *img_scores = malloc(n_img * sizeof *img_scores);
    uint8_t *masks = calloc(hw * n_img, 1), *img_labels = malloc(n_img);
    const float **mp = malloc(n_img * sizeof *mp);
    const uint8_t **kp = malloc(n_img * sizeof *kp);
    if (!maps || !img_scores || !masks || !img_labels || !mp || !kp) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    int n_anom_img = n_img * 60 / 83 > 0 ? n_img * 60 / 83 : 1;
    for (int i = 0; i < n_img; i++) {
        float *m = maps + i * hw;
        uint8_t *k = masks + i * hw;
        for (size_t p = 0; p < hw; p++) m[p] = (float)(0.02 * rnd() * rnd());
        img_labels[i] = i < n_anom_img;
        int blobs = i < n_anom_img ? 1 + (int)(rnd() * 4) : 0;
        for (int b = 0; b < blobs; b++) {
            double cy = rnd() * s, cx = rnd() * s, ry = 2 + rnd() * s / 10, rx = 2 + rnd() * s / 10;
            double amp = 0.005 + 0.03 * rnd();
            for (int y = 0; y < s; y++)
                for (int x = 0; x < s; x++) {
                    double d = ((y - cy) / ry) * ((y - cy) / ry) + ((x - cx) / rx) * ((x - cx) / rx);
                    if (d <= 1) k[y * s + x] = 1;
                    if (d <= 4) m[y * s + x] += (float)(amp * exp(-d));   /* signal leaks past the mask */
                }
        }
        float mx = m[0];
        for (size_t p = 1; p < hw; p++) mx = m[p] > mx ? m[p] : mx;
        img_scores[i] = mx;
        mp[i] = m;
        kp[i] = k;
    }

    printf("pixel metrics: %d images of %d x %d = %zu pixels, %d repeats\n", n_img, s, s, hw * n_img, reps);
    stfpm_pixel_metrics r = {0};
    double best = 1e30;
    for (int rep = 0; rep < reps; rep++) {
        double t0 = now_s();
        if (stfpm_pixel_metrics_compute(mp, kp, n_img, s, s, STFPM_AUPRO_FPR_LIMIT, &r) != STFPM_OK) {
            fprintf(stderr, "stfpm_pixel_metrics_compute: %s\n", stfpm_last_error());
            return 1;
        }
        double t = now_s() - t0;
        best = t < best ? t : best;
        printf("  run %d: %.1f ms\n", rep, t * 1e3);
    }
    printf("  best %.1f ms (%.1f ns / pixel)\n", best * 1e3, best * 1e9 / (hw * n_img));
    printf("  regions %lld, anomalous pixels %lld, normal pixels %lld\n", (long long)r.n_regions,
           (long long)r.n_anomalous_pixels, (long long)r.n_normal_pixels);
    printf("  pixel AUROC %.6f  AU-PRO(0.3) %.6f  paper PRO %.6f\n", r.pixel_auroc, r.aupro, r.pro_paper);

    double auc, t0 = now_s();
    if (stfpm_auroc(img_scores, img_labels, n_img, &auc) != STFPM_OK) {
        fprintf(stderr, "stfpm_auroc: %s\n", stfpm_last_error());
        return 1;
    }
    printf("image AUROC over %d scores: %.6f (%.3f ms)\n", n_img, auc, (now_s() - t0) * 1e3);
    t0 = now_s();
    if (stfpm_auroc(maps, masks, hw * n_img, &auc) != STFPM_OK) {
        fprintf(stderr, "stfpm_auroc: %s\n", stfpm_last_error());
        return 1;
    }
    printf("stfpm_auroc over all %zu pixels: %.6f (%.1f ms)\n", hw * n_img, auc, (now_s() - t0) * 1e3);
    free(maps);
    free(img_scores);
    free(masks);
    free(img_labels);
    free(mp);
    free(kp);
    return 0;
}
