#!/usr/bin/env python3
"""STFPM inference in ONNX Runtime and OpenVINO: the deployment-runtime rows of bench/compare.py.

Two steps, each its own process (compare.py runs them), so that the measuring process never
imports torch and its peak RSS is the runtime's own:

  export   --export DIR: the PyTorch reference network of reference/stfpm_torch.py (teacher and
           student, torchvision resnet18 to layer3, both in eval mode; the anomaly map, i.e. the
           product of the per-level distances of the F.normalize'd features upsampled bilinearly
           with align_corners=False to S x S; the score, the map's maximum) written as ONNX
           files DIR/stfpm_b{N}.onnx, one per batch size of --batches (static shapes), with the
           classic TorchScript exporter (torch.onnx.export(..., dynamo=False)). Inputs "image"
           (N, 3, S, S); outputs "map" (N, S, S) and "score" (N,). The weights are those of the
           PyTorch side: torch.manual_seed(0), then teacher and student built in the same order
           as stfpm_torch.py, or --teacher FILE for the teacher.
  measure  --runtime onnxruntime|openvino --model-batch FILE --model-1 FILE: the same
           measurements and JSON keys as the inference phase of stfpm_torch.py:
             inference  images/s at the batch of --model-batch: the numpy input in, maps and
                        scores out as host arrays;
             latency    batch 1 (--model-1), numpy float32 in -> Python float score out; median
                        and min of --latency-reps reps after 2 untimed calls;
             memory     peak RSS of the process.
           ONNX Runtime: CPUExecutionProvider, graph_optimization_level ORT_ENABLE_ALL,
           intra_op_num_threads = os.cpu_count(), sequential execution, intra-op threads that do not
           spin while they wait (session.intra_op.allow_spinning 0; --ort-spin on for ONNX Runtime's
           default: on the shared 2-core machine spinning made batch-1 latency 1.3-1.7x slower, see
           bench/README.md); one session per model.
           OpenVINO: the CPU device with INFERENCE_PRECISION_HINT f32 (its default on CPUs with
           AMX or AVX512-BF16 is bf16, a different computation from ours and PyTorch's);
           PERFORMANCE_HINT THROUGHPUT for the batch model, run as the runtime's benchmark_app
           does: OPTIMAL_NUMBER_OF_INFER_REQUESTS requests of the full batch in flight at once
           through an AsyncInferQueue, images/s = images done / wall time; PERFORMANCE_HINT
           LATENCY for the batch-1 model, one synchronous request.

  python bench/reference/stfpm_onnx.py --export DIR --size 256 --batches 32,1
  python bench/reference/stfpm_onnx.py --runtime openvino --model-batch DIR/stfpm_b32.onnx \
      --model-1 DIR/stfpm_b1.onnx --infer-batches 2 --latency-reps 21 --json out.json
"""
import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time


def export(a):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch
    import torch.nn as nn
    from stfpm_torch import Backbone, anomaly_map, load_teacher

    class Pair(nn.Module):
        def __init__(self, teacher, student, size):
            super().__init__()
            self.teacher, self.student, self.size = teacher, student, size

        def forward(self, x):
            amap = anomaly_map(self.teacher(x), self.student(x), self.size)
            return amap, amap.flatten(1).amax(1)

    torch.manual_seed(0)          # as stfpm_torch.py: the same random weights as the PyTorch rows
    teacher, student = Backbone(), Backbone()
    if a.teacher:
        load_teacher(teacher, a.teacher)
    net = Pair(teacher.eval(), student.eval(), a.size).eval()
    os.makedirs(a.export, exist_ok=True)
    for n in a.batches:
        path = os.path.join(a.export, f"stfpm_b{n}.onnx")
        t0 = time.perf_counter()
        with torch.no_grad():
            torch.onnx.export(net, (torch.zeros(n, 3, a.size, a.size),), path, dynamo=False,
                              input_names=["image"], output_names=["map", "score"], opset_version=17)
        print(f"stfpm_onnx: exported {path} in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)


def make_images(n, size, seed):
    import numpy as np
    rng = np.random.default_rng(seed)     # as stfpm_torch.py's inference images
    return rng.uniform(-1.0, 1.0, size=(n, 3, size, size)).astype(np.float32)


class OnnxRuntime:
    def __init__(self, spin):
        import onnxruntime as ort
        self.ort, self.spin = ort, spin
        self.name = (f"ONNX Runtime {ort.__version__} CPUExecutionProvider, ORT_ENABLE_ALL, {os.cpu_count()} threads, "
                     f"spinning {'on' if spin else 'off'}")

    def load(self, path, batch_model):
        ort = self.ort
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = os.cpu_count()
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spin else "0")
        return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

    def run_batches(self, sess, x, count):
        """count batches one after the other; returns (images done, last scores)"""
        for _ in range(count):
            amap, scores = sess.run(["map", "score"], {"image": x})
        return count * x.shape[0], scores

    def score1(self, sess, x1):
        return float(sess.run(["score"], {"image": x1})[0][0])


