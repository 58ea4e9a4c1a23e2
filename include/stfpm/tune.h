/* CLBlast GEMM tuning for the device in use (`stfpm tune`), and which CLBlast parameters a
 * context runs with.
 *
 * CLBlast's SGEMM has two code paths: an "indirect" kernel (Xgemm: tuned tile parameters,
 * operands padded / transposed by helper kernels when they do not fit its layout) and a
 * "direct" kernel (XgemmDirect) for GEMMs with M*N*K < XGEMM_MIN_INDIRECT_SIZE^3. Both come
 * from CLBlast's database, which has no entry for many devices (CPU runtimes such as PoCL, new
 * GPUs), and then runs at a fraction of the device's speed. stfpm_tune times Xgemm parameter
 * sets and the threshold at this project's real GEMM shapes (host/conv.c's ResNet-18 conv GEMMs)
 * and stores the fastest in the cache directory; every context created later on the same
 * device and driver applies it (host/clblast_params.c, stfpm_clblast_apply_tuning), in this order:
 *   1. STFPM_CLBLAST_PARAMS ("default" = CLBlast's own parameters, else a spec as below;
 *      "DEVICE@SPEC" only for devices whose name contains DEVICE, case-insensitive),
 *   2. the tuned file <cache dir>/clblast-<hash of platform, device name, driver>.txt,
 *   3. the built-in table in host/clblast_params.c (devices measured by the developers),
 *   4. CLBlast's defaults.
 * A spec is "Kernel:NAME=V,NAME=V;Kernel2:..." e.g.
 * "Xgemm:GEMMK=1,KREG=1,...,VWN=1;GemmRoutine:XGEMM_MIN_INDIRECT_SIZE=32", or "default".
 * The cache directory is STFPM_CACHE_DIR, else $XDG_CACHE_HOME/stfpm, else ~/.cache/stfpm
 * (the program binary cache's; STFPM_CACHE_DIR="" disables both).
 *
 * CLBlast keeps parameters per device for the whole process and cannot restore its defaults
 * once they were overridden: a later context on the same device with STFPM_CLBLAST_PARAMS=
 * default keeps the earlier parameters (stfpm_clblast_tuning_note says so).
 *
 * Usage: stfpm_tune_options_default(&o), stfpm_tune(ctx, &o, progress, user, result) with a
 * heap-allocated stfpm_tune_result, then the rows and the winner in *result (`stfpm tune` prints
 * them); the winner is stored and applied to later contexts without further calls.
 * stfpm_clblast_tuning_source tells which parameter set a context runs with. */
#ifndef STFPM_TUNE_H
#define STFPM_TUNE_H

#include "stfpm/stfpm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* --- parameters in effect ----------------------------------------------------------------- */

/* Where the CLBlast parameters of ctx's device come from: "env", "cache", "builtin", "none"
 * (CLBlast's defaults) or "tune" (set by stfpm_tune, not stored). The strings are static. */
const char *stfpm_clblast_tuning_source(stfpm_ctx *ctx);
/* The spec in effect ("" for none / "default"), and a note: why a tuned file was ignored, or
 * that defaults were requested but an earlier override stays in effect ("" when nothing to say).
 * Copied into out (always NUL-terminated); returns out. */
const char *stfpm_clblast_tuning_spec(stfpm_ctx *ctx, char *out, size_t n);
const char *stfpm_clblast_tuning_note(stfpm_ctx *ctx, char *out, size_t n);
/* 1 when no CLBlast parameter of ctx's device has been overridden in this process. */
int stfpm_clblast_defaults_intact(stfpm_ctx *ctx);

/* Path of the tuned-parameter file for a device: <cache_dir>/clblast-<16 hex digits>.txt;
 * cache_dir NULL = the default cache directory. STFPM_ERR_IO when caching is disabled. */
stfpm_status stfpm_clblast_cache_path(const stfpm_device_info *dev, const char *cache_dir, char *out,
                                      size_t n);
/* Read and check a tuned-parameter file written for dev: the "# device:" / "# driver:" lines
 * must match and the spec must pass stfpm_clblast_check_spec. STFPM_ERR_IO when absent or
 * unreadable, STFPM_ERR_FORMAT when invalid (the message says why). */
stfpm_status stfpm_clblast_read_cache(const char *path, const stfpm_device_info *dev, char *spec,
                                      size_t n);
/* Write a tuned-parameter file (atomically). comment: extra "# " lines (may be NULL). */
stfpm_status stfpm_clblast_write_cache(const char *path, const stfpm_device_info *dev, const char *spec,
                                       const char *comment);
/* Check a spec for a tuned file: "default", or Xgemm (all 16 parameters, CLBlast's
 * constraints) and / or GemmRoutine (XGEMM_MIN_INDIRECT_SIZE) sets. STFPM_ERR_FORMAT + why. */
stfpm_status stfpm_clblast_check_spec(const char *spec);
/* Apply a spec to ctx's device now and record source ("env", "cache", "builtin", "tune"; NULL =
 * "tune") as where its parameters come from. "default" succeeds only while no parameter of the
 * device was overridden in this process (STFPM_ERR_ARG otherwise). */
stfpm_status stfpm_clblast_apply_spec(stfpm_ctx *ctx, const char *spec, const char *source);
/* The built-in table's spec for this device, or NULL. */
const char *stfpm_clblast_builtin_spec(const stfpm_device_info *dev);

/* --- the tuner ---------------------------------------------------------------------------- */

