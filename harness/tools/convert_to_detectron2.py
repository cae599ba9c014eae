#!/usr/bin/env python3
"""Converts an rsa-repro backbone exported with `rsa export RUN --torchvision OUT.safetensors` (torchvision ResNet
names) into detectron2's pickle format, with the renaming of MoCo's detection/convert-pretrain-to-detectron2.py.
Needs only numpy (the safetensors file is read directly)."""
import json
import pickle
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        out[name] = np.frombuffer(data[base + lo:base + hi], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
    return out


def detectron2_name(k):
    if "layer" not in k:
        k = "stem." + k
    for t in [1, 2, 3, 4]:
        k = k.replace("layer{}".format(t), "res{}".format(t + 1))
    for t in [1, 2, 3]:
        k = k.replace("bn{}".format(t), "conv{}.norm".format(t))
    k = k.replace("downsample.0", "shortcut")
    k = k.replace("downsample.1", "shortcut.norm")
    return k


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: convert_to_detectron2.py backbone.safetensors backbone.pkl")
    model = {}
    for k, v in read_safetensors(sys.argv[1]).items():
        if k.startswith("fc.") or k.endswith("num_batches_tracked"):
            continue
        model[detectron2_name(k)] = v.copy()
    with open(sys.argv[2], "wb") as f:
        pickle.dump({"model": model, "__author__": "rsa-repro", "matching_heuristics": True}, f)
    print("wrote {} tensors to {}".format(len(model), sys.argv[2]))


if __name__ == "__main__":
    main()
