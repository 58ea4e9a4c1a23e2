/* Error recording: one thread-local message, one helper naming OpenCL error codes. */
#include "runtime.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char g_msg[4096] = "no error";

const char *stfpm_last_error(void) { return g_msg; }

stfpm_status stfpm_set_error(stfpm_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return s;
}

stfpm_status stfpm_wrap_error(stfpm_status s, const char *fmt, ...) {
    if (s == STFPM_OK) return s;   /* nothing to wrap */
    char prefix[1024], old[sizeof g_msg - 1100];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_msg, sizeof old - 1);
    old[sizeof old - 1] = 0;
    snprintf(g_msg, sizeof g_msg, "%.1000s: %.2990s", prefix, old);
    return s;
}

const char *stfpm_status_name(stfpm_status s) {
    switch (s) {
    case STFPM_OK: return "ok";
    case STFPM_ERR_ARG: return "invalid argument";
    case STFPM_ERR_CL: return "OpenCL error";
    case STFPM_ERR_NO_DEVICE: return "no OpenCL device";
    case STFPM_ERR_BUILD: return "kernel build failed";
    case STFPM_ERR_OOM: return "out of memory";
    case STFPM_ERR_IO: return "I/O error";
    case STFPM_ERR_FORMAT: return "bad file format";
    case STFPM_ERR_NAN: return "NaN or Inf";
    case STFPM_ERR_BLAS: return "CLBlast error";
    case STFPM_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

const char *stfpm_cl_error_name(cl_int e) {
    switch (e) {
#define C(x) case x: return #x;
    C(CL_SUCCESS) C(CL_DEVICE_NOT_FOUND) C(CL_DEVICE_NOT_AVAILABLE) C(CL_COMPILER_NOT_AVAILABLE)
    C(CL_MEM_OBJECT_ALLOCATION_FAILURE) C(CL_OUT_OF_RESOURCES) C(CL_OUT_OF_HOST_MEMORY)
    C(CL_PROFILING_INFO_NOT_AVAILABLE) C(CL_MEM_COPY_OVERLAP) C(CL_IMAGE_FORMAT_MISMATCH)
    C(CL_IMAGE_FORMAT_NOT_SUPPORTED) C(CL_BUILD_PROGRAM_FAILURE) C(CL_MAP_FAILURE)
    C(CL_MISALIGNED_SUB_BUFFER_OFFSET) C(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
    C(CL_COMPILE_PROGRAM_FAILURE) C(CL_LINKER_NOT_AVAILABLE) C(CL_LINK_PROGRAM_FAILURE)
    C(CL_DEVICE_PARTITION_FAILED) C(CL_KERNEL_ARG_INFO_NOT_AVAILABLE) C(CL_INVALID_VALUE)
    C(CL_INVALID_DEVICE_TYPE) C(CL_INVALID_PLATFORM) C(CL_INVALID_DEVICE) C(CL_INVALID_CONTEXT)
    C(CL_INVALID_QUEUE_PROPERTIES) C(CL_INVALID_COMMAND_QUEUE) C(CL_INVALID_HOST_PTR)
    C(CL_INVALID_MEM_OBJECT) C(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR) C(CL_INVALID_IMAGE_SIZE)
    C(CL_INVALID_SAMPLER) C(CL_INVALID_BINARY) C(CL_INVALID_BUILD_OPTIONS) C(CL_INVALID_PROGRAM)
    C(CL_INVALID_PROGRAM_EXECUTABLE) C(CL_INVALID_KERNEL_NAME) C(CL_INVALID_KERNEL_DEFINITION)
    C(CL_INVALID_KERNEL) C(CL_INVALID_ARG_INDEX) C(CL_INVALID_ARG_VALUE) C(CL_INVALID_ARG_SIZE)
    C(CL_INVALID_KERNEL_ARGS) C(CL_INVALID_WORK_DIMENSION) C(CL_INVALID_WORK_GROUP_SIZE)
    C(CL_INVALID_WORK_ITEM_SIZE) C(CL_INVALID_GLOBAL_OFFSET) C(CL_INVALID_EVENT_WAIT_LIST)
    C(CL_INVALID_EVENT) C(CL_INVALID_OPERATION) C(CL_INVALID_GL_OBJECT) C(CL_INVALID_BUFFER_SIZE)
    C(CL_INVALID_MIP_LEVEL) C(CL_INVALID_GLOBAL_WORK_SIZE) C(CL_INVALID_PROPERTY)
    C(CL_INVALID_IMAGE_DESCRIPTOR) C(CL_INVALID_COMPILER_OPTIONS) C(CL_INVALID_LINKER_OPTIONS)
    C(CL_INVALID_DEVICE_PARTITION_COUNT)
#undef C
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR (no OpenCL platform installed)";
    default: return "unknown OpenCL error";
    }
}

stfpm_status stfpm_cl_check(cl_int err, const char *call) {
    if (err == CL_SUCCESS) return STFPM_OK;
    stfpm_status s = (err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_RESOURCES ||
                      err == CL_OUT_OF_HOST_MEMORY)
                         ? STFPM_ERR_OOM
                         : STFPM_ERR_CL;
    return stfpm_set_error(s, "%s failed: %s (%d)%s", call, stfpm_cl_error_name(err), (int)err,
                           s == STFPM_ERR_OOM ? " - the device ran out of memory or resources; "
                                                "try a smaller batch or image size"
                                              : "");
}
