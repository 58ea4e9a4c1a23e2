/* Models from anomalib: a Lightning checkpoint of anomalib's Stfpm (ResNet-18, layers 1-3) as
 * --model.
 *   - The real checkpoint (../shared/anomalib/stfpm_resnet18_bottle.ckpt, written by anomalib
 *     2.7): loaded through stfpm_model_load, the six bottle images scored, the anomaly maps
 *     and scores compared with anomalib's raw outputs times 8 (anomalib's per-level map is
 *     0.5 * ||t - s||^2, so its product of three levels is 1/8 of stfpm-cl's), size, layers and
 *     threshold taken from the checkpoint; `stfpm predict --model <ckpt> IMAGE` and
 *     `stfpm test --model <ckpt>` on the CLI.
 *   - Hand-assembled checkpoints: the opaque objects Lightning pickles beside the weights
 *     (a dict subclass for the hyper-parameters, enums, callbacks with state, sets, protocol 4
 *     opcodes) are skipped without error and without running anything; a hostile global
 *     nested among them is still refused; checkpoints of other backbones (named in
 *     hyper_parameters, or recognisable from the layer shapes) are refused naming the backbone,
 *     in the library and on the CLI. */
#include "cli_util.h"
#include "fsutil.h"
#include "testutil.h"
#include "stfpm/image.h"
#include "stfpm/model.h"
#include "stfpm/weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CKPT "anomalib/stfpm_resnet18_bottle.ckpt"
#define RAW "anomalib/anomalib_raw_outputs.safetensors"
#define N_IMAGES 6
#define TOL_REL_RMS 1e-4   /* max |ours - 8 x anomalib| over their RMS */

static const char *const images[N_IMAGES] = {
    "good_000.png", "good_001.png", "good_002.png",
    "broken_large_000.png", "broken_large_001.png", "broken_large_002.png",
};
/* post_processor._image_threshold of the checkpoint (anomalib's scale) */
#define ANOMALIB_IMAGE_THRESHOLD 0.34343665838241577

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* ../shared/<rel> into buf, or NULL when absent */
static const char *shared_file(const char *rel, char *buf, size_t cap) {
    const char *sh = tu_shared_dir();
    if (!sh) return NULL;
    snprintf(buf, cap, "%s/%s", sh, rel);
    return file_exists(buf) ? buf : NULL;
}

