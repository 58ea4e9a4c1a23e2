/* OpenCL runtime: device selection, context, program build with an on-disk binary cache,
 * kernel lookup and launch, profiling, scratch buffers, memory accounting. */
#include "runtime.h"
#include "fsutil.h"
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_PLATFORMS 16
#define MAX_DEVICES 64
#define MAX_PROGRAMS 32
#define MAX_KERNELS 256
#define MAX_PROFILE 256

typedef struct { char name[64]; cl_program prog; } program_entry;
typedef struct {
    char prog[64], name[64];
    cl_kernel k;
    size_t wg_max, wg_multiple;   /* CL_KERNEL_WORK_GROUP_SIZE, ..._PREFERRED_WORK_GROUP_SIZE_MULTIPLE */
} kernel_entry;

struct stfpm_ctx {
    stfpm_device_info info;
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    int profile;
    stfpm_ctx_options opt;        /* resolved; its strings point to the copies below */
    size_t wg_cap;                /* largest work-group size (device limit, max_work_group option) */
    size_t sub_align;             /* sub-buffer alignment in bytes (device, sub_buffer_align option) */
    /* pinned (CL_MEM_ALLOC_HOST_PTR) staging buffers for non-blocking uploads, used in turn */
    struct { cl_mem buf; void *ptr; size_t bytes; cl_event ev; } stage[2];
    int next_stage;
    char device_sel[256], cache_dir[1024], cl_dir[1024], clblast_params[2048];
    program_entry programs[MAX_PROGRAMS];
    int n_programs;
    kernel_entry kernels[MAX_KERNELS];
    int n_kernels;
    stfpm_profile_entry prof[MAX_PROFILE];
    int n_prof;
    cl_mem scratch[STFPM_SCRATCH_SLOTS];
    size_t scratch_size[STFPM_SCRATCH_SLOTS];
    uint64_t mem_in_use, mem_peak;
    stfpm_cache_stats cache;
    /* profiling: events collected without waiting, read in batches */
    cl_event pending_ev[1024];
    char pending_name[1024][64];
    double pending_flop[1024];
    int n_pending;
    /* stfpm_queue_pace: commands since the last marker, and that marker */
    int pace_count;
    cl_event pace_ev;
};

static void profile_harvest(stfpm_ctx *ctx);

/* ------------------------------------------------------------------------------------------ */
/* devices */

static void fill_info(cl_platform_id p, cl_device_id d, stfpm_device_info *info) {
    memset(info, 0, sizeof *info);
    clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof info->platform_name - 1, info->platform_name, NULL);
    clGetDeviceInfo(d, CL_DEVICE_NAME, sizeof info->device_name - 1, info->device_name, NULL);
    clGetDeviceInfo(d, CL_DRIVER_VERSION, sizeof info->driver_version - 1, info->driver_version, NULL);
    clGetDeviceInfo(d, CL_DEVICE_VERSION, sizeof info->device_version - 1, info->device_version, NULL);
    clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof info->type, &info->type, NULL);
    cl_ulong gm = 0, ma = 0;
    cl_uint cu = 0;
    clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof gm, &gm, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof ma, &ma, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
    info->global_mem = gm;
    info->max_alloc = ma;
    info->compute_units = cu;
    char ext[4096] = {0};
    clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, sizeof ext - 1, ext, NULL);
    info->has_fp16 = strstr(ext, "cl_khr_fp16") != NULL;
}

typedef struct { cl_platform_id p; cl_device_id d; stfpm_device_info info; } dev_rec;

static stfpm_status enumerate(dev_rec *out, int max, int *count) {
    cl_platform_id plats[MAX_PLATFORMS];
    cl_uint np = 0;
    cl_int e = clGetPlatformIDs(MAX_PLATFORMS, plats, &np);
    *count = 0;
    if (e == -1001 || (e == CL_SUCCESS && np == 0))
        return stfpm_set_error(STFPM_ERR_NO_DEVICE,
                               "no OpenCL platform found: install an OpenCL driver (for the CPU: "
                               "apt-get install pocl-opencl-icd; for GPUs: the vendor's OpenCL ICD)");
    STFPM_TRY(stfpm_cl_check(e, "clGetPlatformIDs"));
    if (np > MAX_PLATFORMS) np = MAX_PLATFORMS;
    int n = 0;
    for (cl_uint i = 0; i < np; i++) {
        cl_device_id devs[MAX_DEVICES];
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[i], CL_DEVICE_TYPE_ALL, MAX_DEVICES, devs, &nd) != CL_SUCCESS) continue;
        if (nd > MAX_DEVICES) nd = MAX_DEVICES;
        for (cl_uint j = 0; j < nd; j++) {
            if (n < max) {
                out[n].p = plats[i];
                out[n].d = devs[j];
                fill_info(plats[i], devs[j], &out[n].info);
                out[n].info.platform_index = (int)i;
                out[n].info.device_index = (int)j;
                out[n].info.global_index = n;
            }
            n++;
        }
    }
    *count = n < max ? n : max;
    if (n == 0)
        return stfpm_set_error(STFPM_ERR_NO_DEVICE, "OpenCL platforms exist but expose no device");
    return STFPM_OK;
}

