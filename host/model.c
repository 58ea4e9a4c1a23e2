/* STFPM model: teacher + student, batch operations, model files. */
#include "stfpm/model.h"
#include "options.h"
#include "stfpm/image.h"
#include "stfpm/ops.h"
#include "runtime.h"

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

stfpm_status stfpm_parse_layers(const char *text, int layers[4], int *n_layers) {
    int seen[5] = {0};
    const char *p = text;
    if (!text || !*text) return stfpm_set_error(STFPM_ERR_ARG, "--layers is empty (expected e.g. 1,2,3)");
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 4)
            return stfpm_set_error(STFPM_ERR_ARG, "--layers \"%s\": each entry must be 1, 2, 3 or 4 "
                                   "(ResNet-18 layer1..layer4)", text);
        seen[v] = 1;
        p = end;
        if (*p == ',') p++;
        else if (*p) return stfpm_set_error(STFPM_ERR_ARG, "--layers \"%s\": expected a comma-separated list", text);
    }
    *n_layers = 0;
    for (int l = 1; l <= 4; l++)
        if (seen[l]) layers[(*n_layers)++] = l;
    return STFPM_OK;
}

void stfpm_format_layers(const int *layers, int n, char *out, size_t out_len) {
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < n && k + 3 < out_len; i++) k += (size_t)snprintf(out + k, out_len - k, i ? ",%d" : "%d", layers[i]);
}

stfpm_status stfpm_model_init(stfpm_ctx *ctx, stfpm_model *m, int size, const int *layers, int n_layers,
                              stfpm_model_mode mode) {
    return stfpm_model_init_backbone(ctx, m, STFPM_RESNET18, size, layers, n_layers, mode);
}

stfpm_status stfpm_model_init_backbone(stfpm_ctx *ctx, stfpm_model *m, stfpm_backbone backbone, int size,
                                       const int *layers, int n_layers, stfpm_model_mode mode) {
    memset(m, 0, sizeof *m);
    m->backbone = backbone;
    m->threshold = NAN;
    if (size < 32 || size % 32 != 0)
        return stfpm_set_error(STFPM_ERR_ARG, "image size %d: must be a positive multiple of 32 (the "
                               "network's total stride), e.g. 256", size);
    if (n_layers < 1 || n_layers > 4) return stfpm_set_error(STFPM_ERR_ARG, "need 1..4 layers");
    m->size = size;
    m->n_layers = n_layers;
    for (int i = 0; i < n_layers; i++) m->layers[i] = layers[i];
    m->depth = layers[n_layers - 1];
    stfpm_status s = stfpm_resnet_create_backbone(ctx, backbone, m->depth, STFPM_NET_FROZEN, &m->teacher);
    if (s == STFPM_OK)
        s = stfpm_resnet_create_backbone(ctx, backbone, m->depth,
                                         mode == STFPM_MODEL_TRAIN ? STFPM_NET_TRAINABLE : STFPM_NET_FROZEN, &m->student);
    if (s == STFPM_OK) s = stfpm_pyramid_create(ctx, &m->pyr);
    if (s != STFPM_OK) stfpm_model_free(ctx, m);
    return s;
}

