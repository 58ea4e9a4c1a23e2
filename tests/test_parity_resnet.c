/* Parity of the whole network with PyTorch (tests/ref/parity_ref.h, from tests/ref/gen_parity.py):
 * teacher (eval BN) and student (train BN) ResNet-18 conv1..layer3 with closed-form weights
 * (tests/parity_util.c), run exactly as a training step runs them:
 *   teacher eval forward; student train forward; stfpm_pyramid_loss with want_grad;
 *   stfpm_resnet_backward with dfeats = stfpm_pyramid_grad; stfpm_resnet_sgd_step (lr 0.4,
 *   momentum 0.9, weight decay 1e-4; first_step 1, then 0).
 * Cases: b2_64 (2x3x64x64, 3 steps), b1_128 (1x3x128x128, 3 steps), b1_256 (1x3x256x256, 1 step).
 * The references are float64 PyTorch (the values a float32 engine approximates). Errors are relative
 * to the RMS of the reference tensor (per level / per parameter tensor), see parity_compare().
 *
 * Tolerances (b2_64, b1_128; b1_256 where it differs):
 *   features: teacher eval, student eval, student train (layer1..3)    1e-4
 *   loss before step 1 and its three per-level terms                     1e-5 relative
 *   BN running statistics after the first train forward                  1e-4
 *   gradients of the first step                                          1e-3     (256: 0.05 on sum / sumsq)
 *   parameter change after step 1 (value - initial, relative to its RMS) 1e-3     (256: likewise)
 *   loss before step 2                                                   1e-4 relative
 *   loss before step 3                                                   3e-3 relative
 *   parameter change after step 3: sum and sum of squares                0.1
 *   every SGD update recomputed on the host in double from the value,
 *   gradient and momentum buffer read around stfpm_resnet_sgd_step       2e-6 relative
 *
 * Why not tighter for the later steps and the 256 gradients: the gradient is a discontinuous
 * function of the activations (ReLU mask, max-pool argmax). Where a ReLU input is within float32
 * rounding of 0, an engine may take the other branch; that moves the weight gradients of the
 * layers below by O(1 / sqrt(positions)), 1e-2 .. 1 of their RMS. The input variant of each case
 * was chosen (gen_parity.py search) so that every ReLU input of the first train forward is at
 * least `relu_margin` * RMS from 0 (b2_64 2.1e-5, b1_128 9.1e-6, well above float32 rounding:
 * float32 PyTorch runs with weights perturbed by 1e-7 relative stay at 1e-4 .. 2e-4 of RMS; with
 * 5e-7, six times float32 rounding, b1_128 flipped once in six). At 256 x 256 (3.1 M ReLU inputs) no
 * variant gets there (best 1.6e-6) and float32 runs with perturbed weights do flip (0.6 of RMS in
 * one of four), so b1_256 holds its gradients only to aggregate measures. After one SGD step at
 * lr 0.4 no input can protect the next forward: the 1e-4 float32 differences of the first
 * gradients become parameter differences that flip ReLUs in the second step, and float32 PyTorch
 * itself departs from float64 by O(1) in the step-2 gradients. So steps 2 and 3 are checked by
 * what stays well-defined: the loss (continuous), the size of the parameter change, and the SGD
 * rule itself at every step. (Without momentum the step-3 loss of b2_64 changes by 1.7 % and the
 * size measure of the step-3 parameter changes by 0.35 for the median tensor; without weight decay
 * that measure moves by up to 0.14, for BN weights; the step-1 check sees weight decay directly.)
 * A gradient failure of 1e-2 .. 1 confined to the layers below one point (the layers above it
 * matching to 1e-4) is the signature of such a flip, not necessarily of a bug. */
#include "testutil.h"
#include "tu_options.h"
#include "parity_util.h"
#include "stfpm/pyramid.h"
#include "stfpm/resnet.h"
#include "ref/parity_ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL_SGD 2e-6

/* Tolerances of one case (see the comment at the top). agg_grad: gradients and the parameters
 * after step 1 are held only to the aggregate measures (sum, sum of squares), not to the samples. */
typedef struct tolset {
    double feat, loss0, grad, stat, step1, loss1, loss_later, step_last;
    int agg_grad;
} tolset;

