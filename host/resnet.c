/* torchvision ResNets (ResNet-18/34: BasicBlock; ResNet-50, Wide-ResNet-50-2: Bottleneck, v1.5
 * with the stride on the 3x3 conv) up to layer3 (layer4 optional) from the engine's ops. One
 * image's path: x -> conv1 -> bn1 -> relu -> maxpool -> layer1 -> layer2 -> layer3 (-> layer4).
 * Activations needed by the backward pass are kept in buffers owned by the net, sized for the
 * largest batch seen so far; a smaller batch uses views of them. */
#include "stfpm/resnet.h"
#include "stfpm/ops.h"
#include "rng.h"
#include "runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ResNet-50 to layer4: stem + 16 blocks of 3 units + 4 downsamples = 53 units of 5 tensors */
#define MAX_PARAMS 272
#define MAX_BLOCKS 16
#define BN_EPS 1e-5f
#define BN_MOMENTUM 0.1f

typedef struct unit {           /* conv (no bias) followed by batch norm */
    int conv, bn;               /* parameter index of the conv weight; of the BN weight (+1 bias, +2 mean, +3 var) */
    int cin, cout, k, stride, pad;
    stfpm_tensor conv_out, bn_out, save_mean, save_invstd;   /* capacity-sized */
    /* eval mode: BN folded into the conv (fold_weights), Winograd-transformed when used */
    stfpm_tensor fw, fb;
    stfpm_conv_prepared *prep;
} unit;

/* BasicBlock: c1 (3x3, stride) -> relu -> c2 (3x3) [+ shortcut] -> relu.
 * Bottleneck: c1 (1x1) -> relu -> c2 (3x3, stride) -> relu -> c3 (1x1) [+ shortcut] -> relu. */
typedef struct block {
    unit c1, c2, c3, ds;
    int has_ds, bottleneck;
    int layer;                  /* 1..4 */
    int last_in_layer;          /* its output is the layer's feature */
    int in_c, in_h, in_w;       /* input shape (per image) */
    /* gradient buffers (capacity-sized); BasicBlock only, a Bottleneck uses the net's shared ones */
    stfpm_tensor g_out, t1, t2, t_in;
} block;

/* Per-backbone layout (torchvision). */
typedef struct arch {
    const char *name;
    int bottleneck;
    int blocks[4];
    int width[4];               /* inner width of a block of layer l (the 3x3 convs' channels) */
    int out[4];                 /* output channels of layer l */
} arch;

static const arch ARCHS[STFPM_BACKBONE_COUNT] = {
    [STFPM_RESNET18] = {"resnet18", 0, {2, 2, 2, 2}, {64, 128, 256, 512}, {64, 128, 256, 512}},
    [STFPM_RESNET34] = {"resnet34", 0, {3, 4, 6, 3}, {64, 128, 256, 512}, {64, 128, 256, 512}},
    [STFPM_RESNET50] = {"resnet50", 1, {3, 4, 6, 3}, {64, 128, 256, 512}, {256, 512, 1024, 2048}},
    [STFPM_WIDE_RESNET50_2] = {"wide_resnet50_2", 1, {3, 4, 6, 3}, {128, 256, 512, 1024}, {256, 512, 1024, 2048}},
};

struct stfpm_resnet {
    stfpm_backbone backbone;
    int depth, trainable;
    stfpm_param params[MAX_PARAMS];
    int n_params;
    unit stem;
    stfpm_tensor pool_out, g_pool, g_stem;
    block blocks[MAX_BLOCKS];
    int n_blocks;
    /* Bottleneck nets: gradient buffers shared by all blocks (sized for the largest block):
     * g[2] alternate as dL/d(block output) of consecutive blocks, bt[] are one block's
     * temporaries (see stfpm_resnet_backward). */
    stfpm_tensor g[2], bt[4];
    /* activation state */
    int cap_n, cur_n, in_h, in_w, last_train, last_max_layer;
    const stfpm_tensor *last_x;
    stfpm_tensor x_keep;        /* view of the last input (not owned) */
    uint64_t act_bytes;
    int folded;                 /* the units' fw / fb / prep match the parameters */
};

/* Eval-mode forward with BN folded into the convolutions and bias / residual / ReLU fused
 * into their output (stfpm_conv2d_forward_fused); with the fold_bn option off, conv, BN, add
 * and ReLU run as separate ops (the reference path the tests compare against). */
static int fold_enabled(stfpm_ctx *ctx) { return stfpm_ctx_get_options(ctx)->fold_bn != STFPM_SWITCH_OFF; }

void stfpm_resnet_params_changed(stfpm_resnet *net) { net->folded = 0; }

const char *stfpm_backbone_name(stfpm_backbone b) {
    return (unsigned)b < STFPM_BACKBONE_COUNT ? ARCHS[b].name : "unknown";
}

stfpm_status stfpm_backbone_parse(const char *name, stfpm_backbone *out) {
    for (int b = 0; b < STFPM_BACKBONE_COUNT; b++)
        if (name && strcmp(name, ARCHS[b].name) == 0) {
            *out = (stfpm_backbone)b;
            return STFPM_OK;
        }
    return stfpm_set_error(STFPM_ERR_ARG, "backbone \"%s\": expected resnet18, resnet34, resnet50 or "
                           "wide_resnet50_2", name ? name : "");
}

int stfpm_backbone_channels(stfpm_backbone b, int layer) {
    if ((unsigned)b >= STFPM_BACKBONE_COUNT || layer < 1 || layer > 4) return 0;
    return ARCHS[b].out[layer - 1];
}

stfpm_backbone stfpm_resnet_backbone(const stfpm_resnet *net) { return net->backbone; }
int stfpm_resnet_out_channels(const stfpm_resnet *net, int layer) { return stfpm_backbone_channels(net->backbone, layer); }
int stfpm_resnet_layer_stride(int layer) { return layer == 1 ? 4 : 4 << (layer - 1); }
int stfpm_resnet_depth(const stfpm_resnet *net) { return net->depth; }
int stfpm_resnet_param_count(const stfpm_resnet *net) { return net->n_params; }
stfpm_param *stfpm_resnet_param(stfpm_resnet *net, int i) { return &net->params[i]; }

stfpm_param *stfpm_resnet_find(stfpm_resnet *net, const char *name) {
    for (int i = 0; i < net->n_params; i++)
        if (strcmp(net->params[i].name, name) == 0) return &net->params[i];
    return NULL;
}

