/* Training (SPEC sections 3-4): seeded 80/20 split, SGD over shuffled batches, validation loss
 * after every epoch, best / last checkpoints, CSV log, resume. */
#include "stfpm/pipeline.h"
#include "stfpm/image.h"
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void stfpm_train_config_default(stfpm_train_config *c) {
    memset(c, 0, sizeof *c);
    c->epochs = 100;
    c->batch = 32;
    c->size = 256;
    c->lr = 0.4f;
    c->momentum = 0.9f;
    c->weight_decay = 1e-4f;
    c->seed = 0;
    c->layers[0] = 1; c->layers[1] = 2; c->layers[2] = 3;
    c->n_layers = 3;
    c->val_split = 0.2;
    c->train_fraction = 1.0;
    c->teacher_cache = 1;
}

stfpm_status stfpm_train_config_check(const stfpm_train_config *c) {
    if (!c->data_dir || !*c->data_dir) return stfpm_set_error(STFPM_ERR_ARG, "--data DIR is required");
    if (!c->out_dir || !*c->out_dir) return stfpm_set_error(STFPM_ERR_ARG, "--out RUN is required");
    if (c->epochs < 1 || c->epochs > 1000000)
        return stfpm_set_error(STFPM_ERR_ARG, "--epochs %d: must be at least 1", c->epochs);
    if (c->batch < 1 || c->batch > 4096)
        return stfpm_set_error(STFPM_ERR_ARG, "--batch %d: must be between 1 and 4096", c->batch);
    if (c->size < 32 || c->size % 32 != 0 || c->size > 4096)
        return stfpm_set_error(STFPM_ERR_ARG, "--size %d: must be a multiple of 32 (the network's total "
                               "stride) between 32 and 4096", c->size);
    if (!(c->lr > 0.0f) || !isfinite(c->lr))
        return stfpm_set_error(STFPM_ERR_ARG, "--lr %g: must be a positive number", c->lr);
    if (!(c->momentum >= 0.0f && c->momentum < 1.0f))
        return stfpm_set_error(STFPM_ERR_ARG, "--momentum %g: must be in [0, 1)", c->momentum);
    if (!(c->weight_decay >= 0.0f) || !isfinite(c->weight_decay))
        return stfpm_set_error(STFPM_ERR_ARG, "--weight-decay %g: must be >= 0", c->weight_decay);
    if (!(c->val_split >= 0.0 && c->val_split <= 0.9))
        return stfpm_set_error(STFPM_ERR_ARG, "--val-split %g: must be in [0, 0.9]", c->val_split);
    if (!(c->train_fraction > 0.0 && c->train_fraction <= 1.0))
        return stfpm_set_error(STFPM_ERR_ARG, "--train-fraction %g: must be in (0, 1]", c->train_fraction);
    if (c->n_layers < 1 || c->n_layers > 4) return stfpm_set_error(STFPM_ERR_ARG, "--layers: 1 to 4 layers");
    return STFPM_OK;
}

static const char *LOG_HEADER = "epoch,train_loss,val_loss,val_map_mean,seconds,images_per_s,best\n";

/* Keep the rows of an existing log whose epoch <= upto (for resume). */
static void log_restore(stfpm_strbuf *log, const char *path, int upto) {
    char *text = NULL;
    stfpm_strbuf_puts(log, LOG_HEADER);
    if (stfpm_read_text(path, &text, NULL) != STFPM_OK) return;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int e = atoi(line);
        if (e >= 1 && e <= upto) { stfpm_strbuf_puts(log, line); stfpm_strbuf_puts(log, "\n"); }
    }
    free(text);
}

