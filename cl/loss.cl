/* STFPM feature-matching distance (SPEC section 3).
 * Per position (b, i, j): t_hat = t / max(|t|, 1e-12), s_hat = s / max(|s|, 1e-12) over C,
 * d = sum_c (t_hat - s_hat)^2.
 *
 * Row form: work-item (q, b) handles FM_RUN = 16 adjacent positions p0 = q * 16 .. p0 + 15 of
 * sample b as one float16 per channel (a cache line of t and of s per channel step), looping
 * over the channels; the channel sums of every position are accumulated in channel order, as in
 * the one-position-per-work-item form this replaces (on PoCL that form re-read each channel's
 * cache line once per position). The last run of a sample may be shorter (HW not a multiple
 * of 16): it takes the scalar per-position loop. */

#define FM_EPS 1e-12f
#define FM_RUN 16

/* d of one position (scalar form), base = pointer offset of channel 0. */
static inline float fm_fwd_one(__global const float *tp, __global const float *sp, int C, int HW) {
    float tt = 0.0f, ss = 0.0f;
    for (int c = 0; c < C; c++) {
        float a = tp[c * HW], q = sp[c * HW];
        tt += a * a;
        ss += q * q;
    }
    float it = 1.0f / fmax(sqrt(tt), FM_EPS), is = 1.0f / fmax(sqrt(ss), FM_EPS);
    float acc = 0.0f;
    for (int c = 0; c < C; c++) {
        float e = tp[c * HW] * it - sp[c * HW] * is;
        acc += e * e;
    }
    return acc;
}

/* t, s: (N, C, HW) at offsets to / so; d: (N, 1, HW) at offset dof. gws = (ceil(HW / 16), N). */
__kernel void fm_distance_fwd(__global const float *t, int to, __global const float *s, int so,
                              __global float *d, int dof, int N, int C, int HW) {
    const int q = get_global_id(0), b = get_global_id(1);
    const int p0 = q * FM_RUN;
    if (p0 >= HW || b >= N) return;
    const size_t base = (size_t)b * C * HW + p0;
    __global const float *tp = t + to + base;
    __global const float *sp = s + so + base;
    __global float *dp = d + dof + (size_t)b * HW + p0;
    if (p0 + FM_RUN > HW) {
        for (int p = 0; p < HW - p0; p++) dp[p] = fm_fwd_one(tp + p, sp + p, C, HW);
        return;
    }
    float16 tt = (float16)(0.0f), ss = (float16)(0.0f);
    for (int c = 0; c < C; c++) {
        float16 a = vload16(0, tp + (size_t)c * HW), v = vload16(0, sp + (size_t)c * HW);
        tt += a * a;
        ss += v * v;
    }
    const float16 it = 1.0f / fmax(sqrt(tt), FM_EPS), is = 1.0f / fmax(sqrt(ss), FM_EPS);
    float16 acc = (float16)(0.0f);
    for (int c = 0; c < C; c++) {
        float16 e = vload16(0, tp + (size_t)c * HW) * it - vload16(0, sp + (size_t)c * HW) * is;
        acc += e * e;
    }
    vstore16(acc, 0, dp);
}

/* ds of one position (scalar form). */
static inline void fm_bwd_one(__global const float *tp, __global const float *sp, __global float *dp,
                              int C, int HW, float scale, int accumulate) {
    float tt = 0.0f, ss = 0.0f;
    for (int c = 0; c < C; c++) {
        float a = tp[c * HW], q = sp[c * HW];
        tt += a * a;
        ss += q * q;
    }
    float ns = sqrt(ss);
    int clamped = !(ns > FM_EPS);
    float it = 1.0f / fmax(sqrt(tt), FM_EPS), is = 1.0f / fmax(ns, FM_EPS);
    float two = 2.0f * scale;
    float gs = 0.0f;                                   /* <g, s_hat> */
    if (!clamped) {
        for (int c = 0; c < C; c++) {
            float sh = sp[c * HW] * is;
            gs += two * (sh - tp[c * HW] * it) * sh;
        }
    }
    for (int c = 0; c < C; c++) {
        float sh = sp[c * HW] * is;
        float g = two * (sh - tp[c * HW] * it);
        float v = (g - sh * gs) * is;                  /* is = 1/|s| or 1/1e-12 (gs = 0) */
        dp[c * HW] = accumulate ? dp[c * HW] + v : v;
    }
}

