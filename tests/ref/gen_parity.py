#!/usr/bin/env python3
"""Generate the PyTorch parity references of the whole network:

  tests/ref/parity_ref.h       closed-form weights (no weight file), ResNet-18 conv1..layer3 teacher
                               (eval) and student (train-mode BN): pyramid features, STFPM loss of
                               each SGD step, every student gradient of the first step, BN running
                               statistics, the parameter changes after the first and the last SGD
                               step (lr 0.4, momentum 0.9, weight decay 1e-4), sampled, at input
                               2x3x64x64 and 1x3x128x128 (3 steps) and 1x3x256x256 (1 step).
  tests/ref/parity_real_ref.h  ImageNet teacher weights from $STFPM_SHARED_DIR/weights and one
                               MVTec AD bottle image through torchvision's preprocessing: the
                               preprocessed input and the teacher's pyramid features (and a check,
                               here, that the image alone and in a batch of two give the same
                               features).

Used by tests/test_parity_resnet.c and tests/test_parity_real.c (with tests/parity_util.c, which
computes the same closed-form weights and input in C).

Run:  .venv-bench/bin/python tests/ref/gen_parity.py [synthetic] [real]   (the environment of
      bench/setup_env.sh; from any directory, about 4 minutes on 2 cores). The real-data folder
      STFPM_SHARED_DIR (default ../shared next to the source tree, as for the tests) is
      optional: without it parity_real_ref.h is left as it is.
      .venv-bench/bin/python tests/ref/gen_parity.py search N H W K0 K1   ranks input variants
      K0..K1-1 by their ReLU margin (see site_margins), to choose CASES' variants.
      Needs torch, torchvision, numpy, safetensors, PIL.
The outputs are committed, so building and testing never need Python.

The references are computed in float64 from the float32 weights and input (the "true" values the
float32 engine approximates); the float32 PyTorch result is compared with them too and its error
printed and written into the header comments, to show what float32 accumulation alone costs.

Closed-form values (identical formulas in tests/parity_util.c; double math, then cast to float32):
  h(NAME)  = FNV-1a 32-bit of the bytes of "<role>.<torchvision name>", role teacher or student
  ph       = (h % 10007) / 10007 * 2 pi
  conv (cout, cin, k, k), flat index i:
           sqrt(2 / (cout k k)) * 1.7 * sin(0.731 i + 1e-4 i^2 + ph)
           (the 1e-4 i^2 chirp keeps neighbouring filters from being near-copies of each other)
  BN weight 1 + 0.2 sin(0.37 i + ph), bias 0.1 sin(0.53 i + ph),
  running_mean 0.1 sin(0.29 i + ph), running_var 1 + 0.5 (1 + sin(0.41 i + ph)) / 2
  input (N, 3, H, W), flat index i, variant k (per case, see CASES):
           1.5 sin(0.0123 i + 0.3 + 0.37 k) + 0.5 sin(fmod(0.00071 i^2, 6.283))
"""
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.environ.get("STFPM_SHARED_DIR", os.path.join(os.path.dirname(ROOT), "shared"))
OUT_SYN = os.path.join(HERE, "parity_ref.h")
OUT_REAL = os.path.join(HERE, "parity_real_ref.h")

LR, MOMENTUM, WD = 0.4, 0.9, 1e-4
FEAT_SAMPLES = 512       # sampled positions per feature level
PARAM_SAMPLES = 48       # per parameter tensor: first 16 + 32 pseudo-random
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


# ------------------------------------------------------------------------------------------------
# closed-form weights and input (mirrored in tests/parity_util.c)

def fnv1a32(s):
    h = 0x811C9DC5
    for b in s.encode():
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def phase(role, name):
    return (fnv1a32(role + "." + name) % 10007) / 10007.0 * 6.283185307179586


