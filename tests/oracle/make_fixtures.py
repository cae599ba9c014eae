#!/usr/bin/python3
"""Writes the PyTorch fixtures the C parity tests compare against.

Usage: /usr/bin/python3 tests/oracle/make_fixtures.py OUTDIR [--small]

Every fixture holds inputs, parameters, outputs and every gradient of one computation, as float32 safetensors
with metadata {"fixture_version": VERSION}. The C tests refuse a fixture of another version and print how to
regenerate it. PyTorch is only an oracle here: nothing at run time imports it.

--small writes only ops.safetensors (small enough to commit, < 1 MB); the full set adds the ResNet fixtures.
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

VERSION = "7"  # bump when any fixture's content or naming changes; the C side checks it (tests/util/fixture.h)

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)


def f32(t):
    return t.detach().cpu().numpy().astype(np.float32)


def conv_cases(out):
    # (n, ci, h, w, co, k, stride, pad, bias)
    cases = [(2, 3, 9, 9, 16, 3, 1, 1, False), (2, 16, 8, 8, 32, 3, 2, 1, False), (3, 8, 7, 7, 16, 1, 2, 0, True),
             (2, 3, 15, 15, 16, 7, 2, 3, False), (2, 32, 6, 6, 32, 3, 1, 1, True)]
    for i, (n, ci, h, w, co, k, s, p, bias) in enumerate(cases):
        g = torch.Generator().manual_seed(100 + i)
        x = torch.randn(n, ci, h, w, generator=g, requires_grad=True)
        conv = nn.Conv2d(ci, co, k, s, p, bias=bias)
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.2)
            if bias:
                conv.bias.copy_(torch.randn(co, generator=g))
        y = conv(x)
        dy = torch.randn(y.shape, generator=g)
        y.backward(dy)
        pre = f"conv{i}."
        out[pre + "shape"] = np.array([n, ci, h, w, co, k, s, p, int(bias)], dtype=np.int64)
        out[pre + "x"], out[pre + "w"], out[pre + "y"], out[pre + "dy"] = f32(x), f32(conv.weight), f32(y), f32(dy)
        out[pre + "dx"], out[pre + "dw"] = f32(x.grad), f32(conv.weight.grad)
        if bias:
            out[pre + "b"], out[pre + "db"] = f32(conv.bias), f32(conv.bias.grad)


def bn_cases(out):
    # (n, c, h, w, relu); h = w = 0 means BatchNorm1d on [n, c]
    cases = [(4, 16, 5, 5, False), (3, 32, 4, 4, True), (8, 32, 0, 0, False), (6, 48, 0, 0, True), (2, 3, 3, 3, False)]
    for i, (n, c, h, w, relu) in enumerate(cases):
        g = torch.Generator().manual_seed(200 + i)
        shape = (n, c, h, w) if h else (n, c)
        x = (torch.randn(shape, generator=g) * 2 + 0.5).requires_grad_(True)
        bn = nn.BatchNorm2d(c) if h else nn.BatchNorm1d(c)
        with torch.no_grad():
            bn.weight.copy_(torch.rand(c, generator=g) + 0.5)
            bn.bias.copy_(torch.randn(c, generator=g) * 0.1)
            bn.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
            bn.running_var.copy_(torch.rand(c, generator=g) + 0.5)
        pre = f"bn{i}."
        out[pre + "shape"] = np.array([n, c, h or 1, w or 1, int(relu)], dtype=np.int64)
        out[pre + "gamma"], out[pre + "beta"] = f32(bn.weight), f32(bn.bias)
        out[pre + "rm0"], out[pre + "rv0"] = f32(bn.running_mean), f32(bn.running_var)
        # eval mode first (uses the initial running statistics), then train mode (updates them)
        bn.eval()
        ye = bn(x)
        if relu:
            ye = F.relu(ye)
        out[pre + "y_eval"] = f32(ye)
        bn.train()
        y = bn(x)
        if relu:
            y = F.relu(y)
        dy = torch.randn(y.shape, generator=g)
        y.backward(dy)
        out[pre + "x"], out[pre + "y"], out[pre + "dy"], out[pre + "dx"] = f32(x), f32(y), f32(dy), f32(x.grad)
        out[pre + "dgamma"], out[pre + "dbeta"] = f32(bn.weight.grad), f32(bn.bias.grad)
        out[pre + "rm1"], out[pre + "rv1"] = f32(bn.running_mean), f32(bn.running_var)


def misc_cases(out):
    g = torch.Generator().manual_seed(300)
    # max-pool 3x3/2/1 on ReLU outputs: many zeros, so ties decide where gradients go
    for i, (n, c, h, w) in enumerate([(2, 16, 9, 9), (2, 3, 8, 8)]):
        x = F.relu(torch.randn(n, c, h, w, generator=g)).requires_grad_(True)
        y = F.max_pool2d(x, 3, 2, 1)
        dy = torch.randn(y.shape, generator=g)
        y.backward(dy)
        pre = f"maxpool{i}."
        out[pre + "shape"] = np.array([n, c, h, w], dtype=np.int64)
        out[pre + "x"], out[pre + "y"], out[pre + "dy"], out[pre + "dx"] = f32(x), f32(y), f32(dy), f32(x.grad)
    x = torch.randn(3, 32, 4, 4, generator=g, requires_grad=True)
    y = F.adaptive_avg_pool2d(x, 1).flatten(1)
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy)
    out["gap.x"], out["gap.y"], out["gap.dy"], out["gap.dx"] = f32(x), f32(y), f32(dy), f32(x.grad)
    x = torch.randn(2, 16, 5, 5, generator=g, requires_grad=True)
    y = F.relu(x)
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy)
    out["relu.x"], out["relu.y"], out["relu.dy"], out["relu.dx"] = f32(x), f32(y), f32(dy), f32(x.grad)
    # values where ReLU's definition matters: NaN passes forward (and passes the gradient back), -0 stays -0
    special = [float("nan"), -0.0, 0.0, -1.0, 1.0, float("inf"), -float("inf"), 1e-45, -1e-45, 3e-39, -3e-39]
    gs = torch.Generator().manual_seed(7)  # its own generator: the fixtures after it keep their values
    x = torch.cat([torch.tensor(special), torch.randn(21, generator=gs)]).requires_grad_(True)
    y = F.relu(x)
    dy = torch.randn(y.shape, generator=gs)
    y.backward(dy)
    out["relu_special.x"], out["relu_special.y"] = f32(x), f32(y)
    out["relu_special.dy"], out["relu_special.dx"] = f32(dy), f32(x.grad)
    # an addition followed by ReLU whose sums are NaN (inf - inf), -0 (-0 + -0), +0 (1 - 1), or pass through
    a = torch.tensor([float("inf"), -0.0, 1.0, -0.0, float("nan"), -2.0, 2.0, -float("inf")])
    b = torch.tensor([-float("inf"), -0.0, -1.0, 0.0, 1.0, 1.0, -1.0, 1.0])
    out["add_relu_special.a"], out["add_relu_special.b"] = f32(a), f32(b)
    out["add_relu_special.y"] = f32(F.relu(a + b))
    for i, bias in enumerate([True, False]):
        lin = nn.Linear(12, 7, bias=bias)
        x = torch.randn(5, 12, generator=g, requires_grad=True)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(7, 12, generator=g) * 0.3)
            if bias:
                lin.bias.copy_(torch.randn(7, generator=g))
        y = lin(x)
        dy = torch.randn(y.shape, generator=g)
        y.backward(dy)
        pre = f"linear{i}."
        out[pre + "x"], out[pre + "w"], out[pre + "y"], out[pre + "dy"] = f32(x), f32(lin.weight), f32(y), f32(dy)
        out[pre + "dx"], out[pre + "dw"] = f32(x.grad), f32(lin.weight.grad)
        if bias:
            out[pre + "b"], out[pre + "db"] = f32(lin.bias), f32(lin.bias.grad)
    x = torch.randn(6, 10, generator=g, requires_grad=True)
    y = F.normalize(x, dim=1)
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy)
    out["l2norm.x"], out["l2norm.y"], out["l2norm.dy"], out["l2norm.dx"] = f32(x), f32(y), f32(dy), f32(x.grad)
    a = F.normalize(torch.randn(6, 10, generator=g), dim=1).requires_grad_(True)
    b = F.normalize(torch.randn(6, 10, generator=g), dim=1).requires_grad_(True)
    loss = 2 - 2 * (a * b).sum(dim=1)
    dl = torch.randn(6, generator=g)
    loss.backward(dl)
    out["cosdist.a"], out["cosdist.b"], out["cosdist.l"], out["cosdist.dl"] = f32(a), f32(b), f32(loss), f32(dl)
    out["cosdist.da"], out["cosdist.db"] = f32(a.grad), f32(b.grad)
    logits = (torch.randn(6, 5, generator=g) * 3).requires_grad_(True)
    labels = torch.tensor([0, 4, 2, 2, 1, 3])
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    out["xent.logits"], out["xent.labels"] = f32(logits), labels.numpy().astype(np.int64)
    out["xent.loss"], out["xent.dlogits"] = np.array([loss.item()], dtype=np.float32), f32(logits.grad)


def resnet(arch):
    """torchvision's ResNet as the paper builds it: CIFAR stem for resnet18, fc removed, zero_init_residual."""
    m = torchvision.models.__dict__[arch](zero_init_residual=True)
    if arch == "resnet18":
        m.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        m.maxpool = nn.Identity()
    m.fc = nn.Identity()
    return m


