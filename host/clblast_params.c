/* CLBlast's tuning parameters per device: where they come from (the clblast_params option /
 * STFPM_CLBLAST_PARAMS, the file written by `stfpm tune`, the built-in table, CLBlast's
 * defaults), parsing and checking specs, and the tuned file's I/O. The public part is in
 * include/stfpm/tune.h. */
#include "clblast_params.h"
#include "fsutil.h"
#include "options.h"
#include "stfpm/tune.h"

#include <clblast_c.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* CLBlast tuning parameters: which set a device runs with (STFPM_CLBLAST_PARAMS, the tuned file
 * written by `stfpm tune` (host/tune.c), the built-in table below, or CLBlast's defaults).
 *
 * CLBlast keeps overridden parameters per cl_device_id for the whole process (its database
 * cache; clblast::RetrieveParameters is C++-only and CLBlastClearCache only drops compiled
 * programs), so this file tracks, per device, whether anything was overridden and where the
 * parameters in effect came from. */

typedef struct dev_tuning {
    cl_device_id dev;
    int overridden;       /* some CLBlastOverrideParameters succeeded for dev in this process */
    const char *source;   /* "env", "cache", "builtin", "none", "tune" */
    char spec[1024];
    char note[768];
} dev_tuning;

#define MAX_TUNED_DEVICES 32
static dev_tuning g_tuning[MAX_TUNED_DEVICES];
static int g_n_tuning;
static pthread_mutex_t g_tuning_lock = PTHREAD_MUTEX_INITIALIZER;

/* Entry of ctx's device (created on first use); call with g_tuning_lock held. */
static dev_tuning *tuning_entry(stfpm_ctx *ctx) {
    cl_device_id d = stfpm_ctx_cl_device(ctx);
    for (int i = 0; i < g_n_tuning; i++)
        if (g_tuning[i].dev == d) return &g_tuning[i];
    static dev_tuning overflow; /* > 32 distinct devices: shared, still correct for the last one */
    dev_tuning *t = g_n_tuning < MAX_TUNED_DEVICES ? &g_tuning[g_n_tuning++] : &overflow;
    memset(t, 0, sizeof *t);
    t->dev = d;
    t->source = "none";
    return t;
}

stfpm_status stfpm_clblast_override(stfpm_ctx *ctx, const char *kernel, size_t count,
                                    const char **names, const size_t *values) {
    CLBlastStatusCode st = CLBlastOverrideParameters(stfpm_ctx_cl_device(ctx), kernel,
                                                     CLBlastPrecisionSingle, count, names, values);
    if (st != CLBlastSuccess)
        return stfpm_set_error(STFPM_ERR_BLAS,
                               "CLBlastOverrideParameters(%s) rejected the parameters (status %d): every "
                               "parameter of the kernel must be given", kernel, (int)st);
    pthread_mutex_lock(&g_tuning_lock);
    tuning_entry(ctx)->overridden = 1;
    pthread_mutex_unlock(&g_tuning_lock);
    return STFPM_OK;
}

/* Parse "Kernel:NAME=V,NAME=V;Kernel2:..." and apply each kernel's set. */
static stfpm_status apply_spec(stfpm_ctx *ctx, const char *spec) {
    char buf[2048];
    if (strlen(spec) >= sizeof buf)
        return stfpm_set_error(STFPM_ERR_ARG, "CLBlast parameters: spec longer than %zu characters", sizeof buf - 1);
    snprintf(buf, sizeof buf, "%s", spec);
    char *save1 = NULL;
    for (char *part = strtok_r(buf, ";", &save1); part; part = strtok_r(NULL, ";", &save1)) {
        char *colon = strchr(part, ':');
        if (!colon) return stfpm_set_error(STFPM_ERR_ARG, "CLBlast parameters \"%s\": expected Kernel:NAME=V,...", part);
        *colon = 0;
        const char *names[32];
        size_t values[32], n = 0;
        char *save2 = NULL;
        for (char *kv = strtok_r(colon + 1, ",", &save2); kv && n < 32; kv = strtok_r(NULL, ",", &save2)) {
            char *eq = strchr(kv, '=');
            if (!eq) return stfpm_set_error(STFPM_ERR_ARG, "CLBlast parameter \"%s\": expected NAME=VALUE", kv);
            *eq = 0;
            names[n] = kv;
            values[n] = strtoul(eq + 1, NULL, 10);
            n++;
        }
        STFPM_TRY(stfpm_clblast_override(ctx, part, n, names, values));
    }
    return STFPM_OK;
}

