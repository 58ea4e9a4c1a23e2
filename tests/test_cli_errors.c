/* The `stfpm` command-line program on bad input: every case runs the real binary and checks a
 * non-zero exit code (2 for bad option values), no crash (no signal), a message naming the file
 * or the cause, and that the user's files are left intact. Data sets are tiny demo sets (64 x 64).
 *
 * Teacher: the real ImageNet weights from ../shared/weights when present; otherwise a
 * randomly initialised (Kaiming) ResNet-18 written to a file, which exercises the same code
 * paths (the cases here test error handling, not accuracy). */
#include "testutil.h"
#include "cli_util.h"
#include "stfpm/image.h"
#include "stfpm/pipeline.h"
#include "stfpm/weights.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_base[512];     /* temporary root of this program */
static char g_data[600];     /* demo data: 6 train, 2 good, 4 defective, 64 x 64 */
static char g_run[600];      /* a run trained for 1 epoch on g_data */
static char g_teacher[2400]; /* teacher file used by the training cases */
static int g_have_run;

#define NEEDLES(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Strings made by P() and tmpdir_in() stay valid until the test's teardown frees them. */
static char *g_allocs[4096];
static int g_n_allocs;

static char *track(char *p) {
    ck_assert_ptr_nonnull(p);
    ck_assert_int_lt(g_n_allocs, 4096);
    g_allocs[g_n_allocs++] = p;
    return p;
}

static void free_tracked(void) {
    while (g_n_allocs > 0) free(g_allocs[--g_n_allocs]);
}

/* "a/b" */
static const char *P(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *o = track(malloc(n));
    snprintf(o, n, "%s/%s", a, b);
    return o;
}


static void setup(void) {
    snprintf(g_base, sizeof g_base, "%s", cli_mkdtemp("errors"));
    snprintf(g_data, sizeof g_data, "%s/data", g_base);
    snprintf(g_run, sizeof g_run, "%s/run", g_base);
    cli_make_demo(g_data, 6, 2, 4, 64, 3);
    if (!cli_teacher_or_random(g_base, g_teacher, sizeof g_teacher)) return;
    /* 6 images: 5 train + 1 validation, batch 4: the last batch of the epoch has 1 image */
    cli_result r = cli_run(NULL, "train", "--data", g_data, "--out", g_run, "--teacher", g_teacher, "--size", "64",
                           "--epochs", "1", "--batch", "4", NULL);
    g_have_run = r.code == 0 && cli_exists(P(g_run, "best.safetensors"));
    if (!g_have_run) printf("fixture training failed (exit %d):\n%s\n", r.code, r.err);
    cli_result_free(&r);
}

static void teardown(void) {
    cli_rm_rf(g_base);
    free_tracked();
}

/* A fresh temporary folder inside g_base. */
static const char *tmpdir_in(const char *tag) {
    size_t n = strlen(g_base) + strlen(tag) + 9;
    char *o = track(malloc(n));
    snprintf(o, n, "%s/%s_XXXXXX", g_base, tag);
    ck_assert_ptr_nonnull(mkdtemp(o));
    return o;
}

static void need_run(void) { ck_assert_msg(g_have_run, "the fixture's training run failed (see above)"); }

/* train with the small default options of these tests; extra args appended (NULL-terminated). */
static cli_result train(const cli_opts *o, const char *data, const char *out, ...) {
    const char *args[64] = {"train", "--data", data, "--out", out, "--teacher", g_teacher, "--size", "64",
                            "--epochs", "1", "--batch", "4"};
    int n = 13;
    va_list ap;
    va_start(ap, out);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL && n < 63;) args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    return cli_runv(o, args);
}

/* ------------------------------------------------------------------------------------------ */
/* data */

START_TEST(test_missing_data_folder) {
    const char *dir = tmpdir_in("nodata");
    const char *missing = P(dir, "no_such_category"), *out = P(dir, "run");
    cli_result r = train(NULL, missing, out, NULL);
    cli_expect_fail("train --data <missing folder>", &r, -1, NEEDLES(missing));
    ck_assert_msg(!cli_exists(out), "a failed run left its --out folder %s behind", out);
    cli_result_free(&r);
}
END_TEST

START_TEST(test_empty_train_good) {
    const char *dir = tmpdir_in("empty");
    const char *data = P(dir, "cat");
    ck_assert_int_eq(mkdir(data, 0755), 0);
    ck_assert_int_eq(mkdir(P(data, "train"), 0755), 0);
    ck_assert_int_eq(mkdir(P(data, "train/good"), 0755), 0);
    cli_write_file(P(data, "train/good/notes.txt"), "not an image name\n", 18);
    cli_result r = train(NULL, data, P(dir, "run"), NULL);
    cli_expect_fail("train on an empty train/good", &r, -1, NEEDLES("train/good", "no training images"));
    cli_result_free(&r);
}
END_TEST

/* A bad file among the training images: the message names it, nothing is trained, the file
 * is left as it was. */
static void bad_train_file(const char *tag, const void *content, size_t len, const char *cause) {
    const char *dir = tmpdir_in(tag);
    const char *data = P(dir, "data"), *out = P(dir, "run");
    ck_assert_int_eq(cli_copy_tree(g_data, data), 0);
    const char *bad = P(data, "train/good/003.png");
    ck_assert_int_eq(cli_write_file(bad, content, len), 0);
    char *before = cli_dir_digest(P(data, "train/good"));
    cli_result r = train(NULL, data, out, NULL);
    char what[128];
    snprintf(what, sizeof what, "train with a %s training image", tag);
    cli_expect_fail(what, &r, -1, NEEDLES(bad, cause));
    ck_assert_msg(!cli_exists(P(out, "last.safetensors")), "a checkpoint was written despite the bad image");
    char *after = cli_dir_digest(P(data, "train/good"));
    ck_assert_str_eq(before, after);
    free(before);
    free(after);
    cli_result_free(&r);
}

