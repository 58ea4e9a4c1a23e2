#include "cli_util.h"
#include "testutil.h"
#include "stfpm/dataset.h"
#include "stfpm/demo_data.h"
#include "stfpm/resnet.h"
#include "stfpm/weights.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

const char *cli_binary(void) {
    static char buf[2048];
    const char *b = getenv("STFPM_BINARY_DIR");
    snprintf(buf, sizeof buf, "%s/stfpm", b && *b ? b : ".");
    return buf;
}

const char *cli_teacher(void) {
    static char buf[2300];
    const char *sh = tu_shared_dir();
    if (!sh) return NULL;
    snprintf(buf, sizeof buf, "%s/weights/resnet18_imagenet_l3_bnfolded.safetensors", sh);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

int cli_write_random_teacher(const char *path) { return cli_write_random_teacher_for(path, "resnet18", 3); }

int cli_write_random_teacher_for(const char *path, const char *backbone, int depth) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        stfpm_ctx *ctx = NULL;
        stfpm_resnet *net = NULL;
        stfpm_weights w = {0};
        stfpm_backbone bb = STFPM_RESNET18;
        stfpm_status s = stfpm_backbone_parse(backbone, &bb);
        if (s == STFPM_OK) s = stfpm_ctx_create(&ctx, NULL);
        if (s == STFPM_OK) s = stfpm_resnet_create_backbone(ctx, bb, depth, STFPM_NET_FROZEN, &net);
        if (s == STFPM_OK) s = stfpm_resnet_init_kaiming(ctx, net, 99);
        if (s == STFPM_OK) s = stfpm_resnet_export(ctx, net, &w, NULL);
        if (s == STFPM_OK) s = stfpm_safetensors_write(path, &w, NULL, NULL, 0);
        if (s != STFPM_OK) fprintf(stderr, "random teacher: %s\n", stfpm_last_error());
        stfpm_weights_free(&w);
        if (net) stfpm_resnet_free(ctx, net);
        stfpm_ctx_free(ctx);
        _exit(s == STFPM_OK ? 0 : 1);
    }
    if (pid < 0) return 0;
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* ------------------------------------------------------------------------------------------ */
/* processes */

cli_proc cli_start(const cli_opts *o, const char *const *args) {
    static int seq;
    cli_proc p;
    memset(&p, 0, sizeof p);
    p.gate = -1;
    p.timeout_s = o && o->timeout_s > 0 ? o->timeout_s : 600;
    const char *td = getenv("TMPDIR");
    snprintf(p.out_path, sizeof p.out_path, "%s/stfpm_cli_out_%d_%d.txt", td && *td ? td : "/tmp", (int)getpid(), seq);
    snprintf(p.err_path, sizeof p.err_path, "%s/stfpm_cli_err_%d_%d.txt", td && *td ? td : "/tmp", (int)getpid(), seq);
    seq++;
    ck_assert_msg(access(cli_binary(), X_OK) == 0, "%s not found: build the stfpm_cli target (the `stfpm` "
                  "program) before the cli tests", cli_binary());
    int n = 0;
    while (args[n]) n++;
    char **argv = calloc((size_t)n + 2, sizeof(char *));
    ck_assert_ptr_nonnull(argv);
    argv[0] = (char *)cli_binary();
    for (int i = 0; i < n; i++) argv[i + 1] = (char *)args[i];
    int gate[2] = {-1, -1};
    if (o && o->gated) ck_assert_int_eq(pipe(gate), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int fo = open(p.out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(p.err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0) _exit(125);
        dup2(fo, 1);
        dup2(fe, 2);
        close(fo);
        close(fe);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) { dup2(devnull, 0); close(devnull); }
        if (o && o->env)
            for (const char *const *e = o->env; *e; e++) {
                const char *eq = strchr(*e, '=');
                if (eq) {
                    char name[256];
                    snprintf(name, sizeof name, "%.*s", (int)(eq - *e), *e);
                    setenv(name, eq + 1, 1);
                } else {
                    unsetenv(*e);
                }
            }
        if (o && o->fsize_limit > 0) {
            signal(SIGXFSZ, SIG_IGN);   /* kept across exec: writes past the limit fail with EFBIG */
            struct rlimit rl = {(rlim_t)o->fsize_limit, (rlim_t)o->fsize_limit};
            if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(124);
        }
        if (gate[0] >= 0) {
            close(gate[1]);
            char c;
            while (read(gate[0], &c, 1) < 0 && errno == EINTR) {}
            close(gate[0]);
        }
        execv(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    free(argv);
    if (gate[0] >= 0) {
        close(gate[0]);
        p.gate = gate[1];
    }
    p.pid = pid;
    p.t0 = now_s();
    return p;
}

void cli_release(cli_proc *p) {
    if (p->gate >= 0) {
        ssize_t w = write(p->gate, "g", 1);
        (void)w;
        close(p->gate);
        p->gate = -1;
    }
}

cli_result cli_finish(cli_proc *p) {
    cli_release(p);
    cli_result r;
    memset(&r, 0, sizeof r);
    int status = 0;
    for (;;) {
        pid_t w = waitpid(p->pid, &status, WNOHANG);
        if (w == p->pid) break;
        if (w < 0 && errno != EINTR) ck_abort_msg("waitpid: %s", strerror(errno));
        if (now_s() - p->t0 > p->timeout_s) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
            char *err = cli_read_file(p->err_path, NULL);
            ck_abort_msg("stfpm did not finish within %d s; stderr:\n%s", p->timeout_s, err ? err : "");
        }
        usleep(20000);
    }
    r.seconds = now_s() - p->t0;
    if (WIFEXITED(status)) r.code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status)) { r.signal = WTERMSIG(status); r.code = 128 + r.signal; }
    r.out = cli_read_file(p->out_path, NULL);
    r.err = cli_read_file(p->err_path, NULL);
    if (!r.out) r.out = strdup("");
    if (!r.err) r.err = strdup("");
    unlink(p->out_path);
    unlink(p->err_path);
    return r;
}

