/* Plain C reference convolution (no bias), NCHW, double accumulation. For tests only.
 * x (n, cin, h, w), w (cout, cin, kh, kw), y (n, cout, ho, wo),
 * ho = (h + 2*pad - kh) / stride + 1 (same for wo). */
#ifndef STFPM_TESTS_REF_CONV_H
#define STFPM_TESTS_REF_CONV_H
#include <stddef.h>

typedef struct ref_conv_shape {
    int n, cin, h, w;     /* input */
    int cout, kh, kw;     /* weight */
    int stride, pad;
} ref_conv_shape;

int ref_conv_ho(const ref_conv_shape *s);
int ref_conv_wo(const ref_conv_shape *s);
size_t ref_conv_x_numel(const ref_conv_shape *s);
size_t ref_conv_w_numel(const ref_conv_shape *s);
size_t ref_conv_y_numel(const ref_conv_shape *s);

/* y = conv(x, w) */
void ref_conv2d_forward(const ref_conv_shape *s, const float *x, const float *w, float *y);
/* dx = dL/dx given dy = dL/dy (overwritten) */
void ref_conv2d_backward_data(const ref_conv_shape *s, const float *dy, const float *w, float *dx);
/* dw = dL/dw given dy = dL/dy (overwritten) */
void ref_conv2d_backward_weight(const ref_conv_shape *s, const float *x, const float *dy, float *dw);
/* Double-precision forward (for finite differences). */
void ref_conv2d_forward_f64(const ref_conv_shape *s, const double *x, const double *w, double *y);
/* sum(dy * conv(x, w)) in double: a loss whose gradients are the backward results. */
double ref_conv2d_dot_loss(const ref_conv_shape *s, const double *x, const double *w, const double *dy);

#endif
