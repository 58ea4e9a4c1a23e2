/* Plain-C CPU references of the device ops in include/stfpm/ops.h (batch norm, element-wise,
 * reductions, SGD), accumulating in double. Arrays are NCHW, contiguous; per-channel
 * parameters are arrays of C values. Reusable by any test (linked into every test program). */
#ifndef STFPM_REF_OPS_H
#define STFPM_REF_OPS_H

#include <stddef.h>

/* --- batch norm, PyTorch semantics -------------------------------------------------------- */
/* Train mode in double precision (used for finite differences): y, save_mean, save_invstd
 * (may be NULL) receive the outputs; running_mean / running_var (may be NULL) are updated with
 * momentum and the unbiased variance. */
void ref_batchnorm_forward_train_d(const double *x, int n, int c, int h, int w, const double *weight,
                                   const double *bias, double *running_mean, double *running_var,
                                   double momentum, double eps, double *y, double *save_mean,
                                   double *save_invstd);
/* Float interface of the same (computed in double, rounded at the end). */
void ref_batchnorm_forward_train(const float *x, int n, int c, int h, int w, const float *weight,
                                 const float *bias, float *running_mean, float *running_var,
                                 float momentum, float eps, float *y, float *save_mean,
                                 float *save_invstd);
void ref_batchnorm_forward_eval(const float *x, int n, int c, int h, int w, const float *weight,
                                const float *bias, const float *running_mean, const float *running_var,
                                float eps, float *y);
/* dx = invstd*w*(dy - mean(dy) - xhat*mean(dy*xhat)), dweight = sum(dy*xhat), dbias = sum(dy)
 * (dweight / dbias may be NULL). save_mean / save_invstd as produced by the forward pass. */
void ref_batchnorm_backward_d(const double *x, const double *dy, int n, int c, int h, int w,
                              const double *weight, const double *save_mean, const double *save_invstd,
                              double *dx, double *dweight, double *dbias);
void ref_batchnorm_backward(const float *x, const float *dy, int n, int c, int h, int w,
                            const float *weight, const float *save_mean, const float *save_invstd,
                            float *dx, float *dweight, float *dbias);

/* --- element-wise (count = number of elements) --------------------------------------------- */
void ref_relu_forward(const float *x, size_t count, float *y);
void ref_relu_backward(const float *y, const float *dy, size_t count, float *dx);
void ref_add(const float *a, const float *b, size_t count, float *y);
void ref_mul(const float *a, const float *b, size_t count, float *y);
void ref_axpy(float alpha, const float *x, size_t count, float *y);
void ref_scale(float alpha, float *x, size_t count);

/* --- reductions ------------------------------------------------------------------------------ */
/* out[i], i < n: max / mean of sample i's len = C*H*W values. */
void ref_reduce_max(const float *x, int n, size_t len, float *out);
void ref_reduce_mean(const float *x, int n, size_t len, float *out);
float ref_reduce_mean_all(const float *x, size_t count);

/* --- SGD, PyTorch semantics (v may be NULL when momentum == 0) ------------------------------ */
void ref_sgd_step(float *w, const float *g, float *v, size_t count, float lr, float momentum,
                  float weight_decay, int first_step);

#endif
