/* Winograd convolution for 3x3 / stride-1 layers: F(4x4, 3x3) forward, backward-data and
 * weight gradient; F(2x2, 3x3) forward for batches with few 4x4 tiles. Weight / input / output
 * transforms in cl/winograd.cl; the channel reductions (36 planes, or 16) per chunk of images as
 * CLBlast GEMMs, one per plane.
 *
 * Per 4x4 output tile the 3x3 convolution over C channels costs 36 C multiply-adds instead of
 * 144 C (4x fewer); the transforms are O(C) per tile. The input is expanded 36/16 = 2.25x
 * (im2col: 9x). Numerically the result differs from direct summation by rounding only: the
 * transforms have small integer / dyadic coefficients except G's 1/6, 1/12, 1/24, but scale
 * intermediate values by up to ~100 (error measured ~3e-5 of the output's RMS at 576-term
 * reductions, 10x im2col's; tolerances in tests/test_ops_conv.c; features vs PyTorch stay
 * within 1e-4, tests/test_parity_*.c).
 *
 * Memory per chunk of nb images with T = nb * TH * TW tiles (ld >= T, see wino_ld):
 *   V: 36 * C * ld floats (STFPM_SCRATCH_COLS), M: 36 * K * ld floats (STFPM_SCRATCH_ROWS),
 *   U: 36 * C * K (STFPM_SCRATCH_AUX). Which convolutions come here: host/conv_algo.c. */
#include "winograd.h"
#include "conv_algo.h"
#include "gemm.h"
#include "runtime.h"

#include <stdlib.h>
#include <string.h>

/* Scratch per chunk (V + M). Unlike im2col (host/conv.c), larger chunks pay on CPUs too: each
 * chunk costs 36 GEMM calls, and wider GEMMs run faster. Measured on PoCL, training step at
 * 256x256, batch 8 (bench_step): 1.36 s/step with 8 MiB chunks (one image), 1.09 with 32 MiB,
 * 1.03 with 128 MiB (the whole batch); inference at batch 32 (two or three chunks at layer1):
 * 16.99 images/s with 8 MiB, 20.4 with 16, 21.2 with 32, 21.8 with 64, 23.8 with 128. Smaller
 * chunks did not make the (memory-bound) transforms faster. */
#define WINO_CHUNK_BYTES_CPU ((size_t)128 << 20)
#define WINO_CHUNK_BYTES_GPU ((size_t)256 << 20)
/* The eval forward (folded BN with its epilogue: inference, the teacher) on CPUs: smaller
 * chunks. On the 2-core AVX-512 Xeon, inference at batch 32 (bench_step --infer, alternating
 * processes, CPU seconds per batch, load average 5-5.5 from other jobs): 128 MiB 2.26 / 2.12 /
 * 2.28, 64 MiB 2.25 / 2.20 / 2.17, 32 MiB 2.21 / 1.94 / 1.80, 16 MiB 2.06 / 1.91 / 1.85, 8 MiB
 * (one image at layer1) 3.0-3.9; then this code against 128 MiB, three alternating pairs:
 * 1.94 / 2.18 / 1.98 vs 2.17 / 2.33 / 2.19 CPU s, wall 0.90x. With the queue paced
 * (stfpm_queue_pace, host/runtime.c): 16 MiB 1.67 / 1.67 / 1.70, 128 MiB 2.25 / 2.26, 32 MiB
 * 1.82 / 1.96, 12 MiB 1.72 / 1.71, 8 MiB 1.61 / 1.64. Batch 1 has one image per chunk
 * either way. Training keeps WINO_CHUNK_BYTES_CPU for the student (forward, backward-data,
 * weight gradient); the teacher's forward is an eval forward. */
#define WINO_EVAL_CHUNK_BYTES_CPU ((size_t)16 << 20)

/* Row stride of V and M for T tiles (conv_algo.h). */
static size_t wino_ld(size_t T) { return stfpm_conv_row_stride(T); }

/* Stride (floats) between the 36 planes of U, V and M: rows * cols rounded up to the device's
 * sub-buffer alignment, plus that alignment once more. Two reasons:
 * - The transforms touch all 36 planes for every tile. With dense planes (a stride that is a
 *   multiple of 4 KiB for any power-of-two channel count) the 36 streams share cache sets:
 *   on PoCL the output transform ran 2-3x slower, the input transform ~2x.
 * - Each plane is handed to CLBlast as its own sub-buffer (offset 0): CLBlast copies an operand
 *   into a temporary whenever its offset is not 0 (and its strided-batched GEMM, which would
 *   take the padded stride, returns wrong results when it copies: seen with any padding on
 *   PoCL with the tuned table, host/clblast_params.c). */
