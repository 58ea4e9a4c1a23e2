/* Winograd F(4x4, 3x3) convolution for 3x3 / stride-1 convolutions (host/winograd.c).
 *
 *   Y = A^T [ (G g G^T) . (B^T d B) ] A      per 6x6 input tile d -> 4x4 output tile
 *
 * (Lavin & Gray 2016, interpolation points 0, 1, -1, 2, -2, inf.) The element-wise products
 * summed over input channels are 36 independent GEMMs done by CLBlast:
 *   M[xi] (Cout x T) = U[xi] (Cout x Cin) * V[xi] (Cin x T),  xi = 0..35,
 * with U[xi][co][ci] the transformed weights, V[xi][ci][t] the transformed input tiles and T the
 * tiles of a chunk of images, t = (i * TH + ty) * TW + tx. V and M have row stride ld >= T.
 *
 * Backward-data of a 3x3 / stride-1 / pad-p convolution is the same computation on dy with the
 * weights flipped in both spatial axes and Cin / Cout swapped, padding 2 - p (flip != 0). */

/* Every value lives in a named scalar (token pasting below) rather than a private array: PoCL
 * kept the arrays of the first version in memory (0.7 MB of stack per work-group, ~100 ns per
 * tile); this form runs the transforms at memory speed. Each work-item handles a row of tiles
 * (the row form of cl/conv.cl's im2col, for the same reason: per-item overhead on CPUs). */

/* s{k}{b} = (B^T d)[k][b] for column b of the 6x6 input tile d{a}{b} (T: float or float4) */
#define WINO_BT_COL_T(T, b)                                               \
    const T s0##b = 4.0f * d0##b - 5.0f * d2##b + d4##b;                  \
    const T s1##b = -4.0f * (d1##b + d2##b) + d3##b + d4##b;              \
    const T s2##b = 4.0f * (d1##b - d2##b) - d3##b + d4##b;               \
    const T s3##b = 2.0f * (d3##b - d1##b) - d2##b + d4##b;               \
    const T s4##b = 2.0f * (d1##b - d3##b) - d2##b + d4##b;               \
    const T s5##b = 4.0f * d1##b - 5.0f * d3##b + d5##b;
