/* `stfpm tune`: search CLBlast's Xgemm parameters and the direct / indirect threshold
 * (GemmRoutine XGEMM_MIN_INDIRECT_SIZE) at this project's GEMM shapes on the device in use,
 * and store the fastest set in the cache directory (host/clblast_params.c applies it to later
 * contexts).
 *
 * Shapes: the ResNet-18 conv GEMMs (layers conv1..layer3, as the student and teacher use them)
 * as host/conv.c and host/winograd.c issue them, row-major: conv1's im2col forward W * col (NN,
 * one image per chunk on CPUs, conv.c's 8 MiB chunks; 8 on other devices), the stride-2 3x3
 * conv's weight gradient dYc * colT (NN, reduction over the padded image columns) and data
 * gradient W^T * dYc (TN), and the Winograd GEMMs of the 3x3 stride-1 convs (one of the 36
 * planes, batch 8 in one chunk: forward U * V, weight gradient Z * Vt with the reduction over
 * the tiles). Each shape's time is weighted by how often a training step issues it.
 *
 * Each parameter set ("row") is: applied with CLBlastOverrideParameters (Xgemm + threshold 32,
 * so every measured GEMM takes the indirect path); checked on two small GEMMs (NN, and TN with
 * alpha, beta != 0; K = 37 and 45, not multiples of 16) against a double-precision CPU GEMM,
 * which also compiles CLBlast's program; timed per shape as the median of a few runs after one
 * warm-up run (so kernel compilation is not timed); and checked again on sampled entries of
 * every timed result. Rows that CLBlast rejects, that fail or that give wrong results are kept
 * in the table but cannot win. A row that crashes the process stays listed in a journal file
 * next to the tuned file (<name>.bad) and is skipped by later runs. The threshold is then
 * chosen per row from the measured times of the indirect and the direct (XgemmDirect) kernel
 * for each shape.
 *
 * Order: the baselines (CLBlast's parameters, XgemmDirect only, CLBlast's Xgemm parameters on
 * the indirect path, the built-in table's set, the previous tuned file), then the grid's
 * best-scored sets (prior(), --candidates of them within the --max-seconds budget), then every
 * Xgemm row within 1.5x of the fastest and the built-in and cached sets once more
 * (confirm_best). The winner is the earliest row within 2 % of the fastest.
 *
 * What the parts earn (bench/README.md, "stfpm tune": PoCL 3.1, CLBlast 1.5.3, 2-core AVX-512
 * VM shared with other jobs, --quick --cpu-time, 27 runs, 138 of the grid's 797 sets
 * measured): no grid set beats the built-in PoCL entry, which won 24 of the 27 runs; the
 * closest (VWM 16, KREG 8) takes 1.05-1.22x its time and is the prior order's 16th set. Best of
 * the first 8 / 16 / 40 sets against the same run's built-in row: prior order 1.2-1.4 /
 * 1.1-1.3 / 1.1-1.3x, a fixed random order of the same grid 1.9-3.7 / 1.9-3.7 / 1.3-2.2x,
 * so the scoring stays; the former family penalty (interleaving other tiles and thread counts
 * into the prior order) reached only 1.21-1.34x at 40 and is gone. The second measurement
 * stays: one run measured the built-in at 127 ms, then 78, against 94 / 81 for the runner-up,
 * and would have stored the slower set without it; the three lost runs measured the built-in
 * at twice its time (two on both rounds), hence it and the cached set are now always measured
 * again. No measured set crashed, hung, failed or gave wrong results on PoCL, and the only
 * crashes seen (non-square tiles) are outside the grid, so the journal does not pay there; it
 * stays, cut to about 40 lines, for devices whose sets were never run here (CLBlast 1.5.3
 * crashes on some), where a crash would otherwise stop every later run at the same set. */
#include "stfpm/tune.h"
#include "clblast_params.h"
#include "conv_algo.h"
#include "fsutil.h"
#include "gemm.h"
#include "runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define THRESHOLD_INDIRECT 32      /* every measured GEMM on the indirect kernel */
#define THRESHOLD_DIRECT 65536     /* every GEMM on XgemmDirect */
#define MAX_CANDIDATES 2048

void stfpm_tune_options_default(stfpm_tune_options *o) { memset(o, 0, sizeof *o); }

/* ------------------------------------------------------------------------------------------ */
/* shapes */

/* the row stride host/conv.c and host/winograd.c give their column matrices */
static size_t conv_backward_ld(size_t np) { return stfpm_conv_row_stride(np); }

static void set_shape(stfpm_tune_shape *s, const char *name, int ta, size_t m, size_t n, size_t k,
                      double weight) {
    snprintf(s->name, sizeof s->name, "%s", name);
    s->trans_a = ta;
    s->trans_b = 0;
    s->m = m; s->n = n; s->k = k;
    s->weight = weight;
}

static double shape_weight(const stfpm_tune_shape *s) { return s->weight > 0 ? s->weight : 1.0; }