START_TEST(test_real_checkpoint_matches_anomalib) {
    char ckpt[2048], raw[2048], img[2048];
    if (!shared_file(CKPT, ckpt, sizeof ckpt) || !shared_file(RAW, raw, sizeof raw))
        TU_SKIP("io_anomalib: the anomalib checkpoint is not checked because ../shared/%s or ../shared/%s is absent",
                CKPT, RAW);
    stfpm_ctx *ctx = tu_ctx();
    stfpm_model m = {0};
    stfpm_weights w = {0};
    TU_CHECK_STATUS(stfpm_model_load(ctx, &m, ckpt, STFPM_MODEL_INFER, &w));
    ck_assert_int_eq(m.size, 256);
    ck_assert_int_eq(m.n_layers, 3);
    for (int i = 0; i < 3; i++) ck_assert_int_eq(m.layers[i], i + 1);
    /* anomalib's image threshold on stfpm-cl's scale */
    ck_assert_msg(fabs(m.threshold - 8 * ANOMALIB_IMAGE_THRESHOLD) < 1e-5, "threshold %.9g", m.threshold);
    /* the checkpoint's plain values come through as metadata; the opaque rest does not stop it */
    ck_assert_str_eq(stfpm_weights_meta(&w, "ckpt.hyper_parameters.backbone"), "resnet18");
    ck_assert_str_eq(stfpm_weights_meta(&w, "ckpt.hyper_parameters.layers"), "layer1,layer2,layer3");
    ck_assert_ptr_nonnull(stfpm_weights_meta(&w, "ckpt.pytorch-lightning_version"));
    ck_assert_ptr_null(stfpm_weights_find(&w, "model.teacher_model.feature_extractor.bn1.num_batches_tracked"));
    stfpm_weights_free(&w);

    const int S = 256;
    const size_t pix = (size_t)S * S;
    float *chw = malloc(sizeof(float) * 3 * pix * N_IMAGES), *maps = malloc(sizeof(float) * pix * N_IMAGES);
    float scores[N_IMAGES];
    ck_assert(chw && maps);
    for (int i = 0; i < N_IMAGES; i++) {
        snprintf(img, sizeof img, "%s/anomalib/images/%s", tu_shared_dir(), images[i]);
        TU_CHECK_STATUS(stfpm_image_load_tensor(img, S, chw + (size_t)i * 3 * pix));
    }
    TU_CHECK_STATUS(stfpm_model_eval(ctx, &m, chw, N_IMAGES, NULL, scores, maps));

    stfpm_weights ref = {0};
    TU_CHECK_STATUS(stfpm_safetensors_read(raw, &ref));
    const stfpm_weight *am, *ps;
    const int64_t map_shape[3] = {N_IMAGES, S, S}, score_shape[1] = {N_IMAGES};
    TU_CHECK_STATUS(stfpm_weights_expect(&ref, raw, "anomaly_map", 3, map_shape, &am));
    TU_CHECK_STATUS(stfpm_weights_expect(&ref, raw, "pred_score", 1, score_shape, &ps));

    double sq = 0, err_max = 0, err_sq = 0;
    size_t worst = 0;
    for (size_t k = 0; k < pix * N_IMAGES; k++) {
        double want = 8.0 * am->data[k], d = fabs(maps[k] - want);
        sq += want * want;
        err_sq += d * d;
        if (d > err_max) { err_max = d; worst = k; }
    }
    double rms = sqrt(sq / (double)(pix * N_IMAGES)), err_rms = sqrt(err_sq / (double)(pix * N_IMAGES));
    double s_sq = 0, s_max = 0;
    for (int i = 0; i < N_IMAGES; i++) s_sq += 64.0 * ps->data[i] * ps->data[i];
    double s_rms = sqrt(s_sq / N_IMAGES);
    for (int i = 0; i < N_IMAGES; i++) {
        double d = fabs(scores[i] - 8.0 * ps->data[i]);
        if (d > s_max) s_max = d;
        printf("io_anomalib: %-22s score %.6f, anomalib x 8 %.6f\n", images[i], scores[i], 8.0 * ps->data[i]);
    }
    printf("io_anomalib: anomaly maps vs anomalib x 8: max |error| %.3g (%.3g of their RMS %.4g), RMS error %.3g "
           "(%.3g); scores: max |error| %.3g (%.3g of their RMS %.4g)\n",
           err_max, err_max / rms, rms, err_rms, err_rms / rms, s_max, s_max / s_rms, s_rms);
    ck_assert_msg(err_max <= TOL_REL_RMS * rms, "anomaly map: max |error| %.3g at image %zu pixel %zu (ours %.7g, "
                  "anomalib x 8 %.7g) is over %g x their RMS %.4g", err_max, worst / pix, worst % pix, maps[worst],
                  8.0 * am->data[worst], TOL_REL_RMS, rms);
    ck_assert_msg(s_max <= TOL_REL_RMS * s_rms, "scores: max |error| %.3g is over %g x their RMS %.4g", s_max,
                  TOL_REL_RMS, s_rms);
    /* anomalib's score is the map's maximum, as ours */
    for (int i = 0; i < N_IMAGES; i++) {
        float mx = maps[(size_t)i * pix];
        for (size_t k = 1; k < pix; k++) mx = fmaxf(mx, maps[(size_t)i * pix + k]);
        ck_assert_float_eq(mx, scores[i]);
    }
    stfpm_weights_free(&ref);
    free(chw);
    free(maps);
    stfpm_model_free(ctx, &m);
}
END_TEST

