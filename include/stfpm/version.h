/* The stfpm-cl version. This file is the one place the version is kept: CMakeLists.txt reads
 * STFPM_VERSION_MAJOR / _MINOR / _PATCH from it for project(), the shared library's version,
 * stfpm.pc, the CMake package and the Debian package.
 *
 * Usage: STFPM_VERSION_STRING is the version of the headers a program was compiled with,
 * stfpm_version() the version of the library it runs with; with the shared library the two can
 * differ, so a program that depends on a feature checks both:
 *
 *     #include <stfpm/version.h>
 *     #if STFPM_VERSION_NUMBER < 300      // 0.3.0: stfpm_predict's formats and threshold policy
 *     #error "stfpm-cl 0.3.0 or newer is required"
 *     #endif
 *     printf("built with %s, running %s\n", STFPM_VERSION_STRING, stfpm_version());
 *
 * Until 1.0.0 a new minor version may change the API; the shared library's soname carries the
 * major and minor version (libstfpm.so.0.3). */
#ifndef STFPM_VERSION_H
#define STFPM_VERSION_H

#define STFPM_VERSION_MAJOR 0
#define STFPM_VERSION_MINOR 3
#define STFPM_VERSION_PATCH 0

#define STFPM_VERSION_STR_(x) #x
#define STFPM_VERSION_STR(x) STFPM_VERSION_STR_(x)
/* "0.3.0" */
#define STFPM_VERSION_STRING                                                                          \
    STFPM_VERSION_STR(STFPM_VERSION_MAJOR) "." STFPM_VERSION_STR(STFPM_VERSION_MINOR) "."           \
        STFPM_VERSION_STR(STFPM_VERSION_PATCH)
/* major * 10000 + minor * 100 + patch: 300 for 0.3.0, for #if comparisons */
#define STFPM_VERSION_NUMBER (STFPM_VERSION_MAJOR * 10000 + STFPM_VERSION_MINOR * 100 + STFPM_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the library in use, "MAJOR.MINOR.PATCH" (static storage). */
const char *stfpm_version(void);

#ifdef __cplusplus
}
#endif
#endif
