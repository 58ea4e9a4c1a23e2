/* Element-wise kernels over flat float32 tensors; every tensor carries an element offset.
 * In-place use (output buffer == input buffer at the same offset) is safe: each work-item
 * reads its inputs before writing its own output element. */

__kernel void relu_forward(__global const float *x, int xoff, __global float *y, int yoff, int n) {
    int i = get_global_id(0);
    if (i < n) {
        float v = x[xoff + i];
        y[yoff + i] = v < 0.0f ? 0.0f : v; /* NaN propagates, like torch.relu */
    }
}

/* dx = dy * (y > 0), y being the forward output. */
__kernel void relu_backward(__global const float *y, int yoff, __global const float *dy, int dyoff,
                            __global float *dx, int dxoff, int n) {
    int i = get_global_id(0);
    if (i < n) dx[dxoff + i] = y[yoff + i] > 0.0f ? dy[dyoff + i] : 0.0f;
}

__kernel void ew_add(__global const float *a, int aoff, __global const float *b, int boff,
                     __global float *y, int yoff, int n) {
    int i = get_global_id(0);
    if (i < n) y[yoff + i] = a[aoff + i] + b[boff + i];
}

__kernel void ew_mul(__global const float *a, int aoff, __global const float *b, int boff,
                     __global float *y, int yoff, int n) {
    int i = get_global_id(0);
    if (i < n) y[yoff + i] = a[aoff + i] * b[boff + i];
}

/* y = alpha * x + y */
__kernel void ew_axpy(float alpha, __global const float *x, int xoff, __global float *y, int yoff,
                      int n) {
    int i = get_global_id(0);
    if (i < n) y[yoff + i] = alpha * x[xoff + i] + y[yoff + i];
}

__kernel void ew_scale(float alpha, __global float *x, int xoff, int n) {
    int i = get_global_id(0);
    if (i < n) x[xoff + i] = alpha * x[xoff + i];
}
