/* Image I/O: decoding of every fixture kind, error paths (missing, empty, truncated, not an
 * image, pixel limit), preprocessing against torchvision (tests/ref/image_ref.h, made by
 * tests/ref/gen_image_ref.py), mask binarisation, PNG writers (8/16-bit round trips, atomic
 * writes and their errors), heatmap overlays. Host only: no OpenCL device is used. */
#include "testutil.h"
#include "stfpm/image.h"
#include "stfpm/dataset.h"
#include "rng.h"
#include "ref/image_ref.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include <stb/stb_image.h>

static const char *fixture(const char *name) {
    static char buf[4][2048];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, sizeof buf[0], "%s", tu_source_path("tests/data/images"));
    size_t n = strlen(b);
    snprintf(b + n, sizeof buf[0] - n, "/%s", name);
    return b;
}

static char g_tmp[256];
static const char *tmpdir(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/stfpm_io_img_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_tmp));
    return g_tmp;
}

static const char *tmpfile_in(const char *name) {
    static char buf[2][512];
    static int k;
    char *b = buf[k++ % 2];
    snprintf(b, sizeof buf[0], "%s/%s", g_tmp, name);
    return b;
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    if (n) ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

static uint8_t *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* number of directory entries whose name contains ".tmp." (left-over temporaries) */
static int count_tmp_files(const char *dir) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

static void assert_error(stfpm_status got, stfpm_status want, const char *needle1, const char *needle2) {
    ck_assert_msg(got == want, "status %s, want %s (%s)", stfpm_status_name(got), stfpm_status_name(want),
                  stfpm_last_error());
    if (needle1)
        ck_assert_msg(strstr(stfpm_last_error(), needle1), "message \"%s\" lacks \"%s\"", stfpm_last_error(),
                      needle1);
    if (needle2)
        ck_assert_msg(strstr(stfpm_last_error(), needle2), "message \"%s\" lacks \"%s\"", stfpm_last_error(),
                      needle2);
}

static void assert_pixels(const char *what, const stfpm_image *img, int w, int h, int c, const uint8_t *want) {
    ck_assert_msg(img->w == w && img->h == h && img->c == c, "%s: got %d x %d x %d want %d x %d x %d", what,
                  img->w, img->h, img->c, w, h, c);
    size_t n = (size_t)w * h * c;
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(img->data[i] == want[i], "%s: byte %zu (x %zu, y %zu, ch %zu) got %d want %d", what, i,
                      (i / c) % w, i / c / w, i % c, img->data[i], want[i]);
}

/* Compare preprocessed tensors; report the worst difference in units of one 8-bit step
 * (1/255 before normalisation). Tolerance: float32 rounding only (1e-6 absolute). */
static void assert_tensor(const char *what, const float *got, const float *want, int S) {
    double worst = 0;
    size_t wi = 0, n = (size_t)3 * S * S;
    for (size_t i = 0; i < n; i++) {
        double steps = fabs((double)got[i] - want[i]) * stfpm_imagenet_std[i / ((size_t)S * S)] * 255.0;
        if (!(steps <= worst)) {
            worst = steps;
            wi = i;
        }
    }
    ck_assert_msg(worst < 1e-3, "%s: element %zu got %.8g want %.8g (%.3f 8-bit steps)", what, wi, got[wi],
                  want[wi], worst);
    tu_assert_close(what, got, want, n, 1e-6, 0);
    double mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs((double)got[i] - want[i]));
    printf("%s vs torchvision at %d x %d: max |diff| %.3g\n", what, S, S, mx);
}

/* ------------------------------------------------------------------------------------------ */

