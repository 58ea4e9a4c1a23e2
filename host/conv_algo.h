/* Which algorithm runs a convolution (host/conv_algo.c): the one place these rules live.
 * host/conv.c dispatches on the answer; host/tune.c derives its GEMM shapes from it. */
#ifndef STFPM_CONV_ALGO_H
#define STFPM_CONV_ALGO_H

#include "stfpm/stfpm.h"

typedef enum stfpm_conv_pass {
    STFPM_CONV_FORWARD,
    STFPM_CONV_BACKWARD_DATA,
    STFPM_CONV_BACKWARD_WEIGHT,
    STFPM_CONV_PREPARE        /* whether weights are worth transforming once for any batch */
} stfpm_conv_pass;

typedef enum stfpm_conv_algo {
    STFPM_CONV_IM2COL,        /* im2col (chunks of rows / images) + GEMM */
    STFPM_CONV_POINTWISE,     /* 1x1, stride 1, pad 0: one GEMM per image on NCHW directly */
    STFPM_CONV_WINOGRAD4,     /* Winograd F(4x4, 3x3): 36 plane GEMMs per chunk */
    STFPM_CONV_WINOGRAD2      /* Winograd F(2x2, 3x3), forward only: 16 plane GEMMs */
} stfpm_conv_algo;

typedef struct stfpm_conv_shape {
    int n, cin, cout;         /* batch (n < 0: any, for STFPM_CONV_PREPARE), channels */
    int kh, kw, stride, pad;
    int ho, wo;               /* output size */
} stfpm_conv_shape;

/* The algorithm for shape s in pass p under ctx's conv_algo and wino_min_tiles options.
 * STFPM_CONV_PREPARE answers STFPM_CONV_WINOGRAD4 when prepared (transformed) weights pay. */
stfpm_conv_algo stfpm_conv_choose(const stfpm_ctx *ctx, const stfpm_conv_shape *s, stfpm_conv_pass p);
const char *stfpm_conv_algo_label(stfpm_conv_algo a);

/* Row stride (floats) of the GEMM matrices that have one column per output pixel or tile
 * (im2col columns, dy rows, Winograd V / M / Z) for `cols` columns: a multiple of 64 (CLBlast's
 * tile, so no padding copies), plus 64 when that is a multiple of 512 (CLBlast's GEMMK=1
 * kernel runs at half speed on PoCL when a row stride is a multiple of 2-4 KiB: 64 x 576 x
 * 4096 gave 42 GFLOP/CPU-s, with K = 4160 71-83; 128 x 1152 x 1024: 42 vs 87 with K = 1040). */
static inline size_t stfpm_conv_row_stride(size_t cols) {
    size_t ld = (cols + 63) / 64 * 64;
    return ld % 512 == 0 ? ld + 64 : ld;
}

#endif
