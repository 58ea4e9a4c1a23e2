/* STFPM on top of the network: the feature-matching loss over a pyramid (SPEC section 3) and
 * the anomaly map (SPEC section 5).
 *
 * Usage: stfpm_pyramid_create(ctx, &p) once, then per batch stfpm_pyramid_loss on the teacher
 * and student features of stfpm_resnet_forward (stfpm/resnet.h), with STFPM_LOSS_WITH_GRAD to
 * train, or stfpm_pyramid_anomaly_map for the maps and scores; stfpm_pyramid_free at the end.
 * stfpm/model.h wraps these for a teacher / student pair. */
#ifndef STFPM_PYRAMID_H
#define STFPM_PYRAMID_H

#include "stfpm/stfpm.h"

#ifdef __cplusplus
extern "C" {
#endif

#define STFPM_MAX_LEVELS 4

typedef struct stfpm_pyramid stfpm_pyramid;   /* owns its work buffers */

/* Whether stfpm_pyramid_loss also computes dL/ds (training) or only the loss (validation). */
typedef enum stfpm_loss_grad {
    STFPM_LOSS_VALUE_ONLY = 0,
    STFPM_LOSS_WITH_GRAD = 1
} stfpm_loss_grad;

stfpm_status stfpm_pyramid_create(stfpm_ctx *ctx, stfpm_pyramid **out);
void stfpm_pyramid_free(stfpm_ctx *ctx, stfpm_pyramid *p);

/* L = sum_l mean_{b,i,j} d_l(b,i,j) over n_levels pairs (t[l], s[l]).
 * loss (host) may be NULL to avoid a device->host sync; per_level (may be NULL) receives each
 * level's mean. STFPM_LOSS_WITH_GRAD: also compute dL/ds[l] (read with stfpm_pyramid_grad). */
stfpm_status stfpm_pyramid_loss(stfpm_ctx *ctx, stfpm_pyramid *p, int n_levels, const stfpm_tensor *t,
                                const stfpm_tensor *s, stfpm_loss_grad grad, float *loss, float *per_level);
/* Gradient buffer of level l from the last stfpm_pyramid_loss with STFPM_LOSS_WITH_GRAD. */
const stfpm_tensor *stfpm_pyramid_grad(const stfpm_pyramid *p, int level);

/* Anomaly maps (SPEC section 5): map (N, 1, out_h, out_w) = prod_l upsample(d_l) and
 * score (N, 1, 1, 1) = max of each map. map / score are caller-allocated device tensors. */
stfpm_status stfpm_pyramid_anomaly_map(stfpm_ctx *ctx, stfpm_pyramid *p, int n_levels,
                                       const stfpm_tensor *t, const stfpm_tensor *s,
                                       stfpm_tensor *map, stfpm_tensor *score);

#ifdef __cplusplus
}
#endif
#endif
