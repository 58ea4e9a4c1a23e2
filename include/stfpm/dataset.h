/* Data sets on disk (SPEC section 7) and the seeded train/validation split (SPEC section 4).
 *
 * MVTec AD layout of one category:
 *   <root>/train/good/<image>                       normal training images
 *   <root>/test/good/<image>                        normal test images (label 0)
 *   <root>/test/<defect>/<image>                    anomalous test images (label 1)
 *   <root>/ground_truth/<defect>/<stem>_mask.png    their masks (required)
 * A plain folder of images (no train/ sub-folder) is accepted as training data only.
 * Image files: extensions png, jpg, jpeg, bmp, tga (any case); names starting with '.' are
 * skipped; other files are ignored. Lists are sorted by file name in byte order (strcmp,
 * which is Python's sorted() for UTF-8 names), defect folders likewise, so the order is
 * deterministic. Masks may also be <stem>_mask.<other accepted extension> when no .png exists.
 * Errors name the path: missing folder, empty train/good, defect image without mask, mask
 * whose size differs from its image's (both files named; sizes read from the headers).
 *
 * Usage: stfpm_dataset_open(root, parts, &ds) lists a category's samples (paths, labels, masks),
 * stfpm_dataset_load_sample preprocesses one into the network's input, stfpm_split_make draws the
 * seeded train / validation split of its training images, and stfpm_dataset_free releases the
 * lists. stfpm_dataset_list_images lists the images of any one folder (free the list with
 * stfpm_dataset_free_list). Host-only: no context is needed. */
#ifndef STFPM_DATASET_H
#define STFPM_DATASET_H

#include <stdint.h>
#include "stfpm/stfpm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct stfpm_sample {
    char *path;       /* image file */
    char *mask_path;  /* ground-truth mask, NULL for normal images */
    char *defect;     /* "good" or the defect folder name */
    int label;        /* 0 normal, 1 anomalous */
} stfpm_sample;

typedef struct stfpm_dataset {
    stfpm_sample *train;
    int n_train;
    stfpm_sample *test;       /* test folders in sorted order ("good" sorts among the defect
                                 folders), files sorted within each folder */
    int n_test;
    char **defects;           /* sorted names of the test sub-folders, "good" included */
    int n_defects;
} stfpm_dataset;

/* The parts of a data set to scan (flags, combined with |). */
typedef enum stfpm_dataset_parts {
    STFPM_DATASET_TRAIN = 1,  /* scan train/good (or a plain folder of images) */
    STFPM_DATASET_TEST = 2,   /* scan test/ and ground_truth/, check masks */
    STFPM_DATASET_ALL = 3
} stfpm_dataset_parts;

/* Scan `root` for the requested parts. On failure *out is zeroed. */
stfpm_status stfpm_dataset_open(const char *root, stfpm_dataset_parts parts, stfpm_dataset *out);
void stfpm_dataset_free(stfpm_dataset *ds);

/* Sorted list of the image files directly inside `dir` (full paths, malloc'd; free with
 * stfpm_dataset_free_list). An empty folder gives *n = 0 and STFPM_OK. */
stfpm_status stfpm_dataset_list_images(const char *dir, char ***paths, int *n);
void stfpm_dataset_free_list(char **paths, int n);
/* 1 when the name has an accepted image extension. */
int stfpm_dataset_is_image_name(const char *name);

/* Load one sample for the network: image -> 3 x S x S normalised CHW floats (chw), and, when
 * mask01 is not NULL, its S x S 0/1 ground truth (all 0 for normal images). An image and mask
 * of different sizes is an error naming both files. */
stfpm_status stfpm_dataset_load_sample(const stfpm_sample *s, int S, float *chw, uint8_t *mask01);

/* ------------------------------------------------------------------------------------------ */
/* Seeded split. PRNG: splitmix64 (Steele, Lea, Flood 2014) seeded with `seed`; permutation:
 * Fisher-Yates from the last index down, j = next() % (i + 1) (the modulo bias is < 2^-50 for
 * any realistic n). The first n_val = floor(n * val_fraction) entries of the permutation are the
 * validation set (like the reference code's int(n * 0.2)), the rest the training set; then
 * only the first max(1, round(n_train * train_fraction)) training entries are kept (the
 * paper's "10 % of the training images"; 1.0 keeps all). Both lists are returned sorted
 * ascending. n_val is forced to leave at least one training index. */
typedef struct stfpm_split {
    int *train;
    int n_train;
    int *val;
    int n_val;
} stfpm_split;

stfpm_status stfpm_split_make(int n, uint64_t seed, double val_fraction, double train_fraction,
                              stfpm_split *out);
void stfpm_split_free(stfpm_split *sp);

/* Fisher-Yates permutation of 0..n-1 with the generator above (perm has n entries). */
void stfpm_permutation(int n, uint64_t seed, int *perm);

#ifdef __cplusplus
}
#endif
#endif