static int trainable_kind(stfpm_param_kind k) { return k <= STFPM_PARAM_BN_BIAS; }

static stfpm_status add_param(stfpm_ctx *ctx, stfpm_resnet *net, const char *name, stfpm_param_kind kind,
                              int n, int c, int h, int w, int *index) {
    if (net->n_params >= MAX_PARAMS)
        return stfpm_set_error(STFPM_ERR_ARG, "ResNet: more than %d parameter tensors", MAX_PARAMS);
    stfpm_param *p = &net->params[net->n_params];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->kind = kind;
    if (kind == STFPM_PARAM_CONV) {
        p->ndim = 4;
        p->shape[0] = n; p->shape[1] = c; p->shape[2] = h; p->shape[3] = w;
    } else {
        p->ndim = 1;
        p->shape[0] = c;
    }
    *index = net->n_params++;   /* counted first: stfpm_resnet_free releases a partly allocated param */
    STFPM_TRY(stfpm_tensor_alloc(ctx, &p->value, n, c, h, w));
    STFPM_TRY(stfpm_tensor_fill(ctx, &p->value, 0.0f));
    if (net->trainable && trainable_kind(kind)) {
        STFPM_TRY(stfpm_tensor_alloc(ctx, &p->grad, n, c, h, w));
        STFPM_TRY(stfpm_tensor_alloc(ctx, &p->momentum, n, c, h, w));
        STFPM_TRY(stfpm_tensor_fill(ctx, &p->grad, 0.0f));
        STFPM_TRY(stfpm_tensor_fill(ctx, &p->momentum, 0.0f));
    }
    return STFPM_OK;
}

static stfpm_status add_unit(stfpm_ctx *ctx, stfpm_resnet *net, unit *u, const char *conv_name,
                             const char *bn_prefix, int cin, int cout, int k, int stride, int pad) {
    memset(u, 0, sizeof *u);
    u->cin = cin; u->cout = cout; u->k = k; u->stride = stride; u->pad = pad;
    STFPM_TRY(add_param(ctx, net, conv_name, STFPM_PARAM_CONV, cout, cin, k, k, &u->conv));
    static const char *suffix[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int i = 0; i < 4; i++) {
        char name[160];
        int idx;
        snprintf(name, sizeof name, "%s.%s", bn_prefix, suffix[i]);
        STFPM_TRY(add_param(ctx, net, name, (stfpm_param_kind)(STFPM_PARAM_BN_WEIGHT + i), 1, cout, 1, 1, &idx));
        if (i == 0) u->bn = idx;
    }
    return STFPM_OK;
}

stfpm_status stfpm_resnet_create(stfpm_ctx *ctx, int depth, stfpm_net_params params, stfpm_resnet **out) {
    return stfpm_resnet_create_backbone(ctx, STFPM_RESNET18, depth, params, out);
}

stfpm_status stfpm_resnet_create_backbone(stfpm_ctx *ctx, stfpm_backbone backbone, int depth, stfpm_net_params params,
                                          stfpm_resnet **out) {
    const int trainable = params == STFPM_NET_TRAINABLE;
    *out = NULL;
    if ((unsigned)backbone >= STFPM_BACKBONE_COUNT)
        return stfpm_set_error(STFPM_ERR_ARG, "unknown backbone %d", (int)backbone);
    if (depth < 1 || depth > 4)
        return stfpm_set_error(STFPM_ERR_ARG, "ResNet depth must be 1..4 (layer1..layer4), got %d", depth);
    const arch *A = &ARCHS[backbone];
    stfpm_resnet *net = calloc(1, sizeof *net);
    if (!net) return stfpm_set_error(STFPM_ERR_OOM, "out of host memory");
    net->backbone = backbone;
    net->depth = depth;
    net->trainable = trainable;
    stfpm_status s = add_unit(ctx, net, &net->stem, "conv1.weight", "bn1", 3, 64, 7, 2, 3);
    int cin = 64;
    for (int l = 1; l <= depth && s == STFPM_OK; l++) {
        int cout = A->out[l - 1], width = A->width[l - 1];
        for (int b = 0; b < A->blocks[l - 1] && s == STFPM_OK; b++) {
            block *bl = &net->blocks[net->n_blocks++];
            memset(bl, 0, sizeof *bl);
            bl->layer = l;
            bl->bottleneck = A->bottleneck;
            bl->last_in_layer = b == A->blocks[l - 1] - 1;
            int stride = (b == 0 && l > 1) ? 2 : 1;
            char cn[96], bn[96];
#define UNIT(u, i, ci, co, k, st, pd)                                            \
            snprintf(cn, sizeof cn, "layer%d.%d.conv%d.weight", l, b, i);        \
            snprintf(bn, sizeof bn, "layer%d.%d.bn%d", l, b, i);                 \
            s = add_unit(ctx, net, u, cn, bn, ci, co, k, st, pd);                \
            if (s != STFPM_OK) break;
            if (A->bottleneck) {
                UNIT(&bl->c1, 1, cin, width, 1, 1, 0)
                UNIT(&bl->c2, 2, width, width, 3, stride, 1)
                UNIT(&bl->c3, 3, width, cout, 1, 1, 0)
            } else {
                UNIT(&bl->c1, 1, cin, cout, 3, stride, 1)
                UNIT(&bl->c2, 2, cout, cout, 3, 1, 1)
            }
#undef UNIT
            if (stride != 1 || cin != cout) {
                bl->has_ds = 1;
                snprintf(cn, sizeof cn, "layer%d.%d.downsample.0.weight", l, b);
                snprintf(bn, sizeof bn, "layer%d.%d.downsample.1", l, b);
                s = add_unit(ctx, net, &bl->ds, cn, bn, cin, cout, 1, stride, 0);
            }
            cin = cout;
        }
    }
    if (s != STFPM_OK) {
        stfpm_resnet_free(ctx, net);
        return s;
    }
    *out = net;
    return STFPM_OK;
}

static void free_unit_acts(stfpm_ctx *ctx, unit *u) {
    stfpm_tensor_free(ctx, &u->conv_out);
    stfpm_tensor_free(ctx, &u->bn_out);
    stfpm_tensor_free(ctx, &u->save_mean);
    stfpm_tensor_free(ctx, &u->save_invstd);
}

