#!/usr/bin/python3
"""Writes the torchvision + PIL fixtures the C augmentation tests compare against (tests/data/test_aug_torch.c).

Usage: /usr/bin/python3 tests/oracle/make_aug_fixtures.py OUTDIR

Writes OUTDIR/aug.safetensors with metadata {"fixture_version": VERSION}: source images (crops and reductions of the
real photographs Debian's mate-backgrounds package installs, plus one noise image), the parameters of each op, and
what torchvision 0.14 + Pillow 9.4 produce from them. Every random parameter is fixed here and passed to torchvision's
functional API (F.resized_crop, F.adjust_*, ...) or PIL directly, exactly as the transforms of the official code call
them, so the C side can apply the same parameters and compare bytes.

Naming: img.K (uint8 HxWx3); <op>.N.* for each case; every case names its source image in <op>.N.src.
"""
import glob
import io
import os
import sys

import numpy as np
import torch
import torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image, ImageFilter, ImageOps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

VERSION = "1"  # bump when a fixture's content or naming changes; tests/data/test_aug_torch.c checks it
PHOTO_DIR = "/usr/share/backgrounds/mate/nature"

torch.set_num_threads(1)


def photos():
    files = sorted(glob.glob(os.path.join(PHOTO_DIR, "*.jpg")))
    if len(files) < 4:
        sys.exit(f"make_aug_fixtures.py: photographs not found in {PHOTO_DIR}: "
                 "install them with `apt-get install mate-backgrounds` (PKGS_TEST in the Makefile)")
    return files


def u8(im):
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def i64(*v):
    return np.array(v, dtype=np.int64)


def f32(*v):
    return np.array(v, dtype=np.float32)


def checksum(a):
    """Sum of the bytes and sum of byte x ((position mod 65521) + 1), mod 2^61 - 1 (tests/data/test_aug_torch.c)."""
    a = a.astype(np.uint64).ravel()
    w = (np.arange(a.size, dtype=np.uint64) % np.uint64(65521)) + np.uint64(1)
    return i64(int(a.sum()), int((a * w).sum() % np.uint64(2**61 - 1)))


