#!/usr/bin/env python3
"""Reference values for the metrics tests (tests/test_metrics_*.c).

Writes tests/ref/metrics_ref.h: deterministic inputs (score vectors, anomaly maps, masks)
and the values of each metric computed by a direct Python transcription of its definition
(SPEC section 6):

- AUROC: sklearn.metrics.roc_auc_score.
- Regions: scipy.ndimage.label with a 3x3 structure of ones (8-connectivity).
- AU-PRO (MVTec AD): a direct loop over every distinct score t (prediction score >= t), FPR over
  all normal pixels of all images, PRO = mean region overlap, plus (0,0) and (1,1); the MVTec AD
  evaluation code's trapezoid() with x_max = limit, divided by limit. It is cross-checked
  against a transcription of MVTec's compute_pro() (sort + cumsum).
- Paper PRO: the STFPM authors' evaluate.py pro() (gdwang08/STFPM), scipy labels instead of
  skimage (same 8-connectivity), the FPR cut taken from the same limit.

Run:  .venv-bench/bin/python tests/ref/gen_metrics_ref.py   (numpy, scipy, scikit-learn; the
      environment of bench/setup_env.sh)
"""
import os
from bisect import bisect

import numpy as np
from scipy.ndimage import label
from sklearn.metrics import auc, roc_auc_score

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "metrics_ref.h")
STRUCT8 = np.ones((3, 3), dtype=int)
LIMITS = [0.3, 0.1, 1.0]

# --------------------------------------------------------------------------------------------
# Definitions


def regions_of(masks):
    """List of (image index, boolean region mask), all images, scipy 8-connectivity."""
    out = []
    for i, m in enumerate(masks):
        lab, n = label(m != 0, structure=STRUCT8)
        for k in range(1, n + 1):
            out.append((i, lab == k))
    return out


def mvtec_trapezoid(x, y, x_max=None):
    """MVTec AD evaluation code, generic_util.trapezoid (finite inputs)."""
    x = np.array(x)
    y = np.array(y)
    correction = 0.0
    if x_max is not None:
        if x_max not in x:
            ins = bisect(x, x_max)
            assert 0 < ins < len(x)
            y_interp = y[ins - 1] + ((y[ins] - y[ins - 1]) * (x_max - x[ins - 1]) / (x[ins] - x[ins - 1]))
            correction = 0.5 * (y_interp + y[ins - 1]) * (x_max - x[ins - 1])
        mask = x <= x_max
        x = x[mask]
        y = y[mask]
    return np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction


def aupro_direct(maps, masks, limit):
    """AU-PRO by a direct loop over the distinct thresholds."""
    maps = maps.astype(np.float64)
    normal = masks == 0
    regions = regions_of(masks)
    xs, ys = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        pred = maps >= t
        xs.append(min(np.logical_and(pred, normal).sum() / normal.sum(), 1.0))
        ys.append(min(np.mean([pred[i][r].sum() / r.sum() for i, r in regions]), 1.0))
    xs.append(1.0)
    ys.append(1.0)
    return mvtec_trapezoid(xs, ys, x_max=limit) / limit


def aupro_mvtec_cumsum(maps, masks, limit):
    """Transcription of the MVTec AD evaluation code's compute_pro() + trapezoid()."""
    shape = maps.shape
    fp_changes = np.zeros(shape, dtype=np.uint32)
    pro_changes = np.zeros(shape, dtype=np.float64)
    num_ok, num_regions = 0, 0
    for i, gt in enumerate(masks):
        lab, n = label(gt != 0, structure=STRUCT8)
        num_regions += n
        ok = lab == 0
        num_ok += ok.sum()
        fp_changes[i, ok] = 1
        for k in range(n):
            r = lab == (k + 1)
            pro_changes[i, r] = 1.0 / r.sum()
    s = maps.ravel().astype(np.float64)
    idx = np.argsort(s, kind="stable")[::-1]
    s = s[idx]
    fprs = np.cumsum(fp_changes.ravel()[idx], dtype=np.float64) / num_ok
    pros = np.cumsum(pro_changes.ravel()[idx]) / num_regions
    keep = np.append(np.diff(s) != 0, np.True_)
    fprs = np.clip(fprs[keep], None, 1.0)
    pros = np.clip(pros[keep], None, 1.0)
    fprs = np.concatenate(([0.0], fprs, [1.0]))
    pros = np.concatenate(([0.0], pros, [1.0]))
    return mvtec_trapezoid(fprs, pros, x_max=limit) / limit


