/* Convolution helpers for host/conv.c: im2col, its transpose, and a gather-form col2im.
 *
 * Column layout: col[k * NP + i * P + oh * Wo + ow] with
 *   k = (ci * KH + kh) * KW + kw   (K = Cin * KH * KW rows)
 *   i = image within the chunk, P = Ho * Wo, NP = nb * P columns,
 * so W (Cout x K) * col (K x NP) is the output of nb images in (Cout, nb * P) order.
 * conv_im2col_t writes the transpose colT[(i * P + oh * Wo + ow) * ldk + k] (ldk >= K; zeros
 * in columns K .. ldk-1).
 *
 * Each work-item handles a whole output row (or a whole column of colT) rather than a single
 * element: on CPU OpenCL (PoCL) the per-element form spent its time on index arithmetic and
 * per-item overhead (0.3 GB/s written vs 6.7 GB/s for the row form, layer1 shape). The GPU
 * variant (#ifdef STFPM_GPU, at the end) is the per-element form.
 *
 * Remainders are written q = a / b, r = a - q * b, never a % b next to a / b: LLVM turns such a
 * pair into one division and a freeze instruction, which Oclgrind 21.10's uninitialised-value
 * checker cannot execute (scripts/oclgrind.sh). */

/* Rows r0 .. r0+nr-1 of the batch's output rows (r = i * Ho + oh, possibly spanning images;
 * x_off is image 0's offset): gws = (nr, K), item (rr, k) writes col[k][rr * Wo .. rr * Wo + Wo)
 * for r = r0 + rr; row stride ld >= nr * Wo, the columns beyond zero (written by item rr = nr - 1:
 * the GEMM reads them). */
__kernel void conv_im2col(__global const float *x, int x_off, int C, int H, int W, int KH, int KW,
                          int stride, int pad, int Ho, int Wo, int r0, int nr, int ld, __global float *col) {
    const int rr = get_global_id(0);
    const int k = get_global_id(1);
    if (rr >= nr || k >= C * KH * KW) return;
    if (rr == nr - 1)
        for (int c = nr * Wo; c < ld; c++) col[(size_t)k * ld + c] = 0.0f;
    const int r = r0 + rr;
    const int i = r / Ho;
    const int oh = r - i * Ho;
    const int t = k / KW;
    const int kw = k - t * KW;
    const int ci = t / KH;
    const int kh = t - ci * KH;
    __global float *dst = col + (size_t)k * ld + (size_t)rr * Wo;
    const int h = oh * stride - pad + kh;
    if (h < 0 || h >= H) {
        for (int ow = 0; ow < Wo; ow++) dst[ow] = 0.0f;
        return;
    }
    __global const float *src = x + x_off + ((size_t)(i * C + ci) * H + h) * W;
    /* output columns ow read input column ow * stride + base: zeros left of ow_lo and from
     * ow_hi on, a copy in between (stride 2: eight outputs per vload16, its even lanes) */
    const int base = kw - pad;
    const int ow_lo = min(Wo, base >= 0 ? 0 : (-base + stride - 1) / stride);
    const int ow_hi = max(ow_lo, min(Wo, W - 1 - base >= 0 ? (W - 1 - base) / stride + 1 : 0));
    int ow = 0;
    for (; ow < ow_lo; ow++) dst[ow] = 0.0f;
    if (stride == 2) {
        for (; ow + 8 <= ow_hi && base + 2 * ow + 16 <= W; ow += 8)
            vstore8(vload16(0, src + base + 2 * ow).even, 0, dst + ow);
    }
    for (; ow < ow_hi; ow++) dst[ow] = src[ow * stride + base];
    for (; ow < Wo; ow++) dst[ow] = 0.0f;
}

/* gws = (Wo, nb * Ho): item (ow, r = i * Ho + oh) writes the K entries of colT row r * Wo + ow. */
__kernel void conv_im2col_t(__global const float *x, int x_off, int C, int H, int W, int KH, int KW,
                            int stride, int pad, int Ho, int Wo, int nb, int ldk, __global float *colt) {
    const int ow = get_global_id(0);
    const int r = get_global_id(1);
    if (ow >= Wo || r >= nb * Ho) return;
    const int i = r / Ho;
    const int oh = r - i * Ho;
    const int K = C * KH * KW;
    __global float *dst = colt + ((size_t)r * Wo + ow) * ldk;
    __global const float *src = x + x_off + (size_t)i * C * H * W;
    const int h0 = oh * stride - pad, w0 = ow * stride - pad;
    for (int ci = 0; ci < C; ci++, src += H * W) {
        for (int kh = 0; kh < KH; kh++) {
            const int h = h0 + kh;
            const int hok = h >= 0 && h < H;
            for (int kw = 0; kw < KW; kw++) {
                const int w = w0 + kw;
                *dst++ = hok && w >= 0 && w < W ? src[h * W + w] : 0.0f;
            }
        }
    }
    for (int k = K; k < ldk; k++) *dst++ = 0.0f;
}

