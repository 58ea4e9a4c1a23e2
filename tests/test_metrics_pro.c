/* Connected components, AU-PRO (MVTec AD definition) and the STFPM paper's PRO.
 * References: tests/ref/metrics_ref.h (scipy.ndimage.label, a direct Python loop over the
 * MVTec thresholds, the authors' evaluate.py), and brute-force C loops below (a BFS flood fill,
 * one full pass over all pixels per threshold).
 * Tolerances: 1e-4 absolute against the Python references (as the task asks; the observed
 * error is ~1e-12), 1e-9 against the brute-force C loops. */
#include "testutil.h"
#include "stfpm/metrics.h"
#include "ref/metrics_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRO_TOL 1e-4

/* ---------------------------------------------------------------------------------------- */
/* Brute-force references                                                                     */

/* 8-connected flood fill (BFS), regions numbered in raster order of their first pixel. */
static int bfs_label(const uint8_t *m, int h, int w, int32_t *lab) {
    int n = 0;
    int *queue = malloc((size_t)h * w * sizeof *queue);
    memset(lab, 0, (size_t)h * w * sizeof *lab);
    for (int p = 0; p < h * w; p++) {
        if (!m[p] || lab[p]) continue;
        lab[p] = ++n;
        int head = 0, tail = 0;
        queue[tail++] = p;
        while (head < tail) {
            int q = queue[head++], y = q / w, x = q % w;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int yy = y + dy, xx = x + dx;
                    if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
                    int r = yy * w + xx;
                    if (m[r] && !lab[r]) {
                        lab[r] = n;
                        queue[tail++] = r;
                    }
                }
        }
    }
    free(queue);
    return n;
}

typedef struct bf_regions {
    int n;            /* regions */
    int32_t *id;      /* per pixel: -1 normal, else region index */
    double *size;
} bf_regions;

static bf_regions bf_regions_make(const uint8_t *masks, int n_img, int h, int w) {
    size_t hw = (size_t)h * w;
    bf_regions r = {0, malloc(hw * n_img * sizeof(int32_t)), NULL};
    int32_t *lab = malloc(hw * sizeof *lab);
    int total = 0;
    for (int i = 0; i < n_img; i++) total += bfs_label(masks + i * hw, h, w, lab);
    r.size = calloc(total ? total : 1, sizeof(double));
    for (int i = 0; i < n_img; i++) {
        int k = bfs_label(masks + i * hw, h, w, lab);
        for (size_t p = 0; p < hw; p++) {
            r.id[i * hw + p] = lab[p] ? r.n + lab[p] - 1 : -1;
            if (lab[p]) r.size[r.n + lab[p] - 1] += 1;
        }
        r.n += k;
    }
    free(lab);
    return r;
}

static void bf_regions_free(bf_regions *r) {
    free(r->id);
    free(r->size);
}

/* FPR and PRO of the prediction "score >= t" (strict = 0) or "score > t" (strict = 1). */
static void bf_point(const float *s, size_t n, const bf_regions *r, double t, int strict, double *fpr,
                     double *pro) {
    double fp = 0, nn = 0, *hit = calloc(r->n, sizeof *hit);
    for (size_t p = 0; p < n; p++) {
        int pred = strict ? (double)s[p] > t : (double)s[p] >= t;
        if (r->id[p] < 0) {
            nn += 1;
            fp += pred;
        } else {
            hit[r->id[p]] += pred;
        }
    }
    double sum = 0;
    for (int k = 0; k < r->n; k++) sum += hit[k] / r->size[k];
    free(hit);
    *fpr = fp / nn;
    *pro = sum / r->n;
}

static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* MVTec AD: points at every distinct score plus (0,0) and (1,1); trapezoid up to limit with
 * interpolation at limit (generic_util.trapezoid), divided by limit. */
