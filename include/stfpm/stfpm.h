/* stfpm-cl public API: runtime, tensors, status codes.
 * The library never prints to stdout and never exits: every call returns a status and,
 * on failure, stfpm_last_error() holds a message naming the cause. */
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
/* Prefix the current message with more context ("loading x.safetensors: ..."). */
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

typedef struct stfpm_ctx_options {
    const char *device;   /* selector: NULL/"" = STFPM_DEVICE or default (first GPU, else first
                             device); a number = global device index; else a case-insensitive
                             substring of "platform device" */
    int profile;          /* enable per-kernel event profiling (also STFPM_PROFILE=1) */
    const char *cache_dir;/* program binary cache; NULL = STFPM_CACHE_DIR, XDG_CACHE_HOME/stfpm,
                             ~/.cache/stfpm; "" disables the cache */
} stfpm_ctx_options;

stfpm_status stfpm_ctx_create(stfpm_ctx **out, const stfpm_ctx_options *opt);
void stfpm_ctx_free(stfpm_ctx *ctx);
const stfpm_device_info *stfpm_ctx_device(const stfpm_ctx *ctx);
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

/* Per-kernel profile (when profiling is enabled): total ms and calls per kernel name. */
typedef struct stfpm_profile_entry { char name[64]; double ms; long calls; } stfpm_profile_entry;
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
/* Reinterpret with another shape of the same element count (shares the buffer). */
stfpm_tensor stfpm_tensor_reshape(const stfpm_tensor *t, int n, int c, int h, int w);
static inline size_t stfpm_tensor_numel(const stfpm_tensor *t) {
    return (size_t)t->n * t->c * t->h * t->w;
}
static inline int stfpm_tensor_same_shape(const stfpm_tensor *a, const stfpm_tensor *b) {
    return a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w;
}
stfpm_status stfpm_tensor_write(stfpm_ctx *ctx, stfpm_tensor *t, const float *host);
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
