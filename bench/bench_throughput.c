/* End-to-end throughput of STFPM (the stfpm-cl side of the PyTorch comparison, see
 * bench/README.md and bench/compare.py; bench/reference/stfpm_torch.py is the PyTorch side and
 * prints the same JSON keys).
 *
 *   bench_throughput [--size 256] [--batch 32] [--infer-batch N] [--train-steps K]
 *                    [--infer-batches K] [--latency-reps K] [--teacher FILE]
 *                    [--no-teacher-cache] [--phase all|train|infer] [--device SEL] [--json OUT]
 *
 * Measured after one warm-up call per mode (kernel builds / program-cache loads, buffer
 * allocation), the wall time of a warm-up is reported separately:
 *   training   images/s of full SGD steps (lr 0.4, momentum 0.9, wd 1e-4) on --batch images:
 *              - cached: teacher features gathered from a teacher cache built over the batch's
 *                images (what `stfpm train` does by default; the build time is reported apart,
 *                the trainer pays it once for 100 epochs), student train forward, loss (read
 *                back each step), backward, SGD;
 *              - uncached (always measured): teacher forward every step instead of the cache.
 *   inference  images/s at --infer-batch (default: --batch): upload, teacher + student eval
 *              forward, anomaly map (S x S) and score, maps and scores read back to host.
 *   latency    batch 1, host float tensor in -> score on the host out, median and min of reps.
 *   memory     peak host RSS of the process (getrusage ru_maxrss) and peak device memory
 *              allocated by stfpm (stfpm_ctx_mem_peak; CLBlast's internal temporaries are not
 *              counted). With --phase all every phase gets its own OpenCL context, so the
 *              device peaks are per phase; the RSS peak is the whole process (run one phase per
 *              process, as compare.py does, for a per-phase RSS).
 * Weights are random (kaiming, seeds 1 and 2) unless --teacher is given: speed does not depend
 * on the values. Input images are a fixed pseudo-random pattern in [-1, 1).
 * One line of JSON goes to stdout (and to --json OUT). Progress goes to stderr. */
#include "stfpm/model.h"
#include "runtime.h"
#include "fsutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

typedef struct opts {
    int size, batch, infer_batch, train_steps, infer_batches, latency_reps, teacher_cache;
    const char *teacher, *json, *phase, *device;
    stfpm_backbone backbone;
} opts;

typedef struct results {
    char device[300];
    double warmup_train_s, warmup_infer_s;
    double train_uncached_step_s, train_cached_step_s, cache_build_s;
    double train_loss_first, train_loss_last;
    double infer_batch_s, latency_med_ms, latency_min_ms;
    double dev_peak_train, dev_peak_infer;
    int did_train, did_infer;
} results;

#define LR 0.4f
#define MOMENTUM 0.9f
#define WD 1e-4f

static void usage(void) {
    fprintf(stderr, "usage: bench_throughput [--size 256] [--batch 32] [--infer-batch N] [--train-steps K]\n"
                    "       [--infer-batches K] [--latency-reps K] [--teacher FILE] [--no-teacher-cache]\n"
                    "       [--phase all|train|infer] [--device SEL] [--json OUT]\n"
                    "       [--backbone resnet18|resnet34|resnet50|wide_resnet50_2]\n");
}

