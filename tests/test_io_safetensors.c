/* safetensors reader / writer and the weight dictionary: round trips, the committed fixture,
 * the real teacher file from ../shared, and every class of malformed file (each must fail with
 * STFPM_ERR_FORMAT and a message naming the file and, where there is one, the tensor). */
#include "testutil.h"
#include "stfpm/weights.h"

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* fixture values: base + (start + j - 7) * 0.125 (see tests/ref/gen_pth_fixtures.py) */
static void check_formula(const stfpm_weight *t, double base, int start) {
    size_t n = stfpm_weight_numel(t);
    for (size_t j = 0; j < n; j++) {
        double want = base + ((double)start + (double)j - 7.0) * 0.125;
        ck_assert_msg(t->data[j] == (float)want, "%s[%zu] = %.9g, want %.9g", t->name, j, t->data[j], want);
    }
}

static void check_shape(const stfpm_weight *t, int ndim, const int64_t *shape) {
    ck_assert_msg(t->ndim == ndim, "%s: ndim %d, want %d", t->name, t->ndim, ndim);
    for (int d = 0; d < ndim; d++)
        ck_assert_msg(t->shape[d] == shape[d], "%s: dim %d is %lld, want %lld", t->name, d,
                      (long long)t->shape[d], (long long)shape[d]);
}

static char g_dir[256];

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    if (!g_dir[0]) {
        snprintf(g_dir, sizeof g_dir, "/tmp/stfpm_io_st_XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(g_dir));
    }
    char *b = buf[k++ % 4];
    snprintf(b, sizeof buf[0], "%s/%s", g_dir, name);
    return b;
}

/* "<u64 len><header><data>" in a malloc'd buffer */
static unsigned char *make_st(const char *header, const void *data, size_t data_len, size_t *len) {
    size_t h = strlen(header);
    *len = 8 + h + data_len;
    unsigned char *b = malloc(*len + 1);
    for (int k = 0; k < 8; k++) b[k] = (unsigned char)((uint64_t)h >> (8 * k));
    memcpy(b + 8, header, h);
    if (data_len) memcpy(b + 8 + h, data, data_len);
    return b;
}

/* Parse must fail with FORMAT; the message must contain the label and each of the needles. */
static void expect_fail(const void *buf, size_t len, const char *needle1, const char *needle2) {
    stfpm_weights w;
    stfpm_status s = stfpm_safetensors_read_mem(buf, len, "case.safetensors", &w);
    ck_assert_msg(s == STFPM_ERR_FORMAT, "expected a format error (%s), got %s: %s", needle1 ? needle1 : "",
                  stfpm_status_name(s), stfpm_last_error());
    ck_assert_int_eq(w.count, 0);
    ck_assert_ptr_null(w.items);
    const char *m = stfpm_last_error();
    ck_assert_msg(strstr(m, "case.safetensors"), "message does not name the file: %s", m);
    if (needle1) ck_assert_msg(strstr(m, needle1), "message lacks '%s': %s", needle1, m);
    if (needle2) ck_assert_msg(strstr(m, needle2), "message lacks '%s': %s", needle2, m);
}

static void expect_fail_header(const char *header, size_t data_len, const char *n1, const char *n2) {
    static const unsigned char zeros[64];
    size_t len;
    unsigned char *b = make_st(header, zeros, data_len, &len);
    expect_fail(b, len, n1, n2);
    free(b);
}

/* ------------------------------------------------------------------------------------------ */

