/* Changing the shared test context's engine options (stfpm_ctx_set_options) for one case. */
#ifndef STFPM_TU_OPTIONS_H
#define STFPM_TU_OPTIONS_H

#include "stfpm/stfpm.h"

/* Each sets one option of tu_ctx() and fails the test when the context refuses it. */
void tu_set_conv_algo(stfpm_conv_algo_choice a);
void tu_set_conv_chunk_bytes(size_t bytes);   /* 0: the default */
void tu_set_fold_bn(stfpm_switch s);
void tu_set_fused_map(stfpm_switch s);
/* Back to the engine defaults (not the environment). */
void tu_reset_options(void);

#endif
