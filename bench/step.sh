#!/bin/sh
# The quick scale's training step (experiments/scales.lua: ResNet {1,1,1,1} of width 16, heads 256/64, 32 px,
# batch 256; a whole RSA or BYOL step with SGD): ours against PyTorch as installed and with glibc's allocator tuned,
# same machine, same thread count, in this one command. The goal of issue 6 is >= 2x the tuned PyTorch.
# usage: bench/quick.sh [MODE...]   (default rsa byol)
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/cpu}
THREADS=${OMP_NUM_THREADS:-$(nproc)}
export OMP_NUM_THREADS=$THREADS
make -s "$BUILD/bench/step_bench"
TUNED="glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967295:glibc.malloc.top_pad=1073741824"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $THREADS threads"
echo "PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)'), oneDNN $(dpkg-query -W -f='${Version}' libdnnl2 2>/dev/null)"
for mode in ${*:-rsa byol}; do
    ours=$("$BUILD/bench/step_bench" cpu quick "$mode" 256 7 2>/dev/null)
    torch=$(/usr/bin/python3 bench/step_bench.py cpu quick "$mode" 256 7 fp32)
    tuned=$(GLIBC_TUNABLES=$TUNED /usr/bin/python3 bench/step_bench.py cpu quick "$mode" 256 7 fp32)
    echo "$ours"; echo "$torch"; echo "$tuned"
    echo "$ours" "$torch" "$tuned" | awk -v m="$mode" '{
        for (i = 1; i <= NF; i++) if ($i == "img/s") v[++k] = $(i - 1); else if ($i == "RSS") r[++j] = $(i + 1)
        printf "ratio   quick %-4s step: %.2fx throughput of PyTorch (%.2fx of tuned), %.2fx its peak RSS (%.2fx of tuned)\n",
               m, v[1] / v[2], v[1] / v[3], r[1] / r[2], r[1] / r[3] }'
done
