/* PyTorch torch.save files holding a state_dict, without Python.
 *
 * Two container formats:
 *   - zip (torch >= 1.6 default): stored (uncompressed) entries "<archive>/data.pkl" (the pickle),
 *     "<archive>/byteorder" ("little" / "big", absent = little) and "<archive>/data/<key>" (raw
 *     storage bytes). torch writes local headers with data descriptors (sizes 0, flag bit 3) and
 *     zip64 end records, so sizes and offsets are taken from the central directory (zip64 extra
 *     fields honoured).
 *   - legacy (_use_new_zipfile_serialization=False, torch < 1.6): five consecutive pickles -
 *     magic number, protocol version 1001, sys_info (little_endian), the object, the sorted list
 *     of storage keys - then for each key an int64 element count and the raw storage bytes.
 *
 * The unpickler is a small stack machine for the opcodes torch.save writes (protocol 2, plus
 * the protocol 4 framing and set opcodes). It builds plain values (None, bool, int, float, str,
 * tuple, list, dict, storage, tensor, opaque object) and never calls or imports anything.
 * GLOBAL resolves a fixed whitelist to what a state_dict needs (collections.OrderedDict,
 * torch._utils._rebuild_tensor[_v2], _rebuild_parameter, torch.<Type>Storage). Any other class
 * or function - the hyper-parameters, callbacks, enums and configuration objects a Lightning
 * checkpoint pickles beside its state_dict - becomes an opaque placeholder: REDUCE, NEWOBJ and
 * BUILD on it give another opaque value (dict and list items set on it are kept, so a dict
 * subclass can still be read), and none of it is ever run. Globals that only a hostile file
 * would name (os.system, builtins.eval, subprocess, importlib, ...) are still refused with an
 * error naming them. Object, stack and memo sizes are bounded, and the unpickler does not
 * recurse (the metadata walk over a checkpoint's plain values recurses at most PK_META_DEPTH
 * deep and visits a bounded number of values), so hostile input cannot exhaust memory or the
 * C stack.
 *
 * A checkpoint (a dict holding the state_dict under "state_dict" or "model", as Lightning and
 * many training scripts write) also gives its plain values (str, numbers, lists of them, nested
 * dicts) as metadata "ckpt.<key>[.<sub>...]", e.g. ckpt.hyper_parameters.backbone. */
#include "stfpm/weights.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PK_MAX_OBJECTS (1u << 22)
#define PK_MAX_STACK (1u << 20)
#define PK_MAX_MEMO (1u << 20)
#define PK_MAX_GLOBAL_LINE 256
#define PK_BLOCK 1024
#define ZIP_MAX_ENTRIES (1u << 20)

enum { PK_F32, PK_F16, PK_BF16, PK_F64, PK_SKIP };

static const struct pk_storage_type {
    const char *name;
    int elsize, kind;
} pk_storage_types[] = {
    {"FloatStorage", 4, PK_F32}, {"HalfStorage", 2, PK_F16},  {"BFloat16Storage", 2, PK_BF16},
    {"DoubleStorage", 8, PK_F64}, {"LongStorage", 8, PK_SKIP}, {"IntStorage", 4, PK_SKIP},
    {"ShortStorage", 2, PK_SKIP}, {"CharStorage", 1, PK_SKIP}, {"ByteStorage", 1, PK_SKIP},
    {"BoolStorage", 1, PK_SKIP},
};
#define PK_N_STORAGE_TYPES ((int)(sizeof pk_storage_types / sizeof pk_storage_types[0]))

enum {
    PK_G_ORDERED_DICT = 0,
    PK_G_REBUILD_TENSOR_V2,
    PK_G_REBUILD_TENSOR,
    PK_G_REBUILD_PARAMETER,
    PK_G_REBUILD_PARAMETER_STATE,
    PK_G_OPAQUE,    /* any other class or function: a placeholder, never called */
    PK_G_STORAGE0   /* + index into pk_storage_types */
};

static const struct pk_global {
    const char *module, *name;
    int id;
} pk_globals[] = {
    {"collections", "OrderedDict", PK_G_ORDERED_DICT},
    {"torch._utils", "_rebuild_tensor_v2", PK_G_REBUILD_TENSOR_V2},
    {"torch._utils", "_rebuild_tensor", PK_G_REBUILD_TENSOR},
    {"torch._utils", "_rebuild_parameter", PK_G_REBUILD_PARAMETER},
    {"torch._utils", "_rebuild_parameter_with_state", PK_G_REBUILD_PARAMETER_STATE},
};

typedef enum {
    PK_NONE, PK_BOOL, PK_INT, PK_BIGINT, PK_FLOAT, PK_STR, PK_TUPLE, PK_LIST, PK_DICT,
    PK_GLOBAL, PK_STORAGE, PK_TENSOR, PK_OBJECT
} pk_kind;

static const char *const pk_kind_names[] = {"None", "bool", "int", "int", "float", "str", "tuple",
                                            "list", "dict", "global", "storage", "tensor", "object"};

enum { PK_BAD_NONE, PK_BAD_STRIDE, PK_BAD_BOUNDS };

typedef struct pk_val pk_val;
struct pk_val {
    pk_kind kind;
    union {
        int64_t i;                                  /* BOOL, INT */
        double f;                                   /* FLOAT */
        struct {
            int id;                                 /* PK_G_* */
            const char *mod, *name;                 /* PK_G_OPAQUE: where it would come from */
            size_t mod_n, name_n;
        } g;                                        /* GLOBAL */
        struct { const char *p; size_t n; } s;      /* STR; BIGINT: little-endian bytes */
        struct {
            pk_val **v;
            size_t n, cap;
            int listlike;                           /* OBJECT: items came from APPEND(S) / ADDITEMS */
            const pk_val *cls;                      /* OBJECT: the GLOBAL it came from, or NULL */
        } seq;  /* TUPLE, LIST; DICT: key, value pairs; OBJECT: items set on it (pairs unless listlike) */
        struct {
            int type;                               /* index into pk_storage_types */
            const char *key;
            size_t key_n;
            int64_t numel;
            const unsigned char *data;              /* resolved after unpickling */
        } st;
        struct {
            pk_val *storage;
            int64_t offset;
            int ndim;
            int64_t shape[STFPM_WEIGHT_MAX_DIMS];
            int bad;                                /* PK_BAD_*: reported if the tensor is loaded */
            int bad_dim;
            int64_t bad_a, bad_b;
        } t;
    } u;
};

typedef struct pk_block {
    struct pk_block *next;
    size_t used;
    pk_val v[PK_BLOCK];
} pk_block;

typedef struct pk {
    const char *label;
    const unsigned char *buf;   /* the whole pickle stream */
    size_t len, pos;
    pk_block *blocks;
    size_t n_objects;
    pk_val **stack;
    size_t sp, stack_cap;
    size_t *marks;
    size_t n_marks, marks_cap;
    pk_val **memo;
    size_t memo_cap, memo_count;
    pk_val **storages;          /* every storage object created, for the legacy data walk */
    size_t n_storages, storages_cap;
    pk_val none;
} pk;

