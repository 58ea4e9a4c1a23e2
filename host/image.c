/* Image decoding (stb_image), PIL-exact bilinear resize, ToTensor + Normalize, mask
 * binarisation. PNG writers live in png_out.c. See include/stfpm/image.h for the rules. */
#include "stfpm/image.h"
#include "fsutil.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <stb/stb_image.h>

const float stfpm_imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
const float stfpm_imagenet_std[3] = {0.229f, 0.224f, 0.225f};

static _Atomic uint64_t g_max_pixels = STFPM_IMAGE_DEFAULT_MAX_PIXELS;   /* read by loader threads */

void stfpm_image_set_max_pixels(uint64_t max_pixels) {
    g_max_pixels = max_pixels ? max_pixels : STFPM_IMAGE_DEFAULT_MAX_PIXELS;
}

uint64_t stfpm_image_max_pixels(void) { return g_max_pixels; }

stfpm_status stfpm_image_alloc(stfpm_image *out, int w, int h, int c) {
    memset(out, 0, sizeof *out);
    if (w <= 0 || h <= 0 || c < 1 || c > 4)
        return stfpm_set_error(STFPM_ERR_ARG, "image size %d x %d x %d is invalid", w, h, c);
    size_t n = (size_t)w * h * c;
    if (n / c / h != (size_t)w)
        return stfpm_set_error(STFPM_ERR_ARG, "image size %d x %d x %d overflows", w, h, c);
    out->data = calloc(n, 1);
    if (!out->data)
        return stfpm_set_error(STFPM_ERR_OOM, "out of host memory for a %d x %d x %d image", w, h, c);
    out->w = w;
    out->h = h;
    out->c = c;
    return STFPM_OK;
}

void stfpm_image_free(stfpm_image *img) {
    if (!img) return;
    free(img->data);
    memset(img, 0, sizeof *img);
}

/* ------------------------------------------------------------------------------------------ */
/* Decoding                                                                                    */

/* Container formats: SPEC section 1 names PNG, JPEG, BMP and TGA; stb_image also parses
 * GIF, PSD, PIC, PNM and HDR, which are refused here (less parser surface, predictable
 * behaviour). TGA has no signature: anything that is none of the others is tried as TGA. */
typedef enum { FMT_PNG, FMT_JPEG, FMT_BMP, FMT_TGA, FMT_OTHER } img_format;

static img_format sniff(const uint8_t *b, size_t n, const char **other) {
    static const struct { const char *sig; size_t len; const char *name; } refused[] = {
        {"GIF8", 4, "GIF"}, {"8BPS", 4, "PSD"}, {"\x53\x80\xf6\x34", 4, "PIC"}, {"P5", 2, "PNM"},
        {"P6", 2, "PNM"}, {"#?RADIANCE", 10, "HDR"}, {"#?RGBE", 6, "HDR"}};
    if (n >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) return FMT_PNG;
    if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return FMT_JPEG;
    if (n >= 2 && b[0] == 'B' && b[1] == 'M') return FMT_BMP;
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (n >= refused[i].len && memcmp(b, refused[i].sig, refused[i].len) == 0) {
            *other = refused[i].name;
            return FMT_OTHER;
        }
    return FMT_TGA;
}

static uint32_t le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const uint8_t *p) { return le16(p) | le16(p + 2) << 16; }

/* stb_image reads zeros past the end of BMP and TGA data instead of failing, so a cut-off
 * file would decode to an image with a black band: check that the pixel data is all there. */