stfpm_status stfpm_list_devices(stfpm_device_info *out, int max, int *count) {
    dev_rec recs[MAX_DEVICES];
    int n = 0;
    stfpm_status s = enumerate(recs, MAX_DEVICES, &n);
    *count = n;
    if (s != STFPM_OK) return s;
    for (int i = 0; i < n && i < max; i++) out[i] = recs[i].info;
    return STFPM_OK;
}

int stfpm_device_is_simulator(const stfpm_device_info *d) {
    return strstr(d->platform_name, "Oclgrind") != NULL || strstr(d->device_name, "Oclgrind") != NULL;
}


/* ------------------------------------------------------------------------------------------ */
/* context */

static void copy_str(char *dst, size_t n, const char *src) { snprintf(dst, n, "%s", src ? src : ""); }

stfpm_status stfpm_runtime_create(stfpm_ctx **out, const stfpm_ctx_options *opt) {
    *out = NULL;
    dev_rec recs[MAX_DEVICES];
    int n = 0;
    STFPM_TRY(enumerate(recs, MAX_DEVICES, &n));
    const char *sel = opt->device;
    int pick = -1;
    if (sel && *sel) {
        char *end = NULL;
        long idx = strtol(sel, &end, 10);
        if (end && *end == 0 && end != sel) {
            if (idx < 0 || idx >= n)
                return stfpm_set_error(STFPM_ERR_NO_DEVICE,
                                       "device index %ld out of range: %d OpenCL device(s) found "
                                       "(run `stfpm devices` to list them)", idx, n);
            pick = (int)idx;
        } else {
            for (int i = 0; i < n && pick < 0; i++) {
                char both[300];
                snprintf(both, sizeof both, "%s %s", recs[i].info.platform_name, recs[i].info.device_name);
                if (stfpm_name_contains(both, sel)) pick = i;
            }
            if (pick < 0)
                return stfpm_set_error(STFPM_ERR_NO_DEVICE,
                                       "no OpenCL device matches \"%s\" (%d device(s) found; run "
                                       "`stfpm devices` to list them)", sel, n);
        }
    } else {
        /* the first GPU, else the first device; never a simulator (Oclgrind reports itself as a
         * GPU) unless it is the only device or asked for by name */
        for (int i = 0; i < n && pick < 0; i++)
            if ((recs[i].info.type & CL_DEVICE_TYPE_GPU) && !stfpm_device_is_simulator(&recs[i].info)) pick = i;
        for (int i = 0; i < n && pick < 0; i++)
            if (!stfpm_device_is_simulator(&recs[i].info)) pick = i;
        if (pick < 0) pick = 0;
    }
    stfpm_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return stfpm_set_error(STFPM_ERR_OOM, "out of host memory creating the context");
    ctx->info = recs[pick].info;
    /* device_mem_limit: treat the device as having at most that much memory (tests of the
     * out-of-device-memory paths; also a way to leave room for other programs) */
    uint64_t ml = opt->device_mem_limit;
    if (ml) {
        if (ml < ctx->info.global_mem) ctx->info.global_mem = ml;
        if (ml < ctx->info.max_alloc) ctx->info.max_alloc = ml;
    }
    ctx->platform = recs[pick].p;
    ctx->device = recs[pick].d;
    ctx->opt = *opt;
    copy_str(ctx->device_sel, sizeof ctx->device_sel, opt->device);
    copy_str(ctx->cache_dir, sizeof ctx->cache_dir, opt->cache_dir);
    copy_str(ctx->cl_dir, sizeof ctx->cl_dir, opt->cl_dir);
    copy_str(ctx->clblast_params, sizeof ctx->clblast_params, opt->clblast_params);
    ctx->opt.device = ctx->device_sel;
    ctx->opt.cache_dir = ctx->cache_dir;
    ctx->opt.cl_dir = ctx->cl_dir;
    ctx->opt.clblast_params = ctx->clblast_params;
    ctx->profile = opt->profile == STFPM_SWITCH_ON;
    ctx->opt.kernels = stfpm_kernels_for_device(opt->kernels, ctx->info.type);
    size_t dev_wg = 0;
    cl_uint align_bits = 0;
    clGetDeviceInfo(ctx->device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof dev_wg, &dev_wg, NULL);
    clGetDeviceInfo(ctx->device, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof align_bits, &align_bits, NULL);
    ctx->wg_cap = dev_wg ? dev_wg : 256;
    if (opt->max_work_group && opt->max_work_group < ctx->wg_cap) ctx->wg_cap = opt->max_work_group;
    ctx->sub_align = align_bits >= 32 * 8 ? align_bits / 8 : 128;
    if (opt->sub_buffer_align > ctx->sub_align) ctx->sub_align = opt->sub_buffer_align;

    cl_int e;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)ctx->platform, 0};
    ctx->context = clCreateContext(props, 1, &ctx->device, NULL, NULL, &e);
    if (e != CL_SUCCESS) {
        stfpm_status s = stfpm_cl_check(e, "clCreateContext");
        free(ctx);
        return s;
    }
    ctx->queue = clCreateCommandQueue(ctx->context, ctx->device,
                                      ctx->profile ? CL_QUEUE_PROFILING_ENABLE : 0, &e);
    if (e != CL_SUCCESS) {
        stfpm_status s = stfpm_cl_check(e, "clCreateCommandQueue");
        clReleaseContext(ctx->context);
        free(ctx);
        return s;
    }
    *out = ctx;
    return STFPM_OK;
}

const stfpm_ctx_options *stfpm_ctx_get_options(const stfpm_ctx *ctx) { return &ctx->opt; }