START_TEST(test_roundtrip) {
    stfpm_weights w = {0};
    int64_t s4[4] = {2, 3, 1, 2}, s1[1] = {5}, s0[1] = {0};
    float a[12], b[5] = {0.0f, -0.0f, 1e-45f, INFINITY, NAN}, c = 3.25f;
    tu_fill_uniform(a, 12, 7, -2.0f, 2.0f);
    TU_CHECK_STATUS(stfpm_weights_add(&w, "layer1.0.conv1.weight", 4, s4, a));
    TU_CHECK_STATUS(stfpm_weights_add(&w, "odd \"name\"\\ \xc3\xa4\n", 1, s1, b));
    TU_CHECK_STATUS(stfpm_weights_add(&w, "scalar", 0, NULL, &c));
    TU_CHECK_STATUS(stfpm_weights_add(&w, "empty", 1, s0, NULL));
    const char *keys[] = {"epoch", "note"}, *vals[] = {"12", "tab\there \"q\" \\ \xc3\xbc\x01"};
    const char *path = tmp_path("rt.safetensors");
    TU_CHECK_STATUS(stfpm_safetensors_write(path, &w, keys, vals, 2));

    for (int pass = 0; pass < 2; pass++) {
        stfpm_weights r;
        TU_CHECK_STATUS(pass ? stfpm_weights_load(path, &r) : stfpm_safetensors_read(path, &r));
        ck_assert_int_eq(r.count, 4);
        for (int i = 0; i < 4; i++) {
            ck_assert_str_eq(r.items[i].name, w.items[i].name);
            check_shape(&r.items[i], w.items[i].ndim, w.items[i].shape);
            size_t n = stfpm_weight_numel(&w.items[i]);
            ck_assert_msg(memcmp(r.items[i].data, w.items[i].data, n * sizeof(float)) == 0,
                          "%s: values differ bitwise", w.items[i].name);
        }
        ck_assert_ptr_eq(stfpm_weights_find(&r, "scalar"), &r.items[2]);
        ck_assert_ptr_null(stfpm_weights_find(&r, "scala"));
        ck_assert_str_eq(stfpm_weights_meta(&r, "epoch"), "12");
        ck_assert_str_eq(stfpm_weights_meta(&r, "note"), vals[1]);
        ck_assert_ptr_null(stfpm_weights_meta(&r, "absent"));
        ck_assert_int_eq(stfpm_weights_has_nonfinite(&r.items[0]), 0);
        ck_assert_int_eq(stfpm_weights_has_nonfinite(&r.items[1]), 1);
        ck_assert_int_eq(stfpm_weights_has_nonfinite(&r.items[3]), 0);
        stfpm_weights_free(&r);
        ck_assert_int_eq(r.count, 0);
    }
    /* layout: header length a multiple of 8, data right after it */
    void *buf;
    size_t len;
    TU_CHECK_STATUS(stfpm_weights_read_file(path, &buf, &len));
    uint64_t h = 0;
    for (int k = 7; k >= 0; k--) h = (h << 8) | ((unsigned char *)buf)[k];
    ck_assert_int_eq(h % 8, 0);
    ck_assert_int_eq(len, 8 + h + (12 + 5 + 1) * 4);
    free(buf);
    /* rewrite over the existing file: replaced atomically */
    TU_CHECK_STATUS(stfpm_safetensors_write(path, &w, NULL, NULL, 0));
    stfpm_weights r;
    TU_CHECK_STATUS(stfpm_safetensors_read(path, &r));
    ck_assert_int_eq(r.count, 4);
    ck_assert_int_eq(r.n_meta, 0);
    stfpm_weights_free(&r);
    stfpm_weights_free(&w);
    /* an empty dictionary is a valid file */
    TU_CHECK_STATUS(stfpm_safetensors_write(path, &w, NULL, NULL, 0));
    TU_CHECK_STATUS(stfpm_safetensors_read(path, &r));
    ck_assert_int_eq(r.count, 0);
    stfpm_weights_free(&r);
}
END_TEST

START_TEST(test_dictionary) {
    stfpm_weights w = {0};
    int64_t sh[2] = {2, 2}, neg[1] = {-1};
    float x[4] = {1, 2, 3, 4};
    char longname[200];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    /* many entries: the hash index grows */
    for (int i = 0; i < 300; i++) {
        char n[32];
        snprintf(n, sizeof n, "t%d", i);
        x[0] = (float)i;
        TU_CHECK_STATUS(stfpm_weights_add(&w, n, 2, sh, x));
    }
    for (int i = 0; i < 300; i++) {
        char n[32];
        snprintf(n, sizeof n, "t%d", i);
        const stfpm_weight *t = stfpm_weights_find(&w, n);
        ck_assert_ptr_nonnull(t);
        ck_assert_float_eq(t->data[0], (float)i);
    }
    ck_assert_int_eq(stfpm_weights_add(&w, "t7", 2, sh, x), STFPM_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(stfpm_last_error(), "t7"));
    ck_assert_int_eq(stfpm_weights_add(&w, longname, 2, sh, x), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_weights_add(&w, "", 2, sh, x), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_weights_add(&w, "neg", 1, neg, x), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_weights_add(&w, "nine", 9, sh, x), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_weights_add(&w, "nodata", 2, sh, NULL), STFPM_ERR_ARG);
    ck_assert_int_eq(w.count, 300);
    TU_CHECK_STATUS(stfpm_weights_set_meta(&w, "k", "v1"));
    TU_CHECK_STATUS(stfpm_weights_set_meta(&w, "k", "v2"));
    ck_assert_int_eq(w.n_meta, 1);
    ck_assert_str_eq(stfpm_weights_meta(&w, "k"), "v2");
    stfpm_weights_free(&w);
    ck_assert_ptr_null(stfpm_weights_find(&w, "t1"));
}
END_TEST

