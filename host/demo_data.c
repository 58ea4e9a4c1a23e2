/* The synthetic demo category (include/stfpm/demo_data.h): procedural textures (stb_perlin
 * noise) with four kinds of defect, written in the MVTec AD layout. */
#include "stfpm/demo_data.h"
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
#include <unistd.h>

#include <stb/stb_perlin.h>

const char *const stfpm_demo_defect_names[4] = {"crack", "hole", "scratch", "stain"};   /* sorted */

void stfpm_demo_default_options(stfpm_demo_options *o) {
    memset(o, 0, sizeof *o);
    o->size = 128;
    o->n_train = 60;
    o->n_test_good = 12;
    o->n_test_bad = 24;
    o->seed = 0;
    o->texture = "metal";
}

static double rnd(uint64_t *s) { return (double)(stfpm_splitmix64(s) >> 11) * (1.0 / 9007199254740992.0); }
static double rnd_in(uint64_t *s, double lo, double hi) { return lo + (hi - lo) * rnd(s); }
static float clampf(float x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }

typedef struct demo_img {
    int S;
    float *px;    /* S*S*3, 0..255 */
    float *cov;   /* S*S defect coverage 0..1 */
} demo_img;

/* Per-pixel grain: a hash of (x, y, image key), uniform in [-0.5, 0.5). */
static float grain(uint64_t key, int x, int y) {
    uint64_t s = key ^ ((uint64_t)(uint32_t)x << 32 | (uint32_t)y);
    return (float)(rnd(&s) - 0.5);
}

/* Texture generators: `cat` draws the category's look (same for every image of a seed),
 * `r` the per-image variation. */
static void texture_metal(demo_img *im, uint64_t *cat, uint64_t *r, uint64_t key) {
    int S = im->S;
    float cbase = (float)rnd_in(cat, 140, 175);
    float tint[3] = {(float)rnd_in(cat, 0.96, 1.0), (float)rnd_in(cat, 0.98, 1.01), (float)rnd_in(cat, 1.0, 1.06)};
    float z = (float)rnd_in(r, 0, 200), ang = (float)rnd_in(r, -0.08, 0.08);
    float base = cbase * (float)rnd_in(r, 0.93, 1.07), gx = (float)rnd_in(r, -0.12, 0.12), gy = (float)rnd_in(r, -0.12, 0.12);
    float ca = cosf(ang), sa = sinf(ang);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            float a = x * ca + y * sa, b = -x * sa + y * ca;
            float streak = stb_perlin_fbm_noise3(a / 45.0f, b / 2.2f, z, 2.0f, 0.5f, 2);
            float coarse = stb_perlin_noise3(x / (0.6f * S), y / (0.6f * S), z + 31.0f, 0, 0, 0);
            float v = 1.0f + 0.10f * streak + 0.10f * coarse + gx * ((float)x / S - 0.5f) + gy * ((float)y / S - 0.5f);
            float g = 6.0f * grain(key, x, y);
            for (int k = 0; k < 3; k++) im->px[(y * S + x) * 3 + k] = base * tint[k] * v + g;
        }
}

static void texture_fabric(demo_img *im, uint64_t *cat, uint64_t *r, uint64_t key) {
    int S = im->S;
    float hue[3] = {(float)rnd_in(cat, 60, 200), (float)rnd_in(cat, 60, 200), (float)rnd_in(cat, 60, 200)};
    float cp = (float)rnd_in(cat, 5.5, 8.0), bright = (float)rnd_in(r, 0.92, 1.08);
    float z = (float)rnd_in(r, 0, 200), ang = (float)rnd_in(r, -0.06, 0.06), p = cp * (float)rnd_in(r, 0.96, 1.04);
    for (int k = 0; k < 3; k++) hue[k] *= bright * (float)rnd_in(r, 0.97, 1.03);
    float ca = cosf(ang), sa = sinf(ang);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            float a = x * ca + y * sa, b = -x * sa + y * ca;
            float fa = a / p, fb = b / p;
            int ia = (int)floorf(fa), ib = (int)floorf(fb);
            fa -= ia;
            fb -= ib;
            int warp_on_top = ((ia + ib) & 1) == 0;
            float prof = sinf(3.14159265f * (warp_on_top ? fa : fb));
            float irregular = stb_perlin_noise3(a / 18.0f, b / 18.0f, z, 0, 0, 0);
            float v = 0.55f + 0.45f * sqrtf(clampf(prof, 0, 1)) + 0.10f * irregular;
            float g = 8.0f * grain(key, x, y);
            for (int k = 0; k < 3; k++)
                im->px[(y * S + x) * 3 + k] = hue[k] * (warp_on_top ? 1.0f : 0.88f) * v + g;
        }
}