static int str_differs(const char *set, const char *have) { return set && strcmp(set, have) != 0; }

stfpm_status stfpm_ctx_set_options(stfpm_ctx *ctx, const stfpm_ctx_options *o) {
    if (str_differs(o->device, ctx->opt.device) || (o->profile && o->profile != ctx->opt.profile) ||
        str_differs(o->cache_dir, ctx->opt.cache_dir) || str_differs(o->cl_dir, ctx->opt.cl_dir) ||
        str_differs(o->clblast_params, ctx->opt.clblast_params) ||
        (o->device_mem_limit && o->device_mem_limit != ctx->opt.device_mem_limit) ||
        (o->kernels && o->kernels != ctx->opt.kernels) ||
        (o->max_work_group && o->max_work_group != ctx->opt.max_work_group) ||
        (o->sub_buffer_align && o->sub_buffer_align != ctx->opt.sub_buffer_align))
        return stfpm_set_error(STFPM_ERR_ARG, "stfpm_ctx_set_options: device, profile, cache_dir, cl_dir, "
                               "clblast_params, device_mem_limit, kernels, max_work_group and sub_buffer_align "
                               "are fixed when the context is created");
    if ((unsigned)o->conv_algo > STFPM_CONV_ALGO_WINOGRAD2 || (unsigned)o->fold_bn > STFPM_SWITCH_OFF ||
        (unsigned)o->fused_map > STFPM_SWITCH_OFF || (unsigned)o->gemm > STFPM_GEMM_OWN)
        return stfpm_set_error(STFPM_ERR_ARG, "stfpm_ctx_set_options: conv_algo %d / fold_bn %d / fused_map %d / "
                               "gemm %d out of range", (int)o->conv_algo, (int)o->fold_bn, (int)o->fused_map,
                               (int)o->gemm);
    /* nothing in flight may see a mix of old and new settings */
    if (ctx->queue) clFinish(ctx->queue);
    stfpm_ctx_options n = ctx->opt;
    n.conv_algo = o->conv_algo;
    n.fold_bn = o->fold_bn;
    n.fused_map = o->fused_map;
    n.conv_chunk_bytes = o->conv_chunk_bytes;
    n.wino_chunk_bytes = o->wino_chunk_bytes;
    n.wino_min_tiles = o->wino_min_tiles;
    n.gemm = o->gemm;
    if (!n.fold_bn) n.fold_bn = STFPM_SWITCH_ON;
    if (!n.fused_map) n.fused_map = STFPM_SWITCH_ON;
    if (!n.wino_min_tiles) n.wino_min_tiles = STFPM_WINO_MIN_TILES_DEFAULT;
    ctx->opt = n;
    return STFPM_OK;
}

static void stage_release(stfpm_ctx *ctx, int k) {
    if (ctx->stage[k].ev) clReleaseEvent(ctx->stage[k].ev);
    if (ctx->stage[k].ptr) clEnqueueUnmapMemObject(ctx->queue, ctx->stage[k].buf, ctx->stage[k].ptr, 0, NULL, NULL);
    if (ctx->stage[k].buf) {
        clFinish(ctx->queue);
        clReleaseMemObject(ctx->stage[k].buf);
    }
    memset(&ctx->stage[k], 0, sizeof ctx->stage[k]);
}

void stfpm_ctx_free(stfpm_ctx *ctx) {
    if (!ctx) return;
    if (ctx->queue) clFinish(ctx->queue);
    for (int k = 0; k < 2; k++) stage_release(ctx, k);
    for (int i = 0; i < ctx->n_pending; i++) clReleaseEvent(ctx->pending_ev[i]);
    ctx->n_pending = 0;
    for (int i = 0; i < STFPM_SCRATCH_SLOTS; i++)
        if (ctx->scratch[i]) clReleaseMemObject(ctx->scratch[i]);
    for (int i = 0; i < ctx->n_kernels; i++) clReleaseKernel(ctx->kernels[i].k);
    for (int i = 0; i < ctx->n_programs; i++) clReleaseProgram(ctx->programs[i].prog);
    if (ctx->pace_ev) clReleaseEvent(ctx->pace_ev);
    if (ctx->queue) clReleaseCommandQueue(ctx->queue);
    if (ctx->context) clReleaseContext(ctx->context);
    free(ctx);
}

const stfpm_device_info *stfpm_ctx_device(const stfpm_ctx *ctx) { return &ctx->info; }
const char *stfpm_ctx_cache_dir(const stfpm_ctx *ctx) { return ctx->cache_dir; }
cl_context stfpm_ctx_cl_context(stfpm_ctx *ctx) { return ctx->context; }
cl_command_queue stfpm_ctx_queue(stfpm_ctx *ctx) { return ctx->queue; }
cl_device_id stfpm_ctx_cl_device(stfpm_ctx *ctx) { return ctx->device; }
uint64_t stfpm_ctx_mem_in_use(const stfpm_ctx *ctx) { return ctx->mem_in_use; }
uint64_t stfpm_ctx_mem_peak(const stfpm_ctx *ctx) { return ctx->mem_peak; }
stfpm_cache_stats stfpm_ctx_cache_stats(const stfpm_ctx *ctx) { return ctx->cache; }
int stfpm_profiling(const stfpm_ctx *ctx) { return ctx->profile; }