static size_t wino_plane(stfpm_ctx *ctx, size_t rows, size_t cols) {
    size_t a = stfpm_sub_buffer_align(ctx) / sizeof(float);
    return (rows * cols + a - 1) / a * a + a;
}

/* For each of the planes (36, or 16 for F(2x2)): C[xi] (m x n) = A[xi] (m x k) * B[xi] (k x n) + beta C[xi], dense
 * row-major planes (plane strides pa, pb, pc), each operand a sub-buffer at offset 0 (see
 * wino_plane). Only the first `used` columns of C are needed (the rest are padding): the own
 * GEMM computes those rounded up to its 32-column panels. */
static stfpm_status wino_gemms(stfpm_ctx *ctx, int planes, cl_mem A, size_t pa, cl_mem B, size_t pb, cl_mem Cm,
                               size_t pc, size_t m, size_t k, size_t n, size_t used, float beta) {
    stfpm_status st = STFPM_OK;
    if (stfpm_gemm_own(ctx)) {
        /* all planes in one launch (by offset and plane stride) */
        size_t cols = (used + 31) / 32 * 32;
        if (cols > n) cols = n;
        return stfpm_gemm_cpu(ctx, 0, planes, m, cols, k, 1.0f, A, 0, k, pa, B, 0, n, pb, beta, Cm, 0, n, pc);
    }
    if (stfpm_gpu_kernels(ctx)) {
        /* GPU variant: the planes by offset, no sub-buffers per call (they exist for PoCL, where
         * CLBlast copies an operand whose offset is not 0) */
        for (int xi = 0; xi < planes && st == STFPM_OK; xi++)
            st = stfpm_gemm(ctx, 0, 0, m, n, k, 1.0f, A, xi * pa, k, B, xi * pb, n, beta, Cm, xi * pc, n);
        return st;
    }
    for (int xi = 0; xi < planes && st == STFPM_OK; xi++) {
        cl_mem sub[3] = {NULL, NULL, NULL};
        const cl_mem parent[3] = {A, B, Cm};
        const size_t off[3] = {xi * pa, xi * pb, xi * pc}, len[3] = {m * k, k * n, m * n};
        for (int j = 0; j < 3 && st == STFPM_OK; j++) {
            cl_buffer_region r = {off[j] * sizeof(float), len[j] * sizeof(float)};
            cl_int e = CL_SUCCESS;
            sub[j] = clCreateSubBuffer(parent[j], CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &r, &e);
            st = stfpm_cl_check(e, "clCreateSubBuffer (winograd plane)");
        }
        if (st == STFPM_OK)
            st = stfpm_gemm(ctx, 0, 0, m, n, k, 1.0f, sub[0], 0, k, sub[1], 0, n, beta, sub[2], 0, n);
        for (int j = 0; j < 3; j++)
            if (sub[j]) clReleaseMemObject(sub[j]);
    }
    return st;
}

static int chunk_count(stfpm_ctx *ctx, size_t cpu_bytes, size_t per_image, int n) {
    const stfpm_ctx_options *o = stfpm_ctx_get_options(ctx);
    size_t budget = stfpm_chunk_budget(ctx, cpu_bytes, WINO_CHUNK_BYTES_GPU,
                                       o->wino_chunk_bytes ? o->wino_chunk_bytes : o->conv_chunk_bytes);
    size_t nbz = budget / per_image;
    return nbz < 1 ? 1 : nbz > (size_t)n ? n : (int)nbz;
}

/* The two per-chunk scratch matrices (COLS and ROWS) for chunks of *nb images: forward V (C x ld)
 * and M (K x ld) planes; wgrad Vt (ld x C) and Z (K x ld). When the device cannot hold them,
 * the chunk is halved until it can (down to one image) before giving up with STFPM_ERR_OOM. */
