/* `stfpm predict` for scripts: the text / JSON lines / CSV formats parsed back, image paths from
 * standard input ("-"), the threshold policies (max, quantile[:Q]) against the validation scores
 * stored in the model, the refusal of the quantile policy by a model without them, option
 * errors, and `stfpm --version`.
 *
 * The fixture trains one model for 1 epoch on a tiny demo set (10 training images: 8 train + 2
 * validation, 64 x 64) with the real ImageNet teacher when ../shared/weights has it, else with a
 * randomly initialised one (the cases test the command's output, not accuracy). */
#include "testutil.h"
#include "cli_util.h"
#include "stfpm/version.h"
#include "stfpm/weights.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_base[512];      /* temporary root of this program */
static char g_data[600];      /* demo data set */
static char g_run[600];       /* the trained run */
static char g_best[700];      /* g_run/best.safetensors */
static char g_teacher[2400];
static char g_good[700], g_train[700];   /* test/good (2 images), train/good (10 images) */
static int g_have_run;

#define NEEDLES(...) ((const char *const[]){__VA_ARGS__, NULL})

static char *g_allocs[1024];
static int g_n_allocs;

static char *track(char *p) {
    ck_assert_ptr_nonnull(p);
    ck_assert_int_lt(g_n_allocs, 1024);
    g_allocs[g_n_allocs++] = p;
    return p;
}

static const char *P(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *o = track(malloc(n));
    snprintf(o, n, "%s/%s", a, b);
    return o;
}

static void setup(void) {
    snprintf(g_base, sizeof g_base, "%s", cli_mkdtemp("predict"));
    snprintf(g_data, sizeof g_data, "%s/data", g_base);
    snprintf(g_run, sizeof g_run, "%s/run", g_base);
    snprintf(g_best, sizeof g_best, "%s/best.safetensors", g_run);
    snprintf(g_good, sizeof g_good, "%s/test/good", g_data);
    snprintf(g_train, sizeof g_train, "%s/train/good", g_data);
    cli_make_demo(g_data, 10, 2, 2, 64, 11);
    if (!cli_teacher_or_random(g_base, g_teacher, sizeof g_teacher)) return;
    cli_result r = cli_run(NULL, "train", "--data", g_data, "--out", g_run, "--teacher", g_teacher, "--size", "64",
                           "--epochs", "1", "--batch", "4", NULL);
    g_have_run = r.code == 0 && cli_exists(g_best);
    if (!g_have_run) printf("fixture training failed (exit %d):\n%s\n", r.code, r.err);
    cli_result_free(&r);
}

static void teardown(void) {
    cli_rm_rf(g_base);
    while (g_n_allocs > 0) free(g_allocs[--g_n_allocs]);
}

static void need_run(void) { ck_assert_msg(g_have_run, "the fixture's training run failed (see above)"); }

static const char *tmpdir_in(const char *tag) {
    size_t n = strlen(g_base) + strlen(tag) + 9;
    char *o = track(malloc(n));
    snprintf(o, n, "%s/%s_XXXXXX", g_base, tag);
    ck_assert_ptr_nonnull(mkdtemp(o));
    return o;
}

/* Run `stfpm args...` with standard input read from the file stdin_path (cli_run gives the child
 * /dev/null). */
static cli_result run_stdin(const char *stdin_path, const char *const *args) {
    char out_path[700], err_path[700];
    snprintf(out_path, sizeof out_path, "%s/stdin_run.out", g_base);
    snprintf(err_path, sizeof err_path, "%s/stdin_run.err", g_base);
    int n = 0;
    while (args[n]) n++;
    const char *argv[64];
    ck_assert_int_lt(n, 62);
    argv[0] = cli_binary();
    for (int i = 0; i < n; i++) argv[i + 1] = args[i];
    argv[n + 1] = NULL;
    fflush(stdout);
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int fi = open(stdin_path, O_RDONLY);
        int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fi < 0 || fo < 0 || fe < 0) _exit(125);
        dup2(fi, 0);
        dup2(fo, 1);
        dup2(fe, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    cli_result r = {0};
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    r.out = cli_read_file(out_path, NULL);
    r.err = cli_read_file(err_path, NULL);
    if (!r.out) r.out = strdup("");
    if (!r.err) r.err = strdup("");
    unlink(out_path);
    unlink(err_path);
    return r;
}

