#!/usr/bin/python3
"""torchvision + PIL side of the augmentation benchmark (bench/aug.sh runs both sides).

  aug_bench.py prepare DIR   writes the inputs both sides use: DIR/small.u8 (N x 32 x 32 x 3 uint8, CIFAR-like
                             reductions of real photographs) and DIR/imagenet/train/<class>/<k>.JPEG (ImageNet-like
                             500x375 and 375x500 JPEGs, quality 90, 4:2:0)
  aug_bench.py run DIR       times the official code's 4-view MA transform (MultiStageTransform of
                             common/augments.py, with ToTensor + Normalize) through a torch DataLoader, on one core
                             (num_workers=0) and on all cores (num_workers = cores), and writes DIR/torchvision.txt

Each measurement includes what a training loop pays per image: for 32 px, Image.fromarray of the stored array (as
torchvision's CIFAR10.__getitem__) and collation; for 224 px, reading and decoding the JPEG (ImageFolder's
pil_loader: Image.open(f).convert('RGB')).
"""
import glob
import os
import random
import sys
import time

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image, ImageFilter
from torch.utils.data import DataLoader, Dataset

PHOTO_DIR = "/usr/share/backgrounds/mate/nature"
N_SMALL = 5000
N_JPEG = 240


class GaussianBlur:
    """common/augments.py's GaussianBlur (PIL radius = sigma ~ U[0.1, 2])."""

    def __init__(self, sigma=(0.1, 2.0)):
        self.sigma = sigma

    def __call__(self, x):
        return x.filter(ImageFilter.GaussianBlur(radius=random.uniform(self.sigma[0], self.sigma[1])))


class MultiStageTransform:
    """common/augments.py's MultiStageTransform: w1, w2 = t1(x), t1(x); a_i = t2(w_i); all normalised."""

    def __init__(self, size, mean, std):
        self.first = T.Compose([T.RandomResizedCrop(size=size, scale=(0.2, 1)), T.RandomHorizontalFlip(p=0.5)])
        self.second = T.Compose([T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(p=0.2),
                                 T.RandomApply([GaussianBlur([.1, 2.])], p=0.5)])
        self.norm = T.Compose([T.ToTensor(), T.Normalize(mean=mean, std=std)])

    def __call__(self, x):
        w1, w2 = self.first(x), self.first(x)
        a1, a2 = self.second(w1), self.second(w2)
        return [self.norm(w1), self.norm(w2), self.norm(a1), self.norm(a2)]


class SmallSet(Dataset):
    def __init__(self, path):
        self.data = np.fromfile(path, dtype=np.uint8).reshape(-1, 32, 32, 3)
        self.t = MultiStageTransform(32, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.t(Image.fromarray(self.data[i])), 0


class JpegSet(Dataset):
    def __init__(self, root):
        self.files = sorted(glob.glob(os.path.join(root, "imagenet", "train", "*", "*.JPEG")))
        self.t = MultiStageTransform(224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        with open(self.files[i], "rb") as f:
            img = Image.open(f).convert("RGB")
        return self.t(img), 0


def prepare(out):
    files = sorted(glob.glob(os.path.join(PHOTO_DIR, "*.jpg")))
    if not files:
        sys.exit(f"no photographs in {PHOTO_DIR}: apt-get install mate-backgrounds")
    rng = np.random.default_rng(7)
    photos = [Image.open(f).convert("RGB") for f in files]
    small = np.empty((N_SMALL, 32, 32, 3), dtype=np.uint8)
    for i in range(N_SMALL):
        im = photos[i % len(photos)]
        side = int(rng.integers(64, 600))
        x, y = int(rng.integers(0, im.width - side)), int(rng.integers(0, im.height - side))
        small[i] = np.asarray(im.crop((x, y, x + side, y + side)).resize((32, 32), Image.BOX))
    os.makedirs(out, exist_ok=True)
    small.tofile(os.path.join(out, "small.u8"))
    for i in range(N_JPEG):
        im = photos[i % len(photos)]
        w, h = (500, 375) if i % 4 else (375, 500)
        scale = float(rng.uniform(1.0, 2.5))
        cw, ch = int(w * scale), int(h * scale)
        cw, ch = min(cw, im.width), min(ch, im.height)
        x, y = int(rng.integers(0, im.width - cw + 1)), int(rng.integers(0, im.height - ch + 1))
        d = os.path.join(out, "imagenet", "train", f"n{i % 8:08d}")
        os.makedirs(d, exist_ok=True)
        im.crop((x, y, x + cw, y + ch)).resize((w, h), Image.BILINEAR).save(os.path.join(d, f"{i:04d}.JPEG"),
                                                                            quality=90)


def measure(ds, workers, min_seconds):
    loader = DataLoader(ds, batch_size=64, shuffle=False, num_workers=workers, drop_last=False,
                        persistent_workers=workers > 0)
    images, t0 = 0, None
    for epoch in range(100):
        for b, (views, _) in enumerate(loader):
            if t0 is None:  # the first batch pays for starting the workers
                t0, images = time.perf_counter(), 0
                continue
            images += views[0].shape[0]
        if time.perf_counter() - t0 >= min_seconds:
            break
    return images / (time.perf_counter() - t0)


def run(out):
    torch.set_num_threads(1)
    cores = os.cpu_count()
    lines = []
    for name, ds in [("small32", SmallSet(os.path.join(out, "small.u8"))), ("jpeg224", JpegSet(out))]:
        one = measure(ds, 0, 4.0)
        many = measure(ds, cores, 4.0)
        lines.append(f"{name} {one:.1f} {many:.1f} {cores}")
        print(f"torchvision+PIL {name}: {one:8.1f} images/s on one core, {many:8.1f} on {cores} cores "
              f"(DataLoader, 4-view MA)", flush=True)
    with open(os.path.join(out, "torchvision.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    {"prepare": prepare, "run": run}[sys.argv[1]](sys.argv[2])
