/* SGEMM: CLBlast (which parameters it runs with on a device: host/clblast_params.c), or the CPU
 * variant's own kernels (cl/gemm.cl gemm_cpu_*), and the GPU variant's split-K kernel. */
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
    if (!trans_b && m && n && k && stfpm_gemm_own(ctx))
        return stfpm_gemm_cpu(ctx, trans_a, 1, m, n, k, alpha, a, a_off, lda, 0, b, b_off, ldb, 0, beta, c, c_off,
                              ldc, 0);
    return stfpm_gemm_clblast(ctx, trans_a, trans_b, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off,
                              ldc);
}

stfpm_status stfpm_gemm_clblast(stfpm_ctx *ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k,
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
    stfpm_queue_pace(ctx);
    return STFPM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* split-K (cl/gemm.cl) */

int stfpm_gemm_splitk_wanted(stfpm_ctx *ctx, int planes, size_t m, size_t n, size_t k) {
    if (!stfpm_gpu_kernels(ctx)) return 0;
    const size_t cu = stfpm_ctx_device(ctx)->compute_units ? stfpm_ctx_device(ctx)->compute_units : 1;
    /* CLBlast's work-groups, about, over all the planes (which it would run one after another) */
    const size_t tiles = ((m + 63) / 64) * ((n + 63) / 64) * (size_t)(planes > 0 ? planes : 1);
    return k >= 1024 && tiles < 2 * cu;
}

stfpm_status stfpm_gemm_splitk(stfpm_ctx *ctx, int planes, size_t m, size_t n, size_t k, cl_mem a, size_t a_off,
                               size_t lda, size_t sa, cl_mem b, size_t b_off, size_t ldb, size_t sb, float beta,
                               cl_mem c, size_t c_off, size_t ldc, size_t sc) {
    if (planes < 1 || !m || !n || !k)
        return stfpm_set_error(STFPM_ERR_ARG, "split-K GEMM: empty problem (%d planes, %zu x %zu x %zu)", planes, m, n, k);
    const size_t lim = stfpm_kernel_wg_limit(ctx, "gemm", "gemm_splitk_partial");
    size_t T = 16;
    while (T > 1 && T * T > lim) T /= 2;
    const size_t cu = stfpm_ctx_device(ctx)->compute_units ? stfpm_ctx_device(ctx)->compute_units : 1;
    const size_t groups = ((m + T - 1) / T) * ((n + T - 1) / T) * (size_t)planes;
    /* about 8 work-groups per compute unit, each slice at least 256 long */
    size_t S = (8 * cu + groups - 1) / groups, smax = k / 256 ? k / 256 : 1;
    if (S > smax) S = smax;
    if (S < 1) S = 1;
    size_t kslice = (k + S - 1) / S;
    kslice = (kslice + T - 1) / T * T;
    S = (k + kslice - 1) / kslice;
    const size_t pn = (size_t)planes * S * m * n;
    if (pn > 2147483647u || m * lda > 2147483647u || k * ldb > 2147483647u || a_off + planes * sa > 2147483647u ||
        b_off + planes * sb > 2147483647u || c_off + planes * sc + m * ldc > 2147483647u)
        return stfpm_set_error(STFPM_ERR_ARG, "split-K GEMM: %zu x %zu x %zu (%d planes) too large for 32-bit indices",
                               m, n, k, planes);
    cl_mem P;
    STFPM_TRY(stfpm_scratch(ctx, STFPM_SCRATCH_PARTIALS, pn * sizeof(float), &P));
    cl_int ao = (cl_int)a_off, la = (cl_int)lda, sai = (cl_int)sa, bo = (cl_int)b_off, lb = (cl_int)ldb,
           sbi = (cl_int)sb, M = (cl_int)m, N = (cl_int)n, K = (cl_int)k, KS = (cl_int)kslice, Si = (cl_int)S;
    stfpm_karg pa[] = {KARG(a), KARG(ao), KARG(la), KARG(sai), KARG(b), KARG(bo), KARG(lb), KARG(sbi), KARG(P), KARG(M),
                       KARG(N), KARG(K), KARG(KS), KARG(Si), KLOCAL(T * T * sizeof(float)),
                       KLOCAL(T * T * sizeof(float))};
    size_t g1[3] = {(n + T - 1) / T * T, (m + T - 1) / T * T, (size_t)planes * S}, l1[3] = {T, T, 1};
    STFPM_TRY(stfpm_enqueue(ctx, "gemm", "gemm_splitk_partial", 3, g1, l1, KARGS(pa)));
    cl_int co = (cl_int)c_off, lc = (cl_int)ldc, sci = (cl_int)sc, pl = planes;
    stfpm_karg sa2[] = {KARG(P), KARG(Si), KARG(M), KARG(N), KARG(c), KARG(co), KARG(lc), KARG(sci), KARG(pl), KARG(beta)};
    size_t g2[2] = {m * n, (size_t)planes};
    return stfpm_enqueue(ctx, "gemm", "gemm_splitk_sum", 2, g2, NULL, KARGS(sa2));
}

/* ------------------------------------------------------------------------------------------ */
/* the CPU variant's own GEMM (cl/gemm.cl gemm_cpu_nn / gemm_cpu_tn) */

int stfpm_gemm_own(const stfpm_ctx *ctx) {
    const stfpm_gemm_choice g = stfpm_ctx_get_options(ctx)->gemm;
    return g == STFPM_GEMM_OWN || (g == STFPM_GEMM_AUTO && !stfpm_gpu_kernels(ctx));
}

/* Reduction block (see cl/gemm.cl): B's panel of GEMM_CPU_KC x 32 floats is 128 KiB, which
 * stays in a core's L2 while the work-item walks its rows. On the 2-core AVX-512 Xeon
 * (PoCL 3.1): 64 x 147 x 16448 (conv1's weight gradient) 87 GFLOP/s with blocks of 256, 137
 * with 1024, 51 unblocked; shapes with K <= 1152 the same with 256 or 1024. */
#define GEMM_CPU_KC 1024

/* Work-items: column panels x planes x row ranges; rows split until there are about 8 items
 * per compute unit (dynamic scheduling evens out the ragged panels). */
static void cpu_split(stfpm_ctx *ctx, int planes, size_t m, size_t n, size_t *groups, size_t *mrows) {
    const size_t cu = stfpm_ctx_device(ctx)->compute_units ? stfpm_ctx_device(ctx)->compute_units : 1;
    const size_t panels = (n + 31) / 32, blocks = (m + 7) / 8, items = panels * (size_t)planes;
    size_t g = (8 * cu + items - 1) / items;
    if (g > blocks) g = blocks;
    if (g < 1) g = 1;
    *mrows = (blocks + g - 1) / g * 8;
    *groups = (m + *mrows - 1) / *mrows;
}

stfpm_status stfpm_gemm_cpu(stfpm_ctx *ctx, int trans_a, int planes, size_t m, size_t n, size_t k, float alpha,
                            cl_mem a, size_t a_off, size_t lda, size_t sa, cl_mem b, size_t b_off, size_t ldb,
                            size_t sb, float beta, cl_mem c, size_t c_off, size_t ldc, size_t sc) {
    if (planes < 1 || !m || !n || !k)
        return stfpm_set_error(STFPM_ERR_ARG, "GEMM: empty problem (%d planes, %zu x %zu x %zu)", planes, m, n, k);
    const size_t pl = (size_t)planes - 1;
    const size_t a_end = a_off + pl * sa + (trans_a ? (k - 1) * lda + m : (m - 1) * lda + k);
    const size_t b_end = b_off + pl * sb + (k - 1) * ldb + n, c_end = c_off + pl * sc + (m - 1) * ldc + n;
    if ((trans_a ? lda < m : lda < k) || ldb < n || ldc < n)
        return stfpm_set_error(STFPM_ERR_ARG, "GEMM %zu x %zu x %zu: leading dimensions %zu / %zu / %zu too small", m,
                               n, k, lda, ldb, ldc);
    if (a_end > 2147483647u || b_end > 2147483647u || c_end > 2147483647u)
        return stfpm_set_error(STFPM_ERR_ARG, "GEMM %zu x %zu x %zu (%d planes) too large for 32-bit indices", m, n, k,
                               planes);
    size_t groups, mrows;
    cpu_split(ctx, planes, m, n, &groups, &mrows);
    cl_int ao = (cl_int)a_off, la = (cl_int)lda, sai = (cl_int)sa, bo = (cl_int)b_off, lb = (cl_int)ldb,
           sbi = (cl_int)sb, co = (cl_int)c_off, lc = (cl_int)ldc, sci = (cl_int)sc, M = (cl_int)m, N = (cl_int)n,
           K = (cl_int)k, G = (cl_int)groups, MR = (cl_int)mrows, KC = GEMM_CPU_KC;
    stfpm_karg args[] = {KARG(a), KARG(ao), KARG(la), KARG(sai), KARG(b), KARG(bo), KARG(lb), KARG(sbi),
                         KARG(c), KARG(co), KARG(lc), KARG(sci), KARG(M), KARG(N), KARG(K), KARG(alpha),
                         KARG(beta), KARG(G), KARG(MR), KARG(KC)};
    size_t g[2] = {(n + 31) / 32, (size_t)planes * groups}, l[2] = {1, 1};
    return stfpm_enqueue_flop(ctx, "gemm", trans_a ? "gemm_cpu_tn" : "gemm_cpu_nn", 2, g, l, KARGS(args),
                              2.0 * (double)m * (double)n * (double)k * planes);
}

stfpm_status stfpm_gemm_cpu_conv_ep(stfpm_ctx *ctx, size_t m, size_t n, size_t k, cl_mem w, size_t w_off, size_t lda,
                                    cl_mem col, size_t col_off, size_t ldb, cl_mem y, size_t y_off, size_t g0,
                                    size_t P, cl_mem bias, size_t bias_off, cl_mem res, size_t res_off, int relu) {
    if (!m || !n || !k || !P)
        return stfpm_set_error(STFPM_ERR_ARG, "GEMM epilogue: empty problem (%zu x %zu x %zu, %zu pixels)", m, n, k, P);
    if (lda < k || ldb < n)
        return stfpm_set_error(STFPM_ERR_ARG, "GEMM epilogue %zu x %zu x %zu: leading dimensions %zu / %zu too small",
                               m, n, k, lda, ldb);
    const size_t images = (g0 + n + P - 1) / P;
    if (w_off + (m - 1) * lda + k > 2147483647u || col_off + (k - 1) * ldb + n > 2147483647u ||
        y_off + images * m * P > 2147483647u || res_off + images * m * P > 2147483647u)
        return stfpm_set_error(STFPM_ERR_ARG, "GEMM epilogue %zu x %zu x %zu too large for 32-bit indices", m, n, k);
    size_t groups, mrows;
    cpu_split(ctx, 1, m, n, &groups, &mrows);
    cl_int ao = (cl_int)w_off, la = (cl_int)lda, bo = (cl_int)col_off, lb = (cl_int)ldb, M = (cl_int)m,
           N = (cl_int)n, K = (cl_int)k, G = (cl_int)groups, MR = (cl_int)mrows, yo = (cl_int)y_off,
           G0 = (cl_int)g0, Pi = (cl_int)P, hb = bias != NULL, bo2 = (cl_int)bias_off, hr = res != NULL,
           ro = (cl_int)res_off, rl = relu != 0;
    if (!bias) bias = y;   /* never read; PoCL wants a valid buffer argument */
    if (!res) res = y;
    stfpm_karg args[] = {KARG(w), KARG(ao), KARG(la), KARG(col), KARG(bo), KARG(lb), KARG(M), KARG(N), KARG(K),
                         KARG(G), KARG(MR), KARG(y), KARG(yo), KARG(G0), KARG(Pi), KARG(hb), KARG(bias), KARG(bo2),
                         KARG(hr), KARG(res), KARG(ro), KARG(rl)};
    size_t g[2] = {(n + 31) / 32, groups}, l[2] = {1, 1};
    return stfpm_enqueue_flop(ctx, "gemm", "gemm_cpu_nn_ep", 2, g, l, KARGS(args), 2.0 * (double)m * (double)n * (double)k);
}