START_TEST(test_zero_byte_image) { bad_train_file("zero-byte", "", 0, "empty"); }
END_TEST

START_TEST(test_truncated_image) {
    size_t len;
    char *png = cli_read_file(P(g_data, "train/good/000.png"), &len);
    ck_assert_ptr_nonnull(png);
    ck_assert(len > 400);
    bad_train_file("truncated", png, 300, "truncated");
    free(png);
}
END_TEST

START_TEST(test_non_image_file) {
    const char *text = "this is a text file with a .png name\n";
    bad_train_file("non-image", text, strlen(text), "not a readable image");
}
END_TEST

START_TEST(test_unreadable_image) {
    if (geteuid() == 0) TU_SKIP("unreadable-permission image: running as root, who can read any file");
    const char *dir = tmpdir_in("perm");
    const char *data = P(dir, "data");
    ck_assert_int_eq(cli_copy_tree(g_data, data), 0);
    const char *bad = P(data, "train/good/002.png");
    ck_assert_int_eq(chmod(bad, 0), 0);
    cli_result r = train(NULL, data, P(dir, "run"), NULL);
    cli_expect_fail("train with an unreadable image", &r, -1, NEEDLES(bad));
    chmod(bad, 0644);
    cli_result_free(&r);
}
END_TEST

START_TEST(test_defect_without_mask) {
    need_run();
    const char *dir = tmpdir_in("nomask");
    const char *data = P(dir, "data");
    ck_assert_int_eq(cli_copy_tree(g_data, data), 0);
    ck_assert_int_eq(unlink(P(data, "ground_truth/hole/000_mask.png")), 0);
    cli_result r = cli_run(NULL, "test", "--data", data, "--model", g_run, NULL);
    cli_expect_fail("test with a defective image lacking its mask", &r, -1,
                    NEEDLES(P(data, "test/hole/000.png"), "ground_truth/hole/000_mask.png"));
    cli_result_free(&r);
}
END_TEST

START_TEST(test_mask_other_size) {
    need_run();
    const char *dir = tmpdir_in("masksize");
    const char *data = P(dir, "data");
    ck_assert_int_eq(cli_copy_tree(g_data, data), 0);
    const char *mask = P(data, "ground_truth/scratch/000_mask.png");
    uint8_t small[32 * 32];
    memset(small, 0, sizeof small);
    small[16 * 32 + 16] = 255;
    TU_CHECK_STATUS(stfpm_png_write(mask, 32, 32, 1, small));
    cli_result r = cli_run(NULL, "test", "--data", data, "--model", g_run, NULL);
    cli_expect_fail("test with a mask of another size", &r, -1, NEEDLES(mask, P(data, "test/scratch/000.png"), "32"));
    cli_result_free(&r);
}
END_TEST

/* Grey, grey + alpha style RGBA, and 16-bit grey PNGs among the training images are accepted. */
START_TEST(test_grey_rgba_16bit_accepted) {
    const char *dir = tmpdir_in("formats");
    const char *data = P(dir, "data"), *out = P(dir, "run");
    ck_assert_int_eq(cli_copy_tree(g_data, data), 0);
    for (int i = 0; i < 3; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/train/good/%03d.png", data, i);
        stfpm_image img = {0};
        TU_CHECK_STATUS(stfpm_image_load(path, &img));
        int n = img.w * img.h;
        if (i == 0) {
            uint8_t *g = malloc((size_t)n);
            for (int k = 0; k < n; k++) g[k] = (uint8_t)((img.data[3 * k] + img.data[3 * k + 1] + img.data[3 * k + 2]) / 3);
            TU_CHECK_STATUS(stfpm_png_write(path, img.w, img.h, 1, g));
            free(g);
        } else if (i == 1) {
            uint8_t *a = malloc((size_t)n * 4);
            for (int k = 0; k < n; k++) {
                memcpy(a + 4 * k, img.data + 3 * k, 3);
                a[4 * k + 3] = (uint8_t)(128 + k % 128);
            }
            TU_CHECK_STATUS(stfpm_png_write(path, img.w, img.h, 4, a));
            free(a);
        } else {
            uint16_t *g = malloc(sizeof(uint16_t) * (size_t)n);
            for (int k = 0; k < n; k++) g[k] = (uint16_t)(img.data[3 * k + 1] * 257 + (k % 200));
            TU_CHECK_STATUS(stfpm_png_write_grey16(path, img.w, img.h, g));
            free(g);
        }
        stfpm_image_free(&img);
    }
    cli_result r = train(NULL, data, out, NULL);
    cli_expect_ok("train on grey / RGBA / 16-bit PNGs", &r);
    ck_assert(cli_exists(P(out, "best.safetensors")));
    cli_result_free(&r);
    /* predict reads them too */
    r = cli_run(NULL, "predict", "--model", out, P(data, "train/good/000.png"), P(data, "train/good/001.png"),
                P(data, "train/good/002.png"), NULL);
    cli_expect_ok("predict on grey / RGBA / 16-bit PNGs", &r);
    ck_assert_ptr_nonnull(strstr(r.out, "002.png"));
    cli_result_free(&r);
}
END_TEST

