/* stfpm_ctx_create: options resolved once (host/options.c), the OpenCL context
 * (host/runtime.c), then the CLBlast parameters of its device (host/clblast_params.c). */
#include "clblast_params.h"
#include "runtime.h"

stfpm_status stfpm_ctx_create(stfpm_ctx **out, const stfpm_ctx_options *opt) {
    *out = NULL;
    stfpm_ctx_options o = {0};
    if (opt) o = *opt;
    STFPM_TRY(stfpm_ctx_options_resolve(&o));
    stfpm_ctx *ctx = NULL;
    STFPM_TRY(stfpm_runtime_create(&ctx, &o));
    stfpm_status s = stfpm_clblast_apply_tuning(ctx);
    if (s != STFPM_OK) {
        stfpm_ctx_free(ctx);
        return s;
    }
    *out = ctx;
    return STFPM_OK;
}