int stfpm_tune_default_shapes(stfpm_ctx *ctx, int quick, stfpm_tune_shape *out, int *images_per_chunk,
                              int *input_size) {
    int cpu = (stfpm_ctx_device(ctx)->type & CL_DEVICE_TYPE_CPU) != 0;
    size_t S = quick ? 128 : 256, nb = cpu ? 1 : quick ? 4 : 8;
    size_t p0 = (S / 2) * (S / 2), p1 = (S / 4) * (S / 4), p2 = (S / 8) * (S / 8), p3 = (S / 16) * (S / 16);
    int n = 0;
    size_t wb = quick ? 4 : 8;                                   /* Winograd: the batch in one chunk */
    size_t t1 = conv_backward_ld(wb * p1 / 16), t2 = conv_backward_ld(wb * p2 / 16),
           t3 = conv_backward_ld(wb * p3 / 16);                  /* 4x4 tiles, padded like wino_ld */
    /* weights: calls per training step at batch 8 with the teacher-feature cache (the trainer's
     * default; the teacher's forward would add its convs once per step): im2col one per chunk;
     * Winograd 36 planes times the convs of that shape, forward and backward-data sharing the
     * forward's shape */
    double chunks = 8.0 / (double)nb;
    set_shape(&out[n++], "conv1 fwd", 0, 64, nb * p0, 147, chunks);               /* 7x7/2, 3->64 */
    set_shape(&out[n++], "layer2.0 bwd-w", 0, 128, 576, conv_backward_ld(nb * p2), chunks); /* 3x3/2 */
    set_shape(&out[n++], "layer2.0 bwd-d", 1, 576, conv_backward_ld(nb * p2), 128, chunks);
    set_shape(&out[n++], "wino l1 fwd", 0, 64, t1, 64, 36 * 8);                   /* M = U V, one plane */
    set_shape(&out[n++], "wino l2 fwd", 0, 128, t2, 128, 36 * 6);
    set_shape(&out[n++], "wino l3 fwd", 0, 256, t3, 256, 36 * 6);
    set_shape(&out[n++], "wino l1 bwd-w", 0, 64, 64, t1, 36 * 4);                 /* S = Z Vt */
    set_shape(&out[n++], "wino l3 bwd-w", 0, 256, 256, t3, 36 * 3);
    if (images_per_chunk) *images_per_chunk = (int)nb;
    if (input_size) *input_size = (int)S;
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* candidate parameter sets */

typedef struct cand {
    int gemmk, wg, kwg, dimc, vwm, vwn, kreg, sa;
    double score;
    int order;          /* position in the generated grid: ties keep it */
    char spec[320];
} cand;

static void cand_spec(cand *c) {
    snprintf(c->spec, sizeof c->spec,
             "Xgemm:GEMMK=%d,KREG=%d,KWG=%d,KWI=%d,MDIMA=%d,MDIMC=%d,MWG=%d,NDIMB=%d,NDIMC=%d,NWG=%d,"
             "SA=%d,SB=%d,STRM=0,STRN=0,VWM=%d,VWN=%d",
             c->gemmk, c->kreg, c->kwg, c->gemmk ? 1 : 2, c->dimc, c->dimc, c->wg, c->dimc, c->dimc, c->wg,
             c->sa, c->sa, c->vwm, c->vwn);
}

static double log2i(int v) { return log((double)v) / log(2.0); }

/* How likely a set is to win, from measurements on PoCL (host/clblast_params.c's table: GEMMK=1,
 * 4x4 threads, wide VWM, 64x64 tiles) and from CLBlast's database for GPUs (GEMMK=0 with
 * local-memory caching, 64-256 threads, 64-128 tiles, vector widths 2-4). */
static double prior(const cand *c, int cpu) {
    int per_item = (c->wg / c->dimc) * (c->wg / c->dimc);
    double s = 0;
    if (cpu) {
        s += c->gemmk ? 6 : 0;
        s += c->dimc == 4 ? 3 : c->dimc == 8 ? 1 : -3;
        s += c->wg == 64 ? 2 : c->wg == 32 ? 1 : c->wg == 128 ? 0.5 : -2;
        s += 0.8 * log2i(c->vwm);
        if (c->gemmk)
            s += (c->vwn == 1 ? 1 : -0.5 * log2i(c->vwn)) + (c->kreg == c->vwn ? 0.3 : 0) -
                 0.8 * log2i(c->kreg / c->vwn);
        else s += (c->sa ? -1 : 0.5) + 0.3 * log2i(c->vwn) + (c->kwg == 32 ? 0.2 : 0);
        if (per_item < 16) s -= 2;
    } else {
        if (!c->gemmk) s += 4 + (c->sa ? 3 : 0) + (c->kwg == 32 ? 0.3 : 0);
        else s += 3 + (c->kreg == c->vwn ? 0.3 : 0);
        s += c->dimc == 16 || c->dimc == 8 ? 2 : -2;
        s += c->wg == 64 ? 2 : c->wg == 128 ? 1.5 : c->wg == 32 ? 0.5 : -2;
        s += (c->vwm == 2 || c->vwm == 4) ? 1 : c->vwm == 8 ? 0.3 : 0;
        s += (c->vwn == 2 || c->vwn == 4) ? 1 : c->vwn == 8 ? 0.3 : 0;
        s += per_item >= 16 && per_item <= 64 ? 1.5 : per_item > 128 || per_item < 4 ? -2 : 0;
    }
    return s;
}

static int cmp_cand(const void *a, const void *b) {
    const cand *x = a, *y = b;
    return x->score < y->score ? 1 : x->score > y->score ? -1 : x->order - y->order;
}

/* The grid: GEMMK 0/1, square tiles MWG = NWG 16..128 (CLBlast 1.5.3 crashed with MWG != NWG on
 * PoCL), MDIMC = NDIMC = MDIMA = NDIMB 4..16, VWM / VWN 1..8 (VWM 16 too for GEMMK=1, the PoCL
 * winner), GEMMK=0: KWG 16/32, KWI 2, SA = SB 0/1; GEMMK=1: KWG = KWI = 1 and KREG a multiple of
 * VWN (CLBlast's tuner fixes KWG = 1 for that kernel). At most 256 accumulators per work-item,
 * within the device's work-group and local-memory limits: 797 sets on PoCL, of which a run
 * measures the best-scored --candidates (at most STFPM_TUNE_MAX_ROWS - 6). */
static int gen_candidates(stfpm_ctx *ctx, cand *out, int max_out) {
    cl_device_id d = stfpm_ctx_cl_device(ctx);
    size_t max_wg = 256, items[3] = {256, 256, 256};
    cl_ulong local_mem = 16384;
    clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof max_wg, &max_wg, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_ITEM_SIZES, sizeof items, items, NULL);
    clGetDeviceInfo(d, CL_DEVICE_LOCAL_MEM_SIZE, sizeof local_mem, &local_mem, NULL);
    int cpu = (stfpm_ctx_device(ctx)->type & CL_DEVICE_TYPE_CPU) != 0;
    static const int wgs[] = {16, 32, 64, 128}, dims[] = {4, 8, 16}, vws[] = {1, 2, 4, 8, 16};
    int n = 0;
    for (int gemmk = 0; gemmk < 2; gemmk++)
        for (int wi = 0; wi < 4; wi++)
            for (int di = 0; di < 3; di++)
                for (int mi = 0; mi < 5; mi++)
                    for (int ni = 0; ni < 4; ni++)
                        for (int ki = 0; ki < 4; ki++)
                            for (int sa = 0; sa < 2; sa++) {
                                cand c = {gemmk, wgs[wi], 0, dims[di], vws[mi], vws[ni], 1, sa, 0, n, ""};
                                if (gemmk) {
                                    if (sa) continue;
                                    c.kwg = 1;
                                    c.kreg = 1 << ki;  /* 1, 2, 4, 8 */
                                    if (c.kreg % c.vwn) continue;
                                } else {
                                    if (c.vwm == 16 || ki > 1) continue;
                                    c.kwg = ki ? 32 : 16;
                                }
                                if (c.wg % (c.dimc * c.vwm) || c.wg % (c.dimc * c.vwn)) continue;
                                if (c.wg / c.dimc > 16) continue;            /* <= 256 accumulators */
                                if ((size_t)(c.dimc * c.dimc) > max_wg || (size_t)c.dimc > items[0] ||
                                    (size_t)c.dimc > items[1])
                                    continue;
                                if (c.sa && (cl_ulong)(2 * 4 * c.kwg * c.wg) > local_mem) continue;
                                cand_spec(&c);
                                if (stfpm_clblast_check_spec(c.spec) != STFPM_OK) continue;
                                c.score = prior(&c, cpu);
                                if (n < max_out) out[n++] = c;
                            }
    qsort(out, (size_t)n, sizeof *out, cmp_cand);
    return n;
}

