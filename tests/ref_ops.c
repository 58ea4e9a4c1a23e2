/* CPU references of the device ops (see ref_ops.h). Straightforward loops, double accumulation. */
#include "ref_ops.h"

#include <math.h>
#include <stdlib.h>

/* ------------------------------------------------------------------------------------------ */
/* batch norm */

void ref_batchnorm_forward_train_d(const double *x, int n, int c, int h, int w, const double *weight,
                                   const double *bias, double *running_mean, double *running_var,
                                   double momentum, double eps, double *y, double *save_mean,
                                   double *save_invstd) {
    size_t hw = (size_t)h * w, m = (size_t)n * hw;
    for (int ch = 0; ch < c; ch++) {
        double s = 0;
        for (int b = 0; b < n; b++)
            for (size_t i = 0; i < hw; i++) s += x[((size_t)b * c + ch) * hw + i];
        double mean = s / (double)m, q = 0;
        for (int b = 0; b < n; b++)
            for (size_t i = 0; i < hw; i++) {
                double d = x[((size_t)b * c + ch) * hw + i] - mean;
                q += d * d;
            }
        double var = q / (double)m, invstd = 1.0 / sqrt(var + eps);
        for (int b = 0; b < n; b++)
            for (size_t i = 0; i < hw; i++) {
                size_t k = ((size_t)b * c + ch) * hw + i;
                y[k] = (x[k] - mean) * invstd * weight[ch] + bias[ch];
            }
        if (save_mean) save_mean[ch] = mean;
        if (save_invstd) save_invstd[ch] = invstd;
        if (running_mean) running_mean[ch] = (1 - momentum) * running_mean[ch] + momentum * mean;
        if (running_var)
            running_var[ch] = (1 - momentum) * running_var[ch] + momentum * q / (double)(m - 1);
    }
}

