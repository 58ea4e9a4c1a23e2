/* Split-K GEMM for outputs too small to fill a GPU (host/gemm.c stfpm_gemm_splitk): the
 * weight gradients, whose outputs are tiny (conv1: 64 x 192; a Winograd plane: 64 x 64) and
 * whose reductions run over every output pixel of the batch. The reduction is cut into S
 * slices, every (plane, slice, output tile) is one work-group, and a second kernel sums the
 * slices in a fixed order (deterministic, no atomics).
 *
 * Row-major: for plane z and slice s, P[z][s] (M x N) = A_z[:, slice] * B_z[slice, :] with
 * A_z = A + a_off + z * sa (M x K, row stride lda) and B_z = B + b_off + z * sb (K x N, row
 * stride ldb). Work-group: T x T work-items (T = get_local_size(0) = get_local_size(1)), one
 * output element each, dimension 0 along n (contiguous in B and P); T x T tiles of A and B in
 * local memory (As, Bs: T * T floats each). */
__kernel void gemm_splitk_partial(__global const float *A, int a_off, int lda, int sa, __global const float *B,
                                  int b_off, int ldb, int sb, __global float *P, int M, int N, int K, int kslice,
                                  int S, __local float *As, __local float *Bs) {
    const int T = (int)get_local_size(0);
    const int tx = (int)get_local_id(0), ty = (int)get_local_id(1);
    const int n = (int)get_group_id(0) * T + tx, m = (int)get_group_id(1) * T + ty;
    const int zs = (int)get_global_id(2);
    const int z = zs / S, s = zs - (zs / S) * S;
    const int k0 = s * kslice, k1 = min(K, k0 + kslice);
    __global const float *a = A + a_off + (size_t)z * sa;
    __global const float *b = B + b_off + (size_t)z * sb;
    float acc = 0.0f;
    for (int kt = k0; kt < k1; kt += T) {   /* the same bounds for the whole work-group */
        const int ka = kt + tx, kb = kt + ty;
        As[ty * T + tx] = m < M && ka < k1 ? a[(size_t)m * lda + ka] : 0.0f;
        Bs[ty * T + tx] = n < N && kb < k1 ? b[(size_t)kb * ldb + n] : 0.0f;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int j = 0; j < T; j++) acc += As[ty * T + j] * Bs[j * T + tx];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (m < M && n < N) P[((size_t)zs * M + m) * N + n] = acc;
}

/* C_z (M x N, row stride ldc, at c_off + z * sc) = sum over s of P[z][s] + beta * C_z; one
 * work-item per output element (dimension 0 along the MN elements, dimension 1 the plane).
 * C is not read when beta is 0. */
__kernel void gemm_splitk_sum(__global const float *P, int S, int M, int N, __global float *C, int c_off, int ldc,
                              int sc, int planes, float beta) {
    const int i = (int)get_global_id(0), z = (int)get_global_id(1);
    if (i >= M * N || z >= planes) return;
    __global const float *p = P + (size_t)z * S * M * N + i;
    float acc = 0.0f;
    for (int s = 0; s < S; s++) acc += p[(size_t)s * M * N];
    const int m = i / N, n = i - (i / N) * N;
    __global float *c = C + c_off + (size_t)z * sc + (size_t)m * ldc + n;
    *c = beta != 0.0f ? acc + beta * *c : acc;
}

/* ------------------------------------------------------------------------------------------ */
/* The CPU variant's GEMM (host/gemm.c stfpm_gemm_cpu), over `planes` independent problems in
 * one launch: C_z = alpha * op(A_z) * B_z + beta * C_z, row-major, op(A) = A (gemm_cpu_nn, A_z
 * M x K with row stride lda) or A^T (gemm_cpu_tn, A_z K x M), B_z K x N (ldb), C_z M x N (ldc);
 * A_z at a_off + z * sa, likewise B and C. C is not read when beta is 0.
 *
 * Shaped for CPU OpenCL (PoCL), one work-item per work-group: an item owns a panel of 32
 * columns of C (two float16 registers per row) and a range of `mrows` rows (a multiple of 8),
 * which it walks in blocks of 8 rows: per k, two 16-float loads of B's row and 8 broadcasts of
 * op(A) feed 16 vector FMAs (16 accumulators, about half of AVX-512's registers). The reduction
 * is cut into blocks of kc (B's panel, kc x 32 floats, stays in cache while the item walks its
 * rows; partial sums of later blocks are added to C). dimension 0: the column panels; dimension
 * 1: plane z times `mgroups` row ranges. Ragged edges (a last panel of fewer than 32 columns,
 * fewer than 8 rows left) take slower paths: B's row copied into a zero-padded private row, one
 * row at a time. */
