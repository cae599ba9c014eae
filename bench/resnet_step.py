#!/usr/bin/python3
"""PyTorch's ResNet-18 (CIFAR stem) forward + backward at a batch size, same thread count as ours.
Usage: resnet_step.py BATCH STEPS LABEL [channels_last]. Prints one line like bench/resnet_step.c."""
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torchvision

batch, steps, label = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
channels_last = len(sys.argv) > 4 and sys.argv[4] == "channels_last"
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))
m = torchvision.models.resnet18(zero_init_residual=True)
m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
m.maxpool = nn.Identity()
m.fc = nn.Identity()
m.train()
x = torch.randn(batch, 3, 32, 32)
dy = torch.randn(batch, 512) / batch
if channels_last:
    m = m.to(memory_format=torch.channels_last)
    x = x.to(memory_format=torch.channels_last)
times = []
for s in range(steps + 1):
    t0 = time.perf_counter()
    m.zero_grad(set_to_none=True)
    y = m(x)
    y.backward(dy)
    if s:
        times.append(time.perf_counter() - t0)
times.sort()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{label:7s} batch {batch:4d}: {batch / times[len(times) // 2]:7.1f} img/s  peak RSS {rss:6.0f} MiB")
