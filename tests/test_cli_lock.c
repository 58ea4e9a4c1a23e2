/* One run folder, one writer: `stfpm train` holds an exclusive lock on RUN/.lock for the whole
 * run. A second run into the same folder fails (non-zero exit, a message naming the folder and
 * the holder's pid) and writes nothing there; once the holder is gone (it ended, or was
 * killed: the kernel drops the lock) training into the folder works again, --resume included.
 *
 * Teacher: the real ImageNet weights from ../shared/weights when present; otherwise a random
 * (Kaiming) ResNet-18 written to a file (locking does not depend on the teacher). */
#include "testutil.h"
#include "cli_util.h"
#include "stfpm/pipeline.h"
#include "stfpm/weights.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NEEDLES(...) ((const char *const[]){__VA_ARGS__, NULL})

static char g_base[512];     /* temporary root of this program */
static char g_data[600];     /* demo data: 6 train, 2 good, 4 defective, 64 x 64 */
static char g_teacher[2400];
static int g_have_teacher;

static void setup(void) {
    snprintf(g_base, sizeof g_base, "%s", cli_mkdtemp("lock"));
    snprintf(g_data, sizeof g_data, "%s/data", g_base);
    cli_make_demo(g_data, 6, 2, 4, 64, 3);
    g_have_teacher = cli_teacher_or_random(g_base, g_teacher, sizeof g_teacher);
}

static void teardown(void) { cli_rm_rf(g_base); }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A fresh folder path (not created) inside g_base. */
static const char *run_dir(const char *tag) {
    static char buf[4][700];
    static int k;
    char *b = buf[k++ % 4];
    char tmpl[600];
    snprintf(tmpl, sizeof tmpl, "%s/%s_XXXXXX", g_base, tag);
    ck_assert_ptr_nonnull(mkdtemp(tmpl));
    snprintf(b, sizeof buf[0], "%s/run", tmpl);
    return b;
}

/* Hold RUN/.lock the way a training process does (exclusive flock, pid inside). */
static int hold_lock(const char *run, long pid) {
    ck_assert_int_eq(mkdir(run, 0755), 0);
    char path[800];
    snprintf(path, sizeof path, "%s/.lock", run);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
    ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
    char text[32];
    int n = snprintf(text, sizeof text, "%ld\n", pid);
    ck_assert_int_eq(pwrite(fd, text, (size_t)n, 0), n);
    return fd;
}

static cli_result train(const char *out, const char *epochs, int resume) {
    const char *args[] = {"train", "--data", g_data, "--out", out, "--teacher", g_teacher, "--size", "64",
                          "--epochs", epochs, "--batch", "4", resume ? "--resume" : NULL, NULL};
    return cli_runv(NULL, args);
}

/* Only the lock file in the folder: the refused run wrote nothing. */
static void assert_untouched(const char *run) {
    char *d = cli_dir_digest(run);
    ck_assert_msg(strcmp(d, "") == 0, "the refused run wrote into %s:\n%s", run, d);
    free(d);
}

START_TEST(test_cli_refused_while_locked) {
    ck_assert_msg(g_have_teacher, "no teacher");
    const char *run = run_dir("held");
    char pid[32];
    snprintf(pid, sizeof pid, "pid %ld", (long)getpid());
    int fd = hold_lock(run, (long)getpid());
    cli_result r = train(run, "1", 0);
    cli_expect_fail("train --out <a folder another process trains into>", &r, -1, NEEDLES(run, pid));
    cli_result_free(&r);
    assert_untouched(run);
    close(fd);   /* the holder ends */
    r = train(run, "1", 0);
    cli_expect_ok("train once the lock is released", &r);
    cli_result_free(&r);
    char last[800], log[800];
    snprintf(last, sizeof last, "%s/last.safetensors", run);
    snprintf(log, sizeof log, "%s/train_log.csv", run);
    ck_assert(cli_exists(last));
    /* the lock file left by the finished run does not stand in the way of a resume */
    r = train(run, "2", 1);
    cli_expect_ok("train --resume after a finished run", &r);
    cli_result_free(&r);
    ck_assert_int_eq(cli_log_rows(log, NULL), 2);
}
END_TEST

