/* What a context on a device runs with, as "key: value" lines (read by bench/gpu_check.sh):
 *   bench_info [--device SEL]
 * device, platform, driver, OpenCL version, type, compute units, global memory, largest buffer,
 * work-group limit, sub-buffer alignment, kernel variant, CLBlast parameter source and spec. */
#include "stfpm/tune.h"
#include "runtime.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    stfpm_ctx_options o = {0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) o.device = argv[++i];
        else {
            fprintf(stderr, "usage: bench_info [--device SEL]\n");
            return 2;
        }
    }
    stfpm_ctx *ctx = NULL;
    if (stfpm_ctx_create(&ctx, &o) != STFPM_OK) {
        fprintf(stderr, "bench_info: %s\n", stfpm_last_error());
        return 1;
    }
    const stfpm_device_info *d = stfpm_ctx_device(ctx);
    size_t wg = 0;
    clGetDeviceInfo(stfpm_ctx_cl_device(ctx), CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    char spec[1024], note[768];
    printf("device: %s\n", d->device_name);
    printf("platform: %s\n", d->platform_name);
    printf("driver: %s\n", d->driver_version);
    printf("opencl: %s\n", d->device_version);
    printf("type: %s\n", d->type & CL_DEVICE_TYPE_GPU ? "GPU" : d->type & CL_DEVICE_TYPE_CPU ? "CPU" : "other");
    printf("compute units: %u\n", d->compute_units);
    printf("global memory: %.0f MiB\n", d->global_mem / 1048576.0);
    printf("largest buffer: %.0f MiB\n", d->max_alloc / 1048576.0);
    printf("max work-group: %zu\n", wg);
    printf("sub-buffer alignment: %zu bytes\n", stfpm_sub_buffer_align(ctx));
    printf("fp16: %s\n", d->has_fp16 ? "yes" : "no");
    printf("kernels: %s\n", stfpm_kernels_name(stfpm_ctx_get_options(ctx)->kernels));
    printf("clblast parameters: %s\n", stfpm_clblast_tuning_source(ctx));
    printf("clblast spec: %s\n", stfpm_clblast_tuning_spec(ctx, spec, sizeof spec)[0] ? spec : "(CLBlast's own)");
    if (stfpm_clblast_tuning_note(ctx, note, sizeof note)[0]) printf("clblast note: %s\n", note);
    stfpm_ctx_free(ctx);
    return 0;
}
