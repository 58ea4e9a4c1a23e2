/* The HTML reports: `stfpm train` writes RUN/report.html after every epoch, `stfpm test --report
 * DIR` writes DIR/index.html with its gallery. Each page is checked with a small strict parser
 * of the markup the reports use (every element closed in order, void elements only where HTML
 * has them, self-closing tags only inside SVG, quoted attributes, entities well formed, no
 * script, nothing fetched from the network); every image the test page shows must exist in DIR
 * and decode as a PNG of the model's size; the metrics in the page must equal metrics.json; the
 * training page must name the best epoch of train_log.csv. A data folder named after an MVTec
 * AD category gets the paper's values beside the metrics.
 *
 * Teacher: the real ImageNet weights from ../shared/weights when present; otherwise a random
 * (Kaiming) ResNet-18 written to a file (the pages do not depend on the teacher's quality). */
#include "testutil.h"
#include "cli_util.h"
#include "stfpm/image.h"
#include "stfpm/pipeline.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NEEDLES(...) ((const char *const[]){__VA_ARGS__, NULL})
#define SIZE 64

static char g_base[512];
static char g_data[600];      /* demo data: 10 train, 3 good, 6 defective, 64 x 64 */
static char g_run[600];       /* trained once in setup */
static char g_teacher[2400];
static int g_ready;

static void setup(void) {
    snprintf(g_base, sizeof g_base, "%s", cli_mkdtemp("report"));
    snprintf(g_data, sizeof g_data, "%s/data", g_base);
    snprintf(g_run, sizeof g_run, "%s/run", g_base);
    cli_make_demo(g_data, 10, 3, 6, SIZE, 5);
    if (!cli_teacher_or_random(g_base, g_teacher, sizeof g_teacher)) return;
    cli_result r = cli_run(NULL, "train", "--data", g_data, "--out", g_run, "--teacher", g_teacher, "--size", "64",
                           "--epochs", "3", "--batch", "4", NULL);
    if (r.code != 0) printf("training the model failed:\n%s\n", r.err);
    g_ready = r.code == 0;
    cli_result_free(&r);
}

static void teardown(void) { cli_rm_rf(g_base); }

/* ------------------------------------------------------------------------------------------ */
/* A strict checker for the markup of the reports */

#define MAX_DEPTH 64
#define MAX_LIST 256

typedef struct page {
    /* out */
    char err[512];
    int n_elements, n_svg;
    char *img_src[MAX_LIST];
    int n_img;
    char *id[MAX_LIST], *id_value[MAX_LIST], *id_text[MAX_LIST];   /* elements with id and data-value */
    int n_id;
} page;

static void page_free(page *p) {
    for (int i = 0; i < p->n_img; i++) free(p->img_src[i]);
    for (int i = 0; i < p->n_id; i++) {
        free(p->id[i]);
        free(p->id_value[i]);
        free(p->id_text[i]);
    }
    memset(p, 0, sizeof *p);
}

static int is_void(const char *name) {
    static const char *const v[] = {"meta", "img", "br", "hr", "link", "input", "wbr"};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (!strcmp(name, v[i])) return 1;
    return 0;
}

