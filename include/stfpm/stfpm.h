/* stfpm-cl public API: runtime, tensors, status codes.
 * The library never prints to stdout and never exits: every call returns a status and,
 * on failure, stfpm_last_error() holds a message naming the cause.
 *
 * How to use the library: create a context on an OpenCL device with stfpm_ctx_create (NULL
 * options: what the environment says, STFPM_DEVICE and the others below, else the first GPU, else
 * the first device), hand it to the pipeline (stfpm/pipeline.h: stfpm_train, stfpm_test,
 * stfpm_predict) or to the layers below it (stfpm/model.h, resnet.h, ops.h), check the status of
 * every call and show stfpm_last_error() (this thread's last message) on failure, and free the
 * context last. Call one context's functions from one thread at a time. Compile and link with
 * `pkg-config --cflags --libs stfpm`, or find_package(stfpm) and the target stfpm::stfpm in
 * CMake; stfpm/version.h has the version. Scoring one image and writing its heatmap
 * (examples/score_image.c is the whole program):
 *
 *     #include <stfpm/pipeline.h>
 *
 *     static stfpm_status show(void *user, const stfpm_prediction *p) {
 *         printf("%s %g %s\n", p->path, p->score,
 *                p->verdict == STFPM_VERDICT_ANOMALOUS ? "anomalous" : "normal");
 *         return STFPM_OK;                 // anything else stops stfpm_predict
 *     }
 *
 *     stfpm_ctx *ctx;
 *     if (stfpm_ctx_create(&ctx, NULL) != STFPM_OK) { puts(stfpm_last_error()); return 1; }
 *     const char *paths[] = {"part.png"};
 *     stfpm_predict_options o = {.model = "runs/bottle", .paths = paths, .n_paths = 1,
 *                                .maps_dir = "maps"};
 *     if (stfpm_predict(ctx, &o, show, NULL, NULL) != STFPM_OK) puts(stfpm_last_error());
 *     stfpm_ctx_free(ctx);
 */
#ifndef STFPM_STFPM_H
#define STFPM_STFPM_H

#include <stddef.h>
#include <stdint.h>
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum stfpm_status {
    STFPM_OK = 0,
    STFPM_ERR_ARG,        /* invalid argument (shape mismatch, value out of range) */
    STFPM_ERR_CL,         /* an OpenCL call failed */
    STFPM_ERR_NO_DEVICE,  /* no OpenCL platform / no device matching the selector */
    STFPM_ERR_BUILD,      /* kernel compilation failed (message holds the build log) */
    STFPM_ERR_OOM,        /* out of device or host memory */
    STFPM_ERR_IO,         /* file missing, unreadable, unwritable, disk full */
    STFPM_ERR_FORMAT,     /* corrupt or unsupported file content */
    STFPM_ERR_NAN,        /* a NaN or Inf appeared (loss, weights) */
    STFPM_ERR_BLAS,       /* CLBlast returned an error */
    STFPM_ERR_INTERNAL
} stfpm_status;

