/* Data sets: MVTec-layout scanning (order, labels, masks, errors), plain folders, the seeded
 * split, the synthetic demo generator, and the real bottle category when ../shared has it.
 * Host only: no OpenCL device is used. */
#include "testutil.h"
#include "stfpm/dataset.h"
#include "stfpm/demo_data.h"
#include "rng.h"
#include "stfpm/image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_tmp[256];
static const char *tmpdir(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/stfpm_io_ds_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_tmp));
    return g_tmp;
}

static const char *tp(const char *fmt, const char *a) {
    static char buf[4][1024];
    static int k;
    char *b = buf[k++ % 4], rel[512];
    snprintf(rel, sizeof rel, fmt, a);
    snprintf(b, sizeof buf[0], "%s/%s", g_tmp, rel);
    return b;
}

static void mkdirs(const char *rel) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", g_tmp, rel);
    for (char *c = p + strlen(g_tmp) + 1;; c++)
        if (*c == '/' || !*c) {
            char s = *c;
            *c = 0;
            mkdir(p, 0755);
            *c = s;
            if (!s) break;
        }
}

/* a small w x h RGB or grey PNG at g_tmp/rel */
static void put_png(const char *rel, int w, int h, int c, int value) {
    uint8_t *px = malloc((size_t)w * h * c);
    memset(px, value, (size_t)w * h * c);
    TU_CHECK_STATUS(stfpm_png_write(tp("%s", rel), w, h, c, px));
    free(px);
}

static void assert_error(stfpm_status got, stfpm_status want, const char *n1, const char *n2) {
    ck_assert_msg(got == want, "status %s, want %s (%s)", stfpm_status_name(got), stfpm_status_name(want),
                  stfpm_last_error());
    if (n1) ck_assert_msg(strstr(stfpm_last_error(), n1), "\"%s\" lacks \"%s\"", stfpm_last_error(), n1);
    if (n2) ck_assert_msg(strstr(stfpm_last_error(), n2), "\"%s\" lacks \"%s\"", stfpm_last_error(), n2);
}

static const char *base(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int files_equal(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    ck_assert_msg(fa && fb, "open %s / %s", a, b);
    int eq = 1, ca, cb;
    do {
        ca = fgetc(fa);
        cb = fgetc(fb);
        if (ca != cb) eq = 0;
    } while (eq && ca != EOF);
    fclose(fa);
    fclose(fb);
    return eq;
}

/* ------------------------------------------------------------------------------------------ */

START_TEST(test_demo_scan) {
    tmpdir();
    stfpm_demo_options o;
    stfpm_demo_default_options(&o);
    o.size = 48;
    o.n_train = 7;
    o.n_test_good = 3;
    o.n_test_bad = 9;   /* crack 3, hole 2, scratch 2, stain 2 */
    TU_CHECK_STATUS(stfpm_demo_generate(tp("%s", "demo"), &o));
    /* a second run into the same folder is refused unless overwriting is allowed */
    assert_error(stfpm_demo_generate(tp("%s", "demo"), &o), STFPM_ERR_IO, "already holds", NULL);

    stfpm_dataset ds;
    TU_CHECK_STATUS(stfpm_dataset_open(tp("%s", "demo"), STFPM_DATASET_ALL, &ds));
    ck_assert_int_eq(ds.n_train, 7);
    ck_assert_int_eq(ds.n_test, 12);
    ck_assert_int_eq(ds.n_defects, 5);
    const char *want_defects[5] = {"crack", "good", "hole", "scratch", "stain"};
    int per[5] = {3, 3, 2, 2, 2};
    for (int i = 0; i < 5; i++) ck_assert_str_eq(ds.defects[i], want_defects[i]);
    for (int i = 0; i < ds.n_train; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "%03d.png", i);
        ck_assert_str_eq(base(ds.train[i].path), nm);
        ck_assert_int_eq(ds.train[i].label, 0);
        ck_assert_ptr_null(ds.train[i].mask_path);
    }
    int k = 0;
    float *chw = malloc(sizeof(float) * 3 * 32 * 32);
    uint8_t m01[32 * 32];
    for (int d = 0; d < 5; d++)
        for (int j = 0; j < per[d]; j++, k++) {
            stfpm_sample *s = &ds.test[k];
            char nm[16];
            snprintf(nm, sizeof nm, "%03d.png", j);
            ck_assert_str_eq(s->defect, want_defects[d]);
            ck_assert_str_eq(base(s->path), nm);
            int good = d == 1;
            ck_assert_int_eq(s->label, !good);
            if (good) {
                ck_assert_ptr_null(s->mask_path);
            } else {
                ck_assert_ptr_nonnull(s->mask_path);
                ck_assert_ptr_nonnull(strstr(s->mask_path, "ground_truth"));
                ck_assert_ptr_nonnull(strstr(s->mask_path, want_defects[d]));
            }
            TU_CHECK_STATUS(stfpm_dataset_load_sample(s, 32, chw, m01));
            int ones = 0;
            for (int i = 0; i < 32 * 32; i++) ones += m01[i];
            if (good) ck_assert_int_eq(ones, 0);
            else ck_assert_msg(ones > 0 && ones < 32 * 32 / 2, "%s: %d mask pixels", s->path, ones);
        }
    free(chw);
    stfpm_dataset_free(&ds);
    stfpm_dataset_free(&ds);   /* harmless twice */

    /* overwrite with other counts: no stale files remain */
    o.overwrite = 1;
    o.n_train = 4;
    TU_CHECK_STATUS(stfpm_demo_generate(tp("%s", "demo"), &o));
    TU_CHECK_STATUS(stfpm_dataset_open(tp("%s", "demo"), STFPM_DATASET_TRAIN, &ds));
    ck_assert_int_eq(ds.n_train, 4);
    ck_assert_int_eq(ds.n_test, 0);
    stfpm_dataset_free(&ds);
}
END_TEST

