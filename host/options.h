/* Context options (host/options.c): the environment layer and the names of the choices. */
#ifndef STFPM_OPTIONS_H
#define STFPM_OPTIONS_H

#include "stfpm/stfpm.h"

#define STFPM_WINO_MIN_TILES_DEFAULT 48

/* stfpm_ctx_options_resolve with an explicit environment: a NULL-terminated list of
 * "NAME=VALUE" strings (the tests pass their own). */
stfpm_status stfpm_ctx_options_resolve_env(stfpm_ctx_options *o, const char *const *env);
/* Defaults for the fields still unset (no environment). */
void stfpm_ctx_options_fill_defaults(stfpm_ctx_options *o);

stfpm_status stfpm_conv_algo_parse(const char *s, stfpm_conv_algo_choice *out);
const char *stfpm_conv_algo_name(stfpm_conv_algo_choice a);
stfpm_status stfpm_kernels_parse(const char *s, stfpm_kernels *out);
stfpm_status stfpm_gemm_parse(const char *s, stfpm_gemm_choice *out);

/* Where to look for teacher weights when none is given (stfpm_find_teacher): STFPM_TEACHER
 * (NULL when unset), and torch's hub checkpoint directory ($TORCH_HOME/hub/checkpoints, else
 * ~/.cache/torch/hub/checkpoints). */
const char *stfpm_env_teacher(void);
void stfpm_env_torch_checkpoints(char *out, size_t n);

#endif
