/* safetensors reader and writer.
 *
 * Layout: u64 little-endian header length N, N bytes of UTF-8 JSON, then the data area. The
 * header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative
 * to the data area) plus an optional "__metadata__" object of strings.
 *
 * Validation follows the reference implementation: header length within the file and at most
 * 100 MB, strict JSON (own small parser, below), known dtype, shape product times dtype size ==
 * end - begin, tensors tiling the data area exactly (no overlap, no gap, no trailing bytes),
 * unique names. Every message names the file (label) and the tensor. */
#include "stfpm/weights.h"
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER 100000000ull   /* same bound as the reference reader */
#define ST_MAX_DEPTH 64              /* nesting of ignored JSON values */

enum { ST_F64, ST_F32, ST_F16, ST_BF16, ST_SKIP };

static const struct st_dtype {
    const char *name;
    int size, kind;
} st_dtypes[] = {
    {"F64", 8, ST_F64},     {"F32", 4, ST_F32},         {"F16", 2, ST_F16},
    {"BF16", 2, ST_BF16},   {"I64", 8, ST_SKIP},        {"I32", 4, ST_SKIP},
    {"I16", 2, ST_SKIP},    {"I8", 1, ST_SKIP},         {"U64", 8, ST_SKIP},
    {"U32", 4, ST_SKIP},    {"U16", 2, ST_SKIP},        {"U8", 1, ST_SKIP},
    {"BOOL", 1, ST_SKIP},   {"F8_E4M3", 1, ST_SKIP},    {"F8_E5M2", 1, ST_SKIP},
    {"F8_E8M0", 1, ST_SKIP},
};

typedef struct st_info {
    char *name;
    const struct st_dtype *dtype;
    int ndim;
    int64_t shape[STFPM_WEIGHT_MAX_DIMS];
    uint64_t begin, end;
    int have_dtype, have_shape, have_offsets;
} st_info;

typedef struct st_parser {
    const char *s;
    size_t n, pos;
    const char *label;
    const char *tensor;   /* entry being parsed, for messages */
} st_parser;

static stfpm_status st_fail(const st_parser *p, const char *what) {
    if (p->tensor)
        return stfpm_set_error(STFPM_ERR_FORMAT, "%s: tensor %.200s: safetensors header: %s at byte %zu of %zu",
                               p->label, p->tensor, what, p->pos, p->n);
    return stfpm_set_error(STFPM_ERR_FORMAT, "%s: safetensors header: %s at byte %zu of %zu", p->label,
                           what, p->pos, p->n);
}

static void st_ws(st_parser *p) {
    while (p->pos < p->n) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int st_peek(st_parser *p) {
    st_ws(p);
    return p->pos < p->n ? (unsigned char)p->s[p->pos] : -1;
}

static int st_accept(st_parser *p, char c) {
    if (st_peek(p) == (unsigned char)c) {
        p->pos++;
        return 1;
    }
    return 0;
}

/* 1 when s[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
static int st_utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        int len;
        unsigned min, cp;
        if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (n - i < (size_t)len) return 0;
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += (size_t)len;
    }
    return 1;
}

static int st_hex4(const char *s, unsigned *out) {
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static size_t st_put_utf8(char *d, unsigned cp) {
    if (cp < 0x80) { d[0] = (char)cp; return 1; }
    if (cp < 0x800) { d[0] = (char)(0xc0 | (cp >> 6)); d[1] = (char)(0x80 | (cp & 0x3f)); return 2; }
    if (cp < 0x10000) {
        d[0] = (char)(0xe0 | (cp >> 12));
        d[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        d[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    d[0] = (char)(0xf0 | (cp >> 18));
    d[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    d[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Parse a JSON string. out (may be NULL to skip) receives a malloc'd NUL-terminated copy;
 * a string containing U+0000 is rejected when out is wanted. */
static stfpm_status st_string(st_parser *p, char **out, size_t *out_len) {
    if (out) *out = NULL;
    if (!st_accept(p, '"')) return st_fail(p, "expected a string");
    size_t start = p->pos;
    char *d = NULL;
    if (out) {
        /* decoded length <= raw length: bound the buffer by the rest of the header */
        size_t end = start;
        while (end < p->n && p->s[end] != '"') end += p->s[end] == '\\' ? 2 : 1;
        d = malloc(end - start + 1);
        if (!d) return stfpm_set_error(STFPM_ERR_OOM, "%s: out of host memory", p->label);
    }
    size_t k = 0;
    int has_nul = 0;
    for (;;) {
        if (p->pos >= p->n) {
            free(d);
            return st_fail(p, "unterminated string");
        }
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') { p->pos++; break; }
        if (c < 0x20) {
            free(d);
            return st_fail(p, "control character in a string");
        }
        if (c != '\\') {
            if (d) d[k++] = (char)c;
            p->pos++;
            continue;
        }
        if (p->pos + 1 >= p->n) {
            free(d);
            return st_fail(p, "unterminated escape");
        }
        char e = p->s[p->pos + 1];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char repl[] = "\"\\/\b\f\n\r\t";
            if (d) d[k++] = repl[simple - "\"\\/bfnrt"];
            p->pos += 2;
            continue;
        }
        unsigned cp, lo;
        if (e != 'u' || p->pos + 6 > p->n || !st_hex4(p->s + p->pos + 2, &cp)) {
            free(d);
            return st_fail(p, "invalid escape in a string");
        }
        p->pos += 6;
        if (cp >= 0xdc00 && cp <= 0xdfff) {
            free(d);
            return st_fail(p, "lone low surrogate escape");
        }
        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (p->pos + 6 > p->n || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' ||
                !st_hex4(p->s + p->pos + 2, &lo) || lo < 0xdc00 || lo > 0xdfff) {
                free(d);
                return st_fail(p, "lone high surrogate escape");
            }
            p->pos += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        if (cp == 0) has_nul = 1;
        if (d) k += st_put_utf8(d + k, cp);
    }
    if (d) {
        if (has_nul) {
            free(d);
            return st_fail(p, "string contains U+0000");
        }
        d[k] = 0;
        *out = d;
        if (out_len) *out_len = k;
    }
    return STFPM_OK;
}