START_TEST(test_expect) {
    stfpm_weights w = {0};
    int64_t sh[4] = {64, 3, 7, 7}, other[4] = {64, 3, 3, 3}, one[1] = {64};
    float *d;
    TU_CHECK_STATUS(stfpm_weights_add_uninit(&w, "conv1.weight", 4, sh, &d));
    const stfpm_weight *t = NULL;
    TU_CHECK_STATUS(stfpm_weights_expect(&w, "teacher.safetensors", "conv1.weight", 4, sh, &t));
    ck_assert_ptr_eq(t, &w.items[0]);

    ck_assert_int_eq(stfpm_weights_expect(&w, "teacher.safetensors", "bn1.weight", 1, one, &t), STFPM_ERR_FORMAT);
    ck_assert_ptr_null(t);
    const char *m = stfpm_last_error();
    ck_assert_msg(strstr(m, "bn1.weight") && strstr(m, "teacher.safetensors") && strstr(m, "missing") &&
                  strstr(m, "(64,)"), "%s", m);

    ck_assert_int_eq(stfpm_weights_expect(&w, "teacher.safetensors", "conv1.weight", 4, other, &t), STFPM_ERR_FORMAT);
    m = stfpm_last_error();
    ck_assert_msg(strstr(m, "conv1.weight") && strstr(m, "teacher.safetensors") && strstr(m, "(64, 3, 7, 7)") &&
                  strstr(m, "(64, 3, 3, 3)"), "%s", m);
    ck_assert_int_eq(stfpm_weights_expect(&w, "x", "conv1.weight", 1, one, NULL), STFPM_ERR_FORMAT);
    ck_assert_msg(strstr(stfpm_last_error(), "(64,)"), "%s", stfpm_last_error());
    stfpm_weights_free(&w);
}
END_TEST

START_TEST(test_fixture_mixed) {
    stfpm_weights w;
    const char *path = tu_source_path("tests/data/weights/tiny_mixed.safetensors");
    TU_CHECK_STATUS(stfpm_safetensors_read(path, &w));
    ck_assert_int_eq(w.count, 5);                  /* i64 is skipped */
    static const struct { const char *name; int ndim; int64_t shape[2]; double base; } want[] = {
        {"f32", 2, {2, 3}, 0}, {"f16", 1, {4}, 1}, {"bf16", 2, {2, 2}, 2}, {"f64", 1, {3}, 3},
        {"we\"ird/n\xc3\xa4me", 1, {1}, 4},
    };
    for (int i = 0; i < 5; i++) {
        const stfpm_weight *t = stfpm_weights_find(&w, want[i].name);
        ck_assert_msg(t != NULL, "%s missing", want[i].name);
        check_shape(t, want[i].ndim, want[i].shape);
        check_formula(t, want[i].base, 0);
    }
    ck_assert_ptr_null(stfpm_weights_find(&w, "i64"));
    ck_assert_str_eq(stfpm_weights_meta(&w, "format"), "pt");
    ck_assert_str_eq(stfpm_weights_meta(&w, "note"), "tiny \"quoted\" \xc3\xbc\n");
    stfpm_weights_free(&w);
}
END_TEST

