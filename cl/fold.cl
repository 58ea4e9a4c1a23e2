/* Batch norm (eval mode) folded into the preceding convolution (host/resnet.c):
 *   bn(conv(x, w)) = conv(x, w * s) + (beta - mean * s),  s = gamma / sqrt(var + eps)
 * per output channel k. w: (K, R) at w_off with R = Cin * KH * KW; fw (K, R), fb (K).
 * gws = K: item k scales one row. */
__kernel void bn_fold(__global const float *w, int w_off, int R, __global const float *gamma, int g_off,
                      __global const float *beta, int b_off, __global const float *mean, int m_off,
                      __global const float *var, int v_off, float eps, int K, __global float *fw,
                      __global float *fb) {
    const int k = get_global_id(0);
    if (k >= K) return;
    const float s = gamma[g_off + k] / sqrt(var[v_off + k] + eps);
    __global const float *src = w + w_off + (size_t)k * R;
    __global float *dst = fw + (size_t)k * R;
    for (int r = 0; r < R; r++) dst[r] = src[r] * s;
    fb[k] = beta[b_off + k] - mean[m_off + k] * s;
}

#ifdef STFPM_GPU
/* GPU variant: one weight per work-item, gws = (R, K): item (r, k) writes fw[k * R + r] (dim 0
 * along the contiguous row); item (0, k) also writes fb[k]. s is computed per item, by the same
 * expression as above. */
__kernel void bn_fold_g(__global const float *w, int w_off, int R, __global const float *gamma, int g_off,
                        __global const float *beta, int b_off, __global const float *mean, int m_off,
                        __global const float *var, int v_off, float eps, int K, __global float *fw,
                        __global float *fb) {
    const int r = get_global_id(0);
    const int k = get_global_id(1);
    if (r >= R || k >= K) return;
    const float s = gamma[g_off + k] / sqrt(var[v_off + k] + eps);
    fw[(size_t)k * R + r] = w[w_off + (size_t)k * R + r] * s;
    if (r == 0) fb[k] = beta[b_off + k] - mean[m_off + k] * s;
}
#endif
