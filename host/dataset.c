/* Data set scanning (MVTec AD layout or a plain folder), sample loading and the seeded
 * train/val split. */
#include "stfpm/dataset.h"
#include "stfpm/image.h"
#include "fsutil.h"
#include "rng.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const k_exts[] = {"png", "jpg", "jpeg", "bmp", "tga"};
#define N_EXTS ((int)(sizeof k_exts / sizeof k_exts[0]))

int stfpm_dataset_is_image_name(const char *name) {
    if (!name || name[0] == '.') return 0;
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name) return 0;
    for (int i = 0; i < N_EXTS; i++)
        if (strcasecmp(dot + 1, k_exts[i]) == 0) return 1;
    return 0;
}

static char *path_join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    while (la > 1 && a[la - 1] == '/') la--;
    char *p = malloc(la + lb + 2);
    if (!p) return NULL;
    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb + 1);
    return p;
}


static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void stfpm_dataset_free_list(char **paths, int n) {
    if (!paths) return;
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
}

/* Entries of dir (sorted names, or full paths when full != 0) that are image files (want_dirs
 * = 0) or sub-directories (want_dirs = 1). */
static stfpm_status list_dir(const char *dir, int want_dirs, int full, char ***out, int *n) {
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return stfpm_set_error(STFPM_ERR_IO, "cannot open folder %s: %s", dir, strerror(errno));
    char **v = NULL;
    int cnt = 0, cap = 0;
    stfpm_status s = STFPM_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *nm = e->d_name;
        if (nm[0] == '.') continue;
        if (!want_dirs && !stfpm_dataset_is_image_name(nm)) continue;
        char *p = path_join(dir, nm);
        if (!p) {
            s = stfpm_set_error(STFPM_ERR_OOM, "out of host memory listing %s", dir);
            break;
        }
        if (want_dirs ? !stfpm_is_dir(p) : !is_file(p)) {
            free(p);
            continue;
        }
        if (!full) {
            free(p);
            p = strdup(nm);
            if (!p) {
                s = stfpm_set_error(STFPM_ERR_OOM, "out of host memory listing %s", dir);
                break;
            }
        }
        if (cnt == cap) {
            cap = cap ? cap * 2 : 64;
            char **nv = realloc(v, sizeof *v * cap);
            if (!nv) {
                free(p);
                s = stfpm_set_error(STFPM_ERR_OOM, "out of host memory listing %s", dir);
                break;
            }
            v = nv;
        }
        v[cnt++] = p;
    }
    closedir(d);
    if (s != STFPM_OK) {
        stfpm_dataset_free_list(v, cnt);
        return s;
    }
    /* full paths share the prefix dir + "/", so sorting them sorts the names */
    if (cnt > 1) qsort(v, cnt, sizeof *v, cmp_str);
    *out = v;
    *n = cnt;
    return STFPM_OK;
}

stfpm_status stfpm_dataset_list_images(const char *dir, char ***paths, int *n) {
    if (!dir) return stfpm_set_error(STFPM_ERR_ARG, "list_images: no folder given");
    return list_dir(dir, 0, 1, paths, n);
}

static void free_samples(stfpm_sample *v, int n) {
    if (!v) return;
    for (int i = 0; i < n; i++) {
        free(v[i].path);
        free(v[i].mask_path);
        free(v[i].defect);
    }
    free(v);
}

void stfpm_dataset_free(stfpm_dataset *ds) {
    if (!ds) return;
    free_samples(ds->train, ds->n_train);
    free_samples(ds->test, ds->n_test);
    stfpm_dataset_free_list(ds->defects, ds->n_defects);
    memset(ds, 0, sizeof *ds);
}

#define OOM() stfpm_set_error(STFPM_ERR_OOM, "out of host memory scanning %s", root)

static stfpm_status scan_train(const char *root, stfpm_dataset *ds) {
    char *train = path_join(root, "train");
    char *good = train ? path_join(train, "good") : NULL;
    char *test = path_join(root, "test");
    stfpm_status s = STFPM_OK;
    const char *dir = NULL;
    if (!train || !good || !test) {
        s = OOM();
        goto done;
    }
    if (stfpm_is_dir(train) || stfpm_is_dir(test)) {   /* MVTec layout */
        if (!stfpm_is_dir(good)) {
            s = stfpm_set_error(STFPM_ERR_IO, "training folder %s is missing (MVTec layout: "
                                "<category>/train/good/*.png)", good);
            goto done;
        }
        dir = good;
    } else {
        dir = root;   /* plain folder of normal images */
    }
    char **paths;
    int n;
    s = list_dir(dir, 0, 1, &paths, &n);
    if (s != STFPM_OK) goto done;
    if (n == 0) {
        s = stfpm_set_error(STFPM_ERR_IO, "no training images in %s (accepted extensions: png jpg jpeg "
                            "bmp tga)", dir);
        goto done;
    }
    ds->train = calloc((size_t)n, sizeof *ds->train);
    if (!ds->train) {
        stfpm_dataset_free_list(paths, n);
        s = OOM();
        goto done;
    }
    for (int i = 0; i < n; i++) {
        ds->train[i].path = paths[i];   /* ownership moves */
        ds->train[i].defect = strdup("good");
        ds->train[i].label = 0;
        ds->n_train = i + 1;
        if (!ds->train[i].defect) {
            for (int j = i + 1; j < n; j++) free(paths[j]);
            free(paths);
            s = OOM();
            goto done;
        }
    }
    free(paths);
done:
    free(train);
    free(good);
    free(test);
    return s;
}