void stfpm_model_free(stfpm_ctx *ctx, stfpm_model *m) {
    stfpm_resnet_free(ctx, m->teacher);
    stfpm_resnet_free(ctx, m->student);
    stfpm_pyramid_free(ctx, m->pyr);
    stfpm_tensor_free(ctx, &m->x);
    stfpm_tensor_free(ctx, &m->map);
    stfpm_tensor_free(ctx, &m->score);
    for (int l = 0; l < 4; l++) stfpm_tensor_free(ctx, &m->tbatch[l]);
    memset(m, 0, sizeof *m);
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

stfpm_status stfpm_find_teacher(stfpm_backbone backbone, const char *explicit_path, char *out, size_t out_len) {
    if (explicit_path && *explicit_path) {
        if (!file_exists(explicit_path))
            return stfpm_set_error(STFPM_ERR_IO, "teacher weights %s: no such file", explicit_path);
        snprintf(out, out_len, "%s", explicit_path);
        return STFPM_OK;
    }
    const char *env = stfpm_env_teacher();
    if (env) {
        if (!file_exists(env))
            return stfpm_set_error(STFPM_ERR_IO, "teacher weights %s (from STFPM_TEACHER): no such file", env);
        snprintf(out, out_len, "%s", env);
        return STFPM_OK;
    }
    char pattern[1200], hub[1100];
    stfpm_env_torch_checkpoints(hub, sizeof hub);
    const char *bb = stfpm_backbone_name(backbone);
    snprintf(pattern, sizeof pattern, "%s/%s-*.pth", hub, bb);
    glob_t g;
    int found = glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc > 0;
    if (found) snprintf(out, out_len, "%s", g.gl_pathv[0]);
    globfree(&g);
    if (found) return STFPM_OK;
    if (backbone == STFPM_RESNET18)
        return stfpm_set_error(STFPM_ERR_IO,
                               "no teacher weights found: pass --teacher FILE, set STFPM_TEACHER, or put "
                               "torchvision's resnet18-f37072fd.pth in %s (data/fetch_weights.sh downloads it "
                               "from https://download.pytorch.org/models/resnet18-f37072fd.pth; timm's "
                               "resnet18.tv_in1k model.safetensors also works)", pattern);
    return stfpm_set_error(STFPM_ERR_IO,
                           "no %s teacher weights found: pass --teacher FILE, set STFPM_TEACHER, or put "
                           "torchvision's %s .pth file in %s (`data/fetch_weights.sh %s` downloads it from "
                           "https://download.pytorch.org/models/)", bb, bb, pattern, bb);
}

stfpm_status stfpm_model_load_teacher(stfpm_ctx *ctx, stfpm_model *m, const char *path) {
    stfpm_weights w = {0};
    STFPM_TRY(stfpm_weights_load(path, &w));
    stfpm_status s = STFPM_OK;
    char why[300];
    int got = -1;
    const char *name = stfpm_resnet_weights_backbone(&w, "", &got, why, sizeof why);
    const char *want = stfpm_backbone_name(m->backbone);
    if (name && got != (int)m->backbone)
        s = stfpm_set_error(STFPM_ERR_FORMAT, "teacher file %s holds a %s (%s), but the backbone is %s: pass "
                            "--backbone %s%s, or a %s teacher file", path, name, why, want,
                            got >= 0 ? name : "with a supported backbone", got >= 0 ? "" : " (resnet18, resnet34, "
                            "resnet50, wide_resnet50_2)", want);
    else if (m->depth == 4 && !stfpm_resnet_weights_have_layer(&w, "", 4))
        s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: --layers includes 4 but this teacher file has no layer4 "
                            "weights (use a full torchvision %s file)", path, want);
    if (s == STFPM_OK) s = stfpm_resnet_load(ctx, m->teacher, &w, path, NULL);
    stfpm_weights_free(&w);
    return s;
}

stfpm_status stfpm_model_save(stfpm_ctx *ctx, stfpm_model *m, const char *path, stfpm_save_content content,
                              const char *const *meta_keys, const char *const *meta_values, int n_meta) {
    stfpm_weights w = {0};
    stfpm_status s = stfpm_resnet_export(ctx, m->teacher, &w, "teacher.");
    if (s == STFPM_OK) s = stfpm_resnet_export(ctx, m->student, &w, "student.");
    if (s == STFPM_OK && content == STFPM_SAVE_WITH_MOMENTUM) s = stfpm_resnet_export_momentum(ctx, m->student, &w, "student.");
    if (s == STFPM_OK) {
        const char *keys[64], *vals[64];
        char size[32], layers[32], thr[64];
        int k = 0;
        snprintf(size, sizeof size, "%d", m->size);
        stfpm_format_layers(m->layers, m->n_layers, layers, sizeof layers);
        snprintf(thr, sizeof thr, "%.9g", m->threshold);
        keys[k] = "format"; vals[k++] = "stfpm-cl-1";
        keys[k] = "backbone"; vals[k++] = stfpm_backbone_name(m->backbone);
        keys[k] = "size"; vals[k++] = size;
        keys[k] = "layers"; vals[k++] = layers;
        keys[k] = "threshold"; vals[k++] = thr;
        for (int i = 0; i < n_meta && k < 64; i++) { keys[k] = meta_keys[i]; vals[k++] = meta_values[i]; }
        s = stfpm_safetensors_write(path, &w, keys, vals, k);
    }
    stfpm_weights_free(&w);
    return s;
}