static stfpm_status check_complete(img_format f, const uint8_t *b, size_t n, const char *name) {
    if (f == FMT_BMP && n >= 30) {
        uint32_t off = le32(b + 10), hsz = le32(b + 14);
        uint64_t w, h, bpp, comp = 0;
        if (hsz == 12) {
            w = le16(b + 18);
            h = le16(b + 20);
            bpp = le16(b + 24);
        } else if (n >= 34) {
            int32_t sw = (int32_t)le32(b + 18), sh = (int32_t)le32(b + 22);
            w = (uint64_t)(sw < 0 ? -(int64_t)sw : sw);
            h = (uint64_t)(sh < 0 ? -(int64_t)sh : sh);
            bpp = le16(b + 28);
            comp = le32(b + 30);
        } else {
            return STFPM_OK;   /* stb rejects it itself */
        }
        if (comp == 0 || comp == 3 || comp == 6) {
            uint64_t need = (uint64_t)off + (w * bpp + 31) / 32 * 4 * h;
            if (n < need)
                return stfpm_set_error(STFPM_ERR_FORMAT, "image %s is truncated: BMP pixel data needs %llu bytes, "
                                       "the file has %zu", name, (unsigned long long)need, n);
        }
    } else if (f == FMT_TGA && n >= 18) {
        uint64_t idlen = b[0], cmlen = le16(b + 5), cmbits = b[7], w = le16(b + 12), h = le16(b + 14);
        uint64_t bpp = (b[16] + 7u) / 8u, type = b[2];
        uint64_t pos = 18 + idlen + (b[1] ? cmlen * ((cmbits + 7) / 8) : 0), npix = w * h;
        if (type == 1 || type == 2 || type == 3) {
            if (n < pos + npix * bpp)
                return stfpm_set_error(STFPM_ERR_FORMAT, "image %s is truncated: TGA pixel data needs %llu bytes, "
                                       "the file has %zu", name, (unsigned long long)(pos + npix * bpp), n);
        } else if (type >= 9 && type <= 11) {   /* walk the RLE packets */
            uint64_t got = 0;
            while (got < npix && pos < n) {
                uint64_t cnt = (b[pos] & 0x7fu) + 1u;
                pos += 1 + ((b[pos] & 0x80u) ? bpp : cnt * bpp);
                got += cnt;
            }
            if (got < npix || pos > n)
                return stfpm_set_error(STFPM_ERR_FORMAT, "image %s is truncated: TGA RLE data ends after %llu of "
                                       "%llu pixels", name, (unsigned long long)(got < npix ? got : npix),
                                       (unsigned long long)npix);
        }
    }
    return STFPM_OK;
}

/* Width and height from the PNG / BMP header without stb_image (which refuses to even report
 * the size of a PNG above 2^30 decoded bytes). 0 when unknown (JPEG, TGA: stbi_info). */
static int header_dims(img_format f, const uint8_t *b, size_t n, uint64_t *w, uint64_t *h) {
    if (f == FMT_PNG && n >= 24 && memcmp(b + 12, "IHDR", 4) == 0) {
        *w = (uint64_t)b[16] << 24 | (uint64_t)b[17] << 16 | (uint64_t)b[18] << 8 | b[19];
        *h = (uint64_t)b[20] << 24 | (uint64_t)b[21] << 16 | (uint64_t)b[22] << 8 | b[23];
        return 1;
    }
    if (f == FMT_BMP && n >= 26) {
        if (le32(b + 14) == 12) {
            *w = le16(b + 18);
            *h = le16(b + 20);
        } else {
            int32_t sw = (int32_t)le32(b + 18), sh = (int32_t)le32(b + 22);
            *w = (uint64_t)(sw < 0 ? -(int64_t)sw : sw);
            *h = (uint64_t)(sh < 0 ? -(int64_t)sh : sh);
        }
        return 1;
    }
    return 0;   /* TGA has no signature: its header is trusted only after stbi_info accepts it */
}

static stfpm_status check_pixels(const char *name, uint64_t w, uint64_t h) {
    uint64_t px = w * h;   /* both < 2^32: no overflow */
    if (px > g_max_pixels)
        return stfpm_set_error(STFPM_ERR_FORMAT,
                               "image %s is %llu x %llu = %llu pixels, above the limit of %llu pixels "
                               "(refused before decoding)", name, (unsigned long long)w, (unsigned long long)h,
                               (unsigned long long)px, (unsigned long long)g_max_pixels);
    return STFPM_OK;
}

