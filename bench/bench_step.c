/* Per-op profile of STFPM training steps and inference (OpenCL event profiling).
 *   bench_step [--size S] [--batch N] [--steps K] [--backbone B] [--infer] [--no-profile]
 * B: resnet18 (default), resnet34, resnet50, wide_resnet50_2 (teacher and student).
 * Weights are random (speed does not depend on the values).
 * With profiling on, the queue records an event per command (host/runtime.c reads them in
 * batches, without waiting per command), which adds a little to each launch; --no-profile
 * measures the wall time as training and inference run it (no events), without the table. */
#include "stfpm/model.h"
#include "runtime.h"
#include "fsutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU seconds of the whole process (all threads, PoCL's workers included). */
static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_prof(const void *a, const void *b) {
    double x = ((const stfpm_profile_entry *)a)->ms, y = ((const stfpm_profile_entry *)b)->ms;
    return x < y ? 1 : x > y ? -1 : 0;
}

int main(int argc, char **argv) {
    int size = 128, batch = 8, steps = 3, infer = 0, profile = 1;
    stfpm_backbone bb = STFPM_RESNET18;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc) size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--backbone") && i + 1 < argc) {
            if (stfpm_backbone_parse(argv[++i], &bb)) { fprintf(stderr, "%s\n", stfpm_last_error()); return 2; }
        } else if (!strcmp(argv[i], "--infer")) infer = 1;
        else if (!strcmp(argv[i], "--no-profile")) profile = 0;
        else {
            fprintf(stderr, "usage: bench_step [--size S] [--batch N] [--steps K] [--backbone B] [--infer] [--no-profile]\n");
            return 2;
        }
    }
    stfpm_ctx *ctx;
    stfpm_ctx_options o = {.profile = profile ? STFPM_SWITCH_ON : STFPM_SWITCH_OFF};
    if (stfpm_ctx_create(&ctx, &o)) { fprintf(stderr, "%s\n", stfpm_last_error()); return 1; }
    profile = stfpm_profiling(ctx); /* STFPM_PROFILE=1 turns it on even with --no-profile */
    printf("device: %s | kernels %s\n", stfpm_ctx_device(ctx)->device_name,
           stfpm_kernels_name(stfpm_ctx_get_options(ctx)->kernels));
    stfpm_model m;
    int layers[3] = {1, 2, 3};
    float *x = malloc(sizeof(float) * 3 * size * size * batch);
    for (size_t i = 0; i < (size_t)3 * size * size * batch; i++) x[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    stfpm_status s = stfpm_model_init_backbone(ctx, &m, bb, size, layers, 3, STFPM_MODEL_TRAIN);
    if (!s) s = stfpm_resnet_init_kaiming(ctx, m.teacher, 1);
    if (!s) s = stfpm_resnet_init_kaiming(ctx, m.student, 2);
    float loss;
    float *scores = malloc(sizeof(float) * batch);
    /* warm-up (kernel builds) */
    if (!s) s = infer ? stfpm_model_eval(ctx, &m, x, batch, NULL, scores, NULL)
                      : stfpm_model_train_step(ctx, &m, x, NULL, NULL, batch, 0.01f, 0.9f, 1e-4f, STFPM_SGD_FIRST_STEP, &loss);
    if (!s) s = stfpm_finish(ctx);
    stfpm_ctx_profile_reset(ctx);
    double t0 = stfpm_now(), c0 = cpu_now();
    for (int k = 0; k < steps && !s; k++)
        s = infer ? stfpm_model_eval(ctx, &m, x, batch, NULL, scores, NULL)
                  : stfpm_model_train_step(ctx, &m, x, NULL, NULL, batch, 0.01f, 0.9f, 1e-4f, STFPM_SGD_CONTINUE, &loss);
    if (!s) s = stfpm_finish(ctx);
    double dt = stfpm_now() - t0, dc = cpu_now() - c0;
    if (s) { fprintf(stderr, "error: %s\n", stfpm_last_error()); return 1; }
    stfpm_profile_entry e[256];
    int n = stfpm_ctx_profile(ctx, e, 256);
    qsort(e, (size_t)n, sizeof e[0], cmp_prof);
    double tot = 0;
    for (int i = 0; i < n; i++) tot += e[i].ms;
    if (!profile) {
        printf("%s %s size %d batch %d steps %d: %.3f s/step, %.2f images/s, %.3f CPU s/step (not profiled)\n",
               stfpm_backbone_name(bb), infer ? "inference" : "training", size, batch, steps, dt / steps, batch * steps / dt, dc / steps);
        n = 0;
    } else {
        printf("%s %s size %d batch %d steps %d: %.3f s/step, %.2f images/s, %.3f CPU s/step (profiled kernel time %.1f ms/step)\n",
               stfpm_backbone_name(bb), infer ? "inference" : "training", size, batch, steps, dt / steps, batch * steps / dt, dc / steps,
               tot / steps);
    }
    if (n) printf("%-36s %10s %8s %7s %9s\n", "kernel", "ms/step", "calls", "share", "GFLOP/s");
    for (int i = 0; i < n; i++) {
        char rate[32] = "-";
        if (e[i].flop > 0 && e[i].ms > 0) snprintf(rate, sizeof rate, "%.1f", e[i].flop / (e[i].ms * 1e6));
        printf("%-36s %10.2f %8ld %6.1f%% %9s\n", e[i].name, e[i].ms / steps, e[i].calls / steps, 100 * e[i].ms / tot,
               rate);
    }
    printf("device memory peak: %.1f MiB\n", stfpm_ctx_mem_peak(ctx) / 1048576.0);
    stfpm_model_free(ctx, &m);
    stfpm_ctx_free(ctx);
    free(x);
    free(scores);
    return 0;
}