stfpm_status stfpm_model_resolve_path(const char *p, char *out, size_t out_len) {
    struct stat st;
    if (stat(p, &st) != 0) return stfpm_set_error(STFPM_ERR_IO, "model %s: %s", p, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        snprintf(out, out_len, "%s/best.safetensors", p);
        if (!file_exists(out))
            return stfpm_set_error(STFPM_ERR_IO, "model directory %s has no best.safetensors (train into it "
                                   "first with `stfpm train --out %s`)", p, p);
    } else {
        snprintf(out, out_len, "%s", p);
    }
    return STFPM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* anomalib STFPM checkpoints (Lightning .ckpt)
 *
 * anomalib's Stfpm keeps both networks as timm feature extractors whose parameters carry the
 * torchvision names: state_dict keys "model.teacher_model.feature_extractor.<name>" and
 * "model.student_model.feature_extractor.<name>" (without the leading "model." when the
 * inner model's state_dict was saved alone). The configuration comes from the checkpoint's
 * plain values (stfpm_pth_read gives them as "ckpt.*" metadata):
 *   - backbone: hyper_parameters.backbone, which must be resnet18; without it, the layer
 *     shapes must be ResNet-18's. Anything else is refused, naming the backbone.
 *   - layers: hyper_parameters.layers ("layer1,layer2,layer3"), default 1,2,3.
 *   - image size: hyper_parameters.image_size / input_size when present, else the Resize of
 *     the pre-processor configuration (anomalib_pre_processor_config), else 256 (anomalib's
 *     default). A Normalize there must use the ImageNet statistics, which stfpm-cl applies.
 *   - threshold: anomalib's per-level map is 0.5 * ||t - s||^2, so its map and score are
 *     2^-L of stfpm-cl's for L layers. post_processor._image_threshold (anomalib's adaptive
 *     image threshold, on its raw scores) times 2^L becomes the model's threshold when it is
 *     finite and positive; otherwise the model has no threshold. */

static const char *const anomalib_prefixes[][2] = {
    {"model.teacher_model.feature_extractor.", "model.student_model.feature_extractor."},
    {"teacher_model.feature_extractor.", "student_model.feature_extractor."},
};

static const stfpm_weight *find_prefixed(const stfpm_weights *w, const char *prefix, const char *name) {
    char full[STFPM_WEIGHT_NAME_MAX + 64];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    return stfpm_weights_find(w, full);
}

/* Index into anomalib_prefixes of the naming w uses, -1 when it is no anomalib STFPM. */
static int anomalib_naming(const stfpm_weights *w) {
    for (int k = 0; k < 2; k++)
        if (find_prefixed(w, anomalib_prefixes[k][0], "conv1.weight") ||
            find_prefixed(w, anomalib_prefixes[k][1], "conv1.weight"))
            return k;
    return -1;
}

static int shape_is(const stfpm_weight *t, int ndim, int64_t a, int64_t b, int64_t c, int64_t d) {
    const int64_t want[4] = {a, b, c, d};
    if (!t || t->ndim != ndim) return 0;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != want[i]) return 0;
    return 1;
}

/* NULL when the tensors under prefix have ResNet-18's layout, else a description of what they
 * are (in buf). */
static const char *backbone_from_shapes(const stfpm_weights *w, const char *prefix, char *buf, size_t cap) {
    const stfpm_weight *c1 = find_prefixed(w, prefix, "conv1.weight");
    const stfpm_weight *l1 = find_prefixed(w, prefix, "layer1.0.conv1.weight");
    if (!c1) {
        snprintf(buf, cap, "unknown (no %sconv1.weight)", prefix);
        return buf;
    }
    if (find_prefixed(w, prefix, "layer1.0.conv3.weight")) {   /* Bottleneck blocks */
        int wide = l1 && l1->ndim >= 1 && l1->shape[0] > 64;
        int deep = find_prefixed(w, prefix, "layer3.6.conv1.weight") != NULL;
        snprintf(buf, cap, "%s (Bottleneck blocks)",
                 wide ? (deep ? "wide_resnet101_2" : "wide_resnet50_2")
                      : (deep ? "resnet101 or resnet152" : "resnet50"));
        return buf;
    }
    if (find_prefixed(w, prefix, "layer1.2.conv1.weight")) {
        snprintf(buf, cap, "resnet34 (three or more blocks in layer1)");
        return buf;
    }
    static const struct { const char *name; int64_t s[4]; } r18[] = {
        {"conv1.weight", {64, 3, 7, 7}},           {"layer1.0.conv1.weight", {64, 64, 3, 3}},
        {"layer2.0.conv1.weight", {128, 64, 3, 3}}, {"layer3.0.conv1.weight", {256, 128, 3, 3}},
    };
    for (size_t i = 0; i < sizeof r18 / sizeof r18[0]; i++) {
        const stfpm_weight *t = find_prefixed(w, prefix, r18[i].name);
        if (t && !shape_is(t, 4, r18[i].s[0], r18[i].s[1], r18[i].s[2], r18[i].s[3])) {
            size_t k = (size_t)snprintf(buf, cap, "not ResNet-18 (%s%s is [", prefix, r18[i].name);
            for (int d = 0; d < t->ndim && k < cap; d++)
                k += (size_t)snprintf(buf + k, cap - k, d ? ",%lld" : "%lld", (long long)t->shape[d]);
            if (k < cap) snprintf(buf + k, cap - k, "], ResNet-18's is [%lld,%lld,%lld,%lld])", (long long)r18[i].s[0],
                                  (long long)r18[i].s[1], (long long)r18[i].s[2], (long long)r18[i].s[3]);
            return buf;
        }
    }
    return NULL;
}

