/* Convolution throughput at the ResNet-18 (conv1 .. layer3) shapes for a 256x256 input, and
 * the plain SGEMM of the same size through CLBlast and (when built with OpenBLAS) the CPU BLAS.
 *
 *   bench_conv [batch] [--size S] [--reps R] [--gemm-only] [--profile] [--cpu-time]
 *
 * batch defaults to 8. GFLOP/s count 2*M*N*K per op with M = Cout, N = batch*Ho*Wo,
 * K = Cin*KH*KW (the same for forward, backward-data and backward-weight). Each number is the
 * best of R timed runs (default 3) after one warm-up run. --gemm-only times only the GEMMs,
 * plus a 512^3 one (B and C with the engine's padded row stride, host/conv_algo.h; OpenBLAS
 * unpadded), each through our own kernel (stfpm_gemm_cpu, what the CPU variant runs) and
 * through CLBlast (stfpm_gemm_clblast; for checking CLBlast tuning: STFPM_CLBLAST_PARAMS=default
 * vs built-in) side by side.
 * --profile prints the time per kernel (im2col, col2im, CLBlast) summed over the conv runs.
 * --cpu-time divides by the CPU seconds this process used (all its threads) instead of the wall
 * time: on a machine shared with other jobs this compares configurations far more stably
 * (GFLOP per CPU-second; on an idle machine wall GFLOP/s = that times the cores kept busy). */
#include "stfpm/ops.h"
#include "runtime.h"
#include "conv_algo.h"
#include "gemm.h"
#include "stfpm/tune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#ifdef STFPM_HAVE_OPENBLAS
#include <cblas.h>
#endif

typedef struct layer_shape {
    const char *name;
    int cin, cout, k, stride, pad, in;   /* input spatial size at S = 256 */
    int count;                           /* occurrences in conv1 .. layer3 */
} layer_shape;

static const layer_shape k_layers[] = {
    {"conv1", 3, 64, 7, 2, 3, 256, 1},
    {"layer1 3x3", 64, 64, 3, 1, 1, 64, 4},
    {"layer2.0.conv1", 64, 128, 3, 2, 1, 64, 1},
    {"layer2.0.down", 64, 128, 1, 2, 0, 64, 1},
    {"layer2 3x3", 128, 128, 3, 1, 1, 32, 3},
    {"layer3.0.conv1", 128, 256, 3, 2, 1, 32, 1},
    {"layer3.0.down", 128, 256, 1, 2, 0, 32, 1},
    {"layer3 3x3", 256, 256, 3, 1, 1, 16, 3},
};
#define N_LAYERS ((int)(sizeof k_layers / sizeof k_layers[0]))

static int g_cpu_time;

static double now(void) {
    if (g_cpu_time) {
        struct rusage r;
        getrusage(RUSAGE_SELF, &r);
        return r.ru_utime.tv_sec + r.ru_stime.tv_sec + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) * 1e-6;
    }
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void die(const char *what) {
    fprintf(stderr, "bench_conv: %s: %s\n", what, stfpm_last_error());
    exit(1);
}
#define CK(x) do { if ((x) != STFPM_OK) die(#x); } while (0)

static void rand_tensor(stfpm_ctx *ctx, stfpm_tensor *t, int n, int c, int h, int w, unsigned seed) {
    CK(stfpm_tensor_alloc(ctx, t, n, c, h, w));
    size_t cnt = stfpm_tensor_numel(t);
    float *a = malloc(cnt * sizeof *a);
    srand(seed);
    for (size_t i = 0; i < cnt; i++) a[i] = (float)rand() / RAND_MAX - 0.5f;
    CK(stfpm_tensor_write(ctx, t, a));
    free(a);
}

enum { OP_FWD, OP_BWD_DATA, OP_BWD_WEIGHT, OP_GEMM, OP_GEMM_OWN };

typedef struct bench_args {
    stfpm_ctx *ctx;
    const layer_shape *l;
    stfpm_tensor *x, *w, *y, *dy, *dx, *dw;
    cl_mem a, b, c;
    size_t m, n, k, ld;   /* ld: row stride of B and C (the engine's padded one, conv_algo.h) */
} bench_args;

static void run_op(int op, bench_args *b) {
    switch (op) {
    case OP_FWD: CK(stfpm_conv2d_forward(b->ctx, b->x, b->w, b->l->stride, b->l->pad, b->y)); break;
    case OP_BWD_DATA:
        CK(stfpm_conv2d_backward(b->ctx, b->x, b->w, b->l->stride, b->l->pad, b->dy, b->dx, NULL));
        break;
    case OP_BWD_WEIGHT:
        CK(stfpm_conv2d_backward(b->ctx, b->x, b->w, b->l->stride, b->l->pad, b->dy, NULL, b->dw));
        break;
    case OP_GEMM:
        CK(stfpm_gemm_clblast(b->ctx, 0, 0, b->m, b->n, b->k, 1.0f, b->a, 0, b->k, b->b, 0, b->ld, 0.0f, b->c, 0,
                              b->ld));
        break;
    case OP_GEMM_OWN:
        CK(stfpm_gemm_cpu(b->ctx, 0, 1, b->m, b->n, b->k, 1.0f, b->a, 0, b->k, 0, b->b, 0, b->ld, 0, 0.0f, b->c, 0,
                          b->ld, 0));
        break;
    }
}