START_TEST(test_load_fixtures) {
    struct {
        const char *file;
        int w, h;
        const uint8_t *px;
    } cases[] = {
        {"rgb_37x23.png", REF_RGB_W, REF_RGB_H, ref_rgb_pixels},
        {"rgb_37x23.bmp", REF_RGB_W, REF_RGB_H, ref_rgb_pixels},
        {"rgb_37x23.tga", REF_RGB_W, REF_RGB_H, ref_rgb_pixels},
        {"grey_29x31.png", REF_GREY_W, REF_GREY_H, ref_grey_pixels},
        {"rgba_23x37.png", REF_RGBA_W, REF_RGBA_H, ref_rgba_pixels},
        {"la_17x13.png", REF_LA_W, REF_LA_H, ref_la_pixels},
        {"grey16_31x19.png", REF_GREY16_W, REF_GREY16_H, ref_grey16_pixels},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        stfpm_image img;
        TU_CHECK_STATUS(stfpm_image_load(fixture(cases[i].file), &img));
        assert_pixels(cases[i].file, &img, cases[i].w, cases[i].h, 3, cases[i].px);
        stfpm_image_free(&img);
        /* the same bytes from memory */
        size_t n;
        uint8_t *b = read_bytes(fixture(cases[i].file), &n);
        TU_CHECK_STATUS(stfpm_image_load_mem(b, n, cases[i].file, &img));
        assert_pixels(cases[i].file, &img, cases[i].w, cases[i].h, 3, cases[i].px);
        stfpm_image_free(&img);
        free(b);
        int w, h;
        TU_CHECK_STATUS(stfpm_image_info(fixture(cases[i].file), &w, &h));
        ck_assert_int_eq(w, cases[i].w);
        ck_assert_int_eq(h, cases[i].h);
    }
    /* 16-bit rounding edge cases stored in the first row: 0, 128, 129, 65535 -> 0, 0, 1, 255 */
    ck_assert_int_eq(ref_grey16_pixels[0], 0);
    ck_assert_int_eq(ref_grey16_pixels[3], 0);
    ck_assert_int_eq(ref_grey16_pixels[6], 1);
    ck_assert_int_eq(ref_grey16_pixels[9], 255);
}
END_TEST

START_TEST(test_load_jpeg) {
    /* JPEG decoders differ (IDCT, chroma upsampling): stb_image vs PIL/libjpeg on the same
     * file. Tolerance: mean |diff| <= 0.5 levels, max <= 4 (measured: 0.07 and 2). */
    stfpm_image img;
    TU_CHECK_STATUS(stfpm_image_load(fixture("rgb_37x23.jpg"), &img));
    ck_assert_int_eq(img.w, REF_RGB_W);
    ck_assert_int_eq(img.h, REF_RGB_H);
    ck_assert_int_eq(img.c, 3);
    double sum = 0, sum_png = 0;
    int mx = 0;
    for (int i = 0; i < REF_RGB_W * REF_RGB_H * 3; i++) {
        int d = abs((int)img.data[i] - ref_jpg_pixels[i]);
        sum += d;
        sum_png += abs((int)img.data[i] - ref_rgb_pixels[i]);
        if (d > mx) mx = d;
    }
    double mean = sum / (REF_RGB_W * REF_RGB_H * 3), mean_png = sum_png / (REF_RGB_W * REF_RGB_H * 3);
    printf("jpeg: stb vs PIL mean %.3f max %d levels; vs the lossless original mean %.2f\n", mean, mx, mean_png);
    ck_assert_msg(mean <= 0.5 && mx <= 4, "jpeg stb vs PIL: mean %.2f max %d", mean, mx);
    ck_assert_msg(mean < mean_png, "the decode should be closer to PIL's than to the original");
    stfpm_image_free(&img);
}
END_TEST

