/* make_fixture: what tests/test_install.sh needs to train a model with an installed stfpm-cl,
 * written through the installed library's public API (so it also checks that the installed
 * headers and library build a program):
 *
 *   make_fixture TEACHER_FILE DATA_DIR [DEPTH]
 *
 * TEACHER_FILE: a randomly initialised (Kaiming, seed 99) ResNet-18 up to layer3 in
 * torchvision's names, a stand-in for the ImageNet teacher (the test checks installation, not
 * accuracy); DEPTH 4 (default 3) includes layer4, a stand-in for a full teacher
 * (tests/test_bench_ablations.sh). DATA_DIR: a tiny demo category (10 training, 2 normal and 2
 * defective test images, 64 x 64). */
#include <stfpm/demo_data.h>
#include <stfpm/resnet.h>
#include <stfpm/weights.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 3 && !(argc == 4 && (!strcmp(argv[3], "3") || !strcmp(argv[3], "4")))) {
        fprintf(stderr, "usage: make_fixture TEACHER_FILE DATA_DIR [DEPTH (3 or 4)]\n");
        return 2;
    }
    const int depth = argc == 4 ? atoi(argv[3]) : 3;
    stfpm_ctx *ctx = NULL;
    stfpm_resnet *net = NULL;
    stfpm_weights w = {0};
    stfpm_status s = stfpm_ctx_create(&ctx, NULL);
    if (s == STFPM_OK) s = stfpm_resnet_create(ctx, depth, STFPM_NET_FROZEN, &net);
    if (s == STFPM_OK) s = stfpm_resnet_init_kaiming(ctx, net, 99);
    if (s == STFPM_OK) s = stfpm_resnet_export(ctx, net, &w, NULL);
    if (s == STFPM_OK) s = stfpm_safetensors_write(argv[1], &w, NULL, NULL, 0);
    stfpm_weights_free(&w);
    if (net) stfpm_resnet_free(ctx, net);
    stfpm_ctx_free(ctx);
    if (s == STFPM_OK) {
        stfpm_demo_options o;
        stfpm_demo_default_options(&o);
        o.size = 64;
        o.n_train = 10;
        o.n_test_good = 2;
        o.n_test_bad = 2;
        s = stfpm_demo_generate(argv[2], &o);
    }
    if (s != STFPM_OK) {
        fprintf(stderr, "make_fixture: %s\n", stfpm_last_error());
        return 1;
    }
    return 0;
}
