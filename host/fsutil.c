#include "fsutil.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

stfpm_status stfpm_mkdir_p(const char *path) {
    if (!path || !*path) return stfpm_set_error(STFPM_ERR_ARG, "no directory given");
    char *p = strdup(path);
    if (!p) return stfpm_set_error(STFPM_ERR_OOM, "out of host memory");
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') p[--n] = 0;
    stfpm_status s = STFPM_OK;
    for (char *c = p + 1; s == STFPM_OK; c++) {
        if (*c != '/' && *c) continue;
        char save = *c;
        *c = 0;
        struct stat st;
        /* a file among the parents makes the next mkdir fail with ENOTDIR, naming the path */
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            s = stfpm_set_error(STFPM_ERR_IO, "cannot create directory %s: %s", p, strerror(errno));
        else if (!save && (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)))
            s = stfpm_set_error(STFPM_ERR_IO, "%s exists and is not a directory", p);
        *c = save;
        if (!save) break;
    }
    free(p);
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* Atomic writes                                                                               */

static atomic_uint g_tmp_counter;

static int write_all(int fd, const unsigned char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        if (w == 0) {
            errno = ENOSPC;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* fsync the directory holding path, so that a rename in it survives a crash (best effort). */
static void sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) return;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(dir);
}

stfpm_status stfpm_write_parts_atomic(const char *path, const stfpm_span *parts, int n) {
    if (!path || !*path) return stfpm_set_error(STFPM_ERR_ARG, "output path is empty");
    size_t tlen = strlen(path) + 48;
    char *tmp = malloc(tlen);
    if (!tmp) return stfpm_set_error(STFPM_ERR_OOM, "out of host memory writing %s", path);
    snprintf(tmp, tlen, "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&g_tmp_counter, 1u));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        stfpm_status s = stfpm_set_error(STFPM_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        free(tmp);
        return s;
    }
    const char *step = "writing";
    int e = 0;
    for (int i = 0; i < n && !e; i++)
        if (write_all(fd, parts[i].data, parts[i].len) != 0) e = errno;
    /* EINVAL / EROFS: the file is one that cannot be synced (a device, a special file system) */
    if (!e && fsync(fd) != 0 && errno != EINVAL && errno != EROFS) {
        e = errno;
        step = "flushing";
    }
    if (close(fd) != 0 && !e) {
        e = errno;
        step = "closing";
    }
    if (!e && rename(tmp, path) != 0) {
        e = errno;
        step = "renaming the temporary file onto";
    }
    if (e) unlink(tmp);
    free(tmp);
    if (e) return stfpm_set_error(STFPM_ERR_IO, "%s %s: %s", step, path, strerror(e));
    sync_parent_dir(path);
    return STFPM_OK;
}

stfpm_status stfpm_write_file_atomic(const char *path, const void *data, size_t len) {
    stfpm_span part = {data, len};
    return stfpm_write_parts_atomic(path, &part, 1);
}

/* ------------------------------------------------------------------------------------------ */
/* Whole-file read                                                                             */

stfpm_status stfpm_read_file(const char *path, char **data, size_t *len) {
    *data = NULL;
    if (len) *len = 0;
    if (!path || !*path) return stfpm_set_error(STFPM_ERR_ARG, "no file name given");
    /* O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below) */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return stfpm_set_error(STFPM_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return stfpm_set_error(STFPM_ERR_IO, "cannot read %s: not a regular file", path);
    }
    /* the size is a hint: a file that grows or shrinks while it is read is read to its end */
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = malloc(cap);
    stfpm_status s = STFPM_OK;
    while (buf) {
        if (n + 1 == cap) {
            char *nb = cap <= ((size_t)-1) / 2 ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            s = stfpm_set_error(STFPM_ERR_IO, "reading %s: %s", path, strerror(errno));
            break;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    if (!buf) return stfpm_set_error(STFPM_ERR_OOM, "out of host memory reading %s (%lld bytes)", path,
                                     (long long)st.st_size);
    if (s != STFPM_OK) {
        free(buf);
        return s;
    }
    buf[n] = 0;
    *data = buf;
    if (len) *len = n;
    return STFPM_OK;
}

int stfpm_path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int stfpm_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

double stfpm_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------------------------------ */
/* String buffer                                                                               */

static stfpm_status strbuf_reserve(stfpm_strbuf *b, size_t extra) {
    if (b->oom) return stfpm_set_error(STFPM_ERR_OOM, "out of host memory (text of %zu bytes)", b->len);
    if (b->len + extra + 1 <= b->cap) return STFPM_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = realloc(b->text, cap);
    if (!p) {
        b->oom = 1;
        return stfpm_set_error(STFPM_ERR_OOM, "out of host memory (text of %zu bytes)", b->len + extra);
    }
    b->text = p;
    b->cap = cap;
    return STFPM_OK;
}

stfpm_status stfpm_strbuf_add(stfpm_strbuf *b, const char *data, size_t n) {
    STFPM_TRY(strbuf_reserve(b, n));
    memcpy(b->text + b->len, data, n);
    b->len += n;
    b->text[b->len] = 0;
    return STFPM_OK;
}

stfpm_status stfpm_strbuf_puts(stfpm_strbuf *b, const char *s) { return stfpm_strbuf_add(b, s, strlen(s)); }

stfpm_status stfpm_strbuf_printf(stfpm_strbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return stfpm_set_error(STFPM_ERR_INTERNAL, "cannot format \"%s\"", fmt);
    STFPM_TRY(strbuf_reserve(b, (size_t)n));
    va_start(ap, fmt);
    vsnprintf(b->text + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return STFPM_OK;
}

void stfpm_strbuf_truncate(stfpm_strbuf *b, size_t len) {
    if (!b->text || len >= b->len) return;
    b->len = len;
    b->text[len] = 0;
}

void stfpm_strbuf_free(stfpm_strbuf *b) {
    free(b->text);
    memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------------------------------------ */

uint64_t stfpm_fnv1a64(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

void stfpm_json_escape(const char *in, char *out, size_t out_len) {
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && k + 7 < out_len; p++) {
        if (*p == '"' || *p == '\\') { out[k++] = '\\'; out[k++] = (char)*p; }
        else if (*p < 0x20) k += (size_t)snprintf(out + k, out_len - k, "\\u%04x", *p);
        else out[k++] = (char)*p;
    }
    out[k] = 0;
}

/* Case-insensitive substring test. */
int stfpm_name_contains(const char *hay, const char *needle) {
    size_t nl = strlen(needle);
    for (const char *h = hay; *h; h++) {
        size_t k = 0;
        while (k < nl && h[k] && tolower((unsigned char)h[k]) == tolower((unsigned char)needle[k])) k++;
        if (k == nl) return 1;
    }
    return nl == 0;
}
