/* The built-in demo data set: synthetic textures with defects and exact masks, MVTec AD layout. */
#ifndef STFPM_DEMO_H
#define STFPM_DEMO_H
#include <stdint.h>
#include "stfpm/stfpm.h"
#ifdef __cplusplus
extern "C" {
#endif
typedef struct stfpm_demo_options {
    int size;          /* image side in pixels */
    int n_train, n_test_good, n_test_bad;
    uint64_t seed;
} stfpm_demo_options;
void stfpm_demo_options_default(stfpm_demo_options *o);
/* Writes DIR/train/good, DIR/test/<good|defect>, DIR/ground_truth/<defect>. Deterministic by seed. */
stfpm_status stfpm_demo_generate(const char *dir, const stfpm_demo_options *o);
#ifdef __cplusplus
}
#endif
#endif
