/* Max pooling, k x k window, stride, zero-free padding (padding counts as -inf).
 * Ties pick the first maximum in row-major window order; a NaN wins (PyTorch CPU semantics:
 * `v > best || isnan(v)` scanned in row-major order).
 * x: (N, C, H, W) at offset xo; y: (N, C, Ho, Wo) at offset yo.
 *
 * Row form: every work-item handles a whole output row (forward, argmax) or a whole input row
 * (backward) in a loop. On CPU OpenCL (PoCL) the former one-element-per-work-item kernels spent
 * their time on index arithmetic and per-item overhead (< 1 GB/s); see also cl/conv.cl. */

/* Branch-free "v replaces best": greater, or NaN (a later NaN also replaces an earlier one). */
#define MP_TAKE(v, best) (((v) > (best)) | isnan(v))

/* Index (ih * W + iw) of the maximum of the window starting at (h0, w0) (unclamped), rows
 * clamped to [hlo, hhi) already by the caller. */
static inline int maxpool_win(__global const float *p, int W, int hlo, int hhi, int w0, int k,
                              float *best_out) {
    int w1 = min(w0 + k, W);
    w0 = max(w0, 0);
    float best = -INFINITY;
    int arg = hlo * W + w0;
    for (int ih = hlo; ih < hhi; ih++) {
        __global const float *r = p + ih * W;
        for (int iw = w0; iw < w1; iw++) {
            float v = r[iw];
            if (MP_TAKE(v, best)) { best = v; arg = ih * W + iw; }
        }
    }
    *best_out = best;
    return arg;
}

/* Index (ih * W + iw) of the maximum of window (oh, ow) in one H x W plane. */
static inline int maxpool_argmax(__global const float *p, int H, int W, int k, int stride, int pad,
                                 int oh, int ow, float *best_out) {
    int h0 = oh * stride - pad;
    return maxpool_win(p, W, max(h0, 0), min(h0 + k, H), ow * stride - pad, k, best_out);
}

/* Output columns [*a, *b) whose k-wide window lies entirely inside [0, W). */
static inline void maxpool_interior(int W, int Wo, int k, int stride, int pad, int *a, int *b) {
    int lo = (pad + stride - 1) / stride;                   /* ow * stride - pad >= 0 */
    int hi = W + pad - k >= 0 ? (W + pad - k) / stride + 1 : 0; /* ow * stride - pad + k <= W */
    hi = min(hi, Wo);
    lo = min(lo, hi);
    *a = lo;
    *b = hi;
}

/* The 3x3 window at column w0 of rows r0, r1, r2 (all in bounds), scanned in row-major order.
 * The first pixel always wins against the initial -inf (also when it is NaN or -inf), so the
 * scan starts from it. */
#define MP3_SCAN(r0, r1, r2, w0, b0, b1, b2, best, arg)                         \
    do {                                                                         \
        float v_;                                                                \
        best = r0[w0]; arg = b0 + w0;                                            \
        v_ = r0[w0 + 1]; if (MP_TAKE(v_, best)) { best = v_; arg = b0 + w0 + 1; } \
        v_ = r0[w0 + 2]; if (MP_TAKE(v_, best)) { best = v_; arg = b0 + w0 + 2; } \
        v_ = r1[w0];     if (MP_TAKE(v_, best)) { best = v_; arg = b1 + w0; }     \
        v_ = r1[w0 + 1]; if (MP_TAKE(v_, best)) { best = v_; arg = b1 + w0 + 1; } \
        v_ = r1[w0 + 2]; if (MP_TAKE(v_, best)) { best = v_; arg = b1 + w0 + 2; } \
        v_ = r2[w0];     if (MP_TAKE(v_, best)) { best = v_; arg = b2 + w0; }     \
        v_ = r2[w0 + 1]; if (MP_TAKE(v_, best)) { best = v_; arg = b2 + w0 + 1; } \
        v_ = r2[w0 + 2]; if (MP_TAKE(v_, best)) { best = v_; arg = b2 + w0 + 2; } \
    } while (0)

/* Value-only variant (forward). */
#define MP3_MAX(r0, r1, r2, w0, best)                                            \
    do {                                                                         \
        float v_;                                                                \
        best = r0[w0];                                                           \
        v_ = r0[w0 + 1]; best = MP_TAKE(v_, best) ? v_ : best;                   \
        v_ = r0[w0 + 2]; best = MP_TAKE(v_, best) ? v_ : best;                   \
        v_ = r1[w0];     best = MP_TAKE(v_, best) ? v_ : best;                   \
        v_ = r1[w0 + 1]; best = MP_TAKE(v_, best) ? v_ : best;                   \
        v_ = r1[w0 + 2]; best = MP_TAKE(v_, best) ? v_ : best;                   \
        v_ = r2[w0];     best = MP_TAKE(v_, best) ? v_ : best;                   \
        v_ = r2[w0 + 1]; best = MP_TAKE(v_, best) ? v_ : best;                   \
        v_ = r2[w0 + 2]; best = MP_TAKE(v_, best) ? v_ : best;                   \
    } while (0)