/* "a,b,c" of doubles into v (at most n); the count read, -1 when malformed. */
static int parse_list(const char *text, double *v, int n) {
    int k = 0;
    const char *p = text;
    while (*p) {
        char *end;
        double x = strtod(p, &end);
        if (end == p || k == n) return -1;
        v[k++] = x;
        if (*end == ',') end++;
        else if (*end) return -1;
        p = end;
    }
    return k;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The pre-processor transform named class_suffix (the transform itself, or one of a Compose's
 * first 64): the metadata key prefix of its init_args in key (size cap), 0 when absent. */
static int find_transform(const stfpm_weights *w, const char *class_suffix, char *key, size_t cap) {
    static const char *const base = "ckpt.anomalib_pre_processor_config.transform";
    char k[256];
    snprintf(k, sizeof k, "%s.class_path", base);
    const char *c = stfpm_weights_meta(w, k);
    if (c && ends_with(c, class_suffix)) {
        snprintf(key, cap, "%s.init_args", base);
        return 1;
    }
    for (int i = 0; i < 64; i++) {
        snprintf(k, sizeof k, "%s.init_args.transforms.%d.class_path", base, i);
        c = stfpm_weights_meta(w, k);
        if (c && ends_with(c, class_suffix)) {
            snprintf(key, cap, "%s.init_args.transforms.%d.init_args", base, i);
            return 1;
        }
    }
    return 0;
}

static const char *meta_at(const stfpm_weights *w, const char *key_prefix, const char *leaf) {
    char k[320];
    snprintf(k, sizeof k, "%s.%s", key_prefix, leaf);
    return stfpm_weights_meta(w, k);
}

/* Image size, layers (as "1,2,3") and backbone check of an anomalib checkpoint. */
static stfpm_status anomalib_config(const stfpm_weights *w, const char *path, const char *prefix, int *size,
                                    char *layers, size_t layers_len) {
    char what[200];
    const char *bb = stfpm_weights_meta(w, "ckpt.hyper_parameters.backbone");
    if (bb && strcmp(bb, "resnet18") != 0 && strncmp(bb, "resnet18.", 9) != 0)
        return stfpm_set_error(STFPM_ERR_FORMAT, "%s: an anomalib STFPM checkpoint with backbone %s "
                               "(hyper_parameters.backbone): only resnet18 is supported", path, bb);
    const char *shapes = backbone_from_shapes(w, prefix, what, sizeof what);
    if (shapes)
        return stfpm_set_error(STFPM_ERR_FORMAT, "%s: an anomalib STFPM checkpoint whose backbone is %s: "
                               "only resnet18 is supported", path, shapes);
    /* layers */
    const char *hl = stfpm_weights_meta(w, "ckpt.hyper_parameters.layers");
    if (!hl) {
        snprintf(layers, layers_len, "1,2,3");
    } else {
        size_t k = 0;
        const char *p = hl;
        layers[0] = 0;
        while (*p) {
            const char *end = strchr(p, ',');
            size_t n = end ? (size_t)(end - p) : strlen(p);
            if (n != 6 || strncmp(p, "layer", 5) != 0 || p[5] < '1' || p[5] > '4' || k + 3 > layers_len)
                return stfpm_set_error(STFPM_ERR_FORMAT, "%s: hyper_parameters.layers is \"%s\": expected ResNet "
                                       "layer names layer1 .. layer4", path, hl);
            k += (size_t)snprintf(layers + k, layers_len - k, k ? ",%c" : "%c", p[5]);
            p += n;
            if (*p == ',') p++;
        }
        if (!k) return stfpm_set_error(STFPM_ERR_FORMAT, "%s: hyper_parameters.layers is empty", path);
    }
    /* image size */
    const char *st = stfpm_weights_meta(w, "ckpt.hyper_parameters.image_size");
    const char *from = "hyper_parameters.image_size";
    char tk[256];
    if (!st) {
        st = stfpm_weights_meta(w, "ckpt.hyper_parameters.input_size");
        from = "hyper_parameters.input_size";
    }
    if (!st && find_transform(w, "Resize", tk, sizeof tk)) {
        st = meta_at(w, tk, "size");
        from = "the pre-processor's Resize size";
    }
    *size = 256;
    if (st) {
        double v[2];
        int n = parse_list(st, v, 2);
        if (n < 1 || (n == 2 && v[0] != v[1]) || v[0] != floor(v[0]) || v[0] < 32 || v[0] > 8192)
            return stfpm_set_error(STFPM_ERR_FORMAT, "%s: image size \"%s\" (%s): stfpm-cl needs one square size, a "
                                   "multiple of 32", path, st, from);
        *size = (int)v[0];
    }
    /* normalisation */
    if (find_transform(w, "Normalize", tk, sizeof tk)) {
        const char *keys[2] = {"mean", "std"};
        const float *want[2] = {stfpm_imagenet_mean, stfpm_imagenet_std};
        for (int i = 0; i < 2; i++) {
            const char *t = meta_at(w, tk, keys[i]);
            double v[3];
            if (!t) continue;
            int ok = parse_list(t, v, 3) == 3;
            for (int c = 0; c < 3 && ok; c++) ok = fabs(v[c] - want[i][c]) <= 1e-3;
            if (!ok)
                return stfpm_set_error(STFPM_ERR_FORMAT, "%s: the pre-processor normalises with %s %s; stfpm-cl "
                                       "uses the ImageNet statistics (mean 0.485,0.456,0.406, std "
                                       "0.229,0.224,0.225)", path, keys[i], t);
        }
    }
    return STFPM_OK;
}

/* anomalib's threshold scaled to stfpm-cl's maps (see above), NAN when there is none. */
static float anomalib_threshold(const stfpm_weights *w, int n_layers) {
    const stfpm_weight *t = stfpm_weights_find(w, "post_processor._image_threshold");
    if (!t || stfpm_weight_numel(t) != 1 || !isfinite(t->data[0]) || !(t->data[0] > 0)) return NAN;
    return ldexpf(t->data[0], n_layers);
}

static stfpm_status anomalib_load(stfpm_ctx *ctx, stfpm_model *m, const char *path, const stfpm_weights *w,
                                  int naming, stfpm_model_mode mode) {
    const char *tp = anomalib_prefixes[naming][0], *sp = anomalib_prefixes[naming][1];
    int size = 256, L[4], nl = 0;
    char layers[16];
    STFPM_TRY(anomalib_config(w, path, find_prefixed(w, tp, "conv1.weight") ? tp : sp, &size, layers, sizeof layers));
    stfpm_status s = stfpm_parse_layers(layers, L, &nl);
    if (s == STFPM_OK) {
        /* the student's layout is checked too (the teacher's came first above) */
        char what[200];
        const char *other = backbone_from_shapes(w, sp, what, sizeof what);
        if (other)
            s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: an anomalib STFPM checkpoint whose student backbone is %s: "
                                "only resnet18 is supported", path, other);
    }
    if (s == STFPM_OK) s = stfpm_model_init(ctx, m, size, L, nl, mode);
    if (s != STFPM_OK) return stfpm_wrap_error(s, "%s (anomalib checkpoint)", path);
    s = stfpm_resnet_load(ctx, m->teacher, w, path, tp);
    if (s == STFPM_OK) s = stfpm_resnet_load(ctx, m->student, w, path, sp);
    if (s == STFPM_OK) m->threshold = anomalib_threshold(w, nl);
    return s;
}

