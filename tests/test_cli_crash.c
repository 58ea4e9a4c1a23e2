/* Crash safety of `stfpm train`: a run killed with SIGKILL in the middle of an epoch resumes
 * with `--resume` and ends exactly where an uninterrupted run with the same seed ends (same
 * final validation loss), repeating at most the interrupted epoch; the log holds each epoch
 * once; no temporary files are left in the run folder (also those of a process killed while
 * writing a checkpoint).
 *
 * Teacher: the real ImageNet weights from ../shared/weights when present; otherwise a random
 * (Kaiming) ResNet-18 written to a file (the property tested does not depend on the teacher). */
#include "testutil.h"
#include "cli_util.h"
#include "stfpm/weights.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EPOCHS 4

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}


/* "epoch N/M  train loss" lines of a run's stderr: first epoch trained and how many. */
static void trained_epochs(const char *err, int *first, int *count) {
    *first = 0;
    *count = 0;
    for (const char *p = err; (p = strstr(p, "epoch ")) != NULL; p++) {
        int e, m;
        char tail[16];
        if (sscanf(p, "epoch %d/%d  %15s", &e, &m, tail) == 3 && !strcmp(tail, "train")) {
            if (!*count) *first = e;
            ++*count;
        }
    }
}

/* Epochs of the log rows, in order. */
static int log_epochs(const char *path, int *epochs, int max) {
    char *text = cli_read_file(path, NULL);
    if (!text) return 0;
    int n = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int e = atoi(line);
        if (e >= 1 && n < max) epochs[n++] = e;
    }
    free(text);
    return n;
}

/* Epoch seconds of the first log row (0 when none). */
static double first_epoch_seconds(const char *path) {
    char *text = cli_read_file(path, NULL);
    if (!text) return 0;
    double sec = 0;
    char *row = strchr(text, '\n');
    if (row && atoi(row + 1) == 1) {
        const char *c = row + 1;
        for (int k = 0; k < 4 && c; k++) { c = strchr(c, ','); if (c) c++; }
        if (c) sec = strtod(c, NULL);
    }
    free(text);
    return sec;
}

static char *meta_of(const char *path, const char *key) {
    stfpm_weights w = {0};
    TU_CHECK_STATUS(stfpm_weights_load(path, &w));
    const char *v = stfpm_weights_meta(&w, key);
    char *out = v ? strdup(v) : NULL;
    stfpm_weights_free(&w);
    return out;
}