/* File names that are not UTF-8 (Latin-1 bytes, as old Windows shares produce) are files like
 * any other: trained on, and named byte for byte in errors. */
START_TEST(test_non_utf8_names) {
    const char *dir = tmpdir_in("latin1");
    const char *data = P(dir, "data"), *out = P(dir, "run");
    ck_assert_int_eq(cli_copy_tree(g_data, data), 0);
    char from[1200], to[1200];
    snprintf(from, sizeof from, "%s/train/good/000.png", data);
    snprintf(to, sizeof to, "%s/train/good/pi\xe8" "ce_\xff.png", data);   /* invalid UTF-8 */
    ck_assert_int_eq(rename(from, to), 0);
    cli_result r = train(NULL, data, out, NULL);
    cli_expect_ok("train with a non-UTF-8 file name", &r);
    cli_result_free(&r);
    r = cli_run(NULL, "predict", "--model", out, to, NULL);
    cli_expect_ok("predict a non-UTF-8 file name", &r);
    ck_assert_ptr_nonnull(strstr(r.out, "pi\xe8" "ce_\xff.png"));
    cli_result_free(&r);
    /* a broken file with such a name is named in the error */
    FILE *f = fopen(to, "wb");
    ck_assert_ptr_nonnull(f);
    fputs("not an image", f);
    fclose(f);
    r = cli_run(NULL, "predict", "--model", out, to, NULL);
    ck_assert_int_ne(r.code, 0);
    ck_assert_msg(strstr(r.err, "pi\xe8" "ce_\xff.png") != NULL, "error should name the file: %s", r.err);
    cli_result_free(&r);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* weights and checkpoints */

START_TEST(test_teacher_truncated) {
    const char *dir = tmpdir_in("tt");
    const char *t = P(dir, "teacher_cut.safetensors");
    size_t len;
    char *full = cli_read_file(g_teacher, &len);
    ck_assert_ptr_nonnull(full);
    ck_assert_int_eq(cli_write_file(t, full, len / 2), 0);
    free(full);
    const char *args[] = {"train", "--data", g_data, "--out", P(dir, "run"), "--teacher", t, "--size", "64",
                          "--epochs", "1", NULL};
    cli_result r = cli_runv(NULL, args);
    cli_expect_fail("train --teacher <truncated file>", &r, -1, NEEDLES(t));
    ck_assert(!cli_exists(P(dir, "run/last.safetensors")));
    cli_result_free(&r);
}
END_TEST

START_TEST(test_teacher_corrupt_header) {
    const char *dir = tmpdir_in("th");
    const char *t = P(dir, "teacher_bad_header.safetensors");
    const char *json = "{\"conv1.weight\": {\"dtype\": \"F32\", \"shape\": [64, 3, 7 7], oops";
    size_t jl = strlen(json);
    unsigned char buf[256];
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)jl >> (8 * i));
    memcpy(buf + 8, json, jl);
    memset(buf + 8 + jl, 0, 64);
    ck_assert_int_eq(cli_write_file(t, buf, 8 + jl + 64), 0);
    const char *args[] = {"train", "--data", g_data, "--out", P(dir, "run"), "--teacher", t, "--size", "64",
                          "--epochs", "1", NULL};
    cli_result r = cli_runv(NULL, args);
    cli_expect_fail("train --teacher <corrupt safetensors header>", &r, -1, NEEDLES(t));
    cli_result_free(&r);
}
END_TEST

/* Copy of the teacher with one tensor replaced by `shape` / `fill` (NaN etc.). */
static void write_modified_teacher(const char *path, const char *name, int ndim, const int64_t *shape, float poke) {
    stfpm_weights in = {0}, out = {0};
    TU_CHECK_STATUS(stfpm_weights_load(g_teacher, &in));
    ck_assert_ptr_nonnull(stfpm_weights_find(&in, name));
    for (int i = 0; i < in.count; i++) {
        const stfpm_weight *t = &in.items[i];
        if (strcmp(t->name, name) != 0) {
            TU_CHECK_STATUS(stfpm_weights_add(&out, t->name, t->ndim, t->shape, t->data));
        } else if (ndim > 0) {
            int64_t n = 1;
            for (int d = 0; d < ndim; d++) n *= shape[d];
            float *v = calloc((size_t)n, sizeof(float));
            TU_CHECK_STATUS(stfpm_weights_add(&out, t->name, ndim, shape, v));
            free(v);
        } else {
            float *v = malloc(stfpm_weight_numel(t) * sizeof(float));
            memcpy(v, t->data, stfpm_weight_numel(t) * sizeof(float));
            v[stfpm_weight_numel(t) / 2] = poke;
            TU_CHECK_STATUS(stfpm_weights_add(&out, t->name, t->ndim, t->shape, v));
            free(v);
        }
    }
    TU_CHECK_STATUS(stfpm_safetensors_write(path, &out, NULL, NULL, 0));
    stfpm_weights_free(&in);
    stfpm_weights_free(&out);
}