START_TEST(test_cli_predict_checkpoint) {
    char ckpt[2048], img[2048];
    if (!shared_file(CKPT, ckpt, sizeof ckpt)) TU_SKIP("io_anomalib: the CLI is not checked because ../shared/%s is absent", CKPT);
    snprintf(img, sizeof img, "%s/anomalib/images/broken_large_000.png", tu_shared_dir());
    cli_result r = cli_run(NULL, "predict", "--model", ckpt, "--format", "csv", img, NULL);
    cli_expect_ok("predict --model <anomalib ckpt>", &r);
    /* header, then path,score,normalized_score,verdict,threshold,... */
    const char *row = strchr(r.out, '\n');
    ck_assert_ptr_nonnull(row);
    row = strstr(row + 1, "broken_large_000.png");
    ck_assert_msg(row != NULL, "%s", r.out);
    const char *c = strchr(row, ',');
    ck_assert_ptr_nonnull(c);
    double score = strtod(c + 1, NULL);
    ck_assert_msg(fabs(score - 8 * 0.40009012818336487) < 1e-4, "score %.7g: %s", score, r.out);
    ck_assert_msg(strstr(row, "anomalous"), "%s", r.out);
    printf("io_anomalib: stfpm predict --model %s: %s", CKPT, strchr(r.out, '\n') + 1);
    cli_result_free(&r);
    /* text format, the default */
    r = cli_run(NULL, "predict", "--model", ckpt, img, NULL);
    cli_expect_ok("predict --model <anomalib ckpt> (text)", &r);
    ck_assert_msg(strstr(r.out, "broken_large_000.png\t3.2007"), "%s", r.out);
    cli_result_free(&r);
}
END_TEST

/* `stfpm test --model <ckpt>` on the six images laid out as an MVTec AD category, with the
 * MVTec AD masks (../shared/data/mvtec_ad) shrunk to 256 x 256 by nearest neighbour: image
 * AUROC is that of anomalib's scores (7 of 9 pairs ordered: 0.7778). */
