/* Batch normalisation (NCHW, per-channel statistics over N*H*W).
 *
 * Statistics are a two-stage, deterministic reduction:
 *   stage 1 (*_partial): work-group (p, c) reduces chunk p of channel c's N*H*W values
 *                        (local-memory tree, the local size is a power of two);
 *   stage 2 (*_final):   one work-item per channel combines its P partials in a fixed order.
 * The forward statistics are one pass over x: Welford per work-item, Chan's pairwise
 * combination of (count, mean, M2) in the tree and in stage 2.
 * A chunk is a run of "units": unit u = (sample n = u / S, segment s = u % S) covers the row
 * segment i in [s*seg, min(HW, (s+1)*seg)) of sample n, channel c, so the inner loops are
 * plain strided loops over contiguous memory.
 * Element-wise kernels run on a 3-D grid (H*W, C, N): no index division, and the per-channel
 * values are loaded before the bounds check (they are valid for every work-item). */

/* (na, ma, qa) <- combination of (na, ma, qa) and (nb, mb, qb); qa holds M2 = sum (x - mean)^2 */
#define CHAN_COMBINE(na, ma, qa, nb, mb, qb)                          \
    do {                                                              \
        float n_ = (na) + (nb);                                       \
        if ((nb) > 0.0f) {                                            \
            float d_ = (mb) - (ma), f_ = (nb) / n_;                   \
            (ma) += d_ * f_;                                          \
            (qa) += (qb) + d_ * d_ * (na) * f_;                       \
            (na) = n_;                                                \
        }                                                             \
    } while (0)

/* Group (p, c) reduces units [p*upg, min(N*S, (p+1)*upg)) of channel c. */
__kernel void bn_stats_partial(__global const float *x, int xoff, int N, int C, int HW, int seg,
                               int S, int upg, int P, __global float *part, __local float *lc,
                               __local float *lm, __local float *lq) {
    int p = get_group_id(0), c = get_group_id(1);
    int lid = get_local_id(0), lsz = get_local_size(0);
    int u1 = min(N * S, (p + 1) * upg);
    float cnt = 0.0f, mean = 0.0f, m2 = 0.0f;
    for (int u = p * upg; u < u1; u++) {
        int n = u / S, sg = u - n * S;
        __global const float *xr = x + xoff + (n * C + c) * HW;
        int e = min(HW, (sg + 1) * seg);
        for (int i = sg * seg + lid; i < e; i += lsz) {
            float v = xr[i];
            cnt += 1.0f;
            float d = v - mean;
            mean += d / cnt;
            m2 += d * (v - mean);
        }
    }
    lc[lid] = cnt; lm[lid] = mean; lq[lid] = m2;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = lsz >> 1; s > 0; s >>= 1) {
        if (lid < s) {
            float na = lc[lid], ma = lm[lid], qa = lq[lid];
            float nb = lc[lid + s], mb = lm[lid + s], qb = lq[lid + s];
            if (na == 0.0f) { na = nb; ma = mb; qa = qb; }
            else CHAN_COMBINE(na, ma, qa, nb, mb, qb);
            lc[lid] = na; lm[lid] = ma; lq[lid] = qa;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) {
        __global float *o = part + 3 * (c * P + p);
        o[0] = lc[0]; o[1] = lm[0]; o[2] = lq[0];
    }
}

/* One work-item per channel: batch mean, 1/sqrt(var_biased + eps), running-statistics update
 * (running = (1-m)*running + m*batch, with the unbiased variance) when update != 0. */
__kernel void bn_stats_final(__global const float *part, int P, int C, float eps, float momentum,
                             int update, __global float *rmean, int rmoff, __global float *rvar,
                             int rvoff, __global float *smean, int smoff, __global float *sinv,
                             int sioff) {
    int c = get_global_id(0);
    if (c >= C) return;
    __global const float *q = part + 3 * c * P;
    float n = q[0], mean = q[1], m2 = q[2];
    for (int p = 1; p < P; p++) {
        float nb = q[3 * p], mb = q[3 * p + 1], qb = q[3 * p + 2];
        if (n == 0.0f) { n = nb; mean = mb; m2 = qb; }
        else CHAN_COMBINE(n, mean, m2, nb, mb, qb);
    }
    m2 = fmax(m2, 0.0f);
    float var = m2 / n;
    smean[smoff + c] = mean;
    sinv[sioff + c] = 1.0f / sqrt(var + eps);
    if (update) {
        float unbiased = m2 / (n - 1.0f);
        rmean[rmoff + c] = (1.0f - momentum) * rmean[rmoff + c] + momentum * mean;
        rvar[rvoff + c] = (1.0f - momentum) * rvar[rvoff + c] + momentum * unbiased;
    }
}