static stfpm_status pk_fail(pk *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static stfpm_status pk_fail(pk *u, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return stfpm_set_error(STFPM_ERR_FORMAT, "%s: pickle byte %zu: %s", u->label, u->pos, msg);
}

/* Copy of s[0..n) safe to print (non-printable bytes as '?', at most cap-1 bytes). */
static const char *pk_printable(char *buf, size_t cap, const char *s, size_t n) {
    size_t k = 0;
    for (; k < n && k + 1 < cap; k++) buf[k] = (s[k] >= 0x20 && s[k] < 0x7f) ? s[k] : '?';
    buf[k] = 0;
    return buf;
}

static void pk_release(pk *u) {
    for (pk_block *b = u->blocks, *next; b; b = next) {
        next = b->next;
        for (size_t i = 0; i < b->used; i++) {
            pk_kind k = b->v[i].kind;
            if (k == PK_TUPLE || k == PK_LIST || k == PK_DICT || k == PK_OBJECT) free(b->v[i].u.seq.v);
        }
        free(b);
    }
    free(u->stack);
    free(u->marks);
    free(u->memo);
    free(u->storages);
    memset(u, 0, sizeof *u);
}

static pk_val *pk_new(pk *u, pk_kind kind) {
    if (u->n_objects >= PK_MAX_OBJECTS) {
        pk_fail(u, "more than %u objects", PK_MAX_OBJECTS);
        return NULL;
    }
    if (!u->blocks || u->blocks->used == PK_BLOCK) {
        pk_block *b = malloc(sizeof *b);
        if (!b) {
            stfpm_set_error(STFPM_ERR_OOM, "%s: out of host memory while unpickling", u->label);
            return NULL;
        }
        b->next = u->blocks;
        b->used = 0;
        u->blocks = b;
    }
    pk_val *v = &u->blocks->v[u->blocks->used++];
    memset(v, 0, sizeof *v);
    v->kind = kind;
    u->n_objects++;
    return v;
}

static stfpm_status pk_status_of_last(void) {
    return strstr(stfpm_last_error(), "out of host memory") ? STFPM_ERR_OOM : STFPM_ERR_FORMAT;
}

static stfpm_status pk_push(pk *u, pk_val *v) {
    if (!v) return pk_status_of_last();
    if (u->sp == u->stack_cap) {
        if (u->stack_cap >= PK_MAX_STACK) return pk_fail(u, "stack deeper than %u", PK_MAX_STACK);
        size_t cap = u->stack_cap ? u->stack_cap * 2 : 64;
        pk_val **s = realloc(u->stack, cap * sizeof *s);
        if (!s) return stfpm_set_error(STFPM_ERR_OOM, "%s: out of host memory while unpickling", u->label);
        u->stack = s;
        u->stack_cap = cap;
    }
    u->stack[u->sp++] = v;
    return STFPM_OK;
}

static pk_val *pk_pop(pk *u) {
    size_t floor = u->n_marks ? u->marks[u->n_marks - 1] : 0;
    if (u->sp <= floor) {
        pk_fail(u, "stack underflow");
        return NULL;
    }
    return u->stack[--u->sp];
}

static pk_val *pk_top(pk *u) {
    size_t floor = u->n_marks ? u->marks[u->n_marks - 1] : 0;
    if (u->sp <= floor) {
        pk_fail(u, "stack underflow");
        return NULL;
    }
    return u->stack[u->sp - 1];
}

/* Pop everything above the last mark: *items points into the stack (valid until the next push). */
static stfpm_status pk_pop_mark(pk *u, pk_val ***items, size_t *n) {
    if (!u->n_marks) return pk_fail(u, "no MARK on the stack");
    size_t m = u->marks[--u->n_marks];
    *items = u->stack ? u->stack + m : NULL;   /* NULL only when nothing was ever pushed */
    *n = u->sp - m;
    u->sp = m;
    return STFPM_OK;
}

static stfpm_status pk_seq_append(pk *u, pk_val *seq, pk_val *v) {
    if (seq->u.seq.n == seq->u.seq.cap) {
        size_t cap = seq->u.seq.cap ? seq->u.seq.cap * 2 : 4;
        pk_val **nv = realloc(seq->u.seq.v, cap * sizeof *nv);
        if (!nv) return stfpm_set_error(STFPM_ERR_OOM, "%s: out of host memory while unpickling", u->label);
        seq->u.seq.v = nv;
        seq->u.seq.cap = cap;
    }
    seq->u.seq.v[seq->u.seq.n++] = v;
    return STFPM_OK;
}

static pk_val *pk_make_seq(pk *u, pk_kind kind, pk_val **items, size_t n) {
    pk_val *v = pk_new(u, kind);
    if (!v || !n) return v;
    v->u.seq.v = malloc(n * sizeof *items);
    if (!v->u.seq.v) {
        stfpm_set_error(STFPM_ERR_OOM, "%s: out of host memory while unpickling", u->label);
        return NULL;
    }
    memcpy(v->u.seq.v, items, n * sizeof *items);
    v->u.seq.n = v->u.seq.cap = n;
    return v;
}

static int pk_str_eq(const pk_val *v, const char *s) {
    size_t n = strlen(s);
    return v && v->kind == PK_STR && v->u.s.n == n && memcmp(v->u.s.p, s, n) == 0;
}

static const unsigned char *pk_take(pk *u, size_t n) {
    if (u->len - u->pos < n) {
        pk_fail(u, "truncated (needs %zu more bytes, %zu left)", n, u->len - u->pos);
        return NULL;
    }
    const unsigned char *p = u->buf + u->pos;
    u->pos += n;
    return p;
}

static uint64_t pk_le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int k = n - 1; k >= 0; k--) v = (v << 8) | p[k];
    return v;
}

static stfpm_status pk_memo_put(pk *u, uint64_t idx) {
    pk_val *v = pk_top(u);
    if (!v) return STFPM_ERR_FORMAT;
    if (idx >= PK_MAX_MEMO) return pk_fail(u, "memo index %llu too large", (unsigned long long)idx);
    if (idx >= u->memo_cap) {
        size_t cap = u->memo_cap ? u->memo_cap : 64;
        while (cap <= idx) cap *= 2;
        pk_val **m = realloc(u->memo, cap * sizeof *m);
        if (!m) return stfpm_set_error(STFPM_ERR_OOM, "%s: out of host memory while unpickling", u->label);
        memset(m + u->memo_cap, 0, (cap - u->memo_cap) * sizeof *m);
        u->memo = m;
        u->memo_cap = cap;
    }
    if (!u->memo[idx]) u->memo_count++;
    u->memo[idx] = v;
    return STFPM_OK;
}

static stfpm_status pk_memo_get(pk *u, uint64_t idx) {
    if (idx >= u->memo_cap || !u->memo[idx])
        return pk_fail(u, "memo index %llu was never stored", (unsigned long long)idx);
    return pk_push(u, u->memo[idx]);
}

/* Globals refused even as placeholders: modules and functions that run code, start processes,
 * touch files or the network, or reach the import machinery. Nothing is ever called, so this
 * is not what keeps loading safe; it reports a file built to attack an unpickler instead of
 * quietly loading its tensors. A module entry covers its submodules ("os" covers "os.path"). */
static const char *const pk_refused_modules[] = {
    "os", "posix", "nt", "subprocess", "sys", "shutil", "socket", "ssl", "select", "signal",
    "importlib", "imp", "pkgutil", "zipimport", "runpy", "code", "codeop", "pdb", "bdb", "timeit",
    "trace", "profile", "cProfile", "pickle", "_pickle", "pickletools", "shelve", "marshal", "dill",
    "cloudpickle", "joblib", "ctypes", "_ctypes", "cffi", "pty", "tty", "termios", "fcntl", "resource",
    "io", "_io", "pathlib", "tempfile", "glob", "fileinput", "zipfile", "tarfile", "types", "inspect",
    "operator", "_operator", "gc", "threading", "_thread", "multiprocessing", "concurrent", "asyncio",
    "platform", "webbrowser", "urllib", "http", "ftplib", "smtplib", "telnetlib", "xmlrpc", "requests",
    "torch.hub", "torch.jit", "torch._C", "torch.ops", "torch.package", "torch.serialization",
    "torch.utils.cpp_extension", "torch.distributed", "torch.multiprocessing", "torch._dynamo",
    "torch._inductor", "numpy.f2py", "numpy.distutils", "numpy.testing",
};
/* Functions refused by module and name. */
static const struct { const char *module, *name; } pk_refused_names[] = {
    {"torch", "load"}, {"torch", "save"}, {"torch", "compile"}, {"numpy", "load"}, {"numpy", "save"},
    {"numpy", "fromfile"}, {"numpy", "loadtxt"}, {"numpy", "genfromtxt"},
};
/* builtins (Python 3) and __builtin__ (Python 2): only these harmless types and constants are
 * placeholders (getattr appears in enum members pickled by name); eval, exec, compile, open,
 * __import__, setattr and the rest are refused. */
static const char *const pk_builtins_allowed[] = {
    "set", "frozenset", "slice", "complex", "bytearray", "bytes", "range", "object", "tuple", "list",
    "dict", "int", "float", "str", "bool", "getattr", "Ellipsis", "NotImplemented",
};

static int pk_span_eq(const char *p, size_t n, const char *s) {
    return strlen(s) == n && memcmp(p, s, n) == 0;
}

static int pk_global_refused(const char *mod, size_t mod_n, const char *name, size_t name_n) {
    for (size_t k = 0; k < sizeof pk_refused_modules / sizeof pk_refused_modules[0]; k++) {
        size_t n = strlen(pk_refused_modules[k]);
        if (mod_n >= n && memcmp(mod, pk_refused_modules[k], n) == 0 && (mod_n == n || mod[n] == '.'))
            return 1;
    }
    for (size_t k = 0; k < sizeof pk_refused_names / sizeof pk_refused_names[0]; k++)
        if (pk_span_eq(mod, mod_n, pk_refused_names[k].module) && pk_span_eq(name, name_n, pk_refused_names[k].name))
            return 1;
    if (pk_span_eq(mod, mod_n, "builtins") || pk_span_eq(mod, mod_n, "__builtin__")) {
        for (size_t k = 0; k < sizeof pk_builtins_allowed / sizeof pk_builtins_allowed[0]; k++)
            if (pk_span_eq(name, name_n, pk_builtins_allowed[k])) return 0;
        return 1;
    }
    return 0;
}

