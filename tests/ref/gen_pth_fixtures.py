#!/usr/bin/env python3
"""Write the small weight-file fixtures of tests/test_io_pth.c and tests/test_io_safetensors.c.

Run with a Python that has torch and safetensors (the environment of bench/setup_env.sh), from
any directory:
    .venv-bench/bin/python tests/ref/gen_pth_fixtures.py
Files go to tests/data/weights/. Every float value follows one formula so the C tests can
recompute it without a reference file:
    value(j) = base + (start + j - 7) * 0.125      (j = flat index inside the tensor)
with base / start per tensor listed in the tests (values are exact in float16 and bfloat16).
The "evil" pickles are written byte by byte and never loaded here.
"""
import collections
import io
import os
import pickle
import struct
import zipfile

import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "weights")


def formula(shape, base, start=0, dtype=torch.float32):
    n = 1
    for s in shape:
        n *= s
    v = base + (torch.arange(n, dtype=torch.float64) + start - 7) * 0.125
    return v.reshape(shape).to(dtype)


def tiny_state_dict():
    """Conv2d(2, 3, 3) + BatchNorm2d(3) state_dict (OrderedDict with _metadata, an int64
    num_batches_tracked), plus tensors that are views into a shared storage and a scalar."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3))
    sd = net.state_dict()
    base = 0
    for k, v in sd.items():
        if v.dtype.is_floating_point:
            v.copy_(formula(tuple(v.shape), base))
            base += 1
        else:
            v.fill_(5)
    big = formula((20,), 6)                 # one storage, two views with storage offsets
    sd["extra.view"] = big[5:11]
    sd["extra.shared"] = big[12:16].reshape(2, 2)
    sd["extra.scalar"] = torch.tensor(2.5)
    return sd


def save(obj, name, **kw):
    path = os.path.join(OUT, name)
    torch.save(obj, path, **kw)
    return path


def legacy_header(proto=2):
    """The first three pickles of torch's legacy format (plain data, written with pickle)."""
    b = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=proto)
    b += pickle.dumps(1001, protocol=proto)
    b += pickle.dumps({"protocol_version": 1001, "little_endian": True,
                       "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=proto)
    return b


def write_zip(name, records):
    """A torch-like zip (stored entries) with hand-made records."""
    path = os.path.join(OUT, name)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for rec, data in records:
            z.writestr("archive/" + rec, data)
    return path


def main():
    os.makedirs(OUT, exist_ok=True)
    sd = tiny_state_dict()
    save(sd, "tiny_state.pth")
    save(sd, "tiny_state_legacy.pth", _use_new_zipfile_serialization=False)
    save(sd, "tiny_state_proto4.pth", pickle_protocol=4)
    save({"epoch": 7, "state_dict": sd,
          "optimizer": {"lr": 0.4, "momentum": 0.9, "misc": [1, 2.5, None, True, "s", (1, 2), -70000, 2**40]},
          "config": {"name": "stfpm"}}, "tiny_wrapped.pth")
    save({"model": sd, "best": 0.25}, "tiny_model_key_legacy.pth", _use_new_zipfile_serialization=False)
    half = collections.OrderedDict((k, v.half() if v.dtype.is_floating_point else v) for k, v in sd.items())
    save(half, "tiny_half.pth")
    dtypes = collections.OrderedDict()
    dtypes["f32"] = formula((2, 3), 0)
    dtypes["f16"] = formula((4,), 1, dtype=torch.float16)
    dtypes["bf16"] = formula((2, 2), 2, dtype=torch.bfloat16)
    dtypes["f64"] = formula((3,), 3, dtype=torch.float64)
    dtypes["i64"] = torch.arange(2)
    dtypes["param"] = torch.nn.Parameter(formula((1, 2, 1), 4))
    save(dtypes, "tiny_dtypes.pth")
    save(dtypes, "tiny_dtypes_legacy.pth", _use_new_zipfile_serialization=False)
    save({"w": torch.arange(6.0).reshape(2, 3).t()}, "noncontig.pth")

    st = {"f32": formula((2, 3), 0), "f16": formula((4,), 1, dtype=torch.float16),
          "bf16": formula((2, 2), 2, dtype=torch.bfloat16), "f64": formula((3,), 3, dtype=torch.float64),
          "i64": torch.arange(2), 'we"ird/n\u00e4me': formula((1,), 4)}
    save_file(st, os.path.join(OUT, "tiny_mixed.safetensors"),
              metadata={"format": "pt", "note": 'tiny "quoted" \u00fc\n'})

    # Malicious pickles, written by hand: os.system('echo') via GLOBAL + REDUCE, and
    # builtins.eval via STACK_GLOBAL (protocol 4). The loader must refuse them by name.
    evil = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00echoq\x01\x85q\x02Rq\x03."
    write_zip("evil_global.pth", [("data.pkl", evil), ("byteorder", b"little"), ("version", b"3\n")])
    with open(os.path.join(OUT, "evil_global_legacy.pth"), "wb") as f:
        f.write(legacy_header() + evil + pickle.dumps([], protocol=2))
    evil4 = (b"\x80\x04\x95\x1f\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x94\x8c\x04eval\x94\x93\x94"
             b"\x8c\x011\x94\x85\x94R\x94.")
    write_zip("evil_stack_global.pth", [("data.pkl", evil4), ("byteorder", b"little")])

    for name in sorted(os.listdir(OUT)):
        print(f"{name:32s} {os.path.getsize(os.path.join(OUT, name)):7d} bytes")


if __name__ == "__main__":
    main()
