/* Every operation STFPM needs, forward and backward, on the OpenCL device.
 * All tensors are float32 NCHW device tensors (stfpm_tensor); outputs must be allocated by
 * the caller with the right shape (shape mismatches return STFPM_ERR_ARG). Unless a comment
 * says "accumulates", outputs are overwritten. In-place use is allowed only where stated.
 * Per-channel parameters (BN weight, bias, statistics) are tensors of shape (1, C, 1, 1).
 *
 * Usage: allocate the inputs and outputs with stfpm_tensor_alloc on a context (stfpm/stfpm.h),
 * upload with stfpm_tensor_write, call the op (each returns a status and names the tensor and
 * shapes at fault), read back with stfpm_tensor_read. The ops queue their kernels in order on
 * the context's queue; reading a result waits for them. These are the building blocks of
 * stfpm/resnet.h and stfpm/pyramid.h; applications usually need only stfpm/pipeline.h. */
#ifndef STFPM_OPS_H
#define STFPM_OPS_H

#include "stfpm/stfpm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* --- convolution (host/conv.c, cl/conv.cl): im2col / col2im + CLBlast SGEMM ------------------ */
/* Activation of a fused convolution epilogue. */
typedef enum stfpm_activation {
    STFPM_ACT_NONE = 0,
    STFPM_ACT_RELU = 1
} stfpm_activation;

/* Whether a gradient op overwrites its output or adds to it. */
typedef enum stfpm_grad_write {
    STFPM_GRAD_OVERWRITE = 0,
    STFPM_GRAD_ACCUMULATE = 1
} stfpm_grad_write;

/* An SGD step that starts the momentum buffers (PyTorch's first step: buf = grad) or continues them. */
typedef enum stfpm_sgd_step_kind {
    STFPM_SGD_CONTINUE = 0,
    STFPM_SGD_FIRST_STEP = 1
} stfpm_sgd_step_kind;

/* x: (N, Cin, H, W); w: (Cout, Cin, KH, KW); y: (N, Cout, Ho, Wo) with
 * Ho = (H + 2*pad - KH) / stride + 1. No bias. */
stfpm_status stfpm_conv2d_forward(stfpm_ctx *ctx, const stfpm_tensor *x, const stfpm_tensor *w,
                                  int stride, int pad, stfpm_tensor *y);
/* dx (may be NULL) = dL/dx; dw (may be NULL) = dL/dw. Both overwritten. */
stfpm_status stfpm_conv2d_backward(stfpm_ctx *ctx, const stfpm_tensor *x, const stfpm_tensor *w,
                                   int stride, int pad, const stfpm_tensor *dy,
                                   stfpm_tensor *dx, stfpm_tensor *dw);
/* Forward with a fused epilogue (inference with batch norm folded into w, host/resnet.c):
 *   y = act(conv(x, w) + bias[c] + residual),  act = ReLU for STFPM_ACT_RELU, else identity.
 * bias (1, Cout, 1, 1) and residual (the shape of y) may be NULL. residual may alias y only
 * if it IS y's buffer and offset (read before written, element by element).
 * prepared: NULL, or the weights transformed once by stfpm_conv2d_prepare for this w (saves
 * the Winograd weight transform on every call; ignored when the call does not use Winograd;
 * the F(2x2, 3x3) transform is added to it by the first call that uses that tile). */
typedef struct stfpm_conv_prepared stfpm_conv_prepared;
stfpm_status stfpm_conv2d_forward_fused(stfpm_ctx *ctx, const stfpm_tensor *x, const stfpm_tensor *w,
                                        int stride, int pad, const stfpm_tensor *bias,
                                        const stfpm_tensor *residual, stfpm_activation relu,
                                        const stfpm_conv_prepared *prepared, stfpm_tensor *y);
