/* SGEMM through CLBlast, and per-device CLBlast tuning parameters. */
#include "runtime.h"

#include <clblast_c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static stfpm_status blas_check(CLBlastStatusCode c, const char *what, size_t m, size_t n, size_t k) {
    if (c == CLBlastSuccess) return STFPM_OK;
    if (c == CLBlastOpenCLOutOfResources || c == CLBlastOpenCLOutOfHostMemory || c == -4)
        return stfpm_set_error(STFPM_ERR_OOM, "%s (m=%zu n=%zu k=%zu): device out of memory/resources (CLBlast status %d)",
                               what, m, n, k, (int)c);
    return stfpm_set_error(STFPM_ERR_BLAS, "%s (m=%zu n=%zu k=%zu) failed: CLBlast status %d%s", what, m, n, k,
                           (int)c, c < 0 && c > -100 ? " (an OpenCL error code)" : "");
}

stfpm_status stfpm_gemm(stfpm_ctx *ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k,
                        float alpha, cl_mem a, size_t a_off, size_t lda,
                        cl_mem b, size_t b_off, size_t ldb, float beta,
                        cl_mem c, size_t c_off, size_t ldc) {
    cl_command_queue q = stfpm_ctx_queue(ctx);
    cl_event ev = NULL;
    CLBlastStatusCode st = CLBlastSgemm(CLBlastLayoutRowMajor,
                                        trans_a ? CLBlastTransposeYes : CLBlastTransposeNo,
                                        trans_b ? CLBlastTransposeYes : CLBlastTransposeNo, m, n, k,
                                        alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc, &q,
                                        stfpm_profiling(ctx) ? &ev : NULL);
    STFPM_TRY(blas_check(st, "CLBlastSgemm", m, n, k));
    if (ev) stfpm_profile_event(ctx, "clblast_sgemm", ev);
    return STFPM_OK;
}

/* A loop of plain GEMMs: CLBlast 1.5.3's strided-batched indirect GEMM returns wrong results
 * with the GEMMK=1 kernels tuned for PoCL when K is not a multiple of 16 (seen at K=17, batch 3). */
stfpm_status stfpm_gemm_batched(stfpm_ctx *ctx, int trans_a, int trans_b, size_t m, size_t n,
                                size_t k, float alpha, cl_mem a, size_t a_off, size_t lda,
                                size_t a_stride, cl_mem b, size_t b_off, size_t ldb,
                                size_t b_stride, float beta, cl_mem c, size_t c_off, size_t ldc,
                                size_t c_stride, size_t batch) {
    for (size_t i = 0; i < batch; i++)
        STFPM_TRY(stfpm_gemm(ctx, trans_a, trans_b, m, n, k, alpha, a, a_off + i * a_stride, lda, b,
                             b_off + i * b_stride, ldb, beta, c, c_off + i * c_stride, ldc));
    return STFPM_OK;
}

stfpm_status stfpm_clblast_override(stfpm_ctx *ctx, const char *kernel, size_t count,
                                    const char **names, const size_t *values) {
    CLBlastStatusCode st = CLBlastOverrideParameters(stfpm_ctx_cl_device(ctx), kernel,
                                                     CLBlastPrecisionSingle, count, names, values);
    if (st != CLBlastSuccess)
        return stfpm_set_error(STFPM_ERR_BLAS,
                               "CLBlastOverrideParameters(%s) rejected the parameters (status %d): every "
                               "parameter of the kernel must be given", kernel, (int)st);
    return STFPM_OK;
}

/* Parse "Kernel:NAME=V,NAME=V;Kernel2:..." and apply each kernel's set. */
static stfpm_status apply_spec(stfpm_ctx *ctx, const char *spec) {
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", spec);
    char *save1 = NULL;
    for (char *part = strtok_r(buf, ";", &save1); part; part = strtok_r(NULL, ";", &save1)) {
        char *colon = strchr(part, ':');
        if (!colon) return stfpm_set_error(STFPM_ERR_ARG, "CLBlast parameters \"%s\": expected Kernel:NAME=V,...", part);
        *colon = 0;
        const char *names[32];
        size_t values[32], n = 0;
        char *save2 = NULL;
        for (char *kv = strtok_r(colon + 1, ",", &save2); kv && n < 32; kv = strtok_r(NULL, ",", &save2)) {
            char *eq = strchr(kv, '=');
            if (!eq) return stfpm_set_error(STFPM_ERR_ARG, "CLBlast parameter \"%s\": expected NAME=VALUE", kv);
            *eq = 0;
            names[n] = kv;
            values[n] = strtoul(eq + 1, NULL, 10);
            n++;
        }
        STFPM_TRY(stfpm_clblast_override(ctx, part, n, names, values));
    }
    return STFPM_OK;
}