/* Tuned parameters, keyed by a substring of the device name. Used when neither
 * STFPM_CLBLAST_PARAMS nor a file written by `stfpm tune` (host/tune.c) gives parameters for
 * the device; `stfpm tune` measures this entry as one of its baselines.
 *
 * PoCL CPU device (pthread-*), measured with `bench_conv 8 --gemm-only --cpu-time` (stfpm_gemm,
 * row-major NN, best of 3) with CLBlast 1.5.3 and PoCL 3.1 on the 2-vCPU AVX-512 EPYC build
 * machine. That machine is shared with other jobs, so the numbers are GFLOP per CPU-second of
 * the process (wall-clock numbers jumped by 2x between runs; these repeat within ~10%); with
 * both cores free, wall GFLOP/s reach up to 2x these. OpenBLAS sgemm, same metric: 90-100.
 *
 *   M x N x K                 CLBlast    old table       old table +      this table
 *                             default    (Xgemm GEMMK=0) indirect >= 32^3 (GEMMK=1 + 32^3)
 *   512^3                        7.6        7.7              35.9             100.1
 *   64 x 4096 x 576 (layer1)     7.2        7.2              35.3              69.9
 *   64 x 32768 x 576             11.4       21.3             22.8              58.0
 *   128 x 1024 x 1152 (layer2)   5.7        7.4              33.6              54.5
 *   256 x 256 x 2304 (layer3)    6.6        6.3              26.2              91.7
 *   256 x 2048 x 2304            9.2        18.1             19.5              43.6
 *   64 x 16384 x 147 (conv1)     7.2        6.9              16.9              61.5
 *
 * Findings:
 * - CLBlast runs GEMMs with M*N*K < XGEMM_MIN_INDIRECT_SIZE^3 (896^3 by default for this
 *   device) on XgemmDirect, which on PoCL runs at ~6-8 GFLOP/s. The Xgemm override does take
 *   effect, but only above that size (64 x 32768 x 576: 21 vs 11); 512^3 and every per-image
 *   conv GEMM stayed on XgemmDirect at ~7 (the old comment's "72.6 GFLOP/s at 512^3" was the
 *   tuner's kernel-only number). GemmRoutine:XGEMM_MIN_INDIRECT_SIZE=32 sends everything from
 *   32^3 up to the indirect kernel, which wins from 64^3 (23 vs 6 GFLOP/s) upwards.
 * - With GEMMK=0 the indirect kernel wants A and C column-major, so a row-major call pays a
 *   transpose of A and of C around the kernel (halves 512^3: 40 row-major vs 73-83 for the
 *   same kernel called column-major). GEMMK=1 wants row-major A, B and C: row-major NN GEMMs
 *   whose sizes are multiples of 64 (M, N) need no copies at all. host/conv.c arranges its
 *   GEMMs as NN on the large operands for this reason.
 * - The remaining slow cases are GEMMs whose A has a row stride that is a multiple of 2-4 KiB
 *   (e.g. 128 x 1152 x 1024: 42 vs 87 with K = 1040), and large N (64 x 32768: 58 vs 70 at
 *   N = 4096). host/conv.c pads the weight-gradient GEMM's reduction and processes about one
 *   image per chunk on CPUs to stay clear of both.
 * - GEMMK=1 search (MWG = NWG = 64 unless noted; GFLOP/CPU-s, geometric mean over 512^3,
 *   64x4096x576, 128x1024x1152, 256x256x2304, 64x16384x147): MDIMC=NDIMC=8 VWM=VWN=4 KREG=4:
 *   38; same with KREG=8: 37; VWM=8 VWN=1 KREG=1: 44-49; MDIMC=4 VWM=16 VWN=1: 63; NDIMC=4
 *   VWM=8: 66; MDIMC=NDIMC=4 VWM=16 VWN=1 KREG=1: 78-84 (chosen); the same with 32x32 tiles:
 *   62-84 (lower wall-clock); MDIMC=NDIMC=16: 10; VWM=VWN=1: 14. MWG != NWG crashed CLBlast
 *   (heap corruption) for MWG=32/NWG=64 and MWG=64/NWG=128: only square tiles are used.
 * - CLBlast 1.5.3 bug: XgemmStridedBatched's indirect path rounds K up to a multiple of VWM
 *   for the kernel but pads the operands to KWG*KREG only, so with a GEMMK=1 set (KWG=1) a
 *   strided-batched GEMM whose K is not a multiple of VWM (16 here) reads past the operands
 *   and returns garbage (seen: K = 17, batch 3; plain Xgemm is fine). stfpm_gemm_batched with
 *   batch > 1 above the 32^3 threshold is therefore wrong on PoCL with this table unless K is
 *   a multiple of 16; host/conv.c uses loops of stfpm_gemm. Plain SGEMM (all four transpose
 *   cases, offsets, padded leading dimensions, beta != 0, direct and indirect sizes) is
 *   checked against a CPU GEMM in tests/test_ops_conv.c. */
