/* Winograd F(4x4, 3x3) convolution (host/winograd.c, cl/winograd.cl), used by host/conv.c for
 * 3x3 / stride-1 convolutions (forward and backward-data). */
#ifndef STFPM_WINOGRAD_H
#define STFPM_WINOGRAD_H

#include "stfpm/stfpm.h"

/* y (n, K, Ho, Wo) = conv3x3(x (n, C, H, W), w', stride 1, padding pad), Ho = H + 2 pad - 2.
 * flip == 0: w is (K, C, 3, 3) and w' = w (forward).
 * flip != 0: w is (C, K, 3, 3) and w'[k][c] = rot180(w[c][k]) (the backward-data pass of a
 * conv with weights w, applied to dy with padding 2 - p).
 * Offsets in floats. y is overwritten. */
stfpm_status stfpm_winograd_conv(stfpm_ctx *ctx, cl_mem x, size_t x_off, int n, int C, int H, int W,
                                 cl_mem w, size_t w_off, int flip, int pad, cl_mem y, size_t y_off, int K,
                                 int Ho, int Wo);

/* The epilogue of stfpm_winograd_conv_ep: y = act(conv + bias[k] + residual). */
typedef struct wino_epilogue {
    cl_mem bias;           /* NULL: none; else K floats at bias_off */
    size_t bias_off;
    cl_mem res;            /* NULL: none; else the shape of y at res_off */
    size_t res_off;
    int relu;
    cl_mem u;              /* NULL, or the weights transformed by stfpm_winograd_weights */
    cl_mem u2;             /* NULL, or the weights transformed by stfpm_winograd2_weights */
} wino_epilogue;
stfpm_status stfpm_winograd_conv_ep(stfpm_ctx *ctx, cl_mem x, size_t x_off, int n, int C, int H, int W,
                                    cl_mem w, size_t w_off, int flip, int pad, cl_mem y, size_t y_off,
                                    int K, int Ho, int Wo, const wino_epilogue *ep);
/* U for forward (flip 0) weights w (K, C, 3, 3): a new buffer, released by the caller. */
stfpm_status stfpm_winograd_weights(stfpm_ctx *ctx, cl_mem w, size_t w_off, int K, int C, cl_mem *out);

/* Winograd F(2x2, 3x3), forward only: y (n, K, Ho, Wo) = act(conv3x3(x, w, stride 1, pad) + ...)
 * for w (K, C, 3, 3); ep->u2 optionally from stfpm_winograd2_weights. */
stfpm_status stfpm_winograd2_conv_ep(stfpm_ctx *ctx, cl_mem x, size_t x_off, int n, int C, int H, int W,
                                     cl_mem w, size_t w_off, int pad, cl_mem y, size_t y_off, int K, int Ho,
                                     int Wo, const wino_epilogue *ep);
stfpm_status stfpm_winograd2_weights(stfpm_ctx *ctx, cl_mem w, size_t w_off, int K, int C, cl_mem *out);
/* dw (K, C, 3, 3) = the weight gradient of y = conv3x3(x, w, stride 1, padding pad) for
 * x (n, C, H, W) and dy (n, K, Ho, Wo), Ho = H + 2 pad - 2 (overwritten). */
stfpm_status stfpm_winograd_wgrad(stfpm_ctx *ctx, cl_mem x, size_t x_off, int n, int C, int H, int W, cl_mem dy,
                                  size_t dy_off, int K, int Ho, int Wo, int pad, cl_mem dw, size_t dw_off);

#endif
