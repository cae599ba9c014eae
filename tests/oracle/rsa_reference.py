#!/usr/bin/python3
"""A PyTorch re-implementation of the official RSA and BYOL training steps (tmllab/2022_NeurIPS_RSA,
methods/BYOL.py, methods/RSA.py, train_single.py), written from the method's description, used as the oracle for
the C trainer's step (tests/train/test_step_torch.c).

It writes fixtures step_rsa.safetensors and step_byol.safetensors: initial weights under the official names,
K steps of pre-augmented views, and, after each step, the loss terms; after K steps every weight, BN buffer and
momentum buffer. Everything is computed twice: in float64 (the exact function) and in float32 (what PyTorch
normally gives), so the C test can bound its error by PyTorch's own.

Usage: rsa_reference.py OUTDIR"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures  # noqa: E402
import st  # noqa: E402

VERSION = make_fixtures.VERSION
STEPS = 3          # K steps run
# SimCLR runs one step: NT-Xent over a batch of 8 with BN makes its free-running steps chaotic. Some ReLU input is
# always within ~1e-6 of zero, so any change of float32 rounding (here: a convolution algorithm) can flip one mask,
# and three steps later the weights had moved 5 % apart. One step still checks its loss, every gradient (as the
# momentum buffer) and the BN statistics; the other methods check the state carried across steps.
STEPS_BY_METHOD = {"simclr": 1}
MAX_STEP = 10      # the schedules' length (epochs * floor(N / batch)), so tau and beta move
N, SIZE = 8, 16    # batch, image side
LR, WD, MOMENTUM = 0.05, 5e-4, 0.9
BETA, TAU = 0.4, 0.99


WIDTH, HIDDEN, OUT = 16, 64, 32  # a ResNet-10 of width 16 (the backbone is checked against torchvision elsewhere)


def encoder():
    """torchvision's ResNet with BasicBlocks [1, 1, 1, 1], first stage WIDTH channels, CIFAR stem, no fc, and
    zero_init_residual: the same module names as resnet18, so the official state-dict keys."""
    import torchvision.models.resnet as R
    m = R.ResNet(R.BasicBlock, [1, 1, 1, 1], zero_init_residual=True)
    m.inplanes = WIDTH
    m.conv1 = nn.Conv2d(3, WIDTH, kernel_size=3, stride=1, padding=1, bias=False)
    m.bn1 = nn.BatchNorm2d(WIDTH)
    m.maxpool = nn.Identity()
    m.layer1 = m._make_layer(R.BasicBlock, WIDTH, 1)
    m.layer2 = m._make_layer(R.BasicBlock, 2 * WIDTH, 1, stride=2)
    m.layer3 = m._make_layer(R.BasicBlock, 4 * WIDTH, 1, stride=2)
    m.layer4 = m._make_layer(R.BasicBlock, 8 * WIDTH, 1, stride=2)
    m.fc = nn.Identity()
    for mod in m.modules():  # torchvision's init for the rebuilt layers
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
    return m


def head(dim, inner, out):
    return nn.Sequential(nn.Linear(dim, inner), nn.BatchNorm1d(inner), nn.ReLU(inplace=True),
                         nn.Linear(inner, out, False))


class BYOL(nn.Module):
    """methods/BYOL.py with a small ResNet (CIFAR stem); heads inner HIDDEN, out OUT."""

    def __init__(self, max_step):
        super().__init__()
        self.byol_tau, self.num_step, self.max_step = TAU, 0, max_step
        self.encoder_q = encoder()
        self.encoder_k = encoder()
        self.encoder_q_head = head(8 * WIDTH, HIDDEN, OUT)
        self.encoder_k_head = head(8 * WIDTH, HIDDEN, OUT)
        self.pred = head(OUT, HIDDEN, OUT)
        for q, k in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            k.data.copy_(q.data)
            k.requires_grad = False
        for q, k in zip(self.encoder_q_head.parameters(), self.encoder_k_head.parameters()):
            k.data.copy_(q.data)
            k.requires_grad = False

    def update_target(self):
        self.num_step += 1
        tau = 1 - (1 - self.byol_tau) * (math.cos(math.pi * self.num_step / self.max_step) + 1) / 2
        for q, k in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            k.data.copy_(k.data * tau + q.data * (1.0 - tau))
        for q, k in zip(self.encoder_q_head.parameters(), self.encoder_k_head.parameters()):
            k.data.copy_(k.data * tau + q.data * (1.0 - tau))

    def online(self, x):
        return F.normalize(self.pred(self.encoder_q_head(self.encoder_q(x))), dim=1)

    def target(self, x):
        with torch.no_grad():
            return F.normalize(self.encoder_k_head(self.encoder_k(x)), dim=1)

    def forward(self, views):
        self.update_target()
        p1 = self.online(views[0])
        z2 = self.target(views[1])
        p2 = self.online(views[1])
        z1 = self.target(views[0])
        loss = (2 - 2 * (p1 * z2).sum(1)) + (2 - 2 * (p2 * z1).sum(1))
        return loss.mean(), loss.mean(), torch.zeros(())


class RSA(BYOL):
    """methods/RSA.py: views w1, w2, a1, a2."""

    def __init__(self, max_step, beta):
        super().__init__(max_step)
        self.beta = beta

    def forward(self, views):
        self.update_target()
        w1, w2, a1, a2 = views
        q1, q2 = self.online(a1), self.online(a2)
        z1, z2 = self.target(w1), self.target(w2)
        d = lambda a, b: 2 - 2 * (a * b).sum(1)  # noqa: E731
        a1w2, a1a2, a2w1, a2a1 = d(q1, z2), d(q1, q2.clone().detach()), d(q2, z1), d(q2, q1.clone().detach())
        beta = self.beta * (math.cos(math.pi * self.num_step / self.max_step) + 1) / 2
        loss = beta * a1a2 + (1 - beta) * a1w2 + beta * a2a1 + (1 - beta) * a2w1
        return loss.mean(), (a1w2 + a2w1).mean(), (a1a2 + a2a1).mean()


TEMPERATURE, QUEUE, MOCO_M = 0.5, 64, 0.99


class SimCLR(nn.Module):
    """SimCLR (Chen et al. 2020): NT-Xent over both views' normalised projections; BYOL's projector shape."""

    def __init__(self):
        super().__init__()
        self.encoder_q = encoder()
        self.encoder_q_head = head(8 * WIDTH, HIDDEN, OUT)

    def forward(self, views):
        z = torch.cat([F.normalize(self.encoder_q_head(self.encoder_q(v)), dim=1) for v in views])
        n = views[0].shape[0]
        logits = z @ z.t() / TEMPERATURE
        logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
        target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
        loss = F.cross_entropy(logits, target)
        return loss, torch.zeros(()), torch.zeros(())


class MoCo(nn.Module):
    """MoCo v2 (He et al. 2020, Alg. 1; Chen et al. 2020): MLP head without BN, fixed momentum, a queue."""

    def __init__(self, queue):
        super().__init__()
        mlp = lambda: nn.Sequential(nn.Linear(8 * WIDTH, HIDDEN), nn.ReLU(inplace=True), nn.Linear(HIDDEN, OUT))  # noqa
        self.encoder_q, self.encoder_k = encoder(), encoder()
        self.encoder_q_head, self.encoder_k_head = mlp(), mlp()
        for q, k in zip(list(self.encoder_q.parameters()) + list(self.encoder_q_head.parameters()),
                        list(self.encoder_k.parameters()) + list(self.encoder_k_head.parameters())):
            k.data.copy_(q.data)
            k.requires_grad = False
        self.register_buffer("queue", queue.clone())
        self.ptr = 0

    def forward(self, views):
        q = F.normalize(self.encoder_q_head(self.encoder_q(views[0])), dim=1)
        with torch.no_grad():
            for a, b in zip(list(self.encoder_q.parameters()) + list(self.encoder_q_head.parameters()),
                            list(self.encoder_k.parameters()) + list(self.encoder_k_head.parameters())):
                b.data.copy_(b.data * MOCO_M + a.data * (1.0 - MOCO_M))
            k = F.normalize(self.encoder_k_head(self.encoder_k(views[1])), dim=1)
        logits = torch.cat([(q * k).sum(1, keepdim=True), q @ self.queue.clone().detach().t()], dim=1) / TEMPERATURE
        loss = F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long))
        with torch.no_grad():
            for r in range(k.shape[0]):
                self.queue[self.ptr] = k[r]
                self.ptr = (self.ptr + 1) % self.queue.shape[0]
        return loss, torch.zeros(()), torch.zeros(())


class SimSiam(nn.Module):
    """SimSiam (Chen & He 2021) with its two-layer CIFAR projector; no target network."""

    def __init__(self):
        super().__init__()
        self.encoder_q = encoder()
        self.encoder_q_head = nn.Sequential(nn.Linear(8 * WIDTH, HIDDEN, bias=False), nn.BatchNorm1d(HIDDEN),
                                            nn.ReLU(inplace=True), nn.Linear(HIDDEN, OUT, bias=False),
                                            nn.BatchNorm1d(OUT, affine=False))
        self.pred = nn.Sequential(nn.Linear(OUT, HIDDEN // 2, bias=False), nn.BatchNorm1d(HIDDEN // 2),
                                  nn.ReLU(inplace=True), nn.Linear(HIDDEN // 2, OUT))

    def forward(self, views):
        z1, z2 = (self.encoder_q_head(self.encoder_q(v)) for v in views)
        p1, p2 = self.pred(z1), self.pred(z2)
        d = lambda p, z: -F.cosine_similarity(p, z.detach(), dim=1).mean()  # noqa: E731
        return d(p1, z2) / 2 + d(p2, z1) / 2, torch.zeros(()), torch.zeros(())


def make(method, queue=None):
    if method == "rsa":
        return RSA(MAX_STEP, BETA)
    if method == "byol":
        return BYOL(MAX_STEP)
    if method == "simclr":
        return SimCLR()
    if method == "mocov2":
        return MoCo(queue)
    return SimSiam()


def run(method, dtype, init, views, queue, steps):
    torch.manual_seed(0)
    model = make(method, queue)
    model.load_state_dict(init)
    model.to(dtype).train()
    opt = torch.optim.SGD(model.parameters(), lr=LR, weight_decay=WD, momentum=MOMENTUM)
    losses = []
    for s in range(steps):
        loss, loss_w, loss_a = model([v.to(dtype) for v in views[s]])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append([loss.item(), loss_w.item(), loss_a.item()])
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    momentum = {name: opt.state[p]["momentum_buffer"] for name, p in model.named_parameters() if p.requires_grad}
    return np.array(losses, dtype=np.float64), state, momentum


def fixture(method, path):
    torch.manual_seed(11)
    g0 = torch.Generator().manual_seed(13)
    queue = F.normalize(torch.randn(QUEUE, OUT, generator=g0), dim=1)
    model = make(method, queue)
    with torch.no_grad():  # random BN affine parameters: no branch silenced by zero_init_residual
        for mod in model.modules():
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)) and mod.affine:
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0, 0.1)
        if hasattr(model, "encoder_k"):
            for q, k in zip(list(model.encoder_q.parameters()) + list(model.encoder_q_head.parameters()),
                            list(model.encoder_k.parameters()) + list(model.encoder_k_head.parameters())):
                k.data.copy_(q.data)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(12)
    nviews = 4 if method == "rsa" else 2
    steps = STEPS_BY_METHOD.get(method, STEPS)
    views = [[torch.randn(N, 3, SIZE, SIZE, generator=g) for _ in range(nviews)] for _ in range(steps)]
    out = {}
    for k, v in init.items():
        out["init." + k] = v.numpy().astype(np.int64 if v.dtype == torch.int64 else np.float32)
    for s in range(steps):
        for i in range(nviews):
            out[f"views.{s}.{i}"] = views[s][i].numpy()
    out["queue0"] = queue.numpy()
    for dtype, tag in [(torch.float64, ""), (torch.float32, "32")]:
        losses, state, momentum = run(method, dtype, init, views, queue.to(dtype), steps)
        out["losses" + tag] = losses.astype(np.float32)
        for k, v in state.items():
            out[f"after{tag}." + k] = v.numpy().astype(np.int64 if v.dtype == torch.int64 else np.float32)
        for k, v in momentum.items():
            out[f"momentum{tag}." + k] = v.numpy().astype(np.float32)
    meta = {"fixture_version": VERSION, "method": method, "steps": steps, "max_step": MAX_STEP, "batch": N,
            "temperature": TEMPERATURE, "queue": QUEUE, "moco_m": MOCO_M, "pred_hidden": HIDDEN // 2,
            "size": SIZE, "width": WIDTH, "hidden": HIDDEN, "out": OUT, "lr": LR, "weight_decay": WD, "momentum": MOMENTUM, "beta": BETA, "tau": TAU}
    st.save(path, out, meta)


if __name__ == "__main__":
    torch.set_num_threads(2)
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    for method in ["rsa", "byol", "simclr", "mocov2", "simsiam"]:
        fixture(method, os.path.join(outdir, f"step_{method}.safetensors"))
