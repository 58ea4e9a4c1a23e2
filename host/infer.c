/* Test (SPEC sections 5-6): anomaly maps of the test split, image / pixel metrics, CSV, JSON,
 * heatmaps. */
#include "stfpm/pipeline.h"
#include "stfpm/image.h"
#include "stfpm/metrics.h"
#include "fsutil.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    int idx[4096];
    for (int k = 0; k < j->nb; k++) idx[k] = j->i0 + k;
    j->status = stfpm_load_samples(j->samples, idx, j->nb, j->S, j->chw, j->masks, 0);
    if (j->status != STFPM_OK) snprintf(j->msg, sizeof j->msg, "%s", stfpm_last_error());
    return NULL;
}

/* DIR/scales.csv: value of a raw map pixel = pixel / 65535 * scale. */
stfpm_status stfpm_write_text_atomic_path_scales(const char *dir, const char *text, size_t len) {
    char path[4200];
    snprintf(path, sizeof path, "%s/scales.csv", dir);
    return stfpm_write_text_atomic(path, text, len);
}

/* "<defect>_<file stem>" for output names. */
static void out_stem(const stfpm_sample *s, char *out, size_t n) {
    const char *base = strrchr(s->path, '/');
    base = base ? base + 1 : s->path;
    char stem[1024];
    snprintf(stem, sizeof stem, "%s", base);
    char *dot = strrchr(stem, '.');
    if (dot) *dot = 0;
    snprintf(out, n, "%s_%s", s->defect, stem);
}

stfpm_status stfpm_write_map_pngs(const char *dir, const char *stem, const float *chw, const float *map, int S,
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

stfpm_status stfpm_test(stfpm_ctx *ctx, const stfpm_test_options *o, stfpm_test_result *r,
                        stfpm_progress_fn fn, void *user) {
    memset(r, 0, sizeof *r);
    char model_path[4200];
    STFPM_TRY(stfpm_model_resolve_path(o->model, model_path, sizeof model_path));
    if (o->maps_dir) STFPM_TRY(stfpm_mkdir_p(o->maps_dir));
    stfpm_dataset ds;
    STFPM_TRY(stfpm_dataset_open(o->data_dir, STFPM_DATASET_TEST, &ds));
    stfpm_model m = {0};
    stfpm_status s = stfpm_model_load(ctx, &m, model_path, STFPM_MODEL_INFER, NULL);
    if (s != STFPM_OK) { stfpm_dataset_free(&ds); return s; }
    int S = m.size, n = ds.n_test, batch = o->batch > 0 ? o->batch : 16;
    if (n > 0 && batch > n) batch = n;   /* never hold more than the test set */
    if (batch > 4096) batch = 4096;
    size_t per = (size_t)3 * S * S, pix = (size_t)S * S;
    float *chw_buf[2] = {malloc(per * sizeof(float) * (size_t)batch), malloc(per * sizeof(float) * (size_t)batch)};
    float *chw = chw_buf[0];
    pthread_t th;
    int th_running = 0;
    prefetch_job job = {0};
    stfpm_strbuf scale_rows = {0};
    stfpm_strbuf_puts(&scale_rows, "file,scale\n");
    float *maps = malloc(pix * sizeof(float) * (size_t)(n ? n : 1));
    uint8_t *masks = malloc(pix * (size_t)(n ? n : 1));
    float *scores = malloc(sizeof(float) * (size_t)(n ? n : 1));
    uint8_t *labels = malloc((size_t)(n ? n : 1));
    const float **mp = malloc(sizeof(float *) * (size_t)(n ? n : 1));
    const uint8_t **kp = malloc(sizeof(uint8_t *) * (size_t)(n ? n : 1));
    int *idx = malloc(sizeof(int) * (size_t)batch);
    if (!chw_buf[0] || !chw_buf[1] || !maps || !masks || !scores || !labels || !mp || !kp || !idx) {
        s = stfpm_set_error(STFPM_ERR_OOM, "out of host memory for %d test maps of %dx%d", n, S, S);
        goto done;
    }
    if (n == 0) { s = stfpm_set_error(STFPM_ERR_ARG, "%s: no test images", o->data_dir); goto done; }
    double t0 = stfpm_now(), t_infer = 0;
    stfpm_progress pg = {.phase = STFPM_PHASE_TRAIN, .epochs = 1, .epoch = 1, .batches = (n + batch - 1) / batch};
    for (int i = 0; i < n; i += batch) {
        int nb = n - i < batch ? n - i : batch;
        chw = chw_buf[(i / batch) % 2];
        if (i == 0) {
            for (int k = 0; k < nb; k++) idx[k] = i + k;
            s = stfpm_load_samples(ds.test, idx, nb, S, chw, masks + pix * i, 0);
        } else {
            if (th_running) pthread_join(th, NULL);   /* decoded while the previous batch ran */
            th_running = 0;
            s = job.status;
            if (s != STFPM_OK) stfpm_set_error(s, "%s", job.msg);
        }
        if (s != STFPM_OK) goto done;
        if (i + batch < n) {
            int i1 = i + batch, nb1 = n - i1 < batch ? n - i1 : batch;
            job = (prefetch_job){.samples = ds.test, .i0 = i1, .nb = nb1, .S = S, .chw = chw_buf[(i1 / batch) % 2],
                                 .masks = masks + pix * i1};
            th_running = pthread_create(&th, NULL, prefetch_run, &job) == 0;
            if (!th_running) prefetch_run(&job);   /* no thread: decode now, same result */
        }
        double ti = stfpm_now();
        s = stfpm_model_eval(ctx, &m, chw, nb, NULL, scores + i, maps + pix * i);
        t_infer += stfpm_now() - ti;
        if (s != STFPM_OK) goto done;
        if (o->maps_dir) {
            /* raw maps scaled by 2 x the model's threshold when known (so 0.5 = threshold), else by each
             * map's max; the scale of every file goes to scales.csv */
            float scale = isfinite(m.threshold) && m.threshold > 0 ? 2.0f * m.threshold : 0;
            for (int k = 0; k < nb && s == STFPM_OK; k++) {
                float sc = scale;
                if (!(sc > 0)) { sc = 0; for (size_t q = 0; q < pix; q++) sc = fmaxf(sc, maps[pix * (i + k) + q]); }
                char stem[1200], row[1400];
                out_stem(&ds.test[i + k], stem, sizeof stem);
                s = stfpm_write_map_pngs(o->maps_dir, stem, chw + per * k, maps + pix * (i + k), S, sc > 0 ? sc : 1);
                snprintf(row, sizeof row, "%s_map.png,%.9g\n", stem, sc > 0 ? sc : 1);
                stfpm_strbuf_puts(&scale_rows, row);
            }
            if (s != STFPM_OK) goto done;
        }
        pg.batch = i / batch + 1;
        pg.images_per_s = (i + nb) / (stfpm_now() - t0);
        if (fn) fn(user, &pg);
    }
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
    if (o->maps_dir) {
        s = scale_rows.oom ? stfpm_set_error(STFPM_ERR_OOM, "out of host memory for %s/scales.csv", o->maps_dir)
                           : stfpm_write_text_atomic_path_scales(o->maps_dir, scale_rows.text, scale_rows.len);
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
done:
    stfpm_strbuf_free(&scale_rows);
    if (th_running) pthread_join(th, NULL);
    free(chw_buf[0]); free(chw_buf[1]); free(maps); free(masks); free(scores); free(labels); free(mp); free(kp); free(idx);
    stfpm_model_free(ctx, &m);
    stfpm_dataset_free(&ds);
    return s;
}
