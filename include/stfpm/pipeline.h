/* The STFPM pipeline: train (SPEC sections 3-4), test (sections 5-6) and predict. The library
 * reports progress through a callback and never prints.
 *
 * Usage: fill a stfpm_train_config from stfpm_train_config_default (set data_dir, out_dir and
 * the teacher) and call stfpm_train; score a labelled test split with stfpm_test, or any images
 * with stfpm_predict (a model path, the image paths, which stfpm_collect_images can expand from
 * folders, and a callback that receives each stfpm_prediction in input order). Each call takes a
 * context (stfpm_ctx_create), reports progress through its callback (may be NULL) and returns a
 * status; on failure stfpm_last_error() names the file or the option at fault. examples/score_image.c
 * scores one image this way. */
#ifndef STFPM_PIPELINE_H
#define STFPM_PIPELINE_H

#include "stfpm/stfpm.h"
#include "stfpm/model.h"
#include "stfpm/dataset.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Preprocess images in parallel (threads = 0: one per core): chw receives n * 3 * S * S floats,
 * masks (may be NULL) n * S * S 0/1 bytes. Errors name the failing file. */
stfpm_status stfpm_load_samples(const stfpm_sample *samples, const int *index, int n, int S, float *chw,
                                uint8_t *masks, int threads);

/* A new run into an empty --out, or the continuation of the run in it (RUN/last.safetensors). */
typedef enum stfpm_train_start {
    STFPM_TRAIN_NEW = 0,
    STFPM_TRAIN_RESUME = 1
} stfpm_train_start;

/* The validation value whose lowest epoch is kept as RUN/best.safetensors. */
typedef enum stfpm_checkpoint_rule {
    STFPM_SELECT_BY_VAL_LOSS = 0,   /* the mean validation loss (the paper) */
    STFPM_SELECT_BY_VAL_MAP = 1     /* the mean validation anomaly map (the authors' code) */
} stfpm_checkpoint_rule;

typedef enum stfpm_teacher_cache_mode {
    STFPM_TEACHER_CACHE_OFF = 0,    /* a teacher forward per batch */
    STFPM_TEACHER_CACHE_ON = 1      /* the teacher's features of every image computed once and kept on
                                       the device when they fit in half its memory (default) */
} stfpm_teacher_cache_mode;

typedef struct stfpm_train_config {
    const char *data_dir, *out_dir, *teacher;
    /* teacher and student architecture (stfpm_backbone_parse): NULL is resnet18 for a new run,
     * the checkpoint's backbone on --resume (which refuses a different one) */
    const char *backbone;
    int epochs, batch, size;
    float lr, momentum, weight_decay;
    uint64_t seed;
    int layers[4], n_layers;
    double val_split, train_fraction;
    stfpm_train_start start;
    stfpm_checkpoint_rule checkpoint_by;
    stfpm_teacher_cache_mode teacher_cache;
} stfpm_train_config;

void stfpm_train_config_default(stfpm_train_config *c);
stfpm_status stfpm_train_config_check(const stfpm_train_config *c);

typedef enum { STFPM_PHASE_LOAD, STFPM_PHASE_CACHE, STFPM_PHASE_TRAIN, STFPM_PHASE_EPOCH_END, STFPM_PHASE_DONE } stfpm_phase;

typedef struct stfpm_progress {
    stfpm_phase phase;
    int epoch, epochs;          /* 1-based */
    int batch, batches;
    float loss;                 /* running mean train loss of the epoch */
    float val_loss, val_map;    /* EPOCH_END */
    int is_best;
    double images_per_s, eta_s, epoch_s;
    int n_train, n_val;
    int teacher_cached;         /* LOAD (after the cache step): 1 when the teacher cache is in use */
    double cache_mib;
} stfpm_progress;

typedef void (*stfpm_progress_fn)(void *user, const stfpm_progress *p);

/* Train; writes RUN/config.json, RUN/train_log.csv, RUN/last.safetensors and RUN/report.html
 * each epoch and RUN/best.safetensors at each new best. A NaN/Inf loss stops with
 * STFPM_ERR_NAN (naming epoch and batch) and leaves the last good checkpoints in place. One
 * process at a time trains into a folder: the run holds an exclusive lock on RUN/.lock (which
 * records its pid) from before its first write to its end; a second run into the same folder
 * fails with STFPM_ERR_IO naming the folder and the holder's pid. */
