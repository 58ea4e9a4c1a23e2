/* Element-wise ops: ReLU forward / backward, add, mul, axpy, scale (kernels: cl/elementwise.cl). */
#include "runtime.h"
#include "stfpm/ops.h"

#define EW_PROG "elementwise"
#define EW_LSZ 256

static stfpm_status ew_check(const stfpm_tensor *t, const char *op, const char *what) {
    if (!t || !t->buf) return stfpm_set_error(STFPM_ERR_ARG, "%s: tensor %s is missing", op, what);
    return STFPM_OK;
}

static stfpm_status ew_check_same(const stfpm_tensor *ref, const char *refname, const stfpm_tensor *t,
                                  const char *op, const char *what) {
    STFPM_TRY(ew_check(t, op, what));
    if (!stfpm_tensor_same_shape(ref, t))
        return stfpm_set_error(STFPM_ERR_ARG, "%s: %s has shape (%d, %d, %d, %d), %s has (%d, %d, %d, %d)",
                               op, what, t->n, t->c, t->h, t->w, refname, ref->n, ref->c, ref->h, ref->w);
    return STFPM_OK;
}

/* 1-D launch over n elements, one per work-item (neighbouring work-items on neighbouring
 * elements: coalesced). CPU variant: a fixed work-group size, EW_LSZ or the largest power of two
 * within the kernel's launch limit; GPU variant: the runtime's local size. The global size is
 * rounded up (the kernels bounds-check). */
static stfpm_status ew_launch(stfpm_ctx *ctx, const char *name, size_t n, int nargs,
                              const stfpm_karg *args) {
    if (stfpm_gpu_kernels(ctx)) return stfpm_enqueue1d(ctx, EW_PROG, name, n, nargs, args);
    size_t max = stfpm_kernel_wg_limit(ctx, EW_PROG, name);
    size_t l = EW_LSZ;
    while (l > 1 && l > max) l >>= 1;
    size_t g = n ? n : 1;
    return stfpm_enqueue(ctx, EW_PROG, name, 1, &g, &l, nargs, args);
}

stfpm_status stfpm_relu_forward(stfpm_ctx *ctx, const stfpm_tensor *x, stfpm_tensor *y) {
    STFPM_TRY(ew_check(x, "relu_forward", "x"));
    STFPM_TRY(ew_check_same(x, "x", y, "relu_forward", "y"));
    cl_int xoff = (cl_int)x->off, yoff = (cl_int)y->off, n = (cl_int)stfpm_tensor_numel(x);
    stfpm_karg a[] = {KARG(x->buf), KARG(xoff), KARG(y->buf), KARG(yoff), KARG(n)};
    return ew_launch(ctx, "relu_forward", (size_t)n, KARGS(a));
}

stfpm_status stfpm_relu_backward(stfpm_ctx *ctx, const stfpm_tensor *y, const stfpm_tensor *dy,
                                 stfpm_tensor *dx) {
    STFPM_TRY(ew_check(y, "relu_backward", "y"));
    STFPM_TRY(ew_check_same(y, "y", dy, "relu_backward", "dy"));
    STFPM_TRY(ew_check_same(y, "y", dx, "relu_backward", "dx"));
    cl_int yoff = (cl_int)y->off, dyoff = (cl_int)dy->off, dxoff = (cl_int)dx->off,
           n = (cl_int)stfpm_tensor_numel(y);
    stfpm_karg a[] = {KARG(y->buf), KARG(yoff), KARG(dy->buf), KARG(dyoff), KARG(dx->buf), KARG(dxoff),
                      KARG(n)};
    return ew_launch(ctx, "relu_backward", (size_t)n, KARGS(a));
}

static stfpm_status ew_binary(stfpm_ctx *ctx, const char *op, const char *kernel, const stfpm_tensor *a,
                              const stfpm_tensor *b, stfpm_tensor *y) {
    STFPM_TRY(ew_check(a, op, "a"));
    STFPM_TRY(ew_check_same(a, "a", b, op, "b"));
    STFPM_TRY(ew_check_same(a, "a", y, op, "y"));
    cl_int aoff = (cl_int)a->off, boff = (cl_int)b->off, yoff = (cl_int)y->off,
           n = (cl_int)stfpm_tensor_numel(a);
    stfpm_karg args[] = {KARG(a->buf), KARG(aoff), KARG(b->buf), KARG(boff), KARG(y->buf), KARG(yoff),
                         KARG(n)};
    return ew_launch(ctx, kernel, (size_t)n, KARGS(args));
}

stfpm_status stfpm_add(stfpm_ctx *ctx, const stfpm_tensor *a, const stfpm_tensor *b, stfpm_tensor *y) {
    return ew_binary(ctx, "add", "ew_add", a, b, y);
}

stfpm_status stfpm_mul(stfpm_ctx *ctx, const stfpm_tensor *a, const stfpm_tensor *b, stfpm_tensor *y) {
    return ew_binary(ctx, "mul", "ew_mul", a, b, y);
}

stfpm_status stfpm_axpy(stfpm_ctx *ctx, float alpha, const stfpm_tensor *x, stfpm_tensor *y) {
    STFPM_TRY(ew_check(x, "axpy", "x"));
    STFPM_TRY(ew_check_same(x, "x", y, "axpy", "y"));
    cl_int xoff = (cl_int)x->off, yoff = (cl_int)y->off, n = (cl_int)stfpm_tensor_numel(x);
    stfpm_karg a[] = {KARG(alpha), KARG(x->buf), KARG(xoff), KARG(y->buf), KARG(yoff), KARG(n)};
    return ew_launch(ctx, "ew_axpy", (size_t)n, KARGS(a));
}

stfpm_status stfpm_scale(stfpm_ctx *ctx, float alpha, stfpm_tensor *x) {
    STFPM_TRY(ew_check(x, "scale", "x"));
    cl_int xoff = (cl_int)x->off, n = (cl_int)stfpm_tensor_numel(x);
    stfpm_karg a[] = {KARG(alpha), KARG(x->buf), KARG(xoff), KARG(n)};
    return ew_launch(ctx, "ew_scale", (size_t)n, KARGS(a));
}