static void texture_stone(demo_img *im, uint64_t *cat, uint64_t *r, uint64_t key) {
    int S = im->S;
    float tint[3] = {(float)rnd_in(cat, 1.0, 1.08), (float)rnd_in(cat, 0.96, 1.02), (float)rnd_in(cat, 0.86, 0.96)};
    float z = (float)rnd_in(r, 0, 200), base = (float)rnd_in(cat, 125, 165) * (float)rnd_in(r, 0.92, 1.08);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            float t = stb_perlin_turbulence_noise3(x / 30.0f, y / 30.0f, z, 2.0f, 0.5f, 4);
            float f = stb_perlin_fbm_noise3(x / 70.0f, y / 70.0f, z + 50.0f, 2.0f, 0.5f, 2);
            float g = grain(key, x, y);
            float speck = fabsf(g) > 0.49f ? 40.0f * (g > 0 ? 1.0f : -1.0f) : 0.0f;   /* ~2 % specks */
            float v = 0.78f + 0.30f * t + 0.12f * f;
            for (int k = 0; k < 3; k++) im->px[(y * S + x) * 3 + k] = base * tint[k] * v + 10.0f * g + speck;
        }
}

static float seg_dist(float px, float py, float ax, float ay, float bx, float by) {
    float dx = bx - ax, dy = by - ay, l2 = dx * dx + dy * dy;
    float t = l2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / l2 : 0.0f;
    t = clampf(t, 0, 1);
    float ex = ax + t * dx - px, ey = ay + t * dy - py;
    return sqrtf(ex * ex + ey * ey);
}

/* Coverage of a polyline of half-width hw (antialiased by one pixel). */
static void cover_polyline(demo_img *im, const float *pts, int n, float hw) {
    int S = im->S;
    float x0 = 1e9f, y0 = 1e9f, x1 = -1e9f, y1 = -1e9f;
    for (int i = 0; i < n; i++) {
        x0 = fminf(x0, pts[2 * i]);
        x1 = fmaxf(x1, pts[2 * i]);
        y0 = fminf(y0, pts[2 * i + 1]);
        y1 = fmaxf(y1, pts[2 * i + 1]);
    }
    int bx0 = (int)fmaxf(0, floorf(x0 - hw - 2)), bx1 = (int)fminf(S - 1, ceilf(x1 + hw + 2));
    int by0 = (int)fmaxf(0, floorf(y0 - hw - 2)), by1 = (int)fminf(S - 1, ceilf(y1 + hw + 2));
    for (int y = by0; y <= by1; y++)
        for (int x = bx0; x <= bx1; x++) {
            float d = 1e9f;
            for (int i = 0; i + 1 < n; i++)
                d = fminf(d, seg_dist(x + 0.5f, y + 0.5f, pts[2 * i], pts[2 * i + 1], pts[2 * i + 2], pts[2 * i + 3]));
            float c = clampf(hw + 0.5f - d, 0, 1);
            if (c > im->cov[y * S + x]) im->cov[y * S + x] = c;
        }
}

/* Blend every pixel towards target(x) by alpha * coverage. mode 0: add delta; 1: multiply by
 * factor; 2: tint towards colour col (keeping the texture's relative brightness). */
static void apply_defect(demo_img *im, int mode, float amount, const float col[3], float alpha, uint64_t key,
                         float mod_noise) {
    int S = im->S;
    for (int i = 0; i < S * S; i++) {
        float c = im->cov[i];
        if (c <= 0) continue;
        float a = alpha * c;
        if (mod_noise > 0)   /* uneven density inside stains */
            a *= 1.0f - mod_noise * (0.5f + 0.5f * stb_perlin_noise3((i % S) / 7.0f, (i / S) / 7.0f,
                                                                    (float)(key % 200) + 0.5f, 0, 0, 0));
        float *p = im->px + (size_t)i * 3;
        float lum = (p[0] + p[1] + p[2]) / 3.0f;
        for (int k = 0; k < 3; k++) {
            float t = mode == 0 ? p[k] + amount : mode == 1 ? p[k] * amount : col[k] * (0.6f + 0.4f * lum / 160.0f);
            p[k] = p[k] + a * (t - p[k]);
        }
    }
}