/* Tuned parameters, keyed by a substring of the device name.
 *
 * PoCL CPU device (pthread-*), measured with `bench_conv 8 --gemm-only --cpu-time` (stfpm_gemm,
 * row-major NN, best of 3) with CLBlast 1.5.3 and PoCL 3.1 on the 2-vCPU AVX-512 EPYC build
 * machine. That machine is shared with other jobs, so the numbers are GFLOP per CPU-second of
 * the process (wall-clock numbers jumped by 2x between runs; these repeat within ~10%); with
 * both cores free, wall GFLOP/s reach up to 2x these. OpenBLAS sgemm, same metric: 90-100.
 *
 *   M x N x K                 CLBlast    old table       old table +      this table
 *                             default    (Xgemm GEMMK=0) indirect >= 32^3 (GEMMK=1 + 32^3)
 *   512^3                        7.6        7.7              35.9             100.1
 *   64 x 4096 x 576 (layer1)     7.2        7.2              35.3              69.9
 *   64 x 32768 x 576             11.4       21.3             22.8              58.0
 *   128 x 1024 x 1152 (layer2)   5.7        7.4              33.6              54.5
 *   256 x 256 x 2304 (layer3)    6.6        6.3              26.2              91.7
 *   256 x 2048 x 2304            9.2        18.1             19.5              43.6
 *   64 x 16384 x 147 (conv1)     7.2        6.9              16.9              61.5
 *
 * Findings:
 * - CLBlast runs GEMMs with M*N*K < XGEMM_MIN_INDIRECT_SIZE^3 (896^3 by default for this
 *   device) on XgemmDirect, which on PoCL runs at ~6-8 GFLOP/s. The Xgemm override does take
 *   effect, but only above that size (64 x 32768 x 576: 21 vs 11); 512^3 and every per-image
 *   conv GEMM stayed on XgemmDirect at ~7 (the old comment's "72.6 GFLOP/s at 512^3" was the
 *   tuner's kernel-only number). GemmRoutine:XGEMM_MIN_INDIRECT_SIZE=32 sends everything from
 *   32^3 up to the indirect kernel, which wins from 64^3 (23 vs 6 GFLOP/s) upwards.
 * - With GEMMK=0 the indirect kernel wants A and C column-major, so a row-major call pays a
 *   transpose of A and of C around the kernel (halves 512^3: 40 row-major vs 73-83 for the
 *   same kernel called column-major). GEMMK=1 wants row-major A, B and C: row-major NN GEMMs
 *   whose sizes are multiples of 64 (M, N) need no copies at all. host/conv.c arranges its
 *   GEMMs as NN on the large operands for this reason.
 * - The remaining slow cases are GEMMs whose A has a row stride that is a multiple of 2-4 KiB
 *   (e.g. 128 x 1152 x 1024: 42 vs 87 with K = 1040), and large N (64 x 32768: 58 vs 70 at
 *   N = 4096). host/conv.c pads the weight-gradient GEMM's reduction and processes about one
 *   image per chunk on CPUs to stay clear of both.
 * - GEMMK=1 search (MWG = NWG = 64 unless noted; GFLOP/CPU-s, geometric mean over 512^3,
 *   64x4096x576, 128x1024x1152, 256x256x2304, 64x16384x147): MDIMC=NDIMC=8 VWM=VWN=4 KREG=4:
 *   38; same with KREG=8: 37; VWM=8 VWN=1 KREG=1: 44-49; MDIMC=4 VWM=16 VWN=1: 63; NDIMC=4
 *   VWM=8: 66; MDIMC=NDIMC=4 VWM=16 VWN=1 KREG=1: 78-84 (chosen); the same with 32x32 tiles:
 *   62-84 (lower wall-clock); MDIMC=NDIMC=16: 10; VWM=VWN=1: 14. MWG != NWG crashed CLBlast
 *   (heap corruption) for MWG=32/NWG=64 and MWG=64/NWG=128: only square tiles are used.
 * - CLBlast 1.5.3 bug: XgemmStridedBatched's indirect path rounds K up to a multiple of VWM
 *   for the kernel but pads the operands to KWG*KREG only, so with a GEMMK=1 set (KWG=1) a
 *   strided-batched GEMM whose K is not a multiple of VWM (16 here) reads past the operands
 *   and returns garbage (seen: K = 17, batch 3; plain Xgemm is fine). stfpm_gemm_batched with
 *   batch > 1 above the 32^3 threshold is therefore wrong on PoCL with this table unless K is
 *   a multiple of 16; host/conv.c uses loops of stfpm_gemm. Plain SGEMM (all four transpose
 *   cases, offsets, padded leading dimensions, beta != 0, direct and indirect sizes) is
 *   checked against a CPU GEMM in tests/test_ops_conv.c. */
static const struct { const char *device_substr; const char *spec; } k_tuned[] = {
    {"pthread",
     "Xgemm:GEMMK=1,KREG=1,KWG=1,KWI=1,MDIMA=4,MDIMC=4,MWG=64,NDIMB=4,NDIMC=4,NWG=64,SA=0,SB=0,"
     "STRM=0,STRN=0,VWM=16,VWN=1;"
     "GemmRoutine:XGEMM_MIN_INDIRECT_SIZE=32"},
    {NULL, NULL}};

stfpm_status stfpm_clblast_apply_tuning(stfpm_ctx *ctx) {
    const char *env = getenv("STFPM_CLBLAST_PARAMS");
    if (env && strcmp(env, "default") == 0) return STFPM_OK;
    if (env && *env) return stfpm_wrap_error(apply_spec(ctx, env), "STFPM_CLBLAST_PARAMS");
    const char *dev = stfpm_ctx_device(ctx)->device_name;
    for (int i = 0; k_tuned[i].device_substr; i++)
        if (strstr(dev, k_tuned[i].device_substr)) return apply_spec(ctx, k_tuned[i].spec);
    return STFPM_OK;
}
