#!/usr/bin/env python3
"""Side-by-side speed of stfpm-cl (bench_throughput) and PyTorch (reference/stfpm_torch.py).

Runs both in this one invocation, on this machine, with the same image size and batch sizes,
alternating: for each round, ours-train, torch-train, ours-infer, torch-infer (each phase in its
own process, so the peak-RSS figure belongs to that phase). Prints a table of the medians over
the rounds, then every round's raw values, and the load average seen during the runs.

  bench/setup_env.sh      # once: .venv-bench with torch, torchvision (bench/requirements.txt)
  .venv-bench/bin/python bench/compare.py --size 256 --batch 8 --infer-batch 32 --rounds 2 --steps 2

The PyTorch side runs under the interpreter that runs compare.py (--python to choose another),
with channels_last (--no-channels-last to turn it off), os.cpu_count() threads and
OMP_WAIT_POLICY=PASSIVE (see bench/README.md for why).

Build the C side first:
  cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release && cmake --build build-bench -j2 --target bench_throughput
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# (key in the merged record, label, kind) ; kind: "hi" higher is better, "lo" lower is better
ROWS = [
    ("train_cached_images_per_s", "training images/s, teacher cache (default trainer)", "hi"),
    ("train_uncached_images_per_s", "training images/s, teacher forward every step", "hi"),
    ("infer_images_per_s", "inference images/s (maps + scores to host)", "hi"),
    ("latency_ms_median", "latency batch 1, ms (median of reps)", "lo"),
    ("latency_ms_min", "latency batch 1, ms (best of reps)", "lo"),
    ("peak_rss_train_mib", "peak host RSS, training process, MiB", "lo"),
    ("peak_rss_infer_mib", "peak host RSS, inference process, MiB", "lo"),
    ("peak_device_train_mib", "peak device memory, training, MiB", "lo"),
    ("peak_device_infer_mib", "peak device memory, inference, MiB", "lo"),
    ("teacher_cache_build_s", "teacher cache build over the batch, s", "lo"),
    ("warmup_train_s", "first training step (incl. kernel build / cache load), s", "lo"),
    ("warmup_infer_s", "first inference batch (incl. warm-up), s", "lo"),
]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run(cmd, json_path, log_path, timeout):
    load_before = os.getloadavg()[0]
    t0 = time.time()
    with open(log_path, "w") as log:
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=log, timeout=timeout, cwd=ROOT)
    wall = time.time() - t0
    if p.returncode != 0:
        with open(log_path) as f:
            tail = f.read()[-2000:]
        raise SystemExit(f"compare.py: command failed (exit {p.returncode}): {' '.join(cmd)}\n{tail}")
    with open(json_path) as f:
        rec = json.load(f)
    rec["_wall_s"], rec["_load"] = wall, (load_before, os.getloadavg()[0])
    return rec


def fmt(v):
    if v is None:
        return "n/a"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8, help="training batch (recipe: 32; default 8 for a 2-core CPU)")
    ap.add_argument("--infer-batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2, help="timed training steps per mode (after 1 warm-up)")
    ap.add_argument("--infer-batches", type=int, default=2, help="timed inference batches (after 1 warm-up)")
    ap.add_argument("--latency-reps", type=int, default=5)
    ap.add_argument("--teacher", default=None, help="teacher weights for both (default: random)")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--python", default=sys.executable, help="Python with torch + torchvision")
    ap.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                    help="PyTorch side in the default NCHW-contiguous layout (default: channels_last, which "
                         "was faster on the 2-core development machine; see README)")
    ap.add_argument("--device", default=None, help="OpenCL device selector for stfpm-cl")
    ap.add_argument("--torch-device", default="cpu", help="torch device for the PyTorch side (cpu, cuda)")
    ap.add_argument("--out", default=None, help="directory for the per-run JSON and logs (default: a temp dir)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per run")
    a = ap.parse_args()
    if a.rounds < 1:
        ap.error("--rounds must be >= 1")

    try:   # before anything runs: the PyTorch side needs torch and torchvision
        probe = subprocess.run([a.python, "-c", "import torch, torchvision"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
        why = (probe.stderr.strip().splitlines() or ["exit %d" % probe.returncode])[-1] if probe.returncode else None
    except OSError as e:
        why = str(e)
    if why:
        raise SystemExit(f"compare.py: {a.python} cannot import torch and torchvision ({why}); create the "
                         f"environment with\n  {os.path.join(HERE, 'setup_env.sh')}\nand run "
                         f"{os.path.join(ROOT, '.venv-bench', 'bin', 'python')} {os.path.join(HERE, 'compare.py')} ...")
    exe = os.path.join(a.build_dir, "bench_throughput")
    if not os.access(exe, os.X_OK):
        raise SystemExit(f"compare.py: {exe} not found; build it with\n  cmake -S {ROOT} -B {a.build_dir} "
                         f"-DCMAKE_BUILD_TYPE=Release && cmake --build {a.build_dir} -j2 --target bench_throughput")
    out = a.out or tempfile.mkdtemp(prefix="stfpm-compare-")
    os.makedirs(out, exist_ok=True)
    common = ["--size", str(a.size), "--batch", str(a.batch), "--infer-batch", str(a.infer_batch),
              "--train-steps", str(a.steps), "--infer-batches", str(a.infer_batches),
              "--latency-reps", str(a.latency_reps)]
    if a.teacher:
        common += ["--teacher", a.teacher]
    ours = [exe] + common + (["--device", a.device] if a.device else [])
    torch_cmd = [a.python, os.path.join(HERE, "reference", "stfpm_torch.py")] + common + \
        (["--channels-last"] if a.channels_last else []) + ["--device", a.torch_device]

    started = datetime.datetime.now().astimezone()
    load0 = os.getloadavg()
    recs = {"ours": [], "torch": []}
    loads = []
    for r in range(a.rounds):
        merged = {"ours": {}, "torch": {}}
        for phase in ("train", "infer"):
            for impl, base in (("ours", ours), ("torch", torch_cmd)):
                tag = f"r{r + 1}-{impl}-{phase}"
                jp = os.path.join(out, tag + ".json")
                print(f"[{time.strftime('%H:%M:%S')}] round {r + 1}/{a.rounds}: {impl} {phase} ...",
                      file=sys.stderr, flush=True)
                rec = run(base + ["--phase", phase, "--json", jp], jp, os.path.join(out, tag + ".log"), a.timeout)
                loads.extend(rec["_load"])
                print(f"    {rec['_wall_s']:.0f} s, load {rec['_load'][0]:.2f} -> {rec['_load'][1]:.2f}",
                      file=sys.stderr, flush=True)
                m = merged[impl]
                for k, v in rec.items():
                    if v is not None and k not in ("peak_rss_mib",):
                        m.setdefault(k, v)
                m[f"peak_rss_{phase}_mib"] = rec["peak_rss_mib"]
        for impl in recs:
            recs[impl].append(merged[impl])

    o0, t0 = recs["ours"][0], recs["torch"][0]
    note = "" if a.batch == 32 else \
        f" (the recipe trains at batch 32; batch {a.batch} here so a round finishes in minutes on this machine)"
    print()
    print(f"STFPM speed, stfpm-cl vs PyTorch: image {a.size}x{a.size}, training batch {a.batch}{note}, "
          f"inference batch {a.infer_batch}; medians of {a.rounds} alternating rounds "
          f"({a.steps} timed training steps per mode, {a.infer_batches} timed inference batches, "
          f"{a.latency_reps} latency reps, each after a warm-up); weights {a.teacher or 'random'}")
    print(f"date {started.strftime('%Y-%m-%d %H:%M %Z')}; machine: nproc {os.cpu_count()}, {cpu_model()}; "
          f"load average (1 min) {load0[0]:.2f} at start, {min(loads):.2f}-{max(loads):.2f} during the runs "
          "(shared machine)")
    print(f"stfpm-cl: {o0.get('device')}; PyTorch: {t0.get('device')}")
    print()
    print("| metric | stfpm-cl | PyTorch | ratio ours/PyTorch |")
    print("|---|---|---|---|")
    for key, label, kind in ROWS:
        ov, tv = med([x.get(key) for x in recs["ours"]]), med([x.get(key) for x in recs["torch"]])
        if ov is None and tv is None:
            continue
        if ov is not None and tv:
            ratio = ov / tv
            if kind == "hi":
                better = "ours faster" if ratio > 1 else "PyTorch faster"
                rs = f"{ratio:.2f} (higher is better: {better})"
            else:
                what = "smaller" if "mib" in key else "faster"
                better = f"ours {what}" if ratio < 1 else f"PyTorch {what}"
                rs = f"{ratio:.2f} (lower is better: {better})"
        elif "device" in key:
            rs = "n/a (PyTorch CPU: device memory is host memory, in the RSS row)"
        else:
            rs = "n/a"
        print(f"| {label} | {fmt(ov)} | {fmt(tv)} | {rs} |")
    print()
    print("Per round (stfpm-cl / PyTorch):")
    for key, label, _ in ROWS[:5]:
        vals = [f"{fmt(o.get(key))} / {fmt(t.get(key))}" for o, t in zip(recs["ours"], recs["torch"])]
        print(f"  {label}: " + "; ".join(vals))
    for impl, name in (("ours", "stfpm-cl"), ("torch", "PyTorch")):
        losses = [(x.get("train_loss_first"), x.get("train_loss_last")) for x in recs[impl]]
        print(f"  {name} training loss first -> last step: " +
              "; ".join(f"{fmt(f)} -> {fmt(l)}" for f, l in losses))
    print(f"raw JSON and logs: {out}")
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump({"args": vars(a), "started": started.isoformat(), "load_start": load0, "loads": loads,
                   "rounds": recs}, f, indent=1)


if __name__ == "__main__":
    main()
