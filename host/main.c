/* stfpm: the command-line program. Subcommands: devices, train, test, predict, demo. */
#include "stfpm/stfpm.h"
#include "stfpm/pipeline.h"
#include "stfpm/demo_data.h"
#include "stfpm/image.h"
#include "stfpm/tune.h"
#include "stfpm/version.h"
#include "fsutil.h"
#include "gemm.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int die(stfpm_status s) {
    fprintf(stderr, "stfpm: error: %s\n", stfpm_last_error());
    return s == STFPM_ERR_ARG ? 2 : 1;
}

static int usage_error(const char *cmd, const char *fmt, const char *arg) {
    fprintf(stderr, "stfpm %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nrun `stfpm %s --help` for the options\n", cmd);
    return 2;
}

/* ------------------------------------------------------------------------------------------ */
/* option parsing helpers */

typedef struct { int argc; char **argv; int i; const char *cmd; int bad; } args_t;

static int is_opt(args_t *a, const char *name) { return strcmp(a->argv[a->i], name) == 0; }

static const char *opt_value(args_t *a) {
    if (a->i + 1 >= a->argc) {
        fprintf(stderr, "stfpm %s: %s needs a value\n", a->cmd, a->argv[a->i]);
        a->bad = 1;
        return NULL;
    }
    return a->argv[++a->i];
}

static int parse_int(args_t *a, int *out) {
    const char *v = opt_value(a);
    if (!v) return 0;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (*end || end == v || errno || x < -2147483647L || x > 2147483647L) {
        fprintf(stderr, "stfpm %s: %s expects an integer, got \"%s\"\n", a->cmd, a->argv[a->i - 1], v);
        a->bad = 1;
        return 0;
    }
    *out = (int)x;
    return 1;
}

static int parse_float(args_t *a, double *out) {
    const char *v = opt_value(a);
    if (!v) return 0;
    char *end;
    double x = strtod(v, &end);
    if (*end || end == v || !isfinite(x)) {
        fprintf(stderr, "stfpm %s: %s expects a number, got \"%s\"\n", a->cmd, a->argv[a->i - 1], v);
        a->bad = 1;
        return 0;
    }
    *out = x;
    return 1;
}

static stfpm_status open_ctx_with(const stfpm_ctx_options *o, stfpm_ctx **ctx, int verbose) {
    stfpm_status s = stfpm_ctx_create(ctx, o);
    if (s == STFPM_OK && verbose) {
        const stfpm_device_info *d = stfpm_ctx_device(*ctx);
        fprintf(stderr, "device: %s (%s, %u compute units, %.0f MiB)\n", d->device_name, d->platform_name,
                d->compute_units, d->global_mem / 1048576.0);
    }
    return s;
}

static stfpm_status open_ctx(const char *device, stfpm_ctx **ctx, int verbose) {
    stfpm_ctx_options o = {.device = device};
    return open_ctx_with(&o, ctx, verbose);
}

/* ------------------------------------------------------------------------------------------ */
/* progress */

