#!/bin/sh
# ResNet-18 (CIFAR stem) forward + backward: ours against PyTorch as installed and with glibc's allocator tuned
# (the peer to beat on these machines: bench/peer.sh's TUNED), same machine, same thread count.
# usage: bench/resnet.sh [BATCH...]   (default 64 256)
set -eu
cd "$(dirname "$0")/.."
. bench/peer.sh
make -s "$BUILD/bench/resnet_step"
peer_header
for b in ${*:-64 256}; do
    steps=$([ "$b" -ge 256 ] && echo 3 || echo 6)
    ours=$("$BUILD/bench/resnet_step" "$b" "$steps" 2>/dev/null)
    torch=$(/usr/bin/python3 bench/resnet_step.py "$b" "$steps" torch)
    tuned=$(GLIBC_TUNABLES=$TUNED /usr/bin/python3 bench/resnet_step.py "$b" "$steps" tuned)
    echo "$ours"; echo "$torch"; echo "$tuned"
    echo "$ours" "$torch" "$tuned" | awk -v b="$b" '{
        for (i = 1; i <= NF; i++) if ($i == "img/s") v[++k] = $(i - 1); else if ($i == "MiB") r[++j] = $(i - 1)
        printf "ratio   batch %4d: %.2fx throughput of PyTorch (%.2fx of tuned), %.2fx its peak RSS (%.2fx of tuned)\n",
               b, v[1] / v[2], v[1] / v[3], r[1] / r[2], r[1] / r[3] }'
done
