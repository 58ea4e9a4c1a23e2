/* SGEMM through CLBlast (host/gemm.c). */
#ifndef STFPM_GEMM_H
#define STFPM_GEMM_H

#include "stfpm/stfpm.h"

/* C = alpha * op(A) * op(B) + beta * C, row-major. Offsets and leading dimensions in floats.
 * Runs stfpm_gemm_cpu when stfpm_gemm_own (and B is not transposed), else CLBlast. */
stfpm_status stfpm_gemm(stfpm_ctx *ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k,
                        float alpha, cl_mem a, size_t a_off, size_t lda,
                        cl_mem b, size_t b_off, size_t ldb, float beta,
                        cl_mem c, size_t c_off, size_t ldc);

/* The same through CLBlast whatever the gemm option. CLBlast 1.5.3's batched GEMMs are not
 * used: they return wrong results whenever they take their internal copy path
 * (host/clblast_params.c). */
stfpm_status stfpm_gemm_clblast(stfpm_ctx *ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k,
                                float alpha, cl_mem a, size_t a_off, size_t lda,
                                cl_mem b, size_t b_off, size_t ldb, float beta,
                                cl_mem c, size_t c_off, size_t ldc);

/* Whether the GEMMs run on our own CPU-shaped kernels: the gemm option, under AUTO the CPU
 * kernel variant. */
int stfpm_gemm_own(const stfpm_ctx *ctx);

/* Our CPU-shaped GEMM (cl/gemm.cl gemm_cpu_nn / gemm_cpu_tn) over `planes` independent problems
 * in one launch: C_z = alpha * op(A_z) * B_z + beta * C_z, row-major, op(A) = A (M x K, row
 * stride lda) or, trans_a, A^T (A_z is K x M); A_z at a_off + z * sa, B_z (K x N, ldb) at
 * b_off + z * sb, C_z (M x N, ldc) at c_off + z * sc; offsets and strides in floats. C is not
 * read when beta is 0. Any shape (ragged edges take slower paths), 32-bit indices. */
stfpm_status stfpm_gemm_cpu(stfpm_ctx *ctx, int trans_a, int planes, size_t m, size_t n, size_t k, float alpha,
                            cl_mem a, size_t a_off, size_t lda, size_t sa, cl_mem b, size_t b_off, size_t ldb,
                            size_t sb, float beta, cl_mem c, size_t c_off, size_t ldc, size_t sc);

/* A convolution's forward GEMM with its epilogue, our CPU-shaped kernel (gemm_cpu_nn_ep):
 * y = act(W * col + bias + res) where W is M x K (row stride lda) at w_off, col K x N (ldb) at
 * col_off, and column j of the product is output pixel g0 + j of the batch (image
 * (g0 + j) / P, P pixels per image, NCHW with M channels from y_off; res, when not NULL, in the
 * same layout from res_off; bias, when not NULL, M values from bias_off; act ReLU when relu). */
stfpm_status stfpm_gemm_cpu_conv_ep(stfpm_ctx *ctx, size_t m, size_t n, size_t k, cl_mem w, size_t w_off, size_t lda,
                                    cl_mem col, size_t col_off, size_t ldb, cl_mem y, size_t y_off, size_t g0,
                                    size_t P, cl_mem bias, size_t bias_off, cl_mem res, size_t res_off, int relu);

/* Split-K GEMM for small outputs with long reductions (cl/gemm.cl), over `planes` independent
 * problems in one launch: C_z = A_z * B_z + beta * C_z, row-major, no transposes, A_z at
 * a_off + z * sa (M x K, row stride lda), B_z at b_off + z * sb (K x N, ldb), C_z at
 * c_off + z * sc (M x N, ldc); offsets and strides in floats. The reduction is cut into slices
 * (about 8 work-groups per compute unit) whose partial products go to STFPM_SCRATCH_PARTIALS and
 * are summed in a fixed order. */
stfpm_status stfpm_gemm_splitk(stfpm_ctx *ctx, int planes, size_t m, size_t n, size_t k, cl_mem a, size_t a_off,
                               size_t lda, size_t sa, cl_mem b, size_t b_off, size_t ldb, size_t sb, float beta,
                               cl_mem c, size_t c_off, size_t ldc, size_t sc);
/* Whether `planes` GEMMs of this shape run as split-K: the GPU kernel variant, a reduction of at
 * least 1024, and outputs of fewer 64 x 64 tiles in all than twice the compute units (CLBlast
 * would leave most of the device idle). */
int stfpm_gemm_splitk_wanted(stfpm_ctx *ctx, int planes, size_t m, size_t n, size_t k);

#endif
