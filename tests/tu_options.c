#include "tu_options.h"
#include "testutil.h"

#include <check.h>

static void apply(const stfpm_ctx_options *o) {
    stfpm_status s = stfpm_ctx_set_options(tu_ctx(), o);
    ck_assert_msg(s == STFPM_OK, "stfpm_ctx_set_options: %s", stfpm_last_error());
}

#define TU_SET(field, value)                                             \
    do {                                                                 \
        stfpm_ctx_options o = *stfpm_ctx_get_options(tu_ctx());          \
        o.field = (value);                                               \
        apply(&o);                                                       \
    } while (0)

void tu_set_conv_algo(stfpm_conv_algo_choice a) { TU_SET(conv_algo, a); }
void tu_set_conv_chunk_bytes(size_t bytes) { TU_SET(conv_chunk_bytes, bytes); }
void tu_set_fold_bn(stfpm_switch s) { TU_SET(fold_bn, s); }
void tu_set_fused_map(stfpm_switch s) { TU_SET(fused_map, s); }

void tu_reset_options(void) {
    stfpm_ctx_options o = *stfpm_ctx_get_options(tu_ctx());
    o.conv_algo = STFPM_CONV_ALGO_AUTO;
    o.fold_bn = o.fused_map = STFPM_SWITCH_UNSET;
    o.conv_chunk_bytes = o.wino_chunk_bytes = 0;
    o.wino_min_tiles = 0;
    apply(&o);
}