START_TEST(test_cli_test_checkpoint) {
    char ckpt[2048], mask[2048];
    if (!shared_file(CKPT, ckpt, sizeof ckpt)) TU_SKIP("io_anomalib: stfpm test is not checked because ../shared/%s is absent", CKPT);
    if (!shared_file("data/mvtec_ad/bottle/ground_truth/broken_large/000_mask.png", mask, sizeof mask))
        TU_SKIP("io_anomalib: stfpm test is not checked because the MVTec AD bottle masks in ../shared/data are absent");
    char *dir = cli_mkdtemp("anomalib_test");
    char p[2400], src[2400];
    snprintf(p, sizeof p, "%s/test/good", dir);
    TU_CHECK_STATUS(stfpm_mkdir_p(p));
    snprintf(p, sizeof p, "%s/test/broken_large", dir);
    TU_CHECK_STATUS(stfpm_mkdir_p(p));
    snprintf(p, sizeof p, "%s/ground_truth/broken_large", dir);
    TU_CHECK_STATUS(stfpm_mkdir_p(p));
    for (int i = 0; i < N_IMAGES; i++) {
        int bad = i >= 3;
        snprintf(src, sizeof src, "%s/anomalib/images/%s", tu_shared_dir(), images[i]);
        snprintf(p, sizeof p, "%s/test/%s/%03d.png", dir, bad ? "broken_large" : "good", i % 3);
        size_t n;
        char *bytes = cli_read_file(src, &n);
        ck_assert_ptr_nonnull(bytes);
        ck_assert_int_eq(cli_write_file(p, bytes, n), 0);
        free(bytes);
        if (!bad) continue;
        stfpm_image m, small = {256, 256, 1, NULL};
        snprintf(src, sizeof src, "%s/data/mvtec_ad/bottle/ground_truth/broken_large/%03d_mask.png", tu_shared_dir(), i % 3);
        TU_CHECK_STATUS(stfpm_image_load(src, &m));
        small.data = malloc(256 * 256);
        ck_assert_ptr_nonnull(small.data);
        for (int y = 0; y < 256; y++)
            for (int x = 0; x < 256; x++)
                small.data[y * 256 + x] = m.data[((size_t)(y * m.h / 256) * m.w + (size_t)(x * m.w / 256)) * m.c];
        snprintf(p, sizeof p, "%s/ground_truth/broken_large/%03d_mask.png", dir, i % 3);
        TU_CHECK_STATUS(stfpm_png_write(p, 256, 256, 1, small.data));
        free(small.data);
        stfpm_image_free(&m);
    }
    cli_result r = cli_run(NULL, "test", "--data", dir, "--model", ckpt, NULL);
    cli_expect_ok("test --model <anomalib ckpt>", &r);
    printf("io_anomalib: stfpm test --model %s:\n%s", CKPT, r.out);
    const char *a = strstr(r.out, "image AUROC");
    ck_assert_msg(a != NULL, "%s", r.out);
    ck_assert_msg(fabs(strtod(a + strlen("image AUROC"), NULL) - 7.0 / 9.0) < 1e-4, "%s", r.out);
    cli_result_free(&r);
    cli_rm_rf(dir);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* hand-assembled checkpoints (legacy torch.save layout: five pickles, then the storages) */

typedef struct bld {
    unsigned char *b;
    size_t n, cap;
} bld;

static void put(bld *x, const void *p, size_t n) {
    if (x->n + n > x->cap) {
        x->cap = (x->n + n) * 2 + 4096;
        x->b = realloc(x->b, x->cap);
        ck_assert_ptr_nonnull(x->b);
    }
    memcpy(x->b + x->n, p, n);
    x->n += n;
}
#define PUTS(x, lit) put(x, lit, sizeof(lit) - 1)

static void put_str(bld *x, const char *s) {   /* BINUNICODE */
    uint32_t n = (uint32_t)strlen(s);
    unsigned char h[5] = {'X', (unsigned char)n, (unsigned char)(n >> 8), (unsigned char)(n >> 16), (unsigned char)(n >> 24)};
    put(x, h, 5);
    put(x, s, n);
}

static void put_int(bld *x, uint32_t v) {   /* BININT */
    unsigned char h[5] = {'J', (unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    put(x, h, 5);
}

typedef struct tens {
    const char *name;
    int ndim;
    int shape[4];
} tens;

static int numel_of(const tens *t) {
    int n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

/* _rebuild_tensor_v2(storage(FloatStorage, key, numel), 0, shape, contiguous stride, False, {}) */
static void put_tensor(bld *x, const tens *t, const char *key) {
    PUTS(x, "ctorch._utils\n_rebuild_tensor_v2\n((");
    put_str(x, "storage");
    PUTS(x, "ctorch\nFloatStorage\n");
    put_str(x, key);
    put_str(x, "cpu");
    put_int(x, (uint32_t)numel_of(t));
    PUTS(x, "tQ");
    put_int(x, 0);
    PUTS(x, "(");
    for (int d = 0; d < t->ndim; d++) put_int(x, (uint32_t)t->shape[d]);
    PUTS(x, "t(");
    for (int d = 0; d < t->ndim; d++) {
        int s = 1;
        for (int e = d + 1; e < t->ndim; e++) s *= t->shape[e];
        put_int(x, (uint32_t)s);
    }
    PUTS(x, "t\x89}tR");
}

/* The objects a Lightning checkpoint pickles beside its weights, none of them whitelisted:
 * an enum member (REDUCE of its class), a callback (NEWOBJ + BUILD with a state dict), an
 * enum member pickled by name (getattr), a set, protocol 4's STACK_GLOBAL, EMPTY_SET /
 * ADDITEMS, FROZENSET and NEWOBJ_EX, a REDUCE of a placeholder's result. hostile: a nested
 * os.system call among them. */
static void put_lightning_objects(bld *x, int hostile) {
    put_str(x, "callbacks");
    PUTS(x, "}(");
    put_str(x, "task");
    PUTS(x, "canomalib\nTaskType\n(");
    put_str(x, "segmentation");
    PUTS(x, "tR");
    put_str(x, "ModelCheckpoint");
    PUTS(x, "clightning.pytorch.callbacks.model_checkpoint\nModelCheckpoint\n)\x81}(");
    put_str(x, "dirpath");
    put_str(x, "weights/lightning");
    PUTS(x, "ub");
    put_str(x, "by_name");
    PUTS(x, "c__builtin__\ngetattr\n(canomalib.data\nSplitMode\n");
    put_str(x, "AUTO");
    PUTS(x, "tR");
    put_str(x, "tags");
    PUTS(x, "cbuiltins\nset\n(]("); put_str(x, "a"); put_str(x, "b"); PUTS(x, "etR");
    put_str(x, "p4");
    PUTS(x, "\x8c\x0b" "torchvision\x8c\x11" "InterpolationMode\x93");   /* STACK_GLOBAL */
    PUTS(x, "(");
    put_str(x, "bilinear");
    PUTS(x, "tR");
    put_str(x, "p4set");
    PUTS(x, "\x8f(K\x01K\x02\x90");                                     /* EMPTY_SET, ADDITEMS */
    put_str(x, "p4frozen");
    PUTS(x, "(K\x03\x91");                                              /* FROZENSET */
    put_str(x, "p4newobj_ex");
    PUTS(x, "cfunctools\npartial\n)}\x92");                             /* NEWOBJ_EX */
    put_str(x, "called_result");
    PUTS(x, "cjsonargparse\nNamespace\n)R)R");                          /* REDUCE of a placeholder */
    if (hostile) {
        put_str(x, "evil");
        PUTS(x, "cposix\nsystem\n(");
        put_str(x, "touch /tmp/pwned");
        PUTS(x, "tR");
    }
    PUTS(x, "u");
}

/* A checkpoint {"epoch", "state_dict": OrderedDict of tensors, "hyper_parameters": an opaque
 * dict subclass {backbone, layers}, "callbacks": opaque objects, ...} with prefix + names as
 * the state_dict's keys; backbone NULL: no hyper_parameters. The tensors' values are 0.25 k. */
static bld make_checkpoint(const char *backbone, const tens *ts, int nt, const char *prefix, int hostile) {
    bld x = {0};
    PUTS(&x, "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.");   /* magic */
    PUTS(&x, "\x80\x02M\xe9\x03.");                                       /* protocol 1001 */
    PUTS(&x, "\x80\x02}(");
    put_str(&x, "little_endian");
    PUTS(&x, "\x88u.");
    /* the object (protocol 4: the placeholders above use its opcodes) */
    PUTS(&x, "\x80\x04}(");
    put_str(&x, "epoch");
    PUTS(&x, "K\x02");
    put_str(&x, "pytorch-lightning_version");
    put_str(&x, "2.6.6");
    put_str(&x, "state_dict");
    PUTS(&x, "ccollections\nOrderedDict\n)R(");
    char name[256], key[16];
    for (int i = 0; i < nt; i++) {
        snprintf(name, sizeof name, "%s%s", prefix, ts[i].name);
        snprintf(key, sizeof key, "%d", i);
        put_str(&x, name);
        put_tensor(&x, &ts[i], key);
    }
    PUTS(&x, "u");
    if (backbone) {
        put_str(&x, "hyper_parameters");
        PUTS(&x, "clightning.fabric.utilities.data\nAttributeDict\n)\x81(");
        put_str(&x, "backbone");
        put_str(&x, backbone);
        put_str(&x, "layers");
        PUTS(&x, "](");
        put_str(&x, "layer1");
        put_str(&x, "layer2");
        put_str(&x, "layer3");
        PUTS(&x, "eu");
    }
    put_lightning_objects(&x, hostile);
    PUTS(&x, "u.");
    /* storage keys, then each storage: int64 count + float32 data */
    PUTS(&x, "\x80\x02](");
    for (int i = 0; i < nt; i++) {
        snprintf(key, sizeof key, "%d", i);
        put_str(&x, key);
    }
    PUTS(&x, "e.");
    for (int i = 0; i < nt; i++) {
        uint64_t n = (uint64_t)numel_of(&ts[i]);
        put(&x, &n, 8);
        for (uint64_t k = 0; k < n; k++) {
            float v = 0.25f * (float)k;
            put(&x, &v, 4);
        }
    }
    return x;
}

static const tens tiny_resnet50[] = {   /* what tells a Bottleneck ResNet apart: layer1.0.conv3 */
    {"conv1.weight", 4, {2, 3, 1, 1}}, {"layer1.0.conv1.weight", 4, {2, 2, 1, 1}},
    {"layer1.0.conv3.weight", 4, {4, 2, 1, 1}},
};
#define T_PREFIX "model.teacher_model.feature_extractor."

START_TEST(test_opaque_objects_skipped) {
    bld x = make_checkpoint("wide_resnet50_2", tiny_resnet50, 3, T_PREFIX, 0);
    stfpm_weights w;
    TU_CHECK_STATUS(stfpm_pth_read_mem(x.b, x.n, "lightning.ckpt", &w));
    ck_assert_int_eq(w.count, 3);
    const stfpm_weight *t = stfpm_weights_find(&w, T_PREFIX "layer1.0.conv3.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ndim, 4);
    ck_assert_int_eq(t->shape[0], 4);
    ck_assert_float_eq(t->data[7], 1.75f);
    /* the dict subclass's items are read; the placeholders give no metadata */
    ck_assert_str_eq(stfpm_weights_meta(&w, "ckpt.hyper_parameters.backbone"), "wide_resnet50_2");
    ck_assert_str_eq(stfpm_weights_meta(&w, "ckpt.hyper_parameters.layers"), "layer1,layer2,layer3");
    ck_assert_str_eq(stfpm_weights_meta(&w, "ckpt.epoch"), "2");
    ck_assert_str_eq(stfpm_weights_meta(&w, "ckpt.pytorch-lightning_version"), "2.6.6");
    ck_assert_ptr_null(stfpm_weights_meta(&w, "ckpt.callbacks.task"));
    stfpm_weights_free(&w);
    free(x.b);

    /* a hostile global among the skipped objects is still refused, naming it */
    x = make_checkpoint("resnet18", tiny_resnet50, 3, T_PREFIX, 1);
    ck_assert_int_eq(stfpm_pth_read_mem(x.b, x.n, "hostile.ckpt", &w), STFPM_ERR_FORMAT);
    const char *msg = stfpm_last_error();
    ck_assert_msg(strstr(msg, "hostile.ckpt") && strstr(msg, "posix.system") && strstr(msg, "not allowed"), "%s", msg);
    ck_assert_int_eq(w.count, 0);
    free(x.b);

    /* a state_dict entry rebuilt by a torch function outside the whitelist is an error naming
     * both, not a silently missing tensor */
    bld q = {0};
    PUTS(&q, "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.\x80\x02M\xe9\x03.\x80\x02}(");
    put_str(&q, "little_endian");
    PUTS(&q, "\x88u.\x80\x02}(");
    put_str(&q, "state_dict");
    PUTS(&q, "}(");
    put_str(&q, "layer1.0.conv1.weight");
    PUTS(&q, "ctorch._utils\n_rebuild_qtensor\n)Ruu.\x80\x02].");
    ck_assert_int_eq(stfpm_pth_read_mem(q.b, q.n, "quantized.ckpt", &w), STFPM_ERR_FORMAT);
    msg = stfpm_last_error();
    ck_assert_msg(strstr(msg, "quantized.ckpt") && strstr(msg, "layer1.0.conv1.weight") &&
                  strstr(msg, "torch._utils._rebuild_qtensor"), "%s", msg);
    free(q.b);

    /* a whole pickled module (not a state_dict) is named as such */
    bld y = {0};
    PUTS(&y, "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.\x80\x02M\xe9\x03.\x80\x02}(");
    put_str(&y, "little_endian");
    PUTS(&y, "\x88u.\x80\x02" "ctorch.nn.modules.conv\nConv2d\n)\x81}b.\x80\x02].");
    ck_assert_int_eq(stfpm_pth_read_mem(y.b, y.n, "module.pth", &w), STFPM_ERR_FORMAT);
    msg = stfpm_last_error();
    ck_assert_msg(strstr(msg, "module.pth") && strstr(msg, "torch.nn.modules.conv.Conv2d") && strstr(msg, "state_dict"),
                  "%s", msg);
    free(y.b);
}
END_TEST

static void write_or_fail(const char *path, const bld *x) {
    ck_assert_msg(cli_write_file(path, x->b, x->n) == 0, "cannot write %s", path);
}

START_TEST(test_other_backbones_refused) {
    char *dir = cli_mkdtemp("anomalib");
    char named[1200], shaped[1200], r34[1200];
    snprintf(named, sizeof named, "%s/wide.ckpt", dir);
    snprintf(shaped, sizeof shaped, "%s/r50.ckpt", dir);
    snprintf(r34, sizeof r34, "%s/r34.ckpt", dir);
    bld a = make_checkpoint("wide_resnet50_2", tiny_resnet50, 3, T_PREFIX, 0);
    bld b = make_checkpoint(NULL, tiny_resnet50, 3, T_PREFIX, 0);
    /* basic blocks but three of them in layer1, under the inner model's naming */
    static const tens tiny_resnet34[] = {
        {"conv1.weight", 4, {2, 3, 1, 1}}, {"layer1.0.conv1.weight", 4, {2, 2, 1, 1}},
        {"layer1.2.conv1.weight", 4, {2, 2, 1, 1}},
    };
    bld c = make_checkpoint(NULL, tiny_resnet34, 3, "student_model.feature_extractor.", 0);
    write_or_fail(named, &a);
    write_or_fail(shaped, &b);
    write_or_fail(r34, &c);
    free(a.b);
    free(b.b);
    free(c.b);

    stfpm_ctx *ctx = tu_ctx();
    static const struct { const char *file, *n1, *n2; } cases[] = {
        {"wide.ckpt", "wide_resnet50_2", "hyper_parameters.backbone"},
        {"r50.ckpt", "resnet50", "Bottleneck"},
        {"r34.ckpt", "resnet34", "only resnet18"},
    };
    const char *paths[3] = {named, shaped, r34};
    for (int i = 0; i < 3; i++) {
        stfpm_model m = {0};
        ck_assert_int_eq(stfpm_model_load(ctx, &m, paths[i], STFPM_MODEL_INFER, NULL), STFPM_ERR_FORMAT);
        const char *msg = stfpm_last_error();
        printf("io_anomalib: %s: %s\n", cases[i].file, msg);
        ck_assert_msg(strstr(msg, cases[i].file) && strstr(msg, cases[i].n1) && strstr(msg, cases[i].n2), "%s", msg);
    }
    /* the CLI says the same */
    cli_result r = cli_run(NULL, "predict", "--model", named, named, NULL);
    static const char *const needles[] = {"wide.ckpt", "wide_resnet50_2", NULL};
    cli_expect_fail("predict --model <wide_resnet50_2 ckpt>", &r, -1, needles);
    cli_result_free(&r);
    cli_rm_rf(dir);
}
END_TEST

int main(void) {
    Suite *s = suite_create("io_anomalib");
    TCase *tc = tcase_create("anomalib");
    tcase_add_test(tc, test_real_checkpoint_matches_anomalib);
    tcase_add_test(tc, test_cli_predict_checkpoint);
    tcase_add_test(tc, test_cli_test_checkpoint);
    tcase_add_test(tc, test_opaque_objects_skipped);
    tcase_add_test(tc, test_other_backbones_refused);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
