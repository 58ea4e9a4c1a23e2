/* Bilinear resize, align_corners = false, PyTorch's index arithmetic (float):
 *   src = max(scale * (dst + 0.5) - 0.5, 0), scale = (float)in / out
 *   i0 = (int)src, i1 = i0 + (i0 < in - 1), l1 = src - i0, l0 = 1 - l1
 * Works for any in/out sizes (up or down, no antialias, like F.interpolate). */
#pragma OPENCL FP_CONTRACT OFF

static inline void bilin_index(int dst, float scale, int in, int *i0, int *i1, float *l0, float *l1) {
    float src = scale * ((float)dst + 0.5f) - 0.5f;
    src = src < 0.0f ? 0.0f : src;
    int a = (int)src;
    *i0 = a;
    *i1 = a + (a < in - 1 ? 1 : 0);
    float l = clamp(src - (float)a, 0.0f, 1.0f);
    *l1 = l;
    *l0 = 1.0f - l;
}

/* Row form: gws = (Ho, P), item (oh, pl) writes output row oh of plane pl (the row weights
 * are computed once per item; on PoCL one element per work-item was dominated by index
 * arithmetic). x: (P, H, W) planes, y: (P, Ho, Wo). Same arithmetic as the per-element form. */
__kernel void upsample_bilinear_fwd(__global const float *x, int xo, __global float *y, int yo,
                                    int planes, int H, int W, int Ho, int Wo, float sh, float sw) {
    const int oh = get_global_id(0), pl = get_global_id(1);
    if (oh >= Ho || pl >= planes) return;
    int h0, h1;
    float hl0, hl1;
    bilin_index(oh, sh, H, &h0, &h1, &hl0, &hl1);
    __global const float *p = x + xo + (size_t)pl * H * W;
    __global const float *r0 = p + h0 * W, *r1 = p + h1 * W;
    __global float *yr = y + yo + ((size_t)pl * Ho + oh) * Wo;
    for (int ow = 0; ow < Wo; ow++) {
        int w0, w1;
        float wl0, wl1;
        bilin_index(ow, sw, W, &w0, &w1, &wl0, &wl1);
        float top = wl0 * r0[w0] + wl1 * r0[w1];
        float bot = wl0 * r1[w0] + wl1 * r1[w1];
        yr[ow] = hl0 * top + hl1 * bot;
    }
}

/* Weight with which output row/column `o` reads input index `me` (0 when it does not). */
static inline float bilin_weight(int o, float scale, int in, int me) {
    int i0, i1;
    float l0, l1;
    bilin_index(o, scale, in, &i0, &i1, &l0, &l1);
    return (i0 == me ? l0 : 0.0f) + (i1 == me ? l1 : 0.0f);
}

/* Candidate output range [*lo, *hi] for input index `me`: outputs whose floor(src) lies in
 * {me - 1, me}, i.e. src in [me - 1, me + 1), widened by one on each side against rounding
 * (every candidate is checked exactly with bilin_weight). */
static inline void bilin_range(int me, int in, int out, int *lo, int *hi) {
    float r = (float)out / (float)in;
    int a = (int)floor(((float)me - 0.5f) * r - 0.5f) - 1;
    int b = (int)ceil(((float)me + 1.5f) * r - 0.5f) + 1;
    if (me <= 1) a = 0;          /* outputs with src clamped to 0 read rows 0 and 1 */
    *lo = max(a, 0);
    *hi = min(b, out - 1);
}

/* Gather form: one work-item per input element sums the weighted dy of every output element
 * that reads it. dy: (P, Ho, Wo), dx: (P, H, W). Deterministic, no atomics. */