static stfpm_status write_config(const stfpm_train_config *c, const char *path, const char *teacher, char *json,
                                 size_t json_len) {
    char layers[32], data[2048], out[2048], tea[2048];
    stfpm_format_layers(c->layers, c->n_layers, layers, sizeof layers);
    stfpm_json_escape(c->data_dir, data, sizeof data);
    stfpm_json_escape(c->out_dir, out, sizeof out);
    stfpm_json_escape(teacher, tea, sizeof tea);
    int n = snprintf(json, json_len,
                     "{\n  \"data\": \"%s\",\n  \"out\": \"%s\",\n  \"teacher\": \"%s\",\n  \"epochs\": %d,\n"
                     "  \"batch\": %d,\n  \"size\": %d,\n  \"lr\": %.9g,\n  \"momentum\": %.9g,\n"
                     "  \"weight_decay\": %.9g,\n  \"seed\": %llu,\n  \"layers\": [%s],\n  \"val_split\": %.9g,\n"
                     "  \"train_fraction\": %.9g,\n  \"checkpoint_by\": \"%s\"\n}\n",
                     data, out, tea, c->epochs, c->batch, c->size, c->lr, c->momentum, c->weight_decay,
                     (unsigned long long)c->seed, layers, c->val_split, c->train_fraction,
                     c->select_by_map ? "val_anomaly_map" : "val_loss");
    return stfpm_write_file_atomic(path, json, (size_t)n);
}

/* The options a resumed run must share with the run it continues (--epochs and --lr may change,
 * e.g. to extend a run or lower the learning rate after a divergence). */
static void resume_key(const stfpm_train_config *c, char *out, size_t n) {
    snprintf(out, n, "--batch %d --momentum %.9g --weight-decay %.9g --val-split %.9g --train-fraction %.9g "
             "--checkpoint-by %s", c->batch, c->momentum, c->weight_decay, c->val_split, c->train_fraction,
             c->select_by_map ? "map" : "loss");
}

/* Shuffle of epoch e (1-based): depends only on seed and e, so a resumed run sees the same order. */
static void epoch_order(int n, uint64_t seed, int epoch, int *perm) {
    stfpm_permutation(n, seed * 0x9E3779B97F4A7C15ULL + (uint64_t)epoch * 0xD1B54A32D192ED03ULL + 1, perm);
}

/* Length of the run of decimal digits at s. */
static size_t digits(const char *s) {
    size_t n = 0;
    while (s[n] >= '0' && s[n] <= '9') n++;
    return n;
}

/* 1 when name is a temporary file of stfpm_write_parts_atomic for one of the files a run
 * writes: "<file>.tmp.<pid>.<n>"; *pid receives the writer's pid. */
static int run_tmp_name(const char *name, long *pid) {
    static const char *const ours[] = {"last.safetensors", "best.safetensors", "train_log.csv", "config.json"};
    for (int i = 0; i < 4; i++) {
        size_t n = strlen(ours[i]);
        if (strncmp(name, ours[i], n) != 0 || strncmp(name + n, ".tmp.", 5) != 0) continue;
        const char *p = name + n + 5;
        size_t np = digits(p);
        if (np == 0 || p[np] != '.') return 0;
        size_t nk = digits(p + np + 1);
        if (nk == 0 || p[np + 1 + nk] != 0) return 0;
        *pid = strtol(p, NULL, 10);
        return *pid > 0;
    }
    return 0;
}

/* Remove the temporary files that a training process killed while writing a checkpoint, the
 * log or the config left in the run folder. Files of a process that is still alive are left
 * alone. */
