/* HTML reports: the test report (stfpm test --report DIR: metrics beside the paper's, ROC and
 * PRO curves, score histograms with the threshold, a gallery of the worst and typical images)
 * and the training report (RUN/report.html: the loss curves per epoch with the best epoch).
 *
 * Each page is one self-contained HTML file: inline CSS, charts as inline SVG, no script and
 * nothing fetched from the network; the gallery's PNGs sit next to it and are referenced by
 * relative paths. The curves are recomputed here from the same scores, maps and masks as the
 * metrics (one sweep over all pixels sorted by score, highest first; SPEC section 6), then
 * thinned to what a chart can show: a point is kept when it is at least half a pixel of the
 * chart away from the previous one. Every file is written atomically (temporary file, flush,
 * rename), the gallery before the page, so a page never refers to a missing image. */
#include "stfpm/pipeline.h"
#include "stfpm/image.h"
#include "stfpm/metrics.h"
#include "fsutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* The paper's numbers                                                                         */

/* STFPM with a ResNet-18 teacher at 256 x 256, from the paper's tables (Wang et al., "Student-
 * Teacher Feature Pyramid Matching for Anomaly Detection", BMVC 2021), as docs/SPEC.md section 8
 * lists them. NAN: not given there. The paper reports no AU-PRO of the MVTec AD definition; its
 * PRO is the authors' protocol ("PRO (paper protocol)" here). Add a category only with its
 * source in docs/SPEC.md. */
typedef struct paper_row {
    const char *category;
    double image_auroc, pixel_auroc, pro;
} paper_row;

static const paper_row PAPER_MEAN = {"mean over the 15 categories", 0.955, 0.970, 0.921};
static const paper_row PAPER_CATEGORIES[] = {
    {"bottle", NAN, 0.988, 0.951},
};

/* The 15 categories of MVTec AD (Bergmann et al., CVPR 2019). */
static const char *const MVTEC_CATEGORIES[] = {"bottle",   "cable",      "capsule", "carpet",     "grid",
                                               "hazelnut", "leather",    "metal_nut", "pill",     "screw",
                                               "tile",     "toothbrush", "transistor", "wood",    "zipper"};

/* The MVTec AD category a data folder holds, from its name (".../mvtec_ad/bottle/" -> "bottle"),
 * or NULL. */
static const char *mvtec_category(const char *data_dir, char *buf, size_t n) {
    if (!data_dir) return NULL;
    size_t len = strlen(data_dir);
    while (len > 1 && data_dir[len - 1] == '/') len--;
    size_t start = len;
    while (start > 0 && data_dir[start - 1] != '/') start--;
    snprintf(buf, n, "%.*s", (int)(len - start), data_dir + start);
    for (size_t i = 0; i < sizeof MVTEC_CATEGORIES / sizeof MVTEC_CATEGORIES[0]; i++)
        if (strcmp(buf, MVTEC_CATEGORIES[i]) == 0) return MVTEC_CATEGORIES[i];
    return NULL;
}

static const paper_row *paper_category(const char *category) {
    for (size_t i = 0; category && i < sizeof PAPER_CATEGORIES / sizeof PAPER_CATEGORIES[0]; i++)
        if (strcmp(PAPER_CATEGORIES[i].category, category) == 0) return &PAPER_CATEGORIES[i];
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Text                                                                                        */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one. */
static int utf8_len(const unsigned char *s) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    for (int k = 1; k < n; k++)
        if ((s[k] & 0xc0) != 0x80) return 0;
    if (n == 3 && ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f))) return 0;   /* overlong, surrogate */
    if (n == 4 && ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))) return 0;
    return n;
}

/* Text as HTML character data or attribute value: markup characters escaped; bytes that are not
 * UTF-8 (file names are bytes) and control characters shown as \xNN. */
static void put_esc(stfpm_strbuf *b, const char *text) {
    const unsigned char *s = (const unsigned char *)(text ? text : "");
    while (*s) {
        int n = utf8_len(s);
        if (n == 0 || (n == 1 && (*s < 0x20 || *s == 0x7f))) {
            stfpm_strbuf_printf(b, "\\x%02X", *s);
            s++;
            continue;
        }
        switch (*s) {
        case '&': stfpm_strbuf_puts(b, "&amp;"); break;
        case '<': stfpm_strbuf_puts(b, "&lt;"); break;
        case '>': stfpm_strbuf_puts(b, "&gt;"); break;
        case '"': stfpm_strbuf_puts(b, "&quot;"); break;
        case '\'': stfpm_strbuf_puts(b, "&#39;"); break;
        default: stfpm_strbuf_add(b, (const char *)s, (size_t)n);
        }
        s += n;
    }
}

/* A metric with the given decimals, or "—" when it is unknown. */
static void put_value(stfpm_strbuf *b, double v, int decimals) {
    if (isfinite(v)) stfpm_strbuf_printf(b, "%.*f", decimals, v);
    else stfpm_strbuf_puts(b, "\xe2\x80\x94");
}

/* A number as a chart label: as many decimals as the tick step needs. */
static void fmt_tick(char *out, size_t n, double v, double step) {
    int dec = step > 0 ? (int)ceil(-log10(step) - 1e-9) : 0;
    if (dec < 0) dec = 0;
    if (fabs(v) < step * 1e-6) v = 0;
    if (dec > 6 || fabs(v) >= 1e6) snprintf(out, n, "%.3g", v);
    else snprintf(out, n, "%.*f", dec, v);
}

static const char *PAGE_CSS =
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:0;"
    "background:#f6f7f9;color:#1d2330;line-height:1.45}"
    "main{max-width:1140px;margin:0 auto;padding:24px 28px 48px}"
    "h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.2em;margin:32px 0 10px;padding-bottom:4px;"
    "border-bottom:1px solid #d5d9e0}h3{font-size:1em;margin:20px 0 8px}"
    "p.meta{color:#5a6272;margin:2px 0;font-size:.92em}code{font-size:.92em;word-break:break-all}"
    "table{border-collapse:collapse;background:#fff;margin:8px 0;font-size:.94em}"
    "th,td{border:1px solid #d5d9e0;padding:5px 10px;text-align:right}"
    "th{background:#eceff4;font-weight:600}td.l,th.l{text-align:left}"
    "td.best{font-weight:600;background:#fff4d6}"
    "p.note{color:#5a6272;font-size:.88em;max-width:860px;margin:6px 0}"
    ".charts{display:flex;flex-wrap:wrap;gap:16px;margin:0 0 16px}"
    "figure{margin:0;background:#fff;border:1px solid #d5d9e0;border-radius:4px;padding:8px;width:min-content}"
    "figcaption{font-size:.88em;color:#3a4252;margin-top:4px}"
    "svg text{font-family:inherit}"
    ".gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(548px,1fr));gap:10px}"
    ".case{background:#fff;border:1px solid #d5d9e0;border-radius:4px;padding:8px;display:flex;"
    "flex-direction:column;gap:6px}"
    ".case .trio{display:flex;gap:6px}.case .trio div{text-align:center;font-size:.78em;color:#5a6272}"
    ".case img{width:176px;height:176px;display:block;border:1px solid #c7ccd6;background:#000}"
    ".case .info{font-size:.9em;min-width:0}.case .info b{font-size:1.05em}"
    ".tag{display:inline-block;padding:0 6px;border-radius:3px;font-size:.85em;font-weight:600}"
    ".tag.ok{background:#dcefdc;color:#1f5d1f}.tag.bad{background:#f8dcdc;color:#8a1c1c}";

static void page_begin(stfpm_strbuf *b, const char *title) {
    stfpm_strbuf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>");
    put_esc(b, title);
    stfpm_strbuf_printf(b, "</title>\n<style>%s</style>\n</head>\n<body>\n<main>\n", PAGE_CSS);
}

