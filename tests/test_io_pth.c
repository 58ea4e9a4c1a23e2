/* PyTorch torch.save reader: the committed fixtures (zip, legacy, protocol 4, nested
 * checkpoints, float16 / bfloat16 / float64, views into shared storages), refusal of globals
 * that only a hostile file names, non-contiguous tensors, truncated and corrupted files, and
 * hand-assembled legacy pickles (big-endian data, malformed opcodes). */
#include "testutil.h"
#include "stfpm/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* values: base + (start + j - 7) * 0.125, see tests/ref/gen_pth_fixtures.py */
typedef struct expect_t {
    const char *name;
    int ndim;
    int64_t shape[4];
    double base;
    int start;
} expect_t;

/* tiny_state_dict(): Conv2d(2,3,3) + BatchNorm2d(3) + views + scalar; num_batches_tracked
 * (int64) is skipped */
static const expect_t tiny[] = {
    {"0.weight", 4, {3, 2, 3, 3}, 0, 0},   {"0.bias", 1, {3}, 1, 0},
    {"1.weight", 1, {3}, 2, 0},            {"1.bias", 1, {3}, 3, 0},
    {"1.running_mean", 1, {3}, 4, 0},      {"1.running_var", 1, {3}, 5, 0},
    {"extra.view", 1, {6}, 6, 5},          {"extra.shared", 2, {2, 2}, 6, 12},
    {"extra.scalar", 0, {0}, 2.5, 7},
};

static const expect_t dtypes[] = {
    {"f32", 2, {2, 3}, 0, 0}, {"f16", 1, {4}, 1, 0}, {"bf16", 2, {2, 2}, 2, 0},
    {"f64", 1, {3}, 3, 0},    {"param", 3, {1, 2, 1}, 4, 0},
};

static void check_all(const stfpm_weights *w, const expect_t *e, int n, const char *file) {
    ck_assert_msg(w->count == n, "%s: %d tensors, want %d", file, w->count, n);
    for (int i = 0; i < n; i++) {
        const stfpm_weight *t = &w->items[i];
        ck_assert_msg(strcmp(t->name, e[i].name) == 0, "%s: tensor %d is %s, want %s", file, i, t->name, e[i].name);
        ck_assert_msg(t->ndim == e[i].ndim, "%s: %s ndim %d", file, t->name, t->ndim);
        for (int d = 0; d < e[i].ndim; d++)
            ck_assert_msg(t->shape[d] == e[i].shape[d], "%s: %s dim %d = %lld", file, t->name, d, (long long)t->shape[d]);
        size_t numel = stfpm_weight_numel(t);
        for (size_t j = 0; j < numel; j++) {
            double want = e[i].base + ((double)e[i].start + (double)j - 7.0) * 0.125;
            ck_assert_msg(t->data[j] == (float)want, "%s: %s[%zu] = %.9g, want %.9g", file, t->name, j, t->data[j], want);
        }
    }
    ck_assert_ptr_null(stfpm_weights_find(w, "1.num_batches_tracked"));
    ck_assert_ptr_null(stfpm_weights_find(w, "i64"));
}

static const char *fixture(const char *name) {
    static char buf[4][1024];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, sizeof buf[0], "tests/data/weights/%s", name);
    return tu_source_path(b);
}

static void *slurp(const char *name, size_t *len) {
    void *buf;
    TU_CHECK_STATUS(stfpm_weights_read_file(fixture(name), &buf, len));
    return buf;
}

static void expect_fail_mem(const void *buf, size_t len, const char *label, const char *n1, const char *n2) {
    stfpm_weights w;
    stfpm_status s = stfpm_pth_read_mem(buf, len, label, &w);
    ck_assert_msg(s == STFPM_ERR_FORMAT, "%s: expected a format error, got %s: %s", label, stfpm_status_name(s),
                  stfpm_last_error());
    ck_assert_int_eq(w.count, 0);
    const char *m = stfpm_last_error();
    ck_assert_msg(strstr(m, label), "message does not name %s: %s", label, m);
    if (n1) ck_assert_msg(strstr(m, n1), "%s: message lacks '%s': %s", label, n1, m);
    if (n2) ck_assert_msg(strstr(m, n2), "%s: message lacks '%s': %s", label, n2, m);
}