stfpm_status stfpm_model_file_backbone(const stfpm_weights *w, const char *path, stfpm_backbone *bb) {
    const char *rec = stfpm_weights_meta(w, "backbone");
    *bb = STFPM_RESNET18;   /* files written before the backbone was recorded */
    if (rec && stfpm_backbone_parse(rec, bb) != STFPM_OK)
        return stfpm_set_error(STFPM_ERR_FORMAT, "%s records backbone \"%s\", which this version of stfpm-cl does "
                               "not know (resnet18, resnet34, resnet50, wide_resnet50_2)", path, rec);
    char why[300];
    int got = -1;
    const char *name = stfpm_resnet_weights_backbone(w, "teacher.", &got, why, sizeof why);
    if (name && got != (int)*bb)
        return stfpm_set_error(STFPM_ERR_FORMAT, "%s records backbone %s%s, but its teacher is a %s (%s)", path,
                               stfpm_backbone_name(*bb), rec ? "" : " (no backbone metadata)", name, why);
    return STFPM_OK;
}

stfpm_status stfpm_model_load(stfpm_ctx *ctx, stfpm_model *m, const char *path, stfpm_model_mode mode,
                              stfpm_weights *w_out) {
    stfpm_weights w = {0};
    STFPM_TRY(stfpm_weights_load(path, &w));
    stfpm_status s = STFPM_OK;
    const char *fmt = stfpm_weights_meta(&w, "format");
    const char *size = stfpm_weights_meta(&w, "size");
    const char *layers = stfpm_weights_meta(&w, "layers");
    int L[4], nl = 0;
    int naming = fmt ? -1 : anomalib_naming(&w);
    if (naming >= 0) {
        memset(m, 0, sizeof *m);
        s = anomalib_load(ctx, m, path, &w, naming, mode);
        if (s != STFPM_OK && m->teacher) stfpm_model_free(ctx, m);
        if (s == STFPM_OK && w_out) *w_out = w;
        else stfpm_weights_free(&w);
        return s;
    }
    if (!fmt && stfpm_weights_meta(&w, "ckpt.pytorch-lightning_version"))
        s = stfpm_set_error(STFPM_ERR_FORMAT, "%s is a Lightning checkpoint without anomalib STFPM weights "
                            "(no model.teacher_model.feature_extractor.* / model.student_model.feature_extractor.* "
                            "tensors): only anomalib's Stfpm with a resnet18 backbone can be loaded", path);
    else if (!fmt || strcmp(fmt, "stfpm-cl-1") != 0 || !size || !layers)
        s = stfpm_set_error(STFPM_ERR_FORMAT, "%s is not an stfpm-cl model file (metadata format/size/layers "
                            "missing); train one with `stfpm train`, or pass an anomalib STFPM checkpoint", path);
    if (s == STFPM_OK) s = stfpm_parse_layers(layers, L, &nl);
    stfpm_backbone bb = STFPM_RESNET18;
    if (s == STFPM_OK) s = stfpm_model_file_backbone(&w, path, &bb);
    if (s == STFPM_OK) s = stfpm_model_init_backbone(ctx, m, bb, atoi(size), L, nl, mode);
    if (s == STFPM_OK) s = stfpm_resnet_load(ctx, m->teacher, &w, path, "teacher.");
    if (s == STFPM_OK) s = stfpm_resnet_load(ctx, m->student, &w, path, "student.");
    if (s == STFPM_OK) {
        const char *thr = stfpm_weights_meta(&w, "threshold");
        m->threshold = thr ? strtof(thr, NULL) : NAN;
    }
    if (s != STFPM_OK && m->teacher) stfpm_model_free(ctx, m);
    if (s == STFPM_OK && w_out) *w_out = w;
    else stfpm_weights_free(&w);
    return s;
}