stfpm_status stfpm_train(stfpm_ctx *ctx, const stfpm_train_config *c, stfpm_progress_fn fn, void *user);

typedef struct stfpm_test_result {
    double image_auroc, pixel_auroc, aupro, pro_paper;
    int n_normal, n_anomalous;
    int single_class;           /* the test split has only normal or only anomalous images: metrics are NaN */
    double seconds, images_per_s;
} stfpm_test_result;

typedef struct stfpm_test_options {
    const char *data_dir, *model;
    const char *csv_path, *json_path, *maps_dir;
    const char *report_dir;     /* NULL: no report; else DIR/index.html (stfpm_report_write_test) */
    int batch;
} stfpm_test_options;

stfpm_status stfpm_test(stfpm_ctx *ctx, const stfpm_test_options *o, stfpm_test_result *r,
                        stfpm_progress_fn fn, void *user);

/* Reports: self-contained HTML pages (inline CSS, charts as inline SVG, no script, nothing
 * fetched), written atomically; errors name the file. */

/* What the test report shows: the test split as stfpm_test scored it. */
typedef struct stfpm_test_report {
    const char *data_dir, *model_path;    /* shown; data_dir's name selects the paper's values */
    const stfpm_sample *samples;          /* the n test images (path, defect, label) */
    int n, size;                          /* images, S */
    const float *scores;                  /* n image scores */
    const float *maps;                    /* n anomaly maps of S x S */
    const uint8_t *masks;                 /* n ground truths of S x S (0/1) */
    double threshold;                     /* the model's stored threshold (NaN: none) */
    const stfpm_test_result *result;      /* the metrics */
} stfpm_test_report;

/* DIR/index.html: the metrics beside the paper's (STFPM ResNet-18, for an MVTec AD category:
 * the data folder's name), the image and pixel ROC curves, the PRO curve up to FPR 0.3, the
 * histograms of the normal and anomalous image scores with the threshold, a table per test
 * folder, and a gallery (image | ground truth | heatmap overlay, PNGs in DIR/gallery/) of the
 * highest-scoring normal images, the lowest-scoring anomalous ones and the median image of each
 * test folder. The gallery is written first, the page last. */
stfpm_status stfpm_report_write_test(const char *dir, const stfpm_test_report *d);

/* What the training report shows. */
typedef struct stfpm_train_report {
    const char *run_dir;                  /* shown as the title */
    const char *log_csv;                  /* the text of RUN/train_log.csv */
    int epochs;                           /* epochs the run trains to (the x axis) */
    int best_epoch;                       /* epoch of best.safetensors (0: none yet) */
    stfpm_checkpoint_rule checkpoint_by;
} stfpm_train_report;

/* The training report at path (stfpm_train writes RUN/report.html after every epoch): train and
 * validation loss per epoch with the best epoch marked (and the mean validation map when the
 * log has it), and the log as a table. */
stfpm_status stfpm_report_write_train(const char *path, const stfpm_train_report *t);

/* Predict: score any images with a trained model, in batches (decoding on all cores, the next
 * batch decoded while the device scores the current one), optionally writing heatmaps as the
 * test does: DIR/<stem>_overlay.png, DIR/<stem>_map.png (16-bit, value = pixel / 65535 *
 * scale, scale = 2 x the threshold when known, else the map's maximum) and DIR/scales.csv.
 * Images with the same file stem get "_2", "_3", ... appended to their heatmap names.
 *
 * The threshold: the caller's (threshold_given), else one derived from the model by
 * threshold_policy. STFPM_THRESHOLD_MAX (0, the default) is the threshold stored with the model
 * at training time, the highest image score among the held-out normal validation images of the
 * best epoch. STFPM_THRESHOLD_QUANTILE is the threshold_quantile quantile Q of those validation
 * scores, which training stores too (model metadata "val_scores"): with the n scores sorted,
 * x[0] <= ... <= x[n-1], h = (n - 1) * Q, it is x[floor(h)] + (h - floor(h)) *
 * (x[floor(h) + 1] - x[floor(h)]) (linear interpolation, numpy's default), so Q = 1 is the
 * maximum. A model without stored validation scores (trained before 0.3.0, or without
 * validation images) refuses the quantile policy with STFPM_ERR_ARG naming the file. */
