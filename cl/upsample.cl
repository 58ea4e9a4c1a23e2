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
 * that reads it. dy: (P, Ho, Wo), dx: (P, H, W). Deterministic, no atomics. The remainders are
 * written as i - (i / W) * W: the same machine code on PoCL, and no division / remainder pair,
 * for which LLVM emits an instruction (freeze) that Oclgrind's uninitialised-value check cannot
 * run. */
__kernel void upsample_bilinear_bwd(__global const float *dy, int dyo, __global float *dx, int dxo,
                                    int planes, int H, int W, int Ho, int Wo, float sh, float sw) {
    int i = get_global_id(0);
    if (i >= planes * H * W) return;
    int t = i / W, pl = t / H;
    int iw = i - t * W, ih = t - pl * H;
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

#ifdef STFPM_GPU
/* GPU variant: one output element per work-item, get_global_id(0) along the output row
 * (neighbouring work-items read neighbouring input columns: coalesced). Same index arithmetic
 * and the same products in the same order as the row form. */

/* bilin_index without pointer arguments (the same arithmetic): the source coordinate of dst. */
static inline float bilin_src(int dst, float scale) {
    float src = scale * ((float)dst + 0.5f) - 0.5f;
    return src < 0.0f ? 0.0f : src;
}

/* Value at (oh, ow) of the resize of plane p (H x W) with scales sh, sw. */
static inline float bilin_at(__global const float *p, int H, int W, float sh, float sw, int oh, int ow) {
    const float sy = bilin_src(oh, sh), sx = bilin_src(ow, sw);
    const int h0 = (int)sy, w0 = (int)sx;
    const int h1 = h0 + (h0 < H - 1 ? 1 : 0), w1 = w0 + (w0 < W - 1 ? 1 : 0);
    const float hl1 = clamp(sy - (float)h0, 0.0f, 1.0f), wl1 = clamp(sx - (float)w0, 0.0f, 1.0f);
    const float hl0 = 1.0f - hl1, wl0 = 1.0f - wl1;
    __global const float *r0 = p + h0 * W, *r1 = p + h1 * W;
    float top = wl0 * r0[w0] + wl1 * r0[w1];
    float bot = wl0 * r1[w0] + wl1 * r1[w1];
    return hl0 * top + hl1 * bot;
}

/* gws = (Wo, Ho, planes): y[pl][oh][ow]. */
__kernel void upsample_bilinear_fwd_g(__global const float *x, int xo, __global float *y, int yo,
                                      int planes, int H, int W, int Ho, int Wo, float sh, float sw) {
    const int ow = get_global_id(0), oh = get_global_id(1), pl = get_global_id(2);
    if (ow >= Wo || oh >= Ho || pl >= planes) return;
    y[yo + ((size_t)pl * Ho + oh) * Wo + ow] = bilin_at(x + xo + (size_t)pl * H * W, H, W, sh, sw, oh, ow);
}

/* gws = (W, H, planes): dx[pl][ih][iw], the gather of upsample_bilinear_bwd (same order). */
__kernel void upsample_bilinear_bwd_g(__global const float *dy, int dyo, __global float *dx, int dxo,
                                      int planes, int H, int W, int Ho, int Wo, float sh, float sw) {
    const int iw = get_global_id(0), ih = get_global_id(1), pl = get_global_id(2);
    if (iw >= W || ih >= H || pl >= planes) return;
    int oh0, oh1, ow0, ow1;
    bilin_range(ih, H, Ho, &oh0, &oh1);
    bilin_range(iw, W, Wo, &ow0, &ow1);
    __global const float *g = dy + dyo + (size_t)pl * Ho * Wo;
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
    dx[dxo + ((size_t)pl * H + ih) * W + iw] = acc;
}

/* max with NaN winning (torch.max), as the row form's row maximum. */
static inline float am_max(float a, float b) { return (!isnan(a) && (isnan(b) || b > a)) ? b : a; }

/* Tree reduction of red[0 .. lsz) with am_max (lsz a power of two); every work-item of the
 * group calls it; the result is in red[0] afterwards. */
static inline void am_tree(__local float *red, int lid, int lsz) {
    for (int s = lsz >> 1; s > 0; s >>= 1) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < s) red[lid] = am_max(red[lid], red[lid + s]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
}

/* Resized value at (oh, ow) of level l's distance map for image n (as upsample_bilinear_fwd_g). */
#define AM_SAMPLE(l) bilin_at(d##l + o##l + (size_t)n * H##l * W##l, H##l, W##l, sh##l, sw##l, oh, ow)

/* The fused anomaly map, GPU form: gws = (G * lsz, N), lws = (lsz, 1) with lsz a power of two
 * and G = ceil(Ho * Wo / lsz); work-item i of image n writes map pixel i (row-major, so
 * get_global_id(0) runs along the output rows) with the products of the resized levels in
 * level order (as anomaly_map_fwd), and each work-group writes the maximum of its pixels
 * (NaN wins) to part[n * G + group]: a tree reduction in red (lsz floats of local memory). */
__kernel void anomaly_map_fwd_g(AM_LEVEL_ARGS(0), AM_LEVEL_ARGS(1), AM_LEVEL_ARGS(2), AM_LEVEL_ARGS(3),
                                int L, __global float *map, int mo, int N, int Ho, int Wo,
                                __global float *part, __local float *red) {
    const int i = get_global_id(0), n = get_global_id(1);
    const int lid = get_local_id(0), lsz = get_local_size(0);
    float m = -INFINITY;
    if (i < Ho * Wo && n < N) {
        const int oh = i / Wo, ow = i - oh * Wo;
        float v = AM_SAMPLE(0);
        if (L > 1) v = v * AM_SAMPLE(1);
        if (L > 2) v = v * AM_SAMPLE(2);
        if (L > 3) v = v * AM_SAMPLE(3);
        map[mo + (size_t)n * Ho * Wo + i] = v;
        m = v;
    }
    red[lid] = m;
    am_tree(red, lid, lsz);
    if (lid == 0 && n < N) part[(size_t)n * get_num_groups(0) + get_group_id(0)] = red[0];
}

/* Per-image score from the work-group maxima: gws = (lsz, N), lws = (lsz, 1): score[so + n] =
 * max over part[n * G .. n * G + G) (NaN wins), a strided pass then a tree in red (lsz floats). */
__kernel void anomaly_score_g(__global const float *part, int G, __global float *score, int so, int N,
                              __local float *red) {
    const int n = get_global_id(1), lid = get_local_id(0), lsz = get_local_size(0);
    float m = -INFINITY;
    if (n < N)
        for (int j = lid; j < G; j += lsz) m = am_max(m, part[(size_t)n * G + j]);
    red[lid] = m;
    am_tree(red, lid, lsz);
    if (lid == 0 && n < N) score[so + n] = red[0];
}
#endif