static void fmt_time(double s, char *out, size_t n) {
    if (!isfinite(s) || s < 0) { snprintf(out, n, "?"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(out, n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (t >= 60) snprintf(out, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(out, n, "%lds", t);
}

typedef struct { int tty; double last; } progress_state;

static void on_train_progress(void *user, const stfpm_progress *p) {
    progress_state *st = user;
    char eta[32];
    switch (p->phase) {
    case STFPM_PHASE_LOAD:
        fprintf(stderr, "loading %d training + %d validation images...\n", p->n_train, p->n_val);
        break;
    case STFPM_PHASE_CACHE:
        if (p->teacher_cached) fprintf(stderr, "teacher features cached on the device (%.1f MiB)\n", p->cache_mib);
        else fprintf(stderr, "teacher features do not fit in half the device memory: running the teacher per batch\n");
        break;
    case STFPM_PHASE_TRAIN: {
        double now = stfpm_now();
        if (!st->tty && now - st->last < 10.0 && p->batch != p->batches) break;
        st->last = now;
        fmt_time(p->eta_s, eta, sizeof eta);
        fprintf(stderr, "%sepoch %d/%d  batch %d/%d  loss %.5f  %.1f img/s  ETA %s%s", st->tty ? "\r" : "",
                p->epoch, p->epochs, p->batch, p->batches, p->loss, p->images_per_s, eta, st->tty ? "   " : "\n");
        break;
    }
    case STFPM_PHASE_EPOCH_END:
        if (p->n_val)
            fprintf(stderr, "%sepoch %d/%d  train loss %.5f  val loss %.5f  %.1fs%s\n", st->tty ? "\r" : "", p->epoch,
                    p->epochs, p->loss, p->val_loss, p->epoch_s, p->is_best ? "  (best)" : "");
        else
            fprintf(stderr, "%sepoch %d/%d  train loss %.5f  %.1fs\n", st->tty ? "\r" : "", p->epoch, p->epochs, p->loss,
                    p->epoch_s);
        break;
    case STFPM_PHASE_DONE:
        if (p->n_val) fprintf(stderr, "done: best validation loss %.5f at epoch %d\n", p->val_loss, p->epoch);
        else fprintf(stderr, "done: no validation images (--val-split 0): the model is the last epoch's\n");
        break;
    }
}

static void on_test_progress(void *user, const stfpm_progress *p) {
    progress_state *st = user;
    if (st->tty) fprintf(stderr, "\rscoring batch %d/%d  %.1f img/s   ", p->batch, p->batches, p->images_per_s);
    if (st->tty && p->batch == p->batches) fprintf(stderr, "\n");
}

/* The four metrics, each labelled (the two PRO definitions must never be confused). */
static void print_metrics(const stfpm_test_result *r) {
    printf("image AUROC              %.4f\n", r->image_auroc);
    printf("pixel AUROC              %.4f\n", r->pixel_auroc);
    printf("AU-PRO (MVTec, FPR<=0.3) %.4f\n", r->aupro);
    printf("PRO (paper protocol)     %.4f\n", r->pro_paper);
}

/* ------------------------------------------------------------------------------------------ */
/* devices */

static int cmd_devices(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: stfpm devices\n\nLists the OpenCL platforms and devices. Select one for other commands\n"
                   "with --device N (the index shown) or --device TEXT (a substring of platform or device\n"
                   "name), or the STFPM_DEVICE environment variable. Default: the first GPU, else the\n"
                   "first device (a simulator such as Oclgrind only when named). \"kernels\" is the kernel\n"
                   "variant the device gets (STFPM_KERNELS=auto|cpu|gpu; auto: gpu on GPUs).\n");
            return 0;
        }
        return usage_error("devices", "unknown option %s", argv[i]);
    }
    stfpm_device_info d[64];
    int n = 0;
    stfpm_status s = stfpm_list_devices(d, 64, &n);
    if (s != STFPM_OK) return die(s);
    stfpm_ctx_options o = {0};
    s = stfpm_ctx_options_resolve(&o);   /* STFPM_KERNELS, shown per device */
    if (s != STFPM_OK) return die(s);
    for (int i = 0; i < n && i < 64; i++) {
        const char *type = (d[i].type & CL_DEVICE_TYPE_GPU) ? "GPU" : (d[i].type & CL_DEVICE_TYPE_CPU) ? "CPU" : "other";
        printf("%d: %s / %s  [%s]  %u compute units, %.0f MiB global memory (max buffer %.0f MiB), %s, driver %s%s, "
               "kernels %s\n",
               d[i].global_index, d[i].platform_name, d[i].device_name, type, d[i].compute_units,
               d[i].global_mem / 1048576.0, d[i].max_alloc / 1048576.0, d[i].device_version, d[i].driver_version,
               d[i].has_fp16 ? ", fp16" : "", stfpm_kernels_name(stfpm_kernels_for_device(o.kernels, d[i].type)));
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* train */

static const char *TRAIN_HELP =
    "usage: stfpm train --data DIR --out RUN [options]\n\n"
    "Trains the STFPM student on the normal images of DIR (an MVTec AD category: DIR/train/good,\n"
    "or a plain folder of normal images). 80 %% train / 20 %% validation (seeded); the checkpoint\n"
    "with the lowest validation loss is kept.\n\n"
    "  --data DIR            training data (required)\n"
    "  --out RUN             output directory (required): best.safetensors, last.safetensors,\n"
    "                        train_log.csv, config.json\n"
    "  --backbone B          resnet18 (default), resnet34, resnet50 or wide_resnet50_2: the teacher's and\n"
    "                        the student's architecture (--resume: the run's; another one is refused)\n"
    "  --teacher FILE        the backbone's ImageNet weights (.pth or .safetensors); default: $STFPM_TEACHER,\n"
    "                        then the torch hub cache (~/.cache/torch/hub/checkpoints/B-*.pth, e.g.\n"
    "                        resnet18-*.pth; data/fetch_weights.sh B downloads it)\n"
    "  --epochs N            100      --batch N          32       --size S       256 (multiple of 32)\n"
    "  --lr X                0.4      --momentum X       0.9      --weight-decay X 1e-4\n"
    "  --seed N              0        --layers L         1,2,3 (ResNet layer1..layer4; 4 needs a full teacher)\n"
    "  --val-split F         0.2      --train-fraction F 1.0 (e.g. 0.1 for the paper's few-shot rows)\n"
    "  --checkpoint-by M     loss (validation loss, paper) or map (mean validation anomaly map, authors' code)\n"
    "  --device SEL          OpenCL device index or name substring (see `stfpm devices`)\n"
    "  --resume              continue RUN from RUN/last.safetensors\n"
    "  --no-teacher-cache    run the teacher every batch instead of caching its features once\n";

static int cmd_train(int argc, char **argv) {
    stfpm_train_config c;
    stfpm_train_config_default(&c);
    const char *device = NULL;
    args_t a = {argc, argv, 1, "train", 0};
    for (; a.i < argc && !a.bad; a.i++) {
        double f;
        int v;
        if (is_opt(&a, "--help") || is_opt(&a, "-h")) { printf(TRAIN_HELP); return 0; }
        else if (is_opt(&a, "--data")) c.data_dir = opt_value(&a);
        else if (is_opt(&a, "--out")) c.out_dir = opt_value(&a);
        else if (is_opt(&a, "--teacher")) c.teacher = opt_value(&a);
        else if (is_opt(&a, "--backbone")) c.backbone = opt_value(&a);
        else if (is_opt(&a, "--device")) device = opt_value(&a);
        else if (is_opt(&a, "--epochs")) { if (parse_int(&a, &v)) c.epochs = v; }
        else if (is_opt(&a, "--batch")) { if (parse_int(&a, &v)) c.batch = v; }
        else if (is_opt(&a, "--size")) { if (parse_int(&a, &v)) c.size = v; }
        else if (is_opt(&a, "--seed")) { if (parse_int(&a, &v)) { if (v < 0) return usage_error("train", "--seed must be >= 0, got %s", argv[a.i]); c.seed = (uint64_t)v; } }
        else if (is_opt(&a, "--lr")) { if (parse_float(&a, &f)) c.lr = (float)f; }
        else if (is_opt(&a, "--momentum")) { if (parse_float(&a, &f)) c.momentum = (float)f; }
        else if (is_opt(&a, "--weight-decay")) { if (parse_float(&a, &f)) c.weight_decay = (float)f; }
        else if (is_opt(&a, "--val-split")) { if (parse_float(&a, &f)) c.val_split = f; }
        else if (is_opt(&a, "--train-fraction")) { if (parse_float(&a, &f)) c.train_fraction = f; }
        else if (is_opt(&a, "--resume")) c.start = STFPM_TRAIN_RESUME;
        else if (is_opt(&a, "--no-teacher-cache")) c.teacher_cache = STFPM_TEACHER_CACHE_OFF;
        else if (is_opt(&a, "--checkpoint-by")) {
            const char *m = opt_value(&a);
            if (m && !strcmp(m, "map")) c.checkpoint_by = STFPM_SELECT_BY_VAL_MAP;
            else if (m && strcmp(m, "loss")) return usage_error("train", "--checkpoint-by: expected loss or map, got %s", m);
        } else if (is_opt(&a, "--layers")) {
            const char *l = opt_value(&a);
            if (l) {
                stfpm_status s = stfpm_parse_layers(l, c.layers, &c.n_layers);
                if (s != STFPM_OK) return die(s);
            }
        } else return usage_error("train", "unknown option %s", argv[a.i]);
    }
    if (a.bad) return 2;
    stfpm_status s = stfpm_train_config_check(&c);
    if (s != STFPM_OK) return die(s);
    stfpm_ctx *ctx = NULL;
    s = open_ctx(device, &ctx, 1);
    if (s != STFPM_OK) return die(s);
    progress_state ps = {isatty(2), 0};
    s = stfpm_train(ctx, &c, on_train_progress, &ps);
    uint64_t peak = stfpm_ctx_mem_peak(ctx);
    stfpm_ctx_free(ctx);
    if (s != STFPM_OK) { if (ps.tty) fprintf(stderr, "\n"); return die(s); }
    fprintf(stderr, "peak device memory (buffers allocated by stfpm-cl): %.1f MiB\n", peak / 1048576.0);
    printf("model: %s/best.safetensors\n", c.out_dir);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* test */

static const char *TEST_HELP =
    "usage: stfpm test --data DIR --model RUN|FILE [options]\n\n"
    "Scores the test split of DIR (MVTec AD layout: test/good normal, test/<defect> anomalous with\n"
    "ground_truth/<defect>/<name>_mask.png) and prints image AUROC, pixel AUROC, AU-PRO (MVTec\n"
    "definition, FPR up to 0.3) and PRO as the STFPM paper computed it (min-max rescaled).\n\n"
    "  --data DIR      test data (required)\n"
    "  --model M       a run directory (uses M/best.safetensors) or a model file (required)\n"
    "  --json FILE     write the metrics as JSON\n"
    "  --csv FILE      one row per image: path, defect, label, score\n"
    "  --maps DIR      per image: <defect>_<name>_overlay.png (heatmap over the image) and\n"
    "                  <defect>_<name>_map.png (raw map, 16-bit grey; value = pixel / 65535 * scale,\n"
    "                  the scale of each file in DIR/scales.csv; 2 x the model's threshold)\n"
    "  --report DIR    write DIR/index.html, one page to open in a browser: the metrics beside the\n"
    "                  paper's (MVTec AD categories), ROC and PRO curves, score histograms with the\n"
    "                  threshold, the worst and typical images (PNGs in DIR/gallery)\n"
    "  --batch N       images per device batch (16)\n"
    "  --device SEL    OpenCL device index or name substring\n";

static int cmd_test(int argc, char **argv) {
    stfpm_test_options o = {0};
    const char *device = NULL;
    args_t a = {argc, argv, 1, "test", 0};
    for (; a.i < argc && !a.bad; a.i++) {
        int v;
        if (is_opt(&a, "--help") || is_opt(&a, "-h")) { printf("%s", TEST_HELP); return 0; }
        else if (is_opt(&a, "--data")) o.data_dir = opt_value(&a);
        else if (is_opt(&a, "--model")) o.model = opt_value(&a);
        else if (is_opt(&a, "--json")) o.json_path = opt_value(&a);
        else if (is_opt(&a, "--csv")) o.csv_path = opt_value(&a);
        else if (is_opt(&a, "--maps")) o.maps_dir = opt_value(&a);
        else if (is_opt(&a, "--report")) o.report_dir = opt_value(&a);
        else if (is_opt(&a, "--device")) device = opt_value(&a);
        else if (is_opt(&a, "--batch")) { if (parse_int(&a, &v)) { if (v < 1) return usage_error("test", "--batch must be >= 1, got %s", argv[a.i]); o.batch = v; } }
        else return usage_error("test", "unknown option %s", argv[a.i]);
    }
    if (a.bad) return 2;
    if (!o.data_dir) return usage_error("test", "%s", "--data DIR is required");
    if (!o.model) return usage_error("test", "%s", "--model RUN|FILE is required");
    stfpm_ctx *ctx = NULL;
    stfpm_status s = open_ctx(device, &ctx, 1);
    if (s != STFPM_OK) return die(s);
    progress_state ps = {isatty(2), 0};
    stfpm_test_result r;
    s = stfpm_test(ctx, &o, &r, on_test_progress, &ps);
    stfpm_ctx_free(ctx);
    if (s != STFPM_OK) return die(s);
    printf("test images: %d normal, %d anomalous (%.1f img/s inference)\n", r.n_normal, r.n_anomalous, r.images_per_s);
    if (o.report_dir) printf("report: %s/index.html\n", o.report_dir);
    if (r.single_class) {
        fprintf(stderr, "stfpm test: warning: the test split has only %s images: AUROC and PRO need both normal and "
                "anomalous images, so no metrics (scores were written where asked)\n", r.n_normal ? "normal" : "anomalous");
        return 0;
    }
    print_metrics(&r);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* predict */

static const char *PREDICT_HELP =
    "usage: stfpm predict --model RUN|FILE [options] IMAGE|DIR|- ...\n\n"
    "Scores images: one result per image on standard output, in input order (a folder gives its\n"
    "images, sorted). An input \"-\" reads image paths (or folders) from standard input, one per\n"
    "line (a trailing CR is dropped, empty lines are skipped; --null: NUL-separated, as from\n"
    "find -print0), to the end, before scoring starts; a file named \"-\" is ./-.\n\n"
    "  --model M        run directory or model file (required)\n"
    "  --format F       text (default): path, score, verdict, tab-separated;\n"
    "                   json: one JSON object per line with path, score (raw), normalized_score,\n"
    "                   verdict, threshold, map, overlay (null when not known / no --maps);\n"
    "                   csv: a header line, then one row per image with the same fields\n"
    "  --threshold T    the threshold (a score above it is anomalous)\n"
    "  --threshold-policy P\n"
    "                   the threshold from the model, when --threshold is not given:\n"
    "                   max (default): the one stored at training time, the highest score among\n"
    "                     the held-out normal validation images of the best epoch;\n"
    "                   quantile[:Q]: the Q quantile (default 0.99, 0 < Q <= 1; linear\n"
    "                     interpolation, numpy's default; Q = 1 is max) of those validation\n"
    "                     scores, which models trained by stfpm-cl 0.3.0 or later store\n"
    "  --maps DIR       write <name>_overlay.png and <name>_map.png per image (raw map scale in\n"
    "                   DIR/scales.csv)\n"
    "  --null           with \"-\": the paths on standard input are separated by NUL bytes\n"
    "  --batch N        images per device batch (16)\n"
    "  --device SEL     OpenCL device index or name substring\n\n"
    "normalized_score = score / (2 x threshold), clipped to [0, 1]: 0.5 at the threshold (above\n"
    "it: anomalous), 1 at twice the threshold and above; the raw maps use the same scale. Verdicts\n"
    "compare score > threshold at float32 precision, so a threshold copied from a printed score\n"
    "judges that image normal. JSON strings are UTF-8; a byte of a path that is not valid UTF-8 is\n"
    "written as \\udcXX (XX its hex value, Python's surrogateescape: os.fsencode gives the bytes\n"
    "back). CSV fields are quoted as RFC 4180. The count of images and anomalies and the\n"
    "threshold in use go to standard error.\n";

typedef enum { FMT_TEXT, FMT_JSON, FMT_CSV } predict_format;

typedef struct {
    predict_format format;
    int warned;          /* "no threshold" warning printed */
    int header_done;     /* CSV header printed */
} predict_out;

/* Length of the valid UTF-8 sequence at p (1..4), 0 when the bytes there are not one (overlong
 * forms, surrogates and code points above U+10FFFF are invalid). */
static int utf8_seq_len(const unsigned char *p) {
    unsigned c = p[0];
    if (c < 0x80) return 1;
    int n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!n) return 0;
    for (int k = 1; k < n; k++)
        if ((p[k] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && p[1] < 0xA0) return 0;   /* overlong */
    if (c == 0xED && p[1] > 0x9F) return 0;   /* U+D800..U+DFFF */
    if (c == 0xF0 && p[1] < 0x90) return 0;   /* overlong */
    if (c == 0xF4 && p[1] > 0x8F) return 0;   /* above U+10FFFF */
    return n;
}

/* A JSON string (with quotes); NULL is null. */
static void json_string(FILE *f, const char *s) {
    if (!s) { fputs("null", f); return; }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        unsigned c = *p;
        if (c == '"' || c == '\\') { fputc('\\', f); fputc((int)c, f); p++; continue; }
        if (c < 0x20) {
            switch (c) {
            case '\b': fputs("\\b", f); break;
            case '\f': fputs("\\f", f); break;
            case '\n': fputs("\\n", f); break;
            case '\r': fputs("\\r", f); break;
            case '\t': fputs("\\t", f); break;
            default: fprintf(f, "\\u%04x", c);
            }
            p++;
            continue;
        }
        int n = utf8_seq_len(p);
        if (n == 0) {              /* not UTF-8: the byte as a lone surrogate (surrogateescape) */
            fprintf(f, "\\udc%02x", c);
            p++;
            continue;
        }
        fwrite(p, 1, (size_t)n, f);
        p += n;
    }
    fputc('"', f);
}

/* A JSON number, null when not finite. */
static void json_number(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.9g", v);
    else fputs("null", f);
}

/* A quoted CSV field (RFC 4180); NULL is an empty field. */
static void csv_string(FILE *f, const char *s) {
    if (!s) return;
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* A CSV number, empty when not finite. */
static void csv_number(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.9g", v);
}

static stfpm_status print_prediction(void *user, const stfpm_prediction *p) {
    predict_out *po = user;
    if (!po->warned && isnan(p->threshold)) {
        fprintf(stderr, "stfpm predict: warning: the model stores no threshold (trained without validation "
                "images); pass --threshold to get verdicts\n");
        po->warned = 1;
    }
    const char *verdict = p->verdict == STFPM_VERDICT_ANOMALOUS ? "anomalous"
                          : p->verdict == STFPM_VERDICT_NORMAL  ? "normal" : NULL;
    switch (po->format) {
    case FMT_TEXT:
        printf("%s\t%.6g\t%s\n", p->path, p->score, verdict ? verdict : "-");
        break;
    case FMT_JSON:
        fputs("{\"path\": ", stdout);
        json_string(stdout, p->path);
        fputs(", \"score\": ", stdout);
        json_number(stdout, p->score);
        fputs(", \"normalized_score\": ", stdout);
        json_number(stdout, p->normalized_score);
        fputs(", \"verdict\": ", stdout);
        json_string(stdout, verdict);
        fputs(", \"threshold\": ", stdout);
        json_number(stdout, p->threshold);
        fputs(", \"map\": ", stdout);
        json_string(stdout, p->map_path);
        fputs(", \"overlay\": ", stdout);
        json_string(stdout, p->overlay_path);
        fputs("}\n", stdout);
        break;
    case FMT_CSV:
        if (!po->header_done) {
            fputs("path,score,normalized_score,verdict,threshold,map,overlay\n", stdout);
            po->header_done = 1;
        }
        csv_string(stdout, p->path);
        fputc(',', stdout);
        csv_number(stdout, p->score);
        fputc(',', stdout);
        csv_number(stdout, p->normalized_score);
        fprintf(stdout, ",%s,", verdict ? verdict : "");
        csv_number(stdout, p->threshold);
        fputc(',', stdout);
        csv_string(stdout, p->map_path);
        fputc(',', stdout);
        csv_string(stdout, p->overlay_path);
        fputc('\n', stdout);
        break;
    }
    if (fflush(stdout) != 0 || ferror(stdout))
        return stfpm_set_error(STFPM_ERR_IO, "writing the results to standard output failed: %s", strerror(errno));
    return STFPM_OK;
}

/* Read all of standard input and split it into items at sep ('\n': also drop a CR before it;
 * empty items are skipped). *items points into *text (both malloc'd). */
static stfpm_status read_stdin_items(char sep, char **text, char ***items, int *n_items) {
    size_t len = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    *text = NULL;
    *items = NULL;
    *n_items = 0;
    if (!buf) return stfpm_set_error(STFPM_ERR_OOM, "out of host memory reading standard input");
    for (;;) {
        if (cap - len < 2) {
            char *nb = cap < ((size_t)1 << 40) ? realloc(buf, cap * 2) : NULL;
            if (!nb) { free(buf); return stfpm_set_error(STFPM_ERR_OOM, "out of host memory reading standard input"); }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, stdin);
        len += got;
        if (got == 0) break;
    }
    if (ferror(stdin)) {
        int e = errno;
        free(buf);
        return stfpm_set_error(STFPM_ERR_IO, "reading image paths from standard input failed: %s", strerror(e));
    }
    buf[len] = 0;
    int n = 0;
    for (size_t i = 0; i < len; i++) n += buf[i] == sep;
    char **v = malloc(sizeof(char *) * (size_t)(n + 1));
    if (!v) { free(buf); return stfpm_set_error(STFPM_ERR_OOM, "out of host memory reading standard input"); }
    int k = 0;
    for (size_t i = 0; i <= len;) {
        size_t j = i;
        while (j < len && buf[j] != sep) j++;
        buf[j] = 0;                          /* the separator, or the terminator at len */
        size_t l = j - i;
        if (sep == '\n' && l > 0 && buf[i + l - 1] == '\r') buf[i + --l] = 0;
        if (l > 0) v[k++] = buf + i;
        i = j + 1;
    }
    *text = buf;
    *items = v;
    *n_items = k;
    return STFPM_OK;
}

/* --threshold-policy max | quantile | quantile:Q */
static int parse_threshold_policy(const char *v, stfpm_predict_options *po) {
    if (!strcmp(v, "max")) {
        po->threshold_policy = STFPM_THRESHOLD_MAX;
        return 1;
    }
    if (strncmp(v, "quantile", 8) != 0 || (v[8] != 0 && v[8] != ':')) return 0;
    po->threshold_policy = STFPM_THRESHOLD_QUANTILE;
    po->threshold_quantile = STFPM_THRESHOLD_QUANTILE_DEFAULT;
    if (v[8] == 0) return 1;
    char *end;
    errno = 0;
    double q = strtod(v + 9, &end);
    if (end == v + 9 || *end || errno || !(q > 0 && q <= 1)) return 0;
    po->threshold_quantile = q;
    return 1;
}

static int cmd_predict(int argc, char **argv) {
    stfpm_predict_options po = {.batch = 16};
    predict_out out = {FMT_TEXT, 0, 0};
    const char *device = NULL;
    double threshold = NAN;
    int policy_given = 0, null_sep = 0, stdin_at = -1;
    const char **inputs = calloc((size_t)argc, sizeof(char *));
    int n_inputs = 0;
    if (!inputs) { fprintf(stderr, "stfpm: error: out of host memory\n"); return 1; }
    args_t a = {argc, argv, 1, "predict", 0};
    for (; a.i < argc && !a.bad; a.i++) {
        if (is_opt(&a, "--help") || is_opt(&a, "-h")) { printf("%s", PREDICT_HELP); free(inputs); return 0; }
        else if (is_opt(&a, "--model")) po.model = opt_value(&a);
        else if (is_opt(&a, "--maps")) po.maps_dir = opt_value(&a);
        else if (is_opt(&a, "--device")) device = opt_value(&a);
        else if (is_opt(&a, "--threshold")) { if (parse_float(&a, &threshold)) po.threshold_given = 1; }
        else if (is_opt(&a, "--null")) null_sep = 1;
        else if (is_opt(&a, "--format")) {
            const char *f = opt_value(&a);
            if (!f) continue;
            if (!strcmp(f, "text")) out.format = FMT_TEXT;
            else if (!strcmp(f, "json")) out.format = FMT_JSON;
            else if (!strcmp(f, "csv")) out.format = FMT_CSV;
            else { free(inputs); return usage_error("predict", "--format: expected text, json or csv, got \"%s\"", f); }
        } else if (is_opt(&a, "--threshold-policy")) {
            const char *v = opt_value(&a);
            if (!v) continue;
            if (!parse_threshold_policy(v, &po)) {
                free(inputs);
                return usage_error("predict", "--threshold-policy: expected max, quantile or quantile:Q with "
                                   "0 < Q <= 1, got \"%s\"", v);
            }
            policy_given = 1;
        }
        else if (is_opt(&a, "--batch")) { if (parse_int(&a, &po.batch) && po.batch < 1) { free(inputs); return usage_error("predict", "--batch must be >= 1, got %s", argv[a.i]); } }
        else if (argv[a.i][0] == '-' && argv[a.i][1]) { free(inputs); return usage_error("predict", "unknown option %s", argv[a.i]); }
        else if (!strcmp(argv[a.i], "-")) {
            if (stdin_at >= 0) { free(inputs); return usage_error("predict", "%s", "\"-\" (standard input) may be given only once"); }
            stdin_at = n_inputs;
            inputs[n_inputs++] = argv[a.i];
        }
        else inputs[n_inputs++] = argv[a.i];
    }
    if (a.bad) { free(inputs); return 2; }
    if (!po.model) { free(inputs); return usage_error("predict", "%s", "--model RUN|FILE is required"); }
    if (!n_inputs) { free(inputs); return usage_error("predict", "%s", "give at least one IMAGE or DIR (or - for standard input)"); }
    if (po.threshold_given && policy_given) {
        free(inputs);
        return usage_error("predict", "%s", "--threshold and --threshold-policy exclude each other (the policy "
                           "derives the threshold from the model)");
    }
    if (null_sep && stdin_at < 0) { free(inputs); return usage_error("predict", "%s", "--null applies to \"-\" (paths on standard input), which is not given"); }
    po.threshold = threshold;

    /* "-": the paths read from standard input take its place in the inputs */
    char *stdin_text = NULL, **stdin_items = NULL;
    int n_stdin = 0;
    stfpm_status s = STFPM_OK;
    if (stdin_at >= 0) {
        s = read_stdin_items(null_sep ? '\0' : '\n', &stdin_text, &stdin_items, &n_stdin);
        if (s == STFPM_OK && n_stdin == 0)
            s = stfpm_set_error(STFPM_ERR_IO, "no images to score: standard input (\"-\") held no paths");
        if (s == STFPM_OK) {
            const char **all = calloc((size_t)(n_inputs + n_stdin), sizeof(char *));
            if (!all) s = stfpm_set_error(STFPM_ERR_OOM, "out of host memory for %d paths", n_inputs + n_stdin);
            else {
                int k = 0;
                for (int i = 0; i < n_inputs; i++) {
                    if (i != stdin_at) { all[k++] = inputs[i]; continue; }
                    for (int j = 0; j < n_stdin; j++) all[k++] = stdin_items[j];
                }
                free(inputs);
                inputs = all;
                n_inputs = k;
            }
        }
    }
    char **paths = NULL, **empty = NULL;
    int n = 0, n_empty = 0;
    if (s == STFPM_OK) s = stfpm_collect_images(inputs, n_inputs, &paths, &n, &empty, &n_empty);
    free(inputs);
    free(stdin_items);
    free(stdin_text);
    for (int i = 0; i < n_empty; i++) fprintf(stderr, "stfpm predict: warning: no images in %s\n", empty[i]);
    stfpm_dataset_free_list(empty, n_empty);
    stfpm_ctx *ctx = NULL;
    stfpm_predict_summary sum = {0};
    po.paths = (const char *const *)paths;
    po.n_paths = n;
    if (s == STFPM_OK) s = open_ctx(device, &ctx, 0);
    if (s == STFPM_OK) s = stfpm_predict(ctx, &po, print_prediction, &out, &sum);
    if (s == STFPM_OK && !isnan(sum.threshold)) {
        char how[128];
        if (po.threshold_given) snprintf(how, sizeof how, "given");
        else if (!isnan(sum.threshold_quantile))
            snprintf(how, sizeof how, "quantile %g of %d validation scores", sum.threshold_quantile, sum.n_val_scores);
        else snprintf(how, sizeof how, "the model's: highest validation score");
        fprintf(stderr, "%d image(s), %d anomalous (threshold %.6g, %s)\n", sum.n_images, sum.n_anomalous,
                sum.threshold, how);
    }
    stfpm_dataset_free_list(paths, n);
    stfpm_ctx_free(ctx);
    return s == STFPM_OK ? 0 : die(s);
}

/* ------------------------------------------------------------------------------------------ */
/* demo */

static const char *DEMO_HELP =
    "usage: stfpm demo [--out DIR] [--teacher FILE] [--epochs N] [--size S] [--device SEL]\n\n"
    "Generates the built-in demo data set (textures with scratches, holes, stains and cracks, in the\n"
    "MVTec AD layout) into DIR/data, trains STFPM on it (DIR/run), tests it and writes heatmaps\n"
    "(DIR/maps). Default DIR: ./stfpm-demo. Takes under a minute on a 2-core CPU.\n";

static int cmd_demo(int argc, char **argv) {
    const char *out = "stfpm-demo", *device = NULL, *teacher = NULL;
    int epochs = 15, size = 128;
    args_t a = {argc, argv, 1, "demo", 0};
    for (; a.i < argc && !a.bad; a.i++) {
        if (is_opt(&a, "--help") || is_opt(&a, "-h")) { printf("%s", DEMO_HELP); return 0; }
        else if (is_opt(&a, "--out")) out = opt_value(&a);
        else if (is_opt(&a, "--teacher")) teacher = opt_value(&a);
        else if (is_opt(&a, "--device")) device = opt_value(&a);
        else if (is_opt(&a, "--epochs")) parse_int(&a, &epochs);
        else if (is_opt(&a, "--size")) parse_int(&a, &size);
        else return usage_error("demo", "unknown option %s", argv[a.i]);
    }
    if (a.bad) return 2;
    if (epochs < 1) return usage_error("demo", "--epochs must be at least 1, got %s", "a smaller value");
    if (size < 32 || size % 32 || size > 2048) return usage_error("demo", "%s", "--size must be a multiple of 32 between 32 and 2048");
    char data[4200], run[4200], maps[4200], json[4200], csv[4200];
    snprintf(data, sizeof data, "%s/data", out);
    snprintf(run, sizeof run, "%s/run", out);
    snprintf(maps, sizeof maps, "%s/maps", out);
    snprintf(json, sizeof json, "%s/metrics.json", out);
    snprintf(csv, sizeof csv, "%s/scores.csv", out);
    char last[4300];
    snprintf(last, sizeof last, "%s/last.safetensors", run);
    if (stfpm_path_exists(last)) {
        fprintf(stderr, "stfpm demo: %s already holds a demo run; remove it or pass --out OTHER_DIR\n", out);
        return 2;
    }
    stfpm_status s = stfpm_mkdir_p(out);
    if (s != STFPM_OK) return die(s);
    fprintf(stderr, "[1/3] generating the demo data set in %s\n", data);
    stfpm_demo_options dopt;
    stfpm_demo_default_options(&dopt);
    dopt.size = size;
    s = stfpm_demo_generate(data, &dopt);
    if (s != STFPM_OK) return die(s);
    stfpm_ctx *ctx = NULL;
    s = open_ctx(device, &ctx, 1);
    if (s != STFPM_OK) return die(s);
    stfpm_train_config c;
    stfpm_train_config_default(&c);
    c.data_dir = data;
    c.out_dir = run;
    c.teacher = teacher;
    c.epochs = epochs;
    c.size = size;
    c.batch = 8;
    c.lr = 0.4f;
    fprintf(stderr, "[2/3] training (%d epochs at %dx%d) into %s\n", epochs, size, size, run);
    progress_state ps = {isatty(2), 0};
    s = stfpm_train(ctx, &c, on_train_progress, &ps);
    if (s != STFPM_OK) { stfpm_ctx_free(ctx); return die(s); }
    fprintf(stderr, "[3/3] testing; heatmaps in %s\n", maps);
    stfpm_test_options o = {.data_dir = data, .model = run, .json_path = json, .csv_path = csv, .maps_dir = maps, .batch = 8};
    stfpm_test_result r;
    s = stfpm_test(ctx, &o, &r, on_test_progress, &ps);
    stfpm_ctx_free(ctx);
    if (s != STFPM_OK) return die(s);
    printf("demo results (%d normal, %d anomalous test images):\n", r.n_normal, r.n_anomalous);
    print_metrics(&r);
    printf("model: %s/best.safetensors   metrics: %s   heatmaps: %s\n", run, json, maps);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* tune */

static const char *TUNE_HELP =
    "usage: stfpm tune [--device SEL] [--quick] [options]\n\n"
    "Searches CLBlast's SGEMM parameters (Xgemm kernel and the direct / indirect threshold) for\n"
    "this device at the GEMM shapes of STFPM's ResNet-18 convolutions (256x256 input), checks every\n"
    "set against a CPU GEMM, prints the fastest sets next to CLBlast's defaults and the built-in\n"
    "table, and stores the winner in the cache directory (STFPM_CACHE_DIR, else\n"
    "$XDG_CACHE_HOME/stfpm, else ~/.cache/stfpm) for this device and driver. Later runs of every\n"
    "command use it; STFPM_CLBLAST_PARAMS overrides it (\"default\" = CLBlast's own parameters);\n"
    "delete the file to go back to the built-in table. Run it once per device and driver.\n"
    "A set that crashes the process stays listed in a .bad file next to the tuned file and is\n"
    "skipped by later runs (delete that file to retry it). With the CPU kernel variant (CPUs) the\n"
    "GEMMs run on stfpm-cl's own kernels, not CLBlast, unless STFPM_GEMM=clblast: tuning then\n"
    "changes nothing for them.\n\n"
    "  --device SEL        OpenCL device index or name substring (see `stfpm devices`)\n"
    "  --quick             8 candidates at 128x128 shapes, 3 runs each (a minute or two)\n"
    "  --max-seconds S     time budget for the candidate search (600)\n"
    "  --candidates N      number of candidates: the grid's best-scored sets (40, --quick 8)\n"
    "  --runs N            timed runs per GEMM after a warm-up, median taken (5, --quick 3)\n"
    "  --cpu-time          rank by the process's CPU time instead of wall-clock time (CPU devices\n"
    "                      on a machine busy with other jobs)\n"
    "  --no-save           only print the results\n";

static void on_tune_progress(void *user, const stfpm_tune_progress *p) {
    (void)user;
    if (p->phase == STFPM_TUNE_PHASE_START) {
        fprintf(stderr, "measuring %d parameter sets (budget %.0f s for the candidates)...\n", p->rows_planned,
                p->budget_s);
        return;
    }
    const stfpm_tune_row *r = p->r;
    if (p->phase == STFPM_TUNE_PHASE_CONFIRM) {
        if (r->status == STFPM_TUNE_OK)
            fprintf(stderr, "again   %-15s %9.2f ms (first %.2f ms; the faster median per GEMM is kept)  %.0fs\n",
                    r->label, r->total_ms, p->best_ms, p->elapsed_s);
        else
            fprintf(stderr, "again   %-15s %s  %.0fs\n", r->label, r->why, p->elapsed_s);
        return;
    }
    if (p->phase != STFPM_TUNE_PHASE_ROW) return;
    static const char *const status[] = {"ok", "rejected", "failed", "WRONG RESULTS", "crashed before",
                                         "unavailable"};
    if (r->status == STFPM_TUNE_OK)
        fprintf(stderr, "[%2d/%d] %-15s %9.2f ms  %-52s best %.2f ms (%s)  %.0fs\n", p->row + 1, p->rows_planned,
                r->label, r->total_ms, r->desc, p->best_ms, p->best_label, p->elapsed_s);
    else
        fprintf(stderr, "[%2d/%d] %-15s %s: %s  %.0fs\n", p->row + 1, p->rows_planned, r->label,
                status[r->status], r->why, p->elapsed_s);
}

static void print_tune_row(const stfpm_tune_result *r, int i, double gflop) {
    const stfpm_tune_row *x = &r->rows[i];
    printf("%c %-15s", i == r->best ? '*' : ' ', x->label);
    if (x->status != STFPM_TUNE_OK) {
        printf("  %s\n", x->why);
        return;
    }
    if (x->threshold) printf(" %9.2f %8.1f %6d ", x->total_ms, gflop / x->total_ms, x->threshold);
    else printf(" %9.2f %8.1f %6s ", x->total_ms, gflop / x->total_ms, "-");
    for (int s = 0; s < r->n_shapes; s++) printf(" %12.2f", x->ms[s]);
    printf("  %s\n", x->desc);
}

static int cmd_tune(int argc, char **argv) {
    stfpm_tune_options o;
    stfpm_tune_options_default(&o);
    const char *device = NULL;
    args_t a = {argc, argv, 1, "tune", 0};
    for (; a.i < argc && !a.bad; a.i++) {
        double f;
        if (is_opt(&a, "--help") || is_opt(&a, "-h")) { printf("%s", TUNE_HELP); return 0; }
        else if (is_opt(&a, "--device")) device = opt_value(&a);
        else if (is_opt(&a, "--quick")) o.quick = 1;
        else if (is_opt(&a, "--cpu-time")) o.cpu_time = 1;
        else if (is_opt(&a, "--no-save")) o.no_save = 1;
        else if (is_opt(&a, "--max-seconds")) { if (parse_float(&a, &f)) { if (f <= 0) return usage_error("tune", "--max-seconds must be > 0, got %s", argv[a.i]); o.max_seconds = f; } }
        else if (is_opt(&a, "--candidates")) { if (parse_int(&a, &o.max_candidates) && o.max_candidates < 1) return usage_error("tune", "--candidates must be >= 1, got %s", argv[a.i]); }
        else if (is_opt(&a, "--runs")) { if (parse_int(&a, &o.runs) && (o.runs < 1 || o.runs > 63)) return usage_error("tune", "--runs must be 1..63, got %s", argv[a.i]); }
        else return usage_error("tune", "unknown option %s", argv[a.i]);
    }
    if (a.bad) return 2;
    /* measure CLBlast's own parameters first: no tuned set may be applied to this process yet */
    stfpm_ctx_options co = {.device = device, .clblast_params = "default"};
    stfpm_ctx *ctx = NULL;
    stfpm_status s = open_ctx_with(&co, &ctx, 1);
    if (s != STFPM_OK) return die(s);
    if (stfpm_gemm_own(ctx))
        fprintf(stderr, "note: on this device the GEMMs run on stfpm-cl's own kernels (kernels %s), not CLBlast; "
                        "the parameters tuned here apply only with STFPM_GEMM=clblast\n",
                stfpm_kernels_name(stfpm_ctx_get_options(ctx)->kernels));
    stfpm_tune_result *r = calloc(1, sizeof *r);
    if (!r) { stfpm_ctx_free(ctx); fprintf(stderr, "stfpm: error: out of host memory\n"); return 1; }
    s = stfpm_tune(ctx, &o, on_tune_progress, NULL, r);
    stfpm_ctx_free(ctx);
    if (s != STFPM_OK && r->n_rows == 0) { free(r); return die(s); }

    double gflop = 0;
    printf("\nCLBlast SGEMM tuning for %s (driver %s)\n", r->device, r->driver);
    if (r->input_size)
        printf("GEMMs as host/conv.c and host/winograd.c issue them at %dx%d input, %d image(s) per chunk (row-major):\n", r->input_size,
               r->input_size, r->images_per_chunk);
    for (int i = 0; i < r->n_shapes; i++) {
        const stfpm_tune_shape *sh = &r->shapes[i];
        double g = 2e-9 * sh->m * sh->n * sh->k;
        gflop += g * (sh->weight > 0 ? sh->weight : 1.0);   /* the totals below are weighted too */
        printf("  %-17s %s  M %5zu  N %6zu  K %5zu  %.3f GFLOP  x%g per step\n", sh->name, sh->trans_a ? "TN" : "NN",
               sh->m, sh->n, sh->k, g, sh->weight > 0 ? sh->weight : 1.0);
    }
    gflop *= 1e3; /* GFLOP / ms -> GFLOP/s */
    printf("\nms per GEMM: median of %d %s runs after a warm-up (sets within 1.5x of the fastest and\n"
           "the built-in / cached sets: the faster of two such medians); total over the shapes with the\n"
           "best XGEMM_MIN_INDIRECT_SIZE (thr; GEMMs with M*N*K < thr^3 take XgemmDirect):\n",
           r->runs, r->cpu_time ? "process-CPU-time" : "wall-clock");
    printf("  %-15s %9s %8s %6s ", "set", "total ms", "GFLOP/s", "thr");
    for (int i = 0; i < r->n_shapes; i++) printf(" %12s", r->shapes[i].name);
    printf("  parameters\n");
    int shown[STFPM_TUNE_MAX_ROWS] = {0};
    for (int i = 0; i < r->n_rows; i++)   /* the baselines (CLBlast default, direct, built-in, ...) */
        if (r->rows[i].label[0] != '#') { print_tune_row(r, i, gflop); shown[i] = 1; }
    int ranked[STFPM_TUNE_MAX_ROWS], n_ok = 0, n_bad = 0;
    for (int i = 0; i < r->n_rows; i++) {
        if (shown[i]) continue;
        if (r->rows[i].status != STFPM_TUNE_OK) { n_bad++; continue; }
        int j = n_ok++;
        while (j > 0 && r->rows[ranked[j - 1]].total_ms > r->rows[i].total_ms) { ranked[j] = ranked[j - 1]; j--; }
        ranked[j] = i;
    }
    for (int k = 0; k < n_ok && k < 8; k++) print_tune_row(r, ranked[k], gflop);
    if (n_ok > 8) printf("  (%d slower candidates not shown)\n", n_ok - 8);
    if (n_bad) {
        printf("  %d candidate(s) skipped:\n", n_bad);
        for (int i = 0; i < r->n_rows; i++)
            if (!shown[i] && r->rows[i].status != STFPM_TUNE_OK) print_tune_row(r, i, gflop);
    }
    printf("%d of %d candidates measured in %.0f s%s\n", r->candidates_run, r->candidates_planned, r->elapsed_s,
           r->budget_hit ? " (time budget reached)" : "");
    if (r->note[0]) printf("note: %s\n", r->note);
    if (s != STFPM_OK) { free(r); return die(s); }
    const stfpm_tune_row *w = &r->rows[r->best];
    printf("\nwinner: %s, %.2f ms", w->label, w->total_ms);
    const int refs[2] = {r->row_default, r->row_builtin};
    const char *ref_names[2] = {"CLBlast default", "built-in table"};
    for (int i = 0; i < 2; i++)
        if (refs[i] >= 0 && refs[i] != r->best && r->rows[refs[i]].status == STFPM_TUNE_OK)
            printf(", %.2fx the speed of the %s", r->rows[refs[i]].total_ms / w->total_ms, ref_names[i]);
    printf("\n  %s\n", r->spec);
    if (r->saved) printf("stored in %s\n", r->cache_path);
    else printf("not stored%s\n", o.no_save ? " (--no-save)" : "");
    free(r);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

static void main_usage(FILE *f) {
    fprintf(f, "usage: stfpm COMMAND [options]   (stfpm COMMAND --help for each)\n\n"
               "STFPM anomaly detection (Student-Teacher Feature Pyramid Matching) on any OpenCL device.\n\n"
               "commands:\n"
               "  devices   list OpenCL devices\n"
               "  train     train a student on normal images\n"
               "  test      metrics on an MVTec AD style test split\n"
               "  predict   score images\n"
               "  demo      generate demo data, train, test, write heatmaps\n"
               "  tune      tune CLBlast's GEMM kernels for this device (once per device)\n\n"
               "  --version print the version (stfpm %s) and exit\n"
               "  --help    this text\n", stfpm_version());
}

int main(int argc, char **argv) {
    if (argc < 2) { main_usage(stderr); return 2; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) { main_usage(stdout); return 0; }
    if (!strcmp(cmd, "--version")) {
        printf("stfpm %s\n", stfpm_version());
        return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
    }
    if (!strcmp(cmd, "devices")) return cmd_devices(argc - 1, argv + 1);
    if (!strcmp(cmd, "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "test")) return cmd_test(argc - 1, argv + 1);
    if (!strcmp(cmd, "predict")) return cmd_predict(argc - 1, argv + 1);
    if (!strcmp(cmd, "demo")) return cmd_demo(argc - 1, argv + 1);
    if (!strcmp(cmd, "tune")) return cmd_tune(argc - 1, argv + 1);
    fprintf(stderr, "stfpm: unknown command \"%s\"\n", cmd);
    main_usage(stderr);
    return 2;
}