def closed_form(role, name, shape):
    """float32 numpy array of the closed-form values of parameter `name` (torchvision name)."""
    n = int(np.prod(shape))
    ph = phase(role, name)
    s = math.sin
    if len(shape) == 4:
        scale = math.sqrt(2.0 / (shape[0] * shape[2] * shape[3])) * 1.7
        v = [scale * s(0.731 * i + 1e-4 * i * i + ph) for i in range(n)]
    elif name.endswith("running_mean"):
        v = [0.1 * s(0.29 * i + ph) for i in range(n)]
    elif name.endswith("running_var"):
        v = [1.0 + 0.5 * (1.0 + s(0.41 * i + ph)) / 2.0 for i in range(n)]
    elif name.endswith("weight"):
        v = [1.0 + 0.2 * s(0.37 * i + ph) for i in range(n)]
    elif name.endswith("bias"):
        v = [0.1 * s(0.53 * i + ph) for i in range(n)]
    else:
        raise ValueError(name)
    return np.asarray(v, dtype=np.float64).astype(np.float32).reshape(shape)


def closed_form_input(n, h, w, variant):
    cnt = n * 3 * h * w
    phi = 0.3 + 0.37 * variant
    v = [1.5 * math.sin(0.0123 * i + phi) + 0.5 * math.sin(math.fmod(0.00071 * i * i, 6.283))
         for i in range(cnt)]
    return np.asarray(v, dtype=np.float64).astype(np.float32).reshape(n, 3, h, w)


# ------------------------------------------------------------------------------------------------
# network

def make_net():
    m = torchvision.models.resnet18(weights=None)
    m.layer4 = None
    m.fc = None
    return m


def param_names(m):
    """The parameter / statistic names the C side has, in state_dict order."""
    return [k for k in m.state_dict().keys() if not k.endswith("num_batches_tracked")]


def fill_closed_form(m, role):
    sd = m.state_dict()
    with torch.no_grad():
        for k in param_names(m):
            sd[k].copy_(torch.from_numpy(closed_form(role, k, tuple(sd[k].shape))))


def pyramid(m, x):
    x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    f1 = m.layer1(x)
    f2 = m.layer2(f1)
    f3 = m.layer3(f2)
    return [f1, f2, f3]


def stfpm_loss(tf, sf):
    """SPEC section 3: per level mean over (b, i, j) of sum_c (t/|t| - s/|s|)^2, summed."""
    per = []
    for t, s in zip(tf, sf):
        d = (F.normalize(t, dim=1) - F.normalize(s, dim=1)).pow(2).sum(1)
        per.append(d.mean())
    return sum(per), per


# ------------------------------------------------------------------------------------------------
# ReLU / max-pool margins.
# The gradient is a discontinuous function of the activations: where a ReLU input lies within
# float32 rounding of 0 (or two max-pool candidates within rounding of each other), a float32
# engine may take the other branch, which changes the gradient at that position by O(1) and the
# weight gradients by O(1 / sqrt(positions)) -- 1e-2 .. 1 at layer3 of a 64x64 input. The input
# variant of each case is chosen (search mode) so that every ReLU input of the student's first
# train forward is at least `margin` * RMS away from 0 (and every positive max-pool maximum that far
# from the runner-up). Later SGD steps cannot be protected this way (see below).

def site_margins(model):
    out = []

    def pre(m, inp):
        v = inp[0].detach()
        rms = float(v.pow(2).mean().sqrt())
        if isinstance(m, torch.nn.ReLU):
            out.append(float(v.abs().min()) / rms)
        else:
            k, st, pd = m.kernel_size, m.stride, m.padding
            u = F.unfold(v.reshape(-1, 1, *v.shape[2:]), k, padding=pd, stride=st)
            inside = F.unfold(torch.ones(1, 1, *v.shape[2:], dtype=v.dtype), k, padding=pd, stride=st)
            u = torch.where(inside > 0, u, torch.full_like(u, -1e30))
            top = u.topk(2, dim=1).values
            gap = ((top[:, 0] - top[:, 1]) / rms)[top[:, 0] > 0]
            out.append(float(gap.min()) if gap.numel() else 1.0)
    hooks = [m.register_forward_pre_hook(pre) for m in model.modules()
             if isinstance(m, (torch.nn.ReLU, torch.nn.MaxPool2d))]
    return out, hooks


def first_forward_margin(n, h, w, variant):
    s = make_net()
    fill_closed_form(s, "student")
    s.double().train()
    x = torch.from_numpy(closed_form_input(n, h, w, variant)).double()
    out, hooks = site_margins(s)
    with torch.no_grad():
        pyramid(s, x)
    for hk in hooks:
        hk.remove()
    return min(out)


# ------------------------------------------------------------------------------------------------
# records: a named tensor, its full-tensor sum / sum of squares, and sampled values