/* The Xgemm part of a spec ("" when none). */
static void xgemm_part(const char *spec, char *out, size_t n) {
    out[0] = 0;
    const char *p = strstr(spec, "Xgemm:");
    if (!p || (p != spec && p[-1] != ';')) return;
    const char *end = strchr(p, ';');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len < n) { memcpy(out, p, len); out[len] = 0; }
}

static long spec_value(const char *xg, const char *name) {
    char key[32];
    snprintf(key, sizeof key, "%s=", name);
    for (const char *p = strstr(xg, key); p; p = strstr(p + 1, key))
        if (p[-1] == ',' || p[-1] == ':') return strtol(p + strlen(key), NULL, 10);
    return -1;
}

static void describe(const char *xg, char *out, size_t n) {
    if (!xg[0]) { snprintf(out, n, "CLBlast's Xgemm parameters"); return; }
    long gemmk = spec_value(xg, "GEMMK");
    int k = snprintf(out, n, "GEMMK=%ld tile %ldx%ld threads %ldx%ld VW %ld/%ld", gemmk, spec_value(xg, "MWG"),
                     spec_value(xg, "NWG"), spec_value(xg, "MDIMC"), spec_value(xg, "NDIMC"), spec_value(xg, "VWM"),
                     spec_value(xg, "VWN"));
    if (k < 0 || (size_t)k >= n) return;
    if (gemmk == 1) snprintf(out + k, n - k, " KREG %ld", spec_value(xg, "KREG"));
    else snprintf(out + k, n - k, " KWG %ld%s", spec_value(xg, "KWG"),
                  spec_value(xg, "SA") == 1 || spec_value(xg, "SB") == 1 ? " local" : "");
}

/* ------------------------------------------------------------------------------------------ */
/* measuring */

typedef struct bench {
    stfpm_ctx *ctx;
    const stfpm_tune_shape *shapes;
    int n_shapes, runs, cpu_time;
    cl_mem a, b, c;          /* operands of the timed GEMMs (offset 0, as conv.c's scratch) */
    float *ha, *hb, *hc;     /* host copies of a, b; hc: room for a result */
    size_t na, nb, nc;
    /* verification GEMMs */
    cl_mem va, vb, vc;
    float *hva, *hvb, *hvc0, *hvc, *ref[2];
} bench;

static const struct { int ta; size_t m, n, k; float alpha, beta; } k_verify[2] = {
    {0, 70, 100, 37, 1.0f, 0.0f},    /* NN, as the forward / weight-gradient GEMMs */
    {1, 67, 130, 45, 0.75f, 0.5f},   /* TN, as the data-gradient GEMM; alpha, beta != 0 */
};

static void fill_uniform(float *x, size_t n, uint64_t seed) {
    uint64_t s = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (float)((s >> 40) * (1.0 / 16777216.0) * 2.0 - 1.0);
    }
}

static double a_at(const float *a, int ta, size_t m, size_t k, size_t i, size_t l) {
    return ta ? a[l * m + i] : a[i * k + l];
}

static stfpm_status upload(bench *b, cl_mem buf, const float *host, size_t n) {
    STFPM_CL(clEnqueueWriteBuffer(stfpm_ctx_queue(b->ctx), buf, CL_TRUE, 0, n * sizeof(float), host, 0, NULL, NULL));
    return STFPM_OK;
}

static void bench_free(bench *b) {
    stfpm_ctx *ctx = b->ctx;
    stfpm_buffer_free(ctx, b->a, b->na * sizeof(float));
    stfpm_buffer_free(ctx, b->b, b->nb * sizeof(float));
    stfpm_buffer_free(ctx, b->c, b->nc * sizeof(float));
    stfpm_buffer_free(ctx, b->va, 256 * 256 * sizeof(float));
    stfpm_buffer_free(ctx, b->vb, 256 * 256 * sizeof(float));
    stfpm_buffer_free(ctx, b->vc, 256 * 256 * sizeof(float));
    free(b->ha); free(b->hb); free(b->hc);
    free(b->hva); free(b->hvb); free(b->hvc0); free(b->hvc);
    free(b->ref[0]); free(b->ref[1]);
    memset(b, 0, sizeof *b);
}