static uint8_t scale16(uint16_t v) { return (uint8_t)(((uint32_t)v * 255u + 32767u) / 65535u); }

/* Decode buf to native channels, then convert to `want` channels (3: RGB, 1: mask grey). */
static stfpm_status decode(const uint8_t *buf, size_t len, const char *name, int want, stfpm_image *out) {
    memset(out, 0, sizeof *out);
    if (!name) name = "<memory>";
    if (!buf || len == 0) return stfpm_set_error(STFPM_ERR_FORMAT, "image %s is empty (0 bytes)", name);
    if (len > (size_t)INT_MAX)
        return stfpm_set_error(STFPM_ERR_FORMAT, "image %s is too large (%zu bytes)", name, len);
    const char *other = NULL;
    img_format fmt = sniff(buf, len, &other);
    if (fmt == FMT_OTHER)
        return stfpm_set_error(STFPM_ERR_FORMAT, "image %s is %s, which is not supported (PNG, JPEG, BMP, TGA)",
                               name, other);
    uint64_t hw, hh;
    if (header_dims(fmt, buf, len, &hw, &hh)) STFPM_TRY(check_pixels(name, hw, hh));
    int w = 0, h = 0, comp = 0;
    if (!stbi_info_from_memory(buf, (int)len, &w, &h, &comp)) {
        const char *why = stbi_failure_reason();
        return stfpm_set_error(STFPM_ERR_FORMAT, "%s is not a readable image (PNG/JPEG/BMP/TGA): %s", name,
                               why ? why : "unknown format");
    }
    if (w <= 0 || h <= 0)
        return stfpm_set_error(STFPM_ERR_FORMAT, "image %s has invalid dimensions %d x %d", name, w, h);
    STFPM_TRY(check_pixels(name, (uint64_t)w, (uint64_t)h));
    STFPM_TRY(check_complete(fmt, buf, len, name));
    int is16 = stbi_is_16_bit_from_memory(buf, (int)len);
    int dw = 0, dh = 0, nc = 0;
    void *pix = is16 ? (void *)stbi_load_16_from_memory(buf, (int)len, &dw, &dh, &nc, 0)
                     : (void *)stbi_load_from_memory(buf, (int)len, &dw, &dh, &nc, 0);
    if (!pix) {
        const char *why = stbi_failure_reason();
        return stfpm_set_error(STFPM_ERR_FORMAT, "image %s is corrupt or truncated: %s", name,
                               why ? why : "decoder failed");
    }
    if (dw <= 0 || dh <= 0 || (uint64_t)dw * dh > g_max_pixels || nc < 1 || nc > 4) {
        stbi_image_free(pix);
        return stfpm_set_error(STFPM_ERR_FORMAT, "image %s decoded to an invalid size %d x %d x %d", name, dw,
                               dh, nc);
    }
    stfpm_status s = stfpm_image_alloc(out, dw, dh, want);
    if (s != STFPM_OK) {
        stbi_image_free(pix);
        return stfpm_wrap_error(s, "decoding %s", name);
    }
    size_t n = (size_t)dw * dh;
    int ncol = (nc == 2 || nc == 4) ? nc - 1 : nc; /* colour channels, alpha excluded */
    const uint8_t *p8 = pix;
    const uint16_t *p16 = pix;
    for (size_t i = 0; i < n; i++) {
        uint8_t v[3];
        for (int k = 0; k < ncol; k++) {
            if (is16) {
                uint16_t x = p16[i * nc + k];
                v[k] = scale16(x);
                if (want == 1 && x && !v[k]) v[k] = 1;   /* masks: non-zero stays non-zero */
            } else {
                v[k] = p8[i * nc + k];
            }
        }
        if (ncol == 1) v[1] = v[2] = v[0];
        if (want == 3) {
            memcpy(out->data + i * 3, v, 3);
        } else {
            uint8_t m = v[0] > v[1] ? v[0] : v[1];
            out->data[i] = m > v[2] ? m : v[2];
        }
    }
    stbi_image_free(pix);
    return STFPM_OK;
}