START_TEST(test_state_dict_fixtures) {
    static const char *const files[] = {
        "tiny_state.pth",      "tiny_state_legacy.pth",     "tiny_state_proto4.pth",
        "tiny_wrapped.pth",    "tiny_model_key_legacy.pth", "tiny_half.pth",
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        stfpm_weights w;
        stfpm_status s = stfpm_pth_read(fixture(files[i]), &w);
        ck_assert_msg(s == STFPM_OK, "%s: %s", files[i], stfpm_last_error());
        check_all(&w, tiny, 9, files[i]);
        stfpm_weights_free(&w);
        /* content sniffing picks the torch reader */
        TU_CHECK_STATUS(stfpm_weights_load(fixture(files[i]), &w));
        check_all(&w, tiny, 9, files[i]);
        stfpm_weights_free(&w);
    }
}
END_TEST

START_TEST(test_dtype_fixtures) {
    static const char *const files[] = {"tiny_dtypes.pth", "tiny_dtypes_legacy.pth"};
    for (int i = 0; i < 2; i++) {
        stfpm_weights w;
        stfpm_status s = stfpm_weights_load(fixture(files[i]), &w);
        ck_assert_msg(s == STFPM_OK, "%s: %s", files[i], stfpm_last_error());
        check_all(&w, dtypes, 5, files[i]);
        stfpm_weights_free(&w);
    }
}
END_TEST

START_TEST(test_forbidden_globals) {
    static const struct { const char *file, *global; } cases[] = {
        {"evil_global.pth", "os.system"},
        {"evil_global_legacy.pth", "os.system"},
        {"evil_stack_global.pth", "builtins.eval"},
    };
    for (int i = 0; i < 3; i++) {
        stfpm_weights w;
        ck_assert_int_eq(stfpm_weights_load(fixture(cases[i].file), &w), STFPM_ERR_FORMAT);
        const char *m = stfpm_last_error();
        ck_assert_msg(strstr(m, cases[i].global) && strstr(m, "not allowed") && strstr(m, cases[i].file),
                      "%s: %s", cases[i].file, m);
        ck_assert_int_eq(w.count, 0);
    }
}
END_TEST

START_TEST(test_noncontiguous) {
    stfpm_weights w;
    ck_assert_int_eq(stfpm_pth_read(fixture("noncontig.pth"), &w), STFPM_ERR_FORMAT);
    const char *m = stfpm_last_error();
    ck_assert_msg(strstr(m, "tensor w ") && strstr(m, "not contiguous") && strstr(m, "noncontig.pth"), "%s", m);
}
END_TEST

START_TEST(test_truncated_legacy) {
    size_t len;
    unsigned char *b = slurp("tiny_state_legacy.pth", &len);
    /* cuts in the header pickles, the object, the key list and the storage data */
    size_t cuts[] = {0, 1, 3, 14, 20, 100, 400, 800, len - 200, len - 60, len - 8, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char label[64];
        snprintf(label, sizeof label, "legacy_cut_%zu.pth", cuts[i]);
        expect_fail_mem(b, cuts[i], label, NULL, NULL);
    }
    /* a cut inside the storage area says so */
    expect_fail_mem(b, len - 1, "legacy_tail.pth", "truncated", "storage");
    free(b);
}
END_TEST