def resnet_fixture(path, arch, n, size, seed):
    """Forward (eval, then train) and backward of a whole ResNet, computed twice: in float64, the exact function the
    C side must reproduce (stored as float32: y, grad.*, after.*), and in float32 as PyTorch normally runs it
    (y32, grad32.*). With small batches, batch norm makes the network ill-conditioned (ResNet-50 on 2 images of
    64 px: PyTorch's own float32 gradients are ~3 % off the float64 ones), so the C tests compare against float64
    and allow an error of a small multiple of PyTorch's own float32 error."""
    torch.manual_seed(seed)
    m = resnet(arch)
    out = {"names": np.frombuffer("\n".join(m.state_dict().keys()).encode(), dtype=np.uint8)}
    # Random BN affine parameters and statistics, so no branch is silenced by zero_init_residual.
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0, 0.1)
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    init = {k: v.clone() for k, v in m.state_dict().items()}
    for k, v in init.items():
        out["init." + k] = v.numpy().astype(np.int64 if v.dtype == torch.int64 else np.float32)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(n, 3, size, size, generator=g)
    r = torch.randn(n, m.layer4[-1].conv1.in_channels, generator=g)
    out["x"], out["dy"] = f32(x), f32(r)
    for dtype, tag in [(torch.float64, ""), (torch.float32, "32")]:
        m.load_state_dict(init)
        m.to(dtype)
        m.zero_grad()
        m.eval()
        with torch.no_grad():
            y_eval = m(x.to(dtype))
        m.train()
        y = m(x.to(dtype))
        (y * r.to(dtype)).sum().backward()
        out["y_eval" + tag], out["y" + tag] = f32(y_eval), f32(y)
        for k, p in m.named_parameters():
            out[f"grad{tag}." + k] = f32(p.grad)
        if not tag:
            for k, v in m.state_dict().items():
                if "running" in k or "num_batches" in k:
                    out["after." + k] = v.numpy().astype(np.int64 if v.dtype == torch.int64 else np.float32)
    st.save(path, out, {"fixture_version": VERSION, "arch": arch, "torch": torch.__version__})