static stfpm_status pk_global(pk *u, const char *mod, size_t mod_n, const char *name, size_t name_n) {
    int id = -1;
    for (size_t k = 0; k < sizeof pk_globals / sizeof pk_globals[0]; k++)
        if (pk_span_eq(mod, mod_n, pk_globals[k].module) && pk_span_eq(name, name_n, pk_globals[k].name))
            id = pk_globals[k].id;
    if (id < 0 && pk_span_eq(mod, mod_n, "torch"))
        for (int k = 0; k < PK_N_STORAGE_TYPES; k++)
            if (pk_span_eq(name, name_n, pk_storage_types[k].name)) id = PK_G_STORAGE0 + k;
    if (id < 0) {
        if (mod_n == 0 || name_n == 0 || pk_global_refused(mod, mod_n, name, name_n)) {
            char a[PK_MAX_GLOBAL_LINE + 1], b[PK_MAX_GLOBAL_LINE + 1];
            return pk_fail(u, "global '%s.%s' is not allowed (only the tensors of a state_dict are loaded, "
                              "other objects are skipped unread, but this one can only come from a file "
                              "made to run code when loaded in Python; nothing in the file is executed)",
                           pk_printable(a, sizeof a, mod, mod_n), pk_printable(b, sizeof b, name, name_n));
        }
        id = PK_G_OPAQUE;
    }
    pk_val *v = pk_new(u, PK_GLOBAL);
    if (v) {
        v->u.g.id = id;
        v->u.g.mod = mod;
        v->u.g.mod_n = mod_n;
        v->u.g.name = name;
        v->u.g.name_n = name_n;
    }
    return pk_push(u, v);
}

static stfpm_status pk_read_line(pk *u, const char **s, size_t *n) {
    size_t start = u->pos;
    while (u->pos < u->len && u->buf[u->pos] != '\n') {
        if (u->pos - start >= PK_MAX_GLOBAL_LINE) return pk_fail(u, "GLOBAL name too long");
        u->pos++;
    }
    if (u->pos >= u->len) return pk_fail(u, "truncated GLOBAL");
    *s = (const char *)u->buf + start;
    *n = u->pos - start;
    u->pos++;
    return STFPM_OK;
}

/* int value of v (INT or BOOL), with a message naming what when it is something else */
static stfpm_status pk_int_of(pk *u, const pk_val *v, const char *what, int64_t *out) {
    if (!v || (v->kind != PK_INT && v->kind != PK_BOOL))
        return pk_fail(u, "%s is a %s, expected an int", what, v ? pk_kind_names[v->kind] : "missing value");
    *out = v->u.i;
    return STFPM_OK;
}

/* Persistent id ('storage', <Type>Storage, key, location, numel[, view_metadata]) -> storage. */
static stfpm_status pk_persistent(pk *u, pk_val *pid) {
    if (!pid || pid->kind != PK_TUPLE || pid->u.seq.n < 5 || pid->u.seq.n > 6)
        return pk_fail(u, "persistent id is not a 5- or 6-tuple");
    pk_val **a = pid->u.seq.v;
    if (!pk_str_eq(a[0], "storage")) return pk_fail(u, "persistent id is not a storage");
    if (a[1]->kind != PK_GLOBAL || a[1]->u.g.id < PK_G_STORAGE0)
        return pk_fail(u, "persistent id: storage type is not a torch.<Type>Storage");
    if (a[2]->kind != PK_STR) return pk_fail(u, "persistent id: storage key is not a string");
    if (a[3]->kind != PK_STR) return pk_fail(u, "persistent id: location is not a string");
    int64_t numel = 0;
    STFPM_TRY(pk_int_of(u, a[4], "storage size", &numel));
    if (numel < 0) return pk_fail(u, "negative storage size");
    if (pid->u.seq.n == 6 && a[5]->kind != PK_NONE)
        return pk_fail(u, "storage views (legacy view_metadata) are not supported");
    pk_val *v = pk_new(u, PK_STORAGE);
    if (!v) return pk_status_of_last();
    v->u.st.type = a[1]->u.g.id - PK_G_STORAGE0;
    v->u.st.key = a[2]->u.s.p;
    v->u.st.key_n = a[2]->u.s.n;
    v->u.st.numel = numel;
    if (u->n_storages == u->storages_cap) {
        size_t cap = u->storages_cap ? u->storages_cap * 2 : 64;
        pk_val **s = realloc(u->storages, cap * sizeof *s);
        if (!s) return stfpm_set_error(STFPM_ERR_OOM, "%s: out of host memory while unpickling", u->label);
        u->storages = s;
        u->storages_cap = cap;
    }
    u->storages[u->n_storages++] = v;
    return pk_push(u, v);
}

static stfpm_status pk_int_tuple(pk *u, const pk_val *v, const char *what, int64_t *out, int *n) {
    if (!v || v->kind != PK_TUPLE) return pk_fail(u, "tensor %s is not a tuple", what);
    if (v->u.seq.n > STFPM_WEIGHT_MAX_DIMS)
        return pk_fail(u, "tensor %s has %zu dimensions (at most %d)", what, v->u.seq.n, STFPM_WEIGHT_MAX_DIMS);
    *n = (int)v->u.seq.n;
    for (int d = 0; d < *n; d++) {
        STFPM_TRY(pk_int_of(u, v->u.seq.v[d], what, &out[d]));
        if (out[d] < 0) return pk_fail(u, "tensor %s has a negative entry", what);
    }
    return STFPM_OK;
}

/* _rebuild_tensor(_v2)(storage, storage_offset, size, stride, ...) */
static stfpm_status pk_rebuild_tensor(pk *u, pk_val *args, size_t min_args, size_t max_args) {
    if (args->u.seq.n < min_args || args->u.seq.n > max_args)
        return pk_fail(u, "_rebuild_tensor with %zu arguments", args->u.seq.n);
    pk_val **a = args->u.seq.v;
    if (a[0]->kind != PK_STORAGE) return pk_fail(u, "_rebuild_tensor: first argument is not a storage");
    pk_val *t = pk_new(u, PK_TENSOR);
    if (!t) return pk_status_of_last();
    int64_t stride[STFPM_WEIGHT_MAX_DIMS];
    int nstride;
    t->u.t.storage = a[0];
    STFPM_TRY(pk_int_of(u, a[1], "storage offset", &t->u.t.offset));
    if (t->u.t.offset < 0) return pk_fail(u, "negative storage offset");
    STFPM_TRY(pk_int_tuple(u, a[2], "size", t->u.t.shape, &t->u.t.ndim));
    STFPM_TRY(pk_int_tuple(u, a[3], "stride", stride, &nstride));
    if (nstride != t->u.t.ndim) return pk_fail(u, "tensor size and stride differ in length");
    /* numel, then contiguity (dimensions of size 1 may have any stride; empty tensors are
     * contiguous), then bounds */
    uint64_t numel = 1;
    for (int d = 0; d < t->u.t.ndim; d++) {
        uint64_t s = (uint64_t)t->u.t.shape[d];
        if (s && numel > (uint64_t)INT64_MAX / s) return pk_fail(u, "tensor size overflows");
        numel *= s;
    }
    /* layout problems are reported with the tensor's name when it is loaded (pk_to_weights) */
    uint64_t expect = 1;
    for (int d = t->u.t.ndim - 1; numel && d >= 0 && !t->u.t.bad; d--) {
        uint64_t s = (uint64_t)t->u.t.shape[d];
        if (s != 1 && (uint64_t)stride[d] != expect) {
            t->u.t.bad = PK_BAD_STRIDE;
            t->u.t.bad_dim = d;
            t->u.t.bad_a = stride[d];
            t->u.t.bad_b = (int64_t)expect;
        }
        expect *= s;
    }
    pk_val *st = a[0];
    if (!t->u.t.bad && numel && ((uint64_t)t->u.t.offset > (uint64_t)st->u.st.numel ||
                                 numel > (uint64_t)(st->u.st.numel - t->u.t.offset))) {
        t->u.t.bad = PK_BAD_BOUNDS;
        t->u.t.bad_a = (int64_t)numel;
        t->u.t.bad_b = st->u.st.numel;
    }
    return pk_push(u, t);
}

/* An opaque placeholder (an instance or call result of a class or function outside the
 * whitelist); it is never looked into except for dict / list items set on it. */
static stfpm_status pk_push_object(pk *u, int listlike, const pk_val *from) {
    pk_val *v = pk_new(u, PK_OBJECT);
    if (v) {
        v->u.seq.listlike = listlike;
        v->u.seq.cls = from && from->kind == PK_GLOBAL ? from : from && from->kind == PK_OBJECT ? from->u.seq.cls : NULL;
    }
    return pk_push(u, v);
}

static int pk_is_opaque_callable(const pk_val *v) {
    return (v->kind == PK_GLOBAL && v->u.g.id == PK_G_OPAQUE) || v->kind == PK_OBJECT;
}

