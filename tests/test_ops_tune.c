/* `stfpm tune` (host/tune.c) and the choice of CLBlast parameters per context (host/gemm.c):
 * a tiny tuning run writes the tuned file, a new context applies it, STFPM_CLBLAST_PARAMS wins
 * over it, corrupt files are ignored (and reported), and GEMMs stay correct under every set.
 *
 * Every test runs in its own process (CK_FORK forced): CLBlast keeps overridden parameters per
 * device for the whole process and cannot restore its defaults, so "no override" can only be
 * observed in a fresh process. The tests share one temporary STFPM_CACHE_DIR, made in main().
 *
 * GEMM check: row-major C = alpha op(A) B + beta C with A, B, C uniform in [-1, 1), against a
 * double-precision CPU GEMM; |got - want| <= 1e-4 + 2e-7 K + 1e-4 |want| (float32 summation of
 * K products, as tests/test_ops_conv.c). A wrong tile / padding gives O(1) errors. */
#include "testutil.h"
#include "fsutil.h"
#include "runtime.h"
#include "gemm.h"
#include "stfpm/tune.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_dir[256];

/* Valid on every OpenCL device: 64 threads, no local memory. */
static const char *K_SET_A =
    "Xgemm:GEMMK=0,KREG=1,KWG=16,KWI=2,MDIMA=8,MDIMC=8,MWG=32,NDIMB=8,NDIMC=8,NWG=32,SA=0,SB=0,STRM=0,"
    "STRN=0,VWM=2,VWN=2";
/* The built-in PoCL set (GEMMK=1, row-major operands, K not padded to 16). */
static const char *K_SET_B =
    "Xgemm:GEMMK=1,KREG=1,KWG=1,KWI=1,MDIMA=4,MDIMC=4,MWG=64,NDIMB=4,NDIMC=4,NWG=64,SA=0,SB=0,STRM=0,"
    "STRN=0,VWM=16,VWN=1";
/* Valid but never measured: the journal lists it as having crashed a run. */
static const char *K_SET_C =
    "Xgemm:GEMMK=0,KREG=1,KWG=16,KWI=2,MDIMA=8,MDIMC=8,MWG=32,NDIMB=8,NDIMC=8,NWG=32,SA=0,SB=0,STRM=0,"
    "STRN=0,VWM=1,VWN=2";

/* A context with the test's cache directory and clblast_params (NULL: none given). */
static stfpm_ctx *new_ctx_params(const char *params) {
    stfpm_ctx *ctx = NULL;
    stfpm_ctx_options o = {.cache_dir = g_dir, .clblast_params = params};
    stfpm_status s = stfpm_ctx_create(&ctx, &o);
    ck_assert_msg(s == STFPM_OK, "creating the OpenCL context: %s", stfpm_last_error());
    return ctx;
}

static void cache_path(stfpm_ctx *ctx, char *out, size_t n) {
    TU_CHECK_STATUS(stfpm_clblast_cache_path(stfpm_ctx_device(ctx), stfpm_ctx_cache_dir(ctx), out, n));
    ck_assert_msg(strncmp(out, g_dir, strlen(g_dir)) == 0, "cache path %s should be under the cache directory %s", out,
                  g_dir);
}

static void write_file(const char *path, const char *text, size_t len) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    ck_assert_uint_eq(fwrite(text, 1, len, f), len);
    fclose(f);
}