static const tolset TOL_EXACT = {1e-4, 1e-5, 1e-3, 1e-4, 1e-3, 1e-4, 3e-3, 0.1, 0};
static const tolset TOL_256 = {1e-4, 1e-5, 0.05, 1e-4, 0.05, 1e-4, 3e-3, 0.1, 1};

typedef struct group_max {     /* worst error per comparison group, for the summary */
    const char *name;
    double tol, worst;
    int agg;                   /* 1: only sum / sum of squares are held to tol */
    char what[192];
    int count, failed;
    double worst_samp;         /* agg groups: largest sample error seen (reported only) */
} group_max;

/* Every comparison is made and printed when it fails; the test asserts at the end, so that one
 * run shows every mismatch. */
static int note(group_max *g, const char *what, double err) {
    g->count++;
    if (!(err <= g->worst)) {
        g->worst = isnan(err) ? INFINITY : err;
        snprintf(g->what, sizeof g->what, "%s", what);
    }
    if (!(err <= g->tol)) {
        g->failed++;
        return 0;
    }
    return 1;
}

/* Compare a device tensor with a record; base (host, may be NULL) is subtracted first. */
static void check_rec(const parity_case *pc, group_max *g, const char *name, const stfpm_tensor *t,
                      const float *base) {
    const parity_rec *r = parity_find(pc->recs, pc->n_recs, name);
    ck_assert_msg(r != NULL, "%s: no reference record %s", pc->label, name);
    float *got = tu_read(t);
    parity_err e = parity_compare(r, pc->idx, pc->val, got, base, stfpm_tensor_numel(t));
    free(got);
    if (g->agg) {
        if (!(e.samp <= g->worst_samp)) g->worst_samp = e.samp;
        if (isfinite(e.worst)) e.worst = fmax(e.sum, e.sumsq);
    }
    if (!note(g, name, e.worst))
        printf("FAIL %s %s: error %.3g > %.1g (RMS %.4g; samples %.3g, worst at %lld: got %.8g want %.8g; "
               "sum %.3g, sumsq %.3g)\n", pc->label, name, e.worst, g->tol, e.rms, e.samp, e.worst_index,
               e.worst_got, e.worst_want, e.sum, e.sumsq);
}

/* Read value, gradient and momentum buffer of every trainable parameter (before an SGD step). */
typedef struct host_param { float *w, *g, *v; size_t n; } host_param;

static void read_params(stfpm_resnet *net, host_param *hp, int with_grad) {
    for (int k = 0; k < stfpm_resnet_param_count(net); k++) {
        stfpm_param *p = stfpm_resnet_param(net, k);
        free(hp[k].w); free(hp[k].g); free(hp[k].v);
        memset(&hp[k], 0, sizeof hp[k]);
        hp[k].n = stfpm_tensor_numel(&p->value);
        hp[k].w = tu_read(&p->value);
        if (with_grad && p->grad.buf) {
            hp[k].g = tu_read(&p->grad);
            hp[k].v = tu_read(&p->momentum);
        }
    }
}

static void free_params(host_param *hp, int n) {
    for (int k = 0; k < n; k++) { free(hp[k].w); free(hp[k].g); free(hp[k].v); }
}

/* PyTorch SGD recomputed in double: g' = g + wd w; v = first ? g' : m v + g'; w -= lr v. */
static double check_sgd(stfpm_resnet *net, const host_param *before, int first) {
    double worst = 0;
    for (int k = 0; k < stfpm_resnet_param_count(net); k++) {
        stfpm_param *p = stfpm_resnet_param(net, k);
        if (!before[k].g) continue;
        float *w1 = tu_read(&p->value), *v1 = tu_read(&p->momentum);
        for (size_t i = 0; i < before[k].n; i++) {
            double w = before[k].w[i], g = before[k].g[i], v = before[k].v[i];
            double gp = g + PARITY_WD * w;
            double vn = first ? gp : PARITY_MOMENTUM * v + gp;
            double wn = w - PARITY_LR * vn;
            double ev = fabs(v1[i] - vn) / (PARITY_MOMENTUM * fabs(v) + fabs(g) + PARITY_WD * fabs(w) + 1e-30);
            /* w's rounding error includes lr times v's */
            double ew = fabs(w1[i] - wn) / (fabs(w) + PARITY_LR * (fabs(vn) + PARITY_MOMENTUM * fabs(v) + fabs(g) +
                                                                   PARITY_WD * fabs(w)) + 1e-30);
            double e = fmax(ev, ew);
            if (!(e <= worst)) {
                worst = isnan(e) ? INFINITY : e;
                if (!(e <= TOL_SGD))
                    printf("FAIL SGD step of %s[%zu]: w %.9g g %.9g v %.9g -> got w %.9g v %.9g, want w %.9g "
                           "v %.9g (first_step %d)\n", p->name, i, w, g, v, w1[i], v1[i], wn, vn, first);
            }
        }
        free(w1); free(v1);
    }
    return worst;
}