static void free_acts(stfpm_ctx *ctx, stfpm_resnet *net) {
    free_unit_acts(ctx, &net->stem);
    stfpm_tensor_free(ctx, &net->pool_out);
    stfpm_tensor_free(ctx, &net->g_pool);
    stfpm_tensor_free(ctx, &net->g_stem);
    for (int b = 0; b < net->n_blocks; b++) {
        block *bl = &net->blocks[b];
        free_unit_acts(ctx, &bl->c1);
        free_unit_acts(ctx, &bl->c2);
        if (bl->bottleneck) free_unit_acts(ctx, &bl->c3);
        if (bl->has_ds) free_unit_acts(ctx, &bl->ds);
        stfpm_tensor_free(ctx, &bl->g_out);
        stfpm_tensor_free(ctx, &bl->t1);
        stfpm_tensor_free(ctx, &bl->t2);
        stfpm_tensor_free(ctx, &bl->t_in);
    }
    for (int i = 0; i < 2; i++) stfpm_tensor_free(ctx, &net->g[i]);
    for (int i = 0; i < 4; i++) stfpm_tensor_free(ctx, &net->bt[i]);
    net->cap_n = 0;
    net->act_bytes = 0;
}

static void free_unit_fold(stfpm_ctx *ctx, unit *u) {
    stfpm_tensor_free(ctx, &u->fw);
    stfpm_tensor_free(ctx, &u->fb);
    stfpm_conv2d_prepared_free(ctx, u->prep);
    u->prep = NULL;
}

static void free_fold(stfpm_ctx *ctx, stfpm_resnet *net) {
    free_unit_fold(ctx, &net->stem);
    for (int b = 0; b < net->n_blocks; b++) {
        free_unit_fold(ctx, &net->blocks[b].c1);
        free_unit_fold(ctx, &net->blocks[b].c2);
        if (net->blocks[b].bottleneck) free_unit_fold(ctx, &net->blocks[b].c3);
        if (net->blocks[b].has_ds) free_unit_fold(ctx, &net->blocks[b].ds);
    }
    net->folded = 0;
}

void stfpm_resnet_free(stfpm_ctx *ctx, stfpm_resnet *net) {
    if (!net) return;
    free_acts(ctx, net);
    free_fold(ctx, net);
    for (int i = 0; i < net->n_params; i++) {
        stfpm_tensor_free(ctx, &net->params[i].value);
        stfpm_tensor_free(ctx, &net->params[i].grad);
        stfpm_tensor_free(ctx, &net->params[i].momentum);
    }
    free(net);
}

uint64_t stfpm_resnet_param_bytes(const stfpm_resnet *net) {
    uint64_t b = 0;
    for (int i = 0; i < net->n_params; i++) {
        const stfpm_param *p = &net->params[i];
        uint64_t e = stfpm_tensor_numel(&p->value) * sizeof(float);
        b += e * (p->grad.buf ? 3 : 1);
    }
    return b;
}

uint64_t stfpm_resnet_activation_bytes(const stfpm_resnet *net) { return net->act_bytes; }

/* ------------------------------------------------------------------------------------------ */
/* initialisation, loading, export */