static double *to_d(const float *x, size_t n) {
    if (!x) return NULL;
    double *d = malloc((n ? n : 1) * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static void from_d(float *out, double *d, size_t n) {
    if (out && d)
        for (size_t i = 0; i < n; i++) out[i] = (float)d[i];
    free(d);
}

void ref_batchnorm_forward_train(const float *x, int n, int c, int h, int w, const float *weight,
                                 const float *bias, float *running_mean, float *running_var,
                                 float momentum, float eps, float *y, float *save_mean,
                                 float *save_invstd) {
    size_t cnt = (size_t)n * c * h * w;
    double *xd = to_d(x, cnt), *wd = to_d(weight, c), *bd = to_d(bias, c);
    double *rm = to_d(running_mean, c), *rv = to_d(running_var, c);
    double *yd = malloc(cnt * sizeof *yd), *sm = malloc(c * sizeof *sm), *si = malloc(c * sizeof *si);
    ref_batchnorm_forward_train_d(xd, n, c, h, w, wd, bd, rm, rv, momentum, eps, yd, sm, si);
    from_d(y, yd, cnt);
    from_d(save_mean, sm, c);
    from_d(save_invstd, si, c);
    from_d(running_mean, rm, c);
    from_d(running_var, rv, c);
    free(xd); free(wd); free(bd);
}

void ref_batchnorm_forward_eval(const float *x, int n, int c, int h, int w, const float *weight,
                                const float *bias, const float *running_mean, const float *running_var,
                                float eps, float *y) {
    size_t hw = (size_t)h * w;
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++) {
            double invstd = 1.0 / sqrt((double)running_var[ch] + eps);
            for (size_t i = 0; i < hw; i++) {
                size_t k = ((size_t)b * c + ch) * hw + i;
                y[k] = (float)(((double)x[k] - running_mean[ch]) * invstd * weight[ch] + bias[ch]);
            }
        }
}

void ref_batchnorm_backward_d(const double *x, const double *dy, int n, int c, int h, int w,
                              const double *weight, const double *save_mean, const double *save_invstd,
                              double *dx, double *dweight, double *dbias) {
    size_t hw = (size_t)h * w, m = (size_t)n * hw;
    for (int ch = 0; ch < c; ch++) {
        double mean = save_mean[ch], is = save_invstd[ch], sdy = 0, sdyx = 0;
        for (int b = 0; b < n; b++)
            for (size_t i = 0; i < hw; i++) {
                size_t k = ((size_t)b * c + ch) * hw + i;
                sdy += dy[k];
                sdyx += dy[k] * (x[k] - mean) * is;
            }
        if (dweight) dweight[ch] = sdyx;
        if (dbias) dbias[ch] = sdy;
        for (int b = 0; b < n; b++)
            for (size_t i = 0; i < hw; i++) {
                size_t k = ((size_t)b * c + ch) * hw + i;
                double xhat = (x[k] - mean) * is;
                dx[k] = is * weight[ch] * (dy[k] - sdy / (double)m - xhat * sdyx / (double)m);
            }
    }
}

void ref_batchnorm_backward(const float *x, const float *dy, int n, int c, int h, int w,
                            const float *weight, const float *save_mean, const float *save_invstd,
                            float *dx, float *dweight, float *dbias) {
    size_t cnt = (size_t)n * c * h * w;
    double *xd = to_d(x, cnt), *dyd = to_d(dy, cnt), *wd = to_d(weight, c);
    double *sm = to_d(save_mean, c), *si = to_d(save_invstd, c);
    double *dxd = malloc(cnt * sizeof *dxd), *dwd = malloc(c * sizeof *dwd), *dbd = malloc(c * sizeof *dbd);
    ref_batchnorm_backward_d(xd, dyd, n, c, h, w, wd, sm, si, dxd, dwd, dbd);
    from_d(dx, dxd, cnt);
    if (dweight) from_d(dweight, dwd, c); else free(dwd);
    if (dbias) from_d(dbias, dbd, c); else free(dbd);
    free(xd); free(dyd); free(wd); free(sm); free(si);
}

/* ------------------------------------------------------------------------------------------ */
/* element-wise */

void ref_relu_forward(const float *x, size_t count, float *y) {
    for (size_t i = 0; i < count; i++) y[i] = x[i] < 0 ? 0.0f : x[i];   /* NaN propagates */
}

void ref_relu_backward(const float *y, const float *dy, size_t count, float *dx) {
    for (size_t i = 0; i < count; i++) dx[i] = y[i] > 0 ? dy[i] : 0.0f;
}

void ref_add(const float *a, const float *b, size_t count, float *y) {
    for (size_t i = 0; i < count; i++) y[i] = (float)((double)a[i] + b[i]);
}

void ref_mul(const float *a, const float *b, size_t count, float *y) {
    for (size_t i = 0; i < count; i++) y[i] = (float)((double)a[i] * b[i]);
}

void ref_axpy(float alpha, const float *x, size_t count, float *y) {
    for (size_t i = 0; i < count; i++) y[i] = (float)((double)alpha * x[i] + y[i]);
}

void ref_scale(float alpha, float *x, size_t count) {
    for (size_t i = 0; i < count; i++) x[i] = (float)((double)alpha * x[i]);
}

/* ------------------------------------------------------------------------------------------ */
/* reductions */

void ref_reduce_max(const float *x, int n, size_t len, float *out) {
    for (int b = 0; b < n; b++) {
        float m = -INFINITY;
        for (size_t i = 0; i < len; i++) {
            float v = x[(size_t)b * len + i];
            if (isnan(v) || v > m) m = v;
            if (isnan(m)) break;
        }
        out[b] = m;
    }
}

void ref_reduce_mean(const float *x, int n, size_t len, float *out) {
    for (int b = 0; b < n; b++) {
        double s = 0;
        for (size_t i = 0; i < len; i++) s += x[(size_t)b * len + i];
        out[b] = (float)(s / (double)len);
    }
}

float ref_reduce_mean_all(const float *x, size_t count) {
    double s = 0;
    for (size_t i = 0; i < count; i++) s += x[i];
    return (float)(s / (double)count);
}

/* ------------------------------------------------------------------------------------------ */
/* SGD */

void ref_sgd_step(float *w, const float *g, float *v, size_t count, float lr, float momentum,
                  float weight_decay, int first_step) {
    for (size_t i = 0; i < count; i++) {
        double d = (double)g[i] + (double)weight_decay * w[i];
        if (v) {
            if (!first_step) d += (double)momentum * v[i];
            v[i] = (float)d;
        }
        w[i] = (float)((double)w[i] - (double)lr * d);
    }
}