static void page_end(stfpm_strbuf *b) { stfpm_strbuf_puts(b, "</main>\n</body>\n</html>\n"); }

/* ------------------------------------------------------------------------------------------ */
/* Charts (inline SVG)                                                                         */

typedef struct chart {
    stfpm_strbuf *b;
    double w, h;                 /* the SVG */
    double ml, mr, mt, mb;       /* margins around the plot area */
    double x0, x1, y0, y1;       /* data ranges */
    int logy;
    int int_x, int_y;            /* ticks on whole numbers only (epochs, counts) */
} chart;

static double chart_px(const chart *c, double x) { return c->ml + (x - c->x0) / (c->x1 - c->x0) * (c->w - c->ml - c->mr); }

static double chart_py(const chart *c, double y) {
    double f = c->logy ? (log10(y) - log10(c->y0)) / (log10(c->y1) - log10(c->y0)) : (y - c->y0) / (c->y1 - c->y0);
    return c->h - c->mb - f * (c->h - c->mt - c->mb);
}

static double nice_step(double range, int target) {
    if (!(range > 0)) return 1;
    double raw = range / target, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

/* A linear range [lo, hi] widened to whole tick steps (hi > lo afterwards). */
static void nice_range(double *lo, double *hi, int target) {
    if (!(*hi > *lo)) {
        double d = fabs(*lo) > 0 ? fabs(*lo) * 0.1 : 1;
        *lo -= d;
        *hi += d;
    }
    double st = nice_step(*hi - *lo, target);
    *lo = floor(*lo / st + 1e-9) * st;
    *hi = ceil(*hi / st - 1e-9) * st;
}

/* Frame, grid, ticks and axis titles. */
static void chart_begin(chart *c, const char *label, const char *xlabel, const char *ylabel) {
    stfpm_strbuf *b = c->b;
    stfpm_strbuf_printf(b, "<svg width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"",
                        c->w, c->h, c->w, c->h);
    put_esc(b, label);
    stfpm_strbuf_puts(b, "\">\n");
    const double L = c->ml, R = c->w - c->mr, T = c->mt, B = c->h - c->mb;
    stfpm_strbuf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fff\" stroke=\"none\"/>\n",
                        L, T, R - L, B - T);
    char t[64];
    /* x ticks */
    double xs = nice_step(c->x1 - c->x0, 6);
    if (c->int_x && xs < 1) xs = 1;
    stfpm_strbuf_puts(b, "<g font-size=\"11\" fill=\"#3a4252\">\n");
    for (double v = ceil(c->x0 / xs - 1e-9) * xs; v <= c->x1 + xs * 1e-9; v += xs) {
        double x = chart_px(c, v);
        fmt_tick(t, sizeof t, v, xs);
        stfpm_strbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e3e6eb\"/>"
                            "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                            x, T, x, B, x, B + 15, t);
    }
    /* y ticks */
    if (c->logy) {
        int k0 = (int)floor(log10(c->y0)), k1 = (int)ceil(log10(c->y1));
        /* per decade: 1, 2, 3, 5 over up to two decades, 1, 2, 5 up to four, else 1 */
        const int span = k1 - k0;
        for (int k = k0; k <= k1; k++)
            for (int m = 1; m <= 5; m++) {
                if (m == 4 || (m == 3 && span > 2) || (m != 1 && span > 4)) continue;
                double v = m * pow(10, k);
                if (v < c->y0 * (1 - 1e-9) || v > c->y1 * (1 + 1e-9)) continue;
                double y = chart_py(c, v);
                snprintf(t, sizeof t, "%g", v);
                stfpm_strbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e3e6eb\"/>"
                                    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                                    L, y, R, y, L - 5, y + 4, t);
            }
    } else {
        double ys = nice_step(c->y1 - c->y0, 5);
        if (c->int_y && ys < 1) ys = 1;
        for (double v = ceil(c->y0 / ys - 1e-9) * ys; v <= c->y1 + ys * 1e-9; v += ys) {
            double y = chart_py(c, v);
            fmt_tick(t, sizeof t, v, ys);
            stfpm_strbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e3e6eb\"/>"
                                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                                L, y, R, y, L - 5, y + 4, t);
        }
    }
    stfpm_strbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\">", (L + R) / 2, c->h - 6);
    put_esc(b, xlabel);
    stfpm_strbuf_printf(b, "</text>\n<text x=\"14\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\" "
                        "transform=\"rotate(-90 14 %.1f)\">", (T + B) / 2, (T + B) / 2);
    put_esc(b, ylabel);
    stfpm_strbuf_puts(b, "</text>\n</g>\n");
}

static void chart_end(chart *c) {
    stfpm_strbuf_printf(c->b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                        "stroke=\"#8a92a3\"/>\n</svg>\n",
                        c->ml, c->mt, c->w - c->ml - c->mr, c->h - c->mt - c->mb);
}

/* Where a legend goes: a corner of the plot area, or in one row above it (in the top margin). */
typedef enum legend_place { LEGEND_TOP_LEFT, LEGEND_TOP_RIGHT, LEGEND_BOTTOM_RIGHT, LEGEND_ABOVE } legend_place;

static void chart_legend(chart *c, legend_place where, int n, const char *const *names, const char *const *colours) {
    double lw = 0;
    for (int i = 0; i < n; i++) {
        double w = 30 + 6.3 * (double)strlen(names[i]);
        lw = w > lw ? w : lw;
    }
    if (where == LEGEND_ABOVE) {
        double x = c->ml;
        for (int i = 0; i < n; i++) {
            double w = 30 + 6.3 * (double)strlen(names[i]);
            stfpm_strbuf_printf(c->b, "<rect x=\"%.1f\" y=\"6\" width=\"14\" height=\"10\" fill=\"%s\" "
                                "fill-opacity=\"0.55\" stroke=\"%s\"/><text x=\"%.1f\" y=\"15\" font-size=\"11\">",
                                x, colours[i], colours[i], x + 19);
            put_esc(c->b, names[i]);
            stfpm_strbuf_puts(c->b, "</text>\n");
            x += w + 10;
        }
        return;
    }
    double x = where == LEGEND_TOP_LEFT ? c->ml + 8 : c->w - c->mr - lw - 8;
    double y = where == LEGEND_BOTTOM_RIGHT ? c->h - c->mb - 8 - 17.0 * n - 4 : c->mt + 8;
    stfpm_strbuf_printf(c->b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fff\" "
                        "fill-opacity=\"0.9\" stroke=\"#c7ccd6\"/>\n", x, y, lw, 17.0 * n + 4);
    for (int i = 0; i < n; i++) {
        double yy = y + 14 + 17.0 * i;
        stfpm_strbuf_printf(c->b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                            "stroke-width=\"2.5\"/><text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">",
                            x + 6, yy - 4, x + 24, yy - 4, colours[i], x + 28, yy);
        put_esc(c->b, names[i]);
        stfpm_strbuf_puts(c->b, "</text>\n");
    }
}

/* A data series as a polyline (NaN points break the line). */
static void chart_line(chart *c, const double *x, const double *y, int n, const char *colour, int dashed) {
    int open = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i]) || (c->logy && !(y[i] > 0))) {
            if (open) stfpm_strbuf_puts(c->b, "\"/>\n");
            open = 0;
            continue;
        }
        if (!open)
            stfpm_strbuf_printf(c->b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" "
                                "stroke-linejoin=\"round\"%s points=\"", colour, dashed ? " stroke-dasharray=\"5 3\"" : "");
        stfpm_strbuf_printf(c->b, "%s%.1f,%.1f", open ? " " : "", chart_px(c, x[i]), chart_py(c, y[i]));
        open = 1;
    }
    if (open) stfpm_strbuf_puts(c->b, "\"/>\n");
}

