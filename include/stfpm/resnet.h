/* torchvision ResNets (conv1 .. layer3, layer4 optional) in torchvision's exact layout, built
 * from the engine's ops: eval / train forward returning the feature pyramid, backward to every
 * parameter, SGD. Parameters are addressed by torchvision names. Backbones (stfpm_backbone):
 *   resnet18, resnet34: BasicBlock (two 3x3 convs), blocks per layer [2,2,2,2] / [3,4,6,3],
 *       layer channels 64, 128, 256, 512;
 *   resnet50, wide_resnet50_2: Bottleneck (1x1 -> 3x3 -> 1x1, expansion 4, the stride on the
 *       3x3 conv as in torchvision), blocks [3,4,6,3], layer channels 256, 512, 1024, 2048,
 *       inner width 64 << (l-1) (wide: twice that).
 *
 * Usage: stfpm_resnet_create(ctx, 3, STFPM_NET_FROZEN, &net) (ResNet-18) or
 * stfpm_resnet_create_backbone(ctx, STFPM_RESNET50, 3, ...), then stfpm_resnet_load with a
 * dictionary from stfpm_weights_load (stfpm/weights.h) or stfpm_resnet_init_kaiming, then
 * stfpm_resnet_forward on a (N, 3, H, W) tensor for the layer features; stfpm_resnet_export
 * writes the parameters back into a dictionary, stfpm_resnet_free releases the network. */
#ifndef STFPM_RESNET_H
#define STFPM_RESNET_H

#include "stfpm/stfpm.h"
#include "stfpm/weights.h"
#include "stfpm/ops.h"   /* stfpm_sgd_step_kind */