static stfpm_status pk_reduce(pk *u, pk_val *fn, pk_val *args) {
    if (args->kind != PK_TUPLE) return pk_fail(u, "REDUCE arguments are not a tuple");
    if (pk_is_opaque_callable(fn)) return pk_push_object(u, 0, fn);   /* not called */
    if (fn->kind != PK_GLOBAL) return pk_fail(u, "REDUCE of a %s", pk_kind_names[fn->kind]);
    switch (fn->u.g.id) {
    case PK_G_ORDERED_DICT:
        if (args->u.seq.n != 0) return pk_fail(u, "OrderedDict() with arguments is not supported");
        return pk_push(u, pk_new(u, PK_DICT));
    case PK_G_REBUILD_TENSOR_V2: return pk_rebuild_tensor(u, args, 6, 7);
    case PK_G_REBUILD_TENSOR: return pk_rebuild_tensor(u, args, 4, 4);
    case PK_G_REBUILD_PARAMETER:
    case PK_G_REBUILD_PARAMETER_STATE:
        if (args->u.seq.n != (fn->u.g.id == PK_G_REBUILD_PARAMETER ? 3u : 4u) ||
            args->u.seq.v[0]->kind != PK_TENSOR)
            return pk_fail(u, "_rebuild_parameter: unexpected arguments");
        return pk_push(u, args->u.seq.v[0]);
    default:
        return pk_fail(u, "torch.%s is not callable here", pk_storage_types[fn->u.g.id - PK_G_STORAGE0].name);
    }
}

/* APPEND(S) may go to a placeholder with no dict items yet (a list subclass). */
static int pk_object_takes_items(const pk_val *x) {
    return x->kind == PK_OBJECT && (x->u.seq.listlike || x->u.seq.n == 0);
}

/* Run the pickle starting at u->pos until STOP; *result receives the object. Memo and stack
 * are reset; objects persist until pk_release. */