/* 1 when text[0..n) is well-formed character data: '<' never appears, '&' starts an entity. */
static int check_text(const char *t, size_t n, char *err, size_t errn) {
    for (size_t i = 0; i < n; i++) {
        if (t[i] == '<' || t[i] == '>') {
            snprintf(err, errn, "bare '%c' in text near \"%.40s\"", t[i], t + i);
            return 0;
        }
        if (t[i] != '&') continue;
        size_t k = i + 1;
        if (k < n && t[k] == '#') {
            k++;
            while (k < n && isalnum((unsigned char)t[k])) k++;
        } else {
            while (k < n && isalpha((unsigned char)t[k])) k++;
        }
        if (k >= n || t[k] != ';' || k == i + 1) {
            snprintf(err, errn, "malformed entity near \"%.40s\"", t + i);
            return 0;
        }
    }
    return 1;
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    ck_assert_ptr_nonnull(d);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* Parse html; 1 when it is well formed (p->err says why not). */
static int page_parse(const char *html, page *p) {
    memset(p, 0, sizeof *p);
    char stack[MAX_DEPTH][32];
    int depth = 0, in_svg = 0, pending_id = -1;
    size_t text_start = 0;
    const char *s = html;
    const char *doctype = "<!DOCTYPE html>";
    if (strncmp(s, doctype, strlen(doctype)) != 0) {
        snprintf(p->err, sizeof p->err, "the page does not start with %s", doctype);
        return 0;
    }
    size_t i = strlen(doctype), n = strlen(s);
    text_start = i;
    while (i < n) {
        if (s[i] != '<') { i++; continue; }
        if (!check_text(s + text_start, i - text_start, p->err, sizeof p->err)) return 0;
        if (pending_id >= 0 && !p->id_text[pending_id]) p->id_text[pending_id] = dup_n(s + text_start, i - text_start);
        pending_id = -1;
        if (!strncmp(s + i, "<!--", 4)) {
            snprintf(p->err, sizeof p->err, "the reports write no comments (found one at byte %zu)", i);
            return 0;
        }
        int closing = s[i + 1] == '/';
        size_t k = i + 1 + closing, name0 = k;
        while (k < n && (isalnum((unsigned char)s[k]))) k++;
        if (k == name0 || k - name0 >= 32) {
            snprintf(p->err, sizeof p->err, "not a tag at byte %zu: \"%.30s\"", i, s + i);
            return 0;
        }
        char name[32], lname[32];
        snprintf(name, sizeof name, "%.*s", (int)(k - name0), s + name0);
        for (size_t c = 0; c <= strlen(name); c++) lname[c] = (char)tolower((unsigned char)name[c]);
        if (!strcmp(lname, "script") || !strcmp(lname, "iframe") || !strcmp(lname, "link") ||
            !strcmp(lname, "object") || !strcmp(lname, "embed")) {
            snprintf(p->err, sizeof p->err, "<%s> in a self-contained page", name);
            return 0;
        }
        if (closing) {
            while (k < n && s[k] == ' ') k++;
            if (s[k] != '>') { snprintf(p->err, sizeof p->err, "malformed </%s>", name); return 0; }
            if (depth == 0 || strcmp(stack[depth - 1], name) != 0) {
                snprintf(p->err, sizeof p->err, "</%s> closes <%s> (byte %zu)", name, depth ? stack[depth - 1] : "nothing", i);
                return 0;
            }
            depth--;
            if (!strcmp(name, "svg")) in_svg = 0;
            i = k + 1;
            text_start = i;
            continue;
        }
        /* attributes */
        char id[128] = "", value[128] = "", src[1024] = "";
        int has_value = 0, self_close = 0;
        for (;;) {
            while (k < n && isspace((unsigned char)s[k])) k++;
            if (s[k] == '>') { k++; break; }
            if (s[k] == '/' && s[k + 1] == '>') { self_close = 1; k += 2; break; }
            size_t a0 = k;
            while (k < n && (isalnum((unsigned char)s[k]) || s[k] == '-' || s[k] == ':' || s[k] == '_')) k++;
            if (k == a0) { snprintf(p->err, sizeof p->err, "bad attribute in <%s> near \"%.30s\"", name, s + k); return 0; }
            char attr[64];
            snprintf(attr, sizeof attr, "%.*s", (int)(k - a0), s + a0);
            if (!strncmp(attr, "on", 2)) { snprintf(p->err, sizeof p->err, "event handler %s in <%s>", attr, name); return 0; }
            if (s[k] != '=') continue;   /* boolean attribute */
            k++;
            char q = s[k];
            if (q != '"' && q != '\'') {
                snprintf(p->err, sizeof p->err, "unquoted value of %s in <%s>", attr, name);
                return 0;
            }
            size_t v0 = ++k;
            while (k < n && s[k] != q) {
                if (s[k] == '<') { snprintf(p->err, sizeof p->err, "'<' in the value of %s in <%s>", attr, name); return 0; }
                k++;
            }
            if (k >= n) { snprintf(p->err, sizeof p->err, "unterminated value of %s in <%s>", attr, name); return 0; }
            if (!check_text(s + v0, k - v0, p->err, sizeof p->err)) return 0;
            const char *v = s + v0;
            size_t vl = k - v0;
            if ((!strcmp(attr, "src") || !strcmp(attr, "href")) &&
                (memmem(v, vl, "//", 2) || memmem(v, vl, ":", 1))) {
                snprintf(p->err, sizeof p->err, "<%s %s=\"%.*s\"> is not a relative file", name, attr, (int)vl, v);
                return 0;
            }
            if (!strcmp(attr, "id")) snprintf(id, sizeof id, "%.*s", (int)vl, v);
            if (!strcmp(attr, "data-value")) { snprintf(value, sizeof value, "%.*s", (int)vl, v); has_value = 1; }
            if (!strcmp(attr, "src")) snprintf(src, sizeof src, "%.*s", (int)vl, v);
            k++;
        }
        p->n_elements++;
        if (!strcmp(name, "svg")) {
            if (in_svg) { snprintf(p->err, sizeof p->err, "nested <svg>"); return 0; }
            in_svg = 1;
            p->n_svg++;
        }
        if (!strcmp(name, "img")) {
            ck_assert_int_lt(p->n_img, MAX_LIST);
            p->img_src[p->n_img++] = strdup(src);
        }
        if (id[0] && has_value) {
            ck_assert_int_lt(p->n_id, MAX_LIST);
            p->id[p->n_id] = strdup(id);
            p->id_value[p->n_id] = strdup(value);
            p->id_text[p->n_id] = NULL;
            pending_id = p->n_id++;
        }
        if (self_close) {
            if (!in_svg) { snprintf(p->err, sizeof p->err, "self-closing <%s/> outside SVG", name); return 0; }
        } else if (is_void(lname)) {
            if (in_svg) { snprintf(p->err, sizeof p->err, "<%s> inside SVG", name); return 0; }
        } else if (!strcmp(name, "style")) {
            const char *end = strstr(s + k, "</style>");
            if (!end) { snprintf(p->err, sizeof p->err, "<style> not closed"); return 0; }
            if (memmem(s + k, (size_t)(end - (s + k)), "url(http", 8) || memmem(s + k, (size_t)(end - (s + k)), "@import", 7)) {
                snprintf(p->err, sizeof p->err, "the style sheet fetches something");
                return 0;
            }
            k = (size_t)(end - s) + strlen("</style>");
        } else {
            if (depth == MAX_DEPTH) { snprintf(p->err, sizeof p->err, "nesting deeper than %d", MAX_DEPTH); return 0; }
            if (depth == 0 && strcmp(name, "html") != 0) {
                snprintf(p->err, sizeof p->err, "<%s> outside <html>", name);
                return 0;
            }
            snprintf(stack[depth++], sizeof stack[0], "%s", name);
        }
        i = k;
        text_start = i;
    }
    if (!check_text(s + text_start, n - text_start, p->err, sizeof p->err)) return 0;
    if (depth != 0) {
        snprintf(p->err, sizeof p->err, "<%s> is never closed", stack[depth - 1]);
        return 0;
    }
    for (size_t q = text_start; q < n; q++)
        if (!isspace((unsigned char)s[q])) {
            snprintf(p->err, sizeof p->err, "text after </html>");
            return 0;
        }
    return 1;
}

static const char *page_value(const page *p, const char *id, const char **text) {
    for (int i = 0; i < p->n_id; i++)
        if (!strcmp(p->id[i], id)) {
            if (text) *text = p->id_text[i] ? p->id_text[i] : "";
            return p->id_value[i];
        }
    return NULL;
}

static char *read_page(const char *path) {
    char *html = cli_read_file(path, NULL);
    ck_assert_msg(html != NULL, "%s was not written", path);
    return html;
}

/* The number after "key": in a flat JSON object (NAN for null). */
static double json_number(const char *json, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    ck_assert_msg(p != NULL, "%s missing from metrics.json", key);
    p += strlen(pat);
    while (*p == ' ') p++;
    if (!strncmp(p, "null", 4)) return NAN;
    return strtod(p, NULL);
}

/* The best epoch of a train_log.csv: the last row whose "best" column is 1. */
static int log_best_epoch(const char *log) {
    int best = 0;
    for (const char *l = strchr(log, '\n'); l && l[1]; l = strchr(l + 1, '\n')) {
        int e = atoi(l + 1);
        const char *end = strchr(l + 1, '\n');
        const char *comma = end ? end : l + 1 + strlen(l + 1);
        while (comma > l + 1 && comma[-1] != ',') comma--;
        if (e > 0 && atoi(comma) == 1) best = e;
    }
    return best;
}

/* ------------------------------------------------------------------------------------------ */

START_TEST(test_parser_rejects_bad_markup) {
    /* the checker itself: each of these must be refused */
    const char *bad[] = {
        "<!DOCTYPE html>\n<html><body><p>unclosed</body></html>",
        "<!DOCTYPE html>\n<html><body><b><i>x</b></i></body></html>",
        "<!DOCTYPE html>\n<html><body><script>x()</script></body></html>",
        "<!DOCTYPE html>\n<html><body><img src=\"http://example.com/a.png\"></body></html>",
        "<!DOCTYPE html>\n<html><body><p>a < b</p></body></html>",
        "<!DOCTYPE html>\n<html><body><p>AT&T</p></body></html>",
        "<!DOCTYPE html>\n<html><body><div/></body></html>",
        "<!DOCTYPE html>\n<html><body><p class=x>y</p></body></html>",
        "<html><body></body></html>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        page p;
        ck_assert_msg(!page_parse(bad[i], &p), "the checker accepted: %s", bad[i]);
        page_free(&p);
    }
    page p;
    const char *good = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><style>a{b:c}</style></head><body>"
                       "<p id=\"v\" data-value=\"0.5\">0.5000 &amp; &#8212;</p><svg><line x1=\"0\"/></svg>"
                       "<img src=\"gallery/01_image.png\"></body></html>\n";
    ck_assert_msg(page_parse(good, &p), "the checker refused well-formed markup: %s", p.err);
    const char *text = NULL;
    ck_assert_str_eq(page_value(&p, "v", &text), "0.5");
    ck_assert_str_eq(text, "0.5000 &amp; &#8212;");
    ck_assert_int_eq(p.n_img, 1);
    page_free(&p);
}
END_TEST

START_TEST(test_train_report) {
    ck_assert_msg(g_ready, "no trained model (see the setup's output)");
    char path[800], logp[800];
    snprintf(path, sizeof path, "%s/report.html", g_run);
    snprintf(logp, sizeof logp, "%s/train_log.csv", g_run);
    char *html = read_page(path), *log = cli_read_file(logp, NULL);
    ck_assert_ptr_nonnull(log);
    page p;
    ck_assert_msg(page_parse(html, &p), "%s is not well formed: %s", path, p.err);
    ck_assert_int_ge(p.n_svg, 1);
    const char *text = NULL, *best = page_value(&p, "best-epoch", &text);
    ck_assert_msg(best != NULL, "%s names no best epoch", path);
    int want = log_best_epoch(log);
    ck_assert_int_ge(want, 1);
    ck_assert_int_eq(atoi(best), want);
    ck_assert_int_eq(atoi(text), want);
    char mark[64];
    snprintf(mark, sizeof mark, "best: epoch %d", want);
    ck_assert_msg(strstr(html, mark) != NULL, "the loss chart does not mark \"%s\"", mark);
    /* one table row per epoch of the log */
    int rows = cli_log_rows(logp, NULL), tr = 0;
    for (const char *q = strstr(html, "<tbody>"); q && (q = strstr(q + 1, "<tr>")) != NULL;) tr++;
    ck_assert_int_eq(tr, rows);
    ck_assert_int_eq(cli_count_tmp(g_run), 0);
    page_free(&p);
    free(html);
    free(log);
}
END_TEST

/* Run test --report DIR --json J on data; check the page, its images and its metrics. */
static char *check_test_report(const char *data, const char *tag) {
    char dir[800], json[800], index[900];
    snprintf(dir, sizeof dir, "%s/report_%s", g_base, tag);
    snprintf(json, sizeof json, "%s/metrics_%s.json", g_base, tag);
    snprintf(index, sizeof index, "%s/index.html", dir);
    cli_result r = cli_run(NULL, "test", "--data", data, "--model", g_run, "--report", dir, "--json", json, NULL);
    cli_expect_ok("test --report", &r);
    ck_assert_msg(strstr(r.out, index) != NULL, "test does not print where the report is:\n%s", r.out);
    cli_result_free(&r);
    char *html = read_page(index), *js = cli_read_file(json, NULL);
    ck_assert_ptr_nonnull(js);
    page p;
    ck_assert_msg(page_parse(html, &p), "%s is not well formed: %s", index, p.err);
    ck_assert_int_ge(p.n_svg, 4);   /* ROC, PRO, histogram, colour bar */
    /* every image: a relative file inside DIR that decodes to the model's size */
    ck_assert_int_ge(p.n_img, 3 * 5);
    for (int i = 0; i < p.n_img; i++) {
        ck_assert_msg(p.img_src[i][0] && p.img_src[i][0] != '/' && !strstr(p.img_src[i], ".."),
                      "image reference \"%s\" leaves the report folder", p.img_src[i]);
        char file[1200];
        snprintf(file, sizeof file, "%s/%s", dir, p.img_src[i]);
        stfpm_image img = {0};
        stfpm_status s = stfpm_image_load(file, &img);
        ck_assert_msg(s == STFPM_OK, "%s: %s", file, stfpm_last_error());
        ck_assert_int_eq(img.w, SIZE);
        ck_assert_int_eq(img.h, SIZE);
        stfpm_image_free(&img);
        char *bytes = cli_read_file(file, NULL);
        ck_assert_msg(bytes && !memcmp(bytes, "\x89PNG\r\n\x1a\n", 8), "%s is not a PNG file", file);
        free(bytes);
    }
    /* the metrics are those of metrics.json, exactly, and shown to 4 decimals */
    const char *keys[4] = {"image_auroc", "pixel_auroc", "aupro", "pro_paper"};
    for (int k = 0; k < 4; k++) {
        const char *text = NULL, *v = page_value(&p, keys[k], &text);
        ck_assert_msg(v != NULL, "%s is not in the page", keys[k]);
        double want = json_number(js, keys[k]);
        ck_assert_msg(isfinite(want), "%s is null in metrics.json", keys[k]);
        ck_assert_msg(strtod(v, NULL) == want, "%s: page %s, metrics.json %.9g", keys[k], v, want);
        char shown[32];
        snprintf(shown, sizeof shown, "%.4f", want);
        ck_assert_str_eq(text, shown);
    }
    ck_assert_msg(page_value(&p, "threshold", NULL) != NULL, "the page shows no threshold");
    ck_assert_int_eq(cli_count_tmp(dir), 0);
    char gal[900];
    snprintf(gal, sizeof gal, "%s/gallery", dir);
    ck_assert_int_eq(cli_count_tmp(gal), 0);
    page_free(&p);
    free(js);
    return html;
}

START_TEST(test_test_report) {
    ck_assert_msg(g_ready, "no trained model (see the setup's output)");
    char *html = check_test_report(g_data, "demo");
    /* "data" is no MVTec AD category: no paper column */
    ck_assert_msg(strstr(html, "paper, ") == NULL, "paper values beside a data set that is not MVTec AD");
    ck_assert_msg(strstr(html, "Worst normal images") && strstr(html, "Worst anomalous images") &&
                  strstr(html, "Typical images"), "a gallery section is missing");
    free(html);
}
END_TEST

START_TEST(test_test_report_mvtec_category) {
    ck_assert_msg(g_ready, "no trained model (see the setup's output)");
    char bottle[700];
    snprintf(bottle, sizeof bottle, "%s/mvtec/bottle", g_base);
    char parent[700];
    snprintf(parent, sizeof parent, "%s/mvtec", g_base);
    ck_assert_int_eq(mkdir(parent, 0755), 0);
    ck_assert_int_eq(cli_copy_tree(g_data, bottle), 0);
    char *html = check_test_report(bottle, "bottle");
    /* the paper's bottle values (docs/SPEC.md section 8) and the 15-category means, "—" where the
     * paper gives none */
    ck_assert_msg(strstr(html, "<th>paper, bottle</th>") != NULL, "no paper column for bottle");
    ck_assert_msg(strstr(html, "<td>0.988</td>") && strstr(html, "<td>0.951</td>"), "the paper's bottle values are missing");
    ck_assert_msg(strstr(html, "<td>0.955</td>") && strstr(html, "<td>0.970</td>") && strstr(html, "<td>0.921</td>"),
                  "the paper's means are missing");
    ck_assert_msg(strstr(html, "<td>\xe2\x80\x94</td>") != NULL, "no \"\xe2\x80\x94\" for the values the paper lacks");
    free(html);
    cli_rm_rf(parent);
}
END_TEST

START_TEST(test_test_report_errors) {
    ck_assert_msg(g_ready, "no trained model (see the setup's output)");
    /* a report folder that cannot be created: the error names it, nothing else is written */
    char file[700], dir[800];
    snprintf(file, sizeof file, "%s/a_file", g_base);
    ck_assert_int_eq(cli_write_file(file, "x", 1), 0);
    snprintf(dir, sizeof dir, "%s/sub", file);
    cli_result r = cli_run(NULL, "test", "--data", g_data, "--model", g_run, "--report", dir, NULL);
    cli_expect_fail("test --report <a folder under a file>", &r, -1, NEEDLES(file));
    cli_result_free(&r);
    r = cli_run(NULL, "test", "--data", g_data, "--model", g_run, "--report", NULL);
    cli_expect_fail("test --report without a value", &r, 2, NEEDLES("--report"));
    cli_result_free(&r);
    r = cli_run(NULL, "test", "--help", NULL);
    cli_expect_ok("test --help", &r);
    ck_assert_msg(strstr(r.out, "--report DIR") != NULL, "test --help does not describe --report");
    cli_result_free(&r);
}
END_TEST

/* The training page straight from the library, on a log whose best epoch is not the last and
 * whose validation loss is missing in one row; a folder that does not exist is an error naming
 * the file. */
START_TEST(test_train_report_library) {
    const char *log = "epoch,train_loss,val_loss,val_map_mean,seconds,images_per_s,best\n"
                      "1,2.5,3.0,nan,1.0,10.0,1\n2,1.2,1.1,nan,1.0,10.0,1\n3,0.9,nan,nan,1.0,10.0,0\n"
                      "4,0.7,1.4,nan,1.0,10.0,0\n";
    char path[700];
    snprintf(path, sizeof path, "%s/library_report.html", g_base);
    const stfpm_train_report t = {.run_dir = "runs/<b>&\"x\"", .log_csv = log, .epochs = 10, .best_epoch = 2,
                                  .checkpoint_by = STFPM_SELECT_BY_VAL_LOSS};
    TU_CHECK_STATUS(stfpm_report_write_train(path, &t));
    char *html = read_page(path);
    page p;
    ck_assert_msg(page_parse(html, &p), "%s is not well formed: %s", path, p.err);
    const char *text = NULL;
    ck_assert_str_eq(page_value(&p, "best-epoch", &text), "2");
    ck_assert_msg(strstr(html, "best: epoch 2") != NULL, "the best epoch is not marked");
    ck_assert_msg(strstr(html, "runs/&lt;b&gt;&amp;&quot;x&quot;") != NULL, "the run folder is not escaped");
    page_free(&p);
    free(html);
    snprintf(path, sizeof path, "%s/no_such_folder/report.html", g_base);
    ck_assert_int_eq(stfpm_report_write_train(path, &t), STFPM_ERR_IO);
    ck_assert_msg(strstr(stfpm_last_error(), path) != NULL, "the error does not name %s: %s", path, stfpm_last_error());
}
END_TEST

/* A model trained without validation images stores no threshold: both pages say so. */
START_TEST(test_reports_without_validation) {
    ck_assert_msg(g_ready, "no trained model (see the setup's output)");
    char run[700], dir[700], index[800], train_page[800];
    snprintf(run, sizeof run, "%s/run_noval", g_base);
    snprintf(dir, sizeof dir, "%s/report_noval", g_base);
    snprintf(index, sizeof index, "%s/index.html", dir);
    snprintf(train_page, sizeof train_page, "%s/report.html", run);
    cli_result r = cli_run(NULL, "train", "--data", g_data, "--out", run, "--teacher", g_teacher, "--size", "64",
                           "--epochs", "1", "--batch", "4", "--val-split", "0", NULL);
    cli_expect_ok("train --val-split 0", &r);
    cli_result_free(&r);
    char *html = read_page(train_page);
    page p;
    ck_assert_msg(page_parse(html, &p), "%s is not well formed: %s", train_page, p.err);
    ck_assert_str_eq(page_value(&p, "best-epoch", NULL), "1");
    page_free(&p);
    free(html);
    r = cli_run(NULL, "test", "--data", g_data, "--model", run, "--report", dir, NULL);
    cli_expect_ok("test --report, model without a threshold", &r);
    cli_result_free(&r);
    html = read_page(index);
    ck_assert_msg(page_parse(html, &p), "%s is not well formed: %s", index, p.err);
    ck_assert_msg(page_value(&p, "threshold", NULL) == NULL, "a threshold shown for a model that stores none");
    ck_assert_msg(strstr(html, "threshold none") != NULL, "the page does not say that there is no threshold");
    page_free(&p);
    free(html);
}
END_TEST

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    Suite *s = suite_create("cli_report");
    TCase *tc = tcase_create("report");
    tcase_set_timeout(tc, 600);
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_parser_rejects_bad_markup);
    tcase_add_test(tc, test_train_report);
    tcase_add_test(tc, test_test_report);
    tcase_add_test(tc, test_test_report_mvtec_category);
    tcase_add_test(tc, test_test_report_errors);
    tcase_add_test(tc, test_train_report_library);
    tcase_add_test(tc, test_reports_without_validation);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