/* Non-negative integer without sign, fraction or exponent. */
static stfpm_status st_uint(st_parser *p, uint64_t *out) {
    int c = st_peek(p);
    if (c < '0' || c > '9') return st_fail(p, "expected a non-negative integer");
    uint64_t v = 0;
    size_t start = p->pos;
    while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
        unsigned dgt = (unsigned)(p->s[p->pos] - '0');
        if (v > (UINT64_MAX - dgt) / 10) return st_fail(p, "integer too large");
        v = v * 10 + dgt;
        p->pos++;
    }
    if (p->s[start] == '0' && p->pos - start > 1) return st_fail(p, "integer with a leading zero");
    if (p->pos < p->n && strchr(".eE", p->s[p->pos]) && p->s[p->pos])
        return st_fail(p, "expected an integer, found a fraction or exponent");
    *out = v;
    return STFPM_OK;
}

/* [int, int, ...] into out[0..max); *count receives the length. */
static stfpm_status st_uint_array(st_parser *p, uint64_t *out, int max, int *count, const char *what) {
    *count = 0;
    if (!st_accept(p, '[')) return st_fail(p, what);
    if (st_accept(p, ']')) return STFPM_OK;
    for (;;) {
        uint64_t v = 0;
        STFPM_TRY(st_uint(p, &v));
        if (*count >= max) return st_fail(p, "array too long");
        out[(*count)++] = v;
        if (st_accept(p, ']')) return STFPM_OK;
        if (!st_accept(p, ',')) return st_fail(p, "expected ',' or ']' in an array");
    }
}

static stfpm_status st_skip_value(st_parser *p, int depth);

static stfpm_status st_skip_number(st_parser *p) {
    size_t i = p->pos;
    if (i < p->n && p->s[i] == '-') i++;
    if (i >= p->n || p->s[i] < '0' || p->s[i] > '9') return st_fail(p, "invalid value");
    if (p->s[i] == '0') i++;
    else while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') i++;
    if (i < p->n && p->s[i] == '.') {
        i++;
        if (i >= p->n || p->s[i] < '0' || p->s[i] > '9') return st_fail(p, "invalid number");
        while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') i++;
    }
    if (i < p->n && (p->s[i] == 'e' || p->s[i] == 'E')) {
        i++;
        if (i < p->n && (p->s[i] == '+' || p->s[i] == '-')) i++;
        if (i >= p->n || p->s[i] < '0' || p->s[i] > '9') return st_fail(p, "invalid number");
        while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') i++;
    }
    p->pos = i;
    return STFPM_OK;
}

