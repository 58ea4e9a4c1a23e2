/* libFuzzer harness for the PyTorch reader (stfpm_pth_read_mem): zip archives, legacy pickle
 * streams and the safe unpickler. Each input is read twice: as a whole file, and as the
 * data.pkl of a torch-like zip built here around it (records data/0 .. data/9 of 256 bytes), so
 * mutated pickles also reach storage resolution in the zip path. The reader sources are
 * compiled into this file so that they carry the fuzzer's coverage instrumentation (libstfpm
 * itself is built without it). */
#include "../../host/weights.c"
#include "../../host/safetensors.c"
#include "../../host/pth.c"

static void fz_put(unsigned char **p, const void *src, size_t n) {
    memcpy(*p, src, n);
    *p += n;
}

static void fz_le(unsigned char **p, uint64_t v, int n) {
    for (int k = 0; k < n; k++) *(*p)++ = (unsigned char)(v >> (8 * k));
}

/* stored zip of (name, data) records; returns the size written into out */
static size_t fz_zip(unsigned char *out, const char *const *names, const unsigned char *const *datas,
                     const size_t *sizes, int n) {
    unsigned char *p = out;
    size_t offs[16];
    for (int i = 0; i < n; i++) {
        offs[i] = (size_t)(p - out);
        size_t nl = strlen(names[i]);
        fz_put(&p, "PK\x03\x04", 4);
        fz_le(&p, 20, 2); fz_le(&p, 0, 2); fz_le(&p, 0, 2);      /* version, flags, stored */
        fz_le(&p, 0, 4); fz_le(&p, 0, 4);                         /* time/date, crc */
        fz_le(&p, sizes[i], 4); fz_le(&p, sizes[i], 4);
        fz_le(&p, nl, 2); fz_le(&p, 0, 2);
        fz_put(&p, names[i], nl);
        fz_put(&p, datas[i], sizes[i]);
    }
    size_t cd = (size_t)(p - out);
    for (int i = 0; i < n; i++) {
        size_t nl = strlen(names[i]);
        fz_put(&p, "PK\x01\x02", 4);
        fz_le(&p, 20, 2); fz_le(&p, 20, 2); fz_le(&p, 0, 2); fz_le(&p, 0, 2);
        fz_le(&p, 0, 4); fz_le(&p, 0, 4);
        fz_le(&p, sizes[i], 4); fz_le(&p, sizes[i], 4);
        fz_le(&p, nl, 2); fz_le(&p, 0, 2); fz_le(&p, 0, 2); fz_le(&p, 0, 2); fz_le(&p, 0, 2);
        fz_le(&p, 0, 4); fz_le(&p, offs[i], 4);
        fz_put(&p, names[i], nl);
    }
    size_t cd_size = (size_t)(p - out) - cd;
    fz_put(&p, "PK\x05\x06", 4);
    fz_le(&p, 0, 2); fz_le(&p, 0, 2); fz_le(&p, n, 2); fz_le(&p, n, 2);
    fz_le(&p, cd_size, 4); fz_le(&p, cd, 4); fz_le(&p, 0, 2);
    return (size_t)(p - out);
}

static void fz_read(const uint8_t *data, size_t size) {
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
        __builtin_trap();   /* a failed read must leave the dictionary empty */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_read(data, size);
    if (size > 65536) return 0;
    static unsigned char storage[256];
    for (int k = 0; k < 256; k++) storage[k] = (unsigned char)(k * 37 + 11);
    const char *names[12] = {"archive/data.pkl", "archive/byteorder", "archive/data/0", "archive/data/1",
                             "archive/data/2", "archive/data/3", "archive/data/4", "archive/data/5",
                             "archive/data/6", "archive/data/7", "archive/data/8", "archive/data/9"};
    const unsigned char *datas[12] = {data, (const unsigned char *)"little"};
    size_t sizes[12] = {size, 6};
    for (int k = 2; k < 12; k++) {
        datas[k] = storage;
        sizes[k] = sizeof storage;
    }
    unsigned char *zip = malloc(size + 8192);
    if (!zip) return 0;
    fz_read(zip, fz_zip(zip, names, datas, sizes, 12));
    free(zip);
    return 0;
}
