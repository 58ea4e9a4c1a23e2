/* Feature-pyramid loss and anomaly map from the engine's ops. */
#include "stfpm/pyramid.h"
#include "stfpm/ops.h"
#include "runtime.h"

#include <stdlib.h>
#include <string.h>

struct stfpm_pyramid {
    stfpm_tensor d[STFPM_MAX_LEVELS];     /* per-position distances (N,1,H,W) */
    stfpm_tensor ds[STFPM_MAX_LEVELS];    /* dL/ds */
    stfpm_tensor mean[STFPM_MAX_LEVELS];  /* (1,1,1,1) */
    stfpm_tensor up;                      /* one upsampled level (N,1,S,S) */
    stfpm_tensor rowmax;                  /* (N,1,S,1): the map's row maxima (fused path; GPU
                                             variant: (N,1,G,1), its work-groups' maxima) */
};

/* The anomaly map in one kernel (cl/upsample.cl anomaly_map_fwd) unless the fused_map option
 * is off: the same arithmetic in the same order as resize + multiply (bit-identical, tested),
 * and the score from the row maxima instead of a second pass over the map. */
static int fused_map(stfpm_ctx *ctx) { return stfpm_ctx_get_options(ctx)->fused_map != STFPM_SWITCH_OFF; }

stfpm_status stfpm_pyramid_create(stfpm_ctx *ctx, stfpm_pyramid **out) {
    *out = calloc(1, sizeof **out);
    if (!*out) return stfpm_set_error(STFPM_ERR_OOM, "out of host memory");
    for (int l = 0; l < STFPM_MAX_LEVELS; l++) {
        stfpm_status s = stfpm_tensor_alloc(ctx, &(*out)->mean[l], 1, 1, 1, 1);
        if (s != STFPM_OK) { stfpm_pyramid_free(ctx, *out); *out = NULL; return s; }
    }
    return STFPM_OK;
}

void stfpm_pyramid_free(stfpm_ctx *ctx, stfpm_pyramid *p) {
    if (!p) return;
    for (int l = 0; l < STFPM_MAX_LEVELS; l++) {
        stfpm_tensor_free(ctx, &p->d[l]);
        stfpm_tensor_free(ctx, &p->ds[l]);
        stfpm_tensor_free(ctx, &p->mean[l]);
    }
    stfpm_tensor_free(ctx, &p->up);
    stfpm_tensor_free(ctx, &p->rowmax);
    free(p);
}

/* Make *t hold at least the shape (n, c, h, w); returns a view of exactly that shape. */
static stfpm_status ensure(stfpm_ctx *ctx, stfpm_tensor *t, int n, int c, int h, int w, stfpm_tensor *view) {
    if (!t->buf || t->n < n || t->c != c || t->h != h || t->w != w) {
        stfpm_tensor_free(ctx, t);
        STFPM_TRY(stfpm_tensor_alloc(ctx, t, n, c, h, w));
    }
    *view = stfpm_tensor_view(t, 0, n);
    return STFPM_OK;
}