/* Gather-form col2im (no atomics): dx[i][ci][h][w] = sum of the col entries that read it.
 * col has row stride ld >= nb * P. gws = (H, nb * C): item (h, i * C + ci) writes one row of
 * dx (overwritten). */
__kernel void conv_col2im(__global const float *col, int ld, int C, int H, int W, int KH, int KW,
                          int stride, int pad, int Ho, int Wo, int nb, __global float *dx,
                          int dx_off) {
    const int h = get_global_id(0);
    const int ic = get_global_id(1);
    if (h >= H || ic >= nb * C) return;
    const int i = ic / C;
    const int ci = ic - i * C;
    const int P = Ho * Wo;
    const size_t NP = (size_t)ld;
    __global const float *src = col + (size_t)i * P;
    __global float *dst = dx + dx_off + ((size_t)ic * H + h) * W;
    /* output row oh reads input row h through tap kh = hp - oh * stride, 0 <= kh < KH */
    const int hp = h + pad;
    const int oh0 = hp / stride, kh0 = hp - oh0 * stride;
    /* same for columns, advanced incrementally: wp = w + pad = ow0 * stride + kw0 */
    int ow0 = pad / stride, kw0 = pad - ow0 * stride;
    for (int w = 0; w < W; w++) {
        float acc = 0.0f;
        for (int kh = kh0, oh = oh0; kh < KH && oh >= 0; kh += stride, oh--) {
            if (oh >= Ho) continue;
            __global const float *rowk = src + (size_t)((ci * KH + kh) * KW) * NP + oh * Wo;
            for (int kw = kw0, ow = ow0; kw < KW && ow >= 0; kw += stride, ow--) {
                if (ow < Wo) acc += rowk[(size_t)kw * NP + ow];
            }
        }
        dst[w] = acc;
        if (++kw0 == stride) { kw0 = 0; ow0++; }
    }
}

/* Epilogue of a row chunk (see conv_im2col): y[i][k][oh][:] = act(src[k * ld + rr * Wo + :] +
 * bias[k] + res[i][k][oh][:]) for r = r0 + rr = i * Ho + oh. gws = (nr, K). */
__kernel void conv_epilogue_rows(__global const float *src, int ld, int r0, int nr, int K, int Ho, int Wo,
                                 __global float *y, int y_off, int has_bias, __global const float *bias,
                                 int bias_off, int has_res, __global const float *res, int res_off,
                                 int relu) {
    const int rr = get_global_id(0);
    const int k = get_global_id(1);
    if (rr >= nr || k >= K) return;
    const int r = r0 + rr;
    const int i = r / Ho;
    const int oh = r - i * Ho;
    __global const float *s = src + (size_t)k * ld + (size_t)rr * Wo;
    const size_t o = (((size_t)i * K + k) * Ho + oh) * Wo;
    __global float *d = y + y_off + o;
    __global const float *q = res + res_off + o;
    const float b = has_bias ? bias[bias_off + k] : 0.0f;
    if (has_res) {
        if (relu) for (int p = 0; p < Wo; p++) d[p] = fmax(s[p] + b + q[p], 0.0f);
        else for (int p = 0; p < Wo; p++) d[p] = s[p] + b + q[p];
    } else {
        if (relu) for (int p = 0; p < Wo; p++) d[p] = fmax(s[p] + b, 0.0f);
        else for (int p = 0; p < Wo; p++) d[p] = s[p] + b;
    }
}

/* m (rows x ld): zero columns [col0, ld) of every row. gws = rows. */
__kernel void conv_zero_cols(__global float *m, int rows, int ld, int col0) {
    const int r = get_global_id(0);
    if (r >= rows) return;
    for (int c = col0; c < ld; c++) m[(size_t)r * ld + c] = 0.0f;
}

/* Epilogue of the fused forward (stfpm_conv2d_forward_fused):
 *   y[i][k][p] = act(src(k, i, p) + bias[k] + res[i][k][p]),  p < P,
 * src(k, i, p) = src[src_off + k * ks + i * is + p] (the GEMM output of a chunk: ks = nb * P,
 * is = P; or y itself: ks = P, is = K * P). bias / res optional (has_*), act = ReLU when relu.
 * y, res: (nb, K, P) at y_off / res_off. gws = nb * K: item (i * K + k) does one row of P. */
