/* File-system and text helpers shared by the library: atomic file writes, whole-file reads,
 * mkdir -p, a growable string buffer, FNV-1a, a monotonic clock. */
#ifndef STFPM_FSUTIL_H
#define STFPM_FSUTIL_H
#include "stfpm/stfpm.h"

#include <stdarg.h>

/* Create path and its missing parents (mode 0755). An existing directory is fine; a file in
 * the way is STFPM_ERR_IO naming it. */
stfpm_status stfpm_mkdir_p(const char *path);

/* One piece of a file written by stfpm_write_parts_atomic. */
typedef struct stfpm_span {
    const void *data;
    size_t len;
} stfpm_span;

/* Write the concatenation of parts[0..n) to path atomically: the bytes go to
 * "<path>.tmp.<pid>.<k>" in the same directory (k: a process-wide counter), which is fsync'ed
 * and renamed over path; then the directory is fsync'ed so that the rename is durable. On
 * failure the temporary file is removed and path is untouched; the message (STFPM_ERR_IO)
 * names path and the cause. */
stfpm_status stfpm_write_parts_atomic(const char *path, const stfpm_span *parts, int n);
/* stfpm_write_parts_atomic with one part. */
stfpm_status stfpm_write_file_atomic(const char *path, const void *data, size_t len);
static inline stfpm_status stfpm_write_text_atomic(const char *path, const char *text, size_t len) {
    return stfpm_write_file_atomic(path, text, len);
}

/* Read a whole regular file into a malloc'd buffer of *len bytes followed by a NUL (so text
 * can be used as a C string). Errors name the file: missing or unreadable (STFPM_ERR_IO), not
 * a regular file (STFPM_ERR_IO), out of host memory (STFPM_ERR_OOM). On failure *data is NULL. */
stfpm_status stfpm_read_file(const char *path, char **data, size_t *len);
static inline stfpm_status stfpm_read_text(const char *path, char **text, size_t *len) {
    size_t n;
    return stfpm_read_file(path, text, len ? len : &n);
}

int stfpm_path_exists(const char *path);
/* 1 when path is a directory (links followed). */
int stfpm_is_dir(const char *path);
/* Monotonic clock in seconds. */
double stfpm_now(void);

/* A growable NUL-terminated string. A zeroed struct is an empty buffer. When an allocation
 * fails the buffer keeps what it held, records the failure (oom), ignores later appends, and
 * every append then returns STFPM_ERR_OOM with a message. */
typedef struct stfpm_strbuf {
    char *text;     /* NULL until the first append */
    size_t len, cap;
    int oom;
} stfpm_strbuf;

stfpm_status stfpm_strbuf_add(stfpm_strbuf *b, const char *data, size_t n);
stfpm_status stfpm_strbuf_puts(stfpm_strbuf *b, const char *s);
stfpm_status stfpm_strbuf_printf(stfpm_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drop everything after the first len bytes (len <= b->len). */
void stfpm_strbuf_truncate(stfpm_strbuf *b, size_t len);
void stfpm_strbuf_free(stfpm_strbuf *b);

/* 64-bit FNV-1a over n bytes, continuing from h. Every hash in this product starts from
 * STFPM_FNV1A64_INIT. (It differs from FNV's published offset basis 14695981039346656037;
 * kernel-cache and tuning-file names derive from it, so it stays.) */
#define STFPM_FNV1A64_INIT 1469598103934665603ULL
uint64_t stfpm_fnv1a64(uint64_t h, const void *data, size_t n);

/* 1 when needle is a case-insensitive substring of hay (device selectors). */
int stfpm_name_contains(const char *hay, const char *needle);

/* JSON string escaping into out (always NUL-terminated). */
void stfpm_json_escape(const char *in, char *out, size_t out_len);
#endif