static double uniform01(uint64_t *s) { return ((stfpm_splitmix64(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

stfpm_status stfpm_resnet_init_kaiming(stfpm_ctx *ctx, stfpm_resnet *net, uint64_t seed) {
    net->folded = 0;
    for (int i = 0; i < net->n_params; i++) {
        stfpm_param *p = &net->params[i];
        size_t n = stfpm_tensor_numel(&p->value);
        if (p->kind == STFPM_PARAM_CONV) {
            float *h = malloc(n * sizeof *h);
            if (!h) return stfpm_set_error(STFPM_ERR_OOM, "out of host memory");
            uint64_t st = seed * 0x100000001b3ULL + (uint64_t)i * 0x9e3779b97f4a7c15ULL + 12345;
            double stdv = sqrt(2.0 / (double)(p->shape[0] * p->shape[2] * p->shape[3]));
            for (size_t j = 0; j < n; j += 2) {
                double u1 = uniform01(&st), u2 = uniform01(&st);
                double r = sqrt(-2.0 * log(u1));
                h[j] = (float)(stdv * r * cos(2.0 * M_PI * u2));
                if (j + 1 < n) h[j + 1] = (float)(stdv * r * sin(2.0 * M_PI * u2));
            }
            stfpm_status s = stfpm_tensor_write(ctx, &p->value, h);
            free(h);
            STFPM_TRY(s);
        } else {
            float v = (p->kind == STFPM_PARAM_BN_WEIGHT || p->kind == STFPM_PARAM_BN_VAR) ? 1.0f : 0.0f;
            STFPM_TRY(stfpm_tensor_fill(ctx, &p->value, v));
        }
        if (p->momentum.buf) STFPM_TRY(stfpm_tensor_fill(ctx, &p->momentum, 0.0f));
    }
    return STFPM_OK;
}

stfpm_status stfpm_resnet_load(stfpm_ctx *ctx, stfpm_resnet *net, const stfpm_weights *w,
                               const char *file_label, const char *prefix) {
    if (!prefix) prefix = "";
    net->folded = 0;
    for (int i = 0; i < net->n_params; i++) {
        stfpm_param *p = &net->params[i];
        const stfpm_weight *t = NULL;
        char name[160];
        snprintf(name, sizeof name, "%s%s", prefix, p->name);
        STFPM_TRY(stfpm_weights_expect(w, file_label, name, p->ndim, p->shape, &t));
        if (stfpm_weights_has_nonfinite(t))
            return stfpm_set_error(STFPM_ERR_NAN, "%s: tensor %s contains NaN or Inf values", file_label, name);
        STFPM_TRY(stfpm_tensor_write(ctx, &p->value, t->data));
    }
    return STFPM_OK;
}

int stfpm_resnet_weights_have_layer(const stfpm_weights *w, const char *prefix, int layer) {
    static const char *parts[] = {"0.conv1.weight", "0.bn1.running_var", "0.conv2.weight", "1.conv1.weight",
                                  "1.conv2.weight", "1.bn2.running_var"};
    for (int i = 0; i < 6; i++) {
        char name[160];
        snprintf(name, sizeof name, "%slayer%d.%s", prefix ? prefix : "", layer, parts[i]);
        if (!stfpm_weights_find(w, name)) return 0;
    }
    return 1;
}

static const stfpm_weight *find_pre(const stfpm_weights *w, const char *prefix, const char *name) {
    char k[200];
    snprintf(k, sizeof k, "%s%s", prefix ? prefix : "", name);
    return stfpm_weights_find(w, k);
}

const char *stfpm_resnet_weights_backbone(const stfpm_weights *w, const char *prefix, int *backbone,
                                          char *why, size_t why_len) {
    const char *p = prefix ? prefix : "";
    *backbone = -1;
    if (why_len) why[0] = 0;
    const stfpm_weight *l1 = find_pre(w, p, "layer1.0.conv1.weight");
    if (!find_pre(w, p, "conv1.weight") || !l1) return NULL;
    if (find_pre(w, p, "layer1.0.conv3.weight")) {   /* Bottleneck blocks */
        int wide = l1->ndim >= 1 && l1->shape[0] > 64;
        int deep = find_pre(w, p, "layer3.6.conv1.weight") != NULL;
        snprintf(why, why_len, "Bottleneck blocks: %slayer1.0.conv3.weight present, %slayer1.0.conv1.weight has "
                 "%lld output channels%s", p, p, (long long)l1->shape[0],
                 deep ? ", layer3 has more than 6 blocks" : "");
        if (deep) return wide ? "wide_resnet101_2" : "resnet101 or resnet152";
        *backbone = wide ? STFPM_WIDE_RESNET50_2 : STFPM_RESNET50;
        return ARCHS[*backbone].name;
    }
    if (find_pre(w, p, "layer1.2.conv1.weight")) {
        snprintf(why, why_len, "BasicBlocks, three or more in layer1: %slayer1.2.conv1.weight present", p);
        *backbone = STFPM_RESNET34;
        return ARCHS[*backbone].name;
    }
    snprintf(why, why_len, "BasicBlocks, two in layer1: no %slayer1.2.conv1.weight", p);
    *backbone = STFPM_RESNET18;
    return ARCHS[*backbone].name;
}

static stfpm_status export_tensor(stfpm_ctx *ctx, const stfpm_param *p, const stfpm_tensor *t,
                                  const char *name, stfpm_weights *out) {
    size_t n = stfpm_tensor_numel(t);
    float *h = malloc(n * sizeof *h);
    if (!h) return stfpm_set_error(STFPM_ERR_OOM, "out of host memory");
    stfpm_status s = stfpm_tensor_read(ctx, t, h);
    if (s == STFPM_OK) s = stfpm_weights_add(out, name, p->ndim, p->shape, h);
    free(h);
    return s;
}

stfpm_status stfpm_resnet_export(stfpm_ctx *ctx, stfpm_resnet *net, stfpm_weights *out,
                                 const char *prefix) {
    for (int i = 0; i < net->n_params; i++) {
        char name[160];
        snprintf(name, sizeof name, "%s%s", prefix ? prefix : "", net->params[i].name);
        STFPM_TRY(export_tensor(ctx, &net->params[i], &net->params[i].value, name, out));
    }
    return STFPM_OK;
}

stfpm_status stfpm_resnet_export_momentum(stfpm_ctx *ctx, stfpm_resnet *net, stfpm_weights *out,
                                          const char *prefix) {
    for (int i = 0; i < net->n_params; i++) {
        stfpm_param *p = &net->params[i];
        if (!p->momentum.buf) continue;
        char name[200];
        snprintf(name, sizeof name, "%s%s.momentum_buffer", prefix ? prefix : "", p->name);
        STFPM_TRY(export_tensor(ctx, p, &p->momentum, name, out));
    }
    return STFPM_OK;
}

stfpm_status stfpm_resnet_load_momentum(stfpm_ctx *ctx, stfpm_resnet *net, const stfpm_weights *w,
                                        const char *file_label, const char *prefix) {
    for (int i = 0; i < net->n_params; i++) {
        stfpm_param *p = &net->params[i];
        if (!p->momentum.buf) continue;
        char name[200];
        snprintf(name, sizeof name, "%s%s.momentum_buffer", prefix ? prefix : "", p->name);
        const stfpm_weight *t = NULL;
        STFPM_TRY(stfpm_weights_expect(w, file_label, name, p->ndim, p->shape, &t));
        STFPM_TRY(stfpm_tensor_write(ctx, &p->momentum, t->data));
    }
    return STFPM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* activation buffers */

/* conv_out (the conv output before BN) is needed by train-mode forwards (and the backward)
 * and by the unfolded eval path only: a network that only runs folded eval forwards (the
 * teacher, a student at test time) gets it on first use (conv_out_for), halving its
 * activation memory. */
static stfpm_status alloc_unit_acts(stfpm_ctx *ctx, stfpm_resnet *net, unit *u, int n, int h, int w) {
    if (net->trainable || !fold_enabled(ctx)) {
        STFPM_TRY(stfpm_tensor_alloc(ctx, &u->conv_out, n, u->cout, h, w));
        net->act_bytes += stfpm_tensor_numel(&u->conv_out) * sizeof(float);
    }
    STFPM_TRY(stfpm_tensor_alloc(ctx, &u->bn_out, n, u->cout, h, w));
    STFPM_TRY(stfpm_tensor_alloc(ctx, &u->save_mean, 1, u->cout, 1, 1));
    STFPM_TRY(stfpm_tensor_alloc(ctx, &u->save_invstd, 1, u->cout, 1, 1));
    net->act_bytes += stfpm_tensor_numel(&u->bn_out) * sizeof(float);
    return STFPM_OK;
}

static stfpm_status conv_out_for(stfpm_ctx *ctx, stfpm_resnet *net, unit *u) {
    if (u->conv_out.buf) return STFPM_OK;
    const stfpm_tensor *b = &u->bn_out;
    STFPM_TRY(stfpm_tensor_alloc(ctx, &u->conv_out, b->n, b->c, b->h, b->w));
    net->act_bytes += stfpm_tensor_numel(&u->conv_out) * sizeof(float);
    return STFPM_OK;
}

static stfpm_status ensure_acts(stfpm_ctx *ctx, stfpm_resnet *net, int n, int h, int w) {
    if (n <= net->cap_n && h == net->in_h && w == net->in_w) return STFPM_OK;
    free_acts(ctx, net);
    int sh = stfpm_conv_out_size(h, 7, 2, 3), sw = stfpm_conv_out_size(w, 7, 2, 3);
    STFPM_TRY(alloc_unit_acts(ctx, net, &net->stem, n, sh, sw));
    int ph = stfpm_conv_out_size(sh, 3, 2, 1), pw = stfpm_conv_out_size(sw, 3, 2, 1);
    STFPM_TRY(stfpm_tensor_alloc(ctx, &net->pool_out, n, 64, ph, pw));
    net->act_bytes += stfpm_tensor_numel(&net->pool_out) * sizeof(float);
    if (net->trainable) {
        STFPM_TRY(stfpm_tensor_alloc(ctx, &net->g_pool, n, 64, ph, pw));
        STFPM_TRY(stfpm_tensor_alloc(ctx, &net->g_stem, n, 64, sh, sw));
        net->act_bytes += (stfpm_tensor_numel(&net->g_pool) + stfpm_tensor_numel(&net->g_stem)) * sizeof(float);
    }
    int ch = ph, cw = pw, cc = 64;
    size_t gmax = 0, tmax[4] = {0, 0, 0, 0};
    for (int b = 0; b < net->n_blocks; b++) {
        block *bl = &net->blocks[b];
        bl->in_c = cc; bl->in_h = ch; bl->in_w = cw;
        int h1 = stfpm_conv_out_size(ch, bl->c1.k, bl->c1.stride, bl->c1.pad);
        int w1 = stfpm_conv_out_size(cw, bl->c1.k, bl->c1.stride, bl->c1.pad);
        int oh = stfpm_conv_out_size(h1, bl->c2.k, bl->c2.stride, bl->c2.pad);
        int ow = stfpm_conv_out_size(w1, bl->c2.k, bl->c2.stride, bl->c2.pad);
        STFPM_TRY(alloc_unit_acts(ctx, net, &bl->c1, n, h1, w1));
        STFPM_TRY(alloc_unit_acts(ctx, net, &bl->c2, n, oh, ow));
        if (bl->bottleneck) STFPM_TRY(alloc_unit_acts(ctx, net, &bl->c3, n, oh, ow));
        if (bl->has_ds) STFPM_TRY(alloc_unit_acts(ctx, net, &bl->ds, n, oh, ow));
        int cout = bl->bottleneck ? bl->c3.cout : bl->c2.cout;
        if (net->trainable && !bl->bottleneck) {
            STFPM_TRY(stfpm_tensor_alloc(ctx, &bl->g_out, n, bl->c1.cout, oh, ow));
            STFPM_TRY(stfpm_tensor_alloc(ctx, &bl->t1, n, bl->c1.cout, oh, ow));
            STFPM_TRY(stfpm_tensor_alloc(ctx, &bl->t2, n, bl->c1.cout, oh, ow));
            STFPM_TRY(stfpm_tensor_alloc(ctx, &bl->t_in, n, cc, ch, cw));
            net->act_bytes += (3 * stfpm_tensor_numel(&bl->g_out) + stfpm_tensor_numel(&bl->t_in)) * sizeof(float);
        } else if (net->trainable) {
            /* sizes (per image) of what stfpm_resnet_backward puts in the shared buffers */
            size_t out = (size_t)cout * oh * ow, mid = (size_t)bl->c2.cout * oh * ow;
            size_t c1o = (size_t)bl->c1.cout * h1 * w1, in = (size_t)cc * ch * cw;
            size_t need[4] = {out, mid > c1o ? mid : c1o, c1o, in};
            if (out > gmax) gmax = out;
            for (int i = 0; i < 4; i++) if (need[i] > tmax[i]) tmax[i] = need[i];
        }
        ch = oh; cw = ow; cc = cout;
    }
    if (gmax) {
        for (int i = 0; i < 2; i++) {
            STFPM_TRY(stfpm_tensor_alloc(ctx, &net->g[i], n, (int)gmax, 1, 1));
            net->act_bytes += stfpm_tensor_numel(&net->g[i]) * sizeof(float);
        }
        for (int i = 0; i < 4; i++) {
            STFPM_TRY(stfpm_tensor_alloc(ctx, &net->bt[i], n, (int)tmax[i], 1, 1));
            net->act_bytes += stfpm_tensor_numel(&net->bt[i]) * sizeof(float);
        }
    }
    net->cap_n = n;
    net->in_h = h;
    net->in_w = w;
    return STFPM_OK;
}

static stfpm_tensor V(const stfpm_tensor *t, int n) { return stfpm_tensor_view(t, 0, n); }

/* The first n*c*h*w floats of a shared buffer seen as an (n, c, h, w) tensor. */
static stfpm_tensor shaped(const stfpm_tensor *t, int n, int c, int h, int w) {
    stfpm_tensor v = *t;
    v.n = n; v.c = c; v.h = h; v.w = w;
    v.owner = 0;
    return v;
}

/* The unit whose BN output (after the residual add and ReLU) is the block's output. */
static unit *last_unit(block *bl) { return bl->bottleneck ? &bl->c3 : &bl->c2; }

/* ------------------------------------------------------------------------------------------ */
/* forward */

static stfpm_status unit_forward(stfpm_ctx *ctx, stfpm_resnet *net, unit *u, const stfpm_tensor *x,
                                 int n, int train, int relu) {
    stfpm_param *P = net->params;
    STFPM_TRY(conv_out_for(ctx, net, u));
    stfpm_tensor co = V(&u->conv_out, n), bo = V(&u->bn_out, n);
    STFPM_TRY(stfpm_conv2d_forward(ctx, x, &P[u->conv].value, u->stride, u->pad, &co));
    if (train)
        STFPM_TRY(stfpm_batchnorm_forward_train(ctx, &co, &P[u->bn].value, &P[u->bn + 1].value,
                                                &P[u->bn + 2].value, &P[u->bn + 3].value, BN_MOMENTUM,
                                                BN_EPS, &bo, &u->save_mean, &u->save_invstd));
    else
        STFPM_TRY(stfpm_batchnorm_forward_eval(ctx, &co, &P[u->bn].value, &P[u->bn + 1].value,
                                               &P[u->bn + 2].value, &P[u->bn + 3].value, BN_EPS, &bo));
    if (relu) STFPM_TRY(stfpm_relu_forward(ctx, &bo, &bo));
    return STFPM_OK;
}

/* fw / fb of u from the current conv weight and BN parameters, and its prepared weights. */
static stfpm_status fold_unit(stfpm_ctx *ctx, stfpm_resnet *net, unit *u) {
    stfpm_param *P = net->params;
    const stfpm_tensor *w = &P[u->conv].value;
    if (!u->fw.buf) STFPM_TRY(stfpm_tensor_alloc(ctx, &u->fw, w->n, w->c, w->h, w->w));
    if (!u->fb.buf) STFPM_TRY(stfpm_tensor_alloc(ctx, &u->fb, 1, u->cout, 1, 1));
    const stfpm_tensor *g = &P[u->bn].value, *b = &P[u->bn + 1].value, *m = &P[u->bn + 2].value,
                       *v = &P[u->bn + 3].value;
    cl_int wo = (cl_int)w->off, R = w->c * w->h * w->w, go = (cl_int)g->off, bo = (cl_int)b->off,
           mo = (cl_int)m->off, vo = (cl_int)v->off, K = u->cout;
    float eps = BN_EPS;
    stfpm_karg a[] = {KARG(w->buf), KARG(wo), KARG(R), KARG(g->buf), KARG(go), KARG(b->buf), KARG(bo),
                      KARG(m->buf), KARG(mo), KARG(v->buf), KARG(vo), KARG(eps), KARG(K), KARG(u->fw.buf),
                      KARG(u->fb.buf)};
    if (stfpm_gpu_kernels(ctx)) {
        size_t gws[2] = {(size_t)R, (size_t)K};
        STFPM_TRY(stfpm_enqueue(ctx, "fold", "bn_fold_g", 2, gws, NULL, KARGS(a)));
    } else {
        STFPM_TRY(stfpm_enqueue1d(ctx, "fold", "bn_fold", (size_t)K, KARGS(a)));
    }
    stfpm_conv2d_prepared_free(ctx, u->prep);
    u->prep = NULL;
    return stfpm_conv2d_prepare(ctx, &u->fw, u->stride, u->pad, &u->prep);
}

static stfpm_status fold_all(stfpm_ctx *ctx, stfpm_resnet *net) {
    if (net->folded) return STFPM_OK;
    STFPM_TRY(fold_unit(ctx, net, &net->stem));
    for (int b = 0; b < net->n_blocks; b++) {
        block *bl = &net->blocks[b];
        STFPM_TRY(fold_unit(ctx, net, &bl->c1));
        STFPM_TRY(fold_unit(ctx, net, &bl->c2));
        if (bl->bottleneck) STFPM_TRY(fold_unit(ctx, net, &bl->c3));
        if (bl->has_ds) STFPM_TRY(fold_unit(ctx, net, &bl->ds));
    }
    net->folded = 1;
    return STFPM_OK;
}

/* Eval-mode unit with BN folded: out = act(conv(x, fw) + fb + residual). */
static stfpm_status unit_forward_folded(stfpm_ctx *ctx, unit *u, const stfpm_tensor *x, int n,
                                        const stfpm_tensor *residual, int relu) {
    stfpm_tensor bo = V(&u->bn_out, n);
    return stfpm_conv2d_forward_fused(ctx, x, &u->fw, u->stride, u->pad, &u->fb, residual, relu, u->prep, &bo);
}

/* forward_folded after the stem (whose output is in stem.bn_out) */
static stfpm_status forward_folded_rest(stfpm_ctx *ctx, stfpm_resnet *net, int n, int max_layer,
                                        stfpm_tensor feats[4]);

static stfpm_status forward_folded(stfpm_ctx *ctx, stfpm_resnet *net, const stfpm_tensor *x, int n,
                                   int max_layer, stfpm_tensor feats[4]) {
    STFPM_TRY(fold_all(ctx, net));
    STFPM_TRY(unit_forward_folded(ctx, &net->stem, x, n, NULL, 1));
    return forward_folded_rest(ctx, net, n, max_layer, feats);
}

static stfpm_status forward_folded_rest(stfpm_ctx *ctx, stfpm_resnet *net, int n, int max_layer,
                                        stfpm_tensor feats[4]) {
    stfpm_tensor so = V(&net->stem.bn_out, n), po = V(&net->pool_out, n);
    STFPM_TRY(stfpm_maxpool_forward(ctx, &so, 3, 2, 1, &po));
    stfpm_tensor in = po;
    for (int b = 0; b < net->n_blocks; b++) {
        block *bl = &net->blocks[b];
        if (bl->layer > max_layer) break;
        STFPM_TRY(unit_forward_folded(ctx, &bl->c1, &in, n, NULL, 1));
        stfpm_tensor h = V(&bl->c1.bn_out, n), sc = in;
        if (bl->has_ds) {
            STFPM_TRY(unit_forward_folded(ctx, &bl->ds, &in, n, NULL, 0));
            sc = V(&bl->ds.bn_out, n);
        }
        if (bl->bottleneck) {
            STFPM_TRY(unit_forward_folded(ctx, &bl->c2, &h, n, NULL, 1));
            h = V(&bl->c2.bn_out, n);
        }
        unit *lu = last_unit(bl);
        STFPM_TRY(unit_forward_folded(ctx, lu, &h, n, &sc, 1));
        stfpm_tensor out = V(&lu->bn_out, n);
        if (bl->last_in_layer && feats) feats[bl->layer - 1] = out;
        in = out;
    }
    return STFPM_OK;
}

/* Checks and per-forward state shared by stfpm_resnet_forward and the eval pair. */
static stfpm_status begin_forward(stfpm_ctx *ctx, stfpm_resnet *net, const stfpm_tensor *x, int train,
                                  int max_layer) {
    if (x->c != 3)
        return stfpm_set_error(STFPM_ERR_ARG, "ResNet input must have 3 channels, got %d", x->c);
    if (max_layer < 1 || max_layer > net->depth)
        return stfpm_set_error(STFPM_ERR_ARG, "requested layer%d but the network has layer1..layer%d",
                               max_layer, net->depth);
    if (x->h < 32 || x->w < 32)
        return stfpm_set_error(STFPM_ERR_ARG, "input %dx%d is too small (at least 32x32)", x->h, x->w);
    if (train && !net->trainable)
        return stfpm_set_error(STFPM_ERR_ARG, "train-mode forward needs a trainable network");
    STFPM_TRY(ensure_acts(ctx, net, x->n, x->h, x->w));
    net->cur_n = x->n;
    net->last_train = train;
    net->last_max_layer = max_layer;
    net->x_keep = *x;
    net->x_keep.owner = 0;
    return STFPM_OK;
}

/* The two networks' eval forwards on the same x with their conv1 (an im2col convolution)
 * sharing each chunk's column matrix; the rest as stfpm_resnet_forward. */
stfpm_status stfpm_resnet_forward_eval_pair(stfpm_ctx *ctx, stfpm_resnet *a, stfpm_resnet *b, const stfpm_tensor *x,
                                            int max_layer, stfpm_tensor feats_a[4], stfpm_tensor feats_b[4]) {
    if (!fold_enabled(ctx)) {
        STFPM_TRY(stfpm_resnet_forward(ctx, a, x, STFPM_BN_EVAL, max_layer, feats_a));
        return stfpm_resnet_forward(ctx, b, x, STFPM_BN_EVAL, max_layer, feats_b);
    }
    stfpm_resnet *nets[2] = {a, b};
    const stfpm_tensor *ws[2], *bs[2];
    const stfpm_conv_prepared *pp[2];
    stfpm_tensor ys[2], *yp[2];
    int n = x->n;
    for (int j = 0; j < 2; j++) {
        stfpm_resnet *net = nets[j];
        STFPM_TRY(begin_forward(ctx, net, x, 0, max_layer));
        STFPM_TRY(fold_all(ctx, net));
        ws[j] = &net->stem.fw;
        bs[j] = &net->stem.fb;
        pp[j] = net->stem.prep;
        ys[j] = V(&net->stem.bn_out, n);
        yp[j] = &ys[j];
    }
    STFPM_TRY(stfpm_conv2d_forward_fused_shared(ctx, x, 2, ws, a->stem.stride, a->stem.pad, bs, STFPM_ACT_RELU, pp, yp));
    STFPM_TRY(forward_folded_rest(ctx, a, n, max_layer, feats_a));
    return forward_folded_rest(ctx, b, n, max_layer, feats_b);
}

stfpm_status stfpm_resnet_forward(stfpm_ctx *ctx, stfpm_resnet *net, const stfpm_tensor *x,
                                  stfpm_bn_mode mode, int max_layer, stfpm_tensor feats[4]) {
    const int train = mode == STFPM_BN_TRAIN;
    STFPM_TRY(begin_forward(ctx, net, x, train, max_layer));
    int n = x->n;
    if (train) net->folded = 0;   /* running statistics change */
    if (!train && fold_enabled(ctx)) return forward_folded(ctx, net, x, n, max_layer, feats);
    STFPM_TRY(unit_forward(ctx, net, &net->stem, x, n, train, 1));
    stfpm_tensor so = V(&net->stem.bn_out, n), po = V(&net->pool_out, n);
    STFPM_TRY(stfpm_maxpool_forward(ctx, &so, 3, 2, 1, &po));
    stfpm_tensor in = po;
    for (int b = 0; b < net->n_blocks; b++) {
        block *bl = &net->blocks[b];
        if (bl->layer > max_layer) break;
        STFPM_TRY(unit_forward(ctx, net, &bl->c1, &in, n, train, 1));
        stfpm_tensor h = V(&bl->c1.bn_out, n);
        if (bl->bottleneck) {
            STFPM_TRY(unit_forward(ctx, net, &bl->c2, &h, n, train, 1));
            h = V(&bl->c2.bn_out, n);
        }
        unit *lu = last_unit(bl);
        STFPM_TRY(unit_forward(ctx, net, lu, &h, n, train, 0));
        stfpm_tensor out = V(&lu->bn_out, n);
        if (bl->has_ds) {
            STFPM_TRY(unit_forward(ctx, net, &bl->ds, &in, n, train, 0));
            stfpm_tensor sc = V(&bl->ds.bn_out, n);
            STFPM_TRY(stfpm_add(ctx, &out, &sc, &out));
        } else {
            STFPM_TRY(stfpm_add(ctx, &out, &in, &out));
        }
        STFPM_TRY(stfpm_relu_forward(ctx, &out, &out));
        if (bl->last_in_layer && feats) feats[bl->layer - 1] = out;
        in = out;
    }
    return STFPM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* backward */

/* g: dL/d(bn output) of unit u (consumed). Writes dL/d(unit input) into dx (may be NULL). */
static stfpm_status unit_backward(stfpm_ctx *ctx, stfpm_resnet *net, unit *u, const stfpm_tensor *x,
                                  const stfpm_tensor *g, stfpm_tensor *tmp, stfpm_tensor *dx, int n) {
    stfpm_param *P = net->params;
    stfpm_tensor co = V(&u->conv_out, n);
    STFPM_TRY(stfpm_batchnorm_backward(ctx, &co, g, &P[u->bn].value, &u->save_mean, &u->save_invstd, tmp,
                                       &P[u->bn].grad, &P[u->bn + 1].grad));
    STFPM_TRY(stfpm_conv2d_backward(ctx, x, &P[u->conv].value, u->stride, u->pad, tmp, dx, &P[u->conv].grad));
    return STFPM_OK;
}

/* Backward of Bottleneck block b. Its output gradient G is net->g[b % 2] (written by block
 * b + 1 as its input gradient, or started here for the last block); its input gradient goes to
 * net->g[(b - 1) % 2] (g_pool for block 0). One block's temporaries, in the shared bt[]:
 *   bt[0]: c3's BN gradient (output-sized), then c2's (inner width), then the downsample's;
 *   bt[1]: dL/d(c2 output), then c1's BN gradient;  bt[2]: dL/d(c1 output);
 *   bt[3]: the downsample's input gradient. */
static stfpm_status bottleneck_backward(stfpm_ctx *ctx, stfpm_resnet *net, int b, int is_last,
                                        const stfpm_tensor *dfeats[4], int n) {
    block *bl = &net->blocks[b];
    unit *c1 = &bl->c1, *c2 = &bl->c2, *c3 = &bl->c3;
    const stfpm_tensor *ob = &c3->bn_out, *h1b = &c1->bn_out, *h2b = &c2->bn_out;
    stfpm_tensor G = shaped(&net->g[b % 2], n, ob->c, ob->h, ob->w);
    const stfpm_tensor *df = bl->last_in_layer ? dfeats[bl->layer - 1] : NULL;
    if (is_last) {
        if (df) STFPM_TRY(stfpm_tensor_copy(ctx, df, &G));
        else STFPM_TRY(stfpm_tensor_fill(ctx, &G, 0.0f));
    } else if (df) {
        STFPM_TRY(stfpm_add(ctx, &G, df, &G));
    }
    stfpm_tensor out = V(ob, n), h1 = V(h1b, n), h2 = V(h2b, n);
    stfpm_tensor in = b == 0 ? V(&net->pool_out, n) : V(&last_unit(&net->blocks[b - 1])->bn_out, n);
    stfpm_tensor gin = b == 0 ? V(&net->g_pool, n) : shaped(&net->g[(b - 1) % 2], n, in.c, in.h, in.w);
    stfpm_tensor t_out = shaped(&net->bt[0], n, ob->c, ob->h, ob->w);
    stfpm_tensor t_mid = shaped(&net->bt[0], n, h2b->c, h2b->h, h2b->w);
    stfpm_tensor g_h2 = shaped(&net->bt[1], n, h2b->c, h2b->h, h2b->w);
    stfpm_tensor t_h1 = shaped(&net->bt[1], n, h1b->c, h1b->h, h1b->w);
    stfpm_tensor g_h1 = shaped(&net->bt[2], n, h1b->c, h1b->h, h1b->w);
    stfpm_tensor tin = shaped(&net->bt[3], n, in.c, in.h, in.w);
    STFPM_TRY(stfpm_relu_backward(ctx, &out, &G, &G));
    /* main path: conv3/bn3, relu, conv2/bn2, relu, conv1/bn1 */
    STFPM_TRY(unit_backward(ctx, net, c3, &h2, &G, &t_out, &g_h2, n));
    STFPM_TRY(stfpm_relu_backward(ctx, &h2, &g_h2, &g_h2));
    STFPM_TRY(unit_backward(ctx, net, c2, &h1, &g_h2, &t_mid, &g_h1, n));
    STFPM_TRY(stfpm_relu_backward(ctx, &h1, &g_h1, &g_h1));
    STFPM_TRY(unit_backward(ctx, net, c1, &in, &g_h1, &t_h1, &gin, n));
    /* shortcut */
    if (bl->has_ds) {
        STFPM_TRY(unit_backward(ctx, net, &bl->ds, &in, &G, &t_out, &tin, n));
        STFPM_TRY(stfpm_add(ctx, &gin, &tin, &gin));
    } else {
        STFPM_TRY(stfpm_add(ctx, &gin, &G, &gin));
    }
    return STFPM_OK;
}

stfpm_status stfpm_resnet_backward(stfpm_ctx *ctx, stfpm_resnet *net, const stfpm_tensor *dfeats[4]) {
    if (!net->trainable || !net->last_train)
        return stfpm_set_error(STFPM_ERR_ARG, "backward needs a train-mode forward of a trainable network");
    int n = net->cur_n, top = net->last_max_layer;
    int last = -1;
    for (int b = 0; b < net->n_blocks; b++)
        if (net->blocks[b].layer <= top) last = b;
    for (int b = last; b >= 0; b--) {
        block *bl = &net->blocks[b];
        if (bl->bottleneck) {
            STFPM_TRY(bottleneck_backward(ctx, net, b, b == last, dfeats, n));
            continue;
        }
        stfpm_tensor G = V(&bl->g_out, n);
        const stfpm_tensor *df = bl->last_in_layer ? dfeats[bl->layer - 1] : NULL;
        if (b == last) {
            if (df) STFPM_TRY(stfpm_tensor_copy(ctx, df, &G));
            else STFPM_TRY(stfpm_tensor_fill(ctx, &G, 0.0f));
        } else if (df) {
            STFPM_TRY(stfpm_add(ctx, &G, df, &G));
        }
        stfpm_tensor out = V(&bl->c2.bn_out, n), h = V(&bl->c1.bn_out, n);
        stfpm_tensor in = b == 0 ? V(&net->pool_out, n) : V(&net->blocks[b - 1].c2.bn_out, n);
        stfpm_tensor gin = b == 0 ? V(&net->g_pool, n) : V(&net->blocks[b - 1].g_out, n);
        stfpm_tensor t1 = V(&bl->t1, n), t2 = V(&bl->t2, n), tin = V(&bl->t_in, n);
        STFPM_TRY(stfpm_relu_backward(ctx, &out, &G, &G));
        /* main path: conv2/bn2, relu, conv1/bn1 */
        STFPM_TRY(unit_backward(ctx, net, &bl->c2, &h, &G, &t1, &t2, n));
        STFPM_TRY(stfpm_relu_backward(ctx, &h, &t2, &t2));
        STFPM_TRY(unit_backward(ctx, net, &bl->c1, &in, &t2, &t1, &gin, n));
        /* shortcut */
        if (bl->has_ds) {
            STFPM_TRY(unit_backward(ctx, net, &bl->ds, &in, &G, &t1, &tin, n));
            STFPM_TRY(stfpm_add(ctx, &gin, &tin, &gin));
        } else {
            STFPM_TRY(stfpm_add(ctx, &gin, &G, &gin));
        }
    }
    /* stem: maxpool, relu, bn1, conv1 */
    stfpm_tensor so = V(&net->stem.bn_out, n), gp = V(&net->g_pool, n), gs = V(&net->g_stem, n);
    STFPM_TRY(stfpm_maxpool_backward(ctx, &so, 3, 2, 1, &gp, &gs));
    STFPM_TRY(stfpm_relu_backward(ctx, &so, &gs, &gs));
    /* the stem's BN gradient needs a stem-sized temp: reuse stem.bn_out (no longer needed). */
    STFPM_TRY(unit_backward(ctx, net, &net->stem, &net->x_keep, &gs, &so, NULL, n));
    return STFPM_OK;
}

stfpm_status stfpm_resnet_sgd_step(stfpm_ctx *ctx, stfpm_resnet *net, float lr, float momentum,
                                   float weight_decay, stfpm_sgd_step_kind step) {
    net->folded = 0;
    for (int i = 0; i < net->n_params; i++) {
        stfpm_param *p = &net->params[i];
        if (!trainable_kind(p->kind) || !p->grad.buf) continue;
        STFPM_TRY(stfpm_sgd_step(ctx, &p->value, &p->grad, &p->momentum, lr, momentum, weight_decay, step));
    }
    return STFPM_OK;
}
