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

/* Stride 2, k 3: four adjacent windows (output columns ow..ow+3, input columns w0..w0+8) of
 * one row as three float4 column vectors: window j reads columns w0+2j, w0+2j+1, w0+2j+2.
 * c2 = (w0+2, w0+4, w0+6, w0+8) is written as a select rather than (float4)(v8_.s246, x): the
 * same machine code on PoCL, and Oclgrind's uninitialised-value check crashes on the latter. */
#define MP3S2_ROW(r, w0, c0, c1, c2)                                             \
    do {                                                                         \
        float8 v8_ = vload8(0, (r) + (w0));                                      \
        c0 = v8_.even;                                                           \
        c1 = v8_.odd;                                                            \
        c2 = select(v8_.s2466, (float4)((r)[(w0) + 8]), (int4)(0, 0, 0, -1));    \
    } while (0)
#define MP4_TAKE(v, best) (isgreater(v, best) | isnan(v))

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
    int ow = a;
    if (stride == 2) {
        for (; ow + 3 < b; ow += 4) {
            const int w0 = ow * 2 - pad;
            float4 c0, c1, c2, best;
            MP3S2_ROW(r0, w0, best, c1, c2);
            best = select(best, c1, MP4_TAKE(c1, best));
            best = select(best, c2, MP4_TAKE(c2, best));
            MP3S2_ROW(r1, w0, c0, c1, c2);
            best = select(best, c0, MP4_TAKE(c0, best));
            best = select(best, c1, MP4_TAKE(c1, best));
            best = select(best, c2, MP4_TAKE(c2, best));
            MP3S2_ROW(r2, w0, c0, c1, c2);
            best = select(best, c0, MP4_TAKE(c0, best));
            best = select(best, c1, MP4_TAKE(c1, best));
            best = select(best, c2, MP4_TAKE(c2, best));
            vstore4(best, 0, yr + ow);
        }
    }
    for (; ow < b; ow++) {
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
    int ow = a;
    if (stride == 2) {
        for (; ow + 3 < b; ow += 4) {
            const int w0 = ow * 2 - pad;
            const int4 j0 = (int4)(0, 2, 4, 6) + w0;
            float4 c0, c1, c2, best;
            int4 arg = j0 + b0, t;
#define MP4_STEP(c, o) t = MP4_TAKE(c, best); best = select(best, c, t); arg = select(arg, j0 + (o), t)
            MP3S2_ROW(r0, w0, best, c1, c2);
            MP4_STEP(c1, b0 + 1); MP4_STEP(c2, b0 + 2);
            MP3S2_ROW(r1, w0, c0, c1, c2);
            MP4_STEP(c0, b1); MP4_STEP(c1, b1 + 1); MP4_STEP(c2, b1 + 2);
            MP3S2_ROW(r2, w0, c0, c1, c2);
            MP4_STEP(c0, b2); MP4_STEP(c1, b2 + 1); MP4_STEP(c2, b2 + 2);
#undef MP4_STEP
            vstore4(arg, 0, ir + ow);
        }
    }
    for (; ow < b; ow++) {
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

/* dx of column iw of input row ih: sum of dy over the windows containing it whose stored argmax
 * is this element, in (oh, ow) order (rows oh0..oh1 of the plane's argmax / dy). */
static inline float maxpool_gather(__global const int *a, __global const float *g, int Wo, int oh0,
                                   int oh1, int me, int iw, int k, int stride, int pad) {
    const int ow0 = max(0, (iw + pad - k + stride) / stride);
    const int ow1 = min(Wo - 1, (iw + pad) / stride);
    float acc = 0.0f;
    for (int oh = oh0; oh <= oh1; oh++)
        for (int ow = ow0; ow <= ow1; ow++)
            if (a[oh * Wo + ow] == me) acc += g[oh * Wo + ow];
    return acc;
}

/* Pass 2, gws = (H, planes): item (ih, pl) writes input row ih of plane pl (gather form,
 * deterministic, no atomics): every dx element sums dy over the windows containing it whose
 * stored argmax is this element, in (oh, ow) order.
 * k = 3, stride 2 interior: output windows m..m+3 cover columns q = iw + pad in [2m, 2m+8);
 * even q = 2(m+j) lies in windows m+j-1 and m+j, odd q = 2(m+j)+1 in window m+j only. Those
 * terms are added as float4 selects (a non-matching window adds +0.0f, which leaves a sum that
 * starts at +0.0f unchanged), so each dx element gets exactly the gather form's sum. */
__kernel void maxpool_bwd_idx(__global const int *idx, __global const float *dy, int dyo, __global float *dx,
                              int dxo, int planes, int H, int W, int Ho, int Wo, int k, int stride, int pad) {
    const int ih = get_global_id(0), pl = get_global_id(1);
    if (ih >= H || pl >= planes) return;
    __global const int *a = idx + (size_t)pl * Ho * Wo;
    __global const float *g = dy + dyo + (size_t)pl * Ho * Wo;
    __global float *dr = dx + dxo + ((size_t)pl * H + ih) * W;
    const int oh0 = max(0, (ih + pad - k + stride) / stride);
    const int oh1 = min(Ho - 1, (ih + pad) / stride);
    const int lo = ih * W;
    int iw = 0;
    if (k == 3 && stride == 2 && oh1 >= oh0 && oh1 - oh0 <= 1) {
        __global const int *a0 = a + oh0 * Wo, *a1 = a + oh1 * Wo;
        __global const float *g0 = g + oh0 * Wo, *g1 = g + oh1 * Wo;
        const int two = oh1 > oh0;
        const int iws = 2 - pad;                      /* first column of block m = 1 */
        for (; iw < iws; iw++) dr[iw] = maxpool_gather(a, g, Wo, oh0, oh1, lo + iw, iw, k, stride, pad);
        const float4 z = (float4)(0.0f);
        for (int m = 1; m + 3 <= Wo - 1 && 2 * m - pad + 8 <= W; m += 4, iw += 8) {
            const int4 me = (int4)(0, 2, 4, 6) + (lo + 2 * m - pad);    /* even q columns */
            const int4 mo = me + 1;                                      /* odd q columns */
            int4 A = vload4(0, a0 + m), Ap = vload4(0, a0 + m - 1);
            float4 G = vload4(0, g0 + m), Gp = vload4(0, g0 + m - 1);
            float4 ev = z + select(z, Gp, Ap == me);
            ev += select(z, G, A == me);
            float4 od = z + select(z, G, A == mo);
            if (two) {
                A = vload4(0, a1 + m); Ap = vload4(0, a1 + m - 1);
                G = vload4(0, g1 + m); Gp = vload4(0, g1 + m - 1);
                ev += select(z, Gp, Ap == me);
                ev += select(z, G, A == me);
                od += select(z, G, A == mo);
            }
            vstore8((float8)(ev.s0, od.s0, ev.s1, od.s1, ev.s2, od.s2, ev.s3, od.s3), 0, dr + iw);
        }
    }
    for (; iw < W; iw++) dr[iw] = maxpool_gather(a, g, Wo, oh0, oh1, lo + iw, iw, k, stride, pad);
}

#ifdef STFPM_GPU
/* GPU variant: one output element per work-item, get_global_id(0) along the row (neighbouring
 * work-items read neighbouring windows: coalesced), dimensions 1 and 2 along rows and planes.
 * Same window scan (maxpool_win: row-major, first maximum, NaN wins) and same gather order
 * (maxpool_gather) as the row form, so the results are the same. */

/* gws = (Wo, Ho, planes): y[pl][oh][ow]. */
__kernel void maxpool_fwd_g(__global const float *x, int xo, __global float *y, int yo, int planes,
                            int H, int W, int Ho, int Wo, int k, int stride, int pad) {
    const int ow = get_global_id(0), oh = get_global_id(1), pl = get_global_id(2);
    if (ow >= Wo || oh >= Ho || pl >= planes) return;
    __global const float *p = x + xo + (size_t)pl * H * W;
    const int h0 = oh * stride - pad;
    float best;
    maxpool_win(p, W, max(h0, 0), min(h0 + k, H), ow * stride - pad, k, &best);
    y[yo + ((size_t)pl * Ho + oh) * Wo + ow] = best;
}

/* Backward pass 1, gws = (Wo, Ho, planes): the argmax (plane-local ih * W + iw) of window (oh, ow). */
__kernel void maxpool_argmax_idx_g(__global const float *x, int xo, __global int *idx, int planes, int H,
                                   int W, int Ho, int Wo, int k, int stride, int pad) {
    const int ow = get_global_id(0), oh = get_global_id(1), pl = get_global_id(2);
    if (ow >= Wo || oh >= Ho || pl >= planes) return;
    float best;
    idx[((size_t)pl * Ho + oh) * Wo + ow] =
        maxpool_argmax(x + xo + (size_t)pl * H * W, H, W, k, stride, pad, oh, ow, &best);
}

/* Backward pass 2, gws = (W, H, planes): dx[pl][ih][iw] gathers dy over the windows containing
 * it whose stored argmax is this element, in (oh, ow) order (deterministic, no atomics). */
__kernel void maxpool_bwd_idx_g(__global const int *idx, __global const float *dy, int dyo, __global float *dx,
                                int dxo, int planes, int H, int W, int Ho, int Wo, int k, int stride,
                                int pad) {
    const int iw = get_global_id(0), ih = get_global_id(1), pl = get_global_id(2);
    if (iw >= W || ih >= H || pl >= planes) return;
    const int oh0 = max(0, (ih + pad - k + stride) / stride);
    const int oh1 = min(Ho - 1, (ih + pad) / stride);
    dx[dxo + ((size_t)pl * H + ih) * W + iw] =
        maxpool_gather(idx + (size_t)pl * Ho * Wo, dy + dyo + (size_t)pl * Ho * Wo, Wo, oh0, oh1, ih * W + iw,
                       iw, k, stride, pad);
}
#endif