static void chart_dots(chart *c, const double *x, const double *y, int n, const char *colour) {
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]) && isfinite(y[i]) && (!c->logy || y[i] > 0))
            stfpm_strbuf_printf(c->b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n", chart_px(c, x[i]),
                                chart_py(c, y[i]), colour);
}

/* A vertical marker line at data x with a label at its top. */
static void chart_vmark(chart *c, double x, const char *colour, const char *label) {
    double px = chart_px(c, x), T = c->mt, B = c->h - c->mb;
    int right = px > (c->ml + c->w - c->mr) / 2;   /* label on the side with more room */
    stfpm_strbuf_printf(c->b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1.5\" "
                        "stroke-dasharray=\"4 3\"/>\n<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"%s\" "
                        "text-anchor=\"%s\">", px, T, px, B, colour, right ? px - 4 : px + 4, T - 5, colour,
                        right ? "end" : "start");
    put_esc(c->b, label);
    stfpm_strbuf_puts(c->b, "</text>\n");
}

/* ------------------------------------------------------------------------------------------ */
/* Curves                                                                                      */

/* Points of a curve, thinned: a point closer than (ex, ey) in both coordinates to the last kept
 * one is dropped unless forced. */
typedef struct curve {
    double *x, *y;
    int n, cap;
    double ex, ey;
    int oom;
} curve;

static void curve_add(curve *c, double x, double y, int force) {
    if (c->oom) return;
    if (!force && c->n > 0 && fabs(x - c->x[c->n - 1]) < c->ex && fabs(y - c->y[c->n - 1]) < c->ey) return;
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 256;
        double *nx = realloc(c->x, sizeof(double) * (size_t)cap);
        if (nx) c->x = nx;
        double *ny = nx ? realloc(c->y, sizeof(double) * (size_t)cap) : NULL;
        if (ny) c->y = ny;
        if (!nx || !ny) { c->oom = 1; return; }
        c->cap = cap;
    }
    c->x[c->n] = x;
    c->y[c->n] = y;
    c->n++;
}

/* The curve's end point, always kept (unless it is the last point already). */
static void curve_finish(curve *c, double x, double y) {
    if (c->n > 0 && c->x[c->n - 1] == x && c->y[c->n - 1] == y) return;
    curve_add(c, x, y, 1);
}

static void curve_free(curve *c) {
    free(c->x);
    free(c->y);
    memset(c, 0, sizeof *c);
}

/* Order key: unsigned ascending order = descending score (-0.0 as +0.0). */
static uint32_t desc_key(float s) {
    float f = s + 0.0f;
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return ~((u & 0x80000000u) ? ~u : (u | 0x80000000u));
}

/* Stable LSD radix sort of 64-bit items by their upper 32 bits; returns the sorted array (a or
 * tmp). */
static uint64_t *sort_items(uint64_t *a, uint64_t *tmp, size_t n) {
    for (int shift = 32; shift < 64; shift += 8) {
        size_t count[257] = {0};
        for (size_t i = 0; i < n; i++) count[((a[i] >> shift) & 255) + 1]++;
        if (n == 0 || count[((a[0] >> shift) & 255) + 1] == n) continue;
        for (int k = 0; k < 256; k++) count[k + 1] += count[k];
        for (size_t i = 0; i < n; i++) tmp[count[(a[i] >> shift) & 255]++] = a[i];
        uint64_t *t = a;
        a = tmp;
        tmp = t;
    }
    return a;
}

/* The image ROC: one point per distinct score (prediction "score >= t"), from (0, 0) to (1, 1). */
static stfpm_status image_roc(const float *scores, const uint8_t *labels, int n, curve *roc) {
    uint64_t *a = malloc(sizeof *a * (size_t)n), *tmp = malloc(sizeof *tmp * (size_t)n);
    if (!a || !tmp) {
        free(a);
        free(tmp);
        return stfpm_set_error(STFPM_ERR_OOM, "out of host memory for the ROC of %d images", n);
    }
    size_t n_pos = 0;
    for (int i = 0; i < n; i++) {
        a[i] = ((uint64_t)desc_key(scores[i]) << 32) | (labels[i] != 0);
        n_pos += labels[i] != 0;
    }
    const uint64_t *s = sort_items(a, tmp, (size_t)n);
    size_t tp = 0, fp = 0, n_neg = (size_t)n - n_pos;
    roc->ex = roc->ey = 0;
    curve_add(roc, 0, 0, 1);
    for (size_t i = 0; i < (size_t)n;) {
        uint32_t key = (uint32_t)(s[i] >> 32);
        for (; i < (size_t)n && (uint32_t)(s[i] >> 32) == key; i++) {
            if (s[i] & 1) tp++;
            else fp++;
        }
        curve_add(roc, (double)fp / n_neg, (double)tp / n_pos, 1);
    }
    free(a);
    free(tmp);
    return roc->oom ? stfpm_set_error(STFPM_ERR_OOM, "out of host memory for the image ROC") : STFPM_OK;
}

/* The pixel ROC and the PRO curve (FPR up to fpr_limit, interpolated exactly there) of every
 * pixel of every map, in one sweep (SPEC section 6: regions are the 8-connected components of
 * each mask, PRO the mean overlap over all regions, FPR over all normal pixels). */
static stfpm_status pixel_curves(const stfpm_test_report *d, double fpr_limit, curve *roc, curve *pro) {
    const size_t pix = (size_t)d->size * d->size, total = pix * (size_t)d->n;
    uint64_t *a = malloc(sizeof *a * total), *tmp = malloc(sizeof *tmp * total);
    int32_t *lab = malloc(sizeof *lab * pix);
    double *region_w = NULL;   /* 1 / region size */
    size_t n_regions = 0, cap = 0, n_norm = 0, n_anom = 0;
    stfpm_status s = STFPM_OK;
    if (!a || !tmp || !lab) {
        s = stfpm_set_error(STFPM_ERR_OOM, "out of host memory for the pixel curves of %d maps of %dx%d", d->n,
                            d->size, d->size);
        goto done;
    }
    for (int i = 0; i < d->n && s == STFPM_OK; i++) {
        const uint8_t *mask = d->masks + pix * i;
        const float *map = d->maps + pix * i;
        int nr = 0, any = 0;
        for (size_t q = 0; q < pix && !any; q++) any = mask[q] != 0;
        if (any) s = stfpm_label_regions(mask, d->size, d->size, lab, &nr);
        if (s != STFPM_OK) break;
        if (n_regions + (size_t)nr > cap) {
            size_t nc = (n_regions + (size_t)nr) * 2 + 16;
            double *w = realloc(region_w, sizeof *w * nc);
            if (!w) { s = stfpm_set_error(STFPM_ERR_OOM, "out of host memory for the ground-truth regions"); break; }
            region_w = w;
            cap = nc;
        }
        for (int r = 0; r < nr; r++) region_w[n_regions + (size_t)r] = 0;
        for (size_t q = 0; q < pix; q++) {
            uint32_t tag = 0;
            if (mask[q]) {
                size_t g = n_regions + (size_t)lab[q] - 1;
                region_w[g] += 1;
                tag = (uint32_t)(g + 1);
                n_anom++;
            } else {
                n_norm++;
            }
            a[pix * i + q] = ((uint64_t)desc_key(map[q]) << 32) | tag;
        }
        n_regions += (size_t)nr;
    }
    if (s != STFPM_OK) goto done;
    if (n_norm == 0 || n_anom == 0 || n_regions == 0) {
        s = stfpm_set_error(STFPM_ERR_ARG, "pixel curves need normal and anomalous pixels (%zu normal, %zu anomalous)",
                            n_norm, n_anom);
        goto done;
    }
    for (size_t r = 0; r < n_regions; r++) region_w[r] = 1.0 / region_w[r];
    const uint64_t *it = sort_items(a, tmp, total);
    size_t tp = 0, fp = 0;
    double pro_sum = 0, last_fpr = 0, last_pro = 0;
    int pro_open = 1;
    curve_add(roc, 0, 0, 1);
    curve_add(pro, 0, 0, 1);
    for (size_t i = 0; i < total;) {
        uint32_t key = (uint32_t)(it[i] >> 32);
        for (; i < total && (uint32_t)(it[i] >> 32) == key; i++) {
            uint32_t tag = (uint32_t)it[i];
            if (tag) {
                tp++;
                pro_sum += region_w[tag - 1];
            } else {
                fp++;
            }
        }
        double fpr = (double)fp / n_norm, p = pro_sum / n_regions;
        curve_add(roc, fpr, (double)tp / n_anom, i == total);
        if (pro_open) {
            if (fpr <= fpr_limit) {
                curve_add(pro, fpr, p, fpr == fpr_limit);
                last_fpr = fpr;
                last_pro = p;
                if (fpr == fpr_limit) pro_open = 0;
            } else {
                double f = (fpr_limit - last_fpr) / (fpr - last_fpr);
                curve_finish(pro, fpr_limit, last_pro + f * (p - last_pro));
                pro_open = 0;
            }
        }
    }
    curve_finish(roc, 1, 1);
    if (roc->oom || pro->oom) s = stfpm_set_error(STFPM_ERR_OOM, "out of host memory for the pixel curves");
done:
    free(a);
    free(tmp);
    free(lab);
    free(region_w);
    return s;
}

