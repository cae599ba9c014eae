#!/bin/sh
# Augmentation benchmark: 4-view MA views (the official MultiStageTransform) made by our loader against torchvision
# + PIL through a torch DataLoader, 32 px from memory and 224 px from ImageNet-like JPEGs, on one core and on all
# cores. Needs python3-torch, python3-torchvision and mate-backgrounds (the photographs): `make deps`.
# usage: bench/aug.sh [WORKDIR]   (default build/bench-aug; the inputs are made once and reused)
set -eu
cd "$(dirname "$0")/.."
DIR=${1:-build/bench-aug}
BUILD=${BUILD:-build/cpu}
make -s "$BUILD/libtrainer.a"
mkdir -p "$BUILD/bench"
# -O3 as the library; only the data pipeline's libraries are needed
${CC:-gcc} -std=c11 -O3 -g -Wall -Wextra -Werror -D_GNU_SOURCE -I. bench/aug_bench.c "$BUILD/libtrainer.a" \
    $(pkg-config --libs libturbojpeg zlib) -lm -lpthread -o "$BUILD/bench/aug_bench"
if [ ! -f "$DIR/small.u8" ]; then
    echo "preparing inputs in $DIR"
    /usr/bin/python3 bench/aug_bench.py prepare "$DIR"
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
# on a shared machine other tenants may hold a core: the all-core figures are only meaningful when "cores busy"
# (printed by aug_bench) reaches the core count
[ -r /proc/pressure/cpu ] && echo "cpu pressure before: $(head -1 /proc/pressure/cpu)"
/usr/bin/python3 bench/aug_bench.py run "$DIR"
"$BUILD/bench/aug_bench" "$DIR"
