/* SGEMM through CLBlast (host/gemm.c). */
#ifndef STFPM_GEMM_H
#define STFPM_GEMM_H

#include "stfpm/stfpm.h"

/* C = alpha * op(A) * op(B) + beta * C, row-major. Offsets and leading dimensions in floats.
 * CLBlast 1.5.3's batched GEMMs are not used: they return wrong results whenever they take
 * their internal copy path (host/clblast_params.c). */
stfpm_status stfpm_gemm(stfpm_ctx *ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k,
                        float alpha, cl_mem a, size_t a_off, size_t lda,
                        cl_mem b, size_t b_off, size_t ldb, float beta,
                        cl_mem c, size_t c_off, size_t ldc);

#endif