START_TEST(test_teacher_wrong_shape) {
    const char *dir = tmpdir_in("ts");
    const char *t = P(dir, "teacher_wrong_shape.safetensors");
    int64_t shape[4] = {64, 3, 5, 5};
    write_modified_teacher(t, "layer1.0.conv1.weight", 4, shape, 0);
    const char *args[] = {"train", "--data", g_data, "--out", P(dir, "run"), "--teacher", t, "--size", "64",
                          "--epochs", "1", NULL};
    cli_result r = cli_runv(NULL, args);
    cli_expect_fail("train --teacher <tensor of the wrong shape>", &r, -1, NEEDLES(t, "layer1.0.conv1.weight"));
    cli_result_free(&r);
}
END_TEST

START_TEST(test_teacher_nan) {
    const char *dir = tmpdir_in("tn");
    const char *t = P(dir, "teacher_nan.safetensors");
    write_modified_teacher(t, "layer2.0.conv2.weight", 0, NULL, NAN);
    const char *args[] = {"train", "--data", g_data, "--out", P(dir, "run"), "--teacher", t, "--size", "64",
                          "--epochs", "1", NULL};
    cli_result r = cli_runv(NULL, args);
    cli_expect_fail("train --teacher <NaN values>", &r, -1, NEEDLES(t, "layer2.0.conv2.weight", "NaN"));
    ck_assert(!cli_exists(P(dir, "run/last.safetensors")));
    cli_result_free(&r);
}
END_TEST

START_TEST(test_model_truncated) {
    need_run();
    const char *dir = tmpdir_in("mt");
    const char *run = P(dir, "run");
    ck_assert_int_eq(cli_copy_tree(g_run, run), 0);
    const char *best = P(run, "best.safetensors");
    size_t len;
    char *full = cli_read_file(best, &len);
    ck_assert_int_eq(cli_write_file(best, full, len - len / 3), 0);
    free(full);
    cli_result r = cli_run(NULL, "test", "--data", g_data, "--model", run, NULL);
    cli_expect_fail("test --model <run with a truncated best.safetensors>", &r, -1, NEEDLES(best));
    cli_result_free(&r);
    r = cli_run(NULL, "predict", "--model", best, P(g_data, "test/good/000.png"), NULL);
    cli_expect_fail("predict --model <truncated best.safetensors>", &r, -1, NEEDLES(best));
    cli_result_free(&r);
}
END_TEST

START_TEST(test_model_not_stfpm) {
    cli_result r = cli_run(NULL, "test", "--data", g_data, "--model", g_teacher, NULL);
    cli_expect_fail("test --model <a teacher file, not a model>", &r, -1, NEEDLES(g_teacher, "not an stfpm-cl model"));
    cli_result_free(&r);
    /* a file that is not safetensors at all */
    const char *dir = tmpdir_in("mn");
    const char *txt = P(dir, "model.safetensors");
    cli_write_file(txt, "hello, I am a text file\n", 24);
    r = cli_run(NULL, "predict", "--model", txt, P(g_data, "test/good/000.png"), NULL);
    cli_expect_fail("predict --model <text file>", &r, -1, NEEDLES(txt));
    cli_result_free(&r);
}
END_TEST