def bf16_cases(out):
    # Mixed precision as PyTorch computes it: bf16 operands (x, w, dy rounded), fp32 accumulation, bf16 results
    # (y, dx, and dw, db: the gradients of the bf16 weight copies). The C side computes the same with its rounding
    # points (trainer/core/precision.h), keeping dw and db in fp32.
    g = torch.Generator().manual_seed(400)
    for i, (n, ci, h, co, k, s, p) in enumerate([(2, 16, 8, 32, 3, 1, 1), (2, 3, 9, 16, 3, 1, 1), (2, 32, 8, 64, 1, 2, 0),
                                                   (2, 16, 9, 32, 3, 2, 1)]):
        x = torch.randn(n, ci, h, h, generator=g)
        w = torch.randn(co, ci, k, k, generator=g) * (2.0 / (ci * k * k)) ** 0.5
        xb, wb = x.bfloat16().requires_grad_(True), w.bfloat16().requires_grad_(True)
        y = F.conv2d(xb, wb, None, s, p)
        dy = torch.randn(y.shape, generator=g)
        y.backward(dy.bfloat16())
        pre = f"bf16conv{i}."
        out[pre + "shape"] = np.array([n, ci, h, h, co, k, s, p], dtype=np.int64)
        out[pre + "x"], out[pre + "w"], out[pre + "dy"] = f32(x), f32(w), f32(dy)
        out[pre + "y"], out[pre + "dx"], out[pre + "dw"] = f32(y.float()), f32(xb.grad.float()), f32(wb.grad.float())
    x = torch.randn(8, 48, generator=g)
    w = torch.randn(24, 48, generator=g) * 0.15
    b = torch.randn(24, generator=g)
    xb, wb, bb = (t.bfloat16().requires_grad_(True) for t in (x, w, b))
    y = F.linear(xb, wb, bb)
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy.bfloat16())
    out["bf16linear.x"], out["bf16linear.w"], out["bf16linear.b"], out["bf16linear.dy"] = f32(x), f32(w), f32(b), f32(dy)
    out["bf16linear.y"], out["bf16linear.dx"] = f32(y.float()), f32(xb.grad.float())
    out["bf16linear.dw"], out["bf16linear.db"] = f32(wb.grad.float()), f32(bb.grad.float())