def rescale(x):
    return (x - x.min()) / (x.max() - x.min())


def pro_paper(maps, masks, fpr_limit):
    """gdwang08/STFPM evaluate.py pro(), with scipy labels; scores taken as float64."""
    scores = maps.astype(np.float64)
    masks = masks != 0
    max_step = 4000
    max_th = scores.max()
    min_th = scores.min()
    delta = (max_th - min_th) / max_step
    labels = [label(m, structure=STRUCT8) for m in masks]
    pros_mean, fprs = [], []
    binary_score_maps = np.zeros_like(scores, dtype=bool)
    masks_neg = ~masks
    for step in range(max_step):
        thred = max_th - step * delta
        binary_score_maps[scores <= thred] = 0
        binary_score_maps[scores > thred] = 1
        pro = []
        for i in range(len(binary_score_maps)):
            lab, n = labels[i]
            for k in range(1, n + 1):
                r = lab == k
                pro.append(binary_score_maps[i][r].sum() / r.sum())
        pros_mean.append(np.array(pro).mean())
        fprs.append(np.logical_and(masks_neg, binary_score_maps).sum() / masks_neg.sum())
    pros_mean = np.array(pros_mean)
    fprs = np.array(fprs)
    idx = fprs <= fpr_limit
    return auc(rescale(fprs[idx]), rescale(pros_mean[idx]))


# --------------------------------------------------------------------------------------------
# Inputs


def f32(x):
    return np.asarray(x, dtype=np.float32)


def auroc_cases(rng):
    cases = []
    # ties on a 0.1 grid
    s = f32(np.round(rng.uniform(0, 1, 50), 1))
    l = (rng.uniform(0, 1, 50) < 0.4).astype(np.uint8)
    cases.append(("ties_grid", s, l))
    # heavy ties: 4 levels, labels correlated with the level
    lev = rng.integers(0, 4, 200)
    s = f32(lev)
    l = (rng.uniform(0, 1, 200) < 0.15 + 0.2 * lev).astype(np.uint8)
    cases.append(("heavy_ties", s, l))
    # continuous, negative values, -0.0 and +0.0 mixed (the same score)
    s = f32(rng.normal(0, 2, 37))
    s[[3, 9, 20]] = f32([-0.0, 0.0, -0.0])
    s[[4, 11]] = f32([0.0, -0.0])
    l = (rng.uniform(0, 1, 37) < 0.5).astype(np.uint8)
    l[3], l[4], l[9] = 1, 0, 1
    cases.append(("signed_zero", s, l))
    # a tiny hand-made case; label values other than 1 count as positive
    cases.append(("tiny", f32([0.1, 0.4, 0.35, 0.8, 0.35]), np.array([0, 0, 7, 1, 1], np.uint8)))
    # larger, mild separation
    l = (rng.uniform(0, 1, 400) < 0.3).astype(np.uint8)
    s = f32(rng.normal(0, 1, 400) + 0.8 * l)
    cases.append(("separated", s, l))
    return [(n, s, l, float(roc_auc_score(l != 0, s))) for n, s, l in cases]