static void run_case(const parity_case *pc, const tolset *T) {
    stfpm_ctx *ctx = tu_ctx();
    double t0 = parity_now();
    group_max G[] = {
        {"features", T->feat, 0, 0, "", 0, 0, 0},
        {"loss step 1", T->loss0, 0, 0, "", 0, 0, 0},
        {"gradients", T->grad, 0, T->agg_grad, "", 0, 0, 0},
        {"BN running stats", T->stat, 0, 0, "", 0, 0, 0},
        {"params after step 1", T->step1, 0, T->agg_grad, "", 0, 0, 0},
        {"loss step 2", T->loss1, 0, 0, "", 0, 0, 0},
        {"loss later steps", T->loss_later, 0, 0, "", 0, 0, 0},
        {"params after last step", T->step_last, 0, 1, "", 0, 0, 0},
        {"SGD update (host recompute)", TOL_SGD, 0, 0, "", 0, 0, 0}};
    enum { G_FEAT, G_LOSS0, G_GRAD, G_STAT, G_STEP1, G_LOSS1, G_LOSSN, G_STEPN, G_SGD, G_COUNT };

    stfpm_resnet *teacher = NULL, *student = NULL;
    stfpm_pyramid *pyr = NULL;
    TU_CHECK_STATUS(stfpm_resnet_create(ctx, 3, STFPM_NET_FROZEN, &teacher));
    TU_CHECK_STATUS(stfpm_resnet_create(ctx, 3, STFPM_NET_TRAINABLE, &student));
    TU_CHECK_STATUS(stfpm_pyramid_create(ctx, &pyr));
    TU_CHECK_STATUS(parity_fill_net(ctx, teacher, "teacher"));
    TU_CHECK_STATUS(parity_fill_net(ctx, student, "student"));
    int np = stfpm_resnet_param_count(student);
    /* closed-form initial values (the base of the "step" records) */
    float **init = calloc(np, sizeof *init);
    for (int k = 0; k < np; k++) {
        stfpm_param *p = stfpm_resnet_param(student, k);
        init[k] = malloc(stfpm_tensor_numel(&p->value) * sizeof(float));
        parity_closed_form("student", p, init[k]);
    }
    size_t nx = (size_t)pc->n * 3 * pc->h * pc->w;
    float *xh = malloc(nx * sizeof *xh);
    parity_fill_input(xh, pc->n, pc->h, pc->w, pc->variant);
    stfpm_tensor x = tu_tensor(xh, pc->n, 3, pc->h, pc->w);
    free(xh);
    double t_setup = parity_now() - t0;

    /* forward passes in eval mode */
    double t1 = parity_now();
    stfpm_tensor tf[4], sf[4];
    char name[160];
    TU_CHECK_STATUS(stfpm_resnet_forward(ctx, teacher, &x, STFPM_BN_EVAL, 3, tf));
    for (int l = 0; l < 3; l++) {
        snprintf(name, sizeof name, "teacher_eval.layer%d", l + 1);
        check_rec(pc, &G[G_FEAT], name, &tf[l], NULL);
    }
    TU_CHECK_STATUS(stfpm_resnet_forward(ctx, student, &x, STFPM_BN_EVAL, 3, sf));
    for (int l = 0; l < 3; l++) {
        snprintf(name, sizeof name, "student_eval.layer%d", l + 1);
        check_rec(pc, &G[G_FEAT], name, &sf[l], NULL);
    }
    double t_eval = parity_now() - t1;

    /* the pair forward used at inference (conv1's im2col shared) gives exactly the same features */
    {
        float *want_t[3], *want_s[3];
        for (int l = 0; l < 3; l++) {
            want_t[l] = tu_read(&tf[l]);
            want_s[l] = tu_read(&sf[l]);
        }
        stfpm_tensor pt[4], ps[4];
        TU_CHECK_STATUS(stfpm_resnet_forward_eval_pair(ctx, teacher, student, &x, 3, pt, ps));
        for (int l = 0; l < 3; l++) {
            float *gt = tu_read(&pt[l]), *gs = tu_read(&ps[l]);
            size_t cnt = stfpm_tensor_numel(&pt[l]);
            ck_assert_msg(memcmp(gt, want_t[l], cnt * sizeof(float)) == 0,
                          "%s: pair forward, teacher layer%d differs from the single forward", pc->label, l + 1);
            ck_assert_msg(memcmp(gs, want_s[l], cnt * sizeof(float)) == 0,
                          "%s: pair forward, student layer%d differs from the single forward", pc->label, l + 1);
            free(gt); free(gs); free(want_t[l]); free(want_s[l]);
        }
        for (int l = 0; l < 3; l++) { tf[l] = pt[l]; sf[l] = ps[l]; }
    }

    /* training steps */
    host_param *hp = calloc(np, sizeof *hp);
    double t_train = 0, losses[PARITY_MAX_STEPS] = {0};
    for (int step = 0; step < pc->n_steps; step++) {
        double ts = parity_now();
        float loss = 0, per[3] = {0};
        TU_CHECK_STATUS(stfpm_resnet_forward(ctx, student, &x, STFPM_BN_TRAIN, 3, sf));
        TU_CHECK_STATUS(stfpm_pyramid_loss(ctx, pyr, 3, tf, sf, STFPM_LOSS_WITH_GRAD, &loss, per));
        const stfpm_tensor *df[4] = {stfpm_pyramid_grad(pyr, 0), stfpm_pyramid_grad(pyr, 1),
                                     stfpm_pyramid_grad(pyr, 2), NULL};
        TU_CHECK_STATUS(stfpm_resnet_backward(ctx, student, df));
        TU_CHECK_STATUS(stfpm_finish(ctx));
        t_train += parity_now() - ts;
        losses[step] = loss;

        double le = fabs(loss - pc->loss[step]) / pc->loss[step];
        group_max *lg = step == 0 ? &G[G_LOSS0] : step == 1 ? &G[G_LOSS1] : &G[G_LOSSN];
        snprintf(name, sizeof name, "loss before step %d", step + 1);
        if (!note(lg, name, le))
            printf("FAIL %s %s: %.9g, want %.9g (rel. error %.3g > %.1g)\n", pc->label, name, loss,
                   pc->loss[step], le, lg->tol);
        if (step == 0) {
            for (int l = 0; l < 3; l++) {
                double pe = fabs(per[l] - pc->per_level[0][l]) / pc->per_level[0][l];
                snprintf(name, sizeof name, "loss level %d", l + 1);
                if (!note(&G[G_LOSS0], name, pe))
                    printf("FAIL %s %s: %.9g want %.9g (rel. %.3g)\n", pc->label, name, per[l],
                           pc->per_level[0][l], pe);
                snprintf(name, sizeof name, "student_train.layer%d", l + 1);
                check_rec(pc, &G[G_FEAT], name, &sf[l], NULL);
            }
            for (int k = 0; k < np; k++) {
                stfpm_param *p = stfpm_resnet_param(student, k);
                if (p->grad.buf) {
                    snprintf(name, sizeof name, "grad.%s", p->name);
                    check_rec(pc, &G[G_GRAD], name, &p->grad, NULL);
                }
                if (p->kind == STFPM_PARAM_BN_MEAN || p->kind == STFPM_PARAM_BN_VAR) {
                    snprintf(name, sizeof name, "stat1.%s", p->name);
                    check_rec(pc, &G[G_STAT], name, &p->value, NULL);
                }
            }
        }
        read_params(student, hp, 1);
        ts = parity_now();
        TU_CHECK_STATUS(stfpm_resnet_sgd_step(ctx, student, PARITY_LR, PARITY_MOMENTUM, PARITY_WD,
                                              step == 0 ? STFPM_SGD_FIRST_STEP : STFPM_SGD_CONTINUE));
        TU_CHECK_STATUS(stfpm_finish(ctx));
        t_train += parity_now() - ts;
        double se = check_sgd(student, hp, step == 0);
        snprintf(name, sizeof name, "SGD step %d", step + 1);
        note(&G[G_SGD], name, se);

        int last = step == pc->n_steps - 1;
        if (step == 0 || (last && step > 0)) {
            for (int k = 0; k < np; k++) {
                stfpm_param *p = stfpm_resnet_param(student, k);
                snprintf(name, sizeof name, "step%d.%s", step + 1, p->name);
                check_rec(pc, step == 0 ? &G[G_STEP1] : &G[G_STEPN], name, &p->value, init[k]);
            }
        }
    }

    /* Eval forward after training, BN folded into the convolutions (the default; the fold made
     * by the first eval forward above must have been invalidated by the SGD steps and the
     * train-mode forwards) vs conv, BN, add and ReLU as separate ops (the fold_bn option off). Both are
     * float32; they differ by rounding only: max |diff| <= 1e-4 * RMS of the layer. */
    {
        double worst[3], rms[3];
        parity_fold_diff(ctx, student, &x, worst, rms);
        for (int l = 0; l < 3; l++) {
            printf("  folded vs unfolded eval forward after training, layer%d: max |diff| %.3g (rms %.3g)\n",
                   l + 1, worst[l], rms[l]);
            ck_assert_msg(rms[l] > 0 && worst[l] <= 1e-4 * rms[l],
                          "%s: student eval layer%d with BN folded differs from the unfolded path by %.3g "
                          "(rms %.3g, tolerance 1e-4 of rms)", pc->label, l + 1, worst[l], rms[l]);
        }
    }

    printf("parity %s (input %dx3x%dx%d, variant %d, ReLU margin %.2g): setup %.1f s, eval forwards %.1f s, "
           "%d training steps %.1f s, total %.1f s\n", pc->label, pc->n, pc->h, pc->w, pc->variant,
           pc->relu_margin, t_setup, t_eval, pc->n_steps, t_train, parity_now() - t0);
    printf("  losses:");
    for (int s = 0; s < pc->n_steps; s++) printf(" %.7f (ref %.7f)", losses[s], pc->loss[s]);
    printf("\n");
    for (int i = 0; i < G_COUNT; i++)
        if (G[i].count) {
            printf("  %-28s max error %.3g (tol %.1g, %d compared, %d failed; worst: %s)", G[i].name,
                   G[i].worst, G[i].tol, G[i].count, G[i].failed, G[i].what);
            if (G[i].agg) printf(" [sum / sumsq only; samples max %.3g, not held]", G[i].worst_samp);
            printf("\n");
        }
    fflush(stdout);
    int failed = 0;
    for (int i = 0; i < G_COUNT; i++) failed += G[i].failed;
    if (G[G_GRAD].failed)
        printf("  note: gradient errors of 1e-2 .. 1 confined to the layers below one block (those above it "
               "within 1e-4) are the signature of a ReLU input that float32 rounding put on the other side of 0 "
               "(see the comment at the top of %s)\n", __FILE__);
    ck_assert_msg(failed == 0, "%s: %d comparisons out of tolerance (listed above)", pc->label, failed);

    free_params(hp, np);
    free(hp);
    for (int k = 0; k < np; k++) free(init[k]);
    free(init);
    stfpm_tensor_free(ctx, &x);
    stfpm_pyramid_free(ctx, pyr);
    stfpm_resnet_free(ctx, teacher);
    stfpm_resnet_free(ctx, student);
}

START_TEST(test_parity_b2_64) { run_case(&parity_case_b2_64, &TOL_EXACT); }
END_TEST

START_TEST(test_parity_b1_128) { run_case(&parity_case_b1_128, &TOL_EXACT); }
END_TEST

START_TEST(test_parity_b1_256) { run_case(&parity_case_b1_256, &TOL_256); }
END_TEST

int main(void) {
    Suite *s = suite_create("parity_resnet");
    TCase *tc = tcase_create("closed_form");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_parity_b2_64);
    tcase_add_test(tc, test_parity_b1_128);
    tcase_add_test(tc, test_parity_b1_256);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