/* ds = dL/ds for L = scale * sum d. With g = 2 * scale * (s_hat - t_hat):
 *   ds = (g - s_hat * <g, s_hat>) / |s|   when |s| > 1e-12
 *   ds = g / 1e-12                        otherwise (clamp active: no gradient through the norm).
 * accumulate != 0: ds += result. gws = (ceil(HW / 16), N). */
__kernel void fm_distance_bwd(__global const float *t, int to, __global const float *s, int so,
                              __global float *ds, int dso, int N, int C, int HW, float scale,
                              int accumulate) {
    const int q = get_global_id(0), b = get_global_id(1);
    const int p0 = q * FM_RUN;
    if (p0 >= HW || b >= N) return;
    const size_t base = (size_t)b * C * HW + p0;
    __global const float *tp = t + to + base;
    __global const float *sp = s + so + base;
    __global float *dp = ds + dso + base;
    if (p0 + FM_RUN > HW) {
        for (int p = 0; p < HW - p0; p++) fm_bwd_one(tp + p, sp + p, dp + p, C, HW, scale, accumulate);
        return;
    }
    float16 tt = (float16)(0.0f), ss = (float16)(0.0f);
    for (int c = 0; c < C; c++) {
        float16 a = vload16(0, tp + (size_t)c * HW), v = vload16(0, sp + (size_t)c * HW);
        tt += a * a;
        ss += v * v;
    }
    const float16 ns = sqrt(ss);
    const int16 clamped = !isgreater(ns, (float16)(FM_EPS));
    const float16 it = 1.0f / fmax(sqrt(tt), FM_EPS), is = 1.0f / fmax(ns, FM_EPS);
    const float two = 2.0f * scale;
    float16 gs = (float16)(0.0f);                      /* <g, s_hat> */
    for (int c = 0; c < C; c++) {
        float16 sh = vload16(0, sp + (size_t)c * HW) * is;
        gs += two * (sh - vload16(0, tp + (size_t)c * HW) * it) * sh;
    }
    gs = select(gs, (float16)(0.0f), clamped);         /* clamp active: no norm term */
    for (int c = 0; c < C; c++) {
        __global float *o = dp + (size_t)c * HW;
        float16 sh = vload16(0, sp + (size_t)c * HW) * is;
        float16 g = two * (sh - vload16(0, tp + (size_t)c * HW) * it);
        float16 v = (g - sh * gs) * is;
        vstore16(accumulate ? vload16(0, o) + v : v, 0, o);
    }
}

#ifdef STFPM_GPU
/* GPU variant: one work-item per position, get_global_id(0) along the H*W positions of sample
 * get_global_id(1). Each work-item loops over the C channels of its position; for a fixed
 * channel the work-items of a work-group read consecutive positions (coalesced). The channel
 * sums are accumulated in channel order, as in the row form's scalar path. */

/* gws = (HW, N). */
__kernel void fm_distance_fwd_g(__global const float *t, int to, __global const float *s, int so,
                                __global float *d, int dof, int N, int C, int HW) {
    const int p = get_global_id(0), b = get_global_id(1);
    if (p >= HW || b >= N) return;
    const size_t base = (size_t)b * C * HW + p;
    d[dof + (size_t)b * HW + p] = fm_fwd_one(t + to + base, s + so + base, C, HW);
}

/* gws = (HW, N); the same gradient as fm_distance_bwd. */
__kernel void fm_distance_bwd_g(__global const float *t, int to, __global const float *s, int so,
                                __global float *ds, int dso, int N, int C, int HW, float scale,
                                int accumulate) {
    const int p = get_global_id(0), b = get_global_id(1);
    if (p >= HW || b >= N) return;
    const size_t base = (size_t)b * C * HW + p;
    fm_bwd_one(t + to + base, s + so + base, ds + dso + base, C, HW, scale, accumulate);
}
#endif
