/* Context options: defaults, then the environment, then the caller (include/stfpm/stfpm.h).
 * The only place in the library that reads environment variables. */
#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>   /* environ */


/* Value of NAME in a NULL-terminated "NAME=VALUE" list (NULL when absent). */
static const char *env_lookup(const char *const *env, const char *name) {
    size_t n = strlen(name);
    for (const char *const *e = env; e && *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
    return NULL;
}

static stfpm_status parse_size(const char *name, const char *v, uint64_t *out) {
    char *end = NULL;
    unsigned long long x = strtoull(v, &end, 10);
    if (end == v || *end || x == 0 || v[0] == '-')
        return stfpm_set_error(STFPM_ERR_ARG, "%s=\"%s\": expected a positive number of bytes", name, v);
    *out = x;
    return STFPM_OK;
}

/* A switch variable counts as set when it is non-empty and not "0". */
static int env_true(const char *v) { return v && *v && strcmp(v, "0") != 0; }

stfpm_status stfpm_conv_algo_parse(const char *s, stfpm_conv_algo_choice *out) {
    static const struct { const char *name; stfpm_conv_algo_choice v; } k[] = {
        {"auto", STFPM_CONV_ALGO_AUTO}, {"im2col", STFPM_CONV_ALGO_IM2COL},
        {"winograd", STFPM_CONV_ALGO_WINOGRAD}, {"winograd2", STFPM_CONV_ALGO_WINOGRAD2}};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (strcmp(s, k[i].name) == 0) { *out = k[i].v; return STFPM_OK; }
    return stfpm_set_error(STFPM_ERR_ARG, "unknown convolution algorithm \"%s\" (auto, im2col, winograd, winograd2)", s);
}

stfpm_status stfpm_gemm_parse(const char *s, stfpm_gemm_choice *out) {
    if (strcmp(s, "auto") == 0) *out = STFPM_GEMM_AUTO;
    else if (strcmp(s, "clblast") == 0) *out = STFPM_GEMM_CLBLAST;
    else if (strcmp(s, "own") == 0) *out = STFPM_GEMM_OWN;
    else return stfpm_set_error(STFPM_ERR_ARG, "unknown GEMM choice \"%s\" (auto, clblast, own)", s);
    return STFPM_OK;
}

stfpm_status stfpm_kernels_parse(const char *s, stfpm_kernels *out) {
    if (strcmp(s, "auto") == 0) *out = STFPM_KERNELS_AUTO;
    else if (strcmp(s, "cpu") == 0) *out = STFPM_KERNELS_CPU;
    else if (strcmp(s, "gpu") == 0) *out = STFPM_KERNELS_GPU;
    else return stfpm_set_error(STFPM_ERR_ARG, "unknown kernel variant \"%s\" (auto, cpu, gpu)", s);
    return STFPM_OK;
}

const char *stfpm_kernels_name(stfpm_kernels k) {
    return k == STFPM_KERNELS_GPU ? "gpu" : k == STFPM_KERNELS_CPU ? "cpu" : "auto";
}

stfpm_kernels stfpm_kernels_for_device(stfpm_kernels k, cl_device_type type) {
    if (k != STFPM_KERNELS_AUTO) return k;
    return type & (CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_ACCELERATOR) ? STFPM_KERNELS_GPU : STFPM_KERNELS_CPU;
}

const char *stfpm_conv_algo_name(stfpm_conv_algo_choice a) {
    switch (a) {
    case STFPM_CONV_ALGO_IM2COL: return "im2col";
    case STFPM_CONV_ALGO_WINOGRAD: return "winograd";
    case STFPM_CONV_ALGO_WINOGRAD2: return "winograd2";
    default: return "auto";
    }
}

/* The resolved strings point into the environment block (valid until setenv changes that
 * name) or, for the derived cache directory, into a per-thread buffer (valid until the next
 * call on this thread); the context copies every string it keeps. */
stfpm_status stfpm_ctx_options_resolve_env(stfpm_ctx_options *o, const char *const *env) {
    const char *v;
    uint64_t x = 0;
    if (!o->device && (v = env_lookup(env, "STFPM_DEVICE")) && *v) o->device = v;
    if (!o->profile) o->profile = env_true(env_lookup(env, "STFPM_PROFILE")) ? STFPM_SWITCH_ON : STFPM_SWITCH_OFF;
    if (!o->cache_dir) {
        /* "" disables the cache: STFPM_CACHE_DIR= (set, empty) is honoured */
        static __thread char dir[1024];
        if ((v = env_lookup(env, "STFPM_CACHE_DIR"))) o->cache_dir = v;
        else if ((v = env_lookup(env, "XDG_CACHE_HOME")) && *v) {
            snprintf(dir, sizeof dir, "%s/stfpm", v);
            o->cache_dir = dir;
        } else if ((v = env_lookup(env, "HOME")) && *v) {
            snprintf(dir, sizeof dir, "%s/.cache/stfpm", v);
            o->cache_dir = dir;
        } else {
            o->cache_dir = "";
        }
    }
    if (!o->cl_dir && (v = env_lookup(env, "STFPM_CL_DIR")) && *v) o->cl_dir = v;
    if (!o->clblast_params && (v = env_lookup(env, "STFPM_CLBLAST_PARAMS")) && *v) o->clblast_params = v;
    if (!o->device_mem_limit && (v = env_lookup(env, "STFPM_DEVICE_MEM_LIMIT")) && *v)
        STFPM_TRY(parse_size("STFPM_DEVICE_MEM_LIMIT", v, &o->device_mem_limit));

    if (!o->kernels && (v = env_lookup(env, "STFPM_KERNELS")) && *v)
        STFPM_TRY(stfpm_wrap_error(stfpm_kernels_parse(v, &o->kernels), "STFPM_KERNELS"));
    if (!o->max_work_group && (v = env_lookup(env, "STFPM_MAX_WORK_GROUP")) && *v) {
        STFPM_TRY(parse_size("STFPM_MAX_WORK_GROUP", v, &x));
        o->max_work_group = (size_t)x;
    }
    if (!o->sub_buffer_align && (v = env_lookup(env, "STFPM_SUB_BUFFER_ALIGN")) && *v) {
        STFPM_TRY(parse_size("STFPM_SUB_BUFFER_ALIGN", v, &x));
        if (x & (x - 1) || x > 65536)
            return stfpm_set_error(STFPM_ERR_ARG, "STFPM_SUB_BUFFER_ALIGN=\"%s\": expected a power of two <= 65536", v);
        o->sub_buffer_align = (unsigned)x;
    }
    if (!o->conv_algo && (v = env_lookup(env, "STFPM_CONV_ALGO")) && *v)
        STFPM_TRY(stfpm_wrap_error(stfpm_conv_algo_parse(v, &o->conv_algo), "STFPM_CONV_ALGO"));
    if (!o->fold_bn && env_true(env_lookup(env, "STFPM_NO_FOLD"))) o->fold_bn = STFPM_SWITCH_OFF;
    if (!o->fused_map && (v = env_lookup(env, "STFPM_FUSED_MAP")) && strcmp(v, "0") == 0)
        o->fused_map = STFPM_SWITCH_OFF;
    if (!o->conv_chunk_bytes && (v = env_lookup(env, "STFPM_CONV_CHUNK_BYTES")) && *v) {
        STFPM_TRY(parse_size("STFPM_CONV_CHUNK_BYTES", v, &x));
        o->conv_chunk_bytes = (size_t)x;
    }
    if (!o->wino_chunk_bytes && (v = env_lookup(env, "STFPM_WINO_CHUNK_BYTES")) && *v) {
        STFPM_TRY(parse_size("STFPM_WINO_CHUNK_BYTES", v, &x));
        o->wino_chunk_bytes = (size_t)x;
    }
    if (!o->wino_min_tiles && (v = env_lookup(env, "STFPM_WINO_MIN_TILES")) && *v) {
        STFPM_TRY(parse_size("STFPM_WINO_MIN_TILES", v, &x));
        o->wino_min_tiles = (long)x;
    }
    if (!o->gemm && (v = env_lookup(env, "STFPM_GEMM")) && *v)
        STFPM_TRY(stfpm_wrap_error(stfpm_gemm_parse(v, &o->gemm), "STFPM_GEMM"));
    stfpm_ctx_options_fill_defaults(o);
    return STFPM_OK;
}

void stfpm_ctx_options_fill_defaults(stfpm_ctx_options *o) {
    if (!o->device) o->device = "";
    if (!o->profile) o->profile = STFPM_SWITCH_OFF;
    if (!o->cache_dir) o->cache_dir = "";
    if (!o->cl_dir) o->cl_dir = "";
    if (!o->clblast_params) o->clblast_params = "";
    if (!o->fold_bn) o->fold_bn = STFPM_SWITCH_ON;
    if (!o->fused_map) o->fused_map = STFPM_SWITCH_ON;
    if (!o->wino_min_tiles) o->wino_min_tiles = STFPM_WINO_MIN_TILES_DEFAULT;
    /* conv_chunk_bytes / wino_chunk_bytes stay 0 = by device type (stfpm_chunk_budget) */
}

stfpm_status stfpm_ctx_options_resolve(stfpm_ctx_options *o) {
    return stfpm_ctx_options_resolve_env(o, (const char *const *)environ);
}

/* ------------------------------------------------------------------------------------------ */
/* teacher weights outside the context: STFPM_TEACHER and torch's hub cache */

const char *stfpm_env_teacher(void) {
    const char *v = env_lookup((const char *const *)environ, "STFPM_TEACHER");
    return v && *v ? v : NULL;
}

void stfpm_env_torch_checkpoints(char *out, size_t n) {
    const char *th = env_lookup((const char *const *)environ, "TORCH_HOME");
    const char *home = env_lookup((const char *const *)environ, "HOME");
    if (th && *th) snprintf(out, n, "%s/hub/checkpoints", th);
    else snprintf(out, n, "%s/.cache/torch/hub/checkpoints", home ? home : "");
}
