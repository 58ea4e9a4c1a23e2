/* Batch normalisation (NCHW, per-channel statistics over N*H*W).
 *
 * Row form throughout: every work-item handles a contiguous run of one (sample, channel) plane
 * in a loop (float8 loads / stores, two accumulators), no local memory, no barriers. On CPU
 * OpenCL (PoCL) this is far faster than one element (or one strided lane of a work-group tree
 * reduction) per work-item; see also cl/conv.cl.
 *
 * A plane of HW values is cut into S segments of seg values (seg a multiple of 16 when S > 1);
 * "unit" u = n * S + sg is segment sg of sample n. Statistics are a two-stage, deterministic
 * reduction:
 *   stage 1 (*_partial): item (u, c) reduces unit u of channel c into partial (c, u);
 *   stage 2 (*_final):   one work-item per channel combines its P = N * S partials in order.
 * Forward statistics: each unit gives (count, mean, M2) by two passes over its (cache-resident)
 * segment, M2 = sum (x - mean_unit)^2; stage 2 combines them with Chan's pairwise formula. */

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

/* ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7)). The last step is a dot product with
 * (1, 1) (the products are exact, so the same sum): b.x + b.y is turned by the compiler into a
 * shuffle with an undefined lane, which crashes Oclgrind's uninitialised-value check. */
static inline float hsum8(float8 v) {
    float4 a = v.lo + v.hi;
    float2 b = a.lo + a.hi;
    return dot(b, (float2)(1.0f));
}

/* Start index and length of unit u's segment; returns the offset of its plane (n * C + c) * HW. */
static inline size_t bn_unit(int u, int c, int C, int HW, int seg, int S, int *i0, int *len) {
    const int n = u / S, sg = u - n * S;
    *i0 = sg * seg;
    *len = min(HW - *i0, seg);
    return ((size_t)n * C + c) * HW;
}