class Rec:
    def __init__(self, name, t, idx):
        a = t.detach().to(torch.float64).reshape(-1).cpu().numpy()
        self.name, self.numel = name, a.size
        self.sum, self.sumsq = float(a.sum()), float((a * a).sum())
        self.idx = np.asarray(idx, dtype=np.int64)
        self.val = a[self.idx]


def feat_idx(numel, key):
    rng = np.random.default_rng(fnv1a32(key))
    if numel <= FEAT_SAMPLES:
        return np.arange(numel)
    return np.sort(rng.choice(numel, FEAT_SAMPLES, replace=False))


def param_idx(numel, key):
    if numel <= PARAM_SAMPLES:
        return np.arange(numel)
    rng = np.random.default_rng(fnv1a32(key))
    rest = rng.choice(np.arange(16, numel), PARAM_SAMPLES - 16, replace=False)
    return np.concatenate([np.arange(16), np.sort(rest)])


def rec_err(ref, t):
    """The error measure of tests/parity_util.c: max over samples of |got - want| / RMS(want),
    |sum diff| / (numel RMS), |sumsq diff| / (2 sumsq)."""
    a = t.detach().to(torch.float64).reshape(-1).cpu().numpy()
    rms = math.sqrt(ref.sumsq / ref.numel) if ref.sumsq > 0 else 1.0
    e = float(np.max(np.abs(a[ref.idx] - ref.val))) / rms
    e = max(e, abs(float(a.sum()) - ref.sum) / (ref.numel * rms))
    if ref.sumsq > 0:
        e = max(e, abs(float((a * a).sum()) - ref.sumsq) / (2 * ref.sumsq))
    return e


# ------------------------------------------------------------------------------------------------
# the synthetic case: teacher + student with closed-form weights

def run_case(n, h, w, variant, dtype, n_steps, lr=LR, momentum=MOMENTUM, wd=WD):
    """Everything the C test compares, computed with `dtype`. Returns a dict of tensors."""
    x = torch.from_numpy(closed_form_input(n, h, w, variant)).to(dtype)
    teacher, student = make_net(), make_net()
    fill_closed_form(teacher, "teacher")
    fill_closed_form(student, "student")
    teacher.to(dtype).eval()
    student.to(dtype)
    for m in student.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert m.momentum == 0.1 and m.eps == 1e-5
    names = param_names(student)
    init = {k: v.detach().clone() for k, v in student.state_dict().items()}
    out = {"names": names, "init": init}
    with torch.no_grad():
        tf = pyramid(teacher, x)
        student.eval()
        out["teacher_eval"] = tf
        out["student_eval"] = pyramid(student, x)
    student.train()
    opt = torch.optim.SGD(student.parameters(), lr=lr, momentum=momentum, weight_decay=wd)
    out["loss"], out["per_level"] = [], []
    for step in range(n_steps):
        opt.zero_grad()
        sf = pyramid(student, x)
        loss, per = stfpm_loss(tf, sf)
        loss.backward()
        out["loss"].append(float(loss.detach()))
        out["per_level"].append([float(p.detach()) for p in per])
        if step == 0:
            out["student_train"] = [f.detach().clone() for f in sf]
            out["grad"] = {k: p.grad.detach().clone() for k, p in student.named_parameters()}
            out["stat1"] = {k: v.detach().clone() for k, v in student.state_dict().items()
                            if k.endswith("running_mean") or k.endswith("running_var")}
        opt.step()
        if step == 0 or step == n_steps - 1:
            out["step%d" % (step + 1)] = {k: (v.detach() - init[k]).clone()
                                          for k, v in student.state_dict().items() if k in names}
    return out


def case_records(o, key):
    """Records for a case computed in float64."""
    recs = []
    for tag in ("teacher_eval", "student_eval", "student_train"):
        for l, f in enumerate(o[tag]):
            nm = "%s.layer%d" % (tag, l + 1)
            recs.append(Rec(nm, f, feat_idx(f.numel(), key + nm)))
    for k, g in o["grad"].items():
        recs.append(Rec("grad." + k, g, param_idx(g.numel(), key + "grad." + k)))
    for k, v in o["stat1"].items():
        recs.append(Rec("stat1." + k, v, np.arange(v.numel())))
    for st in sorted(set(k for k in o if k.startswith("step"))):
        for k in o["names"]:
            d = o[st][k]
            recs.append(Rec("%s.%s" % (st, k), d, param_idx(d.numel(), key + st + k)))
    return recs