/* y = (x - mean[c]) * inv[c] * w[c] + b[c], where inv = s[c] (an inverse std) when is_var == 0,
 * or 1/sqrt(s[c] + eps) (s a variance) when is_var != 0. Grid (HW, C, N). y may alias x. */
__kernel void bn_apply(__global const float *x, int xoff, __global float *y, int yoff,
                       __global const float *mean, int moff, __global const float *s, int soff,
                       int is_var, float eps, __global const float *w, int woff,
                       __global const float *b, int boff, int C, int HW) {
    int i = get_global_id(0), c = get_global_id(1), n = get_global_id(2);
    float inv = is_var ? 1.0f / sqrt(s[soff + c] + eps) : s[soff + c];
    float scale = inv * w[woff + c], mu = mean[moff + c], bb = b[boff + c];
    if (i < HW) {
        int k = (n * C + c) * HW + i;
        y[yoff + k] = (x[xoff + k] - mu) * scale + bb;
    }
}

/* Backward stage 1: per chunk (same units as bn_stats_partial), sum(dy) and
 * sum(dy * (x - mean)). */
__kernel void bn_bwd_partial(__global const float *x, int xoff, __global const float *dy, int dyoff,
                             __global const float *mean, int moff, int N, int C, int HW, int seg,
                             int S, int upg, int P, __global float *part, __local float *l1,
                             __local float *l2) {
    int p = get_group_id(0), c = get_group_id(1);
    int lid = get_local_id(0), lsz = get_local_size(0);
    int u1 = min(N * S, (p + 1) * upg);
    float mu = mean[moff + c];
    float s1 = 0.0f, s2 = 0.0f;
    for (int u = p * upg; u < u1; u++) {
        int n = u / S, sg = u - n * S;
        int base = (n * C + c) * HW;
        __global const float *xr = x + xoff + base, *gr = dy + dyoff + base;
        int e = min(HW, (sg + 1) * seg);
        for (int i = sg * seg + lid; i < e; i += lsz) {
            float g = gr[i];
            s1 += g;
            s2 += g * (xr[i] - mu);
        }
    }
    l1[lid] = s1; l2[lid] = s2;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = lsz >> 1; s > 0; s >>= 1) {
        if (lid < s) { l1[lid] += l1[lid + s]; l2[lid] += l2[lid + s]; }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) {
        part[2 * (c * P + p)] = l1[0];
        part[2 * (c * P + p) + 1] = l2[0];
    }
}

/* Backward stage 2, one work-item per channel: dbias = sum(dy), dweight = sum(dy * xhat), and
 * the coefficients of dx = a * (dy - b - (x - mean) * k):
 * a = w * invstd, b = mean(dy), k = invstd^2 * mean(dy * (x - mean)). */
__kernel void bn_bwd_final(__global const float *part, int P, int C, int M,
                           __global const float *inv, int ioff, __global const float *w, int woff,
                           __global float *coef, int coff, int has_dw, __global float *dw, int dwoff,
                           int has_db, __global float *db, int dboff) {
    int c = get_global_id(0);
    if (c >= C) return;
    float s1 = 0.0f, s2 = 0.0f;
    for (int p = 0; p < P; p++) {
        s1 += part[2 * (c * P + p)];
        s2 += part[2 * (c * P + p) + 1];
    }
    float is = inv[ioff + c];
    if (has_dw) dw[dwoff + c] = s2 * is;
    if (has_db) db[dboff + c] = s1;
    float invm = 1.0f / (float)M;
    coef[coff + 3 * c] = w[woff + c] * is;
    coef[coff + 3 * c + 1] = s1 * invm;
    coef[coff + 3 * c + 2] = is * is * s2 * invm;
}

/* Backward stage 3, grid (HW, C, N): dx from the per-channel coefficients. dx may alias dy. */
__kernel void bn_bwd_dx(__global const float *x, int xoff, __global const float *dy, int dyoff,
                        __global const float *mean, int moff, __global const float *coef, int coff,
                        int C, int HW, __global float *dx, int dxoff) {
    int i = get_global_id(0), c = get_global_id(1), n = get_global_id(2);
    float a = coef[coff + 3 * c], b = coef[coff + 3 * c + 1], k2 = coef[coff + 3 * c + 2];
    float mu = mean[moff + c];
    if (i < HW) {
        int k = (n * C + c) * HW + i;
        dx[dxoff + k] = a * (dy[dyoff + k] - b - (x[xoff + k] - mu) * k2);
    }
}