static const struct { const char *device_substr; const char *spec; } k_tuned[] = {
    {"pthread",
     "Xgemm:GEMMK=1,KREG=1,KWG=1,KWI=1,MDIMA=4,MDIMC=4,MWG=64,NDIMB=4,NDIMC=4,NWG=64,SA=0,SB=0,"
     "STRM=0,STRN=0,VWM=16,VWN=1;"
     "GemmRoutine:XGEMM_MIN_INDIRECT_SIZE=32"},
    {NULL, NULL}};


const char *stfpm_clblast_builtin_spec(const stfpm_device_info *dev) {
    for (int i = 0; k_tuned[i].device_substr; i++)
        if (strstr(dev->device_name, k_tuned[i].device_substr)) return k_tuned[i].spec;
    return NULL;
}

/* --- spec checking (tuned files are checked fully before anything is applied) -------------- */

static const char *const k_xgemm_names[16] = {"GEMMK", "KREG", "KWG",  "KWI",  "MDIMA", "MDIMC",
                                              "MWG",   "NDIMB", "NDIMC", "NWG", "SA",    "SB",
                                              "STRM",  "STRN", "VWM",  "VWN"};
enum { X_GEMMK, X_KREG, X_KWG, X_KWI, X_MDIMA, X_MDIMC, X_MWG, X_NDIMB, X_NDIMC, X_NWG, X_SA, X_SB,
       X_STRM, X_STRN, X_VWM, X_VWN };

static int is_pow2_le(unsigned long v, unsigned long max) { return v >= 1 && v <= max && (v & (v - 1)) == 0; }

/* CLBlast's constraints for the Xgemm kernel (src/tuning/kernels/xgemm.hpp, 1.5.x) plus sane
 * ranges; v in k_xgemm_names order. */