stfpm_status stfpm_model_reserve(stfpm_ctx *ctx, stfpm_model *m, int n) {
    if (n <= m->cap) return STFPM_OK;
    stfpm_tensor_free(ctx, &m->x);
    stfpm_tensor_free(ctx, &m->map);
    stfpm_tensor_free(ctx, &m->score);
    for (int l = 0; l < 4; l++) stfpm_tensor_free(ctx, &m->tbatch[l]);
    m->cap = 0;
    STFPM_TRY(stfpm_tensor_alloc(ctx, &m->x, n, 3, m->size, m->size));
    STFPM_TRY(stfpm_tensor_alloc(ctx, &m->map, n, 1, m->size, m->size));
    STFPM_TRY(stfpm_tensor_alloc(ctx, &m->score, n, 1, 1, 1));
    m->cap = n;
    return STFPM_OK;
}

static void level_shape(const stfpm_model *m, int layer, int *c, int *h) {
    *c = stfpm_resnet_out_channels(m->teacher, layer);
    *h = m->size / stfpm_resnet_layer_stride(layer);
}

uint64_t stfpm_teacher_cache_bytes(const stfpm_model *m, int n) {
    uint64_t per = 0;
    for (int i = 0; i < m->n_layers; i++) {
        int c, h;
        level_shape(m, m->layers[i], &c, &h);
        per += (uint64_t)c * h * h * sizeof(float);
    }
    return per * (uint64_t)n;
}