/* One GEMM on the device with the parameters in effect vs the CPU. */
static void check_gemm(stfpm_ctx *ctx, int ta, size_t m, size_t n, size_t k, float alpha, float beta, const char *what) {
    size_t na = m * k, nb = k * n, nc = m * n;
    float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b), *c = malloc(nc * sizeof *c);
    float *want = malloc(nc * sizeof *want), *got = malloc(nc * sizeof *got);
    ck_assert(a && b && c && want && got);
    tu_fill_uniform(a, na, m + 1, -1, 1);
    tu_fill_uniform(b, nb, n + 2, -1, 1);
    tu_fill_uniform(c, nc, k + 3, -1, 1);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double acc = 0;
            for (size_t l = 0; l < k; l++) acc += (double)(ta ? a[l * m + i] : a[i * k + l]) * b[l * n + j];
            want[i * n + j] = (float)(alpha * acc + beta * c[i * n + j]);
        }
    cl_mem da, db, dc;
    TU_CHECK_STATUS(stfpm_buffer_alloc(ctx, na * 4, &da));
    TU_CHECK_STATUS(stfpm_buffer_alloc(ctx, nb * 4, &db));
    TU_CHECK_STATUS(stfpm_buffer_alloc(ctx, nc * 4, &dc));
    cl_command_queue q = stfpm_ctx_queue(ctx);
    ck_assert_int_eq(clEnqueueWriteBuffer(q, da, CL_TRUE, 0, na * 4, a, 0, NULL, NULL), CL_SUCCESS);
    ck_assert_int_eq(clEnqueueWriteBuffer(q, db, CL_TRUE, 0, nb * 4, b, 0, NULL, NULL), CL_SUCCESS);
    ck_assert_int_eq(clEnqueueWriteBuffer(q, dc, CL_TRUE, 0, nc * 4, c, 0, NULL, NULL), CL_SUCCESS);
    TU_CHECK_STATUS(stfpm_gemm(ctx, ta, 0, m, n, k, alpha, da, 0, ta ? m : k, db, 0, n, beta, dc, 0, n));
    ck_assert_int_eq(clEnqueueReadBuffer(q, dc, CL_TRUE, 0, nc * 4, got, 0, NULL, NULL), CL_SUCCESS);
    char label[160];
    snprintf(label, sizeof label, "%s: %s %zux%zux%zu", what, ta ? "TN" : "NN", m, n, k);
    tu_assert_close(label, got, want, nc, 1e-4 + 2e-7 * (double)k, 1e-4);
    stfpm_buffer_free(ctx, da, na * 4);
    stfpm_buffer_free(ctx, db, nb * 4);
    stfpm_buffer_free(ctx, dc, nc * 4);
    free(a); free(b); free(c); free(want); free(got);
}

/* Both transposes conv.c uses, above the indirect threshold 32^3, K not a multiple of 16. */
static void check_gemms(stfpm_ctx *ctx, const char *what) {
    check_gemm(ctx, 0, 70, 100, 37, 1.0f, 0.0f, what);
    check_gemm(ctx, 1, 67, 130, 45, 0.75f, 0.5f, what);
}

static const char *note_of(stfpm_ctx *ctx) {
    static char buf[1024];
    return stfpm_clblast_tuning_note(ctx, buf, sizeof buf);
}

static const char *spec_of(stfpm_ctx *ctx) {
    static char buf[1024];
    return stfpm_clblast_tuning_spec(ctx, buf, sizeof buf);
}

/* ------------------------------------------------------------------------------------------ */