START_TEST(test_demo_deterministic_and_defects_visible) {
    tmpdir();
    stfpm_demo_options o;
    stfpm_demo_default_options(&o);
    o.size = 40;
    o.n_train = 2;
    o.n_test_good = 1;
    o.n_test_bad = 4;
    TU_CHECK_STATUS(stfpm_demo_generate(tp("%s", "a"), &o));
    TU_CHECK_STATUS(stfpm_demo_generate(tp("%s", "b"), &o));
    o.seed = 1;
    TU_CHECK_STATUS(stfpm_demo_generate(tp("%s", "c"), &o));
    ck_assert(files_equal(tp("%s", "a/train/good/001.png"), tp("%s", "b/train/good/001.png")));
    ck_assert(files_equal(tp("%s", "a/test/stain/000.png"), tp("%s", "b/test/stain/000.png")));
    ck_assert(files_equal(tp("%s", "a/ground_truth/crack/000_mask.png"), tp("%s", "b/ground_truth/crack/000_mask.png")));
    ck_assert(!files_equal(tp("%s", "a/train/good/001.png"), tp("%s", "c/train/good/001.png")));

    /* Every defect kind on every texture: the mask is non-empty and not huge; inside it the
     * image changed visibly (mean |diff| >= 8 levels over the mask); more than 2 pixels away
     * from it nothing changed (exact masks). Texture draws come first in the random stream, so
     * the same (split, index) without defect is the clean reference. */
    const char *tex[3] = {"metal", "fabric", "stone"};
    enum { S = 96 };
    static uint8_t clean[S * S * 3], bad[S * S * 3], mask[S * S];
    double min_change = 1e9;
    int min_px = S * S, max_px = 0;
    for (int t = 0; t < 3; t++)
        for (int d = 0; d < 4; d++)
            for (int idx = 0; idx < 3; idx++) {
                stfpm_demo_options q;
                stfpm_demo_default_options(&q);
                q.size = S;
                q.texture = tex[t];
                q.seed = 11;
                TU_CHECK_STATUS(stfpm_demo_render(&q, 1, idx, -1, clean, NULL));
                TU_CHECK_STATUS(stfpm_demo_render(&q, 1, idx, d, bad, mask));
                int n = 0;
                double diff = 0;
                for (int y = 0; y < S; y++)
                    for (int x = 0; x < S; x++) {
                        int near = 0;
                        for (int dy = -2; dy <= 2 && !near; dy++)
                            for (int dx = -2; dx <= 2 && !near; dx++) {
                                int yy = y + dy, xx = x + dx;
                                near = yy >= 0 && yy < S && xx >= 0 && xx < S && mask[yy * S + xx];
                            }
                        for (int c = 0; c < 3; c++) {
                            int i = (y * S + x) * 3 + c, dd = abs((int)bad[i] - clean[i]);
                            if (mask[y * S + x]) diff += dd;
                            else if (!near)
                                ck_assert_msg(dd == 0, "%s/%s: pixel (%d,%d) changed outside the mask", tex[t],
                                              stfpm_demo_defect_names[d], x, y);
                        }
                        n += mask[y * S + x] != 0;
                    }
                ck_assert_msg(n >= 6 && n < S * S / 8, "%s/%s #%d: %d mask pixels", tex[t], stfpm_demo_defect_names[d],
                              idx, n);
                diff /= 3.0 * n;
                min_change = diff < min_change ? diff : min_change;
                min_px = n < min_px ? n : min_px;
                max_px = n > max_px ? n : max_px;
                ck_assert_msg(diff >= 8.0, "%s/%s #%d: mean change %.1f levels inside the mask", tex[t],
                              stfpm_demo_defect_names[d], idx, diff);
            }
    printf("demo defects at %d x %d: mask %d..%d pixels, smallest mean change inside a mask %.1f levels\n", S, S,
           min_px, max_px, min_change);
    stfpm_demo_options q;
    stfpm_demo_default_options(&q);
    q.texture = "plastic";
    assert_error(stfpm_demo_render(&q, 0, 0, -1, clean, NULL), STFPM_ERR_ARG, "plastic", NULL);
}
END_TEST