static stfpm_status check_xgemm(const unsigned long *v) {
#define BAD(...) return stfpm_set_error(STFPM_ERR_FORMAT, "Xgemm parameters: " __VA_ARGS__)
    if (v[X_GEMMK] > 1) BAD("GEMMK must be 0 or 1, got %lu", v[X_GEMMK]);
    const int tiles[] = {X_MWG, X_NWG, X_MDIMC, X_NDIMC, X_MDIMA, X_NDIMB};
    for (int i = 0; i < 6; i++)
        if (!is_pow2_le(v[tiles[i]], 256))
            BAD("%s must be a power of two <= 256, got %lu", k_xgemm_names[tiles[i]], v[tiles[i]]);
    const int vw[] = {X_VWM, X_VWN};
    for (int i = 0; i < 2; i++)
        if (!is_pow2_le(v[vw[i]], 16)) BAD("%s must be 1, 2, 4, 8 or 16, got %lu", k_xgemm_names[vw[i]], v[vw[i]]);
    if (!is_pow2_le(v[X_KWG], 256) || !is_pow2_le(v[X_KWI], 256) || !is_pow2_le(v[X_KREG], 64))
        BAD("KWG, KWI (powers of two <= 256) and KREG (<= 64) invalid: %lu, %lu, %lu", v[X_KWG], v[X_KWI], v[X_KREG]);
    const int flags[] = {X_SA, X_SB, X_STRM, X_STRN};
    for (int i = 0; i < 4; i++)
        if (v[flags[i]] > 1) BAD("%s must be 0 or 1, got %lu", k_xgemm_names[flags[i]], v[flags[i]]);
    if (v[X_KWG] % v[X_KWI]) BAD("KWG %lu is not a multiple of KWI %lu", v[X_KWG], v[X_KWI]);
    if (v[X_MWG] % (v[X_MDIMC] * v[X_VWM]) || v[X_MWG] % (v[X_MDIMA] * v[X_VWM]))
        BAD("MWG %lu is not a multiple of MDIMC*VWM and MDIMA*VWM (%lu, %lu, %lu)", v[X_MWG], v[X_MDIMC],
            v[X_MDIMA], v[X_VWM]);
    if (v[X_NWG] % (v[X_NDIMC] * v[X_VWN]) || v[X_NWG] % (v[X_NDIMB] * v[X_VWN]))
        BAD("NWG %lu is not a multiple of NDIMC*VWN and NDIMB*VWN (%lu, %lu, %lu)", v[X_NWG], v[X_NDIMC],
            v[X_NDIMB], v[X_VWN]);
    if (v[X_GEMMK] == 0) {
        unsigned long t = v[X_MDIMC] * v[X_NDIMC];
        if (t % v[X_MDIMA] || t % v[X_NDIMB] || v[X_KWG] % (t / v[X_MDIMA]) || v[X_KWG] % (t / v[X_NDIMB]))
            BAD("GEMMK=0 needs KWG a multiple of MDIMC*NDIMC/MDIMA and MDIMC*NDIMC/NDIMB");
        if (v[X_KREG] != 1) BAD("GEMMK=0 needs KREG=1");
    } else if (v[X_KREG] % v[X_VWN]) {
        BAD("GEMMK=1 needs KREG (%lu) to be a multiple of VWN (%lu)", v[X_KREG], v[X_VWN]);
    }
#undef BAD
    return STFPM_OK;
}

