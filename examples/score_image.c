/* score_image: score one image with a trained stfpm-cl model and write its heatmap, through the
 * library's public API (stfpm_ctx_create, stfpm_predict: include/stfpm/pipeline.h).
 *
 *   score_image MODEL IMAGE [MAPS_DIR]
 *
 * MODEL is a run folder (its best.safetensors is used) or a model file, as `stfpm train` writes
 * them. MAPS_DIR (default: the current folder, created when missing) receives
 * <name>_overlay.png (the heatmap over the image), <name>_map.png (the raw map, 16-bit) and
 * scales.csv. The device is the first GPU, else the first OpenCL device (STFPM_DEVICE selects
 * another, as for `stfpm`). Prints the library version, then one "key: value" line each for the
 * image, its score, normalised score, verdict, threshold and the two heatmap files. Exit status:
 * 0 on success, 1 on an error (the message names its cause), 2 on a usage error.
 *
 * Build against an installed stfpm-cl (README.md, "Install"):
 *   cc score_image.c $(pkg-config --cflags --libs stfpm) -o score_image
 * or with examples/Makefile (pkg-config) or examples/CMakeLists.txt (find_package). */
#include <stfpm/pipeline.h>
#include <stfpm/version.h>

#include <stdio.h>

/* Called by stfpm_predict once per image (here: once), after its batch is scored and its
 * heatmaps are written. */
static stfpm_status print_result(void *user, const stfpm_prediction *p) {
    (void)user;
    printf("image: %s\n", p->path);
    printf("score: %.9g\n", p->score);
    if (p->verdict == STFPM_VERDICT_UNKNOWN) {
        printf("normalized score: unknown\nverdict: unknown (the model stores no threshold)\n");
    } else {
        printf("normalized score: %.4f\n", p->normalized_score);
        printf("verdict: %s\n", p->verdict == STFPM_VERDICT_ANOMALOUS ? "anomalous" : "normal");
        printf("threshold: %.9g\n", p->threshold);
    }
    printf("heatmap: %s\n", p->overlay_path);
    printf("raw map: %s\n", p->map_path);
    return STFPM_OK;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s MODEL IMAGE [MAPS_DIR]\n", argv[0]);
        return 2;
    }
    printf("stfpm-cl %s\n", stfpm_version());

    stfpm_ctx *ctx = NULL;
    stfpm_status s = stfpm_ctx_create(&ctx, NULL);   /* NULL: default options, environment */
    if (s != STFPM_OK) {
        fprintf(stderr, "score_image: %s\n", stfpm_last_error());
        return 1;
    }
    const char *paths[1] = {argv[2]};
    stfpm_predict_options o = {
        .model = argv[1],
        .paths = paths,
        .n_paths = 1,
        .maps_dir = argc == 4 ? argv[3] : ".",
        /* the threshold stored with the model; .threshold_policy = STFPM_THRESHOLD_QUANTILE
         * would take a quantile of its validation scores instead */
    };
    stfpm_predict_summary summary;
    s = stfpm_predict(ctx, &o, print_result, NULL, &summary);
    if (s != STFPM_OK) fprintf(stderr, "score_image: %s\n", stfpm_last_error());
    stfpm_ctx_free(ctx);
    return s == STFPM_OK ? 0 : 1;
}