def case_shapes(rng):
    """4 images of 16 x 16 with hand-drawn regions (diagonal contacts, a ring, a U, an
    anti-diagonal line, single pixels, edges) and one normal image; continuous scores."""
    m = np.zeros((4, 16, 16), np.uint8)
    m[0, 2:6, 2:7] = 1                      # rectangle
    m[0, 10:12, 7:9] = 1                    # two blocks touching only diagonally: one region
    m[0, 12:14, 9:11] = 1
    m[0, 14, 1] = 1                         # single pixel
    m[0, 2:8, 10] = 1                       # U open at the top: arms joined at the bottom
    m[0, 2:8, 14] = 1
    m[0, 7, 10:15] = 1
    m[1, 3:13, 3:13] = 1                    # ring with a hole
    m[1, 5:11, 5:11] = 0
    m[1, 13, 13] = 1                        # diagonal contact with the ring's corner
    m[1, 0:2, 14:16] = 1                    # at the image corner
    m[1, 7:9, 7:9] = 1                      # island inside the hole: own region
    for i in range(16):                     # anti-diagonal line (NE contacts only)
        m[2, i, 15 - i] = 1
    m[2, 14:16, 5:9] = 1                    # at the bottom edge
    m[2, 1, 1] = m[2, 2, 2] = m[2, 1, 3] = m[2, 2, 4] = m[2, 1, 5] = 1   # zigzag
    # image 3: normal (empty mask)
    maps = rng.uniform(0, 1, m.shape) + 0.7 * m * rng.uniform(0.2, 1, m.shape)
    maps[3, 4:8, 4:8] += 0.6                # false positives in the normal image
    return "shapes_16x16", f32(maps), m


def case_heavy_ties(rng):
    """5 images of 8 x 12, scores on 5 levels {0, .25, .5, .75, 1}: ties everywhere and
    scores falling on the paper's threshold grid. Normal pixels mostly low, anomalous high."""
    m = np.zeros((5, 8, 12), np.uint8)
    m[0, 1:3, 1:4] = 1
    m[0, 5:8, 8:12] = 1
    m[1, 0:8, 5] = 1
    m[1, 3, 0:2] = 1
    m[2, 2:6, 2:10] = 1
    m[2, 3:5, 4:8] = 0
    m[3, 6, 6] = 1
    m[3, 0, 11] = 1
    # image 4: normal
    lev_normal = rng.choice(5, size=m.shape, p=[0.3, 0.3, 0.25, 0.1, 0.05])
    lev_anom = rng.choice(5, size=m.shape, p=[0.05, 0.1, 0.2, 0.3, 0.35])
    lev = np.where(m != 0, lev_anom, lev_normal)
    return "heavy_ties_8x12", f32(lev * 0.25), m


def case_random_blobs(rng):
    """3 images of 20 x 20, masks from a thresholded smoothed noise field (many regions),
    normal-distributed scores rounded to 0.05 (negative values, moderate ties)."""
    noise = rng.normal(0, 1, (3, 22, 22))
    sm = (noise[:, :-2, :-2] + noise[:, 1:-1, 1:-1] + noise[:, 2:, 2:] + noise[:, 2:, :-2]
          + noise[:, :-2, 2:]) / 5
    m = (sm > 0.55).astype(np.uint8)
    maps = np.round(rng.normal(0, 1, m.shape) + 1.5 * m, 2) * 0.5
    # make the masks use a value other than 1 in places: any non-zero value is anomalous
    m[m != 0] = np.where(rng.uniform(0, 1, m[m != 0].shape) < 0.2, 255, 1)
    return "random_blobs_20x20", f32(maps), m


# --------------------------------------------------------------------------------------------
# Output


def c_floats(a):
    vals = [np.format_float_scientific(np.float32(v), unique=True, trim="-") + "f" for v in a.ravel()]
    return ",".join(vals)


def c_ints(a):
    return ",".join(str(int(v)) for v in a.ravel())


def wrap(s, width=100):
    out, line = [], ""
    for tok in s.split(","):
        if len(line) + len(tok) + 1 > width:
            out.append(line)
            line = ""
        line += tok + ","
    if line:
        out.append(line)
    return "\n".join("    " + l for l in out)