#define GC_MR 8

inline void gcpu_load_b(__global const float *b, int nn, float16 *b0, float16 *b1) {
    if (nn >= 32) {
        *b0 = vload16(0, b);
        *b1 = vload16(0, b + 16);
    } else {
        float t[32];
        for (int j = 0; j < 32; j++) t[j] = j < nn ? b[j] : 0.0f;
        *b0 = vload16(0, t);
        *b1 = vload16(0, t + 16);
    }
}

/* c[0 .. nn) = alpha * acc + (first ? beta * c : c) over a row (beta 0 and first: c not read) */
inline void gcpu_store(__global float *c, int nn, float16 a0, float16 a1, float alpha, float beta, int first) {
    float16 s = first ? (float16)beta : (float16)1.0f;
    const int rd = !first || beta != 0.0f;
    if (nn >= 32) {
        float16 r0 = alpha * a0, r1 = alpha * a1;
        if (rd) {
            r0 = fma(s, vload16(0, c), r0);
            r1 = fma(s, vload16(0, c + 16), r1);
        }
        vstore16(r0, 0, c);
        vstore16(r1, 0, c + 16);
    } else {
        float t[32];
        vstore16(a0, 0, t);
        vstore16(a1, 0, t + 16);
        const float sc = first ? beta : 1.0f;
        for (int j = 0; j < nn; j++) c[j] = rd ? fma(sc, c[j], alpha * t[j]) : alpha * t[j];
    }
}

/* The convolution epilogue instead of C (gemm_cpu_nn_ep): C's column j is output pixel
 * g = g0 + j of the batch (image i = g / P, pixel p = g - i * P), row m its channel; the result
 * goes to y[(i * M + m) * P + p] as act(acc + bias[m] + res[same index]). */
typedef struct gcpu_ep {
    __global float *y;
    __global const float *bias, *res;
    int y_off, bias_off, res_off, has_bias, has_res, relu, g0, P;
} gcpu_ep;

inline void gcpu_store_ep(const gcpu_ep *e, int M, int m, int j0, int nn, float16 a0, float16 a1) {
    const float b = e->has_bias ? e->bias[e->bias_off + m] : 0.0f;
    const int g = e->g0 + j0, i = g / e->P, p = g - (g / e->P) * e->P;
    if (nn >= 32 && p + 32 <= e->P) {
        const size_t o = ((size_t)i * M + m) * e->P + p;
        float16 r0 = a0 + b, r1 = a1 + b;
        if (e->has_res) {
            r0 += vload16(0, e->res + e->res_off + o);
            r1 += vload16(0, e->res + e->res_off + o + 16);
        }
        if (e->relu) {
            r0 = fmax(r0, 0.0f);
            r1 = fmax(r1, 0.0f);
        }
        vstore16(r0, 0, e->y + e->y_off + o);
        vstore16(r1, 0, e->y + e->y_off + o + 16);
    } else {
        float t[32];
        vstore16(a0, 0, t);
        vstore16(a1, 0, t + 16);
        for (int j = 0; j < nn; j++) {
            const int gj = g + j, ij = gj / e->P, pj = gj - (gj / e->P) * e->P;
            const size_t o = ((size_t)ij * M + m) * e->P + pj;
            float v = t[j] + b;
            if (e->has_res) v += e->res[e->res_off + o];
            e->y[e->y_off + o] = e->relu ? fmax(v, 0.0f) : v;
        }
    }
}

