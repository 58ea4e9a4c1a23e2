/* Evaluation metrics (SPEC section 6): AUROC, connected components, AU-PRO, paper PRO.
 *
 * Every metric is a sweep over all values sorted by score, highest first. Each value is packed
 * into one 64-bit item: the upper 32 bits hold an order key of the score (the float's bits
 * mapped so that unsigned order = descending score order), the lower 32 bits a tag (the label
 * for AUROC; 0 = normal pixel or 1 + global region index for pixels). One LSD radix sort on the
 * key (4 passes of 8 bits) orders them; a group of equal keys is one threshold. */
#include "stfpm/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* Sort keys                                                                                  */

/* Key with unsigned order = descending score order. -0.0 is mapped to +0.0 first. */
static inline uint32_t score_key(float s) {
    float f = s + 0.0f;   /* -0.0 + 0.0 = +0.0 */
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t asc = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ~asc;
}

static inline float key_score(uint32_t key) {
    uint32_t asc = ~key;
    uint32_t u = (asc & 0x80000000u) ? (asc & 0x7fffffffu) : ~asc;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t item_key(uint64_t it) { return (uint32_t)(it >> 32); }
static inline uint32_t item_tag(uint64_t it) { return (uint32_t)it; }

/* Stable LSD radix sort of a[0..n) by the upper 32 bits; tmp has room for n items.
 * Returns the array holding the result (a or tmp). */
static uint64_t *radix_sort_by_key(uint64_t *a, uint64_t *tmp, size_t n) {
    size_t count[4][256];
    memset(count, 0, sizeof count);
    for (size_t i = 0; i < n; i++) {
        uint32_t k = item_key(a[i]);
        count[0][k & 255]++;
        count[1][(k >> 8) & 255]++;
        count[2][(k >> 16) & 255]++;
        count[3][k >> 24]++;
    }
    for (int pass = 0; pass < 4; pass++) {
        int shift = 32 + 8 * pass;
        size_t *c = count[pass];
        if (n == 0 || c[(a[0] >> shift) & 255] == n) continue;   /* one bucket: nothing moves */
        size_t sum = 0;
        for (int b = 0; b < 256; b++) {
            size_t t = c[b];
            c[b] = sum;
            sum += t;
        }
        for (size_t i = 0; i < n; i++) tmp[c[(a[i] >> shift) & 255]++] = a[i];
        uint64_t *t = a;
        a = tmp;
        tmp = t;
    }
    return a;
}

/* ---------------------------------------------------------------------------------------- */
/* AUROC                                                                                      */

stfpm_status stfpm_auroc(const float *scores, const uint8_t *labels, size_t n, double *auc) {
    if (!scores || !labels || !auc) return stfpm_set_error(STFPM_ERR_ARG, "stfpm_auroc: NULL argument");
    if (n == 0) return stfpm_set_error(STFPM_ERR_ARG, "stfpm_auroc: no scores (n = 0)");
    if (n >= UINT32_MAX)
        return stfpm_set_error(STFPM_ERR_ARG, "stfpm_auroc: n = %zu scores exceeds 2^32 - 1", n);
    uint64_t *a = malloc(n * sizeof *a), *tmp = malloc(n * sizeof *tmp);
    if (!a || !tmp) {
        free(a);
        free(tmp);
        return stfpm_set_error(STFPM_ERR_OOM, "stfpm_auroc: cannot allocate the sort buffers for %zu scores", n);
    }
    uint64_t n_pos = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(scores[i])) {
            free(a);
            free(tmp);
            return stfpm_set_error(STFPM_ERR_NAN, "stfpm_auroc: score %zu is %g", i, (double)scores[i]);
        }
        uint32_t pos = labels[i] != 0;
        n_pos += pos;
        a[i] = ((uint64_t)score_key(scores[i]) << 32) | pos;
    }
    uint64_t n_neg = n - n_pos;
    if (n_pos == 0 || n_neg == 0) {
        free(a);
        free(tmp);
        return stfpm_set_error(STFPM_ERR_ARG,
                               "stfpm_auroc: only one class present (%llu positive, %llu negative "
                               "of %zu); the ROC AUC is undefined",
                               (unsigned long long)n_pos, (unsigned long long)n_neg, n);
    }
    const uint64_t *s = radix_sort_by_key(a, tmp, n);
    /* Trapezoid over the ROC points of each distinct threshold, doubled and in counts:
     * sum over groups of dFP * (TP_before + TP_after); exact in 64-bit integers. */
    uint64_t tp = 0, fp = 0, area2 = 0;
    for (size_t i = 0; i < n;) {
        uint32_t key = item_key(s[i]);
        uint64_t tp0 = tp, fp0 = fp;
        for (; i < n && item_key(s[i]) == key; i++) {
            if (item_tag(s[i])) tp++;
            else fp++;
        }
        area2 += (fp - fp0) * (tp + tp0);
    }
    *auc = (double)area2 / (2.0 * (double)n_pos * (double)n_neg);
    free(a);
    free(tmp);
    return STFPM_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Connected components, 8-connectivity (union-find, the smaller index is the root)           */