/* A square ROC-style chart of curves in [0, xmax] x [0, 1]. */
static void curve_chart(stfpm_strbuf *b, const char *label, const char *xlabel, const char *ylabel, double xmax,
                        const curve *cv, int n_curves, const char *const *names, const char *const *colours,
                        int shade, int diagonal) {
    chart c = {.b = b, .w = 360, .h = 340, .ml = 52, .mr = 14, .mt = 16, .mb = 42, .x0 = 0, .x1 = xmax, .y0 = 0,
               .y1 = 1};
    chart_begin(&c, label, xlabel, ylabel);
    if (diagonal)
        stfpm_strbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#b0b6c2\" "
                            "stroke-dasharray=\"3 3\"/>\n", chart_px(&c, 0), chart_py(&c, 0), chart_px(&c, 1),
                            chart_py(&c, 1));
    for (int k = 0; k < n_curves; k++) {
        if (shade && cv[k].n > 1) {
            stfpm_strbuf_printf(b, "<polygon fill=\"%s\" fill-opacity=\"0.12\" stroke=\"none\" points=\"%.1f,%.1f",
                                colours[k], chart_px(&c, cv[k].x[0]), chart_py(&c, 0));
            for (int i = 0; i < cv[k].n; i++)
                stfpm_strbuf_printf(b, " %.1f,%.1f", chart_px(&c, cv[k].x[i]), chart_py(&c, cv[k].y[i]));
            stfpm_strbuf_printf(b, " %.1f,%.1f\"/>\n", chart_px(&c, cv[k].x[cv[k].n - 1]), chart_py(&c, 0));
        }
        chart_line(&c, cv[k].x, cv[k].y, cv[k].n, colours[k], 0);
    }
    chart_legend(&c, LEGEND_BOTTOM_RIGHT, n_curves, names, colours);
    chart_end(&c);
}

/* ------------------------------------------------------------------------------------------ */
/* Score histograms                                                                            */

static void score_histogram(stfpm_strbuf *b, const float *scores, const uint8_t *labels, int n, double threshold) {
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++)
        if (isfinite(scores[i])) {
            lo = fmin(lo, scores[i]);
            hi = fmax(hi, scores[i]);
        }
    if (isfinite(threshold)) {
        lo = fmin(lo, threshold);
        hi = fmax(hi, threshold);
    }
    if (!(lo <= hi)) {   /* no finite score */
        lo = 0;
        hi = 1;
    }
    nice_range(&lo, &hi, 6);
    int bins = (int)ceil(2 * sqrt((double)n));
    bins = bins < 10 ? 10 : bins > 40 ? 40 : bins;
    int count[2][40] = {{0}}, top = 1;
    double bw = (hi - lo) / bins;
    for (int i = 0; i < n; i++) {
        if (!isfinite(scores[i])) continue;
        int k = (int)floor((scores[i] - lo) / bw);
        k = k < 0 ? 0 : k >= bins ? bins - 1 : k;
        int c = ++count[labels[i] != 0][k];
        top = c > top ? c : top;
    }
    double ytop = top, y0 = 0;
    nice_range(&y0, &ytop, 5);
    ytop = fmax(ytop, ceil(ytop));
    chart c = {.b = b, .w = 540, .h = 350, .ml = 52, .mr = 14, .mt = 40, .mb = 42, .x0 = lo, .x1 = hi, .y0 = 0,
               .y1 = ytop, .int_y = 1};
    chart_begin(&c, "histogram of image scores", "image score (maximum of the anomaly map)", "images");
    static const char *const colours[2] = {"#2f6fde", "#d9412b"};
    for (int cls = 0; cls < 2; cls++)
        for (int k = 0; k < bins; k++) {
            if (!count[cls][k]) continue;
            double x0 = chart_px(&c, lo + bw * k), x1 = chart_px(&c, lo + bw * (k + 1)), y = chart_py(&c, count[cls][k]);
            stfpm_strbuf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" "
                                "fill-opacity=\"0.55\" stroke=\"%s\" stroke-width=\"0.8\"/>\n",
                                x0 + 0.5, y, x1 - x0 - 1, chart_py(&c, 0) - y, colours[cls], colours[cls]);
        }
    if (isfinite(threshold)) {
        char t[96];
        snprintf(t, sizeof t, "threshold %.6g", threshold);
        chart_vmark(&c, threshold, "#1d2330", t);
    }
    const char *names[2] = {"normal (test/good)", "anomalous"};
    chart_legend(&c, LEGEND_ABOVE, 2, names, colours);
    chart_end(&c);
}

/* A colour bar of the heatmaps: jet from 0 to scale, the threshold marked. */
static void colour_bar(stfpm_strbuf *b, double scale, double threshold) {
    const double W = 540, H = 48, L = 14, R = W - 14, T = 6, B = 24;
    stfpm_strbuf_printf(b, "<svg width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" "
                        "aria-label=\"heatmap colour scale\">\n<defs><linearGradient id=\"jet\" x1=\"0\" x2=\"1\" "
                        "y1=\"0\" y2=\"0\">", W, H, W, H);
    for (int k = 0; k <= 16; k++) {
        uint8_t rgb[3];
        stfpm_colormap_jet(k / 16.0f, rgb);
        stfpm_strbuf_printf(b, "<stop offset=\"%.4f\" stop-color=\"#%02x%02x%02x\"/>", k / 16.0, rgb[0], rgb[1], rgb[2]);
    }
    stfpm_strbuf_printf(b, "</linearGradient></defs>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                        "fill=\"url(#jet)\" stroke=\"#8a92a3\"/>\n<g font-size=\"11\" fill=\"#3a4252\">"
                        "<text x=\"%.1f\" y=\"%.1f\">0</text><text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.4g</text>",
                        L, T, R - L, B - T, L, B + 14, R, B + 14, scale);
    if (isfinite(threshold) && threshold > 0 && threshold < scale) {
        double x = L + (R - L) * threshold / scale;
        stfpm_strbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000\" stroke-width=\"2\"/>"
                            "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">threshold %.6g</text>",
                            x, T - 2, x, B + 2, x, B + 14, threshold);
    }
    stfpm_strbuf_puts(b, "</g>\n</svg>\n");
}

/* ------------------------------------------------------------------------------------------ */
/* Gallery                                                                                     */

