#!/usr/bin/python3
"""Loads a backbone written by the C trainer into torchvision's model with load_state_dict(strict=True), runs the
stored input through it in eval mode and compares with the C output. Exit status 0 when they agree.

Usage: check_torchvision_load.py ARCH WEIGHTS.safetensors IO.safetensors"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures  # noqa: E402
import st  # noqa: E402

arch, weights, io = sys.argv[1:4]
torch.set_num_threads(2)
state, _ = st.load(weights)
model = make_fixtures.resnet(arch)
missing = model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
model.eval()
tensors, _ = st.load(io)
with torch.no_grad():
    y = model(torch.from_numpy(tensors["x"])).numpy()
err = np.linalg.norm(y - tensors["y"]) / np.linalg.norm(tensors["y"])
print(f"torchvision {arch} output vs C: rel_l2 {err:.3g}")
sys.exit(0 if err < 1e-4 else 1)
