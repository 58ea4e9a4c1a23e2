/* PyTorch SGD (dampening 0, no Nesterov), SPEC section 3:
 * g' = g + wd * w; v = first_step ? g' : momentum * v + g'; w -= lr * v.
 * has_v == 0 (momentum 0, no buffer): w -= lr * g'. */
__kernel void sgd_step(__global float *w, int woff, __global const float *g, int goff,
                       __global float *v, int voff, int has_v, int n, float lr, float momentum,
                       float wd, int first_step) {
    int i = get_global_id(0);
    if (i >= n) return;
    float wi = w[woff + i];
    float d = g[goff + i] + wd * wi;
    if (has_v) {
        if (!first_step) d = momentum * v[voff + i] + d;
        v[voff + i] = d;
    }
    w[woff + i] = wi - lr * d;
}
