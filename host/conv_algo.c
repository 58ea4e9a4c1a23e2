/* The convolution dispatcher: which algorithm a convolution runs, per shape and pass.
 *
 * - 1x1 / stride 1 / pad 0: x_i (Cin x P) is already image i's column matrix, so the forward and
 *   the backward-data pass are one GEMM per image (POINTWISE); the weight gradient goes through
 *   the im2col path (its column matrix is a plain copy).
 * - 3x3 / stride 1 with at least 32 input and output channels: Winograd F(4x4, 3x3) in every
 *   pass when the batch has at least wino_min_tiles (default 48) 4x4 output tiles; below that
 *   the forward uses F(2x2, 3x3) when the batch has that many 2x2 tiles (layer3 at 256 x 256,
 *   batch 1: 16 4x4 tiles, 64 2x2 ones) and the backward passes im2col. Fewer tiles and the
 *   plane GEMMs' columns, padded to 64, waste more than Winograd saves, on top of 36 GEMM
 *   calls instead of one.
 * - Everything else: im2col + GEMM.
 * The conv_algo option forces a choice: im2col everywhere; winograd = F(4x4) for every 3x3
 * stride-1 convolution whatever its channels and batch; winograd2 = F(2x2) for every 3x3
 * stride-1 forward (backward passes im2col). */
#include "conv_algo.h"

static long tiles(int n, int ho, int wo, int t) { return (long)((ho + t - 1) / t) * ((wo + t - 1) / t) * n; }

stfpm_conv_algo stfpm_conv_choose(const stfpm_ctx *ctx, const stfpm_conv_shape *s, stfpm_conv_pass p) {
    const stfpm_ctx_options *o = stfpm_ctx_get_options(ctx);
    const int pointwise = s->kh == 1 && s->kw == 1 && s->stride == 1 && s->pad == 0;
    const int wino_shape = s->kh == 3 && s->kw == 3 && s->stride == 1;
    if (pointwise && (p == STFPM_CONV_FORWARD || p == STFPM_CONV_BACKWARD_DATA)) return STFPM_CONV_POINTWISE;
    if (!wino_shape) return STFPM_CONV_IM2COL;
    switch (o->conv_algo) {
    case STFPM_CONV_ALGO_IM2COL: return STFPM_CONV_IM2COL;
    case STFPM_CONV_ALGO_WINOGRAD: return STFPM_CONV_WINOGRAD4;
    case STFPM_CONV_ALGO_WINOGRAD2: return p == STFPM_CONV_FORWARD ? STFPM_CONV_WINOGRAD2 : STFPM_CONV_IM2COL;
    default: break;
    }
    if (s->cin < 32 || s->cout < 32) return STFPM_CONV_IM2COL;
    if (p == STFPM_CONV_PREPARE || s->n < 0) return STFPM_CONV_WINOGRAD4;
    const long min_tiles = o->wino_min_tiles > 0 ? o->wino_min_tiles : 48;
    if (tiles(s->n, s->ho, s->wo, 4) >= min_tiles) return STFPM_CONV_WINOGRAD4;
    if (p == STFPM_CONV_FORWARD && tiles(s->n, s->ho, s->wo, 2) >= min_tiles) return STFPM_CONV_WINOGRAD2;
    return STFPM_CONV_IM2COL;
}

const char *stfpm_conv_algo_label(stfpm_conv_algo a) {
    switch (a) {
    case STFPM_CONV_POINTWISE: return "pointwise";
    case STFPM_CONV_WINOGRAD4: return "winograd F(4x4)";
    case STFPM_CONV_WINOGRAD2: return "winograd F(2x2)";
    default: return "im2col";
    }
}