static stfpm_status bench_init(bench *b, stfpm_ctx *ctx, const stfpm_tune_shape *shapes, int n_shapes, int runs,
                               int cpu_time) {
    memset(b, 0, sizeof *b);
    b->ctx = ctx; b->shapes = shapes; b->n_shapes = n_shapes; b->runs = runs; b->cpu_time = cpu_time;
    for (int s = 0; s < n_shapes; s++) {
        const stfpm_tune_shape *sh = &shapes[s];
        if (sh->m * sh->k > b->na) b->na = sh->m * sh->k;
        if (sh->k * sh->n > b->nb) b->nb = sh->k * sh->n;
        if (sh->m * sh->n > b->nc) b->nc = sh->m * sh->n;
    }
    const size_t nv = 256 * 256;
    b->ha = malloc(b->na * sizeof(float));
    b->hb = malloc(b->nb * sizeof(float));
    b->hc = malloc(b->nc * sizeof(float));
    b->hva = malloc(nv * sizeof(float));
    b->hvb = malloc(nv * sizeof(float));
    b->hvc0 = malloc(nv * sizeof(float));
    b->hvc = malloc(nv * sizeof(float));
    b->ref[0] = malloc(nv * sizeof(float));
    b->ref[1] = malloc(nv * sizeof(float));
    if (!b->ha || !b->hb || !b->hc || !b->hva || !b->hvb || !b->hvc0 || !b->hvc || !b->ref[0] || !b->ref[1]) {
        bench_free(b);
        return stfpm_set_error(STFPM_ERR_OOM, "stfpm_tune: out of host memory for the GEMM operands");
    }
    fill_uniform(b->ha, b->na, 1);
    fill_uniform(b->hb, b->nb, 2);
    fill_uniform(b->hva, nv, 3);
    fill_uniform(b->hvb, nv, 4);
    fill_uniform(b->hvc0, nv, 5);
    stfpm_status s = STFPM_OK;
    if (s == STFPM_OK) s = stfpm_buffer_alloc(ctx, b->na * sizeof(float), &b->a);
    if (s == STFPM_OK) s = stfpm_buffer_alloc(ctx, b->nb * sizeof(float), &b->b);
    if (s == STFPM_OK) s = stfpm_buffer_alloc(ctx, b->nc * sizeof(float), &b->c);
    if (s == STFPM_OK) s = stfpm_buffer_alloc(ctx, nv * sizeof(float), &b->va);
    if (s == STFPM_OK) s = stfpm_buffer_alloc(ctx, nv * sizeof(float), &b->vb);
    if (s == STFPM_OK) s = stfpm_buffer_alloc(ctx, nv * sizeof(float), &b->vc);
    if (s == STFPM_OK) s = upload(b, b->a, b->ha, b->na);
    if (s == STFPM_OK) s = upload(b, b->b, b->hb, b->nb);
    if (s == STFPM_OK) s = upload(b, b->va, b->hva, nv);
    if (s == STFPM_OK) s = upload(b, b->vb, b->hvb, nv);
    if (s != STFPM_OK) { bench_free(b); return stfpm_wrap_error(s, "stfpm_tune: allocating the GEMM operands"); }
    /* CPU references of the verification GEMMs (row-major, lda = op's natural width) */
    for (int v = 0; v < 2; v++) {
        size_t m = k_verify[v].m, n = k_verify[v].n, k = k_verify[v].k;
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++) {
                double acc = 0;
                for (size_t l = 0; l < k; l++) acc += a_at(b->hva, k_verify[v].ta, m, k, i, l) * b->hvb[l * n + j];
                b->ref[v][i * n + j] = (float)(k_verify[v].alpha * acc + k_verify[v].beta * b->hvc0[i * n + j]);
            }
    }
    return STFPM_OK;
}