typedef struct case_ref {
    int index;          /* into the test samples */
    int group;          /* 0 worst normal, 1 worst anomalous, 2 typical */
    const char *why;
} case_ref;

typedef struct score_index {
    float score;
    int index;
} score_index;

static int cmp_score_asc(const void *pa, const void *pb) {
    const score_index *a = pa, *b = pb;
    if (a->score != b->score) return a->score < b->score ? -1 : 1;
    return a->index - b->index;
}

/* File name of a path, for captions. */
static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* DIR/gallery/NN_{image,truth,overlay}.png of test image i: the image as the network saw it
 * (resized to S x S), its ground truth (white = anomalous) and the map over it (colours from 0
 * to scale). */
static stfpm_status write_case_pngs(const char *dir, int k, const stfpm_test_report *d, int i, float scale) {
    const int S = d->size;
    const size_t pix = (size_t)S * S;
    char path[4400];
    stfpm_image img = {0}, rs = {0};
    stfpm_status s = stfpm_image_load(d->samples[i].path, &img);
    if (s == STFPM_OK) s = stfpm_image_resize(&img, S, S, &rs);
    stfpm_image_free(&img);
    if (s == STFPM_OK) {
        snprintf(path, sizeof path, "%s/gallery/%02d_image.png", dir, k);
        s = stfpm_image_save_png(path, &rs);
    }
    if (s == STFPM_OK) {
        uint8_t *m = malloc(pix);
        if (!m) s = stfpm_set_error(STFPM_ERR_OOM, "out of host memory for a ground-truth image");
        for (size_t q = 0; m && q < pix; q++) m[q] = d->masks[pix * i + q] ? 255 : 0;
        snprintf(path, sizeof path, "%s/gallery/%02d_truth.png", dir, k);
        if (m) s = stfpm_png_write(path, S, S, 1, m);
        free(m);
    }
    if (s == STFPM_OK) {
        snprintf(path, sizeof path, "%s/gallery/%02d_overlay.png", dir, k);
        s = stfpm_png_write_overlay(path, &rs, d->maps + pix * i, 0.0f, scale, 0.5f);
    }
    stfpm_image_free(&rs);
    return s;
}

static void case_html(stfpm_strbuf *b, int k, const stfpm_test_report *d, int i, const char *why) {
    const stfpm_sample *sm = &d->samples[i];
    stfpm_strbuf_puts(b, "<div class=\"case\">\n<div class=\"info\"><b>");
    put_esc(b, sm->defect);
    stfpm_strbuf_puts(b, "/");
    put_esc(b, base_name(sm->path));
    stfpm_strbuf_printf(b, "</b> &middot; %s<br>score <b>%.6g</b>", why, d->scores[i]);
    if (isfinite(d->threshold)) {
        int flagged = d->scores[i] > d->threshold;
        int right = flagged == (sm->label != 0);
        stfpm_strbuf_printf(b, " (%s the threshold %.6g) <span class=\"tag %s\">%s: %s</span>",
                            flagged ? "above" : "at or below", d->threshold, right ? "ok" : "bad",
                            flagged ? "judged anomalous" : "judged normal", right ? "right" : "wrong");
    }
    stfpm_strbuf_puts(b, "<br><code>");
    put_esc(b, sm->path);
    stfpm_strbuf_puts(b, "</code></div>\n<div class=\"trio\">");
    static const char *const parts[3] = {"image", "truth", "overlay"};
    static const char *const titles[3] = {"image", "ground truth", "anomaly map"};
    for (int p = 0; p < 3; p++)
        stfpm_strbuf_printf(b, "<div><img src=\"gallery/%02d_%s.png\" width=\"%d\" height=\"%d\" alt=\"%s\">%s</div>",
                            k, parts[p], d->size, d->size, titles[p], titles[p]);
    stfpm_strbuf_puts(b, "</div>\n</div>\n");
}

/* ------------------------------------------------------------------------------------------ */
/* The test report                                                                             */

#define WORST_CASES 4
#define MAX_TYPICAL 10

static void metrics_table(stfpm_strbuf *b, const stfpm_test_report *d, const char *category) {
    const stfpm_test_result *r = d->result;
    const paper_row *pc = paper_category(category);
    stfpm_strbuf_puts(b, "<table class=\"metrics\">\n<thead><tr><th class=\"l\">metric</th><th>this model</th>");
    if (category) {
        stfpm_strbuf_puts(b, "<th>paper, ");
        put_esc(b, category);
        stfpm_strbuf_printf(b, "</th><th>paper, %s</th>", PAPER_MEAN.category);
    }
    stfpm_strbuf_puts(b, "</tr></thead>\n<tbody>\n");
    struct {
        const char *name, *key;
        double v, paper, mean;
    } rows[4] = {
        {"image AUROC", "image_auroc", r->image_auroc, pc ? pc->image_auroc : NAN, PAPER_MEAN.image_auroc},
        {"pixel AUROC", "pixel_auroc", r->pixel_auroc, pc ? pc->pixel_auroc : NAN, PAPER_MEAN.pixel_auroc},
        {"AU-PRO (MVTec AD definition, FPR \xe2\x89\xa4 0.3)", "aupro", r->aupro, NAN, NAN},
        {"PRO (paper protocol)", "pro_paper", r->pro_paper, pc ? pc->pro : NAN, PAPER_MEAN.pro},
    };
    for (int k = 0; k < 4; k++) {
        char exact[32];
        if (isfinite(rows[k].v)) snprintf(exact, sizeof exact, "%.9g", rows[k].v);
        else snprintf(exact, sizeof exact, "null");
        stfpm_strbuf_printf(b, "<tr><td class=\"l\">%s</td><td id=\"%s\" data-value=\"%s\">", rows[k].name, rows[k].key,
                            exact);
        put_value(b, rows[k].v, 4);
        stfpm_strbuf_puts(b, "</td>");
        if (category) {
            stfpm_strbuf_puts(b, "<td>");
            put_value(b, rows[k].paper, 3);   /* as the paper prints them */
            stfpm_strbuf_puts(b, "</td><td>");
            put_value(b, rows[k].mean, 3);
            stfpm_strbuf_puts(b, "</td>");
        }
        stfpm_strbuf_puts(b, "</tr>\n");
    }
    stfpm_strbuf_puts(b, "</tbody>\n</table>\n<p class=\"note\">");
    if (category) {
        stfpm_strbuf_printf(b, "Paper: Wang et al., <i>Student-Teacher Feature Pyramid Matching for Anomaly "
                            "Detection</i>, BMVC 2021, STFPM with a ResNet-18 teacher at 256 &times; 256, as listed in "
                            "docs/SPEC.md section 8; &mdash; = not given there. The paper's PRO is the authors' "
                            "protocol (min-max rescaled): compare it with the PRO (paper protocol) row only; the "
                            "paper reports no AU-PRO of the MVTec AD definition. The category is taken from the data "
                            "folder's name.");
        if (d->size != 256) stfpm_strbuf_printf(b, " This model works at %d &times; %d.", d->size, d->size);
    } else {
        stfpm_strbuf_puts(b, "The data folder is not named after an MVTec AD category, so there are no paper values "
                          "to compare with.");
    }
    if (r->single_class)
        stfpm_strbuf_printf(b, " The test split has only %s images: AUROC and PRO need both kinds, so there are no "
                            "metrics.", r->n_normal ? "normal" : "anomalous");
    stfpm_strbuf_puts(b, "</p>\n");
}