START_TEST(test_teacher) {
    const char *shared = tu_shared_dir();
    char path[2304];
    struct stat st;
    if (shared) snprintf(path, sizeof path, "%s/weights/resnet18_imagenet_l3_bnfolded.safetensors", shared);
    if (!shared || stat(path, &st) != 0)
        TU_SKIP("test_teacher because %s is absent", shared ? path : "../shared (the teacher weights)");
    stfpm_weights w;
    TU_CHECK_STATUS(stfpm_weights_load(path, &w));
    ck_assert_int_eq(w.count, 75);
    int64_t conv1[4] = {64, 3, 7, 7}, l3[4] = {256, 256, 3, 3}, bn[1] = {256};
    const stfpm_weight *t;
    TU_CHECK_STATUS(stfpm_weights_expect(&w, path, "conv1.weight", 4, conv1, &t));
    TU_CHECK_STATUS(stfpm_weights_expect(&w, path, "layer3.1.conv2.weight", 4, l3, NULL));
    TU_CHECK_STATUS(stfpm_weights_expect(&w, path, "layer3.1.bn2.running_var", 1, bn, NULL));
    ck_assert_ptr_null(stfpm_weights_find(&w, "fc.weight"));
    for (int i = 0; i < w.count; i++)
        ck_assert_msg(!stfpm_weights_has_nonfinite(&w.items[i]), "%s has NaN/Inf", w.items[i].name);
    /* BN stored as pass-through (README): running_var = 1 - 1e-5 */
    const stfpm_weight *v = stfpm_weights_find(&w, "bn1.running_var");
    ck_assert_ptr_nonnull(v);
    ck_assert_float_eq_tol(v->data[0], 1.0f - 1e-5f, 1e-7f);
    ck_assert_str_eq(stfpm_weights_meta(&w, "arch"), "resnet18");
    double sum = 0;
    for (size_t j = 0; j < stfpm_weight_numel(t); j++) sum += fabs(t->data[j]);
    ck_assert_msg(sum > 1.0, "conv1.weight looks empty (sum |w| = %g)", sum);
    stfpm_weights_free(&w);
}
END_TEST

START_TEST(test_truncated) {
    void *buf;
    size_t len;
    TU_CHECK_STATUS(stfpm_weights_read_file(tu_source_path("tests/data/weights/tiny_mixed.safetensors"), &buf, &len));
    uint64_t h = 0;
    for (int k = 7; k >= 0; k--) h = (h << 8) | ((unsigned char *)buf)[k];
    size_t cuts[] = {0, 1, 7, 8, 9, 8 + h / 2, 8 + h - 1, 8 + h, 8 + h + 1, len - 4, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        stfpm_weights w;
        ck_assert_int_eq(stfpm_safetensors_read_mem(buf, cuts[i], "cut.safetensors", &w), STFPM_ERR_FORMAT);
        ck_assert_msg(strstr(stfpm_last_error(), "cut.safetensors"), "cut %zu: %s", cuts[i], stfpm_last_error());
        ck_assert_int_eq(w.count, 0);
    }
    /* and the file itself is fine */
    stfpm_weights w;
    TU_CHECK_STATUS(stfpm_safetensors_read_mem(buf, len, "ok", &w));
    stfpm_weights_free(&w);
    /* a truncated file on disk */
    const char *path = tmp_path("trunc.safetensors");
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, len - 3, f);
    fclose(f);
    ck_assert_int_eq(stfpm_weights_load(path, &w), STFPM_ERR_FORMAT);
    ck_assert_msg(strstr(stfpm_last_error(), path), "%s", stfpm_last_error());
    free(buf);
    ck_assert_int_eq(stfpm_safetensors_read(tmp_path("missing.safetensors"), &w), STFPM_ERR_IO);
    ck_assert_msg(strstr(stfpm_last_error(), "missing.safetensors"), "%s", stfpm_last_error());
    ck_assert_int_eq(stfpm_weights_load(g_dir, &w), STFPM_ERR_IO);   /* a directory */
    ck_assert_msg(strstr(stfpm_last_error(), "not a regular file"), "%s", stfpm_last_error());
}
END_TEST

START_TEST(test_bad_header_length) {
    unsigned char b[64] = {0};
    memcpy(b + 8, "{}", 2);
    b[0] = 2;
    stfpm_weights w;
    TU_CHECK_STATUS(stfpm_safetensors_read_mem(b, 10, "ok", &w));   /* "{}" is a valid empty file */
    stfpm_weights_free(&w);
    b[0] = 60;                                                          /* > file size - 8 */
    expect_fail(b, 64, "header length 60", "exceeds the file size");
    memset(b, 0, 8);
    b[3] = 0x10;                                                        /* 256 MiB > 100 MB */
    expect_fail(b, 64, "exceeds the limit", NULL);
    memset(b, 0xff, 8);
    expect_fail(b, 64, "header length", NULL);
    memset(b, 0, 8);                                                    /* empty header */
    expect_fail(b, 64, "expected '{'", NULL);
}
END_TEST