stfpm_status stfpm_finish(stfpm_ctx *ctx) {
    STFPM_CL(clFinish(ctx->queue));
    if (ctx->n_pending) profile_harvest(ctx);
    return STFPM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* kernel sources and the program binary cache */

struct stfpm_embedded_source { const char *name; const char *text; size_t len; };
extern const struct stfpm_embedded_source stfpm_embedded_sources[];

stfpm_status stfpm_kernel_source(const char *dir, const char *name, char **text, size_t *len) {
    if (dir && *dir) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s.cl", dir, name);
        return stfpm_wrap_error(stfpm_read_file(path, text, len), "kernel source (cl_dir option / STFPM_CL_DIR)");
    }
    for (const struct stfpm_embedded_source *s = stfpm_embedded_sources; s->name; s++) {
        if (strcmp(s->name, name) == 0) {
            *text = malloc(s->len + 1);
            if (!*text) return stfpm_set_error(STFPM_ERR_OOM, "out of host memory");
            memcpy(*text, s->text, s->len + 1);
            *len = s->len;
            return STFPM_OK;
        }
    }
    return stfpm_set_error(STFPM_ERR_INTERNAL, "no embedded kernel source named \"%s\"", name);
}

static stfpm_status build_log_error(stfpm_ctx *ctx, cl_program prog, const char *name, cl_int e) {
    size_t n = 0;
    clGetProgramBuildInfo(prog, ctx->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &n);
    char *log = malloc(n + 1);
    if (log) {
        log[0] = 0;
        clGetProgramBuildInfo(prog, ctx->device, CL_PROGRAM_BUILD_LOG, n, log, NULL);
        log[n] = 0;
    }
    stfpm_status s = stfpm_set_error(STFPM_ERR_BUILD, "building OpenCL program cl/%s.cl for %s failed (%s):\n%s",
                                     name, ctx->info.device_name, stfpm_cl_error_name(e),
                                     log ? log : "(no build log)");
    free(log);
    return s;
}

/* Build (or load from cache) program `name` from `src` with `options`. */
static stfpm_status build_program(stfpm_ctx *ctx, const char *name, const char *src, size_t len,
                                  const char *options, cl_program *out) {
    uint64_t h = STFPM_FNV1A64_INIT;
    h = stfpm_fnv1a64(h, ctx->info.platform_name, strlen(ctx->info.platform_name));
    h = stfpm_fnv1a64(h, ctx->info.device_name, strlen(ctx->info.device_name));
    h = stfpm_fnv1a64(h, ctx->info.driver_version, strlen(ctx->info.driver_version));
    h = stfpm_fnv1a64(h, ctx->info.device_version, strlen(ctx->info.device_version));
    h = stfpm_fnv1a64(h, src, len);
    h = stfpm_fnv1a64(h, options, strlen(options));
    char path[1200] = {0};
    cl_int e;
    if (ctx->cache_dir[0]) {
        snprintf(path, sizeof path, "%s/%s-%016llx.bin", ctx->cache_dir, name, (unsigned long long)h);
        char *bin = NULL;
        size_t bsz = 0;
        if (stfpm_path_exists(path) && stfpm_read_file(path, &bin, &bsz) == STFPM_OK && bsz > 0) {
            cl_int bst;
            const unsigned char *bp = (const unsigned char *)bin;
            cl_program p = clCreateProgramWithBinary(ctx->context, 1, &ctx->device, &bsz, &bp, &bst, &e);
            if (e == CL_SUCCESS && bst == CL_SUCCESS &&
                clBuildProgram(p, 1, &ctx->device, options, NULL, NULL) == CL_SUCCESS) {
                free(bin);
                ctx->cache.cache_hits++;
                *out = p;
                return STFPM_OK;
            }
            if (e == CL_SUCCESS) clReleaseProgram(p);
        }
        free(bin); /* unusable cache entry: rebuild and overwrite below */
    }
    cl_program p = clCreateProgramWithSource(ctx->context, 1, &src, &len, &e);
    STFPM_TRY(stfpm_cl_check(e, "clCreateProgramWithSource"));
    e = clBuildProgram(p, 1, &ctx->device, options, NULL, NULL);
    if (e != CL_SUCCESS) {
        stfpm_status s = build_log_error(ctx, p, name, e);
        clReleaseProgram(p);
        return s;
    }
    ctx->cache.programs_built++;
    if (path[0] && stfpm_mkdir_p(ctx->cache_dir) == STFPM_OK) {
        size_t bsz = 0;
        if (clGetProgramInfo(p, CL_PROGRAM_BINARY_SIZES, sizeof bsz, &bsz, NULL) == CL_SUCCESS && bsz) {
            unsigned char *bin = malloc(bsz);
            if (bin && clGetProgramInfo(p, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) == CL_SUCCESS) {
                if (stfpm_write_file_atomic(path, bin, bsz) == STFPM_OK) ctx->cache.cache_writes++;
            }
            free(bin);
        }
    }
    *out = p;
    return STFPM_OK;
}