def source_images(files):
    """Real photographs at the sizes the data sets have, and one noise image (worst case for rounding)."""
    rng = np.random.default_rng(1234)
    imgs = []
    big = [Image.open(f).convert("RGB") for f in files[:6]]
    # CIFAR/STL/Tiny-like: a random region reduced with a box filter (as those data sets were made)
    for k, (side, region) in enumerate([(32, 400), (32, 256), (64, 300), (96, 500), (64, 64), (32, 32)]):
        im = big[k % len(big)]
        x, y = rng.integers(0, im.width - region), rng.integers(0, im.height - region)
        imgs.append(im.crop((x, y, x + region, y + region)).resize((side, side), Image.BOX))
    # ImageNet-like photographs (500x375, 333x500) and a full-resolution detail (400x300, no resampling)
    imgs.append(big[1].resize((500, 375), Image.BILINEAR))
    imgs.append(big[2].resize((500, 750), Image.BILINEAR).crop((0, 100, 333, 600)))
    imgs.append(big[3].crop((700, 500, 1100, 800)))
    noise = rng.integers(0, 256, size=(48, 40, 3), dtype=np.uint8)
    imgs.append(Image.fromarray(noise, "RGB"))
    return imgs


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    files = photos()
    imgs = source_images(files)
    out = {}
    for k, im in enumerate(imgs):
        out[f"img.{k}"] = u8(im)
    g = torch.Generator().manual_seed(77)
    small = [k for k, im in enumerate(imgs) if im.width <= 96]
    large = [k for k, im in enumerate(imgs) if im.width > 96]

    # RandomResizedCrop's crop + resize (F.resized_crop = crop then Image.resize(BILINEAR)): real parameters from
    # torchvision's own get_params, plus hand-picked extremes (tiny crops, full image, non-square output)
    n = 0
    for k, im in enumerate(imgs):
        size = 32 if im.width <= 32 else 64 if im.width <= 96 else 224
        cases = []
        for scale in [(0.2, 1.0), (0.08, 1.0), (0.2, 1.0)]:
            i, j, h, w = T.RandomResizedCrop.get_params(im, list(scale), [3 / 4, 4 / 3])
            cases.append((i, j, h, w, size, size))
        cases.append((0, 0, im.height, im.width, size, size))
        cases.append((1, 2, max(1, im.height // 7), max(1, im.width // 5), size, size))
        cases.append((0, 0, im.height, im.width, max(1, im.height // 3), max(2, im.width // 2 + 1)))
        for (i, j, h, w, oh, ow) in cases:
            o = F.resized_crop(im, i, j, h, w, [oh, ow], T.InterpolationMode.BILINEAR)
            out[f"rc.{n}.src"], out[f"rc.{n}.box"], out[f"rc.{n}.size"] = i64(k), i64(i, j, h, w), i64(oh, ow)
            out[f"rc.{n}.out"] = u8(o)
            n += 1

    # Resize(256) (shorter side) + CenterCrop(224), and CenterCrop alone
    n = 0
    for k in large:
        r = F.resize(imgs[k], 256, T.InterpolationMode.BILINEAR)
        c = F.center_crop(r, 224)
        out[f"short.{n}.src"], out[f"short.{n}.mid"], out[f"short.{n}.out"] = i64(k), u8(r), u8(c)
        n += 1
    n = 0
    for (hh, ww, ch, cw) in [(96, 96, 64, 64), (375, 500, 224, 224), (33, 35, 32, 32), (64, 64, 64, 64),
                             (101, 77, 50, 51), (256, 341, 224, 224), (256, 256, 224, 224)]:
        dummy = Image.new("RGB", (ww, hh))
        # recover torchvision's box: crop an image whose pixels encode their coordinates
        yy, xx = np.meshgrid(np.arange(hh), np.arange(ww), indexing="ij")
        enc = np.stack([yy % 256, xx % 256, (yy // 256) * 16 + xx // 256], axis=-1).astype(np.uint8)
        c = np.asarray(F.center_crop(Image.fromarray(enc, "RGB"), [ch, cw]))
        top = int(c[0, 0, 0]) + 256 * int(c[0, 0, 2] // 16)
        left = int(c[0, 0, 1]) + 256 * int(c[0, 0, 2] % 16)
        del dummy
        out[f"center.{n}"] = i64(hh, ww, ch, cw, top, left)
        n += 1
    n = 0
    for (hh, ww, s) in [(375, 500, 256), (500, 333, 256), (256, 256, 256), (100, 1000, 256), (333, 500, 32),
                        (1000, 257, 256), (28, 28, 32)]:
        r = F.resize(Image.new("RGB", (ww, hh)), s, T.InterpolationMode.BILINEAR)
        out[f"shortside.{n}"] = i64(hh, ww, s, r.height, r.width)
        n += 1

    # colour adjustments, one op at a time, including the extremes of ColorJitter(0.4, 0.4, 0.4, 0.1) and beyond
    factors = {
        "brightness": [0.6, 1.4, 0.8371, 1.0, 1.1234567, 0.0, 2.5],
        "contrast": [0.6, 1.4, 0.91, 1.2345, 0.0, 3.0],
        "saturation": [0.6, 1.4, 0.7777, 1.05, 0.0, 2.2],
        "hue": [-0.1, 0.1, 0.0, 0.0371, -0.0371, 0.5, -0.5, -0.0039, 0.0039, 0.001],
    }
    fn = {"brightness": F.adjust_brightness, "contrast": F.adjust_contrast, "saturation": F.adjust_saturation,
          "hue": F.adjust_hue}
    for op, fs in factors.items():
        n = 0
        for k in range(len(imgs)):
            for f in (fs if k in small else fs[1:2]):  # per-pixel ops: the large images add little coverage
                f = float(np.float32(f))
                out[f"{op}.{n}.src"], out[f"{op}.{n}.factor"] = i64(k), f32(f)
                out[f"{op}.{n}.out"] = u8(fn[op](imgs[k], f))
                n += 1
    for k in range(len(imgs)):
        out[f"gray.{k}.src"], out[f"gray.{k}.out"] = i64(k), u8(F.rgb_to_grayscale(imgs[k], num_output_channels=3))
        out[f"flip.{k}.src"], out[f"flip.{k}.out"] = i64(k), u8(F.hflip(imgs[k]))
        out[f"solarize.{k}.src"], out[f"solarize.{k}.out"] = i64(k), u8(ImageOps.solarize(imgs[k], 128))
    n = 0
    for k in range(len(imgs)):
        sigmas = [0.1, 0.5, 1.0, 1.37, 2.0, float(torch.empty(1).uniform_(0.1, 2.0, generator=g))]
        for sigma in (sigmas if k in small else sigmas[4:5]):
            sigma = float(np.float32(sigma))
            out[f"blur.{n}.src"], out[f"blur.{n}.sigma"] = i64(k), f32(sigma)
            out[f"blur.{n}.out"] = u8(imgs[k].filter(ImageFilter.GaussianBlur(radius=sigma)))
            n += 1
    # a 1-pixel-wide and a 2-row image: the box blur's radius exceeds the image
    thin = imgs[0].crop((3, 0, 4, 32))
    flat = imgs[0].crop((0, 5, 32, 7))
    for t, im in enumerate([thin, flat]):
        k = len(imgs) + t
        out[f"img.{k}"] = u8(im)
        for sigma in [0.3, 2.0]:
            out[f"blur.{n}.src"], out[f"blur.{n}.sigma"] = i64(k), f32(sigma)
            out[f"blur.{n}.out"] = u8(im.filter(ImageFilter.GaussianBlur(radius=sigma)))
            n += 1

    # ColorJitter with forced order and factors (what ColorJitter.forward does after get_params)
    n = 0
    for k in range(len(imgs)):
        for _ in range(3 if k in small else 1):
            order = torch.randperm(4, generator=g).tolist()
            fac = [float(torch.empty(1).uniform_(0.6, 1.4, generator=g)) for _ in range(3)]
            fac.append(float(torch.empty(1).uniform_(-0.1, 0.1, generator=g)))
            im = imgs[k]
            for o in order:
                im = fn[["brightness", "contrast", "saturation", "hue"][o]](im, fac[o])
            out[f"jitter.{n}.src"], out[f"jitter.{n}.order"] = i64(k), i64(*order)
            out[f"jitter.{n}.factors"], out[f"jitter.{n}.out"] = f32(*fac), u8(im)
            n += 1

    # whole views as the official MultiStageTransform makes them: t1 (crop, flip), t2 (jitter, gray, blur), then
    # ToTensor + Normalize; both the weak view and the aggressive view made from it
    stats = {32: ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
             64: ((0.4408, 0.4279, 0.3867), (0.2682, 0.2610, 0.2686)),
             224: ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}
    n = 0
    for k in range(len(imgs) - 1):
        im = imgs[k]
        size = 32 if im.width <= 32 else 64 if im.width <= 96 else 224
        mean, std = stats[size]
        for rep in range(2):
            i, j, h, w = T.RandomResizedCrop.get_params(im, [0.2, 1.0], [3 / 4, 4 / 3])
            flip = int(torch.rand(1, generator=g) < 0.5)
            jit, gray, blur = int(rep == 0 or k % 2 == 0), int((k + rep) % 3 == 0), int((k + rep) % 2 == 1)
            order = torch.randperm(4, generator=g).tolist()
            fac = [float(torch.empty(1).uniform_(0.6, 1.4, generator=g)) for _ in range(3)]
            fac.append(float(torch.empty(1).uniform_(-0.1, 0.1, generator=g)))
            sigma = float(np.float32(float(torch.empty(1).uniform_(0.1, 2.0, generator=g))))
            weak = F.resized_crop(im, i, j, h, w, [size, size], T.InterpolationMode.BILINEAR)
            if flip:
                weak = F.hflip(weak)
            agg = weak
            if jit:
                for o in order:
                    agg = fn[["brightness", "contrast", "saturation", "hue"][o]](agg, fac[o])
            if gray:
                agg = F.rgb_to_grayscale(agg, num_output_channels=3)
            if blur:
                agg = agg.filter(ImageFilter.GaussianBlur(radius=sigma))
            norm = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
            pre = f"view.{n}."
            out[pre + "src"], out[pre + "box"], out[pre + "size"] = i64(k), i64(i, j, h, w), i64(size)
            out[pre + "flags"] = i64(flip, jit, gray, blur)
            out[pre + "order"], out[pre + "factors"], out[pre + "sigma"] = i64(*order), f32(*fac), f32(sigma)
            out[pre + "mean"], out[pre + "std"] = f32(*mean), f32(*std)
            out[pre + "weak"] = norm(weak).numpy().astype(np.float32)
            out[pre + "aggressive"] = norm(agg).numpy().astype(np.float32)
            n += 1

    # RandomResizedCrop.get_params: the fallback (no try fits) is deterministic; the accepted crops' distribution is
    # summarised by moments over many draws
    n = 0
    for (hh, ww, scale) in [(10, 1000, (0.2, 1.0)), (1000, 10, (0.2, 1.0)), (3, 400, (0.08, 1.0)),
                            (400, 200, (2.0, 3.0)), (300, 100, (1.5, 2.0))]:
        box = T.RandomResizedCrop.get_params(Image.new("RGB", (ww, hh)), list(scale), [3 / 4, 4 / 3])
        out[f"rrcfb.{n}.hw"], out[f"rrcfb.{n}.scale"], out[f"rrcfb.{n}.box"] = i64(hh, ww), f32(*scale), i64(*box)
        n += 1
    n = 0
    for (hh, ww, scale) in [(32, 32, (0.2, 1.0)), (96, 96, (0.2, 1.0)), (375, 500, (0.2, 1.0)), (32, 32, (0.08, 1.0)),
                            (64, 64, (0.08, 1.0)), (500, 333, (0.08, 1.0))]:
        torch.manual_seed(1000 + n)
        im = Image.new("RGB", (ww, hh))
        draws = np.array([T.RandomResizedCrop.get_params(im, list(scale), [3 / 4, 4 / 3]) for _ in range(20000)],
                         dtype=np.float64)
        out[f"rrcstat.{n}.hw"], out[f"rrcstat.{n}.scale"] = i64(hh, ww), f32(*scale)
        out[f"rrcstat.{n}.mean"], out[f"rrcstat.{n}.std"] = draws.mean(0), draws.std(0)
        out[f"rrcstat.{n}.count"] = i64(len(draws))
        n += 1

    # JPEG decoding: PIL's decode (what ImageFolder's loader does) of JPEGs encoded here in several flavours
    n = 0
    for k, (quality, subsampling, progressive, mode) in enumerate(
            [(90, 2, False, "RGB"), (75, 0, False, "RGB"), (95, 1, True, "RGB"), (85, 2, False, "L"),
             (60, 2, True, "RGB"), (90, 0, False, "CMYK")]):
        im = imgs[[6, 7, 8, 3, 9, 6][k]].convert(mode)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=quality, subsampling=subsampling, progressive=progressive)
        data = buf.getvalue()
        out[f"jpeg.{n}.bytes"] = np.frombuffer(data, dtype=np.uint8).copy()
        out[f"jpeg.{n}.out"] = u8(Image.open(io.BytesIO(data)))
        n += 1
    # the photographs themselves: too big to store decoded, so a position-weighted checksum of PIL's decode
    for t, f in enumerate(files):
        a = u8(Image.open(f))
        out[f"jpegfile.{t}.path"] = np.frombuffer(f.encode(), dtype=np.uint8).copy()
        out[f"jpegfile.{t}.hw"] = i64(*a.shape[:2])
        out[f"jpegfile.{t}.sum"] = checksum(a)

    # every 24-bit colour once (a 4096 x 4096 image): the per-pixel colour ops exhaustively, compared by checksum
    k = np.arange(1 << 24, dtype=np.uint32)
    every = np.stack([(k >> 16) & 255, (k >> 8) & 255, k & 255], axis=-1).astype(np.uint8).reshape(4096, 4096, 3)
    every_im = Image.fromarray(every, "RGB")
    n = 0
    for op, f in [("hue", -0.1), ("hue", 0.0371), ("hue", 0.5), ("saturation", 1.3), ("saturation", 0.61),
                  ("brightness", 1.37), ("gray", 0.0)]:
        f = float(np.float32(f))
        o = u8(F.rgb_to_grayscale(every_im, 3) if op == "gray" else fn[op](every_im, f))
        out[f"every.{n}.op"] = np.frombuffer(op.encode(), dtype=np.uint8).copy()
        out[f"every.{n}.factor"] = f32(f)
        out[f"every.{n}.sum"] = checksum(o)
        n += 1

    st.save(os.path.join(outdir, "aug.safetensors"), out,
            {"fixture_version": VERSION, "torchvision": torchvision.__version__, "pil": Image.__version__,
             "photos": PHOTO_DIR})


if __name__ == "__main__":
    main()