START_TEST(test_check_spec) {
    char b[1024];
    TU_CHECK_STATUS(stfpm_clblast_check_spec("default"));
    TU_CHECK_STATUS(stfpm_clblast_check_spec(K_SET_A));
    TU_CHECK_STATUS(stfpm_clblast_check_spec(K_SET_B));
    snprintf(b, sizeof b, "%s;GemmRoutine:XGEMM_MIN_INDIRECT_SIZE=32", K_SET_B);
    TU_CHECK_STATUS(stfpm_clblast_check_spec(b));
    TU_CHECK_STATUS(stfpm_clblast_check_spec("GemmRoutine:XGEMM_MIN_INDIRECT_SIZE=512"));
    static const struct { const char *spec, *why; } bad[] = {
        {"", "empty"},
        {"Xgemm:MWG=64", "missing"},
        {"Xgemm:GEMMK=1,KREG=1,KWG=1,KWI=1,MDIMA=8,MDIMC=8,MWG=64,NDIMB=4,NDIMC=4,NWG=64,SA=0,SB=0,STRM=0,"
         "STRN=0,VWM=16,VWN=1", "multiple of MDIMC*VWM"},                        /* 64 % (8*16) */
        {"Xgemm:GEMMK=1,KREG=1,KWG=1,KWI=1,MDIMA=4,MDIMC=4,MWG=64,NDIMB=4,NDIMC=4,NWG=64,SA=0,SB=0,STRM=0,"
         "STRN=0,VWM=16,VWN=2", "KREG"},                                          /* KREG % VWN */
        {"Xgemm:GEMMK=0,KREG=1,KWG=4,KWI=2,MDIMA=8,MDIMC=8,MWG=32,NDIMB=8,NDIMC=8,NWG=32,SA=0,SB=0,STRM=0,"
         "STRN=0,VWM=2,VWN=2", "KWG a multiple"},                                 /* KWG % NDIMC */
        {"Xgemm:GEMMK=2,KREG=1,KWG=1,KWI=1,MDIMA=4,MDIMC=4,MWG=64,NDIMB=4,NDIMC=4,NWG=64,SA=0,SB=0,STRM=0,"
         "STRN=0,VWM=16,VWN=1", "GEMMK"},
        {"Xgemm:GEMMK=1,GEMMK=1,KWG=1,KWI=1,MDIMA=4,MDIMC=4,MWG=64,NDIMB=4,NDIMC=4,NWG=64,SA=0,SB=0,STRM=0,"
         "STRN=0,VWM=16,VWN=1", "twice"},
        {"Xgemm:GEMMK=1,KREG=1,KWG=1,KWI=1,MDIMA=4,MDIMC=4,MWG=6x4,NDIMB=4,NDIMC=4,NWG=64,SA=0,SB=0,STRM=0,"
         "STRN=0,VWM=16,VWN=1", "not a number"},
        {"XgemmDirect:WGD=32", "unexpected CLBlast kernel"},
        {"GemmRoutine:XGEMM_MIN_INDIRECT_SIZE=0", "1..100000"},
        {"GemmRoutine:XGEMM_MIN_INDIRECT_SIZE=-5", "NAME=NUMBER"},
        {"GemmRoutine:XGEMM_MIN_INDIRECT_SIZE=32;GemmRoutine:XGEMM_MIN_INDIRECT_SIZE=64", "twice"},
        {"Xgemm", "expected Kernel"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        stfpm_status s = stfpm_clblast_check_spec(bad[i].spec);
        ck_assert_msg(s == STFPM_ERR_FORMAT, "spec \"%s\" should be rejected", bad[i].spec);
        ck_assert_msg(strstr(stfpm_last_error(), bad[i].why), "spec \"%s\": message \"%s\" should mention \"%s\"",
                      bad[i].spec, stfpm_last_error(), bad[i].why);
    }
}
END_TEST

/* A tiny tuning run: 2 shapes, 2 measured sets, one invalid, one listed as crashed. */
START_TEST(test_tune_writes_cache) {
       /* no override before tuning */
    stfpm_ctx *ctx = new_ctx_params("default");
    ck_assert_str_eq(stfpm_clblast_tuning_source(ctx), "none");
    ck_assert_int_eq(stfpm_clblast_defaults_intact(ctx), 1);
    char path[1200], bad[1200], listed[1200];
    cache_path(ctx, path, sizeof path);
    unlink(path);
    /* a previous run died while measuring set C (as applied: with the indirect threshold 32) */
    snprintf(bad, sizeof bad, "%.*s.bad", (int)(strlen(path) - 4), path);
    snprintf(listed, sizeof listed, "%s;GemmRoutine:XGEMM_MIN_INDIRECT_SIZE=32\n", K_SET_C);
    write_file(bad, listed, strlen(listed));

    stfpm_tune_shape shapes[2] = {{"fwd", 0, 0, 64, 512, 147, 1}, {"bwd-d", 1, 0, 144, 320, 64, 2}};
    const char *cands[4] = {K_SET_A, K_SET_B, "Xgemm:MWG=64,NWG=64", K_SET_C};
    stfpm_tune_options o;
    stfpm_tune_options_default(&o);
    o.shapes = shapes;
    o.n_shapes = 2;
    o.candidates = cands;
    o.n_candidates = 4;
    o.runs = 1;
    o.no_baselines = 1;
    stfpm_tune_result *r = calloc(1, sizeof *r);
    ck_assert_ptr_nonnull(r);
    double t0 = stfpm_now();
    TU_CHECK_STATUS(stfpm_tune(ctx, &o, NULL, NULL, r));
    printf("tune: %d rows in %.1f s, winner %s (%.2f ms): %s\n", r->n_rows, stfpm_now() - t0,
           r->rows[r->best].label, r->rows[r->best].total_ms, r->spec);
    ck_assert_int_eq(r->n_rows, 4);
    ck_assert_int_eq(r->rows[0].status, STFPM_TUNE_OK);
    ck_assert_int_eq(r->rows[1].status, STFPM_TUNE_OK);
    ck_assert_msg(r->rows[2].status == STFPM_TUNE_REJECTED && strstr(r->rows[2].why, "missing"),
                  "invalid set: status %d (%s)", r->rows[2].status, r->rows[2].why);
    ck_assert_msg(r->rows[3].status == STFPM_TUNE_CRASHED && strstr(r->rows[3].why, bad),
                  "listed set: status %d (%s)", r->rows[3].status, r->rows[3].why);
    ck_assert_msg(strstr(r->note, "1 set(s) listed in") && strstr(r->note, bad), "note: %s", r->note);
    /* sets A and B were listed while measured and cut off again: the file holds set C only */
    char *after = NULL;
    TU_CHECK_STATUS(stfpm_read_text(bad, &after, NULL));
    ck_assert_str_eq(after, listed);
    free(after);
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(r->rows[i].max_err <= 1.0, "row %d verification error %g", i, r->rows[i].max_err);
        ck_assert_msg(r->rows[i].ms[0] > 0 && r->rows[i].ms[1] > 0 && r->rows[i].total_ms > 0, "row %d times", i);
        ck_assert_int_eq(r->rows[i].threshold, 32);   /* no direct row: indirect for all */
    }
    ck_assert_msg(r->best == 0 || r->best == 1, "best %d", r->best);
    ck_assert_msg(strstr(r->spec, r->best == 0 ? K_SET_A : K_SET_B) == r->spec &&
                      strstr(r->spec, ";GemmRoutine:XGEMM_MIN_INDIRECT_SIZE=32"), "winner spec %s", r->spec);
    ck_assert_int_eq(r->saved, 1);
    ck_assert_str_eq(r->cache_path, path);

    char spec[1024];
    TU_CHECK_STATUS(stfpm_clblast_read_cache(path, stfpm_ctx_device(ctx), spec, sizeof spec));
    ck_assert_str_eq(spec, r->spec);
    /* the winner is in effect in this process, and GEMMs are right with it */
    ck_assert_str_eq(stfpm_clblast_tuning_source(ctx), "cache");
    ck_assert_str_eq(spec_of(ctx), r->spec);
    check_gemms(ctx, "after tuning");
    free(r);
    stfpm_ctx_free(ctx);
}
END_TEST