void stfpm_teacher_cache_free(stfpm_ctx *ctx, stfpm_teacher_cache *tc) {
    for (int l = 0; l < 4; l++) stfpm_tensor_free(ctx, &tc->level[l]);
    tc->n = 0;
}

stfpm_status stfpm_teacher_cache_build(stfpm_ctx *ctx, stfpm_model *m, const float *chw, int n, int batch,
                                       uint64_t max_bytes, stfpm_teacher_cache *tc) {
    memset(tc, 0, sizeof *tc);
    if (n <= 0) return STFPM_OK;
    if (!max_bytes) max_bytes = stfpm_ctx_device(ctx)->global_mem / 2;
    uint64_t need = stfpm_teacher_cache_bytes(m, n);
    if (need > max_bytes)
        return stfpm_set_error(STFPM_ERR_OOM, "teacher feature cache for %d images needs %.1f MiB, over the "
                               "limit of %.1f MiB", n, need / 1048576.0, max_bytes / 1048576.0);
    stfpm_status s = STFPM_OK;
    for (int i = 0; i < m->n_layers && s == STFPM_OK; i++) {
        int c, h;
        level_shape(m, m->layers[i], &c, &h);
        s = stfpm_tensor_alloc(ctx, &tc->level[i], n, c, h, h);
    }
    if (s == STFPM_OK) s = stfpm_model_reserve(ctx, m, batch);
    size_t per = (size_t)3 * m->size * m->size;
    for (int i0 = 0; i0 < n && s == STFPM_OK; i0 += batch) {
        int nb = n - i0 < batch ? n - i0 : batch;
        stfpm_tensor x = stfpm_tensor_view(&m->x, 0, nb), tf[4];
        s = stfpm_tensor_upload(ctx, &x, chw + per * i0);
        if (s == STFPM_OK) s = stfpm_resnet_forward(ctx, m->teacher, &x, STFPM_BN_EVAL, m->depth, tf);
        for (int i = 0; i < m->n_layers && s == STFPM_OK; i++) {
            stfpm_tensor dst = stfpm_tensor_view(&tc->level[i], i0, nb);
            s = stfpm_tensor_copy(ctx, &tf[m->layers[i] - 1], &dst);
        }
    }
    if (s == STFPM_OK) s = stfpm_finish(ctx);
    if (s != STFPM_OK) { stfpm_teacher_cache_free(ctx, tc); return s; }
    tc->n = n;
    return STFPM_OK;
}

