/* Small kernels used by the runtime itself. */
__kernel void fill_f32(__global float *x, int off, int n, float v) {
    int i = get_global_id(0);
    if (i < n) x[off + i] = v;
}