static stfpm_status wino_scratch(stfpm_ctx *ctx, int planes, int wgrad, int C, int K, size_t tiles, int *nb,
                                 cl_mem *a, cl_mem *b) {
    for (;;) {
        size_t ld = wino_ld((size_t)*nb * tiles);
        size_t pa = wgrad ? wino_plane(ctx, ld, (size_t)C) : wino_plane(ctx, (size_t)C, ld);
        stfpm_status st = stfpm_scratch(ctx, STFPM_SCRATCH_COLS, planes * pa * sizeof(float), a);
        if (st == STFPM_OK) st = stfpm_scratch(ctx, STFPM_SCRATCH_ROWS, planes * wino_plane(ctx, (size_t)K, ld) * sizeof(float), b);
        if (st == STFPM_ERR_OOM && *nb > 1) {
            /* slots only grow: drop both (contents are undefined anyway) so the smaller
             * request is not refused because of the larger buffer still held */
            stfpm_scratch_release(ctx, STFPM_SCRATCH_COLS);
            stfpm_scratch_release(ctx, STFPM_SCRATCH_ROWS);
            *nb = (*nb + 1) / 2;
            continue;
        }
        return st;
    }
}

/* U (planes of K x C, stride pu) from w. tile 4: F(4x4, 3x3), 36 planes, flip for the
 * backward-data pass (w is then (C, K, 3, 3)); tile 2: F(2x2, 3x3), 16 planes, forward only. */
static stfpm_status weight_transform(stfpm_ctx *ctx, int tile, cl_mem w, size_t w_off, int K, int C, int flip,
                                    size_t pu, cl_mem U) {
    cl_int wo = (cl_int)w_off, fl = flip ? 1 : 0, plane = (cl_int)pu;
    if (tile == 2) {
        if (flip) return stfpm_set_error(STFPM_ERR_INTERNAL, "winograd F(2x2, 3x3) is forward only");
        cl_int Ki = K, Ci = C;
        stfpm_karg a[] = {KARG(w), KARG(wo), KARG(Ki), KARG(Ci), KARG(plane), KARG(U)};
        size_t gws[2] = {(size_t)C, (size_t)K};
        return stfpm_enqueue(ctx, "winograd", "wino2_weight", 2, gws, NULL, KARGS(a));
    }
    /* the weight tensor is (Cout, Cin) = (K, C) forward, (C, K) for flip */
    cl_int wcout = flip ? C : K, wcin = flip ? K : C;
    stfpm_karg a[] = {KARG(w), KARG(wo), KARG(wcout), KARG(wcin), KARG(fl), KARG(plane), KARG(U)};
    size_t gws[2] = {flip ? (size_t)wcout : (size_t)wcin, flip ? (size_t)wcin : (size_t)wcout};
    return stfpm_enqueue(ctx, "winograd", "wino_weight", 2, gws, NULL, KARGS(a));
}

static int tile_planes(int tile) { return (tile + 2) * (tile + 2); }

/* A new buffer holding U of forward weights w (K, C, 3, 3) for the given tile. */
static stfpm_status prepared_weights(stfpm_ctx *ctx, int tile, cl_mem w, size_t w_off, int K, int C, cl_mem *out) {
    const size_t pu = wino_plane(ctx, (size_t)C, (size_t)K), bytes = tile_planes(tile) * pu * sizeof(float);
    *out = NULL;
    STFPM_TRY(stfpm_buffer_alloc(ctx, bytes, out));
    stfpm_status st = weight_transform(ctx, tile, w, w_off, K, C, 0, pu, *out);
    if (st != STFPM_OK) {
        stfpm_buffer_free(ctx, *out, bytes);
        *out = NULL;
    }
    return st;
}

stfpm_status stfpm_winograd_weights(stfpm_ctx *ctx, cl_mem w, size_t w_off, int K, int C, cl_mem *out) {
    return prepared_weights(ctx, 4, w, w_off, K, C, out);
}

stfpm_status stfpm_winograd2_weights(stfpm_ctx *ctx, cl_mem w, size_t w_off, int K, int C, cl_mem *out) {
    return prepared_weights(ctx, 2, w, w_off, K, C, out);
}

/* The forward (and, tile 4 with flip, the backward-data) convolution for either tile size:
 * per chunk of images the input transform, one GEMM per plane, the output transform with the
 * epilogue. */