/* Best seconds of `reps` runs after a warm-up. */
static double time_op(int op, bench_args *b, int reps) {
    run_op(op, b);
    CK(stfpm_finish(b->ctx));
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        run_op(op, b);
        CK(stfpm_finish(b->ctx));
        double t = now() - t0;
        if (t < best) best = t;
    }
    return best;
}

#ifdef STFPM_HAVE_OPENBLAS
static double time_cblas(size_t m, size_t n, size_t k, int reps) {
    float *a = malloc(m * k * sizeof *a), *b = malloc(k * n * sizeof *b), *c = malloc(m * n * sizeof *c);
    for (size_t i = 0; i < m * k; i++) a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < k * n; i++) b[i] = (float)(i % 5) * 0.1f;
    double best = 1e30;
    for (int r = 0; r <= reps; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0f, a, (int)k, b,
                    (int)n, 0.0f, c, (int)n);
        double t = now() - t0;
        if (r > 0 && t < best) best = t;   /* run 0 is the warm-up */
    }
    free(a); free(b); free(c);
    return best;
}
#endif

static void alloc_gemm(stfpm_ctx *ctx, bench_args *b, size_t m, size_t n, size_t k) {
    b->m = m; b->n = n; b->k = k; b->ld = stfpm_conv_row_stride(n);
    CK(stfpm_buffer_alloc(ctx, m * k * sizeof(float), &b->a));
    CK(stfpm_buffer_alloc(ctx, k * b->ld * sizeof(float), &b->b));
    CK(stfpm_buffer_alloc(ctx, m * b->ld * sizeof(float), &b->c));
    /* contents do not matter for timing, but keep them finite */
    stfpm_tensor t = {.n = 1, .c = 1, .h = 1, .buf = b->a};
    t.w = (int)(m * k); CK(stfpm_tensor_fill(ctx, &t, 0.5f));
    t.buf = b->b; t.w = (int)(k * b->ld); CK(stfpm_tensor_fill(ctx, &t, 0.25f));
}

static void free_gemm(stfpm_ctx *ctx, bench_args *b) {
    stfpm_buffer_free(ctx, b->a, b->m * b->k * sizeof(float));
    stfpm_buffer_free(ctx, b->b, b->k * b->ld * sizeof(float));
    stfpm_buffer_free(ctx, b->c, b->m * b->ld * sizeof(float));
}

static void gemm_line(stfpm_ctx *ctx, const char *name, size_t m, size_t n, size_t k, int reps) {
    bench_args b = {.ctx = ctx};
    alloc_gemm(ctx, &b, m, n, k);
    double fl = 2.0 * m * n * k;
    double to = time_op(OP_GEMM_OWN, &b, reps), t = time_op(OP_GEMM, &b, reps);
    printf("%-22s %6zu %7zu %6zu %9.1f %9.1f %7.2f", name, m, n, k, fl / to * 1e-9, fl / t * 1e-9, t / to);
#ifdef STFPM_HAVE_OPENBLAS
    double tb = time_cblas(m, n, k, reps);
    printf(" %9.1f %7.2f", fl / tb * 1e-9, tb / t);
#endif
    printf("\n");
    free_gemm(ctx, &b);
}