cli_result cli_runv(const cli_opts *o, const char *const *args) {
    cli_proc p = cli_start(o, args);
    return cli_finish(&p);
}

cli_result cli_run(const cli_opts *o, ...) {
    const char *args[64];
    int n = 0;
    va_list ap;
    va_start(ap, o);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL && n < 63;) args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    return cli_runv(o, args);
}

void cli_result_free(cli_result *r) {
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

/* The last two non-empty lines of the captured stderr (the error message). */
static const char *last_line(const char *text, char *buf, size_t n) {
    size_t len = strlen(text);
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) len--;
    size_t start = len;
    while (start && text[start - 1] != '\n') start--;
    if (start > 1 && strncmp(text + start, "run `stfpm", 10) == 0) {
        start--;
        while (start && text[start - 1] != '\n') start--;
    }
    snprintf(buf, n, "%.*s", (int)(len - start), text + start);
    return buf;
}

void cli_expect_fail(const char *what, const cli_result *r, int want_code, const char *const *needles) {
    char line[2048];
    printf("%s: exit %d: %s\n", what, r->code, last_line(r->err, line, sizeof line));
    ck_assert_msg(r->signal == 0, "%s: stfpm was killed by signal %d (crash); stderr:\n%s", what, r->signal, r->err);
    if (want_code < 0)
        ck_assert_msg(r->code != 0, "%s: expected a failure, stfpm exited 0; stderr:\n%s", what, r->err);
    else
        ck_assert_msg(r->code == want_code, "%s: exit code %d, expected %d; stderr:\n%s", what, r->code, want_code,
                      r->err);
    for (const char *const *n = needles; n && *n; n++)
        ck_assert_msg(strstr(r->err, *n) != NULL, "%s: the message does not mention \"%s\"; stderr:\n%s", what, *n,
                      r->err);
}

void cli_expect_ok(const char *what, const cli_result *r) {
    ck_assert_msg(r->signal == 0 && r->code == 0, "%s: stfpm exit %d (signal %d); stderr:\n%s", what, r->code,
                  r->signal, r->err);
}

/* ------------------------------------------------------------------------------------------ */
/* files */

char *cli_mkdtemp(const char *tag) {
    static char buf[8][512];
    static int k;
    char *b = buf[k++ % 8];
    const char *td = getenv("TMPDIR");
    snprintf(b, sizeof buf[0], "%s/stfpm_cli_%s_XXXXXX", td && *td ? td : "/tmp", tag);
    ck_assert_ptr_nonnull(mkdtemp(b));
    return b;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f) {
    (void)st; (void)flag; (void)f;
    remove(p);
    return 0;
}