/* Lines of text (modified in place) into lines[], at most max; returns the count. */
static int split_lines(char *text, char **lines, int max) {
    int n = 0;
    for (char *p = text; *p && n < max;) {
        char *e = strchr(p, '\n');
        ck_assert_msg(e != NULL, "output does not end with a newline:\n%s", p);
        *e = 0;
        lines[n++] = p;
        p = e + 1;
    }
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* a minimal JSON object reader: one object of string / number / null values per line */

enum { J_STR, J_NUM, J_NULL };
typedef struct {
    char key[64];
    int type;
    char str[4096];   /* decoded bytes (\udcXX -> byte XX, as Python's surrogateescape) */
    double num;
} jfield;

static void put_utf8(char *out, size_t *n, unsigned cp) {
    if (cp < 0x80) out[(*n)++] = (char)cp;
    else if (cp < 0x800) { out[(*n)++] = (char)(0xC0 | cp >> 6); out[(*n)++] = (char)(0x80 | (cp & 63)); }
    else if (cp < 0x10000) {
        out[(*n)++] = (char)(0xE0 | cp >> 12);
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 63));
        out[(*n)++] = (char)(0x80 | (cp & 63));
    } else {
        out[(*n)++] = (char)(0xF0 | cp >> 18);
        out[(*n)++] = (char)(0x80 | ((cp >> 12) & 63));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 63));
        out[(*n)++] = (char)(0x80 | (cp & 63));
    }
}

static unsigned hex4(const char *p) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        ck_assert_msg(d >= 0, "bad \\u escape in JSON: %.6s", p - 2);
        v = v * 16 + (unsigned)d;
    }
    return v;
}

/* A JSON string at *pp (at the opening quote) into out; advances past the closing quote. */
static void j_string(const char **pp, char *out, size_t cap) {
    const char *p = *pp;
    ck_assert_msg(*p == '"', "expected a JSON string at: %s", p);
    p++;
    size_t n = 0;
    while (*p != '"') {
        ck_assert_msg(*p != 0, "unterminated JSON string");
        ck_assert_msg((unsigned char)*p >= 0x20, "raw control character 0x%02x in a JSON string", *p);
        ck_assert_msg(n + 8 < cap, "JSON string too long");
        if (*p != '\\') { out[n++] = *p++; continue; }
        p++;
        switch (*p) {
        case '"': case '\\': case '/': out[n++] = *p++; break;
        case 'b': out[n++] = '\b'; p++; break;
        case 'f': out[n++] = '\f'; p++; break;
        case 'n': out[n++] = '\n'; p++; break;
        case 'r': out[n++] = '\r'; p++; break;
        case 't': out[n++] = '\t'; p++; break;
        case 'u': {
            unsigned cp = hex4(p + 1);
            p += 5;
            if (cp >= 0xD800 && cp <= 0xDBFF && p[0] == '\\' && p[1] == 'u') {
                unsigned lo = hex4(p + 2);
                ck_assert_msg(lo >= 0xDC00 && lo <= 0xDFFF, "unpaired high surrogate in JSON");
                p += 6;
                put_utf8(out, &n, 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00));
            } else if (cp >= 0xDC80 && cp <= 0xDCFF) {
                out[n++] = (char)(cp - 0xDC00);   /* an escaped non-UTF-8 byte */
            } else {
                ck_assert_msg(cp < 0xD800 || cp > 0xDFFF, "lone surrogate \\u%04x in JSON", cp);
                put_utf8(out, &n, cp);
            }
            break;
        }
        default: ck_abort_msg("bad escape \\%c in JSON", *p);
        }
    }
    out[n] = 0;
    *pp = p + 1;
}

static void j_ws(const char **pp) {
    while (**pp == ' ' || **pp == '\t') (*pp)++;
}

/* Parse one line holding one JSON object; returns the number of fields. */
static int j_object(const char *line, jfield *f, int max) {
    const char *p = line;
    int n = 0;
    j_ws(&p);
    ck_assert_msg(*p == '{', "JSON line does not start with '{': %s", line);
    p++;
    j_ws(&p);
    while (*p != '}') {
        ck_assert_int_lt(n, max);
        j_string(&p, f[n].key, sizeof f[n].key);
        j_ws(&p);
        ck_assert_msg(*p == ':', "expected ':' in JSON line: %s", line);
        p++;
        j_ws(&p);
        if (*p == '"') {
            f[n].type = J_STR;
            j_string(&p, f[n].str, sizeof f[n].str);
        } else if (!strncmp(p, "null", 4)) {
            f[n].type = J_NULL;
            p += 4;
        } else {
            char *end;
            f[n].type = J_NUM;
            f[n].num = strtod(p, &end);
            ck_assert_msg(end != p && (*p == '-' || (*p >= '0' && *p <= '9')), "bad JSON value in: %s", line);
            p = end;
        }
        n++;
        j_ws(&p);
        if (*p == ',') { p++; j_ws(&p); continue; }
        ck_assert_msg(*p == '}', "expected ',' or '}' in JSON line: %s", line);
    }
    p++;
    ck_assert_msg(*p == 0, "text after the JSON object: %s", p);
    return n;
}

