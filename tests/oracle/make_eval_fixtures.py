#!/usr/bin/python3
"""Writes OUTDIR/eval.safetensors: the official evaluation loops run by PyTorch on given features, for
tests/eval/test_linear_torch.c.

Usage: /usr/bin/python3 tests/oracle/make_eval_fixtures.py OUTDIR

- small.*: eval_single.py's head (SGD lr, momentum 0.9, Nesterov, no weight decay, MultiStepLR) over training
  features whose count is a multiple of the batch (its loader drops the last partial batch).
- meanshift.*: eval_multi.py's head: Normalize + FullBatchNorm(torch.var_mean of the normalised statistics
  features, 1 / sqrt(var + 1e-5)) + Linear, SGD momentum 0.9, weight decay 1e-4 on weight and bias, MultiStepLR,
  a last partial batch kept.
- knn.*: common/tools.py's knn_predict (top-k cosine similarities, weights exp(sim / t), scores summed per class).
Each head starts from weights stored here (the C side cannot draw torch's), sees the epochs' features in order (the
C side's loader shuffles; here the order is given) and stores its per-epoch mean loss, final weights and test top-1
and top-5. Features are class means plus noise, so the heads learn something.
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402
from make_fixtures import VERSION  # noqa: E402  one version for every fixture the C tests open

torch.set_num_threads(2)


def f32(t):
    return t.detach().cpu().numpy().astype(np.float32)


def clustered(g, centres, n, noise):
    labels = torch.randint(0, centres.shape[0], (n,), generator=g)
    return centres[labels] + noise * torch.randn(n, centres.shape[1], generator=g), labels


def accuracy(out, target):
    top = out.topk(5, 1, True, True).indices
    hit = top.eq(target.view(-1, 1))
    return [100.0 * hit[:, :k].any(dim=1).float().mean().item() for k in (1, 5)]


def head_case(out, pre, meanshift, g):
    dim, classes, batch, epochs = 48, 10, 64, 4
    lr, milestones = (0.05, [2, 3]) if meanshift else (0.5, [2, 3])
    n_train = 600 if meanshift else 512  # Mean-Shift: 9 full batches and one of 24
    centres = torch.randn(classes, dim, generator=g) * (0.15 if meanshift else 0.3)
    offset = 2.0 if meanshift else 0.0  # features far from 0, as ReLU features are: standardising matters
    test_x, test_y = clustered(g, centres, 200, 1.0)
    test_x = test_x + offset
    head = nn.Linear(dim, classes)
    if not meanshift:  # eval_single.py's LinearHead; Mean-Shift keeps nn.Linear's own initialisation
        head.weight.data.normal_(mean=0.0, std=0.01, generator=g)
        head.bias.data.zero_()
    else:
        with torch.no_grad():
            bound = 1.0 / dim ** 0.5
            head.weight.copy_(torch.rand(classes, dim, generator=g) * 2 * bound - bound)
            head.bias.copy_(torch.rand(classes, generator=g) * 2 * bound - bound)
    out[pre + "w0"], out[pre + "b0"] = f32(head.weight), f32(head.bias)
    out[pre + "shape"] = np.array([n_train, dim, classes, batch, epochs, milestones[0], milestones[1]],
                                  dtype=np.int64)
    out[pre + "lr"] = np.array([lr], dtype=np.float32)
    if meanshift:
        stat_x, _ = clustered(g, centres, 700, 1.0)
        stat_x = stat_x + offset
        out[pre + "stat_x"] = f32(stat_x)
        var, mean = torch.var_mean(F.normalize(stat_x, dim=1), dim=0)  # get_feats: normalize(model(images))
        inv_std = 1.0 / torch.sqrt(var + 1e-5)
        out[pre + "mean"], out[pre + "inv_std"] = f32(mean), f32(inv_std)

        def model(x):
            x = x / x.norm(2, dim=1, keepdim=True)  # eval_multi.py's Normalize, then FullBatchNorm
            return head((x - mean) * inv_std)
        opt = torch.optim.SGD(head.parameters(), lr, momentum=0.9, weight_decay=1e-4)
    else:
        model = head
        opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9, weight_decay=0, nesterov=True)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=0.1)
    losses = []
    for e in range(epochs):
        x, y = clustered(g, centres, n_train, 1.0)
        x = x + offset
        out[pre + f"x{e}"], out[pre + f"y{e}"] = f32(x), y.numpy().astype(np.int64)
        batch_losses = []
        for r0 in range(0, n_train, batch):
            loss = F.cross_entropy(model(x[r0:r0 + batch]), y[r0:r0 + batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            batch_losses.append(loss.item())
        losses.append(sum(batch_losses) / len(batch_losses))
        sched.step()
    with torch.no_grad():
        top1, top5 = accuracy(model(test_x), test_y)
    out[pre + "test_x"], out[pre + "test_y"] = f32(test_x), test_y.numpy().astype(np.int64)
    out[pre + "w"], out[pre + "b"] = f32(head.weight), f32(head.bias)
    out[pre + "loss"] = np.array(losses, dtype=np.float64)
    out[pre + "top"] = np.array([top1, top5], dtype=np.float64)


def knn_case(out, g):
    dim, classes, k, t = 16, 10, 20, 0.1
    centres = torch.randn(classes, dim, generator=g)
    bank_x, bank_y = clustered(g, centres, 500, 1.5)
    test_x, test_y = clustered(g, centres, 150, 1.5)
    bank_x, test_x = F.normalize(bank_x, dim=1), F.normalize(test_x, dim=1)
    sim = torch.mm(test_x, bank_x.t().contiguous())  # knn_validate's bank is [D, N]
    w, idx = sim.topk(k=k, dim=-1)
    labels = torch.gather(bank_y.expand(test_x.size(0), -1), dim=-1, index=idx)
    w = (w / t).exp()
    one_hot = torch.zeros(test_x.size(0) * k, classes).scatter(dim=-1, index=labels.view(-1, 1), value=1.0)
    scores = torch.sum(one_hot.view(test_x.size(0), -1, classes) * w.unsqueeze(dim=-1), dim=1)
    best = scores.topk(2, dim=1).values
    out["knn.shape"] = np.array([classes, k], dtype=np.int64)
    out["knn.t"] = np.array([t], dtype=np.float64)
    out["knn.bank_x"], out["knn.bank_y"] = f32(bank_x), bank_y.numpy().astype(np.int64)
    out["knn.test_x"], out["knn.test_y"] = f32(test_x), test_y.numpy().astype(np.int64)
    out["knn.pred"] = scores.argmax(dim=1).numpy().astype(np.int64)
    # how far the winner is ahead, relative: a near tie may go either way in another summation order
    out["knn.margin"] = ((best[:, 0] - best[:, 1]) / best[:, 0]).numpy().astype(np.float64)


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    g = torch.Generator().manual_seed(900)
    out = {}
    head_case(out, "small.", False, g)
    head_case(out, "meanshift.", True, g)
    knn_case(out, g)
    st.save(os.path.join(outdir, "eval.safetensors"), out, {"fixture_version": VERSION, "torch": torch.__version__})


if __name__ == "__main__":
    main()
