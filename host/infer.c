/* Scoring images with a trained model: test (SPEC sections 5-6: anomaly maps of the test split,
 * image / pixel metrics, CSV, JSON, heatmaps) and predict (scores, verdicts and heatmaps of any
 * images). Both go through one batch loop (score_batches): decoding on the loader's threads,
 * the next batch decoded while the device scores the current one, heatmaps and scales.csv. */
#include "stfpm/pipeline.h"
#include "stfpm/image.h"
#include "stfpm/metrics.h"
#include "fsutil.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------------------------------ */
/* the batch loop shared by test and predict */

/* Decoding the next batch on a helper thread while the device scores the current one. */
typedef struct {
    const stfpm_sample *samples;
    int i0, nb, S;
    float *chw;
    uint8_t *masks;
    stfpm_status status;
    char msg[2048];
} prefetch_job;

static void *prefetch_run(void *arg) {
    prefetch_job *j = arg;
    int *idx = malloc(sizeof(int) * (size_t)(j->nb > 0 ? j->nb : 1));
    if (!idx) {
        j->status = STFPM_ERR_OOM;
        snprintf(j->msg, sizeof j->msg, "out of host memory");
        return NULL;
    }
    for (int k = 0; k < j->nb; k++) idx[k] = j->i0 + k;
    j->status = stfpm_load_samples(j->samples, idx, j->nb, j->S, j->chw, j->masks, 0);
    if (j->status != STFPM_OK) snprintf(j->msg, sizeof j->msg, "%s", stfpm_last_error());
    free(idx);
    return NULL;
}

/* The file stem of a path, without folders and extension. */
static void path_stem(const char *path, char *out, size_t n) {
    const char *base = strrchr(path, '/');
    snprintf(out, n, "%s", base ? base + 1 : path);
    char *dot = strrchr(out, '.');
    if (dot) *dot = 0;
}

/* Heatmap names: "<defect>_<file stem>" for the test split (unique within a data set). */
static void test_stem(const stfpm_sample *all, int i, char *out, size_t n) {
    char stem[1024];
    path_stem(all[i].path, stem, sizeof stem);
    snprintf(out, n, "%s_%s", all[i].defect, stem);
}

/* For predict: heatmap names for paths[0..n), each the file stem, or the stem with "_2", "_3",
 * ... when that name is taken by an earlier image (two folders' 000.png, or a.png beside an
 * earlier a.png and a_2.png, must not overwrite each other's maps). A hash set of the names
 * given out: linear in n. *out: n malloc'd names (free with stfpm_dataset_free_list). */
static stfpm_status unique_stems(const stfpm_sample *all, int n, char ***out) {
    size_t cap = 16;
    while (cap < (size_t)n * 2) cap *= 2;
    char **set = calloc(cap, sizeof *set), **names = calloc((size_t)(n ? n : 1), sizeof *names);
    stfpm_status s = set && names ? STFPM_OK : stfpm_set_error(STFPM_ERR_OOM, "out of host memory for %d names", n);
    for (int i = 0; i < n && s == STFPM_OK; i++) {
        char stem[1024], cand[1100];
        path_stem(all[i].path, stem, sizeof stem);
        snprintf(cand, sizeof cand, "%s", stem);
        for (int k = 2;; k++) {
            size_t h = (size_t)stfpm_fnv1a64(STFPM_FNV1A64_INIT, cand, strlen(cand)) & (cap - 1);
            while (set[h] && strcmp(set[h], cand) != 0) h = (h + 1) & (cap - 1);
            if (!set[h]) {
                if (!(names[i] = strdup(cand))) s = stfpm_set_error(STFPM_ERR_OOM, "out of host memory");
                set[h] = names[i];
                break;
            }
            snprintf(cand, sizeof cand, "%s_%d", stem, k);
        }
    }
    free(set);   /* its entries are the names */
    if (s != STFPM_OK) {
        stfpm_dataset_free_list(names, n);
        names = NULL;
    }
    *out = names;
    return s;
}

/* DIR/STEM_overlay.png (the image with the map over it) and DIR/STEM_map.png (the raw map,
 * 16-bit, pixel / 65535 * scale). */