#define STFPM_TUNE_MAX_SHAPES 8
#define STFPM_TUNE_MAX_ROWS 64

typedef struct stfpm_tune_shape {
    char name[24];         /* e.g. "layer1 fwd" */
    int trans_a, trans_b;  /* row-major C = op(A) * op(B), as stfpm_gemm */
    size_t m, n, k;
    double weight;         /* calls per training step: the total is sum(weight * ms); 0 = 1 */
} stfpm_tune_shape;

typedef struct stfpm_tune_options {
    int quick;              /* 8 candidates, shapes at 128x128 input, 3 timed runs */
    double max_seconds;     /* budget for the candidate search; 0 = 600. Baselines always run */
    int max_candidates;     /* 0 = 40 (quick: 8): the best-scored sets of the built-in grid */
    int runs;               /* timed runs per shape after one warm-up (median); 0 = 5 (quick: 3) */
    int cpu_time;           /* rank by the process's CPU time instead of wall-clock time (for CPU
                               devices on a machine shared with other jobs) */
    int no_save;            /* write neither the tuned file nor the crash journal (sets listed
                               in it are still skipped; the winner is still applied to ctx) */
    const char *cache_dir;  /* NULL = the default cache directory */
    /* for tests and experiments: */
    const stfpm_tune_shape *shapes; int n_shapes;        /* NULL = the ResNet-18 conv GEMMs */
    const char *const *candidates; int n_candidates;     /* specs to try instead of the grid */
    int no_baselines;       /* skip CLBlast-default / direct / built-in / cached rows */
} stfpm_tune_options;

typedef enum stfpm_tune_row_status {
    STFPM_TUNE_OK = 0,
    STFPM_TUNE_REJECTED,    /* CLBlastOverrideParameters refused the set */
    STFPM_TUNE_FAILED,      /* a GEMM returned an error (build failure, out of resources) */
    STFPM_TUNE_WRONG,       /* results differ from the CPU reference */
    STFPM_TUNE_CRASHED,     /* listed in <tuned file>.bad: crashed (or was interrupted in) an
                               earlier `stfpm tune` run; not retried until the file is deleted */
    STFPM_TUNE_UNAVAILABLE  /* CLBlast-default row after an earlier override in this process */
} stfpm_tune_row_status;

typedef struct stfpm_tune_row {
    char label[24];         /* "CLBlast default", "direct", "built-in", "cached", "#N" */
    char desc[96];          /* short parameter summary */
    char spec[512];         /* what would be stored: "default" or a spec incl. the best threshold */
    stfpm_tune_row_status status;
    char why[256];          /* for failures */
    double ms[STFPM_TUNE_MAX_SHAPES];  /* median per shape, this row's own path (indirect for
                                          Xgemm candidates) */
    double total_ms;        /* sum over shapes with the best threshold (direct where faster) */
    int threshold;          /* that XGEMM_MIN_INDIRECT_SIZE (0: not applicable) */
    double max_err;         /* worst verification error / tolerance (<= 1 passes) */
} stfpm_tune_row;

typedef struct stfpm_tune_result {
    char device[128], driver[128];
    int n_shapes;
    stfpm_tune_shape shapes[STFPM_TUNE_MAX_SHAPES];
    int images_per_chunk, input_size, runs, cpu_time;
    int n_rows;
    stfpm_tune_row rows[STFPM_TUNE_MAX_ROWS];
    int best;               /* row index of the winner, -1 if none */
    int row_default, row_direct, row_builtin, row_cached;  /* -1 when absent */
    int candidates_planned, candidates_run, budget_hit;
    char spec[512];         /* winner's spec */
    char cache_path[1024];
    int saved;
    char note[512];         /* e.g. "CLBlast defaults won: ..." */
    double elapsed_s;
} stfpm_tune_result;

typedef enum {
    STFPM_TUNE_PHASE_START,
    STFPM_TUNE_PHASE_ROW,      /* a row was measured */
    STFPM_TUNE_PHASE_CONFIRM,  /* a row within 1.5x of the fastest, or the built-in / cached row,
                                  was measured again (best_ms: its total before) */
    STFPM_TUNE_PHASE_DONE
} stfpm_tune_phase;

typedef struct stfpm_tune_progress {
    stfpm_tune_phase phase;
    int row, rows_planned;         /* row index just measured, rows planned */
    const stfpm_tune_row *r;       /* that row */
    double best_ms;                /* best total so far (PHASE_CONFIRM: the row's first total) */
    const char *best_label;
    double elapsed_s, budget_s;
} stfpm_tune_progress;

typedef void (*stfpm_tune_progress_fn)(void *user, const stfpm_tune_progress *p);

void stfpm_tune_options_default(stfpm_tune_options *o);
/* The built-in shape list (ResNet-18 conv GEMMs at 256x256 input, or 128x128 with quick) for
 * ctx's device; returns the count (<= STFPM_TUNE_MAX_SHAPES) and images per chunk. */
int stfpm_tune_default_shapes(stfpm_ctx *ctx, int quick, stfpm_tune_shape *out, int *images_per_chunk,
                              int *input_size);
/* Search, apply the winner to ctx's device and (unless no_save) store it. result may be large:
 * allocate it on the heap. Progress may be NULL. */
stfpm_status stfpm_tune(stfpm_ctx *ctx, const stfpm_tune_options *opts, stfpm_tune_progress_fn progress,
                        void *user, stfpm_tune_result *result);

#ifdef __cplusplus
}
#endif
#endif