/* stfpm_conv2d_forward_fused (no residual) for nw weight tensors of the same shape on the same
 * x: ys[j] = act(conv(x, ws[j]) + biases[j]). For im2col convolutions (conv1) each chunk's
 * column matrix is built once for all of them (the teacher's and the student's conv1 at
 * inference); otherwise the same as nw separate calls. biases and prepared may be NULL
 * (or hold NULLs); nw <= 8. */
stfpm_status stfpm_conv2d_forward_fused_shared(stfpm_ctx *ctx, const stfpm_tensor *x, int nw,
                                               const stfpm_tensor *const *ws, int stride, int pad,
                                               const stfpm_tensor *const *biases, stfpm_activation relu,
                                               const stfpm_conv_prepared *const *prepared,
                                               stfpm_tensor *const *ys);
/* Transform w for repeated forward calls (*out = NULL when the convolution does not use
 * Winograd on this device / setting: nothing to prepare). The result must be refreshed when w
 * changes. */
stfpm_status stfpm_conv2d_prepare(stfpm_ctx *ctx, const stfpm_tensor *w, int stride, int pad,
                                  stfpm_conv_prepared **out);
void stfpm_conv2d_prepared_free(stfpm_ctx *ctx, stfpm_conv_prepared *p);
static inline int stfpm_conv_out_size(int in, int k, int stride, int pad) {
    return (in + 2 * pad - k) / stride + 1;
}

/* --- batch norm (host/batchnorm.c, cl/batchnorm.cl) ------------------------------------------ */
/* Train mode: normalise with the biased batch variance, update running statistics with
 * momentum and the unbiased variance (PyTorch semantics). save_mean / save_invstd (1,C,1,1)
 * receive the batch mean and 1/sqrt(var_biased + eps) for the backward pass.
 * running_mean / running_var may be NULL (no update). y may alias x. */
stfpm_status stfpm_batchnorm_forward_train(stfpm_ctx *ctx, const stfpm_tensor *x,
                                           const stfpm_tensor *weight, const stfpm_tensor *bias,
                                           stfpm_tensor *running_mean, stfpm_tensor *running_var,
                                           float momentum, float eps, stfpm_tensor *y,
                                           stfpm_tensor *save_mean, stfpm_tensor *save_invstd);
/* Eval mode: y = (x - running_mean) / sqrt(running_var + eps) * weight + bias. y may alias x. */
stfpm_status stfpm_batchnorm_forward_eval(stfpm_ctx *ctx, const stfpm_tensor *x,
                                          const stfpm_tensor *weight, const stfpm_tensor *bias,
                                          const stfpm_tensor *running_mean,
                                          const stfpm_tensor *running_var, float eps,
                                          stfpm_tensor *y);
/* Train-mode backward. dx, dweight, dbias overwritten (dweight / dbias may be NULL). */
stfpm_status stfpm_batchnorm_backward(stfpm_ctx *ctx, const stfpm_tensor *x, const stfpm_tensor *dy,
                                      const stfpm_tensor *weight, const stfpm_tensor *save_mean,
                                      const stfpm_tensor *save_invstd, stfpm_tensor *dx,
                                      stfpm_tensor *dweight, stfpm_tensor *dbias);

/* --- element-wise (host/elementwise.c, cl/elementwise.cl) ------------------------------------- */
stfpm_status stfpm_relu_forward(stfpm_ctx *ctx, const stfpm_tensor *x, stfpm_tensor *y); /* y may alias x */
/* dx = dy * (y > 0), using the forward OUTPUT y. dx may alias dy. */
stfpm_status stfpm_relu_backward(stfpm_ctx *ctx, const stfpm_tensor *y, const stfpm_tensor *dy,
                                 stfpm_tensor *dx);
/* y = a + b (residual add; its backward passes the gradient to both inputs unchanged).
 * y may alias a or b. */
