/* Convolution helpers: im2col, gather-form col2im, and the NCHW <-> CNHW permutations that
 * let one GEMM cover several images (host/conv.c).
 *
 * Column layout ("CNHW col"): col[k * NP + i * P + p] with
 *   k = (ci * KH + kh) * KW + kw   (K = Cin * KH * KW rows)
 *   i = image within the chunk, p = oh * Wo + ow (P = Ho * Wo), NP = nb * P columns.
 * So W (Cout x K) * col (K x NP) is the output of nb images in (Cout, nb * P) order.
 * conv_im2col_t writes the transpose colT (NP x K), used by the weight gradient. */

/* gws = (NP, K). x points at the chunk's first image (x_off in floats). */
__kernel void conv_im2col(__global const float *x, int x_off, int C, int H, int W, int KH, int KW,
                          int stride, int pad, int Ho, int Wo, int nb, __global float *col) {
    const int j = get_global_id(0);
    const int k = get_global_id(1);
    const int P = Ho * Wo;
    const int NP = nb * P;
    const int K = C * KH * KW;
    if (j >= NP || k >= K) return;
    const int i = j / P;
    const int p = j - i * P;
    const int oh = p / Wo;
    const int ow = p - oh * Wo;
    const int kw = k % KW;
    const int t = k / KW;
    const int kh = t % KH;
    const int ci = t / KH;
    const int h = oh * stride - pad + kh;
    const int w = ow * stride - pad + kw;
    float v = 0.0f;
    if (h >= 0 && h < H && w >= 0 && w < W)
        v = x[x_off + ((i * C + ci) * H + h) * W + w];
    col[(size_t)k * NP + j] = v;
}

/* Transposed column matrix colT (NP x K): colT[j * K + k] = col[k * NP + j].
 * gws = (K, NP) so consecutive work-items write consecutive addresses. */
__kernel void conv_im2col_t(__global const float *x, int x_off, int C, int H, int W, int KH, int KW,
                            int stride, int pad, int Ho, int Wo, int nb, __global float *colt) {
    const int k = get_global_id(0);
    const int j = get_global_id(1);
    const int P = Ho * Wo;
    const int NP = nb * P;
    const int K = C * KH * KW;
    if (j >= NP || k >= K) return;
    const int i = j / P;
    const int p = j - i * P;
    const int oh = p / Wo;
    const int ow = p - oh * Wo;
    const int kw = k % KW;
    const int t = k / KW;
    const int kh = t % KH;
    const int ci = t / KH;
    const int h = oh * stride - pad + kh;
    const int w = ow * stride - pad + kw;
    float v = 0.0f;
    if (h >= 0 && h < H && w >= 0 && w < W)
        v = x[x_off + ((i * C + ci) * H + h) * W + w];
    colt[(size_t)j * K + k] = v;
}

/* Gather-form col2im (no atomics): every input element sums the column entries that read it.
 * gws = nb * C * H * W. dx points at the chunk's first image (dx_off in floats); overwritten. */
__kernel void conv_col2im(__global const float *col, int C, int H, int W, int KH, int KW,
                          int stride, int pad, int Ho, int Wo, int nb, __global float *dx,
                          int dx_off) {
    const int idx = get_global_id(0);
    const int total = nb * C * H * W;
    if (idx >= total) return;
    const int w = idx % W;
    int t = idx / W;
    const int h = t % H;
    t /= H;
    const int ci = t % C;
    const int i = t / C;
    const int P = Ho * Wo;
    const int NP = nb * P;
    const int hp = h + pad, wp = w + pad;
    float acc = 0.0f;
    /* output row oh reads input row h through kh = hp - oh * stride, 0 <= kh < KH */
    for (int kh = hp % stride; kh < KH; kh += stride) {
        const int oh = (hp - kh) / stride;
        if (oh < 0) break;          /* kh grows, oh shrinks: nothing further is valid */
        if (oh >= Ho) continue;
        for (int kw = wp % stride; kw < KW; kw += stride) {
            const int ow = (wp - kw) / stride;
            if (ow < 0) break;
            if (ow >= Wo) continue;
            const int k = (ci * KH + kh) * KW + kw;
            acc += col[(size_t)k * NP + i * P + oh * Wo + ow];
        }
    }
    dx[dx_off + idx] = acc;
}

/* src (nb, C, P) at src_off -> dst (C, nb * P). gws = (P, nb * C). */
__kernel void conv_nchw_to_cnhw(__global const float *src, int src_off, int C, int P, int nb,
                                __global float *dst) {
    const int p = get_global_id(0);
    const int ic = get_global_id(1);
    if (p >= P || ic >= nb * C) return;
    const int i = ic / C;
    const int c = ic - i * C;
    dst[((size_t)c * nb + i) * P + p] = src[src_off + (size_t)ic * P + p];
}

/* src (C, nb * P) -> dst (nb, C, P) at dst_off. gws = (P, nb * C). */
__kernel void conv_cnhw_to_nchw(__global const float *src, int C, int P, int nb,
                                __global float *dst, int dst_off) {
    const int p = get_global_id(0);
    const int ic = get_global_id(1);
    if (p >= P || ic >= nb * C) return;
    const int i = ic / C;
    const int c = ic - i * C;
    dst[dst_off + (size_t)ic * P + p] = src[((size_t)c * nb + i) * P + p];
}

/* EXPERIMENT: row-based im2col, gws = (nb*Ho, K) */
__kernel void conv_im2col_rows(__global const float *x, int x_off, int C, int H, int W, int KH, int KW,
                          int stride, int pad, int Ho, int Wo, int nb, __global float *col) {
    const int r = get_global_id(0);
    const int k = get_global_id(1);
    const int K = C * KH * KW;
    if (r >= nb * Ho || k >= K) return;
    const int i = r / Ho;
    const int oh = r - i * Ho;
    const int kw = k % KW;
    const int t = k / KW;
    const int kh = t % KH;
    const int ci = t / KH;
    const int NP = nb * Ho * Wo;
    __global float *dst = col + (size_t)k * NP + (size_t)r * Wo;
    const int h = oh * stride - pad + kh;
    if (h < 0 || h >= H) {
        for (int ow = 0; ow < Wo; ow++) dst[ow] = 0.0f;
        return;
    }
    __global const float *src = x + x_off + ((size_t)(i * C + ci) * H + h) * W;
    int w = kw - pad;
    for (int ow = 0; ow < Wo; ow++, w += stride)
        dst[ow] = (w >= 0 && w < W) ? src[w] : 0.0f;
}
/* EXPERIMENT: 3D element im2col, gws = (Wo, nb*Ho, K) */
__kernel void conv_im2col_3d(__global const float *x, int x_off, int C, int H, int W, int KH, int KW,
                          int stride, int pad, int Ho, int Wo, int nb, __global float *col) {
    const int ow = get_global_id(0);
    const int r = get_global_id(1);
    const int k = get_global_id(2);
    const int K = C * KH * KW;
    if (ow >= Wo || r >= nb * Ho || k >= K) return;
    const int i = r / Ho;
    const int oh = r - i * Ho;
    const int kw = k % KW;
    const int t = k / KW;
    const int kh = t % KH;
    const int ci = t / KH;
    const int NP = nb * Ho * Wo;
    const int h = oh * stride - pad + kh;
    const int w = ow * stride - pad + kw;
    float v = 0.0f;
    if (h >= 0 && h < H && w >= 0 && w < W)
        v = x[x_off + ((i * C + ci) * H + h) * W + w];
    col[(size_t)k * NP + (size_t)r * Wo + ow] = v;
}