int main(int argc, char **argv) {
    int batch = 8, size = 256, reps = 3, gemm_only = 0, profile = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) size = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--gemm-only") == 0) gemm_only = 1;
        else if (strcmp(argv[i], "--profile") == 0) profile = 1;
        else if (strcmp(argv[i], "--cpu-time") == 0) g_cpu_time = 1;
        else if (argv[i][0] != '-') batch = atoi(argv[i]);
        else {
            fprintf(stderr, "usage: bench_conv [batch] [--size S] [--reps R] [--gemm-only] [--profile] [--cpu-time]\n");
            return 2;
        }
    }
    if (batch < 1 || size < 32 || reps < 1) {
        fprintf(stderr, "bench_conv: batch >= 1, size >= 32, reps >= 1 required\n");
        return 2;
    }
    stfpm_ctx *ctx = NULL;
    stfpm_ctx_options opt = {.profile = profile ? STFPM_SWITCH_ON : STFPM_SWITCH_OFF};
    CK(stfpm_ctx_create(&ctx, &opt));
    printf("device: %s | kernels %s | batch %d | input %dx%d | best of %d | %s | CLBlast params: %s\n",
           stfpm_ctx_device(ctx)->device_name, stfpm_kernels_name(stfpm_ctx_get_options(ctx)->kernels), batch, size,
           size, reps,
           g_cpu_time ? "per CPU-second" : "wall time", stfpm_clblast_tuning_source(ctx));

    if (gemm_only) {
        printf("\n%-22s %6s %7s %6s %9s %9s %7s %9s %7s\n", "SGEMM (row-major NN)", "M", "N", "K", "own",
               "CLBlast", "own/CL", "OpenBLAS", "CL/OB");
        gemm_line(ctx, "512^3", 512, 512, 512, reps);
        for (int i = 0; i < N_LAYERS; i++) {
            const layer_shape *l = &k_layers[i];
            int in = l->in * size / 256, out = stfpm_conv_out_size(in, l->k, l->stride, l->pad);
            size_t p = (size_t)out * out, kk = (size_t)l->cin * l->k * l->k;
            char nm[64];
            snprintf(nm, sizeof nm, "%s (1 img)", l->name);
            gemm_line(ctx, nm, l->cout, p, kk, reps);
            snprintf(nm, sizeof nm, "%s (batch)", l->name);
            gemm_line(ctx, nm, l->cout, p * batch, kk, reps);
        }
        stfpm_ctx_free(ctx);
        return 0;
    }

    printf("GFLOP/s (2*M*N*K / time); GEMM = the forward's plain SGEMM, M x N x K, on the same device;"
           " ratio = CLBlast / OpenBLAS\n\n");
    printf("%-15s %-16s %5s %7s %5s | %7s %7s %7s | %7s %8s %6s\n", "layer", "shape", "M", "N", "K", "fwd",
           "bwd-dat", "bwd-wt", "GEMM", "OpenBLAS", "ratio");
    double net_t[3] = {0, 0, 0}, net_fl = 0;
    int n_convs = 0;
    for (int i = 0; i < N_LAYERS; i++) {
        const layer_shape *l = &k_layers[i];
        int in = l->in * size / 256, out = stfpm_conv_out_size(in, l->k, l->stride, l->pad);
        stfpm_tensor x, w, y, dy, dx, dw;
        rand_tensor(ctx, &x, batch, l->cin, in, in, 1 + i);
        rand_tensor(ctx, &w, l->cout, l->cin, l->k, l->k, 100 + i);
        rand_tensor(ctx, &dy, batch, l->cout, out, out, 200 + i);
        CK(stfpm_tensor_alloc(ctx, &y, batch, l->cout, out, out));
        CK(stfpm_tensor_alloc(ctx, &dx, batch, l->cin, in, in));
        CK(stfpm_tensor_alloc(ctx, &dw, l->cout, l->cin, l->k, l->k));
        bench_args b = {.ctx = ctx, .l = l, .x = &x, .w = &w, .y = &y, .dy = &dy, .dx = &dx, .dw = &dw};
        size_t m = l->cout, n = (size_t)batch * out * out, k = (size_t)l->cin * l->k * l->k;
        double fl = 2.0 * m * n * k;
        double t[4];
        if (profile) stfpm_ctx_profile_reset(ctx);
        for (int op = 0; op < 3; op++) t[op] = time_op(op, &b, reps);
        stfpm_profile_entry prof[32];
        int nprof = profile ? stfpm_ctx_profile(ctx, prof, 32) : 0;
        alloc_gemm(ctx, &b, m, n, k);
        t[3] = time_op(stfpm_gemm_own(ctx) ? OP_GEMM_OWN : OP_GEMM, &b, reps);
        free_gemm(ctx, &b);
        char shape[64];
        snprintf(shape, sizeof shape, "%d>%d %dx%d/%d", l->cin, l->cout, l->k, l->k, l->stride);
        printf("%-15s %-16s %5zu %7zu %5zu | %7.1f %7.1f %7.1f | %7.1f", l->name, shape, m, n, k,
               fl / t[0] * 1e-9, fl / t[1] * 1e-9, fl / t[2] * 1e-9, fl / t[3] * 1e-9);
#ifdef STFPM_HAVE_OPENBLAS
        double tb = time_cblas(m, n, k, reps);
        printf(" %8.1f %6.2f", fl / tb * 1e-9, tb / t[3]);
#endif
        printf("\n");
        for (int j = 0; j < nprof; j++)
            printf("    %-26s %9.2f ms %5ld calls (all conv runs of this layer)\n", prof[j].name, prof[j].ms,
                   prof[j].calls);
        fflush(stdout);
        for (int op = 0; op < 3; op++) net_t[op] += t[op] * l->count;
        net_fl += fl * l->count;
        n_convs += l->count;
        stfpm_tensor *all[] = {&x, &w, &y, &dy, &dx, &dw};
        for (int j = 0; j < 6; j++) stfpm_tensor_free(ctx, all[j]);
    }
    printf("\nconv1..layer3 all %d convs, batch %d: forward %.3f s (%.1f GFLOP/s), backward-data %.3f s, "
           "backward-weight %.3f s\n", n_convs, batch, net_t[0], net_fl / net_t[0] * 1e-9, net_t[1], net_t[2]);
    stfpm_ctx_free(ctx);
    return 0;
}