/* ground_truth/<defect>/<stem>_mask.<ext>: .png first, then the other accepted extensions
 * in either case. Returns NULL (and sets *oom when allocation failed) when none exists. */
static char *find_mask(const char *gtdir, const char *image_path, char **expected, int *oom) {
    *oom = 0;
    const char *base = strrchr(image_path, '/');
    base = base ? base + 1 : image_path;
    const char *dot = strrchr(base, '.');
    size_t stem = dot ? (size_t)(dot - base) : strlen(base);
    size_t cap = strlen(gtdir) + stem + 32;
    char *p = malloc(cap);
    if (!p) {
        *oom = 1;
        return NULL;
    }
    snprintf(p, cap, "%s/%.*s_mask.png", gtdir, (int)stem, base);
    *expected = strdup(p);
    if (!*expected) {
        free(p);
        *oom = 1;
        return NULL;
    }
    if (is_file(p)) return p;
    for (int up = 0; up < 2; up++)
        for (int i = 0; i < N_EXTS; i++) {
            char ext[8];
            snprintf(ext, sizeof ext, "%s", k_exts[i]);
            for (char *c = ext; *c; c++)
                if (up) *c = (char)(*c - 'a' + 'A');
            snprintf(p, cap, "%s/%.*s_mask.%s", gtdir, (int)stem, base, ext);
            if (is_file(p)) return p;
        }
    free(p);
    return NULL;
}

static stfpm_status check_sizes(const char *img, const char *mask) {
    int iw, ih, mw, mh;
    STFPM_TRY(stfpm_image_info(img, &iw, &ih));
    STFPM_TRY(stfpm_image_info(mask, &mw, &mh));
    if (iw != mw || ih != mh)
        return stfpm_set_error(STFPM_ERR_FORMAT, "mask %s is %d x %d but its image %s is %d x %d", mask, mw, mh,
                               img, iw, ih);
    return STFPM_OK;
}

static stfpm_status scan_test(const char *root, stfpm_dataset *ds) {
    char *test = path_join(root, "test");
    char *gt = path_join(root, "ground_truth");
    stfpm_status s = STFPM_OK;
    if (!test || !gt) {
        s = OOM();
        goto done;
    }
    if (!stfpm_is_dir(test)) {
        s = stfpm_set_error(STFPM_ERR_IO, "test folder %s is missing (MVTec layout: <category>/test/<defect>/"
                            "*.png with <category>/ground_truth/<defect>/<name>_mask.png)", test);
        goto done;
    }
    s = list_dir(test, 1, 0, &ds->defects, &ds->n_defects);
    if (s != STFPM_OK) goto done;
    int cap = 0;
    for (int d = 0; d < ds->n_defects && s == STFPM_OK; d++) {
        const char *defect = ds->defects[d];
        int good = strcmp(defect, "good") == 0;
        char *ddir = path_join(test, defect), *gdir = path_join(gt, defect);
        char **paths = NULL;
        int n = 0;
        if (!ddir || !gdir) s = OOM();
        if (s == STFPM_OK) s = list_dir(ddir, 0, 1, &paths, &n);
        for (int i = 0; i < n && s == STFPM_OK; i++) {
            char *mask = NULL, *expected = NULL;
            if (!good) {
                int oom;
                mask = find_mask(gdir, paths[i], &expected, &oom);
                if (oom) {
                    s = OOM();
                } else if (!mask) {
                    s = stfpm_set_error(STFPM_ERR_IO, "anomalous test image %s has no ground-truth mask "
                                        "(expected %s)", paths[i], expected);
                } else {
                    s = check_sizes(paths[i], mask);
                }
                free(expected);
            }
            if (s == STFPM_OK && ds->n_test == cap) {
                cap = cap ? cap * 2 : 64;
                stfpm_sample *nv = realloc(ds->test, sizeof *nv * cap);
                if (!nv) s = OOM();
                else ds->test = nv;
            }
            if (s != STFPM_OK) {
                free(mask);
                break;
            }
            stfpm_sample *t = &ds->test[ds->n_test++];
            t->path = paths[i];
            paths[i] = NULL;
            t->mask_path = mask;
            t->label = !good;
            t->defect = strdup(defect);
            if (!t->defect) s = OOM();
        }
        stfpm_dataset_free_list(paths, n);
        free(ddir);
        free(gdir);
    }
    if (s == STFPM_OK && ds->n_test == 0)
        s = stfpm_set_error(STFPM_ERR_IO, "no test images under %s (expected %s/<defect>/*.png)", test, test);
done:
    free(test);
    free(gt);
    return s;
}

