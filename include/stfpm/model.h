/* An STFPM model: frozen teacher + student ResNet (one backbone for both: resnet18 by default,
 * resnet34, resnet50, wide_resnet50_2), the layer set, the image size, and the
 * operations on batches of preprocessed images (train step, validation loss, anomaly maps).
 * Model files are safetensors holding "teacher.<torchvision name>" and "student.<name>"
 * tensors plus metadata (see docs in README: backbone, size, layers, epoch, val_loss, threshold
 * ...; a file without "backbone" is a resnet18 one).
 *
 * Usage: stfpm_model_load(ctx, &m, path, STFPM_MODEL_INFER, NULL) loads a trained model (a file
 * from stfpm_model_resolve_path, which also accepts a run folder), stfpm_model_eval scores a batch
 * of preprocessed images (stfpm/image.h) into image scores and anomaly maps, and
 * stfpm_model_free releases it. Training builds a model with stfpm_model_init, loads the teacher
 * (stfpm_find_teacher, stfpm_model_load_teacher) and steps it with stfpm_model_train_step;
 * stfpm_train (stfpm/pipeline.h) does all of it with the paper's recipe. */
#ifndef STFPM_MODEL_H
#define STFPM_MODEL_H

#include "stfpm/stfpm.h"
#include "stfpm/resnet.h"
#include "stfpm/pyramid.h"
#include "stfpm/weights.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct stfpm_model {
    stfpm_backbone backbone;  /* of teacher and student */
    stfpm_resnet *teacher, *student;
    stfpm_pyramid *pyr;
    int size;                 /* S: images are S x S */
    int layers[4], n_layers;  /* pyramid levels (1..4), ascending */
    int depth;                /* highest layer built */
    float threshold;          /* default decision threshold on the image score (NaN = none) */
    stfpm_tensor x, map, score;
    int cap;                  /* batch capacity of x / map / score */
    stfpm_tensor tbatch[4];   /* teacher features gathered from a cache (capacity cap) */
} stfpm_model;

/* Teacher features of a fixed image set, computed once (the teacher is frozen and there is no
 * augmentation, so they never change): level l holds (n, C_l, H_l, W_l). */
typedef struct stfpm_teacher_cache {
    stfpm_tensor level[4];
    int n;
} stfpm_teacher_cache;

/* Parse "1,2,3" into sorted unique layers in 1..4. */
stfpm_status stfpm_parse_layers(const char *text, int layers[4], int *n_layers);
void stfpm_format_layers(const int *layers, int n, char *out, size_t out_len);

/* What the student is built for: inference only, or training (gradients, SGD momentum). */
typedef enum stfpm_model_mode {
    STFPM_MODEL_INFER = 0,
    STFPM_MODEL_TRAIN = 1
} stfpm_model_mode;

/* Build teacher (eval, frozen) and student (trainable in STFPM_MODEL_TRAIN) of the backbone with
 * zero weights. */
stfpm_status stfpm_model_init_backbone(stfpm_ctx *ctx, stfpm_model *m, stfpm_backbone backbone, int size,
                                       const int *layers, int n_layers, stfpm_model_mode mode);
/* stfpm_model_init_backbone with STFPM_RESNET18. */
stfpm_status stfpm_model_init(stfpm_ctx *ctx, stfpm_model *m, int size, const int *layers, int n_layers,
                              stfpm_model_mode mode);
void stfpm_model_free(stfpm_ctx *ctx, stfpm_model *m);

/* Find the teacher weights of a backbone: explicit path, else $STFPM_TEACHER, else the torch hub
 * cache ($TORCH_HOME or ~/.cache/torch)/hub/checkpoints/<backbone>-*.pth (e.g. resnet50-*.pth;
 * the first in name order when there are several). out receives the path. */
stfpm_status stfpm_find_teacher(stfpm_backbone backbone, const char *explicit_path, char *out, size_t out_len);
/* Load teacher weights (torchvision names, no prefix) from a .pth / .safetensors file. A file of
 * another backbone (stfpm_resnet_weights_backbone) is refused with STFPM_ERR_FORMAT naming both. */
