#!/usr/bin/python3
"""PyTorch's side of bench/linear_bench.c: eval_multi.py's / eval_single.py's head step on CPU features already
computed (Linear, cross_entropy, SGD momentum 0.9), the same sizes and the same output line.
usage: linear_bench.py DIM CLASSES BATCHES [ROWS] [small|meanshift]"""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

dim, classes, batches = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rows = float(sys.argv[4]) if len(sys.argv) > 4 else 0
meanshift = len(sys.argv) > 5 and sys.argv[5] == "meanshift"
torch.set_num_threads(int(__import__("os").environ.get("OMP_NUM_THREADS", "2")))
g = torch.Generator().manual_seed(1)
x = torch.rand(batches * 256, dim, generator=g)
y = torch.randint(0, classes, (batches * 256,), generator=g)
head = nn.Linear(dim, classes)
opt = torch.optim.SGD(head.parameters(), 0.01, momentum=0.9, weight_decay=1e-4 if meanshift else 0,
                      nesterov=not meanshift)


def step(r0):
    loss = F.cross_entropy(head(x[r0:r0 + 256]), y[r0:r0 + 256])
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


step(0)
t0 = time.perf_counter()
total = sum(step(b * 256) for b in range(batches))
per_batch = (time.perf_counter() - t0) / batches
line = (f"torch linear head {dim} -> {classes} ({'meanshift' if meanshift else 'small'}), batch 256: "
        f"{1e3 * per_batch:.2f} ms per batch (loss {total / batches:.3f})")
if rows > 0:
    line += f", {per_batch * rows / 256:.1f} s per epoch of {rows:.0f} rows"
print(line)