static void defect_scratch(demo_img *im, uint64_t *r, uint64_t key) {
    int S = im->S;
    float len = (float)rnd_in(r, 0.25, 0.6) * S, th = (float)rnd_in(r, 0, 6.2831853);
    float cx = (float)rnd_in(r, 0.25, 0.75) * S, cy = (float)rnd_in(r, 0.25, 0.75) * S;
    float dx = cosf(th), dy = sinf(th), bend = (float)rnd_in(r, -0.18, 0.18) * len;
    float hw = (float)rnd_in(r, 0.6, 1.5);
    enum { N = 48 };
    float pts[2 * (N + 1)];
    for (int i = 0; i <= N; i++) {   /* quadratic Bezier P0 -> P2 through control point P1 */
        float t = (float)i / N, u = 1 - t;
        float p0x = cx - dx * len / 2, p0y = cy - dy * len / 2, p2x = cx + dx * len / 2, p2y = cy + dy * len / 2;
        float p1x = cx - dy * bend, p1y = cy + dx * bend;
        pts[2 * i] = u * u * p0x + 2 * u * t * p1x + t * t * p2x;
        pts[2 * i + 1] = u * u * p0y + 2 * u * t * p1y + t * t * p2y;
    }
    cover_polyline(im, pts, N + 1, hw);
    float sign = rnd(r) < 0.7 ? 1.0f : -1.0f;
    apply_defect(im, 0, sign * (float)rnd_in(r, 30, 75), NULL, 0.9f, key, 0);
}

static void defect_hole(demo_img *im, uint64_t *r, uint64_t key) {
    int S = im->S;
    float rad = (float)rnd_in(r, 0.025, 0.07) * S, ratio = (float)rnd_in(r, 0.65, 1.0), th = (float)rnd_in(r, 0, 3.14159);
    float cx = (float)rnd_in(r, 0.2, 0.8) * S, cy = (float)rnd_in(r, 0.2, 0.8) * S;
    float ca = cosf(th), sa = sinf(th), depth = (float)rnd_in(r, 0.12, 0.45);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            float ex = (x + 0.5f - cx) * ca + (y + 0.5f - cy) * sa, ey = -(x + 0.5f - cx) * sa + (y + 0.5f - cy) * ca;
            float dn = sqrtf(ex * ex / (rad * rad) + ey * ey / (rad * rad * ratio * ratio));
            float c = clampf((1.0f - dn) * rad * ratio + 0.5f, 0, 1);
            im->cov[y * S + x] = c;
            if (c > 0) {   /* darker towards the centre */
                float *p = im->px + ((size_t)y * S + x) * 3;
                float f = depth + 0.25f * clampf(dn, 0, 1);
                for (int k = 0; k < 3; k++) p[k] = p[k] + c * 0.92f * (p[k] * f - p[k]);
            }
        }
    (void)key;
}

static void defect_stain(demo_img *im, uint64_t *r, uint64_t key) {
    int S = im->S;
    static const float colours[3][3] = {{150, 80, 40}, {55, 50, 38}, {70, 80, 150}};   /* rust, oil, ink */
    const float *col = colours[(int)(rnd(r) * 3) % 3];
    float rad = (float)rnd_in(r, 0.06, 0.16) * S, z = (float)rnd_in(r, 0, 200);
    float cx = (float)rnd_in(r, 0.25, 0.75) * S, cy = (float)rnd_in(r, 0.25, 0.75) * S;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            float dx = x + 0.5f - cx, dy = y + 0.5f - cy, d = sqrtf(dx * dx + dy * dy);
            if (d > rad * 1.6f + 2) continue;
            float c0 = d > 0 ? dx / d : 1, s0 = d > 0 ? dy / d : 0;
            float reff = rad * (1.0f + 0.45f * stb_perlin_noise3(c0 * 1.3f, s0 * 1.3f, z, 0, 0, 0));
            im->cov[y * S + x] = clampf((reff - d) / 1.5f + 0.5f, 0, 1);
        }
    apply_defect(im, 2, 0, col, (float)rnd_in(r, 0.3, 0.6), key, 0.35f);
}