START_TEST(test_kill_and_resume) {
    const char *base = cli_mkdtemp("crash");
    char data[600], a[600], b[600], teacher[2400];
    snprintf(data, sizeof data, "%s/data", base);
    snprintf(a, sizeof a, "%s/uninterrupted", base);
    snprintf(b, sizeof b, "%s/killed", base);
    cli_make_demo(data, 20, 1, 1, 64, 11);   /* 16 train + 4 validation images */
    ck_assert_msg(cli_teacher_or_random(base, teacher, sizeof teacher), "could not write a random teacher");
    char epochs[8];
    snprintf(epochs, sizeof epochs, "%d", EPOCHS);
    const char *args_a[] = {"train", "--data", data, "--out", a, "--teacher", teacher, "--size", "64", "--batch", "4",
                            "--epochs", epochs, "--seed", "5", NULL};
    const char *args_b[] = {"train", "--data", data, "--out", b, "--teacher", teacher, "--size", "64", "--batch", "4",
                            "--epochs", epochs, "--seed", "5", NULL};
    const char *args_r[] = {"train", "--data", data, "--out", b, "--teacher", teacher, "--size", "64", "--batch", "4",
                            "--epochs", epochs, "--seed", "5", "--resume", NULL};

    /* 1. the uninterrupted reference run */
    cli_result ra = cli_runv(NULL, args_a);
    cli_expect_ok("uninterrupted run", &ra);
    printf("uninterrupted run: %.1f s\n", ra.seconds);
    cli_result_free(&ra);

    /* 2. the same run, SIGKILLed in the middle of an epoch after at least one epoch completed */
    char log_b[700], last_b[700];
    snprintf(log_b, sizeof log_b, "%s/train_log.csv", b);
    snprintf(last_b, sizeof last_b, "%s/last.safetensors", b);
    cli_proc p = cli_start(NULL, args_b);
    double t0 = now_s();
    /* last.safetensors appears (atomically renamed into place) at the end of epoch 1, after the
     * log row */
    while (!cli_exists(last_b)) {
        int st;
        if (waitpid(p.pid, &st, WNOHANG) == p.pid) {
            char *err = cli_read_file(p.err_path, NULL);
            ck_abort_msg("the run to be killed ended before its first epoch:\n%s", err ? err : "");
        }
        ck_assert_msg(now_s() - t0 < 300, "no epoch completed within 300 s");
        usleep(10000);
    }
    double sec = first_epoch_seconds(log_b);
    /* 40 % into the next epoch (the epoch time includes the checkpoint writes) */
    usleep((useconds_t)(sec * 0.4 * 1e6));
    kill(p.pid, SIGKILL);
    cli_result rb = cli_finish(&p);
    ck_assert_msg(rb.signal == SIGKILL, "the run was not killed (exit %d): it finished too fast?\n%s", rb.code, rb.err);
    char *ep = meta_of(last_b, "epoch");
    ck_assert_ptr_nonnull(ep);
    int done_epochs = atoi(ep);
    free(ep);
    int rows_after_kill = cli_log_rows(log_b, NULL);
    printf("killed after %.1f s (epoch time %.2f s): last.safetensors holds epoch %d, the log %d row(s)\n",
           rb.seconds, sec, done_epochs, rows_after_kill);
    ck_assert_msg(done_epochs >= 1 && done_epochs < EPOCHS, "last.safetensors holds epoch %d", done_epochs);
    ck_assert_msg(rows_after_kill == done_epochs || rows_after_kill == done_epochs + 1,
                  "log rows %d vs checkpoint epoch %d", rows_after_kill, done_epochs);
    cli_result_free(&rb);
    /* what a kill during a checkpoint write leaves: a temporary file of a dead process */
    char stale[800];
    snprintf(stale, sizeof stale, "%s/last.safetensors.tmp.%ld.3", b, (long)p.pid);
    ck_assert_int_eq(cli_write_file(stale, "partial checkpoint", 18), 0);

    /* 3. resume */
    cli_result rr = cli_runv(NULL, args_r);
    cli_expect_ok("resumed run", &rr);
    int first, count;
    trained_epochs(rr.err, &first, &count);
    printf("resumed run: %.1f s, trained epochs %d..%d\n", rr.seconds, first, first + count - 1);
    ck_assert_msg(first == done_epochs + 1, "the resumed run started at epoch %d, the checkpoint held epoch %d",
                  first, done_epochs);
    ck_assert_int_eq(count, EPOCHS - done_epochs);
    /* epochs trained in total by the killed and the resumed run: at most one (the interrupted one)
     * more than EPOCHS */
    ck_assert_msg(done_epochs + 1 + count <= EPOCHS + 1, "more than one epoch repeated");
    cli_result_free(&rr);

    /* 4. same end point as the uninterrupted run */
    char log_a[700], best_a[700], best_b[700];
    snprintf(log_a, sizeof log_a, "%s/train_log.csv", a);
    snprintf(best_a, sizeof best_a, "%s/best.safetensors", a);
    snprintf(best_b, sizeof best_b, "%s/best.safetensors", b);
    double va = NAN, vb = NAN;
    ck_assert_int_eq(cli_log_rows(log_a, &va), EPOCHS);
    ck_assert_int_eq(cli_log_rows(log_b, &vb), EPOCHS);
    int ea[16], eb[16];
    ck_assert_int_eq(log_epochs(log_b, eb, 16), EPOCHS);
    ck_assert_int_eq(log_epochs(log_a, ea, 16), EPOCHS);
    for (int i = 0; i < EPOCHS; i++) ck_assert_msg(eb[i] == i + 1, "log row %d is epoch %d", i + 1, eb[i]);
    char *bva = meta_of(best_a, "val_loss"), *bvb = meta_of(best_b, "val_loss");
    printf("final validation loss: uninterrupted %.9g, killed + resumed %.9g; best.safetensors val_loss %s vs %s\n",
           va, vb, bva, bvb);
    /* Same seed, same data, same order of operations on the same device: the runs agree to the
     * last bit on a deterministic device; 1e-6 relative leaves room for a device whose
     * reductions are not bitwise reproducible. */
    ck_assert_msg(isfinite(va) && fabs(va - vb) <= 1e-6 * fmax(1.0, fabs(va)),
                  "final validation loss differs: %.9g vs %.9g", va, vb);
    ck_assert_msg(bva && bvb && fabs(strtod(bva, NULL) - strtod(bvb, NULL)) <= 1e-6 * fmax(1.0, fabs(strtod(bva, NULL))),
                  "best.safetensors val_loss differs: %s vs %s", bva, bvb);
    free(bva);
    free(bvb);

    /* 5. nothing temporary left behind */
    ck_assert_msg(cli_count_tmp(b) == 0, "temporary files left in %s", b);
    ck_assert_msg(cli_count_tmp(a) == 0, "temporary files left in %s", a);
    cli_rm_rf(base);
}
END_TEST

int main(void) {
    Suite *s = suite_create("cli_crash");
    TCase *tc = tcase_create("kill");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_kill_and_resume);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
