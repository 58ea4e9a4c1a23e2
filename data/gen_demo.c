/* gen_demo: write a small synthetic MVTec-layout category (textured surfaces with scratches,
 * holes, stains and cracks, exact masks) so that stfpm-cl can be tried without MVTec AD.
 *
 *   gen_demo OUTDIR [--size 128] [--train 60] [--test-good 12] [--test-bad 24] [--seed 0]
 *                   [--texture metal|fabric|stone] [--force]
 *
 * The images are a pure function of the options (same seed, same files). The generator itself
 * lives in the library (stfpm_demo_generate, include/stfpm/demo_data.h) so tests can call it. */
#include "stfpm/demo_data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: gen_demo OUTDIR [options]\n"
            "  --size N          image side in pixels (default 128)\n"
            "  --train N         train/good images (default 60)\n"
            "  --test-good N     test/good images (default 12)\n"
            "  --test-bad N      defective test images, spread over crack/hole/scratch/stain (default 24)\n"
            "  --seed N          random seed (default 0)\n"
            "  --texture NAME    metal (brushed, default), fabric (woven) or stone\n"
            "  --force           write into OUTDIR even if it already holds train/ or test/\n"
            "                    (its old .png files in those folders are removed first)\n");
}

static int parse_int(const char *opt, const char *v, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || *end || end == v || x < lo || x > hi) {
        fprintf(stderr, "gen_demo: %s needs an integer in %ld..%ld (got \"%s\")\n", opt, lo, hi, v ? v : "");
        return 0;
    }
    *out = x;
    return 1;
}

int main(int argc, char **argv) {
    stfpm_demo_options o;
    stfpm_demo_default_options(&o);
    const char *outdir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--force")) {
            o.overwrite = 1;
        } else if (!strcmp(a, "--texture")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "gen_demo: --texture needs a value\n");
                return 2;
            }
            o.texture = argv[++i];
        } else if (!strcmp(a, "--size") || !strcmp(a, "--train") || !strcmp(a, "--test-good") ||
                   !strcmp(a, "--test-bad") || !strcmp(a, "--seed")) {
            int is_size = !strcmp(a, "--size"), is_seed = !strcmp(a, "--seed");
            if (!parse_int(a, i + 1 < argc ? argv[i + 1] : NULL, is_size ? 32 : 0,
                           is_size ? 2048 : is_seed ? 0x7fffffffL : 100000, &v))
                return 2;
            i++;
            if (is_size) o.size = (int)v;
            else if (is_seed) o.seed = (uint64_t)v;
            else if (!strcmp(a, "--train")) o.n_train = (int)v;
            else if (!strcmp(a, "--test-good")) o.n_test_good = (int)v;
            else o.n_test_bad = (int)v;
        } else if (a[0] == '-') {
            fprintf(stderr, "gen_demo: unknown option %s\n", a);
            usage(stderr);
            return 2;
        } else if (!outdir) {
            outdir = a;
        } else {
            fprintf(stderr, "gen_demo: more than one output folder (%s, %s)\n", outdir, a);
            return 2;
        }
    }
    if (!outdir) {
        usage(stderr);
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    stfpm_status s = stfpm_demo_generate(outdir, &o);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (s != STFPM_OK) {
        fprintf(stderr, "gen_demo: %s\n", stfpm_last_error());
        return 1;
    }
    double sec = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    printf("gen_demo: wrote %s (%s texture, %d x %d): train/good %d, test/good %d, defective %d "
           "(crack/hole/scratch/stain) with masks, seed %llu, %.2f s\n",
           outdir, o.texture, o.size, o.size, o.n_train, o.n_test_good, o.n_test_bad, (unsigned long long)o.seed, sec);
    return 0;
}
