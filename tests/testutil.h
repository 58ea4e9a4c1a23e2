/* Shared helpers for the Check test programs. */
#ifndef STFPM_TESTUTIL_H
#define STFPM_TESTUTIL_H
#include <check.h>
#include <stdint.h>
#include "stfpm/stfpm.h"
#include "stfpm/ops.h"

/* One context per test process (created on first use, device from STFPM_DEVICE). */
stfpm_ctx *tu_ctx(void);
/* setenv(name, value) (value NULL: unsetenv) after the shared context's queue has drained. */
void tu_setenv(const char *name, const char *value);
void tu_ctx_release(void);
/* Deterministic pseudo-random floats in [lo, hi). */
void tu_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi);
/* Upload a host array into a new tensor. */
stfpm_tensor tu_tensor(const float *host, int n, int c, int h, int w);
stfpm_tensor tu_tensor_rand(uint64_t seed, int n, int c, int h, int w, float lo, float hi);
/* Download into a malloc'd array. */
float *tu_read(const stfpm_tensor *t);
/* Max |a-b| / (atol + rtol*|b|) over n values: <= 1 means within tolerance.
 * On failure it also reports the worst index through ck_assert_msg with `what`. */
void tu_assert_close(const char *what, const float *got, const float *want, size_t n, double atol, double rtol);
/* Path of a file in the source tree (STFPM_SOURCE_DIR, set by CTest) */
const char *tu_source_path(const char *rel);
/* Path of ../shared (next to the source tree) or NULL when absent. */
const char *tu_shared_dir(void);
/* Run a suite and return the exit status for main(). */
int tu_run_suite(Suite *s);
#define TU_CHECK_STATUS(expr) do { stfpm_status _s = (expr); \
    ck_assert_msg(_s == STFPM_OK, "%s -> %s: %s", #expr, stfpm_status_name(_s), stfpm_last_error()); } while (0)
#endif