stfpm_status stfpm_clblast_check_spec(const char *spec) {
    if (!spec) return stfpm_set_error(STFPM_ERR_FORMAT, "no CLBlast parameters");
    if (strcmp(spec, "default") == 0) return STFPM_OK;
    char buf[2048];
    if (!*spec || strlen(spec) >= sizeof buf)
        return stfpm_set_error(STFPM_ERR_FORMAT, "CLBlast parameters: empty or longer than %zu characters", sizeof buf - 1);
    snprintf(buf, sizeof buf, "%s", spec);
    int seen_xgemm = 0, seen_routine = 0;
    char *save1 = NULL;
    for (char *part = strtok_r(buf, ";", &save1); part; part = strtok_r(NULL, ";", &save1)) {
        char *colon = strchr(part, ':');
        if (!colon) return stfpm_set_error(STFPM_ERR_FORMAT, "\"%s\": expected Kernel:NAME=V,...", part);
        *colon = 0;
        int xgemm = strcmp(part, "Xgemm") == 0, routine = strcmp(part, "GemmRoutine") == 0;
        if (!xgemm && !routine)
            return stfpm_set_error(STFPM_ERR_FORMAT, "unexpected CLBlast kernel \"%s\" (tuned files hold Xgemm and "
                                   "GemmRoutine)", part);
        if ((xgemm && seen_xgemm++) || (routine && seen_routine++))
            return stfpm_set_error(STFPM_ERR_FORMAT, "kernel %s given twice", part);
        unsigned long xv[16];
        int have[16] = {0}, n = 0;
        unsigned long threshold = 0;
        char *save2 = NULL;
        for (char *kv = strtok_r(colon + 1, ",", &save2); kv; kv = strtok_r(NULL, ",", &save2)) {
            char *eq = strchr(kv, '=');
            if (!eq || eq[1] < '0' || eq[1] > '9')
                return stfpm_set_error(STFPM_ERR_FORMAT, "%s: \"%s\" is not NAME=NUMBER", part, kv);
            *eq = 0;
            char *end = NULL;
            unsigned long val = strtoul(eq + 1, &end, 10);
            if (*end || val > 1000000)
                return stfpm_set_error(STFPM_ERR_FORMAT, "%s: value of %s is not a number <= 1000000", part, kv);
            if (routine) {
                if (strcmp(kv, "XGEMM_MIN_INDIRECT_SIZE") || n++)
                    return stfpm_set_error(STFPM_ERR_FORMAT,
                                           "GemmRoutine: expected only XGEMM_MIN_INDIRECT_SIZE, got %s", kv);
                if (val < 1 || val > 100000)
                    return stfpm_set_error(STFPM_ERR_FORMAT, "XGEMM_MIN_INDIRECT_SIZE must be 1..100000, got %lu", val);
                threshold = val;
                continue;
            }
            int idx = -1;
            for (int i = 0; i < 16; i++)
                if (strcmp(kv, k_xgemm_names[i]) == 0) idx = i;
            if (idx < 0) return stfpm_set_error(STFPM_ERR_FORMAT, "Xgemm: unknown parameter %s", kv);
            if (have[idx]++) return stfpm_set_error(STFPM_ERR_FORMAT, "Xgemm: %s given twice", kv);
            xv[idx] = val;
            n++;
        }
        if (routine && !threshold)
            return stfpm_set_error(STFPM_ERR_FORMAT, "GemmRoutine: XGEMM_MIN_INDIRECT_SIZE missing");
        if (xgemm) {
            for (int i = 0; i < 16; i++)
                if (!have[i]) return stfpm_set_error(STFPM_ERR_FORMAT, "Xgemm: parameter %s missing (all 16 are needed)",
                                                     k_xgemm_names[i]);
            STFPM_TRY(check_xgemm(xv));
        }
    }
    if (!seen_xgemm && !seen_routine) return stfpm_set_error(STFPM_ERR_FORMAT, "no CLBlast kernel parameters given");
    return STFPM_OK;
}

/* --- the tuned file ------------------------------------------------------------------------- */

stfpm_status stfpm_clblast_cache_path(const stfpm_device_info *dev, const char *cache_dir, char *out, size_t n) {
    char dir[1024];
    if (cache_dir) {
        snprintf(dir, sizeof dir, "%s", cache_dir);
    } else {   /* the default a context would get */
        stfpm_ctx_options o = {0};
        STFPM_TRY(stfpm_ctx_options_resolve(&o));
        snprintf(dir, sizeof dir, "%s", o.cache_dir);
    }
    if (n) out[0] = 0;
    if (!dir[0])
        return stfpm_set_error(STFPM_ERR_IO, "no cache directory (STFPM_CACHE_DIR is empty, or neither "
                               "XDG_CACHE_HOME nor HOME is set)");
    uint64_t h = STFPM_FNV1A64_INIT;
    const char *parts[3] = {dev->platform_name, dev->device_name, dev->driver_version};
    for (int i = 0; i < 3; i++) h = stfpm_fnv1a64(stfpm_fnv1a64(h, parts[i], strlen(parts[i])), "\n", 1);
    if ((size_t)snprintf(out, n, "%s/clblast-%016llx.txt", dir, (unsigned long long)h) >= n)
        return stfpm_set_error(STFPM_ERR_IO, "cache path too long (%s)", dir);
    return STFPM_OK;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = 0;
    return s;
}