static double bf_aupro(const float *s, const uint8_t *masks, int n_img, int h, int w, double limit) {
    size_t n = (size_t)n_img * h * w;
    bf_regions r = bf_regions_make(masks, n_img, h, w);
    double *t = malloc(n * sizeof *t), *x = malloc((n + 2) * sizeof *x), *y = malloc((n + 2) * sizeof *y);
    for (size_t p = 0; p < n; p++) t[p] = s[p];
    qsort(t, n, sizeof *t, cmp_desc);
    size_t m = 0;
    x[m] = 0;
    y[m++] = 0;
    for (size_t p = 0; p < n; p++) {
        if (p > 0 && t[p] == t[p - 1]) continue;
        bf_point(s, n, &r, t[p], 0, &x[m], &y[m]);
        m++;
    }
    x[m] = 1;
    y[m++] = 1;
    double area = 0;
    for (size_t k = 1; k < m; k++) {
        if (x[k] <= limit) {
            area += 0.5 * (y[k] + y[k - 1]) * (x[k] - x[k - 1]);
        } else {
            if (x[k - 1] < limit) {
                double yi = y[k - 1] + (y[k] - y[k - 1]) * (limit - x[k - 1]) / (x[k] - x[k - 1]);
                area += 0.5 * (yi + y[k - 1]) * (limit - x[k - 1]);
            }
            break;
        }
    }
    free(t);
    free(x);
    free(y);
    bf_regions_free(&r);
    return area / limit;
}

/* gdwang08/STFPM evaluate.py pro(). */
static double bf_pro_paper(const float *s, const uint8_t *masks, int n_img, int h, int w, double limit) {
    size_t n = (size_t)n_img * h * w;
    bf_regions r = bf_regions_make(masks, n_img, h, w);
    double mx = s[0], mn = s[0];
    for (size_t p = 0; p < n; p++) {
        mx = fmax(mx, s[p]);
        mn = fmin(mn, s[p]);
    }
    double delta = (mx - mn) / 4000, fx[4000], py[4000];
    int kept = 0;
    for (int k = 0; k < 4000; k++) {
        volatile double prod = k * delta;
        double f, p;
        bf_point(s, n, &r, mx - prod, 1, &f, &p);
        if (f <= limit) {
            fx[kept] = f;
            py[kept++] = p;
        }
    }
    bf_regions_free(&r);
    double a = fx[0], b = fx[0], c = py[0], d = py[0];
    for (int k = 0; k < kept; k++) {
        a = fmin(a, fx[k]);
        b = fmax(b, fx[k]);
        c = fmin(c, py[k]);
        d = fmax(d, py[k]);
    }
    double area = 0;
    for (int k = 1; k < kept; k++)
        area += ((fx[k] - a) / (b - a) - (fx[k - 1] - a) / (b - a)) * ((py[k] - c) / (d - c) + (py[k - 1] - c) / (d - c)) / 2;
    return area;
}

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */

static stfpm_status compute(const float *maps, const uint8_t *masks, int n_img, int h, int w, double limit,
                            stfpm_pixel_metrics *m) {
    const float *mp[16];
    const uint8_t *kp[16];
    size_t hw = (size_t)h * w;
    ck_assert_int_le(n_img, 16);
    for (int i = 0; i < n_img; i++) {
        mp[i] = maps + i * hw;
        kp[i] = masks + i * hw;
    }
    return stfpm_pixel_metrics_compute(mp, kp, n_img, h, w, limit, m);
}

static int same_or_both_nan(double a, double b, double tol) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    return fabs(a - b) <= tol;
}

/* Random masks of rectangles and discs (some images left empty), scores = noise + signal,
 * quantised to `levels` values when levels > 0. */
static void make_case(uint64_t seed, int n_img, int h, int w, int levels, float *maps, uint8_t *masks) {
    size_t n = (size_t)n_img * h * w, hw = (size_t)h * w;
    float *u = malloc(64 * sizeof *u);
    tu_fill_uniform(maps, n, seed, 0.0f, 1.0f);
    memset(masks, 0, n);
    for (int i = 0; i < n_img; i++) {
        tu_fill_uniform(u, 64, seed * 31 + i, 0.0f, 1.0f);
        if (i % 3 == 2) continue;   /* a normal image */
        int blobs = 1 + (int)(u[0] * 4);
        for (int b = 0; b < blobs; b++) {
            float cy = u[1 + 4 * b] * h, cx = u[2 + 4 * b] * w, ry = 0.5f + u[3 + 4 * b] * h / 4,
                  rx = 0.5f + u[4 + 4 * b] * w / 4;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    float dy = (y - cy) / ry, dx = (x - cx) / rx;
                    if ((b % 2) ? (dy * dy + dx * dx <= 1) : (fabsf(dy) <= 1 && fabsf(dx) <= 1))
                        masks[i * hw + y * w + x] = 1;
                }
        }
    }
    for (size_t p = 0; p < n; p++) {
        if (masks[p]) maps[p] += 0.6f * maps[(p * 7 + 3) % n];
        if (levels > 0) maps[p] = floorf(maps[p] * levels) / levels;
    }
    free(u);
}