/* A real first run: the second one is refused with the first one's pid; killing the first
 * releases the lock, and the second resumes what it left. */
START_TEST(test_cli_second_train_refused) {
    ck_assert_msg(g_have_teacher, "no teacher");
    const char *run = run_dir("two");
    char last[800], log[800];
    snprintf(last, sizeof last, "%s/last.safetensors", run);
    snprintf(log, sizeof log, "%s/train_log.csv", run);
    const char *args[] = {"train", "--data", g_data, "--out", run, "--teacher", g_teacher, "--size", "64",
                          "--epochs", "1000", "--batch", "4", NULL};
    cli_proc p = cli_start(NULL, args);
    double t0 = now_s();
    while (!cli_exists(last)) {   /* the first epoch is done: the run is well under way */
        int st;
        if (waitpid(p.pid, &st, WNOHANG) == p.pid) {
            char *err = cli_read_file(p.err_path, NULL);
            ck_abort_msg("the first run ended before its first epoch:\n%s", err ? err : "");
        }
        ck_assert_msg(now_s() - t0 < 300, "no epoch completed within 300 s");
        usleep(10000);
    }
    char pid[32];
    snprintf(pid, sizeof pid, "pid %ld", (long)p.pid);
    cli_result r = train(run, "1000", 1);
    cli_expect_fail("train --resume into a folder another run trains into", &r, -1, NEEDLES(run, pid));
    cli_result_free(&r);
    kill(p.pid, SIGKILL);
    cli_result ra = cli_finish(&p);
    ck_assert_int_eq(ra.signal, SIGKILL);
    cli_result_free(&ra);
    /* the epoch the killed run's last checkpoint holds */
    stfpm_weights w = {0};
    TU_CHECK_STATUS(stfpm_weights_load(last, &w));
    const char *ep = stfpm_weights_meta(&w, "epoch");
    ck_assert_ptr_nonnull(ep);
    int done = atoi(ep);
    stfpm_weights_free(&w);
    char more[16];
    snprintf(more, sizeof more, "%d", done + 1);
    r = train(run, more, 1);
    cli_expect_ok("train --resume once the first run was killed", &r);
    cli_result_free(&r);
    ck_assert_int_eq(cli_log_rows(log, NULL), done + 1);
    ck_assert_int_eq(cli_count_tmp(run), 0);
}
END_TEST

/* The library: stfpm_train on a locked folder returns STFPM_ERR_IO before it writes anything. */
START_TEST(test_library_refused_while_locked) {
    ck_assert_msg(g_have_teacher, "no teacher");
    const char *run = run_dir("lib");
    int fd = hold_lock(run, 4242);
    stfpm_train_config c;
    stfpm_train_config_default(&c);
    c.data_dir = g_data;
    c.out_dir = run;
    c.teacher = g_teacher;
    c.size = 64;
    c.epochs = 1;
    c.batch = 4;
    stfpm_status s = stfpm_train(tu_ctx(), &c, NULL, NULL);
    ck_assert_msg(s == STFPM_ERR_IO, "expected STFPM_ERR_IO, got %s: %s", stfpm_status_name(s), stfpm_last_error());
    ck_assert_msg(strstr(stfpm_last_error(), run) && strstr(stfpm_last_error(), "pid 4242"), "%s", stfpm_last_error());
    assert_untouched(run);
    close(fd);
}
END_TEST

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    Suite *s = suite_create("cli_lock");
    TCase *tc = tcase_create("lock");
    tcase_set_timeout(tc, 600);
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_cli_refused_while_locked);
    tcase_add_test(tc, test_cli_second_train_refused);
    tcase_add_test(tc, test_library_refused_while_locked);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
