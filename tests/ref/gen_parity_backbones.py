#!/usr/bin/env python3
"""Generate tests/ref/parity_backbones_ref.h: PyTorch parity references of the other backbones
(resnet34, resnet50, wide_resnet50_2; ResNet-18 is tests/ref/gen_parity.py's), with the same
closed-form weights and input as gen_parity.py (tests/parity_util.c computes them in C):

  - every parameter / BN statistic name and shape of torchvision's model up to layer4 (fc and
    num_batches_tracked left out), in state_dict order, so the C side can check its layout;
  - one case per backbone, input 2x3x64x64 (resnet34) or 1x3x64x64, teacher (eval) and student (train-mode BN), in
    float64: sampled pyramid features at layer1..3 (teacher eval, student eval, student train),
    the STFPM loss and its per-level terms, sampled first-step gradients of every student
    parameter, sampled BN running statistics after the first train forward, and the sampled
    change of every parameter after one SGD step (lr 0.4, momentum 0.9, weight decay 1e-4);
    whether float32 PyTorch itself departs from float64 in the gradients (a ReLU branch flipped
    by rounding: *_AGG_GRAD) and its error on the train-mode features (*_F32_TRAIN_ERR).

Samples are fewer than gen_parity.py's (FEAT_SAMPLES, PARAM_SAMPLES below) to keep the header
small; each record also holds the whole tensor's sum and sum of squares.

Run:  .venv-bench/bin/python tests/ref/gen_parity_backbones.py [search]   (from any directory;
      about two minutes on 2 cores). `search` prints the first-forward ReLU margin of input variants
      0..SEARCH-1 of every backbone (see gen_parity.py, site_margins) to choose CASES' variants.
Needs torch, torchvision, numpy (the environment of bench/setup_env.sh). The output is
committed, so building and testing never need Python.
"""
import os
import sys
import time

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_parity as gp  # noqa: E402  (closed-form weights, records, C emission)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "parity_backbones_ref.h")
FEAT_SAMPLES = 96
PARAM_SAMPLES = 6        # first 4 + 2 pseudo-random
SEARCH = 16
# A case whose float32 PyTorch first-step gradients depart from float64 by more than this (a ReLU
# or max-pool branch flipped by float32 rounding, see gen_parity.py's site_margins) is marked
# agg_grad: the C test holds its gradients and parameter changes to the whole-tensor sum and sum
# of squares only, as test_parity_resnet.c does for b1_256.
AGG_GRAD_ABOVE = 5e-4

# (backbone, input variant, N, H, W). Variants: the largest first-forward ReLU margin among
# 0..SEARCH-1 (None: searched on every run; resnet34's 2 (6.2e-6), resnet50's 15 (5.2e-6) and
# wide_resnet50_2's 14 (2.7e-6) were found so). The Bottleneck networks run one image: half the ReLU inputs of two, so larger margins.
CASES = [("resnet34", 2, 2, 64, 64),
         ("resnet50", 15, 1, 64, 64),
         ("wide_resnet50_2", 14, 1, 64, 64)]


def full_net(name):
    return getattr(torchvision.models, name)(weights=None)


def make_net(name):
    m = full_net(name)
    m.layer4 = None
    m.fc = None
    return m


def feat_idx(numel, key):
    if numel <= FEAT_SAMPLES:
        return np.arange(numel)
    rng = np.random.default_rng(gp.fnv1a32(key))
    return np.sort(rng.choice(numel, FEAT_SAMPLES, replace=False))


def param_idx(numel, key):
    if numel <= PARAM_SAMPLES:
        return np.arange(numel)
    rng = np.random.default_rng(gp.fnv1a32(key))
    rest = rng.choice(np.arange(4, numel), PARAM_SAMPLES - 4, replace=False)
    return np.concatenate([np.arange(4), np.sort(rest)])