/* A new context applies the tuned file (here written directly with set A). */
START_TEST(test_new_context_uses_cache) {
    stfpm_ctx *ctx = new_ctx_params(NULL);
    char path[1200], spec[1100];
    cache_path(ctx, path, sizeof path);
    snprintf(spec, sizeof spec, "%s;GemmRoutine:XGEMM_MIN_INDIRECT_SIZE=40", K_SET_A);
    TU_CHECK_STATUS(stfpm_clblast_write_cache(path, stfpm_ctx_device(ctx), spec, "written by test_ops_tune\nline 2"));
    stfpm_ctx_free(ctx);

    ctx = new_ctx_params(NULL);
    ck_assert_str_eq(stfpm_clblast_tuning_source(ctx), "cache");
    ck_assert_str_eq(spec_of(ctx), spec);
    ck_assert_str_eq(note_of(ctx), "");
    check_gemms(ctx, "tuned file with set A");
    stfpm_ctx_free(ctx);
}
END_TEST

/* STFPM_CLBLAST_PARAMS beats the tuned file: "default" (nothing applied) and a spec ("env"). */
START_TEST(test_env_overrides_cache) {
    stfpm_ctx *ctx = new_ctx_params("default");
    char path[1200], spec[1100];
    cache_path(ctx, path, sizeof path);
    snprintf(spec, sizeof spec, "%s;GemmRoutine:XGEMM_MIN_INDIRECT_SIZE=32", K_SET_A);
    TU_CHECK_STATUS(stfpm_clblast_write_cache(path, stfpm_ctx_device(ctx), spec, NULL));
    stfpm_ctx_free(ctx);

    ctx = new_ctx_params("default");   /* the file exists now, the variable still says default */
    ck_assert_str_eq(stfpm_clblast_tuning_source(ctx), "none");
    ck_assert_str_eq(spec_of(ctx), "");
    ck_assert_int_eq(stfpm_clblast_defaults_intact(ctx), 1);
    check_gemms(ctx, "CLBlast defaults");
    stfpm_ctx_free(ctx);

    ctx = new_ctx_params(K_SET_B);
    ck_assert_str_eq(stfpm_clblast_tuning_source(ctx), "env");
    ck_assert_str_eq(spec_of(ctx), K_SET_B);
    check_gemms(ctx, "STFPM_CLBLAST_PARAMS set B");
    stfpm_ctx_free(ctx);

    /* "default" after an override in the same process: CLBlast cannot go back; reported */
    ctx = new_ctx_params("default");
    ck_assert_str_eq(stfpm_clblast_tuning_source(ctx), "env");
    ck_assert_msg(strstr(note_of(ctx), "cannot drop"), "note: %s", note_of(ctx));
    stfpm_ctx_free(ctx);

    ctx = new_ctx_params(NULL);
    ck_assert_str_eq(stfpm_clblast_tuning_source(ctx), "cache");
    ck_assert_str_eq(spec_of(ctx), spec);
    stfpm_ctx_free(ctx);
}
END_TEST