def case_tensor(o, name):
    tag, _, rest = name.partition(".")
    if tag in ("teacher_eval", "student_eval", "student_train"):
        return o[tag][int(rest[len("layer"):]) - 1]
    return o[tag][rest]


# ------------------------------------------------------------------------------------------------
# C emission

def c_floats(vals, per_line=8, fmt="%.9g"):
    vals = list(vals)
    lines = [", ".join(fmt % v for v in vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
    return "    " + ",\n    ".join(lines)


def emit_recs(parts, cname, recs):
    idx = np.concatenate([r.idx for r in recs]).astype(np.int64)
    val = np.concatenate([r.val for r in recs])
    parts.append("static const int32_t %s_idx[%d] = {\n%s};\n" % (cname, idx.size, c_floats(idx, 12, "%d")))
    parts.append("static const float %s_val[%d] = {\n%s};\n" % (cname, val.size, c_floats(val)))
    parts.append("static const parity_rec %s_recs[%d] = {\n" % (cname, len(recs)))
    off = 0
    for r in recs:
        parts.append('    {"%s", %d, %.17g, %.17g, %d, %d},\n' % (r.name, r.numel, r.sum, r.sumsq, r.idx.size, off))
        off += r.idx.size
    parts.append("};\n")


# (C name, label, N, H, W, input variant, SGD steps). Variants: the largest first-forward margin
# found by `gen_parity.py search N H W 0 300` (b1_256: 0 40): 2.1e-5 (b2_64), 9.1e-6 (b1_128),
# 1.6e-6 (b1_256). b2_64 and b1_128 are the gradient cases; at 256 x 256 (3.1 M ReLU inputs per
# forward) no variant keeps float32 rounding away from every ReLU kink, so b1_256 runs one step
# and the C test holds its gradients only to aggregate measures.
CASES = [("parity_case_b2_64", "b2_64", 2, 64, 64, 162, 3),
         ("parity_case_b1_128", "b1_128", 1, 128, 128, 186, 3),
         ("parity_case_b1_256", "b1_256", 1, 256, 256, 10, 1)]


def perturbed_grad_errors(n, h, w, variant, o64, seeds=4, eps=1e-7):
    """Max first-step gradient error (record measure) of float32 PyTorch runs whose student weights
    are multiplied by 1 + eps N(0, 1): float32-sized perturbations standing in for another
    summation order. Large values mean a ReLU / max-pool branch flipped (see site_margins)."""
    x = torch.from_numpy(closed_form_input(n, h, w, variant))
    teacher = make_net()
    fill_closed_form(teacher, "teacher")
    teacher.eval()
    with torch.no_grad():
        tf = pyramid(teacher, x)
    out = []
    for seed in range(seeds):
        s = make_net()
        fill_closed_form(s, "student")
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in s.parameters():
                p.mul_(1 + eps * torch.randn(p.shape, generator=gen))
        s.train()
        loss, _ = stfpm_loss(tf, pyramid(s, x))
        loss.backward()
        out.append(max(rec_err(Rec("g", o64["grad"][k], param_idx(p.numel(), "g")), p.grad)
                       for k, p in s.named_parameters()))
    return out


def gen_synthetic():
    parts = []
    for cname, label, n, h, w, variant, n_steps in CASES:
        t0 = time.time()
        margin = first_forward_margin(n, h, w, variant)
        o64 = run_case(n, h, w, variant, torch.float64, n_steps)
        o32 = run_case(n, h, w, variant, torch.float32, n_steps)
        recs = case_records(o64, label)
        groups = {}
        for r in recs:
            gname = r.name.split(".")[0]
            groups[gname] = max(groups.get(gname, 0.0), rec_err(r, case_tensor(o32, r.name)))
        lerr = ["%.2g" % (abs(a - b) / abs(b)) for a, b in zip(o32["loss"], o64["loss"])]
        # how much the later losses depend on momentum and weight decay (what the loss check of
        # steps 2.. can see)
        nomom = run_case(n, h, w, variant, torch.float64, n_steps, momentum=0.0)["loss"] if n_steps > 2 else o64["loss"]
        nowd = run_case(n, h, w, variant, torch.float64, n_steps, wd=0.0)["loss"] if n_steps > 1 else o64["loss"]
        sens = "loss without momentum %s, without weight decay %s" % (
            ["%.2g" % (abs(a - b) / b) for a, b in zip(nomom, o64["loss"])],
            ["%.2g" % (abs(a - b) / b) for a, b in zip(nowd, o64["loss"])])
        pert = perturbed_grad_errors(n, h, w, variant, o64)
        info = ("case %s: input %dx3x%dx%d variant %d, first-forward ReLU margin %.3g; %d SGD steps, "
                "loss %s;\n   torch float32 vs float64: losses rel. %s; records by group %s;\n   %s;\n"
                "   first-step gradient error of float32 runs with weights perturbed by 1e-7: %s"
                % (label, n, h, w, variant, margin, n_steps, ["%.7f" % v for v in o64["loss"]], lerr,
                   ", ".join("%s %.2g" % kv for kv in groups.items()), sens, ["%.2g" % v for v in pert]))
        print(info + "  (%.0f s)" % (time.time() - t0))
        parts.append("/* %s */\n" % info.replace("\n", "\n *"))
        emit_recs(parts, cname, recs)
        lo = o64["loss"] + [0.0] * (3 - n_steps)
        pl = o64["per_level"] + [[0.0] * 3] * (3 - n_steps)
        parts.append("static const parity_case %s = {\n    \"%s\", %d, %d, %d, %d, %.6g, %d,\n"
                     % (cname, label, n, h, w, variant, margin, n_steps))
        parts.append("    {%s},\n" % ", ".join("%.17g" % v for v in lo))
        parts.append("    {%s},\n" % ", ".join("{%s}" % ", ".join("%.17g" % v for v in p) for p in pl))
        parts.append("    %s_recs, %d, %s_idx, %s_val};\n\n" % (cname, len(recs), cname, cname))
    head = ("/* Generated by tests/ref/gen_parity.py with torch %s, torchvision %s: do not edit.\n"
            " * PyTorch float64 references of the closed-form teacher / student (tests/parity_util.c):\n"
            " * sampled pyramid features (eval teacher, eval and train student), STFPM loss before each\n"
            " * of the SGD steps (lr %g, momentum %g, weight decay %g), sampled gradients of the first\n"
            " * step, BN running statistics after the first train forward, sampled parameter changes\n"
            " * (value - initial value) after step 1 (\"step1.*\") and after the last step (\"stepN.*\"). */\n"
            "#ifndef STFPM_PARITY_REF_H\n#define STFPM_PARITY_REF_H\n#include \"parity_util.h\"\n"
            "#define PARITY_LR %gf\n#define PARITY_MOMENTUM %gf\n#define PARITY_WD %gf\n\n"
            % (torch.__version__, torchvision.__version__, LR, MOMENTUM, WD, LR, MOMENTUM, WD))
    with open(OUT_SYN, "w") as f:
        f.write(head + "".join(parts) + "#endif\n")
    print("wrote %s (%d bytes)" % (OUT_SYN, os.path.getsize(OUT_SYN)))


def search(n, h, w, k0, k1):
    """Print the input variants with the largest first-forward margins."""
    res = []
    for k in range(k0, k1):
        res.append((first_forward_margin(n, h, w, k), k))
        print("variant %d: margin %.3g" % (k, res[-1][0]), flush=True)
    res.sort(reverse=True)
    print("best:", ", ".join("%d (%.3g)" % (k, m) for m, k in res[:5]))


# ------------------------------------------------------------------------------------------------
# the real case: ImageNet teacher, one MVTec AD image

REAL_IMAGE = "data/mvtec_ad/bottle/test/broken_large/000.png"
REAL_IMAGE2 = "data/mvtec_ad/bottle/test/good/000.png"
REAL_WEIGHTS = "weights/resnet18_imagenet_l3_bnfolded.safetensors"
REAL_S = 256


def preprocess(path):
    from PIL import Image
    import torchvision.transforms as T
    tf = T.Compose([T.Resize([REAL_S, REAL_S]), T.ToTensor(),
                    T.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))])
    img = Image.open(path).convert("RGB")
    resized = np.asarray(T.Resize([REAL_S, REAL_S])(img), dtype=np.uint8)   # (S, S, 3)
    return tf(img).unsqueeze(0), resized


