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