START_TEST(test_load_errors) {
    tmpdir();
    stfpm_image img = {0};
    /* missing */
    const char *missing = tmpfile_in("does_not_exist.png");
    assert_error(stfpm_image_load(missing, &img), STFPM_ERR_IO, missing, "No such file");
    ck_assert_ptr_null(img.data);
    /* a directory */
    assert_error(stfpm_image_load(g_tmp, &img), STFPM_ERR_IO, g_tmp, "not a regular file");
    /* zero bytes */
    const char *empty = tmpfile_in("empty.png");
    write_bytes(empty, "", 0);
    assert_error(stfpm_image_load(empty, &img), STFPM_ERR_FORMAT, empty, "0 bytes");
    assert_error(stfpm_image_load_mem("", 0, "buf0", &img), STFPM_ERR_FORMAT, "buf0", "0 bytes");
    /* truncated PNG: header intact, data cut */
    size_t n;
    uint8_t *b = read_bytes(fixture("rgb_37x23.png"), &n);
    const char *trunc = tmpfile_in("truncated.png");
    write_bytes(trunc, b, n / 2);
    assert_error(stfpm_image_load(trunc, &img), STFPM_ERR_FORMAT, trunc, "truncated");
    /* only the signature and part of IHDR */
    write_bytes(trunc, b, 20);
    assert_error(stfpm_image_load(trunc, &img), STFPM_ERR_FORMAT, trunc, NULL);
    free(b);
    /* truncated BMP */
    b = read_bytes(fixture("rgb_37x23.bmp"), &n);
    const char *tbmp = tmpfile_in("truncated.bmp");
    write_bytes(tbmp, b, n - 100);
    assert_error(stfpm_image_load(tbmp, &img), STFPM_ERR_FORMAT, tbmp, "truncated");
    free(b);
    /* truncated TGA (uncompressed): stb_image alone would pad it with zeros */
    b = read_bytes(fixture("rgb_37x23.tga"), &n);
    const char *ttga = tmpfile_in("truncated.tga");
    write_bytes(ttga, b, n - 40);
    assert_error(stfpm_image_load(ttga, &img), STFPM_ERR_FORMAT, ttga, "truncated");
    free(b);
    /* truncated JPEG */
    b = read_bytes(fixture("rgb_37x23.jpg"), &n);
    const char *tjpg = tmpfile_in("truncated.jpg");
    write_bytes(tjpg, b, n * 3 / 4);
    assert_error(stfpm_image_load(tjpg, &img), STFPM_ERR_FORMAT, tjpg, NULL);
    free(b);
    /* formats outside PNG/JPEG/BMP/TGA are refused by signature */
    const char gif[] = "GIF89a\x01\x00\x01\x00\x00\x00\x00;";
    assert_error(stfpm_image_load_mem(gif, sizeof gif - 1, "x.gif", &img), STFPM_ERR_FORMAT, "x.gif", "GIF");
    /* text file */
    const char *txt = fixture("not_an_image.png");
    assert_error(stfpm_image_load(txt, &img), STFPM_ERR_FORMAT, txt, "not a readable image");
    assert_error(stfpm_image_load_mask(txt, &img), STFPM_ERR_FORMAT, txt, NULL);
    ck_assert_ptr_null(img.data);
    /* decompression bomb: header claims 20000 x 20000, refused before decoding */
    const char *huge = fixture("huge_header.png");
    assert_error(stfpm_image_load(huge, &img), STFPM_ERR_FORMAT, huge, "400000000 pixels");
    ck_assert_ptr_nonnull(strstr(stfpm_last_error(), "limit"));
    int w, h;
    /* a header stb_image itself can size (11000 x 10000 x 3 bytes < 2^30): the limit applies */
    uint8_t png[33] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                       0, 0, 0x2a, 0xf8, 0, 0, 0x27, 0x10, 8, 2, 0, 0, 0, 0, 0, 0, 0};
    ck_assert_int_eq(stbi_info_from_memory(png, sizeof png, &w, &h, NULL), 1);
    ck_assert_int_eq(w, 11000);
    ck_assert_int_eq(h, 10000);
    assert_error(stfpm_image_load_mem(png, sizeof png, "big.png", &img), STFPM_ERR_FORMAT, "big.png",
                 "110000000 pixels");
    /* a lower limit applies to ordinary images too */
    ck_assert_uint_eq(stfpm_image_max_pixels(), STFPM_IMAGE_DEFAULT_MAX_PIXELS);
    stfpm_image_set_max_pixels(REF_RGB_W * REF_RGB_H - 1);
    assert_error(stfpm_image_load(fixture("rgb_37x23.png"), &img), STFPM_ERR_FORMAT, "rgb_37x23.png", "limit");
    stfpm_image_set_max_pixels(REF_RGB_W * REF_RGB_H);
    TU_CHECK_STATUS(stfpm_image_load(fixture("rgb_37x23.png"), &img));
    stfpm_image_free(&img);
    stfpm_image_set_max_pixels(0);
    ck_assert_uint_eq(stfpm_image_max_pixels(), STFPM_IMAGE_DEFAULT_MAX_PIXELS);
    stfpm_image_free(&img);
    stfpm_image_free(&img);   /* double free of a zeroed image is harmless */
}
END_TEST

