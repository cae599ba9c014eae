#!/bin/sh
# The linear evaluation's head on the host (Tables 3 and 4 fit it on rank 0's CPU: 40 epochs over the ImageNet
# features): ours against PyTorch as installed and tuned, same machine, same threads, in this one command.
# usage: bench/linear.sh [BATCHES]   (batches of 256 timed per case; default 100)
set -eu
cd "$(dirname "$0")/.."
. bench/peer.sh
make -s "$BUILD/bench/linear_bench"
peer_header
n=${1:-100}
for c in "2048 1000 $n 1281167 meanshift" "2048 100 $n 126689 meanshift" "512 100 $n 50000 small"; do
    ours=$("$BUILD/bench/linear_bench" $c)
    torch=$(/usr/bin/python3 bench/linear_bench.py $c)
    tuned=$(GLIBC_TUNABLES=$TUNED /usr/bin/python3 bench/linear_bench.py $c)
    echo "$ours"; echo "$torch"; echo "$tuned (tuned)"
    echo "$ours" "$torch" "$tuned" | awk '{ for (i = 1; i <= NF; i++) if ($i == "ms") v[++k] = $(i - 1)
        printf "ratio   %.2fx PyTorch'"'"'s speed (%.2fx of tuned)\n", v[2] / v[1], v[3] / v[1] }'
done