/* Per test folder: images, score range and median, how many the threshold flags. */
static void folder_table(stfpm_strbuf *b, const stfpm_test_report *d, const score_index *by_score) {
    stfpm_strbuf_puts(b, "<table>\n<thead><tr><th class=\"l\">test folder</th><th>images</th><th>lowest score</th>"
                      "<th>median</th><th>highest</th><th>judged anomalous</th></tr></thead>\n<tbody>\n");
    for (int i = 0; i < d->n; i++) {
        const char *def = d->samples[i].defect;
        int first = 1;
        for (int q = 0; q < i && first; q++) first = strcmp(d->samples[q].defect, def) != 0;
        if (!first) continue;
        int cnt = 0, flagged = 0, seen = 0;
        for (int q = 0; q < d->n; q++)
            if (strcmp(d->samples[q].defect, def) == 0) {
                cnt++;
                flagged += isfinite(d->threshold) && d->scores[q] > d->threshold;
            }
        float lo = 0, med = 0, hi = 0;
        for (int q = 0; q < d->n; q++) {
            const int j = by_score[q].index;
            if (strcmp(d->samples[j].defect, def) != 0) continue;
            if (seen == 0) lo = by_score[q].score;
            if (seen == cnt / 2) med = by_score[q].score;
            hi = by_score[q].score;
            seen++;
        }
        stfpm_strbuf_puts(b, "<tr><td class=\"l\">");
        put_esc(b, def);
        stfpm_strbuf_printf(b, "%s</td><td>%d</td><td>%.4g</td><td>%.4g</td><td>%.4g</td><td>", d->samples[i].label ? "" : " (normal)",
                            cnt, lo, med, hi);
        if (isfinite(d->threshold)) stfpm_strbuf_printf(b, "%d of %d", flagged, cnt);
        else stfpm_strbuf_puts(b, "\xe2\x80\x94");
        stfpm_strbuf_puts(b, "</td></tr>\n");
    }
    stfpm_strbuf_puts(b, "</tbody>\n</table>\n");
}

/* The worst cases (highest-scoring normal images, lowest-scoring anomalous ones) and, for each
 * test folder, its median-scoring image not shown yet. */
static int pick_cases(const stfpm_test_report *d, const score_index *by_score, case_ref *out, int max) {
    int n = 0;
    uint8_t *used = calloc((size_t)d->n, 1);
    if (!used) return -1;
    for (int q = d->n - 1, k = 0; q >= 0 && k < WORST_CASES && n < max; q--)
        if (!d->samples[by_score[q].index].label) {
            out[n++] = (case_ref){by_score[q].index, 0, k == 0 ? "the highest-scoring normal image"
                                                            : "a high-scoring normal image"};
            used[by_score[q].index] = 1;
            k++;
        }
    for (int q = 0, k = 0; q < d->n && k < WORST_CASES && n < max; q++)
        if (d->samples[by_score[q].index].label) {
            out[n++] = (case_ref){by_score[q].index, 1, k == 0 ? "the lowest-scoring anomalous image"
                                                            : "a low-scoring anomalous image"};
            used[by_score[q].index] = 1;
            k++;
        }
    int typical = 0;
    for (int i = 0; i < d->n && typical < MAX_TYPICAL && n < max; i++) {
        const char *def = d->samples[i].defect;
        int first = 1;
        for (int q = 0; q < i && first; q++) first = strcmp(d->samples[q].defect, def) != 0;
        if (!first) continue;
        int cnt = 0;
        for (int q = 0; q < d->n; q++) cnt += strcmp(d->samples[by_score[q].index].defect, def) == 0 && !used[by_score[q].index];
        if (cnt == 0) continue;
        for (int q = 0, seen = 0; q < d->n; q++) {
            const int j = by_score[q].index;
            if (strcmp(d->samples[j].defect, def) != 0 || used[j]) continue;
            if (seen++ == cnt / 2) {
                out[n++] = (case_ref){j, 2, "the median-scoring image of its folder"};
                used[j] = 1;
                typical++;
                break;
            }
        }
    }
    free(used);
    return n;
}

