/* `stfpm train --backbone`: a run of another backbone trains, is tested and predicts from the
 * command line, records its backbone (config.json, the model files) and resumes with it;
 * mismatches are refused by name:
 *   - a teacher file of another backbone (a resnet34 teacher for the default resnet18, a
 *     resnet18 teacher for --backbone resnet34) names both backbones and the --backbone to use;
 *   - --resume with a different --backbone names the run's backbone;
 *   - an unknown --backbone lists the choices;
 *   - a model file without backbone metadata (written before it was recorded) is a resnet18
 *     one; a file whose metadata names another backbone than its tensors is refused.
 * Teachers: randomly initialised (Kaiming) networks written to files (what is tested does not
 * depend on the weights); 64 x 64 demo images. resnet34 is the backbone trained (the cheapest
 * other than resnet18); the Bottleneck networks' numerics are test_parity_backbones'. */
#include "testutil.h"
#include "cli_util.h"
#include "stfpm/resnet.h"
#include "stfpm/weights.h"

#include <sys/wait.h>
#include <unistd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NEEDLES(...) ((const char *const[]){__VA_ARGS__, NULL})

static char g_base[512], g_data[600], g_t18[700], g_t34[700], g_t34_l4[700];

static void setup(void) {
    snprintf(g_base, sizeof g_base, "%s", cli_mkdtemp("backbone"));
    snprintf(g_data, sizeof g_data, "%s/data", g_base);
    cli_make_demo(g_data, 8, 2, 2, 64, 5);
    snprintf(g_t18, sizeof g_t18, "%s/r18.safetensors", g_base);
    snprintf(g_t34, sizeof g_t34, "%s/r34.safetensors", g_base);
    snprintf(g_t34_l4, sizeof g_t34_l4, "%s/r34_l4.safetensors", g_base);
    ck_assert(cli_write_random_teacher_for(g_t18, "resnet18", 3));
    ck_assert(cli_write_random_teacher_for(g_t34, "resnet34", 3));
    ck_assert(cli_write_random_teacher_for(g_t34_l4, "resnet34", 4));
}

static void teardown(void) { cli_rm_rf(g_base); }

START_TEST(test_train_test_predict_resume) {
    char run[700], model[760], cfg[760], img[760], log[760];
    snprintf(run, sizeof run, "%s/run34", g_base);
    snprintf(model, sizeof model, "%s/best.safetensors", run);
    snprintf(cfg, sizeof cfg, "%s/config.json", run);
    snprintf(log, sizeof log, "%s/train_log.csv", run);
    snprintf(img, sizeof img, "%s/test/good/000.png", g_data);
    cli_result r = cli_run(NULL, "train", "--data", g_data, "--out", run, "--backbone", "resnet34", "--teacher", g_t34,
                           "--size", "64", "--epochs", "1", "--batch", "4", NULL);
    cli_expect_ok("train --backbone resnet34", &r);
    cli_result_free(&r);
    char *c = cli_read_file(cfg, NULL);
    ck_assert_ptr_nonnull(c);
    ck_assert_msg(strstr(c, "\"backbone\": \"resnet34\""), "config.json does not record the backbone:\n%s", c);
    free(c);
    /* the model file records it too (safetensors metadata: the JSON header after the 8-byte length) */
    size_t mlen = 0;
    char *m = cli_read_file(model, &mlen);
    ck_assert_ptr_nonnull(m);
    ck_assert(mlen > 8);
    ck_assert_msg(strstr(m + 8, "\"backbone\":\"resnet34\""), "best.safetensors has no backbone metadata");
    free(m);

    r = cli_run(NULL, "test", "--data", g_data, "--model", run, NULL);
    cli_expect_ok("test of a resnet34 run", &r);
    ck_assert_msg(strstr(r.out, "image AUROC"), "stfpm test printed no image AUROC:\n%s", r.out);
    cli_result_free(&r);
    r = cli_run(NULL, "predict", "--model", run, "--format", "json", img, NULL);
    cli_expect_ok("predict with a resnet34 model", &r);
    ck_assert_msg(strstr(r.out, "\"score\""), "predict printed no score:\n%s", r.out);
    cli_result_free(&r);

    /* --resume: another backbone is refused by name; without --backbone the run's is used */
    r = cli_run(NULL, "train", "--data", g_data, "--out", run, "--resume", "--backbone", "resnet50", "--teacher",
                g_t34, "--size", "64", "--epochs", "2", "--batch", "4", NULL);
    cli_expect_fail("--resume --backbone resnet50 of a resnet34 run", &r, -1,
                    NEEDLES("trained with --backbone resnet34", "--backbone resnet50"));
    cli_result_free(&r);
    ck_assert_int_eq(cli_log_rows(log, NULL), 1);
    r = cli_run(NULL, "train", "--data", g_data, "--out", run, "--resume", "--teacher", g_t34, "--size", "64",
                "--epochs", "2", "--batch", "4", NULL);
    cli_expect_ok("--resume of a resnet34 run without --backbone", &r);
    cli_result_free(&r);
    ck_assert_int_eq(cli_log_rows(log, NULL), 2);
}
END_TEST