stfpm_status stfpm_pyramid_loss(stfpm_ctx *ctx, stfpm_pyramid *p, int n_levels, const stfpm_tensor *t,
                                const stfpm_tensor *s, stfpm_loss_grad grad, float *loss, float *per_level) {
    const int want_grad = grad == STFPM_LOSS_WITH_GRAD;
    if (n_levels < 1 || n_levels > STFPM_MAX_LEVELS)
        return stfpm_set_error(STFPM_ERR_ARG, "pyramid loss: %d levels (1..%d)", n_levels, STFPM_MAX_LEVELS);
    for (int l = 0; l < n_levels; l++) {
        if (!stfpm_tensor_same_shape(&t[l], &s[l]))
            return stfpm_set_error(STFPM_ERR_ARG, "pyramid loss level %d: teacher (%d,%d,%d,%d) vs student (%d,%d,%d,%d)",
                                   l, t[l].n, t[l].c, t[l].h, t[l].w, s[l].n, s[l].c, s[l].h, s[l].w);
        stfpm_tensor d;
        STFPM_TRY(ensure(ctx, &p->d[l], t[l].n, 1, t[l].h, t[l].w, &d));
        STFPM_TRY(stfpm_fm_distance(ctx, &t[l], &s[l], &d));
        STFPM_TRY(stfpm_reduce_mean_all(ctx, &d, &p->mean[l]));
        if (want_grad) {
            stfpm_tensor ds;
            STFPM_TRY(ensure(ctx, &p->ds[l], s[l].n, s[l].c, s[l].h, s[l].w, &ds));
            float scale = 1.0f / ((float)s[l].n * s[l].h * s[l].w);
            STFPM_TRY(stfpm_fm_distance_backward(ctx, &t[l], &s[l], scale, STFPM_GRAD_OVERWRITE, &ds));
        }
    }
    if (loss || per_level) {
        float sum = 0.0f;
        for (int l = 0; l < n_levels; l++) {
            float v;
            STFPM_TRY(stfpm_tensor_read(ctx, &p->mean[l], &v));
            if (per_level) per_level[l] = v;
            sum += v;
        }
        if (loss) *loss = sum;
    }
    return STFPM_OK;
}

const stfpm_tensor *stfpm_pyramid_grad(const stfpm_pyramid *p, int level) { return &p->ds[level]; }

/* Largest power of two <= min(256, cap, want) (want 0: no limit). */
static size_t pow2_local(size_t cap, size_t want) {
    size_t l = 1;
    while (l * 2 <= 256 && l * 2 <= cap && (!want || l < want)) l <<= 1;
    return l;
}

/* The fused map on the GPU variant (cl/upsample.cl): anomaly_map_fwd_g, one work-item per map
 * pixel, writes the map and the maximum of each work-group's pixels; anomaly_score_g reduces
 * those to the per-image score. a[0 .. k) are the level and map arguments of anomaly_map_fwd. */
static stfpm_status anomaly_map_gpu(stfpm_ctx *ctx, stfpm_pyramid *p, stfpm_karg *a, int k,
                                    const stfpm_tensor *map, stfpm_tensor *score) {
    if (score && (score->c != 1 || score->h != 1 || score->w != 1))
        return stfpm_set_error(STFPM_ERR_ARG, "anomaly map: score has shape (%d, %d, %d, %d), expected (%d, 1, 1, 1)",
                               score->n, score->c, score->h, score->w, map->n);
    size_t pix = (size_t)map->h * map->w;
    size_t lsz = pow2_local(stfpm_kernel_wg_limit(ctx, "upsample", "anomaly_map_fwd_g"), 0);
    size_t groups = (pix + lsz - 1) / lsz;
    stfpm_tensor part;
    STFPM_TRY(ensure(ctx, &p->rowmax, map->n, 1, (int)groups, 1, &part));
    a[k++] = KARG(part.buf);
    a[k++] = KLOCAL(lsz * sizeof(cl_float));
    size_t g[2] = {groups * lsz, (size_t)map->n}, l[2] = {lsz, 1};
    STFPM_TRY(stfpm_enqueue(ctx, "upsample", "anomaly_map_fwd_g", 2, g, l, k, a));
    if (!score) return STFPM_OK;
    cl_int G = (cl_int)groups, so = (cl_int)score->off, N = map->n;
    size_t lsz2 = pow2_local(stfpm_kernel_wg_limit(ctx, "upsample", "anomaly_score_g"), groups);
    stfpm_karg b[] = {KARG(part.buf), KARG(G), KARG(score->buf), KARG(so), KARG(N), KLOCAL(lsz2 * sizeof(cl_float))};
    size_t g2[2] = {lsz2, (size_t)map->n}, l2[2] = {lsz2, 1};
    return stfpm_enqueue(ctx, "upsample", "anomaly_score_g", 2, g2, l2, KARGS(b));
}