static stfpm_status get_program(stfpm_ctx *ctx, const char *name, cl_program *out) {
    for (int i = 0; i < ctx->n_programs; i++)
        if (strcmp(ctx->programs[i].name, name) == 0) { *out = ctx->programs[i].prog; return STFPM_OK; }
    if (ctx->n_programs == MAX_PROGRAMS)
        return stfpm_set_error(STFPM_ERR_INTERNAL, "too many OpenCL programs");
    char *src = NULL;
    size_t len = 0;
    STFPM_TRY(stfpm_kernel_source(ctx->cl_dir, name, &src, &len));
    const char *options = ctx->opt.kernels == STFPM_KERNELS_GPU ? "-cl-std=CL1.2 -cl-mad-enable -DSTFPM_GPU=1"
                                                                : "-cl-std=CL1.2 -cl-mad-enable";
    cl_program p = NULL;
    stfpm_status s = build_program(ctx, name, src, len, options, &p);
    free(src);
    if (s != STFPM_OK) return s;
    program_entry *pe = &ctx->programs[ctx->n_programs++];
    snprintf(pe->name, sizeof pe->name, "%s", name);
    pe->prog = p;
    *out = p;
    return STFPM_OK;
}

static stfpm_status find_kernel(stfpm_ctx *ctx, const char *program, const char *name, kernel_entry **out) {
    for (int i = 0; i < ctx->n_kernels; i++) {
        kernel_entry *k = &ctx->kernels[i];
        if (strcmp(k->name, name) == 0 && strcmp(k->prog, program) == 0) { *out = k; return STFPM_OK; }
    }
    if (ctx->n_kernels == MAX_KERNELS) return stfpm_set_error(STFPM_ERR_INTERNAL, "too many kernels");
    cl_program p = NULL;
    STFPM_TRY(get_program(ctx, program, &p));
    cl_int e;
    cl_kernel k = clCreateKernel(p, name, &e);
    if (e != CL_SUCCESS)
        return stfpm_set_error(STFPM_ERR_CL, "clCreateKernel(\"%s\") in cl/%s.cl failed: %s", name,
                               program, stfpm_cl_error_name(e));
    kernel_entry *ke = &ctx->kernels[ctx->n_kernels++];
    memset(ke, 0, sizeof *ke);
    snprintf(ke->prog, sizeof ke->prog, "%s", program);
    snprintf(ke->name, sizeof ke->name, "%s", name);
    ke->k = k;
    clGetKernelWorkGroupInfo(k, ctx->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof ke->wg_max, &ke->wg_max, NULL);
    clGetKernelWorkGroupInfo(k, ctx->device, CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE, sizeof ke->wg_multiple,
                             &ke->wg_multiple, NULL);
    if (!ke->wg_max) ke->wg_max = 1;
    if (!ke->wg_multiple) ke->wg_multiple = 1;
    *out = ke;
    return STFPM_OK;
}

stfpm_status stfpm_get_kernel(stfpm_ctx *ctx, const char *program, const char *name, cl_kernel *out) {
    kernel_entry *ke = NULL;
    STFPM_TRY(find_kernel(ctx, program, name, &ke));
    *out = ke->k;
    return STFPM_OK;
}

size_t stfpm_kernel_wg_limit(stfpm_ctx *ctx, const char *program, const char *name) {
    kernel_entry *ke = NULL;
    if (find_kernel(ctx, program, name, &ke) != STFPM_OK) return 1;
    return ke->wg_max < ctx->wg_cap ? ke->wg_max : ctx->wg_cap;
}

static size_t pow2_ceil(size_t v) {
    size_t p = 1;
    while (p < v) p <<= 1;
    return p;
}

/* Local size for a launch without one (GPU variant): at most 256 work-items (and the kernel's
 * and device's limits), powers of two, the fastest dimension first and covering the global
 * size, at least the kernel's preferred multiple in dimension 0 so the total is a multiple of
 * it. */
static void pick_local(const stfpm_ctx *ctx, const kernel_entry *ke, int dims, const size_t *g, size_t *l) {
    size_t cap = ke->wg_max < ctx->wg_cap ? ke->wg_max : ctx->wg_cap;
    if (cap > 256) cap = 256;
    size_t c2 = 1;
    while (c2 * 2 <= cap) c2 <<= 1;   /* a power of two */
    size_t pm = pow2_ceil(ke->wg_multiple);
    if (pm > c2) pm = c2;
    l[0] = pow2_ceil(g[0]);
    if (l[0] < pm) l[0] = pm;
    if (l[0] > c2) l[0] = c2;
    size_t left = c2 / l[0];
    for (int d = 1; d < dims; d++) {
        l[d] = pow2_ceil(g[d]);
        if (l[d] > left) l[d] = left;
        left /= l[d];
    }
}

/* ------------------------------------------------------------------------------------------ */
/* launching and profiling */