/* ep: 0 plain C, 1 the convolution epilogue (e; no reduction blocks: kc >= K) */
inline void gemm_cpu_body(const int ta, const int ep, const gcpu_ep *e, __global const float *A, int a_off, int lda,
                          int sa, __global const float *B, int b_off, int ldb, int sb, __global float *C, int c_off,
                          int ldc, int sc, int M, int N, int K, float alpha, float beta, int mgroups, int mrows,
                          int kc) {
    const int n0 = (int)get_global_id(0) * 32;
    const int zg = (int)get_global_id(1);
    const int z = zg / mgroups, g = zg - (zg / mgroups) * mgroups;
    const int mb = g * mrows, me = min(M, mb + mrows);
    const int nn = min(32, N - n0);
    if (n0 >= N || mb >= me) return;
    __global const float *a = A + a_off + (size_t)z * sa;
    __global const float *b = B + b_off + (size_t)z * sb + n0;
    __global float *c = C + c_off + (size_t)z * sc + n0;
    /* op(A)(m, k): A[m * lda + k], or A[k * lda + m] transposed */
    const size_t am = ta ? 1 : (size_t)lda, ak = ta ? (size_t)lda : 1;
    for (int k0 = 0; k0 < K; k0 += kc) {
        const int k1 = min(K, k0 + kc), first = k0 == 0;
        int m0 = mb;
        for (; m0 + GC_MR <= me; m0 += GC_MR) {
            float16 x0[GC_MR], x1[GC_MR];
#pragma unroll
            for (int i = 0; i < GC_MR; i++) x0[i] = x1[i] = (float16)0.0f;
            __global const float *ap = a + (size_t)m0 * am;
            for (int k = k0; k < k1; k++) {
                float16 b0, b1;
                gcpu_load_b(b + (size_t)k * ldb, nn, &b0, &b1);
                __global const float *ak0 = ap + (size_t)k * ak;
#pragma unroll
                for (int i = 0; i < GC_MR; i++) {
                    const float16 av = (float16)ak0[(size_t)i * am];
                    x0[i] = fma(av, b0, x0[i]);
                    x1[i] = fma(av, b1, x1[i]);
                }
            }
#pragma unroll
            for (int i = 0; i < GC_MR; i++) {
                if (ep) gcpu_store_ep(e, M, m0 + i, n0, nn, x0[i], x1[i]);
                else gcpu_store(c + (size_t)(m0 + i) * ldc, nn, x0[i], x1[i], alpha, beta, first);
            }
        }
        for (; m0 < me; m0++) {
            float16 x0 = (float16)0.0f, x1 = (float16)0.0f;
            __global const float *ap = a + (size_t)m0 * am;
            for (int k = k0; k < k1; k++) {
                float16 b0, b1;
                gcpu_load_b(b + (size_t)k * ldb, nn, &b0, &b1);
                const float16 av = (float16)ap[(size_t)k * ak];
                x0 = fma(av, b0, x0);
                x1 = fma(av, b1, x1);
            }
            if (ep) gcpu_store_ep(e, M, m0, n0, nn, x0, x1);
            else gcpu_store(c + (size_t)m0 * ldc, nn, x0, x1, alpha, beta, first);
        }
    }
}

__kernel void gemm_cpu_nn(__global const float *A, int a_off, int lda, int sa, __global const float *B, int b_off,
                          int ldb, int sb, __global float *C, int c_off, int ldc, int sc, int M, int N, int K,
                          float alpha, float beta, int mgroups, int mrows, int kc) {
    gemm_cpu_body(0, 0, 0, A, a_off, lda, sa, B, b_off, ldb, sb, C, c_off, ldc, sc, M, N, K, alpha, beta, mgroups, mrows, kc);
}

__kernel void gemm_cpu_tn(__global const float *A, int a_off, int lda, int sa, __global const float *B, int b_off,
                          int ldb, int sb, __global float *C, int c_off, int ldc, int sc, int M, int N, int K,
                          float alpha, float beta, int mgroups, int mrows, int kc) {
    gemm_cpu_body(1, 0, 0, A, a_off, lda, sa, B, b_off, ldb, sb, C, c_off, ldc, sc, M, N, K, alpha, beta, mgroups, mrows, kc);
}

/* y = act(W (M x K, row stride lda) * col (K x N, ldb) + bias + res) with the convolution
 * epilogue (gcpu_ep above): N output pixels from g0 on, P pixels per image, M channels. */
__kernel void gemm_cpu_nn_ep(__global const float *A, int a_off, int lda, __global const float *B, int b_off, int ldb,
                             int M, int N, int K, int mgroups, int mrows, __global float *y, int y_off, int g0, int P,
                             int has_bias, __global const float *bias, int bias_off, int has_res,
                             __global const float *res, int res_off, int relu) {
    const gcpu_ep e = {y, bias, res, y_off, bias_off, res_off, has_bias, has_res, relu, g0, P};
    gemm_cpu_body(0, 1, &e, A, a_off, lda, 0, B, b_off, ldb, 0, y, 0, 0, 0, M, N, K, 1.0f, 0.0f, mgroups, mrows, K);
}