START_TEST(test_bad_json) {
    static const char *const bad[] = {
        "{",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}x",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,],\"data_offsets\":[0,4]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1e0],\"data_offsets\":[0,4]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}",
        "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"a\":{\"dtype\":F32,\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"a\":[1]}",
        "{\"a\" {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":01}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":tru}}",
        "{\"a\\q\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"a\\ud800\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"a\\udc00\\ud800\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"a\\u00\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"a\\u0000\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"a\tb\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"a\xc0\xaf\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"__metadata__\":{\"k\":1},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"__metadata__\":[],\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"__metadata__\":{},\"__metadata__\":{},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "[]",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}\x01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) expect_fail_header(bad[i], 4, NULL, NULL);
    /* valid JSON variants of the same file are accepted: whitespace, escapes, ignored keys */
    static const char *const good[] = {
        " {\r\n\t\"a\" : { \"dtype\" : \"F32\" , \"shape\" : [ 1 ] , \"data_offsets\" : [ 0 , 4 ] } }  \n",
        "{\"\\u0061\":{\"x\":{\"y\":[true,false,null,-1.5e+3,\"s\\\"\"]},\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"__metadata__\":{},\"a\":{\"data_offsets\":[0,4],\"shape\":[1],\"dtype\":\"F32\"}}",
    };
    float one = 1.5f;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        size_t len;
        unsigned char *b = make_st(good[i], &one, 4, &len);
        stfpm_weights w;
        stfpm_status s = stfpm_safetensors_read_mem(b, len, "good", &w);
        ck_assert_msg(s == STFPM_OK, "good[%zu]: %s", i, stfpm_last_error());
        ck_assert_int_eq(w.count, 1);
        ck_assert_str_eq(w.items[0].name, "a");
        ck_assert_float_eq(w.items[0].data[0], 1.5f);
        stfpm_weights_free(&w);
        free(b);
    }
    /* surrogate pair escape -> UTF-8 */
    size_t len;
    unsigned char *b = make_st("{\"\\ud83d\\ude00\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", &one, 4, &len);
    stfpm_weights w;
    TU_CHECK_STATUS(stfpm_safetensors_read_mem(b, len, "pair", &w));
    ck_assert_str_eq(w.items[0].name, "\xf0\x9f\x98\x80");
    ck_assert_int_eq(w.items[0].ndim, 0);
    stfpm_weights_free(&w);
    free(b);
}
END_TEST

START_TEST(test_offsets_and_sizes) {
    /* out of range */
    expect_fail_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "tensor w", "outside the data area");
    expect_fail_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 8, "tensor w", "outside");
    expect_fail_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[18446744073709551612,0]}}", 4,
                       "tensor w", NULL);
    /* overlap */
    expect_fail_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap", "tensor b");
    expect_fail_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "overlap", NULL);
    /* gap, trailing bytes */
    expect_fail_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "tensor a", "gap");
    expect_fail_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "cover", NULL);
    /* unknown dtype, shape/size mismatch, overflowing shape */
    expect_fail_header("{\"w\":{\"dtype\":\"F13\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor w", "unknown dtype 'F13'");
    expect_fail_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "tensor w", "12 bytes");
    expect_fail_header("{\"w\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "tensor w", "span 8");
    expect_fail_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,8]}}", 8,
                       "tensor w", "overflow");
    /* duplicate names */
    expect_fail_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                       "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "tensor a", "twice");
    /* zero-size tensors may share an offset; integer dtypes are validated and skipped */
    size_t len;
    float d[3] = {1, 2, 3};
    unsigned char *b = make_st("{\"e\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[4,4]},"
                               "\"f\":{\"dtype\":\"BF16\",\"shape\":[0],\"data_offsets\":[4,4]},"
                               "\"i\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                               "\"g\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", d, 12, &len);
    stfpm_weights w;
    TU_CHECK_STATUS(stfpm_safetensors_read_mem(b, len, "zero", &w));
    ck_assert_int_eq(w.count, 3);
    ck_assert_ptr_null(stfpm_weights_find(&w, "i"));
    ck_assert_float_eq(stfpm_weights_find(&w, "g")->data[1], 3.0f);
    ck_assert_int_eq(stfpm_weight_numel(stfpm_weights_find(&w, "e")), 0);
    stfpm_weights_free(&w);
    free(b);
}
END_TEST

static int count_tmp_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    if (d) closedir(d);
    return n;
}