/* Message of the last failure on this thread (never NULL). */
const char *stfpm_last_error(void);
const char *stfpm_status_name(stfpm_status s);
/* Record an error (printf-style); returns s so callers can `return stfpm_set_error(...)`. */
stfpm_status stfpm_set_error(stfpm_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prefix the current message with more context ("loading x.safetensors: ..."); a no-op that
 * returns STFPM_OK when s is STFPM_OK. */
stfpm_status stfpm_wrap_error(stfpm_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Name of an OpenCL error code, e.g. "CL_OUT_OF_RESOURCES". */
const char *stfpm_cl_error_name(cl_int err);

#define STFPM_TRY(expr) do { stfpm_status _s = (expr); if (_s != STFPM_OK) return _s; } while (0)

/* ------------------------------------------------------------------------------------------ */
/* Devices and context                                                                         */

typedef struct stfpm_device_info {
    int platform_index, device_index, global_index;
    char platform_name[128];
    char device_name[128];
    char driver_version[128];
    char device_version[128];
    cl_device_type type;
    uint64_t global_mem, max_alloc;
    unsigned compute_units;
    int has_fp16;
} stfpm_device_info;

/* Fills up to max entries; *count receives the number of devices found. */
stfpm_status stfpm_list_devices(stfpm_device_info *out, int max, int *count);

typedef struct stfpm_ctx stfpm_ctx;

/* Settings of a context. Every engine switch and size is read from here, once: the environment
 * is consulted only when the context is created (host/options.c), never by the ops.
 *
 * stfpm_ctx_create resolves each field in this order: the caller's value when it is set (not
 * 0 / NULL), else the environment variable named beside it, else the default. The resolved
 * set is what stfpm_ctx_get_options returns: every field then holds a concrete value. */
typedef enum stfpm_switch {
    STFPM_SWITCH_UNSET = 0,   /* environment, else the default */
    STFPM_SWITCH_ON,
    STFPM_SWITCH_OFF
} stfpm_switch;

/* Convolution algorithm (host/conv_algo.c decides per convolution under AUTO). */
typedef enum stfpm_conv_algo_choice {
    STFPM_CONV_ALGO_AUTO = 0,     /* by shape and device */
    STFPM_CONV_ALGO_IM2COL,       /* im2col + GEMM everywhere */
    STFPM_CONV_ALGO_WINOGRAD,     /* Winograd F(4x4, 3x3) for every 3x3 stride-1 convolution */
    STFPM_CONV_ALGO_WINOGRAD2     /* Winograd F(2x2, 3x3) for every 3x3 stride-1 forward */
} stfpm_conv_algo_choice;

/* Who runs the GEMMs (host/gemm.c). */
typedef enum stfpm_gemm_choice {
    STFPM_GEMM_AUTO = 0,      /* the CPU kernel variant: our own kernels; the GPU variant: CLBlast */
    STFPM_GEMM_CLBLAST,       /* CLBlast everywhere */
    STFPM_GEMM_OWN            /* our CPU-shaped kernels (cl/gemm.cl gemm_cpu_*) everywhere */
} stfpm_gemm_choice;

/* Shape of the OpenCL kernels (the cl/ sources are built with -DSTFPM_GPU=1 for the GPU variant). */
typedef enum stfpm_kernels {
    STFPM_KERNELS_AUTO = 0,   /* by CL_DEVICE_TYPE: GPU / accelerator -> GPU, else CPU */
    STFPM_KERNELS_CPU,        /* row-form kernels tuned for CPU runtimes (PoCL) */
    STFPM_KERNELS_GPU         /* one output element / tile per work-item, coalesced, local-memory
                                 tree reductions, explicit work-group sizes */
} stfpm_kernels;

typedef struct stfpm_ctx_options {
    /* fixed when the context is created */
    const char *device;       /* STFPM_DEVICE; default: the first GPU, else the first device. A
                                 number = global device index; else a case-insensitive substring
                                 of "platform device" */
    stfpm_switch profile;     /* STFPM_PROFILE=1: per-kernel event profiling; default off */
    const char *cache_dir;    /* program binary / tuning cache: STFPM_CACHE_DIR, else
                                 $XDG_CACHE_HOME/stfpm, else ~/.cache/stfpm; "" disables it */
    const char *cl_dir;       /* STFPM_CL_DIR: read cl/<name>.cl from this directory instead of
                                 the copies built into the library; default none */
    const char *clblast_params; /* STFPM_CLBLAST_PARAMS: "default" (CLBlast's own parameters) or a
                                 spec (include/stfpm/tune.h); default: tuned file, built-in table */
    uint64_t device_mem_limit;/* STFPM_DEVICE_MEM_LIMIT (bytes): treat the device as having at most
                                 this much memory (tests of out-of-memory paths); default none */
    stfpm_kernels kernels;    /* STFPM_KERNELS=auto|cpu|gpu; resolved to CPU or GPU */
    size_t max_work_group;    /* STFPM_MAX_WORK_GROUP: cap on the work-group sizes the library
                                 chooses (tests emulate small GPUs with 64 or 256); default: the
                                 device's and kernel's limits */
    unsigned sub_buffer_align;/* STFPM_SUB_BUFFER_ALIGN (bytes): align sub-buffers to at least this
                                 (tests emulate NVIDIA's 512 on PoCL); default: the device's */
    /* engine switches; stfpm_ctx_set_options may change these on a live context */
    stfpm_conv_algo_choice conv_algo; /* STFPM_CONV_ALGO=auto|im2col|winograd|winograd2 */
    stfpm_switch fold_bn;     /* STFPM_NO_FOLD=1 turns it off: eval-mode networks fold batch norm
                                 into their convolutions; off runs conv, BN, add, ReLU as
                                 separate ops (the reference path); default on */
    stfpm_switch fused_map;   /* STFPM_FUSED_MAP=0 turns it off: the anomaly map in one kernel;
                                 default on */
    size_t conv_chunk_bytes;  /* STFPM_CONV_CHUNK_BYTES: im2col scratch per chunk (and Winograd's
                                 when wino_chunk_bytes is unset); default by device type */
    size_t wino_chunk_bytes;  /* STFPM_WINO_CHUNK_BYTES: Winograd scratch per chunk */
    long wino_min_tiles;      /* STFPM_WINO_MIN_TILES: fewest output tiles over the batch for
                                 Winograd under AUTO; default 48 */
    stfpm_gemm_choice gemm;   /* STFPM_GEMM=auto|clblast|own */
} stfpm_ctx_options;

/* Defaults + environment for every unset field of *o (call on a zeroed struct for the plain
 * environment view). STFPM_ERR_ARG naming the variable when a value cannot be parsed. */
stfpm_status stfpm_ctx_options_resolve(stfpm_ctx_options *o);
/* "auto", "cpu", "gpu"; and the variant AUTO resolves to on a device of this type. */
const char *stfpm_kernels_name(stfpm_kernels k);
stfpm_kernels stfpm_kernels_for_device(stfpm_kernels k, cl_device_type type);

stfpm_status stfpm_ctx_create(stfpm_ctx **out, const stfpm_ctx_options *opt);
void stfpm_ctx_free(stfpm_ctx *ctx);
const stfpm_device_info *stfpm_ctx_device(const stfpm_ctx *ctx);
/* The resolved options of ctx (strings owned by ctx). */
const stfpm_ctx_options *stfpm_ctx_get_options(const stfpm_ctx *ctx);
/* Change the engine switches of a live context (conv_algo ... gemm) to those of *o,
 * e.g. a copy of stfpm_ctx_get_options with one field changed; waits for the queue. The fields
 * fixed at creation must be unset or equal (STFPM_ERR_ARG otherwise). Unset switches and
 * sizes take their defaults (not the environment). */
stfpm_status stfpm_ctx_set_options(stfpm_ctx *ctx, const stfpm_ctx_options *o);
/* Directory of the kernel / tuning cache of this context ("" when disabled). */
const char *stfpm_ctx_cache_dir(const stfpm_ctx *ctx);
cl_context stfpm_ctx_cl_context(stfpm_ctx *ctx);
cl_command_queue stfpm_ctx_queue(stfpm_ctx *ctx);
cl_device_id stfpm_ctx_cl_device(stfpm_ctx *ctx);
stfpm_status stfpm_finish(stfpm_ctx *ctx);
/* Bytes currently allocated through stfpm_tensor_alloc / stfpm_buffer_alloc, and the peak. */
uint64_t stfpm_ctx_mem_in_use(const stfpm_ctx *ctx);
uint64_t stfpm_ctx_mem_peak(const stfpm_ctx *ctx);

/* Statistics of the kernel program cache (for tests and diagnostics). */
typedef struct stfpm_cache_stats { int programs_built, cache_hits, cache_writes; } stfpm_cache_stats;
stfpm_cache_stats stfpm_ctx_cache_stats(const stfpm_ctx *ctx);

/* Per-kernel profile (when profiling is enabled): total ms and calls per kernel name, and the
 * floating-point operations counted for it (GEMMs: 2 m n k per call; 0 where not counted). */
typedef struct stfpm_profile_entry { char name[64]; double ms; long calls; double flop; } stfpm_profile_entry;
int stfpm_ctx_profile(stfpm_ctx *ctx, stfpm_profile_entry *out, int max);
void stfpm_ctx_profile_reset(stfpm_ctx *ctx);

/* ------------------------------------------------------------------------------------------ */
/* Tensors: float32, NCHW, on the device. A view shares its parent's buffer at an offset.     */

typedef struct stfpm_tensor {
    int n, c, h, w;
    cl_mem buf;
    size_t off;      /* offset in floats into buf */
    int owner;       /* 1: buf is released by stfpm_tensor_free */
} stfpm_tensor;

stfpm_status stfpm_tensor_alloc(stfpm_ctx *ctx, stfpm_tensor *t, int n, int c, int h, int w);
void stfpm_tensor_free(stfpm_ctx *ctx, stfpm_tensor *t);
/* Samples [n0, n0 + count) of t, sharing t's buffer. */
stfpm_tensor stfpm_tensor_view(const stfpm_tensor *t, int n0, int count);
static inline size_t stfpm_tensor_numel(const stfpm_tensor *t) {
    return (size_t)t->n * t->c * t->h * t->w;
}
static inline int stfpm_tensor_same_shape(const stfpm_tensor *a, const stfpm_tensor *b) {
    return a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w;
}
stfpm_status stfpm_tensor_write(stfpm_ctx *ctx, stfpm_tensor *t, const float *host);
/* Like stfpm_tensor_write, but returns before the transfer is done: host is copied into one of
 * two pinned (CL_MEM_ALLOC_HOST_PTR) staging buffers and sent from there without blocking, so
 * the transfer overlaps with the work already queued; host may be reused at once. On CPU
 * devices with the CPU kernel variant (device memory is host memory) it is stfpm_tensor_write. */
stfpm_status stfpm_tensor_upload(stfpm_ctx *ctx, stfpm_tensor *t, const float *host);
stfpm_status stfpm_tensor_read(stfpm_ctx *ctx, const stfpm_tensor *t, float *host);
stfpm_status stfpm_tensor_fill(stfpm_ctx *ctx, stfpm_tensor *t, float value);
stfpm_status stfpm_tensor_copy(stfpm_ctx *ctx, const stfpm_tensor *src, stfpm_tensor *dst);

/* Raw device buffer with the same accounting and OOM reporting as tensors. */
stfpm_status stfpm_buffer_alloc(stfpm_ctx *ctx, size_t bytes, cl_mem *out);
void stfpm_buffer_free(stfpm_ctx *ctx, cl_mem buf, size_t bytes);

#ifdef __cplusplus
}
#endif
#endif
