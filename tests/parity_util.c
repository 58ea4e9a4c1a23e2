/* Closed-form weights / input shared with tests/ref/gen_parity.py, and the record comparison.
 * Every value is computed in double with the same operations, in the same order, as the Python
 * generator (which uses math.sin / math.fmod, i.e. the same libm), then cast to float32. */
#include "parity_util.h"
#include "testutil.h"
#include "tu_options.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint32_t parity_fnv1a32(const char *s) {
    uint32_t h = 0x811C9DC5u;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 0x01000193u;
    }
    return h;
}

double parity_phase(const char *role, const char *name) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s.%s", role, name);
    return (double)(parity_fnv1a32(buf) % 10007u) / 10007.0 * 6.283185307179586;
}

void parity_closed_form(const char *role, const stfpm_param *p, float *out) {
    size_t n = stfpm_tensor_numel(&p->value);
    double ph = parity_phase(role, p->name);
    switch (p->kind) {
    case STFPM_PARAM_CONV: {
        double scale = sqrt(2.0 / (double)(p->shape[0] * p->shape[2] * p->shape[3])) * 1.7;
        for (size_t i = 0; i < n; i++) {
            double di = (double)i;
            out[i] = (float)(scale * sin(0.731 * di + 1e-4 * di * di + ph));
        }
        break;
    }
    case STFPM_PARAM_BN_WEIGHT:
        for (size_t i = 0; i < n; i++) out[i] = (float)(1.0 + 0.2 * sin(0.37 * (double)i + ph));
        break;
    case STFPM_PARAM_BN_BIAS:
        for (size_t i = 0; i < n; i++) out[i] = (float)(0.1 * sin(0.53 * (double)i + ph));
        break;
    case STFPM_PARAM_BN_MEAN:
        for (size_t i = 0; i < n; i++) out[i] = (float)(0.1 * sin(0.29 * (double)i + ph));
        break;
    case STFPM_PARAM_BN_VAR:
        for (size_t i = 0; i < n; i++) out[i] = (float)(1.0 + 0.5 * (1.0 + sin(0.41 * (double)i + ph)) / 2.0);
        break;
    }
}

stfpm_status parity_fill_net(stfpm_ctx *ctx, stfpm_resnet *net, const char *role) {
    for (int k = 0; k < stfpm_resnet_param_count(net); k++) {
        stfpm_param *p = stfpm_resnet_param(net, k);
        float *h = malloc(stfpm_tensor_numel(&p->value) * sizeof *h);
        if (!h) return stfpm_set_error(STFPM_ERR_OOM, "parity: out of host memory");
        parity_closed_form(role, p, h);
        stfpm_status s = stfpm_tensor_write(ctx, &p->value, h);
        free(h);
        STFPM_TRY(s);
    }
    stfpm_resnet_params_changed(net);
    return STFPM_OK;
}

void parity_fill_input(float *x, int n, int h, int w, int variant) {
    size_t cnt = (size_t)n * 3 * h * w;
    double phi = 0.3 + 0.37 * (double)variant;
    for (size_t i = 0; i < cnt; i++) {
        double di = (double)i;
        x[i] = (float)(1.5 * sin(0.0123 * di + phi) + 0.5 * sin(fmod(0.00071 * di * di, 6.283)));
    }
}

const parity_rec *parity_find(const parity_rec *recs, int n_recs, const char *name) {
    for (int i = 0; i < n_recs; i++)
        if (strcmp(recs[i].name, name) == 0) return &recs[i];
    return NULL;
}

parity_err parity_compare(const parity_rec *r, const int32_t *idx, const float *val, const float *got,
                          const float *base, size_t numel) {
    parity_err e;
    memset(&e, 0, sizeof e);
    e.worst_index = -1;
    if ((long long)numel != r->numel) {
        e.worst = e.samp = INFINITY;
        return e;
    }
    double rms = r->sumsq > 0 ? sqrt(r->sumsq / (double)r->numel) : 1.0;
    e.rms = rms;
    double s = 0, ss = 0;
    int finite = 1;
    for (size_t i = 0; i < numel; i++) {
        double v = (double)got[i] - (base ? (double)base[i] : 0.0);
        if (!isfinite(v)) finite = 0;
        s += v;
        ss += v * v;
    }
    for (int j = 0; j < r->n_samp; j++) {
        long long i = idx[r->off + j];
        double v = (double)got[i] - (base ? (double)base[i] : 0.0);
        double want = (double)val[r->off + j];
        double err = fabs(v - want) / rms;
        if (!(err <= e.samp)) {   /* NaN counts as worst */
            e.samp = isnan(err) ? INFINITY : err;
            e.worst_index = i;
            e.worst_got = v;
            e.worst_want = want;
        }
    }
    e.sum = fabs(s - r->sum) / ((double)r->numel * rms);
    e.sumsq = r->sumsq > 0 ? fabs(ss - r->sumsq) / (2.0 * r->sumsq) : sqrt(ss);
    e.worst = finite ? fmax(e.samp, fmax(e.sum, e.sumsq)) : INFINITY;
    return e;
}

double parity_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void parity_fold_diff(stfpm_ctx *ctx, stfpm_resnet *net, const stfpm_tensor *x, double worst[3], double rms[3]) {
    stfpm_tensor f[4];
    float *folded[3];
    TU_CHECK_STATUS(stfpm_resnet_forward(ctx, net, x, STFPM_BN_EVAL, 3, f));
    for (int l = 0; l < 3; l++) folded[l] = tu_read(&f[l]);
    tu_set_fold_bn(STFPM_SWITCH_OFF);
    TU_CHECK_STATUS(stfpm_resnet_forward(ctx, net, x, STFPM_BN_EVAL, 3, f));
    tu_reset_options();
    for (int l = 0; l < 3; l++) {
        float *plain = tu_read(&f[l]);
        size_t cnt = stfpm_tensor_numel(&f[l]);
        double ss = 0, w = 0;
        for (size_t i = 0; i < cnt; i++) ss += (double)plain[i] * plain[i];
        for (size_t i = 0; i < cnt; i++) {
            double d = fabs((double)folded[l][i] - plain[i]);
            if (!(d <= w)) w = d;   /* NaN counts as worst */
        }
        worst[l] = w;
        rms[l] = sqrt(ss / (double)cnt);
        free(plain);
        free(folded[l]);
    }
}