def autocast_twice_cases(out):
    # torch.autocast (CPU, bf16) with a convolution and a linear layer each used twice in one region, as the online
    # network runs on two views: autocast casts each fp32 weight to bf16 once (its cache), so autograd sums the two
    # uses' bf16 gradients in bf16 before the fp32 .grad sees them: .grad = round(round(g1) + round(g2)). What the
    # run key lowp_weight_grads computes (trainer/nn/model.h).
    g = torch.Generator().manual_seed(401)
    n, ci, h, co = 2, 16, 8, 32
    w = (torch.randn(co, ci, 3, 3, generator=g) * (2.0 / (ci * 9)) ** 0.5).requires_grad_(True)
    xs = [torch.randn(n, ci, h, h, generator=g) for _ in range(2)]
    dys = [torch.randn(n, co, h, h, generator=g) for _ in range(2)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ys = [F.conv2d(x.bfloat16(), w, None, 1, 1) for x in xs]
    torch.autograd.backward(ys, [dy.bfloat16() for dy in dys])
    pre = "twice.conv."
    out[pre + "w"], out[pre + "dw"] = f32(w.detach()), f32(w.grad)
    for i in range(2):
        out[pre + f"x{i}"], out[pre + f"dy{i}"] = f32(xs[i]), f32(dys[i])
    lw = (torch.randn(24, 48, generator=g) * 0.15).requires_grad_(True)
    lb = torch.randn(24, generator=g).requires_grad_(True)
    xs = [torch.randn(8, 48, generator=g) for _ in range(2)]
    dys = [torch.randn(8, 24, generator=g) for _ in range(2)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ys = [F.linear(x.bfloat16(), lw, lb) for x in xs]
    torch.autograd.backward(ys, [dy.bfloat16() for dy in dys])
    pre = "twice.linear."
    out[pre + "w"], out[pre + "b"], out[pre + "dw"], out[pre + "db"] = f32(lw.detach()), f32(lb.detach()), \
        f32(lw.grad), f32(lb.grad)
    for i in range(2):
        out[pre + f"x{i}"], out[pre + f"dy{i}"] = f32(xs[i]), f32(dys[i])


def optim_cases(out):
    """One torch.optim.SGD step (momentum 0.9, weight decay 5e-4, plain and Nesterov) and one BYOL EMA update, as
    the official code writes it (param_k * m + param_q * (1 - m)), on random weights, gradients and buffers."""
    g = torch.Generator().manual_seed(500)
    n = 1031  # not a multiple of a vector width: the kernels' tails too
    w = torch.randn(n, generator=g)
    grad = torch.randn(n, generator=g) * 0.01
    buf = torch.randn(n, generator=g) * 0.01
    out["sgd.w"], out["sgd.g"], out["sgd.buf"] = f32(w), f32(grad), f32(buf)
    out["sgd.hyper"] = np.array([0.05, 0.9, 5e-4], dtype=np.float32)  # lr, momentum, weight decay
    for nesterov in (0, 1):
        p = nn.Parameter(w.clone())
        p.grad = grad.clone()
        opt = torch.optim.SGD([p], lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=bool(nesterov))
        opt.state[p]["momentum_buffer"] = buf.clone()
        opt.step()
        out[f"sgd{nesterov}.w"], out[f"sgd{nesterov}.buf"] = f32(p.detach()), f32(opt.state[p]["momentum_buffer"])
    k, q, m = torch.randn(n, generator=g), torch.randn(n, generator=g), 0.996
    # the two scalars as torch multiplies by them: Python's doubles m and 1 - m, each rounded to float
    out["ema.k"], out["ema.q"], out["ema.ab"] = f32(k), f32(q), np.array([m, 1.0 - m], dtype=np.float32)
    out["ema.out"] = f32(k * m + q * (1.0 - m))


def main():
    outdir = sys.argv[1]
    small = "--small" in sys.argv
    os.makedirs(outdir, exist_ok=True)
    ops = {}
    conv_cases(ops)
    bn_cases(ops)
    misc_cases(ops)
    bf16_cases(ops)
    optim_cases(ops)
    autocast_twice_cases(ops)
    st.save(os.path.join(outdir, "ops.safetensors"), ops, {"fixture_version": VERSION, "torch": torch.__version__})
    if small:
        return
    resnet_fixture(os.path.join(outdir, "resnet18_cifar.safetensors"), "resnet18", 4, 32, 7)
    resnet_fixture(os.path.join(outdir, "resnet50.safetensors"), "resnet50", 4, 96, 8)


if __name__ == "__main__":
    main()