static stfpm_status st_skip_value(st_parser *p, int depth) {
    if (depth > ST_MAX_DEPTH) return st_fail(p, "nesting too deep");
    int c = st_peek(p);
    if (c == '"') return st_string(p, NULL, NULL);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        p->pos++;
        if (st_accept(p, close)) return STFPM_OK;
        for (;;) {
            if (c == '{') {
                STFPM_TRY(st_string(p, NULL, NULL));
                if (!st_accept(p, ':')) return st_fail(p, "expected ':'");
            }
            STFPM_TRY(st_skip_value(p, depth + 1));
            if (st_accept(p, close)) return STFPM_OK;
            if (!st_accept(p, ',')) return st_fail(p, "expected ',' or a closing bracket");
        }
    }
    static const char *const words[] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(words[k]);
        if (p->n - p->pos >= l && memcmp(p->s + p->pos, words[k], l) == 0) {
            p->pos += l;
            return STFPM_OK;
        }
    }
    return st_skip_number(p);
}

static stfpm_status st_metadata(st_parser *p, stfpm_weights *out) {
    if (!st_accept(p, '{')) return st_fail(p, "__metadata__ must be an object of strings");
    if (st_accept(p, '}')) return STFPM_OK;
    for (;;) {
        char *k = NULL, *v = NULL;
        stfpm_status s = st_string(p, &k, NULL);
        if (s == STFPM_OK && !st_accept(p, ':')) s = st_fail(p, "expected ':'");
        if (s == STFPM_OK && st_peek(p) != '"') s = st_fail(p, "__metadata__ values must be strings");
        if (s == STFPM_OK) s = st_string(p, &v, NULL);
        if (s == STFPM_OK && stfpm_weights_meta(out, k))
            s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: duplicate __metadata__ key '%.200s'", p->label, k);
        if (s == STFPM_OK) s = stfpm_weights_set_meta(out, k, v);
        free(k);
        free(v);
        STFPM_TRY(s);
        if (st_accept(p, '}')) return STFPM_OK;
        if (!st_accept(p, ',')) return st_fail(p, "expected ',' or '}' in __metadata__");
    }
}

/* One tensor entry: {"dtype": .., "shape": [..], "data_offsets": [b, e]} (other keys ignored). */
static stfpm_status st_tensor_info(st_parser *p, st_info *t) {
    p->tensor = t->name;
    if (!st_accept(p, '{'))
        return stfpm_set_error(STFPM_ERR_FORMAT, "%s: tensor %.200s: entry is not an object (byte %zu)",
                               p->label, t->name, p->pos);
    if (!st_accept(p, '}')) for (;;) {
        char *key = NULL;
        STFPM_TRY(st_string(p, &key, NULL));
        stfpm_status s = STFPM_OK;
        if (!st_accept(p, ':')) s = st_fail(p, "expected ':'");
        else if (strcmp(key, "dtype") == 0) {
            char *dt = NULL;
            if (t->have_dtype) s = st_fail(p, "duplicate key \"dtype\"");
            else if (st_peek(p) != '"') s = st_fail(p, "dtype must be a string");
            else s = st_string(p, &dt, NULL);
            if (s == STFPM_OK) {
                for (size_t k = 0; k < sizeof st_dtypes / sizeof st_dtypes[0]; k++)
                    if (strcmp(dt, st_dtypes[k].name) == 0) t->dtype = &st_dtypes[k];
                if (!t->dtype)
                    s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: tensor %.200s: unknown dtype '%.40s'",
                                        p->label, t->name, dt);
                t->have_dtype = 1;
            }
            free(dt);
        } else if (strcmp(key, "shape") == 0) {
            uint64_t dims[STFPM_WEIGHT_MAX_DIMS];
            if (t->have_shape) s = st_fail(p, "duplicate key \"shape\"");
            else s = st_uint_array(p, dims, STFPM_WEIGHT_MAX_DIMS, &t->ndim, "shape must be an array of integers");
            for (int d = 0; s == STFPM_OK && d < t->ndim; d++) {
                if (dims[d] > (uint64_t)INT64_MAX) s = st_fail(p, "dimension too large");
                t->shape[d] = (int64_t)dims[d];
            }
            t->have_shape = 1;
        } else if (strcmp(key, "data_offsets") == 0) {
            uint64_t off[2];
            int cnt = 0;
            if (t->have_offsets) s = st_fail(p, "duplicate key \"data_offsets\"");
            else s = st_uint_array(p, off, 2, &cnt, "data_offsets must be an array of 2 integers");
            if (s == STFPM_OK && cnt != 2) s = st_fail(p, "data_offsets must hold 2 integers");
            if (s == STFPM_OK) {
                t->begin = off[0];
                t->end = off[1];
            }
            t->have_offsets = 1;
        } else {
            s = st_skip_value(p, 1);
        }
        free(key);
        STFPM_TRY(s);
        if (st_accept(p, '}')) break;
        if (!st_accept(p, ',')) return st_fail(p, "expected ',' or '}' in a tensor entry");
    }
    p->tensor = NULL;
    if (!t->have_dtype || !t->have_shape || !t->have_offsets)
        return stfpm_set_error(STFPM_ERR_FORMAT, "%s: tensor %.200s: missing \"%s\"", p->label, t->name,
                               !t->have_dtype ? "dtype" : !t->have_shape ? "shape" : "data_offsets");
    return STFPM_OK;
}