static const jfield *j_get(const jfield *f, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (!strcmp(f[i].key, key)) return &f[i];
    ck_abort_msg("JSON line has no key \"%s\"", key);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* a minimal RFC 4180 CSV row reader */

/* Split one line into fields (quoted or not); returns the count. */
static int csv_row(const char *line, char fields[][4096], int max) {
    int n = 0;
    const char *p = line;
    for (;;) {
        ck_assert_int_lt(n, max);
        size_t k = 0;
        if (*p == '"') {
            p++;
            for (;;) {
                ck_assert_msg(*p != 0, "unterminated quoted CSV field in: %s", line);
                if (*p == '"' && p[1] == '"') { fields[n][k++] = '"'; p += 2; continue; }
                if (*p == '"') { p++; break; }
                fields[n][k++] = *p++;
            }
        } else {
            while (*p && *p != ',') {
                ck_assert_msg(*p != '"', "quote inside an unquoted CSV field: %s", line);
                fields[n][k++] = *p++;
            }
        }
        fields[n++][k] = 0;
        if (*p == 0) return n;
        ck_assert_msg(*p == ',', "expected ',' after a CSV field in: %s", line);
        p++;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* the model's metadata */

static double model_threshold(const char *model_file) {
    stfpm_weights w = {0};
    TU_CHECK_STATUS(stfpm_weights_load(model_file, &w));
    const char *t = stfpm_weights_meta(&w, "threshold");
    ck_assert_ptr_nonnull(t);
    double v = strtod(t, NULL);
    stfpm_weights_free(&w);
    return v;
}

/* The validation scores stored with the model, in stored order; returns their number. */
static int model_val_scores(const char *model_file, double *v, int max) {
    stfpm_weights w = {0};
    TU_CHECK_STATUS(stfpm_weights_load(model_file, &w));
    const char *t = stfpm_weights_meta(&w, "val_scores");
    ck_assert_msg(t != NULL, "%s has no val_scores metadata", model_file);
    int n = 0;
    for (const char *p = t; *p;) {
        char *end;
        ck_assert_int_lt(n, max);
        v[n++] = strtod(p, &end);
        ck_assert_msg(end != p && (*end == ',' || *end == 0), "val_scores malformed: %s", t);
        p = *end ? end + 1 : end;
    }
    stfpm_weights_free(&w);
    return n;
}

/* The reference quantile: linear interpolation between closest ranks (numpy's default). */
static double ref_quantile(const double *sorted, int n, double q) {
    double h = (n - 1) * q;
    int lo = (int)floor(h);
    if (lo >= n - 1) return sorted[n - 1];
    return sorted[lo] + (h - lo) * (sorted[lo + 1] - sorted[lo]);
}

/* The threshold a JSON run reports (every line must agree). */
static double json_run_threshold(const cli_result *r) {
    char *text = strdup(r->out);
    char *lines[256];
    int n = split_lines(text, lines, 256);
    ck_assert_int_gt(n, 0);
    double t = NAN;
    for (int i = 0; i < n; i++) {
        jfield f[16];
        int nf = j_object(lines[i], f, 16);
        const jfield *th = j_get(f, nf, "threshold");
        ck_assert_int_eq(th->type, J_NUM);
        if (i == 0) t = th->num;
        ck_assert_msg(th->num == t, "line %d: threshold %.9g, line 1: %.9g", i + 1, th->num, t);
    }
    free(text);
    return t;
}

/* ------------------------------------------------------------------------------------------ */

START_TEST(test_text_default) {
    need_run();
    cli_result a = cli_run(NULL, "predict", "--model", g_run, g_good, g_train, NULL);
    cli_expect_ok("predict (default format)", &a);
    cli_result b = cli_run(NULL, "predict", "--model", g_run, "--format", "text", g_good, g_train, NULL);
    cli_expect_ok("predict --format text", &b);
    ck_assert_str_eq(a.out, b.out);
    char *lines[64];
    int n = split_lines(a.out, lines, 64);
    ck_assert_int_eq(n, 12);   /* 2 test/good + 10 train/good */
    ck_assert_str_eq(strtok(lines[0], "\t"), P(g_good, "000.png"));
    for (int i = 0; i < n; i++) {
        if (i) strtok(lines[i], "\t");
        char *score = strtok(NULL, "\t"), *verdict = strtok(NULL, "\t");
        ck_assert_ptr_nonnull(score);
        ck_assert_ptr_nonnull(verdict);
        ck_assert_msg(isfinite(strtod(score, NULL)), "line %d: score %s", i + 1, score);
        ck_assert_msg(!strcmp(verdict, "normal") || !strcmp(verdict, "anomalous"), "line %d: verdict %s", i + 1, verdict);
        ck_assert_ptr_null(strtok(NULL, "\t"));
    }
    ck_assert_msg(strstr(a.err, "12 image(s)") && strstr(a.err, "highest validation score"), "summary: %s", a.err);
    cli_result_free(&a);
    cli_result_free(&b);
}
END_TEST

START_TEST(test_json_lines) {
    need_run();
    const char *maps = P(tmpdir_in("jmaps"), "maps");
    cli_result r = cli_run(NULL, "predict", "--model", g_run, "--format", "json", "--maps", maps, g_good, g_train, NULL);
    cli_expect_ok("predict --format json --maps", &r);
    const double thr = model_threshold(g_best);
    char *lines[64];
    int n = split_lines(r.out, lines, 64);
    ck_assert_int_eq(n, 12);
    const char *keys[] = {"path", "score", "normalized_score", "verdict", "threshold", "map", "overlay"};
    for (int i = 0; i < n; i++) {
        jfield f[16];
        int nf = j_object(lines[i], f, 16);
        ck_assert_int_eq(nf, 7);
        for (int k = 0; k < 7; k++) j_get(f, nf, keys[k]);
        const jfield *path = j_get(f, nf, "path"), *score = j_get(f, nf, "score"),
                     *norm = j_get(f, nf, "normalized_score"), *verdict = j_get(f, nf, "verdict"),
                     *th = j_get(f, nf, "threshold"), *map = j_get(f, nf, "map"), *ov = j_get(f, nf, "overlay");
        ck_assert_int_eq(path->type, J_STR);
        ck_assert_int_eq(score->type, J_NUM);
        ck_assert_int_eq(norm->type, J_NUM);
        ck_assert_int_eq(th->type, J_NUM);
        ck_assert_int_eq(verdict->type, J_STR);
        ck_assert_msg(isfinite(score->num) && isfinite(norm->num) && isfinite(th->num), "line %d: %s", i + 1, lines[i]);
        /* the model's threshold (both printed with 9 significant digits of the same float) */
        ck_assert_msg(fabs(th->num - thr) <= 1e-7 * fabs(thr), "line %d: threshold %.9g, model %.9g", i + 1, th->num, thr);
        double want = score->num / (2 * th->num);
        want = want < 0 ? 0 : want > 1 ? 1 : want;
        ck_assert_msg(fabs(norm->num - want) <= 1e-6, "line %d: normalized_score %.9g, expected %.9g", i + 1,
                      norm->num, want);
        ck_assert_str_eq(verdict->str, (float)score->num > (float)th->num ? "anomalous" : "normal");
        ck_assert_msg((norm->num > 0.5) == !strcmp(verdict->str, "anomalous") || norm->num == 0.5,
                      "line %d: normalized %.9g with verdict %s", i + 1, norm->num, verdict->str);
        ck_assert_int_eq(map->type, J_STR);
        ck_assert_int_eq(ov->type, J_STR);
        ck_assert_msg(cli_exists(map->str) && cli_exists(ov->str), "line %d: %s / %s missing", i + 1, map->str, ov->str);
        ck_assert_msg(strncmp(map->str, maps, strlen(maps)) == 0, "map %s not in %s", map->str, maps);
    }
    /* input order: the first folder's images first, sorted; two 000.png get distinct maps */
    jfield f0[16], f2[16];
    j_object(lines[0], f0, 16);
    j_object(lines[2], f2, 16);
    ck_assert_str_eq(j_get(f0, 7, "path")->str, P(g_good, "000.png"));
    ck_assert_str_eq(j_get(f2, 7, "path")->str, P(g_train, "000.png"));
    ck_assert_str_ne(j_get(f0, 7, "map")->str, j_get(f2, 7, "map")->str);
    cli_result_free(&r);

    /* without --maps: map and overlay are null */
    r = cli_run(NULL, "predict", "--model", g_run, "--format", "json", P(g_good, "001.png"), NULL);
    cli_expect_ok("predict --format json", &r);
    jfield f[16];
    char *line = strtok(r.out, "\n");
    int nf = j_object(line, f, 16);
    ck_assert_int_eq(j_get(f, nf, "map")->type, J_NULL);
    ck_assert_int_eq(j_get(f, nf, "overlay")->type, J_NULL);
    ck_assert_ptr_null(strtok(NULL, "\n"));
    cli_result_free(&r);
}
END_TEST

/* A threshold equal to a printed score: normalised score 0.5 and the image is normal; a little
 * lower and it is anomalous. */
START_TEST(test_json_threshold_equals_score) {
    need_run();
    const char *img = P(g_good, "000.png");
    cli_result r = cli_run(NULL, "predict", "--model", g_run, "--format", "json", img, NULL);
    cli_expect_ok("predict --format json (one image)", &r);
    jfield f[16];
    int nf = j_object(strtok(r.out, "\n"), f, 16);
    const double score = j_get(f, nf, "score")->num;
    ck_assert_msg(score > 0, "score %.9g: expected > 0", score);
    char thr[64];
    snprintf(thr, sizeof thr, "%.9g", score);
    cli_result_free(&r);

    r = cli_run(NULL, "predict", "--model", g_run, "--format", "json", "--threshold", thr, img, NULL);
    cli_expect_ok("predict --threshold <the score>", &r);
    nf = j_object(strtok(r.out, "\n"), f, 16);
    ck_assert_msg(j_get(f, nf, "normalized_score")->num == 0.5, "normalized_score %.9g at the threshold",
                  j_get(f, nf, "normalized_score")->num);
    ck_assert_str_eq(j_get(f, nf, "verdict")->str, "normal");
    ck_assert_msg(strstr(r.err, "threshold") && strstr(r.err, "given"), "summary: %s", r.err);
    cli_result_free(&r);

    snprintf(thr, sizeof thr, "%.9g", score * 0.999);
    r = cli_run(NULL, "predict", "--model", g_run, "--format", "json", "--threshold", thr, img, NULL);
    cli_expect_ok("predict --threshold <just below the score>", &r);
    nf = j_object(strtok(r.out, "\n"), f, 16);
    ck_assert_msg(j_get(f, nf, "normalized_score")->num > 0.5, "normalized_score %.9g below the score",
                  j_get(f, nf, "normalized_score")->num);
    ck_assert_str_eq(j_get(f, nf, "verdict")->str, "anomalous");
    cli_result_free(&r);

    snprintf(thr, sizeof thr, "%.9g", score / 4);   /* 4 x the threshold: clipped to 1 */
    r = cli_run(NULL, "predict", "--model", g_run, "--format", "json", "--threshold", thr, img, NULL);
    cli_expect_ok("predict --threshold <a quarter of the score>", &r);
    nf = j_object(strtok(r.out, "\n"), f, 16);
    ck_assert_msg(j_get(f, nf, "normalized_score")->num == 1.0, "normalized_score %.9g at 4 x the threshold",
                  j_get(f, nf, "normalized_score")->num);
    cli_result_free(&r);
}
END_TEST

START_TEST(test_csv) {
    need_run();
    /* a path that needs quoting: comma, quote, space */
    const char *dir = tmpdir_in("csv");
    const char *odd = P(dir, "a,b \"c\".png");
    size_t len = 0;
    char *png = cli_read_file(P(g_good, "000.png"), &len);
    ck_assert_ptr_nonnull(png);
    ck_assert_int_eq(cli_write_file(odd, png, len), 0);
    free(png);
    const char *maps = P(dir, "maps");
    cli_result r = cli_run(NULL, "predict", "--model", g_run, "--format", "csv", "--maps", maps, odd, g_train, NULL);
    cli_expect_ok("predict --format csv", &r);
    char *lines[64];
    int n = split_lines(r.out, lines, 64);
    ck_assert_int_eq(n, 1 + 11);   /* header + one row per image */
    ck_assert_str_eq(lines[0], "path,score,normalized_score,verdict,threshold,map,overlay");
    static char fields[16][4096];
    for (int i = 1; i < n; i++) {
        ck_assert_int_eq(csv_row(lines[i], fields, 16), 7);
        char *end;
        double score = strtod(fields[1], &end), norm = strtod(fields[2], NULL), thr = strtod(fields[4], NULL);
        ck_assert_msg(*end == 0 && isfinite(score), "row %d: score \"%s\"", i, fields[1]);
        ck_assert_msg(isfinite(norm) && norm >= 0 && norm <= 1 && isfinite(thr), "row %d: %s", i, lines[i]);
        ck_assert_str_eq(fields[3], (float)score > (float)thr ? "anomalous" : "normal");
        ck_assert_msg(cli_exists(fields[5]) && cli_exists(fields[6]), "row %d: maps %s / %s", i, fields[5], fields[6]);
        if (i == 1) ck_assert_str_eq(fields[0], odd);
        else ck_assert_msg(strncmp(fields[0], g_train, strlen(g_train)) == 0, "row %d: path %s", i, fields[0]);
    }
    cli_result_free(&r);

    /* without a threshold (given none, model stores one): never empty here; without --maps the
     * map columns are empty */
    r = cli_run(NULL, "predict", "--model", g_run, "--format", "csv", P(g_good, "001.png"), NULL);
    cli_expect_ok("predict --format csv (no maps)", &r);
    n = split_lines(r.out, lines, 64);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(csv_row(lines[1], fields, 16), 7);
    ck_assert_str_eq(fields[5], "");
    ck_assert_str_eq(fields[6], "");
    cli_result_free(&r);
}
END_TEST

/* A path with a quote, a backslash, a tab and bytes that are not UTF-8: the JSON line is valid
 * and decodes (surrogateescape) to the same bytes. */
START_TEST(test_json_escaping) {
    need_run();
    const char *dir = tmpdir_in("esc");
    const char *odd = P(dir, "q\"b\\s\tt\xff\xfe-\xc3\xa9.png");
    size_t len = 0;
    char *png = cli_read_file(P(g_good, "000.png"), &len);
    ck_assert_ptr_nonnull(png);
    ck_assert_int_eq(cli_write_file(odd, png, len), 0);
    free(png);
    cli_result r = cli_run(NULL, "predict", "--model", g_run, "--format", "json", odd, NULL);
    cli_expect_ok("predict --format json <odd file name>", &r);
    ck_assert_msg(strstr(r.out, "\\udcff\\udcfe") != NULL, "non-UTF-8 bytes not escaped: %s", r.out);
    ck_assert_msg(strstr(r.out, "\xc3\xa9") != NULL, "valid UTF-8 not kept as it is: %s", r.out);
    jfield f[16];
    int nf = j_object(strtok(r.out, "\n"), f, 16);
    ck_assert_str_eq(j_get(f, nf, "path")->str, odd);
    cli_result_free(&r);
}
END_TEST

START_TEST(test_stdin_paths) {
    need_run();
    const char *dir = tmpdir_in("stdin");
    const char *img0 = P(g_good, "000.png"), *img1 = P(g_good, "001.png"), *img2 = P(g_train, "003.png");
    cli_result ref = cli_run(NULL, "predict", "--model", g_run, img0, img1, g_train, img2, NULL);
    cli_expect_ok("predict <paths as arguments>", &ref);

    /* newline-separated, a CRLF line, an empty line, a folder */
    char list[8192];
    int n = snprintf(list, sizeof list, "%s\n%s\r\n\n%s\n%s", img0, img1, g_train, img2);   /* no final newline */
    const char *list_path = P(dir, "list.txt");
    ck_assert_int_eq(cli_write_file(list_path, list, (size_t)n), 0);
    cli_result r = run_stdin(list_path, NEEDLES("predict", "--model", g_run, "-"));
    cli_expect_ok("predict - (paths on standard input)", &r);
    ck_assert_str_eq(r.out, ref.out);
    cli_result_free(&r);

    /* "-" among arguments: its paths take its place */
    n = snprintf(list, sizeof list, "%s\n%s\n", img1, g_train);
    ck_assert_int_eq(cli_write_file(list_path, list, (size_t)n), 0);
    r = run_stdin(list_path, NEEDLES("predict", "--model", g_run, img0, "-", img2));
    cli_expect_ok("predict IMAGE - IMAGE", &r);
    ck_assert_str_eq(r.out, ref.out);
    cli_result_free(&r);

    /* --null: NUL-separated (find -print0) */
    n = snprintf(list, sizeof list, "%s%c%s%c%s%c%s%c", img0, 0, img1, 0, g_train, 0, img2, 0);
    ck_assert_int_eq(cli_write_file(list_path, list, (size_t)n), 0);
    r = run_stdin(list_path, NEEDLES("predict", "--model", g_run, "--null", "-"));
    cli_expect_ok("predict --null -", &r);
    ck_assert_str_eq(r.out, ref.out);
    cli_result_free(&r);

    /* JSON from standard input too */
    r = run_stdin(list_path, NEEDLES("predict", "--model", g_run, "--null", "--format", "json", "-"));
    cli_expect_ok("predict --null --format json -", &r);
    char *lines[64];
    ck_assert_int_eq(split_lines(r.out, lines, 64), 13);
    cli_result_free(&r);

    /* an empty standard input, a missing listed file, "-" twice */
    ck_assert_int_eq(cli_write_file(list_path, "\n\n", 2), 0);
    r = run_stdin(list_path, NEEDLES("predict", "--model", g_run, "-"));
    cli_expect_fail("predict - <empty standard input>", &r, -1, NEEDLES("standard input"));
    cli_result_free(&r);
    const char *missing = P(dir, "missing.png");
    n = snprintf(list, sizeof list, "%s\n%s\n", img0, missing);
    ck_assert_int_eq(cli_write_file(list_path, list, (size_t)n), 0);
    r = run_stdin(list_path, NEEDLES("predict", "--model", g_run, "-"));
    cli_expect_fail("predict - <a missing file listed>", &r, -1, NEEDLES(missing));
    cli_result_free(&r);
    r = run_stdin(list_path, NEEDLES("predict", "--model", g_run, "-", "-"));
    cli_expect_fail("predict - -", &r, 2, NEEDLES("only once"));
    cli_result_free(&r);
    cli_result_free(&ref);
}
END_TEST

START_TEST(test_threshold_policies) {
    need_run();
    double vs[64];
    int nv = model_val_scores(g_best, vs, 64);
    ck_assert_int_eq(nv, 2);   /* 20 % of 10 training images */
    for (int i = 1; i < nv; i++) ck_assert_msg(vs[i - 1] <= vs[i], "val_scores not ascending");
    const double stored = model_threshold(g_best);
    /* training's rule: the stored threshold is the highest validation score */
    ck_assert_msg(vs[nv - 1] == stored, "max of val_scores %.9g != threshold %.9g", vs[nv - 1], stored);
    ck_assert_msg(vs[0] < vs[nv - 1], "the two validation scores are equal (%.9g): the quantile case checks nothing",
                  vs[0]);
    const char *img = P(g_good, "000.png");

    cli_result r = cli_run(NULL, "predict", "--model", g_run, "--format", "json", "--threshold-policy", "max", img, g_train, NULL);
    cli_expect_ok("predict --threshold-policy max", &r);
    ck_assert_msg(json_run_threshold(&r) == stored, "max policy: threshold %.9g, stored %.9g", json_run_threshold(&r), stored);
    cli_result_free(&r);

    struct { const char *arg; double q; } cases[] = {{"quantile:0.5", 0.5}, {"quantile:1", 1.0}, {"quantile", 0.99},
                                                     {"quantile:0.25", 0.25}};
    for (int c = 0; c < 4; c++) {
        r = cli_run(NULL, "predict", "--model", g_run, "--format", "json", "--threshold-policy", cases[c].arg, img, g_train, NULL);
        cli_expect_ok(cases[c].arg, &r);
        double want = ref_quantile(vs, nv, cases[c].q), got = json_run_threshold(&r);
        ck_assert_msg(fabs(got - want) <= 1e-6 * fabs(want), "--threshold-policy %s: threshold %.9g, expected %.9g",
                      cases[c].arg, got, want);
        char note[128];
        snprintf(note, sizeof note, "quantile %g of 2 validation scores", cases[c].q);
        ck_assert_msg(strstr(r.err, note) != NULL, "--threshold-policy %s: summary lacks \"%s\": %s", cases[c].arg,
                      note, r.err);
        /* every verdict follows the threshold in use */
        char *lines[64];
        int n = split_lines(r.out, lines, 64);
        for (int i = 0; i < n; i++) {
            jfield f[16];
            int nf = j_object(lines[i], f, 16);
            ck_assert_str_eq(j_get(f, nf, "verdict")->str,
                             (float)j_get(f, nf, "score")->num > (float)got ? "anomalous" : "normal");
        }
        cli_result_free(&r);
    }
}
END_TEST

/* A model without stored validation scores (as trained before 0.3.0): the quantile policy is
 * refused naming the file; max still works. */
START_TEST(test_quantile_refused_without_scores) {
    need_run();
    const char *dir = tmpdir_in("old");
    const char *old = P(dir, "old_model.safetensors");
    stfpm_weights w = {0};
    TU_CHECK_STATUS(stfpm_weights_load(g_best, &w));
    const char *keys[64], *vals[64];
    int k = 0;
    for (int i = 0; i < w.n_meta && k < 64; i++)
        if (strcmp(w.meta_keys[i], "val_scores") != 0) { keys[k] = w.meta_keys[i]; vals[k++] = w.meta_values[i]; }
    ck_assert_int_eq(k, w.n_meta - 1);
    TU_CHECK_STATUS(stfpm_safetensors_write(old, &w, keys, vals, k));
    stfpm_weights_free(&w);
    const char *img = P(g_good, "000.png");
    cli_result r = cli_run(NULL, "predict", "--model", old, "--threshold-policy", "quantile:0.9", img, NULL);
    cli_expect_fail("predict --threshold-policy quantile <model without val_scores>", &r, 2,
                    NEEDLES(old, "val_scores", "quantile"));
    ck_assert_str_eq(r.out, "");
    cli_result_free(&r);
    r = cli_run(NULL, "predict", "--model", old, "--format", "json", "--threshold-policy", "max", img, NULL);
    cli_expect_ok("predict --threshold-policy max <model without val_scores>", &r);
    ck_assert_msg(json_run_threshold(&r) == model_threshold(g_best), "max policy on the old model");
    cli_result_free(&r);
}
END_TEST

START_TEST(test_bad_options) {
    need_run();
    const char *img = P(g_good, "000.png");
    struct { const char *a, *b, *c, *d, *needle; } cases[] = {
        {"--format", "xml", NULL, NULL, "--format"},
        {"--format", "JSON", NULL, NULL, "--format"},
        {"--threshold-policy", "median", NULL, NULL, "--threshold-policy"},
        {"--threshold-policy", "quantile:0", NULL, NULL, "--threshold-policy"},
        {"--threshold-policy", "quantile:1.5", NULL, NULL, "--threshold-policy"},
        {"--threshold-policy", "quantile:abc", NULL, NULL, "--threshold-policy"},
        {"--threshold-policy", "quantile:", NULL, NULL, "--threshold-policy"},
        {"--threshold-policy", "quantile0.9", NULL, NULL, "--threshold-policy"},
        {"--threshold", "0.1", "--threshold-policy", "max", "exclude"},
        {"--null", NULL, NULL, NULL, "--null"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[16] = {"predict", "--model", g_run};
        int n = 3;
        const char *extra[4] = {cases[i].a, cases[i].b, cases[i].c, cases[i].d};
        for (int k = 0; k < 4 && extra[k]; k++) args[n++] = extra[k];
        args[n++] = img;
        args[n] = NULL;
        cli_result r = cli_runv(NULL, args);
        char what[256];
        snprintf(what, sizeof what, "predict %s %s %s %s", cases[i].a, cases[i].b ? cases[i].b : "",
                 cases[i].c ? cases[i].c : "", cases[i].d ? cases[i].d : "");
        cli_expect_fail(what, &r, 2, NEEDLES(cases[i].needle));
        cli_result_free(&r);
    }
    cli_result r = cli_run(NULL, "predict", "--model", g_run, "--format", NULL);
    cli_expect_fail("predict --format <no value>", &r, 2, NEEDLES("--format"));
    cli_result_free(&r);
}
END_TEST

START_TEST(test_help_and_version) {
    cli_result r = cli_run(NULL, "--version", NULL);
    cli_expect_ok("stfpm --version", &r);
    char want[64];
    snprintf(want, sizeof want, "stfpm %s\n", STFPM_VERSION_STRING);
    ck_assert_str_eq(r.out, want);
    cli_result_free(&r);
    r = cli_run(NULL, "--help", NULL);
    cli_expect_ok("stfpm --help", &r);
    ck_assert_msg(strstr(r.out, "--version") != NULL, "stfpm --help does not list --version:\n%s", r.out);
    cli_result_free(&r);
    r = cli_run(NULL, "predict", "--help", NULL);
    cli_expect_ok("stfpm predict --help", &r);
    const char *needles[] = {"--format", "json", "csv", "--threshold-policy", "quantile", "0.99",
                             "normalized_score", "score / (2 x threshold)", "standard input", "--null"};
    for (int i = 0; i < 10; i++)
        ck_assert_msg(strstr(r.out, needles[i]) != NULL, "predict --help lacks \"%s\"", needles[i]);
    cli_result_free(&r);
}
END_TEST

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    Suite *s = suite_create("cli_predict");
    TCase *tc = tcase_create("predict");
    tcase_set_timeout(tc, 600);
    tcase_add_unchecked_fixture(tc, setup, teardown);
    const TTest *tests[] = {
        test_text_default, test_json_lines, test_json_threshold_equals_score, test_csv, test_json_escaping,
        test_stdin_paths, test_threshold_policies, test_quantile_refused_without_scores, test_bad_options,
        test_help_and_version,
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) tcase_add_test(tc, tests[i]);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