START_TEST(test_preprocess_vs_torchvision) {
    struct {
        const char *file;
        const float *down;
    } cases[] = {
        {"rgb_37x23.png", ref_rgb_down}, {"grey_29x31.png", ref_grey_down}, {"rgba_23x37.png", ref_rgba_down},
        {"la_17x13.png", ref_la_down},   {"grey16_31x19.png", ref_grey16_down},
    };
    float *t = malloc(sizeof(float) * 3 * REF_S_UP * REF_S_UP);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TU_CHECK_STATUS(stfpm_image_load_tensor(fixture(cases[i].file), REF_S_DOWN, t));
        assert_tensor(cases[i].file, t, cases[i].down, REF_S_DOWN);
    }
    /* upscaling (37 x 23 -> 40 x 40: support 1 in both directions) */
    TU_CHECK_STATUS(stfpm_image_load_tensor(fixture("rgb_37x23.png"), REF_S_UP, t));
    assert_tensor("rgb_37x23.png up", t, ref_rgb_up, REF_S_UP);
    /* S equal to the image size in neither direction vs both: identity copy path */
    stfpm_image img, r;
    TU_CHECK_STATUS(stfpm_image_load(fixture("rgb_37x23.png"), &img));
    TU_CHECK_STATUS(stfpm_image_resize(&img, img.w, img.h, &r));
    assert_pixels("identity resize", &r, REF_RGB_W, REF_RGB_H, 3, ref_rgb_pixels);
    stfpm_image_free(&r);
    /* inverse normalisation gives the resized 8-bit image back exactly */
    TU_CHECK_STATUS(stfpm_image_to_tensor(&img, REF_S_DOWN, t));
    stfpm_image back, direct;
    TU_CHECK_STATUS(stfpm_tensor_to_image(t, REF_S_DOWN, REF_S_DOWN, &back));
    TU_CHECK_STATUS(stfpm_image_resize(&img, REF_S_DOWN, REF_S_DOWN, &direct));
    assert_pixels("tensor_to_image", &back, REF_S_DOWN, REF_S_DOWN, 3, direct.data);
    stfpm_image_free(&back);
    stfpm_image_free(&direct);
    /* argument errors */
    ck_assert_int_eq(stfpm_image_to_tensor(&img, 0, t), STFPM_ERR_ARG);
    stfpm_image grey;
    TU_CHECK_STATUS(stfpm_image_alloc(&grey, 4, 4, 1));
    ck_assert_int_eq(stfpm_image_to_tensor(&grey, 8, t), STFPM_ERR_ARG);
    stfpm_image_free(&grey);
    stfpm_image_free(&img);
    free(t);
}
END_TEST

/* Raw 8-bit PIL resizes, byte-exact. 50 x 9 takes Pillow 13's vertical-first order (height
 * shrinks by 14 pixels, more than twice the width's -13), the others horizontal-first. */