class OpenVino:
    def __init__(self):
        import openvino as ov
        self.ov = ov
        self.core = ov.Core()
        self.name = f"OpenVINO {ov.get_version()} CPU, f32"
        self.nreq = 1

    def load(self, path, batch_model):
        hint = "THROUGHPUT" if batch_model else "LATENCY"
        cm = self.core.compile_model(self.core.read_model(path), "CPU",
                                     {"PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": "f32"})
        if batch_model:
            self.nreq = int(cm.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            self.name += (f", THROUGHPUT hint ({cm.get_property('NUM_STREAMS')} streams, "
                          f"{self.nreq} requests in flight)")
            self.queue = self.ov.AsyncInferQueue(cm, self.nreq)
            self.out = {}
            self.queue.set_callback(self._done)
        else:
            self.name += ", LATENCY hint for batch 1"
            self.req = cm.create_infer_request()
        return cm

    def _done(self, req, job):
        # on the CPU device the output tensors are host memory already: hold the host views
        self.out[job] = (req.get_tensor("map").data, req.get_tensor("score").data.copy())

    def run_batches(self, cm, x, count):
        jobs = count * self.nreq
        for j in range(jobs):
            self.queue.start_async({"image": x}, j)
        self.queue.wait_all()
        return jobs * x.shape[0], self.out[jobs - 1][1]

    def score1(self, cm, x1):
        self.req.infer({"image": x1})
        return float(self.req.get_tensor("score").data[0])


def measure(a):
    import numpy as np
    rt = OnnxRuntime(a.ort_spin == "on") if a.runtime == "onnxruntime" else OpenVino()

    def log(msg):
        print(f"stfpm_onnx ({a.runtime}): {msg}", file=sys.stderr, flush=True)

    out = {"impl": a.runtime, "phase": "infer", "size": None, "infer_batch": None,
           "infer_batches": a.infer_batches, "latency_reps": a.latency_reps}
    for k in ["warmup_infer_s", "infer_batch_s", "infer_images_per_s", "latency_ms_median", "latency_ms_min",
              "peak_rss_mib"]:
        out[k] = None

    t0 = time.perf_counter()
    model = rt.load(a.model_batch, True)
    if a.runtime == "onnxruntime":
        shape = model.get_inputs()[0].shape
    else:
        shape = list(model.input("image").get_shape())
    n, S = int(shape[0]), int(shape[2])
    out["size"], out["infer_batch"] = S, n
    x = make_images(n, S, 7)
    rt.run_batches(model, x, 1)
    out["warmup_infer_s"] = time.perf_counter() - t0
    log(f"load + first batch {out['warmup_infer_s']:.2f} s")
    t0 = time.perf_counter()
    done, scores = rt.run_batches(model, x, a.infer_batches)
    dt = time.perf_counter() - t0
    if not np.isfinite(scores[0]):
        raise SystemExit(f"anomaly score is {scores[0]}")
    out["infer_images_per_s"] = done / dt
    out["infer_batch_s"] = n / out["infer_images_per_s"]
    log(f"inference {out['infer_images_per_s']:.1f} images/s ({done} images in {dt:.2f} s)")
    del model
    if a.runtime == "openvino":
        del rt.queue

    model1 = rt.load(a.model_1, False)
    for _ in range(2):
        rt.score1(model1, x[:1])
    lat = []
    for k in range(a.latency_reps):
        x1 = np.ascontiguousarray(x[k % n:k % n + 1])
        t0 = time.perf_counter()
        rt.score1(model1, x1)
        lat.append((time.perf_counter() - t0) * 1000.0)
    if lat:
        out["latency_ms_median"], out["latency_ms_min"] = statistics.median(lat), min(lat)
        log(f"latency median {out['latency_ms_median']:.1f} ms")
    out["device"] = f"{rt.name} ({platform.machine()})"
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    line = json.dumps(out)
    print(line, flush=True)
    if a.json:
        with open(a.json, "w") as f:
            f.write(line + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--export", metavar="DIR", default=None, help="write the ONNX files into DIR (needs torch)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batches", default="32,1", help="batch sizes to export, comma-separated")
    ap.add_argument("--teacher", default=None)
    ap.add_argument("--runtime", choices=["onnxruntime", "openvino"], default=None)
    ap.add_argument("--model-batch", default=None, help="ONNX file for the inference-throughput batch")
    ap.add_argument("--model-1", default=None, help="ONNX file of batch 1 for the latency")
    ap.add_argument("--infer-batches", type=int, default=3)
    ap.add_argument("--ort-spin", choices=["on", "off"], default="off",
                    help="ONNX Runtime's intra-op threads spin while waiting (default off; ONNX Runtime's own default is on)")
    ap.add_argument("--latency-reps", type=int, default=10)
    ap.add_argument("--phase", choices=["infer"], default="infer", help="only inference (for compare.py)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if a.export:
        a.batches = [int(b) for b in a.batches.split(",") if b]
        if not a.batches or min(a.batches) < 1:
            ap.error("--batches must be positive integers")
        export(a)
    elif a.runtime:
        if not (a.model_batch and a.model_1):
            ap.error("--runtime needs --model-batch and --model-1")
        if a.infer_batches < 1 or a.latency_reps < 0:
            ap.error("--infer-batches must be >= 1, --latency-reps >= 0")
        measure(a)
    else:
        ap.error("give --export DIR or --runtime")


if __name__ == "__main__":
    main()
