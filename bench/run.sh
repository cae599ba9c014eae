#!/bin/sh
# `make bench`: every benchmark, each against PyTorch on this machine in the same command.
set -eu
cd "$(dirname "$0")/.."
echo "== ResNet-18 CIFAR forward + backward"
bench/resnet.sh
echo "== RSA and BYOL steps, ResNet-18 CIFAR"
bench/step.sh r18c 64 256
echo "== the quick scale's RSA and BYOL steps (Table 1 quick)"
OURS_FLAGS=keep2 bench/step.sh quick 256
echo "== mixed precision: the quick scale's RSA step in bf16"
bench/precision.sh 256
echo "== the linear evaluation's head on the host (ImageNet-1K, ImageNet-100, CIFAR sizes)"
bench/linear.sh
if [ -x bench/aug.sh ]; then echo "== 4-view MA augmentation"; bench/aug.sh; fi