START_TEST(test_resize_exact_vs_pil) {
    stfpm_image img;
    TU_CHECK_STATUS(stfpm_image_load(fixture("rgb_37x23.png"), &img));
    struct {
        int w, h;
        const uint8_t *want;
    } cases[] = {
        {20, 9, ref_rgb_resize_20x9}, {50, 9, ref_rgb_resize_50x9},
        {11, 41, ref_rgb_resize_11x41}, {37, 5, ref_rgb_resize_37x5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        stfpm_image r;
        char what[64];
        snprintf(what, sizeof what, "PIL resize to %d x %d", cases[i].w, cases[i].h);
        TU_CHECK_STATUS(stfpm_image_resize(&img, cases[i].w, cases[i].h, &r));
        assert_pixels(what, &r, cases[i].w, cases[i].h, 3, cases[i].want);
        stfpm_image_free(&r);
    }
    stfpm_image_free(&img);
}
END_TEST

START_TEST(test_mask_binarisation) {
    stfpm_image m;
    TU_CHECK_STATUS(stfpm_image_load_mask(fixture("mask_37x23.png"), &m));
    assert_pixels("mask pixels", &m, 37, 23, 1, ref_mask_pixels);
    struct {
        int S;
        const uint8_t *want;
    } cases[] = {{REF_S_DOWN, ref_mask_down}, {REF_S_UP, ref_mask_up}, {8, ref_mask_8}};
    uint8_t out[REF_S_UP * REF_S_UP];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int S = cases[i].S, ones = 0;
        TU_CHECK_STATUS(stfpm_mask_to_binary(&m, S, out));
        for (int k = 0; k < S * S; k++) {
            ck_assert_msg(out[k] == cases[i].want[k], "mask S=%d pixel (%d, %d) got %d want %d", S, k % S, k / S,
                          out[k], cases[i].want[k]);
            ones += out[k];
        }
        ck_assert_int_gt(ones, 0);
        ck_assert_int_lt(ones, S * S);
    }
    stfpm_image_free(&m);
    /* any non-zero value counts: a mask of value 1 only */
    stfpm_image one;
    TU_CHECK_STATUS(stfpm_image_alloc(&one, 9, 9, 1));
    one.data[4 * 9 + 4] = 1;
    TU_CHECK_STATUS(stfpm_mask_to_binary(&one, 9, out));
    ck_assert_int_eq(out[4 * 9 + 4], 1);
    ck_assert_int_eq(out[0], 0);
    stfpm_image_free(&one);
    /* an RGB mask uses the max over channels; an RGB image is refused by mask_to_binary */
    tmpdir();
    uint8_t rgb[2 * 2 * 3] = {0, 0, 0, 0, 0, 1, 0, 200, 0, 0, 0, 0};
    const char *p = tmpfile_in("rgbmask.png");
    TU_CHECK_STATUS(stfpm_png_write(p, 2, 2, 3, rgb));
    TU_CHECK_STATUS(stfpm_image_load_mask(p, &m));
    ck_assert_int_eq(m.c, 1);
    ck_assert_int_eq(m.data[0], 0);
    ck_assert_int_eq(m.data[1], 1);
    ck_assert_int_eq(m.data[2], 200);
    ck_assert_int_eq(m.data[3], 0);
    stfpm_image_free(&m);
    TU_CHECK_STATUS(stfpm_image_load(p, &m));
    ck_assert_int_eq(stfpm_mask_to_binary(&m, 4, out), STFPM_ERR_ARG);
    stfpm_image_free(&m);
    /* a 16-bit mask value of 1 stays non-zero */
    uint16_t m16[4] = {0, 1, 256, 65535};
    TU_CHECK_STATUS(stfpm_png_write_grey16(p, 2, 2, m16));
    TU_CHECK_STATUS(stfpm_image_load_mask(p, &m));
    ck_assert_int_eq(m.data[0], 0);
    ck_assert_int_eq(m.data[1], 1);
    ck_assert_int_eq(m.data[2], 1);
    ck_assert_int_eq(m.data[3], 255);
    stfpm_image_free(&m);
}
END_TEST

