/* The library's version (include/stfpm/version.h). */
#include "stfpm/version.h"

const char *stfpm_version(void) { return STFPM_VERSION_STRING; }
