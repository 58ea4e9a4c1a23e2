/* Plain C references for max pooling, bilinear resize and the STFPM distance (ref_misc.h). */
#include "ref_misc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double *ref_to_double(const float *x, size_t n) {
    double *d = malloc((n ? n : 1) * sizeof *d);
    if (d)
        for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

void ref_to_float(const double *x, size_t n, float *out) {
    for (size_t i = 0; i < n; i++) out[i] = (float)x[i];
}

/* ------------------------------------------------------------------------------------------ */
/* max pool */

static int pool_out(int in, int k, int stride, int pad) { return (in + 2 * pad - k) / stride + 1; }

/* Plane-relative index of the maximum of window (oh, ow); *best receives its value. */
static size_t maxpool_argmax(const double *p, int h, int w, int k, int stride, int pad, int oh, int ow,
                             double *best) {
    int h0 = oh * stride - pad, w0 = ow * stride - pad;
    double b = -INFINITY;
    size_t arg = (size_t)(h0 < 0 ? 0 : h0) * w + (w0 < 0 ? 0 : w0);
    for (int ih = h0; ih < h0 + k; ih++) {
        for (int iw = w0; iw < w0 + k; iw++) {
            if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
            double v = p[(size_t)ih * w + iw];
            if (v > b || isnan(v)) { b = v; arg = (size_t)ih * w + iw; }
        }
    }
    *best = b;
    return arg;
}

void ref_maxpool_forward_d(const double *x, int n, int c, int h, int w, int k, int stride, int pad,
                           double *y) {
    int ho = pool_out(h, k, stride, pad), wo = pool_out(w, k, stride, pad);
    for (size_t pl = 0; pl < (size_t)n * c; pl++)
        for (int oh = 0; oh < ho; oh++)
            for (int ow = 0; ow < wo; ow++)
                maxpool_argmax(x + pl * h * w, h, w, k, stride, pad, oh, ow,
                               &y[(pl * ho + oh) * wo + ow]);
}

void ref_maxpool_forward(const float *x, int n, int c, int h, int w, int k, int stride, int pad,
                         float *y) {
    size_t ni = (size_t)n * c * h * w, no = (size_t)n * c * pool_out(h, k, stride, pad) * pool_out(w, k, stride, pad);
    double *xd = ref_to_double(x, ni), *yd = malloc(no * sizeof *yd);
    ref_maxpool_forward_d(xd, n, c, h, w, k, stride, pad, yd);
    ref_to_float(yd, no, y);
    free(xd);
    free(yd);
}

void ref_maxpool_backward(const float *x, int n, int c, int h, int w, int k, int stride, int pad,
                          const float *dy, float *dx) {
    int ho = pool_out(h, k, stride, pad), wo = pool_out(w, k, stride, pad);
    size_t ni = (size_t)n * c * h * w;
    double *xd = ref_to_double(x, ni), *acc = calloc(ni, sizeof *acc);
    for (size_t pl = 0; pl < (size_t)n * c; pl++)
        for (int oh = 0; oh < ho; oh++)
            for (int ow = 0; ow < wo; ow++) {
                double best;
                size_t a = maxpool_argmax(xd + pl * h * w, h, w, k, stride, pad, oh, ow, &best);
                acc[pl * h * w + a] += dy[(pl * ho + oh) * wo + ow];
            }
    ref_to_float(acc, ni, dx);
    free(xd);
    free(acc);
}

/* ------------------------------------------------------------------------------------------ */
/* bilinear resize */

void ref_bilinear_index(int dst, int in, int out, int *i0, int *i1, float *l0, float *l1) {
    float scale = (float)in / (float)out;
    float src = scale * ((float)dst + 0.5f) - 0.5f;
    if (src < 0.0f) src = 0.0f;
    int a = (int)src;
    *i0 = a;
    *i1 = a + (a < in - 1 ? 1 : 0);
    float l = src - (float)a;
    if (l < 0.0f) l = 0.0f;
    if (l > 1.0f) l = 1.0f;
    *l1 = l;
    *l0 = 1.0f - l;
}

void ref_upsample_bilinear_forward_d(const double *x, int n, int c, int h, int w, int ho, int wo,
                                     double *y) {
    for (size_t pl = 0; pl < (size_t)n * c; pl++) {
        const double *p = x + pl * h * w;
        for (int oh = 0; oh < ho; oh++) {
            int h0, h1;
            float hl0, hl1;
            ref_bilinear_index(oh, h, ho, &h0, &h1, &hl0, &hl1);
            for (int ow = 0; ow < wo; ow++) {
                int w0, w1;
                float wl0, wl1;
                ref_bilinear_index(ow, w, wo, &w0, &w1, &wl0, &wl1);
                double top = wl0 * p[(size_t)h0 * w + w0] + (double)wl1 * p[(size_t)h0 * w + w1];
                double bot = wl0 * p[(size_t)h1 * w + w0] + (double)wl1 * p[(size_t)h1 * w + w1];
                y[(pl * ho + oh) * wo + ow] = hl0 * top + (double)hl1 * bot;
            }
        }
    }
}