START_TEST(test_png_roundtrip) {
    tmpdir();
    /* 8-bit, 1..4 channels, odd sizes, content that exercises every PNG filter */
    for (int c = 1; c <= 4; c++) {
        int w = 13 + c, h = 7 + 2 * c;
        uint8_t *px = malloc((size_t)w * h * c);
        uint64_t st = 42 + c;
        for (int i = 0; i < w * h * c; i++) {
            int x = (i / c) % w, y = i / c / w;
            px[i] = (y % 3 == 0) ? (uint8_t)(x * 17 + y) : (uint8_t)(stfpm_splitmix64(&st) >> 56);
        }
        const char *p = tmpfile_in("rt8.png");
        TU_CHECK_STATUS(stfpm_png_write(p, w, h, c, px));
        int gw, gh, gc;
        uint8_t *got = stbi_load(p, &gw, &gh, &gc, 0);
        ck_assert_ptr_nonnull(got);
        ck_assert_int_eq(gw, w);
        ck_assert_int_eq(gh, h);
        ck_assert_int_eq(gc, c);
        ck_assert_int_eq(memcmp(got, px, (size_t)w * h * c), 0);
        stbi_image_free(got);
        free(px);
    }
    /* 16-bit grey: exact through stbi_load_16, scaled through stfpm_image_load */
    int w = 31, h = 17;
    uint16_t *v = malloc(sizeof(uint16_t) * w * h);
    uint64_t st = 7;
    for (int i = 0; i < w * h; i++) v[i] = (uint16_t)(stfpm_splitmix64(&st) >> 48);
    v[0] = 0;
    v[1] = 65535;
    v[2] = 128;
    v[3] = 129;
    v[4] = 257 * 100 + 128;
    v[5] = 257 * 100 + 129;
    const char *p = tmpfile_in("rt16.png");
    TU_CHECK_STATUS(stfpm_png_write_grey16(p, w, h, v));
    ck_assert(stbi_is_16_bit(p));
    int gw, gh, gc;
    uint16_t *got = stbi_load_16(p, &gw, &gh, &gc, 0);
    ck_assert_ptr_nonnull(got);
    ck_assert_int_eq(gw, w);
    ck_assert_int_eq(gh, h);
    ck_assert_int_eq(gc, 1);
    for (int i = 0; i < w * h; i++) ck_assert_int_eq(got[i], v[i]);
    stbi_image_free(got);
    stfpm_image img;
    TU_CHECK_STATUS(stfpm_image_load(p, &img));
    for (int i = 0; i < w * h; i++) {
        int want = (int)lround(v[i] / 257.0);
        ck_assert_msg(img.data[i * 3] == want && img.data[i * 3 + 1] == want && img.data[i * 3 + 2] == want,
                      "16-bit %d -> %d want %d", v[i], img.data[i * 3], want);
    }
    ck_assert_int_eq(img.data[2 * 3], 0);
    ck_assert_int_eq(img.data[3 * 3], 1);
    ck_assert_int_eq(img.data[4 * 3], 100);
    ck_assert_int_eq(img.data[5 * 3], 101);
    stfpm_image_free(&img);
    free(v);
    ck_assert_int_eq(count_tmp_files(g_tmp), 0);
}
END_TEST

