/* Shared helpers for the Check test programs. */
#ifndef STFPM_TESTUTIL_H
#define STFPM_TESTUTIL_H
#include <check.h>
#include <stdint.h>
#include "stfpm/stfpm.h"
#include "stfpm/ops.h"

/* One context per test process (created on first use, device from STFPM_DEVICE). */
stfpm_ctx *tu_ctx(void);
void tu_ctx_release(void);
/* Deterministic pseudo-random floats in [lo, hi). */
void tu_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi);
/* Upload a host array into a new tensor. */
stfpm_tensor tu_tensor(const float *host, int n, int c, int h, int w);
stfpm_tensor tu_tensor_rand(uint64_t seed, int n, int c, int h, int w, float lo, float hi);
/* Download into a malloc'd array. */
float *tu_read(const stfpm_tensor *t);
/* n floats uniform in [lo, hi) in a malloc'd array (tu_fill_uniform). */
float *tu_host_rand(size_t n, uint64_t seed, float lo, float hi);
/* tu_assert_close of a device tensor's contents against want (numel(t) values). */
void tu_assert_tensor_close(const char *what, const stfpm_tensor *t, const float *want, double atol, double rtol);
/* Max |a-b| / (atol + rtol*|b|) over n values: <= 1 means within tolerance.
 * On failure it also reports the worst index through ck_assert_msg with `what`. */
void tu_assert_close(const char *what, const float *got, const float *want, size_t n, double atol, double rtol);
/* Path of a file in the source tree (STFPM_SOURCE_DIR, set by CTest) */
const char *tu_source_path(const char *rel);
/* Path of ../shared (next to the source tree) or NULL when absent. */
const char *tu_shared_dir(void);

/* --- skipped tests ----------------------------------------------------------------------------
 * A test that cannot check anything in this environment (missing data, running as root, ...)
 * must say so instead of passing:
 *   TU_SKIP(fmt, ...)       the whole test is not checked: prints "SKIP: <reason>" to stdout,
 *                           records the skip and returns from the START_TEST body. Use it only
 *                           in the body itself, before anything was asserted.
 *   tu_skip_part(fmt, ...)  one part of a test that otherwise runs is not checked: prints
 *                           "SKIP (part): <reason>", records it, and the test goes on.
 * The records are kept in a MAP_SHARED page that tu_run_suite maps before the runner forks,
 * so they survive Check's one child process per test (CK_FORK=no works as well).
 *
 * tu_run_suite's exit status for main():
 *   1   a test failed or errored;
 *   77  (TU_SKIP_EXIT, registered as CTest's SKIP_RETURN_CODE) no test ran, or every test that
 *       ran was skipped with TU_SKIP: the program checked nothing, CTest reports it "Skipped";
 *   0   otherwise. When only some tests (or parts) were skipped the program did check
 *       something, so it passes; it then ends with a line counting the skipped tests and parts
 *       ("SKIPPED in this program: ...") under the individual SKIP lines, so partial skips stay
 *       visible in the output. */
#define TU_SKIP_EXIT 77
void tu_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tu_skip_part(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define TU_SKIP(...) do { tu_skip(__VA_ARGS__); return; } while (0)
/* Run a suite and return the exit status for main() (above). */
int tu_run_suite(Suite *s);
#define TU_CHECK_STATUS(expr) do { stfpm_status _s = (expr); \
    ck_assert_msg(_s == STFPM_OK, "%s -> %s: %s", #expr, stfpm_status_name(_s), stfpm_last_error()); } while (0)
#endif