static stfpm_status winograd_forward(stfpm_ctx *ctx, int tile, cl_mem x, size_t x_off, int n, int C, int H,
                                     int W, cl_mem w, size_t w_off, int flip, int pad, cl_mem y, size_t y_off,
                                     int K, int Ho, int Wo, const wino_epilogue *ep) {
    if (Ho != H + 2 * pad - 2 || Wo != W + 2 * pad - 2 || Ho < 1 || Wo < 1 || n < 1)
        return stfpm_set_error(STFPM_ERR_INTERNAL, "winograd: output %dx%d does not match input %dx%d, pad %d",
                               Ho, Wo, H, W, pad);
    const int planes = tile_planes(tile);
    const int TH = (Ho + tile - 1) / tile, TW = (Wo + tile - 1) / tile;
    const size_t tiles = (size_t)TH * TW;
    /* CPU variant: an item per row of tiles (ty, image and channel); GPU variant: an item per
     * (tile, channel), the tile index in dimension 0 (cl/winograd.cl) */
    const int gpu = stfpm_gpu_kernels(ctx);
    const char *kin = tile == 2 ? (gpu ? "wino2_input_g" : "wino2_input") : (gpu ? "wino_input_g" : "wino_input");
    const char *kout = tile == 2 ? (gpu ? "wino2_output_g" : "wino2_output") : (gpu ? "wino_output_g" : "wino_output");

    /* U: the transformed weights, K x C per plane (prepared ones when given) */
    cl_mem U, V, M;
    const size_t pu = wino_plane(ctx, (size_t)C, (size_t)K);
    cl_mem prep = !ep || flip ? NULL : tile == 2 ? ep->u2 : ep->u;
    if (prep) {
        U = prep;
    } else {
        STFPM_TRY(stfpm_scratch(ctx, STFPM_SCRATCH_AUX, planes * pu * sizeof(float), &U));
        STFPM_TRY(weight_transform(ctx, tile, w, w_off, K, C, flip, pu, U));
    }
    cl_mem bias = ep ? ep->bias : NULL, res = ep ? ep->res : NULL;
    cl_int has_bias = bias != NULL, has_res = res != NULL, relu = ep && ep->relu;
    cl_int bias_off = ep ? (cl_int)ep->bias_off : 0;
    if (!bias) bias = y;   /* never read; PoCL wants a valid buffer argument */
    if (!res) res = y;
    size_t per_image = (size_t)planes * (C + K) * tiles * sizeof(float);
    int nb = chunk_count(ctx, ep ? WINO_EVAL_CHUNK_BYTES_CPU : WINO_CHUNK_BYTES_CPU, per_image, n);
    STFPM_TRY(wino_scratch(ctx, planes, 0, C, K, tiles, &nb, &V, &M));

    for (int i0 = 0; i0 < n; i0 += nb) {
        int cnt = n - i0 < nb ? n - i0 : nb;
        size_t T = (size_t)cnt * tiles, ld = wino_ld(T);
        cl_int xo = (cl_int)(x_off + (size_t)i0 * C * H * W), yo = (cl_int)(y_off + (size_t)i0 * K * Ho * Wo);
        cl_int Ci = C, Hi = H, Wi = W, P = pad, THi = TH, TWi = TW, NB = cnt, LD = (cl_int)ld, Ki = K;
        cl_int Hoi = Ho, Woi = Wo;
        const size_t pv = wino_plane(ctx, (size_t)C, ld), pm = wino_plane(ctx, (size_t)K, ld);
        cl_int PV = (cl_int)pv, PM = (cl_int)pm;
        stfpm_karg ai[] = {KARG(x), KARG(xo), KARG(Ci), KARG(Hi), KARG(Wi), KARG(P), KARG(THi), KARG(TWi),
                           KARG(NB), KARG(LD), KARG(PV), KARG(V)};
        size_t gi[2] = {(size_t)TH, (size_t)cnt * C};
        if (gpu) gi[0] = ld, gi[1] = (size_t)C;   /* zeros in columns T .. ld-1 */
        STFPM_TRY(stfpm_enqueue(ctx, "winograd", kin, 2, gi, NULL, KARGS(ai)));
        /* M[xi] (K x ld) = U[xi] (K x C) * V[xi] (C x ld); columns beyond T are ignored */
        STFPM_TRY(wino_gemms(ctx, planes, U, pu, V, pv, M, pm, (size_t)K, (size_t)C, ld, T, 0.0f));
        cl_int ro = (cl_int)((ep ? ep->res_off : 0) + (size_t)i0 * K * Ho * Wo);
        stfpm_karg ao[] = {KARG(M), KARG(Ki), KARG(Hoi), KARG(Woi), KARG(THi), KARG(TWi), KARG(NB), KARG(LD),
                           KARG(PM), KARG(y), KARG(yo), KARG(has_bias), KARG(bias), KARG(bias_off),
                           KARG(has_res), KARG(res), KARG(ro), KARG(relu)};
        size_t go[2] = {(size_t)TH, (size_t)cnt * K};
        if (gpu) go[0] = T, go[1] = (size_t)K;
        STFPM_TRY(stfpm_enqueue(ctx, "winograd", kout, 2, go, NULL, KARGS(ao)));
    }
    return STFPM_OK;
}