def main():
    rng = np.random.default_rng(20240607)
    lines = [
        "/* Generated by tests/ref/gen_metrics_ref.py; do not edit. Inputs and expected values of",
        " * the metrics (sklearn roc_auc_score, scipy.ndimage.label 8-connectivity, a direct MVTec",
        " * AU-PRO loop, the STFPM authors' PRO with 4000 thresholds). */",
        "#ifndef STFPM_METRICS_REF_H",
        "#define STFPM_METRICS_REF_H",
        "#include <math.h>",
        "#include <stdint.h>",
        "",
        "typedef struct ref_auroc_case {",
        "    const char *name;",
        "    int n;",
        "    const float *scores;",
        "    const uint8_t *labels;",
        "    double auc;",
        "} ref_auroc_case;",
        "",
        "#define REF_N_LIMITS %d" % len(LIMITS),
        "typedef struct ref_pixel_case {",
        "    const char *name;",
        "    int n_images, h, w;",
        "    const float *maps;          /* n_images * h * w */",
        "    const uint8_t *masks;       /* n_images * h * w, non-zero = anomalous */",
        "    const int32_t *labels;      /* scipy.ndimage.label of each mask, 8-connectivity */",
        "    int n_regions[8];           /* per image (at most 8 images) */",
        "    double pixel_auroc;",
        "    double limits[REF_N_LIMITS];",
        "    double aupro[REF_N_LIMITS];",
        "    double pro_paper[REF_N_LIMITS];",
        "} ref_pixel_case;",
        "",
    ]
    auroc = auroc_cases(rng)
    for k, (name, s, l, a) in enumerate(auroc):
        lines.append("static const float ref_auroc_scores_%d[] = {\n%s\n};" % (k, wrap(c_floats(s))))
        lines.append("static const uint8_t ref_auroc_labels_%d[] = {\n%s\n};" % (k, wrap(c_ints(l))))
    lines.append("static const ref_auroc_case ref_auroc_cases[] = {")
    for k, (name, s, l, a) in enumerate(auroc):
        lines.append('    {"%s", %d, ref_auroc_scores_%d, ref_auroc_labels_%d, %.17g},' % (name, len(s), k, k, a))
    lines.append("};")
    lines.append("#define REF_N_AUROC_CASES %d" % len(auroc))
    lines.append("")

    pix = []
    for make in (case_shapes, case_heavy_ties, case_random_blobs):
        name, maps, masks = make(rng)
        assert maps.dtype == np.float32 and len(maps) <= 8
        labs, counts = [], []
        for m in masks:
            lab, n = label(m != 0, structure=STRUCT8)
            labs.append(lab.astype(np.int32))
            counts.append(n)
        pauc = float(roc_auc_score(masks.ravel() != 0, maps.ravel()))
        aupro, paper = [], []
        for lim in LIMITS:
            a = float(aupro_direct(maps, masks, lim))
            b = float(aupro_mvtec_cumsum(maps, masks, lim))
            assert abs(a - b) < 1e-9, (name, lim, a, b)
            aupro.append(a)
            paper.append(float(pro_paper(maps, masks, lim)))
        print("%-20s %d x %dx%d regions %s pixel AUROC %.6f AU-PRO %s paper PRO %s" % (
            name, maps.shape[0], maps.shape[1], maps.shape[2], counts, pauc,
            ["%.6f" % v for v in aupro], ["%.6f" % v for v in paper]))
        pix.append((name, maps, masks, np.stack(labs), counts, pauc, aupro, paper))

    def dlist(v):
        return "{" + ", ".join("NAN" if np.isnan(x) else "%.17g" % x for x in v) + "}"

    for k, (name, maps, masks, labs, counts, pauc, aupro, paper) in enumerate(pix):
        lines.append("static const float ref_pixel_maps_%d[] = {\n%s\n};" % (k, wrap(c_floats(maps))))
        lines.append("static const uint8_t ref_pixel_masks_%d[] = {\n%s\n};" % (k, wrap(c_ints(masks))))
        lines.append("static const int32_t ref_pixel_labels_%d[] = {\n%s\n};" % (k, wrap(c_ints(labs))))
    lines.append("static const ref_pixel_case ref_pixel_cases[] = {")
    for k, (name, maps, masks, labs, counts, pauc, aupro, paper) in enumerate(pix):
        lines.append('    {"%s", %d, %d, %d, ref_pixel_maps_%d, ref_pixel_masks_%d, ref_pixel_labels_%d,'
                     % (name, maps.shape[0], maps.shape[1], maps.shape[2], k, k, k))
        lines.append("     {%s}, %.17g, %s, %s, %s}," % (", ".join(map(str, counts)), pauc, dlist(LIMITS),
                                                      dlist(aupro), dlist(paper)))
    lines.append("};")
    lines.append("#define REF_N_PIXEL_CASES %d" % len(pix))
    lines.append("")
    lines.append("#endif")
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s (%d bytes)" % (OUT, os.path.getsize(OUT)))


if __name__ == "__main__":
    main()
