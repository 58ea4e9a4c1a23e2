/* Parallel decoding + preprocessing of samples (pthreads). */
#include "stfpm/pipeline.h"
#include "stfpm/image.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const stfpm_sample *samples;
    const int *index;
    int n, S;
    float *chw;
    uint8_t *masks;
    int next;
    pthread_mutex_t mu;
    stfpm_status status;
    char msg[2048];
} job;

static void *worker(void *arg) {
    job *j = arg;
    size_t per = (size_t)3 * j->S * j->S;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        int i = j->status == STFPM_OK ? j->next++ : j->n;
        pthread_mutex_unlock(&j->mu);
        if (i >= j->n) break;
        int k = j->index ? j->index[i] : i;
        stfpm_status s = stfpm_dataset_load_sample(&j->samples[k], j->S, j->chw + per * i,
                                                   j->masks ? j->masks + (size_t)j->S * j->S * i : NULL);
        if (s != STFPM_OK) {
            pthread_mutex_lock(&j->mu);
            if (j->status == STFPM_OK) {
                j->status = s;
                snprintf(j->msg, sizeof j->msg, "%s", stfpm_last_error());
            }
            pthread_mutex_unlock(&j->mu);
        }
    }
    return NULL;
}

stfpm_status stfpm_load_samples(const stfpm_sample *samples, const int *index, int n, int S, float *chw,
                                uint8_t *masks, int threads) {
    if (threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        threads = c > 0 ? (int)c : 1;
    }
    if (threads > 16) threads = 16;
    if (threads > n) threads = n > 0 ? n : 1;
    job j = {.samples = samples, .index = index, .n = n, .S = S, .chw = chw, .masks = masks};
    pthread_mutex_init(&j.mu, NULL);
    pthread_t th[16];
    int started = 0;
    for (int t = 1; t < threads; t++)
        if (pthread_create(&th[started], NULL, worker, &j) == 0) started++;
    worker(&j);
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    pthread_mutex_destroy(&j.mu);
    if (j.status != STFPM_OK) return stfpm_set_error(j.status, "%s", j.msg);
    return STFPM_OK;
}