typedef enum stfpm_threshold_policy {
    STFPM_THRESHOLD_MAX = 0,        /* the model's stored threshold (maximum validation score) */
    STFPM_THRESHOLD_QUANTILE = 1    /* a quantile of the model's validation scores */
} stfpm_threshold_policy;

#define STFPM_THRESHOLD_QUANTILE_DEFAULT 0.99

typedef struct stfpm_predict_options {
    const char *model;              /* run folder (its best.safetensors) or model file */
    const char *const *paths;       /* image files, n_paths of them (stfpm_collect_images
                                       expands folders) */
    int n_paths;
    const char *maps_dir;           /* NULL: no heatmaps */
    int batch;                      /* images per device batch; 0 = 16 */
    int threshold_given;            /* 1: use threshold below, else the one threshold_policy gives */
    double threshold;
    stfpm_threshold_policy threshold_policy;   /* without threshold_given; default MAX */
    double threshold_quantile;      /* QUANTILE: Q in (0, 1]; 0 = STFPM_THRESHOLD_QUANTILE_DEFAULT */
} stfpm_predict_options;

typedef enum stfpm_verdict {
    STFPM_VERDICT_UNKNOWN = 0,      /* no threshold: the model stores none and none was given */
    STFPM_VERDICT_NORMAL,
    STFPM_VERDICT_ANOMALOUS         /* score > threshold */
} stfpm_verdict;

typedef struct stfpm_prediction {
    int index;                      /* into paths */
    const char *path;
    float score;
    double threshold;               /* in use (NaN: none) */
    stfpm_verdict verdict;          /* anomalous when score > threshold, both as float32 (the
                                       scores' precision) */
    const char *map_path, *overlay_path;   /* NULL without maps_dir; valid during the call */
    double normalized_score;        /* stfpm_normalize_score(score, (float)threshold) */
} stfpm_prediction;

/* The normalised score: score / (2 x threshold), clipped to [0, 1]. 0.5 is the threshold (the
 * verdict flips above it), 1 is twice the threshold or more, and it is the same scale as the
 * raw heatmaps (DIR/<stem>_map.png pixel / 65535 when the scale is 2 x the threshold).
 * Monotone in the score; NaN when the score is NaN or the threshold is not a finite number
 * > 0. Above 2 x the threshold it saturates: rank by the raw score. */
double stfpm_normalize_score(double score, double threshold);

/* Called once per image, in input order, as soon as its batch is scored; a status other than
 * STFPM_OK stops the run with that status (the callback sets the message). */
typedef stfpm_status (*stfpm_prediction_fn)(void *user, const stfpm_prediction *p);

typedef struct stfpm_predict_summary {
    int n_images, n_anomalous;
    double threshold;               /* in use (NaN: none) */
    int model_has_threshold;
    int n_val_scores;               /* validation scores stored with the model (0: none) */
    double threshold_quantile;      /* the Q that gave threshold (QUANTILE policy), else NaN */
} stfpm_predict_summary;

stfpm_status stfpm_predict(stfpm_ctx *ctx, const stfpm_predict_options *o, stfpm_prediction_fn fn, void *user,
                           stfpm_predict_summary *summary);

/* Expand a list of image files and folders (a folder contributes its images, sorted; see
 * stfpm_dataset_list_images) into *paths (malloc'd strings; free with
 * stfpm_dataset_free_list). A missing input is STFPM_ERR_IO naming it. Folders without images
 * are reported through *empty_dirs (malloc'd list, may be NULL) and counted in *n_empty; no
 * image at all is STFPM_ERR_IO ("no images to score"). */
stfpm_status stfpm_collect_images(const char *const *inputs, int n_inputs, char ***paths, int *n_paths,
                                  char ***empty_dirs, int *n_empty);

/* Rule for the default threshold stored with a model: the maximum image score over the held-out
 * normal validation images (every validation image is classified normal), times 1.0. The
 * model also stores those scores, ascending, as comma-separated decimals (metadata key
 * "val_scores", written by 0.3.0 and later) for the quantile policy above. */

#ifdef __cplusplus
}
#endif
#endif
