/* Internal runtime helpers shared by the host op wrappers. */
#ifndef STFPM_RUNTIME_H
#define STFPM_RUNTIME_H

#include "stfpm/stfpm.h"

/* Check an OpenCL return code; on failure record "<call>: <CL_ERROR_NAME> (<code>)". */
stfpm_status stfpm_cl_check(cl_int err, const char *call);
#define STFPM_CL(call) STFPM_TRY(stfpm_cl_check((call), #call))

/* Kernel arguments for stfpm_enqueue. */
typedef struct stfpm_karg { size_t size; const void *ptr; } stfpm_karg;
#define KARG(x) ((stfpm_karg){sizeof(x), &(x)})
#define KLOCAL(bytes) ((stfpm_karg){(bytes), NULL})

/* Look up kernel `name` in program `program` (the file cl/<program>.cl), building the
 * program on first use (from the binary cache when possible). The returned kernel is owned
 * by the context. */
stfpm_status stfpm_get_kernel(stfpm_ctx *ctx, const char *program, const char *name, cl_kernel *out);

/* Set the arguments and enqueue. gws are rounded up to a multiple of lws when lws != NULL;
 * kernels must bounds-check. With profiling on, the time is added to the kernel's entry. */
stfpm_status stfpm_enqueue(stfpm_ctx *ctx, const char *program, const char *name, int dims,
                           const size_t *gws, const size_t *lws, int nargs, const stfpm_karg *args);
static inline stfpm_status stfpm_enqueue1d(stfpm_ctx *ctx, const char *program, const char *name,
                                           size_t n, int nargs, const stfpm_karg *args) {
    size_t g = n ? n : 1;
    return stfpm_enqueue(ctx, program, name, 1, &g, NULL, nargs, args);
}
/* Record an event's duration under `name` when profiling is on (used for CLBlast calls). */
void stfpm_profile_event(stfpm_ctx *ctx, const char *name, cl_event ev);
int stfpm_profiling(const stfpm_ctx *ctx);

/* A growable device work buffer owned by the context, reused across calls (im2col etc).
 * slot selects one of a few independent scratch buffers. The contents are undefined. */
stfpm_status stfpm_scratch(stfpm_ctx *ctx, int slot, size_t bytes, cl_mem *out);
#define STFPM_SCRATCH_SLOTS 4
/* Scratch budget for chunked work: cpu_bytes on CPU devices, else gpu_bytes; overridden by the
 * environment variable env (when not NULL and set), else by STFPM_CONV_CHUNK_BYTES. */
size_t stfpm_chunk_budget(stfpm_ctx *ctx, size_t cpu_bytes, size_t gpu_bytes, const char *env);
/* Free a scratch slot now (waits for the queue): a smaller request can then fit. */
void stfpm_scratch_release(stfpm_ctx *ctx, int slot);

/* C = alpha * op(A) * op(B) + beta * C, row-major, through CLBlast. Offsets and leading
 * dimensions in floats. */
stfpm_status stfpm_gemm(stfpm_ctx *ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k,
                        float alpha, cl_mem a, size_t a_off, size_t lda,
                        cl_mem b, size_t b_off, size_t ldb, float beta,
                        cl_mem c, size_t c_off, size_t ldc);
/* Strided batched variant (a_stride may be 0 to reuse A for every batch). */
stfpm_status stfpm_gemm_batched(stfpm_ctx *ctx, int trans_a, int trans_b, size_t m, size_t n,
                                size_t k, float alpha, cl_mem a, size_t a_off, size_t lda,
                                size_t a_stride, cl_mem b, size_t b_off, size_t ldb,
                                size_t b_stride, float beta, cl_mem c, size_t c_off, size_t ldc,
                                size_t c_stride, size_t batch);

/* Apply tuned CLBlast kernel parameters for this device: STFPM_CLBLAST_PARAMS
 * ("Xgemm:MWG=64,...;GemmRoutine:..." or "default"), else the file `stfpm tune` stored in the
 * cache directory for this device + driver (include/stfpm/tune.h), else the built-in table. */
stfpm_status stfpm_clblast_apply_tuning(stfpm_ctx *ctx);
/* Override one CLBlast kernel's parameters (names/values arrays). */
stfpm_status stfpm_clblast_override(stfpm_ctx *ctx, const char *kernel, size_t count,
                                    const char **names, const size_t *values);

/* Source of cl/<name>.cl: from $STFPM_CL_DIR when set, else the embedded copy.
 * *text is malloc'd; caller frees. */
stfpm_status stfpm_kernel_source(const char *name, char **text, size_t *len);

#endif
