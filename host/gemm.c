/* SGEMM through CLBlast. Which parameters CLBlast runs with on a device is host/clblast_params.c. */
#include "gemm.h"
#include "runtime.h"

#include <clblast_c.h>
#include <stdio.h>

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
    if (ev) stfpm_profile_event_flop(ctx, "clblast_sgemm", ev, 2.0 * (double)m * (double)n * (double)k);
    return STFPM_OK;
}