static void remove_stale_tmp(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long pid;
        if (!run_tmp_name(e->d_name, &pid)) continue;
        if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

typedef struct {
    float *chw;        /* all images, preprocessed */
    int n;
} image_set;

static stfpm_status validate(stfpm_ctx *ctx, stfpm_model *m, const image_set *val, const stfpm_teacher_cache *tc,
                             int batch, int want_map, float *val_loss, float *val_map, float *max_score) {
    int *idx = malloc(sizeof(int) * (size_t)batch);
    if (!idx) return stfpm_set_error(STFPM_ERR_OOM, "out of host memory");
    size_t per = (size_t)3 * m->size * m->size;
    double loss_sum = 0, map_sum = 0;
    float mx = -INFINITY;
    float *scores = malloc(sizeof(float) * (size_t)batch);
    float *maps = want_map ? malloc(sizeof(float) * (size_t)batch * m->size * m->size) : NULL;
    if (!scores || (want_map && !maps)) { free(scores); free(maps); return stfpm_set_error(STFPM_ERR_OOM, "out of host memory"); }
    stfpm_status s = STFPM_OK;
    for (int i = 0; i < val->n && s == STFPM_OK; i += batch) {
        int nb = val->n - i < batch ? val->n - i : batch;
        float l = 0;
        for (int k = 0; k < nb; k++) idx[k] = i + k;
        s = tc->n ? stfpm_model_eval_cached(ctx, m, val->chw + per * i, tc, idx, nb, &l, scores, maps)
                  : stfpm_model_eval(ctx, m, val->chw + per * i, nb, &l, scores, maps);
        if (s != STFPM_OK) break;
        loss_sum += (double)l * nb;
        for (int k = 0; k < nb; k++) mx = scores[k] > mx ? scores[k] : mx;
        if (maps) {
            double ms = 0;
            for (size_t k = 0; k < (size_t)nb * m->size * m->size; k++) ms += maps[k];
            map_sum += ms / ((double)m->size * m->size);
        }
    }
    free(scores);
    free(maps);
    free(idx);
    *val_loss = (float)(loss_sum / val->n);
    *val_map = want_map ? (float)(map_sum / val->n) : NAN;
    *max_score = mx;
    return s;
}

stfpm_status stfpm_train(stfpm_ctx *ctx, const stfpm_train_config *c, stfpm_progress_fn fn, void *user) {
    STFPM_TRY(stfpm_train_config_check(c));
    char path_last[4200], path_best[4200], path_log[4200], path_cfg[4200], teacher[4096];
    snprintf(path_last, sizeof path_last, "%s/last.safetensors", c->out_dir);
    snprintf(path_best, sizeof path_best, "%s/best.safetensors", c->out_dir);
    snprintf(path_log, sizeof path_log, "%s/train_log.csv", c->out_dir);
    snprintf(path_cfg, sizeof path_cfg, "%s/config.json", c->out_dir);
    if (!c->resume && stfpm_path_exists(path_last))
        return stfpm_set_error(STFPM_ERR_ARG, "%s already holds a training run (%s exists): pass --resume to "
                               "continue it, or choose another --out", c->out_dir, path_last);
    if (c->resume && !stfpm_path_exists(path_last))
        return stfpm_set_error(STFPM_ERR_IO, "--resume: %s not found (nothing to resume in %s)", path_last, c->out_dir);
    STFPM_TRY(stfpm_find_teacher(c->teacher, teacher, sizeof teacher));
    if (c->resume) {
        /* Check that the checkpoint matches before the (slow) image loading. */
        stfpm_weights early = {0};
        stfpm_status es = stfpm_weights_load(path_last, &early);
        if (es != STFPM_OK) return stfpm_wrap_error(es, "--resume");
        const char *sz = stfpm_weights_meta(&early, "size"), *ly = stfpm_weights_meta(&early, "layers");
        const char *sd = stfpm_weights_meta(&early, "seed");
        char want_layers[32];
        stfpm_format_layers(c->layers, c->n_layers, want_layers, sizeof want_layers);
        if (sz && ly && sd && (atoi(sz) != c->size || strcmp(ly, want_layers) != 0 || strtoull(sd, NULL, 10) != c->seed))
            es = stfpm_set_error(STFPM_ERR_ARG, "%s was trained with --size %s --layers %s --seed %s, but this run asks "
                                 "for --size %d --layers %s --seed %llu: use the same values to resume",
                                 path_last, sz, ly, sd, c->size, want_layers, (unsigned long long)c->seed);
        const char *rk = stfpm_weights_meta(&early, "resume_key");
        char want_key[512];
        resume_key(c, want_key, sizeof want_key);
        if (es == STFPM_OK && rk && strcmp(rk, want_key) != 0)
            es = stfpm_set_error(STFPM_ERR_ARG, "%s was trained with %s, but this run asks for %s: resume with the "
                                 "same options (only --epochs and --lr may change)", path_last, rk, want_key);
        stfpm_weights_free(&early);
        if (es != STFPM_OK) return es;
    }

    stfpm_dataset ds;
    STFPM_TRY(stfpm_dataset_open(c->data_dir, STFPM_DATASET_TRAIN, &ds));
    /* the run folder is created only once the data set was found (no empty folder left behind) */
    stfpm_status s_dir = stfpm_mkdir_p(c->out_dir);
    if (s_dir != STFPM_OK) { stfpm_dataset_free(&ds); return s_dir; }
    remove_stale_tmp(c->out_dir);
    stfpm_split sp = {0};
    stfpm_model m = {0};
    image_set tr = {0}, va = {0};
    float *batch_buf = NULL;
    int *perm = NULL;
    stfpm_strbuf log = {0};
    stfpm_weights ck = {0};
    stfpm_teacher_cache tc_train = {0}, tc_val = {0};
    stfpm_status s = stfpm_split_make(ds.n_train, c->seed, c->val_split, c->train_fraction, &sp);
    if (s != STFPM_OK) goto done;
    size_t per = (size_t)3 * c->size * c->size;
    stfpm_progress pg = {.phase = STFPM_PHASE_LOAD, .epochs = c->epochs, .n_train = sp.n_train, .n_val = sp.n_val};
    if (fn) fn(user, &pg);
    tr.n = sp.n_train;
    va.n = sp.n_val;
    tr.chw = malloc(per * sizeof(float) * (size_t)(tr.n ? tr.n : 1));
    va.chw = malloc(per * sizeof(float) * (size_t)(va.n ? va.n : 1));
    batch_buf = malloc(per * sizeof(float) * (size_t)c->batch);
    perm = malloc(sizeof(int) * (size_t)(tr.n ? tr.n : 1));
    if (!batch_buf) {
        s = stfpm_set_error(STFPM_ERR_OOM, "out of host memory for a batch of %d images of %dx%d (%.1f MiB); "
                            "try a smaller --batch or --size", c->batch, c->size, c->size,
                            per * sizeof(float) * (double)c->batch / 1048576.0);
        goto done;
    }
    if (!tr.chw || !va.chw || !perm) {
        s = stfpm_set_error(STFPM_ERR_OOM, "out of host memory holding %d preprocessed images of %dx%d",
                            tr.n + va.n, c->size, c->size);
        goto done;
    }
    s = stfpm_load_samples(ds.train, sp.train, tr.n, c->size, tr.chw, NULL, 0);
    if (s == STFPM_OK && va.n) s = stfpm_load_samples(ds.train, sp.val, va.n, c->size, va.chw, NULL, 0);
    if (s != STFPM_OK) goto done;

    s = stfpm_model_init(ctx, &m, c->size, c->layers, c->n_layers, 1);
    if (s == STFPM_OK) {
        if (c->resume) {
            /* the teacher the run started with, stored in the checkpoint (not whatever the teacher
             * file holds now) */
            stfpm_weights tw = {0};
            s = stfpm_weights_load(path_last, &tw);
            if (s == STFPM_OK) s = stfpm_resnet_load_prefixed(ctx, m.teacher, &tw, path_last, "teacher.");
            stfpm_weights_free(&tw);
        } else {
            s = stfpm_model_load_teacher(ctx, &m, teacher);
        }
    }
    if (s == STFPM_OK) s = stfpm_resnet_init_kaiming(ctx, m.student, c->seed);
    if (s == STFPM_OK) s = stfpm_model_reserve(ctx, &m, c->batch);
    if (s != STFPM_OK) goto done;
    if (c->teacher_cache) {
        /* The teacher is frozen and nothing is augmented: its features never change. */
        uint64_t limit = stfpm_ctx_device(ctx)->global_mem / 2;
        stfpm_status cs = stfpm_teacher_cache_build(ctx, &m, tr.chw, tr.n, c->batch, limit, &tc_train);
        if (cs == STFPM_OK) cs = stfpm_teacher_cache_build(ctx, &m, va.chw, va.n, c->batch, limit - stfpm_teacher_cache_bytes(&m, tr.n), &tc_val);
        if (cs == STFPM_OK) {
            pg.teacher_cached = 1;
            pg.cache_mib = stfpm_teacher_cache_bytes(&m, tr.n + va.n) / 1048576.0;
        } else if (cs == STFPM_ERR_OOM) {
            stfpm_teacher_cache_free(ctx, &tc_train);   /* fall back: teacher forward per batch */
            stfpm_teacher_cache_free(ctx, &tc_val);
        } else {
            s = cs;
            goto done;
        }
        pg.phase = STFPM_PHASE_CACHE;
        if (fn) fn(user, &pg);
    }

    int start_epoch = 1, best_epoch = 0;
    long global_step = 0;
    float best = INFINITY;
    if (c->resume) {
        s = stfpm_weights_load(path_last, &ck);
        if (s != STFPM_OK) { stfpm_wrap_error(s, "--resume"); goto done; }
        const char *sz = stfpm_weights_meta(&ck, "size"), *ly = stfpm_weights_meta(&ck, "layers");
        const char *ep = stfpm_weights_meta(&ck, "epoch"), *bv = stfpm_weights_meta(&ck, "best_val");
        const char *be = stfpm_weights_meta(&ck, "best_epoch"), *gs = stfpm_weights_meta(&ck, "global_step");
        const char *sd = stfpm_weights_meta(&ck, "seed");
        char want_layers[32];
        stfpm_format_layers(c->layers, c->n_layers, want_layers, sizeof want_layers);
        if (!sz || !ly || !ep || !bv || !be || !gs || !sd) {
            s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: not a resumable stfpm-cl checkpoint (metadata missing)", path_last);
            goto done;
        }
        if (atoi(sz) != c->size || strcmp(ly, want_layers) != 0 || strtoull(sd, NULL, 10) != c->seed) {
            s = stfpm_set_error(STFPM_ERR_ARG, "%s was trained with --size %s --layers %s --seed %s, but this run asks "
                                "for --size %d --layers %s --seed %llu: use the same values to resume",
                                path_last, sz, ly, sd, c->size, want_layers, (unsigned long long)c->seed);
            goto done;
        }
        s = stfpm_resnet_load_prefixed(ctx, m.student, &ck, path_last, "student.");
        if (s == STFPM_OK) s = stfpm_resnet_load_momentum(ctx, m.student, &ck, path_last, "student.");
        if (s != STFPM_OK) goto done;
        start_epoch = atoi(ep) + 1;
        best = strtof(bv, NULL);
        best_epoch = atoi(be);
        global_step = atol(gs);
        const char *thr = stfpm_weights_meta(&ck, "threshold");
        m.threshold = thr ? strtof(thr, NULL) : NAN;
        stfpm_weights_free(&ck);
        log_restore(&log, path_log, start_epoch - 1);
    } else {
        stfpm_strbuf_puts(&log, LOG_HEADER);
    }
    static _Thread_local char config_json[8192];
    s = write_config(c, path_cfg, teacher, config_json, sizeof config_json);
    if (s != STFPM_OK) goto done;

    int batches = (tr.n + c->batch - 1) / c->batch;
    double t_start = stfpm_now();
    long images_done = 0;
    for (int epoch = start_epoch; epoch <= c->epochs; epoch++) {
        double t0 = stfpm_now();
        epoch_order(tr.n, c->seed, epoch, perm);
        double loss_sum = 0;
        for (int b = 0; b < batches; b++) {
            int i0 = b * c->batch, nb = tr.n - i0 < c->batch ? tr.n - i0 : c->batch;
            for (int k = 0; k < nb; k++) memcpy(batch_buf + per * k, tr.chw + per * perm[i0 + k], per * sizeof(float));
            float loss = 0;
            s = tc_train.n ? stfpm_model_train_step_cached(ctx, &m, batch_buf, &tc_train, perm + i0, nb, c->lr,
                                                           c->momentum, c->weight_decay, global_step == 0, &loss)
                           : stfpm_model_train_step(ctx, &m, batch_buf, nb, c->lr, c->momentum, c->weight_decay,
                                                    global_step == 0, &loss);
            if (s == STFPM_ERR_OOM && tc_train.n && b == 0 && epoch == start_epoch) {
                /* The cache fit, but then the student's activations did not: the network allocates
                 * them before running anything, so drop the cache and run the teacher per batch. */
                stfpm_teacher_cache_free(ctx, &tc_train);
                stfpm_teacher_cache_free(ctx, &tc_val);
                pg.phase = STFPM_PHASE_CACHE;
                pg.teacher_cached = 0;
                if (fn) fn(user, &pg);
                s = stfpm_model_train_step(ctx, &m, batch_buf, nb, c->lr, c->momentum, c->weight_decay,
                                           global_step == 0, &loss);
            }
            if (s != STFPM_OK) {
                stfpm_wrap_error(s, "epoch %d, batch %d/%d", epoch, b + 1, batches);
                goto done;
            }
            if (!isfinite(loss)) {
                if (stfpm_path_exists(path_last))
                    s = stfpm_set_error(STFPM_ERR_NAN, "training loss became %s at epoch %d, batch %d/%d; stopped. "
                                        "The last good checkpoints (%s, %s) are kept; try a lower --lr",
                                        isnan(loss) ? "NaN" : "Inf", epoch, b + 1, batches, path_last, path_best);
                else
                    s = stfpm_set_error(STFPM_ERR_NAN, "training loss became %s at epoch %d, batch %d/%d; stopped "
                                        "before any checkpoint was written; try a lower --lr",
                                        isnan(loss) ? "NaN" : "Inf", epoch, b + 1, batches);
                goto done;
            }
            global_step++;
            images_done += nb;
            loss_sum += loss;
            double el = stfpm_now() - t_start;
            pg.phase = STFPM_PHASE_TRAIN;
            pg.epoch = epoch;
            pg.batch = b + 1;
            pg.batches = batches;
            pg.loss = (float)(loss_sum / (b + 1));
            pg.images_per_s = images_done / (el > 1e-9 ? el : 1e-9);
            double remaining_imgs = (double)(c->epochs - epoch) * (tr.n + va.n) + (tr.n - i0 - nb) + va.n;
            pg.eta_s = remaining_imgs / (pg.images_per_s > 0 ? pg.images_per_s : 1);
            if (fn) fn(user, &pg);
        }
        float val_loss = NAN, val_map = NAN, max_score = NAN;   /* NaN: no validation images */
        if (va.n) {
            s = validate(ctx, &m, &va, &tc_val, c->batch, c->select_by_map, &val_loss, &val_map, &max_score);
            if (s != STFPM_OK) { stfpm_wrap_error(s, "validation after epoch %d", epoch); goto done; }
            if (!isfinite(val_loss)) {
                s = stfpm_set_error(STFPM_ERR_NAN, "validation loss became %s after epoch %d; stopped. %s; try a "
                                    "lower --lr", isnan(val_loss) ? "NaN" : "Inf", epoch,
                                    stfpm_path_exists(path_last) ? "The last good checkpoints are kept"
                                                                 : "No checkpoint was written");
                goto done;
            }
        }
        float metric = c->select_by_map ? val_map : val_loss;
        int is_best = va.n == 0 || metric < best;
        char k_epoch[32], k_val[64], k_best[64], k_bepoch[32], k_step[32], k_seed[32], k_map[64];
        if (is_best) {
            best = va.n ? metric : best;
            best_epoch = epoch;
            m.threshold = max_score;
            snprintf(k_epoch, sizeof k_epoch, "%d", epoch);
            snprintf(k_val, sizeof k_val, "%.9g", val_loss);
            snprintf(k_map, sizeof k_map, "%.9g", val_map);
            const char *keys[] = {"epoch", "val_loss", "val_map_mean", "teacher_file", "config"};
            const char *vals[] = {k_epoch, k_val, k_map, teacher, config_json};
            s = stfpm_model_save(ctx, &m, path_best, 0, keys, vals, 5);
            if (s != STFPM_OK) goto done;
        }
        snprintf(k_epoch, sizeof k_epoch, "%d", epoch);
        snprintf(k_val, sizeof k_val, "%.9g", val_loss);
        snprintf(k_best, sizeof k_best, "%.9g", best);
        snprintf(k_bepoch, sizeof k_bepoch, "%d", best_epoch);
        snprintf(k_step, sizeof k_step, "%ld", global_step);
        snprintf(k_seed, sizeof k_seed, "%llu", (unsigned long long)c->seed);
        /* The log row goes out before last.safetensors: a run killed between the two resumes from
         * the previous epoch and rewrites the row (log_restore keeps rows up to that epoch); in the
         * other order the row of the epoch would be lost. */
        double es = stfpm_now() - t0;
        char row[512];
        snprintf(row, sizeof row, "%d,%.9g,%.9g,%.9g,%.3f,%.3f,%d\n", epoch, loss_sum / batches, val_loss, val_map,
                 es, (tr.n + va.n) / (es > 1e-9 ? es : 1e-9), is_best);
        size_t log_len = log.len;
        s = stfpm_strbuf_puts(&log, row);
        if (s == STFPM_OK) s = stfpm_write_file_atomic(path_log, log.text, log.len);
        if (s != STFPM_OK) goto done;
        {
            char k_resume[512];
            resume_key(c, k_resume, sizeof k_resume);
            const char *keys[] = {"epoch", "val_loss", "best_val", "best_epoch", "global_step", "seed", "teacher_file",
                                  "config", "resume_key"};
            const char *vals[] = {k_epoch, k_val, k_best, k_bepoch, k_step, k_seed, teacher, config_json, k_resume};
            s = stfpm_model_save(ctx, &m, path_last, 1, keys, vals, 9);
            if (s != STFPM_OK) {
                /* keep the log consistent with last.safetensors (best effort: the disk may be full) */
                char msg[4096];
                snprintf(msg, sizeof msg, "%s", stfpm_last_error());
                stfpm_strbuf_truncate(&log, log_len);
                if (stfpm_write_file_atomic(path_log, log.text, log.len) != STFPM_OK) stfpm_set_error(s, "%s", msg);
                goto done;
            }
        }
        pg.phase = STFPM_PHASE_EPOCH_END;
        pg.epoch = epoch;
        pg.loss = (float)(loss_sum / batches);
        pg.val_loss = val_loss;
        pg.val_map = val_map;
        pg.is_best = is_best;
        pg.epoch_s = es;
        if (fn) fn(user, &pg);
    }
    pg.phase = STFPM_PHASE_DONE;
    pg.val_loss = best;
    pg.epoch = best_epoch;
    if (fn) fn(user, &pg);
done:
    stfpm_teacher_cache_free(ctx, &tc_train);
    stfpm_teacher_cache_free(ctx, &tc_val);
    stfpm_weights_free(&ck);
    stfpm_strbuf_free(&log);
    free(perm);
    free(batch_buf);
    free(tr.chw);
    free(va.chw);
    if (m.teacher) stfpm_model_free(ctx, &m);
    stfpm_split_free(&sp);
    stfpm_dataset_free(&ds);
    return s;
}