static int32_t uf_find(int32_t *parent, int32_t i) {
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];   /* path halving */
        i = parent[i];
    }
    return i;
}

static void uf_union(int32_t *parent, int32_t a, int32_t b) {
    a = uf_find(parent, a);
    b = uf_find(parent, b);
    if (a < b) parent[b] = a;
    else if (b < a) parent[a] = b;
}

/* parent: scratch of h*w entries. */
static void label_regions(const uint8_t *mask, int h, int w, int32_t *labels, int32_t *parent,
                          int *n_regions) {
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            int32_t i = y * w + x;
            if (!mask[i]) continue;
            parent[i] = i;
            /* already visited neighbours: W, NW, N, NE */
            if (x > 0 && mask[i - 1]) uf_union(parent, i, i - 1);
            if (y > 0) {
                if (x > 0 && mask[i - w - 1]) uf_union(parent, i, i - w - 1);
                if (mask[i - w]) uf_union(parent, i, i - w);
                if (x + 1 < w && mask[i - w + 1]) uf_union(parent, i, i - w + 1);
            }
        }
    }
    /* The root of a component is its smallest index = its first pixel in raster order, so
     * numbering roots as they are met numbers regions in raster order of their first pixel. */
    int n = 0;
    for (int32_t i = 0; i < (int32_t)h * w; i++) {
        if (!mask[i]) {
            labels[i] = 0;
            continue;
        }
        int32_t r = uf_find(parent, i);
        labels[i] = (r == i) ? ++n : labels[r];
    }
    *n_regions = n;
}