void cli_rm_rf(const char *path) {
    if (path && *path && strcmp(path, "/") != 0) nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int cli_copy_tree(const char *src, const char *dst) {
    struct stat st;
    if (lstat(src, &st) != 0) return -1;
    if (S_ISDIR(st.st_mode)) {
        if (mkdir(dst, 0755) != 0 && errno != EEXIST) return -1;
        DIR *d = opendir(src);
        if (!d) return -1;
        struct dirent *e;
        int rc = 0;
        while ((e = readdir(d)) != NULL && rc == 0) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char a[2048], b[2048];
            snprintf(a, sizeof a, "%s/%s", src, e->d_name);
            snprintf(b, sizeof b, "%s/%s", dst, e->d_name);
            rc = cli_copy_tree(a, b);
        }
        closedir(d);
        return rc;
    }
    size_t len;
    char *data = cli_read_file(src, &len);
    if (!data) return -1;
    int rc = cli_write_file(dst, data, len);
    free(data);
    return rc;
}

void cli_make_demo(const char *dir, int n_train, int n_good, int n_bad, int size, uint64_t seed) {
    stfpm_demo_options o;
    stfpm_demo_default_options(&o);
    o.size = size;
    o.n_train = n_train;
    o.n_test_good = n_good;
    o.n_test_bad = n_bad;
    o.seed = seed;
    TU_CHECK_STATUS(stfpm_demo_generate(dir, &o));
}

char *cli_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (!buf) { fclose(f); return NULL; }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap) break;
        cap *= 2;
        buf = realloc(buf, cap + 1);
    }
    fclose(f);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

int cli_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, len, f);
    int rc = fclose(f);
    return w == len && rc == 0 ? 0 : -1;
}

int cli_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int cli_truncate_copy(const char *src, const char *dst, size_t keep) {
    size_t len;
    char *data = cli_read_file(src, &len);
    if (!data) return -1;
    int rc = cli_write_file(dst, data, keep < len ? keep : len);
    free(data);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

char *cli_dir_digest(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return strdup("(no folder)\n");
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) { cap = cap ? cap * 2 : 32; names = realloc(names, sizeof(char *) * (size_t)cap); }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (n) qsort(names, (size_t)n, sizeof(char *), cmp_str);   /* names is NULL for an empty folder */
    size_t out_cap = 64 + (size_t)n * 320, out_len = 0;
    char *out = malloc(out_cap);
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        char p[2048];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
            size_t len = 0;
            char *data = cli_read_file(p, &len);
            uint64_t h = 0xcbf29ce484222325ULL;
            for (size_t k = 0; data && k < len; k++) { h ^= (unsigned char)data[k]; h *= 0x100000001b3ULL; }
            free(data);
            out_len += (size_t)snprintf(out + out_len, out_cap - out_len, "%.250s %zu %016llx\n", names[i], len,
                                        (unsigned long long)h);
        } else {
            out_len += (size_t)snprintf(out + out_len, out_cap - out_len, "%.250s (not a file)\n", names[i]);
        }
        free(names[i]);
    }
    free(names);
    return out;
}

int cli_count_tmp(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

int cli_log_rows(const char *log_path, double *last_val) {
    char *text = cli_read_file(log_path, NULL);
    if (!text) return 0;
    int rows = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (atoi(line) < 1) continue;   /* header */
        rows++;
        if (last_val) {
            const char *c = strchr(line, ',');
            c = c ? strchr(c + 1, ',') : NULL;
            *last_val = c ? strtod(c + 1, NULL) : NAN;
        }
    }
    free(text);
    return rows;
}

int cli_teacher_or_random(const char *dir, char *out, size_t n) {
    const char *t = cli_teacher();
    if (t) {
        snprintf(out, n, "%s", t);
        return 1;
    }
    snprintf(out, n, "%s/random_teacher.safetensors", dir);
    printf("NOTE: the real teacher (../shared/weights/resnet18_imagenet_l3_bnfolded.safetensors) is absent: "
           "using a randomly initialised teacher\n");
    if (!cli_write_random_teacher(out)) {
        printf("could not write a random teacher\n");
        return 0;
    }
    return 1;
}
