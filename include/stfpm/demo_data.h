/* The built-in demo data set: a synthetic MVTec AD style category (`stfpm demo`, data/gen_demo).
 *
 * Usage: stfpm_demo_default_options(&o), change the fields wanted (size, image counts, seed,
 * texture), then stfpm_demo_generate(outdir, &o) writes the category, ready for stfpm_train and
 * stfpm_test (stfpm/pipeline.h); stfpm_demo_render draws one image (and its mask) in memory
 * instead. Host-only: no context is needed; the images depend only on the options. */
#ifndef STFPM_DEMO_DATA_H
#define STFPM_DEMO_DATA_H

#include <stdint.h>
#include "stfpm/stfpm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Synthetic demo category (what data/gen_demo writes). Every image is a procedurally
 * textured surface (stb_perlin noise) with per-image variation (texture offset, tint,
 * brightness, illumination, grain direction); defective test images carry one defect of
 * four kinds, of varied size, with an exact mask (pixels whose defect coverage >= 0.5):
 *   scratch  a thin bright or dark curved line (quadratic Bezier, 1-3 px wide)
 *   hole     a dark, roughly elliptical pit with a soft edge
 *   stain    an irregular, noise-bounded blob tinted rust / oil / ink, semi-transparent
 *   crack    a dark jagged random-walk line with a side branch
 * Output (MVTec layout): train/good/NNN.png, test/good/NNN.png, test/<defect>/NNN.png,
 * ground_truth/<defect>/NNN_mask.png (0 / 255). Deterministic for a given seed and build. */
typedef struct stfpm_demo_options {
    int size;          /* image side in pixels (default 128, 32..2048) */
    int n_train;       /* train/good images (default 60) */
    int n_test_good;   /* test/good images (default 12) */
    int n_test_bad;    /* defective images, spread round-robin over the four kinds (default 24) */
    uint64_t seed;     /* default 0 */
    const char *texture;   /* "metal" (brushed, default), "fabric" (woven) or "stone" */
    int overwrite;     /* 0: refuse an OUTDIR that already holds train/ or test/ */
} stfpm_demo_options;

void stfpm_demo_default_options(stfpm_demo_options *o);
/* Write the category under outdir (created, parents included). */
stfpm_status stfpm_demo_generate(const char *outdir, const stfpm_demo_options *o);
/* Render one image in memory: rgb is size*size*3 bytes, mask (may be NULL) size*size bytes
 * (0/255). defect: -1 none, 0..3 as stfpm_demo_defect_names. `index` and `split` (0 train,
 * 1 test) select the per-image random stream. */
stfpm_status stfpm_demo_render(const stfpm_demo_options *o, int split, int index, int defect, uint8_t *rgb,
                               uint8_t *mask);
extern const char *const stfpm_demo_defect_names[4];

#ifdef __cplusplus
}
#endif
#endif