static stfpm_status write_map_pngs(const char *dir, const char *stem, const float *chw, const float *map, int S,
                                   float scale) {
    char path[4600];
    stfpm_image img = {0};
    STFPM_TRY(stfpm_tensor_to_image(chw, S, S, &img));
    snprintf(path, sizeof path, "%s/%s_overlay.png", dir, stem);
    stfpm_status s = stfpm_png_write_overlay(path, &img, map, 0.0f, scale, 0.5f);
    stfpm_image_free(&img);
    STFPM_TRY(s);
    uint16_t *raw = malloc(sizeof(uint16_t) * (size_t)S * S);
    if (!raw) return stfpm_set_error(STFPM_ERR_OOM, "out of host memory");
    for (size_t i = 0; i < (size_t)S * S; i++) {
        float v = scale > 0 ? map[i] / scale : 0;
        v = v < 0 ? 0 : (v > 1 ? 1 : v);
        raw[i] = (uint16_t)lrintf(v * 65535.0f);
    }
    snprintf(path, sizeof path, "%s/%s_map.png", dir, stem);
    s = stfpm_png_write_grey16(path, S, S, raw);
    free(raw);
    return s;
}

#define STEM_MAX 1200

typedef struct score_job {
    /* in */
    const stfpm_sample *samples;
    int n, batch;
    const char *maps_dir;        /* NULL: no heatmaps */
    float map_threshold;         /* the heatmaps' scale is 2 x this when > 0, else each map's max */
    void (*stem)(const stfpm_sample *all, int i, char *out, size_t n);   /* or: */
    char *const *stems;          /* the names of all n images, given */
    int keep_maps;               /* maps / masks hold all n images (else one batch) */
    /* after each batch: images [i0, i0 + nb) are scored (j->scores) and their heatmaps written */
    stfpm_status (*on_batch)(const struct score_job *j, int i0, int nb, char (*stems)[STEM_MAX]);
    void *user;
    /* out (allocated by score_batches, freed by score_job_free) */
    float *scores;               /* n */
    float *maps;                 /* keep_maps ? n : batch maps of S x S */
    uint8_t *masks;              /* keep_maps ? n masks : NULL */
    double t_infer;              /* seconds in stfpm_model_eval */
} score_job;

static void score_job_free(score_job *j) {
    free(j->scores);
    free(j->maps);
    free(j->masks);
    j->scores = j->maps = NULL;
    j->masks = NULL;
}

/* DIR/scales.csv: value of a raw map pixel = pixel / 65535 * scale. */
static stfpm_status write_scales(const char *dir, const stfpm_strbuf *rows) {
    char path[4200];
    snprintf(path, sizeof path, "%s/scales.csv", dir);
    return stfpm_write_text_atomic(path, rows->text ? rows->text : "", rows->len);
}