__kernel void conv_epilogue(__global const float *src, int src_off, int ks, int is, int K, int P,
                            int nb, __global float *y, int y_off, int has_bias,
                            __global const float *bias, int bias_off, int has_res,
                            __global const float *res, int res_off, int relu) {
    const int ik = get_global_id(0);
    if (ik >= nb * K) return;
    const int i = ik / K;
    const int k = ik - i * K;
    __global const float *s = src + src_off + (size_t)k * ks + (size_t)i * is;
    __global float *d = y + y_off + (size_t)ik * P;
    __global const float *r = res + res_off + (size_t)ik * P;
    const float b = has_bias ? bias[bias_off + k] : 0.0f;
    if (has_res) {
        if (relu) for (int p = 0; p < P; p++) d[p] = fmax(s[p] + b + r[p], 0.0f);
        else for (int p = 0; p < P; p++) d[p] = s[p] + b + r[p];
    } else {
        if (relu) for (int p = 0; p < P; p++) d[p] = fmax(s[p] + b, 0.0f);
        else for (int p = 0; p < P; p++) d[p] = s[p] + b;
    }
}

/* Images of t (nb, K, P) at t_off -> m (K, ld): m[k * ld + i * P + p] = t[(i * K + k) * P + p]
 * (the matrix of dy for the backward GEMMs). gws = nb * K: item (i * K + k) copies one row. */
__kernel void conv_to_rows(__global const float *t, int t_off, int K, int P, int nb, int ld,
                           __global float *m) {
    const int ik = get_global_id(0);
    if (ik >= nb * K) return;
    const int i = ik / K;
    const int k = ik - i * K;
    __global const float *s = t + t_off + (size_t)ik * P;
    __global float *d = m + (size_t)k * ld + (size_t)i * P;
    for (int p = 0; p < P; p++) d[p] = s[p];
}

#ifdef STFPM_GPU
/* GPU variant (STFPM_GPU, the kernels option): one element per work-item, get_global_id(0) on
 * the contiguous index of what the item writes, so that the writes of neighbouring work-items
 * coalesce; same layouts and results as the row-form kernels above (host/conv.c picks by
 * stfpm_gpu_kernels). */

/* conv_im2col, one column entry per item: gws = (ld, K), item (j, k) writes col[k * ld + j]:
 * for j = rr * Wo + ow < nr * Wo the entry of output row r = r0 + rr, column ow; zero beyond.
 * Reads x along ow (stride apart). */
__kernel void conv_im2col_g(__global const float *x, int x_off, int C, int H, int W, int KH, int KW,
                            int stride, int pad, int Ho, int Wo, int r0, int nr, int ld,
                            __global float *col) {
    const int j = get_global_id(0);
    const int k = get_global_id(1);
    if (j >= ld || k >= C * KH * KW) return;
    if (j >= nr * Wo) {
        col[(size_t)k * ld + j] = 0.0f;
        return;
    }
    const int rr = j / Wo;
    const int ow = j - rr * Wo;
    const int r = r0 + rr;
    const int i = r / Ho;
    const int oh = r - i * Ho;
    const int t = k / KW;
    const int kw = k - t * KW;
    const int ci = t / KH;
    const int kh = t - ci * KH;
    const int h = oh * stride - pad + kh;
    const int w = ow * stride - pad + kw;
    float v = 0.0f;
    if (h >= 0 && h < H && w >= 0 && w < W) v = x[x_off + ((size_t)(i * C + ci) * H + h) * W + w];
    col[(size_t)k * ld + j] = v;
}

/* conv_im2col_t, one colT entry per item, and zero rows after: gws = (ldk, nrows), item (k, q)
 * writes colt[q * ldk + k]: for q = (i * Ho + oh) * Wo + ow < nb * P the tap k of output pixel
 * (i, oh, ow) (zero for k >= K), zero for q >= nb * P. Neighbouring items read neighbouring taps
 * (kw contiguous in x). */
__kernel void conv_im2col_t_g(__global const float *x, int x_off, int C, int H, int W, int KH, int KW,
                              int stride, int pad, int Ho, int Wo, int nb, int ldk, int nrows,
                              __global float *colt) {
    const int k = get_global_id(0);
    const int q = get_global_id(1);
    const int P = Ho * Wo;
    if (k >= ldk || q >= nrows) return;
    float v = 0.0f;
    if (k < C * KH * KW && q < nb * P) {
        const int i = q / P;
        const int p = q - i * P;
        const int oh = p / Wo;
        const int ow = p - oh * Wo;
        const int t = k / KW;
        const int kw = k - t * KW;
        const int ci = t / KH;
        const int kh = t - ci * KH;
        const int h = oh * stride - pad + kh;
        const int w = ow * stride - pad + kw;
        if (h >= 0 && h < H && w >= 0 && w < W) v = x[x_off + ((size_t)(i * C + ci) * H + h) * W + w];
    }
    colt[(size_t)q * ldk + k] = v;
}

