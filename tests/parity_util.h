/* PyTorch parity helpers: the closed-form weights and input that tests/ref/gen_parity.py computes
 * identically in Python, and the comparison of a device tensor with a sampled reference record
 * (tests/ref/parity_ref.h, tests/ref/parity_real_ref.h). */
#ifndef STFPM_PARITY_UTIL_H
#define STFPM_PARITY_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "stfpm/stfpm.h"
#include "stfpm/resnet.h"

/* One reference tensor: full-tensor sum and sum of squares (double) plus n_samp sampled values
 * val[off + j] at flat indices idx[off + j] (row-major, NCHW for features). For "step" records the
 * tensor is the change of a parameter from its closed-form initial value. */
typedef struct parity_rec {
    const char *name;
    long long numel;
    double sum, sumsq;
    int n_samp, off;
} parity_rec;

#define PARITY_MAX_STEPS 3

/* One closed-form configuration of tests/ref/parity_ref.h. */
typedef struct parity_case {
    const char *label;
    int n, h, w;
    int variant;                 /* input variant (phase offset) chosen for its ReLU margin */
    double relu_margin;          /* smallest |ReLU input| / RMS (and max-pool top-2 gap) of the
                                    student's first train forward in float64 */
    int n_steps;                 /* SGD steps whose loss is recorded */
    double loss[PARITY_MAX_STEPS];           /* L before step k (train-mode student) */
    double per_level[PARITY_MAX_STEPS][3];
    const parity_rec *recs;
    int n_recs;
    const int32_t *idx;
    const float *val;
} parity_case;

/* FNV-1a 32-bit over the bytes of s. */
uint32_t parity_fnv1a32(const char *s);
/* (fnv1a32("<role>.<name>") % 10007) / 10007 * 2 pi */
double parity_phase(const char *role, const char *name);
/* Closed-form value of every element of parameter p (torchvision name p->name) for role
 * "teacher" or "student", into out (numel floats). */
void parity_closed_form(const char *role, const stfpm_param *p, float *out);
/* Write the closed-form values into every parameter and BN statistic of net. */
stfpm_status parity_fill_net(stfpm_ctx *ctx, stfpm_resnet *net, const char *role);
/* Closed-form input (n, 3, h, w), flat index i:
 * 1.5 sin(0.0123 i + 0.3 + 0.37 variant) + 0.5 sin(fmod(0.00071 i^2, 6.283)). */
void parity_fill_input(float *x, int n, int h, int w, int variant);

/* Record by name (NULL when absent). */
const parity_rec *parity_find(const parity_rec *recs, int n_recs, const char *name);

/* Compare got (numel floats; minus base when base != NULL) with record r. Errors are relative to
 * the reference RMS = sqrt(sumsq / numel):
 *   samp  = max_j |got[idx_j] - val_j| / RMS
 *   sum   = |sum(got) - sum| / (numel RMS)            (bound implied by samp-sized element errors)
 *   sumsq = |sumsq(got) - sumsq| / (2 sumsq)          (likewise)
 * worst = max(samp, sum, sumsq) (INFINITY when got holds a NaN / Inf); worst_* describe the worst
 * sample. */
typedef struct parity_err {
    double samp, sum, sumsq, worst;
    long long worst_index;
    double worst_got, worst_want, rms;
} parity_err;
parity_err parity_compare(const parity_rec *r, const int32_t *idx, const float *val, const float *got,
                          const float *base, size_t numel);

/* Seconds since an arbitrary origin (monotonic). */
double parity_now(void);

/* Eval forwards of net on x to layer3 with BN folded into the convolutions (the default) and
 * with the fold_bn option off (conv, BN, add, ReLU as separate ops); for layer l, worst[l - 1] =
 * max |folded - unfolded| and rms[l - 1] = RMS of the unfolded output. Check-asserts the forwards. */
void parity_fold_diff(stfpm_ctx *ctx, stfpm_resnet *net, const stfpm_tensor *x, double worst[3], double rms[3]);

#endif
