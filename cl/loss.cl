/* STFPM feature-matching distance (SPEC section 3).
 * Per position (b, i, j): t_hat = t / max(|t|, 1e-12), s_hat = s / max(|s|, 1e-12) over C,
 * d = sum_c (t_hat - s_hat)^2. One work-item per position loops over the channels
 * (adjacent work-items = adjacent positions, so every channel step is a coalesced read). */

#define FM_EPS 1e-12f

/* t, s: (N, C, HW) at offsets to / so; d: (N, 1, HW) at offset dof. */
__kernel void fm_distance_fwd(__global const float *t, int to, __global const float *s, int so,
                              __global float *d, int dof, int N, int C, int HW) {
    int i = get_global_id(0);
    if (i >= N * HW) return;
    int b = i / HW, p = i % HW;
    int base = b * C * HW + p;
    __global const float *tp = t + to + base;
    __global const float *sp = s + so + base;
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
    d[dof + i] = acc;
}

/* ds = dL/ds for L = scale * sum d. With g = 2 * scale * (s_hat - t_hat):
 *   ds = (g - s_hat * <g, s_hat>) / |s|   when |s| > 1e-12
 *   ds = g / 1e-12                        otherwise (clamp active: no gradient through the norm).
 * accumulate != 0: ds += result. */
__kernel void fm_distance_bwd(__global const float *t, int to, __global const float *s, int so,
                              __global float *ds, int dso, int N, int C, int HW, float scale,
                              int accumulate) {
    int i = get_global_id(0);
    if (i >= N * HW) return;
    int b = i / HW, p = i % HW;
    int base = b * C * HW + p;
    __global const float *tp = t + to + base;
    __global const float *sp = s + so + base;
    __global float *dp = ds + dso + base;
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