START_TEST(test_png_write_errors) {
    tmpdir();
    uint8_t px[64 * 64 * 3];
    uint64_t st = 3;
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(stfpm_splitmix64(&st) >> 56);
    /* missing directory */
    const char *bad = tmpfile_in("no/such/dir/out.png");
    assert_error(stfpm_png_write(bad, 64, 64, 3, px), STFPM_ERR_IO, bad, "No such file");
    uint16_t v16[4] = {1, 2, 3, 4};
    assert_error(stfpm_png_write_grey16(bad, 2, 2, v16), STFPM_ERR_IO, bad, NULL);
    /* read-only directory (skipped as root, where permissions do not apply) */
    if (geteuid() != 0) {
        char ro[512];
        snprintf(ro, sizeof ro, "%s/ro", g_tmp);
        ck_assert_int_eq(mkdir(ro, 0555), 0);
        char out[600];
        snprintf(out, sizeof out, "%s/x.png", ro);
        assert_error(stfpm_png_write(out, 64, 64, 3, px), STFPM_ERR_IO, out, "Permission denied");
    } else {
        tu_skip_part("read-only directory case because the test runs as root");
    }
    /* "disk full": a file-size limit makes write() fail with EFBIG. The previous file must
     * survive untouched and no temporary may remain. (Check forks each test: the limit stays
     * in this child.) */
    const char *p = tmpfile_in("keep.png");
    uint8_t small[3] = {1, 2, 3};
    TU_CHECK_STATUS(stfpm_png_write(p, 1, 1, 3, small));
    size_t n0;
    uint8_t *before = read_bytes(p, &n0);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {.rlim_cur = 512, .rlim_max = RLIM_INFINITY};
    /* no Check assertion while the limit holds: Check's own result file would hit it too */
    int lim = setrlimit(RLIMIT_FSIZE, &rl);
    stfpm_status full = stfpm_png_write(p, 64, 64, 3, px);
    rl.rlim_cur = RLIM_INFINITY;
    int unlim = setrlimit(RLIMIT_FSIZE, &rl);
    ck_assert_int_eq(lim, 0);
    ck_assert_int_eq(unlim, 0);
    assert_error(full, STFPM_ERR_IO, p, "too large");
    size_t n1;
    uint8_t *after = read_bytes(p, &n1);
    ck_assert_uint_eq(n0, n1);
    ck_assert_int_eq(memcmp(before, after, n0), 0);
    free(before);
    free(after);
    ck_assert_int_eq(count_tmp_files(g_tmp), 0);
    /* invalid arguments */
    ck_assert_int_eq(stfpm_png_write(p, 0, 4, 3, px), STFPM_ERR_ARG);
    ck_assert_int_eq(stfpm_png_write(p, 4, 4, 5, px), STFPM_ERR_ARG);
}
END_TEST

START_TEST(test_heatmap_overlay) {
    uint8_t c[3];
    stfpm_colormap_jet(0.0f, c);      /* dark blue */
    ck_assert(c[0] == 0 && c[1] == 0 && c[2] == 128);
    stfpm_colormap_jet(1.0f, c);      /* dark red */
    ck_assert(c[0] == 128 && c[1] == 0 && c[2] == 0);
    stfpm_colormap_jet(0.5f, c);      /* green-ish middle */
    ck_assert(c[1] == 255 && c[0] == 128 && c[2] == 128);
    stfpm_colormap_jet(NAN, c);
    ck_assert(c[0] == 0 && c[2] == 128);
    stfpm_colormap_jet(7.0f, c);      /* clamped */
    ck_assert(c[0] == 128 && c[2] == 0);

    enum { W = 8, H = 5 };
    uint8_t rgb[W * H * 3], out[W * H * 3];
    float map[W * H];
    for (int i = 0; i < W * H; i++) {
        rgb[3 * i] = (uint8_t)(i * 5);
        rgb[3 * i + 1] = 100;
        rgb[3 * i + 2] = (uint8_t)(255 - i);
        map[i] = 2.0f + (float)i;   /* min 2, max 2 + W*H-1 */
    }
    TU_CHECK_STATUS(stfpm_heatmap_overlay(rgb, W, H, map, 0, 0, 0.0f, out));
    ck_assert_int_eq(memcmp(out, rgb, sizeof rgb), 0);
    TU_CHECK_STATUS(stfpm_heatmap_overlay(rgb, W, H, map, 0, 0, 1.0f, out));   /* auto range */
    ck_assert(out[0] == 0 && out[1] == 0 && out[2] == 128);
    ck_assert(out[3 * (W * H - 1)] == 128 && out[3 * (W * H - 1) + 2] == 0);
    TU_CHECK_STATUS(stfpm_heatmap_overlay(rgb, W, H, map, 2.0f, 2.0f + W * H - 1, 0.5f, out));
    stfpm_colormap_jet(10.0f / (W * H - 1), c);
    for (int k = 0; k < 3; k++) ck_assert_int_eq(out[30 + k], (int)lrintf(0.5f * rgb[30 + k] + 0.5f * c[k]));
    ck_assert_int_eq(stfpm_heatmap_overlay(rgb, W, H, map, 0, 1, 1.5f, out), STFPM_ERR_ARG);
    /* constant map: no division by zero */
    float flat[W * H];
    for (int i = 0; i < W * H; i++) flat[i] = 3.0f;
    TU_CHECK_STATUS(stfpm_heatmap_overlay(rgb, W, H, flat, 0, 0, 1.0f, out));
    /* written as PNG and read back */
    tmpdir();
    stfpm_image img;
    TU_CHECK_STATUS(stfpm_image_alloc(&img, W, H, 3));
    memcpy(img.data, rgb, sizeof rgb);
    const char *p = tmpfile_in("overlay.png");
    TU_CHECK_STATUS(stfpm_png_write_overlay(p, &img, map, 2.0f, 2.0f + W * H - 1, 0.5f));
    TU_CHECK_STATUS(stfpm_heatmap_overlay(rgb, W, H, map, 2.0f, 2.0f + W * H - 1, 0.5f, out));
    stfpm_image back;
    TU_CHECK_STATUS(stfpm_image_load(p, &back));
    assert_pixels("overlay png", &back, W, H, 3, out);
    stfpm_image_free(&back);
    stfpm_image_free(&img);
}
END_TEST

