/* Bilinear resize (align_corners = false) forward / backward (cl/upsample.cl). */
#include "runtime.h"
#include "stfpm/ops.h"

#include <stdio.h>
#include <string.h>

/* x: (N, C, H, W) input side, y: (N, C, Ho, Wo) output side of the forward resize. */
static stfpm_status check_shapes(const char *what, const stfpm_tensor *in, const stfpm_tensor *out) {
    if (in->n != out->n || in->c != out->c)
        return stfpm_set_error(STFPM_ERR_ARG,
                               "%s: batch/channels differ between input (%d, %d, %d, %d) and output "
                               "(%d, %d, %d, %d)", what, in->n, in->c, in->h, in->w, out->n, out->c,
                               out->h, out->w);
    return STFPM_OK;
}

static stfpm_status launch(stfpm_ctx *ctx, const char *kernel, const stfpm_tensor *src,
                           stfpm_tensor *dst, const stfpm_tensor *in, const stfpm_tensor *out) {
    cl_int so = (cl_int)src->off, dof = (cl_int)dst->off, planes = in->n * in->c;
    cl_int H = in->h, W = in->w, Ho = out->h, Wo = out->w;
    /* PyTorch area_pixel_compute_scale: (float)in / out when no scale factor is given */
    float sh = (float)in->h / (float)out->h, sw = (float)in->w / (float)out->w;
    stfpm_karg a[] = {KARG(src->buf), KARG(so), KARG(dst->buf), KARG(dof), KARG(planes), KARG(H),
                      KARG(W), KARG(Ho), KARG(Wo), KARG(sh), KARG(sw)};
    if (stfpm_gpu_kernels(ctx)) {   /* one work-item per element of dst, dim 0 along its rows */
        char name[64];
        snprintf(name, sizeof name, "%s_g", kernel);
        size_t g[3] = {(size_t)dst->w, (size_t)dst->h, (size_t)planes};
        return stfpm_enqueue(ctx, "upsample", name, 3, g, NULL, KARGS(a));
    }
    if (!strcmp(kernel, "upsample_bilinear_fwd")) {         /* row form: one item per output row */
        size_t g[2] = {(size_t)Ho, (size_t)planes};
        return stfpm_enqueue(ctx, "upsample", kernel, 2, g, NULL, KARGS(a));
    }
    return stfpm_enqueue1d(ctx, "upsample", kernel, stfpm_tensor_numel(dst), KARGS(a));
}

stfpm_status stfpm_upsample_bilinear_forward(stfpm_ctx *ctx, const stfpm_tensor *x, stfpm_tensor *y) {
    STFPM_TRY(check_shapes("bilinear resize forward", x, y));
    return launch(ctx, "upsample_bilinear_fwd", x, y, x, y);
}

stfpm_status stfpm_upsample_bilinear_backward(stfpm_ctx *ctx, const stfpm_tensor *dy, stfpm_tensor *dx) {
    STFPM_TRY(check_shapes("bilinear resize backward", dx, dy));
    return launch(ctx, "upsample_bilinear_bwd", dy, dx, dx, dy);
}