START_TEST(test_layout_errors) {
    tmpdir();
    stfpm_dataset ds;
    /* missing root */
    assert_error(stfpm_dataset_open(tp("%s", "nope"), STFPM_DATASET_ALL, &ds), STFPM_ERR_IO, "nope", NULL);
    ck_assert_ptr_null(ds.train);
    /* MVTec layout without train/good */
    mkdirs("cat/train");
    mkdirs("cat/test/good");
    assert_error(stfpm_dataset_open(tp("%s", "cat"), STFPM_DATASET_TRAIN, &ds), STFPM_ERR_IO, "cat/train/good",
                 "missing");
    /* empty train/good (non-image files do not count) */
    mkdirs("cat/train/good");
    put_png("cat/train/good/.hidden.png", 8, 8, 3, 1);
    FILE *f = fopen(tp("%s", "cat/train/good/notes.txt"), "w");
    fputs("x", f);
    fclose(f);
    assert_error(stfpm_dataset_open(tp("%s", "cat"), STFPM_DATASET_TRAIN, &ds), STFPM_ERR_IO, "no training images",
                 "cat/train/good");
    put_png("cat/train/good/b.PNG", 8, 8, 3, 10);
    put_png("cat/train/good/a.png", 8, 8, 3, 20);
    TU_CHECK_STATUS(stfpm_dataset_open(tp("%s", "cat"), STFPM_DATASET_TRAIN, &ds));
    ck_assert_int_eq(ds.n_train, 2);
    ck_assert_str_eq(base(ds.train[0].path), "a.png");
    ck_assert_str_eq(base(ds.train[1].path), "b.PNG");
    stfpm_dataset_free(&ds);
    /* test/ with no images at all */
    assert_error(stfpm_dataset_open(tp("%s", "cat"), STFPM_DATASET_ALL, &ds), STFPM_ERR_IO, "no test images", NULL);
    /* a defective image without a mask */
    put_png("cat/test/good/g.png", 8, 8, 3, 30);
    mkdirs("cat/test/dent");
    put_png("cat/test/dent/d1.png", 8, 8, 3, 40);
    assert_error(stfpm_dataset_open(tp("%s", "cat"), STFPM_DATASET_ALL, &ds), STFPM_ERR_IO, "cat/test/dent/d1.png",
                 "ground_truth/dent/d1_mask.png");
    /* a mask of the wrong size: both files named */
    mkdirs("cat/ground_truth/dent");
    put_png("cat/ground_truth/dent/d1_mask.png", 9, 8, 1, 255);
    assert_error(stfpm_dataset_open(tp("%s", "cat"), STFPM_DATASET_ALL, &ds), STFPM_ERR_FORMAT, "d1_mask.png",
                 "dent/d1.png");
    ck_assert_ptr_nonnull(strstr(stfpm_last_error(), "9 x 8"));
    /* right size: accepted; jpg image with a png mask, and a .bmp mask for a bmp-named stem */
    put_png("cat/ground_truth/dent/d1_mask.png", 8, 8, 1, 255);
    TU_CHECK_STATUS(stfpm_dataset_open(tp("%s", "cat"), STFPM_DATASET_ALL, &ds));
    ck_assert_int_eq(ds.n_test, 2);
    ck_assert_str_eq(ds.test[0].defect, "dent");
    ck_assert_int_eq(ds.test[0].label, 1);
    ck_assert_str_eq(base(ds.test[0].mask_path), "d1_mask.png");
    ck_assert_str_eq(ds.test[1].defect, "good");
    ck_assert_int_eq(ds.test[1].label, 0);
    /* load_sample checks sizes again at load time (a mask replaced after the scan) */
    put_png("cat/ground_truth/dent/d1_mask.png", 8, 9, 1, 255);
    float chw[3 * 4 * 4];
    uint8_t m[16];
    assert_error(stfpm_dataset_load_sample(&ds.test[0], 4, chw, m), STFPM_ERR_FORMAT, "d1_mask.png", "d1.png");
    put_png("cat/ground_truth/dent/d1_mask.png", 8, 8, 1, 255);
    TU_CHECK_STATUS(stfpm_dataset_load_sample(&ds.test[0], 4, chw, m));
    for (int i = 0; i < 16; i++) ck_assert_int_eq(m[i], 1);
    TU_CHECK_STATUS(stfpm_dataset_load_sample(&ds.test[1], 4, chw, m));
    for (int i = 0; i < 16; i++) ck_assert_int_eq(m[i], 0);
    /* value 30 everywhere: (30/255 - 0.485) / 0.229 in channel 0 */
    ck_assert_float_eq_tol(chw[0], (30.0f / 255.0f - 0.485f) / 0.229f, 1e-6f);
    stfpm_dataset_free(&ds);
    /* a corrupt image is reported with its name at scan time (mask header check) */
    f = fopen(tp("%s", "cat/test/dent/d1.png"), "w");
    fputs("not a png", f);
    fclose(f);
    assert_error(stfpm_dataset_open(tp("%s", "cat"), STFPM_DATASET_ALL, &ds), STFPM_ERR_FORMAT, "d1.png", NULL);
    /* a file where the root should be */
    assert_error(stfpm_dataset_open(tp("%s", "cat/test/good/g.png"), STFPM_DATASET_TRAIN, &ds), STFPM_ERR_IO,
                 "not a folder", NULL);
}
END_TEST

