/* Evaluation metrics (SPEC section 6), computed on the host from plain arrays.
 *
 * Conventions shared by every function here:
 * - Scores are float32 and must be finite (NaN / Inf -> STFPM_ERR_NAN). -0.0 and +0.0 are the
 *   same score. Labels and masks are uint8: 0 = normal, any non-zero value = anomalous.
 * - Ties are handled exactly: every curve has one point per distinct score value, so results do
 *   not depend on the order of the input.
 * - Invalid input (NULL pointers, empty input, only one class present) -> STFPM_ERR_ARG;
 *   allocation failure -> STFPM_ERR_OOM. The message names the cause.
 * - Cost: one sort of all values (radix sort, O(n)) plus linear sweeps; memory about 16 bytes
 *   per pixel on top of the inputs. 83 x 256 x 256 pixels take a fraction of a second.
 *
 * Usage: stfpm_auroc(scores, labels, n, &auc) for image scores; stfpm_pixel_metrics_compute over
 * the anomaly maps and masks of a test split for pixel AUROC, AU-PRO and the paper's PRO in one
 * pass (stfpm_test calls both). No context is needed. */
#ifndef STFPM_METRICS_H
#define STFPM_METRICS_H

#include "stfpm/stfpm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of equally spaced thresholds of the STFPM paper's PRO protocol. */
#define STFPM_PRO_PAPER_STEPS 4000
/* Default FPR integration limit of AU-PRO (and FPR cut of the paper's PRO). */
#define STFPM_AUPRO_FPR_LIMIT 0.3

/* ROC AUC of scores against binary labels (label != 0 = positive / anomalous): the trapezoid
 * over the ROC points of all distinct thresholds (prediction "score >= threshold"), which is
 * the value scikit-learn's roc_auc_score returns. Computed with exact integer sums. All scores
 * equal -> 0.5. Fewer than one positive and one negative -> STFPM_ERR_ARG. */
stfpm_status stfpm_auroc(const float *scores, const uint8_t *labels, size_t n, double *auc);

/* Connected components of a binary mask (h x w, row-major, non-zero = foreground) with
 * 8-connectivity (scipy.ndimage.label with a 3x3 structure of ones, skimage connectivity=2).
 * labels[h*w] receives 0 for background and 1..n for the regions, numbered in raster order
 * of each region's first pixel; *n_regions receives n. */
stfpm_status stfpm_label_regions(const uint8_t *mask, int h, int w, int32_t *labels,
                                 int *n_regions);

typedef struct stfpm_pixel_metrics {
    /* ROC AUC over every pixel of every image (mask != 0 = positive). */
    double pixel_auroc;
    /* AU-PRO, MVTec AD definition: curve points (FPR, PRO) at every distinct score t with
     * prediction "score >= t", plus (0,0) and (1,1); FPR = predicted normal pixels / all
     * normal pixels (mask == 0, every image, anomalous images included); PRO = mean over all
     * regions of all images (8-connected components of each mask) of the fraction of the
     * region's pixels predicted. Integrated over FPR in [0, fpr_limit] with the trapezoid
     * rule, the curve linearly interpolated at exactly fpr_limit, divided by fpr_limit. */
    double aupro;
    /* PRO as the STFPM authors' evaluate.py computed it (labelled "paper PRO" when printed):
     * thresholds t_k = max - k * (max - min) / 4000 for k = 0..3999 (computed in double from the
     * float scores; min itself is never a threshold), prediction "score > t_k" (strict), FPR
     * and PRO as above; the points with FPR <= fpr_limit are kept, FPR and PRO are each
     * min-max rescaled to [0, 1] over the kept points, AUC by the trapezoid rule in threshold
     * order (FPR non-decreasing). It inflates the value. NaN when the rescaling divides by
     * zero (all kept points share one FPR or one PRO value, e.g. all scores equal or a
     * perfect detector whose normal pixels share one score), exactly as the authors' code. */
    double pro_paper;
    int64_t n_regions;        /* ground-truth regions over all images */
    int64_t n_normal_pixels;  /* pixels with mask == 0 */
    int64_t n_anomalous_pixels;
} stfpm_pixel_metrics;

/* All pixel-level metrics of a test set of n_images anomaly maps of h x w (maps[i], row-major)
 * with their ground-truth masks (masks[i], same shape; an all-zero mask = normal image).
 * fpr_limit in (0, 1] is the integration limit of AU-PRO and the FPR cut of the paper's PRO
 * (use STFPM_AUPRO_FPR_LIMIT = 0.3). The pixel count must be below 2^32 - 1. Needs at least one
 * normal and one anomalous pixel (STFPM_ERR_ARG otherwise). */
stfpm_status stfpm_pixel_metrics_compute(const float *const *maps, const uint8_t *const *masks,
                                         int n_images, int h, int w, double fpr_limit,
                                         stfpm_pixel_metrics *out);

#ifdef __cplusplus
}
#endif
#endif
