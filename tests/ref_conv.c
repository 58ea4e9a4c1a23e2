/* Plain C reference convolution, double accumulation (see ref_conv.h). */
#include "ref_conv.h"

#include <stdlib.h>

int ref_conv_ho(const ref_conv_shape *s) { return (s->h + 2 * s->pad - s->kh) / s->stride + 1; }
int ref_conv_wo(const ref_conv_shape *s) { return (s->w + 2 * s->pad - s->kw) / s->stride + 1; }
size_t ref_conv_x_numel(const ref_conv_shape *s) { return (size_t)s->n * s->cin * s->h * s->w; }
size_t ref_conv_w_numel(const ref_conv_shape *s) { return (size_t)s->cout * s->cin * s->kh * s->kw; }
size_t ref_conv_y_numel(const ref_conv_shape *s) {
    return (size_t)s->n * s->cout * ref_conv_ho(s) * ref_conv_wo(s);
}

/* Input row / column read by output position o and kernel tap k, or -1 when in the padding. */
static int src_index(int o, int k, int stride, int pad, int size) {
    int i = o * stride - pad + k;
    return i >= 0 && i < size ? i : -1;
}

void ref_conv2d_forward_f64(const ref_conv_shape *s, const double *x, const double *w, double *y) {
    int ho = ref_conv_ho(s), wo = ref_conv_wo(s);
    for (int b = 0; b < s->n; b++)
        for (int co = 0; co < s->cout; co++)
            for (int oh = 0; oh < ho; oh++)
                for (int ow = 0; ow < wo; ow++) {
                    double acc = 0;
                    for (int ci = 0; ci < s->cin; ci++)
                        for (int kh = 0; kh < s->kh; kh++) {
                            int ih = src_index(oh, kh, s->stride, s->pad, s->h);
                            if (ih < 0) continue;
                            for (int kw = 0; kw < s->kw; kw++) {
                                int iw = src_index(ow, kw, s->stride, s->pad, s->w);
                                if (iw < 0) continue;
                                acc += x[(((size_t)b * s->cin + ci) * s->h + ih) * s->w + iw] *
                                       w[(((size_t)co * s->cin + ci) * s->kh + kh) * s->kw + kw];
                            }
                        }
                    y[(((size_t)b * s->cout + co) * ho + oh) * wo + ow] = acc;
                }
}

static double *to_f64(const float *a, size_t n) {
    double *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = a[i];
    return d;
}

void ref_conv2d_forward(const ref_conv_shape *s, const float *x, const float *w, float *y) {
    size_t ny = ref_conv_y_numel(s);
    double *xd = to_f64(x, ref_conv_x_numel(s)), *wd = to_f64(w, ref_conv_w_numel(s));
    double *yd = malloc(ny * sizeof *yd);
    ref_conv2d_forward_f64(s, xd, wd, yd);
    for (size_t i = 0; i < ny; i++) y[i] = (float)yd[i];
    free(xd);
    free(wd);
    free(yd);
}

void ref_conv2d_backward_data(const ref_conv_shape *s, const float *dy, const float *w, float *dx) {
    int ho = ref_conv_ho(s), wo = ref_conv_wo(s);
    size_t nx = ref_conv_x_numel(s);
    double *acc = calloc(nx, sizeof *acc);
    for (int b = 0; b < s->n; b++)
        for (int co = 0; co < s->cout; co++)
            for (int oh = 0; oh < ho; oh++)
                for (int ow = 0; ow < wo; ow++) {
                    double g = dy[(((size_t)b * s->cout + co) * ho + oh) * wo + ow];
                    for (int ci = 0; ci < s->cin; ci++)
                        for (int kh = 0; kh < s->kh; kh++) {
                            int ih = src_index(oh, kh, s->stride, s->pad, s->h);
                            if (ih < 0) continue;
                            for (int kw = 0; kw < s->kw; kw++) {
                                int iw = src_index(ow, kw, s->stride, s->pad, s->w);
                                if (iw < 0) continue;
                                acc[(((size_t)b * s->cin + ci) * s->h + ih) * s->w + iw] +=
                                    g * w[(((size_t)co * s->cin + ci) * s->kh + kh) * s->kw + kw];
                            }
                        }
                }
    for (size_t i = 0; i < nx; i++) dx[i] = (float)acc[i];
    free(acc);
}

void ref_conv2d_backward_weight(const ref_conv_shape *s, const float *x, const float *dy, float *dw) {
    int ho = ref_conv_ho(s), wo = ref_conv_wo(s);
    size_t nw = ref_conv_w_numel(s);
    double *acc = calloc(nw, sizeof *acc);
    for (int b = 0; b < s->n; b++)
        for (int co = 0; co < s->cout; co++)
            for (int oh = 0; oh < ho; oh++)
                for (int ow = 0; ow < wo; ow++) {
                    double g = dy[(((size_t)b * s->cout + co) * ho + oh) * wo + ow];
                    for (int ci = 0; ci < s->cin; ci++)
                        for (int kh = 0; kh < s->kh; kh++) {
                            int ih = src_index(oh, kh, s->stride, s->pad, s->h);
                            if (ih < 0) continue;
                            for (int kw = 0; kw < s->kw; kw++) {
                                int iw = src_index(ow, kw, s->stride, s->pad, s->w);
                                if (iw < 0) continue;
                                acc[(((size_t)co * s->cin + ci) * s->kh + kh) * s->kw + kw] +=
                                    g * x[(((size_t)b * s->cin + ci) * s->h + ih) * s->w + iw];
                            }
                        }
                }
    for (size_t i = 0; i < nw; i++) dw[i] = (float)acc[i];
    free(acc);
}

double ref_conv2d_dot_loss(const ref_conv_shape *s, const double *x, const double *w, const double *dy) {
    size_t ny = ref_conv_y_numel(s);
    double *y = malloc(ny * sizeof *y);
    ref_conv2d_forward_f64(s, x, w, y);
    double l = 0;
    for (size_t i = 0; i < ny; i++) l += dy[i] * y[i];
    free(y);
    return l;
}