START_TEST(test_plain_folder) {
    tmpdir();
    mkdirs("imgs/sub");
    put_png("imgs/b.png", 6, 5, 3, 1);
    put_png("imgs/sub/z.png", 6, 5, 3, 1);   /* sub-folders are not searched */
    /* other accepted extensions, any case; other files ignored */
    stfpm_image img;
    TU_CHECK_STATUS(stfpm_image_alloc(&img, 6, 5, 3));
    TU_CHECK_STATUS(stfpm_png_write(tp("%s", "imgs/A.JPG"), 6, 5, 3, img.data));   /* content is PNG: fine */
    TU_CHECK_STATUS(stfpm_png_write(tp("%s", "imgs/c.jpeg"), 6, 5, 3, img.data));
    TU_CHECK_STATUS(stfpm_png_write(tp("%s", "imgs/d.Bmp"), 6, 5, 3, img.data));
    TU_CHECK_STATUS(stfpm_png_write(tp("%s", "imgs/e.tga"), 6, 5, 3, img.data));
    TU_CHECK_STATUS(stfpm_png_write(tp("%s", "imgs/f.gif"), 6, 5, 3, img.data));
    TU_CHECK_STATUS(stfpm_png_write(tp("%s", "imgs/readme.md"), 6, 5, 3, img.data));
    stfpm_image_free(&img);
    stfpm_dataset ds;
    TU_CHECK_STATUS(stfpm_dataset_open(tp("%s", "imgs"), STFPM_DATASET_TRAIN, &ds));
    const char *want[5] = {"A.JPG", "b.png", "c.jpeg", "d.Bmp", "e.tga"};   /* byte order: 'A' < 'b' */
    ck_assert_int_eq(ds.n_train, 5);
    for (int i = 0; i < 5; i++) ck_assert_str_eq(base(ds.train[i].path), want[i]);
    stfpm_dataset_free(&ds);
    /* a plain folder has no test split */
    assert_error(stfpm_dataset_open(tp("%s", "imgs"), STFPM_DATASET_ALL, &ds), STFPM_ERR_IO, "test", "missing");
    ck_assert(stfpm_dataset_is_image_name("x.TGA"));
    ck_assert(!stfpm_dataset_is_image_name(".x.png"));
    ck_assert(!stfpm_dataset_is_image_name("png"));
    ck_assert(!stfpm_dataset_is_image_name("x.png~"));
    char **list;
    int n;
    TU_CHECK_STATUS(stfpm_dataset_list_images(tp("%s", "imgs/sub"), &list, &n));
    ck_assert_int_eq(n, 1);
    stfpm_dataset_free_list(list, n);
}
END_TEST

