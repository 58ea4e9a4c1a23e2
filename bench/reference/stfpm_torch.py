#!/usr/bin/env python3
"""STFPM throughput in PyTorch: the reference side of bench/compare.py.

The same recipe and the same measurements as bench/bench_throughput.c, the same JSON keys:

  torchvision resnet18 truncated after layer3 (layer4 and fc removed), teacher in eval mode and
  frozen, student in train mode (batch-statistics BN) while training; loss = sum over layers 1-3
  of mean_{b,i,j} sum_c (F.normalize(T) - F.normalize(S))^2; SGD lr 0.4, momentum 0.9, weight
  decay 1e-4. Anomaly map = product over levels of the per-position distance bilinearly
  upsampled (align_corners=False) to S x S; score = max of the map.

  training   images/s of full steps on --batch images: "cached" gathers the teacher features from
             a tensor precomputed over the batch's images (index_select, like stfpm-cl's teacher
             cache), "uncached" runs the teacher forward every step. loss.item() every step.
  inference  images/s at --infer-batch under torch.inference_mode: teacher + student eval forward,
             maps (numpy, host) and scores.
  latency    batch 1, numpy float32 in -> Python float score out; median and min of reps.
  memory     peak RSS (resource.getrusage ru_maxrss) of the process; device memory: null on CPU
             (everything is host memory, counted in the RSS); with CUDA, torch.cuda.max_memory_allocated.

Weights are random (torchvision's init: kaiming normal fan_out for convs, BN 1/0) unless
--teacher FILE (.pth or .safetensors, torchvision names) is given. torch.set_num_threads(os.cpu_count()).
--channels-last converts models and inputs to torch.channels_last (off by default; see README).
OMP_WAIT_POLICY=PASSIVE is set unless --omp-default (see the comment at the imports).

  .venv-bench/bin/python bench/reference/stfpm_torch.py --size 256 --batch 8 --infer-batch 32 --json out.json
(.venv-bench: the environment of bench/setup_env.sh.)
"""
import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

# OpenMP threads that spin while waiting (libgomp's default) collapse when the cores are shared
# with other processes: on the 2-core development machine under load, 2 spinning threads ran
# STFPM inference 10-20x slower than 1 thread. Passive waiting is the better PyTorch setting
# there, so it is the default here (it must be set before torch starts OpenMP);
# --omp-default leaves OMP_WAIT_POLICY as the environment has it.
if "--omp-default" not in sys.argv:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

LR, MOMENTUM, WD = 0.4, 0.9, 1e-4


