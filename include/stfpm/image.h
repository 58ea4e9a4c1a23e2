/* Image input/output: decoding (stb_image), the preprocessing of SPEC section 1 (PIL-exact
 * bilinear resize, ToTensor, ImageNet normalisation), mask binarisation, and PNG writers
 * (8-bit RGB / grey, 16-bit grey, heatmap overlays). Host-only; nothing touches the device.
 *
 * Decoding rules (stfpm_image_load):
 *   - PNG, JPEG (baseline and progressive), BMP and TGA, decoded by stb_image; the other
 *     formats stb_image knows (GIF, PSD, PIC, PNM, HDR) are refused by signature;
 *   - cut-off BMP / TGA files are detected from their headers (stb_image would pad them with
 *     zeros); PNG and JPEG truncation is reported by the decoder;
 *   - grey is replicated to 3 channels, alpha is dropped (not blended: like PIL's
 *     Image.convert("RGB"));
 *   - 16-bit PNGs are scaled to 8 bits with rounding: v8 = (v16 * 255 + 32767) / 65535,
 *     i.e. round(v16 / 257). (PIL differs: it clips "I;16" grey to 255 on convert("RGB")
 *     and truncates 16-bit RGB to the high byte; SPEC section 1 asks for scaling.)
 *   - width * height above the pixel limit (default 100 megapixels) is refused from the
 *     header alone, before anything is decoded (decompression-bomb guard).
 * Every error message names the file (or the in-memory buffer's name).
 *
 * Usage: stfpm_image_load(path, &img) decodes a file into 8-bit RGB (stfpm_image_free releases
 * it); stfpm_image_load_tensor(path, S, chw) goes straight to the network's S x S normalised
 * input; stfpm_png_write_overlay writes a heatmap over an image. Each call returns a status;
 * stfpm_last_error() names the file on failure. No context is needed. */
#ifndef STFPM_IMAGE_H
#define STFPM_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include "stfpm/stfpm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An 8-bit image, row-major, channels interleaved: pixel (x, y) channel k is
 * data[(y * w + x) * c + k]. c is 3 for images and 1 for masks. data is malloc'd. */
typedef struct stfpm_image {
    int w, h, c;
    uint8_t *data;
} stfpm_image;

#define STFPM_IMAGE_DEFAULT_MAX_PIXELS 100000000ULL

/* Allocate a zeroed w x h x c image (c in 1..4). */
stfpm_status stfpm_image_alloc(stfpm_image *out, int w, int h, int c);
/* Release data and zero the struct (safe on a zeroed struct, and twice). */
void stfpm_image_free(stfpm_image *img);

/* Largest accepted width * height (process-wide, thread-safe; 0 restores the default). */
void stfpm_image_set_max_pixels(uint64_t max_pixels);
uint64_t stfpm_image_max_pixels(void);

/* Decode a file / a memory buffer to 8-bit RGB (c = 3). `name` only labels errors
 * (NULL -> "<memory>"). On failure *out is zeroed. */
stfpm_status stfpm_image_load(const char *path, stfpm_image *out);
stfpm_status stfpm_image_load_mem(const void *buf, size_t len, const char *name, stfpm_image *out);

/* Decode a ground-truth mask to 8-bit grey (c = 1). Colour masks use the maximum over the
 * colour channels (alpha ignored), so that any non-zero pixel stays non-zero; 16-bit masks
 * are scaled like images except that a non-zero value never rounds down to 0. */
stfpm_status stfpm_image_load_mask(const char *path, stfpm_image *out);
stfpm_status stfpm_image_load_mask_mem(const void *buf, size_t len, const char *name, stfpm_image *out);

/* Width and height from the header only (nothing decoded); pixel limit not applied. */
stfpm_status stfpm_image_info(const char *path, int *w, int *h);

/* Resize to w x h exactly as PIL's Image.resize(..., Image.BILINEAR) does for 8-bit modes
 * (what torchvision's transforms.Resize does on a PIL image): separable triangle filter
 * whose support is scaled by the downscale factor (antialiasing), 22-bit fixed-point
 * coefficients, rounding/clipping to 8 bits after each pass. Pass order as Pillow 13:
 * horizontal first, except vertical first when the height shrinks by more than twice as
 * many pixels as the width (older Pillow always goes horizontal first; the two agree for
 * square inputs such as MVTec AD's). Any channel count; `out` is allocated (free it with
 * stfpm_image_free). */
stfpm_status stfpm_image_resize(const stfpm_image *in, int w, int h, stfpm_image *out);

/* ImageNet normalisation constants of SPEC section 1. */
extern const float stfpm_imagenet_mean[3];
extern const float stfpm_imagenet_std[3];

/* transforms.Resize([S, S]) + ToTensor() + Normalize(ImageNet) of an RGB image into a
 * caller-provided float buffer of 3 * S * S values, layout CHW:
 *   chw[(k * S + y) * S + x] = (v / 255 - mean[k]) / std[k]   (float32 arithmetic). */
stfpm_status stfpm_image_to_tensor(const stfpm_image *img, int S, float *chw);

/* Load a file and preprocess it (stfpm_image_load + stfpm_image_to_tensor). */
stfpm_status stfpm_image_load_tensor(const char *path, int S, float *chw);

/* Ground-truth rule of SPEC section 1: the grey mask is resized to S x S with the same PIL
 * bilinear filter, then every value > 0 becomes 1: out[y * S + x] in {0, 1}. */
stfpm_status stfpm_mask_to_binary(const stfpm_image *mask, int S, uint8_t *out);

/* Inverse of the normalisation: CHW float tensor (3 x h x w) back to 8-bit RGB (rounded,
 * clipped). Handy for overlays of what the network saw. */
stfpm_status stfpm_tensor_to_image(const float *chw, int w, int h, stfpm_image *out);

/* ------------------------------------------------------------------------------------------ */
/* PNG writers. Every write goes to "<path>.tmp.<pid>.<n>" in the same directory and is renamed
 * over <path> only after a complete, flushed write: a failed write leaves no partial file.
 * Errors (STFPM_ERR_IO) name the file and the cause (missing directory, permission, disk
 * full). */

/* 8-bit PNG with c = 1 (grey), 3 (RGB) or 4 (RGBA) interleaved channels. */
stfpm_status stfpm_png_write(const char *path, int w, int h, int c, const uint8_t *data);
static inline stfpm_status stfpm_image_save_png(const char *path, const stfpm_image *img) {
    return stfpm_png_write(path, img->w, img->h, img->c, img->data);
}
/* 16-bit grey PNG (values stored big-endian as PNG requires). */
stfpm_status stfpm_png_write_grey16(const char *path, int w, int h, const uint16_t *data);

/* Jet-like colour map: t in [0, 1] (clamped; NaN -> 0) -> dark blue, blue, cyan, yellow,
 * red, dark red. */
void stfpm_colormap_jet(float t, uint8_t rgb[3]);

/* Blend a colour-mapped w x h float map over an RGB image of the same size:
 * out = (1 - alpha) * rgb + alpha * jet((map - lo) / (hi - lo)), rounded.
 * hi <= lo uses the map's own min and max. `out` may alias `rgb`. */
stfpm_status stfpm_heatmap_overlay(const uint8_t *rgb, int w, int h, const float *map,
                                   float lo, float hi, float alpha, uint8_t *out);
/* Overlay written as an 8-bit RGB PNG (image and map must have the same size). */
stfpm_status stfpm_png_write_overlay(const char *path, const stfpm_image *img, const float *map,
                                     float lo, float hi, float alpha);

#ifdef __cplusplus
}
#endif
#endif
