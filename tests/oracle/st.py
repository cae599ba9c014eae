"""Minimal safetensors writer/reader on numpy (the fixtures must not depend on the safetensors package)."""
import json
import os
import struct

import numpy as np

_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.int64): "I64",
           np.dtype(np.int32): "I32", np.dtype(np.uint8): "U8"}
_NP = {v: k for k, v in _DTYPES.items()}


def save(path, tensors, metadata=None):
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs, offset = [], 0
    for name, a in tensors.items():
        a = np.asarray(a, order="C")  # keeps 0-d arrays 0-d, unlike ascontiguousarray
        if a.dtype not in _DTYPES:
            raise TypeError(f"{name}: unsupported dtype {a.dtype}")
        b = a.tobytes()
        header[name] = {"dtype": _DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        b, t = e["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + b:8 + n + t], dtype=_NP[e["dtype"]]).reshape(e["shape"]).copy()
    return out, meta