stfpm_status stfpm_clblast_read_cache(const char *path, const stfpm_device_info *dev, char *spec, size_t n) {
    if (n) spec[0] = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return stfpm_set_error(STFPM_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    char text[16384];
    size_t len = fread(text, 1, sizeof text - 1, f);
    int more = fgetc(f) != EOF;
    fclose(f);
    text[len] = 0;
    if (more) return stfpm_set_error(STFPM_ERR_FORMAT, "%s: larger than %zu bytes", path, sizeof text - 1);
    if (memchr(text, 0, len)) return stfpm_set_error(STFPM_ERR_FORMAT, "%s: not a text file", path);
    int dev_ok = 0, drv_ok = 0, n_spec = 0;
    char found[2048] = {0};
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line = trim(line);
        if (!*line) continue;
        if (line[0] == '#') {
            char *v = NULL;
            if (strncmp(line, "# device:", 9) == 0) {
                v = trim(line + 9);
                if (strcmp(v, dev->device_name) != 0)
                    return stfpm_set_error(STFPM_ERR_FORMAT, "%s was written for device \"%s\", not \"%s\"", path, v,
                                           dev->device_name);
                dev_ok = 1;
            } else if (strncmp(line, "# driver:", 9) == 0) {
                v = trim(line + 9);
                if (strcmp(v, dev->driver_version) != 0)
                    return stfpm_set_error(STFPM_ERR_FORMAT, "%s was written for driver \"%s\", this one is \"%s\"", path,
                                           v, dev->driver_version);
                drv_ok = 1;
            }
            continue;
        }
        if (n_spec++) return stfpm_set_error(STFPM_ERR_FORMAT, "%s: more than one parameter line", path);
        snprintf(found, sizeof found, "%s", line);
    }
    if (!dev_ok || !drv_ok)
        return stfpm_set_error(STFPM_ERR_FORMAT, "%s: \"# device:\" or \"# driver:\" line missing", path);
    if (!n_spec) return stfpm_set_error(STFPM_ERR_FORMAT, "%s: no parameter line", path);
    if (stfpm_clblast_check_spec(found) != STFPM_OK)
        return stfpm_wrap_error(STFPM_ERR_FORMAT, "%s", path);
    if (strlen(found) >= n) return stfpm_set_error(STFPM_ERR_FORMAT, "%s: parameter line too long", path);
    snprintf(spec, n, "%s", found);
    return STFPM_OK;
}

stfpm_status stfpm_clblast_write_cache(const char *path, const stfpm_device_info *dev, const char *spec,
                                       const char *comment) {
    STFPM_TRY(stfpm_clblast_check_spec(spec));
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        STFPM_TRY(stfpm_mkdir_p(dir));
    }
    char text[8192];
    int k = snprintf(text, sizeof text,
                     "# CLBlast SGEMM parameters tuned by `stfpm tune` (delete this file to fall back to the\n"
                     "# built-in table; STFPM_CLBLAST_PARAMS overrides it)\n"
                     "# platform: %s\n# device: %s\n# driver: %s\n",
                     dev->platform_name, dev->device_name, dev->driver_version);
    for (const char *c = comment; c && *c && k < (int)sizeof text - 600;) {
        const char *nl = strchr(c, '\n');
        int len = nl ? (int)(nl - c) : (int)strlen(c);
        k += snprintf(text + k, sizeof text - k, "# %.*s\n", len, c);
        c += len + (nl ? 1 : 0);
    }
    if (k + strlen(spec) + 2 >= sizeof text) return stfpm_set_error(STFPM_ERR_ARG, "tuned file text too long");
    k += snprintf(text + k, sizeof text - k, "%s\n", spec);
    return stfpm_write_text_atomic(path, text, (size_t)k);
}

