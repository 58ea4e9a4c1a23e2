/* Host weight dictionary: ordered named float tensors with a name hash index, metadata,
 * shape checks, and the content sniffing loader. File formats live in safetensors.c and pth.c. */
#include "stfpm/weights.h"
#include "fsutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t wt_hash(const char *s) { return stfpm_fnv1a64(STFPM_FNV1A64_INIT, s, strlen(s)); }

/* Slot of name in the index: either the slot holding it or the empty slot where it goes. */
static int wt_slot(const stfpm_weights *w, const char *name) {
    int mask = w->index_cap - 1;
    int i = (int)(wt_hash(name) & (uint64_t)mask);
    while (w->index[i] && strcmp(w->items[w->index[i] - 1].name, name) != 0) i = (i + 1) & mask;
    return i;
}

static stfpm_status wt_reindex(stfpm_weights *w, int cap) {
    int *idx = calloc((size_t)cap, sizeof *idx);
    if (!idx) return stfpm_set_error(STFPM_ERR_OOM, "out of host memory (weight index of %d)", cap);
    free(w->index);
    w->index = idx;
    w->index_cap = cap;
    for (int k = 0; k < w->count; k++) w->index[wt_slot(w, w->items[k].name)] = k + 1;
    return STFPM_OK;
}

const stfpm_weight *stfpm_weights_find(const stfpm_weights *w, const char *name) {
    if (!w || !name || !w->index_cap) return NULL;
    int i = wt_slot(w, name);
    return w->index[i] ? &w->items[w->index[i] - 1] : NULL;
}

size_t stfpm_weight_numel(const stfpm_weight *t) {
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    return n;
}

static void wt_format_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, cap - k, "(");
    for (int d = 0; d < ndim && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, ndim == 1 ? ",)" : ")");
}

stfpm_status stfpm_weights_add_uninit(stfpm_weights *w, const char *name, int ndim,
                                      const int64_t *shape, float **data) {
    if (!w || !name || !data || (ndim > 0 && !shape))
        return stfpm_set_error(STFPM_ERR_ARG, "stfpm_weights_add: NULL argument");
    *data = NULL;
    size_t len = strlen(name);
    if (len == 0 || len >= STFPM_WEIGHT_NAME_MAX)
        return stfpm_set_error(STFPM_ERR_ARG, "tensor name '%.200s' is %s (at most %d bytes)", name,
                               len ? "too long" : "empty", STFPM_WEIGHT_NAME_MAX - 1);
    if (ndim < 0 || ndim > STFPM_WEIGHT_MAX_DIMS)
        return stfpm_set_error(STFPM_ERR_ARG, "tensor %s: %d dimensions (at most %d)", name, ndim,
                               STFPM_WEIGHT_MAX_DIMS);
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return stfpm_set_error(STFPM_ERR_ARG, "tensor %s: negative dimension %lld", name,
                                   (long long)shape[d]);
        if (shape[d] && numel > (SIZE_MAX / sizeof(float)) / (size_t)shape[d])
            return stfpm_set_error(STFPM_ERR_ARG, "tensor %s: shape too large", name);
        numel *= (size_t)shape[d];
    }
    if (stfpm_weights_find(w, name))
        return stfpm_set_error(STFPM_ERR_ARG, "tensor %s: duplicate name", name);
    if (w->count == w->capacity) {
        int cap = w->capacity ? w->capacity * 2 : 16;
        stfpm_weight *it = realloc(w->items, (size_t)cap * sizeof *it);
        if (!it) return stfpm_set_error(STFPM_ERR_OOM, "out of host memory (weight list)");
        w->items = it;
        w->capacity = cap;
    }
    if ((w->count + 1) * 2 > w->index_cap) {
        int cap = w->index_cap ? w->index_cap : 32;
        while ((w->count + 1) * 2 > cap) cap *= 2;
        STFPM_TRY(wt_reindex(w, cap));
    }
    float *buf = malloc(numel ? numel * sizeof(float) : sizeof(float));
    if (!buf)
        return stfpm_set_error(STFPM_ERR_OOM, "out of host memory (tensor %s, %zu floats)", name, numel);
    stfpm_weight *t = &w->items[w->count];
    memset(t, 0, sizeof *t);
    memcpy(t->name, name, len + 1);
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    t->data = buf;
    w->index[wt_slot(w, name)] = w->count + 1;
    w->count++;
    *data = buf;
    return STFPM_OK;
}

stfpm_status stfpm_weights_add(stfpm_weights *w, const char *name, int ndim, const int64_t *shape,
                               const float *data) {
    int empty = 0;
    int valid = ndim >= 0 && ndim <= STFPM_WEIGHT_MAX_DIMS;   /* else rejected below, shape unread */
    for (int d = 0; valid && shape && d < ndim; d++) empty |= shape[d] <= 0;
    if (!data && !empty)
        return stfpm_set_error(STFPM_ERR_ARG, "stfpm_weights_add %s: NULL data", name ? name : "(null)");
    float *dst;
    STFPM_TRY(stfpm_weights_add_uninit(w, name, ndim, shape, &dst));
    size_t n = stfpm_weight_numel(&w->items[w->count - 1]);
    if (n) memcpy(dst, data, n * sizeof(float));
    return STFPM_OK;
}