stfpm_status stfpm_image_load_mem(const void *buf, size_t len, const char *name, stfpm_image *out) {
    return decode(buf, len, name, 3, out);
}

stfpm_status stfpm_image_load_mask_mem(const void *buf, size_t len, const char *name, stfpm_image *out) {
    return decode(buf, len, name, 1, out);
}

static stfpm_status load_file(const char *path, int want, stfpm_image *out) {
    memset(out, 0, sizeof *out);
    char *buf;
    size_t len;
    if (!path || !*path) return stfpm_set_error(STFPM_ERR_ARG, "image path is empty");
    STFPM_TRY(stfpm_read_file(path, &buf, &len));
    stfpm_status s;
    if (len > (size_t)INT_MAX) s = stfpm_set_error(STFPM_ERR_FORMAT, "image %s is too large (%zu bytes)", path, len);
    else s = decode((const uint8_t *)buf, len, path, want, out);
    free(buf);
    return s;
}

stfpm_status stfpm_image_load(const char *path, stfpm_image *out) { return load_file(path, 3, out); }

stfpm_status stfpm_image_load_mask(const char *path, stfpm_image *out) { return load_file(path, 1, out); }

stfpm_status stfpm_image_info(const char *path, int *w, int *h) {
    *w = *h = 0;
    struct stat st;
    if (!path || stat(path, &st) != 0)
        return stfpm_set_error(STFPM_ERR_IO, "cannot open image %s: %s", path ? path : "(null)",
                               path ? strerror(errno) : "no path");
    if (!S_ISREG(st.st_mode))
        return stfpm_set_error(STFPM_ERR_IO, "cannot read image %s: not a regular file", path);
    if (st.st_size == 0) return stfpm_set_error(STFPM_ERR_FORMAT, "image %s is empty (0 bytes)", path);
    int comp;
    if (!stbi_info(path, w, h, &comp)) {
        const char *why = stbi_failure_reason();
        return stfpm_set_error(STFPM_ERR_FORMAT, "%s is not a readable image: %s", path,
                               why ? why : "unknown format");
    }
    return STFPM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* PIL bilinear resampling (Pillow src/libImaging/Resample.c, 8 bits per channel)             */

#define PIL_PRECISION_BITS (32 - 8 - 2)

typedef struct pil_coeffs {
    int ksize;
    int *bounds;     /* per output index: first input index, number of taps */
    int32_t *kk;     /* out_size * ksize fixed-point weights */
} pil_coeffs;

static double pil_bilinear(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* precompute_coeffs() + normalize_coeffs_8bpc() of Pillow, for the box (0, in_size). */
static stfpm_status pil_precompute(int in_size, int out_size, pil_coeffs *c) {
    memset(c, 0, sizeof *c);
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    c->ksize = ksize;
    c->bounds = malloc(sizeof(int) * 2 * (size_t)out_size);
    c->kk = malloc(sizeof(int32_t) * (size_t)ksize * out_size);
    double *k = malloc(sizeof(double) * (size_t)ksize);
    if (!c->bounds || !c->kk || !k) {
        free(c->bounds);
        free(c->kk);
        free(k);
        memset(c, 0, sizeof *c);
        return stfpm_set_error(STFPM_ERR_OOM, "out of host memory for resize coefficients");
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        int x = 0;
        for (; x < xmax; x++) {
            double w = pil_bilinear((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < ksize; x++) k[x] = 0;
        for (x = 0; x < ksize; x++)
            c->kk[(size_t)xx * ksize + x] = k[x] < 0 ? (int32_t)(-0.5 + k[x] * (1 << PIL_PRECISION_BITS))
                                                     : (int32_t)(0.5 + k[x] * (1 << PIL_PRECISION_BITS));
        c->bounds[xx * 2 + 0] = xmin;
        c->bounds[xx * 2 + 1] = xmax;
    }
    free(k);
    return STFPM_OK;
}

static void pil_free(pil_coeffs *c) {
    free(c->bounds);
    free(c->kk);
    memset(c, 0, sizeof *c);
}

static inline uint8_t pil_clip8(int64_t ss) {
    int64_t v = ss >> PIL_PRECISION_BITS;   /* arithmetic shift, as Pillow's int >> */
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/* Horizontal pass over rows [y0, y0 + out->h) of in. */
static void pil_horizontal(stfpm_image *out, const stfpm_image *in, int y0, const pil_coeffs *c) {
    int nc = in->c;
    for (int yy = 0; yy < out->h; yy++) {
        const uint8_t *row = in->data + (size_t)(yy + y0) * in->w * nc;
        uint8_t *orow = out->data + (size_t)yy * out->w * nc;
        for (int xx = 0; xx < out->w; xx++) {
            int xmin = c->bounds[xx * 2], xmax = c->bounds[xx * 2 + 1];
            const int32_t *k = c->kk + (size_t)xx * c->ksize;
            for (int ch = 0; ch < nc; ch++) {
                int64_t ss = 1 << (PIL_PRECISION_BITS - 1);
                for (int x = 0; x < xmax; x++) ss += (int64_t)row[(size_t)(x + xmin) * nc + ch] * k[x];
                orow[(size_t)xx * nc + ch] = pil_clip8(ss);
            }
        }
    }
}

static void pil_vertical(stfpm_image *out, const stfpm_image *in, const pil_coeffs *c, int yshift) {
    int nc = in->c;
    size_t stride = (size_t)in->w * nc;
    for (int yy = 0; yy < out->h; yy++) {
        int ymin = c->bounds[yy * 2] - yshift, ymax = c->bounds[yy * 2 + 1];
        const int32_t *k = c->kk + (size_t)yy * c->ksize;
        uint8_t *orow = out->data + (size_t)yy * stride;
        for (size_t i = 0; i < stride; i++) {
            int64_t ss = 1 << (PIL_PRECISION_BITS - 1);
            for (int y = 0; y < ymax; y++) ss += (int64_t)in->data[(size_t)(y + ymin) * stride + i] * k[y];
            orow[i] = pil_clip8(ss);
        }
    }
}

stfpm_status stfpm_image_resize(const stfpm_image *in, int w, int h, stfpm_image *out) {
    memset(out, 0, sizeof *out);
    if (!in || !in->data || in->w <= 0 || in->h <= 0 || in->c < 1 || in->c > 4)
        return stfpm_set_error(STFPM_ERR_ARG, "resize: invalid input image");
    if (w <= 0 || h <= 0 || (uint64_t)w * h > (uint64_t)INT_MAX)
        return stfpm_set_error(STFPM_ERR_ARG, "resize: invalid target size %d x %d", w, h);
    int need_h = w != in->w, need_v = h != in->h;
    if (!need_h && !need_v) {
        STFPM_TRY(stfpm_image_alloc(out, w, h, in->c));
        memcpy(out->data, in->data, (size_t)w * h * in->c);
        return STFPM_OK;
    }
    pil_coeffs ch = {0}, cv = {0};
    stfpm_image tmp = {0};
    stfpm_status s = pil_precompute(in->w, w, &ch);
    if (s == STFPM_OK) s = pil_precompute(in->h, h, &cv);
    if (s != STFPM_OK) goto done;
    if (need_h && need_v && h < in->h && (in->h - h) > 2 * (in->w - w)) {
        /* Pillow >= 13 (PR #9549) runs the vertical pass first when the height shrinks by
         * more than twice as many pixels as the width; the 8-bit rounding between the passes
         * makes the order visible. Never the case for square images resized to S x S. */
        s = stfpm_image_alloc(&tmp, in->w, h, in->c);
        if (s == STFPM_OK) s = stfpm_image_alloc(out, w, h, in->c);
        if (s != STFPM_OK) goto done;
        pil_vertical(&tmp, in, &cv, 0);
        pil_horizontal(out, &tmp, 0, &ch);
        goto done;
    }
    /* horizontal first, over the input rows the vertical pass reads */
    int yfirst = cv.bounds[0];
    int ylast = cv.bounds[h * 2 - 2] + cv.bounds[h * 2 - 1];
    const stfpm_image *src = in;
    int yshift = 0;
    if (need_h) {
        s = stfpm_image_alloc(need_v ? &tmp : out, w, need_v ? ylast - yfirst : h, in->c);
        if (s != STFPM_OK) goto done;
        pil_horizontal(need_v ? &tmp : out, in, need_v ? yfirst : 0, &ch);
        src = &tmp;
        yshift = yfirst;
    }
    if (need_v) {
        s = stfpm_image_alloc(out, w, h, in->c);
        if (s != STFPM_OK) goto done;
        pil_vertical(out, src, &cv, yshift);
    }
done:
    pil_free(&ch);
    pil_free(&cv);
    stfpm_image_free(&tmp);
    if (s != STFPM_OK) stfpm_image_free(out);
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* Tensors and masks                                                                           */

stfpm_status stfpm_image_to_tensor(const stfpm_image *img, int S, float *chw) {
    if (!img || img->c != 3)
        return stfpm_set_error(STFPM_ERR_ARG, "image_to_tensor: need an RGB image (got %d channels)",
                               img ? img->c : 0);
    if (S <= 0 || !chw) return stfpm_set_error(STFPM_ERR_ARG, "image_to_tensor: invalid size %d", S);
    stfpm_image r;
    STFPM_TRY(stfpm_image_resize(img, S, S, &r));
    /* ToTensor: float32(v) / 255; Normalize: (x - mean) / std, all in float32 like torch */
    float lut[3][256];
    for (int k = 0; k < 3; k++)
        for (int v = 0; v < 256; v++) {
            float x = (float)v / 255.0f;
            lut[k][v] = (x - stfpm_imagenet_mean[k]) / stfpm_imagenet_std[k];
        }
    size_t n = (size_t)S * S;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 3; k++) chw[k * n + i] = lut[k][r.data[i * 3 + k]];
    stfpm_image_free(&r);
    return STFPM_OK;
}

stfpm_status stfpm_image_load_tensor(const char *path, int S, float *chw) {
    stfpm_image img;
    STFPM_TRY(stfpm_image_load(path, &img));
    stfpm_status s = stfpm_image_to_tensor(&img, S, chw);
    stfpm_image_free(&img);
    if (s != STFPM_OK) return stfpm_wrap_error(s, "preprocessing %s", path);
    return STFPM_OK;
}

stfpm_status stfpm_mask_to_binary(const stfpm_image *mask, int S, uint8_t *out) {
    if (!mask || mask->c != 1)
        return stfpm_set_error(STFPM_ERR_ARG, "mask_to_binary: need a 1-channel mask (got %d channels)",
                               mask ? mask->c : 0);
    if (S <= 0 || !out) return stfpm_set_error(STFPM_ERR_ARG, "mask_to_binary: invalid size %d", S);
    stfpm_image r;
    STFPM_TRY(stfpm_image_resize(mask, S, S, &r));
    for (size_t i = 0; i < (size_t)S * S; i++) out[i] = r.data[i] > 0;
    stfpm_image_free(&r);
    return STFPM_OK;
}

stfpm_status stfpm_tensor_to_image(const float *chw, int w, int h, stfpm_image *out) {
    STFPM_TRY(stfpm_image_alloc(out, w, h, 3));
    size_t n = (size_t)w * h;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 3; k++) {
            float v = (chw[k * n + i] * stfpm_imagenet_std[k] + stfpm_imagenet_mean[k]) * 255.0f;
            if (!(v > 0.0f)) v = 0.0f;   /* NaN -> 0 */
            if (v > 255.0f) v = 255.0f;
            out->data[i * 3 + k] = (uint8_t)lrintf(v);
        }
    return STFPM_OK;
}