/* A model file as stfpm-cl wrote it before the backbone was recorded (metadata format, size,
 * layers only) with random resnet18 teacher and student; backbone_meta != NULL adds a
 * "backbone" entry. Written from a child process (no OpenCL context in the test). */
static int write_model(const char *path, const char *backbone_meta) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        stfpm_ctx *ctx = NULL;
        stfpm_resnet *net = NULL;
        stfpm_weights w = {0};
        stfpm_status s = stfpm_ctx_create(&ctx, NULL);
        if (s == STFPM_OK) s = stfpm_resnet_create(ctx, 3, STFPM_NET_FROZEN, &net);
        if (s == STFPM_OK) s = stfpm_resnet_init_kaiming(ctx, net, 7);
        if (s == STFPM_OK) s = stfpm_resnet_export(ctx, net, &w, "teacher.");
        if (s == STFPM_OK) s = stfpm_resnet_init_kaiming(ctx, net, 8);
        if (s == STFPM_OK) s = stfpm_resnet_export(ctx, net, &w, "student.");
        const char *keys[] = {"format", "size", "layers", "backbone"};
        const char *vals[] = {"stfpm-cl-1", "64", "1,2,3", backbone_meta};
        if (s == STFPM_OK) s = stfpm_safetensors_write(path, &w, keys, vals, backbone_meta ? 4 : 3);
        if (s != STFPM_OK) fprintf(stderr, "write_model: %s\n", stfpm_last_error());
        stfpm_weights_free(&w);
        if (net) stfpm_resnet_free(ctx, net);
        stfpm_ctx_free(ctx);
        _exit(s == STFPM_OK ? 0 : 1);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid) return 0;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

START_TEST(test_model_file_backbone) {
    char old[700], bad[700], img[760];
    snprintf(old, sizeof old, "%s/old_model.safetensors", g_base);
    snprintf(bad, sizeof bad, "%s/bad_model.safetensors", g_base);
    snprintf(img, sizeof img, "%s/test/good/000.png", g_data);
    ck_assert(write_model(old, NULL));
    ck_assert(write_model(bad, "resnet34"));
    /* no backbone metadata: a resnet18 model */
    cli_result r = cli_run(NULL, "predict", "--model", old, "--format", "json", img, NULL);
    cli_expect_ok("predict with a model file without backbone metadata", &r);
    ck_assert_msg(strstr(r.out, "\"score\""), "predict printed no score:\n%s", r.out);
    cli_result_free(&r);
    /* metadata naming another backbone than the tensors hold */
    r = cli_run(NULL, "predict", "--model", bad, "--format", "json", img, NULL);
    cli_expect_fail("model file recording resnet34 with resnet18 tensors", &r, -1,
                    NEEDLES("records backbone resnet34", "its teacher is a resnet18"));
    cli_result_free(&r);
}
END_TEST

START_TEST(test_mismatch_refused) {
    char run[700];
    snprintf(run, sizeof run, "%s/run_bad", g_base);
    /* a resnet34 teacher for the default backbone */
    cli_result r = cli_run(NULL, "train", "--data", g_data, "--out", run, "--teacher", g_t34, "--size", "64",
                           "--epochs", "1", NULL);
    cli_expect_fail("resnet34 teacher, default backbone", &r, -1,
                    NEEDLES("holds a resnet34", "the backbone is resnet18", "--backbone resnet34"));
    cli_result_free(&r);
    char best[760];
    snprintf(best, sizeof best, "%s/best.safetensors", run);
    ck_assert_msg(!cli_exists(best), "a refused run wrote %s", best);
    /* a resnet18 teacher for --backbone resnet34 (layer4 too: the full-file case) */
    r = cli_run(NULL, "train", "--data", g_data, "--out", run, "--backbone", "resnet34", "--teacher", g_t18,
                "--size", "64", "--epochs", "1", NULL);
    cli_expect_fail("resnet18 teacher, --backbone resnet34", &r, -1,
                    NEEDLES("holds a resnet18", "the backbone is resnet34", "--backbone resnet18"));
    cli_result_free(&r);
    r = cli_run(NULL, "train", "--data", g_data, "--out", run, "--backbone", "resnet18", "--teacher", g_t34_l4,
                "--size", "64", "--epochs", "1", "--layers", "1,2,3,4", NULL);
    cli_expect_fail("full resnet34 teacher, --backbone resnet18", &r, -1, NEEDLES("holds a resnet34"));
    cli_result_free(&r);
    /* an unknown backbone */
    r = cli_run(NULL, "train", "--data", g_data, "--out", run, "--backbone", "resnet101", "--teacher", g_t18,
                "--size", "64", NULL);
    cli_expect_fail("--backbone resnet101", &r, -1, NEEDLES("resnet101", "wide_resnet50_2"));
    cli_result_free(&r);
}
END_TEST

int main(void) {
    Suite *s = suite_create("cli_backbone");
    TCase *tc = tcase_create("backbone");
    tcase_set_timeout(tc, 600);
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_mismatch_refused);
    tcase_add_test(tc, test_model_file_backbone);
    tcase_add_test(tc, test_train_test_predict_resume);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