/* conv_col2im, one dx element per item: gws = (W, nb * C * H), item (w, (i * C + ci) * H + h)
 * writes dx[dx_off + ((i * C + ci) * H + h) * W + w] (overwritten) = the sum over the taps
 * (kh, kw) with oh * stride + kh = h + pad, ow * stride + kw = w + pad of
 * col[((ci * KH + kh) * KW + kw) * ld + i * P + oh * Wo + ow]; kh, then kw ascending, as the
 * row form. */
__kernel void conv_col2im_g(__global const float *col, int ld, int C, int H, int W, int KH, int KW,
                            int stride, int pad, int Ho, int Wo, int nb, __global float *dx,
                            int dx_off) {
    const int w = get_global_id(0);
    const int t = get_global_id(1);
    if (w >= W || t >= nb * C * H) return;
    const int ic = t / H;
    const int h = t - ic * H;
    const int i = ic / C;
    const int ci = ic - i * C;
    const size_t NP = (size_t)ld;
    __global const float *src = col + (size_t)i * Ho * Wo;
    const int hp = h + pad, wp = w + pad;
    const int oh0 = hp / stride, kh0 = hp - oh0 * stride;
    const int ow0 = wp / stride, kw0 = wp - ow0 * stride;
    float acc = 0.0f;
    for (int kh = kh0, oh = oh0; kh < KH && oh >= 0; kh += stride, oh--) {
        if (oh >= Ho) continue;
        __global const float *rowk = src + (size_t)((ci * KH + kh) * KW) * NP + oh * Wo;
        for (int kw = kw0, ow = ow0; kw < KW && ow >= 0; kw += stride, ow--) {
            if (ow < Wo) acc += rowk[(size_t)kw * NP + ow];
        }
    }
    dx[dx_off + (size_t)t * W + w] = acc;
}

/* conv_epilogue_rows, one element per item: gws = (nr * Wo, K), item (j, k) with
 * j = rr * Wo + ow writes y[i][k][oh][ow] from src[k * ld + j]. */
__kernel void conv_epilogue_rows_g(__global const float *src, int ld, int r0, int nr, int K, int Ho,
                                   int Wo, __global float *y, int y_off, int has_bias,
                                   __global const float *bias, int bias_off, int has_res,
                                   __global const float *res, int res_off, int relu) {
    const int j = get_global_id(0);
    const int k = get_global_id(1);
    if (j >= nr * Wo || k >= K) return;
    const int rr = j / Wo;
    const int ow = j - rr * Wo;
    const int r = r0 + rr;
    const int i = r / Ho;
    const int oh = r - i * Ho;
    const size_t o = (((size_t)i * K + k) * Ho + oh) * Wo + ow;
    float v = src[(size_t)k * ld + j];
    if (has_bias) v += bias[bias_off + k];
    if (has_res) v += res[res_off + o];
    if (relu) v = fmax(v, 0.0f);
    y[y_off + o] = v;
}

/* conv_zero_cols, one element per item: gws = (ld - col0, rows). */
__kernel void conv_zero_cols_g(__global float *m, int rows, int ld, int col0) {
    const int c = get_global_id(0);
    const int r = get_global_id(1);
    if (c >= ld - col0 || r >= rows) return;
    m[(size_t)r * ld + col0 + c] = 0.0f;
}

/* conv_epilogue, one element per item: gws = (P, nb * K), item (p, i * K + k). src may be y
 * itself (each item reads and writes only its own element). */
__kernel void conv_epilogue_g(__global const float *src, int src_off, int ks, int is, int K, int P,
                              int nb, __global float *y, int y_off, int has_bias,
                              __global const float *bias, int bias_off, int has_res,
                              __global const float *res, int res_off, int relu) {
    const int p = get_global_id(0);
    const int ik = get_global_id(1);
    if (p >= P || ik >= nb * K) return;
    const int i = ik / K;
    const int k = ik - i * K;
    const size_t o = (size_t)ik * P + p;
    float v = src[src_off + (size_t)k * ks + (size_t)i * is + p];
    if (has_bias) v += bias[bias_off + k];
    if (has_res) v += res[res_off + o];
    if (relu) v = fmax(v, 0.0f);
    y[y_off + o] = v;
}

/* conv_to_rows, one element per item: gws = (P, nb * K), item (p, i * K + k). */
__kernel void conv_to_rows_g(__global const float *t, int t_off, int K, int P, int nb, int ld,
                             __global float *m) {
    const int p = get_global_id(0);
    const int ik = get_global_id(1);
    if (p >= P || ik >= nb * K) return;
    const int i = ik / K;
    const int k = ik - i * K;
    m[(size_t)k * ld + (size_t)i * P + p] = t[t_off + (size_t)ik * P + p];
}
#endif
