/* Context options (host/options.c) and the convolution dispatcher (host/conv_algo.c):
 * - resolution order: the caller's value, else the environment, else the default; bad values
 *   are refused with a message naming the variable;
 * - stfpm_ctx_set_options changes the engine switches of a live context and refuses the fields
 *   fixed at creation;
 * - the dispatcher's rules per shape and pass, by default and under each forced algorithm. */
#include "testutil.h"
#include "gemm.h"
#include "conv_algo.h"
#include "options.h"
#include "runtime.h"

#include <stdlib.h>

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The environments below are built by the test: folders it makes under a fresh temporary
 * directory (TMPDIR, else the system's), so nothing depends on the machine's own HOME. */
static char g_root[1024];
static const char *const k_dirs[] = {"home", "xdg", "cache", "cl"};

static void make_root(void) {
    const char *t = getenv("TMPDIR");
    snprintf(g_root, sizeof g_root, "%s/stfpm-options-XXXXXX", t && *t ? t : P_tmpdir);
    ck_assert_msg(mkdtemp(g_root) != NULL, "mkdtemp %s", g_root);
    for (size_t i = 0; i < sizeof k_dirs / sizeof k_dirs[0]; i++) {
        char d[1100];
        snprintf(d, sizeof d, "%s/%s", g_root, k_dirs[i]);
        ck_assert_int_eq(mkdir(d, 0755), 0);
    }
}

static void remove_root(void) {
    for (size_t i = 0; i < sizeof k_dirs / sizeof k_dirs[0]; i++) {
        char d[1100];
        snprintf(d, sizeof d, "%s/%s", g_root, k_dirs[i]);
        rmdir(d);
    }
    rmdir(g_root);
}

/* "NAME=<root>/<sub>" into buf; returns buf. */
static const char *var(char *buf, size_t n, const char *name, const char *sub) {
    snprintf(buf, n, "%s=%s/%s", name, g_root, sub);
    return buf;
}

/* "<root>/<sub><tail>" */
static const char *under(char *buf, size_t n, const char *sub, const char *tail) {
    snprintf(buf, n, "%s/%s%s", g_root, sub, tail);
    return buf;
}

START_TEST(test_defaults) {
    make_root();
    char home[1200], xdg_v[1200], want[1200];
    const char *env[] = {var(home, sizeof home, "HOME", "home"), NULL};
    stfpm_ctx_options o = {0};
    TU_CHECK_STATUS(stfpm_ctx_options_resolve_env(&o, env));
    ck_assert_str_eq(o.device, "");
    ck_assert_int_eq(o.profile, STFPM_SWITCH_OFF);
    ck_assert_str_eq(o.cache_dir, under(want, sizeof want, "home", "/.cache/stfpm"));
    ck_assert_str_eq(o.cl_dir, "");
    ck_assert_str_eq(o.clblast_params, "");
    ck_assert_int_eq(o.conv_algo, STFPM_CONV_ALGO_AUTO);
    ck_assert_int_eq(o.fold_bn, STFPM_SWITCH_ON);
    ck_assert_int_eq(o.fused_map, STFPM_SWITCH_ON);
    ck_assert_uint_eq(o.conv_chunk_bytes, 0);
    ck_assert_uint_eq(o.wino_chunk_bytes, 0);
    ck_assert_int_eq(o.wino_min_tiles, STFPM_WINO_MIN_TILES_DEFAULT);
    ck_assert_uint_eq(o.device_mem_limit, 0);
    ck_assert_int_eq(o.gemm, STFPM_GEMM_AUTO);

    const char *xdg[] = {home, var(xdg_v, sizeof xdg_v, "XDG_CACHE_HOME", "xdg"), NULL};
    stfpm_ctx_options p = {0};
    TU_CHECK_STATUS(stfpm_ctx_options_resolve_env(&p, xdg));
    ck_assert_str_eq(p.cache_dir, under(want, sizeof want, "xdg", "/stfpm"));
    const char *off[] = {home, "STFPM_CACHE_DIR=", NULL};   /* set and empty: no cache */
    stfpm_ctx_options q = {0};
    TU_CHECK_STATUS(stfpm_ctx_options_resolve_env(&q, off));
    ck_assert_str_eq(q.cache_dir, "");
    remove_root();
}
END_TEST

START_TEST(test_environment_then_caller) {
    make_root();
    char cache_v[1200], cl_v[1200], want[1200];
    const char *env[] = {"STFPM_DEVICE=pthread", "STFPM_PROFILE=1", var(cache_v, sizeof cache_v, "STFPM_CACHE_DIR", "cache"),
                         var(cl_v, sizeof cl_v, "STFPM_CL_DIR", "cl"),
                         "STFPM_CLBLAST_PARAMS=default", "STFPM_DEVICE_MEM_LIMIT=123456",
                         "STFPM_CONV_ALGO=winograd2", "STFPM_NO_FOLD=1", "STFPM_FUSED_MAP=0",
                         "STFPM_CONV_CHUNK_BYTES=4096", "STFPM_WINO_CHUNK_BYTES=8192",
                         "STFPM_WINO_MIN_TILES=7", "STFPM_KERNELS=gpu", "STFPM_MAX_WORK_GROUP=64",
                         "STFPM_SUB_BUFFER_ALIGN=512", "STFPM_GEMM=clblast", NULL};
    stfpm_ctx_options o = {0};
    TU_CHECK_STATUS(stfpm_ctx_options_resolve_env(&o, env));
    ck_assert_str_eq(o.device, "pthread");
    ck_assert_int_eq(o.profile, STFPM_SWITCH_ON);
    ck_assert_str_eq(o.cache_dir, under(want, sizeof want, "cache", ""));
    ck_assert_str_eq(o.cl_dir, under(want, sizeof want, "cl", ""));
    ck_assert_str_eq(o.clblast_params, "default");
    ck_assert_uint_eq(o.device_mem_limit, 123456);
    ck_assert_int_eq(o.conv_algo, STFPM_CONV_ALGO_WINOGRAD2);
    ck_assert_int_eq(o.fold_bn, STFPM_SWITCH_OFF);
    ck_assert_int_eq(o.fused_map, STFPM_SWITCH_OFF);
    ck_assert_uint_eq(o.conv_chunk_bytes, 4096);
    ck_assert_uint_eq(o.wino_chunk_bytes, 8192);
    ck_assert_int_eq(o.wino_min_tiles, 7);
    ck_assert_int_eq(o.kernels, STFPM_KERNELS_GPU);
    ck_assert_uint_eq(o.max_work_group, 64);
    ck_assert_uint_eq(o.sub_buffer_align, 512);
    ck_assert_int_eq(o.gemm, STFPM_GEMM_CLBLAST);

    /* what the caller set wins over the environment */
    stfpm_ctx_options c = {.device = "0", .cache_dir = "", .conv_algo = STFPM_CONV_ALGO_IM2COL,
                           .fold_bn = STFPM_SWITCH_ON, .fused_map = STFPM_SWITCH_ON, .conv_chunk_bytes = 1,
                           .wino_min_tiles = 100, .gemm = STFPM_GEMM_OWN};
    TU_CHECK_STATUS(stfpm_ctx_options_resolve_env(&c, env));
    ck_assert_str_eq(c.device, "0");
    ck_assert_str_eq(c.cache_dir, "");
    ck_assert_int_eq(c.conv_algo, STFPM_CONV_ALGO_IM2COL);
    ck_assert_int_eq(c.fold_bn, STFPM_SWITCH_ON);
    ck_assert_int_eq(c.fused_map, STFPM_SWITCH_ON);
    ck_assert_uint_eq(c.conv_chunk_bytes, 1);
    ck_assert_int_eq(c.wino_min_tiles, 100);
    ck_assert_int_eq(c.gemm, STFPM_GEMM_OWN);
    ck_assert_str_eq(c.cl_dir, under(want, sizeof want, "cl", ""));   /* not set by the caller: the environment's */

    /* switches off in the environment only when set to something other than 0 */
    const char *zero[] = {"STFPM_NO_FOLD=0", "STFPM_PROFILE=0", "STFPM_FUSED_MAP=1", NULL};
    stfpm_ctx_options z = {0};
    TU_CHECK_STATUS(stfpm_ctx_options_resolve_env(&z, zero));
    ck_assert_int_eq(z.fold_bn, STFPM_SWITCH_ON);
    ck_assert_int_eq(z.profile, STFPM_SWITCH_OFF);
    ck_assert_int_eq(z.fused_map, STFPM_SWITCH_ON);
    remove_root();
}
END_TEST

START_TEST(test_bad_values_named) {
    static const struct { const char *var; } bad[] = {
        {"STFPM_CONV_ALGO=fast"}, {"STFPM_CONV_CHUNK_BYTES=12k"}, {"STFPM_WINO_CHUNK_BYTES=0"},
        {"STFPM_WINO_MIN_TILES=-3"}, {"STFPM_DEVICE_MEM_LIMIT=lots"}, {"STFPM_KERNELS=fpga"},
        {"STFPM_SUB_BUFFER_ALIGN=500"}, {"STFPM_MAX_WORK_GROUP=none"},
        {"STFPM_GEMM=mkl"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *env[] = {bad[i].var, NULL};
        stfpm_ctx_options o = {0};
        stfpm_status s = stfpm_ctx_options_resolve_env(&o, env);
        ck_assert_msg(s == STFPM_ERR_ARG, "%s accepted", bad[i].var);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(strchr(bad[i].var, '=') - bad[i].var), bad[i].var);
        ck_assert_msg(strstr(stfpm_last_error(), name), "%s: message \"%s\" does not name the variable", bad[i].var,
                      stfpm_last_error());
    }
}
END_TEST

START_TEST(test_set_options_live) {
    stfpm_ctx *ctx = tu_ctx();
    const stfpm_ctx_options before = *stfpm_ctx_get_options(ctx);
    stfpm_ctx_options o = before;
    o.conv_algo = STFPM_CONV_ALGO_IM2COL;
    o.fold_bn = STFPM_SWITCH_OFF;
    o.wino_min_tiles = 5;
    o.gemm = STFPM_GEMM_CLBLAST;
    TU_CHECK_STATUS(stfpm_ctx_set_options(ctx, &o));
    ck_assert_int_eq(stfpm_gemm_own(ctx), 0);
    o.gemm = STFPM_GEMM_OWN;
    TU_CHECK_STATUS(stfpm_ctx_set_options(ctx, &o));
    ck_assert_int_eq(stfpm_gemm_own(ctx), 1);
    ck_assert_int_eq(stfpm_ctx_get_options(ctx)->conv_algo, STFPM_CONV_ALGO_IM2COL);
    ck_assert_int_eq(stfpm_ctx_get_options(ctx)->fold_bn, STFPM_SWITCH_OFF);
    ck_assert_int_eq(stfpm_ctx_get_options(ctx)->wino_min_tiles, 5);
    /* fields fixed at creation are refused, and nothing changes */
    stfpm_ctx_options d = *stfpm_ctx_get_options(ctx);
    d.device = "another device";
    d.conv_algo = STFPM_CONV_ALGO_WINOGRAD;
    ck_assert_int_eq(stfpm_ctx_set_options(ctx, &d), STFPM_ERR_ARG);
    ck_assert_msg(strstr(stfpm_last_error(), "fixed"), "%s", stfpm_last_error());
    ck_assert_int_eq(stfpm_ctx_get_options(ctx)->conv_algo, STFPM_CONV_ALGO_IM2COL);
    /* unset switches go back to their defaults */
    stfpm_ctx_options u = {0};
    TU_CHECK_STATUS(stfpm_ctx_set_options(ctx, &u));
    ck_assert_int_eq(stfpm_ctx_get_options(ctx)->conv_algo, STFPM_CONV_ALGO_AUTO);
    ck_assert_int_eq(stfpm_ctx_get_options(ctx)->fold_bn, STFPM_SWITCH_ON);
    ck_assert_int_eq(stfpm_ctx_get_options(ctx)->wino_min_tiles, STFPM_WINO_MIN_TILES_DEFAULT);
    ck_assert_int_eq(stfpm_ctx_get_options(ctx)->gemm, STFPM_GEMM_AUTO);
    ck_assert_int_eq(stfpm_gemm_own(ctx), !stfpm_gpu_kernels(ctx));
    ck_assert_str_eq(stfpm_ctx_get_options(ctx)->device, before.device);
    TU_CHECK_STATUS(stfpm_ctx_set_options(ctx, &before));
}
END_TEST

/* The dispatcher's table: ResNet-18's convolutions at 256 x 256 and edge cases. */
START_TEST(test_conv_dispatch) {
    stfpm_ctx *ctx = tu_ctx();
    const stfpm_ctx_options before = *stfpm_ctx_get_options(ctx);
    enum { F = STFPM_CONV_FORWARD, D = STFPM_CONV_BACKWARD_DATA, W = STFPM_CONV_BACKWARD_WEIGHT, P = STFPM_CONV_PREPARE };
    enum { I = STFPM_CONV_IM2COL, PW = STFPM_CONV_POINTWISE, W4 = STFPM_CONV_WINOGRAD4, W2 = STFPM_CONV_WINOGRAD2 };
    static const struct {
        const char *name;
        stfpm_conv_algo_choice forced;
        stfpm_conv_shape s;
        int want[4];   /* forward, backward-data, backward-weight, prepare */
    } k[] = {
        {"conv1 7x7/2", STFPM_CONV_ALGO_AUTO, {8, 3, 64, 7, 7, 2, 3, 128, 128}, {I, I, I, I}},
        {"layer1 3x3 batch 8", STFPM_CONV_ALGO_AUTO, {8, 64, 64, 3, 3, 1, 1, 64, 64}, {W4, W4, W4, W4}},
        {"layer2.0 3x3/2", STFPM_CONV_ALGO_AUTO, {8, 64, 128, 3, 3, 2, 1, 32, 32}, {I, I, I, I}},
        {"layer2.0 1x1/2 downsample", STFPM_CONV_ALGO_AUTO, {8, 64, 128, 1, 1, 2, 0, 32, 32}, {I, I, I, I}},
        {"1x1 stride 1", STFPM_CONV_ALGO_AUTO, {3, 64, 128, 1, 1, 1, 0, 9, 9}, {PW, PW, I, I}},
        /* layer3 at batch 1: 16 4x4 tiles (< 48), 64 2x2 tiles: F(2x2) forward, im2col backward */
        {"layer3 3x3 batch 1", STFPM_CONV_ALGO_AUTO, {1, 256, 256, 3, 3, 1, 1, 16, 16}, {W2, I, I, W4}},
        {"layer3 3x3 batch 3", STFPM_CONV_ALGO_AUTO, {3, 256, 256, 3, 3, 1, 1, 16, 16}, {W4, W4, W4, W4}},
        {"few tiles of any size", STFPM_CONV_ALGO_AUTO, {1, 64, 64, 3, 3, 1, 1, 5, 5}, {I, I, I, W4}},
        {"16 channels", STFPM_CONV_ALGO_AUTO, {8, 16, 64, 3, 3, 1, 1, 64, 64}, {I, I, I, I}},
        {"forced im2col", STFPM_CONV_ALGO_IM2COL, {8, 64, 64, 3, 3, 1, 1, 64, 64}, {I, I, I, I}},
        {"forced winograd, 3 channels", STFPM_CONV_ALGO_WINOGRAD, {1, 3, 5, 3, 3, 1, 0, 3, 3}, {W4, W4, W4, W4}},
        {"forced winograd2", STFPM_CONV_ALGO_WINOGRAD2, {8, 64, 64, 3, 3, 1, 1, 64, 64}, {W2, I, I, I}},
        {"forced winograd, stride 2", STFPM_CONV_ALGO_WINOGRAD, {8, 64, 128, 3, 3, 2, 1, 32, 32}, {I, I, I, I}},
        {"forced winograd, 1x1", STFPM_CONV_ALGO_WINOGRAD, {3, 64, 128, 1, 1, 1, 0, 9, 9}, {PW, PW, I, I}},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        stfpm_ctx_options o = before;
        o.conv_algo = k[i].forced;
        TU_CHECK_STATUS(stfpm_ctx_set_options(ctx, &o));
        for (int p = 0; p < 4; p++) {
            stfpm_conv_shape s = k[i].s;
            if (p == P) s.n = -1;
            stfpm_conv_algo got = stfpm_conv_choose(ctx, &s, (stfpm_conv_pass)p);
            ck_assert_msg((int)got == k[i].want[p], "%s, pass %d: %s, want %s", k[i].name, p,
                          stfpm_conv_algo_label(got), stfpm_conv_algo_label((stfpm_conv_algo)k[i].want[p]));
        }
    }
    /* the tile threshold is an option */
    stfpm_ctx_options o = before;
    o.wino_min_tiles = 16;
    TU_CHECK_STATUS(stfpm_ctx_set_options(ctx, &o));
    const stfpm_conv_shape l3 = {1, 256, 256, 3, 3, 1, 1, 16, 16};
    ck_assert_int_eq(stfpm_conv_choose(ctx, &l3, STFPM_CONV_FORWARD), STFPM_CONV_WINOGRAD4);
    TU_CHECK_STATUS(stfpm_ctx_set_options(ctx, &before));
    ck_assert_uint_eq(stfpm_conv_row_stride(1), 64);
    ck_assert_uint_eq(stfpm_conv_row_stride(448), 448);
    ck_assert_uint_eq(stfpm_conv_row_stride(512), 576);
    ck_assert_uint_eq(stfpm_conv_row_stride(1000), 1088);
    ck_assert_uint_eq(stfpm_conv_row_stride(1025), 1088);
}
END_TEST

/* The GPU variant's launches: explicit local sizes within a small work-group limit, global
 * sizes rounded up (kernels bounds-check); a caller's local size over the limit is refused. */
START_TEST(test_gpu_launch_limits) {
    stfpm_ctx *ctx = NULL;
    stfpm_ctx_options o = {.kernels = STFPM_KERNELS_GPU, .max_work_group = 64, .sub_buffer_align = 512};
    TU_CHECK_STATUS(stfpm_ctx_create(&ctx, &o));
    ck_assert_int_eq(stfpm_ctx_get_options(ctx)->kernels, STFPM_KERNELS_GPU);
    ck_assert(stfpm_gpu_kernels(ctx));
    ck_assert_uint_ge(stfpm_sub_buffer_align(ctx), 512);
    ck_assert_uint_le(stfpm_kernel_wg_limit(ctx, "runtime", "fill_f32"), 64);
    static const int sizes[] = {1, 63, 64, 65, 1000, 4099};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        stfpm_tensor t;
        TU_CHECK_STATUS(stfpm_tensor_alloc(ctx, &t, 1, 1, 1, sizes[i] + 7));
        TU_CHECK_STATUS(stfpm_tensor_fill(ctx, &t, -1.0f));
        stfpm_tensor v = t;
        v.w = sizes[i];
        v.off = 3;   /* a view: 3 in front, 4 behind stay -1 */
        TU_CHECK_STATUS(stfpm_tensor_fill(ctx, &v, 2.5f));
        float *h = malloc(sizeof(float) * (size_t)(sizes[i] + 7));
        TU_CHECK_STATUS(stfpm_tensor_read(ctx, &t, h));
        for (int j = 0; j < sizes[i] + 7; j++)
            ck_assert_msg(h[j] == (j >= 3 && j < 3 + sizes[i] ? 2.5f : -1.0f), "fill of %d: [%d] = %g", sizes[i], j, h[j]);
        free(h);
        stfpm_tensor_free(ctx, &t);
    }
    /* uploads through the two pinned staging buffers: each upload's data is its own even when
     * the host array changes right after the call, views land at their offset, sizes grow */
    {
        enum { N = 5000 };
        stfpm_tensor u[3];
        float *h = malloc(sizeof(float) * N), *back = malloc(sizeof(float) * N);
        for (int r = 0; r < 3; r++) TU_CHECK_STATUS(stfpm_tensor_alloc(ctx, &u[r], 1, 1, 1, N));
        for (int round = 0; round < 4; round++) {
            for (int r = 0; r < 3; r++) {
                stfpm_tensor v = u[r];
                v.w = N - 10 * r - round;   /* another size each time */
                for (int j = 0; j < v.w; j++) h[j] = (float)(round * 100000 + r * 10000 + j);
                TU_CHECK_STATUS(stfpm_tensor_upload(ctx, &v, h));
                for (int j = 0; j < N; j++) h[j] = -7.0f;   /* overwritten at once */
            }
            for (int r = 0; r < 3; r++) {
                TU_CHECK_STATUS(stfpm_tensor_read(ctx, &u[r], back));
                int w = N - 10 * r - round;
                for (int j = 0; j < w; j++)
                    ck_assert_msg(back[j] == (float)(round * 100000 + r * 10000 + j), "upload %d/%d [%d] = %g", round, r,
                                  j, back[j]);
            }
        }
        for (int r = 0; r < 3; r++) stfpm_tensor_free(ctx, &u[r]);
        free(h);
        free(back);
    }
    stfpm_tensor t;
    TU_CHECK_STATUS(stfpm_tensor_alloc(ctx, &t, 1, 1, 1, 256));
    cl_int off = 0, n = 256;
    float val = 1.0f;
    stfpm_karg a[] = {KARG(t.buf), KARG(off), KARG(n), KARG(val)};
    size_t g = 256, l = 128;
    ck_assert_int_eq(stfpm_enqueue(ctx, "runtime", "fill_f32", 1, &g, &l, KARGS(a)), STFPM_ERR_CL);
    ck_assert_msg(strstr(stfpm_last_error(), "limit is 64"), "%s", stfpm_last_error());
    l = 64;
    TU_CHECK_STATUS(stfpm_enqueue(ctx, "runtime", "fill_f32", 1, &g, &l, KARGS(a)));
    stfpm_tensor_free(ctx, &t);
    stfpm_ctx_free(ctx);

    stfpm_device_info sim = {0}, real = {0};
    snprintf(sim.platform_name, sizeof sim.platform_name, "Oclgrind");
    snprintf(real.platform_name, sizeof real.platform_name, "Portable Computing Language");
    ck_assert(stfpm_device_is_simulator(&sim));
    ck_assert(!stfpm_device_is_simulator(&real));
    ck_assert_int_eq(stfpm_kernels_for_device(STFPM_KERNELS_AUTO, CL_DEVICE_TYPE_GPU), STFPM_KERNELS_GPU);
    ck_assert_int_eq(stfpm_kernels_for_device(STFPM_KERNELS_AUTO, CL_DEVICE_TYPE_CPU), STFPM_KERNELS_CPU);
    ck_assert_int_eq(stfpm_kernels_for_device(STFPM_KERNELS_CPU, CL_DEVICE_TYPE_GPU), STFPM_KERNELS_CPU);
}
END_TEST

int main(void) {
    Suite *s = suite_create("options");
    TCase *tc = tcase_create("options");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_environment_then_caller);
    tcase_add_test(tc, test_bad_values_named);
    tcase_add_test(tc, test_set_options_live);
    tcase_add_test(tc, test_conv_dispatch);
    tcase_add_test(tc, test_gpu_launch_limits);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