void ref_upsample_bilinear_forward(const float *x, int n, int c, int h, int w, int ho, int wo,
                                   float *y) {
    size_t ni = (size_t)n * c * h * w, no = (size_t)n * c * ho * wo;
    double *xd = ref_to_double(x, ni), *yd = malloc(no * sizeof *yd);
    ref_upsample_bilinear_forward_d(xd, n, c, h, w, ho, wo, yd);
    ref_to_float(yd, no, y);
    free(xd);
    free(yd);
}

void ref_upsample_bilinear_backward(const float *dy, int n, int c, int h, int w, int ho, int wo,
                                    float *dx) {
    size_t ni = (size_t)n * c * h * w;
    double *acc = calloc(ni, sizeof *acc);
    for (size_t pl = 0; pl < (size_t)n * c; pl++) {
        double *q = acc + pl * h * w;
        for (int oh = 0; oh < ho; oh++) {
            int h0, h1;
            float hl0, hl1;
            ref_bilinear_index(oh, h, ho, &h0, &h1, &hl0, &hl1);
            for (int ow = 0; ow < wo; ow++) {
                int w0, w1;
                float wl0, wl1;
                ref_bilinear_index(ow, w, wo, &w0, &w1, &wl0, &wl1);
                double g = dy[(pl * ho + oh) * wo + ow];
                q[(size_t)h0 * w + w0] += (double)hl0 * wl0 * g;
                q[(size_t)h0 * w + w1] += (double)hl0 * wl1 * g;
                q[(size_t)h1 * w + w0] += (double)hl1 * wl0 * g;
                q[(size_t)h1 * w + w1] += (double)hl1 * wl1 * g;
            }
        }
    }
    ref_to_float(acc, ni, dx);
    free(acc);
}

/* ------------------------------------------------------------------------------------------ */
/* STFPM distance */

#define REF_FM_EPS 1e-12

void ref_fm_distance_d(const double *t, const double *s, int n, int c, int h, int w, double *d) {
    size_t hw = (size_t)h * w;
    for (int b = 0; b < n; b++)
        for (size_t p = 0; p < hw; p++) {
            const double *tp = t + (size_t)b * c * hw + p, *sp = s + (size_t)b * c * hw + p;
            double tt = 0, ss = 0;
            for (int ch = 0; ch < c; ch++) {
                tt += tp[ch * hw] * tp[ch * hw];
                ss += sp[ch * hw] * sp[ch * hw];
            }
            double nt = fmax(sqrt(tt), REF_FM_EPS), ns = fmax(sqrt(ss), REF_FM_EPS), acc = 0;
            for (int ch = 0; ch < c; ch++) {
                double e = tp[ch * hw] / nt - sp[ch * hw] / ns;
                acc += e * e;
            }
            d[(size_t)b * hw + p] = acc;
        }
}

void ref_fm_distance(const float *t, const float *s, int n, int c, int h, int w, float *d) {
    size_t ni = (size_t)n * c * h * w, no = (size_t)n * h * w;
    double *td = ref_to_double(t, ni), *sd = ref_to_double(s, ni), *dd = malloc(no * sizeof *dd);
    ref_fm_distance_d(td, sd, n, c, h, w, dd);
    ref_to_float(dd, no, d);
    free(td);
    free(sd);
    free(dd);
}

void ref_fm_distance_backward(const float *t, const float *s, int n, int c, int h, int w, double scale,
                              float *ds) {
    size_t hw = (size_t)h * w;
    double *g = malloc((size_t)c * sizeof *g), *sh = malloc((size_t)c * sizeof *sh);
    for (int b = 0; b < n; b++)
        for (size_t p = 0; p < hw; p++) {
            size_t base = (size_t)b * c * hw + p;
            double tt = 0, ss = 0;
            for (int ch = 0; ch < c; ch++) {
                double a = t[base + ch * hw], q = s[base + ch * hw];
                tt += a * a;
                ss += q * q;
            }
            double nt = fmax(sqrt(tt), REF_FM_EPS), nsr = sqrt(ss), ns = fmax(nsr, REF_FM_EPS);
            double gs = 0;
            for (int ch = 0; ch < c; ch++) {
                sh[ch] = s[base + ch * hw] / ns;
                g[ch] = 2.0 * scale * (sh[ch] - t[base + ch * hw] / nt);
                gs += g[ch] * sh[ch];
            }
            for (int ch = 0; ch < c; ch++)
                ds[base + ch * hw] = (float)(nsr > REF_FM_EPS ? (g[ch] - sh[ch] * gs) / nsr
                                                              : g[ch] / REF_FM_EPS);
        }
    free(g);
    free(sh);
}
