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

stfpm_status stfpm_gemm_batched(stfpm_ctx *ctx, int trans_a, int trans_b, size_t m, size_t n,
                                size_t k, float alpha, cl_mem a, size_t a_off, size_t lda,
                                size_t a_stride, cl_mem b, size_t b_off, size_t ldb,
                                size_t b_stride, float beta, cl_mem c, size_t c_off, size_t ldc,
                                size_t c_stride, size_t batch) {
    if (batch == 1)
        return stfpm_gemm(ctx, trans_a, trans_b, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c,
                          c_off, ldc);
    cl_command_queue q = stfpm_ctx_queue(ctx);
    cl_event ev = NULL;
    CLBlastStatusCode st = CLBlastSgemmStridedBatched(
        CLBlastLayoutRowMajor, trans_a ? CLBlastTransposeYes : CLBlastTransposeNo,
        trans_b ? CLBlastTransposeYes : CLBlastTransposeNo, m, n, k, alpha, a, a_off, lda, a_stride, b,
        b_off, ldb, b_stride, beta, c, c_off, ldc, c_stride, batch, &q, stfpm_profiling(ctx) ? &ev : NULL);
    STFPM_TRY(blas_check(st, "CLBlastSgemmStridedBatched", m, n, k));
    if (ev) stfpm_profile_event(ctx, "clblast_sgemm_batched", ev);
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

/* Tuned parameters, keyed by a substring of the device name. Found with CLBlast's tuner. */
static const struct { const char *device_substr; const char *spec; } k_tuned[] = {
    /* PoCL CPU device (pthread-*): CLBlast's tuner, 72.6 GFLOP/s at 512^3 vs ~10 default. */
    {"pthread",
     "Xgemm:GEMMK=0,KREG=1,KWG=32,KWI=2,MDIMA=8,MDIMC=8,MWG=64,NDIMB=8,NDIMC=8,NWG=64,SA=0,SB=0,"
     "STRM=0,STRN=0,VWM=4,VWN=4"},
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