static stfpm_status pk_load(pk *u, pk_val **result) {
    u->sp = 0;
    u->n_marks = 0;
    if (u->memo) memset(u->memo, 0, u->memo_cap * sizeof *u->memo);
    u->memo_count = 0;
    *result = NULL;
    for (;;) {
        const unsigned char *p = pk_take(u, 1);
        if (!p) return STFPM_ERR_FORMAT;
        unsigned op = *p;
        pk_val *v = NULL, *w = NULL, *x = NULL, **items = NULL;
        size_t n = 0;
        const char *s1 = NULL, *s2 = NULL;
        size_t n1 = 0, n2 = 0;
        stfpm_status s = STFPM_OK;
        switch (op) {
        case 0x80: /* PROTO */
            if (!(p = pk_take(u, 1))) return STFPM_ERR_FORMAT;
            if (*p < 2 || *p > 5) return pk_fail(u, "pickle protocol %u not supported", *p);
            break;
        case 0x95: /* FRAME: length of the next frame, irrelevant for a buffer */
            if (!pk_take(u, 8)) return STFPM_ERR_FORMAT;
            break;
        case '.': /* STOP */
            if (!(v = pk_pop(u))) return STFPM_ERR_FORMAT;
            *result = v;
            return STFPM_OK;
        case 'N': s = pk_push(u, &u->none); break;
        case 0x88: case 0x89: /* NEWTRUE, NEWFALSE */
            if ((v = pk_new(u, PK_BOOL))) v->u.i = op == 0x88;
            s = pk_push(u, v);
            break;
        case 'K': case 'M': case 'J': { /* BININT1, BININT2, BININT */
            int nb = op == 'K' ? 1 : op == 'M' ? 2 : 4;
            if (!(p = pk_take(u, (size_t)nb))) return STFPM_ERR_FORMAT;
            if ((v = pk_new(u, PK_INT)))
                v->u.i = op == 'J' ? (int64_t)(int32_t)(uint32_t)pk_le(p, 4) : (int64_t)pk_le(p, nb);
            s = pk_push(u, v);
            break;
        }
        case 0x8a: case 0x8b: { /* LONG1, LONG4: little-endian two's complement */
            int lb = op == 0x8a ? 1 : 4;
            if (!(p = pk_take(u, (size_t)lb))) return STFPM_ERR_FORMAT;
            uint64_t nb = pk_le(p, lb);
            if (op == 0x8b && (int32_t)(uint32_t)nb < 0) return pk_fail(u, "LONG4 with negative length");
            if (!(p = pk_take(u, (size_t)nb))) return STFPM_ERR_FORMAT;
            if (nb <= 8) {
                uint64_t raw = pk_le(p, (int)nb);
                if (nb && nb < 8 && (p[nb - 1] & 0x80)) raw |= ~(uint64_t)0 << (8 * nb);
                if ((v = pk_new(u, PK_INT))) v->u.i = (int64_t)raw;
            } else if ((v = pk_new(u, PK_BIGINT))) {
                v->u.s.p = (const char *)p;
                v->u.s.n = (size_t)nb;
            }
            s = pk_push(u, v);
            break;
        }
        case 'G': /* BINFLOAT: big-endian double */
            if (!(p = pk_take(u, 8))) return STFPM_ERR_FORMAT;
            if ((v = pk_new(u, PK_FLOAT))) {
                uint64_t bits = 0;
                for (int k = 0; k < 8; k++) bits = (bits << 8) | p[k];
                memcpy(&v->u.f, &bits, 8);
            }
            s = pk_push(u, v);
            break;
        case 'X': case 0x8c: case 0x8d: /* BINUNICODE, SHORT_BINUNICODE, BINUNICODE8 */
        case 'T': case 'U': /* BINSTRING, SHORT_BINSTRING (Python 2 str) */
        case 'B': case 'C': case 0x8e: { /* BINBYTES, SHORT_BINBYTES, BINBYTES8 */
            int lb = (op == 0x8c || op == 'U' || op == 'C') ? 1 : (op == 0x8d || op == 0x8e) ? 8 : 4;
            if (!(p = pk_take(u, (size_t)lb))) return STFPM_ERR_FORMAT;
            uint64_t nb = pk_le(p, lb);
            if (op == 'T' && (int32_t)(uint32_t)nb < 0) return pk_fail(u, "BINSTRING with negative length");
            if (nb > u->len - u->pos) return pk_fail(u, "truncated string (%llu bytes)", (unsigned long long)nb);
            if (!(p = pk_take(u, (size_t)nb))) return STFPM_ERR_FORMAT;
            if ((v = pk_new(u, PK_STR))) {
                v->u.s.p = (const char *)p;
                v->u.s.n = (size_t)nb;
            }
            s = pk_push(u, v);
            break;
        }
        case '}': s = pk_push(u, pk_new(u, PK_DICT)); break;
        case ']': s = pk_push(u, pk_new(u, PK_LIST)); break;
        case ')': s = pk_push(u, pk_new(u, PK_TUPLE)); break;
        case '(': /* MARK */
            if (u->n_marks == u->marks_cap) {
                if (u->marks_cap >= PK_MAX_STACK) return pk_fail(u, "too many MARKs");
                size_t cap = u->marks_cap ? u->marks_cap * 2 : 32;
                size_t *m = realloc(u->marks, cap * sizeof *m);
                if (!m) return stfpm_set_error(STFPM_ERR_OOM, "%s: out of host memory while unpickling", u->label);
                u->marks = m;
                u->marks_cap = cap;
            }
            u->marks[u->n_marks++] = u->sp;
            break;
        case 't': case 'l': /* TUPLE, LIST */
            STFPM_TRY(pk_pop_mark(u, &items, &n));
            s = pk_push(u, pk_make_seq(u, op == 't' ? PK_TUPLE : PK_LIST, items, n));
            break;
        case 'd': /* DICT */
            STFPM_TRY(pk_pop_mark(u, &items, &n));
            if (n % 2) return pk_fail(u, "DICT with an odd number of items");
            s = pk_push(u, pk_make_seq(u, PK_DICT, items, n));
            break;
        case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
            size_t k = op - 0x84;
            size_t floor = u->n_marks ? u->marks[u->n_marks - 1] : 0;
            if (u->sp - floor < k) return pk_fail(u, "stack underflow");
            u->sp -= k;
            s = pk_push(u, pk_make_seq(u, PK_TUPLE, u->stack + u->sp, k));
            break;
        }
        case 'q': case 'r': /* BINPUT, LONG_BINPUT */
            if (!(p = pk_take(u, op == 'q' ? 1 : 4))) return STFPM_ERR_FORMAT;
            s = pk_memo_put(u, pk_le(p, op == 'q' ? 1 : 4));
            break;
        case 0x94: /* MEMOIZE */
            s = pk_memo_put(u, u->memo_count);
            break;
        case 'h': case 'j': /* BINGET, LONG_BINGET */
            if (!(p = pk_take(u, op == 'h' ? 1 : 4))) return STFPM_ERR_FORMAT;
            s = pk_memo_get(u, pk_le(p, op == 'h' ? 1 : 4));
            break;
        case '0': /* POP */
            if (u->n_marks && u->marks[u->n_marks - 1] == u->sp) u->n_marks--;   /* pops a MARK */
            else if (!pk_pop(u)) return STFPM_ERR_FORMAT;
            break;
        case '1': /* POP_MARK */
            STFPM_TRY(pk_pop_mark(u, &items, &n));
            break;
        case '2': /* DUP */
            if (!(v = pk_top(u))) return STFPM_ERR_FORMAT;
            s = pk_push(u, v);
            break;
        case 's': /* SETITEM (on a dict, or an opaque dict subclass) */
            if (!(v = pk_pop(u)) || !(w = pk_pop(u)) || !(x = pk_top(u))) return STFPM_ERR_FORMAT;
            if (x->kind != PK_DICT && !(x->kind == PK_OBJECT && !x->u.seq.listlike))
                return pk_fail(u, "SETITEM on a %s", pk_kind_names[x->kind]);
            s = pk_seq_append(u, x, w);
            if (s == STFPM_OK) s = pk_seq_append(u, x, v);
            break;
        case 'u': /* SETITEMS */
            STFPM_TRY(pk_pop_mark(u, &items, &n));
            if (n % 2) return pk_fail(u, "SETITEMS with an odd number of items");
            if (!(x = pk_top(u))) return STFPM_ERR_FORMAT;
            if (x->kind != PK_DICT && !(x->kind == PK_OBJECT && !x->u.seq.listlike))
                return pk_fail(u, "SETITEMS on a %s", pk_kind_names[x->kind]);
            for (size_t k = 0; k < n && s == STFPM_OK; k++) s = pk_seq_append(u, x, items[k]);
            break;
        case 'a': /* APPEND (on a list, or an opaque list subclass) */
            if (!(v = pk_pop(u)) || !(x = pk_top(u))) return STFPM_ERR_FORMAT;
            if (x->kind != PK_LIST && !pk_object_takes_items(x))
                return pk_fail(u, "APPEND on a %s", pk_kind_names[x->kind]);
            if (x->kind == PK_OBJECT) x->u.seq.listlike = 1;
            s = pk_seq_append(u, x, v);
            break;
        case 'e': case 0x90: /* APPENDS; ADDITEMS (protocol 4, to a set) */
            STFPM_TRY(pk_pop_mark(u, &items, &n));
            if (!(x = pk_top(u))) return STFPM_ERR_FORMAT;
            if (op == 'e' ? x->kind != PK_LIST && !pk_object_takes_items(x)
                          : !(x->kind == PK_OBJECT && x->u.seq.listlike))
                return pk_fail(u, "%s on a %s", op == 'e' ? "APPENDS" : "ADDITEMS", pk_kind_names[x->kind]);
            if (x->kind == PK_OBJECT) x->u.seq.listlike = 1;
            for (size_t k = 0; k < n && s == STFPM_OK; k++) s = pk_seq_append(u, x, items[k]);
            break;
        case 0x8f: /* EMPTY_SET: a placeholder holding the items */
            s = pk_push_object(u, 1, NULL);
            break;
        case 0x91: /* FROZENSET */
            STFPM_TRY(pk_pop_mark(u, &items, &n));
            if ((v = pk_make_seq(u, PK_OBJECT, items, n))) v->u.seq.listlike = 1;
            s = pk_push(u, v);
            break;
        case 'c': /* GLOBAL "module\nname\n" */
            STFPM_TRY(pk_read_line(u, &s1, &n1));
            STFPM_TRY(pk_read_line(u, &s2, &n2));
            s = pk_global(u, s1, n1, s2, n2);
            break;
        case 0x93: /* STACK_GLOBAL */
            if (!(w = pk_pop(u)) || !(v = pk_pop(u))) return STFPM_ERR_FORMAT;
            if (v->kind != PK_STR || w->kind != PK_STR) return pk_fail(u, "STACK_GLOBAL of non-strings");
            s = pk_global(u, v->u.s.p, v->u.s.n, w->u.s.p, w->u.s.n);
            break;
        case 'R': /* REDUCE */
            if (!(w = pk_pop(u)) || !(v = pk_pop(u))) return STFPM_ERR_FORMAT;
            s = pk_reduce(u, v, w);
            break;
        case 0x81: case 0x92: /* NEWOBJ: cls.__new__(cls, *args); NEWOBJ_EX: (cls, args, kwargs) */
            if (op == 0x92) {
                if (!(x = pk_pop(u))) return STFPM_ERR_FORMAT;
                if (x->kind != PK_DICT) return pk_fail(u, "NEWOBJ_EX keyword arguments are not a dict");
            }
            if (!(w = pk_pop(u)) || !(v = pk_pop(u))) return STFPM_ERR_FORMAT;
            if (w->kind != PK_TUPLE) return pk_fail(u, "NEWOBJ arguments are not a tuple");
            if (v->kind == PK_GLOBAL && v->u.g.id == PK_G_ORDERED_DICT) s = pk_push(u, pk_new(u, PK_DICT));
            else if (pk_is_opaque_callable(v)) s = pk_push_object(u, 0, v);   /* nothing is constructed */
            else return pk_fail(u, "NEWOBJ of a %s that is neither OrderedDict nor a class", pk_kind_names[v->kind]);
            break;
        case 'b': /* BUILD: the state of an OrderedDict (its _metadata) or of a placeholder is ignored */
            if (!(v = pk_pop(u)) || !(x = pk_top(u))) return STFPM_ERR_FORMAT;
            if (x->kind != PK_DICT && x->kind != PK_OBJECT) return pk_fail(u, "BUILD on a %s", pk_kind_names[x->kind]);
            break;
        case 'Q': /* BINPERSID */
            if (!(v = pk_pop(u))) return STFPM_ERR_FORMAT;
            s = pk_persistent(u, v);
            break;
        default:
            u->pos--;
            return pk_fail(u, "unsupported pickle opcode 0x%02x", op);
        }
        if (s != STFPM_OK) return s;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* state_dict -> weights */

static float pk_load_float(const unsigned char *p, int kind, int big) {
    unsigned char b[8];
    int n = kind == PK_F64 ? 8 : kind == PK_F32 ? 4 : 2;
    for (int k = 0; k < n; k++) b[k] = big ? p[n - 1 - k] : p[k];
    uint64_t v = pk_le(b, n);
    switch (kind) {
    case PK_F32: {
        uint32_t x = (uint32_t)v;
        float f;
        memcpy(&f, &x, 4);
        return f;
    }
    case PK_F16: return stfpm_half_to_float((uint16_t)v);
    case PK_BF16: return stfpm_bf16_to_float((uint16_t)v);
    default: {
        double d;
        memcpy(&d, &v, 8);
        return (float)d;
    }
    }
}

/* A dict, or a placeholder that received only key, value pairs (a dict subclass). */
static int pk_dictlike(const pk_val *d) {
    return d && (d->kind == PK_DICT || (d->kind == PK_OBJECT && !d->u.seq.listlike && d->u.seq.n % 2 == 0));
}

static const pk_val *pk_dict_get(const pk_val *d, const char *key) {
    for (size_t k = 0; k + 1 < d->u.seq.n; k += 2)
        if (pk_str_eq(d->u.seq.v[k], key)) return d->u.seq.v[k + 1];
    return NULL;
}

/* The state_dict inside the loaded object: the object itself or its "state_dict" / "model". */
static stfpm_status pk_find_state_dict(pk *u, const pk_val *root, const pk_val **out) {
    if (root && root->kind == PK_OBJECT && root->u.seq.cls && (root->u.seq.listlike || root->u.seq.n == 0)) {
        char a[PK_MAX_GLOBAL_LINE + 1], b[PK_MAX_GLOBAL_LINE + 1];
        const pk_val *c = root->u.seq.cls;
        return stfpm_set_error(STFPM_ERR_FORMAT, "%s: the file holds a pickled Python object (%s.%s), not a "
                               "state_dict: save model.state_dict() instead", u->label,
                               pk_printable(a, sizeof a, c->u.g.mod, c->u.g.mod_n),
                               pk_printable(b, sizeof b, c->u.g.name, c->u.g.name_n));
    }
    if (!pk_dictlike(root))
        return stfpm_set_error(STFPM_ERR_FORMAT, "%s: the file holds a %s, not a state_dict", u->label,
                               root ? pk_kind_names[root->kind] : "nothing");
    static const char *const nested[] = {"state_dict", "model"};
    for (int k = 0; k < 2; k++) {
        const pk_val *v = pk_dict_get(root, nested[k]);
        if (v && pk_dictlike(v)) {
            *out = v;
            return STFPM_OK;
        }
    }
    *out = root;
    return STFPM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* checkpoint metadata: the plain values beside a nested state_dict */

#define PK_META_MAX 512          /* metadata pairs taken from one file */
#define PK_META_VISITS 4096      /* values looked at under one top-level key */
#define PK_META_VISITS_ALL 65536 /* values looked at in all */
#define PK_META_DEPTH 10
#define PK_META_KEY 200
#define PK_META_VALUE 1024

typedef struct pk_meta_walk {
    pk *u;
    stfpm_weights *out;
    int visits, visits_all, added;
} pk_meta_walk;

static int pk_meta_spent(const pk_meta_walk *m) {
    return m->visits > PK_META_VISITS || m->visits_all > PK_META_VISITS_ALL || m->added >= PK_META_MAX;
}

/* Text of a scalar (str of printable ASCII, int, bool, float) into buf; 0 when v is not one. */
static int pk_scalar_text(const pk_val *v, char *buf, size_t cap) {
    switch (v->kind) {
    case PK_STR:
        if (v->u.s.n >= cap) return 0;
        for (size_t k = 0; k < v->u.s.n; k++)
            if (v->u.s.p[k] < 0x20 || v->u.s.p[k] >= 0x7f) return 0;
        memcpy(buf, v->u.s.p, v->u.s.n);
        buf[v->u.s.n] = 0;
        return 1;
    case PK_INT: snprintf(buf, cap, "%lld", (long long)v->u.i); return 1;
    case PK_BOOL: snprintf(buf, cap, "%s", v->u.i ? "true" : "false"); return 1;
    case PK_FLOAT: /* the shortest of %.15g / %.17g that reads back the same double */
        snprintf(buf, cap, "%.15g", v->u.f);
        if (strtod(buf, NULL) != v->u.f) snprintf(buf, cap, "%.17g", v->u.f);
        return 1;
    default: return 0;
    }
}

/* Record v under key (its length klen, in a buffer of PK_META_KEY + 1 bytes): a scalar as its
 * text, a list or tuple of scalars as their comma-joined texts; walks into dicts ("key.sub")
 * and other lists ("key.N"). Bounded in depth and in the values visited; nothing else (tensors,
 * placeholders, None) is recorded. */
static stfpm_status pk_meta_put(pk_meta_walk *m, char *key, size_t klen, const pk_val *v, int depth) {
    char text[PK_META_VALUE + 1];
    m->visits++;
    m->visits_all++;
    if (pk_meta_spent(m) || depth > PK_META_DEPTH) return STFPM_OK;
    if (pk_scalar_text(v, text, sizeof text)) {
        m->added++;
        return stfpm_weights_set_meta(m->out, key, text);
    }
    if (v->kind == PK_LIST || v->kind == PK_TUPLE) {
        size_t n = 0;
        int scalars = v->u.seq.n > 0;
        for (size_t k = 0; k < v->u.seq.n && scalars; k++) {
            char one[PK_META_VALUE + 1];
            if (!pk_scalar_text(v->u.seq.v[k], one, sizeof one) || strchr(one, ',') ||
                n + strlen(one) + 1 > sizeof text) {
                scalars = 0;
                break;
            }
            n += (size_t)snprintf(text + n, sizeof text - n, k ? ",%s" : "%s", one);
        }
        if (scalars) {
            m->added++;
            return stfpm_weights_set_meta(m->out, key, text);
        }
        for (size_t k = 0; k < v->u.seq.n && !pk_meta_spent(m); k++) {
            int w = snprintf(key + klen, PK_META_KEY + 1 - klen, ".%zu", k);
            if (w < 0 || klen + (size_t)w > PK_META_KEY) break;
            STFPM_TRY(pk_meta_put(m, key, klen + (size_t)w, v->u.seq.v[k], depth + 1));
        }
        key[klen] = 0;
        return STFPM_OK;
    }
    if (pk_dictlike(v)) {
        for (size_t k = 0; k + 1 < v->u.seq.n && !pk_meta_spent(m); k += 2) {
            char name[PK_META_KEY + 1];
            const pk_val *kv = v->u.seq.v[k];
            if ((kv->kind != PK_STR && kv->kind != PK_INT) || !pk_scalar_text(kv, name, sizeof name) ||
                strchr(name, '.') || klen + 1 + strlen(name) > PK_META_KEY)
                continue;
            key[klen] = '.';
            memcpy(key + klen + 1, name, strlen(name) + 1);
            STFPM_TRY(pk_meta_put(m, key, klen + 1 + strlen(name), v->u.seq.v[k + 1], depth + 1));
        }
        key[klen] = 0;
    }
    return STFPM_OK;
}

/* A checkpoint (the state_dict nested in a dict, as Lightning writes): every plain value beside
 * it becomes metadata "ckpt.<key>[.<sub>...]", e.g. ckpt.hyper_parameters.backbone = resnet18,
 * ckpt.hyper_parameters.layers = layer1,layer2,layer3, ckpt.pytorch-lightning_version. The
 * training state (optimizer_states, lr_schedulers, loops, callbacks) is left out. */
static stfpm_status pk_checkpoint_meta(pk *u, const pk_val *root, const pk_val *sd, stfpm_weights *out) {
    static const char *const skipped[] = {"state_dict", "optimizer_states", "lr_schedulers", "loops", "callbacks"};
    if (sd == root || !pk_dictlike(root)) return STFPM_OK;
    pk_meta_walk m = {u, out, 0, 0, 0};
    for (size_t k = 0; k + 1 < root->u.seq.n && m.visits_all <= PK_META_VISITS_ALL && m.added < PK_META_MAX; k += 2) {
        const pk_val *kv = root->u.seq.v[k], *v = root->u.seq.v[k + 1];
        char key[PK_META_KEY + 1] = "ckpt.", name[PK_META_KEY + 1];
        int skip = v == sd || kv->kind != PK_STR || !pk_scalar_text(kv, name, sizeof name) ||
                   strchr(name, '.') || 5 + strlen(name) > PK_META_KEY;
        for (size_t j = 0; j < sizeof skipped / sizeof skipped[0] && !skip; j++) skip = strcmp(name, skipped[j]) == 0;
        if (skip) continue;
        strcat(key, name);
        m.visits = 0;
        stfpm_status s = pk_meta_put(&m, key, strlen(key), v, 0);
        if (s != STFPM_OK) return stfpm_wrap_error(s, "%s", u->label);
    }
    return STFPM_OK;
}

static stfpm_status pk_to_weights(pk *u, const pk_val *sd, int big_endian, stfpm_weights *out) {
    char name[STFPM_WEIGHT_NAME_MAX], shown[80];
    for (size_t k = 0; k + 1 < sd->u.seq.n; k += 2) {
        const pk_val *key = sd->u.seq.v[k], *t = sd->u.seq.v[k + 1];
        if (t->kind == PK_OBJECT && t->u.seq.cls && t->u.seq.cls->u.g.mod_n >= 5 &&
            memcmp(t->u.seq.cls->u.g.mod, "torch", 5) == 0 &&
            (t->u.seq.cls->u.g.mod_n == 5 || t->u.seq.cls->u.g.mod[5] == '.')) {
            /* a tensor rebuilt by a torch function outside the whitelist (quantized, sparse,
             * a tensor subclass, ...): an error, not a silently missing tensor */
            char a[PK_MAX_GLOBAL_LINE + 1], b[PK_MAX_GLOBAL_LINE + 1];
            const pk_val *c = t->u.seq.cls;
            return stfpm_set_error(STFPM_ERR_FORMAT, "%s: state_dict entry '%s' is built by %s.%s, which is not "
                                   "supported (only dense float tensors are loaded)", u->label,
                                   key->kind == PK_STR ? pk_printable(shown, sizeof shown, key->u.s.p, key->u.s.n) : "?",
                                   pk_printable(a, sizeof a, c->u.g.mod, c->u.g.mod_n),
                                   pk_printable(b, sizeof b, c->u.g.name, c->u.g.name_n));
        }
        if (t->kind != PK_TENSOR) continue;               /* epoch, config, ... */
        if (key->kind != PK_STR)
            return stfpm_set_error(STFPM_ERR_FORMAT, "%s: a tensor is stored under a %s key", u->label,
                                   pk_kind_names[key->kind]);
        if (key->u.s.n == 0 || key->u.s.n >= sizeof name || memchr(key->u.s.p, 0, key->u.s.n))
            return stfpm_set_error(STFPM_ERR_FORMAT, "%s: tensor name '%s' is empty, longer than %d bytes or holds NUL",
                                   u->label, pk_printable(shown, sizeof shown, key->u.s.p, key->u.s.n),
                                   STFPM_WEIGHT_NAME_MAX - 1);
        memcpy(name, key->u.s.p, key->u.s.n);
        name[key->u.s.n] = 0;
        const pk_val *st = t->u.t.storage;
        const struct pk_storage_type *ty = &pk_storage_types[st->u.st.type];
        if (ty->kind == PK_SKIP) continue;                /* num_batches_tracked and other ints */
        if (t->u.t.bad == PK_BAD_STRIDE)
            return stfpm_set_error(STFPM_ERR_FORMAT, "%s: tensor %s is not contiguous (stride %lld in dimension %d, "
                                   "expected %lld): save tensor.contiguous()", u->label, name,
                                   (long long)t->u.t.bad_a, t->u.t.bad_dim, (long long)t->u.t.bad_b);
        if (t->u.t.bad == PK_BAD_BOUNDS)
            return stfpm_set_error(STFPM_ERR_FORMAT, "%s: tensor %s (offset %lld, %lld elements) exceeds its storage of %lld elements",
                                   u->label, name, (long long)t->u.t.offset, (long long)t->u.t.bad_a,
                                   (long long)t->u.t.bad_b);
        if (!st->u.st.data)
            return stfpm_set_error(STFPM_ERR_FORMAT, "%s: tensor %s: the data of storage '%s' is missing",
                                   u->label, name, pk_printable(shown, sizeof shown, st->u.st.key, st->u.st.key_n));
        if (stfpm_weights_find(out, name))
            return stfpm_set_error(STFPM_ERR_FORMAT, "%s: tensor %s appears twice", u->label, name);
        float *dst;
        stfpm_status s = stfpm_weights_add_uninit(out, name, t->u.t.ndim, t->u.t.shape, &dst);
        if (s != STFPM_OK) return stfpm_wrap_error(s, "%s", u->label);
        size_t numel = stfpm_weight_numel(&out->items[out->count - 1]);
        if (!numel) continue;
        const unsigned char *src = st->u.st.data + (size_t)t->u.t.offset * (size_t)ty->elsize;
        for (size_t i = 0; i < numel; i++) dst[i] = pk_load_float(src + i * (size_t)ty->elsize, ty->kind, big_endian);
    }
    if (out->count == 0)
        return stfpm_set_error(STFPM_ERR_FORMAT, "%s: no floating-point tensors found (not a state_dict?)", u->label);
    return STFPM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* zip container */

typedef struct zip_entry {
    const char *name;
    size_t name_n;
    uint64_t offset, size, csize;
    int method, flags;
} zip_entry;

static int zip_cmp(const void *a, const void *b) {
    const zip_entry *x = a, *y = b;
    size_t n = x->name_n < y->name_n ? x->name_n : y->name_n;
    int c = memcmp(x->name, y->name, n);
    return c ? c : (x->name_n > y->name_n) - (x->name_n < y->name_n);
}

/* Entry prefix + suffix, data checked to lie inside the buffer; NULL (no error) when absent. */
static stfpm_status zip_find(const char *label, const unsigned char *b, size_t len, const zip_entry *ents,
                             size_t n, const char *prefix, size_t prefix_n, const char *suffix, size_t suffix_n,
                             const unsigned char **data, uint64_t *size) {
    char stack_name[256];
    size_t nn = prefix_n + suffix_n;
    char *name = nn <= sizeof stack_name ? stack_name : malloc(nn);
    if (!name) return stfpm_set_error(STFPM_ERR_OOM, "%s: out of host memory", label);
    memcpy(name, prefix, prefix_n);
    memcpy(name + prefix_n, suffix, suffix_n);
    zip_entry key = {name, nn, 0, 0, 0, 0, 0};
    const zip_entry *e = bsearch(&key, ents, n, sizeof *ents, zip_cmp);
    char shown[300];
    pk_printable(shown, sizeof shown, name, nn);
    if (name != stack_name) free(name);
    *data = NULL;
    *size = 0;
    if (!e) return STFPM_OK;
    if (e->flags & 1) return stfpm_set_error(STFPM_ERR_FORMAT, "%s: zip entry %s is encrypted", label, shown);
    if (e->method != 0 || e->csize != e->size)
        return stfpm_set_error(STFPM_ERR_FORMAT, "%s: zip entry %s is compressed (method %d); torch.save stores entries uncompressed",
                               label, shown, e->method);
    if (e->offset > len || len - e->offset < 30 || memcmp(b + e->offset, "PK\x03\x04", 4) != 0)
        return stfpm_set_error(STFPM_ERR_FORMAT, "%s: zip entry %s: bad local header offset %llu", label, shown,
                               (unsigned long long)e->offset);
    uint64_t start = e->offset + 30 + pk_le(b + e->offset + 26, 2) + pk_le(b + e->offset + 28, 2);
    if (start > len || e->size > len - start)
        return stfpm_set_error(STFPM_ERR_FORMAT, "%s: zip entry %s (%llu bytes at %llu) extends past the end of the file (%zu bytes): truncated?",
                               label, shown, (unsigned long long)e->size, (unsigned long long)start, len);
    *data = b + start;
    *size = e->size;
    return STFPM_OK;
}

static stfpm_status zip_directory(const char *label, const unsigned char *b, size_t len, zip_entry **out, size_t *count) {
    *out = NULL;
    *count = 0;
    if (len < 22) return stfpm_set_error(STFPM_ERR_FORMAT, "%s: zip file of %zu bytes is truncated", label, len);
    size_t eocd = (size_t)-1;
    size_t lowest = len - 22 > 65535 ? len - 22 - 65535 : 0;
    for (size_t i = len - 22 + 1; i-- > lowest;)
        if (memcmp(b + i, "PK\x05\x06", 4) == 0 && i + 22 + pk_le(b + i + 20, 2) <= len) {
            eocd = i;
            break;
        }
    if (eocd == (size_t)-1)
        return stfpm_set_error(STFPM_ERR_FORMAT, "%s: no zip end-of-central-directory record: truncated file?", label);
    uint64_t n = pk_le(b + eocd + 10, 2), cd_size = pk_le(b + eocd + 12, 4), cd_off = pk_le(b + eocd + 16, 4);
    if (pk_le(b + eocd + 4, 2) != 0 && pk_le(b + eocd + 4, 2) != 0xffff)
        return stfpm_set_error(STFPM_ERR_FORMAT, "%s: multi-disk zip archives are not supported", label);
    if ((n == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu) && eocd >= 20 &&
        memcmp(b + eocd - 20, "PK\x06\x07", 4) == 0) {
        uint64_t z = pk_le(b + eocd - 20 + 8, 8);
        if (z > len || len - z < 56 || memcmp(b + z, "PK\x06\x06", 4) != 0)
            return stfpm_set_error(STFPM_ERR_FORMAT, "%s: bad zip64 end-of-central-directory record", label);
        n = pk_le(b + z + 32, 8);
        cd_size = pk_le(b + z + 40, 8);
        cd_off = pk_le(b + z + 48, 8);
    }
    if (cd_off > len || cd_size > len - cd_off)
        return stfpm_set_error(STFPM_ERR_FORMAT, "%s: zip central directory (%llu bytes at %llu) outside the file", label,
                               (unsigned long long)cd_size, (unsigned long long)cd_off);
    if (n > ZIP_MAX_ENTRIES || n > cd_size / 46)
        return stfpm_set_error(STFPM_ERR_FORMAT, "%s: zip directory claims %llu entries in %llu bytes", label,
                               (unsigned long long)n, (unsigned long long)cd_size);
    zip_entry *e = malloc((size_t)(n ? n : 1) * sizeof *e);
    if (!e) return stfpm_set_error(STFPM_ERR_OOM, "%s: out of host memory", label);
    const unsigned char *p = b + cd_off, *end = b + cd_off + cd_size;
    for (uint64_t i = 0; i < n; i++) {
        if (end - p < 46 || memcmp(p, "PK\x01\x02", 4) != 0) {
            free(e);
            return stfpm_set_error(STFPM_ERR_FORMAT, "%s: zip central directory entry %llu is corrupt", label,
                                   (unsigned long long)i);
        }
        size_t nl = (size_t)pk_le(p + 28, 2), xl = (size_t)pk_le(p + 30, 2), cl = (size_t)pk_le(p + 32, 2);
        if ((size_t)(end - p) - 46 < nl + xl + cl) {
            free(e);
            return stfpm_set_error(STFPM_ERR_FORMAT, "%s: zip central directory entry %llu is truncated", label,
                                   (unsigned long long)i);
        }
        zip_entry *z = &e[i];
        z->flags = (int)pk_le(p + 8, 2);
        z->method = (int)pk_le(p + 10, 2);
        z->csize = pk_le(p + 20, 4);
        z->size = pk_le(p + 24, 4);
        z->offset = pk_le(p + 42, 4);
        z->name = (const char *)p + 46;
        z->name_n = nl;
        /* zip64 extended information: present fields replace the saturated 32-bit ones, in order */
        const unsigned char *x = p + 46 + nl, *xe = x + xl;
        while (xe - x >= 4) {
            unsigned id = (unsigned)pk_le(x, 2), sz = (unsigned)pk_le(x + 2, 2);
            if ((size_t)(xe - x - 4) < sz) break;
            if (id == 1) {
                const unsigned char *f = x + 4, *fe = x + 4 + sz;
                if (z->size == 0xffffffffu && fe - f >= 8) { z->size = pk_le(f, 8); f += 8; }
                if (z->csize == 0xffffffffu && fe - f >= 8) { z->csize = pk_le(f, 8); f += 8; }
                if (z->offset == 0xffffffffu && fe - f >= 8) { z->offset = pk_le(f, 8); f += 8; }
            }
            x += 4 + sz;
        }
        p += 46 + nl + xl + cl;
    }
    qsort(e, (size_t)n, sizeof *e, zip_cmp);
    *out = e;
    *count = (size_t)n;
    return STFPM_OK;
}

static stfpm_status pth_read_zip(const unsigned char *b, size_t len, const char *label, stfpm_weights *out) {
    zip_entry *ents;
    size_t n;
    STFPM_TRY(zip_directory(label, b, len, &ents, &n));
    stfpm_status s = STFPM_OK;
    pk u;
    memset(&u, 0, sizeof u);
    u.label = label;
    u.none.kind = PK_NONE;
    const char *prefix = NULL;
    size_t prefix_n = 0;
    /* torch: every record is "<archive name>/<record>"; the archive name is the first entry's
     * directory */
    for (size_t i = 0; i < n && !prefix; i++) {
        const char *slash = memchr(ents[i].name, '/', ents[i].name_n);
        if (slash && slash - ents[i].name + 9 == (ptrdiff_t)ents[i].name_n &&
            memcmp(slash + 1, "data.pkl", 8) == 0) {
            prefix = ents[i].name;
            prefix_n = (size_t)(slash - ents[i].name) + 1;
        }
    }
    const unsigned char *pkl = NULL, *bo = NULL;
    uint64_t pkl_n = 0, bo_n = 0;
    if (!prefix) {
        s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: zip archive without <name>/data.pkl: not a torch.save file", label);
        goto done;
    }
    s = zip_find(label, b, len, ents, n, prefix, prefix_n, "data.pkl", 8, &pkl, &pkl_n);
    if (s == STFPM_OK) s = zip_find(label, b, len, ents, n, prefix, prefix_n, "byteorder", 9, &bo, &bo_n);
    if (s != STFPM_OK) goto done;
    int big = 0;
    if (bo) {
        if (bo_n == 3 && memcmp(bo, "big", 3) == 0) big = 1;
        else if (!(bo_n == 6 && memcmp(bo, "little", 6) == 0)) {
            s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: unknown byteorder record", label);
            goto done;
        }
    }
    u.buf = pkl;
    u.len = (size_t)pkl_n;
    pk_val *root;
    s = pk_load(&u, &root);
    if (s != STFPM_OK) goto done;
    /* storages: data/<key>, at least numel * element size bytes */
    for (size_t i = 0; i < u.n_storages; i++) {
        pk_val *st = u.storages[i];
        const unsigned char *d;
        uint64_t dn;
        char suffix[64 + PK_MAX_GLOBAL_LINE], shown[80];
        if (st->u.st.key_n > 256) {
            s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: storage key too long", label);
            goto done;
        }
        memcpy(suffix, "data/", 5);
        memcpy(suffix + 5, st->u.st.key, st->u.st.key_n);
        s = zip_find(label, b, len, ents, n, prefix, prefix_n, suffix, 5 + st->u.st.key_n, &d, &dn);
        if (s != STFPM_OK) goto done;
        const struct pk_storage_type *ty = &pk_storage_types[st->u.st.type];
        pk_printable(shown, sizeof shown, st->u.st.key, st->u.st.key_n);
        if (!d) {
            if (ty->kind == PK_SKIP) continue;   /* reported only if a float tensor needs it */
            s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: zip entry data/%s (a storage) is missing", label, shown);
            goto done;
        }
        if ((uint64_t)st->u.st.numel > dn / (uint64_t)ty->elsize) {
            s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: storage data/%s holds %llu bytes, %lld %s elements need %llu",
                                label, shown, (unsigned long long)dn, (long long)st->u.st.numel, ty->name,
                                (unsigned long long)st->u.st.numel * (unsigned long long)ty->elsize);
            goto done;
        }
        st->u.st.data = d;
    }
    const pk_val *sd;
    s = pk_find_state_dict(&u, root, &sd);
    if (s == STFPM_OK) s = pk_to_weights(&u, sd, big, out);
    if (s == STFPM_OK) s = pk_checkpoint_meta(&u, root, sd, out);
done:
    pk_release(&u);
    free(ents);
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* legacy container */

static const unsigned char pk_magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

static stfpm_status pth_read_legacy(const unsigned char *b, size_t len, const char *label, stfpm_weights *out) {
    pk u;
    memset(&u, 0, sizeof u);
    u.label = label;
    u.none.kind = PK_NONE;
    u.buf = b;
    u.len = len;
    pk_val *magic, *proto, *info, *root, *keys;
    stfpm_status s = pk_load(&u, &magic);
    if (s == STFPM_OK && !(magic->kind == PK_BIGINT && magic->u.s.n == 10 && memcmp(magic->u.s.p, pk_magic, 10) == 0))
        s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: not a PyTorch file (pickle without the torch magic number; the tar format of torch < 0.4 is not supported)", label);
    if (s == STFPM_OK) s = pk_load(&u, &proto);
    if (s == STFPM_OK && !(proto->kind == PK_INT && proto->u.i == 1001))
        s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: unsupported legacy protocol version", label);
    if (s == STFPM_OK) s = pk_load(&u, &info);
    int big = 0;
    if (s == STFPM_OK) {
        const pk_val *le = info->kind == PK_DICT ? pk_dict_get(info, "little_endian") : NULL;
        if (info->kind != PK_DICT || (le && le->kind != PK_BOOL))
            s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: malformed sys_info record", label);
        else big = le && !le->u.i;
    }
    if (s == STFPM_OK) s = pk_load(&u, &root);
    if (s == STFPM_OK) s = pk_load(&u, &keys);
    if (s == STFPM_OK && keys->kind != PK_LIST)
        s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: storage key list missing after the object", label);
    /* raw storages in key-list order: int64 element count, then the bytes */
    size_t pos = u.pos;
    for (size_t k = 0; s == STFPM_OK && k < keys->u.seq.n; k++) {
        const pk_val *key = keys->u.seq.v[k];
        char shown[80];
        if (key->kind != PK_STR) {
            s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: storage key %zu is not a string", label, k);
            break;
        }
        pk_printable(shown, sizeof shown, key->u.s.p, key->u.s.n);
        pk_val *st = NULL;
        for (size_t i = 0; i < u.n_storages && !st; i++)
            if (u.storages[i]->u.st.key_n == key->u.s.n && memcmp(u.storages[i]->u.st.key, key->u.s.p, key->u.s.n) == 0)
                st = u.storages[i];
        if (!st) {
            s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: storage %s is listed but no tensor uses it", label, shown);
            break;
        }
        const struct pk_storage_type *ty = &pk_storage_types[st->u.st.type];
        if (len - pos < 8) {
            s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: storage %s (%zu of %zu): file truncated at byte %zu",
                                label, shown, k + 1, keys->u.seq.n, len);
            break;
        }
        unsigned char cnt[8];
        for (int i = 0; i < 8; i++) cnt[i] = b[pos + (big ? 7 - i : i)];
        uint64_t numel = pk_le(cnt, 8);
        pos += 8;
        if (numel != (uint64_t)st->u.st.numel) {
            s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: storage %s holds %llu elements, the pickle says %lld", label,
                                shown, (unsigned long long)numel, (long long)st->u.st.numel);
            break;
        }
        if (numel > (len - pos) / (uint64_t)ty->elsize) {
            s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: storage %s (%zu of %zu, %llu bytes) extends past the end of the file (%zu bytes): truncated",
                                label, shown, k + 1, keys->u.seq.n,
                                (unsigned long long)numel * (unsigned long long)ty->elsize, len);
            break;
        }
        /* every storage object with this key shares the data (same dtype required) */
        for (size_t i = 0; i < u.n_storages; i++) {
            pk_val *o = u.storages[i];
            if (o->u.st.key_n == key->u.s.n && memcmp(o->u.st.key, key->u.s.p, key->u.s.n) == 0) {
                if (o->u.st.type != st->u.st.type) {
                    s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: storage %s is used with two dtypes", label, shown);
                    break;
                }
                o->u.st.data = b + pos;
            }
        }
        pos += (size_t)(numel * (uint64_t)ty->elsize);
    }
    const pk_val *sd;
    if (s == STFPM_OK) s = pk_find_state_dict(&u, root, &sd);
    if (s == STFPM_OK) s = pk_to_weights(&u, sd, big, out);
    if (s == STFPM_OK) s = pk_checkpoint_meta(&u, root, sd, out);
    pk_release(&u);
    return s;
}