static double clock_s(int cpu_time) {
    struct timespec ts;
    clock_gettime(cpu_time ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Tolerance of one output: float32 summation of k products of values in [-1, 1) (as
 * tests/test_ops_conv.c). Returns |got - want| / tol. */
static double err_ratio(float got, double want, size_t k) {
    double tol = 1e-4 + 2e-7 * (double)k + 1e-4 * fabs(want);
    double e = fabs((double)got - want) / tol;
    return isfinite(e) ? e : 1e30;
}

/* The two small GEMMs vs the CPU reference; raises *max_err. */
static stfpm_status verify_small(bench *b, double *max_err) {
    stfpm_ctx *ctx = b->ctx;
    for (int v = 0; v < 2; v++) {
        size_t m = k_verify[v].m, n = k_verify[v].n, k = k_verify[v].k;
        STFPM_TRY(upload(b, b->vc, b->hvc0, m * n));
        STFPM_TRY(stfpm_gemm_clblast(ctx, k_verify[v].ta, 0, m, n, k, k_verify[v].alpha, b->va, 0,
                                     k_verify[v].ta ? m : k, b->vb, 0, n, k_verify[v].beta, b->vc, 0, n));
        STFPM_CL(clEnqueueReadBuffer(stfpm_ctx_queue(ctx), b->vc, CL_TRUE, 0, m * n * sizeof(float), b->hvc, 0, NULL,
                                     NULL));
        for (size_t i = 0; i < m * n; i++) {
            double e = err_ratio(b->hvc[i], b->ref[v][i], k);
            if (e > *max_err) *max_err = e;
        }
    }
    return STFPM_OK;
}

/* Time shape s (median of runs after a warm-up) and check 48 sampled entries of the result. */
static stfpm_status time_shape(bench *b, int s, double *ms, double *max_err) {
    const stfpm_tune_shape *sh = &b->shapes[s];
    stfpm_ctx *ctx = b->ctx;
    size_t lda = sh->trans_a ? sh->m : sh->k;
    double t[64];
    int runs = b->runs < 64 ? b->runs : 64;
    for (int r = -1; r < runs; r++) {
        double t0 = clock_s(b->cpu_time);
        STFPM_TRY(stfpm_gemm_clblast(ctx, sh->trans_a, 0, sh->m, sh->n, sh->k, 1.0f, b->a, 0, lda, b->b, 0, sh->n,
                                     0.0f, b->c, 0, sh->n));
        STFPM_TRY(stfpm_finish(ctx));
        if (r >= 0) t[r] = clock_s(b->cpu_time) - t0;
    }
    qsort(t, (size_t)runs, sizeof t[0], cmp_double);
    *ms = 1e3 * (runs % 2 ? t[runs / 2] : 0.5 * (t[runs / 2 - 1] + t[runs / 2]));
    STFPM_CL(clEnqueueReadBuffer(stfpm_ctx_queue(ctx), b->c, CL_TRUE, 0, sh->m * sh->n * sizeof(float), b->hc, 0, NULL,
                                 NULL));
    uint64_t st = 12345 + (uint64_t)s;
    for (int q = 0; q < 48; q++) {
        st = st * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t i = (size_t)((st >> 33) % sh->m);
        st = st * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t j = q == 0 ? sh->n - 1 : (size_t)((st >> 33) % sh->n);  /* include the last column */
        if (q == 1) i = sh->m - 1;
        double acc = 0;
        for (size_t l = 0; l < sh->k; l++) acc += a_at(b->ha, sh->trans_a, sh->m, sh->k, i, l) * b->hb[l * sh->n + j];
        double e = err_ratio(b->hc[i * sh->n + j], acc, sh->k);
        if (e > *max_err) *max_err = e;
    }
    return STFPM_OK;
}

/* Measure one row with the parameters already applied: verification, then every shape. */
static void measure_row(bench *b, stfpm_tune_row *row) {
    row->max_err = 0;
    stfpm_status s = verify_small(b, &row->max_err);
    for (int i = 0; s == STFPM_OK && row->max_err <= 1 && i < b->n_shapes; i++)
        s = time_shape(b, i, &row->ms[i], &row->max_err);
    if (s != STFPM_OK) {
        row->status = STFPM_TUNE_FAILED;
        snprintf(row->why, sizeof row->why, "%s", stfpm_last_error());
        stfpm_finish(b->ctx);
    } else if (row->max_err > 1) {
        row->status = STFPM_TUNE_WRONG;
        snprintf(row->why, sizeof row->why, "wrong results: error %.3g x the tolerance", row->max_err);
    } else {
        row->total_ms = 0;
        for (int i = 0; i < b->n_shapes; i++) row->total_ms += shape_weight(&b->shapes[i]) * row->ms[i];
    }
}

/* ------------------------------------------------------------------------------------------ */
/* journal: <tuned file without .txt>.bad lists the sets that crashed (or were interrupted in)
 * an earlier run. Each set's line is appended before it is measured and cut off again after,
 * so a line stays only when the process died in between; later runs skip the listed sets. */

typedef struct journal {
    char path[1100];
    char *bad;          /* the file's contents at the start of this run */
    long len;           /* its length before the line of the set being measured; -1: none */
    int enabled, n_bad;
} journal;

/* The list is read whenever there is a cache path; written only when enabled. */
static void journal_open(journal *j, const char *cache_path, int enabled) {
    memset(j, 0, sizeof *j);
    j->len = -1;
    size_t l = strlen(cache_path);
    if (l < 4 || l + 8 > sizeof j->path) return;
    snprintf(j->path, sizeof j->path, "%.*s.bad", (int)(l - 4), cache_path);
    j->enabled = enabled;
    char dir[1100];
    snprintf(dir, sizeof dir, "%s", j->path);
    char *slash = strrchr(dir, '/');
    if (enabled && slash && slash != dir) { *slash = 0; stfpm_mkdir_p(dir); }
    if (stfpm_read_text(j->path, &j->bad, NULL) != STFPM_OK) j->bad = NULL;
    for (const char *p = j->bad; p && *p; p++) j->n_bad += *p != '\n' && (p == j->bad || p[-1] == '\n');
}

static int journal_is_bad(const journal *j, const char *spec) {
    size_t l = strlen(spec);
    for (const char *p = j->bad ? strstr(j->bad, spec) : NULL; p; p = strstr(p + 1, spec))
        if ((p == j->bad || p[-1] == '\n') && (p[l] == '\n' || p[l] == 0)) return 1;
    return 0;
}

static void journal_begin(journal *j, const char *spec) {
    FILE *f = j->enabled ? fopen(j->path, "ab") : NULL;
    if (!f) return;
    fseek(f, 0, SEEK_END);
    j->len = ftell(f);
    size_t bl = j->bad ? strlen(j->bad) : 0;
    fprintf(f, "%s%s\n", bl && j->len > 0 && j->bad[bl - 1] != '\n' ? "\n" : "", spec);
    fclose(f);   /* on disk before the set runs */
}

static void journal_end(journal *j) {
    if (j->len > 0) {
        if (truncate(j->path, j->len) != 0) { /* the line stays: that set is skipped next time */ }
    } else if (j->len == 0) {
        unlink(j->path);
    }
    j->len = -1;
}

/* ------------------------------------------------------------------------------------------ */
/* the search */

static int threshold_for_direct_upto(size_t mnk) { /* smallest T with T^3 > mnk */
    int t = (int)cbrt((double)mnk);
    while ((unsigned long long)t * t * t <= mnk) t++;
    while (t > 1 && (unsigned long long)(t - 1) * (t - 1) * (t - 1) > mnk) t--;
    return t;
}

/* Best threshold for a row with indirect times row->ms given the direct row's times; sets
 * row->total_ms to the total with that threshold. */
static void choose_threshold(const stfpm_tune_result *r, stfpm_tune_row *row, const stfpm_tune_row *direct) {
    row->threshold = THRESHOLD_INDIRECT;
    double best = 0;
    for (int s = 0; s < r->n_shapes; s++) best += shape_weight(&r->shapes[s]) * row->ms[s];
    for (int c = 0; direct && direct->status == STFPM_TUNE_OK && c < r->n_shapes; c++) {
        const stfpm_tune_shape *sc = &r->shapes[c];
        int t = threshold_for_direct_upto(sc->m * sc->n * sc->k);
        double total = 0;
        for (int s = 0; s < r->n_shapes; s++) {
            const stfpm_tune_shape *sh = &r->shapes[s];
            unsigned long long mnk = (unsigned long long)sh->m * sh->n * sh->k;
            total += shape_weight(sh) * (mnk < (unsigned long long)t * t * t ? direct->ms[s] : row->ms[s]);
        }
        if (total < best || (total == best && t < row->threshold)) { best = total; row->threshold = t; }
    }
    row->total_ms = best;
}

static void row_init(stfpm_tune_row *row, const char *label, const char *spec) {
    memset(row, 0, sizeof *row);
    snprintf(row->label, sizeof row->label, "%s", label);
    snprintf(row->spec, sizeof row->spec, "%s", spec);
}

typedef struct search {
    stfpm_ctx *ctx;
    stfpm_tune_result *r;
    bench b;
    journal j;
    stfpm_tune_progress_fn progress;
    void *user;
    double t0, budget;
    int rows_planned, best;
} search;

static void report(search *s, int row) {
    stfpm_tune_result *r = s->r;
    const stfpm_tune_row *x = &r->rows[row];
    if (x->status == STFPM_TUNE_OK && (s->best < 0 || x->total_ms < r->rows[s->best].total_ms)) s->best = row;
    if (!s->progress) return;
    stfpm_tune_progress p = {STFPM_TUNE_PHASE_ROW, row, s->rows_planned, x,
                             s->best >= 0 ? r->rows[s->best].total_ms : 0,
                             s->best >= 0 ? r->rows[s->best].label : "", stfpm_now() - s->t0, s->budget};
    s->progress(s->user, &p);
}

/* Apply `apply` (NULL: nothing), measure, record as row `label` with stored spec `spec`. */
static int add_row(search *s, const char *label, const char *apply, const char *spec, const char *desc) {
    stfpm_tune_result *r = s->r;
    if (r->n_rows == STFPM_TUNE_MAX_ROWS) return -1;
    int idx = r->n_rows++;
    stfpm_tune_row *row = &r->rows[idx];
    row_init(row, label, spec);
    snprintf(row->desc, sizeof row->desc, "%s", desc);
    if (apply && journal_is_bad(&s->j, apply)) {
        row->status = STFPM_TUNE_CRASHED;
        snprintf(row->why, sizeof row->why, "crashed an earlier stfpm tune run (listed in %.200s)", s->j.path);
    } else if (apply && stfpm_clblast_check_spec(apply) != STFPM_OK) {
        row->status = STFPM_TUNE_REJECTED;
        snprintf(row->why, sizeof row->why, "%s", stfpm_last_error());
    } else if (apply && stfpm_clblast_apply_spec(s->ctx, apply, "tune") != STFPM_OK) {
        row->status = STFPM_TUNE_REJECTED;
        snprintf(row->why, sizeof row->why, "%s", stfpm_last_error());
    } else {
        if (apply) journal_begin(&s->j, apply);
        measure_row(&s->b, row);
        if (apply) journal_end(&s->j);
    }
    return idx;
}

static void with_threshold(char *out, size_t n, const char *xg, int threshold) {
    snprintf(out, n, "%s%sGemmRoutine:XGEMM_MIN_INDIRECT_SIZE=%d", xg, xg[0] ? ";" : "", threshold);
}

/* Measure an Xgemm set (xg: "" = CLBlast's Xgemm, still in effect) on the indirect path. */
static int add_xgemm_row(search *s, const char *label, const char *xg) {
    char apply[1024], desc[96];
    with_threshold(apply, sizeof apply, xg, THRESHOLD_INDIRECT);
    describe(xg, desc, sizeof desc);
    int idx = add_row(s, label, apply, apply, desc);
    if (idx < 0) return idx;
    stfpm_tune_row *row = &s->r->rows[idx];
    if (row->status == STFPM_TUNE_OK) {
        choose_threshold(s->r, row, s->r->row_direct >= 0 ? &s->r->rows[s->r->row_direct] : NULL);
        with_threshold(row->spec, sizeof row->spec, xg, row->threshold);
    }
    report(s, idx);
    return idx;
}

/* Measure every Xgemm row within 1.5x of the fastest, and the built-in and cached sets (what a
 * context gets without this run), once more (their programs are compiled already) and keep
 * each shape's faster median: other jobs on the machine only ever slow a run down, and one
 * unlucky round (2x seen on a busy 2-core machine) should not decide the winner. CLBlast's
 * defaults cannot be re-applied after overrides, so rows without Xgemm parameters keep their
 * single measurement. */
static void confirm_best(search *s) {
    stfpm_tune_result *r = s->r;
    const stfpm_tune_row *direct = r->row_direct >= 0 ? &r->rows[r->row_direct] : NULL;
    double fastest = INFINITY;
    for (int i = 0; i < r->n_rows; i++)
        if (r->rows[i].status == STFPM_TUNE_OK && r->rows[i].total_ms < fastest) fastest = r->rows[i].total_ms;
    int n = r->n_rows;
    for (int i = 0; i < n; i++) {
        stfpm_tune_row *x = &r->rows[i], again;
        char xg[400], apply[480];
        xgemm_part(x->spec, xg, sizeof xg);
        if (x->status != STFPM_TUNE_OK || !xg[0] ||
            (x->total_ms > 1.5 * fastest && i != r->row_builtin && i != r->row_cached))
            continue;
        with_threshold(apply, sizeof apply, xg, THRESHOLD_INDIRECT);
        row_init(&again, x->label, apply);
        if (stfpm_clblast_apply_spec(s->ctx, apply, "tune") != STFPM_OK) continue;
        journal_begin(&s->j, apply);
        measure_row(&s->b, &again);
        journal_end(&s->j);
        double before = x->total_ms;
        if (again.status != STFPM_TUNE_OK) {
            x->status = again.status;
            snprintf(x->why, sizeof x->why, "second measurement: %.220s", again.why);
        } else {
            for (int k = 0; k < r->n_shapes; k++)
                if (again.ms[k] < x->ms[k]) x->ms[k] = again.ms[k];
            if (again.max_err > x->max_err) x->max_err = again.max_err;
            choose_threshold(r, x, direct);
            with_threshold(x->spec, sizeof x->spec, xg, x->threshold);
        }
        if (s->progress) {
            stfpm_tune_progress p = {STFPM_TUNE_PHASE_CONFIRM, i, s->rows_planned, x, before, x->label,
                                     stfpm_now() - s->t0, s->budget};
            s->progress(s->user, &p);
        }
    }
}

static void tuned_comment(const stfpm_tune_result *r, char *out, size_t n) {
    time_t now = time(NULL);
    struct tm tm;
    char date[32] = "?";
    if (localtime_r(&now, &tm)) strftime(date, sizeof date, "%Y-%m-%d %H:%M", &tm);
    const stfpm_tune_row *w = &r->rows[r->best];
    int k = snprintf(out, n, "tuned %s: %s, %.2f ms for %d GEMMs (median of %d %s runs)", date, w->label, w->total_ms,
                     r->n_shapes, r->runs, r->cpu_time ? "CPU-time" : "wall-clock");
    const int others[3] = {r->row_default, r->row_builtin, r->row_cached};
    const char *names[3] = {"CLBlast default", "built-in table", "previous file"};
    for (int i = 0; i < 3; i++)
        if (others[i] >= 0 && r->rows[others[i]].status == STFPM_TUNE_OK && k > 0 && (size_t)k < n)
            k += snprintf(out + k, n - k, "\n%s: %.2f ms", names[i], r->rows[others[i]].total_ms);
}

stfpm_status stfpm_tune(stfpm_ctx *ctx, const stfpm_tune_options *opts, stfpm_tune_progress_fn progress,
                        void *user, stfpm_tune_result *res) {
    stfpm_tune_options dflt;
    if (!opts) { stfpm_tune_options_default(&dflt); opts = &dflt; }
    if (!ctx || !res) return stfpm_set_error(STFPM_ERR_ARG, "stfpm_tune: ctx and result must not be NULL");
    memset(res, 0, sizeof *res);
    res->best = res->row_default = res->row_direct = res->row_builtin = res->row_cached = -1;
    const stfpm_device_info *dev = stfpm_ctx_device(ctx);
    snprintf(res->device, sizeof res->device, "%s", dev->device_name);
    snprintf(res->driver, sizeof res->driver, "%s", dev->driver_version);

    /* shapes */
    if (opts->shapes) {
        if (opts->n_shapes < 1 || opts->n_shapes > STFPM_TUNE_MAX_SHAPES)
            return stfpm_set_error(STFPM_ERR_ARG, "stfpm_tune: %d shapes given, expected 1..%d", opts->n_shapes,
                                   STFPM_TUNE_MAX_SHAPES);
        for (int i = 0; i < opts->n_shapes; i++) {
            const stfpm_tune_shape *sh = &opts->shapes[i];
            if (!sh->m || !sh->n || !sh->k || sh->trans_b || sh->m * sh->n > ((size_t)1 << 28) ||
                sh->m * sh->k > ((size_t)1 << 28) || sh->k * sh->n > ((size_t)1 << 28))
                return stfpm_set_error(STFPM_ERR_ARG, "stfpm_tune: shape %d (%zu x %zu x %zu, trans_b %d) invalid",
                                       i, sh->m, sh->n, sh->k, sh->trans_b);
            res->shapes[i] = *sh;
        }
        res->n_shapes = opts->n_shapes;
    } else {
        res->n_shapes = stfpm_tune_default_shapes(ctx, opts->quick, res->shapes, &res->images_per_chunk,
                                                  &res->input_size);
    }
    res->runs = opts->runs > 0 ? (opts->runs < 64 ? opts->runs : 63) : opts->quick ? 3 : 5;
    res->cpu_time = opts->cpu_time;
    int max_cand = opts->max_candidates > 0 ? opts->max_candidates : opts->quick ? 8 : 40;
    if (max_cand > STFPM_TUNE_MAX_ROWS - 6) max_cand = STFPM_TUNE_MAX_ROWS - 6;

    /* parameters in effect now (restored if the search fails) */
    char prev_spec[1024];
    stfpm_clblast_tuning_spec(ctx, prev_spec, sizeof prev_spec);
    const char *prev_source = stfpm_clblast_tuning_source(ctx);

    int have_path = stfpm_clblast_cache_path(dev, opts->cache_dir ? opts->cache_dir : stfpm_ctx_cache_dir(ctx), res->cache_path, sizeof res->cache_path) == STFPM_OK;
    char cached[1024] = "";
    if (have_path && stfpm_path_exists(res->cache_path) &&
        stfpm_clblast_read_cache(res->cache_path, dev, cached, sizeof cached) != STFPM_OK)
        cached[0] = 0;

    search s = {0};
    s.ctx = ctx;
    s.r = res;
    s.progress = progress;
    s.user = user;
    s.t0 = stfpm_now();
    s.budget = opts->max_seconds > 0 ? opts->max_seconds : 600;
    s.best = -1;
    journal_open(&s.j, have_path ? res->cache_path : "", !opts->no_save);
    if (s.j.n_bad)
        snprintf(res->note, sizeof res->note, "%d set(s) listed in %.300s crashed or were interrupted in earlier runs "
                 "and are skipped (delete the file to retry them)", s.j.n_bad, s.j.path);

    /* candidates */
    cand *grid = NULL;
    int n_grid = 0;
    const char *builtin = stfpm_clblast_builtin_spec(dev);
    char builtin_xg[1024] = "", cached_xg[1024] = "";
    if (builtin) xgemm_part(builtin, builtin_xg, sizeof builtin_xg);
    xgemm_part(cached, cached_xg, sizeof cached_xg);
    if (!opts->candidates) {
        grid = malloc(MAX_CANDIDATES * sizeof *grid);
        if (!grid) { free(s.j.bad); return stfpm_set_error(STFPM_ERR_OOM, "stfpm_tune: out of host memory"); }
        int n_all = gen_candidates(ctx, grid, MAX_CANDIDATES);
        /* the best-scored sets, less those measured as baseline rows */
        for (int i = 0; i < n_all && n_grid < max_cand; i++)
            if (opts->no_baselines || (strcmp(grid[i].spec, builtin_xg) != 0 && strcmp(grid[i].spec, cached_xg) != 0))
                grid[n_grid++] = grid[i];
    } else {
        n_grid = opts->n_candidates < max_cand ? opts->n_candidates : max_cand;
    }
    res->candidates_planned = n_grid;

    stfpm_status st = bench_init(&s.b, ctx, res->shapes, res->n_shapes, res->runs, res->cpu_time);
    if (st != STFPM_OK) { free(grid); free(s.j.bad); return st; }
    int intact = stfpm_clblast_defaults_intact(ctx);
    s.rows_planned = n_grid + (opts->no_baselines ? 0 : 2 + intact + (builtin_xg[0] != 0) +
                                                          (cached_xg[0] && strcmp(cached_xg, builtin_xg) != 0));
    if (progress) {
        stfpm_tune_progress p = {STFPM_TUNE_PHASE_START, 0, s.rows_planned, NULL, 0, "", 0, s.budget};
        progress(user, &p);
    }

    if (!opts->no_baselines) {
        /* CLBlast's own parameters first: any override makes them unreachable in this process */
        if (intact) {
            res->row_default = add_row(&s, "CLBlast default", NULL, "default", "CLBlast's parameters and threshold");
        } else {
            res->row_default = res->n_rows;
            row_init(&res->rows[res->n_rows++], "CLBlast default", "default");
            res->rows[res->row_default].status = STFPM_TUNE_UNAVAILABLE;
            snprintf(res->rows[res->row_default].why, sizeof res->rows[0].why,
                     "parameters of this device were overridden earlier in this process (source \"%s\"); "
                     "create the context with STFPM_CLBLAST_PARAMS=default to measure them", prev_source);
        }
        report(&s, res->row_default);
        char direct[96];
        with_threshold(direct, sizeof direct, "", THRESHOLD_DIRECT);
        res->row_direct = add_row(&s, "direct", direct, direct, "XgemmDirect for every GEMM (CLBlast's parameters)");
        report(&s, res->row_direct);
        if (intact) add_xgemm_row(&s, "default Xgemm", "");  /* Xgemm untouched so far */
        if (builtin_xg[0]) res->row_builtin = add_xgemm_row(&s, "built-in", builtin_xg);
        if (cached_xg[0] && strcmp(cached_xg, builtin_xg) != 0) res->row_cached = add_xgemm_row(&s, "cached", cached_xg);
        else if (cached_xg[0]) res->row_cached = res->row_builtin;
    }
    for (int i = 0; i < n_grid; i++) {
        if (stfpm_now() - s.t0 > s.budget) { res->budget_hit = 1; break; }
        char label[24], xg[1024];
        snprintf(label, sizeof label, "#%d", i + 1);
        if (opts->candidates) {
            xgemm_part(opts->candidates[i] ? opts->candidates[i] : "", xg, sizeof xg);
            if (!xg[0]) {
                int idx = res->n_rows++;
                row_init(&res->rows[idx], label, opts->candidates[i] ? opts->candidates[i] : "(null)");
                res->rows[idx].status = STFPM_TUNE_REJECTED;
                snprintf(res->rows[idx].why, sizeof res->rows[idx].why, "no Xgemm parameters in the candidate");
                report(&s, idx);
                continue;
            }
        } else {
            snprintf(xg, sizeof xg, "%s", grid[i].spec);
        }
        add_xgemm_row(&s, label, xg);
        res->candidates_run++;
    }
    confirm_best(&s);
    bench_free(&s.b);
    free(grid);
    free(s.j.bad);

    /* the winner: the earliest row (defaults, then the known sets, then the grid) within 2 % of
     * the fastest, so noise does not replace a known set by an equivalent one */
    double fastest = INFINITY;
    for (int i = 0; i < res->n_rows; i++)
        if (res->rows[i].status == STFPM_TUNE_OK && res->rows[i].total_ms < fastest) fastest = res->rows[i].total_ms;
    for (int i = 0; i < res->n_rows && res->best < 0; i++)
        if (res->rows[i].status == STFPM_TUNE_OK && res->rows[i].total_ms <= 1.02 * fastest) res->best = i;
    res->elapsed_s = stfpm_now() - s.t0;
    if (res->best < 0) {
        if (prev_spec[0] && strcmp(prev_spec, "default") != 0) stfpm_clblast_apply_spec(ctx, prev_spec, prev_source);
        return stfpm_set_error(STFPM_ERR_BLAS, "stfpm_tune: no parameter set worked on %s (%d tried; first failure: %s)",
                               dev->device_name, res->n_rows, res->n_rows ? res->rows[0].why : "none");
    }
    snprintf(res->spec, sizeof res->spec, "%s", res->rows[res->best].spec);

    /* apply: CLBlast's defaults cannot be restored in this process; keep the fastest override */
    const char *apply = res->spec;
    if (strcmp(apply, "default") == 0 && !stfpm_clblast_defaults_intact(ctx)) {
        int alt = -1;
        for (int i = 0; i < res->n_rows; i++)
            if (i != res->best && res->rows[i].status == STFPM_TUNE_OK &&
                (alt < 0 || res->rows[i].total_ms < res->rows[alt].total_ms))
                alt = i;
        apply = alt >= 0 ? res->rows[alt].spec : NULL;
        snprintf(res->note + strlen(res->note), sizeof res->note - strlen(res->note),
                 "%sCLBlast's defaults won; this process keeps %s until it exits", res->note[0] ? "; " : "",
                 alt >= 0 ? res->rows[alt].label : "the last measured set");
    }
    stfpm_status applied = apply ? stfpm_clblast_apply_spec(ctx, apply, "tune") : STFPM_OK;
    if (applied != STFPM_OK) return stfpm_wrap_error(applied, "stfpm_tune: applying the winner");

    if (!opts->no_save && have_path) {
        char comment[1024];
        tuned_comment(res, comment, sizeof comment);
        st = stfpm_clblast_write_cache(res->cache_path, dev, res->spec, comment);
        if (st != STFPM_OK) return stfpm_wrap_error(st, "stfpm_tune: storing the result");
        res->saved = 1;
        if (apply == res->spec) stfpm_clblast_apply_spec(ctx, apply, "cache");
    } else if (!opts->no_save) {
        snprintf(res->note + strlen(res->note), sizeof res->note - strlen(res->note),
                 "%snot stored: caching is disabled (STFPM_CACHE_DIR is empty)", res->note[0] ? "; " : "");
    }
    if (progress) {
        stfpm_tune_progress p = {STFPM_TUNE_PHASE_DONE, res->best, s.rows_planned, &res->rows[res->best],
                                 res->rows[res->best].total_ms, res->rows[res->best].label, res->elapsed_s, s.budget};
        progress(user, &p);
    }
    return STFPM_OK;
}