def margin(name, n, h, w, variant):
    s = make_net(name)
    gp.fill_closed_form(s, "student")
    s.double().train()
    x = torch.from_numpy(gp.closed_form_input(n, h, w, variant)).double()
    out, hooks = gp.site_margins(s)
    with torch.no_grad():
        gp.pyramid(s, x)
    for hk in hooks:
        hk.remove()
    return min(out)


def run_case(name, n, h, w, variant, dtype):
    x = torch.from_numpy(gp.closed_form_input(n, h, w, variant)).to(dtype)
    teacher, student = make_net(name), make_net(name)
    gp.fill_closed_form(teacher, "teacher")
    gp.fill_closed_form(student, "student")
    teacher.to(dtype).eval()
    student.to(dtype)
    names = gp.param_names(student)
    init = {k: v.detach().clone() for k, v in student.state_dict().items()}
    o = {"names": names}
    with torch.no_grad():
        tf = gp.pyramid(teacher, x)
        student.eval()
        o["teacher_eval"] = tf
        o["student_eval"] = gp.pyramid(student, x)
    student.train()
    opt = torch.optim.SGD(student.parameters(), lr=gp.LR, momentum=gp.MOMENTUM, weight_decay=gp.WD)
    opt.zero_grad()
    sf = gp.pyramid(student, x)
    loss, per = gp.stfpm_loss(tf, sf)
    loss.backward()
    o["loss"] = float(loss.detach())
    o["per_level"] = [float(p.detach()) for p in per]
    o["student_train"] = [f.detach().clone() for f in sf]
    o["grad"] = {k: p.grad.detach().clone() for k, p in student.named_parameters()}
    o["stat1"] = {k: v.detach().clone() for k, v in student.state_dict().items()
                  if k.endswith("running_mean") or k.endswith("running_var")}
    opt.step()
    o["step1"] = {k: (v.detach() - init[k]).clone() for k, v in student.state_dict().items() if k in names}
    return o


def records(o, key):
    recs = []
    for tag in ("teacher_eval", "student_eval", "student_train"):
        for l, f in enumerate(o[tag]):
            nm = "%s.layer%d" % (tag, l + 1)
            recs.append(gp.Rec(nm, f, feat_idx(f.numel(), key + nm)))
    for k, g in o["grad"].items():
        recs.append(gp.Rec("grad." + k, g, param_idx(g.numel(), key + "grad." + k)))
    for k, v in o["stat1"].items():
        recs.append(gp.Rec("stat1." + k, v, param_idx(v.numel(), key + "stat1." + k)))
    for k in o["names"]:   # running statistics: stat1 above
        if k.endswith("running_mean") or k.endswith("running_var"):
            continue
        recs.append(gp.Rec("step1." + k, o["step1"][k], param_idx(o["step1"][k].numel(), key + "step1." + k)))
    return recs


def tensor_of(o, name):
    tag, _, rest = name.partition(".")
    if tag in ("teacher_eval", "student_eval", "student_train"):
        return o[tag][int(rest[len("layer"):]) - 1]
    return o[tag][rest]


def best_variant(name, n, h, w):
    res = []
    for k in range(SEARCH):
        res.append((margin(name, n, h, w, k), k))
    res.sort(reverse=True)
    return res[0][1], res[0][0]