START_TEST(test_atomic_write) {
    stfpm_weights w = {0};
    int64_t sh[1] = {20000};
    float *x;
    TU_CHECK_STATUS(stfpm_weights_add_uninit(&w, "big", 1, sh, &x));
    tu_fill_uniform(x, 20000, 3, -1, 1);

    /* a directory that does not exist: clean failure naming the path, nothing created */
    ck_assert_int_eq(stfpm_safetensors_write("/nonexistent-stfpm-dir/w.safetensors", &w, NULL, NULL, 0), STFPM_ERR_IO);
    ck_assert_msg(strstr(stfpm_last_error(), "/nonexistent-stfpm-dir/w.safetensors"), "%s", stfpm_last_error());
    struct stat st;
    ck_assert_int_ne(stat("/nonexistent-stfpm-dir", &st), 0);

    /* an existing file survives a write that fails half-way (file size limit -> EFBIG) */
    const char *path = tmp_path("keep.safetensors");
    stfpm_weights small = {0};
    int64_t one[1] = {3};
    float v[3] = {1, 2, 3};
    TU_CHECK_STATUS(stfpm_weights_add(&small, "small", 1, one, v));
    TU_CHECK_STATUS(stfpm_safetensors_write(path, &small, NULL, NULL, 0));
    void *before;
    size_t before_len;
    TU_CHECK_STATUS(stfpm_weights_read_file(path, &before, &before_len));

    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 4096;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    stfpm_status s = stfpm_safetensors_write(path, &w, NULL, NULL, 0);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    ck_assert_msg(s == STFPM_ERR_IO, "expected an I/O error, got %s: %s", stfpm_status_name(s), stfpm_last_error());
    ck_assert_msg(strstr(stfpm_last_error(), "keep.safetensors"), "%s", stfpm_last_error());

    void *after;
    size_t after_len;
    TU_CHECK_STATUS(stfpm_weights_read_file(path, &after, &after_len));
    ck_assert_int_eq(after_len, before_len);
    ck_assert(memcmp(before, after, before_len) == 0);
    ck_assert_int_eq(count_tmp_files(g_dir), 0);   /* the temporary file was removed */
    free(before);
    free(after);

    /* invalid arguments touch nothing */
    const char *k[1] = {NULL}, *val[1] = {"x"};
    ck_assert_int_eq(stfpm_safetensors_write(path, &w, k, val, 1), STFPM_ERR_ARG);
    const char *k2[1] = {"bad\xff"};
    ck_assert_int_eq(stfpm_safetensors_write(path, &w, k2, val, 1), STFPM_ERR_ARG);
    stfpm_weights r;
    TU_CHECK_STATUS(stfpm_safetensors_read(path, &r));
    ck_assert_int_eq(r.count, 1);
    ck_assert_str_eq(r.items[0].name, "small");
    stfpm_weights_free(&r);
    stfpm_weights_free(&small);
    stfpm_weights_free(&w);
}
END_TEST

static double half_ref(unsigned h) {
    int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return sign ? -v : v;
}

START_TEST(test_half_bf16) {
    for (unsigned h = 0; h < 65536; h++) {
        float got = stfpm_half_to_float((uint16_t)h);
        double want = half_ref(h);
        if (isnan(want)) ck_assert_msg(isnan(got), "half 0x%04x -> %g, want NaN", h, got);
        else ck_assert_msg(got == (float)want && !signbit(got) == !signbit(want), "half 0x%04x -> %.9g, want %.9g", h, got, want);
    }
    ck_assert_float_eq(stfpm_bf16_to_float(0x3f80), 1.0f);
    ck_assert_float_eq(stfpm_bf16_to_float(0xc0a0), -5.0f);
    ck_assert(isinf(stfpm_bf16_to_float(0x7f80)));
    ck_assert(isnan(stfpm_bf16_to_float(0x7fc0)));
}
END_TEST

int main(void) {
    Suite *s = suite_create("io_safetensors");
    TCase *tc = tcase_create("safetensors");
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_dictionary);
    tcase_add_test(tc, test_expect);
    tcase_add_test(tc, test_fixture_mixed);
    tcase_add_test(tc, test_teacher);
    tcase_add_test(tc, test_truncated);
    tcase_add_test(tc, test_bad_header_length);
    tcase_add_test(tc, test_bad_json);
    tcase_add_test(tc, test_offsets_and_sizes);
    tcase_add_test(tc, test_atomic_write);
    tcase_add_test(tc, test_half_bf16);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