stfpm_status stfpm_winograd2_conv_ep(stfpm_ctx *ctx, cl_mem x, size_t x_off, int n, int C, int H, int W,
                                     cl_mem w, size_t w_off, int pad, cl_mem y, size_t y_off, int K, int Ho,
                                     int Wo, const wino_epilogue *ep) {
    return winograd_forward(ctx, 2, x, x_off, n, C, H, W, w, w_off, 0, pad, y, y_off, K, Ho, Wo, ep);
}

stfpm_status stfpm_winograd_conv(stfpm_ctx *ctx, cl_mem x, size_t x_off, int n, int C, int H, int W,
                                 cl_mem w, size_t w_off, int flip, int pad, cl_mem y, size_t y_off, int K,
                                 int Ho, int Wo) {
    return winograd_forward(ctx, 4, x, x_off, n, C, H, W, w, w_off, flip, pad, y, y_off, K, Ho, Wo, NULL);
}

stfpm_status stfpm_winograd_conv_ep(stfpm_ctx *ctx, cl_mem x, size_t x_off, int n, int C, int H, int W,
                                    cl_mem w, size_t w_off, int flip, int pad, cl_mem y, size_t y_off,
                                    int K, int Ho, int Wo, const wino_epilogue *ep) {
    return winograd_forward(ctx, 4, x, x_off, n, C, H, W, w, w_off, flip, pad, y, y_off, K, Ho, Wo, ep);
}

/* Local size (TT tiles, CC channels) of wino_input_t_g: the work-group limit rounded down to a
 * power of two (at most 256), CC = 8 channels (one 32-byte run per tile in the stores), the
 * rest tiles (loads along the tile index). */
static void wgrad_local(stfpm_ctx *ctx, size_t l[2]) {
    size_t lim = stfpm_kernel_wg_limit(ctx, "winograd", "wino_input_t_g"), p = 1;
    if (lim > 256) lim = 256;
    while (p * 2 <= lim) p <<= 1;
    l[1] = p < 8 ? p : 8;
    l[0] = p / l[1];
}