/* --- applying ------------------------------------------------------------------------------- */

/* Use CLBlast's defaults (t locked). They cannot be restored after an override: then the
 * earlier parameters stay in effect and the note says so. */
static void use_defaults(dev_tuning *t, const char *source, const char *why) {
    if (t->overridden) {
        snprintf(t->note, sizeof t->note,
                 "%.500s: CLBlast's default parameters were asked for, but CLBlast cannot drop the parameters "
                 "set earlier in this process (source \"%s\"), so those stay in effect", why, t->source);
        return;
    }
    t->source = source;
    snprintf(t->spec, sizeof t->spec, "%s", strcmp(source, "none") ? "default" : "");
}

stfpm_status stfpm_clblast_apply_spec(stfpm_ctx *ctx, const char *spec, const char *source) {
    static const char *const sources[] = {"env", "cache", "builtin", "none", "tune"};
    const char *src = "tune";
    for (int i = 0; source && i < 5; i++)
        if (strcmp(source, sources[i]) == 0) src = sources[i];
    if (strcmp(spec, "default") == 0) {
        pthread_mutex_lock(&g_tuning_lock);
        dev_tuning *t = tuning_entry(ctx);
        int ok = !t->overridden;
        if (ok) use_defaults(t, src, "stfpm_clblast_apply_spec");
        pthread_mutex_unlock(&g_tuning_lock);
        return ok ? STFPM_OK
                  : stfpm_set_error(STFPM_ERR_ARG, "CLBlast's default parameters cannot be restored after an override "
                                    "in the same process");
    }
    STFPM_TRY(apply_spec(ctx, spec));
    pthread_mutex_lock(&g_tuning_lock);
    dev_tuning *t = tuning_entry(ctx);
    t->source = src;
    snprintf(t->spec, sizeof t->spec, "%s", spec);
    t->note[0] = 0;
    pthread_mutex_unlock(&g_tuning_lock);
    return STFPM_OK;
}