__kernel void upsample_bilinear_bwd(__global const float *dy, int dyo, __global float *dx, int dxo,
                                    int planes, int H, int W, int Ho, int Wo, float sh, float sw) {
    int i = get_global_id(0);
    if (i >= planes * H * W) return;
    int iw = i % W, t = i / W;
    int ih = t % H, pl = t / H;
    int oh0, oh1, ow0, ow1;
    bilin_range(ih, H, Ho, &oh0, &oh1);
    bilin_range(iw, W, Wo, &ow0, &ow1);
    __global const float *g = dy + dyo + pl * Ho * Wo;
    float acc = 0.0f;
    for (int oh = oh0; oh <= oh1; oh++) {
        float wh = bilin_weight(oh, sh, H, ih);
        if (wh == 0.0f) continue;
        float row = 0.0f;
        for (int ow = ow0; ow <= ow1; ow++) {
            float ww = bilin_weight(ow, sw, W, iw);
            if (ww != 0.0f) row += ww * g[oh * Wo + ow];
        }
        acc += wh * row;
    }
    dx[dxo + i] = acc;
}

/* The anomaly map in one pass (host/pyramid.c): map[n][oh][ow] = prod over levels l < L of the
 * bilinear resize (same arithmetic as upsample_bilinear_fwd) of the distance map d_l (N, 1, H_l,
 * W_l), multiplied in level order, plus each output row's maximum (NaN wins, like torch.max) for
 * the image score. Replaces L resizes, L - 1 products and a full read of the map for the max.
 * Levels 1..3 may be absent (L < 4: their arguments are not read).
 * gws = (Ho, N): item (oh, n) writes one row of the map and rowmax[n * Ho + oh]. */
#define AM_LEVEL_ARGS(l) __global const float *d##l, int o##l, int H##l, int W##l, float sh##l, float sw##l
#define AM_ROW(l)                                                                          \
    int h0_##l, h1_##l;                                                                    \
    float hl0_##l, hl1_##l;                                                                \
    __global const float *r0_##l = d##l, *r1_##l = d##l;                                  \
    if (l < L) {                                                                           \
        bilin_index(oh, sh##l, H##l, &h0_##l, &h1_##l, &hl0_##l, &hl1_##l);                \
        __global const float *p = d##l + o##l + (size_t)n * H##l * W##l;                   \
        r0_##l = p + h0_##l * W##l;                                                        \
        r1_##l = p + h1_##l * W##l;                                                        \
    }
#define AM_VALUE(l, v)                                                                     \
    {                                                                                      \
        int w0, w1;                                                                        \
        float wl0, wl1;                                                                    \
        bilin_index(ow, sw##l, W##l, &w0, &w1, &wl0, &wl1);                                \
        float top = wl0 * r0_##l[w0] + wl1 * r0_##l[w1];                                   \
        float bot = wl0 * r1_##l[w0] + wl1 * r1_##l[w1];                                  \
        v = hl0_##l * top + hl1_##l * bot;                                                 \
    }
__kernel void anomaly_map_fwd(AM_LEVEL_ARGS(0), AM_LEVEL_ARGS(1), AM_LEVEL_ARGS(2), AM_LEVEL_ARGS(3),
                              int L, __global float *map, int mo, int N, int Ho, int Wo,
                              __global float *rowmax) {
    const int oh = get_global_id(0), n = get_global_id(1);
    if (oh >= Ho || n >= N) return;
    AM_ROW(0) AM_ROW(1) AM_ROW(2) AM_ROW(3)
    __global float *yr = map + mo + ((size_t)n * Ho + oh) * Wo;
    float m = -INFINITY;
    for (int ow = 0; ow < Wo; ow++) {
        float v, u;
        AM_VALUE(0, v)
        if (L > 1) { AM_VALUE(1, u) v = v * u; }
        if (L > 2) { AM_VALUE(2, u) v = v * u; }
        if (L > 3) { AM_VALUE(3, u) v = v * u; }
        yr[ow] = v;
        if (!isnan(m) && (isnan(v) || v > m)) m = v;
    }
    rowmax[(size_t)n * Ho + oh] = m;
}