/* Upload x; teacher features from the cache (idx) or a teacher forward; student forward. */
static stfpm_status forward_pair(stfpm_ctx *ctx, stfpm_model *m, const float *chw, int n, int train,
                                 const stfpm_teacher_cache *tc, const int *idx, stfpm_tensor *tl, stfpm_tensor *sl) {
    STFPM_TRY(stfpm_model_reserve(ctx, m, n));
    stfpm_tensor x = stfpm_tensor_view(&m->x, 0, n);
    STFPM_TRY(stfpm_tensor_upload(ctx, &x, chw));
    stfpm_tensor tf[4], sf[4];
    if (tc) {
        for (int i = 0; i < m->n_layers; i++) {
            const stfpm_tensor *src = &tc->level[i];
            if (!m->tbatch[i].buf) STFPM_TRY(stfpm_tensor_alloc(ctx, &m->tbatch[i], m->cap, src->c, src->h, src->w));
            for (int k = 0; k < n; k++) {
                if (idx[k] < 0 || idx[k] >= tc->n)
                    return stfpm_set_error(STFPM_ERR_ARG, "teacher cache index %d out of range (%d)", idx[k], tc->n);
                stfpm_tensor a = stfpm_tensor_view(src, idx[k], 1), b = stfpm_tensor_view(&m->tbatch[i], k, 1);
                STFPM_TRY(stfpm_tensor_copy(ctx, &a, &b));
            }
            tl[i] = stfpm_tensor_view(&m->tbatch[i], 0, n);
        }
    } else if (!train) {
        /* eval: both networks on the same images, conv1's im2col shared */
        STFPM_TRY(stfpm_resnet_forward_eval_pair(ctx, m->teacher, m->student, &x, m->depth, tf, sf));
        for (int i = 0; i < m->n_layers; i++) tl[i] = tf[m->layers[i] - 1];
        for (int i = 0; i < m->n_layers; i++) sl[i] = sf[m->layers[i] - 1];
        return STFPM_OK;
    } else {
        STFPM_TRY(stfpm_resnet_forward(ctx, m->teacher, &x, STFPM_BN_EVAL, m->depth, tf));
        for (int i = 0; i < m->n_layers; i++) tl[i] = tf[m->layers[i] - 1];
    }
    STFPM_TRY(stfpm_resnet_forward(ctx, m->student, &x, train ? STFPM_BN_TRAIN : STFPM_BN_EVAL, m->depth, sf));
    for (int i = 0; i < m->n_layers; i++) sl[i] = sf[m->layers[i] - 1];
    return STFPM_OK;
}

stfpm_status stfpm_model_train_step(stfpm_ctx *ctx, stfpm_model *m, const float *chw, const stfpm_teacher_cache *tc,
                                    const int *idx, int n, float lr, float momentum, float weight_decay,
                                    stfpm_sgd_step_kind step, float *loss) {
    stfpm_tensor tl[4], sl[4];
    STFPM_TRY(forward_pair(ctx, m, chw, n, 1, tc, idx, tl, sl));
    STFPM_TRY(stfpm_pyramid_loss(ctx, m->pyr, m->n_layers, tl, sl, STFPM_LOSS_WITH_GRAD, loss, NULL));
    /* the pyramid's gradient buffers keep the largest batch seen: view the first n images
     * (a smaller last batch of an epoch) */
    const stfpm_tensor *df[4] = {NULL, NULL, NULL, NULL};
    stfpm_tensor dv[4];
    for (int i = 0; i < m->n_layers; i++) {
        dv[i] = stfpm_tensor_view(stfpm_pyramid_grad(m->pyr, i), 0, n);
        df[m->layers[i] - 1] = &dv[i];
    }
    STFPM_TRY(stfpm_resnet_backward(ctx, m->student, df));
    STFPM_TRY(stfpm_resnet_sgd_step(ctx, m->student, lr, momentum, weight_decay, step));
    return STFPM_OK;
}

static stfpm_status eval(stfpm_ctx *ctx, stfpm_model *m, const float *chw, const stfpm_teacher_cache *tc,
                         const int *idx, int n, float *loss, float *scores, float *maps) {
    stfpm_tensor tl[4], sl[4];
    STFPM_TRY(forward_pair(ctx, m, chw, n, 0, tc, idx, tl, sl));
    if (loss) STFPM_TRY(stfpm_pyramid_loss(ctx, m->pyr, m->n_layers, tl, sl, STFPM_LOSS_VALUE_ONLY, loss, NULL));
    if (scores || maps) {
        stfpm_tensor map = stfpm_tensor_view(&m->map, 0, n), score = stfpm_tensor_view(&m->score, 0, n);
        STFPM_TRY(stfpm_pyramid_anomaly_map(ctx, m->pyr, m->n_layers, tl, sl, &map, &score));
        if (scores) STFPM_TRY(stfpm_tensor_read(ctx, &score, scores));
        if (maps) STFPM_TRY(stfpm_tensor_read(ctx, &map, maps));
    }
    return STFPM_OK;
}

stfpm_status stfpm_model_eval(stfpm_ctx *ctx, stfpm_model *m, const float *chw, int n, float *loss,
                              float *scores, float *maps) {
    return eval(ctx, m, chw, NULL, NULL, n, loss, scores, maps);
}

stfpm_status stfpm_model_eval_cached(stfpm_ctx *ctx, stfpm_model *m, const float *chw,
                                     const stfpm_teacher_cache *tc, const int *idx, int n, float *loss,
                                     float *scores, float *maps) {
    return eval(ctx, m, chw, tc, idx, n, loss, scores, maps);
}