stfpm_status stfpm_winograd_wgrad(stfpm_ctx *ctx, cl_mem x, size_t x_off, int n, int C, int H, int W, cl_mem dy,
                                  size_t dy_off, int K, int Ho, int Wo, int pad, cl_mem dw, size_t dw_off) {
    if (Ho != H + 2 * pad - 2 || Wo != W + 2 * pad - 2 || Ho < 1 || Wo < 1 || n < 1)
        return stfpm_set_error(STFPM_ERR_INTERNAL, "winograd wgrad: dy %dx%d does not match input %dx%d, pad %d",
                               Ho, Wo, H, W, pad);
    const int TH = (Ho + 3) / 4, TW = (Wo + 3) / 4;
    const size_t tiles = (size_t)TH * TW;
    size_t per_image = (size_t)36 * (C + K) * tiles * sizeof(float);
    int nb = chunk_count(ctx, WINO_CHUNK_BYTES_CPU, per_image, n);
    /* Vt (ld x C per plane, COLS), Z (K x ld, ROWS), S (K x C, AUX) */
    const size_t ps = wino_plane(ctx, (size_t)K, (size_t)C);
    cl_mem Vt, Z, S;
    STFPM_TRY(stfpm_scratch(ctx, STFPM_SCRATCH_AUX, 36 * ps * sizeof(float), &S));
    STFPM_TRY(wino_scratch(ctx, 36, 1, C, K, tiles, &nb, &Vt, &Z));

    const int gpu = stfpm_gpu_kernels(ctx);
    size_t lt[2] = {1, 1};
    if (gpu) wgrad_local(ctx, lt);

    for (int i0 = 0; i0 < n; i0 += nb) {
        int cnt = n - i0 < nb ? n - i0 : nb;
        size_t T = (size_t)cnt * tiles, ld = wino_ld(T);
        const size_t pv = wino_plane(ctx, ld, (size_t)C), pz = wino_plane(ctx, (size_t)K, ld);
        cl_int xo = (cl_int)(x_off + (size_t)i0 * C * H * W), dyo = (cl_int)(dy_off + (size_t)i0 * K * Ho * Wo);
        cl_int Ci = C, Hi = H, Wi = W, P = pad, THi = TH, TWi = TW, NB = cnt, LD = (cl_int)ld, Ki = K;
        cl_int Hoi = Ho, Woi = Wo, PV = (cl_int)pv, PZ = (cl_int)pz;
        if (gpu) {
            /* Vt and Z with their padded reduction entries (t >= T) written as zeros */
            stfpm_karg ai[] = {KARG(x), KARG(xo), KARG(Ci), KARG(Hi), KARG(Wi), KARG(P), KARG(THi), KARG(TWi),
                               KARG(NB), KARG(LD), KARG(PV), KARG(Vt), KLOCAL(6 * lt[0] * (lt[1] + 1) * sizeof(float))};
            size_t gi[2] = {ld, (size_t)C};
            STFPM_TRY(stfpm_enqueue(ctx, "winograd", "wino_input_t_g", 2, gi, lt, KARGS(ai)));
            stfpm_karg az[] = {KARG(dy), KARG(dyo), KARG(Ki), KARG(Hoi), KARG(Woi), KARG(THi), KARG(TWi),
                               KARG(NB), KARG(LD), KARG(PZ), KARG(Z)};
            size_t gz[2] = {ld, (size_t)K};
            STFPM_TRY(stfpm_enqueue(ctx, "winograd", "wino_dy_g", 2, gz, NULL, KARGS(az)));
        } else {
            stfpm_karg ai[] = {KARG(x), KARG(xo), KARG(Ci), KARG(Hi), KARG(Wi), KARG(P), KARG(THi), KARG(TWi),
                               KARG(NB), KARG(PV), KARG(Vt)};
            size_t gi[2] = {(size_t)TH, (size_t)cnt * C}, li[2] = {1, 16};
            STFPM_TRY(stfpm_enqueue(ctx, "winograd", "wino_input_t", 2, gi, li, KARGS(ai)));
            stfpm_karg az[] = {KARG(dy), KARG(dyo), KARG(Ki), KARG(Hoi), KARG(Woi), KARG(THi), KARG(TWi),
                               KARG(NB), KARG(LD), KARG(PZ), KARG(Z)};
            size_t gz[2] = {(size_t)TH, (size_t)cnt * K};
            STFPM_TRY(stfpm_enqueue(ctx, "winograd", "wino_dy", 2, gz, NULL, KARGS(az)));
            if (ld > T) {
                /* the padded reduction entries must be 0 in both operands (garbage could be NaN) */
                cl_int rows = K, c0 = (cl_int)T, one = 1, vlen = (cl_int)(ld * C), v0 = (cl_int)(T * C);
                stfpm_karg zz[] = {KARG(Z), KARG(rows), KARG(LD), KARG(c0), KARG(PZ)};
                size_t gzz[2] = {(size_t)K, 36};
                STFPM_TRY(stfpm_enqueue(ctx, "winograd", "wino_zero_cols", 2, gzz, NULL, KARGS(zz)));
                stfpm_karg zv[] = {KARG(Vt), KARG(one), KARG(vlen), KARG(v0), KARG(PV)};
                size_t gzv[2] = {1, 36};
                STFPM_TRY(stfpm_enqueue(ctx, "winograd", "wino_zero_cols", 2, gzv, NULL, KARGS(zv)));
            }
        }
        /* S[xi] (K x C) (+)= Z[xi] (K x ld) * Vt[xi] (ld x C) */
        if (stfpm_gemm_splitk_wanted(ctx, 36, (size_t)K, (size_t)C, ld))
            /* GPU variant: all 36 planes (K x C each, a reduction over the tiles) in one split-K
             * launch instead of 36 GEMMs of a few work-groups each */
            STFPM_TRY(stfpm_gemm_splitk(ctx, 36, (size_t)K, (size_t)C, ld, Z, 0, ld, pz, Vt, 0, (size_t)C, pv,
                                        i0 == 0 ? 0.0f : 1.0f, S, 0, (size_t)C, ps));
        else
            STFPM_TRY(wino_gemms(ctx, 36, Z, pz, Vt, pv, S, ps, (size_t)K, ld, (size_t)C, (size_t)C,
                                 i0 == 0 ? 0.0f : 1.0f));
    }
    cl_int Ki = K, Ci = C, PS = (cl_int)ps, dwo = (cl_int)dw_off;
    stfpm_karg ao[] = {KARG(S), KARG(Ki), KARG(Ci), KARG(PS), KARG(dw), KARG(dwo)};
    size_t go[2] = {(size_t)C, (size_t)K};
    return stfpm_enqueue(ctx, "winograd", "wino_wgrad_out", 2, go, NULL, KARGS(ao));
}