START_TEST(test_bottle_vs_torchvision) {
#ifdef REF_BOTTLE_AVAILABLE
    const char *shared = tu_shared_dir();
    char path[2300];
    snprintf(path, sizeof path, "%s/data/%s", shared ? shared : "", REF_BOTTLE_FILE);
    if (!shared || access(path, R_OK) != 0) TU_SKIP("bottle preprocessing vs torchvision because %s is absent", path);
    enum { S = 256 };
    float *t = malloc(sizeof(float) * 3 * S * S);
    TU_CHECK_STATUS(stfpm_image_load_tensor(path, S, t));
    double sum = 0;
    for (int i = 0; i < 3 * S * S; i++) sum += t[i];
    for (int i = 0, k = 0; i < 3 * S * S; i += REF_BOTTLE_STEP, k++)
        ck_assert_msg(fabsf(t[i] - ref_bottle_sample[k]) <= 1e-6f, "bottle element %d got %.8g want %.8g", i, t[i],
                      ref_bottle_sample[k]);
    /* the sum over 196608 values: a one-step difference anywhere moves it by >= 0.017 */
    ck_assert_msg(fabs(sum - ref_bottle_sum) < 1e-3, "bottle tensor sum %.9g want %.9g", sum, ref_bottle_sum);
    printf("bottle %s at 256 x 256 vs torchvision: %d sampled values equal, sum %.6f (want %.6f)\n", REF_BOTTLE_FILE,
           (3 * S * S + REF_BOTTLE_STEP - 1) / REF_BOTTLE_STEP, sum, ref_bottle_sum);
    free(t);
#else
    TU_SKIP("bottle preprocessing vs torchvision because the reference header was generated without it");
#endif
}
END_TEST

int main(void) {
    Suite *s = suite_create("io_image");
    TCase *tc = tcase_create("image");
    tcase_add_test(tc, test_load_fixtures);
    tcase_add_test(tc, test_load_jpeg);
    tcase_add_test(tc, test_load_errors);
    tcase_add_test(tc, test_preprocess_vs_torchvision);
    tcase_add_test(tc, test_resize_exact_vs_pil);
    tcase_add_test(tc, test_mask_binarisation);
    tcase_add_test(tc, test_png_roundtrip);
    tcase_add_test(tc, test_png_write_errors);
    tcase_add_test(tc, test_heatmap_overlay);
    tcase_add_test(tc, test_bottle_vs_torchvision);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