/* Score samples[0..n) in batches with model m: scores (and maps, masks) into j. */
static stfpm_status score_batches(stfpm_ctx *ctx, stfpm_model *m, score_job *j) {
    const int S = m->size, n = j->n;
    int batch = j->batch > 0 ? j->batch : 16;
    if (n > 0 && batch > n) batch = n;   /* never hold more than the images given */
    const size_t per = (size_t)3 * S * S, pix = (size_t)S * S, keep = j->keep_maps ? (size_t)n : (size_t)batch;
    float *chw_buf[2] = {malloc(per * sizeof(float) * (size_t)batch), malloc(per * sizeof(float) * (size_t)batch)};
    char (*stems)[STEM_MAX] = malloc(sizeof *stems * (size_t)batch);
    j->scores = malloc(sizeof(float) * (size_t)(n ? n : 1));
    j->maps = malloc(pix * sizeof(float) * (keep ? keep : 1));
    j->masks = j->keep_maps ? malloc(pix * (keep ? keep : 1)) : NULL;
    stfpm_strbuf scale_rows = {0};
    pthread_t th;
    int th_running = 0;
    prefetch_job job = {0};
    stfpm_status s = STFPM_OK;
    if (!chw_buf[0] || !chw_buf[1] || !stems || !j->scores || !j->maps || (j->keep_maps && !j->masks)) {
        s = stfpm_set_error(STFPM_ERR_OOM, "out of host memory for %d images of %dx%d", n, S, S);
        goto done;
    }
    if (j->maps_dir) s = stfpm_strbuf_puts(&scale_rows, "file,scale\n");
    for (int i = 0; i < n && s == STFPM_OK; i += batch) {
        const int nb = n - i < batch ? n - i : batch;
        float *chw = chw_buf[(i / batch) % 2];
        float *maps = j->maps + pix * (j->keep_maps ? (size_t)i : 0);
        if (i == 0) {
            prefetch_job first = {.samples = j->samples, .i0 = 0, .nb = nb, .S = S, .chw = chw, .masks = j->masks};
            prefetch_run(&first);
            s = first.status;
            if (s != STFPM_OK) stfpm_set_error(s, "%s", first.msg);
        } else {
            if (th_running) pthread_join(th, NULL);   /* decoded while the previous batch ran */
            th_running = 0;
            s = job.status;
            if (s != STFPM_OK) stfpm_set_error(s, "%s", job.msg);
        }
        if (s != STFPM_OK) break;
        if (i + batch < n) {
            int i1 = i + batch, nb1 = n - i1 < batch ? n - i1 : batch;
            job = (prefetch_job){.samples = j->samples, .i0 = i1, .nb = nb1, .S = S, .chw = chw_buf[(i1 / batch) % 2],
                                 .masks = j->masks ? j->masks + pix * (size_t)i1 : NULL};
            th_running = pthread_create(&th, NULL, prefetch_run, &job) == 0;
            if (!th_running) prefetch_run(&job);   /* no thread: decode now, same result */
        }
        double ti = stfpm_now();
        s = stfpm_model_eval(ctx, m, chw, nb, NULL, j->scores + i, maps);
        j->t_infer += stfpm_now() - ti;
        for (int k = 0; k < nb && s == STFPM_OK; k++) {
            if (!j->maps_dir) {   /* the names are only for heatmaps */
                stems[k][0] = 0;
                continue;
            }
            if (j->stems) snprintf(stems[k], sizeof stems[k], "%s", j->stems[i + k]);
            else j->stem(j->samples, i + k, stems[k], sizeof stems[k]);
            /* raw maps scaled by 2 x the threshold when known (so 0.5 = threshold), else by each
             * map's max; the scale of every file goes to scales.csv */
            float sc = isfinite(j->map_threshold) && j->map_threshold > 0 ? 2.0f * j->map_threshold : 0;
            if (!(sc > 0))
                for (size_t q = 0; q < pix; q++) sc = fmaxf(sc, maps[pix * k + q]);
            if (!(sc > 0)) sc = 1;
            s = write_map_pngs(j->maps_dir, stems[k], chw + per * k, maps + pix * k, S, sc);
            if (s == STFPM_OK) s = stfpm_strbuf_printf(&scale_rows, "%s_map.png,%.9g\n", stems[k], sc);
        }
        if (s == STFPM_OK && j->on_batch) s = j->on_batch(j, i, nb, stems);
    }
    if (s == STFPM_OK && j->maps_dir) s = write_scales(j->maps_dir, &scale_rows);
done:
    if (th_running) pthread_join(th, NULL);
    stfpm_strbuf_free(&scale_rows);
    free(chw_buf[0]);
    free(chw_buf[1]);
    free(stems);
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* test */

typedef struct {
    stfpm_progress pg;
    stfpm_progress_fn fn;
    void *user;
    double t0;
    int batch;
} test_progress;

static stfpm_status on_test_batch(const score_job *j, int i0, int nb, char (*stems)[STEM_MAX]) {
    test_progress *t = j->user;
    (void)stems;
    t->pg.batch = i0 / t->batch + 1;
    t->pg.images_per_s = (i0 + nb) / (stfpm_now() - t->t0);
    if (t->fn) t->fn(t->user, &t->pg);
    return STFPM_OK;
}

stfpm_status stfpm_test(stfpm_ctx *ctx, const stfpm_test_options *o, stfpm_test_result *r,
                        stfpm_progress_fn fn, void *user) {
    memset(r, 0, sizeof *r);
    char model_path[4200];
    STFPM_TRY(stfpm_model_resolve_path(o->model, model_path, sizeof model_path));
    if (o->maps_dir) STFPM_TRY(stfpm_mkdir_p(o->maps_dir));
    if (o->report_dir) STFPM_TRY(stfpm_mkdir_p(o->report_dir));
    stfpm_dataset ds;
    STFPM_TRY(stfpm_dataset_open(o->data_dir, STFPM_DATASET_TEST, &ds));
    stfpm_model m = {0};
    stfpm_status s = stfpm_model_load(ctx, &m, model_path, STFPM_MODEL_INFER, NULL);
    if (s != STFPM_OK) { stfpm_dataset_free(&ds); return s; }
    const int S = m.size, n = ds.n_test;
    int batch = o->batch > 0 ? o->batch : 16;
    if (n > 0 && batch > n) batch = n;
    if (batch > 4096) batch = 4096;
    const size_t pix = (size_t)S * S;
    uint8_t *labels = malloc((size_t)(n ? n : 1));
    const float **mp = malloc(sizeof(float *) * (size_t)(n ? n : 1));
    const uint8_t **kp = malloc(sizeof(uint8_t *) * (size_t)(n ? n : 1));
    test_progress tp = {.pg = {.phase = STFPM_PHASE_TRAIN, .epochs = 1, .epoch = 1, .batches = (n + batch - 1) / batch},
                        .fn = fn, .user = user, .t0 = stfpm_now(), .batch = batch};
    score_job job = {.samples = ds.test, .n = n, .batch = batch, .maps_dir = o->maps_dir, .map_threshold = m.threshold,
                     .stem = test_stem, .keep_maps = 1, .on_batch = on_test_batch, .user = &tp};
    if (!labels || !mp || !kp) {
        s = stfpm_set_error(STFPM_ERR_OOM, "out of host memory for %d test maps of %dx%d", n, S, S);
        goto done;
    }
    if (n == 0) { s = stfpm_set_error(STFPM_ERR_ARG, "%s: no test images", o->data_dir); goto done; }
    const double t0 = tp.t0;
    s = score_batches(ctx, &m, &job);
    if (s != STFPM_OK) goto done;
    const float *maps = job.maps, *scores = job.scores;
    const uint8_t *masks = job.masks;
    const double t_infer = job.t_infer;
    for (int i = 0; i < n; i++) {
        labels[i] = (uint8_t)ds.test[i].label;
        mp[i] = maps + pix * i;
        kp[i] = masks + pix * i;
        if (labels[i]) r->n_anomalous++;
        else r->n_normal++;
    }
    r->seconds = stfpm_now() - t0;
    r->images_per_s = n / (t_infer > 1e-9 ? t_infer : 1e-9);
    /* scores first: they are kept even when the metrics cannot be computed */
    if (o->csv_path) {
        size_t cap = 64, len = 0;
        for (int i = 0; i < n; i++) cap += 2 * strlen(ds.test[i].path) + 2 * strlen(ds.test[i].defect) + 64;
        char *csv = malloc(cap);
        if (!csv) { s = stfpm_set_error(STFPM_ERR_OOM, "out of host memory"); goto done; }
        len += (size_t)snprintf(csv + len, cap - len, "path,defect,label,score\n");
        for (int i = 0; i < n; i++) {
            const char *fields[2] = {ds.test[i].path, ds.test[i].defect};
            for (int f = 0; f < 2; f++) {          /* RFC 4180 quoting */
                csv[len++] = '"';
                for (const char *q = fields[f]; *q; q++) {
                    if (*q == '"') csv[len++] = '"';
                    csv[len++] = *q;
                }
                csv[len++] = '"';
                csv[len++] = ',';
            }
            len += (size_t)snprintf(csv + len, cap - len, "%d,%.9g\n", ds.test[i].label, scores[i]);
        }
        s = stfpm_write_text_atomic(o->csv_path, csv, len);
        free(csv);
        if (s != STFPM_OK) goto done;
    }
    r->image_auroc = r->pixel_auroc = r->aupro = r->pro_paper = NAN;
    r->single_class = r->n_normal == 0 || r->n_anomalous == 0;
    if (!r->single_class) {
        s = stfpm_auroc(scores, labels, (size_t)n, &r->image_auroc);
        if (s != STFPM_OK) { stfpm_wrap_error(s, "image AUROC on %s", o->data_dir); goto done; }
        stfpm_pixel_metrics pm;
        s = stfpm_pixel_metrics_compute(mp, kp, n, S, S, STFPM_AUPRO_FPR_LIMIT, &pm);
        if (s != STFPM_OK) goto done;
        r->pixel_auroc = pm.pixel_auroc;
        r->aupro = pm.aupro;
        r->pro_paper = pm.pro_paper;
    }
    if (o->json_path) {
        char json[2048], v[4][32];
        double vals[4] = {r->image_auroc, r->pixel_auroc, r->aupro, r->pro_paper};
        for (int k = 0; k < 4; k++) {
            if (isfinite(vals[k])) snprintf(v[k], sizeof v[k], "%.9g", vals[k]);
            else snprintf(v[k], sizeof v[k], "null");
        }
        int len = snprintf(json, sizeof json,
                           "{\n  \"image_auroc\": %s,\n  \"pixel_auroc\": %s,\n  \"aupro\": %s,\n"
                           "  \"pro_paper\": %s,\n  \"n_normal\": %d,\n  \"n_anomalous\": %d,\n"
                           "  \"aupro_fpr_limit\": %.2f,\n  \"size\": %d\n}\n",
                           v[0], v[1], v[2], v[3], r->n_normal, r->n_anomalous, STFPM_AUPRO_FPR_LIMIT, S);
        s = stfpm_write_text_atomic(o->json_path, json, (size_t)len);
    }
    if (s == STFPM_OK && o->report_dir) {
        const stfpm_test_report rep = {.data_dir = o->data_dir, .model_path = model_path, .samples = ds.test, .n = n,
                                       .size = S, .scores = scores, .maps = maps, .masks = masks,
                                       .threshold = m.threshold, .result = r};
        s = stfpm_report_write_test(o->report_dir, &rep);
    }
done:
    score_job_free(&job);
    free(labels); free(mp); free(kp);
    stfpm_model_free(ctx, &m);
    stfpm_dataset_free(&ds);
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* predict */

double stfpm_normalize_score(double score, double threshold) {
    if (isnan(score) || !isfinite(threshold) || !(threshold > 0)) return NAN;
    double v = score / (2.0 * threshold);
    return v < 0 ? 0 : (v > 1 ? 1 : v);
}

typedef struct {
    const stfpm_predict_options *o;
    const stfpm_sample *samples;
    double threshold;
    stfpm_prediction_fn fn;
    void *user;
    stfpm_predict_summary *sum;
} predict_state;

static stfpm_status on_predict_batch(const score_job *j, int i0, int nb, char (*stems)[STEM_MAX]) {
    predict_state *p = j->user;
    for (int k = 0; k < nb; k++) {
        const int i = i0 + k;
        char map[STEM_MAX + 4200], overlay[STEM_MAX + 4200];
        stfpm_prediction r = {.index = i, .path = p->samples[i].path, .score = j->scores[i],
                              .threshold = p->threshold, .verdict = STFPM_VERDICT_UNKNOWN,
                              .normalized_score = stfpm_normalize_score(j->scores[i], (float)p->threshold)};
        if (!isnan(p->threshold)) {
            /* compared (and normalised) at the scores' precision: a threshold equal to a printed
             * score (9 digits) is that score, the image is normal and its normalised score 0.5 */
            r.verdict = j->scores[i] > (float)p->threshold ? STFPM_VERDICT_ANOMALOUS : STFPM_VERDICT_NORMAL;
            p->sum->n_anomalous += r.verdict == STFPM_VERDICT_ANOMALOUS;
        }
        if (p->o->maps_dir) {
            snprintf(map, sizeof map, "%s/%s_map.png", p->o->maps_dir, stems[k]);
            snprintf(overlay, sizeof overlay, "%s/%s_overlay.png", p->o->maps_dir, stems[k]);
            r.map_path = map;
            r.overlay_path = overlay;
        }
        p->sum->n_images++;
        if (p->fn) STFPM_TRY(p->fn(p->user, &r));
    }
    return STFPM_OK;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The validation scores a model stores (metadata "val_scores": comma-separated decimals),
 * sorted ascending into *out (malloc'd; NULL and 0 when the key is absent). */
static stfpm_status read_val_scores(const stfpm_weights *w, const char *model_path, float **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    const char *text = stfpm_weights_meta(w, "val_scores");
    if (!text) return STFPM_OK;
    int n = 1;
    for (const char *c = text; *c; c++) n += *c == ',';
    float *v = malloc(sizeof(float) * (size_t)n);
    if (!v) return stfpm_set_error(STFPM_ERR_OOM, "out of host memory for %d validation scores", n);
    const char *c = text;
    for (int k = 0; k < n; k++) {
        char *end;
        double x = strtod(c, &end);
        if (end == c || !isfinite(x) || (*end != ',' && *end != 0) || (*end == 0 && k != n - 1)) {
            free(v);
            return stfpm_set_error(STFPM_ERR_FORMAT, "%s: metadata val_scores is malformed at entry %d "
                                   "(\"%.40s\"): expected comma-separated finite numbers", model_path, k + 1, c);
        }
        v[k] = (float)x;
        c = *end ? end + 1 : end;
    }
    qsort(v, (size_t)n, sizeof *v, cmp_float);
    *out = v;
    *n_out = n;
    return STFPM_OK;
}

/* Quantile q of n sorted values, linear interpolation between closest ranks (numpy's default). */
static double quantile_sorted(const float *x, int n, double q) {
    double h = (n - 1) * q;
    int lo = (int)floor(h);
    if (lo >= n - 1) return x[n - 1];
    if (lo < 0) return x[0];
    return x[lo] + (h - lo) * ((double)x[lo + 1] - x[lo]);
}

/* The threshold in use: the caller's, else the policy's from the model. The validation scores
 * are parsed only for the quantile policy (a damaged list does not stop the others). */
static stfpm_status predict_threshold(const stfpm_predict_options *o, const stfpm_model *m, const stfpm_weights *w,
                                      const char *model_path, stfpm_predict_summary *sum) {
    float *vs = NULL;
    int nv = 0;
    const int quantile = !o->threshold_given && o->threshold_policy == STFPM_THRESHOLD_QUANTILE;
    if (quantile) {
        STFPM_TRY(read_val_scores(w, model_path, &vs, &nv));
    } else {
        const char *text = stfpm_weights_meta(w, "val_scores");
        if (text && *text) {
            nv = 1;
            for (const char *c = text; *c; c++) nv += *c == ',';
        }
    }
    sum->n_val_scores = nv;
    sum->model_has_threshold = !isnan(m->threshold);
    stfpm_status s = STFPM_OK;
    if (o->threshold_given) {
        sum->threshold = o->threshold;
    } else if (quantile) {
        double q = o->threshold_quantile == 0 ? STFPM_THRESHOLD_QUANTILE_DEFAULT : o->threshold_quantile;
        if (nv == 0)
            s = stfpm_set_error(STFPM_ERR_ARG, "threshold policy quantile: %s stores no validation scores "
                                "(metadata val_scores; models trained before stfpm-cl 0.3.0 or without "
                                "validation images lack them): use the max policy (the stored threshold) or "
                                "give a threshold, or train the model again", model_path);
        else {
            sum->threshold = quantile_sorted(vs, nv, q);
            sum->threshold_quantile = q;
        }
    } else {
        sum->threshold = m->threshold;
    }
    free(vs);
    return s;
}

stfpm_status stfpm_predict(stfpm_ctx *ctx, const stfpm_predict_options *o, stfpm_prediction_fn fn, void *user,
                           stfpm_predict_summary *sum) {
    stfpm_predict_summary dummy;
    if (!sum) sum = &dummy;
    memset(sum, 0, sizeof *sum);
    sum->threshold = NAN;
    sum->threshold_quantile = NAN;
    if (!o || !o->model) return stfpm_set_error(STFPM_ERR_ARG, "predict: a model (run folder or file) is required");
    if (o->n_paths < 1 || !o->paths) return stfpm_set_error(STFPM_ERR_ARG, "predict: no images to score");
    if (!o->threshold_given && o->threshold_policy != STFPM_THRESHOLD_MAX &&
        o->threshold_policy != STFPM_THRESHOLD_QUANTILE)
        return stfpm_set_error(STFPM_ERR_ARG, "predict: unknown threshold policy %d", (int)o->threshold_policy);
    if (!o->threshold_given && o->threshold_policy == STFPM_THRESHOLD_QUANTILE &&
        !(o->threshold_quantile == 0 || (o->threshold_quantile > 0 && o->threshold_quantile <= 1)))
        return stfpm_set_error(STFPM_ERR_ARG, "predict: the threshold quantile must be in (0, 1], got %g",
                               o->threshold_quantile);
    char model_path[4200], maps_dir[4200];
    STFPM_TRY(stfpm_model_resolve_path(o->model, model_path, sizeof model_path));
    stfpm_predict_options oo = *o;
    if (o->maps_dir) {
        /* "maps/" names its files maps/x_map.png, not maps//x_map.png */
        size_t len = strlen(o->maps_dir);
        if (len >= sizeof maps_dir)
            return stfpm_set_error(STFPM_ERR_ARG, "predict: the heatmap folder name is too long (%zu bytes)", len);
        memcpy(maps_dir, o->maps_dir, len + 1);
        while (len > 1 && maps_dir[len - 1] == '/') maps_dir[--len] = 0;
        oo.maps_dir = maps_dir;
        STFPM_TRY(stfpm_mkdir_p(maps_dir));
    }
    o = &oo;
    stfpm_sample *samples = calloc((size_t)o->n_paths, sizeof *samples);
    if (!samples) return stfpm_set_error(STFPM_ERR_OOM, "out of host memory for %d image paths", o->n_paths);
    for (int i = 0; i < o->n_paths; i++) {
        samples[i].path = (char *)o->paths[i];   /* read only */
        samples[i].defect = (char *)"";
    }
    stfpm_model m = {0};
    stfpm_weights w = {0};
    stfpm_status s = stfpm_model_load(ctx, &m, model_path, STFPM_MODEL_INFER, &w);
    score_job job = {0};
    if (s == STFPM_OK) {
        s = predict_threshold(o, &m, &w, model_path, sum);
        stfpm_weights_free(&w);   /* the weights are on the device now */
    }
    char **names = NULL;
    if (s == STFPM_OK && o->maps_dir) s = unique_stems(samples, o->n_paths, &names);
    if (s == STFPM_OK) {
        predict_state ps = {.o = o, .samples = samples, .threshold = sum->threshold, .fn = fn, .user = user, .sum = sum};
        job = (score_job){.samples = samples, .n = o->n_paths, .batch = o->batch, .maps_dir = o->maps_dir,
                          .map_threshold = (float)sum->threshold, .stems = names, .on_batch = on_predict_batch,
                          .user = &ps};
        s = score_batches(ctx, &m, &job);
    }
    if (names) stfpm_dataset_free_list(names, o->n_paths);
    score_job_free(&job);
    stfpm_model_free(ctx, &m);
    free(samples);
    return s;
}

static stfpm_status list_push(char ***v, int *n, int *cap, const char *s) {
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 64;
        char **nv = realloc(*v, sizeof(char *) * (size_t)nc);
        if (!nv) return stfpm_set_error(STFPM_ERR_OOM, "out of host memory for the image list");
        *v = nv;
        *cap = nc;
    }
    if (!((*v)[*n] = strdup(s))) return stfpm_set_error(STFPM_ERR_OOM, "out of host memory for the image list");
    (*n)++;
    return STFPM_OK;
}

stfpm_status stfpm_collect_images(const char *const *inputs, int n_inputs, char ***paths, int *n_paths,
                                  char ***empty_dirs, int *n_empty) {
    char **v = NULL, **e = NULL;
    int n = 0, cap = 0, ne = 0, ecap = 0;
    stfpm_status s = STFPM_OK;
    *paths = NULL;
    *n_paths = 0;
    if (empty_dirs) *empty_dirs = NULL;
    if (n_empty) *n_empty = 0;
    for (int i = 0; i < n_inputs && s == STFPM_OK; i++) {
        struct stat st;
        if (stat(inputs[i], &st) != 0) {
            s = stfpm_set_error(STFPM_ERR_IO, "%s: %s", inputs[i], strerror(errno));
            break;
        }
        if (!S_ISDIR(st.st_mode)) {
            s = list_push(&v, &n, &cap, inputs[i]);
            continue;
        }
        char **list = NULL;
        int k = 0;
        s = stfpm_dataset_list_images(inputs[i], &list, &k);
        for (int j = 0; j < k && s == STFPM_OK; j++) s = list_push(&v, &n, &cap, list[j]);
        if (s == STFPM_OK && k == 0) s = list_push(&e, &ne, &ecap, inputs[i]);
        if (list) stfpm_dataset_free_list(list, k);
    }
    if (s == STFPM_OK && n == 0)
        s = stfpm_set_error(STFPM_ERR_IO, "no images to score: %s holds no image files (accepted extensions: png "
                            "jpg jpeg bmp tga)", ne ? e[0] : "the input");
    if (s != STFPM_OK) {
        stfpm_dataset_free_list(v, n);
        stfpm_dataset_free_list(e, ne);
        return s;
    }
    *paths = v;
    *n_paths = n;
    if (empty_dirs) *empty_dirs = e;
    else stfpm_dataset_free_list(e, ne);
    if (n_empty) *n_empty = ne;
    return STFPM_OK;
}