/* gws = (Ho, planes): item (oh, pl) writes output row oh of plane pl. */
__kernel void maxpool_fwd(__global const float *x, int xo, __global float *y, int yo, int planes,
                          int H, int W, int Ho, int Wo, int k, int stride, int pad) {
    const int oh = get_global_id(0), pl = get_global_id(1);
    if (oh >= Ho || pl >= planes) return;
    __global const float *p = x + xo + (size_t)pl * H * W;
    __global float *yr = y + yo + ((size_t)pl * Ho + oh) * Wo;
    const int h0 = oh * stride - pad;
    const int hlo = max(h0, 0), hhi = min(h0 + k, H);
    int a = 0, b = 0;
    if (k == 3 && hhi - hlo == 3) maxpool_interior(W, Wo, k, stride, pad, &a, &b);
    for (int ow = 0; ow < a; ow++) {
        float best;
        maxpool_win(p, W, hlo, hhi, ow * stride - pad, k, &best);
        yr[ow] = best;
    }
    /* common case (ResNet stem): three full rows, window inside the row, branch-free scan */
    __global const float *r0 = p + hlo * W, *r1 = r0 + W, *r2 = r1 + W;
    for (int ow = a; ow < b; ow++) {
        const int w0 = ow * stride - pad;
        float best;
        MP3_MAX(r0, r1, r2, w0, best);
        yr[ow] = best;
    }
    for (int ow = b; ow < Wo; ow++) {
        float best;
        maxpool_win(p, W, hlo, hhi, ow * stride - pad, k, &best);
        yr[ow] = best;
    }
}

/* Reference backward (not used by the host): gather form, one work-item per input element; it
 * sums dy over the windows containing it whose (recomputed) argmax is this element. */
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

/* Two-pass backward, pass 1, gws = (Ho, planes): the argmax (plane-local index ih * W + iw)
 * of every window of output row oh. */
__kernel void maxpool_argmax_idx(__global const float *x, int xo, __global int *idx, int planes, int H, int W,
                                 int Ho, int Wo, int k, int stride, int pad) {
    const int oh = get_global_id(0), pl = get_global_id(1);
    if (oh >= Ho || pl >= planes) return;
    __global const float *p = x + xo + (size_t)pl * H * W;
    __global int *ir = idx + ((size_t)pl * Ho + oh) * Wo;
    const int h0 = oh * stride - pad;
    const int hlo = max(h0, 0), hhi = min(h0 + k, H);
    int a = 0, b = 0;
    if (k == 3 && hhi - hlo == 3) maxpool_interior(W, Wo, k, stride, pad, &a, &b);
    for (int ow = 0; ow < a; ow++) {
        float best;
        ir[ow] = maxpool_win(p, W, hlo, hhi, ow * stride - pad, k, &best);
    }
    __global const float *r0 = p + hlo * W, *r1 = r0 + W, *r2 = r1 + W;
    const int b0 = hlo * W, b1 = b0 + W, b2 = b1 + W;
    for (int ow = a; ow < b; ow++) {
        const int w0 = ow * stride - pad;
        float best;
        int arg;
        MP3_SCAN(r0, r1, r2, w0, b0, b1, b2, best, arg);
        ir[ow] = arg;
    }
    for (int ow = b; ow < Wo; ow++) {
        float best;
        ir[ow] = maxpool_win(p, W, hlo, hhi, ow * stride - pad, k, &best);
    }
}

/* Pass 2, gws = (H, planes): item (ih, pl) owns input row ih of plane pl. It zeroes the row,
 * then scatters dy of every window (oh, ow) that can contain row ih and whose stored argmax lies
 * in this row. Windows are visited in (oh, ow) order, so every dx element receives its terms in
 * the same order as the gather form (deterministic, no atomics, no races between items). */
__kernel void maxpool_bwd_idx(__global const int *idx, __global const float *dy, int dyo, __global float *dx,
                              int dxo, int planes, int H, int W, int Ho, int Wo, int k, int stride, int pad) {
    const int ih = get_global_id(0), pl = get_global_id(1);
    if (ih >= H || pl >= planes) return;
    __global const int *a = idx + (size_t)pl * Ho * Wo;
    __global const float *g = dy + dyo + (size_t)pl * Ho * Wo;
    __global float *dr = dx + dxo + ((size_t)pl * H + ih) * W;
    for (int iw = 0; iw < W; iw++) dr[iw] = 0.0f;
    const int oh0 = max(0, (ih + pad - k + stride) / stride);
    const int oh1 = min(Ho - 1, (ih + pad) / stride);
    const int lo = ih * W;
    for (int oh = oh0; oh <= oh1; oh++) {
        __global const int *ar = a + oh * Wo;
        __global const float *gr = g + oh * Wo;
        for (int ow = 0; ow < Wo; ow++) {
            const int j = ar[ow] - lo;
            if (j >= 0 && j < W) dr[j] += gr[ow];
        }
    }
}