START_TEST(test_truncated_zip) {
    size_t len;
    unsigned char *b = slurp("tiny_state.pth", &len);
    size_t cuts[] = {3, 4, 30, 200, 1000, len / 2, len - 200, len - 22, len - 21, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char label[64];
        snprintf(label, sizeof label, "zip_cut_%zu.pth", cuts[i]);
        stfpm_weights w;
        stfpm_status s = stfpm_pth_read_mem(b, cuts[i], label, &w);
        ck_assert_msg(s == STFPM_ERR_FORMAT, "%s: %s", label, stfpm_last_error());
        ck_assert_msg(strstr(stfpm_last_error(), label), "%s", stfpm_last_error());
    }
    /* compressed entries are refused with a clear message: set method 8 in the central directory */
    unsigned char *c = malloc(len);
    memcpy(c, b, len);
    for (size_t i = 0; i + 46 <= len; i++)
        if (memcmp(c + i, "PK\x01\x02", 4) == 0) c[i + 10] = 8;
    expect_fail_mem(c, len, "deflated.pth", "compressed", "data.pkl");
    /* a missing storage record: rename data/0 in both headers */
    memcpy(c, b, len);
    for (size_t i = 0; i + 6 <= len; i++)
        if (memcmp(c + i, "data/0", 6) == 0 && !(c[i + 6] >= '0' && c[i + 6] <= '9'))
            c[i + 5] = 'x';
    stfpm_weights w;
    stfpm_status s = stfpm_pth_read_mem(c, len, "nostorage.pth", &w);
    ck_assert_int_eq(s, STFPM_ERR_FORMAT);
    ck_assert_msg(strstr(stfpm_last_error(), "data/0"), "%s", stfpm_last_error());
    free(c);
    /* not a torch file at all */
    expect_fail_mem("hello world", 11, "text.pth", "not a torch.save file", NULL);
    void *st;
    size_t st_len;
    TU_CHECK_STATUS(stfpm_weights_read_file(fixture("tiny_mixed.safetensors"), &st, &st_len));
    expect_fail_mem(st, st_len, "mixed.safetensors", NULL, NULL);
    free(st);
    free(b);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* hand-assembled legacy files */

typedef struct bld {
    unsigned char b[4096];
    size_t n;
} bld;

static void put(bld *x, const void *p, size_t n) {
    ck_assert(x->n + n <= sizeof x->b);
    memcpy(x->b + x->n, p, n);
    x->n += n;
}
#define PUTS(x, lit) put(x, lit, sizeof(lit) - 1)

static void put_str(bld *x, const char *s) {   /* BINUNICODE */
    uint32_t n = (uint32_t)strlen(s);
    unsigned char h[5] = {'X', (unsigned char)n, (unsigned char)(n >> 8), (unsigned char)(n >> 16), (unsigned char)(n >> 24)};
    put(x, h, 5);
    put(x, s, n);
}

/* magic, protocol 1001, sys_info {little_endian: le} */
static void legacy_header(bld *x, int little) {
    PUTS(x, "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.");
    PUTS(x, "\x80\x02M\xe9\x03.");
    PUTS(x, "\x80\x02}(");
    put_str(x, "little_endian");
    put(x, little ? "\x88" : "\x89", 1);
    PUTS(x, "u.");
}

/* _rebuild_tensor_v2(storage(FloatStorage, key, numel), 0, (n,), (1,), False, {}) */
static void put_tensor(bld *x, const char *key, int numel) {
    PUTS(x, "ctorch._utils\n_rebuild_tensor_v2\n((");
    put_str(x, "storage");
    PUTS(x, "ctorch\nFloatStorage\n");
    put_str(x, key);
    put_str(x, "cpu");
    unsigned char k[2] = {'K', (unsigned char)numel};
    put(x, k, 2);
    PUTS(x, "NtQK\x00");
    put(x, k, 2);
    PUTS(x, "\x85K\x01\x85\x89}tR");
}

START_TEST(test_big_endian_legacy) {
    bld x = {.n = 0};
    legacy_header(&x, 0);
    PUTS(&x, "\x80\x02}(");
    put_str(&x, "w");
    put_tensor(&x, "k0", 2);
    PUTS(&x, "u.");
    PUTS(&x, "\x80\x02](");
    put_str(&x, "k0");
    PUTS(&x, "e.");
    PUTS(&x, "\x00\x00\x00\x00\x00\x00\x00\x02");           /* count 2, big-endian */
    PUTS(&x, "\x3f\xc0\x00\x00\xc1\x20\x00\x00");           /* 1.5f, -10.0f big-endian */
    stfpm_weights w;
    TU_CHECK_STATUS(stfpm_pth_read_mem(x.b, x.n, "be.pth", &w));
    ck_assert_int_eq(w.count, 1);
    ck_assert_float_eq(w.items[0].data[0], 1.5f);
    ck_assert_float_eq(w.items[0].data[1], -10.0f);
    stfpm_weights_free(&w);
    /* the same bytes declared little-endian give a count mismatch */
    x.n = 0;
    legacy_header(&x, 1);
    PUTS(&x, "\x80\x02}(");
    put_str(&x, "w");
    put_tensor(&x, "k0", 2);
    PUTS(&x, "u.\x80\x02](");
    put_str(&x, "k0");
    PUTS(&x, "e.\x00\x00\x00\x00\x00\x00\x00\x02\x3f\xc0\x00\x00\xc1\x20\x00\x00");
    expect_fail_mem(x.b, x.n, "le.pth", "storage k0", "elements");
}
END_TEST

START_TEST(test_malformed_pickles) {
    static const struct { const char *body; size_t n; const char *needle; } cases[] = {
#define C(lit, needle) {lit, sizeof(lit) - 1, needle}
        C("\x80\x02]q\x00.", "not a state_dict"),                    /* a list */
        C("\x80\x02}q\x00.", "no floating-point tensors"),           /* empty dict */
        C("\x80\x02h\x05.", "memo index 5"),                         /* BINGET of nothing */
        C("\x80\x02s.", "stack underflow"),
        C("\x80\x02(t(.", "stack underflow"),                        /* STOP with only a MARK */
        C("\x80\x02}(K\x01u.", "odd number"),
        C("\x80\x02K\x01K\x01K\x02s.", "SETITEM on a int"),
        C("\x80\x02i__main__\nX\n.", "opcode 0x69"),                 /* INST */
        C("\x80\x09}.", "protocol 9"),
        /* a harmless global outside the whitelist is an opaque value, not an error: what is
         * left is the tuple on top of the stack */
        C("\x80\x02" "c__builtin__\nset\n).", "holds a tuple"),
        C("\x80\x02" "c__builtin__\nexec\n).", "__builtin__.exec"),
        C("\x80\x02" "ctorch\nFloatStorage\n)R.", "not callable"),
        C("\x80\x02" "ccollections\nOrderedDict\nK\x01\x85R.", "OrderedDict() with arguments"),
        C("\x80\x02X\x01\x00\x00\x00" "aQ.", "persistent id"),
        C("\x80\x02r\xff\xff\xff\xff.", "stack underflow"),
        C("\x80\x02Nr\xff\xff\xff\x7f.", "memo index"),
        C("\x80\x02X\xff\xff\xff\x7f" "abc", "truncated"),
        C("\x80\x02\x8b\xff\xff\xff\xff", "negative length"),
        C("\x80\x02" "cos\nsys", "truncated GLOBAL"),
        C("\x80\x02\x8c\x02os\x8c\x06system\x93.", "os.system"),
        C("\x80\x02N}b.", "BUILD on a None"),
#undef C
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bld x = {.n = 0};
        legacy_header(&x, 1);
        put(&x, cases[i].body, cases[i].n);
        PUTS(&x, "\x80\x02].");
        char label[32];
        snprintf(label, sizeof label, "case%zu.pth", i);
        expect_fail_mem(x.b, x.n, label, cases[i].needle, NULL);
    }
    /* a tensor beyond its storage, and a storage nobody references */
    bld x = {.n = 0};
    legacy_header(&x, 1);
    PUTS(&x, "\x80\x02}(");
    put_str(&x, "big");
    PUTS(&x, "ctorch._utils\n_rebuild_tensor_v2\n((");
    put_str(&x, "storage");
    PUTS(&x, "ctorch\nFloatStorage\n");
    put_str(&x, "0");
    put_str(&x, "cpu");
    PUTS(&x, "K\x02NtQK\x01K\x02\x85K\x01\x85\x89}tRu.\x80\x02](");
    put_str(&x, "0");
    PUTS(&x, "e.\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x3f\x00\x00\x00\x40");
    expect_fail_mem(x.b, x.n, "bounds.pth", "tensor big", "exceeds its storage");
    x.n = 0;
    legacy_header(&x, 1);
    PUTS(&x, "\x80\x02}(");
    put_str(&x, "w");
    put_tensor(&x, "k0", 1);
    PUTS(&x, "u.\x80\x02](");
    put_str(&x, "k0");
    put_str(&x, "k9");
    PUTS(&x, "e.\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x3f");
    expect_fail_mem(x.b, x.n, "unref.pth", "k9", NULL);
    /* a well-formed minimal file loads; non-tensor values and POP / DUP / DICT are handled */
    x.n = 0;
    legacy_header(&x, 1);
    PUTS(&x, "\x80\x02(");
    put_str(&x, "epoch");
    PUTS(&x, "K\x07");
    put_str(&x, "w");
    put_tensor(&x, "k0", 1);
    PUTS(&x, "d2" "0" ".\x80\x02](");
    put_str(&x, "k0");
    PUTS(&x, "e.\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x3f");
    stfpm_weights w;
    TU_CHECK_STATUS(stfpm_pth_read_mem(x.b, x.n, "min.pth", &w));
    ck_assert_int_eq(w.count, 1);
    ck_assert_str_eq(w.items[0].name, "w");
    ck_assert_float_eq(w.items[0].data[0], 1.0f);
    stfpm_weights_free(&w);
}
END_TEST

int main(void) {
    Suite *s = suite_create("io_pth");
    TCase *tc = tcase_create("pth");
    tcase_add_test(tc, test_state_dict_fixtures);
    tcase_add_test(tc, test_dtype_fixtures);
    tcase_add_test(tc, test_forbidden_globals);
    tcase_add_test(tc, test_noncontiguous);
    tcase_add_test(tc, test_truncated_legacy);
    tcase_add_test(tc, test_truncated_zip);
    tcase_add_test(tc, test_big_endian_legacy);
    tcase_add_test(tc, test_malformed_pickles);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