stfpm_status stfpm_weights_expect(const stfpm_weights *w, const char *file, const char *name,
                                  int ndim, const int64_t *shape, const stfpm_weight **out) {
    char want[256], got[256];
    if (out) *out = NULL;
    if (!file) file = "<weights>";
    wt_format_shape(want, sizeof want, ndim, shape);
    const stfpm_weight *t = stfpm_weights_find(w, name);
    if (!t)
        return stfpm_set_error(STFPM_ERR_FORMAT, "%s: tensor %s is missing (expected shape %s)", file,
                               name, want);
    int same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = t->shape[d] == shape[d];
    if (!same) {
        wt_format_shape(got, sizeof got, t->ndim, t->shape);
        return stfpm_set_error(STFPM_ERR_FORMAT, "%s: tensor %s has shape %s, expected %s", file, name,
                               got, want);
    }
    if (out) *out = t;
    return STFPM_OK;
}

const char *stfpm_weights_meta(const stfpm_weights *w, const char *key) {
    if (!w || !key) return NULL;
    for (int i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta_keys[i], key) == 0) return w->meta_values[i];
    return NULL;
}

stfpm_status stfpm_weights_set_meta(stfpm_weights *w, const char *key, const char *value) {
    if (!w || !key || !value) return stfpm_set_error(STFPM_ERR_ARG, "stfpm_weights_set_meta: NULL argument");
    char *v = strdup(value);
    if (!v) return stfpm_set_error(STFPM_ERR_OOM, "out of host memory (metadata)");
    for (int i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta_keys[i], key) == 0) {
            free(w->meta_values[i]);
            w->meta_values[i] = v;
            return STFPM_OK;
        }
    char *k = strdup(key);
    char **nk = realloc(w->meta_keys, (size_t)(w->n_meta + 1) * sizeof *nk);
    if (nk) w->meta_keys = nk;
    char **nv = nk ? realloc(w->meta_values, (size_t)(w->n_meta + 1) * sizeof *nv) : NULL;
    if (nv) w->meta_values = nv;
    if (!k || !nk || !nv) {
        free(k);
        free(v);
        return stfpm_set_error(STFPM_ERR_OOM, "out of host memory (metadata)");
    }
    w->meta_keys[w->n_meta] = k;
    w->meta_values[w->n_meta] = v;
    w->n_meta++;
    return STFPM_OK;
}

int stfpm_weights_has_nonfinite(const stfpm_weight *t) {
    if (!t) return 0;
    size_t n = stfpm_weight_numel(t);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(t->data[i])) return 1;
    return 0;
}

void stfpm_weights_free(stfpm_weights *w) {
    if (!w) return;
    for (int i = 0; i < w->count; i++) free(w->items[i].data);
    for (int i = 0; i < w->n_meta; i++) {
        free(w->meta_keys[i]);
        free(w->meta_values[i]);
    }
    free(w->items);
    free(w->index);
    free(w->meta_keys);
    free(w->meta_values);
    memset(w, 0, sizeof *w);
}

float stfpm_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);           /* Inf / NaN */
    } else if (exp == 0) {
        if (man == 0) {
            bits = sign;                                    /* +-0 */
        } else {                                            /* subnormal: renormalise */
            int e = -1;
            do { man <<= 1; e++; } while (!(man & 0x400u));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float stfpm_bf16_to_float(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

stfpm_status stfpm_weights_read_file(const char *path, void **buf, size_t *len) {
    char *data;
    stfpm_status s = stfpm_read_file(path, &data, len);
    *buf = data;
    return s;
}

stfpm_status stfpm_weights_load(const char *path, stfpm_weights *out) {
    void *buf;
    size_t len;
    memset(out, 0, sizeof *out);
    STFPM_TRY(stfpm_weights_read_file(path, &buf, &len));
    const unsigned char *b = buf;
    stfpm_status s;
    /* zip -> torch; a plausible safetensors header (length within the file, JSON object) ->
     * safetensors; a pickle (PROTO opcode) -> legacy torch; anything else -> safetensors, whose
     * reader reports what is wrong */
    uint64_t hlen = 0;
    for (int k = 7; len >= 8 && k >= 0; k--) hlen = (hlen << 8) | b[k];
    int st_like = len >= 9 && hlen <= len - 8 && b[8] == '{';
    if ((len >= 4 && memcmp(b, "PK\x03\x04", 4) == 0) || (!st_like && len >= 2 && b[0] == 0x80))
        s = stfpm_pth_read_mem(buf, len, path, out);
    else
        s = stfpm_safetensors_read_mem(buf, len, path, out);
    free(buf);
    return s;
}