def gen_real():
    from safetensors.torch import load_file
    wpath = os.path.join(SHARED, REAL_WEIGHTS)
    ipath = os.path.join(SHARED, REAL_IMAGE)
    if not (os.path.exists(wpath) and os.path.exists(ipath)):
        print("SKIP: %s or %s absent: %s not regenerated" % (wpath, ipath, OUT_REAL))
        return
    sd = load_file(wpath)
    m = make_net()
    missing, unexpected = m.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    assert not unexpected, unexpected
    assert not missing, missing
    m.eval()
    x, resized = preprocess(ipath)
    x2, _ = preprocess(os.path.join(SHARED, REAL_IMAGE2))
    with torch.no_grad():
        m64 = make_net()
        m64.load_state_dict(sd, strict=False)
        m64.double().eval()
        f64 = pyramid(m64, x.double())
        f32 = pyramid(m, x)
        fb32 = pyramid(m, torch.cat([x, x2]))
        fb64 = pyramid(m64, torch.cat([x, x2]).double())
    recs = [Rec("input", x, feat_idx(x.numel(), "real.input"))]
    for l, f in enumerate(f64):
        recs.append(Rec("teacher_eval.layer%d" % (l + 1), f, feat_idx(f.numel(), "real.l%d" % l)))
    f32err = max(rec_err(r, f) for r, f in zip(recs[1:], f32))
    # sanity: one image alone vs the same image in a batch of two
    b32 = max(float((a[0] - b[0]).abs().max() / b[0].pow(2).mean().sqrt()) for a, b in zip(fb32, f32))
    b64 = max(float((a[0] - b[0]).abs().max() / b[0].pow(2).mean().sqrt()) for a, b in zip(fb64, f64))
    print("real: float32-vs-float64 worst %.3g; batch-of-2 vs single, max |diff| / RMS: float32 %.3g, "
          "float64 %.3g" % (f32err, b32, b64))
    assert b32 < 1e-5 and b64 < 1e-12, "batch and single-image features differ"
    # resized 8-bit image: per (channel, row) sums, so the C test can count differing rows
    rowsum = resized.astype(np.int64).sum(axis=1).T          # (3, S)
    p = ["/* Generated by tests/ref/gen_parity.py with torch %s, torchvision %s: do not edit.\n"
         " * Teacher = torchvision resnet18 (conv1..layer3) with STFPM_SHARED_DIR/%s,\n"
         " * input = STFPM_SHARED_DIR/%s through Resize([%d, %d]) + ToTensor + Normalize(ImageNet).\n"
         " * Features in float64 (torch float32 vs float64: max record error %.3g).\n"
         " * Single image vs batch of two (with %s): max |diff| / RMS %.3g (float32). */\n"
         % (torch.__version__, torchvision.__version__, REAL_WEIGHTS, REAL_IMAGE, REAL_S, REAL_S,
            f32err, REAL_IMAGE2, b32),
         "#ifndef STFPM_PARITY_REAL_REF_H\n#define STFPM_PARITY_REAL_REF_H\n#include \"parity_util.h\"\n",
         '#define PARITY_REAL_IMAGE "%s"\n#define PARITY_REAL_WEIGHTS "%s"\n#define PARITY_REAL_S %d\n'
         % (REAL_IMAGE, REAL_WEIGHTS, REAL_S),
         "/* sum over x of the resized 8-bit image, per channel and row */\n",
         "static const int32_t parity_real_rowsum[3][%d] = {\n%s};\n"
         % (REAL_S, ",\n".join("  {%s}" % c_floats(rowsum[c], 16, "%d").strip() for c in range(3))),
         ]
    emit_recs(p, "parity_real", recs)
    p.append("#endif\n")
    with open(OUT_REAL, "w") as f:
        f.write("".join(p))
    print("wrote %s (%d bytes)" % (OUT_REAL, os.path.getsize(OUT_REAL)))


if __name__ == "__main__":
    what = sys.argv[1:] or ["synthetic", "real"]
    if what[0] == "search":     # search N H W K0 K1
        search(*[int(a) for a in what[1:6]])
        sys.exit(0)
    if "synthetic" in what:
        gen_synthetic()
    if "real" in what:
        gen_real()
