/* CLBlast parameters of a context's device (host/clblast_params.c; the public part, including
 * the tuned file's format, is include/stfpm/tune.h). */
#ifndef STFPM_CLBLAST_PARAMS_H
#define STFPM_CLBLAST_PARAMS_H

#include "stfpm/stfpm.h"

/* Apply the parameters for ctx's device: the clblast_params option ("default" or a spec),
 * else the file `stfpm tune` stored in the cache directory for this device and driver, else
 * the built-in table, else CLBlast's defaults. Called once by stfpm_ctx_create. */
stfpm_status stfpm_clblast_apply_tuning(stfpm_ctx *ctx);
/* Override one CLBlast kernel's parameters (names / values arrays). */
stfpm_status stfpm_clblast_override(stfpm_ctx *ctx, const char *kernel, size_t count,
                                    const char **names, const size_t *values);

#endif
