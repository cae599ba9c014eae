#!/usr/bin/env python3
"""PyTorch's side of bench/step_bench.c: the same step (ResNet-18 CIFAR or ResNet-50; encoder forward+backward, or
the official RSA / BYOL step with SGD) on the same device.
Usage: step_bench.py DEVICE r18c|r50|quick fwdbwd|rsa|byol BATCH STEPS PRECISION
  quick: the quick scale's network (experiments/scales.lua): ResNet {1,1,1,1} of width 16, CIFAR stem, heads 256/64.
  PRECISION fp32 | tf32 | amp (autocast bf16 + channels_last, the usual fast PyTorch setting)."""
import math
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

dev, arch, mode, batch, steps, prec = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
torch.backends.cuda.matmul.allow_tf32 = prec == "tf32"
torch.backends.cudnn.allow_tf32 = prec == "tf32"
torch.backends.cudnn.benchmark = True
if dev == "cpu":
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))
size = 224 if arch == "r50" else 32


def small_resnet(width=16):  # torchvision's ResNet with one BasicBlock per stage and a chosen width
    from torchvision.models.resnet import BasicBlock, conv1x1
    def stage(cin, cout, stride):
        down = None
        if stride != 1 or cin != cout:
            down = nn.Sequential(conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))
        block = BasicBlock(cin, cout, stride, down)
        nn.init.zeros_(block.bn2.weight)  # zero_init_residual
        return block
    w = [width, 2 * width, 4 * width, 8 * width]
    m = nn.Sequential(nn.Conv2d(3, w[0], 3, 1, 1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(inplace=True),
                      stage(w[0], w[0], 1), stage(w[0], w[1], 2), stage(w[1], w[2], 2), stage(w[2], w[3], 2),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
    for mod in m.modules():
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
    return m


def encoder():
    if arch == "quick":
        return small_resnet()
    m = torchvision.models.__dict__["resnet50" if arch == "r50" else "resnet18"](zero_init_residual=True)
    if arch != "r50":
        m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        m.maxpool = nn.Identity()
    m.fc = nn.Identity()
    return m


def head(d, h, o):
    return nn.Sequential(nn.Linear(d, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True), nn.Linear(h, o, bias=False))


class Net(nn.Module):  # methods/BYOL.py + RSA.py
    def __init__(self):
        super().__init__()
        d, h, o = {"r50": (2048, 4096, 256), "r18c": (512, 1024, 128), "quick": (128, 256, 64)}[arch]
        self.encoder_q, self.encoder_k = encoder(), encoder()
        self.encoder_q_head, self.encoder_k_head, self.pred = head(d, h, o), head(d, h, o), head(o, h, o)
        for q, k in zip(list(self.encoder_q.parameters()) + list(self.encoder_q_head.parameters()),
                        list(self.encoder_k.parameters()) + list(self.encoder_k_head.parameters())):
            k.data.copy_(q.data)
            k.requires_grad = False
        self.k = 0

    def forward(self, views):
        self.k += 1
        tau = 1 - 0.01 * (math.cos(math.pi * self.k / 1000) + 1) / 2
        with torch.no_grad():
            for q, k in zip(list(self.encoder_q.parameters()) + list(self.encoder_q_head.parameters()),
                            list(self.encoder_k.parameters()) + list(self.encoder_k_head.parameters())):
                k.data.copy_(k.data * tau + q.data * (1 - tau))
        on = lambda x: F.normalize(self.pred(self.encoder_q_head(self.encoder_q(x))), dim=1)  # noqa: E731
        def tg(x):
            with torch.no_grad():
                return F.normalize(self.encoder_k_head(self.encoder_k(x)), dim=1)
        d = lambda a, b: 2 - 2 * (a * b).sum(1)  # noqa: E731
        if mode == "rsa":
            w1, w2, a1, a2 = views
            p1, p2, z1, z2 = on(a1), on(a2), tg(w1), tg(w2)
            beta = 0.4
            return (beta * d(p1, p2.detach()) + (1 - beta) * d(p1, z2) + beta * d(p2, p1.detach())
                    + (1 - beta) * d(p2, z1)).mean()
        v1, v2 = views
        return (d(on(v1), tg(v2)) + d(on(v2), tg(v1))).mean()


fmt = torch.channels_last if prec == "amp" else torch.contiguous_format
if mode == "fwdbwd":
    net = encoder().to(dev).to(memory_format=fmt).train()
    x = torch.randn(batch, 3, size, size, device=dev).to(memory_format=fmt)
    dy = torch.randn(batch, {"r50": 2048, "r18c": 512, "quick": 128}[arch], device=dev)
else:
    net = Net().to(dev).to(memory_format=fmt).train()
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1, momentum=0.9, weight_decay=5e-4)
    # The views come from host memory every step, as in training (the official loader's pin_memory, then
    # .cuda(non_blocking=True)); step_bench.c uploads its views each step too.
    host_views = [torch.randn(batch, 3, size, size) for _ in range(4 if mode == "rsa" else 2)]
    if dev == "cuda":
        host_views = [v.pin_memory() for v in host_views]
times = []
for s in range(steps + 2):
    if dev == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.autocast(dev, dtype=torch.bfloat16, enabled=prec == "amp"):
        if mode == "fwdbwd":
            net.zero_grad(set_to_none=True)
            y = net(x)
        else:
            views = [v.to(dev, non_blocking=True).to(memory_format=fmt) for v in host_views]
            loss = net(views)
    if mode == "fwdbwd":
        y.float().backward(dy)
    else:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if dev == "cuda":
        torch.cuda.synchronize()
    if s >= 2:
        times.append(time.perf_counter() - t0)
times.sort()
mem = torch.cuda.max_memory_allocated() / 2**20 if dev == "cuda" else 0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
print(f"torch {dev:4s} {mode:6s} {arch:4s} batch {batch:4d} {prec}: {batch / times[len(times) // 2]:8.1f} img/s  "
      f"host peak RSS {rss:.0f} MiB  GPU peak allocated {mem:.0f} MiB")