stfpm_status stfpm_model_load_teacher(stfpm_ctx *ctx, stfpm_model *m, const char *path);

/* What a model file holds besides teacher and student: nothing (a model for inference and the
 * best checkpoint), or the student's SGD momentum too (a checkpoint to resume from). */
typedef enum stfpm_save_content {
    STFPM_SAVE_WEIGHTS = 0,
    STFPM_SAVE_WITH_MOMENTUM = 1
} stfpm_save_content;

/* The backbone a model file or checkpoint w (read from path) records (metadata "backbone";
 * absent: resnet18), checked against what its "teacher." tensors are; an unknown or
 * contradicted name is an error naming path. */
stfpm_status stfpm_model_file_backbone(const stfpm_weights *w, const char *path, stfpm_backbone *bb);

/* Write teacher + student (+ momentum) and metadata atomically. */
stfpm_status stfpm_model_save(stfpm_ctx *ctx, stfpm_model *m, const char *path, stfpm_save_content content,
                              const char *const *meta_keys, const char *const *meta_values, int n_meta);
/* Resolve a model path: a run directory (uses DIR/best.safetensors) or a file. */
stfpm_status stfpm_model_resolve_path(const char *path_or_dir, char *out, size_t out_len);
/* Load a saved model for inference (size, layers and threshold from its metadata): a model file
 * written by stfpm train, or an anomalib STFPM checkpoint (.ckpt, ResNet-18; teacher and
 * student from its state_dict, threshold from its post-processor; README "Models from
 * anomalib"). The weight dictionary is returned in *w_out when not NULL (for metadata /
 * momentum), else freed. */
stfpm_status stfpm_model_load(stfpm_ctx *ctx, stfpm_model *m, const char *path, stfpm_model_mode mode,
                              stfpm_weights *w_out);

/* Make the batch buffers hold at least n images. */
stfpm_status stfpm_model_reserve(stfpm_ctx *ctx, stfpm_model *m, int n);

/* One SGD step on n preprocessed images (3 x S x S floats each, host). The teacher features of
 * image k come from cache entry idx[k] when tc is not NULL (see below), else from a teacher
 * forward (idx unused, may be NULL). STFPM_SGD_FIRST_STEP starts the momentum (v = g). *loss (host)
 * receives the batch loss of SPEC section 3 (before the step). */
stfpm_status stfpm_model_train_step(stfpm_ctx *ctx, stfpm_model *m, const float *chw, const stfpm_teacher_cache *tc,
                                    const int *idx, int n, float lr, float momentum, float weight_decay,
                                    stfpm_sgd_step_kind step, float *loss);
/* Eval mode: the batch loss (mean over the n images) and, when scores != NULL, each image's score
 * (max of its anomaly map); maps (n * S * S floats, host) may be NULL. */
stfpm_status stfpm_model_eval(stfpm_ctx *ctx, stfpm_model *m, const float *chw, int n, float *loss,
                              float *scores, float *maps);

/* Build a teacher cache for n preprocessed images (host chw), in batches of `batch`. Needs
 * n * sum_l C_l*H_l*W_l * 4 bytes of device memory; when that exceeds max_bytes (0: half the
 * device memory) or an allocation fails it returns STFPM_ERR_OOM and leaves *tc empty, and
 * the caller runs the teacher per batch instead. */
stfpm_status stfpm_teacher_cache_build(stfpm_ctx *ctx, stfpm_model *m, const float *chw, int n, int batch,
                                       uint64_t max_bytes, stfpm_teacher_cache *tc);
uint64_t stfpm_teacher_cache_bytes(const stfpm_model *m, int n);
void stfpm_teacher_cache_free(stfpm_ctx *ctx, stfpm_teacher_cache *tc);
/* As stfpm_model_eval, but the teacher features of image k of the batch are cache entry idx[k]
 * (no teacher forward). */
stfpm_status stfpm_model_eval_cached(stfpm_ctx *ctx, stfpm_model *m, const float *chw,
                                     const stfpm_teacher_cache *tc, const int *idx, int n, float *loss,
                                     float *scores, float *maps);

#ifdef __cplusplus
}
#endif
#endif