/* Damaged or foreign tuned files are ignored (no crash), reported in the note, and the
 * built-in table (or CLBlast's defaults) is used instead; GEMMs stay right. */
/* "DEVICE@SPEC" applies the spec only to devices whose name contains DEVICE. */
START_TEST(test_params_scoped_to_device) {
    char scoped[1200];
    stfpm_ctx *ctx = new_ctx_params(NULL);
    const stfpm_device_info *dev = stfpm_ctx_device(ctx);
    char part[8];
    snprintf(part, sizeof part, "%.5s", dev->device_name);   /* a piece of this device's name */
    for (char *p = part; *p; p++) *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);   /* any case */
    stfpm_ctx_free(ctx);

    snprintf(scoped, sizeof scoped, "no-such-device-name@%s", K_SET_B);
    ctx = new_ctx_params(scoped);   /* another device's parameters: ignored here, said so */
    ck_assert_str_ne(stfpm_clblast_tuning_source(ctx), "env");
    ck_assert_msg(strstr(note_of(ctx), "no-such-device-name"), "note: %s", note_of(ctx));
    check_gemms(ctx, "parameters scoped to another device");
    stfpm_ctx_free(ctx);

    snprintf(scoped, sizeof scoped, "%s@%s", part, K_SET_B);
    ctx = new_ctx_params(scoped);
    ck_assert_str_eq(stfpm_clblast_tuning_source(ctx), "env");
    ck_assert_str_eq(spec_of(ctx), K_SET_B);
    check_gemms(ctx, "parameters scoped to this device");
    stfpm_ctx_free(ctx);

    stfpm_ctx *bad = NULL;
    stfpm_ctx_options o = {.cache_dir = g_dir, .clblast_params = "@Xgemm:GEMMK=0"};
    ck_assert_int_eq(stfpm_ctx_create(&bad, &o), STFPM_ERR_ARG);
    ck_assert_msg(strstr(stfpm_last_error(), "DEVICE@SPEC"), "%s", stfpm_last_error());
}
END_TEST