static float *make_images(int n, int size, unsigned salt) {
    size_t cnt = (size_t)n * 3 * size * size;
    float *x = malloc(sizeof(float) * (cnt ? cnt : 1));
    if (!x) return NULL;
    for (size_t i = 0; i < cnt; i++)
        x[i] = (float)(((i + salt) * 2654435761u) % 1000u) / 500.0f - 1.0f;
    return x;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static stfpm_status make_model(stfpm_ctx *ctx, stfpm_model *m, const opts *o, stfpm_model_mode mode) {
    int layers[3] = {1, 2, 3};
    STFPM_TRY(stfpm_model_init_backbone(ctx, m, o->backbone, o->size, layers, 3, mode));
    if (o->teacher) STFPM_TRY(stfpm_model_load_teacher(ctx, m, o->teacher));
    else STFPM_TRY(stfpm_resnet_init_kaiming(ctx, m->teacher, 1));
    return stfpm_resnet_init_kaiming(ctx, m->student, 2);
}

static stfpm_status new_ctx(const opts *o, stfpm_ctx **ctx, results *r) {
    stfpm_ctx_options co = {.device = o->device};
    STFPM_TRY(stfpm_ctx_create(ctx, &co));
    const stfpm_device_info *d = stfpm_ctx_device(*ctx);
    snprintf(r->device, sizeof r->device, "%s / %s (kernels %s)", d->platform_name, d->device_name,
             stfpm_kernels_name(stfpm_ctx_get_options(*ctx)->kernels));
    return STFPM_OK;
}

static stfpm_status phase_train(const opts *o, results *r) {
    stfpm_ctx *ctx = NULL;
    STFPM_TRY(new_ctx(o, &ctx, r));
    stfpm_model m = {0};
    stfpm_teacher_cache tc = {0};
    int n = o->batch, *idx = malloc(sizeof(int) * n);
    float *x = make_images(n, o->size, 0), loss = 0;
    stfpm_status s = (x && idx) ? make_model(ctx, &m, o, STFPM_MODEL_TRAIN) : stfpm_set_error(STFPM_ERR_OOM, "host images");
    for (int k = 0; idx && k < n; k++) idx[k] = k;

    /* teacher forward every step; the very first step (first_step = 1) is the warm-up */
    double t0 = stfpm_now();
    if (!s) s = stfpm_model_train_step(ctx, &m, x, NULL, NULL, n, LR, MOMENTUM, WD, STFPM_SGD_FIRST_STEP, &loss);
    if (!s) s = stfpm_finish(ctx);
    r->warmup_train_s = stfpm_now() - t0;
    r->train_loss_first = loss;
    fprintf(stderr, "bench_throughput: train warm-up %.2f s (loss %.4f)\n", r->warmup_train_s, loss);
    t0 = stfpm_now();
    for (int k = 0; k < o->train_steps && !s; k++)
        s = stfpm_model_train_step(ctx, &m, x, NULL, NULL, n, LR, MOMENTUM, WD, STFPM_SGD_CONTINUE, &loss);
    if (!s) s = stfpm_finish(ctx);
    r->train_uncached_step_s = (stfpm_now() - t0) / o->train_steps;
    if (!s) fprintf(stderr, "bench_throughput: train uncached %.3f s/step\n", r->train_uncached_step_s);

    if (!s && o->teacher_cache) {
        t0 = stfpm_now();
        s = stfpm_teacher_cache_build(ctx, &m, x, n, n, 0, &tc);
        r->cache_build_s = stfpm_now() - t0;
        /* warm-up of the cached path (the gather copies), not timed */
        if (!s) s = stfpm_model_train_step(ctx, &m, x, &tc, idx, n, LR, MOMENTUM, WD, STFPM_SGD_CONTINUE, &loss);
        if (!s) s = stfpm_finish(ctx);
        t0 = stfpm_now();
        for (int k = 0; k < o->train_steps && !s; k++)
            s = stfpm_model_train_step(ctx, &m, x, &tc, idx, n, LR, MOMENTUM, WD, STFPM_SGD_CONTINUE, &loss);
        if (!s) s = stfpm_finish(ctx);
        r->train_cached_step_s = (stfpm_now() - t0) / o->train_steps;
        if (!s) fprintf(stderr, "bench_throughput: train cached %.3f s/step\n", r->train_cached_step_s);
    }
    r->train_loss_last = loss;
    if (!s && !isfinite(loss)) s = stfpm_set_error(STFPM_ERR_NAN, "training loss became %g", loss);
    r->dev_peak_train = stfpm_ctx_mem_peak(ctx) / 1048576.0;
    r->did_train = 1;
    stfpm_teacher_cache_free(ctx, &tc);
    if (m.teacher) stfpm_model_free(ctx, &m);
    stfpm_ctx_free(ctx);
    free(x);
    free(idx);
    return s;
}

static stfpm_status phase_infer(const opts *o, results *r) {
    stfpm_ctx *ctx = NULL;
    STFPM_TRY(new_ctx(o, &ctx, r));
    stfpm_model m = {0};
    int n = o->infer_batch, S = o->size;
    float *x = make_images(n, S, 7);
    float *maps = malloc(sizeof(float) * (size_t)n * S * S), *scores = malloc(sizeof(float) * n);
    double *lat = malloc(sizeof(double) * (o->latency_reps > 0 ? o->latency_reps : 1));
    stfpm_status s = (x && maps && scores && lat) ? make_model(ctx, &m, o, STFPM_MODEL_INFER)
                                                  : stfpm_set_error(STFPM_ERR_OOM, "host buffers");
    /* warm-up at the inference batch (kernel builds), then timed batches */
    double t0 = stfpm_now();
    if (!s) s = stfpm_model_eval(ctx, &m, x, n, NULL, scores, maps);
    r->warmup_infer_s = stfpm_now() - t0;
    if (!s) fprintf(stderr, "bench_throughput: infer warm-up %.2f s\n", r->warmup_infer_s);
    t0 = stfpm_now();
    for (int k = 0; k < o->infer_batches && !s; k++) s = stfpm_model_eval(ctx, &m, x, n, NULL, scores, maps);
    if (!s) s = stfpm_finish(ctx);
    r->infer_batch_s = (stfpm_now() - t0) / o->infer_batches;
    if (!s) fprintf(stderr, "bench_throughput: infer %.3f s/batch of %d\n", r->infer_batch_s, n);
    if (!s && !isfinite(scores[0])) s = stfpm_set_error(STFPM_ERR_NAN, "anomaly score is %g", scores[0]);

    /* batch-1 latency: host tensor -> score on the host; two untimed calls first */
    float score = 0;
    for (int k = 0; k < 2 && !s; k++) s = stfpm_model_eval(ctx, &m, x, 1, NULL, &score, NULL);
    for (int k = 0; k < o->latency_reps && !s; k++) {
        t0 = stfpm_now();
        s = stfpm_model_eval(ctx, &m, x + (size_t)3 * S * S * (k % n), 1, NULL, &score, NULL);
        lat[k] = (stfpm_now() - t0) * 1000.0;
    }
    if (!s && o->latency_reps > 0) {
        qsort(lat, (size_t)o->latency_reps, sizeof *lat, cmp_double);
        int h = o->latency_reps / 2;
        r->latency_med_ms = o->latency_reps % 2 ? lat[h] : 0.5 * (lat[h - 1] + lat[h]);
        r->latency_min_ms = lat[0];
        fprintf(stderr, "bench_throughput: latency median %.1f ms\n", r->latency_med_ms);
    }
    r->dev_peak_infer = stfpm_ctx_mem_peak(ctx) / 1048576.0;
    r->did_infer = 1;
    if (m.teacher) stfpm_model_free(ctx, &m);
    stfpm_ctx_free(ctx);
    free(x);
    free(maps);
    free(scores);
    free(lat);
    return s;
}

/* JSON number or null */
static void jnum(char *buf, size_t len, size_t *k, const char *key, double v, int ok) {
    if (*k >= len) return;
    if (ok && isfinite(v)) *k += (size_t)snprintf(buf + *k, len - *k, ", \"%s\": %.6g", key, v);
    else *k += (size_t)snprintf(buf + *k, len - *k, ", \"%s\": null", key);
}

int main(int argc, char **argv) {
    opts o = {.size = 256, .batch = 32, .infer_batch = 0, .train_steps = 3, .infer_batches = 3,
              .latency_reps = 10, .teacher_cache = 1, .phase = "all"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--size") && more) o.size = atoi(argv[++i]);
        else if (!strcmp(a, "--batch") && more) o.batch = atoi(argv[++i]);
        else if (!strcmp(a, "--infer-batch") && more) o.infer_batch = atoi(argv[++i]);
        else if (!strcmp(a, "--train-steps") && more) o.train_steps = atoi(argv[++i]);
        else if (!strcmp(a, "--infer-batches") && more) o.infer_batches = atoi(argv[++i]);
        else if (!strcmp(a, "--latency-reps") && more) o.latency_reps = atoi(argv[++i]);
        else if (!strcmp(a, "--teacher") && more) o.teacher = argv[++i];
        else if (!strcmp(a, "--no-teacher-cache")) o.teacher_cache = 0;
        else if (!strcmp(a, "--phase") && more) o.phase = argv[++i];
        else if (!strcmp(a, "--device") && more) o.device = argv[++i];
        else if (!strcmp(a, "--backbone") && more) {
            if (stfpm_backbone_parse(argv[++i], &o.backbone) != STFPM_OK) {
                fprintf(stderr, "bench_throughput: %s\n", stfpm_last_error());
                return 2;
            }
        }
        else if (!strcmp(a, "--json") && more) o.json = argv[++i];
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        else { fprintf(stderr, "bench_throughput: unknown or incomplete option %s\n", a); usage(); return 2; }
    }
    if (!o.infer_batch) o.infer_batch = o.batch;
    int do_train = !strcmp(o.phase, "all") || !strcmp(o.phase, "train");
    int do_infer = !strcmp(o.phase, "all") || !strcmp(o.phase, "infer");
    if (!do_train && !do_infer) { fprintf(stderr, "bench_throughput: --phase must be all, train or infer\n"); return 2; }
    if (o.batch < 1 || o.infer_batch < 1 || o.train_steps < 1 || o.infer_batches < 1 || o.latency_reps < 0) {
        fprintf(stderr, "bench_throughput: batches and step counts must be >= 1 (latency reps >= 0)\n");
        return 2;
    }
    results r;
    memset(&r, 0, sizeof r);
    stfpm_status s = STFPM_OK;
    if (do_train) s = phase_train(&o, &r);
    if (!s && do_infer) s = phase_infer(&o, &r);
    if (s) { fprintf(stderr, "bench_throughput: error: %s\n", stfpm_last_error()); return 1; }

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mib = ru.ru_maxrss / 1024.0;  /* Linux: kilobytes */
    char dev[600], teacher[600], buf[4096];
    stfpm_json_escape(r.device, dev, sizeof dev);
    stfpm_json_escape(o.teacher ? o.teacher : "random-kaiming", teacher, sizeof teacher);
    size_t k = (size_t)snprintf(buf, sizeof buf,
                                "{\"impl\": \"stfpm-cl\", \"device\": \"%s\", \"backbone\": \"%s\", \"phase\": \"%s\", \"size\": %d, "
                                "\"train_batch\": %d, \"infer_batch\": %d, \"train_steps\": %d, "
                                "\"infer_batches\": %d, \"latency_reps\": %d, \"teacher\": \"%s\", "
                                "\"teacher_cache\": %s",
                                dev, stfpm_backbone_name(o.backbone), o.phase, o.size, o.batch, o.infer_batch, o.train_steps, o.infer_batches,
                                o.latency_reps, teacher, o.teacher_cache ? "true" : "false");
    int tc = r.did_train && o.teacher_cache;
    jnum(buf, sizeof buf, &k, "warmup_train_s", r.warmup_train_s, r.did_train);
    jnum(buf, sizeof buf, &k, "train_uncached_step_s", r.train_uncached_step_s, r.did_train);
    jnum(buf, sizeof buf, &k, "train_uncached_images_per_s", o.batch / r.train_uncached_step_s, r.did_train);
    jnum(buf, sizeof buf, &k, "teacher_cache_build_s", r.cache_build_s, tc);
    jnum(buf, sizeof buf, &k, "train_cached_step_s", r.train_cached_step_s, tc);
    jnum(buf, sizeof buf, &k, "train_cached_images_per_s", o.batch / r.train_cached_step_s, tc);
    jnum(buf, sizeof buf, &k, "train_loss_first", r.train_loss_first, r.did_train);
    jnum(buf, sizeof buf, &k, "train_loss_last", r.train_loss_last, r.did_train);
    jnum(buf, sizeof buf, &k, "warmup_infer_s", r.warmup_infer_s, r.did_infer);
    jnum(buf, sizeof buf, &k, "infer_batch_s", r.infer_batch_s, r.did_infer);
    jnum(buf, sizeof buf, &k, "infer_images_per_s", o.infer_batch / r.infer_batch_s, r.did_infer);
    jnum(buf, sizeof buf, &k, "latency_ms_median", r.latency_med_ms, r.did_infer && o.latency_reps > 0);
    jnum(buf, sizeof buf, &k, "latency_ms_min", r.latency_min_ms, r.did_infer && o.latency_reps > 0);
    jnum(buf, sizeof buf, &k, "peak_rss_mib", rss_mib, 1);
    jnum(buf, sizeof buf, &k, "peak_device_train_mib", r.dev_peak_train, r.did_train);
    jnum(buf, sizeof buf, &k, "peak_device_infer_mib", r.dev_peak_infer, r.did_infer);
    if (k < sizeof buf) snprintf(buf + k, sizeof buf - k, "}");
    printf("%s\n", buf);
    fflush(stdout);
    if (o.json) {
        FILE *f = fopen(o.json, "w");
        if (!f || fprintf(f, "%s\n", buf) < 0 || fclose(f) != 0) {
            fprintf(stderr, "bench_throughput: cannot write %s\n", o.json);
            return 1;
        }
    }
    return 0;
}