stfpm_status stfpm_clblast_apply_tuning(stfpm_ctx *ctx) {
    const stfpm_device_info *dev = stfpm_ctx_device(ctx);
    const char *env = stfpm_ctx_get_options(ctx)->clblast_params;
    pthread_mutex_lock(&g_tuning_lock);
    tuning_entry(ctx)->note[0] = 0;
    pthread_mutex_unlock(&g_tuning_lock);
    /* "DEVICE@SPEC": the spec is for the devices whose name contains DEVICE (case-insensitive);
     * other devices go on as if no parameters were given */
    char scoped[2048];
    const char *at = env ? strchr(env, '@') : NULL;
    char skip_note[400] = "";
    if (at) {
        size_t dl = (size_t)(at - env);
        if (dl == 0 || dl >= 256 || !at[1])
            return stfpm_set_error(STFPM_ERR_ARG, "CLBlast parameters \"%s\": expected DEVICE@SPEC with a device name part "
                                   "and a spec", env);
        char want[256];
        memcpy(want, env, dl);
        want[dl] = 0;
        if (stfpm_name_contains(dev->device_name, want)) {
            snprintf(scoped, sizeof scoped, "%s", at + 1);
            env = scoped;
        } else {
            snprintf(skip_note, sizeof skip_note, "clblast_params are for devices named \"%.200s\", not this one", want);
            env = NULL;
        }
    }
    if (env && strcmp(env, "default") == 0) {
        pthread_mutex_lock(&g_tuning_lock);
        use_defaults(tuning_entry(ctx), "none", "clblast_params=default");
        pthread_mutex_unlock(&g_tuning_lock);
        return STFPM_OK;
    }
    if (env && *env) {
        /* checked whole before any part is applied: CLBlast cannot undo an override */
        STFPM_TRY(stfpm_wrap_error(stfpm_clblast_check_spec(env),
                                   "CLBlast parameters (clblast_params option / STFPM_CLBLAST_PARAMS)"));
        return stfpm_wrap_error(stfpm_clblast_apply_spec(ctx, env, "env"), "CLBlast parameters (clblast_params option / STFPM_CLBLAST_PARAMS)");
    }

    char note[768] = {0}, path[1100], spec[1024];
    if (stfpm_clblast_cache_path(dev, stfpm_ctx_cache_dir(ctx), path, sizeof path) == STFPM_OK && stfpm_path_exists(path)) {
        stfpm_status s = stfpm_clblast_read_cache(path, dev, spec, sizeof spec);
        if (s == STFPM_OK && strcmp(spec, "default") == 0) {
            pthread_mutex_lock(&g_tuning_lock);
            use_defaults(tuning_entry(ctx), "cache", path);
            pthread_mutex_unlock(&g_tuning_lock);
            return STFPM_OK;
        } else if (s == STFPM_OK && stfpm_clblast_apply_spec(ctx, spec, "cache") == STFPM_OK) {
            return STFPM_OK;
        } else {
            snprintf(note, sizeof note, "ignored the tuned file: %s", stfpm_last_error());
        }
    }
    const char *builtin = stfpm_clblast_builtin_spec(dev);
    stfpm_status s = STFPM_OK;
    if (builtin) {
        s = stfpm_clblast_apply_spec(ctx, builtin, "builtin");
        if (s != STFPM_OK) {   /* an optimisation only: never make the device unusable */
            snprintf(note, sizeof note, "built-in tuned parameters rejected (%s); using CLBlast's defaults",
                     stfpm_last_error());
            pthread_mutex_lock(&g_tuning_lock);
            use_defaults(tuning_entry(ctx), "none", "built-in parameters rejected");
            pthread_mutex_unlock(&g_tuning_lock);
            s = STFPM_OK;
        }
    } else {
        pthread_mutex_lock(&g_tuning_lock);
        use_defaults(tuning_entry(ctx), "none", "no tuned parameters for this device");
        pthread_mutex_unlock(&g_tuning_lock);
    }
    if (skip_note[0]) {
        size_t l = strlen(note);
        snprintf(note + l, sizeof note - l, "%s%s", l ? "; " : "", skip_note);
    }
    if (note[0]) {
        pthread_mutex_lock(&g_tuning_lock);
        dev_tuning *t = tuning_entry(ctx);
        size_t l = strlen(t->note);
        snprintf(t->note + l, sizeof t->note - l, "%s%s", l ? "; " : "", note);
        pthread_mutex_unlock(&g_tuning_lock);
    }
    return s;
}

const char *stfpm_clblast_tuning_source(stfpm_ctx *ctx) {
    pthread_mutex_lock(&g_tuning_lock);
    const char *s = tuning_entry(ctx)->source;
    pthread_mutex_unlock(&g_tuning_lock);
    return s;
}

const char *stfpm_clblast_tuning_spec(stfpm_ctx *ctx, char *out, size_t n) {
    pthread_mutex_lock(&g_tuning_lock);
    snprintf(out, n, "%s", tuning_entry(ctx)->spec);
    pthread_mutex_unlock(&g_tuning_lock);
    return out;
}

const char *stfpm_clblast_tuning_note(stfpm_ctx *ctx, char *out, size_t n) {
    pthread_mutex_lock(&g_tuning_lock);
    snprintf(out, n, "%s", tuning_entry(ctx)->note);
    pthread_mutex_unlock(&g_tuning_lock);
    return out;
}

int stfpm_clblast_defaults_intact(stfpm_ctx *ctx) {
    pthread_mutex_lock(&g_tuning_lock);
    int r = !tuning_entry(ctx)->overridden;
    pthread_mutex_unlock(&g_tuning_lock);
    return r;
}