START_TEST(test_corrupt_cache_ignored) {
    stfpm_ctx *ctx = new_ctx_params(NULL);
    char path[1200];
    cache_path(ctx, path, sizeof path);
    const stfpm_device_info *dev = stfpm_ctx_device(ctx);
    const char *fallback = stfpm_clblast_builtin_spec(dev) ? "builtin" : "none";
    char head[600], texts[7][2048];
    snprintf(head, sizeof head, "# platform: %s\n# device: %s\n# driver: %s\n", dev->platform_name, dev->device_name,
             dev->driver_version);
    snprintf(texts[0], sizeof texts[0], "%sXgemm:MWG=banana\n", head);                       /* garbage */
    snprintf(texts[1], sizeof texts[1], "# device: another GPU\n# driver: %s\n%s\n", dev->driver_version, K_SET_A);
    snprintf(texts[2], sizeof texts[2], "%s%s\n%s\n", head, K_SET_A, K_SET_B);               /* two lines */
    snprintf(texts[3], sizeof texts[3], "%s%.60s\n", head, K_SET_A);                        /* truncated */
    snprintf(texts[4], sizeof texts[4], "%s", "");                                          /* empty */
    snprintf(texts[5], sizeof texts[5], "%sXgemm:GEMMK=1,KREG=1,KWG=1,KWI=1,MDIMA=4,MDIMC=4,MWG=64,NDIMB=4,"
             "NDIMC=4,NWG=64,SA=0,SB=0,STRM=0,STRN=0,VWM=32,VWN=1\n", head);                 /* VWM 32 */
    size_t lens[8];
    for (int i = 0; i < 6; i++) lens[i] = strlen(texts[i]);
    static const unsigned char junk[] = {0x7f, 'E', 'L', 'F', 0, 0, 1, 2, 0xff, 0xfe, '\n', 0, 'X'};
    memcpy(texts[6], junk, sizeof junk);                                                   /* binary */
    lens[6] = sizeof junk;
    stfpm_ctx_free(ctx);
    for (int i = 0; i < 7; i++) {
        write_file(path, texts[i], lens[i]);
        ctx = new_ctx_params(NULL);
        ck_assert_msg(strcmp(stfpm_clblast_tuning_source(ctx), fallback) == 0, "file %d: source %s, expected %s", i,
                      stfpm_clblast_tuning_source(ctx), fallback);
        ck_assert_msg(strstr(note_of(ctx), "ignored the tuned file") && strstr(note_of(ctx), path),
                      "file %d: note \"%s\" should say the file was ignored", i, note_of(ctx));
        if (i == 0) check_gemms(ctx, "after a corrupt tuned file");
        stfpm_ctx_free(ctx);
    }
    /* a file that is too large */
    size_t big = 40000;
    char *huge = malloc(big);
    ck_assert_ptr_nonnull(huge);
    memset(huge, '#', big);
    write_file(path, huge, big);
    free(huge);
    ctx = new_ctx_params(NULL);
    ck_assert_str_eq(stfpm_clblast_tuning_source(ctx), fallback);
    ck_assert_msg(strstr(note_of(ctx), "larger than"), "note: %s", note_of(ctx));
    stfpm_ctx_free(ctx);
    unlink(path);
}
END_TEST

static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

int main(void) {
    /* one process per test (see the top of the file); the OpenCL runtime is not touched here */
    setenv("CK_FORK", "yes", 1);
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/stfpm-tune-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) { perror("mkdtemp"); return EXIT_FAILURE; }
    Suite *s = suite_create("tune");
    TCase *tc = tcase_create("tune");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_check_spec);
    tcase_add_test(tc, test_params_scoped_to_device);
    tcase_add_test(tc, test_tune_writes_cache);
    tcase_add_test(tc, test_new_context_uses_cache);
    tcase_add_test(tc, test_env_overrides_cache);
    tcase_add_test(tc, test_corrupt_cache_ignored);
    suite_add_tcase(s, tc);
    int rc = tu_run_suite(s);
    remove_dir(g_dir);
    return rc;
}
