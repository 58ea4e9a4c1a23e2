/* Training (SPEC sections 3-4), in the order stfpm_train runs it:
 *   1. the run folder: RUN/ is created once the data set was found, locked for this process
 *      (RUN/.lock) and cleaned of what killed runs left; --resume reads RUN/last.safetensors
 *      (once) and checks it fits this run;
 *   2. data: the seeded 80/20 split of the training images, every image preprocessed once;
 *   3. models: the frozen teacher and the student (Kaiming init, or the checkpoint's state);
 *   4. the teacher cache: the teacher's features of every image, computed once when they fit;
 *   5. epochs: SGD over shuffled batches, the validation loss, the checkpoint rule (best /
 *      last checkpoints), the CSV log. */
#include "stfpm/pipeline.h"
#include "stfpm/image.h"
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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
    c->teacher_cache = STFPM_TEACHER_CACHE_ON;
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
    stfpm_backbone bb;
    if (c->backbone) return stfpm_wrap_error(stfpm_backbone_parse(c->backbone, &bb), "--backbone");
    return STFPM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* The run folder                                                                              */

typedef struct run_files {
    char last[4200], best[4200], log[4200], config[4200], report[4200];
} run_files;

static void run_files_make(const char *dir, run_files *f) {
    snprintf(f->last, sizeof f->last, "%s/last.safetensors", dir);
    snprintf(f->best, sizeof f->best, "%s/best.safetensors", dir);
    snprintf(f->log, sizeof f->log, "%s/train_log.csv", dir);
    snprintf(f->config, sizeof f->config, "%s/config.json", dir);
    snprintf(f->report, sizeof f->report, "%s/report.html", dir);
}