static int st_cmp_offsets(const void *a, const void *b) {
    const st_info *x = *(const st_info *const *)a, *y = *(const st_info *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int st_cmp_names(const void *a, const void *b) {
    return strcmp((*(const st_info *const *)a)->name, (*(const st_info *const *)b)->name);
}

static uint64_t st_rd64(const unsigned char *b) {
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--) v = (v << 8) | b[k];
    return v;
}

static void st_convert(const st_info *t, const unsigned char *src, float *dst, size_t numel) {
    switch (t->dtype->kind) {
    case ST_F32:
        for (size_t i = 0; i < numel; i++) {
            uint32_t u = (uint32_t)src[4 * i] | (uint32_t)src[4 * i + 1] << 8 |
                         (uint32_t)src[4 * i + 2] << 16 | (uint32_t)src[4 * i + 3] << 24;
            memcpy(&dst[i], &u, 4);
        }
        break;
    case ST_F16:
        for (size_t i = 0; i < numel; i++)
            dst[i] = stfpm_half_to_float((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
        break;
    case ST_BF16:
        for (size_t i = 0; i < numel; i++)
            dst[i] = stfpm_bf16_to_float((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
        break;
    case ST_F64:
        for (size_t i = 0; i < numel; i++) {
            uint64_t u = st_rd64(src + 8 * i);
            double d;
            memcpy(&d, &u, 8);
            dst[i] = (float)d;
        }
        break;
    }
}

stfpm_status stfpm_safetensors_read_mem(const void *buf, size_t len, const char *label,
                                        stfpm_weights *out) {
    const unsigned char *b = buf;
    if (!label) label = "<memory>";
    if (!out) return stfpm_set_error(STFPM_ERR_ARG, "%s: NULL output dictionary", label);
    memset(out, 0, sizeof *out);
    if (!b && len) return stfpm_set_error(STFPM_ERR_ARG, "%s: NULL buffer", label);
    if (len < 8)
        return stfpm_set_error(STFPM_ERR_FORMAT, "%s: %zu bytes, too short for a safetensors file", label, len);
    uint64_t hlen = st_rd64(b);
    if (hlen > ST_MAX_HEADER)
        return stfpm_set_error(STFPM_ERR_FORMAT, "%s: safetensors header length %llu exceeds the limit of %llu bytes",
                               label, (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen > len - 8)
        return stfpm_set_error(STFPM_ERR_FORMAT,
                               "%s: safetensors header length %llu exceeds the file size (%zu bytes): truncated or not safetensors",
                               label, (unsigned long long)hlen, len);
    st_parser p = {(const char *)b + 8, (size_t)hlen, 0, label, NULL};
    if (!st_utf8_valid(b + 8, (size_t)hlen))
        return stfpm_set_error(STFPM_ERR_FORMAT, "%s: safetensors header is not valid UTF-8", label);
    const unsigned char *data = b + 8 + hlen;
    uint64_t data_len = len - 8 - hlen;

    st_info *infos = NULL;
    st_info **order = NULL;
    int n = 0, cap = 0, have_meta = 0;
    stfpm_status s = STFPM_OK;
    if (!st_accept(&p, '{')) {
        s = st_fail(&p, "expected '{' (not a safetensors file?)");
        goto done;
    }
    if (!st_accept(&p, '}')) for (;;) {
        char *name = NULL;
        size_t name_len = 0;
        s = st_string(&p, &name, &name_len);
        if (s == STFPM_OK && !st_accept(&p, ':')) s = st_fail(&p, "expected ':'");
        if (s == STFPM_OK && strcmp(name, "__metadata__") == 0) {
            if (have_meta) s = st_fail(&p, "duplicate __metadata__");
            else s = st_metadata(&p, out);
            have_meta = 1;
            free(name);
        } else if (s == STFPM_OK) {
            if (name_len >= STFPM_WEIGHT_NAME_MAX)
                s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: tensor name '%.60s...' is longer than %d bytes",
                                    label, name, STFPM_WEIGHT_NAME_MAX - 1);
            else if (name_len == 0)
                s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: tensor with an empty name", label);
            if (s == STFPM_OK && n == cap) {
                int nc = cap ? cap * 2 : 64;
                st_info *ni = realloc(infos, (size_t)nc * sizeof *ni);
                if (!ni) s = stfpm_set_error(STFPM_ERR_OOM, "%s: out of host memory", label);
                else { infos = ni; cap = nc; }
            }
            if (s == STFPM_OK) {
                memset(&infos[n], 0, sizeof infos[n]);
                infos[n].name = name;
                name = NULL;
                n++;
                s = st_tensor_info(&p, &infos[n - 1]);
            }
            free(name);
        } else {
            free(name);
        }
        if (s != STFPM_OK) goto done;
        if (st_accept(&p, '}')) break;
        if (!st_accept(&p, ',')) {
            s = st_fail(&p, "expected ',' or '}' after a tensor entry");
            goto done;
        }
    }
    st_ws(&p);
    if (p.pos != p.n) {
        s = st_fail(&p, "unexpected bytes after the JSON object");
        goto done;
    }

    /* sizes, then tiling of the data area, then unique names */
    for (int i = 0; i < n; i++) {
        st_info *t = &infos[i];
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] && numel > UINT64_MAX / (uint64_t)t->shape[d] / 8) {
                s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: tensor %s: shape product overflows", label, t->name);
                goto done;
            }
            numel *= (uint64_t)t->shape[d];
        }
        if (t->end < t->begin || t->end > data_len) {
            s = stfpm_set_error(STFPM_ERR_FORMAT,
                                "%s: tensor %s: data_offsets [%llu, %llu] outside the data area of %llu bytes",
                                label, t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                                (unsigned long long)data_len);
            goto done;
        }
        if (numel * (uint64_t)t->dtype->size != t->end - t->begin) {
            s = stfpm_set_error(STFPM_ERR_FORMAT,
                                "%s: tensor %s: shape holds %llu %s values (%llu bytes) but data_offsets span %llu bytes",
                                label, t->name, (unsigned long long)numel, t->dtype->name,
                                (unsigned long long)(numel * (uint64_t)t->dtype->size),
                                (unsigned long long)(t->end - t->begin));
            goto done;
        }
    }
    order = malloc((size_t)(n ? n : 1) * sizeof *order);
    if (!order) {
        s = stfpm_set_error(STFPM_ERR_OOM, "%s: out of host memory", label);
        goto done;
    }
    for (int i = 0; i < n; i++) order[i] = &infos[i];
    qsort(order, (size_t)n, sizeof *order, st_cmp_offsets);
    uint64_t pos = 0;
    for (int i = 0; i < n; i++) {
        if (order[i]->begin < pos) {
            s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: tensor %s: data_offsets [%llu, %llu] overlap tensor %s",
                                label, order[i]->name, (unsigned long long)order[i]->begin,
                                (unsigned long long)order[i]->end, order[i - 1]->name);
            goto done;
        }
        if (order[i]->begin > pos) {
            s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: tensor %s: data_offsets start at %llu, leaving a gap after byte %llu",
                                label, order[i]->name, (unsigned long long)order[i]->begin,
                                (unsigned long long)pos);
            goto done;
        }
        pos = order[i]->end;
    }
    if (pos != data_len) {
        s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: data area holds %llu bytes but the tensors cover %llu",
                            label, (unsigned long long)data_len, (unsigned long long)pos);
        goto done;
    }
    qsort(order, (size_t)n, sizeof *order, st_cmp_names);
    for (int i = 1; i < n; i++)
        if (strcmp(order[i]->name, order[i - 1]->name) == 0) {
            s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: tensor %s appears twice", label, order[i]->name);
            goto done;
        }

    for (int i = 0; i < n; i++) {
        st_info *t = &infos[i];
        if (t->dtype->kind == ST_SKIP) continue;
        float *dst;
        s = stfpm_weights_add_uninit(out, t->name, t->ndim, t->shape, &dst);
        if (s != STFPM_OK) {
            stfpm_wrap_error(s, "%s", label);
            goto done;
        }
        st_convert(t, data + t->begin, dst, (size_t)((t->end - t->begin) / (uint64_t)t->dtype->size));
    }