stfpm_status stfpm_dataset_open(const char *root, stfpm_dataset_parts parts, stfpm_dataset *out) {
    memset(out, 0, sizeof *out);
    if (!root || !*root) return stfpm_set_error(STFPM_ERR_ARG, "no data set folder given");
    if (!(parts & STFPM_DATASET_ALL))
        return stfpm_set_error(STFPM_ERR_ARG, "dataset_open: parts must include TRAIN and/or TEST");
    struct stat st;
    if (stat(root, &st) != 0)
        return stfpm_set_error(STFPM_ERR_IO, "data set folder %s: %s", root, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return stfpm_set_error(STFPM_ERR_IO, "data set path %s is not a folder", root);
    stfpm_status s = STFPM_OK;
    if (parts & STFPM_DATASET_TRAIN) s = scan_train(root, out);
    if (s == STFPM_OK && (parts & STFPM_DATASET_TEST)) s = scan_test(root, out);
    if (s != STFPM_OK) stfpm_dataset_free(out);
    return s;
}

stfpm_status stfpm_dataset_load_sample(const stfpm_sample *smp, int S, float *chw, uint8_t *mask01) {
    if (!smp || !smp->path) return stfpm_set_error(STFPM_ERR_ARG, "load_sample: no sample");
    stfpm_image img = {0}, mask = {0};
    stfpm_status s = stfpm_image_load(smp->path, &img);
    if (s == STFPM_OK && chw) {
        s = stfpm_image_to_tensor(&img, S, chw);
        if (s != STFPM_OK) stfpm_wrap_error(s, "preprocessing %s", smp->path);
    }
    if (s == STFPM_OK && mask01) {
        if (smp->mask_path) {
            s = stfpm_image_load_mask(smp->mask_path, &mask);
            if (s == STFPM_OK && (mask.w != img.w || mask.h != img.h))
                s = stfpm_set_error(STFPM_ERR_FORMAT, "mask %s is %d x %d but its image %s is %d x %d",
                                    smp->mask_path, mask.w, mask.h, smp->path, img.w, img.h);
            if (s == STFPM_OK) s = stfpm_mask_to_binary(&mask, S, mask01);
        } else if (S > 0) {
            memset(mask01, 0, (size_t)S * S);
        }
    }
    stfpm_image_free(&img);
    stfpm_image_free(&mask);
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* Split                                                                                       */

void stfpm_permutation(int n, uint64_t seed, int *perm) {
    uint64_t st = seed;
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(stfpm_splitmix64(&st) % (uint64_t)(i + 1));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

void stfpm_split_free(stfpm_split *sp) {
    if (!sp) return;
    free(sp->train);
    free(sp->val);
    memset(sp, 0, sizeof *sp);
}

stfpm_status stfpm_split_make(int n, uint64_t seed, double val_fraction, double train_fraction,
                              stfpm_split *out) {
    memset(out, 0, sizeof *out);
    if (n < 1) return stfpm_set_error(STFPM_ERR_ARG, "split: need at least one image (got %d)", n);
    if (!(val_fraction >= 0.0 && val_fraction < 1.0))
        return stfpm_set_error(STFPM_ERR_ARG, "split: validation fraction %g outside [0, 1)", val_fraction);
    if (!(train_fraction > 0.0 && train_fraction <= 1.0))
        return stfpm_set_error(STFPM_ERR_ARG, "split: training fraction %g outside (0, 1]", train_fraction);
    int n_val = (int)floor(n * val_fraction);
    if (n_val > n - 1) n_val = n - 1;
    int n_rest = n - n_val;
    int n_train = (int)lround(n_rest * train_fraction);
    if (n_train < 1) n_train = 1;
    if (n_train > n_rest) n_train = n_rest;
    int *perm = malloc(sizeof(int) * (size_t)n);
    out->train = malloc(sizeof(int) * (size_t)n_train);
    out->val = malloc(sizeof(int) * (size_t)(n_val ? n_val : 1));
    if (!perm || !out->train || !out->val) {
        free(perm);
        stfpm_split_free(out);
        return stfpm_set_error(STFPM_ERR_OOM, "split: out of host memory");
    }
    stfpm_permutation(n, seed, perm);
    memcpy(out->val, perm, sizeof(int) * (size_t)n_val);
    memcpy(out->train, perm + n_val, sizeof(int) * (size_t)n_train);
    out->n_val = n_val;
    out->n_train = n_train;
    qsort(out->val, (size_t)n_val, sizeof(int), cmp_int);
    qsort(out->train, (size_t)n_train, sizeof(int), cmp_int);
    free(perm);
    return STFPM_OK;
}