/* A new run needs a folder without a run in it; --resume needs the run's last checkpoint. */
static stfpm_status check_run_state(const stfpm_train_config *c, const run_files *f) {
    if (c->start == STFPM_TRAIN_NEW && stfpm_path_exists(f->last))
        return stfpm_set_error(STFPM_ERR_ARG, "%s already holds a training run (%s exists): pass --resume to "
                               "continue it, or choose another --out", c->out_dir, f->last);
    if (c->start == STFPM_TRAIN_RESUME && !stfpm_path_exists(f->last))
        return stfpm_set_error(STFPM_ERR_IO, "--resume: %s not found (nothing to resume in %s)", f->last, c->out_dir);
    return STFPM_OK;
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
    static const char *const ours[] = {"last.safetensors", "best.safetensors", "train_log.csv", "config.json",
                                       "report.html"};
    for (int i = 0; i < 5; i++) {
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

/* One writer per run folder: an exclusive flock on RUN/.lock, held until the run ends. The
 * kernel drops it when the process dies, so a crashed run never blocks the next one. The file
 * holds the holder's pid, for the message of a run that is refused. */
static stfpm_status lock_run_dir(const char *dir, int *fd_out) {
    char path[4200];
    snprintf(path, sizeof path, "%s/.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return stfpm_set_error(STFPM_ERR_IO, "cannot create the lock file %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == ENOSYS || e == ENOLCK || e == EOPNOTSUPP
#if defined(ENOTSUP) && ENOTSUP != EOPNOTSUPP
            || e == ENOTSUP
#endif
        ) {
            /* a file system without locks (NFS mounted nolock, Lustre without flock, some FUSE
             * file systems): run unprotected rather than not at all */
            *fd_out = fd;
            return STFPM_OK;
        }
        long pid = 0;
        /* the holder writes its pid right after taking the lock: give it a moment */
        for (int tries = 0; e == EWOULDBLOCK && pid <= 0 && tries < 50; tries++) {
            char text[32] = {0};
            if (pread(fd, text, sizeof text - 1, 0) > 0) pid = strtol(text, NULL, 10);
            if (pid <= 0) usleep(2000);
        }
        close(fd);
        if (e != EWOULDBLOCK) return stfpm_set_error(STFPM_ERR_IO, "cannot lock %s: %s", path, strerror(e));
        if (pid > 0)
            return stfpm_set_error(STFPM_ERR_IO, "%s is in use by another training process (pid %ld holds %s): "
                                   "wait for it to end, or choose another --out", dir, pid, path);
        return stfpm_set_error(STFPM_ERR_IO, "%s is in use by another training process (it holds %s): wait for "
                               "it to end, or choose another --out", dir, path);
    }
    char text[32];
    int n = snprintf(text, sizeof text, "%ld\n", (long)getpid());
    /* the new pid first, then the rest of an older, longer one cut off: a reader never sees an
     * empty file */
    int wrote = pwrite(fd, text, (size_t)n, 0) == n && ftruncate(fd, n) == 0;
    (void)wrote;   /* the pid only informs a refused run: this one goes on without it */
    *fd_out = fd;
    return STFPM_OK;
}

/* Create the run folder (only once the data set was found: no empty folder is left behind for
 * a typo in --data), take its lock before anything in it is written, check what it holds again
 * (another run may have written it meanwhile) and clean it of what killed runs left. */
static stfpm_status prepare_run_dir(const stfpm_train_config *c, const run_files *f, int *lock_fd) {
    STFPM_TRY(stfpm_mkdir_p(c->out_dir));
    STFPM_TRY(lock_run_dir(c->out_dir, lock_fd));
    STFPM_TRY(check_run_state(c, f));
    remove_stale_tmp(c->out_dir);
    return STFPM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* config.json, the resume key, the log                                                        */

static stfpm_status write_config(stfpm_ctx *ctx, const stfpm_train_config *c, stfpm_backbone bb, const char *path,
                                 const char *teacher, char *json, size_t json_len) {
    char layers[32], data[2048], out[2048], tea[2048], dev[300];
    const stfpm_device_info *d = stfpm_ctx_device(ctx);
    const stfpm_ctx_options *o = stfpm_ctx_get_options(ctx);
    char both[300];
    snprintf(both, sizeof both, "%s / %s", d->platform_name, d->device_name);
    stfpm_json_escape(both, dev, sizeof dev);
    stfpm_format_layers(c->layers, c->n_layers, layers, sizeof layers);
    stfpm_json_escape(c->data_dir, data, sizeof data);
    stfpm_json_escape(c->out_dir, out, sizeof out);
    stfpm_json_escape(teacher, tea, sizeof tea);
    int n = snprintf(json, json_len,
                     "{\n  \"data\": \"%s\",\n  \"out\": \"%s\",\n  \"backbone\": \"%s\",\n  \"teacher\": \"%s\",\n"
                     "  \"epochs\": %d,\n"
                     "  \"batch\": %d,\n  \"size\": %d,\n  \"lr\": %.9g,\n  \"momentum\": %.9g,\n"
                     "  \"weight_decay\": %.9g,\n  \"seed\": %llu,\n  \"layers\": [%s],\n  \"val_split\": %.9g,\n"
                     "  \"train_fraction\": %.9g,\n  \"checkpoint_by\": \"%s\",\n  \"device\": \"%s\",\n"
                     "  \"kernels\": \"%s\"\n}\n",
                     data, out, stfpm_backbone_name(bb), tea, c->epochs, c->batch, c->size, c->lr, c->momentum, c->weight_decay,
                     (unsigned long long)c->seed, layers, c->val_split, c->train_fraction,
                     c->checkpoint_by == STFPM_SELECT_BY_VAL_MAP ? "val_anomaly_map" : "val_loss", dev,
                     stfpm_kernels_name(o->kernels));
    return stfpm_write_file_atomic(path, json, (size_t)n);
}

/* The options a resumed run must share with the run it continues (--epochs and --lr may change,
 * e.g. to extend a run or lower the learning rate after a divergence). */
static void resume_key(const stfpm_train_config *c, char *out, size_t n) {
    snprintf(out, n, "--batch %d --momentum %.9g --weight-decay %.9g --val-split %.9g --train-fraction %.9g "
             "--checkpoint-by %s", c->batch, c->momentum, c->weight_decay, c->val_split, c->train_fraction,
             c->checkpoint_by == STFPM_SELECT_BY_VAL_MAP ? "map" : "loss");
}

static const char *LOG_HEADER = "epoch,train_loss,val_loss,val_map_mean,seconds,images_per_s,best\n";

/* The header, then (resume) the rows of the existing log whose epoch <= upto. */
static stfpm_status log_start(stfpm_strbuf *log, const char *path, int upto) {
    STFPM_TRY(stfpm_strbuf_puts(log, LOG_HEADER));
    char *text = NULL;
    if (upto < 1 || stfpm_read_file(path, &text, NULL) != STFPM_OK) return STFPM_OK;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int e = atoi(line);
        if (e >= 1 && e <= upto) stfpm_strbuf_printf(log, "%s\n", line);
    }
    free(text);
    return log->oom ? stfpm_set_error(STFPM_ERR_OOM, "out of host memory reading %s", path) : STFPM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Resume state                                                                                */

/* Where the epoch loop stands: what last.safetensors records and --resume restores. */
typedef struct train_state {
    int start_epoch;    /* the first epoch to train (1-based) */
    int best_epoch;     /* epoch of best.safetensors (0: none yet) */
    float best;         /* its validation value (loss or mean map) */
    long global_step;   /* SGD steps done */
    float threshold;    /* default threshold stored with the best checkpoint */
} train_state;

/* --resume: read last.safetensors (once; *ck keeps its tensors for build_models) and check that
 * it is a checkpoint of this configuration. */
static stfpm_status resume_read(const stfpm_train_config *c, const char *path, stfpm_weights *ck, train_state *st,
                                stfpm_backbone *bb) {
    stfpm_status s = stfpm_weights_load(path, ck);
    if (s != STFPM_OK) return stfpm_wrap_error(s, "--resume");
    const char *sz = stfpm_weights_meta(ck, "size"), *ly = stfpm_weights_meta(ck, "layers");
    const char *sd = stfpm_weights_meta(ck, "seed"), *rk = stfpm_weights_meta(ck, "resume_key");
    const char *ep = stfpm_weights_meta(ck, "epoch"), *bv = stfpm_weights_meta(ck, "best_val");
    const char *be = stfpm_weights_meta(ck, "best_epoch"), *gs = stfpm_weights_meta(ck, "global_step");
    char want_layers[32], want_key[512];
    stfpm_format_layers(c->layers, c->n_layers, want_layers, sizeof want_layers);
    resume_key(c, want_key, sizeof want_key);
    if (sz && ly && sd && (atoi(sz) != c->size || strcmp(ly, want_layers) != 0 || strtoull(sd, NULL, 10) != c->seed))
        s = stfpm_set_error(STFPM_ERR_ARG, "%s was trained with --size %s --layers %s --seed %s, but this run asks "
                            "for --size %d --layers %s --seed %llu: use the same values to resume",
                            path, sz, ly, sd, c->size, want_layers, (unsigned long long)c->seed);
    else if (rk && strcmp(rk, want_key) != 0)
        s = stfpm_set_error(STFPM_ERR_ARG, "%s was trained with %s, but this run asks for %s: resume with the "
                            "same options (only --epochs and --lr may change)", path, rk, want_key);
    else if (!sz || !ly || !ep || !bv || !be || !gs || !sd)
        s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: not a resumable stfpm-cl checkpoint (metadata missing)", path);
    stfpm_backbone want = STFPM_RESNET18;
    if (s == STFPM_OK) s = stfpm_model_file_backbone(ck, path, bb);
    if (s == STFPM_OK && c->backbone && stfpm_backbone_parse(c->backbone, &want) == STFPM_OK && want != *bb)
        s = stfpm_set_error(STFPM_ERR_ARG, "%s was trained with --backbone %s, but this run asks for --backbone %s: "
                            "resume with the same backbone (or without --backbone)", path, stfpm_backbone_name(*bb),
                            c->backbone);
    if (s != STFPM_OK) {
        stfpm_weights_free(ck);
        return s;
    }
    st->start_epoch = atoi(ep) + 1;
    st->best = strtof(bv, NULL);
    st->best_epoch = atoi(be);
    st->global_step = atol(gs);
    const char *thr = stfpm_weights_meta(ck, "threshold");
    st->threshold = thr ? strtof(thr, NULL) : NAN;
    return STFPM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Data                                                                                        */

typedef struct image_set {
    float *chw;        /* all images, preprocessed */
    int n;
} image_set;

/* Every image of the split preprocessed once, and the host buffers of the epoch loop (one
 * batch, the shuffle). */
static stfpm_status load_images(const stfpm_train_config *c, const stfpm_dataset *ds, const stfpm_split *sp,
                                image_set *tr, image_set *va, float **batch_buf, int **perm) {
    size_t per = (size_t)3 * c->size * c->size;
    tr->n = sp->n_train;
    va->n = sp->n_val;
    tr->chw = malloc(per * sizeof(float) * (size_t)(tr->n ? tr->n : 1));
    va->chw = malloc(per * sizeof(float) * (size_t)(va->n ? va->n : 1));
    *batch_buf = malloc(per * sizeof(float) * (size_t)c->batch);
    *perm = malloc(sizeof(int) * (size_t)(tr->n ? tr->n : 1));
    if (!*batch_buf)
        return stfpm_set_error(STFPM_ERR_OOM, "out of host memory for a batch of %d images of %dx%d (%.1f MiB); "
                               "try a smaller --batch or --size", c->batch, c->size, c->size,
                               per * sizeof(float) * (double)c->batch / 1048576.0);
    if (!tr->chw || !va->chw || !*perm)
        return stfpm_set_error(STFPM_ERR_OOM, "out of host memory holding %d preprocessed images of %dx%d",
                               tr->n + va->n, c->size, c->size);
    STFPM_TRY(stfpm_load_samples(ds->train, sp->train, tr->n, c->size, tr->chw, NULL, 0));
    if (va->n) STFPM_TRY(stfpm_load_samples(ds->train, sp->val, va->n, c->size, va->chw, NULL, 0));
    return STFPM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Models                                                                                      */

/* The frozen teacher: from its file, or on --resume the one the run started with, stored in the
 * checkpoint (not whatever the teacher file holds now). The student: Kaiming-initialised, or on
 * --resume the checkpoint's weights, BN statistics and SGD momentum. */
static stfpm_status build_models(stfpm_ctx *ctx, const stfpm_train_config *c, stfpm_backbone bb, const char *teacher,
                                 const stfpm_weights *ck, const char *ck_path, stfpm_model *m) {
    STFPM_TRY(stfpm_model_init_backbone(ctx, m, bb, c->size, c->layers, c->n_layers, STFPM_MODEL_TRAIN));
    if (ck) {
        STFPM_TRY(stfpm_resnet_load(ctx, m->teacher, ck, ck_path, "teacher."));
        STFPM_TRY(stfpm_resnet_load(ctx, m->student, ck, ck_path, "student."));
        STFPM_TRY(stfpm_resnet_load_momentum(ctx, m->student, ck, ck_path, "student."));
    } else {
        STFPM_TRY(stfpm_model_load_teacher(ctx, m, teacher));
        STFPM_TRY(stfpm_resnet_init_kaiming(ctx, m->student, c->seed));
    }
    return stfpm_model_reserve(ctx, m, c->batch);
}

/* The teacher is frozen and nothing is augmented: its features of every image never change, so
 * they are computed once and kept on the device when they fit in half its memory. When they do
 * not, both caches stay empty and the teacher runs per batch. */
static stfpm_status build_teacher_cache(stfpm_ctx *ctx, stfpm_model *m, const image_set *tr, const image_set *va,
                                        int batch, stfpm_teacher_cache *tc_train, stfpm_teacher_cache *tc_val,
                                        stfpm_progress *pg) {
    uint64_t limit = stfpm_ctx_device(ctx)->global_mem / 2;
    stfpm_status s = stfpm_teacher_cache_build(ctx, m, tr->chw, tr->n, batch, limit, tc_train);
    if (s == STFPM_OK)
        s = stfpm_teacher_cache_build(ctx, m, va->chw, va->n, batch, limit - stfpm_teacher_cache_bytes(m, tr->n), tc_val);
    if (s == STFPM_OK) {
        pg->teacher_cached = 1;
        pg->cache_mib = stfpm_teacher_cache_bytes(m, tr->n + va->n) / 1048576.0;
    } else if (s == STFPM_ERR_OOM) {
        stfpm_teacher_cache_free(ctx, tc_train);
        stfpm_teacher_cache_free(ctx, tc_val);
        s = STFPM_OK;
    }
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* The epoch loop                                                                              */

typedef struct train_run {
    const stfpm_train_config *c;
    stfpm_backbone bb;
    run_files f;
    char teacher[4096];
    stfpm_dataset ds;
    stfpm_split sp;
    image_set tr, va;
    float *batch_buf;
    int *perm;
    stfpm_model m;
    stfpm_teacher_cache tc_train, tc_val;
    stfpm_weights ck;          /* last.safetensors on --resume, until the models are built */
    train_state st;
    stfpm_strbuf log;
    char config_json[8192];    /* config.json, also stored in every checkpoint */
    double t_start;            /* for images / s */
    long images_done;
    stfpm_progress pg;
    stfpm_progress_fn fn;
    void *user;
    int lock_fd;               /* RUN/.lock, -1 before it is taken */
    float *val_scores;         /* the image score of each validation image, this epoch (va.n) */
} train_run;

static void report(train_run *r, stfpm_phase phase) {
    r->pg.phase = phase;
    if (r->fn) r->fn(r->user, &r->pg);
}

/* Shuffle of epoch e (1-based): depends only on seed and e, so a resumed run sees the same order. */
static void epoch_order(int n, uint64_t seed, int epoch, int *perm) {
    stfpm_permutation(n, seed * 0x9E3779B97F4A7C15ULL + (uint64_t)epoch * 0xD1B54A32D192ED03ULL + 1, perm);
}

/* One pass of SGD over the shuffled training images (SPEC section 3); *mean_loss receives the
 * mean batch loss. */
static stfpm_status train_epoch(stfpm_ctx *ctx, train_run *r, int epoch, double *mean_loss) {
    const stfpm_train_config *c = r->c;
    size_t per = (size_t)3 * c->size * c->size;
    int n = r->tr.n, batches = (n + c->batch - 1) / c->batch;
    epoch_order(n, c->seed, epoch, r->perm);
    double loss_sum = 0;
    for (int b = 0; b < batches; b++) {
        int i0 = b * c->batch, nb = n - i0 < c->batch ? n - i0 : c->batch;
        for (int k = 0; k < nb; k++) memcpy(r->batch_buf + per * k, r->tr.chw + per * r->perm[i0 + k], per * sizeof(float));
        const stfpm_sgd_step_kind first = r->st.global_step == 0 ? STFPM_SGD_FIRST_STEP : STFPM_SGD_CONTINUE;
        float loss = 0;
        const stfpm_teacher_cache *tc = r->tc_train.n ? &r->tc_train : NULL;
        stfpm_status s = stfpm_model_train_step(ctx, &r->m, r->batch_buf, tc, r->perm + i0, nb, c->lr, c->momentum,
                                                c->weight_decay, first, &loss);
        if (s == STFPM_ERR_OOM && r->tc_train.n && b == 0 && epoch == r->st.start_epoch) {
            /* The cache fit, but then the student's activations did not: the network allocates
             * them before running anything, so drop the cache and run the teacher per batch. */
            stfpm_teacher_cache_free(ctx, &r->tc_train);
            stfpm_teacher_cache_free(ctx, &r->tc_val);
            r->pg.teacher_cached = 0;
            report(r, STFPM_PHASE_CACHE);
            s = stfpm_model_train_step(ctx, &r->m, r->batch_buf, NULL, NULL, nb, c->lr, c->momentum, c->weight_decay,
                                       first, &loss);
        }
        if (s != STFPM_OK) return stfpm_wrap_error(s, "epoch %d, batch %d/%d", epoch, b + 1, batches);
        if (!isfinite(loss)) {
            if (stfpm_path_exists(r->f.last))
                return stfpm_set_error(STFPM_ERR_NAN, "training loss became %s at epoch %d, batch %d/%d; stopped. "
                                       "The last good checkpoints (%s, %s) are kept; try a lower --lr",
                                       isnan(loss) ? "NaN" : "Inf", epoch, b + 1, batches, r->f.last, r->f.best);
            return stfpm_set_error(STFPM_ERR_NAN, "training loss became %s at epoch %d, batch %d/%d; stopped "
                                   "before any checkpoint was written; try a lower --lr",
                                   isnan(loss) ? "NaN" : "Inf", epoch, b + 1, batches);
        }
        r->st.global_step++;
        r->images_done += nb;
        loss_sum += loss;
        double el = stfpm_now() - r->t_start;
        r->pg.epoch = epoch;
        r->pg.batch = b + 1;
        r->pg.batches = batches;
        r->pg.loss = (float)(loss_sum / (b + 1));
        r->pg.images_per_s = r->images_done / (el > 1e-9 ? el : 1e-9);
        double remaining_imgs = (double)(c->epochs - epoch) * (n + r->va.n) + (n - i0 - nb) + r->va.n;
        r->pg.eta_s = remaining_imgs / (r->pg.images_per_s > 0 ? r->pg.images_per_s : 1);
        report(r, STFPM_PHASE_TRAIN);
    }
    *mean_loss = loss_sum / batches;
    return STFPM_OK;
}

/* all_scores (may be NULL) receives the image score of every validation image. */
static stfpm_status validate(stfpm_ctx *ctx, stfpm_model *m, const image_set *val, const stfpm_teacher_cache *tc,
                             int batch, int want_map, float *val_loss, float *val_map, float *max_score,
                             float *all_scores) {
    size_t per = (size_t)3 * m->size * m->size;
    double loss_sum = 0, map_sum = 0;
    float mx = -INFINITY;
    int *idx = malloc(sizeof(int) * (size_t)batch);
    float *scores = malloc(sizeof(float) * (size_t)batch);
    float *maps = want_map ? malloc(sizeof(float) * (size_t)batch * m->size * m->size) : NULL;
    if (!idx || !scores || (want_map && !maps)) {
        free(idx);
        free(scores);
        free(maps);
        return stfpm_set_error(STFPM_ERR_OOM, "out of host memory");
    }
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
        if (all_scores) memcpy(all_scores + i, scores, sizeof(float) * (size_t)nb);
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

/* SPEC section 4 on the held-out images (student in eval mode): their mean loss, their mean
 * anomaly map (--checkpoint-by map) and the highest image score (the default threshold). */
static stfpm_status validate_epoch(stfpm_ctx *ctx, train_run *r, int epoch, float *val_loss, float *val_map,
                                   float *max_score) {
    if (!r->val_scores && !(r->val_scores = malloc(sizeof(float) * (size_t)r->va.n)))
        return stfpm_set_error(STFPM_ERR_OOM, "out of host memory for %d validation scores", r->va.n);
    stfpm_status s = validate(ctx, &r->m, &r->va, &r->tc_val, r->c->batch, r->c->checkpoint_by == STFPM_SELECT_BY_VAL_MAP, val_loss, val_map,
                              max_score, r->val_scores);
    if (s != STFPM_OK) return stfpm_wrap_error(s, "validation after epoch %d", epoch);
    if (!isfinite(*val_loss))
        return stfpm_set_error(STFPM_ERR_NAN, "validation loss became %s after epoch %d; stopped. %s; try a "
                               "lower --lr", isnan(*val_loss) ? "NaN" : "Inf", epoch,
                               stfpm_path_exists(r->f.last) ? "The last good checkpoints are kept"
                                                            : "No checkpoint was written");
    return STFPM_OK;
}

static int cmp_float_asc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The validation scores as best.safetensors stores them (metadata "val_scores", for predict's
 * quantile threshold policy): ascending, comma-separated, each exact as a float ("%.9g"). */
static stfpm_status format_val_scores(const float *scores, int n, stfpm_strbuf *out) {
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!v) return stfpm_set_error(STFPM_ERR_OOM, "out of host memory for %d validation scores", n);
    memcpy(v, scores, sizeof(float) * (size_t)n);
    qsort(v, (size_t)n, sizeof *v, cmp_float_asc);
    stfpm_status s = STFPM_OK;
    for (int i = 0; i < n && s == STFPM_OK; i++) s = stfpm_strbuf_printf(out, i ? ",%.9g" : "%.9g", v[i]);
    free(v);
    return s;
}

/* The checkpoint rule: best.safetensors when the validation value is the lowest so far (every
 * epoch without validation images), then the log row and last.safetensors. */
static stfpm_status write_checkpoints(stfpm_ctx *ctx, train_run *r, int epoch, double train_loss, float val_loss,
                                      float val_map, float max_score, double t0) {
    const stfpm_train_config *c = r->c;
    train_state *st = &r->st;
    float metric = c->checkpoint_by == STFPM_SELECT_BY_VAL_MAP ? val_map : val_loss;
    int is_best = r->va.n == 0 || metric < st->best;
    char k_epoch[32], k_val[64], k_best[64], k_bepoch[32], k_step[32], k_seed[32], k_map[64], k_resume[512];
    snprintf(k_epoch, sizeof k_epoch, "%d", epoch);
    snprintf(k_val, sizeof k_val, "%.9g", val_loss);
    if (is_best) {
        st->best = r->va.n ? metric : st->best;
        st->best_epoch = epoch;
        r->m.threshold = max_score;
        snprintf(k_map, sizeof k_map, "%.9g", val_map);
        stfpm_strbuf k_scores = {0};
        stfpm_status s = r->va.n ? format_val_scores(r->val_scores, r->va.n, &k_scores) : STFPM_OK;
        const char *keys[] = {"epoch", "val_loss", "val_map_mean", "teacher_file", "config", "val_scores"};
        const char *vals[] = {k_epoch, k_val, k_map, r->teacher, r->config_json, k_scores.text};
        if (s == STFPM_OK)
            s = stfpm_model_save(ctx, &r->m, r->f.best, STFPM_SAVE_WEIGHTS, keys, vals, r->va.n ? 6 : 5);
        stfpm_strbuf_free(&k_scores);
        STFPM_TRY(s);
    }
    /* The log row goes out before last.safetensors: a run killed between the two resumes from
     * the previous epoch and rewrites the row (log_start keeps rows up to that epoch); in the
     * other order the row of the epoch would be lost. */
    double es = stfpm_now() - t0;
    size_t log_len = r->log.len;
    STFPM_TRY(stfpm_strbuf_printf(&r->log, "%d,%.9g,%.9g,%.9g,%.3f,%.3f,%d\n", epoch, train_loss, val_loss, val_map,
                                  es, (r->tr.n + r->va.n) / (es > 1e-9 ? es : 1e-9), is_best));
    STFPM_TRY(stfpm_write_file_atomic(r->f.log, r->log.text, r->log.len));
    snprintf(k_best, sizeof k_best, "%.9g", st->best);
    snprintf(k_bepoch, sizeof k_bepoch, "%d", st->best_epoch);
    snprintf(k_step, sizeof k_step, "%ld", st->global_step);
    snprintf(k_seed, sizeof k_seed, "%llu", (unsigned long long)c->seed);
    resume_key(c, k_resume, sizeof k_resume);
    const char *keys[] = {"epoch", "val_loss", "best_val", "best_epoch", "global_step", "seed", "teacher_file",
                          "config", "resume_key"};
    const char *vals[] = {k_epoch, k_val, k_best, k_bepoch, k_step, k_seed, r->teacher, r->config_json, k_resume};
    stfpm_status s = stfpm_model_save(ctx, &r->m, r->f.last, STFPM_SAVE_WITH_MOMENTUM, keys, vals, 9);
    if (s != STFPM_OK) {
        /* keep the log consistent with last.safetensors (best effort: the disk may be full) */
        char msg[4096];
        snprintf(msg, sizeof msg, "%s", stfpm_last_error());
        stfpm_strbuf_truncate(&r->log, log_len);
        if (stfpm_write_file_atomic(r->f.log, r->log.text, r->log.len) != STFPM_OK) stfpm_set_error(s, "%s", msg);
        return s;
    }
    r->pg.epoch = epoch;
    r->pg.loss = (float)train_loss;
    r->pg.val_loss = val_loss;
    r->pg.val_map = val_map;
    r->pg.is_best = is_best;
    r->pg.epoch_s = es;
    report(r, STFPM_PHASE_EPOCH_END);
    return STFPM_OK;
}

/* ------------------------------------------------------------------------------------------ */

static void train_run_free(stfpm_ctx *ctx, train_run *r) {
    stfpm_teacher_cache_free(ctx, &r->tc_train);
    stfpm_teacher_cache_free(ctx, &r->tc_val);
    stfpm_weights_free(&r->ck);
    stfpm_strbuf_free(&r->log);
    free(r->perm);
    free(r->val_scores);
    free(r->batch_buf);
    free(r->tr.chw);
    free(r->va.chw);
    if (r->m.teacher) stfpm_model_free(ctx, &r->m);
    stfpm_split_free(&r->sp);
    stfpm_dataset_free(&r->ds);
    if (r->lock_fd >= 0) close(r->lock_fd);   /* releases the lock */
}

static stfpm_status train(stfpm_ctx *ctx, train_run *r) {
    const stfpm_train_config *c = r->c;
    /* 1. the run folder and what it holds */
    run_files_make(c->out_dir, &r->f);
    STFPM_TRY(check_run_state(c, &r->f));
    r->bb = STFPM_RESNET18;
    if (c->backbone) STFPM_TRY(stfpm_backbone_parse(c->backbone, &r->bb));
    /* a resumed run's backbone is the checkpoint's: its teacher file is looked up once that is read */
    if (c->start != STFPM_TRAIN_RESUME) STFPM_TRY(stfpm_find_teacher(r->bb, c->teacher, r->teacher, sizeof r->teacher));
    STFPM_TRY(stfpm_dataset_open(c->data_dir, STFPM_DATASET_TRAIN, &r->ds));
    STFPM_TRY(prepare_run_dir(c, &r->f, &r->lock_fd));
    r->st = (train_state){.start_epoch = 1, .best = INFINITY, .threshold = NAN};
    if (c->start == STFPM_TRAIN_RESUME) {
        STFPM_TRY(resume_read(c, r->f.last, &r->ck, &r->st, &r->bb));
        STFPM_TRY(stfpm_find_teacher(r->bb, c->teacher, r->teacher, sizeof r->teacher));
    }

    /* 2. data: the seeded 80/20 split (SPEC section 4), every image preprocessed once */
    STFPM_TRY(stfpm_split_make(r->ds.n_train, c->seed, c->val_split, c->train_fraction, &r->sp));
    r->pg = (stfpm_progress){.epochs = c->epochs, .n_train = r->sp.n_train, .n_val = r->sp.n_val};
    report(r, STFPM_PHASE_LOAD);
    STFPM_TRY(load_images(c, &r->ds, &r->sp, &r->tr, &r->va, &r->batch_buf, &r->perm));

    /* 3. teacher and student */
    STFPM_TRY(build_models(ctx, c, r->bb, r->teacher, c->start == STFPM_TRAIN_RESUME ? &r->ck : NULL, r->f.last, &r->m));
    r->m.threshold = r->st.threshold;
    stfpm_weights_free(&r->ck);

    /* 4. the teacher cache */
    if (c->teacher_cache == STFPM_TEACHER_CACHE_ON) {
        STFPM_TRY(build_teacher_cache(ctx, &r->m, &r->tr, &r->va, c->batch, &r->tc_train, &r->tc_val, &r->pg));
        report(r, STFPM_PHASE_CACHE);
    }

    /* 5. epochs: train, validate, keep the checkpoints */
    STFPM_TRY(log_start(&r->log, r->f.log, r->st.start_epoch - 1));
    STFPM_TRY(write_config(ctx, c, r->bb, r->f.config, r->teacher, r->config_json, sizeof r->config_json));
    r->t_start = stfpm_now();
    for (int epoch = r->st.start_epoch; epoch <= c->epochs; epoch++) {
        double t0 = stfpm_now(), train_loss = 0;
        float val_loss = NAN, val_map = NAN, max_score = NAN;   /* NaN: no validation images */
        STFPM_TRY(train_epoch(ctx, r, epoch, &train_loss));
        if (r->va.n) STFPM_TRY(validate_epoch(ctx, r, epoch, &val_loss, &val_map, &max_score));
        STFPM_TRY(write_checkpoints(ctx, r, epoch, train_loss, val_loss, val_map, max_score, t0));
        /* the loss curves so far, RUN/report.html */
        const stfpm_train_report rep = {.run_dir = c->out_dir, .log_csv = r->log.text, .epochs = c->epochs,
                                        .best_epoch = r->st.best_epoch, .checkpoint_by = c->checkpoint_by};
        STFPM_TRY(stfpm_report_write_train(r->f.report, &rep));
    }
    r->pg.val_loss = r->st.best;
    r->pg.epoch = r->st.best_epoch;
    report(r, STFPM_PHASE_DONE);
    return STFPM_OK;
}

stfpm_status stfpm_train(stfpm_ctx *ctx, const stfpm_train_config *c, stfpm_progress_fn fn, void *user) {
    STFPM_TRY(stfpm_train_config_check(c));
    train_run *r = calloc(1, sizeof *r);
    if (!r) return stfpm_set_error(STFPM_ERR_OOM, "out of host memory");
    r->c = c;
    r->fn = fn;
    r->user = user;
    r->lock_fd = -1;
    stfpm_status s = train(ctx, r);
    train_run_free(ctx, r);
    free(r);
    return s;
}