stfpm_status stfpm_add(stfpm_ctx *ctx, const stfpm_tensor *a, const stfpm_tensor *b, stfpm_tensor *y);
/* y = a * b element-wise (anomaly-map product). y may alias a or b. */
stfpm_status stfpm_mul(stfpm_ctx *ctx, const stfpm_tensor *a, const stfpm_tensor *b, stfpm_tensor *y);
/* y = alpha * x + y */
stfpm_status stfpm_axpy(stfpm_ctx *ctx, float alpha, const stfpm_tensor *x, stfpm_tensor *y);
stfpm_status stfpm_scale(stfpm_ctx *ctx, float alpha, stfpm_tensor *x);

/* --- max pool (host/pool.c, cl/pool.cl): k x k, stride, pad (ResNet: 3, 2, 1) ----------------- */
/* Padding counts as -inf; ties pick the first maximum in row-major window order (PyTorch). */
stfpm_status stfpm_maxpool_forward(stfpm_ctx *ctx, const stfpm_tensor *x, int k, int stride, int pad,
                                   stfpm_tensor *y);
/* dx from x (the argmax is recomputed, deterministic, no atomics). */
stfpm_status stfpm_maxpool_backward(stfpm_ctx *ctx, const stfpm_tensor *x, int k, int stride, int pad,
                                    const stfpm_tensor *dy, stfpm_tensor *dx);

/* --- bilinear resize, align_corners = false (host/upsample.c, cl/upsample.cl) ----------------- */
/* Output size from y (any size, up or down, like F.interpolate(mode="bilinear")). */
stfpm_status stfpm_upsample_bilinear_forward(stfpm_ctx *ctx, const stfpm_tensor *x, stfpm_tensor *y);
stfpm_status stfpm_upsample_bilinear_backward(stfpm_ctx *ctx, const stfpm_tensor *dy, stfpm_tensor *dx);

/* --- STFPM feature-matching loss (host/loss.c, cl/loss.cl), SPEC section 3 -------------------- */
/* d(b, 0, i, j) = sum_c (t/max(|t|,1e-12) - s/max(|s|,1e-12))^2 ; t, s (N,C,H,W); d (N,1,H,W). */
stfpm_status stfpm_fm_distance(stfpm_ctx *ctx, const stfpm_tensor *t, const stfpm_tensor *s,
                               stfpm_tensor *d);
/* ds = dL/ds for L = scale * sum_{b,i,j} d(b,i,j)  (scale = 1 / (N*H*W) gives the mean).
 * STFPM_GRAD_ACCUMULATE: ds += result instead of overwriting. */
stfpm_status stfpm_fm_distance_backward(stfpm_ctx *ctx, const stfpm_tensor *t, const stfpm_tensor *s,
                                        float scale, stfpm_grad_write accumulate, stfpm_tensor *ds);

/* --- reductions (host/reduce.c, cl/reduce.cl) -------------------------------------------------- */
/* out (N,1,1,1): per-sample max or mean over C*H*W. */
stfpm_status stfpm_reduce_max(stfpm_ctx *ctx, const stfpm_tensor *x, stfpm_tensor *out);
stfpm_status stfpm_reduce_mean(stfpm_ctx *ctx, const stfpm_tensor *x, stfpm_tensor *out);
/* out (1,1,1,1): mean over all elements of x. */
stfpm_status stfpm_reduce_mean_all(stfpm_ctx *ctx, const stfpm_tensor *x, stfpm_tensor *out);

/* --- optimiser (host/sgd.c, cl/sgd.cl), SPEC section 3 ----------------------------------------- */
/* PyTorch SGD: g' = g + wd*w; v = (STFPM_SGD_FIRST_STEP ? g' : momentum*v + g'); w -= lr*v. */
stfpm_status stfpm_sgd_step(stfpm_ctx *ctx, stfpm_tensor *w, const stfpm_tensor *g, stfpm_tensor *v,
                            float lr, float momentum, float weight_decay, stfpm_sgd_step_kind first_step);

#ifdef __cplusplus
}
#endif
#endif