def main():
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    if sys.argv[1:] == ["search"]:
        for name, _, n, h, w in CASES:
            for k in range(SEARCH):
                print("%s variant %d: margin %.3g" % (name, k, margin(name, n, h, w, k)), flush=True)
        return
    parts = []
    for name, variant, n, h, w in CASES:
        t0 = time.time()
        if variant is None:
            variant, mg = best_variant(name, n, h, w)
        else:
            mg = margin(name, n, h, w, variant)
        cname = "parity_bb_" + name
        # the layout: torchvision's full model (layer4 included)
        sd = full_net(name).state_dict()
        layout = [(k, tuple(v.shape)) for k, v in sd.items()
                  if not k.endswith("num_batches_tracked") and not k.startswith("fc.")]
        parts.append("static const parity_layout_entry %s_layout[%d] = {\n" % (cname, len(layout)))
        for k, shp in layout:
            s4 = list(shp) + [0] * (4 - len(shp))
            parts.append('    {"%s", %d, {%d, %d, %d, %d}},\n' % (k, len(shp), *s4))
        parts.append("};\n")
        o64 = run_case(name, n, h, w, variant, torch.float64)
        o32 = run_case(name, n, h, w, variant, torch.float32)
        recs = records(o64, name)
        groups = {}
        for r in recs:
            g = r.name.split(".")[0]
            groups[g] = max(groups.get(g, 0.0), gp.rec_err(r, tensor_of(o32, r.name)))
        agg = int(max(groups["grad"], groups["step1"]) > AGG_GRAD_ABOVE)
        info = ("case %s: input %dx3x%dx%d variant %d, first-forward ReLU margin %.3g; loss %.7f;\n"
                "   torch float32 vs float64: loss rel. %.2g; records by group %s;\n"
                "   gradients held to %s"
                % (name, n, h, w, variant, mg, o64["loss"], abs(o32["loss"] - o64["loss"]) / o64["loss"],
                   ", ".join("%s %.2g" % kv for kv in groups.items()),
                   "sum / sum of squares only (float32 torch flips a branch)" if agg else "samples"))
        print(info + "  (%.0f s)" % (time.time() - t0), flush=True)
        parts.append("/* %s */\n" % info.replace("\n", "\n *"))
        gp.emit_recs(parts, cname, recs)
        parts.append("static const parity_case %s = {\n    \"%s\", %d, %d, %d, %d, %.6g, 1,\n"
                     % (cname, name, n, h, w, variant, mg))
        parts.append("    {%.17g, 0, 0},\n" % o64["loss"])
        parts.append("    {{%s}, {0, 0, 0}, {0, 0, 0}},\n" % ", ".join("%.17g" % v for v in o64["per_level"]))
        parts.append("    %s_recs, %d, %s_idx, %s_val};\n" % (cname, len(recs), cname, cname))
        parts.append("#define %s_AGG_GRAD %d\n" % (cname.upper(), agg))
        # float32 PyTorch's own error (record measure) on the student's train-mode features: train-mode
        # BN over few values per channel amplifies rounding; the C test allows a multiple of it
        parts.append("#define %s_F32_TRAIN_ERR %.3g\n\n" % (cname.upper(), groups["student_train"]))
    head = ("/* Generated by tests/ref/gen_parity_backbones.py with torch %s, torchvision %s: do not edit.\n"
            " * Per backbone: torchvision's parameter layout to layer4, and PyTorch float64 references of\n"
            " * the closed-form teacher / student (tests/parity_util.c) conv1..layer3: sampled pyramid\n"
            " * features, the STFPM loss, sampled first-step gradients, BN running statistics after the\n"
            " * first train forward and parameter changes after one SGD step (lr %g, momentum %g,\n"
            " * weight decay %g). */\n"
            "#ifndef STFPM_PARITY_BACKBONES_REF_H\n#define STFPM_PARITY_BACKBONES_REF_H\n"
            "#include \"parity_util.h\"\n"
            "#define PARITY_BB_LR %gf\n#define PARITY_BB_MOMENTUM %gf\n#define PARITY_BB_WD %gf\n\n"
            "typedef struct parity_layout_entry {\n    const char *name;\n    int ndim;\n"
            "    int shape[4];\n} parity_layout_entry;\n\n"
            % (torch.__version__, torchvision.__version__, gp.LR, gp.MOMENTUM, gp.WD, gp.LR, gp.MOMENTUM, gp.WD))
    with open(OUT, "w") as f:
        f.write(head + "".join(parts) + "#endif\n")
    print("wrote %s (%d bytes)" % (OUT, os.path.getsize(OUT)))


if __name__ == "__main__":
    main()