stfpm_status stfpm_report_write_test(const char *dir, const stfpm_test_report *d) {
    if (!dir || !d || !d->result || !d->samples || !d->scores || !d->maps || !d->masks || d->n < 1 || d->size < 1)
        return stfpm_set_error(STFPM_ERR_ARG, "test report: incomplete input");
    char page_path[4200], gallery[4200], catbuf[1024];
    snprintf(page_path, sizeof page_path, "%s/index.html", dir);
    snprintf(gallery, sizeof gallery, "%s/gallery", dir);
    STFPM_TRY(stfpm_mkdir_p(gallery));
    const stfpm_test_result *r = d->result;
    const char *category = mvtec_category(d->data_dir, catbuf, sizeof catbuf);
    const int n = d->n;
    const size_t pix = (size_t)d->size * d->size;
    stfpm_strbuf b = {0};
    curve iroc = {0}, proc = {0}, pcur = {0};
    score_index *by_score = malloc(sizeof *by_score * (size_t)n);
    uint8_t *labels = malloc((size_t)n);
    case_ref cases[2 * WORST_CASES + MAX_TYPICAL];
    stfpm_status s = STFPM_OK;
    if (!by_score || !labels) {
        s = stfpm_set_error(STFPM_ERR_OOM, "out of host memory for %s", page_path);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        by_score[i] = (score_index){d->scores[i], i};
        labels[i] = (uint8_t)(d->samples[i].label != 0);
    }
    qsort(by_score, (size_t)n, sizeof *by_score, cmp_score_asc);

    /* the heatmaps' colour scale: 2 x the threshold (as --maps), else the highest map value */
    float scale = 0;
    if (isfinite(d->threshold) && d->threshold > 0) scale = (float)(2 * d->threshold);
    else
        for (size_t q = 0; q < pix * (size_t)n; q++) scale = fmaxf(scale, d->maps[q]);
    if (!(scale > 0)) scale = 1;

    /* the gallery first: the page is written only once every image it shows exists */
    int n_cases = pick_cases(d, by_score, cases, (int)(sizeof cases / sizeof cases[0]));
    if (n_cases < 0) { s = stfpm_set_error(STFPM_ERR_OOM, "out of host memory for %s", page_path); goto done; }
    for (int k = 0; k < n_cases && s == STFPM_OK; k++) s = write_case_pngs(dir, k + 1, d, cases[k].index, scale);
    if (s != STFPM_OK) { stfpm_wrap_error(s, "test report %s", page_path); goto done; }

    char title[1300];
    snprintf(title, sizeof title, "STFPM test report: %s", category ? category : base_name(d->data_dir));
    page_begin(&b, title);
    stfpm_strbuf_puts(&b, "<h1>");
    put_esc(&b, title);
    stfpm_strbuf_puts(&b, "</h1>\n<p class=\"meta\">data <code>");
    put_esc(&b, d->data_dir);
    stfpm_strbuf_puts(&b, "</code></p>\n<p class=\"meta\">model <code>");
    put_esc(&b, d->model_path);
    stfpm_strbuf_printf(&b, "</code></p>\n<p class=\"meta\">%d test images (%d normal, %d anomalous), %d &times; %d, "
                        "threshold ", n, r->n_normal, r->n_anomalous, d->size, d->size);
    if (isfinite(d->threshold))
        stfpm_strbuf_printf(&b, "<span id=\"threshold\" data-value=\"%.9g\">%.6g</span> (stored with the model: the "
                            "highest score of the held-out normal validation images)", d->threshold, d->threshold);
    else
        stfpm_strbuf_puts(&b, "none (the model stores none: it was trained without validation images)");
    stfpm_strbuf_puts(&b, "</p>\n<h2 id=\"metrics\">Metrics</h2>\n");
    metrics_table(&b, d, category);
    if (isfinite(d->threshold)) {
        int fp = 0, tp = 0;
        for (int i = 0; i < n; i++) {
            int f = d->scores[i] > d->threshold;
            fp += f && !labels[i];
            tp += f && labels[i];
        }
        stfpm_strbuf_printf(&b, "<p>At the threshold %.6g: <b>%d of %d</b> normal images judged anomalous, "
                            "<b>%d of %d</b> anomalous images found.</p>\n", d->threshold, fp, r->n_normal, tp,
                            r->n_anomalous);
    }
    folder_table(&b, d, by_score);

    stfpm_strbuf_puts(&b, "<h2 id=\"curves\">Curves</h2>\n");
    if (!r->single_class) {
        const double ex = 0.5 / 294.0, ey = 0.5 / 282.0;   /* half a pixel of the plot area */
        pcur.ex = ex;
        pcur.ey = ey;
        proc.ex = 0.5 * STFPM_AUPRO_FPR_LIMIT / 294.0;
        proc.ey = ey;
        s = image_roc(d->scores, labels, n, &iroc);
        if (s == STFPM_OK) s = pixel_curves(d, STFPM_AUPRO_FPR_LIMIT, &pcur, &proc);
        if (s != STFPM_OK) { stfpm_wrap_error(s, "test report %s", page_path); goto done; }
        stfpm_strbuf_puts(&b, "<div class=\"charts\">\n<figure>\n");
        const curve both[2] = {iroc, pcur};
        char n0[64], n1[64];
        snprintf(n0, sizeof n0, "image (AUROC %.4f)", r->image_auroc);
        snprintf(n1, sizeof n1, "pixel (AUROC %.4f)", r->pixel_auroc);
        const char *names[2] = {n0, n1}, *colours[2] = {"#2f6fde", "#d9412b"};
        curve_chart(&b, "ROC curves", "false positive rate", "true positive rate", 1.0, both, 2, names, colours, 0, 1);
        stfpm_strbuf_puts(&b, "<figcaption>ROC: images by their score, pixels by their map value (every pixel of "
                          "every test image); one point per distinct score.</figcaption>\n</figure>\n<figure>\n");
        char n2[64];
        snprintf(n2, sizeof n2, "PRO (AU-PRO %.4f)", r->aupro);
        const char *pn[1] = {n2}, *pcol[1] = {"#1b9e77"};
        curve_chart(&b, "PRO curve", "false positive rate (normal pixels)", "per-region overlap", STFPM_AUPRO_FPR_LIMIT,
                    &proc, 1, pn, pcol, 1, 0);
        stfpm_strbuf_printf(&b, "<figcaption>PRO curve up to FPR %.1f: mean overlap of the ground-truth regions "
                            "(8-connected components of each mask) against the false positive rate over all normal "
                            "pixels. AU-PRO is the shaded area divided by %.1f.</figcaption>\n</figure>\n</div>\n",
                            STFPM_AUPRO_FPR_LIMIT, STFPM_AUPRO_FPR_LIMIT);
    } else {
        stfpm_strbuf_puts(&b, "<p>No ROC or PRO curve: the test split has only one kind of image.</p>\n");
    }
    stfpm_strbuf_puts(&b, "<div class=\"charts\">\n<figure>\n");
    score_histogram(&b, d->scores, labels, n, d->threshold);
    stfpm_strbuf_puts(&b, "<figcaption>Image scores of the normal and the anomalous test images");
    if (isfinite(d->threshold)) stfpm_strbuf_puts(&b, "; the dashed line is the model's threshold (a score above it "
                                                  "is judged anomalous)");
    stfpm_strbuf_puts(&b, ".</figcaption>\n</figure>\n</div>\n");

    stfpm_strbuf_puts(&b, "<h2 id=\"gallery\">Gallery</h2>\n<p class=\"note\">Each row: the image as the network sees it, its "
                      "ground truth (white = defect) and the anomaly map over the image, all at the model's size. "
                      "Colours, the same for every map:</p>\n");
    colour_bar(&b, scale, d->threshold);
    static const char *const heads[3] = {"Worst normal images", "Worst anomalous images", "Typical images"};
    int shown_head = -1;
    for (int k = 0; k < n_cases; k++) {
        const int group = cases[k].group;
        if (group != shown_head) {
            stfpm_strbuf_printf(&b, "%s<h3>%s</h3>\n<div class=\"gallery\">\n", shown_head >= 0 ? "</div>\n" : "",
                                heads[group]);
            shown_head = group;
        }
        case_html(&b, k + 1, d, cases[k].index, cases[k].why);
    }
    if (shown_head >= 0) stfpm_strbuf_puts(&b, "</div>\n");
    page_end(&b);
    if (b.oom) { s = stfpm_set_error(STFPM_ERR_OOM, "out of host memory building %s", page_path); goto done; }
    s = stfpm_write_text_atomic(page_path, b.text, b.len);
done:
    curve_free(&iroc);
    curve_free(&pcur);
    curve_free(&proc);
    free(by_score);
    free(labels);
    stfpm_strbuf_free(&b);
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* The training report                                                                         */

typedef struct log_rows {
    double *epoch, *train, *val, *map, *secs, *ips;
    int *best;
    int n;
} log_rows;

static void log_rows_free(log_rows *l) {
    free(l->epoch); free(l->train); free(l->val); free(l->map); free(l->secs); free(l->ips); free(l->best);
    memset(l, 0, sizeof *l);
}

/* The rows of train_log.csv (epoch,train_loss,val_loss,val_map_mean,seconds,images_per_s,best);
 * the header and anything that is not a data row are skipped. */
static stfpm_status log_parse(const char *text, log_rows *l) {
    int cap = 1;
    for (const char *p = text; *p; p++) cap += *p == '\n';
    memset(l, 0, sizeof *l);
    l->epoch = malloc(sizeof(double) * cap); l->train = malloc(sizeof(double) * cap);
    l->val = malloc(sizeof(double) * cap); l->map = malloc(sizeof(double) * cap);
    l->secs = malloc(sizeof(double) * cap); l->ips = malloc(sizeof(double) * cap);
    l->best = malloc(sizeof(int) * cap);
    if (!l->epoch || !l->train || !l->val || !l->map || !l->secs || !l->ips || !l->best) {
        log_rows_free(l);
        return stfpm_set_error(STFPM_ERR_OOM, "out of host memory for the training log");
    }
    for (const char *p = text; *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char line[512];
        if (len < sizeof line) {
            memcpy(line, p, len);
            line[len] = 0;
            double v[6];
            int best = 0, used = 0;
            char *q = line, *e;
            for (int k = 0; k < 6; k++) {
                v[k] = strtod(q, &e);
                if (e == q || *e != ',') break;
                q = e + 1;
                used++;
            }
            if (used == 6 && v[0] >= 1 && sscanf(q, "%d", &best) == 1) {
                int i = l->n++;
                l->epoch[i] = v[0]; l->train[i] = v[1]; l->val[i] = v[2]; l->map[i] = v[3];
                l->secs[i] = v[4]; l->ips[i] = v[5]; l->best[i] = best;
            }
        }
        p += len + (end ? 1 : 0);
    }
    return STFPM_OK;
}

/* Range of the finite (and, for a log axis, positive) values of up to two series. */
static int series_range(const double *a, const double *b, int n, int positive, double *lo, double *hi) {
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 2; k++) {
            const double *s = k ? b : a;
            if (!s || !isfinite(s[i]) || (positive && !(s[i] > 0))) continue;
            *lo = fmin(*lo, s[i]);
            *hi = fmax(*hi, s[i]);
        }
    return *lo <= *hi;
}

