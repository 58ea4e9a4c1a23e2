#include "testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

static stfpm_ctx *g_ctx;


stfpm_ctx *tu_ctx(void) {
    if (!g_ctx) {
        stfpm_status s = stfpm_ctx_create(&g_ctx, NULL);
        ck_assert_msg(s == STFPM_OK, "creating the OpenCL context: %s", stfpm_last_error());
        /* Check forks per test: release (and drain the queue) before the child exits, or PoCL
         * can crash at exit with work still queued. */
        static int registered;
        if (!registered) { atexit(tu_ctx_release); registered = 1; }
    }
    return g_ctx;
}

void tu_ctx_release(void) {
    stfpm_ctx_free(g_ctx);
    g_ctx = NULL;
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void tu_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi) {
    uint64_t s = seed * 7919 + 1;
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)((splitmix(&s) >> 40) / 16777216.0);
}

stfpm_tensor tu_tensor(const float *host, int n, int c, int h, int w) {
    stfpm_tensor t;
    TU_CHECK_STATUS(stfpm_tensor_alloc(tu_ctx(), &t, n, c, h, w));
    if (host) TU_CHECK_STATUS(stfpm_tensor_write(tu_ctx(), &t, host));
    else TU_CHECK_STATUS(stfpm_tensor_fill(tu_ctx(), &t, 0.0f));
    return t;
}

stfpm_tensor tu_tensor_rand(uint64_t seed, int n, int c, int h, int w, float lo, float hi) {
    size_t cnt = (size_t)n * c * h * w;
    float *x = malloc(cnt * sizeof *x);
    tu_fill_uniform(x, cnt, seed, lo, hi);
    stfpm_tensor t = tu_tensor(x, n, c, h, w);
    free(x);
    return t;
}

float *tu_read(const stfpm_tensor *t) {
    float *x = malloc(stfpm_tensor_numel(t) * sizeof *x);
    ck_assert_ptr_nonnull(x);
    TU_CHECK_STATUS(stfpm_tensor_read(tu_ctx(), t, x));
    return x;
}

void tu_assert_close(const char *what, const float *got, const float *want, size_t n, double atol, double rtol) {
    double worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]) / (atol + rtol * fabs((double)want[i]));
        if (!(err <= worst)) { worst = err; wi = i; }   /* NaN counts as worst */
        if (isnan(got[i]) != isnan(want[i])) { worst = INFINITY; wi = i; break; }
    }
    ck_assert_msg(worst <= 1.0, "%s: element %zu got %.8g want %.8g (atol %.1e rtol %.1e, %zu elements)",
                  what, wi, n ? got[wi] : 0.0, n ? want[wi] : 0.0, atol, rtol, n);
}

const char *tu_source_path(const char *rel) {
    static char buf[8][2048];
    static int k;
    const char *root = getenv("STFPM_SOURCE_DIR");
    char *b = buf[k++ % 8];
    snprintf(b, sizeof buf[0], "%s/%s", root ? root : ".", rel);
    return b;
}

const char *tu_shared_dir(void) {
    static char buf[2048];
    const char *e = getenv("STFPM_SHARED_DIR");
    if (e) snprintf(buf, sizeof buf, "%s", e);
    else snprintf(buf, sizeof buf, "%s/../shared", getenv("STFPM_SOURCE_DIR") ? getenv("STFPM_SOURCE_DIR") : ".");
    struct stat st;
    return stat(buf, &st) == 0 && S_ISDIR(st.st_mode) ? buf : NULL;
}

/* Skip records, shared between the runner and its forked test processes. */
typedef struct {
    int tests;   /* tests that called tu_skip */
    int parts;   /* tu_skip_part calls */
} tu_skips;
static tu_skips *g_skips;

static tu_skips *skips(void) {
    if (!g_skips) {
        void *p = mmap(NULL, sizeof(tu_skips), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {   /* also called outside a test, where ck_assert cannot report */
            perror("mmap of the skip counters");
            abort();
        }
        g_skips = p;
    }
    return g_skips;
}

static void skip_line(const char *prefix, const char *fmt, va_list ap) {
    printf("%s", prefix);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
}

void tu_skip(const char *fmt, ...) {
    __atomic_add_fetch(&skips()->tests, 1, __ATOMIC_SEQ_CST);
    va_list ap;
    va_start(ap, fmt);
    skip_line("SKIP: ", fmt, ap);
    va_end(ap);
}

void tu_skip_part(const char *fmt, ...) {
    __atomic_add_fetch(&skips()->parts, 1, __ATOMIC_SEQ_CST);
    va_list ap;
    va_start(ap, fmt);
    skip_line("SKIP (part): ", fmt, ap);
    va_end(ap);
}

int tu_run_suite(Suite *s) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* forked test children may _exit: keep their printed lines */
    tu_skips *sk = skips();           /* mapped here, before the runner forks */
    sk->tests = sk->parts = 0;
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr), ran = srunner_ntests_run(sr);
    srunner_free(sr);
    tu_ctx_release();
    int skipped = __atomic_load_n(&sk->tests, __ATOMIC_SEQ_CST), parts = __atomic_load_n(&sk->parts, __ATOMIC_SEQ_CST);
    if (failed) return EXIT_FAILURE;
    if (ran == 0) {
        printf("SKIPPED: no test ran\n");
        return TU_SKIP_EXIT;
    }
    if (skipped >= ran) {
        printf("SKIPPED: every test that ran (%d) was skipped (reasons above): nothing was checked\n", ran);
        return TU_SKIP_EXIT;
    }
    if (skipped || parts)
        printf("SKIPPED in this program: %d of %d tests, %d part(s) of tests that ran (reasons above); "
               "the rest ran and passed\n", skipped, ran, parts);
    return EXIT_SUCCESS;
}

float *tu_host_rand(size_t n, uint64_t seed, float lo, float hi) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    ck_assert_ptr_nonnull(x);
    tu_fill_uniform(x, n, seed, lo, hi);
    return x;
}

void tu_assert_tensor_close(const char *what, const stfpm_tensor *t, const float *want, double atol, double rtol) {
    float *got = tu_read(t);
    tu_assert_close(what, got, want, stfpm_tensor_numel(t), atol, rtol);
    free(got);
}