static void profile_add(stfpm_ctx *ctx, const char *name, double ms, double flop) {
    for (int i = 0; i < ctx->n_prof; i++)
        if (strcmp(ctx->prof[i].name, name) == 0) {
            ctx->prof[i].ms += ms;
            ctx->prof[i].calls++;
            ctx->prof[i].flop += flop;
            return;
        }
    if (ctx->n_prof == MAX_PROFILE) return;
    stfpm_profile_entry *p = &ctx->prof[ctx->n_prof++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ms = ms;
    p->calls = 1;
    p->flop = flop;
}

/* Read the times of the collected events (waits for them, so only when the list is full or at
 * stfpm_finish / when the profile is read): waiting per command costs ~1,000 host round trips
 * per training step. */
static void profile_harvest(stfpm_ctx *ctx) {
    if (ctx->n_pending) clWaitForEvents((cl_uint)ctx->n_pending, ctx->pending_ev);
    for (int i = 0; i < ctx->n_pending; i++) {
        cl_ulong t0 = 0, t1 = 0;
        if (clGetEventProfilingInfo(ctx->pending_ev[i], CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL) == CL_SUCCESS &&
            clGetEventProfilingInfo(ctx->pending_ev[i], CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL) == CL_SUCCESS &&
            t1 >= t0)
            profile_add(ctx, ctx->pending_name[i], (double)(t1 - t0) * 1e-6, ctx->pending_flop[i]);
        clReleaseEvent(ctx->pending_ev[i]);
    }
    ctx->n_pending = 0;
}

void stfpm_profile_event(stfpm_ctx *ctx, const char *name, cl_event ev) { stfpm_profile_event_flop(ctx, name, ev, 0); }

void stfpm_profile_event_flop(stfpm_ctx *ctx, const char *name, cl_event ev, double flop) {
    if (!ev) return;
    if (!ctx->profile) { clReleaseEvent(ev); return; }
    if (ctx->n_pending == (int)(sizeof ctx->pending_ev / sizeof ctx->pending_ev[0])) profile_harvest(ctx);
    ctx->pending_ev[ctx->n_pending] = ev;
    snprintf(ctx->pending_name[ctx->n_pending], sizeof ctx->pending_name[0], "%s", name);
    ctx->pending_flop[ctx->n_pending] = flop;
    ctx->n_pending++;
}

int stfpm_ctx_profile(stfpm_ctx *ctx, stfpm_profile_entry *out, int max) {
    profile_harvest(ctx);
    int n = ctx->n_prof < max ? ctx->n_prof : max;
    memcpy(out, ctx->prof, (size_t)n * sizeof *out);
    return n;
}

void stfpm_ctx_profile_reset(stfpm_ctx *ctx) {
    profile_harvest(ctx);
    ctx->n_prof = 0;
}

stfpm_status stfpm_enqueue(stfpm_ctx *ctx, const char *program, const char *name, int dims,
                           const size_t *gws, const size_t *lws, int nargs, const stfpm_karg *args) {
    return stfpm_enqueue_flop(ctx, program, name, dims, gws, lws, nargs, args, 0.0);
}

stfpm_status stfpm_enqueue_flop(stfpm_ctx *ctx, const char *program, const char *name, int dims,
                                const size_t *gws, const size_t *lws, int nargs, const stfpm_karg *args,
                                double flop) {
    kernel_entry *ke = NULL;
    STFPM_TRY(find_kernel(ctx, program, name, &ke));
    cl_kernel k = ke->k;
    for (int i = 0; i < nargs; i++) {
        cl_int e = clSetKernelArg(k, (cl_uint)i, args[i].size, args[i].ptr);
        if (e != CL_SUCCESS)
            return stfpm_set_error(STFPM_ERR_CL, "clSetKernelArg(%s, arg %d) failed: %s", name, i,
                                   stfpm_cl_error_name(e));
    }
    size_t g[3], l[3];
    for (int d = 0; d < dims; d++) g[d] = gws[d] ? gws[d] : 1;
    /* The GPU variant always launches with an explicit local size. The CPU variant leaves it
     * to the runtime unless the caller gives one, as its kernels were tuned (a row or more per
     * work-item; a first comparison with explicit sizes on PoCL was within its noise). */
    const size_t *use = lws;
    if (!use && ctx->opt.kernels == STFPM_KERNELS_GPU) {
        pick_local(ctx, ke, dims, g, l);
        use = l;
    }
    if (use) {
        size_t total = 1;
        for (int d = 0; d < dims; d++) total *= use[d];
        size_t cap = ke->wg_max < ctx->wg_cap ? ke->wg_max : ctx->wg_cap;
        if (total > cap)
            return stfpm_set_error(STFPM_ERR_CL, "kernel %s: work-group of %zu work-items, the limit is %zu (device "
                                   "%s, kernel or max_work_group option)", name, total, cap, ctx->info.device_name);
        for (int d = 0; d < dims; d++) g[d] = (g[d] + use[d] - 1) / use[d] * use[d];
    }
    cl_event ev = NULL;
    cl_int e = clEnqueueNDRangeKernel(ctx->queue, k, (cl_uint)dims, NULL, g, use, 0, NULL,
                                      ctx->profile ? &ev : NULL);
    if (e != CL_SUCCESS) {
        stfpm_status s = stfpm_cl_check(e, "clEnqueueNDRangeKernel");
        return stfpm_wrap_error(s, "kernel %s", name);
    }
    if (ev) stfpm_profile_event_flop(ctx, name, ev, flop);
    stfpm_queue_pace(ctx);
    return STFPM_OK;
}

/* On CPU devices, at most about 2 * QUEUE_PACE commands wait in the queue: after every
 * QUEUE_PACE commands a marker is enqueued and the host waits for the previous marker. PoCL
 * 3.1's pthread driver walks a list of the queued commands for each command it runs: with the
 * whole forward of a batch of 32 queued at once (about 8,500 commands), its worker threads spent
 * 19 % of their time in that walk (perf). Inference at batch 32 on the 2-core Xeon, bench_step
 * --infer, CPU s per batch, alternating: unpaced 1.98 / 1.86 / 2.04 / 2.11, window 16 1.68 /
 * 1.58, 32 1.64 / 1.61, 64 1.60 / 1.58 / 1.73 / 1.64, 256 1.58 / 1.67; batch 1 (about 770
 * commands): 0.062 / 0.061 / 0.062 unpaced, 0.059 / 0.056 / 0.057 with 16, 0.059 / 0.059 /
 * 0.058 with 64; a training step at batch 8 (which reads its loss back every step): 1.14 /
 * 1.09 / 1.15 unpaced, 1.09 / 1.09 / 1.14 with 32. GPU drivers are left as they are. */
#define QUEUE_PACE 32

void stfpm_queue_pace(stfpm_ctx *ctx) {
    if (!(ctx->info.type & CL_DEVICE_TYPE_CPU) || ++ctx->pace_count < QUEUE_PACE) return;
    ctx->pace_count = 0;
    cl_event ev = NULL;
    /* failures here only lose the pacing; the next command or read reports a broken queue */
    if (clEnqueueMarkerWithWaitList(ctx->queue, 0, NULL, &ev) != CL_SUCCESS) return;
    clFlush(ctx->queue);
    if (ctx->pace_ev) {
        clWaitForEvents(1, &ctx->pace_ev);
        clReleaseEvent(ctx->pace_ev);
    }
    ctx->pace_ev = ev;
}

int stfpm_gpu_kernels(const stfpm_ctx *ctx) { return ctx->opt.kernels == STFPM_KERNELS_GPU; }
size_t stfpm_sub_buffer_align(const stfpm_ctx *ctx) { return ctx->sub_align; }

/* ------------------------------------------------------------------------------------------ */
/* memory */

static stfpm_status oom(stfpm_ctx *ctx, size_t bytes, const char *why) {
    return stfpm_set_error(STFPM_ERR_OOM,
                           "out of device memory: %s %.1f MiB on %s (%.1f MiB already in use, device "
                           "has %.1f MiB, largest single allocation %.1f MiB); try a smaller --batch or --size",
                           why, bytes / 1048576.0, ctx->info.device_name, ctx->mem_in_use / 1048576.0,
                           ctx->info.global_mem / 1048576.0, ctx->info.max_alloc / 1048576.0);
}

stfpm_status stfpm_buffer_alloc(stfpm_ctx *ctx, size_t bytes, cl_mem *out) {
    *out = NULL;
    if (bytes == 0) bytes = 4;
    if (bytes > ctx->info.max_alloc) return oom(ctx, bytes, "cannot allocate a buffer of");
    if (ctx->mem_in_use + bytes > ctx->info.global_mem) return oom(ctx, bytes, "cannot allocate");
    cl_int e;
    cl_mem m = clCreateBuffer(ctx->context, CL_MEM_READ_WRITE, bytes, NULL, &e);
    if (e != CL_SUCCESS) {
        if (e == CL_MEM_OBJECT_ALLOCATION_FAILURE || e == CL_OUT_OF_RESOURCES ||
            e == CL_OUT_OF_HOST_MEMORY || e == CL_INVALID_BUFFER_SIZE)
            return oom(ctx, bytes, "clCreateBuffer failed for");
        return stfpm_cl_check(e, "clCreateBuffer");
    }
    ctx->mem_in_use += bytes;
    if (ctx->mem_in_use > ctx->mem_peak) ctx->mem_peak = ctx->mem_in_use;
    *out = m;
    return STFPM_OK;
}

void stfpm_buffer_free(stfpm_ctx *ctx, cl_mem buf, size_t bytes) {
    if (!buf) return;
    if (bytes == 0) bytes = 4;
    clReleaseMemObject(buf);
    ctx->mem_in_use -= bytes < ctx->mem_in_use ? bytes : ctx->mem_in_use;
}

size_t stfpm_chunk_budget(stfpm_ctx *ctx, size_t cpu_bytes, size_t gpu_bytes, size_t option_bytes) {
    if (option_bytes) return option_bytes;
    return ctx->info.type & CL_DEVICE_TYPE_CPU ? cpu_bytes : gpu_bytes;
}

void stfpm_scratch_release(stfpm_ctx *ctx, stfpm_scratch_slot slot) {
    if (slot < 0 || slot >= STFPM_SCRATCH_SLOTS || !ctx->scratch[slot]) return;
    clFinish(ctx->queue);
    stfpm_buffer_free(ctx, ctx->scratch[slot], ctx->scratch_size[slot]);
    ctx->scratch[slot] = NULL;
    ctx->scratch_size[slot] = 0;
}

stfpm_status stfpm_scratch(stfpm_ctx *ctx, stfpm_scratch_slot slot, size_t bytes, cl_mem *out) {
    if (slot < 0 || slot >= STFPM_SCRATCH_SLOTS)
        return stfpm_set_error(STFPM_ERR_INTERNAL, "bad scratch slot %d", slot);
    if (ctx->scratch_size[slot] < bytes) {
        if (ctx->scratch[slot]) {
            clFinish(ctx->queue);
            stfpm_buffer_free(ctx, ctx->scratch[slot], ctx->scratch_size[slot]);
            ctx->scratch[slot] = NULL;
            ctx->scratch_size[slot] = 0;
        }
        STFPM_TRY(stfpm_buffer_alloc(ctx, bytes, &ctx->scratch[slot]));
        ctx->scratch_size[slot] = bytes;
    }
    *out = ctx->scratch[slot];
    return STFPM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* tensors */

stfpm_status stfpm_tensor_alloc(stfpm_ctx *ctx, stfpm_tensor *t, int n, int c, int h, int w) {
    memset(t, 0, sizeof *t);
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0)
        return stfpm_set_error(STFPM_ERR_ARG, "invalid tensor shape (%d, %d, %d, %d)", n, c, h, w);
    size_t numel = (size_t)n * c * h * w;
    if (numel > 2147483647u)   /* kernels index with 32-bit ints */
        return stfpm_set_error(STFPM_ERR_OOM, "tensor (%d, %d, %d, %d) has %zu elements, more than 2^31 - 1: "
                               "try a smaller --batch or --size", n, c, h, w, numel);
    size_t bytes = numel * sizeof(float);
    STFPM_TRY(stfpm_buffer_alloc(ctx, bytes, &t->buf));
    t->n = n; t->c = c; t->h = h; t->w = w;
    t->off = 0;
    t->owner = 1;
    return STFPM_OK;
}

void stfpm_tensor_free(stfpm_ctx *ctx, stfpm_tensor *t) {
    if (t->buf && t->owner) stfpm_buffer_free(ctx, t->buf, stfpm_tensor_numel(t) * sizeof(float));
    memset(t, 0, sizeof *t);
}

stfpm_tensor stfpm_tensor_view(const stfpm_tensor *t, int n0, int count) {
    stfpm_tensor v = *t;
    v.n = count;
    v.off = t->off + (size_t)n0 * t->c * t->h * t->w;
    v.owner = 0;
    return v;
}

stfpm_status stfpm_tensor_write(stfpm_ctx *ctx, stfpm_tensor *t, const float *host) {
    STFPM_CL(clEnqueueWriteBuffer(ctx->queue, t->buf, CL_TRUE, t->off * sizeof(float),
                                  stfpm_tensor_numel(t) * sizeof(float), host, 0, NULL, NULL));
    return STFPM_OK;
}

stfpm_status stfpm_tensor_upload(stfpm_ctx *ctx, stfpm_tensor *t, const float *host) {
    /* CPU devices with the CPU variant: device memory is host memory, a staging copy only costs */
    if ((ctx->info.type & CL_DEVICE_TYPE_CPU) && ctx->opt.kernels != STFPM_KERNELS_GPU)
        return stfpm_tensor_write(ctx, t, host);
    const size_t bytes = stfpm_tensor_numel(t) * sizeof(float);
    const int k = ctx->next_stage;
    ctx->next_stage ^= 1;
    if (ctx->stage[k].ev) {   /* the transfer from this buffer two uploads ago */
        cl_int e = clWaitForEvents(1, &ctx->stage[k].ev);
        clReleaseEvent(ctx->stage[k].ev);
        ctx->stage[k].ev = NULL;
        STFPM_CL(e);
    }
    if (ctx->stage[k].bytes < bytes) {
        stage_release(ctx, k);
        cl_int e;
        cl_mem b = clCreateBuffer(ctx->context, CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR, bytes, NULL, &e);
        if (e != CL_SUCCESS) return stfpm_tensor_write(ctx, t, host);   /* no pinned memory: plain upload */
        void *p = clEnqueueMapBuffer(ctx->queue, b, CL_TRUE, CL_MAP_WRITE, 0, bytes, 0, NULL, NULL, &e);
        if (e != CL_SUCCESS) {
            clReleaseMemObject(b);
            return stfpm_tensor_write(ctx, t, host);
        }
        ctx->stage[k].buf = b;
        ctx->stage[k].ptr = p;
        ctx->stage[k].bytes = bytes;
    }
    memcpy(ctx->stage[k].ptr, host, bytes);
    STFPM_CL(clEnqueueWriteBuffer(ctx->queue, t->buf, CL_FALSE, t->off * sizeof(float), bytes, ctx->stage[k].ptr, 0,
                                  NULL, &ctx->stage[k].ev));
    return STFPM_OK;
}

stfpm_status stfpm_tensor_read(stfpm_ctx *ctx, const stfpm_tensor *t, float *host) {
    STFPM_CL(clEnqueueReadBuffer(ctx->queue, t->buf, CL_TRUE, t->off * sizeof(float),
                                 stfpm_tensor_numel(t) * sizeof(float), host, 0, NULL, NULL));
    return STFPM_OK;
}

stfpm_status stfpm_tensor_fill(stfpm_ctx *ctx, stfpm_tensor *t, float value) {
    cl_int n = (cl_int)stfpm_tensor_numel(t), off = (cl_int)t->off;
    stfpm_karg a[] = {KARG(t->buf), KARG(off), KARG(n), KARG(value)};
    return stfpm_enqueue1d(ctx, "runtime", "fill_f32", (size_t)n, KARGS(a));
}

stfpm_status stfpm_tensor_copy(stfpm_ctx *ctx, const stfpm_tensor *src, stfpm_tensor *dst) {
    if (stfpm_tensor_numel(src) != stfpm_tensor_numel(dst))
        return stfpm_set_error(STFPM_ERR_ARG, "tensor copy: %zu vs %zu elements", stfpm_tensor_numel(src),
                               stfpm_tensor_numel(dst));
    STFPM_CL(clEnqueueCopyBuffer(ctx->queue, src->buf, dst->buf, src->off * sizeof(float),
                                 dst->off * sizeof(float), stfpm_tensor_numel(src) * sizeof(float), 0,
                                 NULL, NULL));
    return STFPM_OK;
}
