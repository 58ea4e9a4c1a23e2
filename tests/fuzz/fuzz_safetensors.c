/* libFuzzer harness for the safetensors reader (stfpm_safetensors_read_mem).
 * The reader sources are compiled into this file so that they carry the fuzzer's coverage
 * instrumentation even though libstfpm itself is built without it (the archive's copies of
 * these objects are then never pulled in by the linker). */
#include "../../host/weights.c"
#include "../../host/safetensors.c"
#include "../../host/pth.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    stfpm_weights w;
    if (stfpm_safetensors_read_mem(data, size, "fuzz", &w) == STFPM_OK) {
        /* touch every value and the lookups so ASan sees any bad buffer */
        volatile float sink = 0;
        for (int i = 0; i < w.count; i++) {
            size_t n = stfpm_weight_numel(&w.items[i]);
            for (size_t j = 0; j < n; j++) sink += w.items[i].data[j];
            if (stfpm_weights_find(&w, w.items[i].name) != &w.items[i]) __builtin_trap();
        }
        for (int i = 0; i < w.n_meta; i++)
            if (!stfpm_weights_meta(&w, w.meta_keys[i])) __builtin_trap();
        (void)sink;
        stfpm_weights_free(&w);
    } else if (w.count != 0 || w.items != NULL) {
        __builtin_trap();   /* a failed read must leave the dictionary empty */
    }
    return 0;
}