/* gws = (N * S, C): item (u, c) writes partial part[3 * (c * P + u)] = (count, mean, M2). */
__kernel void bn_stats_partial(__global const float *x, int xoff, int N, int C, int HW, int seg,
                               int S, int P, __global float *part) {
    const int u = get_global_id(0), c = get_global_id(1);
    if (u >= N * S || c >= C) return;
    int i0, len;
    __global const float *xr = x + xoff + bn_unit(u, c, C, HW, seg, S, &i0, &len) + i0;
    float8 a0 = (float8)(0.0f), a1 = (float8)(0.0f);
    int i = 0;
    for (; i + 16 <= len; i += 16) {
        a0 += vload8(0, xr + i);
        a1 += vload8(1, xr + i);
    }
    float s = hsum8(a0 + a1);
    for (; i < len; i++) s += xr[i];
    const float mean = s / (float)len;
    a0 = (float8)(0.0f);
    a1 = (float8)(0.0f);
    i = 0;
    for (; i + 16 <= len; i += 16) {
        float8 d0 = vload8(0, xr + i) - mean, d1 = vload8(1, xr + i) - mean;
        a0 += d0 * d0;
        a1 += d1 * d1;
    }
    float q = hsum8(a0 + a1);
    for (; i < len; i++) {
        float d = xr[i] - mean;
        q += d * d;
    }
    __global float *o = part + 3 * ((size_t)c * P + u);
    o[0] = (float)len;
    o[1] = mean;
    o[2] = q;
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
 * or 1/sqrt(s[c] + eps) (s a variance) when is_var != 0. gws = (N * S, C): item (u, c) writes
 * unit u of channel c. y may alias x (same element read then written by one item). */
__kernel void bn_apply(__global const float *x, int xoff, __global float *y, int yoff,
                       __global const float *mean, int moff, __global const float *s, int soff,
                       int is_var, float eps, __global const float *w, int woff,
                       __global const float *b, int boff, int N, int C, int HW, int seg, int S) {
    const int u = get_global_id(0), c = get_global_id(1);
    if (u >= N * S || c >= C) return;
    const float inv = is_var ? 1.0f / sqrt(s[soff + c] + eps) : s[soff + c];
    const float scale = inv * w[woff + c], mu = mean[moff + c], bb = b[boff + c];
    int i0, len;
    const size_t base = bn_unit(u, c, C, HW, seg, S, &i0, &len) + i0;
    __global const float *xr = x + xoff + base;
    __global float *yr = y + yoff + base;
    int i = 0;
    for (; i + 16 <= len; i += 16) {
        float8 v0 = vload8(0, xr + i), v1 = vload8(1, xr + i);
        vstore8((v0 - mu) * scale + bb, 0, yr + i);
        vstore8((v1 - mu) * scale + bb, 1, yr + i);
    }
    for (; i < len; i++) yr[i] = (xr[i] - mu) * scale + bb;
}

/* Backward stage 1, gws = (N * S, C): item (u, c) writes part[2 * (c * P + u)] =
 * (sum dy, sum dy * (x - mean)) over unit u of channel c. */
__kernel void bn_bwd_partial(__global const float *x, int xoff, __global const float *dy, int dyoff,
                             __global const float *mean, int moff, int N, int C, int HW, int seg,
                             int S, int P, __global float *part) {
    const int u = get_global_id(0), c = get_global_id(1);
    if (u >= N * S || c >= C) return;
    const float mu = mean[moff + c];
    int i0, len;
    const size_t base = bn_unit(u, c, C, HW, seg, S, &i0, &len) + i0;
    __global const float *xr = x + xoff + base, *gr = dy + dyoff + base;
    float8 s10 = (float8)(0.0f), s11 = (float8)(0.0f), s20 = (float8)(0.0f), s21 = (float8)(0.0f);
    int i = 0;
    for (; i + 16 <= len; i += 16) {
        float8 g0 = vload8(0, gr + i), g1 = vload8(1, gr + i);
        s10 += g0;
        s11 += g1;
        s20 += g0 * (vload8(0, xr + i) - mu);
        s21 += g1 * (vload8(1, xr + i) - mu);
    }
    float s1 = hsum8(s10 + s11), s2 = hsum8(s20 + s21);
    for (; i < len; i++) {
        float g = gr[i];
        s1 += g;
        s2 += g * (xr[i] - mu);
    }
    part[2 * ((size_t)c * P + u)] = s1;
    part[2 * ((size_t)c * P + u) + 1] = s2;
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

/* Backward stage 3, gws = (N * S, C): dx of unit u of channel c from the per-channel
 * coefficients. dx may alias dy. */
__kernel void bn_bwd_dx(__global const float *x, int xoff, __global const float *dy, int dyoff,
                        __global const float *mean, int moff, __global const float *coef, int coff,
                        int N, int C, int HW, int seg, int S, __global float *dx, int dxoff) {
    const int u = get_global_id(0), c = get_global_id(1);
    if (u >= N * S || c >= C) return;
    const float a = coef[coff + 3 * c], b = coef[coff + 3 * c + 1], k2 = coef[coff + 3 * c + 2];
    const float mu = mean[moff + c];
    int i0, len;
    const size_t base = bn_unit(u, c, C, HW, seg, S, &i0, &len) + i0;
    __global const float *xr = x + xoff + base, *gr = dy + dyoff + base;
    __global float *dr = dx + dxoff + base;
    int i = 0;
    for (; i + 16 <= len; i += 16) {
        float8 g0 = vload8(0, gr + i), g1 = vload8(1, gr + i);
        float8 x0 = vload8(0, xr + i), x1 = vload8(1, xr + i);
        vstore8(a * (g0 - b - (x0 - mu) * k2), 0, dr + i);
        vstore8(a * (g1 - b - (x1 - mu) * k2), 1, dr + i);
    }
    for (; i < len; i++) dr[i] = a * (gr[i] - b - (xr[i] - mu) * k2);
}

#ifdef STFPM_GPU
/* GPU variant. Statistics and the backward sums are two-stage, deterministic work-group
 * reductions (fixed order, no atomics):
 *   stage 1 (*_partial_g): gws = (G * L, C), lws = (L, 1), L a power of two: work-group (g, c)
 *            reduces the values [g * chunk, min(M, (g + 1) * chunk)) of channel c, numbered
 *            m = n * HW + i over its M = N * HW values (sample n, pixel i), each work-item a
 *            bounded grid-stride run m = m0 + lid, m0 + lid + L, ... (neighbouring work-items on
 *            neighbouring addresses), then a tree in local memory; writes one partial per
 *            (channel, group);
 *   stage 2 (*_final_g): one work-group of L2 work-items per channel combines the G partials
 *            (work-item lid those with p = lid, lid + L2, ... in order, then a tree).
 * Forward partials are (count, mean, M2) from two passes over the group's chunk (tree sum ->
 * chunk mean, then tree sum of squared deviations from it), combined with Chan's formula like
 * the CPU variant. Normalisation and dx are one element per work-item, gws = (HW, C, N). */

/* Sample and pixel of value m of a channel. */
static inline void bn_pos_g(int m, int HW, int *n, int *i) {
    *n = m / HW;
    *i = m - *n * HW;
}

/* Advance (n, i) by step values. */
static inline void bn_step_g(int step, int HW, int *n, int *i) {
    *i += step;
    if (*i >= HW) {
        int q = *i / HW;
        *n += q;
        *i -= q * HW;
    }
}

/* Tree sum of v over the work-group (local size a power of two, l: local-size floats); every
 * work-item gets the total, l is free again on return. */
static inline float bn_wg_sum_g(float v, __local float *l) {
    const int lid = get_local_id(0), lsz = get_local_size(0);
    l[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = lsz >> 1; s > 0; s >>= 1) {
        if (lid < s) l[lid] += l[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float t = l[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return t;
}

/* Stage 1 of the statistics: part[3 * (c * G + g)] = (count, mean, M2) of chunk g of channel c.
 * l: L floats. */
__kernel void bn_stats_partial_g(__global const float *x, int xoff, int C, int HW, int M, int chunk,
                                 int G, __global float *part, __local float *l) {
    const int g = get_group_id(0), c = get_global_id(1);
    const int lid = get_local_id(0), lsz = get_local_size(0);
    /* no early return before a barrier: an out-of-range work-group (uniform, lws = (L, 1))
     * gets an empty chunk and writes nothing */
    const int ok = g < G && c < C;
    const int m0 = g * chunk, m1 = ok ? min(M, m0 + chunk) : m0;
    __global const float *xc = x + xoff + (size_t)c * HW;
    const size_t plane = (size_t)C * HW;   /* from one sample's plane of channel c to the next */
    int n, i;
    float s = 0.0f;
    bn_pos_g(m0 + lid, HW, &n, &i);
    for (int m = m0 + lid; m < m1; m += lsz) {
        s += xc[n * plane + i];
        bn_step_g(lsz, HW, &n, &i);
    }
    const float mean = bn_wg_sum_g(s, l) / (float)max(m1 - m0, 1);
    float q = 0.0f;
    bn_pos_g(m0 + lid, HW, &n, &i);
    for (int m = m0 + lid; m < m1; m += lsz) {
        const float d = xc[n * plane + i] - mean;
        q += d * d;
        bn_step_g(lsz, HW, &n, &i);
    }
    q = bn_wg_sum_g(q, l);
    if (lid == 0 && ok) {
        __global float *o = part + 3 * ((size_t)c * G + g);
        o[0] = (float)(m1 - m0);
        o[1] = mean;
        o[2] = q;
    }
}

/* Stage 2 of the statistics, gws = (L2, C), lws = (L2, 1): the outputs of bn_stats_final for
 * channel c from its G partials. l: 3 * L2 floats. */
__kernel void bn_stats_final_g(__global const float *part, int G, int C, float eps, float momentum,
                               int update, __global float *rmean, int rmoff, __global float *rvar,
                               int rvoff, __global float *smean, int smoff, __global float *sinv,
                               int sioff, __local float *l) {
    const int c = get_global_id(1), lid = get_local_id(0), lsz = get_local_size(0);
    const int Gc = c < C ? G : 0;   /* uniform over the work-group; no early return before a barrier */
    __global const float *q = part + 3 * (size_t)c * G;
    float n = 0.0f, mean = 0.0f, m2 = 0.0f;
    for (int p = lid; p < Gc; p += lsz) CHAN_COMBINE(n, mean, m2, q[3 * p], q[3 * p + 1], q[3 * p + 2]);
    __local float *ln = l, *lm = l + lsz, *lq = l + 2 * lsz;
    ln[lid] = n;
    lm[lid] = mean;
    lq[lid] = m2;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = lsz >> 1; s > 0; s >>= 1) {
        if (lid < s) {
            float na = ln[lid], ma = lm[lid], qa = lq[lid];
            CHAN_COMBINE(na, ma, qa, ln[lid + s], lm[lid + s], lq[lid + s]);
            ln[lid] = na;
            lm[lid] = ma;
            lq[lid] = qa;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) {
        n = ln[0];
        mean = lm[0];
        m2 = fmax(lq[0], 0.0f);
        const float var = m2 / n;
        smean[smoff + c] = mean;
        sinv[sioff + c] = 1.0f / sqrt(var + eps);
        if (update) {
            const float unbiased = m2 / (n - 1.0f);
            rmean[rmoff + c] = (1.0f - momentum) * rmean[rmoff + c] + momentum * mean;
            rvar[rvoff + c] = (1.0f - momentum) * rvar[rvoff + c] + momentum * unbiased;
        }
    }
}

/* bn_apply, one element per work-item: gws = (HW, C, N). y may alias x. */
__kernel void bn_apply_g(__global const float *x, int xoff, __global float *y, int yoff,
                         __global const float *mean, int moff, __global const float *s, int soff,
                         int is_var, float eps, __global const float *w, int woff,
                         __global const float *b, int boff, int N, int C, int HW) {
    const int i = get_global_id(0), c = get_global_id(1), n = get_global_id(2);
    if (i >= HW || c >= C || n >= N) return;
    const float inv = is_var ? 1.0f / sqrt(s[soff + c] + eps) : s[soff + c];
    const float scale = inv * w[woff + c], mu = mean[moff + c], bb = b[boff + c];
    const size_t e = ((size_t)n * C + c) * HW + i;
    y[yoff + e] = (x[xoff + e] - mu) * scale + bb;
}

/* Backward stage 1 (geometry of bn_stats_partial_g): part[2 * (c * G + g)] =
 * (sum dy, sum dy * (x - mean)) over chunk g of channel c. l: 2 * L floats. */
__kernel void bn_bwd_partial_g(__global const float *x, int xoff, __global const float *dy, int dyoff,
                               __global const float *mean, int moff, int C, int HW, int M, int chunk,
                               int G, __global float *part, __local float *l) {
    const int g = get_group_id(0), c = get_global_id(1);
    const int lid = get_local_id(0), lsz = get_local_size(0);
    const int ok = g < G && c < C;   /* uniform; no early return before a barrier */
    const float mu = ok ? mean[moff + c] : 0.0f;
    const int m0 = g * chunk, m1 = ok ? min(M, m0 + chunk) : m0;
    __global const float *xc = x + xoff + (size_t)c * HW, *gc = dy + dyoff + (size_t)c * HW;
    const size_t plane = (size_t)C * HW;
    int n, i;
    float s1 = 0.0f, s2 = 0.0f;
    bn_pos_g(m0 + lid, HW, &n, &i);
    for (int m = m0 + lid; m < m1; m += lsz) {
        const size_t e = n * plane + i;
        const float gv = gc[e];
        s1 += gv;
        s2 += gv * (xc[e] - mu);
        bn_step_g(lsz, HW, &n, &i);
    }
    __local float *l1 = l, *l2 = l + lsz;
    l1[lid] = s1;
    l2[lid] = s2;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = lsz >> 1; s > 0; s >>= 1) {
        if (lid < s) {
            l1[lid] += l1[lid + s];
            l2[lid] += l2[lid + s];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0 && ok) {
        part[2 * ((size_t)c * G + g)] = l1[0];
        part[2 * ((size_t)c * G + g) + 1] = l2[0];
    }
}

/* Backward stage 2, gws = (L2, C), lws = (L2, 1): the outputs of bn_bwd_final for channel c
 * from its G partials. l: 2 * L2 floats. */
__kernel void bn_bwd_final_g(__global const float *part, int G, int C, int M,
                             __global const float *inv, int ioff, __global const float *w, int woff,
                             __global float *coef, int coff, int has_dw, __global float *dw, int dwoff,
                             int has_db, __global float *db, int dboff, __local float *l) {
    const int c = get_global_id(1), lid = get_local_id(0), lsz = get_local_size(0);
    const int Gc = c < C ? G : 0;   /* uniform over the work-group; no early return before a barrier */
    __global const float *q = part + 2 * (size_t)c * G;
    float s1 = 0.0f, s2 = 0.0f;
    for (int p = lid; p < Gc; p += lsz) {
        s1 += q[2 * p];
        s2 += q[2 * p + 1];
    }
    __local float *l1 = l, *l2 = l + lsz;
    l1[lid] = s1;
    l2[lid] = s2;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = lsz >> 1; s > 0; s >>= 1) {
        if (lid < s) {
            l1[lid] += l1[lid + s];
            l2[lid] += l2[lid + s];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0 && Gc) {
        s1 = l1[0];
        s2 = l2[0];
        const float is = inv[ioff + c];
        if (has_dw) dw[dwoff + c] = s2 * is;
        if (has_db) db[dboff + c] = s1;
        const float invm = 1.0f / (float)M;
        coef[coff + 3 * c] = w[woff + c] * is;
        coef[coff + 3 * c + 1] = s1 * invm;
        coef[coff + 3 * c + 2] = is * is * s2 * invm;
    }
}

/* bn_bwd_dx, one element per work-item: gws = (HW, C, N). dx may alias dy. */
__kernel void bn_bwd_dx_g(__global const float *x, int xoff, __global const float *dy, int dyoff,
                          __global const float *mean, int moff, __global const float *coef, int coff,
                          int N, int C, int HW, __global float *dx, int dxoff) {
    const int i = get_global_id(0), c = get_global_id(1), n = get_global_id(2);
    if (i >= HW || c >= C || n >= N) return;
    const float a = coef[coff + 3 * c], b = coef[coff + 3 * c + 1], k2 = coef[coff + 3 * c + 2];
    const float mu = mean[moff + c];
    const size_t e = ((size_t)n * C + c) * HW + i;
    dx[dxoff + e] = a * (dy[dyoff + e] - b - (x[xoff + e] - mu) * k2);
}
#endif