static void defect_crack(demo_img *im, uint64_t *r, uint64_t key) {
    int S = im->S;
    enum { MAXP = 512 };
    float pts[2 * MAXP];
    int n = (int)(rnd_in(r, 0.25, 0.55) * S / 2.5);
    if (n < 6) n = 6;
    if (n > MAXP / 2) n = MAXP / 2;
    float x = (float)rnd_in(r, 0.25, 0.75) * S, y = (float)rnd_in(r, 0.25, 0.75) * S, th = (float)rnd_in(r, 0, 6.2831853);
    float hw = (float)rnd_in(r, 0.5, 1.1);
    for (int i = 0; i < n; i++) {
        pts[2 * i] = x;
        pts[2 * i + 1] = y;
        th += (float)rnd_in(r, -0.6, 0.6);
        x += 2.5f * cosf(th);
        y += 2.5f * sinf(th);
    }
    cover_polyline(im, pts, n, hw);
    /* a branch from a point in the middle third, thinner */
    int b0 = n / 3 + (int)(rnd(r) * (n / 3));
    int nb = n / 2;
    x = pts[2 * b0];
    y = pts[2 * b0 + 1];
    th = atan2f(pts[2 * b0 + 3] - pts[2 * b0 + 1], pts[2 * b0 + 2] - pts[2 * b0]) + (rnd(r) < 0.5 ? 0.8f : -0.8f);
    for (int i = 0; i < nb; i++) {
        pts[2 * i] = x;
        pts[2 * i + 1] = y;
        th += (float)rnd_in(r, -0.6, 0.6);
        x += 2.5f * cosf(th);
        y += 2.5f * sinf(th);
    }
    cover_polyline(im, pts, nb, hw * 0.7f);
    apply_defect(im, 1, (float)rnd_in(r, 0.25, 0.55), NULL, 0.9f, key, 0);
}

stfpm_status stfpm_demo_render(const stfpm_demo_options *o, int split, int index, int defect, uint8_t *rgb,
                               uint8_t *mask) {
    if (!o || o->size < 32 || o->size > 2048 || !rgb || defect < -1 || defect > 3)
        return stfpm_set_error(STFPM_ERR_ARG, "demo_render: invalid arguments (size %d, defect %d)",
                               o ? o->size : 0, defect);
    const char *tex = o->texture && *o->texture ? o->texture : "metal";
    void (*texture)(demo_img *, uint64_t *, uint64_t *, uint64_t) =
        !strcmp(tex, "metal") ? texture_metal : !strcmp(tex, "fabric") ? texture_fabric
                                              : !strcmp(tex, "stone") ? texture_stone : NULL;
    if (!texture)
        return stfpm_set_error(STFPM_ERR_ARG, "unknown demo texture \"%s\" (metal, fabric, stone)", tex);
    int S = o->size;
    demo_img im = {S, malloc(sizeof(float) * 3 * S * S), calloc((size_t)S * S, sizeof(float))};
    if (!im.px || !im.cov) {
        free(im.px);
        free(im.cov);
        return stfpm_set_error(STFPM_ERR_OOM, "demo_render: out of host memory");
    }
    /* one random stream per (seed, split, index); the defect draws continue the same stream */
    uint64_t r = o->seed * 0x9e3779b97f4a7c15ULL ^ ((uint64_t)(split + 1) << 56) ^ (uint64_t)index * 0xd1b54a32d192ed03ULL;
    stfpm_splitmix64(&r);
    uint64_t key = stfpm_splitmix64(&r);
    uint64_t cat = o->seed ^ 0x5851f42d4c957f2dULL;
    stfpm_splitmix64(&cat);
    texture(&im, &cat, &r, key);
    switch (defect) {
    case 0: defect_crack(&im, &r, key); break;
    case 1: defect_hole(&im, &r, key); break;
    case 2: defect_scratch(&im, &r, key); break;
    case 3: defect_stain(&im, &r, key); break;
    default: break;
    }
    for (int i = 0; i < 3 * S * S; i++) rgb[i] = (uint8_t)lrintf(clampf(im.px[i], 0, 255));
    if (mask)
        for (int i = 0; i < S * S; i++) mask[i] = im.cov[i] >= 0.5f ? 255 : 0;
    free(im.px);
    free(im.cov);
    return STFPM_OK;
}