START_TEST(test_split) {
    /* splitmix64 known answer (Vigna's reference, state 0): 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4 */
    uint64_t st = 0;
    ck_assert(stfpm_splitmix64(&st) == 0xe220a8397b1dcdafULL);
    ck_assert(stfpm_splitmix64(&st) == 0x6e789e6aa1b965f4ULL);

    stfpm_split a, b;
    TU_CHECK_STATUS(stfpm_split_make(209, 0, 0.2, 1.0, &a));
    ck_assert_int_eq(a.n_val, 41);   /* int(209 * 0.2), like the reference code */
    ck_assert_int_eq(a.n_train, 168);
    int seen[209] = {0};
    for (int i = 0; i < a.n_val; i++) {
        if (i) ck_assert_int_lt(a.val[i - 1], a.val[i]);
        seen[a.val[i]]++;
    }
    for (int i = 0; i < a.n_train; i++) {
        if (i) ck_assert_int_lt(a.train[i - 1], a.train[i]);
        seen[a.train[i]]++;
    }
    for (int i = 0; i < 209; i++) ck_assert_int_eq(seen[i], 1);
    /* deterministic; another seed differs */
    TU_CHECK_STATUS(stfpm_split_make(209, 0, 0.2, 1.0, &b));
    ck_assert_int_eq(memcmp(a.val, b.val, sizeof(int) * a.n_val), 0);
    stfpm_split_free(&b);
    TU_CHECK_STATUS(stfpm_split_make(209, 1, 0.2, 1.0, &b));
    ck_assert_int_ne(memcmp(a.val, b.val, sizeof(int) * a.n_val), 0);
    stfpm_split_free(&b);
    /* training subset: 10 % of the 168, drawn from the training part only */
    TU_CHECK_STATUS(stfpm_split_make(209, 0, 0.2, 0.1, &b));
    ck_assert_int_eq(b.n_train, 17);
    ck_assert_int_eq(memcmp(a.val, b.val, sizeof(int) * a.n_val), 0);
    for (int i = 0; i < b.n_train; i++) {
        int found = 0;
        for (int j = 0; j < a.n_train; j++) found |= a.train[j] == b.train[i];
        ck_assert(found);
    }
    stfpm_split_free(&b);
    stfpm_split_free(&a);
    /* the permutation is Fisher-Yates over splitmix64: check it against an inline copy */
    int perm[10], want[10];
    stfpm_permutation(10, 42, perm);
    for (int i = 0; i < 10; i++) want[i] = i;
    st = 42;
    for (int i = 9; i > 0; i--) {
        int j = (int)(stfpm_splitmix64(&st) % (uint64_t)(i + 1)), t = want[i];
        want[i] = want[j];
        want[j] = t;
    }
    for (int i = 0; i < 10; i++) ck_assert_int_eq(perm[i], want[i]);
    /* edges */
    TU_CHECK_STATUS(stfpm_split_make(1, 0, 0.2, 1.0, &a));
    ck_assert_int_eq(a.n_val, 0);
    ck_assert_int_eq(a.n_train, 1);
    stfpm_split_free(&a);
    TU_CHECK_STATUS(stfpm_split_make(5, 3, 0.2, 0.01, &a));
    ck_assert_int_eq(a.n_val, 1);
    ck_assert_int_eq(a.n_train, 1);
    stfpm_split_free(&a);
    assert_error(stfpm_split_make(0, 0, 0.2, 1.0, &a), STFPM_ERR_ARG, NULL, NULL);
    assert_error(stfpm_split_make(10, 0, 1.0, 1.0, &a), STFPM_ERR_ARG, "validation", NULL);
    assert_error(stfpm_split_make(10, 0, 0.2, 0.0, &a), STFPM_ERR_ARG, "training", NULL);
}
END_TEST

