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