done:
    for (int i = 0; i < n; i++) free(infos[i].name);
    free(infos);
    free(order);
    if (s != STFPM_OK) stfpm_weights_free(out);
    return s;
}

stfpm_status stfpm_safetensors_read(const char *path, stfpm_weights *out) {
    void *buf;
    size_t len;
    if (out) memset(out, 0, sizeof *out);
    STFPM_TRY(stfpm_weights_read_file(path, &buf, &len));
    stfpm_status s = stfpm_safetensors_read_mem(buf, len, path, out);
    free(buf);
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* writer */

static void st_puts(stfpm_strbuf *b, const char *s) { stfpm_strbuf_puts(b, s); }   /* a failure is kept in b->oom */

static void st_put_json_string(stfpm_strbuf *b, const char *s) {
    st_puts(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"') st_puts(b, "\\\"");
        else if (c == '\\') st_puts(b, "\\\\");
        else if (c == '\n') st_puts(b, "\\n");
        else if (c == '\t') st_puts(b, "\\t");
        else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            st_puts(b, esc);
        } else stfpm_strbuf_add(b, (const char *)&c, 1);
    }
    st_puts(b, "\"");
}

stfpm_status stfpm_safetensors_write(const char *path, const stfpm_weights *w,
                                     const char *const *meta_keys,
                                     const char *const *meta_values, int n_meta) {
    if (!path || !w || n_meta < 0 || (n_meta && (!meta_keys || !meta_values)))
        return stfpm_set_error(STFPM_ERR_ARG, "stfpm_safetensors_write: invalid argument");
    for (int i = 0; i < n_meta; i++) {
        if (!meta_keys[i] || !meta_values[i])
            return stfpm_set_error(STFPM_ERR_ARG, "%s: metadata entry %d is NULL", path, i);
        if (!st_utf8_valid((const unsigned char *)meta_keys[i], strlen(meta_keys[i])) ||
            !st_utf8_valid((const unsigned char *)meta_values[i], strlen(meta_values[i])))
            return stfpm_set_error(STFPM_ERR_ARG, "%s: metadata entry %d is not UTF-8", path, i);
    }
    for (int i = 0; i < w->count; i++)
        if (!st_utf8_valid((const unsigned char *)w->items[i].name, strlen(w->items[i].name)))
            return stfpm_set_error(STFPM_ERR_ARG, "%s: tensor name %s is not UTF-8", path, w->items[i].name);

    stfpm_strbuf h = {0};
    char num[64];
    st_puts(&h, "{");
    if (n_meta) {
        st_puts(&h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) st_puts(&h, ",");
            st_put_json_string(&h, meta_keys[i]);
            st_puts(&h, ":");
            st_put_json_string(&h, meta_values[i]);
        }
        st_puts(&h, "}");
    }
    uint64_t off = 0;
    for (int i = 0; i < w->count; i++) {
        const stfpm_weight *t = &w->items[i];
        uint64_t bytes = (uint64_t)stfpm_weight_numel(t) * 4;
        if (i || n_meta) st_puts(&h, ",");
        st_put_json_string(&h, t->name);
        st_puts(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)t->shape[d]);
            st_puts(&h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                 (unsigned long long)(off + bytes));
        st_puts(&h, num);
        off += bytes;
    }
    st_puts(&h, "}");
    while (!h.oom && h.len % 8) st_puts(&h, " ");
    if (h.oom) {
        stfpm_strbuf_free(&h);
        return stfpm_set_error(STFPM_ERR_OOM, "%s: out of host memory (header)", path);
    }

    unsigned char lenb[8];
    for (int k = 0; k < 8; k++) lenb[k] = (unsigned char)((uint64_t)h.len >> (8 * k));
    stfpm_span *parts = malloc(sizeof *parts * (size_t)(w->count + 2));
    if (!parts) {
        stfpm_strbuf_free(&h);
        return stfpm_set_error(STFPM_ERR_OOM, "%s: out of host memory", path);
    }
    parts[0] = (stfpm_span){lenb, 8};
    parts[1] = (stfpm_span){h.text, h.len};
    for (int i = 0; i < w->count; i++)
        parts[i + 2] = (stfpm_span){w->items[i].data, stfpm_weight_numel(&w->items[i]) * sizeof(float)};
    stfpm_status s = stfpm_write_parts_atomic(path, parts, w->count + 2);
    free(parts);
    stfpm_strbuf_free(&h);
    return s;
}