START_TEST(test_bottle) {
    const char *shared = tu_shared_dir();
    char root[2300];
    snprintf(root, sizeof root, "%s/data/mvtec_ad/bottle", shared ? shared : "../shared");
    struct stat st;
    if (!shared || stat(root, &st) != 0) TU_SKIP("MVTec bottle scan because %s is absent", root);
    stfpm_dataset ds;
    TU_CHECK_STATUS(stfpm_dataset_open(root, STFPM_DATASET_ALL, &ds));
    const char *names[4] = {"broken_large", "broken_small", "contamination", "good"};
    int counts[4] = {20, 22, 21, 20}, got[4] = {0};
    ck_assert_int_eq(ds.n_train, 209);
    ck_assert_int_eq(ds.n_test, 83);
    ck_assert_int_eq(ds.n_defects, 4);
    for (int i = 0; i < 4; i++) ck_assert_str_eq(ds.defects[i], names[i]);
    for (int i = 0; i < ds.n_test; i++)
        for (int d = 0; d < 4; d++)
            if (!strcmp(ds.test[i].defect, names[d])) {
                got[d]++;
                ck_assert_int_eq(ds.test[i].label, d != 3);
                ck_assert_int_eq(ds.test[i].mask_path != NULL, d != 3);
            }
    for (int d = 0; d < 4; d++) ck_assert_int_eq(got[d], counts[d]);
    ck_assert_str_eq(base(ds.train[0].path), "000.png");
    ck_assert_str_eq(base(ds.train[208].path), "208.png");
    printf("bottle: train/good %d, test %d (broken_large %d, broken_small %d, contamination %d, good %d)\n",
           ds.n_train, ds.n_test, got[0], got[1], got[2], got[3]);
    /* one defective sample through the loader: 256 x 256 mask with a plausible area */
    float *chw = malloc(sizeof(float) * 3 * 256 * 256);
    uint8_t *m = malloc(256 * 256);
    TU_CHECK_STATUS(stfpm_dataset_load_sample(&ds.test[0], 256, chw, m));
    int ones = 0;
    for (int i = 0; i < 256 * 256; i++) ones += m[i];
    ck_assert_msg(ones > 50 && ones < 256 * 256 / 2, "%s: %d mask pixels at 256", ds.test[0].mask_path, ones);
    free(chw);
    free(m);
    stfpm_dataset_free(&ds);
}
END_TEST

int main(void) {
    Suite *s = suite_create("io_dataset");
    TCase *tc = tcase_create("dataset");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_demo_scan);
    tcase_add_test(tc, test_demo_deterministic_and_defects_visible);
    tcase_add_test(tc, test_layout_errors);
    tcase_add_test(tc, test_plain_folder);
    tcase_add_test(tc, test_split);
    tcase_add_test(tc, test_bottle);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
