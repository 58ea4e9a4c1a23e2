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
/* The count and the array of a stfpm_karg array, for the (nargs, args) parameters below. */
#define KARGS(a) (int)(sizeof(a) / sizeof((a)[0])), (a)

/* Look up kernel `name` in program `program` (the file cl/<program>.cl), building the
 * program on first use (from the binary cache when possible). The returned kernel is owned
 * by the context. */
stfpm_status stfpm_get_kernel(stfpm_ctx *ctx, const char *program, const char *name, cl_kernel *out);

/* Set the arguments and enqueue. gws are rounded up to a multiple of the local size; kernels
 * must bounds-check. lws NULL: the GPU variant picks a local size (powers of two, at most 256
 * and the kernel's / device's / max_work_group limits, dimension 0 at least the kernel's
 * preferred multiple); the CPU variant leaves it to the runtime. A given lws over the limits
 * is refused (STFPM_ERR_CL). With profiling on, the time is added to the kernel's entry. */
stfpm_status stfpm_enqueue(stfpm_ctx *ctx, const char *program, const char *name, int dims,
                           const size_t *gws, const size_t *lws, int nargs, const stfpm_karg *args);
/* stfpm_enqueue counting flop floating-point operations for the launch in the profile. */
stfpm_status stfpm_enqueue_flop(stfpm_ctx *ctx, const char *program, const char *name, int dims,
                                const size_t *gws, const size_t *lws, int nargs, const stfpm_karg *args,
                                double flop);
static inline stfpm_status stfpm_enqueue1d(stfpm_ctx *ctx, const char *program, const char *name,
                                           size_t n, int nargs, const stfpm_karg *args) {
    size_t g = n ? n : 1;
    return stfpm_enqueue(ctx, program, name, 1, &g, NULL, nargs, args);
}
/* 1 when ctx runs the GPU variant of the kernels (the kernels option, resolved). */
int stfpm_gpu_kernels(const stfpm_ctx *ctx);
/* Largest work-group size a launch of this kernel may use (kernel, device, max_work_group). */
size_t stfpm_kernel_wg_limit(stfpm_ctx *ctx, const char *program, const char *name);
/* Alignment (bytes) of sub-buffer origins: the device's, or more with the sub_buffer_align option. */
size_t stfpm_sub_buffer_align(const stfpm_ctx *ctx);
/* Call after each enqueued kernel: bounds the commands in flight on CPU devices (runtime.c). */
void stfpm_queue_pace(stfpm_ctx *ctx);
/* 1 for a simulator device (Oclgrind): never chosen by default. */
int stfpm_device_is_simulator(const stfpm_device_info *d);
/* Record an event's duration under `name` when profiling is on (used for CLBlast calls). */
void stfpm_profile_event(stfpm_ctx *ctx, const char *name, cl_event ev);
/* The same, counting flop floating-point operations for the command. */
void stfpm_profile_event_flop(stfpm_ctx *ctx, const char *name, cl_event ev, double flop);
int stfpm_profiling(const stfpm_ctx *ctx);

/* Growable device work buffers owned by the context, reused across calls. Ops use them one
 * after the other on the in-order queue, never two ops at once, so a slot's contents are
 * undefined at the start of every op. */
typedef enum stfpm_scratch_slot {
    STFPM_SCRATCH_COLS = 0,   /* the GEMMs' expanded input: im2col columns, Winograd V / Vt */
    STFPM_SCRATCH_ROWS,       /* the GEMMs' other big matrix: conv output / dy rows, Winograd M / Z */
    STFPM_SCRATCH_AUX,        /* small extras: transformed weights (Winograd U, S), the padded
                                 weight gradient, max-pool argmax indices */
    STFPM_SCRATCH_PARTIALS,   /* partial sums of reductions (batch-norm statistics, sums) */
    STFPM_SCRATCH_SLOTS
} stfpm_scratch_slot;
stfpm_status stfpm_scratch(stfpm_ctx *ctx, stfpm_scratch_slot slot, size_t bytes, cl_mem *out);
/* Scratch budget for chunked work: option_bytes when set (an option of the context), else
 * cpu_bytes on CPU devices, else gpu_bytes. */
size_t stfpm_chunk_budget(stfpm_ctx *ctx, size_t cpu_bytes, size_t gpu_bytes, size_t option_bytes);
/* Free a scratch slot now (waits for the queue): a smaller request can then fit. */
void stfpm_scratch_release(stfpm_ctx *ctx, stfpm_scratch_slot slot);

/* Source of cl/<name>.cl: from directory dir when not NULL / "" (the cl_dir option), else the
 * copy built into the library. *text is malloc'd; caller frees. */
stfpm_status stfpm_kernel_source(const char *dir, const char *name, char **text, size_t *len);

/* The context without CLBlast (stfpm_ctx_create = this + the CLBlast parameters of the device,
 * host/context.c); opt must be resolved (stfpm_ctx_options_resolve). */
stfpm_status stfpm_runtime_create(stfpm_ctx **out, const stfpm_ctx_options *opt);

#endif