/* ---------------------------------------------------------------------------------------- */
/* Connected components                                                                       */

START_TEST(test_labels_vs_scipy) {
    for (int k = 0; k < REF_N_PIXEL_CASES; k++) {
        const ref_pixel_case *c = &ref_pixel_cases[k];
        size_t hw = (size_t)c->h * c->w;
        int32_t *lab = malloc(hw * sizeof *lab);
        for (int i = 0; i < c->n_images; i++) {
            int nr = -1;
            TU_CHECK_STATUS(stfpm_label_regions(c->masks + i * hw, c->h, c->w, lab, &nr));
            ck_assert_msg(nr == c->n_regions[i], "%s image %d: %d regions, scipy %d", c->name, i, nr, c->n_regions[i]);
            for (size_t p = 0; p < hw; p++)
                ck_assert_msg(lab[p] == c->labels[i * hw + p], "%s image %d pixel (%zu,%zu): label %d, scipy %d",
                              c->name, i, p / c->w, p % c->w, lab[p], c->labels[i * hw + p]);
        }
        free(lab);
    }
}
END_TEST

START_TEST(test_labels_patterns) {
    enum { H = 9, W = 11 };
    uint8_t m[H * W];
    int32_t lab[H * W];
    int n;
    /* checkerboard: every pixel touches its diagonal neighbours -> one region */
    for (int p = 0; p < H * W; p++) m[p] = ((p / W) + (p % W)) % 2 == 0;
    TU_CHECK_STATUS(stfpm_label_regions(m, H, W, lab, &n));
    ck_assert_int_eq(n, 1);
    /* full and empty */
    memset(m, 1, sizeof m);
    TU_CHECK_STATUS(stfpm_label_regions(m, H, W, lab, &n));
    ck_assert_int_eq(n, 1);
    memset(m, 0, sizeof m);
    TU_CHECK_STATUS(stfpm_label_regions(m, H, W, lab, &n));
    ck_assert_int_eq(n, 0);
    for (int p = 0; p < H * W; p++) ck_assert_int_eq(lab[p], 0);
    /* every other column: separate vertical stripes */
    for (int p = 0; p < H * W; p++) m[p] = (p % W) % 2 == 0;
    TU_CHECK_STATUS(stfpm_label_regions(m, H, W, lab, &n));
    ck_assert_int_eq(n, (W + 1) / 2);
    /* a "W" whose arms only join late in raster order (union-find merging of three labels) */
    memset(m, 0, sizeof m);
    for (int y = 0; y < 6; y++) m[y * W + 0] = m[y * W + 4] = m[y * W + 8] = 1;
    for (int x = 0; x <= 8; x++) m[6 * W + x] = 1;
    TU_CHECK_STATUS(stfpm_label_regions(m, H, W, lab, &n));
    ck_assert_int_eq(n, 1);
    /* random masks of several densities and shapes, against the BFS flood fill */
    const int shapes[][2] = {{H, W}, {1, 17}, {17, 1}, {23, 5}, {2, 2}};
    for (int si = 0; si < 5; si++) {
        int h = shapes[si][0], w = shapes[si][1];
        for (int dens = 1; dens <= 7; dens += 2) {
            float u[H * W * 2];
            uint8_t mm[H * W * 2];
            int32_t l1[H * W * 2], l2[H * W * 2];
            tu_fill_uniform(u, (size_t)h * w, 1000 + si * 10 + dens, 0.0f, 1.0f);
            for (int p = 0; p < h * w; p++) mm[p] = u[p] < dens / 10.0f ? (uint8_t)(1 + p % 3) : 0;
            TU_CHECK_STATUS(stfpm_label_regions(mm, h, w, l1, &n));
            int nb = bfs_label(mm, h, w, l2);
            ck_assert_msg(n == nb, "%dx%d density %d: %d regions, BFS %d", h, w, dens, n, nb);
            for (int p = 0; p < h * w; p++) ck_assert_int_eq(l1[p], l2[p]);
        }
    }
    ck_assert_int_eq(stfpm_label_regions(m, 0, W, lab, &n), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_label_regions(NULL, H, W, lab, &n), STFPM_ERR_ARG);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/* AU-PRO and paper PRO                                                                       */

START_TEST(test_pro_vs_python) {
    for (int k = 0; k < REF_N_PIXEL_CASES; k++) {
        const ref_pixel_case *c = &ref_pixel_cases[k];
        int regions = 0;
        for (int i = 0; i < c->n_images; i++) regions += c->n_regions[i];
        for (int l = 0; l < REF_N_LIMITS; l++) {
            stfpm_pixel_metrics m;
            TU_CHECK_STATUS(compute(c->maps, c->masks, c->n_images, c->h, c->w, c->limits[l], &m));
            ck_assert_int_eq(m.n_regions, regions);
            ck_assert_msg(fabs(m.aupro - c->aupro[l]) <= PRO_TOL, "%s limit %g: AU-PRO %.10f, python %.10f", c->name,
                          c->limits[l], m.aupro, c->aupro[l]);
            ck_assert_msg(same_or_both_nan(m.pro_paper, c->pro_paper[l], PRO_TOL),
                          "%s limit %g: paper PRO %.10f, python %.10f", c->name, c->limits[l], m.pro_paper,
                          c->pro_paper[l]);
        }
    }
}
END_TEST

START_TEST(test_pro_vs_bruteforce) {
    const int shapes[][3] = {{2, 20, 24}, {3, 9, 7}, {1, 31, 17}, {4, 1, 13}, {2, 13, 1}};
    const double limits[] = {0.3, 0.05, 0.5, 1.0};
    for (int si = 0; si < 5; si++) {
        int ni = shapes[si][0], h = shapes[si][1], w = shapes[si][2];
        size_t n = (size_t)ni * h * w;
        float *maps = malloc(n * sizeof *maps);
        uint8_t *masks = malloc(n);
        for (int levels = 0; levels <= 8; levels += 8) {   /* continuous, then 8 levels */
            make_case(50 + si, ni, h, w, levels, maps, masks);
            int anom = 0;
            for (size_t p = 0; p < n; p++) anom += masks[p] != 0;
            if (anom == 0 || anom == (int)n) masks[0] = !masks[0];   /* keep both classes */
            for (int l = 0; l < 4; l++) {
                stfpm_pixel_metrics m;
                TU_CHECK_STATUS(compute(maps, masks, ni, h, w, limits[l], &m));
                double a = bf_aupro(maps, masks, ni, h, w, limits[l]);
                double b = bf_pro_paper(maps, masks, ni, h, w, limits[l]);
                ck_assert_msg(fabs(m.aupro - a) <= 1e-9, "%dx%dx%d levels %d limit %g: AU-PRO %.12f, brute %.12f", ni,
                              h, w, levels, limits[l], m.aupro, a);
                ck_assert_msg(same_or_both_nan(m.pro_paper, b, 1e-9),
                              "%dx%dx%d levels %d limit %g: paper PRO %.12f, brute %.12f", ni, h, w, levels,
                              limits[l], m.pro_paper, b);
            }
        }
        free(maps);
        free(masks);
    }
}
END_TEST

START_TEST(test_pro_image_order_invariant) {
    const ref_pixel_case *c = &ref_pixel_cases[0];
    size_t hw = (size_t)c->h * c->w;
    const float *mp[8], *rp[8];
    const uint8_t *kp[8], *rk[8];
    for (int i = 0; i < c->n_images; i++) {
        mp[i] = c->maps + i * hw;
        kp[i] = c->masks + i * hw;
        rp[c->n_images - 1 - i] = mp[i];
        rk[c->n_images - 1 - i] = kp[i];
    }
    stfpm_pixel_metrics a, b;
    TU_CHECK_STATUS(stfpm_pixel_metrics_compute(mp, kp, c->n_images, c->h, c->w, 0.3, &a));
    TU_CHECK_STATUS(stfpm_pixel_metrics_compute(rp, rk, c->n_images, c->h, c->w, 0.3, &b));
    ck_assert(a.pixel_auroc == b.pixel_auroc);
    ck_assert(fabs(a.aupro - b.aupro) <= 1e-12);
    ck_assert(fabs(a.pro_paper - b.pro_paper) <= 1e-12);
}
END_TEST

START_TEST(test_pro_edge_values) {
    enum { NI = 3, H = 10, W = 12, N = NI * H * W };
    float maps[N];
    uint8_t masks[N];
    make_case(7, NI, H, W, 0, maps, masks);
    stfpm_pixel_metrics m;
    /* perfect detector: every anomalous pixel above every normal one */
    float perfect[N], inverse[N], flat[N];
    for (int p = 0; p < N; p++) {
        perfect[p] = masks[p] ? 2.0f + maps[p] : maps[p];
        inverse[p] = -perfect[p];
        flat[p] = 0.25f;
    }
    TU_CHECK_STATUS(compute(perfect, masks, NI, H, W, 0.3, &m));
    ck_assert_msg(m.pixel_auroc == 1.0, "perfect: pixel AUROC %.17g", m.pixel_auroc);
    ck_assert_msg(fabs(m.aupro - 1.0) <= 1e-12, "perfect: AU-PRO %.17g", m.aupro);
    ck_assert_msg(fabs(m.pro_paper - 1.0) <= 1e-12, "perfect: paper PRO %.17g", m.pro_paper);
    TU_CHECK_STATUS(compute(inverse, masks, NI, H, W, 0.3, &m));
    ck_assert_msg(m.pixel_auroc == 0.0, "inverse: pixel AUROC %.17g", m.pixel_auroc);
    ck_assert_msg(m.aupro == 0.0, "inverse: AU-PRO %.17g", m.aupro);
    /* all scores equal: one threshold, the curve (0,0)-(1,1): AU-PRO = limit / 2; the paper's
     * rescaling divides by zero (NaN, as in the authors' code) */
    const double lims[] = {0.3, 0.1, 1.0};
    for (int l = 0; l < 3; l++) {
        TU_CHECK_STATUS(compute(flat, masks, NI, H, W, lims[l], &m));
        ck_assert_msg(m.pixel_auroc == 0.5, "flat: pixel AUROC %.17g", m.pixel_auroc);
        ck_assert_msg(fabs(m.aupro - lims[l] / 2) <= 1e-12, "flat limit %g: AU-PRO %.17g", lims[l], m.aupro);
        ck_assert_msg(isnan(m.pro_paper), "flat: paper PRO %.17g, want NaN", m.pro_paper);
    }
}
END_TEST

START_TEST(test_pro_errors) {
    enum { H = 4, W = 5, N = H * W };
    float maps[N];
    uint8_t none[N] = {0}, all[N], some[N] = {0};
    memset(all, 1, sizeof all);
    some[7] = 1;
    tu_fill_uniform(maps, N, 3, 0.0f, 1.0f);
    stfpm_pixel_metrics m;
    ck_assert_int_eq(compute(maps, none, 1, H, W, 0.3, &m), STFPM_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(stfpm_last_error(), "one class"));
    ck_assert_int_eq(compute(maps, all, 1, H, W, 0.3, &m), STFPM_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(stfpm_last_error(), "one class"));
    ck_assert_int_eq(compute(maps, some, 1, H, W, 0.0, &m), STFPM_ERR_ARG);
    ck_assert_int_eq(compute(maps, some, 1, H, W, 1.5, &m), STFPM_ERR_ARG);
    ck_assert_int_eq(compute(maps, some, 1, H, W, NAN, &m), STFPM_ERR_ARG);
    ck_assert_int_eq(compute(maps, some, 1, H, 0, 0.3, &m), STFPM_ERR_ARG);
    ck_assert_int_eq(compute(maps, some, 1, H, W, 0.3, NULL), STFPM_ERR_ARG);
    const float *mp[2] = {maps, NULL};
    const uint8_t *kp[2] = {some, some};
    ck_assert_int_eq(stfpm_pixel_metrics_compute(mp, kp, 2, H, W, 0.3, &m), STFPM_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(stfpm_last_error(), "image 1"));
    ck_assert_int_eq(stfpm_pixel_metrics_compute(mp, kp, 0, H, W, 0.3, &m), STFPM_ERR_ARG);
    maps[13] = NAN;
    ck_assert_int_eq(compute(maps, some, 1, H, W, 0.3, &m), STFPM_ERR_NAN);
    ck_assert_ptr_nonnull(strstr(stfpm_last_error(), "(2, 3)"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("metrics_pro");
    TCase *tc = tcase_create("pro");
    tcase_add_test(tc, test_labels_vs_scipy);
    tcase_add_test(tc, test_labels_patterns);
    tcase_add_test(tc, test_pro_vs_python);
    tcase_add_test(tc, test_pro_vs_bruteforce);
    tcase_add_test(tc, test_pro_image_order_invariant);
    tcase_add_test(tc, test_pro_edge_values);
    tcase_add_test(tc, test_pro_errors);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