#define WINO_BT_COL(b) WINO_BT_COL_T(float, b)
/* V[k*6 + l] = (s B)[k][l] for row k */
#define WINO_BT_ROW(k)                                                                   \
    dst[(size_t)(k * 6 + 0) * plane] = 4.0f * s##k##0 - 5.0f * s##k##2 + s##k##4;        \
    dst[(size_t)(k * 6 + 1) * plane] = -4.0f * (s##k##1 + s##k##2) + s##k##3 + s##k##4;  \
    dst[(size_t)(k * 6 + 2) * plane] = 4.0f * (s##k##1 - s##k##2) - s##k##3 + s##k##4;   \
    dst[(size_t)(k * 6 + 3) * plane] = 2.0f * (s##k##3 - s##k##1) - s##k##2 + s##k##4;   \
    dst[(size_t)(k * 6 + 4) * plane] = 2.0f * (s##k##1 - s##k##3) - s##k##2 + s##k##4;   \
    dst[(size_t)(k * 6 + 5) * plane] = 4.0f * s##k##1 - 5.0f * s##k##3 + s##k##5;
/* the six inputs of row a of the tile, zero outside the image */
#define WINO_LOAD_ROW(a)                                                                  \
    const float d##a##0 = ok##a && (uint)(w0 + 0) < (uint)W ? r##a[w0 + 0] : 0.0f;        \
    const float d##a##1 = ok##a && (uint)(w0 + 1) < (uint)W ? r##a[w0 + 1] : 0.0f;        \
    const float d##a##2 = ok##a && (uint)(w0 + 2) < (uint)W ? r##a[w0 + 2] : 0.0f;        \
    const float d##a##3 = ok##a && (uint)(w0 + 3) < (uint)W ? r##a[w0 + 3] : 0.0f;        \
    const float d##a##4 = ok##a && (uint)(w0 + 4) < (uint)W ? r##a[w0 + 4] : 0.0f;        \
    const float d##a##5 = ok##a && (uint)(w0 + 5) < (uint)W ? r##a[w0 + 5] : 0.0f;
#define WINO_ROW_PTR(a)                                                                   \
    const int ok##a = (uint)(h0 + a) < (uint)H;                                           \
    __global const float *r##a = src + (size_t)(ok##a ? h0 + a : 0) * W;

/* --- four tiles at a time (float4 lanes = tiles tx .. tx+3) ---------------------------------
 * PoCL does not vectorise the per-tile loops across work-items; computing four horizontally
 * adjacent tiles in the lanes of float4 values (and storing four consecutive t at once) made
 * the transforms ~2x faster (bench_step, 256x256). */
#define WINO_LD(a, w) (ok##a && (uint)(w) < (uint)W ? r##a[w] : 0.0f)
#define WINO_DECL_ROW4(a) float4 d##a##0, d##a##1, d##a##2, d##a##3, d##a##4, d##a##5;
/* row a of the four tiles: columns w0 + 4j + b, j = lane; interior: one run of 18 floats */
#define WINO_FAST_ROW4(a)                                                                  \
    {                                                                                      \
        __global const float *q = r##a + w0;                                               \
        const float4 v0 = vload4(0, q), v1 = vload4(0, q + 4), v2 = vload4(0, q + 8),      \
                     v3 = vload4(0, q + 12);                                               \
        const float2 v4 = vload2(0, q + 16);                                               \
        d##a##0 = (float4)(v0.s0, v1.s0, v2.s0, v3.s0);                                    \
        d##a##1 = (float4)(v0.s1, v1.s1, v2.s1, v3.s1);                                    \
        d##a##2 = (float4)(v0.s2, v1.s2, v2.s2, v3.s2);                                    \
        d##a##3 = (float4)(v0.s3, v1.s3, v2.s3, v3.s3);                                    \
        d##a##4 = (float4)(v1.s0, v2.s0, v3.s0, v4.s0);                                    \
        d##a##5 = (float4)(v1.s1, v2.s1, v3.s1, v4.s1);                                    \
    }
#define WINO_SLOW_ROW4(a)                                                                  \
    d##a##0 = (float4)(WINO_LD(a, w0), WINO_LD(a, w0 + 4), WINO_LD(a, w0 + 8), WINO_LD(a, w0 + 12));         \
    d##a##1 = (float4)(WINO_LD(a, w0 + 1), WINO_LD(a, w0 + 5), WINO_LD(a, w0 + 9), WINO_LD(a, w0 + 13));     \
    d##a##2 = (float4)(WINO_LD(a, w0 + 2), WINO_LD(a, w0 + 6), WINO_LD(a, w0 + 10), WINO_LD(a, w0 + 14));    \
    d##a##3 = (float4)(WINO_LD(a, w0 + 3), WINO_LD(a, w0 + 7), WINO_LD(a, w0 + 11), WINO_LD(a, w0 + 15));    \
    d##a##4 = (float4)(WINO_LD(a, w0 + 4), WINO_LD(a, w0 + 8), WINO_LD(a, w0 + 12), WINO_LD(a, w0 + 16));    \
    d##a##5 = (float4)(WINO_LD(a, w0 + 5), WINO_LD(a, w0 + 9), WINO_LD(a, w0 + 13), WINO_LD(a, w0 + 17));
/* store the lanes of v that are tiles (nst of them) at p, p+1, ... */
#define WINO_ST4(p, v)                                                                     \
    {                                                                                      \
        const float4 vv = (v);                                                             \
        __global float *pp = (p);                                                          \
        if (nst == 4) vstore4(vv, 0, pp);                                                  \
        else {                                                                             \
            pp[0] = vv.s0;                                                                 \
            if (nst > 1) pp[1] = vv.s1;                                                    \
            if (nst > 2) pp[2] = vv.s2;                                                    \
        }                                                                                  \
    }
#define WINO_BT_ROW4(k)                                                                    \
    WINO_ST4(dst + (size_t)(k * 6 + 0) * plane, 4.0f * s##k##0 - 5.0f * s##k##2 + s##k##4)        \
    WINO_ST4(dst + (size_t)(k * 6 + 1) * plane, -4.0f * (s##k##1 + s##k##2) + s##k##3 + s##k##4)  \
    WINO_ST4(dst + (size_t)(k * 6 + 2) * plane, 4.0f * (s##k##1 - s##k##2) - s##k##3 + s##k##4)   \
    WINO_ST4(dst + (size_t)(k * 6 + 3) * plane, 2.0f * (s##k##3 - s##k##1) - s##k##2 + s##k##4)   \
    WINO_ST4(dst + (size_t)(k * 6 + 4) * plane, 2.0f * (s##k##1 - s##k##3) - s##k##2 + s##k##4)   \
    WINO_ST4(dst + (size_t)(k * 6 + 5) * plane, 4.0f * s##k##1 - 5.0f * s##k##3 + s##k##5)

/* Input tiles of nb images of x (N, C, H, W) at x_off -> V[xi][c][t] (row stride ld, plane
 * stride `plane`). Tile (ty, tx) covers input rows ty*4 - pad .. +5 and columns tx*4 - pad .. +5
 * (zeros outside the image). gws = (TH, nb * C): item (ty, i * C + c) does tiles tx = 0..TW-1,
 * four at a time. */
__kernel void wino_input(__global const float *x, int x_off, int C, int H, int W, int pad,
                         int TH, int TW, int nb, int ld, int plane, __global float *V) {
    const int ty = get_global_id(0);
    const int ic = get_global_id(1);
    if (ty >= TH || ic >= nb * C) return;
    const int i = ic / C;
    const int c = ic - i * C;
    __global const float *src = x + x_off + (size_t)ic * H * W;
    const int h0 = ty * 4 - pad;
    WINO_ROW_PTR(0) WINO_ROW_PTR(1) WINO_ROW_PTR(2) WINO_ROW_PTR(3) WINO_ROW_PTR(4) WINO_ROW_PTR(5)
    const int rows_ok = ok0 && ok1 && ok2 && ok3 && ok4 && ok5;
    __global float *dst = V + (size_t)c * ld + ((size_t)i * TH + ty) * TW;
    for (int tx = 0; tx < TW; tx += 4, dst += 4) {
        const int w0 = tx * 4 - pad;
        const int nst = min(4, TW - tx);
        WINO_DECL_ROW4(0) WINO_DECL_ROW4(1) WINO_DECL_ROW4(2)
        WINO_DECL_ROW4(3) WINO_DECL_ROW4(4) WINO_DECL_ROW4(5)
        if (rows_ok && w0 >= 0 && w0 + 18 <= W) {
            WINO_FAST_ROW4(0) WINO_FAST_ROW4(1) WINO_FAST_ROW4(2)
            WINO_FAST_ROW4(3) WINO_FAST_ROW4(4) WINO_FAST_ROW4(5)
        } else {
            WINO_SLOW_ROW4(0) WINO_SLOW_ROW4(1) WINO_SLOW_ROW4(2)
            WINO_SLOW_ROW4(3) WINO_SLOW_ROW4(4) WINO_SLOW_ROW4(5)
        }
        WINO_BT_COL_T(float4, 0) WINO_BT_COL_T(float4, 1) WINO_BT_COL_T(float4, 2)
        WINO_BT_COL_T(float4, 3) WINO_BT_COL_T(float4, 4) WINO_BT_COL_T(float4, 5)
        WINO_BT_ROW4(0) WINO_BT_ROW4(1) WINO_BT_ROW4(2) WINO_BT_ROW4(3) WINO_BT_ROW4(4) WINO_BT_ROW4(5)
    }
}

/* s{k}{b} = (A^T m)[k][b] for column b of the 6x6 product tile m{a}{b} */
#define WINO_AT_COL(b)                                                                   \
    const float s0##b = m0##b + m1##b + m2##b + m3##b + m4##b;                           \
    const float s1##b = m1##b - m2##b + 2.0f * (m3##b - m4##b);                          \
    const float s2##b = m1##b + m2##b + 4.0f * (m3##b + m4##b);                          \
    const float s3##b = m1##b - m2##b + 8.0f * (m3##b - m4##b) + m5##b;
/* output row k of the tile: o{l} = (s A)[k][l], stored where inside the output */
#define WINO_AT_ROW(k)                                                                   \
    if (oh0 + k < Ho) {                                                                  \
        __global float *o = out + (oh0 + k) * Wo + ow0;                                  \
        float o0 = s##k##0 + s##k##1 + s##k##2 + s##k##3 + s##k##4;                      \
        float o1 = s##k##1 - s##k##2 + 2.0f * (s##k##3 - s##k##4);                       \
        float o2 = s##k##1 + s##k##2 + 4.0f * (s##k##3 + s##k##4);                       \
        float o3 = s##k##1 - s##k##2 + 8.0f * (s##k##3 - s##k##4) + s##k##5;             \
        if (ep) {                                                                        \
            __global const float *rr = rp + (oh0 + k) * Wo + ow0;                        \
            o0 += b; o1 += b; o2 += b; o3 += b;                                          \
            if (has_res) {                                                               \
                o0 += rr[0];                                                             \
                if (ow0 + 1 < Wo) o1 += rr[1];                                           \
                if (ow0 + 2 < Wo) o2 += rr[2];                                           \
                if (ow0 + 3 < Wo) o3 += rr[3];                                           \
            }                                                                            \
            if (relu) {                                                                  \
                o0 = fmax(o0, 0.0f); o1 = fmax(o1, 0.0f);                                \
                o2 = fmax(o2, 0.0f); o3 = fmax(o3, 0.0f);                                \
            }                                                                            \
        }                                                                                \
        if (full) { o[0] = o0; o[1] = o1; o[2] = o2; o[3] = o3; }                        \
        else {                                                                           \
            o[0] = o0;                                                                   \
            if (ow0 + 1 < Wo) o[1] = o1;                                                 \
            if (ow0 + 2 < Wo) o[2] = o2;                                                 \
            if (ow0 + 3 < Wo) o[3] = o3;                                                 \
        }                                                                                \
    }
#define WINO_LOAD_M(a)                                                                   \
    const float m##a##0 = src[(size_t)(a * 6 + 0) * plane];                                      \
    const float m##a##1 = src[(size_t)(a * 6 + 1) * plane];                                      \
    const float m##a##2 = src[(size_t)(a * 6 + 2) * plane];                                      \
    const float m##a##3 = src[(size_t)(a * 6 + 3) * plane];                                      \
    const float m##a##4 = src[(size_t)(a * 6 + 4) * plane];                                      \
    const float m##a##5 = src[(size_t)(a * 6 + 5) * plane];

/* Four tiles at a time: m{a}{b} hold tiles tx .. tx+3 in their lanes (one vload4 per plane). */
#define WINO_LOAD_M4(a)                                                                  \
    const float4 m##a##0 = vload4(0, src + (size_t)(a * 6 + 0) * plane);                 \
    const float4 m##a##1 = vload4(0, src + (size_t)(a * 6 + 1) * plane);                 \
    const float4 m##a##2 = vload4(0, src + (size_t)(a * 6 + 2) * plane);                 \
    const float4 m##a##3 = vload4(0, src + (size_t)(a * 6 + 3) * plane);                 \
    const float4 m##a##4 = vload4(0, src + (size_t)(a * 6 + 4) * plane);                 \
    const float4 m##a##5 = vload4(0, src + (size_t)(a * 6 + 5) * plane);
#define WINO_AT_COL4(b)                                                                  \
    const float4 s0##b = m0##b + m1##b + m2##b + m3##b + m4##b;                          \
    const float4 s1##b = m1##b - m2##b + 2.0f * (m3##b - m4##b);                         \
    const float4 s2##b = m1##b + m2##b + 4.0f * (m3##b + m4##b);                         \
    const float4 s3##b = m1##b - m2##b + 8.0f * (m3##b - m4##b) + m5##b;
/* one output tile row j (lanes: its four columns) of the four tiles, with the epilogue */
#define WINO_EP4(v, j)                                                                   \
    {                                                                                    \
        float4 q = (v);                                                                  \
        if (ep) {                                                                        \
            q += b;                                                                      \
            if (has_res) q += vload4(0, rr + 4 * j);                                     \
            if (relu) q = fmax(q, (float4)0.0f);                                         \
        }                                                                                \
        vstore4(q, 0, o + 4 * j);                                                        \
    }
/* output row k of the four tiles: o{l} (lanes = tiles), transposed to four runs of 4 columns */
#define WINO_AT_ROW4(k)                                                                  \
    {                                                                                    \
        __global float *o = out + (oh0 + k) * Wo + ow0;                                  \
        __global const float *rr = rp + (oh0 + k) * Wo + ow0;                            \
        const float4 o0 = s##k##0 + s##k##1 + s##k##2 + s##k##3 + s##k##4;              \
        const float4 o1 = s##k##1 - s##k##2 + 2.0f * (s##k##3 - s##k##4);                \
        const float4 o2 = s##k##1 + s##k##2 + 4.0f * (s##k##3 + s##k##4);                \
        const float4 o3 = s##k##1 - s##k##2 + 8.0f * (s##k##3 - s##k##4) + s##k##5;      \
        WINO_EP4(((float4)(o0.s0, o1.s0, o2.s0, o3.s0)), 0)                              \
        WINO_EP4(((float4)(o0.s1, o1.s1, o2.s1, o3.s1)), 1)                              \
        WINO_EP4(((float4)(o0.s2, o1.s2, o2.s2, o3.s2)), 2)                              \
        WINO_EP4(((float4)(o0.s3, o1.s3, o2.s3, o3.s3)), 3)                              \
    }

/* M[xi][k][t] (row stride ld, plane stride K * ld) -> output tiles of nb images of
 * y (N, K, Ho, Wo) at y_off (overwritten; the part of a tile beyond Ho / Wo is dropped), with
 * the epilogue y = act(y + bias[k] + res) (each part optional; res has y's shape at res_off,
 * act = ReLU when relu != 0; res may be y itself: each element is read before it is written).
 * gws = (TH, nb * K): item (ty, i * K + k) does tiles tx = 0..TW-1, four at a time where the
 * four tiles lie fully inside the output, else one at a time. */
__kernel void wino_output(__global const float *M, int K, int Ho, int Wo, int TH, int TW, int nb,
                          int ld, int plane, __global float *y, int y_off, int has_bias,
                          __global const float *bias, int bias_off, int has_res,
                          __global const float *res, int res_off, int relu) {
    const int ty = get_global_id(0);
    const int ik = get_global_id(1);
    if (ty >= TH || ik >= nb * K) return;
    const int i = ik / K;
    const int k = ik - i * K;
    __global const float *src = M + (size_t)k * ld + ((size_t)i * TH + ty) * TW;
    __global float *out = y + y_off + (size_t)ik * Ho * Wo;
    __global const float *rp = res + res_off + (size_t)ik * Ho * Wo;
    const int ep = has_bias || has_res || relu;
    const float b = has_bias ? bias[bias_off + k] : 0.0f;
    const int oh0 = ty * 4;
    int tx = 0;
    if (oh0 + 4 <= Ho) {
        for (; tx + 4 <= TW && tx * 4 + 16 <= Wo; tx += 4, src += 4) {
            const int ow0 = tx * 4;
            WINO_LOAD_M4(0) WINO_LOAD_M4(1) WINO_LOAD_M4(2) WINO_LOAD_M4(3) WINO_LOAD_M4(4) WINO_LOAD_M4(5)
            WINO_AT_COL4(0) WINO_AT_COL4(1) WINO_AT_COL4(2) WINO_AT_COL4(3) WINO_AT_COL4(4) WINO_AT_COL4(5)
            WINO_AT_ROW4(0) WINO_AT_ROW4(1) WINO_AT_ROW4(2) WINO_AT_ROW4(3)
        }
    }
    for (; tx < TW; tx++, src++) {
        const int ow0 = tx * 4;
        const int full = ow0 + 4 <= Wo;
        WINO_LOAD_M(0) WINO_LOAD_M(1) WINO_LOAD_M(2) WINO_LOAD_M(3) WINO_LOAD_M(4) WINO_LOAD_M(5)
        WINO_AT_COL(0) WINO_AT_COL(1) WINO_AT_COL(2) WINO_AT_COL(3) WINO_AT_COL(4) WINO_AT_COL(5)
        WINO_AT_ROW(0) WINO_AT_ROW(1) WINO_AT_ROW(2) WINO_AT_ROW(3)
    }
}

/* u{a}{b} = (G k G^T)[a][b] from t{a}{c} = (G k)[a][c] */
#define WINO_G_COL(c)                                                                    \
    const float t0##c = 0.25f * k0##c;                                                   \
    const float t1##c = (k0##c + k1##c + k2##c) * (-1.0f / 6.0f);                        \
    const float t2##c = (k0##c - k1##c + k2##c) * (-1.0f / 6.0f);                        \
    const float t3##c = k0##c * (1.0f / 24.0f) + k1##c * (1.0f / 12.0f) + k2##c * (1.0f / 6.0f); \
    const float t4##c = k0##c * (1.0f / 24.0f) - k1##c * (1.0f / 12.0f) + k2##c * (1.0f / 6.0f); \
    const float t5##c = k2##c;
#define WINO_G_ROW(a)                                                                    \
    U[(size_t)(a * 6 + 0) * plane] = 0.25f * t##a##0;                                            \
    U[(size_t)(a * 6 + 1) * plane] = (t##a##0 + t##a##1 + t##a##2) * (-1.0f / 6.0f);             \
    U[(size_t)(a * 6 + 2) * plane] = (t##a##0 - t##a##1 + t##a##2) * (-1.0f / 6.0f);             \
    U[(size_t)(a * 6 + 3) * plane] = t##a##0 * (1.0f / 24.0f) + t##a##1 * (1.0f / 12.0f) + t##a##2 * (1.0f / 6.0f); \
    U[(size_t)(a * 6 + 4) * plane] = t##a##0 * (1.0f / 24.0f) - t##a##1 * (1.0f / 12.0f) + t##a##2 * (1.0f / 6.0f); \
    U[(size_t)(a * 6 + 5) * plane] = t##a##2;

/* w (Cout, Cin, 3, 3) at w_off -> U (36 planes of R x S, plane stride R * S).
 * flip == 0: R = Cout, S = Cin, U[xi][co][ci] = (G w[co][ci] G^T)[xi].
 * flip != 0: R = Cin, S = Cout, U[xi][ci][co] = (G rot180(w[co][ci]) G^T)[xi].
 * gws = (Cin, Cout) without flip (consecutive items write consecutive U entries), (Cout, Cin)
 * with flip: item (j0, j1) is (ci, co) or (co, ci). */
__kernel void wino_weight(__global const float *w, int w_off, int Cout, int Cin, int flip,
                          int plane, __global float *U) {
    const int j0 = get_global_id(0);
    const int j1 = get_global_id(1);
    const int ci = flip ? j1 : j0, co = flip ? j0 : j1;
    if (ci >= Cin || co >= Cout) return;
    __global const float *g = w + w_off + ((size_t)co * Cin + ci) * 9;
    const float g0 = g[0], g1 = g[1], g2 = g[2], g3 = g[3], g4 = g[4], g5 = g[5], g6 = g[6],
                g7 = g[7], g8 = g[8];
    /* k{row}{col}: the kernel, rotated by 180 degrees for flip */
    const float k00 = flip ? g8 : g0, k01 = flip ? g7 : g1, k02 = flip ? g6 : g2;
    const float k10 = flip ? g5 : g3, k11 = g4, k12 = flip ? g3 : g5;
    const float k20 = flip ? g2 : g6, k21 = flip ? g1 : g7, k22 = flip ? g0 : g8;
    WINO_G_COL(0) WINO_G_COL(1) WINO_G_COL(2)
    U += flip ? (size_t)ci * Cout + co : (size_t)co * Cin + ci;
    WINO_G_ROW(0) WINO_G_ROW(1) WINO_G_ROW(2) WINO_G_ROW(3) WINO_G_ROW(4) WINO_G_ROW(5)
}

/* --- weight gradient ---------------------------------------------------------------------
 * From the forward identity sum_xi A^T[a][xi] G[xi][j] B^T[xi][l] = [l == a + j], the 3x3
 * weight gradient dW_j = sum_a dy_a d_{a + j} of one tile is
 *   dW = G^T [ (A dy A^T) . (B^T d B) ] G        (dy: 4x4 tile of dy, d: 6x6 input tile)
 * summed over tiles and images: S[xi] (K x C) = Z[xi] (K x T) * Vt[xi] (T x C), with
 * Z = A dy A^T (wino_dy), Vt the transposed input transform (wino_input_t), then dW = G^T S G
 * (wino_wgrad_out). Reductions over T run in CLBlast; padded rows / columns are zero. */

/* Vt[xi][t][c] (row stride C, plane stride `plane`): the input transform of wino_input, stored
 * transposed. gws = (TH, nb * C), run with local size (1, 16): the 16 items of a work-group
 * (consecutive c) fill the same cache lines. */
__kernel void wino_input_t(__global const float *x, int x_off, int C, int H, int W, int pad,
                           int TH, int TW, int nb, int plane, __global float *V) {
    const int ty = get_global_id(0);
    const int ic = get_global_id(1);
    if (ty >= TH || ic >= nb * C) return;
    const int i = ic / C;
    const int c = ic - i * C;
    __global const float *src = x + x_off + (size_t)ic * H * W;
    const int h0 = ty * 4 - pad;
    WINO_ROW_PTR(0) WINO_ROW_PTR(1) WINO_ROW_PTR(2) WINO_ROW_PTR(3) WINO_ROW_PTR(4) WINO_ROW_PTR(5)
    __global float *dst = V + ((size_t)i * TH + ty) * TW * C + c;
    for (int tx = 0; tx < TW; tx++, dst += C) {
        const int w0 = tx * 4 - pad;
        WINO_LOAD_ROW(0) WINO_LOAD_ROW(1) WINO_LOAD_ROW(2)
        WINO_LOAD_ROW(3) WINO_LOAD_ROW(4) WINO_LOAD_ROW(5)
        WINO_BT_COL(0) WINO_BT_COL(1) WINO_BT_COL(2) WINO_BT_COL(3) WINO_BT_COL(4) WINO_BT_COL(5)
        WINO_BT_ROW(0) WINO_BT_ROW(1) WINO_BT_ROW(2) WINO_BT_ROW(3) WINO_BT_ROW(4) WINO_BT_ROW(5)
    }
}

/* z{xi}{b} = (A e)[xi][b] for column b of the 4x4 dy tile e{a}{b}; A = (A^T)^T is 6 x 4 */
#define WINO_A_COL(b)                                                                     \
    const float z0##b = e0##b;                                                            \
    const float z1##b = e0##b + e1##b + e2##b + e3##b;                                    \
    const float z2##b = e0##b - e1##b + e2##b - e3##b;                                    \
    const float z3##b = e0##b + 2.0f * e1##b + 4.0f * e2##b + 8.0f * e3##b;               \
    const float z4##b = e0##b - 2.0f * e1##b + 4.0f * e2##b - 8.0f * e3##b;               \
    const float z5##b = e3##b;
/* Z[k*6 + l] = (z A^T)[k][l] for row k */
#define WINO_A_ROW(k)                                                                     \
    dst[(size_t)(k * 6 + 0) * plane] = z##k##0;                                           \
    dst[(size_t)(k * 6 + 1) * plane] = z##k##0 + z##k##1 + z##k##2 + z##k##3;             \
    dst[(size_t)(k * 6 + 2) * plane] = z##k##0 - z##k##1 + z##k##2 - z##k##3;             \
    dst[(size_t)(k * 6 + 3) * plane] = z##k##0 + 2.0f * z##k##1 + 4.0f * z##k##2 + 8.0f * z##k##3; \
    dst[(size_t)(k * 6 + 4) * plane] = z##k##0 - 2.0f * z##k##1 + 4.0f * z##k##2 - 8.0f * z##k##3; \
    dst[(size_t)(k * 6 + 5) * plane] = z##k##3;
#define WINO_LOAD_DY(a)                                                                   \
    const float e##a##0 = ok##a && ow0 + 0 < Wo ? q##a[ow0 + 0] : 0.0f;                   \
    const float e##a##1 = ok##a && ow0 + 1 < Wo ? q##a[ow0 + 1] : 0.0f;                   \
    const float e##a##2 = ok##a && ow0 + 2 < Wo ? q##a[ow0 + 2] : 0.0f;                   \
    const float e##a##3 = ok##a && ow0 + 3 < Wo ? q##a[ow0 + 3] : 0.0f;
#define WINO_DY_PTR(a)                                                                    \
    const int ok##a = oh0 + a < Ho;                                                       \
    __global const float *q##a = src + (size_t)(ok##a ? oh0 + a : 0) * Wo;

/* dy tiles of nb images of dy (N, K, Ho, Wo) at dy_off -> Z[xi][k][t] (row stride ld, plane
 * stride `plane`); zeros beyond Ho / Wo. gws = (TH, nb * K): item (ty, i * K + k). */
__kernel void wino_dy(__global const float *dy, int dy_off, int K, int Ho, int Wo, int TH, int TW,
                      int nb, int ld, int plane, __global float *Z) {
    const int ty = get_global_id(0);
    const int ik = get_global_id(1);
    if (ty >= TH || ik >= nb * K) return;
    const int i = ik / K;
    const int k = ik - i * K;
    __global const float *src = dy + dy_off + (size_t)ik * Ho * Wo;
    const int oh0 = ty * 4;
    WINO_DY_PTR(0) WINO_DY_PTR(1) WINO_DY_PTR(2) WINO_DY_PTR(3)
    __global float *dst = Z + (size_t)k * ld + ((size_t)i * TH + ty) * TW;
    for (int tx = 0; tx < TW; tx++, dst++) {
        const int ow0 = tx * 4;
        WINO_LOAD_DY(0) WINO_LOAD_DY(1) WINO_LOAD_DY(2) WINO_LOAD_DY(3)
        WINO_A_COL(0) WINO_A_COL(1) WINO_A_COL(2) WINO_A_COL(3)
        WINO_A_ROW(0) WINO_A_ROW(1) WINO_A_ROW(2) WINO_A_ROW(3) WINO_A_ROW(4) WINO_A_ROW(5)
    }
}

/* G^T applied to one 6-vector (3 results) */
#define WINO_GT(s0, s1, s2, s3, s4, s5, r0, r1, r2)                                       \
    const float r0 = 0.25f * (s0) - ((s1) + (s2)) * (1.0f / 6.0f) + ((s3) + (s4)) * (1.0f / 24.0f); \
    const float r1 = ((s2) - (s1)) * (1.0f / 6.0f) + ((s3) - (s4)) * (1.0f / 12.0f);      \
    const float r2 = ((s3) + (s4) - (s1) - (s2)) * (1.0f / 6.0f) + (s5);
#define WINO_LOAD_S(a)                                                                    \
    const float m##a##0 = src[(size_t)(a * 6 + 0) * plane];                               \
    const float m##a##1 = src[(size_t)(a * 6 + 1) * plane];                               \
    const float m##a##2 = src[(size_t)(a * 6 + 2) * plane];                               \
    const float m##a##3 = src[(size_t)(a * 6 + 3) * plane];                               \
    const float m##a##4 = src[(size_t)(a * 6 + 4) * plane];                               \
    const float m##a##5 = src[(size_t)(a * 6 + 5) * plane];
#define WINO_GT_COL(b) WINO_GT(m0##b, m1##b, m2##b, m3##b, m4##b, m5##b, u0##b, u1##b, u2##b)
#define WINO_GT_ROW(a)                                                                    \
    {                                                                                     \
        WINO_GT(u##a##0, u##a##1, u##a##2, u##a##3, u##a##4, u##a##5, r0, r1, r2)         \
        out[a * 3 + 0] = r0; out[a * 3 + 1] = r1; out[a * 3 + 2] = r2;                   \
    }

/* S[xi][k][c] (plane stride `plane`, K x C) -> dw[k][c] = G^T S G (3x3, overwritten) of
 * dw (K, C, 3, 3) at dw_off. gws = (C, K). */
__kernel void wino_wgrad_out(__global const float *S, int K, int C, int plane, __global float *dw,
                             int dw_off) {
    const int c = get_global_id(0);
    const int k = get_global_id(1);
    if (c >= C || k >= K) return;
    __global const float *src = S + (size_t)k * C + c;
    WINO_LOAD_S(0) WINO_LOAD_S(1) WINO_LOAD_S(2) WINO_LOAD_S(3) WINO_LOAD_S(4) WINO_LOAD_S(5)
    WINO_GT_COL(0) WINO_GT_COL(1) WINO_GT_COL(2) WINO_GT_COL(3) WINO_GT_COL(4) WINO_GT_COL(5)
    __global float *out = dw + dw_off + ((size_t)k * C + c) * 9;
    WINO_GT_ROW(0) WINO_GT_ROW(1) WINO_GT_ROW(2)
}

/* Zero columns [col0, ld) of `rows` rows (row stride ld) in each of the 36 planes (plane
 * stride `plane`). gws = (rows, 36). */
__kernel void wino_zero_cols(__global float *m, int rows, int ld, int col0, int plane) {
    const int r = get_global_id(0);
    const int xi = get_global_id(1);
    if (r >= rows || xi >= 36) return;
    __global float *p = m + (size_t)xi * plane + (size_t)r * ld;
    for (int c = col0; c < ld; c++) p[c] = 0.0f;
}

/* --- F(2x2, 3x3): 4x4 input tiles, 16 planes ------------------------------------------------
 * For batches with few 4x4 tiles (layer3 at 256x256, batch 1: 16 tiles, which the GEMMs would
 * pad to 64 columns), 2x2 output tiles give 4x as many columns: 2.25x fewer multiplications
 * than direct convolution with no padding waste. Forward only (host/winograd.c).
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
 *   A^T = [1 1 1 0; 0 1 -1 -1]. Same layouts as F(4x4, 3x3) with 16 planes. */
#define W2_B(d0, d1, d2, d3, r0, r1, r2, r3)                                               \
    const float r0 = (d0) - (d2), r1 = (d1) + (d2), r2 = (d2) - (d1), r3 = (d1) - (d3);

/* gws = (Cin, Cout): U[xi][co][ci] = (G w[co][ci] G^T)[xi], 16 planes */
__kernel void wino2_weight(__global const float *w, int w_off, int Cout, int Cin, int plane,
                           __global float *U) {
    const int ci = get_global_id(0);
    const int co = get_global_id(1);
    if (ci >= Cin || co >= Cout) return;
    __global const float *g = w + w_off + ((size_t)co * Cin + ci) * 9;
    float t[12];   /* G g: 4 x 3 */
    for (int c = 0; c < 3; c++) {
        const float g0 = g[c], g1 = g[3 + c], g2 = g[6 + c];
        t[c] = g0;
        t[3 + c] = 0.5f * (g0 + g1 + g2);
        t[6 + c] = 0.5f * (g0 - g1 + g2);
        t[9 + c] = g2;
    }
    __global float *u = U + (size_t)co * Cin + ci;
    for (int a = 0; a < 4; a++) {
        const float g0 = t[a * 3], g1 = t[a * 3 + 1], g2 = t[a * 3 + 2];
        u[(size_t)(a * 4 + 0) * plane] = g0;
        u[(size_t)(a * 4 + 1) * plane] = 0.5f * (g0 + g1 + g2);
        u[(size_t)(a * 4 + 2) * plane] = 0.5f * (g0 - g1 + g2);
        u[(size_t)(a * 4 + 3) * plane] = g2;
    }
}

/* Input tiles (4x4 at rows ty*2 - pad, columns tx*2 - pad) -> V[xi][c][t], 16 planes.
 * gws = (TH, nb * C): item (ty, i * C + c) does tiles tx = 0..TW-1. */
__kernel void wino2_input(__global const float *x, int x_off, int C, int H, int W, int pad, int TH,
                          int TW, int nb, int ld, int plane, __global float *V) {
    const int ty = get_global_id(0);
    const int ic = get_global_id(1);
    if (ty >= TH || ic >= nb * C) return;
    const int i = ic / C;
    const int c = ic - i * C;
    __global const float *src = x + x_off + (size_t)ic * H * W;
    const int h0 = ty * 2 - pad;
    WINO_ROW_PTR(0) WINO_ROW_PTR(1) WINO_ROW_PTR(2) WINO_ROW_PTR(3)
    __global float *dst = V + (size_t)c * ld + ((size_t)i * TH + ty) * TW;
    for (int tx = 0; tx < TW; tx++, dst++) {
        const int w0 = tx * 2 - pad;
#define W2_LD(a, b) const float d##a##b = WINO_LD(a, w0 + b);
#define W2_LDROW(a) W2_LD(a, 0) W2_LD(a, 1) W2_LD(a, 2) W2_LD(a, 3)
        W2_LDROW(0) W2_LDROW(1) W2_LDROW(2) W2_LDROW(3)
        /* columns: s{k}{b} = (B^T d)[k][b] */
#define W2_COL(b) W2_B(d0##b, d1##b, d2##b, d3##b, s0##b, s1##b, s2##b, s3##b)
        W2_COL(0) W2_COL(1) W2_COL(2) W2_COL(3)
        /* rows: v{k}{l} = (s B)[k][l] */
#define W2_ROW(k)                                                                          \
        {                                                                                  \
            W2_B(s##k##0, s##k##1, s##k##2, s##k##3, v0, v1, v2, v3)                       \
            dst[(size_t)(k * 4 + 0) * plane] = v0; dst[(size_t)(k * 4 + 1) * plane] = v1;  \
            dst[(size_t)(k * 4 + 2) * plane] = v2; dst[(size_t)(k * 4 + 3) * plane] = v3;  \
        }
        W2_ROW(0) W2_ROW(1) W2_ROW(2) W2_ROW(3)
    }
}

/* M[xi][k][t] (16 planes) -> 2x2 output tiles, with the epilogue of wino_output.
 * gws = (TH, nb * K). */
__kernel void wino2_output(__global const float *M, int K, int Ho, int Wo, int TH, int TW, int nb,
                           int ld, int plane, __global float *y, int y_off, int has_bias,
                           __global const float *bias, int bias_off, int has_res,
                           __global const float *res, int res_off, int relu) {
    const int ty = get_global_id(0);
    const int ik = get_global_id(1);
    if (ty >= TH || ik >= nb * K) return;
    const int i = ik / K;
    const int k = ik - i * K;
    __global const float *src = M + (size_t)k * ld + ((size_t)i * TH + ty) * TW;
    __global float *out = y + y_off + (size_t)ik * Ho * Wo;
    __global const float *rp = res + res_off + (size_t)ik * Ho * Wo;
    const float b = has_bias ? bias[bias_off + k] : 0.0f;
    const int oh0 = ty * 2;
    for (int tx = 0; tx < TW; tx++, src++) {
        const int ow0 = tx * 2;
        float m[16];
        for (int j = 0; j < 16; j++) m[j] = src[(size_t)j * plane];
        /* s = A^T m (2 x 4), o = s A (2 x 2) */
        float s[8];
        for (int c = 0; c < 4; c++) {
            s[c] = m[c] + m[4 + c] + m[8 + c];
            s[4 + c] = m[4 + c] - m[8 + c] - m[12 + c];
        }
        for (int a = 0; a < 2; a++) {
            const int oh = oh0 + a;
            if (oh >= Ho) break;
            float o[2] = {s[a * 4] + s[a * 4 + 1] + s[a * 4 + 2], s[a * 4 + 1] - s[a * 4 + 2] - s[a * 4 + 3]};
            for (int l = 0; l < 2; l++) {
                const int ow = ow0 + l;
                if (ow >= Wo) break;
                float v = o[l] + b;
                if (has_res) v += rp[oh * Wo + ow];
                if (relu) v = fmax(v, 0.0f);
                out[oh * Wo + ow] = v;
            }
        }
    }
}

#ifdef STFPM_GPU
/* --- GPU variant -----------------------------------------------------------------------------
 * One work-item per (tile, channel): dimension 0 runs over the tile index t of the chunk
 * (t = (i * TH + ty) * TW + tx, as in the planes), so the 36 (16) plane stores V[xi][c][t] of
 * neighbouring work-items and the plane loads M[xi][k][t] are contiguous (coalesced); the loads
 * of the 6x6 (4x4) input tiles overlap by two columns and stride by 4 (2) floats across
 * work-items, so a work-group reads each cache line of a row once from memory and the rest from
 * cache. The weight transforms (wino_weight, wino2_weight) and wino_wgrad_out are already one
 * work-item per (k, c) with dimension 0 on the contiguous index and serve both variants. The
 * padded columns T .. ld-1 of V (forward), Z and Vt (weight gradient) are written as zeros by
 * the transforms themselves (no wino_zero_cols pass). */

/* row a of a tile whose work-item is live (inside the chunk), else all of it zero */
#define WINO_ROW_PTR_G(a)                                                                 \
    const int ok##a = live && (uint)(h0 + a) < (uint)H;                                   \
    __global const float *r##a = src + (size_t)(ok##a ? h0 + a : 0) * W;
/* v{k}{l} = (s B)[k][l], kept in registers */
#define WINO_BT_VROW(k)                                                                   \
    const float v##k##0 = 4.0f * s##k##0 - 5.0f * s##k##2 + s##k##4;                      \
    const float v##k##1 = -4.0f * (s##k##1 + s##k##2) + s##k##3 + s##k##4;                \
    const float v##k##2 = 4.0f * (s##k##1 - s##k##2) - s##k##3 + s##k##4;                 \
    const float v##k##3 = 2.0f * (s##k##3 - s##k##1) - s##k##2 + s##k##4;                 \
    const float v##k##4 = 2.0f * (s##k##1 - s##k##3) - s##k##2 + s##k##4;                 \
    const float v##k##5 = 4.0f * s##k##1 - 5.0f * s##k##3 + s##k##5;

/* Input transform (as wino_input): gws = (ld, C), item (t, c) does tile t of channel c and
 * writes V[xi][c][t] for xi = 0..35; the padded columns T <= t < ld get zeros (the GEMMs then
 * compute finite values there, which the output transform ignores). */
__kernel void wino_input_g(__global const float *x, int x_off, int C, int H, int W, int pad,
                           int TH, int TW, int nb, int ld, int plane, __global float *V) {
    const int t = get_global_id(0);
    const int c = get_global_id(1);
    const int tiles = TH * TW;
    if (t >= ld || c >= C) return;
    if (t >= nb * tiles) {
        for (int xi = 0; xi < 36; xi++) V[(size_t)xi * plane + (size_t)c * ld + t] = 0.0f;
        return;
    }
    const int i = t / tiles;
    const int r = t - i * tiles;
    const int ty = r / TW;
    const int tx = r - ty * TW;
    __global const float *src = x + x_off + ((size_t)i * C + c) * H * W;
    const int h0 = ty * 4 - pad, w0 = tx * 4 - pad;
    WINO_ROW_PTR(0) WINO_ROW_PTR(1) WINO_ROW_PTR(2) WINO_ROW_PTR(3) WINO_ROW_PTR(4) WINO_ROW_PTR(5)
    WINO_LOAD_ROW(0) WINO_LOAD_ROW(1) WINO_LOAD_ROW(2) WINO_LOAD_ROW(3) WINO_LOAD_ROW(4) WINO_LOAD_ROW(5)
    WINO_BT_COL(0) WINO_BT_COL(1) WINO_BT_COL(2) WINO_BT_COL(3) WINO_BT_COL(4) WINO_BT_COL(5)
    __global float *dst = V + (size_t)c * ld + t;
    WINO_BT_ROW(0) WINO_BT_ROW(1) WINO_BT_ROW(2) WINO_BT_ROW(3) WINO_BT_ROW(4) WINO_BT_ROW(5)
}

/* Output transform with the epilogue (as wino_output): gws = (nb * TH * TW, K), item (t, k)
 * reads M[xi][k][t] for xi = 0..35 and writes the 4x4 output tile t of channel k (the part
 * inside Ho x Wo). res may be y: each element is read before it is written, by one item. */
__kernel void wino_output_g(__global const float *M, int K, int Ho, int Wo, int TH, int TW, int nb,
                            int ld, int plane, __global float *y, int y_off, int has_bias,
                            __global const float *bias, int bias_off, int has_res,
                            __global const float *res, int res_off, int relu) {
    const int t = get_global_id(0);
    const int k = get_global_id(1);
    const int tiles = TH * TW;
    if (t >= nb * tiles || k >= K) return;
    const int i = t / tiles;
    const int r = t - i * tiles;
    const int ty = r / TW;
    const int tx = r - ty * TW;
    __global const float *src = M + (size_t)k * ld + t;
    __global float *out = y + y_off + ((size_t)i * K + k) * Ho * Wo;
    __global const float *rp = res + res_off + ((size_t)i * K + k) * Ho * Wo;
    const int ep = has_bias || has_res || relu;
    const float b = has_bias ? bias[bias_off + k] : 0.0f;
    const int oh0 = ty * 4, ow0 = tx * 4;
    const int full = ow0 + 4 <= Wo;
    WINO_LOAD_M(0) WINO_LOAD_M(1) WINO_LOAD_M(2) WINO_LOAD_M(3) WINO_LOAD_M(4) WINO_LOAD_M(5)
    WINO_AT_COL(0) WINO_AT_COL(1) WINO_AT_COL(2) WINO_AT_COL(3) WINO_AT_COL(4) WINO_AT_COL(5)
    WINO_AT_ROW(0) WINO_AT_ROW(1) WINO_AT_ROW(2) WINO_AT_ROW(3)
}

/* dy transform (as wino_dy): gws = (ld, K), item (t, k) writes Z[xi][k][t] = (A e A^T)[xi] of
 * dy tile t of channel k, or 0 for the padded columns T <= t < ld. */
__kernel void wino_dy_g(__global const float *dy, int dy_off, int K, int Ho, int Wo, int TH, int TW,
                        int nb, int ld, int plane, __global float *Z) {
    const int t = get_global_id(0);
    const int k = get_global_id(1);
    if (t >= ld || k >= K) return;
    __global float *dst = Z + (size_t)k * ld + t;
    const int tiles = TH * TW;
    if (t >= nb * tiles) {
        for (int xi = 0; xi < 36; xi++) dst[(size_t)xi * plane] = 0.0f;
        return;
    }
    const int i = t / tiles;
    const int r = t - i * tiles;
    const int ty = r / TW;
    const int tx = r - ty * TW;
    __global const float *src = dy + dy_off + ((size_t)i * K + k) * Ho * Wo;
    const int oh0 = ty * 4, ow0 = tx * 4;
    WINO_DY_PTR(0) WINO_DY_PTR(1) WINO_DY_PTR(2) WINO_DY_PTR(3)
    WINO_LOAD_DY(0) WINO_LOAD_DY(1) WINO_LOAD_DY(2) WINO_LOAD_DY(3)
    WINO_A_COL(0) WINO_A_COL(1) WINO_A_COL(2) WINO_A_COL(3)
    WINO_A_ROW(0) WINO_A_ROW(1) WINO_A_ROW(2) WINO_A_ROW(3) WINO_A_ROW(4) WINO_A_ROW(5)
}

/* Row k of the transposed store: the six values of every item go to local memory at
 * (plane j, tile lx, channel ly) (row length CC + 1: no bank conflicts), then item L of the
 * work-group stores (tile L / CC, channel L % CC), so consecutive items write consecutive c. */
#define WINO_T_ROW(k)                                                                     \
    mine[0 * ls] = v##k##0; mine[1 * ls] = v##k##1; mine[2 * ls] = v##k##2;               \
    mine[3 * ls] = v##k##3; mine[4 * ls] = v##k##4; mine[5 * ls] = v##k##5;               \
    barrier(CLK_LOCAL_MEM_FENCE);                                                         \
    if (wok) {                                                                            \
        dst[(size_t)(k * 6 + 0) * plane] = theirs[0 * ls];                                \
        dst[(size_t)(k * 6 + 1) * plane] = theirs[1 * ls];                                \
        dst[(size_t)(k * 6 + 2) * plane] = theirs[2 * ls];                                \
        dst[(size_t)(k * 6 + 3) * plane] = theirs[3 * ls];                                \
        dst[(size_t)(k * 6 + 4) * plane] = theirs[4 * ls];                                \
        dst[(size_t)(k * 6 + 5) * plane] = theirs[5 * ls];                                \
    }                                                                                     \
    barrier(CLK_LOCAL_MEM_FENCE);

/* Transposed input transform (as wino_input_t): Vt[xi][t][c] (row stride C), rows
 * T <= t < ld zero. gws = (ld, C) with a local size (TT, CC) chosen by the host and
 * loc = 6 * TT * (CC + 1) floats: item (t, c) computes tile t of channel c (loads along
 * dimension 0, the tiles), the work-group's TT x CC block is transposed through local memory
 * six planes at a time and stored as TT runs of CC consecutive channels. Every item of a
 * work-group reaches the barriers; those outside the chunk compute zeros. */
__kernel void wino_input_t_g(__global const float *x, int x_off, int C, int H, int W, int pad,
                             int TH, int TW, int nb, int ld, int plane, __global float *V,
                             __local float *loc) {
    const int t = get_global_id(0);
    const int c = get_global_id(1);
    const int lx = get_local_id(0), ly = get_local_id(1);
    const int TT = get_local_size(0), CC = get_local_size(1);
    const int tiles = TH * TW;
    const int live = t < nb * tiles && c < C;
    const int tl = live ? t : 0, cl = live ? c : 0;
    const int i = tl / tiles;
    const int r = tl - i * tiles;
    const int ty = r / TW;
    const int tx = r - ty * TW;
    __global const float *src = x + x_off + ((size_t)i * C + cl) * H * W;
    const int h0 = ty * 4 - pad, w0 = tx * 4 - pad;
    WINO_ROW_PTR_G(0) WINO_ROW_PTR_G(1) WINO_ROW_PTR_G(2) WINO_ROW_PTR_G(3) WINO_ROW_PTR_G(4)
    WINO_ROW_PTR_G(5)
    WINO_LOAD_ROW(0) WINO_LOAD_ROW(1) WINO_LOAD_ROW(2) WINO_LOAD_ROW(3) WINO_LOAD_ROW(4) WINO_LOAD_ROW(5)
    WINO_BT_COL(0) WINO_BT_COL(1) WINO_BT_COL(2) WINO_BT_COL(3) WINO_BT_COL(4) WINO_BT_COL(5)
    WINO_BT_VROW(0) WINO_BT_VROW(1) WINO_BT_VROW(2) WINO_BT_VROW(3) WINO_BT_VROW(4) WINO_BT_VROW(5)
    /* the store side: item L = ly * TT + lx of the work-group */
    const int ls = TT * (CC + 1);
    const int L = ly * TT + lx;
    const int lt = L / CC, lc = L - lt * CC;   /* (no %: LLVM's div/rem pairing emits freeze,
                                                  which Oclgrind cannot run) */
    const int wt = (int)get_group_id(0) * TT + lt, wc = (int)get_group_id(1) * CC + lc;
    const int wok = wt < ld && wc < C;
    __local float *mine = loc + lx * (CC + 1) + ly;
    __local const float *theirs = loc + lt * (CC + 1) + lc;
    __global float *dst = V + (size_t)(wok ? wt : 0) * C + (wok ? wc : 0);
    WINO_T_ROW(0) WINO_T_ROW(1) WINO_T_ROW(2) WINO_T_ROW(3) WINO_T_ROW(4) WINO_T_ROW(5)
}

/* F(2x2, 3x3) input transform (as wino2_input): gws = (ld, C), item (t, c) writes V[xi][c][t]
 * for xi = 0..15, zeros for the padded columns T <= t < ld. */
__kernel void wino2_input_g(__global const float *x, int x_off, int C, int H, int W, int pad, int TH,
                            int TW, int nb, int ld, int plane, __global float *V) {
    const int t = get_global_id(0);
    const int c = get_global_id(1);
    const int tiles = TH * TW;
    if (t >= ld || c >= C) return;
    if (t >= nb * tiles) {
        for (int xi = 0; xi < 16; xi++) V[(size_t)xi * plane + (size_t)c * ld + t] = 0.0f;
        return;
    }
    const int i = t / tiles;
    const int r = t - i * tiles;
    const int ty = r / TW;
    const int tx = r - ty * TW;
    __global const float *src = x + x_off + ((size_t)i * C + c) * H * W;
    const int h0 = ty * 2 - pad, w0 = tx * 2 - pad;
    WINO_ROW_PTR(0) WINO_ROW_PTR(1) WINO_ROW_PTR(2) WINO_ROW_PTR(3)
    W2_LDROW(0) W2_LDROW(1) W2_LDROW(2) W2_LDROW(3)
    W2_COL(0) W2_COL(1) W2_COL(2) W2_COL(3)
    __global float *dst = V + (size_t)c * ld + t;
    W2_ROW(0) W2_ROW(1) W2_ROW(2) W2_ROW(3)
}

/* one output of wino2_output_g with the epilogue, stored when inside the output */
#define W2_OUT(a, l, val)                                                                 \
    if (oh0 + a < Ho && ow0 + l < Wo) {                                                   \
        const int idx = (oh0 + a) * Wo + ow0 + l;                                         \
        float v = (val) + b;                                                              \
        if (has_res) v += rp[idx];                                                        \
        if (relu) v = fmax(v, 0.0f);                                                      \
        out[idx] = v;                                                                     \
    }
#define W2_LOAD_M(a)                                                                      \
    const float m##a##0 = src[(size_t)(a * 4 + 0) * plane];                               \
    const float m##a##1 = src[(size_t)(a * 4 + 1) * plane];                               \
    const float m##a##2 = src[(size_t)(a * 4 + 2) * plane];                               \
    const float m##a##3 = src[(size_t)(a * 4 + 3) * plane];
/* s{k}{c} = (A^T m)[k][c] */
#define W2_AT_COL(c)                                                                      \
    const float s0##c = m0##c + m1##c + m2##c;                                            \
    const float s1##c = m1##c - m2##c - m3##c;

/* F(2x2, 3x3) output transform with the epilogue (as wino2_output): gws = (nb * TH * TW, K),
 * item (t, k) reads M[xi][k][t] for xi = 0..15 and writes the 2x2 output tile t of channel k. */
__kernel void wino2_output_g(__global const float *M, int K, int Ho, int Wo, int TH, int TW, int nb,
                             int ld, int plane, __global float *y, int y_off, int has_bias,
                             __global const float *bias, int bias_off, int has_res,
                             __global const float *res, int res_off, int relu) {
    const int t = get_global_id(0);
    const int k = get_global_id(1);
    const int tiles = TH * TW;
    if (t >= nb * tiles || k >= K) return;
    const int i = t / tiles;
    const int r = t - i * tiles;
    const int ty = r / TW;
    const int tx = r - ty * TW;
    __global const float *src = M + (size_t)k * ld + t;
    __global float *out = y + y_off + ((size_t)i * K + k) * Ho * Wo;
    __global const float *rp = res + res_off + ((size_t)i * K + k) * Ho * Wo;
    const float b = has_bias ? bias[bias_off + k] : 0.0f;
    const int oh0 = ty * 2, ow0 = tx * 2;
    W2_LOAD_M(0) W2_LOAD_M(1) W2_LOAD_M(2) W2_LOAD_M(3)
    W2_AT_COL(0) W2_AT_COL(1) W2_AT_COL(2) W2_AT_COL(3)
    /* o = s A (2 x 2) */
    W2_OUT(0, 0, s00 + s01 + s02)
    W2_OUT(0, 1, s01 - s02 - s03)
    W2_OUT(1, 0, s10 + s11 + s12)
    W2_OUT(1, 1, s11 - s12 - s13)
}
#endif