stfpm_status stfpm_pth_read_mem(const void *buf, size_t len, const char *label, stfpm_weights *out) {
    const unsigned char *b = buf;
    if (!label) label = "<memory>";
    if (!out) return stfpm_set_error(STFPM_ERR_ARG, "%s: NULL output dictionary", label);
    memset(out, 0, sizeof *out);
    if (!b && len) return stfpm_set_error(STFPM_ERR_ARG, "%s: NULL buffer", label);
    stfpm_status s;
    if (len >= 4 && memcmp(b, "PK\x03\x04", 4) == 0) s = pth_read_zip(b, len, label, out);
    else if (len >= 2 && b[0] == 0x80) s = pth_read_legacy(b, len, label, out);
    else
        s = stfpm_set_error(STFPM_ERR_FORMAT, "%s: neither a zip archive nor a pickle: not a torch.save file", label);
    if (s != STFPM_OK) stfpm_weights_free(out);
    return s;
}

stfpm_status stfpm_pth_read(const char *path, stfpm_weights *out) {
    void *buf;
    size_t len;
    if (out) memset(out, 0, sizeof *out);
    STFPM_TRY(stfpm_weights_read_file(path, &buf, &len));
    stfpm_status s = stfpm_pth_read_mem(buf, len, path, out);
    free(buf);
    return s;
}