/* Remove the .png files of one folder we are about to fill (overwrite mode). */
static stfpm_status clear_pngs(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return STFPM_OK;
    struct dirent *e;
    stfpm_status s = STFPM_OK;
    while ((e = readdir(d)) && s == STFPM_OK) {
        const char *dot = strrchr(e->d_name, '.');
        if (e->d_name[0] == '.' || !dot || strcasecmp(dot, ".png")) continue;
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (unlink(p) != 0) s = stfpm_set_error(STFPM_ERR_IO, "cannot remove %s: %s", p, strerror(errno));
    }
    closedir(d);
    return s;
}

stfpm_status stfpm_demo_generate(const char *outdir, const stfpm_demo_options *opt) {
    stfpm_demo_options o;
    if (opt) o = *opt;
    else stfpm_demo_default_options(&o);
    if (!outdir || !*outdir) return stfpm_set_error(STFPM_ERR_ARG, "demo: no output folder given");
    if (o.size < 32 || o.size > 2048) return stfpm_set_error(STFPM_ERR_ARG, "demo: size %d outside 32..2048", o.size);
    if (o.n_train < 1 || o.n_test_good < 0 || o.n_test_bad < 0 || o.n_test_good + o.n_test_bad < 1 ||
        o.n_train > 100000 || o.n_test_good > 100000 || o.n_test_bad > 100000)
        return stfpm_set_error(STFPM_ERR_ARG, "demo: invalid image counts (train %d, test good %d, test bad %d)",
                               o.n_train, o.n_test_good, o.n_test_bad);
    char buf[4096];
    snprintf(buf, sizeof buf, "%s/train", outdir);
    int exists = stfpm_is_dir(buf);
    snprintf(buf, sizeof buf, "%s/test", outdir);
    exists |= stfpm_is_dir(buf);
    if (exists && !o.overwrite)
        return stfpm_set_error(STFPM_ERR_IO, "demo: %s already holds a data set (train/ or test/); remove it or "
                               "allow overwriting", outdir);
    /* folders */
    const char *fixed[] = {"train/good", "test/good"};
    for (int i = 0; i < 2 + 8; i++) {
        if (i < 2) snprintf(buf, sizeof buf, "%s/%s", outdir, fixed[i]);
        else snprintf(buf, sizeof buf, "%s/%s/%s", outdir, i < 6 ? "test" : "ground_truth", stfpm_demo_defect_names[(i - 2) % 4]);
        if (i >= 2 && (i - 2) % 4 >= o.n_test_bad) continue;   /* no folder for an unused kind */
        STFPM_TRY(stfpm_mkdir_p(buf));
        if (o.overwrite) STFPM_TRY(clear_pngs(buf));
    }
    int S = o.size;
    uint8_t *rgb = malloc((size_t)S * S * 3), *mask = malloc((size_t)S * S);
    if (!rgb || !mask) {
        free(rgb);
        free(mask);
        return stfpm_set_error(STFPM_ERR_OOM, "demo: out of host memory");
    }
    stfpm_status s = STFPM_OK;
    for (int i = 0; i < o.n_train && s == STFPM_OK; i++) {
        s = stfpm_demo_render(&o, 0, i, -1, rgb, NULL);
        snprintf(buf, sizeof buf, "%s/train/good/%03d.png", outdir, i);
        if (s == STFPM_OK) s = stfpm_png_write(buf, S, S, 3, rgb);
    }
    for (int i = 0; i < o.n_test_good && s == STFPM_OK; i++) {
        s = stfpm_demo_render(&o, 1, i, -1, rgb, NULL);
        snprintf(buf, sizeof buf, "%s/test/good/%03d.png", outdir, i);
        if (s == STFPM_OK) s = stfpm_png_write(buf, S, S, 3, rgb);
    }
    for (int j = 0; j < o.n_test_bad && s == STFPM_OK; j++) {
        int kind = j % 4;
        const char *name = stfpm_demo_defect_names[kind];
        s = stfpm_demo_render(&o, 1, o.n_test_good + j, kind, rgb, mask);
        snprintf(buf, sizeof buf, "%s/test/%s/%03d.png", outdir, name, j / 4);
        if (s == STFPM_OK) s = stfpm_png_write(buf, S, S, 3, rgb);
        snprintf(buf, sizeof buf, "%s/ground_truth/%s/%03d_mask.png", outdir, name, j / 4);
        if (s == STFPM_OK) s = stfpm_png_write(buf, S, S, 1, mask);
    }
    free(rgb);
    free(mask);
    return s;
}
