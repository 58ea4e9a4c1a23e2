/* Plain C references (double accumulation) for max pooling, bilinear resize and the STFPM
 * feature-matching distance. Same semantics as include/stfpm/ops.h. Arrays are NCHW.
 * The _d variants work on doubles end to end (finite differences); the float ones convert. */
#ifndef STFPM_REF_MISC_H
#define STFPM_REF_MISC_H
#include <stddef.h>

double *ref_to_double(const float *x, size_t n);      /* malloc'd copy */
void ref_to_float(const double *x, size_t n, float *out);

/* Max pool k x k / stride / pad, padding = -inf, ties -> first maximum in row-major order,
 * NaN wins. Output (n, c, ho, wo) with ho = (h + 2 pad - k) / stride + 1. */
void ref_maxpool_forward_d(const double *x, int n, int c, int h, int w, int k, int stride, int pad,
                           double *y);
void ref_maxpool_forward(const float *x, int n, int c, int h, int w, int k, int stride, int pad,
                         float *y);
/* dx (n, c, h, w) overwritten: dy scattered to each window's argmax. */
void ref_maxpool_backward(const float *x, int n, int c, int h, int w, int k, int stride, int pad,
                          const float *dy, float *dx);

/* Bilinear resize (n, c, h, w) -> (n, c, ho, wo), align_corners = false, PyTorch's float index
 * arithmetic (scale = (float)in / out, src = max(scale * (dst + 0.5) - 0.5, 0)). */
void ref_bilinear_index(int dst, int in, int out, int *i0, int *i1, float *l0, float *l1);
void ref_upsample_bilinear_forward_d(const double *x, int n, int c, int h, int w, int ho, int wo,
                                     double *y);
void ref_upsample_bilinear_forward(const float *x, int n, int c, int h, int w, int ho, int wo,
                                   float *y);
/* dx (n, c, h, w) overwritten from dy (n, c, ho, wo) (adjoint of the forward). */
void ref_upsample_bilinear_backward(const float *dy, int n, int c, int h, int w, int ho, int wo,
                                    float *dx);

/* d (n, 1, h, w) = sum_c (t / max(|t|, 1e-12) - s / max(|s|, 1e-12))^2 per position. */
void ref_fm_distance_d(const double *t, const double *s, int n, int c, int h, int w, double *d);
void ref_fm_distance(const float *t, const float *s, int n, int c, int h, int w, float *d);
/* ds (n, c, h, w) overwritten with dL/ds for L = scale * sum d (F.normalize autograd:
 * g = 2 scale (s_hat - t_hat); ds = (g - s_hat <g, s_hat>) / |s| if |s| > 1e-12 else g / 1e-12). */
void ref_fm_distance_backward(const float *t, const float *s, int n, int c, int h, int w, double scale,
                              float *ds);
#endif
