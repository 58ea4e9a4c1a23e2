/* PNG writers (8-bit grey/RGB/RGBA, 16-bit grey) and heatmap overlays.
 * One small encoder for every case: per-row filter chosen by the usual minimum-sum-of-
 * absolute-differences heuristic, deflate from libstb's stbi_zlib_compress (exported by
 * libstb.so but declared only in stb_image_write.h's implementation section, so it is
 * declared here), CRC-32 computed here. Files are written atomically (tmp + rename). */
#include "stfpm/image.h"
#include "fsutil.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

unsigned char *stbi_zlib_compress(unsigned char *data, int data_len, int *out_len, int quality);

/* ------------------------------------------------------------------------------------------ */
/* PNG encoder                                                                                 */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_build(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

static void crc_init(void) { pthread_once(&crc_once, crc_build); }

static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Append one chunk (length, type, data, CRC) at *pos. */
static void put_chunk(uint8_t *out, size_t *pos, const char type[4], const uint8_t *data, uint32_t n) {
    uint8_t *p = out + *pos;
    put32(p, n);
    memcpy(p + 4, type, 4);
    if (n) memcpy(p + 8, data, n);
    put32(p + 8 + n, crc32_update(0, p + 4, (size_t)n + 4));
    *pos += 12 + (size_t)n;
}

static int paeth(int a, int b, int c) {
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    if (pa <= pb && pa <= pc) return a;
    return pb <= pc ? b : c;
}

/* Filter one row of `rowbytes` bytes (bpp bytes per pixel) with filter type f into dst. */
static void filter_row(int f, const uint8_t *cur, const uint8_t *prev, int rowbytes, int bpp, uint8_t *dst) {
    for (int i = 0; i < rowbytes; i++) {
        int a = i >= bpp ? cur[i - bpp] : 0, b = prev ? prev[i] : 0, c = (prev && i >= bpp) ? prev[i - bpp] : 0;
        int pred = f == 0 ? 0 : f == 1 ? a : f == 2 ? b : f == 3 ? (a + b) / 2 : paeth(a, b, c);
        dst[i] = (uint8_t)(cur[i] - pred);
    }
}

/* raw: h rows of rowbytes big-endian sample bytes. colour type: 0 grey, 2 RGB, 4 GA, 6 RGBA. */
static stfpm_status png_encode(const char *path, int w, int h, int depth, int ctype, int bpp,
                               const uint8_t *raw) {
    if (w <= 0 || h <= 0)
        return stfpm_set_error(STFPM_ERR_ARG, "writing %s: invalid image size %d x %d", path, w, h);
    size_t rowbytes = (size_t)w * bpp;
    if (rowbytes + 1 > (size_t)INT_MAX / (size_t)h)
        return stfpm_set_error(STFPM_ERR_ARG, "writing %s: image %d x %d too large for PNG", path, w, h);
    crc_init();
    size_t flen = (rowbytes + 1) * h;
    uint8_t *filt = malloc(flen);
    uint8_t *trial = malloc(rowbytes);
    if (!filt || !trial) {
        free(filt);
        free(trial);
        return stfpm_set_error(STFPM_ERR_OOM, "out of host memory writing %s", path);
    }
    for (int y = 0; y < h; y++) {
        const uint8_t *cur = raw + rowbytes * y, *prev = y ? cur - rowbytes : NULL;
        uint8_t *dst = filt + (rowbytes + 1) * y;
        long best = -1;
        for (int f = 0; f < 5; f++) {
            filter_row(f, cur, prev, (int)rowbytes, bpp, trial);
            long sum = 0;
            for (size_t i = 0; i < rowbytes; i++) sum += abs((int)(signed char)trial[i]);
            if (best < 0 || sum < best) {
                best = sum;
                dst[0] = (uint8_t)f;
                memcpy(dst + 1, trial, rowbytes);
            }
        }
    }
    free(trial);
    int zlen = 0;
    uint8_t *z = stbi_zlib_compress(filt, (int)flen, &zlen, 8);
    free(filt);
    if (!z) return stfpm_set_error(STFPM_ERR_OOM, "compressing %s failed (out of memory)", path);
    size_t total = 8 + (12 + 13) + (12 + (size_t)zlen) + 12;
    uint8_t *png = malloc(total);
    if (!png) {
        free(z);
        return stfpm_set_error(STFPM_ERR_OOM, "out of host memory writing %s", path);
    }
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(png, sig, 8);
    size_t pos = 8;
    uint8_t ihdr[13];
    put32(ihdr, (uint32_t)w);
    put32(ihdr + 4, (uint32_t)h);
    ihdr[8] = (uint8_t)depth;
    ihdr[9] = (uint8_t)ctype;
    ihdr[10] = ihdr[11] = ihdr[12] = 0;   /* deflate, adaptive filtering, no interlace */
    put_chunk(png, &pos, "IHDR", ihdr, 13);
    put_chunk(png, &pos, "IDAT", z, (uint32_t)zlen);
    put_chunk(png, &pos, "IEND", NULL, 0);
    free(z);
    stfpm_status s = stfpm_write_file_atomic(path, png, pos);
    free(png);
    return s;
}

stfpm_status stfpm_png_write(const char *path, int w, int h, int c, const uint8_t *data) {
    static const int ctype[5] = {0, 0, 4, 2, 6};
    if (c < 1 || c > 4 || !data)
        return stfpm_set_error(STFPM_ERR_ARG, "writing %s: unsupported channel count %d", path ? path : "", c);
    return png_encode(path, w, h, 8, ctype[c], c, data);
}

stfpm_status stfpm_png_write_grey16(const char *path, int w, int h, const uint16_t *data) {
    if (!data || w <= 0 || h <= 0)
        return stfpm_set_error(STFPM_ERR_ARG, "writing %s: invalid 16-bit image", path ? path : "");
    size_t n = (size_t)w * h;
    uint8_t *be = malloc(n * 2);
    if (!be) return stfpm_set_error(STFPM_ERR_OOM, "out of host memory writing %s", path);
    for (size_t i = 0; i < n; i++) {
        be[2 * i] = (uint8_t)(data[i] >> 8);
        be[2 * i + 1] = (uint8_t)data[i];
    }
    stfpm_status s = png_encode(path, w, h, 16, 0, 2, be);
    free(be);
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* Heatmaps                                                                                    */

static float clamp01(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }

void stfpm_colormap_jet(float t, uint8_t rgb[3]) {
    if (!(t == t)) t = 0.0f;
    t = clamp01(t);
    float r = clamp01(1.5f - fabsf(4.0f * t - 3.0f));
    float g = clamp01(1.5f - fabsf(4.0f * t - 2.0f));
    float b = clamp01(1.5f - fabsf(4.0f * t - 1.0f));
    rgb[0] = (uint8_t)lrintf(r * 255.0f);
    rgb[1] = (uint8_t)lrintf(g * 255.0f);
    rgb[2] = (uint8_t)lrintf(b * 255.0f);
}

stfpm_status stfpm_heatmap_overlay(const uint8_t *rgb, int w, int h, const float *map, float lo, float hi,
                                   float alpha, uint8_t *out) {
    if (!rgb || !map || !out || w <= 0 || h <= 0)
        return stfpm_set_error(STFPM_ERR_ARG, "heatmap_overlay: invalid arguments");
    if (!(alpha >= 0.0f && alpha <= 1.0f))
        return stfpm_set_error(STFPM_ERR_ARG, "heatmap_overlay: alpha %g outside [0, 1]", alpha);
    size_t n = (size_t)w * h;
    if (!(hi > lo)) {
        lo = INFINITY;
        hi = -INFINITY;
        for (size_t i = 0; i < n; i++)
            if (isfinite(map[i])) {
                if (map[i] < lo) lo = map[i];
                if (map[i] > hi) hi = map[i];
            }
        if (!(hi > lo)) {   /* constant or all non-finite map */
            if (!isfinite(lo)) lo = 0.0f;
            hi = lo + 1.0f;
        }
    }
    float inv = 1.0f / (hi - lo);
    for (size_t i = 0; i < n; i++) {
        uint8_t c[3];
        stfpm_colormap_jet((map[i] - lo) * inv, c);
        for (int k = 0; k < 3; k++)
            out[i * 3 + k] = (uint8_t)lrintf((1.0f - alpha) * rgb[i * 3 + k] + alpha * c[k]);
    }
    return STFPM_OK;
}

stfpm_status stfpm_png_write_overlay(const char *path, const stfpm_image *img, const float *map, float lo,
                                     float hi, float alpha) {
    if (!img || img->c != 3 || !img->data)
        return stfpm_set_error(STFPM_ERR_ARG, "writing %s: overlay needs an RGB image", path ? path : "");
    size_t n = (size_t)img->w * img->h * 3;
    uint8_t *buf = malloc(n);
    if (!buf) return stfpm_set_error(STFPM_ERR_OOM, "out of host memory writing %s", path);
    stfpm_status s = stfpm_heatmap_overlay(img->data, img->w, img->h, map, lo, hi, alpha, buf);
    if (s == STFPM_OK) s = stfpm_png_write(path, img->w, img->h, 3, buf);
    else stfpm_wrap_error(s, "writing %s", path);
    free(buf);
    return s;
}
