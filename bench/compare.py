#!/usr/bin/env python3
"""Side-by-side speed of stfpm-cl (bench_throughput), PyTorch (reference/stfpm_torch.py) and, for
inference, ONNX Runtime and OpenVINO (reference/stfpm_onnx.py).

Runs them all in this one invocation, on this machine, with the same image size and batch sizes,
alternating: for each round, ours-train, torch-train, ours-infer, torch-infer, onnxruntime-infer,
openvino-infer (each phase in its own process, so the peak-RSS figure belongs to that phase).
Prints a table of the medians over the rounds with every ratio (ours / each other side), then
every round's raw values, and the load average seen during the runs.

The ONNX Runtime and OpenVINO rows run the PyTorch reference network (teacher + student to
layer3, anomaly map, score), exported to ONNX once per invocation into a temporary directory
(removed at the end) with the PyTorch side's weights. They are optional: without the packages
(onnx + onnxruntime, onnx + openvino) their columns say "not installed" (after a failed run:
"failed") and the rest runs; --runtimes none skips them. --baseline BUILD_DIR adds another build
of stfpm-cl (the code before a change) as one more column, run right after ours in every round.

  bench/setup_env.sh      # once: .venv-bench with bench/requirements.txt (torch, onnxruntime, ...)
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
# the rows the inference-only runtimes fill
INFER_KEYS = {"infer_images_per_s", "latency_ms_median", "latency_ms_min", "peak_rss_infer_mib", "warmup_infer_s"}
# --runtimes name -> (label, Python module besides onnx)
RUNTIMES = {"onnxruntime": ("ONNX Runtime", "onnxruntime"), "openvino": ("OpenVINO", "openvino")}


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
    ap.add_argument("--baseline", default=None, metavar="BUILD_DIR",
                    help="also run the bench_throughput of this other build (e.g. of the code before a change) "
                         "next to ours in every round, as the column 'stfpm-cl baseline'")
    ap.add_argument("--runtimes", default="onnxruntime,openvino",
                    help="inference runtimes run on the exported ONNX network, comma-separated, or none "
                         "(default: onnxruntime,openvino; each is left out as 'not installed' when its "
                         "package or onnx is missing)")
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
    base_exe = None
    if a.baseline:
        base_exe = os.path.join(a.baseline, "bench_throughput")
        if not os.access(base_exe, os.X_OK):
            raise SystemExit(f"compare.py: --baseline: {base_exe} not found")
    out = a.out or tempfile.mkdtemp(prefix="stfpm-compare-")
    os.makedirs(out, exist_ok=True)
    common = ["--size", str(a.size), "--batch", str(a.batch), "--infer-batch", str(a.infer_batch),
              "--train-steps", str(a.steps), "--infer-batches", str(a.infer_batches),
              "--latency-reps", str(a.latency_reps)]
    if a.teacher:
        common += ["--teacher", a.teacher]
    ours = [exe] + common + (["--device", a.device] if a.device else [])
    base_cmd = [base_exe] + ours[1:] if base_exe else None
    torch_cmd = [a.python, os.path.join(HERE, "reference", "stfpm_torch.py")] + common + \
        (["--channels-last"] if a.channels_last else []) + ["--device", a.torch_device]

    runtimes = {}   # name -> None when it runs, else why not
    if a.runtimes.strip().lower() != "none":
        for rt in [x.strip() for x in a.runtimes.split(",") if x.strip()]:
            if rt not in RUNTIMES:
                ap.error(f"--runtimes: unknown runtime '{rt}' (onnxruntime, openvino, none)")
            mods = ["onnx", RUNTIMES[rt][1]]
            missing = [m for m in mods if subprocess.run([a.python, "-c", f"import {m}"], stdout=subprocess.DEVNULL,
                                                          stderr=subprocess.DEVNULL).returncode != 0]
            runtimes[rt] = f"not installed ({', '.join(missing)})" if missing else None
    onnx_dir = None
    if any(why is None for why in runtimes.values()):
        onnx_dir = tempfile.TemporaryDirectory(prefix="stfpm-onnx-")
        batches = sorted({a.infer_batch, 1}, reverse=True)
        cmd = [a.python, os.path.join(HERE, "reference", "stfpm_onnx.py"), "--export", onnx_dir.name,
               "--size", str(a.size), "--batches", ",".join(map(str, batches))] + \
            (["--teacher", a.teacher] if a.teacher else [])
        print(f"[{time.strftime('%H:%M:%S')}] exporting the PyTorch network to ONNX ...", file=sys.stderr, flush=True)
        with open(os.path.join(out, "onnx-export.log"), "w") as log:
            try:
                rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=log, timeout=a.timeout, cwd=ROOT).returncode
            except subprocess.TimeoutExpired:
                rc = -1
        if rc != 0:
            for rt in runtimes:
                if runtimes[rt] is None:
                    runtimes[rt] = f"ONNX export failed ({os.path.join(out, 'onnx-export.log')})"
        onnx_cmd = [a.python, os.path.join(HERE, "reference", "stfpm_onnx.py"),
                    "--model-batch", os.path.join(onnx_dir.name, f"stfpm_b{a.infer_batch}.onnx"),
                    "--model-1", os.path.join(onnx_dir.name, "stfpm_b1.onnx"),
                    "--infer-batches", str(a.infer_batches), "--latency-reps", str(a.latency_reps)]
    active = [rt for rt, why in runtimes.items() if why is None]
    sides = ["ours"] + (["base"] if base_cmd else []) + ["torch"] + list(runtimes)
    c_sides = [x for x in sides if x in ("ours", "base", "torch")]   # the ones that also train

    started = datetime.datetime.now().astimezone()
    load0 = os.getloadavg()
    recs = {impl: [] for impl in sides}
    loads = []
    for r in range(a.rounds):
        merged = {impl: {} for impl in sides}
        for phase in ("train", "infer"):
            todo = [("ours", ours)] + ([("base", base_cmd)] if base_cmd else []) + [("torch", torch_cmd)]
            if phase == "infer":
                todo += [(rt, onnx_cmd + ["--runtime", rt]) for rt in active]
            for impl, cmd in todo:
                tag = f"r{r + 1}-{impl}-{phase}"
                jp = os.path.join(out, tag + ".json")
                if impl in active and runtimes[impl] is not None:
                    continue   # failed in an earlier round
                print(f"[{time.strftime('%H:%M:%S')}] round {r + 1}/{a.rounds}: {impl} {phase} ...",
                      file=sys.stderr, flush=True)
                try:
                    rec = run(cmd + ["--phase", phase, "--json", jp], jp, os.path.join(out, tag + ".log"), a.timeout)
                except (SystemExit, subprocess.TimeoutExpired) as e:
                    if impl not in active:
                        raise
                    # the optional runtimes: their columns say why, the rest goes on
                    print(f"    {e}".rstrip()[:2000], file=sys.stderr, flush=True)
                    runtimes[impl] = f"failed ({os.path.join(out, tag + '.log')})"
                    continue
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
    if onnx_dir:
        onnx_dir.cleanup()

    names = {"ours": "stfpm-cl", "base": "stfpm-cl baseline", "torch": "PyTorch"}
    names.update({rt: RUNTIMES[rt][0] for rt in runtimes})
    others = sides[1:]
    note = "" if a.batch == 32 else \
        f" (the recipe trains at batch 32; batch {a.batch} here so a round finishes in minutes on this machine)"
    print()
    print(f"STFPM speed, stfpm-cl vs {', '.join(names[x] for x in others)}: image {a.size}x{a.size}, "
          f"training batch {a.batch}{note}, inference batch {a.infer_batch}; medians of {a.rounds} alternating "
          f"rounds ({a.steps} timed training steps per mode, {a.infer_batches} timed inference batches, "
          f"{a.latency_reps} latency reps, each after a warm-up); weights {a.teacher or 'random'}")
    print(f"date {started.strftime('%Y-%m-%d %H:%M %Z')}; machine: nproc {os.cpu_count()}, {cpu_model()}; "
          f"load average (1 min) {load0[0]:.2f} at start, {min(loads):.2f}-{max(loads):.2f} during the runs "
          "(shared machine)")
    for impl in sides:
        dev = recs[impl][0].get("device") if runtimes.get(impl) is None else runtimes[impl]
        print(f"{names[impl]}: {dev}" + (f" ({a.baseline})" if impl == "base" else ""))
    print()
    print("| metric | " + " | ".join(names[x] for x in sides) + " | " +
          " | ".join(f"ours/{names[x]}" for x in others) + " |")
    print("|---" * (2 * len(sides)) + "|")
    for key, label, kind in ROWS:
        vals = {impl: med([x.get(key) for x in recs[impl]]) for impl in sides}
        if all(v is None for v in vals.values()):
            continue
        infer_row = key in INFER_KEYS
        cells, ratios = [], []
        for impl in sides:
            if runtimes.get(impl) is not None and infer_row:
                cells.append("not installed" if runtimes[impl].startswith("not installed") else "n/a")
            else:
                cells.append(fmt(vals[impl]))
        ov = vals["ours"]
        for impl in others:
            tv = vals[impl]
            if ov is not None and tv:
                ratio = ov / tv
                if kind == "hi":
                    better = "ours" if ratio > 1 else names[impl]
                    ratios.append(f"{ratio:.2f} (higher is better: {better} faster)")
                else:
                    what = "smaller" if "mib" in key else "faster"
                    better = "ours" if ratio < 1 else names[impl]
                    ratios.append(f"{ratio:.2f} (lower is better: {better} {what})")
            elif runtimes.get(impl) is not None and infer_row:
                ratios.append("not installed" if runtimes[impl].startswith("not installed") else "n/a")
            elif "device" in key and impl == "torch":
                ratios.append("n/a (PyTorch CPU: device memory is host memory, in the RSS row)")
            else:
                ratios.append("n/a")
        print(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    print()
    print("Per round (" + " / ".join(names[x] for x in sides) + "; training: " +
          " / ".join(names[x] for x in c_sides) + "):")
    for key, label, _ in ROWS[:5]:
        show = sides if key in INFER_KEYS else c_sides
        vals = [" / ".join(fmt(recs[impl][i].get(key)) if runtimes.get(impl) is None else "-" for impl in show)
                for i in range(a.rounds)]
        print(f"  {label}: " + "; ".join(vals))
    for impl in c_sides:
        losses = [(x.get("train_loss_first"), x.get("train_loss_last")) for x in recs[impl]]
        print(f"  {names[impl]} training loss first -> last step: " +
              "; ".join(f"{fmt(f)} -> {fmt(l)}" for f, l in losses))
    print(f"raw JSON and logs: {out}")
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump({"args": vars(a), "started": started.isoformat(), "load_start": load0, "loads": loads,
                   "runtimes": runtimes, "rounds": recs}, f, indent=1)

if __name__ == "__main__":
    main()