#ifdef __cplusplus
extern "C" {
#endif

typedef enum stfpm_backbone {
    STFPM_RESNET18 = 0,
    STFPM_RESNET34,
    STFPM_RESNET50,
    STFPM_WIDE_RESNET50_2,
    STFPM_BACKBONE_COUNT
} stfpm_backbone;

/* torchvision's name ("resnet18", ..., "wide_resnet50_2"); "unknown" for an invalid value. */
const char *stfpm_backbone_name(stfpm_backbone b);
/* The backbone named name (torchvision's names); STFPM_ERR_ARG listing the choices otherwise. */
stfpm_status stfpm_backbone_parse(const char *name, stfpm_backbone *out);
/* Output channels of layer l (1..4) of backbone b (0 when either is out of range). */
int stfpm_backbone_channels(stfpm_backbone b, int layer);

typedef enum stfpm_param_kind {
    STFPM_PARAM_CONV = 0,   /* conv weight (trainable) */
    STFPM_PARAM_BN_WEIGHT,  /* trainable */
    STFPM_PARAM_BN_BIAS,    /* trainable */
    STFPM_PARAM_BN_MEAN,    /* running statistic, updated in train-mode forward */
    STFPM_PARAM_BN_VAR
} stfpm_param_kind;

typedef struct stfpm_param {
    char name[96];           /* torchvision name, e.g. "layer2.0.downsample.1.weight" */
    stfpm_param_kind kind;
    int ndim;
    int64_t shape[4];
    stfpm_tensor value;      /* conv: (cout, cin, k, k); BN: (1, C, 1, 1) */
    stfpm_tensor grad;       /* trainable params of a trainable net only */
    stfpm_tensor momentum;   /* SGD momentum buffer, likewise */
} stfpm_param;

typedef struct stfpm_resnet stfpm_resnet;

/* Whether a network gets gradients and SGD momentum buffers (the student) or not (the teacher). */
typedef enum stfpm_net_params {
    STFPM_NET_FROZEN = 0,
    STFPM_NET_TRAINABLE = 1
} stfpm_net_params;

/* Batch norm in a forward pass: running statistics (eval) or batch statistics, updating the
 * running ones (train). */
typedef enum stfpm_bn_mode {
    STFPM_BN_EVAL = 0,
    STFPM_BN_TRAIN = 1
} stfpm_bn_mode;


/* depth: highest layer built (3 = conv1..layer3, 4 = with layer4). STFPM_NET_TRAINABLE:
 * allocate gradients and momentum buffers. Parameters start as zeros: call init_kaiming or load. */
stfpm_status stfpm_resnet_create_backbone(stfpm_ctx *ctx, stfpm_backbone backbone, int depth,
                                          stfpm_net_params params, stfpm_resnet **out);
/* stfpm_resnet_create_backbone with STFPM_RESNET18. */
stfpm_status stfpm_resnet_create(stfpm_ctx *ctx, int depth, stfpm_net_params params, stfpm_resnet **out);
stfpm_backbone stfpm_resnet_backbone(const stfpm_resnet *net);
void stfpm_resnet_free(stfpm_ctx *ctx, stfpm_resnet *net);
int stfpm_resnet_depth(const stfpm_resnet *net);

int stfpm_resnet_param_count(const stfpm_resnet *net);
stfpm_param *stfpm_resnet_param(stfpm_resnet *net, int i);
stfpm_param *stfpm_resnet_find(stfpm_resnet *net, const char *name);

/* Student initialisation (SPEC section 2, torchvision): conv ~ N(0, 2 / (cout*k*k)), BN weight 1,
 * bias 0, running mean 0, running var 1. Values come from a host PRNG (splitmix64 seeded with
 * seed and the parameter index, Box-Muller in double), so a seed gives the same student on
 * every device. */
stfpm_status stfpm_resnet_init_kaiming(stfpm_ctx *ctx, stfpm_resnet *net, uint64_t seed);

/* Load every parameter and BN statistic from a weight dictionary, each read as
 * "<prefix><torchvision name>" (prefix NULL or "": plain names; extra tensors such as fc.*,
 * layer4.* for a depth-3 net and num_batches_tracked are ignored). A missing tensor, a wrong
 * shape or a NaN/Inf value is an error naming tensor and file (file_label). */
stfpm_status stfpm_resnet_load(stfpm_ctx *ctx, stfpm_resnet *net, const stfpm_weights *w,
                               const char *file_label, const char *prefix);
/* 1 when w holds every parameter of layer `layer` (1..4) under prefix (to detect layer4). */
int stfpm_resnet_weights_have_layer(const stfpm_weights *w, const char *prefix, int layer);
/* Which torchvision ResNet the tensors under prefix are, from their names and layer1's width:
 * the backbone's name (also "resnet101 or resnet152" and "wide_resnet101_2", which are not
 * supported), NULL when there is no conv1.weight / layer1.0.conv1.weight. *backbone receives the
 * stfpm_backbone, -1 when unsupported or unknown; why (why_len bytes) what the decision rests on,
 * e.g. "Bottleneck blocks: layer1.0.conv3.weight present, ...". */
const char *stfpm_resnet_weights_backbone(const stfpm_weights *w, const char *prefix, int *backbone,
                                          char *why, size_t why_len);
/* Copy every parameter and BN statistic (not gradients) into a host dictionary, names
 * prefixed with prefix (NULL or "": none). */
stfpm_status stfpm_resnet_export(stfpm_ctx *ctx, stfpm_resnet *net, stfpm_weights *out,
                                 const char *prefix);
/* Save / restore the SGD momentum buffers under "<prefix><name>.momentum_buffer". */
stfpm_status stfpm_resnet_export_momentum(stfpm_ctx *ctx, stfpm_resnet *net, stfpm_weights *out,
                                          const char *prefix);
stfpm_status stfpm_resnet_load_momentum(stfpm_ctx *ctx, stfpm_resnet *net, const stfpm_weights *w,
                                        const char *file_label, const char *prefix);

/* Forward pass of x (N, 3, H, W), H and W multiples of 32 recommended.
 * STFPM_BN_TRAIN: BN uses batch statistics and updates running statistics (needs a trainable
 * net to call backward afterwards). feats[l-1] receives the output of layer l for l = 1..depth
 * (views into buffers owned by the net, valid until the next forward). Layers above
 * max_layer are not computed (max_layer <= depth). */
stfpm_status stfpm_resnet_forward(stfpm_ctx *ctx, stfpm_resnet *net, const stfpm_tensor *x,
                                  stfpm_bn_mode mode, int max_layer, stfpm_tensor feats[4]);

/* Eval-mode forwards of two networks on the same x (teacher and student at inference): the
 * same results as two stfpm_resnet_forward calls with STFPM_BN_EVAL, with conv1's im2col shared. */
stfpm_status stfpm_resnet_forward_eval_pair(stfpm_ctx *ctx, stfpm_resnet *a, stfpm_resnet *b, const stfpm_tensor *x,
                                            int max_layer, stfpm_tensor feats_a[4], stfpm_tensor feats_b[4]);

/* Backward after a train-mode forward: dfeats[l-1] is dL/d(layer l output) or NULL.
 * The input x given to that forward must still hold its values (the first conv's weight
 * gradient reads it).
 * Parameter gradients are overwritten. dfeats are not modified. */
stfpm_status stfpm_resnet_backward(stfpm_ctx *ctx, stfpm_resnet *net, const stfpm_tensor *dfeats[4]);

/* Eval-mode forwards fold batch norm into the convolutions once and reuse the result until
 * the parameters change through this API (load, init, SGD step, train-mode forward). Code that
 * writes parameter tensors directly (stfpm_resnet_param(...)->value) must call this after. */
void stfpm_resnet_params_changed(stfpm_resnet *net);

/* One SGD step (PyTorch semantics) over every trainable parameter. */
stfpm_status stfpm_resnet_sgd_step(stfpm_ctx *ctx, stfpm_resnet *net, float lr, float momentum,
                                   float weight_decay, stfpm_sgd_step_kind step);

/* Bytes of device memory held by the net's parameters / activation buffers. */
uint64_t stfpm_resnet_param_bytes(const stfpm_resnet *net);
uint64_t stfpm_resnet_activation_bytes(const stfpm_resnet *net);

/* Output channels of layer l (1..4) of this network (stfpm_backbone_channels of its backbone). */
int stfpm_resnet_out_channels(const stfpm_resnet *net, int layer);
/* Stride (relative to the input) of layer l (1..4): 4, 8, 16, 32 for every backbone. */
int stfpm_resnet_layer_stride(int layer);

#ifdef __cplusplus
}
#endif
#endif