/* One per-epoch chart: up to two series, the best epoch marked on the second (or the first). */
static void epoch_chart(stfpm_strbuf *b, double width, const log_rows *l, int epochs, int best_epoch, const char *label,
                        const char *ylabel, const double *s0, const char *name0, const double *s1, const char *name1) {
    double lo, hi;
    if (!series_range(s0, s1, l->n, 0, &lo, &hi)) return;
    double plo, phi;
    int logy = series_range(s0, s1, l->n, 1, &plo, &phi) && plo == lo && phi / plo > 10;
    chart c = {.b = b, .w = width, .h = 340, .ml = 62, .mr = 16, .mt = 22, .mb = 42, .x0 = 1, .logy = logy, .int_x = 1};
    double last = l->n ? l->epoch[l->n - 1] : 1;
    c.x1 = fmax(fmax(epochs, last), 2);
    if (logy) {
        double span = log10(phi / plo);
        c.y0 = pow(10, log10(plo) - 0.04 * span);
        c.y1 = pow(10, log10(phi) + 0.04 * span);
    } else {
        double pad = (hi - lo) * 0.05;
        c.y0 = lo - pad;
        c.y1 = hi + pad;
        nice_range(&c.y0, &c.y1, 5);
    }
    char yl[160];
    snprintf(yl, sizeof yl, "%s%s", ylabel, logy ? " (log scale)" : "");
    chart_begin(&c, label, "epoch", yl);
    const char *colours[2] = {"#2f6fde", "#e07b00"};
    const char *names[2] = {name0, name1};
    chart_line(&c, l->epoch, s0, l->n, colours[0], 0);
    if (s1) chart_line(&c, l->epoch, s1, l->n, colours[1], 0);
    if (l->n <= 60) {
        chart_dots(&c, l->epoch, s0, l->n, colours[0]);
        if (s1) chart_dots(&c, l->epoch, s1, l->n, colours[1]);
    }
    for (int i = 0; i < l->n; i++) {
        if ((int)l->epoch[i] != best_epoch) continue;
        const double *s = s1 && isfinite(s1[i]) ? s1 : s0;
        char t[64];
        snprintf(t, sizeof t, "best: epoch %d", best_epoch);
        chart_vmark(&c, l->epoch[i], "#1d2330", t);
        if (isfinite(s[i]) && (!logy || s[i] > 0))
            stfpm_strbuf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5.5\" fill=\"none\" stroke=\"#1d2330\" "
                                "stroke-width=\"2\"/>\n", chart_px(&c, l->epoch[i]), chart_py(&c, s[i]));
    }
    chart_legend(&c, LEGEND_TOP_RIGHT, s1 ? 2 : 1, names, colours);
    chart_end(&c);
}

stfpm_status stfpm_report_write_train(const char *path, const stfpm_train_report *t) {
    if (!path || !t || !t->log_csv) return stfpm_set_error(STFPM_ERR_ARG, "training report: incomplete input");
    log_rows l;
    STFPM_TRY(log_parse(t->log_csv, &l));
    int has_val = 0, has_map = 0;
    double total_s = 0;
    for (int i = 0; i < l.n; i++) {
        has_val |= isfinite(l.val[i]);
        has_map |= isfinite(l.map[i]);
        total_s += isfinite(l.secs[i]) ? l.secs[i] : 0;
    }
    int bi = -1;
    for (int i = 0; i < l.n; i++)
        if ((int)l.epoch[i] == t->best_epoch) bi = i;
    stfpm_strbuf b = {0};
    char title[4300];
    snprintf(title, sizeof title, "STFPM training: %s", t->run_dir ? base_name(t->run_dir) : "run");
    page_begin(&b, title);
    stfpm_strbuf_puts(&b, "<h1>");
    put_esc(&b, title);
    stfpm_strbuf_puts(&b, "</h1>\n<p class=\"meta\">run <code>");
    put_esc(&b, t->run_dir);
    stfpm_strbuf_printf(&b, "</code></p>\n<p class=\"meta\">%d of %d epochs done, %.0f s of training", l.n > 0 ?
                        (int)l.epoch[l.n - 1] : 0, t->epochs, total_s);
    if (l.n > 0 && isfinite(l.ips[l.n - 1])) stfpm_strbuf_printf(&b, ", last epoch %.1f images/s", l.ips[l.n - 1]);
    stfpm_strbuf_puts(&b, "; rewritten at the end of every epoch</p>\n");
    const int by_map = t->checkpoint_by == STFPM_SELECT_BY_VAL_MAP;
    if (bi >= 0) {
        stfpm_strbuf_printf(&b, "<p>Best epoch: <b id=\"best-epoch\" data-value=\"%d\">%d</b>", t->best_epoch,
                            t->best_epoch);
        if (has_val)
            stfpm_strbuf_printf(&b, " (the lowest %s, %.6g): its weights are <code>best.safetensors</code>.</p>\n",
                                by_map ? "mean validation anomaly map" : "validation loss",
                                by_map ? l.map[bi] : l.val[bi]);
        else
            stfpm_strbuf_puts(&b, " (no validation images: the last epoch is kept as <code>best.safetensors</code>)."
                              "</p>\n");
    } else {
        stfpm_strbuf_puts(&b, "<p>No best epoch yet.</p>\n");
    }
    stfpm_strbuf_puts(&b, "<h2>Curves</h2>\n<div class=\"charts\">\n<figure>\n");
    epoch_chart(&b, has_map ? 540 : 800, &l, t->epochs, t->best_epoch, "loss per epoch", "loss (sum over the levels)", l.train,
                "train (mean over the batches)", has_val ? l.val : NULL, "validation");
    stfpm_strbuf_puts(&b, "<figcaption>Training loss (mean of the epoch's batches, student in training mode) and "
                      "validation loss (held-out normal images, eval mode) per epoch; the circle marks the best "
                      "epoch.</figcaption>\n</figure>\n");
    if (has_map) {
        stfpm_strbuf_puts(&b, "<figure>\n");
        epoch_chart(&b, 540, &l, t->epochs, t->best_epoch, "mean validation anomaly map per epoch", "mean anomaly map",
                    l.map, "validation, mean map", NULL, NULL);
        stfpm_strbuf_puts(&b, "<figcaption>Mean anomaly map of the validation images per epoch (the checkpoint "
                          "rule with --checkpoint-by map).</figcaption>\n</figure>\n");
    }
    stfpm_strbuf_puts(&b, "</div>\n<h2>Epochs</h2>\n<table>\n<thead><tr><th>epoch</th><th>train loss</th>"
                      "<th>validation loss</th>");
    if (has_map) stfpm_strbuf_puts(&b, "<th>mean validation map</th>");
    stfpm_strbuf_puts(&b, "<th>seconds</th><th>images/s</th><th>new best</th></tr></thead>\n<tbody>\n");
    for (int i = 0; i < l.n; i++) {
        const char *cls = i == bi ? " class=\"best\"" : "";
        stfpm_strbuf_printf(&b, "<tr><td%s>%d</td><td%s>%.6g</td><td%s>", cls, (int)l.epoch[i], cls, l.train[i], cls);
        if (isfinite(l.val[i])) stfpm_strbuf_printf(&b, "%.6g", l.val[i]);
        else stfpm_strbuf_puts(&b, "\xe2\x80\x94");
        stfpm_strbuf_puts(&b, "</td>");
        if (has_map) {
            stfpm_strbuf_printf(&b, "<td%s>", cls);
            if (isfinite(l.map[i])) stfpm_strbuf_printf(&b, "%.6g", l.map[i]);
            else stfpm_strbuf_puts(&b, "\xe2\x80\x94");
            stfpm_strbuf_puts(&b, "</td>");
        }
        stfpm_strbuf_printf(&b, "<td%s>%.1f</td><td%s>%.1f</td><td%s>%s</td></tr>\n", cls, l.secs[i], cls, l.ips[i],
                            cls, l.best[i] ? "yes" : "");
    }
    stfpm_strbuf_puts(&b, "</tbody>\n</table>\n");
    page_end(&b);
    log_rows_free(&l);
    stfpm_status s;
    if (b.oom) s = stfpm_set_error(STFPM_ERR_OOM, "out of host memory building %s", path);
    else s = stfpm_write_text_atomic(path, b.text, b.len);
    stfpm_strbuf_free(&b);
    return s;
}
