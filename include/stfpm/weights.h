/* Host-side weight dictionaries and the files they come from.
 *
 * A stfpm_weights is an ordered list of named float32 tensors (host memory) plus optional
 * string metadata. It is read from
 *   - safetensors files (F32, F16, BF16, F64 converted to float; integer and other known
 *     dtypes are validated and skipped), strictly validated;
 *   - PyTorch torch.save files holding a state_dict: the zip format (torch >= 1.6) and the
 *     legacy pickle stream (_use_new_zipfile_serialization=False), read with a small safe
 *     unpickler that never executes anything: tensors and plain values are read, objects of
 *     other classes (Lightning's hyper-parameters, callbacks, enums) become opaque
 *     placeholders, and globals only a hostile file would name (os, subprocess, eval, ...) are
 *     refused.
 * and written as safetensors (F32 + metadata) atomically.
 *
 * A zero-initialised stfpm_weights (`stfpm_weights w = {0};`) is an empty dictionary. Readers
 * overwrite *out without freeing what it held (pass an empty or freed dictionary); on failure
 * *out is left empty. Every error message names the file (or the label of a memory buffer)
 * and, where there is one, the tensor. Host byte order is assumed little-endian.
 *
 * Usage: stfpm_weights w = {0}; stfpm_weights_load(path, &w); then stfpm_weights_find or
 * stfpm_weights_expect for tensors and stfpm_weights_meta for metadata; stfpm_safetensors_write to
 * save; stfpm_weights_free(&w) at the end. Host-only: no context is needed. */
#ifndef STFPM_WEIGHTS_H
#define STFPM_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "stfpm/stfpm.h"

#ifdef __cplusplus
extern "C" {
#endif

#define STFPM_WEIGHT_NAME_MAX 128   /* bytes including the terminating NUL */
#define STFPM_WEIGHT_MAX_DIMS 8

typedef struct stfpm_weight {
    char name[STFPM_WEIGHT_NAME_MAX];
    int ndim;                          /* 0 .. STFPM_WEIGHT_MAX_DIMS (0 = scalar) */
    int64_t shape[STFPM_WEIGHT_MAX_DIMS];
    float *data;                       /* numel floats, row-major (never NULL) */
} stfpm_weight;

typedef struct stfpm_weights {
    stfpm_weight *items;
    int count;
    /* internals: capacity of items, name hash index, metadata */
    int capacity;
    int *index;          /* open addressing: item index + 1, 0 = empty slot */
    int index_cap;       /* power of two */
    char **meta_keys, **meta_values;
    int n_meta;
} stfpm_weights;

/* Read a weight file, choosing the reader by content: zip ("PK\3\4") or pickle (0x80) ->
 * PyTorch; otherwise safetensors. */
stfpm_status stfpm_weights_load(const char *path, stfpm_weights *out);

/* safetensors: 8-byte little-endian header length, JSON header, data area. */
stfpm_status stfpm_safetensors_read(const char *path, stfpm_weights *out);
/* label names the buffer in error messages (NULL -> "<memory>"). */
stfpm_status stfpm_safetensors_read_mem(const void *buf, size_t len, const char *label,
                                        stfpm_weights *out);

/* PyTorch torch.save file (zip or legacy) with a state_dict, bare or nested under the key
 * "state_dict" or "model". Float tensors (float32/16/bfloat16/64) are loaded; integer
 * tensors (num_batches_tracked) and non-tensor values are skipped. */
stfpm_status stfpm_pth_read(const char *path, stfpm_weights *out);
stfpm_status stfpm_pth_read_mem(const void *buf, size_t len, const char *label,
                                stfpm_weights *out);

/* Write every tensor as F32 plus n_meta string pairs in __metadata__, atomically: a temporary
 * file next to path ("<path>.tmp.<pid>.<n>"), fsync, rename over path, fsync of the folder.
 * On failure path is untouched and the temporary file removed. */
stfpm_status stfpm_safetensors_write(const char *path, const stfpm_weights *w,
                                     const char *const *meta_keys,
                                     const char *const *meta_values, int n_meta);

/* NULL when absent. */
const stfpm_weight *stfpm_weights_find(const stfpm_weights *w, const char *name);

/* Append a copy of data (numel = product of shape floats). A duplicate name, a name longer
 * than STFPM_WEIGHT_NAME_MAX - 1 bytes, ndim outside 0..8 or a negative dimension is
 * STFPM_ERR_ARG. */
stfpm_status stfpm_weights_add(stfpm_weights *w, const char *name, int ndim, const int64_t *shape,
                               const float *data);
/* Like stfpm_weights_add, but returns the new tensor's uninitialised storage in *data for the
 * caller to fill. */
stfpm_status stfpm_weights_add_uninit(stfpm_weights *w, const char *name, int ndim,
                                      const int64_t *shape, float **data);

/* Find name and check its shape. Missing tensor or other shape: STFPM_ERR_FORMAT with a message
 * naming the tensor, the file and both shapes. *out (may be NULL) receives the tensor. */
stfpm_status stfpm_weights_expect(const stfpm_weights *w, const char *file, const char *name,
                                  int ndim, const int64_t *shape, const stfpm_weight **out);

/* Metadata (safetensors __metadata__ string values); NULL when absent. */
const char *stfpm_weights_meta(const stfpm_weights *w, const char *key);
/* Set (or replace) a metadata pair (copied). */
stfpm_status stfpm_weights_set_meta(stfpm_weights *w, const char *key, const char *value);

/* Number of elements of a tensor (product of its shape; 1 for a scalar). */
size_t stfpm_weight_numel(const stfpm_weight *t);
/* 1 when any value is NaN or +-Inf. */
int stfpm_weights_has_nonfinite(const stfpm_weight *t);

/* Free everything and leave an empty dictionary. */
void stfpm_weights_free(stfpm_weights *w);

/* Helpers shared by the readers (also useful elsewhere). */
float stfpm_half_to_float(uint16_t h);
float stfpm_bf16_to_float(uint16_t b);
/* Read a whole file into a malloc'd buffer (*len bytes, plus a NUL after them). */
stfpm_status stfpm_weights_read_file(const char *path, void **buf, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
