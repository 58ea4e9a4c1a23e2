/* Runtime: device selection, program binary cache, build-log reporting, OOM reporting. */
#include "testutil.h"
#include "runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_tmp[256];

static void make_tmp(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/stfpm_rt_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_tmp));
}

START_TEST(test_list_devices) {
    stfpm_device_info d[16];
    int n = 0;
    TU_CHECK_STATUS(stfpm_list_devices(d, 16, &n));
    ck_assert_int_gt(n, 0);
    ck_assert_int_gt((int)strlen(d[0].device_name), 0);
    ck_assert(d[0].global_mem > 0);
}
END_TEST

START_TEST(test_selector_no_match) {
    stfpm_ctx *ctx = NULL;
    stfpm_ctx_options o = {.device = "no-such-device-xyz"};
    stfpm_status s = stfpm_ctx_create(&ctx, &o);
    ck_assert_int_eq(s, STFPM_ERR_NO_DEVICE);
    ck_assert_ptr_nonnull(strstr(stfpm_last_error(), "no-such-device-xyz"));
    o.device = "99";
    ck_assert_int_eq(stfpm_ctx_create(&ctx, &o), STFPM_ERR_NO_DEVICE);
    ck_assert_ptr_nonnull(strstr(stfpm_last_error(), "out of range"));
}
END_TEST

START_TEST(test_binary_cache) {
    make_tmp();
    stfpm_ctx_options o = {.cache_dir = g_tmp};
    for (int round = 0; round < 2; round++) {
        stfpm_ctx *ctx = NULL;
        TU_CHECK_STATUS(stfpm_ctx_create(&ctx, &o));
        stfpm_tensor t;
        TU_CHECK_STATUS(stfpm_tensor_alloc(ctx, &t, 1, 3, 5, 7));
        TU_CHECK_STATUS(stfpm_tensor_fill(ctx, &t, 2.5f));
        float h[105];
        TU_CHECK_STATUS(stfpm_tensor_read(ctx, &t, h));
        for (int i = 0; i < 105; i++) ck_assert_float_eq(h[i], 2.5f);
        stfpm_cache_stats cs = stfpm_ctx_cache_stats(ctx);
        if (round == 0) {
            ck_assert_int_eq(cs.programs_built, 1);
            ck_assert_int_eq(cs.cache_writes, 1);
            ck_assert_int_eq(cs.cache_hits, 0);
        } else {
            ck_assert_int_eq(cs.programs_built, 0);
            ck_assert_int_eq(cs.cache_hits, 1);
        }
        stfpm_tensor_free(ctx, &t);
        stfpm_ctx_free(ctx);
    }
}
END_TEST

START_TEST(test_build_log_reported) {
    make_tmp();
    char path[512];
    snprintf(path, sizeof path, "%s/runtime.cl", g_tmp);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("__kernel void fill_f32(__global float *x, int off, int n, float v) {\n"
          "  x[off + get_global_id(0)] = undefined_symbol_here;\n}\n", f);
    fclose(f);
    stfpm_ctx_options o = {.cache_dir = "", .cl_dir = g_tmp};
    stfpm_ctx *ctx = NULL;
    TU_CHECK_STATUS(stfpm_ctx_create(&ctx, &o));
    stfpm_tensor t;
    TU_CHECK_STATUS(stfpm_tensor_alloc(ctx, &t, 1, 1, 1, 4));
    stfpm_status s = stfpm_tensor_fill(ctx, &t, 1.0f);
    ck_assert_int_eq(s, STFPM_ERR_BUILD);
    ck_assert_msg(strstr(stfpm_last_error(), "undefined_symbol_here") != NULL,
                  "build log should name the bad identifier: %s", stfpm_last_error());
    ck_assert_ptr_nonnull(strstr(stfpm_last_error(), "runtime.cl"));
    stfpm_tensor_free(ctx, &t);
    stfpm_ctx_free(ctx);
}
END_TEST

START_TEST(test_oom_reported) {
    stfpm_ctx *ctx = tu_ctx();
    stfpm_tensor t;
    /* 64 Gi floats: refused before any allocation (kernels index with 32-bit ints). */
    stfpm_status s = stfpm_tensor_alloc(ctx, &t, 65536, 1024, 1024, 1);
    ck_assert_int_eq(s, STFPM_ERR_OOM);
    ck_assert_ptr_nonnull(strstr(stfpm_last_error(), "more than 2^31 - 1"));
    ck_assert_ptr_nonnull(strstr(stfpm_last_error(), "smaller --batch"));
    /* a buffer larger than the device allows in one allocation */
    cl_mem m = NULL;
    size_t big = (size_t)stfpm_ctx_device(ctx)->max_alloc + ((size_t)1 << 20);
    s = stfpm_buffer_alloc(ctx, big, &m);
    ck_assert_int_eq(s, STFPM_ERR_OOM);
    ck_assert_ptr_null(m);
    ck_assert_ptr_nonnull(strstr(stfpm_last_error(), "out of device memory"));
    char want[64];
    snprintf(want, sizeof want, "%.1f MiB", big / 1048576.0);
    ck_assert_msg(strstr(stfpm_last_error(), want) != NULL, "message should give the size %s: %s", want, stfpm_last_error());
    ck_assert_int_eq(stfpm_tensor_alloc(ctx, &t, 0, 1, 1, 1), STFPM_ERR_ARG);
}
END_TEST

START_TEST(test_views_and_copy) {
    stfpm_ctx *ctx = tu_ctx();
    float h[2 * 3 * 4];
    for (int i = 0; i < 24; i++) h[i] = (float)i;
    stfpm_tensor t = tu_tensor(h, 2, 3, 2, 2);
    stfpm_tensor v = stfpm_tensor_view(&t, 1, 1);
    float back[12];
    TU_CHECK_STATUS(stfpm_tensor_read(ctx, &v, back));
    for (int i = 0; i < 12; i++) ck_assert_float_eq(back[i], (float)(12 + i));
    TU_CHECK_STATUS(stfpm_tensor_fill(ctx, &v, -1.0f));
    float all[24];
    TU_CHECK_STATUS(stfpm_tensor_read(ctx, &t, all));
    for (int i = 0; i < 24; i++) ck_assert_float_eq(all[i], i < 12 ? (float)i : -1.0f);
    stfpm_tensor u = tu_tensor(NULL, 1, 3, 2, 2);
    stfpm_tensor v0 = stfpm_tensor_view(&t, 0, 1);
    TU_CHECK_STATUS(stfpm_tensor_copy(ctx, &v0, &u));
    TU_CHECK_STATUS(stfpm_tensor_read(ctx, &u, back));
    for (int i = 0; i < 12; i++) ck_assert_float_eq(back[i], (float)i);
    stfpm_tensor_free(ctx, &t);
    stfpm_tensor_free(ctx, &u);
    ck_assert(stfpm_ctx_mem_in_use(ctx) == 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("runtime");
    TCase *tc = tcase_create("runtime");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_list_devices);
    tcase_add_test(tc, test_selector_no_match);
    tcase_add_test(tc, test_binary_cache);
    tcase_add_test(tc, test_build_log_reported);
    tcase_add_test(tc, test_oom_reported);
    tcase_add_test(tc, test_views_and_copy);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
