/* Max pooling, k x k window, stride, zero-free padding (padding counts as -inf).
 * Ties pick the first maximum in row-major window order; a NaN wins (PyTorch CPU semantics).
 * x: (N, C, H, W) at offset xo; y: (N, C, Ho, Wo) at offset yo. */

/* Index (ih * W + iw) of the maximum of window (oh, ow) in one H x W plane. */
static inline int maxpool_argmax(__global const float *p, int H, int W, int k, int stride, int pad,
                          int oh, int ow, float *best_out) {
    int h0 = oh * stride - pad, w0 = ow * stride - pad;
    int h1 = min(h0 + k, H), w1 = min(w0 + k, W);
    h0 = max(h0, 0);
    w0 = max(w0, 0);
    float best = -INFINITY;
    int arg = h0 * W + w0;
    for (int ih = h0; ih < h1; ih++) {
        for (int iw = w0; iw < w1; iw++) {
            float v = p[ih * W + iw];
            if (v > best || isnan(v)) { best = v; arg = ih * W + iw; }
        }
    }
    *best_out = best;
    return arg;
}

/* One work-item per output element. */
__kernel void maxpool_fwd(__global const float *x, int xo, __global float *y, int yo, int planes,
                          int H, int W, int Ho, int Wo, int k, int stride, int pad) {
    int i = get_global_id(0);
    if (i >= planes * Ho * Wo) return;
    int ow = i % Wo, t = i / Wo;
    int oh = t % Ho, pl = t / Ho;
    float best;
    maxpool_argmax(x + xo + pl * H * W, H, W, k, stride, pad, oh, ow, &best);
    y[yo + i] = best;
}

/* Gather form: one work-item per input element; it sums dy over the windows containing it
 * whose (recomputed) argmax is this element. Deterministic, no atomics. */
__kernel void maxpool_bwd(__global const float *x, int xo, __global const float *dy, int dyo,
                          __global float *dx, int dxo, int planes, int H, int W, int Ho, int Wo,
                          int k, int stride, int pad) {
    int i = get_global_id(0);
    if (i >= planes * H * W) return;
    int iw = i % W, t = i / W;
    int ih = t % H, pl = t / H;
    __global const float *p = x + xo + pl * H * W;
    __global const float *g = dy + dyo + pl * Ho * Wo;
    /* windows oh with oh*stride - pad <= ih <= oh*stride - pad + k - 1 */
    int oh0 = max(0, (ih + pad - k + stride) / stride);   /* ceil((ih+pad-k+1)/stride), >= 0 */
    int oh1 = min(Ho - 1, (ih + pad) / stride);
    int ow0 = max(0, (iw + pad - k + stride) / stride);
    int ow1 = min(Wo - 1, (iw + pad) / stride);
    int me = ih * W + iw;
    float acc = 0.0f;
    for (int oh = oh0; oh <= oh1; oh++) {
        for (int ow = ow0; ow <= ow1; ow++) {
            float best;
            if (maxpool_argmax(p, H, W, k, stride, pad, oh, ow, &best) == me) acc += g[oh * Wo + ow];
        }
    }
    dx[dxo + i] = acc;
}

/* Two-pass backward, pass 1: the argmax (plane-local index) of every output window. */
__kernel void maxpool_argmax_idx(__global const float *x, int xo, __global int *idx, int planes, int H, int W,
                                 int Ho, int Wo, int k, int stride, int pad) {
    int i = get_global_id(0);
    if (i >= planes * Ho * Wo) return;
    int ow = i % Wo, t = i / Wo;
    int oh = t % Ho, pl = t / Ho;
    float best;
    idx[i] = maxpool_argmax(x + xo + pl * H * W, H, W, k, stride, pad, oh, ow, &best);
}

/* Pass 2 (gather, deterministic): each input element sums dy over the windows containing it
 * whose stored argmax is this element. Same result as maxpool_bwd with far fewer reads. */
__kernel void maxpool_bwd_idx(__global const int *idx, __global const float *dy, int dyo, __global float *dx,
                              int dxo, int planes, int H, int W, int Ho, int Wo, int k, int stride, int pad) {
    int i = get_global_id(0);
    if (i >= planes * H * W) return;
    int iw = i % W, t = i / W;
    int ih = t % H, pl = t / H;
    __global const int *a = idx + pl * Ho * Wo;
    __global const float *g = dy + dyo + pl * Ho * Wo;
    int oh0 = max(0, (ih + pad - k + stride) / stride);
    int oh1 = min(Ho - 1, (ih + pad) / stride);
    int ow0 = max(0, (iw + pad - k + stride) / stride);
    int ow1 = min(Wo - 1, (iw + pad) / stride);
    int me = ih * W + iw;
    float acc = 0.0f;
    for (int oh = oh0; oh <= oh1; oh++)
        for (int ow = ow0; ow <= ow1; ow++)
            if (a[oh * Wo + ow] == me) acc += g[oh * Wo + ow];
    dx[dxo + i] = acc;
}