START_TEST(test_resume_other_size_layers) {
    need_run();
    const char *dir = tmpdir_in("rs");
    const char *run = P(dir, "run");
    ck_assert_int_eq(cli_copy_tree(g_run, run), 0);
    char *before = cli_dir_digest(run);
    const char *a1[] = {"train", "--data", g_data, "--out", run, "--teacher", g_teacher, "--size", "96",
                        "--epochs", "2", "--batch", "4", "--resume", NULL};
    cli_result r = cli_runv(NULL, a1);
    cli_expect_fail("train --resume with another --size", &r, 2, NEEDLES("--size 64", "--size 96", "last.safetensors"));
    cli_result_free(&r);
    const char *a2[] = {"train", "--data", g_data, "--out", run, "--teacher", g_teacher, "--size", "64",
                        "--layers", "1,2", "--epochs", "2", "--batch", "4", "--resume", NULL};
    r = cli_runv(NULL, a2);
    cli_expect_fail("train --resume with other --layers", &r, 2, NEEDLES("--layers 1,2,3", "--layers 1,2"));
    cli_result_free(&r);
    /* the run's checkpoints and log are untouched (config.json may be rewritten only by a
     * run that actually resumes) */
    char *after = cli_dir_digest(run);
    ck_assert_str_eq(before, after);
    free(before);
    free(after);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* device */

START_TEST(test_device_no_match) {
    need_run();
    const char *dir = tmpdir_in("dev");
    cli_result r = train(NULL, g_data, P(dir, "run"), "--device", "no-such-device-xyz", NULL);
    cli_expect_fail("train --device <no match>", &r, -1, NEEDLES("no-such-device-xyz", "stfpm devices"));
    cli_result_free(&r);
    const char *env[] = {"STFPM_DEVICE=also-no-such-device", NULL};
    cli_opts o = {.env = env};
    r = cli_run(&o, "predict", "--model", g_run, P(g_data, "test/good/000.png"), NULL);
    cli_expect_fail("STFPM_DEVICE=<no match> stfpm predict", &r, -1, NEEDLES("also-no-such-device"));
    cli_result_free(&r);
    r = cli_run(NULL, "test", "--data", g_data, "--model", g_run, "--device", "99", NULL);
    cli_expect_fail("test --device 99", &r, -1, NEEDLES("99", "out of range"));
    cli_result_free(&r);
}
END_TEST

START_TEST(test_no_opencl_platform) {
    const char *dir = tmpdir_in("icd");
    char env_v[900];
    snprintf(env_v, sizeof env_v, "OCL_ICD_VENDORS=%s", dir);   /* an empty vendors folder */
    const char *env[] = {env_v, "OPENCL_VENDOR_PATH", "STFPM_DEVICE", NULL};
    cli_opts o = {.env = env};
    cli_result r = cli_run(&o, "devices", NULL);
    cli_expect_fail("stfpm devices without any OpenCL platform", &r, -1, NEEDLES("no OpenCL platform"));
    cli_result_free(&r);
    r = train(&o, g_data, P(dir, "run"), NULL);
    cli_expect_fail("stfpm train without any OpenCL platform", &r, -1, NEEDLES("no OpenCL platform", "install"));
    cli_result_free(&r);
}
END_TEST

/* A batch that cannot fit: 2048 x 2048 images, batch chosen so that the input tensor alone is
 * larger than the biggest buffer any device here allows. */
START_TEST(test_batch_too_big_for_device) {
    stfpm_device_info d[16];
    int n = 0;
    TU_CHECK_STATUS(stfpm_list_devices(d, 16, &n));
    uint64_t max_alloc = 0;
    for (int i = 0; i < n && i < 16; i++) max_alloc = d[i].max_alloc > max_alloc ? d[i].max_alloc : max_alloc;
    /* PoCL sizes its device from the host's free memory: above 4 GiB per buffer, the batch that
     * first exceeds it would also exceed the 2^31 - 1 elements a tensor may have (another
     * message), so the device is then limited to 4 GiB (STFPM_DEVICE_MEM_LIMIT) */
    const uint64_t cap = 4ull << 30;
    char limit_env[64];
    const char *env[] = {limit_env, NULL};
    cli_opts lim = {.env = env};
    snprintf(limit_env, sizeof limit_env, "STFPM_DEVICE_MEM_LIMIT=%llu", (unsigned long long)cap);
    const int limited = max_alloc > cap;
    if (limited) max_alloc = cap;
    uint64_t per = 3ull * 2048 * 2048 * 4;
    uint64_t b = max_alloc / per + 2;
    char batch[32];
    snprintf(batch, sizeof batch, "%llu", (unsigned long long)b);
    const char *dir = tmpdir_in("oom");
    const char *out = P(dir, "run");
    const char *args[] = {"train", "--data", g_data, "--out", out, "--teacher", g_teacher, "--size", "2048",
                          "--epochs", "1", "--batch", batch, NULL};
    /* the host batch buffer (as large as the device buffer) is only reserved, not touched, unless
     * the kernel refuses to overcommit memory (vm.overcommit_memory = 2): then the host runs out
     * first, with the same advice */
    char *oc = cli_read_file("/proc/sys/vm/overcommit_memory", NULL);
    int strict = oc && atoi(oc) == 2;
    free(oc);
    cli_result r = cli_runv(limited ? &lim : NULL, args);
    cli_expect_fail("train --size 2048 --batch <too big for the device>", &r, -1,
                    NEEDLES(strict ? "out of" : "out of device memory", "smaller --batch"));
    ck_assert(!cli_exists(P(out, "last.safetensors")));
    cli_result_free(&r);
    /* the largest batch allowed: 4096 x 48 MiB of host memory for the batch buffer (may not
     * even be reserved by the host): host or device, the message must point at --batch */
    const char *args2[] = {"train", "--data", g_data, "--out", out, "--teacher", g_teacher, "--size", "2048",
                           "--epochs", "1", "--batch", "4096", NULL};
    r = cli_runv(NULL, args2);
    cli_expect_fail("train --size 2048 --batch 4096", &r, -1, NEEDLES("out of", "smaller --batch"));
    cli_result_free(&r);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* training */

START_TEST(test_nan_loss_keeps_checkpoints) {
    need_run();
    const char *dir = tmpdir_in("nan");
    const char *run = P(dir, "run");
    ck_assert_int_eq(cli_copy_tree(g_run, run), 0);
    size_t n_best, n_last, n2;
    char *b_best = cli_read_file(P(run, "best.safetensors"), &n_best);
    char *b_log = cli_read_file(P(run, "train_log.csv"), NULL);
    char *b_last = cli_read_file(P(run, "last.safetensors"), &n_last);
    /* resume epoch 2 with an absurd learning rate: the loss diverges to Inf / NaN */
    const char *args[] = {"train", "--data", g_data, "--out", run, "--teacher", g_teacher, "--size", "64",
                          "--epochs", "3", "--batch", "4", "--lr", "1e30", "--resume", NULL};
    cli_result r = cli_runv(NULL, args);
    cli_expect_fail("train --resume --lr 1e30 (diverging loss)", &r, -1, NEEDLES("epoch 2", "kept"));
    ck_assert_msg(strstr(r.err, "NaN") || strstr(r.err, "Inf"), "message does not say NaN / Inf:\n%s", r.err);
    ck_assert_msg(strstr(r.err, "batch") || strstr(r.err, "validation"), "message names neither batch nor validation");
    char *a_best = cli_read_file(P(run, "best.safetensors"), &n2);
    ck_assert_msg(a_best && n2 == n_best && memcmp(a_best, b_best, n2) == 0, "best.safetensors changed");
    free(a_best);
    char *a_last = cli_read_file(P(run, "last.safetensors"), &n2);
    ck_assert_msg(a_last && n2 == n_last && memcmp(a_last, b_last, n2) == 0, "last.safetensors changed");
    free(a_last);
    char *a_log = cli_read_file(P(run, "train_log.csv"), NULL);
    ck_assert_str_eq(a_log, b_log);
    free(a_log);
    ck_assert_int_eq(cli_count_tmp(run), 0);
    free(b_best);
    free(b_last);
    free(b_log);
    cli_result_free(&r);
    /* diverging from the first epoch: nothing to keep, and the message does not pretend otherwise */
    const char *out2 = P(dir, "run2");
    r = train(NULL, g_data, out2, "--lr", "1e30", NULL);
    cli_expect_fail("train --lr 1e30 from scratch", &r, -1, NEEDLES("epoch 1"));
    ck_assert_msg(strstr(r.err, "NaN") || strstr(r.err, "Inf"), "message does not say NaN / Inf:\n%s", r.err);
    ck_assert_msg(!strstr(r.err, "are kept"), "the message claims kept checkpoints that do not exist:\n%s", r.err);
    ck_assert(!cli_exists(P(out2, "last.safetensors")));
    cli_result_free(&r);
}
END_TEST

START_TEST(test_option_values_out_of_range) {
    const char *dir = tmpdir_in("opt");
    const char *out = P(dir, "run");
    static const char *const cases[][3] = {
        {"--epochs", "-1", "--epochs"},   {"--epochs", "0", "--epochs"},    {"--lr", "0", "--lr"},
        {"--batch", "0", "--batch"},      {"--size", "100", "--size"},      {"--layers", "5", "--layers"},
        {"--val-split", "2", "--val-split"}, {"--lr", "-0.1", "--lr"},    {"--epochs", "ten", "--epochs"},
        {"--size", "0", "--size"},        {"--momentum", "1.5", "--momentum"}, {"--train-fraction", "0", "--train-fraction"},
        {"--batch", "99999999999", "--batch"}, {"--seed", "-3", "--seed"}, {"--checkpoint-by", "auroc", "--checkpoint-by"},
        {"--layers", "", "--layers"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[] = {"train", "--data", g_data, "--out", out, "--teacher", g_teacher, "--epochs", "1",
                              cases[i][0], cases[i][1], NULL};
        cli_result r = cli_runv(NULL, args);
        char what[128];
        snprintf(what, sizeof what, "train %s %s", cases[i][0], cases[i][1]);
        cli_expect_fail(what, &r, 2, NEEDLES(cases[i][2]));
        ck_assert_msg(!cli_exists(out), "%s: the --out folder was created", what);
        cli_result_free(&r);
    }
    /* an option without its value, an unknown option, a missing required option */
    cli_result r = cli_run(NULL, "train", "--data", g_data, "--out", NULL);
    cli_expect_fail("train --out <nothing>", &r, 2, NEEDLES("--out"));
    cli_result_free(&r);
    r = cli_run(NULL, "train", "--data", g_data, "--out", out, "--epoch", "3", NULL);
    cli_expect_fail("train --epoch (typo)", &r, 2, NEEDLES("--epoch"));
    cli_result_free(&r);
    r = cli_run(NULL, "train", "--out", out, NULL);
    cli_expect_fail("train without --data", &r, 2, NEEDLES("--data"));
    cli_result_free(&r);
    r = cli_run(NULL, "test", "--data", g_data, "--model", g_run, "--batch", "0", NULL);
    cli_expect_fail("test --batch 0", &r, 2, NEEDLES("--batch"));
    cli_result_free(&r);
    r = cli_run(NULL, "predict", "--model", g_run, "--threshold", "abc", P(g_data, "test/good/000.png"), NULL);
    cli_expect_fail("predict --threshold abc", &r, 2, NEEDLES("--threshold"));
    cli_result_free(&r);
    r = cli_run(NULL, "frobnicate", NULL);
    cli_expect_fail("stfpm frobnicate", &r, 2, NEEDLES("frobnicate"));
    cli_result_free(&r);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* output */

START_TEST(test_out_not_writable) {
    const char *dir = tmpdir_in("outw");
    const char *file = P(dir, "file");
    ck_assert_int_eq(cli_write_file(file, "precious\n", 9), 0);
    char out[1300];
    snprintf(out, sizeof out, "%s/run", file);
    cli_result r = train(NULL, g_data, out, NULL);
    cli_expect_fail("train --out <path under a regular file>", &r, -1, NEEDLES(file, "Not a directory"));
    char *content = cli_read_file(file, NULL);
    ck_assert_str_eq(content, "precious\n");
    free(content);
    cli_result_free(&r);
    /* --out naming an existing regular file */
    r = train(NULL, g_data, file, NULL);
    cli_expect_fail("train --out <a regular file>", &r, -1, NEEDLES(file));
    content = cli_read_file(file, NULL);
    ck_assert_str_eq(content, "precious\n");
    free(content);
    cli_result_free(&r);
    /* test --json / --maps in an impossible place */
    need_run();
    r = cli_run(NULL, "test", "--data", g_data, "--model", g_run, "--maps", out, NULL);
    cli_expect_fail("test --maps <path under a regular file>", &r, -1, NEEDLES(file));
    cli_result_free(&r);
    r = cli_run(NULL, "test", "--data", g_data, "--model", g_run, "--json", P(out, "m.json"), NULL);
    cli_expect_fail("test --json <path under a regular file>", &r, -1, NEEDLES("m.json"));
    cli_result_free(&r);
}
END_TEST

/* The disk fills while the checkpoint is written (RLIMIT_FSIZE in the child, SIGXFSZ ignored:
 * write() fails with EFBIG). The limit (4 MiB) is far below a checkpoint (> 20 MiB) and above
 * what the OpenCL driver writes into its own kernel cache. */
START_TEST(test_disk_full_checkpoint) {
    need_run();
    const char *dir = tmpdir_in("full");
    const char *run = P(dir, "run");
    ck_assert_int_eq(cli_copy_tree(g_run, run), 0);
    /* warm the kernel caches with the same shapes (a run into another folder) */
    cli_result r = train(NULL, g_data, P(dir, "warm"), NULL);
    cli_expect_ok("warm-up run", &r);
    cli_result_free(&r);
    size_t nb, nl, nlog;
    char *best = cli_read_file(P(run, "best.safetensors"), &nb), *last = cli_read_file(P(run, "last.safetensors"), &nl);
    char *log = cli_read_file(P(run, "train_log.csv"), &nlog);
    cli_opts o = {.fsize_limit = 4ll << 20};
    const char *args[] = {"train", "--data", g_data, "--out", run, "--teacher", g_teacher, "--size", "64",
                          "--epochs", "2", "--batch", "4", "--resume", NULL};
    r = cli_runv(&o, args);
    cli_expect_fail("train --resume with the disk full", &r, -1, NEEDLES(".safetensors", "File too large"));
    size_t n2;
    char *x = cli_read_file(P(run, "best.safetensors"), &n2);
    ck_assert_msg(x && n2 == nb && memcmp(x, best, nb) == 0, "best.safetensors changed by the failed write");
    free(x);
    x = cli_read_file(P(run, "last.safetensors"), &n2);
    ck_assert_msg(x && n2 == nl && memcmp(x, last, nl) == 0, "last.safetensors changed by the failed write");
    free(x);
    x = cli_read_file(P(run, "train_log.csv"), &n2);
    ck_assert_msg(x && n2 == nlog && memcmp(x, log, nlog) == 0, "train_log.csv changed");
    free(x);
    ck_assert_msg(cli_count_tmp(run) == 0, "temporary files left in %s", run);
    free(best);
    free(last);
    free(log);
    cli_result_free(&r);
    /* the run still resumes once there is space again */
    r = cli_runv(NULL, args);
    cli_expect_ok("resume after the disk-full failure", &r);
    ck_assert_int_eq(cli_log_rows(P(run, "train_log.csv"), NULL), 2);
    cli_result_free(&r);
}
END_TEST

/* Writing last.safetensors fails after the epoch's log row went out: the log is put back, so
 * train_log.csv and last.safetensors still agree (and a resume rewrites nothing twice). The
 * failure: the temporary names the writer may use (<last>.tmp.<pid>.<n>, n counts the
 * process's atomic writes, see stfpm_write_parts_atomic) are folders, so they cannot be
 * opened for writing. */
START_TEST(test_last_checkpoint_write_fails) {
    need_run();
    const char *dir = tmpdir_in("lastfail");
    const char *run = P(dir, "run");
    ck_assert_int_eq(cli_copy_tree(g_run, run), 0);
    size_t nl, nlog, n2;
    char *last = cli_read_file(P(run, "last.safetensors"), &nl), *log = cli_read_file(P(run, "train_log.csv"), &nlog);
    const char *args[] = {"train", "--data", g_data, "--out", run, "--teacher", g_teacher, "--size", "64",
                          "--epochs", "2", "--batch", "4", "--resume", NULL};
    cli_opts o = {.gated = 1};
    cli_proc p = cli_start(&o, args);
    char blockers[32][1400];
    for (int i = 0; i < 32; i++) {
        snprintf(blockers[i], sizeof blockers[i], "%s/last.safetensors.tmp.%ld.%d", run, (long)p.pid, i);
        ck_assert_int_eq(mkdir(blockers[i], 0755), 0);
    }
    cli_release(&p);
    cli_result r = cli_finish(&p);
    for (int i = 0; i < 32; i++) rmdir(blockers[i]);
    cli_expect_fail("train --resume, last.safetensors cannot be written", &r, -1, NEEDLES("last.safetensors"));
    char *x = cli_read_file(P(run, "last.safetensors"), &n2);
    ck_assert_msg(x && n2 == nl && memcmp(x, last, nl) == 0, "last.safetensors changed by the failed write");
    free(x);
    x = cli_read_file(P(run, "train_log.csv"), &n2);
    ck_assert_msg(x && n2 == nlog && memcmp(x, log, nlog) == 0,
                  "train_log.csv no longer matches last.safetensors:\n--- before\n%s--- after\n%s", log, x);
    free(x);
    free(last);
    free(log);
    ck_assert_int_eq(cli_count_tmp(run), 0);
    cli_result_free(&r);
}
END_TEST

/* Heat maps on a full disk. The map PNGs are small (a few KiB, less than the OpenCL driver
 * writes into its kernel cache), so a file-size limit cannot tell them apart: instead the
 * temporary file names the first map's write may use (<map>.tmp.<pid>.<n>, n counts the
 * process's atomic writes, see stfpm_write_parts_atomic) are made links to /dev/full before
 * the program runs, so its write fails with ENOSPC like on a full disk. */
START_TEST(test_disk_full_maps) {
    need_run();
    const char *dir = tmpdir_in("fullmaps");
    const char *maps = P(dir, "maps");
    cli_result r = cli_run(NULL, "test", "--data", g_data, "--model", g_run, "--maps", maps, NULL);
    cli_expect_ok("test --maps (first run)", &r);
    cli_result_free(&r);
    char *before = cli_dir_digest(maps);
    ck_assert_msg(strstr(before, "crack_000_overlay.png") != NULL, "expected maps missing:\n%s", before);
    const char *args[] = {"test", "--data", g_data, "--model", g_run, "--maps", maps, NULL};
    cli_opts o = {.gated = 1};
    cli_proc p = cli_start(&o, args);
    char links[32][1300];
    /* test images are processed in sorted order: crack/000.png first */
    for (int i = 0; i < 32; i++) {
        snprintf(links[i], sizeof links[i], "%s/crack_000_overlay.png.tmp.%ld.%d", maps, (long)p.pid, i);
        ck_assert_int_eq(symlink("/dev/full", links[i]), 0);
    }
    cli_release(&p);
    r = cli_finish(&p);
    for (int i = 0; i < 32; i++) unlink(links[i]);
    cli_expect_fail("test --maps with the disk full", &r, -1, NEEDLES("crack_000_overlay.png", "No space left"));
    char *after = cli_dir_digest(maps);
    ck_assert_str_eq(before, after);
    ck_assert_int_eq(cli_count_tmp(maps), 0);
    free(before);
    free(after);
    cli_result_free(&r);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* predict, help */

START_TEST(test_predict_bad_inputs) {
    need_run();
    const char *dir = tmpdir_in("pred");
    const char *missing = P(dir, "missing.png");
    cli_result r = cli_run(NULL, "predict", "--model", g_run, missing, NULL);
    cli_expect_fail("predict <missing image>", &r, -1, NEEDLES(missing));
    cli_result_free(&r);
    const char *empty = P(dir, "noimages");
    ck_assert_int_eq(mkdir(empty, 0755), 0);
    cli_write_file(P(empty, "readme.txt"), "x", 1);
    r = cli_run(NULL, "predict", "--model", g_run, empty, NULL);
    cli_expect_fail("predict <folder without images>", &r, -1, NEEDLES("no images to score", empty));
    cli_result_free(&r);
    r = cli_run(NULL, "predict", "--model", g_run, NULL);
    cli_expect_fail("predict without images", &r, 2, NEEDLES("IMAGE"));
    cli_result_free(&r);
    r = cli_run(NULL, "predict", "--model", P(dir, "no_model"), P(g_data, "test/good/000.png"), NULL);
    cli_expect_fail("predict --model <missing>", &r, -1, NEEDLES("no_model"));
    cli_result_free(&r);
    /* a huge --batch is not a reason to fail when there are only a few images */
    r = cli_run(NULL, "predict", "--model", g_run, "--batch", "100000000", P(g_data, "test/good/000.png"), NULL);
    cli_expect_ok("predict --batch 100000000 on one image", &r);
    cli_result_free(&r);
    r = cli_run(NULL, "test", "--data", g_data, "--model", g_run, "--batch", "100000000", NULL);
    cli_expect_ok("test --batch 100000000 on 6 images", &r);
    cli_result_free(&r);
}
END_TEST

START_TEST(test_help) {
    const char *cmds[] = {NULL, "devices", "train", "test", "predict", "demo"};
    for (int i = 0; i < 6; i++) {
        for (int h = 0; h < 2; h++) {
            const char *flag = h ? "-h" : "--help";
            cli_result r = cmds[i] ? cli_run(NULL, cmds[i], flag, NULL) : cli_run(NULL, flag, NULL);
            ck_assert_msg(r.code == 0 && r.signal == 0, "stfpm %s %s: exit %d\n%s", cmds[i] ? cmds[i] : "", flag,
                          r.code, r.err);
            char want[64];
            snprintf(want, sizeof want, "usage: stfpm %s", cmds[i] ? cmds[i] : "COMMAND");
            ck_assert_msg(strncmp(r.out, want, strlen(want)) == 0, "stfpm %s %s: stdout does not start with \"%s\":\n%s",
                          cmds[i] ? cmds[i] : "", flag, want, r.out);
            cli_result_free(&r);
        }
    }
    cli_result r = cli_run(NULL, NULL);
    cli_expect_fail("stfpm (no command)", &r, 2, NEEDLES("usage: stfpm"));
    cli_result_free(&r);
}
END_TEST

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    Suite *s = suite_create("cli_errors");
    /* one test case: the fixture (demo data + a 1-epoch run) is made once, in this process */
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 600);
    tcase_add_unchecked_fixture(tc, setup, teardown);
    const TTest *tests[] = {
        /* data */
        test_missing_data_folder, test_empty_train_good, test_zero_byte_image, test_truncated_image,
        test_non_image_file, test_unreadable_image, test_defect_without_mask, test_mask_other_size,
        test_grey_rgba_16bit_accepted,
        test_non_utf8_names,
        /* weights and checkpoints */
        test_teacher_truncated, test_teacher_corrupt_header, test_teacher_wrong_shape, test_teacher_nan,
        test_model_truncated, test_model_not_stfpm, test_resume_other_size_layers,
        /* device */
        test_device_no_match, test_no_opencl_platform, test_batch_too_big_for_device,
        /* training */
        test_nan_loss_keeps_checkpoints, test_option_values_out_of_range,
        /* output */
        test_out_not_writable, test_disk_full_checkpoint, test_last_checkpoint_write_fails, test_disk_full_maps,
        /* predict, help */
        test_predict_bad_inputs, test_help,
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) tcase_add_test(tc, tests[i]);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
