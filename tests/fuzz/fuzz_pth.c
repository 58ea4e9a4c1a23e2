/* libFuzzer harness for the PyTorch reader (stfpm_pth_read_mem): zip archives, legacy pickle
 * streams and the safe unpickler. The reader sources are compiled into this file so that they
 * carry the fuzzer's coverage instrumentation (libstfpm itself is built without it). */
#include "../../host/weights.c"
#include "../../host/safetensors.c"
#include "../../host/pth.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    stfpm_weights w;
    if (stfpm_pth_read_mem(data, size, "fuzz", &w) == STFPM_OK) {
        volatile float sink = 0;
        for (int i = 0; i < w.count; i++) {
            size_t n = stfpm_weight_numel(&w.items[i]);
            for (size_t j = 0; j < n; j++) sink += w.items[i].data[j];
            if (stfpm_weights_find(&w, w.items[i].name) != &w.items[i]) __builtin_trap();
        }
        (void)sink;
        stfpm_weights_free(&w);
    } else if (w.count != 0 || w.items != NULL) {
        __builtin_trap();
    }
    return 0;
}