stfpm_status stfpm_label_regions(const uint8_t *mask, int h, int w, int32_t *labels, int *n_regions) {
    if (!mask || !labels || !n_regions)
        return stfpm_set_error(STFPM_ERR_ARG, "stfpm_label_regions: NULL argument");
    if (h <= 0 || w <= 0 || (int64_t)h * w > INT32_MAX)
        return stfpm_set_error(STFPM_ERR_ARG, "stfpm_label_regions: invalid mask size %d x %d", h, w);
    int32_t *parent = malloc((size_t)h * w * sizeof *parent);
    if (!parent)
        return stfpm_set_error(STFPM_ERR_OOM, "stfpm_label_regions: cannot allocate %d x %d labels", h, w);
    label_regions(mask, h, w, labels, parent, n_regions);
    free(parent);
    return STFPM_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Pixel metrics                                                                              */

/* State of the sweep: counts of pixels predicted anomalous so far. */
typedef struct sweep {
    uint64_t fp, tp;        /* predicted normal pixels, predicted anomalous pixels */
    double overlap_sum;     /* sum over regions of (hit pixels / region size) */
} sweep;

static inline void sweep_take(sweep *st, uint64_t item, const double *inv_size) {
    uint32_t tag = item_tag(item);
    if (tag == 0) {
        st->fp++;
    } else {
        st->tp++;
        st->overlap_sum += inv_size[tag - 1];
    }
}

/* Paper PRO (gdwang08/STFPM evaluate.py, pro()): see metrics.h. */
static double pro_paper_auc(const uint64_t *s, size_t n, const double *inv_size, double n_regions,
                            double n_normal, double fpr_limit, double *fpr, double *pro) {
    const int steps = STFPM_PRO_PAPER_STEPS;
    double mx = key_score(item_key(s[0])), mn = key_score(item_key(s[n - 1]));
    double delta = (mx - mn) / steps;
    sweep st = {0};
    size_t i = 0;
    int kept = 0;
    for (int k = 0; k < steps; k++) {
        /* volatile: the same two roundings as numpy's max_th - step * delta (no FMA contraction) */
        volatile double prod = (double)k * delta;
        double thr = mx - prod;
        for (; i < n && (double)key_score(item_key(s[i])) > thr; i++) sweep_take(&st, s[i], inv_size);
        double f = (double)st.fp / n_normal;
        if (f <= fpr_limit) {      /* fpr is non-decreasing in k, so the kept points are a prefix */
            fpr[kept] = f;
            pro[kept] = st.overlap_sum / n_regions;
            kept++;
        }
    }
    if (kept < 2) return NAN;
    double f_lo = fpr[0], f_hi = fpr[0], p_lo = pro[0], p_hi = pro[0];
    for (int k = 1; k < kept; k++) {
        f_lo = f_lo < fpr[k] ? f_lo : fpr[k];
        f_hi = f_hi > fpr[k] ? f_hi : fpr[k];
        p_lo = p_lo < pro[k] ? p_lo : pro[k];
        p_hi = p_hi > pro[k] ? p_hi : pro[k];
    }
    if (!(f_hi > f_lo) || !(p_hi > p_lo)) return NAN;
    double area = 0;
    for (int k = 1; k < kept; k++) {
        double x0 = (fpr[k - 1] - f_lo) / (f_hi - f_lo), x1 = (fpr[k] - f_lo) / (f_hi - f_lo);
        double y0 = (pro[k - 1] - p_lo) / (p_hi - p_lo), y1 = (pro[k] - p_lo) / (p_hi - p_lo);
        area += (x1 - x0) * (y0 + y1) * 0.5;
    }
    return area;
}

/* Trapezoid segment (x0,y0)-(x1,y1) of a curve integrated up to limit (MVTec trapezoid()):
 * a whole segment when x1 <= limit, else the part up to limit with y interpolated, after
 * which *done is set. */
static void pro_segment(double x0, double y0, double x1, double y1, double limit, double *area,
                        int *done) {
    if (*done) return;
    if (x1 <= limit) {
        *area += 0.5 * (y0 + y1) * (x1 - x0);
        return;
    }
    if (x0 < limit) {
        double yi = y0 + (y1 - y0) * (limit - x0) / (x1 - x0);
        *area += 0.5 * (yi + y0) * (limit - x0);
    }
    *done = 1;
}

stfpm_status stfpm_pixel_metrics_compute(const float *const *maps, const uint8_t *const *masks,
                                         int n_images, int h, int w, double fpr_limit,
                                         stfpm_pixel_metrics *out) {
    if (!maps || !masks || !out)
        return stfpm_set_error(STFPM_ERR_ARG, "stfpm_pixel_metrics_compute: NULL argument");
    if (n_images <= 0 || h <= 0 || w <= 0)
        return stfpm_set_error(STFPM_ERR_ARG, "stfpm_pixel_metrics_compute: invalid shape %d images of %d x %d",
                               n_images, h, w);
    if (!(fpr_limit > 0.0 && fpr_limit <= 1.0))
        return stfpm_set_error(STFPM_ERR_ARG, "stfpm_pixel_metrics_compute: fpr_limit %g is not in (0, 1]",
                               fpr_limit);
    size_t hw = (size_t)h * w, n = hw * (size_t)n_images;
    if (hw > INT32_MAX || n >= UINT32_MAX)
        return stfpm_set_error(STFPM_ERR_ARG, "stfpm_pixel_metrics_compute: %d images of %d x %d exceed 2^32 - 1 pixels",
                               n_images, h, w);
    for (int i = 0; i < n_images; i++)
        if (!maps[i] || !masks[i])
            return stfpm_set_error(STFPM_ERR_ARG, "stfpm_pixel_metrics_compute: map or mask of image %d is NULL", i);

    stfpm_status st = STFPM_OK;
    uint64_t *a = malloc(n * sizeof *a), *tmp = malloc(n * sizeof *tmp);
    int32_t *lab = malloc(hw * sizeof *lab), *parent = malloc(hw * sizeof *parent);
    uint32_t *region_size = NULL;
    double *inv_size = NULL, *curve = NULL;
    size_t n_regions = 0, cap = 0;
    if (!a || !tmp || !lab || !parent) {
        st = stfpm_set_error(STFPM_ERR_OOM, "stfpm_pixel_metrics_compute: cannot allocate buffers for %zu pixels", n);
        goto done;
    }

    /* Regions of every mask get consecutive global indices; tag = 1 + global index. */
    uint64_t n_anom = 0;
    for (int img = 0; img < n_images; img++) {
        const float *m = maps[img];
        int nr;
        label_regions(masks[img], h, w, lab, parent, &nr);
        if (n_regions + nr > cap) {
            size_t nc = cap ? cap : 64;
            while (nc < n_regions + nr) nc *= 2;
            uint32_t *p = realloc(region_size, nc * sizeof *p);
            if (!p) {
                st = stfpm_set_error(STFPM_ERR_OOM, "stfpm_pixel_metrics_compute: cannot allocate %zu region sizes", nc);
                goto done;
            }
            region_size = p;
            cap = nc;
        }
        if (nr > 0) memset(region_size + n_regions, 0, (size_t)nr * sizeof *region_size);
        uint64_t *dst = a + (size_t)img * hw;
        for (size_t p = 0; p < hw; p++) {
            if (!isfinite(m[p])) {
                st = stfpm_set_error(STFPM_ERR_NAN, "stfpm_pixel_metrics_compute: image %d pixel (%zu, %zu) has score %g",
                                     img, p / w, p % w, (double)m[p]);
                goto done;
            }
            uint32_t tag = 0;
            if (lab[p]) {
                tag = (uint32_t)(n_regions + lab[p]);
                region_size[tag - 1]++;
                n_anom++;
            }
            dst[p] = ((uint64_t)score_key(m[p]) << 32) | tag;
        }
        n_regions += nr;
    }
    uint64_t n_norm = n - n_anom;
    if (n_anom == 0 || n_norm == 0) {
        st = stfpm_set_error(STFPM_ERR_ARG,
                             "stfpm_pixel_metrics_compute: only one class present (%llu anomalous, %llu normal "
                             "pixels); pixel AUROC and PRO are undefined",
                             (unsigned long long)n_anom, (unsigned long long)n_norm);
        goto done;
    }
    inv_size = malloc(n_regions * sizeof *inv_size);
    curve = malloc(2 * STFPM_PRO_PAPER_STEPS * sizeof *curve);
    if (!inv_size || !curve) {
        st = stfpm_set_error(STFPM_ERR_OOM, "stfpm_pixel_metrics_compute: cannot allocate %zu region weights", n_regions);
        goto done;
    }
    for (size_t r = 0; r < n_regions; r++) inv_size[r] = 1.0 / region_size[r];

    const uint64_t *s = radix_sort_by_key(a, tmp, n);

    /* One sweep over the distinct thresholds: ROC AUC (integer trapezoid) and AU-PRO. */
    sweep sw = {0};
    uint64_t area2 = 0;
    double pro_area = 0, x0 = 0, y0 = 0, dn = (double)n_norm, dr = (double)n_regions;
    int pro_done = 0;
    for (size_t i = 0; i < n;) {
        uint32_t key = item_key(s[i]);
        uint64_t tp0 = sw.tp, fp0 = sw.fp;
        for (; i < n && item_key(s[i]) == key; i++) sweep_take(&sw, s[i], inv_size);
        area2 += (sw.fp - fp0) * (sw.tp + tp0);
        double x1 = fmin((double)sw.fp / dn, 1.0), y1 = fmin(sw.overlap_sum / dr, 1.0);
        pro_segment(x0, y0, x1, y1, fpr_limit, &pro_area, &pro_done);
        x0 = x1;
        y0 = y1;
    }
    pro_segment(x0, y0, 1.0, 1.0, fpr_limit, &pro_area, &pro_done);   /* MVTec's closing (1, 1) */

    out->pixel_auroc = (double)area2 / (2.0 * (double)n_anom * dn);
    out->aupro = pro_area / fpr_limit;
    out->pro_paper = pro_paper_auc(s, n, inv_size, dr, dn, fpr_limit, curve, curve + STFPM_PRO_PAPER_STEPS);
    out->n_regions = (int64_t)n_regions;
    out->n_normal_pixels = (int64_t)n_norm;
    out->n_anomalous_pixels = (int64_t)n_anom;

done:
    free(a);
    free(tmp);
    free(lab);
    free(parent);
    free(region_size);
    free(inv_size);
    free(curve);
    return st;
}