class Backbone(nn.Module):
    """torchvision resnet18 up to layer3; forward returns [layer1, layer2, layer3] outputs."""

    def __init__(self):
        super().__init__()
        r = torchvision.models.resnet18(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = r.conv1, r.bn1, r.relu, r.maxpool
        self.layer1, self.layer2, self.layer3 = r.layer1, r.layer2, r.layer3

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        return [f1, f2, f3]


def load_teacher(net, path):
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        sd = load_file(path)
    else:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    own = net.state_dict()
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    if missing:
        raise SystemExit(f"{path}: missing tensors {missing[:5]}")
    net.load_state_dict({k: sd[k] for k in own if k in sd}, strict=False)


def level_distance(t, s):
    """per-position squared distance of unit feature vectors: (B, 1, H, W)"""
    return (F.normalize(t, dim=1) - F.normalize(s, dim=1)).pow(2).sum(1, keepdim=True)


def stfpm_loss(tf, sf):
    return sum(level_distance(t, s).mean() for t, s in zip(tf, sf))


def anomaly_map(tf, sf, size):
    amap = None
    for t, s in zip(tf, sf):
        a = F.interpolate(level_distance(t, s), size=(size, size), mode="bilinear", align_corners=False)
        amap = a if amap is None else amap * a
    return amap[:, 0]


def make_images(n, size, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, size=(n, 3, size, size)).astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--infer-batch", type=int, default=0, help="inference batch (default: --batch)")
    ap.add_argument("--train-steps", type=int, default=3)
    ap.add_argument("--infer-batches", type=int, default=3)
    ap.add_argument("--latency-reps", type=int, default=10)
    ap.add_argument("--teacher", default=None)
    ap.add_argument("--no-teacher-cache", action="store_true")
    ap.add_argument("--phase", choices=["all", "train", "infer"], default="all")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="default os.cpu_count()")
    ap.add_argument("--omp-default", action="store_true",
                    help="do not set OMP_WAIT_POLICY=PASSIVE (keep libgomp's spinning default)")
    ap.add_argument("--device", default="cpu", help="torch device (cpu, cuda); the comparison was run on cpu")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if a.infer_batch <= 0:
        a.infer_batch = a.batch
    if min(a.batch, a.infer_batch, a.train_steps, a.infer_batches) < 1 or a.latency_reps < 0:
        ap.error("batches and step counts must be >= 1 (latency reps >= 0)")

    torch.set_num_threads(a.threads or os.cpu_count())
    torch.manual_seed(0)
    dev = torch.device(a.device)
    mf = torch.channels_last if a.channels_last else torch.contiguous_format
    S = a.size

    def prep(x_np):
        return torch.from_numpy(x_np).to(dev).contiguous(memory_format=mf)

    def log(msg):
        print(f"stfpm_torch: {msg}", file=sys.stderr, flush=True)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def make_nets():
        teacher, student = Backbone(), Backbone()
        if a.teacher:
            load_teacher(teacher, a.teacher)
        teacher = teacher.to(dev, memory_format=mf).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        student = student.to(dev, memory_format=mf)
        return teacher, student

    where = f"CUDA ({torch.cuda.get_device_name(dev)}" if dev.type == "cuda" else \
        f"CPU ({platform.processor() or platform.machine()}"
    out = {"impl": "pytorch", "device": f"torch {torch.__version__} {where}, "
           f"{torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}"
           f"{', channels_last' if a.channels_last else ''})",
           "phase": a.phase, "size": S, "train_batch": a.batch, "infer_batch": a.infer_batch,
           "train_steps": a.train_steps, "infer_batches": a.infer_batches, "latency_reps": a.latency_reps,
           "teacher": a.teacher or "random-kaiming", "teacher_cache": not a.no_teacher_cache}
    keys = ["warmup_train_s", "train_uncached_step_s", "train_uncached_images_per_s", "teacher_cache_build_s",
            "train_cached_step_s", "train_cached_images_per_s", "train_loss_first", "train_loss_last",
            "warmup_infer_s", "infer_batch_s", "infer_images_per_s", "latency_ms_median", "latency_ms_min",
            "peak_rss_mib", "peak_device_train_mib", "peak_device_infer_mib"]
    for k in keys:
        out[k] = None

    if a.phase in ("all", "train"):
        teacher, student = make_nets()
        student.train()
        opt = torch.optim.SGD(student.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
        x_np = make_images(a.batch, S, 0)
        idx = torch.arange(a.batch, device=dev)

        def step(tcache=None):
            x = prep(x_np)
            if tcache is None:
                with torch.no_grad():
                    tf = teacher(x)
            else:
                tf = [c.index_select(0, idx) for c in tcache]
            sf = student(x)
            loss = stfpm_loss(tf, sf)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss.item()

        t0 = time.perf_counter()
        loss = step()
        sync()
        out["warmup_train_s"] = time.perf_counter() - t0
        out["train_loss_first"] = loss
        log(f"train warm-up {out['warmup_train_s']:.2f} s (loss {loss:.4f})")
        t0 = time.perf_counter()
        for _ in range(a.train_steps):
            loss = step()
        sync()
        dt = (time.perf_counter() - t0) / a.train_steps
        out["train_uncached_step_s"], out["train_uncached_images_per_s"] = dt, a.batch / dt
        log(f"train uncached {dt:.3f} s/step")
        if not a.no_teacher_cache:
            t0 = time.perf_counter()
            with torch.no_grad():
                tcache = [f.clone() for f in teacher(prep(x_np))]
            sync()
            out["teacher_cache_build_s"] = time.perf_counter() - t0
            step(tcache)
            sync()
            t0 = time.perf_counter()
            for _ in range(a.train_steps):
                loss = step(tcache)
            sync()
            dt = (time.perf_counter() - t0) / a.train_steps
            out["train_cached_step_s"], out["train_cached_images_per_s"] = dt, a.batch / dt
            log(f"train cached {dt:.3f} s/step")
            del tcache
        out["train_loss_last"] = loss
        if dev.type == "cuda":
            out["peak_device_train_mib"] = torch.cuda.max_memory_allocated() / 2**20
            torch.cuda.reset_peak_memory_stats()
        del teacher, student, opt

    if a.phase in ("all", "infer"):
        teacher, student = make_nets()
        student.eval()
        n = a.infer_batch
        x_np = make_images(n, S, 7)

        def infer(xb):
            with torch.inference_mode():
                x = prep(xb)
                tf, sf = teacher(x), student(x)
                amap = anomaly_map(tf, sf, S)
                scores = amap.flatten(1).amax(1)
                return amap.cpu().numpy(), scores.cpu().numpy()

        t0 = time.perf_counter()
        infer(x_np)
        sync()
        out["warmup_infer_s"] = time.perf_counter() - t0
        log(f"infer warm-up {out['warmup_infer_s']:.2f} s")
        t0 = time.perf_counter()
        for _ in range(a.infer_batches):
            maps, scores = infer(x_np)
        dt = (time.perf_counter() - t0) / a.infer_batches
        if not np.isfinite(scores[0]):
            raise SystemExit(f"anomaly score is {scores[0]}")
        out["infer_batch_s"], out["infer_images_per_s"] = dt, n / dt
        log(f"infer {dt:.3f} s/batch of {n}")

        def score1(x1):
            with torch.inference_mode():
                x = prep(x1)
                amap = anomaly_map(teacher(x), student(x), S)
                return float(amap.max())

        for _ in range(2):
            score1(x_np[:1])
        lat = []
        for k in range(a.latency_reps):
            t0 = time.perf_counter()
            score1(x_np[k % n:k % n + 1])
            lat.append((time.perf_counter() - t0) * 1000.0)
        if lat:
            out["latency_ms_median"], out["latency_ms_min"] = statistics.median(lat), min(lat)
            log(f"latency median {out['latency_ms_median']:.1f} ms")
        if dev.type == "cuda":
            out["peak_device_infer_mib"] = torch.cuda.max_memory_allocated() / 2**20

    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    line = json.dumps(out)
    print(line, flush=True)
    if a.json:
        with open(a.json, "w") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
