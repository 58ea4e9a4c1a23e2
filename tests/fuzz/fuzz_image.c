/* libFuzzer harness for the image decode path from memory: format sniffing, header checks
 * (pixel limit, truncated BMP/TGA), stb_image decoding, 8/16-bit and channel conversion, then
 * the PIL-exact resize and normalisation on the result.
 *
 * host/image.c is compiled into this harness (not taken from libstfpm.a) so that it carries
 * the fuzzer's coverage instrumentation and ASan checks; libstb.so itself is not instrumented.
 *
 *   CC=clang cmake -S . -B build-fuzz-img -DSTFPM_BUILD_FUZZ=ON -DSTFPM_BUILD_BENCH=OFF
 *   cmake --build build-fuzz-img --target fuzz_image
 *   ./build-fuzz-img/fuzz_image -max_total_time=180 -rss_limit_mb=2048 \
 *       -max_len=65536 corpus-work tests/fuzz/corpus_image
 */
#include "../../host/image.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* keep one decode below ~50 MB so that slow or huge inputs do not hide real bugs */
    stfpm_image_set_max_pixels(4u << 20);
    int S = 1 + (size ? data[size - 1] % 40 : 0);
    stfpm_image img;
    if (stfpm_image_load_mem(data, size, "fuzz", &img) == STFPM_OK) {
        if (img.w <= 0 || img.h <= 0 || img.c != 3 || !img.data) __builtin_trap();
        float *t = malloc(sizeof(float) * 3 * S * S);
        if (t && stfpm_image_to_tensor(&img, S, t) != STFPM_OK) __builtin_trap();
        for (int i = 0; t && i < 3 * S * S; i++)
            if (!(t[i] > -2.2f && t[i] < 2.7f)) __builtin_trap();   /* (v/255 - mean)/std range */
        free(t);
        stfpm_image_free(&img);
    } else if (img.data || img.w || img.h) {
        __builtin_trap();   /* a failed load leaves a zeroed image */
    }
    if (stfpm_image_load_mask_mem(data, size, "fuzz", &img) == STFPM_OK) {
        uint8_t *m = malloc((size_t)S * S);
        if (m && stfpm_mask_to_binary(&img, S, m) != STFPM_OK) __builtin_trap();
        for (int i = 0; m && i < S * S; i++)
            if (m[i] > 1) __builtin_trap();
        free(m);
        stfpm_image_free(&img);
    }
    return 0;
}