stfpm_status stfpm_pyramid_anomaly_map(stfpm_ctx *ctx, stfpm_pyramid *p, int n_levels,
                                       const stfpm_tensor *t, const stfpm_tensor *s,
                                       stfpm_tensor *map, stfpm_tensor *score) {
    if (n_levels < 1 || n_levels > STFPM_MAX_LEVELS)
        return stfpm_set_error(STFPM_ERR_ARG, "anomaly map: %d levels", n_levels);
    if (map->c != 1 || map->n != t[0].n || (score && score->n != t[0].n))
        return stfpm_set_error(STFPM_ERR_ARG, "anomaly map: output must be (N,1,H,W) with N = %d", t[0].n);
    if (fused_map(ctx) && n_levels <= 4) {
        stfpm_tensor d[4];
        for (int l = 0; l < n_levels; l++) {
            STFPM_TRY(ensure(ctx, &p->d[l], t[l].n, 1, t[l].h, t[l].w, &d[l]));
            STFPM_TRY(stfpm_fm_distance(ctx, &t[l], &s[l], &d[l]));
        }
        for (int l = n_levels; l < 4; l++) d[l] = d[0];   /* not read */
        cl_int off[4], H[4], W[4], L = n_levels, mo = (cl_int)map->off, N = map->n, Ho = map->h, Wo = map->w;
        float sh[4], sw[4];
        stfpm_karg a[4 * 6 + 8];                   /* 7 after the levels, 8 on the GPU variant */
        int k = 0;
        for (int l = 0; l < 4; l++) {
            off[l] = (cl_int)d[l].off;
            H[l] = d[l].h;
            W[l] = d[l].w;
            sh[l] = (float)d[l].h / (float)map->h;   /* as host/upsample.c */
            sw[l] = (float)d[l].w / (float)map->w;
            a[k++] = KARG(d[l].buf);
            a[k++] = KARG(off[l]);
            a[k++] = KARG(H[l]);
            a[k++] = KARG(W[l]);
            a[k++] = KARG(sh[l]);
            a[k++] = KARG(sw[l]);
        }
        a[k++] = KARG(L);
        a[k++] = KARG(map->buf);
        a[k++] = KARG(mo);
        a[k++] = KARG(N);
        a[k++] = KARG(Ho);
        a[k++] = KARG(Wo);
        if (stfpm_gpu_kernels(ctx))
            return anomaly_map_gpu(ctx, p, a, k, map, score);
        stfpm_tensor rm;
        STFPM_TRY(ensure(ctx, &p->rowmax, map->n, 1, map->h, 1, &rm));
        a[k++] = KARG(rm.buf);
        size_t g[2] = {(size_t)map->h, (size_t)map->n};
        STFPM_TRY(stfpm_enqueue(ctx, "upsample", "anomaly_map_fwd", 2, g, NULL, k, a));
        if (score) STFPM_TRY(stfpm_reduce_max(ctx, &rm, score));
        return STFPM_OK;
    }
    for (int l = 0; l < n_levels; l++) {
        stfpm_tensor d, up;
        STFPM_TRY(ensure(ctx, &p->d[l], t[l].n, 1, t[l].h, t[l].w, &d));
        STFPM_TRY(stfpm_fm_distance(ctx, &t[l], &s[l], &d));
        if (l == 0) {
            STFPM_TRY(stfpm_upsample_bilinear_forward(ctx, &d, map));
        } else {
            STFPM_TRY(ensure(ctx, &p->up, map->n, 1, map->h, map->w, &up));
            STFPM_TRY(stfpm_upsample_bilinear_forward(ctx, &d, &up));
            STFPM_TRY(stfpm_mul(ctx, map, &up, map));
        }
    }
    if (score) STFPM_TRY(stfpm_reduce_max(ctx, map, score));
    return STFPM_OK;
}
